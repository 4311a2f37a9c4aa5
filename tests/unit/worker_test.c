/*
 * Tests of build/worker as a black box, the conversation: the test plays the
 * gateway (worker_util.h) and holds HELLO/READY, frames through grayscale,
 * PING, PARAMS, audio, bad descriptors, a changed output size, events and
 * data, and 512x512 timings. Exit codes and faults: worker_fault_test.c.
 */
#include "worker_util.h"

static void
test_grayscale_conversation(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	int64_t t0, total = 0;
	uint64_t proc = 0;
	enum { N = 20 };

	gw_setup(&g);
	gw_start(&g, "grayscale", "{}");
	gw_stream_start(&g, 5, "{\"prompt\":\"x\"}");
	for (uint64_t seq = 0; seq < N; seq++) {
		gw_frame_prepare(&g, &f, 5, seq);
		t0 = clock_now_ns();
		m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
		total += clock_now_ns() - t0;
		proc += m.u.result.proc_us;
		CHECK_EQ(m.u.result.status, FP_OK);
		CHECK_EQ(m.u.result.out_slot, f.out);
		CHECK_EQ(m.u.result.out_gen, f.out_gen);
		CHECK_EQ(m.u.result.width, GW_W);
		CHECK_EQ(m.u.result.height, GW_H);
		CHECK_EQ(m.u.result.format, FP_FMT_RGB24);
		CHECK_OK(ring_complete(g.ring, f.out, f.out_gen, g.pid));
		ring_sync(g.ring, f.out, RING_SYNC_FROM_PEER);
		gw_check_gray(&g, &f);
		gw_frame_release(&g, &f);
	}
	printf("    %d frames %ux%u: round trip avg %.1f us, plugin avg %.1f us\n", N,
	       GW_W, GW_H, (double)total / N / 1e3, (double)proc / N);
	/* PING -> PONG with the frame count. */
	m = (struct msg){ .type = MSG_PING };
	m.u.ping.nonce = 0xfeed;
	m.u.ping.t_ns = 1234;
	gw_send(&g, &m);
	gw_expect(&g, MSG_PONG, &m);
	CHECK_EQ(m.u.pong.nonce, 0xfeed);
	CHECK_EQ(m.u.pong.t_ns, 1234);
	CHECK_EQ(m.u.pong.frames, N);
	/* PARAMS turn the filter off: FP_PASS names the input slot as the result. */
	gw_params(&g, 5, "{\"enabled\":false}");
	gw_expect(&g, MSG_PARAMS_ACK, &m);
	CHECK_EQ(m.u.params_ack.stream, 5);
	CHECK_EQ(m.u.params_ack.status, 0);
	gw_frame_prepare(&g, &f, 5, N);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_PASS);
	CHECK_EQ(m.u.result.out_slot, f.in);
	CHECK_EQ(m.u.result.out_gen, f.in_gen);
	CHECK_OK(ring_complete(g.ring, m.u.result.out_slot, m.u.result.out_gen, g.pid));
	gw_frame_release(&g, &f);
	/* Params that are not a JSON object are refused without reaching the plugin. */
	gw_params(&g, 5, "[1,2");
	gw_expect(&g, MSG_PARAMS_ACK, &m);
	CHECK_EQ(m.u.params_ack.status, -EINVAL);
	/* A plugin without process_audio: AUDIO comes back unchanged. */
	{
		int16_t pcm[2 * 16];

		for (int i = 0; i < 32; i++)
			pcm[i] = (int16_t)(i * 77);
		m = (struct msg){ .type = MSG_AUDIO };
		m.u.audio = (struct msg_audio){ .stream = 5, .seq = 1, .pts = 10, .tb_num = 1,
			.tb_den = 48000, .sample_rate = 48000, .channels = 2,
			.format = FP_SAMPLE_S16, .nb_samples = 16 };
		m.u.audio.data.ptr = (const uint8_t *)pcm;
		m.u.audio.data.len = sizeof(pcm);
		gw_send(&g, &m);
		gw_expect(&g, MSG_AUDIO_OUT, &m);
		CHECK_EQ(m.u.audio_out.nb_samples, 16);
		CHECK_EQ(m.u.audio_out.data.len, sizeof(pcm));
		CHECK(memcmp(m.u.audio_out.data.ptr, pcm, sizeof(pcm)) == 0);
	}
	m = (struct msg){ .type = MSG_STREAM_STOP };
	m.u.stream_stop.stream = 5;
	gw_send(&g, &m);
	gw_shutdown(&g);
	CHECK_EQ(g.errors, 0);
	gw_teardown(&g);
}

