/* The HTTP port on libmicrohttpd: listening, routing, bounds, answers. */
#include "http/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/base.h"
#include "http/http_impl.h"
#include "net/net.h"

#define SL__JSON_TYPE    "application/json"
#define SL__METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define SL__PROJ_PREFIX  "/v1/projections/"
#define SL__REBUILD      "/rebuild"
#define SL__TOPICS       "/v1/topics"
#define SL__ALLOW_TOPICS "GET, HEAD, POST"
#define SL__ALLOW_TOPIC  "GET, HEAD, POST, PATCH, DELETE"

/* Answer when even the error body could not be allocated. */
static const char sl__oom_body[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}\n";

struct sl_http {
	struct MHD_Daemon *d;
	struct sl_http_backend b;
	uint16_t port;
	struct sl__hconns *conns; /* limits and deadlines (conns.c) */
};

/*
 * MHD decodes the path and the query parameters in place before the handler
 * sees them. Decoding the path there would lose what a key's "%2F" or
 * "%00" was (and decode "%2525" once too often when parsed again), so it is
 * switched off here and sl_http_parse_query decodes exactly once, with the
 * lengths kept. MHD still turns '+' into ' ' in parameters (form
 * encoding), which the parser treats the same way.
 */
static size_t sl__no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

/* Queues r (taking its body) with the given default content type. */
static enum MHD_Result sl__send(struct MHD_Connection *c, struct sl_http_reply *r,
                                const char *default_type, const char *allow)
{
	struct MHD_Response *resp;
	int status = r->status;
	const char *type = r->content_type ? r->content_type : default_type;

	if (!r->body) {
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		type = SL__JSON_TYPE;
		resp = MHD_create_response_from_buffer(
		    sizeof(sl__oom_body) - 1, (void *)sl__oom_body, MHD_RESPMEM_PERSISTENT);
	} else {
		resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(r->body);
	}
	r->body = NULL;
	if (!resp)
		return MHD_NO; /* MHD closes the connection */
	if (status < 100 || status > 599)
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	enum MHD_Result ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	/* Every answer but the static page is live state: a cached one would
	 * defeat read-your-writes and freeze the dashboard. */
	if (ok == MHD_YES)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (ok == MHD_YES && allow)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	if (ok == MHD_YES)
		ok = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ok;
}

static enum MHD_Result sl__send_static(struct MHD_Connection *c, const char *body, size_t len,
                                       const char *type)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return MHD_NO;
	enum MHD_Result ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (ok == MHD_YES)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (ok == MHD_YES)
		ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ok;
}

/* Query parameters of one request, pointing into MHD's connection pool. */
struct sl__args {
	const char *names[SL_HTTP_MAX_ARGS];
	const char *values[SL_HTTP_MAX_ARGS];
	size_t n;     /* all of them, counted past SL_HTTP_MAX_ARGS */
	size_t bytes; /* their raw size, as a share of the request target */
};

static enum MHD_Result sl__collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                       const char *value)
{
	struct sl__args *a = cls;

	(void)kind;
	if (a->n < SL_HTTP_MAX_ARGS) {
		a->names[a->n] = key;
		a->values[a->n] = value;
	}
	a->n++;
	a->bytes += (key ? strlen(key) : 0) + (value ? strlen(value) + 1 : 0) + 1;
	return MHD_YES;
}

static enum MHD_Result sl__error(struct MHD_Connection *c, int status, const char *code,
                                 const char *allow, const char *msg)
{
	struct sl_http_reply r;

	sl_http_error_reply(&r, status, code, "%s", msg);
	return sl__send(c, &r, SL__JSON_TYPE, allow);
}

/* ---- topics: /v1/topics and /v1/topics/NAME ----------------------------------- */

/*
 * A topic request between MHD's calls for it (its *req): what it asks and
 * its body as it arrives. Every other request's *req is the struct sl_http
 * itself, a mark that its header was seen; sl__completed frees only these.
 */
