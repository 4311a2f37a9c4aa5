/*
 * GPU discovery and placement (--gpus, why a GPU is refused: no device, MIG,
 * no CUDA IPC), NVML figures for /hardware/info and /stats (dlopen'ed, so
 * binaries run without it), frame copies into device slots, NVDEC/NVENC
 * probe, thin CUDA runtime helpers (gpu_cuda.c; -ENOTSUP stubs without
 * CUDA). No global state; the CUDA ring itself is common/ring_cuda.c.
 */
#ifndef CT_GPU_H
#define CT_GPU_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "ring.h"

#define GPU_MAX 64          /* GPUs one gateway handles (CONFIG_MAX_GPUS) */
#define GPU_UUID_LEN 96     /* "GPU-xxxxxxxx-..." or "MIG-..." + NUL */
#define GPU_NAME_LEN 96
#define GPU_REASON_LEN 160
#define GPU_NVML_LIB "libnvidia-ml.so.1"
#define GPU_PROBE_BYTE 0x5a /* pattern of the IPC probe */

/* What one GPU is and whether the CUDA ring can use it. */
struct gpu_device {
	int ordinal;               /* CUDA ordinal as this process sees it */
	char uuid[GPU_UUID_LEN];   /* "GPU-..." (NVML's form), "" if unknown */
	uint8_t uuid_bytes[16];    /* cudaDeviceProp.uuid */
	char name[GPU_NAME_LEN];
	uint64_t memory_total;     /* bytes */
	uint64_t memory_free;      /* bytes, at discovery */
	int major, minor;          /* compute capability */
	bool mig;                  /* MIG mode on (NVML); CUDA IPC does not work */
	bool usable;               /* the CUDA ring may live here */
	char reason[GPU_REASON_LEN]; /* why not usable ("" when usable) */
};

/* --gpus, as the gateway's config parsed it (mirrors enum config_gpus). */
enum gpu_mode {
	GPU_MODE_AUTO = 0, /* every usable GPU, else the host ring */
	GPU_MODE_NONE,     /* host ring only */
	GPU_MODE_ALL,      /* every GPU; an error if one is not usable */
	GPU_MODE_LIST,     /* the ordinals listed; an error if one is not usable */
};

struct gpu_request {
	enum gpu_mode mode;
	const int *list; /* GPU_MODE_LIST: CUDA ordinals */
	int n_list;
};

/* Where the rings live: n == 0 means one host ring. */
struct gpu_plan {
	int n;                       /* GPUs to use, 0..GPU_MAX */
	int gpu[GPU_MAX];            /* their CUDA ordinals */
	char reason[GPU_REASON_LEN]; /* n == 0: why the host ring ("" if none) */
};

/* ---- placement (pure) ---------------------------------------------------- */

/*
 * Decides which GPUs to use from the discovered devices and the request.
 * auto: every usable device; none usable (or none at all) gives the host ring
 * with the reason of the first refused device (or "no CUDA device"). none:
 * host ring, reason "--gpus none". all / LIST: every named device must exist
 * and be usable. Returns 0, or -ENODEV (all/LIST cannot be met; out->reason
 * says why), -EINVAL (bad request). Pure; any thread.
 */
int gpu_plan_make(const struct gpu_device *devs, int n_devs,
                  const struct gpu_request *req, struct gpu_plan *out);

/*
 * Worker w's GPU when each GPU of the plan gets workers_per_gpu workers in
 * order (workers 0..k-1 on plan->gpu[0], then the next GPU...). Returns the
 * CUDA ordinal, or -1 (host ring: plan->n == 0). Pure.
 */
int gpu_plan_worker_gpu(const struct gpu_plan *plan, int workers_per_gpu,
                        int w);

/*
 * Index (into load[]) of the least loaded of n GPUs: fewest streams, ties to
 * the lowest index. load[i] = streams on GPU i. Returns -1 when n <= 0. Pure.
 */
int gpu_least_loaded(const int *load, int n);

/*
 * Formats a 16-byte CUDA UUID as NVML prints it:
 * "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". cap >= 41. Pure.
 */
void gpu_uuid_format(const uint8_t uuid[16], char *out, size_t cap);

/* ---- discovery ------------------------------------------------------------ */

/*
 * Names a reason CUDA IPC cannot work in this environment without touching a
 * GPU: WSL2 (osrelease mentions microsoft), gVisor (its /proc/version), or
 * NULL when nothing is known against it. Reads /proc; any thread.
 */
const char *gpu_env_blocks_ipc(void);

