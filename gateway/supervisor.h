/*
 * Worker pool supervisor: one process table of N workers, spawn (fork+exec,
 * own process group), death seen at once (pidfd, SIGCHLD fallback), restart
 * with exponential backoff, heartbeats, deadlines and hang kills, and the
 * decoding/validation of what workers send. Owns the worker processes and
 * their IPC sockets; does not own streams, rings or frames (the stream layer
 * does, through the callbacks). Everything runs on the gateway's loop thread.
 */
#ifndef CT_SUPERVISOR_H
#define CT_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"

struct event_base;
typedef struct json_t json_t;

typedef struct supervisor supervisor;

/* Where a worker is in its life. */
enum supervisor_state {
	SUPERVISOR_STARTING = 0, /* spawned, no HELLO yet */
	SUPERVISOR_LOADING,      /* HELLO seen, init() running, no READY yet */
	SUPERVISOR_IDLE,         /* READY, no stream */
	SUPERVISOR_BUSY,         /* serving a stream (STREAM_START sent) */
	SUPERVISOR_DEAD,         /* exited; respawn pending unless fatal */
};

/* Why and how a worker died; valid only during the on_death call. */
struct supervisor_death {
	int worker;
	pid_t pid;
	uint32_t generation;   /* spawn count of this worker slot, from 1 */
	int exit_code;         /* >= 0 when it exited, -1 when signalled */
	int signal;            /* the signal that ended it, or 0 */
	const char *reason;    /* "exit 3", "signal 9", "hung: ...", ... */
	bool killed;           /* killed by us (hang, deadline, protocol) */
	bool fatal;            /* exit 2: never respawned */
	int64_t detected_ns;   /* clock_now_ns() when the gateway knew */
	int64_t respawn_ms;    /* delay before the respawn, -1: none */
	bool had_stream;       /* it was BUSY with `stream` */
	int gpu;               /* its CUDA ordinal, -1: host */
	bool gpu_ring;         /* exit 5 (WORKER_EXIT_GPU_RING): it could not
	                          open its GPU's CUDA ring */
	bool ring_switched;    /* ... and that GPU's workers got a host ring
	                          (ring_fallback) and are respawned on it */
	uint32_t stream;
	unsigned frames_in_flight; /* FRAMEs sent and not answered */
};

/*
 * What the owner (the stream layer) is told. All run on the loop thread; arg
 * is supervisor_config.cb_arg. Message pointers (and the strings in them)
 * are valid only during the call. A callback may call supervisor_send,
 * supervisor_kill and the lookups, never supervisor_stop/destroy. NULL
 * members are allowed (the message is then only counted).
 */
struct supervisor_callbacks {
	void (*on_ready)(void *arg, int worker);
	void (*on_result)(void *arg, int worker, const struct msg_result *m);
	void (*on_drop)(void *arg, int worker, const struct msg_drop *m);
	void (*on_audio_out)(void *arg, int worker,
	                     const struct msg_audio_out *m);
	void (*on_params_ack)(void *arg, int worker,
	                      const struct msg_params_ack *m);
	void (*on_event)(void *arg, int worker, const struct msg_event *m);
	void (*on_data)(void *arg, int worker, const struct msg_data *m);
	void (*on_error)(void *arg, int worker, const struct msg_error *m);
	/*
	 * The worker's process is gone (reaped; its whole process group was
	 * sent SIGKILL). The owner must reclaim the ring slots the worker held
	 * (ring reclaim for this worker/pid) and move its stream elsewhere,
	 * re-sending in-flight frames once. Not called after supervisor_close.
	 */
	void (*on_death)(void *arg, const struct supervisor_death *d);
	/* Optional: a stream's name in GET /workers; NULL: its number. */
	const char *(*stream_name)(void *arg, uint32_t stream);
};

