/*
 * sluice produce: JSON lines on stdin, one event each, produced through
 * libsluice; a summary on stderr; with --print-acks one JSON line per acked
 * event on stdout.
 *
 * stdin and the connection are watched together with poll(), so acks are
 * printed while input trickles in, and a partial batch goes out as soon as
 * stdin has nothing more for now. Per-event state (id, line number) lives in
 * a ring indexed by sequence: libsluice keeps every in-flight sequence
 * within max_inflight of the oldest unanswered one, so the ring never
 * overwrites an entry that can still be answered.
 *
 * --producer NAME: the input is the stream named NAME, its event i (the
 * i-th good line, from 0) sequence i. The server says where the name's
 * stored events end (sl_client_resume_sequence), and the events before
 * that are skipped, so a killed run done again on the same input stores
 * every event once. Hence the input must be the same in every run.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "cli/cli.h"
#include "sluice/client.h"
#include "json/json.h"

/* A power of two: the ring below is indexed by sequence & (size - 1). */
#define SL__WINDOW 8192
/* A line longer than this cannot be an event (frames are 1 MiB by default,
 * and JSON escapes at most sextuple a byte). */
#define SL__MAX_LINE (64u << 20)
/* Past this many, refusals and bad lines are counted but not each shown. */
#define SL__MAX_REPORTS 1000
#define SL__READ_CHUNK  (64u << 10)

struct sl__slot {
	uint8_t id[SL_EVENT_ID_LEN];
	uint64_t line;
};

struct sl__produce {
	struct sl_client *c;
	bool print_acks;
	struct sl__slot *slots;
	uint64_t read, bad, acked, refused, reports;
	/* --producer: events of the input seen (skipped or produced), and how
	 * many to skip: what the server holds of the stream. */
	const char *name;
	uint64_t events, skip;
	bool stdout_failed;
	bool unflushed; /* acks printed since the last fflush */
	struct sl_client_header *hdrs;
	size_t hdr_cap;
};

static void sl__produce_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: sluice produce [--topic T] [--print-acks] [--timeout S] [--producer NAME]\n"
	    "                      [--server HOST:PORT[,HOST:PORT...]]\n"
	    "\n"
	    "Reads JSON lines on stdin, one event each, and produces them:\n"
	    "  {\"type\": \"OrderPlaced\", \"aggregate\": \"order-17\", \"data\": {\"total\": "
	    "12.5}}\n"
	    "Keys: type and aggregate (required, non-empty strings); id (a UUID string;\n"
	    "default: a random v4 id); timestamp (ms since the epoch or an RFC 3339 string;\n"
	    "default: now); data (any JSON) or data_b64 (base64 bytes); headers (object of\n"
	    "strings); schema_version. Blank lines are skipped; a bad line is reported with\n"
	    "its number and skipped, and makes the exit status non-zero.\n"
	    "\n"
	    "  --topic T       topic to produce to (default: events)\n"
	    "  --print-acks    print one JSON line per acked event on stdout:\n"
	    "                  {\"id\":...,\"partition\":P,\"offset\":O,\"token\":\"P:O\"}\n"
	    "                  (and \"duplicate\":true when the server had stored it before,\n"
	    "                  whoever sent it: the offset is the original's)\n"
	    "                  (the token is opaque: pass it to `sluice query --min-offset`)\n"
	    "  --timeout S     retry for at most S seconds (default 30): after the input ends,\n"
	    "                  and whenever the in-flight window stays full, until every\n"
	    "                  event is acked; then exit non-zero saying how many were "
	    "not\n"
	    "  --producer NAME name this producer (printable ASCII, no spaces, at most 255\n"
	    "                  bytes): the input is the stream NAME, its i-th event (from 0,\n"
	    "                  bad and blank lines not counted) is sequence i. The server\n"
	    "                  keeps where the stream's stored events end; a run skips that\n"
	    "                  many events of its input (stderr says how many), so running\n"
	    "                  a killed `sluice produce --producer NAME` again on the same\n"
	    "                  input stores every event exactly once. A new run fences an\n"
	    "                  older one still running (ERR_FENCED). One name, one input.\n"
	    "                  Not in cluster mode yet.\n" SL_CLI_SERVER_USAGE SL_CLI_TOKEN_USAGE
	    "\n"
	    "Connection failures are retried (reconnect, resend with the original sequence\n"
	    "numbers). In a cluster each event goes to its partition's leader (one\n"
	    "connection per leader node); an event refused with ERR_NOT_LEADER, or left on\n"
	    "a failed leader, is sent to the new leader once Metadata names it. A summary\n"
	    "goes to stderr: events read, acked, refused, seconds.\n"
	    "Exit status: 0 when every event was acked and every line was good, 1 otherwise,\n"
	    "2 for bad usage.\n");
}

