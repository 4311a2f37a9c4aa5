/*
 * Parsing and validation of the PyTrickle /stream/start and /stream/params
 * bodies with jansson (PROTOCOL.md 2.3-2.5). Every failure produces one
 * precise, ASCII-only sentence for the HTTP error body. Owns nothing else.
 */
#include "params.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#define PARAMS_SHOW_MAX 48 /* characters of an offending value in errors */

static void __attribute__((format(printf, 3, 4)))
params_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Copies s into out (n bytes) with every byte outside printable ASCII
 * written as \xNN: jansson quotes the offending input in its error text.
 */
static void
params_ascii(const char *s, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	unsigned char c;

	for (; *s && o + 5 < n; s++) {
		c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = 0;
}

/*
 * Writes a short ASCII rendering of v into buf: `"abc"` (JSON-escaped,
 * non-ASCII as \u escapes, cut after PARAMS_SHOW_MAX characters), `3.5`,
 * `true`, `null`, `an object`, `an array`.
 */
static void
params_describe(const json_t *v, char *buf, size_t n)
{
	bool cut = false;
	size_t o;
	char *s;

	if (json_is_object(v)) {
		snprintf(buf, n, "an object");
		return;
	}
	if (json_is_array(v)) {
		snprintf(buf, n, "an array");
		return;
	}
	s = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII | JSON_COMPACT |
			  JSON_REAL_PRECISION(15));
	if (!s) {
		snprintf(buf, n, "a %s", json_is_string(v) ? "string" : "value");
		return;
	}
	if (strlen(s) > PARAMS_SHOW_MAX) {
		s[PARAMS_SHOW_MAX] = 0;
		cut = true;
	}
	params_ascii(s, buf, n);
	o = strlen(buf);
	if (cut)
		snprintf(buf + o, n - o, "...");
	free(s);
}

/* Size check, JSON parse, and "must be an object". */
static int
params_load(const char *body, size_t len, json_t **root, char *err,
	    size_t errlen)
{
	json_error_t jerr;
	char what[80], text[4 * JSON_ERROR_TEXT_LENGTH];

	*root = NULL;
	if (len > PARAMS_MAX_BODY) {
		params_errf(err, errlen,
			    "request body too large (%zu bytes, limit %u)", len,
			    PARAMS_MAX_BODY);
		return -EMSGSIZE;
	}
	if (len == 0 || !body) {
		params_errf(err, errlen,
			    "empty request body, expected a JSON object");
		return -EINVAL;
	}
	*root = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
	if (!*root) {
		params_ascii(jerr.text, text, sizeof(text));
		params_errf(err, errlen, "invalid JSON: %s (line %d, column %d)",
			    text, jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(*root)) {
		params_describe(*root, what, sizeof(what));
		params_errf(err, errlen,
			    "request body must be a JSON object, got %s", what);
		json_decref(*root);
		*root = NULL;
		return -EINVAL;
	}
	return 0;
}

/*
 * Integer value of v: a JSON integer, an integral JSON real (512.0), or a
 * string holding a decimal integer with optional sign and surrounding
 * whitespace (Python int() rules, without underscores). Magnitudes are
 * clamped to 1e15, which every range check rejects. Returns false when v is
 * none of these.
 */
static bool
params_int_of(const json_t *v, long long *out)
{
	const long long big = 1000000000000000ll;
	const char *s, *end;
	long long n = 0;
	bool neg = false;
	double d;

	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d >= (double)big || d <= -(double)big) {
			*out = d > 0 ? big : -big;
			return true;
		}
		if (d != (double)(long long)d)
			return false;
		*out = (long long)d;
		return true;
	}
	if (!json_is_string(v))
		return false;
	s = json_string_value(v);
	end = s + json_string_length(v);
	while (s < end && (*s == ' ' || (*s >= '\t' && *s <= '\r')))
		s++;
	while (end > s && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r')))
		end--;
	if (s < end && (*s == '+' || *s == '-'))
		neg = *s++ == '-';
	if (s == end)
		return false;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (n < big)
			n = n * 10 + (*s - '0');
	}
	*out = neg ? -n : n;
	return true;
}

