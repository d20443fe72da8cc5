/*
 * sluice bench: its options, the summary and the JSON line, and the runs
 * made of several measurements: --sweep (the peak with a closed loop, then
 * open loops at 50, 90, 100 and 200% of it) and --idempotence compare (off,
 * on, on, off, each on fresh connections with the same options and seeds).
 * The load generator, and what the measurements mean, is bench_load.c.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cli/bench.h"

static void sl__bench_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: sluice bench --events N --size BYTES --connections C [--rate R | --sweep]\n"
	    "                    [--topic T] [--keys K] [--threads T] [--window W] [--batch B]\n"
	    "                    [--linger US] [--timeout S] [--idempotence on|off|compare]\n"
	    "                    [--producer PREFIX]\n"
	    "                    [--server HOST:PORT[,HOST:PORT...]]\n"
	    "\n"
	    "The end-to-end load generator: produces N events of BYTES data bytes each over\n"
	    "C connections and measures throughput and ack latency. Every event has a\n"
	    "unique id (a random v4 UUID), an aggregate drawn from K keys, and as data a\n"
	    "JSON string of exactly BYTES bytes (BYTES >= 2). Each connection is an\n"
	    "idempotent producer (unless --idempotence off) that reconnects and resends\n"
	    "across server restarts. In a cluster each connection routes every event to\n"
	    "its partition's leader (one connection per leader node behind it).\n"
	    "\n"
	    "  --events N       events in total (required)\n"
	    "  --size BYTES     data bytes per event (required)\n"
	    "  --connections C  connections (required, at most 10000), events spread\n"
	    "                   round robin; the fd limit is raised to the hard limit\n"
	    "                   when C needs it\n"
	    "  --rate R         open loop: R events/s in total, latency measured from each\n"
	    "                   event's intended send time (start + i/R); a run that falls\n"
	    "                   behind sends as fast as the window (the server's credits)\n"
	    "                   allows, queueing nothing. Without it the loop is closed\n"
	    "                   (as fast as the in-flight window allows) and latency is\n"
	    "                   measured from the actual send\n"
	    "  --sweep          a closed-loop run measures the peak events/s, then open-loop\n"
	    "                   runs at 50, 90, 100 and 200%% of that peak, each of N events\n"
	    "                   on fresh connections with the same options; a table on\n"
	    "                   stderr, one JSON line per run on stdout\n"
	    "  --topic T        topic (default: events)\n"
	    "  --keys K         distinct aggregates (default 1024; up to 1e9)\n"
	    "  --sequential-keys  event n of connection c has aggregate (c + n x C) mod K\n"
	    "                   (every key once per K events) instead of a random one\n"
	    "  --threads T      worker threads driving the connections (default: one per\n"
	    "                   256 connections, at most one per CPU)\n"
	    "  --window W       max in-flight events per connection (default 8192; the\n"
	    "                   server's credits may lower it)\n"
	    "  --batch B        max events per Produce frame (default 256)\n"
	    "  --linger US      let a partial batch wait up to US microseconds for more\n"
	    "                   events before it is sent (default 0: send at once)\n"
	    "  --timeout S      give up after S seconds without any ack (default 60)\n"
	    "  --idempotence M  on (default): exactly-once producers, the server tracks\n"
	    "                   their sequences; off: the server stores every event it\n"
	    "                   is sent, resends again (at-least-once); compare: the whole\n"
	    "                   measurement four times, off, on, on, off (so a drift over\n"
	    "                   the runs weighs on both alike), on fresh connections with\n"
	    "                   the same options and the same keys, and what on costs\n"
	    "  --producer PREFIX  connection i is the named producer PREFIX-i (sluice\n"
	    "                   produce --producer): the same producer ids in every run,\n"
	    "                   each with a new epoch; sequences go on from where the\n"
	    "                   server's stored events of each name end. Not with\n"
	    "                   --idempotence off or compare, nor in cluster mode yet\n"
	    "  --query P/K      while producing, query projection P for key K (URL-escaped)\n"
	    "                   in a closed loop on the HTTP port: answered/s and latency\n"
	    "  --query-threads N  query threads, one keep-alive connection each (default 1)\n"
	    "  --http H:P       HTTP port for --query (default 127.0.0.1:7480, or "
	    "$SLUICE_HTTP)\n" SL_CLI_SERVER_USAGE SL_CLI_TOKEN_USAGE "\n"
	    "Prints a live progress line on stderr when it is a terminal, a human summary\n"
	    "on stderr at the end, then one JSON line on stdout with events, acked,\n"
	    "refused, connections, threads, size, rate, idempotence, seconds,\n"
	    "events_per_s, mb_per_s (data bytes, 1 MB = 10^6 B), p50_us, p90_us, p99_us,\n"
	    "p999_us, max_us, mean_us, latency_from (intended with --rate, else send),\n"
	    "send_p50_us, send_p90_us, send_p99_us, send_p999_us, send_max_us,\n"
	    "send_mean_us (latency from the moment the client library took the event:\n"
	    "what the server's queue costs), reconnects, resent, duplicates, dropped\n"
	    "(acked but shed by the topic's overload policy), rejected_overload (of\n"
	    "refused: refused with ERR_OVERLOAD), credit_frames (Credit frames received),\n"
	    "credit_waits and credit_wait_ms (times and ms batches waited for credits),\n"
	    "summed over the connections.\n"
	    "With compare: a summary per run, then the line of the idempotent runs (their\n"
	    "combined events/s, the latencies of the slower one), plus\n"
	    "events_per_s_idempotence_off, p99_us_idempotence_off and\n"
	    "idempotence_overhead_pct (100 * (off - on) / off events/s: positive when\n"
	    "idempotence costs throughput).\n"
	    "With --sweep: one line per run, in order, each with sweep_pct (0 for the\n"
	    "closed-loop run that measured the peak, then 50, 90, 100, 200) and\n"
	    "peak_events_per_s; rate is the run's target.\n"
	    "Exit status 0 when every event (of every run) was acked.\n");
}

static int sl__bench_args(int argc, char **argv, struct sl__bench *b)
{
	static const struct option opts[] = {
	    {"events", required_argument, NULL, 'n'},
	    {"size", required_argument, NULL, 'z'},
	    {"connections", required_argument, NULL, 'c'},
	    {"rate", required_argument, NULL, 'r'},
	    {"topic", required_argument, NULL, 't'},
	    {"keys", required_argument, NULL, 'k'},
	    {"threads", required_argument, NULL, 'T'},
	    {"window", required_argument, NULL, 'w'},
	    {"batch", required_argument, NULL, 'b'},
	    {"linger", required_argument, NULL, 'l'},
	    {"timeout", required_argument, NULL, 'o'},
	    {"idempotence", required_argument, NULL, 'i'},
	    {"server", required_argument, NULL, 's'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"query", required_argument, NULL, 'q'},
	    {"query-threads", required_argument, NULL, 'Q'},
	    {"http", required_argument, NULL, 'H'},
	    {"sweep", no_argument, NULL, 'S'},
	    {"sequential-keys", no_argument, NULL, 'j'},
	    {"producer", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;
	bool has_n = false, has_size = false, has_c = false;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		const char *name = NULL;
		int bad = 0;
		switch (opt) {
		case 'n':
			name = "--events";
			bad = sl_cli_parse_u64(optarg, 1, UINT64_MAX / 2, &b->events);
			has_n = true;
			break;
		case 'z':
			name = "--size";
			bad = sl_cli_parse_u64(optarg, 0, 1000000, &b->size);
			has_size = true;
			break;
		case 'c':
			name = "--connections";
			bad = sl_cli_parse_u64(optarg, 1, SL__MAX_CONNS, &b->conns);
			has_c = true;
			break;
		case 'r':
			name = "--rate";
			bad = sl_cli_parse_double(optarg, 1e-3, 1e9, &b->rate);
			break;
		case 't':
			b->topic = optarg;
			break;
		case 'k':
			name = "--keys";
			bad = sl_cli_parse_u64(optarg, 1, 1000000000u, &b->keys);
			break;
		case 'j':
			b->sequential_keys = true;
			break;
		case 'T':
			name = "--threads";
			bad = sl_cli_parse_u64(optarg, 1, 256, &b->threads);
			break;
		case 'w':
			name = "--window";
			bad = sl_cli_parse_u64(optarg, 1, 1u << 20, &b->window);
			break;
		case 'b':
			name = "--batch";
			bad = sl_cli_parse_u64(optarg, 1, 65536, &b->batch);
			break;
		case 'l':
			name = "--linger";
			bad = sl_cli_parse_u64(optarg, 0, 1000000, &b->linger_us);
			break;
		case 'o':
			name = "--timeout";
			bad = sl_cli_parse_double(optarg, 0.001, 1e7, &b->timeout_s);
			break;
		case 'i':
			name = "--idempotence";
			if (strcmp(optarg, "on") == 0)
				b->idem = SL__IDEM_ON;
			else if (strcmp(optarg, "off") == 0)
				b->idem = SL__IDEM_OFF;
			else if (strcmp(optarg, "compare") == 0)
				b->idem = SL__IDEM_COMPARE;
			else
				bad = -EINVAL;
			break;
		case 's':
			name = "--server";
			bad = sl_cli_servers_parse(optarg, &b->srv);
			break;
		case 'K':
			b->token_file = optarg;
			break;
		case 'q':
			name = "--query";
			/* PROJECTION/KEY, as it goes into the URL */
			bad = strchr(optarg, '/') && optarg[0] != '/' && strlen(optarg) < 1024
			          ? 0
			          : -EINVAL;
			b->query = optarg;
			break;
		case 'Q':
			name = "--query-threads";
			bad = sl_cli_parse_u64(optarg, 1, 64, &b->query_threads);
			break;
		case 'H':
			name = "--http";
			bad = sl_cli_server_parse(optarg, &b->http);
			break;
		case 'S':
			b->sweep = true;
			break;
		case 'P':
			/* The name's rules (printable, 255 bytes) are libsluice's
			 * to check; room for "-9999" is ours. */
			name = "--producer";
			bad = *optarg && strlen(optarg) <= 250 ? 0 : -EINVAL;
			b->producer = optarg;
			break;
		case 'h':
			sl__bench_usage(stdout);
			return 1;
		default:
			sl__bench_usage(stderr);
			return -2;
		}
		if (bad < 0) {
			fprintf(stderr, "sluice bench: %s: bad value '%s'%s\n", name, optarg,
			        opt == 'i' ? " (expected on, off or compare)" : "");
			return -2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice bench: unexpected argument '%s'\n", argv[optind]);
		return -2;
	}
	if (!has_n || !has_size || !has_c) {
		fprintf(stderr, "sluice bench: --events, --size and --connections are required\n");
		sl__bench_usage(stderr);
		return -2;
	}
	if (b->producer && b->idem != SL__IDEM_ON) {
		fprintf(stderr, "sluice bench: --producer names exactly-once producers: not "
		                "with --idempotence off or compare\n");
		return -2;
	}
	if (b->sweep && b->rate > 0) {
		fprintf(stderr, "sluice bench: --sweep chooses the rates itself: no --rate\n");
		return -2;
	}
	if (!b->threads) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		b->threads = (b->conns + SL__CONNS_PER_THREAD - 1) / SL__CONNS_PER_THREAD;
		if (cpus > 0 && b->threads > (uint64_t)cpus)
			b->threads = (uint64_t)cpus;
	}
	if (b->threads > b->conns)
		b->threads = b->conns;
	return 0;
}

