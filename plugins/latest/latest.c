/*
 * latest: a projection that keeps, per aggregate, its latest event (event
 * sourcing's "current state" when each event carries the whole state) and
 * how many events the aggregate has had (its version).
 *
 * Model, per partition instance: an open-addressing hash table aggregate ->
 * entry; aggregate names live in a growing arena; each entry owns a copy of
 * its latest event's encoded bytes in a buffer that is reused when the next
 * event fits (no allocation in steady state for aggregates whose events stay
 * about the same size).
 *
 * Query: the aggregate id; the answer is the latest event in the consume
 * format (the host's event JSON) with "version" added. Every aggregate lives
 * in one partition: no key_route, the key is the aggregate.
 *
 * Snapshot (canonical: aggregates sorted):
 *   "LAT1" | u32 n | n x (u32 key_len, key, u64 offset, u64 version,
 *   u32 partition, u32 event_len, event bytes)   little-endian
 */
#include <sluice/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAT_MAGIC     0x3154414cu /* "LAT1" */
#define LAT_KEY_MAX   (1u << 20)
#define LAT_EVENT_MAX (1u << 30)

struct entry {
	uint64_t hash; /* 0: empty */
	uint64_t offset;
	uint64_t version;
	uint8_t *ev;
	uint32_t ev_len, ev_cap;
	uint32_t key_off, key_len;
	uint32_t partition;
};

struct latest {
	const struct sl_host *host;
	struct entry *slots;
	uint32_t mask, used;
	char *keys;
	size_t keys_len, keys_cap;
};

static uint64_t key_hash(const struct sl_host *host, const char *k, size_t n)
{
	uint64_t h = host->hash64(k, n, 0x6c6174657374ull);
	return h ? h : 1;
}

static int grow(struct latest *m)
{
	uint32_t cap = (m->mask + 1) * 2;
	struct entry *s = cap ? calloc(cap, sizeof(*s)) : NULL;

	if (!s)
		return -ENOMEM;
	for (uint32_t i = 0; i <= m->mask; i++) {
		if (!m->slots[i].hash)
			continue;
		uint32_t j = (uint32_t)m->slots[i].hash & (cap - 1);
		while (s[j].hash)
			j = (j + 1) & (cap - 1);
		s[j] = m->slots[i];
	}
	free(m->slots);
	m->slots = s;
	m->mask = cap - 1;
	return 0;
}

static struct entry *find(const struct latest *m, uint64_t h, const char *k, uint32_t n)
{
	for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
		struct entry *e = &m->slots[i];
		if (!e->hash)
			return NULL;
		if (e->hash == h && e->key_len == n && !memcmp(m->keys + e->key_off, k, n))
			return e;
	}
}

static struct entry *upsert(struct latest *m, const char *k, uint32_t n)
{
	uint64_t h = key_hash(m->host, k, n);
	struct entry *e = find(m, h, k, n);
	uint32_t i;

	if (e)
		return e;
	if (n > LAT_KEY_MAX || m->keys_len + n > UINT32_MAX)
		return NULL;
	if (m->keys_len + n > m->keys_cap) {
		size_t cap = m->keys_cap ? m->keys_cap : 4096;
		while (cap < m->keys_len + n)
			cap *= 2;
		char *p = realloc(m->keys, cap);
		if (!p)
			return NULL;
		m->keys = p;
		m->keys_cap = cap;
	}
	/* At most half full: about 1.5 probes a lookup. */
	if ((m->used + 1) * 2 > m->mask + 1 && grow(m) < 0)
		return NULL;
	for (i = (uint32_t)h & m->mask; m->slots[i].hash; i = (i + 1) & m->mask)
		;
	e = &m->slots[i];
	memset(e, 0, sizeof(*e));
	memcpy(m->keys + m->keys_len, k, n);
	e->hash = h;
	e->key_off = (uint32_t)m->keys_len;
	e->key_len = n;
	m->keys_len += n;
	m->used++;
	return e;
}

/* Copies an event into the entry, reusing its buffer when it fits. */
static int store(struct entry *e, const uint8_t *bytes, uint32_t len)
{
	if (len > e->ev_cap) {
		/* Rounded up so small growth does not reallocate every time. */
		uint32_t cap = (len + 63) & ~63u;
		uint8_t *p = realloc(e->ev, cap);
		if (!p)
			return -ENOMEM;
		e->ev = p;
		e->ev_cap = cap;
	}
	memcpy(e->ev, bytes, len);
	e->ev_len = len;
	return 0;
}

static int lat_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {NULL};
	const char *bad = NULL;
	struct latest *m;

	if (c->host->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen, "latest takes no args (got '%s')", bad ? bad : "?");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m || !(m->slots = calloc(1024, sizeof(*m->slots)))) {
		free(m);
		return -ENOMEM;
	}
	m->mask = 1023;
	m->host = c->host;
	*inst = m;
	return 0;
}

static void lat_destroy(void *inst)
{
	struct latest *m = inst;

	if (!m)
		return;
	for (uint32_t i = 0; i <= m->mask; i++)
		free(m->slots[i].ev);
	free(m->slots);
	free(m->keys);
	free(m);
}

