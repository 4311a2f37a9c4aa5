/*
 * The worker's frames on a GPU (see frame_cuda.h): path choice, the CUDA
 * stream and staging of one worker lifetime, plane copies through
 * frame_cuda_ops, and the diagnosis of a CUDA ring that cannot be attached.
 * Never memcpy on a device pointer: every device access is an ops->copy2d.
 */
#include "worker/frame_cuda.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/*
 * The start of ring_header.backend_data of a CUDA ring. Mirrors struct
 * ring_cuda_data of common/ring_cuda.c (private there): keep in step.
 */
#define FRAME_CUDA_DATA_MAGIC 0x41445543u /* "CUDA" little endian */
struct frame_cuda_data {
	uint32_t magic;
	uint32_t version;
	uint8_t uuid[16];
	uint64_t region_bytes;
	int32_t gateway_device;
};
_Static_assert(sizeof(struct frame_cuda_data) <= RING_BACKEND_DATA,
               "fits backend_data");

struct frame_cuda {
	enum frame_cuda_mode mode;
	struct frame_cuda_ops ops;
	ring *ring;
	int device;
	void *stream;
	uint64_t slot_bytes;
	uint8_t *stage;   /* VIA modes: 2 x slot_bytes (in, then out) */
	bool stage_host;  /* stage came from ops.host_alloc (else dev_alloc) */
	uint8_t *scratch; /* device, slot_bytes, made on first move */
	struct frame_cuda_stats st;
};

static const struct frame_cuda_ops frame_cuda_real = {
	.stream_create = gpu_cuda_stream_create,
	.stream_destroy = gpu_cuda_stream_destroy,
	.stream_sync = gpu_cuda_stream_sync,
	.host_alloc = gpu_cuda_host_alloc,
	.host_free = gpu_cuda_host_free,
	.dev_alloc = gpu_cuda_malloc,
	.dev_free = gpu_cuda_free,
	.copy2d = gpu_cuda_copy2d,
};

int
frame_cuda_mode_for(uint32_t backend, uint32_t wants_mem, int gpu,
                    enum frame_cuda_mode *out)
{
	*out = FRAME_CUDA_NONE;
	if (wants_mem != FP_MEM_HOST && wants_mem != FP_MEM_CUDA)
		return -EINVAL;
	switch (backend) {
	case 0:
	case RING_BACKEND_HOST:
		if (wants_mem == FP_MEM_HOST)
			return 0;
		if (gpu < 0)
			return -ENOTSUP;
		*out = FRAME_CUDA_VIA_DEVICE;
		return 0;
	case RING_BACKEND_CUDA:
		*out = wants_mem == FP_MEM_CUDA ? FRAME_CUDA_DIRECT :
		                                  FRAME_CUDA_VIA_HOST;
		return 0;
	default:
		return -EINVAL;
	}
}

const char *
frame_cuda_mode_name(enum frame_cuda_mode mode)
{
	switch (mode) {
	case FRAME_CUDA_NONE: return "none";
	case FRAME_CUDA_DIRECT: return "direct";
	case FRAME_CUDA_VIA_HOST: return "via-host";
	case FRAME_CUDA_VIA_DEVICE: return "via-device";
	default: return "?";
	}
}

int
frame_cuda_ring_info(int fd, struct frame_cuda_ring_info *out)
{
	struct ring_header *h;
	struct frame_cuda_data d;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	out->gateway_device = -1;
	h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	n = pread(fd, h, sizeof(*h), 0);
	if (n < 0) {
		n = -errno;
		free(h);
		return (int)n;
	}
	if (n == (ssize_t)sizeof(*h) && h->magic == RING_MAGIC &&
	    h->backend == RING_BACKEND_CUDA) {
		out->cuda = true;
		memcpy(&d, h->backend_data, sizeof(d));
		if (d.magic == FRAME_CUDA_DATA_MAGIC) {
			out->gateway_device = d.gateway_device;
			memcpy(out->uuid, d.uuid, sizeof(out->uuid));
			gpu_uuid_format(out->uuid, out->uuid_text,
			                sizeof(out->uuid_text));
		}
	}
	free(h);
	return 0;
}

