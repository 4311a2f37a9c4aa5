/*
 * Tests of build/plugins/python.so (worker/plugins/python.c with
 * python/ctrickle_py and python/pytrickle): each case loads the plugin as the
 * worker does, with a small processor written into its temp dir, and checks
 * frames, params, errors and the PyTrickle surface. numpy frames
 * (CT_PYTHON_NO_TORCH=1) except in the torch case, which is skipped without
 * python3-torch.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame_processor.h"
#include "harness.h"

#define PYT_W 64
#define PYT_H 48
#define PYT_STRIDE 256 /* > PYT_W * 3: rows padded as in the ring */

/* What the fake host saw (one case per process, so file scope is fine). */
static char pyt_logs[64 * 1024];
static char pyt_data[16 * 1024];
static int pyt_nerrors;

static void
pyt_log(int level, const char *fmt, ...)
{
	size_t n = strlen(pyt_logs);
	va_list ap;

	if (level == FP_LOG_ERROR)
		pyt_nerrors++;
	va_start(ap, fmt);
	vsnprintf(pyt_logs + n, sizeof(pyt_logs) - n, fmt, ap);
	va_end(ap);
	n = strlen(pyt_logs);
	if (n + 1 < sizeof(pyt_logs))
		strcpy(pyt_logs + n, "\n");
}

static int
pyt_emit_event(const char *text, size_t len)
{
	(void)text;
	(void)len;
	return 0;
}

static int
pyt_emit_data(const char *text, size_t len)
{
	size_t n = strlen(pyt_data);

	if (n + len + 2 < sizeof(pyt_data)) {
		memcpy(pyt_data + n, text, len);
		strcpy(pyt_data + n + len, "\n");
	}
	return 0;
}

static const struct fp_host pyt_host = {
	sizeof(struct fp_host), pyt_log, pyt_emit_event, pyt_emit_data,
};

struct pyt {
	const struct fp_plugin *p;
	void *self;
	uint8_t in[PYT_STRIDE * PYT_H];
	uint8_t out[PYT_STRIDE * PYT_H];
	struct fp_video_frame vin, vout;
};

/* Writes SRC as DIR/NAME.py. */
static void
pyt_write(const char *name, const char *src)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.py", th_tmpdir(), name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(src, f);
	fclose(f);
}

/* Loads python.so with module NAME (written by pyt_write) and class CLS. */
static int
pyt_load(struct pyt *t, const char *name, const char *cls, bool torch)
{
	char path[512], config[1024];
	fp_entry_fn entry;
	void *dl;

	if (!torch)
		setenv("CT_PYTHON_NO_TORCH", "1", 1);
	snprintf(path, sizeof(path), "%s/plugins/python.so", th_build_dir());
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CHECK_MSG(dl != NULL, "dlopen %s: %s", path, dlerror());
	entry = (fp_entry_fn)dlsym(dl, FP_ENTRY_SYMBOL);
	CHECK(entry != NULL);
	t->p = entry();
	snprintf(config, sizeof(config), "{\"module\":\"%s\",\"class\":\"%s\",\"path\":\"%s\"}",
	         name, cls, th_tmpdir());
	for (size_t i = 0; i < sizeof(t->in); i++)
		t->in[i] = (uint8_t)(i * 7 + i / PYT_STRIDE);
	memset(&t->vin, 0, sizeof(t->vin));
	t->vin.struct_size = sizeof(t->vin);
	t->vin.width = PYT_W;
	t->vin.height = PYT_H;
	t->vin.format = FP_FMT_RGB24;
	t->vin.device = -1;
	t->vin.plane[0] = t->in;
	t->vin.stride[0] = PYT_STRIDE;
	t->vin.pts = 9000;
	t->vin.tb_num = 1;
	t->vin.tb_den = 90000;
	return t->p->init(&pyt_host, config, &t->self);
}

