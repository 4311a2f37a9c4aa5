/*
 * Prometheus registry: families and their series in lists under one mutex
 * (lookups and rendering), values in relaxed atomics (updates from any
 * thread without the lock). Text format 0.0.4.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double metrics_latency_ms_buckets[] = {
	1, 2, 5, 10, 20, 33, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000,
};
const size_t metrics_latency_ms_nbuckets =
	sizeof(metrics_latency_ms_buckets) / sizeof(metrics_latency_ms_buckets[0]);

struct metrics_series {
	struct metrics_series *next;
	metrics_family *family;
	char *values[METRICS_MAX_LABELS];
	_Atomic uint64_t value;  /* counter: count; gauge: bits of a double */
	_Atomic uint64_t sum;    /* histogram: bits of a double */
	_Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* not cumulative */
};

struct metrics_family {
	struct metrics_family *next;
	metrics *owner;
	enum metrics_type type;
	char *name, *help;
	char *labels[METRICS_MAX_LABELS];
	size_t nlabels;
	double bounds[METRICS_MAX_BUCKETS];
	size_t nbounds;
	struct metrics_series *series, **series_tail;
};

struct metrics {
	pthread_mutex_t lock;
	struct metrics_family *families, **families_tail;
};

static uint64_t
metrics_d2u(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof(u));
	return u;
}

