/*
 * Cross-core blocks of one reactor (xfer.h says what a block is and who
 * owns it): its pool, filling and pushing blocks to peers through the SPSC
 * rings (with a per-target backlog when a ring is full), and consuming the
 * blocks peers pushed to it. The per-event fill (sl__xsend_event,
 * sl__xsend_ack) is inline in reactor_impl.h; a block's rare events
 * (taken, pushed) are here.
 *
 * Threads: the reactor's own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reactor/reactor_impl.h"
#include "ring/ring.h"

int sl__xpool_init(struct sl_reactor *r)
{
	/* A pool of blocks, allocated once: the bound on what this reactor can
	 * have in flight to its peers. */
	r->pool_size = r->n > 1 ? SL_POOL_BLOCKS : 0;
	for (uint32_t i = 0; i < r->pool_size; i++) {
		struct sl_xblock *b = malloc(sizeof(*b) + SL_XBLOCK_DATA);
		if (!b)
			return -ENOMEM;
		b->overflow = 0;
		b->cap = SL_XBLOCK_DATA;
		b->next_free = r->pool_free;
		r->pool_free = b;
	}
	return 0;
}

void sl__xpool_destroy(struct sl_reactor *r)
{
	while (r->pool_free) {
		struct sl_xblock *b = r->pool_free;
		r->pool_free = b->next_free;
		free(b);
	}
	for (uint32_t t = 0; r->cur_ev && t < r->n; t++) {
		free(r->cur_ev[t]);
		free(r->cur_ack[t]);
		while (r->backlog_head && r->backlog_head[t]) {
			struct sl_xblock *b = r->backlog_head[t];
			r->backlog_head[t] = b->next_free;
			free(b);
		}
	}
}

struct sl_xblock *sl__xblock_get(struct sl_reactor *r, uint32_t need)
{
	struct sl_xblock *b;

	if (SL_LIKELY(need <= SL_XBLOCK_DATA && r->pool_free)) {
		b = r->pool_free;
		r->pool_free = b->next_free;
	} else {
		/* Past the pool (or an event bigger than a pool block): allocate,
		 * and stop reading until blocks come home, so this stays a few
		 * blocks at most (one receive buffer's worth of events). */
		uint32_t cap = need > SL_XBLOCK_DATA ? need : SL_XBLOCK_DATA;
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->overflow = 1;
		b->cap = cap;
		r->throttled = true;
	}
	b->home = (uint16_t)r->id;
	b->n = 0;
	b->used = 0;
	r->blocks_out++;
	return b;
}

static void sl__xblock_home(struct sl_reactor *r, struct sl_xblock *b)
{
	r->blocks_out--;
	if (b->overflow) {
		free(b);
		return;
	}
	b->next_free = r->pool_free;
	r->pool_free = b;
}

static struct sl_ring *sl__ring_to(struct sl_reactor *r, uint32_t to)
{
	return r->env->rings[r->id * r->n + to];
}

static struct sl_ring *sl__ring_from(struct sl_reactor *r, uint32_t from)
{
	return r->env->rings[from * r->n + r->id];
}

/* Pushes a block to another reactor. When the ring is full (a burst beyond
 * what the pools normally keep in flight) the block waits on a per-target
 * backlog, in order, and goes at the next turn: nothing is lost or reordered. */
void sl__xpush(struct sl_reactor *r, uint32_t to, struct sl_xblock *b)
{
	b->next_free = NULL;
	if (!r->backlog_head[to] && sl_ring_push_spsc(sl__ring_to(r, to), b)) {
		r->wake_mask[to] = 1;
		r->stats.blocks_sent++;
		return;
	}
	if (r->backlog_head[to])
		r->backlog_tail[to]->next_free = b;
	else
		r->backlog_head[to] = b;
	r->backlog_tail[to] = b;
}

static void sl__xbacklog(struct sl_reactor *r)
{
	for (uint32_t t = 0; t < r->n; t++) {
		struct sl_xblock *b;
		while ((b = r->backlog_head[t]) && sl_ring_push_spsc(sl__ring_to(r, t), b)) {
			r->backlog_head[t] = b->next_free;
			r->wake_mask[t] = 1;
			r->stats.blocks_sent++;
		}
	}
}

void sl__xflush(struct sl_reactor *r)
{
	sl__xbacklog(r);
	for (uint32_t t = 0; t < r->n; t++) {
		if (r->cur_ev[t] && r->cur_ev[t]->n) {
			sl__xpush(r, t, r->cur_ev[t]);
			r->cur_ev[t] = NULL;
		}
		if (r->cur_ack[t] && r->cur_ack[t]->n) {
			sl__xpush(r, t, r->cur_ack[t]);
			r->cur_ack[t] = NULL;
		}
	}
}

