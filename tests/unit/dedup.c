/*
 * The per-partition sequence table: verdicts (new, duplicate, stale, fenced,
 * out of order), the FIFO's growth and its pruning at exactly W, many
 * producers, recovery equivalence (checkpoint at a mark + replay of the log
 * after it answers every query like the live table), window changes, and
 * every damaged checkpoint refused with a message saying what is wrong.
 * The registry is tested in producers.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
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

static void rec(struct sl_dedup *t, uint64_t id, uint32_t ep, uint64_t seq, uint64_t off)
{
	int ret = sl_dedup_record(t, id, ep, seq, off);
	cr_assert_eq(ret, 0, "record %lu/%lu at %lu: %d", id, seq, off, ret);
}

static int chk(struct sl_dedup *t, uint64_t id, uint32_t ep, uint64_t seq, uint64_t *off)
{
	*off = UINT64_MAX;
	return sl_dedup_check(t, id, ep, seq, off);
}

static uint8_t *ckpt(const struct sl_dedup *t, uint64_t upto, size_t *len)
{
	size_t cap = sl_dedup_checkpoint_bound(t);
	uint8_t *b = malloc(cap);
	cr_assert_not_null(b);
	cr_assert_eq(sl_dedup_checkpoint_write(t, upto, b, cap, len), 0);
	cr_assert_leq(*len, cap);
	return b;
}

/* Re-seals a checkpoint edited in place (length field and CRC). */
static void reseal(uint8_t *b, size_t len)
{
	sl_put_le64(b + SL_CKPT_LENGTH, len);
	sl_put_le32(b + len - SL_CKPT_TRAILER, sl_crc32c(0, b, len - SL_CKPT_TRAILER));
}

static void put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

