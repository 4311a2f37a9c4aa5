/*
 * GPU tests: placement, NVML (fake table, absent), discovery/probe/codec
 * fallback without a GPU, frame-copy checks, invert_cuda's host path; with a
 * GPU, the CUDA ring across two processes (IPC opens counted; this binary
 * re-execs itself with --ring-child as the worker) and SIGKILL cycles with
 * device memory back to baseline. GPU cases print "skipped: no GPU" elsewhere.
 */
#include "harness.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "frame_processor.h"
#include "gpu.h"
#include "ring.h"

#define GT_W 512u
#define GT_H 512u
#define GT_FRAMES 200
#define GT_KILL_CYCLES 20
#define GT_MEM_SLACK (64ull << 20) /* device memory "back to baseline" */

/* ---- counting IPC opens (CUDA builds) ------------------------------------ */

#if CT_CUDA
/*
 * Interposes the runtime's cudaIpcOpenMemHandle for this binary only, so the
 * worker side can count its opens. Same ABI: the handle is a 64-byte struct
 * passed by value.
 */
struct gt_ipc_handle {
	char reserved[64];
};
static int gt_ipc_opens; /* test process only */
int cudaIpcOpenMemHandle(void **p, struct gt_ipc_handle h, unsigned int fl);
int
cudaIpcOpenMemHandle(void **p, struct gt_ipc_handle h, unsigned int fl)
{
	int (*real)(void **, struct gt_ipc_handle, unsigned int);

	*(void **)&real = dlsym(RTLD_NEXT, "cudaIpcOpenMemHandle");
	gt_ipc_opens++;
	return real ? real(p, h, fl) : 999;
}
static int
gt_opens(void)
{
	return gt_ipc_opens;
}
#else
static int
gt_opens(void)
{
	return -1;
}
#endif

/* ---- helpers --------------------------------------------------------------- */

static bool
gt_have_gpu(void)
{
	struct gpu_device devs[GPU_MAX];
	char why[GPU_REASON_LEN];
	int n = 0;

	if (!CT_CUDA)
		return false;
	if (gpu_discover(devs, GPU_MAX, &n, false, why, sizeof(why)) < 0)
		return false;
	return n > 0;
}

#define GT_NEED_GPU()                                                          \
	do {                                                                   \
		if (!gt_have_gpu()) {                                          \
			printf("skipped: no GPU\n");                           \
			return;                                                \
		}                                                              \
	} while (0)

static int
gt_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the DIR's own fd */
}

static bool
gt_no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

static struct gpu_device
gt_dev(int ordinal, bool usable, const char *reason)
{
	struct gpu_device d;

	memset(&d, 0, sizeof(d));
	d.ordinal = ordinal;
	d.usable = usable;
	snprintf(d.reason, sizeof(d.reason), "%s", reason);
	return d;
}

/* ---- placement --------------------------------------------------------------- */

static void
gpu_plan_auto(void)
{
	struct gpu_device devs[3] = { gt_dev(0, true, ""),
		                      gt_dev(1, false, "MIG mode is on"),
		                      gt_dev(2, true, "") };
	struct gpu_request req = { .mode = GPU_MODE_AUTO };
	struct gpu_plan plan;

	CHECK_OK(gpu_plan_make(devs, 3, &req, &plan));
	CHECK_EQ(plan.n, 2);
	CHECK_EQ(plan.gpu[0], 0);
	CHECK_EQ(plan.gpu[1], 2);
	/* None usable: host ring, with the first device's reason. */
	devs[0].usable = devs[2].usable = false;
	snprintf(devs[0].reason, sizeof(devs[0].reason), "MIG mode is on");
	CHECK_OK(gpu_plan_make(devs, 3, &req, &plan));
	CHECK_EQ(plan.n, 0);
	CHECK(strstr(plan.reason, "MIG") != NULL);
	/* No device at all. */
	CHECK_OK(gpu_plan_make(NULL, 0, &req, &plan));
	CHECK_EQ(plan.n, 0);
	CHECK_STR(plan.reason, "no CUDA device");
}

