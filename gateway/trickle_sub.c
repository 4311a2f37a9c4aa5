/*
 * trickle_sub: the subscriber state machine. At most two GETs: the current
 * one (whose bytes go to on_data) and the preconnect for the next seq, whose
 * body is held by libcurl (CURL_WRITEFUNC_PAUSE) until it becomes current.
 * Ends (404, Closed, retries spent, silence) go through one deferred event.
 */
#include "trickle_sub.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "log.h"

struct sub_xfer {
	trickle_sub *x_sub;
	CURL *x_easy;
	int64_t x_seq;          /* requested seq (may be -1/-2) */
	int x_status;           /* status of the last status line */
	int64_t x_hdr_seq;      /* Lp-Trickle-Seq, or INT64_MIN */
	int64_t x_hdr_latest;   /* Lp-Trickle-Latest, or INT64_MIN */
	bool x_hdr_closed;      /* Lp-Trickle-Closed seen */
	bool x_headers_done;    /* final (non-1xx) headers complete */
	bool x_announced;       /* headers handled as the current transfer */
	bool x_paused;          /* body held by libcurl (preconnect) */
	bool x_done;            /* transfer finished (x_res valid) */
	CURLcode x_res;
	uint64_t x_skip;        /* body bytes to drop (resume after a cut) */
	uint64_t x_bytes;       /* body bytes received, skipped ones included */
	char x_err[CURL_ERROR_SIZE];
};

struct trickle_sub {
	curlev *s_cv;
	char *s_url;
	char *s_name;
	char *s_ca;
	struct trickle_sub_opts s_opts;
	struct trickle_sub_cbs s_cbs;
	void *s_arg;
	struct sub_xfer *s_cur;
	struct sub_xfer *s_pre;
	struct event *s_ev_retry;
	struct event *s_ev_silence;
	struct event *s_ev_end;
	struct event *s_ev_reap;
	int64_t s_retry_seq;
	int s_fails;            /* consecutive failures */
	bool s_seg_open;        /* on_segment_start called, end not yet */
	int64_t s_seg_seq;
	uint64_t s_seg_bytes;   /* bytes of the open segment handed on */
	int64_t s_last_ms;      /* last body byte (or start) */
	bool s_closed;
	bool s_ending;
	enum trickle_end s_end;
	char s_end_text[256];
	struct trickle_sub_stats s_st;
};

static void sub_start_current(trickle_sub *s, int64_t seq, uint64_t skip);
static void sub_handle_done(trickle_sub *s, struct sub_xfer *x);
static void sub_on_current_headers(trickle_sub *s, struct sub_xfer *x);
static struct sub_xfer *sub_xfer_new(trickle_sub *s, int64_t seq);

const char *
trickle_sub_end_str(enum trickle_end r)
{
	switch (r) {
	case TRICKLE_END_NONE: return "none";
	case TRICKLE_END_CLOSED: return "closed";
	case TRICKLE_END_NOT_FOUND: return "stream_not_found";
	case TRICKLE_END_MAX_RETRIES: return "max_retries_exceeded";
	case TRICKLE_END_SILENCE: return "input_silence";
	case TRICKLE_END_LOCAL: return "local_close";
	case TRICKLE_END_ERROR: return "error";
	}
	return "unknown";
}

bool
trickle_sub_end_clean(enum trickle_end r)
{
	return r == TRICKLE_END_CLOSED || r == TRICKLE_END_NOT_FOUND ||
	       r == TRICKLE_END_LOCAL;
}

void
trickle_sub_opts_default(struct trickle_sub_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->start_seq = -2;
	o->max_retries = 5;
	o->retry_delay_ms = 300;
	o->max_backoff_ms = 5000;
	o->request_timeout_ms = 30000;
	o->silence_timeout_ms = 60000;
	o->connect_timeout_ms = 5000;
	o->tls_verify = true;
}

static const char *
sub_name(const trickle_sub *s)
{
	return s->s_name ? s->s_name : s->s_url;
}

