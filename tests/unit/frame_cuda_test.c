/*
 * Tests of the worker's GPU frame path (worker/frame_cuda.c) without a GPU:
 * path choice, the CUDA ring header read by the worker, build/worker exiting
 * WORKER_EXIT_GPU_RING with one clear line for a CUDA ring it cannot open,
 * and every path's copies and views through host-memory fakes of the CUDA
 * calls, also inside the serve loop (worker/loop.c) with a real plugin.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "frame_processor.h"
#include "harness.h"
#include "ipc.h"
#include "msg.h"
#include "ring.h"
#include "worker/frame_cuda.h"
#include "worker/host.h"
#include "worker/loop.h"
#include "worker_exit.h"

#define FC_W 64
#define FC_H 48
#define FC_WAIT_MS 20000

/* ---- host-memory fakes of the CUDA calls --------------------------------- */

/* What the fakes saw (one forked case each, so per-process counters). */
static struct {
	unsigned streams, syncs, host_allocs, dev_allocs, frees;
	unsigned copies[3]; /* by enum gpu_copy */
	int fail_copy;      /* non-zero: copy2d returns this */
	int fail_stream;    /* non-zero: stream_create returns this */
} fake;
static int fake_stream_token;

static int
fake_stream_create(int ordinal, void **s)
{
	CHECK(ordinal >= 0);
	if (fake.fail_stream) {
		*s = NULL;
		return fake.fail_stream;
	}
	fake.streams++;
	*s = &fake_stream_token;
	return 0;
}

static void
fake_stream_destroy(void **s)
{
	if (*s) {
		CHECK(*s == &fake_stream_token);
		fake.streams--;
	}
	*s = NULL;
}

static int
fake_stream_sync(void *s)
{
	CHECK(s == &fake_stream_token);
	fake.syncs++;
	return 0;
}

static int
fake_host_alloc(void **p, size_t bytes)
{
	*p = calloc(1, bytes);
	fake.host_allocs++;
	return *p ? 0 : -ENOMEM;
}

static int
fake_dev_alloc(void **p, size_t bytes)
{
	*p = calloc(1, bytes);
	fake.dev_allocs++;
	return *p ? 0 : -ENOMEM;
}

static void
fake_free(void **p)
{
	if (*p)
		fake.frees++;
	free(*p);
	*p = NULL;
}

static int
fake_copy2d(void *dst, size_t dp, const void *src, size_t sp, size_t w,
            size_t rows, enum gpu_copy kind, void *s)
{
	CHECK(s == &fake_stream_token);
	CHECK(w <= dp && w <= sp && (unsigned)kind < 3);
	if (fake.fail_copy)
		return fake.fail_copy;
	for (size_t y = 0; y < rows; y++)
		memcpy((uint8_t *)dst + y * dp, (const uint8_t *)src + y * sp, w);
	fake.copies[kind]++;
	return 0;
}

static const struct frame_cuda_ops fake_ops = {
	.stream_create = fake_stream_create,
	.stream_destroy = fake_stream_destroy,
	.stream_sync = fake_stream_sync,
	.host_alloc = fake_host_alloc,
	.host_free = fake_free,
	.dev_alloc = fake_dev_alloc,
	.dev_free = fake_free,
	.copy2d = fake_copy2d,
};

/* ---- a fake CUDA ring header --------------------------------------------- */

static const uint8_t fc_uuid[16] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
                                     5, 6, 7, 8, 9, 10, 11, 12 };

/*
 * A sealed one-page memfd holding the header of a CUDA ring as
 * common/ring_cuda.c writes it (backend_data: "CUDA", version 1, UUID,
 * region bytes, gateway ordinal, a 64-byte handle that opens nothing).
 */
