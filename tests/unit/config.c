#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "config/config.h"
#include "config/keys.h"

/* ---- helpers ------------------------------------------------------------- */

static char *dump_str(const struct sl_config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(sl_config_dump(cfg, f), 0);
	fclose(f);
	return buf;
}

static char *node_str(const struct sl_config_node *n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(sl_config_node_dump(n, f), 0);
	fclose(f);
	return buf;
}

static void load(const char *yaml, const char *base, struct sl_config *cfg)
{
	char err[512];
	int rc = sl_config_load_string(yaml, strlen(yaml), base, cfg, err, sizeof(err));

	cr_assert_eq(rc, 0, "load failed (%d): %s\n--- yaml:\n%s", rc, err, yaml);
}

/* Loads `yaml`, expects -SL_ECONFIG and `want` (the whole message when
 * exact, else a part of it). */
static void expect_error_in(const char *yaml, const char *want, bool exact)
{
	struct sl_config cfg;
	char err[512];
	int rc = sl_config_load_string(yaml, strlen(yaml), NULL, &cfg, err, sizeof(err));

	cr_assert_eq(rc, -SL_ECONFIG, "expected an error, rc %d, err '%s'\n--- yaml:\n%s", rc, err,
	             yaml);
	if (exact)
		cr_assert_str_eq(err, want, "\n--- yaml:\n%s", yaml);
	else
		cr_assert_not_null(strstr(err, want), "want '%s' in '%s'\n--- yaml:\n%s", want, err,
		                   yaml);
	/* A failed load leaves nothing behind. */
	cr_assert_null(cfg.topics);
	cr_assert_null(cfg.data_dir);
	cr_assert_null(cfg.source);
	sl_config_free(&cfg);
}

static void expect_error(const char *yaml, const char *want)
{
	expect_error_in(yaml, want, false);
}

/* The repository root, from this file's absolute path (CMake compiles
 * sources by absolute path). */
