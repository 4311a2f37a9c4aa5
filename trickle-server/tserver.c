/*
 * Trickle channels and segments (see tserver.h). A segment is a list of 32 KiB
 * pages shared by one or more writers (POST) and any number of readers (GET);
 * readers hold a read position and are pumped when bytes arrive, the segment
 * closes, or their socket drains. Everything runs on one libevent loop.
 */
#include "tserver.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "clock.h"
#include "hsrv.h"
#include "log.h"

#define TSEG_PAGE     32768
#define TCHAN_BUCKETS 4096
#define TCHAN_MAX_NAME 255
#define TS_TEXT "Content-Type: text/plain; charset=utf-8\r\n" \
		"X-Content-Type-Options: nosniff\r\n"

struct tget;
struct tpost;

struct tseg {
	int64_t seq;
	unsigned refs;
	bool closed;
	bool chan_closed;       /* closed because its channel closed */
	int64_t latest;         /* channel's next write index when closed */
	struct tchan *chan;     /* while in the channel's ring, else NULL */
	uint8_t **pages;
	size_t npages, cap_pages, len;
	TAILQ_HEAD(, tget) readers;
	TAILQ_HEAD(, tpost) writers;
};

struct tchan {
	tserver *srv;
	char *name;
	char *mime;
	int64_t next_write;
	int64_t write_ms;
	struct tseg *ring[TSERVER_RING];
	struct tchan *hnext;
};

struct tget {
	tserver *srv;
	hsrv_req *req;
	struct tseg *seg;
	size_t pos;
	bool started;
	int64_t latest_at_req;
	char mime[HPARSE_MAX_VALUE];
	TAILQ_ENTRY(tget) link;
};

struct tpost {
	tserver *srv;
	hsrv_req *req;
	struct tseg *seg;
	size_t bytes;
	struct event *keepalive;
	TAILQ_ENTRY(tpost) link;
};

struct tserver {
	struct event_base *base;
	struct tserver_opts opts;
	char base_path[256];
	hsrv *http;
	struct event *sweep;
	struct tchan *buckets[TCHAN_BUCKETS];
	unsigned nchans;
};

/* ---- segments ----------------------------------------------------------- */

static struct tseg *
tserver_seg_new(int64_t seq)
{
	struct tseg *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->seq = seq;
	g->refs = 1;
	TAILQ_INIT(&g->readers);
	TAILQ_INIT(&g->writers);
	return g;
}

static void
tserver_seg_unref(struct tseg *g)
{
	if (!g || --g->refs > 0)
		return;
	for (size_t i = 0; i < g->npages; i++)
		free(g->pages[i]);
	free(g->pages);
	free(g);
}

static int
tserver_seg_append(struct tseg *g, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t off = g->len % TSEG_PAGE, k;

		if (off == 0 && g->len / TSEG_PAGE == g->npages) {
			if (g->npages == g->cap_pages) {
				size_t nc = g->cap_pages ? g->cap_pages * 2 : 4;
				uint8_t **np = realloc(g->pages, nc * sizeof(*np));

				if (!np)
					return -ENOMEM;
				g->pages = np;
				g->cap_pages = nc;
			}
			g->pages[g->npages] = malloc(TSEG_PAGE);
			if (!g->pages[g->npages])
				return -ENOMEM;
			g->npages++;
		}
		k = TSEG_PAGE - off;
		if (k > n)
			k = n;
		memcpy(g->pages[g->len / TSEG_PAGE] + off, p, k);
		g->len += k;
		p += k;
		n -= k;
	}
	return 0;
}

static void tserver_get_pump(struct tget *r);
static void tserver_post_segment_closed(struct tpost *w);

/* Wakes readers (new bytes or end) and, once closed, ends pending writers. */
static void
tserver_seg_notify(struct tseg *g)
{
	struct tget *r, *rn;
	struct tpost *w, *wn;

	g->refs++;
	for (r = TAILQ_FIRST(&g->readers); r; r = rn) {
		rn = TAILQ_NEXT(r, link);
		tserver_get_pump(r);
	}
	if (g->closed) {
		for (w = TAILQ_FIRST(&g->writers); w; w = wn) {
			wn = TAILQ_NEXT(w, link);
			tserver_post_segment_closed(w);
		}
	}
	tserver_seg_unref(g);
}

