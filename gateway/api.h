/*
 * The gateway's HTTP API (PROTOCOL.md section 2) on libevent's evhttp:
 * routing, methods, bearer-token check, body limits, stream naming, and the
 * exact status codes and JSON bodies PyTrickle and ai-runner callers expect.
 * It does not know how streams run: every decision about streams is made by
 * a table of backend operations (struct api_backend_ops) that main.c wires to
 * the stream manager and tests wire to a fake.
 */
#ifndef CT_API_H
#define CT_API_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "metrics.h"
#include "params.h"

#define API_MAX_BODY        (10u * 1024 * 1024) /* bigger bodies get 413 */
#define API_MAX_HEADERS     (64u * 1024)        /* all request headers */
#define API_MAX_STREAM_ID   PARAMS_MAX_REQUEST_ID /* bytes, without the NUL */
#define API_MSG_MAX         512                 /* backend messages */

typedef struct api api;

/* /health states, in PROTOCOL.md 2.7's meaning. */
enum api_health {
	API_HEALTH_LOADING = 0, /* workers still starting: not ready */
	API_HEALTH_IDLE,        /* ready, no stream */
	API_HEALTH_OK,          /* at least one stream running */
	API_HEALTH_ERROR,       /* the whole server cannot serve (sticky) */
};

/*
 * Backend operations. Each is called on the loop thread, must not block
 * (hand slow work to other threads), and gets ctx as its first argument.
 * Where an op takes msg/cap it may write a short human-readable reason
 * (NUL-terminated, no secrets) that the API puts into the error body.
 * Ops marked optional may be NULL.
 */
struct api_backend_ops {
	/* Current health, or a negative errno (answered 500). Must be fast. */
	int (*health)(void *ctx);

	/*
	 * Number of running streams (>= 0). When exactly one runs, copies its id
	 * into only_id (cap bytes, NUL-terminated).
	 */
	int (*stream_count)(void *ctx, char *only_id, size_t cap);

	/*
	 * Starts the stream req->request_id (gateway_request_id), with a request
	 * already validated by params_parse_start() (borrowed for this call; copy
	 * what you keep). A start whose id already runs replaces that stream
	 * (the backend's choice). Returns 0, -EAGAIN (not ready: 503 "still
	 * initializing"), -EBUSY (no free worker: 503 "still in use"), or another
	 * negative errno (400 "Error starting stream: <msg>").
	 */
	int (*start)(void *ctx, const struct params_start *req, char *msg, size_t cap);

	/*
	 * Applies params validated by params_parse_update() (borrowed; v->json is
	 * the normalised object for the plugin) to stream_id. Returns 0, -ENOENT
	 * (400 "No active stream to update"), or another negative errno (500
	 * "Parameter update failed: <msg>").
	 */
	int (*update_params)(void *ctx, const char *stream_id,
	                     const struct params_values *v, char *msg, size_t cap);

	/*
	 * Stops stream_id (the stream_stopped event and closing its output are
	 * the backend's). Returns 0, -ENOENT (400 "No active stream to stop"), or
	 * another negative errno (500 "Error stopping stream").
	 */
	int (*stop)(void *ctx, const char *stream_id, char *msg, size_t cap);

	/*
	 * Optional. Fills the stream part of a status object: out already holds
	 * PyTrickle's generic fields (2.6) with client_active false and an empty
	 * "streams" array. For stream_id (NULL: none named and not exactly one
	 * running) set client_active, client_running, fps, current_params; append
	 * one object per running stream to "streams". Returns 0 or -errno (500).
	 */
	int (*status)(void *ctx, const char *stream_id, json_t *out);

	/* Optional. Appends one object per worker to the array (DESIGN.md shape). */
	int (*workers)(void *ctx, json_t *workers);

	/*
	 * Optional. Fills the object keyed by GPU index with info (stats false:
	 * id, name, memory_total, memory_free, major, minor) or utilisation
	 * (stats true). Leaving it empty is fine (no GPU or no NVML).
	 */
	int (*gpu_info)(void *ctx, bool stats, json_t *gpus);

	/* Optional. Called before GET /metrics renders, to refresh gauges. */
	void (*metrics_refresh)(void *ctx);
};

struct api_config {
	const char *host;        /* listen address, e.g. "0.0.0.0" or "127.0.0.1" */
	int port;                /* 0: any free port (see api_port) */
	const char *auth_token;  /* NULL or "": no check (a warning beyond loopback) */
	const char *pipeline;    /* /version "pipeline" */
	const char *model_id;    /* /version "model_id" (the capability name) */
	const char *version;     /* /version "version" */
	const char *app_version; /* /app-version "version" */
	metrics *metrics;        /* optional, borrowed: rendered by GET /metrics,
	                          * and gets ctrickle_http_requests_total */
	size_t max_body;         /* 0: API_MAX_BODY */
	int request_timeout_s;   /* 0: 30; idle or slow connections are closed */
};

/*
 * Creates the API on base and binds cfg->host:cfg->port. Strings of cfg are
 * copied; ops and ctx are borrowed and must outlive the API. Logs the listen
 * address, and a warning when it listens beyond loopback without a token.
 * Returns 0, -EADDRINUSE/-EACCES/-EADDRNOTAVAIL (cannot bind; not logged:
 * the caller reports it), -EINVAL (bad arguments), or -ENOMEM.
 * Call on the loop thread (or before the loop runs).
 */
int api_create(api **out, struct event_base *base, const struct api_config *cfg,
               const struct api_backend_ops *ops, void *ctx);

/* The bound TCP port (useful after port 0), or -1. */
int api_port(const api *a);

/*
 * Closes the listener and every connection and frees the API (NULL-safe,
 * sets *p = NULL). Requests in progress are dropped. Loop thread.
 */
void api_destroy(api **p);

/* Name of a health state as /health reports it ("LOADING", ...). */
const char *api_health_name(enum api_health h);

/* true when host names a loopback address (no warning without a token). */
bool api_host_is_loopback(const char *host);

/*
 * Compares the Authorization header value hdr with "Bearer <token>" in time
 * that depends only on the token's length. true when they match. Exposed
 * for tests.
 */
bool api_auth_ok(const char *hdr, const char *token);

#endif
