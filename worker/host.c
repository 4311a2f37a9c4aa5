/*
 * Plugin loading and the fp_host services of the worker. Owns the dlopen
 * handle, the checked table copy and the instance pointer. The fp_host
 * callbacks carry no context argument (ABI 1.0), so the one live host of the
 * process is reached through host_current: the single file-scope state here.
 */
#include "host.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "msg.h"

struct host {
	void *h_dl;                 /* dlopen handle */
	struct fp_plugin h_plugin;  /* checked, zero-extended copy */
	struct fp_host h_services;  /* handed to init */
	void *h_self;               /* the plugin's instance */
	bool h_inited;              /* init returned 0: fini is owed */
	pthread_mutex_t h_lock;     /* guards the sink and the stream */
	host_sink_fn h_sink;
	void *h_sink_ctx;
	bool h_active;              /* a stream is being served */
	uint32_t h_stream;
	char h_mod[40];             /* log module of the plugin's lines */
};

_Static_assert(HOST_FP_PLUGIN_V1_0_SIZE <= sizeof(struct fp_plugin),
               "the 1.0 table is a prefix of the current one");

/* The one live host: fp_host's callbacks have no context pointer. */
static host *host_current;

static void
host_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
host_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
host_check_table(const struct fp_plugin *t, struct fp_plugin *out,
                 char *err, size_t errlen)
{
	size_t n;

	if (!t) {
		host_errf(err, errlen, "fp_plugin_entry returned NULL");
		return -EINVAL;
	}
	if ((t->abi_version >> 16) != FP_ABI_MAJOR) {
		host_errf(err, errlen, "plugin ABI %u.%u, worker ABI %u.%u: major differs",
		          t->abi_version >> 16, t->abi_version & 0xffffu,
		          FP_ABI_MAJOR, FP_ABI_MINOR);
		return -EPROTO;
	}
	if (t->struct_size < HOST_FP_PLUGIN_V1_0_SIZE) {
		host_errf(err, errlen, "plugin table struct_size %u below the ABI 1.0 size %zu",
		          t->struct_size, (size_t)HOST_FP_PLUGIN_V1_0_SIZE);
		return -EPROTO;
	}
	memset(out, 0, sizeof(*out));
	n = t->struct_size < sizeof(*out) ? t->struct_size : sizeof(*out);
	memcpy(out, t, n);
	if (!out->init || !out->process_video) {
		host_errf(err, errlen, "plugin table lacks a required callback (%s)",
		          !out->init ? "init" : "process_video");
		return -EINVAL;
	}
	if (out->wants.video_format >= FP_FMT_COUNT) {
		host_errf(err, errlen, "plugin wants unknown video format %u",
		          out->wants.video_format);
		return -EINVAL;
	}
	if (out->wants.video_mem != FP_MEM_HOST && out->wants.video_mem != FP_MEM_CUDA) {
		host_errf(err, errlen, "plugin wants unknown video memory %u",
		          out->wants.video_mem);
		return -EINVAL;
	}
	return 0;
}

static void
host_svc_log(int level, const char *fmt, ...)
{
	host *h = host_current;
	enum log_level lvl;
	va_list ap;

	if (level <= FP_LOG_ERROR)
		lvl = LOG_ERROR;
	else if (level >= FP_LOG_DEBUG)
		lvl = LOG_DEBUG;
	else
		lvl = (enum log_level)level;
	if ((int)lvl > (int)log_get_level() || !fmt)
		return;
	va_start(ap, fmt);
	log_vmsg(lvl, h ? h->h_mod : "plugin", fmt, ap);
	va_end(ap);
}

/* Hands text to the sink under the lock; -ENOTCONN without a stream or sink. */
static int
host_emit(enum host_emit_kind kind, const char *text, size_t len)
{
	host *h = host_current;
	int rc;

	if (!h)
		return -ENOTCONN;
	pthread_mutex_lock(&h->h_lock);
	if (!h->h_sink || !h->h_active)
		rc = -ENOTCONN;
	else
		rc = h->h_sink(h->h_sink_ctx, kind, h->h_stream, text, len);
	pthread_mutex_unlock(&h->h_lock);
	return rc;
}

static int
host_svc_emit_event(const char *json, size_t len)
{
	json_error_t jerr;
	json_t *v;
	bool obj;

	if (!json || len == 0)
		return -EINVAL;
	if (len > HOST_MAX_EVENT)
		return -EMSGSIZE;
	v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	obj = v && json_is_object(v);
	json_decref(v);
	if (!obj)
		return -EINVAL;
	return host_emit(HOST_EMIT_EVENT, json, len);
}

static int
host_svc_emit_data(const char *line, size_t len)
{
	if (!line)
		return -EINVAL;
	if (len > HOST_MAX_DATA)
		return -EMSGSIZE;
	if (memchr(line, '\n', len) || memchr(line, '\r', len) || memchr(line, '\0', len))
		return -EINVAL;
	return host_emit(HOST_EMIT_DATA, line, len);
}

