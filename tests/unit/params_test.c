/*
 * Tests of gateway/params.c: tables of good and bad /stream/params and
 * /stream/start bodies with the exact results and error texts expected,
 * body limits, and ownership of the parsed results.
 */
#include "harness.h"
#include "gateway/params.h"

#include <errno.h>
#include <time.h>

/*
 * One body and what it must give. expect is the normalised params JSON on
 * success, or on failure the exact error text ("~text": a substring of it).
 */
struct row {
	const char *body;
	int rc;
	const char *expect;
};

static void
check_err(const char *body, const char *err, const char *expect)
{
	if (expect[0] == '~')
		CHECK_MSG(strstr(err, expect + 1), "body %s: error \"%s\" lacks \"%s\"",
			  body, err, expect + 1);
	else
		CHECK_MSG(!strcmp(err, expect), "body %s: error \"%s\" != \"%s\"",
			  body, err, expect);
}

static const struct row update_rows[] = {
	{ "{}", 0, "{}" },
	{ "{\"width\":512,\"height\":256}", 0, "{\"width\":512,\"height\":256}" },
	{ "{\"width\":\"512\",\"height\":\" 256\\n\"}", 0,
	  "{\"width\":512,\"height\":256}" },
	{ "{\"width\":\"+64\",\"height\":64.0}", 0, "{\"width\":64,\"height\":64}" },
	{ "{\"width\":7680,\"height\":1}", 0, "{\"width\":7680,\"height\":1}" },
	{ "{\"prompt\":\"cat\",\"height\":\"64\",\"x\":[1,{\"a\":null}],\"width\":8}", 0,
	  "{\"prompt\":\"cat\",\"height\":64,\"x\":[1,{\"a\":null}],\"width\":8}" },
	{ "{\"max_framerate\":\"30\"}", 0, "{\"max_framerate\":30}" },
	{ "{\"max_framerate\":1}", 0, "{\"max_framerate\":1}" },
	{ "{\"max_framerate\":60}", 0, "{\"max_framerate\":60}" },
	{ "{\"detect_out_resolution\":false}", 0, "{\"detect_out_resolution\":false}" },
	{ "{\"detect_out_resolution\":\"YES\"}", 0, "{\"detect_out_resolution\":true}" },
	{ "{\"detect_out_resolution\":\"no\"}", 0, "{\"detect_out_resolution\":false}" },
	{ "{\"detect_out_resolution\":\"1\"}", 0, "{\"detect_out_resolution\":true}" },
	{ "{\"detect_out_resolution\":\"0\"}", 0, "{\"detect_out_resolution\":false}" },
	{ "{\"detect_out_resolution\":5}", 0, "{\"detect_out_resolution\":true}" },
	{ "{\"detect_out_resolution\":0}", 0, "{\"detect_out_resolution\":false}" },
	{ "{\"show_loading\":true}", 0, "{\"show_loading\":true}" },
	{ "{\"show_loading\":\"true\"}", 0, "{\"show_loading\":true}" },
	{ "{\"show_loading\":\"false\"}", 0, "{\"show_loading\":false}" },
	{ "{\"load_model\":true,\"a\":1}", 0, "{\"a\":1}" },
	{ "{\"a\":1,\"load_model\":\"\"}", 0, "{\"a\":1}" },
	{ "{\"prompt\":\"h\\u00e9\",\"n\":-1.5e3,\"b\":null}", 0,
	  "{\"prompt\":\"h\xc3\xa9\",\"n\":-1500.0,\"b\":null}" },
	{ " \n{ \"a\" : [ ] }\n ", 0, "{\"a\":[]}" },
	{ "{\"params\":{\"width\":\"x\"}}", 0, "{\"params\":{\"width\":\"x\"}}" },

	{ "{\"width\":512}", -EINVAL,
	  "width and height must be given together (height is missing)" },
	{ "{\"height\":512}", -EINVAL,
	  "width and height must be given together (width is missing)" },
	{ "{\"width\":\"abc\",\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"abc\"" },
	{ "{\"width\":1,\"height\":\"abc\"}", -EINVAL,
	  "height must be a positive integer, got \"abc\"" },
	{ "{\"width\":0,\"height\":1}", -EINVAL,
	  "width must be a positive integer, got 0" },
	{ "{\"width\":-1,\"height\":1}", -EINVAL,
	  "width must be a positive integer, got -1" },
	{ "{\"width\":\"-5\",\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"-5\"" },
	{ "{\"width\":1.5,\"height\":1}", -EINVAL,
	  "width must be a positive integer, got 1.5" },
	{ "{\"width\":true,\"height\":1}", -EINVAL,
	  "width must be a positive integer, got true" },
	{ "{\"width\":null,\"height\":1}", -EINVAL,
	  "width must be a positive integer, got null" },
	{ "{\"width\":[1],\"height\":1}", -EINVAL,
	  "width must be a positive integer, got an array" },
	{ "{\"width\":{},\"height\":1}", -EINVAL,
	  "width must be a positive integer, got an object" },
	{ "{\"width\":\"\",\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"\"" },
	{ "{\"width\":\"1 2\",\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"1 2\"" },
	{ "{\"width\":\"0x10\",\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"0x10\"" },
	{ "{\"width\":7681,\"height\":1}", -EINVAL,
	  "width must be at most 7680, got 7681" },
	{ "{\"width\":1,\"height\":\"99999999999999999999999\"}", -EINVAL,
	  "height must be at most 7680, got \"99999999999999999999999\"" },
	{ "{\"width\":1e300,\"height\":1}", -EINVAL,
	  "~width must be at most 7680, got 1" },
	{ "{\"width\":\"\\u00e9\",\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"\\u00E9\"" },
	{ "{\"width\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
	  "\"height\":1}", -EINVAL,
	  "width must be a positive integer, got \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..." },
	{ "{\"max_framerate\":0}", -EINVAL,
	  "max_framerate must be an integer from 1 to 60, got 0" },
	{ "{\"max_framerate\":61}", -EINVAL,
	  "max_framerate must be an integer from 1 to 60, got 61" },
	{ "{\"max_framerate\":\"fast\"}", -EINVAL,
	  "max_framerate must be an integer from 1 to 60, got \"fast\"" },
	{ "{\"max_framerate\":29.97}", -EINVAL,
	  "max_framerate must be an integer from 1 to 60, got 29.97" },
	{ "{\"detect_out_resolution\":\"maybe\"}", -EINVAL,
	  "detect_out_resolution must be a boolean, \"true\"/\"1\"/\"yes\", "
	  "\"false\"/\"0\"/\"no\" or an integer, got \"maybe\"" },
	{ "{\"detect_out_resolution\":1.0}", -EINVAL,
	  "~detect_out_resolution must be a boolean" },
	{ "{\"show_loading\":\"maybe\"}", -EINVAL,
	  "show_loading must be a boolean or \"true\"/\"false\", got \"maybe\"" },
	{ "{\"show_loading\":1}", -EINVAL,
	  "show_loading must be a boolean or \"true\"/\"false\", got 1" },

	{ "[]", -EINVAL, "request body must be a JSON object, got an array" },
	{ "\"x\"", -EINVAL, "request body must be a JSON object, got \"x\"" },
	{ "5", -EINVAL, "request body must be a JSON object, got 5" },
	{ "null", -EINVAL, "request body must be a JSON object, got null" },
	{ "", -EINVAL, "empty request body, expected a JSON object" },
	{ "{\"a\":", -EINVAL, "~invalid JSON: " },
	{ "{\"a\":1,}", -EINVAL, "~(line 1, column 8)" },
	{ "{}\n{}", -EINVAL, "~invalid JSON: end of file expected" },
	{ "{\"a\":\"\xff\"}", -EINVAL, "~invalid JSON: unable to decode byte 0xff" },
	{ "{\"a\":\"\\u0000\"}", -EINVAL, "~invalid JSON: " },
	{ "stream ended", -EINVAL, "~invalid JSON: " },
	{ "{\"w\"\x1a" "1}", -EINVAL, "~near '\\x1a" },
	{ NULL, 0, NULL },
};

