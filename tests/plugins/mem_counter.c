/*
 * mem_counter: a test plugin (never shipped): the counter projection as it
 * was before the host kept projection state (plugins/counter, plugin ABI
 * 1.2). It keeps its model in memory, snapshots and restores it, and
 * answers concurrent queries (ABI 1.1): the applier's snapshot path, the
 * epoch-guarded queries and a plugin of an older minor are tested with it
 * (tests/unit/project.c, concurrent_query.c, tests/e2e/projections.py).
 *
 * Counts events by type and by aggregate.
 *
 * Model, per partition instance: two open-addressing hash tables (type ->
 * count, aggregate -> count) whose keys live in 64 KiB chunks that never
 * move, and the total. Applying an event of a known type and aggregate
 * touches two slots and allocates nothing; a new key is copied into the
 * current chunk (a new one when full) and may double its table. Tables stay
 * at most half full, so a lookup probes about 1.5 slots. Queries read the
 * model concurrently with apply (see the rules below).
 *
 * Queries (see README.md): "type:NAME", "aggregate:ID" (or a bare ID),
 * "total". Types and the total are spread over every partition: the host
 * asks each for its share (QUERY_PART: 8 bytes, the count) and merge sums.
 *
 * Snapshot (canonical: keys sorted, so equal models give equal bytes):
 *   "CNT1" u32 | u64 total | u32 n_types | u32 n_aggs |
 *   n_types x (u32 len, bytes, u64 count) | n_aggs x (same)
 * little-endian.
 */
#include <sluice/plugin.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CNT_MAGIC   0x31544e43u /* "CNT1" */
#define CNT_KEY_MAX (1u << 20)
#define CNT_CHUNK   (64u * 1024)

/*
 * Queries run on the HTTP threads while apply runs (the plugin declares
 * SL_PROJECTION_CONCURRENT_QUERY), so the model keeps plugin.h's three rules:
 *  - a slot is filled (key, length, count) before its hash is stored with
 *    release; a query loads the hash with acquire before it reads the rest;
 *    counts and the total are atomic words (one writer: a relaxed load and
 *    store, plain moves on x86, no locked instruction);
 *  - a grown table is published with release and the old one handed to
 *    host->retire; key bytes live in chunks that never move or go until
 *    destroy;
 *  - query only reads.
 */
struct slot {
	_Atomic uint64_t hash; /* 0: empty (hashes are forced non-zero) */
	_Atomic uint64_t count;
	/* In a key chunk: u32 length, then the bytes. The length sits with
	 * the bytes, not in the slot: a hit compares the bytes anyway, and a
	 * 24-byte slot keeps the table a third smaller than 32 (measured:
	 * bench/project.cc, 1M aggregates). */
	const char *key;
};

static inline uint32_t klen(const char *key)
{
	uint32_t n;
	memcpy(&n, key, 4);
	return n;
}

/* Whether the kept key `key` is k[0..n). */
static inline bool key_is(const char *key, const char *k, uint32_t n)
{
	return klen(key) == n && !memcmp(key + 4, k, n);
}

struct tab {
	uint32_t mask; /* capacity - 1; capacity a power of two */
	struct slot slots[];
};

struct chunk {
	struct chunk *next;
	size_t cap, len;
	char bytes[];
};

struct table {
	_Atomic(struct tab *) tab;
	uint32_t used;
	struct chunk *keys; /* newest first */
};

struct counter {
	const struct sl_host *host;
	struct sl_plugin_ctx *ctx;
	struct table types, aggs;
	_Atomic uint64_t total;
	/* The previous event's type slot: most streams repeat a few types, and
	 * a memcmp is cheaper than a hash. Always in the current types table
	 * (only a type insert grows it, and that insert sets it). */
	struct slot *last_type;
};

/* The writer's reads of what only it writes. */
static inline struct tab *tab_of(const struct table *t)
{
	return atomic_load_explicit(&t->tab, memory_order_relaxed);
}

static inline void add_relaxed(_Atomic uint64_t *v, uint64_t d)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + d,
	                      memory_order_relaxed);
}

