/*
 * The stream manager: starts, updates, stops and ends streams; wires each
 * stream's trickle channels, decoder and encoder; emits PyTrickle's events;
 * answers the API backend ops and the supervisor's callbacks. The frame path
 * itself is stream.c. Loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libavutil/error.h>

#include "clock.h"
#include "frame_processor.h"
#include "log.h"
#include "stream_int.h"

#define STREAMS_TICK_MS      1000
#define STREAMS_HEARTBEAT_S  10
#define STREAMS_ORPHAN_MS    2000 /* input over, no worker: give up re-sends */

static void streams_free(struct stream *s);

/* ---- events ------------------------------------------------------------------ */

void
streams_emit(struct stream *s, const char *type, const char *queue, json_t *extra)
{
	json_t *ev = extra ? extra : json_object();
	json_t *root;
	char *text;

	if (!ev)
		return;
	json_object_set_new(ev, "type", json_string(type));
	json_object_set_new(ev, "timestamp", json_integer(clock_wall_ms()));
	root = json_pack("{s:o,s:s}", "event", ev, "queue_event_type", queue);
	if (!root)
		return;
	log_debug("stream", "event stream=%s type=%s", s->request_id, type);
	if (s->ev && (text = json_dumps(root, JSON_COMPACT))) {
		trickle_chan_pub_send(s->ev, text, strlen(text));
		free(text);
	}
	json_decref(root);
}

static void
streams_heartbeat(struct stream *s)
{
	json_t *x = json_pack(
		"{s:{s:s?,s:s?,s:s?,s:s?,s:s?},s:{s:i,s:i},s:{s:f,s:f,s:f,s:f}}",
		"urls", "subscribe", s->url_in, "publish", s->url_out,
		"control", s->url_ctl, "events", s->url_ev, "data", s->url_data,
		"dimensions", "width", (int)atomic_load(&s->width),
		"height", (int)atomic_load(&s->height),
		"fps", "ingress_video_fps", s->fps_in, "ingress_audio_fps", 0.0,
		"egress_video_fps", s->fps_out, "egress_audio_fps", 0.0);

	/* Beyond PyTrickle's fields: what happened to the frames so far. */
	if (x)
		json_object_set_new(x, "frames", json_pack(
			"{s:I,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:I,s:I}",
			"in", (json_int_t)atomic_load(&s->frames_decoded),
			"out", (json_int_t)s->frames_out,
			"dropped", (json_int_t)(atomic_load(&s->drop_rate) +
			                        atomic_load(&s->drop_queue) +
			                        atomic_load(&s->drop_ring) + s->worker_drops),
			"dropped_by_cause",
			"rate_limit", (json_int_t)atomic_load(&s->drop_rate),
			"queue", (json_int_t)atomic_load(&s->drop_queue),
			"ring", (json_int_t)atomic_load(&s->drop_ring),
			"worker", (json_int_t)s->worker_drops,
			"resent", (json_int_t)s->frames_resent,
			"lost", (json_int_t)s->frames_lost));
	if (x)
		streams_emit(s, "heartbeat", "stream_heartbeat", x);
}

/* ---- lookups ------------------------------------------------------------------ */

struct stream *
streams_find(streams *ss, const char *request_id)
{
	for (struct stream *s = ss->list; s; s = s->next)
		if (!s->ending && strcmp(s->request_id, request_id) == 0)
			return s;
	return NULL;
}