void
frame_cuda_attach_reason(const struct frame_cuda_ring_info *ri, int rc,
                         char *buf, size_t cap)
{
	const char *vis = getenv("CUDA_VISIBLE_DEVICES");
	const char *uuid = ri->uuid_text[0] ? ri->uuid_text : "unknown";
	int n = 0, ord = -1, crc;

	if (!vis)
		vis = "(unset)";
	if (rc == -EBADMSG || rc == -EINVAL) {
		snprintf(buf, cap, "call=ring_attach reason=\"bad CUDA ring header "
		         "(%s: layout, seals or size)\" err=%d", strerror(-rc), rc);
		return;
	}
	crc = gpu_cuda_device_count(&n);
	if (crc == -ENOTSUP) {
		snprintf(buf, cap, "call=ring_attach reason=\"this worker is built "
		         "without CUDA (make CUDA=0)\" err=%d", rc);
		return;
	}
	if (crc < 0 || n <= 0) {
		snprintf(buf, cap, "call=cudaGetDeviceCount reason=\"no usable CUDA "
		         "device: %s (no device, no driver, or a driver older "
		         "than this CUDA runtime; CUDA_VISIBLE_DEVICES=%s)\" err=%d",
		         crc < 0 ? strerror(-crc) : "0 devices", vis, rc);
		return;
	}
	if (gpu_cuda_find_uuid(ri->uuid, &ord) < 0) {
		snprintf(buf, cap, "call=cudaGetDeviceProperties reason=\"the ring's "
		         "GPU %s (gateway device %d) is not among the %d visible "
		         "here (CUDA_VISIBLE_DEVICES=%s)\" err=%d", uuid,
		         (int)ri->gateway_device, n, vis, rc);
		return;
	}
	snprintf(buf, cap, "call=cudaIpcOpenMemHandle reason=\"%s on device %d "
	         "(%s; MIG, a PID namespace or the container runtime refuse "
	         "CUDA IPC)\" err=%d",
	         rc == -ENOTSUP ? "IPC not supported" :
	         rc == -ENOMEM ? "out of device memory" : "IPC open failed",
	         ord, strerror(-rc), rc);
}

int
frame_cuda_ring_device(const struct frame_cuda_ring_info *ri, int fallback)
{
	int ord = -1;

	if (gpu_cuda_find_uuid(ri->uuid, &ord) == 0)
		return ord;
	return fallback;
}

int
frame_cuda_create(frame_cuda **out, enum frame_cuda_mode mode, ring *r,
                  int device, const struct frame_cuda_ops *ops,
                  char *why, size_t why_cap)
{
	frame_cuda *fc;
	void *p = NULL;
	int rc;

	*out = NULL;
	if (mode == FRAME_CUDA_NONE || mode > FRAME_CUDA_VIA_DEVICE || !r ||
	    device < 0) {
		snprintf(why, why_cap, "bad GPU frame path mode=%d device=%d",
		         (int)mode, device);
		return -EINVAL;
	}
	fc = calloc(1, sizeof(*fc));
	if (!fc)
		return -ENOMEM;
	fc->mode = mode;
	fc->ops = ops ? *ops : frame_cuda_real;
	fc->ring = r;
	fc->device = device;
	fc->slot_bytes = ring_slot_bytes(r);
	rc = fc->ops.stream_create(device, &fc->stream);
	if (rc < 0) {
		snprintf(why, why_cap, "call=cudaStreamCreateWithFlags device=%d "
		         "err=%s", device, strerror(-rc));
		goto err_free;
	}
	if (mode == FRAME_CUDA_VIA_HOST) {
		rc = fc->ops.host_alloc(&p, 2 * fc->slot_bytes);
		fc->stage_host = true;
	} else if (mode == FRAME_CUDA_VIA_DEVICE) {
		rc = fc->ops.dev_alloc(&p, 2 * fc->slot_bytes);
	}
	if (rc < 0) {
		snprintf(why, why_cap, "call=%s bytes=%llu err=%s",
		         fc->stage_host ? "cudaMallocHost" : "cudaMalloc",
		         (unsigned long long)(2 * fc->slot_bytes), strerror(-rc));
		goto err_stream;
	}
	fc->stage = p;
	log_info("gpu", "gpu frames ready path=%s device=%d staging_bytes=%llu",
	         frame_cuda_mode_name(mode), device,
	         (unsigned long long)(fc->stage ? 2 * fc->slot_bytes : 0));
	*out = fc;
	return 0;

err_stream:
	fc->ops.stream_destroy(&fc->stream);
err_free:
	free(fc);
	return rc;
}

