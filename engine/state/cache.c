/*
 * A partition's state on its owner's thread (state.h): the write-back cache
 * in front of the store, the writer view the plugin's apply uses, and the
 * freezing of dirty entries into batches for the writer thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "base/base.h"
#include "state/state_impl.h"

#define SL__MIN_BUDGET  (1u << 20)
#define SL__FIRST_SLOTS 1024u
/* Values grow to the next multiple of this, so a value that changes size a
 * little does not move its entry every time. */
#define SL__VALUE_ROUND 16u
#define SL__VALUE_MAX   (1u << 30)

static inline uint64_t sl__hash(const void *key, size_t klen)
{
	uint64_t h = XXH3_64bits(key, klen);
	return h ? h : 1;
}

/* Counters with one writer, read by any thread (status). */
static inline void sl__inc(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
}

static inline size_t sl__ent_bytes(const struct sl__sent *e)
{
	return sizeof(*e) + e->klen + e->vcap;
}

static inline uint8_t *sl__val(struct sl__sent *e)
{
	return e->bytes + e->klen;
}

/* Whether e holds nothing the store lacks: evictable. */
static inline bool sl__clean(const struct sl_state_part *p, const struct sl__sent *e)
{
	return !e->dirty_at && e->pin_gen <= p->committed_seen;
}

static int sl__check_key(size_t klen)
{
	if (!klen)
		return -EINVAL;
	return klen > SL_STATE_KEY_MAX ? -ENAMETOOLONG : 0;
}

int sl_state_part_open(struct sl_state_db *db, const struct sl_state_part_opts *o,
                       struct sl_state_part **out, struct sl_state_mark *mark, char *err,
                       size_t errlen)
{
	struct sl_state_part *p = calloc(1, sizeof(*p));
	int ret;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->db = db;
	p->partition = o->partition;
	p->rebuild = o->rebuild;
	p->budget = o->cache_bytes > SL__MIN_BUDGET ? o->cache_bytes : SL__MIN_BUDGET;
	p->interval_ns = SL_STATE_INTERVAL_NS; /* a writer sets its own */
	p->on_commit = o->on_commit;
	p->on_commit_arg = o->on_commit_arg;
	p->view.part = p;
	p->view.db = db;
	p->view.partition = o->partition;
	p->slots = calloc(SL__FIRST_SLOTS, sizeof(*p->slots));
	if (!p->slots) {
		ret = -ENOMEM;
		goto fail;
	}
	p->mask = SL__FIRST_SLOTS - 1;
	p->bytes = SL__FIRST_SLOTS * sizeof(*p->slots);
	uint32_t live;
	if ((ret = sl__state_live_space(db, NULL, o->partition, &live)) < 0) {
		sl_errf(err, errlen,
		        "%s: partition %u: its live record is not one this sluiced wrote: %s",
		        db->path, o->partition, sl_strerror(ret));
		goto fail;
	}
	/* The other space holds a rebuild's keys: a rebuild starts from
	 * nothing, and the live model's open removes what a rebuild left
	 * there when it was interrupted (a crash, a stop). */
	uint32_t other = live ^ SL_STATE_SPACE_ALT;
	p->space = o->rebuild ? other : live;
	int used = o->rebuild ? 1 : sl__state_space_used(db, other);
	if (used > 0 && (ret = sl__state_drop_space(db, other, err, errlen)) < 0)
		goto fail;
	if (used > 0 && !o->rebuild)
		fprintf(stderr,
		        "sluiced: state: %s: partition %u: removed the keys of an interrupted "
		        "rebuild\n",
		        db->path, o->partition);
	p->view.space = p->space;
	ret = sl__state_read_mark(db, NULL, p->space, mark);
	if (ret < 0) {
		sl_errf(err, errlen, "%s: partition %u: its mark is not one this sluiced wrote: %s",
		        db->path, o->partition, sl_strerror(ret));
		goto fail;
	}
	p->gen = mark->gen;
	p->committed_seen = p->gen;
	atomic_store_explicit(&p->committed_gen, p->gen, memory_order_relaxed);
	atomic_store_explicit(&p->committed_next, mark->next, memory_order_relaxed);
	*out = p;
	return 0;
fail:
	sl_state_part_close(p);
	return ret;
}

static void sl__drop_entries(struct sl_state_part *p)
{
	for (uint32_t i = 0; p->slots && i <= p->mask; i++)
		free(p->slots[i].e);
}

