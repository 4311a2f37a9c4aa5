/*
 * GPU plan tests (gateway/gpuplan.c) without a GPU: the fake-GPU test hook,
 * workers per GPU, one ring per GPU, --gpus none / lists / auto without a
 * device; and the supervisor's WORKER_EXIT_GPU_RING switch of a GPU to a
 * new ring (a script worker that exits 5 once, then runs fake_worker);
 * the NVML cache without NVML; a stream's CUDA copies failing cleanly.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "gateway/gpuinfo.h"
#include "gateway/gpuplan.h"
#include "gateway/stream_int.h"
#include "gateway/supervisor.h"
#include "log.h"
#include "worker_exit.h"

static struct gpuplan_params
t_params(enum gpu_mode mode, int fake)
{
	return (struct gpuplan_params){
		.req = { .mode = mode },
		.workers_per_gpu = 2,
		.ring_slots = 2,
		.ring_extra = 3,
		.max_width = 256,
		.max_height = 256,
		.fake_gpus = fake,
	};
}

static void
parse_fake(void)
{
	CHECK_EQ(gpuplan_parse_fake(NULL), 0);
	CHECK_EQ(gpuplan_parse_fake(""), 0);
	CHECK_EQ(gpuplan_parse_fake("1"), 1);
	CHECK_EQ(gpuplan_parse_fake("8"), 8);
	CHECK_EQ(gpuplan_parse_fake("0"), -EINVAL);
	CHECK_EQ(gpuplan_parse_fake("9"), -EINVAL);
	CHECK_EQ(gpuplan_parse_fake("2x"), -EINVAL);
	CHECK_EQ(gpuplan_parse_fake("-1"), -EINVAL);
}

static void
fake_two_gpus(void)
{
	struct gpuplan_params p = t_params(GPU_MODE_AUTO, 2);
	static const int want[] = { 0, 0, 1, 1 };
	gpuplan *gp;
	ring *rs[4];
	char err[128];

	log_set_level(LOG_ERROR);
	CHECK_OK(gpuplan_create(&gp, &p, err, sizeof(err)));
	CHECK_EQ(gpuplan_ngpus(gp), 2);
	CHECK_EQ(gpuplan_ngroups(gp), 2);
	CHECK_EQ(gpuplan_nworkers(gp), 4);
	for (int w = 0; w < 4; w++)
		CHECK_EQ(gpuplan_worker_gpu(gp, w), want[w]);
	CHECK_EQ(gpuplan_group_of(gp, 1), 1);
	CHECK_EQ(gpuplan_group_of(gp, -1), -1);
	CHECK_EQ(gpuplan_group_of(gp, 5), -1);
	CHECK_EQ(gpuplan_group_gpu(gp, 1), 1);
	CHECK(gpuplan_ring(gp, 0) && gpuplan_ring(gp, 1));
	CHECK(gpuplan_ring(gp, 0) != gpuplan_ring(gp, 1));
	CHECK(gpuplan_ring(gp, 2) == NULL);
	CHECK(!gpuplan_is_cuda(gp, 0) && !gpuplan_is_cuda(gp, 1));
	/* workers on it x --ring-slots + the extra */
	CHECK_EQ(ring_slot_count(gpuplan_ring(gp, 0)), 2 * 2 + 3);
	CHECK_EQ(ring_get_header(gpuplan_ring(gp, 1))->backend,
	         RING_BACKEND_HOST);
	CHECK_EQ(gpuplan_group_rings(gp, 1, rs, 4), 1);
	CHECK(rs[0] == gpuplan_ring(gp, 1));
	gpuplan_destroy(&gp);
	CHECK(gp == NULL);
	gpuplan_destroy(&gp);
}

static void
none_one_host_ring(void)
{
	struct gpuplan_params p = t_params(GPU_MODE_NONE, 2);
	gpuplan *gp;
	char err[128];

	log_set_level(LOG_ERROR);
	CHECK_OK(gpuplan_create(&gp, &p, err, sizeof(err)));
	CHECK_EQ(gpuplan_ngpus(gp), 0);
	CHECK_EQ(gpuplan_ngroups(gp), 1);
	CHECK_EQ(gpuplan_nworkers(gp), 2);
	CHECK_EQ(gpuplan_worker_gpu(gp, 1), -1);
	CHECK_EQ(gpuplan_group_of(gp, -1), 0);
	CHECK_EQ(gpuplan_group_gpu(gp, 0), -1);
	CHECK(gpuplan_ring(gp, 0) != NULL);
	gpuplan_destroy(&gp);
}

