/*
 * Tests of proto/msg.c: round trips of every message with extreme values,
 * each strictness rule of msg_decode, truncation, trailing bytes, buffer
 * limits, and random mutations of valid encodings.
 */
#include "harness.h"
#include "msg.h"

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include <msgpack.h>

/* ---- generic fill and compare, generated from msg.def -------------------- */

/* Payload for STR/TEXT/BIN fields (MSG_MAX_TEXT bytes, a byte pattern). */
static uint8_t *pool;

static uint8_t *
pool_get(void)
{
	uint32_t i;

	if (!pool) {
		pool = malloc(MSG_MAX_TEXT);
		if (!pool)
			abort();
		for (i = 0; i < MSG_MAX_TEXT; i++)
			pool[i] = (uint8_t)(i * 31 + 7);
	}
	return pool;
}

static void
pool_free(void)
{
	free(pool);
	pool = NULL;
}

/* variant 0: zeros/empty, 1: maxima, 2: minima and odd bytes */
static void
fill_U32(uint32_t *v, int var, int k)
{
	*v = var == 0 ? 0 : var == 1 ? UINT32_MAX : (uint32_t)(k * 7 + 1);
}

static void
fill_U64(uint64_t *v, int var, int k)
{
	*v = var == 0 ? 0 : var == 1 ? UINT64_MAX : (1ull << 40) + (uint64_t)k;
}

static void
fill_I32(int32_t *v, int var, int k)
{
	*v = var == 0 ? 0 : var == 1 ? INT32_MAX : INT32_MIN;
}

static void
fill_I64(int64_t *v, int var, int k)
{
	*v = var == 0 ? 0 : var == 1 ? INT64_MAX : INT64_MIN;
}

static void __attribute__((unused))
fill_BOOL(bool *v, int var, int k)
{
	*v = var == 1;
}

static void
fill_sized(struct msg_str *v, int var, int k, uint32_t max)
{
	static const char odd[] = "h\xc3\xa9llo\0nul\xff";

	if (var == 0)
		*v = msg_cstr(NULL);
	else if (var == 1)
		*v = (struct msg_str){ (const char *)pool_get() + k, max };
	else
		*v = (struct msg_str){ odd, sizeof(odd) - 1 };
}

static void
fill_STR(struct msg_str *v, int var, int k)
{
	fill_sized(v, var, k, MSG_MAX_STR);
}

static void
fill_TEXT(struct msg_str *v, int var, int k)
{
	fill_sized(v, var, 0, MSG_MAX_TEXT);
}

static void
fill_BIN(struct msg_bin *v, int var, int k)
{
	struct msg_str s;

	fill_sized(&s, var, 0, MSG_MAX_BIN);
	v->ptr = (const uint8_t *)s.ptr;
	v->len = s.len;
}

#define SCALAR_EQ(a, b) (*(a) == *(b))
#define eq_U32  SCALAR_EQ
#define eq_U64  SCALAR_EQ
#define eq_I32  SCALAR_EQ
#define eq_I64  SCALAR_EQ
#define eq_BOOL SCALAR_EQ
#define SIZED_EQ(a, b) \
	((a)->len == (b)->len && ((a)->len == 0 || \
				  memcmp((a)->ptr, (b)->ptr, (a)->len) == 0))
#define eq_STR  SIZED_EQ
#define eq_TEXT SIZED_EQ
#define eq_BIN  SIZED_EQ

