/*
 * Tests of worker/host.c with the real plugins and fixtures of the build:
 * loading, every refusal of the ABI checks, the fp_host services, and that
 * grayscale's output is gray. Each case loads at most one plugin (one host
 * per process) and runs in its own forked child.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "msg.h"
#include "worker/host.h"

static const char *
plugin_path(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/plugins/%s.so", th_build_dir(), name);
	return path;
}

/* Loads build/plugins/NAME.so, checks its name, returns the host. */
static host *
plugin_load_ok(const char *name)
{
	char err[HOST_ERR_LEN] = "";
	host *h = NULL;
	int rc = host_load(&h, plugin_path(name), err, sizeof(err));

	CHECK_MSG(rc == 0, "load %s: %d %s", name, rc, err);
	CHECK(h != NULL);
	CHECK_STR(host_plugin(h)->name, name);
	return h;
}

/* A frame view over buf: w x h, format fmt, tightly packed single plane. */
static struct fp_video_frame
plugin_frame(uint8_t *buf, uint32_t w, uint32_t h, uint32_t fmt)
{
	struct fp_video_frame f = {
		.struct_size = sizeof(f), .width = w, .height = h, .format = fmt,
		.mem = FP_MEM_HOST, .device = -1, .tb_num = 1, .tb_den = 90000,
		.max_width = w, .max_height = h,
	};

	f.plane[0] = buf;
	f.stride[0] = fp_plane_row_bytes(fmt, w, 0);
	return f;
}

static void
test_load_passthrough(void)
{
	host *h = plugin_load_ok("passthrough");
	uint8_t px[4 * 4 * 3] = { 1, 2, 3 }, out[sizeof(px)] = { 0 };
	struct fp_video_frame in = plugin_frame(px, 4, 4, FP_FMT_RGB24);
	struct fp_video_frame o = plugin_frame(out, 4, 4, FP_FMT_RGB24);

	CHECK_EQ(host_plugin(h)->abi_version >> 16, FP_ABI_MAJOR);
	CHECK_EQ(host_plugin(h)->wants.video_format, FP_FMT_RGB24);
	CHECK_EQ(host_plugin(h)->wants.video_mem, FP_MEM_HOST);
	CHECK_EQ(host_caps(h), 0);
	CHECK_OK(host_init(h, NULL));
	CHECK_EQ(host_plugin(h)->process_video(host_self(h), &in, &o), FP_PASS);
	host_destroy(&h);
	CHECK(h == NULL);
	host_destroy(&h);
}

/* Fills an RGB(A) image with a colourful pattern (no pixel gray). */
static void
plugin_fill(uint8_t *buf, uint32_t w, uint32_t h, uint32_t bpp)
{
	for (uint32_t y = 0; y < h; y++)
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *p = buf + ((size_t)y * w + x) * bpp;

			p[0] = (uint8_t)(x * 7 + 10);
			p[1] = (uint8_t)(y * 13 + 100);
			p[2] = (uint8_t)(x * y + 3);
			if (p[0] == p[1])
				p[1] ^= 0x40;
			if (bpp == 4)
				p[3] = (uint8_t)(x + y);
		}
}

/* Every output pixel gray and equal to the BT.601 luma of its input. */
static void
plugin_check_gray(const uint8_t *in, const uint8_t *out, uint32_t w, uint32_t h,
                  uint32_t bpp)
{
	for (size_t i = 0; i < (size_t)w * h; i++) {
		const uint8_t *s = in + i * bpp, *d = out + i * bpp;
		uint8_t l = (uint8_t)((77u * s[0] + 150u * s[1] + 29u * s[2]) >> 8);

		CHECK_MSG(d[0] == d[1] && d[1] == d[2], "pixel %zu not gray: %u %u %u",
		          i, d[0], d[1], d[2]);
		CHECK_MSG(d[0] == l, "pixel %zu luma %u, expected %u", i, d[0], l);
		if (bpp == 4)
			CHECK_EQ(d[3], s[3]);
	}
}

