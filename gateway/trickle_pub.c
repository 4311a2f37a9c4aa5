/*
 * trickle_pub: the publisher. Producers append to per-segment byte buffers
 * under p_lock and wake the loop through an eventfd; the loop attaches each
 * queued segment to a POST (the preconnected one when it fits), unpauses
 * POSTs that have bytes again, retries 0-byte failures and sends the DELETE.
 */
#include "trickle_pub.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

struct pub_xfer;

struct pub_seg {
	int64_t g_seq;          /* -1 until attached to a POST */
	uint8_t *g_buf;
	size_t g_len, g_off, g_cap;
	uint64_t g_sent;        /* bytes handed to libcurl (this attempt) */
	bool g_ended;           /* segment_end called (or dropped) */
	int g_tries;
	int64_t g_retry_at_ms;
	struct pub_xfer *g_xfer;
	struct pub_seg *g_next;
};

struct pub_xfer {
	trickle_pub *x_pub;
	CURL *x_easy;
	int64_t x_seq;
	struct pub_seg *x_seg;  /* NULL: a preconnect with no segment yet */
	bool x_paused;
	bool x_closed_hdr;      /* Lp-Trickle-Closed in the answer */
	bool x_delete;          /* the DELETE of the channel */
	char x_err[CURL_ERROR_SIZE];
};

struct trickle_pub {
	curlev *p_cv;
	char *p_url;
	char *p_name;
	char *p_ca;
	char *p_ctype;
	struct curl_slist *p_hdrs;
	struct trickle_pub_opts p_opts;
	struct trickle_pub_cbs p_cbs;
	void *p_arg;
	int p_efd;
	atomic_bool p_kicked;
	struct event *p_ev_kick;
	struct event *p_ev_retry;
	struct event *p_ev_end;
	struct event *p_ev_drain;        /* the drain deadline after close */
	/* Loop thread only. */
	struct pub_xfer *p_pre;
	struct pub_xfer *p_del;
	int p_pre_fails;
	int64_t p_pre_retry_at_ms;
	int64_t p_retry_at_ms;           /* p_ev_retry due (if pending) */
	bool p_close_started;
	bool p_drain_armed;
	bool p_ending;
	enum trickle_end p_end;
	char p_end_text[256];
	/* Under p_lock. */
	pthread_mutex_t p_lock;
	struct pub_seg *p_head, *p_tail; /* segments not yet done on the wire */
	int p_nsegs;
	struct pub_seg *p_feed;          /* the producer's open segment */
	bool p_feed_drop;                /* producer's segment is discarded */
	bool p_closing;
	int64_t p_close_ms;              /* when close was first called */
	bool p_dead;                     /* ended: producers get -EPIPE */
	int64_t p_next_seq;
	struct trickle_pub_stats p_st;
};

static void pub_kick_now(trickle_pub *p);

void
trickle_pub_opts_default(struct trickle_pub_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->start_seq = 0;
	o->content_type = "video/mp2t";
	o->max_retries = 5;
	o->retry_delay_ms = 250;
	o->max_queued_bytes = 16u << 20;
	o->max_queued_segments = 4;
	o->preconnect = true;
	o->delete_on_close = true;
	o->drain_timeout_ms = 5000;
	o->connect_timeout_ms = 5000;
	o->tls_verify = true;
}

static const char *
pub_name(const trickle_pub *p)
{
	return p->p_name ? p->p_name : p->p_url;
}

/* Wakes the loop; any thread, no lock needed. */
static void
pub_wake(trickle_pub *p)
{
	uint64_t one = 1;

	if (!atomic_exchange(&p->p_kicked, true))
		(void)!write(p->p_efd, &one, sizeof(one));
}

static void
pub_seg_free(struct pub_seg *g)
{
	if (!g)
		return;
	free(g->g_buf);
	free(g);
}

