/*
 * The route transform through the loader: events sent unchanged to the topic
 * of their type, the default topic, dropped without one, a table of many
 * types, a topic the host does not know, and its refusals of bad args.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "plugins_util.h"

static struct sl_plugin *g_p;

/* The topics the "host" knows: orders 1, alerts 2, other 3, t0..t9 10..19. */
static int resolve(void *arg, const char *topic, size_t len)
{
	static const char *const names[] = {"orders", "alerts", "other"};

	(void)arg;
	for (int i = 0; i < 3; i++)
		if (strlen(names[i]) == len && !memcmp(names[i], topic, len))
			return i + 1;
	if (len == 2 && topic[0] == 't' && topic[1] >= '0' && topic[1] <= '9')
		return 10 + topic[1] - '0';
	return -ENOENT;
}

static char g_log[512];

static void capture(void *arg, int level, const char *line)
{
	(void)arg;
	(void)level;
	snprintf(g_log, sizeof(g_log), "%s", line);
}

static struct sl_plugin_inst *make(const char *yaml, int want, char *err, size_t errlen)
{
	struct sl_config_node *args = NULL;
	struct sl_plugin_inst *in = NULL;
	struct sl_plugin_inst_opts o = {.name = "r", .topic = "events", .log_fn = capture};
	char perr[256];

	cr_assert_eq(sl_config_node_parse(yaml, strlen(yaml), "t", &args, perr, sizeof(perr)), 0,
	             "%s", perr);
	o.args = args;
	int ret = sl_plugin_inst_create(g_p, &o, &in, err, errlen);
	cr_assert_eq(ret, want, "%s: %s", yaml, err);
	sl_config_node_free(args);
	return in;
}

/* Runs events of the given types (NULL-terminated) through `yaml`'s route;
 * writes the topic each input went to (or 0 when dropped) into topics[],
 * checking every emitted event is its input unchanged and in order. */
static int run(const char *yaml, const char *const *types, int *topics)
{
	uint8_t bytes[64][256];
	struct sl_plugin_event pe[64];
	struct sl_plugin_emitter em = {.resolve = resolve, .default_topic = 0};
	char err[256];
	struct sl_plugin_inst *in = make(yaml, 0, err, sizeof(err));
	uint32_t n = 0;

	for (; types[n]; n++) {
		cr_assert_lt(n, 64);
		uint32_t len =
		    tu_event(bytes[n], sizeof(bytes[n]), types[n], "agg-1", "{\"x\":1}", n);
		tu_fill(&pe[n], bytes[n], len, 0, n);
		topics[n] = 0;
	}
	int ret = g_p->ops.transform.process(in->inst, pe, n, &em);
	size_t cur = 0;
	int topic;
	const uint8_t *b;
	uint32_t l, k = 0;
	while (ret == 0 && sl_plugin_emitter_next(&em, &cur, &topic, &b, &l) == 1) {
		/* In input order: the next input that matches these bytes. */
		while (k < n && !(pe[k].len == l && !memcmp(pe[k].bytes, b, l)))
			k++;
		cr_assert_lt(k, n, "emitted bytes are not the next input event unchanged");
		topics[k++] = topic;
	}
	sl_plugin_emitter_release(&em);
	sl_plugin_inst_destroy(in);
	return ret;
}

