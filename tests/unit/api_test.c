/*
 * Tests of gateway/api: the API runs on a loopback port with a fake backend
 * defined here, driven by libcurl: every route and method, statuses and body
 * shapes of PROTOCOL.md section 2, stream naming, the bearer token, body
 * limits and the metrics text.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>

#include "clock.h"
#include "log.h"
#include "gateway/api.h"
#include "gateway/metrics.h"

/* ---- fake backend ---------------------------------------------------- */

struct fake {
	int health;             /* enum api_health, or <0 */
	int nstreams;
	char ids[4][API_MAX_STREAM_ID + 1];
	int start_rc, stop_rc, params_rc;
	const char *fail_msg;
	int starts, stops, updates;
	char last_id[API_MAX_STREAM_ID + 1];
	char last_sub[256];
	char last_params[1024];
	bool with_gpu;
};

static int
fake_health(void *ctx)
{
	return ((struct fake *)ctx)->health;
}

static int
fake_stream_count(void *ctx, char *only, size_t cap)
{
	struct fake *f = ctx;

	if (f->nstreams == 1)
		snprintf(only, cap, "%s", f->ids[0]);
	return f->nstreams;
}

static int
fake_find(struct fake *f, const char *id)
{
	for (int i = 0; i < f->nstreams; i++)
		if (!strcmp(f->ids[i], id))
			return i;
	return -1;
}

static int
fake_start(void *ctx, const struct params_start *r, char *msg, size_t cap)
{
	struct fake *f = ctx;

	f->starts++;
	snprintf(f->last_id, sizeof(f->last_id), "%s", r->request_id);
	snprintf(f->last_sub, sizeof(f->last_sub), "%s",
		r->subscribe_url ? r->subscribe_url : "(null)");
	snprintf(f->last_params, sizeof(f->last_params), "%s", r->params.json);
	if (f->start_rc) {
		if (f->fail_msg)
			snprintf(msg, cap, "%s", f->fail_msg);
		return f->start_rc;
	}
	if (fake_find(f, r->request_id) < 0 && f->nstreams < 4)
		snprintf(f->ids[f->nstreams++], sizeof(f->ids[0]), "%s",
			r->request_id);
	f->health = API_HEALTH_OK;
	return 0;
}

static int
fake_update(void *ctx, const char *id, const struct params_values *v,
            char *msg, size_t cap)
{
	struct fake *f = ctx;

	f->updates++;
	snprintf(f->last_id, sizeof(f->last_id), "%s", id);
	snprintf(f->last_params, sizeof(f->last_params), "%s", v->json);
	if (f->params_rc) {
		if (f->fail_msg)
			snprintf(msg, cap, "%s", f->fail_msg);
		return f->params_rc;
	}
	return fake_find(f, id) < 0 ? -ENOENT : 0;
}

static int
fake_stop(void *ctx, const char *id, char *msg, size_t cap)
{
	struct fake *f = ctx;
	int i;

	f->stops++;
	snprintf(f->last_id, sizeof(f->last_id), "%s", id);
	if (f->stop_rc)
		return f->stop_rc;
	if ((i = fake_find(f, id)) < 0)
		return -ENOENT;
	memmove(f->ids[i], f->ids[i + 1], (size_t)(f->nstreams - i - 1) * sizeof(f->ids[0]));
	if (--f->nstreams == 0)
		f->health = API_HEALTH_IDLE;
	return 0;
}

static int
fake_status(void *ctx, const char *id, json_t *out)
{
	struct fake *f = ctx;
	json_t *arr = json_object_get(out, "streams");

	if (id && fake_find(f, id) >= 0) {
		json_object_set_new(out, "client_active", json_true());
		json_object_set_new(out, "client_running", json_true());
		json_object_set_new(out, "current_params", json_pack("{s:s, s:s, s:s}",
			"subscribe_url", "http://in", "publish_url", "http://out",
			"gateway_request_id", id));
	}
	for (int i = 0; i < f->nstreams; i++)
		json_array_append_new(arr, json_pack("{s:s}", "id", f->ids[i]));
	return 0;
}

static int
fake_workers(void *ctx, json_t *arr)
{
	return json_array_append_new(arr, json_pack("{s:i, s:i, s:i, s:s, s:n, s:i, s:i, s:n}",
		"id", 0, "pid", 1234, "gpu", -1, "state", "idle", "stream",
		"restarts", 0, "frames", 0, "last_error"));
}

