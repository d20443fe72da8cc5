/*
 * Quorum reads of read models (issue 17 item 4):
 * GET /v1/projections/NAME/KEY?consistency=quorum on any node.
 *
 * The node asks every replica of the key's partition at once (etcd's
 * replica set: this node's own model directly when it is one, the others
 * over HTTP with consistency=one and the node-to-node token, server/peer.c)
 * and stops as soon as a majority answered (200 with the entry, or 404 for
 * none; both say "applied" and "holds"). cluster/qread.c chooses the most
 * applied answer and the offset it must reach to see every write acked
 * before the read began (its header says why W + R > N holds); when the
 * most applied one is short of it, the replicas are asked again with
 * min_offset at that offset and the first answer wins. Fewer than a
 * majority answering within SL_QREAD_ASK_MS: 503 naming each replica's
 * reason, which a client may retry.
 *
 * What a token does here: min_offset of the key's partition raises the
 * offset the answer must reach (a quorum read already reaches every acked
 * event, so it matters only under acks: leader); of another partition it
 * is refused, as is max_lag (the answer is the most applied of a majority,
 * not one replica's, so a bound on one replica's staleness does not apply).
 * Keys merged over every partition are refused too (each partition has its
 * own replica set; ask with consistency=one).
 *
 * Threads: the HTTP connection threads (libmicrohttpd, a thread per
 * connection), which block here for at most SL_QREAD_ASK_MS plus the
 * request's timeout_ms; never a reactor: this node's own model is read the
 * way a consistency=one query reads it (the reactor's ring, or the
 * concurrent read), and the peers' answers are waited for on this thread.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/base.h"
#include "cluster/cluster.h"
#include "http/http.h"
#include "project/project.h"
#include "server/server.h"
#include "json/json.h"

/* A live replica answers a consistency=one read from memory in well under
 * a millisecond (a reactor hop at most); a paused or cut-off one must not
 * hold the read longer than this when no majority answered without it. */
#define SL_QREAD_ASK_MS     1000u
#define SL_QREAD_CONNECT_MS 300u

struct sl__qr {
	struct sl_server *srv;
	uint32_t n; /* replicas */
	struct sl_server_replica rs[SL_REPL_MAX];
	struct sl_peer_get g[SL_REPL_MAX]; /* the peers' (self: url NULL) */
	struct sl_cluster_qreply r[SL_REPL_MAX];
	bool seen[SL_REPL_MAX]; /* r[i] parsed */
	char *self_body;        /* this node's own answer */
	size_t self_len;
	uint64_t need; /* phase 2: applied must reach it */
	int phase;
	uint32_t majority_answered; /* in phase 1 */
};