static uint64_t key_hash(const struct sl_host *host, const char *k, size_t n)
{
	uint64_t h = host->hash64(k, n, 0x636f756e746572ull);
	return h ? h : 1;
}

static struct tab *tab_new(uint32_t cap)
{
	struct tab *t = calloc(1, sizeof(*t) + (size_t)cap * sizeof(struct slot));
	if (t)
		t->mask = cap - 1;
	return t;
}

static int table_init(struct table *t, uint32_t cap)
{
	memset(t, 0, sizeof(*t));
	struct tab *tb = tab_new(cap);
	if (!tb)
		return -ENOMEM;
	atomic_store_explicit(&t->tab, tb, memory_order_relaxed);
	return 0;
}

static void table_free(struct table *t)
{
	free(tab_of(t));
	while (t->keys) {
		struct chunk *c = t->keys;
		t->keys = c->next;
		free(c);
	}
	memset(t, 0, sizeof(*t));
}

static int table_grow(struct counter *m, struct table *t)
{
	struct tab *old = tab_of(t);
	uint32_t cap = (old->mask + 1) * 2;
	struct tab *nt = cap ? tab_new(cap) : NULL;

	if (!nt)
		return -ENOMEM;
	for (uint32_t i = 0; i <= old->mask; i++) {
		const struct slot *o = &old->slots[i];
		uint64_t h = atomic_load_explicit(&o->hash, memory_order_relaxed);
		if (!h)
			continue;
		uint32_t j = (uint32_t)h & nt->mask;
		while (atomic_load_explicit(&nt->slots[j].hash, memory_order_relaxed))
			j = (j + 1) & nt->mask;
		struct slot *s = &nt->slots[j];
		s->key = o->key;
		atomic_store_explicit(&s->count,
		                      atomic_load_explicit(&o->count, memory_order_relaxed),
		                      memory_order_relaxed);
		atomic_store_explicit(&s->hash, h, memory_order_relaxed);
	}
	/* Release: a query that finds the new table sees it whole. */
	atomic_store_explicit(&t->tab, nt, memory_order_release);
	m->host->retire(m->ctx, old, free);
	return 0;
}

/* The slot of key k (NULL when absent). Any thread. */
static const struct slot *table_find(const struct table *t, uint64_t h, const char *k, uint32_t n)
{
	const struct tab *tb = atomic_load_explicit(&t->tab, memory_order_acquire);
	for (uint32_t i = (uint32_t)h & tb->mask;; i = (i + 1) & tb->mask) {
		const struct slot *s = &tb->slots[i];
		uint64_t sh = atomic_load_explicit(&s->hash, memory_order_acquire);
		if (!sh)
			return NULL;
		if (sh == h && key_is(s->key, k, n))
			return s;
	}
}

/* A stable copy of key k, length first (never moves until destroy); NULL on
 * -ENOMEM. */
static const char *keep_key(struct table *t, const char *k, uint32_t n)
{
	struct chunk *c = t->keys;
	size_t need = (size_t)n + 4;
	if (!c || c->cap - c->len < need) {
		size_t cap = need > CNT_CHUNK ? need : CNT_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->len = 0;
		c->next = t->keys;
		t->keys = c;
	}
	char *p = c->bytes + c->len;
	memcpy(p, &n, 4);
	memcpy(p + 4, k, n);
	c->len += need;
	return p;
}

/* The writer's lookup (relaxed: it reads only what it wrote). Inlined: it is
 * every event's path; inserts go out of line. */
static inline struct slot *table_hit(struct tab *tb, uint64_t h, const char *k, uint32_t n,
                                     uint32_t *free_at)
{
	for (uint32_t i = (uint32_t)h & tb->mask;; i = (i + 1) & tb->mask) {
		struct slot *s = &tb->slots[i];
		uint64_t sh = atomic_load_explicit(&s->hash, memory_order_relaxed);
		if (!sh) {
			*free_at = i;
			return NULL;
		}
		if (sh == h && key_is(s->key, k, n))
			return s;
	}
}

/* Inserts key k (absent; free_at is where table_hit stopped) with count 0;
 * NULL on -ENOMEM. The owning thread only. */
