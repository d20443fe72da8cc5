/*
 * The event-id window (idwin.h): a FIFO of {id, offset} in offset order,
 * an open-addressing index of uint32 slots into it, and time marks.
 *
 * Positions. Entries are numbered by free-running uint32 positions: head
 * is the oldest held, tail the next to add; entry `pos` lives at FIFO
 * index pos & (fcap - 1). Counts stay below 2^28, so tail - head and every
 * difference of live positions is exact in uint32 arithmetic.
 *
 * Index slots. 0 is empty; otherwise the low `ibits` bits hold the FIFO
 * index + 1, the next (up to) 4 the slot's distance from its home
 * (saturated: all ones means "read the entry and hash it"), and the bits
 * above a tag: high bits of the id's hash, so a probe that meets another
 * id's slot usually skips it without reading the FIFO. Linear probing with
 * deletion by backward shift (no tombstones: a window deletes as often as
 * it adds, and tombstones would fill it); the distances let a deletion
 * shift slots without reading their entries.
 *
 * Marks. marks[i] = {pos, time}: the entries from pos up to the next
 * mark's pos (or tail) were appended at `time`. A mark is added when an
 * entry's time is above the newest mark's; the oldest is dropped once head
 * passes the next mark. With entries, the first mark covers head.
 */
#include "dedup/idwin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

/* Inline: the hash of 16 bytes is a few instructions, and a call through
 * the PLT to libxxhash cost more than the hash (perf: 2% of sluiced). */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"

#define SL__IDWIN_START 64u /* entries a new window has room for */
/* Growth by 4, not 2: each growth copies the FIFO, rebuilds the index
 * and faults in new pages; by 4, a window filling to 262,144 ids grows 6
 * times instead of 12 (bench_idwin BM_Fill/262144: 21.7 -> 14.2 ms). */
#define SL__IDWIN_GROW  4u
#define SL__MARKS_START 16u
#define SL__HUGE        (UINT32_C(2) << 20) /* a huge page (x86-64) */
#define SL__DROP_AHEAD  8u                  /* see sl__drop_head */

struct sl__ent {
	uint8_t id[SL_IDWIN_ID_LEN];
	uint64_t offset;
};

struct sl__mark {
	int64_t time_ms;
	uint32_t pos;
	uint32_t pad;
};

struct sl_idwin {
	int64_t window_ms;
	uint32_t cap;    /* the most entries held */
	uint32_t cap_p2; /* the FIFO's capacity at most: cap rounded up */
	uint32_t fcap;   /* FIFO capacity now: a power of two <= cap_p2 */
	uint32_t head;   /* position of the oldest entry */
	uint32_t tail;   /* position of the next entry */
	struct sl__ent *fifo;
	uint32_t *idx;   /* islots slots */
	uint32_t islots; /* 2 * fcap: load <= 0.5 */
	uint32_t ibits;  /* bits of a slot holding the FIFO index + 1 */
	uint32_t dmax;   /* a slot's distance field: all ones, "far" */
	uint32_t tmask;  /* a slot's tag bits */
	struct sl__mark *marks;
	uint32_t mcap, mhead, mtail; /* power-of-two ring, free-running */
	int64_t horizon_ms;
	int64_t last_time_ms; /* newest time added (times never decrease) */
	uint64_t next_min;    /* lowest offset the next add may have */
	uint64_t seed;
	/* The last find's probe, for the add that follows it (the common
	 * case: a new id found missing, then added). Valid while `gen` is
	 * unchanged: every change of the index bumps it. */
	uint64_t gen;
	uint64_t memo_gen;  /* gen when memo_* was taken; 0: none */
	uint64_t memo_hash; /* hash of memo_id */
	uint32_t memo_slot; /* the empty slot the probe stopped at */
	uint8_t memo_id[SL_IDWIN_ID_LEN];
};

static inline uint64_t sl__hash(const struct sl_idwin *w, const uint8_t *id)
{
	return XXH3_64bits_withSeed(id, SL_IDWIN_ID_LEN, w->seed);
}

static inline uint32_t sl__imask(const struct sl_idwin *w)
{
	return w->islots - 1;
}

/* The slot value of FIFO index fi for hash h, `dist` slots past its home:
 * tag, distance (saturated), index + 1. */
static inline uint32_t sl__slot(const struct sl_idwin *w, uint64_t h, uint32_t fi, uint32_t dist)
{
	return ((uint32_t)(h >> 32) & w->tmask) | (dist < w->dmax ? dist : w->dmax) << w->ibits |
	       (fi + 1);
}