static int
fc_cuda_header_fd(int32_t gateway_device)
{
	struct ring_header *h = calloc(1, sizeof(*h));
	uint8_t *bd;
	uint64_t region;
	uint32_t u32;
	int fd;

	CHECK(h);
	h->magic = RING_MAGIC;
	h->layout_version = RING_LAYOUT_VERSION;
	h->header_bytes = RING_HEADER_BYTES;
	h->page_bytes = RING_PAGE_BYTES;
	h->backend = RING_BACKEND_CUDA;
	h->slot_count = 4;
	h->max_width = 320;
	h->max_height = 240;
	h->slot_bytes = ring_slot_bytes_for(320, 240);
	h->guard_bytes = RING_PAGE_BYTES;
	h->slot_stride = h->slot_bytes + h->guard_bytes;
	h->slots_offset = 0;
	h->total_bytes = h->slot_count * h->slot_stride;
	h->creator_pid = getpid();
	region = (h->total_bytes + (2u << 20) - 1) & ~((uint64_t)(2u << 20) - 1);
	bd = h->backend_data;
	u32 = 0x41445543u; /* "CUDA" */
	memcpy(bd, &u32, 4);
	u32 = 1;
	memcpy(bd + 4, &u32, 4);
	memcpy(bd + 8, fc_uuid, 16);
	memcpy(bd + 24, &region, 8);
	memcpy(bd + 32, &gateway_device, 4);
	memset(bd + 40, 0x77, 64);
	fd = memfd_create("fc-cuda-header", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, RING_HEADER_BYTES));
	CHECK_EQ(pwrite(fd, h, sizeof(*h), 0), sizeof(*h));
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE |
	                                F_SEAL_SEAL));
	free(h);
	return fd;
}

static void
test_mode_table(void)
{
	enum frame_cuda_mode m;

	CHECK_OK(frame_cuda_mode_for(RING_BACKEND_HOST, FP_MEM_HOST, -1, &m));
	CHECK_EQ(m, FRAME_CUDA_NONE);
	CHECK_OK(frame_cuda_mode_for(RING_BACKEND_HOST, FP_MEM_HOST, 0, &m));
	CHECK_EQ(m, FRAME_CUDA_NONE);
	CHECK_EQ(frame_cuda_mode_for(RING_BACKEND_HOST, FP_MEM_CUDA, -1, &m), -ENOTSUP);
	CHECK_OK(frame_cuda_mode_for(RING_BACKEND_HOST, FP_MEM_CUDA, 0, &m));
	CHECK_EQ(m, FRAME_CUDA_VIA_DEVICE);
	CHECK_OK(frame_cuda_mode_for(RING_BACKEND_CUDA, FP_MEM_CUDA, 0, &m));
	CHECK_EQ(m, FRAME_CUDA_DIRECT);
	CHECK_OK(frame_cuda_mode_for(RING_BACKEND_CUDA, FP_MEM_HOST, 0, &m));
	CHECK_EQ(m, FRAME_CUDA_VIA_HOST);
	CHECK_EQ(frame_cuda_mode_for(9, FP_MEM_HOST, 0, &m), -EINVAL);
	CHECK_EQ(frame_cuda_mode_for(RING_BACKEND_CUDA, 5, 0, &m), -EINVAL);
	CHECK_STR(frame_cuda_mode_name(FRAME_CUDA_VIA_HOST), "via-host");
	CHECK_STR(frame_cuda_mode_name(FRAME_CUDA_DIRECT), "direct");
}

/* The worker reads a CUDA header's GPU, and a host ring is not CUDA. */
static void
test_ring_info(void)
{
	struct ring_params rp = { .slot_count = 2, .max_width = 64, .max_height = 48 };
	struct frame_cuda_ring_info ri;
	char why[256];
	ring *r;
	int fd = fc_cuda_header_fd(3);

	CHECK_OK(frame_cuda_ring_info(fd, &ri));
	CHECK(ri.cuda);
	CHECK_EQ(ri.gateway_device, 3);
	CHECK(memcmp(ri.uuid, fc_uuid, 16) == 0);
	CHECK_STR(ri.uuid_text, "GPU-deadbeef-0102-0304-0506-0708090a0b0c");
	/* Without a GPU (or CUDA) the ring's GPU is never found. */
	CHECK_EQ(frame_cuda_ring_device(&ri, 7), 7);
	frame_cuda_attach_reason(&ri, -ENOTSUP, why, sizeof(why));
	printf("    reason: %s\n", why);
	CHECK(strstr(why, "call=") && strstr(why, "reason="));
	frame_cuda_attach_reason(&ri, -EINVAL, why, sizeof(why));
	CHECK(strstr(why, "call=ring_attach reason=\"bad CUDA ring header"));
	close(fd);
	CHECK_OK(ring_create(&r, &rp));
	CHECK_OK(frame_cuda_ring_info(ring_fd(r), &ri));
	CHECK(!ri.cuda);
	ring_destroy(&r);
	CHECK_EQ(frame_cuda_ring_info(-1, &ri), -EBADF);
}

/* ---- build/worker against a ring it cannot serve --------------------------- */

