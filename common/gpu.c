/*
 * GPU discovery (in forked children, so the calling process stays free of a
 * CUDA context until it creates its rings), placement decisions, and NVML
 * loaded with dlopen for /hardware/info and /hardware/stats. CUDA runtime
 * calls live in gpu_cuda.c; this file only calls its (stubbed) helpers.
 */
#include "gpu.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavutil/hwcontext.h>
#include <libavutil/opt.h>

#include "clock.h"
#include "log.h"

#define GPU_CHILD_TIMEOUT_MS 10000

struct gpu_nvml {
	void *dl; /* dlopen handle; NULL for a table from a test */
	struct gpu_nvml_fns f;
};

/* ---- placement ------------------------------------------------------------ */

static const struct gpu_device *
gpu_find(const struct gpu_device *devs, int n, int ordinal)
{
	for (int i = 0; i < n; i++)
		if (devs[i].ordinal == ordinal)
			return &devs[i];
	return NULL;
}

int
gpu_plan_make(const struct gpu_device *devs, int n_devs,
              const struct gpu_request *req, struct gpu_plan *out)
{
	memset(out, 0, sizeof(*out));
	if (!req || n_devs < 0 || (n_devs > 0 && !devs))
		return -EINVAL;
	switch (req->mode) {
	case GPU_MODE_NONE:
		snprintf(out->reason, sizeof(out->reason), "--gpus none");
		return 0;
	case GPU_MODE_AUTO:
		for (int i = 0; i < n_devs && out->n < GPU_MAX; i++)
			if (devs[i].usable)
				out->gpu[out->n++] = devs[i].ordinal;
		if (out->n > 0)
			return 0;
		if (n_devs == 0)
			snprintf(out->reason, sizeof(out->reason),
			         "no CUDA device");
		else
			snprintf(out->reason, sizeof(out->reason),
			         "gpu %d: %.120s", devs[0].ordinal, devs[0].reason);
		return 0;
	case GPU_MODE_ALL:
		if (n_devs == 0) {
			snprintf(out->reason, sizeof(out->reason),
			         "--gpus all: no CUDA device");
			return -ENODEV;
		}
		for (int i = 0; i < n_devs && out->n < GPU_MAX; i++) {
			if (!devs[i].usable) {
				snprintf(out->reason, sizeof(out->reason),
				         "--gpus all: gpu %d: %.120s",
				         devs[i].ordinal, devs[i].reason);
				out->n = 0;
				return -ENODEV;
			}
			out->gpu[out->n++] = devs[i].ordinal;
		}
		return 0;
	case GPU_MODE_LIST:
		if (req->n_list <= 0 || req->n_list > GPU_MAX || !req->list)
			return -EINVAL;
		for (int i = 0; i < req->n_list; i++) {
			const struct gpu_device *d =
			    gpu_find(devs, n_devs, req->list[i]);

			for (int j = 0; j < i; j++)
				if (req->list[j] == req->list[i])
					return -EINVAL;
			if (!d || !d->usable) {
				snprintf(out->reason, sizeof(out->reason),
				         "--gpus: gpu %d: %.120s", req->list[i],
				         d ? d->reason : "no such device");
				out->n = 0;
				return -ENODEV;
			}
			out->gpu[out->n++] = d->ordinal;
		}
		return 0;
	}
	return -EINVAL;
}

int
gpu_plan_worker_gpu(const struct gpu_plan *plan, int workers_per_gpu, int w)
{
	if (!plan || plan->n <= 0 || workers_per_gpu <= 0 || w < 0)
		return -1;
	return plan->gpu[(w / workers_per_gpu) % plan->n];
}

int
gpu_least_loaded(const int *load, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++)
		if (best < 0 || load[i] < load[best])
			best = i;
	return best;
}

