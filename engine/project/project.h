/*
 * project: the host side of projections that needs no reactor — the
 * snapshot store and the per-partition applier. Together they are the
 * "exactly once downstream" mechanism: whatever consumes a partition inside
 * the server stores the offset it has applied atomically with its own state,
 * and resumes exactly there.
 *
 * Snapshot store. A folder of snapshot files, each replaced atomically:
 * written to `<gen>.snap.tmp`, fdatasync'd, renamed to `<gen>.snap`, and the
 * folder fsync'd, so a file named `.snap` is complete or absent after any
 * crash. `gen` grows by one per write. The two newest are kept: when the
 * newest is torn or fails its checksum (a disk fault, a copy gone wrong) the
 * previous one is used, and with none readable the consumer rebuilds from
 * offset 0. Leftover `.tmp` files (a crash before the rename) are ignored and
 * removed. Layout, little-endian:
 *
 *   0  u32 magic "SLPS"         16 u64 generation
 *   4  u32 version (1)          24 u64 payload length
 *   8  u32 n_marks              32 i64 wall-clock ms when written
 *  12  u32 flags (0)            40 marks: n_marks x {u32 partition, u32 0, u64 offset}
 *   .. payload (the plugin's snapshot bytes)
 *   .. u32 crc32c of every byte before it
 *
 * A mark is (partition, the first offset NOT applied): the model in the
 * payload holds exactly the events below it.
 *
 * Applier. Feeds one partition's log to one projection instance: reads from
 * its applied offset with a log view (log/log.h), decodes each event's
 * envelope zero-copy (proto/proto.h scanner), calls the plugin's apply in
 * batches, and snapshots every N events or T ns. On open it restores the
 * newest snapshot the plugin accepts and resumes at its mark; an event is
 * never applied twice to a model, nor skipped. It has no thread of its own:
 * the owner drives it with sl_applier_step(), on the core that owns the
 * partition, and never past the log's durable end (a model must not hold an
 * event a crash could take back).
 *
 * Ownership: sl_snap_store_open / sl_applier_open return objects the caller
 * closes; a loaded struct sl_snap is released with sl_snap_release. The
 * applier owns its plugin instance, but not the plugin.
 * Threads: a store and an applier belong to one thread at a time. A
 * snapshot write runs on the calling thread and waits for two fsyncs
 * (milliseconds): size snapshot_every_* so that stays rare.
 */
#ifndef SL_PROJECT_H
#define SL_PROJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin/plugin.h"
#include "project/snap_format.h"

struct sl_state_db;
struct sl_state_part;
struct sl_state_writer; /* the .snap layout, SL_SNAP_MAX_MARKS */

/* ---- snapshot store ----------------------------------------------------------- */

struct sl_snap_mark {
	uint32_t partition;
	uint64_t offset; /* first offset not in the model */
};
/* A mark that is not a partition: `offset` is the sequence of the next
 * event the model's projection emits (engine/reactor/proj.c). */
#define SL_SNAP_MARK_EMIT_SEQ UINT32_MAX

/* A snapshot read back. */
struct sl_snap {
	uint64_t generation;
	int64_t written_ms;
	struct sl_snap_mark *marks;
	uint32_t n_marks;
	const uint8_t *payload; /* inside the file buffer */
	size_t payload_len;
	uint8_t *sl__file;
};

struct sl_snap_store_opts {
	const char *dir; /* created (with parents) if missing */
	uint32_t keep;   /* snapshots kept; 0 = 2 (fewer than 2 gives no fallback) */
	/* Test hook: write and sync the .tmp file, then stop as if the process
	 * died before the rename (the write returns -ECANCELED). */
	bool test_stop_before_rename;
};

struct sl_snap_store;

int sl_snap_store_open(const struct sl_snap_store_opts *o, struct sl_snap_store **out, char *err,
                       size_t errlen);
void sl_snap_store_close(struct sl_snap_store *s);

