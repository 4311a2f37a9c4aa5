/*
 * libFuzzer target for gateway/params.c: runs both body parsers over the
 * input; checks that failures explain themselves in ASCII and that the
 * params JSON handed to plugins is itself a valid params body.
 */
#include "gateway/params.h"

#include <stdlib.h>
#include <string.h>

static void
params_fuzz_check_err(const char *err)
{
	size_t i;

	if (!err[0])
		abort();
	for (i = 0; err[i]; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
			abort();
}

static void
params_fuzz_same(const struct params_values *v, const struct params_values *w)
{
	if (w->json_len != v->json_len || memcmp(w->json, v->json, v->json_len) ||
	    w->has_size != v->has_size || w->width != v->width ||
	    w->height != v->height ||
	    w->has_max_framerate != v->has_max_framerate ||
	    w->max_framerate != v->max_framerate ||
	    w->has_detect_out_resolution != v->has_detect_out_resolution ||
	    w->detect_out_resolution != v->detect_out_resolution || w->has_load_model)
		abort();
}

/* The normalised JSON must parse again to the same normalised JSON. */
static void
params_fuzz_reparse(const struct params_values *v)
{
	struct params_values again;
	char err[PARAMS_ERR_LEN];

	if (v->json_len > PARAMS_MAX_BODY)
		return;
	if (params_parse_update(v->json, v->json_len, &again, err, sizeof(err)))
		abort();
	params_fuzz_same(v, &again);
	params_values_clear(&again);
}

/* Start params: show_loading is passed through there, so reparse as start. */
static void
params_fuzz_reparse_start(const struct params_values *v)
{
	static const char head[] = "{\"gateway_request_id\":\"x\",\"params\":";
	struct params_start *s;
	char err[PARAMS_ERR_LEN];
	size_t n = sizeof(head) - 1 + v->json_len + 1;
	char *b;

	if (n > PARAMS_MAX_BODY)
		return;
	b = malloc(n);
	if (!b)
		abort();
	memcpy(b, head, sizeof(head) - 1);
	memcpy(b + sizeof(head) - 1, v->json, v->json_len);
	b[n - 1] = '}';
	if (params_parse_start(b, n, &s, err, sizeof(err)))
		abort();
	params_fuzz_same(v, &s->params);
	params_start_destroy(&s);
	free(b);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[PARAMS_ERR_LEN];
	struct params_start *s = NULL;
	struct params_values v;
	char *body;

	/* an exact-size copy: any read past len is an ASan report */
	body = malloc(size ? size : 1);
	if (!body)
		abort();
	memcpy(body, data, size);

	err[0] = 0;
	if (params_parse_start(body, size, &s, err, sizeof(err)) == 0) {
		if (!s || !s->request_id || !s->request_id[0] || !s->params.json)
			abort();
		params_fuzz_reparse_start(&s->params);
		params_start_destroy(&s);
	} else {
		if (s)
			abort();
		params_fuzz_check_err(err);
	}

	err[0] = 0;
	if (params_parse_update(body, size, &v, err, sizeof(err)) == 0) {
		if (v.has_load_model && strstr(v.json, "\"load_model\":") == v.json + 1)
			abort();
		params_fuzz_reparse(&v);
		params_values_clear(&v);
	} else {
		params_fuzz_check_err(err);
	}
	free(body);
	return 0;
}