/* One frame through process_video; the output view reset first. */
static int
pyt_frame(struct pyt *t)
{
	memset(t->out, 0xAA, sizeof(t->out));
	t->vout = t->vin;
	t->vout.plane[0] = t->out;
	t->vout.max_width = PYT_W;
	t->vout.max_height = PYT_H;
	return t->p->process_video(t->self, &t->vin, &t->vout);
}

static void
pyt_unload(struct pyt *t)
{
	if (t->p->stream_stop)
		t->p->stream_stop(t->self);
	t->p->fini(t->self);
}

/* |out - f(in)| <= tol for every pixel byte of the frame. */
static void
pyt_check_pixels(const struct pyt *t, int (*f)(int), int tol)
{
	for (int y = 0; y < PYT_H; y++)
		for (int x = 0; x < PYT_W * 3; x++) {
			int i = y * PYT_STRIDE + x, want = f(t->in[i]);

			CHECK_MSG(abs(t->out[i] - want) <= tol, "pixel %d,%d: %d, want %d",
			          x / 3, y, t->out[i], want);
		}
}

static int pyt_invert(int v) { return 255 - v; }
static int pyt_half(int v) { return v / 2; }

static const char pyt_src_main[] =
	"import numpy as np\n"
	"from typing import Any, Dict, List, Optional\n"
	"from pytrickle import FrameProcessor\n"
	"from pytrickle.frames import VideoFrame, AudioFrame\n"
	"from ctrickle_py import emit_data\n"
	"class Invert(FrameProcessor):\n"
	"    mode = 'invert'\n"
	"    async def load_model(self, **kwargs):\n"
	"        self.loaded = True\n"
	"    async def on_stream_start(self, params):\n"
	"        emit_data('start %s' % sorted(params.items()))\n"
	"    async def process_video_async(self, frame: VideoFrame) -> Optional[VideoFrame]:\n"
	"        if self.mode == 'none':\n"
	"            return None\n"
	"        if self.mode == 'same':\n"
	"            return frame\n"
	"        if self.mode == 'in_place':\n"
	"            frame.tensor *= 0.5\n"
	"            return frame\n"
	"        t = frame.tensor\n"
	"        emit_data('frame %s %s %s %s %.3f' % (type(t).__name__, t.dtype, tuple(t.shape),\n"
	"                  frame.timestamp, float(frame.time_base)))\n"
	"        if self.mode == 'raise':\n"
	"            raise ValueError('bad frame')\n"
	"        if self.mode == 'gray2d':\n"
	"            return frame.replace_tensor(t[0, :, :, 0])\n"
	"        if self.mode == 'rgba':\n"
	"            a = np.concatenate([1.0 - t, np.ones_like(t[..., :1])], axis=-1)\n"
	"            return frame.replace_tensor(a)\n"
	"        if self.mode == 'u8':\n"
	"            return frame.replace_tensor((255 - np.rint(t * 255)).astype(np.uint8))\n"
	"        if self.mode == 'range255':\n"
	"            return frame.replace_tensor(255.0 - t * 255.0)\n"
	"        if self.mode == 'half_size':\n"
	"            return frame.replace_tensor(t[:, ::2, ::2, :])\n"
	"        if self.mode == 'badshape':\n"
	"            return frame.replace_tensor(t[..., :2])\n"
	"        return frame.replace_tensor(1.0 - t)\n"
	"    def update_params(self, params: Dict[str, Any]):\n"
	"        if params.get('fail'):\n"
	"            raise RuntimeError('refused')\n"
	"        self.mode = params.get('mode', self.mode)\n"
	"    async def on_stream_stop(self):\n"
	"        emit_data('stop')\n"
	"class U8(FrameProcessor):\n"
	"    ctrickle_uint8 = True\n"
	"    async def process_video_async(self, frame):\n"
	"        t = frame.tensor\n"
	"        emit_data('u8 %s %s' % (t.dtype, tuple(t.shape)))\n"
	"        return frame.replace_tensor(t // 2)\n";

