/*
 * Supervisor tests with tests/helpers/fake_worker (scripted through
 * FAKE_WORKER*): spawn, death detection, restart and backoff, hang and
 * deadline kills of the whole process group, fatal exits, protocol
 * violations, shutdown without leaks. The real build/worker and the
 * gateway's death: supervisor_real_test.c; fixtures: supervisor_util.h.
 */
#include "supervisor_util.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>

static int
t_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	CHECK(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

/* nng closes some fds on its own threads shortly after: wait until stable. */
static int
t_count_fds_settled(void)
{
	int prev = -1, n = t_count_fds();

	for (int i = 0; i < 20 && n != prev; i++) {
		usleep(50000);
		prev = n;
		n = t_count_fds();
	}
	return n;
}

/* ---- cases -------------------------------------------------------------- */

static void
spawn_all_idle(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	int gpus[3] = {-1, 0, 1}, rings[3];
	int64_t t0;
	json_t *js, *arr;

	t_cfg(&cfg, &c, 3);
	for (int i = 0; i < 3; i++) {
		rings[i] = memfd_create("ring", MFD_CLOEXEC);
		CHECK(rings[i] >= 0);
	}
	cfg.gpus = gpus;
	cfg.ring_fds = rings;
	cfg.spares = 1;
	t0 = clock_now_ns();
	t_start(&c, &cfg);
	CHECK_EQ(supervisor_start(c.sup), -EALREADY);
	CHECK(t_run(&c, p_idle, 3, 10000));
	printf("    3 workers idle in %.1f ms\n", (clock_now_ns() - t0) / 1e6);
	CHECK_EQ(c.ready, 3);
	CHECK_EQ(supervisor_capacity(c.sup), 2);
	CHECK_EQ(supervisor_pick(c.sup), 0);
	for (int i = 0; i < 3; i++) {
		json_t *r;
		const char *cvd;

		CHECK(t_run(&c, p_report, i, 5000));
		r = c.report[i];
		CHECK_EQ(json_integer_value(json_object_get(r, "pid")),
		         t_pid(&c, i));
		CHECK_EQ(json_integer_value(json_object_get(r, "pgid")),
		         t_pid(&c, i));
		CHECK_STR(json_string_value(json_object_get(r, "fds")),
		          "0,1,2,3");
		CHECK(json_is_true(json_object_get(r, "ring_ok")));
		CHECK_EQ(json_integer_value(json_object_get(r, "ring_fd")), 3);
		/* --gpu is the ordinal among the visible devices: 0, or -1 for
		 * host */
		CHECK_EQ(json_integer_value(json_object_get(r, "gpu")),
		         gpus[i] >= 0 ? 0 : -1);
		cvd = json_string_value(json_object_get(r, "cvd"));
		if (gpus[i] >= 0)
			CHECK_EQ(atoi(cvd), gpus[i]);
		else
			CHECK_STR(cvd, getenv("CUDA_VISIBLE_DEVICES")
			                   ? getenv("CUDA_VISIBLE_DEVICES")
			                   : "");
	}
	/* A stream on GPU 0 makes GPU -1's worker... still first: least loaded.
	 */
	t_stream_start(&c, 1, 5);
	CHECK_EQ(t_state(&c, 1), SUPERVISOR_BUSY);
	CHECK_EQ(supervisor_pick(c.sup), 0);
	js = supervisor_json(c.sup);
	CHECK(js);
	arr = json_object_get(js, "workers");
	CHECK_EQ(json_array_size(arr), 3);
	CHECK_STR(
	    json_string_value(json_object_get(json_array_get(arr, 1), "state")),
	    "busy");
	CHECK_EQ(json_integer_value(
	             json_object_get(json_array_get(arr, 1), "stream")),
	         5);
	CHECK(json_is_null(json_object_get(json_array_get(arr, 0), "stream")));
	CHECK_EQ(
	    json_integer_value(json_object_get(json_array_get(arr, 2), "gpu")),
	    1);
	CHECK(json_is_null(
	    json_object_get(json_array_get(arr, 2), "last_error")));
	json_decref(js);
	t_done(&c);
	for (int i = 0; i < 3; i++)
		close(rings[i]);
	t_no_children();
}

static void
t_kill_loop(bool no_pidfd, int rounds)
{
	struct supervisor_config cfg;
	struct ctx c;
	double det[16], sum = 0, max = 0;

	t_cfg(&cfg, &c, 2);
	cfg.no_pidfd = no_pidfd;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, 2, 10000));
	for (int k = 0; k < rounds; k++) {
		pid_t pid = t_pid(&c, 0);
		int64_t t0, t_up;

		t0 = clock_now_ns();
		CHECK_OK(kill(pid, SIGKILL));
		CHECK(t_run(&c, p_deaths, k + 1, 5000));
		det[k] = (c.death[k].detected_ns - t0) / 1e6;
		sum += det[k];
		max = det[k] > max ? det[k] : max;
		CHECK_EQ(c.death[k].worker, 0);
		CHECK_EQ(c.death[k].pid, pid);
		CHECK_EQ(c.death[k].signal, SIGKILL);
		CHECK(!c.death[k].killed && !c.death[k].fatal);
		CHECK(strstr(c.death[k].reason, "signal 9") != NULL);
		CHECK(c.death[k].respawn_ms >= 0);
		CHECK(t_run(&c, p_idle, 2, 10000));
		t_up = clock_now_ns();
		CHECK(t_pid(&c, 0) != pid);
		printf("    kill %d: detected in %.3f ms, idle again after "
		       "%.1f ms (backoff %lld ms)\n",
		       k + 1, det[k], (t_up - t0) / 1e6,
		       (long long)c.death[k].respawn_ms);
	}
	CHECK_EQ(c.deaths, rounds);
	{
		struct supervisor_worker_info in;

		CHECK_OK(supervisor_info(c.sup, 0, &in));
		CHECK_EQ(in.restarts, rounds);
		CHECK_EQ(in.generation, rounds + 1);
		CHECK(strstr(in.last_error, "signal 9") != NULL);
		CHECK_OK(supervisor_info(c.sup, 1, &in));
		CHECK_EQ(in.restarts, 0);
	}
	printf("    detection (%s): mean %.3f ms, max %.3f ms over %d kills\n",
	       no_pidfd ? "SIGCHLD" : "pidfd", sum / rounds, max, rounds);
	t_done(&c);
	t_no_children();
}

