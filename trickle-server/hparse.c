/*
 * Strict HTTP/1.1 request head parser and chunked body decoder (see hparse.h).
 * Everything is bounded by the limits in the header; input is never trusted.
 */
#include "hparse.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

enum {
	CH_SIZE = 0, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER_START, CH_TRAILER_LINE, CH_TRAILER_LF, CH_LAST_LF, CH_DONE
};

#define HPARSE_MAX_TRAILER 8192
#define HPARSE_MAX_EXT     1024

static bool
hparse_is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Copies a value (trimmed of spaces and tabs) into dst, cut to dstsz - 1. */
static void
hparse_copy_value(char *dst, size_t dstsz, const char *v, size_t vlen)
{
	if (vlen >= dstsz)
		vlen = dstsz - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

/* True if the comma-separated list v contains token tok (case-insensitive). */
static bool
hparse_has_token(const char *v, size_t vlen, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < vlen) {
		size_t s, e;

		while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < vlen && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
			return true;
	}
	return false;
}

static int
hparse_request_line(const char *l, size_t n, struct hparse_req *r)
{
	const char *sp1, *sp2;
	size_t ml, tl;
	static const struct { const char *name; enum hparse_method m; } methods[] = {
		{ "GET", HPARSE_GET }, { "POST", HPARSE_POST },
		{ "DELETE", HPARSE_DELETE }, { "HEAD", HPARSE_HEAD },
		{ "PUT", HPARSE_PUT }, { "OPTIONS", HPARSE_OPTIONS },
	};

	sp1 = memchr(l, ' ', n);
	if (!sp1)
		return -EINVAL;
	ml = (size_t)(sp1 - l);
	if (ml == 0 || ml >= sizeof(r->method_name))
		return -EINVAL;
	for (size_t i = 0; i < ml; i++)
		if (!hparse_is_tchar((unsigned char)l[i]))
			return -EINVAL;
	sp2 = memchr(sp1 + 1, ' ', n - ml - 1);
	if (!sp2)
		return -EINVAL;
	tl = (size_t)(sp2 - sp1 - 1);
	if (tl == 0 || tl >= sizeof(r->target))
		return tl ? -ENAMETOOLONG : -EINVAL;
	for (size_t i = 0; i < tl; i++) {
		unsigned char c = (unsigned char)sp1[1 + i];

		if (c <= 0x20 || c >= 0x7f)
			return -EINVAL;
	}
	n -= (size_t)(sp2 + 1 - l);
	if (n != 8 || memcmp(sp2 + 1, "HTTP/", 5) != 0 || sp2[7] != '.' ||
	    sp2[6] < '0' || sp2[6] > '9' || sp2[8] < '0' || sp2[8] > '9')
		return -EINVAL;
	if (sp2[6] != '1')
		return -EPROTONOSUPPORT;
	memcpy(r->method_name, l, ml);
	r->method_name[ml] = '\0';
	r->method = HPARSE_OTHER;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strcmp(r->method_name, methods[i].name) == 0)
			r->method = methods[i].m;
	memcpy(r->target, sp1 + 1, tl);
	r->target[tl] = '\0';
	r->minor = sp2[8] - '0';
	return 0;
}

static int
hparse_content_length(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0 || n > 18)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

static int
hparse_header(const char *l, size_t n, struct hparse_req *r, bool *seen_cl,
	      bool *seen_te, bool *conn_close, bool *conn_keep)
{
	const char *colon = memchr(l, ':', n);
	const char *v;
	size_t nl, vl;

	if (!colon || colon == l)
		return -EINVAL;
	nl = (size_t)(colon - l);
	for (size_t i = 0; i < nl; i++)
		if (!hparse_is_tchar((unsigned char)l[i]))
			return -EINVAL;
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	for (size_t i = 0; i < vl; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
	}
#define IS(name) (nl == sizeof(name) - 1 && strncasecmp(l, name, nl) == 0)
	if (IS("Content-Length")) {
		uint64_t cl;

		if (hparse_content_length(v, vl, &cl) < 0)
			return -EINVAL;
		if (*seen_cl && cl != r->content_length)
			return -EINVAL;
		*seen_cl = true;
		r->content_length = cl;
	} else if (IS("Transfer-Encoding")) {
		if (*seen_te)
			return -EINVAL;
		*seen_te = true;
		if (vl != 7 || strncasecmp(v, "chunked", 7) != 0)
			return -ENOSYS;
	} else if (IS("Connection")) {
		if (hparse_has_token(v, vl, "close"))
			*conn_close = true;
		if (hparse_has_token(v, vl, "keep-alive"))
			*conn_keep = true;
	} else if (IS("Expect")) {
		if (vl == 12 && strncasecmp(v, "100-continue", 12) == 0)
			r->expect_continue = true;
	} else if (IS("Content-Type")) {
		hparse_copy_value(r->content_type, sizeof(r->content_type), v, vl);
	} else if (IS("Expect-Content")) {
		hparse_copy_value(r->expect_content, sizeof(r->expect_content), v, vl);
	} else if (IS("Lp-Trickle-Reset")) {
		r->has_reset = true;
	}
#undef IS
	return 0;
}

