/*
 * The frame ring: N page-aligned slots of shared memory, each followed by a
 * PROT_NONE guard page, behind a small backend interface (host memfd today,
 * CUDA later). The gateway creates it and alone owns slot state (free /
 * filled / at worker / done, generation, owner) in its private memory; a
 * worker only attaches an inherited fd and asks for views of slots.
 * Shared layout: proto/ring_layout.h. Transport of descriptors: common/ipc.
 */
#ifndef CT_RING_H
#define CT_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ring_layout.h"

typedef struct ring ring;

/* Defaults of --max-resolution and --ring-slots (slots per worker). */
#define RING_DEFAULT_WIDTH 1920u
#define RING_DEFAULT_HEIGHT 1080u
#define RING_DEFAULT_SLOTS 4u
#define RING_STRIDE_ALIGN 64u /* row stride and plane offset alignment */

struct ring_params {
	uint32_t slot_count; /* all slots of the ring: workers x --ring-slots */
	uint32_t max_width;  /* --max-resolution: sizes every slot */
	uint32_t max_height;
	uint32_t backend; /* enum ring_backend_id; 0 means RING_BACKEND_HOST */
	int32_t device;   /* CUDA ordinal for RING_BACKEND_CUDA, else -1 */
};

/* Gateway-side state of a slot. */
enum ring_slot_state {
	RING_SLOT_FREE = 0,      /* nobody uses it */
	RING_SLOT_FILLED = 1,    /* held by the gateway (input written) */
	RING_SLOT_AT_WORKER = 2, /* named in a descriptor sent to a worker */
	RING_SLOT_DONE = 3,      /* the worker answered; gateway reads it */
};

struct ring_slot_info {
	uint32_t state; /* enum ring_slot_state */
	uint32_t gen;   /* current generation; never 0 */
	int32_t worker; /* worker id while AT_WORKER/DONE, else -1 */
	int32_t pid;    /* worker pid while AT_WORKER/DONE, else 0 */
};

/* ring_reclaim() flags */
#define RING_RECLAIM_FREE 0u /* reclaimed slots become FREE */
/* reclaimed slots become FILLED: the gateway keeps the input to re-send */
#define RING_RECLAIM_HOLD 1u

/* What ring_sync() orders. */
enum ring_sync {
	/* after writing a slot, before sending its descriptor */
	RING_SYNC_TO_PEER = 0,
	/* after receiving a descriptor, before reading the slot */
	RING_SYNC_FROM_PEER = 1,
};

/* Plane layout of one frame inside a slot (gateway and worker agree on it). */
struct ring_frame {
	uint32_t format; /* enum fp_pixfmt */
	uint32_t width, height;
	uint32_t planes;       /* 1..3 */
	uint32_t stride[4];    /* bytes per row, RING_STRIDE_ALIGN multiple */
	uint32_t rows[4];      /* rows of each plane */
	uint32_t row_bytes[4]; /* meaningful bytes of a row (<= stride) */
	uint64_t offset[4];    /* plane offset from the slot base, aligned */
	uint64_t bytes;        /* end of the last plane: bytes the frame uses */
};

/* ---- gateway ------------------------------------------------------------ */

/*
 * Creates a ring of p->slot_count slots, each big enough for any supported
 * format at p->max_width x p->max_height (ring_slot_bytes_for), pre-faulted.
 * All slots start FREE at generation 1. Returns 0, -EINVAL (bad params),
 * -ENOTSUP (backend not built in), -ENOMEM or another -errno of the backend.
 * Gateway, once at start; blocks while memory is faulted in.
 */
int ring_create(ring **out, const struct ring_params *p);

/*
 * The ring's fd (close-on-exec; owned by the ring, do not close). A worker
 * spawned with posix_spawn/fork+exec gets it by dup2 onto a chosen number
 * (dup2 clears FD_CLOEXEC on the copy) or through ring_inherit_fd().
 */
