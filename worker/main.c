/*
 * build/worker: one crash-isolated FrameProcessor process, spawned by the
 * gateway's supervisor. Parses the CLI of docs/HACKING.md, ties its life to
 * the parent, loads and checks the plugin, attaches the ring, dials the
 * gateway, then HELLO, init, READY and the serve loop (worker/loop.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "ipc.h"
#include "log.h"
#include "ring.h"
#include "worker/frame_cuda.h"
#include "worker/host.h"
#include "worker/loop.h"

#define WORKER_DIAL_MS       10000 /* the gateway listens before it spawns us */
#define WORKER_ERR_DIAL_MS   1000  /* dial only to report a fatal error */
#define WORKER_MAX_CONFIG    (MSG_MAX_TEXT)
#define WORKER_LINGER_MS     100   /* a last message leaves before the close */

/* Set by SIGTERM/SIGINT: finish like SHUTDOWN. */
static volatile sig_atomic_t worker_stop;

struct worker_args {
	long id;
	const char *url;
	int ring_fd;
	const char *processor;
	const char *config_arg; /* JSON or @FILE */
	int gpu;
	const char *log_level;
	long mem_limit_mb;
};

static void
worker_usage(FILE *f)
{
	fprintf(f,
	        "usage: worker --id N --url ipc://DIR/wN.ipc --ring-fd FD --processor PATH\n"
	        "              [--processor-config JSON|@FILE] [--gpu -1] [--log-level L]\n"
	        "              [--mem-limit-mb N]\n"
	        "Spawned by the gateway's supervisor: loads the FrameProcessor plugin PATH,\n"
	        "dials the gateway at the URL, serves frames from the ring inherited as FD.\n"
	        "PATH python:MODULE:CLASS runs a PyTrickle processor (plugins/python.so\n"
	        "beside this binary, {\"module\",\"class\"} added to the config).\n"
	        "  --processor-config  JSON object text for the plugin's init (\"{}\")\n"
	        "  --gpu               CUDA ordinal, -1 = host memory (default -1); the ring's\n"
	        "                      own GPU (by UUID) wins for a CUDA ring\n"
	        "  --log-level         error|warn|info|debug (default info)\n"
	        "  --mem-limit-mb      address-space limit (RLIMIT_AS), 0 = none (default 0)\n"
	        "Exit: 0 shutdown, 2 bad configuration (not respawned), 3 init failed,\n"
	        "5 a CUDA ring cannot be opened here (the GPU gets a host ring),\n"
	        "other or a signal: crash (respawned).\n");
}

/* strtol of a whole argument within [lo, hi]. */
static int
worker_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

static int
worker_parse_args(int argc, char **argv, struct worker_args *a)
{
	static const struct option opts[] = {
		{ "id", required_argument, NULL, 'i' },
		{ "url", required_argument, NULL, 'u' },
		{ "ring-fd", required_argument, NULL, 'r' },
		{ "processor", required_argument, NULL, 'p' },
		{ "processor-config", required_argument, NULL, 'c' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "mem-limit-mb", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long v;
	int c;

	memset(a, 0, sizeof(*a));
	a->id = -1;
	a->ring_fd = -1;
	a->gpu = -1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (worker_parse_long(optarg, 0, INT32_MAX, &a->id) < 0)
				goto bad;
			break;
		case 'u':
			a->url = optarg;
			break;
		case 'r':
			if (worker_parse_long(optarg, 0, INT_MAX, &v) < 0)
				goto bad;
			a->ring_fd = (int)v;
			break;
		case 'p':
			a->processor = optarg;
			break;
		case 'c':
			a->config_arg = optarg;
			break;
		case 'g':
			if (worker_parse_long(optarg, -1, 1024, &v) < 0)
				goto bad;
			a->gpu = (int)v;
			break;
		case 'l':
			a->log_level = optarg;
			break;
		case 'm':
			if (worker_parse_long(optarg, 0, 1L << 30, &a->mem_limit_mb) < 0)
				goto bad;
			break;
		case 'h':
			worker_usage(stdout);
			exit(0);
		default:
			worker_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc || a->id < 0 || !a->url || a->ring_fd < 0 || !a->processor) {
		fprintf(stderr, "worker: --id, --url, --ring-fd and --processor are required\n");
		worker_usage(stderr);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "worker: bad value for --%s: %s\n",
	        c == 'i' ? "id" : c == 'r' ? "ring-fd" : c == 'g' ? "gpu" : "mem-limit-mb",
	        optarg);
	return -EINVAL;
}

/*
 * The plugin's init config: JSON text, or the contents of @FILE; must be one
 * JSON object. Returns a malloc'ed NUL-terminated copy in *out, or -errno
 * with a reason in err.
 */
static int
worker_load_config(const char *arg, char **out, char *err, size_t errlen)
{
	json_error_t jerr;
	char *text = NULL;
	json_t *v;
	size_t len;

	*out = NULL;
	if (!arg) {
		*out = strdup("{}");
		return *out ? 0 : -ENOMEM;
	}
	if (arg[0] == '@') {
		FILE *f = fopen(arg + 1, "rb");
		long n;

		if (!f) {
			snprintf(err, errlen, "--processor-config %s: %s", arg, strerror(errno));
			return -ENOENT;
		}
		if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
		    n > (long)WORKER_MAX_CONFIG || fseek(f, 0, SEEK_SET) != 0) {
			fclose(f);
			snprintf(err, errlen, "--processor-config %s: unreadable or too large", arg);
			return -EINVAL;
		}
		text = malloc((size_t)n + 1);
		if (!text) {
			fclose(f);
			return -ENOMEM;
		}
		len = fread(text, 1, (size_t)n, f);
		fclose(f);
		text[len] = '\0';
	} else {
		text = strdup(arg);
		if (!text)
			return -ENOMEM;
		len = strlen(text);
	}
	v = json_loadb(text, len, 0, &jerr);
	if (!v || !json_is_object(v)) {
		snprintf(err, errlen, "--processor-config is not a JSON object: %s",
		         v ? "not an object" : jerr.text);
		json_decref(v);
		free(text);
		return -EINVAL;
	}
	json_decref(v);
	*out = text;
	return 0;
}

