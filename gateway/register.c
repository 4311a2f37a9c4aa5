/*
 * BYOC capability registration with libcurl's easy interface: settings
 * from the environment, the JSON body, blocking register/unregister with
 * retries, and a job thread whose pending retries can be cancelled.
 */
#include "register.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "log.h"

extern char **environ;

struct register_job {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool cancel;
	struct register_config rc;
	void (*done)(int result, void *arg);
	void *arg;
};

static const char *
register_env(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return (*envp)[n + 1] ? *envp + n + 1 : NULL;
	return NULL;
}

static int
register_env_ll(char *const *envp, const char *name, long long dflt,
                long long lo, long long *out, char *err, size_t errlen)
{
	const char *v = register_env(envp, name);
	char *end;
	long long n;

	*out = dflt;
	if (!v)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || *end || n < lo) {
		snprintf(err, errlen, "%s: expected an integer >= %lld (got \"%s\")",
			name, lo, v);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

static void
register_scrub_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
register_config_free(struct register_config *rc)
{
	if (!rc)
		return;
	free(rc->orch_url);
	register_scrub_free(rc->orch_secret);
	free(rc->url);
	free(rc->name);
	free(rc->description);
	free(rc->currency);
	register_scrub_free(rc->token);
	memset(rc, 0, sizeof(*rc));
}

static char *
register_dup(const char *s, bool *oom)
{
	char *c;

	if (!s)
		return NULL;
	if (!(c = strdup(s)))
		*oom = true;
	return c;
}

/* Deep copy of src into dst (zeroed). */
static int
register_config_copy(struct register_config *dst, const struct register_config *src)
{
	bool oom = false;

	*dst = *src;
	dst->orch_url = register_dup(src->orch_url, &oom);
	dst->orch_secret = register_dup(src->orch_secret, &oom);
	dst->url = register_dup(src->url, &oom);
	dst->name = register_dup(src->name, &oom);
	dst->description = register_dup(src->description, &oom);
	dst->currency = register_dup(src->currency, &oom);
	dst->token = register_dup(src->token, &oom);
	if (oom) {
		register_config_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* True when s (NULL: absent) can be a JSON string: valid UTF-8. */
static bool
register_utf8_ok(const char *s)
{
	json_t *j;

	if (!s)
		return true;
	if (!(j = json_string(s)))
		return false;
	json_decref(j);
	return true;
}

/* True when s holds a control byte (it would end or split an HTTP header). */
static bool
register_has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/*
 * The settings that travel in the JSON body must be UTF-8 (jansson refuses
 * anything else, which would make every registration fail later with a
 * misleading out-of-memory error); the secret and token travel in headers or
 * JSON and must hold no control byte. Returns the offending setting or NULL.
 */
static const char *
register_config_bad(const struct register_config *rc)
{
	if (!register_utf8_ok(rc->url))
		return "CAPABILITY_URL: not valid UTF-8";
	if (!register_utf8_ok(rc->name))
		return "capability name (--capability-name): not valid UTF-8";
	if (!register_utf8_ok(rc->description))
		return "CAPABILITY_DESCRIPTION: not valid UTF-8";
	if (!register_utf8_ok(rc->currency))
		return "CAPABILITY_CURRENCY: not valid UTF-8";
	if (register_has_ctl(rc->orch_secret))
		return "ORCH_SECRET: contains control characters";
	if (register_has_ctl(rc->token) || !register_utf8_ok(rc->token))
		return "--auth-token: control characters or not UTF-8";
	return NULL;
}

int
register_config_from_env(struct register_config *rc, char *const *envp,
                         const char *name, const char *token, int capacity,
                         char *err, size_t errlen)
{
	const char *orch, *secret, *url, *bad;
	long long cap;
	bool oom = false;
	size_t n;
	int r;

	memset(rc, 0, sizeof(*rc));
	if (err && errlen)
		err[0] = '\0';
	if (!envp)
		envp = environ;
	orch = register_env(envp, "ORCH_URL");
	secret = register_env(envp, "ORCH_SECRET");
	if (!orch || !secret)
		return -ENOENT;
	if (strncmp(orch, "http://", 7) && strncmp(orch, "https://", 8)) {
		snprintf(err, errlen, "ORCH_URL: expected an http or https URL");
		return -EINVAL;
	}
	url = register_env(envp, "CAPABILITY_URL");
	rc->tries = 3;
	rc->retry_delay_ms = 2000;
	rc->timeout_ms = 1500;
	rc->capacity = capacity < 0 ? 0 : capacity;
	if ((r = register_env_ll(envp, "CAPABILITY_PRICE_PER_UNIT", 0, 0,
			&rc->price_per_unit, err, errlen)) < 0 ||
	    (r = register_env_ll(envp, "CAPABILITY_PRICE_SCALING", 1, 1,
			&rc->price_scaling, err, errlen)) < 0 ||
	    (r = register_env_ll(envp, "CAPABILITY_CAPACITY", rc->capacity, 0,
			&cap, err, errlen)) < 0)
		return r;
	if (cap < rc->capacity)
		rc->capacity = (int)cap;
	rc->orch_url = register_dup(orch, &oom);
	rc->orch_secret = register_dup(secret, &oom);
	rc->url = register_dup(url ? url : REGISTER_DEFAULT_URL, &oom);
	rc->name = register_dup(name && *name ? name : REGISTER_DEFAULT_NAME, &oom);
	rc->description = register_dup(register_env(envp, "CAPABILITY_DESCRIPTION") ?
		register_env(envp, "CAPABILITY_DESCRIPTION") : "", &oom);
	rc->currency = register_dup(register_env(envp, "CAPABILITY_CURRENCY"), &oom);
	rc->token = register_dup(token && *token ? token : NULL, &oom);
	if (oom) {
		register_config_free(rc);
		return -ENOMEM;
	}
	if ((bad = register_config_bad(rc)) != NULL) {
		snprintf(err, errlen, "%s", bad);
		register_config_free(rc);
		return -EINVAL;
	}
	n = strlen(rc->orch_url);
	while (n > 0 && rc->orch_url[n - 1] == '/')
		rc->orch_url[--n] = '\0';
	return 0;
}

char *
register_body(const struct register_config *rc)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}",
		"url", rc->url ? rc->url : "", "name", rc->name ? rc->name : "",
		"description", rc->description ? rc->description : "",
		"capacity", rc->capacity,
		"price_per_unit", (json_int_t)rc->price_per_unit,
		"price_scaling", (json_int_t)rc->price_scaling);
	char *text;

	if (!o)
		return NULL;
	if ((rc->currency && json_object_set_new(o, "currency",
			json_string(rc->currency)) < 0) ||
	    (rc->token && json_object_set_new(o, "token",
			json_string(rc->token)) < 0)) {
		json_decref(o);
		return NULL;
	}
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

static size_t
register_discard(char *p, size_t sz, size_t n, void *arg)
{
	return sz * n;
}

/* One POST of body to {orch_url}{path}. Returns 0 on 2xx or -errno. */
static int
register_post(const struct register_config *rc, const char *path,
              const char *ctype, const char *body)
{
	struct curl_slist *h = NULL, *h2;
	char *auth = NULL, *url = NULL, ctype_hdr[64];
	CURL *c;
	CURLcode cc;
	long code = 0;
	int ret;

	if (!(c = curl_easy_init()))
		return -ENOMEM;
	snprintf(ctype_hdr, sizeof(ctype_hdr), "Content-Type: %s", ctype);
	if (asprintf(&auth, "Authorization: %s", rc->orch_secret) < 0) {
		auth = NULL;
		ret = -ENOMEM;
		goto out;
	}
	if (asprintf(&url, "%s%s", rc->orch_url, path) < 0) {
		url = NULL;
		ret = -ENOMEM;
		goto out;
	}
	h = curl_slist_append(NULL, auth);
	h2 = h ? curl_slist_append(h, ctype_hdr) : NULL;
	h2 = h2 ? curl_slist_append(h2, "Expect:") : NULL;
	if (!h2) {
		ret = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)rc->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)rc->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, register_discard);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (cc == CURLE_OPERATION_TIMEDOUT)
		ret = -ETIMEDOUT;
	else if (cc == CURLE_COULDNT_CONNECT)
		ret = -ECONNREFUSED;
	else if (cc != CURLE_OK)
		ret = -EIO;
	else if (code >= 200 && code < 300)
		ret = 0;
	else
		ret = code >= 400 && code < 500 ? -EACCES : -EIO;
	if (ret < 0)
		log_warn("register", "orchestrator request failed path=%s status=%ld "
			"err=\"%s\" name=%s", path, code,
			cc != CURLE_OK ? curl_easy_strerror(cc) : "bad status", rc->name);