/*
 * Writes a new snapshot (the next generation) atomically, then removes all
 * but the `keep` newest. Returns 0, or -errno with `err` naming the file and
 * the call that failed (the previous snapshots are untouched then).
 */
int sl_snap_store_write(struct sl_snap_store *s, const struct sl_snap_mark *marks, uint32_t n_marks,
                        const void *payload, size_t len, char *err, size_t errlen);

/*
 * Loads the newest valid snapshot whose generation is below `below`
 * (UINT64_MAX: any). Invalid ones (torn, bad magic, version or checksum) are
 * skipped and counted in *n_bad (may be NULL); `err` then says what the last
 * one had. Returns 0 with *out filled, -ENOENT when none is valid, -ENOMEM or
 * -errno on an I/O error.
 */
int sl_snap_store_load(struct sl_snap_store *s, uint64_t below, struct sl_snap *out,
                       uint32_t *n_bad, char *err, size_t errlen);
void sl_snap_release(struct sl_snap *snap);

/* The folder, and the generation the next write takes. */
const char *sl_snap_store_dir(const struct sl_snap_store *s);
uint64_t sl_snap_store_next_gen(const struct sl_snap_store *s);

/* ---- applier ------------------------------------------------------------------- */

struct sl_applier_opts {
	struct sl_plugin *plugin;        /* a loaded projection plugin */
	struct sl_plugin_inst_opts inst; /* name, topic, partition, args, log */
	const char *log_dir;             /* the partition's log folder */
#ifndef __cplusplus
	const _Atomic uint64_t *log_cuts;  /* its cut counter (sl_log_view_follow_cuts) */
	const _Atomic uint64_t *log_start; /* its first offset (sl_log_view_follow_start) */
#else
	const void *log_cuts; /* the same pointer; the C++ benchmarks leave it NULL */
	const void *log_start;
#endif
	const char *snap_dir;           /* this projection's snapshots of this partition */
	uint64_t snapshot_every_events; /* 0: not by count */
	uint64_t snapshot_every_ns;     /* 0: not by time */
	uint32_t batch;                 /* events per apply call; 0 = 256 */
	bool rebuild;                   /* ignore snapshots: start from offset 0 */
	/* Events the plugin emits (rejections...): topic name -> index, as in
	 * struct sl_plugin_emitter. NULL: emits to a named topic fail. */
	int (*resolve)(void *arg, const char *topic, size_t len);
	void *resolve_arg;
	bool test_stop_before_rename; /* passed to the snapshot store */
	/* A host-state plugin (SL_PROJECTION_HOST_STATE): the projection's
	 * store (engine/state; a rebuild uses the partition's other key space
	 * in it; NULL: one of its own in snap_dir), the writer that commits its batches (NULL:
	 * commits inline at the end of each step), its cache's budget, and who to wake when a
	 * commit is done (the writer's thread calls it). */
	struct sl_state_db *state_db;
	struct sl_state_writer *state_writer;
	size_t state_cache_bytes;
	void (*on_commit)(void *arg);
	void *on_commit_arg;
};

struct sl_applier_stats {
	uint64_t applied;   /* events given to apply since open */
	uint64_t skipped;   /* stored events that did not decode (never applied) */
	uint64_t snapshots; /* written since open */
	uint64_t snapshot_failures;
	uint64_t snapshot_bytes;  /* of the last one */
	uint64_t restored_gen;    /* generation restored at open; 0: none */
	uint64_t restored_offset; /* where it resumed */
	uint32_t bad_snapshots;   /* unreadable or refused by the plugin at open */
	uint64_t gap_events;      /* events gone (retention) between the mark and the log start */
	int64_t last_append_ms;   /* when the last event read was stored; 0: none yet */
};

struct sl_applier;

/* Creates the instance, restores the newest usable snapshot (unless
 * rebuild), and positions at its mark. -SL_EPLUGIN, -errno, with err. */
int sl_applier_open(const struct sl_applier_opts *o, struct sl_applier **out, char *err,
                    size_t errlen);
void sl_applier_close(struct sl_applier *a);