static int
fake_gpu(void *ctx, bool stats, json_t *gpus)
{
	struct fake *f = ctx;

	if (f->with_gpu)
		json_object_set_new(gpus, "0", json_pack("{s:s, s:s}", "id", "GPU-x",
			"name", stats ? "stats" : "info"));
	return 0;
}

static const struct api_backend_ops fake_ops = {
	.health = fake_health,
	.stream_count = fake_stream_count,
	.start = fake_start,
	.update_params = fake_update,
	.stop = fake_stop,
	.status = fake_status,
	.workers = fake_workers,
	.gpu_info = fake_gpu,
};

/* ---- server on a thread ------------------------------------------------ */

struct server {
	struct event_base *base;
	api *api;
	metrics *m;
	pthread_t th;
	struct fake fake;
	int port;
};

static void *
server_loop(void *arg)
{
	event_base_dispatch(((struct server *)arg)->base);
	return NULL;
}

static void
server_start(struct server *s, const char *token)
{
	struct api_config cfg = {
		.host = "127.0.0.1", .port = 0, .auth_token = token,
		.pipeline = "byoc", .model_id = "testcap", .version = "9.9.9",
		.app_version = "1.2.3",
	};

	memset(s, 0, sizeof(*s));
	s->fake.health = API_HEALTH_IDLE;
	CHECK_OK(evthread_use_pthreads());
	CHECK(s->base = event_base_new());
	CHECK_OK(metrics_create(&s->m));
	cfg.metrics = s->m;
	CHECK_OK(api_create(&s->api, s->base, &cfg, &fake_ops, &s->fake));
	s->port = api_port(s->api);
	CHECK(s->port > 0);
	CHECK_OK(pthread_create(&s->th, NULL, server_loop, s));
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
server_stop(struct server *s)
{
	event_base_loopbreak(s->base);
	pthread_join(s->th, NULL);
	api_destroy(&s->api);
	CHECK(s->api == NULL);
	event_base_free(s->base);
	metrics_destroy(&s->m);
	curl_global_cleanup();
	libevent_global_shutdown();
}

/* ---- client ------------------------------------------------------------ */

struct resp {
	long code;
	char *body;
	size_t len;
	char ctype[128];
	char allow[64];
	json_t *json; /* parsed body, when it is JSON */
};

static size_t
resp_write(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	char *nb = realloc(r->body, r->len + sz * n + 1);

	if (!nb)
		return 0;
	r->body = nb;
	memcpy(r->body + r->len, p, sz * n);
	r->len += sz * n;
	r->body[r->len] = '\0';
	return sz * n;
}

static size_t
resp_header(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;

	if (len > 14 && !strncasecmp(p, "Content-Type: ", 14))
		snprintf(r->ctype, sizeof(r->ctype), "%.*s", (int)(len - 16), p + 14);
	if (len > 7 && !strncasecmp(p, "Allow: ", 7))
		snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(len - 9), p + 7);
	return len;
}