Test(dedup, verdicts)
{
	struct sl_dedup *t = mk(16, 16);
	uint64_t off, last;
	uint32_t ep;

	/* Unknown producer: NEW whatever the epoch. */
	cr_assert_eq(chk(t, 7, 0, 5, &off), SL_DEDUP_NEW);
	cr_assert_eq(sl_dedup_get(t, 7, &ep, &last), -ENOENT);
	rec(t, 7, 1, 0, 100);
	rec(t, 7, 1, 1, 101);
	rec(t, 7, 1, 2, 102);
	/* 3 went to another partition; 4 came here. */
	rec(t, 7, 1, 4, 110);
	cr_assert_eq(chk(t, 7, 1, 0, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 100);
	cr_assert_eq(chk(t, 7, 1, 4, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 110);
	cr_assert_eq(chk(t, 7, 1, 5, &off), SL_DEDUP_NEW);
	/* 3 was never stored here and 4 was: storing it now is out of order. */
	cr_assert_eq(chk(t, 7, 1, 3, &off), -SL_ESEQ_GAP);
	/* Fencing: an older epoch is refused even for a duplicate; a newer
	 * one (a new session) is admitted, and raises the epoch when it writes. */
	cr_assert_eq(chk(t, 7, 0, 0, &off), -SL_EFENCED);
	cr_assert_eq(chk(t, 7, 0, 9, &off), -SL_EFENCED);
	cr_assert_eq(chk(t, 7, 2, 5, &off), SL_DEDUP_NEW);
	cr_assert_eq(chk(t, 7, 2, 1, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 101);
	rec(t, 7, 2, 5, 111);
	cr_assert_eq(chk(t, 7, 1, 6, &off), -SL_EFENCED);
	cr_assert_eq(chk(t, 7, 1, 5, &off), -SL_EFENCED);
	cr_assert_eq(sl_dedup_get(t, 7, &ep, &last), 0);
	cr_assert_eq(ep, 2);
	cr_assert_eq(last, 5);
	/* Bad input. */
	cr_assert_eq(chk(t, 7, 2, SL_DEDUP_SEQ_LIMIT, &off), -EINVAL);
	cr_assert_eq(sl_dedup_record(t, 7, 2, SL_DEDUP_SEQ_LIMIT, 200), -EINVAL);
	cr_assert_eq(sl_dedup_record(t, 0, 1, 1, 200), -EINVAL);
	/* Replays: the same (seq, offset) is a no-op; anything else below
	 * last is refused, and so is an offset that does not increase. */
	cr_assert_eq(sl_dedup_record(t, 7, 2, 4, 110), 0);
	cr_assert_eq(sl_dedup_record(t, 7, 1, 0, 100), 0);
	cr_assert_eq(sl_dedup_record(t, 7, 2, 4, 111), -EINVAL);
	cr_assert_eq(sl_dedup_record(t, 7, 2, 3, 103), -EINVAL);
	cr_assert_eq(sl_dedup_record(t, 7, 2, 6, 111), -EINVAL);
	cr_assert_eq(sl_dedup_record(t, 7, 2, 6, 50), -EINVAL);
	cr_assert_eq(sl_dedup_get(t, 7, &ep, &last), 0);
	cr_assert_eq(last, 5);
	cr_assert_eq(chk(t, 7, 2, 6, &off), SL_DEDUP_NEW);

	/* A producer whose first event here is 10: 0..9 were never stored
	 * here, so they are out of order, not stale. */
	rec(t, 8, 1, 10, 200);
	for (uint64_t s = 0; s < 10; s++)
		cr_assert_eq(chk(t, 8, 1, s, &off), -SL_ESEQ_GAP, "seq %lu", s);
	/* STALE: below last - W + 1, the producer holds acks for them. */
	for (uint64_t s = 11; s < 40; s++)
		rec(t, 8, 1, s, 200 + s);
	for (uint64_t s = 0; s < 40; s++) {
		int v = chk(t, 8, 1, s, &off);
		if (s < 39 - 16 + 1) {
			cr_assert_eq(v, SL_DEDUP_STALE, "seq %lu: %d", s, v);
		} else {
			cr_assert_eq(v, SL_DEDUP_DUP, "seq %lu: %d", s, v);
			cr_assert_eq(off, 200 + s);
		}
	}
	/* A replay of a record dropped long ago (below kept, at an offset
	 * below the oldest kept one) is consistent; one above it is not. */
	cr_assert_eq(sl_dedup_record(t, 8, 1, 12, 212), 0);
	cr_assert_eq(sl_dedup_record(t, 8, 1, 12, 230), -EINVAL);
	cr_assert_eq(sl_dedup_count(t), 2);
	sl_dedup_destroy(t);
}

/* The FIFO doubles from 8 up to W and never beyond; after that record()
 * allocates nothing; an entry leaves exactly when seq - W + 1 passes it. */
Test(dedup, fifo_growth_and_pruning_at_w)
{
	const uint32_t w = 64;
	struct sl_dedup *t = mk(w, 4);
	size_t base = sl_dedup_memory(t), prev = base;
	uint64_t off;
	int grows = 0;

	for (uint64_t s = 0; s < 3000; s++) {
		rec(t, 1, 1, s, 1000 + s);
		size_t m = sl_dedup_memory(t);
		if (m != prev)
			grows++;
		prev = m;
		if (s >= w)
			cr_assert_eq(chk(t, 1, 1, s - w, &off), SL_DEDUP_STALE, "seq %lu", s - w);
		cr_assert_eq(chk(t, 1, 1, s + 1 > w ? s + 1 - w : 0, &off), SL_DEDUP_DUP);
		cr_assert_eq(chk(t, 1, 1, s, &off), SL_DEDUP_DUP);
		cr_assert_eq(off, 1000 + s);
	}
	/* One creation (8 entries) then 8 -> 16 -> 32 -> 64. */
	cr_assert_eq(grows, 4, "memory changed %d times", grows);
	cr_assert_eq(prev - base, w * 16);
	cr_assert_eq(sl_dedup_checkpoint_bound(t),
	             SL_CKPT_HDR + SL_CKPT_TRAILER + SL_CKPT_PROD + (size_t)w * SL_CKPT_ENTRY);

	/* Every other sequence (the rest went elsewhere): W / 2 entries; the
	 * odd ones inside the window are out of order, below it stale. */
	for (uint64_t s = 3000; s < 4000; s += 2)
		rec(t, 2, 1, s, 10000 + s);
	/* W / 2 live entries; entries below kept are dropped in bulk, so the
	 * FIFO may grow to twice the live ones, never beyond W. */
	cr_assert_geq(sl_dedup_memory(t) - prev, (w / 2) * 16);
	cr_assert_leq(sl_dedup_memory(t) - prev, w * 16);
	uint64_t last = 3998, kept = last - w + 1;
	for (uint64_t s = 3000; s <= last; s++) {
		int v = chk(t, 2, 1, s, &off);
		if (s < kept)
			cr_assert_eq(v, SL_DEDUP_STALE, "seq %lu", s);
		else if (s % 2)
			cr_assert_eq(v, -SL_ESEQ_GAP, "seq %lu", s);
		else
			cr_assert_eq(v, SL_DEDUP_DUP, "seq %lu", s);
	}
	/* A jump far ahead keeps only the new entry. */
	rec(t, 2, 1, 100000, 200000);
	cr_assert_eq(chk(t, 2, 1, last, &off), SL_DEDUP_STALE);
	cr_assert_eq(chk(t, 2, 1, 100000 - w + 1, &off), -SL_ESEQ_GAP);
	cr_assert_eq(chk(t, 2, 1, 100000, &off), SL_DEDUP_DUP);
	/* What the checkpoint holds: producer 1's W entries, producer 2's one
	 * (entries below kept may still sit in the FIFO; they are left out). */
	{
		size_t len;
		uint8_t *b = ckpt(t, UINT64_MAX, &len);
		cr_assert_eq(len, SL_CKPT_HDR + SL_CKPT_TRAILER + 2 * SL_CKPT_PROD +
		                      (size_t)(w + 1) * SL_CKPT_ENTRY);
		free(b);
	}
	sl_dedup_destroy(t);

	/* A window smaller than the first FIFO. */
	t = mk(2, 1);
	for (uint64_t s = 0; s < 10; s++)
		rec(t, 3, 1, s, s);
	cr_assert_eq(chk(t, 3, 1, 8, &off), SL_DEDUP_DUP);
	cr_assert_eq(chk(t, 3, 1, 7, &off), SL_DEDUP_STALE);
	sl_dedup_destroy(t);
}

static void count_cb(void *arg, uint64_t id, uint32_t epoch, uint64_t last)
{
	uint64_t *sum = arg;
	cr_assert_eq(epoch, (uint32_t)(id % 5 + 1));
	cr_assert_eq(last, 19);
	sum[0]++;
	sum[1] += id;
}

Test(dedup, many_producers)
{
	const uint32_t maxp = 1000;
	struct sl_dedup *t = mk(16, maxp);
	uint64_t off, sum[2] = {0, 0}, want = 0;

	/* Ids far apart and close together: the table grows under them. */
	for (uint64_t s = 0; s < 20; s++)
		for (uint64_t i = 1; i <= maxp; i++) {
			uint64_t id = i % 2 ? i : i << 40;
			cr_assert_eq(chk(t, id, (uint32_t)(id % 5 + 1), s, &off), SL_DEDUP_NEW);
			rec(t, id, (uint32_t)(id % 5 + 1), s, s * maxp + i);
		}
	cr_assert_eq(sl_dedup_count(t), maxp);
	cr_assert_eq(chk(t, 5000, 1, 0, &off), SL_DEDUP_NEW);
	for (uint64_t i = 1; i <= maxp; i++) {
		uint64_t id = i % 2 ? i : i << 40;
		want += id;
		for (uint64_t s = 0; s < 20; s++) {
			int v = chk(t, id, (uint32_t)(id % 5 + 1), s, &off);
			if (s < 4) {
				cr_assert_eq(v, SL_DEDUP_STALE);
			} else {
				cr_assert_eq(v, SL_DEDUP_DUP);
				cr_assert_eq(off, s * maxp + i);
			}
		}
	}
	sl_dedup_foreach(t, count_cb, sum);
	cr_assert_eq(sum[0], maxp);
	cr_assert_eq(sum[1], want);
	sl_dedup_destroy(t);
}

/* ---- recovery equivalence ------------------------------------------------ */

#define NPROD  12
#define NSTEP  30000
#define MAXREC NSTEP

struct rec {
	uint64_t id, seq, off;
	uint32_t epoch;
};

/* What the table must answer, from the full history: a reference model. */
struct model {
	uint32_t w;
	uint32_t epoch[NPROD];
	bool known[NPROD];
	uint64_t last[NPROD];
	/* per producer: its records here, in order */
	struct rec *hist[NPROD];
	size_t nhist[NPROD];
};

static uint64_t pid_of(int i)
{
	return 1000 + (uint64_t)i * 7919;
}

static int model_verdict(const struct model *m, int i, uint32_t ep, uint64_t seq, uint64_t *off)
{
	if (!m->known[i])
		return SL_DEDUP_NEW;
	if (ep < m->epoch[i])
		return -SL_EFENCED;
	if (seq > m->last[i])
		return SL_DEDUP_NEW;
	if (seq + m->w <= m->last[i])
		return SL_DEDUP_STALE;
	for (size_t k = m->nhist[i]; k-- > 0;) {
		if (m->hist[i][k].seq == seq) {
			*off = m->hist[i][k].off;
			return SL_DEDUP_DUP;
		}
		if (m->hist[i][k].seq < seq)
			break;
	}
	return -SL_ESEQ_GAP;
}

/*
 * A partition's live history: producers in sessions (epochs), their events
 * spread over partitions (a third come here), other records in between
 * (offset holes), retries checked as DUP, queries checked against the model.
 * Fills `log` with every record in offset order.
 */
static size_t run_stream(struct sl_dedup *t, struct model *m, struct rec *log)
{
	uint64_t next[NPROD] = {0}, off = 0;
	uint32_t session[NPROD];
	size_t n = 0;

	for (int i = 0; i < NPROD; i++) {
		session[i] = 1 + (uint32_t)(rnd() % 3);
		m->hist[i] = calloc(MAXREC, sizeof(struct rec));
	}
	for (int step = 0; step < NSTEP; step++) {
		int i = (int)(rnd() % NPROD);
		uint64_t id = pid_of(i), o1 = 0, o2 = 0;
		uint64_t r = rnd() % 100;
		if (r < 2) {
			session[i]++; /* reconnect: a new epoch */
		} else if (r < 20 && m->nhist[i]) {
			/* A retry of one of its recent events here. */
			size_t recent = m->nhist[i] < 20 ? m->nhist[i] : 20;
			size_t k = m->nhist[i] - 1 - (size_t)(rnd() % recent);
			uint64_t s = m->hist[i][k].seq;
			int want = model_verdict(m, i, session[i], s, &o1);
			int got = chk(t, id, session[i], s, &o2);
			cr_assert_eq(got, want, "retry %lu/%lu: %d, want %d", id, s, got, want);
			if (s + m->w > m->last[i]) {
				cr_assert_eq(got, SL_DEDUP_DUP);
				cr_assert_eq(o2, m->hist[i][k].off);
			}
		} else if (r < 30) {
			/* Any query. */
			uint64_t s = rnd() % (next[i] + 3);
			int want = model_verdict(m, i, session[i], s, &o1);
			int got = chk(t, id, session[i], s, &o2);
			cr_assert_eq(got, want, "query %lu/%lu: %d, want %d", id, s, got, want);
			if (got == SL_DEDUP_DUP)
				cr_assert_eq(o1, o2);
		} else {
			uint64_t s = next[i]++;
			if (rnd() % 3)
				continue; /* another partition's */
			cr_assert_eq(chk(t, id, session[i], s, &o2), SL_DEDUP_NEW);
			off += 1 + rnd() % 3;
			rec(t, id, session[i], s, off);
			log[n] = (struct rec){id, s, off, session[i]};
			m->hist[i][m->nhist[i]++] = log[n++];
			m->known[i] = true;
			m->last[i] = s;
			if (session[i] > m->epoch[i])
				m->epoch[i] = session[i];
		}
	}
	return n;
}

static void model_free(struct model *m)
{
	for (int i = 0; i < NPROD; i++)
		free(m->hist[i]);
}

/* Two tables answer every query alike: every sequence up to last + 2 of
 * every producer, at its epoch and the one below. */
static void assert_same(struct sl_dedup *a, struct sl_dedup *b)
{
	cr_assert_eq(sl_dedup_count(a), sl_dedup_count(b));
	for (int i = 0; i < NPROD; i++) {
		uint64_t id = pid_of(i), la, lb;
		uint32_t ea, eb;
		int ra = sl_dedup_get(a, id, &ea, &la), rb = sl_dedup_get(b, id, &eb, &lb);
		cr_assert_eq(ra, rb, "producer %lu known %d vs %d", id, ra, rb);
		if (ra < 0)
			continue;
		cr_assert_eq(ea, eb, "producer %lu epoch %u vs %u", id, ea, eb);
		cr_assert_eq(la, lb, "producer %lu last %lu vs %lu", id, la, lb);
		for (uint32_t e = ea - 1; e <= ea; e++)
			for (uint64_t s = 0; s <= la + 2; s++) {
				uint64_t oa = 1, ob = 2;
				int va = sl_dedup_check(a, id, e, s, &oa);
				int vb = sl_dedup_check(b, id, e, s, &ob);
				cr_assert_eq(va, vb, "producer %lu epoch %u seq %lu: %d vs %d", id,
				             e, s, va, vb);
				if (va == SL_DEDUP_DUP)
					cr_assert_eq(oa, ob, "producer %lu seq %lu", id, s);
			}
	}
}

static void assert_model(struct sl_dedup *t, const struct model *m)
{
	for (int i = 0; i < NPROD; i++) {
		for (uint64_t s = 0; s <= m->last[i] + 2; s++) {
			uint64_t o1 = 0, o2 = 0;
			int want = model_verdict(m, i, m->epoch[i], s, &o1);
			int got = chk(t, pid_of(i), m->epoch[i], s, &o2);
			cr_assert_eq(got, want, "producer %d seq %lu: %d, want %d", i, s, got,
			             want);
			if (got == SL_DEDUP_DUP)
				cr_assert_eq(o1, o2);
		}
	}
}

static void recovery_case(uint32_t w)
{
	struct sl_dedup *live = mk(w, 64);
	struct rec *log = calloc(MAXREC, sizeof(*log));
	struct model m = {.w = w};
	char err[256];
	size_t n = run_stream(live, &m, log), len, len2;

	cr_assert_gt(n, NSTEP / 10);
	assert_model(live, &m);
	/* Several marks: none, early, middle, late, past the end. */
	size_t cuts[] = {0, n / 50, n / 2, n - n / 20, n};
	for (size_t c = 0; c < SL_ARRAY_LEN(cuts); c++) {
		uint64_t upto = cuts[c] < n ? log[cuts[c]].off : log[n - 1].off + 1, got_upto = 0;
		struct sl_dedup *back = mk(w, 64), *again = mk(w, 64);
		uint8_t *b = ckpt(live, upto, &len), *b2;

		cr_assert_eq(sl_dedup_checkpoint_read(back, b, len, &got_upto, err, sizeof(err)), 0,
		             "%s", err);
		cr_assert_eq(got_upto, upto);
		/* What the checkpoint holds: nothing at or past upto. Every
		 * producer's last is below it. */
		for (int i = 0; i < NPROD; i++) {
			uint64_t last, o;
			uint32_t ep;
			if (sl_dedup_get(back, pid_of(i), &ep, &last) < 0)
				continue;
			cr_assert_eq(chk(back, pid_of(i), ep, last, &o), SL_DEDUP_DUP);
			cr_assert_lt(o, upto);
		}
		for (size_t k = cuts[c]; k < n; k++) {
			uint64_t o;
			uint32_t ep;
			uint64_t last;
			if (sl_dedup_get(back, log[k].id, &ep, &last) == 0)
				cr_assert_lt(last, log[k].seq);
			cr_assert_eq(sl_dedup_check(back, log[k].id, UINT32_MAX, log[k].seq, &o),
			             SL_DEDUP_NEW);
		}
		/* Canonical: read then write gives the same bytes. */
		b2 = ckpt(back, upto, &len2);
		cr_assert_eq(len2, len);
		cr_assert_eq(memcmp(b, b2, len), 0);
		free(b2);
		/* The log replay after the mark: then it answers like live. */
		for (size_t k = cuts[c]; k < n; k++)
			rec(back, log[k].id, log[k].epoch, log[k].seq, log[k].off);
		assert_same(live, back);
		/* A replay that starts earlier (an older mark) is harmless. */
		cr_assert_eq(sl_dedup_checkpoint_read(again, b, len, &got_upto, err, sizeof(err)),
		             0, "%s", err);
		for (size_t k = cuts[c] > n / 4 ? cuts[c] - n / 4 : 0; k < n; k++)
			rec(again, log[k].id, log[k].epoch, log[k].seq, log[k].off);
		assert_same(live, again);
		free(b);
		sl_dedup_destroy(back);
		sl_dedup_destroy(again);
	}
	/* A full replay of the log from nothing is the same too. */
	struct sl_dedup *full = mk(w, 64);
	for (size_t k = 0; k < n; k++)
		rec(full, log[k].id, log[k].epoch, log[k].seq, log[k].off);
	assert_same(live, full);
	sl_dedup_destroy(full);

	/* Window change: a checkpoint of this table read into one with half
	 * the window, plus the replay, equals a live table of half the window
	 * fed the same records. */
	if (w >= 4) {
		struct sl_dedup *small_live = mk(w / 2, 64), *small = mk(w / 2, 64);
		/* A late mark: most producers have little after it, so the
		 * cut to W/2 at read time shows before the replay. */
		size_t cut = n - n / 100;
		uint64_t upto = log[cut].off, got_upto;
		uint8_t *b = ckpt(live, upto, &len);
		for (size_t k = 0; k < n; k++)
			rec(small_live, log[k].id, log[k].epoch, log[k].seq, log[k].off);
		cr_assert_eq(sl_dedup_checkpoint_read(small, b, len, &got_upto, err, sizeof(err)),
		             0, "%s", err);
		/* Cut at once: nothing at or below last - W/2 is known. */
		for (int i = 0; i < NPROD; i++) {
			uint64_t last, o;
			uint32_t ep;
			if (sl_dedup_get(small, pid_of(i), &ep, &last) < 0 || last < w / 2)
				continue;
			for (uint64_t s = last >= w ? last - w : 0; s <= last - w / 2; s++)
				cr_assert_eq(chk(small, pid_of(i), ep, s, &o), SL_DEDUP_STALE,
				             "producer %d seq %lu last %lu", i, s, last);
		}
		for (size_t k = cut; k < n; k++)
			rec(small, log[k].id, log[k].epoch, log[k].seq, log[k].off);
		assert_same(small_live, small);
		free(b);
		/* Into a bigger window: what the checkpoint kept is kept, and
		 * nothing below it is claimed to be known. */
		struct sl_dedup *big = mk(w * 2, 64);
		b = ckpt(small_live, log[n - 1].off + 1, &len);
		cr_assert_eq(sl_dedup_checkpoint_read(big, b, len, &got_upto, err, sizeof(err)), 0,
		             "%s", err);
		assert_same(small_live, big);
		free(b);
		sl_dedup_destroy(big);
		sl_dedup_destroy(small);
		sl_dedup_destroy(small_live);
	}
	model_free(&m);
	free(log);
	sl_dedup_destroy(live);
}

Test(dedup, recovery_equivalence_w32)
{
	recovery_case(32);
}
Test(dedup, recovery_equivalence_w256)
{
	recovery_case(256);
}
Test(dedup, recovery_equivalence_w1)
{
	recovery_case(1);
}

/* ---- checkpoint format --------------------------------------------------- */

/* Three producers, and one whose entries are all at or past the mark. */
static struct sl_dedup *small_table(void)
{
	struct sl_dedup *t = mk(8, 8);
	for (uint64_t s = 0; s < 5; s++) {
		rec(t, 3, 2, s, 10 + 4 * s);
		rec(t, 5, 1, 2 * s, 11 + 4 * s);
		rec(t, 9, 7, s + 100, 12 + 4 * s);
	}
	rec(t, 4, 1, 0, 1000);
	return t;
}

Test(dedup, checkpoint_write)
{
	struct sl_dedup *t = small_table(), *r = mk(8, 8);
	uint64_t upto = 0, last;
	uint32_t ep;
	char err[200];
	size_t len, len2;
	uint8_t *b;

	/* The bound holds for a mark past everything (it may count entries
	 * below kept not yet dropped); too little room is -ENOSPC. */
	b = ckpt(t, UINT64_MAX, &len);
	cr_assert_leq(len, sl_dedup_checkpoint_bound(t));
	cr_assert_eq(sl_dedup_checkpoint_write(t, UINT64_MAX, b, len - 1, &len2), -ENOSPC);
	free(b);
	/* At 25: producer 4 (offset 1000) is left out, the others lose their
	 * last entry (offsets 26, 27, 28); producer 5 holds 2, 4, 6 (its 0 fell
	 * out of the window of 8 when 8 came). */
	b = ckpt(t, 25, &len);
	cr_assert_eq(len, SL_CKPT_HDR + 3 * SL_CKPT_PROD + (4 + 3 + 4) * SL_CKPT_ENTRY +
	                      SL_CKPT_TRAILER);
	uint64_t off;
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, &upto, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(upto, 25);
	cr_assert_eq(sl_dedup_count(r), 3);
	cr_assert_eq(sl_dedup_get(r, 4, &ep, &last), -ENOENT);
	cr_assert_eq(sl_dedup_get(r, 9, &ep, &last), 0);
	cr_assert_eq(ep, 7);
	cr_assert_eq(last, 103);
	cr_assert_eq(sl_dedup_get(r, 3, &ep, &last), 0);
	cr_assert_eq(ep, 2);
	cr_assert_eq(last, 3);
	cr_assert_eq(sl_dedup_get(r, 5, &ep, &last), 0);
	cr_assert_eq(last, 6);
	cr_assert_eq(chk(r, 5, 1, 0, &off), SL_DEDUP_STALE);
	cr_assert_eq(chk(r, 5, 1, 1, &off), -SL_ESEQ_GAP);
	cr_assert_eq(chk(r, 5, 1, 2, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 15);
	cr_assert_eq(chk(r, 5, 1, 8, &off), SL_DEDUP_NEW);
	free(b);
	sl_dedup_destroy(r);
	/* Into a smaller window: cut to it at once. */
	struct sl_dedup *big = mk(64, 1), *small = mk(8, 1);
	for (uint64_t s = 0; s < 100; s++)
		rec(big, 1, 1, s, s);
	b = ckpt(big, 100, &len);
	cr_assert_eq(sl_dedup_checkpoint_read(small, b, len, &upto, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(chk(small, 1, 1, 91, &off), SL_DEDUP_STALE);
	cr_assert_eq(chk(small, 1, 1, 92, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 92);
	cr_assert_eq(sl_dedup_checkpoint_bound(small),
	             SL_CKPT_HDR + SL_CKPT_TRAILER + SL_CKPT_PROD + 8 * SL_CKPT_ENTRY);
	free(b);
	sl_dedup_destroy(big);
	sl_dedup_destroy(small);
	/* An empty checkpoint. */
	r = mk(8, 8);
	b = ckpt(t, 0, &len);
	cr_assert_eq(len, SL_CKPT_HDR + SL_CKPT_TRAILER);
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, &upto, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_dedup_count(r), 0);
	free(b);
	sl_dedup_destroy(r);
	sl_dedup_destroy(t);
}

Test(dedup, checkpoint_corruption_refused)
{
	struct sl_dedup *t = small_table(), *r = mk(8, 8);
	uint64_t upto;
	char err[200];
	size_t len;
	uint8_t *b = ckpt(t, 2000, &len), *c = malloc(len + 16);

	/* Every truncation. */
	for (size_t l = 0; l < len; l++) {
		err[0] = '\0';
		int ret = sl_dedup_checkpoint_read(r, b, l, &upto, err, sizeof(err));
		cr_assert_eq(ret, -SL_ECORRUPT, "len %zu: %d", l, ret);
		cr_assert_neq(err[0], '\0');
		cr_assert_eq(sl_dedup_count(r), 0);
	}
	/* Every single-bit flip. */
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			err[0] = '\0';
			int ret = sl_dedup_checkpoint_read(r, b, len, &upto, err, sizeof(err));
			b[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(ret, -SL_ECORRUPT, "byte %zu bit %d: %d", i, bit, ret);
			cr_assert_neq(err[0], '\0');
			cr_assert_eq(sl_dedup_count(r), 0);
		}
	}

	/* Each structural fault, with a valid checksum, named as such.
	 * Layout (dedup/checkpoint_format.h): the header; producer 3 first
	 * (5 entries), then 4 (1), 5 (4), 9 (5); the trailer. */
	const size_t p3 = SL_CKPT_HDR, p4 = p3 + SL_CKPT_PROD + 5 * SL_CKPT_ENTRY,
	             p5 = p4 + SL_CKPT_PROD + 1 * SL_CKPT_ENTRY;
	const size_t p3e1 = p3 + SL_CKPT_PROD + SL_CKPT_ENTRY; /* producer 3's 2nd entry */
	cr_assert_eq(len, SL_CKPT_HDR + 4 * SL_CKPT_PROD + 15 * SL_CKPT_ENTRY + SL_CKPT_TRAILER);
	struct {
		size_t at;
		int width; /* 4 or 8 */
		uint64_t val;
		const char *says;
	} faults[] = {
	    {SL_CKPT_MAGIC, 4, 0x12345678, "magic"},
	    {SL_CKPT_VERSION, 4, 1, "version"},
	    {SL_CKPT_WINDOW, 4, 12, "window"},
	    {SL_CKPT_WINDOW, 4, 0, "window"},
	    {SL_CKPT_RESERVED, 4, 1, "reserved"},
	    {SL_CKPT_UPTO, 8, 20, "mark"},               /* offsets >= upto */
	    {SL_CKPT_NPROD, 8, 3, "trailing"},           /* fewer producers than stored */
	    {SL_CKPT_NPROD, 8, 5, "truncated"},          /* more producers than stored */
	    {SL_CKPT_NPROD, 8, 1000, "overrun"},         /* more than the length holds */
	    {p3 + SL_CKPT_P_ID, 8, 0, "id 0"},           /* producer id 0 */
	    {p4 + SL_CKPT_P_ID, 8, 3, "ascending"},      /* 4 -> 3: duplicate id */
	    {p5 + SL_CKPT_P_ID, 8, 2, "ascending"},      /* 5 -> 2 */
	    {p3 + SL_CKPT_P_N, 4, 0, "no entries"},      /* n = 0 */
	    {p3 + SL_CKPT_P_N, 4, 9, "window is 8"},     /* n > window */
	    {p3 + SL_CKPT_P_N, 4, 400, "window is 8"},   /* n far beyond */
	    {p3 + SL_CKPT_P_KEPT, 8, 1, "kept"},         /* kept above the oldest entry */
	    {p3e1 + SL_CKPT_E_SEQ, 8, 0, "increase"},    /* seq 1 -> 0 */
	    {p3e1 + SL_CKPT_E_OFFSET, 8, 5, "increase"}, /* offset 14 -> 5 */
	    {p3e1 + SL_CKPT_E_SEQ, 8, UINT64_MAX, ">= 2^63"},
	};
	for (size_t f = 0; f < SL_ARRAY_LEN(faults); f++) {
		memcpy(c, b, len);
		if (faults[f].width == 4)
			put32(c + faults[f].at, (uint32_t)faults[f].val);
		else
			put64(c + faults[f].at, faults[f].val);
		reseal(c, len);
		err[0] = '\0';
		int ret = sl_dedup_checkpoint_read(r, c, len, &upto, err, sizeof(err));
		cr_assert_eq(ret, -SL_ECORRUPT, "fault %zu: %d (%s)", f, ret, err);
		cr_assert_not_null(strstr(err, faults[f].says), "fault %zu: \"%s\" lacks \"%s\"", f,
		                   err, faults[f].says);
		cr_assert_eq(sl_dedup_count(r), 0);
	}
	/* Padding after the trailer; a length field that disagrees. */
	memcpy(c, b, len);
	memset(c + len, 0, 8);
	reseal(c, len + 8);
	cr_assert_eq(sl_dedup_checkpoint_read(r, c, len + 8, &upto, err, sizeof(err)),
	             -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, "trailing"), "%s", err);
	cr_assert_eq(sl_dedup_checkpoint_read(r, c, len, &upto, err, sizeof(err)), -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, "header says"), "%s", err);

	/* More producers than fit; a table that is not empty. */
	struct sl_dedup *tiny = mk(8, 3);
	cr_assert_eq(sl_dedup_checkpoint_read(tiny, b, len, &upto, err, sizeof(err)), -ENOSPC);
	cr_assert_not_null(strstr(err, "room for 3"), "%s", err);
	cr_assert_eq(sl_dedup_count(tiny), 0);
	sl_dedup_destroy(tiny);
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, &upto, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_dedup_count(r), 4);
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, &upto, err, sizeof(err)), -EBUSY);
	cr_assert_eq(sl_dedup_count(r), 4);
	free(c);
	free(b);
	sl_dedup_destroy(t);
	sl_dedup_destroy(r);
}