static void
test_grayscale_output_is_gray(void)
{
	enum { W = 64, H = 48 };
	static uint8_t in[W * H * 4], out[W * H * 4], copy[W * H * 4];
	host *h = plugin_load_ok("grayscale");
	const struct fp_plugin *p = host_plugin(h);
	struct fp_video_frame fi, fo;
	size_t diff = 0;

	CHECK_EQ(host_caps(h), MSG_CAP_PARAMS);
	CHECK_OK(host_init(h, "{}"));
	/* RGB24 into a separate output. */
	plugin_fill(in, W, H, 3);
	fi = plugin_frame(in, W, H, FP_FMT_RGB24);
	fo = plugin_frame(out, W, H, FP_FMT_RGB24);
	CHECK_EQ(p->process_video(host_self(h), &fi, &fo), FP_OK);
	CHECK_EQ(fo.width, W);
	CHECK_EQ(fo.height, H);
	plugin_check_gray(in, out, W, H, 3);
	for (size_t i = 0; i < (size_t)W * H * 3; i++)
		diff += in[i] != out[i];
	CHECK(diff > (size_t)W * H); /* the input was colourful: visibly changed */
	/* RGBA in place: alpha kept. */
	plugin_fill(in, W, H, 4);
	memcpy(copy, in, sizeof(in));
	fi = plugin_frame(in, W, H, FP_FMT_RGBA);
	fo = plugin_frame(in, W, H, FP_FMT_RGBA);
	CHECK_EQ(p->process_video(host_self(h), &fi, &fo), FP_OK);
	plugin_check_gray(copy, in, W, H, 4);
	/* Params turn it off and on. */
	CHECK_OK(p->update_params(host_self(h), "{\"enabled\":false}", 17));
	CHECK_EQ(p->process_video(host_self(h), &fi, &fo), FP_PASS);
	CHECK_OK(p->update_params(host_self(h), "{\"enabled\": true}", 17));
	CHECK_EQ(p->process_video(host_self(h), &fi, &fo), FP_OK);
	host_destroy(&h);
}

static void
test_load_fixtures(void)
{
	static const struct { const char *name; uint32_t caps; } fx[] = {
		{ "fixture_crash", MSG_CAP_PARAMS },
		{ "fixture_hang", MSG_CAP_PARAMS },
		{ "fixture_slow", MSG_CAP_AUDIO | MSG_CAP_STREAM_START | MSG_CAP_STREAM_STOP },
		{ "fixture_leak", 0 },
	};

	for (size_t i = 0; i < sizeof(fx) / sizeof(fx[0]); i++) {
		host *h = plugin_load_ok(fx[i].name);

		CHECK_EQ(host_caps(h), fx[i].caps);
		CHECK_OK(host_init(h, "{}"));
		host_destroy(&h);
	}
}

static void
test_badabi_refused(void)
{
	char err[HOST_ERR_LEN] = "";
	host *h = NULL;

	CHECK_EQ(host_load(&h, plugin_path("fixture_badabi"), err, sizeof(err)), -EPROTO);
	CHECK(h == NULL);
	CHECK_MSG(strstr(err, "major") != NULL, "err: %s", err);
	printf("    refusal: %s\n", err);
}

static void
test_missing_file_refused(void)
{
	char err[HOST_ERR_LEN] = "";
	host *h = NULL;

	CHECK_EQ(host_load(&h, "/nonexistent/dir/none.so", err, sizeof(err)), -ENOENT);
	CHECK(h == NULL);
	CHECK(strstr(err, "none.so") != NULL);
	CHECK_EQ(host_load(&h, "", err, sizeof(err)), -ENOENT);
}

static void
test_missing_symbol_refused(void)
{
	char err[HOST_ERR_LEN] = "", path[512];
	host *h = NULL;
	FILE *f;

	/* A real shared library that is no plugin. */
	CHECK_EQ(host_load(&h, "libm.so.6", err, sizeof(err)), -ENOEXEC);
	CHECK_MSG(strstr(err, FP_ENTRY_SYMBOL) != NULL, "err: %s", err);
	/* A file that is not a shared library at all. */
	snprintf(path, sizeof(path), "%s/junk.so", th_tmpdir());
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("not an ELF file\n", f);
	fclose(f);
	CHECK_EQ(host_load(&h, path, err, sizeof(err)), -ENOEXEC);
	CHECK(h == NULL);
}