static void
gpu_plan_none_all_list(void)
{
	struct gpu_device devs[3] = { gt_dev(0, true, ""),
		                      gt_dev(1, false, "CUDA IPC probe failed"),
		                      gt_dev(2, true, "") };
	struct gpu_request req = { .mode = GPU_MODE_NONE };
	int list[3] = { 2, 0, 2 };
	struct gpu_plan plan;

	CHECK_OK(gpu_plan_make(devs, 3, &req, &plan));
	CHECK_EQ(plan.n, 0);
	CHECK_STR(plan.reason, "--gpus none");
	req.mode = GPU_MODE_ALL;
	CHECK_EQ(gpu_plan_make(devs, 3, &req, &plan), -ENODEV);
	CHECK_EQ(plan.n, 0);
	CHECK(strstr(plan.reason, "gpu 1") && strstr(plan.reason, "IPC"));
	CHECK_EQ(gpu_plan_make(NULL, 0, &req, &plan), -ENODEV);
	req.mode = GPU_MODE_LIST;
	req.list = list;
	req.n_list = 2;
	CHECK_OK(gpu_plan_make(devs, 3, &req, &plan));
	CHECK_EQ(plan.n, 2);
	CHECK_EQ(plan.gpu[0], 2);
	CHECK_EQ(plan.gpu[1], 0);
	req.n_list = 3; /* 2 twice */
	CHECK_EQ(gpu_plan_make(devs, 3, &req, &plan), -EINVAL);
	list[1] = 1; /* unusable */
	req.n_list = 2;
	CHECK_EQ(gpu_plan_make(devs, 3, &req, &plan), -ENODEV);
	CHECK(strstr(plan.reason, "gpu 1") != NULL);
	list[1] = 7; /* missing */
	CHECK_EQ(gpu_plan_make(devs, 3, &req, &plan), -ENODEV);
	CHECK(strstr(plan.reason, "no such device") != NULL);
	req.n_list = 0;
	CHECK_EQ(gpu_plan_make(devs, 3, &req, &plan), -EINVAL);
}

static void
gpu_plan_workers(void)
{
	struct gpu_plan plan = { .n = 2, .gpu = { 3, 5 } };
	struct gpu_plan host = { .n = 0 };
	int load[4] = { 2, 1, 1, 3 };

	CHECK_EQ(gpu_plan_worker_gpu(&plan, 2, 0), 3);
	CHECK_EQ(gpu_plan_worker_gpu(&plan, 2, 1), 3);
	CHECK_EQ(gpu_plan_worker_gpu(&plan, 2, 2), 5);
	CHECK_EQ(gpu_plan_worker_gpu(&plan, 2, 3), 5);
	CHECK_EQ(gpu_plan_worker_gpu(&plan, 1, 1), 5);
	CHECK_EQ(gpu_plan_worker_gpu(&host, 2, 0), -1);
	CHECK_EQ(gpu_plan_worker_gpu(&plan, 0, 0), -1);
	CHECK_EQ(gpu_least_loaded(load, 4), 1);
	load[1] = 5;
	CHECK_EQ(gpu_least_loaded(load, 4), 2);
	CHECK_EQ(gpu_least_loaded(load, 0), -1);
}