void sl_state_part_close(struct sl_state_part *p)
{
	if (!p)
		return;
	if (p->writer)
		sl__state_writer_remove(p->writer, p);
	/* A rebuild not swapped in leaves nothing behind (should this fail,
	 * the live model's next open removes it). */
	if (p->rebuild && !p->swapped)
		(void)sl__state_drop_space(p->db, p->space, p->commit_err, sizeof(p->commit_err));
	sl__drop_entries(p);
	free(p->slots);
	free(p->dirty);
	free(p->inflight);
	free(p);
}

struct sl_state *sl_state_part_view(struct sl_state_part *p)
{
	return &p->view;
}

/* ---- the table ------------------------------------------------------------------------ */

static struct sl__slot *sl__find(struct sl_state_part *p, uint64_t h, const void *key, size_t klen,
                                 uint32_t *at)
{
	for (uint32_t i = (uint32_t)h & p->mask;; i = (i + 1) & p->mask) {
		struct sl__slot *s = &p->slots[i];
		if (!s->hash) {
			*at = i;
			return NULL;
		}
		if (s->hash == h && s->e->klen == klen && !memcmp(s->e->bytes, key, klen))
			return s;
	}
}

static int sl__grow(struct sl_state_part *p)
{
	uint32_t cap = (p->mask + 1) * 2;
	struct sl__slot *ns = calloc(cap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (uint32_t i = 0; i <= p->mask; i++) {
		if (!p->slots[i].hash)
			continue;
		uint32_t j = (uint32_t)p->slots[i].hash & (cap - 1);
		while (ns[j].hash)
			j = (j + 1) & (cap - 1);
		ns[j] = p->slots[i];
	}
	p->bytes += (size_t)(cap - (p->mask + 1)) * sizeof(*ns);
	free(p->slots);
	p->slots = ns;
	p->mask = cap - 1;
	p->hand = 0;
	return 0;
}

/* Removes slot i (backward shift: no tombstones, lookups stay short). */
static void sl__remove_at(struct sl_state_part *p, uint32_t i)
{
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & p->mask;
		if (!p->slots[j].hash)
			break;
		uint32_t home = (uint32_t)p->slots[j].hash & p->mask;
		/* j's entry may move to i when its home is not in (i, j]. */
		if (((j - home) & p->mask) >= ((j - i) & p->mask)) {
			p->slots[i] = p->slots[j];
			i = j;
		}
	}
	p->slots[i].hash = 0;
	p->slots[i].e = NULL;
	p->used--;
}

static int sl__mark_dirty(struct sl_state_part *p, struct sl__sent *e)
{
	if (e->dirty_at)
		return 0;
	if (p->n_dirty == p->dirty_cap) {
		uint32_t cap = p->dirty_cap ? p->dirty_cap * 2 : 1024;
		void *nd = realloc(p->dirty, (size_t)cap * sizeof(*p->dirty));
		if (!nd)
			return -ENOMEM;
		p->dirty = nd;
		p->bytes += (size_t)(cap - p->dirty_cap) * sizeof(*p->dirty);
		p->dirty_cap = cap;
	}
	p->dirty[p->n_dirty++] = e;
	e->dirty_at = p->n_dirty;
	return 0;
}

static struct sl__sent *sl__ent_new(uint64_t h, const void *key, uint32_t klen, uint32_t vcap)
{
	struct sl__sent *e = malloc(sizeof(*e) + klen + vcap);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->hash = h;
	e->klen = klen;
	e->vcap = vcap;
	memcpy(e->bytes, key, klen);
	return e;
}

static uint32_t sl__round(size_t vlen)
{
	return (uint32_t)((vlen + SL__VALUE_ROUND - 1) & ~(size_t)(SL__VALUE_ROUND - 1));
}

/* Inserts e at free slot `at` (from sl__find), growing first when half
 * full. */
static int sl__insert(struct sl_state_part *p, struct sl__sent *e, uint32_t at)
{
	if ((p->used + 1) * 2 > p->mask + 1) {
		if (sl__grow(p) < 0)
			return -ENOMEM;
		for (at = (uint32_t)e->hash & p->mask; p->slots[at].hash; at = (at + 1) & p->mask)
			;
	}
	p->slots[at].hash = e->hash;
	p->slots[at].e = e;
	p->used++;
	p->bytes += sl__ent_bytes(e);
	return 0;
}

/* Reads key from the store (a miss): its value into a new entry, or an
 * absent entry (remembered: a new key is looked up once). */