static void sl__summary(const struct sl__bench *b, const struct sl__result *r, bool idem_off)
{
	fprintf(stderr,
	        "sluice bench: %llu events of %llu B data over %llu connection%s, %llu thread%s, "
	        "idempotence %s, ",
	        (unsigned long long)b->events, (unsigned long long)b->size,
	        (unsigned long long)b->conns, b->conns == 1 ? "" : "s",
	        (unsigned long long)b->threads, b->threads == 1 ? "" : "s",
	        idem_off ? "off" : "on");
	if (b->rate > 0)
		fprintf(stderr, "open loop at %.0f events/s\n", b->rate);
	else
		fprintf(stderr, "closed loop (window %llu)\n", (unsigned long long)b->window);
	fprintf(stderr, "  acked %llu, refused %llu in %.3f s: %.0f events/s, %.1f MB/s\n",
	        (unsigned long long)r->acked, (unsigned long long)r->refused, r->secs, r->eps,
	        r->mbps);
	fprintf(stderr,
	        "  latency from %s: p50 %.0f us, p90 %.0f us, p99 %.0f us, p99.9 %.0f us, "
	        "max %.0f us, mean %.0f us\n",
	        b->rate > 0 ? "intended" : "send", r->p50, r->p90, r->p99, r->p999, r->maxu,
	        r->mean);
	if (b->rate > 0)
		fprintf(stderr,
		        "  latency from send: p50 %.0f us, p90 %.0f us, p99 %.0f us, "
		        "p99.9 %.0f us, max %.0f us, mean %.0f us\n",
		        r->s_p50, r->s_p90, r->s_p99, r->s_p999, r->s_maxu, r->s_mean);
	fprintf(stderr,
	        "  overload: dropped %llu, rejected %llu; credits: %llu frames, "
	        "%llu waits, %.1f ms waited\n",
	        (unsigned long long)r->dropped, (unsigned long long)r->overload,
	        (unsigned long long)r->credit_frames, (unsigned long long)r->credit_waits,
	        (double)r->credit_wait_ns / 1e6);
	if (r->reconnects || r->resent || r->duplicates)
		fprintf(stderr,
		        "  reconnects %llu, events resent %llu, answered as duplicates %llu\n",
		        (unsigned long long)r->reconnects, (unsigned long long)r->resent,
		        (unsigned long long)r->duplicates);
	if (r->err[0])
		fprintf(stderr, "  error: %s\n", r->err);
}

