/*
 * The worker's serve loop (see loop.h). One thread receives, validates,
 * calls the plugin and replies; plugin threads may only emit events and data
 * (loop_send is locked). Steady state allocates nothing here: buffers and the
 * generation table are made by loop_create; nng owns message memory.
 */
#include "worker/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"

struct loop {
	struct loop_config l_cfg;
	host *l_host;
	const struct fp_plugin *l_plugin;
	ring *l_ring;
	ipc *l_ipc;
	uint64_t l_slot_bytes;
	uint32_t l_max_width, l_max_height;
	uint32_t *l_seen_gen;     /* highest generation seen per slot */
	pthread_mutex_t l_send_lock;
	uint8_t *l_sbuf;          /* encode buffer, under l_send_lock */
	size_t l_scap;
	uint8_t *l_abuf;          /* audio output buffer (plugins with process_audio) */
	uint32_t l_acap;
	uint8_t *l_ain;           /* aligned copy of audio input that arrived misaligned */
	uint64_t l_bad;           /* bad descriptors so far (logged at 1, 2, 4, 8...) */
	char *l_text;             /* NUL-terminated copy of params text */
	size_t l_text_cap;
	uint8_t *l_scratch;       /* repack buffer, made on first need */
	bool l_fence;             /* host ring: slots not in use are PROT_NONE here */
	bool l_active;
	uint32_t l_stream;
	unsigned l_streak;        /* plugin errors in a row */
	uint64_t l_frames;
	uint64_t l_errors;
	bool l_warned_audio;
};

/* Bytes per sample of an fp_samplefmt (0: unknown). */
static uint32_t
loop_sample_bytes(uint32_t fmt)
{
	switch (fmt) {
	case FP_SAMPLE_S16:
	case FP_SAMPLE_S16P: return 2;
	case FP_SAMPLE_FLT:
	case FP_SAMPLE_FLTP: return 4;
	default: return 0;
	}
}

static bool
loop_sample_planar(uint32_t fmt)
{
	return fmt == FP_SAMPLE_FLTP || fmt == FP_SAMPLE_S16P;
}

/* host_sink_fn: plugin events and data lines become EVENT and DATA messages. */
static int
loop_sink(void *ctx, enum host_emit_kind kind, uint32_t stream, const char *text,
          size_t len)
{
	struct msg m = { 0 };

	if (kind == HOST_EMIT_EVENT) {
		m.type = MSG_EVENT;
		m.u.event.stream = stream;
		m.u.event.json.ptr = text;
		m.u.event.json.len = (uint32_t)len;
	} else {
		m.type = MSG_DATA;
		m.u.data.stream = stream;
		m.u.data.line.ptr = text;
		m.u.data.line.len = (uint32_t)len;
	}
	return loop_send(ctx, &m);
}

/* Sets the protection of one slot's pages in this process. */
static int
loop_protect(loop *l, uint32_t slot, int prot)
{
	uint8_t *base;
	uint64_t size;

	if (ring_slot_ptr(l->l_ring, slot, 1, &base, &size) < 0)
		return -ERANGE;
	return mprotect(base, size, prot) == 0 ? 0 : -errno;
}

/*
 * Host ring: every slot becomes PROT_NONE in this process; a frame's call
 * opens its input read-only and its output read-write, then closes both. A
 * stray write (or read) into another slot, which may hold another stream's
 * frame, faults instead of corrupting it; a write into the input faults too,
 * so the gateway's re-send after a crash stays intact. Costly (four mprotect
 * calls a frame, and the page faults that follow each re-opening: about
 * 1.7 ms a 512x512 RGB24 frame here), so only on request (CT_WORKER_FENCE=1).
 * When mprotect fails, the fence is off and everything stays mapped.
 */
static void
loop_fence_init(loop *l)
{
	uint32_t n = ring_slot_count(l->l_ring), i;
	int rc = 0;

	for (i = 0; i < n && rc == 0; i++)
		rc = loop_protect(l, i, PROT_NONE);
	if (rc == 0) {
		l->l_fence = true;
		return;
	}
	log_warn("loop", "slot fence off err=%s", strerror(-rc));
	for (uint32_t j = 0; j < i; j++)
		loop_protect(l, j, PROT_READ | PROT_WRITE);
}