/*
 * Applies up to max_events events below `limit` (the partition's durable
 * end), then snapshots if one is due. Events emitted by the plugin are in
 * sl_applier_emitter() until the next step. Returns the number applied
 * (0: caught up), or a negative error after which the applier is stopped
 * (sl_applier_error says why): -SL_ECORRUPT (the log), -SL_EPLUGIN (apply
 * failed; the batch is not counted as applied).
 */
int sl_applier_step(struct sl_applier *a, uint64_t limit, uint32_t max_events);

/* Writes a snapshot now (e.g. at a clean shutdown). 0 or -errno; -EBUSY
 * while emitted events are held (below). */
int sl_applier_snapshot(struct sl_applier *a);

/* The model's snapshot bytes, without storing them (compare a rebuild with
 * the live model). Appends to out. */
int sl_applier_model_bytes(struct sl_applier *a, struct sl_plugin_out *out);

/* One query on this partition's instance: the plugin's query, FULL or PART. */
int sl_applier_query(struct sl_applier *a, const char *key, uint32_t key_len, uint32_t mode,
                     struct sl_plugin_out *out);

/* The first offset not applied. */
uint64_t sl_applier_next(const struct sl_applier *a);
/*
 * Host-state projections (engine/state): whether a is one; the first
 * offset its committed state does not reflect, which queries see (any
 * thread; for the others, sl_applier_next, owner only); on the owner when
 * the applier has nothing to apply, the state's housekeeping (take in a
 * commit, freeze what is due); and a request that the next step's or
 * housekeeping's end commit at once rather than at its interval (a query
 * waits for its own write). Owner only, except where said.
 */
bool sl_applier_host_state(const struct sl_applier *a);
/* Its state (engine/state), NULL for the others: for stats, any thread. */
struct sl_state_part *sl_applier_state(const struct sl_applier *a);
uint64_t sl_applier_visible(const struct sl_applier *a);
void sl_applier_idle(struct sl_applier *a);
void sl_applier_commit_soon(struct sl_applier *a);
/*
 * Swapping in a rebuild (host-state only; owner only). sl_applier_settle:
 * whether everything a applied is committed, with nothing pending (emits
 * published and durable); when not, it asks for the commit now (call it
 * again at a later step; the writer wakes the owner). sl_applier_swap_in:
 * rb (a rebuild of a's partition, settled at a's offset) becomes a's model
 * (sl_state_part_swap: one durable write; a crash leaves the old model or
 * the new one whole); a goes on applying from the same offset with the
 * same emit sequence, and rb may only be closed. 0, -EBUSY (not settled at
 * the same offset: nothing done), -EINVAL, -errno (sl_applier_error(a)).
 */
bool sl_applier_settle(struct sl_applier *a);
int sl_applier_swap_in(struct sl_applier *a, struct sl_applier *rb);
/* sl_applier_query that also says which offset the answer reflects: a
 * host-state query reads the newest commit, on any thread (*seen_next its
 * mark); other plugins as sl_applier_query (seen_next untouched). */
int sl_applier_query_at(struct sl_applier *a, const char *key, uint32_t key_len, uint32_t mode,
                        struct sl_plugin_out *out, uint64_t *seen_next);
struct sl_plugin_emitter *sl_applier_emitter(struct sl_applier *a);
/*
 * Publishing what a projection emits, exactly once (reactor/proj.c): the
 * events of the emitter get sequences emit_seq, emit_seq + 1, ... (stored in
 * every snapshot beside the applied offset); sl_applier_emitted() counts
 * them as published and empties the emitter; while sl_applier_emit_hold()
 * says published events are not all durable, no snapshot is taken (a
 * restart from it would not emit them again). Emits left in the emitter
 * also keep snapshots back.
 */
uint64_t sl_applier_emit_seq(const struct sl_applier *a);
void sl_applier_emitted(struct sl_applier *a);
void sl_applier_emit_hold(struct sl_applier *a, bool hold);
struct sl_plugin_inst *sl_applier_inst(struct sl_applier *a);
void sl_applier_get_stats(const struct sl_applier *a, struct sl_applier_stats *out);
/* stats.last_append_ms, without the copy (for the lag in seconds). */
int64_t sl_applier_last_append_ms(const struct sl_applier *a);
const char *sl_applier_error(const struct sl_applier *a);

