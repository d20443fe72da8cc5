/*
 * The partitions a reactor owns: events of servers' own producers
 * admitted (pipelines, projections' emits, group commits' records), group
 * commits started and completed (own fdatasync or the reactor's journal),
 * acks released at durability, a failed log's waiters answered, pressure,
 * what each partition publishes for readers, and retention's pass. Split
 * from reactor.c (the loop calls these). Threads: the owning reactor's.
 */
#include "reactor/reactor_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "read/read.h"

/* ---- partitions --------------------------------------------------------- */

int sl__internal_produce(struct sl_reactor *r, uint32_t topic, uint64_t pid, uint32_t conn,
                         const uint8_t *ev, uint32_t len, uint64_t seq)
{
	struct sl_topic *t = &r->topics->v[topic];
	struct sl_event_view v;
	int ret = sl_event_scan(ev, len, &v);

	if (ret < 0)
		return ret;
	uint32_t q = sl_part_of_key(&t->part, v.aggregate, v.aggregate_len);
	return sl__internal_produce_to(r, topic, q, pid, conn, 0, ev, len, seq, &v);
}

int sl__internal_produce_to(struct sl_reactor *r, uint32_t topic, uint32_t q, uint64_t pid,
                            uint32_t conn, uint32_t gen, const uint8_t *ev, uint32_t len,
                            uint64_t seq, const struct sl_event_view *v)
{
	struct sl_partition *part = &r->topics->v[topic].parts[q];
	if (part->owner == r->id) {
		struct sl_ack_ref ref = {
		    .base_seq = seq, .conn = conn, .gen = gen, .core = (uint16_t)r->id};
		return sl__part_produce(r, part, pid, 1, seq, 0, ev, len, v->id, v->aggregate,
		                        v->aggregate_len, &ref);
	}
	struct sl_xev x = {
	    .base_seq = seq,
	    .producer_id = pid,
	    .epoch = 1,
	    .conn = conn,
	    .gen = gen,
	    .topic = (uint16_t)topic,
	    .partition = q,
	    .len = len,
	    .id_at = sl_xev_id_at(ev, v->id),
	};
	sl_xev_set_key(&x, ev, v->aggregate, v->aggregate_len);
	return sl__xsend_event(r, part->owner, &x, ev);
}

/* Sends the acks of every event of `p` that is now durable. */
void sl__part_release(struct sl_reactor *r, struct sl_partition *p)
{
	struct sl_ack_ref ref;
	uint64_t durable = sl_partition_ackable(p);
	while (sl_partition_pop_durable(p, durable, &ref))
		sl__ref_answer(r, p, &ref, 0);
}

/* The partition's log failed: nothing it holds unacked will ever be acked.
 * Every waiting producer hears ERR_STORAGE (and may retry elsewhere); new
 * appends are refused. */
void sl__part_failed(struct sl_reactor *r, struct sl_partition *p)
{
	struct sl_ack_ref ref;
	if (!p->error) {
		p->error = strdup(sl_log_error(p->log));
		fprintf(stderr, "sluiced: topic %s partition %u stopped: %s\n", p->topic->name,
		        p->id, sl_log_error(p->log));
	}
	while (sl_partition_pop_any(p, &ref))
		sl__ref_answer(r, p, &ref, SLUICE__V1__ERROR_CODE__ERR_STORAGE);
}

/* Says on stderr when the partition's device turns full (new events are
 * refused with ERR_DISK_FULL, the log retries its write) and when it
 * serves again. */
static void sl__part_full_note(struct sl_partition *p)
{
	bool full = sl_log_full(p->log);
	if (full == p->full)
		return;
	p->full = full;
	if (full)
		fprintf(stderr, "sluiced: topic %s partition %u: %s\n", p->topic->name, p->id,
		        sl_log_error(p->log));
	else
		fprintf(stderr, "sluiced: topic %s partition %u: space again, serving\n",
		        p->topic->name, p->id);
}

/*
 * Bounds of the partitions owned here, re-evaluated every turn: events
 * waiting for durability (the disk is behind) and the slowest follower's
 * lag (a projection or sink is behind). Over a bound the partition is
 * pressured; it flows again below half of it (hysteresis: no flapping at
 * the edge). Under `block`, pressure stops the credits of the connections
 * it answered; other policies shed at the connections' reactors.
 */