/*
 * Fills devs[0..*n) with every CUDA device: properties from the runtime, MIG
 * mode from NVML (when loadable, matched by UUID), and usable/reason. With
 * probe_ipc, each otherwise usable device is checked by gpu_probe_ipc().
 * Without CUDA (build or driver), *n = 0 and *reason says why. Returns 0
 * (also when there is no GPU). Blocks (CUDA init, ~0.1-1 s; probes ~1 s per
 * GPU). Call it in the gateway before any thread starts using CUDA and before
 * the first nng call (the IPC probe forks).
 */
int gpu_discover(struct gpu_device *devs, int cap, int *n, bool probe_ipc,
                 char *reason, size_t reason_cap);

/*
 * Checks that CUDA IPC works between two processes on device `ordinal`: two
 * forked children (neither inherits a CUDA context: call before this process
 * initialises CUDA), one allocates and exports 2 MiB with a pattern, the
 * other sets the device, opens the handle and reads the pattern back.
 * Returns 0, -ENOTSUP (not a CUDA build), -ENODEV, -ETIMEDOUT (10 s) or -EIO
 * with the failing step in why. Blocks.
 */
int gpu_probe_ipc(int ordinal, char *why, size_t why_cap);

/* ---- NVML ------------------------------------------------------------------ */

typedef struct gpu_nvml gpu_nvml;

/* NVML's own return values that matter here. */
#define GPU_NVML_SUCCESS 0
#define GPU_NVML_NOT_SUPPORTED 3

struct gpu_nvml_memory { /* nvmlMemory_t */
	unsigned long long total, free, used;
};
struct gpu_nvml_util { /* nvmlUtilization_t, percent */
	unsigned int gpu, memory;
};

/*
 * The NVML entry points used, with NVML's types (nvmlDevice_t is a pointer,
 * nvmlReturn_t an int). gpu_nvml_create fills it with dlsym; tests pass their
 * own. Every member is required.
 */
struct gpu_nvml_fns {
	int (*init)(void);     /* nvmlInit_v2 */
	int (*shutdown)(void); /* nvmlShutdown */
	int (*device_count)(unsigned int *n);                /* _v2 */
	int (*device_handle)(unsigned int i, void **dev);    /* ByIndex_v2 */
	int (*device_name)(void *dev, char *name, unsigned int len);
	int (*device_uuid)(void *dev, char *uuid, unsigned int len);
	int (*device_memory)(void *dev, struct gpu_nvml_memory *m);
	int (*device_cc)(void *dev, int *major, int *minor);
	int (*device_mig)(void *dev, unsigned int *cur, unsigned int *pending);
	int (*device_util)(void *dev, struct gpu_nvml_util *u);
};

/* One device as NVML sees it. */
struct gpu_nvml_info {
	char uuid[GPU_UUID_LEN];
	char name[GPU_NAME_LEN];
	uint64_t memory_total, memory_free; /* bytes */
	int major, minor;                   /* -1 when NVML does not say */
	bool mig;                           /* MIG mode currently enabled */
	int util_compute, util_memory;      /* percent; -1 when not supported */
};

/*
 * Loads NVML (path NULL: GPU_NVML_LIB) with dlopen and calls nvmlInit.
 * Returns 0, -ENOENT (library absent), -ENOSYS (a symbol missing), -EIO
 * (nvmlInit failed: no driver). Blocks (driver init); any thread.
 */
int gpu_nvml_create(gpu_nvml **out, const char *path);

/* Same over a given table (tests); fns is copied. Calls fns->init. */
int gpu_nvml_create_from(gpu_nvml **out, const struct gpu_nvml_fns *fns);

/* nvmlShutdown, dlclose. NULL-safe; sets *p = NULL. */
void gpu_nvml_destroy(gpu_nvml **p);

/* Device count. Returns 0 or -EIO. */
int gpu_nvml_count(gpu_nvml *nv, unsigned int *n);

/* Facts of NVML device `index`. Returns 0, -ENODEV (bad index) or -EIO. */
int gpu_nvml_device(gpu_nvml *nv, unsigned int index,
                    struct gpu_nvml_info *out);

/*
 * Sets gpus["<index>"] for every NVML device (PROTOCOL.md 2.8): stats false:
 * {id, name, memory_total, memory_free, major, minor}; stats true:
 * {id, name, memory_total, memory_free, utilization_compute,
 * utilization_memory}. A device NVML cannot read is left out. Returns 0,
 * -EINVAL (gpus not an object) or -ENOMEM.
 */