static char *repo_path(const char *rel)
{
	const char *me = __FILE__;
	const char *tail = strstr(me, "tests/unit/config.c");
	char *out;

	cr_assert_not_null(tail, "__FILE__ is %s", me);
	cr_assert_eq(me[0], '/', "__FILE__ is not absolute: %s", me);
	cr_assert_gt(asprintf(&out, "%.*s%s", (int)(tail - me), me, rel), 0);
	return out;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;

	cr_assert_not_null(f, "open %s", path);
	buf = malloc(1 << 20);
	*len = fread(buf, 1, (1 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static char *make_tmpdir(void)
{
	char tmpl[] = "/tmp/sl-config-XXXXXX";
	char *d = mkdtemp(tmpl);
	char *real;

	cr_assert_not_null(d);
	real = realpath(d, NULL);
	cr_assert_not_null(real);
	return real;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "create %s", path);
	fputs(text, f);
	fclose(f);
}

static void assert_default_topic(const struct sl_config_topic *t, const char *name)
{
	cr_assert_str_eq(t->name, name);
	cr_assert_eq(t->partitions, 8);
	cr_assert_eq(t->partitioner, SL_CONFIG_PART_HASH);
	cr_assert_not_null(t->partitioner_args);
	cr_assert_eq(t->partitioner_args->kind, SL_CONFIG_NODE_MAP);
	cr_assert_eq(t->partitioner_args->n_items, 0);
	cr_assert_eq(t->durability, SL_CONFIG_DUR_FSYNC);
	cr_assert_eq(t->durability_interval_ns, 0);
	cr_assert_eq(t->overload, SL_CONFIG_OVERLOAD_BLOCK);
	cr_assert_eq(t->retention_bytes, 10ull << 30);
	cr_assert_eq(t->retention_age_ns, 7ull * 24 * 3600 * 1000000000ull);
	cr_assert_eq(t->cleanup, SL_CONFIG_CLEANUP_DELETE);
	cr_assert_eq(t->segment_bytes, 64ull << 20);
}

static void assert_default_scalars(const struct sl_config *c)
{
	cr_assert_str_eq(c->data_dir, "./sluice-data");
	cr_assert_eq(c->cores, 0);
	cr_assert_str_eq(c->listen.native.host, "127.0.0.1");
	cr_assert_eq(c->listen.native.port, 7400);
	cr_assert_str_eq(c->listen.http.host, "127.0.0.1");
	cr_assert_eq(c->listen.http.port, 7480);
	cr_assert_eq(c->limits.max_connections, 10000);
	cr_assert_eq(c->limits.max_frame_bytes, 1048576);
	cr_assert_eq(c->limits.memory_budget, 512ull << 20);
	cr_assert_eq(c->limits.handshake_timeout_ns, 10ull * 1000000000);
	cr_assert_eq(c->limits.idle_timeout_ns, 300ull * 1000000000);
	cr_assert_eq(c->limits.max_connections_per_ip, 1024);
	cr_assert_eq(c->limits.http_max_connections, 1024);
	cr_assert_eq(c->limits.http_timeout_ns, 30ull * 1000000000);
	cr_assert_eq(c->limits.http_header_timeout_ns, 10ull * 1000000000);
	cr_assert_eq(c->n_plugin_path, 0);
}

/* PRODUCT.md's example, verbatim. */
static const char product_yaml[] =
    "data_dir: ./sluice-data\n"
    "cores: auto                  # reactor threads, one pinned per core\n"
    "listen: { native: 127.0.0.1:7400, http: 127.0.0.1:7480 }\n"
    "limits: { max_connections: 10000, max_frame_bytes: 1048576, memory_budget: 512MiB }\n"
    "# plugin_path: [ ../plugins ]   # default: the plugins folder beside the executable's\n"
    "topics:\n"
    "  - name: events\n"
    "    partitions: 8\n"
    "    partitioner: hash        # hash | range | consistent | jump | directory\n"
    "    partitioner_args: {}     # split points, virtual nodes, directory file\n"
    "    durability: fsync        # fsync | interval:10ms | none\n"
    "    overload: block          # block | drop | sample:0.1 | reject\n"
    "    retention: { bytes: 10GiB, age: 7d }\n"
    "    cleanup: delete          # delete | compact\n"
    "pipelines:\n"
    "  - { name: big-orders, from: events, to: big_orders,\n"
    "      transforms: [ { plugin: filter, args: { type: OrderPlaced } } ] }\n"
    "projections:\n"
    "  - { name: counter, plugin: counter, from: events }\n"
    "  - { name: latest,  plugin: latest,  from: events }\n"
    "sinks:\n"
    "  - { name: archive, plugin: jsonl, from: events, args: { path: ./archive.jsonl } }\n";

/* ---- the default ---------------------------------------------------------- */

Test(config, embedded_default_has_product_values)
{
	struct sl_config c;

	cr_assert_eq(sl_config_default(&c), 0);
	assert_default_scalars(&c);
	cr_assert_str_eq(c.source, "<default>");
	cr_assert_null(c.base_dir);
	cr_assert_eq(c.n_topics, 1);
	assert_default_topic(&c.topics[0], "events");
	cr_assert_not(c.topics[0].derived);
	cr_assert_eq(c.n_pipelines, 0);
	cr_assert_eq(c.n_sinks, 0);
	cr_assert_eq(c.n_projections, 2);
	cr_assert_str_eq(c.projections[0].name, "counter");
	cr_assert_str_eq(c.projections[0].plugin, "counter");
	cr_assert_str_eq(c.projections[0].from, "events");
	cr_assert_eq(c.projections[0].from_topic, 0);
	cr_assert_eq(c.projections[0].args->kind, SL_CONFIG_NODE_MAP);
	cr_assert_str_eq(c.projections[1].name, "latest");
	cr_assert_str_eq(c.projections[1].plugin, "latest");
	cr_assert_eq(sl_config_topic_find(&c, "events"), &c.topics[0]);
	cr_assert_null(sl_config_topic_find(&c, "nope"));
	sl_config_free(&c);
	sl_config_free(&c); /* a freed config is zeroed: freeing again is harmless */
}

Test(config, ops_file_equals_embedded_default)
{
	struct sl_config def, ops, file;
	char *path = repo_path("ops/sluice.yaml"), *ops_dir = repo_path("ops"), *real_ops;
	char err[512], *d1, *d2, *want;
	size_t len;
	char *text = read_all(path, &len);

	cr_assert_eq(sl_config_default(&def), 0);
	/* As text with no folder: relative paths stay as the default's. */
	load(text, NULL, &ops);
	d1 = dump_str(&def);
	d2 = dump_str(&ops);
	cr_assert_str_eq(d1, d2);
	free(d2);

	/* As a file: the same, except data_dir now lives beside the file. */
	cr_assert_eq(sl_config_load_file(path, &file, err, sizeof(err)), 0, "%s", err);
	real_ops = realpath(ops_dir, NULL);
	cr_assert_not_null(real_ops);
	cr_assert_gt(asprintf(&want, "%s/sluice-data", real_ops), 0);
	cr_assert_str_eq(file.data_dir, want);
	cr_assert_str_eq(file.base_dir, real_ops);
	cr_assert_str_eq(file.source, path);
	free(file.data_dir);
	file.data_dir = strdup("./sluice-data");
	d2 = dump_str(&file);
	cr_assert_str_eq(d1, d2);

	free(d1);
	free(d2);
	free(want);
	free(real_ops);
	free(text);
	free(path);
	free(ops_dir);
	sl_config_free(&def);
	sl_config_free(&ops);
	sl_config_free(&file);
}

Test(config, default_yaml_text_is_what_sl_config_default_loads)
{
	struct sl_config a, b;
	const char *y = sl_config_default_yaml();
	char *d1, *d2;

	cr_assert_eq(sl_config_default(&a), 0);
	load(y, NULL, &b);
	d1 = dump_str(&a);
	d2 = dump_str(&b);
	cr_assert_str_eq(d1, d2);
	free(d1);
	free(d2);
	sl_config_free(&a);
	sl_config_free(&b);
}

Test(config, product_example_loads_with_derived_topic)
{
	struct sl_config c;
	const struct sl_config_topic *t;
	const struct sl_config_pipeline *pl;

	load(product_yaml, NULL, &c);
	assert_default_scalars(&c);
	cr_assert_eq(c.n_topics, 2);
	assert_default_topic(&c.topics[0], "events");
	t = sl_config_topic_find(&c, "big_orders");
	cr_assert_not_null(t);
	assert_default_topic(t, "big_orders");
	cr_assert(t->derived);
	cr_assert_not(c.topics[0].derived);
	cr_assert_eq(c.n_pipelines, 1);
	pl = &c.pipelines[0];
	cr_assert_str_eq(pl->name, "big-orders");
	cr_assert_str_eq(pl->from, "events");
	cr_assert_str_eq(pl->to, "big_orders");
	cr_assert_eq(pl->from_topic, 0);
	cr_assert_eq(pl->to_topic, 1);
	cr_assert_eq(pl->n_transforms, 1);
	cr_assert_str_eq(pl->transforms[0].plugin, "filter");
	cr_assert_str_eq(sl_config_node_str(pl->transforms[0].args, "type", NULL), "OrderPlaced");
	cr_assert_eq(pl->transforms[0].line, 17);
	cr_assert_eq(c.n_sinks, 1);
	cr_assert_str_eq(c.sinks[0].name, "archive");
	cr_assert_str_eq(c.sinks[0].plugin, "jsonl");
	cr_assert_str_eq(sl_config_node_str(c.sinks[0].args, "path", NULL), "./archive.jsonl");
	cr_assert_eq(c.n_projections, 2);
	sl_config_free(&c);
}

/* ---- merging ---------------------------------------------------------------- */

Test(config, empty_file_takes_default_scalars_and_has_no_lists)
{
	const char *texts[] = {"", "# only a comment\n", "---\n", "~\n"};

	for (size_t i = 0; i < SL_ARRAY_LEN(texts); i++) {
		struct sl_config c;

		load(texts[i], NULL, &c);
		assert_default_scalars(&c);
		cr_assert_eq(c.n_topics, 0, "text %zu", i);
		cr_assert_eq(c.n_pipelines, 0);
		cr_assert_eq(c.n_projections, 0);
		cr_assert_eq(c.n_sinks, 0);
		cr_assert_str_eq(c.source, "<string>");
		sl_config_free(&c);
	}
}

Test(config, omitted_scalars_and_map_keys_take_defaults)
{
	struct sl_config c;

	load("cores: 3\n"
	     "listen: { http: 0.0.0.0:9000 }\n"
	     "auth: { allow_unauthenticated: true }\n"
	     "limits: { memory_budget: 1GiB, idle_timeout: 0 }\n"
	     "topics:\n"
	     "  - name: orders\n"
	     "    partitions: 16\n"
	     "    retention: { age: 1h }\n",
	     NULL, &c);
	cr_assert_eq(c.cores, 3);
	cr_assert_str_eq(c.data_dir, "./sluice-data");
	cr_assert_str_eq(c.listen.native.host, "127.0.0.1");
	cr_assert_eq(c.listen.native.port, 7400);
	cr_assert_str_eq(c.listen.http.host, "0.0.0.0");
	cr_assert_eq(c.listen.http.port, 9000);
	cr_assert_eq(c.limits.memory_budget, 1ull << 30);
	cr_assert_eq(c.limits.idle_timeout_ns, 0);
	cr_assert_eq(c.limits.max_connections, 10000);
	cr_assert_eq(c.limits.max_frame_bytes, 1048576);
	cr_assert_eq(c.limits.handshake_timeout_ns, 10000000000ull);
	cr_assert_eq(c.n_topics, 1);
	cr_assert_str_eq(c.topics[0].name, "orders");
	cr_assert_eq(c.topics[0].partitions, 16);
	cr_assert_eq(c.topics[0].retention_age_ns, 3600ull * 1000000000);
	cr_assert_eq(c.topics[0].retention_bytes, 10ull << 30); /* the map's other key */
	cr_assert_eq(c.topics[0].segment_bytes, 64ull << 20);
	/* `projections` absent: none, although the default has two. */
	cr_assert_eq(c.n_projections, 0);
	sl_config_free(&c);
}

Test(config, empty_values_read_as_omitted)
{
	struct sl_config c;

	load("listen:\nlimits:\ntopics:\n  - name: a\n    retention:\n    partitioner_args:\n"
	     "projections:\nsinks: []\nplugin_path:\n",
	     NULL, &c);
	assert_default_scalars(&c);
	cr_assert_eq(c.n_topics, 1);
	assert_default_topic(&c.topics[0], "a");
	cr_assert_eq(c.n_projections, 0);
	cr_assert_eq(c.n_sinks, 0);
	sl_config_free(&c);
}

Test(config, every_topic_setting_parses)
{
	struct sl_config c;
	const struct sl_config_topic *t;

	load("topics:\n"
	     "  - name: a\n"
	     "    partitions: 4096\n"
	     "    partitioner: range\n"
	     "    partitioner_args: { splits: [ g, n, t ] }\n"
	     "    durability: interval:10ms\n"
	     "    overload: sample:0.25\n"
	     "    retention: { bytes: 0, age: 0 }\n"
	     "    cleanup: compact\n"
	     "    segment_bytes: 4KiB\n"
	     "  - { name: b, partitions: 1, partitioner: consistent, durability: none,"
	     " overload: drop }\n"
	     "  - { name: c, partitioner: jump, overload: reject }\n"
	     "  - { name: d, partitioner: directory, overload: 'sample:1',\n"
	     "      partitioner_args: { file: d.map, fallback: consistent, vnodes: 40 } }\n",
	     NULL, &c);
	cr_assert_eq(c.n_topics, 4);
	t = &c.topics[0];
	cr_assert_eq(t->partitions, 4096);
	cr_assert_eq(t->partitioner, SL_CONFIG_PART_RANGE);
	cr_assert_eq(sl_config_node_len(sl_config_node_get(t->partitioner_args, "splits")), 3);
	cr_assert_str_eq(
	    sl_config_node_at(sl_config_node_get(t->partitioner_args, "splits"), 1)->value, "n");
	/* As the partitioner reads them (their order is part/'s to check). */
	cr_assert_eq(t->n_part_splits, 3);
	cr_assert_str_eq(t->part_splits[2], "t");
	cr_assert_eq(t->durability, SL_CONFIG_DUR_INTERVAL);
	cr_assert_eq(t->durability_interval_ns, 10000000);
	cr_assert_eq(t->overload, SL_CONFIG_OVERLOAD_SAMPLE);
	cr_assert_float_eq(t->sample_rate, 0.25, 1e-12);
	cr_assert_eq(t->retention_bytes, 0);
	cr_assert_eq(t->retention_age_ns, 0);
	cr_assert_eq(t->cleanup, SL_CONFIG_CLEANUP_COMPACT);
	cr_assert_eq(t->segment_bytes, 4096);
	cr_assert_eq(t->line, 2);
	t = &c.topics[1];
	cr_assert_eq(t->partitions, 1);
	cr_assert_eq(t->partitioner, SL_CONFIG_PART_CONSISTENT);
	cr_assert_eq(t->durability, SL_CONFIG_DUR_NONE);
	cr_assert_eq(t->overload, SL_CONFIG_OVERLOAD_DROP);
	cr_assert_eq(c.topics[2].partitioner, SL_CONFIG_PART_JUMP);
	cr_assert_eq(c.topics[2].overload, SL_CONFIG_OVERLOAD_REJECT);
	cr_assert_eq(c.topics[3].partitioner, SL_CONFIG_PART_DIRECTORY);
	cr_assert_eq(c.topics[3].overload, SL_CONFIG_OVERLOAD_SAMPLE);
	cr_assert_float_eq(c.topics[3].sample_rate, 1.0, 0);
	cr_assert_str_eq(c.topics[3].part_file, "d.map"); /* no folder: as written */
	cr_assert_eq(c.topics[3].part_fallback, SL_CONFIG_PART_CONSISTENT);
	cr_assert_eq(c.topics[3].part_vnodes, 40);
	cr_assert_str_eq(sl_config_partitioner_name(SL_CONFIG_PART_DIRECTORY), "directory");
	sl_config_free(&c);
}

Test(config, derived_to_topic_copies_from_settings)
{
	struct sl_config c;
	const struct sl_config_topic *src, *dst, *listed;

	load("topics:\n"
	     "  - name: raw\n"
	     "    partitions: 12\n"
	     "    partitioner: consistent\n"
	     "    partitioner_args: { vnodes: 64 }\n"
	     "    durability: interval:5ms\n"
	     "    overload: sample:0.5\n"
	     "    retention: { bytes: 1GiB, age: 1d }\n"
	     "    cleanup: compact\n"
	     "    segment_bytes: 8MiB\n"
	     "  - { name: listed, partitions: 2 }\n"
	     "pipelines:\n"
	     "  # listed out of order: the second feeds the first\n"
	     "  - { name: p2, from: mid, to: out }\n"
	     "  - { name: p1, from: raw, to: mid, transforms: [] }\n"
	     "  - { name: p3, from: raw, to: listed }\n"
	     "projections:\n"
	     "  - { name: counter, plugin: counter, from: out }\n",
	     NULL, &c);
	cr_assert_eq(c.n_topics, 4);
	src = sl_config_topic_find(&c, "raw");
	listed = sl_config_topic_find(&c, "listed");
	cr_assert_not(listed->derived);
	cr_assert_eq(listed->partitions, 2); /* listed: its own settings */
	cr_assert_eq(listed->partitioner, SL_CONFIG_PART_HASH);
	for (int i = 0; i < 2; i++) {
		dst = sl_config_topic_find(&c, i ? "out" : "mid");
		cr_assert_not_null(dst);
		cr_assert(dst->derived);
		cr_assert_eq(dst->partitions, 12);
		cr_assert_eq(dst->partitioner, SL_CONFIG_PART_CONSISTENT);
		cr_assert_neq(dst->partitioner_args, src->partitioner_args); /* own copy */
		cr_assert_str_eq(sl_config_node_str(dst->partitioner_args, "vnodes", NULL), "64");
		cr_assert_eq(dst->durability, SL_CONFIG_DUR_INTERVAL);
		cr_assert_eq(dst->durability_interval_ns, 5000000);
		cr_assert_eq(dst->overload, SL_CONFIG_OVERLOAD_SAMPLE);
		cr_assert_float_eq(dst->sample_rate, 0.5, 0);
		cr_assert_eq(dst->retention_bytes, 1ull << 30);
		cr_assert_eq(dst->retention_age_ns, 86400ull * 1000000000);
		cr_assert_eq(dst->cleanup, SL_CONFIG_CLEANUP_COMPACT);
		cr_assert_eq(dst->segment_bytes, 8ull << 20);
	}
	cr_assert_str_eq(c.topics[c.pipelines[0].from_topic].name, "mid");
	cr_assert_str_eq(c.topics[c.pipelines[0].to_topic].name, "out");
	cr_assert_str_eq(c.topics[c.pipelines[1].to_topic].name, "mid");
	cr_assert_str_eq(c.topics[c.pipelines[2].to_topic].name, "listed");
	cr_assert_str_eq(c.topics[c.projections[0].from_topic].name, "out");
	sl_config_free(&c);
}

Test(config, key_order_does_not_matter)
{
	struct sl_config c;

	load("sinks: [ { name: s, plugin: jsonl, from: out } ]\n"
	     "pipelines: [ { name: p, from: in, to: out } ]\n"
	     "topics: [ { name: in, partitions: 2 } ]\n",
	     NULL, &c);
	cr_assert_eq(c.n_topics, 2);
	cr_assert_eq(sl_config_topic_find(&c, "out")->partitions, 2);
	cr_assert_eq(c.sinks[0].from_topic, 1);
	sl_config_free(&c);
}

/* ---- paths -------------------------------------------------------------------- */

Test(config, relative_paths_resolve_against_base_dir)
{
	struct sl_config c;
	char *p;

	load("data_dir: data\nplugin_path: [ ../plugins, /opt/p, ./local, . ]\n", "/srv/conf", &c);
	cr_assert_str_eq(c.data_dir, "/srv/conf/data");
	cr_assert_str_eq(c.base_dir, "/srv/conf");
	cr_assert_eq(c.n_plugin_path, 4);
	cr_assert_str_eq(c.plugin_path[0], "/srv/conf/../plugins");
	cr_assert_str_eq(c.plugin_path[1], "/opt/p");
	cr_assert_str_eq(c.plugin_path[2], "/srv/conf/local");
	cr_assert_str_eq(c.plugin_path[3], "/srv/conf");
	cr_assert_eq(sl_config_resolve_path(&c, "./archive.jsonl", &p), 0);
	cr_assert_str_eq(p, "/srv/conf/archive.jsonl");
	free(p);
	cr_assert_eq(sl_config_resolve_path(&c, "/var/x", &p), 0);
	cr_assert_str_eq(p, "/var/x");
	free(p);
	/* A non-empty plugin_path is the caller's choice: left alone. */
	cr_assert_eq(sl_config_resolve_plugin_path(&c, "/usr/bin/true"), 0);
	cr_assert_eq(c.n_plugin_path, 4);
	sl_config_free(&c);

	load("data_dir: ./d\n", "/", &c);
	cr_assert_str_eq(c.data_dir, "/d");
	sl_config_free(&c);

	/* Omitted: the default's value, relative to the working directory. */
	load("cores: 1\n", "/srv/conf", &c);
	cr_assert_str_eq(c.data_dir, "./sluice-data");
	sl_config_free(&c);

	/* No base: as written. */
	load("data_dir: ./d\n", NULL, &c);
	cr_assert_str_eq(c.data_dir, "./d");
	cr_assert_eq(sl_config_resolve_path(&c, "x", &p), 0);
	cr_assert_str_eq(p, "x");
	free(p);
	sl_config_free(&c);
}

Test(config, file_paths_are_relative_to_the_file_folder)
{
	char *dir = make_tmpdir(), *path, *want, *sub, err[512];
	struct sl_config c;

	cr_assert_gt(asprintf(&sub, "%s/etc", dir), 0);
	cr_assert_eq(mkdir(sub, 0700), 0);
	cr_assert_gt(asprintf(&path, "%s/sluice.yaml", sub), 0);
	write_file(path, "data_dir: ../var/data\nplugin_path: [ plugins ]\n");
	cr_assert_eq(sl_config_load_file(path, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(asprintf(&want, "%s/../var/data", sub), 0);
	cr_assert_str_eq(c.data_dir, want);
	free(want);
	cr_assert_gt(asprintf(&want, "%s/plugins", sub), 0);
	cr_assert_str_eq(c.plugin_path[0], want);
	free(want);
	cr_assert_str_eq(c.source, path);
	sl_config_free(&c);

	/* Messages carry the file's name as given. */
	write_file(path, "topics:\n  - name: a\n    partitions: lots\n");
	cr_assert_eq(sl_config_load_file(path, &c, err, sizeof(err)), -SL_ECONFIG);
	cr_assert_gt(asprintf(&want,
	                      "%s:3: topics[0].partitions: expected an integer 1..4096, got 'lots'",
	                      path),
	             0);
	cr_assert_str_eq(err, want);
	free(want);

	unlink(path);
	rmdir(sub);
	rmdir(dir);
	free(path);
	free(sub);
	free(dir);
}

Test(config, missing_file_is_an_errno_with_a_message)
{
	struct sl_config c;
	char err[512];

	cr_assert_eq(sl_config_load_file("/nonexistent/sluice.yaml", &c, err, sizeof(err)),
	             -ENOENT);
	cr_assert_not_null(strstr(err, "/nonexistent/sluice.yaml: cannot open"), "%s", err);
	cr_assert_null(c.data_dir);
}

Test(config, default_plugin_path_is_beside_the_executable_folder)
{
	char *dir = make_tmpdir(), *bin, *exe, *want;
	struct sl_config c;

	cr_assert_gt(asprintf(&bin, "%s/bin", dir), 0);
	cr_assert_eq(mkdir(bin, 0700), 0);
	cr_assert_gt(asprintf(&exe, "%s/sluiced", bin), 0);
	write_file(exe, "");
	cr_assert_eq(sl_config_default(&c), 0);
	cr_assert_eq(c.n_plugin_path, 0);
	cr_assert_eq(sl_config_resolve_plugin_path(&c, exe), 0);
	cr_assert_eq(c.n_plugin_path, 1);
	cr_assert_gt(asprintf(&want, "%s/plugins", dir), 0);
	cr_assert_str_eq(c.plugin_path[0], want);
	sl_config_free(&c);

	/* Without a path: this process's executable (build/bin/test_config). */
	cr_assert_eq(sl_config_default(&c), 0);
	cr_assert_eq(sl_config_resolve_plugin_path(&c, NULL), 0);
	cr_assert_eq(c.n_plugin_path, 1);
	cr_assert_not_null(strstr(c.plugin_path[0], "/plugins"));
	cr_assert_eq(sl_config_resolve_plugin_path(&c, "/does/not/exist"), 0); /* already set */
	sl_config_free(&c);

	cr_assert_eq(sl_config_default(&c), 0);
	cr_assert_eq(sl_config_resolve_plugin_path(&c, "/does/not/exist"), -ENOENT);
	sl_config_free(&c);

	unlink(exe);
	rmdir(bin);
	rmdir(dir);
	free(want);
	free(exe);
	free(bin);
	free(dir);
}

/* ---- units ----------------------------------------------------------------------- */

Test(config, sizes)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
	    {"0", 0},
	    {"4096", 4096},
	    {"1B", 1},
	    {"64KiB", 64ull << 10},
	    {"512MiB", 512ull << 20},
	    {"10GiB", 10ull << 30},
	    {"2TiB", 2ull << 40},
	    {"1KB", 1000},
	    {"1MB", 1000000},
	    {"3GB", 3000000000ull},
	    {"1TB", 1000000000000ull},
	    {"10 GiB", 10ull << 30},
	    {"18446744073709551615", UINT64_MAX},
	    {"16777215TiB", 16777215ull << 40},
	};
	static const struct {
		const char *s;
		int rc;
	} bad[] = {
	    {"", -EINVAL},
	    {"abc", -EINVAL},
	    {"-1", -EINVAL},
	    {"-5MiB", -EINVAL},
	    {"1.5GiB", -EINVAL},
	    {"10gib", -EINVAL},
	    {"10 ", -EINVAL},
	    {" 10", -EINVAL},
	    {"10XB", -EINVAL},
	    {"MiB", -EINVAL},
	    {"+5", -EINVAL},
	    {"0x10", -EINVAL},
	    {"16777216TiB", -ERANGE},
	    {"18446744073709551616", -ERANGE},
	    {"99999999999999999999999MiB", -ERANGE},
	};
	uint64_t v;

	for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
		cr_assert_eq(sl_config_parse_size(ok[i].s, &v), 0, "'%s'", ok[i].s);
		cr_assert_eq(v, ok[i].v, "'%s'", ok[i].s);
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
		cr_assert_eq(sl_config_parse_size(bad[i].s, &v), bad[i].rc, "'%s'", bad[i].s);
}

Test(config, durations)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
	    {"0", 0},
	    {"7ns", 7},
	    {"250us", 250000},
	    {"250\xc2\xb5s", 250000},
	    {"10ms", 10000000},
	    {"5s", 5000000000ull},
	    {"2m", 120000000000ull},
	    {"1h", 3600000000000ull},
	    {"7d", 604800000000000ull},
	    {"0s", 0},
	    {"5 s", 5000000000ull},
	    {"213503d", 213503ull * 86400 * 1000000000},
	};
	static const struct {
		const char *s;
		int rc;
	} bad[] = {
	    {"", -EINVAL},
	    {"5", -EINVAL},
	    {"-5s", -EINVAL},
	    {"1.5s", -EINVAL},
	    {"5sec", -EINVAL},
	    {"s", -EINVAL},
	    {"5S", -EINVAL},
	    {"1w", -EINVAL},
	    {"213504d", -ERANGE}, /* past 2^64 ns, about 584 years */
	    {"99999999999999999999s", -ERANGE},
	};
	uint64_t v;

	for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
		cr_assert_eq(sl_config_parse_duration(ok[i].s, &v), 0, "'%s'", ok[i].s);
		cr_assert_eq(v, ok[i].v, "'%s'", ok[i].s);
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
		cr_assert_eq(sl_config_parse_duration(bad[i].s, &v), bad[i].rc, "'%s'", bad[i].s);
}

