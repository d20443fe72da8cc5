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
 * The host keeps the model (plugin ABI 1.2, SL_PROJECTION_HOST_STATE): one
 * key per aggregate in the host's state of the partition, on disk behind
 * the host's cache, committed with the offset applied and the sequence of
 * the next rejection emitted; no snapshots.
 *
 *   "a" ID   the aggregate ID   ("A" + 463 bytes of ID + 32 hex chars of
 *                                two hashes when "a" ID would pass the
 *                                host's 496 bytes)
 *
 * Its value, 24 bytes, little-endian (BAL_* below name the offsets):
 *
 *   offset  size  field
 *        0     8  balance   i64  the sum of the applied amounts
 *        8     8  events    u64  events of the aggregate, refused ones included
 *       16     8  rejected  u64  events refused
 */
#include <sluice/plugin.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAL_BALANCE  0u
#define BAL_EVENTS   8u
#define BAL_REJECTED 16u
#define BAL_VALUE    24u

/* The host's limit on a key (sluice/plugin.h, state functions). */
#define BAL_KEY_MAX 496u
/* A longer id keeps this many of its bytes, then two 64-bit hashes in hex:
 * distinct ids collide with odds of 2^-128. */
#define BAL_KEEP (BAL_KEY_MAX - 1 - 32)

/* One aggregate's value, decoded. */
struct acct {
	int64_t balance;
	uint64_t events;
	uint64_t rejected;
};

struct balance {
	const struct sl_host *host;
	struct sl_state *st;
	char *field;
	char *reject_topic;
	int64_t min;
};

/* The state key of an aggregate id: into buf (BAL_KEY_MAX bytes), its
 * length returned. The tag tells a short id from a cut one, whose key may
 * hold any bytes after the cut. */
static uint32_t state_key(const struct sl_host *host, const char *id, uint32_t n, char *buf)
{
	if (n + 1 <= BAL_KEY_MAX) {
		buf[0] = 'a';
		memcpy(buf + 1, id, n);
		return n + 1;
	}
	buf[0] = 'A';
	memcpy(buf + 1, id, BAL_KEEP);
	char hex[33];
	snprintf(hex, sizeof(hex), "%016llx%016llx",
	         (unsigned long long)host->hash64(id, n, 0x62616c31ull),
	         (unsigned long long)host->hash64(id, n, 0x62616c32ull));
	memcpy(buf + 1 + BAL_KEEP, hex, 32);
	return BAL_KEY_MAX;
}

static void acct_load(struct acct *a, const uint8_t *v)
{
	memcpy(&a->balance, v + BAL_BALANCE, 8);
	memcpy(&a->events, v + BAL_EVENTS, 8);
	memcpy(&a->rejected, v + BAL_REJECTED, 8);
}

static void acct_store(const struct acct *a, uint8_t *v)
{
	memcpy(v + BAL_BALANCE, &a->balance, 8);
	memcpy(v + BAL_EVENTS, &a->events, 8);
	memcpy(v + BAL_REJECTED, &a->rejected, 8);
}

static void bal_destroy(void *inst)
{
	struct balance *m = inst;

	if (!m)
		return;
	free(m->field);
	free(m->reject_topic);
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
	if (!h->state || !h->state(c->ctx)) {
		snprintf(c->err, c->errlen, "balance needs the host's state (plugin ABI 1.2)");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->host = h;
	m->st = h->state(c->ctx);
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
	if (!(m->field = strdup(field)) || (topic && !(m->reject_topic = strdup(topic))))
		goto fail;
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
	char k[BAL_KEY_MAX];

	for (uint32_t i = 0; i < n; i++) {
		const struct sl_plugin_event *e = &ev[i];
		uint32_t kn = state_key(m->host, e->aggregate, e->aggregate_len, k);
		struct acct a;
		int64_t amount = 0, next;
		uint8_t *v;
		/* One lookup for the read and the write; a new key's bytes are
		 * zeros: an empty account. */
		int ret = m->host->state_modify(m->st, k, kn, BAL_VALUE, (void **)&v);

		if (ret < 0)
			return ret;
		acct_load(&a, v);
		a.events++;
		/* No amount: an event of the account that moves no money. */
		const char *why = NULL;
		if (m->host->json_get_i64(e->data, e->data_len, m->field, &amount) == 0) {
			if (__builtin_add_overflow(a.balance, amount, &next))
				why = "overflow";
			else if (next < m->min)
				why = "overdraft";
			else
				a.balance = next;
		}
		if (why)
			a.rejected++;
		/* Stored before the emit: v is the host's until its next call. */
		acct_store(&a, v);
		if (why && (ret = reject(m, e, amount, &a, why, em)) < 0)
			return ret;
	}
	return 0;
}

static int bal_query_state(void *inst, struct sl_state *st, const char *key, uint32_t key_len,
                           uint32_t mode, struct sl_plugin_out *out)
{
	struct balance *m = inst;
	char k[BAL_KEY_MAX];
	const void *v;
	size_t vlen;
	struct acct a;
	char tail[128];
	int ret;

	if (!key_len || mode != SL_PLUGIN_QUERY_FULL)
		return -EINVAL;
	if ((ret = m->host->state_get(st, k, state_key(m->host, key, key_len, k), &v, &vlen)) < 0)
		return ret;
	if (vlen != BAL_VALUE)
		return -EIO;
	acct_load(&a, v);
	if ((ret = m->host->out_put(out, "{\"aggregate\":", 13)) < 0 ||
	    (ret = m->host->out_put_json_str(out, key, key_len)) < 0)
		return ret;
	int n = snprintf(tail, sizeof(tail), ",\"balance\":%lld,\"events\":%llu,\"rejected\":%llu}",
	                 (long long)a.balance, (unsigned long long)a.events,
	                 (unsigned long long)a.rejected);
	return m->host->out_put(out, tail, (size_t)n);
}

static const struct sl_projection_ops bal_ops = {
    .struct_size = sizeof(struct sl_projection_ops),
    .flags = SL_PROJECTION_HOST_STATE,
    .create = bal_create,
    .destroy = bal_destroy,
    .apply = bal_apply,
    .query_state = bal_query_state,
};

static const struct sl_plugin_info bal_info =
    SL_PLUGIN_INFO_INIT(SL_PLUGIN_PROJECTION, "balance", "2.0",
                        "a running sum per aggregate; overdrafts rejected", &bal_ops);

SL_PLUGIN_DEFINE(bal_info)
