/*
 * Frame ring tests: layout helper, the gateway's slot state machine, header
 * validation on attach, and the two-process path (fork+exec of
 * tests/helpers/ring_worker): 10,000 verified frames, SIGKILL mid-frame with
 * reclaim and a replacement, guard-page faults, nothing left behind.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "frame_processor.h"
#include "ipc.h"
#include "msg.h"
#include "ring.h"

#define RW_FLAG_STALL 0x10000u /* as tests/helpers/ring_worker.c */
#define RW_FLAG_OVERRUN 0x20000u
#define RW_PATTERN_SPAN 65536u

/* ---- pattern shared with the worker (same generator) --------------------- */

static void
rt_pattern_fill(uint8_t *p, size_t len)
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
rt_pattern_off(uint64_t seq)
{
	return (size_t)((seq * 2654435761ull) % (RW_PATTERN_SPAN / 8)) * 8;
}

/* ---- what must not leak -------------------------------------------------- */

struct rt_census {
	int fds;
	int ring_maps; /* /proc/self/maps lines of our memfd */
	int children;
};

/*
 * nng keeps a few process-wide fds (its poller) from the first socket until
 * exit; open and close one socket first so the census counts only ours.
 */
static void
rt_nng_warm(void)
{
	char url[IPC_URL_MAX];
	ipc_dir *d;
	ipc *s;

	CHECK_OK(ipc_dir_create(&d, NULL));
	CHECK_OK(ipc_dir_url(d, "warm.ipc", url, sizeof(url)));
	CHECK_OK(ipc_listen(&s, url));
	ipc_close(&s);
	ipc_dir_destroy(&d);
}

