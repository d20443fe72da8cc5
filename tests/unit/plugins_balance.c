/*
 * The balance projection on the host's state (plugin ABI 1.2): running sums
 * per aggregate, overdrafts refused and reported on the reject topic with
 * ids that a replay repeats, a floor below zero, events without an amount,
 * bad args, what a query sees (the last commit), the model after the store
 * is closed and opened again, ids longer than a state key, and through the
 * applier: rejections with their ids and sequences across restarts.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plugins_state.h"
#include "project/project.h"

static int resolve(void *arg, const char *topic, size_t len)
{
	(void)arg;
	return len == 6 && !memcmp(topic, "errors", 6) ? 1 : -ENOENT;
}

/* The answer to key on partition p, "ENOENT", or "ERROR". */
static const char *query(struct ts_fixture *f, uint32_t p, const char *key)
{
	int ret;
	const char *got = ts_query(f, p, key, &ret);
	return ret == 0 ? got : ret == -ENOENT ? "ENOENT" : "ERROR";
}

/* The i-th event emitted into em: its bytes, decoded into *v. */
static const uint8_t *emitted(const struct sl_plugin_emitter *em, uint32_t i, uint32_t *len,
                              struct sl_event_view *v)
{
	size_t cur = 0;
	int topic;
	const uint8_t *b = NULL;
	for (uint32_t k = 0; k <= i; k++)
		cr_assert_eq(sl_plugin_emitter_next(em, &cur, &topic, &b, len), 1);
	cr_assert_eq(topic, 1, "the reject topic");
	cr_assert_eq(sl_event_scan(b, *len, v), 0);
	return b;
}

Test(plugins_balance, sums_and_refuses_overdrafts)
{
	struct ts_fixture f;
	ts_init(&f, "balance", 4, "reject_topic: errors\n", 0);
	f.em[2].resolve = resolve;

	ts_apply(&f, 2, "AccountOpened", "acct-1", "{\"owner\":\"ann\"}");
	ts_apply(&f, 2, "Deposited", "acct-1", "{\"amount\":1000}");
	ts_apply(&f, 2, "Withdrawn", "acct-1", "{\"amount\":-300}");
	ts_commit(&f, 2);
	ts_apply(&f, 2, "Withdrawn", "acct-1", "{\"amount\":-800}"); /* would be -100 */
	cr_assert_str_eq(query(&f, 2, "acct-1"),
	                 "{\"aggregate\":\"acct-1\",\"balance\":700,\"events\":3,\"rejected\":0}",
	                 "a query reads the last commit");

	cr_assert_eq(f.em[2].n, 1);
	struct sl_event_view v;
	uint32_t len;
	const uint8_t *b = emitted(&f.em[2], 0, &len, &v);
	cr_assert_eq(v.type_len, 15);
	cr_assert_eq(memcmp(v.type, "BalanceRejected", 15), 0);
	cr_assert_eq(v.aggregate_len, 6);
	cr_assert_eq(memcmp(v.aggregate, "acct-1", 6), 0);
	cr_assert_eq(v.timestamp_ms, 1700000000003, "the refused event's timestamp");
	char data[512];
	snprintf(data, sizeof(data), "%.*s", (int)v.data_len, (const char *)v.data);
	cr_assert_str_eq(data,
	                 "{\"reason\":\"overdraft\",\"event_id\":"
	                 "\"03000000-0000-0000-5a5a-5a5a5a5a5a5a\",\"event_type\":\"Withdrawn\","
	                 "\"partition\":2,\"offset\":3,\"amount\":-800,\"balance\":700,"
	                 "\"min\":0}");
	uint8_t first[512];
	uint32_t first_len = len;
	cr_assert_leq(len, sizeof(first));
	memcpy(first, b, len);

	/* A restart before the commit: the refused event is applied again
	 * and reported again, byte for byte (the same derived id). */
	ts_reopen(&f);
	cr_assert_eq(f.next[2], 3);
	sl_plugin_emitter_reset(&f.em[2]);
	ts_apply(&f, 2, "Withdrawn", "acct-1", "{\"amount\":-800}");
	cr_assert_eq(f.em[2].n, 1);
	b = emitted(&f.em[2], 0, &len, &v);
	cr_assert_eq(len, first_len);
	cr_assert_eq(memcmp(b, first, len), 0, "a replayed rejection differs");

	ts_apply(&f, 2, "Deposited", "acct-2", "{\"amount\":5}");
	ts_apply(&f, 2, "Deposited", "acct-2", "{\"amount\":1.5}"); /* not an integer */
	ts_commit(&f, 2);
	cr_assert_str_eq(query(&f, 2, "acct-1"),
	                 "{\"aggregate\":\"acct-1\",\"balance\":700,\"events\":4,\"rejected\":1}");
	cr_assert_str_eq(query(&f, 2, "acct-2"),
	                 "{\"aggregate\":\"acct-2\",\"balance\":5,\"events\":2,\"rejected\":0}");
	cr_assert_str_eq(query(&f, 2, "acct-3"), "ENOENT");
	cr_assert_str_eq(query(&f, 2, ""), "ERROR");
	cr_assert_str_eq(query(&f, 0, "acct-1"), "ENOENT", "another partition");
	cr_assert_eq(f.em[2].n, 1, "only the refused event is reported");
	ts_fini(&f);
}

