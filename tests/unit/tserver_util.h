/*
 * Client side of the build/trickle-server tests (tserver_test.c,
 * tserver_robust_test.c): starting and stopping a server per case, requests
 * over libcurl (blocking, or in a reader thread) and over raw sockets for
 * exact bytes on the wire. Header-only.
 */
#ifndef CT_TSERVER_UTIL_H
#define CT_TSERVER_UTIL_H

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"

struct ts {
	pid_t pid;
	int port;
};

struct resp {
	long status;
	char *body;
	size_t len;
	char seq[32], latest[32], closed[32], ctype[128], conn[32];
	double t_first;   /* monotonic seconds of the first body byte */
};

static inline double
now_s(void)
{
	return (double)clock_now_ns() / 1e9;
}

static inline void
msleep(int ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* Reads t->port from the server's --port-file pf (up to 10 s). */
static inline void
ts_wait_port(struct ts *t, const char *pf, const char *bin)
{
	FILE *f;

	t->port = 0;
	for (int i = 0; i < 1000 && !t->port; i++) {
		f = fopen(pf, "r");
		if (f) {
			if (fscanf(f, "%d", &t->port) != 1)
				t->port = 0;
			fclose(f);
		}
		if (!t->port)
			msleep(10);
	}
	CHECK_MSG(t->port > 0, "trickle-server did not start (%s)", bin);
}

/* Starts build/trickle-server --port 0 with extra args (space separated). */
static inline void
ts_start(struct ts *t, const char *extra)
{
	char bin[512], pf[512], ex[512], *argv[32];
	int argc = 0;

	snprintf(bin, sizeof(bin), "%s/trickle-server", th_build_dir());
	snprintf(pf, sizeof(pf), "%s/port", th_tmpdir());
	unlink(pf);
	snprintf(ex, sizeof(ex), "%s", extra ? extra : "");
	argv[argc++] = bin;
	argv[argc++] = "--port";
	argv[argc++] = "0";
	argv[argc++] = "--port-file";
	argv[argc++] = pf;
	argv[argc++] = "--log-level";
	argv[argc++] = "warn";
	for (char *tok = strtok(ex, " "); tok && argc < 30; tok = strtok(NULL, " "))
		argv[argc++] = tok;
	argv[argc] = NULL;
	t->pid = fork();
	CHECK(t->pid >= 0);
	if (t->pid == 0) {
		execv(bin, argv);
		_exit(127);
	}
	ts_wait_port(t, pf, bin);
}

/* SIGTERM, then the server must exit 0 (sanitizer reports make it non-zero). */
static inline void
ts_stop(struct ts *t)
{
	int st = 0;

	kill(t->pid, SIGTERM);
	CHECK(waitpid(t->pid, &st, 0) == t->pid);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "server exit status 0x%x", st);
}

static inline void
url_of(const struct ts *t, const char *path, char *out, size_t n)
{
	snprintf(out, n, "http://127.0.0.1:%d%s", t->port, path);
}

/* Guards struct resp while a reader thread fills it and the case peeks. */
static pthread_mutex_t resp_lock = PTHREAD_MUTEX_INITIALIZER;

static inline size_t
resp_body_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	char *nb;

	pthread_mutex_lock(&resp_lock);
	if (!r->len && !r->t_first)
		r->t_first = now_s();
	nb = realloc(r->body, r->len + sz * n + 1);
	if (nb) {
		r->body = nb;
		memcpy(r->body + r->len, p, sz * n);
		r->len += sz * n;
		r->body[r->len] = '\0';
	}
	pthread_mutex_unlock(&resp_lock);
	return nb ? sz * n : 0;
}

/* Status and a copy of the body received so far by a running reader. */
static inline long
resp_peek(struct resp *r, char *out, size_t n)
{
	long st;

	pthread_mutex_lock(&resp_lock);
	st = r->status;
	snprintf(out, n, "%s", r->body ? r->body : "");
	pthread_mutex_unlock(&resp_lock);
	return st;
}

static inline void
hdr_copy(const char *line, size_t n, const char *name, char *dst, size_t dn)
{
	size_t nl = strlen(name);

	if (n > nl + 1 && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
		size_t s = nl + 1, e = n;

		while (s < e && line[s] == ' ')
			s++;
		while (e > s && (line[e - 1] == '\r' || line[e - 1] == '\n'))
			e--;
		if (e - s >= dn)
			e = s + dn - 1;
		memcpy(dst, line + s, e - s);
		dst[e - s] = '\0';
	}
}