int
host_load(host **out, const char *path, char *err, size_t errlen)
{
	const struct fp_plugin *t;
	fp_entry_fn entry;
	host *h;
	int rc;

	*out = NULL;
	if (host_current) {
		host_errf(err, errlen, "a plugin is already loaded in this process");
		return -EBUSY;
	}
	if (!path || !*path) {
		host_errf(err, errlen, "no plugin path given");
		return -ENOENT;
	}
	if (strchr(path, '/') && access(path, R_OK) != 0) {
		rc = -errno;
		host_errf(err, errlen, "plugin %s: %s", path, strerror(errno));
		return rc;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		host_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	dlerror();
	h->h_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h->h_dl) {
		const char *why = dlerror();

		host_errf(err, errlen, "plugin %s: cannot load: %s", path, why ? why : "?");
		rc = strchr(path, '/') ? -ENOEXEC : -ENOENT;
		goto err_free;
	}
	dlerror();
	*(void **)&entry = dlsym(h->h_dl, FP_ENTRY_SYMBOL);
	if (!entry) {
		host_errf(err, errlen, "plugin %s: no %s symbol (not a ctrickle plugin)",
		          path, FP_ENTRY_SYMBOL);
		rc = -ENOEXEC;
		goto err_close_dl;
	}
	t = entry();
	rc = host_check_table(t, &h->h_plugin, err, errlen);
	if (rc < 0) {
		char why[HOST_ERR_LEN];

		snprintf(why, sizeof(why), "%s", err ? err : "");
		host_errf(err, errlen, "plugin %s: %s", path, why);
		goto err_close_dl;
	}
	pthread_mutex_init(&h->h_lock, NULL);
	h->h_services.struct_size = sizeof(h->h_services);
	h->h_services.log = host_svc_log;
	h->h_services.emit_event = host_svc_emit_event;
	h->h_services.emit_data = host_svc_emit_data;
	snprintf(h->h_mod, sizeof(h->h_mod), "plugin:%s",
	         h->h_plugin.name ? h->h_plugin.name : "?");
	log_info("host", "plugin loaded name=%s version=%s abi=%u.%u worker_abi=%u.%u "
	         "format=%u mem=%u path=%s",
	         h->h_plugin.name ? h->h_plugin.name : "?",
	         h->h_plugin.version ? h->h_plugin.version : "?",
	         h->h_plugin.abi_version >> 16, h->h_plugin.abi_version & 0xffffu,
	         FP_ABI_MAJOR, FP_ABI_MINOR, h->h_plugin.wants.video_format,
	         h->h_plugin.wants.video_mem, path);
	host_current = h;
	*out = h;
	return 0;

err_close_dl:
	dlclose(h->h_dl);
err_free:
	free(h);
	return rc;
}

const struct fp_plugin *
host_plugin(const host *h)
{
	return &h->h_plugin;
}

uint32_t
host_caps(const host *h)
{
	uint32_t caps = 0;

	if (h->h_plugin.process_audio)
		caps |= MSG_CAP_AUDIO;
	if (h->h_plugin.update_params)
		caps |= MSG_CAP_PARAMS;
	if (h->h_plugin.stream_start)
		caps |= MSG_CAP_STREAM_START;
	if (h->h_plugin.stream_stop)
		caps |= MSG_CAP_STREAM_STOP;
	return caps;
}

const struct fp_host *
host_services(const host *h)
{
	return &h->h_services;
}

int
host_init(host *h, const char *config_json)
{
	int rc;

	rc = h->h_plugin.init(&h->h_services, config_json ? config_json : "{}",
	                      &h->h_self);
	if (rc > 0)
		rc = -EINVAL;
	h->h_inited = rc == 0;
	return rc;
}

void *
host_self(const host *h)
{
	return h->h_self;
}

void
host_set_sink(host *h, host_sink_fn fn, void *ctx)
{
	pthread_mutex_lock(&h->h_lock);
	h->h_sink = fn;
	h->h_sink_ctx = ctx;
	pthread_mutex_unlock(&h->h_lock);
}

void
host_set_stream(host *h, bool active, uint32_t stream)
{
	pthread_mutex_lock(&h->h_lock);
	h->h_active = active;
	h->h_stream = stream;
	pthread_mutex_unlock(&h->h_lock);
}

void
host_destroy(host **p)
{
	host *h = *p;

	if (!h)
		return;
	if (h->h_inited && h->h_plugin.fini)
		h->h_plugin.fini(h->h_self);
	h->h_inited = false;
	if (host_current == h)
		host_current = NULL;
	/* Under LeakSanitizer a dlclosed plugin's leak reports lose their symbols. */
	dlclose(h->h_dl);
	pthread_mutex_destroy(&h->h_lock);
	free(h);
	*p = NULL;
}
