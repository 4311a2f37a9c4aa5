/*
 * Worker processes at the OS level: argv and environment for the worker
 * CLI, the fork/exec child setup (group, signals, parent death, fds), the
 * pidfd, the group kill and the reap. The supervisor owns the policy.
 */
#include "workerproc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker_exit.h"

extern char **environ;

#define WORKERPROC_MAX_ARGS 24

/*
 * The child between fork and exec: async-signal-safe calls only.
 */
static void __attribute__((noreturn))
workerproc_child(const struct workerproc_spec *sp, char **argv, char **envp)
{
	struct sigaction sa;
	sigset_t none;
	int first = 3;

	setpgid(0, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != sp->parent)
		_exit(1);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (sp->ring_fd >= 0) {
		if (sp->ring_fd == WORKERPROC_RING_FD)
			fcntl(WORKERPROC_RING_FD, F_SETFD, 0);
		else if (dup2(sp->ring_fd, WORKERPROC_RING_FD) < 0)
			_exit(2);
		first = WORKERPROC_RING_FD + 1;
	}
	if (syscall(SYS_close_range, (unsigned)first, ~0u, 0) != 0)
		for (int fd = first; fd < 65536; fd++)
			close(fd);
	execve(sp->path, argv, envp);
	_exit(WORKER_EXIT_CONFIG); /* the worker program is unusable: fatal configuration */
}

/*
 * environ plus CT_PARENT_PID and, when gpu >= 0, CUDA_VISIBLE_DEVICES=gpu
 * (the worker then sees that GPU as device 0).
 */
static char **
workerproc_env(const struct workerproc_spec *sp, char *cvd, size_t cvd_cap,
               char *ppid, size_t ppid_cap)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (sp->gpu >= 0 &&
		    strncmp(environ[i], "CUDA_VISIBLE_DEVICES=", 21) == 0)
			continue;
		if (strncmp(environ[i], "CT_PARENT_PID=", 14) == 0)
			continue;
		env[k++] = environ[i];
	}
	snprintf(ppid, ppid_cap, "CT_PARENT_PID=%d", (int)sp->parent);
	env[k++] = ppid;
	if (sp->gpu >= 0) {
		snprintf(cvd, cvd_cap, "CUDA_VISIBLE_DEVICES=%d", sp->gpu);
		env[k++] = cvd;
	}
	env[k] = NULL;
	return env;
}

int
workerproc_spawn(const struct workerproc_spec *sp, pid_t *pid_out)
{
	char idb[16], gpub[16], memb[24], ringb[16], cvd[48], ppid[32];
	char *argv[WORKERPROC_MAX_ARGS], **envp;
	int a = 0;
	pid_t pid;

	snprintf(idb, sizeof(idb), "%d", sp->id);
	snprintf(gpub, sizeof(gpub), "%d", sp->gpu >= 0 ? 0 : -1);
	snprintf(ringb, sizeof(ringb), "%d", WORKERPROC_RING_FD);
	snprintf(memb, sizeof(memb), "%d", sp->mem_limit_mb);
	argv[a++] = (char *)sp->path;
	argv[a++] = "--id";
	argv[a++] = idb;
	argv[a++] = "--url";
	argv[a++] = (char *)sp->url;
	if (sp->ring_fd >= 0) {
		argv[a++] = "--ring-fd";
		argv[a++] = ringb;
	}
	argv[a++] = "--processor";
	argv[a++] = (char *)sp->processor;
	if (sp->processor_config) {
		argv[a++] = "--processor-config";
		argv[a++] = (char *)sp->processor_config;
	}
	argv[a++] = "--gpu";
	argv[a++] = gpub;
	if (sp->log_level) {
		argv[a++] = "--log-level";
		argv[a++] = (char *)sp->log_level;
	}
	if (sp->mem_limit_mb > 0) {
		argv[a++] = "--mem-limit-mb";
		argv[a++] = memb;
	}
	argv[a] = NULL;
	envp = workerproc_env(sp, cvd, sizeof(cvd), ppid, sizeof(ppid));
	if (!envp)
		return -ENOMEM;
	pid = fork();
	if (pid < 0) {
		int rv = -errno;

		free(envp);
		return rv;
	}
	if (pid == 0)
		workerproc_child(sp, argv, envp);
	free(envp);
	setpgid(pid, pid); /* no window in which the group is missing */
	*pid_out = pid;
	return 0;
}

int
workerproc_pidfd(pid_t pid)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -errno : fd;
}

void
workerproc_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

bool
workerproc_reap(pid_t pid, int *code, int *sig)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
	    si.si_pid == 0)
		return false;
	kill(-pid, SIGKILL);
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG) != 0 ||
	    si.si_pid == 0)
		return false;
	*code = -1;
	*sig = 0;
	if (si.si_code == CLD_EXITED)
		*code = si.si_status;
	else
		*sig = si.si_status;
	return true;
}
