/*
 * Credit windows and the pool they are reserved from (credit.h).
 */
#include "credit/credit.h"

void sl_credit_pool_init(struct sl_credit_pool *p, uint64_t total, uint64_t start_bytes)
{
	p->total = total;
	p->start_bytes = start_bytes;
	atomic_store_explicit(&p->avail.value, (int64_t)total, memory_order_relaxed);
	atomic_store_explicit(&p->credited.value, 0, memory_order_relaxed);
}

uint64_t sl_credit_pool_take(struct sl_credit_pool *p, uint64_t want)
{
	int64_t avail = atomic_load_explicit(&p->avail.value, memory_order_relaxed);
	for (;;) {
		if (avail <= 0)
			return 0;
		uint64_t got = (uint64_t)avail < want ? (uint64_t)avail : want;
		if (atomic_compare_exchange_weak_explicit(
		        &p->avail.value, &avail, avail - (int64_t)got, memory_order_relaxed,
		        memory_order_relaxed))
			return got;
	}
}

void sl_credit_pool_give(struct sl_credit_pool *p, int64_t bytes)
{
	atomic_fetch_add_explicit(&p->avail.value, bytes, memory_order_relaxed);
}

uint64_t sl_credit_share(const struct sl_credit_pool *p)
{
	uint32_t n = atomic_load_explicit(&p->credited.value, memory_order_relaxed);
	uint64_t t = p->total / (n ? n : 1);
	if (t < SL_CREDIT_SHARE_MIN)
		t = SL_CREDIT_SHARE_MIN;
	if (t > SL_CREDIT_SHARE_MAX)
		t = SL_CREDIT_SHARE_MAX;
	return t;
}

int64_t sl_credit_pool_avail(const struct sl_credit_pool *p)
{
	return atomic_load_explicit(&p->avail.value, memory_order_relaxed);
}

uint32_t sl_credit_pool_credited(const struct sl_credit_pool *p)
{
	return atomic_load_explicit(&p->credited.value, memory_order_relaxed);
}

bool sl_credit_open(struct sl_credit_pool *p, struct sl_credit *c)
{
	/* Counted first, so the share below already divides by this one. */
	atomic_fetch_add_explicit(&p->credited.value, 1, memory_order_relaxed);
	c->credited = true;
	uint64_t share = sl_credit_share(p);
	if (share > p->start_bytes)
		share = p->start_bytes;
	uint64_t got = sl_credit_pool_take(p, share);
	c->win_bytes = got;
	c->cr_events = SL_CREDIT_EVENTS;
	c->cr_bytes = (int64_t)c->win_bytes;
	return got >= share;
}

void sl_credit_close(struct sl_credit_pool *p, struct sl_credit *c)
{
	if (!c->credited)
		return;
	sl_credit_pool_give(p, (int64_t)c->win_bytes - (int64_t)c->in_bytes);
	atomic_fetch_sub_explicit(&p->credited.value, 1, memory_order_relaxed);
	c->credited = false;
}

void sl_credit_grant(struct sl_credit_pool *p, struct sl_credit *c, struct sl_credit_grant *g)
{
	/* The window a connection should have: doubled when it spent most
	 * of it, within the fair share of the pool. Shrink to it (never below
	 * what the client holds or has in flight: granted credit is never
	 * taken back) and give the rest to the pool, or grow to it as the
	 * pool allows. */
	uint64_t share = sl_credit_share(p), target = c->win_bytes;
	if (c->hungry) {
		target = c->win_bytes * 2;
		c->hungry = false;
	}
	if (target < SL_CREDIT_SHARE_MIN)
		target = SL_CREDIT_SHARE_MIN;
	if (target > share)
		target = share;
	/* Below 0 while the client owes for a frame beyond its window that
	 * has been answered: the grant below pays the debt off too. */
	int64_t used_s = c->cr_bytes + (int64_t)c->in_bytes;
	uint64_t used = used_s > 0 ? (uint64_t)used_s : 0;
	g->short_ = false;
	if (c->win_bytes > target && c->win_bytes > used) {
		uint64_t give = c->win_bytes - (used > target ? used : target);
		sl_credit_pool_give(p, (int64_t)give);
		c->win_bytes -= give;
	} else if (c->win_bytes < target) {
		c->win_bytes += sl_credit_pool_take(p, target - c->win_bytes);
		/* Below the smallest window the connection may be stuck: try
		 * again at the next tick. Larger ones grow at their next answers. */
		g->short_ = c->win_bytes < SL_CREDIT_SHARE_MIN;
	}
	g->events = SL_CREDIT_EVENTS - (c->cr_events + c->unacked);
	g->bytes = (int64_t)c->win_bytes > used_s ? (uint64_t)((int64_t)c->win_bytes - used_s) : 0;
	/* One Credit per turn at most, and only for a worthwhile amount (an
	 * eighth of a window) or when everything is answered: a trickle of
	 * tiny grants would cost more frames than it saves waiting. */
	bool idle = c->unacked == 0;
	g->send = g->events >= SL_CREDIT_EVENTS / 8 || g->bytes >= c->win_bytes / 8 ||
	          (idle && (g->events || g->bytes));
}