static void
params_update_table(void)
{
	const struct row *r;
	struct params_values v;
	char err[PARAMS_ERR_LEN];
	int rc, n = 0;

	for (r = update_rows; r->body; r++, n++) {
		memset(err, 0, sizeof(err));
		memset(&v, 0x5a, sizeof(v));
		rc = params_parse_update(r->body, strlen(r->body), &v, err,
					 sizeof(err));
		CHECK_MSG(rc == r->rc, "body %s: rc %d, want %d (%s)", r->body, rc,
			  r->rc, err);
		if (rc == 0) {
			CHECK_MSG(!strcmp(v.json, r->expect), "body %s: json %s != %s",
				  r->body, v.json, r->expect);
			CHECK_EQ(v.json_len, strlen(v.json));
		} else {
			CHECK(v.json == NULL && !v.has_size);
			check_err(r->body, err, r->expect);
		}
		params_values_clear(&v);
		CHECK(v.json == NULL);
		params_values_clear(&v);
	}
	printf("  %d update bodies\n", n);
}

static void
params_update_values(void)
{
	static const char body[] =
		"{\"width\":\"640\",\"height\":360,\"max_framerate\":\"24\","
		"\"detect_out_resolution\":\"no\",\"show_loading\":\"true\","
		"\"load_model\":1,\"prompt\":\"x\"}";
	struct params_values v;
	char err[PARAMS_ERR_LEN];

	CHECK_OK(params_parse_update(body, strlen(body), &v, err, sizeof(err)));
	CHECK(v.has_size);
	CHECK_EQ(v.width, 640);
	CHECK_EQ(v.height, 360);
	CHECK(v.has_max_framerate);
	CHECK_EQ(v.max_framerate, 24);
	CHECK(v.has_detect_out_resolution && !v.detect_out_resolution);
	CHECK(v.has_show_loading && v.show_loading);
	CHECK(v.has_load_model && v.load_model);
	CHECK_STR(v.json, "{\"width\":640,\"height\":360,\"max_framerate\":24,"
		  "\"detect_out_resolution\":false,\"show_loading\":true,"
		  "\"prompt\":\"x\"}");
	params_values_clear(&v);

	CHECK_OK(params_parse_update("{\"load_model\":0}", 16, &v, err,
				     sizeof(err)));
	CHECK(v.has_load_model && !v.load_model);
	CHECK(!v.has_size && !v.has_max_framerate && !v.has_show_loading);
	CHECK_STR(v.json, "{}");
	params_values_clear(&v);
}

