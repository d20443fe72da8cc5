/*
 * credit: the server's flow control toward producers (wire.proto Credit;
 * engine/README.md "Credits").
 *
 * Every connection past Hello holds two windows: SL_CREDIT_EVENTS events
 * (the window every partition's sequence table covers, so a producer within
 * its credits can retry any event it has not seen answered) and a byte
 * window reserved from the server's pool. An event costs its encoded size
 * plus SL_CREDIT_EVENT_OVERHEAD (proto.h), so the byte windows bound what
 * the events in flight cost the server: their bytes, ack refs, sequence
 * entries, answers. The pool is 3/8 of memory_budget (server.c says why).
 *
 * Per connection (struct sl_credit): cr_* is what the client may still
 * send, unacked/in_bytes what it sent that is unanswered; cr + in <= window,
 * except for the one oversized frame the protocol allows a connection with
 * nothing unanswered (cr_bytes then goes below 0: a debt the next grants
 * pay). Answers free room; the grant at the end of the reactor's turn gives
 * it back, unless a pressured partition of a `block` topic answered some of
 * the events (hold_mask meets the pressure mask): then the connection waits.
 * Windows start at start_bytes and double while the connection spends most
 * of its credits, up to a fair share of the pool among the connections
 * holding one (within [SL_CREDIT_SHARE_MIN, SL_CREDIT_SHARE_MAX]); above
 * the share they shrink as the client spends (a grant is never taken back).
 *
 * Pure logic: no I/O, no frames. The caller encodes the Welcome and Credit
 * frames and keeps the held list.
 *
 * Threads: a struct sl_credit belongs to its connection's reactor and is
 * only touched there. The pool (struct sl_credit_pool) is shared by every
 * reactor through relaxed atomics: its figures are counts, not orderings
 * (nothing is published through them). sl_credit_pool_init on the control
 * thread before the reactors start.
 */
#ifndef SL_CREDIT_H
#define SL_CREDIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/base.h"
#include "topic/topic.h"

#define SL_CREDIT_EVENTS    SL_PRODUCER_WINDOW
#define SL_CREDIT_SHARE_MIN (16u << 10) /* ~100 events of 100 B */
#define SL_CREDIT_SHARE_MAX (8u << 20)

/* The bit of partition (t, p) in hold and pressure masks: a collision
 * only holds a connection back for a partition that is not its own. */
#define SL_PMASK_BIT(t, p) (1ull << (((uint64_t)(t)*31u + (p)) & 63u))

struct sl_credit_pool {
	/* Byte credits not granted to any connection (may dip below 0 while
	 * answers of closed connections are still on their way back). */
	struct {
		_Atomic int64_t value;
	} SL_CACHE_ALIGNED avail;
	struct {
		_Atomic uint32_t value;
	} SL_CACHE_ALIGNED credited; /* connections holding a byte window */
	uint64_t total;              /* the pool's size */
	/* The byte window a connection starts with (64 KiB unless the
	 * options say otherwise). A client can only give back credit by
	 * spending it, so a slow one must not be handed a large window it
	 * sits on while other connections wait for the pool. */
	uint64_t start_bytes;
};

/* One connection's windows. */
struct sl_credit {
	uint64_t unacked;   /* events received and not yet answered */
	uint64_t in_bytes;  /* their credit bytes */
	uint64_t cr_events; /* credits the client holds */
	int64_t cr_bytes;   /* below 0 after a frame beyond them (wire.proto) */
	uint64_t win_bytes; /* byte window, reserved from the pool */
	uint64_t
	    hold_mask; /* SL_PMASK_BIT of block partitions that answered since the last grant */
	bool credited; /* counted in the pool's credited connections */
	bool hungry;   /* spent most of its byte window: may grow */
};

