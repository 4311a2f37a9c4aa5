/*
 * Thread-safe bounded byte queue: one or more producers push copies of byte
 * runs, one consumer reads them back in order. Used to feed segment bytes
 * from the trickle subscriber (event-loop thread) to a decoder thread.
 * Owns its ring buffer only; knows nothing about media.
 */
#ifndef CT_BYTEQUEUE_H
#define CT_BYTEQUEUE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct bytequeue bytequeue;

/* Creates a queue holding at most cap bytes (cap > 0). Returns 0 or
 * -ENOMEM/-EINVAL. */
int bytequeue_create(bytequeue **out, size_t cap);

/* Frees the queue. No thread may be inside a call. NULL-safe; sets *q = NULL.
 */
void bytequeue_destroy(bytequeue **q);

/*
 * Copies len bytes in. wait=false: all or nothing, -EAGAIN when the free
 * space is below len (never blocks; -E2BIG when len > cap). wait=true:
 * blocks until everything is copied (in pieces if len > cap).
 * Returns 0, -EPIPE after bytequeue_end(), -ECANCELED after bytequeue_close().
 * Any thread.
 */
int bytequeue_push(bytequeue *q, const void *buf, size_t len, bool wait);

/*
 * Reads up to len bytes (blocks until at least one byte is there).
 * Returns the count (> 0), 0 at end of input (bytequeue_end and drained),
 * or -ECANCELED after bytequeue_close(). The single consumer thread.
 */
long bytequeue_read(bytequeue *q, void *buf, size_t len);

/* Marks end of input: the reader gets 0 once drained. Idempotent. */
void bytequeue_end(bytequeue *q);

/* Aborts: wakes every waiter, later calls return -ECANCELED. Idempotent. */
void bytequeue_close(bytequeue *q);

/* Bytes queued now (a snapshot). */
size_t bytequeue_size(bytequeue *q);

#endif
