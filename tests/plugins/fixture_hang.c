/*
 * fixture_hang: a plugin that stops responding, for the deadline and
 * heartbeat tests. Config {"hang_after":N}: process_video never returns from
 * frame N on (default 0: the first frame); {"hang_after":-1} never hangs
 * there. Params {"hang_params":true}: update_params never returns. Frames it
 * survives are passed through. Only SIGKILL (or another signal) ends it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame_processor.h"

struct fixture_hang {
	const struct fp_host *host;
	long hang_after;
	uint64_t frames;
};

static void
fixture_hang_forever(void)
{
	for (;;)
		pause();
}

static const char *
fixture_hang_find(const char *json, size_t len, const char *key)
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

static int
fixture_hang_init(const struct fp_host *host, const char *config_json, void **self)
{
	const char *v = fixture_hang_find(config_json, strlen(config_json), "hang_after");
	struct fixture_hang *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->host = host;
	f->hang_after = v ? strtol(v, NULL, 10) : 0;
	*self = f;
	return FP_OK;
}

static void
fixture_hang_fini(void *self)
{
	free(self);
}

static int
fixture_hang_update_params(void *self, const char *params_json, size_t len)
{
	const char *v = fixture_hang_find(params_json, len, "hang_params");

	(void)self;
	if (v && (size_t)(params_json + len - v) >= 4 && memcmp(v, "true", 4) == 0)
		fixture_hang_forever();
	return FP_OK;
}

static int
fixture_hang_process_video(void *self, const struct fp_video_frame *in,
                           struct fp_video_frame *out)
{
	struct fixture_hang *f = self;

	if (f->hang_after >= 0 && f->frames >= (uint64_t)f->hang_after) {
		f->host->log(FP_LOG_WARN, "fixture_hang: hanging now frames=%llu",
		             (unsigned long long)f->frames);
		fixture_hang_forever();
	}
	f->frames++;
	(void)in;
	(void)out;
	return FP_PASS;
}

static const struct fp_plugin fixture_hang_plugin = {
	FP_PLUGIN_HEADER("fixture_hang", "1.0"),
	.init = fixture_hang_init,
	.fini = fixture_hang_fini,
	.process_video = fixture_hang_process_video,
	.update_params = fixture_hang_update_params,
};

FP_PLUGIN_DEFINE(fixture_hang_plugin)
