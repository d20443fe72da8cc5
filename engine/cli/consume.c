/*
 * sluice consume: print a topic's events as JSON lines.
 *
 * Reads every selected partition from its start point to the end offset it
 * had when the command started (or forever with --follow), in offset order
 * within a partition, partition after partition. The events are the stored
 * bytes, scanned in place and formatted by the json module.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "cli/cli.h"
#include "client/client_impl.h"
#include "proto/proto.h"
#include "sluice/consumer.h"
#include "json/json.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: sluice consume [--topic T] [--partition P]\n"
	        "                      [--from earliest|latest|OFFSET|@MS|RFC3339]\n"
	        "                      [--group G [--commit after|before] [--session-timeout MS]]\n"
	        "                      [--max N] [--follow]\n"
	        "                      [--server HOST:PORT[,HOST:PORT...]]\n"
	        "\n"
	        "Prints events as JSON lines on stdout, one per event, with id, type,\n"
	        "aggregate, timestamp, partition, offset and data (or data_b64 when the\n"
	        "stored bytes are not JSON). In a cluster each partition is read from its\n"
	        "leader (the Metadata of the first server that answers names it); when\n"
	        "a node fails, the read asks again where its partitions are served and\n"
	        "goes on there (for up to 30 s).\n"
	        "\n"
	        "  --topic T        topic to read (default: events)\n"
	        "  --partition P    only this partition (default: all, one after the other)\n"
	        "  --from WHERE     earliest (default), latest, an offset, or a time: @MS\n"
	        "                   (ms since the epoch) or RFC 3339 (2026-12-08T10:00:00Z):\n"
	        "                   each partition from its first event stored at or after it\n"
	        "                   (the server's append time)\n"
	        "  --group G        read as a member of consumer group G: the server shares\n"
	        "                   the topic's partitions among the group's members and\n"
	        "                   keeps the offsets they commit; each partition starts at\n"
	        "                   the group's committed offset (--from overrides it; a\n"
	        "                   new group starts at the earliest); what is printed is\n"
	        "                   committed after each batch\n"
	        "  --commit WHEN    after (default: printed, then committed: at-least-once)\n"
	        "                   or before (committed, then printed: at-most-once)\n"
	        "  --session-timeout MS  a member silent this long loses its partitions\n"
	        "                   (default 10000; a member that exits leaves at once)\n"
	        "  --max N          stop after N events in total\n"
	        "  --follow         keep waiting for new events instead of exiting at the "
	        "end\n" SL_CLI_SERVER_USAGE SL_CLI_TOKEN_USAGE);
}

/* Connections to partition leaders (cluster mode), one per node. */
struct sl__leaders {
	const struct sl_cli_server *server;
	const char *topic;
	struct sl__route route;    /* n_parts 0: not a cluster */
	struct sl_consumer *first; /* the bootstrap connection */
	struct sl_consumer **cons;
	char (*addrs)[300];
	size_t n;
};

/* How long a cluster read rides out a failed node before it gives up: a
 * failover takes a session TTL and a watch event (seconds). */
#define SL__RIDE_MS       30000
#define SL__RIDE_PAUSE_MS 200

/* The connection that reads `partition`: its leader's, else the first. */
static struct sl_consumer *sl__leader_of(struct sl__leaders *ld, uint32_t partition)
{
	const char *addr = partition < ld->route.n_parts ? ld->route.p[partition].native : NULL;
	struct sl__hostport *hp;
	size_t n;

