/*
 * Supervisor tests with the real build/worker and its plugins (skipped when
 * not built): serving, SIGKILL with slots reclaimed, bad ABI, hang and crash
 * fixtures; and the gateway's own death taking its fake or real workers.
 * Fake-worker cases: supervisor_test.c; fixtures: supervisor_util.h.
 */
#include "supervisor_util.h"

/* ---- the real build/worker ---------------------------------------------- */

static char t_worker[512], t_plugin[512];
static int t_rfds[MAXW];

/* Configures n real workers on a host ring; false (skip) when not built. */
static bool
t_real_cfg(struct supervisor_config *cfg, struct ctx *c, int n,
           const char *plugin, const char *pconfig)
{
	struct ring_params rp = {
	    .slot_count = (uint32_t)n * 4, .max_width = 256, .max_height = 256};

	t_cfg(cfg, c, n);
	snprintf(t_worker, sizeof(t_worker), "%s/worker", th_build_dir());
	snprintf(t_plugin, sizeof(t_plugin), "%s/plugins/%s", th_build_dir(),
	         plugin);
	if (access(t_worker, X_OK) != 0 || access(t_plugin, R_OK) != 0) {
		printf("    skipped: %s or %s not built\n", t_worker, t_plugin);
		event_base_free(c->base);
		return false;
	}
	CHECK_OK(ring_create(&c->ring, &rp));
	for (int i = 0; i < n; i++)
		t_rfds[i] = ring_fd(c->ring);
	cfg->worker_path = t_worker;
	cfg->processor = t_plugin;
	cfg->processor_config = pconfig;
	cfg->ring_fds = t_rfds;
	cfg->log_level = "warn";
	cfg->shutdown_ms =
	    10000; /* a clean exit is awaited, not raced (ASan is slow) */
	return true;
}

/* A 64x64 RGB24 frame in two fresh slots, sent to worker w. */
static int
t_real_frame(struct ctx *c, int w, uint32_t stream, uint64_t seq)
{
	uint32_t in, ing, out, outg;
	pid_t pid = t_pid(c, w);
	struct msg m;

	CHECK_OK(ring_acquire(c->ring, &in, &ing));
	CHECK_OK(ring_acquire(c->ring, &out, &outg));
	CHECK_OK(ring_send(c->ring, in, ing, w, pid));
	CHECK_OK(ring_send(c->ring, out, outg, w, pid));
	ring_sync(c->ring, in, RING_SYNC_TO_PEER);
	t_frame_msg(&m, stream, seq);
	m.u.frame.format = FP_FMT_RGB24;
	m.u.frame.in_slot = in;
	m.u.frame.in_gen = ing;
	m.u.frame.out_slot = out;
	m.u.frame.out_gen = outg;
	m.u.frame.t_ns = clock_now_ns();
	return supervisor_send(c->sup, w, &m);
}

static void
real_worker_serves_and_restarts(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	struct supervisor_worker_info in;
	int64_t t0;
	pid_t pid;

	if (!t_real_cfg(&cfg, &c, 2, "passthrough.so", NULL))
		return;
	t0 = clock_now_ns();
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, 2, 20000));
	printf("    2 real workers idle in %.1f ms\n",
	       (clock_now_ns() - t0) / 1e6);
	CHECK_OK(supervisor_info(c.sup, 0, &in));
	CHECK(strstr(in.plugin_name, "passthrough") != NULL);
	t_stream_start(&c, 0, 3);
	CHECK_OK(t_real_frame(&c, 0, 3, 1));
	CHECK(t_run(&c, p_results, 1, 5000));
	CHECK_EQ(c.drops, 0);
	CHECK_EQ(supervisor_violations(c.sup), 0);
	/* SIGKILL with a frame at the worker: its two slots come back. */
	CHECK_OK(t_real_frame(&c, 0, 3, 2));
	pid = t_pid(&c, 0);
	t0 = clock_now_ns();
	CHECK_OK(kill(pid, SIGKILL));
	CHECK(t_run(&c, p_deaths, 1, 5000));
	printf("    SIGKILL seen in %.3f ms, %d slots reclaimed\n",
	       (c.death[0].detected_ns - t0) / 1e6, c.reclaimed);
	CHECK(c.death[0].had_stream);
	CHECK_EQ(c.death[0].stream, 3);
	CHECK(c.reclaimed >= 2);
	CHECK(t_run(&c, p_idle, 2, 20000));
	printf("    idle again %.1f ms after the kill\n",
	       (clock_now_ns() - t0) / 1e6);
	CHECK(t_pid(&c, 0) != pid);
	t0 = clock_now_ns();
	CHECK_EQ(supervisor_stop(c.sup), 0);
	printf("    SHUTDOWN of 2 real workers took %.1f ms\n",
	       (clock_now_ns() - t0) / 1e6);
	t_done(&c);
	t_no_children();
}