Test(plugins_balance, floor_field_and_no_reject_topic)
{
	struct ts_fixture f;
	ts_init(&f, "balance", 1, "field: cents\nmin: -100\n", 0);

	ts_apply(&f, 0, "Withdrawn", "a", "{\"cents\":-100}");
	ts_apply(&f, 0, "Withdrawn", "a", "{\"cents\":-1}");
	ts_apply(&f, 0, "Withdrawn", "a", "{\"amount\":-1000}"); /* not the configured field */
	ts_apply(&f, 0, "Deposited", "a", "{\"cents\":9223372036854775807}");
	ts_apply(&f, 0, "Deposited", "a", "{\"cents\":200}"); /* would overflow */
	ts_commit(&f, 0);
	cr_assert_str_eq(query(&f, 0, "a"), "{\"aggregate\":\"a\",\"balance\":9223372036854775707,"
	                                    "\"events\":5,\"rejected\":2}");
	cr_assert_eq(f.em[0].n, 0, "no reject topic: nothing emitted");
	ts_fini(&f);
}

static void post_many(struct ts_fixture *f, uint32_t p, int n)
{
	char agg[16];
	for (int i = 0; i < n; i++) {
		snprintf(agg, sizeof(agg), "acct-%d", i % 17);
		ts_apply(f, p, "Deposited", agg, i % 5 ? "{\"amount\":10}" : "{\"amount\":-25}");
	}
}

Test(plugins_balance, the_model_and_its_offset_outlive_the_store)
{
	struct ts_fixture f, g;
	struct sl_plugin_out before = {0};
	ts_init(&f, "balance", 2, "{}\n", 0);

	post_many(&f, 1, 500);
	ts_commit(&f, 1);
	ts_dump(&f, 1, &before);
	/* Applied but not committed: gone with the process. */
	ts_apply(&f, 1, "Deposited", "acct-0", "{\"amount\":1000}");
	ts_apply(&f, 1, "Deposited", "acct-new", "{\"amount\":1}");
	ts_reopen(&f);
	cr_assert_eq(f.next[1], 500);
	/* acct-0: i = 0, 17, ..., 493 (30 events); -25 when i % 5 == 0
	 * (0, 85, ..., 425): only the first meets a balance below 25. */
	cr_assert_str_eq(query(&f, 1, "acct-0"),
	                 "{\"aggregate\":\"acct-0\",\"balance\":115,\"events\":30,\"rejected\":1}");
	cr_assert_str_eq(query(&f, 1, "acct-new"), "ENOENT");

	/* Canonical: the same bytes after the reopen, and from a replay. */
	ts_expect_model(&f, 1, &before);
	ts_init(&g, "balance", 2, "{}\n", 0);
	post_many(&g, 1, 500);
	ts_expect_model(&g, 1, &before);
	/* (u32, key, u32, value): "a" + acct-0..9, then acct-10..16. */
	cr_assert_eq(before.buf.len, 10 * (4 + 7 + 4 + 24) + 7 * (4 + 8 + 4 + 24));
	sl_plugin_out_release(&before);
	ts_fini(&g);
	ts_fini(&f);
}

