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

#include "plugins_util.h"
#include "project/project.h"
#include "state/state.h"

#define N_PARTS 2

struct fixture {
	struct sl_plugin *p;
	const struct sl_projection_ops *ops;
	struct sl_plugin_out out;
	char *dir;
	char path[512];
	struct sl_state_db *db;
	struct sl_state_part *sp[N_PARTS];
	struct sl_plugin_inst *in[N_PARTS];
	uint64_t next[N_PARTS];
};

static void fx_open(struct fixture *f, size_t cache_bytes)
{
	char err[512];
	struct sl_state_db_opts dbo = {.path = f->path};
	cr_assert_eq(sl_state_db_open(&dbo, &f->db, err, sizeof(err)), 0, "%s", err);
	for (uint32_t i = 0; i < N_PARTS; i++) {
		struct sl_state_part_opts po = {.partition = i, .cache_bytes = cache_bytes};
		struct sl_state_mark m;
		cr_assert_eq(sl_state_part_open(f->db, &po, &f->sp[i], &m, err, sizeof(err)), 0,
		             "%s", err);
		f->next[i] = m.next;
		struct sl_plugin_inst_opts o = {.partition = i,
		                                .n_partitions = N_PARTS,
		                                .topic = "events",
		                                .state = sl_state_part_view(f->sp[i])};
		cr_assert_eq(sl_plugin_inst_create(f->p, &o, &f->in[i], err, sizeof(err)), 0, "%s",
		             err);
	}
}

static void fx_close(struct fixture *f)
{
	for (uint32_t i = 0; i < N_PARTS; i++) {
		sl_plugin_inst_destroy(f->in[i]);
		sl_state_part_close(f->sp[i]);
	}
	sl_state_db_close(f->db);
}

static void fx_init(struct fixture *f, size_t cache_bytes)
{
	memset(f, 0, sizeof(*f));
	f->p = tu_load("counter", SL_PLUGIN_PROJECTION);
	f->ops = &f->p->ops.projection;
	cr_assert(f->ops->flags & SL_PROJECTION_HOST_STATE);
	f->dir = tu_tmpdir("counter");
	snprintf(f->path, sizeof(f->path), "%s/state", f->dir);
	fx_open(f, cache_bytes);
}

static void fx_fini(struct fixture *f)
{
	fx_close(f);
	sl_plugin_out_release(&f->out);
	sl_plugin_unload(f->p);
	tu_rmdir(f->dir);
}

/* Applies one event (type, aggregate) as the next of partition p. */
static void apply1(struct fixture *f, uint32_t p, const char *type, const char *agg)
{
	uint8_t ev[2048];
	struct sl_plugin_event pe;
	uint32_t len = tu_event(ev, sizeof(ev), type, agg, NULL, f->next[p]);

	tu_fill(&pe, ev, len, p, f->next[p]);
	cr_assert_eq(f->ops->apply(f->in[p]->inst, &pe, 1, NULL), 0);
	f->next[p]++;
}

/* Commits partition p's changes (as a clean stop does). */
static void commit(struct fixture *f, uint32_t p)
{
	char err[300];
	struct sl_state_mark m = {.next = f->next[p]};
	cr_assert_eq(sl_state_part_sync(f->sp[p], &m, err, sizeof(err)), 0, "%s", err);
}

static int query_mode(struct fixture *f, uint32_t p, const char *key, uint32_t mode,
                      struct sl_plugin_out *out, uint64_t *seen)
{
	struct sl_state *v;
	struct sl_state_mark m;
	cr_assert_eq(sl_state_view_begin(f->db, p, &v, &m), 0);
	int ret = f->ops->query_state(f->in[p]->inst, v, key, (uint32_t)strlen(key), mode, out);
	sl_state_view_end(v);
	if (seen)
		*seen = m.next;
	return ret;
}

static const char *query(struct fixture *f, uint32_t p, const char *key, int *ret)
{
	f->out.buf.len = 0;
	*ret = query_mode(f, p, key, SL_PLUGIN_QUERY_FULL, &f->out, NULL);
	return f->out.buf.len ? f->out.buf.data : "";
}

static void expect(struct fixture *f, uint32_t p, const char *key, const char *want)
{
	int ret;
	const char *got = query(f, p, key, &ret);
	cr_assert_eq(ret, 0, "%s: %d", key, ret);
	cr_assert_str_eq(got, want);
}

