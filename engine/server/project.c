/*
 * Projections in the server: loading their plugins, one applier per
 * partition handed to the partition's reactor (through the reactors' env),
 * and the read-model queries of other threads (HTTP): requests
 * (project/query.c, which also answers them) carried to the owning
 * reactors as messages, then merged.
 *
 * Why messages, not locks: an applier and its plugin instance belong to
 * the reactor that owns the partition (plugin.h promises plugins one thread
 * per instance); a query runs there between two apply calls, so it sees a
 * model that is never half-applied, and ingest never waits on a reader.
 * The asking thread blocks on the request's condition variable; the
 * reactor answers every request by its deadline (checked at each tick) or
 * at stop.
 *
 * Except for plugins that declare concurrent queries (plugin ABI 1.1): those
 * are read on the asking thread inside an epoch section (base/epoch.h),
 * because the hop to a reactor busy with ingest was most of a query's
 * latency; only a read-your-writes wait still goes to the reactor.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/epoch.h"
#include "config/config.h"
#include "http/http.h"
#include "pipe/pipe.h"
#include "plugin/plugin.h"
#include "project/project.h"
#include "reactor/reactor.h"
#include "ring/ring.h"
#include "server/server.h"
#include "state/state.h"

#define SL__PQ_SLOTS    1024u
#define SL__SNAP_EVENTS (UINT64_C(1) << 20)
#define SL__SNAP_NS     (UINT64_C(60) * 1000000000u)

/* Topics a projection emits to (balance's reject_topic): any but its own,
 * whose events it would then apply again. */
static int sl__proj_resolve(void *arg, const char *name, size_t len)
{
	const struct sl_proj *pj = arg;
	const struct sl_topic *t = sl_topics_find(pj->topics, name, len);

	if (!t || t == pj->topic)
		return -ENOENT;
	return (int)t->index;
}

