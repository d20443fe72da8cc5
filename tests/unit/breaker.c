/*
 * The circuit breaker (engine/sink/breaker.h), every transition, with a fake
 * clock: the breaker never reads time itself, so nothing here sleeps.
 */
#include <criterion/criterion.h>

#include "sink/breaker.h"

#define MS (UINT64_C(1000000))
#define S  (UINT64_C(1000000000))

static void expect_stats(const struct sl_breaker *b, uint64_t fail, uint64_t ok, uint64_t open,
                         uint64_t half, uint64_t closed)
{
	struct sl_breaker_stats st;
	sl_breaker_get_stats(b, &st);
	cr_assert_eq(st.failures, fail, "failures %llu", (unsigned long long)st.failures);
	cr_assert_eq(st.successes, ok, "successes %llu", (unsigned long long)st.successes);
	cr_assert_eq(st.to_open, open, "to_open %llu", (unsigned long long)st.to_open);
	cr_assert_eq(st.to_half_open, half, "to_half_open %llu",
	             (unsigned long long)st.to_half_open);
	cr_assert_eq(st.to_closed, closed, "to_closed %llu", (unsigned long long)st.to_closed);
}

Test(breaker, starts_closed_and_lets_everything_go)
{
	struct sl_breaker b;
	sl_breaker_init(&b, 3, 100 * MS);
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_CLOSED);
	for (int i = 0; i < 10; i++) {
		cr_assert(sl_breaker_allow(&b, (uint64_t)i));
		cr_assert_not(sl_breaker_record(&b, true, (uint64_t)i));
	}
	expect_stats(&b, 0, 10, 0, 0, 0);
	cr_assert_str_eq(sl_breaker_state_name(SL_BREAKER_CLOSED), "closed");
	cr_assert_str_eq(sl_breaker_state_name(SL_BREAKER_OPEN), "open");
	cr_assert_str_eq(sl_breaker_state_name(SL_BREAKER_HALF_OPEN), "half_open");
}

Test(breaker, opens_after_k_consecutive_failures_only)
{
	struct sl_breaker b;
	uint64_t t = 1000 * S;
	sl_breaker_init(&b, 3, 100 * MS);
	/* Two failures, a success: the run starts over. */
	cr_assert_not(sl_breaker_record(&b, false, t));
	cr_assert_not(sl_breaker_record(&b, false, t));
	cr_assert_not(sl_breaker_record(&b, true, t));
	cr_assert_not(sl_breaker_record(&b, false, t));
	cr_assert_not(sl_breaker_record(&b, false, t));
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_CLOSED);
	cr_assert(sl_breaker_record(&b, false, t), "the third in a row opens it");
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_OPEN);
	cr_assert_eq(sl_breaker_retry_at(&b), t + 100 * MS);
	expect_stats(&b, 5, 1, 1, 0, 0);
}

Test(breaker, open_refuses_until_the_cooldown_then_allows_one_probe)
{
	struct sl_breaker b;
	uint64_t t = 5 * S;
	sl_breaker_init(&b, 1, 100 * MS);
	cr_assert(sl_breaker_record(&b, false, t));
	cr_assert_not(sl_breaker_allow(&b, t));
	cr_assert_not(sl_breaker_allow(&b, t + 100 * MS - 1));
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_OPEN);
	/* A failure recorded while open (an attempt not gated) changes nothing. */
	cr_assert_not(sl_breaker_record(&b, false, t + 50 * MS));
	cr_assert_eq(sl_breaker_retry_at(&b), t + 100 * MS);
	cr_assert(sl_breaker_allow(&b, t + 100 * MS), "the probe goes at the end of the cool-down");
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_HALF_OPEN);
	/* Only one probe at a time. */
	cr_assert_not(sl_breaker_allow(&b, t + 100 * MS));
	cr_assert_not(sl_breaker_allow(&b, t + 10 * S));
	expect_stats(&b, 2, 0, 1, 1, 0);
}

