/*
 * bench/transcode: our passthrough media path (decode -> frame -> encode,
 * one decoder thread and one x264 thread) against the ffmpeg CLI doing the
 * same transcode with the same settings, measured in the same run.
 * Inputs are generated first with the ffmpeg CLI (testsrc2) into /tmp.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "gateway/convert.h"
#include "gateway/decode.h"
#include "gateway/encode.h"

#define BENCH_SECS 4
#define BENCH_FPS 30
#define BENCH_GOP 2.0
#define BENCH_SLOTS 4 /* the ring's default --ring-slots */

struct run {
	convert *cv;
	encoder *enc;
	int w, h;
	uint8_t *slot[BENCH_SLOTS];
	bool busy[BENCH_SLOTS];
	size_t size[4];
	int stride[4];
	uint64_t frames, bytes;
	int dec_status, enc_status;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool enc_done;
};

/* The encoder dropped its last reference: the slot is free again. */
static void
run_release(void *o, uint8_t *data)
{
	struct run *r = o;

	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < BENCH_SLOTS; i++)
		if (r->slot[i] == data)
			r->busy[i] = false;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static int
run_video(void *o, AVFrame *f)
{
	struct run *r = o;
	uint8_t *plane[4];
	AVFrame *out = NULL;
	int ret, i;

	/* the real path: a free ring slot, the frame into it (the passthrough
	   case is a plane copy), and the slot to x264 with no copy; the slot
	   stays held until the encoder lets go of it */
	pthread_mutex_lock(&r->lock);
	for (;;) {
		for (i = 0; i < BENCH_SLOTS && r->busy[i]; i++)
			;
		if (i < BENCH_SLOTS)
			break;
		pthread_cond_wait(&r->cond, &r->lock);
	}
	r->busy[i] = true;
	pthread_mutex_unlock(&r->lock);
	plane[0] = r->slot[i];
	plane[1] = plane[0] + r->size[0];
	plane[2] = plane[1] + r->size[1];
	plane[3] = NULL;
	ret = convert_to_planes(r->cv, f, FP_FMT_YUV420P, r->w, r->h, plane,
	                        r->stride);
	if (ret == 0)
		ret = convert_wrap_planes(plane, r->stride, FP_FMT_YUV420P,
		                          r->w, r->h, f->pts, f->time_base,
		                          run_release, r, &out);
	if (ret < 0) {
		run_release(r, plane[0]);
		return ret;
	}
	ret = encoder_push_video(r->enc, out, true);
	av_frame_free(&out);
	r->frames++;
	return ret;
}

static void
run_dec_end(void *o, int status)
{
	struct run *r = o;

	r->dec_status = status;
}

static int
run_bytes(void *o, uint64_t seq, const uint8_t *buf, size_t len)
{
	struct run *r = o;

	r->bytes += len;
	return 0;
}