static inline size_t
resp_hdr_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;

	pthread_mutex_lock(&resp_lock);
	if (len > 12 && strncmp(p, "HTTP/", 5) == 0 && p[9] != '1')
		r->status = atol(p + 9);
	if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->seq[0] = r->latest[0] = r->closed[0] = r->ctype[0] = '\0';
		r->conn[0] = '\0';
	}
	hdr_copy(p, len, "Lp-Trickle-Seq", r->seq, sizeof(r->seq));
	hdr_copy(p, len, "Lp-Trickle-Latest", r->latest, sizeof(r->latest));
	hdr_copy(p, len, "Lp-Trickle-Closed", r->closed, sizeof(r->closed));
	hdr_copy(p, len, "Content-Type", r->ctype, sizeof(r->ctype));
	hdr_copy(p, len, "Connection", r->conn, sizeof(r->conn));
	pthread_mutex_unlock(&resp_lock);
	return len;
}

/* One request with libcurl's easy interface; hdr: one extra header or NULL. */
static inline void
http(const struct ts *t, const char *method, const char *path, const void *body,
     size_t blen, const char *hdr, struct resp *r)
{
	char url[256];
	struct curl_slist *h = NULL;
	CURL *c = curl_easy_init();
	CURLcode rc;

	memset(r, 0, sizeof(*r));
	CHECK(c);
	url_of(t, path, url, sizeof(url));
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	h = curl_slist_append(h, "Expect:");
	if (hdr)
		h = curl_slist_append(h, hdr);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, resp_body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, resp_hdr_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	rc = curl_easy_perform(c);
	CHECK_MSG(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static inline void
resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* A GET in a thread (a reader that blocks until bytes exist). */
struct reader {
	const struct ts *t;
	char path[128];
	struct resp r;
	pthread_t th;
};

static inline void *
reader_main(void *arg)
{
	struct reader *rd = arg;

	http(rd->t, "GET", rd->path, NULL, 0, NULL, &rd->r);
	return NULL;
}

static inline void
reader_start(struct reader *rd, const struct ts *t, const char *path)
{
	memset(rd, 0, sizeof(*rd));
	rd->t = t;
	snprintf(rd->path, sizeof(rd->path), "%s", path);
	CHECK(pthread_create(&rd->th, NULL, reader_main, rd) == 0);
}

static inline void
reader_join(struct reader *rd)
{
	pthread_join(rd->th, NULL);
}

/* ---- raw sockets: exact bytes on the wire ------------------------------- */

static inline int
raw_open(const struct ts *t)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd >= 0);
	a.sin_port = htons((uint16_t)t->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	return fd;
}

static inline void
raw_send(int fd, const void *p, size_t n)
{
	CHECK((size_t)send(fd, p, n, MSG_NOSIGNAL) == n);
}

static inline void
raw_sends(int fd, const char *s)
{
	raw_send(fd, s, strlen(s));
}

static inline void
raw_chunk(int fd, const void *p, size_t n)
{
	char h[32];

	snprintf(h, sizeof(h), "%zx\r\n", n);
	raw_sends(fd, h);
	raw_send(fd, p, n);
	raw_sends(fd, "\r\n");
}

/*
 * Appends what arrives to buf (NUL-terminated) until it contains needle, the
 * peer closes, or ms pass. Returns the length held.
 */
static inline size_t
raw_wait(int fd, char *buf, size_t cap, size_t have, const char *needle, int ms)
{
	double end = now_s() + ms / 1000.0;

	buf[have] = '\0';
	while (!(needle && strstr(buf, needle)) && have + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)((end - now_s()) * 1000);
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		n = recv(fd, buf + have, cap - 1 - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = '\0';
	}
	return have;
}

static inline int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static inline void
post_raw_head(int fd, const char *path, const char *extra)
{
	char h[512];

	snprintf(h, sizeof(h), "POST %s HTTP/1.1\r\nHost: x\r\n"
		 "Transfer-Encoding: chunked\r\n%s\r\n", path, extra ? extra : "");
	raw_sends(fd, h);
}

static inline void
post_body(const struct ts *t, const char *path, const char *body)
{
	struct resp r;

	http(t, "POST", path, body, strlen(body), NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
}

static inline void
setup_curl(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* fn##_c: the case fn between libcurl's global init and cleanup. */
#define TS_CURL_CASE(fn) \
	static void fn##_c(void) { setup_curl(); fn(); curl_global_cleanup(); }

#endif
