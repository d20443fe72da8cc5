/*
 * latest: a projection that keeps, per aggregate, its latest event (event
 * sourcing's "current state" when each event carries the whole state) and
 * how many events the aggregate has had (its version).
 *
 * The host keeps the model (plugin ABI 1.2, SL_PROJECTION_HOST_STATE): one
 * key per aggregate in the host's state of the partition, on disk behind
 * the host's cache, committed with the offset applied; no snapshots.
 *
 *   "a" ID   the aggregate ID   ("A" + 463 bytes of ID + 32 hex chars of
 *                                two hashes when "a" ID would pass the
 *                                host's 496 bytes)
 *
 * Its value, little-endian (LAT_* below name the offsets):
 *
 *   offset  size  field
 *        0     8  offset      u64  the latest event's offset in its partition
 *        8     8  version     u64  events of the aggregate so far (1: the first)
 *       16     4  partition   u32  the latest event's partition
 *       20     4  event_len   u32  n
 *       24     n  event       the encoded event, as stored in the log
 *
 * Query: the aggregate id; the answer is the latest event in the consume
 * format (the host's event JSON) with "version" added. Every aggregate lives
 * in one partition: no key_route, the key is the aggregate.
 */
#include <sluice/plugin.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAT_OFFSET    0u
#define LAT_VERSION   8u
#define LAT_PARTITION 16u
#define LAT_EVENT_LEN 20u
#define LAT_EVENT     24u /* the fixed part's size */

/* The host's limit on a key (sluice/plugin.h, state functions). */
#define LAT_KEY_MAX 496u
/* A longer id keeps this many of its bytes, then two 64-bit hashes in hex:
 * distinct ids collide with odds of 2^-128. */
#define LAT_KEEP (LAT_KEY_MAX - 1 - 32)

struct latest {
	const struct sl_host *host;
	struct sl_state *st;
};

/* The state key of an aggregate id: into buf (LAT_KEY_MAX bytes), its
 * length returned. The tag tells a short id from a cut one, whose key may
 * hold any bytes after the cut. */
static uint32_t state_key(const struct sl_host *host, const char *id, uint32_t n, char *buf)
{
	if (n + 1 <= LAT_KEY_MAX) {
		buf[0] = 'a';
		memcpy(buf + 1, id, n);
		return n + 1;
	}
	buf[0] = 'A';
	memcpy(buf + 1, id, LAT_KEEP);
	char hex[33];
	snprintf(hex, sizeof(hex), "%016llx%016llx",
	         (unsigned long long)host->hash64(id, n, 0x6c617431ull),
	         (unsigned long long)host->hash64(id, n, 0x6c617432ull));
	memcpy(buf + 1 + LAT_KEEP, hex, 32);
	return LAT_KEY_MAX;
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
	if (!c->host->state || !c->host->state(c->ctx)) {
		snprintf(c->err, c->errlen, "latest needs the host's state (plugin ABI 1.2)");
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

static void lat_destroy(void *inst)
{
	free(inst);
}

/*
 * One state_modify per event rather than a get and a put: the version needs
 * the old value, and modify finds the entry once, keeps its bytes in place
 * (the version read from them) and lets the event be copied straight into
 * it; a get and a put would look the key up twice and copy the event twice
 * (into a value built here, then into the cache).
 */
static int lat_apply(void *inst, const struct sl_plugin_event *ev, uint32_t n,
                     struct sl_plugin_emitter *em)
{
	struct latest *m = inst;
	char k[LAT_KEY_MAX];

	(void)em;
	for (uint32_t i = 0; i < n; i++) {
		const struct sl_plugin_event *e = &ev[i];
		uint32_t kn = state_key(m->host, e->aggregate, e->aggregate_len, k);
		uint8_t *v;
		int ret =
		    m->host->state_modify(m->st, k, kn, LAT_EVENT + (size_t)e->len, (void **)&v);
		if (ret < 0)
			return ret;
		uint64_t version;
		/* A new key's bytes are zeros: version 0. */
		memcpy(&version, v + LAT_VERSION, 8);
		version++;
		memcpy(v + LAT_OFFSET, &e->offset, 8);
		memcpy(v + LAT_VERSION, &version, 8);
		memcpy(v + LAT_PARTITION, &e->partition, 4);
		memcpy(v + LAT_EVENT_LEN, &e->len, 4);
		memcpy(v + LAT_EVENT, e->bytes, e->len);
	}
	return 0;
}

static int lat_query_state(void *inst, struct sl_state *st, const char *key, uint32_t key_len,
                           uint32_t mode, struct sl_plugin_out *out)
{
	struct latest *m = inst;
	char k[LAT_KEY_MAX];
	const uint8_t *v;
	size_t vlen;
	uint64_t offset, version;
	uint32_t partition, ev_len;
	char num[24];

	if (!key_len)
		return -EINVAL;
	if (mode != SL_PLUGIN_QUERY_FULL)
		return -EINVAL; /* every key lives in one partition */
	int ret = m->host->state_get(st, k, state_key(m->host, key, key_len, k), (const void **)&v,
	                             &vlen);
	if (ret < 0)
		return ret;
	if (vlen < LAT_EVENT)
		return -EIO;
	memcpy(&offset, v + LAT_OFFSET, 8);
	memcpy(&version, v + LAT_VERSION, 8);
	memcpy(&partition, v + LAT_PARTITION, 4);
	memcpy(&ev_len, v + LAT_EVENT_LEN, 4);
	if (vlen - LAT_EVENT != ev_len)
		return -EIO;
	int nn = snprintf(num, sizeof(num), "%llu", (unsigned long long)version);
	const char *keys[1] = {"version"};
	const char *json[1] = {num};
	size_t lens[1] = {(size_t)nn};
	return m->host->out_put_event_json(out, v + LAT_EVENT, ev_len, partition, offset, keys,
	                                   json, lens, 1);
}

static const struct sl_projection_ops lat_ops = {
    .struct_size = sizeof(struct sl_projection_ops),
    .flags = SL_PROJECTION_HOST_STATE,
    .create = lat_create,
    .destroy = lat_destroy,
    .apply = lat_apply,
    .query_state = lat_query_state,
};

static const struct sl_plugin_info lat_info =
    SL_PLUGIN_INFO_INIT(SL_PLUGIN_PROJECTION, "latest", "2.0",
                        "the latest event and version of each aggregate", &lat_ops);

SL_PLUGIN_DEFINE(lat_info)
