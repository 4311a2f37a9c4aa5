/*
 * libFuzzer target for the trickle server's connection and channel state
 * machine (trickle-server/hsrv.c, tserver.c): up to 4 loopback clients send
 * pieces of the input, read, half-close or reset at fuzzer-chosen moments,
 * with the event loop run in between (timers at 1 ms, so keep-alives and the
 * idle sweep fire); then the server is destroyed with whatever is in flight.
 * ASan/UBSan/LSan report use after free, overflow and leaks.
 *
 * Input: a list of ops. op & 3: 0 = send (next byte: length, then that many
 * bytes) from client (op >> 2) % 4, connecting it first; 1 = run the loop
 * 1 + (op >> 4) times; 2 = read what client k was sent; 3 = close client k
 * (op & 0x80: shut down writing first, else a reset).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>

#include "log.h"
#include "trickle-server/tserver.h"

#define FZ_CLIENTS 4

static struct event_base *fz_base;

/* A non-blocking client; closing it resets (no TIME_WAIT per exec). */
static int
fz_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct linger l = { 1, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
fz_run(int rounds)
{
	for (int i = 0; i < rounds; i++)
		event_base_loop(fz_base, EVLOOP_NONBLOCK);
}

static void
fz_drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct timeval ms2 = { 0, 2000 };
	struct tserver_opts o;
	int fd[FZ_CLIENTS], port;
	tserver *s = NULL;
	size_t i = 0;

	if (!fz_base) {
		log_set_level(LOG_ERROR);
		signal(SIGPIPE, SIG_IGN);
		fz_base = event_base_new();
		if (!fz_base)
			abort();
	}
	tserver_opts_default(&o);
	o.port = 0;
	o.continue_ms = 1;
	o.sweep_interval_ms = 1;
	o.idle_timeout_ms = 3;
	o.max_segment_bytes = 4096;
	o.max_channels = 8;
	if (tserver_create(&s, fz_base, &o) < 0)
		return 0;
	port = tserver_port(s);
	for (int k = 0; k < FZ_CLIENTS; k++)
		fd[k] = -1;
	while (i < size) {
		uint8_t op = data[i++];
		int k = (op >> 2) % FZ_CLIENTS;
		size_t n;

		switch (op & 3) {
		case 0:
			n = i < size ? data[i++] : 0;
			if (n > size - i)
				n = size - i;
			if (fd[k] < 0) {
				fd[k] = fz_connect(port);
				fz_run(1);
			}
			if (fd[k] >= 0 && n)
				(void)!send(fd[k], data + i, n,
					    MSG_NOSIGNAL | MSG_DONTWAIT);
			i += n;
			break;
		case 1:
			fz_run(1 + (op >> 4));
			break;
		case 2:
			if (fd[k] >= 0)
				fz_drain(fd[k]);
			break;
		default:
			if (fd[k] < 0)
				break;
			if (op & 0x80) {
				shutdown(fd[k], SHUT_WR);
				fz_run(2);
			}
			close(fd[k]);
			fd[k] = -1;
			break;
		}
	}
	fz_run(4);
	/* 2 ms of real time: keep-alive (1 ms) and sweep timers fire. */
	event_base_loopexit(fz_base, &ms2);
	event_base_dispatch(fz_base);
	for (int k = 0; k < FZ_CLIENTS; k++) {
		if (fd[k] >= 0) {
			fz_drain(fd[k]);
			close(fd[k]);
		}
	}
	fz_run(2);
	tserver_destroy(&s);
	fz_run(2);
	return 0;
}