static void
resp_free(struct resp *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

/*
 * One request. hdrs: NULL-terminated extra headers. body NULL: none.
 * Fills *r (resp_free it). Returns the curl result.
 */
static CURLcode
req(struct server *s, struct resp *r, const char *method, const char *path,
    const char *const *hdrs, const char *body, size_t blen)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char url[512];
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	CHECK(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	h = curl_slist_append(h, "Expect:");
	for (; hdrs && *hdrs; hdrs++)
		h = curl_slist_append(h, *hdrs);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	if (r->body)
		r->json = json_loadb(r->body, r->len, 0, NULL);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

static const char *const json_ct[] = { "Content-Type: application/json", NULL };

static void
get(struct server *s, struct resp *r, const char *path)
{
	CHECK_EQ(req(s, r, "GET", path, NULL, NULL, 0), CURLE_OK);
}

static void
post_json(struct server *s, struct resp *r, const char *path, const char *body)
{
	CHECK_EQ(req(s, r, "POST", path, json_ct, body, strlen(body)), CURLE_OK);
}

static const char *
jstr(const struct resp *r, const char *key)
{
	return json_string_value(json_object_get(r->json, key));
}

/* The error shape: status "error", message, detail.msg == message. */
static void
check_error(const struct resp *r, long code, const char *msg_prefix)
{
	const char *m = jstr(r, "message");

	CHECK_MSG(r->code == code, "code %ld != %ld, body %s", r->code, code,
		r->body ? r->body : "");
	CHECK(r->json != NULL);
	CHECK_STR(jstr(r, "status"), "error");
	CHECK_MSG(m && !strncmp(m, msg_prefix, strlen(msg_prefix)),
		"message \"%s\" lacks \"%s\"", m ? m : "(null)", msg_prefix);
	CHECK_STR(json_string_value(json_object_get(json_object_get(r->json,
		"detail"), "msg")), m);
	CHECK(!strncmp(r->ctype, "application/json", 16));
}

/* ---- cases ------------------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* 500 keep-alive GET /health round trips: prints p50/p99 (never asserted). */
static void
health_latency(struct server *s)
{
	enum { N = 500 };
	static int64_t t[N];
	struct resp r = { 0 };
	char url[64];
	CURL *c = curl_easy_init();

	CHECK(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", s->port);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	for (int i = 0; i < N; i++) {
		int64_t t0 = clock_now_ns();

		CHECK_EQ(curl_easy_perform(c), CURLE_OK);
		t[i] = clock_now_ns() - t0;
		free(r.body);
		r.body = NULL;
		r.len = 0;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.code);
	CHECK_EQ(r.code, 200);
	curl_easy_cleanup(c);
	qsort(t, N, sizeof(t[0]), cmp_i64);
	printf("  GET /health keep-alive x%d: p50 %.3f ms, p99 %.3f ms\n", N,
		t[N / 2] / 1e6, t[N * 99 / 100] / 1e6);
}

static void
api_health_states(void)
{
	static const char *const names[] = { "LOADING", "IDLE", "OK", "ERROR" };
	struct server s;
	struct resp r;
	int64_t t0;

	server_start(&s, NULL);
	for (int h = 0; h < 4; h++) {
		s.fake.health = h;
		t0 = clock_now_ns();
		get(&s, &r, "/health");
		if (h == 0)
			printf("  GET /health round trip %.2f ms\n", (clock_now_ns() - t0) / 1e6);
		CHECK_EQ(r.code, 200);
		CHECK_STR(jstr(&r, "status"), names[h]);
		CHECK_EQ(json_object_size(r.json), 1);
		CHECK(!strncmp(r.ctype, "application/json", 16));
		resp_free(&r);
	}
	health_latency(&s);
	s.fake.health = -EIO;
	get(&s, &r, "/health");
	CHECK_EQ(r.code, 500);
	CHECK_STR(json_string_value(json_object_get(json_object_get(r.json,
		"detail"), "msg")), "Failed to retrieve pipeline status.");
	resp_free(&r);
	server_stop(&s);
}

static void
api_info_endpoints(void)
{
	struct server s;
	struct resp r;
	json_t *w;

	server_start(&s, NULL);
	get(&s, &r, "/version");
	CHECK_EQ(r.code, 200);
	CHECK_STR(jstr(&r, "pipeline"), "byoc");
	CHECK_STR(jstr(&r, "model_id"), "testcap");
	CHECK_STR(jstr(&r, "version"), "9.9.9");
	resp_free(&r);
	get(&s, &r, "/app-version");
	CHECK_STR(jstr(&r, "version"), "1.2.3");
	resp_free(&r);
	get(&s, &r, "/hardware/info");
	CHECK_EQ(r.code, 200);
	CHECK_STR(jstr(&r, "pipeline"), "byoc");
	CHECK_STR(jstr(&r, "model_id"), "testcap");
	CHECK(json_is_object(json_object_get(r.json, "gpu_info")));
	CHECK_EQ(json_object_size(json_object_get(r.json, "gpu_info")), 0);
	resp_free(&r);
	s.fake.with_gpu = true;
	get(&s, &r, "/hardware/stats");
	CHECK_STR(json_string_value(json_object_get(json_object_get(json_object_get(
		r.json, "gpu_stats"), "0"), "name")), "stats");
	resp_free(&r);
	get(&s, &r, "/hardware/info");
	CHECK_STR(json_string_value(json_object_get(json_object_get(json_object_get(
		r.json, "gpu_info"), "0"), "name")), "info");
	resp_free(&r);
	get(&s, &r, "/workers");
	CHECK_EQ(r.code, 200);
	w = json_array_get(json_object_get(r.json, "workers"), 0);
	CHECK(w != NULL);
	CHECK_EQ(json_integer_value(json_object_get(w, "gpu")), -1);
	CHECK_STR(json_string_value(json_object_get(w, "state")), "idle");
	CHECK(json_is_null(json_object_get(w, "stream")));
	resp_free(&r);
	get(&s, &r, "/metrics");
	CHECK_EQ(r.code, 200);
	CHECK(!strncmp(r.ctype, "text/plain", 10));
	CHECK_MSG(strstr(r.body, "ctrickle_http_requests_total{route=\"workers\",code=\"200\"} 1\n"),
		"metrics: %s", r.body);
	CHECK(strstr(r.body, "ctrickle_http_requests_total{route=\"version\",code=\"200\"} 1\n"));
	resp_free(&r);
	server_stop(&s);
}

static void
api_methods_and_paths(void)
{
	static const char *const posts[] = { "/stream/start", "/api/stream/start",
		"/live-video-to-video", "/stream/params", "/api/stream/params",
		"/stream/stop", "/api/stream/stop" };
	static const char *const gets[] = { "/stream/status", "/api/stream/status",
		"/health", "/version", "/app-version", "/hardware/info",
		"/hardware/stats", "/workers", "/metrics" };
	struct server s;
	struct resp r;

	server_start(&s, NULL);
	for (size_t i = 0; i < sizeof(posts) / sizeof(posts[0]); i++) {
		get(&s, &r, posts[i]);
		check_error(&r, 405, "Method Not Allowed");
		CHECK_STR(r.allow, "POST");
		resp_free(&r);
	}
	for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
		post_json(&s, &r, gets[i], "{}");
		check_error(&r, 405, "Method Not Allowed");
		resp_free(&r);
		CHECK_EQ(req(&s, &r, "DELETE", gets[i], NULL, NULL, 0), CURLE_OK);
		CHECK_EQ(r.code, 405);
		resp_free(&r);
		get(&s, &r, gets[i]);
		CHECK_MSG(r.code == 200, "GET %s: %ld", gets[i], r.code);
		resp_free(&r);
	}
	CHECK_EQ(req(&s, &r, "HEAD", "/health", NULL, NULL, 0), CURLE_OK);
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	get(&s, &r, "/nope");
	check_error(&r, 404, "Not Found");
	resp_free(&r);
	get(&s, &r, "/stream/start/");
	CHECK_EQ(r.code, 404);
	resp_free(&r);
	/* The stream aliases reach the same handlers. */
	post_json(&s, &r, "/api/stream/start", "{\"gateway_request_id\":\"a1\"}");
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	post_json(&s, &r, "/live-video-to-video", "{\"gateway_request_id\":\"a2\"}");
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	CHECK_EQ(s.fake.starts, 2);
	CHECK_EQ(req(&s, &r, "POST", "/api/stream/stop?stream_id=a1", NULL, "", 0), CURLE_OK);
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	server_stop(&s);
}

static void
api_start_success(void)
{
	struct server s;
	struct resp r;
	json_t *st;

	server_start(&s, NULL);
	post_json(&s, &r, "/stream/start", "{\"subscribe_url\":\"http://h:2939/in\","
		"\"publish_url\":\"https://h/out\",\"control_url\":\"\",\"events_url\":null,"
		"\"gateway_request_id\":\"req-1\",\"manifest_id\":\"ignored\","
		"\"params\":{\"width\":\"640\",\"height\":360,\"max_framerate\":30,"
		"\"prompt\":\"x\"}}");
	CHECK_EQ(r.code, 200);
	CHECK_STR(jstr(&r, "status"), "success");
	CHECK_STR(jstr(&r, "message"), "Stream started successfully");
	CHECK_STR(jstr(&r, "request_id"), "req-1");
	st = json_object_get(r.json, "current_state");
	CHECK(json_is_object(st));
	CHECK_STR(json_string_value(json_object_get(st, "status")), "OK");
	CHECK_STR(s.fake.last_id, "req-1");
	CHECK_STR(s.fake.last_sub, "http://h:2939/in");
	CHECK(strstr(s.fake.last_params, "\"prompt\":\"x\""));
	resp_free(&r);
	/* No params: the backend sees {}. */
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"req-2\",\"params\":null}");
	CHECK_EQ(r.code, 200);
	CHECK_STR(s.fake.last_params, "{}");
	CHECK_STR(s.fake.last_sub, "(null)");
	resp_free(&r);
	/* The same id again goes to the backend (it replaces the stream). */
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"req-2\"}");
	CHECK_EQ(r.code, 200);
	CHECK_EQ(s.fake.starts, 3);
	CHECK_EQ(s.fake.nstreams, 2);
	resp_free(&r);
	server_stop(&s);
}

