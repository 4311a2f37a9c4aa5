/*
 * Host backend of the frame ring: one sealed memfd (header page + slots +
 * guard pages) mapped MAP_SHARED by the gateway and by each worker, guards
 * PROT_NONE in both, slots pre-faulted. Owns the fd and the mappings; the
 * slot state machine is ring.c.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define RING_HOST_SEALS (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL)

struct ring_host {
	int fd; /* gateway: the memfd; worker: -1 (not kept) */
	bool mapped;
	uint8_t *base; /* start of the mapping (the header page) */
	size_t map_bytes;
	uint64_t slots_offset;
	uint64_t slot_bytes;
	uint64_t slot_stride;
	uint32_t slot_count;
};

/*
 * Faults in every page of [p, p + len) writable so no frame pays a page
 * fault: MADV_POPULATE_WRITE (Linux 5.14), else one write per page (the
 * memory is zero; writing zero keeps it so). Asks for transparent huge pages
 * first; the kernel grants them only when shmem THP is "advise" or "always"
 * (/sys/kernel/mm/transparent_hugepage/shmem_enabled), else it is a no-op.
 */
static void
ring_host_prefault(uint8_t *p, size_t len)
{
	madvise(p, len, MADV_HUGEPAGE);
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return;
	for (size_t off = 0; off < len; off += RING_PAGE_BYTES)
		((volatile uint8_t *)p)[off] = p[off];
}

/* Maps all of fd read/write; ring_host_protect() then narrows it. */
static int
ring_host_map(struct ring_host *h, int fd, const struct ring_header *hdr)
{
	uint8_t *base;

	h->slots_offset = hdr->slots_offset;
	h->slot_bytes = hdr->slot_bytes;
	h->slot_stride = hdr->slot_stride;
	h->slot_count = hdr->slot_count;
	h->map_bytes = (size_t)hdr->total_bytes;
	base =
	    mmap(NULL, h->map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -errno;
	h->base = base;
	h->mapped = true;
	return 0;
}

/*
 * Header page read-only, every guard page PROT_NONE (a write past a slot is a
 * SIGSEGV in the writer, not a corrupt neighbour), every slot faulted in.
 */
static int
ring_host_protect(struct ring_host *h)
{
	if (mprotect(h->base, RING_HEADER_BYTES, PROT_READ) < 0)
		return -errno;
	for (uint32_t i = 0; i < h->slot_count; i++) {
		uint8_t *slot =
		    h->base + h->slots_offset + (uint64_t)i * h->slot_stride;

		if (mprotect(slot + h->slot_bytes,
		             h->slot_stride - h->slot_bytes, PROT_NONE) < 0)
			return -errno;
		ring_host_prefault(slot, h->slot_bytes);
	}
	return 0;
}

static void
ring_host_unmap(struct ring_host *h)
{
	if (h->mapped)
		munmap(h->base, h->map_bytes);
	h->mapped = false;
	h->base = NULL;
}

static int
ring_host_create(void *priv, struct ring_header *hdr, int32_t device,
                 int *fd_out)
{
	struct ring_host *h = priv;
	int fd, rv;

	h->fd = -1;
	hdr->slots_offset = RING_HEADER_BYTES;
	hdr->total_bytes =
	    hdr->slots_offset + (uint64_t)hdr->slot_count * hdr->slot_stride;
	fd = memfd_create("ctrickle-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)hdr->total_bytes) < 0) {
		rv = -errno;
		goto err_close_fd;
	}
	if (pwrite(fd, hdr, sizeof(*hdr), 0) != (ssize_t)sizeof(*hdr)) {
		rv = -EIO;
		goto err_close_fd;
	}
	if (fcntl(fd, F_ADD_SEALS, RING_HOST_SEALS) < 0) {
		rv = -errno;
		goto err_close_fd;
	}
	rv = ring_host_map(h, fd, hdr);
	if (rv < 0)
		goto err_close_fd;
	rv = ring_host_protect(h);
	if (rv < 0)
		goto err_unmap;
	h->fd = fd;
	*fd_out = fd;
	return 0;

err_unmap:
	ring_host_unmap(h);
err_close_fd:
	close(fd);
	return rv;
}

static int
ring_host_attach(void *priv, int fd, const struct ring_header *hdr)
{
	struct ring_host *h = priv;
	struct stat st;
	int seals, rv;

	h->fd = -1;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != hdr->total_bytes ||
	    hdr->slots_offset != RING_HEADER_BYTES)
		return -EINVAL;
	/* Unsealed memory could shrink under us: a SIGBUS on a slot read. */
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -errno;
	if ((seals & (F_SEAL_GROW | F_SEAL_SHRINK)) !=
	    (F_SEAL_GROW | F_SEAL_SHRINK))
		return -EINVAL;
	rv = ring_host_map(h, fd, hdr);
	if (rv < 0)
		return rv;
	if (memcmp(h->base, hdr, sizeof(*hdr)) != 0) {
		rv = -EINVAL;
		goto err_unmap;
	}
	rv = ring_host_protect(h);
	if (rv < 0)
		goto err_unmap;
	return 0;

err_unmap:
	ring_host_unmap(h);
	return rv;
}

static void
ring_host_detach(void *priv)
{
	ring_host_unmap(priv);
}

static void
ring_host_destroy(void *priv)
{
	struct ring_host *h = priv;

	ring_host_unmap(h);
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

static int
ring_host_fd(void *priv)
{
	return ((struct ring_host *)priv)->fd;
}

static uint8_t *
ring_host_slot_base(void *priv, uint32_t slot)
{
	struct ring_host *h = priv;

	return h->base + h->slots_offset + (uint64_t)slot * h->slot_stride;
}

/*
 * The descriptor travels through a socket (a syscall on both sides), which
 * orders memory in practice; the fences make the C11 contract explicit.
 */
static void
ring_host_sync(void *priv, uint32_t slot, enum ring_sync what)
{
	if (what == RING_SYNC_TO_PEER)
		atomic_thread_fence(memory_order_release);
	else
		atomic_thread_fence(memory_order_acquire);
}

static const struct ring_ops ring_host_ops_table = {
    .name = "host",
    .id = RING_BACKEND_HOST,
    .priv_size = sizeof(struct ring_host),
    .create = ring_host_create,
    .attach = ring_host_attach,
    .detach = ring_host_detach,
    .destroy = ring_host_destroy,
    .fd = ring_host_fd,
    .slot_base = ring_host_slot_base,
    .sync = ring_host_sync,
};

const struct ring_ops *
ring_host_ops(void)
{
	return &ring_host_ops_table;
}