/* Appends s[0..n) percent-encoded (RFC 3986 unreserved kept) to b. */
static int sl__qread_escape(struct sl_json_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[3] = {'%', hex[c >> 4], hex[c & 15]};
		int r = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		                c == '~'
		            ? sl_json_buf_put_raw(b, &s[i], 1)
		            : sl_json_buf_put_raw(b, e, 3);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The sub-request's URL: "http://HOST/v1/projections/NAME/KEY?consistency=one"
 * and, in the second phase, min_offset and timeout_ms. NUL-terminated. */
static int sl__qread_url(struct sl_json_buf *b, const char *http, const struct sl_server_query *in,
                         uint32_t partition, uint64_t need, uint32_t timeout_ms)
{
	char tail[120];
	int r = sl_json_buf_put_raw(b, "http://", 7);
	if (!r)
		r = sl_json_buf_put_raw(b, http, strlen(http));
	if (!r)
		r = sl_json_buf_put_raw(b, "/v1/projections/", 16);
	if (!r)
		r = sl__qread_escape(b, in->projection, in->projection_len);
	if (!r)
		r = sl_json_buf_put_raw(b, "/", 1);
	if (!r)
		r = sl__qread_escape(b, in->key, in->key_len);
	int n = need ? snprintf(tail, sizeof(tail),
	                        "?consistency=one&min_offset=%u:%" PRIu64 "&timeout_ms=%u",
	                        partition, need - 1, timeout_ms)
	             : snprintf(tail, sizeof(tail), "?consistency=one");
	if (!r)
		r = sl_json_buf_put_raw(b, tail, (size_t)n + 1);
	return r;
}

static uint32_t sl__qread_majority(uint32_t n)
{
	return n / 2 + 1;
}

/* Parses the answers that came since the last look. */
static void sl__qread_take(struct sl__qr *q)
{
	for (uint32_t i = 0; i < q->n; i++) {
		if (q->seen[i] || !q->g[i].url || !q->g[i].done)
			continue;
		q->seen[i] = true;
		if (!q->g[i].err)
			sl_cluster_qread_parse((int)q->g[i].status, q->g[i].body.data,
			                       q->g[i].body.len, &q->r[i]);
	}
}

/* sl__peers_wait's `enough`: phase 1, a majority answered; phase 2, one
 * answer reaches `need`. Also a stopping server. */
static bool sl__qread_enough(void *arg, const struct sl_peer_get *g, size_t n)
{
	struct sl__qr *q = arg;
	uint32_t answered = 0;

	(void)g;
	(void)n;
	if (atomic_load_explicit(&q->srv->stopping.value, memory_order_acquire))
		return true;
	sl__qread_take(q);
	for (uint32_t i = 0; i < q->n; i++) {
		if (!q->r[i].answered)
			continue;
		answered++;
		if (q->phase == 2 && q->r[i].applied >= q->need)
			return true;
	}
	return q->phase == 1 && answered >= sl__qread_majority(q->n);
}

/* Why replica i gave no answer, for the 503's message. */
static void sl__qread_why(const struct sl__qr *q, uint32_t i, char *out, size_t cap)
{
	const struct sl_peer_get *g = &q->g[i];
	if (q->r[i].answered)
		snprintf(out, cap, "answered");
	else if (q->rs[i].self)
		snprintf(out, cap, "this node: %d", q->r[i].status);
	else if (!q->rs[i].http[0])
		snprintf(out, cap, "no HTTP address known");
	else if (!g->done)
		snprintf(out, cap, "no answer within %u ms", SL_QREAD_ASK_MS);
	else if (g->err)
		snprintf(out, cap, "%s", curl_easy_strerror((CURLcode)g->err));
	else
		snprintf(out, cap, "answered %ld", g->status);
}

/* Runs one phase: the sub-requests to every replica with an address
 * (phase 1: this node's own model read here instead). */
static int sl__qread_phase(struct sl__qr *q, const struct sl_server_query *in, uint32_t partition,
                           const char *token, uint64_t deadline_ns, uint32_t timeout_ms)
{
	struct sl_json_buf urls[SL_REPL_MAX];
	struct sl_peer_run *run = NULL;
	int ret;

	memset(urls, 0, sizeof(urls));
	for (uint32_t i = 0; i < q->n; i++) {
		memset(&q->r[i], 0, sizeof(q->r[i]));
		q->seen[i] = false;
		sl_json_buf_release(&q->g[i].body);
		memset(&q->g[i], 0, sizeof(q->g[i]));
		if ((q->phase == 1 && q->rs[i].self) || !q->rs[i].http[0])
			continue;
		ret = sl__qread_url(&urls[i], q->rs[i].http, in, partition,
		                    q->phase == 2 ? q->need : 0, timeout_ms);
		if (ret < 0)
			goto out;
		q->g[i].url = urls[i].data;
		q->g[i].connect_ms = SL_QREAD_CONNECT_MS;
		q->g[i].timeout_ms = SL_QREAD_ASK_MS + (q->phase == 2 ? timeout_ms : 0);
		q->g[i].max_body = SL_CLUSTER_QREAD_BODY_MAX;
	}
	ret = sl__peers_begin(q->srv->peers, q->g, q->n, token, &run);
	if (ret < 0)
		goto out;
	if (q->phase == 1)
		for (uint32_t i = 0; i < q->n; i++) {
			if (!q->rs[i].self)
				continue;
			/* While the peers work: this node's own model. */
			struct sl_server_query one = *in;
			one.consistency = SL_SERVER_CONSISTENCY_ONE;
			one.has_min = false;
			one.has_max_lag = false;
			int st = sl__query_local(q->srv, &one, &q->self_body, &q->self_len);
			sl_cluster_qread_parse(st, q->self_body, q->self_len, &q->r[i]);
			q->seen[i] = true;
		}
	if (!sl__qread_enough(q, q->g, q->n))
		sl__peers_wait(run, deadline_ns, sl__qread_enough, q);
	sl__qread_take(q);
	ret = 0;
out:
	sl__peers_end(run);
	for (uint32_t i = 0; i < q->n; i++) {
		q->g[i].url = NULL;
		sl_json_buf_release(&urls[i]);
	}
	return ret;
}

static int sl__qread_fail(char **body, size_t *len, int status, const char *code, const char *msg)
{
	struct sl_http_reply r = {0};
	if (sl_http_error_reply(&r, status, code, "%s", msg) < 0) {
		*body = NULL;
		*len = 0;
		return 500;
	}
	*body = r.body;
	*len = r.len;
	return status;
}

/* The chosen answer, with "quorum":{"from","answered","replicas"} added
 * as its last member ("answered": the replicas that answered the first
 * round, a majority; "waited": true when the answer came from the second
 * round, a replica's model having waited to reach what the others hold). */
static int sl__qread_answer(struct sl__qr *q, int best, char **body, size_t *len)
{
	const char *src = q->rs[best].self && q->phase == 1 ? q->self_body : q->g[best].body.data;
	size_t n = q->rs[best].self && q->phase == 1 ? q->self_len : q->g[best].body.len;
	char add[200];
	size_t end = n;
	while (end && src[end - 1] != '}')
		end--;
	if (!end)
		return sl__qread_fail(body, len, 500, "internal",
		                      "a replica's answer is no object");
	int k = snprintf(add, sizeof(add),
	                 ",\"quorum\":{\"from\":\"%s\",\"answered\":%u,"
	                 "\"replicas\":%u%s}",
	                 q->rs[best].id, q->majority_answered, q->n,
	                 q->phase == 2 ? ",\"waited\":true" : "");
	char *nb = malloc(n + (size_t)k + 2);
	if (!nb)
		return sl__qread_fail(body, len, 500, "internal", "out of memory");
	memcpy(nb, src, end - 1);
	memcpy(nb + end - 1, add, (size_t)k);
	memcpy(nb + end - 1 + k, "}\n", 3);
	*body = nb;
	*len = end - 1 + (size_t)k + 2;
	return q->r[best].status;
}

int sl__qread(struct sl_server *srv, const struct sl_server_query *in, char **body, size_t *len)
{
	struct sl__qr *q = NULL;
	char msg[700], token[512] = "", terr[256];
	uint64_t start = sl_now_ns();
	int status, found = sl__proj_find(srv, in->projection, in->projection_len);
	const char *agg;
	uint32_t agg_len;

	if (found < 0) {
		snprintf(msg, sizeof(msg), "no projection named '%.*s'", (int)in->projection_len,
		         in->projection);
		return sl__qread_fail(body, len, 404, "unknown_projection", msg);
	}
	const struct sl_proj *pj = &srv->projs[found];
	/* Waiting for its topic (not in cluster mode, whose config lists every
	 * topic, but a node alone asked with quorum): answered as one is. */
	if (!sl__proj_serving(pj))
		return sl__query_local(srv, in, body, len);
	int klen = (int)(in->key_len > 100 ? 100 : in->key_len);
	if (in->has_max_lag)
		return sl__qread_fail(body, len, 400, "bad_request",
		                      "max_lag does not go with consistency=quorum: the answer is "
		                      "the most applied model of a majority of the replicas, which "
		                      "sees every acked event");
	if (in->key_len > UINT32_MAX)
		return sl__qread_fail(body, len, 400, "bad_request", "key too long");
	int route =
	    sl_project_key_route(pj->plugin, in->key, (uint32_t)in->key_len, &agg, &agg_len);
	if (route < 0) {
		snprintf(msg, sizeof(msg), "projection %s cannot read the key '%.*s'", pj->name,
		         klen, in->key);
		return sl__qread_fail(body, len, 400, "bad_request", msg);
	}
	if (route != 1) {
		snprintf(msg, sizeof(msg),
		         "consistency=quorum reads a key held in one partition; projection %s "
		         "merges '%.*s' over every partition (ask with consistency=one)",
		         pj->name, klen, in->key);
		return sl__qread_fail(body, len, 400, "bad_request", msg);
	}
	uint32_t partition = sl_part_of_key(&pj->topic->part, agg, agg_len);
	if (in->has_min && in->min_partition != partition) {
		snprintf(msg, sizeof(msg),
		         "min_offset: with consistency=quorum the token must be of the key's "
		         "partition (%u), not %u",
		         partition, in->min_partition);
		return sl__qread_fail(body, len, 400, "bad_request", msg);
	}
	if (!(q = calloc(1, sizeof(*q))))
		return sl__qread_fail(body, len, 500, "internal", "out of memory");
	q->srv = srv;
	if (!srv->cl ||
	    sl__cluster_replica_set(srv, pj->topic->name, partition, q->rs, &q->n) < 0) {
		free(q);
		if (srv->cl) {
			snprintf(
			    msg, sizeof(msg),
			    "quorum read: the replica set of %s/%u is not known yet (placement "
			    "waits for the topic's replicas to be live)",
			    pj->topic->name, partition);
			return sl__qread_fail(body, len, 503, "unavailable", msg);
		}
		/* A node alone is its whole replica set. */
		struct sl_server_query one = *in;
		one.consistency = SL_SERVER_CONSISTENCY_ONE;
		return sl__query_local(srv, &one, body, len);
	}
	if (srv->opts.cluster.token_file &&
	    sl_auth_file_token(srv->opts.cluster.token_file, token, sizeof(token), terr,
	                       sizeof(terr)) < 0)
		token[0] = 0; /* the peers will say 401: counted as not answering */

	/* Phase 1: everyone at once, until a majority answered. */
	q->phase = 1;
	status = sl__qread_phase(q, in, partition, token, start + SL_QREAD_ASK_MS * 1000000ull, 0);
	if (status < 0) {
		status = sl__qread_fail(body, len, 500, "internal", "out of memory");
		goto out;
	}
	if (atomic_load_explicit(&srv->stopping.value, memory_order_acquire)) {
		status =
		    sl__qread_fail(body, len, 503, "unavailable", "the server is shutting down");
		goto out;
	}
	for (uint32_t i = 0; i < q->n; i++)
		q->majority_answered += q->r[i].answered;
	uint64_t need;
	int best =
	    sl_cluster_qread_pick(q->r, q->n, q->n, in->has_min ? in->min_offset + 1 : 0, &need);
	if (best < 0) {
		uint32_t answered = q->majority_answered;
		int m = snprintf(msg, sizeof(msg),
		                 "quorum read of %s/%.*s: %u of %u replicas of %s/%u answered, a "
		                 "majority is %u (",
		                 pj->name, klen, in->key, answered, q->n, pj->topic->name,
		                 partition, sl__qread_majority(q->n));
		for (uint32_t i = 0; i < q->n && m < (int)sizeof(msg) - 1; i++) {
			char why[160];
			sl__qread_why(q, i, why, sizeof(why));
			m += snprintf(msg + m, sizeof(msg) - (size_t)m, "%s%s: %s", i ? "; " : "",
			              q->rs[i].id, why);
		}
		if (m < (int)sizeof(msg) - 1)
			snprintf(msg + m, sizeof(msg) - (size_t)m, "); retry later");
		status = sl__qread_fail(body, len, 503, "unavailable", msg);
		goto out;
	}
	if (q->r[best].applied >= need) {
		status = sl__qread_answer(q, best, body, len);
		goto out;
	}
	/* Phase 2: the most applied model of the majority is short of what
	 * one of them may hold acked: every replica again, waiting (their
	 * min_offset) until its model reaches it; the first answer wins. */
	uint64_t now = sl_now_ns(), end = start + (uint64_t)in->timeout_ms * 1000000u;
	uint32_t left_ms = end > now ? (uint32_t)((end - now) / 1000000u) : 0;
	q->phase = 2;
	q->need = need;
	status = sl__qread_phase(q, in, partition, token,
	                         sl_now_ns() + ((uint64_t)left_ms + SL_QREAD_ASK_MS) * 1000000u,
	                         left_ms);
	if (status < 0) {
		status = sl__qread_fail(body, len, 500, "internal", "out of memory");
		goto out;
	}
	best = -1;
	for (uint32_t i = 0; i < q->n && best < 0; i++)
		if (q->r[i].answered && q->r[i].applied >= need)
			best = (int)i;
	if (best < 0) {
		snprintf(msg, sizeof(msg),
		         "quorum read of %s/%.*s: no replica of %s/%u applied up to offset %" PRIu64
		         " (what a majority may hold acked) within timeout_ms %u",
		         pj->name, klen, in->key, pj->topic->name, partition, need - 1,
		         in->timeout_ms);
		status = sl__qread_fail(body, len, 504, "timeout", msg);
		goto out;
	}
	status = sl__qread_answer(q, best, body, len);
out:
	for (uint32_t i = 0; i < SL_REPL_MAX; i++)
		sl_json_buf_release(&q->g[i].body);
	free(q->self_body);
	free(q);
	return status;
}
