/*
 * Tests of build/worker as a black box: the test plays the gateway (a ring,
 * an ipc directory and a listening socket), spawns the worker with the CLI of
 * docs/HACKING.md and holds the conversation: HELLO/READY, frames through
 * grayscale and the fixtures, bad descriptors, params, audio, events, exit
 * codes, crashes and the parent-death signal.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
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
static void
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
static void
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
static void
gw_relisten(struct gw *g)
{
	ipc_close(&g->sock);
	CHECK_OK(ipc_listen(&g->sock, g->url));
}

/* Ring of 8 slots at 320x240, an ipc dir and a listener; frames of GW_W x GW_H. */
static void
gw_setup(struct gw *g)
{
	gw_setup_size(g, 320, 240, GW_W, GW_H);
}

static void
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

static void
gw_send(struct gw *g, const struct msg *m)
{
	size_t len;

	CHECK_OK(msg_encode(m, g->sbuf, g->scap, &len));
	CHECK_OK(ipc_send_timeout(g->sock, g->sbuf, len, 5000));
}

/* Receives one message; 0, or -ETIMEDOUT. */
static int
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
static void
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
static int
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
static void
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

static void
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

static void
gw_shutdown(struct gw *g)
{
	struct msg m = { .type = MSG_SHUTDOWN };
	int st;

	m.u.shutdown.reason = msg_cstr("test done");
	gw_send(g, &m);
	st = gw_wait_exit(g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "shutdown status 0x%x", st);
}

/* One input frame: a fresh in and out slot, the input filled with colour. */
struct gw_frame {
	uint32_t in, in_gen, out, out_gen;
	struct ring_frame lay;
	struct msg m;
};

static void
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

static void
gw_frame_release(struct gw *g, struct gw_frame *f)
{
	CHECK_OK(ring_release(g->ring, f->in, f->in_gen));
	CHECK_OK(ring_release(g->ring, f->out, f->out_gen));
}

/* The output slot holds the gray version of the input slot. */
static void
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
static struct msg
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

