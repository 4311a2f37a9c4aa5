/*
 * The worker's side of the FrameProcessor ABI: loads a plugin .so, checks its
 * table, keeps the checked copy, and offers the fp_host services (log, events,
 * data lines). Owns the dlopen handle and the plugin instance; not the ring,
 * not the IPC socket (events and data leave through a sink the caller sets).
 */
#ifndef CT_WORKER_HOST_H
#define CT_WORKER_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame_processor.h"

/* Size of the ABI 1.0 plugin table: the smallest struct_size accepted. */
#define HOST_FP_PLUGIN_V1_0_SIZE \
	(offsetof(struct fp_plugin, stream_stop) + sizeof(void (*)(void *)))

/* Largest event (JSON text) and data line a plugin may emit, in bytes. The data
   bound is the 64 KiB line limit of the gateway's JSONL reader (PROTOCOL 5.3). */
#define HOST_MAX_EVENT (64u * 1024)
#define HOST_MAX_DATA  (64u * 1024 - 1)

/* Length of the error text buffers passed to host_load/host_check_table. */
#define HOST_ERR_LEN 256

typedef struct host host;

/*
 * Where emit_event/emit_data go: called with kind 0 (event, JSON object text)
 * or 1 (data line), the stream the host is serving, and the text. Returns 0 or
 * a negative errno, which the plugin's call returns. May run on any thread
 * that the plugin calls from; the host serializes calls with a mutex.
 */
enum host_emit_kind { HOST_EMIT_EVENT = 0, HOST_EMIT_DATA = 1 };
typedef int (*host_sink_fn)(void *ctx, enum host_emit_kind kind, uint32_t stream,
                            const char *text, size_t len);

/*
 * Checks a plugin table as the loader does and copies it into *out (zeroed,
 * then min(t->struct_size, sizeof *out) bytes). Refuses: NULL table, another
 * major ABI version, struct_size below the 1.0 table, NULL init or
 * process_video, unknown wants.video_format or wants.video_mem. Returns 0, or
 * -EPROTO (ABI) / -EINVAL (table) with a one-line reason in err. Pure.
 */
int host_check_table(const struct fp_plugin *t, struct fp_plugin *out,
                     char *err, size_t errlen);

/*
 * dlopen(RTLD_NOW|RTLD_LOCAL)s path, finds fp_plugin_entry, checks the table
 * (host_check_table) and logs name, version and ABI version. Does not call
 * init. Returns 0 and *out, or a negative errno with a reason in err:
 * -ENOENT (no such file), -ENOEXEC (not loadable, or no entry symbol),
 * -EPROTO / -EINVAL (table refused), -ENOMEM. At most one host per process
 * (the fp_host services carry no context pointer): -EBUSY for a second one.
 */
int host_load(host **out, const char *path, char *err, size_t errlen);

/* The checked copy of the plugin's table (valid until host_destroy). */
const struct fp_plugin *host_plugin(const host *h);

/* MSG_CAP_* bits for HELLO: which optional callbacks the plugin has. */
uint32_t host_caps(const host *h);

/* The services table handed to init (valid until host_destroy). */
const struct fp_host *host_services(const host *h);

/*
 * Calls the plugin's init with config_json (NULL gives "{}"). Returns its
 * result (0, or a negative errno; a positive return is turned into -EINVAL).
 * Call once. Blocks as long as the plugin's init does.
 */
int host_init(host *h, const char *config_json);

/* The instance pointer init set (NULL before init). */
void *host_self(const host *h);

/* Sets where emitted events and data lines go (NULL: they fail with -ENOTCONN). */
void host_set_sink(host *h, host_sink_fn fn, void *ctx);

/* The stream the plugin serves now (active) or none (emits fail with -ENOTCONN). */
void host_set_stream(host *h, bool active, uint32_t stream);

/*
 * Calls fini (when init succeeded and the plugin has one), dlcloses, frees,
 * sets *p = NULL. NULL-safe. Only the thread that makes plugin calls.
 */
void host_destroy(host **p);

#endif
