/*
 * Worker pool supervisor: the process table, spawning (via workerproc),
 * pidfd (or SIGCHLD) death events, reaping, restart backoff, heartbeat and
 * deadline timers, the pool API and orderly shutdown. Messages are in
 * supervisor_ipc.c. Does not own streams, ring slots or frames: the owner
 * hears on_death and reclaims. Loop thread only; no locks.
 */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "supervisor_int.h"
#include "workerproc.h"
#include "worker_exit.h"

#define SUP_READY_STABLE_NS 1000000000LL /* READY this long: not a start-up crash */

static const char *const sup_state_names[] = {"starting", "loading", "idle",
                                              "busy", "dead"};

const char *
supervisor_state_name(enum supervisor_state st)
{
	if ((unsigned)st >=
	    sizeof(sup_state_names) / sizeof(sup_state_names[0]))
		return "unknown";
	return sup_state_names[st];
}

static unsigned
sup_def(unsigned v, unsigned def)
{
	return v ? v : def;
}

/* ---- killing and reaping ------------------------------------------------ */

/* SIGKILL to w's whole group; on_death follows from the reap. */
int
supervisor_kill_worker(struct sup_worker *w, const char *reason)
{
	if (w->w_pid <= 0 || w->w_killed)
		return -ESRCH;
	workerproc_kill(w->w_pid);
	w->w_killed = true;
	w->w_kill_ns = clock_now_ns();
	snprintf(w->w_kill_reason, sizeof(w->w_kill_reason), "%s", reason);
	evtimer_del(w->w_ev_timer);
	if (!w->w_sup->s_closing)
		log_warn(SUP_MOD,
		         "killing worker process group worker=%d pid=%d gen=%u "
		         "reason=\"%s\"",
		         w->w_id, w->w_pid, w->w_gen, reason);
	return 0;
}

/* Frees what belonged to the process that just ended. */
static void
sup_teardown_proc(struct sup_worker *w)
{
	if (w->w_ev_pid) {
		event_free(w->w_ev_pid);
		w->w_ev_pid = NULL;
	}
	if (w->w_pidfd >= 0) {
		close(w->w_pidfd);
		w->w_pidfd = -1;
	}
	workerconn_destroy(&w->w_conn);
	evtimer_del(w->w_ev_timer);
	w->w_pid = 0;
	w->w_nops = 0;
}

/* 0 for the first death in a row, then backoff_min doubling to backoff_max. */
static int64_t
sup_backoff_ms(const supervisor *s, unsigned crashes)
{
	int64_t d;

	if (crashes <= 1)
		return 0;
	if (crashes - 2 >= 20)
		return s->s_cfg.backoff_max_ms;
	d = (int64_t)s->s_cfg.backoff_min_ms << (crashes - 2);
	return d > s->s_cfg.backoff_max_ms ? s->s_cfg.backoff_max_ms : d;
}

/* Wall-clock microseconds of the monotonic instant mono_ns (log lines that
   outside tools compare with their own wall clock). */
static int64_t
sup_wall_us_at(int64_t mono_ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 -
	       (clock_now_ns() - mono_ns) / 1000;
}

