/*
 * Gateway <-> worker message codec, generated from msg.def: msgpack-c
 * encoding into the caller's fixed buffer (no allocation) and strict
 * decoding. Owns the byte format only; sockets live in common/ipc.
 */
#include "msg.h"

#include <errno.h>
#include <string.h>

#include <msgpack.h>

/* Largest field count of any message in msg.def. */
enum {
#define F(T, f) +1
#define MSG(E, id, n, dir, fields) MSG_NF_##E = 0 fields,
#include "msg.def"
#undef MSG
#undef F
};
/* Its maximum: the size of a union of one char array per message. */
union msg_nf_max {
#define F(T, f)
#define MSG(E, id, n, dir, fields) char E[MSG_NF_##E + 1];
#include "msg.def"
#undef MSG
#undef F
};
#define MSG_MAX_FIELDS (sizeof(union msg_nf_max) - 1)

/* ---- names and directions ---------------------------------------------- */

const char *
msg_type_name(enum msg_type t)
{
	switch (t) {
#define F(T, f)
#define MSG(E, id, n, dir, fields) case MSG_##E: return #E;
#include "msg.def"
#undef MSG
#undef F
	default:
		return "UNKNOWN";
	}
}

#define MSG_DIR_IS_W2G_W2G 1
#define MSG_DIR_IS_W2G_G2W 0

bool
msg_is_from_worker(enum msg_type t)
{
	switch (t) {
#define F(T, f)
#define MSG(E, id, n, dir, fields) case MSG_##E: return MSG_DIR_IS_W2G_##dir;
#include "msg.def"
#undef MSG
#undef F
	default:
		return false;
	}
}

struct msg_str
msg_cstr(const char *s)
{
	struct msg_str r = { "", 0 };
	size_t n;

	if (s) {
		n = strlen(s);
		r.ptr = s;
		r.len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	}
	return r;
}

/* ---- encoding ---------------------------------------------------------- */

/* The packer's sink: the caller's buffer; refuses to write past cap. */
struct msg_sink {
	uint8_t *buf;
	size_t cap;
	size_t len;
};

static int
msg_sink_write(void *data, const char *p, size_t n)
{
	struct msg_sink *s = data;

	if (n > s->cap - s->len)
		return -1;
	if (n) {
		memcpy(s->buf + s->len, p, n);
		s->len += n;
	}
	return 0;
}

/* Worst-case encoded size of one field, payload excluded. */
#define MSG_BOUND_U32  5u
#define MSG_BOUND_U64  9u
#define MSG_BOUND_I32  5u
#define MSG_BOUND_I64  9u
#define MSG_BOUND_BOOL 1u
#define MSG_BOUND_STR  5u
#define MSG_BOUND_TEXT 5u
#define MSG_BOUND_BIN  5u

#define MSG_PAYLOAD_U32(v)  0u
#define MSG_PAYLOAD_U64(v)  0u
#define MSG_PAYLOAD_I32(v)  0u
#define MSG_PAYLOAD_I64(v)  0u
#define MSG_PAYLOAD_BOOL(v) 0u
#define MSG_PAYLOAD_STR(v)  (size_t)(v).len
#define MSG_PAYLOAD_TEXT(v) (size_t)(v).len
#define MSG_PAYLOAD_BIN(v)  (size_t)(v).len

/* Array header (array16) + version + type. */
#define MSG_BOUND_HEAD (3u + 1u + 1u)

size_t
msg_encoded_bound(const struct msg *m)
{
	switch (m->type) {
#define F(T, f) + MSG_BOUND_##T + MSG_PAYLOAD_##T(p->f)
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { \
		const struct msg_##n *p = &m->u.n; \
		(void)p; \
		return MSG_BOUND_HEAD fields; \
	}
#include "msg.def"
#undef MSG
#undef F
	default:
		return MSG_BOUND_HEAD;
	}
}

static inline int
msg_put_U32(msgpack_packer *pk, uint32_t v)
{
	return msgpack_pack_uint32(pk, v);
}

static inline int
msg_put_U64(msgpack_packer *pk, uint64_t v)
{
	return msgpack_pack_uint64(pk, v);
}

static inline int
msg_put_I32(msgpack_packer *pk, int32_t v)
{
	return msgpack_pack_int32(pk, v);
}

static inline int
msg_put_I64(msgpack_packer *pk, int64_t v)
{
	return msgpack_pack_int64(pk, v);
}

