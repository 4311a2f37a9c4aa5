/*
 * build/trickle-server: a standalone trickle server (go-livepeer semantics)
 * for local runs, demos and tests. Owns the command line, the event loop and
 * the SIGINT/SIGTERM handling; the protocol lives in tserver.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <event2/event.h>

#include "log.h"
#include "tserver.h"

static void
main_usage(FILE *f)
{
	fprintf(f,
"usage: trickle-server [options]\n"
"  --host ADDR              listen address (127.0.0.1; 0.0.0.0 for all)\n"
"  --port N                 TCP port (2939; 0 = any free port)\n"
"  --port-file PATH         write the bound port there once listening\n"
"  --base-path P            URL prefix of channels (/)\n"
"  --no-autocreate          channels must be created with POST /{ch} first\n"
"                           (go-livepeer); default: first POST creates\n"
"  --idle-timeout-ms N      close channels idle this long (300000)\n"
"  --sweep-interval-ms N    idle sweep period (60000)\n"
"  --continue-interval-ms N interim 100 Continue period for POSTs (10000)\n"
"  --max-segment-mb N       per-segment size cap, 413 beyond (64)\n"
"  --max-channels N         channel count cap, 503 beyond (100000)\n"
"  --log-level L            error|warn|info|debug (info)\n"
"  --help                   this text\n");
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	log_info("tserver", "signal received, shutting down sig=%d", (int)sig);
	event_base_loopbreak(arg);
}

static int
main_num(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* What to do about a listen failure, for the error line. */
static const char *
main_listen_hint(int rc)
{
	switch (rc) {
	case -EADDRINUSE:
		return "the port is in use: stop the other server, pick another "
		       "--port, or --port 0 for any free one";
	case -EACCES:
		return "ports below 1024 need privileges: pick --port 1024 or "
		       "above";
	case -EADDRNOTAVAIL:
		return "--host is not an address of this machine";
	default:
		return "check --host and --port";
	}
}

int
main(int argc, char **argv)
{
	enum { O_HOST = 256, O_PORT, O_PORTFILE, O_BASE, O_NOAUTO, O_IDLE,
	       O_SWEEP, O_CONT, O_MAXSEG, O_MAXCH, O_LOG, O_HELP };
	static const struct option lopts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "port-file", required_argument, NULL, O_PORTFILE },
		{ "base-path", required_argument, NULL, O_BASE },
		{ "no-autocreate", no_argument, NULL, O_NOAUTO },
		{ "idle-timeout-ms", required_argument, NULL, O_IDLE },
		{ "sweep-interval-ms", required_argument, NULL, O_SWEEP },
		{ "continue-interval-ms", required_argument, NULL, O_CONT },
		{ "max-segment-mb", required_argument, NULL, O_MAXSEG },
		{ "max-channels", required_argument, NULL, O_MAXCH },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct tserver_opts o;
	struct event_base *base;
	struct event *sigint, *sigterm;
	const char *port_file = NULL;
	enum log_level lvl;
	tserver *srv = NULL;
	long long v;
	int opt, rc, ret = 1;

	log_set_tag("trickle-server");
	tserver_opts_default(&o);
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		rc = 0;
		switch (opt) {
		case O_HOST: o.host = optarg; break;
		case O_PORT:
			rc = main_num(optarg, 0, 65535, &v);
			o.port = (int)v;
			break;
		case O_PORTFILE: port_file = optarg; break;
		case O_BASE: o.base_path = optarg; break;
		case O_NOAUTO: o.autocreate = false; break;
		case O_IDLE:
			rc = main_num(optarg, 1, 1LL << 40, &v);
			o.idle_timeout_ms = v;
			break;
		case O_SWEEP:
			rc = main_num(optarg, 1, 1LL << 40, &v);
			o.sweep_interval_ms = v;
			break;
		case O_CONT:
			rc = main_num(optarg, 1, 1LL << 40, &v);
			o.continue_ms = v;
			break;
		case O_MAXSEG:
			rc = main_num(optarg, 1, 1LL << 20, &v);
			o.max_segment_bytes = (size_t)v << 20;
			break;
		case O_MAXCH:
			rc = main_num(optarg, 1, 10000000, &v);
			o.max_channels = (unsigned)v;
			break;
		case O_LOG:
			rc = log_parse_level(optarg, &lvl);
			if (rc == 0)
				log_set_level(lvl);
			break;
		case 'h':
		case O_HELP:
			main_usage(stdout);
			return 0;
		default:
			main_usage(stderr);
			return 2;
		}
		if (rc < 0) {
			fprintf(stderr, "trickle-server: bad value for option: %s\n",
				optarg);
			return 2;
		}
	}
	if (optind < argc) {
		main_usage(stderr);
		return 2;
	}
	if (inet_pton(AF_INET, o.host, &(struct in_addr){ 0 }) != 1) {
		fprintf(stderr, "trickle-server: bad --host %s: an IPv4 "
			"address is expected (127.0.0.1, or 0.0.0.0 for all "
			"interfaces)\n", o.host);
		return 2;
	}
	if (o.base_path[0] != '/' || strlen(o.base_path) > 200) {
		fprintf(stderr, "trickle-server: bad --base-path %s: it must "
			"start with / and be at most 200 bytes (e.g. "
			"/ai/trickle/)\n", o.base_path);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (!base)
		return 1;
	sigint = evsignal_new(base, SIGINT, main_signal_cb, base);
	sigterm = evsignal_new(base, SIGTERM, main_signal_cb, base);
	if (!sigint || !sigterm)
		goto out_free_signals;
	event_add(sigint, NULL);
	event_add(sigterm, NULL);
	rc = tserver_create(&srv, base, &o);
	if (rc < 0) {
		log_error("tserver", "cannot listen (%s) host=%s port=%d err=%s",
			  main_listen_hint(rc), o.host, o.port, strerror(-rc));
		ret = rc == -EINVAL ? 2 : 1;
		goto out_free_signals;
	}
	log_info("tserver", "listening host=%s port=%d base=%s autocreate=%d",
		 o.host, tserver_port(srv), o.base_path, o.autocreate);
	if (port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		rc = f ? fprintf(f, "%d\n", tserver_port(srv)) : -1;
		if (f && fclose(f) != 0)
			rc = -1;
		if (rc < 0 || rename(tmp, port_file) != 0) {
			log_error("tserver", "cannot write port file path=%s",
				  port_file);
			goto out_destroy;
		}
	}
	event_base_dispatch(base);
	ret = 0;
out_destroy:
	tserver_destroy(&srv);
out_free_signals:
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	event_base_free(base);
	return ret;
}