static void
gpu_uuid_text(void)
{
	const uint8_t u[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
		                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
	char s[GPU_UUID_LEN];

	gpu_uuid_format(u, s, sizeof(s));
	CHECK_STR(s, "GPU-12345678-9abc-def0-0123-456789abcdef");
}

/* ---- NVML through a fake table ------------------------------------------------ */

/* Two devices; the second has MIG on and no utilisation counters. */
static int gt_nv_inits, gt_nv_shutdowns, gt_nv_init_rv;
static char gt_dev_tag[2]; /* the "handles" */

static int gt_nv_init(void) { gt_nv_inits++; return gt_nv_init_rv; }
static int gt_nv_shutdown(void) { gt_nv_shutdowns++; return 0; }
static int gt_nv_count(unsigned int *n) { *n = 2; return 0; }
static int
gt_nv_handle(unsigned int i, void **dev)
{
	if (i > 1)
		return 2;
	*dev = &gt_dev_tag[i];
	return 0;
}
static int
gt_nv_index(void *dev)
{
	return (int)((char *)dev - gt_dev_tag);
}
static int
gt_nv_name(void *dev, char *name, unsigned int len)
{
	snprintf(name, len, "Fake GPU %d", gt_nv_index(dev));
	return 0;
}
static int
gt_nv_uuid(void *dev, char *uuid, unsigned int len)
{
	snprintf(uuid, len, "GPU-0000000%d-aaaa-bbbb-cccc-dddddddddddd",
	         gt_nv_index(dev));
	return 0;
}
static int
gt_nv_mem(void *dev, struct gpu_nvml_memory *m)
{
	m->total = 80ull << 30;
	m->free = (70ull << 30) + (unsigned long long)gt_nv_index(dev);
	m->used = m->total - m->free;
	return 0;
}
static int
gt_nv_cc(void *dev, int *major, int *minor)
{
	*major = 9;
	*minor = gt_nv_index(dev);
	return 0;
}
static int
gt_nv_mig(void *dev, unsigned int *cur, unsigned int *pending)
{
	*cur = *pending = gt_nv_index(dev) == 1;
	return 0;
}
static int
gt_nv_util(void *dev, struct gpu_nvml_util *u)
{
	if (gt_nv_index(dev) == 1)
		return GPU_NVML_NOT_SUPPORTED;
	u->gpu = 42;
	u->memory = 17;
	return 0;
}

static const struct gpu_nvml_fns gt_fake = {
	.init = gt_nv_init,
	.shutdown = gt_nv_shutdown,
	.device_count = gt_nv_count,
	.device_handle = gt_nv_handle,
	.device_name = gt_nv_name,
	.device_uuid = gt_nv_uuid,
	.device_memory = gt_nv_mem,
	.device_cc = gt_nv_cc,
	.device_mig = gt_nv_mig,
	.device_util = gt_nv_util,
};

static void
gpu_nvml_fake_json(void)
{
	json_t *info = json_object(), *stats = json_object(), *d;
	struct gpu_nvml_info di;
	gpu_nvml *nv = NULL;
	unsigned int n = 0;
	char *text;

	CHECK_OK(gpu_nvml_create_from(&nv, &gt_fake));
	CHECK_EQ(gt_nv_inits, 1);
	CHECK_OK(gpu_nvml_count(nv, &n));
	CHECK_EQ(n, 2);
	CHECK_OK(gpu_nvml_device(nv, 1, &di));
	CHECK(di.mig);
	CHECK_EQ(di.util_compute, -1);
	CHECK_OK(gpu_nvml_device(nv, 0, &di));
	CHECK(!di.mig);
	CHECK_EQ(gpu_nvml_device(nv, 2, &di), -ENODEV);
	CHECK_OK(gpu_nvml_info_json(nv, info, false));
	CHECK_OK(gpu_nvml_info_json(nv, stats, true));
	CHECK_EQ(gpu_nvml_info_json(nv, NULL, true), -EINVAL);
	CHECK_EQ(json_object_size(info), 2);
	d = json_object_get(info, "1");
	CHECK(d != NULL);
	CHECK_STR(json_string_value(json_object_get(d, "id")),
	          "GPU-00000001-aaaa-bbbb-cccc-dddddddddddd");
	CHECK_STR(json_string_value(json_object_get(d, "name")), "Fake GPU 1");
	CHECK_EQ(json_integer_value(json_object_get(d, "memory_total")),
	         80ll << 30);
	CHECK_EQ(json_integer_value(json_object_get(d, "memory_free")),
	         (70ll << 30) + 1);
	CHECK_EQ(json_integer_value(json_object_get(d, "major")), 9);
	CHECK_EQ(json_integer_value(json_object_get(d, "minor")), 1);
	CHECK(json_object_get(d, "utilization_compute") == NULL);
	d = json_object_get(stats, "0");
	CHECK_EQ(json_integer_value(json_object_get(d, "utilization_compute")),
	         42);
	CHECK_EQ(json_integer_value(json_object_get(d, "utilization_memory")),
	         17);
	CHECK(json_object_get(d, "major") == NULL);
	CHECK(json_is_null(json_object_get(json_object_get(stats, "1"),
	                                   "utilization_compute")));
	text = json_dumps(stats, JSON_SORT_KEYS | JSON_COMPACT);
	printf("stats: %s\n", text);
	free(text);
	gpu_nvml_destroy(&nv);
	CHECK(nv == NULL);
	gpu_nvml_destroy(&nv);
	CHECK_EQ(gt_nv_shutdowns, 1);
	json_decref(info);
	json_decref(stats);
}

static void
gpu_nvml_failures(void)
{
	struct gpu_nvml_fns partial = gt_fake;
	gpu_nvml *nv = NULL;

	gt_nv_init_rv = 999; /* no driver */
	CHECK_EQ(gpu_nvml_create_from(&nv, &gt_fake), -EIO);
	CHECK(nv == NULL);
	gt_nv_init_rv = 0;
	partial.device_util = NULL;
	CHECK_EQ(gpu_nvml_create_from(&nv, &partial), -EINVAL);
	CHECK_EQ(gpu_nvml_create(&nv, "/nonexistent/libnvidia-ml.so.1"),
	         -ENOENT);
	/* A real library without NVML's symbols. */
	CHECK_EQ(gpu_nvml_create(&nv, "libc.so.6"), -ENOSYS);
	CHECK(nv == NULL);
}

/* /hardware/info without NVML is {}; with it, every entry is complete. */
static void
gpu_info_json_here(void)
{
	json_t *o = json_object();
	gpu_nvml *nv = NULL;
	int rv = gpu_nvml_create(&nv, NULL);
	const char *key;
	json_t *d;

	gpu_nvml_destroy(&nv);
	CHECK_OK(gpu_info_json(o, false));
	CHECK_EQ(gpu_info_json(NULL, false), -EINVAL);
	if (rv < 0) {
		printf("NVML absent (%s): empty object\n", strerror(-rv));
		CHECK_EQ(json_object_size(o), 0);
	} else {
		json_object_foreach(o, key, d) {
			CHECK(json_is_string(json_object_get(d, "id")));
			CHECK(json_integer_value(
			          json_object_get(d, "memory_total")) > 0);
		}
	}
	json_decref(o);
}

/* ---- discovery and fallback ------------------------------------------------------ */

static void
gpu_discover_falls_back(void)
{
	struct gpu_device devs[GPU_MAX];
	struct gpu_request req = { .mode = GPU_MODE_AUTO };
	const char *env = gpu_env_blocks_ipc();
	char reason[GPU_REASON_LEN];
	struct gpu_plan plan;
	int fds = gt_count_fds(), n = -1;
	int64_t t0 = clock_now_ns();

	CHECK_OK(gpu_discover(devs, GPU_MAX, &n, false, reason,
	                      sizeof(reason)));
	printf("discovery: %d device(s) in %.1f ms, reason \"%s\", env %s\n",
	       n, (double)(clock_now_ns() - t0) / 1e6, reason,
	       env ? env : "ok");
	CHECK_EQ(gt_count_fds(), fds);
	CHECK(gt_no_children());
	CHECK_OK(gpu_plan_make(devs, n, &req, &plan));
	if (n == 0) {
		CHECK(reason[0] != '\0');
		if (!CT_CUDA)
			CHECK_STR(reason, "built without CUDA");
		CHECK_EQ(plan.n, 0);
		CHECK(plan.reason[0] != '\0');
		return;
	}
	for (int i = 0; i < n; i++) {
		printf("gpu %d: %s %s cc %d.%d mem %llu usable %d %s\n",
		       devs[i].ordinal, devs[i].uuid, devs[i].name,
		       devs[i].major, devs[i].minor,
		       (unsigned long long)devs[i].memory_total,
		       devs[i].usable, devs[i].reason);
		CHECK(strncmp(devs[i].uuid, "GPU-", 4) == 0);
		CHECK(devs[i].name[0] != '\0');
		CHECK(devs[i].memory_total > 0);
		if (env)
			CHECK(!devs[i].usable);
		CHECK(devs[i].usable || devs[i].reason[0] != '\0');
	}
}

static void
gpu_probe_ipc_here(void)
{
	char why[GPU_REASON_LEN];
	int fds = gt_count_fds();
	int64_t t0 = clock_now_ns();
	int rv = gpu_probe_ipc(0, why, sizeof(why));

	printf("probe: rv %d (%s) \"%s\" in %.1f ms\n", rv,
	       rv ? strerror(-rv) : "ok", why,
	       (double)(clock_now_ns() - t0) / 1e6);
	CHECK_EQ(gt_count_fds(), fds);
	CHECK(gt_no_children());
	if (!gt_have_gpu()) {
		CHECK(rv < 0);
		CHECK(why[0] != '\0');
		if (!CT_CUDA)
			CHECK_EQ(rv, -ENOTSUP);
		return;
	}
	if (!gpu_env_blocks_ipc())
		CHECK_OK(rv);
}

/* Without a usable device a CUDA ring is refused cleanly; the host one works. */
static void
gpu_ring_fallback(void)
{
	struct ring_params p = { .slot_count = 2, .max_width = 64,
		                 .max_height = 64,
		                 .backend = RING_BACKEND_CUDA, .device = 0 };
	const struct ring_ops *ops = NULL;
	ring *r = NULL;

	if (gt_have_gpu()) {
		printf("skipped: a GPU is present (see ring_cuda_two_process)\n");
		return;
	}
	CHECK_EQ(ring_cuda_backend(&ops), -ENOTSUP);
	CHECK(ops == NULL);
	CHECK_EQ(ring_create(&r, &p), -ENOTSUP);
	CHECK(r == NULL);
	p.backend = RING_BACKEND_HOST;
	p.device = -1;
	CHECK_OK(ring_create(&r, &p));
	CHECK_EQ(ring_get_header(r)->backend, RING_BACKEND_HOST);
	ring_destroy(&r);
}

static void
gpu_frame_copy_checks(void)
{
	struct ring_frame f;
	uint8_t host_buf[64 * 3 * 4];
	uint8_t *host[4] = { host_buf, NULL, NULL, NULL };
	uint32_t short_stride[4] = { 10, 0, 0, 0 };
	uint32_t stride[4] = { 64 * 3, 0, 0, 0 };
	uint8_t fake_slot[64];
	int rv;

	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 64, 4, 1 << 20, &f));
	CHECK_EQ(gpu_frame_upload(&f, fake_slot, host, short_stride, NULL),
	         -EINVAL);
	CHECK_EQ(gpu_frame_download(NULL, fake_slot, host, stride, NULL),
	         -EINVAL);
	host[0] = NULL;
	CHECK_EQ(gpu_frame_from_device(&f, fake_slot, host, stride, NULL),
	         -EINVAL);
	host[0] = host_buf;
	if (gt_have_gpu()) {
		printf("skipped: no-GPU error path (a GPU is present)\n");
		return;
	}
	/* Well-formed, but no CUDA to run it: an error, never a crash. */
	rv = gpu_frame_upload(&f, fake_slot, host, stride, NULL);
	printf("upload without GPU: %d (%s)\n", rv, strerror(-rv));
	CHECK(rv < 0);
	if (!CT_CUDA)
		CHECK_EQ(rv, -ENOTSUP);
}

