/*
 * Replicated partitions on their owner (cluster mode, issue 16): what the
 * fetchers bring from leaders is appended here (a follower's log has one
 * writer, this thread, like every log), and the high watermark of the
 * partitions this node leads moves here, on its followers' reports (stored
 * by the reader thread) and its own durable end. The HW is what acks wait
 * for and what every reader of the partition may see (`durable_pub`).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/reactor_impl.h"
#include "ring/ring.h"

int sl_reactor_repl_submit(struct sl_reactor *r, struct sl_repl_chunk *c)
{
	if (!sl_ring_push_mpmc(&r->env->rq[r->id], c))
		return -EAGAIN;
	sl_reactor_wake(r);
	return 0;
}

static void sl__repl_role(struct sl_partition *p);

/* Readers may see the HW, never more than this replica holds durably. */
static void sl__repl_publish(struct sl_reactor *r, struct sl_partition *p)
{
	struct sl_prepl *rp = p->repl;
	/* The deadline before the role: a node that got a new lease after
	 * losing one publishes its deadline only once the states read again
	 * were handed to on_partition (cluster/session.c recover), so a
	 * deadline read here that lets this node act comes with the role the
	 * control thread stored before it (the deadline's load acquires,
	 * sl__repl_role's load of gen sees its bump). Taken here, not only
	 * at the turn's end: a sync completing first would act on the old
	 * role. */
	uint64_t deadline = r->env->lease_deadline ? r->env->lease_deadline(r->env->lease_arg) : 0;
	sl__repl_role(p);
	uint64_t local = atomic_load_explicit(&rp->local_durable, memory_order_relaxed);
	uint64_t hw = atomic_load_explicit(&rp->hw, memory_order_relaxed), next;
	bool acked = false;

	if (atomic_load_explicit(&rp->role, memory_order_relaxed) == SL_REPL_LEADER) {
		/* A leader whose lease may have run out acks nothing: the
		 * cluster may have a new leader for this partition by now
		 * (a paused process, a partitioned node). */
		if (r->env->lease_deadline && sl_now_ns() >= deadline)
			return;
		/* Handing over (a planned move): nothing more is acked here. */
		if (atomic_load_explicit(&rp->moving, memory_order_acquire) == 2)
			return;
		next = sl_prepl_hw(rp, local);
		/* `acks: leader`: acked at the leader's own durable end, shown
		 * to readers at the HW (topic.h, sl_prepl_hw). */
		if (rp->acks == SL_REPL_ACKS_LEADER &&
		    local > atomic_load_explicit(&rp->ack_end, memory_order_relaxed)) {
			atomic_store_explicit(&rp->ack_end, local, memory_order_relaxed);
			acked = true;
		}
	} else {
		next = atomic_load_explicit(&rp->leader_hw, memory_order_relaxed);
		if (next > local)
			next = local;
		uint64_t agreed = atomic_load_explicit(&rp->agreed, memory_order_acquire);
		if (next > agreed)
			next = agreed;
	}
	if (next > hw) {
		atomic_store_explicit(&rp->hw, next, memory_order_release);
		atomic_store_explicit(&p->durable_pub, next, memory_order_release);
		acked = true;
	}
	if (acked)
		sl__part_release(r, p);
}

void sl__repl_durable(struct sl_reactor *r, struct sl_partition *p)
{
	atomic_store_explicit(&p->repl->local_durable, sl_log_durable(p->log),
	                      memory_order_release);
	sl__repl_publish(r, p);
	if (atomic_load_explicit(&p->repl->role, memory_order_relaxed) == SL_REPL_FOLLOWER &&
	    r->env->repl_durable)
		r->env->repl_durable(r->env->repl_arg, p);
}

/* Adds (epoch, start) to the epoch file (durable first) and to the copy
 * fetch answers read. Rare: once per leader change. */
static int sl__repl_epoch_add(struct sl_partition *p, uint32_t epoch, uint64_t start)
{
	struct sl_prepl *rp = p->repl;
	const struct sl_epoch *last = sl_epochs_last(rp->epoch_file);
	if (last && last->epoch >= epoch)
		return 0;
	int ret = sl_epochs_append(rp->epoch_file, epoch, start);
	if (ret < 0) {
		fprintf(stderr, "sluiced: %s/%u: cannot write leader epoch %u: %s\n",
		        p->topic->name, p->id, epoch, sl_strerror(ret));
		return ret;
	}
	pthread_mutex_lock(&rp->mu);
	if (rp->n_epochs == SL_REPL_EPOCHS) {
		memmove(rp->epochs, rp->epochs + 1, (SL_REPL_EPOCHS - 1) * sizeof(rp->epochs[0]));
		memmove(rp->epoch_starts, rp->epoch_starts + 1,
		        (SL_REPL_EPOCHS - 1) * sizeof(rp->epoch_starts[0]));
		rp->n_epochs--;
	}
	rp->epochs[rp->n_epochs] = epoch;
	rp->epoch_starts[rp->n_epochs++] = start;
	pthread_mutex_unlock(&rp->mu);
	return 0;
}

