/*
 * Encoder thread: a bounded queue of AVFrame references in, libx264 +
 * libopus (via swresample and an audio FIFO) in the middle, a fresh mpegts
 * muxer per segment over an AVIO write callback out. Implements the A/V
 * rules of PROTOCOL.md 4.3 on the input's clock (time base 1/90000).
 */
#include "encode.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#include "log.h"

#define ENC_TB ((AVRational){1, 90000})
#define ENC_AUDIO_RATE 48000
#define ENC_OPUS_FRAME 960
#define ENC_AVIO_BUF (188 * 64)
#define ENC_SYNC_SECS 2        /* AUDIO_BUFFER_SECS */
#define ENC_AUDIO_QUEUE 100    /* AUDIO_BUFFER_LEN */
#define ENC_MAX_LATE_VIDEO 100 /* MAX_DROPPED_VIDEO */
/* |pts| bound in 1/90000 (about 1500 years): differences of two stay far
 * from int64 overflow in the sync arithmetic below */
#define ENC_MAX_PTS ((int64_t)1 << 52)

enum enc_kind { ENC_VIDEO, ENC_AUDIO };

struct enc_item {
	enum enc_kind kind;
	AVFrame *frame; /* preallocated shell; holds a ref while queued */
};

struct encoder {
	struct encoder_cfg cfg;
	struct encoder_callbacks cb;
	char name[64];
	char preset[32], tune[32];

	/* input queue */
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	struct enc_item *items;
	int cap, head, len;
	bool ended, closed, dead;
	pthread_t thread;
	bool started, joined;

	/* encoder-thread state: every per-stream libav context */
	AVCodecContext *venc, *aenc;
	struct SwsContext *sws;
	AVFrame *vconv; /* yuv420p at output size, reused */
	AVFrame *vsend; /* the reference handed to x264 */
	SwrContext *swr;
	int swr_in_rate, swr_in_fmt;
	AVChannelLayout swr_in_layout;
	AVAudioFifo *fifo;
	int64_t fifo_pts; /* pts (1/48000) of the fifo's first sample */
	AVFrame *aframe;  /* opus input frame, reused */
	uint8_t *rsbuf;   /* resampler output, reused */
	int rsbuf_samples;
	AVPacket *pkt;

	AVFrame *pending[ENC_AUDIO_QUEUE]; /* audio before the first video */
	int npending;
	bool have_video;     /* first video frame seen */
	int64_t first_audio; /* 1/90000, AV_NOPTS_VALUE: none yet */
	int64_t last_audio;  /* newest audio pts (1/90000) */
	int64_t last_video;  /* newest video pts sent to x264 */
	int64_t last_kf;     /* pts of the last forced/seen keyframe */

	AVFormatContext *seg;
	AVIOContext *seg_io;
	int seg_vidx, seg_aidx;
	uint64_t seg_seq;
	int64_t seg_start;
	int seg_status; /* error from on_segment_bytes */

	atomic_uint_fast64_t video_in, audio_in, queue_drops;
	atomic_uint_fast64_t video_encoded, audio_encoded, late_video_drops;
	atomic_uint_fast64_t early_audio_drops, segments, bytes;
};