static inline uint32_t sl__slot_fi(const struct sl_idwin *w, uint32_t s)
{
	return (s & ((UINT32_C(1) << w->ibits) - 1)) - 1;
}

static inline struct sl__ent *sl__at(const struct sl_idwin *w, uint32_t pos)
{
	return &w->fifo[pos & (w->fcap - 1)];
}

/* The slot holding `id` (hash h), or -1 with *empty the empty slot the
 * probe stopped at: where an add of `id` goes. */
static inline int64_t sl__lookup(const struct sl_idwin *w, const uint8_t *id, uint64_t h,
                                 uint32_t *empty)
{
	uint32_t m = sl__imask(w), tmask = w->tmask, want = (uint32_t)(h >> 32) & tmask;
	for (uint32_t i = (uint32_t)h & m;; i = (i + 1) & m) {
		uint32_t s = w->idx[i];
		if (!s) {
			*empty = i;
			return -1;
		}
		if ((s & tmask) == want &&
		    memcmp(w->fifo[sl__slot_fi(w, s)].id, id, SL_IDWIN_ID_LEN) == 0)
			return i;
	}
}

static void sl__index_put(struct sl_idwin *w, uint64_t h, uint32_t fi)
{
	uint32_t m = sl__imask(w), i = (uint32_t)h & m;
	while (w->idx[i])
		i = (i + 1) & m;
	w->idx[i] = sl__slot(w, h, fi, (i - (uint32_t)h) & m);
}

/* Empties slot i, shifting back the slots of its probe run that may move
 * closer to their home (Knuth's algorithm R). A slot's distance from its
 * home is in the slot (the FIFO is read only for a saturated one), so a
 * deletion reads no entry. */
static void sl__index_del(struct sl_idwin *w, uint32_t i)
{
	uint32_t m = sl__imask(w), dfield = w->dmax << w->ibits;
	for (uint32_t j = (i + 1) & m; w->idx[j]; j = (j + 1) & m) {
		uint32_t s = w->idx[j], d = (s & dfield) >> w->ibits, gap = (j - i) & m;
		if (SL_UNLIKELY(d == w->dmax))
			d = (j - (uint32_t)sl__hash(w, w->fifo[sl__slot_fi(w, s)].id)) & m;
		/* It stays when its home lies cyclically in (i, j]. */
		if (d < gap)
			continue;
		d -= gap;
		w->idx[i] = (s & ~dfield) | (d < w->dmax ? d : w->dmax) << w->ibits;
		i = j;
	}
	w->idx[i] = 0;
}

/* Removes the index slot of the entry at `pos`. */
static void sl__unindex(struct sl_idwin *w, uint32_t pos)
{
	uint32_t fi = pos & (w->fcap - 1);
	uint64_t h = sl__hash(w, w->fifo[fi].id);
	uint32_t m = sl__imask(w), fimask = (UINT32_C(1) << w->ibits) - 1;
	/* FIFO indexes are unique among the slots: the low bits tell. */
	for (uint32_t i = (uint32_t)h & m;; i = (i + 1) & m)
		if ((w->idx[i] & fimask) == fi + 1) {
			sl__index_del(w, i);
			return;
		}
}

/* The time of the oldest entry (there is one). */
static inline int64_t sl__head_time(const struct sl_idwin *w)
{
	return w->marks[w->mhead & (w->mcap - 1)].time_ms;
}

/* Drops the oldest entry: by time or count, so horizon moves. */
static void sl__drop_head(struct sl_idwin *w)
{
	int64_t t = sl__head_time(w);
	if (t > w->horizon_ms)
		w->horizon_ms = t;
	sl__unindex(w, w->head);
	w->gen++;
	w->head++;
	/* Drops come in runs (every add of a full window, an expiry): the
	 * slot of the entry SL__DROP_AHEAD behind is loaded now, so that its
	 * own drop does not wait for it (the FIFO is read in order, which the
	 * hardware prefetches). */
	if (w->tail - w->head > SL__DROP_AHEAD)
		__builtin_prefetch(
		    &w->idx[(uint32_t)sl__hash(w, sl__at(w, w->head + SL__DROP_AHEAD)->id) &
		            sl__imask(w)],
		    1);
	if (w->head == w->tail)
		w->mhead = w->mtail;
	else if (w->mtail - w->mhead > 1 && w->marks[(w->mhead + 1) & (w->mcap - 1)].pos == w->head)
		w->mhead++;
}

