/*
 * Tests of the trickle client's bounded ends: the publisher's drain deadline
 * at close (a stuck output server must not hold the teardown) and the
 * subscriber's configurable retry backoff cap. A stuck server is a thread
 * here that reads request headers and never answers a POST.
 */
#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "gateway/curlev.h"
#include "gateway/trickle_pub.h"
#include "gateway/trickle_sub.h"
#include "log.h"

/* ---- loop fixture ------------------------------------------------------- */

struct loop {
	struct event_base *base;
	struct event *tick;
	curlev *cv;
};

static void
loop_tick(evutil_socket_t fd, short what, void *arg)
{
}

static void
loop_init(struct loop *l)
{
	struct timeval tv = { 0, 5000 };

	log_set_level(getenv("CT_TEST_DEBUG") ? LOG_DEBUG : LOG_ERROR);
	l->base = event_base_new();
	CHECK(l->base);
	l->tick = event_new(l->base, -1, EV_PERSIST, loop_tick, NULL);
	CHECK(l->tick);
	event_add(l->tick, &tv);
	CHECK_OK(curlev_create(&l->cv, l->base));
}

static void
loop_fini(struct loop *l)
{
	curlev_destroy(&l->cv);
	event_free(l->tick);
	event_base_free(l->base);
}

/* Runs the loop until *flag or timeout_ms; returns *flag. */
static bool
loop_until(struct loop *l, const bool *flag, int timeout_ms)
{
	int64_t end = clock_now_ms() + timeout_ms;

	while (!*flag && clock_now_ms() < end)
		event_base_loop(l->base, EVLOOP_ONCE);
	return *flag;
}

static int
listen_loopback(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	CHECK(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
	CHECK_OK(listen(fd, 16));
	CHECK_OK(getsockname(fd, (struct sockaddr *)&a, &len));
	*port = ntohs(a.sin_port);
	return fd;
}

/* A port with nothing listening (connections are refused). */
static int
refused_port(void)
{
	int port, fd = listen_loopback(&port);

	close(fd);
	return port;
}

/* ---- the stuck server --------------------------------------------------- */

/*
 * Accepts connections; reads each request's headers; answers a DELETE with
 * 200 at once; never answers (and, after the headers, never reads) a POST.
 */
#define STUCK_MAXC 16

struct stuck {
	int lfd;
	int port;
	int stop[2];
	pthread_t th;
	atomic_int posts;
	atomic_int deletes;
};

static void *
stuck_main(void *arg)
{
	struct stuck *k = arg;
	struct pollfd pf[2 + STUCK_MAXC];
	int conn[STUCK_MAXC], nconn = 0, hdr_done[STUCK_MAXC];
	char hdr[STUCK_MAXC][512];
	size_t hlen[STUCK_MAXC];

	for (;;) {
		int n = 0;

		pf[n++] = (struct pollfd){ .fd = k->stop[0], .events = POLLIN };
		pf[n++] = (struct pollfd){ .fd = k->lfd, .events = POLLIN };
		for (int i = 0; i < nconn; i++)
			pf[n++] = (struct pollfd){
				.fd = hdr_done[i] ? -1 : conn[i],
				.events = POLLIN };
		if (poll(pf, n, 1000) < 0)
			break;
		if (pf[0].revents)
			break;
		if ((pf[1].revents & POLLIN) && nconn < STUCK_MAXC) {
			int c = accept(k->lfd, NULL, NULL);

			if (c >= 0) {
				conn[nconn] = c;
				hdr_done[nconn] = 0;
				hlen[nconn] = 0;
				nconn++;
			}
		}
		for (int i = 0; i < nconn; i++) {
			ssize_t r;
			char *h = hdr[i];

			if (hdr_done[i] || !(pf[2 + i].revents & POLLIN))
				continue;
			r = read(conn[i], h + hlen[i],
				 sizeof(hdr[i]) - 1 - hlen[i]);
			if (r <= 0) {
				hdr_done[i] = 1;
				continue;
			}
			hlen[i] += (size_t)r;
			h[hlen[i]] = 0;
			if (!strstr(h, "\r\n\r\n") &&
			    hlen[i] < sizeof(hdr[i]) - 1)
				continue;
			hdr_done[i] = 1;
			if (!strncmp(h, "DELETE ", 7)) {
				static const char ok[] = "HTTP/1.1 200 OK\r\n"
					"Content-Length: 0\r\n\r\n";

				/* Counted before the answer can be seen. */
				atomic_fetch_add(&k->deletes, 1);
				(void)!write(conn[i], ok, sizeof(ok) - 1);
			} else {
				atomic_fetch_add(&k->posts, 1);
			}
		}
	}
	for (int i = 0; i < nconn; i++)
		close(conn[i]);
	return NULL;
}

static void
stuck_start(struct stuck *k)
{
	memset(k, 0, sizeof(*k));
	k->lfd = listen_loopback(&k->port);
	CHECK_OK(pipe(k->stop));
	CHECK_OK(pthread_create(&k->th, NULL, stuck_main, k));
}

static void
stuck_stop(struct stuck *k)
{
	(void)!write(k->stop[1], "x", 1);
	pthread_join(k->th, NULL);
	close(k->stop[0]);
	close(k->stop[1]);
	close(k->lfd);
}

/* ---- publisher callbacks ------------------------------------------------ */

struct pend {
	bool ended;
	enum trickle_end reason;
	char text[256];
	int64_t at_ms;
	int done_ok, done_fail;
};

static void
pend_done(void *arg, int64_t seq, bool ok, int status, const char *err)
{
	struct pend *e = arg;

	if (ok)
		e->done_ok++;
	else
		e->done_fail++;
}

static void
pend_end(void *arg, enum trickle_end r, const char *text)
{
	struct pend *e = arg;

	e->ended = true;
	e->reason = r;
	e->at_ms = clock_now_ms();
	snprintf(e->text, sizeof(e->text), "%s", text);
}

static const struct trickle_pub_cbs pend_cbs = { pend_done, pend_end };

/* Queues one segment of n bytes of 'a' from the loop thread. */
static void
put_segment(trickle_pub *p, size_t n)
{
	static uint8_t buf[65536];

	memset(buf, 'a', sizeof(buf));
	CHECK_OK(trickle_pub_segment_begin(p));
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);

		CHECK_OK(trickle_pub_write(p, buf, k));
		n -= k;
	}
	CHECK_OK(trickle_pub_segment_end(p));
}

