/*
 * grayscale: the CPU reference FrameProcessor. Writes the BT.601 luma of each
 * pixel into all three colour channels (RGB24 and RGBA; alpha kept), or keeps
 * Y and sets chroma to neutral for NV12 and YUV420P. Params {"enabled":false}
 * turn it into a passthrough until {"enabled":true}. Safe in place.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "frame_processor.h"

struct grayscale {
	const struct fp_host *host;
	bool enabled;
	uint64_t frames;
};

/*
 * Finds "key": true|false in a flat JSON object text of len bytes. Returns 1,
 * 0, or -1 when the key is absent or not a boolean. Good enough for one flag;
 * a real plugin would use a JSON library.
 */
static int
grayscale_json_bool(const char *json, size_t len, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i + klen + 2 <= len; i++) {
		if (json[i] != '"' || memcmp(json + i + 1, key, klen) != 0 ||
		    json[i + 1 + klen] != '"')
			continue;
		size_t j = i + klen + 2;
		while (j < len && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n' ||
		                   json[j] == '\r' || json[j] == ':'))
			j++;
		if (len - j >= 4 && memcmp(json + j, "true", 4) == 0)
			return 1;
		if (len - j >= 5 && memcmp(json + j, "false", 5) == 0)
			return 0;
		return -1;
	}
	return -1;
}

static int
grayscale_init(const struct fp_host *host, const char *config_json, void **self)
{
	struct grayscale *g = calloc(1, sizeof(*g));

	if (!g)
		return -ENOMEM;
	g->host = host;
	g->enabled = grayscale_json_bool(config_json, strlen(config_json), "enabled") != 0;
	*self = g;
	return FP_OK;
}

static void
grayscale_fini(void *self)
{
	free(self);
}

static int
grayscale_update_params(void *self, const char *params_json, size_t len)
{
	struct grayscale *g = self;
	int on = grayscale_json_bool(params_json, len, "enabled");

	if (on >= 0) {
		g->enabled = on;
		g->host->log(FP_LOG_INFO, "grayscale %s", on ? "enabled" : "disabled");
	}
	return FP_OK;
}

/* Packed RGB(A): luma = (77 R + 150 G + 29 B) / 256 into R, G and B. */
static void
grayscale_packed(const struct fp_video_frame *in, struct fp_video_frame *out,
                 uint32_t bpp)
{
	for (uint32_t y = 0; y < in->height; y++) {
		const uint8_t *s = in->plane[0] + (size_t)y * in->stride[0];
		uint8_t *d = out->plane[0] + (size_t)y * out->stride[0];

		for (uint32_t x = 0; x < in->width; x++, s += bpp, d += bpp) {
			uint8_t l = (uint8_t)((77u * s[0] + 150u * s[1] + 29u * s[2]) >> 8);

			if (bpp == 4)
				d[3] = s[3];
			d[0] = d[1] = d[2] = l;
		}
	}
}

/* Planar YUV: Y copied, every chroma byte set to 128 (no colour). */
static void
grayscale_yuv(const struct fp_video_frame *in, struct fp_video_frame *out)
{
	for (int p = 0; p < 3; p++) {
		uint32_t row = fp_plane_row_bytes(in->format, in->width, p);
		uint32_t rows = fp_plane_rows(in->format, in->height, p);

		for (uint32_t y = 0; y < rows; y++) {
			uint8_t *d = out->plane[p] + (size_t)y * out->stride[p];

			if (p == 0) {
				const uint8_t *s = in->plane[0] + (size_t)y * in->stride[0];
				if (s != d)
					memcpy(d, s, row);
			} else {
				memset(d, 128, row);
			}
		}
	}
}

static int
grayscale_process_video(void *self, const struct fp_video_frame *in,
                        struct fp_video_frame *out)
{
	struct grayscale *g = self;

	if (!g->enabled)
		return FP_PASS;
	if (in->mem != FP_MEM_HOST)
		return -ENOTSUP;
	out->width = in->width;
	out->height = in->height;
	switch (in->format) {
	case FP_FMT_RGB24:
		grayscale_packed(in, out, 3);
		break;
	case FP_FMT_RGBA:
		grayscale_packed(in, out, 4);
		break;
	case FP_FMT_NV12:
	case FP_FMT_YUV420P:
		grayscale_yuv(in, out);
		break;
	default:
		return -ENOTSUP;
	}
	g->frames++;
	return FP_OK;
}

static const struct fp_plugin grayscale_plugin = {
	FP_PLUGIN_HEADER("grayscale", "1.0"),
	.wants = { .video_format = FP_FMT_RGB24, .video_mem = FP_MEM_HOST },
	.init = grayscale_init,
	.fini = grayscale_fini,
	.process_video = grayscale_process_video,
	.update_params = grayscale_update_params,
};

FP_PLUGIN_DEFINE(grayscale_plugin)