static void
rt_census(struct rt_census *c)
{
	char line[512];
	struct dirent *e;
	DIR *d;
	FILE *f;

	memset(c, 0, sizeof(*c));
	d = opendir("/proc/self/fd");
	CHECK(d != NULL);
	while ((e = readdir(d)) != NULL)
		c->fds += e->d_name[0] != '.';
	closedir(d);
	f = fopen("/proc/self/maps", "r");
	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		c->ring_maps += strstr(line, "memfd:ctrickle-ring") != NULL;
	fclose(f);
	/* Children of this process: waitpid says ECHILD when there are none. */
	c->children = !(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
}

/* Census before a test: after nng's warm-up, once the fd count is steady. */
static void
rt_census_before(struct rt_census *c)
{
	int last = -1, same = 0;

	rt_nng_warm();
	for (int i = 0; i < 100 && same < 3; i++) {
		rt_census(c);
		same = c->fds == last ? same + 1 : 0;
		last = c->fds;
		usleep(10000);
	}
}

/*
 * Census after teardown. nng closes a pipe's fd on its reaper thread shortly
 * after nng_close returns, so give the count up to a second to settle.
 */
static void
rt_census_after(const struct rt_census *before, struct rt_census *c)
{
	for (int i = 0; i < 100; i++) {
		rt_census(c);
		if (c->fds <= before->fds)
			return;
		usleep(10000);
	}
}

/* ---- a gateway with one worker ------------------------------------------ */

struct rt_gw {
	ring *r;
	ipc_dir *dir;
	ipc *s;
	char url[IPC_URL_MAX];
	pid_t pid;
	uint8_t *pattern; /* pattern bytes */
	uint8_t *expect;  /* pattern XOR 0xA5: what outputs must hold */
	size_t pattern_len;
	uint8_t buf[4096];
};

static void
rt_gw_open(struct rt_gw *g, uint32_t slots, uint32_t w, uint32_t h)
{
	struct ring_params p = {
	    .slot_count = slots, .max_width = w, .max_height = h};

	memset(g, 0, sizeof(*g));
	CHECK_OK(ring_create(&g->r, &p));
	CHECK_OK(ipc_dir_create(&g->dir, NULL));
	CHECK_OK(ipc_dir_url(g->dir, "w0.ipc", g->url, sizeof(g->url)));
	CHECK_OK(ipc_listen(&g->s, g->url));
	g->pattern_len = ring_slot_bytes(g->r) + RW_PATTERN_SPAN;
	g->pattern = malloc(g->pattern_len);
	g->expect = malloc(g->pattern_len);
	CHECK(g->pattern && g->expect);
	rt_pattern_fill(g->pattern, g->pattern_len);
	for (size_t i = 0; i < g->pattern_len; i++)
		g->expect[i] = g->pattern[i] ^ 0xa5;
}

static void
rt_gw_close(struct rt_gw *g)
{
	ipc_close(&g->s);
	ipc_dir_destroy(&g->dir);
	ring_destroy(&g->r);
	free(g->pattern);
	free(g->expect);
}

/* Receives one message (5 s at most) and decodes it into *m. */
static void
rt_recv(struct rt_gw *g, struct msg *m)
{
	size_t len;

	CHECK_OK(ipc_recv(g->s, g->buf, sizeof(g->buf), &len, 5000));
	CHECK_OK(msg_decode(g->buf, len, m));
}

static void
rt_send(struct rt_gw *g, const struct msg *m)
{
	uint8_t out[1024];
	size_t len;

	CHECK_OK(msg_encode(m, out, sizeof(out), &len));
	CHECK_OK(ipc_send_timeout(g->s, out, len, 5000));
}

/* fork+exec of the test worker with the ring fd inherited; waits for READY. */
static void
rt_spawn(struct rt_gw *g, bool no_asan_segv)
{
	char path[512], fdarg[16];
	struct msg m;
	int fd;

	snprintf(path, sizeof(path), "%s/tests/helpers/ring_worker",
	         th_build_dir());
	CHECK_MSG(access(path, X_OK) == 0, "%s not built", path);
	CHECK_OK(ring_inherit_fd(g->r, &fd));
	snprintf(fdarg, sizeof(fdarg), "%d", fd);
	g->pid = fork();
	CHECK(g->pid >= 0);
	if (g->pid == 0) {
		if (no_asan_segv) {
			/* Let the guard-page SIGSEGV kill the worker even under
			 * ASan. */
			char env[512];
			const char *a = getenv("ASAN_OPTIONS");

			snprintf(env, sizeof(env), "%s%shandle_segv=0",
			         a ? a : "", a && *a ? ":" : "");
			setenv("ASAN_OPTIONS", env, 1);
		}
		execl(path, path, "--url", g->url, "--ring-fd", fdarg, "--id",
		      "0", (char *)NULL);
		_exit(127);
	}
	close(fd);
	rt_recv(g, &m);
	CHECK_EQ(m.type, MSG_READY);
}

static int
rt_wait(pid_t pid)
{
	int status;

	CHECK_EQ(waitpid(pid, &status, 0), pid);
	return status;
}

/* Writes the pattern of frame seq into slot (layout lay). */
static void
rt_fill(struct rt_gw *g, uint32_t slot, uint32_t gen,
        const struct ring_frame *lay, uint64_t seq)
{
	const uint8_t *src = g->pattern + rt_pattern_off(seq);
	uint64_t size, idx = 0;
	uint8_t *base;

	CHECK_OK(ring_slot_ptr(g->r, slot, gen, &base, &size));
	for (uint32_t p = 0; p < lay->planes; p++) {
		for (uint32_t y = 0; y < lay->rows[p]; y++) {
			memcpy(base + lay->offset[p] +
			           (uint64_t)y * lay->stride[p],
			       src + idx, lay->row_bytes[p]);
			idx += lay->row_bytes[p];
		}
	}
	ring_sync(g->r, slot, RING_SYNC_TO_PEER);
}

/* Every byte of the output slot is the input XOR 0xA5. Returns bytes wrong. */
static uint64_t
rt_verify(struct rt_gw *g, uint32_t slot, uint32_t gen,
          const struct ring_frame *lay, uint64_t seq)
{
	const uint8_t *want = g->expect + rt_pattern_off(seq);
	uint64_t size, idx = 0, bad = 0;
	uint8_t *base;

	CHECK_OK(ring_slot_ptr(g->r, slot, gen, &base, &size));
	ring_sync(g->r, slot, RING_SYNC_FROM_PEER);
	for (uint32_t p = 0; p < lay->planes; p++) {
		for (uint32_t y = 0; y < lay->rows[p]; y++) {
			const uint8_t *row = base + lay->offset[p] +
			                     (uint64_t)y * lay->stride[p];

			if (memcmp(row, want + idx, lay->row_bytes[p]) != 0)
				for (uint32_t k = 0; k < lay->row_bytes[p]; k++)
					bad += row[k] != want[idx + k];
			idx += lay->row_bytes[p];
		}
	}
	return bad;
}

struct rt_inflight {
	uint64_t seq;
	uint32_t in_slot, in_gen, out_slot, out_gen;
};

/* Acquires an input and an output slot, fills the input, sends FRAME. */
static void
rt_send_frame(struct rt_gw *g, const struct ring_frame *lay, uint64_t seq,
              uint32_t flags, struct rt_inflight *f)
{
	struct msg m = {.type = MSG_FRAME};

	f->seq = seq;
	CHECK_OK(ring_acquire(g->r, &f->in_slot, &f->in_gen));
	CHECK_OK(ring_acquire(g->r, &f->out_slot, &f->out_gen));
	rt_fill(g, f->in_slot, f->in_gen, lay, seq);
	CHECK_OK(ring_send(g->r, f->in_slot, f->in_gen, 0, g->pid));
	CHECK_OK(ring_send(g->r, f->out_slot, f->out_gen, 0, g->pid));
	m.u.frame.seq = seq;
	m.u.frame.pts = (int64_t)seq * 1000;
	m.u.frame.tb_num = 1;
	m.u.frame.tb_den = 90000;
	m.u.frame.width = lay->width;
	m.u.frame.height = lay->height;
	m.u.frame.format = lay->format;
	m.u.frame.in_slot = f->in_slot;
	m.u.frame.in_gen = f->in_gen;
	m.u.frame.out_slot = f->out_slot;
	m.u.frame.out_gen = f->out_gen;
	m.u.frame.flags = flags;
	m.u.frame.t_ns = clock_now_ns();
	rt_send(g, &m);
}

/* Receives the RESULT of f, validates it like a gateway, verifies, releases. */
static void
rt_finish_frame(struct rt_gw *g, const struct ring_frame *lay,
                struct rt_inflight *f)
{
	struct msg m;

	rt_recv(g, &m);
	CHECK_EQ(m.type, MSG_RESULT);
	CHECK_EQ(m.u.result.seq, f->seq);
	CHECK_EQ(m.u.result.status, 0);
	CHECK_OK(ring_complete(g->r, m.u.result.out_slot, m.u.result.out_gen,
	                       g->pid));
	CHECK_OK(ring_complete(g->r, f->in_slot, f->in_gen, g->pid));
	CHECK_EQ(rt_verify(g, f->out_slot, f->out_gen, lay, f->seq), 0);
	CHECK_OK(ring_release(g->r, f->in_slot, f->in_gen));
	CHECK_OK(ring_release(g->r, f->out_slot, f->out_gen));
}

static void
rt_shutdown(struct rt_gw *g)
{
	struct msg m = {.type = MSG_SHUTDOWN};
	int status;

	m.u.shutdown.reason = msg_cstr("test");
	rt_send(g, &m);
	status = rt_wait(g->pid);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "worker status 0x%x", status);
	g->pid = 0;
}

