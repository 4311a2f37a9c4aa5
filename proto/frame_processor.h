/*
 * ctrickle FrameProcessor plugin ABI: the only header a plugin includes.
 *
 * A plugin is a shared library that exports one symbol, fp_plugin_entry(),
 * returning a const table of callbacks (struct fp_plugin). A ctrickle worker
 * process loads it with dlopen(RTLD_NOW|RTLD_LOCAL), checks the ABI, calls
 * init() once, then process_video() for every frame of the streams it serves.
 * The worker is a separate process: a plugin that crashes or hangs takes down
 * only its worker, which the gateway replaces while the stream goes on.
 *
 * Rules (the ABI promise):
 *  - No third-party types cross this boundary; params are JSON text.
 *  - Tables carry struct_size; members are only ever appended (bump
 *    FP_ABI_MINOR). The worker copies min(struct_size, its sizeof) into a
 *    zeroed table, so members an older plugin lacks read as NULL.
 *  - One thread makes every call, never concurrently. update_params runs
 *    between frames. Frame views are borrowed for one call: never keep their
 *    pointers.
 *  - Return FP_OK (0), FP_DROP (skip this frame), FP_PASS (forward the input
 *    unchanged), or a negative errno for an error.
 *
 * Build a plugin:  cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags ctrickle) my.c -o my.so
 */
#ifndef FRAME_PROCESSOR_H
#define FRAME_PROCESSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FP_ABI_MAJOR 1
#define FP_ABI_MINOR 0
#define FP_ABI_VERSION (((uint32_t)FP_ABI_MAJOR << 16) | FP_ABI_MINOR)

/* Return codes of the callbacks; < 0 is a negative errno (a plugin error). */
enum fp_status {
	FP_OK = 0,   /* out holds the result */
	FP_DROP = 1, /* no output for this frame */
	FP_PASS = 2, /* output = input, unchanged (the worker copies if needed) */
};

/* Pixel formats of video frames (packed RGB first; planar YUV after). */
enum fp_pixfmt {
	FP_FMT_RGB24 = 0,   /* 1 plane, 3 bytes per pixel, R G B */
	FP_FMT_RGBA = 1,    /* 1 plane, 4 bytes per pixel, R G B A */
	FP_FMT_NV12 = 2,    /* 2 planes: Y, then interleaved UV at half size */
	FP_FMT_YUV420P = 3, /* 3 planes: Y, U, V; U and V at half size */
	FP_FMT_COUNT
};

/* Where a frame's planes live. */
enum fp_mem {
	FP_MEM_HOST = 0, /* host memory (shared with the gateway) */
	FP_MEM_CUDA = 1, /* CUDA device memory of `device` */
};

/* Log levels of fp_host.log (same order as the worker's own). */
enum fp_log_level { FP_LOG_ERROR = 0, FP_LOG_WARN = 1, FP_LOG_INFO = 2, FP_LOG_DEBUG = 3 };

/*
 * A video frame view. For input it is read-only; for output the planes are
 * pre-allocated in the frame ring at the input's size and format, and the
 * plugin writes into them. A plugin may produce another size (not another
 * format) up to out->max_width x out->max_height: it sets out->width and
 * out->height and, if the planes at the input's strides do not suit it,
 * its own out->plane/out->stride inside the output slot; the worker reads
 * the planes where the plugin left them and moves them into the gateway's
 * layout, and the gateway validates the result.
 */
struct fp_video_frame {
	uint32_t struct_size;    /* sizeof(struct fp_video_frame) of the writer */
	uint32_t width, height;  /* pixels */
	uint32_t format;         /* enum fp_pixfmt */
	uint32_t mem;            /* enum fp_mem */
	int32_t device;          /* CUDA ordinal, -1 on the host */
	void *cuda_stream;       /* cudaStream_t to enqueue work on; NULL on host.
	                            The worker synchronizes it after the call. */
	uint8_t *plane[4];       /* plane base pointers (host or device) */
	uint32_t stride[4];      /* bytes per row of each plane */
	int64_t pts;             /* presentation time in tb_num/tb_den units */
	uint32_t tb_num, tb_den; /* time base of pts */
	uint32_t max_width;      /* output only: largest width the slot holds */
	uint32_t max_height;     /* output only: largest height the slot holds */
	uint64_t seq;            /* frame number within the stream */
};

/* Sample formats of audio frames (interleaved or planar, as libav names them). */
enum fp_samplefmt {
	FP_SAMPLE_S16 = 0,  /* interleaved int16 */
	FP_SAMPLE_FLT = 1,  /* interleaved float */
	FP_SAMPLE_FLTP = 2, /* planar float, one plane per channel */
	FP_SAMPLE_S16P = 3, /* planar int16 */
	FP_SAMPLE_COUNT
};

/*
 * An audio frame view (host memory always). Output: the worker gives a
 * buffer of out->capacity bytes in data[0] (planar formats: split evenly in
 * data[0..channels-1]); the plugin sets nb_samples, format, channels and
 * sample_rate of what it wrote. Keep pts unless you know better.
 */
