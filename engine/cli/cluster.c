/*
 * sluice cluster status: GET /v1/cluster from one node's HTTP port, then
 * from every node it lists, merged: each partition as its leader sees it
 * (only the leader knows every replica's progress), every node with
 * `alive` false when it did not answer. JSON with --json, else a table.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define SL__CLUSTER_TIMEOUT_MS 5000

static void sl__cluster_usage(FILE *out)
{
	fprintf(out,
	        "usage: sluice cluster status [--json] [--http HOST:PORT]\n"
	        "\n"
	        "Asks GET /v1/cluster of the node at --http, then of every node it lists, and\n"
	        "prints each partition as its leader sees it: leader, epoch, replicas, in-sync\n"
	        "replicas, high watermark, and per replica its durable offset and lag. A node\n"
	        "that does not answer is shown not alive.\n"
	        "\n"
	        "  --json         print the merged {\"nodes\":[...],\"topics\":[...]} document\n"
	        "  --http H:P     a node's HTTP address (default " SL_CLI_DEFAULT_HTTP
	        ", or $SLUICE_HTTP)\n" SL_CLI_TOKEN_USAGE "\n"
	        "Exit status: 0; 1 when the node is not in a cluster (\"not in a cluster\") or\n"
	        "cannot be asked; 2 for bad usage.\n");
}

static const char *sl__str(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
	           ? json_object_get_string(v)
	           : NULL;
}

static struct json_object *sl__get(struct json_object *o, const char *key, json_type t)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, t) ? v : NULL;
}

/* The partition object of `topic`/`part` in one node's answer, or NULL. */
static struct json_object *sl__find_part(struct json_object *doc, const char *topic, int64_t part)
{
	struct json_object *topics = doc ? sl__get(doc, "topics", json_type_array) : NULL;
	for (size_t i = 0; topics && i < json_object_array_length(topics); i++) {
		struct json_object *t = json_object_array_get_idx(topics, i);
		const char *name = sl__str(t, "name");
		struct json_object *parts = sl__get(t, "partitions", json_type_array);
		if (!name || strcmp(name, topic) || !parts)
			continue;
		for (size_t k = 0; k < json_object_array_length(parts); k++) {
			struct json_object *p = json_object_array_get_idx(parts, k);
			struct json_object *n = sl__get(p, "partition", json_type_int);
			if (n && json_object_get_int64(n) == part)
				return p;
		}
	}
	return NULL;
}

struct json_object *sl_cli_cluster_merge(struct json_object *first, struct json_object **answers,
                                         size_t n)
{
	struct json_object *out = json_object_new_object();
	struct json_object *nodes = json_object_new_array();
	struct json_object *topics = json_object_new_array();
	struct json_object *fn = sl__get(first, "nodes", json_type_array);
	struct json_object *ft = sl__get(first, "topics", json_type_array);

	/* The failover controller as the first node knows it (issue 17). */
	const char *ctl = sl__str(first, "controller");
	if (ctl)
		json_object_object_add(out, "controller", json_object_new_string(ctl));
	json_object_object_add(out, "nodes", nodes);
	json_object_object_add(out, "topics", topics);
	for (size_t i = 0; fn && i < json_object_array_length(fn); i++) {
		struct json_object *node = json_object_array_get_idx(fn, i);
		struct json_object *copy = NULL;
		json_object_deep_copy(node, &copy, NULL);
		/* Alive when it answered; the first node's word otherwise
		 * (its lease may not have expired yet, but we could not ask). */
		if (i < n && !answers[i])
			json_object_object_add(copy, "alive", json_object_new_boolean(0));
		json_object_array_add(nodes, copy);
	}
	for (size_t i = 0; ft && i < json_object_array_length(ft); i++) {
		struct json_object *t = json_object_array_get_idx(ft, i);
		struct json_object *parts = sl__get(t, "partitions", json_type_array);
		const char *name = sl__str(t, "name");
		struct json_object *mt = json_object_new_object();
		struct json_object *mp = json_object_new_array();
		json_object_object_add(mt, "name", json_object_new_string(name ? name : ""));
		json_object_object_add(mt, "partitions", mp);
		json_object_array_add(topics, mt);
		for (size_t k = 0; parts && name && k < json_object_array_length(parts); k++) {
			struct json_object *p = json_object_array_get_idx(parts, k);
			struct json_object *pn = sl__get(p, "partition", json_type_int);
			struct json_object *best = p, *copy = NULL;
			for (size_t a = 0; pn && a < n; a++) {
				struct json_object *q =
				    sl__find_part(answers[a], name, json_object_get_int64(pn));
				const char *role = q ? sl__str(q, "this_node") : NULL;
				if (role && !strcmp(role, "leader")) {
					best = q;
					break;
				}
			}
			json_object_deep_copy(best, &copy, NULL);
			json_object_array_add(mp, copy);
		}
	}
	return out;
}

