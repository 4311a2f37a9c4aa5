/*
 * Decoder thread: custom AVIOContext over a bytequeue, one continuous mpegts
 * demuxer, lazily opened H.264 and AAC/Opus decoders (first stream of each
 * kind), send/receive loops as in FFmpeg's doc/examples. Owns every libav
 * context of the input side of one stream.
 */
#include "decode.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "bytequeue.h"
#include "log.h"

#define DECODE_AVIO_BUF (64 * 1024)

/* One elementary stream we decode. */
struct decode_es {
	int index; /* stream index, -1: none yet */
	enum AVCodecID codec_id;
	AVCodecContext *ctx;
	AVRational tb;
	bool mismatch_logged;
	bool skipping; /* foreign data seen: wait for a keyframe */
};

struct decoder {
	struct decoder_cfg cfg;
	struct decoder_callbacks cb;
	char name[64];
	bytequeue *queue;
	pthread_t thread;
	bool started, joined;
	atomic_bool closing;

	/* decoder-thread state: all the per-stream libav contexts */
	AVFormatContext *fmt;
	AVIOContext *avio;
	AVPacket *pkt;
	AVFrame *frame;
	struct decode_es video, audio;
	bool info_sent;
	int last_refused_w, last_refused_h;
	bool *ignored; /* per stream index: unsupported, reported */
	unsigned nb_ignored;

	atomic_uint_fast64_t bytes_in, video_frames, audio_frames;
	atomic_uint_fast64_t bad_packets, skipped_frames;
};

static void
decode_av_log(void *avcl, int level, const char *fmt, va_list vl)
{
	char line[512];
	int print_prefix = 1;
	size_t n;

	if (level > AV_LOG_WARNING || log_get_level() < LOG_DEBUG)
		return;
	av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line),
	                    &print_prefix);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n > 0)
		log_msg(LOG_DEBUG, "libav", "%s", line);
}

void
decoder_quiet_libav(void)
{
	av_log_set_callback(decode_av_log);
}

