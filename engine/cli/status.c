/*
 * sluice status: the server's topics and partitions with their offsets,
 * from one Metadata request on the native port; then, from GET /v1/status
 * on the HTTP port, pressure and overload counts per topic, its rates,
 * skew and hot keys, and the projections, sinks and pipelines with their
 * lag. Consumer groups are named as not served yet, so the output never
 * suggests they exist.
 */
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/consumer.h"

static int64_t sl__int(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

static const char *sl__str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "?";
}

static struct json_object *sl__arr(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array)
	           ? v
	           : NULL;
}

/* Per entry of `list` (projections, sinks, pipelines): one line with its
 * partitions summed; `what` names the per-partition state to count. */
static void sl__print_followers(struct json_object *list, const char *title, const char *lag_key,
                                const char *state_key)
{
	size_t n = list ? json_object_array_length(list) : 0;
	printf("%s:%s\n", title, n ? "" : " none");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(list, i);
		struct json_object *parts = sl__arr(e, "partitions");
		size_t np = parts ? json_object_array_length(parts) : 0;
		int64_t max_lag = 0, sum_lag = 0, not_ok = 0;
		for (size_t p = 0; p < np; p++) {
			struct json_object *pp = json_object_array_get_idx(parts, p);
			int64_t lag = sl__int(pp, lag_key);
			sum_lag += lag;
			if (lag > max_lag)
				max_lag = lag;
			if (state_key) {
				const char *st = sl__str(pp, state_key);
				not_ok += strcmp(st, "closed") && strcmp(st, "running") &&
				          strcmp(st, "waiting");
			}
		}
		printf("  %-16s %-10s from %-12s %zu partitions, lag %" PRId64
		       " events (max %" PRId64 " in one partition)",
		       sl__str(e, "name"),
		       json_object_object_get_ex(e, "plugin", NULL) ? sl__str(e, "plugin")
		                                                    : "pipeline",
		       json_object_object_get_ex(e, "topic", NULL) ? sl__str(e, "topic")
		                                                   : sl__str(e, "from"),
		       np, sum_lag, max_lag);
		if (state_key && not_ok)
			printf(", %" PRId64 " partitions not running (see /v1/status)", not_ok);
		/* A consumer of a topic not made yet (issue 22), or that could
		 * not start on it. */
		if (json_object_object_get_ex(e, "state", NULL) &&
		    strcmp(sl__str(e, "state"), "serving"))
			printf(", %s", sl__str(e, "state"));
		putchar('\n');
	}
}

