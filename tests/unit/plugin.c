/*
 * The plugin loader and the host table: finding NAME.so along plugin_path,
 * refusals that name what was wrong, instances, the args accessors over a
 * YAML tree, answer buffers, event JSON, events out (copies, built events,
 * deterministic derived ids, topic resolution) and JSON numbers.
 * Plugins built wrong on purpose are tests/abi's.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "plugins_util.h"

Test(plugin, load_from_the_first_folder_that_has_it)
{
	const char *path[] = {"/nonexistent-sluice-dir", SL_PLUGIN_DIR};
	struct sl_plugin *p;
	char err[512] = "";

	cr_assert_eq(sl_plugin_load(path, 2, "counter", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_str_eq(p->info.name, "counter");
	cr_assert_str_eq(p->name, "counter");
	cr_assert_not_null(strstr(p->file, SL_PLUGIN_DIR "/counter.so"));
	cr_assert_not_null(p->ops.projection.key_route);
	sl_plugin_unload(p);
}

Test(plugin, not_found_lists_the_folders)
{
	const char *path[] = {"/a-sluice", "/b-sluice"};
	struct sl_plugin *p = (void *)1;
	char err[512] = "";

	cr_assert_eq(sl_plugin_load(path, 2, "nope", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
	             -ENOENT);
	cr_assert_null(p);
	cr_assert_str_eq(err, "plugin 'nope' not found: no nope.so in /a-sluice, /b-sluice");
	cr_assert_eq(sl_plugin_load(NULL, 0, "nope", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
	             -ENOENT);
	cr_assert_not_null(strstr(err, "plugin_path is empty"), "%s", err);
}

Test(plugin, names_are_not_paths)
{
	const char *path[] = {SL_PLUGIN_DIR};
	const char *bad[] = {"../plugins/counter", "a/b", ".hidden", ""};
	struct sl_plugin *p;
	char err[256];

	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		cr_assert_eq(
		    sl_plugin_load(path, 1, bad[i], SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
		    -SL_EPLUGIN, "%s", bad[i]);
		cr_assert_not_null(strstr(err, "is not a file name"), "%s", err);
	}
}

Test(plugin, wrong_kind_names_both)
{
	const char *path[] = {SL_PLUGIN_DIR};
	struct sl_plugin *p;
	char err[512];

	cr_assert_eq(sl_plugin_load(path, 1, "counter", SL_PLUGIN_SINK, &p, err, sizeof(err)),
	             -SL_EPLUGIN);
	cr_assert_not_null(
	    strstr(err, "counter.so: is a projection plugin, a sink plugin was asked for"), "%s",
	    err);
}

Test(plugin, instance_refusal_carries_the_plugins_reason)
{
	struct sl_plugin *p = tu_load("counter", SL_PLUGIN_PROJECTION);
	struct sl_config_node *args;
	struct sl_plugin_inst *in = (void *)1;
	struct sl_plugin_inst_opts o = {.name = "tally", .args = NULL};
	char err[512];
	const char *y = "colour: blue\n";

	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &args, err, sizeof(err)), 0);
	o.args = args;
	cr_assert_eq(sl_plugin_inst_create(p, &o, &in, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_null(in);
	cr_assert_str_eq(err, "tally (plugin counter): counter takes no args (got 'colour')");
	sl_config_node_free(args);
	sl_plugin_unload(p);
}

/* ---- args ---------------------------------------------------------------------- */