struct sl__treq {
	enum sl_http_topic_op op;
	bool too_big; /* the body passed SL_HTTP_MAX_BODY: answer 413 */
	bool oom;     /* the body could not be kept: answer 500 */
	char *body;   /* NUL-terminated at len */
	size_t len, cap;
	uint64_t seen; /* body bytes received, kept or dropped */
	size_t name_len;
	char name[]; /* decoded NAME, NUL-terminated; "" for the collection */
};

static bool sl__is_topics(const char *url)
{
	size_t n = sizeof(SL__TOPICS) - 1;
	return !strncmp(url, SL__TOPICS, n) && (url[n] == 0 || url[n] == '/');
}

/* What `method` asks of the collection (item false) or of one topic; -1:
 * nothing (405). HEAD is GET without the body (MHD drops it). */
static int sl__topic_op(const char *method, bool item)
{
	bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);

	if (!item)
		return get                                     ? SL_HTTP_TOPIC_LIST
		       : !strcmp(method, MHD_HTTP_METHOD_POST) ? SL_HTTP_TOPIC_CREATE
		                                               : -1;
	if (get)
		return SL_HTTP_TOPIC_DESCRIBE;
	if (!strcmp(method, MHD_HTTP_METHOD_POST) || !strcmp(method, MHD_HTTP_METHOD_PATCH))
		return SL_HTTP_TOPIC_ALTER;
	return !strcmp(method, MHD_HTTP_METHOD_DELETE) ? SL_HTTP_TOPIC_DELETE : -1;
}

static enum MHD_Result sl__no_route(struct sl_http *h, struct MHD_Connection *c, const char *shown)
{
	char msg[512];

	snprintf(msg, sizeof(msg),
	         "no route for %s (try /, /healthz, /metrics, /v1/status, "
	         "/v1/projections/NAME/KEY%s)",
	         shown, h->b.topics ? ", /v1/topics, /v1/topics/NAME" : "");
	return sl__error(c, MHD_HTTP_NOT_FOUND, "not_found", NULL, msg);
}

/*
 * The first call of a topic request (its header is in, its body not yet
 * read): every refusal that needs no body goes out now, so a refused body
 * is never read (MHD closes the connection after the answer instead).
 * Otherwise *req becomes the request's struct sl__treq.
 */
static enum MHD_Result sl__topic_first(struct sl_http *h, struct MHD_Connection *c, const char *url,
                                       const char *method, const char *shown, void **req)
{
	const char *rest = url + sizeof(SL__TOPICS) - 1;
	bool item = *rest == '/';
	char msg[512];

	if (!h->b.topics)
		return sl__no_route(h, c, shown);
	int op = sl__topic_op(method, item);
	if (op < 0) {
		const char *allow = item ? SL__ALLOW_TOPIC : SL__ALLOW_TOPICS;
		snprintf(msg, sizeof(msg), "method %.32s not allowed on %s (only %s)", method,
		         shown, allow);
		return sl__error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", allow, msg);
	}
	struct sl__args args = {0};
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, sl__collect_arg, &args);
	if (strlen(url) + args.bytes > SL_HTTP_MAX_URL) {
		snprintf(msg, sizeof(msg), "request target longer than %d bytes", SL_HTTP_MAX_URL);
		return sl__error(c, MHD_HTTP_URI_TOO_LONG, "uri_too_long", NULL, msg);
	}
	if (args.n) {
		snprintf(msg, sizeof(msg), "unknown parameter '%.40s' (%s takes none)",
		         args.names[0] ? args.names[0] : "", item ? "/v1/topics/NAME" : SL__TOPICS);
		return sl__error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, msg);
	}
	/* NAME never outgrows its raw form, bounded above. */
	char buf[SL_HTTP_MAX_URL + 1];
	const char *name = "";
	size_t name_len = 0;
	if (item) {
		int r = sl_http_parse_topic(rest + 1, buf, sizeof(buf), &name, &name_len, msg,
		                            sizeof(msg));
		if (r == -ENOENT)
			return sl__no_route(h, c, shown);
		if (r < 0)
			return sl__error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, msg);
	}
	/* A body announced too large is refused before a byte of it is read
	 * (curl waits for the 100 Continue MHD would send, and gets this). A
	 * length MHD cannot parse is MHD's to refuse. */
	const char *cl =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && *cl >= '0' && *cl <= '9') {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(cl, &end, 10);
		if (errno == ERANGE || v > SL_HTTP_MAX_BODY) {
			snprintf(msg, sizeof(msg),
			         "request body of %s bytes, more than %u (a topic document is far "
			         "smaller)",
			         errno == ERANGE ? "too many" : cl, SL_HTTP_MAX_BODY);
			return sl__error(c, MHD_HTTP_CONTENT_TOO_LARGE, "content_too_large", NULL,
			                 msg);
		}
	}
	struct sl__treq *t = calloc(1, sizeof(*t) + name_len + 1);
	if (!t)
		return sl__error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
		                 "out of memory");
	t->op = (enum sl_http_topic_op)op;
	memcpy(t->name, name, name_len);
	t->name_len = name_len;
	*req = t;
	return MHD_YES;
}

