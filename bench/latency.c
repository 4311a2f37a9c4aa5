/*
 * bench/latency: end-to-end latency through a running gateway. Publishes a
 * live 30 fps H.264+AAC MPEG-TS stream into a trickle channel (libx264
 * zerolatency, every packet flushed at once), starts the gateway's stream,
 * reads the output channel, and matches frames by PTS: input time = when
 * the frame's last TS packet was handed to the trickle publisher, output
 * time = when its last TS packet was read from the output channel. Then the
 * baseline: the published bytes replayed in process at their recorded pace
 * through mpegts demux + H.264 decode + x264 encode (the gateway's settings).
 * Method and figures: docs/benchmarks.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>

#include "clock.h"
#include "log.h"
#include "gateway/curlev.h"
#include "gateway/trickle_pub.h"
#include "gateway/trickle_sub.h"

#define LAT_MAXF 4096
#define LAT_ARATE 48000

struct lat_opts {
	const char *trickle; /* trickle server base URL */
	const char *api;     /* gateway API base URL */
	const char *chan;    /* input channel name */
	const char *csv;     /* per-frame CSV out, or NULL */
	int secs, warm, w, h, fps;
	bool audio;
	bool low_delay; /* baseline decoder with AV_CODEC_FLAG_LOW_DELAY */
};

/* Incremental MPEG-TS reader: per video PES, its PTS and the time its last
   TS packet arrived. */
struct tsrd {
	uint8_t carry[188];
	size_t nc;
	int vpid;
	bool have;
	int64_t pts, last_ns;
	uint64_t bad;
};

struct lat {
	struct lat_opts o;
	struct event_base *base;
	curlev *cv;
	trickle_pub *pub;
	trickle_sub *sub;
	struct event *ev_sub, *ev_quit;
	char in_url[512], out_url[512];
	struct tsrd rin, rout;
	int64_t pts0;                 /* first input video pts (TS, 90 kHz) */
	int64_t t_in[LAT_MAXF];       /* ns, 0 = none */
	int64_t t_out[LAT_MAXF];
	int64_t pts_in[LAT_MAXF];     /* by index, to map pts -> index */
	int64_t t_demux[LAT_MAXF];    /* baseline stages, ns after input */
	int64_t t_dec[LAT_MAXF];
	int64_t t_base[LAT_MAXF];     /* baseline latency, ns */
	uint8_t *rec;                 /* every published byte (baseline) */
	size_t nrec, caprec;
	struct lat_chunk { size_t off, len; int64_t t; } *chunks;
	int nchunks, capchunks;
	atomic_int first_written;
	atomic_int sub_ready;
	int64_t unmatched;
	int64_t out_offset_seen;
	bool ended;
	int status;
};

/* ---- TS reader ---------------------------------------------------------- */

static void
lat_frame_out(struct lat *l, struct tsrd *r, bool input)
{
	int64_t idx;

	if (!r->have)
		return;
	r->have = false;
	if (input) {
		if (l->pts0 == AV_NOPTS_VALUE)
			l->pts0 = r->pts;
	}
	if (l->pts0 == AV_NOPTS_VALUE)
		return;
	idx = av_rescale(r->pts - l->pts0, l->o.fps, 90000);
	if (idx < 0 || idx >= LAT_MAXF) {
		l->unmatched++;
		return;
	}
	if (input) {
		l->t_in[idx] = r->last_ns;
		l->pts_in[idx] = r->pts;
	} else if (l->pts_in[idx] == r->pts && l->t_out[idx] == 0) {
		l->t_out[idx] = r->last_ns;
	} else {
		l->unmatched++;
		l->out_offset_seen = r->pts - l->pts0;
	}
}