void
frame_cuda_destroy(frame_cuda **p)
{
	frame_cuda *fc;
	void *m;

	if (!p || !*p)
		return;
	fc = *p;
	*p = NULL;
	if (fc->stream)
		fc->ops.stream_sync(fc->stream);
	m = fc->scratch;
	fc->ops.dev_free(&m);
	m = fc->stage;
	if (m && fc->stage_host)
		fc->ops.host_free(&m);
	else if (m)
		fc->ops.dev_free(&m);
	fc->ops.stream_destroy(&fc->stream);
	free(fc);
}

enum frame_cuda_mode
frame_cuda_get_mode(const frame_cuda *fc)
{
	return fc ? fc->mode : FRAME_CUDA_NONE;
}

void *
frame_cuda_stream(const frame_cuda *fc)
{
	return fc && fc->mode != FRAME_CUDA_VIA_HOST ? fc->stream : NULL;
}

bool
frame_cuda_out_on_device(const frame_cuda *fc)
{
	return fc && (fc->mode == FRAME_CUDA_DIRECT ||
	              fc->mode == FRAME_CUDA_VIA_DEVICE);
}

void
frame_cuda_stream_started(frame_cuda *fc, uint32_t stream)
{
	if (!fc)
		return;
	if (fc->mode == FRAME_CUDA_VIA_HOST)
		log_info("gpu", "stream=%u plugin wants host frames on a CUDA "
		         "ring: two copies per frame (download, upload through "
		         "pinned staging)", stream);
	else if (fc->mode == FRAME_CUDA_VIA_DEVICE)
		log_info("gpu", "stream=%u plugin wants CUDA frames on a host "
		         "ring: two copies per frame (upload, download through "
		         "device staging) device=%d", stream, fc->device);
}

/* Enqueues the copy of every plane of lay from src to dst (same layout). */
static int
frame_cuda_copy_planes(frame_cuda *fc, const struct ring_frame *lay,
                       uint8_t *dst, const uint8_t *src, enum gpu_copy kind)
{
	int rc;

	for (uint32_t p = 0; p < lay->planes; p++) {
		rc = fc->ops.copy2d(dst + lay->offset[p], lay->stride[p],
		                    src + lay->offset[p], lay->stride[p],
		                    lay->row_bytes[p], lay->rows[p], kind,
		                    fc->stream);
		if (rc < 0)
			return rc;
		if (kind == GPU_COPY_H2D)
			fc->st.h2d++;
		else if (kind == GPU_COPY_D2H)
			fc->st.d2h++;
		else
			fc->st.d2d++;
	}
	return 0;
}

static int
frame_cuda_sync(frame_cuda *fc)
{
	fc->st.syncs++;
	return fc->ops.stream_sync(fc->stream);
}

/* The output half of the staging (NULL without staging). */
static uint8_t *
frame_cuda_stage_out(const frame_cuda *fc)
{
	return fc->stage ? fc->stage + fc->slot_bytes : NULL;
}

