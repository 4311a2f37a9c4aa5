/*
 * Private to the stream layer (streams.c: the manager, lifecycle, API backend
 * and events; stream.c: one stream's frame path). Not included elsewhere.
 * Owns the definitions of struct streams and struct stream.
 */
#ifndef CT_STREAM_INT_H
#define CT_STREAM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <libavutil/buffer.h>
#include <libavutil/frame.h>

#include "config.h"
#include "convert.h"
#include "curlev.h"
#include "decode.h"
#include "encode.h"
#include "gpuplan.h"
#include "metrics.h"
#include "params.h"
#include "ring.h"
#include "streams.h"
#include "supervisor.h"
#include "trickle_chan.h"
#include "trickle_pub.h"
#include "trickle_sub.h"

#define STREAM_MAX_INFLIGHT 2  /* frames of a stream at its worker at once */
#define STREAM_DEATH_WINDOW 64 /* remembered worker deaths per stream
                                  (--crash-budget N above this never ends it) */
#define STREAM_AUDIO_QUEUE  32 /* audio frames between decoder and loop */

/* A ring slot referenced by AVFrames on their way to the encoder. */
struct stream_slot_ref {
	ring *r;
	uint32_t slot, gen;
};

/*
 * CUDA resources of a stream whose ring is a CUDA ring (stream_gpu.c): the
 * decoder thread converts into pinned staging and uploads on its own CUDA
 * stream; the loop thread downloads results into pinned pool buffers on
 * another. Created with the stream, freed after its decoder thread ended.
 */
struct stream_cuda {
	int device;              /* CUDA ordinal in the gateway */
	uint64_t slot_bytes;     /* staging and pool buffer size */
	void *up_stream;         /* decoder thread: H2D copies */
	void *up_staging;        /* decoder thread: pinned, slot_bytes */
	void *down_stream;       /* loop thread: D2H copies */
	AVBufferPool *down_pool; /* loop thread: pinned, slot_bytes each */
	bool up_failed, down_failed; /* logged once */
};

/* One frame between decode and encode; names its ring slots. */
struct stream_frame {
	bool used;
	bool resent;       /* already re-sent once after a worker death */
	uint32_t in_slot, in_gen;
	uint32_t out_slot, out_gen;
	uint32_t width, height, format;
	uint64_t seq;
	int64_t pts;
	AVRational tb;
	int64_t t_in_ns;   /* when the decoder handed it over */
};

/* Flags the decoder/encoder threads raise for the loop thread. */
#define STREAM_WAKE_FRAME   0x1u /* a pending frame is waiting */
#define STREAM_WAKE_DEC_END 0x2u /* the decoder thread finished */
#define STREAM_WAKE_ENC_END 0x4u /* the encoder thread finished */
#define STREAM_WAKE_SEG     0x8u /* an output segment was produced */
#define STREAM_WAKE_AUDIO   0x10u /* audio frames wait for the worker */

struct stream {
	struct streams *ss;
	struct stream *next;      /* in ss->list while running */
	uint32_t id;              /* wire id sent to workers */
	char *request_id;         /* gateway_request_id */
	char *url_in, *url_out, *url_ctl, *url_ev, *url_data;
	char *start_params;       /* JSON object text for stream_start */
	char *last_params;        /* latest update (JSON), NULL: none */
	char *acked_params;       /* last update a worker acknowledged, NULL: none */
	unsigned params_unacked;  /* PARAMS sent to the current worker, not acked */

	/* target of conditioning, read by the decoder thread */
	_Atomic uint32_t width, height;
	_Atomic uint32_t format;  /* enum fp_pixfmt the worker wants */

	/* where its frames live, for its whole life: the ring of its GPU */
	ring *ring;
	int group;                /* gpuplan group (GPU index, 0: host plan) */
	int gpu;                  /* CUDA ordinal of its workers, -1: host */
	struct stream_cuda *cuda; /* NULL unless ring is a CUDA ring */

