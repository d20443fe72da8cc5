/*
 * The applier: one partition's log into one projection instance, exactly
 * once across restarts.
 */
#include "project/project.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "log/log.h"
#include "state/state.h"

#define SL__DEFAULT_BATCH 256u
/* Event bytes gathered per apply call. The log view may reuse its read
 * buffer between two record batches, so the events of one apply call are
 * copied here first; 256 KiB stays in L2 and holds 256 events of 1 KiB. */
#define SL__ARENA_BYTES (256u << 10)
/* Event bytes one step reads at most, whatever max_events says: bounds the
 * time a step holds its core. */
#define SL__STEP_BYTES (16u << 20)

struct sl_applier {
	struct sl_plugin *plugin;
	struct sl_plugin_inst_opts inst_opts;
	struct sl_plugin_inst *inst;
	struct sl_log_view *view;
	struct sl_snap_store *store;
	uint32_t partition;
	uint32_t batch;
	uint64_t every_events, every_ns;

	uint64_t next;       /* first offset not applied */
	uint64_t since_snap; /* events applied since the last snapshot */
	uint64_t last_snap_ns;
	bool failed;
	uint64_t emit_seq; /* sequence of the next event published from em */
	bool emit_hold;    /* published events not all durable: no snapshot */

	/* one apply call's worth, filled by the visitor */
	struct sl_plugin_event *evs;
	uint32_t n_evs;
	uint8_t *arena;
	size_t arena_len, arena_cap;
	uint64_t last_seen; /* offset of the last record visited, applied or not */
	bool seen;          /* a record was visited since the last flush */

	/* A host-state projection's partition (engine/state): no snapshots;
	 * its commits carry the applied offset. NULL for the others. */
	struct sl_state_db *sdb;
	struct sl_state_part *sp;
	bool own_sdb;     /* a store of its own (no server's), closed with it */
	bool rebuild;     /* from offset 0 beside the live model: emits nothing */
	bool commit_soon; /* sl_applier_commit_soon: the next state end forces */
	char *sdb_path;

	struct sl_plugin_emitter em;
	struct sl_plugin_out out; /* snapshots */
	struct sl_applier_stats stats;
	char error[512];
};

static const struct sl_projection_ops *sl__ops(const struct sl_applier *a)
{
	return &a->plugin->ops.projection;
}

static bool sl__snapshot_due(struct sl_applier *a);

/* Whether the state may be committed at `next`: every event below it
 * applied whole, and everything emitted for them durable (a restart from
 * the commit would not emit those again). */
static bool sl__state_committable(const struct sl_applier *a)
{
	return !a->failed && !a->emit_hold && !a->em.n;
}

/* The end of a host-state step: the cache's housekeeping, and a batch for
 * the writer when the state may be committed where the applier stands. */
static void sl__state_end(struct sl_applier *a, bool force)
{
	struct sl_state_mark m = {.next = a->next, .emit_seq = a->emit_seq};
	bool ok = sl__state_committable(a);
	(void)sl_state_part_end_step(a->sp, ok ? &m : NULL, force || a->commit_soon);
	/* Asked for once: kept until a commit could be asked for. */
	if (ok)
		a->commit_soon = false;
}

/*
 * Applies what the visitor gathered and moves `next` past every record
 * visited so far (the ones that did not decode included). 0, or -SL_EPLUGIN
 * with the applier stopped.
 */
static int sl__flush(struct sl_applier *a)
{
	int ret;

	if (!a->seen)
		return 0;
	if (a->n_evs) {
		ret = sl__ops(a)->apply(a->inst->inst, a->evs, a->n_evs, &a->em);
		if (ret < 0) {
			snprintf(a->error, sizeof(a->error),
			         "%s (plugin %s): apply at offset %" PRIu64 ": %s",
			         a->inst->ctx.name, a->plugin->info.name, a->evs[0].offset,
			         sl_strerror(ret));
			a->failed = true;
			/* Nothing of a failed step is published: what the earlier
			 * batches emitted comes again, with the same ids, when they
			 * are applied again after a restart. */
			sl_plugin_emitter_reset(&a->em);
			return -SL_EPLUGIN;
		}
	}
	a->stats.applied += a->n_evs;
	a->since_snap += a->n_evs;
	a->next = a->last_seen + 1;
	a->n_evs = 0;
	a->arena_len = 0;
	a->seen = false;
	if (!a->sp && sl__snapshot_due(a) && !a->emit_hold && !a->em.n)
		sl_applier_snapshot(a); /* a failure is counted; applying goes on */
	return 0;
}

