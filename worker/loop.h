/*
 * The worker's serve loop: receives gateway messages on the IPC socket,
 * validates every FRAME/AUDIO descriptor, builds views over ring slots (no
 * copy; GPU paths through worker/frame_cuda), calls the plugin through the
 * host, and replies. Owns the send buffer and per-slot generation memory;
 * not the socket, the ring, the host or the GPU frame path.
 */
#ifndef CT_WORKER_LOOP_H
#define CT_WORKER_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ipc.h"
#include "msg.h"
#include "ring.h"
#include "worker/frame_cuda.h"
#include "worker/host.h"
#include "worker_exit.h"

#define LOOP_DEFAULT_MAX_ERRORS 5    /* plugin errors in a row before exiting */
#define LOOP_SEND_TIMEOUT_MS    5000 /* a reply the gateway does not take: gone */
#define LOOP_POLL_MS            500  /* parent and stop-flag checks while idle */

struct loop_config {
	uint32_t worker_id;
	int gpu;                           /* --gpu; -1: host */
	pid_t parent_pid;                  /* exit when getppid() differs; 0: no check */
	volatile sig_atomic_t *stop_flag;  /* non-zero: finish as on SHUTDOWN; may be NULL */
	unsigned max_errors;               /* 0: LOOP_DEFAULT_MAX_ERRORS */
	bool fence;                        /* host ring: slots outside a call PROT_NONE */
	frame_cuda *gpu_frames;            /* GPU frame path (borrowed; outlives the
	                                      loop); NULL: host ring, host plugin */
};

typedef struct loop loop;

/*
 * Prepares a loop over an attached ring, a dialed socket and a loaded host
 * (borrowed; they must outlive the loop). Allocates everything steady state
 * needs (send buffer, audio buffer when the plugin has process_audio, the
 * generation table) and sets itself as the host's event/data sink. Returns
 * 0, -EINVAL or -ENOMEM.
 */
int loop_create(loop **out, const struct loop_config *cfg, host *h, ring *r, ipc *c);

/*
 * Encodes and sends one message, waiting at most LOOP_SEND_TIMEOUT_MS.
 * Thread-safe (plugin threads emit events through it). Returns 0 or -errno.
 */
int loop_send(loop *l, const struct msg *m);

/* Sends HELLO (worker id, pid, the plugin's ABI, name, version, wants, caps). */
int loop_send_hello(loop *l);

/* Sends READY with the time init took. */
int loop_send_ready(loop *l, uint32_t init_ms);

/* Sends ERROR {stream, code, message}; best effort, returns the send's result. */
int loop_send_error(loop *l, uint32_t stream, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Serves the conversation until SHUTDOWN, the stop flag, a lost parent or
 * gateway, or too many plugin errors in a row. Calls stream_stop for an
 * active stream before returning 0 (fini is the host's, at host_destroy).
 * Returns a WORKER_EXIT_* status. Blocks; the calling thread makes every
 * plugin call.
 */
int loop_run(loop *l);

/* Frames answered with RESULT so far. */
uint64_t loop_frames(const loop *l);

/* Unsets the host's sink, frees. NULL-safe; sets *p = NULL. */
void loop_destroy(loop **p);

#endif
