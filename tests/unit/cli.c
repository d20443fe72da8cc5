/*
 * The CLI's `sluice topic` against the real HTTP port (engine/http) with a
 * fake topics backend, in one process: each subcommand's request (method,
 * decoded name, the body byte for byte), what it prints on stdout and
 * stderr, its exit status, the table of `list`, usage errors that never
 * reach the server, the token, and a server that is not there. The command
 * runs with stdout and stderr pointed at temporary files.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "http/http.h"

/* ---- the fake backend: records each request, answers what the test set --- */

struct fake {
	pthread_mutex_t mu;
	int calls;
	struct sl_http_topic_req last; /* strings copied below */
	char name[256];
	char body[4096];
	int status;        /* the next answer */
	const char *reply; /* its body */
};

static struct fake g_fake;

static void fake_topics(void *arg, const struct sl_http_topic_req *t, struct sl_http_reply *out)
{
	struct fake *f = arg;

	pthread_mutex_lock(&f->mu);
	f->calls++;
	f->last = *t;
	snprintf(f->name, sizeof(f->name), "%.*s", (int)t->name_len, t->name ? t->name : "");
	snprintf(f->body, sizeof(f->body), "%.*s", (int)t->body_len, t->body ? t->body : "");
	out->status = f->status;
	out->len = strlen(f->reply);
	out->body = strdup(f->reply);
	pthread_mutex_unlock(&f->mu);
}

static void fake_none(void *arg, struct sl_http_reply *out)
{
	(void)arg;
	sl_http_error_reply(out, 404, "not_found", "not in this test");
}

static void fake_query(void *arg, const struct sl_http_query *q, struct sl_http_reply *out)
{
	(void)q;
	fake_none(arg, out);
}

static void answer(int status, const char *reply)
{
	pthread_mutex_lock(&g_fake.mu);
	g_fake.status = status;
	g_fake.reply = reply;
	pthread_mutex_unlock(&g_fake.mu);
}

static int calls(void)
{
	pthread_mutex_lock(&g_fake.mu);
	int n = g_fake.calls;
	pthread_mutex_unlock(&g_fake.mu);
	return n;
}

/* ---- the server --------------------------------------------------------------- */

#define TOKEN "0123456789abcdef0123456789abcdef"

static struct sl_http *g_http;
static struct sl_auth *g_auth;
static char g_addr[64], g_dir[64], g_token_path[96];

static void start(bool with_auth)
{
	char err[256];

	memset(&g_fake, 0, sizeof(g_fake));
	pthread_mutex_init(&g_fake.mu, NULL);
	g_fake.status = 200;
	g_fake.reply = "{}";
	unsetenv("SLUICE_TOKEN");
	unsetenv("SLUICE_HTTP");
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-cli-test-XXXXXX");
	cr_assert_not_null(mkdtemp(g_dir));
	snprintf(g_token_path, sizeof(g_token_path), "%s/token", g_dir);
	FILE *fp = fopen(g_token_path, "w");
	cr_assert_not_null(fp);
	cr_assert_eq(fchmod(fileno(fp), 0600), 0);
	fputs(TOKEN "\n", fp);
	cr_assert_eq(fclose(fp), 0);
	if (with_auth)
		cr_assert_eq(sl_auth_load(g_token_path, &g_auth, err, sizeof(err)), 0, "%s", err);
	struct sl_http_backend b = {.arg = &g_fake,
	                            .query = fake_query,
	                            .status = fake_none,
	                            .metrics = fake_none,
	                            .topics = fake_topics,
	                            .auth = g_auth};
	cr_assert_eq(sl_http_start("127.0.0.1:0", &b, &g_http, err, sizeof(err)), 0, "%s", err);
	snprintf(g_addr, sizeof(g_addr), "127.0.0.1:%u", sl_http_port(g_http));
}

static void stop(void)
{
	sl_http_stop(g_http);
	g_http = NULL;
	sl_auth_free(g_auth);
	g_auth = NULL;
	unlink(g_token_path);
	rmdir(g_dir);
	pthread_mutex_destroy(&g_fake.mu);
}

/* ---- running the command ------------------------------------------------------ */

struct run {
	int rc;
	char out[8192], err[2048];
};