/*
 * The log view's visitor. Events are copied into the arena and applied from
 * here, a batch at a time, so one view read serves a whole step: the view
 * checks a stored batch (its checksum) each time a read starts inside it,
 * and a read per apply call would check a large batch over and over.
 */
static int sl__visit(void *arg, const struct sl_log_record *rec)
{
	struct sl_applier *a = arg;

	if (a->n_evs == a->batch || a->arena_len + rec->len > a->arena_cap) {
		if (sl__flush(a) < 0)
			return -1;
	}
	if (rec->len > a->arena_cap) {
		/* One event larger than the arena: grow for it. */
		void *p = sl_grow(a->arena, &a->arena_cap, rec->len, SL__ARENA_BYTES);
		if (!p) {
			snprintf(a->error, sizeof(a->error), "applier: out of memory");
			return -1;
		}
		a->arena = p;
	}
	if (!a->seen && rec->offset > a->next) {
		/* Retention removed events this model never saw. */
		a->stats.gap_events += rec->offset - a->next;
	}
	a->seen = true;
	a->last_seen = rec->offset;
	a->stats.last_append_ms = rec->append_time_ms;
	uint8_t *copy = a->arena + a->arena_len;
	memcpy(copy, rec->event, rec->len);
	if (sl_plugin_event_fill(&a->evs[a->n_evs], copy, rec->len, a->partition, rec->offset,
	                         rec->append_time_ms) < 0) {
		/* The server validates every event before storing it, so this
		 * is a log written by something else. Counted, never applied;
		 * stopping the partition for it would stop every later event. */
		a->stats.skipped++;
		return 0;
	}
	a->arena_len += rec->len;
	a->n_evs++;
	return 0;
}

/*
 * A host-state projection: its partition of the projection's store, whose
 * committed mark is where applying resumes. A rebuild is made in the
 * partition's other key space of the same store, from nothing, so that a
 * swap is one small write (state/state_format.h); without a store (tests)
 * in one of its own beside the snapshots folder.
 */
static int sl__state_open(struct sl_applier *a, const struct sl_applier_opts *o, char *err,
                          size_t errlen)
{
	struct sl_state_mark mark;
	int ret;

	a->sdb = o->state_db;
	if (o->rebuild) {
		/* What an earlier sluiced, which built rebuilds here, left. */
		char old[4096];
		if (snprintf(old, sizeof(old), "%s/state", o->snap_dir) < (int)sizeof(old))
			(void)sl_rmtree(old);
	}
	if (!a->sdb) {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/state", o->snap_dir) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		struct sl_state_db_opts dbo = {.path = path};
		if ((ret = sl_state_db_open(&dbo, &a->sdb, err, errlen)) < 0)
			return ret;
		a->own_sdb = true;
		if (o->rebuild && !(a->sdb_path = strdup(path)))
			return -ENOMEM;
	}
	struct sl_state_part_opts po = {
	    .partition = a->partition,
	    .rebuild = o->rebuild && !a->own_sdb,
	    .cache_bytes = o->state_cache_bytes,
	    .on_commit = o->on_commit,
	    .on_commit_arg = o->on_commit_arg,
	};
	if ((ret = sl_state_part_open(a->sdb, &po, &a->sp, &mark, err, errlen)) < 0)
		return ret;
	if (o->state_writer && (ret = sl_state_writer_add(o->state_writer, a->sp)) < 0)
		return ret;
	a->inst_opts.state = sl_state_part_view(a->sp);
	a->next = mark.next;
	a->emit_seq = mark.emit_seq;
	a->stats.restored_offset = mark.next;
	a->stats.restored_gen = mark.gen;
	return 0;
}

static int sl__new_instance(struct sl_applier *a, char *err, size_t errlen)
{
	if (a->inst) {
		sl_plugin_inst_destroy(a->inst);
		a->inst = NULL;
	}
	return sl_plugin_inst_create(a->plugin, &a->inst_opts, &a->inst, err, errlen);
}

/* The mark of our partition in a snapshot. */
static bool sl__find_mark(const struct sl_snap *s, uint32_t partition, uint64_t *offset)
{
	for (uint32_t i = 0; i < s->n_marks; i++) {
		if (s->marks[i].partition == partition) {
			*offset = s->marks[i].offset;
			return true;
		}
	}
	return false;
}