static __attribute__((noinline)) struct slot *
table_insert(struct counter *m, struct table *t, uint64_t h, const char *k, uint32_t n, uint32_t i)
{
	struct tab *tb = tab_of(t);

	if (n > CNT_KEY_MAX)
		return NULL;
	/* Keep the table at most half full: grow before the insert. */
	if ((t->used + 1) * 2 > tb->mask + 1) {
		if (table_grow(m, t) < 0)
			return NULL;
		tb = tab_of(t);
		for (i = (uint32_t)h & tb->mask;
		     atomic_load_explicit(&tb->slots[i].hash, memory_order_relaxed);
		     i = (i + 1) & tb->mask)
			;
	}
	const char *kept = keep_key(t, k, n);
	if (!kept)
		return NULL;
	struct slot *s = &tb->slots[i];
	s->key = kept;
	atomic_store_explicit(&s->count, 0, memory_order_relaxed);
	/* Release: a query that sees the hash sees the key. */
	atomic_store_explicit(&s->hash, h, memory_order_release);
	t->used++;
	return s;
}

/* The slot of key k, inserted with count 0 when absent; NULL on -ENOMEM. */
static inline struct slot *table_upsert(struct counter *m, struct table *t, uint64_t h,
                                        const char *k, uint32_t n)
{
	uint32_t at;
	struct slot *s = table_hit(tab_of(t), h, k, n, &at);
	return s ? s : table_insert(m, t, h, k, n, at);
}

static int cnt_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {NULL};
	const char *bad = NULL;
	struct counter *m;

	if (c->host->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen, "counter takes no args (got '%s')", bad ? bad : "?");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->host = c->host;
	m->ctx = c->ctx;
	if (table_init(&m->types, 64) < 0 || table_init(&m->aggs, 1024) < 0) {
		table_free(&m->types);
		free(m);
		return -ENOMEM;
	}
	*inst = m;
	return 0;
}

static void cnt_destroy(void *inst)
{
	struct counter *m = inst;

	if (!m)
		return;
	table_free(&m->types);
	table_free(&m->aggs);
	free(m);
}

/* Events hashed ahead of their lookups: their slots' cache lines are
 * fetched while the previous ones are counted. A table of a few hundred
 * thousand aggregates is larger than L2, and a miss per event is what limits
 * the rate (bench/project.cc). */
#define CNT_AHEAD 32

static int cnt_apply(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                     struct sl_plugin_emitter *em)
{
	struct counter *m = inst;
	uint64_t hs[CNT_AHEAD];

	for (uint32_t base = 0; base < n; base += CNT_AHEAD) {
		uint32_t k = n - base < CNT_AHEAD ? n - base : CNT_AHEAD;

		for (uint32_t j = 0; j < k; j++) {
			const struct sl_plugin_event *e = &ev[base + j];
			hs[j] = key_hash(m->host, e->aggregate, e->aggregate_len);
			struct tab *at = tab_of(&m->aggs);
			__builtin_prefetch(&at->slots[(uint32_t)hs[j] & at->mask]);
		}
		for (uint32_t j = 0; j < k; j++) {
			const struct sl_plugin_event *e = &ev[base + j];
			struct slot *s = NULL;

			if (m->last_type) {
				struct slot *l = m->last_type;
				if (key_is(l->key, e->type, e->type_len))
					s = l;
			}
			if (!s) {
				uint64_t h = key_hash(m->host, e->type, e->type_len);
				/* May grow the table: last_type then points into the
				 * new one. */
				s = table_upsert(m, &m->types, h, e->type, e->type_len);
				if (!s)
					return -ENOMEM;
				m->last_type = s;
			}
			add_relaxed(&s->count, 1);

			s = table_upsert(m, &m->aggs, hs[j], e->aggregate, e->aggregate_len);
			if (!s)
				return -ENOMEM;
			add_relaxed(&s->count, 1);
			add_relaxed(&m->total, 1);
		}
	}
	return 0;
}

enum key_kind { KEY_TYPE, KEY_AGG, KEY_TOTAL };

