/*
 * cli: the `sluice` command-line client. One file per command; this header
 * holds what they share: server addresses, number parsing, the fd limit,
 * the latency histogram of `sluice bench`.
 *
 * Ownership: plain values, nothing allocated behind the caller's back except
 * inside struct sl_hist (sl_hist_init / sl_hist_free).
 * Threads: the histogram is one per thread (merge them at the end); the rest
 * is pure.
 */
#ifndef SL_CLI_H
#define SL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SL_CLI_DEFAULT_SERVER "127.0.0.1:7400"
#define SL_CLI_DEFAULT_HTTP   "127.0.0.1:7480"

/* Commands: argv[0] is the command name; the return value is the exit code. */
int sl_cli_produce(int argc, char **argv);
int sl_cli_bench(int argc, char **argv);
/* consume_group.c: `sluice consume --group G`, on a connected consumer
 * and the topic's partitions. */
struct sl_partition_info;
struct sl_consumer;
struct sl_fetched;
struct sl_cli_group {
	const char *group, *topic;
	const char *from; /* --from as given; NULL: the group's offsets */
	uint64_t from_off;
	bool from_time; /* --from is a time: from_ms */
	int64_t from_ms;
	bool commit_before; /* --commit before (at-most-once) */
	bool follow;
	uint32_t session_ms; /* 0: the server's default */
	uint64_t max;        /* 0: no bound */
	const uint64_t *printed;
	int (*print)(void *arg, const struct sl_fetched *ev);
	void *print_arg;
};
int sl_cli_consume_group(struct sl_consumer *c, const struct sl_cli_group *o,
                         struct sl_partition_info *parts, size_t n_parts);
int sl_cli_consume(int argc, char **argv);
int sl_cli_query(int argc, char **argv);
int sl_cli_projection(int argc, char **argv);
int sl_cli_status(int argc, char **argv);
int sl_cli_topic(int argc, char **argv);
int sl_cli_cluster(int argc, char **argv);
int sl_cli_partition(int argc, char **argv);

struct json_object;
/* `sluice cluster status`'s merge (cluster.c): the first node's /v1/cluster
 * answer and answers[i] of its nodes[i] (NULL: it did not answer) into
 * {"nodes","topics"}: each partition as the node that says it is its
 * leader ("this_node") has it, else as the first node has it; a node that
 * did not answer has alive false. A new object (json_object_put). */
struct json_object *sl_cli_cluster_merge(struct json_object *first, struct json_object **answers,
                                         size_t n);

/* Longest token a client sends (auth/auth.h's SL_AUTH_MAX_LEN, plus NUL). */
#define SL_CLI_TOKEN_CAP 513

/* Longest --server list kept (bootstrap servers, comma-separated). */
#define SL_CLI_SERVERS_CAP 2048

struct sl_cli_server {
	char host[256]; /* the first server of the list */
	uint16_t port;
	char token[SL_CLI_TOKEN_CAP]; /* "" when none (sl_cli_token) */
	/* --server as given, "H:P[,H:P...]", for libsluice's opts.servers;
	 * "" when parsed by sl_cli_server_parse (one address). */
	char list[SL_CLI_SERVERS_CAP];
};

/* The token every command sends to a server with `auth`: $SLUICE_TOKEN when
 * set, else the first token of `file` (--token-file; NULL: none). Fills
 * s->token; 0, or says why on stderr (prefixed with `cmd`) and returns -1. */
int sl_cli_token(const char *cmd, const char *file, struct sl_cli_server *s);
struct curl_slist;
/* The headers of a request to s: `Authorization: Bearer TOKEN` when s has a
 * token. NULL when it has none (or memory ran out: the server then says
 * 401, which is reported). Free with curl_slist_free_all. */
struct curl_slist *sl_cli_auth_header(const struct sl_cli_server *s);
/* The option every client command takes, for its usage text. */
#define SL_CLI_TOKEN_USAGE                                                                         \
	"  --token-file F  the server's token, when it has `auth` (else $SLUICE_TOKEN)\n"

/* "HOST:PORT" or "[V6]:PORT". 0 or -EINVAL. */
int sl_cli_server_parse(const char *s, struct sl_cli_server *out);
/* A bootstrap list "H:P[,H:P...]": the first into host/port, the whole
 * into list. 0 or -EINVAL. */
int sl_cli_servers_parse(const char *s, struct sl_cli_server *out);
/* $SLUICE_SERVER (a list) when set, else 127.0.0.1:7400; -EINVAL for a bad
 * variable. */
int sl_cli_server_default(struct sl_cli_server *out);
/* The usage line of --server, shared by every native-port command. */
#define SL_CLI_SERVER_USAGE                                                                        \
	"  --server H:P[,H:P...]  bootstrap servers, the first that answers is used\n"             \
	"                   (default " SL_CLI_DEFAULT_SERVER ", or $SLUICE_SERVER)\n"
struct sl_consumer;
/* A consumer connection to the first server of s->list (or s->host:port)
 * that answers, named `name`; 0 or the last error, `err` saying why. On
 * success *out is connected. */
