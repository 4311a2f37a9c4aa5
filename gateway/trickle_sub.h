/*
 * trickle_sub: trickle subscriber (PROTOCOL.md 3.3-3.8) on a curlev. GETs
 * <channel>/<seq> one segment after another, hands body bytes on as they
 * arrive, preconnects seq+1, jumps to the live edge on 470, retries with
 * backoff. Owns its transfers and timers; not the curlev. Loop thread only.
 * Also owns enum trickle_end, the end reasons shared by the trickle objects.
 */
#ifndef CT_TRICKLE_SUB_H
#define CT_TRICKLE_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curlev.h"

/* Why a trickle object ended. */
enum trickle_end {
	TRICKLE_END_NONE = 0,
	TRICKLE_END_CLOSED,      /* Lp-Trickle-Closed: channel ended (clean) */
	TRICKLE_END_NOT_FOUND,   /* 404: "stream not found" (clean) */
	TRICKLE_END_MAX_RETRIES, /* failures beyond the retry budget */
	TRICKLE_END_SILENCE,     /* no byte at all for silence_timeout_ms */
	TRICKLE_END_LOCAL,       /* closed by us (publisher close + DELETE) */
	TRICKLE_END_ERROR,       /* internal error (out of memory, bad URL) */
};

/* Stable short name of a reason ("closed", "stream_not_found", ...). */
const char *trickle_sub_end_str(enum trickle_end r);

/* True for the reasons that are a clean end of stream (closed, 404, local). */
bool trickle_sub_end_clean(enum trickle_end r);

struct trickle_sub_opts {
	int64_t start_seq;      /* first GET: -2 current (default), -1 next */
	int max_retries;        /* consecutive failures before giving up (5) */
	int retry_delay_ms;     /* first backoff, doubled per failure up to
				 * max_backoff_ms (300) */
	int max_backoff_ms;     /* cap of the backoff; > 0 (5000) */
	int request_timeout_ms; /* a request with no byte flowing this long is
				 * aborted; waits for a first byte are re-issued
				 * without counting a failure (30000; in
				 * 1 s steps) */
	int silence_timeout_ms; /* no body byte at all this long: end (60000) */
	int connect_timeout_ms; /* TCP+TLS connect (5000) */
	bool tls_verify;        /* verify https peers (true) */
	const char *ca_file;    /* extra CA bundle, or NULL */
	const char *name;       /* for log lines, e.g. the stream id, or NULL */
};

/*
 * Callbacks, all on the loop thread. on_data gets every body byte of segment
 * `seq` in order, as it arrives (a chunk at a time; never buffered to the end
 * of the segment). on_segment_end's `complete` is false when the segment was
 * cut (its bytes stopped midway and could not be resumed). on_end is called
 * once, last, from a loop event (not from a libcurl callback): the callee may
 * destroy the subscriber there. The others must not destroy it (close is ok).
 * Any member may be NULL.
 */
struct trickle_sub_cbs {
	void (*on_segment_start)(void *arg, int64_t seq);
	void (*on_data)(void *arg, int64_t seq, const uint8_t *buf, size_t len);
	void (*on_segment_end)(void *arg, int64_t seq, bool complete);
	void (*on_end)(void *arg, enum trickle_end reason, const char *text);
};

struct trickle_sub_stats {
	uint64_t bytes_in;   /* body bytes handed to on_data */
	uint64_t segments;   /* segments read to their end */
	uint64_t retries;    /* failed requests retried */
	uint64_t jumps;      /* 470 answers followed to Lp-Trickle-Latest */
	uint64_t reissues;   /* idle waits re-issued (timeout, no byte) */
	uint32_t backoff_ms; /* delay of the last retry scheduled, 0 before */
	int64_t seq;         /* seq of the segment being read, -1 before any */
	enum trickle_end end;
};

typedef struct trickle_sub trickle_sub;

/* Fills the defaults listed in struct trickle_sub_opts. */
void trickle_sub_opts_default(struct trickle_sub_opts *o);

/*
 * Starts subscribing to `channel_url` (http or https, no trailing seq). The
 * strings are copied. opts NULL = defaults. Returns 0, -EINVAL (bad URL or
 * options, e.g. max_backoff_ms <= 0) or -ENOMEM. Loop thread; does not block.
 */
int trickle_sub_create(trickle_sub **out, curlev *cv, const char *channel_url,
		       const struct trickle_sub_opts *opts,
		       const struct trickle_sub_cbs *cbs, void *arg);

/*
 * Stops every transfer; no callback is called after it returns. Idempotent,
 * non-blocking; callable from this subscriber's own callbacks.
 */
void trickle_sub_close(trickle_sub *s);

/*
 * close + free. NULL-safe, sets *p = NULL. Loop thread; allowed inside on_end,
 * not inside the other callbacks of this subscriber.
 */
void trickle_sub_destroy(trickle_sub **p);

/* Copies the counters. Loop thread. */
void trickle_sub_get_stats(const trickle_sub *s, struct trickle_sub_stats *st);

#endif