/* A JSON array of strings as "a,b,c" into buf. */
static const char *sl__list(struct json_object *o, const char *key, char *buf, size_t cap)
{
	struct json_object *a = sl__get(o, key, json_type_array);
	size_t len = 0;
	buf[0] = 0;
	for (size_t i = 0; a && i < json_object_array_length(a) && len < cap; i++) {
		const char *s = json_object_get_string(json_object_array_get_idx(a, i));
		len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", s ? s : "");
	}
	return buf;
}

static void sl__print_table(struct json_object *m)
{
	struct json_object *nodes = sl__get(m, "nodes", json_type_array);
	struct json_object *topics = sl__get(m, "topics", json_type_array);

	const char *ctl = sl__str(m, "controller");
	if (ctl)
		printf("controller: %s\n", ctl);
	printf("%-12s %-22s %-22s %s\n", "node", "native", "http", "alive");
	for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
		struct json_object *n = json_object_array_get_idx(nodes, i);
		struct json_object *alive = sl__get(n, "alive", json_type_boolean);
		const char *id = sl__str(n, "id"), *nat = sl__str(n, "native"),
		           *http = sl__str(n, "http");
		printf("%-12s %-22s %-22s %s\n", id ? id : "?", nat ? nat : "", http ? http : "",
		       alive && json_object_get_boolean(alive) ? "yes" : "no");
	}
	for (size_t i = 0; topics && i < json_object_array_length(topics); i++) {
		struct json_object *t = json_object_array_get_idx(topics, i);
		struct json_object *parts = sl__get(t, "partitions", json_type_array);
		const char *name = sl__str(t, "name");
		printf("\ntopic %s\n", name ? name : "?");
		printf("  %-9s %-10s %6s %-18s %-18s %12s  %s\n", "partition", "leader", "epoch",
		       "replicas", "isr", "hw", "replica durable/lag");
		for (size_t k = 0; parts && k < json_object_array_length(parts); k++) {
			struct json_object *p = json_object_array_get_idx(parts, k);
			struct json_object *rs = sl__get(p, "replica_state", json_type_array);
			const char *leader = sl__str(p, "leader");
			char reps[256], isr[256];
			printf("  %-9" PRId64 " %-10s %6" PRId64 " %-18s %-18s %12" PRId64 " ",
			       json_object_get_int64(sl__get(p, "partition", json_type_int)),
			       leader && *leader ? leader : "-",
			       json_object_get_int64(sl__get(p, "epoch", json_type_int)),
			       sl__list(p, "replicas", reps, sizeof(reps)),
			       sl__list(p, "isr", isr, sizeof(isr)),
			       json_object_get_int64(sl__get(p, "high_watermark", json_type_int)));
			for (size_t r = 0; rs && r < json_object_array_length(rs); r++) {
				struct json_object *x = json_object_array_get_idx(rs, r);
				struct json_object *ls;
				double lag_s = json_object_object_get_ex(x, "lag_seconds", &ls)
				                   ? json_object_get_double(ls)
				                   : 0;
				const char *node = sl__str(x, "node");
				printf(
				    " %s=%" PRId64 "/%" PRId64 "ev,%.3fs", node ? node : "?",
				    json_object_get_int64(
				        sl__get(x, "durable_offset", json_type_int)),
				    json_object_get_int64(sl__get(x, "lag_events", json_type_int)),
				    lag_s);
			}
			printf("\n");
		}
	}
}

