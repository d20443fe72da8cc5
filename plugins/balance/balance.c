/*
 * balance: a projection keeping a running sum of an integer field of each
 * event's data per aggregate (an account ledger), refusing events that would
 * take a balance below a floor.
 *
 *   field:        the data member to add (default "amount"); an integer, in
 *                 minor units (cents): money is never a float here
 *   min:          the lowest balance allowed (default 0: no overdraft)
 *   reject_topic: where refused events are reported (optional)
 *
 * An event whose data has no integer `field` (e.g. AccountOpened) counts as
 * an event of the aggregate and changes nothing. An event that would take the
 * balance below `min` (or overflow 64 bits) is not applied; it is counted as
 * rejected and, with reject_topic, reported there as a new event of type
 * "BalanceRejected" (same aggregate, id derived from the refused event's, so
 * a replay reports it with the same id) whose data says which event, why, and
 * the balance it met.
 *
 * Query: the aggregate id ->
 *   {"aggregate":ID,"balance":N,"events":K,"rejected":R}
 *
 * Snapshot (canonical: sorted): "BAL1" | u32 n | n x (u32 len, key,
 * i64 balance, u64 events, u64 rejected)   little-endian
 */
#include <sluice/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAL_MAGIC   0x314c4142u /* "BAL1" */
#define BAL_KEY_MAX (1u << 20)

struct acct {
	uint64_t hash; /* 0: empty */
	int64_t balance;
	uint64_t events;
	uint64_t rejected;
	uint32_t key_off, key_len;
};

struct balance {
	const struct sl_host *host;
	char *field;
	char *reject_topic;
	int64_t min;
	struct acct *slots;
	uint32_t mask, used;
	char *keys;
	size_t keys_len, keys_cap;
};

static uint64_t key_hash(const struct sl_host *host, const char *k, size_t n)
{
	uint64_t h = host->hash64(k, n, 0x62616c616e6365ull);
	return h ? h : 1;
}

static struct acct *find(const struct balance *m, uint64_t h, const char *k, uint32_t n)
{
	for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
		struct acct *a = &m->slots[i];
		if (!a->hash)
			return NULL;
		if (a->hash == h && a->key_len == n && !memcmp(m->keys + a->key_off, k, n))
			return a;
	}
}