static void
test_bad_descriptors_refused(void)
{
	struct gw g;
	struct gw_frame f, old;
	struct msg m;
	static const uint8_t junk[] = { 0x93, 0x01, 0x05, 0xff, 0x00 };

	gw_setup(&g);
	gw_start(&g, "grayscale", NULL);
	/* A frame before STREAM_START. */
	gw_frame_prepare(&g, &f, 9, 0);
	m = gw_frame_roundtrip(&g, &f, MSG_DROP);
	CHECK_EQ(m.u.drop.reason, -ENOTCONN);
	gw_frame_release(&g, &f);
	gw_stream_start(&g, 9, "");
	/* Good frames until a slot comes back with a newer generation. The worker
	   then saw old.in at old.in_gen: any older generation is stale. (Whether
	   a generation is the current one is the gateway's check, on RESULT.) */
	for (int i = 0; i < 32; i++) {
		gw_frame_prepare(&g, &old, 9, 1 + (uint64_t)i);
		m = gw_frame_roundtrip(&g, &old, MSG_RESULT);
		CHECK_EQ(m.u.result.status, FP_OK);
		gw_frame_release(&g, &old);
		if (old.in_gen > 1)
			break;
	}
	CHECK(old.in_gen > 1);
	struct { const char *what; int reason; } cases[] = {
		{ "slot out of range", -ERANGE }, { "out slot out of range", -ERANGE },
		{ "generation 0", -ESTALE }, { "stale generation", -ESTALE },
		{ "absurd size", -EINVAL }, { "larger than a slot", -E2BIG },
		{ "zero size", -EINVAL }, { "wrong format", -EINVAL },
		{ "unknown format", -EINVAL }, { "other stream", -ENOTCONN },
		{ "zero time base", -EINVAL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct msg_frame *d;

		gw_frame_prepare(&g, &f, 9, 100 + i);
		d = &f.m.u.frame;
		switch (i) {
		case 0: d->in_slot = 1000; break;
		case 1: d->out_slot = UINT32_MAX; break;
		case 2: d->in_gen = 0; break;
		case 3: d->in_slot = old.in; d->in_gen = old.in_gen - 1; break;
		case 4: d->width = 100000; d->height = 100000; break;
		case 5: d->width = 4000; d->height = 4000; break;
		case 6: d->width = 0; break;
		case 7: d->format = FP_FMT_RGBA; break;
		case 8: d->format = 77; break;
		case 9: d->stream = 10; break;
		case 10: d->tb_den = 0; break;
		}
		m = gw_frame_roundtrip(&g, &f, MSG_DROP);
		CHECK_MSG(m.u.drop.reason == cases[i].reason, "%s: reason %d, expected %d",
		          cases[i].what, m.u.drop.reason, cases[i].reason);
		gw_frame_release(&g, &f);
	}
	/* Bytes that are no message: an ERROR, and the worker keeps serving. */
	CHECK_OK(ipc_send_timeout(g.sock, junk, sizeof(junk), 5000));
	m = (struct msg){ .type = MSG_PING };
	m.u.ping.nonce = 7;
	gw_send(&g, &m);
	gw_expect(&g, MSG_PONG, &m);
	CHECK_EQ(g.errors, 1);
	CHECK_EQ(g.last_error, -EPROTO);
	/* A worker-to-gateway type sent to the worker: ERROR too. */
	m = (struct msg){ .type = MSG_READY };
	gw_send(&g, &m);
	m = (struct msg){ .type = MSG_PING };
	gw_send(&g, &m);
	gw_expect(&g, MSG_PONG, &m);
	CHECK_EQ(g.errors, 2);
	/* Still serving frames correctly. */
	gw_frame_prepare(&g, &f, 9, 500);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_OK);
	gw_check_gray(&g, &f);
	gw_frame_release(&g, &f);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_out_size_change_repacked(void)
{
	struct gw g;
	struct gw_frame f;
	struct ring_frame lay;
	struct msg m;
	uint8_t *in, *out;
	uint64_t size;

	gw_setup(&g);
	/* 40x30 out of a 64x48 input: rows written at the input's stride, moved
	   by the worker into the canonical 40x30 layout. */
	gw_start(&g, "fixture_slow", "{\"out_width\":40,\"out_height\":30}");
	gw_stream_start(&g, 1, "{}");
	gw_frame_prepare(&g, &f, 1, 0);
	CHECK_OK(ring_slot_ptr(g.ring, f.out, f.out_gen, &out, &size));
	CHECK_OK(ring_slot_ptr(g.ring, f.in, f.in_gen, &in, &size));
	/* What the plugin "wrote": the input copied into the output slot. */
	memcpy(out, in, f.lay.bytes);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_OK);
	CHECK_EQ(m.u.result.width, 40);
	CHECK_EQ(m.u.result.height, 30);
	CHECK_OK(ring_frame_layout(FP_FMT_RGB24, 40, 30, size, &lay));
	for (uint32_t y = 0; y < 30; y++)
		CHECK(memcmp(out + lay.offset[0] + (size_t)y * lay.stride[0],
		             in + f.lay.offset[0] + (size_t)y * f.lay.stride[0], 40 * 3) == 0);
	gw_frame_release(&g, &f);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static void
test_events_data_audio(void)
{
	struct gw g;
	struct gw_frame f;
	struct msg m;
	float pcm[2 * 64];

	gw_setup(&g);
	gw_start(&g, "fixture_slow", "{\"emit\":true,\"ms_per_frame\":20}");
	gw_stream_start(&g, 3, "{}");
	gw_frame_prepare(&g, &f, 3, 42);
	m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
	CHECK_EQ(m.u.result.status, FP_PASS);
	CHECK(m.u.result.proc_us >= 20000); /* it slept 20 ms inside the call */
	printf("    slow fixture proc_us=%u\n", m.u.result.proc_us);
	CHECK_EQ(g.events, 2); /* stream start + the frame */
	CHECK_STR(g.last_event, "{\"type\":\"fixture_frame\",\"seq\":42}");
	CHECK_EQ(g.data, 1);
	CHECK_STR(g.last_data, "frame 42");
	gw_frame_release(&g, &f);
	/* Planar float audio through process_audio (a copy). */
	for (int i = 0; i < 128; i++)
		pcm[i] = (float)i / 128.0f;
	m = (struct msg){ .type = MSG_AUDIO };
	m.u.audio = (struct msg_audio){ .stream = 3, .seq = 9, .pts = 480, .tb_num = 1,
		.tb_den = 48000, .sample_rate = 48000, .channels = 2,
		.format = FP_SAMPLE_FLTP, .nb_samples = 64 };
	m.u.audio.data.ptr = (const uint8_t *)pcm;
	m.u.audio.data.len = sizeof(pcm);
	gw_send(&g, &m);
	gw_expect(&g, MSG_AUDIO_OUT, &m);
	CHECK_EQ(m.u.audio_out.seq, 9);
	CHECK_EQ(m.u.audio_out.pts, 480);
	CHECK_EQ(m.u.audio_out.channels, 2);
	CHECK_EQ(m.u.audio_out.format, FP_SAMPLE_FLTP);
	CHECK_EQ(m.u.audio_out.nb_samples, 64);
	CHECK_EQ(m.u.audio_out.data.len, sizeof(pcm));
	CHECK(memcmp(m.u.audio_out.data.ptr, pcm, sizeof(pcm)) == 0);
	/* A size that does not match the samples: ERROR, no AUDIO_OUT. */
	m = (struct msg){ .type = MSG_AUDIO };
	m.u.audio = (struct msg_audio){ .stream = 3, .seq = 10, .tb_num = 1, .tb_den = 48000,
		.sample_rate = 48000, .channels = 2, .format = FP_SAMPLE_FLTP, .nb_samples = 65 };
	m.u.audio.data.ptr = (const uint8_t *)pcm;
	m.u.audio.data.len = sizeof(pcm);
	gw_send(&g, &m);
	gw_expect(&g, MSG_ERROR, &m);
	CHECK_EQ(m.u.error.code, -EINVAL);
	gw_shutdown(&g);
	gw_teardown(&g);
}

static int
gw_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Round trips of 512x512 RGB24 frames: printed, never asserted. */
static void
test_timing_512(void)
{
	static const char *const plugins[] = { "passthrough", "grayscale", "grayscale" };
	enum { N = 200 };
	static int64_t rt[N], pu[N];

	for (size_t k = 0; k < 3; k++) {
		if (k == 2)
			setenv("CT_WORKER_FENCE", "1", 1); /* the slot fence's cost */
		struct gw g;
		struct gw_frame f;
		struct msg m;

		gw_setup_size(&g, 512, 512, 512, 512);
		gw_start(&g, plugins[k], NULL);
		gw_stream_start(&g, 1, "{}");
		for (int i = 0; i < N; i++) {
			int64_t t0;

			gw_frame_prepare(&g, &f, 1, (uint64_t)i);
			t0 = clock_now_ns();
			m = gw_frame_roundtrip(&g, &f, MSG_RESULT);
			rt[i] = clock_now_ns() - t0;
			pu[i] = m.u.result.proc_us;
			gw_frame_release(&g, &f);
		}
		qsort(rt, N, sizeof(rt[0]), gw_cmp_i64);
		qsort(pu, N, sizeof(pu[0]), gw_cmp_i64);
		printf("    %s%s 512x512 RGB24, %d frames: round trip p50 %.0f us p99 %.0f us; "
		       "in worker p50 %lld us p99 %lld us\n", plugins[k],
		       k == 2 ? " (fence on)" : "", N, rt[N / 2] / 1e3,
		       rt[N * 99 / 100] / 1e3, (long long)pu[N / 2], (long long)pu[N * 99 / 100]);
		gw_shutdown(&g);
		gw_teardown(&g);
	}
}

static const struct th_case cases[] = {
	TH_CASE(test_grayscale_conversation),
	TH_CASE(test_bad_descriptors_refused),
	TH_CASE(test_out_size_change_repacked),
	TH_CASE(test_events_data_audio),
	TH_CASE(test_timing_512),
	TH_END
};

TH_MAIN(cases)