static double sl__dbl(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

/* Per topic: its rate, the skew and busiest partition, the hot keys. */
static void sl__print_hot(struct json_object *topics)
{
	printf("rates and hot keys (last ~10 s):\n");
	for (size_t i = 0; topics && i < json_object_array_length(topics); i++) {
		struct json_object *t = json_object_array_get_idx(topics, i);
		struct json_object *parts = sl__arr(t, "partitions");
		struct json_object *keys = sl__arr(t, "hot_keys");
		size_t np = parts ? json_object_array_length(parts) : 0, busiest = 0;
		double eps = 0, bps = 0, max = -1;
		for (size_t p = 0; p < np; p++) {
			struct json_object *pp = json_object_array_get_idx(parts, p);
			double r = sl__dbl(pp, "events_per_s");
			eps += r;
			bps += sl__dbl(pp, "bytes_per_s");
			if (r > max)
				max = r, busiest = p;
		}
		printf("  %-16s %.0f events/s, %.0f bytes/s; skew %.2f (partition %zu busiest, "
		       "%.0f events/s)\n",
		       sl__str(t, "name"), eps, bps, sl__dbl(t, "skew"), busiest,
		       max < 0 ? 0 : max);
		size_t nk = keys ? json_object_array_length(keys) : 0;
		for (size_t k = 0; k < nk; k++) {
			struct json_object *e = json_object_array_get_idx(keys, k);
			printf("    %2zu. %-34s %10.0f events/s (+0/-%.0f) partition %" PRId64 "\n",
			       k + 1, sl__str(e, "key"), sl__dbl(e, "events_per_s"),
			       sl__dbl(e, "error"), sl__int(e, "partition"));
		}
	}
}

/* The HTTP port's view: pressure and overload counts, projections, sinks,
 * pipelines; a port that cannot be read is said in the output (the native
 * port's part stands on its own). */
/* Consumer groups: members, generation, and per partition the committed
 * offset and the lag (events, and the age of the oldest not consumed). */
static void sl__print_groups(struct json_object *groups)
{
	size_t n = groups ? json_object_array_length(groups) : 0;
	if (!n) {
		printf("consumer groups: none\n");
		return;
	}
	printf("consumer groups:\n");
	for (size_t i = 0; i < n; i++) {
		struct json_object *g = json_object_array_get_idx(groups, i);
		struct json_object *members = sl__arr(g, "members"), *topics = sl__arr(g, "topics");
		printf("  %s: %zu members, generation %" PRId64 ", %" PRId64 " rebalances, %" PRId64
		       " partitions moved between live members%s\n",
		       sl__str(g, "name"), members ? json_object_array_length(members) : 0,
		       sl__int(g, "generation"), sl__int(g, "rebalances"),
		       sl__int(g, "partitions_moved"),
		       sl__int(g, "reconciling") ? " (partitions moving)" : "");
		for (size_t t = 0; topics && t < json_object_array_length(topics); t++) {
			struct json_object *tp = json_object_array_get_idx(topics, t);
			struct json_object *parts = sl__arr(tp, "partitions");
			printf("    %-9s %-9s %12s %12s %10s %9s  %s\n", "topic", "partition",
			       "committed", "end", "lag", "lag_s", "member");
			for (size_t p = 0; parts && p < json_object_array_length(parts); p++) {
				struct json_object *pp = json_object_array_get_idx(parts, p), *c;
				char committed[32] = "-";
				if (json_object_object_get_ex(pp, "committed", &c) && c)
					snprintf(committed, sizeof(committed), "%" PRId64,
					         json_object_get_int64(c));
				struct json_object *ls;
				double lag_s = json_object_object_get_ex(pp, "lag_seconds", &ls)
				                   ? json_object_get_double(ls)
				                   : 0.0;
				printf("    %-9s %-9" PRId64 " %12s %12" PRId64 " %10" PRId64
				       " %9.1f  %s\n",
				       sl__str(tp, "name"), sl__int(pp, "partition"), committed,
				       sl__int(pp, "end_offset"), sl__int(pp, "lag_events"), lag_s,
				       sl__str(pp, "member")[0] ? sl__str(pp, "member") : "-");
			}
		}
	}
}

static void sl__print_http(const struct sl_cli_server *http)
{
	struct sl_cli_body body = {0};
	long status = 0;
	char err[512], base[300];

	sl_cli_base_url(http, base, sizeof(base));
	if (sl_cli_http_get(http, "/v1/status", 5000, &body, &status, err, sizeof(err)) < 0 ||
	    status != 200) {
		if (status && status != 200)
			snprintf(err, sizeof(err), "%s: HTTP %ld", base, status);
		printf(
		    "projections, sinks, pipelines, pressure: HTTP port unreadable (%s; --http or "
		    "$SLUICE_HTTP)\n",
		    err);
		goto out;
	}
	struct json_object *o = json_tokener_parse(body.data);
	if (!o) {
		printf("projections, sinks, pipelines, pressure: %s/v1/status is not JSON\n", base);
		goto out;
	}
	struct json_object *topics = sl__arr(o, "topics");
	printf("pressure and overload (%s):\n", base);
	for (size_t i = 0; topics && i < json_object_array_length(topics); i++) {
		struct json_object *t = json_object_array_get_idx(topics, i);
		struct json_object *parts = sl__arr(t, "partitions");
		int64_t pressured = 0, queue = 0, dropped = 0, sampled = 0, rejected = 0, lag = 0;
		size_t np = parts ? json_object_array_length(parts) : 0;
		for (size_t p = 0; p < np; p++) {
			struct json_object *pp = json_object_array_get_idx(parts, p);
			struct json_object *v;
			pressured += json_object_object_get_ex(pp, "pressured", &v) &&
			             json_object_get_boolean(v);
			queue += sl__int(pp, "queue");
			dropped += sl__int(pp, "dropped");
			sampled += sl__int(pp, "sampled_out");
			rejected += sl__int(pp, "rejected");
			if (sl__int(pp, "follower_lag") > lag)
				lag = sl__int(pp, "follower_lag");
		}
		printf("  %-16s %" PRId64 " of %zu partitions pressured, %" PRId64
		       " events queued for durability, slowest follower %" PRId64
		       " behind; dropped %" PRId64 ", sampled out %" PRId64 ", rejected %" PRId64
		       "\n",
		       sl__str(t, "name"), pressured, np, queue, lag, dropped, sampled, rejected);
		/* Retention: what it deleted, and who holds a partition back. */
		int64_t segs = 0, bytes = 0;
		for (size_t p = 0; p < np; p++) {
			struct json_object *pp = json_object_array_get_idx(parts, p);
			segs += sl__int(pp, "retention_deleted_segments");
			bytes += sl__int(pp, "retention_deleted_bytes");
		}
		if (segs)
			printf("    retention deleted %" PRId64 " segments (%" PRId64 " bytes)\n",
			       segs, bytes);
		for (size_t p = 0; p < np; p++) {
			struct json_object *pp = json_object_array_get_idx(parts, p), *v;
			if (json_object_object_get_ex(pp, "retention_held_by", &v) &&
			    json_object_is_type(v, json_type_string))
				printf("    partition %zu: retention held by %s (log starts at "
				       "%" PRId64 ")\n",
				       p, json_object_get_string(v),
				       sl__int(pp, "log_start_offset"));
		}
	}
	sl__print_hot(topics);
	sl__print_followers(sl__arr(o, "projections"), "projections", "lag", NULL);
	sl__print_followers(sl__arr(o, "sinks"), "sinks", "lag", "circuit");
	sl__print_followers(sl__arr(o, "pipelines"), "pipelines", "lag", "state");
	sl__print_groups(sl__arr(o, "groups"));
	json_object_put(o);
out:
	free(body.data);
}

int sl_cli_status(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"server", required_argument, NULL, 's'},
	    {"http", required_argument, NULL, 't'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *token_file = NULL;
	struct sl_cli_server server, http;
	bool have_server = false, have_http = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (sl_cli_servers_parse(optarg, &server) < 0) {
				fprintf(
				    stderr,
				    "sluice status: --server: expected HOST:PORT[,HOST:PORT...], "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			have_server = true;
			break;
		case 't':
			if (sl_cli_server_parse(optarg, &http) < 0) {
				fprintf(stderr,
				        "sluice status: --http: expected HOST:PORT, got '%s'\n",
				        optarg);
				return 2;
			}
			have_http = true;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'h':
			printf(
			    "usage: sluice status [--server HOST:PORT[,HOST:PORT...]] [--http "
			    "HOST:PORT]\n"
			    "\n"
			    "Prints the server's topics and partitions with their first and end\n"
			    "offsets (end: the next offset to be written; everything below it is\n"
			    "durable), then, from its HTTP port, per topic the partitions under\n"
			    "pressure and the events dropped, sampled out or rejected by the\n"
			    "overload policy, its events/s and bytes/s, the skew of its "
			    "partitions\n"
			    "(the busiest one's rate over the mean) and its hot keys (the busiest\n"
			    "aggregate ids by recent rate, each an overestimate by at most the\n"
			    "error shown), and the projections, sinks and pipelines with their\n"
			    "lag (a line says so when the HTTP port cannot be read). Consumer\n"
			    "groups are not served yet. Exits 1 when the native port cannot be "
			    "read.\n"
			    "\n" SL_CLI_SERVER_USAGE
			    "  --http H:P     HTTP port (default " SL_CLI_DEFAULT_HTTP
			    ", or $SLUICE_HTTP)\n" SL_CLI_TOKEN_USAGE);
			return 0;
		default:
			fprintf(stderr,
			        "usage: sluice status [--server HOST:PORT] [--http HOST:PORT]\n");
			return 2;
		}
	}
	if (!have_http && sl_cli_http_default(&http) < 0) {
		fprintf(stderr, "sluice status: SLUICE_HTTP is not HOST:PORT\n");
		return 2;
	}
	if (!have_server && sl_cli_server_default(&server) < 0) {
		fprintf(stderr, "sluice status: SLUICE_SERVER is not HOST:PORT[,HOST:PORT...]\n");
		return 2;
	}
	if (sl_cli_token("sluice status", token_file, &server) < 0)
		return 2;
	memcpy(http.token, server.token, sizeof(http.token));
	struct sl_consumer *con;
	struct sl_topic_info *topics;
	size_t n;
	char err[512];
	if (sl_cli_consumer_connect(&server, "sluice status", &con, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice status: %s\n", err);
		return 1;
	}
	if (sl_consumer_topics(con, &topics, &n) < 0) {
		fprintf(stderr, "sluice status: %s\n", sl_consumer_last_error(con));
		sl_consumer_close(con);
		return 1;
	}
	printf("server %s:%u\n", server.host, server.port);
	for (size_t i = 0; i < n; i++) {
		unsigned long long total = 0;
		for (size_t p = 0; p < topics[i].n_partitions; p++)
			total += topics[i].partitions[p].end_offset -
			         topics[i].partitions[p].start_offset;
		printf("topic %s: %zu partitions, %llu events stored\n", topics[i].name,
		       topics[i].n_partitions, total);
		printf("  %-9s %12s %12s\n", "partition", "start", "end");
		for (size_t p = 0; p < topics[i].n_partitions; p++)
			printf("  %-9u %12llu %12llu\n", topics[i].partitions[p].partition,
			       (unsigned long long)topics[i].partitions[p].start_offset,
			       (unsigned long long)topics[i].partitions[p].end_offset);
	}
	sl_consumer_topics_free(topics, n);
	sl_consumer_close(con);
	sl__print_http(&http);
	return 0;
}
