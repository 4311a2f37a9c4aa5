/*
 * python: the FrameProcessor plugin that embeds CPython and runs a PyTrickle
 * processor (a Python class) inside the worker. Owns the interpreter, its GIL
 * and the `_ctrickle` builtin module (log, emit_event, emit_data). The frame
 * conversions, the asyncio loop and the error policy live in Python, in
 * python/ctrickle_py/bridge.py; docs/python.md is the user's guide.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "frame_processor.h"

#ifndef CT_PY_SRCDIR
#define CT_PY_SRCDIR "" /* the source tree's python/ (set by the Makefile) */
#endif
#ifndef CT_PY_PREFIX
#define CT_PY_PREFIX "/usr" /* python3-config --prefix of the build */
#endif

#define PYFP_STR2(x) #x
#define PYFP_STR(x) PYFP_STR2(x)
#define PYFP_EXE CT_PY_PREFIX "/bin/python" PYFP_STR(PY_MAJOR_VERSION) "." \
	PYFP_STR(PY_MINOR_VERSION)

struct pyfp {
	const struct fp_host *p_host;
	PyObject *p_bridge;     /* ctrickle_py.bridge.Bridge instance */
	PyObject *p_video;      /* its bound methods, looked up once */
	PyObject *p_audio;
	PyObject *p_params;
	PyObject *p_start;
	PyObject *p_stop;
	PyThreadState *p_ts;    /* the main thread state while the GIL is free */
};

/* State of the _ctrickle module: the host services, set right after import. */
struct pyfp_mod {
	const struct fp_host *m_host;
};

/* ---- the _ctrickle builtin module ------------------------------------- */

static const struct fp_host *
pyfp_mod_host(PyObject *mod)
{
	struct pyfp_mod *st = PyModule_GetState(mod);

	return st ? st->m_host : NULL;
}

/* _ctrickle.log(level, text): one line in the worker's log. */
static PyObject *
pyfp_mod_log(PyObject *mod, PyObject *args)
{
	const struct fp_host *h = pyfp_mod_host(mod);
	const char *text;
	int level;

	if (!PyArg_ParseTuple(args, "is", &level, &text))
		return NULL;
	if (h)
		h->log(level, "%s", text);
	Py_RETURN_NONE;
}

/* Shared body of emit_event / emit_data: returns the host's int result. */
static PyObject *
pyfp_mod_emit(PyObject *mod, PyObject *args, bool event)
{
	const struct fp_host *h = pyfp_mod_host(mod);
	const char *text;
	Py_ssize_t len;
	int rc;

	if (!PyArg_ParseTuple(args, "s#", &text, &len))
		return NULL;
	if (!h)
		return PyLong_FromLong(-ENOTCONN);
	rc = event ? h->emit_event(text, (size_t)len) : h->emit_data(text, (size_t)len);
	return PyLong_FromLong(rc);
}

static PyObject *
pyfp_mod_emit_event(PyObject *mod, PyObject *args)
{
	return pyfp_mod_emit(mod, args, true);
}

static PyObject *
pyfp_mod_emit_data(PyObject *mod, PyObject *args)
{
	return pyfp_mod_emit(mod, args, false);
}

