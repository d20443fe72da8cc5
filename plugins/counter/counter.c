/*
 * counter: a projection that counts events by type and by aggregate.
 *
 * Model, per partition instance: two open-addressing hash tables (type ->
 * count, aggregate -> count) whose keys live in one growing byte arena, and
 * the total. Applying an event of a known type and aggregate touches two
 * slots and allocates nothing; a new key appends to the arena (amortised
 * doubling) and may double its table. Tables stay at most half full, so a
 * lookup probes about 1.5 slots.
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

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CNT_MAGIC   0x31544e43u /* "CNT1" */
#define CNT_KEY_MAX (1u << 20)

struct slot {
	uint64_t hash; /* 0: empty (hashes are forced non-zero) */
	uint64_t count;
	uint32_t key_off;
	uint32_t key_len;
};

struct table {
	struct slot *slots;
	uint32_t mask; /* capacity - 1; capacity a power of two */
	uint32_t used;
	char *keys; /* arena */
	size_t keys_len, keys_cap;
};

struct counter {
	const struct sl_host *host;
	struct table types, aggs;
	uint64_t total;
	/* The previous event's type slot: most streams repeat a few types, and
	 * a memcmp is cheaper than a hash. Reset when the table grows. */
	int64_t last_type;
};

static uint64_t key_hash(const struct sl_host *host, const char *k, size_t n)
{
	uint64_t h = host->hash64(k, n, 0x636f756e746572ull);
	return h ? h : 1;
}

