/*
 * fixture_leak: a plugin that leaks, for the --mem-limit-mb test. Every frame
 * it allocates {"mb_per_frame":N} MiB (default 16), touches every page
 * (unless {"touch":false}: the address-space limit does not need resident
 * pages, and a slow machine spends its time on page faults) and never frees
 * it. When allocation fails it returns -ENOMEM (so the worker's error streak,
 * or the kernel, ends it). Frames are passed through.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame_processor.h"

struct fixture_leak {
	size_t bytes_per_frame;
	int touch;
	void **kept;   /* every block, so the leak is reachable: no sanitizer noise */
	size_t n, cap;
};

static int
fixture_leak_init(const struct fp_host *host, const char *config_json, void **self)
{
	const char *v = strstr(config_json, "\"mb_per_frame\"");
	struct fixture_leak *f = calloc(1, sizeof(*f));
	long mb = 16;

	(void)host;
	if (!f)
		return -ENOMEM;
	if (v && (v = strchr(v, ':')))
		mb = strtol(v + 1, NULL, 10);
	if (mb <= 0 || mb > 1024)
		mb = 16;
	f->bytes_per_frame = (size_t)mb << 20;
	f->touch = !strstr(config_json, "\"touch\":false");
	*self = f;
	return FP_OK;
}

static void
fixture_leak_fini(void *self)
{
	struct fixture_leak *f = self;

	for (size_t i = 0; i < f->n; i++)
		free(f->kept[i]);
	free(f->kept);
	free(f);
}

static int
fixture_leak_process_video(void *self, const struct fp_video_frame *in,
                           struct fp_video_frame *out)
{
	struct fixture_leak *f = self;
	unsigned char *p;

	(void)in;
	(void)out;
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		void **k = realloc(f->kept, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		f->kept = k;
		f->cap = cap;
	}
	p = malloc(f->bytes_per_frame);
	if (!p)
		return -ENOMEM;
	for (size_t off = 0; f->touch && off < f->bytes_per_frame; off += 4096)
		p[off] = (unsigned char)off;
	f->kept[f->n++] = p;
	return FP_PASS;
}

static const struct fp_plugin fixture_leak_plugin = {
	FP_PLUGIN_HEADER("fixture_leak", "1.0"),
	.init = fixture_leak_init,
	.fini = fixture_leak_fini,
	.process_video = fixture_leak_process_video,
};

FP_PLUGIN_DEFINE(fixture_leak_plugin)
