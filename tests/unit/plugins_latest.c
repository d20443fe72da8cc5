/*
 * The latest projection through the loader, on the host's state (plugin
 * ABI 1.2): the latest event of each aggregate in the consume format with
 * its version, events that grow and shrink, what a query sees (the last
 * commit), the model after the store is closed and opened again (the same
 * bytes as a replay into a fresh store), and ids longer than a state key.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plugins_state.h"

Test(plugins_latest, latest_event_per_aggregate)
{
	struct ts_fixture f;
	int ret;
	ts_init(&f, "latest", 4, NULL, 0);

	cr_assert_null(f.ops->key_route, "every key is an aggregate");
	f.next[3] = 10;
	ts_apply(&f, 3, "Opened", "acct-1", "{\"owner\":\"ann\"}");
	ts_apply(&f, 3, "Opened", "acct-2", "{\"owner\":\"bob\"}");
	ts_apply(&f, 3, "Renamed", "acct-1",
	         "{\"owner\":\"anna\",\"note\":\"a longer payload now\"}");
	/* A query reads the last commit: nothing yet. */
	ts_query(&f, 3, "acct-1", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_commit(&f, 3);

	ts_expect(&f, 3, "acct-1",
	          "{\"id\":\"0c000000-0000-0000-5a5a-5a5a5a5a5a5a\",\"type\":\"Renamed\","
	          "\"aggregate\":\"acct-1\",\"timestamp\":1700000000012,\"partition\":3,"
	          "\"offset\":12,\"version\":2,"
	          "\"data\":{\"owner\":\"anna\",\"note\":\"a longer payload now\"}}");
	const char *got = ts_query(&f, 3, "acct-2", &ret);
	cr_assert_eq(ret, 0);
	cr_assert_not_null(strstr(got, "\"offset\":11,\"version\":1,"), "%s", got);
	ts_query(&f, 3, "acct-3", &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_query(&f, 3, "", &ret);
	cr_assert_eq(ret, -EINVAL);
	f.out.buf.len = 0;
	cr_assert_eq(ts_query_mode(&f, 3, "acct-1", SL_PLUGIN_QUERY_PART, &f.out, NULL), -EINVAL,
	             "every key lives in one partition");
	/* Another partition of the same store holds nothing of these. */
	ts_query(&f, 0, "acct-1", &ret);
	cr_assert_eq(ret, -ENOENT);

	/* Shrinking: the value is cut to the new event; until the commit a
	 * query still sees the one before. */
	ts_apply(&f, 3, "Closed", "acct-1", NULL);
	got = ts_query(&f, 3, "acct-1", &ret);
	cr_assert_eq(ret, 0);
	cr_assert_not_null(strstr(got, "\"type\":\"Renamed\""), "%s", got);
	ts_commit(&f, 3);
	ts_expect(&f, 3, "acct-1",
	          "{\"id\":\"0d000000-0000-0000-5a5a-5a5a5a5a5a5a\",\"type\":\"Closed\","
	          "\"aggregate\":\"acct-1\",\"timestamp\":1700000000013,\"partition\":3,"
	          "\"offset\":13,\"version\":3,\"data\":null}");
	ts_fini(&f);
}

static void feed(struct ts_fixture *f, uint32_t p, uint64_t from, uint64_t to)
{
	char agg[32], data[64];
	for (uint64_t i = from; i < to; i++) {
		snprintf(agg, sizeof(agg), "k%llu", (unsigned long long)(i % 1001));
		snprintf(data, sizeof(data), "{\"i\":%llu}", (unsigned long long)i);
		ts_apply(f, p, "Set", agg, data);
	}
}

Test(plugins_latest, the_model_and_its_offset_outlive_the_store)
{
	struct ts_fixture f, g;
	struct sl_plugin_out before = {0};
	int ret;
	ts_init(&f, "latest", 2, NULL, 0);

	feed(&f, 1, 0, 3000);
	ts_commit(&f, 1);
	ts_dump(&f, 1, &before);
	/* Applied but not committed: gone with the process. */
	ts_apply(&f, 1, "Set", "k7", "{\"i\":-1}");
	ts_apply(&f, 1, "Set", "new", "{}");
	ts_reopen(&f);
	cr_assert_eq(f.next[1], 3000, "the store resumes at %llu", (unsigned long long)f.next[1]);
	cr_assert_eq(f.next[0], 0);
	uint64_t seen = 0;
	f.out.buf.len = 0;
	cr_assert_eq(ts_query_mode(&f, 1, "k7", SL_PLUGIN_QUERY_FULL, &f.out, &seen), 0);
	cr_assert_eq(seen, 3000);
	/* k7: i = 7, 1008, 2009. */
	cr_assert_not_null(
	    strstr(f.out.buf.data, "\"offset\":2009,\"version\":3,\"data\":{\"i\":2009}"), "%s",
	    f.out.buf.data);
	ts_query(&f, 1, "new", &ret);
	cr_assert_eq(ret, -ENOENT);

	/* The model is canonical: what it holds after the reopen is what it
	 * held at the commit, and what the same events give a fresh store. */
	ts_expect_model(&f, 1, &before);
	ts_init(&g, "latest", 2, NULL, 0);
	feed(&g, 1, 0, 3000);
	ts_expect_model(&g, 1, &before);
	cr_assert_gt(before.buf.len, 1001 * (4 + 4 + 24));
	sl_plugin_out_release(&before);
	ts_fini(&g);
	ts_fini(&f);
}

Test(plugins_latest, ids_longer_than_a_state_key)
{
	struct ts_fixture f;
	char a[TS_LONG_ID], b[TS_LONG_ID], edge[4][600];
	int ret;
	ts_init(&f, "latest", 1, NULL, 0);

	ts_long_ids(a, b); /* two ids, one prefix */
	ts_apply(&f, 0, "T", a, "{\"n\":1}");
	ts_apply(&f, 0, "T", a, "{\"n\":2}");
	ts_apply(&f, 0, "T", b, "{\"n\":3}");
	/* Around the cut: 494 and 495 bytes fit a key with the tag, 496 and
	 * 497 are cut and hashed. */
	for (int i = 0; i < 4; i++) {
		memset(edge[i], 'e', 494 + (size_t)i);
		edge[i][494 + i] = '\0';
		ts_apply(&f, 0, "E", edge[i], NULL);
	}
	ts_commit(&f, 0);

	const char *got = ts_query(&f, 0, a, &ret);
	cr_assert_eq(ret, 0);
	cr_assert_not_null(strstr(got, a), "the whole id is answered");
	cr_assert_not_null(strstr(got, "\"offset\":1,\"version\":2,\"data\":{\"n\":2}}"), "%s",
	                   got);
	got = ts_query(&f, 0, b, &ret);
	cr_assert_eq(ret, 0);
	cr_assert_not_null(strstr(got, b));
	cr_assert_not_null(strstr(got, "\"offset\":2,\"version\":1,\"data\":{\"n\":3}}"), "%s",
	                   got);
	for (int i = 0; i < 4; i++) {
		char want[64];
		got = ts_query(&f, 0, edge[i], &ret);
		cr_assert_eq(ret, 0, "%d bytes: %d", 494 + i, ret);
		snprintf(want, sizeof(want), "\"offset\":%d,\"version\":1,", 3 + i);
		cr_assert_not_null(strstr(got, want), "%d bytes: %s", 494 + i, got);
	}
	/* A prefix of a long id is another aggregate. */
	a[600] = '\0';
	ts_query(&f, 0, a, &ret);
	cr_assert_eq(ret, -ENOENT);
	ts_fini(&f);
}