/* FFmpeg's CUDA paths: nothing without a GPU; on one, a device and a verdict. */
static void
gpu_codec_probe_here(void)
{
	struct gpu_device devs[GPU_MAX];
	char reason[GPU_REASON_LEN];
	struct gpu_codecs c;
	int n = 0;
	int64_t t0;

	CHECK_OK(gpu_discover(devs, GPU_MAX, &n, false, reason,
	                      sizeof(reason)));
	CHECK_EQ(gpu_codec_probe(-1, &c), -EINVAL);
	t0 = clock_now_ns();
	CHECK_OK(gpu_codec_probe(0, &c));
	printf("codecs: cuda_device %d nvdec_h264 %d nvenc_h264 %d \"%s\" "
	       "(%.1f ms)\n", c.cuda_device, c.nvdec_h264, c.nvenc_h264,
	       c.reason, (double)(clock_now_ns() - t0) / 1e6);
	if (n == 0) {
		CHECK(!c.cuda_device && !c.nvdec_h264 && !c.nvenc_h264);
		CHECK(c.reason[0] != '\0');
		return;
	}
	CHECK(c.cuda_device);
	/* H100 has NVDEC and no NVENC (the run-time fallback). */
	if (strstr(devs[0].name, "H100"))
		CHECK(!c.nvenc_h264);
}