static double
metrics_u2d(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

int
metrics_create(metrics **out)
{
	metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->families_tail = &m->families;
	*out = m;
	return 0;
}

static void
metrics_series_free(struct metrics_series *s)
{
	for (size_t i = 0; i < METRICS_MAX_LABELS; i++)
		free(s->values[i]);
	free(s);
}

static void
metrics_family_free(struct metrics_family *f)
{
	struct metrics_series *s, *n;

	for (s = f->series; s; s = n) {
		n = s->next;
		metrics_series_free(s);
	}
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
}

void
metrics_destroy(metrics **p)
{
	metrics *m;
	struct metrics_family *f, *n;

	if (!p || !(m = *p))
		return;
	for (f = m->families; f; f = n) {
		n = f->next;
		metrics_family_free(f);
	}
	pthread_mutex_destroy(&m->lock);
	free(m);
	*p = NULL;
}

static bool
metrics_valid_name(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

/* Splits "a,b" into f->labels. */
static int
metrics_parse_labels(struct metrics_family *f, const char *labels)
{
	const char *p = labels, *comma;
	size_t len;

	if (!labels || !*labels)
		return 0;
	for (;;) {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (!metrics_valid_name(p, len) || f->nlabels == METRICS_MAX_LABELS ||
		    (len == 2 && !strncmp(p, "le", 2)))
			return -EINVAL;
		if (!(f->labels[f->nlabels] = strndup(p, len)))
			return -ENOMEM;
		f->nlabels++;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static bool
metrics_same_labels(const struct metrics_family *a, const struct metrics_family *b)
{
	if (a->nlabels != b->nlabels)
		return false;
	for (size_t i = 0; i < a->nlabels; i++)
		if (strcmp(a->labels[i], b->labels[i]))
			return false;
	return true;
}

int
metrics_family_add(metrics *m, metrics_family **out, enum metrics_type type,
                   const char *name, const char *help, const char *labels,
                   const double *bounds, size_t nbounds)
{
	struct metrics_family *f, *e;
	bool prefixed;
	int rc;

	if (!m || !name || !metrics_valid_name(name, strlen(name)))
		return -EINVAL;
	if (type == METRICS_HISTOGRAM) {
		if (!bounds || nbounds == 0 || nbounds > METRICS_MAX_BUCKETS)
			return -EINVAL;
		for (size_t i = 0; i < nbounds; i++)
			if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
				return -EINVAL;
	} else if (nbounds) {
		return -EINVAL;
	}
	if (!(f = calloc(1, sizeof(*f))))
		return -ENOMEM;
	f->owner = m;
	f->type = type;
	f->series_tail = &f->series;
	prefixed = !strncmp(name, METRICS_PREFIX, strlen(METRICS_PREFIX));
	if (asprintf(&f->name, "%s%s", prefixed ? "" : METRICS_PREFIX, name) < 0) {
		f->name = NULL;
		rc = -ENOMEM;
		goto err_free;
	}
	if (!(f->help = strdup(help ? help : ""))) {
		rc = -ENOMEM;
		goto err_free;
	}
	if ((rc = metrics_parse_labels(f, labels)) < 0)
		goto err_free;
	if (type == METRICS_HISTOGRAM) {
		memcpy(f->bounds, bounds, nbounds * sizeof(double));
		f->nbounds = nbounds;
	}
	if (f->nlabels == 0) {
		/* A family without labels has its one series from the start. */
		if (!(f->series = calloc(1, sizeof(*f->series)))) {
			rc = -ENOMEM;
			goto err_free;
		}
		f->series->family = f;
		f->series_tail = &f->series->next;
	}
	pthread_mutex_lock(&m->lock);
	for (e = m->families; e; e = e->next) {
		if (strcmp(e->name, f->name))
			continue;
		rc = (e->type == type && metrics_same_labels(e, f)) ? 0 : -EINVAL;
		pthread_mutex_unlock(&m->lock);
		metrics_family_free(f);
		if (rc == 0 && out)
			*out = e;
		return rc;
	}
	*m->families_tail = f;
	m->families_tail = &f->next;
	pthread_mutex_unlock(&m->lock);
	if (out)
		*out = f;
	return 0;
err_free:
	metrics_family_free(f);
	return rc;
}

static bool
metrics_series_match(const struct metrics_series *s, size_t n,
                     const char *const *values)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->values[i], values[i] ? values[i] : ""))
			return false;
	return true;
}

metrics_series *
metrics_series_get(metrics_family *f, const char *const *values)
{
	struct metrics_series *s;

	if (!f || (f->nlabels && !values))
		return NULL;
	pthread_mutex_lock(&f->owner->lock);
	for (s = f->series; s; s = s->next)
		if (metrics_series_match(s, f->nlabels, values))
			goto out;
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->family = f;
	for (size_t i = 0; i < f->nlabels; i++) {
		if (!(s->values[i] = strdup(values[i] ? values[i] : ""))) {
			metrics_series_free(s);
			s = NULL;
			goto out;
		}
	}
	*f->series_tail = s;
	f->series_tail = &s->next;
out:
	pthread_mutex_unlock(&f->owner->lock);
	return s;
}

int
metrics_series_remove(metrics_family *f, const char *const *values)
{
	struct metrics_series **pp, *s;

	if (!f || (f->nlabels && !values))
		return -EINVAL;
	pthread_mutex_lock(&f->owner->lock);
	for (pp = &f->series; (s = *pp); pp = &s->next) {
		if (!metrics_series_match(s, f->nlabels, values))
			continue;
		*pp = s->next;
		if (f->series_tail == &s->next)
			f->series_tail = pp;
		pthread_mutex_unlock(&f->owner->lock);
		metrics_series_free(s);
		return 0;
	}
	pthread_mutex_unlock(&f->owner->lock);
	return -ENOENT;
}

void
metrics_counter_add(metrics_series *s, uint64_t n)
{
	if (s && s->family->type == METRICS_COUNTER)
		atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void
metrics_gauge_set(metrics_series *s, double v)
{
	if (s && s->family->type == METRICS_GAUGE)
		atomic_store_explicit(&s->value, metrics_d2u(v), memory_order_relaxed);
}

/* Adds delta to the double stored in *a, by compare-and-swap. */
static void
metrics_atomic_fadd(_Atomic uint64_t *a, double delta)
{
	uint64_t old = atomic_load_explicit(a, memory_order_relaxed);

	while (!atomic_compare_exchange_weak_explicit(a, &old,
			metrics_d2u(metrics_u2d(old) + delta),
			memory_order_relaxed, memory_order_relaxed))
		;
}

void
metrics_gauge_add(metrics_series *s, double delta)
{
	if (s && s->family->type == METRICS_GAUGE)
		metrics_atomic_fadd(&s->value, delta);
}

void
metrics_observe(metrics_series *s, double v)
{
	const struct metrics_family *f;
	size_t i;

	if (!s || s->family->type != METRICS_HISTOGRAM || isnan(v))
		return;
	f = s->family;
	for (i = 0; i < f->nbounds && v > f->bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	metrics_atomic_fadd(&s->sum, v);
}

double
metrics_value(const metrics_series *s)
{
	uint64_t u;

	if (!s)
		return 0;
	u = atomic_load_explicit(&((metrics_series *)s)->value, memory_order_relaxed);
	return s->family->type == METRICS_GAUGE ? metrics_u2d(u) : (double)u;
}

static void
metrics_put_double(FILE *o, double v)
{
	if (isnan(v))
		fputs("NaN", o);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", o);
	else
		fprintf(o, "%.17g", v);
}

/* Writes a label value or help text with the escapes of the text format. */
static void
metrics_put_escaped(FILE *o, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", o);
		else if (*s == '\n')
			fputs("\\n", o);
		else if (quote && *s == '"')
			fputs("\\\"", o);
		else
			fputc(*s, o);
	}
}

/* Writes {a="x",b="y"[,le="..."]}; nothing when there are no labels. */
static void
metrics_put_labels(FILE *o, const struct metrics_series *s, const char *le)
{
	const struct metrics_family *f = s->family;

	if (!f->nlabels && !le)
		return;
	fputc('{', o);
	for (size_t i = 0; i < f->nlabels; i++) {
		fprintf(o, "%s%s=\"", i ? "," : "", f->labels[i]);
		metrics_put_escaped(o, s->values[i], true);
		fputc('"', o);
	}
	if (le)
		fprintf(o, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	fputc('}', o);
}

static void
metrics_put_histogram(FILE *o, const struct metrics_series *s)
{
	const struct metrics_family *f = s->family;
	uint64_t cum = 0;
	char le[40];

	for (size_t i = 0; i <= f->nbounds; i++) {
		cum += atomic_load_explicit(&((struct metrics_series *)s)->buckets[i],
		                            memory_order_relaxed);
		if (i < f->nbounds)
			snprintf(le, sizeof(le), "%.17g", f->bounds[i]);
		else
			strcpy(le, "+Inf");
		fprintf(o, "%s_bucket", f->name);
		metrics_put_labels(o, s, le);
		fprintf(o, " %llu\n", (unsigned long long)cum);
	}
	fprintf(o, "%s_sum", f->name);
	metrics_put_labels(o, s, NULL);
	fputc(' ', o);
	metrics_put_double(o, metrics_u2d(atomic_load_explicit(
		&((struct metrics_series *)s)->sum, memory_order_relaxed)));
	fprintf(o, "\n%s_count", f->name);
	metrics_put_labels(o, s, NULL);
	fprintf(o, " %llu\n", (unsigned long long)cum);
}

int
metrics_render(metrics *m, char **out, size_t *len)
{
	static const char *const tname[] = { "counter", "gauge", "histogram" };
	struct metrics_family *f;
	struct metrics_series *s;
	FILE *o;

	*out = NULL;
	*len = 0;
	o = open_memstream(out, len);
	if (!o)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	for (f = m->families; f; f = f->next) {
		fprintf(o, "# HELP %s ", f->name);
		metrics_put_escaped(o, f->help, false);
		fprintf(o, "\n# TYPE %s %s\n", f->name, tname[f->type]);
		for (s = f->series; s; s = s->next) {
			if (f->type == METRICS_HISTOGRAM) {
				metrics_put_histogram(o, s);
				continue;
			}
			fputs(f->name, o);
			metrics_put_labels(o, s, NULL);
			fputc(' ', o);
			if (f->type == METRICS_COUNTER)
				fprintf(o, "%llu", (unsigned long long)atomic_load_explicit(
					&s->value, memory_order_relaxed));
			else
				metrics_put_double(o, metrics_u2d(atomic_load_explicit(
					&s->value, memory_order_relaxed)));
			fputc('\n', o);
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (fclose(o) != 0 || !*out) {
		free(*out);
		*out = NULL;
		*len = 0;
		return -ENOMEM;
	}
	return 0;
}
