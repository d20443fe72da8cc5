/*
 * Producer sequence tracking: admission verdicts, durability in any order
 * across partitions, fencing, the window, recovery from log records in any
 * order, checkpoints (round trip, every corruption refused), many producers
 * and expiry.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "dedup/dedup.h"
#include "log/log.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

static struct sl_dedup *mk(uint32_t window, uint32_t maxp)
{
	struct sl_dedup_opts o = {.window = window, .max_producers = maxp};
	struct sl_dedup *t = NULL;
	cr_assert_eq(sl_dedup_create(&o, &t), 0);
	return t;
}

/* Where the test puts event `seq` of producer `id`: spread over 4
 * partitions, offset unique per event. */
static uint32_t part_of(uint64_t id, uint64_t seq) { return (uint32_t)((id + seq) % 4); }
static uint64_t off_of(uint64_t id, uint64_t seq) { return id * 1000000 + seq * 3 + 7; }

/* Accept and append one event (NEW expected). */
static void admit(struct sl_dedup *t, uint64_t id, uint32_t ep, uint64_t seq)
{
	uint32_t p;
	uint64_t o;
	cr_assert_eq(sl_dedup_check(t, id, ep, seq, &p, &o), SL_DEDUP_NEW, "seq %lu", seq);
	cr_assert_eq(sl_dedup_pending(t, id, seq, part_of(id, seq), off_of(id, seq)), 0);
}

static void make_durable(struct sl_dedup *t, uint64_t id, uint64_t seq)
{
	cr_assert_eq(sl_dedup_durable(t, id, seq, part_of(id, seq), off_of(id, seq)), 0);
}

static void shuffle(uint64_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = rnd() % i;
		uint64_t x = a[i - 1];
		a[i - 1] = a[j];
		a[j] = x;
	}
}

/* Two tables answer every question about `id` alike, in a span around next. */
static void assert_same(const struct sl_dedup *a, const struct sl_dedup *b, uint64_t id,
			uint32_t window)
{
	uint32_t ea, eb;
	uint64_t na, nb;
	cr_assert_eq(sl_dedup_get(a, id, &ea, &na), 0);
	cr_assert_eq(sl_dedup_get(b, id, &eb, &nb), 0);
	cr_assert_eq(ea, eb, "producer %lu epoch %u vs %u", id, ea, eb);
	cr_assert_eq(na, nb, "producer %lu next %lu vs %lu", id, na, nb);
	uint64_t lo = na > 2 * window ? na - 2 * window : 0;
	for (uint64_t s = lo; s < na + 2 * window; s++) {
		uint32_t pa = 0, pb = 0;
		uint64_t oa = 0, ob = 0;
		int ra = sl_dedup_check(a, id, ea, s, &pa, &oa);
		int rb = sl_dedup_check(b, id, eb, s, &pb, &ob);
		cr_assert_eq(ra, rb, "producer %lu seq %lu: %d vs %d", id, s, ra, rb);
		if (ra > SL_DEDUP_NEW) {
			cr_assert_eq(pa, pb);
			cr_assert_eq(oa, ob);
		}
	}
}

Test(dedup, in_order)
{
	struct sl_dedup *t = mk(64, 16);
	uint64_t id, next, o;
	uint32_t ep, p;

	cr_assert_eq(sl_dedup_hello(t, 0, &id, &ep, &next), 0);
	cr_assert_neq(id, 0);
	cr_assert_eq(ep, 1);
	cr_assert_eq(next, 0);
	for (uint64_t s = 0; s < 10; s++) {
		admit(t, id, ep, s);
		make_durable(t, id, s);
		cr_assert_eq(sl_dedup_get(t, id, &ep, &next), 0);
		cr_assert_eq(next, s + 1);
	}
	for (uint64_t s = 0; s < 10; s++) {
		cr_assert_eq(sl_dedup_check(t, id, ep, s, &p, &o), SL_DEDUP_DUP_DURABLE);
		cr_assert_eq(p, part_of(id, s));
		cr_assert_eq(o, off_of(id, s));
	}
	/* Idempotent durable keeps the first location. */
	cr_assert_eq(sl_dedup_durable(t, id, 3, 99, 99), 0);
	cr_assert_eq(sl_dedup_check(t, id, ep, 3, &p, &o), SL_DEDUP_DUP_DURABLE);
	cr_assert_eq(o, off_of(id, 3));
	cr_assert_eq(sl_dedup_pending(t, id, 3, 0, 0), -SL_ESEQ_GAP); /* below next */
	cr_assert_eq(sl_dedup_check(t, id + 1, 1, 0, &p, &o), -ENOENT);
	sl_dedup_destroy(t);
}