static int grow(struct balance *m)
{
	uint32_t cap = (m->mask + 1) * 2;
	struct acct *s = cap ? calloc(cap, sizeof(*s)) : NULL;

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

static struct acct *upsert(struct balance *m, const char *k, uint32_t n)
{
	uint64_t h = key_hash(m->host, k, n);
	struct acct *a = find(m, h, k, n);
	uint32_t i;

	if (a)
		return a;
	if (n > BAL_KEY_MAX || m->keys_len + n > UINT32_MAX)
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
	if ((m->used + 1) * 2 > m->mask + 1 && grow(m) < 0)
		return NULL;
	for (i = (uint32_t)h & m->mask; m->slots[i].hash; i = (i + 1) & m->mask)
		;
	a = &m->slots[i];
	memset(a, 0, sizeof(*a));
	memcpy(m->keys + m->keys_len, k, n);
	a->hash = h;
	a->key_off = (uint32_t)m->keys_len;
	a->key_len = n;
	m->keys_len += n;
	m->used++;
	return a;
}

static void bal_destroy(void *inst)
{
	struct balance *m = inst;

	if (!m)
		return;
	free(m->field);
	free(m->reject_topic);
	free(m->slots);
	free(m->keys);
	free(m);
}

static int bal_create(const struct sl_plugin_create *c, void **inst)
{
	static const char *const known[] = {"field", "min", "reject_topic", NULL};
	const struct sl_host *h = c->host;
	const char *bad = NULL, *field = "amount", *topic = NULL;
	struct balance *m;
	int ret;

	if (h->arg_check_keys(c->args, known, &bad) < 0) {
		snprintf(c->err, c->errlen,
		         "unknown arg '%s' (balance takes field, min, reject_topic)",
		         bad ? bad : "?");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->host = h;
	if ((ret = h->arg_str(c->args, "field", &field)) < 0 && ret != -ENOENT) {
		snprintf(c->err, c->errlen, "field must be a name");
		goto fail;
	}
	if ((ret = h->arg_i64(c->args, "min", &m->min)) < 0 && ret != -ENOENT) {
		snprintf(c->err, c->errlen, "min must be an integer");
		goto fail;
	}
	if ((ret = h->arg_str(c->args, "reject_topic", &topic)) < 0 && ret != -ENOENT) {
		snprintf(c->err, c->errlen, "reject_topic must be a topic name");
		goto fail;
	}
	ret = -ENOMEM;
	if (!(m->field = strdup(field)) || (topic && !(m->reject_topic = strdup(topic))) ||
	    !(m->slots = calloc(1024, sizeof(*m->slots))))
		goto fail;
	m->mask = 1023;
	*inst = m;
	return 0;
fail:
	bal_destroy(m);
	return ret;
}

static void hex_id(const uint8_t *id, char *out)
{
	static const char digits[] = "0123456789abcdef";
	int k = 0;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = digits[id[i] >> 4];
		out[k++] = digits[id[i] & 15];
	}
	out[k] = '\0';
}

/* Reports a refused event on the reject topic. */
static int reject(struct balance *m, const struct sl_plugin_event *e, int64_t amount,
                  const struct acct *a, const char *why, struct sl_plugin_emitter *em)
{
	char data[512], id[40] = "";
	char type[128];

	if (!m->reject_topic)
		return 0;
	if (e->id)
		hex_id(e->id, id);
	/* The type is the producer's text: printed through %.*s only when it is
	 * plain, else left out, so the data stays valid JSON without an
	 * escaper here. */
	bool plain = e->type_len < sizeof(type);
	for (uint32_t i = 0; i < e->type_len && plain; i++)
		plain = e->type[i] >= 0x20 && e->type[i] < 0x7f && e->type[i] != '"' &&
		        e->type[i] != '\\';
	snprintf(type, sizeof(type), "%.*s", plain ? (int)e->type_len : 0, e->type);
	int n = snprintf(data, sizeof(data),
	                 "{\"reason\":\"%s\",\"event_id\":\"%s\",\"event_type\":\"%s\","
	                 "\"partition\":%u,\"offset\":%llu,\"amount\":%lld,\"balance\":%lld,"
	                 "\"min\":%lld}",
	                 why, id, type, e->partition, (unsigned long long)e->offset,
	                 (long long)amount, (long long)a->balance, (long long)m->min);
	struct sl_plugin_event_out out = {
	    .struct_size = sizeof(out),
	    .source = e,
	    .type = "BalanceRejected",
	    .type_len = 15,
	    .aggregate = e->aggregate,
	    .aggregate_len = e->aggregate_len,
	    .data = (const uint8_t *)data,
	    .data_len = (uint32_t)n,
	    .timestamp_ms = e->timestamp_ms,
	};
	return m->host->emit(em, m->reject_topic, strlen(m->reject_topic), &out);
}

static int bal_apply(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                     struct sl_plugin_emitter *em)
{
	struct balance *m = inst;

	for (uint32_t i = 0; i < n; i++) {
		const struct sl_plugin_event *e = &ev[i];
		struct acct *a = upsert(m, e->aggregate, e->aggregate_len);
		int64_t amount, next;
		int ret;

		if (!a)
			return -ENOMEM;
		a->events++;
		if (m->host->json_get_i64(e->data, e->data_len, m->field, &amount) < 0)
			continue; /* no amount: an event of the account that moves no money */
		const char *why = NULL;
		if (__builtin_add_overflow(a->balance, amount, &next))
			why = "overflow";
		else if (next < m->min)
			why = "overdraft";
		if (why) {
			a->rejected++;
			if ((ret = reject(m, e, amount, a, why, em)) < 0)
				return ret;
			continue;
		}
		a->balance = next;
	}
	return 0;
}

static int bal_query(void *inst, const char *key, uint32_t key_len, uint32_t mode,
                     struct sl_plugin_out *out)
{
	struct balance *m = inst;
	const struct acct *a;
	char tail[128];
	int ret;

	if (!key_len || mode != SL_PLUGIN_QUERY_FULL)
		return -EINVAL;
	a = find(m, key_hash(m->host, key, key_len), key, key_len);
	if (!a)
		return -ENOENT;
	if ((ret = m->host->out_put(out, "{\"aggregate\":", 13)) < 0 ||
	    (ret = m->host->out_put_json_str(out, key, key_len)) < 0)
		return ret;
	int n = snprintf(tail, sizeof(tail), ",\"balance\":%lld,\"events\":%llu,\"rejected\":%llu}",
	                 (long long)a->balance, (unsigned long long)a->events,
	                 (unsigned long long)a->rejected);
	return m->host->out_put(out, tail, (size_t)n);
}

static int cmp_accts(const void *x, const void *y, void *arg)
{
	const struct balance *m = arg;
	const struct acct *a = *(const struct acct *const *)x, *b = *(const struct acct *const *)y;
	uint32_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(m->keys + a->key_off, m->keys + b->key_off, n);

	if (c)
		return c;
	return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

static int bal_snapshot(void *inst, struct sl_plugin_out *out)
{
	struct balance *m = inst;
	const struct sl_host *h = m->host;
	const struct acct **v = malloc((m->used ? m->used : 1) * sizeof(*v));
	uint32_t head[2] = {BAL_MAGIC, m->used}, n = 0;
	int ret;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i <= m->mask; i++)
		if (m->slots[i].hash)
			v[n++] = &m->slots[i];
	qsort_r(v, n, sizeof(*v), cmp_accts, m);
	ret = h->out_put(out, head, sizeof(head));
	for (uint32_t i = 0; i < n && ret >= 0; i++) {
		const struct acct *a = v[i];
		if ((ret = h->out_put(out, &a->key_len, 4)) < 0 ||
		    (ret = h->out_put(out, m->keys + a->key_off, a->key_len)) < 0 ||
		    (ret = h->out_put(out, &a->balance, 8)) < 0 ||
		    (ret = h->out_put(out, &a->events, 8)) < 0)
			break;
		ret = h->out_put(out, &a->rejected, 8);
	}
	free(v);
	return ret < 0 ? ret : 0;
}

static int bal_restore(void *inst, const uint8_t *bytes, size_t len)
{
	struct balance *m = inst;
	const uint8_t *p = bytes, *end = bytes + len;
	uint32_t magic, n;

	if (len < 8)
		return -EINVAL;
	memcpy(&magic, p, 4);
	memcpy(&n, p + 4, 4);
	p += 8;
	if (magic != BAL_MAGIC)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t klen;
		if (end - p < 4)
			return -EINVAL;
		memcpy(&klen, p, 4);
		p += 4;
		if (!klen || klen > BAL_KEY_MAX || (size_t)(end - p) < (size_t)klen + 24)
			return -EINVAL;
		struct acct *a = upsert(m, (const char *)p, klen);
		if (!a)
			return -ENOMEM;
		if (a->events) /* an account twice: not a snapshot we wrote */
			return -EINVAL;
		p += klen;
		memcpy(&a->balance, p, 8);
		memcpy(&a->events, p + 8, 8);
		memcpy(&a->rejected, p + 16, 8);
		p += 24;
		if (!a->events)
			return -EINVAL;
	}
	return p == end ? 0 : -EINVAL;
}

static const struct sl_projection_ops bal_ops = {
    .struct_size = sizeof(struct sl_projection_ops),
    .create = bal_create,
    .destroy = bal_destroy,
    .apply = bal_apply,
    .query = bal_query,
    .snapshot = bal_snapshot,
    .restore = bal_restore,
};

static const struct sl_plugin_info bal_info =
    SL_PLUGIN_INFO_INIT(SL_PLUGIN_PROJECTION, "balance", "1.0",
                        "a running sum per aggregate; overdrafts rejected", &bal_ops);

SL_PLUGIN_DEFINE(bal_info)