/* BOOL: no field uses it yet. */
static inline int __attribute__((unused))
msg_put_BOOL(msgpack_packer *pk, bool v)
{
	return v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static inline int
msg_put_STR(msgpack_packer *pk, struct msg_str v)
{
	return msgpack_pack_str_with_body(pk, v.ptr, v.len);
}

#define msg_put_TEXT msg_put_STR

static inline int
msg_put_BIN(msgpack_packer *pk, struct msg_bin v)
{
	return msgpack_pack_bin_with_body(pk, v.ptr, v.len);
}

/* Field checks before packing: lengths within limits, no NULL payload. */
#define MSG_BAD_U32(v)  false
#define MSG_BAD_U64(v)  false
#define MSG_BAD_I32(v)  false
#define MSG_BAD_I64(v)  false
#define MSG_BAD_BOOL(v) false
#define MSG_BAD_STR(v)  ((v).len > MSG_MAX_STR || (!(v).ptr && (v).len))
#define MSG_BAD_TEXT(v) ((v).len > MSG_MAX_TEXT || (!(v).ptr && (v).len))
#define MSG_BAD_BIN(v)  ((v).len > MSG_MAX_BIN || (!(v).ptr && (v).len))

/*
 * Two passes over the fields: the first checks every field and writes the
 * header, the second packs. A bad field thus fails before any payload is
 * copied, and a short buffer fails in the packer's sink, never past cap.
 */
int
msg_encode(const struct msg *m, void *buf, size_t cap, size_t *len)
{
	struct msg_sink sink = { buf, cap, 0 };
	msgpack_packer pk;

	msgpack_packer_init(&pk, &sink, msg_sink_write);
	switch (m->type) {
#define F(T, f) \
	if (MSG_BAD_##T(p->f)) \
		return -EINVAL;
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { \
		const struct msg_##n *p = &m->u.n; \
		(void)p; \
		fields \
		if (msgpack_pack_array(&pk, 2 + MSG_NF_##E) || \
		    msgpack_pack_uint32(&pk, MSG_PROTO_VERSION) || \
		    msgpack_pack_uint32(&pk, MSG_##E)) \
			return -EMSGSIZE; \
		break; \
	}
#include "msg.def"
#undef MSG
#undef F
	default:
		return -EINVAL;
	}

	switch (m->type) {
#define F(T, f) \
	if (msg_put_##T(&pk, p->f)) \
		return -EMSGSIZE;
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { \
		const struct msg_##n *p = &m->u.n; \
		fields \
		break; \
	}
#include "msg.def"
#undef MSG
#undef F
	default:
		return -EINVAL;
	}
	*len = sink.len;
	return 0;
}

/* ---- decoding ---------------------------------------------------------- */

static uint64_t
msg_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = (v << 8) | *p++;
	return v;
}

/*
 * Byte length of the one scalar msgpack element at p (avail bytes left), or
 * -EPROTO for a container, an ext, a reserved byte or truncation. For a
 * non-negative integer also sets *ival and *is_uint.
 */
static int
msg_scan_elem(const uint8_t *p, size_t avail, size_t *size, uint64_t *ival,
	      bool *is_uint)
{
	uint8_t b = p[0];
	size_t hdr, body;

	*is_uint = false;
	if (b <= 0x7f) {
		*is_uint = true;
		*ival = b;
		*size = 1;
		return 0;
	}
	if (b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		*size = 1;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		hdr = 1;
		body = b & 0x1f;
		goto sized;
	}
	switch (b) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint 8..64 */
		hdr = 1;
		body = 1u << (b - 0xcc);
		if (avail < hdr + body)
			return -EPROTO;
		*is_uint = true;
		*ival = msg_be(p + 1, (unsigned)body);
		*size = hdr + body;
		return 0;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: /* int 8..64 */
		hdr = 1;
		body = 1u << (b - 0xd0);
		if (avail < hdr + body)
			return -EPROTO;
		if (!(p[1] & 0x80)) {
			*is_uint = true;
			*ival = msg_be(p + 1, (unsigned)body);
		}
		*size = hdr + body;
		return 0;
	case 0xca: /* float 32 */
		hdr = 1;
		body = 4;
		goto sized;
	case 0xcb: /* float 64 */
		hdr = 1;
		body = 8;
		goto sized;
	case 0xd9: case 0xc4: /* str 8, bin 8 */
		hdr = 2;
		break;
	case 0xda: case 0xc5: /* str 16, bin 16 */
		hdr = 3;
		break;
	case 0xdb: case 0xc6: /* str 32, bin 32 */
		hdr = 5;
		break;
	default: /* arrays, maps, ext, 0xc1: never in a message field */
		return -EPROTO;
	}
	if (avail < hdr)
		return -EPROTO;
	body = (size_t)msg_be(p + 1, (unsigned)(hdr - 1));
sized:
	if (avail < hdr || body > avail - hdr)
		return -EPROTO;
	*size = hdr + body;
	return 0;
}

/*
 * Shape check before msgpack-c sees the bytes: one array of scalars with a
 * sane count, every element complete, nothing after it, version right.
 * msgpack_unpack_next() allocates count * sizeof(msgpack_object) up front
 * for every array or map header, so a 5-byte input could make it ask for
 * 100+ GiB; nothing it is given here can.
 */
static int
msg_scan(const uint8_t *p, size_t len)
{
	size_t pos, n, i, sz;
	uint64_t v;
	bool is_uint;
	int rc;

	if (len == 0)
		return -EPROTO;
	if (p[0] >= 0x90 && p[0] <= 0x9f) {
		n = p[0] & 0x0f;
		pos = 1;
	} else if (p[0] == 0xdc && len >= 3) {
		n = (size_t)msg_be(p + 1, 2);
		pos = 3;
	} else if (p[0] == 0xdd && len >= 5) {
		n = (size_t)msg_be(p + 1, 4);
		pos = 5;
	} else {
		return -EPROTO;
	}
	if (n == 0 || pos == len)
		return -EPROTO;
	rc = msg_scan_elem(p + pos, len - pos, &sz, &v, &is_uint);
	if (rc)
		return rc;
	if (!is_uint)
		return -EPROTO;
	if (v != MSG_PROTO_VERSION)
		return -EBADMSG;
	pos += sz;
	if (n < 2 || n > 2 + MSG_MAX_FIELDS)
		return -EPROTO;
	for (i = 1; i < n; i++) {
		if (pos == len)
			return -EPROTO;
		rc = msg_scan_elem(p + pos, len - pos, &sz, &v, &is_uint);
		if (rc)
			return rc;
		pos += sz;
	}
	return pos == len ? 0 : -EPROTO;
}

static inline int
msg_get_U32(const msgpack_object *o, uint32_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
		return -EPROTO;
	*out = (uint32_t)o->via.u64;
	return 0;
}

static inline int
msg_get_U64(const msgpack_object *o, uint64_t *out)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EPROTO;
	*out = o->via.u64;
	return 0;
}

static inline int
msg_get_I64(const msgpack_object *o, int64_t *out)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return -EPROTO;
		*out = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = o->via.i64;
		return 0;
	}
	return -EPROTO;
}

static inline int
msg_get_I32(const msgpack_object *o, int32_t *out)
{
	int64_t v;

	if (msg_get_I64(o, &v) || v < INT32_MIN || v > INT32_MAX)
		return -EPROTO;
	*out = (int32_t)v;
	return 0;
}

static inline int __attribute__((unused))
msg_get_BOOL(const msgpack_object *o, bool *out)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return -EPROTO;
	*out = o->via.boolean;
	return 0;
}