	if (!addr)
		return ld->first;
	for (size_t i = 0; i < ld->n; i++)
		if (!strcmp(ld->addrs[i], addr))
			return ld->cons[i];
	struct sl_consumer **c = realloc(ld->cons, (ld->n + 1) * sizeof(*c));
	if (c)
		ld->cons = c;
	char(*a)[300] = realloc(ld->addrs, (ld->n + 1) * sizeof(*a));
	if (a)
		ld->addrs = a;
	if (!c || !a || sl__servers_parse(addr, &hp, &n, NULL, 0) < 0) {
		fprintf(stderr, "sluice consume: out of memory or bad leader address '%s'\n", addr);
		return NULL;
	}
	struct sl_consumer_opts co = {.host = hp->host,
	                              .port = hp->port,
	                              .client_name = "sluice consume",
	                              .token = ld->server->token};
	char err[512];
	int ret = sl_consumer_connect(&co, &ld->cons[ld->n], err, sizeof(err));
	free(hp);
	if (ret < 0) {
		/* Followers serve reads below the high watermark too. */
		fprintf(stderr,
		        "sluice consume: partition %u: leader %s: %s; reading it from the "
		        "first server\n",
		        partition, addr, err);
		return ld->first;
	}
	snprintf(ld->addrs[ld->n], sizeof(ld->addrs[0]), "%s", addr);
	return ld->cons[ld->n++];
}

/* Where each partition's leader is, from the bootstrap connection's
 * Metadata; a table already known keeps the entries of newer epochs. */
static void sl__leaders_route(struct sl__leaders *ld)
{
	Sluice__V1__Metadata *md;
	struct sl__route fresh = {0};

	if (sl__consumer_metadata(ld->first, ld->topic, &md) < 0)
		return;
	if (!md->error && md->n_topics == 1 &&
	    sl__route_build(md->topics[0], &fresh, NULL, 0) >= 0) {
		if (ld->route.n_parts == fresh.n_parts)
			sl__route_keep_newer(&fresh, &ld->route);
		sl__route_free(&ld->route);
		ld->route = fresh;
	}
	sl_frame_msg_free(&md->base);
}

/* A read through pc failed: pc goes (the bootstrap one is made again on
 * the first server that answers), and the table is asked again. */
static void sl__leaders_forget(struct sl__leaders *ld, struct sl_consumer *pc)
{
	char err[512];

	for (size_t i = 0; i < ld->n; i++)
		if (ld->cons[i] == pc) {
			sl_consumer_close(pc);
			ld->cons[i] = ld->cons[--ld->n];
			memcpy(ld->addrs[i], ld->addrs[ld->n], sizeof(ld->addrs[0]));
			break;
		}
	if (pc == ld->first) {
		struct sl_consumer *c = NULL;
		if (sl_cli_consumer_connect(ld->server, "sluice consume", &c, err, sizeof(err)) < 0)
			return; /* none answers now: the next try again */
		sl_consumer_close(ld->first);
		ld->first = c;
	}
	sl__leaders_route(ld);
}

/* One fetch of `partition` where it is served. In a cluster a failure (the
 * node died or went away) is tried again after a fresh Metadata, for up to
 * SL__RIDE_MS; a node alone, or one that keeps failing, gets the error. */