/*
 * --processor python:MODULE:CLASS: the python plugin beside this binary
 * (DIR/plugins/python.so for DIR/worker) with {"module","class"} merged into
 * the config object (other keys, e.g. "path", kept). Replaces *config and
 * sets *plugin (malloc'ed). Returns 0, or -errno with a reason in err.
 */
static int
worker_python_shorthand(const char *spec, char **config, char **plugin,
                        char *err, size_t errlen)
{
	const char *mod = spec + 7, *colon = strchr(mod, ':');
	char exe[PATH_MAX], *slash, *text, *modname;
	json_t *cfg;
	ssize_t n;

	if (!colon || colon == mod || !colon[1]) {
		snprintf(err, errlen, "--processor %s: expected python:MODULE:CLASS", spec);
		return -EINVAL;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(err, errlen, "--processor %s: cannot find the worker binary", spec);
		return -ENOENT;
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash || (size_t)(slash - exe) + sizeof("/plugins/python.so") > sizeof(exe)) {
		snprintf(err, errlen, "--processor %s: worker path too long", spec);
		return -ENAMETOOLONG;
	}
	strcpy(slash, "/plugins/python.so");
	cfg = json_loads(*config, 0, NULL);
	modname = strndup(mod, (size_t)(colon - mod));
	if (!cfg || !modname || json_object_set_new(cfg, "module", json_string(modname)) < 0 ||
	    json_object_set_new(cfg, "class", json_string(colon + 1)) < 0 ||
	    !(text = json_dumps(cfg, JSON_COMPACT))) {
		free(modname);
		json_decref(cfg);
		snprintf(err, errlen, "--processor %s: cannot build the config", spec);
		return -EINVAL;
	}
	free(modname);
	json_decref(cfg);
	*plugin = strdup(exe);
	if (!*plugin) {
		free(text);
		return -ENOMEM;
	}
	free(*config);
	*config = text;
	return 0;
}

/*
 * Ties our life to the parent: SIGKILL when it dies, then a re-check that it
 * did not die before the prctl (we would have been re-parented already).
 * CT_PARENT_PID, when the spawner sets it, closes the window before main.
 */