Test(config, integers)
{
	uint64_t v;

	cr_assert_eq(sl_config_parse_u64("0", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(sl_config_parse_u64("18446744073709551615", &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(sl_config_parse_u64("18446744073709551616", &v), -ERANGE);
	cr_assert_eq(sl_config_parse_u64("-1", &v), -EINVAL);
	cr_assert_eq(sl_config_parse_u64("1k", &v), -EINVAL);
	cr_assert_eq(sl_config_parse_u64("", &v), -EINVAL);
	cr_assert_eq(sl_config_parse_u64("99999999999999999999x", &v), -EINVAL);
}

Test(config, addresses)
{
	static const struct {
		const char *s, *host;
		uint16_t port;
	} ok[] = {
	    {"127.0.0.1:7400", "127.0.0.1", 7400},
	    {"0.0.0.0:0", "0.0.0.0", 0},
	    {"[::1]:7480", "::1", 7480},
	    {"[::]:65535", "::", 65535},
	    {"[fe80::1:2]:80", "fe80::1:2", 80},
	    {"localhost:80", "localhost", 80},
	    {"db-1.example.com:5432", "db-1.example.com", 5432},
	    {"a.b9:1", "a.b9", 1},
	};
	static const char *const bad[] = {
	    "localhost",  "127.0.0.1",    ":7400",        "127.0.0.1:", "127.0.0.1:65536",
	    "1.2.3.4:-1", "1.2.3.4:http", "::1:80",       "[::1]",      "[::1:80",
	    "[]:80",      "[1.2.3.4]:80", "999.1.1.1:80", "1.2.3:80",   "host_name:80",
	    "-host:80",   "host-:80",     "a..b:80",      "a b:80",     "[::1]x:80",
	    "[zz::1]:80", "host:80 ",
	};
	char *host;
	uint16_t port;

	for (size_t i = 0; i < SL_ARRAY_LEN(ok); i++) {
		cr_assert_eq(sl_config_parse_addr(ok[i].s, &host, &port), 0, "'%s'", ok[i].s);
		cr_assert_str_eq(host, ok[i].host);
		cr_assert_eq(port, ok[i].port);
		free(host);
	}
	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
		cr_assert_eq(sl_config_parse_addr(bad[i], &host, &port), -EINVAL, "'%s'", bad[i]);
		cr_assert_null(host);
	}
}

Test(config, cores_auto_or_positive)
{
	struct sl_config c;

	load("cores: auto\n", NULL, &c);
	cr_assert_eq(c.cores, 0);
	sl_config_free(&c);
	load("cores: 1\n", NULL, &c);
	cr_assert_eq(c.cores, 1);
	sl_config_free(&c);
	load("cores: 1024\n", NULL, &c);
	cr_assert_eq(c.cores, 1024);
	sl_config_free(&c);
	expect_error_in("cores: 0\n",
	                "<string>:1: cores: expected auto or an integer 1..1024, got '0'", true);
	expect_error("cores: -2\n", "cores: expected auto or an integer 1..1024, got '-2'");
	expect_error("cores: 1025\n", "got '1025'");
	expect_error("cores: many\n", "got 'many'");
	expect_error("cores: 99999999999999999999999\n", "cores: expected auto or an integer");
}

Test(config, unit_errors_name_key_and_line)
{
	expect_error_in("limits:\n  memory_budget: lots\n",
	                "<string>:2: limits.memory_budget: expected a size like 512MiB, 64KiB, 1MB "
	                "or a byte count, got 'lots'",
	                true);
	expect_error_in("limits:\n  memory_budget: -5MiB\n",
	                "<string>:2: limits.memory_budget: a size cannot be negative, got '-5MiB'",
	                true);
	expect_error_in("limits:\n  memory_budget: 99999999999TiB\n",
	                "<string>:2: limits.memory_budget: a size '99999999999TiB' does not fit in "
	                "64 bits",
	                true);
	expect_error("limits: { memory_budget: 1KiB }\n",
	             "limits.memory_budget: expected a size from 1MiB to");
	expect_error("limits: { max_frame_bytes: 2GiB }\n",
	             "limits.max_frame_bytes: expected a size from 64 to 1GiB, got '2GiB'");
	expect_error(
	    "limits: { max_frame_bytes: 2MiB, memory_budget: 1MiB }\n",
	    "<string>:1: limits: max_frame_bytes (2MiB) is larger than memory_budget (1MiB)");
	expect_error("limits: { max_connections: 0 }\n",
	             "limits.max_connections: expected an integer 1..16777216, got '0'");
	expect_error_in("limits:\n  handshake_timeout: 10\n",
	                "<string>:2: limits.handshake_timeout: expected a duration like 250us, "
	                "10ms, 5s, 1h or 7d, got '10'",
	                true);
	expect_error("limits:\n  idle_timeout: -1s\n",
	             "<string>:2: limits.idle_timeout: a duration cannot be negative, got '-1s'");
	expect_error("limits:\n  idle_timeout: 99999999999999d\n",
	             "limits.idle_timeout: a duration '99999999999999d' does not fit in 64 bits");
	expect_error("limits: { handshake_timeout: 0 }\n",
	             "limits.handshake_timeout: expected a duration of at least 1ms, got '0'");
	expect_error("topics:\n- name: a\n  retention: { bytes: 1 gigabyte }\n",
	             "<string>:3: topics[0].retention.bytes: expected a size like");
	expect_error("topics:\n- name: a\n  retention:\n    age: 7days\n",
	             "<string>:4: topics[0].retention.age: expected a duration like");
	expect_error("topics:\n- name: a\n  segment_bytes: 1KiB\n",
	             "<string>:3: topics[0].segment_bytes: expected a size from 4KiB to 1GiB, got "
	             "'1KiB'");
	expect_error("topics:\n- name: a\n  durability: interval:abc\n",
	             "<string>:3: topics[0].durability: expected a duration like 250us");
	expect_error("topics:\n- name: a\n  durability: interval:-5ms\n",
	             "topics[0].durability: a duration cannot be negative");
	expect_error("topics:\n- name: a\n  durability: interval:0\n",
	             "topics[0].durability: expected a duration of at least 1us");
	expect_error("topics:\n- name: a\n  durability: sometimes\n",
	             "<string>:3: topics[0].durability: expected fsync, interval:DURATION (like "
	             "interval:10ms) or none, got 'sometimes'");
}

/* ---- errors ------------------------------------------------------------------------ */

Test(config, value_errors_name_key_path_and_line)
{
	expect_error_in("topics:\n  - name: events\n    partitions: abc\n",
	                "<string>:3: topics[0].partitions: expected an integer 1..4096, got 'abc'",
	                true);
	expect_error("topics:\n  - name: a\n  - name: b\n    partitions: 0\n",
	             "<string>:4: topics[1].partitions: expected an integer 1..4096, got '0'");
	expect_error("topics:\n  - { name: a, partitions: 4097 }\n",
	             "<string>:2: topics[0].partitions: expected an integer 1..4096, got '4097'");
	expect_error("topics:\n  - { name: a, partitions: -8 }\n", "got '-8'");
	expect_error("topics:\n  - { name: a, partitioner: modulo }\n",
	             "<string>:2: topics[0].partitioner: expected hash, range, consistent, jump "
	             "or directory, got 'modulo'");
	expect_error("topics:\n  - { name: a, overload: sample:0 }\n",
	             "topics[0].overload: expected block, drop, sample:RATE (0 < RATE <= 1, like "
	             "sample:0.1) or reject, got 'sample:0'");
	expect_error("topics:\n  - { name: a, overload: sample:1.5 }\n", "got 'sample:1.5'");
	expect_error("topics:\n  - { name: a, overload: sample:1e-2 }\n", "got 'sample:1e-2'");
	expect_error("topics:\n  - { name: a, overload: sample:nan }\n", "got 'sample:nan'");
	expect_error("topics:\n  - { name: a, overload: 'sample:' }\n",
	             "topics[0].overload: expected block");
	expect_error("topics:\n  - { name: a, cleanup: shred }\n",
	             "<string>:2: topics[0].cleanup: expected delete or compact, got 'shred'");
	expect_error("topics:\n  - { name: 'a b' }\n",
	             "<string>:2: topics[0].name: expected a name of letters, digits");
	expect_error("topics:\n  - { name: ../etc }\n", "topics[0].name: expected a name");
	expect_error("topics:\n  - { name: ~ }\n", "topics[0].name: expected a name");
	expect_error("topics:\n  - { partitions: 3 }\n",
	             "<string>:2: topics[0]: missing key 'name'");
	expect_error("listen: { native: localhost }\n",
	             "<string>:1: listen.native: expected host:port (an IPv4 address, a "
	             "bracketed IPv6 address or a hostname, and a port 0..65535), got 'localhost'");
	expect_error("listen:\n  http: '::1:80'\n", "<string>:2: listen.http: expected host:port");
	expect_error("data_dir: ''\n", "<string>:1: data_dir: expected a non-empty path, got ''");
	expect_error("data_dir:\n", "<string>:1: data_dir: expected a path, got nothing");
	expect_error("data_dir: [a]\n", "data_dir: expected a path, got a sequence");
	expect_error("plugin_path: [ a, { b: c } ]\n",
	             "<string>:1: plugin_path[1]: expected a path, got a map");
	expect_error("pipelines:\n  - { name: p, from: events }\n",
	             "pipelines[0]: missing key 'to'");
	expect_error("projections:\n  - { name: p, from: events }\n",
	             "projections[0]: missing key 'plugin'");
	expect_error(
	    "topics: [ { name: a } ]\nprojections:\n  - { name: p, plugin: 'x/y', from: a }\n",
	    "<string>:3: projections[0].plugin: expected a name");
	expect_error("topics: [ { name: a } ]\npipelines:\n"
	             "  - { name: p, from: a, to: b, transforms: [ { args: {} } ] }\n",
	             "<string>:3: pipelines[0].transforms[0]: missing key 'plugin'");
	expect_error("topics: [ { name: a } ]\npipelines:\n"
	             "  - { name: p, from: a, to: b, transforms: [ { plugin: f, args: [1] } ] }\n",
	             "<string>:3: pipelines[0].transforms[0].args: expected a map, got a sequence");
	expect_error(
	    "topics: [ { name: a } ]\nsinks:\n  - { name: s, plugin: j, from: a, args: x }\n",
	    "<string>:3: sinks[0].args: expected a map, got 'x'");
}

Test(config, unknown_keys_are_errors)
{
	expect_error_in("topics:\n  - name: events\n    partitons: 8\n",
	                "<string>:3: topics[0]: unknown key 'partitons' (did you mean "
	                "'partitions'?)",
	                true);
	expect_error_in("data_dri: x\n",
	                "<string>:1: unknown key 'data_dri' (did you mean 'data_dir'?)", true);
	expect_error("cores: 1\nmystery: 1\n",
	             "<string>:2: unknown key 'mystery' (expected one of: data_dir, cores, listen, "
	             "limits, plugin_path, topics, auto_create_topics, pipelines, projections, "
	             "sinks, auth, node, "
	             "cluster)");
	expect_error("listen: { native: 127.0.0.1:1, admin: 127.0.0.1:2 }\n",
	             "<string>:1: listen: unknown key 'admin'");
	expect_error("limits:\n  max_conections: 5\n",
	             "<string>:2: limits: unknown key 'max_conections' (did you mean "
	             "'max_connections'?)");
	expect_error("topics:\n- name: a\n  retention: { size: 1 }\n",
	             "<string>:3: topics[0].retention: unknown key 'size'");
	expect_error(
	    "topics: [ { name: a } ]\npipelines:\n  - { name: p, from: a, to: b, "
	    "transform: [] }\n",
	    "<string>:3: pipelines[0]: unknown key 'transform' (did you mean 'transforms'?)");
	expect_error(
	    "topics: [ { name: a } ]\nsinks:\n  - { name: s, plugin: j, from: a, arg: {} }\n",
	    "<string>:3: sinks[0]: unknown key 'arg' (did you mean 'args'?)");
	expect_error("topics: [ { name: a } ]\nprojections:\n  - { name: s, plugin: j, from: a,\n"
	             "      frm: a }\n",
	             "<string>:4: projections[0]: unknown key 'frm' (did you mean 'from'?)");
	/* A partitioner takes only its own keys. */
	expect_error("topics:\n- { name: a, partitioner_args: { anything: 1 } }\n",
	             "<string>:2: topics[0].partitioner_args: topic 'a': partitioner hash takes no "
	             "key 'anything' (it takes none)");
	expect_error(
	    "topics:\n- { name: a, partitioner: range, partitioner_args: { split: [a] } "
	    "}\n",
	    "<string>:2: topics[0].partitioner_args: topic 'a': partitioner range takes no "
	    "key 'split' (it takes: splits)");
	/* Plugins' free-form maps accept any key. */
	struct sl_config c;

	load("topics: [ { name: a } ]\nsinks:\n  - { name: s, plugin: j, from: a, args: { "
	     "anything: 1, goes: [2] } }\n",
	     NULL, &c);
	sl_config_free(&c);
}

Test(config, duplicates_are_errors)
{
	expect_error_in("cores: 1\ncores: 2\n",
	                "<string>:2: duplicate key 'cores' (first at line 1)", true);
	expect_error("limits:\n  max_connections: 1\n  max_connections: 2\n",
	             "<string>:3: limits: duplicate key 'max_connections' (first at line 2)");
	expect_error("topics:\n- name: a\n  args_x: 1\n  name: b\n",
	             "<string>:4: topics[0]: duplicate key 'name' (first at line 2)");
	expect_error("topics:\n- name: a\n  partitioner_args: { k: 1, k: 2 }\n",
	             "<string>:3: topics[0].partitioner_args: duplicate key 'k'");
	expect_error("topics:\n  - name: events\n  - name: other\n  - name: events\n",
	             "<string>:4: topics[2].name: duplicate topic name 'events' (first at line 2)");
	expect_error(
	    "topics: [ { name: a } ]\npipelines:\n  - { name: p, from: a, to: b }\n"
	    "  - { name: p, from: a, to: c }\n",
	    "<string>:4: pipelines[1].name: duplicate pipeline name 'p' (first at line 3)");
	expect_error(
	    "topics: [ { name: a } ]\nprojections:\n  - { name: p, plugin: x, from: a }\n"
	    "  - { name: p, plugin: y, from: a }\n",
	    "<string>:4: projections[1].name: duplicate projection name 'p' (first at line "
	    "3)");
	expect_error("topics: [ { name: a } ]\nsinks:\n  - { name: s, plugin: x, from: a }\n"
	             "  - { name: s, plugin: y, from: a }\n",
	             "<string>:4: sinks[1].name: duplicate sink name 's' (first at line 3)");
	/* A projection and a sink may share a name: different namespaces. */
	struct sl_config c;

	load("topics: [ { name: a } ]\nprojections: [ { name: x, plugin: p, from: a } ]\n"
	     "sinks: [ { name: x, plugin: p, from: a } ]\n",
	     NULL, &c);
	sl_config_free(&c);
}

/* Issue 22: a `from` no topic of the file lists waits for a topic made
 * at runtime (SL_CONFIG_TOPIC_LATER); sl_config_each_waiting names each
 * such consumer, which --check-config and sluiced say. */
static void count_waiting(void *arg, const char *kind, const char *name, const char *topic)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 512 - n, "%s %s:%s;", kind, name, topic);
}

Test(config, from_may_name_a_topic_made_later)
{
	struct sl_config c;
	char said[512] = "";
	load("topics: [ { name: events } ]\n"
	     "pipelines:\n"
	     "  - { name: p, from: evnts, to: out }\n"
	     "  - { name: q, from: later, to: events }\n"
	     "projections:\n"
	     "  - { name: counter, plugin: counter, from: orders }\n"
	     "  - { name: c2, plugin: counter, from: events }\n"
	     "sinks:\n  - name: s\n    plugin: jsonl\n    from: nope\n",
	     NULL, &c);
	cr_assert_eq(c.projections[0].from_topic, SL_CONFIG_TOPIC_LATER);
	cr_assert_eq(c.projections[1].from_topic, 0);
	cr_assert_eq(c.sinks[0].from_topic, SL_CONFIG_TOPIC_LATER);
	/* A missing `from` makes no `to` (its settings are unknown): both wait. */
	cr_assert_eq(c.pipelines[0].from_topic, SL_CONFIG_TOPIC_LATER);
	cr_assert_eq(c.pipelines[0].to_topic, SL_CONFIG_TOPIC_LATER);
	cr_assert_eq(c.n_topics, 1, "a topic was made for a waiting pipeline");
	cr_assert_eq(c.pipelines[1].from_topic, SL_CONFIG_TOPIC_LATER);
	cr_assert_eq(c.pipelines[1].to_topic, 0);
	cr_assert_eq(sl_config_each_waiting(&c, count_waiting, said), 4);
	cr_assert_str_eq(said, "projection counter:orders;sink s:nope;pipeline p:evnts;"
	                       "pipeline q:later;");
	sl_config_free(&c);
	/* The default's topics are not inherited by a file: lists are exact,
	 * so this projection waits for `events`. */
	load("projections:\n  - { name: counter, plugin: counter, from: events }\n", NULL, &c);
	cr_assert_eq(c.projections[0].from_topic, SL_CONFIG_TOPIC_LATER);
	sl_config_free(&c);
	/* In cluster mode every topic is in the config: a typo is refused. */
	expect_error("topics: [ { name: events } ]\nprojections:\n"
	             "  - { name: counter, plugin: counter, from: orders }\n"
	             "cluster: { etcd: [ http://127.0.0.1:2379 ] }\n",
	             "no topic named 'orders' (in cluster mode every topic is in the config)");
	/* A cycle through topics made later is refused like any other. */
	expect_error("topics: [ { name: a } ]\npipelines:\n"
	             "  - { name: p1, from: x, to: y }\n  - { name: p2, from: y, to: x }\n",
	             "pipelines form a cycle through topic");
	expect_error("topics: [ { name: a } ]\npipelines:\n  - { name: p, from: x,\n    to: x }\n",
	             "<string>:4: pipelines[0].to: 'x' is also the pipeline's 'from' topic");
}

Test(config, pipeline_topics_are_checked)
{
	expect_error("topics: [ { name: a } ]\npipelines:\n  - { name: p, from: a,\n    to: a }\n",
	             "<string>:4: pipelines[0].to: 'a' is also the pipeline's 'from' topic");
	expect_error("topics: [ { name: a }, { name: b } ]\npipelines:\n"
	             "  - { name: p1, from: a, to: b }\n  - { name: p2, from: b, to: a }\n",
	             "pipelines form a cycle through topic");
	expect_error("topics: [ { name: a }, { name: z } ]\npipelines:\n"
	             "  - { name: p0, from: z, to: a }\n"
	             "  - { name: p1, from: a, to: b }\n  - { name: p2, from: b, to: c }\n"
	             "  - { name: p3, from: c, to: b }\n",
	             "pipelines form a cycle through topic '");
}

Test(config, cycle_error_names_a_topic_on_the_cycle)
{
	struct sl_config c;
	char err[512];
	const char *y = "topics: [ { name: a }, { name: z } ]\npipelines:\n"
	                "  - { name: p0, from: z, to: a }\n"
	                "  - { name: p1, from: a, to: b }\n"
	                "  - { name: p2, from: b, to: c }\n"
	                "  - { name: p3, from: c, to: b }\n"
	                "  - { name: p4, from: c, to: d }\n";

	cr_assert_eq(sl_config_load_string(y, strlen(y), NULL, &c, err, sizeof(err)), -SL_ECONFIG);
	cr_assert(strstr(err, "through topic 'b'") || strstr(err, "through topic 'c'"), "%s", err);
}

Test(config, wrong_node_kinds_are_errors)
{
	expect_error_in("listen: [ 127.0.0.1:7400 ]\n",
	                "<string>:1: listen: expected a map, got a sequence", true);
	expect_error("limits: 5\n", "<string>:1: limits: expected a map, got '5'");
	expect_error("topics: { name: a }\n", "<string>:1: topics: expected a sequence, got a map");
	expect_error("topics: events\n", "<string>:1: topics: expected a sequence, got 'events'");
	expect_error("topics:\n  - events\n",
	             "<string>:2: topics[0]: expected a map (a topic), got 'events'");
	expect_error("pipelines: [ [] ]\n",
	             "pipelines[0]: expected a map (a pipeline), got a sequence");
	expect_error("projections: [ x ]\n", "projections[0]: expected a map (a projection)");
	expect_error("sinks: [ [ ] ]\n", "sinks[0]: expected a map (a sink), got a sequence");
	expect_error("topics:\n- name: a\n  retention: 7d\n",
	             "<string>:3: topics[0].retention: expected a map, got '7d'");
	expect_error("topics:\n- name: a\n  partitioner_args: [1, 2]\n",
	             "<string>:3: topics[0].partitioner_args: expected a map, got a sequence");
	expect_error("topics:\n- name: a\n  partitions: { n: 1 }\n",
	             "<string>:3: topics[0].partitions: expected an integer 1..4096, got a map");
	expect_error("- a\n- b\n",
	             "<string>:1: expected a map of configuration keys, got a sequence");
	expect_error("just words\n",
	             "<string>:1: expected a map of configuration keys, got 'just words'");
}

Test(config, yaml_level_errors)
{
	expect_error_in("cores: 1\nlisten: { native: 127.0.0.1:7400\n",
	                "<string>:3:1: YAML syntax error: did not find expected ',' or '}' (while "
	                "parsing a flow mapping at line 2)",
	                true);
	expect_error("topics:\n  - name: a\n   bad: indentation\n", "<string>:3:");
	expect_error("a: b: c\n",
	             "<string>:1:5: YAML syntax error: mapping values are not allowed");
	expect_error("base: &anchor { native: 127.0.0.1:1 }\nlisten: *anchor\n",
	             "<string>:1: base: anchors and aliases are not supported");
	expect_error("listen: { native: 127.0.0.1:1 }\nlimits: *x\n", "<string>:2:");
	expect_error("cores: 1\n---\ncores: 2\n", "<string>:2: only one YAML document is allowed");
	expect_error("? [a, b]\n: c\n", "<string>:1: keys must be scalars");
	expect_error("data_dir: \"a\\0b\"\n",
	             "<string>:1: data_dir: scalar contains a NUL character");
	expect_error("cores: \xff\n", "<string>:1: YAML syntax error: invalid leading UTF-8 octet");
	expect_error("data_dir: \"\\q\"\n", "YAML syntax error");
}

Test(config, deep_nesting_is_refused_not_overflowed)
{
	size_t depth = 100000;
	char *y = malloc(depth * 2 + 64);
	size_t o = 0;
	struct sl_config c;
	char err[512];

	o += (size_t)sprintf(y, "topics:\n- name: a\n  partitioner_args: { k: ");
	for (size_t i = 0; i < depth; i++)
		y[o++] = '[';
	for (size_t i = 0; i < depth; i++)
		y[o++] = ']';
	y[o++] = '}';
	y[o++] = '\n';
	cr_assert_eq(sl_config_load_string(y, o, NULL, &c, err, sizeof(err)), -SL_ECONFIG);
	cr_assert_not_null(strstr(err, "nested deeper than 64 levels"), "%s", err);
	free(y);
}

Test(config, error_buffer_may_be_small_or_empty)
{
	struct sl_config c;
	char err[8];
	const char *y = "cores: none\n";

	cr_assert_eq(sl_config_load_string(y, strlen(y), NULL, &c, err, sizeof(err)), -SL_ECONFIG);
	cr_assert_eq(strlen(err), sizeof(err) - 1);
	cr_assert_eq(sl_config_load_string(y, strlen(y), NULL, &c, NULL, 0), -SL_ECONFIG);
}

/* ---- the generic tree ------------------------------------------------------------ */

Test(config, args_tree_lookups)
{
	struct sl_config c;
	const struct sl_config_node *a;
	uint64_t v;
	bool b;

	load("topics: [ { name: t } ]\n"
	     "sinks:\n"
	     "  - name: s\n"
	     "    plugin: jsonl\n"
	     "    from: t\n"
	     "    args:\n"
	     "      path: ./x.jsonl\n"
	     "      batch: 64\n"
	     "      max: 1MiB\n"
	     "      flush: 250ms\n"
	     "      sync: yes\n"
	     "      none: ~\n"
	     "      quoted: 'null'\n"
	     "      list: [ 1, two, { three: 3 } ]\n"
	     "      bad: x1\n",
	     NULL, &c);
	a = c.sinks[0].args;
	cr_assert_eq(a->kind, SL_CONFIG_NODE_MAP);
	cr_assert_eq(sl_config_node_len(a), 9);
	cr_assert_str_eq(sl_config_node_str(a, "path", NULL), "./x.jsonl");
	cr_assert_eq(sl_config_node_get(a, "path")->line, 7);
	cr_assert_eq(sl_config_node_u64(a, "batch", 1, &v), 0);
	cr_assert_eq(v, 64);
	cr_assert_eq(sl_config_node_u64(a, "absent", 7, &v), 0);
	cr_assert_eq(v, 7);
	cr_assert_eq(sl_config_node_u64(a, "none", 9, &v), 0);
	cr_assert_eq(v, 9);
	cr_assert_eq(sl_config_node_u64(a, "bad", 1, &v), -SL_ECONFIG);
	cr_assert_eq(sl_config_node_u64(a, "list", 1, &v), -SL_ECONFIG);
	cr_assert_eq(sl_config_node_size(a, "max", 0, &v), 0);
	cr_assert_eq(v, 1ull << 20);
	cr_assert_eq(sl_config_node_duration(a, "flush", 0, &v), 0);
	cr_assert_eq(v, 250000000);
	cr_assert_eq(sl_config_node_duration(a, "batch", 0, &v), -SL_ECONFIG);
	cr_assert_eq(sl_config_node_bool(a, "sync", false, &b), 0);
	cr_assert(b);
	cr_assert_eq(sl_config_node_bool(a, "path", false, &b), -SL_ECONFIG);
	cr_assert_eq(sl_config_node_get(a, "none")->kind, SL_CONFIG_NODE_NULL);
	cr_assert_null(sl_config_node_str(a, "none", NULL));
	cr_assert_eq(sl_config_node_get(a, "quoted")->kind, SL_CONFIG_NODE_SCALAR);
	cr_assert_str_eq(sl_config_node_str(a, "quoted", NULL), "null");
	cr_assert_eq(sl_config_node_len(sl_config_node_get(a, "list")), 3);
	cr_assert_str_eq(sl_config_node_at(sl_config_node_get(a, "list"), 1)->value, "two");
	cr_assert_str_eq(
	    sl_config_node_str(sl_config_node_at(sl_config_node_get(a, "list"), 2), "three", "?"),
	    "3");
	cr_assert_null(sl_config_node_at(sl_config_node_get(a, "list"), 3));
	/* Lookups on NULL or the wrong kind find nothing. */
	cr_assert_null(sl_config_node_get(NULL, "x"));
	cr_assert_null(sl_config_node_get(sl_config_node_get(a, "list"), "x"));
	cr_assert_eq(sl_config_node_len(NULL), 0);
	cr_assert_eq(sl_config_node_len(sl_config_node_get(a, "path")), 0);
	cr_assert_str_eq(sl_config_node_str(NULL, "x", "def"), "def");
	sl_config_free(&c);
}

Test(config, tree_dump_parses_back_to_the_same_tree)
{
	static const char y[] = "plain: text\n"
	                        "colon: 'a: b'\n"
	                        "hash: 'a #b'\n"
	                        "dash: '- x'\n"
	                        "empty: ''\n"
	                        "nul: ~\n"
	                        "qnull: 'null'\n"
	                        "multi: \"line1\\nline2\\ttab \\\" \\\\ end\"\n"
	                        "unicode: \"caf\xc3\xa9 \\u2028 \\x85\"\n"
	                        "trail: 'x '\n"
	                        "lead: ' x'\n"
	                        "flow: '[a]'\n"
	                        "addr: '[::1]:80'\n"
	                        "'key with: colon': 1\n"
	                        "'': empty key\n"
	                        "nested: { a: [ 1, [ 2, [] ], {} ], b: { c: { d: e } } }\n"
	                        "seq_of_maps: [ { x: 1, y: 2 }, { z: 3 } ]\n";
	struct sl_config_node *t1, *t2, *t3;
	char err[256], *d1, *d2;

	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &t1, err, sizeof(err)), 0, "%s", err);
	d1 = node_str(t1);
	cr_assert_eq(sl_config_node_parse(d1, strlen(d1), "t", &t2, err, sizeof(err)), 0,
	             "%s\n--- dump:\n%s", err, d1);
	t3 = t2;
	cr_assert_not_null(t3);
	d2 = node_str(t3);
	cr_assert_str_eq(d1, d2);
	cr_assert_str_eq(sl_config_node_str(t3, "multi", NULL), "line1\nline2\ttab \" \\ end");
	cr_assert_str_eq(sl_config_node_str(t3, "colon", NULL), "a: b");
	cr_assert_eq(sl_config_node_get(t3, "nul")->kind, SL_CONFIG_NODE_NULL);
	cr_assert_eq(sl_config_node_get(t3, "qnull")->kind, SL_CONFIG_NODE_SCALAR);
	cr_assert_str_eq(sl_config_node_str(t3, "", NULL), "empty key");
	cr_assert_str_eq(sl_config_node_str(t3, "unicode", NULL),
	                 "caf\xc3\xa9 \xe2\x80\xa8 \xc2\x85");
	free(d1);
	free(d2);
	sl_config_node_free(t1);
	sl_config_node_free(t2);
}