/*
 * A query across partitions, for callers that hold every partition's answer:
 * asks the plugin where `key` lives. Returns 1 with *agg (the aggregate whose
 * partition answers), 0 when every partition holds a share (ask each with
 * SL_PLUGIN_QUERY_PART, then sl_project_merge), -EINVAL.
 */
int sl_project_key_route(const struct sl_plugin *p, const char *key, uint32_t key_len,
                         const char **agg, uint32_t *agg_len);
int sl_project_merge(const struct sl_plugin *p, const char *key, uint32_t key_len,
                     const uint8_t *const *parts, const size_t *part_lens, uint32_t n,
                     struct sl_plugin_out *out);

/* ---- projections in a running server (project/query.c) ---------------------------- */
/*
 * A server's projections: one applier per partition, owned by the reactor
 * that owns the partition (only that thread steps it or queries it, except
 * concurrent-query plugins, read on any thread inside an epoch section),
 * and the read-model requests other threads (HTTP) hand to that reactor.
 * The reactor only drives: it steps the appliers, answers or parks each
 * request with the functions below, and signals the asker.
 */
#ifndef __cplusplus /* C11 atomics; the C++ benchmarks use only the applier */
#include <pthread.h>
#include <stdatomic.h>

struct sl_partition;
struct sl_topic;
struct sl_topics;
struct sl_config_node;
struct sl_epoch;
struct sl_epoch_rec;

/*
 * One projection on one partition: its applier, owned by the partition's
 * reactor (only that thread steps or queries it). `applied_pub` is the
 * applier's next offset, published for other threads (status, metrics).
 */
struct sl_proj_part {
	struct sl_applier *a;
	struct sl_partition *part;
	uint32_t proj;
	/* The applier stopped (its error, written before, says why). Atomic:
	 * concurrent queries read it on HTTP threads. */
	_Atomic bool failed;
	_Atomic uint64_t applied_pub;
	_Atomic int64_t applied_ms_pub; /* when the last event it read was stored */
	/* The end the step under way may reach (its limit), stored before the
	 * step and followed by a release fence: a concurrent query that saw
	 * any event of that step (and fences with acquire after it) reads at
	 * least this, so its answer's token covers all it may have seen. */
	_Atomic uint64_t applying_pub;
	/* What the projection emits (balance's rejections), published exactly
	 * once by reactor/proj.c: as producer `emit_pid`, acks to
	 * SL_CONN_PIPE | SL_CONN_PROJ | emit_ref. */
	uint64_t emit_pid;
	uint32_t emit_ref; /* proj << 12 | partition */
	uint64_t emit_unacked;
	/* A host-state projection's commits wake the owner through this
	 * (the server's reactor wake; the writer thread calls it). */
	void (*wake)(void *arg, uint32_t reactor);
	void *wake_arg;
	/* A rebuild of this partition, for metrics (any thread): its phase
	 * (SL_REBUILD_*; 0: none) and the first offset it has not applied. */
	_Atomic uint32_t rb_phase_pub;
	_Atomic uint64_t rb_next_pub;
	/* The owner's: a swap is settling, the live model is not stepped. */
	bool swap_hold;
};

/* A rebuild's phases (sl_proj_part.rb_phase_pub). */
#define SL_REBUILD_APPLYING 1u /* from offset 0 toward the live model */
#define SL_REBUILD_SWAPPING 2u /* caught up and different: both committing, the live held */
#define SL_REBUILD_PAUSED   3u /* stopped by the test hook (struct sl_proj) */

/* Test hook (tests/e2e/rebuild.py, through SLUICE_TEST_REBUILD_PAUSE):
 * a rebuild stops, for good, where a test kills the server or cuts the
 * power: after applying `test_pause_at` events, or with both models
 * settled just before the swap's write, or just after it (the request is
 * never answered). */
