/*
 * Produce frames of a connection: the frame checked once (its events'
 * views filled in the same pass), its cost against the connection's
 * credits, the session's epoch and sequences, then each event sent to its
 * key's partition, here or on its owner, unless the topic's overload
 * policy sheds or refuses it first.
 */
#include <inttypes.h>
#include <stdatomic.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "proto/event.h"
#include "reactor/conn.h"

/* What an event costs in credit bytes (wire.proto Credit). */
/* A resend frame's age in whole seconds, rounded up and saturated, as the
 * partition's owner takes it (topic.h SL_RESEND_MARGIN_MS); 0: not one. */
static inline uint32_t sl__resend_s(const struct sl_produce *pr)
{
	uint64_t s = (pr->resend_age_ms + 999) / 1000;

	return s > UINT16_MAX ? UINT16_MAX : (uint32_t)s;
}

static inline uint32_t sl__cost(const struct sl_event_view *ev)
{
	return (uint32_t)ev->raw_len + SL_CREDIT_EVENT_OVERHEAD;
}

/* Answers one event of a Produce that will not be stored (its `len` bytes
 * of credit come back with the answer). */
static void sl__conn_refuse(struct sl_reactor *r, struct sl_conn *c, uint64_t base_seq,
                            uint32_t index, int32_t code, uint32_t len)
{
	struct sl_xack a = {
	    .base_seq = base_seq,
	    .conn = c->slot,
	    .gen = c->gen,
	    .index = index,
	    .status = code,
	    .len = len,
	};
	sl__conn_ack(r, &a);
}

/*
 * The topic's overload policy for an event bound to a pressured partition
 * (never called for `block`: there, credits stop instead). Returns true
 * when the event was answered here (shed or refused), false to store it.
 */
static bool sl__overload(struct sl_reactor *r, struct sl_conn *c, const struct sl_produce *pr,
                         struct sl_topic *t, struct sl_partition *part, uint32_t index,
                         const struct sl_event_view *ev)
{
	struct sl_xack a = {
	    .base_seq = pr->base_sequence,
	    .conn = c->slot,
	    .gen = c->gen,
	    .index = index,
	    .partition = part->id,
	    .len = sl__cost(ev),
	    .topic = (uint16_t)t->index,
	};
	/* Relaxed: a topic altered at runtime takes effect a frame later. */
	switch (atomic_load_explicit(&t->overload, memory_order_relaxed)) {
	case SL_OVERLOAD_SAMPLE: {
		/* By the event's id, so a retry is judged like its original;
		 * an event without one (the client library always sets one)
		 * by its bytes. */
		uint64_t h = ev->id ? XXH3_64bits(ev->id, SL_EVENT_ID_LEN)
		                    : XXH3_64bits(ev->raw, ev->raw_len);
		if (h < atomic_load_explicit(&t->sample_below, memory_order_relaxed))
			return false;
		atomic_fetch_add_explicit(&part->sampled_out, 1, memory_order_relaxed);
		a.flags = SL_ACK_DROPPED;
		break;
	}
	case SL_OVERLOAD_DROP:
		atomic_fetch_add_explicit(&part->dropped, 1, memory_order_relaxed);
		a.flags = SL_ACK_DROPPED;
		break;
	case SL_OVERLOAD_REJECT:
		atomic_fetch_add_explicit(&part->rejected, 1, memory_order_relaxed);
		a.status = SLUICE__V1__ERROR_CODE__ERR_OVERLOAD;
		break;
	default:
		return false;
	}
	sl__conn_ack(r, &a);
	return true;
}

#define SL_PRODUCE_AHEAD 8u /* as SL_XPREFETCH (xfer.c) */

/* The partition of ev, its id window's slot prefetched if it is here. */
static inline uint32_t sl__produce_part(struct sl_reactor *r, struct sl_topic *t,
                                        const struct sl_event_view *ev)
{
	uint32_t p = sl_part_of_key(&t->part, ev->aggregate, ev->aggregate_len);
	const struct sl_partition *part = &t->parts[p];
	if (part->owner == r->id && part->idw && ev->id)
		sl_idwin_prefetch(part->idw, ev->id);
	return p;
}

