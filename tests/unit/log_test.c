/*
 * common/log.c: the logfmt line shape (msg quoted up to the first key=), one
 * line per event even when the text carries newlines or control bytes (a
 * worker's error message is untrusted), and the level threshold.
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "log.h"

/* Runs fn with stderr redirected into a file, returns what it wrote. */
static void
capture(void (*fn)(void), char *out, size_t cap)
{
	char path[512];
	int fd, saved;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stderr", th_tmpdir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	saved = dup(2);
	CHECK(saved >= 0 && dup2(fd, 2) == 2);
	fn();
	CHECK(dup2(saved, 2) == 2);
	close(saved);
	n = pread(fd, out, cap - 1, 0);
	CHECK(n >= 0);
	out[n] = '\0';
	close(fd);
}

static int
count_char(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

static void
emit_plain(void)
{
	log_set_tag("test");
	log_warn("mod", "slot reclaimed slot=%u worker=%d", 3u, 7);
}

static void
test_line_shape(void)
{
	char buf[4096];

	capture(emit_plain, buf, sizeof(buf));
	CHECK_MSG(strstr(buf, " lvl=warn proc=test mod=mod "
			 "msg=\"slot reclaimed\" slot=3 worker=7\n"),
		  "got: %s", buf);
	CHECK_EQ(count_char(buf, '\n'), 1);
}

static void
emit_forged(void)
{
	/* As streams.c logs a worker's ERROR text: in the key=value part. */
	log_warn("stream", "worker reported an error worker=%d msg=\"%s\"", 1,
		 "boom\nts=2026-01-01T00:00:00.000Z lvl=error "
		 "msg=\"forged\"\x1b[2J");
	log_warn("stream", "text with\nnewline and \x07 bell worker=%d", 2);
}

/* Untrusted text must never split one event over two lines. */
static void
test_control_bytes_stay_on_one_line(void)
{
	char buf[4096];

	capture(emit_forged, buf, sizeof(buf));
	CHECK_MSG(count_char(buf, '\n') == 2, "want 2 lines, got: %s", buf);
	CHECK_MSG(!strchr(buf, '\x1b') && !strchr(buf, '\x07') &&
		  !strchr(buf, '\r'), "control bytes passed through: %s", buf);
	CHECK_MSG(strstr(buf, "msg=\"boom ts=2026"), "got: %s", buf);
	CHECK_MSG(strstr(buf, "msg=\"text with newline and ? bell\" worker=2"),
		  "got: %s", buf);
}

static void
emit_levels(void)
{
	log_set_level(LOG_WARN);
	log_info("mod", "hidden info");
	log_debug("mod", "hidden debug");
	log_error("mod", "shown error");
	log_set_level(LOG_INFO);
}

static void
test_level_threshold(void)
{
	char buf[4096];
	enum log_level l;

	capture(emit_levels, buf, sizeof(buf));
	CHECK_MSG(!strstr(buf, "hidden") && strstr(buf, "shown error"),
		  "got: %s", buf);
	CHECK_OK(log_parse_level("debug", &l));
	CHECK_EQ(l, LOG_DEBUG);
	CHECK_EQ(log_parse_level("loud", &l), -EINVAL);
}

static void
emit_long(void)
{
	static char big[5000];

	memset(big, 'x', sizeof(big) - 1);
	big[100] = '\n';
	log_warn("mod", "long value=%s", big);
}

/* An over-long message is cut, still as one line ending in a newline. */
static void
test_long_message_cut(void)
{
	char buf[8192];
	size_t n;

	capture(emit_long, buf, sizeof(buf));
	n = strlen(buf);
	CHECK(n > 1000 && n <= 2048);
	CHECK_EQ(count_char(buf, '\n'), 1);
	CHECK(buf[n - 1] == '\n');
}

static const struct th_case cases[] = {
	TH_CASE(test_line_shape),
	TH_CASE(test_control_bytes_stay_on_one_line),
	TH_CASE(test_level_threshold),
	TH_CASE(test_long_message_cut),
	TH_END
};

TH_MAIN(cases)