static void
lat_ts_packet(struct lat *l, struct tsrd *r, const uint8_t *p, int64_t now,
              bool input)
{
	int pid = ((p[1] & 0x1f) << 8) | p[2];
	bool pusi = p[1] & 0x40;
	int afc = (p[3] >> 4) & 3;
	size_t off = 4;
	const uint8_t *q;

	if (afc & 2)
		off += 1 + (size_t)p[4];
	if (!(afc & 1) || off >= 188)
		return;
	q = p + off;
	if (pusi && off + 14 <= 188 && q[0] == 0 && q[1] == 0 && q[2] == 1 &&
	    (q[3] & 0xf0) == 0xe0) {
		if (r->vpid < 0)
			r->vpid = pid;
		if (pid != r->vpid)
			return;
		lat_frame_out(l, r, input);
		if (!(q[7] & 0x80))
			return;
		r->pts = ((int64_t)(q[9] >> 1 & 7) << 30) | (q[10] << 22) |
		         ((q[11] >> 1) << 15) | (q[12] << 7) | (q[13] >> 1);
		r->have = true;
		r->last_ns = now;
	} else if (pid == r->vpid && r->have) {
		r->last_ns = now;
	}
}

static void
lat_ts_feed(struct lat *l, struct tsrd *r, const uint8_t *buf, size_t len,
            bool input)
{
	int64_t now = clock_now_ns();

	while (len > 0) {
		if (r->nc == 0 && buf[0] != 0x47) { /* resync */
			r->bad++;
			buf++;
			len--;
			continue;
		}
		if (r->nc == 0 && len >= 188) {
			lat_ts_packet(l, r, buf, now, input);
			buf += 188;
			len -= 188;
			continue;
		}
		size_t n = 188 - r->nc < len ? 188 - r->nc : len;
		memcpy(r->carry + r->nc, buf, n);
		r->nc += n;
		buf += n;
		len -= n;
		if (r->nc == 188) {
			lat_ts_packet(l, r, r->carry, now, input);
			r->nc = 0;
		}
	}
}

/* ---- output side (loop thread) ------------------------------------------ */

static void
lat_on_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	struct lat *l = arg;

	lat_ts_feed(l, &l->rout, buf, len, false);
}

static void
lat_on_seg_end(void *arg, int64_t seq, bool complete)
{
	struct lat *l = arg;

	lat_frame_out(l, &l->rout, false);
	l->rout.nc = 0;
}

static void
lat_on_sub_end(void *arg, enum trickle_end reason, const char *text)
{
	struct lat *l = arg;

	lat_frame_out(l, &l->rout, false);
	l->ended = true;
	event_base_loopbreak(l->base);
}

static void
lat_start_sub(evutil_socket_t fd, short what, void *arg)
{
	struct lat *l = arg;
	struct trickle_sub_opts so;
	struct trickle_sub_cbs cbs = {
		.on_data = lat_on_data,
		.on_segment_end = lat_on_seg_end,
		.on_end = lat_on_sub_end,
	};

	trickle_sub_opts_default(&so);
	so.start_seq = 0;
	so.silence_timeout_ms = 15000;
	so.name = "bench-out";
	if (trickle_sub_create(&l->sub, l->cv, l->out_url, &so, &cbs, l) < 0) {
		fprintf(stderr, "latency: cannot subscribe to %s\n",
		        l->out_url);
		l->status = 1;
		event_base_loopbreak(l->base);
	}
}

static void
lat_quit(evutil_socket_t fd, short what, void *arg)
{
	struct lat *l = arg;

	event_base_loopbreak(l->base);
}

/* ---- control thread: start the stream, wait for the output channel ------ */

static size_t
lat_discard(char *p, size_t s, size_t n, void *u)
{
	return s * n;
}

