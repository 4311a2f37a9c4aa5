/*
 * build/gateway: parses the flags, finds the GPUs and builds one frame ring
 * per GPU (gpuplan: before any thread), the worker pool,
 * the stream manager and the HTTP API on one libevent loop, registers the
 * capability when ORCH_URL/ORCH_SECRET are set, and drains on SIGTERM:
 * streams stopped (stream_stopped, output closed), workers told to shut
 * down, then exit. Owns the process-wide state; everything else takes it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "api.h"
#include "clock.h"
#include "config.h"
#include "curlev.h"
#include "gpuinfo.h"
#include "gpuplan.h"
#include "log.h"
#include "metrics.h"
#include "register.h"
#include "ring.h"
#include "streams.h"
#include "supervisor.h"

#define GATEWAY_VERSION    "0.1.0"
#define GATEWAY_DRAIN_MS   10000 /* SIGTERM: longest wait for streams to close */
#define GATEWAY_RING_EXTRA 8     /* slots beyond workers x --ring-slots, for
                                    frames queued at the encoders */

struct gateway {
	struct config cfg;
	struct event_base *base;
	metrics *metrics;
	gpuplan *plan;     /* rings; destroyed after every worker is reaped */
	gpuinfo *gpuinfo;
	curlev *cv;
	streams *streams;
	supervisor *sup;
	api *api;
	struct register_config reg;
	bool reg_on;
	register_job *reg_job;
	struct event *sig_term, *sig_int, *drain_timer;
	int64_t drain_started_ms;
};

static void
gateway_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *g = arg;

	(void)fd;
	(void)what;
	if (streams_quiet(g->streams) ||
	    clock_now_ms() - g->drain_started_ms > GATEWAY_DRAIN_MS)
		event_base_loopbreak(g->base);
}

static void
gateway_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gateway *g = arg;
	struct timeval tv = { 0, 50 * 1000 };

	(void)what;
	if (g->drain_timer) {
		log_warn("gateway", "second signal, exiting now signal=%d", (int)sig);
		event_base_loopbreak(g->base);
		return;
	}
	log_info("gateway", "draining: stopping streams, then workers signal=%d", (int)sig);
	g->drain_started_ms = clock_now_ms();
	streams_drain(g->streams);
	g->drain_timer = event_new(g->base, -1, EV_PERSIST, gateway_drain_check, g);
	if (g->drain_timer)
		event_add(g->drain_timer, &tv);
	else
		event_base_loopbreak(g->base);
}

static void
gateway_registered(int result, void *arg)
{
	(void)arg;
	if (result < 0)
		log_error("gateway", "capability registration failed; check ORCH_URL and "
		          "ORCH_SECRET err=%s", strerror(-result));
	else
		log_info("gateway", "capability registered with the orchestrator");
}

/*
 * Discovery and the GPU plan: before any thread and the first nng call
 * (discovery forks). Returns 0, or the exit status after printing why.
 */
static int
gateway_plan(struct gateway *g)
{
	const struct config *cfg = &g->cfg;
	static const enum gpu_mode modes[] = {
		[CONFIG_GPUS_AUTO] = GPU_MODE_AUTO, [CONFIG_GPUS_NONE] = GPU_MODE_NONE,
		[CONFIG_GPUS_ALL] = GPU_MODE_ALL, [CONFIG_GPUS_LIST] = GPU_MODE_LIST,
	};
	struct gpuplan_params p = {
		.req = { modes[cfg->gpus], cfg->gpu_list, cfg->n_gpus },
		.workers_per_gpu = cfg->workers_per_gpu,
		.ring_slots = cfg->ring_slots,
		.ring_extra = GATEWAY_RING_EXTRA,
		.max_width = cfg->max_width,
		.max_height = cfg->max_height,
	};
	char err[256];
	int rc;

	p.fake_gpus = gpuplan_parse_fake(getenv(GPUPLAN_FAKE_ENV));
	if (p.fake_gpus < 0) {
		fprintf(stderr, "gateway: %s must be 1..%d\n", GPUPLAN_FAKE_ENV,
		        GPUPLAN_FAKE_MAX);
		return 2;
	}
	rc = gpuplan_create(&g->plan, &p, err, sizeof(err));
	if (rc == -ENODEV || rc == -EINVAL) {
		fprintf(stderr, "gateway: cannot use the GPUs asked for: %s\n"
		        "gateway: list GPUs that exist and are usable (nvidia-smi -L), "
		        "or run with --gpus auto (every usable GPU, else the host) "
		        "or --gpus none\n",
		        err);
		log_error("gateway", "cannot use the GPUs asked for: %s gpus=%s", err,
		          config_gpus_name(cfg->gpus));
		return 2;
	}
	if (rc < 0) {
		log_error("gateway", "%s", err);
		return 1;
	}
	return 0;
}