/* Splits a query key; -EINVAL when malformed. */
static int parse_key(const char *key, uint32_t len, enum key_kind *kind, const char **k,
                     uint32_t *n)
{
	if (len == 5 && !memcmp(key, "total", 5)) {
		*kind = KEY_TOTAL;
		*k = key;
		*n = 0;
		return 0;
	}
	if (len >= 5 && !memcmp(key, "type:", 5)) {
		*kind = KEY_TYPE;
		*k = key + 5;
		*n = len - 5;
	} else if (len >= 10 && !memcmp(key, "aggregate:", 10)) {
		*kind = KEY_AGG;
		*k = key + 10;
		*n = len - 10;
	} else {
		*kind = KEY_AGG;
		*k = key;
		*n = len;
	}
	return *n ? 0 : -EINVAL;
}

static int put_answer(const struct sl_host *host, struct sl_plugin_out *out, const char *key,
                      uint32_t key_len, uint64_t count)
{
	char num[48];
	int ret;

	if ((ret = host->out_put(out, "{\"key\":", 7)) < 0 ||
	    (ret = host->out_put_json_str(out, key, key_len)) < 0)
		return ret;
	int n = snprintf(num, sizeof(num), ",\"count\":%llu}", (unsigned long long)count);
	return host->out_put(out, num, (size_t)n);
}

static int cnt_query(void *inst, const char *key, uint32_t key_len, uint32_t mode,
                     struct sl_plugin_out *out)
{
	struct counter *m = inst;
	enum key_kind kind;
	const char *k;
	uint32_t n;
	uint64_t count;
	int ret = parse_key(key, key_len, &kind, &k, &n);

	if (ret < 0)
		return ret;
	if (kind == KEY_TOTAL) {
		count = atomic_load_explicit(&m->total, memory_order_relaxed);
	} else {
		const struct table *t = kind == KEY_TYPE ? &m->types : &m->aggs;
		const struct slot *s = table_find(t, key_hash(m->host, k, n), k, n);
		if (!s)
			return -ENOENT;
		count = atomic_load_explicit(&s->count, memory_order_relaxed);
	}
	if (mode == SL_PLUGIN_QUERY_PART)
		return m->host->out_put(out, &count, sizeof(count));
	return put_answer(m->host, out, key, key_len, count);
}

static int cnt_key_route(const char *key, uint32_t key_len, const char **agg, uint32_t *agg_len)
{
	enum key_kind kind;
	int ret = parse_key(key, key_len, &kind, agg, agg_len);

	if (ret < 0)
		return ret;
	return kind == KEY_AGG ? 1 : 0;
}

static int cnt_merge(const struct sl_host *host, const char *key, uint32_t key_len,
                     const uint8_t *const *parts, const size_t *part_lens, uint32_t n,
                     struct sl_plugin_out *out)
{
	uint64_t sum = 0;
	enum key_kind kind;
	const char *k;
	uint32_t kn;

	if (parse_key(key, key_len, &kind, &k, &kn) < 0)
		return -EINVAL;
	if (!n && kind != KEY_TOTAL)
		return -ENOENT;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t c;
		if (part_lens[i] != sizeof(c))
			return -EINVAL;
		memcpy(&c, parts[i], sizeof(c));
		sum += c;
	}
	return put_answer(host, out, key, key_len, sum);
}

/* ---- snapshot --------------------------------------------------------------- */

static int cmp_slots(const void *a, const void *b)
{
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
	uint32_t xn = klen(x->key), yn = klen(y->key), n = xn < yn ? xn : yn;
	int c = memcmp(x->key + 4, y->key + 4, n);

	if (c)
		return c;
	return xn < yn ? -1 : xn > yn;
}

