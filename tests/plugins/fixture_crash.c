/*
 * fixture_crash: a plugin that fails on purpose, for the worker and
 * supervisor tests. Config (JSON): {"crash_after":N} SIGSEGV in process_video
 * after N good frames; {"crash_in":"init"} abort() in init; {"init_fail":true}
 * init returns -EINVAL; {"overflow":true} writes far past its output slot;
 * {"fail":true} every frame returns -EIO. Params {"crash":true}: SIGSEGV on
 * the next frame; params {"write_at":OFFSET}: the next frame writes one byte
 * at out->plane[0] + OFFSET (a stray pointer into another slot); params
 * {"bad_out":"size"|"format"|"plane"}: 3 more frames of that kind return
 * FP_OK with an output the worker must refuse (width beyond the slot's
 * maximum, another pixel format, a plane pointer outside the slot); kinds
 * asked for before earlier ones are used up queue behind them, so N asks
 * always give 3N refused frames however the frames are timed, and one good
 * frame follows each 3 (never 5 failures in a row: the worker's limit).
 * Frames it survives are passed through (FP_PASS).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frame_processor.h"

struct fixture_crash {
	const struct fp_host *host;
	long crash_after;   /* -1: never */
	bool crash_next;
	bool overflow;
	bool fail;
	bool stray;
	long long stray_off;
	int bad_left[3];  /* frames still to spoil: size, format, plane */
	bool good_next;   /* pass one frame after a kind's last spoiled one */
	uint64_t frames;
};

/* Finds "key" in flat JSON text; returns a pointer to its value or NULL. */
static const char *
fixture_crash_find(const char *json, size_t len, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i + klen + 2 <= len; i++) {
		if (json[i] != '"' || memcmp(json + i + 1, key, klen) != 0 ||
		    json[i + 1 + klen] != '"')
			continue;
		size_t j = i + klen + 2;
		while (j < len && strchr(" \t\r\n:", json[j]))
			j++;
		return j < len ? json + j : NULL;
	}
	return NULL;
}

static bool
fixture_crash_true(const char *json, size_t len, const char *key)
{
	const char *v = fixture_crash_find(json, len, key);

	return v && (size_t)(json + len - v) >= 4 && memcmp(v, "true", 4) == 0;
}

/* Crashes with a real invalid memory access, as a buggy plugin would. */
static void
fixture_crash_segv(void)
{
	/* Address 16: unmapped, and not NULL, so UBSan lets the fault happen. */
	volatile uintptr_t bad = 16;

	*(volatile int *)bad = 42;
	raise(SIGSEGV); /* not reached */
}

static int
fixture_crash_init(const struct fp_host *host, const char *config_json, void **self)
{
	size_t len = strlen(config_json);
	const char *v = fixture_crash_find(config_json, len, "crash_in");
	struct fixture_crash *f;

	if (v && strncmp(v, "\"init\"", 6) == 0)
		abort();
	if (fixture_crash_true(config_json, len, "init_fail"))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->host = host;
	v = fixture_crash_find(config_json, len, "crash_after");
	f->crash_after = v ? strtol(v, NULL, 10) : -1;
	f->overflow = fixture_crash_true(config_json, len, "overflow");
	f->fail = fixture_crash_true(config_json, len, "fail");
	*self = f;
	return FP_OK;
}

static void
fixture_crash_fini(void *self)
{
	free(self);
}

static int
fixture_crash_update_params(void *self, const char *params_json, size_t len)
{
	struct fixture_crash *f = self;

	const char *v = fixture_crash_find(params_json, len, "write_at");

	if (fixture_crash_true(params_json, len, "crash"))
		f->crash_next = true;
	v = fixture_crash_find(params_json, len, "bad_out");
	if (v && (size_t)(params_json + len - v) >= 2 && v[0] == '"') {
		const char *kinds = "sfp", *k = strchr(kinds, v[1]);

		if (k && *k)
			f->bad_left[k - kinds] += 3;
	}
	v = fixture_crash_find(params_json, len, "write_at");
	if (v) {
		f->stray = true;
		f->stray_off = strtoll(v, NULL, 10);
	}
	return FP_OK;
}

static int
fixture_crash_process_video(void *self, const struct fp_video_frame *in,
                            struct fp_video_frame *out)
{
	struct fixture_crash *f = self;

	if (f->crash_next || (f->crash_after >= 0 && f->frames >= (uint64_t)f->crash_after)) {
		f->host->log(FP_LOG_WARN, "fixture_crash: crashing now frames=%llu",
		             (unsigned long long)f->frames);
		fixture_crash_segv();
	}
	f->frames++;
	if (f->fail)
		return -EIO;
	for (int k = 0; k < 3 && !f->good_next; k++) {
		if (f->bad_left[k] <= 0)
			continue;
		if (--f->bad_left[k] % 3 == 0)
			f->good_next = true;
		out->width = in->width;
		out->height = in->height;
		out->format = in->format;
		if (k == 0)
			out->width = out->max_width + 16;
		else if (k == 1)
			out->format = in->format == FP_FMT_RGB24 ? FP_FMT_RGBA : FP_FMT_RGB24;
		else
			out->plane[0] = (uint8_t *)in->plane[0] - 4096;
		return FP_OK;
	}
	f->good_next = false;
	if (f->stray) {
		f->stray = false;
		out->plane[0][f->stray_off] = 0xEE;
	}
	if (f->overflow) {
		/* A buffer overrun: rows far below the slot's last row. */
		size_t slot = (size_t)out->stride[0] * out->max_height;

		for (size_t off = slot; off < slot + (size_t)256 * 1024 * 1024; off += 4096)
			out->plane[0][off] = 0xAA;
	}
	(void)in;
	return FP_PASS;
}

static const struct fp_plugin fixture_crash_plugin = {
	FP_PLUGIN_HEADER("fixture_crash", "1.0"),
	.init = fixture_crash_init,
	.fini = fixture_crash_fini,
	.process_video = fixture_crash_process_video,
	.update_params = fixture_crash_update_params,
};

FP_PLUGIN_DEFINE(fixture_crash_plugin)