/*
 * An index of n empty slots, written through now. calloc may hand back
 * fresh pages untouched (they read as zeros); the probes then map them to
 * the kernel's zero page and the first add to each takes a copy-on-write
 * fault whose TLB flush interrupts the other cores (perf: ~2.5% of sluiced
 * while the windows filled, in do_wp_page under sl_idwin_add). Written
 * now, each page takes one plain fault here.
 */
static uint32_t *sl__index_alloc(uint32_t n)
{
	size_t bytes = (size_t)n * sizeof(uint32_t);
	uint32_t *x;
	if (bytes >= SL__HUGE) {
		/* An index of 2 MiB or more (the default cap's is 2 MiB) on huge
		 * pages where the kernel allows them (THP "madvise"): probes
		 * land anywhere in it, and on 4 KiB pages nearly each one also
		 * missed the TLB. Its size is a power of two: no waste. */
		x = aligned_alloc(SL__HUGE, bytes);
		if (x)
			(void)madvise(x, bytes, MADV_HUGEPAGE);
	} else
		x = malloc(bytes);
	/* explicit_bzero: gcc turns malloc + memset(0) into calloc. */
	if (x)
		explicit_bzero(x, bytes);
	return x;
}

int sl_idwin_create(int64_t window_ms, uint32_t cap, struct sl_idwin **out)
{
	struct sl_idwin *w;

	*out = NULL;
	if (window_ms <= 0 || cap == 0 || cap > SL_IDWIN_CAP_MAX)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->window_ms = window_ms;
	w->cap = cap;
	w->cap_p2 = 1;
	while (w->cap_p2 < cap)
		w->cap_p2 <<= 1;
	/* Index + 1 up to cap_p2: the bits above are the tag. */
	w->ibits = 1;
	while ((UINT64_C(1) << w->ibits) <= w->cap_p2)
		w->ibits++;
	/* Above the index: 4 bits of distance from home (at load <= 0.5 a
	 * slot is rarely 15 or more past it), then the tag: 9 bits at the
	 * default cap (a miss meets a false tag once in ~500 slots), none
	 * at caps of 2^28, where every probe compares ids. */
	uint32_t dbits = 32 - w->ibits < 4 ? 32 - w->ibits : 4, tshift = w->ibits + dbits;
	w->dmax = (UINT32_C(1) << dbits) - 1;
	w->tmask = tshift >= 32 ? 0 : ~((UINT32_C(1) << tshift) - 1);
	w->fcap = w->cap_p2 < SL__IDWIN_START ? w->cap_p2 : SL__IDWIN_START;
	w->mcap = SL__MARKS_START;
	w->fifo = malloc((size_t)w->fcap * sizeof(*w->fifo));
	w->islots = 2 * w->fcap;
	w->idx = sl__index_alloc(w->islots);
	w->marks = malloc((size_t)w->mcap * sizeof(*w->marks));
	if (!w->fifo || !w->idx || !w->marks) {
		sl_idwin_destroy(w);
		return -ENOMEM;
	}
	if (getrandom(&w->seed, sizeof(w->seed), GRND_NONBLOCK) != (ssize_t)sizeof(w->seed))
		w->seed =
		    (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)w; /* early boot: still varies */
	w->last_time_ms = INT64_MIN;
	w->gen = 1; /* memo_gen 0: no memo */
	*out = w;
	return 0;
}

void sl_idwin_destroy(struct sl_idwin *w)
{
	if (!w)
		return;
	free(w->fifo);
	free(w->idx);
	free(w->marks);
	free(w);
}

/* Grows the FIFO (SL__IDWIN_GROW times, at most to cap_p2) and rebuilds
 * the index for it. */