int
hparse_head(const char *buf, size_t len, struct hparse_req *out)
{
	size_t pos = 0, nheaders = 0, limit = len;
	bool seen_cl = false, seen_te = false, conn_close = false, conn_keep = false;
	bool first = true;
	int rc;

	if (limit > HPARSE_MAX_HEAD)
		limit = HPARSE_MAX_HEAD;
	/* Tolerate empty lines before the request line (RFC 9112 2.2). */
	while (pos < limit && (buf[pos] == '\r' || buf[pos] == '\n')) {
		if (pos >= 4)
			return -EINVAL;
		pos++;
	}
	for (;;) {
		const char *l = buf + pos;
		const char *nlp = memchr(l, '\n', limit - pos);
		size_t n;

		if (!nlp) {
			if (first && limit - pos >= HPARSE_MAX_LINE)
				return -ENAMETOOLONG;
			return len >= HPARSE_MAX_HEAD ? -EMSGSIZE : 0;
		}
		n = (size_t)(nlp - l);
		pos += n + 1;
		if (n && l[n - 1] == '\r')
			n--;
		if (memchr(l, '\r', n) || memchr(l, '\0', n))
			return -EINVAL;
		if (first) {
			if (n >= HPARSE_MAX_LINE)
				return -ENAMETOOLONG;
			memset(out, 0, sizeof(*out));
			if ((rc = hparse_request_line(l, n, out)) < 0)
				return rc;
			first = false;
			continue;
		}
		if (n == 0)
			break;
		if (l[0] == ' ' || l[0] == '\t')
			return -EINVAL; /* obsolete line folding */
		if (++nheaders > HPARSE_MAX_HEADERS)
			return -EMSGSIZE;
		rc = hparse_header(l, n, out, &seen_cl, &seen_te, &conn_close,
				   &conn_keep);
		if (rc < 0)
			return rc;
	}
	if (seen_cl && seen_te)
		return -EINVAL;
	out->body = seen_te ? HPARSE_BODY_CHUNKED :
		    seen_cl && out->content_length ? HPARSE_BODY_LENGTH :
		    HPARSE_BODY_NONE;
	out->keep_alive = out->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
	return (int)pos;
}

void
hparse_chunked_init(struct hparse_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static int
hparse_hex(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int
hparse_chunked_step(struct hparse_chunked *c, const uint8_t *in, size_t len,
		    size_t *used, size_t *data_off, size_t *data_len)
{
	size_t i = 0;

	*data_len = 0;
	*data_off = 0;
	while (i < len) {
		uint8_t ch = in[i];

		switch (c->state) {
		case CH_SIZE: {
			int h = hparse_hex(ch);

			if (h >= 0) {
				if (++c->digits > 15)
					goto bad;
				c->remaining = c->remaining * 16 + (uint64_t)h;
				i++;
				break;
			}
			if (c->digits == 0)
				goto bad;
			if (ch == ';' || ch == ' ' || ch == '\t') {
				c->state = CH_EXT;
				c->line = 0;
			} else if (ch == '\r') {
				c->state = CH_SIZE_LF;
			} else if (ch == '\n') {
				goto size_done;
			} else {
				goto bad;
			}
			i++;
			break;
		}
		case CH_EXT:
			if (ch == '\n')
				goto size_done;
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (++c->line > HPARSE_MAX_EXT || ch == 0)
				goto bad;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				goto bad;
size_done:
			i++;
			c->digits = 0;
			if (c->remaining == 0) {
				c->state = CH_TRAILER_START;
				c->trailer = 0;
			} else {
				c->state = CH_DATA;
			}
			break;
		case CH_DATA: {
			size_t n = len - i;

			if (n > c->remaining)
				n = (size_t)c->remaining;
			*data_off = i;
			*data_len = n;
			c->remaining -= n;
			i += n;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			*used = i;
			return 0;
		}
		case CH_DATA_CR:
			if (ch == '\n') {
				c->state = CH_SIZE;
			} else if (ch == '\r') {
				c->state = CH_DATA_LF;
			} else {
				goto bad;
			}
			i++;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				goto bad;
			c->state = CH_SIZE;
			i++;
			break;
		case CH_TRAILER_START:
			if (ch == '\r') {
				c->state = CH_LAST_LF;
				i++;
				break;
			}
			if (ch == '\n') {
				i++;
				c->state = CH_DONE;
				*used = i;
				return 1;
			}
			c->state = CH_TRAILER_LINE;
			break;
		case CH_TRAILER_LINE:
			if (++c->trailer > HPARSE_MAX_TRAILER || ch == 0)
				goto bad;
			if (ch == '\n')
				c->state = CH_TRAILER_START;
			else if (ch == '\r')
				c->state = CH_TRAILER_LF;
			i++;
			break;
		case CH_TRAILER_LF:
			if (ch != '\n')
				goto bad;
			c->state = CH_TRAILER_START;
			i++;
			break;
		case CH_LAST_LF:
			if (ch != '\n')
				goto bad;
			i++;
			c->state = CH_DONE;
			*used = i;
			return 1;
		case CH_DONE:
		default:
			*used = i;
			return 1;
		}
	}
	*used = i;
	return c->state == CH_DONE ? 1 : 0;
bad:
	*used = i;
	return -EINVAL;
}

int
hparse_seq(const char *s, size_t len, int64_t *out)
{
	bool neg = false;
	int64_t x = 0;
	size_t i = 0;

	if (len && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == len || len - i > 19)
		return -EINVAL;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (x > ((int64_t)1 << 62) / 10)
			return -EINVAL;
		x = x * 10 + (s[i] - '0');
	}
	if (x >= ((int64_t)1 << 62))
		return -EINVAL;
	*out = neg ? -x : x;
	return 0;
}
