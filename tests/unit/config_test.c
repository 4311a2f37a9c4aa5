/*
 * Tests of gateway/config: defaults, every flag, environment fallbacks (a flag
 * wins), bad values (message names the flag), spares and capacity, --help.
 */
#include "harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "gateway/config.h"

static char *const no_env[] = { NULL };

static int
parse(struct config *c, char *const *envp, char *err, size_t len, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	char *a;

	argv[argc++] = "gateway";
	va_start(ap, len);
	while ((a = va_arg(ap, char *)) != NULL && argc < 63)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return config_parse(c, argc, argv, envp, err, len);
}

#define PARSE(c, env, err, ...) parse(c, env, err, sizeof(err), __VA_ARGS__, (char *)NULL)

static void
config_defaults(void)
{
	struct config c;
	char err[256];

	CHECK_OK(PARSE(&c, no_env, err, NULL));
	CHECK_STR(c.host, "0.0.0.0");
	CHECK_EQ(c.port, 8000);
	CHECK_EQ(c.gpus, CONFIG_GPUS_AUTO);
	CHECK_EQ(c.workers_per_gpu, 1);
	CHECK_EQ(c.spare_workers, -1);
	CHECK_EQ(c.max_width, 1920);
	CHECK_EQ(c.max_height, 1080);
	CHECK_EQ(c.ring_slots, 4);
	CHECK_EQ(c.frame_deadline_ms, 5000);
	CHECK_EQ(c.crash_budget_deaths, 3);
	CHECK_EQ(c.crash_budget_window_s, 60);
	CHECK_EQ(c.input_silence_s, 60);
	CHECK_EQ(c.output_stall_s, 30);
	CHECK_EQ(c.publish_drain_ms, 5000);
	CHECK_EQ(c.subscribe_max_backoff_ms, 5000);
	CHECK_EQ(c.on_worker_loss, CONFIG_LOSS_HOLD);
	CHECK(c.processor == NULL);
	CHECK(c.processor_config == NULL);
	CHECK_STR(c.capability_name, "");
	CHECK(c.auth_token == NULL);
	CHECK_EQ(c.log_level, LOG_INFO);
	CHECK_EQ(c.mem_limit_mb, 0);
	CHECK_STR(c.pipeline, "byoc");
	CHECK(!c.help && !c.version);
	config_free(&c);
	config_free(&c);
}

static void
config_every_flag(void)
{
	struct config c;
	char err[256];

	CHECK_OK(PARSE(&c, no_env, err, "--host", "127.0.0.1", "--port=0",
		"--gpus", "0,2", "--workers-per-gpu", "3", "--spare-workers", "2",
		"--max-resolution", "1280x720", "--ring-slots", "8",
		"--frame-deadline", "250", "--crash-budget", "5/30",
		"--input-silence", "9", "--output-stall", "7",
		"--on-worker-loss", "passthrough", "--processor", "/x/p.so",
		"--processor-config", "{\"a\":1}", "--capability-name", "cap",
		"--auth-token", "s3cret", "--log-level", "debug",
		"--mem-limit-mb", "512", "--pipeline", "live", "--version",
		"--publish-drain-ms", "0", "--subscribe-max-backoff-ms=250"));
	CHECK_STR(c.host, "127.0.0.1");
	CHECK_EQ(c.port, 0);
	CHECK_EQ(c.gpus, CONFIG_GPUS_LIST);
	CHECK_EQ(c.n_gpus, 2);
	CHECK_EQ(c.gpu_list[0], 0);
	CHECK_EQ(c.gpu_list[1], 2);
	CHECK_EQ(c.workers_per_gpu, 3);
	CHECK_EQ(c.spare_workers, 2);
	CHECK_EQ(c.max_width, 1280);
	CHECK_EQ(c.max_height, 720);
	CHECK_EQ(c.ring_slots, 8);
	CHECK_EQ(c.frame_deadline_ms, 250);
	CHECK_EQ(c.crash_budget_deaths, 5);
	CHECK_EQ(c.crash_budget_window_s, 30);
	CHECK_EQ(c.input_silence_s, 9);
	CHECK_EQ(c.output_stall_s, 7);
	CHECK_EQ(c.publish_drain_ms, 0);
	CHECK_EQ(c.subscribe_max_backoff_ms, 250);
	CHECK_EQ(c.on_worker_loss, CONFIG_LOSS_PASSTHROUGH);
	CHECK_STR(c.processor, "/x/p.so");
	CHECK(!c.processor_is_python);
	CHECK_STR(c.processor_config, "{\"a\":1}");
	CHECK_STR(c.capability_name, "cap");
	CHECK_STR(c.auth_token, "s3cret");
	CHECK_EQ(c.log_level, LOG_DEBUG);
	CHECK_EQ(c.mem_limit_mb, 512);
	CHECK_STR(c.pipeline, "live");
	CHECK(c.version);
	config_free(&c);

	CHECK_OK(PARSE(&c, no_env, err, "--gpus=none", "--on-worker-loss=drop",
		"--processor", "python:mymod:MyProc", "-h", "--crash-budget", "4"));
	CHECK_EQ(c.gpus, CONFIG_GPUS_NONE);
	CHECK_EQ(c.on_worker_loss, CONFIG_LOSS_DROP);
	CHECK(c.processor_is_python);
	CHECK_STR(c.processor, "python:mymod:MyProc");
	CHECK(c.help);
	CHECK_EQ(c.crash_budget_deaths, 4);
	CHECK_EQ(c.crash_budget_window_s, 60);
	config_free(&c);
	CHECK_OK(PARSE(&c, no_env, err, "--gpus", "all"));
	CHECK_EQ(c.gpus, CONFIG_GPUS_ALL);
	config_free(&c);
	CHECK_OK(PARSE(&c, no_env, err, "--publish-drain-ms", "60000",
		"--subscribe-max-backoff-ms", "100"));
	CHECK_EQ(c.publish_drain_ms, 60000);
	CHECK_EQ(c.subscribe_max_backoff_ms, 100);
	config_free(&c);
}