Test(breaker, probe_success_closes_and_resets_the_cooldown)
{
	struct sl_breaker b;
	uint64_t t = 0;
	sl_breaker_init(&b, 2, 100 * MS);
	sl_breaker_record(&b, false, t);
	cr_assert(sl_breaker_record(&b, false, t));
	/* Two failed probes: 200 ms, then 400 ms. */
	t += 100 * MS;
	cr_assert(sl_breaker_allow(&b, t));
	cr_assert(sl_breaker_record(&b, false, t));
	cr_assert_eq(sl_breaker_cooldown(&b), 200 * MS);
	t += 200 * MS;
	cr_assert(sl_breaker_allow(&b, t));
	cr_assert(sl_breaker_record(&b, false, t));
	cr_assert_eq(sl_breaker_cooldown(&b), 400 * MS);
	t += 400 * MS;
	cr_assert(sl_breaker_allow(&b, t));
	cr_assert(sl_breaker_record(&b, true, t), "the probe's success closes it");
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_CLOSED);
	cr_assert_eq(sl_breaker_cooldown(&b), 100 * MS);
	cr_assert(sl_breaker_allow(&b, t));
	cr_assert(sl_breaker_allow(&b, t));
	/* Opening again takes K failures again and the configured cool-down. */
	cr_assert_not(sl_breaker_record(&b, false, t));
	cr_assert(sl_breaker_record(&b, false, t));
	cr_assert_eq(sl_breaker_retry_at(&b), t + 100 * MS);
	expect_stats(&b, 6, 1, 4, 3, 1);
}

Test(breaker, probe_failure_doubles_the_cooldown_up_to_30s)
{
	struct sl_breaker b;
	uint64_t t = 0, want = 1 * S;
	sl_breaker_init(&b, 1, 1 * S);
	cr_assert(sl_breaker_record(&b, false, t));
	for (int i = 0; i < 10; i++) {
		t = sl_breaker_retry_at(&b);
		cr_assert_not(sl_breaker_allow(&b, t - 1));
		cr_assert(sl_breaker_allow(&b, t));
		cr_assert(sl_breaker_record(&b, false, t));
		want = want * 2 > 30 * S ? 30 * S : want * 2;
		cr_assert_eq(sl_breaker_cooldown(&b), want, "probe %d: cool-down %llu", i,
		             (unsigned long long)sl_breaker_cooldown(&b));
		cr_assert_eq(sl_breaker_retry_at(&b), t + want);
	}
	cr_assert_eq(want, 30 * S);
	expect_stats(&b, 11, 0, 11, 10, 0);
}

Test(breaker, a_configured_cooldown_above_the_cap_is_kept)
{
	struct sl_breaker b;
	sl_breaker_init(&b, 1, 60 * S);
	sl_breaker_record(&b, false, 0);
	cr_assert(sl_breaker_allow(&b, 60 * S));
	cr_assert(sl_breaker_record(&b, false, 60 * S));
	cr_assert_eq(sl_breaker_cooldown(&b), 60 * S);
}

Test(breaker, zero_k_is_one_and_zero_cooldown_probes_at_once)
{
	struct sl_breaker b;
	sl_breaker_init(&b, 0, 0);
	cr_assert(sl_breaker_record(&b, false, 7));
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_OPEN);
	cr_assert(sl_breaker_allow(&b, 7));
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_HALF_OPEN);
	cr_assert_not(sl_breaker_allow(&b, 7));
	cr_assert(sl_breaker_record(&b, false, 7));
	/* 0 doubled is 0: the next probe may go at once, one at a time. */
	cr_assert(sl_breaker_allow(&b, 7));
	cr_assert(sl_breaker_record(&b, true, 8));
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_CLOSED);
}

Test(breaker, success_while_open_closes)
{
	/* Not a path the sink takes (it records only what allow() let go),
	 * but the machine stays consistent: a success means the target works. */
	struct sl_breaker b;
	sl_breaker_init(&b, 1, S);
	sl_breaker_record(&b, false, 0);
	cr_assert(sl_breaker_record(&b, true, 1));
	cr_assert_eq(sl_breaker_state(&b), SL_BREAKER_CLOSED);
	cr_assert(sl_breaker_allow(&b, 1));
}
