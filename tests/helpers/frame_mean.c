/*
 * build/tests/helpers/frame_mean: decodes the video of a media file (the
 * gateway's MPEG-TS output) with libavformat/libavcodec and prints the mean
 * R, G and B of one frame, so tests/run-gpu.sh can check a frame without
 * the ffmpeg CLI (which the device machine lacks, and which does not fit
 * the GPU bundle). Owns nothing beyond one run.
 * Usage: frame_mean FILE [FRAME]   (FRAME: 0-based; default the middle one)
 * Prints "frames=N size=WxH frame=K mean=R G B"; exit 0, or 1 when no frame
 * decodes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

/* What frame_mean_decode collects: every frame's mean (up to cap). */
struct frame_mean_acc {
	double (*mean)[3];
	int n, cap;
	int width, height;
	struct SwsContext *sws;
	uint8_t *rgb;
	int rgb_stride;
};

/* Converts one decoded frame to RGB24 and records its mean. */
static int
frame_mean_add(struct frame_mean_acc *a, const AVFrame *f)
{
	double s[3] = { 0, 0, 0 };

	if (!a->sws) {
		a->width = f->width;
		a->height = f->height;
		a->sws = sws_getContext(f->width, f->height, f->format, f->width,
		                        f->height, AV_PIX_FMT_RGB24, SWS_BILINEAR,
		                        NULL, NULL, NULL);
		a->rgb_stride = f->width * 3;
		a->rgb = malloc((size_t)a->rgb_stride * f->height);
		if (!a->sws || !a->rgb)
			return -1;
	}
	if (f->width != a->width || f->height != a->height)
		return 0; /* a size change: only the first size is measured */
	sws_scale(a->sws, (const uint8_t *const *)f->data, f->linesize, 0,
	          f->height, &a->rgb, &a->rgb_stride);
	for (int y = 0; y < a->height; y++)
		for (int x = 0; x < a->width; x++)
			for (int c = 0; c < 3; c++)
				s[c] += a->rgb[(size_t)y * a->rgb_stride + x * 3 + c];
	if (a->n < a->cap)
		for (int c = 0; c < 3; c++)
			a->mean[a->n][c] = s[c] / ((double)a->width * a->height);
	a->n++;
	return 0;
}

/* Drains every frame the decoder has. */
static int
frame_mean_drain(AVCodecContext *dec, AVFrame *f, struct frame_mean_acc *a)
{
	int rc;

	while ((rc = avcodec_receive_frame(dec, f)) == 0) {
		if (frame_mean_add(a, f) < 0)
			return -1;
		av_frame_unref(f);
	}
	return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

int
main(int argc, char **argv)
{
	struct frame_mean_acc a = { 0 };
	AVFormatContext *fmt = NULL;
	AVCodecContext *dec = NULL;
	const AVCodec *codec;
	AVPacket *pkt = av_packet_alloc();
	AVFrame *f = av_frame_alloc();
	int vs, k, rc = 1;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: frame_mean FILE [FRAME]\n");
		return 2;
	}
	av_log_set_level(AV_LOG_ERROR);
	a.cap = 100000;
	a.mean = calloc((size_t)a.cap, sizeof(*a.mean));
	if (!pkt || !f || !a.mean)
		goto out;
	if (avformat_open_input(&fmt, argv[1], NULL, NULL) < 0 ||
	    avformat_find_stream_info(fmt, NULL) < 0) {
		fprintf(stderr, "frame_mean: cannot read %s\n", argv[1]);
		goto out;
	}
	vs = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
	if (vs < 0 || !(dec = avcodec_alloc_context3(codec)) ||
	    avcodec_parameters_to_context(dec, fmt->streams[vs]->codecpar) < 0 ||
	    avcodec_open2(dec, codec, NULL) < 0) {
		fprintf(stderr, "frame_mean: no decodable video in %s\n", argv[1]);
		goto out;
	}
	while (av_read_frame(fmt, pkt) >= 0) {
		if (pkt->stream_index == vs && avcodec_send_packet(dec, pkt) == 0 &&
		    frame_mean_drain(dec, f, &a) < 0) {
			av_packet_unref(pkt);
			goto out;
		}
		av_packet_unref(pkt);
	}
	avcodec_send_packet(dec, NULL);
	if (frame_mean_drain(dec, f, &a) < 0 || a.n == 0) {
		fprintf(stderr, "frame_mean: no frame decoded from %s\n", argv[1]);
		goto out;
	}
	k = argc > 2 ? atoi(argv[2]) : a.n / 2;
	if (k < 0 || k >= a.n || k >= a.cap)
		k = (a.n < a.cap ? a.n : a.cap) - 1;
	printf("frames=%d size=%dx%d frame=%d mean=%.1f %.1f %.1f\n", a.n, a.width,
	       a.height, k, a.mean[k][0], a.mean[k][1], a.mean[k][2]);
	rc = 0;
out:
	sws_freeContext(a.sws);
	free(a.rgb);
	free(a.mean);
	avcodec_free_context(&dec);
	avformat_close_input(&fmt);
	av_frame_free(&f);
	av_packet_free(&pkt);
	return rc;
}