static int put_table(const struct sl_host *host, struct sl_plugin_out *out, const struct table *t)
{
	const struct slot **v = malloc((t->used ? t->used : 1) * sizeof(*v));
	uint32_t n = 0;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	const struct tab *tb = tab_of(t);
	for (uint32_t i = 0; i <= tb->mask; i++)
		if (atomic_load_explicit(&tb->slots[i].hash, memory_order_relaxed))
			v[n++] = &tb->slots[i];
	qsort(v, n, sizeof(*v), cmp_slots);
	for (uint32_t i = 0; i < n && !ret; i++) {
		uint32_t len = klen(v[i]->key);
		uint64_t count = atomic_load_explicit(&v[i]->count, memory_order_relaxed);
		if ((ret = host->out_put(out, &len, 4)) < 0 ||
		    (ret = host->out_put(out, v[i]->key + 4, len)) < 0)
			break;
		ret = host->out_put(out, &count, 8);
	}
	free(v);
	return ret;
}

static int cnt_snapshot(void *inst, struct sl_plugin_out *out)
{
	struct counter *m = inst;
	uint32_t head[2] = {CNT_MAGIC, 0};
	uint32_t counts[2] = {m->types.used, m->aggs.used};
	uint64_t total = atomic_load_explicit(&m->total, memory_order_relaxed);
	int ret;

	if ((ret = m->host->out_put(out, head, 4)) < 0 ||
	    (ret = m->host->out_put(out, &total, 8)) < 0 ||
	    (ret = m->host->out_put(out, counts, 8)) < 0 ||
	    (ret = put_table(m->host, out, &m->types)) < 0)
		return ret;
	return put_table(m->host, out, &m->aggs);
}

static int get_table(struct counter *m, struct table *t, const uint8_t **p, const uint8_t *end,
                     uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len;
		uint64_t count;

		if (end - *p < 4)
			return -EINVAL;
		memcpy(&len, *p, 4);
		*p += 4;
		if (!len || len > CNT_KEY_MAX || (size_t)(end - *p) < (size_t)len + 8)
			return -EINVAL;
		const char *k = (const char *)*p;
		*p += len;
		memcpy(&count, *p, 8);
		*p += 8;
		struct slot *s = table_upsert(m, t, key_hash(m->host, k, len), k, len);
		if (!s)
			return -ENOMEM;
		if (atomic_load_explicit(&s->count, memory_order_relaxed)) /* a key twice */
			return -EINVAL;
		atomic_store_explicit(&s->count, count, memory_order_relaxed);
	}
	return 0;
}

static int cnt_restore(void *inst, const uint8_t *bytes, size_t len)
{
	struct counter *m = inst;
	const uint8_t *p = bytes, *end = bytes + len;
	uint32_t magic, nt, na;
	uint64_t total;
	int ret;

	if (len < 20)
		return -EINVAL;
	memcpy(&magic, p, 4);
	memcpy(&total, p + 4, 8);
	atomic_store_explicit(&m->total, total, memory_order_relaxed);
	memcpy(&nt, p + 12, 4);
	memcpy(&na, p + 16, 4);
	p += 20;
	if (magic != CNT_MAGIC)
		return -EINVAL;
	if ((ret = get_table(m, &m->types, &p, end, nt)) < 0 ||
	    (ret = get_table(m, &m->aggs, &p, end, na)) < 0)
		return ret;
	m->last_type = NULL;
	return p == end ? 0 : -EINVAL;
}

static const struct sl_projection_ops cnt_ops = {
    /* ABI 1.1's table: without query_state. */
    .struct_size = offsetof(struct sl_projection_ops, query_state),
    .flags = SL_PROJECTION_CONCURRENT_QUERY,
    .create = cnt_create,
    .destroy = cnt_destroy,
    .apply = cnt_apply,
    .query = cnt_query,
    .snapshot = cnt_snapshot,
    .restore = cnt_restore,
    .key_route = cnt_key_route,
    .merge = cnt_merge,
};

/* Built against this header, but declaring ABI 1.1 (what it uses): the
 * host must load a plugin of an older minor as it did. */
static const struct sl_plugin_info cnt_info = {
    .struct_size = sizeof(struct sl_plugin_info),
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = 1,
    .kind = SL_PLUGIN_PROJECTION,
    .name = "mem_counter",
    .version = "1.0",
    .description = "events counted by type and by aggregate, in memory (tests)",
    .ops = &cnt_ops,
};

SL_PLUGIN_DEFINE(cnt_info)