static void
sigkill_detected_and_restarted(void)
{
	t_kill_loop(false, 6);
}

static void
sigchld_fallback(void)
{
	t_kill_loop(true, 3);
}

static int
t_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* 30 SIGKILLs of a warm worker: detection p50/p99/max (printed only). */
static void
detection_percentiles(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	double det[30];
	const int n = 30;

	t_cfg(&cfg, &c, 1);
	cfg.backoff_min_ms = 1;
	cfg.backoff_max_ms = 1;
	t_start(&c, &cfg);
	for (int k = 0; k < n; k++) {
		int64_t t0;

		CHECK(t_run(&c, p_idle, 1, 10000));
		t_run(&c, p_never, 0, 20); /* let it settle */
		t0 = clock_now_ns();
		CHECK_OK(kill(t_pid(&c, 0), SIGKILL));
		CHECK(t_run(&c, p_deaths, k + 1, 5000));
		det[k] = (c.death[k].detected_ns - t0) / 1e6;
	}
	qsort(det, n, sizeof(det[0]), t_cmp_double);
	printf(
	    "    SIGKILL -> on_death over %d kills: p50 %.3f ms, p99 %.3f ms, "
	    "max %.3f ms\n",
	    n, det[n / 2], det[(n * 99) / 100], det[n - 1]);
	CHECK_EQ(c.deaths, n);
	t_done(&c);
	t_no_children();
}

