/*
 * Gateway configuration: flag and environment parsing into struct config,
 * defaults, and the --help text. Pure apart from reading the file of
 * "--processor-config @FILE"; main.c decides what to do with the result.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* Sets err to a formatted message; returns -EINVAL for the caller to return. */
static int __attribute__((format(printf, 3, 4)))
config_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Looks NAME up in envp; an empty value counts as unset. */
static const char *
config_env(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return (*envp)[n + 1] ? *envp + n + 1 : NULL;
	return NULL;
}

/* Replaces *dst by a copy of src (NULL allowed). */
static int
config_set_str(char **dst, const char *src)
{
	char *c = NULL;

	if (src && !(c = strdup(src)))
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

/* Parses a whole decimal integer within [lo, hi]. */
static bool
config_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static int
config_gpus(struct config *cfg, const char *v, char *err, size_t errlen)
{
	const char *p = v;
	long g;
	char *end;

	cfg->n_gpus = 0;
	if (!strcmp(v, "auto")) {
		cfg->gpus = CONFIG_GPUS_AUTO;
		return 0;
	}
	if (!strcmp(v, "none")) {
		cfg->gpus = CONFIG_GPUS_NONE;
		return 0;
	}
	if (!strcmp(v, "all")) {
		cfg->gpus = CONFIG_GPUS_ALL;
		return 0;
	}
	cfg->gpus = CONFIG_GPUS_LIST;
	for (;;) {
		if (*p < '0' || *p > '9')
			goto bad;
		errno = 0;
		g = strtol(p, &end, 10);
		if (errno || g > 1023)
			goto bad;
		for (int i = 0; i < cfg->n_gpus; i++)
			if (cfg->gpu_list[i] == g)
				return config_fail(err, errlen,
					"--gpus: GPU %ld listed twice", g);
		if (cfg->n_gpus == CONFIG_MAX_GPUS)
			return config_fail(err, errlen,
				"--gpus: more than %d GPUs", CONFIG_MAX_GPUS);
		cfg->gpu_list[cfg->n_gpus++] = (int)g;
		if (*end == '\0')
			return 0;
		if (*end != ',')
			goto bad;
		p = end + 1;
	}
bad:
	return config_fail(err, errlen,
		"--gpus: expected auto, none, all or a list like 0,1 (got \"%s\")", v);
}

static int
config_resolution(struct config *cfg, const char *v, char *err, size_t errlen)
{
	char buf[32], *x;
	long w, h;

	if (strlen(v) >= sizeof(buf))
		goto bad;
	strcpy(buf, v);
	x = strchr(buf, 'x');
	if (!x)
		goto bad;
	*x = '\0';
	if (!config_int(buf, 16, 16384, &w) || !config_int(x + 1, 16, 16384, &h))
		goto bad;
	if ((w & 1) || (h & 1))
		return config_fail(err, errlen,
			"--max-resolution: width and height must be even (got \"%s\")", v);
	cfg->max_width = (int)w;
	cfg->max_height = (int)h;
	return 0;
bad:
	return config_fail(err, errlen,
		"--max-resolution: expected WIDTHxHEIGHT within 16..16384, e.g. 1920x1080 (got \"%s\")", v);
}

static int
config_crash_budget(struct config *cfg, const char *v, char *err, size_t errlen)
{
	char buf[32], *slash;
	long n, s = 60;

	if (strlen(v) >= sizeof(buf))
		goto bad;
	strcpy(buf, v);
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		if (!config_int(slash + 1, 1, 86400, &s))
			goto bad;
	}
	if (!config_int(buf, 1, 1000, &n))
		goto bad;
	cfg->crash_budget_deaths = (int)n;
	cfg->crash_budget_window_s = (int)s;
	return 0;
bad:
	return config_fail(err, errlen,
		"--crash-budget: expected DEATHS[/SECONDS], e.g. 3/60 (got \"%s\")", v);
}

/* Reads the whole of a small text file into a new string. */
static int
config_read_file(const char *path, char **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f)
		return config_fail(err, errlen,
			"--processor-config: cannot open \"%s\": %s", path, strerror(errno));
	buf = malloc(CONFIG_MAX_CFG_BYTES + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, CONFIG_MAX_CFG_BYTES + 1, f);
	if (ferror(f) || n > CONFIG_MAX_CFG_BYTES) {
		fclose(f);
		free(buf);
		return config_fail(err, errlen,
			"--processor-config: \"%s\" unreadable or over %d bytes",
			path, CONFIG_MAX_CFG_BYTES);
	}
	fclose(f);
	buf[n] = '\0';
	if (strlen(buf) != n) {
		free(buf);
		return config_fail(err, errlen,
			"--processor-config: \"%s\" contains a NUL byte", path);
	}
	*out = buf;
	return 0;
}