static void decode_report(decoder *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
decode_report(decoder *d, int err, const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_debug("decode", "%s stream=%s", text, d->name);
	if (d->cb.on_error)
		d->cb.on_error(d->cb.opaque, err, text);
}

static int
decode_read_cb(void *opaque, uint8_t *buf, int size)
{
	decoder *d = opaque;
	long n = bytequeue_read(d->queue, buf, (size_t)size);

	if (n == 0)
		return AVERROR_EOF;
	if (n < 0)
		return AVERROR_EXIT;
	return (int)n;
}

static int
decode_interrupt_cb(void *opaque)
{
	decoder *d = opaque;

	return atomic_load(&d->closing);
}

static int
decode_open_input(decoder *d)
{
	const AVInputFormat *ifmt = av_find_input_format("mpegts");
	unsigned char *buf;
	int ret;

	d->fmt = avformat_alloc_context();
	if (d->fmt == NULL)
		return AVERROR(ENOMEM);
	buf = av_malloc(DECODE_AVIO_BUF);
	if (buf == NULL)
		return AVERROR(ENOMEM);
	d->avio = avio_alloc_context(buf, DECODE_AVIO_BUF, 0, d, decode_read_cb,
	                             NULL, NULL);
	if (d->avio == NULL) {
		av_free(buf);
		return AVERROR(ENOMEM);
	}
	d->fmt->pb = d->avio;
	d->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
	d->fmt->probesize = d->cfg.probesize;
	d->fmt->max_analyze_duration = d->cfg.analyze_us;
	d->fmt->interrupt_callback.callback = decode_interrupt_cb;
	d->fmt->interrupt_callback.opaque = d;
	ret = avformat_open_input(&d->fmt, NULL, ifmt, NULL);
	if (ret < 0)
		return ret; /* fmt freed by libav; avio is still ours */
	ret = avformat_find_stream_info(d->fmt, NULL);
	if (ret < 0)
		decode_report(d, ret, "stream info not found: %s",
		              av_err2str(ret));
	return 0;
}

static bool
decode_codec_ok(enum AVMediaType type, enum AVCodecID id)
{
	if (type == AVMEDIA_TYPE_VIDEO)
		return id == AV_CODEC_ID_H264;
	return id == AV_CODEC_ID_AAC || id == AV_CODEC_ID_OPUS ||
	       id == AV_CODEC_ID_MP2 || id == AV_CODEC_ID_MP3;
}

static int
decode_open_es(decoder *d, struct decode_es *es, AVStream *st)
{
	const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
	AVCodecContext *ctx;
	int ret;

	if (codec == NULL)
		return AVERROR_DECODER_NOT_FOUND;
	ctx = avcodec_alloc_context3(codec);
	if (ctx == NULL)
		return AVERROR(ENOMEM);
	ret = avcodec_parameters_to_context(ctx, st->codecpar);
	if (ret < 0)
		goto err_free_ctx;
	ctx->pkt_timebase = st->time_base;
	ctx->thread_count = d->cfg.threads;
	if (codec->type == AVMEDIA_TYPE_VIDEO) {
		ctx->max_pixels = (int64_t)d->cfg.max_width * d->cfg.max_height;
		ctx->thread_type = FF_THREAD_SLICE | FF_THREAD_FRAME;
	}
	ret = avcodec_open2(ctx, codec, NULL);
	if (ret < 0)
		goto err_free_ctx;
	es->ctx = ctx;
	es->index = st->index;
	es->codec_id = st->codecpar->codec_id;
	es->tb = st->time_base;
	return 0;

err_free_ctx:
	avcodec_free_context(&ctx);
	return ret;
}

static void
decode_send_info(decoder *d)
{
	struct decoder_info info = {0};
	AVStream *st;

	if (d->info_sent)
		return;
	d->info_sent = true;
	info.video_codec = info.audio_codec = "";
	info.pix_fmt = AV_PIX_FMT_NONE;
	if (d->video.index >= 0) {
		st = d->fmt->streams[d->video.index];
		info.has_video = true;
		info.width = st->codecpar->width;
		info.height = st->codecpar->height;
		info.pix_fmt = st->codecpar->format;
		info.video_tb = st->time_base;
		info.frame_rate = av_guess_frame_rate(d->fmt, st, NULL);
		info.video_codec = avcodec_get_name(st->codecpar->codec_id);
	}
	if (d->audio.index >= 0) {
		st = d->fmt->streams[d->audio.index];
		info.has_audio = true;
		info.audio_tb = st->time_base;
		info.sample_rate = st->codecpar->sample_rate;
		info.channels = st->codecpar->ch_layout.nb_channels;
		info.audio_codec = avcodec_get_name(st->codecpar->codec_id);
	}
	if (d->cb.on_info)
		d->cb.on_info(d->cb.opaque, &info);
}

/* Picks the first usable video and audio stream as they appear (streams can
 * appear after the header: mpegts adds them when a PMT arrives). */
static void
decode_pick_streams(decoder *d)
{
	unsigned i;

	if (d->fmt->nb_streams > d->nb_ignored) {
		bool *n = realloc(d->ignored, d->fmt->nb_streams * sizeof(*n));

		if (n == NULL)
			return;
		memset(n + d->nb_ignored, 0,
		       (d->fmt->nb_streams - d->nb_ignored) * sizeof(*n));
		d->ignored = n;
		d->nb_ignored = d->fmt->nb_streams;
	}
	for (i = 0; i < d->fmt->nb_streams; i++) {
		AVStream *st = d->fmt->streams[i];
		enum AVMediaType type = st->codecpar->codec_type;
		struct decode_es *es;
		int ret;

		if (type == AVMEDIA_TYPE_VIDEO)
			es = &d->video;
		else if (type == AVMEDIA_TYPE_AUDIO)
			es = &d->audio;
		else
			continue;
		if (es->index >= 0 || d->ignored[i])
			continue;
		if (st->codecpar->codec_id == AV_CODEC_ID_NONE)
			continue; /* not probed yet */
		if (!decode_codec_ok(type, st->codecpar->codec_id)) {
			d->ignored[i] = true;
			decode_report(d, AVERROR_PATCHWELCOME,
			              "unsupported %s codec %s ignored",
			              av_get_media_type_string(type),
			              avcodec_get_name(st->codecpar->codec_id));
			continue;
		}
		ret = decode_open_es(d, es, st);
		if (ret < 0) {
			d->ignored[i] = true;
			decode_report(d, ret, "cannot open %s decoder: %s",
			              avcodec_get_name(st->codecpar->codec_id),
			              av_err2str(ret));
		}
	}
}

static int
decode_deliver(decoder *d, struct decode_es *es, AVFrame *f)
{
	bool video = es == &d->video;
	int ret = 0;

	if (f->pts == AV_NOPTS_VALUE)
		f->pts = f->best_effort_timestamp;
	if (f->pts == AV_NOPTS_VALUE) {
		atomic_fetch_add(&d->skipped_frames, 1);
		return 0;
	}
	f->time_base = es->tb;
	if (video) {
		if (f->width > d->cfg.max_width ||
		    f->height > d->cfg.max_height || f->width <= 0 ||
		    f->height <= 0) {
			atomic_fetch_add(&d->skipped_frames, 1);
			if (f->width != d->last_refused_w ||
			    f->height != d->last_refused_h) {
				d->last_refused_w = f->width;
				d->last_refused_h = f->height;
				decode_report(d, AVERROR(E2BIG),
				              "video frame %dx%d above the "
				              "limit %dx%d: skipped",
				              f->width, f->height,
				              d->cfg.max_width,
				              d->cfg.max_height);
			}
			return 0;
		}
		atomic_fetch_add(&d->video_frames, 1);
		if (d->cb.on_video)
			ret = d->cb.on_video(d->cb.opaque, f);
	} else {
		atomic_fetch_add(&d->audio_frames, 1);
		if (d->cb.on_audio)
			ret = d->cb.on_audio(d->cb.opaque, f);
	}
	return ret;
}

/*
 * True when every NAL header in pkt is one an H.264 encoder can produce:
 * forbidden bit clear, type 1 or 5..23 (no data partitioning), and IDR,
 * SPS and PPS with nal_ref_idc != 0. mpegts keeps a stream's codec when a
 * later PMT names another one on the same PID (a segment in another codec),
 * and the H.264 parser cuts that foreign data at its start codes: MPEG-2
 * picture/slice/sequence codes and HEVC headers fail this test, so they
 * never reach (and never corrupt) the H.264 decoder.
 */
static bool
decode_h264_plausible(const AVPacket *pkt)
{
	const uint8_t *p = pkt->data, *end = pkt->data + pkt->size;
	int nals = 0;

	while (p + 3 < end) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p - 3));
		uint8_t h, t, ref;

		if (z == NULL)
			break;
		if (z[1] != 0 || z[2] != 1) {
			p = z + 1;
			continue;
		}
		h = z[3];
		t = h & 0x1f;
		ref = (h >> 5) & 3;
		if ((h & 0x80) || t == 0 || (t >= 2 && t <= 4) || t >= 24)
			return false;
		if ((t == 5 || t == 7 || t == 8) && ref == 0)
			return false;
		nals++;
		p = z + 4;
	}
	return nals > 0;
}