/* The control thread changed the partition's view: take the new role. A
 * new leader epoch starts at this log's end, on disk before any event of it
 * is taken (a fetching follower learns where it starts from the answers). */
static void sl__repl_role(struct sl_partition *p)
{
	struct sl_prepl *rp = p->repl;
	uint32_t gen = atomic_load_explicit(&rp->gen, memory_order_acquire);
	if (gen == rp->seen_gen)
		return;
	rp->seen_gen = gen;
	pthread_mutex_lock(&rp->mu);
	uint32_t role = rp->want_role, epoch = rp->want_epoch;
	pthread_mutex_unlock(&rp->mu);
	if (role == SL_REPL_LEADER && sl__repl_epoch_add(p, epoch, sl_log_end(p->log)) < 0)
		role = SL_REPL_NONE; /* cannot mark the epoch: do not lead it */
	/* The batches this node writes from now on say which leader wrote
	 * them (a follower only copies the leader's). */
	sl_log_set_leader_epoch(p->log, role == SL_REPL_LEADER ? epoch : 0);
	if (role == SL_REPL_LEADER &&
	    atomic_load_explicit(&rp->role, memory_order_relaxed) != SL_REPL_LEADER) {
		/* Every follower starts in sync with a new leader's term: the
		 * in-sync set etcd holds is what it was elected from, and a
		 * follower gets replica_lag_max to show it keeps up. */
		uint64_t now = sl_now_ns();
		uint32_t isr = atomic_load_explicit(&rp->isr_mask, memory_order_acquire);
		for (uint32_t i = 0; i < rp->n_peers; i++)
			if (isr & (1u << i))
				atomic_store_explicit(&rp->peers[i].caught_up_ns, now,
				                      memory_order_relaxed);
	}
	uint32_t was = atomic_load_explicit(&rp->role, memory_order_relaxed);
	uint32_t was_epoch = atomic_load_explicit(&rp->epoch, memory_order_relaxed);
	/* A new leader (or none): this log agrees with it only as far as
	 * readers were shown (a cut never goes below that) until its fetcher
	 * hears where they part. */
	if (role != SL_REPL_LEADER && (role != was || epoch != was_epoch))
		atomic_store_explicit(&rp->agreed,
		                      atomic_load_explicit(&p->durable_pub, memory_order_relaxed),
		                      memory_order_release);
	/* What this node acked as a leader under `acks: leader` says
	 * nothing of its log under another role or epoch (a cut may follow). */
	if (role != was || epoch != was_epoch)
		atomic_store_explicit(&rp->ack_end, 0, memory_order_relaxed);
	atomic_store_explicit(&rp->epoch, epoch, memory_order_release);
	atomic_store_explicit(&rp->role, role, memory_order_release);
	/* A move away from here is over once this node no longer leads: the
	 * role refuses events from now on (stored before `moving` clears). */
	if (role != SL_REPL_LEADER)
		atomic_store_explicit(&rp->moving, 0, memory_order_release);
	if (role != was || epoch != was_epoch)
		fprintf(stderr, "sluiced: %s/%u: %s, leader epoch %u\n", p->topic->name, p->id,
		        role == SL_REPL_LEADER     ? "leader"
		        : role == SL_REPL_FOLLOWER ? "follower"
		                                   : "no replica here",
		        epoch);
}

static void sl__repl_unwait(void *arg, const struct sl_ack_ref *ref)
{
	void **rp = arg;
	sl__ref_answer(rp[0], rp[1], ref, SLUICE__V1__ERROR_CODE__ERR_NOT_LEADER);
}

/* Cuts the log where its leader's differs (KIP-101): what this replica
 * holds past there was written by a leader of an older epoch and never
 * reached the HW. Its producers, if still waiting, hear NOT_LEADER and
 * resend to the leader. */
static int sl__repl_truncate(struct sl_reactor *r, struct sl_partition *p, struct sl_repl_chunk *c)
{
	uint64_t from = sl_log_end(p->log);
	void *arg[2] = {r, p};
	char err[256];
	int ret = sl_partition_truncate(p, c->truncate_to, r->env->producers, sl__repl_unwait, arg,
	                                err, sizeof(err));
	c->end = sl_log_end(p->log);
	if (ret == -EBUSY)
		return 1; /* after the log's I/O (sl__repl_step) */
	if (ret < 0) {
		fprintf(stderr,
		        "sluiced: %s/%u: cannot cut the log at %" PRIu64
		        " for leader epoch %u: %s\n",
		        p->topic->name, p->id, c->truncate_to, c->epoch, err);
		/* Cut but not made whole again: the partition stops. */
		if (c->end == c->truncate_to && !p->error)
			p->error = strdup(err);
		return ret;
	}
	if (c->end < from)
		fprintf(stderr,
		        "sluiced: %s/%u: log cut from %" PRIu64 " to %" PRIu64
		        ": leader epoch %u does not hold the rest\n",
		        p->topic->name, p->id, from, c->end, c->epoch);
	atomic_store_explicit(&p->repl->agreed, c->end, memory_order_release);
	return 0;
}