Test(dedup, bad_options)
{
	struct sl_dedup *t = NULL;
	struct sl_dedup_opts o = {.window = 100};
	cr_assert_eq(sl_dedup_create(&o, &t), -EINVAL);
	o.window = SL_DEDUP_WINDOW_MAX * 2;
	cr_assert_eq(sl_dedup_create(&o, &t), -EINVAL);
	o.window = 0;
	o.max_producers = SL_DEDUP_PRODUCERS_MAX + 1;
	cr_assert_eq(sl_dedup_create(&o, &t), -EINVAL);
	cr_assert_eq(sl_dedup_create(NULL, &t), 0);
	cr_assert_gt(sl_dedup_memory(t), 0);
	sl_dedup_destroy(t);
}

/* Idle producers give up their old entries; busy ones keep them. */
Test(dedup, trim_idle_producers)
{
	struct sl_dedup *t = mk(256, 0);
	uint64_t off = 0, o;
	for (uint64_t s = 0; s < 200; s++) {
		rec(t, 7, 1, s, off++); /* idle after this */
		rec(t, 9, 1, s, off++); /* keeps going */
	}
	size_t before = sl_dedup_memory(t);
	for (int i = 0; i < 10; i++)
		sl_dedup_tick(t);
	rec(t, 9, 1, 200, off++);
	cr_assert_gt(sl_dedup_trim(t, 5), 0, "the idle producer's FIFO was not freed");
	cr_assert_lt(sl_dedup_memory(t), before);
	/* Producer 7: its last is still a known duplicate, older ones are
	 * duplicates whose offset is forgotten, new ones are new. */
	cr_assert_eq(sl_dedup_check(t, 7, 1, 199, &o), SL_DEDUP_DUP);
	cr_assert_eq(o, 2 * 199);
	cr_assert_eq(sl_dedup_check(t, 7, 1, 150, &o), SL_DEDUP_STALE);
	cr_assert_eq(sl_dedup_check(t, 7, 1, 200, &o), SL_DEDUP_NEW);
	/* Producer 9 recorded within the idle time: untouched. */
	cr_assert_eq(sl_dedup_check(t, 9, 1, 150, &o), SL_DEDUP_DUP);
	cr_assert_eq(o, 2 * 150 + 1);
	/* And 7 goes on from there. */
	rec(t, 7, 1, 200, off++);
	cr_assert_eq(sl_dedup_check(t, 7, 1, 200, &o), SL_DEDUP_DUP);
	/* A second trim with nothing idle frees nothing. */
	cr_assert_eq(sl_dedup_trim(t, 5), 0);
	sl_dedup_destroy(t);
}