Test(plugin, args_accessors)
{
	const struct sl_host *h = sl_plugin_host();
	struct sl_config_node *root;
	char err[256];
	const char *y = "type: OrderPlaced\n"
	                "limit: -42\n"
	                "ratio: 0.25\n"
	                "on: yes\n"
	                "bad_num: 12x\n"
	                "empty: ~\n"
	                "types: [A, B, C]\n"
	                "nested: { topic: errors }\n";

	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &root, err, sizeof(err)), 0, "%s",
	             err);
	const struct sl_plugin_args *a = (const struct sl_plugin_args *)root;
	const char *s = NULL;
	int64_t i = 0;
	double d = 0;
	int b = -1;

	cr_assert_eq(h->arg_str(a, "type", &s), 0);
	cr_assert_str_eq(s, "OrderPlaced");
	cr_assert_eq(h->arg_i64(a, "limit", &i), 0);
	cr_assert_eq(i, -42);
	cr_assert_eq(h->arg_f64(a, "ratio", &d), 0);
	cr_assert_float_eq(d, 0.25, 1e-12);
	cr_assert_eq(h->arg_bool(a, "on", &b), 0);
	cr_assert_eq(b, 1);
	cr_assert_eq(h->arg_i64(a, "bad_num", &i), -EINVAL);
	cr_assert_eq(h->arg_str(a, "empty", &s), -ENOENT);
	cr_assert_eq(h->arg_str(a, "absent", &s), -ENOENT);
	cr_assert_eq(h->arg_str(a, "types", &s), -EINVAL, "a list is not a string");
	cr_assert_eq(h->arg_bool(a, "type", &b), -EINVAL);

	const struct sl_plugin_args *list = h->arg_get(a, "types");
	cr_assert_eq(h->arg_len(list), 3);
	cr_assert_eq(h->arg_str(h->arg_at(list, 2), NULL, &s), 0);
	cr_assert_str_eq(s, "C");
	cr_assert_null(h->arg_at(list, 3));
	const struct sl_plugin_args *nested = h->arg_get(a, "nested");
	cr_assert_eq(h->arg_str(nested, "topic", &s), 0);
	cr_assert_str_eq(s, "errors");
	cr_assert_str_eq(h->arg_key(h->arg_at(nested, 0)), "topic");
	cr_assert_null(h->arg_get(NULL, "x"));
	cr_assert_eq(h->arg_len(NULL), 0);

	const char *known[] = {"type",  "limit", "ratio",  "on", "bad_num",
	                       "empty", "types", "nested", NULL};
	const char *fewer[] = {"type", NULL};
	const char *bad = NULL;
	cr_assert_eq(h->arg_check_keys(a, known, &bad), 0);
	cr_assert_eq(h->arg_check_keys(a, fewer, &bad), -EINVAL);
	cr_assert_str_eq(bad, "limit");
	cr_assert_eq(h->arg_check_keys(NULL, fewer, &bad), 0, "no args: nothing unknown");
	sl_config_node_free(root);
}

/* ---- output ---------------------------------------------------------------------- */

Test(plugin, event_json_in_the_consume_format)
{
	const struct sl_host *h = sl_plugin_host();
	struct sl_plugin_out out = {0};
	uint8_t ev[256];
	uint32_t len = tu_event(ev, sizeof(ev), "OrderPlaced", "order-1", "{\"total\":12}", 1);
	const char *keys[] = {"version"};
	const char *json[] = {"3"};
	size_t lens[] = {1};

	cr_assert_eq(h->out_put(&out, "[", 1), 0);
	cr_assert_eq(h->out_put_event_json(&out, ev, len, 5, 77, keys, json, lens, 1), 0);
	cr_assert_eq(h->out_put(&out, ",", 1), 0);
	cr_assert_eq(h->out_put_json_str(&out, "a\"b\n", 4), 0);
	cr_assert_eq(h->out_put(&out, "]", 1), 0);
	cr_assert_str_eq(
	    out.buf.data,
	    "[{\"id\":\"01000000-0000-0000-5a5a-5a5a5a5a5a5a\",\"type\":\"OrderPlaced\","
	    "\"aggregate\":\"order-1\",\"timestamp\":1700000000001,\"partition\":5,"
	    "\"offset\":77,\"version\":3,\"data\":{\"total\":12}},\"a\\\"b\\n\"]");
	cr_assert_eq(
	    h->out_put_event_json(&out, (const uint8_t *)"\xff\xff", 2, 0, 0, NULL, NULL, NULL, 0),
	    -EINVAL);
	sl_plugin_out_release(&out);
}