/* Unlinks g from the queue; under p_lock. */
static void
pub_seg_unlink(trickle_pub *p, struct pub_seg *g)
{
	struct pub_seg **pp;

	for (pp = &p->p_head; *pp; pp = &(*pp)->g_next) {
		if (*pp != g)
			continue;
		*pp = g->g_next;
		if (p->p_tail == g) {
			p->p_tail = NULL;
			for (struct pub_seg *t = p->p_head; t; t = t->g_next)
				p->p_tail = t;
		}
		p->p_nsegs--;
		p->p_st.queued_bytes -= g->g_len - g->g_off;
		break;
	}
	if (p->p_feed == g) {
		p->p_feed = NULL;
		p->p_feed_drop = true;
	}
}

static void
pub_xfer_free(struct pub_xfer *x)
{
	if (!x)
		return;
	curl_easy_cleanup(x->x_easy);
	free(x);
}

static void
pub_finish(trickle_pub *p, enum trickle_end r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
pub_finish(trickle_pub *p, enum trickle_end r, const char *fmt, ...)
{
	va_list ap;

	if (p->p_ending)
		return;
	p->p_ending = true;
	p->p_end = r;
	va_start(ap, fmt);
	vsnprintf(p->p_end_text, sizeof(p->p_end_text), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&p->p_lock);
	p->p_dead = true;
	p->p_st.end = r;
	pthread_mutex_unlock(&p->p_lock);
	event_active(p->p_ev_end, 0, 0);
}

/* libcurl pulls body bytes; loop thread, inside libcurl. */
static size_t
pub_on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct pub_xfer *x = arg;
	trickle_pub *p = x->x_pub;
	struct pub_seg *g;
	size_t avail, k;

	n *= size;
	pthread_mutex_lock(&p->p_lock);
	g = x->x_seg;
	if (!g) {
		x->x_paused = true;
		pthread_mutex_unlock(&p->p_lock);
		return CURL_READFUNC_PAUSE;
	}
	avail = g->g_len - g->g_off;
	if (avail) {
		k = avail < n ? avail : n;
		memcpy(buf, g->g_buf + g->g_off, k);
		g->g_off += k;
		g->g_sent += k;
		p->p_st.bytes_out += k;
		p->p_st.queued_bytes -= k;
		if (g->g_off == g->g_len) {
			g->g_off = 0;
			g->g_len = 0;
		}
		pthread_mutex_unlock(&p->p_lock);
		return k;
	}
	if (g->g_ended) {
		pthread_mutex_unlock(&p->p_lock);
		return 0;
	}
	x->x_paused = true;
	pthread_mutex_unlock(&p->p_lock);
	return CURL_READFUNC_PAUSE;
}

static size_t
pub_on_header(char *line, size_t size, size_t n, void *arg)
{
	struct pub_xfer *x = arg;
	const char *sp;

	n *= size;
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		x->x_closed_hdr = false;
		sp = memchr(line, ' ', n);
		if (sp && sp + 1 < line + n && sp[1] == '1') {
			pthread_mutex_lock(&x->x_pub->p_lock);
			x->x_pub->p_st.interim++;
			pthread_mutex_unlock(&x->x_pub->p_lock);
		}
	}
	else if (n > 18 && strncasecmp(line, "Lp-Trickle-Closed:", 18) == 0)
		x->x_closed_hdr = true;
	return n;
}

static size_t
pub_on_body(char *buf, size_t size, size_t n, void *arg)
{
	return size * n;
}

static void pub_on_done(CURL *easy, CURLcode res, void *arg);

