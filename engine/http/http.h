/*
 * http: the HTTP port (`listen.http`, default 127.0.0.1:7480). It routes,
 * parses and bounds requests, and leaves every answer about data to a
 * backend (a table of functions) that the server provides, so this module
 * knows nothing of what topics and projections are or hold.
 *
 * Routes (GET; HEAD is answered like GET without the body):
 *   /                        a small live dashboard (inline HTML + script
 *                            that polls /v1/status and /metrics each second)
 *   /healthz                 200 "ok\n", text/plain, never asks the backend
 *   /metrics                 backend->metrics (Prometheus text format)
 *   /v1/status               backend->status (JSON)
 *   /v1/projections/NAME/KEY[?min_offset=P:O][&max_lag=N][&timeout_ms=N]
 *                            [&consistency=one|quorum]
 *                            backend->query (JSON): one read-model entry
 *   POST /v1/projections/NAME/rebuild[?swap=1]   backend->rebuild (JSON)
 * Topics at runtime, backend->topics (JSON both ways; struct
 * sl_http_topic_req says which operation each is):
 *   GET    /v1/topics        list               POST /v1/topics   create
 *   GET    /v1/topics/NAME   describe           POST or PATCH /v1/topics/NAME   alter
 *   DELETE /v1/topics/NAME   delete
 * Any other path: 404; any other method: 405 with the path's `Allow`
 * (`GET, HEAD`; `GET, HEAD, POST` on /v1/topics; `GET, HEAD, POST, PATCH,
 * DELETE` on /v1/topics/NAME). A NULL backend->topics: 404 for both paths.
 *
 * Query parameters: min_offset is the ack token `sluice produce
 * --print-acks` prints ("PARTITION:OFFSET", decimal): answer only once the
 * projection has applied that event (read your writes). max_lag=N: refuse
 * when the model is more than N events behind the partition's durable end
 * (in a cluster: the leader's, as the replica asked last heard it; the
 * backend's business).
 * timeout_ms=N (0..60000, default 5000): how long min_offset may wait.
 * consistency=one|quorum: which replicas answer (the backend's business:
 * one, this node's model; quorum, the most applied of a majority of the
 * partition's replicas); absent is one, but only an explicit value is
 * passed on as such (the backend adds members to those answers).
 * Any other parameter, or one given twice, is a 400. NAME and KEY are
 * percent-decoded (%XX; '+' is a literal plus in the path); KEY is
 * everything after the first '/' that follows NAME, so "a/b" works both
 * as a%2Fb and raw.
 *
 * Topic paths: NAME is percent-decoded once (%XX; '+' is a literal plus);
 * an empty NAME, one that decodes to a '/' or a NUL, or a bad %-escape is
 * a 400 (the topic's own naming rules are the backend's to apply); a
 * further raw '/' (/v1/topics/a/b) is a 404, there being no route below a
 * topic. They take no query parameters: any is a 400, because a mutation
 * must not quietly ignore what the client asked of it.
 * Request bodies are read on the topic routes only, and at most
 * SL_HTTP_MAX_BODY bytes of one: a Content-Length above it is answered 413
 * at once without reading the body (MHD then closes the connection); a
 * chunked body that grows past it is read and dropped to its end, then
 * answered 413, unless it goes on past SL_HTTP_MAX_BODY_DROP, when the
 * connection is closed without an answer. Create and alter need a body
 * (400 without one); list, describe and delete read theirs (bounded the
 * same) and drop it. Other routes drop any body, unbounded, as before.
 *
 * Every error answer is a JSON object {"error":CODE,"message":TEXT}
 * (sl_http_error_reply), TEXT saying exactly what was wrong. Statuses and
 * the codes to use with them:
 *   200                          the answer
 *   400 "bad_request"            a bad path or parameter (the message names it)
 *   401 "unauthorized"           auth is set and the request has no valid
 *                                `Authorization: Bearer TOKEN` (not /healthz)
 *   404 "unknown_projection"     no projection of that name
 *   404 "not_found"              the projection has no entry for the key;
 *                                also an unknown route
 *   405 "method_not_allowed"     not a method of the path (see Allow)
 *   409 "lag_exceeded"           max_lag: "the model is N events behind,
 *                                more than max_lag M", or a follower
 *                                that has not heard from its leader
 *   413 "content_too_large"      a topic request's body is over
 *                                SL_HTTP_MAX_BODY
 *   414 "uri_too_long"           the request target is over SL_HTTP_MAX_URL
 *   500 "internal"               the backend failed (out of memory, a bug)
 *   503 "unavailable"            the projection is not serving (failed,
 *                                rebuilding); consistency=quorum: fewer
 *                                than a majority of the replicas answered
 *                                (the message names each one's reason)
 *   504 "timeout"                min_offset not applied within timeout_ms
 * Topic answers carry the backend's statuses and codes (201 created, 404
 * no such topic, 409 exists, in use or contradicts, ...) as they come.
 *
 * Threading model: libmicrohttpd in thread-per-connection mode
 * (MHD_USE_THREAD_PER_CONNECTION, poll() for the listener). Why: a query
 * with min_offset blocks in backend->query until the projection catches up
 * (up to 60 s). In MHD's thread-pool mode each pool thread multiplexes many
 * connections, so one blocked handler would stall every other connection on
 * its thread, the dashboard's and /healthz's included. With a thread per
 * connection a blocked query only holds its own. The thread count is
 * bounded by the connection limit plus SL_HTTP_RESERVE (MHD's own
 * MHD_OPTION_CONNECTION_LIMIT), each thread's stack by SL_HTTP_STACK, and
 * each connection's request memory by MHD's pool (SL_HTTP_CONN_MEMORY), so
 * memory stays bounded. poll() rather than select(): sluiced holds
 * thousands of sockets, and select() cannot watch a descriptor above 1023.
 *
 * Connection limits and slow clients (struct sl_http_limits; the config's
 * limits.http_max_connections, max_connections_per_ip, http_timeout,
 * http_header_timeout). A connection is *admitted* while fewer than
 * max_connections are and its client address (net.h: IPv4, or IPv6 /64)
 * holds fewer than max_connections_per_ip. Any other connection is *over*:
 * it takes one of SL_HTTP_RESERVE spare slots, may send one request, gets
 * 503 "unavailable" with `Retry-After: 1` and `Connection: close` for
 * anything but /healthz and /metrics, which are answered as usual (a load
 * balancer's health check and a scraper keep working while slow or idle
 * clients hold every admitted slot), and is closed after that answer. An
 * address holding SL_HTTP_RESERVE_PER_IP spare slots already is answered
 * the same 503 at once, without its request being read, so one client
 * cannot take the reserve either. Only past max_connections +
 * SL_HTTP_RESERVE does MHD itself close new connections at accept.
 * Deadlines: a connection must deliver a whole request header within
 * header_timeout of connecting (SL_HTTP_OVER_HEADER_MS for an over one),
 * and each later request's header within idle_timeout of the previous
 * answer; a connection that does not (half a header, a byte a second) is
 * shut by the watcher thread (`sl-http-watch`, a 100 ms scan). MHD's own
 * MHD_OPTION_CONNECTION_TIMEOUT (idle_timeout) covers the rest: it only
 * measures inactivity, which a client trickling a byte at a time never
 * shows, hence the watcher. Refusals, header timeouts and open connections
 * are appended to /metrics (sluice_http_*).
 *
 * Ownership: the backend fills a struct sl_http_reply with a malloc'd body
 * that this module frees after sending. sl_http_start returns a server that
 * sl_http_stop frees; the backend (and its arg) must outlive it.
 * Threads: backend functions are called on MHD's connection threads,
 * concurrently. sl_http_start / sl_http_stop from one controlling thread.
 * sl_http_stop stops accepting, closes idle connections and joins every
 * connection thread, so it waits for handlers that are blocked in
 * backend->query: the server should wake its waiting queries (answering
 * 503) before calling it. sl_http_parse_query, sl_http_parse_topic and
 * sl_http_error_reply are pure and may be called from any thread.
 */
