/*
 * breaker: a circuit breaker, as a pure state machine with an injected clock.
 *
 * A sink calls the outside world, which may be down for a while. Retrying a
 * failing call at full speed burns CPU, floods the log and hammers whatever
 * is trying to come back; giving up loses events. The breaker sits between:
 *
 *   closed ──K consecutive failures──▶ open ──cool-down passed──▶ half-open
 *     ▲                                 ▲                            │
 *     └──────── probe succeeded ────────┼──── probe failed ──────────┘
 *                                       (cool-down doubled, capped)
 *
 * Closed lets every attempt go. Open lets none go until its cool-down has
 * passed; then the next sl_breaker_allow() moves it to half-open and lets
 * exactly one attempt (the probe) go. The probe's success closes it (and
 * the cool-down returns to the configured one); its failure opens it again
 * for twice the last cool-down, at most SL_BREAKER_MAX_COOLDOWN_NS (or the
 * configured cool-down when that is longer), so an outage of an hour costs
 * one probe every 30 s, not one per batch.
 *
 * Every call takes `now_ns` (sl_now_ns() in production, a fake clock in
 * tests): the breaker never reads a clock or sleeps itself.
 *
 * Ownership: a plain value the caller embeds; nothing allocated.
 * Threads: one owner thread calls init, allow and record. The counters and
 * `state` are atomics other threads may read (relaxed) for metrics and
 * status at any time, through the sl_breaker_* readers.
 */
#ifndef SL_BREAKER_H
#define SL_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* An outage longer than this is retried every 30 s: quick enough that a
 * sink resumes within half a minute of its target coming back. */
#define SL_BREAKER_MAX_COOLDOWN_NS (UINT64_C(30) * 1000000000u)

enum sl_breaker_state {
	SL_BREAKER_CLOSED = 0,
	SL_BREAKER_OPEN = 1,
	SL_BREAKER_HALF_OPEN = 2,
};

struct sl_breaker {
	/* owner only */
	uint32_t k; /* consecutive failures that open it, >= 1 */
	uint32_t fails_in_row;
	uint64_t cooldown_ns;     /* configured */
	uint64_t cur_cooldown_ns; /* of the current or next open spell */
	uint64_t open_until_ns;   /* OPEN: when the probe may go */
	bool probe_out;           /* HALF_OPEN: the one probe was allowed */
	/* read by any thread (relaxed) */
	_Atomic uint32_t state; /* enum sl_breaker_state */
	_Atomic uint64_t failures;
	_Atomic uint64_t successes;
	_Atomic uint64_t to_open, to_half_open, to_closed; /* transitions into each state */
};

/* Closed, counters at 0. k 0 counts as 1; cooldown_ns 0 means a probe may
 * go at once after opening (still one at a time). */
void sl_breaker_init(struct sl_breaker *b, uint32_t k, uint64_t cooldown_ns);

/*
 * May an attempt go now? Closed: yes. Open: no until the cool-down has
 * passed; then it turns half-open and says yes once (the probe). Half-open:
 * yes only for the probe, until its result is recorded. (A call that turns
 * it half-open changes the state: compare sl_breaker_state before and
 * after to report it.)
 */
bool sl_breaker_allow(struct sl_breaker *b, uint64_t now_ns);

/* Records the result of an attempt allow() let go. Returns true when the
 * state changed (closed -> open, half-open -> open or closed). */
bool sl_breaker_record(struct sl_breaker *b, bool ok, uint64_t now_ns);

/* When an open breaker lets the probe go (owner only; meaningful when OPEN). */
static inline uint64_t sl_breaker_retry_at(const struct sl_breaker *b)
{
	return b->open_until_ns;
}

/* The current cool-down (owner only): the configured one, or more after
 * failed probes. */
static inline uint64_t sl_breaker_cooldown(const struct sl_breaker *b)
{
	return b->cur_cooldown_ns;
}

/* Any thread. */
static inline enum sl_breaker_state sl_breaker_state(const struct sl_breaker *b)
{
	return (enum sl_breaker_state)atomic_load_explicit(&b->state, memory_order_relaxed);
}

/* "closed", "open", "half_open". */
const char *sl_breaker_state_name(enum sl_breaker_state s);

struct sl_breaker_stats {
	uint64_t failures, successes;
	uint64_t to_open, to_half_open, to_closed;
};

/* Any thread: a relaxed read of each counter (not one instant's set). */
void sl_breaker_get_stats(const struct sl_breaker *b, struct sl_breaker_stats *out);

#endif
