/*
 * One stream's frame path: decoded frame -> frame-rate limit -> ring slot
 * (decoder thread) -> FRAME to the stream's worker -> RESULT -> encoder
 * (loop thread), with at most STREAM_MAX_INFLIGHT frames at the worker and a
 * depth-1 drop-oldest queue in front of it. Also what happens when the worker
 * dies: in-flight frames are re-sent once to the next worker, and meanwhile
 * output follows --on-worker-loss. Lifecycle and events are streams.c's;
 * audio is stream_audio.c's; CUDA slot copies are stream_gpu.c's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/buffer.h>
#include <libavutil/error.h>
#include <libavutil/mathematics.h>

#include "clock.h"
#include "frame_processor.h"
#include "log.h"
#include "stream_int.h"

#define STREAM_RING_RESERVE_MIN 4 /* free slots below which results are copied */

/* The last reference to a wrapped slot went: give the slot back. The ref
   is read before the release, after which the slot may be wrapped again. */
static void
stream_slot_free(void *opaque, uint8_t *data)
{
	struct stream_slot_ref *ref = opaque;

	(void)data;
	ring_release(ref->r, ref->slot, ref->gen);
}

/*
 * Copies fr out of its ring slot (the slot is released) when free slots run
 * short: frames queued at the encoder would otherwise pin slots the decoder
 * needs ("ring" drops). While slots are plentiful, fr is returned as is.
 * On a failed copy fr is kept (zero-copy). Takes fr; returns the frame to use.
 */
static AVFrame *
stream_frame_detach(ring *r, AVFrame *fr)
{
	uint32_t reserve = ring_slot_count(r) / 3;
	AVFrame *c;

	if (reserve < STREAM_RING_RESERVE_MIN)
		reserve = STREAM_RING_RESERVE_MIN;
	if (ring_free_count(r) >= reserve)
		return fr;
	c = av_frame_alloc();
	if (!c)
		return fr;
	c->format = fr->format;
	c->width = fr->width;
	c->height = fr->height;
	if (av_frame_get_buffer(c, 0) < 0 || av_frame_copy(c, fr) < 0 ||
	    av_frame_copy_props(c, fr) < 0) {
		av_frame_free(&c);
		return fr;
	}
	c->time_base = fr->time_base;
	av_frame_free(&fr); /* releases the slot */
	return c;
}

/*
 * Wraps a held slot holding a frame of lay's geometry as an AVFrame (no
 * copy, unless free slots run short: see stream_frame_detach). The slot is
 * released when the last reference goes. On failure the slot is released
 * and NULL returned.
 */
static AVFrame *
stream_slot_frame(struct stream *s, uint32_t slot, uint32_t gen,
                  const struct ring_frame *lay, int64_t pts, AVRational tb)
{
	ring *r = s->ring;
	struct stream_slot_ref *ref;
	AVFrame *fr = NULL;
	uint8_t *base;
	uint64_t size;

	if (ring_slot_ptr(r, slot, gen, &base, &size) < 0)
		goto err_release;
	if (s->cuda) {
		/* Device memory: a pinned host copy, the slot goes back now. */
		fr = stream_gpu_download(s, base, lay);
		ring_release(r, slot, gen);
		if (fr) {
			fr->pts = pts;
			fr->time_base = tb;
		}
		return fr;
	}
	fr = av_frame_alloc();
	if (!fr)
		goto err_release;
	/* One ref per slot, owned by the manager: a held slot has one holder. */
	ref = streams_slot_ref(s->ss, r, slot);
	if (!ref)
		goto err_release;
	*ref = (struct stream_slot_ref){ r, slot, gen };
	fr->buf[0] = av_buffer_create(base, size, stream_slot_free, ref, 0);
	if (!fr->buf[0])
		goto err_release;
	fr->format = convert_av_pixfmt((enum fp_pixfmt)lay->format);
	fr->width = (int)lay->width;
	fr->height = (int)lay->height;
	for (uint32_t p = 0; p < lay->planes && p < 4; p++) {
		fr->data[p] = base + lay->offset[p];
		fr->linesize[p] = (int)lay->stride[p];
	}
	fr->pts = pts;
	fr->time_base = tb;
	return stream_frame_detach(r, fr);

err_release:
	av_frame_free(&fr);
	ring_release(r, slot, gen);
	return NULL;
}