/* True when fd and the ring w was last given are the same memfd. */
static bool
sup_same_ring(int a, int b)
{
	struct stat sa, sb;

	return a >= 0 && b >= 0 && fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * w exited WORKER_EXIT_GPU_RING: unless its GPU already served a stream,
 * asks the owner for the ring that GPU's workers get instead (a host ring),
 * hands it to every worker slot of the GPU and kills the live ones, which
 * still map the old ring, so they respawn on the new one. Returns true when
 * the GPU switched (w is then respawned at once, not as a crash).
 */
static bool
sup_ring_switch(struct sup_worker *w, const char *why)
{
	supervisor *s = w->w_sup;
	int gpu = w->w_gpu, fd = -1, nfd;

	if (gpu < 0 || !s->s_cfg.ring_fallback)
		return false;
	for (int i = 0; i < s->s_n; i++) {
		if (s->s_w[i].w_gpu == gpu && s->s_w[i].w_served) {
			log_error(SUP_MOD, "worker cannot open its GPU's CUDA ring, "
			          "but the GPU already served streams: respawned as "
			          "after a crash worker=%d gpu=%d", w->w_id, gpu);
			return false;
		}
	}
	if (s->s_cfg.ring_fallback(s->s_cfg.ring_fallback_arg, gpu, why,
	                           &fd) < 0 || fd < 0 ||
	    sup_same_ring(fd, w->w_ring_fd))
		return false;
	for (int i = 0; i < s->s_n; i++) {
		struct sup_worker *o = &s->s_w[i];

		if (o->w_gpu != gpu)
			continue;
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, WORKERPROC_RING_FD + 1);
		if (nfd < 0) {
			log_error(SUP_MOD, "cannot hand the new ring to a worker "
			          "worker=%d err=%s", o->w_id, strerror(errno));
			continue;
		}
		if (o->w_ring_fd >= 0)
			close(o->w_ring_fd);
		o->w_ring_fd = nfd;
		if (o != w && o->w_pid > 0)
			supervisor_kill_worker(o, "its GPU switched to a host ring");
	}
	log_warn(SUP_MOD, "GPU switched to a host ring: its workers are "
	         "respawned on it gpu=%d worker=%d", gpu, w->w_id);
	return true;
}

static void
sup_reaped(struct sup_worker *w, int code, int sig, int64_t now)
{
	supervisor *s = w->w_sup;
	struct supervisor_death d;
	char reason[160];
	int64_t uptime_ms = (now - w->w_spawn_ns) / 1000000;
	unsigned in_flight = 0;

	/* What it said before dying still counts (e.g. its fatal ERROR). */
	if (w->w_conn && !w->w_killed)
		workerconn_drain(w->w_conn);
	for (unsigned i = 0; i < w->w_nops; i++)
		in_flight += w->w_ops[i].kind == SUP_OP_FRAME;
	memset(&d, 0, sizeof(d));
	d.worker = w->w_id;
	d.pid = w->w_pid;
	d.generation = w->w_gen;
	d.exit_code = code;
	d.signal = sig;
	d.killed = w->w_killed;
	d.detected_ns = w->w_killed ? w->w_kill_ns : now;
	d.had_stream = w->w_has_stream;
	d.stream = w->w_stream;
	d.frames_in_flight = in_flight;
	d.respawn_ms = -1;
	d.gpu = w->w_gpu;
	d.gpu_ring = !w->w_killed && code == WORKER_EXIT_GPU_RING;
	if (w->w_killed)
		snprintf(reason, sizeof(reason), "%s", w->w_kill_reason);
	else if (code == WORKER_EXIT_CONFIG)
		snprintf(reason, sizeof(reason),
		         "exit 2 (fatal configuration)%s%s",
		         w->w_err_msg[0] ? ": " : "", w->w_err_msg);
	else if (code == WORKER_EXIT_INIT)
		snprintf(reason, sizeof(reason), "exit 3 (init failed)%s%s",
		         w->w_err_msg[0] ? ": " : "", w->w_err_msg);
	else if (code == WORKER_EXIT_GPU_RING)
		snprintf(reason, sizeof(reason),
		         "exit 5 (no CUDA ring)%s%.100s",
		         w->w_err_msg[0] ? ": " : "", w->w_err_msg);
	else if (code >= 0)
		snprintf(reason, sizeof(reason), "exit %d", code);
	else
		snprintf(reason, sizeof(reason), "signal %d (%s)", sig,
		         sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	d.reason = reason;
	sup_teardown_proc(w);
	supervisor_set_state(w, SUPERVISOR_DEAD);
	snprintf(w->w_last_error, sizeof(w->w_last_error), "%s", reason);
	w->w_has_stream = false;
	w->w_had_prev = false;
	if (s->s_closing) {
		log_debug(SUP_MOD,
		          "worker exited worker=%d pid=%d reason=\"%s\"",
		          w->w_id, d.pid, reason);
		return;
	}
	if (!w->w_killed && code == WORKER_EXIT_CONFIG) {
		w->w_fatal = true;
		d.fatal = true;
		log_error(SUP_MOD,
		          "worker exited with a fatal configuration error, not "
		          "respawned worker=%d pid=%d",
		          w->w_id, d.pid);
		if (supervisor_failed(s))
			log_error(SUP_MOD,
			          "no worker can serve: the pool has failed "
			          "workers=%d",
			          s->s_n);
	} else if (d.gpu_ring && sup_ring_switch(w, reason)) {
		struct timeval now_tv = { 0, 0 };

		d.ring_switched = true;
		d.respawn_ms = 0;
		w->w_crashes = 0;
		evtimer_add(w->w_ev_respawn, &now_tv);
	} else {
		struct timeval tv;

		/* A worker that got ready and served a while was killed from
		   outside or by its input, not by a start-up fault: respawn at
		   once, so the pool has a warm spare again. Poison input is
		   bounded by the per-stream crash budget instead. */
		if (uptime_ms >= s->s_cfg.stable_ms ||
		    (!w->w_killed && w->w_ready_ns &&
		     now - w->w_ready_ns >= SUP_READY_STABLE_NS))
			w->w_crashes = 0;
		w->w_crashes++;
		d.respawn_ms = sup_backoff_ms(s, w->w_crashes);
		tv.tv_sec = d.respawn_ms / 1000;
		tv.tv_usec = (d.respawn_ms % 1000) * 1000;
		evtimer_add(w->w_ev_respawn, &tv);
		log_warn(
		    SUP_MOD,
		    "worker died worker=%d pid=%d gen=%u reason=\"%s\" "
		    "uptime_ms=%lld respawn_ms=%lld stream=%d in_flight=%u "
		    "detected_us=%lld",
		    w->w_id, d.pid, d.generation, reason, (long long)uptime_ms,
		    (long long)d.respawn_ms, d.had_stream ? (int)d.stream : -1,
		    in_flight, (long long)sup_wall_us_at(now));
	}
	if (s->s_cfg.cb.on_death)
		s->s_cfg.cb.on_death(s->s_cfg.cb_arg, &d);
}

static void
sup_check_reap(struct sup_worker *w)
{
	int64_t now = clock_now_ns();
	int code, sig;

	if (w->w_pid > 0 && workerproc_reap(w->w_pid, &code, &sig))
		sup_reaped(w, code, sig, now);
}

static void
sup_on_pidfd(evutil_socket_t fd, short what, void *arg)
{
	sup_check_reap(arg);
}

static void
sup_on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	supervisor *s = arg;

	for (int i = 0; i < s->s_n; i++)
		if (s->s_w[i].w_pidfd < 0)
			sup_check_reap(&s->s_w[i]);
}

