/*
 * BYOC capability registration (PROTOCOL.md 2.10): POST the capability to
 * {ORCH_URL}/capability/register with the raw ORCH_SECRET, retrying, on a
 * thread of its own; POST /capability/unregister at shutdown. Owns its
 * thread and copies of the settings; knows nothing of streams.
 */
#ifndef CT_REGISTER_H
#define CT_REGISTER_H

#include <stddef.h>

#define REGISTER_DEFAULT_NAME  "pytrickle-worker"
#define REGISTER_DEFAULT_URL   "http://localhost:8000"

struct register_config {
	char *orch_url;        /* ORCH_URL, trailing slashes removed */
	char *orch_secret;     /* ORCH_SECRET: sent raw as Authorization; never logged */
	char *url;             /* CAPABILITY_URL, default REGISTER_DEFAULT_URL */
	char *name;            /* capability name */
	char *description;     /* CAPABILITY_DESCRIPTION, default "" */
	char *currency;        /* CAPABILITY_CURRENCY, NULL: not sent */
	char *token;           /* bearer token the orchestrator sends us; NULL: none */
	int capacity;          /* concurrent streams */
	long long price_per_unit; /* CAPABILITY_PRICE_PER_UNIT, default 0 */
	long long price_scaling;  /* CAPABILITY_PRICE_SCALING, default 1 */
	int tries;             /* default 3 */
	int retry_delay_ms;    /* between tries, default 2000 */
	int timeout_ms;        /* per request, default 1500 */
};

/*
 * Fills *rc from envp (NULL: the process environment): ORCH_URL, ORCH_SECRET,
 * CAPABILITY_URL, CAPABILITY_DESCRIPTION, CAPABILITY_PRICE_PER_UNIT,
 * CAPABILITY_PRICE_SCALING, CAPABILITY_CURRENCY, CAPABILITY_CAPACITY.
 * name: the capability name (--capability-name; NULL or "" gives
 * REGISTER_DEFAULT_NAME); token: --auth-token (NULL: none); capacity: workers
 * minus spares (CAPABILITY_CAPACITY, when set, may only lower it).
 * Returns 0; -ENOENT when ORCH_URL or ORCH_SECRET is unset (registration is
 * off; *rc is left zeroed); -EINVAL with a message in err for a bad value
 * (a number out of range, a body value that is not UTF-8, a control byte in
 * the secret or token: refused here, not at every registration); -ENOMEM.
 * Release with register_config_free(). Any thread; no I/O.
 */
int register_config_from_env(struct register_config *rc, char *const *envp,
                             const char *name, const char *token, int capacity,
                             char *err, size_t errlen);

/* Frees the strings of *rc (scrubbing the secret and token) and zeroes it. */
void register_config_free(struct register_config *rc);

/*
 * The registration body: {"url","name","description","capacity",
 * "price_per_unit","price_scaling"[,"currency"][,"token"]} as compact JSON,
 * malloc'd (free() it), or NULL on OOM.
 */
char *register_body(const struct register_config *rc);

/*
 * Registers: up to rc->tries POSTs, rc->retry_delay_ms apart, each bounded
 * by rc->timeout_ms; TLS certificates are not verified (as PyTrickle).
 * Returns 0 on a 2xx answer, else -ETIMEDOUT, -ECONNREFUSED, -EACCES (the
 * orchestrator answered 4xx), -EIO or -ENOMEM for the last try. Blocks for
 * up to tries * (timeout + delay): never call it on the loop thread.
 */
int register_capability(const struct register_config *rc);

/*
 * Unregisters: one POST of the name as a raw body to /capability/unregister,
 * bounded by rc->timeout_ms. Returns as register_capability(). Blocks.
 */
int register_unregister(const struct register_config *rc);

typedef struct register_job register_job;

/*
 * Runs register_capability() on a new thread with a copy of *rc. done (may
 * be NULL) is called once on that thread with the result; it must not block
 * long (e.g. activate a libevent event to go back to the loop). Returns 0,
 * or -errno when the thread cannot start.
 */
int register_start(register_job **out, const struct register_config *rc,
                   void (*done)(int result, void *arg), void *arg);

/*
 * Cancels the retries still to come (a request in flight finishes within
 * its timeout), joins the thread and frees the job. NULL-safe; sets *p =
 * NULL. Blocks up to one request timeout.
 */
void register_stop(register_job **p);

#endif