/* Sends one packet (NULL: flush) and receives every frame it yields. */
static int
decode_packet(decoder *d, struct decode_es *es, const AVPacket *pkt)
{
	int ret;

	ret = avcodec_send_packet(es->ctx, pkt);
	if (ret < 0 && ret != AVERROR_EOF) {
		atomic_fetch_add(&d->bad_packets, 1);
		log_debug("decode", "packet refused: %s stream=%s",
		          av_err2str(ret), d->name);
		if (ret == AVERROR(ENOMEM))
			return ret;
		return 0; /* skip the damage; the decoder resyncs */
	}
	for (;;) {
		ret = avcodec_receive_frame(es->ctx, d->frame);
		if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF)
			return 0;
		if (ret < 0) {
			atomic_fetch_add(&d->bad_packets, 1);
			if (ret == AVERROR(ENOMEM))
				return ret;
			continue;
		}
		ret = decode_deliver(d, es, d->frame);
		av_frame_unref(d->frame);
		if (ret < 0)
			return ret;
	}
}

static int
decode_loop(decoder *d)
{
	int ret;

	for (;;) {
		struct decode_es *es = NULL;

		ret = av_read_frame(d->fmt, d->pkt);
		if (ret == AVERROR(EAGAIN))
			continue;
		if (ret < 0)
			break;
		decode_pick_streams(d);
		if (d->pkt->stream_index == d->video.index)
			es = &d->video;
		else if (d->pkt->stream_index == d->audio.index)
			es = &d->audio;
		if (es != NULL && !d->info_sent &&
		    (d->video.index >= 0 || d->audio.index >= 0))
			decode_send_info(d);
		if (d->pkt->dts == AV_NOPTS_VALUE)
			es = NULL; /* PyTrickle: packets with no DTS skipped */
		if (es != NULL &&
		    (d->fmt->streams[es->index]->codecpar->codec_id !=
		         es->codec_id ||
		     (es == &d->video && !decode_h264_plausible(d->pkt)))) {
			if (!es->mismatch_logged)
				decode_report(
				    d, AVERROR_INVALIDDATA,
				    "stream %d: data not in %s: skipped",
				    es->index, avcodec_get_name(es->codec_id));
			es->mismatch_logged = true;
			es->skipping = true;
			es = NULL;
		} else if (es != NULL && es->skipping) {
			/* plausible again: the decoder resyncs at its keyframe
			 */
			es->skipping = false;
			es->mismatch_logged = false;
		}
		if (es != NULL && d->pkt->dts != AV_NOPTS_VALUE)
			ret = decode_packet(d, es, d->pkt);
		else
			ret = 0;
		av_packet_unref(d->pkt);
		if (ret < 0)
			return ret;
	}
	if (ret == AVERROR_EXIT || atomic_load(&d->closing))
		return AVERROR_EXIT;
	if (ret != AVERROR_EOF)
		decode_report(d, ret, "demuxer stopped: %s", av_err2str(ret));
	/* flush: NULL packet drains the delayed frames */
	if (d->video.ctx && (ret = decode_packet(d, &d->video, NULL)) < 0)
		return ret;
	if (d->audio.ctx && (ret = decode_packet(d, &d->audio, NULL)) < 0)
		return ret;
	return 0;
}