#ifndef SL_HTTP_H
#define SL_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_auth;

/* Longest request target (path and query string) served. Keys are aggregate
 * ids (short strings); 2 KiB leaves room for three times over-encoded keys
 * and still keeps a request's scratch on the handler's stack. */
#define SL_HTTP_MAX_URL 2048
/* A topic request's body: a topic document is well under 1 KiB (a name,
 * two counts and a dozen settings of strings and numbers), so 64 KiB is
 * room to spare while it keeps what a connection can make us hold small
 * (every admitted connection sending one at once, SL_HTTP_MAX_CONNS by
 * default: 64 MiB of heap at most, and only with the token when `auth` is
 * set; connections over a limit never reach these routes). */
#define SL_HTTP_MAX_BODY (64u << 10)
/* A chunked body past SL_HTTP_MAX_BODY is dropped up to this point so that
 * its sender reads a 413; a sender that goes on further is not waiting for
 * an answer, and its thread is worth more than its courtesy. */
#define SL_HTTP_MAX_BODY_DROP (1u << 20)
/* Query parameters per request: four are defined; the rest is slack for
 * a clear "unknown parameter" message rather than a silent cut. */
#define SL_HTTP_MAX_ARGS 16
/* Admitted connections (threads) unless the config says otherwise: 600
 * parallel query clients from one host must fit (issue 23: the old fixed
 * 256 lost 1.4% of their connections), and a thread costs reserved stack
 * (SL_HTTP_STACK) and SL_HTTP_CONN_MEMORY, not resident memory, while idle. */
