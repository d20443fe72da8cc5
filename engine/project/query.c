/*
 * Read-model requests of a running server's projections (project.h): the
 * answer (lag check, the plugin's query, in an epoch section when read off
 * the reactor), the request's life cycle and rebuilds. The reactor that
 * owns a partition drives these (reactor/proj.c); the HTTP glue
 * (server/project.c) makes and waits for the requests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/epoch.h"
#include "project/project.h"
#include "topic/topic.h"

struct sl_pquery *sl_pquery_new(uint32_t proj, uint32_t partition, uint64_t deadline_ns)
{
	struct sl_pquery *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->proj = proj;
	q->partition = partition;
	q->deadline_ns = deadline_ns;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	return q;
}

void sl_pquery_free(struct sl_pquery *q)
{
	if (!q)
		return;
	sl_plugin_out_release(&q->out);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
}

__attribute__((format(printf, 3, 4))) static void sl__pq_set(struct sl_pquery *q, int status,
                                                             const char *fmt, ...)
{
	va_list ap;
	q->status = status;
	va_start(ap, fmt);
	vsnprintf(q->msg, sizeof(q->msg), fmt, ap);
	va_end(ap);
}

void sl_pquery_done(struct sl_pquery *q, int status, const char *fmt, ...)
{
	q->status = status;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(q->msg, sizeof(q->msg), fmt, ap);
		va_end(ap);
	}
	/* The asker frees q once it sees done: the unlock is our last touch. */
	pthread_mutex_lock(&q->mu);
	q->done = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void sl_pquery_not_serving(const struct sl_proj *pj, struct sl_pquery *q)
{
	const struct sl_proj_part *pp = &pj->parts[q->partition];
	sl__pq_set(q, 503, "projection %s partition %u is not serving: %s", pj->name, q->partition,
	           pp->a ? sl_applier_error(pp->a)
	                 : (pp->part->error ? pp->part->error : "partition refused"));
}

void sl_pquery_lag(const struct sl_partition *p, uint64_t next, struct sl_pquery *q)
{
	const struct sl_prepl *rp = p->repl;
	uint64_t end = atomic_load_explicit(&p->durable_pub, memory_order_acquire);

	q->follower = false;
	q->heard_ms = 0;
	if (rp && atomic_load_explicit(&rp->role, memory_order_acquire) == SL_REPL_LEADER) {
		uint64_t local = atomic_load_explicit(&rp->local_durable, memory_order_acquire);
		if (local > end)
			end = local;
	} else if (rp) {
		/* A follower, or a replica before it took a role: the leader's
		 * word, whoever stored it last (the fetcher on an answer, the
		 * owner on a chunk; relaxed: a late view only widens the lag
		 * or the staleness, never narrows them). */
		uint64_t le = atomic_load_explicit(&rp->leader_end, memory_order_relaxed);
		uint64_t ns = atomic_load_explicit(&rp->leader_end_ns, memory_order_relaxed);
		uint64_t now = sl_now_ns();
		if (le > end)
			end = le;
		q->follower = true;
		q->heard_ms = !ns ? UINT64_MAX : now > ns ? (now - ns) / 1000000u : 0;
	}
	q->applied = next;
	q->lag = end > next ? end - next : 0;
}

void sl_pquery_answer(const struct sl_proj *pj, struct sl_pquery *q, uint64_t next,
                      struct sl_epoch_rec *er)
{
	struct sl_proj_part *pp = &pj->parts[q->partition];
	struct sl_applier *a = pp->a;
	int klen = (int)(q->key_len > 100 ? 100 : q->key_len);

	sl_pquery_lag(pp->part, next, q);
	q->seen_end = next;
	q->status = 200;
	if (!q->query)
		return;
	if (q->has_max_lag && q->follower && q->heard_ms > SL_PQUERY_HEARD_MAX_MS) {
		if (q->heard_ms == UINT64_MAX)
			sl__pq_set(
			    q, 409,
			    "projection %s partition %u: this replica has not heard from its "
			    "leader since it started, so its lag is not known (max_lag %" PRIu64
			    ")",
			    pj->name, q->partition, q->max_lag);
		else
			sl__pq_set(q, 409,
			           "projection %s partition %u: this replica last heard from its "
			           "leader %" PRIu64 " ms ago (more than %u), so its lag is not "
			           "known (max_lag %" PRIu64 ")",
			           pj->name, q->partition, q->heard_ms, SL_PQUERY_HEARD_MAX_MS,
			           q->max_lag);
		return;
	}
	if (q->has_max_lag && q->lag > q->max_lag) {
		sl__pq_set(q, 409,
		           "projection %s partition %u is %" PRIu64 " events behind, more than "
		           "max_lag %" PRIu64 "%s",
		           pj->name, q->partition, q->lag, q->max_lag,
		           q->follower ? " (from the leader's end as this replica last heard it)"
		                       : "");
		return;
	}
	if (er)
		sl_epoch_enter(er);
	uint64_t seen = next;
	int ret = sl_applier_query_at(a, q->key, q->key_len, q->mode, &q->out, &seen);
	if (sl_applier_host_state(a)) {
		/* Read from one commit, whose mark says exactly what it holds
		 * (at least `next`, published before it). */
		if (er)
			sl_epoch_leave(er);
		q->seen_end = seen;
	} else if (er) {
		sl_epoch_leave(er);
		/* Off the reactor the model may hold part of a step under way
		 * (the plugin's stores are ordered by its own release): the
		 * token must cover it. Pairs with the release fence after
		 * applying_pub is stored (reactor/proj.c). */
		atomic_thread_fence(memory_order_acquire);
		uint64_t ahead = atomic_load_explicit(&pp->applying_pub, memory_order_relaxed);
		if (ahead > q->seen_end)
			q->seen_end = ahead;
	}
	if (ret == -ENOENT)
		sl__pq_set(q, 404, "projection %s has no entry '%.*s'", pj->name, klen, q->key);
	else if (ret == -EINVAL)
		sl__pq_set(q, 400, "projection %s cannot read the key '%.*s'", pj->name, klen,
		           q->key);
	else if (ret < 0)
		sl__pq_set(q, 500, "projection %s: query failed: %s", pj->name, sl_strerror(ret));
}

