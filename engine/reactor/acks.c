/*
 * What goes back to a connection at the end of its reactor's turn: the
 * answers to its events, gathered by sl__conn_ack from every partition and
 * encoded into Ack frames, and the credits those answers freed (one Credit
 * frame, credit/credit.h decides), or a place on the held list while the
 * partitions that answered are pressured.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/conn.h"

/* How long a producer refused under the `reject` policy is told to wait:
 * a partition's pressure is re-evaluated at least every tick. */
#define SL_RETRY_AFTER_MS SL_TICK_MS
/* A full log tries its write again every SL_LOG_FULL_RETRY_NS (100 ms);
 * space freed by an operator comes back in seconds, not milliseconds. */
#define SL_DISK_FULL_RETRY_MS 1000

/* ---- acks and output ------------------------------------------------------ */

void sl__conn_ack(struct sl_reactor *r, const struct sl_xack *a)
{
	struct sl_conn *c = a->conn < r->conn_cap ? r->conns[a->conn] : NULL;

	/* ---- pipelines: the ack of a stage's output, not a connection's */
	if (a->conn & SL_CONN_PIPE) {
		if (a->conn & SL_CONN_PROJ)
			sl__proj_emit_ack(r, a);
		else if (a->conn & SL_CONN_COMMIT)
			sl__commit_ack(r, a);
		else
			sl__pipe_ack(r, a);
		return;
	}
	/* ---- */
	if (!c || c->gen != a->gen) {
		/* Its connection is gone (the producer will retry); the bytes
		 * it had in flight go back to the pool (sl__conn_free). */
		sl_credit_pool_give(r->credits, (int64_t)a->len);
		return;
	}
	if (c->n_acks == c->cap_acks) {
		uint32_t cap = c->cap_acks ? c->cap_acks * 2 : 256;
		struct sl_conn_ack *v = realloc(c->acks, (size_t)cap * sizeof(*v));
		if (!v) {
			sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
			return;
		}
		c->acks = v;
		c->cap_acks = cap;
	}
	c->acks[c->n_acks++] = (struct sl_conn_ack){
	    .base_seq = a->base_seq,
	    .offset = a->offset,
	    .index = a->index,
	    .partition = a->partition,
	    .status = a->status,
	    .flags = a->flags,
	    .topic = a->topic,
	};
	sl_credit_answered(&c->cr, a->len,
	                   !a->status && !(a->flags & SL_ACK_DROPPED) &&
	                           r->topics->v[a->topic].overload == SL_OVERLOAD_BLOCK
	                       ? SL_PMASK_BIT(a->topic, a->partition)
	                       : 0);
	r->stats.acks_out++;
	sl__conn_mark_flush(r, c);
}

/* What a refused event's producer is told besides the code: for a storage
 * refusal, the partition's own words (which file, which errno). */
static void sl__reject_text(const struct sl_reactor *r, const struct sl_conn_ack *a,
                            struct sl_ack_reject *rj)
{
	const struct sl_partition *p = NULL;
	const char *text = NULL;

	if (a->topic < r->topics->n && a->partition < r->topics->v[a->topic].n_parts)
		p = &r->topics->v[a->topic].parts[a->partition];
	switch (a->status) {
	case SLUICE__V1__ERROR_CODE__ERR_OVERLOAD:
		rj->retry_after_ms = SL_RETRY_AFTER_MS;
		break;
	case SLUICE__V1__ERROR_CODE__ERR_DISK_FULL:
		rj->retry_after_ms = SL_DISK_FULL_RETRY_MS;
		text = p ? p->full_msg : NULL;
		break;
	case SLUICE__V1__ERROR_CODE__ERR_STORAGE:
		text = p ? p->error : NULL;
		break;
	default:
		break;
	}
	if (text) {
		rj->message = text;
		rj->message_len = strlen(text);
	}
}

/* Largest Ack frame we build at once: bounds the scratch arrays. */
#define SL_ACK_MAX_PARTS 256

/*
 * Encodes pending acks into Ack frames. Consecutive acks of the same Produce
 * go into one frame; within it, events stored at consecutive offsets of one
 * partition become one part (the common case: a batch for one key).
 */