static void
test_grayscale_conversation(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int64_t t0, total = 0;
	uint64_t proc = 0;
	enum { N = 20 };

	gw_setup(&g);
	gw_start(&g, "grayscale", "{}");
	gw_stream_start(&g, 5, "{\"prompt\":\"x\"}");
	for (uint64_t seq = 0; seq < N; seq++) {
		gw_frame_prepare(&g, &f, 5, seq);
		t0 = clock_now_ns();
		m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
		total += clock_now_ns() - t0;
		proc += m.u.result.proc_us;
		CHECK_EQ(m.u.result.status, FP_OK);
		CHECK_EQ(m.u.result.out_slot, f.out);
		CHECK_EQ(m.u.result.out_gen, f.out_gen);
		CHECK_EQ(m.u.result.width, GW_W);
		CHECK_EQ(m.u.result.height, GW_H);
		CHECK_EQ(m.u.result.format, FP_FMT_RGB24);
		CHECK_OK(ring_complete(g.ring, f.out, f.out_gen, g.pid));
		ring_sync(g.ring, f.out, RING_SYNC_FROM_PEER);
		gw_check_gray(&g, &f);
		gw_frame_release(&g, &f);
	}
	printf("    %d frames %ux%u: round trip avg %.1f us, plugin avg %.1f us\n", N,
	       GW_W, GW_H, (double)total / N / 1e3, (double)proc / N);
	/* PING -> PONG with the frame count. */
	m = (struct msg){ .type = MSG_PING };
	m.u.ping.nonce = 0xfeed;
	m.u.ping.t_ns = 1234;
	gw_send(&g, &m);
	gw_expect(&g, MSG_PONG, &m);
	CHECK_EQ(m.u.pong.nonce, 0xfeed);
	CHECK_EQ(m.u.pong.t_ns, 1234);
	CHECK_EQ(m.u.pong.frames, N);
	/* PARAMS turn the filter off: FP_PASS names the input slot as the result. */
	m = (struct msg){ .type = MSG_PARAMS };
	m.u.params.stream = 5;
	m.u.params.params = msg_cstr("{\"enabled\":false}");
	gw_send(&g, &m);
	gw_expect(&g, MSG_PARAMS_ACK, &m);
	CHECK_EQ(m.u.params_ack.stream, 5);
	CHECK_EQ(m.u.params_ack.status, 0);
	gw_frame_prepare(&g, &f, 5, N);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_PASS);
	CHECK_EQ(m.u.result.out_slot, f.in);
	CHECK_EQ(m.u.result.out_gen, f.in_gen);
	CHECK_OK(ring_complete(g.ring, m.u.result.out_slot, m.u.result.out_gen, g.pid));
	gw_frame_release(&g, &f);
	/* Params that are not a JSON object are refused without reaching the plugin. */
	m = (struct msg){ .type = MSG_PARAMS };
	m.u.params.stream = 5;
	m.u.params.params = msg_cstr("[1,2");
	gw_send(&g, &m);
	gw_expect(&g, MSG_PARAMS_ACK, &m);
	CHECK_EQ(m.u.params_ack.status, -EINVAL);
	/* A plugin without process_audio: AUDIO comes back unchanged. */
	{
		int16_t pcm[2 * 16];

		for (int i = 0; i < 32; i++)
			pcm[i] = (int16_t)(i * 77);
		m = (struct msg){ .type = MSG_AUDIO };
		m.u.audio = (struct msg_audio){ .stream = 5, .seq = 1, .pts = 10, .tb_num = 1,
			.tb_den = 48000, .sample_rate = 48000, .channels = 2,
			.format = FP_SAMPLE_S16, .nb_samples = 16 };
		m.u.audio.data.ptr = (const uint8_t *)pcm;
		m.u.audio.data.len = sizeof(pcm);
		gw_send(&g, &m);
		gw_expect(&g, MSG_AUDIO_OUT, &m);
		CHECK_EQ(m.u.audio_out.nb_samples, 16);
		CHECK_EQ(m.u.audio_out.data.len, sizeof(pcm));
		CHECK(memcmp(m.u.audio_out.data.ptr, pcm, sizeof(pcm)) == 0);
	}
	m = (struct msg){ .type = MSG_STREAM_STOP };
	m.u.stream_stop.stream = 5;
	gw_send(&g, &m);
	gw_shutdown(&g);
	CHECK_EQ(g.errors, 0);
	gw_teardown(&g);
}

