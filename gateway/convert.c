/*
 * swscale-based conditioning: the frame-rate limiter, source-side center
 * crop + bilinear scale into caller planes, and slot -> pooled yuv420p
 * AVFrame for the encoder. Scalers are cached with sws_getCachedContext.
 */
#include "convert.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

struct convert {
	atomic_int fps;
	double next; /* limiter: next kept time, seconds */
	atomic_uint_fast64_t dropped;
	struct SwsContext *to_sws;   /* decoded -> slot */
	struct SwsContext *from_sws; /* slot -> yuv420p */
	AVBufferPool *pool;          /* yuv420p buffers for from_planes */
	int pool_w, pool_h;
	size_t pool_size;
};

enum AVPixelFormat
convert_av_pixfmt(enum fp_pixfmt fmt)
{
	switch (fmt) {
	case FP_FMT_RGB24:
		return AV_PIX_FMT_RGB24;
	case FP_FMT_RGBA:
		return AV_PIX_FMT_RGBA;
	case FP_FMT_NV12:
		return AV_PIX_FMT_NV12;
	case FP_FMT_YUV420P:
		return AV_PIX_FMT_YUV420P;
	default:
		return AV_PIX_FMT_NONE;
	}
}

int
convert_create(convert **out)
{
	convert *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	atomic_init(&c->fps, CONVERT_FPS_DEFAULT);
	*out = c;
	return 0;
}

void
convert_destroy(convert **cp)
{
	convert *c = *cp;

	if (c == NULL)
		return;
	sws_freeContext(c->to_sws);
	sws_freeContext(c->from_sws);
	av_buffer_pool_uninit(&c->pool);
	free(c);
	*cp = NULL;
}

int
convert_set_max_framerate(convert *c, int fps)
{
	if (fps < CONVERT_FPS_MIN || fps > CONVERT_FPS_MAX)
		return -EINVAL;
	atomic_store(&c->fps, fps);
	return 0;
}

int
convert_get_max_framerate(convert *c)
{
	return atomic_load(&c->fps);
}

bool
convert_keep_frame(convert *c, int64_t pts, AVRational tb)
{
	double t = (double)pts * av_q2d(tb);
	double interval = 1.0 / atomic_load(&c->fps);

	/* 0.1 ms slack: next accumulates float error, and a 30 fps input
	   at limit 30 must keep every frame */
	if (t + 1e-4 < c->next) {
		atomic_fetch_add(&c->dropped, 1);
		return false;
	}
	if (t > c->next + interval)
		c->next = t + interval;
	else
		c->next += interval;
	return true;
}

uint64_t
convert_dropped(convert *c)
{
	return atomic_load(&c->dropped);
}

size_t
convert_layout(enum fp_pixfmt fmt, int w, int h, int stride[4], size_t size[4])
{
	int st[4] = {0};
	size_t sz[4] = {0};
	int cw = (w + 1) / 2, ch = (h + 1) / 2;

	if (w <= 0 || h <= 0 || w > 16384 || h > 16384)
		return 0;
	switch (fmt) {
	case FP_FMT_RGB24:
		st[0] = 3 * w;
		break;
	case FP_FMT_RGBA:
		st[0] = 4 * w;
		break;
	case FP_FMT_NV12:
		st[0] = w;
		st[1] = 2 * cw;
		break;
	case FP_FMT_YUV420P:
		st[0] = w;
		st[1] = st[2] = cw;
		break;
	default:
		return 0;
	}
	sz[0] = (size_t)st[0] * h;
	sz[1] = (size_t)st[1] * ch;
	sz[2] = (size_t)st[2] * ch;
	if (stride)
		for (int i = 0; i < 4; i++)
			stride[i] = st[i];
	if (size)
		for (int i = 0; i < 4; i++)
			size[i] = sz[i];
	return sz[0] + sz[1] + sz[2];
}

bool
convert_is_identity(const AVFrame *src, enum fp_pixfmt fmt, int w, int h)
{
	return src->format == convert_av_pixfmt(fmt) && src->width == w &&
	       src->height == h;
}

/* Source window that has the aspect of w x h, centered, aligned to the
 * chroma subsampling; pointers into src for it. */
static void
convert_crop_src(const AVFrame *src, int w, int h, const uint8_t *data[4],
                 int *cw, int *ch)
{
	const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(src->format);
	int sw = src->width, sh = src->height;
	int ax = 1 << desc->log2_chroma_w, ay = 1 << desc->log2_chroma_h;
	int x0 = 0, y0 = 0, steps[4];

	*cw = sw;
	*ch = sh;
	if ((int64_t)sw * h > (int64_t)sh * w) {
		*cw = (int)((int64_t)sh * w / h);
		*cw -= *cw % ax;
		x0 = (sw - *cw) / 2;
		x0 -= x0 % ax;
	} else if ((int64_t)sw * h < (int64_t)sh * w) {
		*ch = (int)((int64_t)sw * h / w);
		*ch -= *ch % ay;
		y0 = (sh - *ch) / 2;
		y0 -= y0 % ay;
	}
	if (*cw < 1)
		*cw = 1;
	if (*ch < 1)
		*ch = 1;
	av_image_fill_max_pixsteps(steps, NULL, desc);
	for (int p = 0; p < 4; p++) {
		int sx = x0, sy = y0;

		if (src->data[p] == NULL) {
			data[p] = NULL;
			continue;
		}
		if (p == 1 || p == 2) {
			sx >>= desc->log2_chroma_w;
			sy >>= desc->log2_chroma_h;
		}
		data[p] = src->data[p] + (ptrdiff_t)sy * src->linesize[p] +
		          (ptrdiff_t)sx * steps[p];
	}
}

