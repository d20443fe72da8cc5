#include "dedup/dedup.h"
#include "dedup/dedup_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"

static uint64_t sl__hash(uint32_t shift, uint64_t id)
{
	return (id * UINT64_C(0x9e3779b97f4a7c15)) >> shift;
}

static uint64_t sl__find_pos(struct sl__dedup_prod *tab, uint64_t cap, uint32_t shift, uint64_t id,
                             bool *found)
{
	uint64_t mask = cap - 1, i = sl__hash(shift, id);

	/* count <= cap / 2, so an empty bucket ends every probe. */
	for (;; i = (i + 1) & mask) {
		if (tab[i].id == id) {
			*found = true;
			return i;
		}
		if (!tab[i].id) {
			*found = false;
			return i;
		}
	}
}

static struct sl__dedup_prod *sl__find(const struct sl_dedup *t, uint64_t id)
{
	bool found;
	uint64_t i;

	if (!id)
		return NULL;
	i = sl__find_pos(t->tab, t->cap, t->shift, id, &found);
	return found ? &t->tab[i] : NULL;
}

/* The cached lookup of check() and record(). */
static struct sl__dedup_prod *sl__lookup(struct sl_dedup *t, uint64_t id)
{
	bool found;
	uint64_t i;

	if (id && id == t->cache_id)
		return &t->tab[t->cache_pos];
	if (!id)
		return NULL;
	i = sl__find_pos(t->tab, t->cap, t->shift, id, &found);
	if (!found)
		return NULL;
	t->cache_id = id;
	t->cache_pos = i;
	return &t->tab[i];
}

/*
 * The index (0 = oldest) of the entry holding `seq`, or -1. Seqs strictly
 * increase along the FIFO, so entry i holds at least first + i and at most
 * last - (n - 1 - i): the search runs between those bounds, which meet when
 * the producer's events here are consecutive (one probe: the common retry
 * after a reconnect of a producer with one hot key); for events spread over
 * partitions it is a binary search of the FIFO.
 */