static int sl__load(struct sl_state_part *p, uint64_t h, const void *key, uint32_t klen,
                    uint32_t at, struct sl__sent **out)
{
	rocksdb_pinnableslice_t *s = NULL;
	const char *v = NULL;
	size_t vlen = 0;
	int ret = sl__state_get(p->db, NULL, p->space, key, klen, &s);

	if (ret < 0 && ret != -ENOENT)
		return ret;
	if (s)
		v = rocksdb_pinnableslice_value(s, &vlen);
	if (vlen > SL__VALUE_MAX) {
		rocksdb_pinnableslice_destroy(s);
		return -SL_ECORRUPT;
	}
	struct sl__sent *e = sl__ent_new(h, key, klen, s ? sl__round(vlen) : 0);
	if (!e) {
		if (s)
			rocksdb_pinnableslice_destroy(s);
		return -ENOMEM;
	}
	if (!s) {
		e->absent = 1;
	} else {
		e->vlen = (uint32_t)vlen;
		memcpy(sl__val(e), v, vlen);
		rocksdb_pinnableslice_destroy(s);
	}
	if (sl__insert(p, e, at) < 0) {
		free(e);
		return -ENOMEM;
	}
	sl__inc(&p->misses);
	*out = e;
	return 0;
}

/* The entry of key, loaded from the store on a miss. */
static int sl__lookup(struct sl_state_part *p, const void *key, size_t klen, bool load,
                      struct sl__sent **out, uint32_t *at)
{
	int ret = sl__check_key(klen);
	if (ret < 0)
		return ret;
	uint64_t h = sl__hash(key, klen);
	struct sl__slot *s = sl__find(p, h, key, klen, at);
	if (s) {
		sl__inc(&p->hits);
		s->e->ref = 1;
		*out = s->e;
		return 0;
	}
	*out = NULL;
	return load ? sl__load(p, h, key, (uint32_t)klen, *at, out) : 0;
}

/* Gives e room for vlen value bytes; e may move (its slot and its dirty
 * list place follow). */
static int sl__resize(struct sl_state_part *p, struct sl__sent **ep, size_t vlen)
{
	struct sl__sent *e = *ep;

	if (vlen > SL__VALUE_MAX)
		return -EFBIG;
	if (vlen <= e->vcap)
		return 0;
	uint32_t cap = sl__round(vlen);
	struct sl__sent *n = malloc(sizeof(*n) + e->klen + cap);
	if (!n)
		return -ENOMEM;
	memcpy(n, e, sizeof(*e) + e->klen + e->vlen);
	n->vcap = cap;
	uint32_t at;
	struct sl__slot *s = sl__find(p, e->hash, e->bytes, e->klen, &at);
	s->e = n;
	if (n->dirty_at)
		p->dirty[n->dirty_at - 1] = n;
	p->bytes += cap - e->vcap;
	free(e);
	*ep = n;
	return 0;
}

static void sl__note_dirty_bytes(struct sl_state_part *p, const struct sl__sent *e, bool was)
{
	if (!was)
		p->dirty_bytes += 8u + e->klen + e->vlen;
}

int sl__part_get(struct sl_state_part *p, const void *key, size_t klen, const void **val,
                 size_t *vlen)
{
	struct sl__sent *e;
	uint32_t at;
	int ret = sl__lookup(p, key, klen, true, &e, &at);

	if (ret < 0)
		return ret;
	if (e->absent)
		return -ENOENT;
	*val = sl__val(e);
	*vlen = e->vlen;
	return 0;
}

int sl__part_modify(struct sl_state_part *p, const void *key, size_t klen, size_t vlen, void **val)
{
	struct sl__sent *e;
	uint32_t at;
	int ret = sl__lookup(p, key, klen, true, &e, &at);

	if (ret < 0)
		return ret;
	int existed = !e->absent;
	bool was = e->dirty_at;
	if ((ret = sl__resize(p, &e, vlen)) < 0 || (ret = sl__mark_dirty(p, e)) < 0)
		return ret;
	uint32_t old = e->absent ? 0 : e->vlen;
	if (vlen > old)
		memset(sl__val(e) + old, 0, vlen - old);
	e->vlen = (uint32_t)vlen;
	e->absent = 0;
	sl__note_dirty_bytes(p, e, was);
	*val = sl__val(e);
	return existed;
}

/* The entry for a write that does not need the old value: no read of the
 * store on a miss. */
