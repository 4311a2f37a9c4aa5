/*
 * Audio of a stream through its worker (loop thread): frames the decoder
 * queued go out as AUDIO when the plugin has process_audio, AUDIO_OUT comes
 * back validated into the encoder; without such a worker audio goes to the
 * encoder unchanged. Split from stream.c (the video frame path).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/channel_layout.h>
#include <libavutil/mathematics.h>
#include <libavutil/samplefmt.h>

#include "frame_processor.h"
#include "stream_int.h"

static int
stream_fp_samplefmt(int av)
{
	switch (av) {
	case AV_SAMPLE_FMT_S16:  return FP_SAMPLE_S16;
	case AV_SAMPLE_FMT_FLT:  return FP_SAMPLE_FLT;
	case AV_SAMPLE_FMT_FLTP: return FP_SAMPLE_FLTP;
	case AV_SAMPLE_FMT_S16P: return FP_SAMPLE_S16P;
	default:                 return -1;
	}
}

static int
stream_av_samplefmt(uint32_t fp)
{
	switch (fp) {
	case FP_SAMPLE_S16:  return AV_SAMPLE_FMT_S16;
	case FP_SAMPLE_FLT:  return AV_SAMPLE_FMT_FLT;
	case FP_SAMPLE_FLTP: return AV_SAMPLE_FMT_FLTP;
	case FP_SAMPLE_S16P: return AV_SAMPLE_FMT_S16P;
	default:             return AV_SAMPLE_FMT_NONE;
	}
}

/* Sends one audio frame to the stream's worker as AUDIO (planes back to back). */
static int
stream_send_audio(struct stream *s, const AVFrame *fr)
{
	int fmt = stream_fp_samplefmt(fr->format);
	int ch = fr->ch_layout.nb_channels;
	int planar = av_sample_fmt_is_planar(fr->format);
	size_t plane = (size_t)fr->nb_samples * (size_t)av_get_bytes_per_sample(fr->format) *
	               (size_t)(planar ? 1 : ch);
	struct msg m = { .type = MSG_AUDIO };
	uint8_t *buf;
	int rc;

	if (fmt < 0 || ch <= 0 || ch > 8 || fr->nb_samples <= 0 || fr->sample_rate <= 0 ||
	    fr->time_base.den <= 0 || plane * (size_t)(planar ? ch : 1) > MSG_MAX_BIN)
		return -ENOTSUP;
	buf = malloc(plane * (size_t)(planar ? ch : 1));
	if (!buf)
		return -ENOMEM;
	for (int c = 0; c < (planar ? ch : 1); c++)
		memcpy(buf + (size_t)c * plane, fr->extended_data[c], plane);
	m.u.audio = (struct msg_audio){
		.stream = s->id, .seq = ++s->audio_seq, .pts = fr->pts,
		.tb_num = (uint32_t)fr->time_base.num, .tb_den = (uint32_t)fr->time_base.den,
		.sample_rate = (uint32_t)fr->sample_rate, .channels = (uint32_t)ch,
		.format = (uint32_t)fmt, .nb_samples = (uint32_t)fr->nb_samples,
		.data = { buf, (uint32_t)(plane * (size_t)(planar ? ch : 1)) },
	};
	rc = supervisor_send(s->ss->cfg.sup, s->worker, &m);
	free(buf);
	if (rc == 0) {
		s->audio_inflight++;
		s->audio_sent_us = av_rescale_q(fr->pts, fr->time_base, AV_TIME_BASE_Q);
	}
	return rc;
}

/*
 * Audio a worker returns must stay on the timeline of the audio it was sent:
 * a far-off pts would make every video frame look late to the encoder's A/V
 * sync (PROTOCOL.md 4.3), which then stops the stream.
 */
#define STREAM_AUDIO_PTS_SLACK_US (10 * 1000000LL)

static bool
stream_audio_pts_ok(const struct stream *s, const struct msg_audio_out *m)
{
	int64_t us;

	if (s->audio_sent_us == INT64_MIN || m->pts > (INT64_C(1) << 52) ||
	    m->pts < -(INT64_C(1) << 52))
		return false;
	us = av_rescale_q(m->pts, (AVRational){ (int)m->tb_num, (int)m->tb_den },
	                  AV_TIME_BASE_Q);
	return us >= s->audio_sent_us - STREAM_AUDIO_PTS_SLACK_US &&
	       us <= s->audio_sent_us + STREAM_AUDIO_PTS_SLACK_US;
}