struct stream *
streams_find_id(streams *ss, uint32_t id)
{
	for (struct stream *s = ss->list; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

struct stream *
streams_of_worker(streams *ss, int worker)
{
	for (struct stream *s = ss->list; s; s = s->next)
		if (!s->ending && s->worker == worker)
			return s;
	return NULL;
}

/* ---- teardown ---------------------------------------------------------------- */

/* Removes the per-stream series of an ended stream from /metrics. */
static void
streams_forget_metrics(struct stream *s)
{
	static const char *const kinds[] = { "in", "out", "resent", "lost" };
	static const char *const causes[] = { "rate_limit", "queue", "ring", "worker" };
	const char *lv[2] = { s->request_id, NULL };

	for (size_t i = 0; i < 4 && s->ss->m_frames; i++) {
		lv[1] = kinds[i];
		metrics_series_remove(s->ss->m_frames, lv);
	}
	for (size_t i = 0; i < 4 && s->ss->m_drops; i++) {
		lv[1] = causes[i];
		metrics_series_remove(s->ss->m_drops, lv);
	}
}

static void
streams_unlink_from(struct stream **pp, struct stream *s)
{
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	s->next = NULL;
}

static void
streams_unlink(struct stream *s)
{
	streams_unlink_from(&s->ss->list, s);
}

static void
streams_unref(struct stream *s)
{
	if (s->end_refs > 0)
		s->end_refs--;
	if (s->end_refs == 0) {
		s->ss->nending--;
		streams_free(s);
	}
}

/*
 * An output channel ended: during teardown that is one close done; while the
 * stream runs it means the peer went away (404, closed), which ends it. The
 * object itself is freed with the stream (the encoder thread may still hold
 * it until streams_end joins that thread).
 */
static void
streams_chan_end(struct stream *s, bool *done, const char *what,
                 enum trickle_end reason)
{
	char why[96];

	if (*done)
		return;
	*done = true;
	if (s->ending) {
		streams_unref(s);
		return;
	}
	snprintf(why, sizeof(why), "%s channel ended: %s", what, trickle_sub_end_str(reason));
	streams_end(s, why, !trickle_sub_end_clean(reason));
}

static void
streams_pub_end(void *arg, enum trickle_end reason, const char *text)
{
	struct stream *s = arg;

	(void)text;
	streams_chan_end(s, &s->out_done, "output", reason);
}

static void
streams_ev_end(void *arg, enum trickle_end reason, const char *text)
{
	struct stream *s = arg;

	(void)text;
	streams_chan_end(s, &s->ev_done, "events", reason);
}

static void
streams_data_end(void *arg, enum trickle_end reason, const char *text)
{
	struct stream *s = arg;

	(void)text;
	streams_chan_end(s, &s->data_done, "data", reason);
}

/*
 * Ends a stream: it stops counting as running at once (capacity, /health);
 * the input side and the worker are let go now; the output channels are
 * closed cleanly (queued bytes sent, channel DELETEd) and the stream freed
 * when they are done.
 */
void
streams_end(struct stream *s, const char *reason, bool error)
{
	streams *ss = s->ss;
	encoder *e;

	if (s->ending)
		return;
	s->ending = true;
	snprintf(s->end_reason, sizeof(s->end_reason), "%s", reason);
	if (error) {
		log_warn("stream", "stream ended with an error stream=%s reason=\"%s\"",
		         s->request_id, reason);
		streams_emit(s, "error", "ai_stream_events",
		             json_pack("{s:s}", "message", reason));
	} else {
		log_info("stream", "stream ended stream=%s reason=\"%s\" frames_out=%llu "
		         "dropped=%llu", s->request_id, reason,
		         (unsigned long long)s->frames_out,
		         (unsigned long long)(atomic_load(&s->drop_rate) +
		                              atomic_load(&s->drop_queue) +
		                              atomic_load(&s->drop_ring)));
	}
	streams_emit(s, "stream_stopped", "ai_stream_events", NULL);
	log_info("stream", "stream totals stream=%s frames_in=%llu frames_out=%llu "
	         "drop_rate_limit=%llu drop_queue=%llu drop_ring=%llu drop_worker=%llu "
	         "resent=%llu lost=%llu segments_out=%llu audio_to_worker=%llu "
	         "audio_from_worker=%llu audio_dropped=%llu", s->request_id,
	         (unsigned long long)atomic_load(&s->frames_decoded),
	         (unsigned long long)s->frames_out,
	         (unsigned long long)atomic_load(&s->drop_rate),
	         (unsigned long long)atomic_load(&s->drop_queue),
	         (unsigned long long)atomic_load(&s->drop_ring),
	         (unsigned long long)s->worker_drops,
	         (unsigned long long)s->frames_resent, (unsigned long long)s->frames_lost,
	         (unsigned long long)atomic_load(&s->segments_out),
	         (unsigned long long)s->audio_seq, (unsigned long long)s->audio_back,
	         (unsigned long long)atomic_load(&s->audio_drops));
	streams_forget_metrics(s);
	ss->nrunning--;
	ss->nending++;

	trickle_sub_destroy(&s->in);
	trickle_chan_ctl_destroy(&s->ctl);
	decoder_destroy(&s->dec); /* joins the decoder thread */
	if (s->worker >= 0) {
		struct msg m = { .type = MSG_STREAM_STOP };

		m.u.stream_stop.stream = s->id;
		supervisor_send(ss->cfg.sup, s->worker, &m);
		s->worker = -1;
	}
	stream_release_frames(s);
	pthread_mutex_lock(&s->lock);
	e = s->enc;
	s->enc = NULL;
	pthread_mutex_unlock(&s->lock);
	if (e) {
		encoder_end(e);
		encoder_destroy(&e); /* flushes the last segment, joins */
	}
	if (s->tick)
		event_del(s->tick);

	streams_unlink(s);
	s->next = ss->dying;
	ss->dying = s;
	s->end_refs = 1;
	if (s->out && !s->out_done) {
		s->end_refs++;
		trickle_pub_close(s->out);
	}
	if (s->ev && !s->ev_done) {
		s->end_refs++;
		trickle_chan_pub_close(s->ev);
	}
	if (s->data && !s->data_done) {
		s->end_refs++;
		trickle_chan_pub_close(s->data);
	}
	/* The last reference is dropped from the wake event, not here: the
	   caller (a callback of this stream) may still read s after we return. */
	s->unref_pending = true;
	event_active(s->wake, EV_READ, 0);
}

static void
streams_free(struct stream *s)
{
	if (s->ending)
		streams_unlink_from(&s->ss->dying, s);
	if (s->out) {
		struct trickle_pub_stats st;

		trickle_pub_get_stats(s->out, &st);
		log_info("stream", "output totals stream=%s segments=%llu bytes=%llu "
		         "dropped_queue=%llu failed=%llu retries=%llu "
		         "drain_dropped=%llu drain_dropped_bytes=%llu",
		         s->request_id, (unsigned long long)st.segments,
		         (unsigned long long)st.bytes_out,
		         (unsigned long long)st.dropped_queue,
		         (unsigned long long)st.failed, (unsigned long long)st.retries,
		         (unsigned long long)st.drain_dropped,
		         (unsigned long long)st.drain_dropped_bytes);
	}
	trickle_pub_destroy(&s->out);
	trickle_chan_pub_destroy(&s->ev);
	trickle_chan_pub_destroy(&s->data);
	convert_destroy(&s->conv);
	stream_gpu_close(s); /* the decoder thread is gone */
	if (s->wake)
		event_free(s->wake);
	if (s->tick)
		event_free(s->tick);
	pthread_mutex_destroy(&s->lock);
	free(s->request_id);
	free(s->url_in);
	free(s->url_out);
	free(s->url_ctl);
	free(s->url_ev);
	free(s->url_data);
	free(s->start_params);
	free(s->last_params);
	free(s->acked_params);
	free(s);
}

/* ---- per-stream events from other threads and timers --------------------------- */

void
stream_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	unsigned flags;
	int dec_status, enc_status;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&s->lock);
	flags = s->wake_flags;
	s->wake_flags = 0;
	dec_status = s->dec_status;
	enc_status = s->enc_status;
	pthread_mutex_unlock(&s->lock);
	if (s->ending) {
		if (s->unref_pending) {
			s->unref_pending = false;
			streams_unref(s); /* may free s */
		}
		return;
	}
	if (flags & STREAM_WAKE_SEG) {
		s->last_seg_ns = clock_now_ns();
		if (!s->first_out_event) {
			s->first_out_event = true;
			streams_emit(s, "send_first_processed_segment", "ai_stream_events", NULL);
		}
	}
	if (flags & STREAM_WAKE_DEC_END) {
		s->input_done = true;
		s->input_done_ns = clock_now_ns();
		if (dec_status < 0 && dec_status != AVERROR_EXIT)
			log_warn("stream", "input decoding stopped stream=%s err=%s",
			         s->request_id, av_err2str(dec_status));
	}
	if (flags & (STREAM_WAKE_AUDIO | STREAM_WAKE_DEC_END))
		stream_pump_audio(s);
	if (flags & (STREAM_WAKE_FRAME | STREAM_WAKE_DEC_END))
		stream_pump(s);
	if ((flags & STREAM_WAKE_ENC_END) && !s->ending) {
		if (enc_status < 0 && enc_status != AVERROR_EXIT && !s->input_done) {
			char why[96];

			snprintf(why, sizeof(why), "encoder stopped: %s", av_err2str(enc_status));
			streams_end(s, why, true);
		} else {
			streams_end(s, "input ended", false);
		}
	}
}