static void
msg_fill(struct msg *m, enum msg_type t, int var)
{
	int k = 0;

	memset(m, 0, sizeof(*m));
	m->type = t;
	switch (t) {
#define F(T, f) fill_##T(&p->f, var, k++);
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { struct msg_##n *p = &m->u.n; fields break; }
#include "msg.def"
#undef MSG
#undef F
	default:
		break;
	}
	(void)k;
}

/* Name of the first differing field, or NULL when a and b are equal. */
static const char *
msg_diff(const struct msg *a, const struct msg *b)
{
	if (a->type != b->type)
		return "type";
	switch (a->type) {
#define F(T, f) if (!eq_##T(&p->f, &q->f)) return #f;
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { \
		const struct msg_##n *p = &a->u.n, *q = &b->u.n; \
		fields \
		return NULL; \
	}
#include "msg.def"
#undef MSG
#undef F
	default:
		return "unknown type";
	}
}

static const enum msg_type all_types[] = {
#define F(T, f)
#define MSG(E, id, n, dir, fields) MSG_##E,
#include "msg.def"
#undef MSG
#undef F
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

/* Encodes m into a fresh buffer of exactly msg_encoded_bound() bytes. */
static uint8_t *
enc_alloc(const struct msg *m, size_t *len)
{
	size_t cap = msg_encoded_bound(m);
	uint8_t *buf = malloc(cap);

	CHECK(buf);
	CHECK_OK(msg_encode(m, buf, cap, len));
	CHECK(*len <= cap);
	return buf;
}

static void
msg_roundtrip_all(void)
{
	struct msg a, b;
	const char *d;
	uint8_t *buf;
	size_t i, len;
	int var;

	for (var = 0; var < 3; var++) {
		for (i = 0; i < NTYPES; i++) {
			msg_fill(&a, all_types[i], var);
			buf = enc_alloc(&a, &len);
			CHECK_OK(msg_decode(buf, len, &b));
			d = msg_diff(&a, &b);
			CHECK_MSG(!d, "%s variant %d: field %s differs",
				  msg_type_name(all_types[i]), var, d);
			free(buf);
		}
	}
	pool_free();
}

/* STR/TEXT/BIN fields point into the input buffer after decode. */
static void
msg_decode_points_into_input(void)
{
	struct msg a = { .type = MSG_ERROR }, b;
	uint8_t buf[128];
	size_t len;

	a.u.error.stream = 3;
	a.u.error.code = -22;
	a.u.error.message = msg_cstr("plugin exploded");
	CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	CHECK_OK(msg_decode(buf, len, &b));
	CHECK_EQ(b.type, MSG_ERROR);
	CHECK_EQ(b.u.error.code, -22);
	CHECK((const uint8_t *)b.u.error.message.ptr > buf);
	CHECK((const uint8_t *)b.u.error.message.ptr + b.u.error.message.len
	      <= buf + len);
	CHECK_EQ(b.u.error.message.len, strlen("plugin exploded"));
	CHECK(!memcmp(b.u.error.message.ptr, "plugin exploded", 15));
}

static void
msg_bound_is_enough(void)
{
	struct msg a;
	uint8_t *buf;
	size_t i, len;
	int var;

	for (var = 0; var < 3; var++) {
		for (i = 0; i < NTYPES; i++) {
			msg_fill(&a, all_types[i], var);
			buf = enc_alloc(&a, &len);
			free(buf);
		}
	}
	pool_free();
}

/* Every capacity short of the encoded size fails, never writing past cap. */
static void
msg_small_buffer_emsgsize(void)
{
	struct msg a;
	uint8_t full[256], buf[256];
	size_t len, cap, n;

	msg_fill(&a, MSG_FRAME, 1);
	CHECK_OK(msg_encode(&a, full, sizeof(full), &len));
	for (cap = 0; cap < len; cap++) {
		memset(buf, 0xa5, sizeof(buf));
		CHECK_EQ(msg_encode(&a, buf, cap, &n), -EMSGSIZE);
		for (n = cap; n < sizeof(buf); n++)
			CHECK_EQ(buf[n], 0xa5);
	}
	CHECK_OK(msg_encode(&a, buf, len, &n));
	CHECK_EQ(n, len);
	CHECK(!memcmp(buf, full, len));
}

static void
msg_encode_rejects_bad_input(void)
{
	struct msg a;
	uint8_t buf[16384];
	size_t len;
	char *big = calloc(1, MSG_MAX_STR + 1);

	CHECK(big);
	memset(&a, 0, sizeof(a));
	a.type = MSG_NONE;
	CHECK_EQ(msg_encode(&a, buf, sizeof(buf), &len), -EINVAL);
	a.type = MSG_TYPE_END;
	CHECK_EQ(msg_encode(&a, buf, sizeof(buf), &len), -EINVAL);
	a.type = MSG_SHUTDOWN;
	a.u.shutdown.reason = (struct msg_str){ big, MSG_MAX_STR + 1 };
	CHECK_EQ(msg_encode(&a, buf, sizeof(buf), &len), -EINVAL);
	a.u.shutdown.reason = (struct msg_str){ big, MSG_MAX_STR };
	CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	a.u.shutdown.reason = (struct msg_str){ NULL, 3 };
	CHECK_EQ(msg_encode(&a, buf, sizeof(buf), &len), -EINVAL);
	a.u.shutdown.reason = (struct msg_str){ NULL, 0 };
	CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	free(big);
}

/* ---- hand-built encodings for the strictness rules ----------------------- */

enum bad {
	BAD_NONE, BAD_NIL, BAD_NEG1, BAD_U32_OVER, BAD_U64_MAX, BAD_FLOAT,
	BAD_STR, BAD_BIN, BAD_BOOL, BAD_ARRAY, BAD_MAP, BAD_I32_UNDER,
	BAD_I32_OVER, BAD_I64_MIN, BAD_STR_LONG, BAD_STR_MAX,
};

static void
pack_bad(msgpack_packer *pk, enum bad b)
{
	static char s[MSG_MAX_STR + 1];

	switch (b) {
	case BAD_NONE: break;
	case BAD_NIL: msgpack_pack_nil(pk); break;
	case BAD_NEG1: msgpack_pack_int64(pk, -1); break;
	case BAD_U32_OVER: msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1); break;
	case BAD_U64_MAX: msgpack_pack_uint64(pk, UINT64_MAX); break;
	case BAD_FLOAT: msgpack_pack_double(pk, 1.0); break;
	case BAD_STR: msgpack_pack_str_with_body(pk, "x", 1); break;
	case BAD_BIN: msgpack_pack_bin_with_body(pk, "x", 1); break;
	case BAD_BOOL: msgpack_pack_true(pk); break;
	case BAD_ARRAY: msgpack_pack_array(pk, 1); msgpack_pack_uint32(pk, 1); break;
	case BAD_MAP: msgpack_pack_map(pk, 0); break;
	case BAD_I32_UNDER: msgpack_pack_int64(pk, (int64_t)INT32_MIN - 1); break;
	case BAD_I32_OVER: msgpack_pack_int64(pk, (int64_t)INT32_MAX + 1); break;
	case BAD_I64_MIN: msgpack_pack_int64(pk, INT64_MIN); break;
	case BAD_STR_LONG: msgpack_pack_str_with_body(pk, s, MSG_MAX_STR + 1); break;
	case BAD_STR_MAX: msgpack_pack_str_with_body(pk, s, MSG_MAX_STR); break;
	}
}

/*
 * Packs [version, type, fields...] with nfields well-formed U32 fields
 * (value 1), except field index `at` which gets `b` instead.
 */
static int
decode_built(uint64_t version, uint64_t type, unsigned nfields, int at,
	     enum bad b)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct msg m;
	unsigned i;
	int rc;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2 + nfields);
	msgpack_pack_uint64(&pk, version);
	msgpack_pack_uint64(&pk, type);
	for (i = 0; i < nfields; i++) {
		if ((int)i == at)
			pack_bad(&pk, b);
		else
			msgpack_pack_uint32(&pk, 1);
	}
	rc = msg_decode(sb.data, sb.size, &m);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* Field counts of messages used below (all-U32 prefixes where it matters). */
