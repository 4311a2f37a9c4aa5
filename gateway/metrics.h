/*
 * A small Prometheus registry: counters, gauges and histograms with fixed
 * buckets, each family with up to METRICS_MAX_LABELS label names (stream,
 * worker, ...), rendered as Prometheus text (format 0.0.4). Names get the
 * "ctrickle_" prefix. Owns the values only; what is measured is the callers'.
 */
#ifndef CT_METRICS_H
#define CT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_LABELS  3
#define METRICS_MAX_BUCKETS 24
#define METRICS_PREFIX      "ctrickle_"
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct metrics metrics;
typedef struct metrics_family metrics_family;
typedef struct metrics_series metrics_series;

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/* Latency buckets in milliseconds, for histograms of frame times. */
extern const double metrics_latency_ms_buckets[];
extern const size_t metrics_latency_ms_nbuckets;

/* Creates an empty registry. Returns 0 or -ENOMEM. */
int metrics_create(metrics **out);

/* Frees the registry, its families and series (NULL-safe; sets *p = NULL).
 * No thread may update a series of it any more. */
void metrics_destroy(metrics **p);

/*
 * Adds a family (or returns the existing one of the same name and type).
 * name: [a-zA-Z_][a-zA-Z0-9_]*; METRICS_PREFIX is prepended unless present.
 * labels: comma-separated label names ("stream,worker"), or NULL/"" for none.
 * bounds: the upper bounds of a histogram's buckets, strictly increasing
 * (+Inf is implicit); NULL/0 for other types. help is copied.
 * Returns 0, -EINVAL (bad name, labels or bounds; a name already used with
 * another type or labels), or -ENOMEM. Any thread (takes the registry lock).
 */
int metrics_family_add(metrics *m, metrics_family **out, enum metrics_type type,
                       const char *name, const char *help, const char *labels,
                       const double *bounds, size_t nbounds);

/*
 * The series of family f for the label values (as many as the family has
 * label names; NULL for a family without labels), created at zero on first
 * use. Values are copied. The pointer stays valid until metrics_series_remove
 * of the same values or metrics_destroy. Returns NULL on OOM or a NULL f.
 * Any thread (takes the registry lock: look a series up once, then keep it).
 */
metrics_series *metrics_series_get(metrics_family *f, const char *const *values);

/*
 * Drops the series of these label values (e.g. when a stream ends), so it is
 * no longer rendered. The caller guarantees no thread still updates it.
 * Returns 0 or -ENOENT.
 */
int metrics_series_remove(metrics_family *f, const char *const *values);

/*
 * Updates. Lock-free (relaxed atomics), callable from any thread, NULL-safe so
 * that a failed lookup costs nothing. counter_add on a counter, gauge_* on a
 * gauge, observe on a histogram; a call on the wrong type is ignored.
 */
void metrics_counter_add(metrics_series *s, uint64_t n);
void metrics_gauge_set(metrics_series *s, double v);
void metrics_gauge_add(metrics_series *s, double delta);
void metrics_observe(metrics_series *s, double v);

/* Current value of a counter or gauge (tests, status pages). 0 for NULL. */
double metrics_value(const metrics_series *s);

/*
 * Renders every family in the order added, as Prometheus text, into a new
 * NUL-terminated string *out (free() it) of *len bytes. A family with labels
 * but no series yet gets only its HELP and TYPE lines. Returns 0 or -ENOMEM.
 * Takes the registry lock; meant for the loop thread (GET /metrics).
 */
int metrics_render(metrics *m, char **out, size_t *len);

#endif