Test(dedup, out_of_order_across_partitions)
{
	struct sl_dedup *t = mk(128, 16);
	uint64_t id, next, o, order[100];
	uint32_t ep, p;

	cr_assert_eq(sl_dedup_hello(t, 42, &id, &ep, &next), 0);
	cr_assert_eq(id, 42);
	for (uint64_t s = 0; s < 100; s++) {
		admit(t, id, ep, s);
		order[s] = s;
	}
	shuffle(order, 100);
	bool done[100] = {0};
	for (int i = 0; i < 100; i++) {
		make_durable(t, id, order[i]);
		done[order[i]] = true;
		uint64_t want = 0;
		while (want < 100 && done[want])
			want++;
		cr_assert_eq(sl_dedup_get(t, id, &ep, &next), 0);
		cr_assert_eq(next, want, "after %d durable: next %lu, want %lu", i, next, want);
	}
	for (uint64_t s = 0; s < 100; s++) {
		cr_assert_eq(sl_dedup_check(t, id, ep, s, &p, &o), SL_DEDUP_DUP_DURABLE);
		cr_assert_eq(p, part_of(id, s));
		cr_assert_eq(o, off_of(id, s));
	}
	sl_dedup_destroy(t);
}

Test(dedup, pending_duplicate)
{
	struct sl_dedup *t = mk(64, 16);
	uint64_t id, next, o;
	uint32_t ep, p;

	cr_assert_eq(sl_dedup_hello(t, 0, &id, &ep, &next), 0);
	admit(t, id, ep, 0);
	admit(t, id, ep, 1);
	cr_assert_eq(sl_dedup_check(t, id, ep, 1, &p, &o), SL_DEDUP_DUP_PENDING);
	cr_assert_eq(p, part_of(id, 1));
	cr_assert_eq(o, off_of(id, 1));
	cr_assert_eq(sl_dedup_pending(t, id, 1, 0, 0), -EEXIST);
	/* 1 durable before 0: not contiguous yet, but answered as durable. */
	make_durable(t, id, 1);
	cr_assert_eq(sl_dedup_get(t, id, &ep, &next), 0);
	cr_assert_eq(next, 0);
	/* Something pending: never expired. */
	cr_assert_eq(sl_dedup_expire(t, UINT64_MAX), 0);
	cr_assert_eq(sl_dedup_check(t, id, ep, 1, &p, &o), SL_DEDUP_DUP_DURABLE);
	cr_assert_eq(sl_dedup_check(t, id, ep, 0, &p, &o), SL_DEDUP_DUP_PENDING);
	make_durable(t, id, 0);
	cr_assert_eq(sl_dedup_get(t, id, &ep, &next), 0);
	cr_assert_eq(next, 2);
	/* Nothing pending any more: the producer may expire. */
	cr_assert_eq(sl_dedup_expire(t, UINT64_MAX), 1);
	cr_assert_eq(sl_dedup_check(t, id, ep, 0, &p, &o), -ENOENT);
	sl_dedup_destroy(t);
}