enum sl_rebuild_pause {
	SL_REBUILD_PAUSE_NONE = 0,
	SL_REBUILD_PAUSE_APPLY,
	SL_REBUILD_PAUSE_SWAP,
	SL_REBUILD_PAUSE_SWAPPED,
};

struct sl_proj {
	char *name;
	struct sl_plugin *plugin;
	struct sl_topic *topic;
	const struct sl_topics *topics; /* where its emits may go (not `topic`) */
	struct sl_proj_part *parts;     /* one per partition of topic */
	/* For rebuilds: the instances' args, and where their scratch goes
	 * (data_dir/projections/NAME/P/rebuild). */
	const struct sl_config_node *args;
	const char *data_dir;
	/* A host-state plugin's store (data_dir/projections/NAME/state),
	 * the writer that commits to it, and each partition's cache budget;
	 * NULL / 0 for the others. */
	struct sl_state_db *sdb;
	struct sl_state_writer *writer;
	size_t cache_bytes;
	/*
	 * A projection of a topic that did not exist at start (issue 22):
	 * `topic` and `parts` stay NULL and `waits_for` names the topic until
	 * the server binds it (server/late.c: appliers opened off the
	 * reactors, then each reactor takes its parts, sl_reactor_bind).
	 * state_pub (enum sl_proj_state) is stored with release once topic
	 * and parts are set; a thread other than the owners reads them only
	 * after an acquire load that says SERVING. `bind_pending` marks the
	 * projection a sl_reactor_bind under way hands out (written before
	 * that request, read by the reactors inside it).
	 */
	char *waits_for;
	_Atomic uint32_t state_pub;
	bool bind_pending;
	enum sl_rebuild_pause test_pause;
	uint64_t test_pause_at;
};

enum sl_proj_state {
	SL_PROJ_SERVING = 0,     /* its topic exists: appliers open (a partition may fail alone) */
	SL_PROJ_WAITING = 1,     /* waits for its topic */
	SL_PROJ_BIND_FAILED = 2, /* its topic came, the appliers could not open */
};

/*
 * A read-model request from a thread other than the reactors (HTTP), to
 * the reactor that owns partition `partition`: wait until the projection
 * has applied `wait_offset` (read your writes), check the lag, query. The
 * reactor answers every request exactly once, by its deadline at the
 * latest (its tick checks), or at stop: it fills the answer, then
 * sl_pquery_done sets `done` under `mu` and signals `cv`. The caller owns
 * the request (sl_pquery_new) and frees it (sl_pquery_free) only after
 * `done`.
 */