static int
gateway_start(struct gateway *g)
{
	const struct config *cfg = &g->cfg;
	struct supervisor_config sc = { 0 };
	struct streams_config stc = { 0 };
	struct api_config ac = { 0 };
	static const char *const level_names[] = { "error", "warn", "info", "debug" };
	int *gpus = NULL, *fds = NULL, n, rc;
	char err[256];

	if ((rc = metrics_create(&g->metrics)) < 0)
		return rc;
	n = gpuplan_nworkers(g->plan);
	gpus = malloc(sizeof(int) * (size_t)n);
	fds = malloc(sizeof(int) * (size_t)n);
	if (!gpus || !fds) {
		rc = -ENOMEM;
		goto out;
	}
	/* Worker w: its GPU (CUDA_VISIBLE_DEVICES + --gpu 0) and that GPU's
	   ring. */
	for (int i = 0; i < n; i++) {
		gpus[i] = gpuplan_worker_gpu(g->plan, i);
		fds[i] = ring_fd(gpuplan_ring(g->plan,
		                              gpuplan_group_of(g->plan, gpus[i])));
	}
	if ((rc = gpuinfo_create(&g->gpuinfo, NULL, 0)) < 0)
		goto out;
	if ((rc = curlev_create(&g->cv, g->base)) < 0)
		goto out;
	stc.base = g->base;
	stc.cv = g->cv;
	stc.plan = g->plan;
	stc.gpuinfo = g->gpuinfo;
	stc.metrics = g->metrics;
	stc.cfg = cfg;
	stc.tls_verify = !cfg->insecure_tls;
	if ((rc = streams_create(&g->streams, &stc)) < 0)
		goto out;

	sc.nworkers = n;
	sc.gpus = gpus;
	sc.ring_fds = fds;
	sc.processor = cfg->processor;
	sc.processor_config = cfg->processor_config;
	sc.log_level = level_names[cfg->log_level];
	sc.mem_limit_mb = (int)cfg->mem_limit_mb;
	sc.spares = config_spare_workers(cfg, n);
	sc.frame_deadline_ms = (unsigned)cfg->frame_deadline_ms;
	sc.cb = streams_supervisor_cbs();
	sc.cb_arg = g->streams;
	sc.ring_fallback = gpuplan_fallback;
	sc.ring_fallback_arg = g->plan;
	if ((rc = supervisor_create(&g->sup, g->base, &sc)) < 0) {
		log_error("gateway", "cannot create the worker pool err=%s", strerror(-rc));
		goto out;
	}
	streams_set_supervisor(g->streams, g->sup);
	if ((rc = supervisor_start(g->sup)) < 0)
		goto out;

	ac.host = cfg->host;
	ac.port = cfg->port;
	ac.auth_token = cfg->auth_token;
	ac.pipeline = cfg->pipeline;
	ac.model_id = cfg->capability_name ? cfg->capability_name : "";
	ac.version = GATEWAY_VERSION;
	ac.app_version = GATEWAY_VERSION;
	ac.metrics = g->metrics;
	if ((rc = api_create(&g->api, g->base, &ac, streams_api_ops(), g->streams)) < 0) {
		log_error("gateway", "cannot listen host=%s port=%d err=%s", cfg->host,
		          cfg->port, strerror(-rc));
		goto out;
	}
	log_info("gateway", "serving port=%d workers=%d capacity=%d processor=%s",
	         api_port(g->api), n, supervisor_capacity(g->sup), cfg->processor);

	rc = register_config_from_env(&g->reg, NULL, cfg->capability_name, cfg->auth_token,
	                              supervisor_capacity(g->sup), err, sizeof(err));
	if (rc == 0) {
		g->reg_on = true;
		register_start(&g->reg_job, &g->reg, gateway_registered, NULL);
	} else if (rc != -ENOENT) {
		log_error("gateway", "capability registration skipped: %s", err);
	}
	rc = 0;
out:
	free(gpus);
	free(fds);
	return rc;
}

static void
gateway_stop(struct gateway *g)
{
	api_destroy(&g->api);
	if (g->reg_on) {
		register_stop(&g->reg_job);
		register_unregister(&g->reg);
		register_config_free(&g->reg);
	}
	if (g->streams)
		streams_drain(g->streams);
	if (g->sup) {
		supervisor_close(g->sup);
		supervisor_stop(g->sup);
	}
	streams_destroy(&g->streams);
	supervisor_destroy(&g->sup);
	curlev_destroy(&g->cv);
	gpuinfo_destroy(&g->gpuinfo);
	gpuplan_destroy(&g->plan); /* the workers are reaped: rings may go */
	metrics_destroy(&g->metrics);
	if (g->drain_timer)
		event_free(g->drain_timer);
	if (g->sig_term)
		event_free(g->sig_term);
	if (g->sig_int)
		event_free(g->sig_int);
	if (g->base)
		event_base_free(g->base);
	config_free(&g->cfg);
}

int
main(int argc, char **argv, char **envp)
{
	struct gateway g = { 0 };
	char err[512];
	int rc;

	if (config_parse(&g.cfg, argc, argv, envp, err, sizeof(err)) < 0) {
		fprintf(stderr, "gateway: %s\nTry 'gateway --help'.\n", err);
		config_free(&g.cfg);
		return 2;
	}
	if (g.cfg.help) {
		config_usage(stdout, argv[0]);
		config_free(&g.cfg);
		return 0;
	}
	if (g.cfg.version) {
		printf("ctrickle gateway %s\n", GATEWAY_VERSION);
		config_free(&g.cfg);
		return 0;
	}
	log_set_level(g.cfg.log_level);
	log_set_tag("gateway");
	if ((rc = gateway_plan(&g)) != 0) {
		config_free(&g.cfg);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	g.base = event_base_new();
	if (!g.base) {
		log_error("gateway", "cannot create the event loop");
		gpuplan_destroy(&g.plan);
		config_free(&g.cfg);
		return 1;
	}
	g.sig_term = evsignal_new(g.base, SIGTERM, gateway_on_signal, &g);
	g.sig_int = evsignal_new(g.base, SIGINT, gateway_on_signal, &g);
	if (!g.sig_term || !g.sig_int || event_add(g.sig_term, NULL) < 0 ||
	    event_add(g.sig_int, NULL) < 0) {
		log_error("gateway", "cannot install signal handlers");
		gateway_stop(&g);
		return 1;
	}
	rc = gateway_start(&g);
	if (rc == 0)
		event_base_dispatch(g.base);
	gateway_stop(&g);
	log_info("gateway", "stopped");
	return rc == 0 ? 0 : 1;
}
