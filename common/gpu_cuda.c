/*
 * CUDA runtime helpers of gpu.h (device facts, streams, pinned staging,
 * pitched copies, the two halves of the IPC probe). Compiled only when
 * CUDA=1; the one place outside ring_cuda.c that calls the CUDA runtime and
 * turns cudaError_t into negative errno.
 */
#include "gpu.h"

#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "log.h"

#define GPU_PROBE_BYTES (2u << 20)

_Static_assert(sizeof(cudaIpcMemHandle_t) == 64, "CUDA IPC handle is 64 B");

int
gpu_cuda_errno(int cuda_error)
{
	switch ((cudaError_t)cuda_error) {
	case cudaSuccess:
		return 0;
	case cudaErrorNoDevice:
	case cudaErrorInsufficientDriver:
	case cudaErrorInvalidDevice:
	case cudaErrorDevicesUnavailable:
		return -ENODEV;
	case cudaErrorMemoryAllocation:
		return -ENOMEM;
	case cudaErrorNotSupported:
	case cudaErrorNotPermitted:
		return -ENOTSUP;
	case cudaErrorInvalidValue:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static int
gpu_cuda_err(cudaError_t e)
{
	return gpu_cuda_errno((int)e);
}

/* Fills why with "CALL: cudaErrorName" and returns the errno. */
static int
gpu_cuda_fail(const char *call, cudaError_t e, char *why, size_t cap)
{
	if (why && cap)
		snprintf(why, cap, "%s: %s", call, cudaGetErrorName(e));
	return gpu_cuda_err(e);
}

int
gpu_cuda_device_count(int *n)
{
	cudaError_t e = cudaGetDeviceCount(n);

	/* Always true; the read links ring_cuda.o (gpu.h). */
	if (e == cudaSuccess && !ring_cuda_link_anchor)
		e = cudaErrorUnknown;
	if (e != cudaSuccess) {
		*n = 0;
		log_debug("gpu", "cudaGetDeviceCount failed err=%s",
		          cudaGetErrorName(e));
		return gpu_cuda_err(e);
	}
	return 0;
}

int
gpu_cuda_device_props(int ordinal, struct gpu_device *out)
{
	struct cudaDeviceProp p;
	size_t free_b = 0, total_b = 0;
	cudaError_t e;

	e = cudaGetDeviceProperties(&p, ordinal);
	if (e != cudaSuccess)
		return gpu_cuda_err(e);
	out->ordinal = ordinal;
	snprintf(out->name, sizeof(out->name), "%.*s",
	         (int)sizeof(out->name) - 1, p.name);
	memcpy(out->uuid_bytes, p.uuid.bytes, sizeof(out->uuid_bytes));
	gpu_uuid_format(out->uuid_bytes, out->uuid, sizeof(out->uuid));
	out->major = p.major;
	out->minor = p.minor;
	out->memory_total = p.totalGlobalMem;
	if (cudaSetDevice(ordinal) == cudaSuccess &&
	    cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
		out->memory_free = free_b;
	return 0;
}

int
gpu_cuda_find_uuid(const uint8_t uuid[16], int *ordinal)
{
	int n = 0;

	*ordinal = -1;
	if (gpu_cuda_device_count(&n) < 0)
		return -ENODEV;
	for (int i = 0; i < n; i++) {
		struct cudaDeviceProp p;

		if (cudaGetDeviceProperties(&p, i) == cudaSuccess &&
		    memcmp(p.uuid.bytes, uuid, 16) == 0) {
			*ordinal = i;
			return 0;
		}
	}
	return -ENODEV;
}

int
gpu_cuda_set_device(int ordinal)
{
	return gpu_cuda_err(cudaSetDevice(ordinal));
}

int
gpu_cuda_stream_create(int ordinal, void **stream)
{
	cudaStream_t s = NULL;
	cudaError_t e;

	*stream = NULL;
	e = cudaSetDevice(ordinal);
	if (e == cudaSuccess)
		e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
	if (e != cudaSuccess)
		return gpu_cuda_err(e);
	*stream = s;
	return 0;
}

void
gpu_cuda_stream_destroy(void **stream)
{
	if (!stream || !*stream)
		return;
	cudaStreamDestroy((cudaStream_t)*stream);
	*stream = NULL;
}

int
gpu_cuda_stream_sync(void *stream)
{
	return gpu_cuda_err(cudaStreamSynchronize((cudaStream_t)stream));
}

int
gpu_cuda_host_alloc(void **p, size_t bytes)
{
	cudaError_t e;

	*p = NULL;
	e = cudaHostAlloc(p, bytes, cudaHostAllocDefault);
	if (e != cudaSuccess) {
		*p = NULL;
		return gpu_cuda_err(e);
	}
	return 0;
}

void
gpu_cuda_host_free(void **p)
{
	if (!p || !*p)
		return;
	cudaFreeHost(*p);
	*p = NULL;
}

int
gpu_cuda_malloc(void **p, size_t bytes)
{
	cudaError_t e;

	*p = NULL;
	e = cudaMalloc(p, bytes);
	if (e != cudaSuccess) {
		*p = NULL;
		return gpu_cuda_err(e);
	}
	return 0;
}

void
gpu_cuda_free(void **p)
{
	if (!p || !*p)
		return;
	cudaFree(*p);
	*p = NULL;
}

int
gpu_cuda_mem_info(uint64_t *free_b, uint64_t *total_b)
{
	size_t f = 0, t = 0;
	cudaError_t e = cudaMemGetInfo(&f, &t);

	*free_b = f;
	*total_b = t;
	return gpu_cuda_err(e);
}

int
gpu_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch,
                size_t width_bytes, size_t rows, enum gpu_copy kind,
                void *stream)
{
	enum cudaMemcpyKind k;

	if (!dst || !src || width_bytes > dpitch || width_bytes > spitch)
		return -EINVAL;
	switch (kind) {
	case GPU_COPY_H2D:
		k = cudaMemcpyHostToDevice;
		break;
	case GPU_COPY_D2H:
		k = cudaMemcpyDeviceToHost;
		break;
	case GPU_COPY_D2D:
		k = cudaMemcpyDeviceToDevice;
		break;
	default:
		return -EINVAL;
	}
	return gpu_cuda_err(cudaMemcpy2DAsync(dst, dpitch, src, spitch,
	                                      width_bytes, rows, k,
	                                      (cudaStream_t)stream));
}

int
gpu_cuda_probe_export(int ordinal, uint8_t handle[64], void **dev, char *why,
                      size_t cap)
{
	cudaIpcMemHandle_t h;
	cudaError_t e;
	void *p = NULL;

	*dev = NULL;
	e = cudaSetDevice(ordinal);
	if (e != cudaSuccess)
		return gpu_cuda_fail("cudaSetDevice", e, why, cap);
	e = cudaMalloc(&p, GPU_PROBE_BYTES);
	if (e != cudaSuccess)
		return gpu_cuda_fail("cudaMalloc", e, why, cap);
	e = cudaMemset(p, GPU_PROBE_BYTE, GPU_PROBE_BYTES);
	if (e == cudaSuccess)
		e = cudaDeviceSynchronize();
	if (e != cudaSuccess) {
		cudaFree(p);
		return gpu_cuda_fail("cudaMemset", e, why, cap);
	}
	e = cudaIpcGetMemHandle(&h, p);
	if (e != cudaSuccess) {
		cudaFree(p);
		return gpu_cuda_fail("cudaIpcGetMemHandle", e, why, cap);
	}
	memcpy(handle, &h, sizeof(h));
	*dev = p;
	return 0;
}

int
gpu_cuda_probe_open(const uint8_t handle[64], int ordinal, char *why,
                    size_t cap)
{
	cudaIpcMemHandle_t h;
	uint8_t buf[4096];
	cudaError_t e;
	void *p = NULL;

	memcpy(&h, handle, sizeof(h));
	/* The device first: otherwise the open makes a second context. */
	e = cudaSetDevice(ordinal);
	if (e != cudaSuccess)
		return gpu_cuda_fail("cudaSetDevice", e, why, cap);
	e = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
	if (e != cudaSuccess)
		return gpu_cuda_fail("cudaIpcOpenMemHandle", e, why, cap);
	e = cudaMemcpy(buf, (uint8_t *)p + GPU_PROBE_BYTES - sizeof(buf),
	               sizeof(buf), cudaMemcpyDeviceToHost);
	cudaIpcCloseMemHandle(p);
	if (e != cudaSuccess)
		return gpu_cuda_fail("cudaMemcpy", e, why, cap);
	for (size_t i = 0; i < sizeof(buf); i++) {
		if (buf[i] != GPU_PROBE_BYTE) {
			snprintf(why, cap, "pattern mismatch at %zu", i);
			return -EIO;
		}
	}
	return 0;
}

void
gpu_cuda_probe_free(void *dev)
{
	if (dev)
		cudaFree(dev);
}