/* The body is len bytes, not a C string: what follows is never read. */
static void
params_body_not_terminated(void)
{
	struct params_values v;
	char err[PARAMS_ERR_LEN];
	char *b = malloc(2);

	CHECK(b);
	memcpy(b, "{}", 2);
	CHECK_OK(params_parse_update(b, 2, &v, err, sizeof(err)));
	CHECK_STR(v.json, "{}");
	params_values_clear(&v);
	CHECK_OK(params_parse_update("{}garbage", 2, &v, err, sizeof(err)));
	params_values_clear(&v);
	/* a NUL byte inside the counted body is an error, not the end */
	CHECK_EQ(params_parse_update("{}\0{}", 5, &v, err, sizeof(err)), -EINVAL);
	free(b);
}

static void
params_body_limits(void)
{
	size_t n = PARAMS_MAX_BODY;
	struct params_values v;
	char err[PARAMS_ERR_LEN];
	char *b = malloc(n + 1);

	CHECK(b);
	memset(b, 'a', n + 1);
	memcpy(b, "{\"big\":\"", 8);
	memcpy(b + n - 2, "\"}", 2);
	CHECK_OK(params_parse_update(b, n, &v, err, sizeof(err)));
	CHECK_EQ(v.json_len, n);
	params_values_clear(&v);
	CHECK_EQ(params_parse_update(b, n + 1, &v, err, sizeof(err)), -EMSGSIZE);
	CHECK_STR(err, "request body too large (10485761 bytes, limit 10485760)");
	CHECK(v.json == NULL);
	CHECK_EQ(params_parse_update(NULL, 0, &v, err, sizeof(err)), -EINVAL);
	/* err may be absent or tiny */
	CHECK_EQ(params_parse_update("[]", 2, &v, NULL, 0), -EINVAL);
	CHECK_EQ(params_parse_update("[]", 2, &v, err, 5), -EINVAL);
	CHECK_STR(err, "requ");
	free(b);
}