Test(plugins_counter, counts_by_type_and_aggregate)
{
	struct fixture f;
	int ret;
	fx_init(&f, 0);

	apply1(&f, 0, "OrderPlaced", "order-1");
	apply1(&f, 0, "OrderPlaced", "order-2");
	apply1(&f, 0, "OrderPaid", "order-1");
	apply1(&f, 0, "OrderPlaced", "order-3");
	/* A query reads the last commit: nothing yet. */
	query(&f, 0, "order-1", &ret);
	cr_assert_eq(ret, -ENOENT);
	expect(&f, 0, "total", "{\"key\":\"total\",\"count\":0}");
	commit(&f, 0);

	expect(&f, 0, "type:OrderPlaced", "{\"key\":\"type:OrderPlaced\",\"count\":3}");
	expect(&f, 0, "type:OrderPaid", "{\"key\":\"type:OrderPaid\",\"count\":1}");
	expect(&f, 0, "aggregate:order-1", "{\"key\":\"aggregate:order-1\",\"count\":2}");
	expect(&f, 0, "order-1", "{\"key\":\"order-1\",\"count\":2}");
	expect(&f, 0, "total", "{\"key\":\"total\",\"count\":4}");
	query(&f, 0, "type:Nope", &ret);
	cr_assert_eq(ret, -ENOENT);
	query(&f, 0, "order-9", &ret);
	cr_assert_eq(ret, -ENOENT);
	query(&f, 0, "type:", &ret);
	cr_assert_eq(ret, -EINVAL);
	query(&f, 0, "", &ret);
	cr_assert_eq(ret, -EINVAL);
	/* The other partition of the same store holds nothing of these. */
	query(&f, 1, "order-1", &ret);
	cr_assert_eq(ret, -ENOENT);
	fx_fini(&f);
}

Test(plugins_counter, routes_and_merges_across_partitions)
{
	struct fixture f;
	const char *agg;
	uint32_t agg_len;
	fx_init(&f, 0);

	cr_assert_eq(sl_project_key_route(f.p, "type:X", 6, &agg, &agg_len), 0);
	cr_assert_eq(sl_project_key_route(f.p, "total", 5, &agg, &agg_len), 0);
	cr_assert_eq(sl_project_key_route(f.p, "aggregate:acct-7", 16, &agg, &agg_len), 1);
	cr_assert_eq(agg_len, 6);
	cr_assert_eq(memcmp(agg, "acct-7", 6), 0);
	cr_assert_eq(sl_project_key_route(f.p, "acct-7", 6, &agg, &agg_len), 1);
	cr_assert_eq(sl_project_key_route(f.p, "type:", 5, &agg, &agg_len), -EINVAL);

	apply1(&f, 0, "X", "k1");
	apply1(&f, 0, "X", "k1");
	apply1(&f, 1, "X", "k2");
	apply1(&f, 1, "Y", "k2");
	commit(&f, 0);
	commit(&f, 1);

	struct sl_plugin_out pa = {0}, pb = {0};
	cr_assert_eq(query_mode(&f, 0, "type:X", SL_PLUGIN_QUERY_PART, &pa, NULL), 0);
	cr_assert_eq(query_mode(&f, 1, "type:X", SL_PLUGIN_QUERY_PART, &pb, NULL), 0);
	const uint8_t *parts[2] = {(const uint8_t *)pa.buf.data, (const uint8_t *)pb.buf.data};
	size_t lens[2] = {pa.buf.len, pb.buf.len};
	f.out.buf.len = 0;
	cr_assert_eq(sl_project_merge(f.p, "type:X", 6, parts, lens, 2, &f.out), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"type:X\",\"count\":3}");

	/* Y only in partition 1: 0 answers -ENOENT and is left out. */
	pa.buf.len = pb.buf.len = 0;
	cr_assert_eq(query_mode(&f, 0, "type:Y", SL_PLUGIN_QUERY_PART, &pa, NULL), -ENOENT);
	cr_assert_eq(query_mode(&f, 1, "type:Y", SL_PLUGIN_QUERY_PART, &pb, NULL), 0);
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
	cr_assert_eq(query_mode(&f, 1, "total", SL_PLUGIN_QUERY_PART, &pa, NULL), 0);
	uint64_t t;
	memcpy(&t, pa.buf.data, 8);
	cr_assert_eq(t, 2);

	sl_plugin_out_release(&pa);
	sl_plugin_out_release(&pb);
	fx_fini(&f);
}

