#include "dedup/dedup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"

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

static struct sl__dedup_ent *sl__at(const struct sl__dedup_prod *p, uint32_t i)
{
	return &p->fifo[(p->head + i) & p->mask];
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

/* How many entries lie at offsets < upto (a prefix: offsets increase). */
static uint32_t sl__prefix_below(const struct sl__dedup_prod *p, uint64_t upto)
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

static uint64_t sl__kept_floor(const struct sl_dedup *t, uint64_t last)
{
	return last >= t->window ? last - t->window + 1 : 0;
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

/* Index of the first entry at or above kept. */
static uint32_t sl__live_from(const struct sl__dedup_prod *p)
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

static uint32_t sl__first_fifo_cap(const struct sl_dedup *t)
{
	return t->window < SL__FIFO_FIRST ? t->window : SL__FIFO_FIRST;
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
static int sl__create_prod(struct sl_dedup *t, uint64_t id, uint32_t epoch, uint64_t seq,
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

static void sl__clear(struct sl_dedup *t)
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
	sl__clear(t);
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
		return sl__create_prod(t, id, epoch, seq, offset, sl__first_fifo_cap(t), &p);
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

/* ---- checkpoint ------------------------------------------------------------ */

size_t sl_dedup_checkpoint_bound(const struct sl_dedup *t)
{
	return SL_CKPT_HDR + SL_CKPT_TRAILER + (size_t)t->count * SL_CKPT_PROD +
	       (size_t)t->entries * SL_CKPT_ENTRY;
}

static int sl__cmp_prod(const void *a, const void *b)
{
	uint64_t x = (*(const struct sl__dedup_prod *const *)a)->id;
	uint64_t y = (*(const struct sl__dedup_prod *const *)b)->id;
	return x < y ? -1 : x > y;
}

int sl_dedup_checkpoint_write(const struct sl_dedup *t, uint64_t upto, void *buf, size_t cap,
                              size_t *len)
{
	const struct sl__dedup_prod **ps = NULL;
	uint8_t *b = buf;
	size_t need = SL_CKPT_HDR + SL_CKPT_TRAILER, at;
	uint64_t np = 0;
	uint32_t n = 0;
	int ret = 0;

	if (t->count) {
		ps = malloc(t->count * sizeof(*ps));
		if (!ps)
			return -ENOMEM;
	}
	for (uint64_t i = 0; i < t->cap; i++) {
		const struct sl__dedup_prod *p = &t->tab[i];
		uint32_t k, j0;
		if (!p->id)
			continue;
		/* Entries below kept may still be held (dropped lazily): the
		 * checkpoint leaves them out, so its bytes depend only on
		 * what the table answers. */
		k = sl__prefix_below(p, upto);
		j0 = sl__live_from(p);
		if (k <= j0)
			continue;
		ps[n++] = p;
		need += SL_CKPT_PROD + (size_t)(k - j0) * SL_CKPT_ENTRY;
	}
	if (need > cap) {
		ret = -ENOSPC;
		goto out;
	}
	/* Ascending ids and FIFO order make the bytes a function of the state. */
	if (n)
		qsort(ps, n, sizeof(*ps), sl__cmp_prod);
	np = n;
	sl_put_le32(b + SL_CKPT_MAGIC, SL_DEDUP_CKPT_MAGIC);
	sl_put_le32(b + SL_CKPT_VERSION, SL_DEDUP_CKPT_VERSION);
	sl_put_le32(b + SL_CKPT_WINDOW, t->window);
	sl_put_le32(b + SL_CKPT_RESERVED, 0);
	sl_put_le64(b + SL_CKPT_UPTO, upto);
	sl_put_le64(b + SL_CKPT_NPROD, np);
	sl_put_le64(b + SL_CKPT_LENGTH, need);
	sl_put_le64(b + SL_CKPT_FORGOT, t->forgot_ms);
	at = SL_CKPT_HDR;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl__dedup_prod *p = ps[i];
		uint32_t k = sl__prefix_below(p, upto), j0 = sl__live_from(p);
		sl_put_le64(b + at + SL_CKPT_P_ID, p->id);
		sl_put_le64(b + at + SL_CKPT_P_KEPT, p->kept);
		sl_put_le32(b + at + SL_CKPT_P_EPOCH, p->epoch);
		sl_put_le32(b + at + SL_CKPT_P_N, k - j0);
		sl_put_le64(b + at + SL_CKPT_P_LAST_MS, p->last_ms);
		at += SL_CKPT_PROD;
		for (uint32_t j = j0; j < k; j++, at += SL_CKPT_ENTRY) {
			sl_put_le64(b + at + SL_CKPT_E_SEQ, sl__at(p, j)->seq);
			sl_put_le64(b + at + SL_CKPT_E_OFFSET, sl__at(p, j)->offset);
		}
	}
	sl_put_le32(b + at, sl_crc32c(0, b, at));
	*len = at + SL_CKPT_TRAILER;
out:
	free(ps);
	return ret;
}

static int sl__bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int sl__bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -SL_ECORRUPT;
}

static uint32_t sl__pow2_at_least(uint32_t v, uint32_t min)
{
	uint32_t c = min;
	while (c < v)
		c <<= 1;
	return c;
}

/* One producer's record from b + at (its header already bounds-checked). */
static int sl__read_prod(struct sl_dedup *t, const uint8_t *b, size_t end, uint64_t *at_io,
                         uint64_t upto, uint32_t window, uint32_t prod_size, uint64_t prev_id,
                         uint64_t *id_out, char *err, size_t errlen)
{
	uint64_t at = *at_io, id = sl_get_le64(b + at + SL_CKPT_P_ID),
	         kept = sl_get_le64(b + at + SL_CKPT_P_KEPT);
	uint32_t epoch = sl_get_le32(b + at + SL_CKPT_P_EPOCH),
	         n = sl_get_le32(b + at + SL_CKPT_P_N), skip, fifo_cap;
	uint64_t prev_seq = 0, prev_off = 0, last, first = at + prod_size;
	uint64_t last_ms = prod_size == SL_CKPT_PROD ? sl_get_le64(b + at + SL_CKPT_P_LAST_MS) : 0;
	struct sl__dedup_prod *p;
	int ret;

	*id_out = id;
	if (!id)
		return sl__bad(err, errlen, "dedup checkpoint: producer id 0");
	/* Ascending as written; also rules out an id given twice. */
	if (id <= prev_id)
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer ids not ascending (%llu after %llu)",
		               (unsigned long long)id, (unsigned long long)prev_id);
	if (!n)
		return sl__bad(err, errlen, "dedup checkpoint: producer %llu has no entries",
		               (unsigned long long)id);
	/* A FIFO never holds more than its window. */
	if (n > window)
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer %llu has %u entries, window is %u",
		               (unsigned long long)id, n, window);
	if (n > (end - first) / SL_CKPT_ENTRY)
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer %llu: %u entries overrun its length",
		               (unsigned long long)id, n);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t seq = sl_get_le64(b + first + (uint64_t)i * SL_CKPT_ENTRY + SL_CKPT_E_SEQ);
		uint64_t off =
		    sl_get_le64(b + first + (uint64_t)i * SL_CKPT_ENTRY + SL_CKPT_E_OFFSET);
		if (seq >= SL_DEDUP_SEQ_LIMIT)
			return sl__bad(err, errlen,
			               "dedup checkpoint: producer %llu: sequence %llu >= 2^63",
			               (unsigned long long)id, (unsigned long long)seq);
		if (i && (seq <= prev_seq || off <= prev_off))
			return sl__bad(err, errlen,
			               "dedup checkpoint: producer %llu: entry %u (sequence %llu, "
			               "offset %llu) does not increase on (%llu, %llu)",
			               (unsigned long long)id, i, (unsigned long long)seq,
			               (unsigned long long)off, (unsigned long long)prev_seq,
			               (unsigned long long)prev_off);
		if (off >= upto)
			return sl__bad(err, errlen,
			               "dedup checkpoint: producer %llu: offset %llu is not below "
			               "the mark %llu",
			               (unsigned long long)id, (unsigned long long)off,
			               (unsigned long long)upto);
		prev_seq = seq;
		prev_off = off;
	}
	last = prev_seq;
	if (kept > sl_get_le64(b + first))
		return sl__bad(err, errlen,
		               "dedup checkpoint: producer %llu: kept %llu above its oldest entry "
		               "%llu",
		               (unsigned long long)id, (unsigned long long)kept,
		               (unsigned long long)sl_get_le64(b + first));
	/* Another window: cut to this table's. A smaller stored window keeps
	 * its larger `kept`: the entries below it are not there. */
	if (sl__kept_floor(t, last) > kept)
		kept = sl__kept_floor(t, last);
	for (skip = 0;
	     sl_get_le64(b + first + (uint64_t)skip * SL_CKPT_ENTRY + SL_CKPT_E_SEQ) < kept; skip++)
		;
	fifo_cap = sl__pow2_at_least(n - skip, sl__first_fifo_cap(t));
	ret = sl__create_prod(
	    t, id, epoch, sl_get_le64(b + first + (uint64_t)skip * SL_CKPT_ENTRY + SL_CKPT_E_SEQ),
	    sl_get_le64(b + first + (uint64_t)skip * SL_CKPT_ENTRY + SL_CKPT_E_OFFSET), fifo_cap,
	    &p);
	if (ret == -ENOSPC && err && errlen)
		snprintf(err, errlen, "dedup checkpoint: more producers than the table's %u",
		         t->max_producers);
	if (ret < 0)
		return ret;
	for (uint32_t i = skip + 1; i < n; i++) {
		const uint8_t *e = b + first + (uint64_t)i * SL_CKPT_ENTRY;
		p->fifo[p->n++] = (struct sl__dedup_ent){sl_get_le64(e + SL_CKPT_E_SEQ),
		                                         sl_get_le64(e + SL_CKPT_E_OFFSET)};
		t->entries++;
	}
	p->last = last;
	p->kept = kept;
	p->last_ms = last_ms;
	*at_io = first + (uint64_t)n * SL_CKPT_ENTRY;
	return 0;
}