/* Sends one event of a Produce to its partition p (here or on its owner). */
static void sl__produce_one(struct sl_reactor *r, struct sl_conn *c, const struct sl_produce *pr,
                            struct sl_topic *t, uint32_t index, const struct sl_event_view *ev,
                            uint32_t p)
{
	struct sl_partition *part = &t->parts[p];
	int ret;

	if (atomic_load_explicit(&t->overload, memory_order_relaxed) != SL_OVERLOAD_BLOCK &&
	    atomic_load_explicit(&part->pressured, memory_order_relaxed) &&
	    sl__overload(r, c, pr, t, part, index, ev))
		return;

	/* Cluster mode: only the partition's leader takes events, and under
	 * acks: all only while enough replicas are in sync. */
	if (SL_UNLIKELY(part->repl) && (ret = sl_prepl_admit(part->repl)) < 0) {
		sl__conn_refuse(r, c, pr->base_sequence, index, (int32_t)sl_proto_wire_error(ret),
		                sl__cost(ev));
		return;
	}
	/* Producer id 0 tells the partition not to deduplicate (and is what
	 * the log stores for such events, so recovery skips them too). */
	uint64_t pid = c->idempotent ? c->producer_id : 0;
	if (part->owner == r->id) {
		struct sl_ack_ref ref = {
		    .base_seq = pr->base_sequence,
		    .conn = c->slot,
		    .gen = c->gen,
		    .index = index,
		    .len = sl__cost(ev),
		    .core = (uint16_t)r->id,
		};
		ret = sl__part_produce(r, part, pid, c->epoch, pr->base_sequence + index,
		                       sl__resend_s(pr), ev->raw, (uint32_t)ev->raw_len, ev->id,
		                       ev->aggregate, ev->aggregate_len, &ref);
	} else {
		struct sl_xev x = {
		    .base_seq = pr->base_sequence,
		    .producer_id = pid,
		    .epoch = c->epoch,
		    .conn = c->slot,
		    .gen = c->gen,
		    .index = index,
		    .topic = (uint16_t)t->index,
		    .resend_s = sl__resend_s(pr),
		    .partition = p,
		    .len = (uint32_t)ev->raw_len,
		    .id_at = sl_xev_id_at(ev->raw, ev->id),
		};
		sl_xev_set_key(&x, ev->raw, ev->aggregate, ev->aggregate_len);
		ret = sl__xsend_event(r, part->owner, &x, ev->raw);
	}
	if (ret < 0)
		sl__conn_refuse(r, c, pr->base_sequence, index, (int32_t)sl_proto_wire_error(ret),
		                sl__cost(ev));
}

