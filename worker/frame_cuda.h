/*
 * The worker's frames on a GPU (docs/gpu.md "Worker"): which path a frame
 * takes between the ring and the plugin (views on device slots, pinned host
 * staging, device staging), the CUDA stream and staging buffers of one
 * worker lifetime, device-side copies, and why a CUDA ring could not be
 * attached. Owns the stream and the staging; not the ring or the plugin.
 * Builds without CUDA: gpu.h's stubs answer -ENOTSUP.
 */
#ifndef CT_WORKER_FRAME_CUDA_H
#define CT_WORKER_FRAME_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame_processor.h"
#include "gpu.h"
#include "ring.h"

/* How frames reach the plugin; decided once per worker lifetime. */
enum frame_cuda_mode {
	FRAME_CUDA_NONE = 0,   /* host ring, host plugin: loop.c's own path */
	FRAME_CUDA_DIRECT,     /* CUDA ring, CUDA plugin: views on device slots */
	FRAME_CUDA_VIA_HOST,   /* CUDA ring, host plugin: D2H + H2D, pinned staging */
	FRAME_CUDA_VIA_DEVICE, /* host ring, CUDA plugin: H2D + D2H, device staging */
};

/*
 * The CUDA calls frame_cuda makes. NULL in frame_cuda_create means the real
 * gpu_cuda_* helpers; tests pass host-memory fakes. Same contracts as the
 * gpu_cuda_* function of the same name (common/gpu.h).
 */
struct frame_cuda_ops {
	int (*stream_create)(int ordinal, void **stream);
	void (*stream_destroy)(void **stream);
	int (*stream_sync)(void *stream);
	int (*host_alloc)(void **p, size_t bytes);  /* pinned host memory */
	void (*host_free)(void **p);
	int (*dev_alloc)(void **p, size_t bytes);   /* device memory */
	void (*dev_free)(void **p);
	int (*copy2d)(void *dst, size_t dpitch, const void *src, size_t spitch,
	              size_t width_bytes, size_t rows, enum gpu_copy kind,
	              void *stream);
};

/* What the header page of a ring says about its GPU (CUDA rings only). */
struct frame_cuda_ring_info {
	bool cuda;             /* a ring header with backend RING_BACKEND_CUDA */
	int32_t gateway_device; /* the gateway's ordinal of the GPU (logs) */
	uint8_t uuid[16];      /* the GPU's UUID */
	char uuid_text[48];    /* "GPU-..." */
};

typedef struct frame_cuda frame_cuda;

/*
 * The path for a ring backend (enum ring_backend_id), the plugin's
 * wants.video_mem and --gpu. Returns 0 and *out, or -ENOTSUP (a CUDA plugin
 * on a host ring with no GPU, --gpu -1), -EINVAL (unknown backend or mem).
 * Pure.
 */
int frame_cuda_mode_for(uint32_t backend, uint32_t wants_mem, int gpu,
                        enum frame_cuda_mode *out);

/* "none", "direct", "via-host", "via-device". Pure. */
const char *frame_cuda_mode_name(enum frame_cuda_mode mode);

/*
 * Reads the ring header page at offset 0 of fd (an inherited --ring-fd,
 * before or without ring_attach) into *out. A header that is not a ring or
 * not a CUDA ring gives out->cuda false. Returns 0, or -errno of pread.
 * Does not change the fd's offset. Any thread.
 */
int frame_cuda_ring_info(int fd, struct frame_cuda_ring_info *out);

/*
 * Why ring_attach of a CUDA ring failed with rc, as one line naming the
 * failing call and the reason ("call=cudaIpcOpenMemHandle reason=..."),
 * e.g. not a CUDA build, no visible device, the ring's GPU not visible
 * (its UUID and CUDA_VISIBLE_DEVICES), IPC refused. Asks the CUDA runtime
 * (device count, UUIDs): call it before this process uses CUDA otherwise.
 */
void frame_cuda_attach_reason(const struct frame_cuda_ring_info *ri, int rc,
                              char *buf, size_t cap);

