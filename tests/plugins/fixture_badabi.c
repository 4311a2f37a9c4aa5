/*
 * fixture_badabi: a plugin built against another major ABI version (2.0).
 * The worker must refuse it at load time (exit 2, never respawned) and never
 * call any of its callbacks.
 */
#include <stdlib.h>

#include "frame_processor.h"

static int
fixture_badabi_init(const struct fp_host *host, const char *config_json, void **self)
{
	(void)host;
	(void)config_json;
	(void)self;
	abort(); /* must never be called */
}

static int
fixture_badabi_process_video(void *self, const struct fp_video_frame *in,
                             struct fp_video_frame *out)
{
	(void)self;
	(void)in;
	(void)out;
	abort();
}

static const struct fp_plugin fixture_badabi_plugin = {
	.abi_version = (uint32_t)(FP_ABI_MAJOR + 1) << 16,
	.struct_size = sizeof(struct fp_plugin),
	.name = "fixture_badabi",
	.version = "2.0",
	.init = fixture_badabi_init,
	.process_video = fixture_badabi_process_video,
};

FP_PLUGIN_DEFINE(fixture_badabi_plugin)
