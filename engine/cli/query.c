/*
 * sluice query: one read-model entry, through the server's HTTP port
 * (GET /v1/projections/NAME/KEY) with libcurl. The answer's JSON goes to
 * stdout as it came; an error answer's message goes to stderr.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/cli.h"
#include "client/client_impl.h"
#include "http/http.h"

/* On top of the server's own wait (timeout_ms): the time the answer may take
 * to arrive once the server gives up, so a server-side timeout is reported
 * as the server's message rather than as curl's. */
#define SL__QUERY_SLACK_MS   10000
#define SL__QUERY_CONNECT_MS 5000

static void sl__query_usage(FILE *out)
{
	fprintf(out,
	        "usage: sluice query PROJECTION KEY [--min-offset TOKEN] [--max-lag N]\n"
	        "                    [--consistency one|quorum] [--timeout MS]\n"
	        "                    [--http HOST:PORT[,HOST:PORT...]]\n"
	        "\n"
	        "Prints one read-model entry of a projection as one JSON object (for the\n"
	        "`latest` projection: the aggregate's latest event, in the consume format),\n"
	        "asked of the server's HTTP port: GET /v1/projections/PROJECTION/KEY. The\n"
	        "answer ends with \"token\" (what the model reflects, for --min-offset on\n"
	        "another replica; keys held in one partition), \"lag\" and, from a follower,\n"
	        "\"leader_heard_ms\".\n"
	        "\n"
	        "  --min-offset TOKEN  read your writes: answer only once the projection has\n"
	        "                      applied the event of this ack token (\"token\" in `sluice\n"
	        "                      produce --print-acks`, or of an earlier answer), or fail\n"
	        "                      with a timeout error; works on any replica\n"
	        "  --max-lag N         fail rather than answer from a model more than N events\n"
	        "                      behind the leader's durable end (on a follower: as it\n"
	        "                      last heard it, and not longer than 2 s ago)\n"
	        "  --consistency one|quorum\n"
	        "                      one (default): the model of the node asked; quorum (a\n"
	        "                      cluster): the node asks a majority of the key's\n"
	        "                      partition's replicas and answers from the one that has\n"
	        "                      applied the most, which sees every event acked under\n"
	        "                      acks quorum or all (\"quorum\" in the answer says which);\n"
	        "                      fails (503, retryable) without a majority; not with\n"
	        "                      --max-lag, nor for keys merged over every partition\n"
	        "  --timeout MS        how long the server may wait for --min-offset (default\n"
	        "                      5000, at most 60000)\n"
	        "  --http H:P[,H:P...] the HTTP addresses of the nodes to ask, in order: the\n"
	        "                      next is asked when one cannot be reached, is not\n"
	        "                      serving (503), too far behind (409) or did not apply\n"
	        "                      the token in time (504) (default " SL_CLI_DEFAULT_HTTP ",\n"
	        "                      or $SLUICE_HTTP)\n"
	        "  --token-file F      the server's token, when it has `auth` (else\n"
	        "                      $SLUICE_TOKEN)\n"
	        "\n"
	        "A KEY that starts with '-' goes after `--`. Exit status: 0 with the entry on\n"
	        "stdout; 1 when the last server asked answers an error (each one's message on\n"
	        "stderr: unknown projection or key, timeout, lag, not serving) or none can be\n"
	        "reached; 2 for bad usage.\n");
}

/*
 * One request to the server's HTTP port, its answer printed on stdout (200)
 * or its message on stderr. Returns the exit status: 0, or 1 (no answer, an
 * error status, or, with fail_if_false, a 200 whose JSON has that member
 * false).
 */
