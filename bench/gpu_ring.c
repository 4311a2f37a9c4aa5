/*
 * bench/gpu_ring: per-frame cost of putting a decoded frame into a slot of
 * the CUDA ring (acquire, pitched upload from pinned staging on the stream's
 * CUDA stream, stream sync, ring_sync TO_PEER, send, release) against a plain
 * cudaMemcpy of the same bytes from pinned memory into a cudaMalloc buffer,
 * interleaved in the same run. Prints p50/p99 of both at 512x512 RGB24 and
 * 1920x1080 NV12; last line `gpu_ring: X (goal <= 1.5)`, X the worse p50
 * ratio. Without a GPU it prints `skipped: no GPU` and exits 0.
 * Usage: build/bench/gpu_ring [--frames N] [--device N]   (default 2000, 0)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "frame_processor.h"
#include "gpu.h"
#include "ring.h"

#define BG_WARMUP 50

struct bg_size {
	const char *name;
	uint32_t w, h, format;
};

static const struct bg_size bg_sizes[] = {
	{ "512x512 rgb24", 512, 512, FP_FMT_RGB24 },
	{ "1920x1080 nv12", 1920, 1080, FP_FMT_NV12 },
};

static int
bg_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
bg_pct(int64_t *v, int n, double pct)
{
	qsort(v, (size_t)n, sizeof(*v), bg_cmp);
	return (double)v[(int)((n - 1) * pct)] / 1000.0;
}

/* One size: returns the p50 ratio (ring / floor), or < 0 on failure. */
static double
bg_run(ring *r, const struct bg_size *sz, int frames, void *stream)
{
	struct ring_frame f;
	void *pinned = NULL, *plain = NULL;
	int64_t *t_ring = NULL, *t_floor = NULL;
	uint32_t stride[4] = { 0 };
	uint8_t *host[4] = { NULL };
	double ratio = -1.0, rp50, fp50;
	uint64_t packed = 0;

	if (ring_frame_layout(sz->format, sz->w, sz->h, ring_slot_bytes(r),
	                      &f) < 0)
		return -1.0;
	/* Host staging holds the planes packed (row_bytes rows), as swscale
	   would leave them in pinned memory. */
	for (uint32_t p = 0; p < f.planes; p++)
		packed += (uint64_t)f.row_bytes[p] * f.rows[p];
	t_ring = calloc((size_t)frames, sizeof(*t_ring));
	t_floor = calloc((size_t)frames, sizeof(*t_floor));
	if (!t_ring || !t_floor || gpu_cuda_host_alloc(&pinned, packed) < 0 ||
	    gpu_cuda_malloc(&plain, packed) < 0)
		goto out;
	memset(pinned, 0x33, packed);
	for (uint32_t p = 0, off = 0; p < f.planes; p++) {
		host[p] = (uint8_t *)pinned + off;
		stride[p] = f.row_bytes[p];
		off += f.row_bytes[p] * f.rows[p];
	}
	for (int k = -BG_WARMUP; k < frames; k++) {
		uint32_t slot, gen;
		uint8_t *dev;
		uint64_t cap;
		int64_t t0, t1, t2;

		t0 = clock_now_ns();
		if (ring_acquire(r, &slot, &gen) < 0 ||
		    ring_slot_ptr(r, slot, gen, &dev, &cap) < 0 ||
		    gpu_frame_upload(&f, dev, host, stride, stream) < 0 ||
		    gpu_cuda_stream_sync(stream) < 0)
			goto out;
		ring_sync(r, slot, RING_SYNC_TO_PEER);
		if (ring_send(r, slot, gen, 0, 1) < 0 ||
		    ring_release(r, slot, gen) < 0)
			goto out;
		t1 = clock_now_ns();
		if (gpu_cuda_copy2d(plain, packed, pinned, packed, packed, 1,
		                    GPU_COPY_H2D, stream) < 0 ||
		    gpu_cuda_stream_sync(stream) < 0)
			goto out;
		t2 = clock_now_ns();
		if (k >= 0) {
			t_ring[k] = t1 - t0;
			t_floor[k] = t2 - t1;
		}
	}
	rp50 = bg_pct(t_ring, frames, 0.5);
	fp50 = bg_pct(t_floor, frames, 0.5);
	printf("%-15s %8.1f MB  ring p50 %8.1f us p99 %8.1f us | cudaMemcpy "
	       "p50 %8.1f us p99 %8.1f us | ratio %.2f\n",
	       sz->name, (double)packed / 1e6, rp50, bg_pct(t_ring, frames, 0.99),
	       fp50, bg_pct(t_floor, frames, 0.99), rp50 / fp50);
	ratio = rp50 / fp50;
out:
	gpu_cuda_free(&plain);
	gpu_cuda_host_free(&pinned);
	free(t_ring);
	free(t_floor);
	return ratio;
}

int
main(int argc, char **argv)
{
	struct ring_params p = { .slot_count = 4, .max_width = 1920,
		                 .max_height = 1080,
		                 .backend = RING_BACKEND_CUDA };
	struct gpu_device devs[GPU_MAX];
	char reason[GPU_REASON_LEN];
	int frames = 2000, n = 0, rv;
	double worst = 0.0;
	void *stream = NULL;
	ring *r = NULL;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--frames") == 0)
			frames = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--device") == 0)
			p.device = atoi(argv[i + 1]);
	}
	if (frames < 10)
		frames = 10;
	/* Discovery forks; it must come before this process touches CUDA. */
	gpu_discover(devs, GPU_MAX, &n, false, reason, sizeof(reason));
	if (n == 0) {
		printf("skipped: no GPU (%s)\n", reason);
		return 0;
	}
	if (p.device < 0 || p.device >= n) {
		fprintf(stderr, "gpu_ring: no device %d\n", p.device);
		return 1;
	}
	printf("device %d: %s (%s), %d frames per size after %d warm-up\n",
	       p.device, devs[p.device].name, devs[p.device].uuid, frames,
	       BG_WARMUP);
	rv = ring_create(&r, &p);
	if (rv == 0)
		rv = gpu_cuda_stream_create(p.device, &stream);
	if (rv < 0) {
		fprintf(stderr, "gpu_ring: CUDA ring: %s\n", strerror(-rv));
		ring_destroy(&r);
		return 1;
	}
	for (size_t i = 0; i < sizeof(bg_sizes) / sizeof(bg_sizes[0]); i++) {
		double ratio = bg_run(r, &bg_sizes[i], frames, stream);

		if (ratio < 0) {
			fprintf(stderr, "gpu_ring: %s failed\n", bg_sizes[i].name);
			worst = -1.0;
			break;
		}
		if (ratio > worst)
			worst = ratio;
	}
	gpu_cuda_stream_destroy(&stream);
	ring_destroy(&r);
	if (worst < 0)
		return 1;
	printf("gpu_ring: %.2f (goal <= 1.5)\n", worst);
	return 0;
}