int gpu_nvml_info_json(gpu_nvml *nv, json_t *gpus, bool stats);

/*
 * gpu_nvml_create + gpu_nvml_info_json + destroy: the api gpu_info hook.
 * Without NVML, gpus stays empty and it returns 0. Blocks (NVML init: run it
 * off the event loop thread or cache a gpu_nvml instead).
 */
int gpu_info_json(json_t *gpus, bool stats);

/* ---- frames in device slots ------------------------------------------------ */

/*
 * Enqueues on `stream` the copy of every plane of a frame laid out as *f
 * (ring_frame_layout) between host planes host[p] (rows of host_stride[p]
 * bytes: pinned staging for a truly asynchronous copy) and the device slot
 * at `slot` (ring_slot_ptr of a CUDA ring). Does not wait: call
 * gpu_cuda_stream_sync(stream) (or ring_sync TO_PEER) before the descriptor
 * is sent, or before the host planes are read after a download. Returns 0,
 * -EINVAL (a host stride shorter than a row), -ENOTSUP (no CUDA), -EIO.
 */
int gpu_frame_upload(const struct ring_frame *f, uint8_t *slot,
                     uint8_t *const host[4], const uint32_t host_stride[4],
                     void *stream);
int gpu_frame_download(const struct ring_frame *f, const uint8_t *slot,
                       uint8_t *const host[4], const uint32_t host_stride[4],
                       void *stream);

/*
 * Same for device planes (an NVDEC AVFrame of AV_PIX_FMT_CUDA: data[p] and
 * linesize[p]) into the slot, device to device, on `stream`. Does not wait.
 */
int gpu_frame_from_device(const struct ring_frame *f, uint8_t *slot,
                          uint8_t *const src[4], const uint32_t src_stride[4],
                          void *stream);

/* ---- NVDEC / NVENC through libav* (run-time detection) ---------------------- */

/* What FFmpeg's CUDA paths can do on one GPU. */
struct gpu_codecs {
	bool cuda_device; /* av_hwdevice_ctx_create(CUDA, ordinal) worked */
	bool nvdec_h264;  /* + the h264 decoder offers a CUDA hw config */
	bool nvenc_h264;  /* h264_nvenc opened an encode session (H100: no) */
	char reason[GPU_REASON_LEN]; /* what is missing, "" when all there */
};

/*
 * Probes FFmpeg's CUDA hwaccel on `ordinal`: creates a CUDA hw device, looks
 * for the decoder's CUDA config, and opens (then closes) a 256x256 h264_nvenc
 * session. Every field false without a GPU, driver or FFmpeg support; never
 * fails otherwise. Returns 0 or -EINVAL. Blocks (~0.2-1 s: CUDA context).
 * Initialises CUDA in this process: call after gpu_discover().
 */
int gpu_codec_probe(int ordinal, struct gpu_codecs *out);

/* ---- CUDA runtime helpers (gpu_cuda.c) ------------------------------------ */

/* Copy directions of gpu_cuda_copy2d. */
enum gpu_copy {
	GPU_COPY_H2D = 0,
	GPU_COPY_D2H = 1,
	GPU_COPY_D2D = 2,
};

#if CT_CUDA
/*
 * Defined in ring_cuda.c and read by gpu_cuda.c, so that linking any gpu_*
 * CUDA helper also links the CUDA ring backend: ring.h declares
 * ring_cuda_ops weak, and a weak reference alone never pulls ring_cuda.o out
 * of libctcommon.a. Remove once ring.h declares it strong.
 */
extern const int ring_cuda_link_anchor;

/* Number of CUDA devices. 0 / -ENODEV (none or no driver) / -EIO. */
int gpu_cuda_device_count(int *n);

/* Properties of `ordinal` into out (ordinal, uuid, name, memory, cc). Sets
 * the calling thread's device. Returns 0, -ENODEV, -EIO. */
int gpu_cuda_device_props(int ordinal, struct gpu_device *out);

/* Ordinal of the visible device with this 16-byte UUID. 0 or -ENODEV. */
int gpu_cuda_find_uuid(const uint8_t uuid[16], int *ordinal);

/* cudaSetDevice for the calling thread. 0, -ENODEV, -EIO. */
int gpu_cuda_set_device(int ordinal);

/* A non-blocking CUDA stream on `ordinal` (also made current for this
 * thread). Returns 0, -ENODEV, -ENOMEM, -EIO. Thread: any; one owner. */
int gpu_cuda_stream_create(int ordinal, void **stream);