int sl_dedup_checkpoint_read(struct sl_dedup *t, const void *buf, size_t len, uint64_t *upto,
                             char *err, size_t errlen)
{
	const uint8_t *b = buf;
	uint32_t version, window, hdr = SL_CKPT_HDR, prod = SL_CKPT_PROD;
	uint64_t np, at, mark, prev_id = 0, end;
	int ret = 0;

	if (err && errlen)
		err[0] = '\0';
	if (t->count)
		return -EBUSY;
	if (len < SL_CKPT_HDR_V2 + SL_CKPT_TRAILER) {
		ret = sl__bad(err, errlen, "dedup checkpoint truncated: %zu bytes, header needs %u",
		              len, SL_CKPT_HDR_V2 + SL_CKPT_TRAILER);
		goto out;
	}
	if (sl_get_le32(b + SL_CKPT_MAGIC) != SL_DEDUP_CKPT_MAGIC) {
		ret = sl__bad(err, errlen, "not a dedup checkpoint (bad magic 0x%08x)",
		              sl_get_le32(b + SL_CKPT_MAGIC));
		goto out;
	}
	version = sl_get_le32(b + SL_CKPT_VERSION);
	if (version == 2) {
		hdr = SL_CKPT_HDR_V2;
		prod = SL_CKPT_PROD_V2;
	} else if (version != SL_DEDUP_CKPT_VERSION) {
		ret =
		    sl__bad(err, errlen, "dedup checkpoint version %u not supported (want 2 or %u)",
		            version, SL_DEDUP_CKPT_VERSION);
		goto out;
	} else if (len < SL_CKPT_HDR + SL_CKPT_TRAILER) {
		ret = sl__bad(err, errlen, "dedup checkpoint truncated: %zu bytes, header needs %u",
		              len, SL_CKPT_HDR + SL_CKPT_TRAILER);
		goto out;
	}
	if (sl_get_le64(b + SL_CKPT_LENGTH) != len) {
		ret = sl__bad(err, errlen,
		              "dedup checkpoint truncated or padded: header says %llu bytes, "
		              "got %zu",
		              (unsigned long long)sl_get_le64(b + SL_CKPT_LENGTH), len);
		goto out;
	}
	if (sl_get_le32(b + len - SL_CKPT_TRAILER) != sl_crc32c(0, b, len - SL_CKPT_TRAILER)) {
		ret = sl__bad(err, errlen, "dedup checkpoint checksum mismatch");
		goto out;
	}
	window = sl_get_le32(b + SL_CKPT_WINDOW);
	mark = sl_get_le64(b + SL_CKPT_UPTO);
	np = sl_get_le64(b + SL_CKPT_NPROD);
	if (!sl_is_pow2(window) || window > SL_DEDUP_WINDOW_MAX) {
		ret = sl__bad(err, errlen, "dedup checkpoint window %u is not a power of two <= %u",
		              window, SL_DEDUP_WINDOW_MAX);
		goto out;
	}
	if (sl_get_le32(b + SL_CKPT_RESERVED)) {
		ret = sl__bad(err, errlen, "dedup checkpoint reserved header field is not zero");
		goto out;
	}
	end = len - SL_CKPT_TRAILER;
	/* Counts are checked against what remains before any multiplication
	 * can overflow. */
	if (np > (end - hdr) / prod) {
		ret = sl__bad(err, errlen, "dedup checkpoint: %llu producers overrun its length",
		              (unsigned long long)np);
		goto out;
	}
	if (np > t->max_producers) {
		if (err && errlen)
			snprintf(err, errlen,
			         "dedup checkpoint holds %llu producers, the table has room for %u",
			         (unsigned long long)np, t->max_producers);
		ret = -ENOSPC;
		goto out;
	}
	at = hdr;
	for (uint64_t k = 0; k < np; k++) {
		uint64_t id;
		if (end - at < prod) {
			ret = sl__bad(err, errlen,
			              "dedup checkpoint: producer %llu of %llu truncated",
			              (unsigned long long)k, (unsigned long long)np);
			goto out;
		}
		ret = sl__read_prod(t, b, end, &at, mark, window, prod, prev_id, &id, err, errlen);
		if (ret < 0)
			goto out;
		prev_id = id;
	}
	if (at != end) {
		ret = sl__bad(err, errlen, "dedup checkpoint has %llu unexpected trailing bytes",
		              (unsigned long long)(end - at));
		goto out;
	}
	*upto = mark;
	if (version == SL_DEDUP_CKPT_VERSION)
		t->forgot_ms = sl_get_le64(b + SL_CKPT_FORGOT);
out:
	if (ret < 0)
		sl__clear(t);
	return ret;
}
