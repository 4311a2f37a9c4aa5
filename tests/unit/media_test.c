/*
 * Media path tests: decode (gateway/decode.c), conditioning (convert.c) and
 * encode (encode.c) on synthetic H.264 + AAC/Opus MPEG-TS made in memory by
 * media_gen.h; round trips, frame-rate limiting, sync rules, close. Bad
 * input: media_bad_test.c; fixtures: media_util.h.
 */
#include "media_util.h"

#define PSNR_MIN 30.0 /* dB, luma, input decode vs round-trip decode */

static double
psnr_y(const uint8_t *a, const uint8_t *b, size_t n)
{
	double se = 0;

	for (size_t i = 0; i < n; i++) {
		double d = (double)a[i] - b[i];

		se += d * d;
	}
	if (se == 0)
		return 99.0;
	return 10.0 * log10(255.0 * 255.0 / (se / (double)n));
}

/*
 * Full round trip: generated TS -> decoder -> RGB24 slot at the input size
 * -> yuv420p -> encoder -> output TS -> decoder; checks counts, pts, PSNR,
 * A/V start alignment and that each output segment starts with an IDR.
 */
static void
roundtrip(enum gen_audio audio, bool no_video)
{
	struct gen_cfg gc = {.w = 320,
	                     .h = 240,
	                     .fps = 30,
	                     .secs = 3,
	                     .audio = audio,
	                     .no_video = no_video};
	struct gen_media m;
	struct sink in = {.keep_y = true, .fmt = FP_FMT_RGB24};
	struct sink back = {.keep_y = true};
	struct out o = {0};
	struct encoder_cfg ec = {.name = "test",
	                         .has_video = !no_video,
	                         .has_audio = audio != GEN_NO_AUDIO,
	                         .threads = 1,
	                         .segment_secs = 1.0};
	struct encoder_callbacks ecb = out_cbs(&o);
	int64_t t0 = clock_now_ns();

	CHECK_OK(gen_media(&gc, &m));
	CHECK_OK(convert_create(&in.cv));
	CHECK_OK(encoder_create(&in.enc, &ec, &ecb));
	decode_all(m.seg, m.len, m.nseg, &in, 4093);
	CHECK_EQ(in.end_status, 0);
	encoder_end(in.enc);
	encoder_stop(in.enc);
	CHECK(o.done);
	CHECK_EQ(o.end_status, 0);
	CHECK_EQ(o.begun, o.ended);
	CHECK(o.nseg >= 2);

	/* input side: every frame, pts as generated */
	CHECK_EQ(in.nv, m.nv);
	for (int i = 0; i < in.nv; i++)
		CHECK_EQ(in.vpts[i], m.vpts[i]);
	if (audio != GEN_NO_AUDIO)
		CHECK(in.na > 0);

	/* output: decode everything back */
	decode_all(o.seg, o.len, o.nseg, &back, 100000);
	CHECK_EQ(back.end_status, 0);
	CHECK_EQ(back.nv, m.nv);
	for (int i = 0; i < back.nv; i++) {
		CHECK_EQ(back.vpts[i], m.vpts[i]);
		if (i > 0)
			CHECK(back.vpts[i] > back.vpts[i - 1]);
	}
	if (!no_video) {
		double se = 0;

		for (int i = 0; i < back.nv; i++) {
			double p;

			CHECK_EQ(back.vw[i], 320);
			p = psnr_y(in.y[i], back.y[i], 320 * 240);
			se += pow(10.0, -p / 10.0);
		}
		printf("    round trip luma PSNR %.2f dB (bound %.0f)\n",
		       10.0 * log10(back.nv / se), PSNR_MIN);
		CHECK(10.0 * log10(back.nv / se) > PSNR_MIN);
	}
	if (audio != GEN_NO_AUDIO) {
		CHECK(back.na > 0);
		/* Opus at 48 kHz: one packet = 20 ms; the encoder's pre-skip
		   shifts by 312 samples (6.5 ms): within one video frame */
		CHECK_MSG(llabs(back.first_apts - in.first_apts) <= 3000,
		          "audio start %lld vs %lld",
		          (long long)back.first_apts, (long long)in.first_apts);
		if (!no_video) {
			CHECK(llabs(back.first_apts - back.vpts[0]) <=
			      llabs(in.first_apts - in.vpts[0]) + 3000);
			CHECK(
			    llabs(back.last_aend -
			          (back.vpts[back.nv - 1] + 3000)) <=
			    llabs(in.last_aend - (in.vpts[in.nv - 1] + 3000)) +
			        3000 + 1920);
		}
		CHECK(back.last_aend - back.first_apts >=
		      (in.last_aend - in.first_apts) - 3000);
	} else {
		CHECK_EQ(back.na, 0);
		CHECK(!back.info_audio);
	}

	/* each output segment alone decodes from its first frame: an IDR */
	for (int i = 0; i < o.nseg && !no_video; i++) {
		struct sink one = {0};

		decode_all(&o.seg[i], &o.len[i], 1, &one, 100000);
		CHECK_MSG(one.nv > 0 && one.nkey_first == 1,
		          "segment %d does not start with an IDR", i);
	}
	printf("    %d frames, %d output segments, %.0f ms\n", back.nv, o.nseg,
	       (clock_now_ns() - t0) / 1e6);
	encoder_destroy(&in.enc);
	convert_destroy(&in.cv);
	sink_free(&in);
	sink_free(&back);
	out_free(&o);
	gen_free(&m);
}

