/*
 * curlev: libcurl's multi_socket interface on a libevent event_base. One
 * event per socket libcurl asks for, one timer for CURLMOPT_TIMERFUNCTION, and
 * a "kick" event that adds transfers requested from inside libcurl callbacks.
 * Completed transfers are reported after curl_multi_socket_action returns.
 */
#include "curlev.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "log.h"

struct cv_xfer {
	CURL *x_easy;
	curlev_done_fn x_done;
	void *x_arg;
	bool x_pending; /* waiting for the kick to be added to the multi */
	struct cv_xfer *x_prev, *x_next;
};

struct cv_sock {
	struct event *s_ev;
	curl_socket_t s_fd;
	curlev *s_cv;
	struct cv_sock *s_prev, *s_next;
};

struct curlev {
	struct event_base *cv_base;
	CURLM *cv_multi;
	struct event *cv_timer;
	struct event *cv_kick;
	int cv_depth;          /* > 0 while inside curl_multi_socket_action */
	int cv_count;
	struct cv_xfer *cv_xfers;
	struct cv_sock *cv_socks;
};

static pthread_once_t curlev_once = PTHREAD_ONCE_INIT;
static CURLcode curlev_init_rc;

static void
curlev_global_init(void)
{
	curlev_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
curlev_xfer_unlink(curlev *cv, struct cv_xfer *x)
{
	if (x->x_prev)
		x->x_prev->x_next = x->x_next;
	else
		cv->cv_xfers = x->x_next;
	if (x->x_next)
		x->x_next->x_prev = x->x_prev;
	cv->cv_count--;
}

/* Reports every finished transfer; runs outside libcurl callbacks. */
static void
curlev_check_done(curlev *cv)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(cv->cv_multi, &left))) {
		struct cv_xfer *x = NULL;
		CURL *easy = m->easy_handle;
		CURLcode res = m->data.result;
		curlev_done_fn done;
		void *arg;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(cv->cv_multi, easy);
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		if (!x)
			continue;
		curlev_xfer_unlink(cv, x);
		done = x->x_done;
		arg = x->x_arg;
		free(x);
		if (done)
			done(easy, res, arg);
	}
}

static void
curlev_action(curlev *cv, curl_socket_t fd, int flags)
{
	int running = 0;

	cv->cv_depth++;
	curl_multi_socket_action(cv->cv_multi, fd, flags, &running);
	cv->cv_depth--;
	curlev_check_done(cv);
}

static void
curlev_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct cv_sock *s = arg;
	int flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curlev_action(s->s_cv, fd, flags);
}

