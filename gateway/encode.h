/*
 * Encode + mux of one stream's output, on the encoder's own thread: H.264
 * (libx264) and Opus 48 kHz mono, PyTrickle's A/V sync rules (PROTOCOL.md
 * 4.3), MPEG-TS segments cut on keyframes, bytes handed out while each
 * segment is produced. Owns the input queue, the codec contexts, the
 * resampler and the per-segment muxer. Does not publish (the caller does).
 */
#ifndef CT_ENCODE_H
#define CT_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>
#include <libavutil/rational.h>

typedef struct encoder encoder;

struct encoder_cfg {
	const char *name;    /* stream id for log lines (copied) */
	int width, height;   /* output size; 0: the first video frame's */
	int64_t bitrate;     /* video bits/s; 0: x264's default (CRF 23) */
	const char *preset;  /* x264 preset; NULL: "superfast" */
	const char *tune;    /* x264 tune; NULL: "zerolatency" ("" for none) */
	double gop_secs;     /* forced IDR at least this often; 0: 2 s */
	double segment_secs; /* segment length, cut on keyframes; 0: 2 s */
	int threads;         /* x264 threads; 0: x264 picks */
	AVRational frame_rate; /* rate-control hint; 0/0: 30/1 */
	bool has_video;        /* the input has video: audio waits for it */
	bool has_audio;        /* an Opus stream is muxed */
	int queue_frames;      /* input queue bound (audio + video); 0: 64 */
};

/*
 * Callbacks, all on the encoder thread. bytes are borrowed for the call.
 * Each segment is: on_segment_begin(seq), on_segment_bytes(seq, ...) any
 * number of times, on_segment_end(seq); seq counts from 0. A negative
 * return from on_segment_bytes stops the encoder (reported by on_end).
 */
struct encoder_callbacks {
	void *opaque;
	void (*on_segment_begin)(void *opaque, uint64_t seq);
	int (*on_segment_bytes)(void *opaque, uint64_t seq, const uint8_t *buf,
	                        size_t len);
	void (*on_segment_end)(void *opaque, uint64_t seq);
	void (*on_error)(void *opaque, int err, const char *text);
	/* Thread done: 0 after encoder_end and a clean flush, AVERROR_EXIT
	   after encoder_close, else the error that stopped encoding (e.g.
	   first audio and video more than 2 s apart: AVERROR_INVALIDDATA). */
	void (*on_end)(void *opaque, int status);
};

struct encoder_stats {
	uint64_t video_in, audio_in;           /* accepted by push */
	uint64_t queue_drops;                  /* refused by push (-EAGAIN) */
	uint64_t video_encoded, audio_encoded; /* packets muxed */
	uint64_t late_video_drops;             /* > 2 s behind audio */
	uint64_t early_audio_drops;            /* before first video, dropped */
	uint64_t segments, bytes;
};

/* Creates the encoder and starts its thread. cfg/cb copied. 0 or -errno. */
int encoder_create(encoder **out, const struct encoder_cfg *cfg,
                   const struct encoder_callbacks *cb);

/*
 * Queues a new reference to frame (the caller keeps its own). Video in any
 * pixel format and size (converted to yuv420p at the output size when
 * needed); audio in any format, rate and layout (resampled to 48 kHz mono).
 * frame->time_base must be set (pts in it); pts must increase per kind and
 * lie within +-2^52 ticks of 1/90000 (else -EINVAL: never queued).
 * wait=false never blocks: -EAGAIN when the queue is full (the frame is not
 * queued; counted in queue_drops). wait=true blocks for room.
 * Returns 0, -EAGAIN, -EPIPE after encoder_end, -ECANCELED after close or
 * when the thread stopped. Any thread.
 */
int encoder_push_video(encoder *e, const AVFrame *frame, bool wait);
int encoder_push_audio(encoder *e, const AVFrame *frame, bool wait);

/* End of input: encodes what is queued, flushes, closes the last segment,
 * then on_end(0). Does not block. */
void encoder_end(encoder *e);

/* Aborts (queued frames dropped, the open segment ended); idempotent,
 * non-blocking. */
void encoder_close(encoder *e);

/* Waits for the thread to finish (after encoder_end or encoder_close). */
void encoder_stop(encoder *e);

/* Closes, stops, frees. NULL-safe; sets *e = NULL. Not from a callback. */
void encoder_destroy(encoder **e);

/* Copies the counters into *out (atomics: any thread, never blocks). */
void encoder_get_stats(encoder *e, struct encoder_stats *out);

#endif