#define SL_HTTP_MAX_CONNS 1024
/* Spare slots beyond the limit: enough for health checkers and scrapers
 * to be answered, with each address allowed a few, and each held at most
 * SL_HTTP_OVER_HEADER_MS before its request is in. 8 an address, not 4: a
 * checker that probes back to back (or several behind one address) had 4
 * connections still closing often enough to be answered the canned 503
 * (e2e slowloris_health, 1 run in 5 at 700 probes/s; 0 in 20 with 8 and
 * the share given back at each answer). */
#define SL_HTTP_RESERVE        64
#define SL_HTTP_RESERVE_PER_IP 8
/* A health check sends its whole request at once; a second is generous. */
#define SL_HTTP_OVER_HEADER_MS 1000
/* Seconds a refused client is told to wait: a slot frees as soon as any
 * request ends, and a longer hint only delays a retry that would work. */
#define SL_HTTP_RETRY_AFTER_S 1
/* The listen backlog: connections the kernel completes before MHD's
 * listener accepts them (one per poll round, a thread created each). 128
 * overflowed 1,193 times in three rounds of 600 clients connecting at
 * once (TcpExtListenOverflows; each costs the client a SYN retransmit, 1 s
 * or more); the kernel caps it at net.core.somaxconn. */
#define SL_HTTP_BACKLOG 4096
/* Stack per connection thread: the handler keeps its request scratch
 * (about 2 x SL_HTTP_MAX_URL) there; the backend's JSON formatting uses the
 * heap. Reserved address space, not resident memory. */
#define SL_HTTP_STACK (512u << 10)
/* MHD's per-connection memory pool: the request line and headers must fit
 * (MHD answers 414/431 itself when they do not). */
#define SL_HTTP_CONN_MEMORY (16u << 10)
/* An idle keep-alive connection is closed after this, giving its thread back. */
#define SL_HTTP_IDLE_TIMEOUT_S 30
/* From connect to a whole first request header, unless configured. */
#define SL_HTTP_HEADER_TIMEOUT_MS 10000

#define SL_HTTP_TIMEOUT_DEFAULT_MS 5000u
#define SL_HTTP_TIMEOUT_MAX_MS     60000u

struct sl_http;

/* consistency=: not given, one, quorum. */
enum sl_http_consistency {
	SL_HTTP_CONSISTENCY_DEFAULT = 0,
	SL_HTTP_CONSISTENCY_ONE,
	SL_HTTP_CONSISTENCY_QUORUM,
};

struct sl_http_query {
	/* Percent-decoded; each points into the caller's parse buffer and is
	 * followed there by a NUL (so a C string unless it holds a %00). */
	const char *projection;
	size_t projection_len; /* > 0 */
	const char *key;       /* may contain ':' '/' and any byte */
	size_t key_len;        /* > 0 */
	bool has_min;
	uint32_t min_partition; /* min_offset=P:O, the ack token */
	uint64_t min_offset;
	bool has_max_lag;
	uint64_t max_lag;    /* events */
	uint32_t timeout_ms; /* SL_HTTP_TIMEOUT_DEFAULT_MS unless given; <= _MAX_MS */
	enum sl_http_consistency consistency;
};