	/* worker assignment (loop thread) */
	int worker;               /* -1: none */
	pid_t worker_pid;
	_Atomic bool audio_worker; /* its plugin has process_audio */
	uint64_t audio_seq;        /* AUDIO messages sent */
	uint64_t audio_back;       /* AUDIO_OUT frames passed to the encoder */
	unsigned audio_inflight;   /* AUDIO sent to the worker, not answered */
	int64_t audio_sent_us;     /* pts (µs) of the last AUDIO sent; INT64_MIN: none */
	bool audio_pts_warned;     /* "pts off the timeline" logged once */
	int64_t lost_ns;          /* when the worker was lost, 0: not lost */
	unsigned lost_frames;     /* frames lost with that worker */
	int64_t death_ns[STREAM_DEATH_WINDOW];
	unsigned ndeaths;

	/* I/O objects (loop thread, except as noted) */
	trickle_sub *in;
	trickle_chan_ctl *ctl;
	trickle_pub *out;          /* written from the encoder thread */
	trickle_chan_pub *ev, *data;
	decoder *dec;
	convert *conv;             /* decoder thread */
	encoder *enc;              /* created on the decoder thread (on_info) */
	bool has_audio;

	/* frame path */
	pthread_mutex_t lock;      /* pending, wake_flags, enc */
	struct stream_frame pending;
	AVFrame *aq[STREAM_AUDIO_QUEUE]; /* audio for the worker, oldest first */
	unsigned aq_head, aq_len;
	unsigned wake_flags;
	int dec_status, enc_status;
	struct event *wake;
	struct event *tick;
	struct stream_frame fly[STREAM_MAX_INFLIGHT];
	AVFrame *last_out;         /* for --on-worker-loss hold */
	uint64_t seq;
	bool input_done;           /* decoder finished */
	int64_t input_done_ns;

	/* counters */
	_Atomic uint64_t frames_decoded, drop_rate, drop_queue, drop_ring;
	_Atomic uint64_t audio_drops; /* audio frames dropped (queue, worker) */
	_Atomic uint64_t segments_out;
	uint64_t frames_sent, frames_out, frames_resent, frames_lost;
	int64_t proc_ewma_ns;      /* worker's time per frame (RESULT proc_us) */
	_Atomic int64_t gap_ewma_ns; /* time between frames entering the ring
	                                (decoder thread writes, loop reads) */
	int64_t last_t_in_ns;      /* decoder thread */
	uint64_t worker_drops, loss_frames;
	uint64_t fps_prev_in, fps_prev_out;
	double fps_in, fps_out;
	int64_t fps_t_ns;
	int64_t started_ns, last_out_ns, last_seg_ns;
	int64_t first_in_ns;       /* first tick that saw a decoded frame */
	unsigned ticks;
	bool first_in_event, first_out_event;

	/* teardown */
	bool ending;
	bool out_done, ev_done, data_done; /* their on_end came */
	unsigned end_refs;         /* async closes still running, + 1 until
	                              the wake event drops unref_pending */
	bool unref_pending;
	char end_reason[128];
};

struct streams {
	struct streams_config cfg;
	struct stream *list;       /* running */
	struct stream *dying;      /* ended, output channels still closing */
	struct stream_deferred *deferred; /* slots waiting out the frame deadline */
	struct streams_refs *refs; /* per ring: one ref per slot (wrapped slots) */
	int nrefs;
	uint32_t next_id;
	unsigned nrunning;
	unsigned nending;          /* ended, being torn down */
	bool draining;
	bool any_ready;            /* a worker reached READY once */
	metrics_family *m_frames, *m_drops, *m_latency, *m_restarts, *m_ring;
	metrics_family *m_streams;
	/* live totals over all streams (counters, no stream label) */
	metrics_family *m_total, *m_dropped;
	metrics_series *c_in, *c_out, *c_resent, *c_lost;
	metrics_series *c_drop_rate, *c_drop_queue, *c_drop_ring, *c_drop_worker;
	metrics_series *c_latency;
};

