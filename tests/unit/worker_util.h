/*
 * The test's gateway side of build/worker (worker_test.c,
 * worker_fault_test.c): a ring, an ipc directory and a listening socket, the
 * worker spawned with the CLI of docs/HACKING.md, messages and frames sent
 * and awaited. Header-only.
 */
#ifndef CT_WORKER_UTIL_H
#define CT_WORKER_UTIL_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"
#include "ipc.h"
#include "msg.h"
#include "ring.h"
#include "frame_processor.h"

#define GW_W 64
#define GW_H 48
#define GW_WAIT_MS 20000 /* generous: sanitizer builds start slowly */

/* The test's gateway side of one worker. */
struct gw {
	ipc_dir *dir;
	char url[IPC_URL_MAX];
	ipc *sock;
	ring *ring;
	pid_t pid;
	uint8_t *rbuf;       /* receive buffer; decoded strings point into it */
	size_t rcap;
	uint8_t *sbuf;
	size_t scap;
	uint32_t fw, fh;     /* frame size the helpers send (GW_W x GW_H) */
	unsigned events, data, errors; /* seen while waiting for something else */
	int32_t last_error;
	char last_event[256];
	char last_data[256];
};

/* Exec's the worker with its CLI plus extra args (NULL-terminated). */
static inline void
gw_spawn(struct gw *g, const char *plugin, const char *config, const char *const *extra)
{
	char path[512], exe[512], fdarg[16];
	const char *argv[32];
	int n = 0, fd;

	snprintf(exe, sizeof(exe), "%s/worker", th_build_dir());
	if (plugin[0] == '/')
		snprintf(path, sizeof(path), "%s", plugin);
	else
		snprintf(path, sizeof(path), "%s/plugins/%s.so", th_build_dir(), plugin);
	CHECK_OK(ring_inherit_fd(g->ring, &fd));
	snprintf(fdarg, sizeof(fdarg), "%d", fd);
	argv[n++] = exe;
	argv[n++] = "--id";
	argv[n++] = "1";
	argv[n++] = "--url";
	argv[n++] = g->url;
	argv[n++] = "--ring-fd";
	argv[n++] = fdarg;
	argv[n++] = "--processor";
	argv[n++] = path;
	argv[n++] = "--log-level";
	argv[n++] = "warn";
	if (config) {
		argv[n++] = "--processor-config";
		argv[n++] = config;
	}
	for (; extra && *extra && n < 30; extra++)
		argv[n++] = *extra;
	argv[n] = NULL;
	g->pid = fork();
	CHECK(g->pid >= 0);
	if (g->pid == 0) {
		/* Crashes die by their signal under ASan too, as in production. */
		setenv("ASAN_OPTIONS", "detect_leaks=1:handle_segv=0:handle_abort=0:"
		       "detect_stack_use_after_return=0", 1);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(fd);
}

/* A ring of 8 slots at max_w x max_h, an ipc dir and a listener; no worker yet. */
static inline void
gw_setup_size(struct gw *g, uint32_t max_w, uint32_t max_h, uint32_t fw, uint32_t fh)
{
	struct ring_params rp = { .slot_count = 8, .max_width = max_w, .max_height = max_h };

	memset(g, 0, sizeof(*g));
	g->fw = fw;
	g->fh = fh;
	g->pid = -1;
	CHECK_OK(ipc_dir_create(&g->dir, NULL));
	CHECK_OK(ipc_dir_url(g->dir, "w1.ipc", g->url, sizeof(g->url)));
	CHECK_OK(ipc_listen(&g->sock, g->url));
	CHECK_OK(ring_create(&g->ring, &rp));
	g->rcap = MSG_MAX_BIN + 65536;
	g->rbuf = malloc(g->rcap);
	g->scap = MSG_MAX_BIN + 65536;
	g->sbuf = malloc(g->scap);
	CHECK(g->rbuf && g->sbuf);
}

/* A fresh listener on the same URL, as the gateway has one per worker process. */
static inline void
gw_relisten(struct gw *g)
{
	ipc_close(&g->sock);
	CHECK_OK(ipc_listen(&g->sock, g->url));
}

/* Ring of 8 slots at 320x240, an ipc dir and a listener; frames of GW_W x GW_H. */
static inline void
gw_setup(struct gw *g)
{
	gw_setup_size(g, 320, 240, GW_W, GW_H);
}

static inline void
gw_teardown(struct gw *g)
{
	if (g->pid > 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, NULL, 0);
	}
	ipc_close(&g->sock);
	ipc_dir_destroy(&g->dir);
	ring_destroy(&g->ring);
	free(g->rbuf);
	free(g->sbuf);
}

