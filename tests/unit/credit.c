/*
 * credit: the pool's accounting (take never goes below 0, give returns
 * exactly), the fair share and its bounds, a window's life (open, spend,
 * answers, grants, close) leaving the pool exact, the one frame allowed
 * beyond the byte credits and the debt it leaves, windows doubling for a
 * hungry connection and shrinking to the share, the grant threshold, and
 * the hold check against a pressure mask.
 */
#include <criterion/criterion.h>

#include "credit/credit.h"

static struct sl_credit_pool pool; /* static storage: SL_CACHELINE-aligned */

Test(credit, pool_take_and_give_are_exact)
{
	sl_credit_pool_init(&pool, 1000, 64u << 10);
	cr_assert_eq(sl_credit_pool_take(&pool, 300), 300);
	cr_assert_eq(sl_credit_pool_take(&pool, 800), 700, "only what is left");
	cr_assert_eq(sl_credit_pool_take(&pool, 1), 0);
	cr_assert_eq(sl_credit_pool_avail(&pool), 0);
	/* Answers of closed connections may come back before their window's
	 * rest: the pool may go below 0 and then back up. */
	sl_credit_pool_give(&pool, -50);
	cr_assert_eq(sl_credit_pool_take(&pool, 10), 0, "nothing to take below 0");
	sl_credit_pool_give(&pool, 1050);
	cr_assert_eq(sl_credit_pool_avail(&pool), 1000);
}

Test(credit, share_is_bounded)
{
	struct sl_credit c[3] = {0};
	sl_credit_pool_init(&pool, 64ull << 20, 64u << 10);
	cr_assert_eq(sl_credit_share(&pool), SL_CREDIT_SHARE_MAX, "one connection: the cap");
	for (int i = 0; i < 3; i++)
		sl_credit_open(&pool, &c[i]);
	cr_assert_eq(sl_credit_pool_credited(&pool), 3);
	cr_assert_eq(sl_credit_share(&pool), SL_CREDIT_SHARE_MAX, "64 MiB / 3 is above the cap");

	sl_credit_pool_init(&pool, 1u << 20, 64u << 10);
	for (int i = 0; i < 3; i++)
		c[i] = (struct sl_credit){0};
	for (int i = 0; i < 3; i++)
		sl_credit_open(&pool, &c[i]);
	cr_assert_eq(sl_credit_share(&pool), (1u << 20) / 3);

	sl_credit_pool_init(&pool, 32u << 10, 64u << 10);
	for (int i = 0; i < 3; i++)
		c[i] = (struct sl_credit){0};
	for (int i = 0; i < 3; i++)
		sl_credit_open(&pool, &c[i]);
	cr_assert_eq(sl_credit_share(&pool), SL_CREDIT_SHARE_MIN, "never below the floor");
}

Test(credit, open_takes_the_start_window_or_says_it_is_short)
{
	struct sl_credit a = {0}, b = {0};
	sl_credit_pool_init(&pool, 100u << 10, 64u << 10);
	cr_assert(sl_credit_open(&pool, &a));
	cr_assert(a.credited);
	cr_assert_eq(a.win_bytes, 64u << 10);
	cr_assert_eq(a.cr_bytes, (int64_t)(64u << 10));
	cr_assert_eq(a.cr_events, SL_CREDIT_EVENTS);
	/* The second one's share is 50 KiB, and 36 KiB are left. */
	cr_assert_not(sl_credit_open(&pool, &b), "the pool is short: the caller holds it");
	cr_assert_eq(b.win_bytes, 36u << 10);
	cr_assert_eq(sl_credit_pool_avail(&pool), 0);
	sl_credit_close(&pool, &a);
	sl_credit_close(&pool, &b);
	cr_assert_eq(sl_credit_pool_avail(&pool), 100u << 10);
	cr_assert_eq(sl_credit_pool_credited(&pool), 0);
}

Test(credit, spend_refuses_beyond_the_credits_but_one_frame_when_idle)
{
	struct sl_credit c = {0};
	sl_credit_pool_init(&pool, 1u << 20, 16u << 10);
	sl_credit_open(&pool, &c);
	cr_assert_not(sl_credit_spend(&c, SL_CREDIT_EVENTS + 1, 100), "beyond the events");
	cr_assert_eq(c.cr_events, SL_CREDIT_EVENTS, "a refused frame changes nothing");
	/* Nothing unanswered: a frame beyond the byte credits goes, leaving
	 * a debt. */
	cr_assert(sl_credit_spend(&c, 10, 20u << 10));
	c.unacked += 10;
	cr_assert_lt(c.cr_bytes, 0);
	cr_assert(c.hungry);
	cr_assert_not(sl_credit_spend(&c, 1, 100), "with answers owed, not beyond the bytes");
	cr_assert_eq(c.in_bytes, 20u << 10);
}