static int64_t sl__find_seq(const struct sl__dedup_prod *p, uint64_t seq)
{
	uint64_t first = p->fifo[p->head].seq, top = p->n - 1;
	uint64_t lo, hi;

	if (seq < first || seq > p->last)
		return -1;
	lo = p->last - seq >= top ? 0 : top - (p->last - seq);
	hi = seq - first >= top ? top : seq - first;
	while (lo <= hi) {
		uint64_t mid = lo + (hi - lo) / 2, s = sl__at(p, (uint32_t)mid)->seq;
		if (s == seq)
			return (int64_t)mid;
		if (s < seq)
			lo = mid + 1;
		else if (mid == 0)
			break;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Drops the entries below kept (a prefix: seqs increase). */
static void sl__fifo_prune(struct sl_dedup *t, struct sl__dedup_prod *p)
{
	/* Amortised O(1): each entry leaves once. */
	while (p->n && p->fifo[p->head].seq < p->kept) {
		p->head = (p->head + 1) & p->mask;
		p->n--;
		t->entries--;
	}
}

/* Doubles the FIFO, oldest entry to index 0. Capacity never exceeds W
 * after a prune leaves it full: the entries left have distinct seqs in
 * [last - W + 1, last]. */
static int sl__fifo_grow(struct sl_dedup *t, struct sl__dedup_prod *p)
{
	uint32_t cap = p->mask + 1, ncap = cap * 2;
	struct sl__dedup_ent *f = malloc((size_t)ncap * sizeof(*f));

	if (!f)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->n; i++)
		f[i] = *sl__at(p, i);
	free(p->fifo);
	p->fifo = f;
	p->head = 0;
	p->mask = ncap - 1;
	t->fifo_bytes += (size_t)(ncap - cap) * sizeof(*f);
	return 0;
}

static int sl__tab_grow(struct sl_dedup *t)
{
	uint64_t ncap = t->cap * 2;
	uint32_t nshift = t->shift - 1;
	struct sl__dedup_prod *nt = calloc(ncap, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->cap; i++) {
		bool found;
		if (!t->tab[i].id)
			continue;
		nt[sl__find_pos(nt, ncap, nshift, t->tab[i].id, &found)] = t->tab[i];
	}
	free(t->tab);
	t->tab = nt;
	t->cap = ncap;
	t->shift = nshift;
	t->cache_id = 0;
	return 0;
}

static uint64_t sl__last_ms(const struct sl_dedup *t, const struct sl__dedup_prod *p)
{
	return p->last_ms ? p->last_ms : t->now_ms;
}

/*
 * Forgets producers for which `gone` says so (their FIFOs freed), moving
 * the rest to a fresh bucket array of the same size: linear probing has no
 * cheap delete, and a sweep touches every bucket anyway. The newest
 * last_ms forgotten raises forgot_ms. -ENOMEM leaves the table as it was.
 */
static int sl__forget(struct sl_dedup *t,
                      bool (*gone)(const struct sl_dedup *t, const struct sl__dedup_prod *p,
                                   void *arg),
                      void *arg, uint64_t *n_out)
{
	struct sl__dedup_prod *nt = calloc(t->cap, sizeof(*nt));
	uint64_t n = 0;

	if (!nt)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->cap; i++) {
		struct sl__dedup_prod *p = &t->tab[i];
		bool found;
		if (!p->id)
			continue;
		if (!gone(t, p, arg)) {
			nt[sl__find_pos(nt, t->cap, t->shift, p->id, &found)] = *p;
			continue;
		}
		uint64_t ms = sl__last_ms(t, p);
		if (ms > t->forgot_ms)
			t->forgot_ms = ms;
		t->entries -= p->n;
		t->fifo_bytes -= (size_t)(p->mask + 1) * sizeof(p->fifo[0]);
		free(p->fifo);
		t->count--;
		n++;
	}
	free(t->tab);
	t->tab = nt;
	t->cache_id = 0;
	t->forgotten += n;
	*n_out = n;
	return 0;
}

struct sl__lru_cut {
	uint64_t below; /* every producer older than this goes ... */
	uint64_t at;    /* ... and as many as `left` of those exactly this old */
	uint64_t left;
};

static bool sl__lru_gone(const struct sl_dedup *t, const struct sl__dedup_prod *p, void *arg)
{
	struct sl__lru_cut *c = arg;
	uint64_t ms = sl__last_ms(t, p);

	if (ms < c->below)
		return true;
	if (ms == c->at && c->left) {
		c->left--;
		return true;
	}
	return false;
}

/*
 * The table is at max_producers: the least recently used eighth goes, in
 * one sweep (amortised over the max/8 new producers that follow it, O(1)
 * each; one by one would need an LRU list through every record()).
 */
static int sl__evict(struct sl_dedup *t)
{
	uint64_t k = t->count / 8 ? t->count / 8 : 1, m = 0, n;
	uint64_t *v = malloc((size_t)t->count * sizeof(*v));
	struct sl__lru_cut cut;

	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->cap; i++)
		if (t->tab[i].id)
			v[m++] = sl__last_ms(t, &t->tab[i]);
	/* The k-th oldest time: all older go, then that time's own. */
	cut.at = sl_select_u64(v, m, k - 1);
	cut.below = cut.at;
	cut.left = k;
	for (uint64_t i = 0; i < m; i++)
		if (v[i] < cut.at)
			cut.left--;
	free(v);
	return sl__forget(t, sl__lru_gone, &cut, &n);
}