static int sl__for_write(struct sl_state_part *p, const void *key, size_t klen, size_t vlen,
                         struct sl__sent **out)
{
	struct sl__sent *e;
	uint32_t at;
	int ret = sl__lookup(p, key, klen, false, &e, &at);

	if (ret < 0)
		return ret;
	if (!e) {
		if (vlen > SL__VALUE_MAX)
			return -EFBIG;
		uint64_t h = sl__hash(key, klen);
		if (!(e = sl__ent_new(h, key, (uint32_t)klen, sl__round(vlen))))
			return -ENOMEM;
		e->absent = 1;
		if (sl__insert(p, e, at) < 0) {
			free(e);
			return -ENOMEM;
		}
		sl__inc(&p->misses);
	}
	bool was = e->dirty_at;
	if ((ret = sl__resize(p, &e, vlen)) < 0 || (ret = sl__mark_dirty(p, e)) < 0)
		return ret;
	sl__note_dirty_bytes(p, e, was);
	*out = e;
	return 0;
}

int sl__part_put(struct sl_state_part *p, const void *key, size_t klen, const void *val,
                 size_t vlen)
{
	struct sl__sent *e;
	int ret = sl__for_write(p, key, klen, vlen, &e);

	if (ret < 0)
		return ret;
	memcpy(sl__val(e), val, vlen);
	e->vlen = (uint32_t)vlen;
	e->absent = 0;
	return 0;
}

int sl__part_del(struct sl_state_part *p, const void *key, size_t klen)
{
	struct sl__sent *e;
	int ret = sl__for_write(p, key, klen, 0, &e);

	if (ret < 0)
		return ret;
	e->vlen = 0;
	e->absent = 1;
	return 0;
}

/* ---- iteration on the writer view -------------------------------------------------------- */

/* Entries the store does not hold yet (dirty, or in a batch not committed),
 * merged in key order with what it holds. */
struct sl__merge {
	struct sl__sent **v;
	uint32_t n, i;
	int (*fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
	void *arg;
};

static int sl__ent_cmp(const void *a, const void *b)
{
	const struct sl__sent *x = *(struct sl__sent *const *)a, *y = *(struct sl__sent *const *)b;
	return sl__state_key_cmp(x->bytes, x->klen, y->bytes, y->klen);
}

/* Sends the cached entries below (key, klen) (all when key NULL). */
static int sl__merge_upto(struct sl__merge *m, const void *key, size_t klen)
{
	while (m->i < m->n) {
		struct sl__sent *e = m->v[m->i];
		if (key && sl__state_key_cmp(e->bytes, e->klen, key, klen) >= 0)
			break;
		m->i++;
		if (e->absent)
			continue;
		int ret = m->fn(m->arg, e->bytes, e->klen, sl__val(e), e->vlen);
		if (ret)
			return ret;
	}
	return 0;
}

static int sl__merge_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct sl__merge *m = arg;
	int ret = sl__merge_upto(m, key, klen);
	if (ret)
		return ret;
	if (m->i < m->n) {
		struct sl__sent *e = m->v[m->i];
		if (!sl__state_key_cmp(e->bytes, e->klen, key, klen))
			return 0; /* the cache's version wins; sent by merge_upto later */
	}
	return m->fn(m->arg, key, klen, val, vlen);
}

int sl__part_iter(struct sl_state_part *p, const void *from, size_t from_len,
                  int (*fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen),
                  void *arg)
{
	struct sl__merge m = {.fn = fn, .arg = arg};
	int ret;

	if (from_len > SL_STATE_KEY_MAX)
		return -ENAMETOOLONG;
	m.v = malloc(((size_t)p->used + 1) * sizeof(*m.v));
	if (!m.v)
		return -ENOMEM;
	for (uint32_t i = 0; i <= p->mask; i++) {
		struct sl__sent *e = p->slots[i].e;
		if (e && !sl__clean(p, e) &&
		    sl__state_key_cmp(e->bytes, e->klen, from, from_len) >= 0)
			m.v[m.n++] = e;
	}
	qsort(m.v, m.n, sizeof(*m.v), sl__ent_cmp);
	ret = sl__state_iter_ro(p->db, NULL, p->space, from, from_len, sl__merge_visit, &m);
	if (!ret)
		ret = sl__merge_upto(&m, NULL, 0);
	free(m.v);
	return ret;
}

/* ---- the owner's step ------------------------------------------------------------------- */

