/*
 * Tests of the gateway's trickle client (curlev, trickle_sub, trickle_pub,
 * trickle_chan) against build/trickle-server, started per case on a free
 * port; outages go through build/tests/helpers/tcp_proxy.
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "gateway/curlev.h"
#include "gateway/trickle_chan.h"
#include "gateway/trickle_pub.h"
#include "gateway/trickle_sub.h"
#include "log.h"

/* ---- fixtures ----------------------------------------------------------- */

struct env {
	struct event_base *base;
	struct event *tick;
	curlev *cv;
	pid_t srv;
	int port;
	char url[256];
};

static void
env_tick(evutil_socket_t fd, short what, void *arg)
{
}

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(fd >= 0);
	CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool
port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Starts build/trickle-server on a free port; extra: NULL-ended args. */
static pid_t
srv_start(int *port, const char *const *extra)
{
	char path[512], pfile[512], buf[32];
	const char *argv[32];
	int n = 0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/trickle-server", th_build_dir());
	snprintf(pfile, sizeof(pfile), "%s/port.%d", th_tmpdir(), rand());
	argv[n++] = path;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--port-file";
	argv[n++] = pfile;
	argv[n++] = "--log-level";
	argv[n++] = getenv("CT_TEST_DEBUG") ? "debug" : "error";
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execv(path, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(pfile, "r");

		if (f) {
			int ok = fgets(buf, sizeof(buf), f) != NULL;

			fclose(f);
			if (ok && atoi(buf) > 0 && port_open(atoi(buf))) {
				*port = atoi(buf);
				return pid;
			}
		}
		CHECK_MSG(waitpid(pid, NULL, WNOHANG) == 0,
			  "trickle-server exited at start (%s)", path);
		usleep(10000);
	}
	CHECK_MSG(0, "trickle-server did not start");
	return -1;
}

static void
proc_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static pid_t
proxy_start(int listen_port, int target_port)
{
	char path[512], lp[16], tp[16];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/tests/helpers/tcp_proxy", th_build_dir());
	snprintf(lp, sizeof(lp), "%d", listen_port);
	snprintf(tp, sizeof(tp), "%d", target_port);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(path, path, lp, tp, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300 && !port_open(listen_port); i++)
		usleep(10000);
	CHECK_MSG(port_open(listen_port), "tcp_proxy did not start (%s)", path);
	return pid;
}

static void
env_init(struct env *e, const char *const *srv_args)
{
	struct timeval tv = { 0, 5000 };

	memset(e, 0, sizeof(*e));
	log_set_level(getenv("CT_TEST_DEBUG") ? LOG_DEBUG : LOG_ERROR);
	e->srv = srv_start(&e->port, srv_args);
	e->base = event_base_new();
	CHECK(e->base);
	e->tick = event_new(e->base, -1, EV_PERSIST, env_tick, NULL);
	event_add(e->tick, &tv);
	CHECK_OK(curlev_create(&e->cv, e->base));
	snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%d", e->port);
}

static void
env_fini(struct env *e)
{
	curlev_destroy(&e->cv);
	event_free(e->tick);
	event_base_free(e->base);
	proc_stop(e->srv);
}

/* Runs the loop until cond(arg) or timeout_ms; returns cond(arg). */
static bool
env_run(struct env *e, bool (*cond)(void *), void *arg, int timeout_ms)
{
	int64_t end = clock_now_ms() + timeout_ms;

	while (!(cond && cond(arg)) && clock_now_ms() < end)
		event_base_loop(e->base, EVLOOP_ONCE);
	return cond ? cond(arg) : true;
}

static void
env_run_ms(struct env *e, int ms)
{
	env_run(e, NULL, NULL, ms);
}

/* Byte `off` of segment `seq` in every generated segment. */
static uint8_t
pat(int64_t seq, uint64_t off)
{
	return (uint8_t)(seq * 131 + off * 7 + (off >> 8));
}

static void
fill(uint8_t *buf, size_t n, int64_t seq, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(seq, off + i);
}

/* ---- subscriber collector ----------------------------------------------- */

#define MAXSEG 512

struct coll {
	int64_t seqs[MAXSEG];
	uint64_t sizes[MAXSEG];
	bool complete[MAXSEG];
	int nseg;         /* segments started */
	int nend;         /* segments ended */
	bool open;
	uint64_t off;     /* bytes of the open segment */
	uint64_t bytes;
	uint64_t bad;     /* bytes not matching pat() */
	bool check;       /* compare with pat() */
	uint8_t keep[4096];
	size_t nkeep;     /* first bytes of the last segment (raw) */
	bool ended;
	enum trickle_end reason;
	char text[256];
};