static void
hang_kills_group(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	pid_t pid, child;
	int64_t t0;

	setenv("FAKE_WORKER_0", "child,hang", 1);
	t_cfg(&cfg, &c, 2);
	cfg.ping_ms = 50;
	cfg.hang_ms = 400;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_report, 0, 10000));
	t0 = clock_now_ns();
	pid = t_pid(&c, 0);
	child =
	    (pid_t)json_integer_value(json_object_get(c.report[0], "child"));
	CHECK(child > 0);
	CHECK(!t_proc_dead(child));
	CHECK(t_run(&c, p_deaths, 1, 5000));
	printf(
	    "    hang seen and group killed %.1f ms after READY (hang_ms %u)\n",
	    (c.death[0].detected_ns - t0) / 1e6, cfg.hang_ms);
	CHECK(c.death[0].killed);
	CHECK_EQ(c.death[0].pid, pid);
	CHECK(strstr(c.death[0].reason, "hung") != NULL);
	CHECK_EQ(c.death[0].signal, SIGKILL);
	for (int i = 0; i < 100 && !t_proc_dead(child); i++)
		usleep(10000);
	CHECK(t_proc_dead(child));
	CHECK(t_run(&c, p_worker_idle, 1, 5000)); /* the other one lives on */
	unsetenv("FAKE_WORKER_0");
	t_done(&c);
	t_no_children();
}

static void
no_hello_killed(void)
{
	struct supervisor_config cfg;
	struct ctx c;

	setenv("FAKE_WORKER", "no-hello", 1);
	t_cfg(&cfg, &c, 1);
	cfg.hello_ms = 300;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_deaths, 1, 5000));
	CHECK(c.death[0].killed);
	CHECK(strstr(c.death[0].reason, "no HELLO") != NULL);
	unsetenv("FAKE_WORKER");
	t_done(&c);
	t_no_children();
}

static void
exit2_not_respawned(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	struct supervisor_worker_info in;

	setenv("FAKE_WORKER", "exit=2", 1);
	t_cfg(&cfg, &c, 2);
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_deaths, 2, 5000));
	t_run(&c, p_never, 0, 400);
	CHECK_EQ(c.deaths, 2);
	for (int i = 0; i < 2; i++) {
		CHECK(c.death[i].fatal);
		CHECK_EQ(c.death[i].exit_code, 2);
		CHECK_EQ(c.death[i].respawn_ms, -1);
		CHECK_OK(supervisor_info(c.sup, i, &in));
		CHECK_EQ(in.state, SUPERVISOR_DEAD);
		CHECK(in.fatal);
		CHECK_EQ(in.restarts, 0);
		CHECK_EQ(in.generation, 1);
	}
	CHECK(supervisor_failed(c.sup));
	CHECK_EQ(supervisor_pick(c.sup), -EBUSY);
	unsetenv("FAKE_WORKER");
	t_done(&c);
	t_no_children();
}

static void
crash_loop_backs_off(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	static const long want[] = {0, 50, 100, 200, 400, 400};
	int64_t prev;

	setenv("FAKE_WORKER", "init-exit=3", 1);
	t_cfg(&cfg, &c, 1);
	cfg.backoff_min_ms = 50;
	cfg.backoff_max_ms = 400;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_deaths, 6, 10000));
	prev = c.death[0].detected_ns;
	for (int i = 0; i < 6; i++) {
		double gap = (c.death[i].detected_ns - prev) / 1e6;

		CHECK_EQ(c.death[i].exit_code, 3);
		CHECK(!c.death[i].fatal);
		CHECK_EQ(c.death[i].respawn_ms, want[i]);
		if (i > 0)
			CHECK(gap >= (double)want[i - 1]);
		printf("    death %d: %.1f ms after the previous, next respawn "
		       "in %lld ms\n",
		       i + 1, gap, (long long)c.death[i].respawn_ms);
		prev = c.death[i].detected_ns;
	}
	CHECK(!supervisor_failed(c.sup));
	unsetenv("FAKE_WORKER");
	t_done(&c);
	t_no_children();
}

static void
t_violator(const char *mode, const char *what)
{
	struct supervisor_config cfg;
	struct ctx c;

	setenv("FAKE_WORKER_0", mode, 1);
	t_cfg(&cfg, &c, 2);
	cfg.max_violations = 4;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_deaths, 1, 5000));
	CHECK_EQ(c.death[0].worker, 0);
	CHECK(c.death[0].killed);
	CHECK(strstr(c.death[0].reason, "protocol violations: 4") != NULL);
	CHECK(supervisor_violations(c.sup) >= 4);
	CHECK(t_run(&c, p_worker_idle, 1, 5000));
	printf("    %s: killed after %llu violations, worker 1 unaffected\n",
	       what, (unsigned long long)supervisor_violations(c.sup));
	unsetenv("FAKE_WORKER_0");
	t_done(&c);
	t_no_children();
}

