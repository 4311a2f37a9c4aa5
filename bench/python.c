/*
 * bench/python: the per-frame cost of the Python bridge (python.so: C ->
 * Python -> C) against C plugins, in the same run. Each case runs in a forked
 * child that dlopens the plugin as the worker does, calls init, then
 * process_video on a WxH RGB24 frame N times, and prints p50/p99/mean of the
 * call, init and fini times. The worker's IPC is the same for every plugin
 * and is left out. Usage: build/bench/python [--frames N] [--size WxH]
 * [--build DIR]; the bench/python script adds the whole-server CPU figure.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "frame_processor.h"

struct bpy_case {
	const char *name;   /* printed */
	const char *plugin; /* file name in BUILD/plugins */
	const char *config; /* init config (printf format: %s = bench dir) */
	const char *params; /* update_params after stream_start, or NULL */
};

struct bpy_opts {
	int frames;
	unsigned width, height;
	const char *build;
	char dir[256]; /* temp dir with the bench processor */
};

static void
bpy_log(int level, const char *fmt, ...)
{
	va_list ap;

	if (level > FP_LOG_WARN)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "# plugin: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static int
bpy_emit(const char *text, size_t len)
{
	(void)text;
	(void)len;
	return 0;
}

static int
bpy_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The child: one plugin, N frames; prints one result line. Exit 0 or 1. */
static int
bpy_run_case(const struct bpy_opts *o, const struct bpy_case *c)
{
	struct fp_host host = { sizeof(host), bpy_log, bpy_emit, bpy_emit };
	unsigned stride = (o->width * 3 + 63) / 64 * 64;
	size_t bytes = (size_t)stride * o->height;
	struct fp_video_frame in, out;
	const struct fp_plugin *p;
	char path[512], config[1024];
	int64_t *t, t0, init_ns, fini_ns, sum = 0;
	uint8_t *a, *b;
	void *dl, *self = NULL;
	fp_entry_fn entry;
	int passes = 0;

	snprintf(path, sizeof(path), "%s/plugins/%s", o->build, c->plugin);
	snprintf(config, sizeof(config), c->config, o->dir);
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl || !(entry = (fp_entry_fn)dlsym(dl, FP_ENTRY_SYMBOL))) {
		printf("%-28s not loadable: %s\n", c->name, dlerror());
		return 1;
	}
	p = entry();
	t = calloc((size_t)o->frames, sizeof(*t));
	a = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
	b = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
	if (!t || !a || !b)
		return 1;
	for (size_t i = 0; i < bytes; i++)
		a[i] = (uint8_t)(i * 7 + i / stride);
	t0 = clock_now_ns();
	if (p->init(&host, config, &self) < 0) {
		printf("%-28s init failed\n", c->name);
		return 1;
	}
	init_ns = clock_now_ns() - t0;
	if (p->stream_start)
		p->stream_start(self, "{}", 2);
	if (c->params && p->update_params)
		p->update_params(self, c->params, strlen(c->params));
	memset(&in, 0, sizeof(in));
	in.struct_size = sizeof(in);
	in.width = o->width;
	in.height = o->height;
	in.format = FP_FMT_RGB24;
	in.device = -1;
	in.plane[0] = a;
	in.stride[0] = stride;
	in.tb_num = 1;
	in.tb_den = 90000;
	for (int i = 0; i < o->frames; i++) {
		out = in;
		out.plane[0] = b;
		out.max_width = o->width;
		out.max_height = o->height;
		in.pts = i * 3000;
		in.seq = (uint64_t)i;
		t0 = clock_now_ns();
		passes += p->process_video(self, &in, &out) == FP_PASS;
		t[i] = clock_now_ns() - t0;
		sum += t[i];
	}
	if (p->stream_stop)
		p->stream_stop(self);
	t0 = clock_now_ns();
	if (p->fini)
		p->fini(self);
	fini_ns = clock_now_ns() - t0;
	qsort(t, (size_t)o->frames, sizeof(*t), bpy_cmp);
	printf("%-28s p50 %8.3f ms  p99 %8.3f ms  mean %8.3f ms  (FP_PASS %d/%d)"
	       "  init %.0f ms  fini %.0f ms\n", c->name,
	       t[o->frames / 2] / 1e6, t[o->frames * 99 / 100] / 1e6,
	       (double)sum / o->frames / 1e6, passes, o->frames, init_ns / 1e6,
	       fini_ns / 1e6);
	fflush(stdout);
	free(t);
	free(a);
	free(b);
	return 0;
}

