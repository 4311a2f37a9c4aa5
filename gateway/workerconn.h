/*
 * The gateway end of one worker's IPC connection: an nng pair0 socket that
 * listens on ipc://DIR/wN-GEN.ipc before the worker is spawned; received
 * messages reach the libevent loop through an eventfd. Moves bytes only;
 * decoding and validation are the supervisor's. One connection per worker
 * process (a respawn gets a new one, so nothing stale is ever read).
 */
#ifndef CT_WORKERCONN_H
#define CT_WORKERCONN_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

typedef struct workerconn workerconn;

/*
 * Called on the loop thread for each received message; buf is valid only
 * during the call. Return false to stop reading for this wake-up (e.g. the
 * worker is being killed); the connection must not be destroyed inside.
 */
typedef bool (*workerconn_recv_fn)(void *arg, const void *buf, size_t len);

/*
 * Opens a pair0 socket listening on url (ipc://PATH, socket file mode 0600),
 * registers its receive fd with base. max_recv bounds an incoming message
 * (bigger ones are dropped by nng). Returns 0 or -errno (-EADDRINUSE...).
 * Loop thread; does not block.
 */
int workerconn_create(workerconn **out, struct event_base *base,
                      const char *url, size_t max_recv,
                      workerconn_recv_fn fn, void *arg);

/*
 * Queues one message (copied). Returns 0, -EAGAIN (send buffer full or no
 * peer yet), -EPIPE (closed) or -errno. Never blocks.
 */
int workerconn_send(workerconn *c, const void *buf, size_t len);

/*
 * Hands every message already received to the callback now (e.g. what a
 * worker sent just before it died). Loop thread; not from inside the callback.
 */
void workerconn_drain(workerconn *c);

/* Closes the socket (removing the socket file) and frees. NULL-safe. */
void workerconn_destroy(workerconn **p);

#endif