static PyMethodDef pyfp_mod_methods[] = {
	{ "log", pyfp_mod_log, METH_VARARGS,
	  "log(level, text): a line in the worker's log (0 error .. 3 debug)" },
	{ "emit_event", pyfp_mod_emit_event, METH_VARARGS,
	  "emit_event(json_text) -> 0 or -errno: an event on the stream's events channel" },
	{ "emit_data", pyfp_mod_emit_data, METH_VARARGS,
	  "emit_data(line) -> 0 or -errno: a line on the stream's data channel" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef pyfp_mod_def = {
	PyModuleDef_HEAD_INIT, "_ctrickle",
	"Services of the ctrickle worker that embeds this interpreter.",
	sizeof(struct pyfp_mod), pyfp_mod_methods, NULL, NULL, NULL, NULL,
};

static PyObject *
pyfp_mod_init(void)
{
	PyObject *m = PyModule_Create(&pyfp_mod_def);

	if (m && PyModule_AddIntConstant(m, "ABI_VERSION", FP_ABI_VERSION) < 0)
		Py_CLEAR(m);
	return m;
}

/* ---- interpreter setup ------------------------------------------------ */

/* Logs the pending Python exception (type: message, then the traceback). */
static void
pyfp_log_exception(const struct fp_host *h, const char *what)
{
	PyObject *type = NULL, *exc = NULL, *tb = NULL, *mod, *text = NULL;
	const char *s = NULL;

#if PY_VERSION_HEX >= 0x030C0000
	exc = PyErr_GetRaisedException();
	if (exc) {
		type = Py_NewRef((PyObject *)Py_TYPE(exc));
		tb = PyException_GetTraceback(exc);
	}
#else
	PyErr_Fetch(&type, &exc, &tb);
	PyErr_NormalizeException(&type, &exc, &tb);
#endif
	if (!exc) {
		Py_XDECREF(type);
		Py_XDECREF(tb);
		return;
	}
	mod = PyImport_ImportModule("traceback");
	if (mod) {
		PyObject *lines = PyObject_CallMethod(mod, "format_exception", "OOO", type,
		                                      exc, tb ? tb : Py_None);

		if (lines) {
			PyObject *empty = PyUnicode_FromString("");

			if (empty)
				text = PyUnicode_Join(empty, lines);
			Py_XDECREF(empty);
			Py_DECREF(lines);
		}
		Py_DECREF(mod);
	}
	if (!text)
		text = PyObject_Str(exc);
	if (text)
		s = PyUnicode_AsUTF8(text);
	PyErr_Clear();
	h->log(FP_LOG_ERROR, "%s: %s", what, s ? s : "(unprintable exception)");
	Py_XDECREF(text);
	Py_XDECREF(tb);
	Py_XDECREF(type);
	Py_DECREF(exc);
}

static bool
pyfp_is_pkgdir(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;

	if (!dir || !*dir ||
	    snprintf(p, sizeof(p), "%s/ctrickle_py/bridge.py", dir) >= (int)sizeof(p))
		return false;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Finds the directory that holds our Python packages (ctrickle_py, pytrickle):
 * $CT_PYTHON_DIR, then relative to this .so (build/plugins -> ../../python,
 * build/NAME/plugins -> ../../../python, installed lib/ctrickle/plugins ->
 * ../python), then the source tree the plugin was built from. 0 or -ENOENT.
 */
static int
pyfp_find_pkgdir(char *out, size_t len)
{
	static const char *const rel[] = { "/../../python", "/../../../python", "/../python" };
	const char *env = getenv("CT_PYTHON_DIR");
	char self[PATH_MAX], cand[PATH_MAX];
	Dl_info di;

	if (pyfp_is_pkgdir(env)) {
		snprintf(out, len, "%s", env);
		return 0;
	}
	if (dladdr((void *)pyfp_find_pkgdir, &di) && di.dli_fname &&
	    realpath(di.dli_fname, self)) {
		char *slash = strrchr(self, '/');

		if (slash)
			*slash = '\0';
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(cand, sizeof(cand), "%s%s", self, rel[i]);
			if (pyfp_is_pkgdir(cand) && realpath(cand, out))
				return 0;
		}
	}
	if (pyfp_is_pkgdir(CT_PY_SRCDIR)) {
		snprintf(out, len, "%s", CT_PY_SRCDIR);
		return 0;
	}
	return -ENOENT;
}

/*
 * The worker opens plugins RTLD_LOCAL, so libpython (our dependency) is local
 * too, and extension modules (numpy, torch) that expect the interpreter's
 * symbols in the global scope would fail to load. Re-open the very libpython
 * we are linked to with RTLD_GLOBAL (RTLD_NOLOAD: no second copy). The handle
 * is kept for the life of the process: an interpreter is never unloaded.
 */
static int
pyfp_promote_libpython(const struct fp_host *h)
{
	Dl_info di;
	void *dl;

	if (!dladdr((void *)Py_InitializeFromConfig, &di) || !di.dli_fname) {
		h->log(FP_LOG_ERROR, "python: cannot locate libpython");
		return -ENOENT;
	}
	dl = dlopen(di.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
	if (!dl) {
		h->log(FP_LOG_ERROR, "python: dlopen(%s, RTLD_GLOBAL): %s", di.dli_fname,
		       dlerror());
		return -ENOEXEC;
	}
	h->log(FP_LOG_DEBUG, "python: %s global", di.dli_fname);
	return 0;
}

/*
 * Starts the interpreter: no signal handlers of its own (SIGTERM and SIGINT
 * stay the worker's), the build's python executable as program name (so the
 * stdlib and dist-packages of that Python are found, whatever `python3` is on
 * PATH; CT_PYTHON_EXE overrides), environment variables honoured.
 */
static int
pyfp_start_interpreter(const struct fp_host *h)
{
	const char *exe = getenv("CT_PYTHON_EXE");
	PyConfig cfg;
	PyStatus st;

	if (PyImport_AppendInittab("_ctrickle", pyfp_mod_init) < 0)
		return -ENOMEM;
	PyConfig_InitPythonConfig(&cfg);
	cfg.install_signal_handlers = 0;
	cfg.parse_argv = 0;
	cfg.write_bytecode = 0; /* no __pycache__ in source trees or examples */
	st = PyConfig_SetBytesString(&cfg, &cfg.program_name, exe && *exe ? exe : PYFP_EXE);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&cfg);
	PyConfig_Clear(&cfg);
	if (PyStatus_Exception(st)) {
		h->log(FP_LOG_ERROR, "python: interpreter did not start: %s",
		       st.err_msg ? st.err_msg : "unknown error");
		return -EINVAL;
	}
	return 0;
}

static void
pyfp_clear(struct pyfp *p)
{
	Py_CLEAR(p->p_video);
	Py_CLEAR(p->p_audio);
	Py_CLEAR(p->p_params);
	Py_CLEAR(p->p_start);
	Py_CLEAR(p->p_stop);
	Py_CLEAR(p->p_bridge);
}

/*
 * With the GIL held: sys.path[0] = pkgdir, _ctrickle gets the host, then
 * ctrickle_py.bridge.Bridge(config_json) imports the user's module, builds the
 * processor and runs its load_model. Returns 0 or -EINVAL (logged).
 */
static int
pyfp_load(struct pyfp *p, const char *pkgdir, const char *config_json)
{
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	PyObject *dir = NULL, *mod = NULL, *bmod = NULL, *cls = NULL;
	struct pyfp_mod *st;
	int rc = -EINVAL;

	dir = PyUnicode_DecodeFSDefault(pkgdir);
	if (!path || !dir || PyList_Insert(path, 0, dir) < 0)
		goto out;
	mod = PyImport_ImportModule("_ctrickle");
	if (!mod || !(st = PyModule_GetState(mod)))
		goto out;
	st->m_host = p->p_host;
	bmod = PyImport_ImportModule("ctrickle_py.bridge");
	if (!bmod || !(cls = PyObject_GetAttrString(bmod, "Bridge")))
		goto out;
	p->p_bridge = PyObject_CallFunction(cls, "s", config_json);
	if (!p->p_bridge)
		goto out;
	p->p_video = PyObject_GetAttrString(p->p_bridge, "video");
	p->p_audio = PyObject_GetAttrString(p->p_bridge, "audio");
	p->p_params = PyObject_GetAttrString(p->p_bridge, "update_params");
	p->p_start = PyObject_GetAttrString(p->p_bridge, "stream_start");
	p->p_stop = PyObject_GetAttrString(p->p_bridge, "stream_stop");
	if (!p->p_video || !p->p_audio || !p->p_params || !p->p_start || !p->p_stop)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		pyfp_log_exception(p->p_host, "python: processor not loaded");
		pyfp_clear(p);
	}
	Py_XDECREF(cls);
	Py_XDECREF(bmod);
	Py_XDECREF(mod);
	Py_XDECREF(dir);
	return rc;
}

static int
pyfp_init(const struct fp_host *host, const char *config_json, void **self)
{
	char pkgdir[PATH_MAX];
	struct pyfp *p;
	int rc;

	if (Py_IsInitialized()) {
		host->log(FP_LOG_ERROR, "python: one interpreter per worker process");
		return -EBUSY;
	}
	if (pyfp_find_pkgdir(pkgdir, sizeof(pkgdir)) < 0) {
		host->log(FP_LOG_ERROR, "python: package dir (ctrickle_py) not found; "
		          "set CT_PYTHON_DIR");
		return -ENOENT;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->p_host = host;
	rc = pyfp_promote_libpython(host);
	if (rc < 0)
		goto err_free;
	rc = pyfp_start_interpreter(host);
	if (rc < 0)
		goto err_free;
	rc = pyfp_load(p, pkgdir, config_json);
	if (rc < 0)
		goto err_finalize;
	host->log(FP_LOG_INFO, "python: processor loaded python=%s pkgdir=%s",
	          Py_GetVersion(), pkgdir);
	p->p_ts = PyEval_SaveThread();
	*self = p;
	return FP_OK;

err_finalize:
	Py_FinalizeEx();
err_free:
	free(p);
	return rc;
}

static void
pyfp_fini(void *self)
{
	struct pyfp *p = self;

	if (!p)
		return;
	PyEval_RestoreThread(p->p_ts);
	if (p->p_bridge) {
		PyObject *r = PyObject_CallMethod(p->p_bridge, "close", NULL);

		if (!r)
			pyfp_log_exception(p->p_host, "python: close failed");
		Py_XDECREF(r);
	}
	pyfp_clear(p);
	if (Py_FinalizeEx() < 0)
		p->p_host->log(FP_LOG_WARN, "python: finalization reported an error");
	free(p);
}

/*
 * Calls fn(args...) built from fmt with the GIL held. Returns its integer
 * result (a bad result or an exception from the bridge itself, not from the
 * user's code, which the bridge handles: logged, `fallback`).
 */
static int
pyfp_call_int(struct pyfp *p, PyObject *fn, int fallback, const char *what,
              PyObject *args)
{
	PyObject *r;
	long v = fallback;

	if (!args) {
		pyfp_log_exception(p->p_host, what);
		return fallback;
	}
	r = PyObject_Call(fn, args, NULL);
	if (!r) {
		pyfp_log_exception(p->p_host, what);
		return fallback;
	}
	if (PyLong_Check(r))
		v = PyLong_AsLong(r);
	Py_DECREF(r);
	if (PyErr_Occurred()) {
		pyfp_log_exception(p->p_host, what);
		v = fallback;
	}
	return (int)v;
}

static int
pyfp_stream_start(void *self, const char *params_json, size_t len)
{
	struct pyfp *p = self;
	PyGILState_STATE g = PyGILState_Ensure();
	int rc;

	rc = pyfp_call_int(p, p->p_start, -EIO, "python: stream_start",
	                   Py_BuildValue("(s#)", params_json, (Py_ssize_t)len));
	PyGILState_Release(g);
	return rc;
}

static void
pyfp_stream_stop(void *self)
{
	struct pyfp *p = self;
	PyGILState_STATE g = PyGILState_Ensure();

	pyfp_call_int(p, p->p_stop, 0, "python: stream_stop", PyTuple_New(0));
	PyGILState_Release(g);
}

static int
pyfp_update_params(void *self, const char *params_json, size_t len)
{
	struct pyfp *p = self;
	PyGILState_STATE g = PyGILState_Ensure();
	int rc;

	rc = pyfp_call_int(p, p->p_params, -EIO, "python: update_params",
	                   Py_BuildValue("(s#)", params_json, (Py_ssize_t)len));
	PyGILState_Release(g);
	return rc;
}

/*
 * A video frame: memoryviews over the input and output slots (no copy) go to
 * Bridge.video, which returns FP_OK/FP_DROP/FP_PASS, or (FP_OK, width,
 * height) for an output of another size written packed at plane[0]. The
 * views are released after the call: Python must not keep them (the bridge's
 * float tensor is a copy; the uint8 fast path is a view, see docs/python.md).
 */
static int
pyfp_process_video(void *self, const struct fp_video_frame *in,
                   struct fp_video_frame *out)
{
	struct pyfp *p = self;
	PyGILState_STATE g = PyGILState_Ensure();
	size_t in_bytes = (size_t)in->stride[0] * in->height;
	size_t out_bytes = (size_t)out->stride[0] * out->height;
	size_t cap = (size_t)out->max_width * out->max_height * 3;
	PyObject *vin = NULL, *vout = NULL, *args = NULL, *r = NULL;
	int rc = FP_PASS;

	if (in->format != FP_FMT_RGB24 || in->mem != FP_MEM_HOST)
		goto out; /* wants says RGB24 on the host; never otherwise */
	if (cap < out_bytes)
		cap = out_bytes;
	vin = PyMemoryView_FromMemory((char *)in->plane[0], (Py_ssize_t)in_bytes, PyBUF_WRITE);
	vout = PyMemoryView_FromMemory((char *)out->plane[0], (Py_ssize_t)cap, PyBUF_WRITE);
	if (!vin || !vout)
		goto err_log;
	args = Py_BuildValue("(OOIIIIIILIIK)", vin, vout, in->width, in->height,
	                     in->stride[0], out->stride[0], out->max_width,
	                     out->max_height, (long long)in->pts, in->tb_num, in->tb_den,
	                     (unsigned long long)in->seq);
	if (!args || !(r = PyObject_Call(p->p_video, args, NULL)))
		goto err_log;
	if (PyLong_Check(r)) {
		rc = (int)PyLong_AsLong(r);
	} else if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 3) {
		long w = PyLong_AsLong(PyTuple_GET_ITEM(r, 1));
		long h = PyLong_AsLong(PyTuple_GET_ITEM(r, 2));

		rc = (int)PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
		if (rc == FP_OK && w > 0 && h > 0 && (size_t)w * (size_t)h * 3 <= cap) {
			out->width = (uint32_t)w;
			out->height = (uint32_t)h;
			out->stride[0] = (uint32_t)w * 3;
		} else {
			rc = FP_PASS;
		}
	}
	if (PyErr_Occurred())
		goto err_log;
	if (rc != FP_OK && rc != FP_DROP && rc != FP_PASS)
		rc = FP_PASS;
	goto out;
err_log:
	pyfp_log_exception(p->p_host, "python: video bridge failed (frame passed through)");
	rc = FP_PASS;
out:
	Py_XDECREF(r);
	Py_XDECREF(args);
	if (vin) {
		PyObject *x = PyObject_CallMethod(vin, "release", NULL);

		if (!x)
			PyErr_Clear(); /* still exported: the bridge keeps no views */
		Py_XDECREF(x);
		Py_DECREF(vin);
	}
	if (vout) {
		PyObject *x = PyObject_CallMethod(vout, "release", NULL);

		if (!x)
			PyErr_Clear();
		Py_XDECREF(x);
		Py_DECREF(vout);
	}
	PyGILState_Release(g);
	return rc;
}

static const char *const pyfp_sample_names[FP_SAMPLE_COUNT] = {
	[FP_SAMPLE_S16] = "s16", [FP_SAMPLE_FLT] = "flt",
	[FP_SAMPLE_FLTP] = "fltp", [FP_SAMPLE_S16P] = "s16p",
};

/*
 * An audio frame (only in the audio table): Bridge.audio gets the samples as
 * bytes-like views and returns FP_PASS, FP_DROP, or (FP_OK, nb_samples) after
 * writing interleaved/planar samples of the input's format into `out`.
 */
static int
pyfp_process_audio(void *self, const struct fp_audio_frame *in,
                   struct fp_audio_frame *out)
{
	struct pyfp *p = self;
	PyGILState_STATE g;
	bool planar = in->format == FP_SAMPLE_FLTP || in->format == FP_SAMPLE_S16P;
	size_t bps = (in->format == FP_SAMPLE_S16 || in->format == FP_SAMPLE_S16P) ? 2 : 4;
	size_t bytes = (size_t)in->nb_samples * in->channels * bps;
	PyObject *vin = NULL, *vout = NULL, *args = NULL, *r = NULL;
	int rc = FP_PASS;

	if (in->format >= FP_SAMPLE_COUNT || in->channels == 0 || in->channels > 8)
		return FP_PASS;
	g = PyGILState_Ensure();
	if (planar) {
		/* Planar planes need not be contiguous: gather them into one bytes. */
		size_t plane = (size_t)in->nb_samples * bps;

		vin = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)bytes);
		if (vin)
			for (uint32_t c = 0; c < in->channels; c++)
				memcpy(PyBytes_AS_STRING(vin) + c * plane, in->data[c], plane);
	} else {
		vin = PyMemoryView_FromMemory((char *)in->data[0], (Py_ssize_t)bytes, PyBUF_READ);
	}
	vout = PyMemoryView_FromMemory((char *)out->data[0], (Py_ssize_t)out->capacity,
	                               PyBUF_WRITE);
	if (!vin || !vout)
		goto err_log;
	args = Py_BuildValue("(OOsIIILII)", vin, vout, pyfp_sample_names[in->format],
	                     in->channels, in->sample_rate, in->nb_samples,
	                     (long long)in->pts, in->tb_num, in->tb_den);
	if (!args || !(r = PyObject_Call(p->p_audio, args, NULL)))
		goto err_log;
	if (PyLong_Check(r)) {
		rc = (int)PyLong_AsLong(r);
	} else if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
		long n = PyLong_AsLong(PyTuple_GET_ITEM(r, 1));

		rc = FP_PASS;
		if (n > 0 && (size_t)n * in->channels * bps <= out->capacity) {
			out->nb_samples = (uint32_t)n;
			out->format = in->format;
			out->channels = in->channels;
			out->sample_rate = in->sample_rate;
			if (planar)
				for (uint32_t c = 0; c < in->channels; c++)
					out->data[c] = out->data[0] + (size_t)c * n * bps;
			rc = FP_OK;
		}
	}
	if (PyErr_Occurred())
		goto err_log;
	if (rc != FP_OK && rc != FP_DROP && rc != FP_PASS)
		rc = FP_PASS;
	goto out;