/* Python truthiness of a JSON value (load_model). */
static bool
params_truthy(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_TRUE: return true;
	case JSON_INTEGER: return json_integer_value(v) != 0;
	case JSON_REAL: return json_real_value(v) != 0.0;
	case JSON_STRING: return json_string_length(v) != 0;
	case JSON_OBJECT: return json_object_size(v) != 0;
	case JSON_ARRAY: return json_array_size(v) != 0;
	default: return false;
	}
}

/*
 * Boolean value of v: a JSON boolean, or one of the strings
 * true/1/yes and false/0/no (any case), or (when ints) an integer, non-zero
 * being true. Returns false when v is none of these.
 */
static bool
params_bool_of(const json_t *v, bool ints, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes" };
	static const char *const no[] = { "false", "0", "no" };
	const char *s;
	size_t i;

	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (ints && json_is_integer(v)) {
		*out = json_integer_value(v) != 0;
		return true;
	}
	if (!json_is_string(v))
		return false;
	s = json_string_value(v);
	for (i = 0; i < 3; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return true;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* width or height: an integer 1..PARAMS_MAX_DIM. */
static int
params_dim(const json_t *v, const char *pfx, const char *key, uint32_t *out,
	   char *err, size_t errlen)
{
	char what[80];
	long long n;

	if (!params_int_of(v, &n) || n <= 0) {
		params_describe(v, what, sizeof(what));
		params_errf(err, errlen, "%s%s must be a positive integer, got %s",
			    pfx, key, what);
		return -EINVAL;
	}
	if (n > PARAMS_MAX_DIM) {
		params_describe(v, what, sizeof(what));
		params_errf(err, errlen, "%s%s must be at most %u, got %s", pfx,
			    key, PARAMS_MAX_DIM, what);
		return -EINVAL;
	}
	*out = (uint32_t)n;
	return 0;
}

/*
 * Validates and normalises the params object obj in place (see struct
 * params_values), then serialises it into out->json. pfx prefixes key names
 * in errors ("params." at start). update: also parse show_loading.
 */
static int
params_validate(json_t *obj, const char *pfx, bool update,
		struct params_values *out, char *err, size_t errlen)
{
	json_t *w, *h, *v;
	char what[80];
	long long n;
	int rc;

	memset(out, 0, sizeof(*out));
	w = json_object_get(obj, "width");
	h = json_object_get(obj, "height");
	if (!w != !h) {
		params_errf(err, errlen,
			    "%swidth and %sheight must be given together "
			    "(%s%s is missing)", pfx, pfx, pfx,
			    w ? "height" : "width");
		return -EINVAL;
	}
	if (w) {
		rc = params_dim(w, pfx, "width", &out->width, err, errlen);
		if (!rc)
			rc = params_dim(h, pfx, "height", &out->height, err,
					errlen);
		if (rc)
			return rc;
		if (json_object_set_new(obj, "width", json_integer(out->width)) ||
		    json_object_set_new(obj, "height", json_integer(out->height)))
			goto err_nomem;
		out->has_size = true;
	}

	v = json_object_get(obj, "max_framerate");
	if (v) {
		if (!params_int_of(v, &n) || n < PARAMS_MIN_FRAMERATE ||
		    n > PARAMS_MAX_FRAMERATE) {
			params_describe(v, what, sizeof(what));
			params_errf(err, errlen,
				    "%smax_framerate must be an integer from %u "
				    "to %u, got %s", pfx, PARAMS_MIN_FRAMERATE,
				    PARAMS_MAX_FRAMERATE, what);
			return -EINVAL;
		}
		out->max_framerate = (uint32_t)n;
		out->has_max_framerate = true;
		if (json_object_set_new(obj, "max_framerate", json_integer(n)))
			goto err_nomem;
	}

	v = json_object_get(obj, "detect_out_resolution");
	if (v) {
		if (!params_bool_of(v, true, &out->detect_out_resolution)) {
			params_describe(v, what, sizeof(what));
			params_errf(err, errlen,
				    "%sdetect_out_resolution must be a boolean, "
				    "\"true\"/\"1\"/\"yes\", \"false\"/\"0\"/\"no\" "
				    "or an integer, got %s", pfx, what);
			return -EINVAL;
		}
		out->has_detect_out_resolution = true;
		if (json_object_set_new(obj, "detect_out_resolution",
					json_boolean(out->detect_out_resolution)))
			goto err_nomem;
	}

	v = json_object_get(obj, "show_loading");
	if (v && update) {
		if (!params_bool_of(v, false, &out->show_loading)) {
			params_describe(v, what, sizeof(what));
			params_errf(err, errlen,
				    "%sshow_loading must be a boolean or "
				    "\"true\"/\"false\", got %s", pfx, what);
			return -EINVAL;
		}
		out->has_show_loading = true;
		if (json_object_set_new(obj, "show_loading",
					json_boolean(out->show_loading)))
			goto err_nomem;
	}

	v = json_object_get(obj, "load_model");
	if (v) {
		out->has_load_model = true;
		out->load_model = params_truthy(v);
		json_object_del(obj, "load_model");
	}

	out->json = json_dumps(obj, JSON_COMPACT);
	if (!out->json)
		goto err_nomem;
	out->json_len = strlen(out->json);
	return 0;

err_nomem:
	params_errf(err, errlen, "out of memory");
	return -ENOMEM;
}

void
params_values_clear(struct params_values *v)
{
	if (!v)
		return;
	free(v->json);
	memset(v, 0, sizeof(*v));
}

int
params_parse_update(const char *body, size_t len, struct params_values *out,
		    char *err, size_t errlen)
{
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = params_load(body, len, &root, err, errlen);
	if (rc)
		return rc;
	rc = params_validate(root, "", true, out, err, errlen);
	json_decref(root);
	if (rc)
		params_values_clear(out);
	return rc;
}

/* ---- /stream/start ------------------------------------------------------ */

static bool
params_is_port(const char *p, const char *end)
{
	unsigned long n = 0;

	if (p == end || end - p > 5)
		return false;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		n = n * 10 + (unsigned long)(*p - '0');
	}
	return n >= 1 && n <= 65535;
}

static bool
params_is_host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~' || c == '%';
}