/* Opens a POST (or the DELETE) for seq; NULL on failure. Loop thread. */
static struct pub_xfer *
pub_xfer_new(trickle_pub *p, int64_t seq, bool del)
{
	struct pub_xfer *x = calloc(1, sizeof(*x));
	char url[2048];

	if (!x)
		return NULL;
	x->x_pub = p;
	x->x_seq = seq;
	x->x_delete = del;
	x->x_easy = curl_easy_init();
	if (!x->x_easy) {
		free(x);
		return NULL;
	}
	if (del)
		snprintf(url, sizeof(url), "%s", p->p_url);
	else
		snprintf(url, sizeof(url), "%s/%" PRId64, p->p_url, seq);
	curl_easy_setopt(x->x_easy, CURLOPT_URL, url);
	curl_easy_setopt(x->x_easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->x_easy, CURLOPT_HTTP_VERSION,
			 CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(x->x_easy, CURLOPT_ERRORBUFFER, x->x_err);
	curl_easy_setopt(x->x_easy, CURLOPT_HEADERFUNCTION, pub_on_header);
	curl_easy_setopt(x->x_easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->x_easy, CURLOPT_WRITEFUNCTION, pub_on_body);
	curl_easy_setopt(x->x_easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)p->p_opts.connect_timeout_ms);
	curl_easy_setopt(x->x_easy, CURLOPT_SSL_VERIFYPEER,
			 p->p_opts.tls_verify ? 1L : 0L);
	curl_easy_setopt(x->x_easy, CURLOPT_SSL_VERIFYHOST,
			 p->p_opts.tls_verify ? 2L : 0L);
	if (p->p_ca)
		curl_easy_setopt(x->x_easy, CURLOPT_CAINFO, p->p_ca);
	if (del) {
		curl_easy_setopt(x->x_easy, CURLOPT_CUSTOMREQUEST, "DELETE");
		curl_easy_setopt(x->x_easy, CURLOPT_TIMEOUT_MS, 5000L);
	} else {
		curl_easy_setopt(x->x_easy, CURLOPT_POST, 1L);
		curl_easy_setopt(x->x_easy, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)-1);
		curl_easy_setopt(x->x_easy, CURLOPT_READFUNCTION, pub_on_read);
		curl_easy_setopt(x->x_easy, CURLOPT_READDATA, x);
		curl_easy_setopt(x->x_easy, CURLOPT_HTTPHEADER, p->p_hdrs);
	}
	if (curlev_add(p->p_cv, x->x_easy, pub_on_done, x) != 0) {
		pub_xfer_free(x);
		return NULL;
	}
	return x;
}

/* Removes a transfer still on the multi and frees it. */
static void
pub_xfer_drop(trickle_pub *p, struct pub_xfer *x)
{
	if (!x)
		return;
	curlev_remove(p->p_cv, x->x_easy);
	pub_xfer_free(x);
}

/* Arms a one-shot timer for the monotonic time at_ms (now if past). */
static void
pub_arm_timer(struct event *ev, int64_t at_ms)
{
	int64_t d = at_ms - clock_now_ms();
	struct timeval tv;

	if (d < 0)
		d = 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(ev, &tv);
}

/*
 * Arms the retry timer (shared by segment retries and the preconnect's
 * backoff) for at_ms unless it is already due earlier: a later request must
 * not push back an earlier one, else a 0-byte segment's 250 ms retries wait
 * out the preconnect's backoff (up to 5 s each).
 */
static void
pub_arm_retry(trickle_pub *p, int64_t at_ms)
{
	if (evtimer_pending(p->p_ev_retry, NULL) && p->p_retry_at_ms <= at_ms)
		return;
	p->p_retry_at_ms = at_ms;
	pub_arm_timer(p->p_ev_retry, at_ms);
}

/* Opens the preconnect for the next seq when wanted; loop thread. */
static void
pub_preconnect(trickle_pub *p)
{
	int64_t seq;

	if (!p->p_opts.preconnect || p->p_pre || p->p_ending ||
	    p->p_close_started)
		return;
	if (p->p_pre_retry_at_ms > clock_now_ms()) {
		pub_arm_retry(p, p->p_pre_retry_at_ms);
		return;
	}
	pthread_mutex_lock(&p->p_lock);
	seq = p->p_next_seq;
	pthread_mutex_unlock(&p->p_lock);
	p->p_pre = pub_xfer_new(p, seq, false);
}