int sl_cli_consumer_connect(const struct sl_cli_server *s, const char *name,
                            struct sl_consumer **out, char *err, size_t errlen);

/* The HTTP port (cli/http.c). $SLUICE_HTTP when set, else 127.0.0.1:7480. */
int sl_cli_http_default(struct sl_cli_server *out);
/* "http://HOST:PORT" (brackets around an IPv6 host). */
void sl_cli_base_url(const struct sl_cli_server *s, char *out, size_t cap);
/* An answer being collected; data is NUL-terminated, the caller frees it.
 * A read-model entry or a status is one JSON object: anything larger than
 * the bound is not one, and it keeps a misdirected URL from filling memory. */
#define SL_CLI_MAX_BODY (64u << 20)
struct sl_cli_body {
	char *data;
	size_t len, cap;
	bool too_big;
};
/* libcurl's write callback filling a struct sl_cli_body. */
size_t sl_cli_body_write(char *p, size_t size, size_t n, void *arg);
/* Longest URL a command builds: the server's longest request target
 * (http.h's SL_HTTP_MAX_URL, 2 KiB) and the scheme and address, twice over. */
#define SL_CLI_MAX_URL 4096
/* One request to the HTTP port: `method` on `path` (escaped already), with
 * `json` (json_len bytes, sent as application/json) when not NULL, the
 * token of `http` when it has one. 0 with *status and the answer in *body
 * (whatever the status); -ECONNREFUSED when nothing answers at the
 * address, other -errno otherwise, with `err` saying why. */
int sl_cli_http_request(const struct sl_cli_server *http, const char *method, const char *path,
                        const char *json, size_t json_len, long connect_ms, long timeout_ms,
                        struct sl_cli_body *body, long *status, char *err, size_t errlen);
/* GET path; 0 with *status and the body, or -errno with `err` saying why. */
int sl_cli_http_get(const struct sl_cli_server *http, const char *path, long timeout_ms,
                    struct sl_cli_body *body, long *status, char *err, size_t errlen);
/* An error answer on stderr, one line: "sluice CMD: MESSAGE (HTTP STATUS)"
 * with the server's JSON "message", else the start of the body as it came. */
void sl_cli_http_print_error(const char *cmd, long status, const struct sl_cli_body *b);

/* Whole decimal numbers in [min, max]; 0 or -EINVAL. */
int sl_cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A non-negative decimal (seconds, rates); 0 or -EINVAL. */
int sl_cli_parse_double(const char *s, double min, double max, double *out);

/*
 * Makes sure the process may hold `need` file descriptors: when the soft
 * RLIMIT_NOFILE is lower, raises it to the hard limit. 0, or -EMFILE when
 * even that is too low (*limit, when not NULL, gets the limit in force).
 */
int sl_cli_nofile_reserve(uint64_t need, uint64_t *limit);

/*
 * Log-linear latency histogram: values below 128 exactly, above that 64
 * buckets per power of two (a bucket is at most 1/64 = 1.6% wide relative
 * to its values). Covers all of uint64; recording is a few instructions and
 * never allocates.
 */
#define SL_HIST_SUB_BITS 6
#define SL_HIST_BUCKETS  (128 + (64 - SL_HIST_SUB_BITS - 1) * 64)

struct sl_hist {
	uint64_t *b; /* SL_HIST_BUCKETS counts */
	uint64_t n;
	uint64_t min, max;
	long double sum;
};

int sl_hist_init(struct sl_hist *h);
void sl_hist_free(struct sl_hist *h);

static inline uint32_t sl_hist_index(uint64_t v)
{
	if (v < 128)
		return (uint32_t)v;
	uint32_t msb = 63u - (uint32_t)__builtin_clzll(v);
	uint32_t e = msb - SL_HIST_SUB_BITS; /* >= 1 */
	uint32_t sub = (uint32_t)(v >> e);   /* in [64, 128) */
	return 128u + (e - 1u) * 64u + (sub - 64u);
}

static inline void sl_hist_record(struct sl_hist *h, uint64_t v)
{
	h->b[sl_hist_index(v)]++;
	h->n++;
	h->sum += (long double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void sl_hist_merge(struct sl_hist *into, const struct sl_hist *from);
/* The value at quantile q in [0, 1]: the top of the bucket holding it,
 * never above the largest value recorded. 0 when empty. */
uint64_t sl_hist_quantile(const struct sl_hist *h, double q);

/* sluice bench --query: queries on the HTTP port while producers run
 * (bench_query.c). */
struct sl_cli_qload;
struct sl_cli_qload_result {
	uint64_t queries, errors;
	double qps, p50, p99, p999; /* microseconds */
	char err[200];
};
/* `path` is PROJECTION/KEY as it goes into the URL (already escaped). */
int sl_cli_qload_start(const struct sl_cli_server *http, const char *path, uint32_t threads,
                       struct sl_cli_qload **out);
void sl_cli_qload_stop(struct sl_cli_qload *q, struct sl_cli_qload_result *res);

#endif