/* ---- the invert_cuda plugin ------------------------------------------------------ */

static void
gt_plugin_log(int level, const char *fmt, ...)
{
	(void)level;
	(void)fmt;
}

static void
gpu_invert_plugin_host(void)
{
	struct fp_host host = { .struct_size = sizeof(host),
		                .log = gt_plugin_log };
	struct fp_video_frame in, out;
	const struct fp_plugin *pl;
	uint8_t src[8 * 64], dst[8 * 64];
	char path[512];
	fp_entry_fn entry;
	void *self = NULL, *dl;

	snprintf(path, sizeof(path), "%s/plugins/invert_cuda.so",
	         th_build_dir());
	if (access(path, R_OK) != 0) {
		printf("skipped: %s not built (CUDA=0 or no nvcc)\n", path);
		CHECK(!CT_CUDA || access("/usr/local/cuda/bin/nvcc", X_OK) != 0);
		return;
	}
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CHECK_MSG(dl != NULL, "dlopen: %s", dlerror());
	*(void **)&entry = dlsym(dl, FP_ENTRY_SYMBOL);
	CHECK(entry != NULL);
	pl = entry();
	CHECK_EQ(pl->abi_version, FP_ABI_VERSION);
	CHECK_EQ(pl->struct_size, sizeof(struct fp_plugin));
	CHECK_STR(pl->name, "invert_cuda");
	CHECK_EQ(pl->wants.video_mem, FP_MEM_CUDA);
	CHECK_EQ(pl->wants.video_format, FP_FMT_RGB24);
	CHECK(pl->process_video && pl->init && pl->fini);
	CHECK_OK(pl->init(&host, "{}", &self));
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 7);
	memset(dst, 0, sizeof(dst));
	memset(&in, 0, sizeof(in));
	in.struct_size = sizeof(in);
	in.width = 20; /* 60 bytes of a 64-byte row */
	in.height = 8;
	in.format = FP_FMT_RGB24;
	in.mem = FP_MEM_HOST;
	in.device = -1;
	in.plane[0] = src;
	in.stride[0] = 64;
	out = in;
	out.plane[0] = dst;
	CHECK_OK(pl->process_video(self, &in, &out));
	for (int y = 0; y < 8; y++)
		for (int x = 0; x < 64; x++)
			CHECK_EQ(dst[y * 64 + x],
			         x < 60 ? (uint8_t)(255 - src[y * 64 + x]) : 0);
	out.format = FP_FMT_NV12;
	CHECK_EQ(pl->process_video(self, &in, &out), -EINVAL);
	pl->fini(self);
	dlclose(dl);
}

