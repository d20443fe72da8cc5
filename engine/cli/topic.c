/*
 * sluice topic: topics at runtime, through the server's native port
 * (TopicAdmin, sl_consumer_topic_admin) or, with --http, its HTTP port
 * (/v1/topics, engine/http/http.h): create, list, describe, alter, delete.
 * Both carry the same request bodies and give the same answers.
 * What the server answers goes to stdout as it came (JSON), but for `list`,
 * which prints a table unless --json; an error answer's message goes to
 * stderr. The request bodies are built here with json-c: create's
 * {"name","partitions","replicas","settings":{...}} and alter's
 * {"settings":{...}}, each --set KEY=VALUE one setting, VALUE a JSON number
 * when it is a whole number written plainly, else a string (the server
 * takes either where a topic entry of the config takes a scalar).
 *
 * Ownership: nothing outlives the command. Threads: the CLI's one.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sluice/consumer.h"

/* The server's own bound on a request's answer time is its work: creating
 * a topic allocates its partitions' first segments, deleting one removes
 * its files. A minute covers thousands of partitions on a slow disk. */
#define SL__TOPIC_TIMEOUT_MS     60000u
#define SL__TOPIC_TIMEOUT_MAX_MS 3600000u
#define SL__TOPIC_CONNECT_MS     5000L

static void sl__topic_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: sluice topic create NAME [--partitions N] [--replicas R] [--set KEY=VALUE]...\n"
	    "       sluice topic list [--json]\n"
	    "       sluice topic describe NAME\n"
	    "       sluice topic alter NAME --set KEY=VALUE...\n"
	    "       sluice topic delete NAME\n"
	    "       (each also takes --server H:P, --http H:P, --token-file F, --timeout MS)\n"
	    "\n"
	    "Topics at runtime, asked of the server's native port (or with --http, of\n"
	    "its HTTP port: /v1/topics; the answers are the same). What is\n"
	    "created, altered or deleted here stays so across restarts; the config's\n"
	    "topics are listed too (source \"config\").\n"
	    "\n"
	    "  create    creates topic NAME and prints it as the server has it (JSON)\n"
	    "  list      one line per topic: name, partitions, replicas, source (config\n"
	    "            or runtime), events written (its partitions' end offsets\n"
	    "            summed), then its settings and anything else the server says\n"
	    "            of it, as KEY=VALUE\n"
	    "  describe  prints topic NAME (JSON)\n"
	    "  alter     changes settings of topic NAME and prints it as it now is (JSON)\n"
	    "  delete    deletes topic NAME; prints the server's answer (JSON)\n"
	    "\n"
	    "  --partitions N   create: the new topic's partitions (default: the\n"
	    "                   server's)\n"
	    "  --replicas R     create: its replicas (default: the server's)\n"
	    "  --set KEY=VALUE  create, alter: one setting, with the keys and forms of a\n"
	    "                   topic entry in the config (durability=interval:10ms,\n"
	    "                   overload=sample:0.1, segment_bytes=16MiB, ...); VALUE\n"
	    "                   goes as a number when it is a whole number, else as a\n"
	    "                   string. Repeat it for more settings.\n"
	    "  --json           list: print the server's JSON document, not the table\n"
	    "                   (the other subcommands print JSON anyway)\n"
	    "  --timeout MS     how long to wait for the answer (default %u)\n" SL_CLI_SERVER_USAGE
	    "  --http H:P       ask the server's HTTP port instead (or $SLUICE_HTTP, when\n"
	    "                   --server is not given)\n"
	    "  --token-file F   the server's token, when it has `auth` (else\n"
	    "                   $SLUICE_TOKEN)\n"
	    "\n"
	    "A NAME that starts with '-' goes after `--`. Exit status: 0 when the server\n"
	    "did it, its answer on stdout; 1 when it answers an error (its message on\n"
	    "stderr: no such topic, the topic exists or is in use, a bad setting) or\n"
	    "cannot be reached; 2 for bad usage.\n",
	    SL__TOPIC_TIMEOUT_MS);
}

enum sl__tcmd { SL__T_CREATE, SL__T_LIST, SL__T_DESCRIBE, SL__T_ALTER, SL__T_DELETE, SL__T_N };

static const char *const sl__tcmd_names[SL__T_N] = {"create", "list", "describe", "alter",
                                                    "delete"};

/* An integer as JSON writes one: -?(0|[1-9][0-9]*), within int64. Anything
 * else ("007", "+1", "1e3", "16MiB", "0.5") stays a string, so what the
 * user typed reaches the server unchanged in meaning. */
