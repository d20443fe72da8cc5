/*
 * A host-state projection plugin (plugin ABI 1.2) driven without a server,
 * for tests/unit/plugins_*.c: a state database in a temporary folder, a
 * state part and an instance per partition, events applied as the next of
 * their partition (each with its partition's emitter), commits as a clean
 * stop makes them, queries through read views of the last commit, and the
 * store closed and opened again at its committed offsets.
 */
#ifndef SL_TEST_PLUGINS_STATE_H
#define SL_TEST_PLUGINS_STATE_H

#include "config/config.h"
#include "plugins_util.h"
#include "state/state.h"

#define TS_PARTS_MAX 4

struct ts_fixture {
	struct sl_plugin *p;
	const struct sl_projection_ops *ops;
	struct sl_config_node *args; /* the instances' args, or NULL */
	uint32_t n_parts;
	size_t cache_bytes; /* each part's budget; 0: the default */
	struct sl_plugin_out out;
	char *dir;
	char path[512];
	struct sl_state_db *db;
	struct sl_state_part *sp[TS_PARTS_MAX];
	struct sl_plugin_inst *in[TS_PARTS_MAX];
	struct sl_plugin_emitter em[TS_PARTS_MAX]; /* what apply emitted, never reset here */
	uint64_t next[TS_PARTS_MAX];               /* the next offset to apply */
};

/* Opens the store and one instance per partition; next[] from the marks. */
static inline void ts_open(struct ts_fixture *f)
{
	char err[512];
	struct sl_state_db_opts dbo = {.path = f->path};
	cr_assert_eq(sl_state_db_open(&dbo, &f->db, err, sizeof(err)), 0, "%s", err);
	for (uint32_t i = 0; i < f->n_parts; i++) {
		struct sl_state_part_opts po = {.partition = i, .cache_bytes = f->cache_bytes};
		struct sl_state_mark m;
		cr_assert_eq(sl_state_part_open(f->db, &po, &f->sp[i], &m, err, sizeof(err)), 0,
		             "%s", err);
		f->next[i] = m.next;
		struct sl_plugin_inst_opts o = {.partition = i,
		                                .n_partitions = f->n_parts,
		                                .topic = "events",
		                                .args = f->args,
		                                .state = sl_state_part_view(f->sp[i])};
		cr_assert_eq(sl_plugin_inst_create(f->p, &o, &f->in[i], err, sizeof(err)), 0, "%s",
		             err);
	}
}

/* Closes without a commit: what was not committed is gone. */
static inline void ts_close(struct ts_fixture *f)
{
	for (uint32_t i = 0; i < f->n_parts; i++) {
		sl_plugin_inst_destroy(f->in[i]);
		sl_state_part_close(f->sp[i]);
	}
	sl_state_db_close(f->db);
}

/* A restart: closed without a commit and opened again at the marks. */
static inline void ts_reopen(struct ts_fixture *f)
{
	ts_close(f);
	ts_open(f);
}

/* Loads `plugin` (a host-state projection) and opens n_parts partitions
 * with args (YAML, or NULL). */
static inline void ts_init(struct ts_fixture *f, const char *plugin, uint32_t n_parts,
                           const char *args, size_t cache_bytes)
{
	char err[256];
	memset(f, 0, sizeof(*f));
	cr_assert_leq(n_parts, TS_PARTS_MAX);
	f->n_parts = n_parts;
	f->cache_bytes = cache_bytes;
	f->p = tu_load(plugin, SL_PLUGIN_PROJECTION);
	f->ops = &f->p->ops.projection;
	cr_assert(f->ops->flags & SL_PROJECTION_HOST_STATE);
	if (args)
		cr_assert_eq(
		    sl_config_node_parse(args, strlen(args), "t", &f->args, err, sizeof(err)), 0,
		    "%s", err);
	for (uint32_t i = 0; i < n_parts; i++)
		f->em[i].default_topic = -1; /* a projection has no `to` topic */
	f->dir = tu_tmpdir(plugin);
	snprintf(f->path, sizeof(f->path), "%s/state", f->dir);
	ts_open(f);
}

static inline void ts_fini(struct ts_fixture *f)
{
	ts_close(f);
	for (uint32_t i = 0; i < f->n_parts; i++)
		sl_plugin_emitter_release(&f->em[i]);
	sl_config_node_free(f->args);
	sl_plugin_out_release(&f->out);
	sl_plugin_unload(f->p);
	tu_rmdir(f->dir);
}