static void
streams_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	const struct config *cfg = s->ss->cfg.cfg;
	int64_t now = clock_now_ns();
	uint64_t in = atomic_load(&s->frames_decoded);

	(void)fd;
	(void)what;
	if (s->ending)
		return;
	if (s->fps_t_ns && now > s->fps_t_ns) {
		double dt = (double)(now - s->fps_t_ns) / 1e9;

		s->fps_in = (double)(in - s->fps_prev_in) / dt;
		s->fps_out = (double)(s->frames_out - s->fps_prev_out) / dt;
	}
	s->fps_t_ns = now;
	s->fps_prev_in = in;
	s->fps_prev_out = s->frames_out;
	if (++s->ticks % STREAMS_HEARTBEAT_S == 0)
		streams_heartbeat(s);
	/* The input is over but the frames kept for a re-send wait for a worker
	   that does not come back (restart backoff, or a failing plugin). */
	if (s->input_done && s->worker < 0 && s->lost_ns &&
	    now - s->lost_ns > (int64_t)STREAMS_ORPHAN_MS * 1000000LL) {
		stream_abandon_fly(s);
		if (s->ending)
			return;
	}
	/* Audio the worker never answered (it sends ERROR, not AUDIO_OUT, for
	   a stream it does not serve): the end of the stream stops waiting. */
	if (s->input_done && s->audio_inflight &&
	    now - s->input_done_ns > (int64_t)STREAMS_ORPHAN_MS * 1000000LL) {
		log_warn("stream", "audio not answered by the worker, given up "
		         "stream=%s frames=%u", s->request_id, s->audio_inflight);
		s->audio_inflight = 0;
		stream_pump(s);
		if (s->ending)
			return;
	}
	/* Output stall: frames come in, but no output segment for too long
	   (counted from the last segment, else from the first decoded frame,
	   so a worker that never answers is caught too). */
	if (in > 0 && !s->first_in_ns)
		s->first_in_ns = now;
	if (s->out && s->first_in_ns && cfg->output_stall_s > 0 &&
	    now - (s->last_seg_ns ? s->last_seg_ns : s->first_in_ns) >
	            (int64_t)cfg->output_stall_s * 1000000000LL &&
	    s->fps_in > 0)
		streams_end(s, "output stalled", true);
}