static void slurp(FILE *f, char *dst, size_t cap)
{
	rewind(f);
	size_t n = fread(dst, 1, cap - 1, f);
	dst[n] = 0;
	fclose(f);
}

/* `sluice topic [--http ADDR] ARGS...` (NULL-terminated), ADDR the test's
 * server unless no_http. */
static void run_args(struct run *r, bool no_http, const char *const *args)
{
	char *argv[40];
	int argc = 0;

	argv[argc++] = "topic";
	if (!no_http) {
		argv[argc++] = "--http";
		argv[argc++] = g_addr;
	}
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	FILE *fo = tmpfile(), *fe = tmpfile();
	cr_assert(fo && fe);
	fflush(stdout);
	fflush(stderr);
	int so = dup(1), se = dup(2);
	dup2(fileno(fo), 1);
	dup2(fileno(fe), 2);
	r->rc = sl_cli_topic(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	slurp(fo, r->out, sizeof(r->out));
	slurp(fe, r->err, sizeof(r->err));
}

#define RUN(r, ...)         run_args((r), false, (const char *const[]){__VA_ARGS__, NULL})
#define RUN_NO_HTTP(r, ...) run_args((r), true, (const char *const[]){__VA_ARGS__, NULL})

static void expect_ok(const struct run *r, const char *out)
{
	cr_assert_eq(r->rc, 0, "exit %d, stderr: %s", r->rc, r->err);
	cr_assert_str_eq(r->out, out);
	cr_assert_str_eq(r->err, "");
}

static void expect_last(enum sl_http_topic_op op, const char *name, const char *body)
{
	pthread_mutex_lock(&g_fake.mu);
	cr_assert_eq(g_fake.last.op, op, "op %d, want %d (name '%s', body %s)", g_fake.last.op, op,
	             g_fake.name, g_fake.body);
	cr_assert_str_eq(g_fake.name, name);
	cr_assert_str_eq(g_fake.body, body);
	pthread_mutex_unlock(&g_fake.mu);
}

/* ---- the subcommands ---------------------------------------------------------- */

Test(cli_topic, create_sends_the_document, .timeout = 60)
{
	struct run r;
	static const char topic[] = "{\"name\":\"orders\",\"partitions\":8,\"replicas\":1,"
	                            "\"source\":\"runtime\",\"settings\":{}}";

	start(false);
	answer(201, topic);
	RUN(&r, "create", "orders", "--partitions", "8", "--replicas", "1", "--set",
	    "durability=fsync", "--set", "segment_bytes=16MiB", "--set", "n=-12", "--set", "z=007",
	    "--set", "e=", "--set", "big=9223372036854775808", "--set", "eq=a=b");
	/* The server's answer as it came, with a newline. */
	expect_ok(&r, "{\"name\":\"orders\",\"partitions\":8,\"replicas\":1,\"source\":\"runtime\","
	              "\"settings\":{}}\n");
	/* Whole numbers written plainly go as numbers, the rest as strings. */
	expect_last(SL_HTTP_TOPIC_CREATE, "",
	            "{\"name\":\"orders\",\"partitions\":8,\"replicas\":1,\"settings\":{"
	            "\"durability\":\"fsync\",\"segment_bytes\":\"16MiB\",\"n\":-12,\"z\":\"007\","
	            "\"e\":\"\",\"big\":\"9223372036854775808\",\"eq\":\"a=b\"}}");

	/* Only what was given: the server fills in its defaults. */
	RUN(&r, "create", "t");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	expect_last(SL_HTTP_TOPIC_CREATE, "", "{\"name\":\"t\"}");
	/* Options before the subcommand work as well. */
	RUN(&r, "--set", "overload=sample:0.1", "create", "t");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	expect_last(SL_HTTP_TOPIC_CREATE, "",
	            "{\"name\":\"t\",\"settings\":{\"overload\":\"sample:0.1\"}}");
	/* The name travels in the body unescaped (JSON-escaped only). */
	RUN(&r, "create", "--", "-a\"b");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	expect_last(SL_HTTP_TOPIC_CREATE, "", "{\"name\":\"-a\\\"b\"}");
	cr_assert_eq(calls(), 4);
	stop();
}

Test(cli_topic, describe_alter_delete, .timeout = 60)
{
	struct run r;

	start(false);
	answer(200, "{\"name\":\"orders\"}\n");
	RUN(&r, "describe", "orders");
	expect_ok(&r, "{\"name\":\"orders\"}\n");
	expect_last(SL_HTTP_TOPIC_DESCRIBE, "orders", "");

	/* NAME is escaped whole, so the server decodes the same bytes. */
	RUN(&r, "describe", "a b%c+d.e_f~g");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	expect_last(SL_HTTP_TOPIC_DESCRIBE, "a b%c+d.e_f~g", "");

	RUN(&r, "alter", "orders", "--set", "durability=interval:10ms", "--set", "retention_x=5");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	expect_last(SL_HTTP_TOPIC_ALTER, "orders",
	            "{\"settings\":{\"durability\":\"interval:10ms\",\"retention_x\":5}}");

	answer(200, "{\"deleted\":\"orders\"}");
	RUN(&r, "delete", "orders");
	expect_ok(&r, "{\"deleted\":\"orders\"}\n");
	expect_last(SL_HTTP_TOPIC_DELETE, "orders", "");
	cr_assert_eq(calls(), 4);
	stop();
}

Test(cli_topic, list_table_and_json, .timeout = 60)
{
	struct run r;
	static const char doc[] =
	    "{\"topics\":[{\"name\":\"events\",\"partitions\":8,\"replicas\":1,\"source\":"
	    "\"config\","
	    "\"settings\":{\"durability\":\"fsync\",\"segment_bytes\":67108864},"
	    "\"end_offsets\":[10,0,5,0,0,0,0,27]},"
	    "{\"name\":\"orders.eu-west\",\"partitions\":2,\"replicas\":3,\"source\":\"runtime\","
	    "\"settings\":{\"overload\":\"sample:0.1\"},\"end_offsets\":[0,1],"
	    "\"leader\":\"n1\",\"isr\":[\"n1\",\"n2\"]},"
	    "{\"name\":\"bare\"}]}";

	start(false);
	answer(200, doc);
	RUN(&r, "list");
	expect_ok(&r,
	          "NAME           PARTITIONS REPLICAS  SOURCE         WRITTEN  SETTINGS\n"
	          "events                  8        1  config              42  durability=fsync "
	          "segment_bytes=67108864\n"
	          "orders.eu-west          2        3  runtime              1  "
	          "overload=sample:0.1 leader=n1 isr=[\"n1\",\"n2\"]\n"
	          "bare                    -        -  -                    -\n");
	expect_last(SL_HTTP_TOPIC_LIST, "", "");

	RUN(&r, "list", "--json");
	cr_assert_eq(r.rc, 0);
	cr_assert_eq(strncmp(r.out, doc, sizeof(doc) - 1), 0, "%s", r.out);
	cr_assert_str_eq(r.out + sizeof(doc) - 1, "\n");

	answer(200, "{\"topics\":[]}");
	RUN(&r, "list");
	expect_ok(&r, "no topics\n");

	/* Not the expected shape: shown as it came, and the exit says so. */
	answer(200, "{\"topic\":[]}");
	RUN(&r, "list");
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.out, "{\"topic\":[]}\n");
	cr_assert_not_null(strstr(r.err, "the answer is not {\"topics\":[...]}"), "%s", r.err);
	stop();
}