static void
tserver_seg_close(struct tseg *g, bool chan_closed)
{
	if (g->closed)
		return;
	g->closed = true;
	g->chan_closed = chan_closed;
	g->latest = g->chan ? g->chan->next_write : g->seq + 1;
	tserver_seg_notify(g);
}

/* ---- channels ----------------------------------------------------------- */

static unsigned
tserver_chan_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h % TCHAN_BUCKETS;
}

static struct tchan *
tserver_chan_find(tserver *s, const char *name)
{
	struct tchan *c;

	for (c = s->buckets[tserver_chan_hash(name)]; c; c = c->hnext)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int
tserver_chan_create(tserver *s, const char *name, const char *mime,
		    struct tchan **out)
{
	struct tchan *c;
	unsigned h = tserver_chan_hash(name);

	if (s->nchans >= s->opts.max_channels)
		return -ENOSPC;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->srv = s;
	c->name = strdup(name);
	c->mime = strdup(mime && *mime ? mime : "application/octet-stream");
	if (!c->name || !c->mime) {
		free(c->name);
		free(c->mime);
		free(c);
		return -ENOMEM;
	}
	c->write_ms = clock_now_ms();
	c->hnext = s->buckets[h];
	s->buckets[h] = c;
	s->nchans++;
	log_info("tserver", "channel created channel=%s mime=%s", c->name, c->mime);
	*out = c;
	return 0;
}

/* Takes segment slot i out of the ring, closing it first. */
static void
tserver_chan_drop_slot(struct tchan *c, unsigned i, bool chan_closed)
{
	struct tseg *g = c->ring[i];

	if (!g)
		return;
	tserver_seg_close(g, chan_closed);
	g->chan = NULL;
	c->ring[i] = NULL;
	tserver_seg_unref(g);
}

/* Closes every segment (readers and writers are answered), unlinks, frees. */
static void
tserver_chan_close(tserver *s, struct tchan *c, const char *why)
{
	struct tchan **pp;

	for (unsigned i = 0; i < TSERVER_RING; i++)
		tserver_chan_drop_slot(c, i, true);
	for (pp = &s->buckets[tserver_chan_hash(c->name)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	}
	s->nchans--;
	log_info("tserver", "channel closed channel=%s reason=%s", c->name, why);
	free(c->name);
	free(c->mime);
	free(c);
}

/* A fresh segment in slot seq % 5, replacing (and closing) what was there. */
static struct tseg *
tserver_chan_new_slot(struct tchan *c, int64_t seq)
{
	unsigned i = (unsigned)(seq % TSERVER_RING);
	struct tseg *g = tserver_seg_new(seq);

	if (!g)
		return NULL;
	tserver_chan_drop_slot(c, i, false);
	g->chan = c;
	c->ring[i] = g;
	return g;
}

/* ---- readers (GET) ------------------------------------------------------ */

static void
tserver_get_free(struct tget *r)
{
	TAILQ_REMOVE(&r->seg->readers, r, link);
	tserver_seg_unref(r->seg);
	free(r);
}

static void
tserver_get_pump(struct tget *r)
{
	struct tseg *g = r->seg;
	char hdr[512];

	if (!r->started) {
		int64_t latest = g->chan ? g->chan->next_write : g->latest;

		if (g->len == 0 && !g->closed)
			return;
		if (g->len == 0) {
			snprintf(hdr, sizeof(hdr),
				 "Lp-Trickle-Seq: %" PRId64 "\r\n"
				 "Lp-Trickle-Latest: %" PRId64 "\r\n%s",
				 g->seq, latest, g->chan_closed ?
				 "Lp-Trickle-Closed: terminated\r\n" : "");
			hsrv_req_respond(r->req, 200, hdr, NULL, 0);
			tserver_get_free(r);
			return;
		}
		snprintf(hdr, sizeof(hdr), "Lp-Trickle-Seq: %" PRId64 "\r\n"
			 "Content-Type: %s\r\n", g->seq, r->mime);
		if (g->seq != r->latest_at_req)
			snprintf(hdr + strlen(hdr), sizeof(hdr) - strlen(hdr),
				 "Lp-Trickle-Latest: %" PRId64 "\r\n", latest);
		hsrv_req_start(r->req, 200, hdr);
		r->started = true;
	}
	while (r->pos < g->len && hsrv_req_pending(r->req) < HSRV_HIGH_MARK) {
		size_t off = r->pos % TSEG_PAGE, n = TSEG_PAGE - off;

		if (n > g->len - r->pos)
			n = g->len - r->pos;
		if (hsrv_req_write(r->req, g->pages[r->pos / TSEG_PAGE] + off, n) < 0)
			break;
		r->pos += n;
	}
	if (r->pos >= g->len && g->closed) {
		hsrv_req_finish(r->req);
		tserver_get_free(r);
	}
}

static void
tserver_get_on_writable(void *ctx)
{
	tserver_get_pump(ctx);
}

static void
tserver_get_on_abort(void *ctx, int err)
{
	struct tget *r = ctx;

	log_debug("tserver", "reader gone seq=%" PRId64 " pos=%zu", r->seg->seq,
		  r->pos);
	tserver_get_free(r);
}

static const struct hsrv_req_cbs tserver_get_cbs = {
	.on_writable = tserver_get_on_writable,
	.on_abort = tserver_get_on_abort,
};

static void
tserver_reply(hsrv_req *req, int status, const char *extra, const char *text)
{
	char hdr[512];

	snprintf(hdr, sizeof(hdr), TS_TEXT "%s", extra ? extra : "");
	hsrv_req_respond(req, status, hdr, text, strlen(text));
}

static void
tserver_get(tserver *s, hsrv_req *req, struct tchan *c, int64_t seq)
{
	unsigned i;
	struct tseg *g;
	struct tget *r;
	char hdr[160];

	if (seq == -1)
		seq = c->next_write;
	else if (seq == -2)
		seq = c->next_write > 0 ? c->next_write - 1 : 0;
	i = (unsigned)(seq % TSERVER_RING);
	g = c->ring[i];
	if (!g || g->seq != seq) {
		if (seq == c->next_write || (c->next_write == 0 && seq == 1)) {
			g = tserver_chan_new_slot(c, seq);
			if (!g) {
				tserver_reply(req, 500, NULL, "Server error\n");
				return;
			}
		} else {
			snprintf(hdr, sizeof(hdr), "Lp-Trickle-Latest: %" PRId64
				 "\r\nLp-Trickle-Seq: %" PRId64 "\r\n",
				 c->next_write, seq);
			tserver_reply(req, 470, hdr, "Entry not found");
			return;
		}
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		tserver_reply(req, 500, NULL, "Server error\n");
		return;
	}
	r->srv = s;
	r->req = req;
	r->seg = g;
	r->latest_at_req = c->next_write;
	snprintf(r->mime, sizeof(r->mime), "%s", c->mime);
	g->refs++;
	TAILQ_INSERT_TAIL(&g->readers, r, link);
	hsrv_req_set_cbs(req, &tserver_get_cbs, r);
	tserver_get_pump(r);
}

/* ---- writers (POST) ----------------------------------------------------- */

static void
tserver_post_free(struct tpost *w)
{
	TAILQ_REMOVE(&w->seg->writers, w, link);
	event_free(w->keepalive);
	tserver_seg_unref(w->seg);
	free(w);
}

/* Ends the POST: 200 (+ Closed if the channel closed), Connection: close. */
static void
tserver_post_segment_closed(struct tpost *w)
{
	struct tseg *g = w->seg;
	char hdr[128];

	/* As go-livepeer: a preconnect ended with no byte still moves the seq
	 * on, so the publisher's next seq is not refused (never backwards). */
	if (w->bytes == 0 && g->chan && g->chan->next_write < g->seq + 1)
		g->chan->next_write = g->seq + 1;

	snprintf(hdr, sizeof(hdr), "Lp-Trickle-Seq: %" PRId64 "\r\n%s",
		 w->seg->seq, w->seg->chan_closed ?
		 "Lp-Trickle-Closed: terminated\r\n" : "");
	hsrv_req_close_after(w->req);
	hsrv_req_respond(w->req, 200, hdr, NULL, 0);
	tserver_post_free(w);
}

static void
tserver_post_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tpost *w = arg;

	if (w->bytes == 0) {
		log_debug("tserver", "interim 100 Continue seq=%" PRId64, w->seg->seq);
		hsrv_req_continue(w->req);
	}
}

static void
tserver_post_on_body(void *ctx, const uint8_t *p, size_t n)
{
	struct tpost *w = ctx;
	struct tseg *g = w->seg;
	tserver *s = w->srv;

	if (w->bytes == 0) {
		event_del(w->keepalive);
		if (g->chan)
			g->chan->next_write = g->seq + 1;
	}
	/* A channel is idle when nothing is written, not when no segment
	   starts: a long live segment keeps it alive. */
	if (g->chan)
		g->chan->write_ms = clock_now_ms();
	if (g->len + n > s->opts.max_segment_bytes ||
	    tserver_seg_append(g, p, n) < 0) {
		log_warn("tserver", "segment too large, refused seq=%" PRId64
			 " bytes=%zu", g->seq, g->len + n);
		g->refs++;
		tserver_reply(w->req, 413, NULL, "Segment too large\n");
		tserver_post_free(w);
		tserver_seg_close(g, false);
		tserver_seg_unref(g);
		return;
	}
	w->bytes += n;
	tserver_seg_notify(g);
}

static void
tserver_post_on_end(void *ctx)
{
	struct tpost *w = ctx;
	struct tseg *g = w->seg;
	char hdr[128];

	snprintf(hdr, sizeof(hdr), "Lp-Trickle-Seq: %" PRId64 "\r\n", g->seq);
	if (w->bytes == 0) {
		if (g->chan)
			g->chan->next_write = g->seq + 1;
		hsrv_req_close_after(w->req);
	}
	hsrv_req_respond(w->req, 200, hdr, NULL, 0);
	g->refs++;
	tserver_post_free(w);
	tserver_seg_close(g, false);
	tserver_seg_unref(g);
}

/*
 * The publisher went away or sent a broken body. With bytes already relayed
 * the segment is closed so readers see its end; with none it stays open, so a
 * retry of the same seq still reaches readers waiting on it.
 */
static void
tserver_post_on_abort(void *ctx, int err)
{
	struct tpost *w = ctx;
	struct tseg *g = w->seg;
	bool had_bytes = w->bytes > 0;

	log_info("tserver", "publisher gone mid-segment seq=%" PRId64
		 " bytes=%zu err=%d", g->seq, w->bytes, err);
	g->refs++;
	tserver_post_free(w);
	if (had_bytes)
		tserver_seg_close(g, false);
	tserver_seg_unref(g);
}

static const struct hsrv_req_cbs tserver_post_cbs = {
	.on_body = tserver_post_on_body,
	.on_end = tserver_post_on_end,
	.on_abort = tserver_post_on_abort,
};

static void
tserver_post(tserver *s, hsrv_req *req, struct tchan *c, int64_t seq,
	     const struct hparse_req *head)
{
	struct timeval tv = { s->opts.continue_ms / 1000,
			      (s->opts.continue_ms % 1000) * 1000 };
	struct tseg *g;
	struct tpost *w;

	if (seq == -1)
		seq = c->next_write;
	g = c->ring[seq % TSERVER_RING];
	if (!g || g->seq != seq) {
		g = tserver_chan_new_slot(c, seq);
	} else if (g->closed) {
		g->closed = false;  /* a POST to an existing seq appends */
		g->chan_closed = false;
	}
	w = g ? calloc(1, sizeof(*w)) : NULL;
	if (w)
		w->keepalive = event_new(s->base, -1, EV_PERSIST,
					 tserver_post_keepalive_cb, w);
	if (!w || !w->keepalive) {
		free(w);
		tserver_reply(req, 500, NULL, "Server error\n");
		return;
	}
	if (head->has_reset) {
		/* A restarted publisher: close what came before it (unblocking
		 * readers of a dead publisher's segment), keep segments ahead of
		 * it (preconnects, readers waiting on seq + 1). */
		for (unsigned i = 0; i < TSERVER_RING; i++)
			if (c->ring[i] && c->ring[i]->seq < seq)
				tserver_seg_close(c->ring[i], false);
		log_info("tserver", "publisher reset channel=%s seq=%" PRId64,
			 c->name, seq);
	}
	w->srv = s;
	w->req = req;
	w->seg = g;
	g->refs++;
	TAILQ_INSERT_TAIL(&g->writers, w, link);
	hsrv_req_set_cbs(req, &tserver_post_cbs, w);
	log_debug("tserver", "POST segment channel=%s seq=%" PRId64, c->name, seq);
	if (head->expect_continue)
		hsrv_req_continue(req);
	event_add(w->keepalive, &tv);
}

/* ---- routing ------------------------------------------------------------ */

static bool
tserver_valid_name(const char *p, size_t n)
{
	if (n == 0 || n > TCHAN_MAX_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("-._~%:@!$&'()*+,;=", ch)))
			return false;
	}
	return true;
}