static int sl__grow(struct sl_idwin *w)
{
	uint32_t ncap = w->cap_p2 / SL__IDWIN_GROW < w->fcap ? w->cap_p2 : w->fcap * SL__IDWIN_GROW;
	struct sl__ent *f = malloc((size_t)ncap * sizeof(*f));
	uint32_t *x = sl__index_alloc(2 * ncap);
	if (!f || !x) {
		free(f);
		free(x);
		return -ENOMEM;
	}
	for (uint32_t pos = w->head; pos != w->tail; pos++)
		f[pos & (ncap - 1)] = *sl__at(w, pos);
	free(w->fifo);
	free(w->idx);
	w->fifo = f;
	w->idx = x;
	w->islots = 2 * ncap;
	w->fcap = ncap;
	w->gen++;
	/* The FIFO is read in order, the index written at random: each slot
	 * is prefetched SL__AHEAD entries before it is written, so the misses
	 * overlap instead of coming one after another (perf: the rebuilds
	 * were most of sl_idwin_add while a window fills). */
	enum { SL__AHEAD = 16 };
	uint64_t hs[SL__AHEAD];
	uint32_t n = w->tail - w->head, m = sl__imask(w);
	for (uint32_t k = 0; k < n + SL__AHEAD; k++) {
		if (k >= SL__AHEAD) {
			uint32_t pos = w->head + k - SL__AHEAD;
			sl__index_put(w, hs[k % SL__AHEAD], pos & (ncap - 1));
		}
		if (k < n) {
			uint64_t h = sl__hash(w, sl__at(w, w->head + k)->id);
			__builtin_prefetch(&w->idx[(uint32_t)h & m], 1);
			hs[k % SL__AHEAD] = h;
		}
	}
	return 0;
}

