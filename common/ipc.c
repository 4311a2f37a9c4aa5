/*
 * nng pair0 over ipc:// for gateway <-> worker descriptors: the private
 * runtime directory, listen/dial, send/receive with timeouts, the recv fd for
 * libevent, and ipc_err, the only nng -> negative errno mapping of the tree.
 */
#include "ipc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/pair0/pair.h>
#include <nng/transport/ipc/ipc.h>

#include "clock.h"
#include "log.h"

#define IPC_SEND_BUF 64 /* messages queued per socket before EAGAIN */

struct ipc_dir {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t owner; /* only the creating process removes it */
};

struct ipc {
	nng_socket sock;
	int recv_timeo; /* last NNG_OPT_RECVTIMEO set, to skip redundant sets */
	int send_timeo;
};

int
ipc_err(int rv)
{
	if (rv == 0)
		return 0;
	if (rv & NNG_ESYSERR)
		return -(rv & ~NNG_ESYSERR);
	switch (rv) {
	case NNG_EINTR:
		return -EINTR;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_EBUSY:
		return -EBUSY;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECLOSED:
		return -EPIPE;
	case NNG_EAGAIN:
		return -EAGAIN;
	case NNG_ENOTSUP:
		return -ENOTSUP;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_ESTATE:
		return -EINVAL;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_EPROTO:
		return -EPROTO;
	case NNG_EUNREACHABLE:
		return -EHOSTUNREACH;
	case NNG_EADDRINVAL:
		return -EADDRNOTAVAIL;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_ECONNABORTED:
		return -ECONNABORTED;
	case NNG_ECONNRESET:
		return -ECONNRESET;
	case NNG_ECANCELED:
		return -ECANCELED;
	case NNG_ENOFILES:
		return -EMFILE;
	case NNG_ENOSPC:
		return -ENOSPC;
	case NNG_EEXIST:
		return -EEXIST;
	case NNG_EREADONLY:
		return -EROFS;
	case NNG_EWRITEONLY:
		return -EBADF;
	case NNG_EPEERAUTH:
		return -EACCES;
	case NNG_ENOARG:
		return -EINVAL;
	case NNG_EAMBIGUOUS:
		return -EINVAL;
	case NNG_EBADTYPE:
		return -EINVAL;
	case NNG_ECONNSHUT:
		return -EPIPE;
	default:
		return -EIO;
	}
}

/* A writable directory to put our runtime directory in. */
static const char *
ipc_dir_base(void)
{
	const char *x = getenv("XDG_RUNTIME_DIR");

	if (x && x[0] == '/' && access(x, W_OK | X_OK) == 0)
		return x;
	return "/tmp";
}

/*
 * The pid of an entry named exactly "ctrickle-<pid>-<16 hex digits>" (the
 * form ipc_dir_create makes), else -1.
 */
static pid_t
ipc_dir_name_pid(const char *name)
{
	const char *p = name + strlen(IPC_DIR_PREFIX);
	long pid = 0;
	int nd = 0;

	if (strncmp(name, IPC_DIR_PREFIX, strlen(IPC_DIR_PREFIX)) != 0)
		return -1;
	for (; *p >= '0' && *p <= '9'; p++, nd++) {
		pid = pid * 10 + (*p - '0');
		if (pid > INT_MAX)
			return -1;
	}
	if (nd == 0 || *p++ != '-')
		return -1;
	for (nd = 0; (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f');
	     p++)
		nd++;
	if (nd != 16 || *p || pid <= 1)
		return -1;
	return (pid_t)pid;
}

/*
 * Empties and removes the stale directory `name` under basefd: only socket
 * files owned by uid are unlinked; nothing is followed (the directory is
 * opened with O_NOFOLLOW and re-checked by fstat). Returns true when the
 * directory is gone; false leaves it (something else inside, or a race).
 */
static bool
ipc_dir_remove_stale(int basefd, const char *name, uid_t uid)
{
	struct dirent *e;
	struct stat st;
	DIR *dir;
	int fd;

	fd = openat(basefd, name,
	            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != uid) {
		close(fd);
		return false;
	}
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return false;
	}
	while ((e = readdir(dir)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISSOCK(st.st_mode) && st.st_uid == uid)
			unlinkat(fd, e->d_name, 0);
	}
	closedir(dir);
	return unlinkat(basefd, name, AT_REMOVEDIR) == 0;
}