static void
lists_refused(void)
{
	static const int bad[] = { 0, 5 }, one[] = { 1 }, dup[] = { 1, 1 };
	struct gpuplan_params p = t_params(GPU_MODE_LIST, 2);
	gpuplan *gp = NULL;
	char err[160];

	log_set_level(LOG_ERROR);
	p.req.list = bad;
	p.req.n_list = 2;
	CHECK_EQ(gpuplan_create(&gp, &p, err, sizeof(err)), -ENODEV);
	CHECK(gp == NULL);
	CHECK_MSG(strstr(err, "gpu 5") != NULL, "err: %s", err);
	p.req.list = dup;
	CHECK_EQ(gpuplan_create(&gp, &p, err, sizeof(err)), -EINVAL);
	p.req.list = one;
	p.req.n_list = 1;
	CHECK_OK(gpuplan_create(&gp, &p, err, sizeof(err)));
	CHECK_EQ(gpuplan_nworkers(gp), 2);
	CHECK_EQ(gpuplan_worker_gpu(gp, 0), 1);
	CHECK_EQ(gpuplan_worker_gpu(gp, 1), 1);
	gpuplan_destroy(&gp);
	p = t_params(GPU_MODE_ALL, 3);
	CHECK_OK(gpuplan_create(&gp, &p, err, sizeof(err)));
	CHECK_EQ(gpuplan_nworkers(gp), 6);
	gpuplan_destroy(&gp);
	p.workers_per_gpu = 0;
	CHECK_EQ(gpuplan_create(&gp, &p, err, sizeof(err)), -EINVAL);
}

/* Real discovery on this machine: with no GPU, auto gives the host ring and
   all is refused; with one, auto uses it. */
static void
auto_real_discovery(void)
{
	struct gpuplan_params p = t_params(GPU_MODE_AUTO, 0);
	gpuplan *gp;
	char err[160];
	int64_t t0 = clock_now_ms();
	int n;

	log_set_level(LOG_ERROR);
	CHECK_OK(gpuplan_create(&gp, &p, err, sizeof(err)));
	n = gpuplan_ngpus(gp);
	printf("    %d usable GPU(s), plan in %lld ms\n", n,
	       (long long)(clock_now_ms() - t0));
	CHECK_EQ(gpuplan_ngroups(gp), n > 0 ? n : 1);
	CHECK(gpuplan_ring(gp, 0) != NULL);
	gpuplan_destroy(&gp);
	if (n == 0) {
		p = t_params(GPU_MODE_ALL, 0);
		CHECK_EQ(gpuplan_create(&gp, &p, err, sizeof(err)), -ENODEV);
		CHECK(err[0] != '\0');
	}
}

static void
fallback_on_host_ring(void)
{
	struct gpuplan_params p = t_params(GPU_MODE_AUTO, 2);
	gpuplan *gp;
	ring *rs[4];
	char err[128];
	int fd = -1;

	log_set_level(LOG_ERROR);
	CHECK_OK(gpuplan_create(&gp, &p, err, sizeof(err)));
	/* Already a host ring: the same ring, nothing created. */
	CHECK_OK(gpuplan_fallback(gp, 1, "test", &fd));
	CHECK_EQ(fd, ring_fd(gpuplan_ring(gp, 1)));
	CHECK_EQ(gpuplan_group_rings(gp, 1, rs, 4), 1);
	CHECK_EQ(gpuplan_fallback(gp, 7, "test", &fd), -ENOENT);
	CHECK_EQ(fd, -1);
	CHECK_EQ(gpuplan_fallback(gp, -1, "test", &fd), -ENOENT);
	gpuplan_destroy(&gp);
}

/* ---- the supervisor's switch on WORKER_EXIT_GPU_RING ---------------------- */

struct sctx {
	struct event_base *base;
	supervisor *sup;
	int deaths, fallbacks;
	struct supervisor_death death[16];
	int new_fd;   /* what ring_fallback answers */
	int fb_gpu;
};

static void
s_on_death(void *arg, const struct supervisor_death *d)
{
	struct sctx *c = arg;

	if (c->deaths < 16) {
		c->death[c->deaths] = *d;
		c->death[c->deaths].reason = NULL;
	}
	c->deaths++;
}

static int
s_fallback(void *arg, int gpu, const char *why, int *fd)
{
	struct sctx *c = arg;

	c->fallbacks++;
	c->fb_gpu = gpu;
	*fd = c->new_fd;
	return 0;
}

static bool
s_idle(struct sctx *c, int n)
{
	return supervisor_count(c->sup, SUPERVISOR_IDLE) >= n;
}

static void
s_run(struct sctx *c, int deaths, int idle, int timeout_ms)
{
	int64_t end = clock_now_ms() + timeout_ms;

	while ((c->deaths < deaths || !s_idle(c, idle)) &&
	       clock_now_ms() < end) {
		struct timeval tv = { 0, 5000 };

		event_base_loopexit(c->base, &tv);
		event_base_dispatch(c->base);
	}
}