out:
	curl_slist_free_all(h);
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(url);
	curl_easy_cleanup(c);
	return ret;
}

/* Sleeps ms unless the job is cancelled first. Returns true if cancelled. */
static bool
register_wait(register_job *j, int ms)
{
	struct timespec ts;
	bool cancel;

	if (!j) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&j->lock);
	while (!j->cancel &&
	       pthread_cond_timedwait(&j->cond, &j->lock, &ts) != ETIMEDOUT)
		;
	cancel = j->cancel;
	pthread_mutex_unlock(&j->lock);
	return cancel;
}

static int
register_run(const struct register_config *rc, register_job *j)
{
	char *body = register_body(rc);
	int ret = -ENOMEM, tries = rc->tries > 0 ? rc->tries : 1;

	if (!body)
		return -ENOMEM;
	for (int i = 0; i < tries; i++) {
		if (i > 0 && register_wait(j, rc->retry_delay_ms)) {
			ret = -ECANCELED;
			break;
		}
		ret = register_post(rc, "/capability/register", "application/json", body);
		if (ret == 0) {
			log_info("register", "capability registered name=%s capacity=%d "
				"url=%s", rc->name, rc->capacity, rc->url);
			break;
		}
	}
	if (ret < 0 && ret != -ECANCELED)
		log_error("register", "capability registration failed name=%s "
			"tries=%d err=%s", rc->name, tries, strerror(-ret));
	explicit_bzero(body, strlen(body));
	free(body);
	return ret;
}