/*
 * Runs build/worker with ring fd `fd`, plugin NAME (build/plugins/NAME.so),
 * extra args and env CUDA_VISIBLE_DEVICES=vis (NULL: unset), stderr into a
 * file, a listener at url; returns the exit status and the log in logbuf.
 */
static int
fc_run_worker(int fd, const char *name, const char *gpu, const char *vis,
              char *logbuf, size_t cap, int32_t *err_code)
{
	char exe[512], plugin[512], fdarg[16], logpath[600], url[IPC_URL_MAX];
	uint8_t buf[4096];
	ipc_dir *dir;
	ipc *sock;
	pid_t pid;
	size_t len;
	ssize_t n;
	int status = 0, lfd;

	snprintf(exe, sizeof(exe), "%s/worker", th_build_dir());
	snprintf(plugin, sizeof(plugin), "%s/plugins/%s.so", th_build_dir(), name);
	snprintf(fdarg, sizeof(fdarg), "%d", fd);
	snprintf(logpath, sizeof(logpath), "%s/worker.log", th_tmpdir());
	CHECK_OK(ipc_dir_create(&dir, NULL));
	CHECK_OK(ipc_dir_url(dir, "w1.ipc", url, sizeof(url)));
	CHECK_OK(ipc_listen(&sock, url));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int o = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (o < 0 || dup2(o, 2) < 0)
			_exit(126);
		fcntl(fd, F_SETFD, 0);
		if (vis)
			setenv("CUDA_VISIBLE_DEVICES", vis, 1);
		else
			unsetenv("CUDA_VISIBLE_DEVICES");
		execl(exe, exe, "--id", "1", "--url", url, "--ring-fd", fdarg,
		      "--processor", plugin, "--gpu", gpu, "--log-level", "warn",
		      (char *)NULL);
		_exit(127);
	}
	*err_code = 0;
	/* worker_report_fatal: one ERROR before the exit. */
	if (ipc_recv(sock, buf, sizeof(buf), &len, FC_WAIT_MS) == 0) {
		struct msg m;

		if (msg_decode(buf, len, &m) == 0 && m.type == MSG_ERROR)
			*err_code = m.u.error.code;
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	ipc_close(&sock);
	ipc_dir_destroy(&dir);
	lfd = open(logpath, O_RDONLY);
	CHECK(lfd >= 0);
	n = read(lfd, logbuf, cap - 1);
	close(lfd);
	logbuf[n > 0 ? n : 0] = '\0';
	return status;
}

/* A CUDA ring that cannot be opened here: exit 5 and one line saying why. */
static void
test_cuda_ring_attach_fails_exit_5(void)
{
	static const char *const vis[] = { NULL, "", "0" };
	char log[8192];
	int32_t code;

	for (size_t i = 0; i < 3; i++) {
		int fd = fc_cuda_header_fd(1), st;
		int64_t t0 = clock_now_ns();

		st = fc_run_worker(fd, "passthrough", "0", vis[i], log, sizeof(log), &code);
		close(fd);
		printf("    CUDA_VISIBLE_DEVICES=%s: %.0f ms, log: %s", vis[i] ? vis[i] : "(unset)",
		       (clock_now_ns() - t0) / 1e6, log);
		CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_GPU_RING,
		          "status 0x%x, want exit %d", st, WORKER_EXIT_GPU_RING);
		CHECK(strstr(log, "cuda ring attach failed"));
		CHECK(strstr(log, "gpu=GPU-deadbeef-0102-0304-0506-0708090a0b0c"));
		CHECK(strstr(log, "call="));
		CHECK(strstr(log, "reason="));
		CHECK(strstr(log, "exit 5"));
		CHECK(code < 0); /* the gateway got an ERROR first */
	}
}

/* A broken CUDA header is still a GPU-ring failure (the gateway falls back). */
static void
test_cuda_ring_bad_seals_exit_5(void)
{
	char log[8192];
	int32_t code;
	int fd = memfd_create("fc-unsealed", MFD_CLOEXEC), src = fc_cuda_header_fd(0), st;
	uint8_t page[RING_HEADER_BYTES];

	CHECK(fd >= 0);
	CHECK_EQ(pread(src, page, sizeof(page), 0), sizeof(page));
	CHECK_EQ(pwrite(fd, page, sizeof(page), 0), sizeof(page));
	close(src);
	st = fc_run_worker(fd, "passthrough", "0", NULL, log, sizeof(log), &code);
	close(fd);
	printf("    log: %s", log);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_GPU_RING, "status 0x%x", st);
	CHECK(strstr(log, "cuda ring attach failed"));
}

