/*
 * Tests of gateway/metrics: text exposition of counters, gauges and
 * histograms with labels, escaping, series removal, bad names, and exact
 * totals under concurrent updates from several threads.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>

#include "clock.h"
#include "gateway/metrics.h"

static char *
render(metrics *m)
{
	char *out;
	size_t len;

	CHECK_OK(metrics_render(m, &out, &len));
	CHECK_EQ(strlen(out), len);
	return out;
}

static void
metrics_text_format(void)
{
	metrics *m;
	metrics_family *fc, *fg, *fu, *again;
	const char *v1[] = { "s1", "0" }, *v2[] = { "we\"ird\\\nid", "1" };
	char *t;

	CHECK_OK(metrics_create(&m));
	CHECK_OK(metrics_family_add(m, &fc, METRICS_COUNTER, "frames_in_total",
		"Frames received", "stream,worker", NULL, 0));
	CHECK_OK(metrics_family_add(m, &fg, METRICS_GAUGE, "ctrickle_ring_slots_used",
		"Slots in use", NULL, NULL, 0));
	CHECK_OK(metrics_family_add(m, &fu, METRICS_GAUGE, "workers",
		"Workers by state", "state", NULL, 0));
	CHECK_OK(metrics_family_add(m, &again, METRICS_COUNTER, "frames_in_total",
		"dup", "stream,worker", NULL, 0));
	CHECK(again == fc);
	metrics_counter_add(metrics_series_get(fc, v1), 5);
	metrics_counter_add(metrics_series_get(fc, v1), 2);
	metrics_counter_add(metrics_series_get(fc, v2), 1);
	metrics_gauge_set(metrics_series_get(fg, NULL), 3);
	metrics_gauge_add(metrics_series_get(fg, NULL), -1.5);
	metrics_gauge_set(metrics_series_get(fg, NULL), 1.5);
	CHECK(metrics_value(metrics_series_get(fg, NULL)) == 1.5);
	CHECK(metrics_value(metrics_series_get(fc, v1)) == 7);
	t = render(m);
	CHECK(strstr(t, "# HELP ctrickle_frames_in_total Frames received\n"
		"# TYPE ctrickle_frames_in_total counter\n"
		"ctrickle_frames_in_total{stream=\"s1\",worker=\"0\"} 7\n"
		"ctrickle_frames_in_total{stream=\"we\\\"ird\\\\\\nid\",worker=\"1\"} 1\n"));
	CHECK(strstr(t, "# TYPE ctrickle_ring_slots_used gauge\nctrickle_ring_slots_used 1.5\n"));
	CHECK(strstr(t, "# TYPE ctrickle_workers gauge\n"));
	CHECK(!strstr(t, "ctrickle_workers{"));
	CHECK(!strstr(t, "ctrickle_ctrickle_"));
	free(t);

	CHECK_OK(metrics_series_remove(fc, v1));
	CHECK_EQ(metrics_series_remove(fc, v1), -ENOENT);
	t = render(m);
	CHECK(!strstr(t, "stream=\"s1\""));
	CHECK(strstr(t, "worker=\"1\"} 1\n"));
	free(t);
	/* A new series after removal starts at zero and renders last. */
	metrics_counter_add(metrics_series_get(fc, v1), 1);
	t = render(m);
	CHECK(strstr(t, "ctrickle_frames_in_total{stream=\"s1\",worker=\"0\"} 1\n"));
	free(t);
	metrics_destroy(&m);
	CHECK(m == NULL);
	metrics_destroy(&m);
}

static void
metrics_histogram_buckets(void)
{
	static const double b[] = { 1, 5, 10 };
	metrics *m;
	metrics_family *h;
	metrics_series *s;
	const char *v[] = { "abc" };
	char *t;

	CHECK_OK(metrics_create(&m));
	CHECK_OK(metrics_family_add(m, &h, METRICS_HISTOGRAM, "latency_ms",
		"Added latency", "stream", b, 3));
	s = metrics_series_get(h, v);
	metrics_observe(s, 0.5);
	metrics_observe(s, 1);
	metrics_observe(s, 4);
	metrics_observe(s, 50);
	metrics_counter_add(s, 9); /* wrong type: ignored */
	t = render(m);
	CHECK(strstr(t, "# TYPE ctrickle_latency_ms histogram\n"
		"ctrickle_latency_ms_bucket{stream=\"abc\",le=\"1\"} 2\n"
		"ctrickle_latency_ms_bucket{stream=\"abc\",le=\"5\"} 3\n"
		"ctrickle_latency_ms_bucket{stream=\"abc\",le=\"10\"} 3\n"
		"ctrickle_latency_ms_bucket{stream=\"abc\",le=\"+Inf\"} 4\n"
		"ctrickle_latency_ms_sum{stream=\"abc\"} 55.5\n"
		"ctrickle_latency_ms_count{stream=\"abc\"} 4\n"));
	free(t);
	metrics_destroy(&m);
}

