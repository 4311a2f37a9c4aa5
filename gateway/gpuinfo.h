/*
 * /hardware/info and /hardware/stats without blocking the loop: a thread
 * keeps one NVML session (gpu_nvml, dlopen'ed) and refreshes both JSON
 * objects every refresh period; requests copy the latest. Without NVML the
 * thread ends at once and the answers stay {}. Owns the thread and NVML.
 */
#ifndef CT_GPUINFO_H
#define CT_GPUINFO_H

#include <stdbool.h>

#include <jansson.h>

typedef struct gpuinfo gpuinfo;

/*
 * Starts the refresh thread (refresh_ms 0: 1000). nvml_path NULL: the
 * system's NVML. Returns 0, -ENOMEM or -errno of pthread_create. Does not
 * block (NVML is initialised on the thread). Call after GPU discovery.
 */
int gpuinfo_create(gpuinfo **out, const char *nvml_path, unsigned refresh_ms);

/*
 * Sets into gpus (an object) the latest info (stats false) or stats
 * object, keyed by NVML index (PROTOCOL.md 2.8); nothing before the first
 * refresh or without NVML. Returns 0, -EINVAL, -ENOMEM. Never blocks long
 * (a mutex held for a copy); any thread.
 */
int gpuinfo_fill(gpuinfo *gi, bool stats, json_t *gpus);

/* Stops (joins) the thread, closes NVML. NULL-safe; sets *p = NULL. */
void gpuinfo_destroy(gpuinfo **p);

#endif
