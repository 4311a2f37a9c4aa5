/*
 * PyTrickle HTTP request bodies: parsing and validation of POST /stream/start
 * (StreamStartRequest) and POST /stream/params (a flat params object) with
 * jansson, per PROTOCOL.md 2.3-2.5. Owns only the parsed results; HTTP
 * routing and responses live in the API module. No state, no threads.
 */
#ifndef CT_PARAMS_H
#define CT_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PARAMS_MAX_BODY       (10u * 1024 * 1024) /* larger bodies are refused */
#define PARAMS_MAX_DIM        7680u  /* width/height upper bound */
#define PARAMS_MIN_FRAMERATE  1u
#define PARAMS_MAX_FRAMERATE  60u
#define PARAMS_MAX_REQUEST_ID 256u   /* gateway_request_id bytes */
#define PARAMS_MAX_URL        8192u  /* bytes of each *_url */
#define PARAMS_ERR_LEN        256u   /* enough for every error text */

/*
 * The recognised keys of a params object. has_* says whether the key was
 * present; the value is meaningful only then. json is the object to hand to
 * the plugin: compact, keys in their original order, the recognised keys
 * normalised (width, height and max_framerate as JSON integers,
 * detect_out_resolution and show_loading as booleans), load_model removed,
 * every other key passed through unchanged. "{}" when there were no params.
 */
struct params_values {
	bool has_size;                 /* width and height (always both) */
	uint32_t width;                /* 1..PARAMS_MAX_DIM */
	uint32_t height;
	bool has_max_framerate;
	uint32_t max_framerate;        /* 1..60 */
	bool has_detect_out_resolution;
	bool detect_out_resolution;
	bool has_show_loading;         /* only parsed by params_parse_update() */
	bool show_loading;
	bool has_load_model;           /* removed from json */
	bool load_model;               /* its truthiness (Python rules) */
	char *json;                    /* NUL-terminated, malloc'd, owned */
	size_t json_len;               /* strlen(json) */
};

/*
 * A parsed StreamStartRequest. Each *_url is NULL when the key was absent,
 * null or "", else an http:// or https:// URL with a host. Unknown top-level
 * keys (model_id, stream_id, manifest_id, ...) are ignored.
 */
struct params_start {
	char *subscribe_url;
	char *publish_url;
	char *control_url;
	char *events_url;
	char *data_url;
	char *request_id;              /* gateway_request_id: never NULL or "" */
	bool has_params;               /* "params" was an object, not absent/null */
	struct params_values params;   /* params.json is "{}" without params */
};

/*
 * Parses and validates a /stream/start body of len bytes (need not be
 * NUL-terminated). On success returns 0 and *out owns a new request (free it
 * with params_start_destroy()). On failure returns -EINVAL (bad JSON, not an
 * object, a rule broken), -EMSGSIZE (len > PARAMS_MAX_BODY) or -ENOMEM, sets
 * *out = NULL, and writes a one-line human-readable reason into err (errlen
 * bytes, PARAMS_ERR_LEN is enough; err may be NULL), e.g.
 * `params.width must be a positive integer, got "abc"`, ready for the
 * "Error starting stream: <text>" reply. Any thread; does not block.
 */
int params_parse_start(const char *body, size_t len, struct params_start **out,
		       char *err, size_t errlen);

/* Frees a request from params_parse_start(). NULL-safe; sets *p = NULL. */
void params_start_destroy(struct params_start **p);

/*
 * Parses and validates a /stream/params body: a flat JSON object of
 * parameters (the same rules as params at start, plus show_loading: a
 * boolean or "true"/"false"/"1"/"0"/"yes"/"no"). On success returns 0 and
 * fills *out, which then owns out->json (release with params_values_clear()).
 * On failure returns -EINVAL, -EMSGSIZE or -ENOMEM as params_parse_start()
 * does, leaves *out zeroed and writes the reason into err (no "params."
 * prefix: `width must be ...`). Any thread; does not block.
 */
int params_parse_update(const char *body, size_t len, struct params_values *out,
			char *err, size_t errlen);

/* Frees v->json and zeroes *v. Safe on a zeroed or already cleared struct. */
void params_values_clear(struct params_values *v);

#endif