struct sl_http_reply {
	int status; /* HTTP status */
	char *body; /* malloc'd by the backend; this module frees it */
	size_t len;
	const char *content_type; /* static string; NULL = application/json (for
	                           * /metrics: the Prometheus text type) */
};

/* What a topic request asks (the route table at the top). */
enum sl_http_topic_op {
	SL_HTTP_TOPIC_LIST,     /* GET /v1/topics */
	SL_HTTP_TOPIC_CREATE,   /* POST /v1/topics, body: the topic */
	SL_HTTP_TOPIC_DESCRIBE, /* GET /v1/topics/NAME */
	SL_HTTP_TOPIC_ALTER,    /* POST or PATCH /v1/topics/NAME, body: {"settings":{...}} */
	SL_HTTP_TOPIC_DELETE,   /* DELETE /v1/topics/NAME */
};

struct sl_http_topic_req {
	enum sl_http_topic_op op;
	/* DESCRIBE, ALTER, DELETE: the decoded NAME (non-empty, no '/' and no
	 * NUL in it; NUL-terminated). LIST, CREATE: NULL and 0. */
	const char *name;
	size_t name_len;
	/* CREATE, ALTER: the request body as it came (1..SL_HTTP_MAX_BODY
	 * bytes, not checked for JSON; NUL-terminated at body[body_len]).
	 * Others: NULL and 0. */
	const char *body;
	size_t body_len;
};

struct sl_http_backend {
	void *arg;
	/* Each may be called on any HTTP thread, concurrently, and may block
	 * (query: up to q->timeout_ms and a little). They always fill *out; on
	 * failure with a JSON error body (sl_http_error_reply). A NULL body is
	 * answered as 500. q and the strings in it live until query returns. */
	void (*query)(void *arg, const struct sl_http_query *q, struct sl_http_reply *out);
	void (*status)(void *arg, struct sl_http_reply *out);  /* GET /v1/status: JSON */
	void (*metrics)(void *arg, struct sl_http_reply *out); /* GET /metrics: Prometheus */
	/* POST /v1/projections/NAME/rebuild[?swap=1]: rebuilds the projection
	 * from offset 0 beside the live model, compares the two and, with
	 * swap, makes the rebuilt one live where they differ (may take as
	 * long as reading the topic). NULL: the route answers 404. */
	void (*rebuild)(void *arg, const char *name, size_t name_len, bool swap,
	                struct sl_http_reply *out);
	/* /v1/topics and /v1/topics/NAME: any status the backend chooses
	 * (200, 201, 4xx, 5xx) goes out with its body. t and its strings live
	 * until topics returns. NULL: both paths answer 404. */
	void (*topics)(void *arg, const struct sl_http_topic_req *t, struct sl_http_reply *out);
	/* GET /v1/cluster: JSON (404 on a node alone). NULL: 404. */
	void (*cluster)(void *arg, struct sl_http_reply *out);
	/* POST /v1/cluster/leader?topic=T&partition=P&node=N: a planned
	 * leader move (any status the backend chooses, JSON body; may block
	 * some seconds). Arguments are NULL when absent. NULL: 404. */
	void (*move)(void *arg, const char *topic, const char *partition, const char *node,
	             struct sl_http_reply *out);
	/* GET /v1/cluster/replica?topic=T&partition=P: this node's copy of a
	 * partition, as the failover controller asks it (any status, JSON
	 * body). Arguments are NULL when absent. NULL: 404. */
	void (*replica)(void *arg, const char *topic, const char *partition,
	                struct sl_http_reply *out);
	/* With `auth`: every request but /healthz must carry `Authorization:
	 * Bearer TOKEN` (auth/auth.h), else 401 with `WWW-Authenticate:
	 * Bearer` and auth_failures counted. NULL: no authentication. */
	const struct sl_auth *auth;
	_Atomic uint64_t *auth_failures;
};