static void
api_start_errors(void)
{
	static const char *const bad[] = {
		"not json",
		"[1,2]",
		"{}",
		"{\"gateway_request_id\":\"\"}",
		"{\"gateway_request_id\":7}",
		"{\"gateway_request_id\":\"ctl\\u0001char\"}",
		"{\"gateway_request_id\":\"x\",\"params\":[]}",
		"{\"gateway_request_id\":\"x\",\"params\":{\"width\":512}}",
		"{\"gateway_request_id\":\"x\",\"params\":{\"width\":0,\"height\":5}}",
		"{\"gateway_request_id\":\"x\",\"params\":{\"max_framerate\":61}}",
		"{\"gateway_request_id\":\"x\",\"params\":{\"max_framerate\":\"abc\"}}",
		"{\"gateway_request_id\":\"x\",\"params\":{\"detect_out_resolution\":\"maybe\"}}",
		"{\"gateway_request_id\":\"x\",\"subscribe_url\":\"file:///etc/passwd\"}",
		"{\"gateway_request_id\":\"x\",\"publish_url\":5}",
		"",
	};
	struct server s;
	struct resp r;

	server_start(&s, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		post_json(&s, &r, "/stream/start", bad[i]);
		check_error(&r, 400, "Error starting stream: ");
		CHECK(json_is_object(json_object_get(r.json, "current_state")));
		resp_free(&r);
	}
	CHECK_EQ(s.fake.starts, 0);
	/* An error text cut inside a multi-byte character is still valid JSON. */
	{
		char body[4096] = "{\"gateway_request_id\":\"x\",\"params\":{\"width\":\"";

		for (int i = 0; i < 300; i++)
			strcat(body, "\u00e9");
		strcat(body, "\",\"height\":5}}");
		post_json(&s, &r, "/stream/start", body);
		check_error(&r, 400, "Error starting stream: ");
		resp_free(&r);
	}
	/* Content-Type must start with application/json. */
	CHECK_EQ(req(&s, &r, "POST", "/stream/start", (const char *[]){
		"Content-Type: text/plain", NULL }, "{\"gateway_request_id\":\"x\"}", 26), CURLE_OK);
	check_error(&r, 400, "Error starting stream: Unknown content type");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/start", (const char *[]){
		"Content-Type: application/json; charset=utf-8", NULL },
		"{\"gateway_request_id\":\"x\"}", 26), CURLE_OK);
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	/* Not ready. */
	s.fake.health = API_HEALTH_LOADING;
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"y\"}");
	check_error(&r, 503, "Pipeline is still initializing. Please wait for IDLE status.");
	CHECK_STR(json_string_value(json_object_get(json_object_get(r.json,
		"current_state"), "status")), "LOADING");
	resp_free(&r);
	s.fake.health = API_HEALTH_ERROR;
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"y\"}");
	check_error(&r, 503, "Pipeline is still initializing");
	resp_free(&r);
	s.fake.health = API_HEALTH_OK;
	/* No free worker. */
	s.fake.start_rc = -EBUSY;
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"y\"}");
	check_error(&r, 503, "Pipeline is still in use");
	CHECK(json_object_get(r.json, "current_state"));
	resp_free(&r);
	s.fake.start_rc = -EAGAIN;
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"y\"}");
	check_error(&r, 503, "Pipeline is still initializing");
	resp_free(&r);
	s.fake.start_rc = -EIO;
	s.fake.fail_msg = "worker refused the stream";
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"y\"}");
	check_error(&r, 400, "Error starting stream: worker refused the stream");
	resp_free(&r);
	server_stop(&s);
}