static void
curlev_on_timer(evutil_socket_t fd, short what, void *arg)
{
	curlev_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void
curlev_sock_free(curlev *cv, struct cv_sock *s)
{
	if (s->s_prev)
		s->s_prev->s_next = s->s_next;
	else
		cv->cv_socks = s->s_next;
	if (s->s_next)
		s->s_next->s_prev = s->s_prev;
	event_free(s->s_ev);
	free(s);
}

static int
curlev_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
		 void *socketp)
{
	curlev *cv = userp;
	struct cv_sock *s = socketp;
	short kind = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(cv->cv_multi, fd, NULL);
			curlev_sock_free(cv, s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->s_ev = event_new(cv->cv_base, fd, 0, curlev_on_sock, s);
		if (!s->s_ev) {
			free(s);
			return -1;
		}
		s->s_fd = fd;
		s->s_cv = cv;
		s->s_next = cv->cv_socks;
		if (cv->cv_socks)
			cv->cv_socks->s_prev = s;
		cv->cv_socks = s;
		curl_multi_assign(cv->cv_multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	event_del(s->s_ev);
	event_assign(s->s_ev, cv->cv_base, fd, kind, curlev_on_sock, s);
	event_add(s->s_ev, NULL);
	return 0;
}

static int
curlev_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	curlev *cv = userp;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(cv->cv_timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(cv->cv_timer, &tv);
	return 0;
}

/* Adds the transfers queued while libcurl callbacks were running. */
static void
curlev_on_kick(evutil_socket_t fd, short what, void *arg)
{
	curlev *cv = arg;
	struct cv_xfer *x, *next;

	for (x = cv->cv_xfers; x; x = next) {
		next = x->x_next;
		if (!x->x_pending)
			continue;
		x->x_pending = false;
		if (curl_multi_add_handle(cv->cv_multi, x->x_easy) !=
		    CURLM_OK) {
			CURL *easy = x->x_easy;
			curlev_done_fn done = x->x_done;
			void *xarg = x->x_arg;

			log_warn("curlev", "curl_multi_add_handle failed");
			curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
			curlev_xfer_unlink(cv, x);
			free(x);
			if (done)
				done(easy, CURLE_FAILED_INIT, xarg);
			/* The callee may have changed the list: start over. */
			next = cv->cv_xfers;
		}
	}
}

int
curlev_create(curlev **out, struct event_base *base)
{
	curlev *cv;

	pthread_once(&curlev_once, curlev_global_init);
	if (curlev_init_rc != CURLE_OK)
		return -EIO;
	cv = calloc(1, sizeof(*cv));
	if (!cv)
		return -ENOMEM;
	cv->cv_base = base;
	cv->cv_multi = curl_multi_init();
	if (!cv->cv_multi)
		goto err_free;
	cv->cv_timer = evtimer_new(base, curlev_on_timer, cv);
	if (!cv->cv_timer)
		goto err_multi;
	cv->cv_kick = event_new(base, -1, 0, curlev_on_kick, cv);
	if (!cv->cv_kick)
		goto err_timer;
	curl_multi_setopt(cv->cv_multi, CURLMOPT_SOCKETFUNCTION,
			  curlev_socket_cb);
	curl_multi_setopt(cv->cv_multi, CURLMOPT_SOCKETDATA, cv);
	curl_multi_setopt(cv->cv_multi, CURLMOPT_TIMERFUNCTION,
			  curlev_timer_cb);
	curl_multi_setopt(cv->cv_multi, CURLMOPT_TIMERDATA, cv);
	*out = cv;
	return 0;

err_timer:
	event_free(cv->cv_timer);
err_multi:
	curl_multi_cleanup(cv->cv_multi);
err_free:
	free(cv);
	return -ENOMEM;
}

void
curlev_destroy(curlev **p)
{
	curlev *cv = p ? *p : NULL;

	if (!cv)
		return;
	while (cv->cv_xfers) {
		struct cv_xfer *x = cv->cv_xfers;

		if (!x->x_pending)
			curl_multi_remove_handle(cv->cv_multi, x->x_easy);
		curl_easy_setopt(x->x_easy, CURLOPT_PRIVATE, NULL);
		curlev_xfer_unlink(cv, x);
		free(x);
	}
	curl_multi_cleanup(cv->cv_multi);
	while (cv->cv_socks)
		curlev_sock_free(cv, cv->cv_socks);
	event_free(cv->cv_kick);
	event_free(cv->cv_timer);
	free(cv);
	*p = NULL;
}

int
curlev_add(curlev *cv, CURL *easy, curlev_done_fn done, void *arg)
{
	struct cv_xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	x->x_easy = easy;
	x->x_done = done;
	x->x_arg = arg;
	curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
	if (cv->cv_depth > 0) {
		x->x_pending = true;
		event_active(cv->cv_kick, 0, 0);
	} else if (curl_multi_add_handle(cv->cv_multi, easy) != CURLM_OK) {
		curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
		free(x);
		return -EIO;
	}
	x->x_next = cv->cv_xfers;
	if (cv->cv_xfers)
		cv->cv_xfers->x_prev = x;
	cv->cv_xfers = x;
	cv->cv_count++;
	return 0;
}

void
curlev_remove(curlev *cv, CURL *easy)
{
	struct cv_xfer *x = NULL;

	if (!easy)
		return;
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (!x)
		return;
	if (!x->x_pending)
		curl_multi_remove_handle(cv->cv_multi, easy);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
	curlev_xfer_unlink(cv, x);
	free(x);
}

bool
curlev_in_callback(const curlev *cv)
{
	return cv->cv_depth > 0;
}

struct event_base *
curlev_base(const curlev *cv)
{
	return cv->cv_base;
}

int
curlev_active(const curlev *cv)
{
	return cv->cv_count;
}