/* A piece of a topic request's body (MHD hands over what it has read;
 * all of it must be taken, or MHD, its buffer full, closes with a 500). */
static enum MHD_Result sl__topic_body(struct sl__treq *t, const char *data, size_t *len)
{
	size_t n = *len;

	*len = 0;
	t->seen += n;
	if (t->seen > SL_HTTP_MAX_BODY_DROP)
		return MHD_NO; /* close: see SL_HTTP_MAX_BODY_DROP */
	if (t->too_big || t->oom)
		return MHD_YES;
	if (t->len + n > SL_HTTP_MAX_BODY) {
		/* Only a chunked body gets here (a Content-Length over the
		 * limit was refused at the header); what came is let go. */
		t->too_big = true;
		goto drop;
	}
	char *d = sl_grow(t->body, &t->cap, t->len + n + 1, 1024);
	if (!d) {
		t->oom = true;
		goto drop;
	}
	t->body = d;
	memcpy(t->body + t->len, data, n);
	t->len += n;
	t->body[t->len] = 0;
	return MHD_YES;
drop:
	free(t->body);
	t->body = NULL;
	t->len = t->cap = 0;
	return MHD_YES;
}

/* The last call: the whole request is in; ask the backend. */
static enum MHD_Result sl__topic_answer(struct sl_http *h, struct MHD_Connection *c,
                                        struct sl__treq *t, const char *method)
{
	struct sl_http_reply r = {0};
	char msg[256];
	bool named = t->op != SL_HTTP_TOPIC_LIST && t->op != SL_HTTP_TOPIC_CREATE;
	bool wants_body = t->op == SL_HTTP_TOPIC_CREATE || t->op == SL_HTTP_TOPIC_ALTER;

	if (t->too_big) {
		snprintf(msg, sizeof(msg),
		         "request body of more than %u bytes (a topic document is far smaller)",
		         SL_HTTP_MAX_BODY);
		return sl__error(c, MHD_HTTP_CONTENT_TOO_LARGE, "content_too_large", NULL, msg);
	}
	if (t->oom)
		return sl__error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", NULL,
		                 "out of memory");
	if (wants_body && !t->len) {
		snprintf(msg, sizeof(msg), "%.32s %s needs a JSON body (%s)", method,
		         named ? "/v1/topics/NAME" : SL__TOPICS,
		         named ? "{\"settings\": {...}}" : "{\"name\": ..., \"partitions\": ...}");
		return sl__error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, msg);
	}
	struct sl_http_topic_req tr = {
	    .op = t->op,
	    .name = named ? t->name : NULL,
	    .name_len = named ? t->name_len : 0,
	    .body = wants_body ? t->body : NULL,
	    .body_len = wants_body ? t->len : 0,
	};
	h->b.topics(h->b.arg, &tr, &r);
	return sl__send(c, &r, SL__JSON_TYPE, NULL);
}

