/*
 * Gateway <-> worker transport: nng pair0 sockets over ipc:// inside a private
 * 0700 runtime directory per gateway instance (ipc_dir). Owns sockets, their
 * timeouts and the one nng-error -> negative-errno mapping (ipc_err). Message
 * encoding is proto/msg; the frame bytes travel in common/ring.
 */
#ifndef CT_IPC_H
#define CT_IPC_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

typedef struct ipc_dir ipc_dir;
typedef struct ipc ipc;

#define IPC_URL_MAX 256
#define IPC_RECV_MAX (16u * 1024 * 1024) /* largest message accepted */
#define IPC_NONBLOCK 0x1                 /* ipc_send/ipc_recv flag */
#define IPC_DIR_PREFIX "ctrickle-"

/*
 * Converts an nng return code (0 or a positive NNG_E*) to 0 or a negative
 * errno (NNG_ETIMEDOUT -> -ETIMEDOUT, NNG_EAGAIN -> -EAGAIN, NNG_ECLOSED ->
 * -EPIPE, NNG_ECONNREFUSED -> -ECONNREFUSED, ...; unknown -> -EIO). The only
 * place such a conversion happens.
 */
int ipc_err(int nng_rv);

/*
 * Creates a fresh private directory "<base>/ctrickle-<pid>-<random>" with mode
 * 0700 (exclusive: never reuses an existing one). base NULL: $XDG_RUNTIME_DIR
 * when set and writable, else /tmp. First sweeps base (ipc_dir_sweep), so
 * the directories of gateways that were killed do not pile up. Returns 0,
 * -ENAMETOOLONG or -errno. Gateway, once at start; blocks on the disk only.
 */
int ipc_dir_create(ipc_dir **out, const char *base);

/*
 * Removes stale runtime directories from base (NULL: as ipc_dir_create):
 * entries named exactly "ctrickle-<pid>-<16 hex>" that are real directories
 * (symlinks are never followed nor removed), owned by our effective uid,
 * whose pid is not alive (kill(pid, 0) fails with ESRCH; a live pid, pid
 * reuse included, keeps its directory). Inside, only socket files owned by
 * us are unlinked; a directory holding anything else is left. Logs the
 * count at info when any was removed, else at debug. Returns the number
 * removed, or -errno when base cannot be read. Any thread.
 */
int ipc_dir_sweep(const char *base);

/* The directory's path; valid until ipc_dir_destroy. */
const char *ipc_dir_path(const ipc_dir *d);

/*
 * Writes "ipc://<dir>/<name>" into buf (cap bytes, IPC_URL_MAX is enough for
 * short names). name: [A-Za-z0-9._-], e.g. "w3.ipc". Returns 0, -EINVAL or
 * -ENAMETOOLONG (also when the socket path would exceed sun_path).
 */
int ipc_dir_url(const ipc_dir *d, const char *name, char *buf, size_t cap);

/*
 * Removes every entry in the directory (socket files) and the directory,
 * then frees. Close the sockets first. NULL-safe; sets *p = NULL.
 */
void ipc_dir_destroy(ipc_dir **p);

/*
 * Gateway: opens a pair0 socket and listens on url (from ipc_dir_url); the
 * socket file gets mode 0700. Returns 0, -EADDRINUSE, -EINVAL or -errno.
 */
int ipc_listen(ipc **out, const char *url);

/*
 * Worker: opens a pair0 socket and dials url, retrying every 10 ms while the
 * listener is not there yet, until timeout_ms has passed. Blocks. Returns 0,
 * -ETIMEDOUT (the last refusal is logged at debug), or -errno.
 */
int ipc_dial(ipc **out, const char *url, int timeout_ms);

/*
 * Sends len bytes (copied). flags IPC_NONBLOCK: returns -EAGAIN at once when
 * the peer is not taking messages; otherwise blocks up to the send timeout
 * (ipc_send_timeout; default: forever). Returns 0, -EAGAIN, -ETIMEDOUT,
 * -EPIPE (socket closed) or -errno. One thread per socket direction.
 */
int ipc_send(ipc *s, const void *buf, size_t len, int flags);

/* ipc_send that blocks at most timeout_ms (< 0: forever). */
int ipc_send_timeout(ipc *s, const void *buf, size_t len, int timeout_ms);

/*
 * Receives one message into buf (cap bytes), sets *len. timeout_ms: 0 does
 * not wait (-EAGAIN), < 0 waits forever. Returns 0, -EAGAIN, -ETIMEDOUT,
 * -EMSGSIZE (message larger than cap: it is dropped), -EPIPE or -errno.
 */
int ipc_recv(ipc *s, void *buf, size_t cap, size_t *len, int timeout_ms);

/*
 * Receives one message as an nng_msg the caller frees with nng_msg_free.
 * Same timeout and returns as ipc_recv (no -EMSGSIZE).
 */
int ipc_recv_msg(ipc *s, nng_msg **out, int timeout_ms);

/*
 * An fd that polls readable while a message can be received (NNG_OPT_RECVFD),
 * for the gateway's libevent loop. Owned by the socket: never read or close
 * it. Returns 0 or -errno. Caution: nng 1.5.2's pair0 leaks the pipe behind
 * this fd when the socket closes, so a process that opens many sockets over
 * its life (one per worker restart) should receive with an aio callback
 * instead, as gateway/workerconn.c does.
 */
int ipc_recv_fd(ipc *s, int *fd);

/* Closes the socket (pending messages are dropped) and frees. NULL-safe. */
void ipc_close(ipc **p);

#endif