/*
 * The loop's work after any producer call or timer: attach queued segments
 * to POSTs, unpause POSTs with bytes, start the close when drained.
 */
static void
pub_service(trickle_pub *p)
{
	struct pub_xfer *wake[64];
	int nwake = 0;
	int64_t now = clock_now_ms();
	int64_t retry_at = INT64_MAX;
	int64_t close_ms;
	bool drained, closing;

	if (p->p_ending)
		return;
	pthread_mutex_lock(&p->p_lock);
	for (struct pub_seg *g = p->p_head; g; g = g->g_next) {
		if (!g->g_xfer) {
			if (g->g_seq >= 0 && g->g_retry_at_ms > now) {
				if (g->g_retry_at_ms < retry_at)
					retry_at = g->g_retry_at_ms;
				continue;
			}
			if (g->g_seq < 0) {
				g->g_seq = p->p_next_seq++;
				p->p_st.next_seq = p->p_next_seq;
			}
			if (p->p_pre && p->p_pre->x_seq == g->g_seq) {
				g->g_xfer = p->p_pre;
				p->p_pre = NULL;
			} else {
				pthread_mutex_unlock(&p->p_lock);
				g->g_xfer = pub_xfer_new(p, g->g_seq, false);
				pthread_mutex_lock(&p->p_lock);
				if (!g->g_xfer) {
					g->g_retry_at_ms = now +
						p->p_opts.retry_delay_ms;
					if (g->g_retry_at_ms < retry_at)
						retry_at = g->g_retry_at_ms;
					continue;
				}
			}
			g->g_sent = 0;
			g->g_xfer->x_seg = g;
		}
		if (g->g_xfer->x_paused &&
		    (g->g_len > g->g_off || g->g_ended) &&
		    nwake < (int)(sizeof(wake) / sizeof(wake[0]))) {
			g->g_xfer->x_paused = false;
			wake[nwake++] = g->g_xfer;
		}
	}
	if (p->p_pre && p->p_pre->x_seq != p->p_next_seq) {
		/* A stale preconnect (a retry took its seq): drop it. */
		pthread_mutex_unlock(&p->p_lock);
		pub_xfer_drop(p, p->p_pre);
		p->p_pre = NULL;
		pthread_mutex_lock(&p->p_lock);
	}
	closing = p->p_closing;
	close_ms = p->p_close_ms;
	drained = closing && !p->p_head;
	pthread_mutex_unlock(&p->p_lock);
	if (closing && !drained && !p->p_drain_armed) {
		p->p_drain_armed = true;
		pub_arm_timer(p->p_ev_drain,
			      close_ms + p->p_opts.drain_timeout_ms);
	}
	for (int i = 0; i < nwake; i++)
		curl_easy_pause(wake[i]->x_easy, CURLPAUSE_CONT);
	if (nwake == (int)(sizeof(wake) / sizeof(wake[0])))
		pub_kick_now(p);
	if (retry_at != INT64_MAX)
		pub_arm_retry(p, retry_at);
	if (drained && !p->p_close_started) {
		p->p_close_started = true;
		evtimer_del(p->p_ev_drain);
		pub_xfer_drop(p, p->p_pre);
		p->p_pre = NULL;
		if (p->p_opts.delete_on_close) {
			p->p_del = pub_xfer_new(p, -1, true);
			if (p->p_del)
				return;
		}
		pub_finish(p, TRICKLE_END_LOCAL, "closed");
		return;
	}
	pub_preconnect(p);
}

static void
pub_kick_now(trickle_pub *p)
{
	atomic_store(&p->p_kicked, true);
	event_active(p->p_ev_kick, EV_READ, 0);
}

static void
pub_on_kick(evutil_socket_t fd, short what, void *arg)
{
	trickle_pub *p = arg;
	uint64_t v;

	(void)!read(p->p_efd, &v, sizeof(v));
	atomic_store(&p->p_kicked, false);
	pub_service(p);
}

static void
pub_on_retry(evutil_socket_t fd, short what, void *arg)
{
	pub_service(arg);
}