/* Opens (or, open false, closes) the slots of one frame's call. */
static void
loop_fence(loop *l, const struct msg_frame *f, bool open)
{
	if (!l->l_fence)
		return;
	if (open) {
		if (f->in_slot != f->out_slot)
			loop_protect(l, f->in_slot, PROT_READ);
		loop_protect(l, f->out_slot, PROT_READ | PROT_WRITE);
	} else {
		loop_protect(l, f->in_slot, PROT_NONE);
		if (f->in_slot != f->out_slot)
			loop_protect(l, f->out_slot, PROT_NONE);
	}
}

int
loop_create(loop **out, const struct loop_config *cfg, host *h, ring *r, ipc *c)
{
	const struct ring_header *hdr;
	loop *l;

	*out = NULL;
	if (!cfg || !h || !r || !c)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->l_cfg = *cfg;
	if (!l->l_cfg.max_errors)
		l->l_cfg.max_errors = LOOP_DEFAULT_MAX_ERRORS;
	l->l_host = h;
	l->l_plugin = host_plugin(h);
	l->l_ring = r;
	l->l_ipc = c;
	hdr = ring_get_header(r);
	l->l_slot_bytes = ring_slot_bytes(r);
	l->l_max_width = hdr->max_width;
	l->l_max_height = hdr->max_height;
	l->l_seen_gen = calloc(ring_slot_count(r), sizeof(*l->l_seen_gen));
	if (!l->l_seen_gen)
		goto err_free;
	if (cfg->fence && hdr->backend == RING_BACKEND_HOST)
		loop_fence_init(l);
	/* Big enough for every reply: AUDIO_OUT with a full buffer, or an event. */
	l->l_scap = (l->l_plugin->process_audio ? MSG_MAX_BIN : 0) + HOST_MAX_EVENT +
	            2 * MSG_MAX_STR + 1024;
	l->l_sbuf = malloc(l->l_scap);
	if (!l->l_sbuf)
		goto err_free_gen;
	if (l->l_plugin->process_audio) {
		l->l_acap = MSG_MAX_BIN;
		l->l_abuf = malloc(l->l_acap);
		l->l_ain = malloc(MSG_MAX_BIN);
		if (!l->l_abuf || !l->l_ain)
			goto err_free_audio;
	}
	pthread_mutex_init(&l->l_send_lock, NULL);
	host_set_sink(h, loop_sink, l);
	*out = l;
	return 0;

err_free_audio:
	free(l->l_ain);
	free(l->l_abuf);
	free(l->l_sbuf);
err_free_gen:
	free(l->l_seen_gen);
err_free:
	free(l);
	return -ENOMEM;
}

int
loop_send(loop *l, const struct msg *m)
{
	size_t len;
	int rc;

	pthread_mutex_lock(&l->l_send_lock);
	rc = msg_encode(m, l->l_sbuf, l->l_scap, &len);
	if (rc == 0)
		rc = ipc_send_timeout(l->l_ipc, l->l_sbuf, len, LOOP_SEND_TIMEOUT_MS);
	pthread_mutex_unlock(&l->l_send_lock);
	if (rc < 0)
		log_debug("loop", "send failed type=%s err=%s", msg_type_name(m->type),
		          strerror(-rc));
	return rc;
}

int
loop_send_hello(loop *l)
{
	const struct fp_plugin *p = l->l_plugin;
	struct msg m = { .type = MSG_HELLO };

	m.u.hello.worker_id = l->l_cfg.worker_id;
	m.u.hello.pid = (uint32_t)getpid();
	m.u.hello.abi_version = p->abi_version;
	m.u.hello.plugin_name = msg_cstr(p->name);
	m.u.hello.plugin_version = msg_cstr(p->version);
	m.u.hello.video_format = p->wants.video_format;
	m.u.hello.video_mem = p->wants.video_mem;
	m.u.hello.caps = host_caps(l->l_host);
	if (m.u.hello.plugin_name.len > MSG_MAX_STR)
		m.u.hello.plugin_name.len = MSG_MAX_STR;
	if (m.u.hello.plugin_version.len > MSG_MAX_STR)
		m.u.hello.plugin_version.len = MSG_MAX_STR;
	return loop_send(l, &m);
}

int
loop_send_ready(loop *l, uint32_t init_ms)
{
	struct msg m = { .type = MSG_READY };

	m.u.ready.worker_id = l->l_cfg.worker_id;
	m.u.ready.init_ms = init_ms;
	return loop_send(l, &m);
}

