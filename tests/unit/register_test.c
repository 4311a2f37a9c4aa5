/*
 * Tests of gateway/register against a tiny evhttp orchestrator on a thread:
 * settings from the environment, the body and headers sent, retries, give-up
 * statuses, timeouts, unregister, the job thread and its cancellation, and
 * that the secret never reaches the log.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>

#include "clock.h"
#include "gateway/register.h"

#define SECRET "orch-s3cret-XYZ"

struct orch {
	struct event_base *base;
	struct evhttp *http;
	pthread_t th;
	int port;
	int fail_first;          /* answer 500 to this many requests */
	int status_after;        /* then this status */
	int nreq;
	char path[8][64];
	char auth[8][64];
	char ctype[8][64];
	char body[8][512];
};

static void
orch_cb(struct evhttp_request *req, void *arg)
{
	struct orch *o = arg;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	const char *v;
	int i = o->nreq < 8 ? o->nreq : 7;
	size_t len = evbuffer_get_length(b);

	snprintf(o->path[i], sizeof(o->path[i]), "%s", evhttp_request_get_uri(req));
	v = evhttp_find_header(in, "Authorization");
	snprintf(o->auth[i], sizeof(o->auth[i]), "%s", v ? v : "(none)");
	v = evhttp_find_header(in, "Content-Type");
	snprintf(o->ctype[i], sizeof(o->ctype[i]), "%s", v ? v : "(none)");
	if (len >= sizeof(o->body[i]))
		len = sizeof(o->body[i]) - 1;
	evbuffer_remove(b, o->body[i], len);
	o->body[i][len] = '\0';
	o->nreq++;
	evhttp_send_reply(req, o->nreq <= o->fail_first ? 500 : o->status_after,
		"X", NULL);
}

static void *
orch_loop(void *arg)
{
	event_base_dispatch(((struct orch *)arg)->base);
	return NULL;
}

static void
orch_start(struct orch *o, int fail_first, int status_after)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	memset(o, 0, sizeof(*o));
	o->fail_first = fail_first;
	o->status_after = status_after;
	CHECK_OK(evthread_use_pthreads());
	CHECK(o->base = event_base_new());
	CHECK(o->http = evhttp_new(o->base));
	evhttp_set_gencb(o->http, orch_cb, o);
	CHECK(s = evhttp_bind_socket_with_handle(o->http, "127.0.0.1", 0));
	CHECK_OK(getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&sa, &sl));
	o->port = ntohs(sa.sin_port);
	CHECK_OK(pthread_create(&o->th, NULL, orch_loop, o));
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
orch_stop(struct orch *o)
{
	event_base_loopbreak(o->base);
	pthread_join(o->th, NULL);
	evhttp_free(o->http);
	event_base_free(o->base);
	curl_global_cleanup();
	libevent_global_shutdown();
}

/* A config for the local orchestrator on port (fast retries). */
static void
cfg_for(struct register_config *rc, int port, const char *token)
{
	char url[64], *env[4];
	char err[128];

	snprintf(url, sizeof(url), "ORCH_URL=http://127.0.0.1:%d/", port);
	env[0] = url;
	env[1] = "ORCH_SECRET=" SECRET;
	env[2] = "CAPABILITY_URL=http://10.0.0.5:8000";
	env[3] = NULL;
	CHECK_OK(register_config_from_env(rc, env, "mycap", token, 3, err, sizeof(err)));
	rc->retry_delay_ms = 50;
	rc->timeout_ms = 500;
}

