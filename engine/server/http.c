/* The HTTP port's backend: sl_http_backend over the server's queries,
 * reports and topic administration (http/ knows nothing of the server; the
 * server nothing of HTTP). */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"
#include "server/server.h"

static void sl__hq(void *arg, const struct sl_http_query *q, struct sl_http_reply *out)
{
	struct sl_server_query sq = {
	    .projection = q->projection,
	    .projection_len = q->projection_len,
	    .key = q->key,
	    .key_len = q->key_len,
	    .has_min = q->has_min,
	    .has_max_lag = q->has_max_lag,
	    .min_partition = q->min_partition,
	    .min_offset = q->min_offset,
	    .max_lag = q->max_lag,
	    .timeout_ms = q->timeout_ms,
	    .consistency =
	        q->consistency == SL_HTTP_CONSISTENCY_QUORUM ? SL_SERVER_CONSISTENCY_QUORUM
	        : q->consistency == SL_HTTP_CONSISTENCY_ONE  ? SL_SERVER_CONSISTENCY_ONE
	                                                     : SL_SERVER_CONSISTENCY_DEFAULT,
	};
	out->status = sl_server_query(arg, &sq, &out->body, &out->len);
	out->content_type = NULL;
}

static void sl__hreport(struct sl_http_reply *out, int ret, const char *content_type)
{
	if (ret < 0) {
		free(out->body);
		out->body = NULL;
		sl_http_error_reply(out, 500, "internal", "%s", sl_strerror(ret));
		return;
	}
	out->status = 200;
	out->content_type = content_type;
}

static void sl__hstatus(void *arg, struct sl_http_reply *out)
{
	sl__hreport(out, sl_server_status_json(arg, &out->body, &out->len), NULL);
}

static void sl__hcluster(void *arg, struct sl_http_reply *out)
{
	int ret = sl_server_cluster_json(arg, &out->body, &out->len);
	if (ret == -ENOENT) {
		sl_http_error_reply(out, 404, "not_found", "%s",
		                    "this node is not in a cluster (no cluster.etcd)");
		return;
	}
	sl__hreport(out, ret, NULL);
}

static void sl__hmove(void *arg, const char *topic, const char *partition, const char *node,
                      struct sl_http_reply *out)
{
	out->status = sl_server_partition_move(arg, topic, partition, node, &out->body, &out->len);
	out->content_type = NULL;
}

static void sl__hreplica(void *arg, const char *topic, const char *partition,
                         struct sl_http_reply *out)
{
	out->status = sl_server_replica_json(arg, topic, partition, &out->body, &out->len);
	out->content_type = NULL;
}

static void sl__hmetrics(void *arg, struct sl_http_reply *out)
{
	sl__hreport(out, sl_server_metrics_text(arg, &out->body, &out->len),
	            "text/plain; version=0.0.4; charset=utf-8");
}

static void sl__hrebuild(void *arg, const char *name, size_t name_len, bool swap,
                         struct sl_http_reply *out)
{
	out->status = sl_server_rebuild(arg, name, name_len, swap, &out->body, &out->len);
	out->content_type = NULL;
}

/*
 * /v1/topics: each operation is one sl_server_topic_* call, which answers
 * its own status (200, 201, 400, 404, 409, 500) and JSON body. Anything
 * outside 100..599 (a negative errno, were one to leak) is a 500 saying
 * so, never a status MHD would refuse to send.
 */
static void sl__htopics(void *arg, const struct sl_http_topic_req *t, struct sl_http_reply *out)
{
	struct sl_server *srv = arg;
	int st = 500;

	out->body = NULL;
	out->len = 0;
	switch (t->op) {
	case SL_HTTP_TOPIC_LIST:
		st = sl_server_topic_list(srv, &out->body, &out->len);
		break;
	case SL_HTTP_TOPIC_CREATE:
		st = sl_server_topic_create(srv, t->body, t->body_len, &out->body, &out->len);
		break;
	case SL_HTTP_TOPIC_DESCRIBE:
		st = sl_server_topic_describe(srv, t->name, t->name_len, &out->body, &out->len);
		break;
	case SL_HTTP_TOPIC_ALTER:
		st = sl_server_topic_alter(srv, t->name, t->name_len, t->body, t->body_len,
		                           &out->body, &out->len);
		break;
	case SL_HTTP_TOPIC_DELETE:
		st = sl_server_topic_delete(srv, t->name, t->name_len, &out->body, &out->len);
		break;
	}
	if (st < 100 || st > 599) {
		free(out->body);
		out->body = NULL;
		static const char *const ops[] = {"list", "create", "describe", "alter", "delete"};
		sl_http_error_reply(out, 500, "internal", "topic %s: %s", ops[t->op],
		                    st < 0 ? sl_strerror(st) : "no status from the server");
		return;
	}
	out->status = st;
	out->content_type = NULL;
}

void sl_server_http_backend(struct sl_server *srv, struct sl_http_backend *out)
{
	*out = (struct sl_http_backend){
	    .arg = srv,
	    .query = sl__hq,
	    .status = sl__hstatus,
	    .metrics = sl__hmetrics,
	    .rebuild = sl__hrebuild,
	    .topics = sl__htopics,
	    .cluster = sl__hcluster,
	    .move = sl__hmove,
	    .replica = sl__hreplica,
	    .auth = srv->opts.auth,
	    .auth_failures = &srv->http_auth_failures,
	};
}
