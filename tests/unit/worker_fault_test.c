/*
 * Tests of build/worker as a black box, when things go wrong: bad ABI and
 * configuration (exit 2), init failures, crashes in frames and params, stray
 * writes into other slots, error streaks, hangs, SIGTERM, the parent's death
 * and the memory limit. The test plays the gateway (worker_util.h).
 */
#include <sys/prctl.h>

#include "worker_util.h"

static void
test_badabi_exits_2(void)
{
	struct gw g;
	struct msg m;
	int st;

	gw_setup(&g);
	gw_spawn(&g, "fixture_badabi", NULL, NULL);
	/* It says why (ERROR) before exiting 2, and never says HELLO. */
	CHECK_OK(gw_recv(&g, &m, GW_WAIT_MS));
	CHECK_EQ(m.type, MSG_ERROR);
	CHECK_EQ(m.u.error.code, -EPROTO);
	printf("    %.*s\n", (int)m.u.error.message.len, m.u.error.message.ptr);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_config_errors_exit_2(void)
{
	static const char *const bad_level[] = { "--log-level", "loud", NULL };
	static const char *const bad_gpu[] = { "--gpu", "x", NULL };
	struct gw g;
	int st;

	gw_setup(&g);
	gw_spawn(&g, "/nonexistent/plugin.so", NULL, NULL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "missing plugin: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", "{not json", NULL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad config: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", "@/nonexistent/config.json", NULL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "missing config file: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", NULL, bad_level);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad level: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", NULL, bad_gpu);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad gpu: 0x%x", st);
	gw_teardown(&g);
}

static void
test_config_file_and_init_failure(void)
{
	char cfg[512], arg[520];
	struct gw g;
	struct msg m;
	FILE *f;
	int st;

	gw_setup(&g);
	/* @FILE config reaches init: init_fail makes init return -EINVAL -> exit 3. */
	snprintf(cfg, sizeof(cfg), "%s/crash.json", th_tmpdir());
	f = fopen(cfg, "w");
	CHECK(f != NULL);
	fputs("{\"init_fail\": true}\n", f);
	fclose(f);
	snprintf(arg, sizeof(arg), "@%s", cfg);
	gw_spawn(&g, "fixture_crash", arg, NULL);
	gw_expect(&g, MSG_HELLO, &m);
	gw_expect(&g, MSG_ERROR, &m);
	CHECK_EQ(m.u.error.code, -EINVAL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status 0x%x", st);
	/* abort() in init: a crash (signal), after HELLO. */
	gw_relisten(&g);
	gw_spawn(&g, "fixture_crash", "{\"crash_in\":\"init\"}", NULL);
	gw_expect(&g, MSG_HELLO, &m);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_crash_fixture_dies_by_signal(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	pid_t pid;
	int st;

	gw_setup(&g);
	gw_start(&g, "fixture_crash", "{\"crash_after\":2}");
	gw_stream_start(&g, 1, "{}");
	for (int i = 0; i < 2; i++) {
		gw_frame_prepare(&g, &f, 1, (uint64_t)i);
		m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
		CHECK_EQ(m.u.result.status, FP_PASS);
		gw_frame_release(&g, &f);
	}
	gw_frame_prepare(&g, &f, 1, 2);
	gw_send(&g, &f.m);
	pid = g.pid;
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status 0x%x", st);
	/* The gateway takes back the two slots of the frame in flight. */
	CHECK_EQ(ring_reclaim(g.ring, pid, RING_RECLAIM_FREE), 2);
	gw_teardown(&g);
}

static void
test_crash_on_params_and_overflow(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	pid_t pid;
	int st;

	gw_setup(&g);
	gw_start(&g, "fixture_crash", "{}");
	gw_stream_start(&g, 1, "{}");
	gw_params(&g, 1, "{\"crash\":true}");
	gw_expect(&g, MSG_PARAMS_ACK, &m);
	CHECK_EQ(m.u.params_ack.status, 0);
	gw_frame_prepare(&g, &f, 1, 0);
	gw_send(&g, &f.m);
	pid = g.pid;
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "params crash: 0x%x", st);
	CHECK_EQ(ring_reclaim(g.ring, pid, RING_RECLAIM_FREE), 2);
	/* A write past the output slot hits the ring's guard page: SIGSEGV, no corruption. */
	gw_relisten(&g);
	gw_start(&g, "fixture_crash", "{\"overflow\":true}");
	gw_stream_start(&g, 1, "{}");
	{
		struct gw_frame f2;

		gw_frame_prepare(&g, &f2, 1, 1);
		gw_send(&g, &f2.m);
		st = gw_wait_exit(&g);
		CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "overflow: 0x%x", st);
	}
	gw_teardown(&g);
}

/* The plugin writes one byte at out->plane[0] + (target - out slot): SIGSEGV. */
static void
gw_stray_write(struct gw *g, bool into_input)
{
	char params[96];
	struct gw_frame f;
	uint32_t x = 0, xgen = 0;
	uint8_t *xbase, *obase;
	uint64_t size;
	struct msg m;
	int st;

	gw_start(g, "fixture_crash", "{}");
	gw_stream_start(g, 1, "{}");
	gw_frame_prepare(g, &f, 1, 0);
	CHECK_EQ(f.lay.offset[0], 0);
	if (into_input) {
		CHECK_OK(ring_slot_ptr(g->ring, f.in, f.in_gen, &xbase, &size));
	} else {
		/* Another stream's frame, say. */
		CHECK_OK(ring_acquire(g->ring, &x, &xgen));
		CHECK_OK(ring_slot_ptr(g->ring, x, xgen, &xbase, &size));
		xbase[0] = 0x11;
	}
	CHECK_OK(ring_slot_ptr(g->ring, f.out, f.out_gen, &obase, &size));
	snprintf(params, sizeof(params), "{\"write_at\":%lld}", (long long)(xbase - obase));
	gw_params(g, 1, params);
	gw_expect(g, MSG_PARAMS_ACK, &m);
	uint8_t before = xbase[0];
	gw_send(g, &f.m);
	st = gw_wait_exit(g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status 0x%x", st);
	CHECK_EQ(xbase[0], before); /* nothing reached the other slot */
	if (!into_input)
		CHECK_OK(ring_release(g->ring, x, xgen));
}

static void
test_stray_writes_into_other_slots_fault(void)
{
	struct gw g;

	gw_setup(&g);
	setenv("CT_WORKER_FENCE", "1", 1);
	gw_stray_write(&g, false);
	gw_relisten(&g);
	gw_stray_write(&g, true);
	gw_teardown(&g);
}

static void
test_plugin_error_streak_exits(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int st;

	gw_setup(&g);
	/* An output larger than the slot's maximum: refused, counted as a plugin error. */
	gw_start(&g, "fixture_slow", "{\"out_width\":4000,\"out_height\":10}");
	gw_stream_start(&g, 1, "{}");
	for (int i = 0; i < 5; i++) {
		gw_frame_prepare(&g, &f, 1, (uint64_t)i);
		m = gw_frame_roundtrip(&g, &f, MSG_DROP);
		CHECK_EQ(m.u.drop.reason, -ERANGE);
		gw_frame_release(&g, &f);
	}
	gw_expect(&g, MSG_ERROR, &m); /* "failed 5 times in a row" */
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 4, "status 0x%x", st);
	/* A changed pixel format is refused too. */
	gw_relisten(&g);
	gw_start(&g, "fixture_slow", "{\"out_format\":1}");
	gw_stream_start(&g, 1, "{}");
	gw_frame_prepare(&g, &f, 1, 0);
	m = gw_frame_roundtrip(&g, &f, MSG_DROP);
	CHECK_EQ(m.u.drop.reason, -EINVAL);
	gw_frame_release(&g, &f);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_hang_fixture_stops_answering(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int st;

	gw_setup(&g);
	gw_start(&g, "fixture_hang", "{\"hang_after\":1}");
	gw_stream_start(&g, 1, "{}");
	gw_frame_prepare(&g, &f, 1, 0);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	gw_frame_release(&g, &f);
	gw_frame_prepare(&g, &f, 1, 1);
	gw_send(&g, &f.m);
	m = (struct msg){ .type = MSG_PING };
	gw_send(&g, &m);
	CHECK_EQ(gw_recv(&g, &m, 500), -ETIMEDOUT); /* no RESULT, no PONG */
	kill(g.pid, SIGKILL);
	st = gw_wait_exit(&g);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* Hanging in update_params. */
	gw_relisten(&g);
	gw_start(&g, "fixture_hang", "{\"hang_after\":-1}");
	gw_params(&g, 0, "{\"hang_params\":true}");
	CHECK_EQ(gw_recv(&g, &m, 500), -ETIMEDOUT);
	gw_teardown(&g);
}

static void
test_sigterm_exits_0(void)
{
	struct gw g;
	int st;

	gw_setup(&g);
	gw_start(&g, "passthrough", NULL);
	gw_stream_start(&g, 1, "{}");
	kill(g.pid, SIGTERM);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_dies_with_parent(void)
{
	int pfd[2], st;
	pid_t mid, worker = 0;
	struct gw g;
	struct msg m;

	gw_setup(&g);
	/* We adopt orphans, so the worker can be reaped here when its parent dies. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	CHECK_OK(pipe(pfd));
	mid = fork();
	CHECK(mid >= 0);
	if (mid == 0) {
		gw_spawn(&g, "passthrough", NULL, NULL);
		(void)!write(pfd[1], &g.pid, sizeof(g.pid));
		for (;;)
			pause();
	}
	CHECK_EQ(read(pfd[0], &worker, sizeof(worker)), sizeof(worker));
	g.pid = worker;
	gw_expect(&g, MSG_HELLO, &m);
	gw_expect(&g, MSG_READY, &m);
	kill(mid, SIGKILL);
	CHECK(waitpid(mid, &st, 0) == mid);
	st = gw_wait_exit(&g); /* the adopted worker */
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", st);
	gw_relisten(&g);
	close(pfd[0]);
	close(pfd[1]);
	/* A parent already gone at start (CT_PARENT_PID names another pid): exit at once. */
	setenv("CT_PARENT_PID", "1", 1);
	gw_spawn(&g, "passthrough", NULL, NULL);
	unsetenv("CT_PARENT_PID");
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_leak_fixture_hits_mem_limit(void)
{
	static const char *const limit[] = { "--mem-limit-mb", "300", NULL };
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int st, frames = 0;

#if defined(__SANITIZE_ADDRESS__)
	printf("    skipped: RLIMIT_AS cannot be combined with AddressSanitizer\n");
	return;
#endif
	gw_setup(&g);
	gw_spawn(&g, "fixture_leak", "{\"mb_per_frame\":32}", limit);
	gw_expect(&g, MSG_HELLO, &m);
	gw_expect(&g, MSG_READY, &m);
	gw_stream_start(&g, 1, "{}");
	for (;;) {
		gw_frame_prepare(&g, &f, 1, (uint64_t)frames);
		gw_send(&g, &f.m);
		if (gw_recv(&g, &m, 2000) < 0)
			break;
		if (m.type == MSG_ERROR)
			break;
		gw_frame_release(&g, &f);
		frames++;
		CHECK_MSG(frames < 100, "no limit hit after %d frames", frames);
	}
	st = gw_wait_exit(&g);
	CHECK_MSG(!(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2)),
	          "status 0x%x", st);
	printf("    leak fixture stopped after %d frames (~%d MiB), status 0x%x\n", frames,
	       frames * 32, st);
	gw_teardown(&g);
}

static const struct th_case cases[] = {
	TH_CASE(test_badabi_exits_2),
	TH_CASE(test_config_errors_exit_2),
	TH_CASE(test_config_file_and_init_failure),
	TH_CASE(test_crash_fixture_dies_by_signal),
	TH_CASE(test_crash_on_params_and_overflow),
	TH_CASE(test_stray_writes_into_other_slots_fault),
	TH_CASE(test_plugin_error_streak_exits),
	TH_CASE(test_hang_fixture_stops_answering),
	TH_CASE(test_sigterm_exits_0),
	TH_CASE(test_dies_with_parent),
	TH_CASE(test_leak_fixture_hits_mem_limit),
	TH_END
};

TH_MAIN(cases)