/*
 * Publishes two segments to a server that never answers a POST, closes with
 * drain_ms, and checks that the close ends on time with both segments
 * counted as dropped and the DELETE still sent (when delete_on_close).
 */
static void
drain_case(int drain_ms, bool del, size_t first, const char *label)
{
	struct loop l;
	struct stuck k;
	struct pend e = { 0 };
	struct trickle_pub_opts o;
	struct trickle_pub_stats st;
	trickle_pub *p;
	char url[128];
	int64_t t0;

	loop_init(&l);
	stuck_start(&k);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/out", k.port);
	trickle_pub_opts_default(&o);
	o.drain_timeout_ms = drain_ms;
	o.delete_on_close = del;
	CHECK_OK(trickle_pub_create(&p, l.cv, url, &o, &pend_cbs, &e));
	put_segment(p, first);
	put_segment(p, 3000);
	/* Let both POSTs reach the server (headers read, no answer). */
	{
		int64_t end = clock_now_ms() + 3000;

		while (atomic_load(&k.posts) < 2 && clock_now_ms() < end)
			event_base_loop(l.base, EVLOOP_ONCE);
	}
	CHECK_MSG(atomic_load(&k.posts) >= 2, "posts=%d",
		  atomic_load(&k.posts));
	t0 = clock_now_ms();
	trickle_pub_close(p);
	trickle_pub_close(p); /* idempotent: the deadline runs from the first */
	CHECK_EQ(trickle_pub_segment_begin(p), -EPIPE);
	CHECK_MSG(loop_until(&l, &e.ended, drain_ms + 4000),
		  "publisher did not end %d ms after close (drain_ms=%d)",
		  (int)(clock_now_ms() - t0), drain_ms);
	trickle_pub_get_stats(p, &st);
	printf("    %s: close -> on_end %" PRId64 " ms (drain_ms=%d), "
	       "dropped %" PRIu64 " segments, %" PRIu64 " unsent bytes\n",
	       label, e.at_ms - t0, drain_ms, st.drain_dropped,
	       st.drain_dropped_bytes);
	CHECK_EQ(e.reason, TRICKLE_END_LOCAL);
	CHECK_EQ(st.drain_dropped, 2);
	CHECK_EQ(st.segments, 0);
	CHECK_EQ(st.failed, 0);
	CHECK_EQ(st.queued_bytes, 0);
	/* Every byte either went to the socket or is counted as dropped. */
	CHECK_EQ(st.bytes_out + st.drain_dropped_bytes, first + 3000);
	if (first > (8u << 20))
		CHECK(st.drain_dropped_bytes > 0); /* nothing read */
	CHECK_EQ(e.done_ok + e.done_fail, 0);
	CHECK_EQ(atomic_load(&k.deletes), del ? 1 : 0);
	if (del)
		CHECK_MSG(strstr(e.text, "DELETE answered: ok"), "text=%s",
			  e.text);
	CHECK_EQ(curlev_active(l.cv), 0);
	trickle_pub_destroy(&p);
	stuck_stop(&k);
	loop_fini(&l);
}