/* Points v's planes at base in layout lay and says where they live. */
static void
frame_cuda_set_view(frame_cuda *fc, struct fp_video_frame *v,
                    const struct ring_frame *lay, uint8_t *base, bool device)
{
	v->mem = device ? FP_MEM_CUDA : FP_MEM_HOST;
	v->device = device ? fc->device : -1;
	v->cuda_stream = device ? fc->stream : NULL;
	memset(v->plane, 0, sizeof(v->plane));
	memset(v->stride, 0, sizeof(v->stride));
	for (uint32_t p = 0; p < lay->planes && p < 4; p++) {
		v->plane[p] = base + lay->offset[p];
		v->stride[p] = lay->stride[p];
	}
}

int
frame_cuda_views(frame_cuda *fc, const struct ring_frame *lay,
                 uint8_t *in_base, uint8_t *out_base,
                 struct fp_video_frame *in, struct fp_video_frame *out,
                 uint8_t **work)
{
	uint8_t *sin = fc->stage, *sout = frame_cuda_stage_out(fc);
	int rc;

	switch (fc->mode) {
	case FRAME_CUDA_DIRECT:
		frame_cuda_set_view(fc, in, lay, in_base, true);
		frame_cuda_set_view(fc, out, lay, out_base, true);
		*work = out_base;
		return 0;
	case FRAME_CUDA_VIA_HOST:
		rc = frame_cuda_copy_planes(fc, lay, sin, in_base, GPU_COPY_D2H);
		if (rc == 0)
			rc = frame_cuda_sync(fc);
		frame_cuda_set_view(fc, in, lay, sin, false);
		frame_cuda_set_view(fc, out, lay, sout, false);
		*work = sout;
		return rc;
	case FRAME_CUDA_VIA_DEVICE:
		/* Waited for: a plugin copying on the legacy default stream
		   would not be ordered after our non-blocking stream. */
		rc = frame_cuda_copy_planes(fc, lay, sin, in_base, GPU_COPY_H2D);
		if (rc == 0)
			rc = frame_cuda_sync(fc);
		frame_cuda_set_view(fc, in, lay, sin, true);
		frame_cuda_set_view(fc, out, lay, sout, true);
		*work = sout;
		return rc;
	default:
		*work = out_base;
		return -EINVAL;
	}
}

int
frame_cuda_move(frame_cuda *fc, const struct fp_video_frame *o,
                const struct ring_frame *lay, uint8_t *base)
{
	void *mem = NULL;
	int rc;

	if (!fc->scratch) {
		rc = fc->ops.dev_alloc(&mem, fc->slot_bytes);
		if (rc < 0)
			return rc;
		fc->scratch = mem;
	}
	/* Via the scratch: cudaMemcpy2DAsync must not overlap. */
	for (uint32_t p = 0; p < lay->planes; p++) {
		rc = fc->ops.copy2d(fc->scratch + lay->offset[p], lay->stride[p],
		                    o->plane[p], o->stride[p], lay->row_bytes[p],
		                    lay->rows[p], GPU_COPY_D2D, fc->stream);
		if (rc < 0)
			return rc;
		fc->st.d2d++;
	}
	return frame_cuda_copy_planes(fc, lay, base, fc->scratch, GPU_COPY_D2D);
}

int
frame_cuda_finish(frame_cuda *fc, const struct ring_frame *out_lay,
                  uint8_t *out_base)
{
	uint8_t *sout = frame_cuda_stage_out(fc);
	int rc = 0;

	/* A host plugin (via-host) gets no stream and queued nothing on ours,
	   which the download already drained: no wait for it. */
	if (fc->mode != FRAME_CUDA_VIA_HOST)
		rc = frame_cuda_sync(fc);
	if (rc < 0 || !out_lay || fc->mode == FRAME_CUDA_DIRECT)
		return rc;
	if (fc->mode == FRAME_CUDA_VIA_HOST)
		rc = frame_cuda_copy_planes(fc, out_lay, out_base, sout,
		                            GPU_COPY_H2D);
	else
		rc = frame_cuda_copy_planes(fc, out_lay, out_base, sout,
		                            GPU_COPY_D2H);
	if (rc == 0)
		rc = frame_cuda_sync(fc);
	return rc;
}

void
frame_cuda_get_stats(const frame_cuda *fc, struct frame_cuda_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (fc)
		*out = fc->st;
}