#define NF_FRAME 14
#define NF_DROP 5

static void
msg_decode_version(void)
{
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_STREAM_STOP, 1, -1, 0));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION + 1, MSG_STREAM_STOP, 1, -1, 0),
		 -EBADMSG);
	CHECK_EQ(decode_built(0, MSG_STREAM_STOP, 1, -1, 0), -EBADMSG);
	CHECK_EQ(decode_built(UINT64_MAX, MSG_STREAM_STOP, 1, -1, 0), -EBADMSG);
	/* A future version with another shape still reads as a version error. */
	CHECK_EQ(decode_built(2, 99, 40, 3, BAD_ARRAY), -EBADMSG);
}

static void
msg_decode_version_not_int(void)
{
	const uint8_t s[] = { 0x93, 0xa1, '1', 0x04, 0x01 };
	const uint8_t neg[] = { 0x93, 0xff, 0x04, 0x01 };
	const uint8_t flt[] = { 0x93, 0xca, 0x3f, 0x80, 0, 0, 0x04, 0x01 };
	const uint8_t i8[] = { 0x93, 0xd0, 0x01, 0x04, 0x01 };
	struct msg m;

	CHECK_EQ(msg_decode(s, sizeof(s), &m), -EPROTO);
	CHECK_EQ(msg_decode(neg, sizeof(neg), &m), -EPROTO);
	CHECK_EQ(msg_decode(flt, sizeof(flt), &m), -EPROTO);
	/* int8 1: a non-canonical but valid positive integer */
	CHECK_OK(msg_decode(i8, sizeof(i8), &m));
	CHECK_EQ(m.type, MSG_STREAM_STOP);
	CHECK_EQ(m.u.stream_stop.stream, 1);
}

