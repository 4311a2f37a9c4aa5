/*
 * Demux + decode of one stream's input: trickle segment bytes (MPEG-TS, one
 * self-contained TS per segment) flow into ONE continuous mpegts demuxer
 * through a custom AVIOContext, on the decoder's own thread. Owns the byte
 * queue, the demuxer and the codec contexts; hands decoded AVFrames to
 * callbacks. Does not condition frames (convert.h) or encode (encode.h).
 */
#ifndef CT_DECODE_H
#define CT_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>
#include <libavutil/rational.h>

typedef struct decoder decoder;

struct decoder_cfg {
	const char *name;   /* stream id for log lines (copied); NULL: "-" */
	size_t queue_bytes; /* input queue bound; 0: 8 MiB */
	int threads;        /* decoder threads per codec; 0: 1 (more adds
	                       frame-threading delay: threads-1 frames) */
	int max_width;      /* frames above max_width x max_height are */
	int max_height;     /* refused; 0: 4096 x 2304 */
	int64_t probesize;  /* bytes; 0: 1 MiB (bounded for live input) */
	int64_t analyze_us; /* analyzeduration; 0: 1 s */
};

/* What the demuxer found; handed once, before the first frame. */
struct decoder_info {
	bool has_video, has_audio;
	int width, height; /* coded size seen at probe (may change) */
	enum AVPixelFormat pix_fmt;
	AVRational video_tb, audio_tb; /* stream time bases (1/90000 for TS) */
	AVRational frame_rate;         /* guessed; 0/1 when unknown */
	int sample_rate, channels;
	const char *video_codec,
	    *audio_codec; /* static names, "" when absent */
};

/*
 * Callbacks, all called on the decoder thread. Frames are BORROWED: valid
 * until the callback returns (av_frame_ref() or av_frame_clone() to keep).
 * frame->time_base is set to the stream's time base; frame->pts is never
 * AV_NOPTS_VALUE. A negative return from on_video/on_audio stops decoding
 * (reported through on_end). Any member may be NULL.
 */
struct decoder_callbacks {
	void *opaque;
	void (*on_info)(void *opaque, const struct decoder_info *info);
	int (*on_video)(void *opaque, AVFrame *frame);
	int (*on_audio)(void *opaque, AVFrame *frame);
	/* A problem that was skipped (bad packet, unsupported stream, frame
	   too large). err is an AVERROR; text is one readable line. */
	void (*on_error)(void *opaque, int err, const char *text);
	/* The thread is done: status 0 at end of input (decoder_end), an
	   AVERROR when decoding failed, AVERROR_EXIT after decoder_close. */
	void (*on_end)(void *opaque, int status);
};

/* Counters (a snapshot; any thread). */
struct decoder_stats {
	uint64_t bytes_in;
	uint64_t video_frames, audio_frames;
	uint64_t bad_packets;    /* packets the decoder refused */
	uint64_t skipped_frames; /* no pts, or above the size limit */
};

/*
 * Creates the decoder and starts its thread (which then blocks reading the
 * queue). cfg and cb are copied; cfg may be NULL for defaults.
 * Returns 0 or a negative errno.
 */
int decoder_create(decoder **out, const struct decoder_cfg *cfg,
                   const struct decoder_callbacks *cb);

/*
 * Copies len bytes of input (any split: segment boundaries need not be
 * marked). Thread-safe. wait=false never blocks: all or nothing, -EAGAIN when
 * the queue (cfg.queue_bytes) is full, so an event loop can pause its
 * transfer and retry; wait=true blocks until everything is queued
 * (back-pressure). A zero-length push is a no-op. Returns 0, -EAGAIN,
 * -E2BIG (len above the bound with wait=false), -EPIPE after decoder_end,
 * -ECANCELED after decoder_close.
 */
int decoder_push(decoder *d, const void *buf, size_t len, bool wait);

/* End of input: the decoder drains what is queued, flushes, calls on_end(0). */
void decoder_end(decoder *d);

/* Aborts without draining; idempotent; does not block. */
void decoder_close(decoder *d);

/* Waits for the thread to finish (after decoder_end or decoder_close). */
void decoder_stop(decoder *d);

/* Closes, stops and frees. NULL-safe; sets *d = NULL. Not from a callback. */
void decoder_destroy(decoder **d);

/* Copies the counters into *out (atomics: any thread, never blocks). */
void decoder_get_stats(decoder *d, struct decoder_stats *out);

/*
 * Routes libav's log lines to common/log at debug level (the per-segment
 * continuity and probe warnings are expected with trickle input).
 * Process-wide (libav's logger is); decoder_create calls it.
 */
void decoder_quiet_libav(void);

#endif