void
gpu_uuid_format(const uint8_t u[16], char *out, size_t cap)
{
	snprintf(out, cap,
	         "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	         "%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
	         u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* ---- frames ------------------------------------------------------------------ */

static int
gpu_frame_copy(const struct ring_frame *f, uint8_t *slot, uint8_t *const host[4],
               const uint32_t host_stride[4], void *stream, enum gpu_copy kind)
{
	if (!f || !slot || !host || !host_stride || f->planes < 1 ||
	    f->planes > 4)
		return -EINVAL;
	for (uint32_t p = 0; p < f->planes; p++) {
		uint8_t *dev = slot + f->offset[p];
		int rv;

		if (!host[p] || host_stride[p] < f->row_bytes[p])
			return -EINVAL;
		if (kind != GPU_COPY_D2H)
			rv = gpu_cuda_copy2d(dev, f->stride[p], host[p],
			                     host_stride[p], f->row_bytes[p],
			                     f->rows[p], kind, stream);
		else
			rv = gpu_cuda_copy2d(host[p], host_stride[p], dev,
			                     f->stride[p], f->row_bytes[p],
			                     f->rows[p], GPU_COPY_D2H, stream);
		if (rv < 0)
			return rv;
	}
	return 0;
}

int
gpu_frame_upload(const struct ring_frame *f, uint8_t *slot,
                 uint8_t *const host[4], const uint32_t host_stride[4],
                 void *stream)
{
	return gpu_frame_copy(f, slot, host, host_stride, stream, GPU_COPY_H2D);
}

int
gpu_frame_from_device(const struct ring_frame *f, uint8_t *slot,
                      uint8_t *const src[4], const uint32_t src_stride[4],
                      void *stream)
{
	return gpu_frame_copy(f, slot, src, src_stride, stream, GPU_COPY_D2D);
}

int
gpu_frame_download(const struct ring_frame *f, const uint8_t *slot,
                   uint8_t *const host[4], const uint32_t host_stride[4],
                   void *stream)
{
	return gpu_frame_copy(f, (uint8_t *)slot, host, host_stride, stream,
	                      GPU_COPY_D2H);
}

/* ---- NVDEC / NVENC ------------------------------------------------------------ */

static bool
gpu_codec_has_cuda_config(const AVCodec *dec)
{
	for (int i = 0;; i++) {
		const AVCodecHWConfig *c = avcodec_get_hw_config(dec, i);

		if (!c)
			return false;
		if (c->device_type == AV_HWDEVICE_TYPE_CUDA &&
		    (c->methods & AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX))
			return true;
	}
}

/* Opens and closes a small h264_nvenc session on `ordinal`. */
static bool
gpu_codec_nvenc_opens(int ordinal)
{
	const AVCodec *enc = avcodec_find_encoder_by_name("h264_nvenc");
	AVCodecContext *c;
	bool ok;

	if (!enc)
		return false;
	c = avcodec_alloc_context3(enc);
	if (!c)
		return false;
	c->width = 256;
	c->height = 256;
	c->pix_fmt = AV_PIX_FMT_NV12;
	c->time_base = (AVRational){ 1, 30 };
	c->framerate = (AVRational){ 30, 1 };
	av_opt_set_int(c->priv_data, "gpu", ordinal, 0);
	ok = avcodec_open2(c, enc, NULL) == 0;
	avcodec_free_context(&c);
	return ok;
}

int
gpu_codec_probe(int ordinal, struct gpu_codecs *out)
{
	const AVCodec *dec = avcodec_find_decoder(AV_CODEC_ID_H264);
	AVBufferRef *dev = NULL;
	char name[16];

	if (!out || ordinal < 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "%d", ordinal);
	if (av_hwdevice_ctx_create(&dev, AV_HWDEVICE_TYPE_CUDA, name, NULL,
	                           0) < 0) {
		snprintf(out->reason, sizeof(out->reason),
		         "no CUDA hw device in FFmpeg (no driver or GPU)");
		return 0;
	}
	out->cuda_device = true;
	out->nvdec_h264 = dec && gpu_codec_has_cuda_config(dec);
	out->nvenc_h264 = gpu_codec_nvenc_opens(ordinal);
	av_buffer_unref(&dev);
	snprintf(out->reason, sizeof(out->reason), "%s%s",
	         out->nvdec_h264 ? "" : "no NVDEC h264 in FFmpeg; ",
	         out->nvenc_h264 ? "" : "h264_nvenc did not open (no NVENC)");
	return 0;
}

/* ---- environment ------------------------------------------------------------ */

static bool
gpu_file_mentions(const char *path, const char *needle)
{
	char buf[512];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strcasestr(buf, needle) != NULL;
}

const char *
gpu_env_blocks_ipc(void)
{
	if (gpu_file_mentions("/proc/sys/kernel/osrelease", "microsoft"))
		return "WSL2 (CUDA IPC is not supported there)";
	if (gpu_file_mentions("/proc/version", "gvisor"))
		return "gVisor (CUDA IPC is not supported there)";
	return NULL;
}

/* ---- children --------------------------------------------------------------- */

/*
 * Reads up to len bytes from fd until EOF, waiting at most until deadline
 * (CLOCK_MONOTONIC ns). Returns the count read, or -ETIMEDOUT / -errno.
 */
static ssize_t
gpu_read_all(int fd, void *buf, size_t len, uint64_t deadline)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = clock_now_ns();
		ssize_t n;
		int rv;

		if (now >= deadline)
			return -ETIMEDOUT;
		rv = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv < 0)
			return -errno;
		if (rv == 0)
			continue;
		n = read(fd, (uint8_t *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static void
gpu_write_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, (const uint8_t *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/* Reaps a child, killing it first when it is still there. */
static void
gpu_reap(pid_t pid, bool kill_first)
{
	if (pid <= 0)
		return;
	if (kill_first)
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* What the discovery child sends back. */
struct gpu_scan {
	int32_t rv;
	int32_t n;
	char reason[GPU_REASON_LEN];
	struct gpu_device devs[GPU_MAX];
};

/* In the discovery child: every device's properties and MIG mode. */
static void
gpu_scan_run(struct gpu_scan *s)
{
	gpu_nvml *nv = NULL;
	int count = 0, rv;

	rv = gpu_cuda_device_count(&count);
	if (rv == -ENOTSUP) {
		snprintf(s->reason, sizeof(s->reason), "built without CUDA");
		return;
	}
	if (rv < 0 || count <= 0) {
		snprintf(s->reason, sizeof(s->reason),
		         "no CUDA device (%s)",
		         rv < 0 ? "no driver or no device" : "count 0");
		return;
	}
	if (gpu_nvml_create(&nv, NULL) < 0)
		nv = NULL;
	for (int i = 0; i < count && s->n < GPU_MAX; i++) {
		struct gpu_device *d = &s->devs[s->n++];
		unsigned int nn = 0;

		memset(d, 0, sizeof(*d));
		d->ordinal = i;
		if (gpu_cuda_device_props(i, d) < 0) {
			d->ordinal = i;
			snprintf(d->reason, sizeof(d->reason),
			         "cudaGetDeviceProperties failed");
			continue;
		}
		d->usable = true;
		if (nv && gpu_nvml_count(nv, &nn) == 0) {
			bool matched = false, any_mig = false;

			for (unsigned int k = 0; k < nn; k++) {
				struct gpu_nvml_info info;

				if (gpu_nvml_device(nv, k, &info) < 0)
					continue;
				any_mig |= info.mig;
				if (strcmp(info.uuid, d->uuid) == 0) {
					matched = true;
					d->mig = info.mig;
				}
			}
			/* Under MIG, CUDA lists instances, not the GPU UUIDs. */
			if (!matched && any_mig)
				d->mig = true;
		}
		if (d->mig) {
			d->usable = false;
			snprintf(d->reason, sizeof(d->reason),
			         "MIG mode is on (no CUDA IPC under MIG)");
		}
	}
	gpu_nvml_destroy(&nv);
}

int
gpu_discover(struct gpu_device *devs, int cap, int *n, bool probe_ipc,
             char *reason, size_t reason_cap)
{
	struct gpu_scan *s;
	const char *env;
	int fds[2];
	ssize_t got;
	pid_t pid;

	*n = 0;
	if (reason && reason_cap)
		reason[0] = '\0';
	if (cap <= 0 || !devs)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(s);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int rv = -errno;

		close(fds[0]);
		close(fds[1]);
		free(s);
		return rv;
	}
	if (pid == 0) {
		close(fds[0]);
		gpu_scan_run(s);
		gpu_write_all(fds[1], s, sizeof(*s));
		_exit(0);
	}
	close(fds[1]);
	got = gpu_read_all(fds[0], s, sizeof(*s),
	                   clock_now_ns() + GPU_CHILD_TIMEOUT_MS * 1000000ull);
	close(fds[0]);
	gpu_reap(pid, got != (ssize_t)sizeof(*s));
	if (got != (ssize_t)sizeof(*s)) {
		snprintf(reason, reason_cap, "GPU discovery %s",
		         got == -ETIMEDOUT ? "timed out" : "child failed");
		free(s);
		return 0;
	}
	s->reason[sizeof(s->reason) - 1] = '\0';
	snprintf(reason, reason_cap, "%s", s->reason);
	env = gpu_env_blocks_ipc();
	for (int i = 0; i < s->n && i < cap && i < GPU_MAX; i++) {
		struct gpu_device *d = &devs[(*n)++];
		char why[GPU_REASON_LEN];

		*d = s->devs[i];
		d->reason[sizeof(d->reason) - 1] = '\0';
		if (!d->usable)
			continue;
		if (env) {
			d->usable = false;
			snprintf(d->reason, sizeof(d->reason), "%s", env);
		} else if (probe_ipc && gpu_probe_ipc(d->ordinal, why,
		                                      sizeof(why)) < 0) {
			d->usable = false;
			snprintf(d->reason, sizeof(d->reason),
			         "CUDA IPC probe failed: %.120s", why);
		}
	}
	free(s);
	return 0;
}

/* Exporter -> opener: the handle, or why the export failed. */
struct gpu_probe_msg {
	int32_t rv;
	uint8_t handle[64];
	char why[GPU_REASON_LEN];
};

/* Exporter child: export, hand the handle over, keep it until told. */
static void __attribute__((noreturn))
gpu_probe_exporter(int ordinal, int to_opener, int from_opener)
{
	struct gpu_probe_msg m;
	void *dev = NULL;
	char c;

	memset(&m, 0, sizeof(m));
	m.rv = gpu_cuda_probe_export(ordinal, m.handle, &dev, m.why,
	                             sizeof(m.why));
	gpu_write_all(to_opener, &m, sizeof(m));
	if (m.rv == 0) {
		/* Freeing before the importer closed it is undefined. */
		while (read(from_opener, &c, 1) < 0 && errno == EINTR)
			;
		gpu_cuda_probe_free(dev);
	}
	_exit(0);
}

/* Opener child: open, check, close; report to the parent. */
static void __attribute__((noreturn))
gpu_probe_opener(int ordinal, int from_exporter, int to_exporter,
                 int to_parent)
{
	struct gpu_probe_msg m;
	ssize_t got;

	memset(&m, 0, sizeof(m));
	got = gpu_read_all(from_exporter, &m, sizeof(m),
	                   clock_now_ns() + GPU_CHILD_TIMEOUT_MS * 1000000ull);
	if (got != (ssize_t)sizeof(m)) {
		m.rv = -EIO;
		snprintf(m.why, sizeof(m.why), "exporter died");
	} else if (m.rv == 0) {
		m.rv = gpu_cuda_probe_open(m.handle, ordinal, m.why,
		                           sizeof(m.why));
	}
	gpu_write_all(to_exporter, "x", 1);
	gpu_write_all(to_parent, &m, sizeof(m));
	_exit(0);
}

int
gpu_probe_ipc(int ordinal, char *why, size_t why_cap)
{
	int e2o[2] = { -1, -1 }, o2e[2] = { -1, -1 }, o2p[2] = { -1, -1 };
	struct gpu_probe_msg m;
	pid_t exp = -1, opn = -1;
	ssize_t got;
	int rv;

	snprintf(why, why_cap, "%s", "");
	if (!CT_CUDA) {
		snprintf(why, why_cap, "built without CUDA");
		return -ENOTSUP;
	}
	if (pipe2(e2o, O_CLOEXEC) < 0 || pipe2(o2e, O_CLOEXEC) < 0 ||
	    pipe2(o2p, O_CLOEXEC) < 0) {
		rv = -errno;
		goto out_close;
	}
	exp = fork();
	if (exp == 0) {
		/* Only its own ends, so a dead peer reads as EOF. */
		close(e2o[0]);
		close(o2e[1]);
		close(o2p[0]);
		close(o2p[1]);
		gpu_probe_exporter(ordinal, e2o[1], o2e[0]);
	}
	if (exp < 0) {
		rv = -errno;
		goto out_close;
	}
	opn = fork();
	if (opn == 0) {
		close(e2o[1]);
		close(o2e[0]);
		close(o2p[0]);
		gpu_probe_opener(ordinal, e2o[0], o2e[1], o2p[1]);
	}
	if (opn < 0) {
		rv = -errno;
		goto out_close;
	}
	close(o2p[1]);
	o2p[1] = -1;
	memset(&m, 0, sizeof(m));
	got = gpu_read_all(o2p[0], &m, sizeof(m),
	                   clock_now_ns() + GPU_CHILD_TIMEOUT_MS * 1000000ull);
	if (got != (ssize_t)sizeof(m)) {
		rv = got == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
		snprintf(why, why_cap, "probe %s",
		         rv == -ETIMEDOUT ? "timed out" : "child died");
	} else {
		m.why[sizeof(m.why) - 1] = '\0';
		rv = m.rv;
		snprintf(why, why_cap, "%s", m.why);
	}
out_close:
	for (int i = 0; i < 2; i++) {
		if (e2o[i] >= 0)
			close(e2o[i]);
		if (o2e[i] >= 0)
			close(o2e[i]);
		if (o2p[i] >= 0)
			close(o2p[i]);
	}
	/* Closed pipes wake a waiting exporter; a hung child is killed. */
	gpu_reap(opn, rv == -ETIMEDOUT);
	gpu_reap(exp, rv == -ETIMEDOUT);
	return rv;
}

/* ---- NVML ------------------------------------------------------------------- */

static int
gpu_nvml_start(gpu_nvml *nv)
{
	if (nv->f.init() != GPU_NVML_SUCCESS)
		return -EIO;
	return 0;
}

int
gpu_nvml_create(gpu_nvml **out, const char *path)
{
	static const char *const names[] = {
		"nvmlInit_v2",
		"nvmlShutdown",
		"nvmlDeviceGetCount_v2",
		"nvmlDeviceGetHandleByIndex_v2",
		"nvmlDeviceGetName",
		"nvmlDeviceGetUUID",
		"nvmlDeviceGetMemoryInfo",
		"nvmlDeviceGetCudaComputeCapability",
		"nvmlDeviceGetMigMode",
		"nvmlDeviceGetUtilizationRates",
	};
	void *syms[sizeof(names) / sizeof(names[0])];
	gpu_nvml *nv;
	int rv;

	_Static_assert(sizeof(syms) == sizeof(struct gpu_nvml_fns),
	               "one NVML symbol per table member");
	*out = NULL;
	nv = calloc(1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv->dl = dlopen(path ? path : GPU_NVML_LIB, RTLD_NOW | RTLD_LOCAL);
	if (!nv->dl) {
		free(nv);
		return -ENOENT;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		syms[i] = dlsym(nv->dl, names[i]);
		if (!syms[i]) {
			rv = -ENOSYS;
			goto err_close;
		}
	}
	/* Same order as names[]; POSIX lets a void * hold a function. */
	memcpy(&nv->f, syms, sizeof(nv->f));
	rv = gpu_nvml_start(nv);
	if (rv < 0)
		goto err_close;
	*out = nv;
	return 0;

err_close:
	dlclose(nv->dl);
	free(nv);
	return rv;
}

int
gpu_nvml_create_from(gpu_nvml **out, const struct gpu_nvml_fns *fns)
{
	gpu_nvml *nv;
	int rv;

	*out = NULL;
	if (!fns || !fns->init || !fns->shutdown || !fns->device_count ||
	    !fns->device_handle || !fns->device_name || !fns->device_uuid ||
	    !fns->device_memory || !fns->device_cc || !fns->device_mig ||
	    !fns->device_util)
		return -EINVAL;
	nv = calloc(1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	nv->f = *fns;
	rv = gpu_nvml_start(nv);
	if (rv < 0) {
		free(nv);
		return rv;
	}
	*out = nv;
	return 0;
}

void
gpu_nvml_destroy(gpu_nvml **p)
{
	gpu_nvml *nv;

	if (!p || !*p)
		return;
	nv = *p;
	*p = NULL;
	nv->f.shutdown();
	if (nv->dl)
		dlclose(nv->dl);
	free(nv);
}

int
gpu_nvml_count(gpu_nvml *nv, unsigned int *n)
{
	*n = 0;
	if (nv->f.device_count(n) != GPU_NVML_SUCCESS) {
		*n = 0;
		return -EIO;
	}
	if (*n > GPU_MAX)
		*n = GPU_MAX;
	return 0;
}

int
gpu_nvml_device(gpu_nvml *nv, unsigned int index, struct gpu_nvml_info *out)
{
	struct gpu_nvml_memory mem = { 0, 0, 0 };
	struct gpu_nvml_util util = { 0, 0 };
	unsigned int cur = 0, pending = 0, n = 0;
	void *dev = NULL;

	memset(out, 0, sizeof(*out));
	if (gpu_nvml_count(nv, &n) < 0)
		return -EIO;
	if (index >= n)
		return -ENODEV;
	if (nv->f.device_handle(index, &dev) != GPU_NVML_SUCCESS)
		return -EIO;
	if (nv->f.device_uuid(dev, out->uuid, sizeof(out->uuid)) !=
	        GPU_NVML_SUCCESS ||
	    nv->f.device_name(dev, out->name, sizeof(out->name)) !=
	        GPU_NVML_SUCCESS ||
	    nv->f.device_memory(dev, &mem) != GPU_NVML_SUCCESS)
		return -EIO;
	out->uuid[sizeof(out->uuid) - 1] = '\0';
	out->name[sizeof(out->name) - 1] = '\0';
	out->memory_total = mem.total;
	out->memory_free = mem.free;
	out->major = out->minor = -1;
	if (nv->f.device_cc(dev, &out->major, &out->minor) != GPU_NVML_SUCCESS)
		out->major = out->minor = -1;
	/* NOT_SUPPORTED on GPUs without MIG: that is "off". */
	out->mig = nv->f.device_mig(dev, &cur, &pending) == GPU_NVML_SUCCESS &&
	           cur != 0;
	if (nv->f.device_util(dev, &util) == GPU_NVML_SUCCESS) {
		out->util_compute = (int)util.gpu;
		out->util_memory = (int)util.memory;
	} else {
		out->util_compute = out->util_memory = -1;
	}
	return 0;
}

/* Sets o[key] = v, taking v's reference; -ENOMEM when either fails. */
static int
gpu_json_set(json_t *o, const char *key, json_t *v)
{
	return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

static json_t *
gpu_json_device(const struct gpu_nvml_info *in, bool stats)
{
	json_t *o = json_object();
	int rv = 0;

	if (!o)
		return NULL;
	rv |= gpu_json_set(o, "id", json_string(in->uuid));
	rv |= gpu_json_set(o, "name", json_string(in->name));
	rv |= gpu_json_set(o, "memory_total",
	                   json_integer((json_int_t)in->memory_total));
	rv |= gpu_json_set(o, "memory_free",
	                   json_integer((json_int_t)in->memory_free));
	if (stats) {
		rv |= gpu_json_set(o, "utilization_compute",
		                   in->util_compute < 0
		                       ? json_null()
		                       : json_integer(in->util_compute));
		rv |= gpu_json_set(o, "utilization_memory",
		                   in->util_memory < 0
		                       ? json_null()
		                       : json_integer(in->util_memory));
	} else {
		rv |= gpu_json_set(o, "major", json_integer(in->major));
		rv |= gpu_json_set(o, "minor", json_integer(in->minor));
	}
	if (rv) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
gpu_nvml_info_json(gpu_nvml *nv, json_t *gpus, bool stats)
{
	unsigned int n = 0;

	if (!json_is_object(gpus))
		return -EINVAL;
	if (gpu_nvml_count(nv, &n) < 0)
		return 0;
	for (unsigned int i = 0; i < n; i++) {
		struct gpu_nvml_info info;
		char key[16];
		json_t *o;

		if (gpu_nvml_device(nv, i, &info) < 0)
			continue;
		o = gpu_json_device(&info, stats);
		snprintf(key, sizeof(key), "%u", i);
		if (!o || json_object_set_new(gpus, key, o) < 0)
			return -ENOMEM;
	}
	return 0;
}

int
gpu_info_json(json_t *gpus, bool stats)
{
	gpu_nvml *nv = NULL;
	int rv;

	if (!json_is_object(gpus))
		return -EINVAL;
	if (gpu_nvml_create(&nv, NULL) < 0)
		return 0;
	rv = gpu_nvml_info_json(nv, gpus, stats);
	gpu_nvml_destroy(&nv);
	return rv;
}