void sl_credit_pool_init(struct sl_credit_pool *p, uint64_t total, uint64_t start_bytes);
/* Takes up to `want` bytes from the pool; returns what it got. */
uint64_t sl_credit_pool_take(struct sl_credit_pool *p, uint64_t want);
void sl_credit_pool_give(struct sl_credit_pool *p, int64_t bytes);
/* The byte window a connection should hold now: a fair share of the pool
 * among the connections holding one, within [SHARE_MIN, SHARE_MAX]. */
uint64_t sl_credit_share(const struct sl_credit_pool *p);
/* Figures for metrics (any thread). */
int64_t sl_credit_pool_avail(const struct sl_credit_pool *p);
uint32_t sl_credit_pool_credited(const struct sl_credit_pool *p);

/*
 * At Welcome: counts the connection among those holding a window and
 * reserves its first byte window (the smaller of start_bytes and the fair
 * share; whatever the pool has). Returns false when the pool gave less
 * than that: the connection waits for a grant (the caller holds it).
 */
bool sl_credit_open(struct sl_credit_pool *p, struct sl_credit *c);
/* At close: what the client still holds comes back now; what it sent
 * comes back with each answer, which finds no connection
 * (sl_credit_pool_give of the answer's cost). The difference may be
 * negative (an oversized event): the pool is exact once every answer is
 * in. */
void sl_credit_close(struct sl_credit_pool *p, struct sl_credit *c);

/*
 * A Produce frame of n events costing `bytes` arrived. Beyond the byte
 * credits only with nothing unanswered (wire.proto): so a batch built for
 * a window that has shrunk since still goes. Returns false (nothing
 * changed) when the frame is beyond the credits: the caller cuts the
 * connection off. The caller counts the frame's events in `unacked` once
 * it takes them (a fenced session's are never counted).
 */
static inline bool sl_credit_spend(struct sl_credit *c, uint32_t n, uint64_t bytes)
{
	if (n > c->cr_events || ((int64_t)bytes > c->cr_bytes && c->unacked != 0))
		return false;
	c->cr_events -= n;
	/* Signed: the debt of a frame beyond the byte credits is paid by the
	 * next grants, so the client's count and ours agree whatever the order
	 * in which its spending and our grants crossed. */
	c->cr_bytes -= (int64_t)bytes;
	c->in_bytes += bytes;
	if (c->cr_bytes < (int64_t)(c->win_bytes / 4))
		c->hungry = true;
	return true;
}

/* One event answered, of `cost` credit bytes; `hold_bit` is its
 * partition's SL_PMASK_BIT when a stored event of a `block` topic, else 0. */
static inline void sl_credit_answered(struct sl_credit *c, uint32_t cost, uint64_t hold_bit)
{
	c->unacked--;
	c->in_bytes -= cost;
	c->hold_mask |= hold_bit;
}

/* Whether the grant must wait for the pressure in `mask` (the union of
 * every reactor's pressure mask) to ease. Forgets the answers' partitions
 * once none of them is pressured. */
static inline bool sl_credit_held(struct sl_credit *c, uint64_t mask)
{
	if (c->hold_mask & mask)
		return true;
	c->hold_mask = 0;
	return false;
}

/* What sl_credit_grant decided. */
struct sl_credit_grant {
	uint64_t events, bytes; /* to put in a Credit frame */
	bool send;              /* worth a frame now */
	bool short_; /* the pool is too short for the smallest window: retry at the tick */
};

/*
 * Sizes the window (grow when hungry, shrink toward the fair share; never
 * below what the client holds or has in flight) and computes the grant of
 * the room the answers freed. Moves bytes between the window and the
 * pool; the credits themselves count only once sl_credit_granted says the
 * frame went out.
 */
void sl_credit_grant(struct sl_credit_pool *p, struct sl_credit *c, struct sl_credit_grant *g);
/* The Credit frame of g was queued. */
static inline void sl_credit_granted(struct sl_credit *c, const struct sl_credit_grant *g)
{
	c->cr_events += g->events;
	c->cr_bytes += (int64_t)g->bytes;
}

#endif