int ring_fd(const ring *r);

/*
 * Puts in *out a new fd for the same ring with FD_CLOEXEC cleared, to be
 * inherited by exactly one child: pass its number as --ring-fd, spawn, then
 * close it in the parent. Returns 0 or -errno. Any thread.
 */
int ring_inherit_fd(const ring *r, int *out);

/*
 * Takes a FREE slot: it becomes FILLED (held by the gateway) and *slot, *gen
 * name it. Returns 0, or -EAGAIN when no slot is free. Thread-safe, never
 * blocks.
 */
int ring_acquire(ring *r, uint32_t *slot, uint32_t *gen);

/*
 * Marks a FILLED (or DONE, when an output slot is re-used) slot as sent to
 * worker `worker` with process id `pid`. Returns 0, -ERANGE (slot out of
 * range), -ESTALE (gen is not current), -EINVAL (slot not held by the
 * gateway). Thread-safe.
 */
int ring_send(ring *r, uint32_t slot, uint32_t gen, int32_t worker, pid_t pid);

/*
 * Validates a (slot, gen) pair that came back from the worker with pid `pid`
 * (0: any pid): the slot must be AT_WORKER with that generation and owner.
 * Returns 0, -ERANGE, -ESTALE (stale generation or not at a worker), -EPERM
 * (held by another worker). Changes nothing. Thread-safe.
 */
int ring_check(ring *r, uint32_t slot, uint32_t gen, pid_t pid);

/* ring_check(), then AT_WORKER -> DONE. Same returns. Thread-safe. */
int ring_complete(ring *r, uint32_t slot, uint32_t gen, pid_t pid);

/*
 * Gives a held slot (FILLED, AT_WORKER or DONE) back: it becomes FREE and its
 * generation is bumped, so any descriptor still naming it is stale. Returns
 * 0, -ERANGE, -ESTALE (gen not current), -EINVAL (already FREE). Thread-safe.
 */
int ring_release(ring *r, uint32_t slot, uint32_t gen);

/*
 * Takes back every slot AT_WORKER owned by process `pid` (a worker that
 * died): each gets a new generation and becomes FREE, or FILLED with
 * RING_RECLAIM_HOLD. DONE slots are left alone: the worker already handed
 * them back and the gateway may be reading them. Returns how many (>= 0), or
 * -EINVAL for pid <= 0. Logs one line when > 0. Thread-safe (the supervisor
 * calls it on death).
 */
int ring_reclaim(ring *r, pid_t pid, unsigned flags);

/* Copies the gateway-side state of a slot. Returns 0, -ERANGE, -ENOTSUP on a
 * worker. */
int ring_slot_info(ring *r, uint32_t slot, struct ring_slot_info *out);

/* Number of FREE slots (gateway; 0 on a worker). Thread-safe. */
uint32_t ring_free_count(ring *r);

/* ---- gateway and worker ------------------------------------------------- */

/*
 * Worker: maps the ring whose fd was inherited (--ring-fd). Reads and checks
 * the header (magic, version, geometry, seals, size), maps the slots
 * read/write with every guard page PROT_NONE, pre-faults the slots. Does not
 * keep or close fd (the caller may close it after). Returns 0, -EBADMSG (not
 * a ring or wrong layout version), -EINVAL (inconsistent header or unsealed
 * memory), -ENOTSUP (backend not built in), or -errno. Blocks while faulting.
 */
int ring_attach(ring **out, int fd);

/* Unmaps and frees (gateway: also closes the fd). NULL-safe; sets *p = NULL. */
void ring_destroy(ring **p);

/*
 * Pointer to slot `slot` and its usable size. On the gateway gen must be the
 * current generation (-ESTALE otherwise); on a worker only the bounds are
 * checked (gen 0 is never valid: -ESTALE). Returns 0 or -ERANGE. Host
 * backend: a host pointer; CUDA: a device pointer. Never blocks.
 */