struct sl_pquery {
	uint32_t proj, partition;
	uint32_t mode; /* SL_PLUGIN_QUERY_FULL or _PART */
	bool wait, query, has_max_lag;
	bool rebuild;          /* rebuild from 0 beside the live model, compare */
	bool swap;             /* rebuild: and swap it in when it differs */
	struct sl_applier *rb; /* the rebuild's applier (the reactor's) */
	uint32_t phase;        /* rebuild: SL_REBUILD_* (the reactor's) */
	bool equal;            /* rebuild: the models' bytes are equal */
	bool swapped;          /* rebuild: the rebuilt model is live now */
	uint64_t model_bytes, rb_bytes;
	uint64_t wait_offset; /* applied once the applier's next > this */
	uint64_t max_lag;
	uint64_t deadline_ns;
	const char *key;
	uint32_t key_len;
	/* the answer */
	int status; /* HTTP status: 200, 404, 409, 503, 504 ... */
	char msg[200];
	struct sl_plugin_out out;
	uint64_t applied, lag;
	/* The first offset the answer certainly does not reflect (its token
	 * is this - 1): `applied` on the reactor; on a concurrent query, the
	 * step that may have been under way included (applying_pub). */
	uint64_t seen_end;
	/* A replica that follows (cluster mode): the answer's lag counts from
	 * the leader's durable end as last heard, `heard_ms` ago
	 * (UINT64_MAX: never since it started). */
	bool follower;
	uint64_t heard_ms;
	struct sl_pquery *next; /* the reactor's wait list */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

/* NULL when out of memory. */
struct sl_pquery *sl_pquery_new(uint32_t proj, uint32_t partition, uint64_t deadline_ns);
void sl_pquery_free(struct sl_pquery *q);
/* Sets the status (and, with fmt, the message), then `done`, and wakes the
 * asker; q is the asker's again, not to be touched after. */
void sl_pquery_done(struct sl_pquery *q, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A 503 answer in q: partition q->partition of pj is not serving (its
 * applier stopped, or its partition was refused). */
void sl_pquery_not_serving(const struct sl_proj *pj, struct sl_pquery *q);
/*
 * How long a follower may go without hearing from its leader before its
 * lag is unknown, so that max_lag refuses its answers: the leader answers
 * a follower's long poll at least every 500 ms (SL_FETCH_WAIT_MS in
 * server/fetch.c) plus a round trip, so 2 s is four polls missed: the
 * connection is down or the leader stalled, and it may hold any number of
 * events this replica has not heard of.
 */
#define SL_PQUERY_HEARD_MAX_MS 2000u

/*
 * The lag of a model that has applied every event below `next` counts from
 * the end of the partition's log as this replica knows the leader holds
 * it durably: alone, its durable end; a leader, its own durable end (the
 * HW included, and what waits for the followers: those events exist and
 * will be shown); a follower, the leader's durable end as it last heard
 * it (leader_end), never less than what it shows. Not the leader's HW: the
 * HW a follower heard trails what the leader may ack by a round trip or
 * more (a follower learns a new HW only in its next answer), while every
 * acked event is below the leader's durable end; so the lag is an upper
 * bound and max_lag never lets a follower answer from further behind than
 * it says. The price: a follower that holds everything but has not heard
 * the HW catch up shows a lag until it does. Sets q->lag, q->follower,
 * q->heard_ms; any thread.
 */
void sl_pquery_lag(const struct sl_partition *p, uint64_t next, struct sl_pquery *q);
/*
 * Answers q (status, msg, out; nothing signalled) from a model that has
 * applied every event below `next`: the lag check (sl_pquery_lag; with
 * max_lag, a follower that has not heard from its leader within
 * SL_PQUERY_HEARD_MAX_MS is refused too), then the plugin's query. On the
 * owning reactor (er NULL), or, for a concurrent-query projection, on any
 * thread with er a record of the projections' epoch (the query runs inside
 * its read section).
 */
void sl_pquery_answer(const struct sl_proj *pj, struct sl_pquery *q, uint64_t next,
                      struct sl_epoch_rec *er);
/* sl_pquery_answer on the asking thread of a concurrent-query projection,
 * against the offsets the reactor publishes: `applied_pub` is stored with
 * release after each step, so the model read holds at least every event
 * under it. */
void sl_pquery_answer_published(const struct sl_proj *pj, struct sl_pquery *q,
                                struct sl_epoch_rec *er);
/* The state writer's word that pp's (or its rebuild's) state was committed
 * (an on_commit callback, arg = pp): wakes its reactor, which takes the
 * commit in and answers the queries waiting for it. */
void sl_proj_part_wake(void *arg);
/* Whether pp has applied `offset` by the offsets it publishes (any thread). */
bool sl_proj_part_applied(const struct sl_proj_part *pp, uint64_t offset);
/* Rebuilds, on the owning reactor: opens q->rb, a second instance from
 * offset 0 that never snapshots (0; else q is answered, -errno); once it
 * has applied what the live one has, compares the two models' bytes (0,
 * or -ENOMEM with q->msg set); and closes q->rb and answers q. */
int sl_pquery_rebuild_open(const struct sl_proj *pj, struct sl_pquery *q);
int sl_pquery_rebuild_compare(const struct sl_proj *pj, struct sl_pquery *q);
void sl_pquery_rebuild_end(struct sl_pquery *q, int status);
#endif /* !__cplusplus */

#endif