Test(config, long_keys_dump_in_explicit_form)
{
	size_t n = 3000;
	char *y = malloc(n + 32), *d;
	struct sl_config_node *t1, *t2;
	char err[256];

	y[0] = '?';
	y[1] = ' ';
	memset(y + 2, 'k', n);
	strcpy(y + 2 + n, "\n: v\n");
	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &t1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(t1->items[0].key), n);
	d = node_str(t1);
	cr_assert_eq(sl_config_node_parse(d, strlen(d), "t", &t2, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(t2->items[0].key, t1->items[0].key);
	cr_assert_str_eq(t2->items[0].value, "v");
	free(d);
	free(y);
	sl_config_node_free(t1);
	sl_config_node_free(t2);
}

Test(config, node_dup_is_deep)
{
	struct sl_config_node *t, *copy;
	char err[128], *d1, *d2;
	const char *y = "a: [ 1, { b: c } ]\nd: ~\n";

	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &t, err, sizeof(err)), 0);
	cr_assert_eq(sl_config_node_dup(t, &copy), 0);
	cr_assert_neq(copy->items, t->items);
	cr_assert_neq(copy->items[0].items, t->items[0].items);
	d1 = node_str(t);
	d2 = node_str(copy);
	cr_assert_str_eq(d1, d2);
	{
		struct sl_config_node *none = (struct sl_config_node *)1;

		cr_assert_eq(sl_config_node_dup(NULL, &none), 0);
		cr_assert_null(none);
	}
	free(d1);
	free(d2);
	sl_config_node_free(t);
	sl_config_node_free(copy);
}