static int
plugin_dummy_init(const struct fp_host *host, const char *cfg, void **self)
{
	(void)host;
	(void)cfg;
	*self = NULL;
	return 0;
}

static int
plugin_dummy_video(void *self, const struct fp_video_frame *in, struct fp_video_frame *out)
{
	(void)self;
	(void)in;
	(void)out;
	return FP_PASS;
}

static void
test_table_checks(void)
{
	struct {
		struct fp_plugin t;
		void *future[4]; /* members a newer minor version appended */
	} big;
	const struct fp_plugin good = {
		FP_PLUGIN_HEADER("t", "1"),
		.init = plugin_dummy_init,
		.process_video = plugin_dummy_video,
	};
	struct fp_plugin t, out;
	char err[HOST_ERR_LEN];

	CHECK_OK(host_check_table(&good, &out, err, sizeof(err)));
	CHECK(out.init == plugin_dummy_init);
	CHECK_EQ(host_check_table(NULL, &out, err, sizeof(err)), -EINVAL);
	t = good;
	t.init = NULL;
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "init") != NULL);
	t = good;
	t.process_video = NULL;
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "process_video") != NULL);
	t = good;
	t.abi_version = (FP_ABI_MAJOR + 1u) << 16;
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EPROTO);
	t = good;
	t.abi_version = FP_ABI_MAJOR - 1u;
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EPROTO);
	t = good;
	t.struct_size = (uint32_t)offsetof(struct fp_plugin, stream_stop);
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "struct_size") != NULL);
	t = good;
	t.wants.video_format = FP_FMT_COUNT;
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EINVAL);
	t = good;
	t.wants.video_mem = 7;
	CHECK_EQ(host_check_table(&t, &out, err, sizeof(err)), -EINVAL);
	/* A newer minor with a bigger table: accepted, the tail ignored. */
	memset(&big, 0x5a, sizeof(big));
	big.t = good;
	big.t.abi_version = FP_ABI_VERSION + 3;
	big.t.struct_size = sizeof(big);
	CHECK_OK(host_check_table(&big.t, &out, err, sizeof(err)));
	CHECK(out.process_video == plugin_dummy_video);
}

static void
test_second_load_refused(void)
{
	char err[HOST_ERR_LEN];
	host *h = plugin_load_ok("passthrough"), *h2 = NULL;

	CHECK_EQ(host_load(&h2, plugin_path("grayscale"), err, sizeof(err)), -EBUSY);
	host_destroy(&h);
	h = plugin_load_ok("grayscale");
	host_destroy(&h);
}

struct plugin_sink {
	int calls;
	enum host_emit_kind kind;
	uint32_t stream;
	char text[256];
};

static int
plugin_sink_fn(void *ctx, enum host_emit_kind kind, uint32_t stream,
               const char *text, size_t len)
{
	struct plugin_sink *s = ctx;

	s->calls++;
	s->kind = kind;
	s->stream = stream;
	snprintf(s->text, sizeof(s->text), "%.*s", (int)len, text);
	return 0;
}

static void
test_host_services(void)
{
	host *h = plugin_load_ok("passthrough");
	const struct fp_host *svc = host_services(h);
	struct plugin_sink sink = { 0 };
	static char big[HOST_MAX_EVENT + 16];

	CHECK(svc->struct_size >= sizeof(*svc));
	svc->log(FP_LOG_INFO, "a line from a plugin value=%d", 42);
	svc->log(99, "an out-of-range level is clamped");
	CHECK_EQ(svc->emit_event("{}", 2), -ENOTCONN); /* no sink, no stream */
	host_set_sink(h, plugin_sink_fn, &sink);
	CHECK_EQ(svc->emit_event("{}", 2), -ENOTCONN); /* no stream */
	host_set_stream(h, true, 7);
	CHECK_OK(svc->emit_event("{\"type\":\"x\"}", 12));
	CHECK_EQ(sink.calls, 1);
	CHECK_EQ(sink.kind, HOST_EMIT_EVENT);
	CHECK_EQ(sink.stream, 7);
	CHECK_STR(sink.text, "{\"type\":\"x\"}");
	CHECK_EQ(svc->emit_event("[1,2]", 5), -EINVAL);
	CHECK_EQ(svc->emit_event("{\"a\":", 5), -EINVAL);
	CHECK_EQ(svc->emit_event("{\"a\":1}{", 8), -EINVAL);
	CHECK_EQ(svc->emit_event(NULL, 0), -EINVAL);
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	CHECK_EQ(svc->emit_event(big, sizeof(big)), -EMSGSIZE);
	CHECK_OK(svc->emit_data("hello data", 10));
	CHECK_EQ(sink.kind, HOST_EMIT_DATA);
	CHECK_STR(sink.text, "hello data");
	CHECK_EQ(svc->emit_data("two\nlines", 9), -EINVAL);
	CHECK_EQ(svc->emit_data(big, sizeof(big)), -EMSGSIZE);
	CHECK_EQ(sink.calls, 2);
	host_set_stream(h, false, 0);
	CHECK_EQ(svc->emit_data("x", 1), -ENOTCONN);
	host_destroy(&h);
}