/* ---- /stream/start -------------------------------------------------------- */

static const struct row start_rows[] = {
	{ "{\"gateway_request_id\":\"abc\"}", 0, "{}" },
	{ "{\"gateway_request_id\":\"abc\",\"params\":null,\"subscribe_url\":null,"
	  "\"publish_url\":\"\",\"model_id\":\"m\",\"stream_id\":\"s\","
	  "\"manifest_id\":7,\"max_framerate\":\"junk\"}", 0, "{}" },
	{ "{\"gateway_request_id\":\"abc\",\"params\":{}}", 0, "{}" },
	{ "{\"gateway_request_id\":\"abc\",\"params\":{\"width\":\"64\","
	  "\"height\":48,\"load_model\":true,\"prompt\":\"a cat\"}}", 0,
	  "{\"width\":64,\"height\":48,\"prompt\":\"a cat\"}" },
	{ "{\"gateway_request_id\":\"abc\",\"params\":{\"show_loading\":\"maybe\"}}",
	  0, "{\"show_loading\":\"maybe\"}" },
	{ "{\"gateway_request_id\":\"x\",\"subscribe_url\":\"https://h:1/a?b#c\","
	  "\"publish_url\":\"http://[::1]:65535/x\",\"control_url\":\"http://u:p@h\","
	  "\"events_url\":\"HTTP://127.0.0.1\",\"data_url\":\"http://a.b-c_d~e%41\"}",
	  0, "{}" },

	{ "{}", -EINVAL, "gateway_request_id is required" },
	{ "{\"params\":{}}", -EINVAL, "gateway_request_id is required" },
	{ "{\"gateway_request_id\":\"\"}", -EINVAL,
	  "gateway_request_id must be a non-empty string, got \"\"" },
	{ "{\"gateway_request_id\":null}", -EINVAL,
	  "gateway_request_id must be a non-empty string, got null" },
	{ "{\"gateway_request_id\":42}", -EINVAL,
	  "gateway_request_id must be a non-empty string, got 42" },
	{ "{\"gateway_request_id\":\"a\\nb\"}", -EINVAL,
	  "gateway_request_id must not contain control characters, got \"a\\nb\"" },
	{ "{\"gateway_request_id\":\"x\",\"subscribe_url\":5}", -EINVAL,
	  "subscribe_url must be a string or null, got 5" },
	{ "{\"gateway_request_id\":\"x\",\"publish_url\":[]}", -EINVAL,
	  "publish_url must be a string or null, got an array" },
	{ "{\"gateway_request_id\":\"x\",\"control_url\":\"ftp://h/x\"}", -EINVAL,
	  "control_url must be an http:// or https:// URL with a host, got \"ftp://h/x\"" },
	{ "{\"gateway_request_id\":\"x\",\"events_url\":\"localhost:8000\"}", -EINVAL,
	  "~events_url must be an http:// or https:// URL with a host" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL with a host" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http:///p\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h:0/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h:65536/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h:/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h:8a/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h st/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h/\\t\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h/\x7f\"}", -EINVAL,
	  "data_url must be an http:// or https:// URL with a host, got \"http://h/\\x7f\"" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://[]/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://[zz]/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://u@/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"http://h!/\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"data_url\":\"https:/h\"}", -EINVAL,
	  "~data_url must be an http:// or https:// URL" },
	{ "{\"gateway_request_id\":\"x\",\"params\":\"abc\"}", -EINVAL,
	  "params must be an object or null, got \"abc\"" },
	{ "{\"gateway_request_id\":\"x\",\"params\":[]}", -EINVAL,
	  "params must be an object or null, got an array" },
	{ "{\"gateway_request_id\":\"x\",\"params\":{\"width\":\"abc\",\"height\":1}}",
	  -EINVAL, "params.width must be a positive integer, got \"abc\"" },
	{ "{\"gateway_request_id\":\"x\",\"params\":{\"height\":1}}", -EINVAL,
	  "params.width and params.height must be given together "
	  "(params.width is missing)" },
	{ "{\"gateway_request_id\":\"x\",\"params\":{\"max_framerate\":100}}", -EINVAL,
	  "params.max_framerate must be an integer from 1 to 60, got 100" },
	{ "{\"gateway_request_id\":\"x\",\"params\":{\"detect_out_resolution\":[]}}",
	  -EINVAL, "~params.detect_out_resolution must be a boolean" },
	{ "[1]", -EINVAL, "request body must be a JSON object, got an array" },
	{ "{", -EINVAL, "~invalid JSON: " },
	{ NULL, 0, NULL },
};