/* One node's /v1/cluster: 0 with *doc, 1 for 404 (not in a cluster), <0. */
static int sl__ask(const struct sl_cli_server *http, struct json_object **doc, char *err,
                   size_t errlen)
{
	struct sl_cli_body body = {0};
	long status = 0;
	int ret = sl_cli_http_get(http, "/v1/cluster", SL__CLUSTER_TIMEOUT_MS, &body, &status, err,
	                          errlen);
	*doc = NULL;
	if (ret == 0 && status == 404)
		ret = 1;
	else if (ret == 0 && status != 200) {
		snprintf(err, errlen, "HTTP %ld: %.200s", status, body.data ? body.data : "");
		ret = -EPROTO;
	} else if (ret == 0) {
		*doc = json_tokener_parse(body.data ? body.data : "");
		if (!*doc || !json_object_is_type(*doc, json_type_object)) {
			json_object_put(*doc);
			*doc = NULL;
			snprintf(err, errlen, "not a JSON object");
			ret = -EPROTO;
		}
	}
	free(body.data);
	return ret;
}

int sl_cli_cluster(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"http", required_argument, NULL, 't'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *token_file = NULL;
	struct sl_cli_server http;
	bool json = false, have_http = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			if (sl_cli_server_parse(optarg, &http) < 0) {
				fprintf(stderr,
				        "sluice cluster: --http: expected HOST:PORT, got '%s'\n",
				        optarg);
				return 2;
			}
			have_http = true;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'h':
			sl__cluster_usage(stdout);
			return 0;
		default:
			sl__cluster_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc || strcmp(argv[optind], "status") || optind + 1 < argc) {
		sl__cluster_usage(stderr);
		return 2;
	}
	if (!have_http && sl_cli_http_default(&http) < 0) {
		fprintf(stderr, "sluice cluster: SLUICE_HTTP is not HOST:PORT\n");
		return 2;
	}
	if (sl_cli_token("sluice cluster", token_file, &http) < 0)
		return 2;

	char err[512];
	struct json_object *first;
	int ret = sl__ask(&http, &first, err, sizeof(err));
	if (ret == 1) {
		fprintf(stderr, "sluice cluster: not in a cluster\n");
		return 1;
	}
	if (ret < 0) {
		fprintf(stderr, "sluice cluster: %s\n", err);
		return 1;
	}
	struct json_object *nodes = sl__get(first, "nodes", json_type_array);
	size_t n = nodes ? json_object_array_length(nodes) : 0;
	struct json_object **answers = calloc(n ? n : 1, sizeof(*answers));
	if (!answers) {
		json_object_put(first);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *node = json_object_array_get_idx(nodes, i);
		const char *addr = sl__str(node, "http");
		struct sl_cli_server h;
		if (!addr || sl_cli_server_parse(addr, &h) < 0)
			continue;
		memcpy(h.token, http.token, sizeof(h.token));
		if (!strcmp(h.host, http.host) && h.port == http.port) {
			answers[i] = json_object_get(first);
			continue;
		}
		if (sl__ask(&h, &answers[i], err, sizeof(err)) != 0)
			answers[i] = NULL;
	}
	struct json_object *m = sl_cli_cluster_merge(first, answers, n);
	if (json)
		printf("%s\n", json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
	else
		sl__print_table(m);
	json_object_put(m);
	for (size_t i = 0; i < n; i++)
		json_object_put(answers[i]);
	free(answers);
	json_object_put(first);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- sluice partition leader -------------------------------------------------- */

static void sl__partition_usage(FILE *out)
{
	fprintf(out,
	        "usage: sluice partition leader TOPIC PARTITION NODE [--http HOST:PORT]\n"
	        "\n"
	        "Moves the partition's leadership to NODE, an in-sync replica, safely: the\n"
	        "current leader stops taking events, waits until everything it took is acked\n"
	        "and durable on NODE, then hands over in the next leader epoch (etcd). Clients\n"
	        "that get ERR_NOT_LEADER meanwhile find the new leader and resend. Asks the\n"
	        "node at --http where the leader is, then asks the leader.\n"
	        "\n"
	        "  --http H:P     a node's HTTP address (default " SL_CLI_DEFAULT_HTTP
	        ", or $SLUICE_HTTP)\n" SL_CLI_TOKEN_USAGE "\n"
	        "Exit status: 0 once NODE leads (or already did); 1 when the move was refused\n"
	        "or timed out (the answer says why; the partition stays where it was); 2 for\n"
	        "bad usage.\n");
}

int sl_cli_partition(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"http", required_argument, NULL, 't'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *token_file = NULL;
	struct sl_cli_server http;
	bool have_http = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (sl_cli_server_parse(optarg, &http) < 0) {
				fprintf(stderr,
				        "sluice partition: --http: expected HOST:PORT, got '%s'\n",
				        optarg);
				return 2;
			}
			have_http = true;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'h':
			sl__partition_usage(stdout);
			return 0;
		default:
			sl__partition_usage(stderr);
			return 2;
		}
	}
	char *end = NULL;
	long long part = optind + 2 < argc ? strtoll(argv[optind + 2], &end, 10) : -1;
	if (optind + 4 != argc || strcmp(argv[optind], "leader") || !end || *end || part < 0) {
		sl__partition_usage(stderr);
		return 2;
	}
	const char *topic = argv[optind + 1], *node = argv[optind + 3];
	if (!have_http && sl_cli_http_default(&http) < 0) {
		fprintf(stderr, "sluice partition: SLUICE_HTTP is not HOST:PORT\n");
		return 2;
	}
	if (sl_cli_token("sluice partition", token_file, &http) < 0)
		return 2;

	char err[512];
	struct json_object *doc;
	int ret = sl__ask(&http, &doc, err, sizeof(err));
	if (ret != 0) {
		fprintf(stderr, "sluice partition: %s\n", ret == 1 ? "not in a cluster" : err);
		return 1;
	}
	/* The leader's HTTP address, from the node list. */
	struct json_object *p = sl__find_part(doc, topic, part);
	const char *leader = p ? sl__str(p, "leader") : NULL;
	struct json_object *nodes = sl__get(doc, "nodes", json_type_array);
	struct sl_cli_server lh;
	bool found = false;
	for (size_t i = 0; leader && nodes && i < json_object_array_length(nodes); i++) {
		struct json_object *n = json_object_array_get_idx(nodes, i);
		const char *id = sl__str(n, "id"), *addr = sl__str(n, "http");
		if (id && addr && !strcmp(id, leader) && sl_cli_server_parse(addr, &lh) == 0)
			found = true;
	}
	if (!found) {
		fprintf(stderr, "sluice partition: %s/%lld: %s\n", topic, part,
		        !p ? "no such partition" : "its leader's HTTP address is not known");
		json_object_put(doc);
		return 1;
	}
	memcpy(lh.token, http.token, sizeof(lh.token));
	json_object_put(doc);
	char path[SL_CLI_MAX_URL];
	snprintf(path, sizeof(path), "/v1/cluster/leader?topic=%s&partition=%lld&node=%s", topic,
	         part, node);
	struct sl_cli_body body = {0};
	long status = 0;
	/* The leader waits up to 10 s for the target to catch up. */
	ret = sl_cli_http_request(&lh, "POST", path, NULL, 0, SL__CLUSTER_TIMEOUT_MS,
	                          SL__CLUSTER_TIMEOUT_MS + 15000, &body, &status, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "sluice partition: %s\n", err);
		return 1;
	}
	printf("%s", body.data ? body.data : "");
	free(body.data);
	if (status != 200) {
		fprintf(stderr, "sluice partition: HTTP %ld from the leader\n", status);
		return 1;
	}
	return fflush(stdout) == 0 ? 0 : 1;
}