/* The JSON line's fields up to (not including) its closing brace. */
static void sl__json(const struct sl__bench *b, const struct sl__result *r, bool idem_off)
{
	printf("{\"events\":%llu,\"acked\":%llu,\"refused\":%llu,\"connections\":%llu,"
	       "\"threads\":%llu,\"size\":%llu,\"rate\":%.0f,\"idempotence\":\"%s\","
	       "\"seconds\":%.6f,\"events_per_s\":%.1f,\"mb_per_s\":%.3f,\"p50_us\":%.1f,"
	       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
	       "\"latency_from\":\"%s\",\"reconnects\":%llu,\"resent\":%llu,\"duplicates\":%llu",
	       (unsigned long long)b->events, (unsigned long long)r->acked,
	       (unsigned long long)r->refused, (unsigned long long)b->conns,
	       (unsigned long long)b->threads, (unsigned long long)b->size, b->rate,
	       b->idem == SL__IDEM_COMPARE ? "compare"
	       : idem_off                  ? "off"
	                                   : "on",
	       r->secs, r->eps, r->mbps, r->p50, r->p90, r->p99, r->p999, r->maxu, r->mean,
	       b->rate > 0 ? "intended" : "send", (unsigned long long)r->reconnects,
	       (unsigned long long)r->resent, (unsigned long long)r->duplicates);
	printf(",\"send_p50_us\":%.1f,\"send_p90_us\":%.1f,\"send_p99_us\":%.1f,"
	       "\"send_p999_us\":%.1f,\"send_max_us\":%.1f,\"send_mean_us\":%.1f,"
	       "\"dropped\":%llu,\"rejected_overload\":%llu,\"credit_frames\":%llu,"
	       "\"credit_waits\":%llu,\"credit_wait_ms\":%.3f",
	       r->s_p50, r->s_p90, r->s_p99, r->s_p999, r->s_maxu, r->s_mean,
	       (unsigned long long)r->dropped, (unsigned long long)r->overload,
	       (unsigned long long)r->credit_frames, (unsigned long long)r->credit_waits,
	       (double)r->credit_wait_ns / 1e6);
}