static void
api_params_updates(void)
{
	struct server s;
	struct resp r;

	server_start(&s, NULL);
	/* Validated before the no-stream check (PyTrickle's order). */
	post_json(&s, &r, "/stream/params", "{\"max_framerate\":0}");
	check_error(&r, 500, "Parameter update failed: ");
	resp_free(&r);
	post_json(&s, &r, "/stream/params", "{bad");
	check_error(&r, 500, "Parameter update failed: ");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/params", NULL, "a=b", 3), CURLE_OK);
	check_error(&r, 500, "Parameter update failed: Unknown content type");
	resp_free(&r);
	post_json(&s, &r, "/stream/params", "{\"prompt\":\"cat\"}");
	check_error(&r, 400, "No active stream to update");
	resp_free(&r);
	CHECK_EQ(s.fake.updates, 0);
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"one\"}");
	resp_free(&r);
	post_json(&s, &r, "/api/stream/params", "{\"prompt\":\"cat\",\"max_framerate\":\"12\"}");
	CHECK_EQ(r.code, 200);
	CHECK_STR(jstr(&r, "status"), "success");
	CHECK_STR(jstr(&r, "message"), "Parameters updated successfully");
	CHECK_STR(s.fake.last_id, "one");
	CHECK_STR(s.fake.last_params, "{\"prompt\":\"cat\",\"max_framerate\":12}");
	resp_free(&r);
	s.fake.params_rc = -EIO;
	s.fake.fail_msg = "plugin said no";
	post_json(&s, &r, "/stream/params", "{}");
	check_error(&r, 500, "Parameter update failed: plugin said no");
	resp_free(&r);
	server_stop(&s);
}