/* Flags that take no value. */
static bool
config_is_switch(const char *name)
{
	return !strcmp(name, "help") || !strcmp(name, "version") ||
	       !strcmp(name, "insecure-tls");
}

/* Applies one flag. name has no leading dashes; v is its value. */
static int
config_apply(struct config *cfg, const char *name, const char *v,
             char *err, size_t errlen)
{
	long n;
	int rc;

#define INTFLAG(flag, field, lo, hi) \
	if (!strcmp(name, flag)) { \
		if (!config_int(v, lo, hi, &n)) \
			return config_fail(err, errlen, "--%s: expected an integer " \
				"within %ld..%ld (got \"%s\")", flag, (long)(lo), (long)(hi), v); \
		cfg->field = n; \
		return 0; \
	}
	if (!strcmp(name, "host")) {
		if (!*v || strlen(v) > 255)
			return config_fail(err, errlen, "--host: expected an address");
		return config_set_str(&cfg->host, v);
	}
	INTFLAG("port", port, 0, 65535)
	if (!strcmp(name, "gpus"))
		return config_gpus(cfg, v, err, errlen);
	INTFLAG("workers-per-gpu", workers_per_gpu, 1, 64)
	INTFLAG("spare-workers", spare_workers, 0, 64)
	if (!strcmp(name, "max-resolution"))
		return config_resolution(cfg, v, err, errlen);
	INTFLAG("ring-slots", ring_slots, 2, 64)
	INTFLAG("frame-deadline", frame_deadline_ms, 10, 600000)
	if (!strcmp(name, "crash-budget"))
		return config_crash_budget(cfg, v, err, errlen);
	INTFLAG("input-silence", input_silence_s, 1, 86400)
	INTFLAG("output-stall", output_stall_s, 1, 86400)
	INTFLAG("publish-drain-ms", publish_drain_ms, 0, 60000)
	INTFLAG("subscribe-max-backoff-ms", subscribe_max_backoff_ms, 100, 600000)
	if (!strcmp(name, "on-worker-loss")) {
		if (!strcmp(v, "hold"))
			cfg->on_worker_loss = CONFIG_LOSS_HOLD;
		else if (!strcmp(v, "passthrough"))
			cfg->on_worker_loss = CONFIG_LOSS_PASSTHROUGH;
		else if (!strcmp(v, "drop"))
			cfg->on_worker_loss = CONFIG_LOSS_DROP;
		else
			return config_fail(err, errlen, "--on-worker-loss: expected "
				"hold, passthrough or drop (got \"%s\")", v);
		return 0;
	}
	if (!strcmp(name, "processor")) {
		if (!*v)
			return config_fail(err, errlen, "--processor: expected a path");
		if (!strncmp(v, "python:", 7)) {
			const char *colon = strchr(v + 7, ':');

			if (!colon || colon == v + 7 || !colon[1])
				return config_fail(err, errlen, "--processor: expected "
					"PATH or python:MODULE:CLASS (got \"%s\")", v);
		}
		cfg->processor_is_python = !strncmp(v, "python:", 7);
		return config_set_str(&cfg->processor, v);
	}
	if (!strcmp(name, "processor-config")) {
		char *text = NULL;

		if (v[0] == '@') {
			if ((rc = config_read_file(v + 1, &text, err, errlen)) < 0)
				return rc;
			free(cfg->processor_config);
			cfg->processor_config = text;
			return 0;
		}
		return config_set_str(&cfg->processor_config, v);
	}
	if (!strcmp(name, "capability-name")) {
		if (!*v)
			return config_fail(err, errlen, "--capability-name: must not be empty");
		return config_set_str(&cfg->capability_name, v);
	}
	if (!strcmp(name, "auth-token")) {
		if (!*v)
			return config_fail(err, errlen, "--auth-token: must not be empty");
		return config_set_str(&cfg->auth_token, v);
	}
	if (!strcmp(name, "log-level")) {
		if (log_parse_level(v, &cfg->log_level) < 0)
			return config_fail(err, errlen, "--log-level: expected error, "
				"warn, info or debug (got \"%s\")", v);
		return 0;
	}
	INTFLAG("mem-limit-mb", mem_limit_mb, 0, 1L << 30)
	if (!strcmp(name, "pipeline")) {
		if (!*v)
			return config_fail(err, errlen, "--pipeline: must not be empty");
		return config_set_str(&cfg->pipeline, v);
	}
#undef INTFLAG
	return config_fail(err, errlen, "unknown option --%s (see --help)", name);
}