Test(cli_topic, server_errors, .timeout = 60)
{
	struct run r;

	start(false);
	answer(404, "{\"error\":\"unknown_topic\",\"message\":\"no topic 'x'\"}");
	RUN(&r, "describe", "x");
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.out, "");
	cr_assert_str_eq(r.err, "sluice topic describe: no topic 'x' (HTTP 404)\n");

	answer(409, "{\"error\":\"exists\",\"message\":\"topic 'orders' exists\"}");
	RUN(&r, "create", "orders");
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.err, "sluice topic create: topic 'orders' exists (HTTP 409)\n");

	answer(500, "not json");
	RUN(&r, "delete", "orders");
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.err, "sluice topic delete: HTTP 500: not json\n");

	/* Refused by the HTTP port itself, before the backend. */
	int before = calls();
	RUN(&r, "describe", "a/b");
	cr_assert_eq(r.rc, 1);
	cr_assert_str_eq(r.err, "sluice topic describe: topic name: contains '/' (%2F): 'a/b' "
	                        "(HTTP 400)\n");
	cr_assert_eq(calls(), before);
	stop();
}

Test(cli_topic, usage_errors_stay_local, .timeout = 60)
{
	struct run r;
	static const struct {
		const char *args[8];
		const char *err;
	} cases[] = {
	    {{NULL}, "expected a subcommand"},
	    {{"frob"}, "unknown subcommand 'frob'"},
	    {{"list", "x"}, "sluice topic list: expected no argument, got 1 argument"},
	    {{"create"}, "sluice topic create: expected NAME, got 0 arguments"},
	    {{"describe", "a", "b"}, "expected NAME, got 2 arguments"},
	    {{"describe", ""}, "NAME is empty"},
	    {{"alter", "t"}, "nothing to change (give --set KEY=VALUE)"},
	    {{"alter", "t", "--set", "x"}, "--set: expected KEY=VALUE, got 'x'"},
	    {{"alter", "t", "--set", "=1"}, "--set: expected KEY=VALUE, got '=1'"},
	    {{"create", "t", "--set", "a=1", "--set", "a=2"}, "key 'a' given twice"},
	    {{"describe", "t", "--set", "a=1"}, "--set is for `create` and `alter` only"},
	    {{"alter", "t", "--partitions", "3", "--set", "a=1"}, "--partitions is for `create`"},
	    {{"delete", "t", "--replicas", "3"}, "--replicas is for `create`"},
	    {{"create", "t", "--partitions", "0"}, "--partitions: expected a whole number from 1"},
	    {{"create", "t", "--partitions", "x"}, "--partitions: expected a whole number"},
	    {{"create", "t", "--replicas", "-1"}, "--replicas: expected a whole number"},
	    {{"list", "--timeout", "0"}, "--timeout: expected milliseconds from 1"},
	    {{"list", "--frob"}, "usage: sluice topic"},
	};

	start(false);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[12];
		size_t n = 0;
		for (; n < 8 && cases[i].args[n]; n++)
			args[n] = cases[i].args[n];
		args[n] = NULL;
		run_args(&r, false, args);
		cr_assert_eq(r.rc, 2, "case %zu: exit %d", i, r.rc);
		cr_assert_str_eq(r.out, "", "case %zu", i);
		cr_assert_not_null(strstr(r.err, cases[i].err), "case %zu: '%s' not in %s", i,
		                   cases[i].err, r.err);
	}
	RUN_NO_HTTP(&r, "list", "--http", "nohost");
	cr_assert_eq(r.rc, 2);
	cr_assert_not_null(strstr(r.err, "expected HOST:PORT, got 'nohost'"), "%s", r.err);
	cr_assert_eq(calls(), 0);

	/* --help: the usage on stdout, exit 0, nothing asked. */
	RUN(&r, "--help");
	cr_assert_eq(r.rc, 0);
	cr_assert_not_null(strstr(r.out, "usage: sluice topic create NAME [--partitions N]"));
	cr_assert_not_null(strstr(r.out, "sluice topic alter NAME --set KEY=VALUE..."));
	cr_assert_str_eq(r.err, "");
	cr_assert_eq(calls(), 0);
	stop();
}