int
ipc_dir_sweep(const char *base)
{
	uid_t uid = geteuid();
	pid_t self = getpid();
	struct dirent *e;
	struct stat st;
	int bfd, n = 0, left = 0;
	DIR *dir;
	pid_t pid;

	if (!base)
		base = ipc_dir_base();
	bfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return -errno;
	dir = fdopendir(bfd);
	if (!dir) {
		n = -errno;
		close(bfd);
		return n;
	}
	while ((e = readdir(dir)) != NULL) {
		pid = ipc_dir_name_pid(e->d_name);
		if (pid < 0 || pid == self)
			continue;
		if (fstatat(bfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != uid)
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue; /* alive (or not ours to judge) */
		if (ipc_dir_remove_stale(bfd, e->d_name, uid))
			n++;
		else
			left++;
	}
	closedir(dir);
	if (n)
		log_info("ipc", "removed stale runtime dirs base=%s count=%d "
		         "left=%d", base, n, left);
	else
		log_debug("ipc", "no stale runtime dirs removed base=%s "
		          "left=%d", base, left);
	return n;
}

int
ipc_dir_create(ipc_dir **out, const char *base)
{
	uint64_t rnd;
	ipc_dir *d;
	int n, rv;

	*out = NULL;
	if (!base)
		base = ipc_dir_base();
	(void)ipc_dir_sweep(base);
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	for (int tries = 0; tries < 8; tries++) {
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (uint64_t)clock_now_ns() * 0x9e3779b97f4a7c15ull;
		n = snprintf(d->path, sizeof(d->path),
		             "%s/" IPC_DIR_PREFIX "%d-%016llx", base,
		             (int)getpid(), (unsigned long long)rnd);
		/* Leave room for "/wNNN.ipc" inside sun_path. */
		if (n < 0 || (size_t)n + 16 >= sizeof(d->path)) {
			rv = -ENAMETOOLONG;
			goto err_free;
		}
		if (mkdir(d->path, 0700) == 0) {
			/* mkdir honours umask; make the mode exact. */
			if (chmod(d->path, 0700) < 0) {
				rv = -errno;
				rmdir(d->path);
				goto err_free;
			}
			d->owner = getpid();
			*out = d;
			return 0;
		}
		if (errno != EEXIST) {
			rv = -errno;
			goto err_free;
		}
	}
	rv = -EEXIST;
err_free:
	free(d);
	return rv;
}

const char *
ipc_dir_path(const ipc_dir *d)
{
	return d->path;
}

int
ipc_dir_url(const ipc_dir *d, const char *name, char *buf, size_t cap)
{
	size_t plen = strlen(d->path);
	int n;

	if (!name || !*name)
		return -EINVAL;
	for (const char *c = name; *c; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' ||
		      *c == '-'))
			return -EINVAL;
	}
	if (plen + 1 + strlen(name) >=
	    sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	n = snprintf(buf, cap, "ipc://%s/%s", d->path, name);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

void
ipc_dir_destroy(ipc_dir **p)
{
	struct dirent *e;
	ipc_dir *d;
	DIR *dir;

	if (!p || !*p)
		return;
	d = *p;
	*p = NULL;
	if (d->owner == getpid()) {
		dir = opendir(d->path);
		if (dir) {
			while ((e = readdir(dir)) != NULL) {
				if (strcmp(e->d_name, ".") &&
				    strcmp(e->d_name, ".."))
					unlinkat(dirfd(dir), e->d_name, 0);
			}
			closedir(dir);
		}
		if (rmdir(d->path) < 0)
			log_warn("ipc", "runtime dir not removed dir=%s err=%s",
			         d->path, strerror(errno));
	}
	free(d);
}

static int
ipc_open(ipc **out)
{
	ipc *s;
	int rv;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	rv = ipc_err(nng_pair0_open(&s->sock));
	if (rv < 0)
		goto err_free;
	rv = ipc_err(
	    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, IPC_RECV_MAX));
	if (rv < 0)
		goto err_close;
	/* nng's default send buffer is 0: back-to-back non-blocking sends
	   would fail with EAGAIN while the peer is busy. */
	rv = ipc_err(nng_socket_set_int(s->sock, NNG_OPT_SENDBUF, IPC_SEND_BUF));
	if (rv < 0)
		goto err_close;
	s->recv_timeo = -1;
	s->send_timeo = -1;
	*out = s;
	return 0;

err_close:
	nng_close(s->sock);
err_free:
	free(s);
	return rv;
}