/* A host ring still exits 2 when it is not a ring; a CUDA plugin with no GPU too. */
static void
test_host_ring_errors_exit_2(void)
{
	struct ring_params rp = { .slot_count = 2, .max_width = 64, .max_height = 48 };
	char log[8192], path[512];
	int32_t code;
	ring *r;
	int fd = memfd_create("fc-not-a-ring", MFD_CLOEXEC), st;

	CHECK(fd >= 0);
	CHECK_OK(ftruncate(fd, 8192));
	st = fc_run_worker(fd, "passthrough", "0", NULL, log, sizeof(log), &code);
	close(fd);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_CONFIG, "status 0x%x", st);
	CHECK(!strstr(log, "cuda ring"));
	snprintf(path, sizeof(path), "%s/plugins/invert_cuda.so", th_build_dir());
	if (access(path, R_OK) != 0) {
		printf("    skipped: no invert_cuda.so (CUDA=0 build)\n");
		return;
	}
	CHECK_OK(ring_create(&r, &rp));
	CHECK_OK(ring_inherit_fd(r, &fd));
	st = fc_run_worker(fd, "invert_cuda", "-1", NULL, log, sizeof(log), &code);
	printf("    --gpu -1: %s", log);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_CONFIG, "status 0x%x", st);
	CHECK(strstr(log, "plugin wants CUDA frames but the ring is in host memory"));
	st = fc_run_worker(fd, "invert_cuda", "0", "", log, sizeof(log), &code);
	printf("    --gpu 0, no device: %s", log);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == WORKER_EXIT_CONFIG, "status 0x%x", st);
	CHECK(strstr(log, "gpu frame path via-device failed"));
	close(fd);
	ring_destroy(&r);
}

/* ---- the paths through the fakes ------------------------------------------ */

/* A host ring whose slots stand for device memory (the fakes copy on the host). */
struct fc_env {
	ring *r;
	struct ring_frame lay;
	uint32_t in, in_gen, out, out_gen;
	uint8_t *in_base, *out_base;
};

static void
fc_env_setup(struct fc_env *e)
{
	struct ring_params rp = { .slot_count = 4, .max_width = 320, .max_height = 240 };
	uint64_t size;

	memset(e, 0, sizeof(*e));
	CHECK_OK(ring_create(&e->r, &rp));
	CHECK_OK(ring_acquire(e->r, &e->in, &e->in_gen));
	CHECK_OK(ring_acquire(e->r, &e->out, &e->out_gen));
	CHECK_OK(ring_slot_ptr(e->r, e->in, e->in_gen, &e->in_base, &size));
	CHECK_OK(ring_slot_ptr(e->r, e->out, e->out_gen, &e->out_base, &size));
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, FC_W, FC_H, size, &e->lay));
	for (uint32_t y = 0; y < FC_H; y++)
		for (uint32_t x = 0; x < FC_W * 3; x++)
			e->in_base[e->lay.offset[0] + (size_t)y * e->lay.stride[0] + x] =
			    (uint8_t)(x + 7 * y);
}

/* A view as loop_view makes it: host slot pointers. */
static void
fc_host_view(struct fc_env *e, struct fp_video_frame *v, uint8_t *base)
{
	memset(v, 0, sizeof(*v));
	v->struct_size = sizeof(*v);
	v->width = FC_W;
	v->height = FC_H;
	v->format = FP_FMT_RGB24;
	v->device = -1;
	v->plane[0] = base + e->lay.offset[0];
	v->stride[0] = e->lay.stride[0];
}

/* The plugin's work: out = 255 - in, row by row at the views' strides. */
static void
fc_invert(const struct fp_video_frame *in, struct fp_video_frame *out)
{
	for (uint32_t y = 0; y < in->height; y++)
		for (uint32_t x = 0; x < in->width * 3; x++)
			out->plane[0][(size_t)y * out->stride[0] + x] =
			    (uint8_t)(255 - in->plane[0][(size_t)y * in->stride[0] + x]);
}

static void
fc_check_inverted(const struct fc_env *e)
{
	for (uint32_t y = 0; y < FC_H; y++)
		for (uint32_t x = 0; x < FC_W * 3; x++) {
			size_t o = e->lay.offset[0] + (size_t)y * e->lay.stride[0] + x;

			CHECK_MSG((unsigned)e->out_base[o] + e->in_base[o] == 255u,
			          "byte %u,%u: %u for %u", x, y, e->out_base[o], e->in_base[o]);
		}
}

