/*
 * Test media for tests/unit/media_test.c:
 * synthesizes a moving test pattern (+ a sine tone) and encodes it with libav
 * into self-contained MPEG-TS segments in memory (H.264 + AAC or Opus,
 * either stream optional, an optional resolution change), and a crafted
 * H.264 access unit whose SPS claims 16384x16384. Header-only.
 */
#ifndef CT_MEDIA_GEN_H
#define CT_MEDIA_GEN_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>

#define GEN_MAX_SEG 64
#define GEN_MAX_FRAMES 1024

enum gen_audio { GEN_NO_AUDIO = 0, GEN_AAC = 1, GEN_OPUS = 2 };

struct gen_cfg {
	int w, h, fps;
	double secs;
	enum gen_audio audio;
	bool no_video;
	double seg_secs; /* 0: 1 s */
	double start;    /* first pts in seconds; 0: 10 s */
	int w2, h2;      /* resolution after change_at (0: none) */
	double change_at;
	const char *vcodec; /* NULL: libx264 */
};

struct gen_media {
	uint8_t *seg[GEN_MAX_SEG];
	size_t len[GEN_MAX_SEG];
	int nseg;
	int nv, na;                   /* frames encoded */
	int64_t vpts[GEN_MAX_FRAMES]; /* 1/90000 */
	int64_t first_apts;
};

struct gen_state {
	const struct gen_cfg *cfg;
	struct gen_media *m;
	AVCodecContext *venc, *aenc;
	AVFormatContext *oc;
	int vidx, aidx;
	double seg_start;
	AVPacket *pkt;
	AVFrame *vf, *af;
};

static inline void
gen_seg_close(struct gen_state *g)
{
	uint8_t *buf = NULL;
	int n;

	if (g->oc == NULL)
		return;
	av_write_trailer(g->oc);
	n = avio_close_dyn_buf(g->oc->pb, &buf);
	if (g->m->nseg < GEN_MAX_SEG) {
		g->m->seg[g->m->nseg] = malloc(n > 0 ? (size_t)n : 1);
		memcpy(g->m->seg[g->m->nseg], buf, (size_t)n);
		g->m->len[g->m->nseg++] = (size_t)n;
	}
	av_free(buf);
	avformat_free_context(g->oc);
	g->oc = NULL;
}

static inline void
gen_seg_open(struct gen_state *g, double t)
{
	AVStream *st;

	avformat_alloc_output_context2(&g->oc, NULL, "mpegts", NULL);
	avio_open_dyn_buf(&g->oc->pb);
	g->vidx = g->aidx = -1;
	if (g->venc) {
		st = avformat_new_stream(g->oc, NULL);
		avcodec_parameters_from_context(st->codecpar, g->venc);
		st->time_base = (AVRational){1, 90000};
		g->vidx = st->index;
	}
	if (g->aenc) {
		st = avformat_new_stream(g->oc, NULL);
		avcodec_parameters_from_context(st->codecpar, g->aenc);
		st->time_base = (AVRational){1, 90000};
		g->aidx = st->index;
	}
	if (avformat_write_header(g->oc, NULL) < 0)
		g->m->nseg = g->m->nseg; /* checked by the caller's counts */
	g->seg_start = t;
}

static inline void
gen_write(struct gen_state *g, AVCodecContext *c, bool video)
{
	double seg = g->cfg->seg_secs > 0 ? g->cfg->seg_secs : 1.0;

	while (avcodec_receive_packet(c, g->pkt) == 0) {
		double t = g->pkt->pts * av_q2d(c->time_base);

		if (g->oc == NULL || ((video || g->venc == NULL) &&
		                      (g->pkt->flags & AV_PKT_FLAG_KEY) &&
		                      t - g->seg_start >= seg - 1e-3)) {
			gen_seg_close(g);
			gen_seg_open(g, t);
		}
		g->pkt->stream_index = video ? g->vidx : g->aidx;
		av_packet_rescale_ts(
		    g->pkt, c->time_base,
		    g->oc->streams[g->pkt->stream_index]->time_base);
		av_interleaved_write_frame(g->oc, g->pkt);
	}
}

static inline int
gen_open_video(struct gen_state *g, int w, int h)
{
	const char *name = g->cfg->vcodec ? g->cfg->vcodec : "libx264";
	const AVCodec *codec = avcodec_find_encoder_by_name(name);
	AVCodecContext *c = avcodec_alloc_context3(codec);

	c->width = w;
	c->height = h;
	c->pix_fmt = AV_PIX_FMT_YUV420P;
	c->time_base = strcmp(name, "libx264") == 0
	                   ? (AVRational){1, 90000}
	                   : (AVRational){1, g->cfg->fps};
	c->framerate = (AVRational){g->cfg->fps, 1};
	c->gop_size = g->cfg->fps;
	c->max_b_frames = 0;
	c->thread_count = 1;
	if (strcmp(name, "libx264") == 0) {
		av_opt_set(c->priv_data, "preset", "ultrafast", 0);
		av_opt_set(c->priv_data, "tune", "zerolatency", 0);
	} else {
		c->bit_rate = 1000000;
	}
	if (avcodec_open2(c, codec, NULL) < 0)
		return -1;
	g->venc = c;
	av_frame_free(&g->vf);
	g->vf = av_frame_alloc();
	g->vf->format = AV_PIX_FMT_YUV420P;
	g->vf->width = w;
	g->vf->height = h;
	av_frame_get_buffer(g->vf, 0);
	return 0;
}