static int sl__http_call(CURL *cu, const struct sl_cli_server *srv, const char *cmd,
                         const char *base, const char *url, bool post, uint64_t timeout_ms,
                         const char *fail_if_false, long *http_status)
{
	struct sl_cli_body body = {0};
	struct curl_slist *hdr = sl_cli_auth_header(srv);
	char cerr[CURL_ERROR_SIZE] = "";
	int ret = 1;

	if (http_status)
		*http_status = 0; /* no answer */
	if (post)
		curl_easy_setopt(cu, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sl_cli_body_write);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_PROXY, ""); /* a local port: never through $http_proxy */
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, (long)SL__QUERY_CONNECT_MS);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, (long)(timeout_ms + SL__QUERY_SLACK_MS));
	if (hdr)
		curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdr);
	CURLcode cr = curl_easy_perform(cu);
	if (cr != CURLE_OK) {
		if (body.too_big)
			fprintf(stderr, "sluice %s: %s: answer larger than %u MiB\n", cmd, base,
			        SL_CLI_MAX_BODY >> 20);
		else if (cr == CURLE_COULDNT_CONNECT)
			fprintf(stderr,
			        "sluice %s: cannot connect to %s (%s); is sluiced running with "
			        "its HTTP port there? (--http or $SLUICE_HTTP)\n",
			        cmd, base, *cerr ? cerr : curl_easy_strerror(cr));
		else
			fprintf(stderr, "sluice %s: %s: %s\n", cmd, base,
			        *cerr ? cerr : curl_easy_strerror(cr));
		goto out;
	}
	long status = 0;
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
	if (http_status)
		*http_status = status;
	if (status != 200) {
		sl_cli_http_print_error(cmd, status, &body);
		goto out;
	}
	if ((body.len && (fwrite(body.data, 1, body.len, stdout) != body.len ||
	                  (body.data[body.len - 1] != '\n' && putchar('\n') == EOF))) ||
	    fflush(stdout) == EOF) {
		fprintf(stderr, "sluice %s: cannot write to stdout\n", cmd);
		goto out;
	}
	ret = 0;
	if (fail_if_false && body.data) {
		struct json_object *o = json_tokener_parse(body.data), *v;
		if (o && json_object_object_get_ex(o, fail_if_false, &v) &&
		    json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v))
			ret = 1;
		if (o)
			json_object_put(o);
	}
out:
	free(body.data);
	curl_slist_free_all(hdr);
	return ret;
}