/* Turns on the SIGCHLD path (no pidfd for some worker). */
static int
sup_enable_sigchld(supervisor *s)
{
	if (s->s_ev_sigchld)
		return 0;
	s->s_ev_sigchld = evsignal_new(s->s_base, SIGCHLD, sup_on_sigchld, s);
	if (!s->s_ev_sigchld)
		return -ENOMEM;
	if (event_add(s->s_ev_sigchld, NULL) != 0) {
		event_free(s->s_ev_sigchld);
		s->s_ev_sigchld = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

int
supervisor_send(supervisor *s, int worker, const struct msg *m)
{
	struct sup_worker *w;
	uint8_t kind = 0;
	unsigned need = 0;
	uint32_t stream = 0;
	int rv;

	if (!s || !m || worker < 0 || worker >= s->s_n)
		return -EINVAL;
	if (m->type <= MSG_NONE || m->type >= MSG_TYPE_END ||
	    msg_is_from_worker(m->type) || m->type == MSG_PING)
		return -EINVAL;
	w = &s->s_w[worker];
	if (s->s_closing || w->w_pid <= 0 || w->w_killed)
		return -ENOTCONN;
	if (m->type == MSG_SHUTDOWN) {
		if (w->w_state == SUPERVISOR_STARTING)
			return -ENOTCONN;
	} else if (w->w_state != SUPERVISOR_IDLE &&
	           w->w_state != SUPERVISOR_BUSY) {
		return -ENOTCONN;
	}
	switch (m->type) {
	case MSG_STREAM_START:
		if (w->w_state != SUPERVISOR_IDLE)
			return -EBUSY;
		kind = SUP_OP_START;
		stream = m->u.stream_start.stream;
		need = 2;
		break;
	case MSG_STREAM_STOP:
		stream = m->u.stream_stop.stream;
		if (!w->w_has_stream || stream != w->w_stream)
			return -EINVAL;
		kind = SUP_OP_STOP;
		need = 2;
		break;
	case MSG_FRAME:
		stream = m->u.frame.stream;
		kind = SUP_OP_FRAME;
		need = 1;
		break;
	case MSG_PARAMS:
		stream = m->u.params.stream;
		kind = SUP_OP_PARAMS;
		need = 1;
		break;
	case MSG_AUDIO:
		stream = m->u.audio.stream;
		break;
	default:
		break;
	}
	if ((m->type == MSG_FRAME || m->type == MSG_PARAMS ||
	     m->type == MSG_AUDIO) &&
	    (!w->w_has_stream || stream != w->w_stream))
		return -EINVAL;
	if (w->w_nops + need > SUP_MAX_OPS)
		return -ENOBUFS;
	if ((rv = supervisor_ipc_send(s, w, m)) != 0)
		return rv;
	if (need)
		supervisor_ipc_push_op(
		    w, kind, stream, kind == SUP_OP_FRAME ? m->u.frame.seq : 0);
	if (m->type == MSG_STREAM_START) {
		w->w_served = true;
		w->w_has_stream = true;
		w->w_stream = stream;
		supervisor_set_state(w, SUPERVISOR_BUSY);
		supervisor_ipc_ping(
		    w); /* fence: its PONG says stream_start() returned */
	} else if (m->type == MSG_STREAM_STOP) {
		w->w_has_stream = false;
		w->w_had_prev = true;
		w->w_prev_stream = stream;
		supervisor_set_state(w, SUPERVISOR_IDLE);
		supervisor_ipc_ping(w);
	}
	if (need)
		supervisor_arm(w);
	return 0;
}

/* ---- timers ------------------------------------------------------------- */

static int64_t
sup_op_deadline_ns(const supervisor *s, uint8_t kind)
{
	unsigned ms;

	switch (kind) {
	case SUP_OP_FRAME:
		ms = s->s_cfg.frame_deadline_ms;
		break;
	case SUP_OP_PARAMS:
		ms = s->s_cfg.params_deadline_ms;
		break;
	case SUP_OP_START:
	case SUP_OP_STOP:
		ms = s->s_cfg.start_deadline_ms;
		break;
	default:
		ms = s->s_cfg.hang_ms;
		break;
	}
	return (int64_t)ms * 1000000;
}

/* The next instant the timer must look at w, or -1 for none. */
static int64_t
sup_next_ns(const struct sup_worker *w)
{
	const supervisor *s = w->w_sup;

	if (w->w_pid <= 0 || w->w_killed)
		return -1;
	if (s->s_closing)
		return s->s_close_deadline_ns;
	switch (w->w_state) {
	case SUPERVISOR_STARTING:
		return w->w_spawn_ns + (int64_t)s->s_cfg.hello_ms * 1000000;
	case SUPERVISOR_LOADING:
		return w->w_state_ns + (int64_t)s->s_cfg.ready_ms * 1000000;
	case SUPERVISOR_IDLE:
	case SUPERVISOR_BUSY:
		if (w->w_nops)
			return w->w_op_base_ns +
			       sup_op_deadline_ns(s, w->w_ops[0].kind);
		return w->w_ping_ns + (int64_t)s->s_cfg.ping_ms * 1000000;
	default:
		return -1;
	}
}

void
supervisor_arm(struct sup_worker *w)
{
	int64_t at = sup_next_ns(w), d;
	struct timeval tv;

	evtimer_del(w->w_ev_timer);
	if (at < 0)
		return;
	d = at - clock_now_ns();
	if (d < 0)
		d = 0;
	tv.tv_sec = d / 1000000000;
	tv.tv_usec = (d % 1000000000) / 1000 + 1;
	evtimer_add(w->w_ev_timer, &tv);
}

static void
sup_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sup_worker *w = arg;
	supervisor *s = w->w_sup;
	int64_t now = clock_now_ns(), at = sup_next_ns(w);
	char reason[96];

	if (at < 0)
		return;
	if (now < at) {
		supervisor_arm(w);
		return;
	}
	if (s->s_closing) {
		supervisor_kill_worker(w, "no exit after SHUTDOWN");
		return;
	}
	switch (w->w_state) {
	case SUPERVISOR_STARTING:
		snprintf(reason, sizeof(reason), "no HELLO in %u ms",
		         s->s_cfg.hello_ms);
		supervisor_kill_worker(w, reason);
		return;
	case SUPERVISOR_LOADING:
		snprintf(reason, sizeof(reason), "no READY (init) in %u ms",
		         s->s_cfg.ready_ms);
		supervisor_kill_worker(w, reason);
		return;
	default:
		break;
	}
	if (w->w_nops == 0) {
		supervisor_ipc_ping(w);
		supervisor_arm(w);
		return;
	}
	switch (w->w_ops[0].kind) {
	case SUP_OP_FRAME:
		snprintf(reason, sizeof(reason),
		         "frame deadline %u ms exceeded stream=%u seq=%llu",
		         s->s_cfg.frame_deadline_ms, w->w_ops[0].stream,
		         (unsigned long long)w->w_ops[0].key);
		break;
	case SUP_OP_PARAMS:
		snprintf(reason, sizeof(reason),
		         "params deadline %u ms exceeded stream=%u",
		         s->s_cfg.params_deadline_ms, w->w_ops[0].stream);
		break;
	case SUP_OP_START:
	case SUP_OP_STOP:
		snprintf(reason, sizeof(reason),
		         "stream %s deadline %u ms exceeded stream=%u",
		         w->w_ops[0].kind == SUP_OP_START ? "start" : "stop",
		         s->s_cfg.start_deadline_ms, w->w_ops[0].stream);
		break;
	default:
		snprintf(reason, sizeof(reason), "hung: no PONG in %u ms",
		         s->s_cfg.hang_ms);
		break;
	}
	supervisor_kill_worker(w, reason);
}

/* ---- spawning ----------------------------------------------------------- */

/* Watches w's exit through a pidfd, else through SIGCHLD. */
static void
sup_watch(struct sup_worker *w)
{
	supervisor *s = w->w_sup;

	w->w_pidfd = s->s_use_pidfd ? workerproc_pidfd(w->w_pid) : -1;
	if (w->w_pidfd >= 0) {
		w->w_ev_pid = event_new(s->s_base, w->w_pidfd,
		                        EV_READ | EV_PERSIST, sup_on_pidfd, w);
		if (w->w_ev_pid && event_add(w->w_ev_pid, NULL) == 0)
			return;
		if (w->w_ev_pid)
			event_free(w->w_ev_pid);
		w->w_ev_pid = NULL;
		close(w->w_pidfd);
		w->w_pidfd = -1;
	}
	if (s->s_use_pidfd)
		log_warn(SUP_MOD,
		         "no pidfd for worker, using SIGCHLD worker=%d pid=%d",
		         w->w_id, w->w_pid);
	if (sup_enable_sigchld(s) < 0)
		log_error(SUP_MOD, "cannot watch worker exits worker=%d",
		          w->w_id);
}

static int
sup_spawn(struct sup_worker *w)
{
	supervisor *s = w->w_sup;
	struct workerproc_spec sp;
	char url[PATH_MAX];
	pid_t pid;
	int rv;

	w->w_gen++;
	snprintf(url, sizeof(url), "ipc://%s/w%d-%u.ipc", s->s_ipc_dir, w->w_id,
	         w->w_gen);
	rv = workerconn_create(&w->w_conn, s->s_base, url, SUP_MAX_RECV,
	                       supervisor_ipc_on_msg, w);
	if (rv < 0)
		return rv;
	sp = (struct workerproc_spec){
	    .path = s->s_worker_path,
	    .id = w->w_id,
	    .url = url,
	    .ring_fd = w->w_ring_fd,
	    .processor = s->s_processor,
	    .processor_config = s->s_pconfig,
	    .gpu = w->w_gpu,
	    .log_level = s->s_log_level,
	    .mem_limit_mb = s->s_cfg.mem_limit_mb,
	    .parent = s->s_self,
	};
	if ((rv = workerproc_spawn(&sp, &pid)) < 0) {
		workerconn_destroy(&w->w_conn);
		return rv;
	}
	w->w_pid = pid;
	w->w_last_pid = pid;
	w->w_killed = false;
	w->w_violations = 0;
	w->w_nops = 0;
	w->w_plugin[0] = '\0';
	w->w_err_msg[0] = '\0';
	w->w_spawn_ns = clock_now_ns();
	w->w_ready_ns = 0;
	if (w->w_gen > 1)
		w->w_restarts++;
	supervisor_set_state(w, SUPERVISOR_STARTING);
	sup_watch(w);
	if (w->w_pidfd < 0) {
		/* It may have died before SIGCHLD was watched. */
		sup_check_reap(w);
		if (w->w_pid <= 0)
			return 0;
	}
	supervisor_arm(w);
	log_info(SUP_MOD, "worker spawned worker=%d pid=%d gen=%u gpu=%d",
	         w->w_id, pid, w->w_gen, w->w_gpu);
	return 0;
}

/* Spawns w; a failure counts as a crash and is retried after the backoff. */
static void
sup_spawn_or_retry(struct sup_worker *w)
{
	supervisor *s = w->w_sup;
	int rv = sup_spawn(w);
	int64_t ms;
	struct timeval tv;

	if (rv == 0)
		return;
	w->w_crashes++;
	ms = sup_backoff_ms(s, w->w_crashes);
	if (ms < s->s_cfg.backoff_min_ms)
		ms = s->s_cfg.backoff_min_ms;
	snprintf(w->w_last_error, sizeof(w->w_last_error), "spawn failed: %s",
	         strerror(-rv));
	supervisor_set_state(w, SUPERVISOR_DEAD);
	log_error(SUP_MOD,
	          "cannot spawn worker worker=%d err=\"%s\" retry_ms=%lld",
	          w->w_id, strerror(-rv), (long long)ms);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(w->w_ev_respawn, &tv);
}

static void
sup_on_respawn(evutil_socket_t fd, short what, void *arg)
{
	struct sup_worker *w = arg;

	if (w->w_sup->s_closing || w->w_pid > 0)
		return;
	sup_spawn_or_retry(w);
}

/* ---- lifecycle ---------------------------------------------------------- */

static char *
sup_default_worker_path(void)
{
	char exe[PATH_MAX], *slash, *p;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	if (asprintf(&p, "%s/worker", exe) < 0)
		return NULL;
	return p;
}

static char *
sup_strdup_or_null(const char *s, bool *fail)
{
	char *p;

	if (!s)
		return NULL;
	p = strdup(s);
	if (!p)
		*fail = true;
	return p;
}

static void
sup_free(supervisor *s)
{
	if (s->s_w) {
		for (int i = 0; i < s->s_n; i++) {
			struct sup_worker *w = &s->s_w[i];

			workerconn_destroy(&w->w_conn);
			if (w->w_ev_pid)
				event_free(w->w_ev_pid);
			if (w->w_pidfd >= 0)
				close(w->w_pidfd);
			if (w->w_ev_timer)
				event_free(w->w_ev_timer);
			if (w->w_ev_respawn)
				event_free(w->w_ev_respawn);
			if (w->w_ring_fd >= 0)
				close(w->w_ring_fd);
		}
		free(s->s_w);
	}
	if (s->s_ev_sigchld)
		event_free(s->s_ev_sigchld);
	ipc_dir_destroy(&s->s_dir);
	free(s->s_worker_path);
	free(s->s_ipc_dir);
	free(s->s_processor);
	free(s->s_pconfig);
	free(s->s_log_level);
	free(s->s_tx);
	free(s);
}

int
supervisor_create(supervisor **out, struct event_base *base,
                  const struct supervisor_config *cfg)
{
	supervisor *s;
	struct supervisor_config *c;
	bool fail = false;
	int rv, fd;

	*out = NULL;
	if (!base || !cfg || cfg->nworkers <= 0 ||
	    cfg->nworkers > SUP_MAX_WORKERS || !cfg->processor ||
	    cfg->spares < 0 || cfg->mem_limit_mb < 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->s_base = base;
	s->s_cfg = *cfg;
	c = &s->s_cfg;
	c->gpus = NULL;
	c->ring_fds = NULL;
	c->ping_ms = sup_def(c->ping_ms, 250);
	c->hang_ms = sup_def(c->hang_ms, 2000);
	c->hello_ms = sup_def(c->hello_ms, 30000);
	c->ready_ms = sup_def(c->ready_ms, 300000);
	c->frame_deadline_ms = sup_def(c->frame_deadline_ms, 5000);
	c->params_deadline_ms =
	    sup_def(c->params_deadline_ms, c->frame_deadline_ms);
	c->start_deadline_ms = sup_def(c->start_deadline_ms, 10000);
	c->backoff_min_ms = sup_def(c->backoff_min_ms, 100);
	c->backoff_max_ms = sup_def(c->backoff_max_ms, 10000);
	c->stable_ms = sup_def(c->stable_ms, 30000);
	c->shutdown_ms = sup_def(c->shutdown_ms, 2000);
	c->max_violations = sup_def(c->max_violations, 5);
	s->s_self = getpid();
	s->s_n = cfg->nworkers;
	s->s_worker_path = cfg->worker_path ? strdup(cfg->worker_path)
	                                    : sup_default_worker_path();
	s->s_processor = sup_strdup_or_null(cfg->processor, &fail);
	s->s_pconfig = sup_strdup_or_null(cfg->processor_config, &fail);
	s->s_log_level = sup_strdup_or_null(cfg->log_level, &fail);
	s->s_tx_cap = SUP_TX_INIT;
	s->s_tx = malloc(s->s_tx_cap);
	s->s_w = calloc((size_t)s->s_n, sizeof(*s->s_w));
	if (fail || !s->s_worker_path || !s->s_tx || !s->s_w) {
		rv = -ENOMEM;
		goto err_free;
	}
	for (int i = 0; i < s->s_n; i++) {
		s->s_w[i].w_pidfd = -1;
		s->s_w[i].w_ring_fd = -1;
	}
	if (access(s->s_worker_path, X_OK) != 0) {
		rv = -errno;
		log_error(SUP_MOD,
		          "worker program not executable path=%s err=\"%s\"",
		          s->s_worker_path, strerror(errno));
		goto err_free;
	}
	if (cfg->ipc_dir) {
		s->s_ipc_dir = strdup(cfg->ipc_dir);
		if (!s->s_ipc_dir) {
			rv = -ENOMEM;
			goto err_free;
		}
	} else {
		if ((rv = ipc_dir_create(&s->s_dir, NULL)) < 0)
			goto err_free;
		s->s_ipc_dir = strdup(ipc_dir_path(s->s_dir));
		if (!s->s_ipc_dir) {
			rv = -ENOMEM;
			goto err_free;
		}
	}
	c->worker_path = c->ipc_dir = c->processor = NULL;
	c->processor_config = c->log_level = NULL;
	if (strlen(s->s_ipc_dir) > 80) { /* sun_path holds 108 bytes */
		rv = -ENAMETOOLONG;
		goto err_free;
	}
	for (int i = 0; i < s->s_n; i++) {
		struct sup_worker *w = &s->s_w[i];

		w->w_sup = s;
		w->w_id = i;
		w->w_gpu = cfg->gpus ? cfg->gpus[i] : -1;
		w->w_state = SUPERVISOR_DEAD;
		fd = cfg->ring_fds ? cfg->ring_fds[i] : -1;
		if (fd >= 0 &&
		    (w->w_ring_fd = fcntl(fd, F_DUPFD_CLOEXEC,
		                          WORKERPROC_RING_FD + 1)) < 0) {
			rv = -errno;
			goto err_free;
		}
		w->w_ev_timer = evtimer_new(base, sup_on_timer, w);
		w->w_ev_respawn = evtimer_new(base, sup_on_respawn, w);
		if (!w->w_ev_timer || !w->w_ev_respawn) {
			rv = -ENOMEM;
			goto err_free;
		}
	}
	s->s_use_pidfd = !cfg->no_pidfd;
	if (s->s_use_pidfd) {
		fd = workerproc_pidfd(getpid());
		if (fd < 0)
			s->s_use_pidfd = false;
		else
			close(fd);
	}
	if (!s->s_use_pidfd && (rv = sup_enable_sigchld(s)) < 0)
		goto err_free;
	*out = s;
	return 0;

err_free:
	sup_free(s);
	return rv;
}

int
supervisor_start(supervisor *s)
{
	if (!s)
		return -EINVAL;
	if (s->s_started || s->s_closing)
		return -EALREADY;
	s->s_started = true;
	log_info(SUP_MOD,
	         "starting worker pool workers=%d spares=%d worker=%s "
	         "processor=%s death_watch=%s",
	         s->s_n, s->s_cfg.spares, s->s_worker_path, s->s_processor,
	         s->s_use_pidfd ? "pidfd" : "sigchld");
	for (int i = 0; i < s->s_n; i++)
		sup_spawn_or_retry(&s->s_w[i]);
	return 0;
}

int
supervisor_kill(supervisor *s, int worker, const char *reason)
{
	if (!s || worker < 0 || worker >= s->s_n)
		return -EINVAL;
	return supervisor_kill_worker(
	    &s->s_w[worker], reason ? reason : "killed by the gateway");
}

void
supervisor_close(supervisor *s)
{
	struct msg m;

	if (!s || s->s_closing)
		return;
	s->s_closing = true;
	s->s_close_deadline_ns =
	    clock_now_ns() + (int64_t)s->s_cfg.shutdown_ms * 1000000;
	memset(&m, 0, sizeof(m));
	m.type = MSG_SHUTDOWN;
	m.u.shutdown.reason = msg_cstr("gateway shutdown");
	for (int i = 0; i < s->s_n; i++) {
		struct sup_worker *w = &s->s_w[i];

		evtimer_del(w->w_ev_respawn);
		w->w_nops = 0;
		if (w->w_pid <= 0 || w->w_killed)
			continue;
		if (w->w_state == SUPERVISOR_STARTING ||
		    supervisor_ipc_send(s, w, &m) != 0)
			supervisor_kill_worker(w, "shutdown");
		supervisor_arm(w);
	}
	log_info(SUP_MOD, "worker pool closing workers=%d", s->s_n);
}

int
supervisor_stop(supervisor *s)
{
	struct pollfd *pfd;
	int killed = 0;
	int64_t kill_at, give_up = 0;

	if (!s)
		return 0;
	supervisor_close(s);
	if (s->s_stopped)
		return 0;
	pfd = calloc((size_t)s->s_n, sizeof(*pfd));
	kill_at = s->s_close_deadline_ns;
	for (;;) {
		int alive = 0, np = 0;
		int64_t now;
		int wait_ms;

		for (int i = 0; i < s->s_n; i++) {
			struct sup_worker *w = &s->s_w[i];

			sup_check_reap(w);
			if (w->w_pid <= 0)
				continue;
			alive++;
			if (pfd && w->w_pidfd >= 0) {
				pfd[np].fd = w->w_pidfd;
				pfd[np].events = POLLIN;
				np++;
			}
		}
		if (!alive)
			break;
		now = clock_now_ns();
		if (give_up && now >= give_up) {
			log_error(SUP_MOD,
			          "workers not reaped after SIGKILL alive=%d",
			          alive);
			break;
		}
		if (!give_up && now >= kill_at) {
			for (int i = 0; i < s->s_n; i++) {
				if (s->s_w[i].w_pid > 0 &&
				    !s->s_w[i].w_killed) {
					supervisor_kill_worker(
					    &s->s_w[i],
					    "no exit after SHUTDOWN");
					killed++;
				}
			}
			give_up = now + SUP_REAP_GRACE_NS;
			continue;
		}
		wait_ms =
		    (int)(((give_up ? give_up : kill_at) - now) / 1000000) + 1;
		/* Some are watched by SIGCHLD only: poll them. */
		if (np < alive && wait_ms > 5)
			wait_ms = 5;
		poll(pfd, (nfds_t)np, wait_ms);
	}
	free(pfd);
	if (killed)
		log_warn(
		    SUP_MOD,
		    "killed workers that did not exit after SHUTDOWN count=%d",
		    killed);
	s->s_stopped = true;
	return killed;
}

void
supervisor_destroy(supervisor **p)
{
	supervisor *s = *p;

	if (!s)
		return;
	supervisor_stop(s);
	sup_free(s);
	*p = NULL;
}
