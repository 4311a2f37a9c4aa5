/*
 * trickle_chan: control reader (segment bytes gathered up to a cap, parsed,
 * keep-alives dropped), events publisher (a trickle_pub with one segment per
 * event) and data publisher (a line queue flushed as one JSON array per
 * segment on a loop timer, with "[]\n" keep-alives).
 */
#include "trickle_chan.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"

#define CTL_MAX_DEFAULT (10u << 20)

struct trickle_chan_ctl {
	trickle_sub *c_sub;
	struct trickle_chan_ctl_cbs c_cbs;
	void *c_arg;
	size_t c_max;
	char *c_buf;
	size_t c_len, c_cap;
	bool c_over;
	int64_t c_seq;
	struct trickle_chan_ctl_stats c_st;
};

struct trickle_chan_pub {
	trickle_pub *c_pub;
	curlev *c_cv;
	enum trickle_chan_kind c_kind;
	struct trickle_chan_pub_opts c_opts;
	struct trickle_chan_pub_cbs c_cbs;
	void *c_arg;
	struct event *c_ev_flush;
	int64_t c_last_ms;       /* last segment queued (data) */
	bool c_closed;
	pthread_mutex_t c_lock;  /* guards what follows */
	char **c_lines;          /* data: ring of queued items */
	int c_head, c_count;
	bool c_dead;
	struct trickle_chan_pub_stats c_st;
};

/* ---- control reader ---------------------------------------------------- */

static void
ctl_on_start(void *arg, int64_t seq)
{
	trickle_chan_ctl *c = arg;

	c->c_len = 0;
	c->c_over = false;
	c->c_seq = seq;
}

static void
ctl_on_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	trickle_chan_ctl *c = arg;

	if (c->c_over)
		return;
	if (c->c_len + len > c->c_max) {
		c->c_over = true;
		return;
	}
	if (c->c_len + len + 1 > c->c_cap) {
		size_t cap = c->c_cap ? c->c_cap : 4096;
		char *nb;

		while (cap < c->c_len + len + 1)
			cap *= 2;
		nb = realloc(c->c_buf, cap);
		if (!nb) {
			c->c_over = true;
			return;
		}
		c->c_buf = nb;
		c->c_cap = cap;
	}
	memcpy(c->c_buf + c->c_len, buf, len);
	c->c_len += len;
}

/* True for {"keep":"alive"} (any spacing), which the runner ignores. */
static bool
ctl_is_keepalive(json_t *j)
{
	json_t *v;

	if (!json_is_object(j) || json_object_size(j) != 1)
		return false;
	v = json_object_get(j, "keep");
	return json_is_string(v) && strcmp(json_string_value(v), "alive") == 0;
}

static void
ctl_on_end_seg(void *arg, int64_t seq, bool complete)
{
	trickle_chan_ctl *c = arg;
	json_error_t jerr;
	json_t *j;

	if (c->c_over) {
		c->c_st.too_big++;
		log_warn("trickle_chan", "control message skipped: over the "
			 "limit seq=%lld max=%zu", (long long)seq, c->c_max);
		return;
	}
	if (!complete || c->c_len == 0) {
		if (!complete)
			c->c_st.invalid++;
		return;
	}
	c->c_buf[c->c_len] = 0;
	j = json_loadb(c->c_buf, c->c_len, JSON_DECODE_ANY, &jerr);
	if (!j) {
		c->c_st.invalid++;
		log_warn("trickle_chan", "control message is not JSON, skipped "
			 "seq=%lld err=\"%s\"", (long long)seq, jerr.text);
		return;
	}
	if (ctl_is_keepalive(j)) {
		c->c_st.keepalives++;
		json_decref(j);
		return;
	}
	json_decref(j);
	c->c_st.messages++;
	if (c->c_cbs.on_message)
		c->c_cbs.on_message(c->c_arg, c->c_buf, c->c_len);
	if (c->c_cap > 65536) {
		free(c->c_buf);
		c->c_buf = NULL;
		c->c_cap = 0;
	}
	c->c_len = 0;
}