void sl__parts_pressure(struct sl_reactor *r)
{
	const struct sl_reactor_limits *o = &r->lim;
	uint64_t mask = 0, now = 0;

	for (uint32_t i = 0; i < r->n_parts; i++) {
		struct sl_partition *p = r->parts[i];
		uint64_t waiting = sl_partition_waiting(p);
		uint64_t durable = atomic_load_explicit(&p->durable_pub, memory_order_relaxed);
		uint64_t lag = 0;
		for (uint32_t f = 0; f < p->n_followers; f++) {
			uint64_t next = atomic_load_explicit(p->followers[f], memory_order_acquire);
			if (next < durable && durable - next > lag)
				lag = durable - next;
		}
		atomic_store_explicit(&p->waiting_pub, waiting, memory_order_relaxed);
		atomic_store_explicit(&p->follower_lag_pub, lag, memory_order_relaxed);
		uint32_t was = atomic_load_explicit(&p->pressured, memory_order_relaxed), now_p = 0;
		if (waiting > o->max_waiting_events ||
		    ((was & SL_PRESSURE_DURABLE) && waiting > o->max_waiting_events / 2))
			now_p |= SL_PRESSURE_DURABLE;
		/* A follower with followers: what it must still read includes
		 * what waits for durability. Counting only the durable lag let
		 * producers inside the server (pipeline stages) emit a whole
		 * burst before the first sync of a busy reactor made any of it
		 * count, once syncs queue (SL_SYNCS_PER_REACTOR). */
		uint64_t behind = p->n_followers ? lag + waiting : 0;
		if (behind > o->max_lag_events ||
		    ((was & SL_PRESSURE_FOLLOW) && behind > o->max_lag_events / 2))
			now_p |= SL_PRESSURE_FOLLOW;
		if (now_p != was) {
			if (!now)
				now = sl_now_ns();
			if (!was)
				p->pressured_since = now;
			else if (!now_p)
				atomic_fetch_add_explicit(&p->pressured_ns,
				                          now - p->pressured_since,
				                          memory_order_relaxed);
			atomic_store_explicit(&p->pressured, now_p, memory_order_relaxed);
		}
		if (now_p && atomic_load_explicit(&p->topic->overload, memory_order_relaxed) ==
		                 SL_OVERLOAD_BLOCK)
			mask |= SL_PMASK_BIT(p->topic->index, p->id);
	}
	if (mask != atomic_load_explicit(&r->pmask.value, memory_order_relaxed))
		atomic_store_explicit(&r->pmask.value, mask, memory_order_relaxed);
}

/* The log moved its durable end: publish it and send the acks it covers. */
void sl__part_durable(struct sl_reactor *r, struct sl_partition *p)
{
	if (p->repl) {
		sl__repl_durable(r, p); /* the HW decides what is acked and read */
		return;
	}
	/* Readers may now read up to here: the bytes are written (and synced
	 * under fsync) before this store. */
	atomic_store_explicit(&p->durable_pub, sl_log_durable(p->log), memory_order_release);
	sl__part_release(r, p);
}

/*
 * fdatasyncs a reactor keeps in flight at once, over all its partitions.
 * One: the others wait (keeping their place, first come first served) and
 * meanwhile gather more events, so each sync carries more and there are
 * fewer of them. Every fdatasync ends in a cache flush of the whole device,
 * which the virtio disk here runs one at a time; eight partitions syncing in
 * parallel only queued eight flushes. Measured (2026-11-25, 8 partitions, 2
 * connections, fsync, `sluice bench --events 4000000`): 1.60-1.77M events/s
 * with 1 against 1.06-1.33M with no cap (2: 1.43-1.44M, 4: 1.37-1.41M), and
 * at 500k events/s p50 2.4-3.1 ms / p99 11.7-14.2 ms against 3.7-3.8 /
 * 18.4-20.4 ms. Acks still wait for their own partition's fdatasync.
 */
#define SL_SYNCS_PER_REACTOR 1u