static int table_init(struct table *t, uint32_t cap)
{
	memset(t, 0, sizeof(*t));
	t->slots = calloc(cap, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = cap - 1;
	return 0;
}

static void table_free(struct table *t)
{
	free(t->slots);
	free(t->keys);
	memset(t, 0, sizeof(*t));
}

static int table_grow(struct table *t)
{
	uint32_t cap = (t->mask + 1) * 2;
	struct slot *s = calloc(cap, sizeof(*s));

	if (!s || cap == 0) {
		free(s);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i <= t->mask; i++) {
		if (!t->slots[i].hash)
			continue;
		uint32_t j = (uint32_t)t->slots[i].hash & (cap - 1);
		while (s[j].hash)
			j = (j + 1) & (cap - 1);
		s[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = s;
	t->mask = cap - 1;
	return 0;
}

/* The slot of key k (NULL when absent). */
static struct slot *table_find(const struct table *t, uint64_t h, const char *k, uint32_t n)
{
	for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
		struct slot *s = &t->slots[i];
		if (!s->hash)
			return NULL;
		if (s->hash == h && s->key_len == n && !memcmp(t->keys + s->key_off, k, n))
			return s;
	}
}

/* The slot of key k, inserted with count 0 when absent; NULL on -ENOMEM. */
static struct slot *table_upsert(struct table *t, uint64_t h, const char *k, uint32_t n, bool *grew)
{
	uint32_t i;

	for (i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
		struct slot *s = &t->slots[i];
		if (!s->hash)
			break;
		if (s->hash == h && s->key_len == n && !memcmp(t->keys + s->key_off, k, n))
			return s;
	}
	if (n > CNT_KEY_MAX || t->keys_len + n > UINT32_MAX)
		return NULL;
	if (t->keys_len + n > t->keys_cap) {
		size_t cap = t->keys_cap ? t->keys_cap : 4096;
		while (cap < t->keys_len + n)
			cap *= 2;
		char *p = realloc(t->keys, cap);
		if (!p)
			return NULL;
		t->keys = p;
		t->keys_cap = cap;
	}
	/* Keep the table at most half full: grow before the insert. */
	if ((t->used + 1) * 2 > t->mask + 1) {
		if (table_grow(t) < 0)
			return NULL;
		*grew = true;
		for (i = (uint32_t)h & t->mask; t->slots[i].hash; i = (i + 1) & t->mask)
			;
	}
	struct slot *s = &t->slots[i];
	memcpy(t->keys + t->keys_len, k, n);
	s->hash = h;
	s->count = 0;
	s->key_off = (uint32_t)t->keys_len;
	s->key_len = n;
	t->keys_len += n;
	t->used++;
	return s;
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
	m->last_type = -1;
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
	bool grew = false;

	for (uint32_t base = 0; base < n; base += CNT_AHEAD) {
		uint32_t k = n - base < CNT_AHEAD ? n - base : CNT_AHEAD;

		for (uint32_t j = 0; j < k; j++) {
			const struct sl_plugin_event *e = &ev[base + j];
			hs[j] = key_hash(m->host, e->aggregate, e->aggregate_len);
			__builtin_prefetch(&m->aggs.slots[(uint32_t)hs[j] & m->aggs.mask]);
		}
		for (uint32_t j = 0; j < k; j++) {
			const struct sl_plugin_event *e = &ev[base + j];
			struct slot *s = NULL;

			if (m->last_type >= 0) {
				struct slot *l = &m->types.slots[m->last_type];
				if (l->key_len == e->type_len &&
				    !memcmp(m->types.keys + l->key_off, e->type, e->type_len))
					s = l;
			}
			if (!s) {
				uint64_t h = key_hash(m->host, e->type, e->type_len);
				s = table_upsert(&m->types, h, e->type, e->type_len, &grew);
				if (!s)
					return -ENOMEM;
				m->last_type = s - m->types.slots;
			}
			s->count++;

			s = table_upsert(&m->aggs, hs[j], e->aggregate, e->aggregate_len, &grew);
			if (!s)
				return -ENOMEM;
			s->count++;
			m->total++;
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
		count = m->total;
	} else {
		const struct table *t = kind == KEY_TYPE ? &m->types : &m->aggs;
		const struct slot *s = table_find(t, key_hash(m->host, k, n), k, n);
		if (!s)
			return -ENOENT;
		count = s->count;
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

static int cmp_slots(const void *a, const void *b, void *arg)
{
	const struct table *t = arg;
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
	uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(t->keys + x->key_off, t->keys + y->key_off, n);

	if (c)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int put_table(const struct sl_host *host, struct sl_plugin_out *out, const struct table *t)
{
	const struct slot **v = malloc((t->used ? t->used : 1) * sizeof(*v));
	uint32_t n = 0;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i <= t->mask; i++)
		if (t->slots[i].hash)
			v[n++] = &t->slots[i];
	/* qsort_r: the context travels with the call, so instances on other
	 * cores can snapshot at the same time. */
	qsort_r(v, n, sizeof(*v), cmp_slots, (void *)t);
	for (uint32_t i = 0; i < n && !ret; i++) {
		uint32_t len = v[i]->key_len;
		if ((ret = host->out_put(out, &len, 4)) < 0 ||
		    (ret = host->out_put(out, t->keys + v[i]->key_off, len)) < 0)
			break;
		ret = host->out_put(out, &v[i]->count, 8);
	}
	free(v);
	return ret;
}

static int cnt_snapshot(void *inst, struct sl_plugin_out *out)
{
	struct counter *m = inst;
	uint32_t head[2] = {CNT_MAGIC, 0};
	uint32_t counts[2] = {m->types.used, m->aggs.used};
	int ret;

	if ((ret = m->host->out_put(out, head, 4)) < 0 ||
	    (ret = m->host->out_put(out, &m->total, 8)) < 0 ||
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
		bool grew = false;

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
		struct slot *s = table_upsert(t, key_hash(m->host, k, len), k, len, &grew);
		if (!s)
			return -ENOMEM;
		if (s->count) /* a key twice: not a snapshot we wrote */
			return -EINVAL;
		s->count = count;
	}
	return 0;
}

static int cnt_restore(void *inst, const uint8_t *bytes, size_t len)
{
	struct counter *m = inst;
	const uint8_t *p = bytes, *end = bytes + len;
	uint32_t magic, nt, na;
	int ret;

	if (len < 20)
		return -EINVAL;
	memcpy(&magic, p, 4);
	memcpy(&m->total, p + 4, 8);
	memcpy(&nt, p + 12, 4);
	memcpy(&na, p + 16, 4);
	p += 20;
	if (magic != CNT_MAGIC)
		return -EINVAL;
	if ((ret = get_table(m, &m->types, &p, end, nt)) < 0 ||
	    (ret = get_table(m, &m->aggs, &p, end, na)) < 0)
		return ret;
	m->last_type = -1;
	return p == end ? 0 : -EINVAL;
}

static const struct sl_projection_ops cnt_ops = {
    .struct_size = sizeof(struct sl_projection_ops),
    .create = cnt_create,
    .destroy = cnt_destroy,
    .apply = cnt_apply,
    .query = cnt_query,
    .snapshot = cnt_snapshot,
    .restore = cnt_restore,
    .key_route = cnt_key_route,
    .merge = cnt_merge,
};

static const struct sl_plugin_info cnt_info = SL_PLUGIN_INFO_INIT(
    SL_PLUGIN_PROJECTION, "counter", "1.0", "events counted by type and by aggregate", &cnt_ops);

SL_PLUGIN_DEFINE(cnt_info)