static void
config_env_and_precedence(void)
{
	char *const env1[] = { "AUTH_TOKEN=envtok", "MODEL_ID=model",
		"PIPELINE=live-video-to-video", NULL };
	char *const env2[] = { "MODEL_ID=model", "CAPABILITY_NAME=capname",
		"AUTH_TOKEN=", NULL };
	struct config c;
	char err[256];

	CHECK_OK(PARSE(&c, env1, err, NULL));
	CHECK_STR(c.auth_token, "envtok");
	CHECK_STR(c.capability_name, "model");
	CHECK_STR(c.pipeline, "live-video-to-video");
	config_free(&c);
	CHECK_OK(PARSE(&c, env1, err, "--auth-token", "flagtok",
		"--capability-name=flagcap", "--pipeline", "byoc"));
	CHECK_STR(c.auth_token, "flagtok");
	CHECK_STR(c.capability_name, "flagcap");
	CHECK_STR(c.pipeline, "byoc");
	config_free(&c);
	CHECK_OK(PARSE(&c, env2, err, NULL));
	CHECK_STR(c.capability_name, "capname");
	CHECK(c.auth_token == NULL); /* empty env: no token */
	config_free(&c);
}

/* Each bad value fails with -EINVAL and a message that names its flag. */
static void
config_bad_values(void)
{
	static const char *const bad[][3] = {
		{ "--port", "70000", "--port" },
		{ "--port", "80x", "--port" },
		{ "--gpus", "0,,1", "--gpus" },
		{ "--gpus", "1,1", "--gpus" },
		{ "--gpus", "gpu0", "--gpus" },
		{ "--workers-per-gpu", "0", "--workers-per-gpu" },
		{ "--spare-workers", "-1", "--spare-workers" },
		{ "--max-resolution", "1920", "--max-resolution" },
		{ "--max-resolution", "1921x1080", "--max-resolution" },
		{ "--max-resolution", "axb", "--max-resolution" },
		{ "--ring-slots", "1", "--ring-slots" },
		{ "--frame-deadline", "", "--frame-deadline" },
		{ "--crash-budget", "3/0", "--crash-budget" },
		{ "--crash-budget", "x", "--crash-budget" },
		{ "--input-silence", "0", "--input-silence" },
		{ "--output-stall", "-3", "--output-stall" },
		{ "--on-worker-loss", "freeze", "--on-worker-loss" },
		{ "--processor", "python:mod", "--processor" },
		{ "--processor-config", "@/nonexistent/cfg.json", "--processor-config" },
		{ "--auth-token", "", "--auth-token" },
		{ "--log-level", "verbose", "--log-level" },
		{ "--mem-limit-mb", "lots", "--mem-limit-mb" },
		{ "--publish-drain-ms", "60001", "--publish-drain-ms" },
		{ "--publish-drain-ms", "-1", "--publish-drain-ms" },
		{ "--subscribe-max-backoff-ms", "99", "--subscribe-max-backoff-ms" },
		{ "--subscribe-max-backoff-ms", "600001",
		  "--subscribe-max-backoff-ms" },
		{ "--bogus", "1", "--bogus" },
	};
	struct config c;
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = PARSE(&c, no_env, err, (char *)bad[i][0], (char *)bad[i][1]);

		CHECK_MSG(rc == -EINVAL, "%s %s: rc %d", bad[i][0], bad[i][1], rc);
		CHECK_MSG(strstr(err, bad[i][2]) != NULL, "%s %s: message \"%s\"",
			bad[i][0], bad[i][1], err);
		config_free(&c);
	}
	CHECK_EQ(PARSE(&c, no_env, err, "--port"), -EINVAL);
	CHECK(strstr(err, "--port") && strstr(err, "missing"));
	config_free(&c);
	CHECK_EQ(PARSE(&c, no_env, err, "stray"), -EINVAL);
	config_free(&c);
	CHECK_EQ(PARSE(&c, no_env, err, "--help=1"), -EINVAL);
	config_free(&c);
}

