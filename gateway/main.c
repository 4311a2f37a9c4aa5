/*
 * build/gateway: parses the flags, builds the frame ring, the worker pool,
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
	ring *ring;
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

/* Works out how many workers run where. Host only until the GPU path lands. */
static int
gateway_plan_workers(const struct config *cfg, int **gpus_out)
{
	int n = cfg->workers_per_gpu;
	int *gpus;

	if (cfg->gpus == CONFIG_GPUS_ALL || cfg->gpus == CONFIG_GPUS_LIST)
		log_warn("gateway", "GPU placement is not available in this build; "
		         "using the host ring gpus=%s", config_gpus_name(cfg->gpus));
	gpus = malloc(sizeof(int) * (size_t)n);
	if (!gpus)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		gpus[i] = -1;
	*gpus_out = gpus;
	return n;
}

static int
gateway_start(struct gateway *g)
{
	const struct config *cfg = &g->cfg;
	struct ring_params rp = { 0 };
	struct supervisor_config sc = { 0 };
	struct streams_config stc = { 0 };
	struct api_config ac = { 0 };
	static const char *const level_names[] = { "error", "warn", "info", "debug" };
	int *gpus = NULL, *fds = NULL, n, rc;
	char err[256];

	if ((rc = metrics_create(&g->metrics)) < 0)
		return rc;
	if ((n = gateway_plan_workers(cfg, &gpus)) < 0)
		return n;
	rp.slot_count = (uint32_t)(n * cfg->ring_slots + GATEWAY_RING_EXTRA);
	rp.max_width = (uint32_t)cfg->max_width;
	rp.max_height = (uint32_t)cfg->max_height;
	rp.backend = RING_BACKEND_HOST;
	rp.device = -1;
	if ((rc = ring_create(&g->ring, &rp)) < 0) {
		log_error("gateway", "cannot create the frame ring slots=%u size=%dx%d err=%s; "
		          "lower --ring-slots or --max-resolution", rp.slot_count,
		          cfg->max_width, cfg->max_height, strerror(-rc));
		goto out;
	}
	if ((rc = curlev_create(&g->cv, g->base)) < 0)
		goto out;
	stc.base = g->base;
	stc.cv = g->cv;
	stc.ring = g->ring;
	stc.metrics = g->metrics;
	stc.cfg = cfg;
	stc.tls_verify = !cfg->insecure_tls;
	if ((rc = streams_create(&g->streams, &stc)) < 0)
		goto out;

	fds = malloc(sizeof(int) * (size_t)n);
	if (!fds) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++)
		fds[i] = ring_fd(g->ring);
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
	ring_destroy(&g->ring);
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
	signal(SIGPIPE, SIG_IGN);
	evthread_use_pthreads();
	g.base = event_base_new();
	if (!g.base) {
		log_error("gateway", "cannot create the event loop");
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
