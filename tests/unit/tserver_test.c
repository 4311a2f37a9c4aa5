/*
 * build/trickle-server against PROTOCOL.md 3.2-3.7: one case per behaviour
 * row, checked over libcurl, raw sockets (exact chunked bodies, 100 Continue,
 * disconnects) and the plain curl CLI; plus bulk, slow-reader and bad-input
 * cases. Each case starts its own server on a free port and stops it with
 * SIGTERM, checking a clean (sanitizer-clean under SAN=1) exit.
 */
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
msleep(int ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* Starts build/trickle-server --port 0 with extra args (space separated). */
static void
ts_start(struct ts *t, const char *extra)
{
	char bin[512], pf[512], ex[512], *argv[32];
	int argc = 0;
	FILE *f;

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

/* SIGTERM, then the server must exit 0 (sanitizer reports make it non-zero). */
static void
ts_stop(struct ts *t)
{
	int st = 0;

	kill(t->pid, SIGTERM);
	CHECK(waitpid(t->pid, &st, 0) == t->pid);
	CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "server exit status 0x%x", st);
}

static void
url_of(const struct ts *t, const char *path, char *out, size_t n)
{
	snprintf(out, n, "http://127.0.0.1:%d%s", t->port, path);
}

/* Guards struct resp while a reader thread fills it and the case peeks. */
static pthread_mutex_t resp_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t
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
static long
resp_peek(struct resp *r, char *out, size_t n)
{
	long st;

	pthread_mutex_lock(&resp_lock);
	st = r->status;
	snprintf(out, n, "%s", r->body ? r->body : "");
	pthread_mutex_unlock(&resp_lock);
	return st;
}

static void
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

static size_t
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
static void
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

static void
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

static void *
reader_main(void *arg)
{
	struct reader *rd = arg;

	http(rd->t, "GET", rd->path, NULL, 0, NULL, &rd->r);
	return NULL;
}

static void
reader_start(struct reader *rd, const struct ts *t, const char *path)
{
	memset(rd, 0, sizeof(*rd));
	rd->t = t;
	snprintf(rd->path, sizeof(rd->path), "%s", path);
	CHECK(pthread_create(&rd->th, NULL, reader_main, rd) == 0);
}

static void
reader_join(struct reader *rd)
{
	pthread_join(rd->th, NULL);
}

/* ---- raw sockets: exact bytes on the wire ------------------------------- */

static int
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

static void
raw_send(int fd, const void *p, size_t n)
{
	CHECK((size_t)send(fd, p, n, MSG_NOSIGNAL) == n);
}

static void
raw_sends(int fd, const char *s)
{
	raw_send(fd, s, strlen(s));
}

static void
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
static size_t
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

static int
count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void
post_raw_head(int fd, const char *path, const char *extra)
{
	char h[512];

	snprintf(h, sizeof(h), "POST %s HTTP/1.1\r\nHost: x\r\n"
		 "Transfer-Encoding: chunked\r\n%s\r\n", path, extra ? extra : "");
	raw_sends(fd, h);
}

static void
post_body(const struct ts *t, const char *path, const char *body)
{
	struct resp r;

	http(t, "POST", path, body, strlen(body), NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
}

/* ---- 3.2 routes --------------------------------------------------------- */

static void
test_post_get_roundtrip(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	http(&t, "POST", "/ch/0", "hello", 5, "Content-Type: video/MP2T", &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.seq, "0");
	resp_free(&r);
	http(&t, "GET", "/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.body, "hello");
	CHECK_STR(r.seq, "0");
	CHECK_STR(r.ctype, "video/MP2T");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_post_missing_channel_no_autocreate(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, "--no-autocreate");
	http(&t, "POST", "/ch/0", "x", 1, NULL, &r);
	CHECK_EQ(r.status, 404);
	CHECK_STR(r.conn, "close");
	resp_free(&r);
	http(&t, "POST", "/ch", NULL, 0, "Expect-Content: application/json", &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	http(&t, "POST", "/ch/0", "{}", 2, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	http(&t, "GET", "/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.ctype, "application/json");
	CHECK_STR(r.body, "{}");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_bad_seq_400(void)
{
	static const char *bad[] = { "/ch/abc", "/ch/1x", "/ch/-3", "/ch/+",
		"/ch/99999999999999999999", "/ch/9223372036854775807", "/ch/-" };
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http(&t, "GET", bad[i], NULL, 0, NULL, &r);
		CHECK_MSG(r.status == 400, "GET %s: %ld", bad[i], r.status);
		resp_free(&r);
		http(&t, "POST", bad[i], "z", 1, NULL, &r);
		CHECK_MSG(r.status == 400, "POST %s: %ld", bad[i], r.status);
		resp_free(&r);
		http(&t, "DELETE", bad[i], NULL, 0, NULL, &r);
		CHECK_MSG(r.status == 400, "DELETE %s: %ld", bad[i], r.status);
		resp_free(&r);
	}
	http(&t, "POST", "/ch/-2", "z", 1, NULL, &r);
	CHECK_EQ(r.status, 400);
	resp_free(&r);
	ts_stop(&t);
}

static void
test_post_body_error_500(void)
{
	struct ts t;
	char buf[4096];
	size_t n;
	int fd;

	ts_start(&t, NULL);
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/0", NULL);
	raw_sends(fd, "5\r\nhello\r\nzz\r\n");
	n = raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 3000);
	CHECK_MSG(n > 0 && strstr(buf, "HTTP/1.1 500"), "got: %s", buf);
	close(fd);
	post_body(&t, "/ch/1", "still serving");
	ts_stop(&t);
}

static void
test_get_missing_channel_404(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	http(&t, "GET", "/nope/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	http(&t, "GET", "/nope/next", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	http(&t, "DELETE", "/nope/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	ts_stop(&t);
}

static void
test_get_470_headers(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	http(&t, "GET", "/ch/5", NULL, 0, NULL, &r);   /* ahead of the edge */
	CHECK_EQ(r.status, 470);
	CHECK_STR(r.latest, "1");
	CHECK_STR(r.seq, "5");
	CHECK_STR(r.body, "Entry not found");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_delete_segment(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	http(&t, "DELETE", "/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	http(&t, "DELETE", "/ch/3", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 400);
	CHECK(r.body && strstr(r.body, "Nonexistent segment"));
	resp_free(&r);
	ts_stop(&t);
}

static void
test_delete_channel(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	http(&t, "DELETE", "/ch", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	http(&t, "GET", "/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	http(&t, "DELETE", "/ch", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 400);
	CHECK(r.body && strstr(r.body, "Invalid stream"));
	resp_free(&r);
	ts_stop(&t);
}

static void
test_next_route(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	http(&t, "POST", "/ch", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	http(&t, "GET", "/ch/next", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.body, "0");
	CHECK_STR(r.latest, "0");
	resp_free(&r);
	post_body(&t, "/ch/0", "a");
	post_body(&t, "/ch/1", "b");
	http(&t, "GET", "/ch/next", NULL, 0, NULL, &r);
	CHECK_STR(r.body, "2");
	CHECK_STR(r.latest, "2");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_routes_405_404(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, "--base-path /ai/trickle/");
	post_body(&t, "/ai/trickle/ch/0", "a");
	http(&t, "GET", "/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	http(&t, "GET", "/ai/trickle/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.body, "a");
	resp_free(&r);
	http(&t, "PUT", "/ai/trickle/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 405);
	resp_free(&r);
	http(&t, "GET", "/ai/trickle/ch", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 405);
	resp_free(&r);
	http(&t, "GET", "/ai/trickle/ch/0/extra", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	ts_stop(&t);
}

/* ---- 3.4 sequence numbers and the live edge ----------------------------- */

static void
test_post_minus1_uses_next(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	post_body(&t, "/ch/1", "b");
	http(&t, "POST", "/ch/-1", "c", 1, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.seq, "2");
	resp_free(&r);
	http(&t, "GET", "/ch/2", NULL, 0, NULL, &r);
	CHECK_STR(r.body, "c");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_get_minus1_waits_for_next(void)
{
	struct ts t;
	struct reader rd;
	char peek[64];

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "old");
	reader_start(&rd, &t, "/ch/-1");
	msleep(500);
	CHECK_EQ(resp_peek(&rd.r, peek, sizeof(peek)), 0);  /* no headers yet */
	post_body(&t, "/ch/1", "new");
	reader_join(&rd);
	CHECK_EQ(rd.r.status, 200);
	CHECK_STR(rd.r.seq, "1");
	CHECK_STR(rd.r.body, "new");
	resp_free(&rd.r);
	ts_stop(&t);
}

static void
test_get_minus2_current(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	post_body(&t, "/ch/1", "b");
	http(&t, "GET", "/ch/-2", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.seq, "1");
	CHECK_STR(r.body, "b");
	CHECK_STR(r.latest, "2");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_precreate_seq1_at_start(void)
{
	struct ts t;
	struct reader rd;
	struct resp r;

	ts_start(&t, NULL);
	http(&t, "POST", "/ch", NULL, 0, NULL, &r);
	resp_free(&r);
	reader_start(&rd, &t, "/ch/1");   /* nextWrite == 0: seq 1 waits */
	msleep(200);
	http(&t, "GET", "/ch/2", NULL, 0, NULL, &r);  /* seq 2 does not */
	CHECK_EQ(r.status, 470);
	resp_free(&r);
	post_body(&t, "/ch/0", "zero");
	post_body(&t, "/ch/1", "one");
	reader_join(&rd);
	CHECK_STR(rd.r.body, "one");
	resp_free(&rd.r);
	ts_stop(&t);
}

static void
test_ring_of_five(void)
{
	struct ts t;
	struct resp r;
	char p[32], b[16];

	ts_start(&t, NULL);
	for (int i = 0; i < 7; i++) {
		snprintf(p, sizeof(p), "/ch/%d", i);
		snprintf(b, sizeof(b), "s%d", i);
		post_body(&t, p, b);
	}
	http(&t, "GET", "/ch/1", NULL, 0, NULL, &r);   /* overwritten by 6 */
	CHECK_EQ(r.status, 470);
	CHECK_STR(r.latest, "7");
	resp_free(&r);
	http(&t, "GET", "/ch/2", NULL, 0, NULL, &r);   /* still in the ring */
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.body, "s2");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_post_existing_seq_appends(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "abc");
	post_body(&t, "/ch/0", "def");
	http(&t, "GET", "/ch/0", NULL, 0, NULL, &r);
	CHECK_STR(r.body, "abcdef");
	resp_free(&r);
	ts_stop(&t);
}

/* ---- 3.5 publishing ----------------------------------------------------- */

static void
test_live_relay_before_post_ends(void)
{
	struct ts t;
	struct reader rd;
	char buf[2048], peek[64];
	double t_join;
	int fd;

	ts_start(&t, NULL);
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/0", NULL);
	raw_chunk(fd, "first", 5);
	msleep(100);
	t_join = now_s();
	reader_start(&rd, &t, "/ch/0");
	msleep(300);
	raw_chunk(fd, "second", 6);
	msleep(300);
	/* Headers and the live bytes came while the POST is still open. */
	CHECK_EQ(resp_peek(&rd.r, peek, sizeof(peek)), 200);
	CHECK_STR(peek, "firstsecond");
	raw_sends(fd, "0\r\n\r\n");
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 3000);
	CHECK(strstr(buf, "200 OK") && strstr(buf, "Lp-Trickle-Seq: 0"));
	reader_join(&rd);
	CHECK_STR(rd.r.body, "firstsecond");
	printf("   joining reader got its first bytes %.1f ms after its GET\n",
	       (rd.r.t_first - t_join) * 1e3);
	close(fd);
	resp_free(&rd.r);
	ts_stop(&t);
}

static void
test_preconnect_repeated_100_continue(void)
{
	struct ts t;
	char buf[4096];
	size_t n;
	int fd;

	ts_start(&t, "--continue-interval-ms 150");
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/0", NULL);
	n = raw_wait(fd, buf, sizeof(buf), 0, NULL, 700);
	CHECK_MSG(count_of(buf, "HTTP/1.1 100 Continue\r\n\r\n") >= 3,
		  "got: %s", buf);
	CHECK(!strstr(buf, "200 OK"));
	raw_chunk(fd, "data", 4);
	raw_sends(fd, "0\r\n\r\n");
	n = raw_wait(fd, buf, sizeof(buf), n, "200 OK\r\n", 3000);
	CHECK(strstr(buf, "Lp-Trickle-Seq: 0"));
	close(fd);
	ts_stop(&t);
}

static void
test_expect_continue_answered(void)
{
	struct ts t;
	char buf[1024];
	int fd;

	ts_start(&t, NULL);
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/0", "Expect: 100-continue\r\n");
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 2000);
	CHECK_MSG(strstr(buf, "HTTP/1.1 100 Continue"), "got: %s", buf);
	close(fd);
	ts_stop(&t);
}

static void
test_zero_byte_post_advances(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	http(&t, "POST", "/ch/1", "", 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.seq, "1");
	CHECK_STR(r.conn, "close");
	resp_free(&r);
	http(&t, "GET", "/ch/next", NULL, 0, NULL, &r);
	CHECK_STR(r.body, "2");
	resp_free(&r);
	http(&t, "GET", "/ch/1", NULL, 0, NULL, &r);  /* closed, empty */
	CHECK_EQ(r.status, 200);
	CHECK_EQ(r.len, 0);
	CHECK_STR(r.seq, "1");
	CHECK_STR(r.latest, "2");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_preconnect_ended_by_channel_close(void)
{
	struct ts t;
	struct resp r;
	char buf[2048];
	int fd;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/1", NULL);
	msleep(100);
	http(&t, "DELETE", "/ch", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 3000);
	CHECK_MSG(strstr(buf, "HTTP/1.1 200 OK") && strstr(buf, "Lp-Trickle-Seq: 1") &&
		  strstr(buf, "Lp-Trickle-Closed: terminated") &&
		  strstr(buf, "Connection: close"), "got: %s", buf);
	close(fd);
	ts_stop(&t);
}

static void
test_segment_cap_413(void)
{
	struct ts t;
	struct resp r;
	size_t n = (1u << 20) + 10;
	char *big = malloc(n);

	CHECK(big);
	memset(big, 'x', n);
	ts_start(&t, "--max-segment-mb 1");
	http(&t, "POST", "/ch/0", big, n, NULL, &r);
	CHECK_EQ(r.status, 413);
	resp_free(&r);
	post_body(&t, "/ch/1", "small");
	free(big);
	ts_stop(&t);
}

/* ---- 3.6 reading -------------------------------------------------------- */

static void
test_get_headers_wait_first_byte(void)
{
	struct ts t;
	char buf[2048];
	size_t n;
	int fd, pfd;

	ts_start(&t, NULL);
	pfd = raw_open(&t);
	post_raw_head(pfd, "/ch/0", NULL);
	msleep(100);
	fd = raw_open(&t);
	raw_sends(fd, "GET /ch/0 HTTP/1.1\r\nHost: x\r\n\r\n");
	n = raw_wait(fd, buf, sizeof(buf), 0, NULL, 400);
	CHECK_EQ(n, 0);                     /* nothing before the first byte */
	raw_chunk(pfd, "X", 1);
	n = raw_wait(fd, buf, sizeof(buf), 0, "1\r\nX\r\n", 2000);
	CHECK_MSG(strstr(buf, "HTTP/1.1 200 OK") && strstr(buf, "Transfer-Encoding: chunked")
		  && !strstr(buf, "Content-Length"), "got: %s", buf);
	close(fd);
	close(pfd);
	ts_stop(&t);
}

static void
test_join_mid_segment_identical(void)
{
	struct ts t;
	struct reader early, late;
	uint8_t *all = malloc(300000);
	char buf[1024];
	int fd;

	CHECK(all);
	for (int i = 0; i < 300000; i++)
		all[i] = (uint8_t)(i * 131 + (i >> 9));
	ts_start(&t, NULL);
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/0", NULL);
	reader_start(&early, &t, "/ch/0");
	for (int i = 0; i < 10; i++) {
		raw_chunk(fd, all + i * 30000, 30000);
		if (i == 4) {
			msleep(100);
			reader_start(&late, &t, "/ch/0");
		}
		msleep(20);
	}
	raw_sends(fd, "0\r\n\r\n");
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 3000);
	reader_join(&early);
	reader_join(&late);
	CHECK_EQ(early.r.len, 300000);
	CHECK_EQ(late.r.len, 300000);
	CHECK(memcmp(early.r.body, all, 300000) == 0);
	CHECK(memcmp(late.r.body, all, 300000) == 0);
	close(fd);
	resp_free(&early.r);
	resp_free(&late.r);
	free(all);
	ts_stop(&t);
}

static void
test_empty_segment_reply(void)
{
	struct ts t;
	struct reader rd;
	struct resp r;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	reader_start(&rd, &t, "/ch/1");
	msleep(200);
	http(&t, "POST", "/ch/1", "", 0, NULL, &r);
	resp_free(&r);
	reader_join(&rd);
	CHECK_EQ(rd.r.status, 200);
	CHECK_EQ(rd.r.len, 0);
	CHECK_STR(rd.r.seq, "1");
	CHECK_STR(rd.r.latest, "2");
	CHECK_STR(rd.r.closed, "");
	resp_free(&rd.r);
	ts_stop(&t);
}

/* ---- 3.7 channel lifetime ----------------------------------------------- */

static void
test_idle_sweep(void)
{
	struct ts t;
	struct resp r;

	ts_start(&t, "--idle-timeout-ms 300 --sweep-interval-ms 100");
	post_body(&t, "/ch/0", "a");
	post_body(&t, "/_keep/0", "a");
	msleep(800);
	http(&t, "GET", "/ch/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 404);
	resp_free(&r);
	http(&t, "GET", "/_keep/0", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	ts_stop(&t);
}

static void
test_close_wakes_readers(void)
{
	struct ts t;
	struct reader waiting;
	struct resp r;
	char buf[4096];
	size_t n;
	int pfd, fd;

	ts_start(&t, NULL);
	pfd = raw_open(&t);
	post_raw_head(pfd, "/ch/0", NULL);
	raw_chunk(pfd, "partial", 7);
	fd = raw_open(&t);
	raw_sends(fd, "GET /ch/0 HTTP/1.1\r\nHost: x\r\n\r\n");
	n = raw_wait(fd, buf, sizeof(buf), 0, "partial\r\n", 2000);
	reader_start(&waiting, &t, "/ch/1");
	msleep(400);
	http(&t, "DELETE", "/ch", NULL, 0, NULL, &r);
	CHECK_EQ(r.status, 200);
	resp_free(&r);
	reader_join(&waiting);
	CHECK_EQ(waiting.r.status, 200);
	CHECK_STR(waiting.r.closed, "terminated");
	CHECK_STR(waiting.r.seq, "1");
	n = raw_wait(fd, buf, sizeof(buf), n, "0\r\n\r\n", 2000);
	CHECK_MSG(strstr(buf, "0\r\n\r\n"), "mid-body reader not ended: %s", buf);
	close(fd);
	close(pfd);
	resp_free(&waiting.r);
	ts_stop(&t);
}

static void
test_reset_closes_older(void)
{
	struct ts t;
	struct reader ahead;
	struct resp r;
	char buf[2048];
	int fd, fd2;

	ts_start(&t, NULL);
	post_body(&t, "/ch/0", "a");
	fd = raw_open(&t);
	post_raw_head(fd, "/ch/1", NULL);        /* old publisher's open segment */
	raw_chunk(fd, "b", 1);
	msleep(100);
	reader_start(&ahead, &t, "/ch/2");       /* waits on the next seq */
	msleep(100);
	fd2 = raw_open(&t);                       /* restarted publisher at 2 */
	post_raw_head(fd2, "/ch/2", "Lp-Trickle-Reset: 1\r\n");
	msleep(100);
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 2000);
	CHECK_MSG(strstr(buf, "200 OK") && strstr(buf, "Lp-Trickle-Seq: 1"),
		  "old publisher not ended: %s", buf);
	http(&t, "GET", "/ch/1", NULL, 0, NULL, &r);  /* complete now */
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.body, "b");
	resp_free(&r);
	raw_chunk(fd2, "new", 3);                 /* the segment ahead stayed open */
	raw_sends(fd2, "0\r\n\r\n");
	reader_join(&ahead);
	CHECK_EQ(ahead.r.status, 200);
	CHECK_STR(ahead.r.body, "new");
	resp_free(&ahead.r);
	close(fd);
	close(fd2);
	ts_stop(&t);
}

/* ---- bulk and slow readers ---------------------------------------------- */

struct bulk {
	const struct ts *t;
	atomic_int read_upto;   /* segments fully read */
	size_t bytes;
	atomic_bool ok;
	char why[160];
};

#define BULK_SEGS 200

static size_t
bulk_seg_len(int i)
{
	return 1000 + (size_t)(i % 17) * 997;
}

static void *
bulk_sub(void *arg)
{
	struct bulk *b = arg;
	char path[32];
	int seq = 0;

	while (seq < BULK_SEGS) {
		struct resp r;

		snprintf(path, sizeof(path), "/ch/%d", seq);
		http(b->t, "GET", path, NULL, 0, NULL, &r);
		if (r.status != 200 || atoi(r.seq) != seq ||
		    r.len != bulk_seg_len(seq)) {
			snprintf(b->why, sizeof(b->why), "seq %d: status %ld "
				 "Lp-Trickle-Seq %s len %zu latest %s", seq, r.status,
				 r.seq, r.len, r.latest);
			b->ok = false;
		}
		for (size_t k = 0; k < r.len && b->ok; k++)
			if ((uint8_t)r.body[k] != (uint8_t)(seq + k))
				b->ok = false;
		b->bytes += r.len;
		resp_free(&r);
		if (!b->ok)
			break;
		seq = atoi(r.seq) + 1;
		atomic_store(&b->read_upto, seq);
	}
	return NULL;
}

static void
test_200_segments_no_loss(void)
{
	struct ts t;
	struct bulk b = { 0 };
	pthread_t th;
	uint8_t *buf = malloc(20000);
	size_t sent = 0;
	double t0;

	CHECK(buf);
	ts_start(&t, NULL);
	post_body(&t, "/ch", "");
	b.t = &t;
	b.ok = true;  /* before the thread: the publisher's gate reads it */
	CHECK(pthread_create(&th, NULL, bulk_sub, &b) == 0);
	t0 = now_s();
	for (int i = 0; i < BULK_SEGS; i++) {
		char path[32];
		struct resp r;
		size_t n = bulk_seg_len(i);

		while (i - atomic_load(&b.read_upto) > 3 && b.ok)
			msleep(1);
		for (size_t k = 0; k < n; k++)
			buf[k] = (uint8_t)(i + k);
		snprintf(path, sizeof(path), "/ch/%d", i);
		http(&t, "POST", path, buf, n, NULL, &r);
		CHECK_EQ(r.status, 200);
		resp_free(&r);
		sent += n;
	}
	pthread_join(th, NULL);
	CHECK_MSG(b.ok, "subscriber: %s", b.why);
	CHECK_EQ(b.bytes, sent);
	printf("   200 segments, %zu bytes, %.0f ms\n", sent, (now_s() - t0) * 1e3);
	free(buf);
	ts_stop(&t);
}

static void
test_slow_reader_470_resume(void)
{
	struct ts t;
	struct resp r;
	struct reader rd;
	char path[64];

	ts_start(&t, NULL);
	for (int i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "/ch/%d", i);
		post_body(&t, path, "x");
	}
	http(&t, "GET", "/ch/2", NULL, 0, NULL, &r);   /* fell out of the ring */
	CHECK_EQ(r.status, 470);
	CHECK_STR(r.latest, "10");
	snprintf(path, sizeof(path), "/ch/%s", r.latest);
	resp_free(&r);
	reader_start(&rd, &t, path);
	msleep(200);
	post_body(&t, "/ch/10", "live");
	reader_join(&rd);
	CHECK_EQ(rd.r.status, 200);
	CHECK_STR(rd.r.body, "live");
	resp_free(&rd.r);
	ts_stop(&t);
}

/* ---- bad input ---------------------------------------------------------- */

static void
expect_status(const struct ts *t, const char *req, size_t len, const char *want)
{
	char buf[4096];
	int fd = raw_open(t);

	raw_send(fd, req, len);
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 3000);
	CHECK_MSG(strncmp(buf, want, strlen(want)) == 0, "want %s, got: %.200s",
		  want, buf);
	close(fd);
}

static void
test_bad_heads(void)
{
	struct ts t;
	size_t n = 20000;
	char *big = malloc(n + 64);

	CHECK(big);
	ts_start(&t, NULL);
	memcpy(big, "GET /", 5);
	memset(big + 5, 'a', n);
	memcpy(big + 5 + n, " HTTP/1.1\r\n\r\n", 14);
	expect_status(&t, big, n + 5 + 13, "HTTP/1.1 414");
	memcpy(big, "GET /ch/0 HTTP/1.1\r\nX: ", 23);
	memset(big + 23, 'b', n - 23);
	expect_status(&t, big, n, "HTTP/1.1 431");
	expect_status(&t, "garbage\r\n\r\n", 11, "HTTP/1.1 400");
	expect_status(&t, "GET /ch/0 HTTP/2.0\r\n\r\n", 22, "HTTP/1.1 505");
	expect_status(&t, "POST /ch/0 HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		      47, "HTTP/1.1 501");
	expect_status(&t, "POST /ch/0 HTTP/1.1\r\nContent-Length: 1\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n", 71, "HTTP/1.1 400");
	expect_status(&t, "GET /b%20d\x01/0 HTTP/1.1\r\n\r\n", 25, "HTTP/1.1 400");
	expect_status(&t, "GET /bad name/0 HTTP/1.1\r\n\r\n", 28, "HTTP/1.1 400");
	expect_status(&t, "GET /ch\"x/0 HTTP/1.1\r\n\r\n", 24, "HTTP/1.1 400");
	post_body(&t, "/ch/0", "still serving");
	free(big);
	ts_stop(&t);
}

static void
test_disconnects_mid_segment(void)
{
	struct ts t;
	struct reader rd;
	struct resp r;
	char buf[1024];
	int pfd, gfd;

	ts_start(&t, NULL);
	/* A reader that leaves mid-body, then a writer that leaves mid-chunk. */
	pfd = raw_open(&t);
	post_raw_head(pfd, "/ch/0", NULL);
	raw_chunk(pfd, "abc", 3);
	gfd = raw_open(&t);
	raw_sends(gfd, "GET /ch/0 HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_wait(gfd, buf, sizeof(buf), 0, "abc\r\n", 2000);
	close(gfd);
	reader_start(&rd, &t, "/ch/0");
	msleep(100);
	raw_chunk(pfd, "def", 3);
	raw_sends(pfd, "10\r\nonly-half");
	msleep(100);
	close(pfd);
	reader_join(&rd);            /* the segment closes: the body ends */
	CHECK_EQ(rd.r.status, 200);
	CHECK_STR(rd.r.body, "abcdefonly-half");
	resp_free(&rd.r);
	/* A preconnect that leaves with no bytes keeps its waiting readers. */
	reader_start(&rd, &t, "/ch/1");
	pfd = raw_open(&t);
	post_raw_head(pfd, "/ch/1", NULL);
	msleep(100);
	close(pfd);
	msleep(100);
	post_body(&t, "/ch/1", "retry");
	reader_join(&rd);
	CHECK_STR(rd.r.body, "retry");
	resp_free(&rd.r);
	http(&t, "GET", "/ch/next", NULL, 0, NULL, &r);
	CHECK_STR(r.body, "2");
	resp_free(&r);
	ts_stop(&t);
}

static void
test_thousands_of_channels(void)
{
	struct ts t;
	struct resp r;
	char path[64];
	CURL *c;
	double t0 = now_s();

	ts_start(&t, "--max-channels 3000");
	c = curl_easy_init();
	CHECK(c);
	for (int i = 0; i < 3000; i++) {
		char url[128];
		long st = 0;

		snprintf(path, sizeof(path), "/chan-%d/0", i);
		url_of(&t, path, url, sizeof(url));
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "seg");
		CHECK(curl_easy_perform(c) == CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		CHECK_EQ(st, 200);
	}
	curl_easy_cleanup(c);
	http(&t, "POST", "/one-too-many/0", "x", 1, NULL, &r);
	CHECK_EQ(r.status, 503);
	resp_free(&r);
	http(&t, "GET", "/chan-2999/0", NULL, 0, NULL, &r);
	CHECK_STR(r.body, "seg");
	resp_free(&r);
	printf("   3000 channels created in %.0f ms\n", (now_s() - t0) * 1e3);
	ts_stop(&t);
}

static void
test_keepalive_pipelining_http10(void)
{
	struct ts t;
	char buf[8192];
	size_t n;
	int fd;

	ts_start(&t, NULL);
	fd = raw_open(&t);
	/* Two requests in one write on a keep-alive connection, then a third. */
	raw_sends(fd, "POST /ch/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
		 "GET /ch/next HTTP/1.1\r\nHost: x\r\n\r\n");
	n = raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n1", 3000);
	CHECK_MSG(count_of(buf, "HTTP/1.1 200 OK") == 2 &&
		  strstr(buf, "Lp-Trickle-Seq: 0") < strstr(buf, "Lp-Trickle-Latest: 1"),
		  "got: %s", buf);
	raw_sends(fd, "GET /ch/0 HTTP/1.1\r\nHost: x\r\n\r\n");
	n = raw_wait(fd, buf, sizeof(buf), n, "5\r\nhello\r\n0\r\n\r\n", 3000);
	CHECK_MSG(strstr(buf, "5\r\nhello\r\n0\r\n\r\n"), "got: %s", buf);
	close(fd);
	/* HTTP/1.0: no chunked coding, body delimited by the close. */
	fd = raw_open(&t);
	raw_sends(fd, "GET /ch/0 HTTP/1.0\r\n\r\n");
	n = raw_wait(fd, buf, sizeof(buf), 0, NULL, 3000);
	CHECK_MSG(n > 5 && strcmp(buf + n - 5, "hello") == 0 &&
		  !strstr(buf, "chunked") && strstr(buf, "Connection: close"),
		  "got: %s", buf);
	close(fd);
	ts_stop(&t);
}

/* CPU seconds (user + system) a process has used, from /proc/PID/stat. */
static double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * Out of file descriptors (RLIMIT_NOFILE 64, 100 clients): accept() fails
 * with EMFILE while the backlog is full. The server must pause accepting
 * (not spin on the level-triggered listener, logging every failure), warn
 * once, and serve new clients again as soon as fds come free.
 */
static void
test_out_of_fds_pauses_accept(void)
{
	struct ts t;
	struct rlimit rl = { 64, 64 };
	char bin[512], pf[512], ef[512], buf[4096], *log = NULL;
	int fds[100], fd, lines = 0;
	double c0, c1;
	size_t n;
	FILE *f;

	snprintf(bin, sizeof(bin), "%s/trickle-server", th_build_dir());
	snprintf(pf, sizeof(pf), "%s/port", th_tmpdir());
	snprintf(ef, sizeof(ef), "%s/stderr", th_tmpdir());
	unlink(pf);
	t.pid = fork();
	CHECK(t.pid >= 0);
	if (t.pid == 0) {
		int efd = open(ef, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (efd < 0 || dup2(efd, 2) < 0 || setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		execl(bin, bin, "--port", "0", "--port-file", pf, "--log-level",
		      "warn", (char *)NULL);
		_exit(127);
	}
	t.port = 0;
	for (int i = 0; i < 1000 && !t.port; i++) {
		f = fopen(pf, "r");
		if (f) {
			if (fscanf(f, "%d", &t.port) != 1)
				t.port = 0;
			fclose(f);
		}
		if (!t.port)
			msleep(10);
	}
	CHECK_MSG(t.port > 0, "trickle-server did not start (%s)", bin);
	for (int i = 0; i < 100; i++)
		fds[i] = raw_open(&t);   /* the kernel backlog takes them all */
	msleep(300);
	c0 = proc_cpu_s(t.pid);
	msleep(1000);
	c1 = proc_cpu_s(t.pid);
	printf("   server CPU while out of fds: %.2f s in 1 s\n", c1 - c0);
	/* Half the clients leave: the server must take new ones again. */
	for (int i = 0; i < 50; i++)
		close(fds[i]);
	fd = raw_open(&t);
	raw_sends(fd, "GET /ch/next HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_wait(fd, buf, sizeof(buf), 0, "\r\n\r\n", 5000);
	CHECK_MSG(strncmp(buf, "HTTP/1.1 404", 12) == 0, "got: %.200s", buf);
	close(fd);
	for (int i = 50; i < 100; i++)
		close(fds[i]);
	ts_stop(&t);
	f = fopen(ef, "r");
	CHECK(f);
	log = malloc(1 << 20);
	CHECK(log);
	n = fread(log, 1, (1 << 20) - 1, f);
	fclose(f);
	log[n] = '\0';
	for (char *p = log, *e; *p; p = e + 1) {
		if (!(e = strchr(p, '\n')))
			e = p + strlen(p) - 1;
		if (memmem(p, (size_t)(e - p + 1), "accept", 6))
			lines++;
	}
	printf("   log lines about accept: %d\n", lines);
	CHECK_MSG(lines >= 1 && lines <= 2,
		  "want one pause warning, got %d lines mentioning accept: %.300s",
		  lines, log);
	CHECK_MSG(strstr(log, "ulimit -n"), "the warning says what to do: %.300s",
		  log);
	free(log);
}

/* Resident memory of a process in KiB, from /proc/PID/status. */
static long
proc_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * A client that pipelines requests and never reads the answers: the server
 * must stop taking requests once its output queue is full (TCP back-pressure
 * then stops the client), not answer everything into memory. Before, the
 * server read all 24 MB of "GET /x/next" sent and grew by over 100 MB.
 */
static void
test_pipelined_flood_bounded(void)
{
	static const char req[] = "GET /x/next HTTP/1.1\r\n\r\n";
	struct ts t;
	char *buf;
	size_t chunk = 64 * 1024, sent = 0, cap = 24u << 20;
	long rss0, rss1;
	double t0, blocked = 0;
	int fd, rcv = 4096;

	ts_start(&t, NULL);
	buf = malloc(chunk);
	CHECK(buf);
	for (size_t i = 0; i + sizeof(req) - 1 <= chunk; i += sizeof(req) - 1)
		memcpy(buf + i, req, sizeof(req) - 1);
	chunk -= chunk % (sizeof(req) - 1);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	{
		struct sockaddr_in a = { .sin_family = AF_INET };

		a.sin_port = htons((uint16_t)t.port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	}
	CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
	rss0 = proc_rss_kb(t.pid);
	t0 = now_s();
	while (sent < cap && now_s() - t0 < 10) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		ssize_t n;

		if (poll(&p, 1, 1500) == 0) {
			blocked = now_s() - t0;
			break;        /* the server stopped reading: good */
		}
		n = send(fd, buf, chunk, MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		else if (n < 0 && errno != EAGAIN)
			break;
	}
	rss1 = proc_rss_kb(t.pid);
	printf("   sent %.1f MB of requests, server RSS +%ld KiB, %s\n",
	       sent / 1e6, rss1 - rss0, blocked > 0 ? "then blocked" :
	       "never blocked");
	CHECK_MSG(blocked > 0 && sent < (16u << 20),
		  "the server kept reading: %.1f MB taken", sent / 1e6);
	/* ASan's quarantine holds freed memory: RSS says nothing there. */
	if (!getenv("CT_SAN"))
		CHECK_MSG(rss1 - rss0 < 48 * 1024, "server grew by %ld KiB",
			  rss1 - rss0);
	close(fd);
	free(buf);
	/* Still serving others. */
	fd = raw_open(&t);
	raw_sends(fd, "GET /x/next HTTP/1.1\r\nHost: x\r\n\r\n");
	{
		char r[512];

		raw_wait(fd, r, sizeof(r), 0, "\r\n\r\n", 3000);
		CHECK_MSG(strncmp(r, "HTTP/1.1 404", 12) == 0, "got: %.100s", r);
	}
	close(fd);
	ts_stop(&t);
}

/* Runs build/trickle-server with args; its output and exit code go to out. */
static void
run_server_cli(const char *args, char *out, size_t n)
{
	char cmd[1024];
	FILE *p;
	size_t k;

	snprintf(cmd, sizeof(cmd), "timeout 10 %s/trickle-server %s 2>&1; "
		 "echo rc=$?", th_build_dir(), args);
	p = popen(cmd, "r");
	CHECK(p);
	k = fread(out, 1, n - 1, p);
	out[k] = '\0';
	pclose(p);
}

/*
 * Bad options and listen failures say what is wrong and what to do (before:
 * "cannot listen ... err=Invalid argument" for a bad --host or --base-path).
 */
static void
test_bad_options_explained(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	char out[2048], args[64];
	int fd;

	run_server_cli("--port 0 --host localhost", out, sizeof(out));
	CHECK_MSG(strstr(out, "--host") && strstr(out, "IPv4") &&
		  strstr(out, "rc=2"), "got: %s", out);
	run_server_cli("--port 0 --base-path ai/trickle", out, sizeof(out));
	CHECK_MSG(strstr(out, "--base-path") && strstr(out, "start with /") &&
		  strstr(out, "rc=2"), "got: %s", out);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 1) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
	snprintf(args, sizeof(args), "--port %d", ntohs(a.sin_port));
	run_server_cli(args, out, sizeof(out));
	CHECK_MSG(strstr(out, "in use") && strstr(out, "--port") &&
		  strstr(out, "rc=1"), "got: %s", out);
	close(fd);
}

/* ---- plain curl CLI ----------------------------------------------------- */

static void
sh(const char *fmt, const struct ts *t, char *out, size_t n)
{
	char cmd[1024];
	FILE *p;
	size_t k;

	snprintf(cmd, sizeof(cmd), fmt, t->port, t->port, t->port);
	p = popen(cmd, "r");
	CHECK(p);
	k = fread(out, 1, n - 1, p);
	out[k] = '\0';
	CHECK_EQ(pclose(p), 0);
}

static void
test_plain_curl(void)
{
	struct ts t;
	char out[4096];

	if (system("command -v curl >/dev/null 2>&1") != 0) {
		printf("   skipped: no curl CLI\n");
		return;
	}
	ts_start(&t, "--continue-interval-ms 200");
	sh("printf hello | curl -s -X POST -T - -H 'Content-Type: video/MP2T' "
	   "http://127.0.0.1:%d/ch/0 -D - -o /dev/null", &t, out, sizeof(out));
	CHECK_MSG(strstr(out, "200 OK") && strstr(out, "Lp-Trickle-Seq: 0"), "%s", out);
	sh("curl -s http://127.0.0.1:%d/ch/0", &t, out, sizeof(out));
	CHECK_STR(out, "hello");
	sh("curl -s -o /dev/null -D - http://127.0.0.1:%d/ch/9", &t, out, sizeof(out));
	CHECK_MSG(strstr(out, " 470 ") && strstr(out, "Lp-Trickle-Latest: 1"), "%s", out);
	/* A slow chunked upload: curl sees repeated 100s, the reader gets it live. */
	sh("(curl -sN http://127.0.0.1:%d/ch/-1 > " "/dev/stdout &) ; "
	   "(sleep 0.7; printf live) | curl -s -X POST -T - "
	   "http://127.0.0.1:%d/ch/1 -o /dev/null -w '%%{http_code}'; sleep 0.2",
	   &t, out, sizeof(out));
	CHECK_MSG(strstr(out, "live") && strstr(out, "200"), "%s", out);
	sh("curl -s http://127.0.0.1:%d/ch/next", &t, out, sizeof(out));
	CHECK_STR(out, "2");
	sh("curl -s -X DELETE -w '%%{http_code}' http://127.0.0.1:%d/ch", &t, out,
	   sizeof(out));
	CHECK_STR(out, "200");
	sh("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/ch/0", &t, out,
	   sizeof(out));
	CHECK_STR(out, "404");
	ts_stop(&t);
}

static void
setup_curl(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

#define C(fn) static void fn##_c(void) { setup_curl(); fn(); curl_global_cleanup(); }
C(test_post_get_roundtrip) C(test_post_missing_channel_no_autocreate)
C(test_bad_seq_400) C(test_post_body_error_500) C(test_get_missing_channel_404)
C(test_get_470_headers) C(test_delete_segment) C(test_delete_channel)
C(test_next_route) C(test_routes_405_404) C(test_post_minus1_uses_next)
C(test_get_minus1_waits_for_next) C(test_get_minus2_current)
C(test_precreate_seq1_at_start) C(test_ring_of_five)
C(test_post_existing_seq_appends) C(test_live_relay_before_post_ends)
C(test_preconnect_repeated_100_continue) C(test_expect_continue_answered)
C(test_zero_byte_post_advances) C(test_preconnect_ended_by_channel_close)
C(test_segment_cap_413) C(test_get_headers_wait_first_byte)
C(test_join_mid_segment_identical) C(test_empty_segment_reply)
C(test_idle_sweep) C(test_close_wakes_readers) C(test_reset_closes_older)
C(test_200_segments_no_loss) C(test_slow_reader_470_resume) C(test_bad_heads)
C(test_disconnects_mid_segment) C(test_thousands_of_channels) C(test_plain_curl)
C(test_keepalive_pipelining_http10) C(test_out_of_fds_pauses_accept)
C(test_pipelined_flood_bounded) C(test_bad_options_explained)
#undef C

static const struct th_case cases[] = {
	{ "post_get_roundtrip", test_post_get_roundtrip_c, 20 },
	{ "post_missing_channel_no_autocreate", test_post_missing_channel_no_autocreate_c, 20 },
	{ "bad_seq_400", test_bad_seq_400_c, 20 },
	{ "post_body_error_500", test_post_body_error_500_c, 20 },
	{ "get_missing_channel_404", test_get_missing_channel_404_c, 20 },
	{ "get_470_headers", test_get_470_headers_c, 20 },
	{ "delete_segment", test_delete_segment_c, 20 },
	{ "delete_channel", test_delete_channel_c, 20 },
	{ "next_route", test_next_route_c, 20 },
	{ "routes_405_404", test_routes_405_404_c, 20 },
	{ "post_minus1_uses_next", test_post_minus1_uses_next_c, 20 },
	{ "get_minus1_waits_for_next", test_get_minus1_waits_for_next_c, 20 },
	{ "get_minus2_current", test_get_minus2_current_c, 20 },
	{ "precreate_seq1_at_start", test_precreate_seq1_at_start_c, 20 },
	{ "ring_of_five", test_ring_of_five_c, 20 },
	{ "post_existing_seq_appends", test_post_existing_seq_appends_c, 20 },
	{ "live_relay_before_post_ends", test_live_relay_before_post_ends_c, 20 },
	{ "preconnect_repeated_100_continue", test_preconnect_repeated_100_continue_c, 20 },
	{ "expect_continue_answered", test_expect_continue_answered_c, 20 },
	{ "zero_byte_post_advances", test_zero_byte_post_advances_c, 20 },
	{ "preconnect_ended_by_channel_close", test_preconnect_ended_by_channel_close_c, 20 },
	{ "segment_cap_413", test_segment_cap_413_c, 20 },
	{ "get_headers_wait_first_byte", test_get_headers_wait_first_byte_c, 20 },
	{ "join_mid_segment_identical", test_join_mid_segment_identical_c, 20 },
	{ "empty_segment_reply", test_empty_segment_reply_c, 20 },
	{ "idle_sweep", test_idle_sweep_c, 20 },
	{ "close_wakes_readers", test_close_wakes_readers_c, 20 },
	{ "reset_closes_older", test_reset_closes_older_c, 20 },
	{ "200_segments_no_loss", test_200_segments_no_loss_c, 60 },
	{ "slow_reader_470_resume", test_slow_reader_470_resume_c, 20 },
	{ "bad_heads", test_bad_heads_c, 20 },
	{ "disconnects_mid_segment", test_disconnects_mid_segment_c, 20 },
	{ "thousands_of_channels", test_thousands_of_channels_c, 60 },
	{ "plain_curl", test_plain_curl_c, 30 },
	{ "keepalive_pipelining_http10", test_keepalive_pipelining_http10_c, 20 },
	{ "out_of_fds_pauses_accept", test_out_of_fds_pauses_accept_c, 30 },
	{ "pipelined_flood_bounded", test_pipelined_flood_bounded_c, 30 },
	{ "bad_options_explained", test_bad_options_explained_c, 30 },
	TH_END
};

TH_MAIN(cases)
