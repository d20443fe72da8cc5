/*
 * The counter projection through the loader: counts by type and aggregate,
 * the query keys, routing and merging across partitions, snapshots that
 * restore to the same model and are canonical, and table growth.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plugins_util.h"
#include "project/project.h"

struct fixture {
	struct sl_plugin *p;
	const struct sl_projection_ops *ops;
	struct sl_plugin_out out;
};

static void fx_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->p = tu_load("counter", SL_PLUGIN_PROJECTION);
	f->ops = &f->p->ops.projection;
}

static void fx_fini(struct fixture *f)
{
	sl_plugin_out_release(&f->out);
	sl_plugin_unload(f->p);
}

/* Applies one event (type, aggregate) at `offset`. */
static void apply1(struct fixture *f, struct sl_plugin_inst *in, const char *type, const char *agg,
                   uint64_t offset)
{
	uint8_t ev[256];
	struct sl_plugin_event pe;
	uint32_t len = tu_event(ev, sizeof(ev), type, agg, NULL, offset);

	tu_fill(&pe, ev, len, in->ctx.partition, offset);
	cr_assert_eq(f->ops->apply(in->inst, &pe, 1, NULL), 0);
}

static const char *query(struct fixture *f, struct sl_plugin_inst *in, const char *key, int *ret)
{
	f->out.buf.len = 0;
	*ret = f->ops->query(in->inst, key, (uint32_t)strlen(key), SL_PLUGIN_QUERY_FULL, &f->out);
	return f->out.buf.len ? f->out.buf.data : "";
}

static void expect(struct fixture *f, struct sl_plugin_inst *in, const char *key, const char *want)
{
	int ret;
	const char *got = query(f, in, key, &ret);
	cr_assert_eq(ret, 0, "%s: %d", key, ret);
	cr_assert_str_eq(got, want);
}

Test(plugins_counter, counts_by_type_and_aggregate)
{
	struct fixture f;
	fx_init(&f);
	struct sl_plugin_inst *in = tu_inst(f.p, 0, NULL);
	int ret;

	apply1(&f, in, "OrderPlaced", "order-1", 0);
	apply1(&f, in, "OrderPlaced", "order-2", 1);
	apply1(&f, in, "OrderPaid", "order-1", 2);
	apply1(&f, in, "OrderPlaced", "order-3", 3);

	expect(&f, in, "type:OrderPlaced", "{\"key\":\"type:OrderPlaced\",\"count\":3}");
	expect(&f, in, "type:OrderPaid", "{\"key\":\"type:OrderPaid\",\"count\":1}");
	expect(&f, in, "aggregate:order-1", "{\"key\":\"aggregate:order-1\",\"count\":2}");
	expect(&f, in, "order-1", "{\"key\":\"order-1\",\"count\":2}");
	expect(&f, in, "total", "{\"key\":\"total\",\"count\":4}");
	query(&f, in, "type:Nope", &ret);
	cr_assert_eq(ret, -ENOENT);
	query(&f, in, "order-9", &ret);
	cr_assert_eq(ret, -ENOENT);
	query(&f, in, "type:", &ret);
	cr_assert_eq(ret, -EINVAL);
	query(&f, in, "", &ret);
	cr_assert_eq(ret, -EINVAL);
	sl_plugin_inst_destroy(in);
	fx_fini(&f);
}

