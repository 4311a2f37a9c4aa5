/*
 * invert_cuda: the CUDA reference FrameProcessor. Asks for RGB24 frames in
 * device memory (FP_MEM_CUDA) and writes 255 - v of every byte of every
 * plane into the output slot with one kernel launch per plane, enqueued on
 * the frame's CUDA stream (the worker synchronises it after the call).
 * Host frames (a worker on the host ring) are inverted on the CPU instead.
 */
#include <errno.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#include "frame_processor.h"

struct invert_cuda {
	const struct fp_host *host;
	unsigned long long frames;
};

/* One thread per byte of a row x rows plane; pitched in and out. */
__global__ void
invert_cuda_kernel(const unsigned char *in, unsigned int in_stride,
                   unsigned char *out, unsigned int out_stride,
                   unsigned int row_bytes, unsigned int rows)
{
	unsigned int x = blockIdx.x * blockDim.x + threadIdx.x;
	unsigned int y = blockIdx.y * blockDim.y + threadIdx.y;

	if (x < row_bytes && y < rows)
		out[(size_t)y * out_stride + x] =
		    (unsigned char)(255 - in[(size_t)y * in_stride + x]);
}

static int
invert_cuda_init(const struct fp_host *host, const char *config_json,
                 void **self)
{
	struct invert_cuda *s =
	    (struct invert_cuda *)calloc(1, sizeof(struct invert_cuda));

	(void)config_json;
	if (!s)
		return -ENOMEM;
	s->host = host;
	*self = s;
	return FP_OK;
}

static void
invert_cuda_fini(void *self)
{
	free(self);
}

static int
invert_cuda_host(const struct fp_video_frame *in, struct fp_video_frame *out,
                 int p, unsigned int row_bytes, unsigned int rows)
{
	for (unsigned int y = 0; y < rows; y++) {
		const uint8_t *src = in->plane[p] + (size_t)y * in->stride[p];
		uint8_t *dst = out->plane[p] + (size_t)y * out->stride[p];

		for (unsigned int x = 0; x < row_bytes; x++)
			dst[x] = (uint8_t)(255 - src[x]);
	}
	return FP_OK;
}

static int
invert_cuda_process_video(void *self, const struct fp_video_frame *in,
                          struct fp_video_frame *out)
{
	struct invert_cuda *s = (struct invert_cuda *)self;

	if (in->format >= FP_FMT_COUNT || out->format != in->format)
		return -EINVAL;
	out->width = in->width;
	out->height = in->height;
	for (int p = 0; p < 4; p++) {
		unsigned int row_bytes = fp_plane_row_bytes(in->format,
		                                            in->width, p);
		unsigned int rows = fp_plane_rows(in->format, in->height, p);

		if (row_bytes == 0 || rows == 0)
			break;
		if (!in->plane[p] || !out->plane[p] ||
		    in->stride[p] < row_bytes || out->stride[p] < row_bytes)
			return -EINVAL;
		if (in->mem != FP_MEM_CUDA) {
			invert_cuda_host(in, out, p, row_bytes, rows);
			continue;
		}
		dim3 block(32, 8);
		dim3 grid((row_bytes + block.x - 1) / block.x,
		          (rows + block.y - 1) / block.y);
		invert_cuda_kernel<<<grid, block, 0,
		                     (cudaStream_t)in->cuda_stream>>>(
		    in->plane[p], in->stride[p], out->plane[p], out->stride[p],
		    row_bytes, rows);
		cudaError_t e = cudaGetLastError();
		if (e != cudaSuccess) {
			s->host->log(FP_LOG_ERROR, "invert_cuda launch: %s",
			             cudaGetErrorName(e));
			return -EIO;
		}
	}
	s->frames++;
	return FP_OK;
}

/* Positional (nvcc compiles C++): member order of struct fp_plugin. */
static const struct fp_plugin invert_cuda_plugin = {
	FP_ABI_VERSION,
	sizeof(struct fp_plugin),
	"invert_cuda",
	"1.0",
	{ FP_FMT_RGB24, FP_MEM_CUDA },
	invert_cuda_init,
	invert_cuda_fini,
	invert_cuda_process_video,
	NULL, /* process_audio */
	NULL, /* update_params */
	NULL, /* stream_start */
	NULL, /* stream_stop */
};

extern "C" {
FP_PLUGIN_DEFINE(invert_cuda_plugin)
}