static void
tserver_channel_route(tserver *s, hsrv_req *req, const struct hparse_req *head,
		      const char *name)
{
	struct tchan *c = tserver_chan_find(s, name);
	int rc;

	if (head->method == HPARSE_DELETE) {
		if (!c) {
			tserver_reply(req, 400, NULL, "Invalid stream\n");
			return;
		}
		tserver_chan_close(s, c, "deleted");
		hsrv_req_respond(req, 200, NULL, NULL, 0);
		return;
	}
	if (head->method != HPARSE_POST) {
		tserver_reply(req, 405, "Allow: DELETE, POST\r\n",
			      "Method Not Allowed\n");
		return;
	}
	if (!c) {
		rc = tserver_chan_create(s, name, head->expect_content, &c);
		if (rc < 0) {
			tserver_reply(req, 503, NULL, "Too many channels\n");
			return;
		}
	}
	hsrv_req_respond(req, 200, NULL, NULL, 0);
}

static void
tserver_on_request(void *ud, hsrv_req *req, const struct hparse_req *head)
{
	tserver *s = ud;
	size_t blen = strlen(s->base_path), tlen;
	char target[HPARSE_MAX_LINE], name[TCHAN_MAX_NAME + 1];
	const char *rest, *slash, *seqs;
	struct tchan *c;
	int64_t seq;
	char hdr[64];

	snprintf(target, sizeof(target), "%s", head->target);
	target[strcspn(target, "?#")] = '\0';
	tlen = strlen(target);
	log_debug("tserver", "request method=%s target=%s", head->method_name, target);
	if (tlen < blen || memcmp(target, s->base_path, blen) != 0) {
		tserver_reply(req, 404, NULL, "404 page not found\n");
		return;
	}
	rest = target + blen;
	slash = strchr(rest, '/');
	if (!tserver_valid_name(rest, slash ? (size_t)(slash - rest) : strlen(rest))) {
		if (rest[0] == '\0' || rest[0] == '/')
			tserver_reply(req, 404, NULL, "404 page not found\n");
		else
			tserver_reply(req, 400, NULL, "Invalid channel name\n");
		return;
	}
	snprintf(name, sizeof(name), "%.*s",
		 (int)(slash ? (size_t)(slash - rest) : strlen(rest)), rest);
	if (!slash) {
		tserver_channel_route(s, req, head, name);
		return;
	}
	seqs = slash + 1;
	if (*seqs == '\0' || strchr(seqs, '/')) {
		tserver_reply(req, 404, NULL, "404 page not found\n");
		return;
	}
	if (head->method != HPARSE_GET && head->method != HPARSE_POST &&
	    head->method != HPARSE_DELETE) {
		tserver_reply(req, 405, "Allow: DELETE, GET, POST\r\n",
			      "Method Not Allowed\n");
		return;
	}
	c = tserver_chan_find(s, name);
	if (head->method == HPARSE_GET && strcmp(seqs, "next") == 0) {
		char body[32];

		if (!c) {
			tserver_reply(req, 404, NULL, "Stream not found\n");
			return;
		}
		snprintf(hdr, sizeof(hdr), "Lp-Trickle-Latest: %" PRId64 "\r\n",
			 c->next_write);
		snprintf(body, sizeof(body), "%" PRId64, c->next_write);
		tserver_reply(req, 200, hdr, body);
		return;
	}
	if (!c && head->method == HPARSE_POST && s->opts.autocreate) {
		if (tserver_chan_create(s, name, head->content_type, &c) < 0) {
			tserver_reply(req, 503, NULL, "Too many channels\n");
			return;
		}
	}
	if (!c) {
		if (head->method == HPARSE_POST)
			hsrv_req_close_after(req);
		tserver_reply(req, 404, NULL, "Stream not found\n");
		return;
	}
	if (hparse_seq(seqs, strlen(seqs), &seq) < 0 || seq < -2 ||
	    (seq == -2 && head->method != HPARSE_GET) ||
	    (seq < 0 && head->method == HPARSE_DELETE)) {
		tserver_reply(req, 400, NULL, "Invalid idx\n");
		return;
	}
	if (head->method == HPARSE_GET) {
		tserver_get(s, req, c, seq);
	} else if (head->method == HPARSE_POST) {
		tserver_post(s, req, c, seq, head);
	} else {
		struct tseg *g = c->ring[seq % TSERVER_RING];

		if (!g || g->seq != seq) {
			tserver_reply(req, 400, NULL, "Nonexistent segment\n");
			return;
		}
		log_debug("tserver", "DELETE closing seq channel=%s seq=%" PRId64,
			  c->name, seq);
		tserver_seg_close(g, false);
		hsrv_req_respond(req, 200, NULL, NULL, 0);
	}
}

