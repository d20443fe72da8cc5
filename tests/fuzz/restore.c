/*
 * Fuzz target: a projection plugin's restore() given bytes that may not be
 * one of its snapshots (a damaged file passes the store's CRC only by
 * accident, but a plugin from another version, or a bug, hands restore
 * anything). Built once per projection plugin: SL_FUZZ_PLUGIN names it, and
 * the copy loaded is SL_FUZZ_PLUGIN_FILE, built with coverage for libFuzzer
 * (tests/fuzz/CMakeLists.txt), loaded before fuzzing starts so that its
 * counters are registered.
 *
 * Checked: restore never crashes or leaks; it answers 0 or -EINVAL (the
 * contract in sluice/plugin.h: -EINVAL makes the host try an older
 * snapshot); after a success the model is canonical (its snapshot, restored
 * into a fresh instance and snapshotted again, gives the same bytes) and
 * answers a query; after a refusal what the instance holds can still be
 * snapshotted and destroyed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "plugin/plugin.h"

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "restore.c:%d: check failed: %s\n", __LINE__, #x);         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static struct sl_plugin *plugin;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	if (sl_plugin_open(SL_FUZZ_PLUGIN_FILE, SL_PLUGIN_PROJECTION, &plugin, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "fuzz_restore: %s\n", err);
		abort();
	}
	return 0;
}

static struct sl_plugin_inst *mk(void)
{
	struct sl_plugin_inst_opts o = {
	    .name = "fuzz", .partition = 0, .n_partitions = 1, .topic = "events"};
	struct sl_plugin_inst *in = NULL;
	char err[256];

	CHECK(sl_plugin_inst_create(plugin, &o, &in, err, sizeof(err)) == 0);
	return in;
}

static void snap(struct sl_plugin_inst *in, struct sl_plugin_out *out)
{
	out->buf.len = 0;
	CHECK(plugin->ops.projection.snapshot(in->inst, out) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct sl_projection_ops *ops = &plugin->ops.projection;
	struct sl_plugin_out s1 = {0}, s2 = {0}, q = {0};
	struct sl_plugin_inst *a = mk(), *b = mk();
	int ret = ops->restore(a->inst, data, size);

	CHECK(ret == 0 || ret == -EINVAL);
	/* A refused restore may leave anything in the instance (the host
	 * creates a fresh one), but what it left must be memory-safe to
	 * snapshot and destroy. */
	snap(a, &s1);
	if (ret == 0) {
		/* Canonical: the model's snapshot restores into a fresh instance
		 * whose snapshot is the same bytes. */
		CHECK(ops->restore(b->inst, (const uint8_t *)s1.buf.data, s1.buf.len) == 0);
		snap(b, &s2);
		CHECK(s1.buf.len == s2.buf.len && !memcmp(s1.buf.data, s2.buf.data, s1.buf.len));
		/* A key taken from the input: present or absent, never a crash. */
		size_t klen = size < 16 ? size : 16;
		int qr = ops->query(a->inst, (const char *)data, (uint32_t)klen,
		                    SL_PLUGIN_QUERY_FULL, &q);
		CHECK(qr == 0 || qr == -ENOENT || qr == -EINVAL);
	}
	sl_plugin_out_release(&s1);
	sl_plugin_out_release(&s2);
	sl_plugin_out_release(&q);
	sl_plugin_inst_destroy(a);
	sl_plugin_inst_destroy(b);
	return 0;
}