static inline int
gen_open_audio(struct gen_state *g)
{
	bool opus = g->cfg->audio == GEN_OPUS;
	const AVCodec *codec =
	    avcodec_find_encoder_by_name(opus ? "libopus" : "aac");
	AVCodecContext *c = avcodec_alloc_context3(codec);

	c->sample_rate = opus ? 48000 : 44100;
	c->sample_fmt = opus ? AV_SAMPLE_FMT_FLT : AV_SAMPLE_FMT_FLTP;
	av_channel_layout_default(&c->ch_layout, 2);
	c->time_base = (AVRational){1, c->sample_rate};
	c->bit_rate = 96000;
	if (avcodec_open2(c, codec, NULL) < 0)
		return -1;
	g->aenc = c;
	g->af = av_frame_alloc();
	g->af->format = c->sample_fmt;
	g->af->sample_rate = c->sample_rate;
	g->af->nb_samples = c->frame_size;
	av_channel_layout_copy(&g->af->ch_layout, &c->ch_layout);
	av_frame_get_buffer(g->af, 0);
	return 0;
}

/* A moving diagonal gradient with a moving box: compresses, shows motion. */
static inline void
gen_pattern(AVFrame *f, int i)
{
	for (int y = 0; y < f->height; y++)
		for (int x = 0; x < f->width; x++) {
			int v = (x + y + 3 * i) & 0xff;
			bool box =
			    x / 32 == (i / 2) % (f->width / 32) && y / 32 == 2;

			f->data[0][y * f->linesize[0] + x] =
			    box ? 235 : (uint8_t)(16 + v * 7 / 8);
		}
	for (int y = 0; y < f->height / 2; y++)
		for (int x = 0; x < f->width / 2; x++) {
			f->data[1][y * f->linesize[1] + x] =
			    (uint8_t)(128 + ((x + i) & 63) - 32);
			f->data[2][y * f->linesize[2] + x] =
			    (uint8_t)(128 + ((y - i) & 63) - 32);
		}
}

/* Generates cfg's media into *m (free with gen_free). Returns 0 or -1. */
static inline int
gen_media(const struct gen_cfg *cfg, struct gen_media *m)
{
	struct gen_state g = {.cfg = cfg, .m = m};
	double start = cfg->start > 0 ? cfg->start : 10.0;
	int nv = cfg->no_video ? 0 : (int)(cfg->secs * cfg->fps + 0.5);
	int64_t samples = 0, total_samples = 0;
	int vi = 0, rc = 0;

	memset(m, 0, sizeof(*m));
	m->first_apts = AV_NOPTS_VALUE;
	g.pkt = av_packet_alloc();
	if (!cfg->no_video && gen_open_video(&g, cfg->w, cfg->h) < 0)
		rc = -1;
	if (cfg->audio != GEN_NO_AUDIO && gen_open_audio(&g) < 0)
		rc = -1;
	if (g.aenc)
		total_samples = (int64_t)(cfg->secs * g.aenc->sample_rate);
	while (rc == 0) {
		double tv = vi < nv ? (double)vi / cfg->fps : 1e9;
		double ta = g.aenc && samples < total_samples
		                ? (double)samples / g.aenc->sample_rate
		                : 1e9;

		if (tv >= 1e9 && ta >= 1e9)
			break;
		if (tv <= ta) {
			if (cfg->w2 > 0 && tv >= cfg->change_at &&
			    g.venc->width != cfg->w2) {
				avcodec_send_frame(g.venc, NULL);
				gen_write(&g, g.venc, true);
				avcodec_free_context(&g.venc);
				gen_open_video(&g, cfg->w2, cfg->h2);
			}
			av_frame_make_writable(g.vf);
			gen_pattern(g.vf, vi);
			g.vf->pts = (int64_t)llrint((start + tv) * 90000);
			g.vf->pict_type = AV_PICTURE_TYPE_NONE;
			if (vi < GEN_MAX_FRAMES)
				m->vpts[vi] = g.vf->pts;
			g.vf->pts =
			    av_rescale_q(g.vf->pts, (AVRational){1, 90000},
			                 g.venc->time_base);
			avcodec_send_frame(g.venc, g.vf);
			gen_write(&g, g.venc, true);
			vi++;
			m->nv++;
		} else {
			int n = g.af->nb_samples;
			int sr = g.aenc->sample_rate;

			av_frame_make_writable(g.af);
			for (int s = 0; s < n; s++) {
				float v =
				    0.3f *
				    sinf(2.0f * (float)M_PI * 440.0f *
				         (float)(samples + s) / (float)sr);

				if (g.af->format == AV_SAMPLE_FMT_FLTP) {
					((float *)g.af->data[0])[s] = v;
					((float *)g.af->data[1])[s] = v;
				} else {
					((float *)g.af->data[0])[2 * s] = v;
					((float *)g.af->data[0])[2 * s + 1] = v;
				}
			}
			g.af->pts = (int64_t)llrint(start * sr) + samples;
			if (m->first_apts == AV_NOPTS_VALUE)
				m->first_apts =
				    av_rescale(g.af->pts, 90000, sr);
			avcodec_send_frame(g.aenc, g.af);
			gen_write(&g, g.aenc, false);
			samples += n;
			m->na++;
		}
	}
	if (g.venc) {
		avcodec_send_frame(g.venc, NULL);
		gen_write(&g, g.venc, true);
	}
	if (g.aenc) {
		avcodec_send_frame(g.aenc, NULL);
		gen_write(&g, g.aenc, false);
	}
	gen_seg_close(&g);
	avcodec_free_context(&g.venc);
	avcodec_free_context(&g.aenc);
	av_frame_free(&g.vf);
	av_frame_free(&g.af);
	av_packet_free(&g.pkt);
	return rc;
}

