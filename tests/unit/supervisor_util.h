/*
 * Fixtures of the supervisor tests (supervisor_test.c: fake workers,
 * supervisor_real_test.c: build/worker): a context recording every callback,
 * a config on tests/helpers/fake_worker, a loop runner with predicates and
 * message senders. Header-only.
 */
#ifndef CT_SUPERVISOR_UTIL_H
#define CT_SUPERVISOR_UTIL_H

#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "frame_processor.h"
#include "gateway/supervisor.h"
#include "log.h"
#include "ring.h"

#define MAXW 8
#define MAXD 64

struct ctx {
	struct event_base *base;
	supervisor *sup;
	int ready;
	int deaths;
	int results;
	int drops;
	int acks;
	int events;
	struct supervisor_death death[MAXD];
	char reason[MAXD][160];
	json_t *report[MAXW]; /* last report EVENT of each worker */
	int errors;
	char error[160]; /* last ERROR message */
	ring *ring;      /* reclaimed on death when set */
	int reclaimed;
};

static inline void
t_on_ready(void *arg, int worker)
{
	((struct ctx *)arg)->ready++;
}

static inline void
t_on_result(void *arg, int worker, const struct msg_result *m)
{
	((struct ctx *)arg)->results++;
}

static inline void
t_on_drop(void *arg, int worker, const struct msg_drop *m)
{
	((struct ctx *)arg)->drops++;
}

static inline void
t_on_ack(void *arg, int worker, const struct msg_params_ack *m)
{
	((struct ctx *)arg)->acks++;
}

static inline void
t_on_event(void *arg, int worker, const struct msg_event *m)
{
	struct ctx *c = arg;

	c->events++;
	if (worker >= 0 && worker < MAXW) {
		json_decref(c->report[worker]);
		c->report[worker] =
		    json_loadb(m->json.ptr, m->json.len, 0, NULL);
	}
}

static inline void
t_on_error(void *arg, int worker, const struct msg_error *m)
{
	struct ctx *c = arg;

	c->errors++;
	snprintf(c->error, sizeof(c->error), "%.*s", (int)m->message.len,
	         m->message.ptr);
}

static inline void
t_on_death(void *arg, const struct supervisor_death *d)
{
	struct ctx *c = arg;

	if (c->ring)
		c->reclaimed +=
		    ring_reclaim(c->ring, d->pid, RING_RECLAIM_FREE);
	if (c->deaths < MAXD) {
		c->death[c->deaths] = *d;
		snprintf(c->reason[c->deaths], sizeof(c->reason[0]), "%s",
		         d->reason);
		c->death[c->deaths].reason = c->reason[c->deaths];
	}
	c->deaths++;
}

static char t_fake[512];

static inline void
t_cfg(struct supervisor_config *cfg, struct ctx *c, int n)
{
	memset(c, 0, sizeof(*c));
	c->base = event_base_new();
	CHECK(c->base);
	snprintf(t_fake, sizeof(t_fake), "%s/tests/helpers/fake_worker",
	         th_build_dir());
	memset(cfg, 0, sizeof(*cfg));
	cfg->nworkers = n;
	cfg->worker_path = t_fake;
	cfg->processor = "/nonexistent/fake.so";
	cfg->cb.on_ready = t_on_ready;
	cfg->cb.on_result = t_on_result;
	cfg->cb.on_drop = t_on_drop;
	cfg->cb.on_params_ack = t_on_ack;
	cfg->cb.on_event = t_on_event;
	cfg->cb.on_death = t_on_death;
	cfg->cb.on_error = t_on_error;
	cfg->cb_arg = c;
	log_set_level(LOG_ERROR);
}

static inline void
t_start(struct ctx *c, const struct supervisor_config *cfg)
{
	CHECK_OK(supervisor_create(&c->sup, c->base, cfg));
	CHECK_OK(supervisor_start(c->sup));
}

static inline void
t_done(struct ctx *c)
{
	supervisor_destroy(&c->sup);
	CHECK(c->sup == NULL);
	for (int i = 0; i < MAXW; i++)
		json_decref(c->report[i]);
	ring_destroy(&c->ring);
	event_base_free(c->base);
}

/* Runs the loop until pred holds or timeout_ms passes; returns pred. */
static inline bool
t_run(struct ctx *c, bool (*pred)(struct ctx *, long), long arg, int timeout_ms)
{
	int64_t end = clock_now_ms() + timeout_ms;

	while (!pred(c, arg) && clock_now_ms() < end) {
		struct timeval tv = {0, 5000};

		event_base_loopexit(c->base, &tv);
		event_base_dispatch(c->base);
	}
	return pred(c, arg);
}

static inline bool
p_never(struct ctx *c, long n)
{
	return false;
}

static inline bool
p_idle(struct ctx *c, long n)
{
	return supervisor_count(c->sup, SUPERVISOR_IDLE) >= n;
}

static inline bool
p_worker_idle(struct ctx *c, long w)
{
	struct supervisor_worker_info in;

	return supervisor_info(c->sup, (int)w, &in) == 0 &&
	       in.state == SUPERVISOR_IDLE;
}

static inline bool
p_deaths(struct ctx *c, long n)
{
	return c->deaths >= n;
}

static inline bool
p_report(struct ctx *c, long w)
{
	return c->report[w] != NULL;
}

static inline bool
p_results(struct ctx *c, long n)
{
	return c->results >= n;
}

static inline bool
p_acks(struct ctx *c, long n)
{
	return c->acks >= n;
}

static inline pid_t
t_pid(struct ctx *c, int w)
{
	struct supervisor_worker_info in;

	CHECK_OK(supervisor_info(c->sup, w, &in));
	return in.pid;
}

static inline enum supervisor_state
t_state(struct ctx *c, int w)
{
	struct supervisor_worker_info in;

	CHECK_OK(supervisor_info(c->sup, w, &in));
	return in.state;
}

/* Dead: gone, or a zombie nobody reaped yet. */
static inline bool
t_proc_dead(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	bool dead = true;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL)
		dead = p[2] == 'Z' || p[2] == 'X';
	fclose(f);
	return dead;
}

static inline void
t_no_children(void)
{
	errno = 0;
	CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
	CHECK_EQ(errno, ECHILD);
}

static inline void
t_stream_start(struct ctx *c, int w, uint32_t stream)
{
	struct msg m;

	memset(&m, 0, sizeof(m));
	m.type = MSG_STREAM_START;
	m.u.stream_start.stream = stream;
	m.u.stream_start.request_id = msg_cstr("req");
	m.u.stream_start.params = msg_cstr("{}");
	CHECK_OK(supervisor_send(c->sup, w, &m));
}

/* A FRAME descriptor of a 64x64 frame at 1/30, no slots. */
static inline void
t_frame_msg(struct msg *m, uint32_t stream, uint64_t seq)
{
	memset(m, 0, sizeof(*m));
	m->type = MSG_FRAME;
	m->u.frame.stream = stream;
	m->u.frame.seq = seq;
	m->u.frame.width = 64;
	m->u.frame.height = 64;
	m->u.frame.tb_den = 30;
	m->u.frame.tb_num = 1;
}

static inline int
t_frame(struct ctx *c, int w, uint32_t stream, uint64_t seq)
{
	struct msg m;

	t_frame_msg(&m, stream, seq);
	return supervisor_send(c->sup, w, &m);
}

#endif
