/*
 * The loader refuses every plugin in tests/abi that is built wrong, with a
 * message naming the file and the reason, and loads the one built right.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "plugin/plugin.h"

static void path_of(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s.so", SL_ABI_PLUGIN_DIR, name);
}

/* Loads abi_<name>.so as a projection and expects a refusal whose message
 * holds the file and every one of the NULL-terminated fragments. */
static void expect_refused(const char *name, int code, ...)
{
	char file[512], err[1024] = "";
	struct sl_plugin *p = (void *)1;
	va_list ap;

	path_of(name, file, sizeof(file));
	int ret = sl_plugin_open(file, SL_PLUGIN_PROJECTION, &p, err, sizeof(err));
	cr_assert_eq(ret, code, "%s: got %d (%s), want %d; err: %s", name, ret, sl_strerror(ret),
	             code, err);
	cr_assert_null(p, "%s: refused plugin handed out", name);
	cr_assert_not_null(strstr(err, file), "%s: message does not name the file: %s", name, err);
	va_start(ap, code);
	for (const char *frag; (frag = va_arg(ap, const char *));)
		cr_assert_not_null(strstr(err, frag), "%s: message lacks '%s': %s", name, frag,
		                   err);
	va_end(ap);
}

Test(abi, good_plugin_loads_and_runs)
{
	char file[512], err[512] = "";
	struct sl_plugin *p;
	struct sl_plugin_inst *in;
	struct sl_plugin_inst_opts o = {.name = "t", .partition = 3, .n_partitions = 4};

	path_of("abi_good", file, sizeof(file));
	cr_assert_eq(sl_plugin_open(file, SL_PLUGIN_PROJECTION, &p, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_str_eq(p->info.name, "abi_test");
	cr_assert_eq(p->kind, SL_PLUGIN_PROJECTION);
	cr_assert_eq(p->abi_minor, SL_PLUGIN_ABI_MINOR);
	cr_assert_not_null(p->ops.projection.apply);
	cr_assert_str_eq(p->name, "abi_good");
	cr_assert_eq(sl_plugin_inst_create(p, &o, &in, err, sizeof(err)), 0, "%s", err);
	struct sl_plugin_event ev[3] = {{0}};
	cr_assert_eq(p->ops.projection.apply(in->inst, ev, 3, NULL), 0);
	cr_assert_eq(*(uint64_t *)in->inst, 3);
	sl_plugin_inst_destroy(in);
	sl_plugin_unload(p);
}

Test(abi, other_major)
{
	char want[64];
	snprintf(want, sizeof(want), "this sluiced speaks %d.%d", SL_PLUGIN_ABI_MAJOR,
	         SL_PLUGIN_ABI_MINOR);
	expect_refused("abi_major2", -SL_EPLUGIN, "built for plugin ABI 2.0", want, NULL);
}

Test(abi, newer_minor)
{
	char want[64];
	snprintf(want, sizeof(want), "built for plugin ABI %d.%d, newer", SL_PLUGIN_ABI_MAJOR,
	         SL_PLUGIN_ABI_MINOR + 1);
	expect_refused("abi_minor_newer", -SL_EPLUGIN, want, NULL);
}

/* A plugin of an older minor loads, and is held to what that minor defined. */
Test(abi, older_minor_loads)
{
	char file[512], err[512] = "";
	struct sl_plugin *p;

	path_of("abi_minor0", file, sizeof(file));
	cr_assert_eq(sl_plugin_open(file, SL_PLUGIN_PROJECTION, &p, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(p->abi_minor, 0);
	cr_assert_not(sl_plugin_concurrent_query(p));
	sl_plugin_unload(p);
}

/* A 1.1 plugin (its ops table ends before query_state) loads on 1.2, with
 * its concurrent queries, and keeps its own model. */
Test(abi, minor1_loads)
{
	char file[512], err[512] = "";
	struct sl_plugin *p;

	path_of("abi_minor1", file, sizeof(file));
	cr_assert_eq(sl_plugin_open(file, SL_PLUGIN_PROJECTION, &p, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(p->abi_minor, 1);
	cr_assert(sl_plugin_concurrent_query(p));
	cr_assert_not(sl_plugin_host_state(p));
	cr_assert_null(p->ops.projection.query_state, "read past a 1.1 table");
	sl_plugin_unload(p);
}

Test(abi, host_state_in_a_minor1_plugin)
{
	expect_refused("abi_minor1_state", -SL_EPLUGIN,
	               "projection ops flags 0x2 not defined in plugin ABI 1.1", NULL);
}

Test(abi, host_state_without_query_state)
{
	expect_refused("abi_state_no_query", -SL_EPLUGIN,
	               "projection ops table has no 'query_state' callback", NULL);
}

Test(abi, flag_newer_than_its_minor)
{
	expect_refused("abi_minor0_flag", -SL_EPLUGIN,
	               "projection ops flags 0x1 not defined in plugin ABI 1.0", NULL);
}

Test(abi, unknown_flags)
{
	char want[96];
	snprintf(want, sizeof(want), "projection ops flags 0x80 not defined in plugin ABI 1.%d",
	         SL_PLUGIN_ABI_MINOR);
	expect_refused("abi_bad_flags", -SL_EPLUGIN, want, NULL);
}

Test(abi, missing_entry_point)
{
	expect_refused("abi_no_entry", -SL_EPLUGIN, "no 'sl_plugin_entry' entry point", NULL);
}

Test(abi, hidden_entry_point)
{
	expect_refused("abi_hidden_entry", -SL_EPLUGIN, "no 'sl_plugin_entry' entry point", NULL);
}

Test(abi, info_too_small_for_a_version)
{
	expect_refused("abi_tiny_info", -SL_EPLUGIN, "plugin info is 8 bytes",
	               "too small to hold a version", NULL);
}

Test(abi, info_smaller_than_its_minor)
{
	char want[96];
	snprintf(want, sizeof(want), "plugin info is 24 bytes, plugin ABI 1.%d needs at least %zu",
	         SL_PLUGIN_ABI_MINOR, sizeof(struct sl_plugin_info));
	expect_refused("abi_small_info", -SL_EPLUGIN, want, NULL);
}

Test(abi, ops_smaller_than_its_minor)
{
	char want[96];
	snprintf(want, sizeof(want),
	         "projection ops table is 16 bytes, plugin ABI 1.%d needs at least %zu",
	         SL_PLUGIN_ABI_MINOR, sizeof(struct sl_projection_ops));
	expect_refused("abi_small_ops", -SL_EPLUGIN, want, NULL);
}

Test(abi, no_ops)
{
	expect_refused("abi_null_ops", -SL_EPLUGIN, "no projection ops table", NULL);
}

Test(abi, missing_callback)
{
	expect_refused("abi_no_apply", -SL_EPLUGIN, "has no 'apply' callback", NULL);
}

Test(abi, no_name)
{
	expect_refused("abi_no_name", -SL_EPLUGIN, "plugin info has no name", NULL);
}

Test(abi, wrong_kind)
{
	expect_refused("abi_transform", -SL_EPLUGIN, "is a transform plugin",
	               "a projection plugin was asked for", NULL);
}

Test(abi, unknown_kind)
{
	expect_refused("abi_bad_kind", -SL_EPLUGIN, "unknown plugin kind 42", NULL);
}

Test(abi, entry_returns_an_error)
{
	expect_refused("abi_entry_error", -SL_EPLUGIN, "sl_plugin_entry() refused to load",
	               sl_strerror(-ENOTSUP), NULL);
}

Test(abi, entry_returns_no_info)
{
	expect_refused("abi_null_info", -SL_EPLUGIN, "returned 0 and no info", NULL);
}

Test(abi, unresolved_symbol_refused_at_load)
{
	expect_refused("abi_unresolved", -SL_EPLUGIN, "cannot load", "sl_abi_test_no_such_function",
	               NULL);
}

Test(abi, not_a_shared_object)
{
	char dir[] = "/tmp/sluice-abi-XXXXXX", file[128], err[512] = "";
	struct sl_plugin *p;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/junk.so", dir);
	FILE *f = fopen(file, "w");
	cr_assert_not_null(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	const char *path[] = {dir};
	cr_assert_eq(sl_plugin_load(path, 1, "junk", SL_PLUGIN_PROJECTION, &p, err, sizeof(err)),
	             -SL_EPLUGIN);
	cr_assert_not_null(strstr(err, file), "%s", err);
	cr_assert_not_null(strstr(err, "cannot load"), "%s", err);
	unlink(file);
	rmdir(dir);
}

Test(abi, transform_loads_as_transform)
{
	char file[512], err[512] = "";
	struct sl_plugin *p;

	path_of("abi_transform", file, sizeof(file));
	cr_assert_eq(sl_plugin_open(file, SL_PLUGIN_TRANSFORM, &p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p->kind, SL_PLUGIN_TRANSFORM);
	cr_assert_not_null(p->ops.transform.process);
	sl_plugin_unload(p);
}
