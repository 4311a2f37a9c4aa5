/*
 * libFuzzer target for proto/msg.c: decodes arbitrary bytes; whatever decodes
 * must re-encode (within msg_encoded_bound) and decode to the same message.
 */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#define SAME_SCALAR(a, b) (*(a) == *(b))
#define same_U32  SAME_SCALAR
#define same_U64  SAME_SCALAR
#define same_I32  SAME_SCALAR
#define same_I64  SAME_SCALAR
#define same_BOOL SAME_SCALAR
#define SAME_SIZED(a, b) \
	((a)->len == (b)->len && ((a)->len == 0 || \
				  memcmp((a)->ptr, (b)->ptr, (a)->len) == 0))
#define same_STR  SAME_SIZED
#define same_TEXT SAME_SIZED
#define same_BIN  SAME_SIZED

static int
msg_fuzz_same(const struct msg *a, const struct msg *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
#define F(T, f) if (!same_##T(&p->f, &q->f)) return 0;
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { \
		const struct msg_##n *p = &a->u.n, *q = &b->u.n; \
		fields \
		return 1; \
	}
#include "msg.def"
#undef MSG
#undef F
	default:
		return 0;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg a, b;
	size_t cap, len;
	uint8_t *buf;

	if (msg_decode(data, size, &a) != 0)
		return 0;
	cap = msg_encoded_bound(&a);
	buf = malloc(cap);
	if (!buf)
		abort();
	if (msg_encode(&a, buf, cap, &len) != 0 || len > cap)
		abort();
	if (msg_decode(buf, len, &b) != 0 || !msg_fuzz_same(&a, &b))
		abort();
	free(buf);
	(void)msg_type_name(a.type);
	(void)msg_is_from_worker(a.type);
	return 0;
}
