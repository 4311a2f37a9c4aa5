/*
 * One worker's IPC endpoint on the gateway: an nng pair0 listener whose
 * receives complete on nng's threads into a small queue, handed to the
 * libevent loop through an eventfd. Bytes only; the supervisor decodes.
 * Not NNG_OPT_RECVFD: nng 1.5.2's pair0 leaks that pipe pair on close, two
 * fds per worker restart. nng codes become errno through ipc_err (ipc.h).
 */
#include "workerconn.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>

#include "ipc.h"

#define WORKERCONN_SENDBUF 128 /* messages queued towards the worker */
#define WORKERCONN_QCAP 256 /* received, not yet handled; then backpressure */
#define WORKERCONN_BATCH 64 /* handled per wake-up before yielding */

struct workerconn {
	nng_socket wc_sock;
	nng_aio *wc_aio;
	int wc_efd;
	struct event *wc_ev;
	workerconn_recv_fn wc_fn;
	void *wc_arg;
	pthread_mutex_t wc_mu; /* guards the queue and the flags below */
	nng_msg *wc_q[WORKERCONN_QCAP];
	unsigned wc_qhead, wc_qlen;
	bool wc_stalled; /* queue full: receive not re-armed */
	bool wc_closing;
};

/* nng thread: one message arrived (or the socket closed). */
static void
workerconn_on_aio(void *arg)
{
	workerconn *c = arg;
	uint64_t one = 1;
	nng_msg *m;
	bool rearm;

	if (nng_aio_result(c->wc_aio) != 0)
		return; /* closed or cancelled: nothing more comes */
	m = nng_aio_get_msg(c->wc_aio);
	pthread_mutex_lock(&c->wc_mu);
	c->wc_q[(c->wc_qhead + c->wc_qlen) % WORKERCONN_QCAP] = m;
	c->wc_qlen++;
	rearm = !c->wc_closing && c->wc_qlen < WORKERCONN_QCAP;
	c->wc_stalled = !rearm;
	pthread_mutex_unlock(&c->wc_mu);
	(void)!write(c->wc_efd, &one, sizeof(one));
	if (rearm)
		nng_recv_aio(c->wc_sock, c->wc_aio);
}

static nng_msg *
workerconn_pop(workerconn *c, bool *rearm)
{
	nng_msg *m = NULL;

	pthread_mutex_lock(&c->wc_mu);
	if (c->wc_qlen) {
		m = c->wc_q[c->wc_qhead];
		c->wc_qhead = (c->wc_qhead + 1) % WORKERCONN_QCAP;
		c->wc_qlen--;
	}
	*rearm = c->wc_stalled && !c->wc_closing;
	if (*rearm)
		c->wc_stalled = false;
	pthread_mutex_unlock(&c->wc_mu);
	return m;
}

/* Loop thread: hands queued messages to the owner. */
static void
workerconn_on_event(evutil_socket_t fd, short what, void *arg)
{
	workerconn *c = arg;
	uint64_t n;
	bool rearm = false, more = true;

	(void)!read(c->wc_efd, &n, sizeof(n));
	for (int i = 0; i < WORKERCONN_BATCH && more; i++) {
		nng_msg *m = workerconn_pop(c, &rearm);

		if (rearm)
			nng_recv_aio(c->wc_sock, c->wc_aio);
		if (!m)
			return;
		more = c->wc_fn(c->wc_arg, nng_msg_body(m), nng_msg_len(m));
		nng_msg_free(m);
	}
	pthread_mutex_lock(&c->wc_mu);
	n = c->wc_qlen;
	pthread_mutex_unlock(&c->wc_mu);
	if (n) { /* yield to other events, come back at once */
		n = 1;
		(void)!write(c->wc_efd, &n, sizeof(n));
	}
}

void
workerconn_drain(workerconn *c)
{
	for (int i = 0; i < WORKERCONN_QCAP; i++) {
		bool rearm;
		nng_msg *m = workerconn_pop(c, &rearm);

		if (rearm)
			nng_recv_aio(c->wc_sock, c->wc_aio);
		if (!m)
			return;
		if (!c->wc_fn(c->wc_arg, nng_msg_body(m), nng_msg_len(m))) {
			nng_msg_free(m);
			return;
		}
		nng_msg_free(m);
	}
}

int
workerconn_create(workerconn **out, struct event_base *base, const char *url,
                  size_t max_recv, workerconn_recv_fn fn, void *arg)
{
	nng_listener lst;
	workerconn *c;
	int rv;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->wc_fn = fn;
	c->wc_arg = arg;
	pthread_mutex_init(&c->wc_mu, NULL);
	c->wc_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->wc_efd < 0) {
		rv = -errno;
		goto err_free;
	}
	c->wc_ev = event_new(base, c->wc_efd, EV_READ | EV_PERSIST,
	                     workerconn_on_event, c);
	if (!c->wc_ev || event_add(c->wc_ev, NULL) != 0) {
		rv = -ENOMEM;
		goto err_free_ev;
	}
	if ((rv = ipc_err(nng_aio_alloc(&c->wc_aio, workerconn_on_aio, c))) < 0)
		goto err_free_ev;
	if ((rv = ipc_err(nng_pair0_open(&c->wc_sock))) < 0)
		goto err_free_aio;
	if ((rv = ipc_err(nng_socket_set_int(c->wc_sock, NNG_OPT_SENDBUF,
	                                     WORKERCONN_SENDBUF))) < 0 ||
	    (rv = ipc_err(nng_socket_set_size(c->wc_sock, NNG_OPT_RECVMAXSZ,
	                                      max_recv))) < 0 ||
	    (rv = ipc_err(nng_listener_create(&lst, c->wc_sock, url))) < 0 ||
	    (rv = ipc_err(nng_listener_set_int(lst, NNG_OPT_IPC_PERMISSIONS,
	                                       0600))) < 0 ||
	    (rv = ipc_err(nng_listener_start(lst, 0))) < 0)
		goto err_close_sock;
	nng_recv_aio(c->wc_sock, c->wc_aio);
	*out = c;
	return 0;

err_close_sock:
	nng_close(c->wc_sock);
err_free_aio:
	nng_aio_free(c->wc_aio);
err_free_ev:
	if (c->wc_ev)
		event_free(c->wc_ev);
	close(c->wc_efd);
err_free:
	pthread_mutex_destroy(&c->wc_mu);
	free(c);
	return rv;
}

int
workerconn_send(workerconn *c, const void *buf, size_t len)
{
	/* nng_send copies and never writes through buf. */
	return ipc_err(
	    nng_send(c->wc_sock, (void *)buf, len, NNG_FLAG_NONBLOCK));
}

void
workerconn_destroy(workerconn **p)
{
	workerconn *c = *p;

	if (!c)
		return;
	pthread_mutex_lock(&c->wc_mu);
	c->wc_closing = true;
	pthread_mutex_unlock(&c->wc_mu);
	nng_close(c->wc_sock);   /* cancels the pending receive */
	nng_aio_stop(c->wc_aio); /* waits for a callback in progress */
	nng_aio_free(c->wc_aio);
	while (c->wc_qlen) {
		nng_msg_free(c->wc_q[c->wc_qhead]);
		c->wc_qhead = (c->wc_qhead + 1) % WORKERCONN_QCAP;
		c->wc_qlen--;
	}
	event_free(c->wc_ev);
	close(c->wc_efd);
	pthread_mutex_destroy(&c->wc_mu);
	free(c);
	*p = NULL;
}