Test(cli_topic, token_and_address, .timeout = 60)
{
	struct run r;

	start(true);
	answer(200, "{\"topics\":[]}");
	RUN(&r, "list");
	cr_assert_eq(r.rc, 1);
	cr_assert_not_null(strstr(r.err, "sluice topic list: this server requires "
	                                 "`Authorization: Bearer TOKEN` (HTTP 401)"),
	                   "%s", r.err);
	cr_assert_eq(calls(), 0);
	RUN(&r, "list", "--token-file", g_token_path);
	expect_ok(&r, "no topics\n");
	setenv("SLUICE_TOKEN", TOKEN, 1);
	RUN(&r, "alter", "t", "--set", "a=b");
	cr_assert_eq(r.rc, 0, "%s", r.err);
	expect_last(SL_HTTP_TOPIC_ALTER, "t", "{\"settings\":{\"a\":\"b\"}}");
	unsetenv("SLUICE_TOKEN");
	cr_assert_eq(calls(), 2);

	/* $SLUICE_HTTP when there is no --http. */
	setenv("SLUICE_HTTP", g_addr, 1);
	RUN_NO_HTTP(&r, "list", "--token-file", g_token_path);
	expect_ok(&r, "no topics\n");
	unsetenv("SLUICE_HTTP");
	stop();

	/* Nobody there: exit 1, and the hint. The port was just ours, and
	 * nothing listens on it once stopped. */
	RUN(&r, "list");
	cr_assert_eq(r.rc, 1);
	cr_assert_not_null(strstr(r.err, "is sluiced running with its HTTP port there? (--http or "
	                                 "$SLUICE_HTTP)"),
	                   "%s", r.err);
}