static void
test_bad_descriptors_refused(void)
{
	struct gw g;
	struct gw_frame f, old;
	struct msg m;
	static const uint8_t junk[] = { 0x93, 0x01, 0x05, 0xff, 0x00 };

	gw_setup(&g);
	gw_start(&g, "grayscale", NULL);
	/* A frame before STREAM_START. */
	gw_frame_prepare(&g, &f, 9, 0);
	m = gw_frame_roundtrip(&g, &f, MSG_DROP);
	CHECK_EQ(m.u.drop.reason, -ENOTCONN);
	gw_frame_release(&g, &f);
	gw_stream_start(&g, 9, "");
	/* Good frames until a slot comes back with a newer generation. The worker
	   then saw old.in at old.in_gen: any older generation is stale. (Whether
	   a generation is the current one is the gateway's check, on RESULT.) */
	for (int i = 0; i < 32; i++) {
		gw_frame_prepare(&g, &old, 9, 1 + (uint64_t)i);
		m = gw_frame_roundtrip(&g, &old, MSG_RESULT);
		CHECK_EQ(m.u.result.status, FP_OK);
		gw_frame_release(&g, &old);
		if (old.in_gen > 1)
			break;
	}
	CHECK(old.in_gen > 1);
	struct { const char *what; int reason; } cases[] = {
		{ "slot out of range", -ERANGE }, { "out slot out of range", -ERANGE },
		{ "generation 0", -ESTALE }, { "stale generation", -ESTALE },
		{ "absurd size", -EINVAL }, { "larger than a slot", -E2BIG },
		{ "zero size", -EINVAL }, { "wrong format", -EINVAL },
		{ "unknown format", -EINVAL }, { "other stream", -ENOTCONN },
		{ "zero time base", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msg_frame *d;

		gw_frame_prepare(&g, &f, 9, 100 + i);
		d = &f.m.u.frame;
		switch (i) {
		case 0: d->in_slot = 1000; break;
		case 1: d->out_slot = UINT32_MAX; break;
		case 2: d->in_gen = 0; break;
		case 3: d->in_slot = old.in; d->in_gen = old.in_gen - 1; break;
		case 4: d->width = 100000; d->height = 100000; break;
		case 5: d->width = 4000; d->height = 4000; break;
		case 6: d->width = 0; break;
		case 7: d->format = FP_FMT_RGBA; break;
		case 8: d->format = 77; break;
		case 9: d->stream = 10; break;
		case 10: d->tb_den = 0; break;
		}
		m = gw_frame_roundtrip(&g, &f, MSG_DROP);
		CHECK_MSG(m.u.drop.reason == cases[i].reason, "%s: reason %d, expected %d",
		          cases[i].what, m.u.drop.reason, cases[i].reason);
		gw_frame_release(&g, &f);
	}
	/* Bytes that are no message: an ERROR, and the worker keeps serving. */
	CHECK_OK(ipc_send_timeout(g.sock, junk, sizeof(junk), 5000));
	m = (struct msg){ .type = MSG_PING };
	m.u.ping.nonce = 7;
	gw_send(&g, &m);
	gw_expect(&g, MSG_PONG, &m);
	CHECK_EQ(g.errors, 1);
	CHECK_EQ(g.last_error, -EPROTO);
	/* A worker-to-gateway type sent to the worker: ERROR too. */
	m = (struct msg){ .type = MSG_READY };
	gw_send(&g, &m);
	m = (struct msg){ .type = MSG_PING };
	gw_send(&g, &m);
	gw_expect(&g, MSG_PONG, &m);
	CHECK_EQ(g.errors, 2);
	/* Still serving frames correctly. */
	gw_frame_prepare(&g, &f, 9, 500);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_OK);
	gw_check_gray(&g, &f);
	gw_frame_release(&g, &f);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_badabi_exits_2(void)
{
	struct gw g;
	struct msg m;
	int st;

	gw_setup(&g);
	gw_spawn(&g, "fixture_badabi", NULL, NULL);
	/* It says why (ERROR) before exiting 2, and never says HELLO. */
	CHECK_OK(gw_recv(&g, &m, GW_WAIT_MS));
	CHECK_EQ(m.type, MSG_ERROR);
	CHECK_EQ(m.u.error.code, -EPROTO);
	printf("    %.*s\n", (int)m.u.error.message.len, m.u.error.message.ptr);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_config_errors_exit_2(void)
{
	static const char *const bad_level[] = { "--log-level", "loud", NULL };
	static const char *const bad_gpu[] = { "--gpu", "x", NULL };
	struct gw g;
	int st;

	gw_setup(&g);
	gw_spawn(&g, "/nonexistent/plugin.so", NULL, NULL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "missing plugin: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", "{not json", NULL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad config: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", "@/nonexistent/config.json", NULL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "missing config file: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", NULL, bad_level);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad level: 0x%x", st);
	gw_relisten(&g);
	gw_spawn(&g, "grayscale", NULL, bad_gpu);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad gpu: 0x%x", st);
	gw_teardown(&g);
}

static void
test_config_file_and_init_failure(void)
{
	char cfg[512], arg[520];
	struct gw g;
	struct msg m;
	FILE *f;
	int st;

	gw_setup(&g);
	/* @FILE config reaches init: init_fail makes init return -EINVAL -> exit 3. */
	snprintf(cfg, sizeof(cfg), "%s/crash.json", th_tmpdir());
	f = fopen(cfg, "w");
	CHECK(f != NULL);
	fputs("{\"init_fail\": true}\n", f);
	fclose(f);
	snprintf(arg, sizeof(arg), "@%s", cfg);
	gw_spawn(&g, "fixture_crash", arg, NULL);
	gw_expect(&g, MSG_HELLO, &m);
	gw_expect(&g, MSG_ERROR, &m);
	CHECK_EQ(m.u.error.code, -EINVAL);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status 0x%x", st);
	/* abort() in init: a crash (signal), after HELLO. */
	gw_relisten(&g);
	gw_spawn(&g, "fixture_crash", "{\"crash_in\":\"init\"}", NULL);
	gw_expect(&g, MSG_HELLO, &m);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_crash_fixture_dies_by_signal(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	pid_t pid;
	int st;

	gw_setup(&g);
	gw_start(&g, "fixture_crash", "{\"crash_after\":2}");
	gw_stream_start(&g, 1, "{}");
	for (int i = 0; i < 2; i++) {
		gw_frame_prepare(&g, &f, 1, (uint64_t)i);
		m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
		CHECK_EQ(m.u.result.status, FP_PASS);
		gw_frame_release(&g, &f);
	}
	gw_frame_prepare(&g, &f, 1, 2);
	gw_send(&g, &f.m);
	pid = g.pid;
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status 0x%x", st);
	/* The gateway takes back the two slots of the frame in flight. */
	CHECK_EQ(ring_reclaim(g.ring, pid, RING_RECLAIM_FREE), 2);
	gw_teardown(&g);
}

static void
test_crash_on_params_and_overflow(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	pid_t pid;
	int st;

	gw_setup(&g);
	gw_start(&g, "fixture_crash", "{}");
	gw_stream_start(&g, 1, "{}");
	m = (struct msg){ .type = MSG_PARAMS };
	m.u.params.stream = 1;
	m.u.params.params = msg_cstr("{\"crash\":true}");
	gw_send(&g, &m);
	gw_expect(&g, MSG_PARAMS_ACK, &m);
	CHECK_EQ(m.u.params_ack.status, 0);
	gw_frame_prepare(&g, &f, 1, 0);
	gw_send(&g, &f.m);
	pid = g.pid;
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "params crash: 0x%x", st);
	CHECK_EQ(ring_reclaim(g.ring, pid, RING_RECLAIM_FREE), 2);
	/* A write past the output slot hits the ring's guard page: SIGSEGV, no corruption. */
	gw_relisten(&g);
	gw_start(&g, "fixture_crash", "{\"overflow\":true}");
	gw_stream_start(&g, 1, "{}");
	{
		struct gw_frame f2;

		gw_frame_prepare(&g, &f2, 1, 1);
		gw_send(&g, &f2.m);
		st = gw_wait_exit(&g);
		CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "overflow: 0x%x", st);
	}
	gw_teardown(&g);
}

/* The plugin writes one byte at out->plane[0] + (target - out slot): SIGSEGV. */
static void
gw_stray_write(struct gw *g, bool into_input)
{
	char params[96];
	struct gw_frame f;
	uint32_t x = 0, xgen = 0;
	uint8_t *xbase, *obase;
	uint64_t size;
	struct msg m;
	int st;

	gw_start(g, "fixture_crash", "{}");
	gw_stream_start(g, 1, "{}");
	gw_frame_prepare(g, &f, 1, 0);
	CHECK_EQ(f.lay.offset[0], 0);
	if (into_input) {
		CHECK_OK(ring_slot_ptr(g->ring, f.in, f.in_gen, &xbase, &size));
	} else {
		/* Another stream's frame, say. */
		CHECK_OK(ring_acquire(g->ring, &x, &xgen));
		CHECK_OK(ring_slot_ptr(g->ring, x, xgen, &xbase, &size));
		xbase[0] = 0x11;
	}
	CHECK_OK(ring_slot_ptr(g->ring, f.out, f.out_gen, &obase, &size));
	snprintf(params, sizeof(params), "{\"write_at\":%lld}", (long long)(xbase - obase));
	m = (struct msg){ .type = MSG_PARAMS };
	m.u.params.stream = 1;
	m.u.params.params = msg_cstr(params);
	gw_send(g, &m);
	gw_expect(g, MSG_PARAMS_ACK, &m);
	uint8_t before = xbase[0];
	gw_send(g, &f.m);
	st = gw_wait_exit(g);
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "status 0x%x", st);
	CHECK_EQ(xbase[0], before); /* nothing reached the other slot */
	if (!into_input)
		CHECK_OK(ring_release(g->ring, x, xgen));
}