Test(dedup, fencing)
{
	struct sl_dedup *t = mk(64, 16);
	uint64_t id, id2, next, o;
	uint32_t e1, e2, p;

	cr_assert_eq(sl_dedup_hello(t, 0, &id, &e1, &next), 0);
	admit(t, id, e1, 0);
	admit(t, id, e1, 1);
	make_durable(t, id, 0);
	cr_assert_eq(sl_dedup_hello(t, id, &id2, &e2, &next), 0);
	cr_assert_eq(id2, id);
	cr_assert_eq(e2, e1 + 1);
	cr_assert_eq(next, 1);
	cr_assert_eq(sl_dedup_check(t, id, e1, 2, &p, &o), -SL_EFENCED);
	cr_assert_eq(sl_dedup_check(t, id, e1 + 5, 2, &p, &o), -SL_EFENCED);
	/* The new session's retry of the old session's in-flight event. */
	cr_assert_eq(sl_dedup_check(t, id, e2, 1, &p, &o), SL_DEDUP_DUP_PENDING);
	/* The old session's event still becomes durable. */
	make_durable(t, id, 1);
	cr_assert_eq(sl_dedup_check(t, id, e2, 1, &p, &o), SL_DEDUP_DUP_DURABLE);
	cr_assert_eq(o, off_of(id, 1));
	admit(t, id, e2, 2);
	sl_dedup_destroy(t);
}

Test(dedup, out_of_window_and_sliding)
{
	const uint32_t w = 16;
	struct sl_dedup *t = mk(w, 16);
	uint64_t id, next, o;
	uint32_t ep, p;

	cr_assert_eq(sl_dedup_hello(t, 0, &id, &ep, &next), 0);
	cr_assert_eq(sl_dedup_check(t, id, ep, w - 1, &p, &o), SL_DEDUP_NEW);
	cr_assert_eq(sl_dedup_check(t, id, ep, w, &p, &o), -SL_ESEQ_GAP);
	cr_assert_eq(sl_dedup_pending(t, id, w, 0, 0), -SL_ESEQ_GAP);
	cr_assert_eq(sl_dedup_durable(t, id, w, 0, 0), -SL_ESEQ_GAP);
	cr_assert_eq(sl_dedup_check(t, id, ep, SL_DEDUP_SEQ_LIMIT, &p, &o), -SL_ESEQ_GAP);
	/* A full window of pending events: the next one is refused until 0 is
	 * durable. */
	for (uint64_t s = 0; s < w; s++)
		admit(t, id, ep, s);
	cr_assert_eq(sl_dedup_check(t, id, ep, w, &p, &o), -SL_ESEQ_GAP);
	make_durable(t, id, 0);
	admit(t, id, ep, w);
	for (uint64_t s = 1; s <= w; s++)
		make_durable(t, id, s);
	for (uint64_t s = w + 1; s < 100; s++) {
		admit(t, id, ep, s);
		make_durable(t, id, s);
	}
	cr_assert_eq(sl_dedup_get(t, id, &ep, &next), 0);
	cr_assert_eq(next, 100);
	/* The last W durable sequences keep their location; older ones are
	 * stale. */
	for (uint64_t s = 0; s < 100; s++) {
		int r = sl_dedup_check(t, id, ep, s, &p, &o);
		if (s >= 100 - w) {
			cr_assert_eq(r, SL_DEDUP_DUP_DURABLE, "seq %lu", s);
			cr_assert_eq(o, off_of(id, s));
		} else {
			cr_assert_eq(r, SL_DEDUP_STALE, "seq %lu", s);
			cr_assert_eq(p, UINT32_MAX);
			cr_assert_eq(o, UINT64_MAX);
		}
	}
	cr_assert_eq(sl_dedup_check(t, id, ep, 100 + w - 1, &p, &o), SL_DEDUP_NEW);
	cr_assert_eq(sl_dedup_check(t, id, ep, 100 + w, &p, &o), -SL_ESEQ_GAP);
	/* Accepting seq 100 forgets 100 - W only then. */
	admit(t, id, ep, 100);
	cr_assert_eq(sl_dedup_check(t, id, ep, 100 - w, &p, &o), SL_DEDUP_STALE);
	cr_assert_eq(sl_dedup_check(t, id, ep, 101 - w, &p, &o), SL_DEDUP_DUP_DURABLE);
	sl_dedup_destroy(t);
}