/* Pool configuration; copied by supervisor_create. 0 means "the default". */
struct supervisor_config {
	int nworkers;               /* > 0 */
	const int *gpus;            /* per worker, -1 = host; NULL: all -1 */
	const int *ring_fds;        /* per worker (dup'ed), -1/NULL: none */
	const char *worker_path;    /* NULL: "worker" beside /proc/self/exe */
	const char *ipc_dir;        /* NULL: new 0700 dir, removed at end */
	const char *processor;      /* --processor PATH (required) */
	const char *processor_config; /* --processor-config, NULL: none */
	const char *log_level;      /* --log-level, NULL: not passed */
	int mem_limit_mb;           /* --mem-limit-mb, 0: not passed */
	int spares;                 /* capacity = nworkers - spares */
	unsigned ping_ms;           /* PING interval, nothing in flight (250) */
	unsigned hang_ms;           /* no PONG within this: hung (2000) */
	unsigned hello_ms;          /* spawn -> HELLO (30000) */
	unsigned ready_ms;          /* HELLO -> READY, i.e. init() (300000) */
	unsigned frame_deadline_ms; /* FRAME -> RESULT|DROP (5000) */
	unsigned params_deadline_ms; /* PARAMS -> PARAMS_ACK (frame deadline) */
	unsigned start_deadline_ms; /* STREAM_START/STOP done (10000) */
	unsigned backoff_min_ms;    /* 2nd restart in a row waits this (100) */
	unsigned backoff_max_ms;    /* doubling up to this (10000) */
	unsigned stable_ms;         /* up this long: crashes reset (30000) */
	unsigned shutdown_ms;       /* SHUTDOWN -> exit, then SIGKILL (2000) */
	unsigned max_violations;    /* protocol violations before a kill (5) */
	bool no_pidfd;              /* force the SIGCHLD fallback (tests) */
	/*
	 * Optional. A worker on GPU `gpu` exited WORKER_EXIT_GPU_RING (it could
	 * not open the GPU's CUDA ring) before any worker of that GPU served a
	 * stream: return 0 and in *fd the ring every worker of that GPU gets
	 * from now on (borrowed; the supervisor dups it), or -errno. On success
	 * the supervisor respawns that worker at once and kills the other live
	 * workers of the GPU so they come back on the new ring. NULL, a failure,
	 * a GPU that served, or the same ring again: the exit counts as a crash.
	 * Loop thread; why names the exit for the log.
	 */
	int (*ring_fallback)(void *arg, int gpu, const char *why, int *fd);
	void *ring_fallback_arg;
	struct supervisor_callbacks cb;
	void *cb_arg;
};

/* A copy of one worker's table entry (supervisor_info). */
struct supervisor_worker_info {
	int id;
	pid_t pid;                 /* 0 before the first spawn */
	int gpu;
	enum supervisor_state state;
	bool has_stream;
	uint32_t stream;
	bool fatal;                /* exited 2: never respawned */
	unsigned restarts;         /* respawns so far */
	unsigned violations;       /* protocol violations, this process */
	unsigned in_flight;        /* FRAMEs not answered yet */
	uint32_t generation;
	uint64_t frames;           /* RESULTs received, all generations */
	uint32_t video_format, video_mem, caps, abi_version; /* from HELLO */
	uint32_t init_ms;          /* from READY */
	char plugin_name[64];
	char last_error[160];      /* "" when none */
};

/*
 * Creates the pool (spawns nothing yet). Validates cfg, copies it, dups the
 * ring fds (CLOEXEC), creates the IPC directory when cfg->ipc_dir is NULL.
 * Returns 0, -EINVAL (bad config), -ENOENT/-EACCES (worker_path not
 * executable), -ENOMEM. Loop thread; does not block.
 */
int supervisor_create(supervisor **out, struct event_base *base,
                      const struct supervisor_config *cfg);

/*
 * Spawns every worker. A worker that fails to spawn is handled like a crash
 * (respawned with backoff). Returns 0, or -EALREADY when already started.
 * Loop thread; forks, does not wait.
 */
