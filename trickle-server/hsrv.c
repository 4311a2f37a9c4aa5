/*
 * HTTP/1.1 connection handling on libevent bufferevents (see hsrv.h): parses
 * heads with hparse, decodes bodies, writes responses, keeps connections
 * alive. Owns every connection and request object; frees them only from its
 * own event callbacks, so handlers never see a request vanish mid-call.
 */
#include "hsrv.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "clock.h"
#include "log.h"

#define HSRV_LOW_MARK      (128 * 1024)
#define HSRV_MAX_CONNS     10000
#define HSRV_IDLE_S        60
#define HSRV_MAX_PIPELINED (64 * 1024)
#define HSRV_ACCEPT_PAUSE_MS 100    /* accept() failed: retry after this */
#define HSRV_ACCEPT_WARN_MS  10000  /* at most one warning per this period */

struct hsrv_conn;

struct hsrv_req {
	struct hsrv_conn *conn;
	struct hparse_req head;
	const struct hsrv_req_cbs *cbs;
	void *ctx;
	struct hparse_chunked chunked;
	uint64_t body_left;
	bool body_done;
	bool end_sent;
	bool resp_started;
	bool resp_done;
	bool resp_chunked;
	bool close;
};

struct hsrv_conn {
	hsrv *srv;
	struct bufferevent *bev;
	struct event *next_ev;
	hsrv_req *req;
	bool closing;
	bool read_paused;  /* answers not read by the peer: input paused */
	TAILQ_ENTRY(hsrv_conn) link;
};

struct hsrv {
	struct event_base *base;
	struct evconnlistener *lis;
	hsrv_request_fn fn;
	void *ud;
	int port;
	unsigned nconns;
	TAILQ_HEAD(, hsrv_conn) conns;
	struct event *resume_ev;  /* re-enables the listener after a pause */
	bool accept_paused;
	uint64_t accept_errors;   /* accept() failures since the last warning */
	int64_t accept_warn_ms;   /* when the last warning was logged */
};

static void hsrv_conn_free(struct hsrv_conn *c);
static void hsrv_conn_process(struct hsrv_conn *c);
static void hsrv_accept_resume(hsrv *s);

static const char *
hsrv_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 470: return "status code 470";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default:  return "Unknown";
	}
}

static void
hsrv_schedule(struct hsrv_conn *c)
{
	event_active(c->next_ev, EV_TIMEOUT, 0);
}

/* Detaches the handler (no more callbacks) and tells it the request is gone. */
static void
hsrv_req_abort_handler(hsrv_req *r, int err)
{
	const struct hsrv_req_cbs *cbs = r->cbs;

	r->cbs = NULL;
	if (cbs && cbs->on_abort && !r->resp_done)
		cbs->on_abort(r->ctx, err);
}

static void
hsrv_conn_set_closing(struct hsrv_conn *c)
{
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	hsrv_schedule(c);
}

static void
hsrv_conn_free(struct hsrv_conn *c)
{
	if (c->req) {
		hsrv_req_abort_handler(c->req, -ECONNRESET);
		free(c->req);
		c->req = NULL;
	}
	TAILQ_REMOVE(&c->srv->conns, c, link);
	c->srv->nconns--;
	event_free(c->next_ev);
	bufferevent_free(c->bev);
	/* An fd came free: a listener paused for lack of fds may accept. */
	if (c->srv->accept_paused)
		hsrv_accept_resume(c->srv);
	free(c);
}

static int
hsrv_write_head(hsrv_req *r, int status, const char *headers, bool chunked,
		long long clen)
{
	struct evbuffer *out = bufferevent_get_output(r->conn->bev);
	int rc;

	rc = evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%s", status,
				 hsrv_reason(status), headers ? headers : "");
	if (rc < 0)
		return -ENOMEM;
	if (chunked)
		rc = evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
	else if (clen >= 0)
		rc = evbuffer_add_printf(out, "Content-Length: %lld\r\n", clen);
	if (rc < 0)
		return -ENOMEM;
	if (r->close)
		rc = evbuffer_add_printf(out, "Connection: close\r\n\r\n");
	else if (r->head.minor == 0)
		rc = evbuffer_add_printf(out, "Connection: keep-alive\r\n\r\n");
	else
		rc = evbuffer_add_printf(out, "\r\n");
	return rc < 0 ? -ENOMEM : 0;
}

void
hsrv_req_set_cbs(hsrv_req *r, const struct hsrv_req_cbs *cbs, void *ctx)
{
	r->cbs = cbs;
	r->ctx = ctx;
}