/* MHD_OPTION_NOTIFY_COMPLETED: a topic request's state goes, then the
 * connection's bookkeeping (conns.c) learns the request ended. */
static void sl__completed(void *cls, struct MHD_Connection *c, void **req,
                          enum MHD_RequestTerminationCode toe)
{
	struct sl_http *h = cls;

	if (*req && *req != h) {
		struct sl__treq *t = *req;
		free(t->body);
		free(t);
	}
	*req = NULL;
	sl__hconns_completed(h->conns, c, req, toe);
}

/* 401 with the challenge RFC 6750 names; MHD closes the connection after
 * an answer queued before the request is read whole. */
static enum MHD_Result sl__unauthorized(struct MHD_Connection *c, const char *msg)
{
	struct sl_http_reply r;
	struct MHD_Response *resp;

	sl_http_error_reply(&r, MHD_HTTP_UNAUTHORIZED, "unauthorized", "%s", msg);
	if (!r.body)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(r.body);
		return MHD_NO;
	}
	enum MHD_Result ok =
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, SL__JSON_TYPE);
	if (ok == MHD_YES)
		ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                             "Bearer realm=\"sluice\"");
	if (ok == MHD_YES)
		ok = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, resp);
	MHD_destroy_response(resp);
	return ok;
}

static enum MHD_Result sl__handle(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **req)
{
	struct sl_http *h = cls;
	struct sl__args args = {0};
	struct sl_http_reply r = {0};
	char msg[512];
	/* Paths are echoed in messages only while short: a message quotes,
	 * it does not mirror a request back. */
	const char *shown = strlen(url) > 200 ? "this path" : url;
	bool head = !strcmp(method, MHD_HTTP_METHOD_HEAD);

