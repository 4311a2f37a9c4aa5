/*
 * Bounded byte ring with a mutex and two condition variables (not empty,
 * not full). Copies in on push and out on read; no allocation after create.
 */
#include "bytequeue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bytequeue {
	pthread_mutex_t bq_lock;
	pthread_cond_t bq_readable;
	pthread_cond_t bq_writable;
	unsigned char *bq_buf;
	size_t bq_cap;
	size_t bq_head; /* read position */
	size_t bq_len;  /* bytes queued */
	bool bq_ended;
	bool bq_closed;
};

int
bytequeue_create(bytequeue **out, size_t cap)
{
	bytequeue *q;

	if (cap == 0)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->bq_buf = malloc(cap);
	if (q->bq_buf == NULL) {
		free(q);
		return -ENOMEM;
	}
	q->bq_cap = cap;
	pthread_mutex_init(&q->bq_lock, NULL);
	pthread_cond_init(&q->bq_readable, NULL);
	pthread_cond_init(&q->bq_writable, NULL);
	*out = q;
	return 0;
}

void
bytequeue_destroy(bytequeue **qp)
{
	bytequeue *q = *qp;

	if (q == NULL)
		return;
	pthread_cond_destroy(&q->bq_readable);
	pthread_cond_destroy(&q->bq_writable);
	pthread_mutex_destroy(&q->bq_lock);
	free(q->bq_buf);
	free(q);
	*qp = NULL;
}

/* Copies n bytes (n <= free space) at the tail. Lock held. */
static void
bytequeue_put(bytequeue *q, const unsigned char *src, size_t n)
{
	size_t tail = (q->bq_head + q->bq_len) % q->bq_cap;
	size_t first = q->bq_cap - tail;

	if (first > n)
		first = n;
	memcpy(q->bq_buf + tail, src, first);
	memcpy(q->bq_buf, src + first, n - first);
	q->bq_len += n;
}

int
bytequeue_push(bytequeue *q, const void *buf, size_t len, bool wait)
{
	const unsigned char *p = buf;
	int rc = 0;

	pthread_mutex_lock(&q->bq_lock);
	if (!wait) {
		if (q->bq_closed)
			rc = -ECANCELED;
		else if (q->bq_ended)
			rc = -EPIPE;
		else if (len > q->bq_cap)
			rc = -E2BIG;
		else if (q->bq_cap - q->bq_len < len)
			rc = -EAGAIN;
		else if (len > 0) {
			bytequeue_put(q, p, len);
			pthread_cond_signal(&q->bq_readable);
		}
		pthread_mutex_unlock(&q->bq_lock);
		return rc;
	}
	while (len > 0) {
		size_t room, n;

		while (!q->bq_closed && !q->bq_ended && q->bq_len == q->bq_cap)
			pthread_cond_wait(&q->bq_writable, &q->bq_lock);
		if (q->bq_closed) {
			rc = -ECANCELED;
			break;
		}
		if (q->bq_ended) {
			rc = -EPIPE;
			break;
		}
		room = q->bq_cap - q->bq_len;
		n = len < room ? len : room;
		bytequeue_put(q, p, n);
		p += n;
		len -= n;
		pthread_cond_signal(&q->bq_readable);
	}
	pthread_mutex_unlock(&q->bq_lock);
	return rc;
}

long
bytequeue_read(bytequeue *q, void *buf, size_t len)
{
	unsigned char *dst = buf;
	size_t n, first;
	long rc;

	pthread_mutex_lock(&q->bq_lock);
	while (!q->bq_closed && !q->bq_ended && q->bq_len == 0)
		pthread_cond_wait(&q->bq_readable, &q->bq_lock);
	if (q->bq_closed) {
		rc = -ECANCELED;
	} else if (q->bq_len == 0) {
		rc = 0;
	} else {
		n = len < q->bq_len ? len : q->bq_len;
		first = q->bq_cap - q->bq_head;
		if (first > n)
			first = n;
		memcpy(dst, q->bq_buf + q->bq_head, first);
		memcpy(dst + first, q->bq_buf, n - first);
		q->bq_head = (q->bq_head + n) % q->bq_cap;
		q->bq_len -= n;
		rc = (long)n;
		pthread_cond_broadcast(&q->bq_writable);
	}
	pthread_mutex_unlock(&q->bq_lock);
	return rc;
}

void
bytequeue_end(bytequeue *q)
{
	pthread_mutex_lock(&q->bq_lock);
	q->bq_ended = true;
	pthread_cond_broadcast(&q->bq_readable);
	pthread_cond_broadcast(&q->bq_writable);
	pthread_mutex_unlock(&q->bq_lock);
}

void
bytequeue_close(bytequeue *q)
{
	pthread_mutex_lock(&q->bq_lock);
	q->bq_closed = true;
	pthread_cond_broadcast(&q->bq_readable);
	pthread_cond_broadcast(&q->bq_writable);
	pthread_mutex_unlock(&q->bq_lock);
}

size_t
bytequeue_size(bytequeue *q)
{
	size_t n;

	pthread_mutex_lock(&q->bq_lock);
	n = q->bq_len;
	pthread_mutex_unlock(&q->bq_lock);
	return n;
}