Test(plugins_balance, ids_longer_than_a_state_key)
{
	struct ts_fixture f;
	char a[TS_LONG_ID], b[TS_LONG_ID];
	ts_init(&f, "balance", 1, "{}\n", 0);

	ts_long_ids(a, b); /* two ids, one prefix */
	ts_apply(&f, 0, "Deposited", a, "{\"amount\":100}");
	ts_apply(&f, 0, "Deposited", b, "{\"amount\":7}");
	ts_apply(&f, 0, "Withdrawn", b, "{\"amount\":-8}");
	ts_commit(&f, 0);

	char want[1300];
	snprintf(want, sizeof(want),
	         "{\"aggregate\":\"%s\",\"balance\":100,\"events\":1,\"rejected\":0}", a);
	cr_assert_str_eq(query(&f, 0, a), want);
	snprintf(want, sizeof(want),
	         "{\"aggregate\":\"%s\",\"balance\":7,\"events\":2,\"rejected\":1}", b);
	cr_assert_str_eq(query(&f, 0, b), want);
	a[600] = '\0';
	cr_assert_str_eq(query(&f, 0, a), "ENOENT", "a prefix is another account");
	ts_fini(&f);
}

Test(plugins_balance, bad_args_and_no_host_state)
{
	struct ts_fixture f;
	struct sl_config_node *args;
	struct sl_plugin_inst *in;
	struct sl_plugin_inst_opts o = {.name = "ledger"};
	char err[256];
	ts_init(&f, "balance", 1, NULL, 0);

	/* Without the host's state (a host of ABI 1.1 would give none). */
	cr_assert_eq(sl_plugin_inst_create(f.p, &o, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_str_eq(
	    err, "ledger (plugin balance): balance needs the host's state (plugin ABI 1.2)");
	o.state = sl_state_part_view(f.sp[0]);
	const char *y = "min: lots\n";
	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &args, err, sizeof(err)), 0);
	o.args = args;
	cr_assert_eq(sl_plugin_inst_create(f.p, &o, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_str_eq(err, "ledger (plugin balance): min must be an integer");
	sl_config_node_free(args);
	y = "floor: 0\n";
	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &args, err, sizeof(err)), 0);
	o.args = args;
	cr_assert_eq(sl_plugin_inst_create(f.p, &o, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_str_eq(err, "ledger (plugin balance): unknown arg 'floor' (balance takes field, "
	                      "min, reject_topic)");
	sl_config_node_free(args);
	ts_fini(&f);
}

/* Through the applier (its own store in snap_dir, commits inline): the
 * reject topic resolved by the host, rejections in the emitter after each
 * step, their sequences committed with the state. */
struct ledger_log {
	char *dir;
	char log_dir[256], snap_dir[256];
	struct tu_log t;
	struct sl_plugin *p;
	struct sl_config_node *args;
};

static struct sl_applier *ledger_open(struct ledger_log *l)
{
	struct sl_applier_opts o = {
	    .plugin = l->p,
	    .inst = {.name = "ledger", .partition = 0, .args = l->args},
	    .log_dir = l->log_dir,
	    .snap_dir = l->snap_dir,
	    .resolve = resolve,
	};
	struct sl_applier *a;
	char err[256];
	cr_assert_eq(sl_applier_open(&o, &a, err, sizeof(err)), 0, "%s", err);
	return a;
}

static void ledger_post(struct ledger_log *l, const char *type, const char *data, uint64_t n)
{
	uint8_t ev[256];
	tu_log_append(&l->t, ev, tu_event(ev, sizeof(ev), type, "a", data, n));
	tu_log_commit(&l->t);
}

static const char *ledger_query(struct sl_applier *a, struct sl_plugin_out *out)
{
	out->buf.len = 0;
	int ret = sl_applier_query(a, "a", 1, SL_PLUGIN_QUERY_FULL, out);
	return ret == 0 ? out->buf.data : ret == -ENOENT ? "ENOENT" : "ERROR";
}

Test(plugins_balance, through_the_applier)
{
	struct ledger_log l = {.dir = tu_tmpdir("bal")};
	char err[256];
	snprintf(l.log_dir, sizeof(l.log_dir), "%s/log", l.dir);
	snprintf(l.snap_dir, sizeof(l.snap_dir), "%s/snap", l.dir);
	tu_log_open(&l.t, l.log_dir);
	ledger_post(&l, "Deposited", "{\"amount\":50}", 0);
	ledger_post(&l, "Withdrawn", "{\"amount\":-80}", 1);
	ledger_post(&l, "Withdrawn", "{\"amount\":-20}", 2);
	l.p = tu_load("balance", SL_PLUGIN_PROJECTION);
	const char *y = "reject_topic: errors\n";
	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &l.args, err, sizeof(err)), 0);
	struct sl_plugin_out out = {0};
	struct sl_event_view v;
	uint32_t len;

	struct sl_applier *a = ledger_open(&l);
	cr_assert(sl_applier_host_state(a));
	cr_assert_eq(sl_applier_step(a, sl_log_durable(l.t.log), 100), 3);
	cr_assert_eq(sl_applier_emitter(a)->n, 1);
	emitted(sl_applier_emitter(a), 0, &len, &v);
	cr_assert_eq(memcmp(v.type, "BalanceRejected", 15), 0);
	/* Not committed while its rejection is not published. */
	cr_assert_str_eq(ledger_query(a, &out), "ENOENT");
	cr_assert_eq(sl_applier_emit_seq(a), 0);
	sl_applier_emitted(a);
	cr_assert_eq(sl_applier_emit_seq(a), 1);
	sl_applier_commit_soon(a);
	sl_applier_idle(a);
	cr_assert_eq(sl_applier_visible(a), 3);
	cr_assert_str_eq(ledger_query(a, &out),
	                 "{\"aggregate\":\"a\",\"balance\":30,\"events\":3,\"rejected\":1}");
	cr_assert_eq(sl_applier_step(a, sl_log_durable(l.t.log), 100), 0);
	cr_assert_eq(sl_applier_emitter(a)->n, 0, "a step starts with an empty emitter");
	sl_applier_close(a);

	/* Reopened: the offset and the emit sequence come from the commit. */
	ledger_post(&l, "Withdrawn", "{\"amount\":-40}", 3);
	a = ledger_open(&l);
	cr_assert_eq(sl_applier_next(a), 3);
	cr_assert_eq(sl_applier_emit_seq(a), 1);
	cr_assert_eq(sl_applier_step(a, sl_log_durable(l.t.log), 100), 1);
	cr_assert_eq(sl_applier_emitter(a)->n, 1);
	const uint8_t *b = emitted(sl_applier_emitter(a), 0, &len, &v);
	uint8_t first[256];
	uint32_t first_len = len;
	cr_assert_leq(len, sizeof(first));
	memcpy(first, b, len);
	/* A crash before it was published: the state is not committed ... */
	sl_applier_commit_soon(a);
	sl_applier_idle(a);
	cr_assert_eq(sl_applier_visible(a), 3);
	sl_applier_close(a);

	/* ... so the event is applied again, and its rejection emitted again
	 * byte for byte, with the same sequence. */
	a = ledger_open(&l);
	cr_assert_eq(sl_applier_next(a), 3);
	cr_assert_eq(sl_applier_emit_seq(a), 1);
	cr_assert_eq(sl_applier_step(a, sl_log_durable(l.t.log), 100), 1);
	b = emitted(sl_applier_emitter(a), 0, &len, &v);
	cr_assert_eq(len, first_len);
	cr_assert_eq(memcmp(b, first, len), 0, "a replayed rejection differs");
	sl_applier_emitted(a);
	sl_applier_commit_soon(a);
	sl_applier_idle(a);
	sl_applier_close(a);

	a = ledger_open(&l);
	cr_assert_eq(sl_applier_next(a), 4);
	cr_assert_eq(sl_applier_emit_seq(a), 2);
	cr_assert_str_eq(ledger_query(a, &out),
	                 "{\"aggregate\":\"a\",\"balance\":30,\"events\":4,\"rejected\":2}");
	sl_applier_close(a);

	sl_plugin_out_release(&out);
	sl_config_node_free(l.args);
	sl_plugin_unload(l.p);
	tu_log_close(&l.t);
	tu_rmdir(l.dir);
}
