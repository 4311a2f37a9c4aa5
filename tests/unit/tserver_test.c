/*
 * build/trickle-server against PROTOCOL.md 3.2-3.7: one case per behaviour
 * row, checked over libcurl, raw sockets (exact chunked bodies, 100 Continue)
 * and the plain curl CLI. Each case starts its own server on a free port and
 * stops it with SIGTERM, checking a clean (sanitizer-clean under SAN=1) exit.
 * Load and bad input: tserver_robust_test.c; helpers: tserver_util.h.
 */
#include "tserver_util.h"

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

TS_CURL_CASE(test_post_get_roundtrip)
TS_CURL_CASE(test_post_missing_channel_no_autocreate)
TS_CURL_CASE(test_bad_seq_400)
TS_CURL_CASE(test_post_body_error_500)
TS_CURL_CASE(test_get_missing_channel_404)
TS_CURL_CASE(test_get_470_headers)
TS_CURL_CASE(test_delete_segment)
TS_CURL_CASE(test_delete_channel)
TS_CURL_CASE(test_next_route)
TS_CURL_CASE(test_routes_405_404)
TS_CURL_CASE(test_post_minus1_uses_next)
TS_CURL_CASE(test_get_minus1_waits_for_next)
TS_CURL_CASE(test_get_minus2_current)
TS_CURL_CASE(test_precreate_seq1_at_start)
TS_CURL_CASE(test_ring_of_five)
TS_CURL_CASE(test_post_existing_seq_appends)
TS_CURL_CASE(test_live_relay_before_post_ends)
TS_CURL_CASE(test_preconnect_repeated_100_continue)
TS_CURL_CASE(test_expect_continue_answered)
TS_CURL_CASE(test_zero_byte_post_advances)
TS_CURL_CASE(test_preconnect_ended_by_channel_close)
TS_CURL_CASE(test_segment_cap_413)
TS_CURL_CASE(test_get_headers_wait_first_byte)
TS_CURL_CASE(test_join_mid_segment_identical)
TS_CURL_CASE(test_empty_segment_reply)
TS_CURL_CASE(test_idle_sweep)
TS_CURL_CASE(test_close_wakes_readers)
TS_CURL_CASE(test_reset_closes_older)
TS_CURL_CASE(test_plain_curl)

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
	{ "plain_curl", test_plain_curl_c, 30 },
	TH_END
};

TH_MAIN(cases)
