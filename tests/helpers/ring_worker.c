/*
 * Test worker for tests/unit/ring_test.c: attaches an inherited ring fd,
 * dials the gateway's nng URL, then for every FRAME verifies the input slot
 * against the shared pattern, writes input XOR 0xA5 into the output slot and
 * answers RESULT (status = bytes that differed). Test-only flags make it stall
 * mid-frame or write past its slot. Usage:
 *   ring_worker --url URL --ring-fd FD [--id N]
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "clock.h"
#include "ipc.h"
#include "msg.h"
#include "ring.h"

/* write half the output, then wait to be killed */
#define RW_FLAG_STALL 0x10000u
#define RW_FLAG_OVERRUN 0x20000u /* write one byte past the output slot */
#define RW_PATTERN_SPAN 65536u   /* pattern offsets vary over this many bytes */
#define RW_XOR 0xa5a5a5a5a5a5a5a5ull

struct rw {
	ring *r;
	ipc *s;
	uint8_t *pattern; /* the bytes every frame is cut from */
	size_t pattern_len;
	uint8_t buf[64 * 1024];
	uint32_t id;
};

/* The same generator as ring_test.c: splitmix64 over the word index. */
static void
rw_pattern_fill(uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 8 <= len; i += 8) {
		uint64_t z = 0x9e3779b97f4a7c15ull * (i / 8 + 1);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		memcpy(p + i, &z, 8);
	}
}

static size_t
rw_pattern_off(uint64_t seq)
{
	return (size_t)((seq * 2654435761ull) % (RW_PATTERN_SPAN / 8)) * 8;
}

static void
rw_xor_row(uint8_t *dst, const uint8_t *src, size_t n)
{
	size_t k = 0;

	for (; k + 8 <= n; k += 8) {
		uint64_t w;

		memcpy(&w, src + k, 8);
		w ^= RW_XOR;
		memcpy(dst + k, &w, 8);
	}
	for (; k < n; k++)
		dst[k] = src[k] ^ 0xa5;
}

static int
rw_send(struct rw *w, const struct msg *m)
{
	uint8_t out[1024];
	size_t len;
	int rv = msg_encode(m, out, sizeof(out), &len);

	if (rv < 0)
		return rv;
	return ipc_send(w->s, out, len, 0);
}

static void
rw_event(struct rw *w, uint32_t stream, const char *json)
{
	struct msg m = {.type = MSG_EVENT};

	m.u.event.stream = stream;
	m.u.event.json = msg_cstr(json);
	rw_send(w, &m);
}

static int
rw_frame(struct rw *w, const struct msg_frame *f)
{
	struct msg m = {.type = MSG_RESULT};
	struct ring_frame lay;
	uint8_t *in, *out;
	uint64_t in_size, out_size, idx = 0;
	const uint8_t *expect;
	uint32_t bad = 0;
	int64_t t0 = clock_now_ns();
	int rv;

	rv = ring_slot_ptr(w->r, f->in_slot, f->in_gen, &in, &in_size);
	if (rv == 0)
		rv = ring_slot_ptr(w->r, f->out_slot, f->out_gen, &out,
		                   &out_size);
	if (rv == 0)
		rv = ring_frame_layout(f->format, f->width, f->height, in_size,
		                       &lay);
	if (rv < 0) {
		struct msg d = {.type = MSG_DROP};

		d.u.drop.stream = f->stream;
		d.u.drop.seq = f->seq;
		d.u.drop.in_slot = f->in_slot;
		d.u.drop.in_gen = f->in_gen;
		d.u.drop.reason = rv;
		return rw_send(w, &d);
	}
	ring_sync(w->r, f->in_slot, RING_SYNC_FROM_PEER);
	expect = w->pattern + rw_pattern_off(f->seq);
	for (uint32_t p = 0; p < lay.planes; p++) {
		for (uint32_t y = 0; y < lay.rows[p]; y++) {
			const uint8_t *row =
			    in + lay.offset[p] + (uint64_t)y * lay.stride[p];
			uint8_t *orow =
			    out + lay.offset[p] + (uint64_t)y * lay.stride[p];
			uint32_t n = lay.row_bytes[p];

			if (memcmp(row, expect + idx, n) != 0) {
				for (uint32_t k = 0; k < n; k++)
					bad += row[k] != expect[idx + k];
			}
			rw_xor_row(orow, row, n);
			idx += n;
			if ((f->flags & RW_FLAG_STALL) && p == 0 &&
			    y == lay.rows[0] / 2) {
				rw_event(w, f->stream, "{\"stalled\":true}");
				for (;;)
					pause();
			}
		}
	}
	if (f->flags & RW_FLAG_OVERRUN) {
		rw_event(w, f->stream, "{\"overrun\":true}");
		((volatile uint8_t *)out)[out_size] =
		    1; /* the guard page: SIGSEGV */
	}
	ring_sync(w->r, f->out_slot, RING_SYNC_TO_PEER);
	m.u.result.stream = f->stream;
	m.u.result.seq = f->seq;
	m.u.result.pts = f->pts;
	m.u.result.width = f->width;
	m.u.result.height = f->height;
	m.u.result.format = f->format;
	m.u.result.out_slot = f->out_slot;
	m.u.result.out_gen = f->out_gen;
	m.u.result.status = bad;
	m.u.result.proc_us = (uint32_t)((clock_now_ns() - t0) / 1000);
	return rw_send(w, &m);
}

static int
rw_loop(struct rw *w)
{
	struct msg m;
	size_t len;
	int rv;

	for (;;) {
		rv = ipc_recv(w->s, w->buf, sizeof(w->buf), &len, 10000);
		if (rv < 0)
			return rv == -ETIMEDOUT ? 5 : 6;
		if (msg_decode(w->buf, len, &m) < 0)
			return 7;
		switch (m.type) {
		case MSG_FRAME:
			if (rw_frame(w, &m.u.frame) < 0)
				return 8;
			break;
		case MSG_SHUTDOWN:
			return 0;
		default:
			break;
		}
	}
}

int
main(int argc, char **argv)
{
	struct rw *w;
	const char *url = NULL;
	int fd = -1, rv, status;
	struct msg m = {.type = MSG_READY};

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	w = calloc(1, sizeof(*w));
	if (!w)
		return 1;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--url"))
			url = argv[i + 1];
		else if (!strcmp(argv[i], "--ring-fd"))
			fd = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--id"))
			w->id = (uint32_t)atoi(argv[i + 1]);
	}
	if (!url || fd < 0) {
		fprintf(stderr,
		        "usage: ring_worker --url URL --ring-fd FD [--id N]\n");
		free(w);
		return 2;
	}
	rv = ring_attach(&w->r, fd);
	close(fd);
	if (rv < 0) {
		fprintf(stderr, "ring_worker: attach: %s\n", strerror(-rv));
		free(w);
		return 3;
	}
	w->pattern_len = ring_slot_bytes(w->r) + RW_PATTERN_SPAN;
	w->pattern = malloc(w->pattern_len);
	if (!w->pattern) {
		status = 1;
		goto out;
	}
	rw_pattern_fill(w->pattern, w->pattern_len);
	rv = ipc_dial(&w->s, url, 5000);
	if (rv < 0) {
		fprintf(stderr, "ring_worker: dial %s: %s\n", url,
		        strerror(-rv));
		status = 4;
		goto out;
	}
	m.u.ready.worker_id = w->id;
	status = rw_send(w, &m) < 0 ? 6 : rw_loop(w);
out:
	ipc_close(&w->s);
	ring_destroy(&w->r);
	free(w->pattern);
	free(w);
	return status;
}