/* Counts one dropped frame in the stream and in the live totals. */
static void
stream_count_drop(struct stream *s, _Atomic uint64_t *ctr, metrics_series *total)
{
	(void)s;
	atomic_fetch_add(ctr, 1);
	streams_count(total, 1);
}

/* Gives a frame's slots back (either may already be gone). */
void
stream_frame_release(struct stream *s, struct stream_frame *f)
{
	if (!f->used)
		return;
	ring_release(s->ring, f->in_slot, f->in_gen);
	if (f->out_gen)
		ring_release(s->ring, f->out_slot, f->out_gen);
	f->used = false;
}

/* ---- decoder thread ------------------------------------------------------ */

static void
stream_raise(struct stream *s, unsigned flag)
{
	pthread_mutex_lock(&s->lock);
	s->wake_flags |= flag;
	pthread_mutex_unlock(&s->lock);
	event_active(s->wake, EV_READ, 0);
}

static void stream_enc_begin(void *opaque, uint64_t seq);
static int stream_enc_bytes(void *opaque, uint64_t seq, const uint8_t *buf, size_t len);
static void stream_enc_end_seg(void *opaque, uint64_t seq);
static void stream_enc_error(void *opaque, int err, const char *text);
static void stream_enc_done(void *opaque, int status);

static void
stream_dec_info(void *opaque, const struct decoder_info *info)
{
	struct stream *s = opaque;
	struct encoder_callbacks cb = {
		.opaque = s,
		.on_segment_begin = stream_enc_begin,
		.on_segment_bytes = stream_enc_bytes,
		.on_segment_end = stream_enc_end_seg,
		.on_error = stream_enc_error,
		.on_end = stream_enc_done,
	};
	struct encoder_cfg ec = {
		.name = s->request_id,
		.has_video = info->has_video,
		.has_audio = info->has_audio,
		.frame_rate = info->frame_rate,
	};
	encoder *e = NULL;
	int rc;

	log_info("stream", "input probed stream=%s video=%s %dx%d audio=%s %d Hz",
	         s->request_id, info->has_video ? info->video_codec : "none",
	         info->width, info->height,
	         info->has_audio ? info->audio_codec : "none", info->sample_rate);
	if (!s->out)
		return;
	rc = encoder_create(&e, &ec, &cb);
	if (rc < 0) {
		log_error("stream", "cannot start the encoder stream=%s err=%s",
		          s->request_id, av_err2str(rc));
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->enc = e;
	s->has_audio = info->has_audio;
	pthread_mutex_unlock(&s->lock);
}

static int
stream_dec_video(void *opaque, AVFrame *frame)
{
	struct stream *s = opaque;
	ring *r = s->ring;
	struct stream_frame f = { .used = true };
	struct ring_frame lay;
	uint8_t *base, *plane[4] = { 0 };
	int stride[4] = { 0 };
	uint64_t size;
	int rc;

	atomic_fetch_add(&s->frames_decoded, 1);
	streams_count(s->ss->c_in, 1);
	if (!convert_keep_frame(s->conv, frame->pts, frame->time_base)) {
		atomic_fetch_add(&s->drop_rate, 1);
		streams_count(s->ss->c_drop_rate, 1);
		return 0;
	}
	f.width = atomic_load(&s->width);
	f.height = atomic_load(&s->height);
	f.format = atomic_load(&s->format);
	if (ring_acquire(r, &f.in_slot, &f.in_gen) < 0) {
		stream_count_drop(s, &s->drop_ring, s->ss->c_drop_ring);
		return 0;
	}
	if (ring_slot_ptr(r, f.in_slot, f.in_gen, &base, &size) < 0 ||
	    ring_frame_layout(f.format, f.width, f.height, size, &lay) < 0) {
		ring_release(r, f.in_slot, f.in_gen);
		stream_count_drop(s, &s->drop_ring, s->ss->c_drop_ring);
		return 0;
	}
	for (uint32_t p = 0; p < lay.planes && p < 4; p++) {
		plane[p] = base + lay.offset[p];
		stride[p] = (int)lay.stride[p];
	}
	if (s->cuda) /* never write a device slot through its pointer */
		rc = stream_gpu_upload(s, frame, base, &lay);
	else
		rc = convert_to_planes(s->conv, frame, (enum fp_pixfmt)f.format,
		                       (int)f.width, (int)f.height, plane, stride);
	if (rc < 0) {
		ring_release(r, f.in_slot, f.in_gen);
		stream_count_drop(s, &s->drop_ring, s->ss->c_drop_ring);
		return 0;
	}
	f.pts = frame->pts;
	f.tb = frame->time_base;
	f.t_in_ns = clock_now_ns();

	if (s->last_t_in_ns) {
		int64_t g = f.t_in_ns - s->last_t_in_ns, avg = atomic_load(&s->gap_ewma_ns);

		atomic_store(&s->gap_ewma_ns, avg ? avg + (g - avg) / 8 : g);
	}
	s->last_t_in_ns = f.t_in_ns;
	pthread_mutex_lock(&s->lock);
	if (s->pending.used) {
		/* drop-oldest: the worker is behind */
		ring_release(r, s->pending.in_slot, s->pending.in_gen);
		stream_count_drop(s, &s->drop_queue, s->ss->c_drop_queue);
	}
	s->pending = f;
	s->wake_flags |= STREAM_WAKE_FRAME;
	pthread_mutex_unlock(&s->lock);
	event_active(s->wake, EV_READ, 0);
	return 0;
}

/*
 * Audio goes to the worker when its plugin has process_audio (handed to the
 * loop thread through aq, drop-oldest), else straight to the encoder.
 */
static int
stream_dec_audio(void *opaque, AVFrame *frame)
{
	struct stream *s = opaque;
	AVFrame *c, *old = NULL;
	encoder *e;

	if (atomic_load(&s->audio_worker) && (c = av_frame_clone(frame))) {
		pthread_mutex_lock(&s->lock);
		if (s->aq_len == STREAM_AUDIO_QUEUE) {
			old = s->aq[s->aq_head];
			s->aq_head = (s->aq_head + 1) % STREAM_AUDIO_QUEUE;
			s->aq_len--;
		}
		s->aq[(s->aq_head + s->aq_len++) % STREAM_AUDIO_QUEUE] = c;
		s->wake_flags |= STREAM_WAKE_AUDIO;
		pthread_mutex_unlock(&s->lock);
		event_active(s->wake, EV_READ, 0);
		if (old) {
			av_frame_free(&old);
			atomic_fetch_add(&s->audio_drops, 1);
		}
		return 0;
	}
	pthread_mutex_lock(&s->lock);
	e = s->enc;
	pthread_mutex_unlock(&s->lock);
	if (e && encoder_push_audio(e, frame, false) < 0)
		atomic_fetch_add(&s->audio_drops, 1);
	return 0;
}

static void
stream_dec_error(void *opaque, int err, const char *text)
{
	struct stream *s = opaque;

	log_debug("stream", "input damaged, skipped stream=%s err=%d what=\"%s\"",
	          s->request_id, err, text);
}

static void
stream_dec_end(void *opaque, int status)
{
	struct stream *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->dec_status = status;
	pthread_mutex_unlock(&s->lock);
	stream_raise(s, STREAM_WAKE_DEC_END);
}

const struct decoder_callbacks stream_decoder_cbs_template = {
	.on_info = stream_dec_info,
	.on_video = stream_dec_video,
	.on_audio = stream_dec_audio,
	.on_error = stream_dec_error,
	.on_end = stream_dec_end,
};

/* ---- encoder thread ------------------------------------------------------ */

static void
stream_enc_begin(void *opaque, uint64_t seq)
{
	struct stream *s = opaque;

	(void)seq;
	trickle_pub_segment_begin(s->out);
}

static int
stream_enc_bytes(void *opaque, uint64_t seq, const uint8_t *buf, size_t len)
{
	struct stream *s = opaque;

	(void)seq;
	/* -ENOBUFS: this segment is dropped (counted by the publisher); go on. */
	trickle_pub_write(s->out, buf, len);
	return 0;
}

static void
stream_enc_end_seg(void *opaque, uint64_t seq)
{
	struct stream *s = opaque;

	(void)seq;
	trickle_pub_segment_end(s->out);
	atomic_fetch_add(&s->segments_out, 1);
	stream_raise(s, STREAM_WAKE_SEG);
}

static void
stream_enc_error(void *opaque, int err, const char *text)
{
	struct stream *s = opaque;

	log_warn("stream", "encoder problem stream=%s err=%d what=\"%s\"",
	         s->request_id, err, text);
}

static void
stream_enc_done(void *opaque, int status)
{
	struct stream *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->enc_status = status;
	pthread_mutex_unlock(&s->lock);
	stream_raise(s, STREAM_WAKE_ENC_END);
}

/* ---- loop thread ----------------------------------------------------------- */

encoder *
stream_encoder(struct stream *s)
{
	encoder *e;

	pthread_mutex_lock(&s->lock);
	e = s->enc;
	pthread_mutex_unlock(&s->lock);
	return e;
}

/* Hands a frame to the encoder (a new reference) and keeps it for hold. */
static void
stream_emit_frame(struct stream *s, AVFrame *fr, bool keep)
{
	encoder *e = stream_encoder(s);

	if (e && encoder_push_video(e, fr, false) < 0)
		stream_count_drop(s, &s->drop_queue, s->ss->c_drop_queue);
	if (keep && s->ss->cfg.cfg->on_worker_loss == CONFIG_LOSS_HOLD) {
		av_frame_free(&s->last_out);
		s->last_out = fr;
	} else {
		av_frame_free(&fr);
	}
}

/* What a frame becomes while no worker serves the stream (--on-worker-loss). */
static void
stream_loss_policy(struct stream *s, struct stream_frame *f)
{
	struct ring_frame lay;
	AVFrame *fr;

	s->loss_frames++;
	switch (s->ss->cfg.cfg->on_worker_loss) {
	case CONFIG_LOSS_HOLD:
		if (s->last_out && (fr = av_frame_clone(s->last_out))) {
			fr->pts = av_rescale_q(f->pts, f->tb, fr->time_base);
			stream_emit_frame(s, fr, false);
		}
		break;
	case CONFIG_LOSS_PASSTHROUGH:
		if (ring_frame_layout(f->format, f->width, f->height,
		                      ring_slot_bytes(s->ring), &lay) == 0 &&
		    (fr = stream_slot_frame(s, f->in_slot, f->in_gen, &lay, f->pts, f->tb))) {
			f->used = false; /* the AVFrame owns the slot now */
			stream_emit_frame(s, fr, false);
			return;
		}
		break;
	default:
		break;
	}
	ring_release(s->ring, f->in_slot, f->in_gen);
	f->used = false;
}

/* Sends f to the stream's worker; marks its slots as there. */
static int
stream_send_frame(struct stream *s, struct stream_frame *f, uint32_t flags)
{
	ring *r = s->ring;
	struct msg m = { .type = MSG_FRAME };
	int rc;

	if ((rc = ring_send(r, f->in_slot, f->in_gen, s->worker, s->worker_pid)) < 0 ||
	    (rc = ring_send(r, f->out_slot, f->out_gen, s->worker, s->worker_pid)) < 0)
		return rc;
	ring_sync(r, f->in_slot, RING_SYNC_TO_PEER);
	m.u.frame = (struct msg_frame){
		.stream = s->id, .seq = f->seq, .pts = f->pts,
		.tb_num = (uint32_t)f->tb.num, .tb_den = (uint32_t)f->tb.den,
		.width = f->width, .height = f->height, .format = f->format,
		.in_slot = f->in_slot, .in_gen = f->in_gen,
		.out_slot = f->out_slot, .out_gen = f->out_gen,
		.flags = flags, .t_ns = clock_now_ns(),
	};
	return supervisor_send(s->ss->cfg.sup, s->worker, &m);
}

/*
 * A free in-flight entry, within the stream's window: 2 frames pipeline the
 * IPC round trip while the worker is fast; once its time per frame passes
 * half the input interval, a second frame would only wait a whole processing
 * time inside the worker, so the window drops to 1 and the drop-oldest
 * pending frame bounds the queueing delay to one input interval.
 */
static struct stream_frame *
stream_free_fly(struct stream *s)
{
	struct stream_frame *free_one = NULL;
	int used = 0, window = STREAM_MAX_INFLIGHT;

	int64_t gap = atomic_load(&s->gap_ewma_ns);

	if (gap > 0 && 2 * s->proc_ewma_ns > gap)
		window = 1;
	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++) {
		if (s->fly[i].used)
			used++;
		else if (!free_one)
			free_one = &s->fly[i];
	}
	return used < window ? free_one : NULL;
}