/* ---- lifecycle ---------------------------------------------------------- */

static void
tserver_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	tserver *s = arg;
	int64_t now = clock_now_ms();

	for (unsigned b = 0; b < TCHAN_BUCKETS; b++) {
		struct tchan *c = s->buckets[b], *next;

		for (; c; c = next) {
			next = c->hnext;
			if (c->name[0] != '_' &&
			    now - c->write_ms > s->opts.idle_timeout_ms)
				tserver_chan_close(s, c, "idle");
		}
	}
}

void
tserver_opts_default(struct tserver_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->host = "127.0.0.1";
	o->port = 2939;
	o->base_path = "/";
	o->autocreate = true;
	o->idle_timeout_ms = 5 * 60 * 1000;
	o->sweep_interval_ms = 60 * 1000;
	o->continue_ms = 10 * 1000;
	o->max_segment_bytes = 64u << 20;
	o->max_channels = 100000;
}

int
tserver_create(tserver **out, struct event_base *base,
	       const struct tserver_opts *opts)
{
	struct timeval tv;
	size_t bl;
	tserver *s;
	int rc;

	*out = NULL;
	bl = strlen(opts->base_path);
	if (bl == 0 || opts->base_path[0] != '/' || bl > 200 ||
	    opts->continue_ms <= 0 || opts->sweep_interval_ms <= 0 ||
	    opts->idle_timeout_ms <= 0 || opts->max_segment_bytes == 0 ||
	    opts->max_channels == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->opts = *opts;
	snprintf(s->base_path, sizeof(s->base_path), "%s%s", opts->base_path,
		 opts->base_path[bl - 1] == '/' ? "" : "/");
	s->sweep = event_new(base, -1, EV_PERSIST, tserver_sweep_cb, s);
	if (!s->sweep) {
		rc = -ENOMEM;
		goto err_free;
	}
	tv.tv_sec = opts->sweep_interval_ms / 1000;
	tv.tv_usec = (opts->sweep_interval_ms % 1000) * 1000;
	event_add(s->sweep, &tv);
	rc = hsrv_create(&s->http, base, opts->host, opts->port,
			 tserver_on_request, s);
	if (rc < 0)
		goto err_free_sweep;
	*out = s;
	return 0;

err_free_sweep:
	event_free(s->sweep);
err_free:
	free(s);
	return rc;
}

int
tserver_port(const tserver *s)
{
	return hsrv_port(s->http);
}

unsigned
tserver_channel_count(const tserver *s)
{
	return s->nchans;
}

void
tserver_destroy(tserver **p)
{
	tserver *s = *p;

	if (!s)
		return;
	hsrv_destroy(&s->http);
	for (unsigned b = 0; b < TCHAN_BUCKETS; b++)
		while (s->buckets[b])
			tserver_chan_close(s, s->buckets[b], "shutdown");
	event_free(s->sweep);
	free(s);
	*p = NULL;
}
