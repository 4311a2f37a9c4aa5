/*
 * The stream manager: every running stream of the gateway, from trickle
 * input through decode, the frame ring, a worker, encode and trickle output,
 * plus the control, events and data channels. Implements the API backend
 * (api.h) and the supervisor's callbacks (supervisor.h). A stream lives on
 * one GPU (the least loaded at start) and its ring. Owns streams; does
 * not own the supervisor, plan, rings, curlev or metrics it is given.
 * Everything here runs on the gateway's loop thread unless noted.
 */
#ifndef CT_STREAMS_H
#define CT_STREAMS_H

#include <stdbool.h>

#include <event2/event.h>

#include "api.h"
#include "config.h"
#include "curlev.h"
#include "gpuinfo.h"
#include "gpuplan.h"
#include "metrics.h"
#include "ring.h"
#include "supervisor.h"

typedef struct streams streams;

struct streams_config {
	struct event_base *base;
	curlev *cv;
	gpuplan *plan;           /* the rings and where workers run */
	gpuinfo *gpuinfo;        /* /hardware/info and /stats; may be NULL */
	metrics *metrics;        /* may be NULL */
	const struct config *cfg; /* borrowed; outlives the manager */
	supervisor *sup;         /* set with streams_set_supervisor() */
	bool tls_verify;         /* verify https trickle peers (default true) */
};

/* Creates the manager. cfg copied (pointers borrowed). Returns 0 or -ENOMEM. */
int streams_create(streams **out, const struct streams_config *cfg);

/* Gives the manager the supervisor (created with streams_supervisor_cbs). */
void streams_set_supervisor(streams *ss, supervisor *sup);

/* The supervisor callbacks that drive the manager; cb_arg = the manager. */
struct supervisor_callbacks streams_supervisor_cbs(void);

/* The API backend ops; ctx = the manager. */
const struct api_backend_ops *streams_api_ops(void);

/*
 * Begins draining (SIGTERM): every stream is stopped as /stream/stop would
 * (stream_stopped event, output closed), no new stream is accepted.
 * Idempotent, non-blocking.
 */
void streams_drain(streams *ss);

/* True when no stream runs and none is being torn down. */
bool streams_quiet(const streams *ss);

/* Number of running streams. */
unsigned streams_running(const streams *ss);

/* Ends every stream at once and frees the manager. NULL-safe. */
void streams_destroy(streams **p);

#endif
