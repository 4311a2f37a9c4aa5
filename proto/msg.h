/*
 * Gateway <-> worker messages: types generated from msg.def, msgpack-c
 * encoding, strict decoding. Owns the wire format only; transport is
 * common/ipc. Wire form: a msgpack array [MSG_PROTO_VERSION, type, fields...]
 * with exactly the fields of msg.def in order.
 */
#ifndef CT_MSG_H
#define CT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_PROTO_VERSION 1u

#define MSG_MAX_STR  4096u              /* STR fields: names, reasons */
#define MSG_MAX_TEXT (10u * 1024 * 1024) /* TEXT fields: JSON params, events */
#define MSG_MAX_BIN  (4u * 1024 * 1024)  /* BIN fields: audio samples */

/* FRAME.flags */
#define MSG_FRAME_RESEND 0x1u /* re-sent after the previous worker died */

/* HELLO.caps: which optional callbacks the plugin has */
#define MSG_CAP_AUDIO        0x1u
#define MSG_CAP_PARAMS       0x2u
#define MSG_CAP_STREAM_START 0x4u
#define MSG_CAP_STREAM_STOP  0x8u

/* A string or byte field; after msg_decode it points into the input buffer. */
struct msg_str { const char *ptr; uint32_t len; };
struct msg_bin { const uint8_t *ptr; uint32_t len; };

#define MSG_CTYPE_U32  uint32_t
#define MSG_CTYPE_U64  uint64_t
#define MSG_CTYPE_I32  int32_t
#define MSG_CTYPE_I64  int64_t
#define MSG_CTYPE_BOOL bool
#define MSG_CTYPE_STR  struct msg_str
#define MSG_CTYPE_TEXT struct msg_str
#define MSG_CTYPE_BIN  struct msg_bin

enum msg_type {
	MSG_NONE = 0,
#define F(T, f)
#define MSG(E, id, n, dir, fields) MSG_##E = id,
#include "msg.def"
#undef MSG
#undef F
	MSG_TYPE_END
};

#define F(T, f) MSG_CTYPE_##T f;
#define MSG(E, id, n, dir, fields) struct msg_##n { fields };
#include "msg.def"
#undef MSG
#undef F

struct msg {
	enum msg_type type;
	union {
#define F(T, f)
#define MSG(E, id, n, dir, fields) struct msg_##n n;
#include "msg.def"
#undef MSG
#undef F
	} u;
};

/*
 * Encodes m into buf (cap bytes). Returns 0 and sets *len, -EMSGSIZE if it
 * does not fit (msg_encoded_bound() says how much is enough), -EINVAL for an
 * unknown type or a field over its limit. Never allocates.
 */
int msg_encode(const struct msg *m, void *buf, size_t cap, size_t *len);

/* An upper bound of the encoded size of m. */
size_t msg_encoded_bound(const struct msg *m);

/*
 * Decodes exactly one message from buf. Strict: wrong version, unknown type,
 * wrong field count or type, out-of-range integers, oversized strings,
 * truncated or trailing bytes all fail with -EPROTO (-EBADMSG for a version
 * mismatch). On success STR/TEXT/BIN fields point into buf (not
 * NUL-terminated): buf must outlive their use. Never reads outside buf.
 */
int msg_decode(const void *buf, size_t len, struct msg *m);

/* "FRAME", "RESULT", ... or "UNKNOWN". */
const char *msg_type_name(enum msg_type t);

/* True when t is a type that the gateway may receive from a worker (W2G). */
bool msg_is_from_worker(enum msg_type t);

/* Builds a struct msg_str over a NUL-terminated C string (NULL gives ""). */
struct msg_str msg_cstr(const char *s);

#endif