int
register_capability(const struct register_config *rc)
{
	if (!rc || !rc->orch_url || !rc->orch_secret)
		return -EINVAL;
	return register_run(rc, NULL);
}

int
register_unregister(const struct register_config *rc)
{
	int ret;

	if (!rc || !rc->orch_url || !rc->orch_secret || !rc->name)
		return -EINVAL;
	ret = register_post(rc, "/capability/unregister", "text/plain", rc->name);
	if (ret == 0)
		log_info("register", "capability unregistered name=%s", rc->name);
	return ret;
}

static void *
register_thread(void *arg)
{
	register_job *j = arg;
	int ret = register_run(&j->rc, j);

	if (j->done)
		j->done(ret, j->arg);
	return NULL;
}

int
register_start(register_job **out, const struct register_config *rc,
               void (*done)(int result, void *arg), void *arg)
{
	pthread_condattr_t ca;
	register_job *j;
	int ret;

	if (!rc || !rc->orch_url || !rc->orch_secret)
		return -EINVAL;
	if (!(j = calloc(1, sizeof(*j))))
		return -ENOMEM;
	if ((ret = register_config_copy(&j->rc, rc)) < 0)
		goto err_free;
	j->done = done;
	j->arg = arg;
	pthread_mutex_init(&j->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&j->cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((ret = -pthread_create(&j->thread, NULL, register_thread, j)) < 0)
		goto err_destroy;
	*out = j;
	return 0;
err_destroy:
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	register_config_free(&j->rc);
err_free:
	free(j);
	return ret;
}

void
register_stop(register_job **p)
{
	register_job *j;

	if (!p || !(j = *p))
		return;
	pthread_mutex_lock(&j->lock);
	j->cancel = true;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thread, NULL);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	register_config_free(&j->rc);
	free(j);
	*p = NULL;
}