Test(plugins_counter, routes_and_merges_across_partitions)
{
	struct fixture f;
	fx_init(&f);
	struct sl_plugin_inst *a = tu_inst(f.p, 0, NULL), *b = tu_inst(f.p, 1, NULL);
	const char *agg;
	uint32_t agg_len;

	cr_assert_eq(sl_project_key_route(f.p, "type:X", 6, &agg, &agg_len), 0);
	cr_assert_eq(sl_project_key_route(f.p, "total", 5, &agg, &agg_len), 0);
	cr_assert_eq(sl_project_key_route(f.p, "aggregate:acct-7", 16, &agg, &agg_len), 1);
	cr_assert_eq(agg_len, 6);
	cr_assert_eq(memcmp(agg, "acct-7", 6), 0);
	cr_assert_eq(sl_project_key_route(f.p, "acct-7", 6, &agg, &agg_len), 1);
	cr_assert_eq(sl_project_key_route(f.p, "type:", 5, &agg, &agg_len), -EINVAL);

	apply1(&f, a, "X", "k1", 0);
	apply1(&f, a, "X", "k1", 1);
	apply1(&f, b, "X", "k2", 0);
	apply1(&f, b, "Y", "k2", 1);

	struct sl_plugin_out pa = {0}, pb = {0};
	cr_assert_eq(f.ops->query(a->inst, "type:X", 6, SL_PLUGIN_QUERY_PART, &pa), 0);
	cr_assert_eq(f.ops->query(b->inst, "type:X", 6, SL_PLUGIN_QUERY_PART, &pb), 0);
	const uint8_t *parts[2] = {(const uint8_t *)pa.buf.data, (const uint8_t *)pb.buf.data};
	size_t lens[2] = {pa.buf.len, pb.buf.len};
	f.out.buf.len = 0;
	cr_assert_eq(sl_project_merge(f.p, "type:X", 6, parts, lens, 2, &f.out), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"type:X\",\"count\":3}");

	/* Y only in b: a answers -ENOENT and is left out. */
	pa.buf.len = pb.buf.len = 0;
	cr_assert_eq(f.ops->query(a->inst, "type:Y", 6, SL_PLUGIN_QUERY_PART, &pa), -ENOENT);
	cr_assert_eq(f.ops->query(b->inst, "type:Y", 6, SL_PLUGIN_QUERY_PART, &pb), 0);
	parts[0] = (const uint8_t *)pb.buf.data;
	lens[0] = pb.buf.len;
	f.out.buf.len = 0;
	cr_assert_eq(sl_project_merge(f.p, "type:Y", 6, parts, lens, 1, &f.out), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"type:Y\",\"count\":1}");
	/* No partition has it. */
	cr_assert_eq(sl_project_merge(f.p, "type:Z", 6, parts, lens, 0, &f.out), -ENOENT);
	/* A part of the wrong size is not ours. */
	lens[0] = 3;
	cr_assert_eq(sl_project_merge(f.p, "type:Y", 6, parts, lens, 1, &f.out), -EINVAL);

	sl_plugin_out_release(&pa);
	sl_plugin_out_release(&pb);
	sl_plugin_inst_destroy(a);
	sl_plugin_inst_destroy(b);
	fx_fini(&f);
}