int
convert_to_planes(convert *c, const AVFrame *src, enum fp_pixfmt fmt, int w,
                  int h, uint8_t *const plane[4], const int stride[4])
{
	enum AVPixelFormat dfmt = convert_av_pixfmt(fmt);
	const uint8_t *sdata[4];
	int cw, ch, ret;

	if (dfmt == AV_PIX_FMT_NONE || w <= 0 || h <= 0 || src->width <= 0 ||
	    src->height <= 0 || av_pix_fmt_desc_get(src->format) == NULL)
		return -EINVAL;
	if (convert_is_identity(src, fmt, w, h)) {
		uint8_t *dp[4] = {plane[0], plane[1], plane[2], plane[3]};
		int ds[4] = {stride[0], stride[1], stride[2], stride[3]};

		av_image_copy(dp, ds, (const uint8_t **)src->data,
		              src->linesize, dfmt, w, h);
		return 0;
	}
	convert_crop_src(src, w, h, sdata, &cw, &ch);
	c->to_sws = sws_getCachedContext(c->to_sws, cw, ch, src->format, w, h,
	                                 dfmt, SWS_BILINEAR, NULL, NULL, NULL);
	if (c->to_sws == NULL)
		return AVERROR(EINVAL);
	ret = sws_scale(c->to_sws, sdata, src->linesize, 0, ch, plane, stride);
	return ret < 0 ? ret : 0;
}

/* A yuv420p frame of w x h whose pixels come from the pool. */
static int
convert_pool_frame(convert *c, int w, int h, AVFrame **out)
{
	int ls[4] = {FFALIGN(w, 64), FFALIGN((w + 1) / 2, 64),
	             FFALIGN((w + 1) / 2, 64), 0};
	size_t ysz = (size_t)ls[0] * h, csz = (size_t)ls[1] * ((h + 1) / 2);
	AVFrame *f;

	if (c->pool == NULL || c->pool_w != w || c->pool_h != h) {
		av_buffer_pool_uninit(&c->pool);
		c->pool_size = ysz + 2 * csz + 64;
		c->pool = av_buffer_pool_init(c->pool_size, NULL);
		if (c->pool == NULL)
			return AVERROR(ENOMEM);
		c->pool_w = w;
		c->pool_h = h;
	}
	f = av_frame_alloc();
	if (f == NULL)
		return AVERROR(ENOMEM);
	f->buf[0] = av_buffer_pool_get(c->pool);
	if (f->buf[0] == NULL) {
		av_frame_free(&f);
		return AVERROR(ENOMEM);
	}
	f->format = AV_PIX_FMT_YUV420P;
	f->width = w;
	f->height = h;
	f->data[0] = f->buf[0]->data;
	f->data[1] = f->data[0] + ysz;
	f->data[2] = f->data[1] + csz;
	for (int i = 0; i < 3; i++)
		f->linesize[i] = ls[i];
	f->extended_data = f->data;
	*out = f;
	return 0;
}

int
convert_from_planes(convert *c, const uint8_t *const plane[4],
                    const int stride[4], enum fp_pixfmt fmt, int w, int h,
                    int64_t pts, AVRational tb, AVFrame **out)
{
	enum AVPixelFormat sfmt = convert_av_pixfmt(fmt);
	AVFrame *f = NULL;
	int ret;

	if (sfmt == AV_PIX_FMT_NONE || w < 2 || h < 2 || w > 16384 || h > 16384)
		return -EINVAL;
	ret = convert_pool_frame(c, w, h, &f);
	if (ret < 0)
		return ret;
	if (sfmt == AV_PIX_FMT_YUV420P) {
		const uint8_t *sp[4] = {plane[0], plane[1], plane[2], plane[3]};

		av_image_copy(f->data, f->linesize, sp, stride, sfmt, w, h);
	} else {
		c->from_sws = sws_getCachedContext(
		    c->from_sws, w, h, sfmt, w, h, AV_PIX_FMT_YUV420P,
		    SWS_BILINEAR, NULL, NULL, NULL);
		if (c->from_sws == NULL) {
			ret = AVERROR(EINVAL);
			goto err_free_frame;
		}
		ret = sws_scale(c->from_sws, (const uint8_t *const *)plane,
		                stride, 0, h, f->data, f->linesize);
		if (ret < 0)
			goto err_free_frame;
	}
	f->pts = pts;
	f->time_base = tb;
	*out = f;
	return 0;

err_free_frame:
	av_frame_free(&f);
	return ret;
}

int
convert_wrap_planes(uint8_t *const plane[4], const int stride[4],
                    enum fp_pixfmt fmt, int w, int h, int64_t pts,
                    AVRational tb, void (*release)(void *opaque, uint8_t *data),
                    void *opaque, AVFrame **out)
{
	AVFrame *f;

	if (fmt != FP_FMT_YUV420P)
		return -ENOTSUP;
	if (w < 2 || h < 2 || w > 16384 || h > 16384 || plane[0] == NULL ||
	    plane[1] == NULL || plane[2] == NULL || release == NULL)
		return -EINVAL;
	f = av_frame_alloc();
	if (f == NULL)
		return -ENOMEM;
	/* size is nominal: the buffer is only a lifetime handle */
	f->buf[0] = av_buffer_create(plane[0], 1, release, opaque,
	                             AV_BUFFER_FLAG_READONLY);
	if (f->buf[0] == NULL) {
		av_frame_free(&f);
		return -ENOMEM;
	}
	f->format = AV_PIX_FMT_YUV420P;
	f->width = w;
	f->height = h;
	for (int i = 0; i < 3; i++) {
		f->data[i] = plane[i];
		f->linesize[i] = stride[i];
	}
	f->extended_data = f->data;
	f->pts = pts;
	f->time_base = tb;
	*out = f;
	return 0;
}