/* A worker program: worker 0 exits 5 the first time (or always), then it
   is tests/helpers/fake_worker. */
static const char *
s_script(bool always)
{
	static char path[512];
	const char *dir = th_tmpdir();
	FILE *f;

	snprintf(path, sizeof(path), "%s/gpu_worker.sh", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fprintf(f, "#!/bin/sh\nid=; prev=\nfor a in \"$@\"; do\n"
	        "  [ \"$prev\" = --id ] && id=$a; prev=$a\ndone\n"
	        "if [ \"$id\" = 0 ] && { %s || [ ! -e %s/once ]; }; then\n"
	        "  : > %s/once; exit %d\nfi\n"
	        "exec %s/tests/helpers/fake_worker \"$@\"\n",
	        always ? "true" : "false", dir, dir, WORKER_EXIT_GPU_RING,
	        th_build_dir());
	fclose(f);
	CHECK_OK(chmod(path, 0700));
	return path;
}

static ino_t
s_inode(int fd)
{
	struct stat st;

	CHECK_OK(fstat(fd, &st));
	return st.st_ino;
}

/* Inode of what fd 3 (the ring) of a process is. */
static ino_t
s_proc_ring(pid_t pid)
{
	char p[64];
	struct stat st;

	snprintf(p, sizeof(p), "/proc/%d/fd/3", (int)pid);
	return stat(p, &st) == 0 ? st.st_ino : 0;
}

static void
s_setup(struct sctx *c, struct supervisor_config *cfg, bool always,
        bool with_fallback, int *old_fd)
{
	static int gpus[2] = { 0, 0 }, fds[2];

	memset(c, 0, sizeof(*c));
	memset(cfg, 0, sizeof(*cfg));
	log_set_level(LOG_ERROR);
	c->base = event_base_new();
	CHECK(c->base);
	*old_fd = memfd_create("old-ring", MFD_CLOEXEC);
	c->new_fd = memfd_create("new-ring", MFD_CLOEXEC);
	CHECK(*old_fd >= 0 && c->new_fd >= 0);
	fds[0] = fds[1] = *old_fd;
	cfg->nworkers = 2;
	cfg->gpus = gpus;
	cfg->ring_fds = fds;
	cfg->worker_path = s_script(always);
	cfg->processor = "/nonexistent/fake.so";
	cfg->backoff_min_ms = 300;
	cfg->cb.on_death = s_on_death;
	cfg->cb_arg = c;
	if (with_fallback) {
		cfg->ring_fallback = s_fallback;
		cfg->ring_fallback_arg = c;
	}
}

static void
exit5_switches_gpu_ring(void)
{
	struct supervisor_config cfg;
	struct supervisor_worker_info wi;
	struct sctx c;
	int old_fd, d0 = -1, d1 = -1;
	int64_t t0;

	s_setup(&c, &cfg, false, true, &old_fd);
	t0 = clock_now_ms();
	CHECK_OK(supervisor_create(&c.sup, c.base, &cfg));
	CHECK_OK(supervisor_start(c.sup));
	s_run(&c, 1, 2, 15000);
	/* Worker 1 may have been killed (switch) before or after READY. */
	s_run(&c, 2, 2, 15000);
	printf("    switched and both idle in %lld ms, deaths=%d\n",
	       (long long)(clock_now_ms() - t0), c.deaths);
	CHECK_EQ(c.fallbacks, 1);
	CHECK_EQ(c.fb_gpu, 0);
	for (int i = 0; i < c.deaths && i < 16; i++) {
		if (c.death[i].worker == 0 && d0 < 0)
			d0 = i;
		if (c.death[i].worker == 1 && d1 < 0)
			d1 = i;
	}
	CHECK(d0 >= 0 && d1 >= 0);
	CHECK_EQ(c.death[d0].exit_code, WORKER_EXIT_GPU_RING);
	CHECK(c.death[d0].gpu_ring && c.death[d0].ring_switched);
	CHECK_EQ(c.death[d0].gpu, 0);
	CHECK_EQ(c.death[d0].respawn_ms, 0);
	CHECK(c.death[d1].killed && !c.death[d1].gpu_ring);
	CHECK(s_idle(&c, 2));
	/* Both now map the new ring, not the old one. */
	for (int w = 0; w < 2; w++) {
		CHECK_OK(supervisor_info(c.sup, w, &wi));
		CHECK_EQ(s_proc_ring(wi.pid), s_inode(c.new_fd));
	}
	supervisor_destroy(&c.sup);
	event_base_free(c.base);
	close(old_fd);
	close(c.new_fd);
}

/* Without a fallback (or when it answers the same ring) exit 5 is a crash:
   respawned with backoff into the same ring. */
static void
exit5_without_fallback_is_a_crash(void)
{
	struct supervisor_config cfg;
	struct supervisor_worker_info wi;
	struct sctx c;
	int old_fd;

	s_setup(&c, &cfg, true, false, &old_fd);
	CHECK_OK(supervisor_create(&c.sup, c.base, &cfg));
	CHECK_OK(supervisor_start(c.sup));
	s_run(&c, 3, 1, 15000);
	CHECK(c.deaths >= 3);
	CHECK_EQ(c.fallbacks, 0);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ(c.death[i].worker, 0);
		CHECK(c.death[i].gpu_ring && !c.death[i].ring_switched);
	}
	/* The second death in a row waits the backoff. */
	CHECK(c.death[1].respawn_ms >= 300);
	CHECK_OK(supervisor_info(c.sup, 1, &wi));
	CHECK_EQ(wi.state, SUPERVISOR_IDLE);
	CHECK_EQ(s_proc_ring(wi.pid), s_inode(old_fd));
	supervisor_destroy(&c.sup);
	event_base_free(c.base);
	close(old_fd);
	close(c.new_fd);
}