/* Frees a transfer that is no longer (or never was) on the multi. */
static void
sub_xfer_free(struct sub_xfer *x)
{
	if (!x)
		return;
	curl_easy_cleanup(x->x_easy);
	free(x);
}

static void
sub_xfer_drop(trickle_sub *s, struct sub_xfer *x)
{
	if (!x)
		return;
	if (!x->x_done)
		curlev_remove(s->s_cv, x->x_easy);
	sub_xfer_free(x);
}

/* Parses a decimal header value; INT64_MIN when absent or bad. */
static int64_t
sub_parse_i64(const char *v, size_t n)
{
	char buf[32];
	char *end;
	long long r;

	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (!n || n >= sizeof(buf))
		return INT64_MIN;
	memcpy(buf, v, n);
	buf[n] = 0;
	errno = 0;
	r = strtoll(buf, &end, 10);
	if (errno || *end)
		return INT64_MIN;
	return r;
}

/* The 3-digit code after a status line's first space; 0 when bad. */
static int
sub_parse_status(const char *p, size_t n)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n && i < 3 && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10 + (p[i] - '0');
	return i == 3 ? v : 0;
}

static bool
sub_hdr_is(const char *line, size_t n, const char *name, const char **val,
	   size_t *vlen)
{
	size_t k = strlen(name);

	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return false;
	*val = line + k + 1;
	*vlen = n - k - 1;
	return true;
}

/* Ends the open segment, if any. */
static void
sub_segment_close(trickle_sub *s, bool complete)
{
	if (!s->s_seg_open)
		return;
	s->s_seg_open = false;
	if (complete)
		s->s_st.segments++;
	if (s->s_cbs.on_segment_end)
		s->s_cbs.on_segment_end(s->s_arg, s->s_seg_seq, complete);
}

static void
sub_finish(trickle_sub *s, enum trickle_end r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the end reason and defers the teardown to s_ev_end. */
static void
sub_finish(trickle_sub *s, enum trickle_end r, const char *fmt, ...)
{
	va_list ap;

	if (s->s_ending || s->s_closed)
		return;
	s->s_ending = true;
	s->s_end = r;
	s->s_st.end = r;
	va_start(ap, fmt);
	vsnprintf(s->s_end_text, sizeof(s->s_end_text), fmt, ap);
	va_end(ap);
	event_active(s->s_ev_end, 0, 0);
}

static size_t
sub_on_header(char *line, size_t size, size_t n, void *arg)
{
	struct sub_xfer *x = arg;
	trickle_sub *s = x->x_sub;
	const char *v;
	size_t vn;

	n *= size;
	if (s->s_closed)
		return 0;
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', n);

		x->x_status = sp ? sub_parse_status(sp + 1, (size_t)(line + n - sp - 1)) : 0;
		x->x_hdr_seq = INT64_MIN;
		x->x_hdr_latest = INT64_MIN;
		x->x_hdr_closed = false;
		return n;
	}
	if (sub_hdr_is(line, n, "Lp-Trickle-Seq", &v, &vn))
		x->x_hdr_seq = sub_parse_i64(v, vn);
	else if (sub_hdr_is(line, n, "Lp-Trickle-Latest", &v, &vn))
		x->x_hdr_latest = sub_parse_i64(v, vn);
	else if (sub_hdr_is(line, n, "Lp-Trickle-Closed", &v, &vn))
		x->x_hdr_closed = true;
	else if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n')) {
		if (x->x_status >= 200) {
			x->x_headers_done = true;
			if (x == s->s_cur)
				sub_on_current_headers(s, x);
		}
	}
	return n;
}

/* The seq a transfer serves: the header if given, else what was asked. */
static int64_t
sub_xfer_seq(const struct sub_xfer *x)
{
	return x->x_hdr_seq != INT64_MIN ? x->x_hdr_seq : x->x_seq;
}

/*
 * Headers of the current transfer are complete: announce the segment (or
 * resume the one that was cut) and preconnect the next seq.
 */