static void
msg_decode_unknown_type(void)
{
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, 0, 1, -1, 0), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_TYPE_END, 1, -1, 0), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, 200, 1, -1, 0), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, (1ull << 32) + MSG_STREAM_STOP,
			      1, -1, 0), -EPROTO);
}

static void
msg_decode_field_count(void)
{
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, -1, 0));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME - 1, -1, 0),
		 -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME + 1, -1, 0),
		 -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_STREAM_STOP, 0, -1, 0),
		 -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_STREAM_STOP, 2, -1, 0),
		 -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_STREAM_STOP, 200, -1, 0),
		 -EPROTO);
}

static void
msg_decode_not_an_array(void)
{
	const uint8_t map[] = { 0x81, 0x01, 0x01 };
	const uint8_t num[] = { 0x01 };
	const uint8_t empty[] = { 0x90 };
	const uint8_t one[] = { 0x91, 0x01 };
	const uint8_t big[] = { 0xdd, 0xff, 0xff, 0xff, 0xf0 };
	const uint8_t nested_big[] = { 0x93, 0x01, 0x04, 0xdd, 0xff, 0xff, 0xff, 0xf0 };
	const uint8_t nested_map[] = { 0x93, 0x01, 0x04, 0xdf, 0xff, 0xff, 0xff, 0xf0 };
	struct msg m;

	CHECK_EQ(msg_decode(map, sizeof(map), &m), -EPROTO);
	CHECK_EQ(msg_decode(num, sizeof(num), &m), -EPROTO);
	CHECK_EQ(msg_decode(empty, sizeof(empty), &m), -EPROTO);
	CHECK_EQ(msg_decode(one, sizeof(one), &m), -EPROTO);
	CHECK_EQ(msg_decode(big, sizeof(big), &m), -EPROTO);
	CHECK_EQ(msg_decode(nested_big, sizeof(nested_big), &m), -EPROTO);
	CHECK_EQ(msg_decode(nested_map, sizeof(nested_map), &m), -EPROTO);
	CHECK_EQ(msg_decode(map, 0, &m), -EPROTO);
	CHECK_EQ(m.type, MSG_NONE);
}

/* U32 fields: FRAME.stream (index 0). */
static void
msg_decode_u32_rules(void)
{
	static const enum bad bad[] = {
		BAD_NIL, BAD_NEG1, BAD_U32_OVER, BAD_U64_MAX, BAD_FLOAT,
		BAD_STR, BAD_BIN, BAD_BOOL, BAD_ARRAY, BAD_MAP,
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_MSG(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 0,
				       bad[i]) == -EPROTO, "bad kind %d", bad[i]);
}

/* U64 field: FRAME.seq (index 1). */
static void
msg_decode_u64_rules(void)
{
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 1,
			      BAD_U64_MAX));
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 1,
			      BAD_U32_OVER));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 1,
			      BAD_NEG1), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 1,
			      BAD_FLOAT), -EPROTO);
}

/* I64 field: FRAME.pts (index 2); I32 field: DROP.reason (index 4). */
static void
msg_decode_signed_rules(void)
{
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 2,
			      BAD_NEG1));
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 2,
			      BAD_I64_MIN));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 2,
			      BAD_U64_MAX), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_FRAME, NF_FRAME, 2,
			      BAD_BOOL), -EPROTO);
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_DROP, NF_DROP, 4,
			      BAD_NEG1));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_DROP, NF_DROP, 4,
			      BAD_I32_UNDER), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_DROP, NF_DROP, 4,
			      BAD_I32_OVER), -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_DROP, NF_DROP, 4,
			      BAD_STR), -EPROTO);
}

/* STR: SHUTDOWN.reason; TEXT: PARAMS.params; BIN: AUDIO.data. */
static void
msg_decode_sized_rules(void)
{
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_SHUTDOWN, 1, 0, BAD_STR));
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_SHUTDOWN, 1, 0, BAD_STR_MAX));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_SHUTDOWN, 1, 0, BAD_STR_LONG),
		 -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_SHUTDOWN, 1, 0, BAD_BIN),
		 -EPROTO);
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_SHUTDOWN, 1, 0, BAD_NIL),
		 -EPROTO);
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_PARAMS, 2, 1, BAD_STR_LONG));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_PARAMS, 2, 1, BAD_BIN),
		 -EPROTO);
	CHECK_OK(decode_built(MSG_PROTO_VERSION, MSG_AUDIO, 10, 9, BAD_BIN));
	CHECK_EQ(decode_built(MSG_PROTO_VERSION, MSG_AUDIO, 10, 9, BAD_STR),
		 -EPROTO);
}

