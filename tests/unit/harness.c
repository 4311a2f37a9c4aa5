/*
 * The unit-test runner behind harness.h: fork per case, a per-case alarm,
 * exit status and signals turned into one pass/fail line each.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char th_dir[256];

void
th_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	exit(1);
}

const char *
th_build_dir(void)
{
	const char *b = getenv("CT_BUILD");

	return b && *b ? b : "build";
}

const char *
th_tmpdir(void)
{
	if (!th_dir[0]) {
		snprintf(th_dir, sizeof(th_dir), "/tmp/ct-test-XXXXXX");
		if (!mkdtemp(th_dir))
			th_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
	}
	return th_dir;
}

static double
th_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
th_one(const char *prog, const struct th_case *c)
{
	unsigned timeout = c->timeout_s ? c->timeout_s : 60;
	double t0 = th_now();
	int status = 0;
	pid_t pid;

	if (getenv("CT_SAN"))
		timeout *= 3;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		printf("FAIL %s: fork: %s\n", c->name, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		setpgid(0, 0); /* the case and its children form one group */
		alarm(timeout);
		c->fn();
		exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	kill(-pid, SIGKILL); /* leave no child of the case behind */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok   %s.%s (%.0f ms)\n", prog, c->name, (th_now() - t0) * 1e3);
		return 0;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		printf("FAIL %s.%s: timed out after %u s\n", prog, c->name, timeout);
	else if (WIFSIGNALED(status))
		printf("FAIL %s.%s: killed by signal %d (%s)\n", prog, c->name,
		       WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		printf("FAIL %s.%s: exit status %d\n", prog, c->name, WEXITSTATUS(status));
	return 1;
}

int
th_run(int argc, char **argv, const struct th_case *cases)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	const char *prog = strrchr(argv[0], '/');
	int passed = 0, failed = 0;

	prog = prog ? prog + 1 : argv[0];
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (const struct th_case *c = cases; c->name; c++) {
		if (filter && !strstr(c->name, filter))
			continue;
		if (th_one(prog, c))
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
