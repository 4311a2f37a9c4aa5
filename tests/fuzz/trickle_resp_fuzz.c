/*
 * trickle_resp_fuzz: the trickle client's handling of HTTP responses, as
 * libcurl hands them over: status lines and header lines (Lp-Trickle-Seq,
 * -Latest, -Closed; 1xx interim answers; bad numbers), then body chunks
 * (the resume-after-a-cut skip). The header and body callbacks are static,
 * so this file includes gateway/trickle_sub.c and trickle_pub.c and drives
 * them without libcurl or an event loop (no transfer is ever started: the
 * subscriber is "ending", so no preconnect is made).
 * Input: lines split at '\n' (each handed on with its '\n', as libcurl
 * does); a line starting with "#B" is a body chunk of the rest of the line;
 * the first byte picks the resume skip.
 */
#include "../../gateway/trickle_sub.c"
#include "../../gateway/trickle_pub.c"

struct trf_sink {
	uint64_t bytes;
	int starts;
};

static void
trf_on_seg_start(void *arg, int64_t seq)
{
	struct trf_sink *k = arg;

	(void)seq;
	k->starts++;
}

static void
trf_on_data(void *arg, int64_t seq, const uint8_t *buf, size_t len)
{
	struct trf_sink *k = arg;

	(void)seq;
	/* Read every byte handed on: ASan checks they lie inside the chunk. */
	for (size_t i = 0; i < len; i++)
		k->bytes += buf[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	trickle_sub s = { 0 };
	struct sub_xfer x = { 0 };
	trickle_pub p = { 0 };
	struct pub_xfer px = { 0 };
	struct trf_sink k = { 0 };
	size_t at = 0;

	if (size == 0)
		return 0;
	s.s_ending = true; /* no preconnect: no libcurl needed */
	s.s_cbs.on_segment_start = trf_on_seg_start;
	s.s_cbs.on_data = trf_on_data;
	s.s_arg = &k;
	s.s_cur = &x;
	x.x_sub = &s;
	x.x_seq = -1;
	x.x_hdr_seq = INT64_MIN;
	x.x_hdr_latest = INT64_MIN;
	/* A resumed segment: the first byte says how much was handed on. */
	s.s_seg_open = data[0] & 1;
	s.s_seg_seq = 0;
	s.s_seg_bytes = data[0] >> 1;
	pthread_mutex_init(&p.p_lock, NULL);
	px.x_pub = &p;
	at = 1;
	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t n = nl ? (size_t)(nl - (data + at)) + 1 : size - at;
		/* An exact-size copy, so ASan sees any read past the line. */
		char *line = malloc(n + 1);

		if (!line)
			break;
		memcpy(line, data + at, n);
		if (!nl)
			line[n++] = '\n'; /* libcurl's lines always end so */
		if (n >= 2 && line[0] == '#' && line[1] == 'B') {
			if (n > 2)
				sub_on_body(line + 2, 1, n - 2, &x);
		} else {
			sub_on_header(line, 1, n, &x);
			pub_on_header(line, 1, n, &px);
		}
		free(line);
		at += nl ? (size_t)(nl - (data + at)) + 1 : size - at;
	}
	/* What the transfer's end would use must be coherent. */
	if (x.x_announced && !s.s_seg_open)
		abort();
	if (s.s_st.bytes_in > s.s_seg_bytes + 127)
		abort();
	(void)sub_xfer_seq(&x);
	pthread_mutex_destroy(&p.p_lock);
	return 0;
}
