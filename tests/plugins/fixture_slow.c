/*
 * fixture_slow: a plugin that takes its time, and the fixture of the worker's
 * output checks. Config: {"ms_per_frame":N} sleeps N ms per frame (default 0);
 * {"out_width":W,"out_height":H} claims an output of that size (FP_OK, pixels
 * left as they are), which the worker must refuse when it exceeds the slot;
 * {"out_format":F} claims another pixel format (always refused); {"emit":true}
 * emits an event and a data line per frame and at stream start;
 * {"audio_pts_shift_s":N} moves the pts of the audio it returns N seconds
 * (a processor off the input's timeline). Has process_audio (a copy),
 * stream_start and stream_stop. Else FP_PASS.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame_processor.h"

struct fixture_slow {
	const struct fp_host *host;
	long ms;
	long out_w, out_h, out_fmt; /* -1: not set */
	bool emit;
	long audio_shift_s;
	uint64_t frames;
};

static const char *
fixture_slow_find(const char *json, size_t len, const char *key)
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

static long
fixture_slow_long(const char *json, const char *key, long dflt)
{
	const char *v = fixture_slow_find(json, strlen(json), key);

	return v ? strtol(v, NULL, 10) : dflt;
}

static int
fixture_slow_init(const struct fp_host *host, const char *config_json, void **self)
{
	struct fixture_slow *f = calloc(1, sizeof(*f));
	const char *v;

	if (!f)
		return -ENOMEM;
	f->host = host;
	f->ms = fixture_slow_long(config_json, "ms_per_frame", 0);
	f->out_w = fixture_slow_long(config_json, "out_width", -1);
	f->out_h = fixture_slow_long(config_json, "out_height", -1);
	f->out_fmt = fixture_slow_long(config_json, "out_format", -1);
	f->audio_shift_s = fixture_slow_long(config_json, "audio_pts_shift_s", 0);
	v = fixture_slow_find(config_json, strlen(config_json), "emit");
	f->emit = v && strncmp(v, "true", 4) == 0;
	*self = f;
	return FP_OK;
}

static void
fixture_slow_fini(void *self)
{
	free(self);
}

static int
fixture_slow_stream_start(void *self, const char *params_json, size_t len)
{
	struct fixture_slow *f = self;
	static const char ev[] = "{\"type\":\"fixture_stream_start\"}";

	(void)params_json;
	(void)len;
	f->frames = 0;
	if (f->emit)
		return f->host->emit_event(ev, sizeof(ev) - 1);
	return FP_OK;
}

static void
fixture_slow_stream_stop(void *self)
{
	struct fixture_slow *f = self;

	f->host->log(FP_LOG_DEBUG, "fixture_slow: stream stopped frames=%llu",
	             (unsigned long long)f->frames);
}

static int
fixture_slow_process_video(void *self, const struct fp_video_frame *in,
                           struct fp_video_frame *out)
{
	struct fixture_slow *f = self;

	if (f->ms > 0) {
		struct timespec ts = { f->ms / 1000, (f->ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	f->frames++;
	if (f->emit) {
		char buf[96];
		int n = snprintf(buf, sizeof(buf), "{\"type\":\"fixture_frame\",\"seq\":%llu}",
		                 (unsigned long long)in->seq);

		if (f->host->emit_event(buf, (size_t)n) != 0)
			return -EIO;
		n = snprintf(buf, sizeof(buf), "frame %llu", (unsigned long long)in->seq);
		if (f->host->emit_data(buf, (size_t)n) != 0)
			return -EIO;
	}
	if (f->out_w >= 0 || f->out_h >= 0 || f->out_fmt >= 0) {
		if (f->out_w >= 0)
			out->width = (uint32_t)f->out_w;
		if (f->out_h >= 0)
			out->height = (uint32_t)f->out_h;
		if (f->out_fmt >= 0)
			out->format = (uint32_t)f->out_fmt;
		return FP_OK;
	}
	return FP_PASS;
}

static int
fixture_slow_process_audio(void *self, const struct fp_audio_frame *in,
                           struct fp_audio_frame *out)
{
	struct fixture_slow *f = self;
	size_t bps = in->format == FP_SAMPLE_S16 || in->format == FP_SAMPLE_S16P ? 2 : 4;
	size_t bytes = (size_t)in->nb_samples * in->channels * bps;
	bool planar = in->format == FP_SAMPLE_FLTP || in->format == FP_SAMPLE_S16P;

	if (bytes > out->capacity)
		return -ENOSPC;
	if (planar) {
		size_t per = bytes / in->channels;

		for (uint32_t c = 0; c < in->channels && c < 8; c++)
			memcpy(out->data[c], in->data[c], per);
	} else {
		memcpy(out->data[0], in->data[0], bytes);
	}
	out->sample_rate = in->sample_rate;
	out->channels = in->channels;
	out->format = in->format;
	out->nb_samples = in->nb_samples;
	out->pts = in->pts;
	out->tb_num = in->tb_num;
	out->tb_den = in->tb_den;
	if (f->audio_shift_s && in->tb_num)
		out->pts += (int64_t)f->audio_shift_s * in->tb_den / in->tb_num;
	return FP_OK;
}

static const struct fp_plugin fixture_slow_plugin = {
	FP_PLUGIN_HEADER("fixture_slow", "1.0"),
	.init = fixture_slow_init,
	.fini = fixture_slow_fini,
	.process_video = fixture_slow_process_video,
	.process_audio = fixture_slow_process_audio,
	.stream_start = fixture_slow_stream_start,
	.stream_stop = fixture_slow_stream_stop,
};

FP_PLUGIN_DEFINE(fixture_slow_plugin)