static inline void
gen_free(struct gen_media *m)
{
	for (int i = 0; i < m->nseg; i++)
		free(m->seg[i]);
	m->nseg = 0;
}

/* An H.264 bit writer just big enough for a crafted SPS/PPS/slice: the
 * "SPS claiming 16384x16384" bad input (huge_idr writes SPS+PPS+IDR). */
struct bw {
	uint8_t b[64];
	int bit;
};

static inline void
bw_put(struct bw *w, int n, unsigned v)
{
	for (int i = n - 1; i >= 0; i--, w->bit++)
		if (v >> i & 1)
			w->b[w->bit / 8] |= (uint8_t)(0x80 >> (w->bit % 8));
}

static inline void
bw_ue(struct bw *w, unsigned v)
{
	unsigned x = v + 1;
	int n = 0;

	while (x >> (n + 1))
		n++;
	bw_put(w, n, 0);
	bw_put(w, n + 1, x);
}

/* Appends start code + NAL header + RBSP (with stop bit and emulation
 * prevention) of w to out. */
static inline size_t
bw_nal(uint8_t *out, uint8_t hdr, struct bw *w)
{
	size_t n = 0, bytes;
	int zeros = 0;

	bw_put(w, 1, 1);
	bytes = (size_t)(w->bit + 7) / 8;
	out[n++] = 0;
	out[n++] = 0;
	out[n++] = 0;
	out[n++] = 1;
	out[n++] = hdr;
	for (size_t i = 0; i < bytes; i++) {
		if (zeros >= 2 && w->b[i] <= 3) {
			out[n++] = 3;
			zeros = 0;
		}
		out[n++] = w->b[i];
		zeros = w->b[i] == 0 ? zeros + 1 : 0;
	}
	return n;
}

static inline size_t
huge_idr(uint8_t *out)
{
	struct bw sps = {{0}, 0}, pps = {{0}, 0}, sl = {{0}, 0};
	size_t n = 0;

	bw_put(&sps, 8, 66); /* baseline */
	bw_put(&sps, 8, 0xc0);
	bw_put(&sps, 8, 51);
	bw_ue(&sps, 0); /* sps id */
	bw_ue(&sps, 0); /* log2_max_frame_num - 4 */
	bw_ue(&sps, 2); /* poc type */
	bw_ue(&sps, 1); /* refs */
	bw_put(&sps, 1, 0);
	bw_ue(&sps, 1023); /* 16384 / 16 - 1 */
	bw_ue(&sps, 1023);
	bw_put(&sps, 1, 1); /* frame_mbs_only */
	bw_put(&sps, 1, 1);
	bw_put(&sps, 1, 0);
	bw_put(&sps, 1, 0);
	n += bw_nal(out + n, 0x67, &sps);
	bw_ue(&pps, 0);
	bw_ue(&pps, 0);
	bw_put(&pps, 2, 0);
	bw_ue(&pps, 0);
	bw_ue(&pps, 0);
	bw_ue(&pps, 0);
	bw_put(&pps, 3, 0);
	bw_ue(&pps, 0); /* se(0) == ue(0) */
	bw_ue(&pps, 0);
	bw_ue(&pps, 0);
	bw_put(&pps, 3, 4);
	n += bw_nal(out + n, 0x68, &pps);
	bw_ue(&sl, 0);
	bw_ue(&sl, 7);
	bw_ue(&sl, 0);
	bw_put(&sl, 4, 0);
	bw_ue(&sl, 0);
	bw_put(&sl, 2, 0);
	bw_ue(&sl, 0);
	bw_ue(&sl, 1);
	for (int i = 0; i < 20; i++)
		bw_put(&sl, 8, 0xa5);
	n += bw_nal(out + n, 0x65, &sl);
	return n;
}

#endif