/* The slot refs of one ring (every ring of the plan, host and CUDA). */
struct streams_refs {
	ring *r;
	struct stream_slot_ref *ref; /* ring_slot_count(r) entries */
};

/* Adds n to a live total; s may be NULL (no metrics). Any thread. */
static inline void
streams_count(metrics_series *s, uint64_t n)
{
	if (s)
		metrics_counter_add(s, n);
}

/* ---- stream.c: the frame path ------------------------------------------- */

/* Starts decoding/encoding objects' callbacks; see stream.c. */
extern const struct decoder_callbacks stream_decoder_cbs_template;
void stream_wake_cb(evutil_socket_t fd, short what, void *arg);
void stream_pump(struct stream *s);
void stream_on_result(struct stream *s, const struct msg_result *m);
void stream_on_drop(struct stream *s, const struct msg_drop *m);
void stream_pump_audio(struct stream *s);
void stream_on_audio_out(struct stream *s, const struct msg_audio_out *m);
void stream_worker_lost(struct stream *s, const struct supervisor_death *d);
int stream_assign(struct stream *s, int worker);
void stream_release_frames(struct stream *s);
void stream_defer_fly(struct stream *s);
void stream_deferred_flush(struct streams *ss);
void stream_abandon_fly(struct stream *s);
void stream_frame_release(struct stream *s, struct stream_frame *f);

/* ---- stream_audio.c: audio through the worker (loop thread) ------------- */

encoder *stream_encoder(struct stream *s);

/* ---- stream_gpu.c: frames into and out of CUDA slots ---------------------- */

/* Sets s->cuda when s->ring is a CUDA ring (nothing of CUDA is called yet).
   Returns 0 or -ENOMEM. Loop thread, at start. */
int stream_gpu_open(struct stream *s, bool cuda, int device);
/* Frees the CUDA streams and staging; pool buffers still queued at the
   encoder go when their last reference does. After the decoder thread
   ended. NULL-safe on s->cuda. */
void stream_gpu_close(struct stream *s);
/* Decoder thread: converts frame into pinned staging, uploads it into the
   device slot at slot_base laid out as *lay, and waits for the copy.
   Returns 0 or -errno (the frame is then dropped). */
int stream_gpu_upload(struct stream *s, AVFrame *frame, uint8_t *slot_base,
                      const struct ring_frame *lay);
/* Loop thread: downloads the device slot at slot_base (laid out as *lay)
   into a pinned pool buffer and waits; returns a new AVFrame, or NULL. */
AVFrame *stream_gpu_download(struct stream *s, const uint8_t *slot_base,
                             const struct ring_frame *lay);

/* ---- streams.c: lifecycle and events, used by stream.c -------------------- */

/* The ref of `slot` in ring r (streams_create made one table per ring). */
struct stream_slot_ref *streams_slot_ref(streams *ss, ring *r, uint32_t slot);


/* Sends one event {"event":{type,timestamp,...extra},"queue_event_type":q}.
   extra (may be NULL) is stolen. */
void streams_emit(struct stream *s, const char *type, const char *queue,
                  json_t *extra);
/* The running stream with this wire id / served by this worker, or NULL. */
struct stream *streams_find_id(streams *ss, uint32_t id);
struct stream *streams_of_worker(streams *ss, int worker);
/* streams_sup.c: where a new stream goes: *group and an idle worker of it.
   Returns the worker, or -EBUSY (no idle worker anywhere). */
int streams_place(streams *ss, int *group);
/* The running stream with this gateway_request_id, or NULL. */
struct stream *streams_find(streams *ss, const char *request_id);
/* API backend ops that change streams (streams.c; the table: streams_api.c). */
int streams_op_start(void *ctx, const struct params_start *req, char *msg, size_t cap);
int streams_op_update(void *ctx, const char *stream_id, const struct params_values *v,
                      char *msg, size_t cap);
int streams_op_stop(void *ctx, const char *stream_id, char *msg, size_t cap);

/* Ends the stream: events, teardown. error: reported as an error event. */
void streams_end(struct stream *s, const char *reason, bool error);

#endif
