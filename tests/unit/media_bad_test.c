/*
 * Bad input on the media path: random bytes, truncated segments, another
 * codec mid-stream, an SPS claiming 16384x16384, empty segments, absurd
 * audio pts from a worker. A clear error or skip, then recovery; never a
 * crash. Fixtures: media_util.h; the good path: media_test.c.
 */
#include "media_util.h"

/* ---- bad input: a clear error or skip, then recovery; never a crash ---- */

static void
decode_mixed(uint8_t **seg, size_t *len, int n, struct sink *s)
{
	decode_all(seg, len, n, s, 3001);
	for (int i = 0; i < s->nv && i < SINK_MAX; i++) {
		CHECK(s->vw[i] <= 1920 && s->vh[i] <= 1080);
		if (i > 0)
			CHECK(s->vpts[i] > s->vpts[i - 1]);
	}
}

static void
media_bad_random(void)
{
	struct gen_cfg gc = {
	    .w = 160, .h = 120, .fps = 30, .secs = 2, .audio = GEN_AAC};
	struct gen_media m;
	uint8_t *junk = malloc(100000);
	unsigned seed = 7;
	struct sink s1 = {0}, s2 = {0};
	uint8_t *seg[GEN_MAX_SEG + 1];
	size_t len[GEN_MAX_SEG + 1];

	for (int i = 0; i < 100000; i++)
		junk[i] = (uint8_t)rand_r(&seed);
	decode_mixed(&junk, &(size_t){100000}, 1, &s1);
	CHECK_EQ(s1.nv, 0);
	printf("    random only: status %d, errors %d\n", s1.end_status,
	       s1.nerr);

	CHECK_OK(gen_media(&gc, &m));
	seg[0] = junk;
	len[0] = 100000;
	for (int i = 0; i < m.nseg; i++) {
		seg[i + 1] = m.seg[i];
		len[i + 1] = m.len[i];
	}
	decode_mixed(seg, len, m.nseg + 1, &s2);
	printf("    random then valid: %d of %d frames\n", s2.nv, m.nv);
	CHECK(s2.nv >= m.nv - 30);
	CHECK(s2.na > 0);
	free(junk);
	gen_free(&m);
}

static void
media_bad_truncated(void)
{
	struct gen_cfg gc = {
	    .w = 160, .h = 120, .fps = 30, .secs = 4, .audio = GEN_OPUS};
	struct gen_media m;
	struct sink s = {0};
	size_t len[GEN_MAX_SEG];

	CHECK_OK(gen_media(&gc, &m));
	CHECK(m.nseg >= 4);
	for (int i = 0; i < m.nseg; i++)
		len[i] = i == 1 ? m.len[i] * 6 / 10 / 188 * 188 + 77 : m.len[i];
	decode_mixed(m.seg, len, m.nseg, &s);
	printf("    truncated segment 1: %d of %d frames, bad packets reported "
	       "%d\n",
	       s.nv, m.nv, s.nerr);
	CHECK(s.nv < m.nv);
	CHECK(s.nv >=
	      m.nv - 30 - 2); /* at most segment 1's frames and a few more */
	gen_free(&m);
}

static void
media_bad_other_codec(void)
{
	struct gen_cfg a = {.w = 160, .h = 120, .fps = 30, .secs = 1};
	struct gen_cfg b = {.w = 160,
	                    .h = 120,
	                    .fps = 30,
	                    .secs = 1,
	                    .start = 11.0,
	                    .vcodec = "mpeg2video"};
	struct gen_cfg c = {
	    .w = 160, .h = 120, .fps = 30, .secs = 2, .start = 12.0};
	struct gen_media ma, mb, mc;
	uint8_t *seg[3 * GEN_MAX_SEG];
	size_t len[3 * GEN_MAX_SEG];
	int n = 0;
	struct sink s = {0};

	CHECK_OK(gen_media(&a, &ma));
	CHECK_OK(gen_media(&b, &mb));
	CHECK_OK(gen_media(&c, &mc));
	for (int i = 0; i < ma.nseg; i++, n++)
		seg[n] = ma.seg[i], len[n] = ma.len[i];
	for (int i = 0; i < mb.nseg; i++, n++)
		seg[n] = mb.seg[i], len[n] = mb.len[i];
	for (int i = 0; i < mc.nseg; i++, n++)
		seg[n] = mc.seg[i], len[n] = mc.len[i];
	decode_mixed(seg, len, n, &s);
	printf("    h264 | mpeg2 | h264: %d frames (h264 %d), errors %d: %s\n",
	       s.nv, ma.nv + mc.nv, s.nerr, s.last_err);
	int na = 0, nc = 0, nc2 = 0;

	for (int i = 0; i < s.nv; i++) {
		na += s.vpts[i] < 11 * 90000;
		nc += s.vpts[i] >= 12 * 90000;
		nc2 += s.vpts[i] >= 13 * 90000; /* after C's 2nd IDR */
		CHECK(s.vpts[i] < 11 * 90000 || s.vpts[i] >= 12 * 90000);
	}
	/* the last frame of A may be merged with the foreign data by the
	   demuxer's parser; C is whole from its first keyframe the parser
	   delivers intact (the next one at the latest) */
	CHECK(na >= ma.nv - 1);
	CHECK(nc > 0);
	CHECK_EQ(nc2, 30);
	CHECK(s.nerr >= 1);
	gen_free(&ma);
	gen_free(&mb);
	gen_free(&mc);
}