/* Restores the newest snapshot the plugin accepts; else a fresh model at 0. */
static int sl__restore(struct sl_applier *a, char *err, size_t errlen)
{
	uint64_t below = UINT64_MAX;
	char why[512];
	int ret;

	/* Each turn goes to an older generation; the store keeps a handful. */
	for (int turn = 0; turn < 64; turn++) {
		struct sl_snap snap;
		uint64_t offset;

		why[0] = '\0';
		ret = sl_snap_store_load(a->store, below, &snap, &a->stats.bad_snapshots, why,
		                         sizeof(why));
		if (ret == -ENOENT)
			break;
		if (ret < 0) {
			sl_errf(err, errlen, "%s", why);
			return ret;
		}
		below = snap.generation;
		if (!sl__find_mark(&snap, a->partition, &offset)) {
			a->stats.bad_snapshots++;
			sl_snap_release(&snap);
			continue;
		}
		ret = sl__ops(a)->restore(a->inst->inst, snap.payload, snap.payload_len);
		if (ret == 0) {
			uint64_t seq = 0;
			/* Absent from snapshots of before emits were published. */
			(void)sl__find_mark(&snap, SL_SNAP_MARK_EMIT_SEQ, &seq);
			a->emit_seq = seq;
			a->next = offset;
			a->stats.restored_gen = snap.generation;
			a->stats.restored_offset = offset;
			sl_snap_release(&snap);
			return 0;
		}
		/* Refused: a fresh instance for the next try, since a failed
		 * restore may have left anything in this one. */
		a->stats.bad_snapshots++;
		sl_snap_release(&snap);
		if ((ret = sl__new_instance(a, err, errlen)) < 0)
			return ret;
	}
	a->next = 0;
	a->emit_seq = 0;
	return 0;
}

int sl_applier_open(const struct sl_applier_opts *o, struct sl_applier **out, char *err,
                    size_t errlen)
{
	struct sl_applier *a;
	int ret;

	*out = NULL;
	if (!o->plugin || o->plugin->kind != SL_PLUGIN_PROJECTION) {
		sl_errf(err, errlen, "applier: not a projection plugin");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->plugin = o->plugin;
	a->inst_opts = o->inst;
	a->partition = o->inst.partition;
	a->batch = o->batch ? o->batch : SL__DEFAULT_BATCH;
	a->rebuild = o->rebuild;
	a->every_events = o->snapshot_every_events;
	a->every_ns = o->snapshot_every_ns;
	a->em.default_topic = -1; /* a projection has no `to` topic */
	a->em.resolve = o->resolve;
	a->em.resolve_arg = o->resolve_arg;
	a->em.id_seed = ((uint64_t)a->partition << 32) ^ 0x736c70726f6aull;
	a->evs = calloc(a->batch, sizeof(*a->evs));
	a->arena = malloc(SL__ARENA_BYTES);
	a->arena_cap = SL__ARENA_BYTES;
	if (!a->evs || !a->arena) {
		ret = -ENOMEM;
		goto out;
	}
	if (sl_plugin_host_state(o->plugin)) {
		if ((ret = sl__state_open(a, o, err, errlen)) < 0)
			goto out;
	} else {
		struct sl_snap_store_opts so = {
		    .dir = o->snap_dir,
		    .test_stop_before_rename = o->test_stop_before_rename,
		};
		if ((ret = sl_snap_store_open(&so, &a->store, err, errlen)) < 0)
			goto out;
	}
	if ((ret = sl_log_view_open(o->log_dir, &a->view)) < 0) {
		sl_errf(err, errlen, "%s: cannot open the log: %s", o->log_dir, sl_strerror(ret));
		goto out;
	}
	sl_log_view_follow_cuts(a->view, o->log_cuts);
	/* Segments retention deleted behind it are let go (their space
	 * freed); a start past its offset still counts a gap. */
	sl_log_view_follow_start(a->view, o->log_start, false);
	if ((ret = sl__new_instance(a, err, errlen)) < 0)
		goto out;
	if (!a->sp && !o->rebuild && (ret = sl__restore(a, err, errlen)) < 0)
		goto out;
	a->last_snap_ns = sl_now_ns();
out:
	if (ret < 0) {
		sl_applier_close(a);
		return ret;
	}
	*out = a;
	return 0;
}

void sl_applier_close(struct sl_applier *a)
{
	if (!a)
		return;
	sl_plugin_inst_destroy(a->inst);
	sl_state_part_close(a->sp);
	if (a->own_sdb)
		sl_state_db_close(a->sdb);
	if (a->sdb_path) {
		(void)sl_rmtree(a->sdb_path);
		free(a->sdb_path);
	}
	sl_log_view_close(a->view);
	sl_snap_store_close(a->store);
	sl_plugin_emitter_release(&a->em);
	sl_plugin_out_release(&a->out);
	free(a->evs);
	free(a->arena);
	free(a);
}

struct sl__dump {
	struct sl_plugin_out *out;
	const struct sl_host *h;
};

static int sl__dump_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct sl__dump *d = arg;
	uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
	if (d->h->out_put(d->out, &kl, 4) < 0 || d->h->out_put(d->out, key, klen) < 0 ||
	    d->h->out_put(d->out, &vl, 4) < 0 || d->h->out_put(d->out, val, vlen) < 0)
		return -ENOMEM;
	return 0;
}