static void
api_stream_naming(void)
{
	struct server s;
	struct resp r;
	const char *hdr_b[] = { "X-Stream-Id: b", NULL };
	const char *hdr_bad[] = { "X-Stream-Id: a\tb", NULL };
	const char *hdr_utf8[] = { "X-Stream-Id: a\xff", NULL };

	server_start(&s, NULL);
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", NULL, "stream ended", 12), CURLE_OK);
	check_error(&r, 400, "No active stream to stop");
	resp_free(&r);
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"a\"}");
	resp_free(&r);
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"b\"}");
	resp_free(&r);
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"c\"}");
	resp_free(&r);
	/* Several running, none named. */
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", NULL, "", 0), CURLE_OK);
	check_error(&r, 400, "Several streams are running");
	resp_free(&r);
	post_json(&s, &r, "/stream/params", "{}");
	check_error(&r, 400, "Several streams are running");
	resp_free(&r);
	/* Header, then query; the header wins. */
	CHECK_EQ(req(&s, &r, "POST", "/stream/params?stream_id=c", (const char *[]){
		"X-Stream-Id: b", "Content-Type: application/json", NULL }, "{}", 2), CURLE_OK);
	CHECK_EQ(r.code, 200);
	CHECK_STR(s.fake.last_id, "b");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", hdr_b, "stream ended", 12), CURLE_OK);
	CHECK_EQ(r.code, 200);
	CHECK_STR(jstr(&r, "message"), "Stream stopped successfully");
	CHECK_STR(s.fake.last_id, "b");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop?stream_id=c", NULL, NULL, 0), CURLE_OK);
	CHECK_EQ(r.code, 200);
	CHECK_STR(s.fake.last_id, "c");
	resp_free(&r);
	/* A named stream that does not run. */
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", hdr_b, "", 0), CURLE_OK);
	check_error(&r, 400, "No active stream to stop");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", hdr_bad, "", 0), CURLE_OK);
	check_error(&r, 400, "Invalid stream id");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", hdr_utf8, "", 0), CURLE_OK);
	check_error(&r, 400, "Invalid stream id");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "GET", "/stream/status", hdr_utf8, NULL, 0), CURLE_OK);
	check_error(&r, 400, "Invalid stream id");
	resp_free(&r);
	/* Only one left: unnamed calls mean it. */
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", NULL, "", 0), CURLE_OK);
	CHECK_EQ(r.code, 200);
	CHECK_STR(s.fake.last_id, "a");
	resp_free(&r);
	s.fake.nstreams = 1;
	s.fake.stop_rc = -EIO;
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", NULL, "", 0), CURLE_OK);
	check_error(&r, 500, "Error stopping stream: ");
	resp_free(&r);
	server_stop(&s);
}

static void
api_status_fields(void)
{
	static const char *const keys[] = { "status", "state", "error_message",
		"pipeline_ready", "active_streams", "startup_complete",
		"pipeline_state", "additional_info", "client_active", "streams" };
	struct server s;
	struct resp r;

	server_start(&s, NULL);
	get(&s, &r, "/stream/status");
	CHECK_EQ(r.code, 200);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CHECK_MSG(json_object_get(r.json, keys[i]), "no %s", keys[i]);
	CHECK_STR(jstr(&r, "status"), "IDLE");
	CHECK(json_is_null(json_object_get(r.json, "error_message")));
	CHECK(json_is_true(json_object_get(r.json, "pipeline_ready")));
	CHECK_EQ(json_integer_value(json_object_get(r.json, "active_streams")), 0);
	CHECK(json_is_false(json_object_get(r.json, "client_active")));
	CHECK_EQ(json_array_size(json_object_get(r.json, "streams")), 0);
	resp_free(&r);
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"s1\"}");
	resp_free(&r);
	get(&s, &r, "/stream/status");
	CHECK_STR(jstr(&r, "status"), "OK");
	CHECK_STR(jstr(&r, "pipeline_state"), "IDLE");
	CHECK(json_is_true(json_object_get(r.json, "client_active")));
	CHECK_STR(json_string_value(json_object_get(json_object_get(r.json,
		"current_params"), "gateway_request_id")), "s1");
	CHECK_EQ(json_integer_value(json_object_get(r.json, "active_streams")), 1);
	resp_free(&r);
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"s2\"}");
	resp_free(&r);
	get(&s, &r, "/stream/status");
	CHECK(json_is_false(json_object_get(r.json, "client_active")));
	CHECK_EQ(json_array_size(json_object_get(r.json, "streams")), 2);
	resp_free(&r);
	get(&s, &r, "/api/stream/status?stream_id=s2");
	CHECK(json_is_true(json_object_get(r.json, "client_active")));
	CHECK_STR(json_string_value(json_object_get(json_object_get(r.json,
		"current_params"), "gateway_request_id")), "s2");
	resp_free(&r);
	s.fake.health = API_HEALTH_LOADING;
	get(&s, &r, "/stream/status");
	CHECK(json_is_false(json_object_get(r.json, "startup_complete")));
	CHECK(json_is_false(json_object_get(r.json, "pipeline_ready")));
	resp_free(&r);
	s.fake.health = -EIO;
	get(&s, &r, "/stream/status");
	check_error(&r, 500, "Failed to retrieve pipeline status.");
	resp_free(&r);
	server_stop(&s);
}