/* TEXT and BIN one byte over their limit (big: built by hand). */
static void
msg_decode_sized_limits(void)
{
	size_t n = 16 + MSG_MAX_TEXT + 1;
	uint8_t *buf = calloc(1, n);
	struct msg m;
	uint32_t l;

	CHECK(buf);
	/* [1, PARAMS, 7, str32(MSG_MAX_TEXT + 1)] */
	buf[0] = 0x94; buf[1] = 0x01; buf[2] = MSG_PARAMS; buf[3] = 0x07;
	buf[4] = 0xdb;
	l = MSG_MAX_TEXT + 1;
	buf[5] = l >> 24; buf[6] = l >> 16; buf[7] = l >> 8; buf[8] = l;
	CHECK_EQ(msg_decode(buf, 9 + l, &m), -EPROTO);
	l = MSG_MAX_TEXT;
	buf[5] = l >> 24; buf[6] = l >> 16; buf[7] = l >> 8; buf[8] = l;
	CHECK_OK(msg_decode(buf, 9 + l, &m));
	CHECK_EQ(m.u.params.params.len, MSG_MAX_TEXT);
	/* [1, SHUTDOWN, bin32 ...]: a bin where a str belongs */
	buf[1] = 0x01; buf[2] = MSG_SHUTDOWN; buf[0] = 0x93; buf[3] = 0xc6;
	buf[4] = 0; buf[5] = 0; buf[6] = 0; buf[7] = 3;
	CHECK_EQ(msg_decode(buf, 11, &m), -EPROTO);
	free(buf);
}

static void
msg_decode_truncated_frame(void)
{
	struct msg a, b;
	uint8_t buf[256], *copy;
	size_t len, cut;

	msg_fill(&a, MSG_FRAME, 1);
	CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	for (cut = 0; cut < len; cut++) {
		/* exact-size heap copy, so ASan sees any read past the end */
		copy = malloc(cut ? cut : 1);
		CHECK(copy);
		memcpy(copy, buf, cut);
		CHECK_EQ(msg_decode(copy, cut, &b), -EPROTO);
		free(copy);
	}
	CHECK_OK(msg_decode(buf, len, &b));
}

static void
msg_decode_truncated_strings(void)
{
	struct msg a, b;
	uint8_t buf[64], *copy;
	size_t len, cut;

	memset(&a, 0, sizeof(a));
	a.type = MSG_STREAM_START;
	a.u.stream_start.request_id = msg_cstr("req-1");
	a.u.stream_start.params = msg_cstr("{\"a\":1}");
	CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	for (cut = 0; cut < len; cut++) {
		copy = malloc(cut ? cut : 1);
		CHECK(copy);
		memcpy(copy, buf, cut);
		CHECK_EQ(msg_decode(copy, cut, &b), -EPROTO);
		free(copy);
	}
}

static void
msg_decode_trailing_byte(void)
{
	struct msg a, b;
	uint8_t buf[256];
	size_t len;

	msg_fill(&a, MSG_FRAME, 2);
	CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	buf[len] = 0x00;
	CHECK_EQ(msg_decode(buf, len + 1, &b), -EPROTO);
	/* two messages back to back are not one message either */
	memcpy(buf + len, buf, len);
	CHECK_EQ(msg_decode(buf, 2 * len, &b), -EPROTO);
	CHECK_OK(msg_decode(buf, len, &b));
}

static void
msg_names_and_dirs(void)
{
	struct msg_str s;

	CHECK_STR(msg_type_name(MSG_FRAME), "FRAME");
	CHECK_STR(msg_type_name(MSG_PARAMS_ACK), "PARAMS_ACK");
	CHECK_STR(msg_type_name(MSG_SHUTDOWN), "SHUTDOWN");
	CHECK_STR(msg_type_name(MSG_NONE), "UNKNOWN");
	CHECK_STR(msg_type_name((enum msg_type)999), "UNKNOWN");
	CHECK(msg_is_from_worker(MSG_HELLO));
	CHECK(msg_is_from_worker(MSG_RESULT));
	CHECK(msg_is_from_worker(MSG_DATA));
	CHECK(!msg_is_from_worker(MSG_FRAME));
	CHECK(!msg_is_from_worker(MSG_SHUTDOWN));
	CHECK(!msg_is_from_worker(MSG_NONE));
	CHECK(!msg_is_from_worker((enum msg_type)999));
	s = msg_cstr(NULL);
	CHECK(s.ptr && s.len == 0);
	s = msg_cstr("abc");
	CHECK_EQ(s.len, 3);
}