/* ---- trickle callbacks --------------------------------------------------------- */

static void
streams_in_start(void *arg, int64_t seq)
{
	struct stream *s = arg;

	(void)seq;
	if (!s->first_in_event) {
		s->first_in_event = true;
		streams_emit(s, "receive_first_ingest_segment", "ai_stream_events", NULL);
	}
}

static void
streams_in_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	struct stream *s = arg;

	(void)seq;
	if (s->dec && decoder_push(s->dec, buf, len, false) < 0)
		log_debug("stream", "input queue full, bytes dropped stream=%s len=%zu",
		          s->request_id, len);
}

static void
streams_in_end(void *arg, enum trickle_end reason, const char *text)
{
	struct stream *s = arg;

	log_info("stream", "input ended stream=%s reason=%s detail=\"%s\"",
	         s->request_id, trickle_sub_end_str(reason), text ? text : "");
	trickle_sub_destroy(&s->in);
	if (!trickle_sub_end_clean(reason) && reason != TRICKLE_END_SILENCE) {
		char why[160];

		snprintf(why, sizeof(why), "input failed: %s", trickle_sub_end_str(reason));
		streams_end(s, why, true);
		return;
	}
	if (s->dec)
		decoder_end(s->dec); /* drain; the stream ends after the last frame */
	else
		streams_end(s, "input ended", false);
}

