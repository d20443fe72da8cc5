/*
 * topic: the run-time topics and their partitions.
 *
 * A topic is built once at start-up from its config and is then immutable,
 * shared read-only by every reactor. Each partition is owned by exactly one
 * reactor (partition p of every topic lives on reactor p % n_reactors) and
 * only that reactor's thread touches its mutable state: no locks.
 *
 * A partition appends events to its log (engine/log) and keeps, in offset
 * order, a record of who is waiting for each appended event's ack. Acks are
 * released only up to `durable`: the offset below which everything is
 * durable under the topic's policy, which the log's group commit moves.
 * A partition whose log could not be opened (corruption) or has failed (I/O
 * error) keeps its error text and refuses appends; the others keep serving.
 *
 * Ownership: sl_topics_create() returns an array the caller frees with
 * sl_topics_destroy(). Threads: create/destroy before/after the reactors
 * run; lookups from any thread; partition mutators only from the owner.
 */
#ifndef SL_TOPIC_H
#define SL_TOPIC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dedup/dedup.h"
#include "dedup/idwin.h"
#include "hot/hot.h"
#include "log/log.h"
#include "part/part.h"

/*
 * The most events a producer may have unacknowledged: the credit window a
 * Welcome grants, and the window of each partition's sequence table (which
 * must cover every retry a producer within its credits can make).
 */
#define SL_PRODUCER_WINDOW 8192u

/* sl_ack_ref.flags / sl_xack.flags */
#define SL_ACK_DUP            1u /* stored before: the offset is the original */
#define SL_ACK_OFFSET_UNKNOWN 2u /* a duplicate stored too long ago to know where */
#define SL_ACK_DROPPED        4u /* not stored: shed by the topic's overload policy */

/* Who waits for one event's ack: a connection on some reactor. */
struct sl_ack_ref {
	uint64_t base_seq; /* the Produce frame's base_sequence */
	uint64_t offset;   /* where the event was stored */
	uint32_t conn;     /* connection slot on reactor `core` */
	uint32_t gen;      /* that slot's generation, to drop acks of closed conns */
	uint32_t index;    /* event index in the Produce frame */
	uint32_t len;      /* the event's bytes: credits its ack gives back */
	uint16_t core;     /* reactor that owns the connection */
	uint16_t flags;    /* SL_ACK_* */
};

struct sl_topic;

/*
 * A partition's replication state in cluster mode (NULL on a node alone and
 * for a partition this node holds no replica of). The cluster's view of the
 * partition (leader, epoch, replicas, in-sync set) is stored by the control
 * thread that follows etcd; the owner reactor reads it each turn. Follower
 * reports are stored by the reader thread (the leader's side of a
 * ReplicaFetch); the leader's answers by this node's fetcher (the
 * follower's side). All fields below the role are atomics for that reason;
 * none is on the per-event path but `role` (one relaxed load per Produce
 * frame's partition).
 */
#define SL_REPL_MAX    7u  /* replicas of a partition (SL_CONFIG_MAX_REPLICAS) */
#define SL_REPL_ID_MAX 64u /* a node id with its NUL */
#define SL_REPL_EPOCHS 32u /* (epoch, start) pairs kept for fetchers' answers */

enum sl_repl_role {
	SL_REPL_NONE = 0, /* not placed yet, or no replica here: refuse */
	SL_REPL_LEADER,
	SL_REPL_FOLLOWER,
};

enum sl_repl_acks {
	SL_REPL_ACKS_LEADER = 0,
	SL_REPL_ACKS_QUORUM,
	SL_REPL_ACKS_ALL,
};

struct sl_prepl_peer {
	char node[SL_REPL_ID_MAX];     /* a replica's node id (set before published) */
	_Atomic uint64_t durable;      /* leader: its durable end, as it last reported */
	_Atomic uint64_t caught_up_ns; /* leader: when it last reported the leader's end */
	_Atomic uint64_t fetch_ns;     /* leader: when it last fetched */
	_Atomic uint64_t fetch_bytes;  /* leader: bytes sent to it */
	uint64_t prev_local, prev_ns;  /* reader: the leader's end at its last report */
	uint64_t hw_told;              /* reader: the HW in its last answer */
};