static void
api_auth_token(void)
{
	static const char *const paths[] = { "/stream/status", "/version",
		"/app-version", "/hardware/info", "/hardware/stats", "/workers",
		"/metrics", "/nope" };
	const char *right[] = { "Authorization: Bearer s3cret-T0ken", NULL };
	const char *lower[] = { "Authorization: bearer s3cret-T0ken", NULL };
	const char *wrong[] = { "Authorization: Bearer s3cret-T0kem", NULL };
	const char *longer[] = { "Authorization: Bearer s3cret-T0ken1", NULL };
	const char *raw[] = { "Authorization: s3cret-T0ken", NULL };
	const char *post_right[] = { "Authorization: Bearer s3cret-T0ken",
		"Content-Type: application/json", NULL };
	struct server s;
	struct resp r;
	char logpath[512], logbuf[65536];
	int fd, saved;
	ssize_t n;

	/* Everything this case logs goes to a file, checked for the token below. */
	log_set_level(LOG_DEBUG);
	snprintf(logpath, sizeof(logpath), "%s/log", th_tmpdir());
	fd = open(logpath, O_CREAT | O_TRUNC | O_RDWR, 0600);
	CHECK(fd >= 0);
	saved = dup(2);
	dup2(fd, 2);
	server_start(&s, "s3cret-T0ken");
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		get(&s, &r, paths[i]);
		check_error(&r, 401, "Invalid or missing bearer token");
		resp_free(&r);
		CHECK_EQ(req(&s, &r, "GET", paths[i], wrong, NULL, 0), CURLE_OK);
		CHECK_EQ(r.code, 401);
		resp_free(&r);
		CHECK_EQ(req(&s, &r, "GET", paths[i], right, NULL, 0), CURLE_OK);
		CHECK_EQ(r.code, strcmp(paths[i], "/nope") ? 200 : 404);
		resp_free(&r);
	}
	CHECK_EQ(req(&s, &r, "GET", "/version", lower, NULL, 0), CURLE_OK);
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "GET", "/version", longer, NULL, 0), CURLE_OK);
	CHECK_EQ(r.code, 401);
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "GET", "/version", raw, NULL, 0), CURLE_OK);
	CHECK_EQ(r.code, 401);
	resp_free(&r);
	/* POST endpoints: nothing reaches the backend without the token. */
	post_json(&s, &r, "/stream/start", "{\"gateway_request_id\":\"x\"}");
	check_error(&r, 401, "Invalid or missing bearer token");
	resp_free(&r);
	CHECK_EQ(req(&s, &r, "POST", "/stream/stop", NULL, "", 0), CURLE_OK);
	CHECK_EQ(r.code, 401);
	resp_free(&r);
	CHECK_EQ(s.fake.starts + s.fake.stops, 0);
	CHECK_EQ(req(&s, &r, "POST", "/stream/start", post_right,
		"{\"gateway_request_id\":\"x\"}", 26), CURLE_OK);
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	/* /health stays open. */
	get(&s, &r, "/health");
	CHECK_EQ(r.code, 200);
	CHECK_STR(jstr(&r, "status"), "OK");
	resp_free(&r);
	server_stop(&s);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, logbuf, sizeof(logbuf) - 1, 0);
	close(fd);
	CHECK(n > 0);
	logbuf[n] = '\0';
	CHECK(strstr(logbuf, "unauthorized request"));
	CHECK(strstr(logbuf, "auth=bearer"));
	CHECK_MSG(!strstr(logbuf, "s3cret-T0ke"), "token in log: %s", logbuf);

	CHECK(api_auth_ok("Bearer abc", "abc"));
	CHECK(api_auth_ok(NULL, NULL));
	CHECK(api_auth_ok("anything", ""));
	CHECK(!api_auth_ok(NULL, "abc"));
	CHECK(!api_auth_ok("Bearer ab", "abc"));
	CHECK(!api_auth_ok("Bearer abcd", "abc"));
	CHECK(!api_auth_ok("Bearer ", "abc"));
	CHECK(!api_auth_ok("Basic abc", "abc"));
}