void sl__on_produce(struct sl_reactor *r, struct sl_conn *c, const struct sl_frame *f)
{
	struct sl_produce pr;
	struct sl_proto_error perr;
	struct sl_event_iter it;
	struct sl_event_view ev;

	if (c->state != SL_CONN_READY) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_STATE, "Produce before Hello");
		return;
	}
	/* One pass validates the frame and fills the views of its events
	 * (perf showed the second scan of scan-then-iterate as the top
	 * server symbol, 12.6%); frames with more events than the scratch
	 * holds fall back to the iterator. */
	if (sl_produce_scan_views(f->body, f->body_len, &pr, r->views, SL_PRODUCE_VIEWS, &perr) <
	    0) {
		sl__conn_fail(r, c, sl_proto_error_wire_code(&perr), "Produce: %s", perr.reason);
		return;
	}
	/* A topic that does not exist yet, with auto-creation on: the
	 * connection waits for it (admin.c), this frame unhandled so far. */
	if (SL_UNLIKELY(r->env->auto_create) && !c->park_failed &&
	    !sl_topics_find(r->topics, pr.topic, pr.topic_len) &&
	    sl__produce_park(r, c, pr.topic, pr.topic_len) == 0)
		return;
	/* Credits: the frame's events and their cost in credit bytes. */
	uint64_t bytes = (uint64_t)pr.n_events * SL_CREDIT_EVENT_OVERHEAD;
	if (pr.n_events <= SL_PRODUCE_VIEWS) {
		for (uint32_t i = 0; i < pr.n_events; i++)
			bytes += r->views[i].raw_len;
	} else {
		sl_produce_iter_init(&pr, &it);
		while (sl_event_iter_next(&it, &ev) > 0)
			bytes += ev.raw_len;
	}
	/* Beyond the credits: cut off (credit.h, wire.proto). */
	if (!sl_credit_spend(&c->cr, pr.n_events, bytes)) {
		atomic_fetch_add_explicit(&r->m_credit_cut, 1, memory_order_relaxed);
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_CREDIT,
		              "Produce of %u events (%" PRIu64 " bytes) beyond the credits granted "
		              "(%" PRIu64 " events, %" PRId64 " bytes)",
		              pr.n_events, bytes, c->cr.cr_events, c->cr.cr_bytes);
		return;
	}
	if (c->idempotent && !c->resume && !sl_producer_is_current(c->prod, c->epoch)) {
		/* A newer session of this producer id said hello: this one is
		 * a zombie. Fatal for the session, as the contract says. */
		r->stats.fenced++;
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_FENCED,
		              "producer %" PRIu64 " epoch %u is fenced by a newer session",
		              c->producer_id, c->epoch);
		return;
	}
	int32_t refuse = 0;
	if (pr.epoch && pr.epoch != c->epoch)
		refuse = SLUICE__V1__ERROR_CODE__ERR_FENCED;
	else if (c->idempotent && pr.base_sequence > c->expect && c->seq_known)
		/* A gap: sequences [expect, base) were never sent. Accepting
		 * these would let a lost frame go unnoticed. */
		refuse = SLUICE__V1__ERROR_CODE__ERR_SEQUENCE;
	else if (pr.base_sequence + pr.n_events > SL_DEDUP_SEQ_LIMIT ||
	         pr.base_sequence + pr.n_events < pr.base_sequence)
		refuse = SLUICE__V1__ERROR_CODE__ERR_SEQUENCE;
	if (refuse == SLUICE__V1__ERROR_CODE__ERR_SEQUENCE)
		r->stats.seq_refused += pr.n_events;
	/* Sequences of a frame past these checks are used up, even when its
	 * events are refused below (unknown topic, storage): a producer does
	 * not send a refused event again under the same sequence. */
	if (!refuse && !c->resume)
		c->seq_known = true;
	if (!refuse && c->idempotent && pr.base_sequence + pr.n_events > c->expect) {
		c->expect = pr.base_sequence + pr.n_events;
		sl_producer_accepted(c->prod, c->expect);
	}
	struct sl_topic *t = NULL;
	if (!refuse && !(t = sl_topics_find(r->topics, pr.topic, pr.topic_len)))
		refuse = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC;
	else if (!refuse && SL_UNLIKELY(t->internal))
		refuse = SLUICE__V1__ERROR_CODE__ERR_UNKNOWN_TOPIC; /* the server's own */

	c->cr.unacked += pr.n_events;
	r->stats.events_in += pr.n_events;
	if (refuse) {
		/* The frame's bytes come back at once, its events one by one. */
		c->cr.in_bytes -= bytes;
		for (uint32_t i = 0; i < pr.n_events; i++)
			sl__conn_refuse(r, c, pr.base_sequence, i, refuse, 0);
		return;
	}
	if (pr.n_events <= SL_PRODUCE_VIEWS) {
		/* Each event's partition is found SL_PRODUCE_AHEAD events
		 * before it is handled, and when it is owned here, its id
		 * window's slot prefetched (as xfer.c does for the others). */
		uint32_t ps[SL_PRODUCE_AHEAD], n = pr.n_events;
		for (uint32_t k = 0; k < n + SL_PRODUCE_AHEAD; k++) {
			if (k >= SL_PRODUCE_AHEAD) {
				uint32_t i = k - SL_PRODUCE_AHEAD;
				sl__produce_one(r, c, &pr, t, i, &r->views[i],
				                ps[i % SL_PRODUCE_AHEAD]);
			}
			if (k < n)
				ps[k % SL_PRODUCE_AHEAD] = sl__produce_part(r, t, &r->views[k]);
		}
		return;
	}
	sl_produce_iter_init(&pr, &it);
	while (sl_event_iter_next(&it, &ev) > 0)
		sl__produce_one(r, c, &pr, t, it.index - 1, &ev,
		                sl_part_of_key(&t->part, ev.aggregate, ev.aggregate_len));
}