static void
garbage_killed(void)
{
	t_violator("garbage=20", "garbage");
}

static void
wrong_direction_killed(void)
{
	t_violator("wrong-dir", "wrong direction");
}

static void
frames_params_and_stop(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	struct supervisor_worker_info in;
	struct msg m;

	t_cfg(&cfg, &c, 2);
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, 2, 10000));
	CHECK_EQ(t_frame(&c, 0, 1, 1), -EINVAL); /* no stream yet */
	t_stream_start(&c, 0, 1);
	CHECK_EQ(t_frame(&c, 0, 2, 1), -EINVAL); /* another stream */
	memset(&m, 0, sizeof(m));
	m.type = MSG_STREAM_START;
	CHECK_EQ(supervisor_send(c.sup, 0, &m), -EBUSY);
	m.type = MSG_RESULT;
	CHECK_EQ(supervisor_send(c.sup, 0, &m), -EINVAL);
	m.type = MSG_PING;
	CHECK_EQ(supervisor_send(c.sup, 0, &m), -EINVAL);
	for (uint64_t seq = 1; seq <= 20; seq++) {
		CHECK_OK(t_frame(&c, 0, 1, seq));
		if (seq % 2 == 0)
			CHECK(t_run(&c, p_results, (long)seq, 5000));
	}
	memset(&m, 0, sizeof(m));
	m.type = MSG_PARAMS;
	m.u.params.stream = 1;
	m.u.params.params = msg_cstr("{\"x\":1}");
	CHECK_OK(supervisor_send(c.sup, 0, &m));
	CHECK(t_run(&c, p_acks, 1, 5000));
	CHECK_OK(supervisor_info(c.sup, 0, &in));
	CHECK_EQ(in.frames, 20);
	CHECK_EQ(in.in_flight, 0);
	CHECK(in.has_stream && in.stream == 1);
	memset(&m, 0, sizeof(m));
	m.type = MSG_STREAM_STOP;
	m.u.stream_stop.stream = 1;
	CHECK_OK(supervisor_send(c.sup, 0, &m));
	CHECK_EQ(t_state(&c, 0), SUPERVISOR_IDLE);
	t_run(&c, p_never, 0, 300); /* pings keep flowing, nobody dies */
	CHECK_EQ(c.deaths, 0);
	CHECK_EQ(supervisor_violations(c.sup), 0);
	t_done(&c);
	t_no_children();
}

static void
t_deadline(const char *mode, bool params, const char *want)
{
	struct supervisor_config cfg;
	struct ctx c;
	struct msg m;
	int64_t t0;

	setenv("FAKE_WORKER_0", mode, 1);
	t_cfg(&cfg, &c, 2);
	cfg.frame_deadline_ms = 300;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, 2, 10000));
	t_stream_start(&c, 0, 7);
	t0 = clock_now_ns();
	if (params) {
		memset(&m, 0, sizeof(m));
		m.type = MSG_PARAMS;
		m.u.params.stream = 7;
		m.u.params.params = msg_cstr("{}");
		CHECK_OK(supervisor_send(c.sup, 0, &m));
	} else {
		CHECK_OK(t_frame(&c, 0, 7, 1));
		CHECK_OK(t_frame(&c, 0, 7, 2));
	}
	CHECK(t_run(&c, p_deaths, 1, 5000));
	printf("    %s: killed %.1f ms after the request (deadline 300 ms)\n",
	       want, (c.death[0].detected_ns - t0) / 1e6);
	CHECK(c.death[0].killed);
	CHECK(strstr(c.death[0].reason, want) != NULL);
	CHECK(c.death[0].had_stream);
	CHECK_EQ(c.death[0].stream, 7);
	CHECK_EQ(c.death[0].frames_in_flight, params ? 0 : 2);
	CHECK(c.death[0].detected_ns - t0 >= 300 * 1000000LL);
	CHECK_EQ(t_frame(&c, 0, 7, 3), -ENOTCONN);
	unsetenv("FAKE_WORKER_0");
	t_done(&c);
	t_no_children();
}