static void
sub_on_current_headers(trickle_sub *s, struct sub_xfer *x)
{
	int64_t seq;

	if (x->x_announced || x->x_status != 200 || x->x_hdr_closed)
		return;
	x->x_announced = true;
	seq = sub_xfer_seq(x);
	if (s->s_seg_open && s->s_seg_seq == seq) {
		x->x_skip = s->s_seg_bytes;
	} else {
		sub_segment_close(s, false);
		s->s_seg_open = true;
		s->s_seg_seq = seq;
		s->s_seg_bytes = 0;
		s->s_st.seq = seq;
		if (s->s_cbs.on_segment_start)
			s->s_cbs.on_segment_start(s->s_arg, seq);
		if (s->s_closed)
			return;
	}
	if (seq >= 0 && !s->s_pre && !s->s_ending)
		s->s_pre = sub_xfer_new(s, seq + 1);
}

static size_t
sub_on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct sub_xfer *x = arg;
	trickle_sub *s = x->x_sub;
	uint64_t skip;

	n *= size;
	if (s->s_closed)
		return 0;
	if (x->x_status != 200)
		return n; /* error text of a 4xx/5xx: discarded */
	if (x != s->s_cur || !x->x_announced) {
		x->x_paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	s->s_last_ms = clock_now_ms();
	x->x_bytes += n;
	if (x->x_skip >= n) {
		x->x_skip -= n;
		return n;
	}
	skip = x->x_skip;
	x->x_skip = 0;
	s->s_fails = 0;
	s->s_seg_bytes += n - skip;
	s->s_st.bytes_in += n - skip;
	if (s->s_cbs.on_data)
		s->s_cbs.on_data(s->s_arg, s->s_seg_seq,
				 (const uint8_t *)buf + skip, n - skip);
	return s->s_closed ? 0 : n;
}

static void
sub_on_xfer_done(CURL *easy, CURLcode res, void *arg)
{
	struct sub_xfer *x = arg;
	trickle_sub *s = x->x_sub;
	long code = 0;

	x->x_done = true;
	x->x_res = res;
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (code)
		x->x_status = (int)code;
	if (s->s_closed || s->s_ending) {
		if (x == s->s_cur)
			s->s_cur = NULL;
		if (x == s->s_pre)
			s->s_pre = NULL;
		sub_xfer_free(x);
		return;
	}
	if (x == s->s_cur)
		sub_handle_done(s, x);
	/* A finished preconnect waits for its promotion. */
}

static struct sub_xfer *
sub_xfer_new(trickle_sub *s, int64_t seq)
{
	struct sub_xfer *x = calloc(1, sizeof(*x));
	char url[2048];
	long idle_s;

	if (!x)
		goto err;
	x->x_sub = s;
	x->x_seq = seq;
	x->x_hdr_seq = INT64_MIN;
	x->x_hdr_latest = INT64_MIN;
	x->x_easy = curl_easy_init();
	if (!x->x_easy)
		goto err_free;
	snprintf(url, sizeof(url), "%s/%" PRId64, s->s_url, seq);
	idle_s = (s->s_opts.request_timeout_ms + 999) / 1000;
	curl_easy_setopt(x->x_easy, CURLOPT_URL, url);
	curl_easy_setopt(x->x_easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->x_easy, CURLOPT_HEADERFUNCTION, sub_on_header);
	curl_easy_setopt(x->x_easy, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->x_easy, CURLOPT_WRITEFUNCTION, sub_on_body);
	curl_easy_setopt(x->x_easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->x_easy, CURLOPT_ERRORBUFFER, x->x_err);
	curl_easy_setopt(x->x_easy, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)s->s_opts.connect_timeout_ms);
	curl_easy_setopt(x->x_easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(x->x_easy, CURLOPT_LOW_SPEED_TIME, idle_s);
	curl_easy_setopt(x->x_easy, CURLOPT_SSL_VERIFYPEER,
			 s->s_opts.tls_verify ? 1L : 0L);
	curl_easy_setopt(x->x_easy, CURLOPT_SSL_VERIFYHOST,
			 s->s_opts.tls_verify ? 2L : 0L);
	if (s->s_ca)
		curl_easy_setopt(x->x_easy, CURLOPT_CAINFO, s->s_ca);
	if (curlev_add(s->s_cv, x->x_easy, sub_on_xfer_done, x) != 0)
		goto err_easy;
	return x;

err_easy:
	curl_easy_cleanup(x->x_easy);
err_free:
	free(x);
err:
	sub_finish(s, TRICKLE_END_ERROR,
		   "cannot start a request for seq %" PRId64, seq);
	return NULL;
}