static bool sl__plain_int(const char *s, int64_t *out)
{
	const char *d = s + (*s == '-');
	char *end;

	if (*d < '0' || *d > '9' || (*d == '0' && d[1]))
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/*
 * The settings object of `n` KEY=VALUE strings: *out, or NULL with the
 * complaint on stderr (no '=', an empty KEY, a KEY given twice).
 */
static int sl__settings(char *const *sets, size_t n, struct json_object **out)
{
	struct json_object *o = json_object_new_object();

	*out = NULL;
	if (!o)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(sets[i], '=');
		if (!eq || eq == sets[i]) {
			fprintf(stderr, "sluice topic: --set: expected KEY=VALUE, got '%s'\n",
			        sets[i]);
			json_object_put(o);
			return -EINVAL;
		}
		char *key = strndup(sets[i], (size_t)(eq - sets[i]));
		if (!key)
			goto oom;
		if (json_object_object_get_ex(o, key, NULL)) {
			fprintf(stderr, "sluice topic: --set: key '%s' given twice\n", key);
			free(key);
			json_object_put(o);
			return -EINVAL;
		}
		int64_t v;
		struct json_object *jv = sl__plain_int(eq + 1, &v) ? json_object_new_int64(v)
		                                                   : json_object_new_string(eq + 1);
		int r = jv ? json_object_object_add(o, key, jv) : -1;
		free(key);
		if (r < 0) {
			json_object_put(jv);
			goto oom;
		}
	}
	*out = o;
	return 0;
oom:
	fprintf(stderr, "sluice topic: out of memory\n");
	json_object_put(o);
	return -ENOMEM;
}

/* A JSON value as the table shows it: strings bare, the rest as JSON. */
static const char *sl__cell(struct json_object *v)
{
	if (!v)
		return "null";
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* A member as a table cell, "-" when absent. */
static const char *sl__field(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) ? sl__cell(v) : "-";
}

/*
 * The list as a table, one line a topic, from {"topics":[...]}. 0, or
 * -EINVAL when the document is not that shape (the caller then prints it
 * as it came), -EIO when stdout fails.
 */
static int sl__print_table(const char *doc)
{
	static const char *const known[] = {"name",   "partitions", "replicas",
	                                    "source", "settings",   "end_offsets"};
	struct json_object *o = json_tokener_parse(doc), *topics;
	int ret = -EINVAL;

	if (!o || !json_object_object_get_ex(o, "topics", &topics) ||
	    !json_object_is_type(topics, json_type_array))
		goto out;
	size_t n = json_object_array_length(topics);
	int wname = 4, wsrc = 6;
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(topics, i);
		if (!json_object_is_type(t, json_type_object))
			goto out;
		int l = (int)strlen(sl__field(t, "name"));
		wname = l > wname ? l : wname;
		l = (int)strlen(sl__field(t, "source"));
		wsrc = l > wsrc ? l : wsrc;
	}
	ret = 0;
	if (!n) {
		printf("no topics\n");
		goto out;
	}
	printf("%-*s %10s %8s  %-*s %14s  %s\n", wname, "NAME", "PARTITIONS", "REPLICAS", wsrc,
	       "SOURCE", "WRITTEN", "SETTINGS");
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(topics, i), *v;
		char written[32] = "-";
		/* The events written: each end offset is its partition's next
		 * offset, so their sum counts every event ever stored. */
		if (json_object_object_get_ex(t, "end_offsets", &v) &&
		    json_object_is_type(v, json_type_array)) {
			uint64_t sum = 0;
			bool ok = true;
			for (size_t p = 0; p < json_object_array_length(v); p++) {
				struct json_object *e = json_object_array_get_idx(v, p);
				ok = ok && json_object_is_type(e, json_type_int);
				sum += ok ? (uint64_t)json_object_get_int64(e) : 0;
			}
			if (ok)
				snprintf(written, sizeof(written), "%" PRIu64, sum);
		}
		printf("%-*s %10s %8s  %-*s %14s", wname, sl__field(t, "name"),
		       sl__field(t, "partitions"), sl__field(t, "replicas"), wsrc,
		       sl__field(t, "source"), written);
		const char *sep = "  ";
		if (json_object_object_get_ex(t, "settings", &v) &&
		    json_object_is_type(v, json_type_object)) {
			json_object_object_foreach(v, key, val)
			{
				printf("%s%s=%s", sep, key, sl__cell(val));
				sep = " ";
			}
		} else if (v) {
			printf("%ssettings=%s", sep, sl__cell(v));
			sep = " ";
		}
		/* What this client does not know of is shown, not dropped. */
		json_object_object_foreach(t, key, val)
		{
			bool is_known = false;
			for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++)
				is_known = is_known || !strcmp(key, known[k]);
			if (!is_known) {
				printf("%s%s=%s", sep, key, sl__cell(val));
				sep = " ";
			}
		}
		putchar('\n');
	}