/* The logs' background writeback kicks complete with SL_LOG_UD_IGNORE, which
 * must decode as SL_OP_NONE here so that sl__on_cqe drops them. */
_Static_assert(SL_UD(SL_OP_NONE, 0) == SL_LOG_UD_IGNORE, "log writeback CQEs must be ignored");

/*
 * Starts the group commit of every partition that appended this turn. While
 * a partition's sync is in flight its appends gather in the log's buffer;
 * the completion (sl__on_log_cqe) puts it back on this list. A partition
 * whose flush would sync while SL_SYNCS_PER_REACTOR are in flight stays on
 * the list, in order, for the turn a sync completes in.
 */
void sl__part_flush(struct sl_reactor *r)
{
	uint32_t kept = 0;
	uint64_t now = 0;
	bool jbusy = r->journal && sl_journal_inflight(r->journal);
	for (uint32_t i = 0; i < r->n_dirty_parts; i++) {
		struct sl_partition *p = r->dirty_parts[i];
		/* A journaled partition hands its group to the journal once
		 * the frame in flight is done: one frame carries everyone. */
		if (p->log && !p->error &&
		    (sl_log_journal(p->log) ? jbusy : r->syncs_inflight >= SL_SYNCS_PER_REACTOR) &&
		    sl_log_flush_syncs(p->log, now ? now : (now = sl_now_ns()))) {
			r->dirty_parts[kept++] = p;
			continue;
		}
		p->dirty = false;
		if (!p->log || p->error)
			continue;
		int ret = sl_log_flush(p->log, &r->uring, SL_UD(SL_OP_LOG, p->rslot));
		if (SL_UNLIKELY(p->full != sl_log_full(p->log)))
			sl__part_full_note(p);
		if (ret < 0)
			sl__part_failed(r, p);
		else if (ret == 1)
			r->syncs_inflight++;
		else if (ret == 2)
			sl__part_durable(r, p); /* written, and the policy asks no more */
	}
	r->n_dirty_parts = kept;
	if (r->journal && !jbusy)
		(void)sl_journal_commit(r->journal, &r->uring, SL_UD(SL_OP_JOURNAL, 0),
		                        sl__journal_cb, r);
}

/* The log's counters, for /metrics (relaxed: a reader wants a recent value,
 * not an ordering). After every sync and at every tick. */
/* The sequence table's figures for /metrics (tick). */
void sl__part_dedup_pub(struct sl_partition *p)
{
	atomic_store_explicit(&p->dedup_bytes_pub, sl_dedup_memory(p->dd), memory_order_relaxed);
	atomic_store_explicit(&p->dedup_producers_pub, sl_dedup_count(p->dd), memory_order_relaxed);
	atomic_store_explicit(&p->dedup_forgotten_pub, sl_dedup_forgotten(p->dd),
	                      memory_order_relaxed);
	atomic_store_explicit(&p->dedup_expired_refused_pub, p->dd_expired_refused,
	                      memory_order_relaxed);
	atomic_store_explicit(&p->dedup_untracked_pub, p->dd_untracked, memory_order_relaxed);
	atomic_store_explicit(&p->dedup_untracked_stored_pub, p->dd_untracked_stored,
	                      memory_order_relaxed);
}

void sl__part_log_pub(struct sl_partition *p)
{
	struct sl_log_stats st;
	if (!p->log)
		return;
	sl_log_get_stats(p->log, &st);
	atomic_store_explicit(&p->log_bytes_pub, st.bytes_written, memory_order_relaxed);
	atomic_store_explicit(&p->log_sync_ns_pub, st.sync_ns, memory_order_relaxed);
	atomic_store_explicit(&p->log_rolls_pub, st.rolls, memory_order_relaxed);
	atomic_store_explicit(&p->log_roll_ns_pub, st.roll_ns, memory_order_relaxed);
	atomic_store_explicit(&p->log_commit_ns_pub, st.commit_ns, memory_order_relaxed);
	for (uint32_t k = 0; k < SL_LOG_SYNC_BUCKETS; k++) {
		atomic_store_explicit(&p->log_sync_hist_pub[k], st.sync_hist[k],
		                      memory_order_relaxed);
		atomic_store_explicit(&p->log_commit_hist_pub[k], st.commit_hist[k],
		                      memory_order_relaxed);
	}
}

