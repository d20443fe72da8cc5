/* The circuit breaker's transitions (see breaker.h). */
#include "sink/breaker.h"

#include <string.h>

/* Counters only other threads read: relaxed is enough, nothing is ordered
 * by them. */
static void sl__bump(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static void sl__set_state(struct sl_breaker *b, enum sl_breaker_state s)
{
	atomic_store_explicit(&b->state, (uint32_t)s, memory_order_relaxed);
	switch (s) {
	case SL_BREAKER_OPEN:
		sl__bump(&b->to_open);
		break;
	case SL_BREAKER_HALF_OPEN:
		sl__bump(&b->to_half_open);
		break;
	case SL_BREAKER_CLOSED:
		sl__bump(&b->to_closed);
		break;
	}
}

static void sl__open(struct sl_breaker *b, uint64_t now_ns)
{
	b->open_until_ns = now_ns + b->cur_cooldown_ns;
	b->probe_out = false;
	sl__set_state(b, SL_BREAKER_OPEN);
}

void sl_breaker_init(struct sl_breaker *b, uint32_t k, uint64_t cooldown_ns)
{
	memset(b, 0, sizeof(*b));
	b->k = k ? k : 1;
	b->cooldown_ns = cooldown_ns;
	b->cur_cooldown_ns = cooldown_ns;
	atomic_init(&b->state, SL_BREAKER_CLOSED);
}

bool sl_breaker_allow(struct sl_breaker *b, uint64_t now_ns)
{
	switch (sl_breaker_state(b)) {
	case SL_BREAKER_CLOSED:
		return true;
	case SL_BREAKER_OPEN:
		if (now_ns < b->open_until_ns)
			return false;
		sl__set_state(b, SL_BREAKER_HALF_OPEN);
		b->probe_out = true;
		return true;
	case SL_BREAKER_HALF_OPEN:
		/* One probe at a time: its result decides, not a race of
		 * several against a target that is barely back. */
		if (b->probe_out)
			return false;
		b->probe_out = true;
		return true;
	}
	return false;
}

bool sl_breaker_record(struct sl_breaker *b, bool ok, uint64_t now_ns)
{
	enum sl_breaker_state s = sl_breaker_state(b);

	if (ok) {
		sl__bump(&b->successes);
		b->fails_in_row = 0;
		if (s == SL_BREAKER_CLOSED)
			return false;
		b->cur_cooldown_ns = b->cooldown_ns;
		b->probe_out = false;
		sl__set_state(b, SL_BREAKER_CLOSED);
		return true;
	}
	sl__bump(&b->failures);
	if (b->fails_in_row < UINT32_MAX)
		b->fails_in_row++;
	switch (s) {
	case SL_BREAKER_CLOSED:
		if (b->fails_in_row < b->k)
			return false;
		sl__open(b, now_ns);
		return true;
	case SL_BREAKER_HALF_OPEN: {
		/* The target is still down: back off further, so a long
		 * outage costs a probe per cap, not per configured cool-down. */
		uint64_t cap = b->cooldown_ns > SL_BREAKER_MAX_COOLDOWN_NS
		                   ? b->cooldown_ns
		                   : SL_BREAKER_MAX_COOLDOWN_NS;
		uint64_t next = b->cur_cooldown_ns > cap / 2 ? cap : b->cur_cooldown_ns * 2;
		b->cur_cooldown_ns = next;
		sl__open(b, now_ns);
		return true;
	}
	case SL_BREAKER_OPEN:
		/* An attempt allow() did not let go: the spell stands as it is. */
		return false;
	}
	return false;
}

const char *sl_breaker_state_name(enum sl_breaker_state s)
{
	switch (s) {
	case SL_BREAKER_CLOSED:
		return "closed";
	case SL_BREAKER_OPEN:
		return "open";
	case SL_BREAKER_HALF_OPEN:
		return "half_open";
	}
	return "unknown";
}

void sl_breaker_get_stats(const struct sl_breaker *b, struct sl_breaker_stats *out)
{
	out->failures = atomic_load_explicit(&b->failures, memory_order_relaxed);
	out->successes = atomic_load_explicit(&b->successes, memory_order_relaxed);
	out->to_open = atomic_load_explicit(&b->to_open, memory_order_relaxed);
	out->to_half_open = atomic_load_explicit(&b->to_half_open, memory_order_relaxed);
	out->to_closed = atomic_load_explicit(&b->to_closed, memory_order_relaxed);
}
