/*
 * The reactor's side of projections: stepping the appliers of the
 * partitions it owns up to their durable end, and answering read-model
 * requests (server/project.c) between two steps.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "project/project.h"
#include "reactor/reactor_impl.h"
#include "ring/ring.h"
#include "server/server.h"

/* Events one applier takes per loop turn: a turn stays short (about 100 us
 * of counter applies) so ingest on this core never waits long. */
#define SL_PROJ_STEP_EVENTS 4096u

int sl__proj_init(struct sl_reactor *r)
{
	struct sl_server *srv = r->srv;
	uint32_t n = 0;

	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < srv->projs[i].topic->n_parts; p++)
			n += srv->projs[i].parts[p].part->owner == r->id;
	if (!n)
		return 0;
	r->pparts = calloc(n, sizeof(*r->pparts));
	if (!r->pparts)
		return -ENOMEM;
	for (uint32_t i = 0; i < srv->n_projs; i++)
		for (uint32_t p = 0; p < srv->projs[i].topic->n_parts; p++)
			if (srv->projs[i].parts[p].part->owner == r->id)
				r->pparts[r->n_pparts++] = &srv->projs[i].parts[p];
	return 0;
}

static void sl__pq_done(struct sl_pquery *q, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sl__pq_done(struct sl_pquery *q, int status, const char *fmt, ...)
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

/* Answers q now, or parks it until the applier has passed its offset. */
static void sl__pq_handle(struct sl_reactor *r, struct sl_pquery *q)
{
	const struct sl_proj *pj = &r->srv->projs[q->proj];
	struct sl_proj_part *pp = &pj->parts[q->partition];

	if (pp->failed || !pp->a) {
		sl__pq_done(q, 503, "projection %s partition %u is not serving: %s", pj->name,
			    q->partition,
			    pp->a ? sl_applier_error(pp->a)
				  : (pp->part->error ? pp->part->error : "partition refused"));
		return;
	}
	uint64_t next = sl_applier_next(pp->a);
	if (q->wait && next <= q->wait_offset) {
		q->next = r->pq_wait;
		r->pq_wait = q;
		return;
	}
	q->applied = next;
	uint64_t end = sl_log_durable(pp->part->log);
	q->lag = end > next ? end - next : 0;
	if (!q->query) {
		sl__pq_done(q, 200, NULL);
		return;
	}
	if (q->has_max_lag && q->lag > q->max_lag) {
		sl__pq_done(q, 409,
			    "projection %s partition %u is %" PRIu64 " events behind, more than "
			    "max_lag %" PRIu64,
			    pj->name, q->partition, q->lag, q->max_lag);
		return;
	}
	int ret = sl_applier_query(pp->a, q->key, q->key_len, q->mode, &q->out);
	if (ret == 0)
		sl__pq_done(q, 200, NULL);
	else if (ret == -ENOENT)
		sl__pq_done(q, 404, "projection %s has no entry '%.*s'", pj->name,
			    (int)(q->key_len > 100 ? 100 : q->key_len), q->key);
	else if (ret == -EINVAL)
		sl__pq_done(q, 400, "projection %s cannot read the key '%.*s'", pj->name,
			    (int)(q->key_len > 100 ? 100 : q->key_len), q->key);
	else
		sl__pq_done(q, 500, "projection %s: query failed: %s", pj->name, sl_strerror(ret));
}

void sl__proj_take(struct sl_reactor *r)
{
	void *item;
	/* Bounded: at most what the ring holds now (it is finite). */
	for (uint32_t i = 0; i < 1024 && sl_ring_pop_mpmc(&r->srv->pq[r->id], &item); i++)
		sl__pq_handle(r, item);
}

/* Re-checks the parked requests; with `now`, answers the late ones. */
static void sl__pq_recheck(struct sl_reactor *r, uint64_t now)
{
	struct sl_pquery *q = r->pq_wait, *keep = NULL;
	r->pq_wait = NULL;
	while (q) {
		struct sl_pquery *nx = q->next;
		const struct sl_proj *pj = &r->srv->projs[q->proj];
		if (now && now >= q->deadline_ns &&
		    sl_applier_next(pj->parts[q->partition].a) <= q->wait_offset) {
			sl__pq_done(q, 504,
				    "projection %s has not applied offset %" PRIu64
				    " of partition %u in time (applied up to %" PRIu64 ")",
				    pj->name, q->wait_offset, q->partition,
				    sl_applier_next(pj->parts[q->partition].a));
		} else {
			q->next = NULL;
			struct sl_pquery *before = r->pq_wait;
			sl__pq_handle(r, q); /* parks it again when still behind */
			if (r->pq_wait != before) {
				r->pq_wait = before;
				q->next = keep;
				keep = q;
			}
		}
		q = nx;
	}
	r->pq_wait = keep;
}

void sl__proj_step(struct sl_reactor *r)
{
	bool moved = false;

	r->proj_behind = false;
	for (uint32_t i = 0; i < r->n_pparts; i++) {
		struct sl_proj_part *pp = r->pparts[i];
		if (pp->failed || !pp->a)
			continue;
		uint64_t limit = sl_log_durable(pp->part->log);
		if (sl_applier_next(pp->a) >= limit)
			continue;
		int ret = sl_applier_step(pp->a, limit, SL_PROJ_STEP_EVENTS);
		if (ret < 0) {
			pp->failed = true;
			fprintf(stderr, "sluiced: projection %s partition %u stopped: %s\n",
				r->srv->projs[pp->proj].name, pp->part->id, sl_applier_error(pp->a));
		}
		atomic_store_explicit(&pp->applied_pub, sl_applier_next(pp->a),
				      memory_order_relaxed);
		if (!pp->failed && sl_applier_next(pp->a) < limit)
			r->proj_behind = true;
		moved = true;
	}
	if (moved && r->pq_wait)
		sl__pq_recheck(r, 0);
}

void sl__proj_tick(struct sl_reactor *r)
{
	if (r->pq_wait)
		sl__pq_recheck(r, sl_now_ns());
}

void sl__proj_stop(struct sl_reactor *r)
{
	void *item;
	struct sl_pquery *q = r->pq_wait;
	r->pq_wait = NULL;
	while (q) {
		struct sl_pquery *nx = q->next;
		sl__pq_done(q, 503, "the server is shutting down");
		q = nx;
	}
	while (sl_ring_pop_mpmc(&r->srv->pq[r->id], &item))
		sl__pq_done(item, 503, "the server is shutting down");
}