/*
 * A checkpoint as sluice wrote it before issue 20 (version 2,
 * dedup/checkpoint_format.h): window 8, upto 100, producer 7 at epoch 2
 * with sequences 0 and 1 at offsets 50 and 60. Existing data folders must
 * keep loading: this must still read.
 */
static const uint8_t golden_ckpt_v2[100] = {
    0x53, 0x4c, 0x44, 0x44, 0x02, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5c, 0x12, 0xc9, 0x9e,
};

/*
 * The same state in version 3, the one written now: producer 7's last
 * record at table time 1700000000123 ms, and a producer forgotten whose
 * last record was at 1700000000000 (forgot_ms). The same state must write
 * exactly these bytes, and they must read back.
 */
static const uint8_t golden_ckpt[116] = {
    0x53, 0x4c, 0x44, 0x44, 0x03, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x74, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0xe5, 0xcf, 0x8b,
    0x01, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x7b, 0x68, 0xe5,
    0xcf, 0x8b, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x45, 0xab, 0x78, 0x2f,
};

#define T0 UINT64_C(1700000000000)

Test(dedup, golden_checkpoint_v2_still_reads)
{
	const uint8_t *g = golden_ckpt_v2, *p = g + SL_CKPT_HDR_V2;
	cr_assert_eq(sl_get_le32(g + SL_CKPT_VERSION), 2);
	cr_assert_eq(sl_get_le64(p + SL_CKPT_P_ID), 7);
	cr_assert_eq(sl_get_le64(p + SL_CKPT_PROD_V2 + SL_CKPT_ENTRY + SL_CKPT_E_OFFSET), 60);

	struct sl_dedup *r = mk(8, 8);
	uint64_t upto, off, last;
	uint32_t ep;
	char err[200];
	cr_assert_eq(
	    sl_dedup_checkpoint_read(r, g, sizeof(golden_ckpt_v2), &upto, err, sizeof(err)), 0,
	    "%s", err);
	cr_assert_eq(upto, 100);
	cr_assert_eq(sl_dedup_get(r, 7, &ep, &last), 0);
	cr_assert_eq(ep, 2);
	cr_assert_eq(last, 1);
	cr_assert_eq(chk(r, 7, 2, 1, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 60);
	cr_assert_eq(sl_dedup_forgot_ms(r), 0);
	/* Its time is not known: it counts as the table's newest, so an
	 * expiry right after the upgrade forgets nobody. */
	sl_dedup_set_time(r, T0);
	cr_assert_eq(sl_dedup_expire(r, 1000), 0);
	cr_assert_eq(sl_dedup_count(r), 1);
	sl_dedup_destroy(r);
}

Test(dedup, golden_checkpoint)
{
	const uint8_t *g = golden_ckpt, *p = g + SL_CKPT_HDR;
	cr_assert_eq(sl_get_le32(g + SL_CKPT_MAGIC), SL_DEDUP_CKPT_MAGIC);
	cr_assert_eq(sl_get_le32(g + SL_CKPT_VERSION), SL_DEDUP_CKPT_VERSION);
	cr_assert_eq(sl_get_le64(g + SL_CKPT_LENGTH), sizeof(golden_ckpt));
	cr_assert_eq(sl_get_le64(g + SL_CKPT_FORGOT), T0);
	cr_assert_eq(sl_get_le64(p + SL_CKPT_P_ID), 7);
	cr_assert_eq(sl_get_le32(p + SL_CKPT_P_N), 2);
	cr_assert_eq(sl_get_le64(p + SL_CKPT_P_LAST_MS), T0 + 123);
	cr_assert_eq(sl_get_le64(p + SL_CKPT_PROD + SL_CKPT_ENTRY + SL_CKPT_E_OFFSET), 60);

	struct sl_dedup *r = mk(8, 8), *t = mk(8, 8);
	uint64_t upto, off, last;
	uint32_t ep;
	char err[200];
	cr_assert_eq(sl_dedup_checkpoint_read(r, g, sizeof(golden_ckpt), &upto, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(upto, 100);
	cr_assert_eq(sl_dedup_get(r, 7, &ep, &last), 0);
	cr_assert_eq(ep, 2);
	cr_assert_eq(last, 1);
	cr_assert_eq(chk(r, 7, 2, 1, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 60);
	cr_assert_eq(chk(r, 7, 2, 2, &off), SL_DEDUP_NEW);
	cr_assert_eq(sl_dedup_forgot_ms(r), T0);

	sl_dedup_set_time(t, T0);
	rec(t, 9, 1, 0, 10);
	sl_dedup_set_time(t, T0 + 123);
	cr_assert_eq(sl_dedup_expire(t, 100), 1);
	rec(t, 7, 2, 0, 50);
	rec(t, 7, 2, 1, 60);
	size_t len;
	uint8_t *b = ckpt(t, 100, &len);
	cr_assert_eq(len, sizeof(golden_ckpt));
	cr_assert_eq(memcmp(b, golden_ckpt, len), 0, "the checkpoint's bytes changed");
	free(b);
	sl_dedup_destroy(r);
	sl_dedup_destroy(t);
}

/* ---- forgetting (issue 20) ----------------------------------------------- */

Test(dedup, the_least_recently_used_eighth_goes_at_the_bound)
{
	const uint32_t maxp = 64;
	struct sl_dedup *t = mk(16, maxp);
	uint64_t off = 1, o;

	/* Producer i last recorded at T0 + i. */
	for (uint64_t i = 1; i <= maxp; i++) {
		sl_dedup_set_time(t, T0 + i);
		rec(t, i, 1, 0, off++);
	}
	cr_assert_eq(sl_dedup_count(t), maxp);
	cr_assert_eq(sl_dedup_forgotten(t), 0);
	/* One more: producers 1..8 (the oldest eighth) go, never a newer one. */
	sl_dedup_set_time(t, T0 + 100);
	cr_assert_eq(sl_dedup_prepare(t, 1000, 0), 0);
	rec(t, 1000, 1, 0, off++);
	cr_assert_eq(sl_dedup_count(t), maxp - 8 + 1);
	cr_assert_eq(sl_dedup_forgotten(t), 8);
	cr_assert_eq(sl_dedup_forgot_ms(t), T0 + 8);
	for (uint64_t i = 1; i <= maxp; i++) {
		uint32_t ep;
		uint64_t last;
		cr_assert_eq(sl_dedup_get(t, i, &ep, &last) == 0, i > 8, "producer %lu", i);
	}
	/* A kept one still answers duplicates with their offsets. */
	cr_assert_eq(chk(t, 9, 1, 0, &o), SL_DEDUP_DUP);
	cr_assert_eq(o, 9);
	/* A forgotten one's first sending is new; its resend, first sent
	 * before it was forgotten, is refused; one first sent after the
	 * newest forgotten record cannot have been stored before. */
	cr_assert_eq(chk(t, 3, 1, 0, &o), SL_DEDUP_NEW);
	cr_assert_eq(sl_dedup_resend_check(t, 3, T0 + 3), -SL_EPRODUCER_EXPIRED);
	cr_assert_eq(sl_dedup_resend_check(t, 3, T0 + 8), -SL_EPRODUCER_EXPIRED);
	cr_assert_eq(sl_dedup_resend_check(t, 3, T0 + 9), 0);
	/* Known producers are the table's to answer. */
	cr_assert_eq(sl_dedup_resend_check(t, 9, 1), 0);
	sl_dedup_destroy(t);
}

Test(dedup, memory_stays_bounded_with_producers_that_come_and_go)
{
	const uint32_t maxp = 1024;
	struct sl_dedup *t = mk(64, maxp);
	uint64_t off = 1;
	size_t high = 0;

	/* 100 times the bound, each producer a few events then gone. */
	for (uint64_t id = 1; id <= 100 * (uint64_t)maxp; id++) {
		sl_dedup_set_time(t, T0 + id / 16);
		for (uint64_t s = 0; s < 3; s++) {
			cr_assert_eq(sl_dedup_prepare(t, id, s), 0);
			rec(t, id, 1, s, off++);
		}
		cr_assert_leq(sl_dedup_count(t), maxp);
		if (sl_dedup_memory(t) > high)
			high = sl_dedup_memory(t);
	}
	cr_assert_eq(sl_dedup_forgotten(t) + sl_dedup_count(t), 100 * (uint64_t)maxp);
	/* 64 B a bucket at 2 buckets a producer, 8 FIFO entries of 16 B. */
	cr_assert_leq(high, 4096 + (size_t)maxp * (2 * 64 + 8 * 16) * 2, "%zu bytes", high);
	sl_dedup_destroy(t);
}

Test(dedup, idle_producers_expire_and_their_resends_are_refused)
{
	struct sl_dedup *t = mk(16, 100);
	uint64_t o;

	sl_dedup_set_time(t, T0);
	rec(t, 1, 1, 0, 1);
	rec(t, 2, 1, 0, 2);
	sl_dedup_set_time(t, T0 + 5000);
	rec(t, 2, 1, 1, 3);
	/* Nobody idle for 6 s yet. */
	sl_dedup_set_time(t, T0 + 5999);
	cr_assert_eq(sl_dedup_expire(t, 6000), 0);
	cr_assert_eq(sl_dedup_count(t), 2);
	/* 1 has been idle for 6 s and goes; 2 recorded 5 s later stays. */
	sl_dedup_set_time(t, T0 + 6001);
	cr_assert_eq(sl_dedup_expire(t, 6000), 1);
	cr_assert_eq(sl_dedup_count(t), 1);
	cr_assert_eq(sl_dedup_forgot_ms(t), T0);
	cr_assert_eq(chk(t, 2, 1, 1, &o), SL_DEDUP_DUP);
	cr_assert_eq(sl_dedup_resend_check(t, 1, T0), -SL_EPRODUCER_EXPIRED);
	cr_assert_eq(sl_dedup_resend_check(t, 1, T0 + 1), 0);
	/* The mark survives a checkpoint, and so do the times. */
	size_t len;
	uint8_t *b = ckpt(t, 100, &len);
	struct sl_dedup *r = mk(16, 100);
	uint64_t upto;
	char err[200];
	cr_assert_eq(sl_dedup_checkpoint_read(r, b, len, &upto, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_dedup_forgot_ms(r), T0);
	cr_assert_eq(sl_dedup_resend_check(r, 1, T0), -SL_EPRODUCER_EXPIRED);
	sl_dedup_set_time(r, T0 + 11001);
	cr_assert_eq(sl_dedup_expire(r, 6000), 1, "2's time came back with it");
	cr_assert_eq(sl_dedup_forgot_ms(r), T0 + 5000);
	free(b);
	sl_dedup_destroy(r);
	sl_dedup_destroy(t);
}
