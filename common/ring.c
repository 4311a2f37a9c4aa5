/*
 * Frame ring core: geometry, header validation, the gateway's private slot
 * state machine (free -> filled -> at worker -> done -> free, generations,
 * (pid, worker) owners, reclaim) and the frame layout helper. Memory itself
 * belongs to a backend (ring_host.c, later ring_cuda.c) behind struct ring_ops.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame_processor.h"
#include "log.h"

struct ring {
	const struct ring_ops *ops;
	void *priv;             /* ops->priv_size bytes */
	bool gateway;           /* created here (owns slot state) */
	struct ring_header hdr; /* private copy of the header */
	pthread_mutex_t lock;   /* guards slots, cursor, nfree (gateway) */
	struct ring_slot_info *slots;
	uint32_t cursor; /* where the next acquire starts looking */
	uint32_t nfree;
};

static uint64_t
ring_align(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

int
ring_frame_layout(uint32_t format, uint32_t width, uint32_t height,
                  uint64_t cap, struct ring_frame *out)
{
	uint64_t off = 0;

	if (format >= FP_FMT_COUNT || width == 0 || height == 0 ||
	    width > RING_MAX_DIM || height > RING_MAX_DIM)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->format = format;
	out->width = width;
	out->height = height;
	for (int p = 0; p < 4; p++) {
		uint32_t row = fp_plane_row_bytes(format, width, p);
		uint32_t rows = fp_plane_rows(format, height, p);

		if (row == 0 || rows == 0)
			break;
		off = ring_align(off, RING_STRIDE_ALIGN);
		out->offset[p] = off;
		out->row_bytes[p] = row;
		out->stride[p] = (uint32_t)ring_align(row, RING_STRIDE_ALIGN);
		out->rows[p] = rows;
		off += (uint64_t)out->stride[p] * rows;
		out->planes = (uint32_t)p + 1;
	}
	out->bytes = off;
	if (out->planes == 0)
		return -EINVAL;
	return off <= cap ? 0 : -E2BIG;
}

uint64_t
ring_slot_bytes_for(uint32_t max_width, uint32_t max_height)
{
	uint64_t need;
	struct ring_frame f;

	if (max_width == 0 || max_height == 0 || max_width > RING_MAX_DIM ||
	    max_height > RING_MAX_DIM)
		return 0;
	need = (uint64_t)max_width * max_height * 4; /* RGBA, the worst case */
	for (uint32_t fmt = 0; fmt < FP_FMT_COUNT; fmt++) {
		ring_frame_layout(fmt, max_width, max_height, UINT64_MAX, &f);
		if (f.bytes > need)
			need = f.bytes;
	}
	return ring_align(need, RING_PAGE_BYTES);
}

int
ring_parse_resolution(const char *s, uint32_t *w, uint32_t *h)
{
	unsigned long a, b;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	a = strtoul(s, &end, 10);
	if (*end != 'x' && *end != 'X')
		return -EINVAL;
	s = end + 1;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	b = strtoul(s, &end, 10);
	if (*end || a == 0 || b == 0 || a > RING_MAX_DIM || b > RING_MAX_DIM)
		return -EINVAL;
	*w = (uint32_t)a;
	*h = (uint32_t)b;
	return 0;
}

/* Every field a worker relies on, checked before anything is mapped. */
static int
ring_header_check(const struct ring_header *h)
{
	uint64_t min_total;

	if (h->magic != RING_MAGIC || h->layout_version != RING_LAYOUT_VERSION)
		return -EBADMSG;
	if (h->header_bytes != RING_HEADER_BYTES ||
	    h->page_bytes != RING_PAGE_BYTES || h->slot_count == 0 ||
	    h->slot_count > RING_MAX_SLOTS || h->slot_bytes == 0 ||
	    h->slot_bytes > RING_MAX_SLOT_BYTES ||
	    h->slot_bytes % RING_PAGE_BYTES ||
	    h->guard_bytes < RING_PAGE_BYTES ||
	    h->guard_bytes > RING_MAX_SLOT_BYTES ||
	    h->guard_bytes % RING_PAGE_BYTES ||
	    h->slot_stride != h->slot_bytes + h->guard_bytes ||
	    h->slots_offset % RING_PAGE_BYTES ||
	    h->slots_offset > RING_MAX_SLOT_BYTES)
		return -EINVAL;
	if (h->max_width == 0 || h->max_height == 0 ||
	    h->max_width > RING_MAX_DIM || h->max_height > RING_MAX_DIM ||
	    h->slot_bytes < ring_slot_bytes_for(h->max_width, h->max_height))
		return -EINVAL;
	/* Bounded above, so this cannot overflow. */
	min_total = h->slots_offset + (uint64_t)h->slot_count * h->slot_stride;
	if (h->total_bytes != min_total)
		return -EINVAL;
	return 0;
}

static int
ring_ops_for(uint32_t backend, const struct ring_ops **ops)
{
	switch (backend) {
	case 0:
	case RING_BACKEND_HOST:
		*ops = ring_host_ops();
		return 0;
	case RING_BACKEND_CUDA:
		return ring_cuda_backend(ops);
	default:
		return -EINVAL;
	}
}

static int
ring_alloc(ring **out, const struct ring_ops *ops)
{
	ring *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->priv = calloc(1, ops->priv_size ? ops->priv_size : 1);
	if (!r->priv) {
		free(r);
		return -ENOMEM;
	}
	r->ops = ops;
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return 0;
}

static void
ring_free(ring *r)
{
	pthread_mutex_destroy(&r->lock);
	free(r->slots);
	free(r->priv);
	free(r);
}

int
ring_create(ring **out, const struct ring_params *p)
{
	const struct ring_ops *ops;
	struct ring_header *h;
	uint64_t slot_bytes;
	int fd, rv;
	ring *r;

	*out = NULL;
	if (!p || p->slot_count == 0 || p->slot_count > RING_MAX_SLOTS)
		return -EINVAL;
	slot_bytes = ring_slot_bytes_for(p->max_width, p->max_height);
	if (slot_bytes == 0 || slot_bytes > RING_MAX_SLOT_BYTES)
		return -EINVAL;
	rv = ring_ops_for(p->backend, &ops);
	if (rv < 0)
		return rv;
	rv = ring_alloc(&r, ops);
	if (rv < 0)
		return rv;
	r->gateway = true;
	r->slots = calloc(p->slot_count, sizeof(*r->slots));
	if (!r->slots) {
		rv = -ENOMEM;
		goto err_free;
	}
	h = &r->hdr;
	h->magic = RING_MAGIC;
	h->layout_version = RING_LAYOUT_VERSION;
	h->header_bytes = RING_HEADER_BYTES;
	h->page_bytes = RING_PAGE_BYTES;
	h->backend = ops->id;
	h->slot_count = p->slot_count;
	h->max_width = p->max_width;
	h->max_height = p->max_height;
	h->slot_bytes = slot_bytes;
	h->guard_bytes = RING_PAGE_BYTES;
	h->slot_stride = slot_bytes + RING_PAGE_BYTES;
	h->creator_pid = (int32_t)getpid();
	rv = ops->create(r->priv, h, p->device, &fd);
	if (rv < 0)
		goto err_free;
	for (uint32_t i = 0; i < p->slot_count; i++) {
		r->slots[i].gen = 1;
		r->slots[i].worker = -1;
	}
	r->nfree = p->slot_count;
	log_info("ring",
	         "ring created backend=%s slots=%u slot_bytes=%llu max=%ux%u",
	         ops->name, p->slot_count, (unsigned long long)slot_bytes,
	         p->max_width, p->max_height);
	*out = r;
	return 0;

err_free:
	ring_free(r);
	return rv;
}

int
ring_attach(ring **out, int fd)
{
	const struct ring_ops *ops;
	struct ring_header hdr;
	ssize_t n;
	ring *r;
	int rv;

	*out = NULL;
	if (fd < 0)
		return -EBADF;
	n = pread(fd, &hdr, sizeof(hdr), 0);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(hdr))
		return -EBADMSG;
	rv = ring_header_check(&hdr);
	if (rv < 0)
		return rv;
	rv = ring_ops_for(hdr.backend, &ops);
	if (rv < 0)
		return rv;
	if (ops->id != hdr.backend)
		return -EINVAL;
	rv = ring_alloc(&r, ops);
	if (rv < 0)
		return rv;
	r->hdr = hdr;
	rv = ops->attach(r->priv, fd, &r->hdr);
	if (rv < 0) {
		ring_free(r);
		return rv;
	}
	*out = r;
	return 0;
}

