/*
 * Tiny unit-test harness: a table of named cases, each run in a forked child
 * with a timeout, so a crash or hang is one red case, not a dead run. Owns
 * nothing but the runner; each tests/unit/<module>_test.c owns its cases.
 */
#ifndef CT_HARNESS_H
#define CT_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct th_case {
	const char *name;
	void (*fn)(void);
	unsigned timeout_s; /* 0: the default (60 s, doubled under sanitizers) */
};

#define TH_CASE(fn)         { #fn, fn, 0 }
#define TH_CASE_T(fn, secs) { #fn, fn, (secs) }
#define TH_END              { NULL, NULL, 0 }

/*
 * Runs every case of the NULL-terminated table (or only those whose name
 * contains argv[1]), each in its own child. Prints one line per case and ends
 * with "N passed, N failed". Returns the process exit status (0: all passed).
 */
int th_run(int argc, char **argv, const struct th_case *cases);

/* Failure of the current case: prints where and why, exits the child with 1. */
void th_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* Directory of the build (where build/gateway etc. live), from CT_BUILD or "build". */
const char *th_build_dir(void);

/* A fresh private temp directory for this case (removed by the OS tmp policy). */
const char *th_tmpdir(void);

#define CHECK(cond) \
	do { if (!(cond)) th_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define CHECK_MSG(cond, ...) \
	do { if (!(cond)) th_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_EQ(a, b) \
	do { long long _a = (long long)(a), _b = (long long)(b); \
	     if (_a != _b) th_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, _b); } while (0)
#define CHECK_OK(expr) \
	do { long long _r = (long long)(expr); \
	     if (_r != 0) th_fail(__FILE__, __LINE__, "%s returned %lld (%s)", #expr, _r, \
	                          _r < 0 ? strerror((int)-_r) : "nonzero"); } while (0)
#define CHECK_STR(a, b) \
	do { const char *_a = (a), *_b = (b); \
	     if (!_a || !_b || strcmp(_a, _b) != 0) th_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", \
	                          #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); } while (0)

#define TH_MAIN(table) int main(int argc, char **argv) { return th_run(argc, argv, table); }

#endif