/* ---- cases ----------------------------------------------------------------
 */

static void
ring_layout_helper(void)
{
	struct ring_frame f;
	uint32_t w, h;

	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 512, 512, 1 << 20, &f));
	CHECK_EQ(f.planes, 1);
	CHECK_EQ(f.stride[0], 1536);
	CHECK_EQ(f.bytes, 1536 * 512);
	CHECK_OK(ring_frame_layout(FP_FMT_NV12, 1920, 1080, 1 << 23, &f));
	CHECK_EQ(f.planes, 2);
	CHECK_EQ(f.offset[1], 1920 * 1080);
	CHECK_EQ(f.stride[1], 1920);
	CHECK_EQ(f.rows[1], 540);
	CHECK_OK(ring_frame_layout(FP_FMT_YUV420P, 101, 33, 1 << 20, &f));
	CHECK_EQ(f.planes, 3);
	CHECK_EQ(f.stride[0], 128);
	CHECK_EQ(f.row_bytes[1], 51);
	CHECK_EQ(f.rows[2], 17);
	CHECK_EQ(f.offset[1] % RING_STRIDE_ALIGN, 0);
	CHECK_EQ(f.offset[2], f.offset[1] + 64 * 17);
	CHECK_EQ(
	    ring_frame_layout(FP_FMT_RGBA, 1920, 1080, 1920 * 1080 * 4 - 1, &f),
	    -E2BIG);
	CHECK_EQ(ring_frame_layout(FP_FMT_COUNT, 16, 16, 1 << 20, &f), -EINVAL);
	CHECK_EQ(ring_frame_layout(FP_FMT_RGB24, 0, 16, 1 << 20, &f), -EINVAL);
	CHECK_EQ(ring_frame_layout(FP_FMT_RGB24, RING_MAX_DIM + 1, 16,
	                           UINT64_MAX, &f),
	         -EINVAL);
	CHECK_EQ(ring_slot_bytes_for(1920, 1080), 1920 * 1080 * 4);
	CHECK_EQ(ring_slot_bytes_for(1, 1) % RING_PAGE_BYTES, 0);
	CHECK(ring_slot_bytes_for(1, 1) >= 64);
	CHECK_EQ(ring_slot_bytes_for(0, 1), 0);
	for (uint32_t fmt = 0; fmt < FP_FMT_COUNT; fmt++)
		CHECK_OK(ring_frame_layout(fmt, 333, 77,
		                           ring_slot_bytes_for(333, 77), &f));
	CHECK_OK(ring_parse_resolution("1920x1080", &w, &h));
	CHECK_EQ(w, 1920);
	CHECK_EQ(h, 1080);
	CHECK_EQ(ring_parse_resolution("1920x", &w, &h), -EINVAL);
	CHECK_EQ(ring_parse_resolution("x1080", &w, &h), -EINVAL);
	CHECK_EQ(ring_parse_resolution("0x10", &w, &h), -EINVAL);
	CHECK_EQ(ring_parse_resolution("10x10z", &w, &h), -EINVAL);
	CHECK_EQ(ring_parse_resolution("99999x10", &w, &h), -EINVAL);
}

