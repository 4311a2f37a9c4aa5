/*
 * tcp_proxy: a small loopback TCP relay for tests that need the server to
 * "go away": `tcp_proxy LISTEN_PORT TARGET_PORT`. Relays every accepted
 * connection to 127.0.0.1:TARGET_PORT. On SIGTERM it resets (RST) every
 * connection and exits 0, so clients see a reset, then refused connections.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PX_MAX 256
#define PX_BUF 65536

struct px_dir {
	char buf[PX_BUF];
	size_t len, off;
	bool eof;
};

struct px_pair {
	int fd[2];            /* 0: client, 1: target */
	struct px_dir d[2];   /* d[i]: read from fd[i], to write to fd[!i] */
};

static volatile sig_atomic_t px_stop;

static void
px_on_term(int sig)
{
	px_stop = 1;
}

static void
px_reset(int fd)
{
	struct linger l = { 1, 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int
px_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Moves bytes of one direction; false when the pair must be torn down. */
static bool
px_pump(struct px_pair *p, int i, short rev_src, short rev_dst)
{
	struct px_dir *d = &p->d[i];
	ssize_t n;

	if ((rev_src & (POLLIN | POLLHUP | POLLERR)) && d->len == 0 &&
	    !d->eof) {
		n = read(p->fd[i], d->buf, sizeof(d->buf));
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		if (n == 0) {
			d->eof = true;
			shutdown(p->fd[!i], SHUT_WR);
		}
		if (n > 0) {
			d->len = (size_t)n;
			d->off = 0;
		}
	}
	if (d->len > d->off && (rev_dst & POLLOUT)) {
		n = write(p->fd[!i], d->buf + d->off, d->len - d->off);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		if (n > 0)
			d->off += (size_t)n;
		if (d->off == d->len)
			d->len = d->off = 0;
	}
	return !(p->d[0].eof && p->d[1].eof && !p->d[0].len && !p->d[1].len);
}

int
main(int argc, char **argv)
{
	static struct px_pair pairs[PX_MAX];
	struct pollfd pfd[1 + 2 * PX_MAX];
	struct sockaddr_in a = { .sin_family = AF_INET };
	int lfd, one = 1, target;

	if (argc != 3) {
		fprintf(stderr, "usage: tcp_proxy LISTEN_PORT TARGET_PORT\n");
		return 2;
	}
	target = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, px_on_term);
	signal(SIGINT, px_on_term);
	for (int i = 0; i < PX_MAX; i++)
		pairs[i].fd[0] = pairs[i].fd[1] = -1;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(lfd, 64) != 0) {
		perror("tcp_proxy: listen");
		return 1;
	}
	while (!px_stop) {
		int n = 0;

		pfd[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < PX_MAX; i++) {
			struct px_pair *p = &pairs[i];

			for (int k = 0; k < 2; k++) {
				short ev = 0;

				if (p->fd[k] < 0)
					continue;
				if (p->d[k].len == 0 && !p->d[k].eof)
					ev |= POLLIN;
				if (p->d[!k].len > p->d[!k].off)
					ev |= POLLOUT;
				pfd[n++] = (struct pollfd){ .fd = p->fd[k],
							    .events = ev };
			}
		}
		if (poll(pfd, (nfds_t)n, 200) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			int c = accept(lfd, NULL, NULL);
			int t = c >= 0 ? px_connect(target) : -1;
			int slot = -1;

			for (int i = 0; i < PX_MAX && c >= 0; i++)
				if (pairs[i].fd[0] < 0) {
					slot = i;
					break;
				}
			if (c >= 0 && (t < 0 || slot < 0)) {
				px_reset(c);
				if (t >= 0)
					close(t);
			} else if (c >= 0) {
				memset(&pairs[slot], 0, sizeof(pairs[slot]));
				pairs[slot].fd[0] = c;
				pairs[slot].fd[1] = t;
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				continue; /* pfd indexes changed */
			}
		}
		n = 1;
		for (int i = 0; i < PX_MAX; i++) {
			struct px_pair *p = &pairs[i];
			short r0, r1;

			if (p->fd[0] < 0)
				continue;
			r0 = pfd[n].revents;
			r1 = pfd[n + 1].revents;
			n += 2;
			if (((r0 | r1) & POLLERR) || !px_pump(p, 0, r0, r1) ||
			    !px_pump(p, 1, r1, r0)) {
				px_reset(p->fd[0]);
				px_reset(p->fd[1]);
				p->fd[0] = p->fd[1] = -1;
			}
		}
	}
	for (int i = 0; i < PX_MAX; i++) {
		px_reset(pairs[i].fd[0]);
		px_reset(pairs[i].fd[1]);
	}
	close(lfd);
	return 0;
}