/*
 * The drain deadline passed with segments still queued or on the wire (a
 * slow or stuck output): abort them all, count and log what was lost, and
 * let pub_service go on with the close (DELETE, on_end).
 */
static void
pub_on_drain(evutil_socket_t fd, short what, void *arg)
{
	trickle_pub *p = arg;
	struct pub_seg *g, *dead = NULL;
	uint64_t nseg = 0, nbytes = 0, inflight = 0;
	int64_t first = -1, last = -1;

	if (p->p_ending || p->p_close_started)
		return;
	pthread_mutex_lock(&p->p_lock);
	while ((g = p->p_head)) {
		nseg++;
		nbytes += g->g_len - g->g_off;
		if (g->g_xfer && g->g_sent)
			inflight++;
		if (g->g_seq >= 0) {
			if (first < 0)
				first = g->g_seq;
			last = g->g_seq;
		}
		pub_seg_unlink(p, g);
		g->g_next = dead;
		dead = g;
	}
	p->p_st.drain_dropped += nseg;
	p->p_st.drain_dropped_bytes += nbytes;
	pthread_mutex_unlock(&p->p_lock);
	while ((g = dead)) {
		dead = g->g_next;
		pub_xfer_drop(p, g->g_xfer);
		pub_seg_free(g);
	}
	log_warn("trickle_pub", "drain deadline passed, output dropped name=%s "
		 "drain_ms=%d segments=%" PRIu64 " partly_sent=%" PRIu64
		 " unsent_bytes=%" PRIu64 " first_seq=%" PRId64
		 " last_seq=%" PRId64 " why=\"output not drained in time "
		 "(slow or stuck server)\"", pub_name(p),
		 p->p_opts.drain_timeout_ms, nseg, inflight, nbytes, first,
		 last);
	pub_service(p);
}

/* A segment is done on the wire (ok or failed): forget it. */
static void
pub_seg_done(trickle_pub *p, struct pub_seg *g, bool ok, int status,
	     const char *err)
{
	int64_t seq = g->g_seq;

	pthread_mutex_lock(&p->p_lock);
	pub_seg_unlink(p, g);
	if (ok)
		p->p_st.segments++;
	else
		p->p_st.failed++;
	pthread_mutex_unlock(&p->p_lock);
	pub_seg_free(g);
	if (!ok)
		log_warn("trickle_pub", "segment dropped name=%s seq=%" PRId64
			 " status=%d err=\"%s\"", pub_name(p), seq, status,
			 err);
	if (p->p_cbs.on_segment_done)
		p->p_cbs.on_segment_done(p->p_arg, seq, ok, status, err);
}