err_log:
	pyfp_log_exception(p->p_host, "python: audio bridge failed (frame passed through)");
	rc = FP_PASS;
out:
	Py_XDECREF(r);
	Py_XDECREF(args);
	Py_XDECREF(vin);
	if (vout) {
		PyObject *x = PyObject_CallMethod(vout, "release", NULL);

		if (!x)
			PyErr_Clear();
		Py_XDECREF(x);
		Py_DECREF(vout);
	}
	PyGILState_Release(g);
	return rc;
}

/*
 * Two tables: process_audio is decided before init (HELLO carries the
 * capability), so it cannot depend on the processor class. By default audio
 * goes around the worker; CT_PYTHON_AUDIO=1 in the worker's environment
 * selects the table that routes audio through process_audio_async.
 */
static const struct fp_plugin pyfp_table = {
	FP_PLUGIN_HEADER("python", "1.0"),
	.wants = { .video_format = FP_FMT_RGB24, .video_mem = FP_MEM_HOST },
	.init = pyfp_init,
	.fini = pyfp_fini,
	.process_video = pyfp_process_video,
	.update_params = pyfp_update_params,
	.stream_start = pyfp_stream_start,
	.stream_stop = pyfp_stream_stop,
};

static const struct fp_plugin pyfp_table_audio = {
	FP_PLUGIN_HEADER("python", "1.0"),
	.wants = { .video_format = FP_FMT_RGB24, .video_mem = FP_MEM_HOST },
	.init = pyfp_init,
	.fini = pyfp_fini,
	.process_video = pyfp_process_video,
	.process_audio = pyfp_process_audio,
	.update_params = pyfp_update_params,
	.stream_start = pyfp_stream_start,
	.stream_stop = pyfp_stream_stop,
};

FP_EXPORT const struct fp_plugin *fp_plugin_entry(void);

FP_EXPORT const struct fp_plugin *
fp_plugin_entry(void)
{
	const char *a = getenv("CT_PYTHON_AUDIO");

	return a && strcmp(a, "1") == 0 ? &pyfp_table_audio : &pyfp_table;
}