/* ---- CUDA ring across two processes (GPU only) ------------------------------------ */

enum gt_op { GT_READY = 1, GT_FRAME, GT_RESULT, GT_QUIT, GT_BYE };

struct gt_msg {
	uint32_t op;
	uint32_t in_slot, out_slot;
	uint32_t seed;
	int32_t rv;
	int32_t opens;
};

static uint8_t
gt_byte(uint32_t seed, size_t i)
{
	return (uint8_t)(seed * 31u + i * 7u + (i >> 9));
}

static int
gt_send(int s, const struct gt_msg *m)
{
	return send(s, m, sizeof(*m), MSG_NOSIGNAL) == (ssize_t)sizeof(*m)
	           ? 0
	           : -EIO;
}

static int
gt_recv(int s, struct gt_msg *m)
{
	return recv(s, m, sizeof(*m), 0) == (ssize_t)sizeof(*m) ? 0 : -EIO;
}

/*
 * The worker side (this binary re-exec'ed): attach the ring once, then per
 * FRAME download the input slot, check it, upload input ^ 0xA5 into the
 * output slot, synchronise, answer. Exits 0, or 1 on any mismatch.
 */
static int
gt_child(int ring_fd, int sock)
{
	struct gt_msg m = { .op = GT_READY };
	struct ring_frame f;
	void *stream = NULL, *pinned = NULL;
	uint32_t stride[4];
	uint8_t *host[4], *slot;
	uint64_t cap;
	ring *r = NULL;
	int rv;

	rv = ring_attach(&r, ring_fd);
	close(ring_fd);
	if (rv < 0)
		return 1;
	if (ring_frame_layout(FP_FMT_RGB24, GT_W, GT_H, ring_slot_bytes(r),
	                      &f) < 0 ||
	    gpu_cuda_stream_create(0, &stream) < 0 ||
	    gpu_cuda_host_alloc(&pinned, f.bytes) < 0)
		return 1;
	host[0] = pinned;
	stride[0] = f.stride[0];
	m.opens = gt_opens();
	gt_send(sock, &m);
	while (gt_recv(sock, &m) == 0 && m.op == GT_FRAME) {
		uint8_t *p = pinned;

		m.rv = ring_slot_ptr(r, m.in_slot, 1, &slot, &cap);
		ring_sync(r, m.in_slot, RING_SYNC_FROM_PEER);
		if (m.rv == 0)
			m.rv = gpu_frame_download(&f, slot, host, stride,
			                          stream);
		if (m.rv == 0)
			m.rv = gpu_cuda_stream_sync(stream);
		for (size_t i = 0; m.rv == 0 && i < f.bytes; i++) {
			if (p[i] != gt_byte(m.seed, i))
				m.rv = -EBADMSG;
			p[i] ^= 0xA5;
		}
		if (m.rv == 0)
			m.rv = ring_slot_ptr(r, m.out_slot, 1, &slot, &cap);
		if (m.rv == 0)
			m.rv = gpu_frame_upload(&f, slot, host, stride, stream);
		if (m.rv == 0)
			m.rv = gpu_cuda_stream_sync(stream);
		ring_sync(r, m.out_slot, RING_SYNC_TO_PEER);
		m.op = GT_RESULT;
		m.opens = gt_opens();
		gt_send(sock, &m);
	}
	m.op = GT_BYE;
	m.opens = gt_opens();
	gpu_cuda_host_free(&pinned);
	gpu_cuda_stream_destroy(&stream);
	ring_destroy(&r);
	gt_send(sock, &m);
	return 0;
}

