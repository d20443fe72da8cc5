/*
 * counter: a projection that counts events by type and by aggregate.
 *
 * The host keeps the model (plugin ABI 1.2, SL_PROJECTION_HOST_STATE): one
 * key per aggregate, one per type and one for the total, each an 8-byte
 * little-endian count, in the host's state of the partition, on disk
 * behind the host's cache; the host commits it with the offset applied,
 * so a model may be far larger than memory and needs no snapshots.
 *
 *   "a" ID     the aggregate ID's count   ("A" + 463 bytes + 32-byte hash
 *   "t" NAME   the type NAME's count       when the key would pass the
 *   "#"        the total                   host's 496 bytes; "T" for types)
 *
 * Queries (see README.md): "type:NAME", "aggregate:ID" (or a bare ID),
 * "total". Types and the total are spread over every partition: the host
 * asks each for its share (QUERY_PART: 8 bytes, the count) and merge sums.
 */
#include <sluice/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host's limit on a key (sluice/plugin.h, state functions). */
#define CNT_KEY_MAX 496u
/* A longer name keeps this many of its bytes, then two 64-bit hashes in
 * hex: distinct names collide with odds of 2^-128. */
#define CNT_KEEP (CNT_KEY_MAX - 1 - 32)
/* Distinct types counted in one apply call before they are written: most
 * streams repeat a handful. */
#define CNT_TYPES_PER_CALL 8
/* What one event adds to its aggregate's count. A test-only build
 * (tests/plugins: out/buggy/counter.so) counts 2: a plugin bug that
 * `sluice projection rebuild --swap` repairs (tests/e2e/rebuild.py). */
#ifndef CNT_AGG_STEP
#define CNT_AGG_STEP 1
#endif

struct counter {
	const struct sl_host *host;
	struct sl_state *st;
};

/* The state key of a name under `tag` ('a' or 't'): into buf (CNT_KEY_MAX
 * bytes), its length returned. */
static uint32_t state_key(const struct sl_host *host, char tag, const char *name, uint32_t n,
                          char *buf)
{
	if (n + 1 <= CNT_KEY_MAX) {
		buf[0] = tag;
		memcpy(buf + 1, name, n);
		return n + 1;
	}
	buf[0] = (char)(tag - 'a' + 'A');
	memcpy(buf + 1, name, CNT_KEEP);
	char hex[33];
	snprintf(hex, sizeof(hex), "%016llx%016llx",
	         (unsigned long long)host->hash64(name, n, 0x636e7431ull),
	         (unsigned long long)host->hash64(name, n, 0x636e7432ull));
	memcpy(buf + 1 + CNT_KEEP, hex, 32);
	return CNT_KEY_MAX;
}

static int add_to(const struct sl_host *host, struct sl_state *st, const char *k, uint32_t kn,
                  uint64_t d)
{
	void *v;
	uint64_t c;
	int ret = host->state_modify(st, k, kn, sizeof(c), &v);
	if (ret < 0)
		return ret;
	memcpy(&c, v, sizeof(c));
	c += d;
	memcpy(v, &c, sizeof(c));
	return 0;
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
	if (!c->host->state || !c->host->state(c->ctx)) {
		snprintf(c->err, c->errlen, "counter needs the host's state (plugin ABI 1.2)");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->host = c->host;
	m->st = c->host->state(c->ctx);
	*inst = m;
	return 0;
}

static void cnt_destroy(void *inst)
{
	free(inst);
}

struct type_run {
	const char *name;
	uint32_t len;
	uint64_t count;
};

static int flush_types(struct counter *m, struct type_run *t, uint32_t n)
{
	char k[CNT_KEY_MAX];
	for (uint32_t i = 0; i < n; i++) {
		uint32_t kn = state_key(m->host, 't', t[i].name, t[i].len, k);
		int ret = add_to(m->host, m->st, k, kn, t[i].count);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int cnt_apply(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                     struct sl_plugin_emitter *em)
{
	struct counter *m = inst;
	struct type_run types[CNT_TYPES_PER_CALL];
	uint32_t n_types = 0;
	char k[CNT_KEY_MAX];
	int ret;

	(void)em;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl_plugin_event *e = &ev[i];
		uint32_t kn = state_key(m->host, 'a', e->aggregate, e->aggregate_len, k);
		if ((ret = add_to(m->host, m->st, k, kn, CNT_AGG_STEP)) < 0)
			return ret;
		/* Types are summed over the call and written once each. */
		uint32_t t = 0;
		while (t < n_types &&
		       (types[t].len != e->type_len || memcmp(types[t].name, e->type, e->type_len)))
			t++;
		if (t == n_types) {
			if (n_types == CNT_TYPES_PER_CALL) {
				if ((ret = flush_types(m, types, n_types)) < 0)
					return ret;
				n_types = t = 0;
			}
			types[t] = (struct type_run){.name = e->type, .len = e->type_len};
			n_types++;
		}
		types[t].count++;
	}
	if ((ret = flush_types(m, types, n_types)) < 0)
		return ret;
	return n ? add_to(m->host, m->st, "#", 1, n) : 0;
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

static int cnt_query_state(void *inst, struct sl_state *st, const char *key, uint32_t key_len,
                           uint32_t mode, struct sl_plugin_out *out)
{
	struct counter *m = inst;
	enum key_kind kind;
	const char *name;
	uint32_t n;
	uint64_t count = 0;
	char k[CNT_KEY_MAX];
	uint32_t kn;
	const void *v;
	size_t vlen;
	int ret = parse_key(key, key_len, &kind, &name, &n);

	if (ret < 0)
		return ret;
	if (kind == KEY_TOTAL) {
		k[0] = '#';
		kn = 1;
	} else {
		kn = state_key(m->host, kind == KEY_TYPE ? 't' : 'a', name, n, k);
	}
	ret = m->host->state_get(st, k, kn, &v, &vlen);
	if (ret == -ENOENT && kind == KEY_TOTAL)
		ret = 0; /* an empty partition's total */
	else if (ret < 0)
		return ret;
	else if (vlen != sizeof(count))
		return -EIO;
	else
		memcpy(&count, v, sizeof(count));
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

static const struct sl_projection_ops cnt_ops = {
    .struct_size = sizeof(struct sl_projection_ops),
    .flags = SL_PROJECTION_HOST_STATE,
    .create = cnt_create,
    .destroy = cnt_destroy,
    .apply = cnt_apply,
    .key_route = cnt_key_route,
    .merge = cnt_merge,
    .query_state = cnt_query_state,
};

static const struct sl_plugin_info cnt_info = SL_PLUGIN_INFO_INIT(
    SL_PLUGIN_PROJECTION, "counter", "2.0", "events counted by type and by aggregate", &cnt_ops);

SL_PLUGIN_DEFINE(cnt_info)
