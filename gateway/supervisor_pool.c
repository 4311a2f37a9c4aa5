/*
 * The supervisor's read-only pool queries: which idle worker takes a stream
 * (least loaded GPU, or a given GPU), capacity, counts, one worker's entry
 * and the GET /workers body. Split from supervisor.c (lifecycle); shares
 * supervisor_int.h. Loop thread only.
 */
#include "supervisor.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "supervisor_int.h"

/* Can take a STREAM_START now. */
static bool
sup_pickable(const struct sup_worker *w)
{
	return w->w_state == SUPERVISOR_IDLE && !w->w_killed && w->w_pid > 0;
}

unsigned
supervisor_in_flight(const struct sup_worker *w)
{
	unsigned n = 0;

	for (unsigned i = 0; i < w->w_nops; i++)
		n += w->w_ops[i].kind == SUP_OP_FRAME;
	return n;
}

int
supervisor_pick(const supervisor *s)
{
	int best = -EBUSY, best_load = INT_MAX;

	for (int i = 0; i < s->s_n; i++) {
		const struct sup_worker *w = &s->s_w[i];
		int load = 0;

		if (!sup_pickable(w))
			continue;
		for (int k = 0; k < s->s_n; k++)
			load += s->s_w[k].w_gpu == w->w_gpu &&
			        s->s_w[k].w_state == SUPERVISOR_BUSY;
		if (load < best_load) {
			best_load = load;
			best = i;
		}
	}
	return best;
}

int
supervisor_pick_gpu(const supervisor *s, int gpu)
{
	for (int i = 0; i < s->s_n; i++)
		if (s->s_w[i].w_gpu == gpu && sup_pickable(&s->s_w[i]))
			return i;
	return -EBUSY;
}

int
supervisor_idle_on(const supervisor *s, int gpu)
{
	int n = 0;

	for (int i = 0; i < s->s_n; i++)
		n += s->s_w[i].w_gpu == gpu && sup_pickable(&s->s_w[i]);
	return n;
}

int
supervisor_capacity(const supervisor *s)
{
	int cap = s->s_n - s->s_cfg.spares;

	return cap < 1 ? 1 : cap;
}

int
supervisor_nworkers(const supervisor *s)
{
	return s->s_n;
}

int
supervisor_count(const supervisor *s, enum supervisor_state st)
{
	int n = 0;

	for (int i = 0; i < s->s_n; i++)
		n += s->s_w[i].w_state == st;
	return n;
}

bool
supervisor_failed(const supervisor *s)
{
	for (int i = 0; i < s->s_n; i++)
		if (!s->s_w[i].w_fatal)
			return false;
	return true;
}

uint64_t
supervisor_violations(const supervisor *s)
{
	return s->s_violations;
}

int
supervisor_info(const supervisor *s, int worker,
                struct supervisor_worker_info *out)
{
	const struct sup_worker *w;

	if (!s || !out || worker < 0 || worker >= s->s_n)
		return -EINVAL;
	w = &s->s_w[worker];
	memset(out, 0, sizeof(*out));
	out->id = w->w_id;
	out->pid = w->w_pid > 0 ? w->w_pid : w->w_last_pid;
	out->gpu = w->w_gpu;
	out->state = w->w_state;
	out->has_stream = w->w_has_stream;
	out->stream = w->w_stream;
	out->fatal = w->w_fatal;
	out->restarts = w->w_restarts;
	out->violations = w->w_violations;
	out->in_flight = supervisor_in_flight(w);
	out->generation = w->w_gen;
	out->frames = w->w_frames;
	out->video_format = w->w_vformat;
	out->video_mem = w->w_vmem;
	out->caps = w->w_caps;
	out->abi_version = w->w_abi;
	out->init_ms = w->w_init_ms;
	snprintf(out->plugin_name, sizeof(out->plugin_name), "%s", w->w_plugin);
	snprintf(out->last_error, sizeof(out->last_error), "%s",
	         w->w_last_error);
	return 0;
}

json_t *
supervisor_json(const supervisor *s)
{
	json_t *root = json_object(), *arr = json_array();

	if (!root || !arr)
		goto err_free;
	for (int i = 0; i < s->s_n; i++) {
		const struct sup_worker *w = &s->s_w[i];
		const char *name = NULL;
		json_t *o, *stream;

		if (w->w_has_stream && s->s_cfg.cb.stream_name)
			name = s->s_cfg.cb.stream_name(s->s_cfg.cb_arg,
			                               w->w_stream);
		if (!w->w_has_stream)
			stream = json_null();
		else
			stream = name ? json_string(name)
			              : json_integer(w->w_stream);
		o = json_pack(
		    "{s:i, s:o, s:i, s:s, s:o, s:i, s:I, s:o}", "id", w->w_id,
		    "pid", w->w_pid > 0 ? json_integer(w->w_pid) : json_null(),
		    "gpu", w->w_gpu, "state", supervisor_state_name(w->w_state),
		    "stream", stream ? stream : json_null(), "restarts",
		    (int)w->w_restarts, "frames", (json_int_t)w->w_frames,
		    "last_error",
		    w->w_last_error[0] ? json_string(w->w_last_error)
		                       : json_null());
		if (!o || json_array_append_new(arr, o) != 0)
			goto err_free;
	}
	if (json_object_set_new(root, "workers", arr) != 0) {
		arr = NULL;
		goto err_free;
	}
	return root;

err_free:
	json_decref(arr);
	json_decref(root);
	return NULL;
}