static int sl__repl_apply(struct sl_reactor *r, struct sl_repl_chunk *c)
{
	uint32_t n = atomic_load_explicit(&r->topics->n, memory_order_acquire);
	struct sl_topic *t = c->topic < n ? &r->topics->v[c->topic] : NULL;
	struct sl_partition *p = t && c->partition < t->n_parts ? &t->parts[c->partition] : NULL;
	struct sl_prepl *rp = p ? p->repl : NULL;

	if (!rp || p->owner != r->id)
		return -EINVAL;
	c->end = p->log ? sl_log_end(p->log) : 0;
	if (!p->log || p->error)
		return -SL_ELOG_FAILED;
	/* Fetched in an epoch this replica no longer follows: a newer state
	 * was seen meanwhile, and its leader may hold other bytes there. */
	if (atomic_load_explicit(&rp->role, memory_order_relaxed) != SL_REPL_FOLLOWER ||
	    atomic_load_explicit(&rp->epoch, memory_order_relaxed) != c->epoch)
		return -ESTALE;
	if (c->truncate)
		return sl__repl_truncate(r, p, c);
	for (uint32_t i = 0; i < c->n_epochs && !c->taken; i++)
		if (c->epoch_starts[i] >= sl_log_end(p->log) &&
		    sl__repl_epoch_add(p, c->epochs[i], c->epoch_starts[i]) < 0)
			return -EIO;
	if (c->taken < c->len) {
		int ret =
		    sl_partition_append_raw(p, c->bytes + c->taken, c->len - c->taken, &c->end);
		if (ret < 0)
			return ret;
		c->taken += (size_t)ret;
		atomic_store_explicit(&rp->local_end, c->end, memory_order_release);
		/* The leader's own batches: this log matches it up to here. */
		if (c->end > atomic_load_explicit(&rp->agreed, memory_order_relaxed))
			atomic_store_explicit(&rp->agreed, c->end, memory_order_release);
		if (ret && !p->dirty) {
			p->dirty = true;
			r->dirty_parts[r->n_dirty_parts++] = p;
		}
		/* The rest starts a group commit of its own: after this
		 * turn's flush (sl__repl_step). */
		if (c->taken < c->len)
			return 1;
	}
	atomic_store_explicit(&rp->leader_end, c->leader_end, memory_order_relaxed);
	atomic_store_explicit(&rp->leader_end_ns, sl_now_ns(), memory_order_relaxed);
	if (c->leader_hw > atomic_load_explicit(&rp->leader_hw, memory_order_relaxed))
		atomic_store_explicit(&rp->leader_hw, c->leader_hw, memory_order_relaxed);
	sl__repl_publish(r, p);
	return 0;
}

void sl__repl_take(struct sl_reactor *r)
{
	void *item;

	/* Bounded per turn like the other inbound rings: a fetcher that keeps
	 * the ring full cannot starve connections. */
	for (uint32_t i = 0; i < 256 && sl_ring_pop_mpmc(&r->env->rq[r->id], &item); i++) {
		struct sl_repl_chunk *c = item;
		c->taken = 0;
		c->status = sl__repl_apply(r, c);
		if (c->status == 1) {
			c->next = r->repl_pending;
			r->repl_pending = c;
			continue;
		}
		c->done(c->done_arg, c);
	}
}

/* Followers' reports arrive on the reader thread, which wakes this reactor:
 * every turn, the HW of the partitions led here catches up with them. */
void sl__repl_step(struct sl_reactor *r)
{
	/* Chunks whose rest waited for a flush: in arrival order per
	 * partition (a fetcher has one chunk of a partition out at a time). */
	for (struct sl_repl_chunk **pp = &r->repl_pending; *pp;) {
		struct sl_repl_chunk *c = *pp;
		c->status = sl__repl_apply(r, c);
		if (c->status == 1) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		c->done(c->done_arg, c);
	}
	for (uint32_t i = 0; i < r->n_parts; i++) {
		struct sl_partition *p = r->parts[i];
		if (!p->repl || !p->log)
			continue;
		sl__repl_role(p);
		/* A leader's end moves with every append: published for the
		 * status and the followers' lag, once a turn. */
		atomic_store_explicit(&p->repl->local_end, sl_log_end(p->log),
		                      memory_order_release);
		/* After this turn's appends: from here on the owner refuses
		 * events when a move is under way (it reads `moving` per event). */
		uint32_t mv = atomic_load_explicit(&p->repl->moving, memory_order_acquire);
		if (mv != atomic_load_explicit(&p->repl->moving_seen, memory_order_relaxed))
			atomic_store_explicit(&p->repl->moving_seen, mv, memory_order_release);
		sl__repl_publish(r, p);
	}
}
