/*
 * Fixtures of the media tests (media_test.c: round trips and conditioning,
 * media_bad_test.c: bad input): a decoder sink that records frames and can
 * condition and re-encode them, an encoder output collector, chunked
 * feeding, and the shared main(). Header-only.
 */
#ifndef CT_MEDIA_UTIL_H
#define CT_MEDIA_UTIL_H

#include "harness.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include <libavutil/imgutils.h>

#include "clock.h"
#include "gateway/bytequeue.h"
#include "gateway/convert.h"
#include "gateway/decode.h"
#include "gateway/encode.h"
#include "log.h"
#include "media_gen.h"

#define SINK_MAX 1024

/* Collects what a decoder yields; optionally conditions and re-encodes. */
struct sink {
	int nv, na, nerr, nkey_first;
	int64_t vpts[SINK_MAX];
	int vw[SINK_MAX], vh[SINK_MAX];
	uint8_t *y[SINK_MAX]; /* luma copies when keep_y */
	bool keep_y;
	int64_t first_apts, last_aend;
	int end_status;
	bool ended, info_video, info_audio;
	char last_err[256];
	/* pipeline */
	convert *cv;
	bool limit;                /* apply convert_keep_frame */
	int switch_at, switch_fps; /* change max_framerate at frame n */
	int seen;
	encoder *enc;
	enum fp_pixfmt fmt;
	int sw, sh;
	uint8_t *slot;
	int stride[4];
	uint8_t *plane[4];
};

/* Output segments of an encoder. */
struct out {
	uint8_t *seg[GEN_MAX_SEG];
	size_t len[GEN_MAX_SEG], cap[GEN_MAX_SEG];
	int nseg, begun, ended;
	int end_status;
	bool done;
};

static inline void
sink_info(void *o, const struct decoder_info *info)
{
	struct sink *s = o;

	s->info_video = info->has_video;
	s->info_audio = info->has_audio;
}

static inline int
sink_video(void *o, AVFrame *f)
{
	struct sink *s = o;
	int i = s->nv, ret;

	if (s->cv && s->switch_at > 0 && s->seen++ == s->switch_at)
		convert_set_max_framerate(s->cv, s->switch_fps);
	if (s->limit && !convert_keep_frame(s->cv, f->pts, f->time_base))
		return 0;
	if (i < SINK_MAX) {
		s->vpts[i] =
		    av_rescale_q(f->pts, f->time_base, (AVRational){1, 90000});
		s->vw[i] = f->width;
		s->vh[i] = f->height;
		if (s->nv == 0 || f->key_frame)
			s->nkey_first += s->nv == 0 && f->key_frame;
		if (s->keep_y) {
			s->y[i] = malloc((size_t)f->width * f->height);
			av_image_copy_plane(s->y[i], f->width, f->data[0],
			                    f->linesize[0], f->width,
			                    f->height);
		}
	}
	s->nv++;
	if (s->enc) {
		AVFrame *out = NULL;
		int w = s->sw ? s->sw : f->width, h = s->sh ? s->sh : f->height;

		if (s->slot == NULL) {
			size_t sz[4];
			size_t total =
			    convert_layout(s->fmt, w, h, s->stride, sz);

			s->slot = malloc(total);
			s->plane[0] = s->slot;
			s->plane[1] = s->plane[0] + sz[0];
			s->plane[2] = s->plane[1] + sz[1];
			s->plane[3] = NULL;
			s->sw = w;
			s->sh = h;
		}
		ret = convert_to_planes(s->cv, f, s->fmt, s->sw, s->sh,
		                        s->plane, s->stride);
		if (ret < 0)
			return ret;
		ret = convert_from_planes(
		    s->cv, (const uint8_t *const *)s->plane, s->stride, s->fmt,
		    s->sw, s->sh, f->pts, f->time_base, &out);
		if (ret < 0)
			return ret;
		ret = encoder_push_video(s->enc, out, true);
		av_frame_free(&out);
		return ret;
	}
	return 0;
}

static inline int
sink_audio(void *o, AVFrame *f)
{
	struct sink *s = o;
	int64_t pts =
	    av_rescale_q(f->pts, f->time_base, (AVRational){1, 90000});

	if (s->na == 0)
		s->first_apts = pts;
	s->last_aend = pts + av_rescale(f->nb_samples, 90000, f->sample_rate);
	s->na++;
	if (s->enc)
		return encoder_push_audio(s->enc, f, true);
	return 0;
}

static inline void
sink_error(void *o, int err, const char *text)
{
	struct sink *s = o;

	s->nerr++;
	snprintf(s->last_err, sizeof(s->last_err), "%s", text);
}