int sl_cli_query(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"min-offset", required_argument, NULL, 'm'},
	    {"max-lag", required_argument, NULL, 'l'},
	    {"timeout", required_argument, NULL, 't'},
	    {"consistency", required_argument, NULL, 'c'},
	    {"http", required_argument, NULL, 'H'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sl_cli_server srv;
	const char *min_token = NULL, *addr = NULL, *token_file = NULL, *consistency = NULL;
	uint64_t max_lag = 0, timeout_ms = SL_HTTP_TIMEOUT_DEFAULT_MS;
	bool has_lag = false, has_timeout = false;
	int opt, ret = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': {
			uint32_t p;
			uint64_t o;
			if (sl_token_parse(optarg, strlen(optarg), &p, &o) < 0) {
				fprintf(
				    stderr,
				    "sluice query: --min-offset: expected PARTITION:OFFSET (the "
				    "token of an ack), got '%s'\n",
				    optarg);
				return 2;
			}
			min_token = optarg;
			break;
		}
		case 'l':
			if (sl_cli_parse_u64(optarg, 0, UINT64_MAX, &max_lag) < 0) {
				fprintf(
				    stderr,
				    "sluice query: --max-lag: expected a whole number of events, "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			has_lag = true;
			break;
		case 't':
			if (sl_cli_parse_u64(optarg, 0, SL_HTTP_TIMEOUT_MAX_MS, &timeout_ms) < 0) {
				fprintf(
				    stderr,
				    "sluice query: --timeout: expected milliseconds from 0 to %u, "
				    "got '%s'\n",
				    SL_HTTP_TIMEOUT_MAX_MS, optarg);
				return 2;
			}
			has_timeout = true;
			break;
		case 'c':
			if (strcmp(optarg, "one") && strcmp(optarg, "quorum")) {
				fprintf(stderr,
				        "sluice query: --consistency: expected one or quorum, got "
				        "'%s'\n",
				        optarg);
				return 2;
			}
			consistency = optarg;
			break;
		case 'H':
			if (sl_cli_servers_parse(optarg, &srv) < 0) {
				fprintf(
				    stderr,
				    "sluice query: --http: expected HOST:PORT[,HOST:PORT...], got "
				    "'%s'\n",
				    optarg);
				return 2;
			}
			addr = optarg;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'h':
			sl__query_usage(stdout);
			return 0;
		default:
			sl__query_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(
		    stderr,
		    "sluice query: expected PROJECTION KEY, got %d argument%s\n"
		    "usage: sluice query PROJECTION KEY [--min-offset TOKEN] [--max-lag N] "
		    "[--consistency one|quorum] [--timeout MS] [--http HOST:PORT[,HOST:PORT...]]\n",
		    argc - optind, argc - optind == 1 ? "" : "s");
		return 2;
	}
	const char *proj = argv[optind], *key = argv[optind + 1];
	if (!*proj || !*key) {
		fprintf(stderr, "sluice query: %s is empty\n", *proj ? "KEY" : "PROJECTION");
		return 2;
	}
	if (!addr) {
		addr = getenv("SLUICE_HTTP");
		if (!addr || !*addr)
			addr = SL_CLI_DEFAULT_HTTP;
	}
	struct sl__hostport *hv = NULL;
	size_t n_hv = 0;
	if (sl_cli_servers_parse(addr, &srv) < 0 ||
	    sl__servers_parse(addr, &hv, &n_hv, NULL, 0) < 0) {
		fprintf(stderr,
		        "sluice query: SLUICE_HTTP: expected HOST:PORT[,HOST:PORT...], got '%s'\n",
		        addr);
		return 2;
	}
	if (sl_cli_token("sluice query", token_file, &srv) < 0) {
		free(hv);
		return 2;
	}

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "sluice query: libcurl could not start\n");
		free(hv);
		return 1;
	}
	char base[300], url[SL_HTTP_MAX_URL * 2], params[SL_HTTP_MAX_URL + 1];
	char *ep = NULL, *ek = NULL;
	CURL *cu = curl_easy_init();
	if (!cu) {
		fprintf(stderr, "sluice query: libcurl could not start\n");
		goto out;
	}
	/* Every byte outside A-Z a-z 0-9 - . _ ~ is escaped, '/' included, so
	 * the server splits NAME from KEY where we did. */
	ep = curl_easy_escape(cu, proj, (int)strlen(proj));
	ek = curl_easy_escape(cu, key, (int)strlen(key));
	if (!ep || !ek) {
		fprintf(stderr, "sluice query: out of memory\n");
		goto out;
	}
	int n = snprintf(params, sizeof(params), "/v1/projections/%s/%s", ep, ek);
	char sep = '?';
	if (n > 0 && (size_t)n < sizeof(params) && min_token) {
		n += snprintf(params + n, sizeof(params) - (size_t)n, "%cmin_offset=%s", sep,
		              min_token);
		sep = '&';
	}
	if (n > 0 && (size_t)n < sizeof(params) && has_lag) {
		n += snprintf(params + n, sizeof(params) - (size_t)n, "%cmax_lag=%llu", sep,
		              (unsigned long long)max_lag);
		sep = '&';
	}
	if (n > 0 && (size_t)n < sizeof(params) && has_timeout) {
		n += snprintf(params + n, sizeof(params) - (size_t)n, "%ctimeout_ms=%llu", sep,
		              (unsigned long long)timeout_ms);
		sep = '&';
	}
	if (n > 0 && (size_t)n < sizeof(params) && consistency)
		n += snprintf(params + n, sizeof(params) - (size_t)n, "%cconsistency=%s", sep,
		              consistency);
	if (n < 0 || (size_t)n >= sizeof(params) || (size_t)n > SL_HTTP_MAX_URL) {
		fprintf(stderr,
		        "sluice query: PROJECTION and KEY are too long (the request would be over "
		        "%d bytes)\n",
		        SL_HTTP_MAX_URL);
		ret = 2;
		goto out;
	}
	/*
	 * Each node in the order given, the next one only when this one has
	 * no answer for this query that another might have: unreachable,
	 * not serving (503), too far behind for max_lag (409), or without
	 * the token's event in time (504). Its own answer otherwise (the
	 * entry; 400, 401 and 404 would be the same anywhere).
	 */
	for (size_t i = 0; i < n_hv; i++) {
		long status = 0;
		snprintf(srv.host, sizeof(srv.host), "%s", hv[i].host);
		srv.port = hv[i].port;
		sl_cli_base_url(&srv, base, sizeof(base));
		snprintf(url, sizeof(url), "%s%s", base, params);
		ret = sl__http_call(cu, &srv, "query", base, url, false, timeout_ms, NULL, &status);
		if (ret == 0 || (status && status != 409 && status != 503 && status != 504))
			break;
		if (i + 1 < n_hv)
			fprintf(stderr, "sluice query: %s did not answer it; asking the next\n",
			        base);
	}