static long
lat_http(const char *url, const char *post)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	long code = 0;

	if (c == NULL)
		return 0;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, lat_discard);
	if (post) {
		h = curl_slist_append(h, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return code;
}

static void *
lat_control(void *arg)
{
	struct lat *l = arg;
	char url[600], body[1600];
	long code;

	while (!atomic_load(&l->first_written))
		usleep(10000);
	snprintf(url, sizeof(url), "%s/stream/start", l->o.api);
	snprintf(body, sizeof(body),
	         "{\"subscribe_url\":\"%s\",\"publish_url\":\"%s\","
	         "\"gateway_request_id\":\"%s\",\"params\":{\"width\":%d,"
	         "\"height\":%d,\"max_framerate\":%d}}",
	         l->in_url, l->out_url, l->o.chan, l->o.w, l->o.h, l->o.fps);
	code = lat_http(url, body);
	if (code != 200) {
		fprintf(stderr, "latency: POST %s answered %ld\n", url, code);
		l->status = 1;
		event_active(l->ev_quit, 0, 0);
		return NULL;
	}
	snprintf(url, sizeof(url), "%s/next", l->out_url);
	for (int i = 0; i < 300; i++) {
		if (lat_http(url, NULL) == 200) {
			atomic_store(&l->sub_ready, 1);
			event_active(l->ev_sub, 0, 0);
			return NULL;
		}
		usleep(20000);
	}
	fprintf(stderr, "latency: output channel %s never appeared\n",
	        l->out_url);
	l->status = 1;
	event_active(l->ev_quit, 0, 0);
	return NULL;
}

/* ---- producer thread: encode and publish in real time ------------------- */

struct prod {
	struct lat *l;
	AVCodecContext *venc, *aenc;
	AVFormatContext *mux;
	AVFrame *vf, *af;
	AVPacket *pkt;
	int64_t asamples;
};

static int
prod_write(void *o, uint8_t *buf, int len)
{
	struct lat *l = o;

	lat_ts_feed(l, &l->rin, buf, (size_t)len, true);
	trickle_pub_write(l->pub, buf, (size_t)len);
	if (l->nrec + (size_t)len > l->caprec) {
		size_t cap = (l->caprec ? l->caprec * 2 : 1 << 20) +
		             (size_t)len;
		uint8_t *n = realloc(l->rec, cap);
		if (n == NULL)
			return AVERROR(ENOMEM);
		l->rec = n;
		l->caprec = cap;
	}
	if (l->nchunks == l->capchunks) {
		int cap = l->capchunks ? l->capchunks * 2 : 1024;
		struct lat_chunk *n = realloc(l->chunks, cap * sizeof(*n));
		if (n == NULL)
			return AVERROR(ENOMEM);
		l->chunks = n;
		l->capchunks = cap;
	}
	memcpy(l->rec + l->nrec, buf, (size_t)len);
	l->chunks[l->nchunks++] = (struct lat_chunk){ l->nrec, (size_t)len,
	                                              clock_now_ns() };
	l->nrec += (size_t)len;
	return len;
}

static int
prod_drain(struct prod *p, AVCodecContext *c, int sidx)
{
	int ret;

	while ((ret = avcodec_receive_packet(c, p->pkt)) == 0) {
		AVStream *st = p->mux->streams[sidx];

		av_packet_rescale_ts(p->pkt, c->time_base, st->time_base);
		p->pkt->stream_index = sidx;
		ret = av_write_frame(p->mux, p->pkt);
		av_packet_unref(p->pkt);
		if (ret < 0)
			return ret;
		avio_flush(p->mux->pb);
		/* the frame's last TS packet is with the publisher now */
		if (sidx == 0)
			lat_frame_out(p->l, &p->l->rin, true);
	}
	return ret == AVERROR(EAGAIN) || ret == AVERROR_EOF ? 0 : ret;
}

static void
prod_picture(AVFrame *f, int i)
{
	for (int y = 0; y < f->height; y++) {
		uint8_t *row = f->data[0] + y * f->linesize[0];
		for (int x = 0; x < f->width; x++)
			row[x] = (uint8_t)(x + y * 2 + i * 3);
		int bx = (i * 4) % f->width;
		for (int x = bx; x < bx + 48 && x < f->width && y < 96; x++)
			row[x] = 235;
	}
	for (int y = 0; y < f->height / 2; y++) {
		for (int x = 0; x < f->width / 2; x++) {
			uint8_t *u = f->data[1] + y * f->linesize[1];
			uint8_t *v = f->data[2] + y * f->linesize[2];

			u[x] = (uint8_t)(128 + x / 4 - i);
			v[x] = (uint8_t)(96 + y / 4 + i);
		}
	}
}

static int
prod_open(struct prod *p)
{
	struct lat *l = p->l;
	const AVCodec *vc = avcodec_find_encoder_by_name("libx264");
	const AVCodec *ac = avcodec_find_encoder(AV_CODEC_ID_AAC);
	unsigned char *iobuf;
	AVStream *st;
	int ret;

	if (vc == NULL || ac == NULL)
		return AVERROR_ENCODER_NOT_FOUND;
	p->venc = avcodec_alloc_context3(vc);
	p->aenc = avcodec_alloc_context3(ac);
	p->vf = av_frame_alloc();
	p->af = av_frame_alloc();
	p->pkt = av_packet_alloc();
	if (!p->venc || !p->aenc || !p->vf || !p->af || !p->pkt)
		return AVERROR(ENOMEM);
	p->venc->width = l->o.w;
	p->venc->height = l->o.h;
	p->venc->pix_fmt = AV_PIX_FMT_YUV420P;
	p->venc->time_base = (AVRational){1, l->o.fps};
	p->venc->framerate = (AVRational){l->o.fps, 1};
	p->venc->gop_size = l->o.fps;
	p->venc->max_b_frames = 0;
	av_opt_set(p->venc->priv_data, "preset", "veryfast", 0);
	av_opt_set(p->venc->priv_data, "tune", "zerolatency", 0);
	if ((ret = avcodec_open2(p->venc, vc, NULL)) < 0)
		return ret;
	p->aenc->sample_rate = LAT_ARATE;
	p->aenc->sample_fmt = AV_SAMPLE_FMT_FLTP;
	av_channel_layout_default(&p->aenc->ch_layout, 1);
	p->aenc->bit_rate = 64000;
	p->aenc->time_base = (AVRational){1, LAT_ARATE};
	if ((ret = avcodec_open2(p->aenc, ac, NULL)) < 0)
		return ret;

	p->vf->format = AV_PIX_FMT_YUV420P;
	p->vf->width = l->o.w;
	p->vf->height = l->o.h;
	if ((ret = av_frame_get_buffer(p->vf, 0)) < 0)
		return ret;
	p->af->format = AV_SAMPLE_FMT_FLTP;
	p->af->nb_samples = p->aenc->frame_size;
	p->af->sample_rate = LAT_ARATE;
	av_channel_layout_default(&p->af->ch_layout, 1);
	if ((ret = av_frame_get_buffer(p->af, 0)) < 0)
		return ret;

	if ((ret = avformat_alloc_output_context2(&p->mux, NULL, "mpegts",
	                                          NULL)) < 0)
		return ret;
	iobuf = av_malloc(32768);
	if (iobuf == NULL)
		return AVERROR(ENOMEM);
	p->mux->pb = avio_alloc_context(iobuf, 32768, 1, l, NULL, prod_write,
	                                NULL);
	if (p->mux->pb == NULL) {
		av_free(iobuf);
		return AVERROR(ENOMEM);
	}
	p->mux->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_FLUSH_PACKETS;
	if ((st = avformat_new_stream(p->mux, NULL)) == NULL)
		return AVERROR(ENOMEM);
	avcodec_parameters_from_context(st->codecpar, p->venc);
	st->time_base = p->venc->time_base;
	if (!l->o.audio)
		return avformat_write_header(p->mux, NULL);
	if ((st = avformat_new_stream(p->mux, NULL)) == NULL)
		return AVERROR(ENOMEM);
	avcodec_parameters_from_context(st->codecpar, p->aenc);
	st->time_base = p->aenc->time_base;
	return avformat_write_header(p->mux, NULL);
}

static void
prod_close(struct prod *p)
{
	if (p->mux) {
		if (p->mux->pb) {
			av_freep(&p->mux->pb->buffer);
			avio_context_free(&p->mux->pb);
		}
		avformat_free_context(p->mux);
	}
	avcodec_free_context(&p->venc);
	avcodec_free_context(&p->aenc);
	av_frame_free(&p->vf);
	av_frame_free(&p->af);
	av_packet_free(&p->pkt);
}

static void
sleep_until(int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void *
lat_producer(void *arg)
{
	struct lat *l = arg;
	struct prod p = { .l = l };
	int n = l->o.secs * l->o.fps, ret;
	int64_t t0;

	if ((ret = prod_open(&p)) < 0) {
		fprintf(stderr, "latency: encoder setup: %s\n",
		        av_err2str(ret));
		l->status = 1;
		goto out;
	}
	t0 = clock_now_ns();
	for (int i = 0; i < n && l->status == 0; i++) {
		int64_t due = t0 + (int64_t)i * 1000000000 / l->o.fps;

		sleep_until(due);
		/* audio up to the end of this video frame, then the frame */
		while (l->o.audio &&
		       p.asamples * l->o.fps < (int64_t)(i + 1) * LAT_ARATE) {
			float *s = (float *)p.af->data[0];
			av_frame_make_writable(p.af);
			for (int k = 0; k < p.af->nb_samples; k++) {
				float t = (float)(p.asamples + k) / LAT_ARATE;

				s[k] = 0.3f * sinf(2 * (float)M_PI * 440 * t);
			}
			p.af->pts = p.asamples;
			p.asamples += p.af->nb_samples;
			if (avcodec_send_frame(p.aenc, p.af) == 0)
				prod_drain(&p, p.aenc, 1);
		}
		av_frame_make_writable(p.vf);
		prod_picture(p.vf, i);
		p.vf->pts = i;
		if ((ret = avcodec_send_frame(p.venc, p.vf)) < 0 ||
		    (ret = prod_drain(&p, p.venc, 0)) < 0) {
			fprintf(stderr, "latency: encode: %s\n",
			        av_err2str(ret));
			l->status = 1;
			break;
		}
		atomic_store(&l->first_written, 1);
	}
	avcodec_send_frame(p.venc, NULL);
	prod_drain(&p, p.venc, 0);
	av_write_trailer(p.mux);
	avio_flush(p.mux->pb);
	lat_frame_out(l, &l->rin, true);
out:
	trickle_pub_segment_end(l->pub);
	trickle_pub_close(l->pub);
	prod_close(&p);
	return NULL;
}

/* ---- baseline: demux + decode + encode in process, per frame ---------- */

/* Replays the published bytes at the pace they were published. */
struct replay {
	struct lat *l;
	int next;   /* next chunk */
	size_t pos; /* bytes of it already returned */
	int64_t t0; /* replay start - first chunk's time */
};

static int
replay_read(void *o, uint8_t *buf, int size)
{
	struct replay *r = o;
	struct lat_chunk *c;
	size_t n;

	if (r->next >= r->l->nchunks)
		return AVERROR_EOF;
	c = &r->l->chunks[r->next];
	if (r->pos == 0)
		sleep_until(r->t0 + c->t);
	n = c->len - r->pos < (size_t)size ? c->len - r->pos : (size_t)size;
	memcpy(buf, r->l->rec + c->off + r->pos, n);
	r->pos += n;
	if (r->pos == c->len) {
		r->next++;
		r->pos = 0;
	}
	return (int)n;
}

static void
lat_stage(struct lat *l, struct replay *r, int64_t *t, int64_t pts)
{
	int64_t idx = av_rescale(pts - l->pts0, l->o.fps, 90000);

	if (idx >= 0 && idx < LAT_MAXF && l->t_in[idx])
		t[idx] = clock_now_ns() - (r->t0 + l->t_in[idx]);
}

static int
base_encoder(AVCodecContext **out, const AVFrame *f, int fps)
{
	const AVCodec *ec = avcodec_find_encoder_by_name("libx264");
	AVCodecContext *enc = avcodec_alloc_context3(ec);

	*out = enc;
	if (enc == NULL)
		return AVERROR(ENOMEM);
	/* the gateway's encoder defaults (docs/media.md) */
	enc->width = f->width;
	enc->height = f->height;
	enc->pix_fmt = AV_PIX_FMT_YUV420P;
	enc->time_base = (AVRational){1, 90000};
	enc->framerate = (AVRational){fps, 1};
	enc->max_b_frames = 0;
	enc->thread_count = 0;
	av_opt_set(enc->priv_data, "preset", "superfast", 0);
	av_opt_set(enc->priv_data, "tune", "zerolatency", 0);
	av_opt_set(enc->priv_data, "forced-idr", "1", 0);
	return avcodec_open2(enc, ec, NULL);
}

/* Latency of each frame from its input time (replayed) to its encoded
   packet: the part any transcoding server spends, whatever it is. */
static int
lat_baseline(struct lat *l, double *ms, int *nms)
{
	const AVCodec *dc = avcodec_find_decoder(AV_CODEC_ID_H264);
	struct replay r = { .l = l };
	AVFormatContext *fmt = avformat_alloc_context();
	AVCodecContext *dec = avcodec_alloc_context3(dc), *enc = NULL;
	AVIOContext *io = NULL;
	AVFrame *f = av_frame_alloc();
	AVPacket *pkt = av_packet_alloc(), *opkt = av_packet_alloc();
	unsigned char *iobuf = av_malloc(32768);
	int ret = AVERROR(ENOMEM), n = 0, vidx = -1;

	*nms = 0;
	if (!fmt || !dec || !f || !pkt || !opkt || !iobuf || l->nchunks == 0)
		goto out;
	io = avio_alloc_context(iobuf, 32768, 0, &r, replay_read, NULL, NULL);
	if (io == NULL)
		goto out;
	iobuf = NULL;
	fmt->pb = io;
	fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
	fmt->probesize = 1 << 20;      /* the gateway's decoder settings */
	fmt->max_analyze_duration = 1000000;
	r.t0 = clock_now_ns() + 1000000 - l->chunks[0].t;
	ret = avformat_open_input(&fmt, NULL, av_find_input_format("mpegts"),
	                          NULL);
	if (ret < 0)
		goto out;
	avformat_find_stream_info(fmt, NULL);
	for (unsigned i = 0; i < fmt->nb_streams; i++)
		if (fmt->streams[i]->codecpar->codec_id == AV_CODEC_ID_H264 &&
		    vidx < 0)
			vidx = (int)i;
	ret = AVERROR_STREAM_NOT_FOUND;
	if (vidx < 0)
		goto out;
	dec->thread_count = 1; /* the gateway's decoder */
	if (l->o.low_delay)
		dec->flags |= AV_CODEC_FLAG_LOW_DELAY;
	avcodec_parameters_to_context(dec, fmt->streams[vidx]->codecpar);
	dec->pkt_timebase = fmt->streams[vidx]->time_base;
	if ((ret = avcodec_open2(dec, dc, NULL)) < 0)
		goto out;
	while (av_read_frame(fmt, pkt) >= 0) {
		if (pkt->stream_index != vidx) {
			av_packet_unref(pkt);
			continue;
		}
		lat_stage(l, &r, l->t_demux, pkt->pts);
		ret = avcodec_send_packet(dec, pkt);
		av_packet_unref(pkt);
		if (ret < 0)
			continue;
		while (avcodec_receive_frame(dec, f) == 0) {
			int64_t pts = f->pts;

			lat_stage(l, &r, l->t_dec, pts);
			if (enc == NULL &&
			    (ret = base_encoder(&enc, f, l->o.fps)) < 0)
				goto out;
			f->pict_type = AV_PICTURE_TYPE_NONE;
			ret = avcodec_send_frame(enc, f);
			av_frame_unref(f);
			if (ret < 0)
				goto out;
			while (avcodec_receive_packet(enc, opkt) == 0) {
				int64_t idx = av_rescale(opkt->pts - l->pts0,
				                         l->o.fps, 90000);
				int64_t now = clock_now_ns();

				av_packet_unref(opkt);
				if (idx < l->o.warm * l->o.fps ||
				    idx >= LAT_MAXF || l->t_in[idx] == 0)
					continue;
				l->t_base[idx] = now - (r.t0 + l->t_in[idx]);
				ms[n++] = (double)l->t_base[idx] / 1e6;
			}
			(void)pts;
		}
	}
	ret = 0;
out:
	*nms = n;
	avformat_close_input(&fmt);
	if (io) {
		av_freep(&io->buffer);
		avio_context_free(&io);
	}
	av_free(iobuf);
	avcodec_free_context(&dec);
	avcodec_free_context(&enc);
	av_frame_free(&f);
	av_packet_free(&pkt);
	av_packet_free(&opkt);
	return ret;
}

/* ---- statistics and main ------------------------------------------------ */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const double *v, int n, double p)
{
	int k;

	if (n == 0)
		return NAN;
	k = (int)ceil(p * n) - 1;
	return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static void
usage(void)
{
	fprintf(stderr,
	        "usage: latency --trickle URL --api URL [--channel NAME] "
	        "[--seconds N] [--warmup N] [--size WxH] [--fps N]\n"
	        "       [--csv FILE]"
	        " [--no-audio] [--low-delay-baseline]\n");
}

static int
lat_args(struct lat_opts *o, int argc, char **argv)
{
	*o = (struct lat_opts){ .chan = "bench-lat", .secs = 12, .warm = 2,
	                        .w = 512, .h = 512, .fps = 30,
	                        .audio = true };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--low-delay-baseline")) {
			o->low_delay = true;
			continue;
		}
		if (!strcmp(a, "--no-audio")) {
			o->audio = false;
			continue;
		}
		if (v == NULL)
			return -EINVAL;
		i++;
		if (!strcmp(a, "--trickle"))
			o->trickle = v;
		else if (!strcmp(a, "--api"))
			o->api = v;
		else if (!strcmp(a, "--channel"))
			o->chan = v;
		else if (!strcmp(a, "--csv"))
			o->csv = v;
		else if (!strcmp(a, "--seconds"))
			o->secs = atoi(v);
		else if (!strcmp(a, "--warmup"))
			o->warm = atoi(v);
		else if (!strcmp(a, "--fps"))
			o->fps = atoi(v);
		else if (!strcmp(a, "--size")) {
			if (sscanf(v, "%dx%d", &o->w, &o->h) != 2)
				return -EINVAL;
		} else
			return -EINVAL;
	}
	if (!o->trickle || !o->api || o->secs < 1 || o->fps < 1 ||
	    o->warm < 0 || o->warm >= o->secs || o->w < 16 || o->h < 16 ||
	    o->secs * o->fps >= LAT_MAXF)
		return -EINVAL;
	return 0;
}

