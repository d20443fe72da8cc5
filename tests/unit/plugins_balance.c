/*
 * The balance projection: running sums per aggregate, overdrafts refused and
 * reported on the reject topic with ids that a replay repeats, a floor below
 * zero, events without an amount, snapshots, and bad args.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "plugins_util.h"
#include "project/project.h"

static struct sl_plugin_inst *make(struct sl_plugin *p, const char *yaml)
{
	struct sl_config_node *args = NULL;
	char err[256];
	cr_assert_eq(sl_config_node_parse(yaml, strlen(yaml), "t", &args, err, sizeof(err)), 0);
	struct sl_plugin_inst *in = tu_inst(p, 2, args);
	sl_config_node_free(args);
	return in;
}

static int resolve(void *arg, const char *topic, size_t len)
{
	return len == 6 && !memcmp(topic, "errors", 6) ? 1 : -ENOENT;
}

struct ledger {
	struct sl_plugin *p;
	struct sl_plugin_inst *in;
	struct sl_plugin_emitter em;
	struct sl_plugin_out out;
	uint64_t offset;
};

static void post(struct ledger *l, const char *type, const char *agg, const char *data)
{
	uint8_t ev[512];
	struct sl_plugin_event pe;
	uint32_t len = tu_event(ev, sizeof(ev), type, agg, data, l->offset);
	tu_fill(&pe, ev, len, 2, l->offset++);
	cr_assert_eq(l->p->ops.projection.apply(l->in->inst, &pe, 1, &l->em), 0);
}

static const char *query(struct ledger *l, const char *key)
{
	l->out.buf.len = 0;
	int ret = l->p->ops.projection.query(l->in->inst, key, (uint32_t)strlen(key),
	                                     SL_PLUGIN_QUERY_FULL, &l->out);
	return ret == 0 ? l->out.buf.data : ret == -ENOENT ? "ENOENT" : "ERROR";
}

Test(plugins_balance, sums_and_refuses_overdrafts)
{
	struct ledger l = {.em = {.resolve = resolve, .default_topic = -1}};
	l.p = tu_load("balance", SL_PLUGIN_PROJECTION);
	l.in = make(l.p, "reject_topic: errors\n");

	post(&l, "AccountOpened", "acct-1", "{\"owner\":\"ann\"}");
	post(&l, "Deposited", "acct-1", "{\"amount\":1000}");
	post(&l, "Withdrawn", "acct-1", "{\"amount\":-300}");
	post(&l, "Withdrawn", "acct-1", "{\"amount\":-800}"); /* would be -100 */
	post(&l, "Deposited", "acct-2", "{\"amount\":5}");
	post(&l, "Deposited", "acct-2", "{\"amount\":1.5}"); /* not an integer: no money moves */
	cr_assert_str_eq(query(&l, "acct-1"),
	                 "{\"aggregate\":\"acct-1\",\"balance\":700,\"events\":4,\"rejected\":1}");
	cr_assert_str_eq(query(&l, "acct-2"),
	                 "{\"aggregate\":\"acct-2\",\"balance\":5,\"events\":2,\"rejected\":0}");
	cr_assert_str_eq(query(&l, "acct-3"), "ENOENT");

	cr_assert_eq(l.em.n, 1);
	size_t cur = 0;
	int topic;
	const uint8_t *b;
	uint32_t len;
	struct sl_event_view v;
	cr_assert_eq(sl_plugin_emitter_next(&l.em, &cur, &topic, &b, &len), 1);
	cr_assert_eq(topic, 1);
	cr_assert_eq(sl_event_scan(b, len, &v), 0);
	cr_assert_eq(v.type_len, 15);
	cr_assert_eq(memcmp(v.type, "BalanceRejected", 15), 0);
	cr_assert_eq(memcmp(v.aggregate, "acct-1", 6), 0);
	char data[512];
	snprintf(data, sizeof(data), "%.*s", (int)v.data_len, (const char *)v.data);
	cr_assert_str_eq(data,
	                 "{\"reason\":\"overdraft\",\"event_id\":"
	                 "\"03000000-0000-0000-5a5a-5a5a5a5a5a5a\",\"event_type\":\"Withdrawn\","
	                 "\"partition\":2,\"offset\":3,\"amount\":-800,\"balance\":700,"
	                 "\"min\":0}");
	uint8_t id[16];
	memcpy(id, v.id, 16);

	/* The same refused event replayed into a restored model (a restart
	 * before the next snapshot) is reported with the same id. */
	struct sl_plugin_out snap = {0};
	struct ledger r = {.p = l.p, .em = {.resolve = resolve, .default_topic = -1}, .offset = 3};
	r.in = make(l.p, "reject_topic: errors\n");
	struct sl_plugin_inst *tmp = make(l.p, "reject_topic: errors\n");
	struct ledger t = {.p = l.p, .in = tmp, .em = {.resolve = resolve, .default_topic = -1}};
	post(&t, "AccountOpened", "acct-1", "{\"owner\":\"ann\"}");
	post(&t, "Deposited", "acct-1", "{\"amount\":1000}");
	post(&t, "Withdrawn", "acct-1", "{\"amount\":-300}");
	cr_assert_eq(l.p->ops.projection.snapshot(tmp->inst, &snap), 0);
	cr_assert_eq(
	    l.p->ops.projection.restore(r.in->inst, (const uint8_t *)snap.buf.data, snap.buf.len),
	    0);
	post(&r, "Withdrawn", "acct-1", "{\"amount\":-800}");
	cur = 0;
	cr_assert_eq(sl_plugin_emitter_next(&r.em, &cur, &topic, &b, &len), 1);
	cr_assert_eq(sl_event_scan(b, len, &v), 0);
	cr_assert_eq(memcmp(v.id, id, 16), 0, "a replayed rejection got another id");

	sl_plugin_out_release(&snap);
	sl_plugin_out_release(&l.out);
	sl_plugin_out_release(&r.out);
	sl_plugin_emitter_release(&l.em);
	sl_plugin_emitter_release(&r.em);
	sl_plugin_emitter_release(&t.em);
	sl_plugin_inst_destroy(l.in);
	sl_plugin_inst_destroy(r.in);
	sl_plugin_inst_destroy(tmp);
	sl_plugin_unload(l.p);
}

