/*
 * trickle-load: N publisher+subscriber pairs through build/trickle-server on
 * loopback, each at a fixed byte rate, chunks stamped with a monotonic time
 * and a sequence number. Reports bytes lost, write->read delay percentiles
 * and the server's CPU. A benchmark, not a test: nothing is asserted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "trickle-server/hparse.h"

struct load_cfg {
	int pairs, seconds, port, chunk, rate, seg_ms;
};

struct rec_hdr {          /* at the start of every chunk */
	int64_t stamp_ns;
	uint64_t seq;
};

struct pair {
	const struct load_cfg *cfg;
	int id;
	uint64_t sent, received, bad;
	double *delays;       /* ms, one per chunk received */
	size_t ndelays, cap;
	pthread_t pub, sub;
};

static void
load_sleep_until(int64_t t_ns)
{
	struct timespec ts = { t_ns / 1000000000LL, t_ns % 1000000000LL };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int
load_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
load_send(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);

		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
load_sends(int fd, const char *s)
{
	return load_send(fd, s, strlen(s));
}

/*
 * Reads a response head (skipping interim 1xx). Returns the status, copies
 * the header block to hdr and leaves body bytes already read in rest.
 */
static int
load_read_head(int fd, char *hdr, size_t cap, char *rest, size_t *restlen)
{
	size_t have = 0;

	for (;;) {
		char *end;
		ssize_t n = recv(fd, hdr + have, cap - 1 - have, 0);

		if (n <= 0)
			return -1;
		have += (size_t)n;
		hdr[have] = '\0';
		while ((end = strstr(hdr, "\r\n\r\n"))) {
			size_t hl = (size_t)(end + 4 - hdr);
			int st = atoi(hdr + 9);

			if (st >= 200) {
				*restlen = have - hl;
				memcpy(rest, end + 4, *restlen);
				hdr[hl] = '\0';
				return st;
			}
			memmove(hdr, end + 4, have - hl + 1);
			have -= hl;
		}
		if (have + 1 >= cap)
			return -1;
	}
}

static int64_t
load_hdr_num(const char *hdr, const char *name, int64_t dflt)
{
	const char *p = strcasestr(hdr, name);

	return p ? strtoll(p + strlen(name), NULL, 10) : dflt;
}

static int
load_open_post(const struct load_cfg *c, int id, int64_t seq)
{
	char h[256];
	int fd = load_connect(c->port);

	snprintf(h, sizeof(h), "POST /load-%d/%" PRId64 " HTTP/1.1\r\nHost: l\r\n"
		 "Content-Type: video/MP2T\r\nTransfer-Encoding: chunked\r\n\r\n",
		 id, seq);
	if (fd >= 0 && load_sends(fd, h) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int
load_open_get(const struct load_cfg *c, int id, int64_t seq)
{
	char h[256];
	int fd = load_connect(c->port);

	snprintf(h, sizeof(h), "GET /load-%d/%" PRId64 " HTTP/1.1\r\nHost: l\r\n\r\n",
		 id, seq);
	if (fd >= 0 && load_sends(fd, h) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Ends a POST body and waits for its final status. */
static int
load_end_post(int fd)
{
	char hdr[2048], rest[2048];
	size_t rl;

	if (load_sends(fd, "0\r\n\r\n") < 0)
		return -1;
	return load_read_head(fd, hdr, sizeof(hdr), rest, &rl);
}

static void
load_simple(const struct load_cfg *c, const char *method, const char *path)
{
	char h[256], hdr[2048], rest[2048];
	size_t rl;
	int fd = load_connect(c->port);

	if (fd < 0)
		return;
	snprintf(h, sizeof(h), "%s %s HTTP/1.1\r\nHost: l\r\nContent-Length: 0\r\n"
		 "Connection: close\r\n\r\n", method, path);
	if (load_sends(fd, h) == 0)
		load_read_head(fd, hdr, sizeof(hdr), rest, &rl);
	close(fd);
}

static void *
load_pub_main(void *arg)
{
	struct pair *p = arg;
	const struct load_cfg *c = p->cfg;
	int64_t interval = (int64_t)c->chunk * 1000000000LL / c->rate;
	int64_t t0 = clock_now_ns(), t_end = t0 + (int64_t)c->seconds * 1000000000LL;
	int64_t next = t0, seq = 0;
	uint8_t *buf = malloc((size_t)c->chunk + 32);
	uint64_t rseq = 0;
	int fd = load_open_post(c, p->id, 0), nfd = -1;

	while (buf && fd >= 0 && next < t_end) {
		int64_t seg_end = next + (int64_t)c->seg_ms * 1000000LL;
		char ch[32];

		while (next < seg_end && next < t_end) {
			struct rec_hdr rh;

			load_sleep_until(next);
			rh.stamp_ns = clock_now_ns();
			rh.seq = rseq++;
			memcpy(buf, &rh, sizeof(rh));
			for (int i = sizeof(rh); i < c->chunk; i++)
				buf[i] = (uint8_t)(rh.seq + (uint64_t)i);
			snprintf(ch, sizeof(ch), "%x\r\n", c->chunk);
			memcpy(buf + c->chunk, "\r\n", 2);
			if (load_sends(fd, ch) < 0 ||
			    load_send(fd, buf, (size_t)c->chunk + 2) < 0)
				goto out;
			p->sent += (uint64_t)c->chunk;
			next += interval;
			if (nfd < 0)
				nfd = load_open_post(c, p->id, seq + 1);  /* preconnect */
		}
		if (load_end_post(fd) != 200)
			fprintf(stderr, "trickle-load: pair %d seq %" PRId64
				" POST failed\n", p->id, seq);
		close(fd);
		fd = nfd;
		nfd = -1;
		seq++;
	}
out:
	if (fd >= 0)
		close(fd);
	if (nfd >= 0)
		close(nfd);
	free(buf);
	{
		char path[64];

		usleep(200000);  /* let the subscriber drain the last segment */
		snprintf(path, sizeof(path), "/load-%d", p->id);
		load_simple(c, "DELETE", path);
	}
	return NULL;
}

/* Consumes decoded body bytes: whole chunks are checked and timed. */
static void
load_sub_bytes(struct pair *p, uint8_t *acc, size_t *accn, const uint8_t *d,
	       size_t n, uint64_t *expect)
{
	size_t cs = (size_t)p->cfg->chunk;

	while (n) {
		size_t k = cs - *accn < n ? cs - *accn : n;

		memcpy(acc + *accn, d, k);
		*accn += k;
		d += k;
		n -= k;
		if (*accn == cs) {
			struct rec_hdr rh;
			int64_t now = clock_now_ns();

			memcpy(&rh, acc, sizeof(rh));
			if (rh.seq != *expect || acc[cs - 1] != (uint8_t)(rh.seq + cs - 1))
				p->bad++;
			*expect = rh.seq + 1;
			p->received += cs;
			if (p->ndelays == p->cap) {
				size_t nc = p->cap ? p->cap * 2 : 1024;
				double *nd = realloc(p->delays, nc * sizeof(*nd));

				if (!nd)
					return;
				p->delays = nd;
				p->cap = nc;
			}
			p->delays[p->ndelays++] = (double)(now - rh.stamp_ns) / 1e6;
			*accn = 0;
		}
	}
}

static void *
load_sub_main(void *arg)
{
	struct pair *p = arg;
	const struct load_cfg *c = p->cfg;
	uint8_t *acc = malloc((size_t)c->chunk);
	static const size_t BUFSZ = 65536;
	char *hdr = malloc(4096), *buf = malloc(BUFSZ);
	int64_t seq = 0;
	uint64_t expect = 0;
	int fd = load_open_get(c, p->id, 0);

	while (acc && hdr && buf && fd >= 0) {
		struct hparse_chunked hc;
		size_t have, accn = 0;
		int st = load_read_head(fd, hdr, 4096, buf, &have), nfd, rc = 0;

		if (st == 470) {
			close(fd);
			seq = load_hdr_num(hdr, "Lp-Trickle-Latest:", seq + 1);
			fd = load_open_get(c, p->id, seq);
			continue;
		}
		if (st != 200 || strcasestr(hdr, "Lp-Trickle-Closed"))
			break;
		seq = load_hdr_num(hdr, "Lp-Trickle-Seq:", seq);
		nfd = load_open_get(c, p->id, seq + 1);  /* preconnect */
		hparse_chunked_init(&hc);
		for (;;) {
			size_t off = 0;

			while (off < have) {
				size_t used, doff, dlen;

				rc = hparse_chunked_step(&hc, (uint8_t *)buf + off,
							 have - off, &used, &doff, &dlen);
				load_sub_bytes(p, acc, &accn, (uint8_t *)buf + off + doff,
					       dlen, &expect);
				off += used;
				if (rc != 0)
					break;
			}
			if (rc != 0)
				break;
			ssize_t n = recv(fd, buf, BUFSZ, 0);

			if (n <= 0)
				break;
			have = (size_t)n;
		}
		close(fd);
		fd = nfd;
		seq++;
	}
	if (fd >= 0)
		close(fd);
	free(acc);
	free(hdr);
	free(buf);
	return NULL;
}

static int
load_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
load_cpu_s(pid_t pid)
{
	char path[64], line[2048], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(line, ')');
	/* after ")": state(3) ... utime is field 14, stime 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void
load_usage(void)
{
	printf("usage: trickle_load [--pairs N] [--seconds T] [--rate BYTES_PER_S]\n"
	       "         [--chunk BYTES] [--segment-ms MS] [--server PATH | --port P]\n"
	       "defaults: 100 pairs, 30 s, 1000000 B/s, 10000 B chunks, 1000 ms\n"
	       "segments, server <dir of this binary>/../trickle-server on a free port\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pairs", 1, NULL, 'n' }, { "seconds", 1, NULL, 't' },
		{ "rate", 1, NULL, 'r' }, { "chunk", 1, NULL, 'c' },
		{ "segment-ms", 1, NULL, 's' }, { "server", 1, NULL, 'S' },
		{ "port", 1, NULL, 'p' }, { "help", 0, NULL, 'h' }, { 0 }
	};
	struct load_cfg cfg = { 100, 30, 0, 10000, 1000000, 1000 };
	char server[1100], self[1024], pf[] = "/tmp/trickle-load-XXXXXX", pfile[64];
	struct pair *pairs;
	pid_t spid = -1;
	double cpu0 = 0, cpu1 = 0, *all, p50 = 0, p99 = 0, mx = 0;
	uint64_t sent = 0, recvd = 0, bad = 0;
	size_t nall = 0;
	int64_t t0, t1;
	int o;

	snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(server, sizeof(server), "%s/../trickle-server", dirname(self));
	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (o) {
		case 'n': cfg.pairs = atoi(optarg); break;
		case 't': cfg.seconds = atoi(optarg); break;
		case 'r': cfg.rate = atoi(optarg); break;
		case 'c': cfg.chunk = atoi(optarg); break;
		case 's': cfg.seg_ms = atoi(optarg); break;
		case 'S': snprintf(server, sizeof(server), "%s", optarg); break;
		case 'p': cfg.port = atoi(optarg); break;
		default: load_usage(); return o == 'h' ? 0 : 2;
		}
	}
	if (cfg.pairs < 1 || cfg.seconds < 1 || cfg.rate < 1000 ||
	    cfg.chunk < (int)sizeof(struct rec_hdr) + 1 || cfg.seg_ms < 10) {
		load_usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!cfg.port) {
		if (!mkdtemp(pf))
			return 1;
		snprintf(pfile, sizeof(pfile), "%s/port", pf);
		spid = fork();
		if (spid == 0) {
			execl(server, server, "--port", "0", "--port-file", pfile,
			      "--log-level", "warn", (char *)NULL);
			perror(server);
			_exit(127);
		}
		for (int i = 0; i < 500 && !cfg.port; i++) {
			FILE *f = fopen(pfile, "r");

			if (f) {
				if (fscanf(f, "%d", &cfg.port) != 1)
					cfg.port = 0;
				fclose(f);
			}
			if (!cfg.port)
				usleep(10000);
		}
		unlink(pfile);
		rmdir(pf);
		if (!cfg.port) {
			fprintf(stderr, "trickle-load: server did not start (%s)\n", server);
			kill(spid, SIGKILL);
			return 1;
		}
	}
	printf("trickle-load: pairs=%d seconds=%d rate=%d B/s chunk=%d B segment=%d ms"
	       " port=%d\n", cfg.pairs, cfg.seconds, cfg.rate, cfg.chunk,
	       cfg.seg_ms, cfg.port);
	pairs = calloc((size_t)cfg.pairs, sizeof(*pairs));
	if (!pairs)
		return 1;
	for (int i = 0; i < cfg.pairs; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/load-%d", i);
		load_simple(&cfg, "POST", path);
	}
	if (spid > 0)
		cpu0 = load_cpu_s(spid);
	t0 = clock_now_ns();
	for (int i = 0; i < cfg.pairs; i++) {
		pairs[i].cfg = &cfg;
		pairs[i].id = i;
		pthread_create(&pairs[i].sub, NULL, load_sub_main, &pairs[i]);
		pthread_create(&pairs[i].pub, NULL, load_pub_main, &pairs[i]);
	}
	for (int i = 0; i < cfg.pairs; i++) {
		pthread_join(pairs[i].pub, NULL);
		pthread_join(pairs[i].sub, NULL);
	}
	t1 = clock_now_ns();
	if (spid > 0)
		cpu1 = load_cpu_s(spid);
	for (int i = 0; i < cfg.pairs; i++) {
		sent += pairs[i].sent;
		recvd += pairs[i].received;
		bad += pairs[i].bad;
		nall += pairs[i].ndelays;
	}
	all = malloc((nall ? nall : 1) * sizeof(*all));
	nall = 0;
	for (int i = 0; i < cfg.pairs; i++) {
		if (all && pairs[i].ndelays)
			memcpy(all + nall, pairs[i].delays, pairs[i].ndelays * sizeof(*all));
		nall += all ? pairs[i].ndelays : 0;
		free(pairs[i].delays);
	}
	if (nall) {
		qsort(all, nall, sizeof(*all), load_cmp);
		p50 = all[nall / 2];
		p99 = all[(size_t)((double)(nall - 1) * 0.99)];
		mx = all[nall - 1];
	}
	printf("trickle-load: sent=%" PRIu64 " B received=%" PRIu64 " B chunks=%zu"
	       " out-of-order/corrupt=%" PRIu64 " throughput=%.1f MB/s\n", sent, recvd,
	       nall, bad, (double)recvd / ((double)(t1 - t0) / 1e9) / 1e6);
	printf("trickle-load: delay p50=%.2f ms p99=%.2f ms max=%.2f ms\n", p50, p99, mx);
	if (spid > 0)
		printf("trickle-load: server cpu=%.1f%% of one core (%.2f s over %.1f s)\n",
		       100.0 * (cpu1 - cpu0) / ((double)(t1 - t0) / 1e9), cpu1 - cpu0,
		       (double)(t1 - t0) / 1e9);
	else
		printf("trickle-load: server cpu=n/a (external server)\n");
	printf("trickle-load: %.2f ms p99, %" PRIu64 " bytes lost (goal 0 lost)\n", p99,
	       sent - recvd);
	if (spid > 0) {
		int st = 0;

		kill(spid, SIGTERM);
		waitpid(spid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			fprintf(stderr, "trickle-load: server exit status 0x%x\n", st);
	}
	free(all);
	free(pairs);
	return 0;
}