Test(plugins_counter, the_model_and_its_offset_outlive_the_store)
{
	struct fixture f;
	char agg[32];
	fx_init(&f, 0);

	for (uint64_t i = 0; i < 5000; i++) {
		snprintf(agg, sizeof(agg), "agg-%llu", (unsigned long long)(i % 777));
		apply1(&f, 0, i % 3 ? "A" : "B", agg);
	}
	commit(&f, 0);
	/* Applied but not committed: gone with the process. */
	apply1(&f, 0, "C", "agg-1");
	fx_close(&f);
	fx_open(&f, 0);
	cr_assert_eq(f.next[0], 5000, "the store resumes at %llu", (unsigned long long)f.next[0]);
	cr_assert_eq(f.next[1], 0);
	uint64_t seen = 0;
	f.out.buf.len = 0;
	cr_assert_eq(query_mode(&f, 0, "total", SL_PLUGIN_QUERY_FULL, &f.out, &seen), 0);
	cr_assert_str_eq(f.out.buf.data, "{\"key\":\"total\",\"count\":5000}");
	cr_assert_eq(seen, 5000);
	/* agg-1: i = 1, 778, ... below 5000. */
	char want[80];
	snprintf(want, sizeof(want), "{\"key\":\"agg-1\",\"count\":%d}", (5000 - 1 + 776) / 777);
	expect(&f, 0, "agg-1", want);
	expect(&f, 0, "type:B", "{\"key\":\"type:B\",\"count\":1667}");
	int ret;
	query(&f, 0, "type:C", &ret);
	cr_assert_eq(ret, -ENOENT);
	fx_fini(&f);
}

Test(plugins_counter, names_longer_than_a_state_key)
{
	struct fixture f;
	char a[1200], b[1200];
	fx_init(&f, 0);

	/* Same first 1000 bytes, different ends: two aggregates. */
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[1100] = 'y';
	apply1(&f, 0, "T", a);
	apply1(&f, 0, "T", a);
	apply1(&f, 0, "T", b);
	commit(&f, 0);
	int ret;
	const char *got = query(&f, 0, a, &ret);
	cr_assert_eq(ret, 0);
	cr_assert(strstr(got, "\"count\":2}"), "%s", got);
	got = query(&f, 0, b, &ret);
	cr_assert_eq(ret, 0);
	cr_assert(strstr(got, "\"count\":1}"), "%s", got);
	fx_fini(&f);
}

Test(plugins_counter, more_aggregates_than_the_cache_holds)
{
	struct fixture f;
	char agg[32];
	/* The smallest budget (1 MiB): 40,000 aggregates of ~80 bytes each
	 * in the cache would take 3 MiB. */
	fx_init(&f, 1);
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < 40000; i++) {
			snprintf(agg, sizeof(agg), "agg-%u", i);
			apply1(&f, 0, "A", agg);
			if (i % 1000 == 999) {
				/* A step's end: commit (inline, no writer) and evict. */
				struct sl_state_mark m = {.next = f.next[0]};
				cr_assert_eq(sl_state_part_end_step(f.sp[0], &m, true), 0);
				cr_assert(sl_state_part_poll(f.sp[0]));
			}
		}
	}
	commit(&f, 0);
	struct sl_state_part_stats st;
	sl_state_part_get_stats(f.sp[0], &st);
	cr_assert_gt(st.evictions, 40000, "evictions %llu", (unsigned long long)st.evictions);
	cr_assert_gt(st.misses, 40000);
	cr_assert_leq(st.cache_bytes, (2u << 20), "cache %llu", (unsigned long long)st.cache_bytes);
	for (uint32_t i = 0; i < 40000; i += 997) {
		snprintf(agg, sizeof(agg), "agg-%u", i);
		char want[80];
		snprintf(want, sizeof(want), "{\"key\":\"%s\",\"count\":2}", agg);
		expect(&f, 0, agg, want);
	}
	expect(&f, 0, "total", "{\"key\":\"total\",\"count\":80000}");
	fx_fini(&f);
}