static void
run_enc_end(void *o, int status)
{
	struct run *r = o;

	pthread_mutex_lock(&r->lock);
	r->enc_status = status;
	r->enc_done = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

static double
cpu_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Our path over the file at path. Returns frames; *wall, *cpu in seconds. */
static long
bench_ours(const uint8_t *data, size_t len, int w, int h, double *wall,
           double *cpu)
{
	struct run r = {.w = w, .h = h};
	struct decoder_cfg dc = {.name = "bench", .threads = 1};
	struct decoder_callbacks dcb = {
	    .opaque = &r, .on_video = run_video, .on_end = run_dec_end};
	struct encoder_cfg ec = {.name = "bench",
	                         .threads = 1,
	                         .has_video = true,
	                         .gop_secs = BENCH_GOP,
	                         .frame_rate = {BENCH_FPS, 1}};
	struct encoder_callbacks ecb = {
	    .opaque = &r, .on_segment_bytes = run_bytes, .on_end = run_enc_end};
	size_t total;
	decoder *d = NULL;
	int64_t t0;
	double c0;

	pthread_mutex_init(&r.lock, NULL);
	pthread_cond_init(&r.cond, NULL);
	total = convert_layout(FP_FMT_YUV420P, w, h, r.stride, r.size);
	for (int i = 0; i < BENCH_SLOTS; i++)
		r.slot[i] = malloc(total);
	if (convert_create(&r.cv) < 0)
		exit(1);
	t0 = clock_now_ns();
	c0 = cpu_self();
	if (encoder_create(&r.enc, &ec, &ecb) < 0 ||
	    decoder_create(&d, &dc, &dcb) < 0) {
		fprintf(stderr, "transcode: cannot start the media path\n");
		exit(1);
	}
	for (size_t off = 0; off < len; off += 64 * 1024) {
		size_t n = len - off < 64 * 1024 ? len - off : 64 * 1024;

		if (decoder_push(d, data + off, n, true) < 0)
			break;
	}
	decoder_end(d);
	decoder_stop(d);
	encoder_end(r.enc);
	pthread_mutex_lock(&r.lock);
	while (!r.enc_done)
		pthread_cond_wait(&r.cond, &r.lock);
	pthread_mutex_unlock(&r.lock);
	*wall = (clock_now_ns() - t0) / 1e9;
	*cpu = cpu_self() - c0;
	if (getenv("TRANSCODE_VERBOSE"))
		fprintf(stderr, "ours %dx%d: %llu bytes out\n", w, h,
		        (unsigned long long)r.bytes);
	if (r.dec_status != 0 || r.enc_status != 0 || r.bytes == 0)
		fprintf(stderr,
		        "transcode: status decode %d encode %d bytes %llu\n",
		        r.dec_status, r.enc_status,
		        (unsigned long long)r.bytes);
	decoder_destroy(&d);
	encoder_destroy(&r.enc);
	convert_destroy(&r.cv);
	for (int i = 0; i < BENCH_SLOTS; i++)
		free(r.slot[i]);
	pthread_cond_destroy(&r.cond);
	pthread_mutex_destroy(&r.lock);
	return (long)r.frames;
}

/* Runs argv; returns its exit status; *wall and *cpu (children) in seconds. */
static int
bench_exec(char *const argv[], double *wall, double *cpu)
{
	struct rusage ru;
	int64_t t0 = clock_now_ns();
	int status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
		return -1;
	*wall = (clock_now_ns() - t0) / 1e9;
	*cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

int
main(int argc, char **argv)
{
	static const int sizes[][2] = {{512, 512}, {1280, 720}, {1920, 1080}};
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	double worst = 1e9;

	decoder_quiet_libav();
	printf("transcode: %d s of testsrc2 at %d fps, libx264 superfast "
	       "zerolatency "
	       "bf=0 gop %.0f s, 1 decoder + 1 x264 thread, best of %d\n",
	       BENCH_SECS, BENCH_FPS, BENCH_GOP, rounds);
	printf("%-10s %10s %10s %8s %12s %12s\n", "size", "ours fps", "cli fps",
	       "ratio", "ours cpu-fps", "cli cpu-fps");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int w = sizes[i][0], h = sizes[i][1];
		char path[128], src[128], frames_s[32];
		double best_ours = 0, best_cli = 0, cpu_ours = 0, cpu_cli = 0;
		struct stat st;
		size_t len = 0;
		uint8_t *data;
		long frames = 0;

		snprintf(path, sizeof(path), "/tmp/ctrickle-transcode-%dx%d.ts",
		         w, h);
		snprintf(src, sizeof(src), "testsrc2=size=%dx%d:rate=%d", w, h,
		         BENCH_FPS);
		snprintf(frames_s, sizeof(frames_s), "%d",
		         BENCH_SECS * BENCH_FPS);
		if (stat(path, &st) != 0) {
			char *gen[] = {
			    "ffmpeg",   "-nostdin", "-hide_banner", "-loglevel",
			    "error",    "-y",       "-f",           "lavfi",
			    "-i",       src,        "-frames:v",    frames_s,
			    "-c:v",     "libx264",  "-preset",      "veryfast",
			    "-bf",      "0",        "-g",           "60",
			    "-pix_fmt", "yuv420p",  "-f",           "mpegts",
			    path,       NULL};
			double a, b;

			if (bench_exec(gen, &a, &b) != 0) {
				fprintf(stderr,
				        "transcode: cannot generate %s\n",
				        path);
				return 1;
			}
		}
		data = slurp(path, &len);
		if (data == NULL)
			return 1;
		for (int k = 0; k < rounds; k++) {
			char *cli[] = {"ffmpeg",
			               "-nostdin",
			               "-hide_banner",
			               "-loglevel",
			               "error",
			               "-threads",
			               "1",
			               "-i",
			               path,
			               "-an",
			               "-c:v",
			               "libx264",
			               "-preset",
			               "superfast",
			               "-tune",
			               "zerolatency",
			               "-bf",
			               "0",
			               "-g",
			               "240",
			               "-force_key_frames",
			               "expr:gte(t,n_forced*2)",
			               "-threads",
			               "1",
			               "-f",
			               "mpegts",
			               "-y",
			               "/dev/null",
			               NULL};
			double wall, cpu;
			long n;

			if (bench_exec(cli, &wall, &cpu) != 0) {
				fprintf(stderr,
				        "transcode: ffmpeg CLI failed\n");
				return 1;
			}
			if (BENCH_SECS * BENCH_FPS / wall > best_cli) {
				best_cli = BENCH_SECS * BENCH_FPS / wall;
				cpu_cli = BENCH_SECS * BENCH_FPS / cpu;
			}
			n = bench_ours(data, len, w, h, &wall, &cpu);
			frames = n;
			if (n / wall > best_ours) {
				best_ours = n / wall;
				cpu_ours = n / cpu;
			}
		}
		free(data);
		if (frames != BENCH_SECS * BENCH_FPS)
			fprintf(stderr, "transcode: %ld frames, expected %d\n",
			        frames, BENCH_SECS * BENCH_FPS);
		printf("%4dx%-5d %10.1f %10.1f %8.2f %12.1f %12.1f\n", w, h,
		       best_ours, best_cli, best_ours / best_cli, cpu_ours,
		       cpu_cli);
		if (best_ours / best_cli < worst)
			worst = best_ours / best_cli;
	}
	printf(
	    "transcode ratio vs ffmpeg CLI (worst size): %.2f (goal >= 0.9)\n",
	    worst);
	return 0;
}