static void
ring_geometry(void)
{
	struct ring_params p = {
	    .slot_count = 3, .max_width = 640, .max_height = 360};
	const struct ring_header *h;
	ring *r;

	CHECK_OK(ring_create(&r, &p));
	h = ring_get_header(r);
	CHECK_EQ(h->magic, RING_MAGIC);
	CHECK_EQ(h->layout_version, RING_LAYOUT_VERSION);
	CHECK_EQ(h->slot_count, 3);
	CHECK_EQ(h->slot_bytes, 640 * 360 * 4);
	CHECK_EQ(h->slot_bytes % RING_PAGE_BYTES, 0);
	CHECK_EQ(h->slot_stride, h->slot_bytes + RING_PAGE_BYTES);
	CHECK_EQ(h->slots_offset, RING_HEADER_BYTES);
	CHECK_EQ(h->total_bytes, RING_HEADER_BYTES + 3 * h->slot_stride);
	CHECK_EQ(ring_slot_count(r), 3);
	CHECK(ring_fd(r) >= 0);
	CHECK(fcntl(ring_fd(r), F_GETFD) & FD_CLOEXEC);
	CHECK_EQ(fcntl(ring_fd(r), F_GET_SEALS) &
	             (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
	         F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
	CHECK(ftruncate(ring_fd(r), 4096) < 0);
	ring_destroy(&r);
	CHECK(r == NULL);
	ring_destroy(&r);
	p.slot_count = 0;
	CHECK_EQ(ring_create(&r, &p), -EINVAL);
	p.slot_count = 1;
	p.max_width = 0;
	CHECK_EQ(ring_create(&r, &p), -EINVAL);
	p.max_width = 16;
	p.backend = RING_BACKEND_CUDA;
	/* No CUDA backend in this build (or none yet): a clean refusal. */
	if (ring_create(&r, &p) == 0)
		ring_destroy(&r);
	else
		CHECK(r == NULL);
}

static void
ring_state_machine(void)
{
	struct ring_params p = {
	    .slot_count = 4, .max_width = 64, .max_height = 64};
	uint32_t s[5], g[5], old;
	struct ring_slot_info info;
	uint64_t size;
	uint8_t *ptr;
	ring *r;

	CHECK_OK(ring_create(&r, &p));
	CHECK_EQ(ring_free_count(r), 4);
	for (int i = 0; i < 4; i++) {
		CHECK_OK(ring_acquire(r, &s[i], &g[i]));
		CHECK_EQ(g[i], 1);
	}
	CHECK_EQ(ring_acquire(r, &s[4], &g[4]), -EAGAIN);
	CHECK_EQ(ring_free_count(r), 0);
	CHECK_OK(ring_slot_info(r, s[0], &info));
	CHECK_EQ(info.state, RING_SLOT_FILLED);

	/* sent to worker 7 (pid 1000) */
	CHECK_OK(ring_send(r, s[0], g[0], 7, 1000));
	CHECK_OK(ring_send(r, s[1], g[1], 7, 1000));
	CHECK_OK(ring_send(r, s[2], g[2], 8, 2000));
	CHECK_EQ(ring_send(r, s[0], g[0], 7, 1000),
	         -EINVAL); /* already there */
	CHECK_EQ(ring_send(r, 99, 1, 7, 1000), -ERANGE);
	CHECK_OK(ring_check(r, s[0], g[0], 1000));
	CHECK_OK(ring_check(r, s[0], g[0], 0));
	CHECK_EQ(ring_check(r, s[0], g[0] + 1, 1000), -ESTALE);
	CHECK_EQ(ring_check(r, s[0], g[0], 2000), -EPERM);
	CHECK_EQ(ring_check(r, 4, 1, 1000), -ERANGE);
	CHECK_EQ(ring_check(r, UINT32_MAX, 1, 1000), -ERANGE);
	CHECK_EQ(ring_check(r, s[3], g[3], 0),
	         -ESTALE); /* FILLED, not at a worker */

	/* a result comes back */
	CHECK_OK(ring_complete(r, s[0], g[0], 1000));
	CHECK_EQ(ring_complete(r, s[0], g[0], 1000), -ESTALE);
	CHECK_OK(ring_slot_info(r, s[0], &info));
	CHECK_EQ(info.state, RING_SLOT_DONE);
	CHECK_EQ(info.worker, 7);
	CHECK_OK(ring_release(r, s[0], g[0]));
	CHECK_EQ(ring_release(r, s[0], g[0]),
	         -ESTALE); /* generation moved on */
	CHECK_EQ(ring_release(r, s[0], g[0] + 1), -EINVAL); /* already free */
	CHECK_EQ(ring_slot_ptr(r, s[0], g[0], &ptr, &size), -ESTALE);
	CHECK_OK(ring_slot_ptr(r, s[0], g[0] + 1, &ptr, &size));
	CHECK_EQ(ring_slot_ptr(r, 4, 1, &ptr, &size), -ERANGE);
	CHECK_EQ(ring_free_count(r), 1);

	/* worker 7 (pid 1000) dies holding s[1]; worker 8 keeps s[2] */
	CHECK_EQ(ring_reclaim(r, 1000, RING_RECLAIM_FREE), 1);
	CHECK_EQ(ring_reclaim(r, 1000, RING_RECLAIM_FREE), 0);
	CHECK_EQ(ring_reclaim(r, 0, RING_RECLAIM_FREE), -EINVAL);
	CHECK_EQ(ring_complete(r, s[1], g[1], 1000), -ESTALE);
	CHECK_OK(ring_slot_info(r, s[1], &info));
	CHECK_EQ(info.state, RING_SLOT_FREE);
	CHECK_EQ(info.gen, g[1] + 1);
	CHECK_EQ(info.pid, 0);
	CHECK_EQ(ring_free_count(r), 2);

	/* HOLD: the gateway keeps the input to re-send it with a new generation
	 */
	old = g[2];
	CHECK_EQ(ring_reclaim(r, 2000, RING_RECLAIM_HOLD), 1);
	CHECK_OK(ring_slot_info(r, s[2], &info));
	CHECK_EQ(info.state, RING_SLOT_FILLED);
	CHECK_EQ(info.gen, old + 1);
	CHECK_EQ(ring_send(r, s[2], old, 9, 3000), -ESTALE);
	CHECK_OK(ring_send(r, s[2], old + 1, 9, 3000));
	CHECK_OK(ring_complete(r, s[2], old + 1, 3000));
	CHECK_OK(ring_release(r, s[2], old + 1));
	CHECK_EQ(ring_free_count(r), 3);

	/* A DONE slot is the gateway's again: a death does not take it. */
	CHECK_OK(ring_acquire(r, &s[4], &g[4]));
	CHECK_OK(ring_send(r, s[4], g[4], 10, 4000));
	CHECK_OK(ring_complete(r, s[4], g[4], 4000));
	CHECK_EQ(ring_reclaim(r, 4000, RING_RECLAIM_FREE), 0);
	CHECK_OK(ring_slot_info(r, s[4], &info));
	CHECK_EQ(info.state, RING_SLOT_DONE);
	CHECK_OK(ring_release(r, s[4], g[4]));
	ring_destroy(&r);
}

/* A worker refuses anything that is not a sealed ring of this layout. */
static void
ring_attach_validates(void)
{
	struct ring_params p = {
	    .slot_count = 2, .max_width = 32, .max_height = 32};
	struct ring_header h;
	uint64_t size;
	uint8_t *gp, *wp;
	ring *r, *w;
	int fd;

	CHECK_OK(ring_create(&r, &p));
	CHECK_OK(ring_attach(&w, ring_fd(r)));
	CHECK_EQ(ring_slot_count(w), 2);
	CHECK_EQ(ring_slot_ptr(w, 2, 1, &wp, &size), -ERANGE);
	CHECK_EQ(ring_slot_ptr(w, 1, 0, &wp, &size), -ESTALE);
	CHECK_OK(ring_slot_ptr(w, 1, 5, &wp,
	                       &size)); /* a worker checks bounds only */
	CHECK_EQ(size, ring_slot_bytes(r));
	CHECK_OK(ring_slot_ptr(r, 1, 1, &gp, &size));
	CHECK(gp != wp);
	memset(gp, 0x5a, size);
	CHECK_EQ(wp[0], 0x5a);
	CHECK_EQ(wp[size - 1], 0x5a);
	CHECK_EQ(ring_acquire(w, &p.slot_count, &p.max_width), -ENOTSUP);
	ring_destroy(&w);

	/* garbage, wrong version, inconsistent geometry, unsealed */
	h = *ring_get_header(r);
	fd =
	    memfd_create("ctrickle-ring-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CHECK(fd >= 0);
	CHECK_EQ(ring_attach(&w, fd), -EBADMSG); /* empty */
	CHECK_OK(ftruncate(fd, (off_t)h.total_bytes));
	CHECK_EQ(ring_attach(&w, fd), -EBADMSG); /* zeros */
	h.layout_version = RING_LAYOUT_VERSION + 1;
	CHECK_EQ(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	CHECK_EQ(ring_attach(&w, fd), -EBADMSG);
	h.layout_version = RING_LAYOUT_VERSION;
	h.slot_stride += 1;
	CHECK_EQ(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	CHECK_EQ(ring_attach(&w, fd), -EINVAL);
	h.slot_stride -= 1;
	h.slot_count = RING_MAX_SLOTS + 1;
	CHECK_EQ(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	CHECK_EQ(ring_attach(&w, fd), -EINVAL);
	h.slot_count = 2;
	h.max_width = 4096; /* slots too small for the claimed resolution */
	CHECK_EQ(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	CHECK_EQ(ring_attach(&w, fd), -EINVAL);
	h.max_width = 32;
	CHECK_EQ(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
	CHECK_EQ(ring_attach(&w, fd), -EINVAL); /* valid header, but unsealed */
	CHECK_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK));
	CHECK_OK(ring_attach(&w, fd));
	ring_destroy(&w);
	close(fd);
	CHECK_EQ(ring_attach(&w, -1), -EBADF);
	ring_destroy(&r);
}

/* A write one byte past a slot faults (in-process check of the gateway map). */
static void
ring_guard_in_gateway(void)
{
	struct ring_params p = {
	    .slot_count = 2, .max_width = 32, .max_height = 32};
	uint64_t size;
	uint8_t *ptr;
	int status;
	pid_t pid;
	ring *r;

	CHECK_OK(ring_create(&r, &p));
	CHECK_OK(ring_slot_ptr(r, 0, 1, &ptr, &size));
	ptr[size - 1] = 1; /* the last byte is fine */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		((volatile uint8_t *)ptr)[size] = 1;
		_exit(0);
	}
	status = rt_wait(pid);
	CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
	          "status 0x%x", status);
	ring_destroy(&r);
}

/* The key test: 10,000 frames of 512x512 RGB24 through two processes. */
static void
ring_two_process_10k(void)
{
	struct rt_census before, after;
	struct rt_inflight q[2];
	struct ring_frame lay;
	struct rt_gw g;
	const uint64_t n = 10000;
	int64_t t0;

	rt_census_before(&before);
	rt_gw_open(&g, 4, 512, 512);
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 512, 512, ring_slot_bytes(g.r),
	                           &lay));
	rt_spawn(&g, false);
	t0 = clock_now_ns();
	/* Two frames in flight, as a stream would have. */
	rt_send_frame(&g, &lay, 0, 0, &q[0]);
	for (uint64_t seq = 1; seq <= n; seq++) {
		if (seq < n)
			rt_send_frame(&g, &lay, seq, 0, &q[seq % 2]);
		rt_finish_frame(&g, &lay, &q[(seq - 1) % 2]);
	}
	printf("    %llu frames of 512x512 RGB24 verified in %.0f ms (%.1f "
	       "us/frame)\n",
	       (unsigned long long)n, (clock_now_ns() - t0) / 1e6,
	       (clock_now_ns() - t0) / 1e3 / (double)n);
	CHECK_EQ(ring_free_count(g.r), 4);
	rt_shutdown(&g);
	rt_gw_close(&g);
	rt_census_after(&before, &after);
	CHECK_EQ(after.fds, before.fds);
	CHECK_EQ(after.ring_maps, 0);
	CHECK_EQ(before.ring_maps, 0);
	CHECK_EQ(after.children, 0);
}

/* SIGKILL mid-frame: its slots come back with new generations, stale results
   are refused, and a replacement worker carries on. */
static void
ring_worker_killed(void)
{
	struct rt_census before, after;
	struct rt_inflight f, dead;
	struct ring_slot_info info;
	struct ring_frame lay;
	struct rt_gw g;
	struct msg m;
	pid_t old;
	int status;

	rt_census_before(&before);
	rt_gw_open(&g, 4, 512, 512);
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 512, 512, ring_slot_bytes(g.r),
	                           &lay));
	rt_spawn(&g, false);
	for (uint64_t seq = 0; seq < 20; seq++) {
		rt_send_frame(&g, &lay, seq, 0, &f);
		rt_finish_frame(&g, &lay, &f);
	}
	rt_send_frame(&g, &lay, 20, RW_FLAG_STALL, &dead);
	rt_recv(&g, &m); /* the worker says it is half way through */
	CHECK_EQ(m.type, MSG_EVENT);
	CHECK_EQ(ring_free_count(g.r), 2);
	old = g.pid;
	CHECK_OK(kill(old, SIGKILL));
	status = rt_wait(old);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	CHECK_EQ(ring_reclaim(g.r, old, RING_RECLAIM_FREE), 2);
	CHECK_EQ(ring_free_count(g.r), 4);
	/* A late RESULT naming the old generation is refused. */
	CHECK_EQ(ring_complete(g.r, dead.out_slot, dead.out_gen, old), -ESTALE);
	CHECK_EQ(ring_check(g.r, dead.in_slot, dead.in_gen, 0), -ESTALE);
	CHECK_OK(ring_slot_info(g.r, dead.in_slot, &info));
	CHECK_EQ(info.gen, dead.in_gen + 1);

	rt_spawn(&g, false);
	CHECK(g.pid != old);
	for (uint64_t seq = 20; seq < 120; seq++) {
		rt_send_frame(&g, &lay, seq, 0, &f);
		rt_finish_frame(&g, &lay, &f);
	}
	rt_shutdown(&g);
	rt_gw_close(&g);
	rt_census_after(&before, &after);
	CHECK_EQ(after.fds, before.fds);
	CHECK_EQ(after.ring_maps, 0);
	CHECK_EQ(after.children, 0);
}

