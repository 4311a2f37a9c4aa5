/*
 * A scripted fake worker for the supervisor tests: takes the worker CLI of
 * docs/HACKING.md, speaks the worker side of the protocol (HELLO, READY,
 * PONG, RESULT, PARAMS_ACK) and misbehaves on request. Behaviour comes from
 * FAKE_WORKER_<id> (else FAKE_WORKER): comma-separated tokens, see fw_usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>

#include "msg.h"

static const char fw_usage[] =
    "tokens: exit=N init-exit=N no-hello init-ms=N hang hang-frame "
    "hang-params\n"
    "        crash-frame child garbage=N wrong-dir no-exit\n";

struct fw {
	int id;
	int ring_fd;
	int gpu;
	const char *url;
	nng_socket sock;
	char fds[256]; /* open fds at start, "0,1,2,3" */
	pid_t child;
	/* behaviour */
	int exit_code; /* -1: none */
	int init_exit;
	bool no_hello, hang, hang_frame, hang_params, crash_frame, want_child;
	bool wrong_dir, no_exit;
	int init_ms;
	int garbage;
	uint64_t frames;
};

static void
fw_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void __attribute__((noreturn)) fw_sleep_forever(void)
{
	for (;;)
		pause();
}

static void
fw_list_fds(struct fw *f)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t n = 0;

	f->fds[0] = '\0';
	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		n += (size_t)snprintf(f->fds + n, sizeof(f->fds) - n, "%s%s",
		                      n ? "," : "", e->d_name);
		if (n >= sizeof(f->fds))
			break;
	}
	closedir(d);
}

static void
fw_parse_mode(struct fw *f, const char *spec)
{
	char buf[512], *save = NULL, *t;

	snprintf(buf, sizeof(buf), "%s", spec ? spec : "");
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (strncmp(t, "exit=", 5) == 0)
			f->exit_code = atoi(t + 5);
		else if (strncmp(t, "init-exit=", 10) == 0)
			f->init_exit = atoi(t + 10);
		else if (strncmp(t, "init-ms=", 8) == 0)
			f->init_ms = atoi(t + 8);
		else if (strncmp(t, "garbage=", 8) == 0)
			f->garbage = atoi(t + 8);
		else if (!strcmp(t, "no-hello"))
			f->no_hello = true;
		else if (!strcmp(t, "hang"))
			f->hang = true;
		else if (!strcmp(t, "hang-frame"))
			f->hang_frame = true;
		else if (!strcmp(t, "hang-params"))
			f->hang_params = true;
		else if (!strcmp(t, "crash-frame"))
			f->crash_frame = true;
		else if (!strcmp(t, "child"))
			f->want_child = true;
		else if (!strcmp(t, "wrong-dir"))
			f->wrong_dir = true;
		else if (!strcmp(t, "no-exit"))
			f->no_exit = true;
		else {
			fprintf(stderr, "fake_worker: unknown token %s\n%s", t,
			        fw_usage);
			exit(2);
		}
	}
}

static int
fw_send(struct fw *f, const struct msg *m)
{
	static uint8_t buf[65536];
	size_t len;
	int rv = msg_encode(m, buf, sizeof(buf), &len);

	if (rv < 0)
		return rv;
	return nng_send(f->sock, buf, len, 0) ? -EIO : 0;
}

static void
fw_hello_ready(struct fw *f)
{
	struct msg m;
	char json[512];

	memset(&m, 0, sizeof(m));
	m.type = MSG_HELLO;
	m.u.hello.worker_id = (uint32_t)f->id;
	m.u.hello.pid = (uint32_t)getpid();
	m.u.hello.abi_version = 0x10000;
	m.u.hello.plugin_name = msg_cstr("fake");
	m.u.hello.plugin_version = msg_cstr("1");
	fw_send(f, &m);
	if (f->init_ms)
		fw_sleep_ms(f->init_ms);
	if (f->init_exit)
		exit(f->init_exit);
	memset(&m, 0, sizeof(m));
	m.type = MSG_READY;
	m.u.ready.worker_id = (uint32_t)f->id;
	m.u.ready.init_ms = (uint32_t)f->init_ms;
	fw_send(f, &m);
	/* The report the tests check: fds, group, environment, ring fd. */
	snprintf(json, sizeof(json),
	         "{\"pid\":%d,\"pgid\":%d,\"fds\":\"%s\",\"cvd\":\"%s\",\"ring_"
	         "fd\":%d,"
	         "\"ring_ok\":%s,\"gpu\":%d,\"child\":%d}",
	         (int)getpid(), (int)getpgid(0), f->fds,
	         getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES")
	                                        : "",
	         f->ring_fd,
	         f->ring_fd >= 0 && fcntl(f->ring_fd, F_GETFD) >= 0 ? "true"
	                                                            : "false",
	         f->gpu, (int)f->child);
	memset(&m, 0, sizeof(m));
	m.type = MSG_EVENT;
	m.u.event.json = msg_cstr(json);
	fw_send(f, &m);
}