struct sl_fetcher; /* the server's, that follows this partition's leader */

struct sl_prepl {
	enum sl_repl_acks acks;
	uint32_t min_insync;
	uint64_t lag_max_ns;
	/* The cluster's view; the control thread writes it (under `mu`, then
	 * bumps `gen` with release and wakes the owner), readers copy it under
	 * `mu`. The owner takes want_role and want_epoch into role and epoch
	 * (a new leader epoch is written to the epoch file first, so that no
	 * event of the epoch is taken before its start is on disk). */
	pthread_mutex_t mu;
	_Atomic uint32_t gen;
	uint32_t seen_gen; /* owner */
	uint32_t want_role, want_epoch;
	/* The etcd revision of the state last taken (under mu): an older one
	 * that arrives later (a runtime topic's cached states applied by its
	 * creator while the watch delivers newer ones) is not taken. */
	int64_t want_rev;
	_Atomic uint32_t role; /* enum sl_repl_role, as the owner applies it */
	/* A planned move away from this leader (server/cluster.c): 1 no new
	 * events (the owner says it saw it in moving_seen, after its turn's
	 * appends), 2 the HW stands still too; 0 again once the new state
	 * makes this node a follower. */
	_Atomic uint32_t moving;
	_Atomic uint32_t moving_seen;
	_Atomic uint32_t epoch;
	uint32_t n_peers; /* replicas, this node included */
	uint32_t self;    /* this node's index in peers */
	struct sl_prepl_peer peers[SL_REPL_MAX];
	_Atomic uint32_t isr_mask; /* bit i: peers[i] in sync (as etcd holds it) */
	char leader[SL_REPL_ID_MAX];
	char leader_native[256]; /* host:port of the leader's native port */
	/* Published by the owner. */
	_Atomic uint64_t local_end;     /* this replica's log end */
	_Atomic uint64_t local_durable; /* this replica's own durable end */
	_Atomic uint64_t hw;            /* the high watermark as this node knows it */
	/* Leader under `acks: leader`: acks go out at its own durable end,
	 * ahead of the HW (which readers see, and which a failover keeps:
	 * sl_prepl_hw). 0 otherwise, and again at every change of role. */
	_Atomic uint64_t ack_end;
	_Atomic uint64_t leader_hw;     /* follower: the HW the leader last sent */
	_Atomic uint64_t leader_end;    /* follower: the leader's durable end it last sent */
	_Atomic uint64_t leader_end_ns; /* follower: when it last heard from the leader */
	/* Follower: its log is known to match its leader's up to here (the
	 * fetcher checked where they part, or the leader's own batches were
	 * appended). Set back to what readers were shown when the leader
	 * changes: until the new one said where they part, the HW it sends
	 * may cover offsets where this log holds other events (a former
	 * leader's, about to be cut), which must be neither read nor acked. */
	_Atomic uint64_t agreed;
	struct sl_epochs *epoch_file;       /* owner: the log's leader-epoch file */
	struct sl_fetcher *_Atomic fetcher; /* follower: who fetches for it */
	/* Epochs this replica's log holds, oldest first (the epoch file's
	 * tail), for the fetch answers the reader builds; under `mu`. */
	uint32_t n_epochs;
	uint32_t epochs[SL_REPL_EPOCHS];
	uint64_t epoch_starts[SL_REPL_EPOCHS];
};

/*
 * The high watermark a leader may publish: under `quorum` (and `leader`)
 * the end a majority of the replicas hold durably; `all` the lowest durable
 * end in the in-sync set (the leader's included), and no progress while the
 * set is smaller than min_insync. Under `leader` acks do not wait for it
 * (ack_end), but readers do: the election takes the most complete replica
 * of a majority, so what they are shown survives a failover and is never
 * cut, where the leader's own end (what it acked) may be. Any thread; reads
 * the atomics once each.
 */
uint64_t sl_prepl_hw(struct sl_prepl *r, uint64_t local_durable);

