/*
 * Structured, levelled logging shared by every process: one line per event,
 * logfmt (ts= lvl= mod= msg= then key=value pairs), on stderr. Quiet by
 * default (info). Owns only the level and the process tag; no allocation.
 */
#ifndef CT_LOG_H
#define CT_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the threshold; messages above it are dropped cheaply. Thread-safe. */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Parses "error|warn|info|debug" into *out. Returns 0, or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);

/* Names this process in every line ("gateway", "worker/3"). Copied. */
void log_set_tag(const char *tag);

/*
 * Writes one line: `ts=... lvl=warn proc=gateway mod=ring msg="..."`. fmt is the
 * message; key=value context goes inside it after the text, e.g.
 * log_msg(LOG_WARN, "ring", "slot reclaimed slot=%u worker=%d", s, w).
 * The part before the first " key=" is quoted as msg. One write(2) per line,
 * so lines from threads and processes never interleave. Never blocks long.
 */
void log_msg(enum log_level lvl, const char *mod, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level lvl, const char *mod, const char *fmt, va_list ap);

#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  do { if (log_get_level() >= LOG_INFO) log_msg(LOG_INFO, mod, __VA_ARGS__); } while (0)
#define log_debug(mod, ...) do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, mod, __VA_ARGS__); } while (0)

#endif
