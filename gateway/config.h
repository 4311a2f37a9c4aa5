/*
 * Gateway configuration: every command-line flag and environment variable of
 * build/gateway (DESIGN.md's names table), parsed into one struct by a pure
 * function, with defaults and the --help text. Owns no runtime state; what
 * the flags mean is up to main.c and the modules it configures.
 */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_MAX_GPUS       64
#define CONFIG_MAX_CFG_BYTES  (1024 * 1024) /* --processor-config @FILE cap */

enum config_gpus {
	CONFIG_GPUS_AUTO = 0, /* every usable GPU, else the host ring */
	CONFIG_GPUS_NONE,     /* host ring only */
	CONFIG_GPUS_ALL,      /* every GPU; an error if there is none */
	CONFIG_GPUS_LIST,     /* the ordinals in gpu_list */
};

enum config_loss {
	CONFIG_LOSS_HOLD = 0,    /* repeat the last processed frame */
	CONFIG_LOSS_PASSTHROUGH, /* publish the input unchanged */
	CONFIG_LOSS_DROP,        /* publish nothing */
};

struct config {
	char *host;                 /* --host, default "0.0.0.0" */
	int port;                   /* --port, default 8000 (0: any, for tests) */
	enum config_gpus gpus;      /* --gpus auto|none|all|LIST */
	int gpu_list[CONFIG_MAX_GPUS];
	int n_gpus;                 /* entries of gpu_list (LIST only) */
	int workers_per_gpu;        /* --workers-per-gpu, default 1 */
	int spare_workers;          /* --spare-workers; -1: auto (see below) */
	int max_width, max_height;  /* --max-resolution WxH, default 1920x1080 */
	int ring_slots;             /* --ring-slots per worker, default 4 */
	int frame_deadline_ms;      /* --frame-deadline, default 5000 */
	int crash_budget_deaths;    /* --crash-budget N[/SECONDS], default 3 */
	int crash_budget_window_s;  /*   ... per 60 s */
	int input_silence_s;        /* --input-silence, default 60 */
	int output_stall_s;         /* --output-stall, default 30 */
	enum config_loss on_worker_loss; /* --on-worker-loss, default hold */
	int publish_drain_ms;       /* --publish-drain-ms, default 5000 (0..60000) */
	int subscribe_max_backoff_ms; /* --subscribe-max-backoff-ms, default 5000 */
	char *processor;            /* --processor PATH or python:MODULE:CLASS */
	bool processor_is_python;   /* processor starts with "python:" */
	char *processor_config;     /* --processor-config JSON text (an @FILE is read) */
	char *capability_name;      /* --capability-name, env CAPABILITY_NAME, MODEL_ID */
	char *auth_token;           /* --auth-token, env AUTH_TOKEN; NULL: none */
	enum log_level log_level;   /* --log-level, default info */
	long mem_limit_mb;          /* --mem-limit-mb per worker; 0: no limit */
	char *pipeline;             /* --pipeline, env PIPELINE, default "byoc" */
	bool insecure_tls;          /* --insecure-tls: no TLS check of trickle peers */
	bool help;                  /* --help / -h given: print config_usage, exit 0 */
	bool version;               /* --version given: print the version, exit 0 */
};

/*
 * Parses argv (argv[0] is the program) and the environment envp (a NULL-
 * terminated "NAME=value" array; NULL means the process environment) into
 * *cfg, after setting every default. A flag wins over its environment
 * variable. Flags take "--name value" or "--name=value".
 * Returns 0, or -EINVAL with a one-line message naming the flag in err
 * (callers print it and exit with status 2), or -ENOMEM. On any return the
 * strings of *cfg are owned by it: release them with config_free(). Reads
 * the file of "--processor-config @FILE" (so it may block on the disk) but
 * touches no other state. Any thread.
 */
int config_parse(struct config *cfg, int argc, char *const *argv,
                 char *const *envp, char *err, size_t errlen);

/* Releases the strings of *cfg (safe on a zeroed or already freed struct). */
void config_free(struct config *cfg);

/*
 * The number of spare workers for a pool of pool_size workers: the value of
 * --spare-workers when given (capped so that one worker serves), else 1 when
 * the pool has 2 or more workers, else 0.
 */
int config_spare_workers(const struct config *cfg, int pool_size);

/* Capacity (concurrent streams) of a pool: pool_size - spares, at least 0. */
int config_capacity(const struct config *cfg, int pool_size);

/* Writes the --help text (every flag, its environment variable and default). */
void config_usage(FILE *f, const char *prog);

/* Name of a mode, for logs and docs ("auto", "hold", ...). */
const char *config_gpus_name(enum config_gpus g);
const char *config_loss_name(enum config_loss l);

#endif