/*
 * Makes `seq` the current transfer: promotes the preconnect when it asked for
 * that seq (releasing the body libcurl held), otherwise opens a new GET.
 */
static void
sub_start_current(trickle_sub *s, int64_t seq, uint64_t skip)
{
	struct sub_xfer *x = NULL;

	if (s->s_pre && s->s_pre->x_seq == seq) {
		x = s->s_pre;
		s->s_pre = NULL;
	} else if (s->s_pre && (seq < 0 || s->s_pre->x_seq != seq + 1)) {
		/* A preconnect for seq+1 stays: it is still the next one. */
		sub_xfer_drop(s, s->s_pre);
		s->s_pre = NULL;
	}
	if (!x) {
		x = sub_xfer_new(s, seq);
		if (!x)
			return;
	}
	s->s_cur = x;
	if (x->x_headers_done)
		sub_on_current_headers(s, x);
	if (s->s_closed || s->s_ending)
		return;
	if (x->x_done) {
		sub_handle_done(s, x);
		return;
	}
	if (x->x_paused) {
		x->x_paused = false;
		curl_easy_pause(x->x_easy, CURLPAUSE_CONT);
	}
}

static void
sub_on_retry(evutil_socket_t fd, short what, void *arg)
{
	trickle_sub *s = arg;
	uint64_t skip = 0;

	if (s->s_seg_open && s->s_seg_seq == s->s_retry_seq)
		skip = s->s_seg_bytes;
	sub_start_current(s, s->s_retry_seq, skip);
}

/* Schedules a new attempt at seq after delay_ms (0: at once). */
static void
sub_retry_at(trickle_sub *s, int64_t seq, int delay_ms)
{
	struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };

	s->s_retry_seq = seq;
	evtimer_add(s->s_ev_retry, &tv);
}

/* Counts a failure; gives up past the budget, else retries with backoff. */
static void
sub_fail(trickle_sub *s, int64_t seq, const char *what)
{
	int64_t max = s->s_opts.max_backoff_ms;
	int64_t delay;

	s->s_fails++;
	if (s->s_fails > s->s_opts.max_retries) {
		sub_finish(s, TRICKLE_END_MAX_RETRIES,
			   "gave up after %d attempts seq=%" PRId64 ": %s",
			   s->s_fails, seq, what);
		return;
	}
	s->s_st.retries++;
	delay = s->s_opts.retry_delay_ms;
	for (int i = 1; i < s->s_fails && delay < max; i++)
		delay *= 2;
	if (delay > max)
		delay = max;
	s->s_st.backoff_ms = (uint32_t)delay;
	log_debug("trickle_sub", "retry name=%s seq=%" PRId64 " attempt=%d "
		  "delay_ms=%" PRId64 " why=\"%s\"", sub_name(s), seq,
		  s->s_fails, delay, what);
	sub_retry_at(s, seq, (int)delay);
}