static void sl__produce_on_ack(void *arg, const struct sl_client_ack *a)
{
	struct sl__produce *p = arg;
	struct sl__slot *s = &p->slots[a->sequence & (SL__WINDOW - 1)];

	if (a->status == -ECANCELED)
		return; /* close() after a timeout: counted as not acked */
	if (a->status == 0) {
		p->acked++;
		if (p->print_acks && !p->stdout_failed) {
			char id[SL_UUID_STR_LEN + 1];
			sl_uuid_format(s->id, id);
			/* "duplicate" only when true: the line is as before otherwise. */
			if (printf("{\"id\":\"%s\",\"partition\":%u,\"offset\":%llu,\"token\":\"%u:"
			           "%llu\"%s}\n",
			           id, a->partition, (unsigned long long)a->offset, a->partition,
			           (unsigned long long)a->offset,
			           a->duplicate ? ",\"duplicate\":true" : "") < 0)
				p->stdout_failed = true;
			p->unflushed = true;
		}
		return;
	}
	if (a->code)
		p->refused++;
	if (p->reports++ < SL__MAX_REPORTS) {
		if (a->code)
			fprintf(stderr,
			        "sluice produce: line %llu: refused by the server: %s%s%.*s\n",
			        (unsigned long long)s->line, sl_client_code_name(a->code),
			        a->message_len ? ": " : "", (int)a->message_len, a->message);
		else
			fprintf(stderr, "sluice produce: line %llu: not stored: %s\n",
			        (unsigned long long)s->line, sl_strerror(a->status));
	}
}

/* Produces one parsed line. 0, or <0 when producing must stop. */
static int sl__produce_event(struct sl__produce *p, const char *topic, struct sl_json_event *je,
                             uint64_t line)
{
	if (je->n_headers > p->hdr_cap) {
		struct sl_client_header *h = realloc(p->hdrs, je->n_headers * sizeof(*h));
		if (!h)
			return -ENOMEM;
		p->hdrs = h;
		p->hdr_cap = je->n_headers;
	}
	for (size_t i = 0; i < je->n_headers; i++)
		p->hdrs[i] = (struct sl_client_header){
		    .key = je->headers[i].key,
		    .key_len = je->headers[i].key_len,
		    .value = je->headers[i].value,
		    .value_len = je->headers[i].value_len,
		};
	struct sl_client_event ev = {
	    .id = je->ev.id,
	    .type = je->ev.type,
	    .type_len = je->ev.type_len,
	    .aggregate = je->ev.aggregate,
	    .aggregate_len = je->ev.aggregate_len,
	    .timestamp_ms = je->ev.timestamp_ms,
	    .data = je->ev.data,
	    .data_len = je->ev.data_len,
	    .headers = p->hdrs,
	    .n_headers = je->n_headers,
	    .schema_version = je->ev.schema_version,
	};
	uint64_t seq;
	int ret = sl_client_produce(p->c, topic, &ev, &seq);
	if (ret < 0)
		return ret;
	/* The contract of a name: event i is sequence i. libsluice counts on
	 * from the resume sequence, one per event produced, so this holds
	 * unless the library changed under us: stop rather than store events
	 * under another event's sequence. */
	if (p->name && seq != p->events++) {
		fprintf(stderr, "sluice produce: event %llu got sequence %llu\n",
		        (unsigned long long)p->events - 1, (unsigned long long)seq);
		return -EPROTO;
	}
	/* Only produce() itself could answer seq, and it answers nothing of
	 * an event before that event is in a batch: filling the slot now is
	 * in time for the callback. */
	struct sl__slot *s = &p->slots[seq & (SL__WINDOW - 1)];
	memcpy(s->id, je->ev.id, SL_EVENT_ID_LEN);
	s->line = line;
	p->read++;
	return 0;
}