/* The id of event `ev` (its bytes in the block) of descriptor e, or NULL. */
static const uint8_t *sl_xev_id(const struct sl_xev *e, const uint8_t *ev)
{
	if (SL_LIKELY(e->id_at))
		return ev + e->id_at - 1;
	struct sl_event_view v;
	/* Rare: an id further than 64 KiB into its event, or none. */
	return sl_event_scan(ev, e->len, &v) == 0 ? v.id : NULL;
}

/* The event's key as the sender's scan found it (sl_xev_set_key). */
static inline const char *sl__xev_key(const struct sl_xev *e, const uint8_t *ev, size_t *len)
{
	if (SL_LIKELY(e->key_len != SL_XEV_KEY_SCAN)) {
		*len = e->key_len;
		return e->key_at ? (const char *)ev + e->key_at - 1 : "";
	}
	struct sl_event_view v;
	/* Rare: a key longer than 64 KiB, or further into its event. */
	if (sl_event_scan(ev, e->len, &v) < 0) {
		*len = 0;
		return "";
	}
	*len = v.aggregate_len;
	return v.aggregate;
}

/* How many events ahead of the one handled the id window's slot is
 * prefetched: enough for the miss (~0.3 us on this VM, bench_idwin) to
 * land while the events between are handled (~0.5 us each). */
#define SL_XPREFETCH 8u

/* Starts loading what the id window of e's partition will probe for it. */
static inline void sl__xprefetch(struct sl_reactor *r, const struct sl_xblock *b,
                                 const struct sl_xev *e)
{
	const struct sl_partition *p = &r->topics->v[e->topic].parts[e->partition];
	if (p->idw && SL_LIKELY(e->id_at))
		sl_idwin_prefetch(p->idw, b->data + e->off + e->id_at - 1);
}

/* Consumes a block that arrived from reactor `from`. */
static void sl__xreceive(struct sl_reactor *r, uint32_t from, struct sl_xblock *b)
{
	switch (b->kind) {
	case SL_X_RETURN:
		sl__xblock_home(r, b);
		return;
	case SL_X_EVENTS:
		for (uint32_t i = 0; i < b->n && i < SL_XPREFETCH; i++)
			sl__xprefetch(r, b, &b->ev[i]);
		for (uint32_t i = 0; i < b->n; i++) {
			const struct sl_xev *e = &b->ev[i];
			if (i + SL_XPREFETCH < b->n)
				sl__xprefetch(r, b, &b->ev[i + SL_XPREFETCH]);
			struct sl_partition *p = &r->topics->v[e->topic].parts[e->partition];
			struct sl_ack_ref ref = {
			    .base_seq = e->base_seq,
			    .conn = e->conn,
			    .gen = e->gen,
			    .index = e->index,
			    .len = e->len + SL_CREDIT_EVENT_OVERHEAD,
			    .core = (uint16_t)from,
			};
			const uint8_t *ev = b->data + e->off, *id = sl_xev_id(e, ev);
			size_t klen;
			const char *key = sl__xev_key(e, ev, &klen);
			int ret =
			    sl__part_produce(r, p, e->producer_id, e->epoch, e->base_seq + e->index,
			                     e->resend_s, ev, e->len, id, key, klen, &ref);
			if (ret < 0) {
				struct sl_xack a = {
				    .base_seq = e->base_seq,
				    .conn = e->conn,
				    .gen = e->gen,
				    .index = e->index,
				    .partition = e->partition,
				    .status = (int32_t)sl_proto_wire_error(ret),
				    .len = e->len + SL_CREDIT_EVENT_OVERHEAD,
				    .topic = e->topic,
				};
				sl__route_ack(r, from, &a);
			}
		}
		break;
	case SL_X_ACKS:
		for (uint32_t i = 0; i < b->n; i++) {
			r->remote_unacked--;
			sl__conn_ack(r, &b->ack[i]);
		}
		break;
	default:
		fprintf(stderr, "sluiced: reactor %u: bad block kind %u\n", r->id, b->kind);
		abort();
	}
	b->kind = SL_X_RETURN;
	sl__xpush(r, b->home, b);
}

void sl__xdrain(struct sl_reactor *r)
{
	void *items[64];

	for (uint32_t f = 0; f < r->n; f++) {
		if (f == r->id)
			continue;
		struct sl_ring *ring = sl__ring_from(r, f);
		unsigned got;
		/* Bounded: a turn takes at most what is there now. */
		while ((got = sl_ring_pop_batch_spsc(ring, items, SL_ARRAY_LEN(items))) > 0) {
			for (unsigned i = 0; i < got; i++)
				sl__xreceive(r, f, items[i]);
			if (got < SL_ARRAY_LEN(items))
				break;
		}
	}
}

bool sl__xquiet(struct sl_reactor *r)
{
	for (uint32_t t = 0; t < r->n; t++)
		if (r->backlog_head[t] || (t != r->id && sl_ring_size(sl__ring_from(r, t))))
			return false;
	return true;
}