void sl_pquery_answer_published(const struct sl_proj *pj, struct sl_pquery *q,
                                struct sl_epoch_rec *er)
{
	struct sl_proj_part *pp = &pj->parts[q->partition];

	if (atomic_load(&pp->failed) || !pp->a) {
		sl_pquery_not_serving(pj, q);
		return;
	}
	uint64_t next = atomic_load_explicit(&pp->applied_pub, memory_order_acquire);
	sl_pquery_answer(pj, q, next, er);
}

bool sl_proj_part_applied(const struct sl_proj_part *pp, uint64_t offset)
{
	return !atomic_load(&pp->failed) &&
	       atomic_load_explicit(&pp->applied_pub, memory_order_acquire) > offset;
}

void sl_proj_part_wake(void *arg)
{
	struct sl_proj_part *pp = arg;
	pp->wake(pp->wake_arg, pp->part->owner);
}

int sl_pquery_rebuild_open(const struct sl_proj *pj, struct sl_pquery *q)
{
	struct sl_proj_part *pp = &pj->parts[q->partition];
	char dir[4096], err[300];

	if (snprintf(dir, sizeof(dir), "%s/projections/%s/%u/rebuild", pj->data_dir, pj->name,
	             q->partition) >= (int)sizeof(dir)) {
		sl_pquery_done(q, 500, "data_dir path too long");
		return -ENAMETOOLONG;
	}
	struct sl_applier_opts ao = {
	    .plugin = pj->plugin,
	    .inst = {.name = pj->name,
	             .topic = pj->topic->name,
	             .partition = q->partition,
	             .n_partitions = pj->topic->n_parts,
	             .args = pj->args},
	    .log_dir = pp->part->dir,
	    .log_cuts = &pp->part->cuts,
	    .log_start = &pp->part->start_pub,
	    .snap_dir = dir,
	    .rebuild = true,
	    /* A host-state rebuild: the other key space of the partition in
	     * the projection's store (a swap is then one write), committed by
	     * the same writer. */
	    .state_db = pj->sdb,
	    .state_writer = pj->writer,
	    .state_cache_bytes = pj->cache_bytes,
	    .on_commit = pp->wake ? sl_proj_part_wake : NULL,
	    .on_commit_arg = pp,
	};
	int ret = sl_applier_open(&ao, &q->rb, err, sizeof(err));
	if (ret < 0) {
		sl_pquery_done(q, 500, "projection %s partition %u: rebuild: %s", pj->name,
		               q->partition, err);
		return ret;
	}
	return 0;
}

int sl_pquery_rebuild_compare(const struct sl_proj *pj, struct sl_pquery *q)
{
	struct sl_proj_part *pp = &pj->parts[q->partition];
	struct sl_plugin_out live = {0}, rb = {0};
	int ret = 0;

	q->applied = sl_applier_next(pp->a);
	if (sl_applier_model_bytes(pp->a, &live) < 0 || sl_applier_model_bytes(q->rb, &rb) < 0) {
		ret = -ENOMEM;
		snprintf(q->msg, sizeof(q->msg), "projection %s partition %u: snapshot failed",
		         pj->name, q->partition);
	}
	q->model_bytes = live.buf.len;
	q->rb_bytes = rb.buf.len;
	q->equal = !ret && live.buf.len == rb.buf.len &&
	           (!live.buf.len || !memcmp(live.buf.data, rb.buf.data, live.buf.len));
	sl_plugin_out_release(&live);
	sl_plugin_out_release(&rb);
	return ret;
}

void sl_pquery_rebuild_end(struct sl_pquery *q, int status)
{
	/* q belongs to its asker once done: the rebuilder is closed first. */
	sl_applier_close(q->rb);
	q->rb = NULL;
	sl_pquery_done(q, status, NULL);
}
