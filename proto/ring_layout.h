/*
 * Shared layout of the frame ring: the header page that gateway and worker
 * both read, and where slot i lives. Offsets only, never pointers; fixed-width
 * fields; a change here is a layout change: bump RING_LAYOUT_VERSION. Owns no
 * state; the slot state machine is common/ring.c (gateway-private memory).
 *
 * Region (host backend: one memfd):
 *   [header page][slot 0][guard][slot 1][guard]...[slot N-1][guard]
 * slot i starts at slots_offset + i * slot_stride; slot_stride = slot_bytes +
 * guard_bytes; every slot and guard is page aligned. Guards are PROT_NONE in
 * every mapping, so a write past a slot faults instead of reaching the next.
 */
#ifndef CT_RING_LAYOUT_H
#define CT_RING_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

/* clang-format off */
#define RING_MAGIC          0x31474e4952544355ull /* "UCTRING1" little endian */
#define RING_LAYOUT_VERSION 1u
#define RING_PAGE_BYTES     4096u         /* slot, guard, header granularity */
#define RING_HEADER_BYTES   4096u         /* the header page */
#define RING_MAX_SLOTS      4096u         /* sanity bound on slot_count */
#define RING_MAX_SLOT_BYTES (1ull << 30)  /* sanity bound on slot_bytes */
#define RING_MAX_DIM        16384u        /* largest frame width or height */
#define RING_BACKEND_DATA   256u          /* backend bytes in the header */
/* clang-format on */

/* ring_header.backend: where the slots live. */
enum ring_backend_id {
	RING_BACKEND_HOST = 1, /* slots follow the header in the same memfd */
	RING_BACKEND_CUDA = 2, /* slots in device memory (handle in header) */
};

/*
 * The header page, written once by the gateway before any worker attaches and
 * never changed after. A worker validates every field before using one.
 */
struct ring_header {
	uint64_t magic;          /* RING_MAGIC */
	uint32_t layout_version; /* RING_LAYOUT_VERSION */
	uint32_t header_bytes;   /* RING_HEADER_BYTES */
	uint32_t page_bytes;     /* RING_PAGE_BYTES */
	uint32_t backend;        /* enum ring_backend_id */
	uint32_t slot_count;     /* number of slots, 1..RING_MAX_SLOTS */
	uint32_t max_width;      /* largest frame the slots were sized for */
	uint32_t max_height;
	uint32_t reserved0;
	uint64_t slot_bytes;   /* usable bytes of one slot, page multiple */
	uint64_t guard_bytes;  /* PROT_NONE bytes after each slot (pages) */
	uint64_t slot_stride;  /* slot_bytes + guard_bytes */
	uint64_t slots_offset; /* offset of slot 0 in the slot memory */
	uint64_t total_bytes;  /* size of the slot memory (host: the memfd) */
	int32_t creator_pid;   /* the gateway that wrote this header */
	uint32_t reserved1;
	uint8_t backend_data[RING_BACKEND_DATA]; /* e.g. a CUDA IPC handle */
	uint8_t pad[RING_HEADER_BYTES - 88 - RING_BACKEND_DATA];
};

/* Pins every field's offset: a layout change must be deliberate. */
#define RING_LAYOUT_AT(f, o)                                                   \
	_Static_assert(offsetof(struct ring_header, f) == (o),                 \
	               "ring_header." #f " moved: bump RING_LAYOUT_VERSION")
RING_LAYOUT_AT(magic, 0);
RING_LAYOUT_AT(layout_version, 8);
RING_LAYOUT_AT(header_bytes, 12);
RING_LAYOUT_AT(page_bytes, 16);
RING_LAYOUT_AT(backend, 20);
RING_LAYOUT_AT(slot_count, 24);
RING_LAYOUT_AT(max_width, 28);
RING_LAYOUT_AT(max_height, 32);
RING_LAYOUT_AT(slot_bytes, 40);
RING_LAYOUT_AT(guard_bytes, 48);
RING_LAYOUT_AT(slot_stride, 56);
RING_LAYOUT_AT(slots_offset, 64);
RING_LAYOUT_AT(total_bytes, 72);
RING_LAYOUT_AT(creator_pid, 80);
RING_LAYOUT_AT(backend_data, 88);
_Static_assert(sizeof(struct ring_header) == RING_HEADER_BYTES,
               "ring header is exactly one page");
_Static_assert(RING_HEADER_BYTES % RING_PAGE_BYTES == 0,
               "the header is whole pages, so slots stay page aligned");

/* Offset of slot i (no bounds check: ring.c checks i < slot_count). */
static inline uint64_t
ring_layout_slot_offset(const struct ring_header *h, uint32_t i)
{
	return h->slots_offset + (uint64_t)i * h->slot_stride;
}

#endif
