/*
 * One worker process, the operating-system side: fork+exec of the worker
 * CLI (docs/HACKING.md) into its own process group with a clean fd table
 * and environment, its pidfd, the group kill and the reap. No policy
 * (restarts and deadlines are the supervisor's) and no event loop.
 */
#ifndef CT_WORKERPROC_H
#define CT_WORKERPROC_H

#include <stdbool.h>
#include <sys/types.h>

#define WORKERPROC_RING_FD 3 /* the ring's fd number in every worker */

/* What one worker is started with. Strings are only read during the call. */
struct workerproc_spec {
	const char *path;             /* the worker program */
	int id;                       /* --id */
	const char *url;              /* --url ipc://... (gateway listens) */
	int ring_fd;                  /* becomes fd 3, --ring-fd 3; -1: none */
	const char *processor;        /* --processor */
	const char *processor_config; /* --processor-config, NULL: not passed */
	int gpu;                      /* -1: host (--gpu -1); else
	                                 CUDA_VISIBLE_DEVICES=gpu and --gpu 0 */
	const char *log_level;        /* --log-level, NULL: not passed */
	int mem_limit_mb;             /* --mem-limit-mb, 0: not passed */
	pid_t parent;                 /* getpid() of the gateway */
};

/*
 * Forks and execs the worker. The child: setpgid(0,0) (also done by the
 * parent, so the group exists when this returns), default signal actions
 * and an empty mask, PR_SET_PDEATHSIG=SIGKILL (kept across exec) and a
 * getppid() re-check, PR_SET_NO_NEW_PRIVS, the ring dup2'ed to fd 3, every
 * other fd above 2 closed (close_range), CT_PARENT_PID in the environment.
 * An exec failure exits 2 (fatal configuration). Returns 0 and *pid, or
 * -errno of fork/allocation. Blocks only for fork.
 */
int workerproc_spawn(const struct workerproc_spec *sp, pid_t *pid);

/* pidfd_open(pid) (Linux >= 5.3), CLOEXEC. Returns the fd or -errno. */
int workerproc_pidfd(pid_t pid);

/* SIGKILL to the process group pid leads, and to pid itself. */
void workerproc_kill(pid_t pid);

/*
 * Reaps pid if it has exited, without blocking. Before the reap, while the
 * zombie still holds the pid (so it cannot be reused), SIGKILLs the rest of
 * its group (e.g. children the worker forked). Returns true with *code (the
 * exit status, or -1) and *sig (the terminating signal, or 0); false if it
 * is still running.
 */
bool workerproc_reap(pid_t pid, int *code, int *sig);

#endif
