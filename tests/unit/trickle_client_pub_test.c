/*
 * Tests of the gateway's trickle publisher and side channels (trickle_pub,
 * trickle_chan) against build/trickle-server: retries, close, interim 100s,
 * the control reader, events and data bodies, queue bounds. Fixtures:
 * trickle_client_util.h; subscriber cases: trickle_client_test.c.
 */
#include "trickle_client_util.h"

/* ---- cases --------------------------------------------------------------- */

/* A segment whose POST sent 0 bytes (server unreachable) is retried after
 * 250 ms and delivered once the server is back. */
static void
test_pub_retries_zero_byte_segment(void)
{
	struct env e;
	char purl[300], url[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { .check = true };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_pub_stats st;
	struct pub_wait pw;
	struct wait_segs ws = { &c, 1 };
	int pport = free_port();
	pid_t px;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/zero", e.url);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d/zero", pport);
	CHECK_OK(trickle_pub_create(&p, e.cv, purl, NULL, NULL, NULL));
	pub_segment(p, 0, 4000);
	env_run_ms(&e, 400); /* refused, retried */
	px = proxy_start(pport, e.port);
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	trickle_pub_get_stats(p, &st);
	printf("    retries=%" PRIu64 " failed=%" PRIu64 "\n", st.retries,
	       st.failed);
	CHECK(st.retries >= 1);
	CHECK_EQ(st.failed, 0);
	so.start_seq = 0;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	CHECK(env_run(&e, c_has_ends, &ws, 5000));
	CHECK_EQ(c.seqs[0], 0);
	CHECK_EQ(c.sizes[0], 4000);
	CHECK_EQ(c.bad, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	proc_stop(px);
	env_fini(&e);
}

/* Closing the publisher DELETEs the channel: the waiting reader gets
 * Lp-Trickle-Closed (clean end); a later reader gets 404. */
static void
test_close_deletes_and_closed_ends(void)
{
	struct env e;
	char url[300];
	trickle_pub *p;
	trickle_sub *s, *s2;
	struct coll c = { .check = true }, c2 = { 0 };
	struct trickle_sub_opts so = sub_opts_test();
	struct pend pe = { 0 };
	struct wait_segs ws = { &c, 2 };
	struct pub_wait pw;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/closing", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, &pend_cbs, &pe));
	pub_segment(p, 0, 3000);
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	so.start_seq = 0;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	env_run_ms(&e, 100);
	pub_segment(p, 1, 3000);
	CHECK(env_run(&e, c_has_ends, &ws, 5000));
	env_run_ms(&e, 100); /* the reader now waits on seq 2 */
	trickle_pub_close(p);
	CHECK_EQ(trickle_pub_segment_begin(p), -EPIPE);
	CHECK(env_run(&e, pe_is_ended, &pe, 5000));
	CHECK_EQ(pe.reason, TRICKLE_END_LOCAL);
	CHECK_EQ(pe.seg_ok, 2);
	CHECK(env_run(&e, c_is_ended, &c, 5000));
	printf("    reader end: %s (%s)\n", trickle_sub_end_str(c.reason), c.text);
	CHECK_EQ(c.reason, TRICKLE_END_CLOSED);
	CHECK(trickle_sub_end_clean(c.reason));
	CHECK_EQ(c.nend, 2);
	CHECK_EQ(c.bad, 0);
	CHECK_OK(trickle_sub_create(&s2, e.cv, url, &so, &coll_cbs, &c2));
	CHECK(env_run(&e, c_is_ended, &c2, 5000));
	CHECK_EQ(c2.reason, TRICKLE_END_NOT_FOUND);
	trickle_sub_destroy(&s);
	trickle_sub_destroy(&s2);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

/* A preconnected POST held open across many interim 100 Continue answers
 * still carries its segment. */
static void
test_pub_survives_repeated_100(void)
{
	static const char *const args[] = { "--continue-interval-ms", "100", NULL };
	struct env e;
	char url[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { .check = true };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_pub_stats st;
	struct pend pe = { 0 };
	struct pub_wait pw;
	struct wait_segs ws = { &c, 2 };

	env_init(&e, args);
	snprintf(url, sizeof(url), "%s/cont", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, &pend_cbs, &pe));
	pub_segment(p, 0, 2000);
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	so.start_seq = 0;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	env_run_ms(&e, 1200); /* the preconnect of seq 1 idles */
	trickle_pub_get_stats(p, &st);
	printf("    interim answers during the idle preconnect: %" PRIu64 "\n",
	       st.interim);
	CHECK(st.interim >= 3);
	pub_segment(p, 1, 2000);
	CHECK(env_run(&e, c_has_ends, &ws, 5000));
	pw.n = 2;
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	trickle_pub_get_stats(p, &st);
	CHECK_EQ(st.segments, 2);
	CHECK_EQ(st.failed, 0);
	CHECK_EQ(pe.seg_fail, 0);
	CHECK_EQ(c.seqs[1], 1);
	CHECK_EQ(c.sizes[1], 2000);
	CHECK_EQ(c.bad, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

struct ctlrec {
	char msgs[8][64];
	int n;
};

static void
ctl_msg(void *arg, const char *json, size_t len)
{
	struct ctlrec *r = arg;

	if (r->n < 8)
		snprintf(r->msgs[r->n], sizeof(r->msgs[0]), "%.*s", (int)len, json);
	r->n++;
}

struct ctl_wait {
	trickle_chan_ctl *c;
	uint64_t total;
};

static bool
ctl_seen(void *arg)
{
	struct ctl_wait *w = arg;
	struct trickle_chan_ctl_stats st;

	trickle_chan_ctl_get_stats(w->c, &st);
	return st.messages + st.keepalives + st.too_big + st.invalid >= w->total;
}

static void
pub_text(trickle_pub *p, const char *t, size_t n)
{
	CHECK_OK(trickle_pub_segment_begin(p));
	CHECK_OK(trickle_pub_write(p, t, n));
	CHECK_OK(trickle_pub_segment_end(p));
}

/* The control reader delivers messages, ignores keep-alives, skips big ones. */
static void
test_control_reader(void)
{
	static const struct trickle_chan_ctl_cbs cbs = { ctl_msg, NULL };
	struct env e;
	char url[300], big[3000];
	trickle_pub *p;
	trickle_chan_ctl *ctl;
	struct ctlrec r = { .n = 0 };
	struct trickle_chan_ctl_stats st;
	struct pub_wait pw;
	struct ctl_wait cw;
	const char *msgs[] = { "{\"a\":1}", "{\"keep\":\"alive\"}", NULL,
			       "{ \"keep\" : \"alive\" }", "not json",
			       "{\"b\":[1,2,3]}" };

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/ctl", e.url);
	memset(big, ' ', sizeof(big));
	big[0] = '[';
	big[sizeof(big) - 1] = ']';
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	pub_text(p, msgs[0], strlen(msgs[0]));
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	CHECK_OK(trickle_chan_ctl_create(&ctl, e.cv, url, NULL, 2048, &cbs, &r));
	cw = (struct ctl_wait){ ctl, 1 };
	CHECK(env_run(&e, ctl_seen, &cw, 5000));
	for (int i = 1; i < 6; i++) {
		if (msgs[i])
			pub_text(p, msgs[i], strlen(msgs[i]));
		else
			pub_text(p, big, sizeof(big));
		cw.total = (uint64_t)i + 1;
		CHECK(env_run(&e, ctl_seen, &cw, 5000));
	}
	trickle_chan_ctl_get_stats(ctl, &st);
	CHECK_EQ(r.n, 2);
	CHECK_STR(r.msgs[0], "{\"a\":1}");
	CHECK_STR(r.msgs[1], "{\"b\":[1,2,3]}");
	CHECK_EQ(st.messages, 2);
	CHECK_EQ(st.keepalives, 2);
	CHECK_EQ(st.too_big, 1);
	CHECK_EQ(st.invalid, 1);
	trickle_chan_ctl_destroy(&ctl);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

/* A 404 on the control channel ends the reader (reported). */
static void
test_control_404(void)
{
	struct env e;
	char url[300];
	trickle_chan_ctl *ctl;
	struct coll c = { 0 };
	const struct trickle_chan_ctl_cbs cbs = { NULL, c_fin };

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/noctl", e.url);
	CHECK_OK(trickle_chan_ctl_create(&ctl, e.cv, url, NULL, 0, &cbs, &c));
	CHECK(env_run(&e, c_is_ended, &c, 5000));
	CHECK_EQ(c.reason, TRICKLE_END_NOT_FOUND);
	trickle_chan_ctl_destroy(&ctl);
	env_fini(&e);
}

struct segtext {
	char body[8][256];
	int n;
	int64_t seq;
};

static void
st_start(void *arg, int64_t seq)
{
	struct segtext *t = arg;

	if (t->n < 8)
		t->body[t->n][0] = 0;
}

static void
st_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	struct segtext *t = arg;
	size_t have;

	if (t->n >= 8)
		return;
	have = strlen(t->body[t->n]);
	snprintf(t->body[t->n] + have, sizeof(t->body[0]) - have, "%.*s",
		 (int)len, (const char *)buf);
}

static void
st_end(void *arg, int64_t seq, bool complete)
{
	struct segtext *t = arg;

	t->n++;
}

static const struct trickle_sub_cbs segtext_cbs = { st_start, st_data, st_end,
						    NULL };

static bool
st_has(void *arg)
{
	struct segtext *t = arg;

	return t->n >= (int)t->seq;
}

/* Events: one JSON per segment; data: a JSON array per batch, then "[]\n". */
static void
test_events_and_data_bodies(void)
{
	struct env e;
	char url[300], durl[300];
	trickle_chan_pub *ev, *da;
	trickle_sub *s, *sd;
	struct segtext t = { .n = 0 }, td = { .n = 0 };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_chan_pub_opts dopts;
	struct trickle_chan_pub_stats st;
	const char *e1 = "{\"event\":{\"type\":\"heartbeat\"},"
			 "\"queue_event_type\":\"stream_heartbeat\"}";
	const char *e2 = "{\"event\":{\"type\":\"x\"}}";

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/s-events", e.url);
	snprintf(durl, sizeof(durl), "%s/s-data", e.url);
	CHECK_OK(trickle_chan_pub_create(&ev, e.cv, TRICKLE_CHAN_EVENTS, url,
					 NULL, NULL, NULL, NULL));
	CHECK_EQ(trickle_chan_pub_send(ev, "not json", 8), -EINVAL);
	CHECK_OK(trickle_chan_pub_send(ev, e1, strlen(e1)));
	env_run_ms(&e, 200);
	so.start_seq = 0;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &segtext_cbs, &t));
	CHECK_OK(trickle_chan_pub_send(ev, e2, strlen(e2)));
	t.seq = 2;
	CHECK(env_run(&e, st_has, &t, 5000));
	CHECK_STR(t.body[0], e1);
	CHECK_STR(t.body[1], e2);
	trickle_chan_pub_get_stats(ev, &st);
	CHECK_EQ(st.sent, 2);

	trickle_chan_pub_opts_default(&dopts, TRICKLE_CHAN_DATA);
	dopts.keepalive_ms = 600;
	CHECK_OK(trickle_chan_pub_create(&da, e.cv, TRICKLE_CHAN_DATA, durl,
					 NULL, &dopts, NULL, NULL));
	CHECK_OK(trickle_chan_pub_send(da, "{\"x\":1}", 7));
	CHECK_OK(trickle_chan_pub_send(da, "plain \"text\"", 12));
	CHECK_OK(trickle_chan_pub_send(da, "[1, 2]", 6));
	env_run_ms(&e, 500); /* one flush (333 ms) */
	CHECK_OK(trickle_sub_create(&sd, e.cv, durl, &so, &segtext_cbs, &td));
	td.seq = 2; /* the batch, then the keep-alive */
	CHECK(env_run(&e, st_has, &td, 5000));
	CHECK_STR(td.body[0], "[{\"x\":1},\"plain \\\"text\\\"\",[1,2]]\n");
	CHECK_STR(td.body[1], "[]\n");
	trickle_chan_pub_get_stats(da, &st);
	CHECK_EQ(st.items, 3);
	CHECK(st.keepalives >= 1);
	trickle_sub_destroy(&s);
	trickle_sub_destroy(&sd);
	trickle_chan_pub_destroy(&ev);
	trickle_chan_pub_destroy(&da);
	env_fini(&e);
}

/* The data queue holds at most max_queued lines: the oldest are evicted. */
static void
test_data_queue_cap(void)
{
	struct env e;
	char url[300], line[32];
	trickle_chan_pub *da;
	struct trickle_chan_pub_opts o;
	struct trickle_chan_pub_stats st;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/cap-data", e.url);
	trickle_chan_pub_opts_default(&o, TRICKLE_CHAN_DATA);
	CHECK_EQ(o.max_queued, 1000);
	CHECK_EQ(o.flush_ms, 333);
	CHECK_EQ(o.keepalive_ms, 25000);
	CHECK_OK(trickle_chan_pub_create(&da, e.cv, TRICKLE_CHAN_DATA, url, NULL,
					 NULL, NULL, NULL));
	for (int i = 0; i < 1500; i++) {
		int n = snprintf(line, sizeof(line), "{\"i\":%d}", i);

		CHECK_OK(trickle_chan_pub_send(da, line, (size_t)n));
	}
	trickle_chan_pub_get_stats(da, &st);
	CHECK_EQ(st.items, 1500);
	CHECK_EQ(st.dropped, 500);
	trickle_chan_pub_destroy(&da);
	env_fini(&e);
}

/* A slow output: segments beyond the queue bound are dropped and counted,
 * memory stays bounded; destroy with transfers in flight is clean. */
static void
test_pub_queue_bound_and_destroy(void)
{
	struct env e;
	char url[300];
	trickle_pub *p;
	struct trickle_pub_opts o;
	struct trickle_pub_stats st;
	uint8_t buf[1024] = { 0 };
	int enobufs = 0;

	env_init(&e, NULL);
	/* Nobody listens here: everything stays queued. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", free_port());
	trickle_pub_opts_default(&o);
	o.max_queued_segments = 3;
	o.max_queued_bytes = 64 * 1024;
	CHECK_OK(trickle_pub_create(&p, e.cv, url, &o, NULL, NULL));
	for (int i = 0; i < 10; i++) {
		int rc = trickle_pub_segment_begin(p);

		if (rc == -ENOBUFS)
			enobufs++;
		for (int k = 0; k < 10; k++)
			trickle_pub_write(p, buf, sizeof(buf));
		trickle_pub_segment_end(p);
	}
	trickle_pub_get_stats(p, &st);
	CHECK_EQ(enobufs, 7);
	CHECK_EQ(st.dropped_queue, 7);
	CHECK(st.queued_bytes <= 64 * 1024);
	env_run_ms(&e, 300);
	trickle_pub_destroy(&p); /* retries and preconnects in flight */
	CHECK_EQ(curlev_active(e.cv), 0);
	env_fini(&e);
}

static const struct th_case cases[] = {
	TH_CASE_T(test_pub_retries_zero_byte_segment, 30),
	TH_CASE_T(test_close_deletes_and_closed_ends, 30),
	TH_CASE_T(test_pub_survives_repeated_100, 30),
	TH_CASE_T(test_control_reader, 30),
	TH_CASE_T(test_control_404, 20),
	TH_CASE_T(test_events_and_data_bodies, 30),
	TH_CASE_T(test_data_queue_cap, 20),
	TH_CASE_T(test_pub_queue_bound_and_destroy, 20),
	TH_END,
};

TH_MAIN(cases)