/* Microseconds in a table cell: "-" for a figure that does not apply. */
static const char *sl__cell(char *buf, size_t len, bool on, double us)
{
	if (!on)
		return "-";
	snprintf(buf, len, "%.0f", us);
	return buf;
}

/*
 * --sweep: the peak from a closed loop, then open loops at fractions of it.
 * Every run is a full measurement on fresh connections, so a run that ends
 * in trouble (events refused or timed out) leaves the next one a clean
 * start; only a failed peak run stops the sweep (it has no rate to offer).
 * Exit status as sl_cli_bench's.
 */
static int sl__bench_sweep(struct sl__bench *b)
{
	static const int pcts[] = {0, 50, 90, 100, 200};
	enum { N = sizeof(pcts) / sizeof(pcts[0]) };
	struct sl__result runs[N];
	double rates[N] = {0};
	int done = 0, status = 0;
	double peak = 0;

	memset(runs, 0, sizeof(runs));
	for (; done < N; done++) {
		b->rate = pcts[done] ? peak * pcts[done] / 100.0 : 0;
		rates[done] = b->rate;
		if (sl__bench_run(b, &runs[done]) < 0)
			return 1;
		struct sl__result *r = &runs[done];
		if (!pcts[done])
			peak = r->eps;
		sl__summary(b, r, b->idem_off);
		sl__json(b, r, b->idem_off);
		printf(",\"sweep_pct\":%d,\"peak_events_per_s\":%.1f}\n", pcts[done], peak);
		fflush(stdout);
		if (r->acked != b->events)
			status = 1;
		if (!pcts[done] && (r->acked != b->events || peak < 1e-3)) {
			fprintf(stderr,
			        "sluice bench: the closed-loop run did not complete: no peak "
			        "to sweep\n");
			done++;
			break;
		}
	}
	b->rate = 0;

	char c[6][24];
	fprintf(stderr,
	        "\nsluice bench --sweep: %llu events of %llu B over %llu connection%s, "
	        "peak %.0f events/s (closed loop); latencies in us\n",
	        (unsigned long long)b->events, (unsigned long long)b->size,
	        (unsigned long long)b->conns, b->conns == 1 ? "" : "s", peak);
	fprintf(stderr, "%6s %10s %10s | %27s | %27s | %8s %8s %8s\n", "", "", "",
	        "from intended send time", "from actual send", "", "", "credit");
	fprintf(stderr, "%6s %10s %10s | %8s %8s %9s | %8s %8s %9s | %8s %8s %8s\n", "load",
	        "target/s", "events/s", "p50", "p99", "p99.9", "p50", "p99", "p99.9", "dropped",
	        "rejected", "waits");
	for (int i = 0; i < done; i++) {
		const struct sl__result *r = &runs[i];
		char load[16], target[24];
		bool open = pcts[i] > 0;
		if (open) {
			snprintf(load, sizeof(load), "%d%%", pcts[i]);
			snprintf(target, sizeof(target), "%.0f", rates[i]);
		} else {
			snprintf(load, sizeof(load), "peak");
			snprintf(target, sizeof(target), "-");
		}
		fprintf(stderr,
		        "%6s %10s %10.0f | %8s %8s %9s | %8.0f %8.0f %9.0f | %8llu %8llu %8llu\n",
		        load, target, r->eps, sl__cell(c[0], sizeof(c[0]), open, r->p50),
		        sl__cell(c[1], sizeof(c[1]), open, r->p99),
		        sl__cell(c[2], sizeof(c[2]), open, r->p999), r->s_p50, r->s_p99, r->s_p999,
		        (unsigned long long)r->dropped, (unsigned long long)r->overload,
		        (unsigned long long)r->credit_waits);
	}
	return status;
}