/* CUDA ring + CUDA plugin: views on the slots, no copy, one sync. */
static void
test_direct_views_no_copy(void)
{
	struct fp_video_frame in, out;
	struct frame_cuda_stats st;
	struct fc_env e;
	frame_cuda *fc;
	uint8_t *work;
	char why[256];

	fc_env_setup(&e);
	CHECK_OK(frame_cuda_create(&fc, FRAME_CUDA_DIRECT, e.r, 0, &fake_ops, why, sizeof(why)));
	CHECK_EQ(fake.streams, 1);
	CHECK_EQ(fake.host_allocs + fake.dev_allocs, 0);
	CHECK(frame_cuda_out_on_device(fc));
	fc_host_view(&e, &in, e.in_base);
	fc_host_view(&e, &out, e.out_base);
	CHECK_OK(frame_cuda_views(fc, &e.lay, e.in_base, e.out_base, &in, &out, &work));
	CHECK_EQ(in.mem, FP_MEM_CUDA);
	CHECK_EQ(out.mem, FP_MEM_CUDA);
	CHECK_EQ(in.device, 0);
	CHECK(in.cuda_stream == &fake_stream_token && out.cuda_stream == in.cuda_stream);
	CHECK(in.plane[0] == e.in_base + e.lay.offset[0]);
	CHECK(out.plane[0] == e.out_base + e.lay.offset[0]);
	CHECK(work == e.out_base);
	fc_invert(&in, &out);
	CHECK_OK(frame_cuda_finish(fc, &e.lay, e.out_base));
	fc_check_inverted(&e);
	frame_cuda_get_stats(fc, &st);
	CHECK_EQ(st.h2d + st.d2h + st.d2d, 0);
	CHECK_EQ(st.syncs, 1);
	CHECK_EQ(fake.syncs, 1);
	frame_cuda_destroy(&fc);
	CHECK(fc == NULL);
	CHECK_EQ(fake.streams, 0);
	frame_cuda_destroy(&fc);
	ring_destroy(&e.r);
}

/* CUDA ring + host plugin: D2H into pinned staging, host views, H2D back. */
static void
test_via_host_two_copies(void)
{
	struct fp_video_frame in, out;
	struct frame_cuda_stats st;
	struct fc_env e;
	frame_cuda *fc;
	uint8_t *work;
	char why[256];

	fc_env_setup(&e);
	CHECK_OK(frame_cuda_create(&fc, FRAME_CUDA_VIA_HOST, e.r, 0, &fake_ops, why, sizeof(why)));
	CHECK_EQ(fake.host_allocs, 1);
	CHECK(!frame_cuda_out_on_device(fc));
	CHECK(frame_cuda_stream(fc) == NULL);
	frame_cuda_stream_started(fc, 9);
	for (int i = 0; i < 3; i++) {
		memset(e.out_base, 0, e.lay.bytes);
		fc_host_view(&e, &in, e.in_base);
		fc_host_view(&e, &out, e.out_base);
		CHECK_OK(frame_cuda_views(fc, &e.lay, e.in_base, e.out_base, &in, &out, &work));
		CHECK_EQ(in.mem, FP_MEM_HOST);
		CHECK_EQ(in.device, -1);
		CHECK(in.cuda_stream == NULL);
		CHECK(in.plane[0] != e.in_base + e.lay.offset[0]);
		CHECK(out.plane[0] == work + e.lay.offset[0]);
		CHECK(work != e.out_base);
		/* The staging holds the input before the plugin runs. */
		CHECK(memcmp(in.plane[0], e.in_base + e.lay.offset[0], e.lay.bytes -
		             e.lay.offset[0]) == 0);
		fc_invert(&in, &out);
		CHECK_OK(frame_cuda_finish(fc, &e.lay, e.out_base));
		fc_check_inverted(&e);
	}
	frame_cuda_get_stats(fc, &st);
	CHECK_EQ(st.d2h, 3);
	CHECK_EQ(st.h2d, 3);
	CHECK_EQ(st.d2d, 0);
	CHECK_EQ(st.syncs, 6); /* after the download and the upload: the host
	                          plugin queued nothing on the stream */
	CHECK_EQ(fake.host_allocs, 1); /* sized once */
	/* A dropped frame (no output layout): the stream is drained, nothing copied. */
	CHECK_OK(frame_cuda_finish(fc, NULL, e.out_base));
	frame_cuda_get_stats(fc, &st);
	CHECK_EQ(st.h2d, 3);
	frame_cuda_destroy(&fc);
	CHECK_EQ(fake.frees, 1);
	ring_destroy(&e.r);
}