int ring_slot_ptr(ring *r, uint32_t slot, uint32_t gen, uint8_t **ptr,
                  uint64_t *size);

/*
 * Orders slot memory with the descriptor that names it (host: a memory
 * fence; CUDA: stream synchronisation). Cheap; call per frame.
 */
void ring_sync(ring *r, uint32_t slot, enum ring_sync what);

uint32_t ring_slot_count(const ring *r);
uint64_t ring_slot_bytes(const ring *r);
const struct ring_header *ring_get_header(const ring *r);

/* ---- layout helpers (pure) ------------------------------------------------
 */

/*
 * Fills *out with the plane offsets and strides of a width x height frame of
 * `format` (enum fp_pixfmt) in a slot, and checks that it fits in cap bytes.
 * Returns 0, -EINVAL (unknown format, zero or > RING_MAX_DIM size), -E2BIG
 * (does not fit). Both sides call it with the descriptor's values.
 */
int ring_frame_layout(uint32_t format, uint32_t width, uint32_t height,
                      uint64_t cap, struct ring_frame *out);

/* Slot bytes (page multiple) that hold any format at w x h; 0 if w/h invalid.
 */
uint64_t ring_slot_bytes_for(uint32_t max_width, uint32_t max_height);

/* Parses "WIDTHxHEIGHT" (--max-resolution). Returns 0 or -EINVAL. */
int ring_parse_resolution(const char *s, uint32_t *w, uint32_t *h);

/* ---- backend interface -------------------------------------------------- */

/*
 * A backend keeps priv_size bytes of private state (allocated zeroed by
 * ring.c). create/destroy run in the gateway, attach/detach in a worker; all
 * on one thread at a time. slot_base and sync are called per frame and must
 * be cheap and never block (except CUDA sync, which waits for the stream).
 */
struct ring_ops {
	const char *name;
	uint32_t id; /* enum ring_backend_id */
	size_t priv_size;
	/* Allocates the slot memory for the geometry in *hdr (ring.c fills all
	   but slots_offset/total_bytes/backend_data, which create sets), writes
	   the header where a worker can pread it at offset 0 of *fd_out (a
	   close-on-exec fd owned by the backend). Returns 0 or -errno. */
	int (*create)(void *priv, struct ring_header *hdr, int32_t device,
	              int *fd_out);
	/* Maps the memory described by *hdr (already validated) from fd. */
	int (*attach)(void *priv, int fd, const struct ring_header *hdr);
	/* Undoes attach (worker). Safe on a zeroed priv. */
	void (*detach)(void *priv);
	/* Undoes create (gateway): unmaps, frees, closes the fd. Safe on a
	 * zeroed priv. */
	void (*destroy)(void *priv);
	/* The fd of a created ring; -1 on a worker. */
	int (*fd)(void *priv);
	/* Base of slot i (already bounds-checked). */
	uint8_t *(*slot_base)(void *priv, uint32_t slot);
	/* See ring_sync(). */
	void (*sync)(void *priv, uint32_t slot, enum ring_sync what);
};

/* The host backend (ring_host.c): memfd + mmap(MAP_SHARED), always built. */
const struct ring_ops *ring_host_ops(void);

#if CT_CUDA
/*
 * The CUDA backend (ring_cuda.c). Returns 0 or -ENOTSUP when no device works.
 * Weak, so a CUDA build links (and answers -ENOTSUP) before ring_cuda.c exists.
 */
int ring_cuda_ops(const struct ring_ops **out) __attribute__((weak));

/* The CUDA ops when built in and usable; -ENOTSUP otherwise. */
static inline int
ring_cuda_backend(const struct ring_ops **out)
{
	*out = NULL;
	return ring_cuda_ops ? ring_cuda_ops(out) : -ENOTSUP;
}
#else
static inline int
ring_cuda_backend(const struct ring_ops **out)
{
	*out = NULL;
	return -ENOTSUP;
}
#endif

#endif