static void
register_env_settings(void)
{
	char *const none[] = { "ORCH_URL=http://o:8935", NULL };
	char *const full[] = { "ORCH_URL=https://o:8935//", "ORCH_SECRET=s",
		"CAPABILITY_URL=http://me:9000", "CAPABILITY_DESCRIPTION=gray filter",
		"CAPABILITY_PRICE_PER_UNIT=7", "CAPABILITY_PRICE_SCALING=1000",
		"CAPABILITY_CAPACITY=2", "CAPABILITY_CURRENCY=wei", NULL };
	char *const bad[] = { "ORCH_URL=http://o", "ORCH_SECRET=s",
		"CAPABILITY_PRICE_PER_UNIT=-1", NULL };
	char *const badurl[] = { "ORCH_URL=o:8935", "ORCH_SECRET=s", NULL };
	struct register_config rc;
	char err[128], *body;
	json_t *j;

	CHECK_EQ(register_config_from_env(&rc, none, "x", NULL, 1, err, sizeof(err)), -ENOENT);
	CHECK_EQ(register_config_from_env(&rc, bad, "x", NULL, 1, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "CAPABILITY_PRICE_PER_UNIT"));
	register_config_free(&rc);
	CHECK_EQ(register_config_from_env(&rc, badurl, "x", NULL, 1, err, sizeof(err)), -EINVAL);
	register_config_free(&rc);

	CHECK_OK(register_config_from_env(&rc, full, "", "tok", 5, err, sizeof(err)));
	CHECK_STR(rc.orch_url, "https://o:8935");
	CHECK_STR(rc.name, REGISTER_DEFAULT_NAME);
	CHECK_EQ(rc.capacity, 2); /* CAPABILITY_CAPACITY lowers 5 to 2 */
	CHECK_EQ(rc.tries, 3);
	CHECK_EQ(rc.retry_delay_ms, 2000);
	CHECK_EQ(rc.timeout_ms, 1500);
	body = register_body(&rc);
	CHECK(j = json_loads(body, 0, NULL));
	CHECK_STR(json_string_value(json_object_get(j, "url")), "http://me:9000");
	CHECK_STR(json_string_value(json_object_get(j, "description")), "gray filter");
	CHECK_EQ(json_integer_value(json_object_get(j, "capacity")), 2);
	CHECK_EQ(json_integer_value(json_object_get(j, "price_per_unit")), 7);
	CHECK_EQ(json_integer_value(json_object_get(j, "price_scaling")), 1000);
	CHECK_STR(json_string_value(json_object_get(j, "currency")), "wei");
	CHECK_STR(json_string_value(json_object_get(j, "token")), "tok");
	json_decref(j);
	free(body);
	register_config_free(&rc);

	CHECK_OK(register_config_from_env(&rc, (char *const []){ "ORCH_URL=http://o",
		"ORCH_SECRET=s", NULL }, "cap", NULL, 4, err, sizeof(err)));
	CHECK_STR(rc.url, REGISTER_DEFAULT_URL);
	CHECK_EQ(rc.capacity, 4);
	body = register_body(&rc);
	CHECK(j = json_loads(body, 0, NULL));
	CHECK(json_object_get(j, "token") == NULL);
	CHECK(json_object_get(j, "currency") == NULL);
	CHECK_STR(json_string_value(json_object_get(j, "name")), "cap");
	CHECK_EQ(json_integer_value(json_object_get(j, "price_per_unit")), 0);
	CHECK_EQ(json_integer_value(json_object_get(j, "price_scaling")), 1);
	CHECK_EQ(json_object_size(j), 6);
	json_decref(j);
	free(body);
	register_config_free(&rc);
}

/*
 * Values the body (JSON: UTF-8 only) or a header (no control bytes) cannot
 * carry are refused at configuration time with the setting's name, instead
 * of every registration failing later as "out of memory".
 */
static void
register_env_rejects_unsendable(void)
{
	char *const latin1[] = { "ORCH_URL=http://o", "ORCH_SECRET=s",
		"CAPABILITY_DESCRIPTION=caf\xe9 filter", NULL };
	char *const crlf[] = { "ORCH_URL=http://o",
		"ORCH_SECRET=s\r\nX-Injected: 1", NULL };
	char *const ok[] = { "ORCH_URL=http://o", "ORCH_SECRET=s",
		"CAPABILITY_DESCRIPTION=caf\xc3\xa9 filter", NULL };
	struct register_config rc;
	char err[128], *body;

	CHECK_EQ(register_config_from_env(&rc, latin1, "x", NULL, 1, err,
					  sizeof(err)), -EINVAL);
	CHECK_MSG(strstr(err, "CAPABILITY_DESCRIPTION") && strstr(err, "UTF-8"),
		  "err: %s", err);
	register_config_free(&rc);
	CHECK_EQ(register_config_from_env(&rc, crlf, "x", NULL, 1, err,
					  sizeof(err)), -EINVAL);
	CHECK_MSG(strstr(err, "ORCH_SECRET"), "err: %s", err);
	register_config_free(&rc);
	CHECK_EQ(register_config_from_env(&rc, ok, "na\xffme", NULL, 1, err,
					  sizeof(err)), -EINVAL);
	CHECK_MSG(strstr(err, "capability name"), "err: %s", err);
	register_config_free(&rc);
	CHECK_OK(register_config_from_env(&rc, ok, "x", NULL, 1, err,
					  sizeof(err)));
	body = register_body(&rc);
	CHECK(body && strstr(body, "caf\\u00e9") == NULL && strstr(body, "caf"));
	free(body);
	register_config_free(&rc);
}

/* Two 500s then 200: three POSTs with the raw secret and the JSON body. */
static void
register_retries_then_succeeds(void)
{
	struct orch o;
	struct register_config rc;
	char logpath[512], logbuf[8192], *body;
	int fd, saved, n;
	int64_t t0;

	orch_start(&o, 2, 200);
	cfg_for(&rc, o.port, "bearer-tok");
	/* Capture this process's log lines to check that no secret is in them. */
	snprintf(logpath, sizeof(logpath), "%s/log", th_tmpdir());
	fd = open(logpath, O_CREAT | O_TRUNC | O_RDWR, 0600);
	CHECK(fd >= 0);
	saved = dup(2);
	dup2(fd, 2);
	t0 = clock_now_ns();
	n = register_capability(&rc);
	dup2(saved, 2);
	close(saved);
	printf("  3 tries (2 failed, 50 ms apart) in %.1f ms\n", (clock_now_ns() - t0) / 1e6);
	CHECK_EQ(n, 0);
	CHECK_EQ(o.nreq, 3);
	body = register_body(&rc);
	for (int i = 0; i < 3; i++) {
		CHECK_STR(o.path[i], "/capability/register");
		CHECK_STR(o.auth[i], SECRET);
		CHECK_STR(o.ctype[i], "application/json");
		CHECK_STR(o.body[i], body);
	}
	CHECK(strstr(o.body[0], "\"token\":\"bearer-tok\""));
	CHECK(strstr(o.body[0], "\"url\":\"http://10.0.0.5:8000\""));
	free(body);
	n = (int)pread(fd, logbuf, sizeof(logbuf) - 1, 0);
	CHECK(n > 0); /* the failures were logged */
	logbuf[n] = '\0';
	CHECK(strstr(logbuf, "register"));
	CHECK_MSG(!strstr(logbuf, SECRET) && !strstr(logbuf, "bearer-tok"),
		"secret in log: %s", logbuf);
	close(fd);
	register_config_free(&rc);
	orch_stop(&o);
}