static void
media_bad_huge_sps(void)
{
	struct gen_cfg gc = {
	    .w = 160, .h = 120, .fps = 30, .secs = 1, .start = 11.0};
	struct gen_media m;
	AVFormatContext *oc = NULL;
	AVStream *st;
	AVPacket *pkt = av_packet_alloc();
	uint8_t nal[256], *bad = NULL;
	uint8_t *seg[GEN_MAX_SEG + 1];
	size_t len[GEN_MAX_SEG + 1];
	size_t nn = huge_idr(nal);
	struct sink s = {0};
	int blen;

	CHECK_OK(avformat_alloc_output_context2(&oc, NULL, "mpegts", NULL) < 0);
	CHECK_OK(avio_open_dyn_buf(&oc->pb));
	st = avformat_new_stream(oc, NULL);
	st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
	st->codecpar->codec_id = AV_CODEC_ID_H264;
	st->codecpar->width = 160;
	st->codecpar->height = 120;
	st->time_base = (AVRational){1, 90000};
	CHECK(avformat_write_header(oc, NULL) >= 0);
	for (int i = 0; i < 5; i++) {
		CHECK_OK(av_new_packet(pkt, (int)nn));
		memcpy(pkt->data, nal, nn);
		pkt->pts = pkt->dts = 900000 + i * 3000;
		pkt->flags = AV_PKT_FLAG_KEY;
		pkt->stream_index = 0;
		CHECK(av_write_frame(oc, pkt) >= 0);
		av_packet_unref(pkt);
	}
	av_write_trailer(oc);
	blen = avio_close_dyn_buf(oc->pb, &bad);
	avformat_free_context(oc);
	av_packet_free(&pkt);

	CHECK_OK(gen_media(&gc, &m));
	seg[0] = bad;
	len[0] = (size_t)blen;
	for (int i = 0; i < m.nseg; i++)
		seg[i + 1] = m.seg[i], len[i + 1] = m.len[i];
	decode_mixed(seg, len, m.nseg + 1, &s);
	printf("    16384x16384 SPS then valid: %d of %d frames\n", s.nv, m.nv);
	CHECK(s.nv >= m.nv - 1);
	for (int i = 0; i < s.nv; i++)
		CHECK_EQ(s.vw[i], 160);
	av_free(bad);
	gen_free(&m);
}

static void
media_bad_zero_length(void)
{
	struct gen_cfg gc = {.w = 160, .h = 120, .fps = 30, .secs = 2};
	struct gen_media m;
	uint8_t *seg[GEN_MAX_SEG * 2];
	size_t len[GEN_MAX_SEG * 2];
	int n = 0;
	struct sink s = {0}, e = {0};
	decoder *d = NULL;

	CHECK_OK(gen_media(&gc, &m));
	for (int i = 0; i < m.nseg; i++) {
		seg[n] = m.seg[i];
		len[n++] = 0; /* an empty segment first */
		seg[n] = m.seg[i];
		len[n++] = m.len[i];
	}
	decode_mixed(seg, len, n, &s);
	CHECK_EQ(s.nv, m.nv);
	/* a stream that ends before any byte: a clean end, no frame */
	struct decoder_callbacks cb = sink_cb(&e);

	CHECK_OK(decoder_create(&d, NULL, &cb));
	CHECK_OK(decoder_push(d, "", 0, false));
	decoder_end(d);
	decoder_stop(d);
	CHECK(e.ended);
	CHECK(!e.info_video && !e.info_audio);
	CHECK_EQ(e.nv, 0);
	CHECK_EQ(decoder_push(d, "x", 1, false), -ECANCELED);
	decoder_destroy(&d);
	decoder_destroy(&d);
	gen_free(&m);
}

/*
 * Audio pts come back from the worker, unchecked: one so large that the
 * encoder's A/V arithmetic would overflow (UB; an abort under UBSan) is
 * refused at push, and the stream goes on encoding the sane frames.
 */
static void
media_bad_pts(void)
{
	struct out o = {0};
	struct encoder_cfg ec = {
	    .has_video = true, .has_audio = true, .threads = 1};
	struct encoder_callbacks ecb = out_cbs(&o);
	encoder *e = NULL;
	AVFrame *a = av_frame_alloc(), *v = av_frame_alloc();
	struct encoder_stats st;
	static const int64_t bad[] = {INT64_MAX, INT64_MIN + 1,
	                              (int64_t)1 << 62, -((int64_t)1 << 61)};

	av_pair_init(a, v, 1);

	CHECK_OK(encoder_create(&e, &ec, &ecb));
	for (int i = 0; i < 30; i++) {
		v->pts = 90000 + i * 3000;
		CHECK_OK(encoder_push_video(e, v, true));
		a->time_base = (AVRational){1, 48000};
		a->pts = 48000 + i * 960;
		CHECK_OK(encoder_push_audio(e, a, true));
		a->pts = bad[i % 4];
		CHECK_EQ(encoder_push_audio(e, a, true), -EINVAL);
		a->time_base = (AVRational){1000000, 1}; /* pts 1e15 s */
		a->pts = 1000000000;
		CHECK_EQ(encoder_push_audio(e, a, true), -EINVAL);
	}
	v->pts = (int64_t)1 << 60;
	CHECK_EQ(encoder_push_video(e, v, true), -EINVAL);
	encoder_end(e);
	encoder_stop(e);
	encoder_get_stats(e, &st);
	CHECK_EQ(o.end_status, 0);
	CHECK_EQ(st.video_encoded, 30);
	CHECK_EQ(st.audio_in, 30);
	encoder_destroy(&e);
	out_free(&o);
	av_frame_free(&a);
	av_frame_free(&v);
}

static const struct th_case cases[] = {
    TH_CASE(media_bad_random),
    TH_CASE(media_bad_truncated),
    TH_CASE(media_bad_other_codec),
    TH_CASE(media_bad_huge_sps),
    TH_CASE(media_bad_zero_length),
    TH_CASE(media_bad_pts),
    TH_END,
};

int
main(int argc, char **argv)
{
	return media_test_main(argc, argv, cases);
}