static int lat_apply(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                     struct sl_plugin_emitter *em)
{
	struct latest *m = inst;

	for (uint32_t i = 0; i < n; i++) {
		struct entry *e = upsert(m, ev[i].aggregate, ev[i].aggregate_len);
		if (!e || store(e, ev[i].bytes, ev[i].len) < 0)
			return -ENOMEM;
		e->offset = ev[i].offset;
		e->partition = ev[i].partition;
		e->version++;
	}
	return 0;
}

static int lat_query(void *inst, const char *key, uint32_t key_len, uint32_t mode,
                     struct sl_plugin_out *out)
{
	struct latest *m = inst;
	const struct entry *e;
	char num[24];

	if (!key_len)
		return -EINVAL;
	if (mode != SL_PLUGIN_QUERY_FULL)
		return -EINVAL; /* every key lives in one partition */
	e = find(m, key_hash(m->host, key, key_len), key, key_len);
	if (!e)
		return -ENOENT;
	int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)e->version);
	const char *keys[1] = {"version"};
	const char *json[1] = {num};
	size_t lens[1] = {(size_t)n};
	return m->host->out_put_event_json(out, e->ev, e->ev_len, e->partition, e->offset, keys,
	                                   json, lens, 1);
}

static int cmp_entries(const void *a, const void *b, void *arg)
{
	const struct latest *m = arg;
	const struct entry *x = *(const struct entry *const *)a,
	                   *y = *(const struct entry *const *)b;
	uint32_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(m->keys + x->key_off, m->keys + y->key_off, n);

	if (c)
		return c;
	return x->key_len < y->key_len ? -1 : x->key_len > y->key_len;
}

static int lat_snapshot(void *inst, struct sl_plugin_out *out)
{
	struct latest *m = inst;
	const struct sl_host *h = m->host;
	const struct entry **v = malloc((m->used ? m->used : 1) * sizeof(*v));
	uint32_t head[2] = {LAT_MAGIC, m->used}, n = 0;
	int ret;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i <= m->mask; i++)
		if (m->slots[i].hash)
			v[n++] = &m->slots[i];
	qsort_r(v, n, sizeof(*v), cmp_entries, m);
	ret = h->out_put(out, head, sizeof(head));
	for (uint32_t i = 0; i < n && ret >= 0; i++) {
		const struct entry *e = v[i];
		uint32_t tail[2] = {e->partition, e->ev_len};
		if ((ret = h->out_put(out, &e->key_len, 4)) < 0 ||
		    (ret = h->out_put(out, m->keys + e->key_off, e->key_len)) < 0 ||
		    (ret = h->out_put(out, &e->offset, 8)) < 0 ||
		    (ret = h->out_put(out, &e->version, 8)) < 0 ||
		    (ret = h->out_put(out, tail, sizeof(tail))) < 0)
			break;
		ret = h->out_put(out, e->ev, e->ev_len);
	}
	free(v);
	return ret < 0 ? ret : 0;
}

static int lat_restore(void *inst, const uint8_t *bytes, size_t len)
{
	struct latest *m = inst;
	const uint8_t *p = bytes, *end = bytes + len;
	uint32_t magic, n;

	if (len < 8)
		return -EINVAL;
	memcpy(&magic, p, 4);
	memcpy(&n, p + 4, 4);
	p += 8;
	if (magic != LAT_MAGIC)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t klen, part, elen;
		uint64_t offset, version;

		if (end - p < 4)
			return -EINVAL;
		memcpy(&klen, p, 4);
		p += 4;
		if (!klen || klen > LAT_KEY_MAX || (size_t)(end - p) < (size_t)klen + 24)
			return -EINVAL;
		const char *k = (const char *)p;
		p += klen;
		memcpy(&offset, p, 8);
		memcpy(&version, p + 8, 8);
		memcpy(&part, p + 16, 4);
		memcpy(&elen, p + 20, 4);
		p += 24;
		/* An entry always holds an event (it is created by one): an empty
		 * one is not a snapshot we wrote. */
		if (!elen || elen > LAT_EVENT_MAX || (size_t)(end - p) < elen)
			return -EINVAL;
		struct entry *e = upsert(m, k, klen);
		if (!e)
			return -ENOMEM;
		if (e->version) /* an aggregate twice: not a snapshot we wrote */
			return -EINVAL;
		if (store(e, p, elen) < 0)
			return -ENOMEM;
		p += elen;
		e->offset = offset;
		e->version = version ? version : 1;
		e->partition = part;
	}
	return p == end ? 0 : -EINVAL;
}

static const struct sl_projection_ops lat_ops = {
    .struct_size = sizeof(struct sl_projection_ops),
    .create = lat_create,
    .destroy = lat_destroy,
    .apply = lat_apply,
    .query = lat_query,
    .snapshot = lat_snapshot,
    .restore = lat_restore,
};

static const struct sl_plugin_info lat_info =
    SL_PLUGIN_INFO_INIT(SL_PLUGIN_PROJECTION, "latest", "1.0",
                        "the latest event and version of each aggregate", &lat_ops);

SL_PLUGIN_DEFINE(lat_info)