/* Exponentially weighted moving average, weight 1/8. */
static void
stream_ewma(int64_t *avg, int64_t sample)
{
	*avg = *avg ? *avg + (sample - *avg) / 8 : sample;
}

static bool
stream_fly_empty(const struct stream *s)
{
	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++)
		if (s->fly[i].used)
			return false;
	return true;
}

/*
 * Moves the waiting frame to the worker while there is room, or through the
 * loss policy when no worker serves the stream. Ends the input side once the
 * decoder is done and nothing is left in flight.
 */
void
stream_pump(struct stream *s)
{
	ring *r = s->ring;
	struct stream_frame f, *slot;
	int rc;

	while (!s->ending) {
		slot = s->worker >= 0 ? stream_free_fly(s) : NULL;
		if (s->worker >= 0 && !slot)
			break;
		pthread_mutex_lock(&s->lock);
		f = s->pending;
		s->pending.used = false;
		pthread_mutex_unlock(&s->lock);
		if (!f.used)
			break;
		if (s->worker < 0) {
			stream_loss_policy(s, &f);
			continue;
		}
		if (ring_acquire(r, &f.out_slot, &f.out_gen) < 0) {
			ring_release(r, f.in_slot, f.in_gen);
			stream_count_drop(s, &s->drop_ring, s->ss->c_drop_ring);
			continue;
		}
		f.seq = ++s->seq;
		rc = stream_send_frame(s, &f, 0);
		if (rc < 0) {
			log_debug("stream", "frame not sent stream=%s seq=%llu err=%s",
			          s->request_id, (unsigned long long)f.seq, strerror(-rc));
			stream_frame_release(s, &f);
			stream_count_drop(s, &s->drop_queue, s->ss->c_drop_queue);
			continue;
		}
		*slot = f;
		s->frames_sent++;
	}
	/* The end waits for the frames and the audio still at the worker. */
	if (s->input_done && !s->ending && stream_fly_empty(s) &&
	    (s->worker < 0 || s->audio_inflight == 0)) {
		encoder *e = stream_encoder(s);

		pthread_mutex_lock(&s->lock);
		bool idle = !s->pending.used;
		pthread_mutex_unlock(&s->lock);
		if (idle) {
			if (e)
				encoder_end(e); /* ENC_END follows */
			else
				streams_end(s, "input ended", false);
		}
	}
}