/* A stuck output: the close ends at the drain deadline, DELETE still sent. */
static void
test_pub_drain_deadline_stuck_server(void)
{
	drain_case(400, true, 12u << 20, "stuck server, 12 MiB, DELETE");
}

/* delete_on_close off: on_end comes right after the deadline. */
static void
test_pub_drain_deadline_no_delete(void)
{
	drain_case(300, false, 100000, "stuck server, no DELETE");
}

/* drain_timeout_ms 0: what is queued at close is aborted at once. */
static void
test_pub_drain_zero_aborts_at_once(void)
{
	drain_case(0, true, 100000, "drain 0");
}

/*
 * A server that takes the bytes (build/trickle-server): the queue drains
 * well before the deadline and nothing is counted as dropped.
 */
static void
test_pub_drain_in_time_drops_nothing(void)
{
	char path[512], pfile[512], buf[32], url[128];
	struct loop l;
	struct pend e = { 0 };
	struct trickle_pub_opts o;
	struct trickle_pub_stats st;
	trickle_pub *p;
	int port = 0;
	int64_t t0;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/trickle-server", th_build_dir());
	snprintf(pfile, sizeof(pfile), "%s/port", th_tmpdir());
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		execl(path, path, "--port", "0", "--port-file", pfile,
		      "--log-level", "error", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && port <= 0; i++) {
		FILE *f = fopen(pfile, "r");

		if (f) {
			if (fgets(buf, sizeof(buf), f))
				port = atoi(buf);
			fclose(f);
		}
		if (port <= 0)
			usleep(10000);
	}
	CHECK_MSG(port > 0, "trickle-server did not start (%s)", path);
	loop_init(&l);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/out", port);
	trickle_pub_opts_default(&o);
	o.drain_timeout_ms = 3000;
	CHECK_OK(trickle_pub_create(&p, l.cv, url, &o, &pend_cbs, &e));
	for (int i = 0; i < 3; i++)
		put_segment(p, 200000);
	t0 = clock_now_ms();
	trickle_pub_close(p);
	CHECK(loop_until(&l, &e.ended, 5000));
	trickle_pub_get_stats(p, &st);
	printf("    close -> on_end %" PRId64 " ms with 3 x 200 kB queued\n",
	       e.at_ms - t0);
	CHECK_EQ(e.reason, TRICKLE_END_LOCAL);
	CHECK_EQ(st.segments, 3);
	CHECK_EQ(st.drain_dropped, 0);
	CHECK_EQ(st.drain_dropped_bytes, 0);
	CHECK_EQ(st.bytes_out, 600000);
	trickle_pub_destroy(&p);
	loop_fini(&l);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void
test_pub_drain_bad_option(void)
{
	struct loop l;
	struct trickle_pub_opts o;
	trickle_pub *p = NULL;

	loop_init(&l);
	trickle_pub_opts_default(&o);
	CHECK_EQ(o.drain_timeout_ms, 5000);
	o.drain_timeout_ms = -1;
	CHECK_EQ(trickle_pub_create(&p, l.cv, "http://127.0.0.1:1/x", &o,
				    NULL, NULL), -EINVAL);
	CHECK(p == NULL);
	loop_fini(&l);
}

/*
 * A 0-byte segment's retries (250 ms apart) are not pushed back by the
 * preconnect's backoff, which shares the retry timer and grows to 5 s
 * against a refused port: the segment fails after its 5 retries, ~1.3 s,
 * well inside the drain deadline (it used to take 5 s per retry).
 */
static void
test_pub_segment_retry_not_delayed_by_preconnect(void)
{
	struct loop l;
	struct pend e = { 0 };
	struct trickle_pub_opts o;
	struct trickle_pub_stats st;
	trickle_pub *p;
	char url[128];
	int64_t t0, end;
	bool never = false;

	loop_init(&l);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/out", refused_port());
	trickle_pub_opts_default(&o);
	CHECK_OK(trickle_pub_create(&p, l.cv, url, &o, &pend_cbs, &e));
	loop_until(&l, &never, 2500); /* preconnect backoff grows */
	put_segment(p, 1000);
	t0 = clock_now_ms();
	end = t0 + 4000;
	while (e.done_fail == 0 && clock_now_ms() < end)
		event_base_loop(l.base, EVLOOP_ONCE);
	trickle_pub_get_stats(p, &st);
	printf("    0-byte segment failed %" PRId64 " ms after it was queued "
	       "(5 retries x 250 ms)\n", clock_now_ms() - t0);
	CHECK_EQ(e.done_fail, 1);
	CHECK_EQ(st.failed, 1);
	CHECK_EQ(st.retries, 5);
	trickle_pub_destroy(&p);
	loop_fini(&l);
}

/* ---- subscriber backoff cap --------------------------------------------- */

struct sub_rec {
	bool ended;
	enum trickle_end reason;
};

static void
sub_end(void *arg, enum trickle_end r, const char *text)
{
	struct sub_rec *e = arg;

	e->ended = true;
	e->reason = r;
}

/*
 * Against a refused port: 4 retries starting at 100 ms. Returns the last
 * backoff used and the time from create to the end.
 */
static uint32_t
sub_backoff_run(int max_backoff_ms, int64_t *elapsed)
{
	struct loop l;
	struct sub_rec e = { 0 };
	struct trickle_sub_cbs cb = { .on_end = sub_end };
	struct trickle_sub_opts o;
	struct trickle_sub_stats st;
	trickle_sub *s;
	char url[128];
	int64_t t0;

	loop_init(&l);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/in", refused_port());
	trickle_sub_opts_default(&o);
	o.retry_delay_ms = 100;
	o.max_retries = 4;
	if (max_backoff_ms)
		o.max_backoff_ms = max_backoff_ms;
	t0 = clock_now_ms();
	CHECK_OK(trickle_sub_create(&s, l.cv, url, &o, &cb, &e));
	CHECK(loop_until(&l, &e.ended, 10000));
	*elapsed = clock_now_ms() - t0;
	trickle_sub_get_stats(s, &st);
	CHECK_EQ(e.reason, TRICKLE_END_MAX_RETRIES);
	CHECK_EQ(st.retries, 4);
	trickle_sub_destroy(&s);
	loop_fini(&l);
	return st.backoff_ms;
}

/* The cap is the option's: 100, 150, 150, 150 instead of 100..800. */
static void
test_sub_max_backoff_option(void)
{
	struct trickle_sub_opts o;
	int64_t t_cap, t_def;
	uint32_t b;

	trickle_sub_opts_default(&o);
	CHECK_EQ(o.max_backoff_ms, 5000);
	b = sub_backoff_run(150, &t_cap);
	CHECK_EQ(b, 150);
	b = sub_backoff_run(0, &t_def);
	CHECK_EQ(b, 800); /* 100, 200, 400, 800: under the default 5 s cap */
	printf("    4 retries: %" PRId64 " ms with cap 150, %" PRId64
	       " ms with the default cap\n", t_cap, t_def);
}

/* A cap below the first delay wins; a cap <= 0 is refused. */
static void
test_sub_max_backoff_bounds(void)
{
	struct loop l;
	struct trickle_sub_opts o;
	trickle_sub *s = NULL;
	int64_t t;

	CHECK_EQ(sub_backoff_run(50, &t), 50);
	loop_init(&l);
	trickle_sub_opts_default(&o);
	o.max_backoff_ms = 0;
	CHECK_EQ(trickle_sub_create(&s, l.cv, "http://127.0.0.1:1/x", &o,
				    NULL, NULL), -EINVAL);
	CHECK(s == NULL);
	loop_fini(&l);
}

static const struct th_case cases[] = {
	TH_CASE_T(test_pub_drain_deadline_stuck_server, 20),
	TH_CASE_T(test_pub_drain_deadline_no_delete, 20),
	TH_CASE_T(test_pub_drain_zero_aborts_at_once, 20),
	TH_CASE_T(test_pub_drain_in_time_drops_nothing, 20),
	TH_CASE_T(test_pub_drain_bad_option, 10),
	TH_CASE_T(test_pub_segment_retry_not_delayed_by_preconnect, 20),
	TH_CASE_T(test_sub_max_backoff_option, 20),
	TH_CASE_T(test_sub_max_backoff_bounds, 20),
	TH_END,
};

TH_MAIN(cases)
