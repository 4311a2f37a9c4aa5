/*
 * Where the gateway's workers and frame rings live: GPU discovery (or the
 * CTRICKLE_TEST_FAKE_GPUS test hook), the --gpus plan, workers per GPU, and
 * one frame ring per GPU (CUDA when it can be created, else a host ring for
 * that GPU), plus the switch of one GPU to a host ring when its workers
 * cannot open the CUDA ring. Owns the rings; not the workers or streams.
 */
#ifndef CT_GPUPLAN_H
#define CT_GPUPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "gpu.h"
#include "ring.h"

typedef struct gpuplan gpuplan;

#define GPUPLAN_FAKE_ENV "CTRICKLE_TEST_FAKE_GPUS" /* test hook, 1..8 */
#define GPUPLAN_FAKE_MAX 8

struct gpuplan_params {
	struct gpu_request req; /* --gpus (list borrowed for the call) */
	int workers_per_gpu;    /* --workers-per-gpu, >= 1 */
	int ring_slots;         /* --ring-slots per worker, >= 1 */
	int ring_extra;         /* slots added to every ring (encoder queues) */
	int max_width, max_height; /* --max-resolution */
	int fake_gpus;          /* test hook: 0 = real discovery, 1..8 fakes */
};

/*
 * Discovers the GPUs (gpu_discover with the IPC probe, or fake_gpus fakes:
 * ordinals 0..N-1, "fake GPU i", no CUDA touched), makes the plan and
 * creates one ring per GPU of the plan (workers on it x ring_slots +
 * ring_extra slots), or one host ring when the plan has no GPU. A GPU whose
 * CUDA ring cannot be created gets a host ring (logged once per GPU).
 * Returns 0; -ENODEV when --gpus all / a list cannot be met (err says why:
 * print it and exit 2); -EINVAL (bad params; err says which); -ENOMEM or a
 * ring error (err says so). Blocks (discovery forks, ~0.1-2 s with GPUs):
 * call before any thread starts and before the first nng call.
 */
int gpuplan_create(gpuplan **out, const struct gpuplan_params *p, char *err,
                   size_t errlen);

/* Destroys every ring ever created. Call only after every worker has been
 * reaped (exported CUDA memory must outlive its importers). NULL-safe. */
void gpuplan_destroy(gpuplan **p);

/* Parses GPUPLAN_FAKE_ENV's value: 0 when unset/empty, N for 1..8, -EINVAL
 * otherwise. Pure. */
int gpuplan_parse_fake(const char *value);

/* Workers to run: max(1, GPUs) x workers_per_gpu. */
int gpuplan_nworkers(const gpuplan *gp);

/* GPUs of the plan (0: host ring). */
int gpuplan_ngpus(const gpuplan *gp);

/* Groups of workers sharing a ring: ngpus, or 1 for the host plan. */
int gpuplan_ngroups(const gpuplan *gp);

/* CUDA ordinal of worker w, or -1 (host plan). */
int gpuplan_worker_gpu(const gpuplan *gp, int w);

/* Group of a CUDA ordinal as a worker reports it (-1: the host group 0 of
 * a host plan); -1 when no group has it. */
int gpuplan_group_of(const gpuplan *gp, int gpu);

/* CUDA ordinal of group g, -1 for the host group. */
int gpuplan_group_gpu(const gpuplan *gp, int g);

/* The ring new workers and new streams of group g use now; NULL if bad g. */
ring *gpuplan_ring(const gpuplan *gp, int g);

/* true when group g's current ring is a CUDA ring. */
bool gpuplan_is_cuda(const gpuplan *gp, int g);

/*
 * Every ring of group g, current first (a GPU switched to a host ring keeps
 * its CUDA ring until destroy): up to cap into out. Returns how many.
 */
int gpuplan_group_rings(const gpuplan *gp, int g, ring **out, int cap);

/*
 * Gives GPU `gpu` (a CUDA ordinal) a host ring from now on, after `why`
 * (logged once): creates it unless the current one is already a host ring.
 * The old CUDA ring stays alive (workers may still map it). *fd = the new
 * current ring's fd (owned by the plan). Returns 0, -ENOENT (no such GPU in
 * the plan), -ENOMEM or a ring error. Loop thread (or before it runs).
 * Shaped as supervisor_config.ring_fallback (arg = the plan).
 */
int gpuplan_fallback(void *arg, int gpu, const char *why, int *fd);

#endif
