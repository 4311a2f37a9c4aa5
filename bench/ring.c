/*
 * bench/ring: per-frame cost of handing a decoded frame to a worker through
 * the frame ring (copy into a slot + FRAME over nng + worker decode + slot
 * view), against a floor measured in the same run (one memcpy of the frame +
 * one round trip over a Unix socketpair between two processes). Prints p50
 * and p99 of both at 512x512 RGB24 and 1920x1080 NV12; the last line is
 * `ring overhead ratio: X (goal <= 2.0)`, X the worse p50 ratio.
 * Usage: build/bench/ring [--frames N]   (default 3000 per size)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "frame_processor.h"
#include "ipc.h"
#include "msg.h"
#include "ring.h"

#define BR_WARMUP 100
#define BR_SLOTS 4

struct br_size {
	const char *name;
	uint32_t w, h, format;
};

static const struct br_size br_sizes[] = {
    {"512x512 rgb24", 512, 512, FP_FMT_RGB24},
    {"1920x1080 nv12", 1920, 1080, FP_FMT_NV12},
};

struct br_stats {
	double p50_us, p99_us;
};

static int
br_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static struct br_stats
br_stats(int64_t *ns, int n)
{
	struct br_stats s;

	qsort(ns, (size_t)n, sizeof(*ns), br_cmp);
	s.p50_us = ns[n / 2] / 1e3;
	s.p99_us = ns[(int)((n - 1) * 0.99)] / 1e3;
	return s;
}

/*
 * The worker side of the ring path (a forked child that has not touched nng:
 * nng is not fork-safe once used). Receives FRAME, decodes it, takes views of
 * both slots, stamps the time the view is ready, answers RESULT with the
 * one-way latency in ns in its pts field. Exits on SHUTDOWN.
 */
static int
br_worker(int fd, const char *url)
{
	struct fp_video_frame in = {.struct_size = sizeof(in)}, out = in;
	uint8_t buf[1024], reply[256];
	struct ring_frame lay;
	struct msg m, r = {.type = MSG_RESULT};
	uint64_t size;
	uint8_t *ip, *op;
	size_t len;
	ring *ring;
	ipc *s;

	if (ring_attach(&ring, fd) < 0)
		return 3;
	if (ipc_dial(&s, url, 5000) < 0)
		return 4;
	for (;;) {
		if (ipc_recv(s, buf, sizeof(buf), &len, -1) < 0 ||
		    msg_decode(buf, len, &m) < 0)
			return 5;
		if (m.type == MSG_SHUTDOWN)
			break;
		if (m.type != MSG_FRAME ||
		    ring_slot_ptr(ring, m.u.frame.in_slot, m.u.frame.in_gen,
		                  &ip, &size) < 0 ||
		    ring_slot_ptr(ring, m.u.frame.out_slot, m.u.frame.out_gen,
		                  &op, &size) < 0 ||
		    ring_frame_layout(m.u.frame.format, m.u.frame.width,
		                      m.u.frame.height, size, &lay) < 0)
			return 6;
		ring_sync(ring, m.u.frame.in_slot, RING_SYNC_FROM_PEER);
		in.width = out.width = lay.width;
		in.height = out.height = lay.height;
		in.format = out.format = lay.format;
		for (uint32_t p = 0; p < lay.planes; p++) {
			in.plane[p] = ip + lay.offset[p];
			out.plane[p] = op + lay.offset[p];
			in.stride[p] = out.stride[p] = lay.stride[p];
		}
		r.u.result.pts = clock_now_ns() - m.u.frame.t_ns;
		r.u.result.seq = m.u.frame.seq;
		r.u.result.out_slot = m.u.frame.out_slot;
		r.u.result.out_gen = m.u.frame.out_gen;
		r.u.result.width =
		    in.width + (in.plane[0][0] & 0); /* the view is used */
		if (msg_encode(&r, reply, sizeof(reply), &len) < 0 ||
		    ipc_send(s, reply, len, 0) < 0)
			return 7;
	}
	ipc_close(&s);
	ring_destroy(&ring);
	return 0;
}

/* The floor's peer: echoes every message until EOF. */
static int
br_echo(int sock)
{
	char b[64];
	ssize_t n;

	while ((n = read(sock, b, sizeof(b))) > 0) {
		if (write(sock, b, (size_t)n) != n)
			return 1;
	}
	return 0;
}

/* Copies a tight frame (planes back to back, no padding) into a slot. */
static void
br_copy_in(uint8_t *slot, const uint8_t *src, const struct ring_frame *lay)
{
	for (uint32_t p = 0; p < lay->planes; p++) {
		uint64_t plane = (uint64_t)lay->row_bytes[p] * lay->rows[p];

		if (lay->stride[p] == lay->row_bytes[p]) {
			memcpy(slot + lay->offset[p], src, plane);
		} else {
			for (uint32_t y = 0; y < lay->rows[p]; y++)
				memcpy(slot + lay->offset[p] +
				           (uint64_t)y * lay->stride[p],
				       src + (uint64_t)y * lay->row_bytes[p],
				       lay->row_bytes[p]);
		}
		src += plane;
	}
}