static inline void
sink_end(void *o, int status)
{
	struct sink *s = o;

	s->end_status = status;
	s->ended = true;
}

static inline void
sink_free(struct sink *s)
{
	for (int i = 0; i < SINK_MAX && i < s->nv; i++)
		free(s->y[i]);
	free(s->slot);
}

static inline void
out_begin(void *o, uint64_t seq)
{
	struct out *p = o;

	CHECK_EQ(seq, (uint64_t)p->nseg);
	CHECK(p->nseg < GEN_MAX_SEG);
	p->nseg++;
	p->begun++;
}

static inline int
out_bytes(void *o, uint64_t seq, const uint8_t *buf, size_t len)
{
	struct out *p = o;
	int i = (int)seq;

	CHECK_EQ(i, p->nseg - 1);
	if (p->len[i] + len > p->cap[i]) {
		p->cap[i] = (p->len[i] + len) * 2;
		p->seg[i] = realloc(p->seg[i], p->cap[i]);
	}
	memcpy(p->seg[i] + p->len[i], buf, len);
	p->len[i] += len;
	return 0;
}

static inline void
out_end(void *o, uint64_t seq)
{
	struct out *p = o;

	p->ended++;
}

static inline void
out_done(void *o, int status)
{
	struct out *p = o;

	p->end_status = status;
	p->done = true;
}

static inline void
out_free(struct out *p)
{
	for (int i = 0; i < p->nseg; i++)
		free(p->seg[i]);
}

/* Feeds segments split at pseudo-random byte boundaries (1..maxchunk). */
static inline void
feed(decoder *d, uint8_t *const *seg, const size_t *len, int nseg,
     unsigned seed, size_t maxchunk)
{
	for (int i = 0; i < nseg; i++) {
		size_t off = 0;

		while (off < len[i]) {
			size_t n = 1 + (size_t)rand_r(&seed) % maxchunk;

			if (n > len[i] - off)
				n = len[i] - off;
			CHECK_OK(decoder_push(d, seg[i] + off, n, true));
			off += n;
		}
	}
	decoder_end(d);
}

static inline struct decoder_callbacks
sink_cb(struct sink *s)
{
	return (struct decoder_callbacks){s,          sink_info,  sink_video,
	                                  sink_audio, sink_error, sink_end};
}

/* Decodes segments into s (no pipeline unless s->enc is set). */
static inline void
decode_all(uint8_t *const *seg, const size_t *len, int nseg, struct sink *s,
           size_t maxchunk)
{
	decoder *d = NULL;
	struct decoder_cfg cfg = {
	    .name = "test", .max_width = 1920, .max_height = 1080};

	struct decoder_callbacks cb = sink_cb(s);

	CHECK_OK(decoder_create(&d, &cfg, &cb));
	feed(d, seg, len, nseg, 1234, maxchunk);
	decoder_stop(d);
	decoder_destroy(&d);
	CHECK(s->ended);
}

/* The callbacks of an encoder that writes into o. */
static inline struct encoder_callbacks
out_cbs(struct out *o)
{
	return (struct encoder_callbacks){o,       out_begin, out_bytes,
	                                  out_end, NULL,      out_done};
}

/*
 * A silent FLTP audio frame (960 samples at 48 kHz, time base 1/48000) and
 * a 64x64 YUV420P test-pattern video frame (time base 1/90000), no pts yet.
 */
static inline void
av_pair_init(AVFrame *a, AVFrame *v, int channels)
{
	a->format = AV_SAMPLE_FMT_FLTP;
	a->sample_rate = 48000;
	a->nb_samples = 960;
	av_channel_layout_default(&a->ch_layout, channels);
	CHECK_OK(av_frame_get_buffer(a, 0));
	av_samples_set_silence(a->data, 0, 960, channels, AV_SAMPLE_FMT_FLTP);
	a->time_base = (AVRational){1, 48000};
	v->format = AV_PIX_FMT_YUV420P;
	v->width = 64;
	v->height = 64;
	CHECK_OK(av_frame_get_buffer(v, 0));
	gen_pattern(v, 0);
	v->time_base = (AVRational){1, 90000};
}

/* main() of the media tests. MEDIA_TEST_DEBUG=1: libav's and our debug lines
 * on stderr. */
static inline int
media_test_main(int argc, char **argv, const struct th_case *cases)
{
	if (getenv("MEDIA_TEST_DEBUG"))
		log_set_level(LOG_DEBUG);
	decoder_quiet_libav();
	return th_run(argc, argv, cases);
}

#endif
