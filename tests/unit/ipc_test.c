/*
 * ipc tests: the private runtime directory (mode, naming, no collisions,
 * removal, the sweep of stale ones), listen/dial with retry, send/receive
 * with timeouts, the recv fd for libevent, and the nng -> errno mapping.
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "ipc.h"

static void
ipc_err_mapping(void)
{
	CHECK_EQ(ipc_err(0), 0);
	CHECK_EQ(ipc_err(NNG_ETIMEDOUT), -ETIMEDOUT);
	CHECK_EQ(ipc_err(NNG_EAGAIN), -EAGAIN);
	CHECK_EQ(ipc_err(NNG_ECLOSED), -EPIPE);
	CHECK_EQ(ipc_err(NNG_ECONNREFUSED), -ECONNREFUSED);
	CHECK_EQ(ipc_err(NNG_EADDRINUSE), -EADDRINUSE);
	CHECK_EQ(ipc_err(NNG_EMSGSIZE), -EMSGSIZE);
	CHECK_EQ(ipc_err(NNG_ENOMEM), -ENOMEM);
	CHECK_EQ(ipc_err(NNG_ESYSERR | EACCES), -EACCES);
	CHECK_EQ(ipc_err(NNG_ETRANERR | 5), -EIO);
	CHECK_EQ(ipc_err(12345), -EIO);
	for (int e = 1; e <= 31; e++)
		CHECK(ipc_err(e) < 0);
}

static void
ipc_dir_mode_and_removal(void)
{
	char url[IPC_URL_MAX], sock[IPC_URL_MAX];
	const char *base = th_tmpdir();
	struct stat st;
	ipc_dir *d;
	ipc *s;
	mode_t old = umask(0);

	CHECK_OK(ipc_dir_create(&d, base));
	umask(old);
	CHECK(strncmp(ipc_dir_path(d), base, strlen(base)) == 0);
	CHECK(strstr(ipc_dir_path(d), "/" IPC_DIR_PREFIX) != NULL);
	CHECK_OK(stat(ipc_dir_path(d), &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0700);
	CHECK_EQ(st.st_uid, getuid());

	CHECK_OK(ipc_dir_url(d, "w0.ipc", url, sizeof(url)));
	CHECK(strncmp(url, "ipc://", 6) == 0);
	CHECK_EQ(ipc_dir_url(d, "../x", url + 0, sizeof(url)), -EINVAL);
	CHECK_EQ(ipc_dir_url(d, "", url, sizeof(url)), -EINVAL);
	CHECK_EQ(ipc_dir_url(d, "a/b", url, sizeof(url)), -EINVAL);
	CHECK_EQ(ipc_dir_url(d, "w0.ipc", url, 10), -ENAMETOOLONG);
	CHECK_OK(ipc_dir_url(d, "w0.ipc", url, sizeof(url)));
	old = umask(0);
	CHECK_OK(ipc_listen(&s, url));
	umask(old);
	snprintf(sock, sizeof(sock), "%s", url + 6);
	CHECK_OK(stat(sock, &st));
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0700);
	ipc_close(&s);
	CHECK(s == NULL);
	ipc_close(&s);
	snprintf(sock, sizeof(sock), "%s", ipc_dir_path(d));
	ipc_dir_destroy(&d);
	CHECK(d == NULL);
	ipc_dir_destroy(&d);
	CHECK(stat(sock, &st) < 0 && errno == ENOENT);
	CHECK_EQ(ipc_dir_create(&d, "/nonexistent-ctrickle-base"), -ENOENT);
}

/* Two gateways on one box: distinct dirs, same socket names, no crosstalk. */
static void
ipc_two_dirs_no_collision(void)
{
	char u1[IPC_URL_MAX], u2[IPC_URL_MAX], buf[16];
	ipc_dir *d1, *d2;
	ipc *l1, *l2, *c1, *c2;
	size_t len;

	CHECK_OK(ipc_dir_create(&d1, NULL));
	CHECK_OK(ipc_dir_create(&d2, NULL));
	CHECK(strcmp(ipc_dir_path(d1), ipc_dir_path(d2)) != 0);
	CHECK_OK(ipc_dir_url(d1, "w0.ipc", u1, sizeof(u1)));
	CHECK_OK(ipc_dir_url(d2, "w0.ipc", u2, sizeof(u2)));
	CHECK_OK(ipc_listen(&l1, u1));
	CHECK_OK(ipc_listen(&l2, u2));
	CHECK_OK(ipc_dial(&c1, u1, 1000));
	CHECK_OK(ipc_dial(&c2, u2, 1000));
	CHECK_OK(ipc_send_timeout(c1, "one", 4, 1000));
	CHECK_OK(ipc_send_timeout(c2, "two", 4, 1000));
	CHECK_OK(ipc_recv(l1, buf, sizeof(buf), &len, 1000));
	CHECK_STR(buf, "one");
	CHECK_OK(ipc_recv(l2, buf, sizeof(buf), &len, 1000));
	CHECK_STR(buf, "two");
	CHECK_EQ(ipc_recv(l1, buf, sizeof(buf), &len, 0), -EAGAIN);
	/* A live socket is never taken over (nng probes it, then refuses). */
	ipc_close(&c1);
	CHECK_EQ(ipc_listen(&c1, u1), -EADDRINUSE);
	CHECK(c1 == NULL);
	ipc_close(&c2);
	ipc_close(&l1);
	ipc_close(&l2);
	ipc_dir_destroy(&d1);
	ipc_dir_destroy(&d2);
}