int supervisor_start(supervisor *s);

/*
 * Sends m (a gateway->worker type) to a worker; encodes into a reused buffer.
 * Tracks what it sends: STREAM_START makes the worker BUSY with m's stream,
 * STREAM_STOP makes it IDLE; FRAME, PARAMS, STREAM_START/STOP arm their
 * deadline (a frame's deadline runs from when the worker could start it).
 * Returns 0; -EINVAL (bad worker or type, stream mismatch), -ENOTCONN (not
 * ready, dead or being killed), -EBUSY (STREAM_START to a busy worker),
 * -ENOBUFS (too many messages in flight), -EAGAIN (socket buffer full),
 * -EMSGSIZE/-ENOMEM. Non-blocking; loop thread.
 */
int supervisor_send(supervisor *s, int worker, const struct msg *m);

/*
 * Kills a worker's whole process group (SIGKILL) now; on_death follows when
 * it is reaped, with `reason`. Returns 0, -EINVAL, -ESRCH (not running).
 */
int supervisor_kill(supervisor *s, int worker, const char *reason);

/*
 * The idle worker to give a new stream: the least loaded GPU first (fewest
 * BUSY workers), then the lowest id. Returns the id, or -EBUSY when no worker
 * is idle. Does not reserve it: send STREAM_START before the loop turns.
 */
int supervisor_pick(const supervisor *s);

/*
 * The idle worker with the lowest id on GPU `gpu` (a CUDA ordinal, -1:
 * host workers): a stream whose frames live in that GPU's ring stays there.
 * Returns the id, or -EBUSY. Does not reserve it.
 */
int supervisor_pick_gpu(const supervisor *s, int gpu);

/* Idle workers on GPU `gpu` (-1: host) that could take a stream now. */
int supervisor_idle_on(const supervisor *s, int gpu);

/* Streams the pool may take at once: nworkers - spares, at least 1. */
int supervisor_capacity(const supervisor *s);

/* Number of workers in the table. */
int supervisor_nworkers(const supervisor *s);

/* Workers currently in `st`. */
int supervisor_count(const supervisor *s, enum supervisor_state st);

/* True when no worker can ever serve (every one exited 2): /health ERROR. */
bool supervisor_failed(const supervisor *s);

/* Copies worker `worker`'s entry into *out. Returns 0 or -EINVAL. */
int supervisor_info(const supervisor *s, int worker,
                    struct supervisor_worker_info *out);

/* Protocol violations by all workers so far (undecodable, wrong type...). */
uint64_t supervisor_violations(const supervisor *s);

/*
 * GET /workers body: {"workers":[{"id","pid","gpu","state","stream",
 * "restarts","frames","last_error"}]} ("gpu": CUDA ordinal, -1 host) (DESIGN.md names table; state also
 * "loading"). New reference (json_decref it), NULL on -ENOMEM.
 */
json_t *supervisor_json(const supervisor *s);

/* "starting", "loading", "idle", "busy", "dead". */
const char *supervisor_state_name(enum supervisor_state st);

/*
 * Begins shutdown: no more respawns or sends, SHUTDOWN to every connected
 * worker, SIGKILL to the groups of those still alive after shutdown_ms (by
 * the loop). on_death is no longer called. Idempotent, non-blocking.
 */
void supervisor_close(supervisor *s);

/*
 * Closes if needed, then blocks until every worker is reaped: waits for the
 * rest of shutdown_ms, then SIGKILLs the remaining groups and reaps them.
 * No zombie is left. Returns the number of workers that had to be killed.
 * Loop thread (the loop need not run).
 */
int supervisor_stop(supervisor *s);

/*
 * Stops if needed and frees everything (sockets, fds, events, directory).
 * NULL-safe; sets *p = NULL.
 */
void supervisor_destroy(supervisor **p);

#endif