Test(plugins_route, routes_by_type_to_default_or_drops)
{
	static const char *const types[] = {"OrderPlaced", "PaymentFailed", "OrderShipped",
	                                    "OrderPlaced", "PaymentFailed", NULL};
	int t[8];

	g_p = tu_load("route", SL_PLUGIN_TRANSFORM);
	cr_assert_eq(run("routes: { OrderPlaced: orders, PaymentFailed: alerts }\n"
	                 "default: other\n",
	                 types, t),
	             0);
	cr_assert(t[0] == 1 && t[1] == 2 && t[2] == 3 && t[3] == 1 && t[4] == 2, "%d %d %d %d %d",
	          t[0], t[1], t[2], t[3], t[4]);

	/* No default: the unrouted type is dropped. */
	cr_assert_eq(run("routes: { OrderPlaced: orders, PaymentFailed: alerts }\n", types, t), 0);
	cr_assert(t[0] == 1 && t[1] == 2 && t[2] == 0 && t[3] == 1 && t[4] == 2, "%d %d %d %d %d",
	          t[0], t[1], t[2], t[3], t[4]);

	/* Two types to one topic; a default alone sends everything there. */
	cr_assert_eq(run("routes: { OrderPlaced: orders, OrderShipped: orders }\n", types, t), 0);
	cr_assert(t[0] == 1 && t[1] == 0 && t[2] == 1 && t[3] == 1 && t[4] == 0);
	cr_assert_eq(run("default: alerts\n", types, t), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(t[i], 2);
	cr_assert_eq(run("routes: {}\ndefault: alerts\n", types, t), 0);
	cr_assert_eq(t[2], 2);
	sl_plugin_unload(g_p);
}

Test(plugins_route, many_types)
{
	/* 40 types, more than the initial table: each to t(i % 10). */
	char yaml[4096], names[40][16];
	const char *types[42];
	int t[42], n = 0;

	g_p = tu_load("route", SL_PLUGIN_TRANSFORM);
	n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "routes:\n");
	for (int i = 0; i < 40; i++) {
		snprintf(names[i], sizeof(names[i]), "Type%02d", i);
		n += snprintf(yaml + n, sizeof(yaml) - (size_t)n, "  %s: t%d\n", names[i], i % 10);
		types[39 - i] = names[i];
	}
	types[40] = "Unknown";
	types[41] = NULL;
	cr_assert_eq(run(yaml, types, t), 0);
	for (int i = 0; i < 40; i++)
		cr_assert_eq(t[39 - i], 10 + i % 10, "%s", names[i]);
	cr_assert_eq(t[40], 0);
	sl_plugin_unload(g_p);
}

Test(plugins_route, unknown_topic_stops_and_says_which)
{
	static const char *const types[] = {"OrderPlaced", "Lost", NULL};
	int t[4];

	g_p = tu_load("route", SL_PLUGIN_TRANSFORM);
	g_log[0] = '\0';
	cr_assert_eq(run("routes: { OrderPlaced: orders, Lost: nowhere }\n", types, t), -ENOENT);
	cr_assert_not_null(strstr(g_log, "cannot send type 'Lost' (offset 1) to topic 'nowhere': "
	                                 "no such topic"),
	                   "%s", g_log);
	sl_plugin_unload(g_p);
}

Test(plugins_route, refuses_bad_args)
{
	static const struct {
		const char *yaml, *why;
	} bad[] = {
	    {"{}\n", "route needs routes (a map of type: topic) or a default topic"},
	    {"rotues: { A: b }\n", "unknown arg 'rotues' (route takes routes, default)"},
	    {"routes: orders\n", "routes must be a map of type: topic"},
	    {"routes: [orders, alerts]\n", "routes must be a map of type: topic"},
	    {"routes: { A: { topic: b } }\n", "routes.A must be a topic name"},
	    {"routes: { A: [b, c] }\n", "routes.A must be a topic name"},
	    {"routes: { A: }\n", "routes.A must be a topic name"},
	    {"routes: { A: '' }\n", "routes.A must not be empty"},
	    {"routes: { '': b }\n", "routes[0]: the type must not be empty"},
	    {"routes: { A: b }\ndefault: [c]\n", "default must be a topic name"},
	    {"routes: { A: b }\ndefault: ''\n", "default must not be empty"},
	    {"routes: {}\n", "route needs routes"},
	};
	char err[512];

	g_p = tu_load("route", SL_PLUGIN_TRANSFORM);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make(bad[i].yaml, -SL_EPLUGIN, err, sizeof(err));
		cr_assert_not_null(strstr(err, bad[i].why), "%s: %s", bad[i].yaml, err);
		cr_assert_not_null(strstr(err, "r (plugin route): "), "%s", err);
	}
	sl_plugin_unload(g_p);
}