/* ---- printing the effective configuration ---------------------------------------- */

Test(config, dump_loads_back_to_the_same_configuration)
{
	static const char y[] =
	    "data_dir: /var/lib/sluice\n"
	    "cores: 6\n"
	    "listen: { native: '[::1]:7400', http: localhost:0 }\n"
	    "limits: { max_connections: 7, max_frame_bytes: 65536, memory_budget: 3GB,"
	    " handshake_timeout: 1500ms, idle_timeout: 90s }\n"
	    "plugin_path: [ /opt/a, '/opt/b c' ]\n"
	    "topics:\n"
	    "  - { name: a, partitions: 3, partitioner: directory,"
	    " partitioner_args: { file: ./dir.csv, fallback: jump },"
	    " durability: interval:1500us, overload: sample:0.1, retention: { bytes: 1000, age: "
	    "90m },"
	    " cleanup: compact, segment_bytes: 12345678 }\n"
	    "  - { name: b, overload: sample:0.000001 }\n"
	    "pipelines:\n"
	    "  - { name: p, from: a, to: derived, transforms: [ { plugin: f, args: { k: v, 'odd: "
	    "key': [ x, '' ] } },"
	    " { plugin: g } ] }\n"
	    "  - { name: q, from: derived, to: b }\n"
	    "projections: [ { name: pr, plugin: latest, from: derived, args: { n: 1 } } ]\n"
	    "sinks: [ { name: s, plugin: jsonl, from: b } ]\n";
	struct sl_config c1, c2;
	char *d1, *d2;

	load(y, NULL, &c1);
	d1 = dump_str(&c1);
	load(d1, NULL, &c2);
	d2 = dump_str(&c2);
	cr_assert_str_eq(d1, d2);
	cr_assert_eq(c2.n_topics, 3);
	cr_assert_float_eq(c2.topics[0].sample_rate, 0.1, 0);
	cr_assert_float_eq(c2.topics[1].sample_rate, 0.000001, 0);
	cr_assert_str_eq(c2.listen.native.host, "::1");
	cr_assert_eq(c2.limits.handshake_timeout_ns, 1500000000ull);
	cr_assert_eq(c2.limits.memory_budget, 3000000000ull);
	cr_assert_not_null(strstr(d1, "memory_budget: 3000000000\n"), "%s", d1);
	cr_assert_not_null(strstr(d1, "handshake_timeout: 1500ms\n"), "%s", d1);
	cr_assert_not_null(strstr(d1, "durability: interval:1500us\n"), "%s", d1);
	cr_assert_not_null(strstr(d1, "overload: sample:0.1\n"), "%s", d1);
	cr_assert_not_null(strstr(d1, "age: 90m\n"), "%s", d1);
	cr_assert_not_null(strstr(d1, "native: '[::1]:7400'\n"), "%s", d1);
	free(d1);
	free(d2);
	sl_config_free(&c1);
	sl_config_free(&c2);
}

