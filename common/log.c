/*
 * logfmt lines on stderr for all ctrickle processes. Owns the level and the
 * process tag; formats into a stack buffer and writes it with one write(2).
 * Control bytes in messages are neutralised: one event is one line.
 */
#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = LOG_INFO;
static char log_tag[32] = "ctrickle";

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level lvl)
{
	atomic_store(&log_level, (int)lvl);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int
log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (s && strcmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void
log_set_tag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

/*
 * A byte fit for a log line: whitespace controls become a space, other
 * control bytes '?'. Text from other processes (a worker's error message) or
 * from the network can thus never start a forged line or drive a terminal.
 */
static char
log_safe(char c)
{
	if (c == '\n' || c == '\r' || c == '\t')
		return ' ';
	if ((unsigned char)c < 0x20 || c == 0x7f)
		return '?';
	return c;
}

/* Copies src into dst quoted as a logfmt value; returns bytes written. */
static size_t
log_quote(char *dst, size_t cap, const char *src, size_t n)
{
	size_t o = 0;

	if (cap < 3)
		return 0;
	dst[o++] = '"';
	for (size_t i = 0; i < n && o + 3 < cap; i++) {
		char c = src[i];
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = c;
		} else {
			dst[o++] = log_safe(c);
		}
	}
	dst[o++] = '"';
	return o;
}

void
log_vmsg(enum log_level lvl, const char *mod, const char *fmt, va_list ap)
{
	char text[1536], line[2048];
	struct timeval tv;
	struct tm tm;
	size_t n, split;
	int k;
	int saved = errno;

	if ((int)lvl > atomic_load(&log_level))
		return;
	k = vsnprintf(text, sizeof(text), fmt, ap);
	if (k < 0)
		return;
	n = (size_t)k < sizeof(text) ? (size_t)k : sizeof(text) - 1;
	/* The message is the text up to the first " key=" pair. */
	split = n;
	for (size_t i = 0; i + 1 < n; i++) {
		if (text[i] != ' ')
			continue;
		size_t j = i + 1;
		while (j < n && (text[j] == '_' || (text[j] >= 'a' && text[j] <= 'z') ||
		                 (text[j] >= '0' && text[j] <= '9')))
			j++;
		if (j > i + 1 && j < n && text[j] == '=') {
			split = i;
			break;
		}
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	k = snprintf(line, sizeof(line),
	             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s proc=%s mod=%s msg=",
	             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	             tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000,
	             log_names[lvl < 0 || lvl > 3 ? 0 : lvl], log_tag, mod ? mod : "-");
	if (k < 0 || (size_t)k >= sizeof(line))
		return;
	size_t o = (size_t)k;
	o += log_quote(line + o, sizeof(line) - o - 1, text, split);
	if (split < n) {
		size_t rest = n - split;
		if (rest > sizeof(line) - o - 2)
			rest = sizeof(line) - o - 2;
		for (size_t i = 0; i < rest; i++)
			line[o++] = log_safe(text[split + i]);
	}
	line[o++] = '\n';
	(void)!write(STDERR_FILENO, line, o);
	errno = saved;
}

void
log_msg(enum log_level lvl, const char *mod, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, mod, fmt, ap);
	va_end(ap);
}