static void
ipc_send_recv_timeouts(void)
{
	char url[IPC_URL_MAX], buf[64], big[256];
	struct pollfd pfd;
	nng_msg *m;
	ipc_dir *d;
	ipc *l, *c;
	int64_t t0;
	size_t len;
	int fd;

	CHECK_OK(ipc_dir_create(&d, NULL));
	CHECK_OK(ipc_dir_url(d, "w0.ipc", url, sizeof(url)));
	CHECK_OK(ipc_listen(&l, url));
	/* No peer yet: a non-blocking send cannot go, a timed one times out. */
	/* No peer: the send buffer fills, then a non-blocking send says so. */
	{
		int i, rv = 0;

		for (i = 0; i < 1000 && (rv = ipc_send(l, "x", 2, IPC_NONBLOCK)) == 0; i++)
			;
		CHECK_EQ(rv, -EAGAIN);
		CHECK(i > 0 && i < 1000);
	}
	t0 = clock_now_ms();
	CHECK_EQ(ipc_send_timeout(l, "x", 2, 50), -ETIMEDOUT);
	printf("    send timeout 50 ms took %lld ms\n",
	       (long long)(clock_now_ms() - t0));
	CHECK_OK(ipc_dial(&c, url, 1000));

	CHECK_OK(ipc_recv_fd(l, &fd));
	CHECK(fd >= 0);
	pfd.fd = fd;
	pfd.events = POLLIN;
	CHECK_EQ(poll(&pfd, 1, 0), 0);
	t0 = clock_now_ms();
	CHECK_EQ(ipc_recv(l, buf, sizeof(buf), &len, 50), -ETIMEDOUT);
	printf("    recv timeout 50 ms took %lld ms\n",
	       (long long)(clock_now_ms() - t0));
	CHECK_EQ(ipc_recv(l, buf, sizeof(buf), &len, 0), -EAGAIN);

	CHECK_OK(ipc_send(c, "hello", 6, 0));
	CHECK_EQ(poll(&pfd, 1, 1000), 1);
	CHECK_OK(ipc_recv(l, buf, sizeof(buf), &len, 0));
	CHECK_EQ(len, 6);
	CHECK_STR(buf, "hello");

	memset(big, 'b', sizeof(big));
	CHECK_OK(ipc_send(c, big, sizeof(big), 0));
	CHECK_EQ(ipc_recv(l, buf, sizeof(buf), &len, 1000), -EMSGSIZE);
	CHECK_OK(ipc_send(c, big, sizeof(big), 0));
	CHECK_OK(ipc_recv_msg(l, &m, 1000));
	CHECK_EQ(nng_msg_len(m), sizeof(big));
	nng_msg_free(m);
	/* What was buffered before the peer came arrives first, in order. */
	CHECK_OK(ipc_send(l, "back", 5, IPC_NONBLOCK));
	do
		CHECK_OK(ipc_recv(c, buf, sizeof(buf), &len, 1000));
	while (len == 2 && buf[0] == 'x');
	CHECK_STR(buf, "back");
	ipc_close(&c);
	ipc_close(&l);
	ipc_dir_destroy(&d);
}