/* ---- events out ------------------------------------------------------------------- */

static int resolve(void *arg, const char *topic, size_t len)
{
	if (len == 6 && !memcmp(topic, "errors", 6))
		return 2;
	return -ENOENT;
}

Test(plugin, emitter_copies_builds_and_resolves)
{
	const struct sl_host *h = sl_plugin_host();
	struct sl_plugin_emitter em = {.resolve = resolve, .default_topic = 0, .id_seed = 9};
	struct sl_plugin_event in;
	uint8_t ev[256];
	uint32_t len = tu_event(ev, sizeof(ev), "Paid", "acct-1", "{\"amount\":5}", 4);

	tu_fill(&in, ev, len, 1, 10);
	cr_assert_eq(h->emit_copy(&em, NULL, 0, &in), 0);
	cr_assert_eq(h->emit_copy(&em, "errors", 6, &in), 0);
	cr_assert_eq(h->emit_copy(&em, "nope", 4, &in), -ENOENT);
	struct sl_plugin_event_out o = {
	    .struct_size = sizeof(o),
	    .source = &in,
	    .type = "Rejected",
	    .type_len = 8,
	    .aggregate = "acct-1",
	    .aggregate_len = 6,
	    .data = (const uint8_t *)"{}",
	    .data_len = 2,
	    .timestamp_ms = 5,
	};
	cr_assert_eq(h->emit(&em, "errors", 6, &o), 0);
	cr_assert_eq(h->emit(&em, "errors", 6, &o), 0);
	o.type_len = 0;
	cr_assert_eq(h->emit(&em, "errors", 6, &o), -EINVAL, "an event needs a type");
	cr_assert_eq(em.n, 4);

	size_t cur = 0;
	int topic;
	const uint8_t *b;
	uint32_t l;
	uint8_t ids[2][16];
	cr_assert_eq(sl_plugin_emitter_next(&em, &cur, &topic, &b, &l), 1);
	cr_assert_eq(topic, 0);
	cr_assert_eq(l, len);
	cr_assert_eq(memcmp(b, ev, len), 0);
	cr_assert_eq(sl_plugin_emitter_next(&em, &cur, &topic, &b, &l), 1);
	cr_assert_eq(topic, 2);
	for (int k = 0; k < 2; k++) {
		struct sl_event_view v;
		cr_assert_eq(sl_plugin_emitter_next(&em, &cur, &topic, &b, &l), 1);
		cr_assert_eq(topic, 2);
		cr_assert_eq(sl_event_scan(b, l, &v), 0);
		cr_assert_eq(v.type_len, 8);
		cr_assert_eq(memcmp(v.type, "Rejected", 8), 0);
		cr_assert_eq(v.timestamp_ms, 5);
		cr_assert_not_null(v.id);
		cr_assert_eq(v.id[6] >> 4, 8, "a version 8 UUID");
		memcpy(ids[k], v.id, 16);
	}
	cr_assert_eq(sl_plugin_emitter_next(&em, &cur, &topic, &b, &l), 0);
	cr_assert_neq(memcmp(ids[0], ids[1], 16), 0, "two events from one source differ");

	/* The same input run again derives the same ids. */
	sl_plugin_emitter_reset(&em);
	o.type_len = 8;
	cr_assert_eq(h->emit(&em, "errors", 6, &o), 0);
	cur = 0;
	struct sl_event_view v;
	cr_assert_eq(sl_plugin_emitter_next(&em, &cur, &topic, &b, &l), 1);
	cr_assert_eq(sl_event_scan(b, l, &v), 0);
	cr_assert_eq(memcmp(v.id, ids[0], 16), 0);

	/* A projection's emitter has no default topic. */
	struct sl_plugin_emitter none = {.default_topic = -1};
	cr_assert_eq(h->emit_copy(&none, NULL, 0, &in), -EINVAL);
	cr_assert_eq(h->emit_copy(&none, "errors", 6, &in), -ENOENT);
	sl_plugin_emitter_release(&em);
	sl_plugin_emitter_release(&none);
}

