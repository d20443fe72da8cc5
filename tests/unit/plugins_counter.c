/*
 * The counter projection through the loader, on the host's state (plugin
 * ABI 1.2): counts by type and aggregate, the query keys, routing and
 * merging across partitions, what a query sees (the last commit), the model
 * after the store is closed and opened again, names longer than a state key,
 * and more aggregates than its cache holds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plugins_state.h"
#include "project/project.h"

Test(plugins_counter, counts_by_type_and_aggregate)
{
	struct ts_fixture f;
	int ret;
	ts_init(&f, "counter", 2, NULL, 0);

	ts_apply(&f, 0, "OrderPlaced", "order-1", NULL);
	ts_apply(&f, 0, "OrderPlaced", "order-2", NULL);
	ts_apply(&f, 0, "OrderPaid", "order-1", NULL);
	ts_apply(&f, 0, "OrderPlaced", "order-3", NULL);
	/* A query reads the last commit: nothing yet. */
	ts_query(&f, 0, "order-1", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_expect(&f, 0, "total", "{\"key\":\"total\",\"count\":0}");
	ts_commit(&f, 0);

	ts_expect(&f, 0, "type:OrderPlaced", "{\"key\":\"type:OrderPlaced\",\"count\":3}");
	ts_expect(&f, 0, "type:OrderPaid", "{\"key\":\"type:OrderPaid\",\"count\":1}");
	ts_expect(&f, 0, "aggregate:order-1", "{\"key\":\"aggregate:order-1\",\"count\":2}");
	ts_expect(&f, 0, "order-1", "{\"key\":\"order-1\",\"count\":2}");
	ts_expect(&f, 0, "total", "{\"key\":\"total\",\"count\":4}");
	ts_query(&f, 0, "type:Nope", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_query(&f, 0, "order-9", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_query(&f, 0, "type:", &ret);
	cr_assert_eq(ret, -EINVAL);
	ts_query(&f, 0, "", &ret);
	cr_assert_eq(ret, -EINVAL);
	/* The other partition of the same store holds nothing of these. */
	ts_query(&f, 1, "order-1", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_fini(&f);
}

Test(plugins_counter, routes_and_merges_across_partitions)
{
	struct ts_fixture f;
	const char *agg;
	uint32_t agg_len;
	ts_init(&f, "counter", 2, NULL, 0);

	cr_assert_eq(sl_project_key_route(f.p, "type:X", 6, &agg, &agg_len), 0);
	cr_assert_eq(sl_project_key_route(f.p, "total", 5, &agg, &agg_len), 0);
	cr_assert_eq(sl_project_key_route(f.p, "aggregate:acct-7", 16, &agg, &agg_len), 1);
	cr_assert_eq(agg_len, 6);
	cr_assert_eq(memcmp(agg, "acct-7", 6), 0);
	cr_assert_eq(sl_project_key_route(f.p, "acct-7", 6, &agg, &agg_len), 1);
	cr_assert_eq(sl_project_key_route(f.p, "type:", 5, &agg, &agg_len), -EINVAL);

	ts_apply(&f, 0, "X", "k1", NULL);
	ts_apply(&f, 0, "X", "k1", NULL);
	ts_apply(&f, 1, "X", "k2", NULL);
	ts_apply(&f, 1, "Y", "k2", NULL);
	ts_commit(&f, 0);
	ts_commit(&f, 1);

	struct sl_plugin_out pa = {0}, pb = {0};
	cr_assert_eq(ts_query_mode(&f, 0, "type:X", SL_PLUGIN_QUERY_PART, &pa, NULL), 0);
	cr_assert_eq(ts_query_mode(&f, 1, "type:X", SL_PLUGIN_QUERY_PART, &pb, NULL), 0);
	const uint8_t *parts[2] = {(const uint8_t *)pa.buf.data, (const uint8_t *)pb.buf.data};
	size_t lens[2] = {pa.buf.len, pb.buf.len};
	f.out.buf.len = 0;
	cr_assert_eq(sl_project_merge(f.p, "type:X", 6, parts, lens, 2, &f.out), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"type:X\",\"count\":3}");

	/* Y only in partition 1: 0 answers -ENOENT and is left out. */
	pa.buf.len = pb.buf.len = 0;
	cr_assert_eq(ts_query_mode(&f, 0, "type:Y", SL_PLUGIN_QUERY_PART, &pa, NULL), -ENOENT);
	cr_assert_eq(ts_query_mode(&f, 1, "type:Y", SL_PLUGIN_QUERY_PART, &pb, NULL), 0);
	parts[0] = (const uint8_t *)pb.buf.data;
	lens[0] = pb.buf.len;
	f.out.buf.len = 0;
	cr_assert_eq(sl_project_merge(f.p, "type:Y", 6, parts, lens, 1, &f.out), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"type:Y\",\"count\":1}");
	cr_assert_eq(sl_project_merge(f.p, "type:Z", 6, parts, lens, 0, &f.out), -ENOENT);
	lens[0] = 3;
	cr_assert_eq(sl_project_merge(f.p, "type:Y", 6, parts, lens, 1, &f.out), -EINVAL);
	/* The total's share of each partition. */
	pa.buf.len = 0;
	cr_assert_eq(ts_query_mode(&f, 1, "total", SL_PLUGIN_QUERY_PART, &pa, NULL), 0);
	uint64_t t;
	memcpy(&t, pa.buf.data, 8);
	cr_assert_eq(t, 2);

	sl_plugin_out_release(&pa);
	sl_plugin_out_release(&pb);
	ts_fini(&f);
}

Test(plugins_counter, the_model_and_its_offset_outlive_the_store)
{
	struct ts_fixture f;
	char agg[32];
	ts_init(&f, "counter", 2, NULL, 0);

	for (uint64_t i = 0; i < 5000; i++) {
		snprintf(agg, sizeof(agg), "agg-%llu", (unsigned long long)(i % 777));
		ts_apply(&f, 0, i % 3 ? "A" : "B", agg, NULL);
	}
	ts_commit(&f, 0);
	/* Applied but not committed: gone with the process. */
	ts_apply(&f, 0, "C", "agg-1", NULL);
	ts_reopen(&f);
	cr_assert_eq(f.next[0], 5000, "the store resumes at %llu", (unsigned long long)f.next[0]);
	cr_assert_eq(f.next[1], 0);
	uint64_t seen = 0;
	f.out.buf.len = 0;
	cr_assert_eq(ts_query_mode(&f, 0, "total", SL_PLUGIN_QUERY_FULL, &f.out, &seen), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"total\",\"count\":5000}");
	cr_assert_eq(seen, 5000);
	/* agg-1: i = 1, 778, ... below 5000. */
	char want[80];
	snprintf(want, sizeof(want), "{\"key\":\"agg-1\",\"count\":%d}", (5000 - 1 + 776) / 777);
	ts_expect(&f, 0, "agg-1", want);
	ts_expect(&f, 0, "type:B", "{\"key\":\"type:B\",\"count\":1667}");
	int ret;
	ts_query(&f, 0, "type:C", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_fini(&f);
}

Test(plugins_counter, names_longer_than_a_state_key)
{
	struct ts_fixture f;
	char a[TS_LONG_ID], b[TS_LONG_ID];
	ts_init(&f, "counter", 2, NULL, 0);

	ts_long_ids(a, b); /* two ids, one prefix */
	ts_apply(&f, 0, "T", a, NULL);
	ts_apply(&f, 0, "T", a, NULL);
	ts_apply(&f, 0, "T", b, NULL);
	ts_commit(&f, 0);
	int ret;
	const char *got = ts_query(&f, 0, a, &ret);
	cr_assert_eq(ret, 0);
	cr_assert(strstr(got, "\"count\":2}"), "%s", got);
	got = ts_query(&f, 0, b, &ret);
	cr_assert_eq(ret, 0);
	cr_assert(strstr(got, "\"count\":1}"), "%s", got);
	ts_fini(&f);
}

Test(plugins_counter, more_aggregates_than_the_cache_holds)
{
	struct ts_fixture f;
	char agg[32];
	/* The smallest budget (1 MiB): 40,000 aggregates of ~80 bytes each
	 * in the cache would take 3 MiB. */
	ts_init(&f, "counter", 2, NULL, 1);
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < 40000; i++) {
			snprintf(agg, sizeof(agg), "agg-%u", i);
			ts_apply(&f, 0, "A", agg, NULL);
			if (i % 1000 == 999) {
				/* A step's end: commit (inline, no writer) and evict. */
				struct sl_state_mark m = {.next = f.next[0]};
				cr_assert_eq(sl_state_part_end_step(f.sp[0], &m, true), 0);
				cr_assert(sl_state_part_poll(f.sp[0]));
			}
		}
	}
	ts_commit(&f, 0);
	struct sl_state_part_stats st;
	sl_state_part_get_stats(f.sp[0], &st);
	cr_assert_gt(st.evictions, 40000, "evictions %llu", (unsigned long long)st.evictions);
	cr_assert_gt(st.misses, 40000);
	cr_assert_leq(st.cache_bytes, (2u << 20), "cache %llu", (unsigned long long)st.cache_bytes);
	for (uint32_t i = 0; i < 40000; i += 997) {
		snprintf(agg, sizeof(agg), "agg-%u", i);
		char want[80];
		snprintf(want, sizeof(want), "{\"key\":\"%s\",\"count\":2}", agg);
		ts_expect(&f, 0, agg, want);
	}
	ts_expect(&f, 0, "total", "{\"key\":\"total\",\"count\":80000}");
	ts_fini(&f);
}
