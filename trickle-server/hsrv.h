/*
 * Minimal HTTP/1.1 server layer on libevent bufferevents, made for trickle:
 * request bodies are handed over as they arrive (Content-Length or chunked),
 * responses can stream (chunked, flushed per write), interim 100 Continue can
 * be sent any number of times, keep-alive and Connection: close are honoured.
 * One request at a time per connection; a peer that pipelines faster than it
 * reads gets no new request served (and nothing read) while HSRV_HIGH_MARK
 * bytes of answers wait. When accept() fails (out of fds) the listener pauses
 * instead of spinning. Owns sockets and connection state; routing and what to
 * answer belong to the caller (tserver.c).
 */
#ifndef CT_HSRV_H
#define CT_HSRV_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "hparse.h"

typedef struct hsrv hsrv;
typedef struct hsrv_req hsrv_req;

/*
 * Per-request callbacks, all on the loop thread, never re-entrantly from an
 * hsrv_req_* call. None is called once the response is complete.
 * on_body: a piece of the request body (decoded). on_end: the body is
 * complete (also for requests without body). on_writable: the output queue
 * fell below the low mark (more may be written). on_abort: the client went
 * away or sent a malformed body; req is invalid from now on (hsrv answers 500
 * by itself when it still can).
 */
struct hsrv_req_cbs {
	void (*on_body)(void *ctx, const uint8_t *data, size_t len);
	void (*on_end)(void *ctx);
	void (*on_writable)(void *ctx);
	void (*on_abort)(void *ctx, int err);
};

/*
 * Called once per request head. The handler either answers at once
 * (hsrv_req_respond) or sets callbacks (hsrv_req_set_cbs) and answers later.
 * A request the handler never answers lives until the connection closes.
 */
typedef void (*hsrv_request_fn)(void *ud, hsrv_req *req,
				const struct hparse_req *head);

/*
 * Listens on host:port (port 0: any free port; see hsrv_port). Returns 0 or
 * a negative errno (-EADDRINUSE...). Does not block; runs in base's loop.
 */
int hsrv_create(hsrv **out, struct event_base *base, const char *host, int port,
		hsrv_request_fn fn, void *ud);

/* The bound TCP port. */
int hsrv_port(const hsrv *s);

/* Number of open connections (for tests and logs). */
unsigned hsrv_conn_count(const hsrv *s);

/*
 * Stops listening, aborts every request (on_abort is called for each one
 * still owned by a handler), closes every connection, frees. NULL-safe.
 */
void hsrv_destroy(hsrv **p);

void hsrv_req_set_cbs(hsrv_req *r, const struct hsrv_req_cbs *cbs, void *ctx);

/*
 * Complete response with a Content-Length body. headers: extra header lines,
 * each ending in "\r\n" (or NULL). If the request body is not complete yet,
 * "Connection: close" is added and the rest of the body is discarded.
 * Returns 0, -EALREADY if a response was started, -ENOMEM.
 */
int hsrv_req_respond(hsrv_req *r, int status, const char *headers,
		     const char *body, size_t len);

/* Starts a streamed (chunked; close-delimited for HTTP/1.0) response. */
int hsrv_req_start(hsrv_req *r, int status, const char *headers);

/* Queues one chunk of a started response (len 0 is a no-op). */
int hsrv_req_write(hsrv_req *r, const void *data, size_t len);

/* Ends a started response (last chunk). */
int hsrv_req_finish(hsrv_req *r);

/* Sends an interim "100 Continue"; a no-op for HTTP/1.0 or once answered. */
int hsrv_req_continue(hsrv_req *r);

/* Asks for Connection: close after this response (set before answering). */
void hsrv_req_close_after(hsrv_req *r);

/* Bytes queued on the connection and not yet sent (backpressure). */
size_t hsrv_req_pending(const hsrv_req *r);

#define HSRV_HIGH_MARK (512 * 1024)  /* write no more while pending >= this */

#endif