Test(config, dump_of_default_reads_well)
{
	struct sl_config c;
	char *d;

	cr_assert_eq(sl_config_default(&c), 0);
	d = dump_str(&c);
	cr_assert_not_null(strstr(d, "data_dir: ./sluice-data\ncores: auto\nlisten:\n"
	                             "  native: 127.0.0.1:7400\n  http: 127.0.0.1:7480\n"),
	                   "%s", d);
	cr_assert_not_null(strstr(d, "  memory_budget: 512MiB\n  handshake_timeout: 10s\n"
	                             "  idle_timeout: 5m\n"),
	                   "%s", d);
	cr_assert_not_null(strstr(d, "topics:\n- name: events\n  partitions: 8\n"), "%s", d);
	cr_assert_not_null(strstr(d, "  retention:\n    bytes: 10GiB\n    age: 7d\n"), "%s", d);
	cr_assert_not_null(strstr(d, "pipelines: []\nprojections:\n- name: counter\n"), "%s", d);
	cr_assert_not_null(strstr(d, "sinks: []\n"), "%s", d);
	free(d);
	sl_config_free(&c);
}

Test(config, sink_circuit_defaults_values_and_errors)
{
	struct sl_config c, c2;
	char *d, *d2;

	/* Defaults, then each key alone and both. */
	load("topics: [ { name: a } ]\n"
	     "sinks:\n"
	     "  - { name: s0, plugin: jsonl, from: a }\n"
	     "  - { name: s1, plugin: jsonl, from: a, circuit: { failures: 2 } }\n"
	     "  - { name: s2, plugin: jsonl, from: a, circuit: { cooldown: 250ms } }\n"
	     "  - { name: s3, plugin: jsonl, from: a, circuit: { failures: 9, cooldown: 2m } }\n"
	     "  - { name: s4, plugin: jsonl, from: a, circuit: }\n"
	     "projections: [ { name: p, plugin: counter, from: a } ]\n",
	     NULL, &c);
	cr_assert_eq(c.n_sinks, 5);
	cr_assert_eq(c.sinks[0].circuit_failures, 5);
	cr_assert_eq(c.sinks[0].circuit_cooldown_ns, 1000000000ull);
	cr_assert_eq(c.sinks[1].circuit_failures, 2);
	cr_assert_eq(c.sinks[1].circuit_cooldown_ns, 1000000000ull);
	cr_assert_eq(c.sinks[2].circuit_failures, 5);
	cr_assert_eq(c.sinks[2].circuit_cooldown_ns, 250000000ull);
	cr_assert_eq(c.sinks[3].circuit_failures, 9);
	cr_assert_eq(c.sinks[3].circuit_cooldown_ns, 120000000000ull);
	cr_assert_eq(c.sinks[4].circuit_failures, 5);
	cr_assert_eq(c.projections[0].circuit_failures, 0);
	cr_assert_eq(c.projections[0].circuit_cooldown_ns, 0);
	/* The dump carries them and loads back to the same. */
	d = dump_str(&c);
	cr_assert_not_null(strstr(d, "  circuit:\n    failures: 9\n    cooldown: 2m\n"), "%s", d);
	load(d, NULL, &c2);
	d2 = dump_str(&c2);
	cr_assert_str_eq(d, d2);
	cr_assert_eq(c2.sinks[2].circuit_cooldown_ns, 250000000ull);
	free(d);
	free(d2);
	sl_config_free(&c);
	sl_config_free(&c2);

	expect_error("topics: [ { name: a } ]\nprojections:\n"
	             "  - { name: p, plugin: counter, from: a,\n      circuit: { failures: 1 } }\n",
	             "<string>:4: projections[0].circuit: only sinks take a circuit breaker");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: j, from: a, circuit: { failures: 0 } }\n",
	             "<string>:3: sinks[0].circuit.failures: expected an integer 1..1000000, got "
	             "'0'");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: j, from: a, circuit: { failures: many } }\n",
	             "sinks[0].circuit.failures: expected an integer 1..1000000, got 'many'");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: j, from: a, circuit: { cooldown: 10 } }\n",
	             "sinks[0].circuit.cooldown: expected a duration like");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: j, from: a, circuit: { cooldown: 10us } }\n",
	             "sinks[0].circuit.cooldown: expected a duration of at least 1ms, got '10us'");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: j, from: a, circuit: { failure: 3 } }\n",
	             "<string>:3: sinks[0].circuit: unknown key 'failure' (did you mean "
	             "'failures'?)");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: j, from: a, circuit: 3 }\n",
	             "sinks[0].circuit: expected a map, got '3'");
}