static void
register_gives_up(void)
{
	struct orch o;
	struct register_config rc;
	int64_t t0;
	int lfd, port;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	orch_start(&o, 0, 400);
	cfg_for(&rc, o.port, NULL);
	CHECK_EQ(register_capability(&rc), -EACCES);
	CHECK_EQ(o.nreq, 3);
	CHECK(!strstr(o.body[0], "token"));
	register_config_free(&rc);
	orch_stop(&o);

	/* Nobody listening. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(getsockname(lfd, (struct sockaddr *)&sa, &sl));
	port = ntohs(sa.sin_port);
	close(lfd);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	cfg_for(&rc, port, NULL);
	CHECK_EQ(register_capability(&rc), -ECONNREFUSED);
	register_config_free(&rc);

	/* A listener that never answers: each try ends at its timeout. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_port = 0;
	CHECK_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)));
	CHECK_OK(listen(lfd, 8));
	sl = sizeof(sa);
	CHECK_OK(getsockname(lfd, (struct sockaddr *)&sa, &sl));
	cfg_for(&rc, ntohs(sa.sin_port), NULL);
	rc.tries = 2;
	rc.timeout_ms = 200;
	t0 = clock_now_ns();
	CHECK_EQ(register_capability(&rc), -ETIMEDOUT);
	printf("  2 timed-out tries in %.0f ms (timeout 200 ms, delay 50 ms)\n",
		(clock_now_ns() - t0) / 1e6);
	CHECK(clock_now_ns() - t0 >= 400 * 1000000LL);
	close(lfd);
	register_config_free(&rc);
	curl_global_cleanup();
}

static void
register_unregister_body(void)
{
	struct orch o;
	struct register_config rc;

	orch_start(&o, 0, 200);
	cfg_for(&rc, o.port, "t");
	CHECK_OK(register_unregister(&rc));
	CHECK_EQ(o.nreq, 1);
	CHECK_STR(o.path[0], "/capability/unregister");
	CHECK_STR(o.auth[0], SECRET);
	CHECK_STR(o.body[0], "mycap");
	register_config_free(&rc);
	orch_stop(&o);
}

static _Atomic int job_result = 1;

static void
job_done(int result, void *arg)
{
	atomic_store(&job_result, result);
	(void)arg;
}

static void
register_job_thread(void)
{
	struct orch o;
	struct register_config rc;
	register_job *j = NULL;
	int64_t t0;

	orch_start(&o, 0, 200);
	cfg_for(&rc, o.port, NULL);
	CHECK_OK(register_start(&j, &rc, job_done, NULL));
	register_config_free(&rc); /* the job has its own copy */
	t0 = clock_now_ms();
	while (atomic_load(&job_result) == 1 && clock_now_ms() - t0 < 5000)
		usleep(5000);
	CHECK_EQ(atomic_load(&job_result), 0);
	register_stop(&j);
	CHECK(j == NULL);
	register_stop(&j);
	CHECK_EQ(o.nreq, 1);
	orch_stop(&o);

	/* Always failing, long delay: stop cancels the pending retries. */
	orch_start(&o, 100, 500);
	cfg_for(&rc, o.port, NULL);
	rc.retry_delay_ms = 10000;
	atomic_store(&job_result, 1);
	CHECK_OK(register_start(&j, &rc, job_done, NULL));
	t0 = clock_now_ms();
	while (o.nreq < 1 && clock_now_ms() - t0 < 5000)
		usleep(5000);
	usleep(20000);
	t0 = clock_now_ms();
	register_stop(&j);
	printf("  cancelled pending retries in %lld ms\n", (long long)(clock_now_ms() - t0));
	CHECK(clock_now_ms() - t0 < 2000);
	CHECK_EQ(atomic_load(&job_result), -ECANCELED);
	CHECK_EQ(o.nreq, 1);
	register_config_free(&rc);
	orch_stop(&o);
}

static const struct th_case cases[] = {
	TH_CASE(register_env_settings),
	TH_CASE(register_env_rejects_unsendable),
	TH_CASE(register_retries_then_succeeds),
	TH_CASE(register_gives_up),
	TH_CASE(register_unregister_body),
	TH_CASE(register_job_thread),
	TH_END,
};

TH_MAIN(cases)