int
ipc_listen(ipc **out, const char *url)
{
	nng_listener l;
	ipc *s;
	int rv;

	*out = NULL;
	rv = ipc_open(&s);
	if (rv < 0)
		return rv;
	rv = ipc_err(nng_listener_create(&l, s->sock, url));
	if (rv < 0)
		goto err_close;
	if (strncmp(url, "ipc://", 6) == 0) {
		rv = ipc_err(
		    nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS, 0700));
		if (rv < 0)
			goto err_close;
	}
	rv = ipc_err(nng_listener_start(l, 0));
	if (rv < 0)
		goto err_close;
	*out = s;
	return 0;

err_close:
	ipc_close(&s);
	return rv;
}

int
ipc_dial(ipc **out, const char *url, int timeout_ms)
{
	int64_t deadline = clock_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	struct timespec pause = {0, 10 * 1000 * 1000};
	ipc *s;
	int rv;

	*out = NULL;
	rv = ipc_open(&s);
	if (rv < 0)
		return rv;
	for (;;) {
		rv = ipc_err(nng_dial(s->sock, url, NULL, 0));
		if (rv == 0)
			break;
		if (rv != -ECONNREFUSED && rv != -ENOENT)
			goto err_close;
		if (clock_now_ms() >= deadline) {
			log_debug("ipc", "dial gave up url=%s err=%s", url,
			          strerror(-rv));
			rv = -ETIMEDOUT;
			goto err_close;
		}
		nanosleep(&pause, NULL);
	}
	*out = s;
	return 0;

err_close:
	ipc_close(&s);
	return rv;
}

static int
ipc_set_timeo(ipc *s, const char *opt, int *cur, int timeout_ms)
{
	int rv;

	if (timeout_ms < 0)
		timeout_ms = -1; /* NNG_DURATION_INFINITE */
	if (*cur == timeout_ms)
		return 0;
	rv = ipc_err(nng_socket_set_ms(s->sock, opt, timeout_ms));
	if (rv == 0)
		*cur = timeout_ms;
	return rv;
}

int
ipc_send(ipc *s, const void *buf, size_t len, int flags)
{
	/* nng_send copies the bytes and does not write through the pointer. */
	return ipc_err(
	    nng_send(s->sock, (void *)buf, len,
	             (flags & IPC_NONBLOCK) ? NNG_FLAG_NONBLOCK : 0));
}

int
ipc_send_timeout(ipc *s, const void *buf, size_t len, int timeout_ms)
{
	int rv =
	    ipc_set_timeo(s, NNG_OPT_SENDTIMEO, &s->send_timeo, timeout_ms);

	if (rv < 0)
		return rv;
	return ipc_send(s, buf, len, 0);
}

int
ipc_recv_msg(ipc *s, nng_msg **out, int timeout_ms)
{
	int flags = 0, rv;

	*out = NULL;
	if (timeout_ms == 0) {
		flags = NNG_FLAG_NONBLOCK;
	} else {
		rv = ipc_set_timeo(s, NNG_OPT_RECVTIMEO, &s->recv_timeo,
		                   timeout_ms);
		if (rv < 0)
			return rv;
	}
	return ipc_err(nng_recvmsg(s->sock, out, flags));
}

int
ipc_recv(ipc *s, void *buf, size_t cap, size_t *len, int timeout_ms)
{
	nng_msg *m;
	size_t n;
	int rv;

	rv = ipc_recv_msg(s, &m, timeout_ms);
	if (rv < 0)
		return rv;
	n = nng_msg_len(m);
	if (n > cap) {
		nng_msg_free(m);
		return -EMSGSIZE;
	}
	memcpy(buf, nng_msg_body(m), n);
	nng_msg_free(m);
	*len = n;
	return 0;
}

int
ipc_recv_fd(ipc *s, int *fd)
{
	return ipc_err(nng_socket_get_int(s->sock, NNG_OPT_RECVFD, fd));
}

void
ipc_close(ipc **p)
{
	if (!p || !*p)
		return;
	nng_close((*p)->sock);
	free(*p);
	*p = NULL;
}