/* ---- the key tables -------------------------------------------------------------- */

static void check_table(const struct sl__section *sec, const char *dump, int depth)
{
	cr_assert_lt(depth, 8);
	for (size_t k = 0; k < sec->n_keys; k++) {
		const struct sl__key *key = &sec->keys[k];
		char want[96];

		cr_assert_not_null(key->doc, "key '%s' has no doc", key->name);
		cr_assert_gt(strlen(key->doc), 8, "key '%s': doc '%s'", key->name, key->doc);
		/* Every key of every table is printed by the dump. */
		snprintf(want, sizeof(want), "%s:", key->name);
		cr_assert_not_null(strstr(dump, want), "dump lacks '%s'\n%s", want, dump);
		if (key->type == SL__T_MAP || key->type == SL__T_SEQ)
			check_table(key->sub, dump, depth + 1);
		if (key->type == SL__T_ENUM) {
			for (size_t i = 0; i < key->n_names; i++)
				cr_assert_not_null(key->names[i], "%s: value %zu has no name",
				                   key->name, i);
		}
	}
}

Test(config, every_key_has_a_doc_and_is_printed)
{
	struct sl_config c;
	char *d;

	load("topics: [ { name: a } ]\n"
	     "pipelines: [ { name: p, from: a, to: b, transforms: [ { plugin: f } ] } ]\n"
	     "projections: [ { name: pr, plugin: counter, from: a } ]\n"
	     "sinks: [ { name: s, plugin: jsonl, from: b } ]\n"
	     "auth: { token_file: /etc/sluice/token }\n"
	     "node: { id: n1 }\n",
	     NULL, &c);
	d = dump_str(&c);
	check_table(&sl__root_section, d, 0);
	free(d);
	sl_config_free(&c);
}

Test(config, bool_rows_read_the_words_plugins_read)
{
	static const struct sl__key row = {"flag", SL__T_BOOL, .off = 0, .doc = "a test flag"};
	static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
	                                                                       "off"};
	char err[256];
	struct sl__ld ld = {.name = "t", .err = err, .errlen = sizeof(err)};
	struct sl_config_node n = {.kind = SL_CONFIG_NODE_SCALAR, .line = 3};
	bool v;

	for (size_t i = 0; i < 3; i++) {
		n.value = (char *)yes[i];
		v = false;
		cr_assert_eq(sl__cfg_key_parse(&ld, &row, &n, "flag", &v), 0);
		cr_assert(v);
		n.value = (char *)no[i];
		cr_assert_eq(sl__cfg_key_parse(&ld, &row, &n, "flag", &v), 0);
		cr_assert_not(v);
	}
	n.value = "maybe";
	cr_assert_eq(sl__cfg_key_parse(&ld, &row, &n, "flag", &v), -SL_ECONFIG);
	cr_assert_str_eq(err, "t:3: flag: expected true or false, got 'maybe'");
}

/* ---- the emitter's choices ------------------------------------------------------- */

/* Dumps a tree, parses the dump, dumps that: the same bytes, and the tree
 * read back is `t`'s. Returns the first dump. */
static char *tree_round_trip(const struct sl_config_node *t, struct sl_config_node **back)
{
	char err[256], *d1, *d2;

	d1 = node_str(t);
	cr_assert_eq(sl_config_node_parse(d1, strlen(d1), "dump", back, err, sizeof(err)), 0,
	             "%s\n--- dump:\n%s", err, d1);
	d2 = node_str(*back);
	cr_assert_str_eq(d1, d2);
	free(d2);
	return d1;
}