/* Whether this node may take a new event for the partition now: 0, or
 * -SL_ENOT_LEADER, or -SL_ENOT_ENOUGH_REPLICAS (acks: all, fewer than
 * min_insync in sync). Any thread (relaxed loads: a stale answer is settled
 * by the owner, which acks only below the HW). */
static inline int sl_prepl_admit(const struct sl_prepl *r)
{
	if (atomic_load_explicit(&r->role, memory_order_relaxed) != SL_REPL_LEADER ||
	    atomic_load_explicit(&r->moving, memory_order_acquire))
		return -SL_ENOT_LEADER;
	if (r->acks == SL_REPL_ACKS_ALL &&
	    (uint32_t)__builtin_popcount(atomic_load_explicit(&r->isr_mask, memory_order_relaxed) |
	                                 (1u << r->self)) < r->min_insync)
		return -SL_ENOT_ENOUGH_REPLICAS;
	return 0;
}

struct sl_partition {
	struct sl_topic *topic;
	uint32_t id;
	uint32_t owner; /* reactor index */
	uint32_t rslot; /* index among its owner's partitions */
	/* FIFO of ack refs, in offset order; power-of-two capacity, grows. */
	struct sl_ack_ref *waiting;
	uint32_t w_head, w_tail, w_cap;
	bool dirty;         /* on its reactor's flush list */
	struct sl_log *log; /* NULL when the partition is refused (or its topic deleted) */
	bool refused;       /* its log was refused at open (set before any thread reads) */
	char *dir;          /* the log's folder, for readers */
	/* `durable` published for other threads (readers, metadata): stored
	 * with release by the owner after the log moved it. */
	_Atomic uint64_t durable_pub;
	_Atomic uint64_t start_pub; /* first offset stored (release after retention) */
	/* Retention (sl_log_retain; the owner at its tick): what holds the
	 * log back (a follower's name, NULL when nothing does), segments and
	 * bytes deleted, for status and metrics. */
	_Atomic(const char *) held_by_pub;
	_Atomic uint64_t retained_segments_pub, retained_bytes_pub;
	uint64_t retain_rolls; /* owner: the log's rolls at the last pass */
	/* Cuts of the log (cluster mode, sl_partition_truncate): bumped with
	 * release by the owner after each, before local_end, local_durable or
	 * durable_pub say anything of the log written again past it. Every
	 * view of the folder follows it (sl_log_view_follow_cuts). */
	_Atomic uint64_t cuts;
	char *error; /* why it is refused or failed; NULL when fine */
	/* The text producers get with ERR_DISK_FULL. Both are written before any
	 * ack that carries them is routed (error: once, when the log fails) and
	 * never change after, so a connection's reactor reads them freely. */
	char *full_msg;
	bool full; /* owner: the log is full (said on stderr when it turned) */
	/* Producer sequences stored here (engine/dedup): checked before each
	 * append, checkpointed at every segment seal, rebuilt at open from the
	 * last checkpoint plus the records after it. */
	struct sl_dedup *dd;
	uint64_t dd_replayed;                /* records replayed at open */
	uint64_t dd_ckpt_last, dd_ckpt_prev; /* checkpoints kept; UINT64_MAX = none */
	/* Exactly once that lasts (issue 20), counted by the owner and
	 * published at its tick: events refused because the producer may
	 * have been forgotten (ERR_PRODUCER_EXPIRED) or because tracking was
	 * impossible (ERR_UNTRACKED), and events stored without a sequence
	 * entry (a follower's record that failed: memory; never on a leader,
	 * which refuses instead). */
	uint64_t dd_expired_refused, dd_untracked, dd_untracked_stored;
	/*
	 * Event ids stored here recently (dedup/idwin.h), when the topic's
	 * dedup_window is on (NULL otherwise): a client producer's event whose
	 * id is found is answered like a sequence duplicate. Every event
	 * stored is added after its append (a follower's as it appends its
	 * leader's batches), expired on the tick, rebuilt at open from the
	 * log's last window, cut with the log. Owner thread.
	 */
	struct sl_idwin *idw;
	uint64_t idw_replayed;          /* records read for it at open */
	_Atomic uint64_t id_dups_pub;   /* events answered as duplicates by id */
	_Atomic uint64_t idw_count_pub; /* ids in the window (tick) */
	_Atomic uint64_t idw_bytes_pub; /* its memory (tick) */
	/*
	 * Backpressure. Readers that follow the log behind its writer
	 * (projection appliers, sinks) publish their next offset through a
	 * pointer registered here before the reactors start
	 * (sl_partition_follow); the owner compares them with `durable` every
	 * turn. `pressured` is set by the owner while the partition is over
	 * one of its bounds (events waiting for durability, a follower's
	 * lag) and cleared below half of it; any reactor reads it (relaxed:
	 * a turn's delay in seeing it changes nothing but when credits
	 * resume). The shed counters are added to by whichever reactor
	 * applied the topic's overload policy to an event.
	 */
	_Atomic uint64_t **followers;
	char **follower_names; /* "projection NAME", "sink NAME", "pipeline NAME" (owned) */
	uint32_t n_followers;
	_Atomic uint32_t pressured;        /* SL_PRESSURE_* bits, 0 = flowing */
	_Atomic uint64_t follower_lag_pub; /* events behind durable, slowest follower */
	_Atomic uint64_t waiting_pub;      /* events appended, not yet durable */
	_Atomic uint64_t dropped;          /* shed by `drop` */
	_Atomic uint64_t sampled_out;      /* shed by `sample` */
	_Atomic uint64_t rejected;         /* refused by `reject` */
	_Atomic uint64_t pressured_ns;     /* total time spent pressured */
	_Atomic uint64_t dedup_bytes_pub;  /* memory of the sequence table (tick) */
	_Atomic uint64_t dedup_producers_pub, dedup_forgotten_pub; /* (tick) */
	_Atomic uint64_t dedup_expired_refused_pub, dedup_untracked_pub,
	    dedup_untracked_stored_pub; /* (tick) */
	/* The log's counters (sl_log_stats), copied by the owner each turn. */
	_Atomic uint64_t log_bytes_pub, log_sync_ns_pub, log_rolls_pub, log_roll_ns_pub;
	_Atomic uint64_t log_sync_hist_pub[SL_LOG_SYNC_BUCKETS];
	_Atomic uint64_t log_commit_ns_pub;
	_Atomic uint64_t log_commit_hist_pub[SL_LOG_SYNC_BUCKETS];
	uint64_t pressured_since; /* owner: when the current spell began */
	struct sl_prepl *repl;    /* cluster mode: see above; NULL alone */
	/* Events/s and bytes/s over the last ~10 s (hot/hot.h): sampled by
	 * the owner at its tick, published for status and metrics. */
	struct sl_hot_rate rate;
};

