/*
 * trickle_chan: the JSON side channels of a stream (PROTOCOL.md 5.1-5.3):
 * the control reader (one JSON message per segment), the events publisher
 * (one JSON per POST) and the data publisher (JSONL batches every 333 ms).
 * Built on trickle_sub / trickle_pub; owns their queues and timers.
 */
#ifndef CT_TRICKLE_CHAN_H
#define CT_TRICKLE_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curlev.h"
#include "trickle_pub.h"
#include "trickle_sub.h"

/* ---- control reader ---------------------------------------------------- */

typedef struct trickle_chan_ctl trickle_chan_ctl;

/*
 * Loop-thread callbacks. on_message gets each control message as NUL-ended
 * JSON text (valid JSON, never {"keep":"alive"}); borrowed for the call.
 * on_end: once, last (404 = TRICKLE_END_NOT_FOUND); the callee may destroy
 * the reader there. Either may be NULL.
 */
struct trickle_chan_ctl_cbs {
	void (*on_message)(void *arg, const char *json, size_t len);
	void (*on_end)(void *arg, enum trickle_end reason, const char *text);
};

struct trickle_chan_ctl_stats {
	uint64_t messages;   /* delivered */
	uint64_t keepalives; /* {"keep":"alive"} ignored */
	uint64_t too_big;    /* skipped: over max_bytes */
	uint64_t invalid;    /* skipped: not JSON, or a cut segment */
};

/*
 * Subscribes to a control channel. sub_opts NULL = trickle_sub defaults with
 * no silence limit (the control channel may be quiet for long); max_bytes 0 =
 * 10 MiB. Returns 0, -EINVAL or -ENOMEM. Loop thread.
 */
int trickle_chan_ctl_create(trickle_chan_ctl **out, curlev *cv, const char *url,
			    const struct trickle_sub_opts *sub_opts,
			    size_t max_bytes,
			    const struct trickle_chan_ctl_cbs *cbs, void *arg);

/*
 * Stops reading; no callback after it. NULL-safe, sets *p = NULL. Loop
 * thread; allowed inside on_end.
 */
void trickle_chan_ctl_destroy(trickle_chan_ctl **p);

void trickle_chan_ctl_get_stats(const trickle_chan_ctl *c,
				struct trickle_chan_ctl_stats *st);

/* ---- events and data publishers ----------------------------------------- */

typedef struct trickle_chan_pub trickle_chan_pub;

enum trickle_chan_kind {
	TRICKLE_CHAN_EVENTS, /* one JSON per segment, application/json */
	TRICKLE_CHAN_DATA,   /* JSON array of queued items + "\n" every
			      * flush_ms, application/jsonl, "[]\n" after
			      * keepalive_ms idle */
};

struct trickle_chan_pub_opts {
	int max_queued;      /* events: 64 waiting POSTs; data: 1000 lines */
	int flush_ms;        /* data: 333 */
	int keepalive_ms;    /* data: 25000 */
};

/*
 * Loop-thread callbacks. on_error is called for each event/data segment that
 * could not be delivered (failures = total so far). on_end as trickle_pub's.
 */
struct trickle_chan_pub_cbs {
	void (*on_error)(void *arg, const char *err, uint64_t failures);
	void (*on_end)(void *arg, enum trickle_end reason, const char *text);
};

struct trickle_chan_pub_stats {
	uint64_t sent;       /* events / data segments answered 200 */
	uint64_t items;      /* items accepted */
	uint64_t dropped;    /* items refused or evicted: queue full */
	uint64_t failures;   /* segments that failed on the wire */
	uint64_t keepalives; /* data: "[]\n" segments sent */
};

/* Fills the defaults for `kind`. */
void trickle_chan_pub_opts_default(struct trickle_chan_pub_opts *o,
				   enum trickle_chan_kind kind);

/*
 * Creates an events or data publisher on `url`. pub_opts NULL = trickle_pub
 * defaults (content type is always set by kind); opts NULL = defaults.
 * Returns 0, -EINVAL or -ENOMEM. Loop thread.
 */
int trickle_chan_pub_create(trickle_chan_pub **out, curlev *cv,
			    enum trickle_chan_kind kind, const char *url,
			    const struct trickle_pub_opts *pub_opts,
			    const struct trickle_chan_pub_opts *opts,
			    const struct trickle_chan_pub_cbs *cbs, void *arg);

/*
 * Queues one item (copied). Events: one JSON document, one POST. Data: one
 * item of the next batch; text that is valid JSON goes in as it is, any other
 * text as a JSON string. Any thread, never blocks. Returns 0; -ENOBUFS when
 * the queue is full (events: the new one is refused; data: the oldest line
 * is evicted and 0 returned, both counted in dropped); -EPIPE after close;
 * -EINVAL for an event that is not valid JSON.
 */
int trickle_chan_pub_send(trickle_chan_pub *c, const char *text, size_t len);

/*
 * Flushes what is queued, then closes the publisher (trickle_pub_close).
 * on_end follows. Idempotent, non-blocking. Loop thread.
 */
void trickle_chan_pub_close(trickle_chan_pub *c);

/* Frees everything; no callback after it. NULL-safe. Loop thread (not from
 * on_error). */
void trickle_chan_pub_destroy(trickle_chan_pub **p);

void trickle_chan_pub_get_stats(trickle_chan_pub *c,
				struct trickle_chan_pub_stats *st);

#endif