static pid_t
worker_bind_parent(pid_t recorded)
{
	const char *env = getenv("CT_PARENT_PID");
	long want;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		log_warn("worker", "PR_SET_PDEATHSIG failed err=%s", strerror(errno));
	if (env && worker_parse_long(env, 1, INT_MAX, &want) == 0)
		recorded = (pid_t)want;
	if (getppid() != recorded) {
		log_error("worker", "parent gone before start, exiting parent=%d",
		          (int)recorded);
		exit(WORKER_EXIT_FAILED);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		log_warn("worker", "PR_SET_NO_NEW_PRIVS failed err=%s", strerror(errno));
	return recorded;
}

/*
 * nng queues a sent message and a close right after drops it (and, in nng
 * 1.5.2, leaks it): give the last message of a failing worker time to leave.
 */
static void
worker_linger(void)
{
	struct timespec ts = { 0, WORKER_LINGER_MS * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Best effort: tells the gateway why we cannot serve, before exiting. */
static void
worker_report_fatal(const char *url, int code, const char *text)
{
	struct msg m = { .type = MSG_ERROR };
	uint8_t buf[MSG_MAX_STR + 256];
	size_t len;
	ipc *c = NULL;

	if (!url || ipc_dial(&c, url, WORKER_ERR_DIAL_MS) < 0)
		return;
	m.u.error.stream = 0;
	m.u.error.code = code;
	m.u.error.message = msg_cstr(text);
	if (m.u.error.message.len > MSG_MAX_STR)
		m.u.error.message.len = MSG_MAX_STR;
	if (msg_encode(&m, buf, sizeof(buf), &len) == 0 &&
	    ipc_send_timeout(c, buf, len, WORKER_ERR_DIAL_MS) == 0)
		worker_linger();
	ipc_close(&c);
}

static void
worker_on_signal(int sig)
{
	(void)sig;
	worker_stop = 1;
}

static void
worker_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = worker_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/*
 * The GPU frame path for this ring and plugin (worker/frame_cuda.h): none on
 * a host ring with a host plugin; otherwise the CUDA stream and staging of
 * this worker's lifetime, made here once. Returns WORKER_EXIT_OK, or the
 * exit status after one log line: WORKER_EXIT_GPU_RING when a CUDA ring
 * cannot be served on this GPU, WORKER_EXIT_CONFIG when a CUDA plugin has a
 * host ring and no usable GPU.
 */
static int
worker_gpu_frames(const struct worker_args *a, const struct frame_cuda_ring_info *ri,
                  host *h, ring *r, frame_cuda **fc)
{
	uint32_t backend = ring_get_header(r)->backend;
	enum frame_cuda_mode mode;
	char err[HOST_ERR_LEN + 64], why[200];
	int rc, dev;

	rc = frame_cuda_mode_for(backend, host_plugin(h)->wants.video_mem, a->gpu, &mode);
	if (rc < 0) {
		snprintf(err, sizeof(err), "plugin wants CUDA frames but the ring is in host "
		         "memory and this worker has no GPU (--gpu %d)", a->gpu);
		log_error("worker", "%s", err);
		worker_report_fatal(a->url, rc, err);
		return WORKER_EXIT_CONFIG;
	}
	if (mode == FRAME_CUDA_NONE)
		return WORKER_EXIT_OK;
	dev = mode == FRAME_CUDA_VIA_DEVICE ? a->gpu :
	      frame_cuda_ring_device(ri, a->gpu >= 0 ? a->gpu : 0);
	rc = frame_cuda_create(fc, mode, r, dev, NULL, why, sizeof(why));
	if (rc == 0)
		return WORKER_EXIT_OK;
	snprintf(err, sizeof(err), "gpu frame path %s failed device=%d %s",
	         frame_cuda_mode_name(mode), dev, why);
	if (backend == RING_BACKEND_CUDA) {
		log_error("worker", "%s; exit %d: the gateway gives this GPU a host ring",
		          err, WORKER_EXIT_GPU_RING);
		worker_report_fatal(a->url, rc, err);
		return WORKER_EXIT_GPU_RING;
	}
	log_error("worker", "%s", err);
	worker_report_fatal(a->url, rc, err);
	return WORKER_EXIT_CONFIG;
}

int
main(int argc, char **argv)
{
	pid_t parent = getppid();
	struct worker_args a;
	struct loop_config lc;
	char err[HOST_ERR_LEN + 64], tag[32];
	char *config = NULL, *plugin = NULL;
	enum log_level lvl;
	host *h = NULL;
	ring *r = NULL;
	ipc *c = NULL;
	loop *l = NULL;
	frame_cuda *fc = NULL;
	struct frame_cuda_ring_info ri;
	int64_t t0;
	int rc, status;

	if (worker_parse_args(argc, argv, &a) < 0)
		return WORKER_EXIT_CONFIG;
	snprintf(tag, sizeof(tag), "worker/%ld", a.id);
	log_set_tag(tag);
	if (a.log_level) {
		if (log_parse_level(a.log_level, &lvl) < 0) {
			log_error("worker", "bad --log-level value=%s", a.log_level);
			return WORKER_EXIT_CONFIG;
		}
		log_set_level(lvl);
	}
	parent = worker_bind_parent(parent);
	worker_signals();
	frame_cuda_ring_info(a.ring_fd, &ri);
	if (a.mem_limit_mb > 0 && ri.cuda) {
		/* CUDA reserves address space far beyond any sane RLIMIT_AS. */
		log_warn("worker", "--mem-limit-mb ignored on a CUDA ring mb=%ld",
		         a.mem_limit_mb);
	} else if (a.mem_limit_mb > 0) {
		struct rlimit rl;

		rl.rlim_cur = rl.rlim_max = (rlim_t)a.mem_limit_mb << 20;
		if (setrlimit(RLIMIT_AS, &rl) != 0) {
			log_error("worker", "setrlimit(RLIMIT_AS) failed mb=%ld err=%s",
			          a.mem_limit_mb, strerror(errno));
			return WORKER_EXIT_CONFIG;
		}
	}
	rc = worker_load_config(a.config_arg, &config, err, sizeof(err));
	if (rc < 0) {
		log_error("worker", "%s", err);
		worker_report_fatal(a.url, rc, err);
		return WORKER_EXIT_CONFIG;
	}
	if (!strncmp(a.processor, "python:", 7)) {
		rc = worker_python_shorthand(a.processor, &config, &plugin, err, sizeof(err));
		if (rc < 0) {
			log_error("worker", "%s", err);
			worker_report_fatal(a.url, rc, err);
			status = WORKER_EXIT_CONFIG;
			goto out_free_config;
		}
	}
	rc = host_load(&h, plugin ? plugin : a.processor, err, sizeof(err));
	if (rc < 0) {
		log_error("worker", "plugin refused: %s", err);
		worker_report_fatal(a.url, rc, err);
		status = WORKER_EXIT_CONFIG;
		goto out_free_config;
	}
	rc = ring_attach(&r, a.ring_fd);
	if (rc < 0 && ri.cuda) {
		char why[256], line[400];

		frame_cuda_attach_reason(&ri, rc, why, sizeof(why));
		snprintf(line, sizeof(line), "cuda ring attach failed fd=%d gpu=%s %s",
		         a.ring_fd, ri.uuid_text[0] ? ri.uuid_text : "unknown", why);
		log_error("worker", "%s; exit %d: the gateway gives this GPU a host ring",
		          line, WORKER_EXIT_GPU_RING);
		worker_report_fatal(a.url, rc, line);
		status = WORKER_EXIT_GPU_RING;
		goto out_destroy_host;
	}
	if (rc < 0) {
		snprintf(err, sizeof(err), "cannot attach the ring (fd %d): %s", a.ring_fd,
		         strerror(-rc));
		log_error("worker", "%s", err);
		worker_report_fatal(a.url, rc, err);
		status = WORKER_EXIT_CONFIG;
		goto out_destroy_host;
	}
	close(a.ring_fd); /* the mapping stays; the plugin never sees the fd */
	status = worker_gpu_frames(&a, &ri, h, r, &fc);
	if (status != WORKER_EXIT_OK)
		goto out_destroy_ring;
	rc = ipc_dial(&c, a.url, WORKER_DIAL_MS);
	if (rc < 0) {
		log_error("worker", "cannot reach the gateway url=%s err=%s", a.url, strerror(-rc));
		status = WORKER_EXIT_FAILED;
		goto out_destroy_gpu;
	}
	memset(&lc, 0, sizeof(lc));
	lc.worker_id = (uint32_t)a.id;
	lc.gpu = a.gpu;
	lc.parent_pid = parent;
	lc.stop_flag = &worker_stop;
	lc.fence = getenv("CT_WORKER_FENCE") && strcmp(getenv("CT_WORKER_FENCE"), "1") == 0;
	lc.gpu_frames = fc;
	rc = loop_create(&l, &lc, h, r, c);
	if (rc < 0) {
		log_error("worker", "loop_create failed err=%s", strerror(-rc));
		status = WORKER_EXIT_FAILED;
		goto out_close_ipc;
	}
	if (loop_send_hello(l) < 0) {
		log_error("worker", "HELLO not sent: gateway gone");
		status = WORKER_EXIT_FAILED;
		goto out_destroy_loop;
	}
	t0 = clock_now_ns();
	rc = host_init(h, config);
	if (rc < 0) {
		log_error("worker", "plugin init failed err=%d (%s)", rc, strerror(-rc));
		loop_send_error(l, 0, rc, "plugin init failed: %s", strerror(-rc));
		status = WORKER_EXIT_INIT;
		goto out_destroy_loop;
	}
	if (loop_send_ready(l, (uint32_t)((clock_now_ns() - t0) / 1000000)) < 0) {
		status = WORKER_EXIT_FAILED;
		goto out_destroy_loop;
	}
	log_info("worker", "ready pid=%d plugin=%s", (int)getpid(), host_plugin(h)->name);
	status = loop_run(l);
	log_info("worker", "exiting status=%d frames=%llu", status,
	         (unsigned long long)loop_frames(l));

out_destroy_loop:
	/* fini runs here (host_destroy) for SHUTDOWN as for every other exit. */
	loop_destroy(&l);
	host_destroy(&h);
	if (status != WORKER_EXIT_OK)
		worker_linger();
out_close_ipc:
	ipc_close(&c);
out_destroy_gpu:
	frame_cuda_destroy(&fc);
out_destroy_ring:
	/* A CUDA ring: closes the IPC handle (once per worker lifetime). */
	ring_destroy(&r);
out_destroy_host:
	host_destroy(&h);
out_free_config:
	free(plugin);
	free(config);
	return status;
}
