/*
 * Hot partitions and hot keys on the reactor (hot/hot.h): once a second,
 * at its tick, a reactor samples the rates of the partitions it owns,
 * publishes its hot-key summary of each topic, and says on stderr when
 * one of its partitions passes the topic's hot_partition_factor times the
 * mean rate of the topic's partitions (all of them, as their owners last
 * published), and when it comes back under. Counting is in
 * sl__part_produce (reactor_impl.h).
 */
#include "reactor/reactor_impl.h"

#include <stdatomic.h>
#include <stdio.h>

/* Says a crossing of partition p (rate against the topic's mean). */
static void sl__hot_note(const struct sl_partition *p, double rate, double mean, uint32_t factor)
{
	/* The server's "sluiced:" prefix, then logfmt fields to grep on. */
	fprintf(stderr,
	        "sluiced: %s topic=%s partition=%u events_per_s=%.0f mean_events_per_s=%.0f "
	        "hot_partition_factor=%u\n",
	        p->rate.hot ? "hot partition:" : "partition no longer hot:", p->topic->name, p->id,
	        rate, mean, factor);
}

/* The topic's partitions this reactor owns against the mean of all. */
static void sl__hot_check(struct sl_reactor *r, struct sl_topic *t)
{
	uint32_t factor = atomic_load_explicit(&t->hot_factor, memory_order_relaxed);
	double sum = 0;
	for (uint32_t p = 0; p < t->n_parts; p++)
		sum += sl_hot_rate_events_per_s(&t->parts[p].rate);
	double mean = sum / t->n_parts;
	for (uint32_t p = r->id; p < t->n_parts; p += r->n) {
		struct sl_partition *part = &t->parts[p];
		double rate = sl_hot_rate_events_per_s(&part->rate);
		bool hot = sl_hot_is_hot(part->rate.hot, rate, mean, factor);
		if (hot != part->rate.hot) {
			part->rate.hot = hot;
			sl__hot_note(part, rate, mean, factor);
		}
	}
}

void sl__hot_tick(struct sl_reactor *r, uint64_t now)
{
	if (now < r->hot_next_ns)
		return;
	r->hot_next_ns = now + SL_HOT_RATE_EVERY_NS;
	for (uint32_t i = 0; i < r->n_parts; i++) {
		struct sl_partition *p = r->parts[i];
		if (p->log)
			sl_hot_rate_sample(
			    &p->rate, sl_log_end(p->log),
			    atomic_load_explicit(&p->log_bytes_pub, memory_order_relaxed), now);
	}
	uint32_t n = atomic_load(&r->topics->n);
	for (uint32_t i = 0; i < n; i++) {
		struct sl_topic *t = &r->topics->v[i];
		if (atomic_load_explicit(&t->deleted, memory_order_relaxed) || r->id >= t->n_parts)
			continue;
		if (t->hot && t->hot[r->id])
			sl_hot_publish(t->hot[r->id], now);
		sl__hot_check(r, t);
	}
}