static void
params_start_table(void)
{
	const struct row *r;
	struct params_start *s;
	char err[PARAMS_ERR_LEN];
	int rc, n = 0;

	for (r = start_rows; r->body; r++, n++) {
		memset(err, 0, sizeof(err));
		s = (struct params_start *)0x1;
		rc = params_parse_start(r->body, strlen(r->body), &s, err,
					sizeof(err));
		CHECK_MSG(rc == r->rc, "body %s: rc %d, want %d (%s)", r->body, rc,
			  r->rc, err);
		if (rc == 0) {
			CHECK(s && s->request_id && s->request_id[0]);
			CHECK_MSG(!strcmp(s->params.json, r->expect),
				  "body %s: json %s != %s", r->body,
				  s->params.json, r->expect);
		} else {
			CHECK(s == NULL);
			check_err(r->body, err, r->expect);
		}
		params_start_destroy(&s);
		CHECK(s == NULL);
		params_start_destroy(&s);
	}
	params_start_destroy(NULL);
	printf("  %d start bodies\n", n);
}

static void
params_start_fields(void)
{
	static const char byoc[] =
		"{\"gateway_request_id\":\"stream-1\","
		"\"control_url\":\"http://o:8935/ai/trickle/s-control\","
		"\"events_url\":\"http://o:8935/ai/trickle/s-events\","
		"\"subscribe_url\":\"https://o:8935/ai/trickle/s\","
		"\"publish_url\":\"https://o:8935/ai/trickle/s-out\","
		"\"params\":{\"width\":512,\"height\":\"512\",\"detect_out_resolution\":1}}";
	static const char bare[] =
		"{\"gateway_request_id\":\"r\",\"subscribe_url\":\"\","
		"\"data_url\":null,\"params\":null}";
	struct params_start *s;
	char err[PARAMS_ERR_LEN];
	char id[PARAMS_MAX_REQUEST_ID + 64];

	CHECK_OK(params_parse_start(byoc, strlen(byoc), &s, err, sizeof(err)));
	CHECK_STR(s->request_id, "stream-1");
	CHECK_STR(s->control_url, "http://o:8935/ai/trickle/s-control");
	CHECK_STR(s->events_url, "http://o:8935/ai/trickle/s-events");
	CHECK_STR(s->subscribe_url, "https://o:8935/ai/trickle/s");
	CHECK_STR(s->publish_url, "https://o:8935/ai/trickle/s-out");
	CHECK(s->data_url == NULL);
	CHECK(s->has_params && s->params.has_size);
	CHECK_EQ(s->params.width, 512);
	CHECK_EQ(s->params.height, 512);
	CHECK(s->params.has_detect_out_resolution && s->params.detect_out_resolution);
	CHECK(!s->params.has_show_loading);
	params_start_destroy(&s);

	CHECK_OK(params_parse_start(bare, strlen(bare), &s, err, sizeof(err)));
	CHECK(!s->subscribe_url && !s->publish_url && !s->control_url &&
	      !s->events_url && !s->data_url);
	CHECK(!s->has_params);
	CHECK_STR(s->params.json, "{}");
	CHECK_EQ(s->params.json_len, 2);
	params_start_destroy(&s);

	/* gateway_request_id: PARAMS_MAX_REQUEST_ID bytes pass, one more fails */
	snprintf(id, sizeof(id), "{\"gateway_request_id\":\"%0*d\"}",
		 (int)PARAMS_MAX_REQUEST_ID, 7);
	CHECK_OK(params_parse_start(id, strlen(id), &s, err, sizeof(err)));
	CHECK_EQ(strlen(s->request_id), PARAMS_MAX_REQUEST_ID);
	params_start_destroy(&s);
	snprintf(id, sizeof(id), "{\"gateway_request_id\":\"%0*d\"}",
		 (int)PARAMS_MAX_REQUEST_ID + 1, 7);
	CHECK_EQ(params_parse_start(id, strlen(id), &s, err, sizeof(err)), -EINVAL);
	CHECK_STR(err, "gateway_request_id is too long (257 bytes, limit 256)");
}

