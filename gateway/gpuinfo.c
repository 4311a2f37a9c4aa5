/*
 * NVML figures for the HTTP API, off the loop thread: one thread, one
 * gpu_nvml session, a refresh every period into two cached JSON objects
 * (info, stats) behind a mutex. NVML absent: the thread ends, answers {}.
 */
#include "gpuinfo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu.h"
#include "log.h"

struct gpuinfo {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	unsigned refresh_ms;
	char *nvml_path;
	json_t *info, *stats; /* latest, owned; NULL before the first */
};

static void
gpuinfo_refresh(gpuinfo *gi, gpu_nvml *nv)
{
	json_t *info = json_object(), *stats = json_object();

	if (!info || !stats || gpu_nvml_info_json(nv, info, false) < 0 ||
	    gpu_nvml_info_json(nv, stats, true) < 0) {
		json_decref(info);
		json_decref(stats);
		return;
	}
	pthread_mutex_lock(&gi->lock);
	json_decref(gi->info);
	json_decref(gi->stats);
	gi->info = info;
	gi->stats = stats;
	pthread_mutex_unlock(&gi->lock);
}

static void *
gpuinfo_main(void *arg)
{
	gpuinfo *gi = arg;
	gpu_nvml *nv = NULL;
	struct timespec at;
	int rc;

	rc = gpu_nvml_create(&nv, gi->nvml_path);
	if (rc < 0) {
		log_info("gpu", "NVML not available: /hardware/info and "
		         "/hardware/stats answer {} err=%s", strerror(-rc));
		return NULL;
	}
	pthread_mutex_lock(&gi->lock);
	while (!gi->stop) {
		pthread_mutex_unlock(&gi->lock);
		gpuinfo_refresh(gi, nv);
		pthread_mutex_lock(&gi->lock);
		clock_gettime(CLOCK_MONOTONIC, &at);
		at.tv_sec += gi->refresh_ms / 1000;
		at.tv_nsec += (long)(gi->refresh_ms % 1000) * 1000000L;
		if (at.tv_nsec >= 1000000000L) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000L;
		}
		while (!gi->stop &&
		       pthread_cond_timedwait(&gi->cond, &gi->lock, &at) == 0)
			;
	}
	pthread_mutex_unlock(&gi->lock);
	gpu_nvml_destroy(&nv);
	return NULL;
}

int
gpuinfo_create(gpuinfo **out, const char *nvml_path, unsigned refresh_ms)
{
	pthread_condattr_t ca;
	gpuinfo *gi;
	int rc;

	*out = NULL;
	gi = calloc(1, sizeof(*gi));
	if (!gi)
		return -ENOMEM;
	gi->refresh_ms = refresh_ms ? refresh_ms : 1000;
	if (nvml_path && !(gi->nvml_path = strdup(nvml_path))) {
		free(gi);
		return -ENOMEM;
	}
	pthread_mutex_init(&gi->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&gi->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&gi->thread, NULL, gpuinfo_main, gi);
	if (rc != 0) {
		gi->started = false;
		gpuinfo_destroy(&gi);
		return -rc;
	}
	gi->started = true;
	*out = gi;
	return 0;
}

int
gpuinfo_fill(gpuinfo *gi, bool stats, json_t *gpus)
{
	int rc = 0;

	json_t *copy = NULL;

	if (!gi || !json_is_object(gpus))
		return -EINVAL;
	/* A deep copy: no JSON value is shared with the refresh thread. */
	pthread_mutex_lock(&gi->lock);
	if (stats ? gi->stats : gi->info) {
		copy = json_deep_copy(stats ? gi->stats : gi->info);
		if (!copy)
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&gi->lock);
	if (copy && json_object_update(gpus, copy) != 0)
		rc = -ENOMEM;
	json_decref(copy);
	return rc;
}

void
gpuinfo_destroy(gpuinfo **p)
{
	gpuinfo *gi = p ? *p : NULL;

	if (!gi)
		return;
	if (gi->started) {
		pthread_mutex_lock(&gi->lock);
		gi->stop = true;
		pthread_cond_signal(&gi->cond);
		pthread_mutex_unlock(&gi->lock);
		pthread_join(gi->thread, NULL);
	}
	pthread_cond_destroy(&gi->cond);
	pthread_mutex_destroy(&gi->lock);
	json_decref(gi->info);
	json_decref(gi->stats);
	free(gi->nvml_path);
	free(gi);
	*p = NULL;
}
