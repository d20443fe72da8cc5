/*
 * Helpers shared by the plugin and projection tests (tests/unit/plugin.c,
 * project.c, plugins_*.c): encoded events, plugin loading from the build's
 * plugins folder, and partition logs written through a real io_uring.
 */
#ifndef SL_TEST_PLUGINS_UTIL_H
#define SL_TEST_PLUGINS_UTIL_H

#include <criterion/criterion.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"
#include "plugin/plugin.h"
#include "proto/proto.h"

/* Encodes an event; id derived from `n` (never absent). Returns its length. */
static inline uint32_t tu_event(uint8_t *buf, size_t cap, const char *type, const char *agg,
                                const char *data, uint64_t n)
{
	uint8_t id[16];
	memcpy(id, &n, 8);
	memset(id + 8, 0x5a, 8);
	struct sl_event_view v = {
	    .id = id,
	    .type = type,
	    .type_len = strlen(type),
	    .aggregate = agg,
	    .aggregate_len = strlen(agg),
	    .timestamp_ms = 1700000000000 + (int64_t)n,
	    .data = (const uint8_t *)data,
	    .data_len = data ? strlen(data) : 0,
	};
	int len = sl_event_encode(buf, cap, &v, NULL, 0);
	cr_assert_gt(len, 0);
	return (uint32_t)len;
}

/* A plugin event over bytes encoded by tu_event (which must outlive it). */
static inline void tu_fill(struct sl_plugin_event *pe, const uint8_t *bytes, uint32_t len,
                           uint32_t partition, uint64_t offset)
{
	cr_assert_eq(sl_plugin_event_fill(pe, bytes, len, partition, offset, 42), 0);
}

static inline struct sl_plugin *tu_load_from(const char *dir, const char *name,
                                             enum sl_plugin_kind kind)
{
	const char *path[] = {dir};
	struct sl_plugin *p;
	char err[512];
	int ret = sl_plugin_load(path, 1, name, kind, &p, err, sizeof(err));
	cr_assert_eq(ret, 0, "load %s: %s", name, err);
	return p;
}

static inline struct sl_plugin *tu_load(const char *name, enum sl_plugin_kind kind)
{
	const char *path[] = {SL_PLUGIN_DIR};
	struct sl_plugin *p;
	char err[512];
	int ret = sl_plugin_load(path, 1, name, kind, &p, err, sizeof(err));
	cr_assert_eq(ret, 0, "load %s: %s", name, err);
	return p;
}

static inline struct sl_plugin_inst *tu_inst(struct sl_plugin *p, uint32_t partition,
                                             const struct sl_config_node *args)
{
	struct sl_plugin_inst_opts o = {
	    .partition = partition, .n_partitions = 4, .args = args, .topic = "events"};
	struct sl_plugin_inst *in;
	char err[512];
	cr_assert_eq(sl_plugin_inst_create(p, &o, &in, err, sizeof(err)), 0, "%s", err);
	return in;
}

static inline char *tu_tmpdir(const char *tag)
{
	char *d = malloc(128);
	snprintf(d, 128, "/tmp/sluice-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(d));
	return d;
}

static inline void tu_rmdir(char *d)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	cr_assert_eq(system(cmd), 0);
	free(d);
}

/* ---- logs ---------------------------------------------------------------- */

struct tu_log {
	struct sl_log *log;
	struct io_uring ring;
	uint64_t seq;
};

static inline void tu_log_open(struct tu_log *t, const char *dir)
{
	struct sl_log_opts o = {.dir = dir, .segment_bytes = 1 << 20, .durability = SL_LOG_FSYNC};
	char err[512];
	memset(t, 0, sizeof(*t));
	cr_assert_eq(io_uring_queue_init(8, &t->ring, 0), 0);
	int ret = sl_log_open(&o, &t->log, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
}

/* Group commits until everything appended is durable. */
static inline void tu_log_commit(struct tu_log *t)
{
	for (int turns = 0; turns < 100000; turns++) {
		int ret = sl_log_flush(t->log, &t->ring, 1);
		cr_assert_geq(ret, 0);
		if (ret == 1)
			cr_assert_geq(io_uring_submit(&t->ring), 1);
		if (!sl_log_io_pending(t->log))
			return;
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&t->ring, &cqe), 0);
		if (cqe->user_data != SL_LOG_UD_IGNORE) /* not a writeback kick */
			cr_assert_geq(sl_log_on_cqe(t->log, cqe->res), 0);
		io_uring_cqe_seen(&t->ring, cqe);
	}
	cr_assert_fail("group commit never finished");
}

static inline uint64_t tu_log_append(struct tu_log *t, const uint8_t *ev, uint32_t len)
{
	uint64_t off;
	cr_assert_eq(sl_log_append(t->log, 7, 1, t->seq++, ev, len, &off), 0);
	return off;
}

static inline void tu_log_close(struct tu_log *t)
{
	sl_log_close(t->log);
	io_uring_queue_exit(&t->ring);
}

#endif