/*
 * Moves the audio the decoder queued to the worker; while no worker serves
 * the stream (or one cannot take it), audio goes to the encoder unchanged.
 */
void
stream_pump_audio(struct stream *s)
{
	encoder *e = stream_encoder(s);
	AVFrame *fr;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		fr = NULL;
		if (s->aq_len) {
			fr = s->aq[s->aq_head];
			s->aq[s->aq_head] = NULL;
			s->aq_head = (s->aq_head + 1) % STREAM_AUDIO_QUEUE;
			s->aq_len--;
		}
		pthread_mutex_unlock(&s->lock);
		if (!fr)
			break;
		if (s->ending || s->worker < 0 || !atomic_load(&s->audio_worker) ||
		    stream_send_audio(s, fr) < 0) {
			if (!s->ending && e && encoder_push_audio(e, fr, false) < 0)
				atomic_fetch_add(&s->audio_drops, 1);
		}
		av_frame_free(&fr);
	}
}

/* The worker's processed audio: validated, then to the encoder. */
static void
stream_audio_out_push(struct stream *s, const struct msg_audio_out *m)
{
	int fmt = stream_av_samplefmt(m->format);
	encoder *e = stream_encoder(s);
	AVFrame *fr;
	size_t plane;
	int planar;

	if (m->nb_samples == 0)
		return; /* the plugin dropped it */
	if (fmt == AV_SAMPLE_FMT_NONE || m->channels == 0 || m->channels > 8 ||
	    m->sample_rate == 0 || m->sample_rate > 384000 || m->tb_num == 0 ||
	    m->tb_den == 0 || m->tb_num > INT_MAX || m->tb_den > INT_MAX ||
	    m->nb_samples > MSG_MAX_BIN) {
		atomic_fetch_add(&s->audio_drops, 1);
		return;
	}
	if (!stream_audio_pts_ok(s, m)) {
		atomic_fetch_add(&s->audio_drops, 1);
		if (!s->audio_pts_warned)
			log_warn("stream", "worker audio dropped: pts off the input's timeline "
			         "stream=%s pts=%lld tb=%u/%u (a processor must keep the "
			         "timestamps of the audio it is given)",
			         s->request_id, (long long)m->pts, m->tb_num, m->tb_den);
		s->audio_pts_warned = true;
		return;
	}
	planar = av_sample_fmt_is_planar(fmt);
	plane = (size_t)m->nb_samples * (size_t)av_get_bytes_per_sample(fmt) *
	        (planar ? 1 : m->channels);
	if (plane * (planar ? m->channels : 1) != m->data.len || !e) {
		atomic_fetch_add(&s->audio_drops, 1);
		return;
	}
	fr = av_frame_alloc();
	if (!fr)
		return;
	fr->format = fmt;
	fr->sample_rate = (int)m->sample_rate;
	fr->nb_samples = (int)m->nb_samples;
	av_channel_layout_default(&fr->ch_layout, (int)m->channels);
	if (av_frame_get_buffer(fr, 0) < 0) {
		av_frame_free(&fr);
		return;
	}
	for (uint32_t c = 0; c < (planar ? m->channels : 1); c++)
		memcpy(fr->extended_data[c], m->data.ptr + c * plane, plane);
	fr->pts = m->pts;
	fr->time_base = (AVRational){ (int)m->tb_num, (int)m->tb_den };
	if (encoder_push_audio(e, fr, false) < 0)
		atomic_fetch_add(&s->audio_drops, 1);
	else
		s->audio_back++;
	av_frame_free(&fr);
}

void
stream_on_audio_out(struct stream *s, const struct msg_audio_out *m)
{
	stream_audio_out_push(s, m);
	if (s->audio_inflight > 0 && --s->audio_inflight == 0 && s->input_done)
		stream_pump(s); /* the end of the stream waited for this audio */
}