static void
pyt_params(struct pyt *t, const char *json)
{
	CHECK_EQ(t->p->update_params(t->self, json, strlen(json)), 0);
}

static void
test_numpy_frames_and_lifecycle(void)
{
	static struct pyt t;

	pyt_write("proc", pyt_src_main);
	CHECK_OK(pyt_load(&t, "proc", "Invert", false));
	CHECK(t.p->process_audio == NULL);
	CHECK_EQ(t.p->stream_start(t.self, "{\"a\":1}", 7), 0);
	CHECK_EQ(pyt_frame(&t), FP_OK);
	pyt_check_pixels(&t, pyt_invert, 1);
	CHECK_MSG(strstr(pyt_data, "start [('a', 1)]") != NULL, "data: %s", pyt_data);
	CHECK_MSG(strstr(pyt_data, "frame ndarray float32 (1, 48, 64, 3) 9000 0.000") != NULL,
	          "data: %s", pyt_data);
	CHECK(t.out[PYT_W * 3] == 0xAA); /* the row padding is not written */
	pyt_unload(&t);
	CHECK_MSG(strstr(pyt_data, "stop") != NULL, "data: %s", pyt_data);
	CHECK_EQ(pyt_nerrors, 0);
}

static void
test_untouched_or_none_is_pass(void)
{
	static struct pyt t;

	pyt_write("proc", pyt_src_main);
	CHECK_OK(pyt_load(&t, "proc", "Invert", false));
	t.p->stream_start(t.self, "{}", 2);
	pyt_params(&t, "{\"mode\":\"none\"}");
	CHECK_EQ(pyt_frame(&t), FP_PASS);
	pyt_params(&t, "{\"mode\":\"same\"}");
	CHECK_EQ(pyt_frame(&t), FP_PASS);
	CHECK(t.out[0] == 0xAA);
	/* The same frame back, its tensor changed in place: written out. */
	pyt_params(&t, "{\"mode\":\"in_place\"}");
	CHECK_EQ(pyt_frame(&t), FP_OK);
	pyt_check_pixels(&t, pyt_half, 1);
	pyt_unload(&t);
}

static void
test_exception_passes_input_and_is_rate_limited(void)
{
	static struct pyt t;

	pyt_write("proc", pyt_src_main);
	CHECK_OK(pyt_load(&t, "proc", "Invert", false));
	t.p->stream_start(t.self, "{}", 2);
	pyt_params(&t, "{\"mode\":\"raise\"}");
	for (int i = 0; i < 50; i++)
		CHECK_EQ(pyt_frame(&t), FP_PASS);
	CHECK_MSG(strstr(pyt_logs, "process_video_async raised on frame 0") != NULL &&
	          strstr(pyt_logs, "ValueError: bad frame") != NULL &&
	          strstr(pyt_logs, "proc.py:") != NULL, "logs: %s", pyt_logs);
	CHECK_MSG(pyt_nerrors >= 1 && pyt_nerrors <= 2, "%d error lines for 50 exceptions",
	          pyt_nerrors);
	pyt_params(&t, "{\"mode\":\"invert\"}");
	CHECK_EQ(pyt_frame(&t), FP_OK);
	pyt_check_pixels(&t, pyt_invert, 1);
	CHECK_EQ(t.p->update_params(t.self, "{\"fail\":true}", 13), -EINVAL);
	CHECK(strstr(pyt_logs, "RuntimeError: refused") != NULL);
	pyt_unload(&t);
}