static struct stream_frame *
stream_find_fly(struct stream *s, uint64_t seq)
{
	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++)
		if (s->fly[i].used && s->fly[i].seq == seq)
			return &s->fly[i];
	return NULL;
}

/* A worker answered a frame with a processed result. */
void
stream_on_result(struct stream *s, const struct msg_result *m)
{
	ring *r = s->ring;
	struct stream_frame *f = stream_find_fly(s, m->seq);
	uint32_t res_slot, res_gen, other_slot, other_gen;
	struct ring_frame lay;
	int64_t now = clock_now_ns();
	AVFrame *fr;
	int rc;

	if (!f) {
		log_debug("stream", "result for no frame in flight stream=%s seq=%llu",
		          s->request_id, (unsigned long long)m->seq);
		return;
	}
	if (m->out_slot == f->in_slot && m->out_gen == f->in_gen) {
		res_slot = f->in_slot, res_gen = f->in_gen;
		other_slot = f->out_slot, other_gen = f->out_gen;
	} else if (m->out_slot == f->out_slot && m->out_gen == f->out_gen) {
		res_slot = f->out_slot, res_gen = f->out_gen;
		other_slot = f->in_slot, other_gen = f->in_gen;
	} else {
		rc = -EINVAL;
		goto err_bad;
	}
	if ((rc = ring_complete(r, res_slot, res_gen, s->worker_pid)) < 0)
		goto err_bad;
	if (m->format != f->format ||
	    m->width > (uint32_t)s->ss->cfg.cfg->max_width ||
	    m->height > (uint32_t)s->ss->cfg.cfg->max_height ||
	    (rc = ring_frame_layout(m->format, m->width, m->height,
	                            ring_slot_bytes(r), &lay)) < 0) {
		rc = -EINVAL;
		goto err_bad;
	}
	ring_sync(r, res_slot, RING_SYNC_FROM_PEER);
	ring_release(r, other_slot, other_gen);
	f->used = false;
	fr = stream_slot_frame(s, res_slot, res_gen, &lay, f->pts, f->tb);
	if (fr)
		stream_emit_frame(s, fr, true);
	s->frames_out++;
	stream_ewma(&s->proc_ewma_ns, (int64_t)m->proc_us * 1000);
	streams_count(s->ss->c_out, 1);
	if (s->ss->c_latency)
		metrics_observe(s->ss->c_latency, (double)(now - f->t_in_ns) / 1e6);
	if (s->lost_ns) {
		json_t *x = json_pack("{s:i,s:I,s:I,s:s}", "worker", s->worker,
		                      "frames_lost", (json_int_t)s->lost_frames,
		                      "gap_ms", (json_int_t)((now - s->last_out_ns) / 1000000),
		                      "reason", s->end_reason[0] ? s->end_reason : "worker died");
		log_info("stream", "stream recovered on a new worker stream=%s worker=%d "
		         "gap_ms=%lld frames_lost=%u", s->request_id, s->worker,
		         (long long)((now - s->last_out_ns) / 1000000), s->lost_frames);
		streams_emit(s, "worker_restarted", "ai_stream_events", x);
		s->lost_ns = 0;
		s->lost_frames = 0;
		s->end_reason[0] = 0;
	}
	s->last_out_ns = now;
	stream_pump(s);
	return;

err_bad:
	log_warn("stream", "worker returned an invalid result, frame dropped stream=%s "
	         "worker=%d seq=%llu slot=%u gen=%u %ux%u fmt=%u err=%s", s->request_id,
	         s->worker, (unsigned long long)m->seq, m->out_slot, m->out_gen,
	         m->width, m->height, m->format, strerror(-rc));
	stream_frame_release(s, f);
	s->worker_drops++;
	streams_count(s->ss->c_drop_worker, 1);
	stream_pump(s);
}