static void
media_roundtrip_aac(void)
{
	roundtrip(GEN_AAC, false);
}

static void
media_roundtrip_opus(void)
{
	roundtrip(GEN_OPUS, false);
}

static void
media_video_only(void)
{
	roundtrip(GEN_NO_AUDIO, false);
}

static void
media_audio_only(void)
{
	roundtrip(GEN_OPUS, true);
}

/* Frame-rate limit through the decoder: 30 fps input, 3 s = 90 frames. */
static int
decimated(const struct gen_media *m, int fps, int switch_at, int switch_fps)
{
	struct sink s = {
	    .limit = true, .switch_at = switch_at, .switch_fps = switch_fps};
	int n;

	CHECK_OK(convert_create(&s.cv));
	CHECK_OK(convert_set_max_framerate(s.cv, fps));
	decode_all(m->seg, m->len, m->nseg, &s, 65536);
	for (int i = 1; i < s.nv; i++)
		CHECK(s.vpts[i] > s.vpts[i - 1]);
	CHECK_EQ(convert_dropped(s.cv), (uint64_t)(m->nv - s.nv));
	n = s.nv;
	convert_destroy(&s.cv);
	sink_free(&s);
	return n;
}

static void
media_decimation(void)
{
	struct gen_cfg gc = {.w = 160, .h = 120, .fps = 30, .secs = 3};
	struct gen_media m;
	convert *c = NULL;
	int n10, n24, n30, nsw;

	CHECK_OK(gen_media(&gc, &m));
	CHECK_EQ(m.nv, 90);
	n10 = decimated(&m, 10, 0, 0);
	n24 = decimated(&m, 24, 0, 0);
	n30 = decimated(&m, 30, 0, 0);
	nsw = decimated(&m, 30, 45, 10); /* live change at 1.5 s */
	printf(
	    "    30 fps in: 10 -> %d, 24 -> %d, 30 -> %d, 30 then 10 -> %d\n",
	    n10, n24, n30, nsw);
	CHECK_EQ(n10, 30);
	CHECK(n24 >= 71 && n24 <= 73);
	CHECK_EQ(n30, 90);
	CHECK(nsw >= 59 && nsw <= 61);
	CHECK_OK(convert_create(&c));
	CHECK_EQ(convert_get_max_framerate(c), CONVERT_FPS_DEFAULT);
	CHECK_EQ(convert_set_max_framerate(c, 0), -EINVAL);
	CHECK_EQ(convert_set_max_framerate(c, 61), -EINVAL);
	convert_destroy(&c);
	convert_destroy(&c);
	gen_free(&m);
}