/* A new producer with one entry: created whole or not at all. */
int sl__dedup_create_prod(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
                          uint64_t offset, uint32_t fifo_cap, struct sl__dedup_prod **out)
{
	struct sl__dedup_ent *f;
	struct sl__dedup_prod *p;
	bool found;
	int ret;

	if (t->count >= t->max_producers && (ret = sl__evict(t)) < 0)
		return ret;
	if (t->spare && fifo_cap == sl__first_fifo_cap(t)) {
		f = t->spare;
		t->spare = NULL;
	} else if (!(f = malloc((size_t)fifo_cap * sizeof(*f)))) {
		return -ENOMEM;
	}
	if (2 * ((uint64_t)t->count + 1) > t->cap && (ret = sl__tab_grow(t)) < 0) {
		if (!t->spare && fifo_cap == sl__first_fifo_cap(t))
			t->spare = f;
		else
			free(f);
		return ret;
	}
	p = &t->tab[sl__find_pos(t->tab, t->cap, t->shift, id, &found)];
	p->id = id;
	p->epoch = epoch;
	p->last = seq;
	p->kept = sl__kept_floor(t, seq);
	p->fifo = f;
	p->fifo[0] = (struct sl__dedup_ent){seq, offset};
	p->head = 0;
	p->n = 1;
	p->mask = fifo_cap - 1;
	p->touched = t->clock;
	p->last_ms = t->now_ms;
	t->count++;
	t->entries++;
	t->fifo_bytes += (size_t)fifo_cap * sizeof(*f);
	*out = p;
	return 0;
}

int sl_dedup_create(const struct sl_dedup_opts *o, struct sl_dedup **out)
{
	uint32_t w = o && o->window ? o->window : SL_DEDUP_WINDOW_DEFAULT;
	uint32_t maxp = o && o->max_producers ? o->max_producers : SL_DEDUP_PRODUCERS_DEFAULT;
	struct sl_dedup *t;

	if (!sl_is_pow2(w) || w > SL_DEDUP_WINDOW_MAX || maxp > SL_DEDUP_PRODUCERS_MAX)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* Starts small and doubles: most partitions see few producers. */
	t->tab = calloc(SL__TAB_FIRST, sizeof(t->tab[0]));
	if (!t->tab) {
		free(t);
		return -ENOMEM;
	}
	t->window = w;
	t->max_producers = maxp;
	t->cap = SL__TAB_FIRST;
	t->shift = 64 - 4;
	*out = t;
	return 0;
}

void sl__dedup_clear(struct sl_dedup *t)
{
	for (uint64_t i = 0; i < t->cap; i++) {
		free(t->tab[i].fifo);
		t->tab[i] = (struct sl__dedup_prod){0};
	}
	t->count = 0;
	t->entries = 0;
	t->fifo_bytes = 0;
	t->cache_id = 0;
}

void sl_dedup_destroy(struct sl_dedup *t)
{
	if (!t)
		return;
	sl__dedup_clear(t);
	free(t->spare);
	free(t->tab);
	free(t);
}

int sl_dedup_check(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq, uint64_t *offset)
{
	const struct sl__dedup_prod *p;
	int64_t i;

	if (SL_UNLIKELY(seq >= SL_DEDUP_SEQ_LIMIT))
		return -EINVAL;
	p = sl__lookup(t, id);
	if (!p)
		return SL_DEDUP_NEW;
	if (SL_UNLIKELY(epoch < p->epoch))
		return -SL_EFENCED;
	if (SL_LIKELY(seq > p->last))
		return SL_DEDUP_NEW;
	if (seq < p->kept)
		return SL_DEDUP_STALE;
	i = sl__find_seq(p, seq);
	if (i >= 0) {
		*offset = sl__at(p, (uint32_t)i)->offset;
		return SL_DEDUP_DUP;
	}
	return -SL_ESEQ_GAP;
}

