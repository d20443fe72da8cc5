/*
 * The latest projection through the loader: the latest event of each
 * aggregate in the consume format with its version, buffers reused as events
 * change size, snapshots that restore to the same model.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plugins_util.h"

static const struct sl_projection_ops *g_ops;

static void apply1(struct sl_plugin_inst *in, const char *type, const char *agg, const char *data,
                   uint64_t offset)
{
	uint8_t ev[4096];
	struct sl_plugin_event pe;
	uint32_t len = tu_event(ev, sizeof(ev), type, agg, data, offset);

	tu_fill(&pe, ev, len, in->ctx.partition, offset);
	cr_assert_eq(g_ops->apply(in->inst, &pe, 1, NULL), 0);
	/* The plugin must have copied: the host's bytes are gone after apply. */
	memset(ev, 0xee, sizeof(ev));
}

static int query(struct sl_plugin_inst *in, const char *key, struct sl_plugin_out *out)
{
	out->buf.len = 0;
	return g_ops->query(in->inst, key, (uint32_t)strlen(key), SL_PLUGIN_QUERY_FULL, out);
}

Test(plugins_latest, latest_event_per_aggregate)
{
	struct sl_plugin *p = tu_load("latest", SL_PLUGIN_PROJECTION);
	g_ops = &p->ops.projection;
	struct sl_plugin_inst *in = tu_inst(p, 3, NULL);
	struct sl_plugin_out out = {0};

	cr_assert_null(g_ops->key_route, "every key is an aggregate");
	apply1(in, "Opened", "acct-1", "{\"owner\":\"ann\"}", 10);
	apply1(in, "Opened", "acct-2", "{\"owner\":\"bob\"}", 11);
	apply1(in, "Renamed", "acct-1", "{\"owner\":\"anna\",\"note\":\"a longer payload now\"}",
	       12);

	cr_assert_eq(query(in, "acct-1", &out), 0);
	cr_assert_str_eq(out.buf.data,
	                 "{\"id\":\"0c000000-0000-0000-5a5a-5a5a5a5a5a5a\",\"type\":\"Renamed\","
	                 "\"aggregate\":\"acct-1\",\"timestamp\":1700000000012,\"partition\":3,"
	                 "\"offset\":12,\"version\":2,"
	                 "\"data\":{\"owner\":\"anna\",\"note\":\"a longer payload now\"}}");
	cr_assert_eq(query(in, "acct-2", &out), 0);
	cr_assert_not_null(strstr(out.buf.data, "\"offset\":11,\"version\":1,"), "%s",
	                   out.buf.data);
	cr_assert_eq(query(in, "acct-3", &out), -ENOENT);
	cr_assert_eq(query(in, "", &out), -EINVAL);
	/* Shrinking back reuses the buffer and still prints the right bytes. */
	apply1(in, "Closed", "acct-1", NULL, 13);
	cr_assert_eq(query(in, "acct-1", &out), 0);
	cr_assert_not_null(strstr(out.buf.data, "\"type\":\"Closed\""), "%s", out.buf.data);
	cr_assert_not_null(strstr(out.buf.data, "\"version\":3,\"data\":null}"), "%s",
	                   out.buf.data);

	sl_plugin_out_release(&out);
	sl_plugin_inst_destroy(in);
	sl_plugin_unload(p);
}

Test(plugins_latest, snapshot_round_trip)
{
	struct sl_plugin *p = tu_load("latest", SL_PLUGIN_PROJECTION);
	g_ops = &p->ops.projection;
	struct sl_plugin_inst *a = tu_inst(p, 1, NULL), *b = tu_inst(p, 1, NULL);
	struct sl_plugin_out s1 = {0}, s2 = {0}, q1 = {0}, q2 = {0};
	char agg[32], data[64];

	for (uint64_t i = 0; i < 3000; i++) {
		snprintf(agg, sizeof(agg), "k%llu", (unsigned long long)(i % 1001));
		snprintf(data, sizeof(data), "{\"i\":%llu}", (unsigned long long)i);
		apply1(a, "Set", agg, data, i);
	}
	cr_assert_eq(g_ops->snapshot(a->inst, &s1), 0);
	cr_assert_eq(g_ops->restore(b->inst, (const uint8_t *)s1.buf.data, s1.buf.len), 0);
	cr_assert_eq(g_ops->snapshot(b->inst, &s2), 0);
	cr_assert_eq(s1.buf.len, s2.buf.len);
	cr_assert_eq(memcmp(s1.buf.data, s2.buf.data, s1.buf.len), 0);
	for (int k = 0; k < 1001; k += 50) {
		snprintf(agg, sizeof(agg), "k%d", k);
		cr_assert_eq(query(a, agg, &q1), 0);
		cr_assert_eq(query(b, agg, &q2), 0);
		cr_assert_str_eq(q1.buf.data, q2.buf.data);
	}
	cr_assert_eq(query(b, "k7", &q2), 0);
	cr_assert_not_null(strstr(q2.buf.data, "\"version\":3,\"data\":{\"i\":2009}"), "%s",
	                   q2.buf.data);
	for (size_t cut = 0; cut < s1.buf.len; cut += 1 + cut / 2) {
		struct sl_plugin_inst *c = tu_inst(p, 1, NULL);
		cr_assert_eq(g_ops->restore(c->inst, (const uint8_t *)s1.buf.data, cut), -EINVAL,
		             "cut at %zu accepted", cut);
		sl_plugin_inst_destroy(c);
	}
	sl_plugin_out_release(&s1);
	sl_plugin_out_release(&s2);
	sl_plugin_out_release(&q1);
	sl_plugin_out_release(&q2);
	sl_plugin_inst_destroy(a);
	sl_plugin_inst_destroy(b);
	sl_plugin_unload(p);
}