/* 320x240 then 480x360 (new SPS) mid-stream, conditioned to 256x256 RGBA. */
static void
media_resolution_change(void)
{
	struct gen_cfg gc = {.w = 320,
	                     .h = 240,
	                     .fps = 30,
	                     .secs = 2,
	                     .audio = GEN_AAC,
	                     .w2 = 480,
	                     .h2 = 360,
	                     .change_at = 1.0};
	struct gen_media m;
	struct sink in = {.fmt = FP_FMT_RGBA, .sw = 256, .sh = 256};
	struct sink back = {0};
	struct out o = {0};
	struct encoder_cfg ec = {
	    .has_video = true, .has_audio = true, .threads = 1};
	struct encoder_callbacks ecb = out_cbs(&o);
	int small = 0, big = 0;

	CHECK_OK(gen_media(&gc, &m));
	CHECK_OK(convert_create(&in.cv));
	CHECK_OK(encoder_create(&in.enc, &ec, &ecb));
	decode_all(m.seg, m.len, m.nseg, &in, 777);
	encoder_end(in.enc);
	encoder_stop(in.enc);
	for (int i = 0; i < in.nv; i++) {
		small += in.vw[i] == 320 && in.vh[i] == 240;
		big += in.vw[i] == 480 && in.vh[i] == 360;
	}
	CHECK_EQ(in.nv, m.nv);
	CHECK_EQ(small, 30);
	CHECK_EQ(big, 30);
	decode_all(o.seg, o.len, o.nseg, &back, 100000);
	CHECK_EQ(back.nv, m.nv);
	for (int i = 0; i < back.nv; i++) {
		CHECK_EQ(back.vw[i], 256);
		CHECK_EQ(back.vh[i], 256);
		CHECK_EQ(back.vpts[i], m.vpts[i]);
	}
	encoder_destroy(&in.enc);
	convert_destroy(&in.cv);
	sink_free(&in);
	sink_free(&back);
	out_free(&o);
	gen_free(&m);
}

/* The encoder scales a later frame of another size to the first's size. */
static void
media_encoder_resize(void)
{
	struct out o = {0};
	struct encoder_cfg ec = {.has_video = true, .threads = 1};
	struct encoder_callbacks ecb = out_cbs(&o);
	struct sink back = {0};
	encoder *e = NULL;

	CHECK_OK(encoder_create(&e, &ec, &ecb));
	for (int i = 0; i < 20; i++) {
		AVFrame *f = av_frame_alloc();

		f->format = AV_PIX_FMT_YUV420P;
		f->width = i < 10 ? 192 : 320;
		f->height = i < 10 ? 108 : 240;
		CHECK_OK(av_frame_get_buffer(f, 0));
		gen_pattern(f, i);
		f->pts = 900000 + i * 3000;
		f->time_base = (AVRational){1, 90000};
		CHECK_OK(encoder_push_video(e, f, true));
		av_frame_free(&f);
	}
	encoder_end(e);
	encoder_stop(e);
	CHECK_EQ(o.end_status, 0);
	decode_all(o.seg, o.len, o.nseg, &back, 100000);
	CHECK_EQ(back.nv, 20);
	for (int i = 0; i < back.nv; i++) {
		CHECK_EQ(back.vw[i], 192);
		CHECK_EQ(back.vh[i], 108);
	}
	encoder_destroy(&e);
	sink_free(&back);
	out_free(&o);
}

static void
wrap_release(void *o, uint8_t *data)
{
	atomic_int *n = o;

	atomic_fetch_add(n, 1);
	free(data);
}

/* A YUV420P slot goes to the encoder with no copy; the slot is released
 * once, after the encoder is done with it. */
static void
media_wrap_release(void)
{
	struct out o = {0};
	struct encoder_cfg ec = {.has_video = true, .threads = 1};
	struct encoder_callbacks ecb = out_cbs(&o);
	struct sink back = {0};
	encoder *e = NULL;
	atomic_int released = 0;
	int st[4] = {64, 32, 32, 0};

	CHECK_OK(encoder_create(&e, &ec, &ecb));
	for (int i = 0; i < 10; i++) {
		uint8_t *slot = malloc(64 * 64 * 3 / 2);
		uint8_t *pl[4] = {slot, slot + 64 * 64,
		                  slot + 64 * 64 + 32 * 32, NULL};
		AVFrame *f = NULL;

		memset(slot, 16 + i * 20, 64 * 64);
		memset(slot + 64 * 64, 128, 2 * 32 * 32);
		CHECK_OK(convert_wrap_planes(
		    pl, st, FP_FMT_YUV420P, 64, 64, 900000 + i * 3000,
		    (AVRational){1, 90000}, wrap_release, &released, &f));
		CHECK_OK(encoder_push_video(e, f, true));
		av_frame_free(&f);
	}
	encoder_end(e);
	encoder_stop(e);
	CHECK_EQ(atomic_load(&released), 10);
	CHECK_EQ(o.end_status, 0);
	decode_all(o.seg, o.len, o.nseg, &back, 100000);
	CHECK_EQ(back.nv, 10);
	CHECK_EQ(convert_wrap_planes((uint8_t *[4]){NULL}, st, FP_FMT_RGB24, 64,
	                             64, 0, (AVRational){1, 90000},
	                             wrap_release, &released,
	                             &(AVFrame *){NULL}),
	         -ENOTSUP);
	encoder_destroy(&e);
	sink_free(&back);
	out_free(&o);
}

