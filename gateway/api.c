/*
 * HTTP API on evhttp: one generic callback routes every request through a
 * static route table, applies the bearer-token check, body limits and the
 * stream-naming rules, and answers with PROTOCOL.md section 2's statuses and
 * bodies. Request bodies are parsed here; stream work is the backend's.
 */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"

enum api_route_id {
	ROUTE_START, ROUTE_PARAMS, ROUTE_STOP, ROUTE_STATUS, ROUTE_HEALTH,
	ROUTE_VERSION, ROUTE_APP_VERSION, ROUTE_HW_INFO, ROUTE_HW_STATS,
	ROUTE_WORKERS, ROUTE_METRICS, ROUTE_NONE,
};

struct api_route {
	const char *path;
	enum api_route_id id;
	bool post;          /* POST-only; else GET (and HEAD) only */
	const char *label;  /* metrics label */
};

static const struct api_route api_routes[] = {
	{ "/stream/start",         ROUTE_START,       true,  "start" },
	{ "/api/stream/start",     ROUTE_START,       true,  "start" },
	{ "/live-video-to-video",  ROUTE_START,       true,  "start" },
	{ "/stream/params",        ROUTE_PARAMS,      true,  "params" },
	{ "/api/stream/params",    ROUTE_PARAMS,      true,  "params" },
	{ "/stream/stop",          ROUTE_STOP,        true,  "stop" },
	{ "/api/stream/stop",      ROUTE_STOP,        true,  "stop" },
	{ "/stream/status",        ROUTE_STATUS,      false, "status" },
	{ "/api/stream/status",    ROUTE_STATUS,      false, "status" },
	{ "/health",               ROUTE_HEALTH,      false, "health" },
	{ "/version",              ROUTE_VERSION,     false, "version" },
	{ "/app-version",          ROUTE_APP_VERSION, false, "app_version" },
	{ "/hardware/info",        ROUTE_HW_INFO,     false, "hardware_info" },
	{ "/hardware/stats",       ROUTE_HW_STATS,    false, "hardware_stats" },
	{ "/workers",              ROUTE_WORKERS,     false, "workers" },
	{ "/metrics",              ROUTE_METRICS,     false, "metrics" },
};

struct api {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	const struct api_backend_ops *ops;
	void *ctx;
	char *host, *token, *pipeline, *model_id, *version, *app_version;
	size_t max_body;
	int port;
	unsigned long long unauthorized; /* 401s answered */
	metrics *metrics;
	metrics_family *m_requests;
};

/* The state of one request while it is handled. */
struct api_call {
	api *a;
	struct evhttp_request *req;
	const struct api_route *route;
	int code; /* status sent, for metrics */
};

const char *
api_health_name(enum api_health h)
{
	switch (h) {
	case API_HEALTH_LOADING: return "LOADING";
	case API_HEALTH_IDLE:    return "IDLE";
	case API_HEALTH_OK:      return "OK";
	case API_HEALTH_ERROR:   return "ERROR";
	}
	return "ERROR";
}

bool
api_auth_ok(const char *hdr, const char *token)
{
	size_t tl, hl;
	unsigned char diff;

	if (!token || !*token)
		return true;
	if (!hdr || strncasecmp(hdr, "Bearer ", 7) != 0)
		return false;
	hdr += 7;
	while (*hdr == ' ')
		hdr++;
	tl = strlen(token);
	hl = strnlen(hdr, tl + 1);
	diff = hl != tl;
	for (size_t i = 0; i < tl; i++)
		diff |= (unsigned char)((i < hl ? hdr[i] : 0) ^ token[i]);
	return diff == 0;
}

static const char *
api_reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Error";
}

static void
api_count(struct api_call *c)
{
	char code[8];
	const char *v[2];

	if (!c->a->m_requests)
		return;
	snprintf(code, sizeof(code), "%d", c->code);
	v[0] = c->route ? c->route->label : "other";
	v[1] = code;
	metrics_counter_add(metrics_series_get(c->a->m_requests, v), 1);
}