/* Per-frame rows "frame e2e_ms baseline_ms" ("?" when no baseline). */
static void
lat_write_csv(struct lat *l)
{
	FILE *f = fopen(l->o.csv, "w");

	if (f == NULL)
		return;
	fprintf(f, "# frame e2e_ms baseline_ms\n");
	for (int i = l->o.warm * l->o.fps; i < LAT_MAXF; i++) {
		double e = (double)(l->t_out[i] - l->t_in[i]) / 1e6;

		if (!l->t_in[i] || !l->t_out[i])
			continue;
		if (l->t_base[i])
			fprintf(f, "%d %.3f %.3f\n", i, e,
			        (double)l->t_base[i] / 1e6);
		else
			fprintf(f, "%d %.3f ?\n", i, e);
	}
	fclose(f);
}

static void
lat_report(struct lat *l, double *e2e, int ne, double *base, int nb)
{
	double e50 = pct(e2e, ne, 0.5), e99 = pct(e2e, ne, 0.99);
	double b50 = pct(base, nb, 0.5), b99 = pct(base, nb, 0.99);
	int published = 0;

	for (int i = 0; i < LAT_MAXF; i++)
		published += l->t_in[i] != 0;
	printf("latency: %d frames published, %d measured after %d s warm-up, "
	       "%" PRId64 " output frames unmatched\n",
	       published, ne, l->o.warm, l->unmatched);
	printf("latency: end-to-end  p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
	       e50, e99, ne ? e2e[ne - 1] : NAN);
	printf("latency: demux+decode+encode baseline%s  p50 %.1f ms  "
	       "p99 %.1f ms\n", l->o.low_delay ? " (decoder LOW_DELAY)" : "",
	       b50, b99);
	{
		double d[LAT_MAXF], c[LAT_MAXF];
		int nd = 0, nc = 0;

		for (int i = l->o.warm * l->o.fps; i < LAT_MAXF; i++) {
			if (l->t_demux[i])
				d[nd++] = (double)l->t_demux[i] / 1e6;
			if (l->t_dec[i])
				c[nc++] = (double)l->t_dec[i] / 1e6;
		}
		qsort(d, (size_t)nd, sizeof(double), cmp_double);
		qsort(c, (size_t)nc, sizeof(double), cmp_double);
		printf("latency: baseline stages p50: demuxed %.1f ms, decoded "
		       "%.1f ms, encoded %.1f ms\n", pct(d, nd, 0.5),
		       pct(c, nc, 0.5), b50);
	}
	printf("latency: added p50 %.1f ms\n", e50 - b50);
	printf("latency: %.1f ms added at p99 (goal <= %.0f)\n", e99 - b99,
	       1000.0 / l->o.fps);
}