static int streams_apply_params(struct stream *s, const struct params_values *v,
                                char *msg, size_t cap);

static void
streams_ctl_message(void *arg, const char *json, size_t len)
{
	struct stream *s = arg;
	struct params_values v = { 0 };
	char err[PARAMS_ERR_LEN];

	if (params_parse_update(json, len, &v, err, sizeof(err)) < 0) {
		log_warn("stream", "control message ignored stream=%s why=\"%s\"",
		         s->request_id, err);
		return;
	}
	streams_apply_params(s, &v, err, sizeof(err));
	params_values_clear(&v);
}

static void
streams_ctl_end(void *arg, enum trickle_end reason, const char *text)
{
	struct stream *s = arg;

	(void)text;
	trickle_chan_ctl_destroy(&s->ctl);
	if (reason == TRICKLE_END_NOT_FOUND)
		streams_end(s, "control channel not found", false);
}

static void
streams_ev_error(void *arg, const char *err, uint64_t failures)
{
	struct stream *s = arg;

	log_warn("stream", "event not delivered stream=%s failures=%llu err=\"%s\"",
	         s->request_id, (unsigned long long)failures, err);
}

static void
streams_pub_done(void *arg, int64_t seq, bool ok, int status, const char *err)
{
	struct stream *s = arg;

	if (!ok)
		log_warn("stream", "output segment failed stream=%s seq=%lld status=%d err=\"%s\"",
		         s->request_id, (long long)seq, status, err ? err : "");
}

/* ---- start / params / stop ------------------------------------------------------ */