Test(plugins_balance, floor_field_and_no_reject_topic)
{
	struct ledger l = {.em = {.default_topic = -1}};
	l.p = tu_load("balance", SL_PLUGIN_PROJECTION);
	l.in = make(l.p, "field: cents\nmin: -100\n");

	post(&l, "Withdrawn", "a", "{\"cents\":-100}");
	post(&l, "Withdrawn", "a", "{\"cents\":-1}");
	post(&l, "Withdrawn", "a", "{\"amount\":-1000}"); /* not the configured field */
	post(&l, "Deposited", "a", "{\"cents\":9223372036854775807}");
	post(&l, "Deposited", "a", "{\"cents\":200}"); /* would overflow */
	cr_assert_str_eq(query(&l, "a"), "{\"aggregate\":\"a\",\"balance\":9223372036854775707,"
	                                 "\"events\":5,\"rejected\":2}");
	cr_assert_eq(l.em.n, 0, "no reject topic: nothing emitted");
	sl_plugin_out_release(&l.out);
	sl_plugin_emitter_release(&l.em);
	sl_plugin_inst_destroy(l.in);
	sl_plugin_unload(l.p);
}

Test(plugins_balance, snapshot_round_trip_and_bad_args)
{
	struct sl_plugin *p = tu_load("balance", SL_PLUGIN_PROJECTION);
	struct ledger l = {.p = p, .em = {.default_topic = -1}};
	struct sl_plugin_out s1 = {0}, s2 = {0};
	char agg[16];

	l.in = make(p, "{}\n");
	for (int i = 0; i < 500; i++) {
		snprintf(agg, sizeof(agg), "acct-%d", i % 17);
		post(&l, "Deposited", agg, i % 5 ? "{\"amount\":10}" : "{\"amount\":-25}");
	}
	struct sl_plugin_inst *b = make(p, "{}\n");
	cr_assert_eq(p->ops.projection.snapshot(l.in->inst, &s1), 0);
	cr_assert_eq(p->ops.projection.restore(b->inst, (const uint8_t *)s1.buf.data, s1.buf.len),
	             0);
	cr_assert_eq(p->ops.projection.snapshot(b->inst, &s2), 0);
	cr_assert_eq(s1.buf.len, s2.buf.len);
	cr_assert_eq(memcmp(s1.buf.data, s2.buf.data, s1.buf.len), 0);
	struct sl_plugin_inst *c = make(p, "{}\n");
	cr_assert_eq(
	    p->ops.projection.restore(c->inst, (const uint8_t *)s1.buf.data, s1.buf.len - 1),
	    -EINVAL);
	sl_plugin_inst_destroy(c);

	struct sl_config_node *args;
	struct sl_plugin_inst *in;
	struct sl_plugin_inst_opts o = {.name = "ledger"};
	char err[256];
	const char *y = "min: lots\n";
	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &args, err, sizeof(err)), 0);
	o.args = args;
	cr_assert_eq(sl_plugin_inst_create(p, &o, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_str_eq(err, "ledger (plugin balance): min must be an integer");
	sl_config_node_free(args);

	sl_plugin_out_release(&s1);
	sl_plugin_out_release(&s2);
	sl_plugin_out_release(&l.out);
	sl_plugin_emitter_release(&l.em);
	sl_plugin_inst_destroy(l.in);
	sl_plugin_inst_destroy(b);
	sl_plugin_unload(p);
}

/* Through the applier: the reject topic resolved by the host, rejections in
 * the emitter after each step. */
Test(plugins_balance, through_the_applier)
{
	char *dir = tu_tmpdir("bal");
	char log_dir[256], snap_dir[256];
	struct tu_log t;
	uint8_t ev[256];
	snprintf(log_dir, sizeof(log_dir), "%s/log", dir);
	snprintf(snap_dir, sizeof(snap_dir), "%s/snap", dir);
	tu_log_open(&t, log_dir);
	tu_log_append(&t, ev, tu_event(ev, sizeof(ev), "Deposited", "a", "{\"amount\":50}", 0));
	tu_log_append(&t, ev, tu_event(ev, sizeof(ev), "Withdrawn", "a", "{\"amount\":-80}", 1));
	tu_log_append(&t, ev, tu_event(ev, sizeof(ev), "Withdrawn", "a", "{\"amount\":-20}", 2));
	tu_log_commit(&t);

	struct sl_plugin *p = tu_load("balance", SL_PLUGIN_PROJECTION);
	struct sl_config_node *args;
	char err[256];
	const char *y = "reject_topic: errors\n";
	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &args, err, sizeof(err)), 0);
	struct sl_applier_opts o = {
	    .plugin = p,
	    .inst = {.name = "ledger", .partition = 0, .args = args},
	    .log_dir = log_dir,
	    .snap_dir = snap_dir,
	    .resolve = resolve,
	};
	struct sl_applier *a;
	cr_assert_eq(sl_applier_open(&o, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_applier_step(a, sl_log_durable(t.log), 100), 3);
	cr_assert_eq(sl_applier_emitter(a)->n, 1);
	struct sl_plugin_out out = {0};
	cr_assert_eq(sl_applier_query(a, "a", 1, SL_PLUGIN_QUERY_FULL, &out), 0);
	cr_assert_str_eq(out.buf.data,
	                 "{\"aggregate\":\"a\",\"balance\":30,\"events\":3,\"rejected\":1}");
	cr_assert_eq(sl_applier_step(a, sl_log_durable(t.log), 100), 0);
	cr_assert_eq(sl_applier_emitter(a)->n, 0, "a step starts with an empty emitter");
	sl_plugin_out_release(&out);
	sl_applier_close(a);
	sl_config_node_free(args);
	sl_plugin_unload(p);
	tu_log_close(&t);
	tu_rmdir(dir);
}