/* A worker that dials before the gateway listens keeps trying until it does. */
static void
ipc_dial_retries(void)
{
	char url[IPC_URL_MAX], buf[16];
	ipc_dir *d;
	ipc *l, *c;
	int64_t t0;
	size_t len;
	int status;
	pid_t pid;

	CHECK_OK(ipc_dir_create(&d, NULL));
	CHECK_OK(ipc_dir_url(d, "w0.ipc", url, sizeof(url)));
	/* nng is not fork-safe once used: fork before this process touches it.
	 */
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int rv = ipc_dial(&c, url, 5000);

		if (rv == 0)
			rv = ipc_send_timeout(c, "hi", 3, 2000);
		ipc_close(&c);
		_exit(rv == 0 ? 0 : 1);
	}
	usleep(100 * 1000);
	CHECK_OK(ipc_listen(&l, url));
	CHECK_OK(ipc_recv(l, buf, sizeof(buf), &len, 5000));
	CHECK_STR(buf, "hi");
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ipc_close(&l);
	ipc_dir_destroy(&d);

	CHECK_OK(ipc_dir_create(&d, NULL));
	CHECK_OK(ipc_dir_url(d, "w1.ipc", url, sizeof(url)));
	t0 = clock_now_ms();
	CHECK_EQ(ipc_dial(&c, url, 60), -ETIMEDOUT);
	CHECK(clock_now_ms() - t0 >= 60);
	CHECK(c == NULL);
	ipc_dir_destroy(&d);
}

/* A peer that dies shows up as a receive timeout, never a crash or hang. */
static void
ipc_peer_dies(void)
{
	char url[IPC_URL_MAX], buf[16];
	ipc_dir *d;
	ipc *l;
	size_t len;
	pid_t pid;

	CHECK_OK(ipc_dir_create(&d, NULL));
	CHECK_OK(ipc_dir_url(d, "w0.ipc", url, sizeof(url)));
	pid = fork(); /* before this process uses nng */
	CHECK(pid >= 0);
	if (pid == 0) {
		ipc *c;

		if (ipc_dial(&c, url, 2000) == 0)
			ipc_send_timeout(c, "x", 2, 1000);
		pause();
		_exit(0);
	}
	CHECK_OK(ipc_listen(&l, url));
	CHECK_OK(ipc_recv(l, buf, sizeof(buf), &len, 5000));
	CHECK_OK(kill(pid, SIGKILL));
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	CHECK_EQ(ipc_recv(l, buf, sizeof(buf), &len, 50), -ETIMEDOUT);
	{
		int i, rv = 0;

		for (i = 0; i < 1000 && (rv = ipc_send(l, "y", 2, IPC_NONBLOCK)) == 0; i++)
			;
		CHECK_EQ(rv, -EAGAIN); /* the peer is gone: the buffer fills */
	}
	ipc_close(&l);
	ipc_dir_destroy(&d);
}

/* A pid that is certainly dead now: a child that exited and was reaped. */
static pid_t
dead_pid(void)
{
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0)
		_exit(0);
	CHECK_EQ(waitpid(pid, NULL, 0), pid);
	CHECK(kill(pid, 0) < 0 && errno == ESRCH);
	return pid;
}

