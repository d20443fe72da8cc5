/*
 * The filter transform through the loader: by type (one or a list), by a
 * data field's value (text or number), both, inverted, and its refusals of
 * bad args.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "plugins_util.h"

static struct sl_plugin *g_p;

static struct sl_plugin_inst *make(const char *yaml, int want, char *err, size_t errlen)
{
	struct sl_config_node *args = NULL;
	struct sl_plugin_inst *in = NULL;
	struct sl_plugin_inst_opts o = {.name = "f", .topic = "events"};
	char perr[256];

	cr_assert_eq(sl_config_node_parse(yaml, strlen(yaml), "t", &args, perr, sizeof(perr)), 0,
	             "%s", perr);
	o.args = args;
	int ret = sl_plugin_inst_create(g_p, &o, &in, err, errlen);
	cr_assert_eq(ret, want, "%s: %s", yaml, err);
	sl_config_node_free(args);
	return in;
}

/* Runs the 6 events below through `yaml`'s filter; returns a bitmask of
 * the ones kept. */
static unsigned run(const char *yaml)
{
	static const struct {
		const char *type, *data;
	} evs[] = {
	    {"OrderPlaced", "{\"region\":\"eu\",\"total\":120}"},
	    {"OrderPlaced", "{\"region\":\"us\",\"total\":80}"},
	    {"OrderPaid", "{\"region\":\"eu\",\"total\":120}"},
	    {"OrderShipped", "not json"},
	    {"OrderPlaced", "{\"region\":7}"},
	    {"OrderPlaced", "{\"total\":120.0}"},
	};
	uint8_t bytes[6][256];
	struct sl_plugin_event pe[6];
	struct sl_plugin_emitter em = {.default_topic = 0};
	char err[256];
	struct sl_plugin_inst *in = make(yaml, 0, err, sizeof(err));
	unsigned kept = 0;

	for (int i = 0; i < 6; i++) {
		uint32_t len = tu_event(bytes[i], sizeof(bytes[i]), evs[i].type, "a", evs[i].data,
		                        (uint64_t)i);
		tu_fill(&pe[i], bytes[i], len, 0, (uint64_t)i);
	}
	cr_assert_eq(g_p->ops.transform.process(in->inst, pe, 6, &em), 0);
	size_t cur = 0;
	int topic;
	const uint8_t *b;
	uint32_t l;
	while (sl_plugin_emitter_next(&em, &cur, &topic, &b, &l) == 1) {
		cr_assert_eq(topic, 0);
		int i = -1;
		for (int k = 0; k < 6; k++)
			if (pe[k].len == l && !memcmp(pe[k].bytes, b, l))
				i = k;
		cr_assert_geq(i, 0, "emitted bytes are not an input event unchanged");
		kept |= 1u << i;
	}
	sl_plugin_emitter_release(&em);
	sl_plugin_inst_destroy(in);
	return kept;
}

Test(plugins_filter, keeps_by_type_field_and_both)
{
	g_p = tu_load("filter", SL_PLUGIN_TRANSFORM);
	cr_assert_eq(run("type: OrderPlaced\n"), 0x33);
	cr_assert_eq(run("type: [OrderPaid, OrderShipped]\n"), 0x0c);
	cr_assert_eq(run("field: region\nvalue: eu\n"), 0x05);
	cr_assert_eq(run("field: region\nvalue: '7'\n"), 0x10, "a number member, compared as one");
	cr_assert_eq(run("field: total\nvalue: 120\n"), 0x25, "120 and 120.0 are one number");
	cr_assert_eq(run("type: OrderPlaced\nfield: region\nvalue: eu\n"), 0x01);
	cr_assert_eq(run("type: OrderPlaced\ndrop: true\n"), 0x0c);
	sl_plugin_unload(g_p);
}

Test(plugins_filter, refuses_bad_args)
{
	char err[512];
	g_p = tu_load("filter", SL_PLUGIN_TRANSFORM);
	make("{}\n", -SL_EPLUGIN, err, sizeof(err));
	cr_assert_not_null(strstr(err, "needs a type or a field"), "%s", err);
	make("tpye: X\n", -SL_EPLUGIN, err, sizeof(err));
	cr_assert_not_null(strstr(err, "unknown arg 'tpye'"), "%s", err);
	make("field: region\n", -SL_EPLUGIN, err, sizeof(err));
	cr_assert_not_null(strstr(err, "field and value go together"), "%s", err);
	make("type: [A, [B]]\n", -SL_EPLUGIN, err, sizeof(err));
	cr_assert_not_null(strstr(err, "type[1] must be a string"), "%s", err);
	make("type: A\ndrop: maybe\n", -SL_EPLUGIN, err, sizeof(err));
	cr_assert_not_null(strstr(err, "drop must be true or false"), "%s", err);
	cr_assert_not_null(strstr(err, "f (plugin filter): "), "%s", err);
	sl_plugin_unload(g_p);
}