void
hsrv_req_close_after(hsrv_req *r)
{
	r->close = true;
}

size_t
hsrv_req_pending(const hsrv_req *r)
{
	return evbuffer_get_length(bufferevent_get_output(r->conn->bev));
}

int
hsrv_req_respond(hsrv_req *r, int status, const char *headers,
		 const char *body, size_t len)
{
	int rc;

	if (r->resp_started || r->resp_done)
		return -EALREADY;
	if (!r->body_done)
		r->close = true;
	rc = hsrv_write_head(r, status, headers, false, (long long)len);
	if (rc == 0 && len &&
	    evbuffer_add(bufferevent_get_output(r->conn->bev), body, len) < 0)
		rc = -ENOMEM;
	r->resp_started = r->resp_done = true;
	r->cbs = NULL;
	hsrv_schedule(r->conn);
	return rc;
}

int
hsrv_req_start(hsrv_req *r, int status, const char *headers)
{
	if (r->resp_started || r->resp_done)
		return -EALREADY;
	if (!r->body_done)
		r->close = true;
	r->resp_chunked = r->head.minor >= 1;
	if (!r->resp_chunked)
		r->close = true;
	r->resp_started = true;
	return hsrv_write_head(r, status, headers, r->resp_chunked, -1);
}

int
hsrv_req_write(hsrv_req *r, const void *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(r->conn->bev);

	if (!r->resp_started || r->resp_done)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (r->resp_chunked && evbuffer_add_printf(out, "%zx\r\n", len) < 0)
		return -ENOMEM;
	if (evbuffer_add(out, data, len) < 0)
		return -ENOMEM;
	if (r->resp_chunked && evbuffer_add(out, "\r\n", 2) < 0)
		return -ENOMEM;
	return 0;
}

int
hsrv_req_finish(hsrv_req *r)
{
	struct evbuffer *out = bufferevent_get_output(r->conn->bev);
	int rc = 0;

	if (!r->resp_started || r->resp_done)
		return -EINVAL;
	if (r->resp_chunked && evbuffer_add(out, "0\r\n\r\n", 5) < 0)
		rc = -ENOMEM;
	r->resp_done = true;
	r->cbs = NULL;
	hsrv_schedule(r->conn);
	return rc;
}

int
hsrv_req_continue(hsrv_req *r)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (r->resp_started || r->resp_done || r->head.minor == 0)
		return 0;
	if (evbuffer_add(bufferevent_get_output(r->conn->bev), cont,
			 sizeof(cont) - 1) < 0)
		return -ENOMEM;
	return 0;
}

/* Answers a request head that could not be parsed, then closes. */
static void
hsrv_conn_reject(struct hsrv_conn *c, int err)
{
	int status = err == -ENAMETOOLONG ? 414 : err == -EMSGSIZE ? 431 :
		     err == -EPROTONOSUPPORT ? 505 : err == -ENOSYS ? 501 : 400;
	const char *reason = hsrv_reason(status);
	struct evbuffer *out = bufferevent_get_output(c->bev);

	log_debug("hsrv", "bad request head status=%d", status);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			    status, reason, strlen(reason) + 1, reason);
	hsrv_conn_set_closing(c);
}

/* Malformed body: the handler lets go; answer 500 if nothing was sent. */
static void
hsrv_req_body_error(struct hsrv_conn *c)
{
	hsrv_req *r = c->req;

	hsrv_req_abort_handler(r, -EINVAL);
	if (!r->resp_started) {
		r->close = true;
		hsrv_write_head(r, 500, "Content-Type: text/plain\r\n", false, 13);
		evbuffer_add(bufferevent_get_output(c->bev), "Server error\n", 13);
	}
	r->resp_started = r->resp_done = true;
	hsrv_conn_set_closing(c);
}

static void
hsrv_req_body_piece(hsrv_req *r, const uint8_t *p, size_t n)
{
	if (n && r->cbs && r->cbs->on_body && !r->resp_done)
		r->cbs->on_body(r->ctx, p, n);
}

/* Feeds buffered body bytes to the handler. Returns -EINVAL on a bad body. */
static int
hsrv_conn_feed_body(struct hsrv_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	hsrv_req *r = c->req;

	while (!r->body_done && evbuffer_get_length(in) > 0 && !c->closing) {
		struct evbuffer_iovec v;
		size_t used = 0;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		if (r->head.body == HPARSE_BODY_LENGTH) {
			used = v.iov_len;
			if (used > r->body_left)
				used = (size_t)r->body_left;
			r->body_left -= used;
			hsrv_req_body_piece(r, v.iov_base, used);
			if (r->body_left == 0)
				r->body_done = true;
		} else {
			size_t off, dlen;
			int rc = hparse_chunked_step(&r->chunked, v.iov_base,
						     v.iov_len, &used, &off,
						     &dlen);

			if (rc < 0)
				return -EINVAL;
			hsrv_req_body_piece(r, (uint8_t *)v.iov_base + off, dlen);
			if (rc == 1)
				r->body_done = true;
		}
		evbuffer_drain(in, used);
	}
	return 0;
}