static void
ctl_on_end(void *arg, enum trickle_end reason, const char *text)
{
	trickle_chan_ctl *c = arg;

	if (c->c_cbs.on_end)
		c->c_cbs.on_end(c->c_arg, reason, text);
}

int
trickle_chan_ctl_create(trickle_chan_ctl **out, curlev *cv, const char *url,
			const struct trickle_sub_opts *sub_opts,
			size_t max_bytes,
			const struct trickle_chan_ctl_cbs *cbs, void *arg)
{
	static const struct trickle_sub_cbs scbs = {
		.on_segment_start = ctl_on_start,
		.on_data = ctl_on_data,
		.on_segment_end = ctl_on_end_seg,
		.on_end = ctl_on_end,
	};
	struct trickle_sub_opts so;
	trickle_chan_ctl *c;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (sub_opts) {
		so = *sub_opts;
	} else {
		trickle_sub_opts_default(&so);
		so.silence_timeout_ms = INT_MAX;
	}
	if (cbs)
		c->c_cbs = *cbs;
	c->c_arg = arg;
	c->c_max = max_bytes ? max_bytes : CTL_MAX_DEFAULT;
	rc = trickle_sub_create(&c->c_sub, cv, url, &so, &scbs, c);
	if (rc) {
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void
trickle_chan_ctl_destroy(trickle_chan_ctl **p)
{
	trickle_chan_ctl *c = p ? *p : NULL;

	if (!c)
		return;
	trickle_sub_destroy(&c->c_sub);
	free(c->c_buf);
	free(c);
	*p = NULL;
}

void
trickle_chan_ctl_get_stats(const trickle_chan_ctl *c,
			   struct trickle_chan_ctl_stats *st)
{
	*st = c->c_st;
}

/* ---- events and data publishers ----------------------------------------- */

void
trickle_chan_pub_opts_default(struct trickle_chan_pub_opts *o,
			      enum trickle_chan_kind kind)
{
	memset(o, 0, sizeof(*o));
	o->max_queued = kind == TRICKLE_CHAN_DATA ? 1000 : 64;
	o->flush_ms = 333;
	o->keepalive_ms = 25000;
}

static void
chan_on_seg_done(void *arg, int64_t seq, bool ok, int status, const char *err)
{
	trickle_chan_pub *c = arg;
	uint64_t failures;

	pthread_mutex_lock(&c->c_lock);
	if (ok)
		c->c_st.sent++;
	else
		c->c_st.failures++;
	failures = c->c_st.failures;
	pthread_mutex_unlock(&c->c_lock);
	if (!ok && c->c_cbs.on_error)
		c->c_cbs.on_error(c->c_arg, err, failures);
}

static void
chan_on_end(void *arg, enum trickle_end reason, const char *text)
{
	trickle_chan_pub *c = arg;

	pthread_mutex_lock(&c->c_lock);
	c->c_dead = true;
	pthread_mutex_unlock(&c->c_lock);
	if (c->c_ev_flush)
		evtimer_del(c->c_ev_flush);
	if (c->c_cbs.on_end)
		c->c_cbs.on_end(c->c_arg, reason, text);
}

/* Sends one segment through the publisher; the chan lock serialises. */
static int
chan_send_segment(trickle_chan_pub *c, const char *body, size_t len)
{
	int rc = trickle_pub_segment_begin(c->c_pub);

	if (rc == 0)
		rc = trickle_pub_write(c->c_pub, body, len);
	if (rc == 0)
		rc = trickle_pub_segment_end(c->c_pub);
	return rc;
}

/* Appends s to the growing body; false on OOM. */
static bool
chan_append(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = *cap ? *cap : 1024;
		char *nb;

		while (nc < *len + n + 1)
			nc *= 2;
		nb = realloc(*b, nc);
		if (!nb)
			return false;
		*b = nb;
		*cap = nc;
	}
	memcpy(*b + *len, s, n);
	*len += n;
	(*b)[*len] = 0;
	return true;
}

/* Data: sends the queued lines as one JSON array, or a keep-alive. */
static void
chan_flush(trickle_chan_pub *c, bool force_keepalive)
{
	int64_t now = clock_now_ms();
	char *body = NULL;
	size_t len = 0, cap = 0;
	bool ok = true, keepalive = false;
	int rc;

	pthread_mutex_lock(&c->c_lock);
	if (c->c_count == 0) {
		if (!force_keepalive &&
		    now - c->c_last_ms < c->c_opts.keepalive_ms) {
			pthread_mutex_unlock(&c->c_lock);
			return;
		}
		keepalive = true;
	}
	ok = chan_append(&body, &len, &cap, "[", 1);
	for (int i = 0; i < c->c_count && ok; i++) {
		int k = (c->c_head + i) % c->c_opts.max_queued;

		if (i)
			ok = chan_append(&body, &len, &cap, ",", 1);
		if (ok)
			ok = chan_append(&body, &len, &cap, c->c_lines[k],
					 strlen(c->c_lines[k]));
		free(c->c_lines[k]);
		c->c_lines[k] = NULL;
	}
	c->c_head = 0;
	c->c_count = 0;
	pthread_mutex_unlock(&c->c_lock);
	if (ok)
		ok = chan_append(&body, &len, &cap, "]\n", 2);
	if (!ok) {
		free(body);
		log_warn("trickle_chan", "data batch lost: out of memory");
		return;
	}
	c->c_last_ms = now;
	rc = chan_send_segment(c, body, len);
	free(body);
	pthread_mutex_lock(&c->c_lock);
	if (rc == -ENOBUFS)
		c->c_st.dropped++;
	else if (rc == 0 && keepalive)
		c->c_st.keepalives++;
	pthread_mutex_unlock(&c->c_lock);
}

static void
chan_on_flush(evutil_socket_t fd, short what, void *arg)
{
	chan_flush(arg, false);
}

int
trickle_chan_pub_create(trickle_chan_pub **out, curlev *cv,
			enum trickle_chan_kind kind, const char *url,
			const struct trickle_pub_opts *pub_opts,
			const struct trickle_chan_pub_opts *opts,
			const struct trickle_chan_pub_cbs *cbs, void *arg)
{
	static const struct trickle_pub_cbs pcbs = {
		.on_segment_done = chan_on_seg_done,
		.on_end = chan_on_end,
	};
	struct trickle_pub_opts po;
	trickle_chan_pub *c;
	int rc = -ENOMEM;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (opts)
		c->c_opts = *opts;
	else
		trickle_chan_pub_opts_default(&c->c_opts, kind);
	if (c->c_opts.max_queued < 1 || c->c_opts.flush_ms < 1 ||
	    c->c_opts.keepalive_ms < 1) {
		free(c);
		return -EINVAL;
	}
	if (pub_opts)
		po = *pub_opts;
	else
		trickle_pub_opts_default(&po);
	c->c_kind = kind;
	c->c_cv = cv;
	c->c_arg = arg;
	if (cbs)
		c->c_cbs = *cbs;
	pthread_mutex_init(&c->c_lock, NULL);
	if (kind == TRICKLE_CHAN_DATA) {
		struct timeval tv = { c->c_opts.flush_ms / 1000,
				      (c->c_opts.flush_ms % 1000) * 1000 };

		po.content_type = "application/jsonl";
		c->c_lines = calloc((size_t)c->c_opts.max_queued,
				    sizeof(char *));
		c->c_ev_flush = event_new(curlev_base(cv), -1, EV_PERSIST,
					  chan_on_flush, c);
		if (!c->c_lines || !c->c_ev_flush ||
		    event_add(c->c_ev_flush, &tv) != 0)
			goto err_free;
	} else {
		po.content_type = "application/json";
		po.max_queued_segments = c->c_opts.max_queued;
	}
	c->c_last_ms = clock_now_ms();
	rc = trickle_pub_create(&c->c_pub, cv, url, &po, &pcbs, c);
	if (rc)
		goto err_free;
	*out = c;
	return 0;

err_free:
	if (c->c_ev_flush)
		event_free(c->c_ev_flush);
	free(c->c_lines);
	pthread_mutex_destroy(&c->c_lock);
	free(c);
	return rc;
}

int
trickle_chan_pub_send(trickle_chan_pub *c, const char *text, size_t len)
{
	json_error_t jerr;
	json_t *j;
	char *item;
	int rc = 0;

	j = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	if (c->c_kind == TRICKLE_CHAN_EVENTS) {
		if (!j)
			return -EINVAL;
		json_decref(j);
		pthread_mutex_lock(&c->c_lock);
		if (c->c_dead || c->c_closed) {
			pthread_mutex_unlock(&c->c_lock);
			return -EPIPE;
		}
		rc = chan_send_segment(c, text, len);
		if (rc == 0)
			c->c_st.items++;
		else if (rc == -ENOBUFS)
			c->c_st.dropped++;
		pthread_mutex_unlock(&c->c_lock);
		return rc;
	}
	if (j) {
		item = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(j);
	} else {
		json_t *s = json_stringn(text, len);

		if (!s)
			return -EINVAL; /* not UTF-8 */
		item = json_dumps(s, JSON_ENCODE_ANY);
		json_decref(s);
	}
	if (!item)
		return -ENOMEM;
	pthread_mutex_lock(&c->c_lock);
	if (c->c_dead || c->c_closed) {
		pthread_mutex_unlock(&c->c_lock);
		free(item);
		return -EPIPE;
	}
	if (c->c_count == c->c_opts.max_queued) {
		free(c->c_lines[c->c_head]);
		c->c_lines[c->c_head] = NULL;
		c->c_head = (c->c_head + 1) % c->c_opts.max_queued;
		c->c_count--;
		c->c_st.dropped++;
	}
	c->c_lines[(c->c_head + c->c_count) % c->c_opts.max_queued] = item;
	c->c_count++;
	c->c_st.items++;
	pthread_mutex_unlock(&c->c_lock);
	return 0;
}

void
trickle_chan_pub_close(trickle_chan_pub *c)
{
	bool pending;

	if (!c || c->c_closed)
		return;
	if (c->c_kind == TRICKLE_CHAN_DATA) {
		evtimer_del(c->c_ev_flush);
		pthread_mutex_lock(&c->c_lock);
		pending = c->c_count > 0;
		pthread_mutex_unlock(&c->c_lock);
		if (pending)
			chan_flush(c, false);
	}
	pthread_mutex_lock(&c->c_lock);
	c->c_closed = true;
	pthread_mutex_unlock(&c->c_lock);
	trickle_pub_close(c->c_pub);
}

void
trickle_chan_pub_destroy(trickle_chan_pub **p)
{
	trickle_chan_pub *c = p ? *p : NULL;

	if (!c)
		return;
	trickle_pub_destroy(&c->c_pub);
	if (c->c_ev_flush)
		event_free(c->c_ev_flush);
	if (c->c_lines) {
		for (int i = 0; i < c->c_opts.max_queued; i++)
			free(c->c_lines[i]);
		free(c->c_lines);
	}
	pthread_mutex_destroy(&c->c_lock);
	free(c);
	*p = NULL;
}

void
trickle_chan_pub_get_stats(trickle_chan_pub *c,
			   struct trickle_chan_pub_stats *st)
{
	pthread_mutex_lock(&c->c_lock);
	*st = c->c_st;
	pthread_mutex_unlock(&c->c_lock);
}