/* cudaStreamDestroy. NULL-safe; sets *stream = NULL. */
void gpu_cuda_stream_destroy(void **stream);

/* Waits until everything enqueued on stream is done. 0 or -EIO. Blocks. */
int gpu_cuda_stream_sync(void *stream);

/* Pinned (page-locked) host memory for staging. 0, -ENOMEM, -ENODEV. */
int gpu_cuda_host_alloc(void **p, size_t bytes);

/* cudaFreeHost. NULL-safe; sets *p = NULL. */
void gpu_cuda_host_free(void **p);

/* cudaMalloc on the calling thread's device / cudaFree (NULL-safe, sets
 * *p = NULL). 0, -ENOMEM, -ENODEV. For benchmarks and tests; rings use
 * ring_create. */
int gpu_cuda_malloc(void **p, size_t bytes);
void gpu_cuda_free(void **p);

/* Free and total memory of the calling thread's device, bytes. 0 or -errno. */
int gpu_cuda_mem_info(uint64_t *free_b, uint64_t *total_b);

/* A cudaError_t as a negative errno (-ENODEV, -ENOMEM, -ENOTSUP, -EINVAL,
   else -EIO; 0 for cudaSuccess): the one mapping, for every CUDA file. */
int gpu_cuda_errno(int cuda_error);

/*
 * Enqueues a pitched copy (cudaMemcpy2DAsync) of rows x width_bytes on
 * stream; does not wait (gpu_cuda_stream_sync). Returns 0, -EINVAL, -EIO.
 */
int gpu_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch,
                    size_t width_bytes, size_t rows, enum gpu_copy kind,
                    void *stream);

/*
 * The steps of gpu_probe_ipc, run in its children: export allocates 2 MiB
 * on `ordinal`, fills it with GPU_PROBE_BYTE and exports it; open sets the
 * device, opens the handle, reads the pattern back and closes it; free
 * releases the export. Return 0 or -errno with the CUDA call and error name
 * in why.
 */
int gpu_cuda_probe_export(int ordinal, uint8_t handle[64], void **dev,
                          char *why, size_t cap);
int gpu_cuda_probe_open(const uint8_t handle[64], int ordinal, char *why,
                        size_t cap);
void gpu_cuda_probe_free(void *dev);
#else
static inline int gpu_cuda_device_count(int *n) { *n = 0; return -ENOTSUP; }
static inline int gpu_cuda_device_props(int o, struct gpu_device *d)
{ (void)o; (void)d; return -ENOTSUP; }
static inline int gpu_cuda_find_uuid(const uint8_t u[16], int *o)
{ (void)u; *o = -1; return -ENOTSUP; }
static inline int gpu_cuda_set_device(int o) { (void)o; return -ENOTSUP; }
static inline int gpu_cuda_stream_create(int o, void **s)
{ (void)o; *s = NULL; return -ENOTSUP; }
static inline void gpu_cuda_stream_destroy(void **s) { if (s) *s = NULL; }
static inline int gpu_cuda_stream_sync(void *s) { (void)s; return -ENOTSUP; }
static inline int gpu_cuda_host_alloc(void **p, size_t b)
{ (void)b; *p = NULL; return -ENOTSUP; }
static inline void gpu_cuda_host_free(void **p) { if (p) *p = NULL; }
static inline int gpu_cuda_malloc(void **p, size_t b)
{ (void)b; *p = NULL; return -ENOTSUP; }
static inline void gpu_cuda_free(void **p) { if (p) *p = NULL; }
static inline int gpu_cuda_mem_info(uint64_t *f, uint64_t *t)
{ *f = *t = 0; return -ENOTSUP; }
static inline int gpu_cuda_copy2d(void *d, size_t dp, const void *s, size_t sp,
                                  size_t w, size_t r, enum gpu_copy k, void *st)
{ (void)d; (void)dp; (void)s; (void)sp; (void)w; (void)r; (void)k; (void)st;
  return -ENOTSUP; }
static inline int gpu_cuda_probe_export(int o, uint8_t h[64], void **d,
                                        char *why, size_t cap)
{ (void)o; (void)h; (void)why; (void)cap; *d = NULL; return -ENOTSUP; }
static inline int gpu_cuda_probe_open(const uint8_t h[64], int o, char *why,
                                      size_t cap)
{ (void)h; (void)o; (void)why; (void)cap; return -ENOTSUP; }
static inline void gpu_cuda_probe_free(void *d) { (void)d; }
#endif

#endif