out:
	if (ret == 0 && fflush(stdout) == EOF)
		ret = -EIO;
	json_object_put(o);
	return ret;
}

/* Writes the answer as it came, with a final newline. */
static int sl__print_raw(const struct sl_cli_body *b)
{
	if ((b->len && (fwrite(b->data, 1, b->len, stdout) != b->len ||
	                (b->data[b->len - 1] != '\n' && putchar('\n') == EOF))) ||
	    fflush(stdout) == EOF)
		return -EIO;
	return 0;
}

struct sl__topic_args {
	enum sl__tcmd cmd;
	const char *name;
	bool has_partitions, has_replicas, json;
	uint64_t partitions, replicas;
	char **sets;
	size_t n_sets;
};

/* The request body of create and alter: a malloc'd JSON text, or NULL
 * with the complaint on stderr (*usage: the arguments were wrong). */
static char *sl__topic_body(const struct sl__topic_args *a, bool *usage)
{
	struct json_object *o = json_object_new_object(), *settings = NULL;
	char *text = NULL;
	int r = 0;

	*usage = false;
	if (!o)
		goto oom;
	if (a->cmd == SL__T_CREATE) {
		struct json_object *nm = json_object_new_string(a->name);
		if (!nm || json_object_object_add(o, "name", nm) < 0) {
			json_object_put(nm);
			goto oom;
		}
		if (a->has_partitions) {
			struct json_object *p = json_object_new_int64((int64_t)a->partitions);
			if (!p || json_object_object_add(o, "partitions", p) < 0) {
				json_object_put(p);
				goto oom;
			}
		}
		if (a->has_replicas) {
			struct json_object *p = json_object_new_int64((int64_t)a->replicas);
			if (!p || json_object_object_add(o, "replicas", p) < 0) {
				json_object_put(p);
				goto oom;
			}
		}
	}
	if (a->n_sets || a->cmd == SL__T_ALTER) {
		r = sl__settings(a->sets, a->n_sets, &settings);
		if (r == -EINVAL)
			*usage = true;
		if (r < 0)
			goto out;
		if (json_object_object_add(o, "settings", settings) < 0) {
			json_object_put(settings);
			goto oom;
		}
	}
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!s || !(text = strdup(s)))
		goto oom;
	goto out;
oom:
	fprintf(stderr, "sluice topic: out of memory\n");
out:
	json_object_put(o);
	return text;
}

/* Parses argv into *a; 0, or the exit status of a usage error (2) or of
 * --help (0, with *done set). */
