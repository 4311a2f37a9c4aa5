/*
 * CUDA backend of the frame ring (CUDA=1 only): one cudaMalloc region per GPU
 * (2 MiB multiple), exported once with cudaIpcGetMemHandle into backend_data;
 * the header page travels as a sealed memfd, so ring_attach() is unchanged.
 * A worker opens the handle once per lifetime on the device whose UUID the
 * header names and closes it at detach. Slot state is ring.c's.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "clock.h"
#include "gpu.h"
#include "log.h"

#define RING_CUDA_MAGIC 0x41445543u /* "CUDA" little endian */
#define RING_CUDA_VERSION 1u
#define RING_CUDA_ALIGN (2ull << 20) /* allocation granularity */
#define RING_CUDA_SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

/* What backend_data holds (fixed width, no pointers). */
struct ring_cuda_data {
	uint32_t magic;         /* RING_CUDA_MAGIC */
	uint32_t version;       /* RING_CUDA_VERSION */
	uint8_t uuid[16];       /* device (cudaDeviceProp.uuid) */
	uint64_t region_bytes;  /* the allocation, RING_CUDA_ALIGN multiple */
	int32_t gateway_device; /* ordinal in the gateway (for logs only) */
	uint32_t reserved;
	uint8_t handle[64]; /* cudaIpcMemHandle_t */
};
_Static_assert(sizeof(struct ring_cuda_data) == 104, "backend data size");
_Static_assert(sizeof(struct ring_cuda_data) <= RING_BACKEND_DATA,
               "fits the header's backend_data");
_Static_assert(sizeof(cudaIpcMemHandle_t) == 64, "IPC handle size");

struct ring_cuda {
	int fd;        /* gateway: the header memfd; else -1 */
	int device;    /* ordinal in this process */
	uint8_t *dev;  /* region base (device pointer) */
	bool allocated; /* gateway: dev is ours to cudaFree */
	bool opened;    /* worker: dev is an open IPC mapping */
	uint64_t region_bytes;
	uint64_t slots_offset;
	uint64_t slot_stride;
};

const int ring_cuda_link_anchor = 1; /* see gpu.h */

static int
ring_cuda_err(cudaError_t e)
{
	return gpu_cuda_errno((int)e);
}

/* One log line for a failing CUDA call, then the errno. */
static int
ring_cuda_fail(const char *call, int device, cudaError_t e)
{
	log_error("ring", "cuda ring %s failed device=%d err=%s", call, device,
	          cudaGetErrorName(e));
	return ring_cuda_err(e);
}

/* The header page as a sealed one-page memfd a worker can pread. */
static int
ring_cuda_header_fd(const struct ring_header *hdr, int *out)
{
	int fd, rv;

	fd = memfd_create("ctrickle-ring-cuda", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, RING_HEADER_BYTES) < 0) {
		rv = -errno;
		goto err_close_fd;
	}
	if (pwrite(fd, hdr, sizeof(*hdr), 0) != (ssize_t)sizeof(*hdr)) {
		rv = -EIO;
		goto err_close_fd;
	}
	if (fcntl(fd, F_ADD_SEALS, RING_CUDA_SEALS | F_SEAL_WRITE) < 0) {
		rv = -errno;
		goto err_close_fd;
	}
	*out = fd;
	return 0;

err_close_fd:
	close(fd);
	return rv;
}

static int
ring_cuda_create(void *priv, struct ring_header *hdr, int32_t device,
                 int *fd_out)
{
	struct ring_cuda *c = priv;
	struct ring_cuda_data data;
	struct cudaDeviceProp prop;
	cudaIpcMemHandle_t h;
	cudaError_t e;
	void *p = NULL;
	int rv;

	c->fd = -1;
	c->device = device;
	if (device < 0)
		return -EINVAL;
	hdr->slots_offset = 0;
	hdr->total_bytes = (uint64_t)hdr->slot_count * hdr->slot_stride;
	c->slot_stride = hdr->slot_stride;
	c->region_bytes = (hdr->total_bytes + RING_CUDA_ALIGN - 1) &
	                  ~(RING_CUDA_ALIGN - 1);
	e = cudaSetDevice(device);
	if (e != cudaSuccess)
		return ring_cuda_fail("cudaSetDevice", device, e);
	e = cudaGetDeviceProperties(&prop, device);
	if (e != cudaSuccess)
		return ring_cuda_fail("cudaGetDeviceProperties", device, e);
	e = cudaMalloc(&p, c->region_bytes);
	if (e != cudaSuccess)
		return ring_cuda_fail("cudaMalloc", device, e);
	c->dev = p;
	c->allocated = true;
	if ((uintptr_t)p % RING_CUDA_ALIGN)
		log_warn("ring", "cuda ring not 2 MiB aligned device=%d",
		         device);
	e = cudaMemset(p, 0, c->region_bytes);
	if (e == cudaSuccess)
		e = cudaDeviceSynchronize();
	if (e != cudaSuccess) {
		rv = ring_cuda_fail("cudaMemset", device, e);
		goto err_free;
	}
	e = cudaIpcGetMemHandle(&h, p);
	if (e != cudaSuccess) {
		rv = ring_cuda_fail("cudaIpcGetMemHandle", device, e);
		goto err_free;
	}
	memset(&data, 0, sizeof(data));
	data.magic = RING_CUDA_MAGIC;
	data.version = RING_CUDA_VERSION;
	memcpy(data.uuid, prop.uuid.bytes, sizeof(data.uuid));
	data.region_bytes = c->region_bytes;
	data.gateway_device = device;
	memcpy(data.handle, &h, sizeof(h));
	memcpy(hdr->backend_data, &data, sizeof(data));
	rv = ring_cuda_header_fd(hdr, &c->fd);
	if (rv < 0)
		goto err_free;
	*fd_out = c->fd;
	log_info("ring", "cuda ring exported device=%d bytes=%llu", device,
	         (unsigned long long)c->region_bytes);
	return 0;

err_free:
	cudaFree(p);
	c->dev = NULL;
	c->allocated = false;
	return rv;
}