/* Spawns the worker side with the ring fd; *sock is our end. */
static pid_t
gt_spawn(ring *r, int *sock)
{
	int sv[2], rfd;
	char a1[16], a2[16];
	pid_t pid;

	CHECK_OK(ring_inherit_fd(r, &rfd));
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	snprintf(a1, sizeof(a1), "%d", rfd);
	snprintf(a2, sizeof(a2), "%d", sv[1]);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		execl("/proc/self/exe", "gpu_test", "--ring-child", a1, a2,
		      (char *)NULL);
		_exit(127);
	}
	close(rfd);
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

static ring *
gt_cuda_ring(void)
{
	struct ring_params p = { .slot_count = 4, .max_width = GT_W,
		                 .max_height = GT_H,
		                 .backend = RING_BACKEND_CUDA, .device = 0 };
	ring *r = NULL;

	CHECK_OK(ring_create(&r, &p));
	return r;
}

static void
ring_cuda_two_process(void)
{
	struct gt_msg m;
	struct ring_frame f;
	void *stream = NULL, *pinned = NULL;
	uint32_t stride[4], in, out, gin, gout;
	uint8_t *host[4], *slot;
	uint64_t cap;
	int64_t t0, total = 0;
	int sock, st;
	pid_t pid;
	ring *r;

	GT_NEED_GPU();
	r = gt_cuda_ring();
	CHECK_EQ(ring_get_header(r)->backend, RING_BACKEND_CUDA);
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, GT_W, GT_H,
	                           ring_slot_bytes(r), &f));
	CHECK_OK(gpu_cuda_stream_create(0, &stream));
	CHECK_OK(gpu_cuda_host_alloc(&pinned, f.bytes));
	host[0] = pinned;
	stride[0] = f.stride[0];
	pid = gt_spawn(r, &sock);
	CHECK_OK(gt_recv(sock, &m));
	CHECK_EQ(m.op, GT_READY);
	CHECK_EQ(m.opens, 1);
	for (uint32_t k = 0; k < GT_FRAMES; k++) {
		uint8_t *p = pinned;

		CHECK_OK(ring_acquire(r, &in, &gin));
		CHECK_OK(ring_acquire(r, &out, &gout));
		for (size_t i = 0; i < f.bytes; i++)
			p[i] = gt_byte(k, i);
		t0 = clock_now_ns();
		CHECK_OK(ring_slot_ptr(r, in, gin, &slot, &cap));
		CHECK_OK(gpu_frame_upload(&f, slot, host, stride, stream));
		CHECK_OK(gpu_cuda_stream_sync(stream));
		ring_sync(r, in, RING_SYNC_TO_PEER);
		CHECK_OK(ring_send(r, in, gin, 0, pid));
		CHECK_OK(ring_send(r, out, gout, 0, pid));
		m = (struct gt_msg){ .op = GT_FRAME, .in_slot = in,
			             .out_slot = out, .seed = k };
		CHECK_OK(gt_send(sock, &m));
		CHECK_OK(gt_recv(sock, &m));
		total += clock_now_ns() - t0;
		CHECK_EQ(m.op, GT_RESULT);
		CHECK_OK(m.rv);
		CHECK_EQ(m.opens, 1); /* none in steady state */
		CHECK_OK(ring_complete(r, out, gout, pid));
		CHECK_OK(ring_complete(r, in, gin, pid));
		ring_sync(r, out, RING_SYNC_FROM_PEER);
		CHECK_OK(ring_slot_ptr(r, out, gout, &slot, &cap));
		CHECK_OK(gpu_frame_download(&f, slot, host, stride, stream));
		CHECK_OK(gpu_cuda_stream_sync(stream));
		for (size_t i = 0; i < f.bytes; i++)
			CHECK_EQ(p[i], gt_byte(k, i) ^ 0xA5);
		CHECK_OK(ring_release(r, in, gin));
		CHECK_OK(ring_release(r, out, gout));
	}
	printf("%d frames 512x512 RGB24 round trip, mean %.1f us\n", GT_FRAMES,
	       (double)total / GT_FRAMES / 1000.0);
	m = (struct gt_msg){ .op = GT_QUIT };
	CHECK_OK(gt_send(sock, &m));
	CHECK_OK(gt_recv(sock, &m));
	CHECK_EQ(m.op, GT_BYE);
	CHECK_EQ(m.opens, 1);
	CHECK(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(sock);
	gpu_cuda_host_free(&pinned);
	gpu_cuda_stream_destroy(&stream);
	ring_destroy(&r);
}

