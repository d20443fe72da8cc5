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
#include <sys/stat.h>
#include <unistd.h>

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

/* ---- who may change a plugin (load.c, sl__plugin_trusted) ------------------- */

/* A scratch tree under /tmp (sticky, world-writable: acceptable above the
 * plugin's own folder): base/ (0700 from mkdtemp) and base/p/counter.so,
 * a copy of the built plugin, with the modes each case then changes. */
struct tu_tree {
	char base[64], dir[96], file[128];
};

static void tu_tree_make(struct tu_tree *t)
{
	snprintf(t->base, sizeof(t->base), "/tmp/sluice-perm-XXXXXX");
	cr_assert_not_null(mkdtemp(t->base));
	snprintf(t->dir, sizeof(t->dir), "%s/p", t->base);
	snprintf(t->file, sizeof(t->file), "%s/counter.so", t->dir);
	cr_assert_eq(mkdir(t->dir, 0755), 0);
	FILE *in = fopen(SL_PLUGIN_DIR "/counter.so", "rb"), *out = fopen(t->file, "wb");
	cr_assert(in && out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		cr_assert_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	cr_assert_eq(fclose(out), 0);
	cr_assert_eq(chmod(t->file, 0755), 0);
}

/* The tree of the running test; removed by tu_tree_fini even when an
 * assertion ends the test early (Criterion runs .fini then too). */
static struct tu_tree tu_t;

static void tu_tree_fini(void)
{
	struct tu_tree *t = &tu_t;
	char link[512];

	if (!t->base[0])
		return;
	/* A non-root run could not delete from a folder a case left 0555. */
	chmod(t->base, 0700);
	chmod(t->dir, 0700);
	snprintf(link, sizeof(link), "%s/link.so", t->base);
	unlink(link);
	unlink(t->file);
	rmdir(t->dir);
	rmdir(t->base);
	t->base[0] = '\0';
}

/* Loads base/p/counter.so through plugin_path [dir]: 0 or the refusal. */
static int tu_tree_load(const char *dir, char *err, size_t errlen)
{
	const char *path[] = {dir};
	struct sl_plugin *p = NULL;
	int ret = sl_plugin_load(path, 1, "counter", SL_PLUGIN_PROJECTION, &p, err, errlen);
	if (ret == 0)
		sl_plugin_unload(p);
	else
		cr_assert_null(p);
	return ret;
}

Test(plugin, safe_file_and_folders_load, .fini = tu_tree_fini)
{
	struct tu_tree *t = &tu_t;
	char err[512] = "";

	tu_tree_make(t);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), 0, "%s", err);
	/* /tmp above is sticky and world-writable: allowed above the plugin's
	 * own folder, as sudo allows it. So is a sticky, world-writable
	 * folder of our own above a safe one. */
	cr_assert_eq(chmod(t->base, 01777), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), 0, "%s", err);
}

Test(plugin, writable_folder_or_file_is_refused_naming_it, .fini = tu_tree_fini)
{
	struct tu_tree *t = &tu_t;
	char err[512] = "";

	tu_tree_make(t);
	/* Its own folder writable by all: anyone could put a NAME.so there. */
	cr_assert_eq(chmod(t->dir, 0777), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, t->file), "%s", err);
	cr_assert_not_null(strstr(err, "refused"), "%s", err);
	cr_assert_not_null(strstr(err, "folder /tmp/sluice-perm-"), "%s", err);
	cr_assert_not_null(strstr(err, "/p is writable by others (mode 0777)"), "%s", err);
	/* Sticky does not save the plugin's own folder (only folders above). */
	cr_assert_eq(chmod(t->dir, 01777), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, "writable by others (mode 1777)"), "%s", err);
	/* A folder further up, writable by its group and not sticky: safe
	 * when the group is root's or ours (a checkout under umask 002),
	 * refused for any other group (which needs root to set up). */
	cr_assert_eq(chmod(t->dir, 0755), 0);
	cr_assert_eq(chmod(t->base, 0770), 0);
	struct stat bst;
	cr_assert_eq(stat(t->base, &bst), 0);
	cr_assert(bst.st_gid == 0 || bst.st_gid == getegid());
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), 0, "our own group's: %s", err);
	char want[512];
	if (geteuid() == 0) {
		cr_assert_eq(chown(t->base, 0, 4242), 0);
		cr_assert_eq(chmod(t->base, 0770), 0); /* chown cleared nothing we need */
		cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), -SL_EPLUGIN);
		cr_assert_not_null(strstr(err, "is writable by its group (mode 0770)"), "%s", err);
		snprintf(want, sizeof(want), "folder %s is", t->base);
		cr_assert_not_null(strstr(err, want), "%s", err);
		cr_assert_eq(chown(t->base, 0, 0), 0);
	}
	/* The file itself. */
	cr_assert_eq(chmod(t->base, 0700), 0);
	cr_assert_eq(chmod(t->file, 0666), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), -SL_EPLUGIN);
	snprintf(want, sizeof(want), "file %s is writable by others (mode 0666)", t->file);
	cr_assert_not_null(strstr(err, want), "%s", err);
	cr_assert_eq(chmod(t->file, 0755), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), 0, "%s", err);
}

Test(plugin, foreign_owner_is_refused, .fini = tu_tree_fini)
{
	struct tu_tree *t = &tu_t;
	char err[512] = "";

	if (geteuid() != 0)
		cr_skip_test("needs root to give a file away (chown)");
	tu_tree_make(t);
	cr_assert_eq(chown(t->file, 4242, 4242), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, "is owned by uid 4242, not by root or sluiced's uid 0"),
	                   "%s", err);
	cr_assert_eq(chown(t->file, 0, 0), 0);
	cr_assert_eq(chown(t->dir, 4242, 4242), 0);
	cr_assert_eq(tu_tree_load(t->dir, err, sizeof(err)), -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, "folder"), "%s", err);
	cr_assert_not_null(strstr(err, "owned by uid 4242"), "%s", err);
}

Test(plugin, symlink_is_checked_where_it_leads, .fini = tu_tree_fini)
{
	struct tu_tree *t = &tu_t;
	char err[512] = "", link[512];

	tu_tree_make(t);
	/* base/link.so -> base/p/counter.so: loading the link checks (and
	 * loads) the file it resolves to, so an unsafe target folder is
	 * refused even though the link's folder is safe. */
	snprintf(link, sizeof(link), "%s/link.so", t->base);
	cr_assert_eq(symlink(t->file, link), 0);
	const char *path[] = {t->base};
	struct sl_plugin *p = NULL;
	cr_assert_eq(sl_plugin_load(path, 1, "link", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)), 0,
	             "%s", err);
	sl_plugin_unload(p);
	cr_assert_eq(chmod(t->dir, 0777), 0);
	cr_assert_eq(sl_plugin_load(path, 1, "link", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
	             -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, link), "%s", err);
	cr_assert_not_null(strstr(err, "writable by others"), "%s", err);
}

Test(plugin, unsafe_first_folder_does_not_fall_through, .fini = tu_tree_fini)
{
	struct tu_tree *t = &tu_t;
	char err[512] = "";

	tu_tree_make(t);
	cr_assert_eq(chmod(t->dir, 0777), 0);
	/* The build's folder has a good counter.so too; the first folder
	 * that has the file decides, refused or not. */
	const char *path[] = {t->dir, SL_PLUGIN_DIR};
	struct sl_plugin *p = NULL;
	cr_assert_eq(sl_plugin_load(path, 2, "counter", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
	             -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, t->file), "%s", err);
}