/* A worker dropped a frame (FP_DROP, or a plugin error). */
void
stream_on_drop(struct stream *s, const struct msg_drop *m)
{
	struct stream_frame *f = stream_find_fly(s, m->seq);

	if (!f)
		return;
	stream_frame_release(s, f);
	s->worker_drops++;
	streams_count(s->ss->c_drop_worker, 1);
	stream_pump(s);
}

/*
 * The stream's worker died (its slots were reclaimed into FILLED with new
 * generations). Frames in flight are kept for one re-send; a frame that was
 * already re-sent is dropped and counted as lost.
 */
void
stream_worker_lost(struct stream *s, const struct supervisor_death *d)
{
	ring *r = s->ring;
	struct ring_slot_info si;

	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++) {
		struct stream_frame *f = &s->fly[i];

		if (!f->used)
			continue;
		if (ring_slot_info(r, f->in_slot, &si) == 0)
			f->in_gen = si.gen;
		if (ring_slot_info(r, f->out_slot, &si) == 0)
			f->out_gen = si.gen;
		if (f->resent) {
			stream_frame_release(s, f);
			s->frames_lost++;
			s->lost_frames++;
			streams_count(s->ss->c_lost, 1);
		}
	}
	s->audio_inflight = 0; /* audio at the dead worker is lost */
	/*
	 * A worker that died while an update was unanswered (hung or crashed
	 * in update_params) must not get its successor killed the same way:
	 * the next worker gets the last update a worker acknowledged.
	 */
	if (s->params_unacked && s->last_params) {
		log_warn("stream", "params not replayed: the worker died before "
		         "acknowledging them stream=%s params=%.80s", s->request_id,
		         s->last_params);
		free(s->last_params);
		s->last_params = s->acked_params ? strdup(s->acked_params) : NULL;
	}
	s->params_unacked = 0;
	if (!s->lost_ns)
		s->lost_ns = d->detected_ns;
	snprintf(s->end_reason, sizeof(s->end_reason), "%s", d->reason ? d->reason : "died");
	s->worker = -1;
	s->worker_pid = 0;
}