/* Tells the handler once that the body is complete. */
static void
hsrv_req_maybe_end(hsrv_req *r)
{
	if (!r->body_done || r->end_sent)
		return;
	r->end_sent = true;
	if (r->cbs && r->cbs->on_end && !r->resp_done)
		r->cbs->on_end(r->ctx);
}

/* Parses the next request head from the input buffer, if complete. */
static void
hsrv_conn_next_head(struct hsrv_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len = evbuffer_get_length(in);
	struct timeval idle = { HSRV_IDLE_S, 0 };
	hsrv_req *r;
	char *p;
	int rc;

	if (len == 0)
		return;
	if (len > HPARSE_MAX_HEAD)
		len = HPARSE_MAX_HEAD;
	p = (char *)evbuffer_pullup(in, (ssize_t)len);
	r = calloc(1, sizeof(*r));
	if (!p || !r) {
		free(r);
		hsrv_conn_set_closing(c);
		return;
	}
	rc = hparse_head(p, len, &r->head);
	if (rc <= 0) {
		free(r);
		if (rc < 0)
			hsrv_conn_reject(c, rc);
		return;
	}
	evbuffer_drain(in, (size_t)rc);
	r->conn = c;
	r->close = !r->head.keep_alive;
	r->body_left = r->head.content_length;
	r->body_done = r->head.body == HPARSE_BODY_NONE;
	hparse_chunked_init(&r->chunked);
	c->req = r;
	/* No read timeout while a request is active (a GET may wait long for
	 * its first byte); a peer that stops reading still times out. */
	bufferevent_set_timeouts(c->bev, NULL, &idle);
	c->srv->fn(c->srv->ud, r, &r->head);
}

static void
hsrv_conn_process(struct hsrv_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!c->req && evbuffer_get_length(bufferevent_get_output(c->bev)) >=
			       HSRV_HIGH_MARK) {
		/* The peer pipelines requests faster than it reads the
		 * answers: take no new request (and read nothing) until
		 * they drain, so the output queue stays bounded. */
		bufferevent_disable(c->bev, EV_READ);
		c->read_paused = true;
		return;
	}
	if (!c->req)
		hsrv_conn_next_head(c);
	if (!c->req || c->closing)
		return;
	if (!c->req->body_done && hsrv_conn_feed_body(c) < 0) {
		hsrv_req_body_error(c);
		return;
	}
	if (!c->req->end_sent) {
		hsrv_req_maybe_end(c->req);
	} else if (evbuffer_get_length(in) > HSRV_MAX_PIPELINED) {
		log_debug("hsrv", "too much pipelined input, closing");
		hsrv_req_abort_handler(c->req, -EPROTO);
		c->req->resp_started = c->req->resp_done = true;
		hsrv_conn_set_closing(c);
	}
}

static void
hsrv_read_cb(struct bufferevent *bev, void *arg)
{
	hsrv_conn_process(arg);
}

static void
hsrv_write_cb(struct bufferevent *bev, void *arg)
{
	struct hsrv_conn *c = arg;
	hsrv_req *r = c->req;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			hsrv_schedule(c);
		return;
	}
	if (c->read_paused) {
		c->read_paused = false;
		bufferevent_enable(bev, EV_READ);
		hsrv_schedule(c);
	}
	if (r && r->resp_started && !r->resp_done && r->cbs && r->cbs->on_writable)
		r->cbs->on_writable(r->ctx);
}

static void
hsrv_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hsrv_conn *c = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		log_debug("hsrv", "connection ended what=0x%x req=%d", what,
			  c->req != NULL);
		hsrv_conn_free(c);
	}
}

/* Deferred step: retire a finished request, start the next one, or close. */
static void
hsrv_next_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hsrv_conn *c = arg;
	hsrv_req *r = c->req;
	struct timeval idle = { HSRV_IDLE_S, 0 };

	if (r && r->resp_done && (r->body_done || c->closing || r->close)) {
		if (r->close || !r->body_done)
			c->closing = true;
		free(r);
		c->req = NULL;
		bufferevent_set_timeouts(c->bev, &idle, &idle);
	}
	if (c->closing) {
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			hsrv_conn_free(c);
		return;
	}
	if (!c->req)
		hsrv_conn_process(c);
}