static void enc_report(encoder *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
enc_report(encoder *e, int err, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("encode", "%s stream=%s", text, e->name);
	if (e->cb.on_error)
		e->cb.on_error(e->cb.opaque, err, text);
}

/* ---- segments ---------------------------------------------------------- */

static int
enc_write_cb(void *opaque, uint8_t *buf, int size)
{
	encoder *e = opaque;
	int ret = 0;

	atomic_fetch_add(&e->bytes, (uint64_t)size);
	if (e->cb.on_segment_bytes)
		ret = e->cb.on_segment_bytes(e->cb.opaque, e->seg_seq, buf,
		                             (size_t)size);
	if (ret < 0) {
		e->seg_status = ret;
		return ret;
	}
	return size;
}

/* Ends the open segment; header_written false: the muxer never started
   (avformat_write_header failed), so no trailer is written. */
static void
enc_segment_end(encoder *e, bool header_written)
{
	if (e->seg == NULL)
		return;
	if (header_written)
		av_write_trailer(e->seg);
	avio_flush(e->seg_io);
	if (e->cb.on_segment_end)
		e->cb.on_segment_end(e->cb.opaque, e->seg_seq);
	e->seg_seq++;
	avformat_free_context(e->seg);
	e->seg = NULL;
	av_freep(&e->seg_io->buffer);
	avio_context_free(&e->seg_io);
}

static void
enc_segment_close(encoder *e)
{
	enc_segment_end(e, true);
}

static int
enc_add_stream(AVFormatContext *oc, AVCodecContext *ctx, int *idx)
{
	AVStream *st = avformat_new_stream(oc, NULL);
	int ret;

	if (st == NULL)
		return AVERROR(ENOMEM);
	ret = avcodec_parameters_from_context(st->codecpar, ctx);
	if (ret < 0)
		return ret;
	st->time_base = ENC_TB;
	*idx = st->index;
	return 0;
}

static int
enc_segment_open(encoder *e, int64_t start)
{
	unsigned char *buf;
	int ret;

	ret = avformat_alloc_output_context2(&e->seg, NULL, "mpegts", NULL);
	if (ret < 0)
		return ret;
	buf = av_malloc(ENC_AVIO_BUF);
	if (buf == NULL) {
		ret = AVERROR(ENOMEM);
		goto err_free_seg;
	}
	e->seg_io = avio_alloc_context(buf, ENC_AVIO_BUF, 1, e, NULL,
	                               enc_write_cb, NULL);
	if (e->seg_io == NULL) {
		av_free(buf);
		ret = AVERROR(ENOMEM);
		goto err_free_seg;
	}
	e->seg->pb = e->seg_io;
	e->seg->flags |= AVFMT_FLAG_CUSTOM_IO;
	e->seg->max_interleave_delta = 2100000;
	e->seg->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
	e->seg_vidx = e->seg_aidx = -1;
	if (e->venc &&
	    (ret = enc_add_stream(e->seg, e->venc, &e->seg_vidx)) < 0)
		goto err_free_io;
	if (e->aenc &&
	    (ret = enc_add_stream(e->seg, e->aenc, &e->seg_aidx)) < 0)
		goto err_free_io;
	if (e->cb.on_segment_begin)
		e->cb.on_segment_begin(e->cb.opaque, e->seg_seq);
	ret = avformat_write_header(e->seg, NULL);
	if (ret < 0) {
		enc_segment_end(e, false);
		return ret;
	}
	e->seg_start = start;
	atomic_fetch_add(&e->segments, 1);
	return 0;

err_free_io:
	av_freep(&e->seg_io->buffer);
	avio_context_free(&e->seg_io);
err_free_seg:
	avformat_free_context(e->seg);
	e->seg = NULL;
	return ret;
}

/* Writes one encoded packet (time base of its encoder), cutting a segment
 * first when this is a keyframe due for a cut (audio-only: any packet). */
static int
enc_mux(encoder *e, AVPacket *pkt, bool video)
{
	AVCodecContext *ctx = video ? e->venc : e->aenc;
	int64_t seg_len = (int64_t)(e->cfg.segment_secs * 90000);
	bool cutter = video || e->venc == NULL;
	int ret;

	av_packet_rescale_ts(pkt, ctx->time_base, ENC_TB);
	if (pkt->dts != AV_NOPTS_VALUE && pkt->dts < 0)
		return 0; /* only the codec delay before pts 0 */
	if (cutter && (pkt->flags & AV_PKT_FLAG_KEY) &&
	    (e->seg == NULL || pkt->pts - e->seg_start >= seg_len)) {
		enc_segment_close(e);
		ret = enc_segment_open(e, pkt->pts);
		if (ret < 0)
			return ret;
	}
	if (e->seg == NULL)
		return 0; /* audio before the first video keyframe */
	pkt->stream_index = video ? e->seg_vidx : e->seg_aidx;
	if (pkt->stream_index < 0)
		return 0;
	ret = av_interleaved_write_frame(e->seg, pkt);
	if (e->seg_status < 0)
		return e->seg_status;
	if (ret < 0) {
		enc_report(e, ret, "mux: %s", av_err2str(ret));
		return 0;
	}
	atomic_fetch_add(video ? &e->video_encoded : &e->audio_encoded, 1);
	return 0;
}

/* Send/receive loop of one encoder (frame NULL: flush). */
static int
enc_encode(encoder *e, AVCodecContext *ctx, const AVFrame *frame)
{
	int ret = avcodec_send_frame(ctx, frame);

	if (ret < 0 && ret != AVERROR_EOF)
		return ret;
	for (;;) {
		ret = avcodec_receive_packet(ctx, e->pkt);
		if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
			return 0;
		if (ret < 0)
			return ret;
		ret = enc_mux(e, e->pkt, ctx == e->venc);
		av_packet_unref(e->pkt);
		if (ret < 0)
			return ret;
	}
}

/* ---- codecs ------------------------------------------------------------ */

static int
enc_open_video(encoder *e, int w, int h)
{
	const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
	AVCodecContext *c;
	int ret;

	if (codec == NULL)
		return AVERROR_ENCODER_NOT_FOUND;
	c = avcodec_alloc_context3(codec);
	if (c == NULL)
		return AVERROR(ENOMEM);
	c->width = w & ~1;
	c->height = h & ~1;
	c->pix_fmt = AV_PIX_FMT_YUV420P;
	c->time_base = ENC_TB;
	c->framerate = e->cfg.frame_rate;
	c->max_b_frames = 0;
	c->gop_size =
	    (int)(e->cfg.gop_secs * av_q2d(e->cfg.frame_rate) * 4) + 1;
	c->thread_count = e->cfg.threads;
	if (e->cfg.bitrate > 0)
		c->bit_rate = e->cfg.bitrate;
	av_opt_set(c->priv_data, "preset", e->preset, 0);
	if (e->tune[0])
		av_opt_set(c->priv_data, "tune", e->tune, 0);
	av_opt_set(c->priv_data, "forced-idr", "1", 0);
	ret = avcodec_open2(c, codec, NULL);
	if (ret < 0) {
		avcodec_free_context(&c);
		return ret;
	}
	e->venc = c;
	e->vconv = av_frame_alloc();
	e->vsend = av_frame_alloc();
	if (e->vconv == NULL || e->vsend == NULL)
		return AVERROR(ENOMEM);
	e->vconv->format = AV_PIX_FMT_YUV420P;
	e->vconv->width = c->width;
	e->vconv->height = c->height;
	return av_frame_get_buffer(e->vconv, 0);
}

static int
enc_open_audio(encoder *e)
{
	const AVCodec *codec = avcodec_find_encoder_by_name("libopus");
	AVCodecContext *c;
	int ret;

	if (codec == NULL)
		return AVERROR_ENCODER_NOT_FOUND;
	c = avcodec_alloc_context3(codec);
	if (c == NULL)
		return AVERROR(ENOMEM);
	c->sample_rate = ENC_AUDIO_RATE;
	c->sample_fmt = AV_SAMPLE_FMT_S16;
	av_channel_layout_default(&c->ch_layout, 1);
	c->time_base = (AVRational){1, ENC_AUDIO_RATE};
	ret = avcodec_open2(c, codec, NULL);
	if (ret < 0) {
		avcodec_free_context(&c);
		return ret;
	}
	e->aenc = c;
	e->fifo = av_audio_fifo_alloc(c->sample_fmt, 1, 4 * ENC_OPUS_FRAME);
	e->aframe = av_frame_alloc();
	if (e->fifo == NULL || e->aframe == NULL)
		return AVERROR(ENOMEM);
	e->aframe->format = c->sample_fmt;
	e->aframe->sample_rate = ENC_AUDIO_RATE;
	e->aframe->nb_samples =
	    c->frame_size > 0 ? c->frame_size : ENC_OPUS_FRAME;
	ret = av_channel_layout_copy(&e->aframe->ch_layout, &c->ch_layout);
	if (ret < 0)
		return ret;
	e->fifo_pts = AV_NOPTS_VALUE;
	return av_frame_get_buffer(e->aframe, 0);
}

/* ---- video ------------------------------------------------------------- */

static int
enc_video(encoder *e, AVFrame *f)
{
	int64_t pts = av_rescale_q(f->pts, f->time_base, ENC_TB);
	int64_t gop = (int64_t)(e->cfg.gop_secs * 90000);
	int64_t seg_len = (int64_t)(e->cfg.segment_secs * 90000);
	const AVFrame *in = f;
	int ret;

	if (e->venc == NULL) {
		int w = e->cfg.width > 0 ? e->cfg.width : f->width;
		int h = e->cfg.height > 0 ? e->cfg.height : f->height;

		ret = enc_open_video(e, w, h);
		if (ret < 0) {
			enc_report(e, ret, "cannot open libx264 at %dx%d: %s",
			           w, h, av_err2str(ret));
			return ret;
		}
	}
	if (e->last_video != AV_NOPTS_VALUE && pts <= e->last_video) {
		enc_report(
		    e, AVERROR_INVALIDDATA,
		    "video pts %" PRId64 " not increasing: frame dropped", pts);
		return 0;
	}
	if (f->format != AV_PIX_FMT_YUV420P || f->width != e->venc->width ||
	    f->height != e->venc->height) {
		e->sws = sws_getCachedContext(
		    e->sws, f->width, f->height, f->format, e->venc->width,
		    e->venc->height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL,
		    NULL, NULL);
		if (e->sws == NULL)
			return AVERROR(EINVAL);
		ret = av_frame_make_writable(e->vconv);
		if (ret < 0)
			return ret;
		ret = sws_scale(e->sws, (const uint8_t *const *)f->data,
		                f->linesize, 0, f->height, e->vconv->data,
		                e->vconv->linesize);
		if (ret < 0)
			return ret;
		in = e->vconv;
	}
	/* pts and pict_type go on our own reference, never on the caller's */
	ret = av_frame_ref(e->vsend, in);
	if (ret < 0)
		return ret;
	e->vsend->pts = pts;
	e->vsend->time_base = ENC_TB;
	e->vsend->pict_type = AV_PICTURE_TYPE_NONE;
	if (e->last_kf == AV_NOPTS_VALUE || pts - e->last_kf >= gop ||
	    (e->seg != NULL && pts - e->seg_start >= seg_len)) {
		e->vsend->pict_type = AV_PICTURE_TYPE_I;
		e->last_kf = pts;
	}
	e->last_video = pts;
	ret = avcodec_send_frame(e->venc, e->vsend);
	av_frame_unref(e->vsend);
	if (ret < 0)
		return ret;
	for (;;) {
		ret = avcodec_receive_packet(e->venc, e->pkt);
		if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
			return 0;
		if (ret < 0)
			return ret;
		if (e->pkt->flags & AV_PKT_FLAG_KEY)
			e->last_kf = av_rescale_q(e->pkt->pts,
			                          e->venc->time_base, ENC_TB);
		ret = enc_mux(e, e->pkt, true);
		av_packet_unref(e->pkt);
		if (ret < 0)
			return ret;
	}
}

/* ---- audio ------------------------------------------------------------- */

static int
enc_swr_setup(encoder *e, const AVFrame *f)
{
	int ret;

	if (e->swr && e->swr_in_rate == f->sample_rate &&
	    e->swr_in_fmt == f->format &&
	    av_channel_layout_compare(&e->swr_in_layout, &f->ch_layout) == 0)
		return 0;
	swr_free(&e->swr);
	av_channel_layout_uninit(&e->swr_in_layout);
	ret = av_channel_layout_copy(&e->swr_in_layout, &f->ch_layout);
	if (ret < 0)
		return ret;
	ret = swr_alloc_set_opts2(
	    &e->swr, &e->aenc->ch_layout, e->aenc->sample_fmt, ENC_AUDIO_RATE,
	    &e->swr_in_layout, f->format, f->sample_rate, 0, NULL);
	if (ret < 0)
		return ret;
	ret = swr_init(e->swr);
	if (ret < 0) {
		swr_free(&e->swr);
		return ret;
	}
	e->swr_in_rate = f->sample_rate;
	e->swr_in_fmt = f->format;
	return 0;
}

/* Encodes every full opus frame in the FIFO (flush: pads the tail). */
static int
enc_drain_fifo(encoder *e, bool flush)
{
	int fs = e->aframe->nb_samples;
	int ret;

	while (av_audio_fifo_size(e->fifo) >= fs ||
	       (flush && av_audio_fifo_size(e->fifo) > 0)) {
		int n = av_audio_fifo_size(e->fifo);

		ret = av_frame_make_writable(e->aframe);
		if (ret < 0)
			return ret;
		if (n > fs)
			n = fs;
		av_audio_fifo_read(e->fifo, (void **)e->aframe->data, n);
		if (n < fs)
			av_samples_set_silence(e->aframe->data, n, fs - n, 1,
			                       e->aenc->sample_fmt);
		e->aframe->pts = e->fifo_pts;
		e->fifo_pts += n;
		ret = enc_encode(e, e->aenc, e->aframe);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int
enc_audio(encoder *e, const AVFrame *f)
{
	int64_t pts48 =
	    av_rescale_q(f->pts, f->time_base, (AVRational){1, ENC_AUDIO_RATE});
	int out_max, n, ret;

	if (e->aenc == NULL)
		return 0;
	ret = enc_swr_setup(e, f);
	if (ret < 0) {
		enc_report(e, ret, "audio resampler refused %d Hz %d ch: %s",
		           f->sample_rate, f->ch_layout.nb_channels,
		           av_err2str(ret));
		return 0;
	}
	/* keep the input's clock: re-anchor when input and fifo drift apart
	   by more than one opus frame (a gap or overlap in the input) */
	if (e->fifo_pts == AV_NOPTS_VALUE ||
	    llabs(pts48 - (e->fifo_pts + av_audio_fifo_size(e->fifo))) >
	        ENC_OPUS_FRAME)
		e->fifo_pts = pts48 - av_audio_fifo_size(e->fifo);
	out_max = swr_get_out_samples(e->swr, f->nb_samples);
	if (out_max > e->rsbuf_samples) {
		av_freep(&e->rsbuf);
		ret = av_samples_alloc(&e->rsbuf, NULL, 1, out_max,
		                       e->aenc->sample_fmt, 0);
		if (ret < 0)
			return ret;
		e->rsbuf_samples = out_max;
	}
	n = swr_convert(e->swr, &e->rsbuf, out_max,
	                (const uint8_t **)f->extended_data, f->nb_samples);
	if (n < 0)
		return n;
	if (n > 0 && av_audio_fifo_write(e->fifo, (void **)&e->rsbuf, n) < n)
		return AVERROR(ENOMEM);
	e->last_audio = av_rescale_q(f->pts, f->time_base, ENC_TB);
	return enc_drain_fifo(e, false);
}

/* ---- PROTOCOL.md 4.3 sync rules ----------------------------------------- */

static int
enc_handle_audio(encoder *e, AVFrame *f)
{
	int64_t pts = av_rescale_q(f->pts, f->time_base, ENC_TB);

	if (e->first_audio == AV_NOPTS_VALUE)
		e->first_audio = pts;
	if (e->cfg.has_video && !e->have_video) {
		if (e->npending == ENC_AUDIO_QUEUE) {
			av_frame_free(&e->pending[0]);
			memmove(e->pending, e->pending + 1,
			        (ENC_AUDIO_QUEUE - 1) * sizeof(e->pending[0]));
			e->npending--;
			atomic_fetch_add(&e->early_audio_drops, 1);
		}
		e->pending[e->npending] = av_frame_clone(f);
		if (e->pending[e->npending] == NULL)
			return AVERROR(ENOMEM);
		e->npending++;
		return 0;
	}
	return enc_audio(e, f);
}

static int
enc_handle_video(encoder *e, AVFrame *f)
{
	int64_t pts = av_rescale_q(f->pts, f->time_base, ENC_TB);
	int64_t lim = (int64_t)ENC_SYNC_SECS * 90000;
	int ret, i;

	if (!e->have_video) {
		if (e->first_audio != AV_NOPTS_VALUE &&
		    llabs(e->first_audio - pts) > lim) {
			enc_report(e, AVERROR_INVALIDDATA,
			           "first audio and first video more than %d s "
			           "apart: encoding stopped",
			           ENC_SYNC_SECS);
			return AVERROR_INVALIDDATA;
		}
		e->have_video = true;
		ret = enc_video(e, f);
		for (i = 0; i < e->npending; i++) {
			AVFrame *a = e->pending[i];
			int64_t apts =
			    av_rescale_q(a->pts, a->time_base, ENC_TB);

			if (ret == 0 && apts >= pts - lim)
				ret = enc_audio(e, a);
			else
				atomic_fetch_add(&e->early_audio_drops, 1);
			av_frame_free(&e->pending[i]);
		}
		e->npending = 0;
		return ret;
	}
	if (e->last_audio != AV_NOPTS_VALUE && pts < e->last_audio - lim) {
		if (atomic_fetch_add(&e->late_video_drops, 1) + 1 >
		    ENC_MAX_LATE_VIDEO) {
			enc_report(e, AVERROR_INVALIDDATA,
			           "more than %d video frames over %d s behind "
			           "audio: encoding stopped",
			           ENC_MAX_LATE_VIDEO, ENC_SYNC_SECS);
			return AVERROR_INVALIDDATA;
		}
		return 0;
	}
	return enc_video(e, f);
}

static int
enc_flush(encoder *e)
{
	int ret = 0;

	if (e->venc && (ret = enc_encode(e, e->venc, NULL)) < 0)
		return ret;
	if (e->aenc && e->fifo_pts != AV_NOPTS_VALUE) {
		if (e->swr) {
			/* resampler tail */
			int n = swr_convert(e->swr, &e->rsbuf, e->rsbuf_samples,
			                    NULL, 0);
			if (n > 0)
				av_audio_fifo_write(e->fifo, (void **)&e->rsbuf,
				                    n);
		}
		if ((ret = enc_drain_fifo(e, true)) < 0)
			return ret;
		if ((ret = enc_encode(e, e->aenc, NULL)) < 0)
			return ret;
	}
	enc_segment_close(e);
	return e->seg_status;
}

/* ---- thread and queue --------------------------------------------------- */

static void *
enc_thread(void *arg)
{
	encoder *e = arg;
	int ret = 0;

	if (e->cfg.has_audio && (ret = enc_open_audio(e)) < 0)
		enc_report(e, ret, "cannot open libopus: %s", av_err2str(ret));
	while (ret >= 0) {
		struct enc_item *it;
		enum enc_kind kind;

		pthread_mutex_lock(&e->lock);
		while (e->len == 0 && !e->closed && !e->ended)
			pthread_cond_wait(&e->not_empty, &e->lock);
		if (e->closed) {
			pthread_mutex_unlock(&e->lock);
			ret = AVERROR_EXIT;
			break;
		}
		if (e->len == 0) { /* ended and drained */
			pthread_mutex_unlock(&e->lock);
			ret = 1;
			break;
		}
		it = &e->items[e->head];
		kind = it->kind;
		pthread_mutex_unlock(&e->lock);

		if (kind == ENC_VIDEO)
			ret = enc_handle_video(e, it->frame);
		else
			ret = enc_handle_audio(e, it->frame);
		av_frame_unref(it->frame);

		pthread_mutex_lock(&e->lock);
		e->head = (e->head + 1) % e->cap;
		e->len--;
		pthread_cond_broadcast(&e->not_full);
		pthread_mutex_unlock(&e->lock);
	}
	if (ret == 1)
		ret = enc_flush(e);
	else
		enc_segment_close(e);
	if (ret < 0 && ret != AVERROR_EXIT)
		log_warn("encode", "encoder stopped: %s stream=%s",
		         av_err2str(ret), e->name);
	pthread_mutex_lock(&e->lock);
	e->dead = true;
	pthread_cond_broadcast(&e->not_full);
	pthread_mutex_unlock(&e->lock);
	if (e->cb.on_end)
		e->cb.on_end(e->cb.opaque, ret);
	return NULL;
}

static int
enc_push(encoder *e, enum enc_kind kind, const AVFrame *f, bool wait)
{
	int ret = 0;

	pthread_mutex_lock(&e->lock);
	while (wait && e->len == e->cap && !e->closed && !e->dead)
		pthread_cond_wait(&e->not_full, &e->lock);
	if (e->closed || e->dead)
		ret = -ECANCELED;
	else if (e->ended)
		ret = -EPIPE;
	else if (e->len == e->cap)
		ret = -EAGAIN;
	else {
		struct enc_item *it = &e->items[(e->head + e->len) % e->cap];

		it->kind = kind;
		if ((ret = av_frame_ref(it->frame, f)) < 0) {
			pthread_mutex_unlock(&e->lock);
			return ret;
		}
		it->frame->time_base = f->time_base;
		e->len++;
		pthread_cond_signal(&e->not_empty);
	}
	pthread_mutex_unlock(&e->lock);
	if (ret == -EAGAIN)
		atomic_fetch_add(&e->queue_drops, 1);
	else if (ret == 0)
		atomic_fetch_add(
		    kind == ENC_VIDEO ? &e->video_in : &e->audio_in, 1);
	return ret;
}

/*
 * True when frame's pts is a time the encoder's A/V arithmetic can take: a
 * valid time base and, on the 1/90000 clock, within +-ENC_MAX_PTS. Audio
 * pts come from the worker (untrusted): an absurd one is refused here, not
 * turned into signed overflow on the encoder thread.
 */
static bool
enc_pts_ok(const AVFrame *frame)
{
	int64_t p;

	if (frame->pts == AV_NOPTS_VALUE || frame->time_base.num <= 0 ||
	    frame->time_base.den <= 0)
		return false;
	p = av_rescale_q(frame->pts, frame->time_base, ENC_TB);
	return p != AV_NOPTS_VALUE && p >= -ENC_MAX_PTS && p <= ENC_MAX_PTS;
}

int
encoder_push_video(encoder *e, const AVFrame *frame, bool wait)
{
	if (frame == NULL || !enc_pts_ok(frame) || frame->width < 2 ||
	    frame->height < 2)
		return -EINVAL;
	return enc_push(e, ENC_VIDEO, frame, wait);
}

int
encoder_push_audio(encoder *e, const AVFrame *frame, bool wait)
{
	if (frame == NULL || !enc_pts_ok(frame) || frame->sample_rate <= 0 ||
	    frame->nb_samples <= 0 || frame->ch_layout.nb_channels <= 0)
		return -EINVAL;
	return enc_push(e, ENC_AUDIO, frame, wait);
}

void
encoder_end(encoder *e)
{
	pthread_mutex_lock(&e->lock);
	e->ended = true;
	pthread_cond_broadcast(&e->not_empty);
	pthread_cond_broadcast(&e->not_full);
	pthread_mutex_unlock(&e->lock);
}

void
encoder_close(encoder *e)
{
	pthread_mutex_lock(&e->lock);
	e->closed = true;
	pthread_cond_broadcast(&e->not_empty);
	pthread_cond_broadcast(&e->not_full);
	pthread_mutex_unlock(&e->lock);
}

void
encoder_stop(encoder *e)
{
	if (e->started && !e->joined) {
		pthread_join(e->thread, NULL);
		e->joined = true;
	}
}

int
encoder_create(encoder **out, const struct encoder_cfg *cfg,
               const struct encoder_callbacks *cb)
{
	encoder *e;
	int ret, i;

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	if (cfg)
		e->cfg = *cfg;
	if (cb)
		e->cb = *cb;
	snprintf(e->name, sizeof(e->name), "%s",
	         e->cfg.name ? e->cfg.name : "-");
	snprintf(e->preset, sizeof(e->preset), "%s",
	         e->cfg.preset ? e->cfg.preset : "superfast");
	snprintf(e->tune, sizeof(e->tune), "%s",
	         e->cfg.tune ? e->cfg.tune : "zerolatency");
	e->cfg.name = e->name;
	e->cfg.preset = e->preset;
	e->cfg.tune = e->tune;
	if (e->cfg.gop_secs <= 0)
		e->cfg.gop_secs = 2.0;
	if (e->cfg.segment_secs <= 0)
		e->cfg.segment_secs = 2.0;
	if (e->cfg.frame_rate.num <= 0 || e->cfg.frame_rate.den <= 0)
		e->cfg.frame_rate = (AVRational){30, 1};
	if (e->cfg.queue_frames <= 0)
		e->cfg.queue_frames = 64;
	if (e->cfg.threads < 0)
		e->cfg.threads = 0;
	e->first_audio = e->last_audio = e->last_video = AV_NOPTS_VALUE;
	e->last_kf = AV_NOPTS_VALUE;
	e->cap = e->cfg.queue_frames;
	e->items = calloc((size_t)e->cap, sizeof(*e->items));
	e->pkt = av_packet_alloc();
	if (e->items == NULL || e->pkt == NULL) {
		ret = -ENOMEM;
		goto err_free;
	}
	for (i = 0; i < e->cap; i++) {
		e->items[i].frame = av_frame_alloc();
		if (e->items[i].frame == NULL) {
			ret = -ENOMEM;
			goto err_free;
		}
	}
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->not_empty, NULL);
	pthread_cond_init(&e->not_full, NULL);
	ret = -pthread_create(&e->thread, NULL, enc_thread, e);
	if (ret < 0)
		goto err_destroy_sync;
	e->started = true;
	*out = e;
	return 0;

err_destroy_sync:
	pthread_cond_destroy(&e->not_full);
	pthread_cond_destroy(&e->not_empty);
	pthread_mutex_destroy(&e->lock);
err_free:
	if (e->items)
		for (i = 0; i < e->cap; i++)
			av_frame_free(&e->items[i].frame);
	free(e->items);
	av_packet_free(&e->pkt);
	free(e);
	return ret;
}

void
encoder_destroy(encoder **ep)
{
	encoder *e = *ep;
	int i;

	if (e == NULL)
		return;
	encoder_close(e);
	encoder_stop(e);
	for (i = 0; i < e->cap; i++)
		av_frame_free(&e->items[i].frame);
	free(e->items);
	for (i = 0; i < e->npending; i++)
		av_frame_free(&e->pending[i]);
	enc_segment_close(e);
	avcodec_free_context(&e->venc);
	avcodec_free_context(&e->aenc);
	sws_freeContext(e->sws);
	av_frame_free(&e->vconv);
	av_frame_free(&e->vsend);
	swr_free(&e->swr);
	av_channel_layout_uninit(&e->swr_in_layout);
	av_audio_fifo_free(e->fifo);
	av_frame_free(&e->aframe);
	av_freep(&e->rsbuf);
	av_packet_free(&e->pkt);
	pthread_cond_destroy(&e->not_full);
	pthread_cond_destroy(&e->not_empty);
	pthread_mutex_destroy(&e->lock);
	free(e);
	*ep = NULL;
}

void
encoder_get_stats(encoder *e, struct encoder_stats *out)
{
	out->video_in = atomic_load(&e->video_in);
	out->audio_in = atomic_load(&e->audio_in);
	out->queue_drops = atomic_load(&e->queue_drops);
	out->video_encoded = atomic_load(&e->video_encoded);
	out->audio_encoded = atomic_load(&e->audio_encoded);
	out->late_video_drops = atomic_load(&e->late_video_drops);
	out->early_audio_drops = atomic_load(&e->early_audio_drops);
	out->segments = atomic_load(&e->segments);
	out->bytes = atomic_load(&e->bytes);
}