/*
 * An http:// or https:// URL with a non-empty host (name, IPv4 or [IPv6]),
 * an optional port 1..65535, no whitespace or control characters.
 */
static bool
params_url_ok(const char *s, size_t len)
{
	const char *p, *end = s + len, *auth_end, *at, *host_end;
	size_t i;

	if (len > PARAMS_MAX_URL)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	if (len >= 7 && !strncasecmp(s, "http://", 7))
		p = s + 7;
	else if (len >= 8 && !strncasecmp(s, "https://", 8))
		p = s + 8;
	else
		return false;
	auth_end = p + strcspn(p, "/?#");
	if (auth_end > end)
		auth_end = end;
	at = NULL;
	for (i = 0; p + i < auth_end; i++)
		if (p[i] == '@')
			at = p + i;
	if (at)
		p = at + 1;
	if (p < auth_end && *p == '[') {
		host_end = memchr(p, ']', (size_t)(auth_end - p));
		if (!host_end || host_end == p + 1)
			return false;
		for (i = 1; p + i < host_end; i++)
			if (!strchr("0123456789abcdefABCDEF:.", p[i]))
				return false;
		host_end++;
	} else {
		host_end = p;
		while (host_end < auth_end && params_is_host_char(*host_end))
			host_end++;
		if (host_end == p)
			return false;
	}
	if (host_end == auth_end)
		return true;
	return *host_end == ':' && params_is_port(host_end + 1, auth_end);
}

/*
 * Reads the optional URL key of root into *out: NULL when absent, null or
 * "", else a checked copy.
 */