struct br_ctx {
	ring *r;
	ipc *s;
	pid_t worker;
	int echo_fd;
	pid_t echo;
	int frames;
	int64_t *ring_ns, *copy_ns, *floor_ns;
};

/* One frame through the ring; i < 0 is warm-up (not recorded). */
static int
br_ring_frame(struct br_ctx *c, const struct br_size *sz, const uint8_t *frame,
              const struct ring_frame *lay, int i)
{
	struct msg m = {.type = MSG_FRAME}, res;
	uint8_t buf[256], rbuf[256];
	uint32_t is, ig, os, og;
	uint64_t size;
	uint8_t *slot;
	size_t len;
	int rv;

	m.u.frame.width = sz->w;
	m.u.frame.height = sz->h;
	m.u.frame.format = sz->format;
	m.u.frame.tb_num = 1;
	m.u.frame.tb_den = 90000;
	{
		int64_t t0 = clock_now_ns(), t1;

		if ((rv = ring_acquire(c->r, &is, &ig)) < 0 ||
		    (rv = ring_acquire(c->r, &os, &og)) < 0 ||
		    (rv = ring_slot_ptr(c->r, is, ig, &slot, &size)) < 0)
			return rv;
		br_copy_in(slot, frame, lay);
		ring_sync(c->r, is, RING_SYNC_TO_PEER);
		t1 = clock_now_ns();
		ring_send(c->r, is, ig, 0, c->worker);
		ring_send(c->r, os, og, 0, c->worker);
		m.u.frame.seq = (uint64_t)(i + BR_WARMUP);
		m.u.frame.in_slot = is;
		m.u.frame.in_gen = ig;
		m.u.frame.out_slot = os;
		m.u.frame.out_gen = og;
		m.u.frame.t_ns = t0;
		if ((rv = msg_encode(&m, buf, sizeof(buf), &len)) < 0 ||
		    (rv = ipc_send(c->s, buf, len, 0)) < 0 ||
		    (rv = ipc_recv(c->s, rbuf, sizeof(rbuf), &len, 5000)) < 0 ||
		    (rv = msg_decode(rbuf, len, &res)) < 0)
			return rv;
		if (res.type != MSG_RESULT ||
		    (rv = ring_complete(c->r, res.u.result.out_slot,
		                        res.u.result.out_gen, c->worker)) < 0)
			return rv < 0 ? rv : -EPROTO;
		ring_complete(c->r, is, ig, c->worker);
		ring_release(c->r, is, ig);
		ring_release(c->r, os, og);
		if (i >= 0) {
			c->ring_ns[i] = res.u.result.pts;
			c->copy_ns[i] = t1 - t0;
		}
	}
	return 0;
}