/* An info struct from an older minor is shorter: fields past it read as 0. */
Test(plugin, emit_reads_a_short_struct_as_zeroes)
{
	const struct sl_host *h = sl_plugin_host();
	struct sl_plugin_emitter em = {.default_topic = 0};
	struct sl_plugin_event_out o = {
	    .struct_size = offsetof(struct sl_plugin_event_out, timestamp_ms),
	    .type = "T",
	    .type_len = 1,
	    .aggregate = "a",
	    .aggregate_len = 1,
	    .timestamp_ms = 123, /* past struct_size: must be ignored */
	};
	size_t cur = 0;
	int topic;
	const uint8_t *b;
	uint32_t l;
	struct sl_event_view v;

	cr_assert_eq(h->emit(&em, NULL, 0, &o), 0);
	cr_assert_eq(sl_plugin_emitter_next(&em, &cur, &topic, &b, &l), 1);
	cr_assert_eq(sl_event_scan(b, l, &v), 0);
	cr_assert_neq(v.timestamp_ms, 123, "a field past struct_size was read");
	cr_assert_gt(v.timestamp_ms, 1600000000000, "absent timestamp: the host's clock");
	sl_plugin_emitter_release(&em);
}

/* ---- JSON numbers ------------------------------------------------------------------ */

Test(plugin, json_numbers)
{
	const struct sl_host *h = sl_plugin_host();
	int64_t i;
	double d;
#define J(s) (const uint8_t *)(s), strlen(s)

	cr_assert_eq(h->json_get_i64(J("{\"amount\": -250, \"x\": 1}"), "amount", &i), 0);
	cr_assert_eq(i, -250);
	cr_assert_eq(h->json_get_i64(J("{\"amount\": 2.5}"), "amount", &i), -EINVAL);
	cr_assert_eq(h->json_get_f64(J("{\"amount\": 2.5}"), "amount", &d), 0);
	cr_assert_float_eq(d, 2.5, 1e-12);
	cr_assert_eq(h->json_get_i64(J("{\"amount\": \"5\"}"), "amount", &i), -EINVAL);
	cr_assert_eq(h->json_get_i64(J("{\"other\": 5}"), "amount", &i), -ENOENT);
	cr_assert_eq(h->json_get_i64(J("[1]"), "amount", &i), -EINVAL);
	cr_assert_eq(h->json_get_i64(J("{\"amount\": 5"), "amount", &i), -EINVAL);
	cr_assert_eq(h->json_get_i64(J("{\"amount\": 99999999999999999999}"), "amount", &i),
	             -EINVAL, "beyond 64 bits must not clamp");
	cr_assert_eq(h->json_get_i64(J(""), "amount", &i), -EINVAL);
#undef J
}

Test(plugin, hash_is_stable)
{
	const struct sl_host *h = sl_plugin_host();
	/* Snapshots and tables may rely on it across releases of this major. */
	cr_assert_eq(h->hash64("abc", 3, 0), h->hash64("abc", 3, 0));
	cr_assert_neq(h->hash64("abc", 3, 0), h->hash64("abc", 3, 1));
	cr_assert_eq(h->hash64("", 0, 0), 0x2d06800538d394c2ull, "XXH3-64 of the empty input");
}

/* A capturing log sink: keeps the last line. */
static void capture(void *arg, int level, const char *l)
{
	snprintf(arg, 256, "%d %s", level, l);
}

Test(plugin, log_lines_go_to_the_instance_sink)
{
	struct sl_plugin *p = tu_load("counter", SL_PLUGIN_PROJECTION);
	char line[256] = "";
	struct sl_plugin_ctx ctx = {
	    .plugin = p, .name = "tally", .partition = 2, .log_fn = capture, .log_arg = line};

	sl_plugin_host()->log(&ctx, SL_PLUGIN_LOG_WARN, "two\nlines %d", 7);
	cr_assert_str_eq(line, "1 plugin counter (tally, partition 2): warning: two lines 7");
	sl_plugin_unload(p);
}