static void
test_stray_writes_into_other_slots_fault(void)
{
	struct gw g;

	gw_setup(&g);
	setenv("CT_WORKER_FENCE", "1", 1);
	gw_stray_write(&g, false);
	gw_relisten(&g);
	gw_stray_write(&g, true);
	gw_teardown(&g);
}

static void
test_plugin_error_streak_exits(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int st;

	gw_setup(&g);
	/* An output larger than the slot's maximum: refused, counted as a plugin error. */
	gw_start(&g, "fixture_slow", "{\"out_width\":4000,\"out_height\":10}");
	gw_stream_start(&g, 1, "{}");
	for (int i = 0; i < 5; i++) {
		gw_frame_prepare(&g, &f, 1, (uint64_t)i);
		m = gw_frame_roundtrip(&g, &f, MSG_DROP);
		CHECK_EQ(m.u.drop.reason, -ERANGE);
		gw_frame_release(&g, &f);
	}
	gw_expect(&g, MSG_ERROR, &m); /* "failed 5 times in a row" */
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 4, "status 0x%x", st);
	/* A changed pixel format is refused too. */
	gw_relisten(&g);
	gw_start(&g, "fixture_slow", "{\"out_format\":1}");
	gw_stream_start(&g, 1, "{}");
	gw_frame_prepare(&g, &f, 1, 0);
	m = gw_frame_roundtrip(&g, &f, MSG_DROP);
	CHECK_EQ(m.u.drop.reason, -EINVAL);
	gw_frame_release(&g, &f);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_out_size_change_repacked(void)
{
	struct gw g;
	struct gw_frame f;
	struct ring_frame lay;
	struct msg m;
	uint8_t *in, *out;
	uint64_t size;

	gw_setup(&g);
	/* 40x30 out of a 64x48 input: rows written at the input's stride, moved
	   by the worker into the canonical 40x30 layout. */
	gw_start(&g, "fixture_slow", "{\"out_width\":40,\"out_height\":30}");
	gw_stream_start(&g, 1, "{}");
	gw_frame_prepare(&g, &f, 1, 0);
	CHECK_OK(ring_slot_ptr(g.ring, f.out, f.out_gen, &out, &size));
	CHECK_OK(ring_slot_ptr(g.ring, f.in, f.in_gen, &in, &size));
	/* What the plugin "wrote": the input copied into the output slot. */
	memcpy(out, in, f.lay.bytes);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_OK);
	CHECK_EQ(m.u.result.width, 40);
	CHECK_EQ(m.u.result.height, 30);
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 40, 30, size, &lay));
	for (uint32_t y = 0; y < 30; y++)
		CHECK(memcmp(out + lay.offset[0] + (size_t)y * lay.stride[0],
		             in + f.lay.offset[0] + (size_t)y * f.lay.stride[0], 40 * 3) == 0);
	gw_frame_release(&g, &f);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_events_data_audio(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	float pcm[2 * 64];

	gw_setup(&g);
	gw_start(&g, "fixture_slow", "{\"emit\":true,\"ms_per_frame\":20}");
	gw_stream_start(&g, 3, "{}");
	gw_frame_prepare(&g, &f, 3, 42);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_PASS);
	CHECK(m.u.result.proc_us >= 20000); /* it slept 20 ms inside the call */
	printf("    slow fixture proc_us=%u\n", m.u.result.proc_us);
	CHECK_EQ(g.events, 2); /* stream start + the frame */
	CHECK_STR(g.last_event, "{\"type\":\"fixture_frame\",\"seq\":42}");
	CHECK_EQ(g.data, 1);
	CHECK_STR(g.last_data, "frame 42");
	gw_frame_release(&g, &f);
	/* Planar float audio through process_audio (a copy). */
	for (int i = 0; i < 128; i++)
		pcm[i] = (float)i / 128.0f;
	m = (struct msg){ .type = MSG_AUDIO };
	m.u.audio = (struct msg_audio){ .stream = 3, .seq = 9, .pts = 480, .tb_num = 1,
		.tb_den = 48000, .sample_rate = 48000, .channels = 2,
		.format = FP_SAMPLE_FLTP, .nb_samples = 64 };
	m.u.audio.data.ptr = (const uint8_t *)pcm;
	m.u.audio.data.len = sizeof(pcm);
	gw_send(&g, &m);
	gw_expect(&g, MSG_AUDIO_OUT, &m);
	CHECK_EQ(m.u.audio_out.seq, 9);
	CHECK_EQ(m.u.audio_out.pts, 480);
	CHECK_EQ(m.u.audio_out.channels, 2);
	CHECK_EQ(m.u.audio_out.format, FP_SAMPLE_FLTP);
	CHECK_EQ(m.u.audio_out.nb_samples, 64);
	CHECK_EQ(m.u.audio_out.data.len, sizeof(pcm));
	CHECK(memcmp(m.u.audio_out.data.ptr, pcm, sizeof(pcm)) == 0);
	/* A size that does not match the samples: ERROR, no AUDIO_OUT. */
	m = (struct msg){ .type = MSG_AUDIO };
	m.u.audio = (struct msg_audio){ .stream = 3, .seq = 10, .tb_num = 1, .tb_den = 48000,
		.sample_rate = 48000, .channels = 2, .format = FP_SAMPLE_FLTP, .nb_samples = 65 };
	m.u.audio.data.ptr = (const uint8_t *)pcm;
	m.u.audio.data.len = sizeof(pcm);
	gw_send(&g, &m);
	gw_expect(&g, MSG_ERROR, &m);
	CHECK_EQ(m.u.error.code, -EINVAL);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_hang_fixture_stops_answering(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int st;

	gw_setup(&g);
	gw_start(&g, "fixture_hang", "{\"hang_after\":1}");
	gw_stream_start(&g, 1, "{}");
	gw_frame_prepare(&g, &f, 1, 0);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	gw_frame_release(&g, &f);
	gw_frame_prepare(&g, &f, 1, 1);
	gw_send(&g, &f.m);
	m = (struct msg){ .type = MSG_PING };
	gw_send(&g, &m);
	CHECK_EQ(gw_recv(&g, &m, 500), -ETIMEDOUT); /* no RESULT, no PONG */
	kill(g.pid, SIGKILL);
	st = gw_wait_exit(&g);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* Hanging in update_params. */
	gw_relisten(&g);
	gw_start(&g, "fixture_hang", "{\"hang_after\":-1}");
	m = (struct msg){ .type = MSG_PARAMS };
	m.u.params.params = msg_cstr("{\"hang_params\":true}");
	gw_send(&g, &m);
	CHECK_EQ(gw_recv(&g, &m, 500), -ETIMEDOUT);
	gw_teardown(&g);
}

