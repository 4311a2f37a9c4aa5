/*
 * build/trickle-server under load and abuse: 200 paced segments, slow and
 * vanishing clients, malformed heads, thousands of channels, pipelining and
 * HTTP/1.0, running out of fds, a request flood that never reads, bad
 * command lines. Protocol rows: tserver_test.c; helpers: tserver_util.h.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "tserver_util.h"

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
	ts_wait_port(&t, pf, bin);
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

TS_CURL_CASE(test_200_segments_no_loss)
TS_CURL_CASE(test_slow_reader_470_resume)
TS_CURL_CASE(test_bad_heads)
TS_CURL_CASE(test_disconnects_mid_segment)
TS_CURL_CASE(test_thousands_of_channels)
TS_CURL_CASE(test_keepalive_pipelining_http10)
TS_CURL_CASE(test_out_of_fds_pauses_accept)
TS_CURL_CASE(test_pipelined_flood_bounded)
TS_CURL_CASE(test_bad_options_explained)

static const struct th_case cases[] = {
	{ "200_segments_no_loss", test_200_segments_no_loss_c, 60 },
	{ "slow_reader_470_resume", test_slow_reader_470_resume_c, 20 },
	{ "bad_heads", test_bad_heads_c, 20 },
	{ "disconnects_mid_segment", test_disconnects_mid_segment_c, 20 },
	{ "thousands_of_channels", test_thousands_of_channels_c, 60 },
	{ "keepalive_pipelining_http10", test_keepalive_pipelining_http10_c, 20 },
	{ "out_of_fds_pauses_accept", test_out_of_fds_pauses_accept_c, 30 },
	{ "pipelined_flood_bounded", test_pipelined_flood_bounded_c, 30 },
	{ "bad_options_explained", test_bad_options_explained_c, 30 },
	TH_END
};

TH_MAIN(cases)