/* A live history: producers produce in sessions, events land in partitions
 * and become durable in random order, some sequences are never sent (gaps
 * the window lets through). Records every durable event for replay. */
struct rec {
	uint64_t id, seq, off;
	uint32_t epoch, part;
};

#define NPROD 8
#define NSEQ 3000

static size_t run_live(struct sl_dedup *t, uint32_t w, struct rec *recs, uint64_t *ids,
		       uint32_t *eps)
{
	size_t n = 0;
	uint64_t next;
	uint64_t inflight[NPROD][64];
	uint32_t inflight_ep[NPROD][64];
	int nin[NPROD] = {0};
	uint64_t sent[NPROD] = {0};

	cr_assert_leq(w, 64);
	for (int i = 0; i < NPROD; i++)
		cr_assert_eq(sl_dedup_hello(t, 0, &ids[i], &eps[i], &next), 0);
	/* Bounded: every step sends or completes one event, NSEQ each. */
	for (int step = 0; step < 4 * NPROD * NSEQ; step++) {
		int i = (int)(rnd() % NPROD);
		uint64_t id = ids[i];
		uint32_t ep;
		cr_assert_eq(sl_dedup_get(t, id, &ep, &next), 0);
		bool can_send = sent[i] < NSEQ && sent[i] < next + w && nin[i] < (int)w;
		if (can_send && (nin[i] == 0 || rnd() % 2)) {
			uint64_t s = sent[i]++;
			if (s > NSEQ - 100 && rnd() % 20 == 0 && s + 1 < next + w)
				s = sent[i]++; /* skip one: a gap */
			if (rnd() % 400 == 0) {
				/* a reconnect: new epoch, in-flight events carry on */
				cr_assert_eq(sl_dedup_hello(t, id, &id, &eps[i], &next), 0);
			}
			admit(t, id, eps[i], s);
			inflight_ep[i][nin[i]] = eps[i];
			inflight[i][nin[i]++] = s;
		} else if (nin[i]) {
			int k = (int)(rnd() % (uint64_t)nin[i]);
			uint64_t s = inflight[i][k];
			uint32_t e = inflight_ep[i][k];
			nin[i]--;
			inflight[i][k] = inflight[i][nin[i]];
			inflight_ep[i][k] = inflight_ep[i][nin[i]];
			make_durable(t, id, s);
			/* The log stores the epoch the event was appended under. */
			recs[n++] = (struct rec){id, s, off_of(id, s), e, part_of(id, s)};
		}
	}
	/* Drain: everything in flight becomes durable. */
	for (int i = 0; i < NPROD; i++) {
		while (nin[i]) {
			nin[i]--;
			uint64_t s = inflight[i][nin[i]];
			make_durable(t, ids[i], s);
			recs[n++] = (struct rec){ids[i], s, off_of(ids[i], s),
						 inflight_ep[i][nin[i]], part_of(ids[i], s)};
		}
	}
	return n;
}