static int sl__fetch(struct sl__leaders *ld, uint32_t partition, uint64_t pos, uint32_t want,
                     uint32_t wait_ms, sl_consumer_fn fn, void *arg, uint64_t *next, uint64_t *end)
{
	uint64_t give_up = 0;

	for (;;) {
		struct sl_consumer *pc = sl__leader_of(ld, partition);
		if (!pc)
			return -ENOMEM;
		int n = sl_consumer_fetch(pc, ld->topic, partition, pos, want, 0, wait_ms, fn, arg,
		                          next, end);
		/* Below the log's start is an answer, not a failed node. */
		if (n >= 0 || !ld->route.n_parts || n == -SL_EOUT_OF_RANGE)
			return n;
		uint64_t now = sl_now_ns();
		if (!give_up) {
			give_up = now + SL__RIDE_MS * SL__NS_PER_MS;
			fprintf(stderr,
			        "sluice consume: partition %u at offset %llu: %s; asking where it "
			        "is served now\n",
			        partition, (unsigned long long)pos, sl_consumer_last_error(pc));
		} else if (now >= give_up) {
			fprintf(stderr, "sluice consume: partition %u at offset %llu: %s\n",
			        partition, (unsigned long long)pos, sl_consumer_last_error(pc));
			return n;
		}
		sl__leaders_forget(ld, pc);
		/* A pause between tries: an election takes seconds. */
		struct timespec ts = {0, SL__RIDE_PAUSE_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/*
 * A fetch below the partition's start (retention deleted those events):
 * reading from the earliest, the read goes on at the new start (said on
 * stderr: events were skipped); from an offset the user named, it stops
 * with the reason (true: go on at *pos).
 */
static bool sl__out_of_range(struct sl__leaders *ld, uint32_t partition, bool earliest,
                             uint64_t *pos)
{
	struct sl_consumer *pc = sl__leader_of(ld, partition);
	uint64_t start = pc ? sl_consumer_log_start(pc) : 0;
	if (earliest && start > *pos) {
		fprintf(stderr,
		        "sluice consume: partition %u: offsets %llu..%llu were deleted by "
		        "retention while reading; going on at %llu\n",
		        partition, (unsigned long long)*pos, (unsigned long long)start - 1,
		        (unsigned long long)start);
		*pos = start;
		return true;
	}
	fprintf(stderr,
	        "sluice consume: partition %u: offset %llu is no longer stored (retention "
	        "deleted it); the partition starts at %llu (use --from earliest or an "
	        "offset >= %llu)\n",
	        partition, (unsigned long long)*pos, (unsigned long long)start,
	        (unsigned long long)start);
	return false;
}

struct sl__consume {
	struct sl_json_buf out;
	struct sl_json_header *headers;
	size_t cap_headers;
	uint64_t printed, max;
	uint64_t bad;
};

static int sl__print(void *arg, const struct sl_fetched *e)
{
	struct sl__consume *cs = arg;
	struct sl_event_view v;
	struct sl_event_header h;
	size_t cursor = 0, n = 0;

	if (sl_event_scan(e->event, e->len, &v) < 0) {
		/* The server stores only events it validated; say so if one is
		 * not, and go on with the rest. */
		fprintf(
		    stderr,
		    "sluice consume: partition %u offset %llu: stored event is not a valid Event\n",
		    e->partition, (unsigned long long)e->offset);
		cs->bad++;
		return 0;
	}
	while (sl_event_header_next(&v, &cursor, &h) > 0) {
		if (n == cs->cap_headers) {
			size_t cap = cs->cap_headers ? cs->cap_headers * 2 : 8;
			struct sl_json_header *p = realloc(cs->headers, cap * sizeof(*p));
			if (!p)
				return 1;
			cs->headers = p;
			cs->cap_headers = cap;
		}
		cs->headers[n++] = (struct sl_json_header){
		    .key = h.key,
		    .key_len = h.key_len,
		    .value = (const char *)h.value,
		    .value_len = h.value_len,
		};
	}
	cs->out.len = 0;
	if (sl_json_event_format(&v, cs->headers, n, e->partition, e->offset, NULL, 0, &cs->out) <
	    0)
		return 1;
	fwrite(cs->out.data, 1, cs->out.len, stdout);
	cs->printed++;
	return cs->max && cs->printed >= cs->max;
}

int sl_cli_consume(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"topic", required_argument, NULL, 't'},
	    {"partition", required_argument, NULL, 'p'},
	    {"from", required_argument, NULL, 'f'},
	    {"group", required_argument, NULL, 'g'},
	    {"max", required_argument, NULL, 'm'},
	    {"follow", no_argument, NULL, 'F'},
	    {"server", required_argument, NULL, 's'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"commit", required_argument, NULL, 'C'},
	    {"session-timeout", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *topic = "events", *from = "earliest", *token_file = NULL, *group = NULL;
	bool from_given = false, commit_before = false;
	uint64_t session_ms = 0;
	struct sl_cli_server server;
	uint64_t part = UINT64_MAX, max = 0, from_off = 0;
	int64_t from_ms = 0;
	bool from_time = false;
	bool follow = false, have_server = false;
	int c, rc = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			topic = optarg;
			break;
		case 'p':
			if (sl_cli_parse_u64(optarg, 0, 65535, &part) < 0) {
				fprintf(
				    stderr,
				    "sluice consume: --partition: expected a number, got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'f':
			from = optarg;
			from_given = true;
			if (from[0] == '@') {
				uint64_t ms;
				from_time = sl_cli_parse_u64(from + 1, 0, INT64_MAX, &ms) == 0;
				from_ms = (int64_t)ms;
			} else if (strchr(from, '-') && strchr(from, ':')) {
				from_time = sl_json_time_parse(from, strlen(from), &from_ms) == 0;
			} else {
				from_time = false;
			}
			if (!from_time && strcmp(from, "earliest") && strcmp(from, "latest") &&
			    sl_cli_parse_u64(from, 0, UINT64_MAX, &from_off) < 0) {
				fprintf(stderr,
				        "sluice consume: --from: expected earliest, latest, an "
				        "offset, @MS or an RFC 3339 time, got '%s'\n",
				        from);
				return 2;
			}
			break;
		case 'g':
			group = optarg;
			break;
		case 'C':
			if (strcmp(optarg, "after") && strcmp(optarg, "before")) {
				fprintf(stderr,
				        "sluice consume: --commit: expected after or before, got "
				        "'%s'\n",
				        optarg);
				return 2;
			}
			commit_before = !strcmp(optarg, "before");
			break;
		case 'S':
			if (sl_cli_parse_u64(optarg, 100, 300000, &session_ms) < 0) {
				fprintf(
				    stderr,
				    "sluice consume: --session-timeout: expected 100..300000 ms, "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'm':
			if (sl_cli_parse_u64(optarg, 1, UINT64_MAX, &max) < 0) {
				fprintf(
				    stderr,
				    "sluice consume: --max: expected a positive number, got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'F':
			follow = true;
			break;
		case 's':
			if (sl_cli_servers_parse(optarg, &server) < 0) {
				fprintf(
				    stderr,
				    "sluice consume: --server: expected HOST:PORT[,HOST:PORT...], "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			have_server = true;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice consume: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!have_server && sl_cli_server_default(&server) < 0) {
		fprintf(stderr, "sluice consume: SLUICE_SERVER is not HOST:PORT[,HOST:PORT...]\n");
		return 2;
	}
	if (sl_cli_token("sluice consume", token_file, &server) < 0)
		return 2;
	if (group && part != UINT64_MAX) {
		fprintf(stderr, "sluice consume: --group and --partition: the group assigns the "
		                "partitions; give one or the other\n");
		return 2;
	}

	struct sl_consumer *con = NULL;
	struct sl_partition_info *parts = NULL;
	struct sl__consume cs = {.max = max};
	char err[512];
	size_t n_parts = 0;
	struct sl__leaders ld = {.server = &server, .topic = topic};
	int ret = sl_cli_consumer_connect(&server, "sluice consume", &con, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluice consume: %s\n", err);
		return 1;
	}
	ret = sl_consumer_partitions(con, topic, &parts, &n_parts);
	if (ret < 0) {
		fprintf(stderr, "sluice consume: %s\n", sl_consumer_last_error(con));
		goto out;
	}
	if (group) {
		struct sl_cli_group go = {
		    .group = group,
		    .topic = topic,
		    .from = from_given ? from : NULL,
		    .from_time = from_time,
		    .from_ms = from_ms,
		    .from_off = from_off,
		    .commit_before = commit_before,
		    .follow = follow,
		    .session_ms = (uint32_t)session_ms,
		    .max = max,
		    .printed = &cs.printed,
		    .print = sl__print,
		    .print_arg = &cs,
		};
		rc = sl_cli_consume_group(con, &go, parts, n_parts);
		if (cs.bad)
			rc = 1;
		goto out;
	}
	/* Cluster mode: where each partition's leader is. */
	ld.first = con;
	sl__leaders_route(&ld);
	if (part != UINT64_MAX && part >= n_parts) {
		fprintf(stderr, "sluice consume: topic '%s' has partitions 0..%zu, not %llu\n",
		        topic, n_parts - 1, (unsigned long long)part);
		rc = 2;
		goto out;
	}

	/* Where each selected partition starts, and where it ends for a
	 * non-following read (the end offset when we started). */
	uint64_t *pos = calloc(n_parts, sizeof(*pos));
	if (!pos)
		goto out;
	for (size_t i = 0; i < n_parts; i++) {
		if (from_time) {
			if (part != UINT64_MAX && i != part)
				continue;
			/* Each partition from its first event at or after the
			 * time (the server seeks its time index); none yet:
			 * from its end. */
			struct sl_consumer *pc = sl__leader_of(&ld, parts[i].partition);
			ret = pc ? sl_consumer_offset_for_time(pc, topic, parts[i].partition,
			                                       from_ms, &pos[i])
			         : -ENOMEM;
			if (ret < 0) {
				fprintf(stderr, "sluice consume: partition %u: --from %s: %s\n",
				        parts[i].partition, from,
				        pc ? sl_consumer_last_error(pc) : "out of memory");
				free(pos);
				goto out;
			}
		} else if (!strcmp(from, "earliest"))
			pos[i] = parts[i].start_offset;
		else if (!strcmp(from, "latest"))
			pos[i] = parts[i].end_offset;
		else
			pos[i] = from_off;
	}
	bool earliest = !strcmp(from, "earliest");

	rc = 0;
	for (int round = 0;; round++) {
		bool progress = false, all_done = true;
		for (size_t i = 0; i < n_parts; i++) {
			if (part != UINT64_MAX && i != part)
				continue;
			uint64_t stop = follow ? UINT64_MAX : parts[i].end_offset;
			while (pos[i] < stop && !(max && cs.printed >= max)) {
				uint64_t next, end;
				uint32_t want = 1000;
				if (!follow && stop - pos[i] < want)
					want = (uint32_t)(stop - pos[i]);
				int n = sl__fetch(&ld, parts[i].partition, pos[i], want, 0,
				                  sl__print, &cs, &next, &end);
				if (n == -SL_EOUT_OF_RANGE) {
					if (sl__out_of_range(&ld, parts[i].partition, earliest,
					                     &pos[i]))
						continue;
					rc = 1;
					goto done;
				}
				if (n < 0) {
					if (!ld.route.n_parts)
						fprintf(stderr,
						        "sluice consume: partition %u at offset "
						        "%llu: %s\n",
						        parts[i].partition,
						        (unsigned long long)pos[i],
						        sl_consumer_last_error(ld.first));
					rc = 1;
					goto done;
				}
				if (n == 0)
					break; /* caught up (following) */
				progress = true;
				pos[i] = next;
			}
			if (pos[i] < stop)
				all_done = false;
		}
		fflush(stdout);
		if ((max && cs.printed >= max) || (!follow && all_done))
			break;
		if (!progress) {
			/* Caught up everywhere: wait at the server (long poll) on
			 * the partitions in turn, so new events show up at once
			 * in the partition being waited on and within a poll
			 * elsewhere. */
			size_t i = part != UINT64_MAX ? part : (size_t)round % n_parts;
			uint64_t next, end;
			int n = sl__fetch(&ld, parts[i].partition, pos[i], 1000,
			                  part != UINT64_MAX || n_parts == 1 ? 5000 : 200,
			                  sl__print, &cs, &next, &end);
			if (n == -SL_EOUT_OF_RANGE) {
				if (sl__out_of_range(&ld, parts[i].partition, earliest, &pos[i]))
					continue;
				rc = 1;
				goto done;
			}
			if (n < 0) {
				if (!ld.route.n_parts)
					fprintf(stderr, "sluice consume: %s\n",
					        sl_consumer_last_error(ld.first));
				rc = 1;
				goto done;
			}
			if (n > 0)
				pos[i] = next;
			fflush(stdout);
		}
	}
done:
	fflush(stdout);
	if (cs.bad)
		rc = 1;
	free(pos);
out:
	free(parts);
	free(cs.headers);
	sl_json_buf_release(&cs.out);
	for (size_t i = 0; i < ld.n; i++)
		sl_consumer_close(ld.cons[i]);
	free(ld.cons);
	free(ld.addrs);
	sl__route_free(&ld.route);
	sl_consumer_close(ld.first ? ld.first : con);
	return rc;
}