/*
 * Gives the stream to an idle worker: STREAM_START, the latest params, then
 * the frames that were in flight at the previous worker, once.
 */
int
stream_assign(struct stream *s, int worker)
{
	supervisor *sup = s->ss->cfg.sup;
	struct supervisor_worker_info wi;
	struct msg m = { .type = MSG_STREAM_START };
	int rc;

	if ((rc = supervisor_info(sup, worker, &wi)) < 0)
		return rc;
	if (wi.video_format < FP_FMT_COUNT)
		atomic_store(&s->format, wi.video_format);
	atomic_store(&s->audio_worker, (wi.caps & MSG_CAP_AUDIO) != 0);
	m.u.stream_start = (struct msg_stream_start){
		.stream = s->id,
		.request_id = msg_cstr(s->request_id),
		.params = msg_cstr(s->start_params),
		.width = atomic_load(&s->width),
		.height = atomic_load(&s->height),
	};
	if ((rc = supervisor_send(sup, worker, &m)) < 0)
		return rc;
	s->worker = worker;
	s->worker_pid = wi.pid;
	if (s->last_params) {
		m = (struct msg){ .type = MSG_PARAMS };
		m.u.params = (struct msg_params){ .stream = s->id,
		                                  .params = msg_cstr(s->last_params) };
		if (supervisor_send(sup, worker, &m) == 0)
			s->params_unacked++;
	}
	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++) {
		struct stream_frame *f = &s->fly[i];

		if (!f->used)
			continue;
		f->resent = true;
		if (f->format != atomic_load(&s->format) ||
		    stream_send_frame(s, f, MSG_FRAME_RESEND) < 0) {
			stream_frame_release(s, f);
			s->frames_lost++;
			s->lost_frames++;
			streams_count(s->ss->c_lost, 1);
			continue;
		}
		s->frames_resent++;
		streams_count(s->ss->c_resent, 1);
	}
	log_info("stream", "stream assigned stream=%s worker=%d pid=%d",
	         s->request_id, worker, (int)wi.pid);
	stream_pump(s);
	return 0;
}

