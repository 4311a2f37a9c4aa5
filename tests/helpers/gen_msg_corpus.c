/*
 * Writes one valid encoding of every message type (two value sets each) into
 * the directory argv[1]: the seed corpus of tests/fuzz/corpus/msg_fuzz/.
 * Usage: gen_msg_corpus DIR
 */
#include "msg.h"

#include <stdio.h>
#include <string.h>

static const char gen_text[] = "{\"prompt\":\"a cat\",\"strength\":0.5}";
static const uint8_t gen_bin[] = { 0, 1, 2, 3, 0xfe, 0xff, 0x80, 0x7f };

static void
gen_U32(uint32_t *v, int var, int k)  { *v = var ? UINT32_MAX - k : (uint32_t)k; }
static void
gen_U64(uint64_t *v, int var, int k)  { *v = var ? UINT64_MAX : 1000u + k; }
static void
gen_I32(int32_t *v, int var, int k)   { *v = var ? INT32_MIN : -k; }
static void
gen_I64(int64_t *v, int var, int k)   { *v = var ? INT64_MIN : 90000; }
static void __attribute__((unused))
gen_BOOL(bool *v, int var, int k)     { *v = var; }
static void
gen_STR(struct msg_str *v, int var, int k)
{
	*v = msg_cstr(var ? "" : "stream-42");
}
static void
gen_TEXT(struct msg_str *v, int var, int k)
{
	*v = msg_cstr(var ? "{}" : gen_text);
}
static void
gen_BIN(struct msg_bin *v, int var, int k)
{
	v->ptr = gen_bin;
	v->len = var ? 0 : sizeof(gen_bin);
}

static int
gen_one(const char *dir, enum msg_type t, int var)
{
	struct msg m;
	uint8_t buf[1024];
	char path[4096];
	size_t len;
	FILE *f;
	int k = 0;

	memset(&m, 0, sizeof(m));
	m.type = t;
	switch (t) {
#define F(T, f) gen_##T(&p->f, var, k++);
#define MSG(E, id, n, dir, fields) \
	case MSG_##E: { struct msg_##n *p = &m.u.n; fields break; }
#include "msg.def"
#undef MSG
#undef F
	default:
		return -1;
	}
	if (msg_encode(&m, buf, sizeof(buf), &len) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/%s-%d", dir, msg_type_name(t), var);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
		return -1;
	return 0;
}

static const enum msg_type gen_types[] = {
#define F(T, f)
#define MSG(E, id, n, dir, fields) MSG_##E,
#include "msg.def"
#undef MSG
#undef F
};

int
main(int argc, char **argv)
{
	size_t i;
	int var;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	for (i = 0; i < sizeof(gen_types) / sizeof(gen_types[0]); i++)
		for (var = 0; var < 2; var++)
			if (gen_one(argv[1], gen_types[i], var)) {
				fprintf(stderr, "gen_msg_corpus: %s failed\n",
					msg_type_name(gen_types[i]));
				return 1;
			}
	return 0;
}