static void
params_start_long_url(void)
{
	size_t n = PARAMS_MAX_URL + 100;
	struct params_start *s;
	char err[PARAMS_ERR_LEN];
	char *b = malloc(n), *url;
	int head;

	CHECK(b);
	head = snprintf(b, n, "{\"gateway_request_id\":\"x\",\"publish_url\":\"");
	url = b + head;
	memcpy(url, "http://h/", 9);
	memset(url + 9, 'a', PARAMS_MAX_URL - 9);
	strcpy(url + PARAMS_MAX_URL, "\"}");
	CHECK_OK(params_parse_start(b, strlen(b), &s, err, sizeof(err)));
	CHECK_EQ(strlen(s->publish_url), PARAMS_MAX_URL);
	params_start_destroy(&s);
	url[PARAMS_MAX_URL] = 'a';
	strcpy(url + PARAMS_MAX_URL + 1, "\"}");
	CHECK_EQ(params_parse_start(b, strlen(b), &s, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "publish_url must be an http:// or https:// URL"));
	CHECK(strstr(err, "...")); /* the value is cut in the message */
	CHECK(strlen(err) < PARAMS_ERR_LEN - 1);
	CHECK_EQ(params_parse_start(b, PARAMS_MAX_BODY + 1, &s, err, sizeof(err)),
		 -EMSGSIZE);
	free(b);
}

/* Error texts stay ASCII (they go into JSON replies) and fit the buffer. */
static void
params_errors_ascii(void)
{
	const struct row *tables[] = { update_rows, start_rows };
	const struct row *r;
	struct params_values v;
	struct params_start *s;
	char err[PARAMS_ERR_LEN];
	size_t t, i;

	for (t = 0; t < 2; t++) {
		for (r = tables[t]; r->body; r++) {
			if (r->rc == 0)
				continue;
			memset(err, 0, sizeof(err));
			if (t == 0)
				params_parse_update(r->body, strlen(r->body), &v,
						    err, sizeof(err));
			else
				params_parse_start(r->body, strlen(r->body), &s,
						   err, sizeof(err));
			CHECK(err[0]);
			for (i = 0; err[i]; i++)
				CHECK_MSG((unsigned char)err[i] >= 0x20 &&
					  (unsigned char)err[i] < 0x7f,
					  "non-ASCII error for %s", r->body);
		}
	}
}

static void
params_timing(void)
{
	enum { N = 20000 };
	static const char body[] =
		"{\"gateway_request_id\":\"stream-1\","
		"\"control_url\":\"http://o:8935/ai/trickle/s-control\","
		"\"events_url\":\"http://o:8935/ai/trickle/s-events\","
		"\"subscribe_url\":\"https://o:8935/ai/trickle/s\","
		"\"publish_url\":\"https://o:8935/ai/trickle/s-out\","
		"\"params\":{\"width\":512,\"height\":512,\"prompt\":\"a cat\"}}";
	struct params_start *s;
	char err[PARAMS_ERR_LEN];
	struct timespec a, b;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < N; i++) {
		CHECK_OK(params_parse_start(body, sizeof(body) - 1, &s, err,
					    sizeof(err)));
		params_start_destroy(&s);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("  start body %zu bytes: %.1f us per parse\n", sizeof(body) - 1,
	       ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / N / 1e3);
}

static const struct th_case cases[] = {
	TH_CASE(params_update_table),
	TH_CASE(params_update_values),
	TH_CASE(params_body_not_terminated),
	TH_CASE(params_body_limits),
	TH_CASE(params_start_table),
	TH_CASE(params_start_fields),
	TH_CASE(params_start_long_url),
	TH_CASE(params_errors_ascii),
	TH_CASE(params_timing),
	TH_END,
};

TH_MAIN(cases)