static void
c_start(void *arg, int64_t seq)
{
	struct coll *c = arg;

	if (c->nseg < MAXSEG) {
		c->seqs[c->nseg] = seq;
		c->sizes[c->nseg] = 0;
	}
	c->nseg++;
	c->open = true;
	c->off = 0;
	c->nkeep = 0;
}

static void
c_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	struct coll *c = arg;

	if (c->check)
		for (size_t i = 0; i < len; i++)
			if (buf[i] != pat(seq, c->off + i))
				c->bad++;
	for (size_t i = 0; i < len && c->nkeep < sizeof(c->keep); i++)
		c->keep[c->nkeep++] = buf[i];
	c->off += len;
	c->bytes += len;
	if (c->nseg <= MAXSEG)
		c->sizes[c->nseg - 1] += len;
}

static void
c_end(void *arg, int64_t seq, bool complete)
{
	struct coll *c = arg;

	if (c->nseg <= MAXSEG)
		c->complete[c->nseg - 1] = complete;
	__atomic_add_fetch(&c->nend, 1, __ATOMIC_RELEASE);
	c->open = false;
}

static void
c_fin(void *arg, enum trickle_end r, const char *text)
{
	struct coll *c = arg;

	c->ended = true;
	c->reason = r;
	snprintf(c->text, sizeof(c->text), "%s", text);
}

static const struct trickle_sub_cbs coll_cbs = {
	c_start, c_data, c_end, c_fin,
};

static bool
c_is_ended(void *arg)
{
	return ((struct coll *)arg)->ended;
}

struct wait_bytes {
	struct coll *c;
	uint64_t n;
};

static bool
c_has_bytes(void *arg)
{
	struct wait_bytes *w = arg;

	return w->c->bytes >= w->n;
}

struct wait_segs {
	struct coll *c;
	int n;
};

static bool
c_has_ends(void *arg)
{
	struct wait_segs *w = arg;

	return w->c->nend >= w->n;
}

static struct trickle_sub_opts
sub_opts_test(void)
{
	struct trickle_sub_opts o;

	trickle_sub_opts_default(&o);
	o.retry_delay_ms = 100;
	o.request_timeout_ms = 5000;
	o.silence_timeout_ms = 20000;
	return o;
}

/* Publishes one whole segment from the loop thread. */
static void
pub_segment(trickle_pub *p, int64_t seq, size_t n)
{
	uint8_t buf[8192];
	size_t off = 0;

	CHECK_OK(trickle_pub_segment_begin(p));
	while (off < n) {
		size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);

		fill(buf, k, seq, off);
		CHECK_OK(trickle_pub_write(p, buf, k));
		off += k;
	}
	CHECK_OK(trickle_pub_segment_end(p));
}

struct pub_wait {
	trickle_pub *p;
	uint64_t n;
};

static bool
pub_has_segments(void *arg)
{
	struct pub_wait *w = arg;
	struct trickle_pub_stats st;

	trickle_pub_get_stats(w->p, &st);
	return st.segments >= w->n;
}

static bool
pub_has_bytes(void *arg)
{
	struct pub_wait *w = arg;
	struct trickle_pub_stats st;

	trickle_pub_get_stats(w->p, &st);
	return st.bytes_out >= w->n;
}

struct pend {
	bool ended;
	enum trickle_end reason;
	int seg_ok, seg_fail;
};

static void
pe_seg(void *arg, int64_t seq, bool ok, int status, const char *err)
{
	struct pend *pe = arg;

	if (ok)
		pe->seg_ok++;
	else
		pe->seg_fail++;
}

static void
pe_end(void *arg, enum trickle_end r, const char *text)
{
	struct pend *pe = arg;

	pe->ended = true;
	pe->reason = r;
}

static const struct trickle_pub_cbs pend_cbs = { pe_seg, pe_end };

static bool
pe_is_ended(void *arg)
{
	return ((struct pend *)arg)->ended;
}

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
	TH_CASE_T(test_sub_receives_live, 30),
	TH_CASE_T(test_200_segments_no_loss, 60),
	TH_CASE_T(test_join_mid_segment, 30),
	TH_CASE_T(test_behind_470_jumps_to_edge, 30),
	TH_CASE_T(test_reconnect_after_outage, 40),
	TH_CASE_T(test_resume_mid_segment, 30),
	TH_CASE_T(test_silence_timeout, 30),
	TH_CASE_T(test_pub_retries_zero_byte_segment, 30),
	TH_CASE_T(test_close_inside_callback, 20),
	TH_CASE_T(test_tls_verify_option, 30),
	TH_CASE_T(test_404_ends_cleanly, 20),
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
