/*
 * The reactor's side of projections: it only drives. It steps the
 * appliers of the partitions it owns up to their durable end, publishes
 * what they emit, and takes read-model requests off its ring between two
 * steps: answered at once, parked until applied, or rebuilt, with the
 * logic of project/query.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "project/project.h"
#include "reactor/reactor_impl.h"
#include "ring/ring.h"

/* Events one applier takes per loop turn: a turn stays short (about 100 us
 * of counter applies) so ingest on this core never waits long. */
#define SL_PROJ_STEP_EVENTS 4096u
/* Applied at once when at least this many are waiting (else at the tick). */
#define SL_PROJ_MIN_EVENTS 2048u

/* Appends the parts of projections `pick` accepts whose partitions this
 * reactor owns to r->pparts; with `follow`, registers each one's lag with
 * its partition (this reactor owns it, so nothing else reads its
 * followers meanwhile). */
static int sl__proj_take_parts(struct sl_reactor *r, bool (*pick)(const struct sl_proj *),
                               bool follow)
{
	const struct sl_reactor_env *env = r->env;
	uint32_t n = 0;

	for (uint32_t i = 0; i < env->n_projs; i++)
		for (uint32_t p = 0; pick(&env->projs[i]) && p < env->projs[i].topic->n_parts; p++)
			n += env->projs[i].parts[p].part->owner == r->id;
	if (!n)
		return 0;
	struct sl_proj_part **v = realloc(r->pparts, (r->n_pparts + n) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	r->pparts = v;
	for (uint32_t i = 0; i < env->n_projs; i++)
		for (uint32_t p = 0; pick(&env->projs[i]) && p < env->projs[i].topic->n_parts;
		     p++) {
			struct sl_proj_part *pp = &env->projs[i].parts[p];
			if (pp->part->owner != r->id)
				continue;
			if (follow && pp->a &&
			    sl_partition_follow(pp->part, &pp->applied_pub, "projection",
			                        env->projs[i].name) < 0)
				return -ENOMEM;
			r->pparts[r->n_pparts++] = pp;
		}
	return 0;
}

/* At create: what serves from the start (followed by the server then). */
static bool sl__proj_open_now(const struct sl_proj *pj)
{
	return pj->parts != NULL && !pj->bind_pending;
}

/* sl_reactor_bind: what the server just bound to a topic made at runtime. */
static bool sl__proj_binding(const struct sl_proj *pj)
{
	return pj->bind_pending && pj->parts != NULL;
}

int sl__proj_init(struct sl_reactor *r)
{
	return sl__proj_take_parts(r, sl__proj_open_now, false);
}

int sl__proj_bind(struct sl_reactor *r)
{
	return sl__proj_take_parts(r, sl__proj_binding, true);
}

/* Starts a rebuild beside the live applier (project/query.c), stepped by
 * sl__proj_step until it has applied what the live one has. */
static void sl__rebuild_start(struct sl_reactor *r, struct sl_pquery *q)
{
	struct sl_proj_part *pp = &r->env->projs[q->proj].parts[q->partition];

	if (sl_pquery_rebuild_open(&r->env->projs[q->proj], q) < 0)
		return; /* answered */
	q->phase = SL_REBUILD_APPLYING;
	atomic_store_explicit(&pp->rb_next_pub, 0, memory_order_relaxed);
	atomic_store_explicit(&pp->rb_phase_pub, q->phase, memory_order_relaxed);
	q->next = r->pq_rebuild;
	r->pq_rebuild = q;
	r->proj_behind = true;
}

/* Answers a rebuild (closing its applier) and lets the live model go on. */
static void sl__rebuild_end(struct sl_proj_part *pp, struct sl_pquery *q, int status,
                            const char *fmt, const char *name, const char *why)
{
	if (q->phase == SL_REBUILD_SWAPPING || q->phase == SL_REBUILD_PAUSED)
		pp->swap_hold = false;
	atomic_store_explicit(&pp->rb_phase_pub, 0, memory_order_relaxed);
	if (fmt)
		snprintf(q->msg, sizeof(q->msg), fmt, name, q->partition, why);
	sl_pquery_rebuild_end(q, status);
}

/*
 * A swap (rebuild --swap, the models differ): the live model is held (not
 * stepped) at the offset both have applied, both commit everything, then
 * the rebuilt state becomes the live one in one durable write
 * (sl_applier_swap_in). Queries go on meanwhile: they read the live
 * model's last commit, the old one until that write and the new one
 * after. 1 when done (answered), 0 to be called again at a later step
 * (a commit or an emitted event's ack wakes this reactor).
 */
static int sl__rebuild_swap(const struct sl_proj *pj, struct sl_proj_part *pp, struct sl_pquery *q)
{
	if (q->phase == SL_REBUILD_PAUSED)
		return 0;
	bool live = sl_applier_settle(pp->a), rb = sl_applier_settle(q->rb);
	if (!live || !rb)
		return 0;
	if (pj->test_pause == SL_REBUILD_PAUSE_SWAP) {
		q->phase = SL_REBUILD_PAUSED;
		atomic_store_explicit(&pp->rb_phase_pub, q->phase, memory_order_relaxed);
		return 0;
	}
	int ret = sl_applier_swap_in(pp->a, q->rb);
	if (ret == -EBUSY)
		return 0;
	if (ret < 0) {
		sl__rebuild_end(pp, q, 500, "projection %s partition %u: swap: %s", pj->name,
		                sl_applier_error(pp->a));
		return 1;
	}
	q->swapped = true;
	/* The same offset, from the new model's commit. */
	atomic_store_explicit(&pp->applied_pub, sl_applier_visible(pp->a), memory_order_release);
	if (pj->test_pause == SL_REBUILD_PAUSE_SWAPPED) {
		q->phase = SL_REBUILD_PAUSED;
		atomic_store_explicit(&pp->rb_phase_pub, q->phase, memory_order_relaxed);
		return 0;
	}
	sl__rebuild_end(pp, q, 200, NULL, NULL, NULL);
	return 1;
}

/* Steps every rebuild toward its live model; answers those that are there. */
static void sl__rebuild_step(struct sl_reactor *r)
{
	struct sl_pquery *q = r->pq_rebuild, *keep = NULL;
	r->pq_rebuild = NULL;
	while (q) {
		struct sl_pquery *nx = q->next;
		const struct sl_proj *pj = &r->env->projs[q->proj];
		struct sl_proj_part *pp = &pj->parts[q->partition];
		uint64_t target = pp->a && !pp->failed ? sl_applier_next(pp->a) : 0;
		bool done = true;
		int ret = 0;
		if (pj->test_pause == SL_REBUILD_PAUSE_APPLY && target > pj->test_pause_at)
			target = pj->test_pause_at;
		if (pp->failed || !pp->a) {
			sl__rebuild_end(pp, q, 503,
			                "projection %s partition %u stopped during the "
			                "rebuild%s",
			                pj->name, "");
		} else if (q->phase != SL_REBUILD_APPLYING) {
			done = sl__rebuild_swap(pj, pp, q);
		} else if (pj->test_pause == SL_REBUILD_PAUSE_APPLY &&
		           sl_applier_next(q->rb) >= target) {
			/* Its commits go on (housekeeping); it applies no more. */
			(void)sl_applier_settle(q->rb);
			atomic_store_explicit(&pp->rb_phase_pub, SL_REBUILD_PAUSED,
			                      memory_order_relaxed);
			done = false;
		} else if (sl_applier_next(q->rb) >= target) {
			if (sl_pquery_rebuild_compare(pj, q) < 0) {
				sl__rebuild_end(pp, q, 500, NULL, NULL, NULL);
			} else if (!q->swap || q->equal) {
				sl__rebuild_end(pp, q, 200, NULL, NULL, NULL);
			} else {
				/* Both at the same offset: the live model stays
				 * there until the swap. */
				pp->swap_hold = true;
				q->phase = SL_REBUILD_SWAPPING;
				atomic_store_explicit(&pp->rb_phase_pub, q->phase,
				                      memory_order_relaxed);
				done = sl__rebuild_swap(pj, pp, q);
			}
		} else if ((ret = sl_applier_step(q->rb, target, SL_PROJ_STEP_EVENTS)) < 0) {
			sl__rebuild_end(pp, q, 500, "projection %s partition %u: rebuild: %s",
			                pj->name, sl_applier_error(q->rb));
		} else {
			atomic_store_explicit(&pp->rb_next_pub, sl_applier_next(q->rb),
			                      memory_order_relaxed);
			r->proj_behind = true;
			done = false;
		}
		if (!done) {
			q->next = keep;
			keep = q;
		}
		q = nx;
	}
	r->pq_rebuild = keep;
}

/* Answers q now, or parks it until the applier has passed its offset. */
static void sl__pq_handle(struct sl_reactor *r, struct sl_pquery *q)
{
	const struct sl_proj *pj = &r->env->projs[q->proj];
	struct sl_proj_part *pp = &pj->parts[q->partition];

	if (pp->failed || !pp->a) {
		sl_pquery_not_serving(pj, q);
		sl_pquery_done(q, q->status, NULL);
		return;
	}
	if (q->rebuild) {
		sl__rebuild_start(r, q);
		return;
	}
	/* What queries see: a host-state projection's last commit. */
	uint64_t next = sl_applier_visible(pp->a);
	if (q->wait && next <= q->wait_offset) {
		q->next = r->pq_wait;
		r->pq_wait = q;
		return;
	}
	sl_pquery_answer(pj, q, next, NULL);
	sl_pquery_done(q, q->status, NULL);
}

void sl__proj_take(struct sl_reactor *r)
{
	void *item;
	/* Bounded: at most what the ring holds now (it is finite). */
	for (uint32_t i = 0; i < 1024 && sl_ring_pop_mpmc(&r->env->pq[r->id], &item); i++)
		sl__pq_handle(r, item);
}

/* Re-checks the parked requests; with `now`, answers the late ones. */
static void sl__pq_recheck(struct sl_reactor *r, uint64_t now)
{
	struct sl_pquery *q = r->pq_wait, *keep = NULL;
	r->pq_wait = NULL;
	while (q) {
		struct sl_pquery *nx = q->next;
		const struct sl_proj *pj = &r->env->projs[q->proj];
		if (now && now >= q->deadline_ns &&
		    sl_applier_visible(pj->parts[q->partition].a) <= q->wait_offset) {
			/* Where this replica stands: a follower that lacks the
			 * event, or the HW that covers it, says so. */
			const struct sl_partition *part = pj->parts[q->partition].part;
			sl_pquery_done(
			    q, 504,
			    "projection %s has not applied offset %" PRIu64
			    " of partition %u in time (applied up to %" PRIu64
			    ", readable here up to %" PRIu64 ")",
			    pj->name, q->wait_offset, q->partition,
			    sl_applier_visible(pj->parts[q->partition].a),
			    atomic_load_explicit(&part->durable_pub, memory_order_relaxed));
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

/* One event a projection emitted, into its topic like a producer's. */
static int sl__proj_out(struct sl_reactor *r, struct sl_proj_part *pp, uint32_t topic,
                        const uint8_t *ev, uint32_t len, uint64_t seq)
{
	return sl__internal_produce(r, topic, pp->emit_pid,
	                            SL_CONN_PIPE | SL_CONN_PROJ | pp->emit_ref, ev, len, seq);
}

static void sl__proj_fail(struct sl_reactor *r, struct sl_proj_part *pp, const char *why)
{
	if (pp->failed)
		return;
	pp->failed = true;
	fprintf(stderr, "sluiced: projection %s partition %u stopped: %s\n",
	        r->env->projs[pp->proj].name, pp->part->id, why);
}

/*
 * Publishes what the last step emitted, exactly once: the projection is an
 * idempotent producer (emit_pid, epoch 1) whose k-th emitted event has
 * sequence k, counted in the snapshots beside the applied offset. A restart
 * applies again from a snapshot and emits the same events with the same
 * sequences, answered as duplicates where they were stored; and no
 * snapshot is taken while an emitted event is not durable (emit hold), so
 * nothing emitted before a snapshot can be missing after it.
 */
static void sl__proj_publish(struct sl_reactor *r, struct sl_proj_part *pp)
{
	struct sl_plugin_emitter *em = sl_applier_emitter(pp->a);
	size_t cursor = 0;
	const uint8_t *bytes;
	uint32_t len;
	int topic;

	if (!em->n)
		return;
	uint64_t seq = sl_applier_emit_seq(pp->a);
	while (sl_plugin_emitter_next(em, &cursor, &topic, &bytes, &len) > 0) {
		/* Counted first: a duplicate of a durable event is answered
		 * from inside the produce call. */
		pp->emit_unacked++;
		int ret = sl__proj_out(r, pp, (uint32_t)topic, bytes, len, seq++);
		if (ret < 0) {
			pp->emit_unacked--;
			sl__proj_fail(r, pp, "an emitted event was refused");
			return; /* not counted: no snapshot will cover it */
		}
	}
	sl_applier_emitted(pp->a);
	sl_applier_emit_hold(pp->a, pp->emit_unacked > 0);
}

void sl__proj_emit_ack(struct sl_reactor *r, const struct sl_xack *a)
{
	uint32_t ref = a->conn & ~(SL_CONN_PIPE | SL_CONN_PROJ);
	struct sl_proj_part *pp = &r->env->projs[ref >> 12].parts[ref & 4095];

	if (a->status) {
		/* Not stored (its partition failed): the projection stops
		 * rather than lose it; its last snapshot stays before it. */
		sl__proj_fail(r, pp, "an emitted event was not stored");
		return;
	}
	if (pp->emit_unacked && --pp->emit_unacked == 0 && pp->a)
		sl_applier_emit_hold(pp->a, false);
}

/* Whether a parked read-your-writes request waits on pp: its host state
 * then commits at once rather than at its next interval. */
static bool sl__pq_waits_on(const struct sl_reactor *r, const struct sl_proj_part *pp)
{
	for (const struct sl_pquery *q = r->pq_wait; q; q = q->next)
		if (q->proj == pp->proj && q->partition == pp->part->id)
			return true;
	return false;
}

void sl__proj_step(struct sl_reactor *r)
{
	bool moved = false;
	/* Apply in bulk: an applier reads its log in 256 KiB steps, so
	 * stepping after every group commit (a few KiB) read and checked the
	 * same bytes many times over (perf: page-cache copies and zeroing of
	 * the pre-allocated tail cut ingest by two thirds with two
	 * projections). A model trails by at most SL_PROJ_MIN_EVENTS events or
	 * one tick (100 ms); a read-your-writes request waiting here, or a
	 * rebuild, makes every applier step at once. */
	bool now = r->proj_tick_due || r->pq_wait || r->pq_rebuild;

	r->proj_tick_due = false;
	r->proj_behind = false;
	for (uint32_t i = 0; i < r->n_pparts; i++) {
		struct sl_proj_part *pp = r->pparts[i];
		/* A swap settling holds the live model where its rebuild is. */
		if (pp->failed || !pp->a || pp->swap_hold)
			continue;
		/* Up to what readers may see: on a replicated partition the HW
		 * (a follower: the HW it heard, never past what it holds), so
		 * no model holds an event a failover could take back; alone,
		 * the durable end. This thread stores it (relaxed is enough). */
		uint64_t limit = atomic_load_explicit(&pp->part->durable_pub, memory_order_relaxed);
		uint64_t next = sl_applier_next(pp->a);
		bool host = sl_applier_host_state(pp->a);
		/* A read-your-writes query waits on this host-state model: what
		 * it applied commits at once, not at its next interval (the
		 * reactor may sleep until then). */
		if (host && r->pq_wait && sl__pq_waits_on(r, pp))
			sl_applier_commit_soon(pp->a);
		if (next >= limit || (!now && limit - next < SL_PROJ_MIN_EVENTS)) {
			/* A host-state model with nothing to apply still commits
			 * what it holds and shows the commits that completed. */
			if (host &&
			    atomic_load_explicit(&pp->applied_pub, memory_order_relaxed) != next) {
				sl_applier_idle(pp->a);
				uint64_t vis = sl_applier_visible(pp->a);
				if (vis !=
				    atomic_load_explicit(&pp->applied_pub, memory_order_relaxed)) {
					atomic_store_explicit(&pp->applied_pub, vis,
					                      memory_order_release);
					moved = true;
				}
			}
			continue;
		}
		/* Before any of the step's stores: a concurrent query that
		 * sees one of them sees this too (its acquire fence after the
		 * query, project/query.c), and its token covers the step. */
		atomic_store_explicit(&pp->applying_pub, limit, memory_order_relaxed);
		atomic_thread_fence(memory_order_release);
		int ret = sl_applier_step(pp->a, limit, SL_PROJ_STEP_EVENTS);
		if (ret < 0) {
			pp->failed = true;
			fprintf(stderr, "sluiced: projection %s partition %u stopped: %s\n",
			        r->env->projs[pp->proj].name, pp->part->id,
			        sl_applier_error(pp->a));
		} else {
			sl__proj_publish(r, pp);
		}
		/* Release: a concurrent query that reads this offset (acquire)
		 * sees the model with every event below it applied. */
		atomic_store_explicit(&pp->applied_pub, sl_applier_visible(pp->a),
		                      memory_order_release);
		atomic_store_explicit(&pp->applied_ms_pub, sl_applier_last_append_ms(pp->a),
		                      memory_order_relaxed);
		/* A host-state step that applied nothing waits for a commit
		 * to free its cache: the writer wakes this thread, no spin. */
		if (!pp->failed && sl_applier_next(pp->a) < limit && !(ret == 0 && host))
			r->proj_behind = true;
		moved = true;
	}
	if (moved && r->pq_wait)
		sl__pq_recheck(r, 0);
	if (r->pq_rebuild)
		sl__rebuild_step(r);
}

void sl__proj_tick(struct sl_reactor *r)
{
	r->proj_tick_due = true;
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
		sl_pquery_done(q, 503, "the server is shutting down");
		q = nx;
	}
	q = r->pq_rebuild;
	r->pq_rebuild = NULL;
	while (q) {
		struct sl_pquery *nx = q->next;
		struct sl_proj_part *pp = &r->env->projs[q->proj].parts[q->partition];
		sl__rebuild_end(pp, q, 503, "projection %s partition %u: %s",
		                r->env->projs[q->proj].name, "the server is shutting down");
		q = nx;
	}
	while (sl_ring_pop_mpmc(&r->env->pq[r->id], &item))
		sl_pquery_done(item, 503, "the server is shutting down");
}