out:
	free(hv);
	curl_free(ep);
	curl_free(ek);
	if (cu)
		curl_easy_cleanup(cu);
	curl_global_cleanup();
	return ret;
}

static void sl__projection_usage(FILE *out)
{
	fprintf(out,
	        "usage: sluice projection rebuild NAME [--swap] [--http HOST:PORT]\n"
	        "\n"
	        "Rebuilds projection NAME from offset 0, beside the live model (which keeps\n"
	        "serving), up to the offset the live model has applied, and compares the two\n"
	        "models byte for byte, partition by partition. Prints the server's JSON\n"
	        "answer ({\"projection\",\"equal\",\"swapped\",\"partitions\":[{\"partition\",\n"
	        "\"events\",\"equal\",\"swapped\",\"bytes\",\"rebuilt_bytes\"}]}); exits 0 when\n"
	        "every partition is equal, 1 otherwise or on an error.\n"
	        "\n"
	        "  --swap       where a partition's models differ (a plugin fixed since), the\n"
	        "               rebuilt one replaces the live one, atomically and durably;\n"
	        "               exits 0 once done, swapped or equal (host-state projections\n"
	        "               only: the server refuses it for in-memory ones)\n"
	        "  --http H:P   the server's HTTP port (default " SL_CLI_DEFAULT_HTTP
	        ", or $SLUICE_HTTP)\n"
	        "  --token-file F  the server's token, when it has `auth` (else $SLUICE_TOKEN)\n");
}

int sl_cli_projection(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"http", required_argument, NULL, 'H'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"swap", no_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct sl_cli_server srv;
	const char *addr = NULL, *token_file = NULL;
	bool swap = false;
	int opt, ret = 1;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			if (sl_cli_server_parse(optarg, &srv) < 0) {
				fprintf(stderr,
				        "sluice projection: --http: expected HOST:PORT, got '%s'\n",
				        optarg);
				return 2;
			}
			addr = optarg;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'S':
			swap = true;
			break;
		case 'h':
			sl__projection_usage(stdout);
			return 0;
		default:
			sl__projection_usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || strcmp(argv[optind], "rebuild") != 0) {
		fprintf(stderr, "sluice projection: expected `rebuild NAME`\n");
		sl__projection_usage(stderr);
		return 2;
	}
	const char *name = argv[optind + 1];
	if (!addr) {
		addr = getenv("SLUICE_HTTP");
		if (!addr || !*addr)
			addr = SL_CLI_DEFAULT_HTTP;
	}
	if (sl_cli_server_parse(addr, &srv) < 0) {
		fprintf(stderr, "sluice projection: SLUICE_HTTP: expected HOST:PORT, got '%s'\n",
		        addr);
		return 2;
	}
	if (sl_cli_token("sluice projection", token_file, &srv) < 0)
		return 2;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "sluice projection: libcurl could not start\n");
		return 1;
	}
	char base[300], url[SL_HTTP_MAX_URL * 2];
	char *en = NULL;
	CURL *cu = curl_easy_init();
	if (!cu || !(en = curl_easy_escape(cu, name, (int)strlen(name)))) {
		fprintf(stderr, "sluice projection: libcurl could not start\n");
		goto out;
	}
	sl_cli_base_url(&srv, base, sizeof(base));
	int n = snprintf(url, sizeof(url), "%s/v1/projections/%s/rebuild%s", base, en,
	                 swap ? "?swap=1" : "");
	if (n < 0 || (size_t)n >= sizeof(url)) {
		fprintf(stderr, "sluice projection: NAME too long\n");
		ret = 2;
		goto out;
	}
	/* A rebuild reads the whole topic: allow it an hour. */
	ret = sl__http_call(cu, &srv, "projection", base, url, true, 3600u * 1000u,
	                    swap ? NULL : "equal", NULL);
out:
	curl_free(en);
	if (cu)
		curl_easy_cleanup(cu);
	curl_global_cleanup();
	return ret;
}