/* sl_partition.pressured */
#define SL_PRESSURE_DURABLE 1u /* too many events waiting for durability */
#define SL_PRESSURE_FOLLOW  2u /* a projection or sink too far behind */

/* What a topic does with events for a pressured partition. */
enum sl_overload {
	SL_OVERLOAD_BLOCK = 0, /* producers get no more credits until it flows */
	SL_OVERLOAD_DROP,      /* acked as dropped, not stored, counted */
	SL_OVERLOAD_SAMPLE,    /* keep a fraction chosen by event id, shed the rest */
	SL_OVERLOAD_REJECT,    /* refused with ERR_OVERLOAD and a retry hint */
};

struct sl_topic_spec {
	const char *name;
	uint32_t n_parts;
	enum sl_part_kind partitioner;
	/* The partitioner's arguments (range's splits, vnodes, directory's
	 * file and fallback); its kind and n_parts are the two above. Read at
	 * build only: the topic's copy of the spec has them cleared. */
	struct sl_part_spec part_args;
	enum sl_log_durability durability;
	uint64_t interval_ns;   /* for SL_LOG_INTERVAL */
	uint64_t segment_bytes; /* 0: 64 MiB */
	enum sl_overload overload;
	double sample_rate; /* for SL_OVERLOAD_SAMPLE: fraction kept, (0, 1] */
	/* Cluster mode (the config's keys; struct sl_prepl). */
	uint32_t replicas; /* 0 or 1: one copy */
	enum sl_repl_acks acks;
	uint32_t min_insync;
	uint64_t replica_lag_max_ns;
	/* The failover controller may make an out-of-sync replica leader when
	 * no clean choice exists (acked events may be lost; counted). */
	bool unclean_election;
	/* Exactly once (issue 20): an idle producer id is forgotten after
	 * producer_expiry_ns (0: never; the table's bound still holds). */
	uint64_t producer_expiry_ns;
	/* Idempotence by event id (struct sl_partition.idw): the window's
	 * length (0: off) and the most ids it keeps per partition. */
	int64_t dedup_window_ms;
	uint32_t dedup_window_events;
	/* Hot keys and partitions (hot/hot.h): the top hot_keys aggregate ids
	 * reported (0: none counted), and the multiple of the topic's mean
	 * rate past which a partition is said to be hot (0: never). */
	uint32_t hot_keys;
	uint32_t hot_factor;
	/* Retention (log.h, sl_log_retain): per partition, 0: no limit. */
	uint64_t retention_bytes;
	uint64_t retention_age_ms;
};