/* Evicts clean entries by CLOCK until the cache fits its budget or two
 * turns of the hand found nothing more. */
static void sl__evict(struct sl_state_part *p)
{
	uint64_t steps = 2ull * (p->mask + 1);

	while (p->bytes > p->budget && steps--) {
		uint32_t i = p->hand;
		struct sl__sent *e = p->slots[i].e;
		if (!e || !sl__clean(p, e)) {
			p->hand = (i + 1) & p->mask;
			continue;
		}
		if (e->ref) {
			e->ref = 0;
			p->hand = (i + 1) & p->mask;
			continue;
		}
		p->bytes -= sl__ent_bytes(e);
		free(e);
		sl__remove_at(p, i); /* another entry may shift into i: look again */
		sl__inc(&p->evictions);
	}
	p->full = p->bytes > p->budget;
}

/* Copies the dirty entries into a batch and pins them to its generation. */
static int sl__freeze(struct sl_state_part *p, const struct sl_state_mark *mark)
{
	size_t len = 0;

	for (uint32_t i = 0; i < p->n_dirty; i++) {
		const struct sl__sent *e = p->dirty[i];
		len += 8u + e->klen + (e->absent ? 0 : e->vlen);
	}
	struct sl__batch *b = malloc(sizeof(*b) + len);
	if (!b)
		return -ENOMEM;
	b->space = p->space;
	b->n = p->n_dirty;
	b->len = len;
	b->mark = *mark;
	b->mark.gen = p->gen + 1;
	uint8_t *at = b->bytes;
	for (uint32_t i = 0; i < p->n_dirty; i++) {
		struct sl__sent *e = p->dirty[i];
		uint32_t vlen = e->absent ? SL__ABSENT : e->vlen;
		memcpy(at, &e->klen, 4);
		memcpy(at + 4, &vlen, 4);
		memcpy(at + 8, e->bytes, e->klen);
		at += 8 + e->klen;
		if (!e->absent) {
			memcpy(at, sl__val(e), e->vlen);
			at += e->vlen;
		}
		e->dirty_at = 0;
		e->pin_gen = b->mark.gen;
	}
	p->gen = b->mark.gen;
	p->n_dirty = 0;
	p->dirty_bytes = 0;
	p->inflight = b;
	p->last_freeze_ns = sl_now_ns();
	return 0;
}

/* Takes in the commit of the batch in flight, if it is done. */
static void sl__absorb(struct sl_state_part *p)
{
	if (!p->inflight)
		return;
	uint64_t g = atomic_load_explicit(&p->committed_gen, memory_order_acquire);
	if (g < p->inflight->mark.gen)
		return;
	p->committed_seen = g;
	free(p->inflight);
	p->inflight = NULL;
}

/* Commits the batch in flight on this thread (no writer, or a stop). */
static int sl__commit_inline(struct sl_state_part *p, char *err, size_t errlen)
{
	struct sl__batch *b = p->inflight;
	int ret = sl__state_commit(p->db, &b, 1, err, errlen);
	if (ret < 0) {
		atomic_fetch_add_explicit(&p->commit_failures, 1, memory_order_relaxed);
		return ret;
	}
	sl__state_committed(p, b);
	sl__absorb(p);
	return 0;
}

/* Freezes and hands over (or commits inline without a writer). */
static int sl__hand_over(struct sl_state_part *p, const struct sl_state_mark *mark)
{
	int ret = sl__freeze(p, mark);
	if (ret < 0)
		return ret;
	if (!p->writer) {
		ret = sl__commit_inline(p, p->commit_err, sizeof(p->commit_err));
		return ret == -ENOMEM ? ret : 0; /* kept in flight; retried next step */
	}
	/* Release: the writer that takes the batch sees it whole. */
	atomic_store_explicit(&p->handoff, p->inflight, memory_order_release);
	sl__state_writer_kick(p->writer);
	return 0;
}

bool sl_state_part_poll(struct sl_state_part *p)
{
	sl__absorb(p);
	if (p->inflight && !p->writer)
		(void)sl__commit_inline(p, p->commit_err, sizeof(p->commit_err));
	if (p->full)
		sl__evict(p);
	/* Still full: of changes not committed. The owner commits them
	 * (sl_state_part_end_step with force) and applies nothing until then. */
	if (p->full)
		sl__inc(&p->blocked_steps);
	return !p->full;
}

