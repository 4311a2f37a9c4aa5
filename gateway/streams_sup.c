/*
 * The stream manager's side of the worker pool: where a new stream goes
 * (the least loaded GPU with an idle worker, then a worker of it), and the
 * supervisor's callbacks (ready, results, drops, audio, events, data,
 * errors, params acks, deaths), which keep a stream on its GPU's workers.
 * Split from streams.c (lifecycle); loop thread only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "gpu.h"
#include "log.h"
#include "stream_int.h"

/*
 * The least loaded GPU (fewest streams, those waiting for a worker
 * included) among those with an idle worker, and its lowest idle worker.
 */
int
streams_place(streams *ss, int *group)
{
	int n = gpuplan_ngroups(ss->cfg.plan), load[GPU_MAX], g;

	for (int i = 0; i < n; i++)
		load[i] = supervisor_idle_on(ss->cfg.sup,
		                             gpuplan_group_gpu(ss->cfg.plan, i)) > 0
		              ? 0 : INT_MAX;
	for (struct stream *s = ss->list; s; s = s->next)
		if (!s->ending && s->group >= 0 && s->group < n &&
		    load[s->group] != INT_MAX)
			load[s->group]++;
	g = gpu_least_loaded(load, n);
	if (g < 0 || load[g] == INT_MAX)
		return -EBUSY;
	*group = g;
	return supervisor_pick_gpu(ss->cfg.sup, gpuplan_group_gpu(ss->cfg.plan, g));
}

static void
streams_sup_ready(void *arg, int worker)
{
	streams *ss = arg;
	struct supervisor_worker_info wi;

	ss->any_ready = true;
	if (supervisor_info(ss->cfg.sup, worker, &wi) < 0)
		return;
	/* A stream of this GPU waiting for a worker (none was idle when it
	   lost one): its frames live in this GPU's ring. */
	for (struct stream *s = ss->list; s; s = s->next) {
		if (!s->ending && s->worker < 0 && s->gpu == wi.gpu) {
			if (stream_assign(s, worker) == 0)
				return;
		}
	}
}

static void
streams_sup_result(void *arg, int worker, const struct msg_result *m)
{
	struct stream *s = streams_find_id(arg, m->stream);

	if (s && !s->ending && s->worker == worker)
		stream_on_result(s, m);
}

static void
streams_sup_drop(void *arg, int worker, const struct msg_drop *m)
{
	struct stream *s = streams_find_id(arg, m->stream);

	if (s && !s->ending && s->worker == worker)
		stream_on_drop(s, m);
}

static void
streams_sup_audio_out(void *arg, int worker, const struct msg_audio_out *m)
{
	struct stream *s = streams_find_id(arg, m->stream);

	if (s && !s->ending && s->worker == worker)
		stream_on_audio_out(s, m);
}

static void
streams_sup_event(void *arg, int worker, const struct msg_event *m)
{
	struct stream *s = streams_find_id(arg, m->stream);
	json_t *ev;

	if (!s || s->ending || s->worker != worker || !s->ev)
		return;
	ev = json_loadb(m->json.ptr, m->json.len, 0, NULL);
	if (!json_is_object(ev)) {
		json_decref(ev);
		return;
	}
	json_t *root = json_pack("{s:o,s:s}", "event", ev,
	                         "queue_event_type", "custom_monitoring_event");
	char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;

	if (text)
		trickle_chan_pub_send(s->ev, text, strlen(text));
	free(text);
	json_decref(root);
}

static void
streams_sup_data(void *arg, int worker, const struct msg_data *m)
{
	struct stream *s = streams_find_id(arg, m->stream);

	if (s && !s->ending && s->worker == worker && s->data)
		trickle_chan_pub_send(s->data, m->line.ptr, m->line.len);
}

static void
streams_sup_error(void *arg, int worker, const struct msg_error *m)
{
	struct stream *s = streams_find_id(arg, m->stream);

	log_warn("stream", "worker reported an error stream=%s worker=%d code=%d msg=\"%.*s\"",
	         s ? s->request_id : "-", worker, m->code, (int)m->message.len,
	         m->message.ptr);
}

/* The worker applied an update: once all are answered, it is known good. */
static void
streams_sup_params_ack(void *arg, int worker, const struct msg_params_ack *m)
{
	struct stream *s = streams_of_worker(arg, worker);

	if (!s || s->id != m->stream || !s->params_unacked)
		return;
	if (--s->params_unacked == 0 && s->last_params) {
		char *dup = strdup(s->last_params);

		if (dup) {
			free(s->acked_params);
			s->acked_params = dup;
		}
	}
}

static void
streams_sup_death(void *arg, const struct supervisor_death *d)
{
	streams *ss = arg;
	const struct config *cfg = ss->cfg.cfg;
	struct stream *s = streams_of_worker(ss, d->worker);
	int64_t now = clock_now_ns(), window;
	unsigned recent = 0;
	ring *rings[4];
	int w, nr;

	nr = gpuplan_group_rings(ss->cfg.plan, gpuplan_group_of(ss->cfg.plan, d->gpu),
	                         rings, 4);
	/* Every ring of its GPU: a GPU switched to a host ring keeps the old. */
	for (int i = 0; i < nr; i++)
		ring_reclaim(rings[i], d->pid, s ? RING_RECLAIM_HOLD : RING_RECLAIM_FREE);
	if (ss->m_restarts) {
		char id[16];
		const char *lv[] = { id };

		snprintf(id, sizeof(id), "%d", d->worker);
		metrics_counter_add(metrics_series_get(ss->m_restarts, lv), 1);
	}
	if (!s)
		return;
	stream_worker_lost(s, d);
	/* crash budget: N deaths within the window end this stream only */
	s->death_ns[s->ndeaths++ % STREAM_DEATH_WINDOW] = now;
	window = (int64_t)cfg->crash_budget_window_s * 1000000000LL;
	for (unsigned i = 0; i < STREAM_DEATH_WINDOW && i < s->ndeaths; i++)
		if (now - s->death_ns[i] <= window)
			recent++;
	if ((int)recent >= cfg->crash_budget_deaths) {
		char why[128];

		snprintf(why, sizeof(why), "crash budget exhausted: %u worker deaths in %d s",
		         recent, cfg->crash_budget_window_s);
		streams_end(s, why, true);
		return;
	}
	log_warn("stream", "stream lost its worker stream=%s worker=%d reason=\"%s\"",
	         s->request_id, d->worker, d->reason ? d->reason : "");
	/* The stream stays on its GPU: its frames are in that GPU's ring. */
	if ((w = supervisor_pick_gpu(ss->cfg.sup, s->gpu)) >= 0)
		stream_assign(s, w);
}

/* GET /workers names a worker's stream by its gateway_request_id. */
static const char *
streams_sup_stream_name(void *arg, uint32_t stream)
{
	struct stream *s = streams_find_id(arg, stream);

	return s ? s->request_id : NULL;
}

struct supervisor_callbacks
streams_supervisor_cbs(void)
{
	return (struct supervisor_callbacks){
		.on_ready = streams_sup_ready,
		.on_result = streams_sup_result,
		.on_drop = streams_sup_drop,
		.on_audio_out = streams_sup_audio_out,
		.on_event = streams_sup_event,
		.on_data = streams_sup_data,
		.on_error = streams_sup_error,
		.on_params_ack = streams_sup_params_ack,
		.on_death = streams_sup_death,
		.stream_name = streams_sup_stream_name,
	};
}

