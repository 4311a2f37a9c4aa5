/*
 * The stream manager's API backend (api.h): health, status, workers,
 * metrics and GPU info answers, and the ops table that routes start,
 * params and stop to streams.c. Read-only views of the manager's state;
 * loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stream_int.h"

static int
streams_op_health(void *ctx)
{
	streams *ss = ctx;

	if (!ss->cfg.sup || supervisor_failed(ss->cfg.sup))
		return API_HEALTH_ERROR;
	if (!ss->any_ready)
		return API_HEALTH_LOADING;
	return ss->nrunning > 0 ? API_HEALTH_OK : API_HEALTH_IDLE;
}

static int
streams_op_count(void *ctx, char *only_id, size_t cap)
{
	streams *ss = ctx;

	if (ss->nrunning == 1 && cap > 0)
		for (struct stream *s = ss->list; s; s = s->next)
			if (!s->ending)
				snprintf(only_id, cap, "%s", s->request_id);
	return (int)ss->nrunning;
}

static json_t *
streams_status_one(struct stream *s)
{
	return json_pack(
		"{s:s,s:i,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}",
		"request_id", s->request_id, "worker", s->worker,
		"max_framerate", convert_get_max_framerate(s->conv),
		"frames_in", (json_int_t)atomic_load(&s->frames_decoded),
		"frames_out", (json_int_t)s->frames_out,
		"dropped", (json_int_t)(atomic_load(&s->drop_rate) + atomic_load(&s->drop_queue) +
		                        atomic_load(&s->drop_ring) + s->worker_drops),
		"resent", (json_int_t)s->frames_resent,
		"lost", (json_int_t)s->frames_lost,
		"segments_out", (json_int_t)atomic_load(&s->segments_out),
		"ingress_video_fps", s->fps_in, "egress_video_fps", s->fps_out);
}

static int
streams_op_status(void *ctx, const char *stream_id, json_t *out)
{
	streams *ss = ctx;
	json_t *list = json_object_get(out, "streams");
	struct stream *named = stream_id ? streams_find(ss, stream_id) : NULL;

	for (struct stream *s = ss->list; s; s = s->next)
		if (!s->ending && list)
			json_array_append_new(list, streams_status_one(s));
	if (named) {
		json_object_set_new(out, "client_active", json_true());
		json_object_set_new(out, "client_running", json_true());
		json_object_set_new(out, "fps", json_pack(
			"{s:f,s:f,s:f,s:f}", "ingress_video_fps", named->fps_in,
			"ingress_audio_fps", 0.0, "egress_video_fps", named->fps_out,
			"egress_audio_fps", 0.0));
		json_object_set_new(out, "current_params", json_pack(
			"{s:s?,s:s?,s:s}", "subscribe_url", named->url_in,
			"publish_url", named->url_out, "gateway_request_id", named->request_id));
	}
	json_object_set_new(out, "active_streams", json_integer(ss->nrunning));
	return 0;
}

static int
streams_op_workers(void *ctx, json_t *arr)
{
	streams *ss = ctx;
	json_t *all = ss->cfg.sup ? supervisor_json(ss->cfg.sup) : NULL;
	json_t *w = all ? json_object_get(all, "workers") : NULL;

	if (w)
		json_array_extend(arr, w);
	json_decref(all);
	return 0;
}

static void
streams_op_metrics(void *ctx)
{
	streams *ss = ctx;

	if (ss->m_ring) {
		double used = 0;
		ring *rings[4];

		for (int g = 0; g < gpuplan_ngroups(ss->cfg.plan); g++) {
			int n = gpuplan_group_rings(ss->cfg.plan, g, rings, 4);

			for (int i = 0; i < n; i++)
				used += ring_slot_count(rings[i]) - ring_free_count(rings[i]);
		}
		metrics_gauge_set(metrics_series_get(ss->m_ring, NULL), used);
	}
	if (ss->m_streams)
		metrics_gauge_set(metrics_series_get(ss->m_streams, NULL), ss->nrunning);
	for (struct stream *s = ss->list; s; s = s->next) {
		const char *lv[] = { s->request_id, "in" };

		if (!ss->m_frames)
			break;
		metrics_gauge_set(metrics_series_get(ss->m_frames, lv),
		                  (double)atomic_load(&s->frames_decoded));
		lv[1] = "out";
		metrics_gauge_set(metrics_series_get(ss->m_frames, lv), (double)s->frames_out);
		lv[1] = "resent";
		metrics_gauge_set(metrics_series_get(ss->m_frames, lv), (double)s->frames_resent);
		lv[1] = "lost";
		metrics_gauge_set(metrics_series_get(ss->m_frames, lv), (double)s->frames_lost);
		lv[1] = "rate_limit";
		metrics_gauge_set(metrics_series_get(ss->m_drops, lv), (double)atomic_load(&s->drop_rate));
		lv[1] = "queue";
		metrics_gauge_set(metrics_series_get(ss->m_drops, lv), (double)atomic_load(&s->drop_queue));
		lv[1] = "ring";
		metrics_gauge_set(metrics_series_get(ss->m_drops, lv), (double)atomic_load(&s->drop_ring));
		lv[1] = "worker";
		metrics_gauge_set(metrics_series_get(ss->m_drops, lv), (double)s->worker_drops);
	}
}

static int
streams_op_gpu_info(void *ctx, bool stats, json_t *gpus)
{
	streams *ss = ctx;

	/* The refresh thread's latest figures: NVML never runs on the loop. */
	return ss->cfg.gpuinfo ? gpuinfo_fill(ss->cfg.gpuinfo, stats, gpus) : 0;
}

static const struct api_backend_ops streams_ops = {
	.health = streams_op_health,
	.stream_count = streams_op_count,
	.start = streams_op_start,
	.update_params = streams_op_update,
	.stop = streams_op_stop,
	.status = streams_op_status,
	.workers = streams_op_workers,
	.metrics_refresh = streams_op_metrics,
	.gpu_info = streams_op_gpu_info,
};

const struct api_backend_ops *
streams_api_ops(void)
{
	return &streams_ops;
}