/* Free memory within GT_MEM_SLACK of base, waiting up to 5 s for the driver. */
static bool
gt_mem_back(uint64_t base, uint64_t *now)
{
	uint64_t total;

	for (int i = 0; i < 100; i++) {
		if (gpu_cuda_mem_info(now, &total) == 0 &&
		    *now + GT_MEM_SLACK >= base)
			return true;
		usleep(50000);
	}
	return false;
}

static void
ring_cuda_kill_cycles(void)
{
	uint64_t base, total, now, min_free = UINT64_MAX;
	struct gt_msg m;
	int sock, st;
	pid_t pid;
	ring *r;

	GT_NEED_GPU();
	r = gt_cuda_ring();
	CHECK_OK(gpu_cuda_mem_info(&base, &total));
	for (int c = 0; c < GT_KILL_CYCLES; c++) {
		pid = gt_spawn(r, &sock);
		CHECK_OK(gt_recv(sock, &m));
		CHECK_EQ(m.op, GT_READY);
		CHECK_EQ(m.opens, 1);
		CHECK_OK(gpu_cuda_mem_info(&now, &total));
		if (now < min_free)
			min_free = now;
		CHECK(kill(pid, SIGKILL) == 0);
		CHECK(waitpid(pid, &st, 0) == pid);
		CHECK(WIFSIGNALED(st));
		close(sock);
		CHECK_MSG(gt_mem_back(base, &now),
		          "cycle %d: free %llu MiB, baseline %llu MiB", c,
		          (unsigned long long)(now >> 20),
		          (unsigned long long)(base >> 20));
	}
	printf("%d SIGKILL cycles: baseline free %llu MiB, with a worker %llu "
	       "MiB, after the last %llu MiB\n",
	       GT_KILL_CYCLES, (unsigned long long)(base >> 20),
	       (unsigned long long)(min_free >> 20),
	       (unsigned long long)(now >> 20));
	ring_destroy(&r);
}

static const struct th_case cases[] = {
	TH_CASE(gpu_plan_auto),
	TH_CASE(gpu_plan_none_all_list),
	TH_CASE(gpu_plan_workers),
	TH_CASE(gpu_uuid_text),
	TH_CASE(gpu_nvml_fake_json),
	TH_CASE(gpu_nvml_failures),
	TH_CASE(gpu_info_json_here),
	TH_CASE(gpu_discover_falls_back),
	TH_CASE(gpu_probe_ipc_here),
	TH_CASE(gpu_ring_fallback),
	TH_CASE(gpu_frame_copy_checks),
	TH_CASE(gpu_codec_probe_here),
	TH_CASE(gpu_invert_plugin_host),
	TH_CASE_T(ring_cuda_two_process, 120),
	TH_CASE_T(ring_cuda_kill_cycles, 240),
	TH_END,
};

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--ring-child") == 0)
		return gt_child(atoi(argv[2]), atoi(argv[3]));
	return th_run(argc, argv, cases);
}