/*
 * The visible ordinal of the ring's GPU (by UUID), else `fallback`. Uses the
 * CUDA runtime; -1 when CUDA is not built in.
 */
int frame_cuda_ring_device(const struct frame_cuda_ring_info *ri, int fallback);

/*
 * Prepares `mode` (not NONE) for ring r on CUDA ordinal `device`: creates the
 * CUDA stream (once per worker lifetime) and, for the VIA modes, the staging
 * of two slots (pinned host or device memory), sized once. ops NULL: the
 * real CUDA helpers (copied otherwise). Returns 0, or -EINVAL, -ENOMEM,
 * -ENODEV, -ENOTSUP (no CUDA), -EIO with the failing step in why. Blocks
 * (CUDA context creation, ~0.2-1 s). The thread that makes plugin calls.
 */
int frame_cuda_create(frame_cuda **out, enum frame_cuda_mode mode, ring *r,
                      int device, const struct frame_cuda_ops *ops,
                      char *why, size_t why_cap);

/* Frees staging, scratch and the stream. NULL-safe; sets *p = NULL. */
void frame_cuda_destroy(frame_cuda **p);

enum frame_cuda_mode frame_cuda_get_mode(const frame_cuda *fc);

/* The stream frame views carry (NULL for VIA_HOST: host views). */
void *frame_cuda_stream(const frame_cuda *fc);

/* True when the plugin's output planes are in device memory (DIRECT,
   VIA_DEVICE): moving them is frame_cuda_move's job, never memmove. */
bool frame_cuda_out_on_device(const frame_cuda *fc);

/* Logs at a stream's start what the path costs (VIA modes: two copies per
   frame). Once per stream. */
void frame_cuda_stream_started(frame_cuda *fc, uint32_t stream);

/*
 * Before process_video: in and out (filled by the loop for host slots of
 * layout lay at in_base / out_base) become the plugin's views: DIRECT: mem
 * CUDA, device, stream, planes in the device slots; VIA_HOST: the input is
 * downloaded into pinned staging (waited for), host views on the staging;
 * VIA_DEVICE: the input is uploaded into device staging (waited for), CUDA
 * views on it. *work is the base of the memory the output view lies in
 * (out_base or the output staging, slot-sized). Returns 0, or -EIO/-EINVAL
 * of a copy. Blocks on the copy. Plugin-call thread.
 */
int frame_cuda_views(frame_cuda *fc, const struct ring_frame *lay,
                     uint8_t *in_base, uint8_t *out_base,
                     struct fp_video_frame *in, struct fp_video_frame *out,
                     uint8_t **work);

/*
 * Moves device planes o->plane/o->stride into layout lay at base (the
 * output's device memory) through a slot-sized device scratch (made on
 * first need): device-to-device copies on the stream. Does not wait.
 * Returns 0, -ENOMEM, -EIO.
 */
int frame_cuda_move(frame_cuda *fc, const struct fp_video_frame *o,
                    const struct ring_frame *lay, uint8_t *base);

/*
 * After process_video, whatever it returned: waits for the stream (the
 * plugin's work; not in VIA_HOST, where nothing is queued on it). out_lay
 * non-NULL (FP_OK, output in canonical layout in the work memory):
 * VIA_HOST uploads the output staging into out_base, VIA_DEVICE downloads
 * it into out_base, and waits. The caller then calls
 * ring_sync(TO_PEER) and sends RESULT. Returns 0, or -EIO (the stream
 * failed: the plugin's kernel or a copy; the CUDA context is likely lost).
 * Blocks.
 */
int frame_cuda_finish(frame_cuda *fc, const struct ring_frame *out_lay,
                      uint8_t *out_base);

/* Frames through each copy direction so far (tests, logs). */
struct frame_cuda_stats {
	uint64_t h2d, d2h, d2d; /* plane copies enqueued */
	uint64_t syncs;         /* stream synchronisations */
};
void frame_cuda_get_stats(const frame_cuda *fc, struct frame_cuda_stats *out);

#endif