static void
hsrv_accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
	       struct sockaddr *sa, int salen, void *arg)
{
	hsrv *s = arg;
	struct hsrv_conn *c;
	struct timeval idle = { HSRV_IDLE_S, 0 };
	int one = 1;

	if (s->nconns >= HSRV_MAX_CONNS) {
		log_warn("hsrv", "too many connections, refusing conns=%u", s->nconns);
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err_close_fd;
	c->srv = s;
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto err_free_conn;
	c->next_ev = event_new(s->base, -1, 0, hsrv_next_cb, c);
	if (!c->next_ev)
		goto err_free_bev;
	bufferevent_setcb(c->bev, hsrv_read_cb, hsrv_write_cb, hsrv_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, HSRV_LOW_MARK, 0);
	bufferevent_set_max_single_read(c->bev, 256 * 1024);
	bufferevent_set_max_single_write(c->bev, 256 * 1024);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&s->conns, c, link);
	s->nconns++;
	return;

err_free_bev:
	bufferevent_free(c->bev);
	fd = -1;
err_free_conn:
	free(c);
err_close_fd:
	if (fd >= 0)
		evutil_closesocket(fd);
}

static void
hsrv_accept_resume(hsrv *s)
{
	s->accept_paused = false;
	event_del(s->resume_ev);
	evconnlistener_enable(s->lis);
}

static void
hsrv_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	hsrv_accept_resume(arg);
}

/*
 * accept() failed with an error that is not transient (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM...). The listener is level-triggered, so retrying at once
 * would spin the loop at full CPU (and flood the log) while the backlog holds
 * connections we cannot take: pause it until a connection closes or
 * HSRV_ACCEPT_PAUSE_MS pass. Warns at most once per HSRV_ACCEPT_WARN_MS.
 */
static void
hsrv_accept_error_cb(struct evconnlistener *lis, void *arg)
{
	hsrv *s = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv = { 0, HSRV_ACCEPT_PAUSE_MS * 1000 };
	int64_t now = clock_now_ms();

	s->accept_errors++;
	if (s->accept_warn_ms == 0 ||
	    now - s->accept_warn_ms >= HSRV_ACCEPT_WARN_MS) {
		log_warn("hsrv", "cannot accept connections, pausing accept "
			 "(raise the open-file limit, ulimit -n, or lower the "
			 "client count) err=\"%s\" conns=%u failures=%llu",
			 strerror(err), s->nconns,
			 (unsigned long long)s->accept_errors);
		s->accept_warn_ms = now;
		s->accept_errors = 0;
	}
	evconnlistener_disable(lis);
	s->accept_paused = true;
	event_add(s->resume_ev, &tv);
}

int
hsrv_create(hsrv **out, struct event_base *base, const char *host, int port,
	    hsrv_request_fn fn, void *ud)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	hsrv *s;

	*out = NULL;
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1 || port < 0 || port > 65535)
		return -EINVAL;
	sin.sin_port = htons((uint16_t)port);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->fn = fn;
	s->ud = ud;
	TAILQ_INIT(&s->conns);
	s->resume_ev = evtimer_new(base, hsrv_resume_cb, s);
	if (!s->resume_ev) {
		free(s);
		return -ENOMEM;
	}
	s->lis = evconnlistener_new_bind(base, hsrv_accept_cb, s,
					 LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE |
					 LEV_OPT_CLOSE_ON_EXEC, 1024,
					 (struct sockaddr *)&sin, sizeof(sin));
	if (!s->lis) {
		int err = errno ? errno : EADDRINUSE;

		event_free(s->resume_ev);
		free(s);
		return -err;
	}
	evconnlistener_set_error_cb(s->lis, hsrv_accept_error_cb);
	getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&sin, &slen);
	s->port = ntohs(sin.sin_port);
	*out = s;
	return 0;
}

int
hsrv_port(const hsrv *s)
{
	return s->port;
}

unsigned
hsrv_conn_count(const hsrv *s)
{
	return s->nconns;
}

void
hsrv_destroy(hsrv **p)
{
	hsrv *s = *p;

	if (!s)
		return;
	evconnlistener_free(s->lis);
	s->lis = NULL;
	s->accept_paused = false;  /* no resume from the frees below */
	while (!TAILQ_EMPTY(&s->conns))
		hsrv_conn_free(TAILQ_FIRST(&s->conns));
	event_free(s->resume_ev);
	free(s);
	*p = NULL;
}