Test(dedup, recovery_by_observe_in_any_order)
{
	const uint32_t w = 32;
	struct sl_dedup *live = mk(w, 64), *rec = mk(w, 64);
	struct rec *recs = calloc(NPROD * NSEQ, sizeof(*recs));
	uint64_t ids[NPROD], *order;
	uint32_t eps[NPROD];
	size_t n = run_live(live, w, recs, ids, eps);

	cr_assert_gt(n, NPROD * NSEQ / 2);
	order = calloc(n, sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	shuffle(order, n);
	for (size_t i = 0; i < n; i++) {
		const struct rec *r = &recs[order[i]];
		cr_assert_eq(sl_dedup_observe(rec, r->id, r->epoch, r->seq, r->part, r->off), 0);
	}
	/* Replaying again (a checkpoint overlapping the tail) changes nothing. */
	for (size_t i = 0; i < n / 3; i++) {
		const struct rec *r = &recs[order[i]];
		cr_assert_eq(sl_dedup_observe(rec, r->id, r->epoch, r->seq, r->part, r->off), 0);
	}
	cr_assert_eq(sl_dedup_count(rec), NPROD);
	for (int i = 0; i < NPROD; i++)
		assert_same(live, rec, ids[i], w);
	/* New ids never collide with recovered ones. */
	uint64_t id, next;
	uint32_t ep;
	cr_assert_eq(sl_dedup_hello(rec, 0, &id, &ep, &next), 0);
	for (int i = 0; i < NPROD; i++)
		cr_assert_neq(id, ids[i]);
	free(order);
	free(recs);
	sl_dedup_destroy(live);
	sl_dedup_destroy(rec);
}

/* Recovery that sees only the log tail: sequences far beyond the table's
 * window prove the earlier ones durable. */
Test(dedup, recovery_from_tail_only)
{
	const uint32_t w = 16;
	struct sl_dedup *t = mk(w, 4);
	uint64_t seqs[40], next;
	uint32_t ep;

	for (uint64_t i = 0; i < 40; i++)
		seqs[i] = 1000 + i;
	shuffle(seqs, 40);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(sl_dedup_observe(t, 7, 3, seqs[i], 0, seqs[i]), 0);
	cr_assert_eq(sl_dedup_get(t, 7, &ep, &next), 0);
	cr_assert_eq(ep, 3);
	cr_assert_eq(next, 1040);
	cr_assert_eq(sl_dedup_observe(t, 0, 1, 1, 0, 0), -EINVAL);
	sl_dedup_destroy(t);
}

static uint8_t *ckpt(const struct sl_dedup *t, const uint64_t *marks, uint32_t nm, size_t *len)
{
	size_t cap = sl_dedup_checkpoint_bound(t, nm);
	uint8_t *b = malloc(cap);
	cr_assert_eq(sl_dedup_checkpoint_write(t, marks, nm, b, cap, len), 0);
	cr_assert_leq(*len, cap);
	return b;
}

Test(dedup, checkpoint_round_trip_and_tail)
{
	const uint32_t w = 32;
	struct sl_dedup *live = mk(w, 64), *back = mk(w, 64), *again = mk(w, 64);
	struct rec *recs = calloc(NPROD * NSEQ, sizeof(*recs));
	uint64_t ids[NPROD], marks[3] = {11, 22, 33}, got[4];
	uint32_t eps[NPROD], nm = 0;
	char err[200];
	size_t len, len2, n;
	uint8_t *b, *b2;

	n = run_live(live, w, recs, ids, eps);
	b = ckpt(live, marks, 3, &len);
	cr_assert_eq(sl_dedup_checkpoint_read(back, b, len, got, 4, &nm, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(nm, 3);
	cr_assert_eq(memcmp(got, marks, sizeof(marks)), 0);
	for (int i = 0; i < NPROD; i++)
		assert_same(live, back, ids[i], w);
	b2 = ckpt(back, marks, 3, &len2);
	cr_assert_eq(len2, len);
	cr_assert_eq(memcmp(b, b2, len), 0);
	free(b2);
	cr_assert_eq(sl_dedup_checkpoint_read(back, b, len, got, 4, &nm, err, sizeof(err)), -EBUSY);
	cr_assert_eq(sl_dedup_checkpoint_read(again, b, len, got, 2, &nm, err, sizeof(err)),
		     -ENOSPC);
	cr_assert_eq(sl_dedup_count(again), 0);

	/* More traffic after the checkpoint; recovery = checkpoint + observe of
	 * the records written after it (and an overlap before it). */
	struct rec *more = calloc(NPROD * NSEQ, sizeof(*more));
	size_t m = 0;
	for (int i = 0; i < NPROD; i++) {
		uint64_t next;
		uint32_t ep;
		cr_assert_eq(sl_dedup_hello(live, ids[i], &ids[i], &ep, &next), 0);
		/* Fills the gaps the history left, then goes on. */
		for (uint64_t s = next; s < next + 50; s++) {
			uint32_t p;
			uint64_t o;
			if (sl_dedup_check(live, ids[i], ep, s, &p, &o) != SL_DEDUP_NEW)
				continue;
			admit(live, ids[i], ep, s);
			make_durable(live, ids[i], s);
			more[m++] = (struct rec){ids[i], s, off_of(ids[i], s), ep,
						 part_of(ids[i], s)};
		}
	}
	cr_assert_eq(sl_dedup_checkpoint_read(again, b, len, got, 4, &nm, err, sizeof(err)), 0);
	for (size_t i = n - n / 10; i < n; i++)
		cr_assert_eq(sl_dedup_observe(again, recs[i].id, recs[i].epoch, recs[i].seq,
					      recs[i].part, recs[i].off),
			     0);
	for (size_t i = 0; i < m; i++)
		cr_assert_eq(sl_dedup_observe(again, more[i].id, more[i].epoch, more[i].seq,
					      more[i].part, more[i].off),
			     0);
	for (int i = 0; i < NPROD; i++)
		assert_same(live, again, ids[i], w);
	free(more);
	free(b);
	free(recs);
	sl_dedup_destroy(live);
	sl_dedup_destroy(back);
	sl_dedup_destroy(again);
}

Test(dedup, checkpoint_corruption_refused)
{
	struct sl_dedup *t = mk(8, 8), *r = mk(8, 8);
	uint64_t id, next, got[2];
	uint32_t ep, nm;
	char err[200];
	size_t len;
	uint8_t *b;

	for (int i = 0; i < 3; i++) {
		cr_assert_eq(sl_dedup_hello(t, 0, &id, &ep, &next), 0);
		for (uint64_t s = 0; s < 5; s++) {
			admit(t, id, ep, s);
			if (s != 2)
				make_durable(t, id, s);
		}
	}
	uint64_t marks[2] = {1, 2};
	b = ckpt(t, marks, 2, &len);
	/* Every truncation. */
	for (size_t l = 0; l < len; l++) {
		int ret = sl_dedup_checkpoint_read(r, b, l, got, 2, &nm, err, sizeof(err));
		cr_assert_eq(ret, -SL_ECORRUPT, "len %zu: %d", l, ret);
		cr_assert_neq(err[0], '\0');
		cr_assert_eq(sl_dedup_count(r), 0);
	}
	/* Every single-bit flip. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			int ret = sl_dedup_checkpoint_read(r, b, len, got, 2, &nm, err,
							   sizeof(err));
			b[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(ret, -SL_ECORRUPT, "byte %zu bit %d: %d", i, bit, ret);
			cr_assert_eq(sl_dedup_count(r), 0);
		}
	}
	/* An unknown version is named as such even with a valid checksum. */
	b[4] = 2;
	uint32_t c = sl_crc32c(0, b, len - 4);
	memcpy(b + len - 4, &c, 4);
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, got, 2, &nm, err, sizeof(err)),
		     -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, "version"), "%s", err);
	b[4] = 1;
	c = sl_crc32c(0, b, len - 4);
	memcpy(b + len - 4, &c, 4);
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, got, 2, &nm, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(sl_dedup_count(r), 3);
	free(b);
	sl_dedup_destroy(t);
	sl_dedup_destroy(r);
}