/* ---- gpuinfo and stream_gpu without a GPU --------------------------------- */

static void
gpuinfo_without_nvml(void)
{
	gpuinfo *gi;
	json_t *o = json_object(), *a = json_array();

	log_set_level(LOG_ERROR);
	CHECK_OK(gpuinfo_create(&gi, "/nonexistent/libnvidia-ml.so.1", 50));
	usleep(100 * 1000);
	CHECK_OK(gpuinfo_fill(gi, false, o));
	CHECK_OK(gpuinfo_fill(gi, true, o));
	CHECK_EQ(json_object_size(o), 0);
	CHECK_EQ(gpuinfo_fill(gi, true, a), -EINVAL);
	CHECK_EQ(gpuinfo_fill(NULL, true, o), -EINVAL);
	gpuinfo_destroy(&gi);
	CHECK(gi == NULL);
	gpuinfo_destroy(&gi);
	/* The system's NVML, if any: whatever it says is an object. */
	CHECK_OK(gpuinfo_create(&gi, NULL, 0));
	usleep(100 * 1000);
	CHECK_OK(gpuinfo_fill(gi, true, o));
	printf("    system NVML: %zu GPU(s)\n", json_object_size(o));
	gpuinfo_destroy(&gi);
	json_decref(o);
	json_decref(a);
}

/* A stream on a "CUDA" ring where CUDA does not work: both directions fail
   with an error (logged once), nothing is written, nothing leaks. */
static void
stream_gpu_fails_cleanly(void)
{
	struct ring_params rp = { .slot_count = 2, .max_width = 64,
	                          .max_height = 64, .device = -1 };
	struct stream s;
	struct ring_frame lay;
	uint32_t slot, gen;
	uint8_t *base;
	uint64_t size;
	AVFrame *in = av_frame_alloc();

	log_set_level(LOG_ERROR);
	memset(&s, 0, sizeof(s));
	s.request_id = "t";
	CHECK_OK(ring_create(&s.ring, &rp));
	CHECK_OK(stream_gpu_open(&s, false, 0));
	CHECK(s.cuda == NULL);
	CHECK_OK(stream_gpu_open(&s, true, 0));
	CHECK(s.cuda != NULL);
	CHECK_EQ(s.cuda->slot_bytes, ring_slot_bytes(s.ring));
	CHECK_OK(ring_acquire(s.ring, &slot, &gen));
	CHECK_OK(ring_slot_ptr(s.ring, slot, gen, &base, &size));
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 64, 64, size, &lay));
	memset(base, 0x11, lay.bytes);
	CHECK(stream_gpu_upload(&s, in, base, &lay) < 0);
	CHECK(s.cuda->up_failed);
	CHECK(stream_gpu_upload(&s, in, base, &lay) < 0);
	CHECK(stream_gpu_download(&s, base, &lay) == NULL);
	CHECK(s.cuda->down_failed);
	CHECK_EQ(base[0], 0x11);
	CHECK_EQ(base[lay.bytes - 1], 0x11);
	stream_gpu_close(&s);
	CHECK(s.cuda == NULL);
	stream_gpu_close(&s);
	av_frame_free(&in);
	ring_destroy(&s.ring);
}

static const struct th_case cases[] = {
	TH_CASE(parse_fake),
	TH_CASE(fake_two_gpus),
	TH_CASE(none_one_host_ring),
	TH_CASE(lists_refused),
	TH_CASE(auto_real_discovery),
	TH_CASE(fallback_on_host_ring),
	TH_CASE(exit5_switches_gpu_ring),
	TH_CASE(exit5_without_fallback_is_a_crash),
	TH_CASE(gpuinfo_without_nvml),
	TH_CASE(stream_gpu_fails_cleanly),
	TH_END
};

TH_MAIN(cases)