Test(plugins_counter, snapshot_restores_the_same_model)
{
	struct fixture f;
	fx_init(&f);
	struct sl_plugin_inst *a = tu_inst(f.p, 0, NULL), *b = tu_inst(f.p, 0, NULL);
	struct sl_plugin_out s1 = {0}, s2 = {0};
	char agg[32];

	for (uint64_t i = 0; i < 5000; i++) {
		snprintf(agg, sizeof(agg), "agg-%llu", (unsigned long long)(i % 777));
		apply1(&f, a, i % 3 ? "A" : "B", agg, i);
	}
	cr_assert_eq(f.ops->snapshot(a->inst, &s1), 0);
	cr_assert_eq(f.ops->restore(b->inst, (const uint8_t *)s1.buf.data, s1.buf.len), 0);
	cr_assert_eq(f.ops->snapshot(b->inst, &s2), 0);
	cr_assert_eq(s1.buf.len, s2.buf.len);
	cr_assert_eq(memcmp(s1.buf.data, s2.buf.data, s1.buf.len), 0);
	expect(&f, b, "type:A", "{\"key\":\"type:A\",\"count\":3333}");
	expect(&f, b, "agg-5", "{\"key\":\"agg-5\",\"count\":7}");
	expect(&f, b, "total", "{\"key\":\"total\",\"count\":5000}");
	/* The restored model goes on counting. */
	apply1(&f, b, "A", "agg-5", 5000);
	expect(&f, b, "agg-5", "{\"key\":\"agg-5\",\"count\":8}");

	/* Bytes that are not a counter snapshot: refused, never half-taken
	 * silently (the host discards the instance after a refusal). */
	struct sl_plugin_inst *c = tu_inst(f.p, 0, NULL);
	cr_assert_eq(f.ops->restore(c->inst, (const uint8_t *)"garbage", 7), -EINVAL);
	sl_plugin_inst_destroy(c);
	for (size_t cut = 0; cut < s1.buf.len; cut += 1 + cut / 3) {
		c = tu_inst(f.p, 0, NULL);
		cr_assert_eq(f.ops->restore(c->inst, (const uint8_t *)s1.buf.data, cut), -EINVAL,
		             "snapshot cut at %zu accepted", cut);
		sl_plugin_inst_destroy(c);
	}
	sl_plugin_out_release(&s1);
	sl_plugin_out_release(&s2);
	sl_plugin_inst_destroy(a);
	sl_plugin_inst_destroy(b);
	fx_fini(&f);
}

Test(plugins_counter, snapshot_is_canonical)
{
	struct fixture f;
	fx_init(&f);
	struct sl_plugin_inst *a = tu_inst(f.p, 0, NULL), *b = tu_inst(f.p, 0, NULL);
	struct sl_plugin_out s1 = {0}, s2 = {0};
	const char *aggs[] = {"z", "a", "mm", "m", "b"};

	for (int i = 0; i < 5; i++)
		apply1(&f, a, "T", aggs[i], (uint64_t)i);
	for (int i = 4; i >= 0; i--)
		apply1(&f, b, "T", aggs[i], (uint64_t)i);
	cr_assert_eq(f.ops->snapshot(a->inst, &s1), 0);
	cr_assert_eq(f.ops->snapshot(b->inst, &s2), 0);
	cr_assert_eq(s1.buf.len, s2.buf.len);
	cr_assert_eq(memcmp(s1.buf.data, s2.buf.data, s1.buf.len), 0,
	             "same model, different insertion order, different bytes");
	sl_plugin_out_release(&s1);
	sl_plugin_out_release(&s2);
	sl_plugin_inst_destroy(a);
	sl_plugin_inst_destroy(b);
	fx_fini(&f);
}

Test(plugins_counter, many_aggregates_grow_the_table)
{
	struct fixture f;
	fx_init(&f);
	struct sl_plugin_inst *in = tu_inst(f.p, 0, NULL);
	enum { N = 100000 };
	static uint8_t evs[64][128];
	struct sl_plugin_event pe[64];
	char agg[32];

	for (uint32_t base = 0; base < 2 * N; base += 64) {
		for (uint32_t j = 0; j < 64; j++) {
			snprintf(agg, sizeof(agg), "a%u", (base + j) % N);
			uint32_t len = tu_event(evs[j], sizeof(evs[j]), "T", agg, NULL, base + j);
			tu_fill(&pe[j], evs[j], len, 0, base + j);
		}
		cr_assert_eq(f.ops->apply(in->inst, pe, 64, NULL), 0);
	}
	/* 2N rounded up to whole batches of 64: some keys got a third event. */
	uint64_t total = ((2 * N + 63) / 64) * 64;
	for (uint32_t k = 0; k < N; k += 997) {
		char key[32], want[96];
		snprintf(key, sizeof(key), "a%u", k);
		uint64_t n = 2 + (k + 2 * N < total);
		snprintf(want, sizeof(want), "{\"key\":\"%s\",\"count\":%llu}", key,
		         (unsigned long long)n);
		expect(&f, in, key, want);
	}
	sl_plugin_inst_destroy(in);
	fx_fini(&f);
}