/* ---- sluice cluster status: the merge of the nodes' answers ------------------ */

Test(cli_cluster, merge_takes_each_partition_from_its_leader)
{
	const char *n1 =
	    "{\"node\":\"n1\",\"nodes\":[{\"id\":\"n1\",\"native\":\"127.0.0.1:7410\",\"http\":"
	    "\"127.0.0.1:7411\",\"alive\":true},{\"id\":\"n2\",\"native\":\"127.0.0.1:7420\","
	    "\"http\":\"127.0.0.1:7421\",\"alive\":true},{\"id\":\"n3\",\"native\":\"127.0.0.1:"
	    "7430\",\"http\":\"127.0.0.1:7431\",\"alive\":true}],\"topics\":[{\"name\":\"events\","
	    "\"partitions\":[{\"partition\":0,\"leader\":\"n1\",\"epoch\":1,\"high_watermark\":20,"
	    "\"this_node\":\"leader\",\"replica_state\":[{\"node\":\"n1\"},{\"node\":\"n2\"}]},"
	    "{\"partition\":1,\"leader\":\"n2\",\"epoch\":3,\"high_watermark\":5,\"this_node\":"
	    "\"follower\",\"replica_state\":[{\"node\":\"n1\"}]},{\"partition\":2,\"leader\":"
	    "\"n3\",\"epoch\":2,\"high_watermark\":7,\"this_node\":\"follower\"}]}]}";
	const char *n2 =
	    "{\"node\":\"n2\",\"nodes\":[],\"topics\":[{\"name\":\"events\",\"partitions\":["
	    "{\"partition\":0,\"leader\":\"n1\",\"epoch\":1,\"high_watermark\":19,\"this_node\":"
	    "\"follower\"},{\"partition\":1,\"leader\":\"n2\",\"epoch\":3,\"high_watermark\":9,"
	    "\"this_node\":\"leader\",\"replica_state\":[{\"node\":\"n1\"},{\"node\":\"n2\"},"
	    "{\"node\":\"n3\"}]}]}]}";
	struct json_object *first = json_tokener_parse(n1);
	struct json_object *answers[3] = {json_object_get(first), json_tokener_parse(n2), NULL};
	cr_assert(first && answers[1]);

	struct json_object *m = sl_cli_cluster_merge(first, answers, 3);
	struct json_object *nodes, *topics, *parts, *v;
	cr_assert(json_object_object_get_ex(m, "nodes", &nodes));
	cr_assert_eq(json_object_array_length(nodes), 3);
	/* n3 did not answer: not alive, whatever n1 believed. */
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(nodes, 2), "alive", &v));
	cr_assert_not(json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(json_object_array_get_idx(nodes, 1), "alive", &v));
	cr_assert(json_object_get_boolean(v));
	cr_assert(json_object_object_get_ex(m, "topics", &topics));
	cr_assert(
	    json_object_object_get_ex(json_object_array_get_idx(topics, 0), "partitions", &parts));
	cr_assert_eq(json_object_array_length(parts), 3);
	/* Partition 0 from n1 (its leader), 1 from n2 (its leader), 2 from
	 * the first node: its leader n3 did not answer. */
	int64_t want_hw[3] = {20, 9, 7};
	for (int i = 0; i < 3; i++) {
		cr_assert(json_object_object_get_ex(json_object_array_get_idx(parts, (size_t)i),
		                                    "high_watermark", &v));
		cr_assert_eq(json_object_get_int64(v), want_hw[i], "partition %d", i);
	}
	cr_assert(
	    json_object_object_get_ex(json_object_array_get_idx(parts, 1), "replica_state", &v));
	cr_assert_eq(json_object_array_length(v), 3);
	json_object_put(m);
	for (int i = 0; i < 3; i++)
		json_object_put(answers[i]);
	json_object_put(first);
}
