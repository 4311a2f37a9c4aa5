/*
 * libFuzzer target over the input media path: bytes -> bytequeue -> mpegts
 * demuxer -> H.264/AAC/Opus decoders (gateway/decode.c) -> conditioning into
 * a small RGB24 slot (gateway/convert.c). Bounded work per input: small
 * probe, a 1280x720 frame limit, inputs capped by the runner (64 KiB).
 */
#include <stdint.h>
#include <stdlib.h>

#include "gateway/convert.h"
#include "gateway/decode.h"
#include "log.h"

struct fuzz_sink {
	convert *cv;
	uint8_t slot[64 * 64 * 3];
	unsigned frames;
};

static int
fuzz_video(void *o, AVFrame *f)
{
	struct fuzz_sink *s = o;
	uint8_t *pl[4] = {s->slot, NULL, NULL, NULL};
	int st[4] = {64 * 3, 0, 0, 0};

	if (++s->frames > 64)
		return -1; /* bounded work: stop decoding */
	convert_keep_frame(s->cv, f->pts, f->time_base);
	convert_to_planes(s->cv, f, FP_FMT_RGB24, 64, 64, pl, st);
	return 0;
}

static int
fuzz_audio(void *o, AVFrame *f)
{
	struct fuzz_sink *s = o;

	return ++s->frames > 256 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_sink s = {0};
	struct decoder_cfg cfg = {.name = "fuzz",
	                          .queue_bytes = 1 << 20,
	                          .max_width = 1280,
	                          .max_height = 720,
	                          .probesize = 32768,
	                          .analyze_us = 200000};
	struct decoder_callbacks cb = {
	    .opaque = &s, .on_video = fuzz_video, .on_audio = fuzz_audio};
	decoder *d = NULL;

	log_set_level(LOG_ERROR);
	if (convert_create(&s.cv) < 0)
		return 0;
	if (decoder_create(&d, &cfg, &cb) == 0) {
		/* two pushes: a segment boundary inside the input */
		decoder_push(d, data, size / 2, true);
		decoder_push(d, data + size / 2, size - size / 2, true);
		decoder_end(d);
		decoder_stop(d);
		decoder_destroy(&d);
	}
	convert_destroy(&s.cv);
	return 0;
}