static void
pub_on_done(CURL *easy, CURLcode res, void *arg)
{
	struct pub_xfer *x = arg;
	trickle_pub *p = x->x_pub;
	struct pub_seg *g = x->x_seg;
	long code = 0;
	char err[CURL_ERROR_SIZE + 64];
	bool closed = x->x_closed_hdr;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (res != CURLE_OK)
		snprintf(err, sizeof(err), "%s: %s", curl_easy_strerror(res),
			 x->x_err[0] ? x->x_err : "-");
	else
		snprintf(err, sizeof(err), "HTTP status %ld", code);
	if (x->x_delete) {
		p->p_del = NULL;
		pub_xfer_free(x);
		pub_finish(p, TRICKLE_END_LOCAL, "closed, DELETE answered: %s",
			   res == CURLE_OK ? "ok" : err);
		return;
	}
	if (!g) {
		/* A preconnect ended before it got a segment. */
		if (p->p_pre == x)
			p->p_pre = NULL;
		pub_xfer_free(x);
		if (res == CURLE_OK && code == 404) {
			pub_finish(p, TRICKLE_END_NOT_FOUND,
				   "stream not found (404)");
			return;
		}
		if (closed) {
			pub_finish(p, TRICKLE_END_CLOSED, "channel closed");
			return;
		}
		p->p_pre_fails++;
		p->p_pre_retry_at_ms = clock_now_ms() +
			p->p_opts.retry_delay_ms *
			(p->p_pre_fails < 5 ? p->p_pre_fails : 20);
		pub_service(p);
		return;
	}
	pthread_mutex_lock(&p->p_lock);
	g->g_xfer = NULL;
	pthread_mutex_unlock(&p->p_lock);
	pub_xfer_free(x);
	if (res == CURLE_OK && code == 200) {
		p->p_pre_fails = 0;
		pub_seg_done(p, g, true, 200, "");
		if (closed)
			pub_finish(p, TRICKLE_END_CLOSED, "channel closed");
		else
			pub_service(p);
		return;
	}
	if (res == CURLE_OK && code == 404) {
		pub_seg_done(p, g, false, 404, "stream not found");
		pub_finish(p, TRICKLE_END_NOT_FOUND, "stream not found (404)");
		return;
	}
	if (g->g_sent == 0 && g->g_tries < p->p_opts.max_retries) {
		g->g_tries++;
		g->g_retry_at_ms = clock_now_ms() + p->p_opts.retry_delay_ms;
		pthread_mutex_lock(&p->p_lock);
		p->p_st.retries++;
		pthread_mutex_unlock(&p->p_lock);
		log_debug("trickle_pub", "retry name=%s seq=%" PRId64 " try=%d "
			  "err=\"%s\"", pub_name(p), g->g_seq, g->g_tries, err);
		pub_service(p);
		return;
	}
	pub_seg_done(p, g, false, (int)code, err);
	pub_service(p);
}

static void
pub_on_end(evutil_socket_t fd, short what, void *arg)
{
	trickle_pub *p = arg;
	struct pub_seg *g;

	evtimer_del(p->p_ev_retry);
	evtimer_del(p->p_ev_drain);
	pub_xfer_drop(p, p->p_pre);
	p->p_pre = NULL;
	pub_xfer_drop(p, p->p_del);
	p->p_del = NULL;
	pthread_mutex_lock(&p->p_lock);
	while ((g = p->p_head)) {
		struct pub_xfer *x = g->g_xfer;

		pub_seg_unlink(p, g);
		p->p_st.failed++;
		pthread_mutex_unlock(&p->p_lock);
		pub_xfer_drop(p, x);
		pub_seg_free(g);
		pthread_mutex_lock(&p->p_lock);
	}
	pthread_mutex_unlock(&p->p_lock);
	if (p->p_end == TRICKLE_END_LOCAL)
		log_info("trickle_pub", "publisher closed name=%s text=\"%s\"",
			 pub_name(p), p->p_end_text);
	else
		log_warn("trickle_pub", "publisher ended name=%s reason=%s "
			 "text=\"%s\"", pub_name(p),
			 trickle_sub_end_str(p->p_end),
			 p->p_end_text);
	if (p->p_cbs.on_end)
		p->p_cbs.on_end(p->p_arg, p->p_end, p->p_end_text);
	/* p may be freed here. */
}