Test(config, keys_past_the_simple_key_limit_once_escaped_round_trip)
{
	/* The fuzz finding of the hand-written printer: a key of tabs whose
	 * escaped text (2 bytes a tab) passed libyaml's 1,024-byte limit. */
	size_t lens[] = {100, 127, 128, 129, 500, 511, 512, 513, 1000, 1100};
	const char fill[] = {'\t', 'k', '\x01', '"'};

	for (size_t f = 0; f < sizeof(fill); f++) {
		for (size_t l = 0; l < SL_ARRAY_LEN(lens); l++) {
			struct sl_config_node *t, *back;
			char err[256], *y = malloc(lens[l] * 4 + 32), *d;
			size_t o = 0;

			o += (size_t)sprintf(y, "? \"");
			for (size_t i = 0; i < lens[l]; i++)
				o += (size_t)sprintf(y + o, "\\x%02x", (unsigned char)fill[f]);
			sprintf(y + o, "\"\n: v\n");
			cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &t, err, sizeof(err)),
			             0, "%s", err);
			d = tree_round_trip(t, &back);
			cr_assert_eq(strlen(back->items[0].key), lens[l]);
			cr_assert_str_eq(back->items[0].key, t->items[0].key);
			free(d);
			free(y);
			sl_config_node_free(t);
			sl_config_node_free(back);
		}
	}
}

Test(config, null_words_and_quoted_scalars_keep_their_meaning)
{
	static const char y[] = "a: 'null'\nb: '~'\nc: ''\nd: ~\ne: '123'\nf: 123\n"
	                        "g: [ 'NULL', Null2, '' ]\n";
	struct sl_config_node *t, *back;
	struct sl_config c1, c2;
	char err[256], *d, *d1, *d2;

	cr_assert_eq(sl_config_node_parse(y, strlen(y), "t", &t, err, sizeof(err)), 0, "%s", err);
	d = tree_round_trip(t, &back);
	for (size_t i = 0; i < t->n_items; i++) {
		cr_assert_eq(back->items[i].kind, t->items[i].kind, "%s\n%s", t->items[i].key, d);
		cr_assert_eq(back->items[i].quoted, t->items[i].quoted, "%s\n%s", t->items[i].key,
		             d);
	}
	cr_assert_str_eq(sl_config_node_str(back, "a", NULL), "null");
	cr_assert_str_eq(sl_config_node_str(back, "c", NULL), "");
	cr_assert_eq(sl_config_node_get(back, "d")->kind, SL_CONFIG_NODE_NULL);
	cr_assert(sl_config_node_get(back, "e")->quoted);
	cr_assert_not(sl_config_node_get(back, "f")->quoted);
	free(d);
	sl_config_node_free(t);
	sl_config_node_free(back);

	/* A path that reads as null when plain is quoted in the dump. */
	load("data_dir: 'null'\nplugin_path: [ '~' ]\n", NULL, &c1);
	d1 = dump_str(&c1);
	cr_assert_not_null(strstr(d1, "data_dir: 'null'\n"), "%s", d1);
	load(d1, NULL, &c2);
	cr_assert_str_eq(c2.data_dir, "null");
	cr_assert_str_eq(c2.plugin_path[0], "~");
	d2 = dump_str(&c2);
	cr_assert_str_eq(d1, d2);
	free(d1);
	free(d2);
	sl_config_free(&c1);
	sl_config_free(&c2);
}

Test(config, empty_tree_dumps_to_nothing)
{
	char *d = node_str(NULL);

	cr_assert_str_eq(d, "");
	free(d);
}

/* An address off loopback is a choice made out loud (issue 23). */
Test(config, open_ports_need_auth)
{
	struct sl_config c;

	expect_error("listen: { native: 0.0.0.0:7400 }\n",
	             "listen.native: 0.0.0.0 is not a loopback address and `auth` is not set");
	expect_error("listen: { http: '[::]:7480' }\n",
	             "listen.http: :: is not a loopback address");
	expect_error("listen: { http: 192.168.1.2:7480 }\nauth: { allow_unauthenticated: false }\n",
	             "listen.http: 192.168.1.2 is not a loopback address");
	expect_error("auth: { token: x }\n", "auth: unknown key 'token'");
	load("listen: { native: 127.0.0.9:7400, http: '[::1]:7480' }\n", NULL, &c);
	cr_assert_null(c.auth.token_file);
	sl_config_free(&c);
	load("listen: { native: 0.0.0.0:7400 }\nauth: { allow_unauthenticated: yes }\n", NULL, &c);
	cr_assert(c.auth.allow_unauthenticated);
	sl_config_free(&c);
	load("listen: { native: 0.0.0.0:7400 }\nauth: { token_file: tok }\n", "/etc/sluice", &c);
	cr_assert_str_eq(c.auth.token_file, "/etc/sluice/tok", "relative to the file's folder");
	sl_config_free(&c);
}

/* A projection's snapshot cadence: defaults, parsed values, bounds, printed
 * back; sinks have none. */
Test(config, projection_snapshot_cadence)
{
	struct sl_config c;

	load("topics: [ { name: a } ]\n"
	     "projections:\n"
	     "  - { name: p, plugin: counter, from: a }\n"
	     "  - { name: q, plugin: counter, from: a,"
	     " snapshot: { every_events: 500, every: 2s } }\n",
	     NULL, &c);
	cr_assert_eq(c.projections[0].snapshot_every_events, SL_CONFIG_SNAPSHOT_EVENTS);
	cr_assert_eq(c.projections[0].snapshot_every_ns, SL_CONFIG_SNAPSHOT_NS);
	cr_assert_eq(c.projections[1].snapshot_every_events, 500);
	cr_assert_eq(c.projections[1].snapshot_every_ns, 2000000000ull);
	char *d = dump_str(&c);
	cr_assert_not_null(strstr(d, "every_events: 500"), "%s", d);
	free(d);
	sl_config_free(&c);
	expect_error("topics: [ { name: a } ]\nprojections:\n"
	             "  - { name: p, plugin: counter, from: a, snapshot: { every_events: 0 } }\n",
	             "projections[0].snapshot.every_events: expected an integer");
	expect_error("topics: [ { name: a } ]\nprojections:\n"
	             "  - { name: p, plugin: counter, from: a, snapshot: { every: 10us } }\n",
	             "projections[0].snapshot.every: expected a duration of at least 1ms");
	expect_error("topics: [ { name: a } ]\nsinks:\n"
	             "  - { name: s, plugin: jsonl, from: a, snapshot: { every: 1s } }\n",
	             "sinks[0]: unknown key 'snapshot'");
}

Test(config, cluster_keys_and_replicated_topics)
{
	struct sl_config c;

	load("node: { id: n2 }\n"
	     "cluster: { etcd: [ http://127.0.0.1:2379, http://127.0.0.1:2479 ], name: c1,\n"
	     "           advertise: { native: 10.0.0.5:7400 }, session_ttl: 3s }\n"
	     "auth: { allow_unauthenticated: true }\n"
	     "topics:\n"
	     "  - { name: a, replicas: 3 }\n"
	     "  - { name: b, replicas: 2 }\n"
	     "  - { name: c, replicas: 3, acks: all, min_insync: 3, replica_lag_max: 2s,\n"
	     "      unclean_election: true }\n",
	     NULL, &c);
	cr_assert_str_eq(c.node_id, "n2");
	cr_assert_eq(c.cluster.n_etcd, 2);
	cr_assert_str_eq(c.cluster.etcd[1], "http://127.0.0.1:2479");
	cr_assert_str_eq(c.cluster.name, "c1");
	cr_assert_str_eq(c.cluster.adv_native.host, "10.0.0.5");
	cr_assert_eq(c.cluster.adv_native.port, 7400);
	cr_assert_null(c.cluster.adv_http.host);
	cr_assert_eq(c.cluster.session_ttl_ns, 3000000000ull);
	/* Defaults follow the replica count. */
	cr_assert_eq(c.topics[0].acks, SL_CONFIG_ACKS_QUORUM);
	cr_assert_eq(c.topics[0].min_insync, 2);
	cr_assert_eq(c.topics[1].acks, SL_CONFIG_ACKS_LEADER);
	cr_assert_eq(c.topics[1].min_insync, 2);
	cr_assert_eq(c.topics[2].acks, SL_CONFIG_ACKS_ALL);
	cr_assert_eq(c.topics[2].min_insync, 3);
	cr_assert_eq(c.topics[2].replica_lag_max_ns, 2000000000ull);
	cr_assert(c.topics[2].unclean_election);
	sl_config_free(&c);

	/* The default is a node alone. */
	cr_assert_eq(sl_config_default(&c), 0);
	cr_assert_eq(c.cluster.n_etcd, 0);
	cr_assert_str_eq(c.cluster.name, "sluice");
	cr_assert_eq(c.cluster.session_ttl_ns, 5000000000ull);
	cr_assert_eq(c.topics[0].replicas, 1);
	cr_assert_eq(c.topics[0].acks, SL_CONFIG_ACKS_LEADER);
	sl_config_free(&c);

	expect_error("topics: [ { name: a, replicas: 3 } ]\n",
	             "<string>:1: topics: topic 'a' asks for 3 replicas, but this node is not in a "
	             "cluster (set cluster.etcd)");
	expect_error("cluster: { etcd: [ http://e:1 ] }\n"
	             "topics: [ { name: a, replicas: 2, min_insync: 3 } ]\n",
	             "<string>:2: topics[0]: min_insync (3) is larger than replicas (2)");
	expect_error("cluster: { etcd: [ https://e:1 ] }\n",
	             "<string>:1: cluster: etcd endpoint 'https://e:1': expected http://host:port "
	             "(https is not supported)");
	expect_error("topics: [ { name: a, replicas: 8 } ]\n",
	             "<string>:1: topics[0].replicas: expected an integer 1..7, got '8'");
	expect_error("topics: [ { name: a, acks: some } ]\n",
	             "<string>:1: topics[0].acks: expected leader, quorum or all, got 'some'");
	expect_error("cluster: { session_ttl: 1s }\n",
	             "<string>:1: cluster.session_ttl: expected a duration of at least 2s, got "
	             "'1s'");
	expect_error("node: { id: 'a b' }\n",
	             "<string>:1: node.id: expected a name of letters, digits, '.', '_' and '-' "
	             "(1..128 characters, not starting with '.' or '-'), got 'a b'");
}