/* Applies one event as the next of partition p; its id is its offset
 * (tu_event). The bytes are scribbled over afterwards: the plugin must
 * have copied what it keeps. */
static inline void ts_apply(struct ts_fixture *f, uint32_t p, const char *type, const char *agg,
                            const char *data)
{
	uint8_t ev[4096];
	struct sl_plugin_event pe;
	uint32_t len = tu_event(ev, sizeof(ev), type, agg, data, f->next[p]);

	tu_fill(&pe, ev, len, p, f->next[p]);
	cr_assert_eq(f->ops->apply(f->in[p]->inst, &pe, 1, &f->em[p]), 0);
	memset(ev, 0xee, sizeof(ev));
	f->next[p]++;
}

/* Commits partition p's changes up to next[p] (as a clean stop does). */
static inline void ts_commit(struct ts_fixture *f, uint32_t p)
{
	char err[300];
	struct sl_state_mark m = {.next = f->next[p]};
	cr_assert_eq(sl_state_part_sync(f->sp[p], &m, err, sizeof(err)), 0, "%s", err);
}

/* A query on the last commit of partition p; *seen (may be NULL): the
 * offset that commit reflects. */
static inline int ts_query_mode(struct ts_fixture *f, uint32_t p, const char *key, uint32_t mode,
                                struct sl_plugin_out *out, uint64_t *seen)
{
	struct sl_state *v;
	struct sl_state_mark m;
	cr_assert_eq(sl_state_view_begin(f->db, p, &v, &m), 0);
	int ret = f->ops->query_state(f->in[p]->inst, v, key, (uint32_t)strlen(key), mode, out);
	sl_state_view_end(v);
	if (seen)
		*seen = m.next;
	return ret;
}

/* A FULL query: the answer ("" when none), its return in *ret. */
static inline const char *ts_query(struct ts_fixture *f, uint32_t p, const char *key, int *ret)
{
	f->out.buf.len = 0;
	*ret = ts_query_mode(f, p, key, SL_PLUGIN_QUERY_FULL, &f->out, NULL);
	return f->out.buf.len ? f->out.buf.data : "";
}

static inline void ts_expect(struct ts_fixture *f, uint32_t p, const char *key, const char *want)
{
	int ret;
	const char *got = ts_query(f, p, key, &ret);
	cr_assert_eq(ret, 0, "%s: %d", key, ret);
	cr_assert_str_eq(got, want);
}

/* Every key and value of partition p's writer view, in key order, as
 * (u32 len, key, u32 len, value) each: the model's canonical bytes. */
static inline int ts__dump_one(void *arg, const void *key, size_t klen, const void *val,
                               size_t vlen)
{
	struct sl_json_buf *b = arg;
	uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
	if (sl_json_buf_put_raw(b, &kl, 4) < 0 || sl_json_buf_put_raw(b, key, klen) < 0 ||
	    sl_json_buf_put_raw(b, &vl, 4) < 0 || sl_json_buf_put_raw(b, val, vlen) < 0)
		return -ENOMEM;
	return 0;
}

static inline void ts_dump(struct ts_fixture *f, uint32_t p, struct sl_plugin_out *out)
{
	out->buf.len = 0;
	cr_assert_eq(sl_state_iter(sl_state_part_view(f->sp[p]), NULL, 0, ts__dump_one, &out->buf),
	             0);
	sl_state_part_end_step(f->sp[p], NULL, false);
}

/* Two ids of TS_LONG_ID - 1 bytes that are the same up to byte 1100: both
 * past a state key (496 bytes) and cut at the same place. */
#define TS_LONG_ID 1200
static inline void ts_long_ids(char *a, char *b)
{
	memset(a, 'x', TS_LONG_ID - 1);
	a[TS_LONG_ID - 1] = '\0';
	memcpy(b, a, TS_LONG_ID);
	b[1100] = 'y';
}

/* Partition p's model is byte for byte `want` (a ts_dump). */
static inline void ts_expect_model(struct ts_fixture *f, uint32_t p,
                                   const struct sl_plugin_out *want)
{
	struct sl_plugin_out got = {0};
	ts_dump(f, p, &got);
	cr_assert_eq(got.buf.len, want->buf.len);
	cr_assert_eq(memcmp(got.buf.data, want->buf.data, want->buf.len), 0);
	sl_plugin_out_release(&got);
}

#endif