static int sl__topic_parse(int argc, char **argv, struct sl__topic_args *a,
                           struct sl_cli_server *srv, bool *http, uint64_t *timeout_ms, bool *done)
{
	static const struct option opts[] = {
	    {"partitions", required_argument, NULL, 'p'},
	    {"replicas", required_argument, NULL, 'r'},
	    {"set", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"http", required_argument, NULL, 'H'},
	    {"server", required_argument, NULL, 'S'},
	    {"token-file", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *addr = NULL, *native = NULL, *token_file = NULL;
	int opt;

	*done = false;
	*timeout_ms = SL__TOPIC_TIMEOUT_MS;
	/* 0, not 1: glibc's whole reset of its permutation state, for a
	 * process that runs the command more than once (tests/unit/cli.c). */
	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
		case 'r': {
			uint64_t *dst = opt == 'p' ? &a->partitions : &a->replicas;
			if (sl_cli_parse_u64(optarg, 1, UINT32_MAX, dst) < 0) {
				fprintf(stderr,
				        "sluice topic: --%s: expected a whole number from 1, got "
				        "'%s'\n",
				        opt == 'p' ? "partitions" : "replicas", optarg);
				return 2;
			}
			*(opt == 'p' ? &a->has_partitions : &a->has_replicas) = true;
			break;
		}
		case 's':
			/* getopt permutes argv but leaves its strings in place:
			 * keeping pointers to them is safe. */
			a->sets[a->n_sets++] = optarg;
			break;
		case 'j':
			a->json = true;
			break;
		case 't':
			if (sl_cli_parse_u64(optarg, 1, SL__TOPIC_TIMEOUT_MAX_MS, timeout_ms) < 0) {
				fprintf(
				    stderr,
				    "sluice topic: --timeout: expected milliseconds from 1 to %u, "
				    "got '%s'\n",
				    SL__TOPIC_TIMEOUT_MAX_MS, optarg);
				return 2;
			}
			break;
		case 'H':
			addr = optarg;
			break;
		case 'S':
			native = optarg;
			break;
		case 'K':
			token_file = optarg;
			break;
		case 'h':
			sl__topic_usage(stdout);
			*done = true;
			return 0;
		default:
			sl__topic_usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "sluice topic: expected a subcommand: create, list, describe, "
		                "alter or delete (sluice topic --help)\n");
		return 2;
	}
	const char *sub = argv[optind];
	a->cmd = SL__T_N;
	for (int i = 0; i < SL__T_N; i++)
		if (!strcmp(sub, sl__tcmd_names[i]))
			a->cmd = (enum sl__tcmd)i;
	if (a->cmd == SL__T_N) {
		fprintf(stderr,
		        "sluice topic: unknown subcommand '%s' (expected create, list, describe, "
		        "alter or delete)\n",
		        sub);
		return 2;
	}
	int want = a->cmd == SL__T_LIST ? 0 : 1, got = argc - optind - 1;
	if (got != want) {
		fprintf(stderr, "sluice topic %s: expected %s, got %d argument%s\n", sub,
		        want ? "NAME" : "no argument", got, got == 1 ? "" : "s");
		return 2;
	}
	a->name = want ? argv[optind + 1] : NULL;
	if (a->name && !*a->name) {
		fprintf(stderr, "sluice topic %s: NAME is empty\n", sub);
		return 2;
	}
	if ((a->has_partitions || a->has_replicas) && a->cmd != SL__T_CREATE) {
		fprintf(stderr, "sluice topic %s: --%s is for `create` only\n", sub,
		        a->has_partitions ? "partitions" : "replicas");
		return 2;
	}
	if (a->n_sets && a->cmd != SL__T_CREATE && a->cmd != SL__T_ALTER) {
		fprintf(stderr, "sluice topic %s: --set is for `create` and `alter` only\n", sub);
		return 2;
	}
	if (a->cmd == SL__T_ALTER && !a->n_sets) {
		fprintf(stderr, "sluice topic alter: nothing to change (give --set KEY=VALUE)\n");
		return 2;
	}
	if (addr && native) {
		fprintf(stderr, "sluice topic: give --server or --http, not both\n");
		return 2;
	}
	/* The native port unless HTTP was asked for: by --http, or by
	 * $SLUICE_HTTP when --server is not given either. */
	if (!addr && !native && getenv("SLUICE_HTTP") && *getenv("SLUICE_HTTP"))
		addr = getenv("SLUICE_HTTP");
	*http = addr != NULL;
	if (addr && sl_cli_server_parse(addr, srv) < 0) {
		fprintf(stderr,
		        "sluice topic: --http or $SLUICE_HTTP: expected HOST:PORT, got '%s'\n",
		        addr);
		return 2;
	}
	if (!addr &&
	    (native ? sl_cli_servers_parse(native, srv) : sl_cli_server_default(srv)) < 0) {
		fprintf(stderr,
		        "sluice topic: --server or $SLUICE_SERVER: expected H:P[,H:P...], got "
		        "'%s'\n",
		        native ? native : getenv("SLUICE_SERVER"));
		return 2;
	}
	if (sl_cli_token("sluice topic", token_file, srv) < 0)
		return 2;
	return 0;
}

/* The answer as the HTTP route's would be printed: the table for `list`
 * (unless --json), else the JSON as it came; 0, or 1 after saying why. */
static int sl__topic_print(const struct sl__topic_args *a, const char *cmd,
                           const struct sl_cli_body *body)
{
	int r;
	if (a->cmd == SL__T_LIST && !a->json) {
		r = body->data ? sl__print_table(body->data) : -EINVAL;
		if (r == -EINVAL) {
			fprintf(stderr,
			        "sluice %s: the answer is not {\"topics\":[...]}; here it is as it "
			        "came\n",
			        cmd);
			if (sl__print_raw(body) < 0)
				fprintf(stderr, "sluice %s: cannot write to stdout\n", cmd);
			return 1;
		}
	} else {
		r = sl__print_raw(body);
	}
	if (r < 0) {
		fprintf(stderr, "sluice %s: cannot write to stdout\n", cmd);
		return 1;
	}
	return 0;
}