int sl_cli_bench(int argc, char **argv)
{
	struct sl__bench b = {
	    .keys = 1024,
	    .window = 8192,
	    .batch = 256,
	    .timeout_s = 60,
	    .topic = "events",
	    .idem = SL__IDEM_ON,
	};
	struct sl__result on = {0}, off = {0};
	int status = 1;

	if (sl_cli_server_default(&b.srv) < 0) {
		fprintf(stderr, "sluice bench: SLUICE_SERVER: expected HOST:PORT[,HOST:PORT...]\n");
		return 2;
	}
	const char *hv = getenv("SLUICE_HTTP");
	if (sl_cli_server_parse(hv && *hv ? hv : "127.0.0.1:7480", &b.http) < 0) {
		fprintf(stderr, "sluice bench: SLUICE_HTTP: expected HOST:PORT\n");
		return 2;
	}
	b.query_threads = 1;
	int r = sl__bench_args(argc, argv, &b);
	if (r)
		return r > 0 ? 0 : 2;
	if (sl_cli_token("sluice bench", b.token_file, &b.srv) < 0)
		return 2;
	memcpy(b.http.token, b.srv.token, sizeof(b.http.token));
	if (b.query && b.idem == SL__IDEM_COMPARE) {
		fprintf(stderr,
		        "sluice bench: --query and --idempotence compare do not go together\n");
		return 2;
	}
	if (b.sweep && (b.query || b.idem == SL__IDEM_COMPARE)) {
		fprintf(stderr, "sluice bench: --sweep goes with neither --query nor "
		                "--idempotence compare\n");
		return 2;
	}
	/* Each connection holds a socket and its client's epoll fd; the rest
	 * is stdio, the workers' epoll sets and the query connections. */
	uint64_t need = 2 * b.conns + b.threads + b.query_threads + 32, limit = 0;
	if (sl_cli_nofile_reserve(need, &limit) < 0) {
		fprintf(stderr,
		        "sluice bench: %llu connections need about %llu file descriptors; "
		        "the limit is %llu (raise ulimit -Hn)\n",
		        (unsigned long long)b.conns, (unsigned long long)need,
		        (unsigned long long)limit);
		return 2;
	}

	pthread_mutex_init(&b.mu, NULL);
	pthread_cond_init(&b.cv, NULL);
	b.data = malloc(b.size ? b.size : 1);
	/* Up to 2^24 keys are written once beforehand (24 bytes each); more are
	 * written per event, as each is sent (sl__bench_key). */
	if (b.keys <= SL__KEYS_TABLE_MAX) {
		b.key_text = malloc(b.keys * SL__KEY_STRIDE);
		b.key_len = malloc(b.keys);
	}
	struct sl_uuid_rng seeder;
	if (!b.data || (b.keys <= SL__KEYS_TABLE_MAX && (!b.key_text || !b.key_len)) ||
	    sl_uuid_rng_seed(&seeder) < 0) {
		fprintf(stderr, "sluice bench: out of memory or entropy\n");
		goto out;
	}
	b.key_seed = sl_uuid_rng_next(&seeder);
	memset(b.data, 'x', b.size);
	if (b.size >= 2)
		b.data[0] = b.data[b.size - 1] = '"';
	for (uint64_t k = 0; b.key_text && k < b.keys; k++)
		b.key_len[k] = (uint8_t)snprintf(b.key_text + k * SL__KEY_STRIDE, SL__KEY_STRIDE,
		                                 "key-%llu", (unsigned long long)k);

	if (b.sweep) {
		b.idem_off = b.idem == SL__IDEM_OFF;
		status = sl__bench_sweep(&b);
		goto out;
	}
	if (b.idem != SL__IDEM_COMPARE) {
		struct sl__result *one = b.idem == SL__IDEM_OFF ? &off : &on;
		struct sl_cli_qload *ql = NULL;
		struct sl_cli_qload_result qr;
		b.idem_off = b.idem == SL__IDEM_OFF;
		if (b.query &&
		    sl_cli_qload_start(&b.http, b.query, (uint32_t)b.query_threads, &ql) < 0) {
			fprintf(stderr, "sluice bench: --query: cannot start the query threads\n");
			goto out;
		}
		int rr = sl__bench_run(&b, one);
		if (ql)
			sl_cli_qload_stop(ql, &qr);
		if (rr < 0)
			goto out;
		sl__summary(&b, one, b.idem_off);
		if (ql)
			fprintf(
			    stderr,
			    "  queries (%s, %llu thread%s): %llu answered, %.0f/s, p50 %.0f us, "
			    "p99 %.0f us, p99.9 %.0f us, %llu errors%s%s\n",
			    b.query, (unsigned long long)b.query_threads,
			    b.query_threads == 1 ? "" : "s", (unsigned long long)qr.queries, qr.qps,
			    qr.p50, qr.p99, qr.p999, (unsigned long long)qr.errors,
			    qr.errors ? ": " : "", qr.err);
		sl__json(&b, one, b.idem_off);
		if (ql)
			printf(",\"queries\":%llu,\"queries_per_s\":%.1f,\"query_p50_us\":%.1f,"
			       "\"query_p99_us\":%.1f,\"query_p999_us\":%.1f,\"query_errors\":%llu",
			       (unsigned long long)qr.queries, qr.qps, qr.p50, qr.p99, qr.p999,
			       (unsigned long long)qr.errors);
		printf("}\n");
		status = one->acked == b.events ? 0 : 1;
		goto out;
	}
	/*
	 * Compare: four runs, off, on, on, off, each of N events. Run order
	 * alone moved one off/on pair by 5-13% with identical work on both
	 * sides (the log grows, the page cache fills, the machine warms); in
	 * this ABBA order a drift that is linear over the runs weighs on both
	 * modes alike. Each mode's events/s is 2N over its two runs' seconds;
	 * its latencies are those of its slower run (the larger p99).
	 */
	static const bool order[4] = {true, false, false, true};
	struct sl__result runs[4];
	double secs_on = 0, secs_off = 0;
	memset(runs, 0, sizeof(runs));
	for (int i = 0; i < 4; i++) {
		b.idem_off = order[i];
		if (sl__bench_run(&b, &runs[i]) < 0)
			goto out;
		sl__summary(&b, &runs[i], order[i]);
		if (runs[i].acked != b.events) {
			/* Later runs would measure against a server in trouble. */
			fprintf(stderr,
			        "sluice bench: run %d of the comparison did not complete: "
			        "not comparing\n",
			        i + 1);
			goto out;
		}
		*(order[i] ? &secs_off : &secs_on) += runs[i].secs;
	}
	on = runs[1].p99 >= runs[2].p99 ? runs[1] : runs[2];
	off = runs[0].p99 >= runs[3].p99 ? runs[0] : runs[3];
	on.secs = secs_on;
	on.eps = secs_on > 0 ? 2.0 * (double)b.events / secs_on : 0;
	on.mbps = on.eps * (double)b.size / 1e6;
	off.eps = secs_off > 0 ? 2.0 * (double)b.events / secs_off : 0;
	double pct = off.eps > 0 ? 100.0 * (off.eps - on.eps) / off.eps : 0;
	fprintf(stderr,
	        "sluice bench: idempotence on %.0f events/s, off %.0f events/s "
	        "(runs off, on, on, off): overhead %.1f%% (negative: on was faster); "
	        "p99 %.0f us on, %.0f us off\n",
	        on.eps, off.eps, pct, on.p99, off.p99);
	sl__json(&b, &on, false);
	printf(",\"events_per_s_idempotence_off\":%.1f,\"p99_us_idempotence_off\":%.1f,"
	       "\"idempotence_overhead_pct\":%.2f",
	       off.eps, off.p99, pct);
	printf("}\n");
	status = on.acked == b.events ? 0 : 1;
out:
	fflush(stdout);
	free(b.data);
	free(b.key_text);
	free(b.key_len);
	pthread_mutex_destroy(&b.mu);
	pthread_cond_destroy(&b.cv);
	return status;
}