int
main(int argc, char **argv)
{
	struct lat *l = calloc(1, sizeof(*l));
	struct trickle_pub_opts po;
	pthread_t prod, ctl;
	double *e2e, *base;
	int ne = 0, nb = 0, ret = 1;

	if (l == NULL || lat_args(&l->o, argc, argv) < 0) {
		usage();
		free(l);
		return 2;
	}
	e2e = calloc(LAT_MAXF, sizeof(double));
	base = calloc(LAT_MAXF, sizeof(double));
	l->pts0 = AV_NOPTS_VALUE;
	l->rin.vpid = l->rout.vpid = -1;
	snprintf(l->in_url, sizeof(l->in_url), "%s/%s", l->o.trickle,
	         l->o.chan);
	snprintf(l->out_url, sizeof(l->out_url), "%s/%s-out", l->o.trickle,
	         l->o.chan);
	av_log_set_level(AV_LOG_ERROR);
	log_set_level(LOG_WARN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	evthread_use_pthreads();
	l->base = event_base_new();
	if (!e2e || !base || !l->base || curlev_create(&l->cv, l->base) < 0)
		goto out;
	l->ev_sub = event_new(l->base, -1, 0, lat_start_sub, l);
	l->ev_quit = event_new(l->base, -1, 0, lat_quit, l);
	trickle_pub_opts_default(&po);
	po.name = "bench-in";
	if (trickle_pub_create(&l->pub, l->cv, l->in_url, &po, NULL, l) < 0 ||
	    trickle_pub_segment_begin(l->pub) < 0)
		goto out;
	{
		struct timeval tv = { l->o.secs + 20, 0 };
		event_add(l->ev_quit, &tv);
	}
	pthread_create(&prod, NULL, lat_producer, l);
	pthread_create(&ctl, NULL, lat_control, l);
	event_base_dispatch(l->base);
	pthread_join(prod, NULL);
	pthread_join(ctl, NULL);
	if (!l->ended)
		fprintf(stderr, "latency: output did not end in time\n");

	for (int i = l->o.warm * l->o.fps; i < LAT_MAXF; i++)
		if (l->t_in[i] && l->t_out[i])
			e2e[ne++] = (double)(l->t_out[i] - l->t_in[i]) / 1e6;
	qsort(e2e, (size_t)ne, sizeof(double), cmp_double);
	if (lat_baseline(l, base, &nb) < 0)
		fprintf(stderr, "latency: baseline failed\n");
	qsort(base, (size_t)nb, sizeof(double), cmp_double);
	if (l->o.csv)
		lat_write_csv(l);
	if (ne == 0) {
		fprintf(stderr, "latency: no output frame matched an input"
		        " frame (last unmatched pts offset %" PRId64 ")\n",
		        l->out_offset_seen);
		printf("latency: FAILED no frame measured (goal <= %.0f)\n",
		       1000.0 / l->o.fps);
		goto out;
	}
	lat_report(l, e2e, ne, base, nb);
	ret = l->status;
out:
	trickle_sub_destroy(&l->sub);
	trickle_pub_destroy(&l->pub);
	curlev_destroy(&l->cv);
	if (l->ev_sub)
		event_free(l->ev_sub);
	if (l->ev_quit)
		event_free(l->ev_quit);
	if (l->base)
		event_base_free(l->base);
	free(l->rec);
	free(l->chunks);
	free(e2e);
	free(base);
	free(l);
	curl_global_cleanup();
	return ret;
}