static void
test_sigterm_exits_0(void)
{
	struct gw g;
	int st;

	gw_setup(&g);
	gw_start(&g, "passthrough", NULL);
	gw_stream_start(&g, 1, "{}");
	kill(g.pid, SIGTERM);
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_dies_with_parent(void)
{
	int pfd[2], st;
	pid_t mid, worker = 0;
	struct gw g;
	struct msg m;

	gw_setup(&g);
	/* We adopt orphans, so the worker can be reaped here when its parent dies. */
	CHECK_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	CHECK_OK(pipe(pfd));
	mid = fork();
	CHECK(mid >= 0);
	if (mid == 0) {
		gw_spawn(&g, "passthrough", NULL, NULL);
		(void)!write(pfd[1], &g.pid, sizeof(g.pid));
		for (;;)
			pause();
	}
	CHECK_EQ(read(pfd[0], &worker, sizeof(worker)), sizeof(worker));
	g.pid = worker;
	gw_expect(&g, MSG_HELLO, &m);
	gw_expect(&g, MSG_READY, &m);
	kill(mid, SIGKILL);
	CHECK(waitpid(mid, &st, 0) == mid);
	st = gw_wait_exit(&g); /* the adopted worker */
	CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x", st);
	gw_relisten(&g);
	close(pfd[0]);
	close(pfd[1]);
	/* A parent already gone at start (CT_PARENT_PID names another pid): exit at once. */
	setenv("CT_PARENT_PID", "1", 1);
	gw_spawn(&g, "passthrough", NULL, NULL);
	unsetenv("CT_PARENT_PID");
	st = gw_wait_exit(&g);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x", st);
	gw_teardown(&g);
}

static void
test_leak_fixture_hits_mem_limit(void)
{
	static const char *const limit[] = { "--mem-limit-mb", "300", NULL };
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int st, frames = 0;

#if defined(__SANITIZE_ADDRESS__)
	printf("    skipped: RLIMIT_AS cannot be combined with AddressSanitizer\n");
	return;
#endif
	gw_setup(&g);
	gw_spawn(&g, "fixture_leak", "{\"mb_per_frame\":32}", limit);
	gw_expect(&g, MSG_HELLO, &m);
	gw_expect(&g, MSG_READY, &m);
	gw_stream_start(&g, 1, "{}");
	for (;;) {
		gw_frame_prepare(&g, &f, 1, (uint64_t)frames);
		gw_send(&g, &f.m);
		if (gw_recv(&g, &m, 2000) < 0)
			break;
		if (m.type == MSG_ERROR)
			break;
		gw_frame_release(&g, &f);
		frames++;
		CHECK_MSG(frames < 100, "no limit hit after %d frames", frames);
	}
	st = gw_wait_exit(&g);
	CHECK_MSG(!(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 2)),
	          "status 0x%x", st);
	printf("    leak fixture stopped after %d frames (~%d MiB), status 0x%x\n", frames,
	       frames * 32, st);
	gw_teardown(&g);
}