/* ---- random mutations ---------------------------------------------------- */

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
msg_random_mutations(void)
{
	enum { ITER = 20000, CAP = 512 };
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	uint8_t src[CAP], *buf, re[CAP + 64];
	struct msg a, b, c;
	size_t len, relen, pos;
	int it, k, nmut, ok = 0, var;

	for (it = 0; it < ITER; it++) {
		var = (it & 1) ? 2 : 0; /* never the 10 MiB maxima */
		msg_fill(&a, all_types[it % NTYPES], var);
		CHECK_OK(msg_encode(&a, src, sizeof(src), &len));
		nmut = 1 + (int)(rnd(&seed) % 4);
		for (k = 0; k < nmut; k++) {
			pos = rnd(&seed) % len;
			switch (rnd(&seed) % 5) {
			case 0: src[pos] ^= (uint8_t)(1u << (rnd(&seed) % 8)); break;
			case 1: src[pos] = (uint8_t)rnd(&seed); break;
			case 2: len = pos + 1; break;
			case 3: /* insert */
				if (len < CAP - 1) {
					memmove(src + pos + 1, src + pos, len - pos);
					src[pos] = (uint8_t)rnd(&seed);
					len++;
				}
				break;
			default: /* delete */
				if (len > 1) {
					memmove(src + pos, src + pos + 1, len - pos - 1);
					len--;
				}
				break;
			}
		}
		buf = malloc(len);
		CHECK(buf);
		memcpy(buf, src, len);
		if (msg_decode(buf, len, &b) == 0) {
			ok++;
			CHECK_OK(msg_encode(&b, re, sizeof(re), &relen));
			CHECK_OK(msg_decode(re, relen, &c));
			CHECK_MSG(!msg_diff(&b, &c), "re-decode differs");
		}
		free(buf);
	}
	printf("  %d mutations, %d still decoded\n", ITER, ok);
}

/* ---- timing (printed, never asserted) ------------------------------------ */

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void
msg_frame_timing(void)
{
	enum { N = 200000 };
	struct msg a, b;
	uint8_t buf[256];
	size_t len;
	double t0, t1, t2;
	int i;

	msg_fill(&a, MSG_FRAME, 2);
	t0 = now_ns();
	for (i = 0; i < N; i++) {
		a.u.frame.seq = (uint64_t)i;
		CHECK_OK(msg_encode(&a, buf, sizeof(buf), &len));
	}
	t1 = now_ns();
	for (i = 0; i < N; i++)
		CHECK_OK(msg_decode(buf, len, &b));
	t2 = now_ns();
	printf("  FRAME %zu bytes: encode %.0f ns, decode %.0f ns\n", len,
	       (t1 - t0) / N, (t2 - t1) / N);
}

static const struct th_case cases[] = {
	TH_CASE(msg_roundtrip_all),
	TH_CASE(msg_decode_points_into_input),
	TH_CASE(msg_bound_is_enough),
	TH_CASE(msg_small_buffer_emsgsize),
	TH_CASE(msg_encode_rejects_bad_input),
	TH_CASE(msg_decode_version),
	TH_CASE(msg_decode_version_not_int),
	TH_CASE(msg_decode_unknown_type),
	TH_CASE(msg_decode_field_count),
	TH_CASE(msg_decode_not_an_array),
	TH_CASE(msg_decode_u32_rules),
	TH_CASE(msg_decode_u64_rules),
	TH_CASE(msg_decode_signed_rules),
	TH_CASE(msg_decode_sized_rules),
	TH_CASE(msg_decode_sized_limits),
	TH_CASE(msg_decode_truncated_frame),
	TH_CASE(msg_decode_truncated_strings),
	TH_CASE(msg_decode_trailing_byte),
	TH_CASE(msg_names_and_dirs),
	TH_CASE(msg_random_mutations),
	TH_CASE(msg_frame_timing),
	TH_END,
};

TH_MAIN(cases)
