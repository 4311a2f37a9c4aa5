/*
 * The supervisor's conversation with its workers: encoding into one reused
 * buffer, tracking the requests that expect an answer (answered in order),
 * and checking everything a worker sends (it is untrusted) before the owner
 * sees it. Process lifecycle and timers are in supervisor.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "supervisor_int.h"

static void
sup_copy_str(char *dst, size_t cap, const char *p, size_t len)
{
	size_t n = len < cap - 1 ? len : cap - 1;

	for (size_t i = 0; i < n; i++)
		dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
	dst[n] = '\0';
}

/* ---- sending ------------------------------------------------------------ */

int
supervisor_ipc_send(supervisor *s, struct sup_worker *w, const struct msg *m)
{
	size_t len = 0;
	int rv;

	if (!w->w_conn)
		return -ENOTCONN;
	rv = msg_encode(m, s->s_tx, s->s_tx_cap, &len);
	if (rv == -EMSGSIZE) {
		size_t need = msg_encoded_bound(m);
		uint8_t *p;

		if (need <= s->s_tx_cap)
			return rv;
		p = realloc(s->s_tx, need);
		if (!p)
			return -ENOMEM;
		s->s_tx = p;
		s->s_tx_cap = need;
		rv = msg_encode(m, s->s_tx, s->s_tx_cap, &len);
	}
	if (rv < 0)
		return rv;
	return workerconn_send(w->w_conn, s->s_tx, len);
}

void
supervisor_ipc_push_op(struct sup_worker *w, uint8_t kind, uint32_t stream,
                       uint64_t key)
{
	if (w->w_nops >= SUP_MAX_OPS)
		return;
	if (w->w_nops == 0)
		w->w_op_base_ns = clock_now_ns();
	w->w_ops[w->w_nops].kind = kind;
	w->w_ops[w->w_nops].stream = stream;
	w->w_ops[w->w_nops].key = key;
	w->w_nops++;
}

/*
 * Sends a PING and tracks it even when the send fails: a worker that stops
 * reading its socket must still run into the hang deadline.
 */
void
supervisor_ipc_ping(struct sup_worker *w)
{
	struct msg m;
	int64_t now = clock_now_ns();

	memset(&m, 0, sizeof(m));
	m.type = MSG_PING;
	m.u.ping.nonce = ++w->w_nonce;
	m.u.ping.t_ns = now;
	(void)supervisor_ipc_send(w->w_sup, w, &m);
	supervisor_ipc_push_op(w, SUP_OP_PING, 0, m.u.ping.nonce);
	w->w_ping_ns = now;
}

/* The first op of `kind` matching (stream, key); key is ignored for PARAMS. */
static int
sup_op_find(const struct sup_worker *w, uint8_t kind, uint32_t stream,
            uint64_t key)
{
	for (unsigned i = 0; i < w->w_nops; i++) {
		const struct sup_op *o = &w->w_ops[i];

		if (o->kind != kind)
			continue;
		if (kind == SUP_OP_PING && o->key == key)
			return (int)i;
		if (kind == SUP_OP_PARAMS && o->stream == stream)
			return (int)i;
		if (kind == SUP_OP_FRAME && o->stream == stream &&
		    o->key == key)
			return (int)i;
	}
	return -1;
}

/*
 * Op i is answered. The worker handles requests in order, so the
 * unanswered STREAM_START/STOP before it are done too.
 */
static void
sup_op_done(struct sup_worker *w, int i)
{
	unsigned out = 0;
	bool head_gone = false;

	for (unsigned k = 0; k < w->w_nops; k++) {
		const struct sup_op *o = &w->w_ops[k];
		bool drop =
		    (int)k == i || ((int)k < i && (o->kind == SUP_OP_START ||
		                                   o->kind == SUP_OP_STOP));

		if (drop) {
			if (out == 0)
				head_gone = true;
			continue;
		}
		w->w_ops[out++] = *o;
	}
	w->w_nops = out;
	if (head_gone)
		w->w_op_base_ns = clock_now_ns();
	supervisor_arm(w);
}

/* ---- receiving ---------------------------------------------------------- */

/* Counts a protocol violation; kills at the limit. False: stop reading. */
static bool
sup_violation(struct sup_worker *w, const char *what, const char *type)
{
	supervisor *s = w->w_sup;

	w->w_violations++;
	s->s_violations++;
	log_warn(
	    SUP_MOD,
	    "protocol violation worker=%d pid=%d what=\"%s\" type=%s count=%u",
	    w->w_id, w->w_pid, what, type, w->w_violations);
	if (w->w_violations >= s->s_cfg.max_violations) {
		char reason[96];

		snprintf(reason, sizeof(reason), "protocol violations: %u",
		         w->w_violations);
		supervisor_kill_worker(w, reason);
		return false;
	}
	return true;
}

static bool
sup_stream_ok(const struct sup_worker *w, uint32_t stream)
{
	return (w->w_has_stream && stream == w->w_stream) ||
	       (w->w_had_prev && stream == w->w_prev_stream);
}