/* A host-state projection's store, and the writer (started with the first). */
static int sl__proj_store(struct sl_server *srv, struct sl_proj *pj, size_t cache_bytes,
                          size_t store_bytes, char *err, size_t errlen)
{
	char path[4096];
	int ret;

	if (snprintf(path, sizeof(path), "%s/projections/%s/state", srv->opts.data_dir, pj->name) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	/* Two memtables of a quarter each, the block cache the other half. */
	struct sl_state_db_opts dbo = {
	    .path = path,
	    .write_buffer_bytes = store_bytes / 4 > (1u << 20) ? store_bytes / 4 : (1u << 20),
	    .block_cache_bytes = store_bytes / 2 > (4u << 20) ? store_bytes / 2 : (4u << 20),
	};
	if ((ret = sl_state_db_open(&dbo, &pj->sdb, err, errlen)) < 0)
		return ret;
	if (!srv->state_writer && (ret = sl_state_writer_start(NULL, &srv->state_writer)) < 0) {
		sl_errf(err, errlen, "cannot start the state writer: %s", sl_strerror(ret));
		return ret;
	}
	pj->writer = srv->state_writer;
	pj->cache_bytes = cache_bytes;
	return 0;
}

int sl__proj_open(struct sl_server *srv, uint32_t i, bool follow, char *err, size_t errlen)
{
	const struct sl_server_opts *o = &srv->opts;
	const struct sl_server_proj_spec *sp = &o->projections[i];
	struct sl_proj *pj = &srv->projs[i];
	char dir[4096], lerr[512];
	int ret;

	pj->parts = calloc(pj->topic->n_parts, sizeof(*pj->parts));
	if (!pj->parts)
		return -ENOMEM;
	for (uint32_t p = 0; p < pj->topic->n_parts; p++) {
		struct sl_proj_part *pp = &pj->parts[p];
		struct sl_partition *part = &pj->topic->parts[p];
		pp->part = part;
		pp->proj = i;
		/* Partitions are < 4096 (config); the prefix keeps the id
		 * apart from a pipeline of the same name. */
		char idname[300];
		snprintf(idname, sizeof(idname), "projection/%s", sp->name);
		pp->emit_pid = sl_pipe_producer_id(idname, p);
		pp->emit_ref = i << 12 | p;
		if (!part->log) {
			/* A refused partition: its projection is not served
			 * either, and says so when asked. */
			pp->failed = true;
			continue;
		}
		if (snprintf(dir, sizeof(dir), "%s/projections/%s/%u", o->data_dir, sp->name, p) >=
		    (int)sizeof(dir))
			return -ENAMETOOLONG;
		struct sl_applier_opts ao = {
		    .plugin = pj->plugin,
		    .inst = {.name = sp->name,
		             .topic = pj->topic->name,
		             .partition = p,
		             .n_partitions = pj->topic->n_parts,
		             .args = sp->args,
		             .epoch = srv->epoch},
		    .log_dir = part->dir,
		    .log_cuts = &part->cuts,
		    .log_start = &part->start_pub,
		    .snap_dir = dir,
		    .snapshot_every_events = sp->snapshot_every_events  ? sp->snapshot_every_events
		                             : o->snapshot_every_events ? o->snapshot_every_events
		                                                        : SL__SNAP_EVENTS,
		    .snapshot_every_ns = sp->snapshot_every_ns  ? sp->snapshot_every_ns
		                         : o->snapshot_every_ns ? o->snapshot_every_ns
		                                                : SL__SNAP_NS,
		    .resolve = sl__proj_resolve,
		    .resolve_arg = pj,
		    .state_db = pj->sdb,
		    .state_writer = pj->writer,
		    .state_cache_bytes = pj->cache_bytes,
		    .on_commit = sl_proj_part_wake,
		    .on_commit_arg = pp,
		};
		pp->wake = sl__wake_reactor;
		pp->wake_arg = srv;
		ret = sl_applier_open(&ao, &pp->a, lerr, sizeof(lerr));
		if (ret < 0) {
			sl_errf(err, errlen, "projection %s partition %u: %s", sp->name, p, lerr);
			return ret;
		}
		atomic_store_explicit(&pp->applied_pub, sl_applier_visible(pp->a),
		                      memory_order_relaxed);
		atomic_store_explicit(&pp->applying_pub, sl_applier_next(pp->a),
		                      memory_order_relaxed);
		/* Its lag bounds the partition's (backpressure). */
		if (follow &&
		    (ret = sl_partition_follow(part, &pp->applied_pub, "projection", sp->name)) < 0)
			return ret;
	}
	return 0;
}

/* The test hook's text (server.h): 0, or -EINVAL with err. */
static int sl__rebuild_pause(const char *s, enum sl_rebuild_pause *at, uint64_t *events, char *err,
                             size_t errlen)
{
	*at = SL_REBUILD_PAUSE_NONE;
	*events = 0;
	if (!s || !*s)
		return 0;
	if (!strcmp(s, "swap")) {
		*at = SL_REBUILD_PAUSE_SWAP;
		return 0;
	}
	if (!strcmp(s, "swapped")) {
		*at = SL_REBUILD_PAUSE_SWAPPED;
		return 0;
	}
	if (!strncmp(s, "apply:", 6) &&
	    sl_parse_dec(s + 6, strlen(s + 6), UINT64_MAX, events) == 0) {
		*at = SL_REBUILD_PAUSE_APPLY;
		return 0;
	}
	sl_errf(err, errlen,
	        "SLUICE_TEST_REBUILD_PAUSE: expected apply:N, swap or swapped, got '%.40s'", s);
	return -EINVAL;
}

int sl__projs_create(struct sl_server *srv, char *err, size_t errlen)
{
	const struct sl_server_opts *o = &srv->opts;
	enum sl_rebuild_pause pause;
	uint64_t pause_at;
	int ret;

	if ((ret = sl__rebuild_pause(o->test_rebuild_pause, &pause, &pause_at, err, errlen)) < 0)
		return ret;

	/* struct sl_ring keeps its indexes on their own cache lines. */
	size_t bytes = (srv->n * sizeof(*srv->pq) + SL_CACHELINE - 1) & ~(size_t)(SL_CACHELINE - 1);
	if ((ret = sl_epoch_create(&srv->epoch)) < 0)
		return ret;
	srv->pq = aligned_alloc(SL_CACHELINE, bytes);
	if (!srv->pq)
		return -ENOMEM;
	memset(srv->pq, 0, bytes);
	for (uint32_t i = 0; i < srv->n; i++)
		if ((ret = sl_ring_init(&srv->pq[i], SL__PQ_SLOTS)) < 0)
			return ret;
	if (!o->n_projections)
		return 0;
	srv->projs = calloc(o->n_projections, sizeof(*srv->projs));
	if (!srv->projs)
		return -ENOMEM;
	/* Each projection's topic: by index, or by name among the runtime
	 * topics (data_dir/topics.yaml); a projection whose topic does not
	 * exist waits for it (server/late.c). */
	for (uint32_t i = 0; i < o->n_projections; i++) {
		const struct sl_server_proj_spec *sp = &o->projections[i];
		uint32_t n = atomic_load(&srv->topics.n);
		if (sp->topic != SL_SERVER_TOPIC_LATER && sp->topic >= n)
			return -EINVAL;
		srv->projs[i].topic =
		    sp->topic != SL_SERVER_TOPIC_LATER
		        ? &srv->topics.v[sp->topic]
		        : sl_topics_find(&srv->topics, sp->topic_name, strlen(sp->topic_name));
	}
	/* A quarter of the memory budget for host state (server.h): half of
	 * it the owners' caches, shared evenly by every projection partition,
	 * half each projection's store (memtables and block cache). A
	 * projection that waits for its topic counts as the partitions of a
	 * topic made with the defaults (`sluice topic create`, 8): when it
	 * binds, each of its partitions gets the share computed here, so a
	 * topic made with more partitions takes more than the quarter. */
	uint64_t n_pparts = 0, quarter = o->memory_budget / 4;
	for (uint32_t i = 0; i < o->n_projections; i++)
		n_pparts +=
		    srv->projs[i].topic ? srv->projs[i].topic->n_parts : SL_CONFIG_TOPIC_PARTITIONS;
	size_t cache_bytes = n_pparts ? (size_t)(quarter / 2 / n_pparts) : 0;
	size_t store_bytes = (size_t)(quarter / 2 / o->n_projections);
	for (uint32_t i = 0; i < o->n_projections; i++) {
		const struct sl_server_proj_spec *sp = &o->projections[i];
		struct sl_proj *pj = &srv->projs[i];
		srv->n_projs = i + 1;
		pj->topics = &srv->topics;
		pj->args = sp->args;
		pj->data_dir = o->data_dir;
		pj->test_pause = pause;
		pj->test_pause_at = pause_at;
		pj->name = strdup(sp->name);
		if (!pj->name)
			return -ENOMEM;
		if (!pj->topic) {
			pj->waits_for = strdup(sp->topic_name);
			if (!pj->waits_for)
				return -ENOMEM;
			atomic_store_explicit(&pj->state_pub, SL_PROJ_WAITING,
			                      memory_order_relaxed);
		}
		/* The plugin and a host-state store now, waiting or not: a bad
		 * plugin stops the start, not the topic's creation later. */
		char lerr[512];
		ret = sl_plugin_load(o->plugin_path, o->n_plugin_path, sp->plugin,
		                     SL_PLUGIN_PROJECTION, &pj->plugin, lerr, sizeof(lerr));
		if (ret < 0) {
			sl_errf(err, errlen, "projection %s: %s", sp->name, lerr);
			return ret;
		}
		if (sl_plugin_host_state(pj->plugin) &&
		    (ret = sl__proj_store(srv, pj, cache_bytes, store_bytes, lerr, sizeof(lerr))) <
		        0) {
			sl_errf(err, errlen, "projection %s: %s", sp->name, lerr);
			return ret;
		}
		if (pj->topic && (ret = sl__proj_open(srv, i, true, err, errlen)) < 0)
			return ret;
	}
	return 0;
}

void sl__projs_destroy(struct sl_server *srv)
{
	/* Its last round commits what was handed over; what the caches hold
	 * besides is committed below, by each applier's final sync. */
	sl_state_writer_stop(srv->state_writer);
	srv->state_writer = NULL;
	for (uint32_t i = 0; i < srv->n_projs; i++) {
		struct sl_proj *pj = &srv->projs[i];
		for (uint32_t p = 0; pj->parts && p < pj->topic->n_parts; p++) {
			struct sl_proj_part *pp = &pj->parts[p];
			if (!pp->a)
				continue;
			/* A snapshot at a clean stop makes the next start fast. */
			int ret = pp->failed ? 0 : sl_applier_snapshot(pp->a);
			if (ret == -EBUSY)
				fprintf(stderr,
				        "sluiced: projection %s partition %u: no final snapshot: "
				        "%" PRIu64 " emitted events not durable (the next start "
				        "applies again from the last one)\n",
				        pj->name, p, pp->emit_unacked);
			else if (ret < 0)
				fprintf(stderr,
				        "sluiced: projection %s partition %u: final snapshot: %s\n",
				        pj->name, p, sl_applier_error(pp->a));
			sl_applier_close(pp->a);
		}
		free(pj->parts);
		free(pj->waits_for);
		sl_state_db_close(pj->sdb);
		sl_plugin_unload(pj->plugin);
		free(pj->name);
	}
	free(srv->projs);
	sl_epoch_destroy(srv->epoch);
	if (srv->pq)
		for (uint32_t i = 0; i < srv->n; i++)
			sl_ring_destroy(&srv->pq[i]);
	free(srv->pq);
}

/* ---- queries, on the asking thread ---------------------------------------------- */

/* An error answer in the HTTP port's one error shape (http/http.h);
 * returns the status. */
static int sl__fail(char **body, size_t *len, int status, const char *code, const char *msg)
{
	struct sl_http_reply r = {0};
	if (sl_http_error_reply(&r, status, code, "%s", msg) < 0) {
		*body = NULL; /* the HTTP module answers its static 500 */
		*len = 0;
		return 500;
	}
	*body = r.body;
	*len = r.len;
	return status;
}

static const char *sl__code_of(int status)
{
	switch (status) {
	case 400:
		return "bad_request";
	case 404:
		return "not_found";
	case 409:
		return "lag_exceeded";
	case 503:
		return "unavailable";
	case 504:
		return "timeout";
	default:
		return "internal";
	}
}

/* Where a JSON object's closing brace is in body (trailing spaces and
 * newlines allowed): the index after it, 0 when body is not an object;
 * *empty: the object has no members. */
static size_t sl__obj_end(const char *body, size_t len, bool *empty)
{
	size_t end = len;
	while (end && body[end - 1] != '}') {
		if (body[end - 1] != '\n' && body[end - 1] != ' ')
			return 0;
		end--;
	}
	if (!end)
		return 0;
	size_t before = end - 1;
	while (before && (body[before - 1] == ' ' || body[before - 1] == '\n'))
		before--;
	*empty = before && body[before - 1] == '{';
	return end;
}

/* Inserts add[0..n) before the brace that ends at `end` (sl__obj_end). */
static int sl__obj_insert(char **body, size_t *len, size_t end, const char *add, size_t n)
{
	char *nb = malloc(*len + n + 1);
	if (!nb)
		return -ENOMEM;
	memcpy(nb, *body, end - 1);
	memcpy(nb + end - 1, add, n);
	memcpy(nb + end - 1 + n, *body + end - 1, *len - (end - 1));
	nb[*len + n] = '\0';
	free(*body);
	*body = nb;
	*len += n;
	return 0;
}

/*
 * What every answer of a read model carries besides the plugin's members,
 * added as the object's last members (the plugin's JSON is otherwise
 * passed as it came): "token" ("P:O": the model reflects nothing past
 * offset O of partition P, so min_offset=P:O on any replica never reads
 * older; only for a key that lives in one partition, and once it has
 * applied anything), "lag" (events, sl_pquery_lag; the largest over the
 * partitions for a key they all hold a share of) and, where a follower
 * answered, "leader_heard_ms" (since it last heard from its leader; null:
 * not since it started). A body that is not an object is left alone.
 */
static int sl__answer_extend(char **body, size_t *len, struct sl_pquery *const *qs, uint32_t count,
                             bool token)
{
	char add[160];
	uint64_t lag = 0, heard = 0;
	bool follower = false;
	int n = 0;

	bool empty;
	size_t end = sl__obj_end(*body, *len, &empty);
	if (!end)
		return 0;
	for (uint32_t i = 0; i < count; i++) {
		if (qs[i]->lag > lag)
			lag = qs[i]->lag;
		if (qs[i]->follower) {
			follower = true;
			if (qs[i]->heard_ms > heard)
				heard = qs[i]->heard_ms;
		}
	}
	if (token && qs[0]->seen_end)
		n = snprintf(add, sizeof(add), "%s\"token\":\"%u:%" PRIu64 "\"", empty ? "" : ",",
		             qs[0]->partition, qs[0]->seen_end - 1);
	n += snprintf(add + n, sizeof(add) - (size_t)n, "%s\"lag\":%" PRIu64,
	              empty && !n ? "" : ",", lag);
	if (follower && heard == UINT64_MAX)
		n += snprintf(add + n, sizeof(add) - (size_t)n, ",\"leader_heard_ms\":null");
	else if (follower)
		n += snprintf(add + n, sizeof(add) - (size_t)n, ",\"leader_heard_ms\":%" PRIu64,
		              heard);
	return sl__obj_insert(body, len, end, add, (size_t)n);
}

const struct sl_topic *sl__proj_serving(const struct sl_proj *pj)
{
	return atomic_load_explicit(&((struct sl_proj *)pj)->state_pub, memory_order_acquire) ==
	               SL_PROJ_SERVING
	           ? pj->topic
	           : NULL;
}

/* The answer of a projection without appliers: it waits for its topic,
 * or could not open them when the topic came (said on stderr then). */
static int sl__not_bound(const struct sl_proj *pj, char **body, size_t *len)
{
	char msg[300];
	if (atomic_load_explicit(&((struct sl_proj *)pj)->state_pub, memory_order_acquire) ==
	    SL_PROJ_WAITING)
		snprintf(msg, sizeof(msg), "projection %s waits for topic %s", pj->name,
		         pj->waits_for);
	else
		snprintf(msg, sizeof(msg),
		         "projection %s could not start on its topic (the server's log says why)",
		         pj->name);
	return sl__fail(body, len, 503, "not_serving", msg);
}

int sl__proj_find(const struct sl_server *srv, const char *name, size_t len)
{
	for (uint32_t i = 0; i < srv->n_projs; i++)
		if (strlen(srv->projs[i].name) == len && !memcmp(srv->projs[i].name, name, len))
			return (int)i;
	return -ENOENT;
}

/* What a replica holds that may have been acked, for a quorum read
 * (cluster/qread.c says why each): a leader acks nothing past its HW
 * (durable_pub), or under `acks: leader` past its own durable end as far as
 * it acked (ack_end); any other replica may hold acked events past the HW
 * it heard, up to its own durable end. */
static uint64_t sl__holds(const struct sl_partition *p)
{
	const struct sl_prepl *rp = p->repl;
	uint64_t pub = atomic_load_explicit(&p->durable_pub, memory_order_acquire);

	if (!rp)
		return pub;
	if (atomic_load_explicit(&rp->role, memory_order_acquire) == SL_REPL_LEADER) {
		uint64_t acked = atomic_load_explicit(&rp->ack_end, memory_order_acquire);
		return acked > pub ? acked : pub;
	}
	uint64_t own = atomic_load_explicit(&rp->local_durable, memory_order_acquire);
	return own > pub ? own : pub;
}

/* Adds `"applied":A,"holds":H` as the last members of the JSON object in
 * *body (an answer or an error body). A body that is not an object is
 * left alone. */
static int sl__add_read_offsets(char **body, size_t *len, uint64_t applied, uint64_t holds)
{
	char add[80];

	bool empty;
	size_t end = sl__obj_end(*body, *len, &empty);
	if (!end)
		return 0;
	int n = snprintf(add, sizeof(add), "%s\"applied\":%" PRIu64 ",\"holds\":%" PRIu64,
	                 empty ? "" : ",", applied, holds);
	return sl__obj_insert(body, len, end, add, (size_t)n);
}

/* Hands q to the partition's reactor and waits for its answer. */
static void sl__pq_run(struct sl_server *srv, struct sl_pquery *q)
{
	const struct sl_proj *pj = &srv->projs[q->proj];
	uint32_t owner = pj->topic->parts[q->partition].owner;

	if (atomic_load_explicit(&srv->stopping.value, memory_order_acquire) ||
	    !sl_ring_push_mpmc(&srv->pq[owner], q)) {
		q->status = 503;
		snprintf(q->msg, sizeof(q->msg), "%s",
		         atomic_load_explicit(&srv->stopping.value, memory_order_acquire)
		             ? "the server is shutting down"
		             : "too many queries in flight");
		return;
	}
	sl_reactor_wake(srv->reactors[owner]);
	pthread_mutex_lock(&q->mu);
	while (!q->done)
		pthread_cond_wait(&q->cv, &q->mu);
	pthread_mutex_unlock(&q->mu);
}

int sl_server_query(struct sl_server *srv, const struct sl_server_query *in, char **body,
                    size_t *len)
{
	if (in->consistency == SL_SERVER_CONSISTENCY_QUORUM)
		return sl__qread(srv, in, body, len);
	return sl__query_local(srv, in, body, len);
}

int sl__query_local(struct sl_server *srv, const struct sl_server_query *in, char **body,
                    size_t *len)
{
	struct sl_pquery *wq = NULL, **qs = NULL;
	uint32_t proj, n = 0;
	char msg[300];
	int status = 200;
	int found = sl__proj_find(srv, in->projection, in->projection_len);

	proj = found < 0 ? UINT32_MAX : (uint32_t)found;
	if (proj == UINT32_MAX) {
		snprintf(msg, sizeof(msg), "no projection named '%.*s'", (int)in->projection_len,
		         in->projection);
		return sl__fail(body, len, 404, "unknown_projection", msg);
	}
	const struct sl_proj *pj = &srv->projs[proj];
	if (!sl__proj_serving(pj))
		return sl__not_bound(pj, body, len);
	uint64_t deadline = sl_now_ns() + (uint64_t)in->timeout_ms * 1000000u;
	if (in->has_min && in->min_partition >= pj->topic->n_parts) {
		snprintf(msg, sizeof(msg), "min_offset: topic %s has partitions 0..%u, not %u",
		         pj->topic->name, pj->topic->n_parts - 1, in->min_partition);
		return sl__fail(body, len, 400, "bad_request", msg);
	}
	if (in->key_len > UINT32_MAX) {
		return sl__fail(body, len, 400, "bad_request", "key too long");
	}
	/* A concurrent-query projection is read here, on this thread (no hop
	 * to a busy reactor); without a record (no memory) it goes the
	 * reactors' way. */
	struct sl_epoch_rec *er =
	    sl_plugin_concurrent_query(pj->plugin) ? sl_epoch_rec_get(srv->epoch) : NULL;
	/* Read your writes: the event of the token first, wherever it is,
	 * unless the projection has already applied it (published offsets). */
	if (in->has_min && !sl_proj_part_applied(&pj->parts[in->min_partition], in->min_offset)) {
		wq = sl_pquery_new(proj, in->min_partition, deadline);
		if (!wq) {
			status = sl__fail(body, len, 500, "internal", "out of memory");
			goto out;
		}
		wq->wait = true;
		wq->wait_offset = in->min_offset;
		sl__pq_run(srv, wq);
		if (wq->status != 200) {
			status = sl__fail(body, len, wq->status, sl__code_of(wq->status), wq->msg);
			goto out;
		}
	}
	const char *agg;
	uint32_t agg_len;
	int route =
	    sl_project_key_route(pj->plugin, in->key, (uint32_t)in->key_len, &agg, &agg_len);
	if (route < 0) {
		snprintf(msg, sizeof(msg), "projection %s cannot read the key '%.*s'", pj->name,
		         (int)(in->key_len > 100 ? 100 : in->key_len), in->key);
		status = sl__fail(body, len, 400, "bad_request", msg);
		goto out;
	}
	uint32_t first = 0, count = pj->topic->n_parts;
	bool explicit_one = in->consistency == SL_SERVER_CONSISTENCY_ONE && route == 1;
	if (route == 1) {
		first = sl_part_of_key(&pj->topic->part, agg, agg_len);
		count = 1;
	}
	qs = calloc(count, sizeof(*qs));
	if (!qs) {
		status = sl__fail(body, len, 500, "internal", "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < count; i++, n++) {
		qs[i] = sl_pquery_new(proj, first + i, deadline);
		if (!qs[i]) {
			status = sl__fail(body, len, 500, "internal", "out of memory");
			goto out;
		}
		qs[i]->query = true;
		qs[i]->mode = route == 1 ? SL_PLUGIN_QUERY_FULL : SL_PLUGIN_QUERY_PART;
		qs[i]->key = in->key;
		qs[i]->key_len = (uint32_t)in->key_len;
		qs[i]->has_max_lag = in->has_max_lag;
		qs[i]->max_lag = in->max_lag;
	}
	/* One partition at a time: a query is short, and the reactors answer
	 * between their turns. */
	for (uint32_t i = 0; i < count; i++) {
		if (er)
			sl_pquery_answer_published(pj, qs[i], er);
		else
			sl__pq_run(srv, qs[i]);
		int st = qs[i]->status;
		if (st != 200 && !(st == 404 && route == 0)) {
			status = sl__fail(body, len, st, sl__code_of(st), qs[i]->msg);
			/* A missing entry is a reading too: a quorum read
			 * compares it with the others' answers. */
			if (st == 404 && explicit_one &&
			    sl__add_read_offsets(body, len, qs[i]->applied,
			                         sl__holds(&pj->topic->parts[first])) < 0) {
				free(*body);
				status = sl__fail(body, len, 500, "internal", "out of memory");
			}
			goto out;
		}
	}
	if (route == 1) {
		struct sl_plugin_out *o = &qs[0]->out;
		*body = o->buf.data;
		*len = o->buf.len;
		o->buf.data = NULL;
		o->buf.len = o->buf.cap = 0;
		status = 200;
		if (sl__answer_extend(body, len, qs, 1, true) < 0 ||
		    (explicit_one &&
		     sl__add_read_offsets(body, len, qs[0]->applied,
		                          sl__holds(&pj->topic->parts[first])) < 0)) {
			free(*body);
			status = sl__fail(body, len, 500, "internal", "out of memory");
		}
		goto out;
	}
	/* Every partition holds a share: merge those that have one. */
	const uint8_t **parts = calloc(count, sizeof(*parts));
	size_t *lens = calloc(count, sizeof(*lens));
	uint32_t k = 0;
	struct sl_plugin_out merged = {0};
	if (!parts || !lens) {
		free(parts);
		free(lens);
		status = sl__fail(body, len, 500, "internal", "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < count; i++)
		if (qs[i]->status == 200) {
			parts[k] = (const uint8_t *)qs[i]->out.buf.data;
			lens[k++] = qs[i]->out.buf.len;
		}
	int mret =
	    sl_project_merge(pj->plugin, in->key, (uint32_t)in->key_len, parts, lens, k, &merged);
	free(parts);
	free(lens);
	if (mret == -ENOENT || (mret == 0 && k == 0 && !merged.buf.len)) {
		snprintf(msg, sizeof(msg), "projection %s has no entry '%.*s'", pj->name,
		         (int)(in->key_len > 100 ? 100 : in->key_len), in->key);
		status = sl__fail(body, len, 404, "not_found", msg);
	} else if (mret < 0) {
		snprintf(msg, sizeof(msg), "projection %s: merging the partitions' answers: %s",
		         pj->name, sl_strerror(mret));
		status = sl__fail(body, len, 500, "internal", msg);
	} else {
		*body = merged.buf.data;
		*len = merged.buf.len;
		merged.buf.data = NULL;
		status = 200;
		if (sl__answer_extend(body, len, qs, count, false) < 0) {
			free(*body);
			status = sl__fail(body, len, 500, "internal", "out of memory");
		}
	}
	sl_plugin_out_release(&merged);
out:
	sl_epoch_rec_put(er);
	sl_pquery_free(wq);
	for (uint32_t i = 0; i < n; i++)
		sl_pquery_free(qs[i]);
	free(qs);
	return status;
}

int sl_server_rebuild(struct sl_server *srv, const char *name, size_t name_len, bool swap,
                      char **body, size_t *len)
{
	int found = sl__proj_find(srv, name, name_len);
	uint32_t proj = found < 0 ? UINT32_MAX : (uint32_t)found;
	char msg[300];

	if (proj == UINT32_MAX) {
		snprintf(msg, sizeof(msg), "no projection named '%.*s'",
		         (int)(name_len > 100 ? 100 : name_len), name);
		return sl__fail(body, len, 404, "unknown_projection", msg);
	}
	const struct sl_proj *pj = &srv->projs[proj];
	if (!sl__proj_serving(pj))
		return sl__not_bound(pj, body, len);
	if (swap && !pj->sdb) {
		/* Its model is the plugin instance's memory, which queries read
		 * on other threads without a hop (concurrent queries): swapping
		 * it would need the instance itself replaced under them. */
		snprintf(msg, sizeof(msg),
		         "projection %s keeps its model in memory (plugin ABI 1.1, snapshots): "
		         "swap needs a host-state projection (ABI 1.2); a rebuild without swap "
		         "still compares",
		         pj->name);
		return sl__fail(body, len, 400, "bad_request", msg);
	}
	uint32_t n = pj->topic->n_parts, n_swapped = 0;
	struct sl_pquery **qs = calloc(n, sizeof(*qs));
	int status = 200;
	bool all_equal = true;
	if (!qs)
		return sl__fail(body, len, 500, "internal", "out of memory");
	/* A rebuild reads the whole topic: give it an hour before the reactor
	 * gives up on it. */
	uint64_t deadline = sl_now_ns() + UINT64_C(3600) * 1000000000u;
	for (uint32_t p = 0; p < n; p++) {
		qs[p] = sl_pquery_new(proj, p, deadline);
		if (!qs[p]) {
			status = sl__fail(body, len, 500, "internal", "out of memory");
			goto out;
		}
		qs[p]->rebuild = true;
		qs[p]->swap = swap;
	}
	for (uint32_t p = 0; p < n; p++) {
		sl__pq_run(srv, qs[p]);
		if (qs[p]->status != 200) {
			status = sl__fail(body, len, qs[p]->status, sl__code_of(qs[p]->status),
			                  qs[p]->msg);
			goto out;
		}
		all_equal &= qs[p]->equal;
		n_swapped += qs[p]->swapped;
	}
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (!f) {
		status = sl__fail(body, len, 500, "internal", "out of memory");
		goto out;
	}
	/* "equal" says what the rebuild found (before any swap). */
	fprintf(f, "{\"projection\":\"%s\",\"equal\":%s,\"swapped\":%u,\"partitions\":[", pj->name,
	        all_equal ? "true" : "false", n_swapped);
	for (uint32_t p = 0; p < n; p++)
		fprintf(f,
		        "%s{\"partition\":%u,\"events\":%" PRIu64 ",\"equal\":%s,\"swapped\":%s,"
		        "\"bytes\":%" PRIu64 ",\"rebuilt_bytes\":%" PRIu64 "}",
		        p ? "," : "", p, qs[p]->applied, qs[p]->equal ? "true" : "false",
		        qs[p]->swapped ? "true" : "false", qs[p]->model_bytes, qs[p]->rb_bytes);
	fprintf(f, "]}\n");
	if (fclose(f) != 0) {
		free(buf);
		status = sl__fail(body, len, 500, "internal", "out of memory");
		goto out;
	}
	*body = buf;
	*len = sz;
out:
	for (uint32_t p = 0; p < n; p++)
		sl_pquery_free(qs[p]);
	free(qs);
	return status;
}