static char *
streams_dup(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static int
streams_apply_params(struct stream *s, const struct params_values *v,
                     char *msg, size_t cap)
{
	char *json;

	if (v->has_max_framerate)
		convert_set_max_framerate(s->conv, (int)v->max_framerate);
	if (v->has_size) {
		atomic_store(&s->width, v->width);
		atomic_store(&s->height, v->height);
	}
	json = strdup(v->json ? v->json : "{}");
	if (!json) {
		snprintf(msg, cap, "out of memory");
		return -ENOMEM;
	}
	free(s->last_params);
	s->last_params = json;
	if (s->worker >= 0) {
		struct msg m = { .type = MSG_PARAMS };

		m.u.params = (struct msg_params){ .stream = s->id,
		                                  .params = msg_cstr(json) };
		if (supervisor_send(s->ss->cfg.sup, s->worker, &m) == 0)
			s->params_unacked++;
	}
	return 0;
}

static int
streams_open_io(struct stream *s)
{
	streams *ss = s->ss;
	const struct config *cfg = ss->cfg.cfg;
	struct trickle_sub_opts so;
	struct trickle_pub_opts po;
	struct decoder_callbacks dcb = stream_decoder_cbs_template;
	struct decoder_cfg dc = {
		.name = s->request_id,
		.max_width = 4096, .max_height = 4096,
	};
	int rc;

	trickle_sub_opts_default(&so);
	so.silence_timeout_ms = cfg->input_silence_s * 1000;
	/*
	 * A live input that cannot be reached (refused, reset) is retried
	 * until --input-silence ends it, not after a count of tries: with the
	 * defaults (5 tries, 0.3 s doubling) a 2 s outage got its next try at
	 * 4.5 s, past a 4 s silence budget. First retry after 100 ms, then
	 * doubling to --subscribe-max-backoff-ms (5 s).
	 */
	so.retry_delay_ms = 100;
	so.max_retries = 1 + (cfg->input_silence_s * 1000) / 100;
	so.tls_verify = ss->cfg.tls_verify;
	so.name = s->request_id;
	so.max_backoff_ms = cfg->subscribe_max_backoff_ms;
	trickle_pub_opts_default(&po);
	po.tls_verify = ss->cfg.tls_verify;
	po.name = s->request_id;
	po.drain_timeout_ms = cfg->publish_drain_ms;

	if (s->url_ev) {
		struct trickle_chan_pub_cbs cb = { streams_ev_error, streams_ev_end };

		if ((rc = trickle_chan_pub_create(&s->ev, ss->cfg.cv, TRICKLE_CHAN_EVENTS,
		                                  s->url_ev, &po, NULL, &cb, s)) < 0)
			return rc;
	}
	if (s->url_data) {
		struct trickle_chan_pub_cbs cb = { streams_ev_error, streams_data_end };

		if ((rc = trickle_chan_pub_create(&s->data, ss->cfg.cv, TRICKLE_CHAN_DATA,
		                                  s->url_data, &po, NULL, &cb, s)) < 0)
			return rc;
	}
	if (s->url_out) {
		struct trickle_pub_cbs cb = { streams_pub_done, streams_pub_end };

		if ((rc = trickle_pub_create(&s->out, ss->cfg.cv, s->url_out, &po, &cb, s)) < 0)
			return rc;
	}
	if (s->url_in) {
		struct trickle_sub_cbs cb = {
			.on_segment_start = streams_in_start,
			.on_data = streams_in_data,
			.on_end = streams_in_end,
		};

		dcb.opaque = s;
		if ((rc = decoder_create(&s->dec, &dc, &dcb)) < 0)
			return rc;
		if ((rc = trickle_sub_create(&s->in, ss->cfg.cv, s->url_in, &so, &cb, s)) < 0)
			return rc;
	}
	if (s->url_ctl) {
		struct trickle_chan_ctl_cbs cb = { streams_ctl_message, streams_ctl_end };

		if ((rc = trickle_chan_ctl_create(&s->ctl, ss->cfg.cv, s->url_ctl, NULL, 0,
		                                  &cb, s)) < 0)
			return rc;
	}
	return 0;
}

int
streams_op_start(void *ctx, const struct params_start *req, char *msg, size_t cap)
{
	streams *ss = ctx;
	const struct config *cfg = ss->cfg.cfg;
	struct stream *s, *old;
	struct timeval tv = { 0, STREAMS_TICK_MS * 1000 };
	int worker, group = 0, rc;

	if (ss->draining) {
		snprintf(msg, cap, "the server is shutting down");
		return -EAGAIN;
	}
	if (!ss->any_ready) {
		snprintf(msg, cap, "Pipeline is still initializing. Please wait for IDLE status.");
		return -EAGAIN;
	}
	if ((old = streams_find(ss, req->request_id)))
		streams_end(old, "replaced by a new start", false);
	if ((int)ss->nrunning >= supervisor_capacity(ss->cfg.sup) ||
	    (worker = streams_place(ss, &group)) < 0) {
		snprintf(msg, cap, "Pipeline is still in use: no free worker (capacity %d)",
		         supervisor_capacity(ss->cfg.sup));
		return -EBUSY;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ss = ss;
	s->id = ++ss->next_id;
	s->worker = -1;
	s->audio_sent_us = INT64_MIN;
	s->group = group;
	s->gpu = gpuplan_group_gpu(ss->cfg.plan, group);
	s->ring = gpuplan_ring(ss->cfg.plan, group);
	pthread_mutex_init(&s->lock, NULL);
	s->request_id = strdup(req->request_id);
	s->url_in = streams_dup(req->subscribe_url);
	s->url_out = streams_dup(req->publish_url);
	s->url_ctl = streams_dup(req->control_url);
	s->url_ev = streams_dup(req->events_url);
	s->url_data = streams_dup(req->data_url);
	s->start_params = strdup(req->params.json ? req->params.json : "{}");
	atomic_store(&s->width, req->params.has_size ? req->params.width : 512);
	atomic_store(&s->height, req->params.has_size ? req->params.height : 512);
	if (atomic_load(&s->width) > (uint32_t)cfg->max_width ||
	    atomic_load(&s->height) > (uint32_t)cfg->max_height) {
		log_info("stream", "requested size above --max-resolution, scaled down "
		         "stream=%s", s->request_id);
		atomic_store(&s->width, (uint32_t)cfg->max_width);
		atomic_store(&s->height, (uint32_t)cfg->max_height);
	}
	atomic_store(&s->format, FP_FMT_RGB24);
	s->started_ns = clock_now_ns();
	s->wake = event_new(ss->cfg.base, -1, 0, stream_wake_cb, s);
	s->tick = event_new(ss->cfg.base, -1, EV_PERSIST, streams_tick_cb, s);
	rc = convert_create(&s->conv);
	if (rc == 0)
		rc = stream_gpu_open(s, gpuplan_is_cuda(ss->cfg.plan, group), s->gpu);
	if (!s->request_id || !s->start_params || !s->wake || !s->tick || rc < 0) {
		rc = -ENOMEM;
		goto err_free;
	}
	if (req->params.has_max_framerate)
		convert_set_max_framerate(s->conv, (int)req->params.max_framerate);
	s->next = ss->list;
	ss->list = s;
	ss->nrunning++;
	if ((rc = stream_assign(s, worker)) < 0) {
		snprintf(msg, cap, "could not start the stream on worker %d: %s",
		         worker, strerror(-rc));
		streams_end(s, "start failed", true);
		return rc;
	}
	if ((rc = streams_open_io(s)) < 0) {
		snprintf(msg, cap, "could not open the stream's channels: %s", strerror(-rc));
		streams_end(s, "start failed", true);
		return rc == -EBUSY || rc == -EAGAIN ? -EIO : rc;
	}
	event_add(s->tick, &tv);
	log_info("stream", "stream started stream=%s id=%u in=%s out=%s worker=%d gpu=%d "
	         "ring=%s", s->request_id, s->id, s->url_in ? "yes" : "no",
	         s->url_out ? "yes" : "no", worker, s->gpu, s->cuda ? "cuda" : "host");
	streams_heartbeat(s);
	return 0;

err_free:
	snprintf(msg, cap, "out of memory");
	streams_free(s);
	return rc;
}

int
streams_op_update(void *ctx, const char *stream_id, const struct params_values *v,
                  char *msg, size_t cap)
{
	streams *ss = ctx;
	struct stream *s = stream_id ? streams_find(ss, stream_id) : NULL;
	json_t *x;
	int rc;

	if (!s)
		return -ENOENT;
	if ((rc = streams_apply_params(s, v, msg, cap)) < 0)
		return rc;
	x = json_loads(v->json ? v->json : "{}", 0, NULL);
	streams_emit(s, "params_updated", "ai_stream_events",
	             json_pack("{s:o}", "params", x ? x : json_object()));
	return 0;
}

int
streams_op_stop(void *ctx, const char *stream_id, char *msg, size_t cap)
{
	streams *ss = ctx;
	struct stream *s = stream_id ? streams_find(ss, stream_id) : NULL;

	(void)msg;
	(void)cap;
	if (!s)
		return -ENOENT;
	streams_end(s, "stopped by request", false);
	return 0;
}

/* ---- manager ---------------------------------------------------------------------- */

int
streams_create(streams **out, const struct streams_config *cfg)
{
	streams *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return -ENOMEM;
	ss->cfg = *cfg;
	if (!cfg->plan) {
		free(ss);
		return -EINVAL;
	}
	if (cfg->metrics) {
		metrics *m = cfg->metrics;
		const char *k[1];

		metrics_family_add(m, &ss->m_frames, METRICS_GAUGE, "stream_frames",
		                   "Video frames per running stream: in, out, resent, lost.",
		                   "stream,kind", NULL, 0);
		metrics_family_add(m, &ss->m_drops, METRICS_GAUGE, "stream_dropped_frames",
		                   "Video frames dropped per running stream, by cause.",
		                   "stream,cause", NULL, 0);
		metrics_family_add(m, &ss->m_total, METRICS_COUNTER, "frames_total",
		                   "Video frames of all streams: in (decoded), out (processed), "
		                   "resent (after a worker death), lost.", "kind", NULL, 0);
		metrics_family_add(m, &ss->m_dropped, METRICS_COUNTER, "dropped_frames_total",
		                   "Video frames dropped, by cause: rate_limit (max_framerate), "
		                   "queue (worker behind), ring (no free slot), worker (plugin).",
		                   "cause", NULL, 0);
		metrics_family_add(m, &ss->m_latency, METRICS_HISTOGRAM, "frame_latency_ms",
		                   "Decoded frame to processed result, milliseconds.", NULL,
		                   metrics_latency_ms_buckets, metrics_latency_ms_nbuckets);
		metrics_family_add(m, &ss->m_restarts, METRICS_COUNTER,
		                   "worker_deaths_total", "Worker process deaths.", "worker",
		                   NULL, 0);
		metrics_family_add(m, &ss->m_ring, METRICS_GAUGE, "ring_slots_used",
		                   "Frame ring slots in use.", NULL, NULL, 0);
		metrics_family_add(m, &ss->m_streams, METRICS_GAUGE, "streams_running",
		                   "Streams running.", NULL, NULL, 0);
		if (ss->m_latency)
			ss->c_latency = metrics_series_get(ss->m_latency, NULL);
		if (ss->m_total) {
			k[0] = "in";     ss->c_in = metrics_series_get(ss->m_total, k);
			k[0] = "out";    ss->c_out = metrics_series_get(ss->m_total, k);
			k[0] = "resent"; ss->c_resent = metrics_series_get(ss->m_total, k);
			k[0] = "lost";   ss->c_lost = metrics_series_get(ss->m_total, k);
		}
		if (ss->m_dropped) {
			k[0] = "rate_limit"; ss->c_drop_rate = metrics_series_get(ss->m_dropped, k);
			k[0] = "queue";      ss->c_drop_queue = metrics_series_get(ss->m_dropped, k);
			k[0] = "ring";       ss->c_drop_ring = metrics_series_get(ss->m_dropped, k);
			k[0] = "worker";     ss->c_drop_worker = metrics_series_get(ss->m_dropped, k);
		}
	}
	*out = ss;
	return 0;
}

struct stream_slot_ref *
streams_slot_ref(streams *ss, ring *r, uint32_t slot)
{
	struct streams_refs *n;
	int i;

	for (i = 0; i < ss->nrefs && ss->refs[i].r != r; i++)
		;
	if (i == ss->nrefs) {
		/* A ring seen for the first time (rings are few, never freed
		   before the manager). */
		n = realloc(ss->refs, sizeof(*n) * (size_t)(ss->nrefs + 1));
		if (!n)
			return NULL;
		ss->refs = n;
		n[i].r = r;
		n[i].ref = calloc(ring_slot_count(r), sizeof(*n[i].ref));
		if (!n[i].ref)
			return NULL;
		ss->nrefs++;
	}
	return slot < ring_slot_count(r) ? &ss->refs[i].ref[slot] : NULL;
}

void
streams_set_supervisor(streams *ss, supervisor *sup)
{
	ss->cfg.sup = sup;
}

void
streams_drain(streams *ss)
{
	struct stream *s, *next;

	ss->draining = true;
	for (s = ss->list; s; s = next) {
		next = s->next;
		if (!s->ending)
			streams_end(s, "server shutting down", false);
	}
}

bool
streams_quiet(const streams *ss)
{
	return ss->nrunning == 0 && ss->nending == 0;
}

unsigned
streams_running(const streams *ss)
{
	return ss->nrunning;
}

void
streams_destroy(streams **p)
{
	streams *ss = p ? *p : NULL;

	if (!ss)
		return;
	streams_drain(ss);
	/* Streams still closing their output are freed now, transfers aborted. */
	while (ss->dying) {
		ss->nending--;
		streams_free(ss->dying);
	}
	stream_deferred_flush(ss);
	for (int i = 0; i < ss->nrefs; i++)
		free(ss->refs[i].ref);
	free(ss->refs);
	free(ss);
	*p = NULL;
}