static void
test_output_shapes_and_types(void)
{
	static const char *const modes[] = { "gray2d", "rgba", "u8", "range255" };
	static struct pyt t;

	pyt_write("proc", pyt_src_main);
	CHECK_OK(pyt_load(&t, "proc", "Invert", false));
	t.p->stream_start(t.self, "{}", 2);
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		char p[64];

		snprintf(p, sizeof(p), "{\"mode\":\"%s\"}", modes[m]);
		pyt_params(&t, p);
		CHECK_EQ(pyt_frame(&t), FP_OK);
		if (m == 0) { /* R of the input, in R, G and B */
			for (int i = 0; i < PYT_W * 3; i++)
				CHECK_EQ(t.out[i], t.in[i / 3 * 3]);
		} else {
			pyt_check_pixels(&t, pyt_invert, 1);
		}
	}
	pyt_params(&t, "{\"mode\":\"half_size\"}");
	CHECK_EQ(pyt_frame(&t), FP_OK);
	CHECK_EQ(t.vout.width, PYT_W / 2);
	CHECK_EQ(t.vout.height, PYT_H / 2);
	CHECK_EQ(t.vout.stride[0], PYT_W / 2 * 3);
	CHECK_EQ(t.out[3], t.in[6]); /* packed: pixel 1 of the output = pixel 2 in */
	pyt_params(&t, "{\"mode\":\"badshape\"}");
	CHECK_EQ(pyt_frame(&t), FP_PASS);
	CHECK(strstr(pyt_logs, "expected [1,H,W,C]") != NULL);
	pyt_unload(&t);
}

static void
test_uint8_fast_path(void)
{
	static struct pyt t;

	pyt_write("proc", pyt_src_main);
	CHECK_OK(pyt_load(&t, "proc", "U8", false));
	t.p->stream_start(t.self, "{}", 2);
	CHECK_EQ(pyt_frame(&t), FP_OK);
	pyt_check_pixels(&t, pyt_half, 0);
	CHECK_MSG(strstr(pyt_data, "u8 uint8 (1, 48, 64, 3)") != NULL, "data: %s", pyt_data);
	pyt_unload(&t);
}

static void
test_decorated_handlers(void)
{
	static const char src[] =
	    "from pytrickle import StreamProcessor, VideoFrame\n"
	    "from pytrickle.decorators import (model_loader, on_stream_start, on_stream_stop,\n"
	    "    param_updater, video_handler)\n"
	    "from pytrickle.frame_skipper import FrameSkipConfig\n"
	    "from ctrickle_py import emit_data\n"
	    "class Handlers:\n"
	    "    def __init__(self):\n"
	    "        self.processor = None\n"
	    "        self.k = 1.0\n"
	    "    @model_loader\n"
	    "    async def load(self, **kwargs):\n"
	    "        emit_data('loaded')\n"
	    "    @on_stream_start\n"
	    "    async def start(self):\n"
	    "        await self.processor.send_data('started')\n"
	    "    @video_handler\n"
	    "    async def video(self, frame: VideoFrame) -> VideoFrame:\n"
	    "        return frame.replace_tensor(frame.tensor * self.k)\n"
	    "    @param_updater\n"
	    "    async def params(self, params):\n"
	    "        self.k = float(params.get('k', self.k))\n"
	    "    @on_stream_stop\n"
	    "    async def stop(self):\n"
	    "        emit_data('stopped')\n";
	static struct pyt t;

	pyt_write("handlers", src);
	CHECK_OK(pyt_load(&t, "handlers", "Handlers", false));
	CHECK_EQ(t.p->stream_start(t.self, "{}", 2), 0);
	pyt_params(&t, "{\"k\":0.5}");
	CHECK_EQ(pyt_frame(&t), FP_OK);
	pyt_check_pixels(&t, pyt_half, 1);
	pyt_unload(&t);
	CHECK_MSG(strstr(pyt_data, "started") && strstr(pyt_data, "stopped"), "data: %s",
	          pyt_data);
	CHECK_EQ(pyt_nerrors, 0);
}

static void
test_init_errors(void)
{
	static struct pyt t;

	CHECK(pyt_load(&t, "no_such_module", "X", false) < 0);
	CHECK_MSG(strstr(pyt_logs, "ModuleNotFoundError") != NULL, "logs: %s", pyt_logs);
}

static void
test_missing_class(void)
{
	static struct pyt t;

	pyt_write("proc", pyt_src_main);
	CHECK(pyt_load(&t, "proc", "NoSuchClass", false) < 0);
	CHECK_MSG(strstr(pyt_logs, "AttributeError") != NULL, "logs: %s", pyt_logs);
}

