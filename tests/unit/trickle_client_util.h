/*
 * Fixtures of the trickle client tests (trickle_client_test.c: subscriber,
 * trickle_client_pub_test.c: publisher and channels): build/trickle-server
 * per case on a free port, tcp_proxy for outages, an event loop with curlev,
 * a collecting subscriber and publisher helpers. Header-only.
 */
#ifndef CT_TRICKLE_CLIENT_UTIL_H
#define CT_TRICKLE_CLIENT_UTIL_H

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

static inline void
env_tick(evutil_socket_t fd, short what, void *arg)
{
}

static inline int
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

static inline bool
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
static inline pid_t
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

static inline void
proc_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static inline pid_t
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

static inline void
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

static inline void
env_fini(struct env *e)
{
	curlev_destroy(&e->cv);
	event_free(e->tick);
	event_base_free(e->base);
	proc_stop(e->srv);
}

/* Runs the loop until cond(arg) or timeout_ms; returns cond(arg). */
static inline bool
env_run(struct env *e, bool (*cond)(void *), void *arg, int timeout_ms)
{
	int64_t end = clock_now_ms() + timeout_ms;

	while (!(cond && cond(arg)) && clock_now_ms() < end)
		event_base_loop(e->base, EVLOOP_ONCE);
	return cond ? cond(arg) : true;
}

static inline void
env_run_ms(struct env *e, int ms)
{
	env_run(e, NULL, NULL, ms);
}

/* Byte `off` of segment `seq` in every generated segment. */
static inline uint8_t
pat(int64_t seq, uint64_t off)
{
	return (uint8_t)(seq * 131 + off * 7 + (off >> 8));
}

static inline void
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

static inline void
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

static inline void
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

static inline void
c_end(void *arg, int64_t seq, bool complete)
{
	struct coll *c = arg;

	if (c->nseg <= MAXSEG)
		c->complete[c->nseg - 1] = complete;
	__atomic_add_fetch(&c->nend, 1, __ATOMIC_RELEASE);
	c->open = false;
}

static inline void
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

static inline bool
c_is_ended(void *arg)
{
	return ((struct coll *)arg)->ended;
}

struct wait_bytes {
	struct coll *c;
	uint64_t n;
};

static inline bool
c_has_bytes(void *arg)
{
	struct wait_bytes *w = arg;

	return w->c->bytes >= w->n;
}

struct wait_segs {
	struct coll *c;
	int n;
};

static inline bool
c_has_ends(void *arg)
{
	struct wait_segs *w = arg;

	return w->c->nend >= w->n;
}

static inline struct trickle_sub_opts
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
static inline void
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

static inline bool
pub_has_segments(void *arg)
{
	struct pub_wait *w = arg;
	struct trickle_pub_stats st;

	trickle_pub_get_stats(w->p, &st);
	return st.segments >= w->n;
}

static inline bool
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

static inline void
pe_seg(void *arg, int64_t seq, bool ok, int status, const char *err)
{
	struct pend *pe = arg;

	if (ok)
		pe->seg_ok++;
	else
		pe->seg_fail++;
}

static inline void
pe_end(void *arg, enum trickle_end r, const char *text)
{
	struct pend *pe = arg;

	pe->ended = true;
	pe->reason = r;
}

static const struct trickle_pub_cbs pend_cbs = { pe_seg, pe_end };

static inline bool
pe_is_ended(void *arg)
{
	return ((struct pend *)arg)->ended;
}

#endif
