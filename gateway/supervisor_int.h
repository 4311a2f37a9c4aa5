/*
 * Private to the supervisor's two files: the process table entry and the
 * pool struct, shared by supervisor.c (lifecycle, deaths, restarts, timers,
 * the pool API) and supervisor_ipc.c (what is said to and heard from a
 * worker: encoding, request tracking, validation). Not for other modules.
 */
#ifndef CT_SUPERVISOR_INT_H
#define CT_SUPERVISOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "ipc.h"
#include "supervisor.h"
#include "workerconn.h"

#define SUP_MOD "supervisor"
#define SUP_MAX_OPS 32                       /* tracked requests per worker */
#define SUP_MAX_RECV (MSG_MAX_TEXT + 65536u) /* largest message accepted */
#define SUP_TX_INIT 65536u
#define SUP_MAX_WORKERS 1024
#define SUP_REAP_GRACE_NS (5 * 1000000000LL) /* after SIGKILL, in stop */

/* A request sent to a worker and not answered yet (answered in order). */
enum sup_op_kind {
	SUP_OP_FRAME,
	SUP_OP_PARAMS,
	SUP_OP_START,
	SUP_OP_STOP,
	SUP_OP_PING
};

struct sup_op {
	uint8_t kind;
	uint32_t stream;
	uint64_t key; /* FRAME: seq, PING: nonce */
};

struct sup_worker {
	supervisor *w_sup;
	int w_id;
	int w_gpu;
	int w_ring_fd; /* our CLOEXEC dup, or -1 */
	enum supervisor_state w_state;
	pid_t w_pid; /* > 0 while a process exists (until reaped) */
	pid_t w_last_pid;
	int w_pidfd;
	struct event *w_ev_pid;
	struct event *w_ev_timer;   /* deadlines and pings */
	struct event *w_ev_respawn; /* backoff */
	workerconn *w_conn;
	uint32_t w_gen;
	int64_t w_spawn_ns;
	int64_t w_ready_ns;   /* when this process sent READY, 0: not yet */
	int64_t w_state_ns;   /* when the current state began */
	int64_t w_ping_ns;    /* last PING sent */
	int64_t w_op_base_ns; /* when the head op could start */
	int64_t w_kill_ns;
	unsigned w_restarts;
	unsigned w_crashes; /* consecutive short-lived deaths */
	unsigned w_violations;
	uint64_t w_frames;
	uint64_t w_nonce;
	bool w_has_stream;
	uint32_t w_stream;
	bool w_had_prev;
	uint32_t w_prev_stream; /* answers may trail a STREAM_STOP */
	bool w_fatal;
	bool w_killed;
	bool w_served; /* a STREAM_START was sent to this slot, ever */
	char w_kill_reason[96];
	char w_last_error[160];
	char w_err_msg[120]; /* last ERROR text of the current process */
	uint32_t w_abi, w_vformat, w_vmem, w_caps, w_init_ms;
	char w_plugin[64];
	struct sup_op w_ops[SUP_MAX_OPS];
	unsigned w_nops;
};

struct supervisor {
	struct event_base *s_base;
	struct supervisor_config s_cfg; /* strings below, arrays cleared */
	char *s_worker_path;
	char *s_ipc_dir;
	char *s_processor;
	char *s_pconfig;
	char *s_log_level;
	ipc_dir *s_dir; /* ours when cfg->ipc_dir was NULL */
	bool s_started;
	bool s_closing;
	bool s_stopped;
	bool s_use_pidfd;
	int64_t s_close_deadline_ns;
	struct event *s_ev_sigchld;
	uint8_t *s_tx;
	size_t s_tx_cap;
	uint64_t s_violations;
	pid_t s_self;
	int s_n;
	struct sup_worker *s_w;
};

/* Enters state st and notes when. */
static inline void
supervisor_set_state(struct sup_worker *w, enum supervisor_state st)
{
	w->w_state = st;
	w->w_state_ns = clock_now_ns();
}

/* supervisor_pool.c: FRAMEs w has not answered yet. */
unsigned supervisor_in_flight(const struct sup_worker *w);

/* supervisor.c: re-arms w's timer for its next deadline or PING. */
void supervisor_arm(struct sup_worker *w);

/* supervisor.c: SIGKILLs w's group; 0 or -ESRCH (not running, or killed). */
int supervisor_kill_worker(struct sup_worker *w, const char *reason);

/* supervisor_ipc.c: encodes m into the pool's buffer and sends it to w. */
int supervisor_ipc_send(supervisor *s, struct sup_worker *w,
                        const struct msg *m);

/* supervisor_ipc.c: tracks a request that expects an answer. */
void supervisor_ipc_push_op(struct sup_worker *w, uint8_t kind, uint32_t stream,
                            uint64_t key);

/* supervisor_ipc.c: sends a PING and tracks it (even if the send fails). */
void supervisor_ipc_ping(struct sup_worker *w);

/*
 * supervisor_ipc.c: workerconn's receive callback for w: decodes,
 * validates, matches answers to requests, dispatches to the owner.
 */
bool supervisor_ipc_on_msg(void *arg, const void *buf, size_t len);

#endif
