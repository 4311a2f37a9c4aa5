/*
 * Frame conditioning between the decoder, the frame ring and the encoder, as
 * PyTrickle does it (PROTOCOL.md 4.2): max_framerate decimation by pts, and
 * cover-scale + center-crop into a caller's planes (a ring slot) in an
 * fp_pixfmt; and back, from a processed slot to an AVFrame for the encoder.
 * Owns cached swscale contexts and a pool of output buffers; one per stream.
 */
#ifndef CT_CONVERT_H
#define CT_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "frame_processor.h"

typedef struct convert convert;

#define CONVERT_FPS_DEFAULT 24
#define CONVERT_FPS_MIN 1
#define CONVERT_FPS_MAX 60

/* Creates a converter with max_framerate CONVERT_FPS_DEFAULT. 0 or -ENOMEM. */
int convert_create(convert **out);

/* NULL-safe; sets *c = NULL. */
void convert_destroy(convert **c);

/*
 * Sets max_framerate (1..60; else -EINVAL). Thread-safe (an atomic): the
 * control path may call it while the decoder thread runs. Takes effect at
 * the next frame.
 */
int convert_set_max_framerate(convert *c, int fps);
int convert_get_max_framerate(convert *c);

/*
 * The frame-rate limit: true when the frame at pts (in tb) is kept. With
 * t = pts in seconds, interval = 1/limit and next starting at 0: drop if
 * t < next; if t > next + interval, next = t + interval; else
 * next += interval. Call once per decoded video frame, in order; the decoder
 * thread only.
 */
bool convert_keep_frame(convert *c, int64_t pts, AVRational tb);

/* Frames dropped by convert_keep_frame so far. */
uint64_t convert_dropped(convert *c);

/* Bytes per row and plane sizes of fmt at w x h (tightly packed, the layout
 * convert writes when the caller has no better one). Returns total bytes,
 * 0 for a bad format/size. stride/size may be NULL. */
size_t convert_layout(enum fp_pixfmt fmt, int w, int h, int stride[4],
                      size_t size[4]);

/* True when src is already fmt at w x h: conversion is then a plain copy
 * (or no copy at all, when the caller can use src's planes directly). */
bool convert_is_identity(const AVFrame *src, enum fp_pixfmt fmt, int w, int h);

/*
 * Writes src (any libav pixel format, any size) into the planes of a w x h
 * frame in fmt: scale so that the frame covers w x h with its aspect kept
 * (bilinear), then center-crop; a plain plane copy when src is already that
 * format and size. plane/stride describe the destination (e.g. a ring slot),
 * as many planes as fmt has. Returns 0, -EINVAL (bad format/size), or an
 * AVERROR from swscale. No allocation once the scaler for this
 * (source format, size) is cached. One thread at a time.
 */
int convert_to_planes(convert *c, const AVFrame *src, enum fp_pixfmt fmt, int w,
                      int h, uint8_t *const plane[4], const int stride[4]);

/*
 * The reverse path: builds *out, a yuv420p AVFrame of w x h holding the
 * picture in plane/stride (fmt), pts and time_base copied from the
 * arguments. The pixel buffer comes from a pool (no allocation in steady
 * state); the caller owns *out (av_frame_free) and may hand it to the
 * encoder. Returns 0, -EINVAL, -ENOMEM, or an AVERROR from swscale.
 */
int convert_from_planes(convert *c, const uint8_t *const plane[4],
                        const int stride[4], enum fp_pixfmt fmt, int w, int h,
                        int64_t pts, AVRational tb, AVFrame **out);

/*
 * Zero-copy variant of convert_from_planes for a YUV420P slot: *out refers
 * to the caller's planes (no pixel copy). release(opaque, plane[0]) is
 * called once, on whatever thread drops the last reference (for the
 * encoder: its thread, after x264 has copied the picture); the planes must
 * stay valid and unchanged until then (the ring slot stays held).
 * Returns 0, -ENOTSUP for other formats (use convert_from_planes), -EINVAL,
 * -ENOMEM (release is not called on failure). Any thread.
 */
int convert_wrap_planes(uint8_t *const plane[4], const int stride[4],
                        enum fp_pixfmt fmt, int w, int h, int64_t pts,
                        AVRational tb,
                        void (*release)(void *opaque, uint8_t *data),
                        void *opaque, AVFrame **out);

/* The libav pixel format of an fp_pixfmt (AV_PIX_FMT_NONE if unknown). */
enum AVPixelFormat convert_av_pixfmt(enum fp_pixfmt fmt);

#endif