/* What the journal reports of one of its partitions: moved (acks, and
 * what readers may read), or failed. */
void sl__journal_cb(void *arg, void *log_arg, int status)
{
	struct sl_reactor *r = arg;
	struct sl_partition *p = log_arg;
	if (status < 0) {
		sl__part_failed(r, p);
		return;
	}
	if (SL_UNLIKELY(p->full != sl_log_full(p->log)))
		sl__part_full_note(p);
	if (status == 0)
		return;
	sl__part_log_pub(p);
	sl__part_durable(r, p);
	if (sl_log_flush_syncs(p->log, 0) && !p->dirty) {
		p->dirty = true;
		r->dirty_parts[r->n_dirty_parts++] = p;
	}
}

void sl__on_journal_cqe(struct sl_reactor *r, int res)
{
	(void)sl_journal_on_cqe(r->journal, res, sl__journal_cb, r);
}

void sl__on_log_cqe(struct sl_reactor *r, uint32_t slot, int res)
{
	struct sl_partition *p = r->parts[slot];
	bool syncing = sl_log_io_pending(p->log);
	int ret = sl_log_on_cqe(p->log, res);
	if (syncing && !sl_log_io_pending(p->log))
		r->syncs_inflight--;
	sl__part_log_pub(p);
	if (ret < 0) {
		sl__part_failed(r, p);
		return;
	}
	if (ret == 1)
		sl__part_durable(r, p);
	if (!sl_log_io_pending(p->log) && sl_log_busy(p->log) && !p->dirty) {
		p->dirty = true;
		r->dirty_parts[r->n_dirty_parts++] = p;
	}
}

/*
 * Retention of one partition owned here (log.h, sl_log_retain): the topic's
 * limits as they are now (an alter stores them), held at the lowest offset
 * any follower (projection, sink, pipeline stage) has not read, and at what
 * readers may see (durable_pub: the HW when replicated), so that nothing is
 * deleted before every follower and every replica could have it.
 */
void sl__part_retain(struct sl_partition *p, int64_t wall_ms)
{
	struct sl_log_retention rt = {
	    .bytes = atomic_load_explicit(&p->topic->retention_bytes, memory_order_relaxed),
	    .age_ms = atomic_load_explicit(&p->topic->retention_age_ms, memory_order_relaxed),
	    .now_ms = wall_ms,
	    .hold = atomic_load_explicit(&p->durable_pub, memory_order_relaxed),
	    .start_pub = &p->start_pub,
	};
	const char *by = NULL;
	for (uint32_t f = 0; f < p->n_followers; f++) {
		uint64_t next = atomic_load_explicit(p->followers[f], memory_order_acquire);
		if (next < rt.hold) {
			rt.hold = next;
			by = p->follower_names[f];
		}
	}
	struct sl_log_retained out;
	int ret = sl_log_retain(p->log, &rt, &out);
	if (ret > 0) {
		fprintf(stderr,
		        "sluiced: topic %s partition %u: retention deleted %u segment%s (%" PRIu64
		        " bytes, by %s); the log starts at %" PRIu64 "\n",
		        p->topic->name, p->id, out.segments, out.segments == 1 ? "" : "s",
		        out.bytes, out.by_age ? "age" : "size", out.start);
		atomic_fetch_add_explicit(&p->retained_segments_pub, out.segments,
		                          memory_order_relaxed);
		atomic_fetch_add_explicit(&p->retained_bytes_pub, out.bytes, memory_order_relaxed);
	}
	const char *was = atomic_load_explicit(&p->held_by_pub, memory_order_relaxed);
	const char *now = out.held ? (by ? by : "replication") : NULL;
	if (now != was) {
		atomic_store_explicit(&p->held_by_pub, now, memory_order_relaxed);
		if (now)
			fprintf(stderr,
			        "sluiced: topic %s partition %u: retention held at offset %" PRIu64
			        " by %s\n",
			        p->topic->name, p->id, rt.hold, now);
	}
}