struct sl_topic {
	char *name;
	/* What it was built from (spec.name is `name`); the owner reads
	 * durability and interval from here for topics made at runtime. */
	struct sl_topic_spec spec;
	bool runtime; /* created at runtime (data_dir/topics.yaml) */
	/* A name under SL_TOPIC_INTERNAL_PREFIX: the server's own (consumer
	 * groups' offsets); clients do not produce to it. */
	bool internal;
	_Atomic bool deleted; /* deleted at runtime: found by no lookup */
	uint32_t index;
	uint32_t n_parts;
	struct sl_partitioner part;
	struct sl_partition *parts;
	/* Altered at runtime (the control thread stores, reactors load). */
	_Atomic enum sl_overload overload;
	_Atomic uint64_t sample_below; /* SAMPLE: keep an event when hash(id) < this */
	/* dedup_window (ms, 0: off) and producer_expiry as they are now: each
	 * owner brings its partitions' id windows in line (sl_reactor_retune),
	 * so no other thread touches a window; the expiry is read at ticks. */
	_Atomic int64_t dedup_window_ms;
	_Atomic uint64_t producer_expiry_ns;
	_Atomic uint32_t hot_factor; /* spec.hot_factor, alterable */
	/* Retention per partition (spec's, alterable: the owners read them at
	 * every pass, sl_log_retain). 0: no limit. */
	_Atomic uint64_t retention_bytes;
	_Atomic uint64_t retention_age_ms;
	/* The hot-key summaries, one per reactor (index = owner), each fed
	 * and published by that reactor alone: NULL for a reactor that owns
	 * no partition of the topic, and all NULL (hot NULL) when hot_keys
	 * is 0. Built with the topic, never moved. */
	struct sl_hot **hot;
	uint32_t n_hot; /* hot[0..n_hot) built: min(reactors, partitions) */
};

/* Topic names under this prefix are the server's own topics, made by the
 * server only (group/group.h: SL_GROUP_TOPIC). */
#define SL_TOPIC_INTERNAL_PREFIX "__sluice"

/* Topics a server holds at most, deleted ones included (their slots are
 * never reused while it runs): the array never moves. */
#define SL_TOPICS_MAX 256u

struct sl_topics {
	struct sl_topic *v; /* SL_TOPICS_MAX slots */
	/* Slots in use: the control thread builds slot n whole, then stores
	 * n + 1 (seq_cst); every other thread reads it and sees built slots. */
	_Atomic uint32_t n;
	struct sl_segprep *prep; /* prepares every partition's next segment */
	/* One per reactor (index = owner), for its fsync-policy partitions
	 * (log.h: the journal); NULL for a reactor with few of them. Set by
	 * the control thread before the reactor adopts partitions that use
	 * it; read with acquire elsewhere (metrics). */
	struct sl_journal *_Atomic *journals;
	uint32_t n_journals;
	/* For topics added at runtime. */
	char *data_dir;
	uint32_t n_reactors;
	struct sl_producers *producers;
};