static int
ring_cuda_attach(void *priv, int fd, const struct ring_header *hdr)
{
	struct ring_cuda *c = priv;
	struct ring_cuda_data data;
	cudaIpcMemHandle_t h;
	struct stat st;
	int64_t t0;
	cudaError_t e;
	void *p = NULL;
	int seals, rv;

	c->fd = -1;
	c->device = -1;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size != RING_HEADER_BYTES)
		return -EINVAL;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & RING_CUDA_SEALS) != RING_CUDA_SEALS)
		return -EINVAL;
	memcpy(&data, hdr->backend_data, sizeof(data));
	if (data.magic != RING_CUDA_MAGIC || data.version != RING_CUDA_VERSION)
		return -EBADMSG;
	if (hdr->slots_offset != 0 || data.region_bytes % RING_CUDA_ALIGN ||
	    data.region_bytes < hdr->total_bytes)
		return -EINVAL;
	rv = gpu_cuda_find_uuid(data.uuid, &c->device);
	if (rv < 0) {
		log_error("ring", "cuda ring device not visible gateway_device=%d",
		          data.gateway_device);
		return rv;
	}
	/* The device first: otherwise the open makes a second context. */
	e = cudaSetDevice(c->device);
	if (e != cudaSuccess)
		return ring_cuda_fail("cudaSetDevice", c->device, e);
	memcpy(&h, data.handle, sizeof(h));
	t0 = clock_now_ns();
	e = cudaIpcOpenMemHandle(&p, h, cudaIpcMemLazyEnablePeerAccess);
	if (e != cudaSuccess)
		return ring_cuda_fail("cudaIpcOpenMemHandle", c->device, e);
	c->dev = p;
	c->opened = true;
	c->region_bytes = data.region_bytes;
	c->slots_offset = hdr->slots_offset;
	c->slot_stride = hdr->slot_stride;
	log_info("ring", "cuda ring opened device=%d bytes=%llu open_us=%lld",
	         c->device, (unsigned long long)c->region_bytes,
	         (long long)((clock_now_ns() - t0) / 1000));
	return 0;
}

static void
ring_cuda_detach(void *priv)
{
	struct ring_cuda *c = priv;

	if (c->opened) {
		cudaSetDevice(c->device);
		cudaIpcCloseMemHandle(c->dev);
	}
	c->opened = false;
	c->dev = NULL;
}

static void
ring_cuda_destroy(void *priv)
{
	struct ring_cuda *c = priv;

	/* A zeroed priv (create never ran) has nothing: fd 0 is not ours. */
	if (c->allocated) {
		cudaSetDevice(c->device);
		cudaFree(c->dev);
		if (c->fd >= 0)
			close(c->fd);
	}
	c->allocated = false;
	c->dev = NULL;
	c->fd = -1;
}

static int
ring_cuda_fd(void *priv)
{
	const struct ring_cuda *c = priv;

	return c->allocated ? c->fd : -1;
}

static uint8_t *
ring_cuda_slot_base(void *priv, uint32_t slot)
{
	struct ring_cuda *c = priv;

	return c->dev + c->slots_offset + (uint64_t)slot * c->slot_stride;
}

/*
 * TO_PEER waits for all work of this process on the ring's device (the
 * writer's stream included) before the descriptor leaves; FROM_PEER needs
 * only a fence, since the peer synchronised before sending.
 */
static void
ring_cuda_sync(void *priv, uint32_t slot, enum ring_sync what)
{
	struct ring_cuda *c = priv;
	cudaError_t e;

	if (what == RING_SYNC_TO_PEER) {
		e = cudaSetDevice(c->device);
		if (e == cudaSuccess)
			e = cudaDeviceSynchronize();
		if (e != cudaSuccess)
			log_error("ring", "cuda ring sync failed slot=%u err=%s",
			          slot, cudaGetErrorName(e));
	}
	atomic_thread_fence(memory_order_seq_cst);
}

static const struct ring_ops ring_cuda_table = {
	.name = "cuda",
	.id = RING_BACKEND_CUDA,
	.priv_size = sizeof(struct ring_cuda),
	.create = ring_cuda_create,
	.attach = ring_cuda_attach,
	.detach = ring_cuda_detach,
	.destroy = ring_cuda_destroy,
	.fd = ring_cuda_fd,
	.slot_base = ring_cuda_slot_base,
	.sync = ring_cuda_sync,
};

int
ring_cuda_ops(const struct ring_ops **out)
{
	int n = 0;

	*out = NULL;
	if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0)
		return -ENOTSUP;
	*out = &ring_cuda_table;
	return 0;
}
