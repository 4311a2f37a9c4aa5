/*
 * trickle_pub: trickle publisher (PROTOCOL.md 3.5, 3.7, 3.8) on a curlev. One
 * chunked POST per segment, bytes sent as the producer writes them, the POST
 * of the next seq preconnected, DELETE of the channel on close. Owns its
 * transfers and a bounded, mutex-protected byte queue fed from any thread.
 */
#ifndef CT_TRICKLE_PUB_H
#define CT_TRICKLE_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "curlev.h"
#include "trickle_sub.h" /* enum trickle_end */

struct trickle_pub_opts {
	int64_t start_seq;        /* seq of the first segment (0) */
	const char *content_type; /* of every POST ("video/mp2t") */
	int max_retries;          /* retries of a 0-byte segment POST (5) */
	int retry_delay_ms;       /* delay before such a retry (250) */
	size_t max_queued_bytes;  /* unsent bytes over all segments (16 MiB) */
	int max_queued_segments;  /* segments begun and not yet done on the
				   * wire; a segment begun beyond it is
				   * dropped whole (4) */
	bool preconnect;          /* open the POST of seq+1 early (true) */
	bool delete_on_close;     /* DELETE the channel on close (true) */
	int drain_timeout_ms;     /* after trickle_pub_close, how long the
				   * queue may take to drain; then what is
				   * left is aborted and counted in
				   * drain_dropped* (5000; 0: abort at
				   * once) */
	int connect_timeout_ms;   /* TCP+TLS connect (5000) */
	bool tls_verify;          /* verify https peers (true) */
	const char *ca_file;      /* extra CA bundle, or NULL */
	const char *name;         /* for log lines, or NULL */
};

/*
 * Loop-thread callbacks; any may be NULL. on_segment_done reports each
 * segment that reached the wire: ok, or failed (status 0 = network error,
 * `err` says why). on_end is called once, last, from a loop event: after
 * close once the queue drained and the DELETE answered (TRICKLE_END_LOCAL),
 * or on 404 (TRICKLE_END_NOT_FOUND) or Lp-Trickle-Closed (TRICKLE_END_CLOSED).
 * The callee may destroy the publisher inside on_end only.
 */
struct trickle_pub_cbs {
	void (*on_segment_done)(void *arg, int64_t seq, bool ok, int status,
				const char *err);
	void (*on_end)(void *arg, enum trickle_end reason, const char *text);
};

struct trickle_pub_stats {
	uint64_t bytes_out;      /* body bytes handed to libcurl */
	uint64_t segments;       /* segments answered 200 */
	uint64_t retries;        /* 0-byte segments retried */
	uint64_t dropped_queue;  /* segments dropped: the queue was full */
	uint64_t failed;         /* segments failed on the wire (dropped) */
	uint64_t queued_bytes;   /* bytes waiting now */
	uint64_t interim;        /* interim 1xx answers seen (100 Continue) */
	uint64_t drain_dropped;  /* segments aborted at the drain deadline */
	uint64_t drain_dropped_bytes; /* their bytes not yet sent then */
	int64_t next_seq;        /* seq the next segment will get */
	enum trickle_end end;
};

typedef struct trickle_pub trickle_pub;

/* Fills the defaults listed in struct trickle_pub_opts. */
void trickle_pub_opts_default(struct trickle_pub_opts *o);

/*
 * Creates a publisher for `channel_url` (http or https, no seq). Strings are
 * copied; opts NULL = defaults. Opens the first preconnect at once. Returns 0,
 * -EINVAL or -ENOMEM. Loop thread.
 */
int trickle_pub_create(trickle_pub **out, curlev *cv, const char *channel_url,
		       const struct trickle_pub_opts *opts,
		       const struct trickle_pub_cbs *cbs, void *arg);

/*
 * Producer side: begin a segment, write its bytes (copied) as they are
 * produced, end it. Callable from any thread (one producer at a time; calls
 * are serialised by a mutex), never block on the network. begin implicitly
 * ends an unfinished segment. Returns 0; -ENOBUFS when the segment is dropped
 * because the output is too far behind (later writes to it are discarded
 * and cost nothing; counted in dropped_queue); -EPIPE after close or end.
 */
int trickle_pub_segment_begin(trickle_pub *p);
int trickle_pub_write(trickle_pub *p, const void *buf, size_t len);
int trickle_pub_segment_end(trickle_pub *p);

/*
 * Ends the publisher cleanly: ends the open segment, lets the queue drain,
 * cancels the preconnect, DELETEs the channel (if delete_on_close), then
 * calls on_end. The drain is bounded by drain_timeout_ms from the first
 * close: segments still queued or on the wire then are aborted, counted in
 * drain_dropped / drain_dropped_bytes and logged in one warn line, and the
 * close goes on (DELETE, bounded by its own 5 s timeout, then on_end with
 * TRICKLE_END_LOCAL). Idempotent, non-blocking, any thread.
 */
void trickle_pub_close(trickle_pub *p);

/*
 * Frees everything; transfers in flight are aborted, no callback is called.
 * NULL-safe, sets *p = NULL. Loop thread; allowed inside on_end, not inside
 * on_segment_done. No producer call may run concurrently or later.
 */
void trickle_pub_destroy(trickle_pub **p);

/* Copies the counters. Any thread. */
void trickle_pub_get_stats(trickle_pub *p, struct trickle_pub_stats *st);

#endif