/*
 * Builds the topics and opens (recovering) every partition's log under
 * `data_dir`/<topic>/<partition>, with its producer sequence table, and
 * seeds `producers` (ids, epochs, next sequences) from what the partitions
 * hold. A partition whose log is corrupt is kept, refused, with its error
 * (printed to stderr); a data_dir that cannot be used fails the whole call
 * with `err` saying why.
 */
int sl_topics_create(const struct sl_topic_spec *specs, uint32_t n, uint32_t n_reactors,
                     const char *data_dir, struct sl_producers *producers, struct sl_topics *out,
                     char *err, size_t errlen);
void sl_topics_destroy(struct sl_topics *t);

/*
 * Builds a topic at runtime in the next free slot (control thread, while
 * the reactors run): its folders and logs opened (without a journal: the
 * owner attaches it when it adopts the partition, sl_log_set_journal), a
 * journal created for a reactor that now owns more fsync partitions than
 * SL_JOURNAL_MIN_PARTITIONS. Not yet visible: the caller has the reactors
 * adopt its partitions, then sl_topics_publish. 0 with *index, -ENOSPC
 * (SL_TOPICS_MAX), or -errno with err.
 */
int sl_topics_add(struct sl_topics *t, const struct sl_topic_spec *spec, uint32_t *index, char *err,
                  size_t errlen);
/*
 * A journal for each reactor that now owns more fsync partitions than
 * SL_JOURNAL_MIN_PARTITIONS and has none (a topic's durability altered to
 * fsync: control thread, before the owners switch its partitions, which
 * then join it). 0, or -errno with err (those partitions then fdatasync
 * their own segments).
 */
int sl_topics_journals(struct sl_topics *t, char *err, size_t errlen);
/* Makes slot `index` (the last added) visible to lookups. */
void sl_topics_publish(struct sl_topics *t, uint32_t index);
/* Undoes an sl_topics_add the reactors never adopted. */
void sl_topics_unadd(struct sl_topics *t, uint32_t index);

/* Topic by name (not NUL-terminated), or NULL. */
struct sl_topic *sl_topics_find(const struct sl_topics *t, const char *name, size_t len);

/*
 * Owner thread only. Admits one encoded event of producer (pid, epoch) with
 * sequence `seq`: pid 0 is a producer without deduplication (stored as is).
 * `id` points at the event's 16-byte id inside `ev` (the scan that
 * validated the event found it: it is not looked for again), NULL when it
 * has none. With the topic's dedup_window on, a client producer's event
 * (pid not 0 and not a pipeline stage's, SL_PRODUCERS_PIPE_ID_BASE) whose
 * sequence is new, or a gap, and whose id is in the window is a duplicate:
 * answered like a sequence duplicate, not stored, its sequence not recorded
 * (so its own resend comes back as a gap, and is found by id again). Every
 * event stored, whatever its producer, is added to the window. An id
 * stored at t is a duplicate while now - t < dedup_window (ms, the batch's
 * append time against CLOCK_REALTIME), exactly at the edge: an entry past
 * it that the tick has not expired yet is expired here, not answered.
 * A new event is appended and `ref` waits for its ack (0). A duplicate is not
 * stored again: ref->offset is the original's and ref->flags says so; if the
 * original is not durable yet, `ref` waits for it like an append (0), else
 * the caller answers it now (1). Errors: -SL_EFENCED (an older epoch than one
 * stored here), -SL_ESEQ_GAP (older than a later sequence of the producer
 * stored here: out of order), -SL_ELOG_FAILED (partition refused or failed),
 * -SL_EPRODUCER_EXPIRED (a resend, resend_s > 0 seconds after its first
 * sending, of a producer this partition may have forgotten since: dedup.h),
 * -SL_EUNTRACKED (no memory to track it: not stored), -ENOMEM, -EMSGSIZE.
 */
int sl_partition_produce(struct sl_partition *p, uint64_t pid, uint32_t epoch, uint64_t seq,
                         uint32_t resend_s, const uint8_t *ev, uint32_t len, const uint8_t *id,
                         struct sl_ack_ref *ref);