static bool
sup_on_hello(struct sup_worker *w, const struct msg_hello *h)
{
	if (w->w_state != SUPERVISOR_STARTING)
		return sup_violation(w, "HELLO twice", "HELLO");
	if (h->worker_id != (uint32_t)w->w_id || h->pid != (uint32_t)w->w_pid)
		return sup_violation(w, "HELLO with a wrong worker id or pid",
		                     "HELLO");
	w->w_abi = h->abi_version;
	w->w_vformat = h->video_format;
	w->w_vmem = h->video_mem;
	w->w_caps = h->caps;
	sup_copy_str(w->w_plugin, sizeof(w->w_plugin), h->plugin_name.ptr,
	             h->plugin_name.len);
	supervisor_set_state(w, SUPERVISOR_LOADING);
	supervisor_arm(w);
	return true;
}

static bool
sup_on_ready_msg(struct sup_worker *w, const struct msg_ready *r)
{
	supervisor *s = w->w_sup;

	if (w->w_state != SUPERVISOR_LOADING ||
	    r->worker_id != (uint32_t)w->w_id)
		return sup_violation(w, "READY out of order", "READY");
	w->w_init_ms = r->init_ms;
	supervisor_set_state(w, SUPERVISOR_IDLE);
	w->w_ping_ns = clock_now_ns();
	w->w_ready_ns = w->w_ping_ns;
	supervisor_arm(w);
	log_info(SUP_MOD,
	         "worker ready worker=%d pid=%d gen=%u plugin=%s init_ms=%u",
	         w->w_id, w->w_pid, w->w_gen, w->w_plugin, r->init_ms);
	if (s->s_cfg.cb.on_ready)
		s->s_cfg.cb.on_ready(s->s_cfg.cb_arg, w->w_id);
	return true;
}

bool
supervisor_ipc_on_msg(void *arg, const void *buf, size_t len)
{
	struct sup_worker *w = arg;
	supervisor *s = w->w_sup;
	const struct supervisor_callbacks *cb = &s->s_cfg.cb;
	void *ca = s->s_cfg.cb_arg;
	struct msg m;
	int i;

	if (w->w_killed || w->w_pid <= 0)
		return false;
	if (s->s_closing)
		return true;
	if (msg_decode(buf, len, &m) != 0)
		return sup_violation(w, "undecodable message", "?");
	if (!msg_is_from_worker(m.type))
		return sup_violation(w, "gateway-to-worker type from a worker",
		                     msg_type_name(m.type));
	if (m.type != MSG_HELLO && m.type != MSG_ERROR &&
	    w->w_state == SUPERVISOR_STARTING)
		return sup_violation(w, "message before HELLO",
		                     msg_type_name(m.type));
	switch (m.type) {
	case MSG_HELLO:
		return sup_on_hello(w, &m.u.hello);
	case MSG_READY:
		return sup_on_ready_msg(w, &m.u.ready);
	case MSG_RESULT:
		i = sup_op_find(w, SUP_OP_FRAME, m.u.result.stream,
		                m.u.result.seq);
		if (i < 0)
			return sup_violation(w, "RESULT for no frame in flight",
			                     "RESULT");
		w->w_frames++;
		sup_op_done(w, i);
		if (cb->on_result)
			cb->on_result(ca, w->w_id, &m.u.result);
		break;
	case MSG_DROP:
		i = sup_op_find(w, SUP_OP_FRAME, m.u.drop.stream, m.u.drop.seq);
		if (i < 0)
			return sup_violation(w, "DROP for no frame in flight",
			                     "DROP");
		sup_op_done(w, i);
		if (cb->on_drop)
			cb->on_drop(ca, w->w_id, &m.u.drop);
		break;
	case MSG_PARAMS_ACK:
		i = sup_op_find(w, SUP_OP_PARAMS, m.u.params_ack.stream, 0);
		if (i < 0)
			return sup_violation(w, "PARAMS_ACK for no PARAMS",
			                     "PARAMS_ACK");
		sup_op_done(w, i);
		if (cb->on_params_ack)
			cb->on_params_ack(ca, w->w_id, &m.u.params_ack);
		break;
	case MSG_PONG:
		i = sup_op_find(w, SUP_OP_PING, 0, m.u.pong.nonce);
		if (i < 0)
			return sup_violation(w, "PONG for no PING", "PONG");
		sup_op_done(w, i);
		break;
	case MSG_AUDIO_OUT:
		if (!sup_stream_ok(w, m.u.audio_out.stream))
			return sup_violation(w, "AUDIO_OUT for another stream",
			                     "AUDIO_OUT");
		if (cb->on_audio_out)
			cb->on_audio_out(ca, w->w_id, &m.u.audio_out);
		break;
	case MSG_ERROR:
		sup_copy_str(w->w_err_msg, sizeof(w->w_err_msg),
		             m.u.error.message.ptr, m.u.error.message.len);
		snprintf(w->w_last_error, sizeof(w->w_last_error), "%s",
		         w->w_err_msg);
		if (cb->on_error)
			cb->on_error(ca, w->w_id, &m.u.error);
		break;
	case MSG_EVENT:
		if (cb->on_event)
			cb->on_event(ca, w->w_id, &m.u.event);
		break;
	case MSG_DATA:
		if (cb->on_data)
			cb->on_data(ca, w->w_id, &m.u.data);
		break;
	default:
		return sup_violation(w, "unexpected type",
		                     msg_type_name(m.type));
	}
	return !w->w_killed && w->w_pid > 0;
}