static int sl__produce_line(struct sl__produce *p, const char *topic, struct sl_json_event *je,
                            struct sl_uuid_rng *rng, const char *line, size_t len, uint64_t lineno)
{
	char err[256];
	int ret = sl_json_event_parse(line, len, (int64_t)(sl_wall_ns() / 1000000u), rng, je, err,
	                              sizeof(err));
	if (ret == -ENODATA)
		return 0;
	if (ret == -EINVAL) {
		if (p->bad++ < SL__MAX_REPORTS)
			fprintf(stderr, "sluice produce: line %llu: %s\n",
			        (unsigned long long)lineno, err);
		return 0;
	}
	if (ret < 0)
		return ret;
	if (p->events < p->skip) {
		p->events++; /* stored by an earlier run of this name */
		return 0;
	}
	return sl__produce_event(p, topic, je, lineno);
}

int sl_cli_produce(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"topic", required_argument, NULL, 't'},
	    {"print-acks", no_argument, NULL, 'a'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"server", required_argument, NULL, 's'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"producer", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *token_file = NULL;
	struct sl__produce p = {0};
	struct sl_cli_server srv;
	const char *topic = "events";
	double timeout_s = 30;
	int opt, status = 1, ret;

	if (sl_cli_server_default(&srv) < 0) {
		fprintf(stderr,
		        "sluice produce: SLUICE_SERVER: expected HOST:PORT[,HOST:PORT...]\n");
		return 2;
	}
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't':
			topic = optarg;
			if (!*topic) {
				fprintf(stderr, "sluice produce: --topic: empty name\n");
				return 2;
			}
			break;
		case 'a':
			p.print_acks = true;
			break;
		case 'T':
			if (sl_cli_parse_double(optarg, 0.001, 1e7, &timeout_s) < 0) {
				fprintf(
				    stderr,
				    "sluice produce: --timeout: expected seconds > 0, got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 's':
			if (sl_cli_servers_parse(optarg, &srv) < 0) {
				fprintf(
				    stderr,
				    "sluice produce: --server: expected HOST:PORT[,HOST:PORT...], "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'P':
			p.name = optarg;
			break;
		case 'h':
			sl__produce_usage(stdout);
			return 0;
		default:
			sl__produce_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice produce: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (sl_cli_token("sluice produce", token_file, &srv) < 0)
		return 2;

	uint32_t timeout_ms = (uint32_t)(timeout_s * 1000 + 0.5);
	if (!timeout_ms)
		timeout_ms = 1;
	struct sl_json_event je = {0};
	struct sl_uuid_rng rng;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint64_t lineno = 0, t0 = sl_now_ns();
	bool eof = false, skipping = false, stop = false;

	p.slots = calloc(SL__WINDOW, sizeof(*p.slots));
	if (!p.slots || sl_uuid_rng_seed(&rng) < 0) {
		fprintf(stderr, "sluice produce: out of memory or entropy\n");
		goto out;
	}
	struct sl_client_opts co = {
	    .servers = srv.list,
	    .client_name = "sluice produce",
	    .token = srv.token,
	    .topic = topic,
	    .max_inflight = SL__WINDOW,
	    .block_timeout_ms = timeout_ms,
	    .on_ack = sl__produce_on_ack,
	    .arg = &p,
	    .producer_name = p.name,
	};
	char err[256];
	ret = sl_client_connect(&co, &p.c, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluice produce: cannot connect: %s\n", err);
		goto out;
	}
	if (p.name) {
		p.skip = sl_client_resume_sequence(p.c);
		p.events = 0;
		fprintf(stderr,
		        "sluice produce: producer %s resumes at sequence %llu: skipping the "
		        "first %llu events of the input\n",
		        p.name, (unsigned long long)p.skip, (unsigned long long)p.skip);
	}
	int cfd = sl_client_fd(p.c);
	if (cfd < 0) {
		fprintf(stderr, "sluice produce: %s\n", sl_strerror(cfd));
		goto out;
	}

	while (!stop) {
		/* Every complete line in the buffer. */
		size_t start = 0;
		char *nl;
		while (!stop && start < len && (nl = memchr(buf + start, '\n', len - start))) {
			size_t n = (size_t)(nl - (buf + start)) + 1;
			lineno++;
			if (skipping) {
				skipping = false; /* the rest of an overlong line */
			} else {
				ret =
				    sl__produce_line(&p, topic, &je, &rng, buf + start, n, lineno);
				if (ret < 0)
					stop = true;
			}
			start += n;
		}
		if (start) {
			memmove(buf, buf + start, len - start);
			len -= start;
		}
		if (stop || eof)
			break;
		if (len >= SL__MAX_LINE) {
			if (p.bad++ < SL__MAX_REPORTS)
				fprintf(stderr, "sluice produce: line %llu: longer than %u bytes\n",
				        (unsigned long long)lineno + 1, SL__MAX_LINE);
			skipping = true;
			len = 0;
		}
		/* stdin has nothing more buffered: send what is batched. */
		ret = sl_client_poll(p.c, 0);
		if (ret < 0) {
			stop = true;
			break;
		}
		/* Acks go out before we sleep: a reader of our stdout pipe may be
		 * waiting for them before it writes more input. */
		if (p.unflushed) {
			if (fflush(stdout) != 0)
				p.stdout_failed = true;
			p.unflushed = false;
		}
		struct pollfd pf[2] = {{.fd = 0, .events = POLLIN}, {.fd = cfd, .events = POLLIN}};
		int t = sl_client_timeout_ms(p.c);
		if (poll(pf, 2, t) < 0 && errno != EINTR) {
			stop = true;
			break;
		}
		if (pf[1].revents) {
			ret = sl_client_poll(p.c, 0);
			if (ret < 0) {
				stop = true;
				break;
			}
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (cap - len < SL__READ_CHUNK) {
			size_t ncap = cap ? cap * 2 : 2 * SL__READ_CHUNK;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				fprintf(stderr, "sluice produce: out of memory\n");
				stop = true;
				break;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(0, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "sluice produce: reading stdin: %s\n", strerror(errno));
			stop = true;
			break;
		}
		if (r == 0)
			eof = true;
		len += (size_t)r;
	}
	/* A last line without its newline is still a line. */
	if (!stop && len && !skipping) {
		lineno++;
		if (sl__produce_line(&p, topic, &je, &rng, buf, len, lineno) < 0)
			stop = true;
	}
	if (stop && sl_client_last_error(p.c)[0])
		fprintf(stderr, "sluice produce: stopped reading at line %llu: %s\n",
		        (unsigned long long)lineno, sl_client_last_error(p.c));

	ret = sl_client_flush(p.c, (int)timeout_ms);
	struct sl_client_stats st;
	sl_client_get_stats(p.c, &st);
	uint64_t not_acked = st.produced - p.acked - p.refused;
	if (p.name && p.events < p.skip)
		fprintf(stderr,
		        "sluice produce: the input has %llu events, the server holds %llu of "
		        "producer %s: not the same input?\n",
		        (unsigned long long)p.events, (unsigned long long)p.skip, p.name);
	if (p.name)
		fprintf(stderr,
		        "sluice produce: producer %s: %llu events skipped, %llu acked as "
		        "duplicates\n",
		        p.name, (unsigned long long)(p.skip < p.events ? p.skip : p.events),
		        (unsigned long long)st.duplicates);
	fprintf(stderr,
	        "sluice produce: %llu events read, %llu acked, %llu refused, %llu bad lines, "
	        "%.3f s\n",
	        (unsigned long long)p.read, (unsigned long long)p.acked,
	        (unsigned long long)p.refused, (unsigned long long)p.bad,
	        (double)(sl_now_ns() - t0) / 1e9);
	if (not_acked)
		fprintf(stderr, "sluice produce: %llu events not acked after %g s: %s\n",
		        (unsigned long long)not_acked, timeout_s,
		        sl_client_last_error(p.c)[0] ? sl_client_last_error(p.c)
		                                     : sl_strerror(ret));
	if (p.reports > SL__MAX_REPORTS || p.bad > SL__MAX_REPORTS)
		fprintf(stderr,
		        "sluice produce: (only the first %u problems of each kind were shown)\n",
		        SL__MAX_REPORTS);
	if (fflush(stdout) != 0 || p.stdout_failed) {
		fprintf(stderr, "sluice produce: writing acks to stdout failed\n");
		p.stdout_failed = true;
	}
	status = (!stop && !not_acked && !p.refused && !p.bad && !p.stdout_failed) ? 0 : 1;
out:
	sl_client_close(p.c);
	sl_json_event_release(&je);
	free(buf);
	free(p.slots);
	free(p.hdrs);
	return status;
}