static void
api_body_limits(void)
{
	size_t big = API_MAX_BODY + 1;
	char *body = malloc(API_MAX_BODY + 1024);
	const char *huge_hdr[] = { NULL, NULL };
	char *hv;
	struct server s;
	struct resp r;
	CURLcode rc;

	CHECK(body);
	server_start(&s, NULL);
	/* Exactly the limit: accepted and parsed (a valid object). */
	memset(body, ' ', API_MAX_BODY);
	memcpy(body, "{\"gateway_request_id\":\"big\"}", 28);
	CHECK_EQ(req(&s, &r, "POST", "/stream/start", json_ct, body, API_MAX_BODY), CURLE_OK);
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	/* One byte over, and far over: 413. */
	body[big - 1] = ' ';
	CHECK_EQ(req(&s, &r, "POST", "/stream/params", json_ct, body, big), CURLE_OK);
	check_error(&r, 413, "Request body over");
	resp_free(&r);
	memset(body, 'x', API_MAX_BODY + 1024);
	rc = req(&s, &r, "POST", "/stream/start", json_ct, body, API_MAX_BODY + 1024);
	CHECK_MSG(rc != CURLE_OK || r.code == 413, "rc %d code %ld", rc, r.code);
	resp_free(&r);
	CHECK_EQ(s.fake.updates, 0);
	/* Headers over the limit are refused too. */
	hv = malloc(API_MAX_HEADERS + 64);
	CHECK(hv);
	strcpy(hv, "X-Big: ");
	memset(hv + 7, 'a', API_MAX_HEADERS);
	hv[API_MAX_HEADERS + 7] = '\0';
	huge_hdr[0] = hv;
	rc = req(&s, &r, "GET", "/version", huge_hdr, NULL, 0);
	CHECK_MSG(rc != CURLE_OK || r.code >= 400, "rc %d code %ld", rc, r.code);
	resp_free(&r);
	free(hv);
	/* The server still answers. */
	get(&s, &r, "/health");
	CHECK_EQ(r.code, 200);
	resp_free(&r);
	free(body);
	server_stop(&s);
}

static void
api_bind_conflict(void)
{
	struct server s;
	struct api_config cfg = { .host = "127.0.0.1" };
	api *a2 = NULL;

	server_start(&s, NULL);
	cfg.port = s.port;
	CHECK_EQ(api_create(&a2, s.base, &cfg, &fake_ops, &s.fake), -EADDRINUSE);
	CHECK(a2 == NULL);
	cfg.port = 0;
	cfg.host = "not-an-address.invalid";
	CHECK(api_create(&a2, s.base, &cfg, &fake_ops, &s.fake) < 0);
	CHECK_EQ(api_create(&a2, s.base, &cfg, &(struct api_backend_ops){ 0 }, NULL), -EINVAL);
	server_stop(&s);
	CHECK_STR(api_health_name(API_HEALTH_IDLE), "IDLE");
	CHECK(api_host_is_loopback("127.0.0.1"));
	CHECK(api_host_is_loopback("::1"));
	CHECK(api_host_is_loopback("localhost"));
	CHECK(!api_host_is_loopback("0.0.0.0"));
	CHECK(!api_host_is_loopback("::"));
	CHECK(!api_host_is_loopback("10.1.2.3"));
}

static const struct th_case cases[] = {
	TH_CASE(api_health_states),
	TH_CASE(api_info_endpoints),
	TH_CASE(api_methods_and_paths),
	TH_CASE(api_start_success),
	TH_CASE(api_start_errors),
	TH_CASE(api_params_updates),
	TH_CASE(api_stream_naming),
	TH_CASE(api_status_fields),
	TH_CASE(api_auth_token),
	TH_CASE(api_body_limits),
	TH_CASE(api_bind_conflict),
	TH_END,
};

TH_MAIN(cases)