/* A worker that writes past its slot dies of SIGSEGV on the guard page; the
   neighbouring slot is untouched. */
static void
ring_guard_faults_worker(void)
{
	struct rt_inflight f;
	struct ring_frame lay;
	struct rt_gw g;
	struct msg m;
	uint64_t size;
	uint8_t *next;
	int status;

	rt_gw_open(&g, 4, 64, 64);
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 64, 64, ring_slot_bytes(g.r),
	                           &lay));
	for (uint32_t i = 0; i < 4; i++) {
		CHECK_OK(ring_slot_ptr(g.r, i, 1, &next, &size));
		memset(next, 0x11, size);
	}
	rt_spawn(&g, true);
	rt_send_frame(&g, &lay, 0, RW_FLAG_OVERRUN, &f);
	rt_recv(&g, &m);
	CHECK_EQ(m.type, MSG_EVENT);
	status = rt_wait(g.pid);
	CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
	          "worker status 0x%x", status);
	CHECK_EQ(ring_reclaim(g.r, g.pid, RING_RECLAIM_FREE), 2);
	for (uint32_t i = 0; i < 4; i++) {
		if (i == f.in_slot || i == f.out_slot)
			continue;
		CHECK_OK(ring_slot_ptr(g.r, i, 1, &next, &size));
		CHECK_EQ(next[0], 0x11);
	}
	rt_gw_close(&g);
}

static const struct th_case cases[] = {
    TH_CASE(ring_layout_helper),
    TH_CASE(ring_geometry),
    TH_CASE(ring_state_machine),
    TH_CASE(ring_attach_validates),
    TH_CASE(ring_guard_in_gateway),
    TH_CASE(ring_two_process_10k),
    TH_CASE(ring_worker_killed),
    TH_CASE(ring_guard_faults_worker),
    TH_END,
};

TH_MAIN(cases)