int
trickle_pub_create(trickle_pub **out, curlev *cv, const char *channel_url,
		   const struct trickle_pub_opts *opts,
		   const struct trickle_pub_cbs *cbs, void *arg)
{
	struct event_base *base = curlev_base(cv);
	char ctype[256];
	trickle_pub *p;
	size_t n;

	if (!channel_url || (strncmp(channel_url, "http://", 7) != 0 &&
			     strncmp(channel_url, "https://", 8) != 0))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (opts)
		p->p_opts = *opts;
	else
		trickle_pub_opts_default(&p->p_opts);
	if (!p->p_opts.content_type)
		p->p_opts.content_type = "application/octet-stream";
	if (p->p_opts.max_queued_segments < 1 || p->p_opts.max_retries < 0 ||
	    p->p_opts.retry_delay_ms < 0 || p->p_opts.connect_timeout_ms <= 0 ||
	    !p->p_opts.max_queued_bytes || p->p_opts.start_seq < 0 ||
	    p->p_opts.drain_timeout_ms < 0 ||
	    strchr(p->p_opts.content_type, '\r') ||
	    strchr(p->p_opts.content_type, '\n')) {
		free(p);
		return -EINVAL;
	}
	if (cbs)
		p->p_cbs = *cbs;
	p->p_arg = arg;
	p->p_cv = cv;
	p->p_efd = -1;
	pthread_mutex_init(&p->p_lock, NULL);
	p->p_next_seq = p->p_opts.start_seq;
	p->p_st.next_seq = p->p_next_seq;
	p->p_url = strdup(channel_url);
	if (!p->p_url)
		goto err_free;
	n = strlen(p->p_url);
	while (n > 0 && p->p_url[n - 1] == '/')
		p->p_url[--n] = 0;
	if (p->p_opts.name && !(p->p_name = strdup(p->p_opts.name)))
		goto err_free;
	if (p->p_opts.ca_file && !(p->p_ca = strdup(p->p_opts.ca_file)))
		goto err_free;
	p->p_opts.name = p->p_name;
	p->p_opts.ca_file = p->p_ca;
	p->p_opts.content_type = NULL;
	snprintf(ctype, sizeof(ctype), "Content-Type: %s",
		 opts && opts->content_type ? opts->content_type :
		 "video/mp2t");
	p->p_hdrs = curl_slist_append(NULL, ctype);
	if (!p->p_hdrs)
		goto err_free;
	if (!curl_slist_append(p->p_hdrs, "Transfer-Encoding: chunked") ||
	    !curl_slist_append(p->p_hdrs, "Expect:"))
		goto err_free;
	p->p_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->p_efd < 0)
		goto err_free;
	p->p_ev_kick = event_new(base, p->p_efd, EV_READ | EV_PERSIST,
				 pub_on_kick, p);
	p->p_ev_retry = evtimer_new(base, pub_on_retry, p);
	p->p_ev_end = event_new(base, -1, 0, pub_on_end, p);
	p->p_ev_drain = evtimer_new(base, pub_on_drain, p);
	if (!p->p_ev_kick || !p->p_ev_retry || !p->p_ev_end || !p->p_ev_drain ||
	    event_add(p->p_ev_kick, NULL) != 0)
		goto err_free;
	pub_preconnect(p);
	*out = p;
	return 0;

err_free:
	if (p->p_ev_kick)
		event_free(p->p_ev_kick);
	if (p->p_ev_retry)
		event_free(p->p_ev_retry);
	if (p->p_ev_end)
		event_free(p->p_ev_end);
	if (p->p_ev_drain)
		event_free(p->p_ev_drain);
	if (p->p_efd >= 0)
		close(p->p_efd);
	curl_slist_free_all(p->p_hdrs);
	pthread_mutex_destroy(&p->p_lock);
	free(p->p_ca);
	free(p->p_name);
	free(p->p_url);
	free(p);
	return -ENOMEM;
}

/* Ends the producer's open segment; under p_lock. */
static void
pub_feed_end(trickle_pub *p)
{
	if (p->p_feed)
		p->p_feed->g_ended = true;
	p->p_feed = NULL;
	p->p_feed_drop = false;
}

int
trickle_pub_segment_begin(trickle_pub *p)
{
	struct pub_seg *g;
	int rc = 0;

	pthread_mutex_lock(&p->p_lock);
	if (p->p_closing || p->p_dead) {
		rc = -EPIPE;
		goto out;
	}
	pub_feed_end(p);
	if (p->p_nsegs >= p->p_opts.max_queued_segments ||
	    p->p_st.queued_bytes >= p->p_opts.max_queued_bytes ||
	    !(g = calloc(1, sizeof(*g)))) {
		p->p_feed_drop = true;
		p->p_st.dropped_queue++;
		rc = -ENOBUFS;
		goto out;
	}
	g->g_seq = -1;
	if (p->p_tail)
		p->p_tail->g_next = g;
	else
		p->p_head = g;
	p->p_tail = g;
	p->p_nsegs++;
	p->p_feed = g;
out:
	pthread_mutex_unlock(&p->p_lock);
	if (rc == 0)
		pub_wake(p);
	return rc;
}