static void
test_audio_table(void)
{
	static const char src[] =
	    "import numpy as np\n"
	    "from pytrickle import FrameProcessor\n"
	    "class Quiet(FrameProcessor):\n"
	    "    async def process_audio_async(self, frame):\n"
	    "        assert frame.format == 'fltp' and frame.samples.shape == (2, 4), frame.samples.shape\n"
	    "        return [frame.replace_samples(frame.samples * 0.5)]\n";
	static struct pyt t;
	float l[4] = { 1, 2, 3, 4 }, r[4] = { -1, -2, -3, -4 }, outbuf[64];
	struct fp_audio_frame in, out;

	setenv("CT_PYTHON_AUDIO", "1", 1);
	pyt_write("quiet", src);
	CHECK_OK(pyt_load(&t, "quiet", "Quiet", false));
	CHECK(t.p->process_audio != NULL);
	t.p->stream_start(t.self, "{}", 2);
	memset(&in, 0, sizeof(in));
	in.struct_size = sizeof(in);
	in.sample_rate = 48000;
	in.channels = 2;
	in.format = FP_SAMPLE_FLTP;
	in.nb_samples = 4;
	in.data[0] = (uint8_t *)l;
	in.data[1] = (uint8_t *)r;
	in.tb_num = 1;
	in.tb_den = 48000;
	out = in;
	memset(out.data, 0, sizeof(out.data));
	out.data[0] = (uint8_t *)outbuf;
	out.capacity = sizeof(outbuf);
	CHECK_EQ(t.p->process_audio(t.self, &in, &out), FP_OK);
	CHECK_EQ(out.nb_samples, 4);
	CHECK_MSG(outbuf[0] == 0.5f && outbuf[3] == 2.0f && outbuf[4] == -0.5f,
	          "%g %g %g; logs: %s", outbuf[0], outbuf[3], outbuf[4], pyt_logs);
	CHECK(out.data[1] == (uint8_t *)(outbuf + 4));
	pyt_unload(&t);
}

static void
test_torch_tensor(void)
{
	static const char src[] =
	    "import torch\n"
	    "from pytrickle import FrameProcessor\n"
	    "from ctrickle_py import emit_data\n"
	    "class T(FrameProcessor):\n"
	    "    async def process_video_async(self, frame):\n"
	    "        t = frame.tensor\n"
	    "        emit_data('%s %s %.3f %.3f' % (t.dtype, tuple(t.shape), float(t.min()), float(t.max())))\n"
	    "        return frame.replace_tensor(1.0 - t)\n";
	static struct pyt t;

	if (system("/usr/bin/python3 -c 'import torch' 2>/dev/null") != 0) {
		printf("# skipped: no torch\n");
		return;
	}
	pyt_write("tproc", src);
	CHECK_OK(pyt_load(&t, "tproc", "T", true));
	t.p->stream_start(t.self, "{}", 2);
	CHECK_EQ(pyt_frame(&t), FP_OK);
	pyt_check_pixels(&t, pyt_invert, 1);
	CHECK_MSG(strstr(pyt_data, "torch.float32 (1, 48, 64, 3) 0.000 1.000") != NULL,
	          "data: %s", pyt_data);
	pyt_unload(&t);
}

static const struct th_case cases[] = {
	TH_CASE(test_numpy_frames_and_lifecycle),
	TH_CASE(test_untouched_or_none_is_pass),
	TH_CASE(test_exception_passes_input_and_is_rate_limited),
	TH_CASE(test_output_shapes_and_types),
	TH_CASE(test_uint8_fast_path),
	TH_CASE(test_decorated_handlers),
	TH_CASE(test_init_errors),
	TH_CASE(test_missing_class),
	TH_CASE(test_audio_table),
	TH_CASE_T(test_torch_tensor, 240),
	TH_END,
};

TH_MAIN(cases)