/*
 * Gives up the frames kept for a re-send (counted as lost): the input is
 * over and no worker took the stream back in time, so the stream can end.
 */
void
stream_abandon_fly(struct stream *s)
{
	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++) {
		if (!s->fly[i].used)
			continue;
		stream_frame_release(s, &s->fly[i]);
		s->frames_lost++;
		s->lost_frames++;
		streams_count(s->ss->c_lost, 1);
	}
	log_warn("stream", "input ended while no worker served the stream; frames "
	         "kept for a re-send are lost stream=%s lost=%u", s->request_id,
	         s->lost_frames);
	stream_pump(s);
}

/* Releases every slot the stream holds (pending, in flight, hold frame). */
void
stream_release_frames(struct stream *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->pending.used)
		ring_release(s->ring, s->pending.in_slot, s->pending.in_gen);
	s->pending.used = false;
	while (s->aq_len) {
		av_frame_free(&s->aq[s->aq_head]);
		s->aq_head = (s->aq_head + 1) % STREAM_AUDIO_QUEUE;
		s->aq_len--;
	}
	pthread_mutex_unlock(&s->lock);
	stream_defer_fly(s);
	av_frame_free(&s->last_out);
}

/* Slots of frames still at a live worker when their stream ended. */
struct stream_deferred {
	struct stream_deferred *next; /* in streams.deferred */
	struct streams *ss;
	ring *r;
	struct event *ev;
	unsigned n;
	uint32_t slot[2 * STREAM_MAX_INFLIGHT], gen[2 * STREAM_MAX_INFLIGHT];
};

