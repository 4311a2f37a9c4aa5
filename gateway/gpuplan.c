/*
 * The gateway's GPU plan: discovery (or the fake-GPU test hook), --gpus,
 * workers per GPU, one frame ring per GPU (CUDA, else a host ring for that
 * GPU) and the later switch of a GPU to a host ring. Owns every ring it
 * creates and frees them only at destroy, after the workers are gone.
 */
#include "gpuplan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define GPUPLAN_MOD "gpu"
#define GPUPLAN_RINGS_PER_GROUP 2 /* the CUDA ring, then a host ring */

struct gpuplan_group {
	int gpu; /* CUDA ordinal, -1: host plan */
	int nrings;
	ring *rings[GPUPLAN_RINGS_PER_GROUP]; /* [nrings - 1] is current */
	bool cuda;                           /* current ring is CUDA */
	bool logged_host;                    /* fallback line written */
};

struct gpuplan {
	struct gpuplan_params p;
	struct gpu_plan plan;
	bool fake;
	int ngroups;
	struct gpuplan_group g[GPU_MAX];
};

int
gpuplan_parse_fake(const char *v)
{
	char *end;
	long n;

	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno || *end || n < 1 || n > GPUPLAN_FAKE_MAX)
		return -EINVAL;
	return (int)n;
}

/* Slots of group g's ring: workers on it x --ring-slots + the extra. */
static uint32_t
gpuplan_slots(const gpuplan *gp)
{
	return (uint32_t)(gp->p.workers_per_gpu * gp->p.ring_slots +
	                  gp->p.ring_extra);
}

static int
gpuplan_add_ring(gpuplan *gp, struct gpuplan_group *g, bool cuda, ring **out)
{
	struct ring_params rp = {
		.slot_count = gpuplan_slots(gp),
		.max_width = (uint32_t)gp->p.max_width,
		.max_height = (uint32_t)gp->p.max_height,
		.backend = cuda ? RING_BACKEND_CUDA : RING_BACKEND_HOST,
		.device = cuda ? g->gpu : -1,
	};
	int rc;

	if (g->nrings >= GPUPLAN_RINGS_PER_GROUP)
		return -ENOSPC;
	if ((rc = ring_create(out, &rp)) < 0)
		return rc;
	g->rings[g->nrings++] = *out;
	g->cuda = cuda;
	log_info(GPUPLAN_MOD, "frame ring created gpu=%d backend=%s slots=%u "
	         "slot_bytes=%llu", g->gpu, cuda ? "cuda" : "host", rp.slot_count,
	         (unsigned long long)ring_slot_bytes(*out));
	return 0;
}

/* One GPU's ring at start: CUDA when possible, else a host ring. */
static int
gpuplan_open_group(gpuplan *gp, struct gpuplan_group *g)
{
	char why[GPU_REASON_LEN];
	ring *r;
	int rc;

	if (gp->fake) {
		snprintf(why, sizeof(why), "fake GPU of the test hook");
	} else {
		rc = gpuplan_add_ring(gp, g, true, &r);
		if (rc == 0)
			return 0;
		snprintf(why, sizeof(why), "ring_create: %s", strerror(-rc));
	}
	log_warn(GPUPLAN_MOD, "GPU %d: CUDA ring unavailable (%s): host ring gpu=%d",
	         g->gpu, why, g->gpu);
	g->logged_host = true;
	return gpuplan_add_ring(gp, g, false, &r);
}

/* Fake discovery of the test hook: n usable devices, no CUDA touched. */
static void
gpuplan_fake_devs(struct gpu_device *devs, int n)
{
	for (int i = 0; i < n; i++) {
		memset(&devs[i], 0, sizeof(devs[i]));
		devs[i].ordinal = i;
		snprintf(devs[i].name, sizeof(devs[i].name), "fake GPU %d", i);
		snprintf(devs[i].uuid, sizeof(devs[i].uuid),
		         "GPU-fake0000-0000-0000-0000-%012d", i);
		devs[i].usable = true;
	}
}