static void *
decode_thread(void *arg)
{
	decoder *d = arg;
	int ret;

	ret = decode_open_input(d);
	if (ret < 0) {
		if (atomic_load(&d->closing))
			ret = AVERROR_EXIT;
		else
			decode_report(d, ret,
			              "input not readable as MPEG-TS: %s",
			              av_err2str(ret));
		goto out;
	}
	decode_pick_streams(d);
	if (d->video.index >= 0 || d->audio.index >= 0)
		decode_send_info(d);
	ret = decode_loop(d);
	if (ret < 0 && ret != AVERROR_EXIT)
		decode_report(d, ret, "decoding stopped: %s", av_err2str(ret));
out:
	/* drain the queue so a blocked producer never waits on a dead reader */
	bytequeue_close(d->queue);
	if (d->cb.on_end)
		d->cb.on_end(d->cb.opaque, ret);
	return NULL;
}

int
decoder_create(decoder **out, const struct decoder_cfg *cfg,
               const struct decoder_callbacks *cb)
{
	decoder *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	if (cfg)
		d->cfg = *cfg;
	if (cb)
		d->cb = *cb;
	snprintf(d->name, sizeof(d->name), "%s",
	         d->cfg.name ? d->cfg.name : "-");
	d->cfg.name = d->name;
	if (d->cfg.queue_bytes == 0)
		d->cfg.queue_bytes = 8u << 20;
	if (d->cfg.threads <= 0)
		d->cfg.threads = 1;
	if (d->cfg.max_width <= 0 || d->cfg.max_height <= 0) {
		d->cfg.max_width = 4096;
		d->cfg.max_height = 2304;
	}
	if (d->cfg.probesize <= 0)
		d->cfg.probesize = 1 << 20;
	if (d->cfg.analyze_us <= 0)
		d->cfg.analyze_us = 1000000;
	d->video.index = d->audio.index = -1;
	atomic_init(&d->closing, false);
	decoder_quiet_libav();

	ret = bytequeue_create(&d->queue, d->cfg.queue_bytes);
	if (ret < 0)
		goto err_free;
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	if (d->pkt == NULL || d->frame == NULL) {
		ret = -ENOMEM;
		goto err_free_av;
	}
	ret = -pthread_create(&d->thread, NULL, decode_thread, d);
	if (ret < 0)
		goto err_free_av;
	d->started = true;
	*out = d;
	return 0;

err_free_av:
	av_packet_free(&d->pkt);
	av_frame_free(&d->frame);
	bytequeue_destroy(&d->queue);
err_free:
	free(d);
	return ret;
}

int
decoder_push(decoder *d, const void *buf, size_t len, bool wait)
{
	int ret;

	if (len == 0)
		return 0;
	ret = bytequeue_push(d->queue, buf, len, wait);
	if (ret == 0)
		atomic_fetch_add(&d->bytes_in, len);
	return ret;
}

void
decoder_end(decoder *d)
{
	bytequeue_end(d->queue);
}

void
decoder_close(decoder *d)
{
	atomic_store(&d->closing, true);
	bytequeue_close(d->queue);
}

void
decoder_stop(decoder *d)
{
	if (d->started && !d->joined) {
		pthread_join(d->thread, NULL);
		d->joined = true;
	}
}

void
decoder_destroy(decoder **dp)
{
	decoder *d = *dp;

	if (d == NULL)
		return;
	decoder_close(d);
	decoder_stop(d);
	avcodec_free_context(&d->video.ctx);
	avcodec_free_context(&d->audio.ctx);
	avformat_close_input(&d->fmt);
	if (d->avio) {
		av_freep(&d->avio->buffer);
		avio_context_free(&d->avio);
	}
	av_packet_free(&d->pkt);
	av_frame_free(&d->frame);
	bytequeue_destroy(&d->queue);
	free(d->ignored);
	free(d);
	*dp = NULL;
}

void
decoder_get_stats(decoder *d, struct decoder_stats *out)
{
	out->bytes_in = atomic_load(&d->bytes_in);
	out->video_frames = atomic_load(&d->video_frames);
	out->audio_frames = atomic_load(&d->audio_frames);
	out->bad_packets = atomic_load(&d->bad_packets);
	out->skipped_frames = atomic_load(&d->skipped_frames);
}