/* How much earlier than the client's word a resend may have been stored,
 * in ms: the table's clock lags the wall clock by up to a tick (100 ms),
 * the client's age is rounded to whole seconds on the way to the owner, and
 * the first sending reached the server after the client's timestamp. */
#define SL_RESEND_MARGIN_MS 2000u

/*
 * Owner thread only, a follower's partition: appends record batches fetched
 * from the leader verbatim (sl_log_append_raw: each checked, continuing the
 * log exactly; each batch's leader epoch the one the epoch file gives its
 * offsets, else -EPROTO) and records their producer sequences in the
 * partition's table. Returns the bytes taken (fewer than len: the rest after the next
 * flush, as sl_log_append_raw says) with *end, or the log's error.
 */
int sl_partition_append_raw(struct sl_partition *p, const uint8_t *bytes, size_t len,
                            uint64_t *end);

/*
 * Owner thread only, a follower's partition: makes the log end at `offset`
 * (sl_log_truncate), because the leader it now follows does not hold what
 * lies past it (server/fetch.c finds where the logs part, KIP-101). The
 * leader-epoch file and its copy in `repl` lose the epochs starting at or
 * past it, and the producer sequences are rebuilt from the log that stays:
 * the sequences the cut events carried must not answer a resend of them as
 * a duplicate. Events waiting for their ack at or past `offset` are taken
 * out of the waiting FIFO (fn(arg, ref) for each, in order; the caller
 * answers them); the others stay, in order. -EBUSY while the log is not
 * idle (call again after its I/O); -ERANGE below what readers were shown
 * (durable_pub: a failover must never take back what was read); else 0 or
 * -errno, with err saying why. Rebuilding the sequences replays the log
 * from the last producer checkpoint below `offset` (at most a segment) on
 * the caller's thread: rare, once per leader change that needs it.
 */
int sl_partition_truncate(struct sl_partition *p, uint64_t offset, struct sl_producers *prods,
                          void (*fn)(void *arg, const struct sl_ack_ref *ref), void *arg, char *err,
                          size_t errlen);

/* What may be acked: the log's acked end, or the HW of a replicated one
 * (under `acks: leader`, the leader's own durable end, ack_end). */
static inline uint64_t sl_partition_ackable(const struct sl_partition *p)
{
	if (!p->repl)
		return sl_log_acked(p->log);
	uint64_t hw = atomic_load_explicit(&p->repl->hw, memory_order_relaxed);
	uint64_t own = atomic_load_explicit(&p->repl->ack_end, memory_order_relaxed);
	return own > hw ? own : hw;
}

/*
 * Registers a follower's published next offset (an `_Atomic uint64_t` the
 * follower's thread stores with release) for the owner's lag bound and
 * retention's hold (nothing it has not read is deleted), under `name`
 * ("KIND NAME": status says it holds the log; copied). Before the reactors
 * start only, or by the owner; the pointer must outlive the topics. 0 or
 * -ENOMEM.
 */
int sl_partition_follow(struct sl_partition *p, _Atomic uint64_t *next, const char *kind,
                        const char *name);

/* Owner thread only: after the log failed, answers every waiting event. */
static inline bool sl_partition_pop_any(struct sl_partition *p, struct sl_ack_ref *out)
{
	if (p->w_head == p->w_tail)
		return false;
	*out = p->waiting[p->w_head++ & (p->w_cap - 1)];
	return true;
}

/* Owner thread only. Pops the next ack ref whose event is below `durable`
 * (the log's durable end). */
static inline bool sl_partition_pop_durable(struct sl_partition *p, uint64_t durable,
                                            struct sl_ack_ref *out)
{
	if (p->w_head == p->w_tail)
		return false;
	struct sl_ack_ref *r = &p->waiting[p->w_head & (p->w_cap - 1)];
	if (r->offset >= durable)
		return false;
	*out = *r;
	p->w_head++;
	return true;
}

static inline uint32_t sl_partition_waiting(const struct sl_partition *p)
{
	return p->w_tail - p->w_head;
}

#endif