int
gpuplan_create(gpuplan **out, const struct gpuplan_params *p, char *err,
               size_t errlen)
{
	struct gpu_device *devs = NULL;
	char reason[GPU_REASON_LEN] = "";
	gpuplan *gp;
	int ndev = 0, rc;
	int64_t t0 = clock_now_ms();

	*out = NULL;
	if (!p || p->workers_per_gpu < 1 || p->ring_slots < 1 ||
	    p->ring_extra < 0 || p->fake_gpus < 0 ||
	    p->fake_gpus > GPUPLAN_FAKE_MAX) {
		snprintf(err, errlen, "bad GPU plan parameters");
		return -EINVAL;
	}
	gp = calloc(1, sizeof(*gp));
	devs = calloc(GPU_MAX, sizeof(*devs));
	if (!gp || !devs) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_free;
	}
	gp->p = *p;
	gp->p.req.list = NULL;
	gp->fake = p->fake_gpus > 0;
	if (gp->fake) {
		log_warn(GPUPLAN_MOD, "test hook active (%s): fake GPUs, no "
		         "CUDA fake_gpus=%d", GPUPLAN_FAKE_ENV, p->fake_gpus);
		gpuplan_fake_devs(devs, p->fake_gpus);
		ndev = p->fake_gpus;
	} else if (p->req.mode != GPU_MODE_NONE) {
		gpu_discover(devs, GPU_MAX, &ndev, true, reason, sizeof(reason));
		for (int i = 0; i < ndev; i++)
			log_info(GPUPLAN_MOD, "gpu found gpu=%d name=\"%s\" uuid=%s "
			         "memory_mib=%llu usable=%s reason=\"%s\"",
			         devs[i].ordinal, devs[i].name, devs[i].uuid,
			         (unsigned long long)(devs[i].memory_total >> 20),
			         devs[i].usable ? "yes" : "no", devs[i].reason);
	}
	rc = gpu_plan_make(devs, ndev, &p->req, &gp->plan);
	if (rc == -EINVAL) {
		snprintf(err, errlen, "--gpus: bad GPU list");
		goto err_free;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", gp->plan.reason);
		goto err_free;
	}
	/* A box without GPUs is a normal place to run (info); GPUs that are
	   there but cannot be used are worth a warning. */
	if (gp->plan.n == 0 && p->req.mode != GPU_MODE_NONE && ndev == 0)
		log_info(GPUPLAN_MOD, "no usable GPU: host ring reason=\"%s\"",
		         reason[0] ? reason : gp->plan.reason);
	else if (gp->plan.n == 0 && p->req.mode != GPU_MODE_NONE)
		log_warn(GPUPLAN_MOD, "no usable GPU: host ring reason=\"%s\"",
		         gp->plan.reason);
	gp->ngroups = gp->plan.n > 0 ? gp->plan.n : 1;
	for (int i = 0; i < gp->ngroups; i++) {
		struct gpuplan_group *g = &gp->g[i];
		ring *r;

		g->gpu = gp->plan.n > 0 ? gp->plan.gpu[i] : -1;
		rc = g->gpu >= 0 ? gpuplan_open_group(gp, g)
		                 : gpuplan_add_ring(gp, g, false, &r);
		if (rc < 0) {
			snprintf(err, errlen, "cannot create the frame ring gpu=%d "
			         "slots=%u size=%dx%d: %s; lower --ring-slots or "
			         "--max-resolution", g->gpu, gpuplan_slots(gp),
			         p->max_width, p->max_height, strerror(-rc));
			goto err_free;
		}
	}
	log_info(GPUPLAN_MOD, "gpu plan gpus=%d workers=%d workers_per_gpu=%d "
	         "took_ms=%lld", gp->plan.n, gpuplan_nworkers(gp),
	         p->workers_per_gpu, (long long)(clock_now_ms() - t0));
	free(devs);
	*out = gp;
	return 0;

err_free:
	free(devs);
	gpuplan_destroy(&gp);
	return rc;
}

void
gpuplan_destroy(gpuplan **p)
{
	gpuplan *gp = p ? *p : NULL;

	if (!gp)
		return;
	for (int i = 0; i < gp->ngroups; i++)
		for (int k = 0; k < gp->g[i].nrings; k++)
			ring_destroy(&gp->g[i].rings[k]);
	free(gp);
	*p = NULL;
}

int
gpuplan_nworkers(const gpuplan *gp)
{
	return gp->ngroups * gp->p.workers_per_gpu;
}

int
gpuplan_ngpus(const gpuplan *gp)
{
	return gp->plan.n;
}

int
gpuplan_ngroups(const gpuplan *gp)
{
	return gp->ngroups;
}

int
gpuplan_worker_gpu(const gpuplan *gp, int w)
{
	return gpu_plan_worker_gpu(&gp->plan, gp->p.workers_per_gpu, w);
}

int
gpuplan_group_of(const gpuplan *gp, int gpu)
{
	for (int i = 0; i < gp->ngroups; i++)
		if (gp->g[i].gpu == gpu)
			return i;
	return -1;
}

int
gpuplan_group_gpu(const gpuplan *gp, int g)
{
	return g >= 0 && g < gp->ngroups ? gp->g[g].gpu : -1;
}

ring *
gpuplan_ring(const gpuplan *gp, int g)
{
	if (g < 0 || g >= gp->ngroups || gp->g[g].nrings == 0)
		return NULL;
	return gp->g[g].rings[gp->g[g].nrings - 1];
}

bool
gpuplan_is_cuda(const gpuplan *gp, int g)
{
	return g >= 0 && g < gp->ngroups && gp->g[g].cuda;
}

int
gpuplan_group_rings(const gpuplan *gp, int g, ring **out, int cap)
{
	int n = 0;

	if (g < 0 || g >= gp->ngroups)
		return 0;
	for (int k = gp->g[g].nrings - 1; k >= 0 && n < cap; k--)
		out[n++] = gp->g[g].rings[k];
	return n;
}

int
gpuplan_fallback(void *arg, int gpu, const char *why, int *fd)
{
	gpuplan *gp = arg;
	int gi = gpu >= 0 ? gpuplan_group_of(gp, gpu) : -1;
	struct gpuplan_group *g;
	ring *r;
	int rc;

	*fd = -1;
	if (gi < 0)
		return -ENOENT;
	g = &gp->g[gi];
	if (!g->cuda) {
		*fd = ring_fd(gpuplan_ring(gp, gi));
		return 0;
	}
	if ((rc = gpuplan_add_ring(gp, g, false, &r)) < 0) {
		log_error(GPUPLAN_MOD, "GPU %d: cannot create its host ring "
		          "err=%s", gpu, strerror(-rc));
		return rc;
	}
	if (!g->logged_host)
		log_warn(GPUPLAN_MOD, "GPU %d: CUDA ring unavailable (%s): host "
		         "ring gpu=%d", gpu, why ? why : "unknown", gpu);
	g->logged_host = true;
	*fd = ring_fd(r);
	return 0;
}