/*
 * Parses a projection request: `path` is the raw (still percent-encoded)
 * path after "/v1/projections/", that is "NAME/KEY"; arg_names[i] and
 * arg_values[i] are its query parameters, also still percent-encoded
 * (NUL-terminated; '+' means a space there, as in forms; a value may be
 * NULL for "?name" without '='). NAME and KEY are decoded into
 * buf[0..buf_cap), which needs strlen(path) + 2 bytes; *out points into
 * it. Parameter values are decoded on the stack (they are short numbers).
 * 0, or -EINVAL with err
 * saying exactly what is wrong, e.g. "min_offset: expected
 * PARTITION:OFFSET, got 'x'". Pure: no allocation, no global state. The
 * fuzz target's entry point.
 */
int sl_http_parse_query(const char *path, const char *const *arg_names,
                        const char *const *arg_values, size_t n_args, char *buf, size_t buf_cap,
                        struct sl_http_query *out, char *err, size_t errlen);

/*
 * The query parameters of POST /v1/projections/NAME/rebuild (still
 * percent-encoded, as for sl_http_parse_query): only swap=0|1|true|false,
 * at most once (*swap: false when absent). 0, or -EINVAL with err naming
 * the parameter. Pure; the http_query fuzz target calls it too.
 */
int sl_http_parse_rebuild(const char *const *arg_names, const char *const *arg_values,
                          size_t n_args, bool *swap, char *err, size_t errlen);

/*
 * Parses the raw (still percent-encoded) path after "/v1/topics/": one
 * NAME, decoded into buf[0..buf_cap) (strlen(path) + 1 bytes suffice) and
 * NUL-terminated there; *name points at buf. 0; -EINVAL with err saying
 * what is wrong with the name (empty, bad %-escape, '/' or NUL once
 * decoded, longer than buf); -ENOENT when the path holds a raw '/' (a path
 * below a topic: no such route). Pure, like sl_http_parse_query; the
 * http_topic fuzz target's entry point.
 */
int sl_http_parse_topic(const char *path, char *buf, size_t buf_cap, const char **name,
                        size_t *name_len, char *err, size_t errlen);

/*
 * Listens on `host_port` ("HOST:PORT", "[V6]:PORT"; a numeric address or
 * localhost; port 0 picks a free one, see sl_http_port) and starts serving
 * with `b` (copied; b->arg must outlive the server). 0 or -errno with err
 * naming the address and the reason ("127.0.0.1:7480: Address already in
 * use").
 */
int sl_http_start(const char *host_port, const struct sl_http_backend *b, struct sl_http **out,
                  char *err, size_t errlen);

/* Connection limits and timeouts (see the top); a 0 field takes its
 * default: SL_HTTP_MAX_CONNS, max_connections (no per-address limit of
 * its own), SL_HTTP_IDLE_TIMEOUT_S, SL_HTTP_HEADER_TIMEOUT_MS. */
struct sl_http_limits {
	uint32_t max_connections;
	uint32_t max_connections_per_ip;
	uint32_t idle_timeout_ms; /* rounded up to whole seconds (MHD's unit) */
	uint32_t header_timeout_ms;
};

/* sl_http_start with limits (NULL: every default). */
int sl_http_start_limited(const char *host_port, const struct sl_http_backend *b,
                          const struct sl_http_limits *lim, struct sl_http **out, char *err,
                          size_t errlen);

/* The HTTP port's own figures (also appended to /metrics). Any thread. */
struct sl_http_stats {
	uint64_t open;            /* connections now, admitted and over */
	uint64_t refused_max;     /* 503s: over max_connections */
	uint64_t refused_per_ip;  /* 503s: over max_connections_per_ip */
	uint64_t over_served;     /* /healthz and /metrics answered over a limit */
	uint64_t header_timeouts; /* shut for a request header not in in time */
};
void sl_http_get_stats(struct sl_http *h, struct sl_http_stats *out);
/* The port listened on (the chosen one when started with port 0). */
uint16_t sl_http_port(const struct sl_http *h);
/* Stops accepting, waits for every handler to return (see the top), frees.
 * NULL is a no-op. */
void sl_http_stop(struct sl_http *h);

/*
 * Fills *out with status and the JSON body {"error":code,"message":...}
 * (printf-style message, JSON-escaped; code is a fixed ASCII word from the
 * table at the top) and content type application/json. 0, or -ENOMEM with
 * out->body NULL (the module then answers a static 500).
 */
int sl_http_error_reply(struct sl_http_reply *out, int status, const char *code, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

#endif