static void
config_processor_config_file(void)
{
	char path[512], arg[520], err[256];
	struct config c;
	FILE *f;

	snprintf(path, sizeof(path), "%s/cfg.json", th_tmpdir());
	f = fopen(path, "w");
	CHECK(f != NULL);
	fputs("{\"strength\": 0.5}\n", f);
	fclose(f);
	snprintf(arg, sizeof(arg), "@%s", path);
	CHECK_OK(PARSE(&c, no_env, err, "--processor-config", arg));
	CHECK_STR(c.processor_config, "{\"strength\": 0.5}\n");
	config_free(&c);
}

static void
config_spares_capacity(void)
{
	struct config c;
	char err[64];

	CHECK_OK(PARSE(&c, no_env, err, NULL));
	CHECK_EQ(config_spare_workers(&c, 1), 0);
	CHECK_EQ(config_capacity(&c, 1), 1);
	CHECK_EQ(config_spare_workers(&c, 2), 1);
	CHECK_EQ(config_capacity(&c, 2), 1);
	CHECK_EQ(config_capacity(&c, 8), 7);
	CHECK_EQ(config_capacity(&c, 0), 0);
	config_free(&c);
	CHECK_OK(PARSE(&c, no_env, err, "--spare-workers", "3"));
	CHECK_EQ(config_spare_workers(&c, 8), 3);
	CHECK_EQ(config_capacity(&c, 8), 5);
	CHECK_EQ(config_spare_workers(&c, 2), 1); /* one worker always serves */
	config_free(&c);
	CHECK_OK(PARSE(&c, no_env, err, "--spare-workers", "0"));
	CHECK_EQ(config_capacity(&c, 4), 4);
	config_free(&c);
}

/* --help names every flag and the main defaults. */
static void
config_help_text(void)
{
	static const char *const must[] = {
		"--host", "0.0.0.0", "--port", "8000", "--gpus", "auto",
		"--workers-per-gpu", "--spare-workers", "--max-resolution",
		"1920x1080", "--ring-slots", "--frame-deadline", "5000",
		"--crash-budget", "3/60", "--input-silence", "--output-stall",
		"--on-worker-loss", "hold", "--processor", "--processor-config",
		"@FILE", "--capability-name", "CAPABILITY_NAME", "MODEL_ID",
		"--auth-token", "AUTH_TOKEN", "--log-level", "--mem-limit-mb",
		"--pipeline", "PIPELINE", "byoc", "--version", "--help",
		"--publish-drain-ms", "--subscribe-max-backoff-ms",
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CHECK(f != NULL);
	config_usage(f, "gateway");
	fclose(f);
	for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
		CHECK_MSG(strstr(buf, must[i]) != NULL, "--help lacks %s", must[i]);
	free(buf);
	CHECK_STR(config_gpus_name(CONFIG_GPUS_NONE), "none");
	CHECK_STR(config_loss_name(CONFIG_LOSS_PASSTHROUGH), "passthrough");
}

static const struct th_case cases[] = {
	TH_CASE(config_defaults),
	TH_CASE(config_every_flag),
	TH_CASE(config_env_and_precedence),
	TH_CASE(config_bad_values),
	TH_CASE(config_processor_config_file),
	TH_CASE(config_spares_capacity),
	TH_CASE(config_help_text),
	TH_END,
};

TH_MAIN(cases)