static int
params_url(const json_t *root, const char *key, char **out, char *err,
	   size_t errlen)
{
	const json_t *v = json_object_get(root, key);
	char what[80];
	size_t len;

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		params_describe(v, what, sizeof(what));
		params_errf(err, errlen, "%s must be a string or null, got %s",
			    key, what);
		return -EINVAL;
	}
	len = json_string_length(v);
	if (len == 0)
		return 0;
	if (!params_url_ok(json_string_value(v), len)) {
		params_describe(v, what, sizeof(what));
		params_errf(err, errlen,
			    "%s must be an http:// or https:// URL with a host, "
			    "got %s", key, what);
		return -EINVAL;
	}
	*out = strndup(json_string_value(v), len);
	if (!*out) {
		params_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static int
params_request_id(const json_t *root, char **out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(root, "gateway_request_id");
	const char *s;
	char what[80];
	size_t len, i;

	if (!v) {
		params_errf(err, errlen, "gateway_request_id is required");
		return -EINVAL;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		params_describe(v, what, sizeof(what));
		params_errf(err, errlen,
			    "gateway_request_id must be a non-empty string, "
			    "got %s", what);
		return -EINVAL;
	}
	s = json_string_value(v);
	len = json_string_length(v);
	if (len > PARAMS_MAX_REQUEST_ID) {
		params_errf(err, errlen,
			    "gateway_request_id is too long (%zu bytes, limit %u)",
			    len, PARAMS_MAX_REQUEST_ID);
		return -EINVAL;
	}
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			params_describe(v, what, sizeof(what));
			params_errf(err, errlen,
				    "gateway_request_id must not contain "
				    "control characters, got %s", what);
			return -EINVAL;
		}
	}
	*out = strndup(s, len);
	if (!*out) {
		params_errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

void
params_start_destroy(struct params_start **p)
{
	struct params_start *r;

	if (!p || !*p)
		return;
	r = *p;
	free(r->subscribe_url);
	free(r->publish_url);
	free(r->control_url);
	free(r->events_url);
	free(r->data_url);
	free(r->request_id);
	params_values_clear(&r->params);
	free(r);
	*p = NULL;
}

int
params_parse_start(const char *body, size_t len, struct params_start **out,
		   char *err, size_t errlen)
{
	struct params_start *r;
	json_t *root, *pv;
	char what[80];
	int rc;

	*out = NULL;
	rc = params_load(body, len, &root, err, errlen);
	if (rc)
		return rc;
	r = calloc(1, sizeof(*r));
	if (!r) {
		params_errf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto err_decref;
	}
	if ((rc = params_request_id(root, &r->request_id, err, errlen)) ||
	    (rc = params_url(root, "subscribe_url", &r->subscribe_url, err,
			     errlen)) ||
	    (rc = params_url(root, "publish_url", &r->publish_url, err,
			     errlen)) ||
	    (rc = params_url(root, "control_url", &r->control_url, err,
			     errlen)) ||
	    (rc = params_url(root, "events_url", &r->events_url, err,
			     errlen)) ||
	    (rc = params_url(root, "data_url", &r->data_url, err, errlen)))
		goto err_destroy;

	pv = json_object_get(root, "params");
	if (!pv || json_is_null(pv)) {
		r->params.json = strdup("{}");
		if (!r->params.json) {
			params_errf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto err_destroy;
		}
		r->params.json_len = 2;
	} else if (json_is_object(pv)) {
		rc = params_validate(pv, "params.", false, &r->params, err,
				     errlen);
		if (rc)
			goto err_destroy;
		r->has_params = true;
	} else {
		params_describe(pv, what, sizeof(what));
		params_errf(err, errlen,
			    "params must be an object or null, got %s", what);
		rc = -EINVAL;
		goto err_destroy;
	}
	json_decref(root);
	*out = r;
	return 0;

err_destroy:
	params_start_destroy(&r);
err_decref:
	json_decref(root);
	return rc;
}