/* seq <= last: a replay of something recorded, or a caller's mistake. */
static int sl__replay(const struct sl__dedup_prod *p, uint64_t seq, uint64_t offset)
{
	int64_t i;

	if (seq < p->kept) {
		/* Dropped long ago, or still held but below kept. */
		if (offset < p->fifo[p->head].offset)
			return 0;
		i = sl__find_seq(p, seq);
		return i >= 0 && sl__at(p, (uint32_t)i)->offset == offset ? 0 : -EINVAL;
	}
	i = sl__find_seq(p, seq);
	if (i >= 0 && sl__at(p, (uint32_t)i)->offset == offset)
		return 0;
	return -EINVAL;
}

int sl_dedup_record(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq, uint64_t offset)
{
	struct sl__dedup_prod *p;
	uint64_t kept;
	int ret;

	if (SL_UNLIKELY(!id || seq >= SL_DEDUP_SEQ_LIMIT))
		return -EINVAL;
	p = sl__lookup(t, id);
	if (SL_UNLIKELY(!p))
		return sl__dedup_create_prod(t, id, epoch, seq, offset, sl__first_fifo_cap(t), &p);
	if (SL_UNLIKELY(seq <= p->last))
		return sl__replay(p, seq, offset);
	if (SL_UNLIKELY(offset <= sl__at(p, p->n - 1)->offset))
		return -EINVAL;
	/*
	 * Entries below `kept` are dropped lazily, in bulk, when the FIFO is
	 * full: dropping one per record put a cache miss on the oldest entry
	 * (W / partitions records back) into every append (perf: the top
	 * dedup cost). Nothing reads entries below kept (check() answers
	 * STALE first, checkpoints skip them), so they are dead weight only.
	 * Only entries below the current kept go, and growth comes before
	 * any other change, so a failed growth leaves the table as it was.
	 */
	kept = sl__kept_floor(t, seq);
	if (kept < p->kept)
		kept = p->kept;
	if (SL_UNLIKELY(p->n > p->mask)) {
		/* Nothing to drop: grow (a FIFO of W never needs to: its
		 * entries would span more than W sequences). */
		if (p->fifo[p->head].seq >= kept && (ret = sl__fifo_grow(t, p)) < 0)
			return ret;
		p->kept = kept;
		sl__fifo_prune(t, p);
		/* More than half full after the drop: grow, up to W, so the
		 * next drop frees at least half. */
		if (p->n > (p->mask + 1) / 2 && p->mask + 1 < t->window)
			(void)sl__fifo_grow(t, p); /* an optimisation: may fail */
	}
	p->kept = kept;
	*sl__at(p, p->n) = (struct sl__dedup_ent){seq, offset};
	p->n++;
	t->entries++;
	p->last = seq;
	p->touched = t->clock;
	p->last_ms = t->now_ms;
	if (epoch > p->epoch)
		p->epoch = epoch;
	return 0;
}

void sl_dedup_tick(struct sl_dedup *t)
{
	t->clock++;
}

void sl_dedup_set_time(struct sl_dedup *t, uint64_t now_ms)
{
	if (now_ms > t->now_ms)
		t->now_ms = now_ms;
}

uint64_t sl_dedup_now_ms(const struct sl_dedup *t)
{
	return t->now_ms;
}

int sl_dedup_prepare(struct sl_dedup *t, uint64_t id, uint64_t seq)
{
	struct sl__dedup_prod *p = sl__lookup(t, id);
	int ret;

	if (!p) {
		/* What sl__create_prod needs, done now: room in the table
		 * (an eviction, a growth) and its first FIFO. */
		if (t->count >= t->max_producers && (ret = sl__evict(t)) < 0)
			return ret;
		if (2 * ((uint64_t)t->count + 1) > t->cap && (ret = sl__tab_grow(t)) < 0)
			return ret;
		if (!t->spare &&
		    !(t->spare = malloc((size_t)sl__first_fifo_cap(t) * sizeof(*t->spare))))
			return -ENOMEM;
		return 0;
	}
	if (seq <= p->last || p->n <= p->mask)
		return 0;
	/* record() would grow a full FIFO whose oldest entry it must keep. */
	uint64_t kept = sl__kept_floor(t, seq);
	if (kept < p->kept)
		kept = p->kept;
	if (p->fifo[p->head].seq >= kept)
		return sl__fifo_grow(t, p);
	return 0;
}

