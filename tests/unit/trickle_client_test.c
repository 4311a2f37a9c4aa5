/*
 * Tests of the gateway's trickle subscriber (trickle_sub over curlev) against
 * build/trickle-server, started per case on a free port: live bytes, no loss,
 * joins, 470 jumps, outages through build/tests/helpers/tcp_proxy, timeouts,
 * TLS. Publisher and channels: trickle_client_pub_test.c.
 */
#include "trickle_client_util.h"

/* ---- cases --------------------------------------------------------------- */

/* Bytes reach the subscriber while the publisher is still in the segment. */
static void
test_sub_receives_live(void)
{
	struct env e;
	char url[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { .check = true };
	struct trickle_sub_opts so = sub_opts_test();
	uint8_t buf[1000];
	struct pub_wait pw;
	struct wait_bytes wb = { &c, 1000 };
	struct wait_segs ws = { &c, 1 };
	int64_t t0;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/live", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	CHECK_OK(trickle_pub_segment_begin(p));
	fill(buf, sizeof(buf), 0, 0);
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	pw = (struct pub_wait){ p, 1000 };
	CHECK(env_run(&e, pub_has_bytes, &pw, 5000));
	env_run_ms(&e, 50);
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	CHECK(env_run(&e, c_has_bytes, &wb, 5000));
	CHECK_EQ(c.nseg, 1);
	CHECK_EQ(c.seqs[0], 0);
	CHECK_EQ(c.nend, 0); /* the segment is still open */
	fill(buf, sizeof(buf), 0, 1000);
	t0 = clock_now_ns();
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	wb.n = 2000;
	CHECK(env_run(&e, c_has_bytes, &wb, 5000));
	printf("    live chunk delay: %.2f ms\n", (clock_now_ns() - t0) / 1e6);
	CHECK_EQ(c.nend, 0);
	CHECK_OK(trickle_pub_segment_end(p));
	CHECK(env_run(&e, c_has_ends, &ws, 5000));
	CHECK(c.complete[0]);
	CHECK_EQ(c.sizes[0], 2000);
	CHECK_EQ(c.bad, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

struct producer {
	trickle_pub *p;
	struct coll *c;
	int nseg;
	size_t seg_bytes;
	atomic_int go;
	atomic_int done;
	int dropped;
};

/* Encoder-like thread: writes segments in chunks with the thread-safe API. */
static void *
producer_main(void *arg)
{
	struct producer *pr = arg;
	uint8_t buf[4096];

	for (int64_t seq = 0; seq < pr->nseg; seq++) {
		struct trickle_pub_stats st;
		size_t off = 0;

		/*
		 * Test-level backpressure: at most 2 segments ahead of the
		 * publisher's answers and of the reader (the server keeps 5).
		 */
		for (;;) {
			trickle_pub_get_stats(pr->p, &st);
			if ((int64_t)st.segments >= seq - 2 &&
			    __atomic_load_n(&pr->c->nend, __ATOMIC_ACQUIRE) >=
			    seq - 2)
				break;
			usleep(500);
		}
		if (trickle_pub_segment_begin(pr->p) != 0)
			pr->dropped++;
		while (off < pr->seg_bytes) {
			size_t k = pr->seg_bytes - off;

			if (k > sizeof(buf))
				k = sizeof(buf);
			fill(buf, k, seq, off);
			trickle_pub_write(pr->p, buf, k);
			off += k;
			if (seq == 0 && off >= 4096)
				while (!atomic_load(&pr->go))
					usleep(1000);
		}
		trickle_pub_segment_end(pr->p);
	}
	atomic_store(&pr->done, 1);
	return NULL;
}

/* 200 segments from another thread, subscribed: no byte lost, in order. */
static void
test_200_segments_no_loss(void)
{
	struct env e;
	char url[300];
	static struct coll c = { .check = true };
	struct producer pr = { .c = &c, .nseg = 200, .seg_bytes = 20000 };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_pub_stats pst;
	struct trickle_sub_stats sst;
	struct wait_segs ws = { &c, 200 };
	struct pub_wait pw;
	trickle_sub *s;
	pthread_t th;
	int64_t t0;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/many", e.url);
	CHECK_OK(trickle_pub_create(&pr.p, e.cv, url, NULL, NULL, NULL));
	CHECK_OK(pthread_create(&th, NULL, producer_main, &pr));
	pw = (struct pub_wait){ pr.p, 4096 };
	CHECK(env_run(&e, pub_has_bytes, &pw, 5000));
	env_run_ms(&e, 30);
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	{
		struct wait_bytes wb = { &c, 1 };

		/* -2 must resolve to seq 0 before the producer moves on. */
		CHECK(env_run(&e, c_has_bytes, &wb, 5000));
	}
	atomic_store(&pr.go, 1);
	t0 = clock_now_ns();
	env_run(&e, c_has_ends, &ws, 30000);
	pthread_join(th, NULL);
	printf("    200 x 20000 B: %.0f ms\n", (clock_now_ns() - t0) / 1e6);
	trickle_pub_get_stats(pr.p, &pst);
	trickle_sub_get_stats(s, &sst);
	printf("    pub segments=%" PRIu64 " retries=%" PRIu64 " failed=%" PRIu64
	       " dropped=%" PRIu64 "; sub jumps=%" PRIu64 " retries=%" PRIu64 "\n",
	       pst.segments, pst.retries, pst.failed, pst.dropped_queue,
	       sst.jumps, sst.retries);
	printf("    sub seq=%" PRId64 " reissues=%" PRIu64 " nseg=%d nend=%d "
	       "open=%d bytes=%" PRIu64 "\n", sst.seq, sst.reissues, c.nseg,
	       c.nend, c.open, c.bytes);
	for (int i = 0; i < c.nseg && i < MAXSEG; i++)
		if (c.seqs[i] != i) {
			printf("    first gap at %d: seq %" PRId64 "\n", i, c.seqs[i]);
			break;
		}
	CHECK_EQ(pr.dropped, 0);
	CHECK_EQ(c.nend, 200);
	CHECK_EQ(c.bad, 0);
	CHECK_EQ(c.bytes, 200 * 20000);
	for (int i = 0; i < 200; i++) {
		CHECK_EQ(c.seqs[i], i);
		CHECK_EQ(c.sizes[i], 20000);
		CHECK(c.complete[i]);
	}
	CHECK_EQ(sst.jumps, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&pr.p);
	env_fini(&e);
}

/* A reader joining mid-segment gets the same bytes from byte 0. */
static void
test_join_mid_segment(void)
{
	struct env e;
	char url[300];
	trickle_pub *p;
	trickle_sub *a, *b;
	struct coll ca = { 0 }, cb = { 0 };
	struct trickle_sub_opts so = sub_opts_test();
	uint8_t buf[1500];
	struct wait_bytes wa = { &ca, 1500 }, wb = { &cb, 3000 };
	struct wait_segs wsa = { &ca, 1 }, wsb = { &cb, 1 };

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/join", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	CHECK_OK(trickle_pub_segment_begin(p));
	for (int i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (uint8_t)(rand() & 0xff);
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	env_run_ms(&e, 100);
	CHECK_OK(trickle_sub_create(&a, e.cv, url, &so, &coll_cbs, &ca));
	CHECK(env_run(&e, c_has_bytes, &wa, 5000));
	for (int i = 0; i < (int)sizeof(buf); i++)
		buf[i] = (uint8_t)(rand() & 0xff);
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	wa.n = 3000;
	CHECK(env_run(&e, c_has_bytes, &wa, 5000));
	/* b joins now, mid-segment. */
	CHECK_OK(trickle_sub_create(&b, e.cv, url, &so, &coll_cbs, &cb));
	CHECK(env_run(&e, c_has_bytes, &wb, 5000));
	CHECK_OK(trickle_pub_write(p, buf, 100));
	CHECK_OK(trickle_pub_segment_end(p));
	CHECK(env_run(&e, c_has_ends, &wsa, 5000));
	CHECK(env_run(&e, c_has_ends, &wsb, 5000));
	CHECK_EQ(ca.seqs[0], 0);
	CHECK_EQ(cb.seqs[0], 0);
	CHECK_EQ(ca.sizes[0], 3100);
	CHECK_EQ(cb.sizes[0], 3100);
	CHECK_EQ(ca.nkeep, cb.nkeep);
	CHECK(memcmp(ca.keep, cb.keep, ca.nkeep) == 0);
	trickle_sub_destroy(&a);
	trickle_sub_destroy(&b);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

/* A subscriber out of the ring gets 470 and resumes at the live edge. */
static void
test_behind_470_jumps_to_edge(void)
{
	struct env e;
	char url[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { .check = true };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_sub_stats st;
	struct pub_wait pw;
	struct wait_segs ws = { &c, 1 };

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/behind", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	for (int i = 0; i < 10; i++) {
		pub_segment(p, i, 1000);
		pw = (struct pub_wait){ p, (uint64_t)i + 1 };
		CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	}
	so.start_seq = 0; /* long gone: the ring holds 5..9 */
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	env_run_ms(&e, 300);
	pub_segment(p, 10, 1234);
	CHECK(env_run(&e, c_has_ends, &ws, 5000));
	trickle_sub_get_stats(s, &st);
	CHECK(st.jumps >= 1);
	CHECK_EQ(c.seqs[0], 10);
	CHECK_EQ(c.sizes[0], 1234);
	CHECK_EQ(c.bad, 0);
	CHECK(!c.ended);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

/* The server unreachable for ~2 s (reset, then refused): the subscriber
 * retries with backoff and resumes. */
static void
test_reconnect_after_outage(void)
{
	struct env e;
	char url[300], purl[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { .check = true };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_sub_stats st;
	struct pub_wait pw;
	int pport = free_port();
	pid_t px;
	int seq = 0, before;
	int64_t t_down, t_back = 0;

	env_init(&e, NULL);
	px = proxy_start(pport, e.port);
	snprintf(url, sizeof(url), "%s/outage", e.url);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d/outage", pport);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	pub_segment(p, seq++, 5000);
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	so.start_seq = 0;
	so.retry_delay_ms = 200;
	CHECK_OK(trickle_sub_create(&s, e.cv, purl, &so, &coll_cbs, &c));
	for (; seq < 4; seq++) {
		struct wait_segs ws = { &c, seq };

		CHECK(env_run(&e, c_has_ends, &ws, 5000));
		pub_segment(p, seq, 5000);
	}
	env_run_ms(&e, 100);
	before = c.nend;
	proc_stop(px); /* resets every connection */
	t_down = clock_now_ms();
	/* Publishing goes on meanwhile (directly, not through the proxy). */
	while (clock_now_ms() - t_down < 2000) {
		env_run_ms(&e, 400);
		pub_segment(p, seq++, 5000);
	}
	px = proxy_start(pport, e.port);
	t_back = clock_now_ms();
	/* Keep publishing until the reader is back (backoff up to 1.6 s). */
	while (c.nend < before + 2 && clock_now_ms() - t_back < 10000) {
		env_run_ms(&e, 200);
		pub_segment(p, seq++, 5000);
	}
	printf("    back after %" PRId64 " ms\n", clock_now_ms() - t_back);
	CHECK(c.nend >= before + 2);
	trickle_sub_get_stats(s, &st);
	printf("    outage %" PRId64 " ms; retries=%" PRIu64 " jumps=%" PRIu64
	       " segments before=%d after=%d, last seq=%" PRId64 "\n",
	       t_back - t_down, st.retries, st.jumps, before, c.nend, st.seq);
	CHECK(!c.ended);
	CHECK(st.retries >= 1);
	CHECK(c.nend > before);
	CHECK(st.seq > 4);
	CHECK_EQ(c.bad, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	proc_stop(px);
	env_fini(&e);
}

/* A connection reset in the middle of a segment: the reader resumes the
 * same segment and skips what it already handed on (no byte lost or
 * doubled). */
static void
test_resume_mid_segment(void)
{
	struct env e;
	char url[300], purl[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { .check = true };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_sub_stats st;
	struct wait_bytes wb = { &c, 3000 };
	struct wait_segs ws = { &c, 1 };
	uint8_t buf[3000];
	int pport = free_port();
	pid_t px;

	env_init(&e, NULL);
	px = proxy_start(pport, e.port);
	snprintf(url, sizeof(url), "%s/resume", e.url);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d/resume", pport);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	CHECK_OK(trickle_pub_segment_begin(p));
	fill(buf, sizeof(buf), 0, 0);
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	env_run_ms(&e, 100);
	so.retry_delay_ms = 100;
	CHECK_OK(trickle_sub_create(&s, e.cv, purl, &so, &coll_cbs, &c));
	CHECK(env_run(&e, c_has_bytes, &wb, 5000));
	proc_stop(px);
	fill(buf, sizeof(buf), 0, 3000);
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	env_run_ms(&e, 150);
	px = proxy_start(pport, e.port);
	fill(buf, sizeof(buf), 0, 6000);
	CHECK_OK(trickle_pub_write(p, buf, sizeof(buf)));
	CHECK_OK(trickle_pub_segment_end(p));
	CHECK(env_run(&e, c_has_ends, &ws, 10000));
	trickle_sub_get_stats(s, &st);
	printf("    retries=%" PRIu64 "\n", st.retries);
	CHECK(st.retries >= 1);
	CHECK_EQ(c.nseg, 1);
	CHECK(c.complete[0]);
	CHECK_EQ(c.sizes[0], 9000);
	CHECK_EQ(c.bad, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	proc_stop(px);
	env_fini(&e);
}

/* No byte at all: idle requests are re-issued (request timeout), then the
 * input-silence timeout ends the subscription with its reason. */
static void
test_silence_timeout(void)
{
	struct env e;
	char url[300];
	trickle_pub *p;
	trickle_sub *s;
	struct coll c = { 0 };
	struct trickle_sub_opts so = sub_opts_test();
	struct trickle_sub_stats st;
	struct pub_wait pw;
	int64_t t0;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/quiet", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	pub_segment(p, 0, 100); /* creates the channel */
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	so.start_seq = -1; /* waits for seq 1, which never comes */
	so.request_timeout_ms = 1000;
	so.silence_timeout_ms = 2500;
	t0 = clock_now_ms();
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	CHECK(env_run(&e, c_is_ended, &c, 10000));
	trickle_sub_get_stats(s, &st);
	printf("    ended after %" PRId64 " ms: %s (%s), reissues=%" PRIu64 "\n",
	       clock_now_ms() - t0, trickle_sub_end_str(c.reason), c.text,
	       st.reissues);
	CHECK_EQ(c.reason, TRICKLE_END_SILENCE);
	CHECK(!trickle_sub_end_clean(c.reason));
	CHECK(st.reissues >= 1);
	CHECK_EQ(st.retries, 0);
	trickle_sub_destroy(&s);
	trickle_pub_destroy(&p);
	env_fini(&e);
}

struct closer {
	trickle_sub *s;
	int data_calls;
	int other_calls;
};

static void
cl_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	struct closer *k = arg;

	k->data_calls++;
	trickle_sub_close(k->s); /* from inside a libcurl callback */
}

static void
cl_other(void *arg, int64_t seq, bool complete)
{
	((struct closer *)arg)->other_calls++;
}

static void
cl_end(void *arg, enum trickle_end r, const char *text)
{
	((struct closer *)arg)->other_calls++;
}

static bool
cl_has_data(void *arg)
{
	return ((struct closer *)arg)->data_calls > 0;
}

/* Closing a subscriber from its own on_data stops everything: no callback
 * after it, its transfers are removed, destroy later is clean. */
static void
test_close_inside_callback(void)
{
	static const struct trickle_sub_cbs cbs = { NULL, cl_data, cl_other,
						    cl_end };
	struct env e;
	char url[300];
	trickle_pub *p;
	struct closer k = { 0 };
	struct trickle_sub_opts so = sub_opts_test();
	struct pub_wait pw;
	int before;

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/closer", e.url);
	CHECK_OK(trickle_pub_create(&p, e.cv, url, NULL, NULL, NULL));
	pub_segment(p, 0, 100000);
	pw = (struct pub_wait){ p, 1 };
	CHECK(env_run(&e, pub_has_segments, &pw, 5000));
	env_run_ms(&e, 50);
	before = curlev_active(e.cv);
	so.start_seq = 0;
	CHECK_OK(trickle_sub_create(&k.s, e.cv, url, &so, &cbs, &k));
	CHECK(env_run(&e, cl_has_data, &k, 5000));
	pub_segment(p, 1, 1000);
	env_run_ms(&e, 300);
	CHECK_EQ(k.data_calls, 1);
	CHECK_EQ(k.other_calls, 0);
	CHECK_EQ(curlev_active(e.cv), before);
	trickle_sub_destroy(&k.s);
	CHECK(k.s == NULL);
	trickle_pub_destroy(&p);
	CHECK_EQ(curlev_active(e.cv), 0);
	env_fini(&e);
}

/* Starts `openssl s_server -WWW` with a fresh self-signed certificate in
 * dir (serving dir/ch/-2); returns its pid, or -1 when openssl is missing. */
static pid_t
tls_server_start(const char *dir, int port)
{
	char cmd[1024], portarg[32];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "cd %s && mkdir -p ch && printf hello-tls "
		 "> ch/-2 && openssl req -x509 -newkey rsa:2048 -nodes -keyout "
		 "k.pem -out c.pem -days 1 -subj /CN=localhost -addext "
		 "subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(portarg, sizeof(portarg), "127.0.0.1:%d", port);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (chdir(dir) != 0)
			_exit(127);
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execlp("openssl", "openssl", "s_server", "-accept", portarg,
		       "-cert", "c.pem", "-key", "k.pem", "-WWW", "-quiet",
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && !port_open(port); i++)
		usleep(10000);
	CHECK_MSG(port_open(port), "openssl s_server did not start");
	return pid;
}

/* https: a self-signed peer is refused by default, accepted with
 * tls_verify off, and accepted with verification when given its CA. */
static void
test_tls_verify_option(void)
{
	struct env e;
	char url[300], ca[512];
	trickle_sub *s;
	struct trickle_sub_opts so = sub_opts_test();
	struct coll c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	struct wait_bytes wb;
	int port = free_port();
	pid_t tls;

	env_init(&e, NULL);
	tls = tls_server_start(th_tmpdir(), port);
	if (tls < 0) {
		printf("    skipped: no openssl\n");
		env_fini(&e);
		return;
	}
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/ch", port);
	so.max_retries = 1;
	so.retry_delay_ms = 50;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c1));
	CHECK(env_run(&e, c_is_ended, &c1, 10000));
	printf("    verify on: %s (%s)\n", trickle_sub_end_str(c1.reason),
	       c1.text);
	CHECK_EQ(c1.reason, TRICKLE_END_MAX_RETRIES);
	CHECK_EQ(c1.bytes, 0);
	trickle_sub_destroy(&s);

	so.tls_verify = false;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c2));
	wb = (struct wait_bytes){ &c2, 9 };
	CHECK(env_run(&e, c_has_bytes, &wb, 10000));
	CHECK(memcmp(c2.keep, "hello-tls", 9) == 0);
	trickle_sub_destroy(&s);

	so.tls_verify = true;
	snprintf(ca, sizeof(ca), "%s/c.pem", th_tmpdir());
	so.ca_file = ca;
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c3));
	wb = (struct wait_bytes){ &c3, 9 };
	CHECK(env_run(&e, c_has_bytes, &wb, 10000));
	CHECK(memcmp(c3.keep, "hello-tls", 9) == 0);
	trickle_sub_destroy(&s);
	proc_stop(tls);
	env_fini(&e);
}

/* A channel that does not exist: 404 ends the subscription cleanly. */
static void
test_404_ends_cleanly(void)
{
	struct env e;
	char url[300];
	trickle_sub *s;
	struct coll c = { 0 };
	struct trickle_sub_opts so = sub_opts_test();

	env_init(&e, NULL);
	snprintf(url, sizeof(url), "%s/nosuch", e.url);
	CHECK_OK(trickle_sub_create(&s, e.cv, url, &so, &coll_cbs, &c));
	CHECK(env_run(&e, c_is_ended, &c, 5000));
	CHECK_EQ(c.reason, TRICKLE_END_NOT_FOUND);
	CHECK(trickle_sub_end_clean(c.reason));
	CHECK_STR(trickle_sub_end_str(c.reason), "stream_not_found");
	CHECK_EQ(c.nseg, 0);
	trickle_sub_destroy(&s);
	env_fini(&e);
}

static const struct th_case cases[] = {
	TH_CASE_T(test_sub_receives_live, 30),
	TH_CASE_T(test_200_segments_no_loss, 60),
	TH_CASE_T(test_join_mid_segment, 30),
	TH_CASE_T(test_behind_470_jumps_to_edge, 30),
	TH_CASE_T(test_reconnect_after_outage, 40),
	TH_CASE_T(test_resume_mid_segment, 30),
	TH_CASE_T(test_silence_timeout, 30),
	TH_CASE_T(test_close_inside_callback, 20),
	TH_CASE_T(test_tls_verify_option, 30),
	TH_CASE_T(test_404_ends_cleanly, 20),
	TH_END,
};

TH_MAIN(cases)