/* Sends body (may be NULL) with content type ctype; takes nothing. */
static void
api_send_raw(struct api_call *c, int code, const char *ctype,
             const char *body, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(c->req);

	c->code = code;
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	if (buf && body)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(c->req, code, api_reason(code), buf);
	if (buf)
		evbuffer_free(buf);
	api_count(c);
	log_debug("api", "reply code=%d method=%d path=%s", code,
		(int)evhttp_request_get_command(c->req),
		c->route ? c->route->path : "-");
}

/* Sends obj as JSON and releases the reference. */
static void
api_send_json(struct api_call *c, int code, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	if (!text) {
		static const char oom[] =
			"{\"status\":\"error\",\"message\":\"Out of memory\","
			"\"detail\":{\"msg\":\"Out of memory\"}}";

		json_decref(obj);
		api_send_raw(c, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	api_send_raw(c, code, "application/json", text, strlen(text));
	free(text);
	json_decref(obj);
}

/*
 * Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes there
 * are not one (overlong forms, surrogates and values over U+10FFFF too).
 */
static size_t
api_utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Replaces every byte that is not part of valid UTF-8 with '?'. */
static void
api_utf8_fix(char *s)
{
	while (*s) {
		size_t n = api_utf8_len((unsigned char *)s);

		if (n == 0) {
			*s++ = '?';
			continue;
		}
		s += n;
	}
}

/*
 * PyTrickle's error body plus ai-runner's detail.msg, in one object; state
 * (consumed, may be NULL) becomes current_state.
 */
static void
api_send_error(struct api_call *c, int code, json_t *state, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
api_send_error(struct api_call *c, int code, json_t *state, const char *fmt, ...)
{
	char msg[API_MSG_MAX + 128];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_utf8_fix(msg); /* may hold request bytes, or be cut mid-sequence */
	o = json_pack("{s:s, s:s, s:{s:s}}", "status", "error", "message", msg,
	              "detail", "msg", msg);
	if (o && state)
		json_object_set_new(o, "current_state", state);
	else
		json_decref(state);
	api_send_json(c, code, o);
}

/* Health from the backend (IDLE when it has no health op), or -errno. */
static int
api_health(api *a)
{
	return a->ops->health ? a->ops->health(a->ctx) : API_HEALTH_IDLE;
}

/*
 * PyTrickle's generic status fields (2.6), then the backend's stream part.
 * Returns a new object, or NULL when the backend failed.
 */
static json_t *
api_status_object(api *a, const char *stream_id)
{
	int h = api_health(a), n;
	const char *name;
	char only[API_MAX_STREAM_ID + 1] = "";
	json_t *o;

	if (h < 0)
		return NULL;
	name = api_health_name((enum api_health)h);
	n = a->ops->stream_count ? a->ops->stream_count(a->ctx, only, sizeof(only)) : 0;
	if (n < 0)
		return NULL;
	if (!stream_id && n == 1)
		stream_id = only;
	o = json_pack("{s:s, s:s, s:n, s:b, s:i, s:b, s:s, s:{}, s:b, s:[]}",
		"status", name, "state", name, "error_message",
		"pipeline_ready", h == API_HEALTH_IDLE || h == API_HEALTH_OK,
		"active_streams", n,
		"startup_complete", h != API_HEALTH_LOADING,
		/* PyTrickle's internal state never becomes OK: it says IDLE. */
		"pipeline_state", h == API_HEALTH_OK ? "IDLE" : name,
		"additional_info", "client_active", false, "streams");
	if (!o)
		return NULL;
	if (a->ops->status && a->ops->status(a->ctx, stream_id, o) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/*
 * A stream id is 1..API_MAX_STREAM_ID bytes of UTF-8 without control
 * characters, as params_parse_start() accepts gateway_request_id.
 */
static bool
api_valid_stream_id(const char *s)
{
	size_t n = 0, k;

	while (s[n]) {
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f ||
		    !(k = api_utf8_len((const unsigned char *)s + n)))
			return false;
		n += k;
	}
	return n > 0 && n <= API_MAX_STREAM_ID;
}

/*
 * Which stream the call means: X-Stream-Id, else query stream_id, else
 * none (*named = false). Returns 0, or -EINVAL for a malformed id.
 */
static int
api_named_stream(struct api_call *c, char *id, size_t cap, bool *named)
{
	const char *v = evhttp_find_header(
		evhttp_request_get_input_headers(c->req), "X-Stream-Id");
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(c->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq qs;
	int rc = 0;

	*named = false;
	qs.tqh_first = NULL;
	qs.tqh_last = &qs.tqh_first;
	if (!v && q && evhttp_parse_query_str(q, &qs) == 0)
		v = evhttp_find_header(&qs, "stream_id");
	if (v) {
		if (!api_valid_stream_id(v) || strlen(v) >= cap) {
			rc = -EINVAL;
		} else {
			strcpy(id, v);
			*named = true;
		}
	}
	evhttp_clear_headers(&qs);
	return rc;
}

/*
 * Resolves the stream of a stop/params call. Returns 0 with id set,
 * -ENOENT (none running), -EINVAL (bad id) or -EEXIST (several, unnamed).
 */
static int
api_resolve_stream(struct api_call *c, char *id, size_t cap)
{
	bool named;
	int rc, n;

	if ((rc = api_named_stream(c, id, cap, &named)) < 0)
		return rc;
	if (named)
		return 0;
	n = c->a->ops->stream_count(c->a->ctx, id, cap);
	if (n < 0)
		return n;
	if (n == 0)
		return -ENOENT;
	return n == 1 ? 0 : -EEXIST;
}

static bool
api_is_json(struct api_call *c)
{
	const char *ct = evhttp_find_header(
		evhttp_request_get_input_headers(c->req), "Content-Type");

	return ct && strncasecmp(ct, "application/json", 16) == 0;
}

/*
 * The request body as one contiguous buffer (no copy when possible) and its
 * length. NULL with *len 0 for an empty body.
 */
static const char *
api_body(struct api_call *c, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(c->req);

	*len = evbuffer_get_length(in);
	if (*len == 0)
		return NULL;
	return (const char *)evbuffer_pullup(in, -1);
}

static void
api_handle_start(struct api_call *c)
{
	api *a = c->a;
	struct params_start *r = NULL;
	char err[API_MSG_MAX] = "", msg[API_MSG_MAX] = "";
	const char *body;
	size_t len;
	int h, rc;

	h = api_health(a);
	if (h < 0 || h == API_HEALTH_LOADING || h == API_HEALTH_ERROR) {
		api_send_error(c, 503, api_status_object(a, NULL),
			"Pipeline is still initializing. Please wait for IDLE status.");
		return;
	}
	if (!api_is_json(c)) {
		snprintf(err, sizeof(err), "Unknown content type");
		goto bad;
	}
	body = api_body(c, &len);
	if (params_parse_start(body ? body : "", len, &r, err, sizeof(err)) < 0) {
		if (!err[0])
			snprintf(err, sizeof(err), "invalid request");
		goto bad;
	}
	rc = a->ops->start(a->ctx, r, msg, sizeof(msg));
	if (rc == 0) {
		json_t *ok = json_pack("{s:s, s:s, s:s, s:o*}", "status", "success",
			"message", "Stream started successfully",
			"request_id", r->request_id,
			"current_state", api_status_object(a, r->request_id));

		log_info("api", "stream started stream=%s", r->request_id);
		api_send_json(c, 200, ok);
	} else if (rc == -EAGAIN) {
		api_send_error(c, 503, api_status_object(a, NULL),
			"Pipeline is still initializing. Please wait for IDLE status.");
	} else if (rc == -EBUSY) {
		log_warn("api", "start refused: no free worker stream=%s",
			r->request_id);
		api_send_error(c, 503, api_status_object(a, NULL),
			"Pipeline is still in use");
	} else {
		api_send_error(c, 400, api_status_object(a, NULL),
			"Error starting stream: %s", msg[0] ? msg : strerror(-rc));
	}
	params_start_destroy(&r);
	return;
bad:
	api_send_error(c, 400, api_status_object(a, NULL),
		"Error starting stream: %s", err);
}

static void
api_handle_params(struct api_call *c)
{
	api *a = c->a;
	char err[API_MSG_MAX] = "", msg[API_MSG_MAX] = "";
	char id[API_MAX_STREAM_ID + 1];
	struct params_values v = { 0 };
	const char *body;
	size_t len;
	int rc;

	if (!api_is_json(c)) {
		api_send_error(c, 500, NULL,
			"Parameter update failed: Unknown content type");
		return;
	}
	body = api_body(c, &len);
	if (params_parse_update(body ? body : "", len, &v, err, sizeof(err)) < 0) {
		api_send_error(c, 500, NULL, "Parameter update failed: %s",
			err[0] ? err : "invalid parameters");
		return;
	}
	rc = api_resolve_stream(c, id, sizeof(id));
	if (rc == 0)
		rc = a->ops->update_params(a->ctx, id, &v, msg, sizeof(msg));
	params_values_clear(&v);
	if (rc == 0) {
		api_send_json(c, 200, json_pack("{s:s, s:s}", "status", "success",
			"message", "Parameters updated successfully"));
	} else if (rc == -ENOENT) {
		api_send_error(c, 400, NULL, "No active stream to update");
	} else if (rc == -EEXIST) {
		api_send_error(c, 400, NULL, "Several streams are running: name one "
			"with the X-Stream-Id header or the stream_id query parameter");
	} else if (rc == -EINVAL && !msg[0]) {
		api_send_error(c, 400, NULL, "Invalid stream id");
	} else {
		api_send_error(c, 500, NULL, "Parameter update failed: %s",
			msg[0] ? msg : strerror(-rc));
	}
}

static void
api_handle_stop(struct api_call *c)
{
	api *a = c->a;
	char msg[API_MSG_MAX] = "", id[API_MAX_STREAM_ID + 1];
	int rc;

	rc = api_resolve_stream(c, id, sizeof(id));
	if (rc == 0)
		rc = a->ops->stop(a->ctx, id, msg, sizeof(msg));
	if (rc == 0) {
		log_info("api", "stream stopped stream=%s", id);
		api_send_json(c, 200, json_pack("{s:s, s:s}", "status", "success",
			"message", "Stream stopped successfully"));
	} else if (rc == -ENOENT) {
		api_send_error(c, 400, NULL, "No active stream to stop");
	} else if (rc == -EEXIST) {
		api_send_error(c, 400, NULL, "Several streams are running: name one "
			"with the X-Stream-Id header or the stream_id query parameter");
	} else if (rc == -EINVAL && !msg[0]) {
		api_send_error(c, 400, NULL, "Invalid stream id");
	} else {
		api_send_error(c, 500, NULL, "Error stopping stream: %s",
			msg[0] ? msg : strerror(-rc));
	}
}

static void
api_handle_status(struct api_call *c)
{
	char id[API_MAX_STREAM_ID + 1];
	bool named;
	json_t *o;

	if (api_named_stream(c, id, sizeof(id), &named) < 0) {
		api_send_error(c, 400, NULL, "Invalid stream id");
		return;
	}
	o = api_status_object(c->a, named ? id : NULL);
	if (!o) {
		api_send_error(c, 500, NULL, "Failed to retrieve pipeline status.");
		return;
	}
	api_send_json(c, 200, o);
}

static void
api_handle_health(struct api_call *c)
{
	int h = api_health(c->a);

	if (h < 0 || h > API_HEALTH_ERROR) {
		api_send_json(c, 500, json_pack("{s:{s:s}}", "detail", "msg",
			"Failed to retrieve pipeline status."));
		return;
	}
	api_send_json(c, 200, json_pack("{s:s}", "status",
		api_health_name((enum api_health)h)));
}

static void
api_handle_hardware(struct api_call *c, bool stats)
{
	api *a = c->a;
	json_t *gpus = json_object();

	if (gpus && a->ops->gpu_info && a->ops->gpu_info(a->ctx, stats, gpus) < 0) {
		json_decref(gpus);
		api_send_error(c, 500, NULL, "Failed to retrieve GPU information.");
		return;
	}
	api_send_json(c, 200, json_pack("{s:s, s:s, s:o*}", "pipeline", a->pipeline,
		"model_id", a->model_id, stats ? "gpu_stats" : "gpu_info", gpus));
}

static void
api_handle_workers(struct api_call *c)
{
	api *a = c->a;
	json_t *arr = json_array();

	if (arr && a->ops->workers && a->ops->workers(a->ctx, arr) < 0) {
		json_decref(arr);
		api_send_error(c, 500, NULL, "Failed to list workers.");
		return;
	}
	api_send_json(c, 200, json_pack("{s:o*}", "workers", arr));
}

static void
api_handle_metrics(struct api_call *c)
{
	api *a = c->a;
	char *text = NULL;
	size_t len = 0;

	if (a->ops->metrics_refresh)
		a->ops->metrics_refresh(a->ctx);
	if (a->metrics && metrics_render(a->metrics, &text, &len) < 0) {
		api_send_error(c, 500, NULL, "Failed to render metrics.");
		return;
	}
	api_send_raw(c, 200, METRICS_CONTENT_TYPE, text ? text : "", len);
	free(text);
}

static const struct api_route *
api_find_route(const char *path)
{
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++)
		if (!strcmp(api_routes[i].path, path))
			return &api_routes[i];
	return NULL;
}

static void
api_on_request(struct evhttp_request *req, void *arg)
{
	api *a = arg;
	struct api_call c = { .a = a, .req = req };
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *auth;

	c.route = path ? api_find_route(path) : NULL;
	if (!c.route || c.route->id != ROUTE_HEALTH) {
		auth = evhttp_find_header(evhttp_request_get_input_headers(req),
		                          "Authorization");
		if (!api_auth_ok(auth, a->token)) {
			evhttp_add_header(evhttp_request_get_output_headers(req),
				"WWW-Authenticate", "Bearer");
			/* Logged at 1, 2, 4, 8... so a flood cannot fill the log. */
			a->unauthorized++;
			if ((a->unauthorized & (a->unauthorized - 1)) == 0)
				log_warn("api", "unauthorized request path=%s count=%llu",
					c.route ? c.route->path : "(unknown)",
					(unsigned long long)a->unauthorized);
			api_send_error(&c, 401, NULL, "Invalid or missing bearer token");
			return;
		}
	}
	if (!c.route) {
		api_send_error(&c, 404, NULL, "Not Found");
		return;
	}
	if (c.route->post ? cmd != EVHTTP_REQ_POST :
	    (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
			c.route->post ? "POST" : "GET, HEAD");
		api_send_error(&c, 405, NULL, "Method Not Allowed");
		return;
	}
	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) > a->max_body) {
		api_send_error(&c, 413, NULL, "Request body over %zu bytes", a->max_body);
		return;
	}
	switch (c.route->id) {
	case ROUTE_START:       api_handle_start(&c); break;
	case ROUTE_PARAMS:      api_handle_params(&c); break;
	case ROUTE_STOP:        api_handle_stop(&c); break;
	case ROUTE_STATUS:      api_handle_status(&c); break;
	case ROUTE_HEALTH:      api_handle_health(&c); break;
	case ROUTE_VERSION:
		api_send_json(&c, 200, json_pack("{s:s, s:s, s:s}", "pipeline",
			a->pipeline, "model_id", a->model_id, "version", a->version));
		break;
	case ROUTE_APP_VERSION:
		api_send_json(&c, 200, json_pack("{s:s}", "version", a->app_version));
		break;
	case ROUTE_HW_INFO:     api_handle_hardware(&c, false); break;
	case ROUTE_HW_STATS:    api_handle_hardware(&c, true); break;
	case ROUTE_WORKERS:     api_handle_workers(&c); break;
	case ROUTE_METRICS:     api_handle_metrics(&c); break;
	case ROUTE_NONE:        api_send_error(&c, 404, NULL, "Not Found"); break;
	}
}

bool
api_host_is_loopback(const char *host)
{
	return host && (!strncmp(host, "127.", 4) || !strcmp(host, "::1") ||
	       !strcmp(host, "[::1]") || !strcasecmp(host, "localhost"));
}

static int
api_bound_port(struct evhttp_bound_socket *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(s);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

static char *
api_strdup(const char *s, const char *dflt, bool *oom)
{
	char *c = strdup(s ? s : dflt);

	if (!c)
		*oom = true;
	return c;
}

int
api_create(api **out, struct event_base *base, const struct api_config *cfg,
           const struct api_backend_ops *ops, void *ctx)
{
	bool oom = false;
	api *a;
	int rc;

	if (!base || !cfg || !ops || !ops->stream_count || !ops->start ||
	    !ops->stop || !ops->update_params || cfg->port < 0 || cfg->port > 65535)
		return -EINVAL;
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	a->base = base;
	a->ops = ops;
	a->ctx = ctx;
	a->max_body = cfg->max_body ? cfg->max_body : API_MAX_BODY;
	a->host = api_strdup(cfg->host, "0.0.0.0", &oom);
	a->token = cfg->auth_token && *cfg->auth_token ?
		api_strdup(cfg->auth_token, "", &oom) : NULL;
	a->pipeline = api_strdup(cfg->pipeline, "byoc", &oom);
	a->model_id = api_strdup(cfg->model_id, "", &oom);
	a->version = api_strdup(cfg->version, "0.0.1", &oom);
	a->app_version = api_strdup(cfg->app_version, "0.0.1", &oom);
	rc = -ENOMEM;
	if (oom || !(a->http = evhttp_new(base)))
		goto err_free;
	a->metrics = cfg->metrics;
	if (a->metrics && metrics_family_add(a->metrics, &a->m_requests,
			METRICS_COUNTER, "http_requests_total",
			"HTTP API requests by route and status", "route,code",
			NULL, 0) < 0)
		a->m_requests = NULL;
	/* Slightly above the limit so that our own check answers with JSON. */
	evhttp_set_max_body_size(a->http, (ev_ssize_t)a->max_body + 1);
	evhttp_set_max_headers_size(a->http, API_MAX_HEADERS);
	evhttp_set_timeout(a->http, cfg->request_timeout_s > 0 ?
		cfg->request_timeout_s : 30);
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
		EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
		EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(a->http, api_on_request, a);
	errno = 0;
	a->sock = evhttp_bind_socket_with_handle(a->http, a->host,
		(ev_uint16_t)cfg->port);
	if (!a->sock) {
		rc = errno ? -errno : -EADDRNOTAVAIL;
		goto err_free_http;
	}
	a->port = api_bound_port(a->sock);
	log_info("api", "listening host=%s port=%d auth=%s", a->host, a->port,
		a->token ? "bearer" : "none");
	if (!a->token && !api_host_is_loopback(a->host))
		log_warn("api", "listening beyond loopback without --auth-token: "
			"anyone who reaches host=%s port=%d can start and stop streams",
			a->host, a->port);
	*out = a;
	return 0;
err_free_http:
	evhttp_free(a->http);
err_free:
	free(a->host);
	free(a->token);
	free(a->pipeline);
	free(a->model_id);
	free(a->version);
	free(a->app_version);
	free(a);
	return rc;
}

int
api_port(const api *a)
{
	return a ? a->port : -1;
}

void
api_destroy(api **p)
{
	api *a;

	if (!p || !(a = *p))
		return;
	evhttp_free(a->http);
	if (a->token)
		explicit_bzero(a->token, strlen(a->token));
	free(a->host);
	free(a->token);
	free(a->pipeline);
	free(a->model_id);
	free(a->version);
	free(a->app_version);
	free(a);
	*p = NULL;
}