static int
gw_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Round trips of 512x512 RGB24 frames: printed, never asserted. */
static void
test_timing_512(void)
{
	static const char *const plugins[] = { "passthrough", "grayscale", "grayscale" };
	enum { N = 200 };
	static int64_t rt[N], pu[N];

	for (size_t k = 0; k < 3; k++) {
		if (k == 2)
			setenv("CT_WORKER_FENCE", "1", 1); /* the slot fence's cost */
		struct gw g;
		struct gw_frame f;
		struct msg m;

		gw_setup_size(&g, 512, 512, 512, 512);
		gw_start(&g, plugins[k], NULL);
		gw_stream_start(&g, 1, "{}");
		for (int i = 0; i < N; i++) {
			int64_t t0;

			gw_frame_prepare(&g, &f, 1, (uint64_t)i);
			t0 = clock_now_ns();
			m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
			rt[i] = clock_now_ns() - t0;
			pu[i] = m.u.result.proc_us;
			gw_frame_release(&g, &f);
		}
		qsort(rt, N, sizeof(rt[0]), gw_cmp_i64);
		qsort(pu, N, sizeof(pu[0]), gw_cmp_i64);
		printf("    %s%s 512x512 RGB24, %d frames: round trip p50 %.0f us p99 %.0f us; "
		       "in worker p50 %lld us p99 %lld us\n", plugins[k],
		       k == 2 ? " (fence on)" : "", N, rt[N / 2] / 1e3,
		       rt[N * 99 / 100] / 1e3, (long long)pu[N / 2], (long long)pu[N * 99 / 100]);
		gw_shutdown(&g);
		gw_teardown(&g);
	}
}

static const struct th_case cases[] = {
	TH_CASE(test_grayscale_conversation),
	TH_CASE(test_bad_descriptors_refused),
	TH_CASE(test_badabi_exits_2),
	TH_CASE(test_config_errors_exit_2),
	TH_CASE(test_config_file_and_init_failure),
	TH_CASE(test_crash_fixture_dies_by_signal),
	TH_CASE(test_crash_on_params_and_overflow),
	TH_CASE(test_stray_writes_into_other_slots_fault),
	TH_CASE(test_plugin_error_streak_exits),
	TH_CASE(test_out_size_change_repacked),
	TH_CASE(test_events_data_audio),
	TH_CASE(test_hang_fixture_stops_answering),
	TH_CASE(test_sigterm_exits_0),
	TH_CASE(test_dies_with_parent),
	TH_CASE(test_leak_fixture_hits_mem_limit),
	TH_CASE(test_timing_512),
	TH_END
};

TH_MAIN(cases)