/* PROTOCOL.md 4.3: first audio and first video more than 2 s apart stops. */
static void
media_sync_far_apart(void)
{
	struct out o = {0};
	struct encoder_cfg ec = {
	    .has_video = true, .has_audio = true, .threads = 1};
	struct encoder_callbacks ecb = out_cbs(&o);
	encoder *e = NULL;
	AVFrame *a = av_frame_alloc(), *v = av_frame_alloc();
	struct encoder_stats st;

	av_pair_init(a, v, 2);

	CHECK_OK(encoder_create(&e, &ec, &ecb));
	for (int i = 0; i < 150; i++) { /* 3 s of audio, oldest dropped */
		a->pts = 480000 + i * 960;
		CHECK_OK(encoder_push_audio(e, a, true));
	}
	v->pts = 13 * 90000; /* first video 3 s after audio */
	CHECK_OK(encoder_push_video(e, v, true));
	encoder_end(e);
	encoder_stop(e);
	encoder_get_stats(e, &st);
	printf("    end status %d, early audio drops %llu\n", o.end_status,
	       (unsigned long long)st.early_audio_drops);
	CHECK_EQ(o.end_status, AVERROR_INVALIDDATA);
	CHECK_EQ(st.early_audio_drops, 50);
	CHECK_EQ(st.video_encoded, 0);
	encoder_destroy(&e);

	/* within 2 s: audio queued before video is kept (from video - 2 s) */
	memset(&o, 0, sizeof(o));
	CHECK_OK(encoder_create(&e, &ec, &ecb));
	for (int i = 0; i < 50; i++) { /* 1 s of audio from 10 s */
		a->pts = 480000 + i * 960;
		CHECK_OK(encoder_push_audio(e, a, true));
	}
	for (int i = 0; i < 30; i++) {
		v->pts = 10 * 90000 + 45000 + i * 3000;
		CHECK_OK(encoder_push_video(e, v, true));
	}
	encoder_end(e);
	encoder_stop(e);
	encoder_get_stats(e, &st);
	CHECK_EQ(o.end_status, 0);
	CHECK_EQ(st.video_encoded, 30);
	CHECK(st.audio_encoded >= 49);
	CHECK_EQ(st.early_audio_drops, 0);
	encoder_destroy(&e);
	out_free(&o);
	av_frame_free(&a);
	av_frame_free(&v);
}

/* Cover + center crop: a 640x240 frame whose middle third is white, the
 * rest black, cropped to a square keeps only the middle region. */
static void
media_convert_crop(void)
{
	convert *c = NULL;
	AVFrame *f = av_frame_alloc();
	uint8_t *rgb = malloc(120 * 120 * 3);
	uint8_t *pl[4] = {rgb, NULL, NULL, NULL};
	int st[4] = {360, 0, 0, 0};
	AVFrame *back = NULL;

	f->format = AV_PIX_FMT_YUV420P;
	f->width = 640;
	f->height = 240;
	CHECK_OK(av_frame_get_buffer(f, 0));
	for (int y = 0; y < 240; y++)
		for (int x = 0; x < 640; x++)
			f->data[0][y * f->linesize[0] + x] =
			    x >= 200 && x < 440 ? 235 : 16;
	memset(f->data[1], 128, (size_t)f->linesize[1] * 120);
	memset(f->data[2], 128, (size_t)f->linesize[2] * 120);
	CHECK_OK(convert_create(&c));
	CHECK(!convert_is_identity(f, FP_FMT_RGB24, 120, 120));
	CHECK_OK(convert_to_planes(c, f, FP_FMT_RGB24, 120, 120, pl, st));
	/* the crop is x in [200, 440): all white */
	CHECK(rgb[0] > 240 && rgb[(120 * 60 + 119) * 3] > 240);
	CHECK(rgb[(120 * 119 + 60) * 3 + 1] > 240);
	CHECK_EQ(convert_layout(FP_FMT_NV12, 120, 120, NULL, NULL),
	         120 * 120 * 3 / 2);
	CHECK_EQ(convert_to_planes(c, f, FP_FMT_COUNT, 120, 120, pl, st),
	         -EINVAL);
	/* identity: same format and size is a plain copy */
	{
		uint8_t *y = malloc(640 * 240 * 3 / 2);
		uint8_t *p3[4] = {y, y + 640 * 240, y + 640 * 240 + 320 * 120,
		                  NULL};
		int s3[4] = {640, 320, 320, 0};

		CHECK(convert_is_identity(f, FP_FMT_YUV420P, 640, 240));
		CHECK_OK(
		    convert_to_planes(c, f, FP_FMT_YUV420P, 640, 240, p3, s3));
		CHECK_EQ(y[239 * 640 + 300], 235);
		CHECK_EQ(y[239 * 640 + 100], 16);
		CHECK_OK(convert_from_planes(c, (const uint8_t *const *)p3, s3,
		                             FP_FMT_YUV420P, 640, 240, 7,
		                             (AVRational){1, 90000}, &back));
		CHECK_EQ(back->pts, 7);
		CHECK_EQ(back->data[0][239 * back->linesize[0] + 300], 235);
		av_frame_free(&back);
		free(y);
	}
	CHECK_OK(convert_from_planes(c, (const uint8_t *const *)pl, st,
	                             FP_FMT_RGB24, 120, 120, 9,
	                             (AVRational){1, 90000}, &back));
	CHECK(back->data[0][0] > 225);
	av_frame_free(&back);
	convert_destroy(&c);
	av_frame_free(&f);
	free(rgb);
}