int
loop_send_error(loop *l, uint32_t stream, int code, const char *fmt, ...)
{
	struct msg m = { .type = MSG_ERROR };
	char text[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	m.u.error.stream = stream;
	m.u.error.code = code;
	m.u.error.message.ptr = text;
	m.u.error.message.len = (uint32_t)((size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
	return loop_send(l, &m);
}

/* Copies text into l_text with a NUL; "{}" when empty. NULL on -ENOMEM. */
static const char *
loop_text(loop *l, struct msg_str s, size_t *len)
{
	if (s.len == 0) {
		*len = 2;
		return "{}";
	}
	if ((size_t)s.len + 1 > l->l_text_cap) {
		char *t = realloc(l->l_text, (size_t)s.len + 1);

		if (!t)
			return NULL;
		l->l_text = t;
		l->l_text_cap = (size_t)s.len + 1;
	}
	memcpy(l->l_text, s.ptr, s.len);
	l->l_text[s.len] = '\0';
	*len = s.len;
	return l->l_text;
}

/* True when text is one JSON object (params handed to the plugin). */
static bool
loop_is_object(const char *text, size_t len)
{
	json_error_t jerr;
	json_t *v = json_loadb(text, len, 0, &jerr);
	bool ok = v && json_is_object(v);

	json_decref(v);
	return ok;
}

/*
 * True when this process has an address-space limit (--mem-limit-mb) and
 * uses at least 90 % of it: an -ENOMEM then is a leak that never gives the
 * memory back, not a passing shortage. Read on the error path only.
 */
static bool
loop_near_mem_limit(unsigned long long *used_mb, unsigned long long *limit_mb)
{
	unsigned long long pages = 0;
	struct rlimit rl;
	long psz = sysconf(_SC_PAGESIZE);
	FILE *f;
	int n;

	if (getrlimit(RLIMIT_AS, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || psz <= 0)
		return false;
	if (!(f = fopen("/proc/self/statm", "re")))
		return false;
	n = fscanf(f, "%llu", &pages);
	fclose(f);
	if (n != 1)
		return false;
	*used_mb = pages * (unsigned long long)psz >> 20;
	*limit_mb = (unsigned long long)rl.rlim_cur >> 20;
	return pages * (unsigned long long)psz >= (unsigned long long)rl.rlim_cur / 10 * 9;
}

/* Counts a plugin failure; true when the streak says the worker must go. */
static bool
loop_plugin_failed(loop *l, uint32_t stream, uint64_t seq, const char *what, int rc)
{
	unsigned long long used_mb, limit_mb;

	l->l_errors++;
	if (rc == -ENOMEM && loop_near_mem_limit(&used_mb, &limit_mb)) {
		log_error("loop", "plugin out of memory at the worker's limit, exiting "
		          "what=%s stream=%u used_mb=%llu limit_mb=%llu",
		          what, stream, used_mb, limit_mb);
		loop_send_error(l, stream, rc,
		                "plugin %s ran out of memory (%llu of %llu MiB address "
		                "space, --mem-limit-mb): the worker restarts; raise the "
		                "limit or fix the plugin's leak",
		                l->l_plugin->name ? l->l_plugin->name : "?", used_mb,
		                limit_mb);
		return true;
	}
	if (l->l_streak++ == 0)
		log_warn("loop", "plugin error what=%s stream=%u seq=%llu err=%d (%s)",
		         what, stream, (unsigned long long)seq, rc, strerror(rc < 0 ? -rc : EINVAL));
	if (l->l_streak < l->l_cfg.max_errors)
		return false;
	log_error("loop", "plugin failed too often, exiting errors=%u stream=%u last=%d",
	          l->l_streak, stream, rc);
	loop_send_error(l, stream, rc < 0 ? rc : -EINVAL,
	                "plugin %s failed %u times in a row (last %s: %s)",
	                l->l_plugin->name ? l->l_plugin->name : "?", l->l_streak, what,
	                strerror(rc < 0 ? -rc : EINVAL));
	return true;
}

static void
loop_stream_stop(loop *l)
{
	if (!l->l_active)
		return;
	if (l->l_plugin->stream_stop)
		l->l_plugin->stream_stop(host_self(l->l_host));
	l->l_active = false;
	host_set_stream(l->l_host, false, 0);
	log_info("loop", "stream stopped stream=%u frames=%llu", l->l_stream,
	         (unsigned long long)l->l_frames);
}

static void
loop_on_stream_start(loop *l, const struct msg_stream_start *s)
{
	const char *params;
	size_t len;
	int rc;

	if (l->l_active) {
		log_warn("loop", "stream replaced old=%u new=%u", l->l_stream, s->stream);
		loop_stream_stop(l);
	}
	l->l_active = true;
	l->l_stream = s->stream;
	l->l_streak = 0;
	host_set_stream(l->l_host, true, s->stream);
	frame_cuda_stream_started(l->l_cfg.gpu_frames, s->stream);
	log_info("loop", "stream started stream=%u request_id=%.*s size=%ux%u", s->stream,
	         (int)(s->request_id.len > 64 ? 64 : s->request_id.len), s->request_id.ptr,
	         s->width, s->height);
	if (!l->l_plugin->stream_start)
		return;
	params = loop_text(l, s->params, &len);
	if (params && !loop_is_object(params, len)) {
		loop_send_error(l, s->stream, -EINVAL, "stream params are not a JSON object");
		params = "{}";
		len = 2;
	}
	if (!params) {
		params = "{}";
		len = 2;
	}
	rc = l->l_plugin->stream_start(host_self(l->l_host), params, len);
	if (rc < 0) {
		/* As PyTrickle: logged and reported, the stream goes on. */
		log_warn("loop", "stream_start failed stream=%u err=%d", s->stream, rc);
		loop_send_error(l, s->stream, rc, "plugin stream_start failed: %s",
		                strerror(-rc));
	}
}

static int
loop_on_params(loop *l, const struct msg_params *p)
{
	struct msg m = { .type = MSG_PARAMS_ACK };
	const char *text;
	size_t len;
	int rc = 0;

	text = loop_text(l, p->params, &len);
	if (!text)
		rc = -ENOMEM;
	else if (!loop_is_object(text, len))
		rc = -EINVAL;
	else if (l->l_plugin->update_params)
		rc = l->l_plugin->update_params(host_self(l->l_host), text, len);
	if (rc > 0)
		rc = -EINVAL;
	if (rc < 0)
		log_warn("loop", "params refused stream=%u err=%d", p->stream, rc);
	m.u.params_ack.stream = p->stream;
	m.u.params_ack.status = rc;
	return loop_send(l, &m);
}

static int
loop_send_drop(loop *l, const struct msg_frame *f, int reason)
{
	struct msg m = { .type = MSG_DROP };

	m.u.drop.stream = f->stream;
	m.u.drop.seq = f->seq;
	m.u.drop.in_slot = f->in_slot;
	m.u.drop.in_gen = f->in_gen;
	m.u.drop.reason = reason;
	return loop_send(l, &m);
}

/*
 * Checks (slot, gen) of a descriptor: in range (ring_slot_ptr), gen not 0
 * and not older than the newest generation this worker saw for the slot
 * (generations only grow; the gateway alone knows the current one).
 */
static int
loop_slot(loop *l, uint32_t slot, uint32_t gen, uint8_t **base)
{
	uint64_t size;
	int rc = ring_slot_ptr(l->l_ring, slot, gen, base, &size);

	if (rc < 0)
		return rc;
	if (gen < l->l_seen_gen[slot])
		return -ESTALE;
	return 0;
}

/* Fills a view of a frame laid out as lay at base. */
static void
loop_view(struct fp_video_frame *v, const struct msg_frame *f,
          const struct ring_frame *lay, uint8_t *base)
{
	memset(v, 0, sizeof(*v));
	v->struct_size = sizeof(*v);
	v->width = f->width;
	v->height = f->height;
	v->format = f->format;
	v->mem = FP_MEM_HOST;
	v->device = -1;
	for (uint32_t p = 0; p < lay->planes && p < 4; p++) {
		v->plane[p] = base + lay->offset[p];
		v->stride[p] = lay->stride[p];
	}
	v->pts = f->pts;
	v->tb_num = f->tb_num;
	v->tb_den = f->tb_den;
	v->seq = f->seq;
}

/*
 * Validates what the plugin left in out (FP_OK) and moves its planes into the
 * canonical layout of its size (ring_frame_layout, into *olay) when they are
 * elsewhere; base is the memory the output view lies in (the output slot, or
 * the GPU path's staging), a device pointer when frame_cuda_out_on_device.
 * Returns 0, -EINVAL (format changed, planes outside the slot), -ERANGE
 * (size beyond the slot's maximum), or -EIO/-ENOMEM of a device move.
 */
static int
loop_finish_out(loop *l, struct fp_video_frame *o, uint32_t in_format, uint8_t *base,
                struct ring_frame *olay)
{
	struct ring_frame lay;
	bool same = true, inplace = true;
	uintptr_t lo = (uintptr_t)base, hi = lo + l->l_slot_bytes;
	int rc;

	if (o->format != in_format)
		return -EINVAL;
	if (o->width == 0 || o->height == 0 || o->width > l->l_max_width ||
	    o->height > l->l_max_height)
		return -ERANGE;
	rc = ring_frame_layout(o->format, o->width, o->height, l->l_slot_bytes, &lay);
	if (rc < 0)
		return rc == -E2BIG ? -ERANGE : rc;
	for (uint32_t p = 0; p < lay.planes; p++) {
		uintptr_t s = (uintptr_t)o->plane[p];
		uint64_t need;

		if (o->stride[p] < lay.row_bytes[p] || s < lo || s >= hi)
			return -EINVAL;
		need = (uint64_t)o->stride[p] * (lay.rows[p] - 1) + lay.row_bytes[p];
		if (need > hi - s)
			return -EINVAL;
		if (s != lo + lay.offset[p] || o->stride[p] != lay.stride[p])
			same = false;
		/* Moving rows forward in place is safe when no destination lies past its source. */
		if (s < lo + lay.offset[p] || o->stride[p] < lay.stride[p])
			inplace = false;
	}
	*olay = lay;
	if (same)
		return 0;
	if (frame_cuda_out_on_device(l->l_cfg.gpu_frames)) {
		/* Device planes: device-to-device copies, never memmove. */
		rc = frame_cuda_move(l->l_cfg.gpu_frames, o, &lay, base);
		if (rc < 0)
			return rc;
		goto out_set;
	}
	if (!inplace && !l->l_scratch) {
		l->l_scratch = malloc(l->l_slot_bytes);
		if (!l->l_scratch)
			return -ENOMEM;
	}
	for (uint32_t p = 0; p < lay.planes; p++) {
		uint8_t *dst = (inplace ? base : l->l_scratch) + lay.offset[p];

		for (uint32_t y = 0; y < lay.rows[p]; y++)
			memmove(dst + (size_t)y * lay.stride[p],
			        o->plane[p] + (size_t)y * o->stride[p], lay.row_bytes[p]);
	}
	if (!inplace)
		memcpy(base, l->l_scratch, lay.bytes);
out_set:
	for (uint32_t p = 0; p < lay.planes; p++) {
		o->plane[p] = base + lay.offset[p];
		o->stride[p] = lay.stride[p];
	}
	return 0;
}

/* Returns a WORKER_EXIT_* status when the loop must end, else -1. */
static int
loop_on_frame(loop *l, const struct msg_frame *f)
{
	struct fp_video_frame in, out;
	struct ring_frame lay, olay;
	uint8_t *in_base, *out_base, *work;
	frame_cuda *fc = l->l_cfg.gpu_frames;
	struct msg m = { .type = MSG_RESULT };
	int64_t t0 = clock_now_ns();
	int rc, grc;

	if (!l->l_active || f->stream != l->l_stream)
		rc = -ENOTCONN;
	else if (f->format != l->l_plugin->wants.video_format || f->tb_den == 0)
		rc = -EINVAL;
	else if ((rc = ring_frame_layout(f->format, f->width, f->height, l->l_slot_bytes,
	                                 &lay)) == 0 &&
	         (rc = loop_slot(l, f->in_slot, f->in_gen, &in_base)) == 0)
		rc = loop_slot(l, f->out_slot, f->out_gen, &out_base);
	if (rc < 0) {
		l->l_bad++;
		if ((l->l_bad & (l->l_bad - 1)) == 0) /* the 1st, 2nd, 4th, 8th... */
			log_warn("loop", "bad frame descriptor stream=%u seq=%llu err=%d (%s) "
			         "in=%u/%u out=%u/%u size=%ux%u format=%u count=%llu",
			         f->stream, (unsigned long long)f->seq, rc, strerror(-rc),
			         f->in_slot, f->in_gen, f->out_slot, f->out_gen, f->width,
			         f->height, f->format, (unsigned long long)l->l_bad);
		return loop_send_drop(l, f, rc) == 0 ? -1 : WORKER_EXIT_FAILED;
	}
	l->l_seen_gen[f->in_slot] = f->in_gen;
	if (f->out_gen > l->l_seen_gen[f->out_slot])
		l->l_seen_gen[f->out_slot] = f->out_gen;
	ring_sync(l->l_ring, f->in_slot, RING_SYNC_FROM_PEER);
	loop_view(&in, f, &lay, in_base);
	loop_view(&out, f, &lay, out_base);
	out.max_width = l->l_max_width;
	out.max_height = l->l_max_height;
	loop_fence(l, f, true);
	work = out_base;
	if (fc && (grc = frame_cuda_views(fc, &lay, in_base, out_base, &in, &out,
	                                  &work)) < 0) {
		loop_fence(l, f, false);
		log_error("loop", "gpu frame copy failed stream=%u seq=%llu err=%s; "
		          "exiting", f->stream, (unsigned long long)f->seq, strerror(-grc));
		loop_send_drop(l, f, grc);
		return WORKER_EXIT_FAILED;
	}
	rc = l->l_plugin->process_video(host_self(l->l_host), &in, &out);
	if (rc == FP_OK)
		rc = loop_finish_out(l, &out, f->format, work, &olay);
	else if (rc > FP_PASS)
		rc = -EINVAL;
	/* Every call ends with the stream drained: nothing stays in flight on a slot. */
	if (fc && (grc = frame_cuda_finish(fc, rc == FP_OK ? &olay : NULL, out_base)) < 0) {
		loop_fence(l, f, false);
		log_error("loop", "gpu stream failed after process_video stream=%u seq=%llu "
		          "err=%s; exiting (the CUDA context is likely lost)", f->stream,
		          (unsigned long long)f->seq, strerror(-grc));
		loop_send_drop(l, f, grc);
		return WORKER_EXIT_PLUGIN;
	}
	loop_fence(l, f, false);
	if (rc < 0) {
		if (loop_send_drop(l, f, rc) < 0)
			return WORKER_EXIT_FAILED;
		return loop_plugin_failed(l, f->stream, f->seq, "process_video", rc) ?
		       WORKER_EXIT_PLUGIN : -1;
	}
	l->l_streak = 0;
	if (rc == FP_DROP)
		return loop_send_drop(l, f, 0) == 0 ? -1 : WORKER_EXIT_FAILED;
	m.u.result.stream = f->stream;
	m.u.result.seq = f->seq;
	m.u.result.pts = f->pts;
	m.u.result.status = (uint32_t)rc;
	if (rc == FP_PASS) {
		/* The input slot is the result: no copy (docs/plugins.md). */
		m.u.result.width = f->width;
		m.u.result.height = f->height;
		m.u.result.format = f->format;
		m.u.result.out_slot = f->in_slot;
		m.u.result.out_gen = f->in_gen;
	} else {
		ring_sync(l->l_ring, f->out_slot, RING_SYNC_TO_PEER);
		m.u.result.width = out.width;
		m.u.result.height = out.height;
		m.u.result.format = out.format;
		m.u.result.out_slot = f->out_slot;
		m.u.result.out_gen = f->out_gen;
	}
	m.u.result.proc_us = (uint32_t)((clock_now_ns() - t0) / 1000);
	l->l_frames++;
	return loop_send(l, &m) == 0 ? -1 : WORKER_EXIT_FAILED;
}

/* Sends AUDIO_OUT with the input's data (FP_PASS, or a plugin without audio). */
static int
loop_audio_echo(loop *l, const struct msg_audio *a, bool empty)
{
	struct msg m = { .type = MSG_AUDIO_OUT };

	m.u.audio_out.stream = a->stream;
	m.u.audio_out.seq = a->seq;
	m.u.audio_out.pts = a->pts;
	m.u.audio_out.tb_num = a->tb_num;
	m.u.audio_out.tb_den = a->tb_den;
	m.u.audio_out.sample_rate = a->sample_rate;
	m.u.audio_out.channels = a->channels;
	m.u.audio_out.format = a->format;
	m.u.audio_out.nb_samples = empty ? 0 : a->nb_samples;
	if (!empty)
		m.u.audio_out.data = a->data;
	return loop_send(l, &m);
}

/* Returns a WORKER_EXIT_* status when the loop must end, else -1. */
static int
loop_on_audio(loop *l, const struct msg_audio *a)
{
	uint32_t bps = loop_sample_bytes(a->format), obps = 0, per, ochan;
	const uint8_t *src;
	struct fp_audio_frame in = { .struct_size = sizeof(in) };
	struct fp_audio_frame out = { .struct_size = sizeof(out) };
	uint8_t *odata[8] = { 0 };
	struct msg m = { .type = MSG_AUDIO_OUT };
	bool planar = loop_sample_planar(a->format);
	uint64_t bytes;
	int rc;

	bytes = (uint64_t)a->nb_samples * a->channels * bps;
	if (!l->l_active || a->stream != l->l_stream || bps == 0 || a->channels == 0 ||
	    a->channels > 8 || a->sample_rate == 0 || a->tb_den == 0 ||
	    bytes != a->data.len) {
		log_warn("loop", "bad audio descriptor stream=%u seq=%llu channels=%u format=%u "
		         "nb_samples=%u bytes=%u", a->stream, (unsigned long long)a->seq,
		         a->channels, a->format, a->nb_samples, a->data.len);
		return loop_send_error(l, a->stream, -EINVAL, "bad AUDIO descriptor seq=%llu",
		                       (unsigned long long)a->seq) == 0 ? -1 : WORKER_EXIT_FAILED;
	}
	if (!l->l_plugin->process_audio) {
		if (!l->l_warned_audio)
			log_warn("loop", "AUDIO for a plugin without process_audio; passed through");
		l->l_warned_audio = true;
		return loop_audio_echo(l, a, false) == 0 ? -1 : WORKER_EXIT_FAILED;
	}
	in.sample_rate = a->sample_rate;
	in.channels = a->channels;
	in.format = a->format;
	in.nb_samples = a->nb_samples;
	in.pts = a->pts;
	in.tb_num = a->tb_num;
	in.tb_den = a->tb_den;
	/* Samples start wherever msgpack put them: realign for the plugin's loads. */
	src = a->data.ptr;
	if ((uintptr_t)src % 16) {
		memcpy(l->l_ain, src, a->data.len);
		src = l->l_ain;
	}
	per = planar ? (uint32_t)(bytes / a->channels) : 0;
	for (uint32_t c = 0; c < (planar ? a->channels : 1); c++)
		in.data[c] = (uint8_t *)(uintptr_t)(src + (size_t)c * per);
	ochan = (l->l_acap / a->channels) & ~63u; /* per-channel room, 64-byte aligned */
	out = in;
	memset(out.data, 0, sizeof(out.data));
	out.capacity = l->l_acap;
	for (uint32_t c = 0; c < (planar ? a->channels : 1); c++)
		odata[c] = out.data[c] = l->l_abuf + (size_t)c * ochan;
	rc = l->l_plugin->process_audio(host_self(l->l_host), &in, &out);
	if (rc == FP_OK) {
		obps = loop_sample_bytes(out.format);
		bytes = (uint64_t)out.nb_samples * out.channels * obps;
		if (obps == 0 || out.channels == 0 || out.sample_rate == 0 ||
		    bytes > l->l_acap || (loop_sample_planar(out.format) &&
		    (out.channels > a->channels || !planar ||
		     (uint64_t)out.nb_samples * obps > ochan)))
			rc = -EINVAL;
	} else if (rc > FP_PASS) {
		rc = -EINVAL;
	}
	if (rc < 0) {
		if (loop_audio_echo(l, a, true) < 0)
			return WORKER_EXIT_FAILED;
		return loop_plugin_failed(l, a->stream, a->seq, "process_audio", rc) ?
		       WORKER_EXIT_PLUGIN : -1;
	}
	l->l_streak = 0;
	if (rc != FP_OK)
		return loop_audio_echo(l, a, rc == FP_DROP) == 0 ? -1 : WORKER_EXIT_FAILED;
	if (loop_sample_planar(out.format)) {
		/* Pack the planes back to back (each destination is at or before its source). */
		per = out.nb_samples * obps;
		for (uint32_t c = 1; c < out.channels; c++)
			memmove(l->l_abuf + (size_t)c * per, odata[c], per);
	}
	m.u.audio_out.stream = a->stream;
	m.u.audio_out.seq = a->seq;
	m.u.audio_out.pts = out.pts;
	m.u.audio_out.tb_num = out.tb_num;
	m.u.audio_out.tb_den = out.tb_den;
	m.u.audio_out.sample_rate = out.sample_rate;
	m.u.audio_out.channels = out.channels;
	m.u.audio_out.format = out.format;
	m.u.audio_out.nb_samples = out.nb_samples;
	/* The bytes are where the worker's buffer was handed out; moved pointers are ignored. */
	m.u.audio_out.data.ptr = l->l_abuf;
	m.u.audio_out.data.len = (uint32_t)bytes;
	return loop_send(l, &m) == 0 ? -1 : WORKER_EXIT_FAILED;
}

/* True when the process that started us is gone (we were re-parented). */
static bool
loop_orphaned(const loop *l)
{
	return l->l_cfg.parent_pid > 0 && getppid() != l->l_cfg.parent_pid;
}

/* Handles one decoded message. Returns a WORKER_EXIT_* status to end, else -1. */
static int
loop_dispatch(loop *l, const struct msg *m)
{
	struct msg r = { 0 };

	switch (m->type) {
	case MSG_STREAM_START:
		loop_on_stream_start(l, &m->u.stream_start);
		return -1;
	case MSG_STREAM_STOP:
		if (l->l_active && m->u.stream_stop.stream == l->l_stream)
			loop_stream_stop(l);
		else
			log_debug("loop", "STREAM_STOP for a stream not served stream=%u",
			          m->u.stream_stop.stream);
		return -1;
	case MSG_FRAME:
		return loop_on_frame(l, &m->u.frame);
	case MSG_AUDIO:
		return loop_on_audio(l, &m->u.audio);
	case MSG_PARAMS:
		return loop_on_params(l, &m->u.params) == 0 ? -1 : WORKER_EXIT_FAILED;
	case MSG_PING:
		r.type = MSG_PONG;
		r.u.pong.nonce = m->u.ping.nonce;
		r.u.pong.t_ns = m->u.ping.t_ns;
		r.u.pong.frames = l->l_frames;
		return loop_send(l, &r) == 0 ? -1 : WORKER_EXIT_FAILED;
	case MSG_SHUTDOWN:
		log_info("loop", "shutdown reason=%.*s",
		         (int)(m->u.shutdown.reason.len > 200 ? 200 : m->u.shutdown.reason.len),
		         m->u.shutdown.reason.ptr);
		loop_stream_stop(l);
		return WORKER_EXIT_OK;
	default:
		log_warn("loop", "unexpected message type=%s", msg_type_name(m->type));
		loop_send_error(l, 0, -EPROTO, "unexpected message %s", msg_type_name(m->type));
		return -1;
	}
}

int
loop_run(loop *l)
{
	struct msg m;
	nng_msg *nm;
	int rc, ex;

	for (;;) {
		if (l->l_cfg.stop_flag && *l->l_cfg.stop_flag) {
			log_info("loop", "stop signal: finishing");
			loop_stream_stop(l);
			return WORKER_EXIT_OK;
		}
		rc = ipc_recv_msg(l->l_ipc, &nm, LOOP_POLL_MS);
		if (rc == -ETIMEDOUT || rc == -EAGAIN || rc == -EINTR) {
			if (loop_orphaned(l)) {
				log_error("loop", "parent gone, exiting");
				return WORKER_EXIT_FAILED;
			}
			continue;
		}
		if (rc < 0) {
			log_error("loop", "receive failed err=%s", strerror(-rc));
			return WORKER_EXIT_FAILED;
		}
		rc = msg_decode(nng_msg_body(nm), nng_msg_len(nm), &m);
		if (rc < 0) {
			log_warn("loop", "undecodable message bytes=%zu err=%d", nng_msg_len(nm), rc);
			loop_send_error(l, 0, rc, "undecodable message (%zu bytes)", nng_msg_len(nm));
			nng_msg_free(nm);
			continue;
		}
		ex = loop_dispatch(l, &m);
		nng_msg_free(nm);
		if (ex >= 0)
			return ex;
	}
}

uint64_t
loop_frames(const loop *l)
{
	return l->l_frames;
}

void
loop_destroy(loop **p)
{
	loop *l = *p;

	if (!l)
		return;
	host_set_sink(l->l_host, NULL, NULL);
	pthread_mutex_destroy(&l->l_send_lock);
	free(l->l_scratch);
	free(l->l_text);
	free(l->l_ain);
	free(l->l_abuf);
	free(l->l_sbuf);
	free(l->l_seen_gen);
	free(l);
	*p = NULL;
}