static int
bpy_write_processor(struct bpy_opts *o)
{
	static const char src[] =
	    "from pytrickle import FrameProcessor\n"
	    "class Bench(FrameProcessor):\n"
	    "    \"\"\"return: the frame untouched; touch: read the float tensor and\n"
	    "    write it back; none: return None; plain: a non-async method.\"\"\"\n"
	    "    mode = 'return'\n"
	    "    async def update_params(self, params):\n"
	    "        self.mode = params.get('mode', self.mode)\n"
	    "    async def process_video_async(self, frame):\n"
	    "        if self.mode == 'touch':\n"
	    "            return frame.replace_tensor(frame.tensor)\n"
	    "        if self.mode == 'none':\n"
	    "            return None\n"
	    "        return frame\n"
	    "class BenchU8(Bench):\n"
	    "    ctrickle_uint8 = True\n"
	    "    async def process_video_async(self, frame):\n"
	    "        return frame.replace_tensor(frame.tensor)\n";
	char path[300];
	FILE *f;

	snprintf(o->dir, sizeof(o->dir), "/tmp/bench-python.XXXXXX");
	if (!mkdtemp(o->dir))
		return -errno;
	snprintf(path, sizeof(path), "%s/bench_proc.py", o->dir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	fputs(src, f);
	fclose(f);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct bpy_case cases[] = {
		{ "C passthrough.so", "passthrough.so", "{}", NULL },
		{ "C grayscale.so", "grayscale.so", "{}", NULL },
		{ "py passthrough.py", "python.so",
		  "{\"module\":\"examples/python/passthrough.py\",\"class\":\"PassthroughProcessor\"}",
		  NULL },
		{ "py return None", "python.so",
		  "{\"module\":\"bench_proc\",\"class\":\"Bench\",\"path\":\"%s\"}",
		  "{\"mode\":\"none\"}" },
		{ "py float tensor round trip", "python.so",
		  "{\"module\":\"bench_proc\",\"class\":\"Bench\",\"path\":\"%s\"}",
		  "{\"mode\":\"touch\"}" },
		{ "py uint8 view returned", "python.so",
		  "{\"module\":\"bench_proc\",\"class\":\"BenchU8\",\"path\":\"%s\"}", NULL },
		{ "py torch_filter.py (edges)", "python.so",
		  "{\"module\":\"examples/python/torch_filter.py\",\"class\":\"TorchFilter\"}",
		  NULL },
	};
	struct bpy_opts o = { .frames = 300, .width = 512, .height = 512 };
	int failed = 0;
	char tmp[300];

	o.build = getenv("CT_BUILD") ? getenv("CT_BUILD") : "build";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--frames") && i + 1 < argc)
			o.frames = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			sscanf(argv[++i], "%ux%u", &o.width, &o.height);
		else if (!strcmp(argv[i], "--build") && i + 1 < argc)
			o.build = argv[++i];
		else {
			fprintf(stderr, "usage: %s [--frames N] [--size WxH] [--build DIR]\n", argv[0]);
			return 2;
		}
	}
	if (o.frames < 10 || o.width < 16 || o.height < 16 || o.width > 4096 || o.height > 4096) {
		fprintf(stderr, "bad --frames or --size\n");
		return 2;
	}
	if (bpy_write_processor(&o) < 0) {
		perror("bench dir");
		return 1;
	}
	printf("# process_video call, %ux%u RGB24, %d frames, one process per case\n",
	       o.width, o.height, o.frames);
	fflush(stdout);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pid_t pid = fork();
		int st;

		if (pid == 0)
			_exit(bpy_run_case(&o, &cases[i]));
		if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed++;
	}
	snprintf(tmp, sizeof(tmp), "%s/bench_proc.py", o.dir);
	unlink(tmp);
	snprintf(tmp, sizeof(tmp), "%s/__pycache__", o.dir);
	if (access(tmp, F_OK) == 0) {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			failed++;
	}
	rmdir(o.dir);
	return failed ? 1 : 0;
}