int sl_applier_model_bytes(struct sl_applier *a, struct sl_plugin_out *out)
{
	if (!a->sp)
		return sl__ops(a)->snapshot(a->inst->inst, out);
	/* Every key in order, with this step's changes: (u32 len, key, u32
	 * len, value) each. Canonical, as snapshots are. */
	struct sl__dump d = {.out = out, .h = sl_plugin_host()};
	int ret = sl_state_iter(sl_state_part_view(a->sp), NULL, 0, sl__dump_one, &d);
	sl_state_part_end_step(a->sp, NULL, false);
	return ret;
}

int sl_applier_snapshot(struct sl_applier *a)
{
	/* The emit sequence rides along: a restart from this snapshot emits
	 * again, with the same sequences, exactly what came after it. */
	struct sl_snap_mark mark[2] = {{.partition = a->partition, .offset = a->next},
	                               {.partition = SL_SNAP_MARK_EMIT_SEQ, .offset = a->emit_seq}};
	int ret;

	/* After a failed apply the model may hold part of a batch whose
	 * offsets are not counted: storing it would apply those twice. */
	if (a->failed)
		return -SL_EPLUGIN;
	if (a->sp) {
		/* A host-state projection has no snapshots: this commits what
		 * its cache holds, on this thread (a clean stop). */
		if (a->emit_hold || a->em.n)
			return -EBUSY;
		struct sl_state_mark m = {.next = a->next, .emit_seq = a->emit_seq};
		return sl_state_part_sync(a->sp, &m, a->error, sizeof(a->error));
	}
	/* Events emitted before `next` that are not durable yet would be
	 * lost by a restart from here: it would not emit them again. */
	if (a->emit_hold || a->em.n)
		return -EBUSY;
	a->out.buf.len = 0;
	if ((ret = sl__ops(a)->snapshot(a->inst->inst, &a->out)) < 0) {
		snprintf(a->error, sizeof(a->error), "%s: snapshot: %s", a->inst->ctx.name,
		         sl_strerror(ret));
		a->stats.snapshot_failures++;
		return ret;
	}
	ret = sl_snap_store_write(a->store, mark, 2, a->out.buf.data, a->out.buf.len, a->error,
	                          sizeof(a->error));
	/* The clock restarts either way: a failing disk is not retried at
	 * every batch. */
	a->last_snap_ns = sl_now_ns();
	if (ret < 0) {
		a->stats.snapshot_failures++;
		return ret;
	}
	a->since_snap = 0;
	a->stats.snapshots++;
	a->stats.snapshot_bytes = a->out.buf.len;
	return 0;
}

static bool sl__snapshot_due(struct sl_applier *a)
{
	if (!a->since_snap)
		return false;
	if (a->every_events && a->since_snap >= a->every_events)
		return true;
	return a->every_ns && sl_now_ns() - a->last_snap_ns >= a->every_ns;
}

int sl_applier_step(struct sl_applier *a, uint64_t limit, uint32_t max_events)
{
	uint64_t next;
	int ret;

	if (a->failed)
		return -SL_EPLUGIN;
	if (a->sp && !sl_state_part_poll(a->sp)) {
		/* The cache is full of changes not yet committed: commit them
		 * (when they may be) and apply nothing until that is done; the
		 * writer wakes the owner. */
		sl__state_end(a, true);
		return 0;
	}
	sl_plugin_emitter_reset(&a->em);
	a->n_evs = 0;
	a->arena_len = 0;
	a->seen = false;
	ret = sl_log_view_read(a->view, a->next, limit, max_events, SL__STEP_BYTES, sl__visit, a,
	                       &next);
	if (a->failed)
		return -SL_EPLUGIN;
	if (ret < 0) {
		snprintf(a->error, sizeof(a->error), "%s", sl_log_view_strerror(a->view, ret));
		a->failed = true;
		return ret;
	}
	if (sl__flush(a) < 0)
		return -SL_EPLUGIN;
	/* Tables the model replaced during this step are freed once the
	 * concurrent queries that may read them are gone. */
	sl_plugin_inst_poll(a->inst);
	/* What a rebuild emits was published by the live model: dropped, so
	 * its state may commit (emits not yet published hold commits back). */
	if (a->rebuild)
		sl_plugin_emitter_reset(&a->em);
	if (a->sp)
		sl__state_end(a, false);
	return ret;
}