/* The current transfer finished: decide what comes next. */
static void
sub_handle_done(trickle_sub *s, struct sub_xfer *x)
{
	int64_t seq = sub_xfer_seq(x);
	int64_t next;
	char why[CURL_ERROR_SIZE + 64];

	s->s_cur = NULL;
	if (x->x_res == CURLE_OK && x->x_status == 200) {
		bool closed = x->x_hdr_closed;
		bool announced = x->x_announced;

		sub_xfer_free(x);
		if (closed) {
			sub_segment_close(s, true);
			sub_finish(s, TRICKLE_END_CLOSED,
				   "channel closed (Lp-Trickle-Closed) seq=%"
				   PRId64, seq);
			return;
		}
		if (announced)
			sub_segment_close(s, true);
		s->s_fails = 0;
		next = seq >= 0 ? seq + 1 : -1;
		sub_start_current(s, next, 0);
		return;
	}
	if (x->x_res == CURLE_OK && x->x_status == 404) {
		sub_xfer_free(x);
		sub_segment_close(s, false);
		sub_finish(s, TRICKLE_END_NOT_FOUND,
			   "stream not found (404) seq=%" PRId64, seq);
		return;
	}
	if (x->x_res == CURLE_OK && x->x_status == 470) {
		next = x->x_hdr_latest != INT64_MIN && x->x_hdr_latest >= 0 ?
		       x->x_hdr_latest : -1;
		sub_xfer_free(x);
		sub_segment_close(s, false);
		sub_xfer_drop(s, s->s_pre);
		s->s_pre = NULL;
		s->s_st.jumps++;
		s->s_fails++;
		if (s->s_fails > s->s_opts.max_retries) {
			sub_finish(s, TRICKLE_END_MAX_RETRIES,
				   "470 answered %d times in a row "
				   "seq=%" PRId64,
				   s->s_fails, seq);
			return;
		}
		log_debug("trickle_sub", "behind, jumping to the live edge "
			  "name=%s seq=%" PRId64 " latest=%" PRId64,
			  sub_name(s), seq, next);
		sub_retry_at(s, next, 0);
		return;
	}
	if (x->x_res == CURLE_OPERATION_TIMEDOUT && x->x_bytes == 0 &&
	    x->x_status == 0) {
		/* A wait for a first byte timed out: ask again, no failure. */
		sub_xfer_free(x);
		s->s_st.reissues++;
		sub_retry_at(s, seq, 0);
		return;
	}
	if (x->x_res != CURLE_OK)
		snprintf(why, sizeof(why), "%s: %s",
			 curl_easy_strerror(x->x_res),
			 x->x_err[0] ? x->x_err : "-");
	else
		snprintf(why, sizeof(why), "HTTP status %d", x->x_status);
	sub_xfer_free(x);
	sub_fail(s, seq, why);
}

static void
sub_on_silence(evutil_socket_t fd, short what, void *arg)
{
	trickle_sub *s = arg;
	int64_t idle = clock_now_ms() - s->s_last_ms;
	int64_t left = s->s_opts.silence_timeout_ms - idle;
	struct timeval tv;

	if (left <= 0) {
		sub_finish(s, TRICKLE_END_SILENCE,
			   "no input for %" PRId64 " ms", idle);
		return;
	}
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	evtimer_add(s->s_ev_silence, &tv);
}

/* Removes every transfer and timer; outside libcurl callbacks only. */
static void
sub_stop_all(trickle_sub *s)
{
	evtimer_del(s->s_ev_retry);
	evtimer_del(s->s_ev_silence);
	sub_xfer_drop(s, s->s_cur);
	s->s_cur = NULL;
	sub_xfer_drop(s, s->s_pre);
	s->s_pre = NULL;
}

static void
sub_on_end(evutil_socket_t fd, short what, void *arg)
{
	trickle_sub *s = arg;

	if (s->s_closed)
		return;
	sub_stop_all(s);
	sub_segment_close(s, false);
	if (s->s_closed)
		return;
	s->s_closed = true;
	if (trickle_sub_end_clean(s->s_end))
		log_info("trickle_sub", "subscription ended name=%s reason=%s "
			 "text=\"%s\"", sub_name(s),
			 trickle_sub_end_str(s->s_end),
			 s->s_end_text);
	else
		log_warn("trickle_sub", "subscription failed name=%s reason=%s "
			 "text=\"%s\"", sub_name(s),
			 trickle_sub_end_str(s->s_end),
			 s->s_end_text);
	if (s->s_cbs.on_end)
		s->s_cbs.on_end(s->s_arg, s->s_end, s->s_end_text);
	/* s may be freed here. */
}