/* Known flags that take a value, to tell "--port" (missing value) apart. */
static const char *const config_valued[] = {
	"host", "port", "gpus", "workers-per-gpu", "spare-workers",
	"max-resolution", "ring-slots", "frame-deadline", "crash-budget",
	"input-silence", "output-stall", "on-worker-loss", "processor",
	"processor-config", "capability-name", "auth-token", "log-level",
	"mem-limit-mb", "pipeline", "publish-drain-ms",
	"subscribe-max-backoff-ms", NULL,
};

static bool
config_takes_value(const char *name)
{
	for (int i = 0; config_valued[i]; i++)
		if (!strcmp(name, config_valued[i]))
			return true;
	return false;
}

static int
config_defaults(struct config *cfg, char *const *envp)
{
	const char *cap;

	memset(cfg, 0, sizeof(*cfg));
	cfg->port = 8000;
	cfg->gpus = CONFIG_GPUS_AUTO;
	cfg->workers_per_gpu = 1;
	cfg->spare_workers = -1;
	cfg->max_width = 1920;
	cfg->max_height = 1080;
	cfg->ring_slots = 4;
	cfg->frame_deadline_ms = 5000;
	cfg->crash_budget_deaths = 3;
	cfg->crash_budget_window_s = 60;
	cfg->input_silence_s = 60;
	cfg->output_stall_s = 30;
	cfg->publish_drain_ms = 5000;
	cfg->subscribe_max_backoff_ms = 5000;
	cfg->on_worker_loss = CONFIG_LOSS_HOLD;
	cfg->log_level = LOG_INFO;
	cap = config_env(envp, "CAPABILITY_NAME");
	if (!cap)
		cap = config_env(envp, "MODEL_ID");
	if (config_set_str(&cfg->host, "0.0.0.0") < 0 ||
	    config_set_str(&cfg->pipeline, config_env(envp, "PIPELINE") ?
	                   config_env(envp, "PIPELINE") : "byoc") < 0 ||
	    config_set_str(&cfg->capability_name, cap ? cap : "") < 0 ||
	    config_set_str(&cfg->auth_token, config_env(envp, "AUTH_TOKEN")) < 0)
		return -ENOMEM;
	return 0;
}

int
config_parse(struct config *cfg, int argc, char *const *argv,
             char *const *envp, char *err, size_t errlen)
{
	char name[64];
	const char *arg, *eq, *val;
	size_t nlen;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if ((rc = config_defaults(cfg, envp ? envp : environ)) < 0)
		return rc;
	for (int i = 1; i < argc; i++) {
		arg = argv[i];
		if (!strcmp(arg, "-h")) {
			cfg->help = true;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0 || !arg[2])
			return config_fail(err, errlen, "unexpected argument \"%s\" "
				"(options start with --; see --help)", arg);
		arg += 2;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		if (nlen >= sizeof(name))
			return config_fail(err, errlen, "unknown option --%.*s",
				(int)(nlen > 60 ? 60 : nlen), arg);
		memcpy(name, arg, nlen);
		name[nlen] = '\0';
		if (config_is_switch(name)) {
			if (eq)
				return config_fail(err, errlen, "--%s takes no value", name);
			if (!strcmp(name, "help"))
				cfg->help = true;
			else if (!strcmp(name, "insecure-tls"))
				cfg->insecure_tls = true;
			else
				cfg->version = true;
			continue;
		}
		if (!config_takes_value(name))
			return config_fail(err, errlen, "unknown option --%s (see --help)", name);
		if (eq) {
			val = eq + 1;
		} else {
			if (i + 1 >= argc)
				return config_fail(err, errlen, "--%s: missing value", name);
			val = argv[++i];
		}
		if ((rc = config_apply(cfg, name, val, err, errlen)) < 0)
			return rc;
	}
	return 0;
}

void
config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free(cfg->host);
	free(cfg->processor);
	free(cfg->processor_config);
	free(cfg->capability_name);
	free(cfg->auth_token);
	free(cfg->pipeline);
	cfg->host = cfg->processor = cfg->processor_config = NULL;
	cfg->capability_name = cfg->auth_token = cfg->pipeline = NULL;
}

int
config_spare_workers(const struct config *cfg, int pool_size)
{
	int s;

	if (pool_size <= 0)
		return 0;
	if (cfg->spare_workers >= 0)
		s = cfg->spare_workers;
	else
		s = pool_size >= 2 ? 1 : 0;
	if (s > pool_size - 1)
		s = pool_size - 1;
	return s;
}