static void
test_init_failure_and_crash(void)
{
	host *h = plugin_load_ok("fixture_crash");
	int status;
	pid_t pid;

	CHECK_EQ(host_init(h, "{\"init_fail\":true}"), -EINVAL);
	host_destroy(&h); /* no fini owed */
	/* crash_after 2: the third frame kills the process. */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		uint8_t px[12];
		struct fp_video_frame f = plugin_frame(px, 2, 2, FP_FMT_RGB24);

		signal(SIGSEGV, SIG_DFL); /* die by the signal, also under ASan */
		h = plugin_load_ok("fixture_crash");
		if (host_init(h, "{\"crash_after\":2}") != 0)
			_exit(10);
		for (int i = 0; i < 2; i++)
			if (host_plugin(h)->process_video(host_self(h), &f, &f) != FP_PASS)
				_exit(11);
		host_plugin(h)->process_video(host_self(h), &f, &f);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status 0x%x", status);
}

static void
test_slow_out_size_and_audio(void)
{
	host *h = plugin_load_ok("fixture_slow");
	const struct fp_plugin *p = host_plugin(h);
	uint8_t px[8 * 8 * 3] = { 0 };
	struct fp_video_frame fi = plugin_frame(px, 8, 8, FP_FMT_RGB24), fo = fi;
	int16_t samples[2 * 32], got[2 * 32] = { 0 };
	struct fp_audio_frame ai = {
		.struct_size = sizeof(ai), .sample_rate = 48000, .channels = 2,
		.format = FP_SAMPLE_S16, .nb_samples = 32,
	}, ao = { .struct_size = sizeof(ao), .capacity = sizeof(got) };

	CHECK_OK(host_init(h, "{\"out_width\":4000,\"out_height\":16}"));
	CHECK_EQ(p->process_video(host_self(h), &fi, &fo), FP_OK);
	CHECK_EQ(fo.width, 4000); /* the worker must refuse this */
	CHECK_EQ(fo.height, 16);
	for (int i = 0; i < 64; i++)
		samples[i] = (int16_t)(i * 100 - 3000);
	ai.data[0] = (uint8_t *)samples;
	ao.data[0] = (uint8_t *)got;
	CHECK_EQ(p->process_audio(host_self(h), &ai, &ao), FP_OK);
	CHECK_EQ(ao.nb_samples, 32);
	CHECK_EQ(ao.channels, 2);
	CHECK(memcmp(samples, got, sizeof(got)) == 0);
	host_destroy(&h);
}

static const struct th_case cases[] = {
	TH_CASE(test_load_passthrough),
	TH_CASE(test_grayscale_output_is_gray),
	TH_CASE(test_load_fixtures),
	TH_CASE(test_badabi_refused),
	TH_CASE(test_missing_file_refused),
	TH_CASE(test_missing_symbol_refused),
	TH_CASE(test_table_checks),
	TH_CASE(test_second_load_refused),
	TH_CASE(test_host_services),
	TH_CASE(test_init_failure_and_crash),
	TH_CASE(test_slow_out_size_and_audio),
	TH_END
};

TH_MAIN(cases)