/* A checkpoint written with a larger window loads into a smaller one. */
Test(dedup, checkpoint_window_change)
{
	struct sl_dedup *big = mk(64, 4), *small = mk(8, 4);
	uint64_t id, next, o, got[1];
	uint32_t ep, p, nm;
	char err[200];
	size_t len;
	uint8_t *b;

	cr_assert_eq(sl_dedup_hello(big, 0, &id, &ep, &next), 0);
	admit(big, id, ep, 0);
	for (uint64_t s = 1; s < 40; s++) {
		admit(big, id, ep, s);
		make_durable(big, id, s);
	}
	b = ckpt(big, NULL, 0, &len);
	cr_assert_eq(sl_dedup_checkpoint_read(small, b, len, got, 1, &nm, err, sizeof(err)), 0,
		     "%s", err);
	cr_assert_eq(sl_dedup_get(small, id, &ep, &next), 0);
	/* 39 proves everything up to 31 durable in a window of 8. */
	cr_assert_eq(next, 40);
	cr_assert_eq(sl_dedup_check(small, id, ep, 39, &p, &o), SL_DEDUP_DUP_DURABLE);
	cr_assert_eq(o, off_of(id, 39));
	free(b);
	sl_dedup_destroy(big);
	sl_dedup_destroy(small);
}

