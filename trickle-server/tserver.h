/*
 * Trickle server core with go-livepeer's semantics (PROTOCOL.md 3.1-3.7):
 * channels holding a ring of 5 segments, streamed POST/GET of segments,
 * 470 / Lp-Trickle-* headers, DELETE, /next, idle sweep. Owns channels,
 * segments and the HTTP listener; runs on the caller's libevent loop.
 * CLI parsing and signals live in main.c.
 */
#ifndef CT_TSERVER_H
#define CT_TSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

typedef struct tserver tserver;

#define TSERVER_RING 5  /* segments kept per channel (maxSegmentsPerStream) */

struct tserver_opts {
	const char *host;            /* "127.0.0.1" */
	int port;                    /* 2939; 0 = any free port */
	const char *base_path;       /* "/" (normalized to end with '/') */
	bool autocreate;             /* create channels on first POST (true) */
	int64_t idle_timeout_ms;     /* 300000 */
	int64_t sweep_interval_ms;   /* 60000 */
	int64_t continue_ms;         /* 10000: interim 100 Continue period */
	size_t max_segment_bytes;    /* 64 MiB: larger segments get 413 */
	unsigned max_channels;       /* 100000: more get 503 */
};

/* Fills *o with the defaults above. */
void tserver_opts_default(struct tserver_opts *o);

/*
 * Starts listening on base's loop. Returns 0 or a negative errno (-EINVAL for
 * bad options, -EADDRINUSE...). Does not block.
 */
int tserver_create(tserver **out, struct event_base *base,
		   const struct tserver_opts *opts);

/* The bound TCP port (useful with port 0). */
int tserver_port(const tserver *s);

/* Number of live channels. */
unsigned tserver_channel_count(const tserver *s);

/*
 * Closes every connection (handlers dropped) and every channel, frees all.
 * NULL-safe; loop thread only; does not run the loop.
 */
void tserver_destroy(tserver **p);

#endif