void sl_applier_commit_soon(struct sl_applier *a)
{
	a->commit_soon = true;
}

bool sl_applier_host_state(const struct sl_applier *a)
{
	return a->sp != NULL;
}

struct sl_state_part *sl_applier_state(const struct sl_applier *a)
{
	return a->sp;
}

uint64_t sl_applier_visible(const struct sl_applier *a)
{
	return a->sp ? sl_state_part_committed(a->sp) : a->next;
}

void sl_applier_idle(struct sl_applier *a)
{
	if (!a->sp || a->failed)
		return;
	(void)sl_state_part_poll(a->sp);
	sl__state_end(a, false);
}

int sl_applier_query(struct sl_applier *a, const char *key, uint32_t key_len, uint32_t mode,
                     struct sl_plugin_out *out)
{
	return sl_applier_query_at(a, key, key_len, mode, out, NULL);
}

int sl_applier_query_at(struct sl_applier *a, const char *key, uint32_t key_len, uint32_t mode,
                        struct sl_plugin_out *out, uint64_t *seen_next)
{
	if (!a->sp)
		return sl__ops(a)->query(a->inst->inst, key, key_len, mode, out);
	struct sl_state *v;
	struct sl_state_mark m;
	int ret = sl_state_view_begin(a->sdb, a->partition, &v, &m);
	if (ret < 0)
		return ret == -ENOENT ? -EIO : ret;
	ret = sl__ops(a)->query_state(a->inst->inst, v, key, key_len, mode, out);
	sl_state_view_end(v);
	if (seen_next)
		*seen_next = m.next;
	return ret;
}

bool sl_applier_settle(struct sl_applier *a)
{
	if (!a->sp || a->failed)
		return false;
	(void)sl_state_part_poll(a->sp);
	if (sl__state_committable(a) && sl_state_part_settled(a->sp, a->next))
		return true;
	sl__state_end(a, true);
	return false;
}

int sl_applier_swap_in(struct sl_applier *a, struct sl_applier *rb)
{
	if (!a->sp || !rb->sp || !rb->rebuild || a->failed || rb->failed) {
		snprintf(a->error, sizeof(a->error),
		         "swap: not a host-state model and its rebuild");
		return -EINVAL;
	}
	if (a->next != rb->next || !sl__state_committable(a))
		return -EBUSY;
	/* The live model's emit sequence goes on: what it emitted below
	 * `next` is published, and the rebuild's emits never were. */
	return sl_state_part_swap(a->sp, rb->sp, a->emit_seq, a->error, sizeof(a->error));
}

uint64_t sl_applier_next(const struct sl_applier *a)
{
	return a->next;
}

struct sl_plugin_emitter *sl_applier_emitter(struct sl_applier *a)
{
	return &a->em;
}

uint64_t sl_applier_emit_seq(const struct sl_applier *a)
{
	return a->emit_seq;
}

void sl_applier_emitted(struct sl_applier *a)
{
	a->emit_seq += a->em.n;
	sl_plugin_emitter_reset(&a->em);
}

void sl_applier_emit_hold(struct sl_applier *a, bool hold)
{
	a->emit_hold = hold;
}

struct sl_plugin_inst *sl_applier_inst(struct sl_applier *a)
{
	return a->inst;
}

int64_t sl_applier_last_append_ms(const struct sl_applier *a)
{
	return a->stats.last_append_ms;
}

void sl_applier_get_stats(const struct sl_applier *a, struct sl_applier_stats *out)
{
	*out = a->stats;
}

const char *sl_applier_error(const struct sl_applier *a)
{
	return a->error;
}

int sl_project_key_route(const struct sl_plugin *p, const char *key, uint32_t key_len,
                         const char **agg, uint32_t *agg_len)
{
	if (!p->ops.projection.key_route) {
		*agg = key;
		*agg_len = key_len;
		return 1;
	}
	return p->ops.projection.key_route(key, key_len, agg, agg_len);
}

int sl_project_merge(const struct sl_plugin *p, const char *key, uint32_t key_len,
                     const uint8_t *const *parts, const size_t *part_lens, uint32_t n,
                     struct sl_plugin_out *out)
{
	if (!p->ops.projection.merge)
		return -EINVAL;
	return p->ops.projection.merge(sl_plugin_host(), key, key_len, parts, part_lens, n, out);
}