static void
media_bytequeue(void)
{
	bytequeue *q = NULL;
	char buf[16];

	CHECK_OK(bytequeue_create(&q, 8));
	CHECK_OK(bytequeue_push(q, "abcdef", 6, false));
	CHECK_EQ(bytequeue_push(q, "ghi", 3, false), -EAGAIN);
	CHECK_EQ(bytequeue_push(q, "0123456789", 10, false), -E2BIG);
	CHECK_EQ(bytequeue_read(q, buf, 4), 4);
	CHECK_OK(bytequeue_push(q, "ghij", 4, false)); /* wraps */
	CHECK_EQ(bytequeue_read(q, buf, 16), 6);
	CHECK(memcmp(buf, "efghij", 6) == 0);
	bytequeue_end(q);
	CHECK_EQ(bytequeue_read(q, buf, 16), 0);
	CHECK_EQ(bytequeue_push(q, "x", 1, true), -EPIPE);
	bytequeue_close(q);
	CHECK_EQ(bytequeue_read(q, buf, 16), -ECANCELED);
	bytequeue_destroy(&q);
	bytequeue_destroy(&q);
}

/* Closing a decoder and an encoder mid-stream while their threads wait. */
static void
media_close_midstream(void)
{
	struct gen_cfg gc = {.w = 160, .h = 120, .fps = 30, .secs = 1};
	struct gen_media m;
	struct sink s = {0};
	struct out o = {0};
	struct encoder_cfg ec = {.has_video = true, .threads = 1};
	struct encoder_callbacks ecb = out_cbs(&o);
	decoder *d = NULL;
	encoder *e = NULL;

	CHECK_OK(gen_media(&gc, &m));
	struct decoder_callbacks cb = sink_cb(&s);

	CHECK_OK(decoder_create(&d, NULL, &cb));
	CHECK_OK(decoder_push(d, m.seg[0], m.len[0] / 2, true));
	decoder_close(d);
	decoder_stop(d);
	CHECK(s.ended);
	CHECK_EQ(s.end_status, AVERROR_EXIT);
	decoder_destroy(&d);
	CHECK_OK(encoder_create(&e, &ec, &ecb));
	encoder_destroy(&e);
	CHECK(o.done);
	CHECK_EQ(o.end_status, AVERROR_EXIT);
	gen_free(&m);
}

static const struct th_case cases[] = {
    TH_CASE(media_bytequeue),
    TH_CASE(media_convert_crop),
    TH_CASE(media_roundtrip_aac),
    TH_CASE(media_roundtrip_opus),
    TH_CASE(media_video_only),
    TH_CASE(media_audio_only),
    TH_CASE(media_decimation),
    TH_CASE(media_resolution_change),
    TH_CASE(media_encoder_resize),
    TH_CASE(media_wrap_release),
    TH_CASE(media_sync_far_apart),
    TH_CASE(media_close_midstream),
    TH_END,
};

int
main(int argc, char **argv)
{
	return media_test_main(argc, argv, cases);
}