static inline int
msg_get_str(const msgpack_object *o, uint32_t max, struct msg_str *out)
{
	if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max)
		return -EPROTO;
	out->ptr = o->via.str.size ? o->via.str.ptr : "";
	out->len = o->via.str.size;
	return 0;
}

static inline int
msg_get_STR(const msgpack_object *o, struct msg_str *out)
{
	return msg_get_str(o, MSG_MAX_STR, out);
}

static inline int
msg_get_TEXT(const msgpack_object *o, struct msg_str *out)
{
	return msg_get_str(o, MSG_MAX_TEXT, out);
}

static inline int
msg_get_BIN(const msgpack_object *o, struct msg_bin *out)
{
	if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > MSG_MAX_BIN)
		return -EPROTO;
	out->ptr = o->via.bin.size ? (const uint8_t *)o->via.bin.ptr :
				     (const uint8_t *)"";
	out->len = o->via.bin.size;
	return 0;
}

/* Fills m from the checked top-level array (version already verified). */
static int
msg_from_object(const msgpack_object_array *a, struct msg *m)
{
	const msgpack_object *o = a->ptr + 2;
	uint32_t type;

	if (msg_get_U32(&a->ptr[1], &type))
		return -EPROTO;
	switch (type) {
#define F(T, f) \
	if (msg_get_##T(o++, &p->f)) \
		return -EPROTO;
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { \
		struct msg_##n *p = &m->u.n; \
		if (a->size != 2 + MSG_NF_##E) \
			return -EPROTO; \
		m->type = MSG_##E; \
		fields \
		(void)p; \
		return 0; \
	}
#include "msg.def"
#undef MSG
#undef F
	default:
		return -EPROTO;
	}
}

int
msg_decode(const void *buf, size_t len, struct msg *m)
{
	msgpack_unpacked up;
	size_t off = 0;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = msg_scan(buf, len);
	if (rc)
		return rc;
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
	    off != len || up.data.type != MSGPACK_OBJECT_ARRAY) {
		rc = -EPROTO;
		goto out_destroy;
	}
	rc = msg_from_object(&up.data.via.array, m);
out_destroy:
	msgpack_unpacked_destroy(&up);
	if (rc)
		memset(m, 0, sizeof(*m));
	return rc;
}