int sl_state_part_end_step(struct sl_state_part *p, const struct sl_state_mark *mark, bool force)
{
	if (p->bytes > p->budget)
		sl__evict(p);
	sl__absorb(p);
	atomic_store_explicit(&p->bytes_pub, p->bytes, memory_order_relaxed);
	atomic_store_explicit(&p->entries_pub, p->used, memory_order_relaxed);
	/* One batch in flight at a time; nothing changed and the mark
	 * committed: nothing to do. (A mark that moved with no key changed
	 * is still committed, so a restart need not apply those events.) */
	if (!mark || p->inflight || (!p->n_dirty && mark->next == sl_state_part_committed(p)))
		return 0;
	bool due = force || p->full || p->dirty_bytes * 2 >= p->budget ||
	           sl_now_ns() - p->last_freeze_ns >= p->interval_ns;
	return due ? sl__hand_over(p, mark) : 0;
}

int sl_state_part_sync(struct sl_state_part *p, const struct sl_state_mark *mark, char *err,
                       size_t errlen)
{
	int ret;

	sl__absorb(p);
	if (p->inflight && (ret = sl__commit_inline(p, err, errlen)) < 0)
		return ret;
	if (!p->n_dirty && mark->next == sl_state_part_committed(p))
		return 0;
	if ((ret = sl__freeze(p, mark)) < 0) {
		sl_errf(err, errlen, "%s: partition %u: out of memory", p->db->path, p->partition);
		return ret;
	}
	return sl__commit_inline(p, err, errlen);
}

bool sl_state_part_settled(const struct sl_state_part *p, uint64_t next)
{
	return !p->inflight && !p->n_dirty && sl_state_part_committed(p) == next;
}

/* Empties the cache (every entry clean: the swap's precondition). */
static void sl__cache_clear(struct sl_state_part *p)
{
	for (uint32_t i = 0; i <= p->mask; i++) {
		if (!p->slots[i].e)
			continue;
		p->bytes -= sl__ent_bytes(p->slots[i].e);
		free(p->slots[i].e);
		p->slots[i].e = NULL;
		p->slots[i].hash = 0;
	}
	p->used = 0;
	p->hand = 0;
	p->full = p->bytes > p->budget;
}

int sl_state_part_swap(struct sl_state_part *live, struct sl_state_part *rb, uint64_t emit_seq,
                       char *err, size_t errlen)
{
	uint64_t next = sl_state_part_committed(rb);
	int ret;

	sl__absorb(live);
	sl__absorb(rb);
	if (!rb->rebuild || rb->swapped || live->rebuild || rb->db != live->db ||
	    rb->partition != live->partition) {
		sl_errf(err, errlen, "%s: partition %u: not a rebuild of this model",
		        live->db->path, live->partition);
		return -EINVAL;
	}
	if (!sl_state_part_settled(rb, next) || !sl_state_part_settled(live, next))
		return -EBUSY;
	/* The generation goes on from the larger of the two: it only grows
	 * for the pins of the cache that goes on with it. */
	uint64_t gen = (live->gen > rb->gen ? live->gen : rb->gen) + 1;
	struct sl_state_mark m = {.next = next, .emit_seq = emit_seq, .gen = gen};
	if ((ret = sl__state_swap_write(live->db, live->partition, live->space, rb->space, &m, err,
	                                errlen)) < 0)
		return ret;
	rb->swapped = true;
	sl__cache_clear(live);
	live->space = rb->space;
	live->view.space = rb->space;
	live->gen = gen;
	live->committed_seen = gen;
	atomic_store_explicit(&live->committed_next, next, memory_order_relaxed);
	atomic_store_explicit(&live->committed_gen, gen, memory_order_release);
	atomic_store_explicit(&live->bytes_pub, live->bytes, memory_order_relaxed);
	atomic_store_explicit(&live->entries_pub, 0, memory_order_relaxed);
	return 0;
}

void sl_state_part_get_stats(const struct sl_state_part *p, struct sl_state_part_stats *out)
{
#define SL__RD(f) atomic_load_explicit(&p->f, memory_order_relaxed)
	out->entries = SL__RD(entries_pub);
	out->cache_bytes = SL__RD(bytes_pub);
	out->hits = SL__RD(hits);
	out->misses = SL__RD(misses);
	out->evictions = SL__RD(evictions);
	out->commits = SL__RD(commits);
	out->committed_keys = SL__RD(committed_keys);
	out->blocked_steps = SL__RD(blocked_steps);
#undef SL__RD
}
