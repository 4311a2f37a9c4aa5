/*
 * libFuzzer target for the trickle server's HTTP parser (trickle-server/
 * hparse.c): request heads, chunked bodies (whole vs. byte-by-byte must
 * decode the same) and segment numbers. Crashes, UB or mismatches abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trickle-server/hparse.h"

/* Decodes in[0..len) feeding pieces of at most step bytes; out gets the data. */
static int
fuzz_chunked(const uint8_t *in, size_t len, size_t step, uint8_t *out,
	     size_t *outlen)
{
	struct hparse_chunked c;
	size_t pos = 0;
	int rc = 0;

	hparse_chunked_init(&c);
	*outlen = 0;
	while (pos < len) {
		size_t n = len - pos < step ? len - pos : step, used, off, dlen;

		rc = hparse_chunked_step(&c, in + pos, n, &used, &off, &dlen);
		if (used > n || (dlen && off + dlen > used))
			abort();
		memcpy(out + *outlen, in + pos + off, dlen);
		*outlen += dlen;
		pos += used;
		if (rc != 0)
			break;
		if (used == 0 && dlen == 0)
			abort(); /* no progress */
	}
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hparse_req req;
	uint8_t *a, *b;
	size_t la, lb;
	int64_t seq;
	int ra, rb, rc;

	rc = hparse_head((const char *)data, size, &req);
	if (rc > 0 && ((size_t)rc > size || req.target[0] == '\0'))
		abort();
	if (hparse_seq((const char *)data, size < 24 ? size : 24, &seq) == 0 &&
	    (seq < -(1LL << 62) || seq >= (1LL << 62)))
		abort();
	a = malloc(size + 1);
	b = malloc(size + 1);
	if (!a || !b)
		goto out;
	ra = fuzz_chunked(data, size, size ? size : 1, a, &la);
	rb = fuzz_chunked(data, size, 1, b, &lb);
	if (ra == 1 && (rb != 1 || la != lb || memcmp(a, b, la) != 0))
		abort();
out:
	free(a);
	free(b);
	return 0;
}