int
config_capacity(const struct config *cfg, int pool_size)
{
	int c = pool_size - config_spare_workers(cfg, pool_size);

	return c < 0 ? 0 : c;
}

const char *
config_gpus_name(enum config_gpus g)
{
	switch (g) {
	case CONFIG_GPUS_AUTO: return "auto";
	case CONFIG_GPUS_NONE: return "none";
	case CONFIG_GPUS_ALL:  return "all";
	case CONFIG_GPUS_LIST: return "list";
	}
	return "?";
}

const char *
config_loss_name(enum config_loss l)
{
	switch (l) {
	case CONFIG_LOSS_HOLD:        return "hold";
	case CONFIG_LOSS_PASSTHROUGH: return "passthrough";
	case CONFIG_LOSS_DROP:        return "drop";
	}
	return "?";
}

void
config_usage(FILE *f, const char *prog)
{
	fprintf(f,
"Usage: %s [OPTIONS]\n"
"ctrickle gateway: PyTrickle-compatible stream server with crash-isolated\n"
"worker processes. Options take \"--name value\" or \"--name=value\";\n"
"a flag wins over its environment variable.\n"
"\n"
"HTTP API\n"
"  --host ADDR              listen address (default 0.0.0.0)\n"
"  --port N                 listen port (default 8000)\n"
"  --auth-token TOKEN       require \"Authorization: Bearer TOKEN\" on every\n"
"                           endpoint but /health; also registered as the\n"
"                           capability's token (env AUTH_TOKEN; default none)\n"
"  --capability-name NAME   reported as model_id (env CAPABILITY_NAME, then\n"
"                           MODEL_ID; default \"\")\n"
"  --pipeline NAME          reported by /version (env PIPELINE; default byoc)\n"
"\n"
"Workers and devices\n"
"  --processor PATH         FrameProcessor plugin (.so), or python:MODULE:CLASS\n"
"  --processor-config JSON  JSON text given to the plugin's init, or @FILE\n"
"                           to read it from FILE (default none)\n"
"  --gpus auto|none|all|LIST  devices (default auto: every usable GPU, else\n"
"                           the host ring); LIST is like 0,1\n"
"  --workers-per-gpu N      workers per GPU, or on the host (default 1)\n"
"  --spare-workers N        warm spares (default 1 when the pool has 2 or\n"
"                           more workers, else 0); capacity = workers - spares\n"
"  --mem-limit-mb N         memory limit per worker in MiB (default 0: none)\n"
"\n"
"Frames and faults\n"
"  --max-resolution WxH     largest frame; bigger input is scaled down\n"
"                           (default 1920x1080)\n"
"  --ring-slots N           frame slots per worker (default 4)\n"
"  --frame-deadline MS      a worker that holds a frame longer is hung and\n"
"                           killed (default 5000)\n"
"  --crash-budget N[/S]     worker deaths per stream within S seconds before\n"
"                           the stream is ended (default 3/60)\n"
"  --input-silence S        end a stream after S seconds without input\n"
"                           (default 60)\n"
"  --output-stall S         end a stream after S seconds without output\n"
"                           (default 30)\n"
"  --on-worker-loss MODE    while no worker serves a stream: hold (repeat\n"
"                           the last processed frame), passthrough, or drop\n"
"                           (default hold)\n"
"\n"
"Trickle I/O\n"
"  --publish-drain-ms MS    at stream end, how long queued output may take\n"
"                           to reach the output server; what is left then\n"
"                           is dropped and logged, 0..60000 (default 5000)\n"
"  --subscribe-max-backoff-ms MS  cap of the input's retry backoff (first\n"
"                           retry after 100 ms, doubling), 100..600000\n"
"                           (default 5000)\n"
"\n"
"Other\n"
"  --insecure-tls           do not verify the TLS certificates of https\n"
"                           trickle URLs (orchestrators use self-signed ones;\n"
"                           default: verify)\n"
"  --log-level LEVEL        error, warn, info or debug (default info)\n"
"  --version                print the version and exit\n"
"  -h, --help               print this help and exit\n"
"\n"
"Environment for capability registration (PROTOCOL.md 2.10): ORCH_URL,\n"
"ORCH_SECRET (both needed), CAPABILITY_URL (default http://localhost:8000),\n"
"CAPABILITY_DESCRIPTION, CAPABILITY_PRICE_PER_UNIT (0),\n"
"CAPABILITY_PRICE_SCALING (1). Capacity = workers - spares.\n"
"Exit status 2: bad options.\n", prog);
}