Test(credit, the_pool_is_exact_after_a_close_with_answers_in_flight)
{
	struct sl_credit c = {0};
	sl_credit_pool_init(&pool, 1u << 20, 64u << 10);
	sl_credit_open(&pool, &c);
	cr_assert(sl_credit_spend(&c, 4, 4 * 1000));
	c.unacked += 4;
	sl_credit_answered(&c, 1000, 0);
	sl_credit_close(&pool, &c);
	/* The three answers still on their way find no connection and give
	 * their cost back. */
	for (int i = 0; i < 3; i++)
		sl_credit_pool_give(&pool, 1000);
	cr_assert_eq(sl_credit_pool_avail(&pool), 1u << 20);
}

Test(credit, a_hungry_window_doubles_and_the_grant_gives_back_what_was_answered)
{
	struct sl_credit c = {0};
	struct sl_credit_grant g;
	sl_credit_pool_init(&pool, 8u << 20, 64u << 10);
	sl_credit_open(&pool, &c);
	/* Spend most of the window, all answered. */
	cr_assert(sl_credit_spend(&c, 60, 60u << 10));
	c.unacked += 60;
	for (int i = 0; i < 60; i++)
		sl_credit_answered(&c, 1u << 10, 0);
	sl_credit_grant(&pool, &c, &g);
	cr_assert_eq(c.win_bytes, 128u << 10, "doubled");
	cr_assert_not(c.hungry);
	cr_assert(g.send);
	cr_assert_not(g.short_);
	cr_assert_eq(g.events, 60);
	cr_assert_eq(g.bytes, (128u << 10) - (4u << 10), "the window less what the client holds");
	sl_credit_granted(&c, &g);
	cr_assert_eq(c.cr_bytes, (int64_t)(128u << 10));
	cr_assert_eq(c.cr_events, SL_CREDIT_EVENTS);
	cr_assert_eq(sl_credit_pool_avail(&pool), (int64_t)((8u << 20) - (128u << 10)));
}

Test(credit, a_small_grant_waits_unless_everything_is_answered)
{
	struct sl_credit c = {0};
	struct sl_credit_grant g;
	sl_credit_pool_init(&pool, 8u << 20, 64u << 10);
	sl_credit_open(&pool, &c);
	cr_assert(sl_credit_spend(&c, 2, 2000));
	c.unacked += 2;
	sl_credit_answered(&c, 1000, 0);
	sl_credit_grant(&pool, &c, &g);
	cr_assert_not(g.send, "one answer of a 64 KiB window: not worth a frame");
	sl_credit_answered(&c, 1000, 0);
	sl_credit_grant(&pool, &c, &g);
	cr_assert(g.send, "everything answered");
	cr_assert_eq(g.events, 2);
	cr_assert_eq(g.bytes, 2000);
}

Test(credit, a_window_above_the_share_shrinks_as_the_client_spends)
{
	struct sl_credit a = {0}, b = {0};
	struct sl_credit_grant g;
	sl_credit_pool_init(&pool, 128u << 10, 128u << 10);
	sl_credit_open(&pool, &a);
	cr_assert_eq(a.win_bytes, 128u << 10);
	sl_credit_open(&pool, &b); /* the share is now 64 KiB; the pool is empty */
	cr_assert_eq(b.win_bytes, 0);
	/* a spends 100 KiB, all answered: it keeps only its share. */
	cr_assert(sl_credit_spend(&a, 100, 100u << 10));
	a.unacked += 100;
	for (int i = 0; i < 100; i++)
		sl_credit_answered(&a, 1u << 10, 0);
	sl_credit_grant(&pool, &a, &g);
	cr_assert_eq(a.win_bytes, 64u << 10);
	cr_assert_eq(sl_credit_pool_avail(&pool), 64u << 10);
	sl_credit_grant(&pool, &b, &g);
	/* b starts over from nothing: the smallest window, not the share
	 * (a window grows only by doubling as its client spends it). */
	cr_assert_eq(b.win_bytes, SL_CREDIT_SHARE_MIN, "b grows into what a gave back");
	cr_assert_eq(sl_credit_pool_avail(&pool), (64u << 10) - SL_CREDIT_SHARE_MIN);
}

Test(credit, held_while_an_answering_partition_is_pressured)
{
	struct sl_credit c = {0};
	uint64_t bit = SL_PMASK_BIT(0, 3);
	c.unacked = 2;
	sl_credit_answered(&c, 0, bit);
	sl_credit_answered(&c, 0, 0);
	cr_assert_eq(c.hold_mask, bit);
	cr_assert(sl_credit_held(&c, bit | SL_PMASK_BIT(1, 0)));
	cr_assert_eq(c.hold_mask, bit, "kept while held");
	cr_assert_not(sl_credit_held(&c, SL_PMASK_BIT(1, 0)));
	cr_assert_eq(c.hold_mask, 0, "forgotten once released");
}