	(void)version;
	/* A topic request past its first call: its body, then its answer. */
	if (*req && *req != h) {
		if (*upload_len)
			return sl__topic_body(*req, upload, upload_len);
		/* The last call is the one without data (upload NULL); an empty
		 * piece mid-body, should MHD hand one over, is no answer yet. */
		return upload ? MHD_YES : sl__topic_answer(h, c, *req, method);
	}
	/* Over a connection limit: 503 unless /healthz or /metrics (conns.c). */
	enum MHD_Result refused;
	if (!*req && sl__hconns_admit(h->conns, c, url, &refused))
		return refused;
	/* First, before any route or method is told apart: a client without
	 * the token learns nothing but that one is needed. /healthz stays
	 * open to the load balancer that probes it. Only at the first call:
	 * the header cannot change, and an answer can be queued only then or
	 * at the last. */
	if (!*req && h->b.auth && strcmp(url, "/healthz") != 0) {
		const char *v =
		    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		const char *tok;
		size_t tlen;
		if (!sl_auth_bearer(v, &tok, &tlen) || !sl_auth_check(h->b.auth, tok, tlen)) {
			if (h->b.auth_failures)
				atomic_fetch_add_explicit(h->b.auth_failures, 1,
				                          memory_order_relaxed);
			return sl__unauthorized(c, v ? "wrong token, or not `Bearer TOKEN`"
			                             : "this server requires `Authorization: "
			                               "Bearer TOKEN`");
		}
	}
	if (!*req && sl__is_topics(url))
		return sl__topic_first(h, c, url, method, shown, req);
	/* The one POST: a projection rebuild, /v1/projections/NAME/rebuild. */
	size_t ulen0 = strlen(url), plen = sizeof(SL__PROJ_PREFIX) - 1, slen = strlen(SL__REBUILD);
	bool rebuild = !strcmp(method, MHD_HTTP_METHOD_POST) && ulen0 > plen + slen &&
	               !strncmp(url, SL__PROJ_PREFIX, plen) &&
	               !strcmp(url + ulen0 - slen, SL__REBUILD) &&
	               !memchr(url + plen, '/', ulen0 - plen - slen) && h->b.rebuild;
	bool move = !strcmp(method, MHD_HTTP_METHOD_POST) && !strcmp(url, "/v1/cluster/leader") &&
	            h->b.move;
	/* Refusals of other methods go out on the first call, before any body
	 * is read (MHD then closes the connection rather than read it). */
	if (strcmp(method, MHD_HTTP_METHOD_GET) && !head && !rebuild && !move) {
		snprintf(msg, sizeof(msg), "method %.32s not allowed on %s (only GET)", method,
		         shown);
		return sl__error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "GET, HEAD",
		                 msg);
	}
	/* GET answers wait for the call after the whole request is in: an
	 * answer queued on the first call makes MHD 0.9.75 close the
	 * connection after it, which costs a dashboard polling every second
	 * a new connection (and thread) per request. A body sent with a GET
	 * is read and dropped. */
	if (!*req) {
		*req = h;
		return MHD_YES;
	}
	if (*upload_len) {
		*upload_len = 0;
		return MHD_YES;
	}

	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, sl__collect_arg, &args);
	size_t ulen = strlen(url);
	if (ulen + args.bytes > SL_HTTP_MAX_URL) {
		snprintf(msg, sizeof(msg), "request target longer than %d bytes", SL_HTTP_MAX_URL);
		return sl__error(c, MHD_HTTP_URI_TOO_LONG, "uri_too_long", NULL, msg);
	}

	if (rebuild) {
		bool swap;
		/* As for queries: a count past SL_HTTP_MAX_ARGS is refused
		 * before any entry is read. */
		if (sl_http_parse_rebuild(args.names, args.values, args.n, &swap, msg,
		                          sizeof(msg)) < 0)
			return sl__error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, msg);
		h->b.rebuild(h->b.arg, url + plen, ulen0 - plen - slen, swap, &r);
		return sl__send(c, &r, SL__JSON_TYPE, NULL);
	}
	if (move) {
		/* MHD hands the arguments decoded. */
		h->b.move(h->b.arg, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "topic"),
		          MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "partition"),
		          MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "node"), &r);
		return sl__send(c, &r, SL__JSON_TYPE, NULL);
	}
	if (!strcmp(url, "/"))
		return sl__send_static(c, sl__http_dashboard, sl__http_dashboard_len,
		                       "text/html; charset=utf-8");
	if (!strcmp(url, "/healthz"))
		return sl__send_static(c, "ok\n", 3, "text/plain; charset=utf-8");
	if (!strcmp(url, "/metrics")) {
		h->b.metrics(h->b.arg, &r);
		sl__hconns_metrics_append(h->conns, &r);
		return sl__send(c, &r, SL__METRICS_TYPE, NULL);
	}
	if (!strcmp(url, "/v1/status")) {
		h->b.status(h->b.arg, &r);
		return sl__send(c, &r, SL__JSON_TYPE, NULL);
	}
	if (!strcmp(url, "/v1/cluster/replica") && h->b.replica) {
		h->b.replica(
		    h->b.arg, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "topic"),
		    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "partition"), &r);
		return sl__send(c, &r, SL__JSON_TYPE, NULL);
	}
	if (!strcmp(url, "/v1/cluster") && h->b.cluster) {
		h->b.cluster(h->b.arg, &r);
		return sl__send(c, &r, SL__JSON_TYPE, NULL);
	}
	if (!strncmp(url, SL__PROJ_PREFIX, sizeof(SL__PROJ_PREFIX) - 1)) {
		/* The decoded name and key never outgrow the raw path, which is
		 * bounded above: the scratch lives on this thread's stack. */
		char buf[SL_HTTP_MAX_URL + 2];
		struct sl_http_query q;
		/* args.n may exceed the SL_HTTP_MAX_ARGS entries collected: the
		 * parser refuses that count before it reads any entry. */
		if (sl_http_parse_query(url + sizeof(SL__PROJ_PREFIX) - 1, args.names, args.values,
		                        args.n, buf, sizeof(buf), &q, msg, sizeof(msg)) < 0)
			return sl__error(c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, msg);
		h->b.query(h->b.arg, &q, &r);
		return sl__send(c, &r, SL__JSON_TYPE, NULL);
	}
	return sl__no_route(h, c, shown);
}