/* Host ring + CUDA plugin (--gpu N): H2D into device staging, D2H back. */
static void
test_via_device_two_copies(void)
{
	struct fp_video_frame in, out;
	struct frame_cuda_stats st;
	struct fc_env e;
	frame_cuda *fc;
	uint8_t *work;
	char why[256];

	fc_env_setup(&e);
	CHECK_OK(frame_cuda_create(&fc, FRAME_CUDA_VIA_DEVICE, e.r, 2, &fake_ops, why,
	                           sizeof(why)));
	CHECK_EQ(fake.dev_allocs, 1);
	CHECK(frame_cuda_out_on_device(fc));
	fc_host_view(&e, &in, e.in_base);
	fc_host_view(&e, &out, e.out_base);
	CHECK_OK(frame_cuda_views(fc, &e.lay, e.in_base, e.out_base, &in, &out, &work));
	CHECK_EQ(in.mem, FP_MEM_CUDA);
	CHECK_EQ(out.device, 2);
	CHECK(out.cuda_stream == &fake_stream_token);
	CHECK(work != e.out_base);
	fc_invert(&in, &out);
	CHECK_OK(frame_cuda_finish(fc, &e.lay, e.out_base));
	fc_check_inverted(&e);
	frame_cuda_get_stats(fc, &st);
	CHECK_EQ(st.h2d, 1);
	CHECK_EQ(st.d2h, 1);
	frame_cuda_destroy(&fc);
	ring_destroy(&e.r);
}

/* A plugin's own output layout on the device: moved with D2D copies. */
static void
test_direct_move_is_d2d(void)
{
	struct fp_video_frame o;
	struct frame_cuda_stats st;
	struct ring_frame small;
	struct fc_env e;
	frame_cuda *fc;
	char why[256];
	uint32_t w = 40, h = 30, stride = 40 * 3 + 5;

	fc_env_setup(&e);
	CHECK_OK(frame_cuda_create(&fc, FRAME_CUDA_DIRECT, e.r, 0, &fake_ops, why, sizeof(why)));
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, w, h, ring_slot_bytes(e.r), &small));
	memset(&o, 0, sizeof(o));
	o.width = w;
	o.height = h;
	o.format = FP_FMT_RGB24;
	/* The plugin wrote packed rows of another stride at 1000 bytes in. */
	o.plane[0] = e.out_base + 1000;
	o.stride[0] = stride;
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w * 3; x++)
			o.plane[0][(size_t)y * stride + x] = (uint8_t)(y * 3 + x);
	CHECK_OK(frame_cuda_move(fc, &o, &small, e.out_base));
	CHECK_OK(frame_cuda_finish(fc, &small, e.out_base));
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w * 3; x++)
			CHECK_EQ(e.out_base[small.offset[0] + (size_t)y * small.stride[0] + x],
			         (uint8_t)(y * 3 + x));
	frame_cuda_get_stats(fc, &st);
	CHECK_EQ(st.d2d, 2); /* into the scratch, back into the slot */
	CHECK_EQ(fake.dev_allocs, 1);
	frame_cuda_destroy(&fc);
	CHECK_EQ(fake.frees, 1);
	ring_destroy(&e.r);
}

/* Failing CUDA calls come back as errors with the failing step named. */
static void
test_failures_reported(void)
{
	struct fp_video_frame in, out;
	struct fc_env e;
	frame_cuda *fc;
	uint8_t *work;
	char why[256] = "";

	fc_env_setup(&e);
	fake.fail_stream = -ENODEV;
	CHECK_EQ(frame_cuda_create(&fc, FRAME_CUDA_DIRECT, e.r, 0, &fake_ops, why,
	                           sizeof(why)), -ENODEV);
	CHECK(fc == NULL);
	CHECK(strstr(why, "cudaStreamCreateWithFlags"));
	fake.fail_stream = 0;
	CHECK_EQ(frame_cuda_create(&fc, FRAME_CUDA_NONE, e.r, 0, &fake_ops, why,
	                           sizeof(why)), -EINVAL);
	CHECK_EQ(frame_cuda_create(&fc, FRAME_CUDA_DIRECT, e.r, -1, &fake_ops, why,
	                           sizeof(why)), -EINVAL);
	CHECK_OK(frame_cuda_create(&fc, FRAME_CUDA_VIA_HOST, e.r, 0, &fake_ops, why,
	                           sizeof(why)));
	fake.fail_copy = -EIO;
	fc_host_view(&e, &in, e.in_base);
	fc_host_view(&e, &out, e.out_base);
	CHECK_EQ(frame_cuda_views(fc, &e.lay, e.in_base, e.out_base, &in, &out, &work), -EIO);
	CHECK_EQ(frame_cuda_finish(fc, &e.lay, e.out_base), -EIO);
	frame_cuda_destroy(&fc);
	ring_destroy(&e.r);
}