static void
real_worker_badabi_fatal(void)
{
	struct supervisor_config cfg;
	struct ctx c;

	if (!t_real_cfg(&cfg, &c, 1, "fixture_badabi.so", NULL))
		return;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_deaths, 1, 10000));
	t_run(&c, p_never, 0, 300);
	CHECK_EQ(c.deaths, 1);
	CHECK(c.death[0].fatal);
	CHECK_EQ(c.death[0].exit_code, 2);
	CHECK(supervisor_failed(c.sup));
	printf("    reason: %s\n", c.death[0].reason);
	t_done(&c);
	t_no_children();
}

static void
real_worker_hang_killed(void)
{
	struct supervisor_config cfg;
	struct ctx c;

	if (!t_real_cfg(&cfg, &c, 1, "fixture_hang.so", "{\"hang_after\":0}"))
		return;
	cfg.frame_deadline_ms = 500;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, 1, 20000));
	t_stream_start(&c, 0, 9);
	CHECK_OK(t_real_frame(&c, 0, 9, 1));
	CHECK(t_run(&c, p_deaths, 1, 5000));
	CHECK(c.death[0].killed);
	CHECK(strstr(c.death[0].reason, "frame deadline") != NULL);
	CHECK(c.reclaimed >= 2);
	CHECK(t_run(&c, p_idle, 1, 20000));
	t_done(&c);
	t_no_children();
}

static void
real_worker_crash_respawned(void)
{
	struct supervisor_config cfg;
	struct ctx c;

	if (!t_real_cfg(&cfg, &c, 1, "fixture_crash.so", "{\"crash_after\":0}"))
		return;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, 1, 20000));
	t_stream_start(&c, 0, 4);
	CHECK_OK(t_real_frame(&c, 0, 4, 1));
	CHECK(t_run(&c, p_deaths, 1, 5000));
	printf("    reason: %s\n", c.death[0].reason);
	CHECK(!c.death[0].killed);
	/* ASan catches the SEGV itself and exits 1. */
	CHECK(c.death[0].signal == SIGSEGV ||
	      (getenv("CT_SAN") && c.death[0].exit_code == 1));
	CHECK_EQ(c.death[0].frames_in_flight, 1);
	CHECK_EQ(c.death[0].respawn_ms, 0);
	CHECK(c.reclaimed >= 2);
	CHECK(t_run(&c, p_idle, 1, 20000));
	t_done(&c);
	t_no_children();
}

/*
 * The gateway (a forked copy of this case) is SIGKILLed: its workers must
 * go within 1 s (parent-death signal), leaving nothing behind.
 */
static void
t_gateway_death(bool real)
{
	int p[2];
	pid_t gw, pids[2];
	int64_t t0;
	bool dead = false;

	CHECK_OK(pipe(p));
	gw = fork();
	CHECK(gw >= 0);
	if (gw == 0) {
		struct supervisor_config cfg;
		struct ctx c;

		if (real) {
			if (!t_real_cfg(&cfg, &c, 2, "passthrough.so", NULL))
				_exit(3);
		} else {
			t_cfg(&cfg, &c, 2);
		}
		t_start(&c, &cfg);
		CHECK(t_run(&c, p_idle, 2, 20000));
		pids[0] = t_pid(&c, 0);
		pids[1] = t_pid(&c, 1);
		CHECK(write(p[1], pids, sizeof(pids)) == sizeof(pids));
		t_run(&c, p_never, 0, 60000);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], pids, sizeof(pids)) != sizeof(pids)) {
		int st;

		waitpid(gw, &st, 0);
		CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 3,
		          "gateway copy failed");
		printf("    skipped: real worker not built\n");
		return;
	}
	close(p[0]);
	t0 = clock_now_ns();
	CHECK_OK(kill(gw, SIGKILL));
	CHECK_EQ(waitpid(gw, NULL, 0), gw);
	while (!dead && clock_now_ns() - t0 < 3000000000LL) {
		dead = t_proc_dead(pids[0]) && t_proc_dead(pids[1]);
		if (!dead)
			usleep(1000);
	}
	printf("    %s workers gone %.1f ms after the gateway's SIGKILL\n",
	       real ? "real" : "fake", (clock_now_ns() - t0) / 1e6);
	CHECK(dead);
}

static void
gateway_death_kills_workers(void)
{
	t_gateway_death(false);
}

static void
gateway_death_kills_real_workers(void)
{
	t_gateway_death(true);
}

static const struct th_case cases[] = {
    TH_CASE(gateway_death_kills_workers),
    TH_CASE(real_worker_serves_and_restarts),
    TH_CASE(real_worker_badabi_fatal),
    TH_CASE(real_worker_hang_killed),
    TH_CASE(real_worker_crash_respawned),
    TH_CASE(gateway_death_kills_real_workers),
    TH_END};

TH_MAIN(cases)