Test(dedup, many_producers_and_expiry)
{
	const uint32_t maxp = 1000, w = 16;
	struct sl_dedup *t = mk(w, maxp);
	uint64_t *ids = calloc(maxp, sizeof(*ids)), id, next, o;
	uint32_t *eps = calloc(maxp, sizeof(*eps)), ep, p;

	sl_dedup_set_clock(t, 100);
	for (uint32_t i = 0; i < maxp; i++) {
		cr_assert_eq(sl_dedup_hello(t, i % 3 ? 0 : 5000 + i, &ids[i], &eps[i], &next), 0);
		for (uint32_t j = 0; j < i; j++)
			cr_assert_neq(ids[j], ids[i]);
	}
	cr_assert_eq(sl_dedup_hello(t, 0, &id, &ep, &next), -ENOSPC);
	cr_assert_eq(sl_dedup_count(t), maxp);
	/* Interleaved traffic. */
	for (uint64_t s = 0; s < 20; s++)
		for (uint32_t i = 0; i < maxp; i++) {
			admit(t, ids[i], eps[i], s);
			make_durable(t, ids[i], s);
		}
	for (uint32_t i = 0; i < maxp; i++) {
		cr_assert_eq(sl_dedup_get(t, ids[i], &ep, &next), 0);
		cr_assert_eq(next, 20);
		cr_assert_eq(sl_dedup_check(t, ids[i], eps[i], 19, &p, &o), SL_DEDUP_DUP_DURABLE);
		cr_assert_eq(o, off_of(ids[i], 19));
	}
	/* The even producers are active later; one of the odd ones has an
	 * event pending and so is kept. */
	sl_dedup_set_clock(t, 200);
	for (uint32_t i = 0; i < maxp; i += 2)
		cr_assert_eq(sl_dedup_hello(t, ids[i], &id, &eps[i], &next), 0);
	admit(t, ids[1], eps[1], 20);
	cr_assert_eq(sl_dedup_expire(t, 150), maxp / 2 - 1);
	cr_assert_eq(sl_dedup_count(t), maxp / 2 + 1);
	for (uint32_t i = 0; i < maxp; i++) {
		int ret = sl_dedup_get(t, ids[i], &ep, &next);
		if (i % 2 == 0 || i == 1) {
			cr_assert_eq(ret, 0, "producer %u lost", i);
			cr_assert_eq(next, 20);
		} else {
			cr_assert_eq(ret, -ENOENT);
		}
	}
	make_durable(t, ids[1], 20);
	cr_assert_eq(sl_dedup_expire(t, 250), maxp / 2 + 1);
	cr_assert_eq(sl_dedup_count(t), 0);
	free(ids);
	free(eps);
	sl_dedup_destroy(t);
}

Test(dedup, bad_options)
{
	struct sl_dedup *t = NULL;
	struct sl_dedup_opts o = {.window = 100};
	cr_assert_eq(sl_dedup_create(&o, &t), -EINVAL);
	o.window = 0;
	cr_assert_eq(sl_dedup_create(&o, &t), 0);
	sl_dedup_destroy(t);
}