int sl_dedup_resend_check(struct sl_dedup *t, uint64_t id, uint64_t since_ms)
{
	if (sl__lookup(t, id))
		return 0;
	return t->forgot_ms && since_ms <= t->forgot_ms ? -SL_EPRODUCER_EXPIRED : 0;
}

static bool sl__idle_gone(const struct sl_dedup *t, const struct sl__dedup_prod *p, void *arg)
{
	uint64_t cut = *(const uint64_t *)arg;

	return sl__last_ms(t, p) < cut;
}

uint64_t sl_dedup_expire(struct sl_dedup *t, uint64_t idle_ms)
{
	uint64_t cut, n = 0;
	bool any = false;

	if (!idle_ms || t->now_ms <= idle_ms)
		return 0;
	cut = t->now_ms - idle_ms;
	/* Most sweeps find nobody: look before building a new array. */
	for (uint64_t i = 0; i < t->cap && !any; i++)
		any = t->tab[i].id && sl__last_ms(t, &t->tab[i]) < cut;
	if (any && sl__forget(t, sl__idle_gone, &cut, &n) < 0)
		return 0; /* no memory for the sweep: the next one tries again */
	return n;
}

uint64_t sl_dedup_forgotten(const struct sl_dedup *t)
{
	return t->forgotten;
}

uint64_t sl_dedup_forgot_ms(const struct sl_dedup *t)
{
	return t->forgot_ms;
}

size_t sl_dedup_trim(struct sl_dedup *t, uint32_t idle_ticks)
{
	size_t before = t->fifo_bytes;
	uint32_t cap = sl__first_fifo_cap(t);

	for (uint64_t i = 0; i < t->cap; i++) {
		struct sl__dedup_prod *p = &t->tab[i];
		if (!p->id || t->clock - p->touched < idle_ticks || p->mask + 1 <= cap)
			continue;
		struct sl__dedup_ent *f = malloc((size_t)cap * sizeof(*f));
		if (!f)
			break; /* keep what is there: still correct, only larger */
		/* Only the last entry stays: every record with seq >= last is
		 * in the FIFO, so kept = last keeps the invariant. */
		f[0] = *sl__at(p, p->n - 1);
		free(p->fifo);
		t->entries -= p->n - 1;
		t->fifo_bytes -= (size_t)(p->mask + 1 - cap) * sizeof(*f);
		p->fifo = f;
		p->head = 0;
		p->n = 1;
		p->mask = cap - 1;
		p->kept = p->last;
	}
	t->cache_id = 0;
	return before - t->fifo_bytes;
}

int sl_dedup_get(const struct sl_dedup *t, uint64_t id, uint32_t *epoch, uint64_t *last)
{
	const struct sl__dedup_prod *p = sl__find(t, id);

	if (!p)
		return -ENOENT;
	*epoch = p->epoch;
	*last = p->last;
	return 0;
}

uint32_t sl_dedup_count(const struct sl_dedup *t)
{
	return t->count;
}

void sl_dedup_foreach(const struct sl_dedup *t,
                      void (*fn)(void *arg, uint64_t id, uint32_t epoch, uint64_t last), void *arg)
{
	for (uint64_t i = 0; i < t->cap; i++)
		if (t->tab[i].id)
			fn(arg, t->tab[i].id, t->tab[i].epoch, t->tab[i].last);
}

size_t sl_dedup_memory(const struct sl_dedup *t)
{
	return sizeof(*t) + (size_t)t->cap * sizeof(t->tab[0]) + t->fifo_bytes +
	       (t->spare ? sl__first_fifo_cap(t) * sizeof(t->spare[0]) : 0);
}