struct fp_audio_frame {
	uint32_t struct_size;
	uint32_t sample_rate;
	uint32_t channels;
	uint32_t format;        /* enum fp_samplefmt */
	uint32_t nb_samples;    /* per channel */
	uint8_t *data[8];       /* one pointer, or one per channel when planar */
	uint32_t capacity;      /* output only: bytes available in total */
	int64_t pts;
	uint32_t tb_num, tb_den;
};

/* Services the worker offers a plugin; handed to init(), valid until fini(). */
struct fp_host {
	uint32_t struct_size;
	/* A log line in the worker's structured log. */
	void (*log)(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
	/* A monitoring event (JSON object text) for the stream's events channel.
	   Returns 0, or a negative errno (bad JSON, no stream, too large). */
	int (*emit_event)(const char *json, size_t len);
	/* One line (text, no newline) for the stream's data channel (JSONL). */
	int (*emit_data)(const char *line, size_t len);
};

/* What the plugin wants of its frames (part of struct fp_plugin). */
struct fp_wants {
	uint32_t video_format; /* enum fp_pixfmt; FP_FMT_RGB24 by default */
	uint32_t video_mem;    /* enum fp_mem; FP_MEM_HOST by default */
};

struct fp_plugin {
	uint32_t abi_version; /* FP_ABI_VERSION at build time */
	uint32_t struct_size; /* sizeof(struct fp_plugin) at build time */
	const char *name;     /* short name, e.g. "grayscale" */
	const char *version;  /* plugin version text */
	struct fp_wants wants;

	/* Required. Once per worker, before any stream, with --processor-config
	   (JSON text, "{}" when none). Sets *self to the plugin's instance.
	   Returns 0, or a negative errno (the worker exits and is not retried
	   in a tight loop). PyTrickle: load_model. */
	int (*init)(const struct fp_host *host, const char *config_json, void **self);

	/* Optional. Once, at worker shutdown; frees self. */
	void (*fini)(void *self);

	/* Required. One video frame: read `in`, write `out`. */
	int (*process_video)(void *self, const struct fp_video_frame *in,
	                     struct fp_video_frame *out);

	/* Optional. NULL: audio goes around the worker to the encoder unchanged.
	   Otherwise called for every audio frame of the stream. */
	int (*process_audio)(void *self, const struct fp_audio_frame *in,
	                     struct fp_audio_frame *out);

	/* Optional. New params (a JSON object as text), between frames. */
	int (*update_params)(void *self, const char *params_json, size_t len);

	/* Optional. A stream begins on this worker, with the start request's
	   params (a JSON object as text, "{}" when none). PyTrickle: on_stream_start. */
	int (*stream_start)(void *self, const char *params_json, size_t len);

	/* Optional. The stream ended (or moved away from this worker). */
	void (*stream_stop)(void *self);

	/* Append only below this line; bump FP_ABI_MINOR for each addition. */
};

/* The single exported symbol of a plugin. */
#define FP_ENTRY_SYMBOL "fp_plugin_entry"
typedef const struct fp_plugin *(*fp_entry_fn)(void);

#if defined(__GNUC__)
#define FP_EXPORT __attribute__((visibility("default")))
#else
#define FP_EXPORT
#endif

/*
 * Declares the entry point returning `table`, e.g.
 *   static const struct fp_plugin my = { FP_PLUGIN_HEADER("my", "1.0"), ... };
 *   FP_PLUGIN_DEFINE(my)
 */
#define FP_PLUGIN_HEADER(NAME, VERSION) \
	.abi_version = FP_ABI_VERSION, .struct_size = sizeof(struct fp_plugin), \
	.name = (NAME), .version = (VERSION)
#define FP_PLUGIN_DEFINE(table) \
	FP_EXPORT const struct fp_plugin *fp_plugin_entry(void); \
	FP_EXPORT const struct fp_plugin *fp_plugin_entry(void) { return &(table); }

/* Bytes per row of plane p of a host frame of this format and width (no padding). */
static inline uint32_t
fp_plane_row_bytes(uint32_t format, uint32_t width, int p)
{
	switch (format) {
	case FP_FMT_RGB24: return p == 0 ? width * 3 : 0;
	case FP_FMT_RGBA: return p == 0 ? width * 4 : 0;
	case FP_FMT_NV12: return p < 2 ? (p == 0 ? width : (width + 1) / 2 * 2) : 0;
	case FP_FMT_YUV420P: return p == 0 ? width : p < 3 ? (width + 1) / 2 : 0;
	default: return 0;
	}
}

/* Rows of plane p of a frame of this format and height. */
static inline uint32_t
fp_plane_rows(uint32_t format, uint32_t height, int p)
{
	switch (format) {
	case FP_FMT_RGB24:
	case FP_FMT_RGBA: return p == 0 ? height : 0;
	case FP_FMT_NV12: return p == 0 ? height : p == 1 ? (height + 1) / 2 : 0;
	case FP_FMT_YUV420P: return p == 0 ? height : p < 3 ? (height + 1) / 2 : 0;
	default: return 0;
	}
}

#ifdef __cplusplus
}
#endif
#endif