static inline void
gw_send(struct gw *g, const struct msg *m)
{
	size_t len;

	CHECK_OK(msg_encode(m, g->sbuf, g->scap, &len));
	CHECK_OK(ipc_send_timeout(g->sock, g->sbuf, len, 5000));
}

/* Receives one message; 0, or -ETIMEDOUT. */
static inline int
gw_recv(struct gw *g, struct msg *m, int timeout_ms)
{
	size_t len;
	int rc = ipc_recv(g->sock, g->rbuf, g->rcap, &len, timeout_ms);

	if (rc < 0)
		return rc;
	CHECK_OK(msg_decode(g->rbuf, len, m));
	CHECK_MSG(msg_is_from_worker(m->type), "worker sent %s", msg_type_name(m->type));
	return 0;
}

/* Waits for a message of type t, counting EVENT/DATA/ERROR seen on the way. */
static inline void
gw_expect(struct gw *g, enum msg_type t, struct msg *m)
{
	int64_t end = clock_now_ms() + GW_WAIT_MS;

	for (;;) {
		int left = (int)(end - clock_now_ms());

		CHECK_MSG(left > 0, "no %s within %d ms", msg_type_name(t), GW_WAIT_MS);
		CHECK_OK(gw_recv(g, m, left));
		if (m->type == t)
			return;
		if (m->type == MSG_EVENT) {
			g->events++;
			snprintf(g->last_event, sizeof(g->last_event), "%.*s",
			         (int)m->u.event.json.len, m->u.event.json.ptr);
		} else if (m->type == MSG_DATA) {
			g->data++;
			snprintf(g->last_data, sizeof(g->last_data), "%.*s",
			         (int)m->u.data.line.len, m->u.data.line.ptr);
		} else if (m->type == MSG_ERROR) {
			g->errors++;
			g->last_error = m->u.error.code;
			printf("    worker ERROR %d: %.*s\n", m->u.error.code,
			       (int)m->u.error.message.len, m->u.error.message.ptr);
		} else {
			th_fail(__FILE__, __LINE__, "expected %s, got %s", msg_type_name(t),
			        msg_type_name(m->type));
		}
	}
}

/* Waits for the worker to end; returns its wait status. */
static inline int
gw_wait_exit(struct gw *g)
{
	int64_t end = clock_now_ms() + GW_WAIT_MS;
	int status = 0;

	for (;;) {
		pid_t r = waitpid(g->pid, &status, WNOHANG);

		if (r == g->pid)
			break;
		CHECK_MSG(clock_now_ms() < end, "worker did not exit");
		usleep(5000);
	}
	g->pid = -1;
	return status;
}

/* Spawns and waits for HELLO and READY; checks HELLO against the plugin. */
static inline void
gw_start(struct gw *g, const char *plugin, const char *config)
{
	struct msg m;

	gw_spawn(g, plugin, config, NULL);
	gw_expect(g, MSG_HELLO, &m);
	CHECK_EQ(m.u.hello.worker_id, 1);
	CHECK_EQ(m.u.hello.pid, g->pid);
	CHECK_EQ(m.u.hello.abi_version >> 16, FP_ABI_MAJOR);
	CHECK_EQ(m.u.hello.plugin_name.len, strlen(plugin));
	CHECK(memcmp(m.u.hello.plugin_name.ptr, plugin, strlen(plugin)) == 0);
	CHECK_EQ(m.u.hello.video_format, FP_FMT_RGB24);
	CHECK_EQ(m.u.hello.video_mem, FP_MEM_HOST);
	gw_expect(g, MSG_READY, &m);
	CHECK_EQ(m.u.ready.worker_id, 1);
}

static inline void
gw_stream_start(struct gw *g, uint32_t stream, const char *params)
{
	struct msg m = { .type = MSG_STREAM_START };

	m.u.stream_start.stream = stream;
	m.u.stream_start.request_id = msg_cstr("req-1");
	m.u.stream_start.params = msg_cstr(params);
	m.u.stream_start.width = g->fw;
	m.u.stream_start.height = g->fh;
	gw_send(g, &m);
}

static inline void
gw_shutdown(struct gw *g)
{
	struct msg m = { .type = MSG_SHUTDOWN };
	int st;

	m.u.shutdown.reason = msg_cstr("test done");
	gw_send(g, &m);
	st = gw_wait_exit(g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "shutdown status 0x%x", st);
}