/* One floor frame: memcpy + a 64-byte round trip to the echo process. */
static int
br_floor_frame(struct br_ctx *c, const uint8_t *frame, uint8_t *dst[2],
               size_t bytes, int i)
{
	char b[64] = {0};

	{
		int64_t t0 = clock_now_ns();

		memcpy(dst[i & 1], frame, bytes);
		if (write(c->echo_fd, b, sizeof(b)) != (ssize_t)sizeof(b) ||
		    read(c->echo_fd, b, sizeof(b)) != (ssize_t)sizeof(b))
			return -EIO;
		if (i >= 0)
			c->floor_ns[i] = clock_now_ns() - t0;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct ring_params rp = {
	    .slot_count = BR_SLOTS, .max_width = 1920, .max_height = 1080};
	char url[IPC_URL_MAX], fdarg[16];
	double worst = 0;
	const char *worst_name = "";
	struct br_ctx c = {.frames = 3000};
	struct msg m = {.type = MSG_SHUTDOWN};
	uint8_t sbuf[128];
	ipc_dir *dir;
	size_t len;
	int sv[2], rv, status;

	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--frames"))
			c.frames = atoi(argv[++i]);
	}
	if (c.frames < 100)
		c.frames = 100;
	signal(SIGPIPE, SIG_IGN);
	if ((rv = ring_create(&c.r, &rp)) < 0 ||
	    (rv = ipc_dir_create(&dir, NULL)) < 0 ||
	    (rv = ipc_dir_url(dir, "bench.ipc", url, sizeof(url))) < 0) {
		fprintf(stderr, "ring: setup: %s\n", strerror(-rv));
		return 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	/* Both children before this process touches nng (not fork-safe). */
	c.echo = fork();
	if (c.echo == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		_exit(br_echo(sv[1]));
	}
	close(sv[1]);
	c.echo_fd = sv[0];
	snprintf(fdarg, sizeof(fdarg), "%d", ring_fd(c.r));
	c.worker = fork();
	if (c.worker == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(sv[0]);
		_exit(br_worker(ring_fd(c.r), url));
	}
	if (c.echo < 0 || c.worker < 0 || (rv = ipc_listen(&c.s, url)) < 0) {
		fprintf(stderr, "ring: spawn/listen failed\n");
		return 1;
	}
	c.ring_ns = calloc((size_t)c.frames, sizeof(int64_t));
	c.copy_ns = calloc((size_t)c.frames, sizeof(int64_t));
	c.floor_ns = calloc((size_t)c.frames, sizeof(int64_t));
	printf(
	    "ring: %d frames per size after %d warm-up; one frame in flight; "
	    "host backend, %u slots of %llu bytes\n",
	    c.frames, BR_WARMUP, BR_SLOTS,
	    (unsigned long long)ring_slot_bytes(c.r));
	printf(
	    "ring: ring = malloc'ed frame -> copy into slot -> FRAME over nng "
	    "-> "
	    "worker decoded it and holds a slot view (one way, t_ns stamps); "
	    "floor = memcpy of the frame + 64-byte round trip over a Unix "
	    "socketpair; "
	    "the two run interleaved\n");
	for (size_t k = 0; k < sizeof(br_sizes) / sizeof(br_sizes[0]); k++) {
		const struct br_size *sz = &br_sizes[k];
		struct br_stats rs, ts, fs;
		struct ring_frame lay, tight;
		uint8_t *frame, *dst[2];
		size_t bytes;
		double ratio;

		ring_frame_layout(sz->format, sz->w, sz->h, UINT64_MAX, &lay);
		tight = lay;
		bytes = 0;
		for (uint32_t p = 0; p < tight.planes; p++)
			bytes += (size_t)tight.row_bytes[p] * tight.rows[p];
		frame = malloc(bytes);
		dst[0] = malloc(bytes);
		dst[1] = malloc(bytes);
		if (!frame || !dst[0] || !dst[1] || !c.ring_ns || !c.copy_ns ||
		    !c.floor_ns)
			return 1;
		for (size_t i = 0; i < bytes; i++)
			frame[i] = (uint8_t)(i * 7);
		memset(dst[0], 0, bytes);
		memset(dst[1], 0, bytes);
		/* Interleaved, so both paths see the same machine load. */
		rv = 0;
		for (int i = -BR_WARMUP; rv == 0 && i < c.frames; i++) {
			rv = br_ring_frame(&c, sz, frame, &lay, i);
			if (rv == 0)
				rv = br_floor_frame(&c, frame, dst, bytes, i);
		}
		if (rv < 0) {
			fprintf(stderr, "ring: %s: %s\n", sz->name,
			        strerror(-rv));
			return 1;
		}
		for (int i = 0; i < c.frames; i++)
			c.copy_ns[i] = c.ring_ns[i] - c.copy_ns[i];
		ts = br_stats(c.copy_ns, c.frames); /* descriptor hand-off */
		rs = br_stats(c.ring_ns, c.frames);
		fs = br_stats(c.floor_ns, c.frames);
		ratio = rs.p50_us / fs.p50_us;
		printf("ring: %-15s %8zu bytes: ring p50 %7.1f us p99 %7.1f us "
		       "(nng hand-off part p50 %6.1f us); floor p50 %7.1f us "
		       "p99 %7.1f us; p50 ratio %.2f\n",
		       sz->name, bytes, rs.p50_us, rs.p99_us, ts.p50_us,
		       fs.p50_us, fs.p99_us, ratio);
		if (ratio > worst) {
			worst = ratio;
			worst_name = sz->name;
		}
		free(frame);
		free(dst[0]);
		free(dst[1]);
	}
	msg_encode(&(struct msg){.type = MSG_SHUTDOWN,
	                         .u.shutdown.reason = msg_cstr("done")},
	           sbuf, sizeof(sbuf), &len);
	(void)m;
	ipc_send_timeout(c.s, sbuf, len, 1000);
	close(c.echo_fd);
	waitpid(c.worker, &status, 0);
	waitpid(c.echo, NULL, 0);
	ipc_close(&c.s);
	ipc_dir_destroy(&dir);
	ring_destroy(&c.r);
	free(c.ring_ns);
	free(c.copy_ns);
	free(c.floor_ns);
	printf("ring: worse p50 ratio is %s\n", worst_name);
	printf("ring overhead ratio: %.2f (goal <= 2.0)\n", worst);
	return 0;
}