static int sl__conn_encode_acks(struct sl_reactor *r, struct sl_conn *c)
{
	struct sl_ack_part parts[SL_ACK_MAX_PARTS];
	struct sl_ack_reject rejects[SL_ACK_MAX_PARTS];
	uint32_t idx[SL_ACK_MAX_PARTS * 4];
	struct sl_buf *b = &c->out[c->sending ^ 1];
	uint32_t i = 0;

	while (i < c->n_acks) {
		struct sl_ack ack = {.base_sequence = c->acks[i].base_seq};
		uint32_t n_idx = 0;
		size_t np = 0, nr = 0;

		while (i < c->n_acks && c->acks[i].base_seq == ack.base_sequence &&
		       n_idx < SL_ARRAY_LEN(idx)) {
			const struct sl_conn_ack *a = &c->acks[i];
			if (a->status) {
				struct sl_ack_reject *rj = nr ? &rejects[nr - 1] : NULL;
				struct sl_ack_reject one = {.code = (uint32_t)a->status};
				sl__reject_text(r, a, &one);
				/* One Reject per run of the same code and text. */
				if (!rj || rj->code != one.code || rj->message != one.message ||
				    rj->index.v + rj->index.n != &idx[n_idx]) {
					if (nr == SL_ACK_MAX_PARTS)
						break;
					rj = &rejects[nr++];
					*rj = one;
					rj->index.v = &idx[n_idx];
				}
				idx[n_idx++] = a->index;
				rj->index.n++;
			} else {
				struct sl_ack_part *pt = np ? &parts[np - 1] : NULL;
				bool dup = a->flags & SL_ACK_DUP;
				bool unknown = a->flags & SL_ACK_OFFSET_UNKNOWN;
				bool dropped = a->flags & SL_ACK_DROPPED;
				if (!pt || pt->partition != a->partition || pt->duplicate != dup ||
				    pt->offset_unknown != unknown || pt->dropped != dropped ||
				    (!unknown && !dropped &&
				     pt->base_offset + pt->index.n != a->offset) ||
				    pt->index.v + pt->index.n != &idx[n_idx]) {
					if (np == SL_ACK_MAX_PARTS)
						break;
					pt = &parts[np++];
					*pt = (struct sl_ack_part){.partition = a->partition,
					                           .base_offset = a->offset,
					                           .duplicate = dup,
					                           .offset_unknown = unknown,
					                           .dropped = dropped};
					pt->index.v = &idx[n_idx];
				}
				idx[n_idx++] = a->index;
				pt->index.n++;
			}
			i++;
		}
		ack.parts = parts;
		ack.n_parts = np;
		ack.rejects = rejects;
		ack.n_rejects = nr;
		size_t need = sl_ack_frame_size(&ack);
		if (!need || sl__buf_reserve(b, need) < 0)
			return -ENOMEM;
		int n = sl_ack_encode(b->p + b->len, b->cap - b->len, &ack);
		if (n < 0)
			return n;
		b->len += (uint32_t)n;
	}
	c->n_acks = 0;
	return 0;
}

uint64_t sl__pressure_mask(const struct sl_reactor *r)
{
	uint64_t m = 0;
	for (uint32_t i = 0; i < r->n; i++)
		m |= atomic_load_explicit(&r->env->peers[i]->pmask.value, memory_order_relaxed);
	return m;
}

/*
 * Grants a connection the room its answers freed in its windows, in one
 * Credit frame, unless a pressured partition of a `block` topic answered
 * some of them: then it waits on the held list (sl__conns_unhold).
 */
static void sl__conn_credit(struct sl_reactor *r, struct sl_conn *c)
{
	struct sl_credit_grant g;

	if (c->state != SL_CONN_READY || !c->cr.credited)
		return;
	if (c->cr.hold_mask) {
		uint64_t m = sl__pressure_mask(r);
		if (sl_credit_held(&c->cr, m)) {
			sl__conn_hold(r, c);
			r->held_seen = m;
			return;
		}
	}
	sl_credit_grant(r->credits, &c->cr, &g);
	/* The pool ran short: try again at the next tick. */
	if (g.short_)
		sl__conn_hold(r, c);
	else
		sl__conn_unlink_held(r, c);
	if (!g.send)
		return;
	Sluice__V1__Credit cr = SLUICE__V1__CREDIT__INIT;
	cr.events = (uint32_t)g.events;
	cr.bytes = g.bytes;
	if (sl__conn_put_msg(c, SLUICE__V1__FRAME_TYPE__FRAME_CREDIT, &cr.base) < 0) {
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "out of memory");
		return;
	}
	sl_credit_granted(&c->cr, &g);
	atomic_fetch_add_explicit(&r->m_credit_events, g.events, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->m_credit_frames, 1, memory_order_relaxed);
}

/* Re-examines the held connections when the pressure they wait on may have
 * eased: every tick, and whenever the mask changed. */
void sl__conns_unhold(struct sl_reactor *r, bool tick)
{
	if (!r->held_head)
		return;
	if (!tick && sl__pressure_mask(r) == r->held_seen)
		return;
	for (struct sl_conn *c = r->held_head; c; c = c->held_next)
		sl__conn_mark_flush(r, c);
}

void sl__conn_answer(struct sl_reactor *r, struct sl_conn *c)
{
	if (c->n_acks && sl__conn_encode_acks(r, c) < 0)
		sl__conn_fail(r, c, SLUICE__V1__ERROR_CODE__ERR_INTERNAL, "cannot encode acks");
	sl__conn_credit(r, c);
}
