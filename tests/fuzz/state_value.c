/*
 * Fuzz target: a host-state projection plugin (plugin ABI 1.2) reading a
 * stored value that may not be one it wrote: a store written by another
 * version of the plugin, or damaged past RocksDB's own checksums. The
 * values a plugin keeps are files read back, so its readers of them are
 * parsers of outside input. Built once per projection plugin (SL_FUZZ_PLUGIN_FILE,
 * compiled with coverage: tests/fuzz/CMakeLists.txt).
 *
 * Input: byte 0 picks the key the value is stored under (the aggregate "k",
 * the type "k", or the total: the keys counter, latest and balance use),
 * the rest is the value. The value goes into a partition's writer view
 * (the cache only: nothing is committed, so no disk I/O per input); then
 * the plugin answers queries over that view (query_state, FULL and PART)
 * and applies an event of the aggregate "k" and type "k" on top of it.
 *
 * Checked: no crash, no leak; queries answer 0 or a negative errno; apply
 * returns 0 (a value it cannot read is replaced, never trusted) or a
 * negative errno; a query after the apply answers 0 for the aggregate.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "plugin/plugin.h"
#include "proto/proto.h"
#include "state/state.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "state_value.c:%d: check failed: %s\n", __LINE__, #x);     \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static struct sl_plugin *plugin;
static struct sl_state_db *db;
static char dir[64];

static void cleanup(void)
{
	sl_state_db_close(db);
	(void)sl_rmtree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512], path[128];

	(void)argc;
	(void)argv;
	if (sl_plugin_open(SL_FUZZ_PLUGIN_FILE, SL_PLUGIN_PROJECTION, &plugin, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "fuzz_state: %s\n", err);
		abort();
	}
	CHECK(sl_plugin_host_state(plugin));
	snprintf(dir, sizeof(dir), "/tmp/sluice-fuzz-state-XXXXXX");
	CHECK(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	struct sl_state_db_opts o = {.path = path};
	CHECK(sl_state_db_open(&o, &db, err, sizeof(err)) == 0);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const stored[] = {"ak", "tk", "#"};
	static const char *const asked[] = {"k", "type:k", "total"};
	const struct sl_projection_ops *ops = &plugin->ops.projection;
	struct sl_state_part *p;
	struct sl_state_mark m;
	struct sl_plugin_inst *in;
	struct sl_plugin_out out = {0};
	char err[256];

	if (!size)
		return 0;
	uint32_t which = data[0] % 3;
	struct sl_state_part_opts po = {.partition = 0};
	CHECK(sl_state_part_open(db, &po, &p, &m, err, sizeof(err)) == 0);
	struct sl_state *st = sl_state_part_view(p);
	struct sl_plugin_inst_opts io = {
	    .name = "fuzz", .partition = 0, .n_partitions = 1, .topic = "events", .state = st};
	CHECK(sl_plugin_inst_create(plugin, &io, &in, err, sizeof(err)) == 0);
	CHECK(sl_state_put(st, stored[which], strlen(stored[which]), data + 1, size - 1) == 0);

	int ret = ops->query_state(in->inst, st, asked[which], (uint32_t)strlen(asked[which]),
	                           SL_PLUGIN_QUERY_FULL, &out);
	CHECK(ret <= 0);
	out.buf.len = 0;
	ret = ops->query_state(in->inst, st, asked[which], (uint32_t)strlen(asked[which]),
	                       SL_PLUGIN_QUERY_PART, &out);
	CHECK(ret <= 0);

	/* An event of aggregate "k", type "k", on top of whatever is stored. */
	uint8_t ev[256];
	struct sl_event_view v = {.type = "k",
	                          .type_len = 1,
	                          .aggregate = "k",
	                          .aggregate_len = 1,
	                          .timestamp_ms = 1,
	                          .data = (const uint8_t *)"{\"amount\":5}",
	                          .data_len = 12};
	int len = sl_event_encode(ev, sizeof(ev), &v, NULL, 0);
	CHECK(len > 0);
	struct sl_plugin_event pe;
	CHECK(sl_plugin_event_fill(&pe, ev, (uint32_t)len, 0, 7, 1) == 0);
	struct sl_plugin_emitter em = {.default_topic = -1};
	ret = ops->apply(in->inst, &pe, 1, &em);
	CHECK(ret <= 0);
	if (ret == 0) {
		out.buf.len = 0;
		CHECK(ops->query_state(in->inst, st, "k", 1, SL_PLUGIN_QUERY_FULL, &out) == 0);
	}
	sl_plugin_emitter_release(&em);
	sl_plugin_out_release(&out);
	sl_plugin_inst_destroy(in);
	sl_state_part_close(p); /* nothing committed: the store stays empty */
	return 0;
}