void
ring_destroy(ring **p)
{
	ring *r;

	if (!p || !*p)
		return;
	r = *p;
	*p = NULL;
	if (r->gateway)
		r->ops->destroy(r->priv);
	else
		r->ops->detach(r->priv);
	ring_free(r);
}

int
ring_fd(const ring *r)
{
	return r->ops->fd(r->priv);
}

int
ring_inherit_fd(const ring *r, int *out)
{
	int fd = ring_fd(r);

	if (fd < 0)
		return -EBADF;
	/* F_DUPFD (not _CLOEXEC): the copy is inherited across exec. */
	fd = fcntl(fd, F_DUPFD, 3);
	if (fd < 0)
		return -errno;
	*out = fd;
	return 0;
}

uint32_t
ring_slot_count(const ring *r)
{
	return r->hdr.slot_count;
}

uint64_t
ring_slot_bytes(const ring *r)
{
	return r->hdr.slot_bytes;
}

const struct ring_header *
ring_get_header(const ring *r)
{
	return &r->hdr;
}

int
ring_acquire(ring *r, uint32_t *slot, uint32_t *gen)
{
	uint32_t n = r->hdr.slot_count;
	int rv = -EAGAIN;

	if (!r->gateway)
		return -ENOTSUP;
	pthread_mutex_lock(&r->lock);
	for (uint32_t k = 0; r->nfree && k < n; k++) {
		uint32_t i = (r->cursor + k) % n;

		if (r->slots[i].state != RING_SLOT_FREE)
			continue;
		r->slots[i].state = RING_SLOT_FILLED;
		r->nfree--;
		r->cursor = (i + 1) % n;
		*slot = i;
		*gen = r->slots[i].gen;
		rv = 0;
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return rv;
}

/* Slot lookup with the range and generation checks every call shares. */
static int
ring_lookup(ring *r, uint32_t slot, uint32_t gen, struct ring_slot_info **out)
{
	if (slot >= r->hdr.slot_count)
		return -ERANGE;
	if (r->slots[slot].gen != gen)
		return -ESTALE;
	*out = &r->slots[slot];
	return 0;
}

int
ring_send(ring *r, uint32_t slot, uint32_t gen, int32_t worker, pid_t pid)
{
	struct ring_slot_info *s;
	int rv;

	if (!r->gateway)
		return -ENOTSUP;
	pthread_mutex_lock(&r->lock);
	rv = ring_lookup(r, slot, gen, &s);
	if (rv == 0 && s->state != RING_SLOT_FILLED &&
	    s->state != RING_SLOT_DONE)
		rv = -EINVAL;
	if (rv == 0) {
		s->state = RING_SLOT_AT_WORKER;
		s->worker = worker;
		s->pid = (int32_t)pid;
	}
	pthread_mutex_unlock(&r->lock);
	return rv;
}

static int
ring_check_locked(ring *r, uint32_t slot, uint32_t gen, pid_t pid,
                  struct ring_slot_info **out)
{
	int rv = ring_lookup(r, slot, gen, out);

	if (rv < 0)
		return rv;
	if ((*out)->state != RING_SLOT_AT_WORKER)
		return -ESTALE;
	if (pid > 0 && (*out)->pid != (int32_t)pid)
		return -EPERM;
	return 0;
}

int
ring_check(ring *r, uint32_t slot, uint32_t gen, pid_t pid)
{
	struct ring_slot_info *s;
	int rv;

	if (!r->gateway)
		return -ENOTSUP;
	pthread_mutex_lock(&r->lock);
	rv = ring_check_locked(r, slot, gen, pid, &s);
	pthread_mutex_unlock(&r->lock);
	return rv;
}

int
ring_complete(ring *r, uint32_t slot, uint32_t gen, pid_t pid)
{
	struct ring_slot_info *s;
	int rv;

	if (!r->gateway)
		return -ENOTSUP;
	pthread_mutex_lock(&r->lock);
	rv = ring_check_locked(r, slot, gen, pid, &s);
	if (rv == 0)
		s->state = RING_SLOT_DONE;
	pthread_mutex_unlock(&r->lock);
	return rv;
}

/* Next generation; 0 is skipped so it never names a live slot. */
static void
ring_bump(struct ring_slot_info *s)
{
	s->gen++;
	if (s->gen == 0)
		s->gen = 1;
}

int
ring_release(ring *r, uint32_t slot, uint32_t gen)
{
	struct ring_slot_info *s;
	int rv;

	if (!r->gateway)
		return -ENOTSUP;
	pthread_mutex_lock(&r->lock);
	rv = ring_lookup(r, slot, gen, &s);
	if (rv == 0 && s->state == RING_SLOT_FREE)
		rv = -EINVAL;
	if (rv == 0) {
		s->state = RING_SLOT_FREE;
		s->worker = -1;
		s->pid = 0;
		ring_bump(s);
		r->nfree++;
	}
	pthread_mutex_unlock(&r->lock);
	return rv;
}

int
ring_reclaim(ring *r, pid_t pid, unsigned flags)
{
	int32_t worker = -1;
	int n = 0;

	if (!r->gateway)
		return -ENOTSUP;
	if (pid <= 0)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	for (uint32_t i = 0; i < r->hdr.slot_count; i++) {
		struct ring_slot_info *s = &r->slots[i];

		if (s->state != RING_SLOT_AT_WORKER || s->pid != (int32_t)pid)
			continue;
		worker = s->worker;
		ring_bump(s);
		s->worker = -1;
		s->pid = 0;
		if (flags & RING_RECLAIM_HOLD) {
			s->state = RING_SLOT_FILLED;
		} else {
			s->state = RING_SLOT_FREE;
			r->nfree++;
		}
		n++;
	}
	pthread_mutex_unlock(&r->lock);
	if (n > 0)
		log_warn("ring", "slots reclaimed worker=%d pid=%d slots=%d",
		         (int)worker, (int)pid, n);
	return n;
}

int
ring_slot_info(ring *r, uint32_t slot, struct ring_slot_info *out)
{
	if (!r->gateway)
		return -ENOTSUP;
	if (slot >= r->hdr.slot_count)
		return -ERANGE;
	pthread_mutex_lock(&r->lock);
	*out = r->slots[slot];
	pthread_mutex_unlock(&r->lock);
	return 0;
}

uint32_t
ring_free_count(ring *r)
{
	uint32_t n;

	if (!r->gateway)
		return 0;
	pthread_mutex_lock(&r->lock);
	n = r->nfree;
	pthread_mutex_unlock(&r->lock);
	return n;
}

int
ring_slot_ptr(ring *r, uint32_t slot, uint32_t gen, uint8_t **ptr,
              uint64_t *size)
{
	if (slot >= r->hdr.slot_count)
		return -ERANGE;
	if (gen == 0)
		return -ESTALE;
	if (r->gateway) {
		uint32_t cur;

		pthread_mutex_lock(&r->lock);
		cur = r->slots[slot].gen;
		pthread_mutex_unlock(&r->lock);
		if (cur != gen)
			return -ESTALE;
	}
	*ptr = r->ops->slot_base(r->priv, slot);
	*size = r->hdr.slot_bytes;
	return 0;
}

void
ring_sync(ring *r, uint32_t slot, enum ring_sync what)
{
	if (slot < r->hdr.slot_count)
		r->ops->sync(r->priv, slot, what);
}