int
trickle_pub_write(trickle_pub *p, const void *buf, size_t len)
{
	struct pub_seg *g;
	int rc = 0;

	pthread_mutex_lock(&p->p_lock);
	if (p->p_dead) {
		rc = -EPIPE;
		goto out;
	}
	g = p->p_feed;
	if (!g || p->p_feed_drop) {
		rc = p->p_feed_drop ? -ENOBUFS : -EINVAL;
		goto out;
	}
	if (p->p_st.queued_bytes + len > p->p_opts.max_queued_bytes) {
		/* Far behind: cut this segment here (its POST ends early). */
		p->p_st.queued_bytes -= g->g_len - g->g_off;
		g->g_len = g->g_off = 0;
		g->g_ended = true;
		p->p_feed = NULL;
		p->p_feed_drop = true;
		p->p_st.dropped_queue++;
		rc = -ENOBUFS;
		goto out_wake;
	}
	if (g->g_off && g->g_off == g->g_len)
		g->g_off = g->g_len = 0;
	if (g->g_len + len > g->g_cap) {
		size_t cap = g->g_cap ? g->g_cap : 32768;
		uint8_t *nb;

		if (g->g_off) {
			memmove(g->g_buf, g->g_buf + g->g_off,
				g->g_len - g->g_off);
			g->g_len -= g->g_off;
			g->g_off = 0;
		}
		while (cap < g->g_len + len)
			cap *= 2;
		if (cap != g->g_cap) {
			nb = realloc(g->g_buf, cap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			g->g_buf = nb;
			g->g_cap = cap;
		}
	}
	memcpy(g->g_buf + g->g_len, buf, len);
	g->g_len += len;
	p->p_st.queued_bytes += len;
out_wake:
	pthread_mutex_unlock(&p->p_lock);
	pub_wake(p);
	return rc;
out:
	pthread_mutex_unlock(&p->p_lock);
	return rc;
}

int
trickle_pub_segment_end(trickle_pub *p)
{
	int rc = 0;

	pthread_mutex_lock(&p->p_lock);
	if (p->p_dead)
		rc = -EPIPE;
	pub_feed_end(p);
	pthread_mutex_unlock(&p->p_lock);
	pub_wake(p);
	return rc;
}

void
trickle_pub_close(trickle_pub *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->p_lock);
	pub_feed_end(p);
	if (!p->p_closing)
		p->p_close_ms = clock_now_ms();
	p->p_closing = true;
	pthread_mutex_unlock(&p->p_lock);
	pub_wake(p);
}

void
trickle_pub_destroy(trickle_pub **pp)
{
	trickle_pub *p = pp ? *pp : NULL;
	struct pub_seg *g;

	if (!p)
		return;
	event_free(p->p_ev_kick);
	event_free(p->p_ev_retry);
	event_free(p->p_ev_end);
	event_free(p->p_ev_drain);
	pub_xfer_drop(p, p->p_pre);
	pub_xfer_drop(p, p->p_del);
	while ((g = p->p_head)) {
		p->p_head = g->g_next;
		pub_xfer_drop(p, g->g_xfer);
		pub_seg_free(g);
	}
	close(p->p_efd);
	curl_slist_free_all(p->p_hdrs);
	pthread_mutex_destroy(&p->p_lock);
	free(p->p_ca);
	free(p->p_name);
	free(p->p_url);
	free(p);
	*pp = NULL;
}

void
trickle_pub_get_stats(trickle_pub *p, struct trickle_pub_stats *st)
{
	pthread_mutex_lock(&p->p_lock);
	*st = p->p_st;
	pthread_mutex_unlock(&p->p_lock);
}