int sl_http_start(const char *host_port, const struct sl_http_backend *b, struct sl_http **out,
                  char *err, size_t errlen)
{
	return sl_http_start_limited(host_port, b, NULL, out, err, errlen);
}

int sl_http_start_limited(const char *host_port, const struct sl_http_backend *b,
                          const struct sl_http_limits *lim, struct sl_http **out, char *err,
                          size_t errlen)
{
	struct sl_http *h = NULL;
	struct sl_addr addr;
	int fd = -1, r, one = 1;

	*out = NULL;
	if (!b || !b->query || !b->status || !b->metrics) {
		sl_errf(err, errlen, "http: backend without query, status or metrics");
		return -EINVAL;
	}
	if (!host_port || sl_net_parse_addr(host_port, &addr) < 0) {
		sl_errf(err, errlen,
		        "listen.http: expected HOST:PORT with a numeric host, got '%s'",
		        host_port ? host_port : "");
		return -EINVAL;
	}
	int family = addr.ss.ss_family;
	/* Our own socket rather than MHD's: bind errors come back as errno
	 * with the address, and the chosen port is readable at once. No
	 * SO_REUSEPORT (unlike the native port): a second sluiced on the
	 * same HTTP address must fail, not share it. */
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr.ss, addr.len) < 0 ||
	    listen(fd, SL_HTTP_BACKLOG) < 0) {
		r = -errno;
		goto fail;
	}
	int port = sl_net_local_port(fd);
	if (port < 0) {
		r = port;
		goto fail;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		r = -ENOMEM;
		goto fail;
	}
	h->b = *b;
	h->port = (uint16_t)port;
	r = sl__hconns_create(lim, &h->conns);
	if (r < 0)
		goto fail;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD;
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->d = MHD_start_daemon(
	    flags, 0, NULL, NULL, sl__handle, h, MHD_OPTION_LISTEN_SOCKET, fd,
	    /* The hard bound: admitted connections plus the reserve. */
	    MHD_OPTION_CONNECTION_LIMIT, sl__hconns_slots(h->conns), MHD_OPTION_CONNECTION_TIMEOUT,
	    sl__hconns_idle_s(h->conns), MHD_OPTION_NOTIFY_CONNECTION, sl__hconns_notify, h->conns,
	    MHD_OPTION_NOTIFY_COMPLETED, sl__completed, h, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
	    (size_t)SL_HTTP_CONN_MEMORY, MHD_OPTION_THREAD_STACK_SIZE, (size_t)SL_HTTP_STACK,
	    MHD_OPTION_UNESCAPE_CALLBACK, sl__no_unescape, NULL, MHD_OPTION_END);
	if (!h->d) {
		sl_errf(err, errlen, "%s: libmicrohttpd could not start", host_port);
		r = -EIO;
		close(fd);
		sl__hconns_destroy(h->conns);
		free(h);
		return r;
	}
	*out = h;
	return 0;
fail:
	sl_errf(err, errlen, "%s: %s", host_port, strerror(-r));
	if (fd >= 0)
		close(fd);
	if (h)
		sl__hconns_destroy(h->conns);
	free(h);
	return r;
}

uint16_t sl_http_port(const struct sl_http *h)
{
	return h->port;
}

void sl_http_stop(struct sl_http *h)
{
	if (!h)
		return;
	/* Closes the listening socket (MHD owns it once started), shuts the
	 * connections and joins their threads. */
	MHD_stop_daemon(h->d);
	/* After MHD: every connection was reported closed. */
	sl__hconns_destroy(h->conns);
	free(h);
}

void sl_http_get_stats(struct sl_http *h, struct sl_http_stats *out)
{
	sl__hconns_stats(h->conns, out);
}