static void
metrics_bad_definitions(void)
{
	static const double up[] = { 1, 2 }, down[] = { 2, 1 };
	metrics *m;
	metrics_family *f;

	CHECK_OK(metrics_create(&m));
	CHECK_EQ(metrics_family_add(m, &f, METRICS_COUNTER, "bad-name", "", NULL, NULL, 0), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_COUNTER, "9x", "", NULL, NULL, 0), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_COUNTER, "x", "", "a,,b", NULL, 0), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_COUNTER, "x", "", "a,b,c,d", NULL, 0), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_HISTOGRAM, "h", "", NULL, down, 2), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_HISTOGRAM, "h", "", NULL, NULL, 0), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_HISTOGRAM, "h", "", "le", up, 2), -EINVAL);
	CHECK_OK(metrics_family_add(m, &f, METRICS_COUNTER, "x", "", "a", NULL, 0));
	CHECK_EQ(metrics_family_add(m, &f, METRICS_GAUGE, "x", "", "a", NULL, 0), -EINVAL);
	CHECK_EQ(metrics_family_add(m, &f, METRICS_COUNTER, "x", "", "b", NULL, 0), -EINVAL);
	CHECK(metrics_series_get(f, NULL) == NULL); /* labels needed */
	CHECK(metrics_series_get(NULL, NULL) == NULL);
	metrics_counter_add(NULL, 1);
	metrics_observe(NULL, 1);
	metrics_destroy(&m);
}

struct hammer {
	metrics_series *c, *g, *h;
	int n;
};

static void *
hammer_thread(void *arg)
{
	struct hammer *hm = arg;

	for (int i = 0; i < hm->n; i++) {
		metrics_counter_add(hm->c, 1);
		metrics_gauge_add(hm->g, 1);
		metrics_observe(hm->h, i % 20);
	}
	return NULL;
}

/* Four threads update the same series; totals are exact. */
static void
metrics_concurrent_updates(void)
{
	enum { T = 4, N = 100000 };
	metrics *m;
	metrics_family *fc, *fg, *fh;
	const char *v[] = { "s", "w" };
	struct hammer hm;
	pthread_t th[T];
	char *t, want[128];
	int64_t t0;

	CHECK_OK(metrics_create(&m));
	CHECK_OK(metrics_family_add(m, &fc, METRICS_COUNTER, "c", "", "stream,worker", NULL, 0));
	CHECK_OK(metrics_family_add(m, &fg, METRICS_GAUGE, "g", "", NULL, NULL, 0));
	CHECK_OK(metrics_family_add(m, &fh, METRICS_HISTOGRAM, "h", "", NULL,
		metrics_latency_ms_buckets, metrics_latency_ms_nbuckets));
	hm.c = metrics_series_get(fc, v);
	hm.g = metrics_series_get(fg, NULL);
	hm.h = metrics_series_get(fh, NULL);
	hm.n = N;
	t0 = clock_now_ns();
	for (int i = 0; i < T; i++)
		CHECK_OK(pthread_create(&th[i], NULL, hammer_thread, &hm));
	for (int i = 0; i < T; i++)
		pthread_join(th[i], NULL);
	printf("  %d updates x3 in %.1f ms (%.0f ns per update set)\n", T * N,
		(clock_now_ns() - t0) / 1e6, (double)(clock_now_ns() - t0) / (T * N));
	CHECK(metrics_value(hm.c) == T * N);
	CHECK(metrics_value(hm.g) == T * N);
	t = render(m);
	snprintf(want, sizeof(want), "ctrickle_h_count %d\n", T * N);
	CHECK(strstr(t, want));
	free(t);
	metrics_destroy(&m);
}

static const struct th_case cases[] = {
	TH_CASE(metrics_text_format),
	TH_CASE(metrics_histogram_buckets),
	TH_CASE(metrics_bad_definitions),
	TH_CASE(metrics_concurrent_updates),
	TH_END,
};

TH_MAIN(cases)