static void
fw_misbehave(struct fw *f)
{
	struct msg m;

	for (int i = 0; i < f->garbage; i++) {
		static const char junk[] = "\xc1\xff not msgpack";

		nng_send(f->sock, (void *)junk, sizeof(junk), 0);
		fw_sleep_ms(5);
	}
	if (f->wrong_dir) {
		memset(&m, 0, sizeof(m));
		m.type = MSG_SHUTDOWN;
		m.u.shutdown.reason = msg_cstr("I am not the gateway");
		for (int i = 0; i < 10; i++) {
			fw_send(f, &m);
			fw_sleep_ms(5);
		}
	}
	if (f->hang)
		fw_sleep_forever();
}

static void
fw_serve(struct fw *f, const struct msg *in)
{
	struct msg m;

	memset(&m, 0, sizeof(m));
	switch (in->type) {
	case MSG_PING:
		m.type = MSG_PONG;
		m.u.pong.nonce = in->u.ping.nonce;
		m.u.pong.t_ns = in->u.ping.t_ns;
		m.u.pong.frames = f->frames;
		fw_send(f, &m);
		break;
	case MSG_FRAME:
		if (f->crash_frame)
			raise(SIGSEGV);
		if (f->hang_frame)
			fw_sleep_forever();
		f->frames++;
		m.type = MSG_RESULT;
		m.u.result.stream = in->u.frame.stream;
		m.u.result.seq = in->u.frame.seq;
		m.u.result.pts = in->u.frame.pts;
		m.u.result.width = in->u.frame.width;
		m.u.result.height = in->u.frame.height;
		m.u.result.out_slot = in->u.frame.out_slot;
		m.u.result.out_gen = in->u.frame.out_gen;
		fw_send(f, &m);
		break;
	case MSG_PARAMS:
		if (f->hang_params)
			fw_sleep_forever();
		m.type = MSG_PARAMS_ACK;
		m.u.params_ack.stream = in->u.params.stream;
		fw_send(f, &m);
		break;
	case MSG_SHUTDOWN:
		if (!f->no_exit) {
			nng_close(f->sock);
			exit(0);
		}
		break;
	default:
		break;
	}
}

int
main(int argc, char **argv)
{
	struct fw f = {.id = -1, .ring_fd = -1, .gpu = -1, .exit_code = -1};
	pid_t parent = getppid();
	char env[64];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent || parent == 1)
		return 1;
	fw_list_fds(&f);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--id"))
			f.id = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--url"))
			f.url = argv[i + 1];
		else if (!strcmp(argv[i], "--ring-fd"))
			f.ring_fd = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--gpu"))
			f.gpu = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--processor") &&
		         strcmp(argv[i], "--processor-config") &&
		         strcmp(argv[i], "--log-level") &&
		         strcmp(argv[i], "--mem-limit-mb"))
			return 2;
	}
	if (f.id < 0 || !f.url)
		return 2;
	snprintf(env, sizeof(env), "FAKE_WORKER_%d", f.id);
	fw_parse_mode(&f, getenv(env) ? getenv(env) : getenv("FAKE_WORKER"));
	if (f.exit_code >= 0)
		return f.exit_code;
	if (f.want_child) {
		f.child = fork();
		if (f.child == 0)
			fw_sleep_forever(); /* same group, no parent-death
			                       signal */
	}
	if (nng_pair0_open(&f.sock) != 0 ||
	    nng_dial(f.sock, f.url, NULL, 0) != 0)
		return 1;
	if (f.no_hello)
		fw_sleep_forever();
	fw_hello_ready(&f);
	fw_misbehave(&f);
	for (;;) {
		void *buf;
		size_t len;
		struct msg m;

		if (nng_recv(f.sock, &buf, &len, NNG_FLAG_ALLOC) != 0)
			return 1;
		if (msg_decode(buf, len, &m) == 0)
			fw_serve(&f, &m);
		nng_free(buf, len);
	}
}