static void
frame_deadline_kills(void)
{
	t_deadline("hang-frame", false, "frame deadline");
}

static void
params_deadline_kills(void)
{
	t_deadline("hang-params", true, "params deadline");
}

static void
t_lifecycle(int n, const char *mode, unsigned shutdown_ms, int want_killed)
{
	struct supervisor_config cfg;
	struct ctx c;
	int killed;
	int64_t t0;

	char dir[600];
	DIR *d;
	struct dirent *e;

	if (mode)
		setenv("FAKE_WORKER_1", mode, 1);
	t_cfg(&cfg, &c, n);
	snprintf(dir, sizeof(dir), "%s/ipc", th_tmpdir());
	mkdir(dir, 0700);
	cfg.ipc_dir = dir;
	cfg.shutdown_ms = shutdown_ms;
	t_start(&c, &cfg);
	CHECK(t_run(&c, p_idle, n, 10000));
	CHECK(t_run(&c, p_report, 0, 5000));
	supervisor_close(c.sup);
	supervisor_close(c.sup);
	CHECK_EQ(t_frame(&c, 0, 1, 1), -ENOTCONN);
	t0 = clock_now_ns();
	killed = supervisor_stop(c.sup);
	printf("    stop of %d workers took %.1f ms, %d killed\n", n,
	       (clock_now_ns() - t0) / 1e6, killed);
	CHECK_EQ(killed, want_killed);
	CHECK_EQ(supervisor_stop(c.sup), 0);
	CHECK_EQ(c.deaths, 0); /* no on_death after close */
	CHECK_EQ(supervisor_count(c.sup, SUPERVISOR_DEAD), n);
	t_done(&c);
	d = opendir(dir); /* the socket files are gone with their workers */
	CHECK(d);
	while ((e = readdir(d)) != NULL)
		CHECK_MSG(e->d_name[0] == '.', "left in the ipc dir: %s",
		          e->d_name);
	closedir(d);
	if (mode)
		unsetenv("FAKE_WORKER_1");
	t_no_children();
}

static void
shutdown_leaves_nothing(void)
{
	int before, after;

	t_lifecycle(1, NULL, 10000,
	            0); /* nng and libevent set up their globals */
	before = t_count_fds_settled();
	t_lifecycle(3, NULL, 10000, 0); /* bound not reached: they exit */
	/* One ignores SHUTDOWN and is killed; ASan workers exit slowly. */
	t_lifecycle(3, "no-exit", getenv("CT_SAN") ? 5000 : 1000, 1);
	after = t_count_fds_settled();
	printf("    fds before %d, after %d\n", before, after);
	CHECK_EQ(after, before);
}

static void
bad_config(void)
{
	struct supervisor_config cfg;
	struct ctx c;
	supervisor *s = NULL;

	t_cfg(&cfg, &c, 0);
	CHECK_EQ(supervisor_create(&s, c.base, &cfg), -EINVAL);
	cfg.nworkers = 1;
	cfg.worker_path = "/nonexistent/worker";
	CHECK_EQ(supervisor_create(&s, c.base, &cfg), -ENOENT);
	CHECK(s == NULL);
	supervisor_destroy(&s);
	event_base_free(c.base);
}

static const struct th_case cases[] = {
    TH_CASE(spawn_all_idle),
    TH_CASE(sigkill_detected_and_restarted),
    TH_CASE(sigchld_fallback),
    TH_CASE(detection_percentiles),
    TH_CASE(hang_kills_group),
    TH_CASE(no_hello_killed),
    TH_CASE(exit2_not_respawned),
    TH_CASE(crash_loop_backs_off),
    TH_CASE(garbage_killed),
    TH_CASE(wrong_direction_killed),
    TH_CASE(frames_params_and_stop),
    TH_CASE(frame_deadline_kills),
    TH_CASE(params_deadline_kills),
    TH_CASE(shutdown_leaves_nothing),
    TH_CASE(bad_config),
    TH_END};

TH_MAIN(cases)
