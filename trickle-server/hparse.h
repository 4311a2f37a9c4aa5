/*
 * Strict HTTP/1.1 request parsing for the trickle server: the request line and
 * header block (with hard size limits), and a chunked transfer-coding decoder.
 * Pure functions over caller buffers: no I/O, no allocation, fuzzed by
 * tests/fuzz/http_parse_fuzz.c. Routing and responses live elsewhere (hsrv.c).
 */
#ifndef CT_HPARSE_H
#define CT_HPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPARSE_MAX_LINE    8192   /* request line; more: -ENAMETOOLONG (414) */
#define HPARSE_MAX_HEAD    16384  /* whole head; larger: -EMSGSIZE (431) */
#define HPARSE_MAX_HEADERS 100    /* more header lines: -EMSGSIZE (431) */
#define HPARSE_MAX_VALUE   256    /* kept values (Content-Type...) cut here */

enum hparse_method {
	HPARSE_OTHER = 0, HPARSE_GET, HPARSE_POST, HPARSE_DELETE, HPARSE_HEAD,
	HPARSE_PUT, HPARSE_OPTIONS
};

enum hparse_body {
	HPARSE_BODY_NONE = 0, HPARSE_BODY_LENGTH, HPARSE_BODY_CHUNKED
};

/* What the server needs from one request head. Strings are NUL-terminated. */
struct hparse_req {
	enum hparse_method method;
	char method_name[16];
	char target[HPARSE_MAX_LINE];     /* request-target as sent (no decoding) */
	int minor;                        /* HTTP/1.<minor> */
	bool keep_alive;                  /* after Connection and version rules */
	bool expect_continue;             /* Expect: 100-continue */
	bool has_reset;                   /* Lp-Trickle-Reset present (any value) */
	enum hparse_body body;
	uint64_t content_length;          /* when body == HPARSE_BODY_LENGTH */
	char content_type[HPARSE_MAX_VALUE];
	char expect_content[HPARSE_MAX_VALUE];
};

/*
 * Parses the request head at the start of buf[0..len). Lines end in CRLF (a
 * bare LF is accepted). Returns the head's length in bytes (> 0) when it is
 * complete and valid, 0 when more bytes are needed, or a negative errno:
 * -ENAMETOOLONG (request line too long: 414), -EMSGSIZE (head too large or too
 * many headers: 431), -EPROTONOSUPPORT (not HTTP/1.x: 505), -ENOSYS
 * (transfer-coding other than chunked: 501), -EINVAL (malformed: 400).
 * Fills *out only on success. Never reads past buf + len.
 */
int hparse_head(const char *buf, size_t len, struct hparse_req *out);

/* Decoder state of one chunked body; hparse_chunked_init it per body. */
struct hparse_chunked {
	int state;
	uint64_t remaining;   /* bytes left in the current chunk */
	unsigned digits;      /* hex digits of the size seen */
	unsigned line;        /* bytes of the current extension/trailer line */
	unsigned trailer;     /* bytes of trailers seen */
};

void hparse_chunked_init(struct hparse_chunked *c);

/*
 * Decodes from in[0..len). Sets *used to the bytes consumed. When a piece of
 * body data is found, it is in[*data_off .. *data_off + *data_len) (within the
 * consumed bytes) and the call returns at once; call again with the rest.
 * Returns 1 when the last chunk and trailers are complete (*used stops there),
 * 0 when it needs more input or returned data, -EINVAL on a malformed body
 * (bad size, size over 2^60, missing CRLF, trailers over 8 KiB).
 */
int hparse_chunked_step(struct hparse_chunked *c, const uint8_t *in, size_t len,
			size_t *used, size_t *data_off, size_t *data_len);

/*
 * Parses a decimal segment number as go-livepeer's strconv.Atoi does, with an
 * optional sign. Returns 0 and *out, or -EINVAL (empty, junk, or outside
 * [-2^62, 2^62)).
 */
int hparse_seq(const char *s, size_t len, int64_t *out);

#endif