static void
sub_on_reap(evutil_socket_t fd, short what, void *arg)
{
	sub_stop_all(arg);
}

int
trickle_sub_create(trickle_sub **out, curlev *cv, const char *channel_url,
		   const struct trickle_sub_opts *opts,
		   const struct trickle_sub_cbs *cbs, void *arg)
{
	struct event_base *base = curlev_base(cv);
	trickle_sub *s;
	size_t n;

	if (!channel_url || (strncmp(channel_url, "http://", 7) != 0 &&
			     strncmp(channel_url, "https://", 8) != 0))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (opts)
		s->s_opts = *opts;
	else
		trickle_sub_opts_default(&s->s_opts);
	if (s->s_opts.max_retries < 0 || s->s_opts.request_timeout_ms <= 0 ||
	    s->s_opts.silence_timeout_ms <= 0 || s->s_opts.retry_delay_ms < 0 ||
	    s->s_opts.max_backoff_ms <= 0 ||
	    s->s_opts.connect_timeout_ms <= 0 || s->s_opts.start_seq < -2) {
		free(s);
		return -EINVAL;
	}
	if (cbs)
		s->s_cbs = *cbs;
	s->s_arg = arg;
	s->s_cv = cv;
	s->s_st.seq = -1;
	s->s_url = strdup(channel_url);
	if (!s->s_url)
		goto err_free;
	n = strlen(s->s_url);
	while (n > 0 && s->s_url[n - 1] == '/')
		s->s_url[--n] = 0;
	if (s->s_opts.name && !(s->s_name = strdup(s->s_opts.name)))
		goto err_free;
	if (s->s_opts.ca_file && !(s->s_ca = strdup(s->s_opts.ca_file)))
		goto err_free;
	s->s_opts.name = s->s_name;
	s->s_opts.ca_file = s->s_ca;
	s->s_ev_retry = evtimer_new(base, sub_on_retry, s);
	s->s_ev_silence = evtimer_new(base, sub_on_silence, s);
	s->s_ev_end = event_new(base, -1, 0, sub_on_end, s);
	s->s_ev_reap = event_new(base, -1, 0, sub_on_reap, s);
	if (!s->s_ev_retry || !s->s_ev_silence || !s->s_ev_end || !s->s_ev_reap)
		goto err_free;
	s->s_last_ms = clock_now_ms();
	sub_on_silence(-1, 0, s);
	sub_start_current(s, s->s_opts.start_seq, 0);
	*out = s;
	return 0;

err_free:
	if (s->s_ev_retry)
		event_free(s->s_ev_retry);
	if (s->s_ev_silence)
		event_free(s->s_ev_silence);
	if (s->s_ev_end)
		event_free(s->s_ev_end);
	if (s->s_ev_reap)
		event_free(s->s_ev_reap);
	free(s->s_ca);
	free(s->s_name);
	free(s->s_url);
	free(s);
	return -ENOMEM;
}

void
trickle_sub_close(trickle_sub *s)
{
	if (!s || s->s_closed)
		return;
	s->s_closed = true;
	evtimer_del(s->s_ev_retry);
	evtimer_del(s->s_ev_silence);
	event_del(s->s_ev_end);
	if (curlev_in_callback(s->s_cv))
		event_active(s->s_ev_reap, 0, 0);
	else
		sub_stop_all(s);
}

void
trickle_sub_destroy(trickle_sub **p)
{
	trickle_sub *s = p ? *p : NULL;

	if (!s)
		return;
	s->s_closed = true;
	sub_stop_all(s);
	event_free(s->s_ev_retry);
	event_free(s->s_ev_silence);
	event_free(s->s_ev_end);
	event_free(s->s_ev_reap);
	free(s->s_ca);
	free(s->s_name);
	free(s->s_url);
	free(s);
	*p = NULL;
}

void
trickle_sub_get_stats(const trickle_sub *s, struct trickle_sub_stats *st)
{
	*st = s->s_st;
}