/* Makes base/name (mode 0700) with a bound socket file "w0-1.ipc" in it. */
static void
mkdir_with_socket(const char *base, const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	CHECK_OK(mkdir(path, 0700));
	CHECK((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "%s/w0-1.ipc",
	                       path) < sizeof(a.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	CHECK_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
	close(fd);
}

static bool
exists(const char *base, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	return lstat(path, &st) == 0;
}

/*
 * The directory of a SIGKILLed gateway (dead pid, socket inside) is removed;
 * a live pid's, a symlink (and what it points to), another user's, one
 * holding a non-socket file and a name not of our form are all left.
 */
static void
ipc_dir_sweep_stale(void)
{
	const char *base = th_tmpdir();
	char dead[64], dead2[64], live[64], link[64], other[64], file[64];
	char odd[64], path[256], target[256];
	pid_t gone = dead_pid();
	ipc_dir *d;
	int64_t t0;
	FILE *f;

	snprintf(dead, sizeof(dead), IPC_DIR_PREFIX "%d-0123456789abcdef",
	         (int)gone);
	snprintf(dead2, sizeof(dead2), IPC_DIR_PREFIX "%d-fedcba9876543210",
	         (int)gone);
	snprintf(live, sizeof(live), IPC_DIR_PREFIX "%d-0123456789abcdef",
	         (int)getppid());
	snprintf(link, sizeof(link), IPC_DIR_PREFIX "%d-1111111111111111",
	         (int)gone);
	snprintf(other, sizeof(other), IPC_DIR_PREFIX "%d-2222222222222222",
	         (int)gone);
	snprintf(file, sizeof(file), IPC_DIR_PREFIX "%d-3333333333333333",
	         (int)gone);
	snprintf(odd, sizeof(odd), IPC_DIR_PREFIX "%d-xyz", (int)gone);
	mkdir_with_socket(base, dead);
	mkdir_with_socket(base, live);
	mkdir_with_socket(base, "target");
	mkdir_with_socket(base, odd);
	mkdir_with_socket(base, file);
	snprintf(path, sizeof(path), "%s/%s/notes.txt", base, file);
	f = fopen(path, "w");
	CHECK(f != NULL);
	fclose(f);
	snprintf(target, sizeof(target), "%s/target", base);
	snprintf(path, sizeof(path), "%s/%s", base, link);
	CHECK_OK(symlink(target, path));
	if (geteuid() == 0) {
		mkdir_with_socket(base, other);
		snprintf(path, sizeof(path), "%s/%s", base, other);
		CHECK_OK(chown(path, 65534, 65534));
	}

	t0 = (clock_now_ns() / 1000);
	CHECK_EQ(ipc_dir_sweep(base), 1);
	printf("    sweep of %s: %lld us\n", base,
	       (long long)((clock_now_ns() / 1000) - t0));
	CHECK(!exists(base, dead));
	CHECK(exists(base, live));
	CHECK(exists(base, link));
	CHECK(exists(base, "target/w0-1.ipc"));
	CHECK(exists(base, odd));
	CHECK(exists(base, file));
	if (geteuid() == 0)
		CHECK(exists(base, other));
	CHECK_EQ(ipc_dir_sweep(base), 0);

	/* ipc_dir_create sweeps first. */
	mkdir_with_socket(base, dead2);
	CHECK_OK(ipc_dir_create(&d, base));
	CHECK(!exists(base, dead2));
	CHECK(exists(base, live));
	ipc_dir_destroy(&d);
	CHECK_EQ(ipc_dir_sweep("/nonexistent-ctrickle-base"), -ENOENT);
}

static const struct th_case cases[] = {
    TH_CASE(ipc_err_mapping),
    TH_CASE(ipc_dir_mode_and_removal),
    TH_CASE(ipc_two_dirs_no_collision),
    TH_CASE(ipc_send_recv_timeouts),
    TH_CASE(ipc_dial_retries),
    TH_CASE(ipc_peer_dies),
    TH_CASE(ipc_dir_sweep_stale),
    TH_END,
};

TH_MAIN(cases)