static void
stream_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream_deferred *d = arg;
	struct stream_deferred **pp = &d->ss->deferred;

	(void)fd;
	(void)what;
	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp)
		*pp = d->next;
	/* A stale generation (the worker died and was reclaimed) is a no-op. */
	for (unsigned i = 0; i < d->n; i++)
		ring_release(d->r, d->slot[i], d->gen[i]);
	event_free(d->ev);
	free(d);
}

/* Releases every deferred slot now (shutdown). */
void
stream_deferred_flush(struct streams *ss)
{
	while (ss->deferred)
		stream_deferred_cb(-1, 0, ss->deferred);
}

/*
 * Frames in flight when a stream ends may still be written by their worker
 * (it finishes the frame before it reads STREAM_STOP). Their slots are given
 * back only after the frame deadline, by when the worker has answered or
 * been killed as hung, so no other stream can get a slot that is still
 * being written. Falls back to releasing at once when out of memory.
 */
void
stream_defer_fly(struct stream *s)
{
	struct stream_deferred *d = calloc(1, sizeof(*d));
	struct timeval tv;
	int ms = s->ss->cfg.cfg->frame_deadline_ms + 250;

	if (d) {
		d->ss = s->ss;
		d->r = s->ring;
		d->ev = evtimer_new(s->ss->cfg.base, stream_deferred_cb, d);
	}
	for (int i = 0; i < STREAM_MAX_INFLIGHT; i++) {
		struct stream_frame *f = &s->fly[i];

		if (!f->used)
			continue;
		if (!d || !d->ev) {
			stream_frame_release(s, f);
			continue;
		}
		d->slot[d->n] = f->in_slot;
		d->gen[d->n++] = f->in_gen;
		if (f->out_gen) {
			d->slot[d->n] = f->out_slot;
			d->gen[d->n++] = f->out_gen;
		}
		f->used = false;
	}
	if (d && d->ev && d->n > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(d->ev, &tv);
		d->next = s->ss->deferred;
		s->ss->deferred = d;
		return;
	}
	if (d && d->ev)
		event_free(d->ev);
	free(d);
}
