/*
 * passthrough: the reference FrameProcessor. Returns every frame unchanged
 * (FP_PASS), so the worker forwards the input slot without a copy.
 */
#include "frame_processor.h"

static int
passthrough_init(const struct fp_host *host, const char *config_json, void **self)
{
	(void)host;
	(void)config_json;
	*self = NULL;
	return FP_OK;
}

static int
passthrough_process_video(void *self, const struct fp_video_frame *in,
                          struct fp_video_frame *out)
{
	(void)self;
	(void)in;
	(void)out;
	return FP_PASS;
}

static const struct fp_plugin passthrough_plugin = {
	FP_PLUGIN_HEADER("passthrough", "1.0"),
	.wants = { .video_format = FP_FMT_RGB24, .video_mem = FP_MEM_HOST },
	.init = passthrough_init,
	.process_video = passthrough_process_video,
};

FP_PLUGIN_DEFINE(passthrough_plugin)
