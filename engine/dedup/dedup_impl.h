/*
 * dedup_impl.h: the sequence table's layout, shared by dedup.c (the table:
 * check, record, forgetting) and checkpoint.c (its bytes on disk). Not a
 * face: nothing outside engine/dedup includes it. Same thread rules as
 * dedup.h (an sl_dedup belongs to one thread).
 */
#ifndef SL_DEDUP_IMPL_H
#define SL_DEDUP_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "dedup/dedup.h"

struct sl__dedup_ent {
	uint64_t seq;
	uint64_t offset;
};

/* Stored inline in the buckets: one miss reaches id, epoch and last, which
 * is all a NEW verdict reads. */
struct sl__dedup_prod {
	uint64_t id; /* 0: empty bucket (no producer has id 0) */
	uint64_t last;
	uint64_t kept; /* every record with seq >= kept is in the FIFO */
	struct sl__dedup_ent *fifo;
	uint32_t epoch;
	uint32_t head;    /* index of the oldest entry */
	uint32_t n;       /* entries; >= 1 for every producer in the table */
	uint32_t mask;    /* FIFO capacity - 1 */
	uint32_t touched; /* t->clock at its last record */
	/* t->now_ms at its last record: within a tick of the truth live, the
	 * batch's time in a replay; 0: not known (a version 2 checkpoint),
	 * read as the table's newest time. */
	uint64_t last_ms;
};

struct sl_dedup {
	uint32_t window;
	uint32_t max_producers;
	uint32_t count;
	uint32_t shift;     /* 64 - log2(cap) for the multiplicative hash */
	uint64_t cap;       /* buckets, a power of two; count <= cap / 2 keeps probes short */
	uint64_t cache_id;  /* one-entry lookup cache: check() then record() of */
	uint64_t cache_pos; /* the same producer probe once */
	uint64_t entries;   /* sum of n, for the checkpoint bound */
	size_t fifo_bytes;
	uint32_t clock; /* sl_dedup_tick() calls */
	struct sl__dedup_prod *tab;
	/* Forgetting (dedup.h): the table's time, the newest last_ms of a
	 * producer forgotten here, how many were, and a FIFO set aside by
	 * sl_dedup_prepare() so that the record() after it cannot fail. */
	uint64_t now_ms;
	uint64_t forgot_ms;
	uint64_t forgotten;
	struct sl__dedup_ent *spare;
};

#define SL__FIFO_FIRST 8u
#define SL__TAB_FIRST  16u

static inline struct sl__dedup_ent *sl__at(const struct sl__dedup_prod *p, uint32_t i)
{
	return &p->fifo[(p->head + i) & p->mask];
}

/* How many entries lie at offsets < upto (a prefix: offsets increase). */
static inline uint32_t sl__prefix_below(const struct sl__dedup_prod *p, uint64_t upto)
{
	uint32_t lo = 0, hi = p->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sl__at(p, mid)->offset < upto)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static inline uint64_t sl__kept_floor(const struct sl_dedup *t, uint64_t last)
{
	return last >= t->window ? last - t->window + 1 : 0;
}

/* Index of the first entry at or above kept. */
static inline uint32_t sl__live_from(const struct sl__dedup_prod *p)
{
	uint32_t lo = 0, hi = p->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sl__at(p, mid)->seq < p->kept)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static inline uint32_t sl__first_fifo_cap(const struct sl_dedup *t)
{
	return t->window < SL__FIFO_FIRST ? t->window : SL__FIFO_FIRST;
}

/* A new producer with one entry at (seq, offset) and a FIFO of fifo_cap:
 * created whole or not at all (the LRU eighth goes first at the bound).
 * 0, -ENOMEM. */
int sl__dedup_create_prod(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
                          uint64_t offset, uint32_t fifo_cap, struct sl__dedup_prod **out);
/* Frees every producer: the table is empty again (a failed load). */
void sl__dedup_clear(struct sl_dedup *t);

#endif