/* The request over the native port (TopicAdmin). */
static int sl__topic_native(const struct sl__topic_args *a, const struct sl_cli_server *srv,
                            const char *cmd, const char *json, uint32_t timeout_ms)
{
	static const enum sl_topic_op ops[SL__T_N] = {
	    SL_TOPIC_CREATE, SL_TOPIC_LIST, SL_TOPIC_DESCRIBE, SL_TOPIC_ALTER, SL_TOPIC_DELETE};
	struct sl_consumer *c = NULL;
	struct sl_cli_body body = {0};
	char err[600];
	int status, ret = 1;

	int r = sl_cli_consumer_connect(srv, "sluice-topic", &c, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "sluice %s: %s\n", cmd, err);
		return 1;
	}
	r = sl_consumer_topic_admin(c, ops[a->cmd], a->cmd == SL__T_CREATE ? NULL : a->name, json,
	                            timeout_ms, &status, &body.data);
	if (r < 0) {
		fprintf(stderr, "sluice %s: %s\n", cmd, sl_consumer_last_error(c));
		goto out;
	}
	body.len = strlen(body.data);
	if (status < 200 || status > 299) {
		sl_cli_http_print_error(cmd, status, &body);
		goto out;
	}
	ret = sl__topic_print(a, cmd, &body);
out:
	free(body.data);
	sl_consumer_close(c);
	return ret;
}

int sl_cli_topic(int argc, char **argv)
{
	struct sl__topic_args a = {0};
	struct sl_cli_server srv;
	struct sl_cli_body body = {0};
	uint64_t timeout_ms;
	char *json = NULL, *en = NULL, cmd[32], path[SL_CLI_MAX_URL], err[600];
	bool done, usage, http = false;
	int ret;

	a.sets = calloc((size_t)argc + 1, sizeof(*a.sets));
	if (!a.sets) {
		fprintf(stderr, "sluice topic: out of memory\n");
		return 1;
	}
	ret = sl__topic_parse(argc, argv, &a, &srv, &http, &timeout_ms, &done);
	if (ret || done)
		goto out;
	snprintf(cmd, sizeof(cmd), "topic %s", sl__tcmd_names[a.cmd]);
	if (a.cmd == SL__T_CREATE || a.cmd == SL__T_ALTER) {
		json = sl__topic_body(&a, &usage);
		if (!json) {
			ret = usage ? 2 : 1;
			goto out;
		}
	}
	if (!http) {
		ret = sl__topic_native(&a, &srv, cmd, json, (uint32_t)timeout_ms);
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "sluice %s: libcurl could not start\n", cmd);
		ret = 1;
		goto out;
	}
	ret = 1;
	/* Create names its topic in the body, to the collection. */
	if (a.name && a.cmd != SL__T_CREATE) {
		/* Every byte outside A-Z a-z 0-9 - . _ ~ is escaped, '/' too: the
		 * server decodes NAME once and finds the same bytes. */
		CURL *cu = curl_easy_init();
		en = cu ? curl_easy_escape(cu, a.name, (int)strlen(a.name)) : NULL;
		if (cu)
			curl_easy_cleanup(cu);
		if (!en) {
			fprintf(stderr, "sluice %s: out of memory\n", cmd);
			goto cleanup;
		}
	}
	int n = snprintf(path, sizeof(path), "/v1/topics%s%s", en ? "/" : "", en ? en : "");
	if (n < 0 || (size_t)n >= sizeof(path) - 300) {
		fprintf(stderr, "sluice %s: NAME is too long\n", cmd);
		ret = 2;
		goto cleanup;
	}
	static const char *const methods[SL__T_N] = {"POST", "GET", "GET", "PATCH", "DELETE"};
	long status = 0;
	long tmo = (long)timeout_ms;
	int r = sl_cli_http_request(&srv, methods[a.cmd], path, json, json ? strlen(json) : 0,
	                            tmo < SL__TOPIC_CONNECT_MS ? tmo : SL__TOPIC_CONNECT_MS, tmo,
	                            &body, &status, err, sizeof(err));
	if (r == -ECONNREFUSED) {
		fprintf(stderr,
		        "sluice %s: %s; is sluiced running with its HTTP port there? (--http or "
		        "$SLUICE_HTTP)\n",
		        cmd, err);
		goto cleanup;
	}
	if (r < 0) {
		fprintf(stderr, "sluice %s: %s\n", cmd, err);
		goto cleanup;
	}
	if (status < 200 || status > 299) {
		sl_cli_http_print_error(cmd, status, &body);
		goto cleanup;
	}
	ret = sl__topic_print(&a, cmd, &body);
cleanup:
	curl_free(en);
	curl_global_cleanup();
out:
	free(body.data);
	free(json);
	free(a.sets);
	return ret;
}