/* Sends PARAMS (a JSON text) for stream. */
static inline void
gw_params(struct gw *g, uint32_t stream, const char *params)
{
	struct msg m = { .type = MSG_PARAMS };

	m.u.params.stream = stream;
	m.u.params.params = msg_cstr(params);
	gw_send(g, &m);
}

/* One input frame: a fresh in and out slot, the input filled with colour. */
struct gw_frame {
	uint32_t in, in_gen, out, out_gen;
	struct ring_frame lay;
	struct msg m;
};

static inline void
gw_frame_prepare(struct gw *g, struct gw_frame *f, uint32_t stream, uint64_t seq)
{
	uint8_t *base;
	uint64_t size;

	CHECK_OK(ring_acquire(g->ring, &f->in, &f->in_gen));
	CHECK_OK(ring_acquire(g->ring, &f->out, &f->out_gen));
	CHECK_OK(ring_slot_ptr(g->ring, f->in, f->in_gen, &base, &size));
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, g->fw, g->fh, size, &f->lay));
	for (uint32_t y = 0; y < g->fh; y++)
		for (uint32_t x = 0; x < g->fw; x++) {
			uint8_t *p = base + f->lay.offset[0] + (size_t)y * f->lay.stride[0] + x * 3;

			p[0] = (uint8_t)(x * 4 + seq);
			p[1] = (uint8_t)(255 - y * 5);
			p[2] = (uint8_t)(x * y);
		}
	ring_sync(g->ring, f->in, RING_SYNC_TO_PEER);
	CHECK_OK(ring_send(g->ring, f->in, f->in_gen, 1, g->pid));
	CHECK_OK(ring_send(g->ring, f->out, f->out_gen, 1, g->pid));
	memset(&f->m, 0, sizeof(f->m));
	f->m.type = MSG_FRAME;
	f->m.u.frame = (struct msg_frame){
		.stream = stream, .seq = seq, .pts = (int64_t)seq * 3000, .tb_num = 1,
		.tb_den = 90000, .width = g->fw, .height = g->fh, .format = FP_FMT_RGB24,
		.in_slot = f->in, .in_gen = f->in_gen, .out_slot = f->out,
		.out_gen = f->out_gen, .t_ns = clock_now_ns(),
	};
}

static inline void
gw_frame_release(struct gw *g, struct gw_frame *f)
{
	CHECK_OK(ring_release(g->ring, f->in, f->in_gen));
	CHECK_OK(ring_release(g->ring, f->out, f->out_gen));
}

/* The output slot holds the gray version of the input slot. */
static inline void
gw_check_gray(struct gw *g, const struct gw_frame *f)
{
	uint8_t *in, *out;
	uint64_t size;

	CHECK_OK(ring_slot_ptr(g->ring, f->in, f->in_gen, &in, &size));
	CHECK_OK(ring_slot_ptr(g->ring, f->out, f->out_gen, &out, &size));
	for (uint32_t y = 0; y < g->fh; y++)
		for (uint32_t x = 0; x < g->fw; x++) {
			size_t o = f->lay.offset[0] + (size_t)y * f->lay.stride[0] + x * 3;
			const uint8_t *s = in + o, *d = out + o;
			uint8_t l = (uint8_t)((77u * s[0] + 150u * s[1] + 29u * s[2]) >> 8);

			CHECK_MSG(d[0] == l && d[1] == l && d[2] == l,
			          "pixel %u,%u: %u %u %u, luma %u", x, y, d[0], d[1], d[2], l);
		}
}

/* Sends a frame and expects RESULT (status, slot) or DROP (reason). */
static inline struct msg
gw_frame_roundtrip(struct gw *g, struct gw_frame *f, enum msg_type want)
{
	struct msg m;

	gw_send(g, &f->m);
	gw_expect(g, want, &m);
	if (want == MSG_RESULT) {
		CHECK_EQ(m.u.result.stream, f->m.u.frame.stream);
		CHECK_EQ(m.u.result.seq, f->m.u.frame.seq);
		CHECK_EQ(m.u.result.pts, f->m.u.frame.pts);
	} else {
		CHECK_EQ(m.u.drop.seq, f->m.u.frame.seq);
		CHECK_EQ(m.u.drop.in_slot, f->m.u.frame.in_slot);
		CHECK_EQ(m.u.drop.in_gen, f->m.u.frame.in_gen);
	}
	return m;
}

#endif