static int sl__marks_grow(struct sl_idwin *w)
{
	uint32_t ncap = w->mcap * 2;
	struct sl__mark *m = malloc((size_t)ncap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (uint32_t i = w->mhead; i != w->mtail; i++)
		m[i & (ncap - 1)] = w->marks[i & (w->mcap - 1)];
	free(w->marks);
	w->marks = m;
	w->mcap = ncap;
	return 0;
}

void sl_idwin_prefetch(const struct sl_idwin *w, const uint8_t id[SL_IDWIN_ID_LEN])
{
	__builtin_prefetch(&w->idx[(uint32_t)sl__hash(w, id) & sl__imask(w)], 1);
}

int sl_idwin_find(const struct sl_idwin *w, const uint8_t id[SL_IDWIN_ID_LEN], uint64_t *offset,
                  int64_t *time_ms)
{
	uint64_t h = sl__hash(w, id);
	uint32_t empty;
	int64_t i = sl__lookup(w, id, h, &empty);
	if (i < 0) {
		/* A miss: the add that usually follows starts from here. The
		 * memo is a cache (idwin.h): windows are never const objects
		 * (sl_idwin_create allocates them), so writing it is defined. */
		struct sl_idwin *mw = (struct sl_idwin *)w;
		mw->memo_gen = w->gen;
		mw->memo_hash = h;
		mw->memo_slot = empty;
		memcpy(mw->memo_id, id, SL_IDWIN_ID_LEN);
		return 0;
	}
	uint32_t fi = sl__slot_fi(w, w->idx[i]);
	*offset = w->fifo[fi].offset;
	if (time_ms) {
		/* Its position, then the last mark at or before it. */
		uint32_t rel = (fi - w->head) & (w->fcap - 1);
		uint32_t lo = 0, hi = w->mtail - w->mhead; /* marks [lo, hi) */
		while (hi - lo > 1) {
			uint32_t mid = lo + (hi - lo) / 2;
			uint32_t mrel = w->marks[(w->mhead + mid) & (w->mcap - 1)].pos - w->head;
			if (mrel <= rel)
				lo = mid;
			else
				hi = mid;
		}
		*time_ms = w->marks[(w->mhead + lo) & (w->mcap - 1)].time_ms;
	}
	return 1;
}

int sl_idwin_add(struct sl_idwin *w, const uint8_t id[SL_IDWIN_ID_LEN], uint64_t offset,
                 int64_t time_ms)
{
	if (offset < w->next_min || offset == UINT64_MAX)
		return -EINVAL;
	w->next_min = offset + 1;
	uint64_t h;
	uint32_t slot;
	/* The find just before said it is not here, and where it would go:
	 * nothing changed since (gen), so neither hash nor probe again. */
	bool memo = w->memo_gen == w->gen && memcmp(w->memo_id, id, SL_IDWIN_ID_LEN) == 0;
	if (memo) {
		h = w->memo_hash;
		slot = w->memo_slot;
	} else {
		h = sl__hash(w, id);
		if (sl__lookup(w, id, h, &slot) >= 0)
			return 1;
	}
	if (time_ms < w->last_time_ms)
		time_ms = w->last_time_ms;
	w->last_time_ms = time_ms;
	uint32_t n = w->tail - w->head;
	uint64_t gen = w->gen;
	if (n == w->cap)
		sl__drop_head(w);
	else if (n == w->fcap && sl__grow(w) < 0)
		sl__drop_head(w); /* no memory: stay this size (idwin.h) */
	if (w->gen != gen) {
		/* A drop may have emptied a slot before `slot` (backward
		 * shift), a growth rebuilt the index: probe again (it is not
		 * there: nothing was added since). */
		uint32_t m = sl__imask(w);
		for (slot = (uint32_t)h & m; w->idx[slot]; slot = (slot + 1) & m)
			;
	}
	bool empty = w->head == w->tail;
	if (empty || w->marks[(w->mtail - 1) & (w->mcap - 1)].time_ms < time_ms) {
		if (!empty && w->mtail - w->mhead == w->mcap && sl__marks_grow(w) < 0)
			/* No room for a mark: the newest one takes this time.
			 * Its entries look younger, never older: kept longer. */
			w->marks[(w->mtail - 1) & (w->mcap - 1)].time_ms = time_ms;
		else {
			if (empty)
				w->mhead = w->mtail;
			w->marks[w->mtail++ & (w->mcap - 1)] =
			    (struct sl__mark){.time_ms = time_ms, .pos = w->tail};
		}
	}
	struct sl__ent *e = sl__at(w, w->tail);
	/* The FIFO's next lines, before the write reaches them. */
	__builtin_prefetch(sl__at(w, w->tail + 8), 1);
	memcpy(e->id, id, SL_IDWIN_ID_LEN);
	e->offset = offset;
	w->idx[slot] = sl__slot(w, h, w->tail & (w->fcap - 1), (slot - (uint32_t)h) & sl__imask(w));
	w->gen++;
	w->tail++;
	return 0;
}

void sl_idwin_skipped(struct sl_idwin *w, int64_t time_ms)
{
	if (time_ms > w->horizon_ms)
		w->horizon_ms = time_ms;
}

uint32_t sl_idwin_expire(struct sl_idwin *w, int64_t now_ms)
{
	uint32_t dropped = 0;
	/* now - t >= window, written so that it cannot overflow. */
	while (w->head != w->tail && sl__head_time(w) <= now_ms - w->window_ms) {
		sl__drop_head(w);
		dropped++;
	}
	return dropped;
}

int sl_idwin_set_distance_limit(struct sl_idwin *w, uint32_t dmax)
{
	/* The field keeps its width (the tag's place does not move); only the
	 * value at which it saturates goes down. */
	if (!dmax || dmax > w->dmax || ((dmax + 1) & dmax) || sl_idwin_count(w))
		return -EINVAL;
	w->dmax = dmax;
	return 0;
}

uint32_t sl_idwin_truncate_from(struct sl_idwin *w, uint64_t cut)
{
	uint32_t n = 0;
	while (w->head != w->tail && sl__at(w, w->tail - 1)->offset >= cut) {
		sl__unindex(w, w->tail - 1);
		w->gen++;
		w->tail--;
		n++;
	}
	/* Marks that now start at or past tail go with their entries. The
	 * first one stays while there are entries: it covers head, and may
	 * start before it (its pos - head would wrap). */
	while (w->mtail - w->mhead > 1 &&
	       w->marks[(w->mtail - 1) & (w->mcap - 1)].pos - w->head >= w->tail - w->head)
		w->mtail--;
	if (w->head == w->tail)
		w->mhead = w->mtail;
	if (cut < w->next_min)
		w->next_min = cut;
	return n;
}

int64_t sl_idwin_horizon_ms(const struct sl_idwin *w)
{
	return w->horizon_ms;
}

uint32_t sl_idwin_count(const struct sl_idwin *w)
{
	return w->tail - w->head;
}

int sl_idwin_reserve(struct sl_idwin *w, uint64_t n)
{
	while (w->fcap < n && w->fcap < w->cap_p2) {
		int ret = sl__grow(w);
		if (ret < 0)
			return ret;
	}
	return 0;
}

void sl_idwin_set_window_ms(struct sl_idwin *w, int64_t window_ms)
{
	if (window_ms > 0)
		w->window_ms = window_ms;
}

int64_t sl_idwin_window_ms(const struct sl_idwin *w)
{
	return w->window_ms;
}

uint32_t sl_idwin_cap(const struct sl_idwin *w)
{
	return w->cap;
}

size_t sl_idwin_memory(const struct sl_idwin *w)
{
	/* What was allocated, from the sizes passed to malloc: the unit test
	 * checks it against the allocator's own count. */
	return sizeof(*w) + (size_t)w->fcap * sizeof(*w->fifo) +
	       (size_t)w->islots * sizeof(*w->idx) + (size_t)w->mcap * sizeof(*w->marks);
}
