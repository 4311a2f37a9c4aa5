/*
 * libFuzzer target for the whole HTTP API path: the input is a raw HTTP
 * request (request line, headers, body) sent over loopback to a live API with
 * a fake backend and a bearer token. Beyond params_fuzz it covers routing,
 * methods, the token check, X-Stream-Id/query naming and the status builders.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <jansson.h>

#include "gateway/api.h"
#include "log.h"

static int fz_streams; /* 0..2 running streams */

static int
fz_health(void *ctx)
{
	return fz_streams ? API_HEALTH_OK : API_HEALTH_IDLE;
}

static int
fz_count(void *ctx, char *only, size_t cap)
{
	if (fz_streams == 1)
		snprintf(only, cap, "a");
	return fz_streams;
}

static int
fz_start(void *ctx, const struct params_start *r, char *msg, size_t cap)
{
	if (strlen(r->request_id) % 5 == 0) {
		snprintf(msg, cap, "refused %s", r->request_id);
		return -EIO;
	}
	if (fz_streams < 2)
		fz_streams++;
	return fz_streams == 2 && r->params.json_len > 40 ? -EBUSY : 0;
}

static int
fz_update(void *ctx, const char *id, const struct params_values *v, char *msg, size_t cap)
{
	return strcmp(id, "a") && strcmp(id, "b") ? -ENOENT : 0;
}

static int
fz_stop(void *ctx, const char *id, char *msg, size_t cap)
{
	if (strcmp(id, "a") && strcmp(id, "b"))
		return -ENOENT;
	if (fz_streams)
		fz_streams--;
	return 0;
}

static int
fz_status(void *ctx, const char *id, json_t *out)
{
	if (id)
		json_object_set_new(out, "current_params",
			json_pack("{s:s}", "gateway_request_id", id));
	return 0;
}

static const struct api_backend_ops fz_ops = {
	.health = fz_health, .stream_count = fz_count, .start = fz_start,
	.update_params = fz_update, .stop = fz_stop, .status = fz_status,
};

static struct event_base *fz_base;
static api *fz_api;
static metrics *fz_metrics;

static int
fz_init(void)
{
	struct api_config cfg = { .host = "127.0.0.1", .port = 0,
		.auth_token = "tok", .max_body = 64 * 1024, .request_timeout_s = 2 };

	log_set_level(LOG_ERROR);
	if (!(fz_base = event_base_new()) || metrics_create(&fz_metrics) < 0)
		return -1;
	cfg.metrics = fz_metrics;
	return api_create(&fz_api, fz_base, &cfg, &fz_ops, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char buf[65536];
	int fd, done = 0;

	if (!fz_base && fz_init() < 0)
		abort();
	fz_streams = size ? data[0] % 3 : 0;
	sa.sin_port = htons((uint16_t)api_port(fz_api));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		close(fd);
		return 0;
	}
	/* Accept, send, and read the answer until EOF, driving the loop here. */
	for (int i = 0; i < 2000 && !done; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN | POLLOUT };
		ssize_t n;

		event_base_loop(fz_base, EVLOOP_NONBLOCK);
		if (poll(&p, 1, 1) <= 0)
			continue;
		if ((p.revents & POLLOUT) && data) {
			n = send(fd, data, size, MSG_NOSIGNAL);
			if (n > 0 && (size_t)n == size) {
				shutdown(fd, SHUT_WR);
				data = NULL;
			} else if (n > 0) {
				data += n;
				size -= (size_t)n;
			} else if (n < 0 && errno != EAGAIN) {
				done = 1;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, buf, sizeof(buf), 0);
			if (n == 0 || (n < 0 && errno != EAGAIN))
				done = 1;
		}
	}
	close(fd);
	event_base_loop(fz_base, EVLOOP_NONBLOCK);
	return 0;
}
