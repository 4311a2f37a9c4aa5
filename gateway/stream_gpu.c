/*
 * A stream's frames into and out of a CUDA ring's device slots: decoded
 * frames are converted into pinned staging and uploaded on the decoder
 * thread's CUDA stream, results are downloaded into pinned pool buffers on
 * the loop thread's, each copy waited for before the slot changes hands.
 * Never a memcpy into a slot pointer. Host rings never come here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gpu.h"
#include "log.h"
#include "stream_int.h"

int
stream_gpu_open(struct stream *s, bool cuda, int device)
{
	s->cuda = NULL;
	if (!cuda)
		return 0;
	s->cuda = calloc(1, sizeof(*s->cuda));
	if (!s->cuda)
		return -ENOMEM;
	s->cuda->device = device;
	s->cuda->slot_bytes = ring_slot_bytes(s->ring);
	return 0;
}

void
stream_gpu_close(struct stream *s)
{
	struct stream_cuda *c = s->cuda;

	if (!c)
		return;
	if (c->up_stream || c->down_stream)
		gpu_cuda_set_device(c->device);
	gpu_cuda_stream_destroy(&c->up_stream);
	gpu_cuda_stream_destroy(&c->down_stream);
	gpu_cuda_host_free(&c->up_staging);
	/* Buffers still at the encoder free themselves when released. */
	av_buffer_pool_uninit(&c->down_pool);
	free(c);
	s->cuda = NULL;
}

/* Logs the first failure of one direction of a stream. */
static void
stream_gpu_fail(struct stream *s, bool *once, const char *what, int rc)
{
	if (*once)
		return;
	*once = true;
	log_error("stream", "CUDA frame copy failed, frames dropped stream=%s "
	          "gpu=%d step=%s err=%s", s->request_id, s->cuda->device, what,
	          strerror(-rc));
}

int
stream_gpu_upload(struct stream *s, AVFrame *frame, uint8_t *slot_base,
                  const struct ring_frame *lay)
{
	struct stream_cuda *c = s->cuda;
	uint8_t *host[4] = { 0 };
	uint32_t hstride[4] = { 0 };
	int stride[4] = { 0 };
	const char *step;
	int rc;

	if (!c)
		return -EINVAL;
	step = "set_device";
	if ((rc = gpu_cuda_set_device(c->device)) < 0)
		goto err;
	step = "stream_create";
	if (!c->up_stream &&
	    (rc = gpu_cuda_stream_create(c->device, &c->up_stream)) < 0)
		goto err;
	step = "host_alloc";
	if (!c->up_staging &&
	    (rc = gpu_cuda_host_alloc(&c->up_staging, c->slot_bytes)) < 0)
		goto err;
	/* The staging has the slot's own layout: one copy per plane. */
	for (uint32_t p = 0; p < lay->planes && p < 4; p++) {
		host[p] = (uint8_t *)c->up_staging + lay->offset[p];
		hstride[p] = lay->stride[p];
		stride[p] = (int)lay->stride[p];
	}
	step = "convert";
	if ((rc = convert_to_planes(s->conv, frame, (enum fp_pixfmt)lay->format,
	                            (int)lay->width, (int)lay->height, host,
	                            stride)) < 0)
		return rc; /* a conversion problem, not a CUDA one */
	step = "upload";
	if ((rc = gpu_frame_upload(lay, slot_base, host, hstride,
	                           c->up_stream)) < 0)
		goto err;
	step = "stream_sync";
	if ((rc = gpu_cuda_stream_sync(c->up_stream)) < 0)
		goto err;
	return 0;

err:
	stream_gpu_fail(s, &c->up_failed, step, rc);
	return rc;
}

static void
stream_gpu_pool_free(void *opaque, uint8_t *data)
{
	void *p = data;

	(void)opaque;
	gpu_cuda_host_free(&p);
}

static AVBufferRef *
stream_gpu_pool_alloc(void *opaque, size_t size)
{
	void *p = NULL;
	AVBufferRef *b;

	(void)opaque;
	if (gpu_cuda_host_alloc(&p, size) < 0)
		return NULL;
	b = av_buffer_create(p, size, stream_gpu_pool_free, NULL, 0);
	if (!b)
		gpu_cuda_host_free(&p);
	return b;
}

AVFrame *
stream_gpu_download(struct stream *s, const uint8_t *slot_base,
                    const struct ring_frame *lay)
{
	struct stream_cuda *c = s->cuda;
	uint8_t *host[4] = { 0 };
	uint32_t hstride[4] = { 0 };
	AVFrame *fr = NULL;
	const char *step;
	int rc;

	if (!c)
		return NULL;
	step = "set_device";
	if ((rc = gpu_cuda_set_device(c->device)) < 0)
		goto err;
	step = "stream_create";
	if (!c->down_stream &&
	    (rc = gpu_cuda_stream_create(c->device, &c->down_stream)) < 0)
		goto err;
	rc = -ENOMEM;
	step = "pool";
	if (!c->down_pool &&
	    !(c->down_pool = av_buffer_pool_init2(c->slot_bytes, NULL,
	                                          stream_gpu_pool_alloc, NULL)))
		goto err;
	if (!(fr = av_frame_alloc()) ||
	    !(fr->buf[0] = av_buffer_pool_get(c->down_pool)))
		goto err;
	for (uint32_t p = 0; p < lay->planes && p < 4; p++) {
		host[p] = fr->buf[0]->data + lay->offset[p];
		hstride[p] = lay->stride[p];
		fr->data[p] = host[p];
		fr->linesize[p] = (int)lay->stride[p];
	}
	step = "download";
	if ((rc = gpu_frame_download(lay, slot_base, host, hstride,
	                             c->down_stream)) < 0)
		goto err;
	step = "stream_sync";
	if ((rc = gpu_cuda_stream_sync(c->down_stream)) < 0)
		goto err;
	fr->format = convert_av_pixfmt((enum fp_pixfmt)lay->format);
	fr->width = (int)lay->width;
	fr->height = (int)lay->height;
	return fr;

err:
	av_frame_free(&fr);
	stream_gpu_fail(s, &c->down_failed, step, rc);
	return NULL;
}