/* ---- the serve loop on a GPU path (fakes), with a real plugin ------------- */

struct fc_loop {
	ipc_dir *dir;
	ipc *gw, *wk;
	ring *gring, *wring;
	host *h;
	loop *l;
	frame_cuda *fc;
	pthread_t thr;
	int status;
	uint8_t buf[65536];
};

static void *
fc_loop_thread(void *arg)
{
	struct fc_loop *t = arg;

	t->status = loop_run(t->l);
	return NULL;
}

static void
fc_loop_send(struct fc_loop *t, const struct msg *m)
{
	uint8_t out[4096];
	size_t len;

	CHECK_OK(msg_encode(m, out, sizeof(out), &len));
	CHECK_OK(ipc_send_timeout(t->gw, out, len, 5000));
}

static void
fc_loop_expect(struct fc_loop *t, enum msg_type type, struct msg *m)
{
	size_t len;

	CHECK_OK(ipc_recv(t->gw, t->buf, sizeof(t->buf), &len, FC_WAIT_MS));
	CHECK_OK(msg_decode(t->buf, len, m));
	CHECK_MSG(m->type == type, "got %s, want %s", msg_type_name(m->type),
	          msg_type_name(type));
}

/* Serves `frames` frames of `plugin` through path `mode` and checks them. */
static void
fc_loop_run(const char *plugin, enum frame_cuda_mode mode, int frames)
{
	struct ring_params rp = { .slot_count = 4, .max_width = 320, .max_height = 240 };
	struct loop_config lc = { .worker_id = 1, .gpu = 0 };
	struct frame_cuda_stats st;
	struct fc_loop t;
	struct msg m;
	char path[512], err[HOST_ERR_LEN], url[IPC_URL_MAX];
	int fd;

	memset(&t, 0, sizeof(t));
	snprintf(path, sizeof(path), "%s/plugins/%s.so", th_build_dir(), plugin);
	CHECK_OK(ipc_dir_create(&t.dir, NULL));
	CHECK_OK(ipc_dir_url(t.dir, "w1.ipc", url, sizeof(url)));
	CHECK_OK(ipc_listen(&t.gw, url));
	CHECK_OK(ipc_dial(&t.wk, url, 5000));
	CHECK_OK(ring_create(&t.gring, &rp));
	CHECK_OK(ring_inherit_fd(t.gring, &fd));
	CHECK_OK(ring_attach(&t.wring, fd));
	close(fd);
	CHECK_MSG(host_load(&t.h, path, err, sizeof(err)) == 0, "%s", err);
	CHECK_OK(host_init(t.h, "{}"));
	CHECK_OK(frame_cuda_create(&t.fc, mode, t.wring, 0, &fake_ops, err, sizeof(err)));
	lc.gpu_frames = t.fc;
	CHECK_OK(loop_create(&t.l, &lc, t.h, t.wring, t.wk));
	CHECK_OK(pthread_create(&t.thr, NULL, fc_loop_thread, &t));
	m = (struct msg){ .type = MSG_STREAM_START };
	m.u.stream_start.stream = 5;
	m.u.stream_start.request_id = msg_cstr("r");
	m.u.stream_start.width = FC_W;
	m.u.stream_start.height = FC_H;
	fc_loop_send(&t, &m);
	for (int i = 0; i < frames; i++) {
		uint32_t in, ig, out, og;
		uint8_t *ib, *ob;
		uint64_t size;
		struct ring_frame lay;

		CHECK_OK(ring_acquire(t.gring, &in, &ig));
		CHECK_OK(ring_acquire(t.gring, &out, &og));
		CHECK_OK(ring_slot_ptr(t.gring, in, ig, &ib, &size));
		CHECK_OK(ring_slot_ptr(t.gring, out, og, &ob, &size));
		CHECK_OK(ring_frame_layout(FP_FMT_RGB24, FC_W, FC_H, size, &lay));
		for (uint32_t y = 0; y < FC_H; y++)
			for (uint32_t x = 0; x < FC_W * 3; x++)
				ib[lay.offset[0] + (size_t)y * lay.stride[0] + x] =
				    (uint8_t)(x * 5 + y + i);
		CHECK_OK(ring_send(t.gring, in, ig, 1, getpid()));
		CHECK_OK(ring_send(t.gring, out, og, 1, getpid()));
		m = (struct msg){ .type = MSG_FRAME };
		m.u.frame = (struct msg_frame){
			.stream = 5, .seq = (uint64_t)i, .tb_num = 1, .tb_den = 90000,
			.width = FC_W, .height = FC_H, .format = FP_FMT_RGB24,
			.in_slot = in, .in_gen = ig, .out_slot = out, .out_gen = og,
		};
		fc_loop_send(&t, &m);
		fc_loop_expect(&t, MSG_RESULT, &m);
		CHECK_EQ(m.u.result.seq, i);
		if (!strcmp(plugin, "passthrough")) {
			CHECK_EQ(m.u.result.status, FP_PASS);
			CHECK_EQ(m.u.result.out_slot, in);
		} else {
			/* grayscale: R = G = B = luma of the input, in the output slot */
			CHECK_EQ(m.u.result.out_slot, out);
			for (uint32_t y = 0; y < FC_H; y++)
				for (uint32_t x = 0; x < FC_W; x++) {
					size_t o = lay.offset[0] + (size_t)y * lay.stride[0] + x * 3;
					uint8_t l = (uint8_t)((77u * ib[o] + 150u * ib[o + 1] +
					                       29u * ib[o + 2]) >> 8);

					CHECK_MSG(ob[o] == l && ob[o + 2] == l, "pixel %u,%u", x, y);
				}
		}
		CHECK_OK(ring_release(t.gring, in, ig));
		CHECK_OK(ring_release(t.gring, out, og));
	}
	m = (struct msg){ .type = MSG_SHUTDOWN };
	m.u.shutdown.reason = msg_cstr("done");
	fc_loop_send(&t, &m);
	CHECK_OK(pthread_join(t.thr, NULL));
	CHECK_EQ(t.status, WORKER_EXIT_OK);
	CHECK_EQ(loop_frames(t.l), frames);
	frame_cuda_get_stats(t.fc, &st);
	printf("    %s %s: %d frames, h2d %llu d2h %llu d2d %llu syncs %llu\n", plugin,
	       frame_cuda_mode_name(mode), frames, (unsigned long long)st.h2d,
	       (unsigned long long)st.d2h, (unsigned long long)st.d2d,
	       (unsigned long long)st.syncs);
	if (mode == FRAME_CUDA_VIA_HOST) {
		CHECK_EQ(st.d2h, frames);
		CHECK_EQ(st.h2d, !strcmp(plugin, "passthrough") ? 0 : frames);
	} else {
		CHECK_EQ(st.h2d + st.d2h, 0);
		CHECK_EQ(st.syncs, frames);
	}
	loop_destroy(&t.l);
	host_destroy(&t.h);
	frame_cuda_destroy(&t.fc);
	CHECK_EQ(fake.streams, 0);
	ipc_close(&t.wk);
	ipc_close(&t.gw);
	ipc_dir_destroy(&t.dir);
	ring_destroy(&t.wring);
	ring_destroy(&t.gring);
}

static void
test_loop_via_host_grayscale(void)
{
	fc_loop_run("grayscale", FRAME_CUDA_VIA_HOST, 10);
}

static void
test_loop_via_host_pass(void)
{
	fc_loop_run("passthrough", FRAME_CUDA_VIA_HOST, 5);
}

static void
test_loop_direct_pass(void)
{
	fc_loop_run("passthrough", FRAME_CUDA_DIRECT, 5);
}

static const struct th_case cases[] = {
	TH_CASE(test_mode_table),
	TH_CASE(test_ring_info),
	TH_CASE(test_cuda_ring_attach_fails_exit_5),
	TH_CASE(test_cuda_ring_bad_seals_exit_5),
	TH_CASE(test_host_ring_errors_exit_2),
	TH_CASE(test_direct_views_no_copy),
	TH_CASE(test_via_host_two_copies),
	TH_CASE(test_via_device_two_copies),
	TH_CASE(test_direct_move_is_d2d),
	TH_CASE(test_failures_reported),
	TH_CASE(test_loop_via_host_grayscale),
	TH_CASE(test_loop_via_host_pass),
	TH_CASE(test_loop_direct_pass),
	TH_END
};

TH_MAIN(cases)
