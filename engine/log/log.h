/*
 * log: the durable, segmented, checksummed log of one partition.
 *
 * On disk, a partition is a folder of segment files named by the offset of
 * their first event (`00000000000000000000.log`). A segment is pre-allocated
 * (fallocate) so that appends write into allocated blocks: a partition's
 * first segment (and a recovered one) in steps ahead of its writes,
 * SL_LOG_PREALLOC_FIRST at creation and then twice the last step up to
 * SL_LOG_PREALLOC_MAX_STEP, so that an idle partition holds 1 MiB (a topic
 * of 1,000 partitions took 64 GB before its first event when every segment
 * was allocated whole); the segments after it, prepared for a partition
 * busy enough to fill half of one, whole. A segment holds record batches
 * back to back, each 8-byte aligned (the layout:
 * log/batch.h). A sealed segment is cut to its size and gets a sparse index
 * beside it (`.idx`, log/index_format.h). On a filesystem that cannot
 * fallocate (FUSE, some network filesystems: EOPNOTSUPP) the log says so
 * once on stderr and goes on without pre-allocation: the active segment
 * then grows with the data, and everything else is the same.
 *
 * A batch is one producer's consecutive events in this partition, so every
 * stored event carries its producer id, epoch and sequence: what exactly-once
 * recovery needs, for ~2 bytes an event.
 *
 * Group commit. Appends go into an in-memory buffer; sl_log_flush() writes
 * it (one pwrite: a copy into the page cache) and hands its fdatasync to the
 * caller's io_uring under the `fsync` policy; appends continue into the
 * buffer, emptied by the write, while that is in flight. When the I/O
 * completes, everything it covered becomes
 * durable at once (sl_log_durable) and the next buffer goes out. A failed
 * write or fdatasync is fatal for the log: nothing it covered is ever
 * reported durable, the log refuses further appends (-SL_ELOG_FAILED), and the
 * error says which file failed.
 *
 * A full device is not fatal. A write that gets ENOSPC (or EDQUOT) was
 * refused by the kernel, not lost after it took it, so writing the same bytes
 * again is safe (unlike a failed fdatasync): the log turns `full`, refuses
 * appends with -SL_ELOG_FULL (retryable: nothing of those events is stored),
 * keeps what its buffer holds, and sl_log_flush writes it again every
 * SL_LOG_FULL_RETRY_NS until it goes through, then serves as before. A roll
 * that finds no space for the next segment is retried the same way.
 *
 * Recovery (sl_log_open) reads only the last segment: batches are checked
 * one after the other. A bad batch (incomplete, bad checksum, out of
 * sequence) is a torn tail when nothing valid follows it, or when what
 * follows belongs to the same group commit: `unit_start`, the segment
 * position where a batch's group-commit write began, says so. Under the
 * fsync policy one write is in flight at a time and nothing it covers is
 * acked before its fdatasync, so only the last write can be torn, and a bad
 * batch followed by a batch of a *later* write is corruption: the partition
 * is refused with the file and position instead of cutting acked data. A torn
 * tail is zeroed on disk and appends resume there. (Under `interval` and
 * `none` several writes may be unsynced at a crash, so any bad batch is a torn
 * tail: those policies do not promise durability.) Sealed segments are
 * checked batch by batch when read, never trusted.
 *
 * A replicated log (opts.replicated: a follower's, filled by
 * sl_log_append_raw) takes any damaged batch for a torn tail, even with
 * valid batches after it: its batches carry the leader's unit_start, which
 * says nothing about this node's own writes, and the copy of record is the
 * quorum's, not this file (the follower fetches the cut batches again). The
 * cut is said on stderr with the file and byte.
 *
 * Ownership: sl_log_open() returns a log the caller closes with
 * sl_log_close(). Threads: a log and its readers belong to one thread (the
 * reactor that owns the partition, or a tool working on a closed log).
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include "log/batch.h"

struct sl_journal;
struct sl_jrec;

enum sl_log_durability {
	SL_LOG_FSYNC = 0, /* durable after fdatasync: the default */
	SL_LOG_INTERVAL,  /* durable after write; fdatasync every interval_ns */
	SL_LOG_NONE,      /* durable after write; the kernel flushes when it likes */
};

/* A new segment's first pre-allocated step: 1,000 idle partitions hold
 * 1 GB. Later steps double up to SL_LOG_PREALLOC_MAX_STEP (a fallocate
 * every 16 MiB written: a few microseconds per megabyte). */
#define SL_LOG_PREALLOC_FIRST    (1u << 20)
#define SL_LOG_PREALLOC_MAX_STEP (16u << 20)

struct sl_log_opts {
	const char *dir;        /* the partition's folder; created if missing */
	uint64_t segment_bytes; /* roll size; segments are pre-allocated to it */
	enum sl_log_durability durability;
	uint64_t interval_ns; /* for SL_LOG_INTERVAL */
	/* Test hook: the Nth fdatasync (1-based) fails with -EIO as if the
	 * device had. 0 in production. */
	uint32_t fail_sync_at;
	/* Test hook: the append time (ms) a new batch takes instead of
	 * CLOCK_REALTIME's (seek by time and retention by age without
	 * waiting for the clock). NULL in production. */
	int64_t (*clock_ms)(void);
	/*
	 * Called on the log's thread when a segment has been sealed (synced
	 * whole) and before the segment starting at `next_base` is created:
	 * every event below next_base is now on the device. State derived from
	 * the log (the partition's producer sequences) is checkpointed here,
	 * so recovery replays at most the last segment. May be NULL.
	 */
	void (*on_seal)(void *arg, uint64_t next_base);
	void *on_seal_arg;
	/* Prepares each next segment off this thread (below). NULL: a roll
	 * creates the next segment in place, fallocate()d. */
	struct sl_segprep *prep;
	/* Test hook: called instead of fallocate(2) for this log's segments
	 * (created, prepared or recovered), so that a test can act out a
	 * filesystem without it (return -1 with errno EOPNOTSUPP). NULL in
	 * production. */
	int (*fallocate_fn)(int fd, int mode, off_t off, off_t len);
	/*
	 * Journaled (fsync policy only): the log's durability comes from its
	 * reactor's journal (below) instead of an fdatasync of its own.
	 * journal_key names the log in the journal (its folder relative to
	 * data_dir); journal_arg is handed back to the journal's callbacks
	 * (the partition). `replay`: what recovery read from the journals,
	 * replayed into the log at open (NULL: nothing).
	 */
	struct sl_journal *journal;
	const char *journal_key;
	void *journal_arg;
	struct sl_jrec *replay;
	/*
	 * A replica's log (filled by sl_log_append_raw from a leader): its
	 * batches keep the leader's unit_start, which says nothing of this
	 * node's own writes, so recovery takes any damaged batch for a torn
	 * tail (below, Recovery).
	 */
	bool replicated;
};

/*
 * The segment preparer: a thread that makes each log's NEXT segment ahead
 * of its roll, as `next.prep` in the log's folder, pre-allocated to
 * segment_bytes and synced, so that a roll costs a rename and a folder sync
 * instead of a 64 MiB fallocate and two syncs on the reactor.
 *
 * Writing zeros instead of fallocate()ing (so that later fdatasyncs
 * overwrite written blocks: data only, no extent conversion) was measured
 * and lost end to end, twice: 0.72-1.0M events/s against 0.84-1.35M
 * (`sluice bench`, 8 partitions), and 1.14-1.35M against 1.58-1.72M with
 * one sync in flight per reactor (2026-11-25): the zeros double the bytes
 * written. It was removed; segment recycling would get the overwrite rate
 * without the zeros. A `next.prep` left by a crash is deleted at open.
 *
 * Ownership: sl_segprep_create() starts the thread; sl_segprep_destroy()
 * stops it, after every log using it is closed. Threads: logs call it from
 * their own thread; the preparer touches only the request it took.
 */
struct sl_segprep;
int sl_segprep_create(struct sl_segprep **out);
/*
 * Writes a small file off the calling thread: `buf` replaces the file at
 * `path` (sl_file_replace: tmp, fdatasync, rename, folder sync), and once
 * that worked `unlink_after` (NULL: none) is removed. Takes the three
 * (malloc'd; the preparer frees them) and returns 0, or -ENOMEM, or -EBUSY
 * when the preparer already holds 4 MiB of files (memory stays bounded; the
 * caller then writes the file itself), leaving them with the caller. Files
 * are written in the order asked, ahead of segments;
 * a failure is reported on stderr, since only files recovery can rebuild or
 * do without go this way (segment indexes, producer checkpoints). Used by
 * rolls, which otherwise wait for these syncs on the reactor. Any thread.
 */
int sl_segprep_write_file(struct sl_segprep *p, char *path, void *buf, size_t len,
                          char *unlink_after);
/* Stops the thread once the files asked for are written. */
void sl_segprep_destroy(struct sl_segprep *p);
/* Waits until every request and file asked so far is done. */
void sl_segprep_drain(struct sl_segprep *p);

/*
 * Runs fn(arg) on the preparer's thread, in order with the files asked for
 * (a journal's checkpoint). 0, or -ENOMEM (the caller runs it itself).
 * sl_segprep_drain waits for it too.
 */
int sl_segprep_call(struct sl_segprep *p, void (*fn)(void *arg), void *arg);

/* Upper bounds (us) of the sync- and commit-latency buckets: the disk's tail
 * is what ack latency's tail is made of. */
#define SL_LOG_SYNC_BUCKETS 10
#define SL_LOG_SYNC_BUCKETS_US                                                                     \
	{                                                                                          \
		250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, UINT64_MAX                \
	}

/* ---- the journal: one durable write path per reactor ------------------------ */

/*
 * Under the fsync policy a partition's log does not fdatasync its own
 * segment: at every group commit it seals the batches appended since the
 * last and hands them to its reactor's journal (sl_log_flush returns 3),
 * which writes one frame of every log's bytes (journal_format.h) and
 * fdatasyncs it, one frame in flight at a time. When the sync completes
 * every log in the frame is durable (acks go out: sl_log_acked), and the
 * logs' bytes are then written to their segments, which readers read:
 * at once when a log holds SL_JOURNAL_SEGWRITE_MIN, else after a delay
 * that grows with the partitions (SL_JOURNAL_LAZY_*), or as soon as the
 * reactor would sleep; sl_log_durable (what readers may read) is the
 * smaller of the acked end and what is in the segment. One device flush per
 * commit whatever the partition count (the old path: one per partition).
 *
 * Segments are not fdatasynced per commit any more; what bounds the
 * journal is its checkpoint: a file past file_bytes is retired (every log
 * that wrote to it writes its bytes to its segment, the preparer
 * fdatasyncs those segments, then deletes the file). At open, recovery
 * (struct sl_jrec) replays what the journals hold after the segments' ends.
 *
 * Ownership: sl_journal_create() returns a journal destroyed after its logs
 * are closed. Threads: the reactor that owns it (its logs' owner); the
 * checkpoints run on the preparer's thread and touch only their own job.
 */
struct sl_journal;

/* The journals' folder in data_dir (<data_dir>/.journal/<reactor>/): a name
 * no topic can have (names never start with '.'). */
#define SL_JOURNAL_DIR_NAME ".journal"

/* A reactor gets a journal when it owns more fsync partitions than this;
 * with fewer each partition fdatasyncs its own segment (topic.c has the
 * measurements). */
#ifndef SL_JOURNAL_MIN_PARTITIONS /* -D for experiments (benches of the journal at 8) */
#define SL_JOURNAL_MIN_PARTITIONS 16u
#endif

/* A file is retired past this size: the replay after a crash is at most
 * about this much per reactor (two files while a checkpoint runs). */
#define SL_JOURNAL_FILE_BYTES (64ull << 20)
/* A log's bytes go to its segment right after their commit from here. */
#define SL_JOURNAL_SEGWRITE_MIN (16u << 10)
/* Else they wait n_logs * PER_LOG, within [MIN, MAX]: 8 partitions a
 * millisecond, 1,000 on one reactor 20 ms (a pwrite costs ~2 us whatever
 * its size up to a few KiB: 1,000 partitions each written every commit
 * were ~2 us an event). */
#define SL_JOURNAL_LAZY_NS_PER_LOG (20ull * 1000)
#define SL_JOURNAL_LAZY_MIN_NS     (1ull * 1000 * 1000)
#define SL_JOURNAL_LAZY_MAX_NS     (50ull * 1000 * 1000)

struct sl_journal_opts {
	const char *dir;         /* <data_dir>/.journal/<reactor>; created */
	uint64_t file_bytes;     /* 0: SL_JOURNAL_FILE_BYTES */
	uint64_t first_seq;      /* the first file's number (sl_jrec_next_seq) */
	struct sl_segprep *prep; /* runs checkpoints; NULL: on the reactor */
	int (*fallocate_fn)(int fd, int mode, off_t off, off_t len); /* test hook */
	uint32_t fail_sync_at; /* test hook: the Nth fdatasync fails with -EIO */
};

struct sl_journal_stats {
	uint64_t frames, chunks, bytes;
	uint64_t syncs, sync_ns;
	uint64_t sync_hist[SL_LOG_SYNC_BUCKETS];
	uint64_t segment_writes;
	uint64_t files, checkpoints;
	uint64_t full_episodes;
};

int sl_journal_create(const struct sl_journal_opts *o, struct sl_journal **out, char *err,
                      size_t errlen);
void sl_journal_destroy(struct sl_journal *j);

/* What the journal's callbacks report, per log (its journal_arg): status 1,
 * the log's acked or readable end may have moved; 0, it turned full or
 * serves again (sl_log_full); < 0, the log failed (sl_log_error says why). */
typedef void (*sl_journal_cb)(void *arg, void *log_arg, int status);

/*
 * Writes the frame gathered since the last commit (one pwrite) and queues
 * its fdatasync on `ring` tagged `ud`, unless one is in flight. Returns 1
 * when queued, 0 when there is nothing to do (or the device is full: the
 * frame is written again every SL_LOG_FULL_RETRY_NS, the logs refuse
 * appends meanwhile), -SL_ELOG_FAILED once the journal failed (every log
 * in the frame reported through cb). May retire the file first (cb for
 * the logs whose segment writes that made).
 */
int sl_journal_commit(struct sl_journal *j, struct io_uring *ring, uint64_t ud, sl_journal_cb cb,
                      void *arg);
/* The fdatasync's completion: 1, or -SL_ELOG_FAILED; cb per log. */
int sl_journal_on_cqe(struct sl_journal *j, int res, sl_journal_cb cb, void *arg);
/* Writes the deferred segment bytes that waited long enough (all of them
 * with `all`: the reactor is about to sleep, or stops); cb per log. */
void sl_journal_segwrites(struct sl_journal *j, bool all, sl_journal_cb cb, void *arg);
bool sl_journal_lazy(const struct sl_journal *j);     /* deferred writes wait */
bool sl_journal_inflight(const struct sl_journal *j); /* a frame's sync runs */
bool sl_journal_pending(const struct sl_journal *j);  /* a frame gathers */
bool sl_journal_failed(const struct sl_journal *j);
const char *sl_journal_error(const struct sl_journal *j);
void sl_journal_get_stats(const struct sl_journal *j, struct sl_journal_stats *out);
/* The stats as of the last sync, from any thread (metrics). */
void sl_journal_read_stats(const struct sl_journal *j, struct sl_journal_stats *out);

/*
 * Recovery's view of the journals: every frame of every file under
 * `<data_dir>/.journal/`, checked (a torn last frame is dropped; a bad
 * frame followed by a valid one is corruption: -SL_ECORRUPT with the file
 * and byte in err), indexed by log key. sl_log_open replays its key's
 * chunks (opts.replay); sl_jrec_finish then deletes the files once every
 * log that had chunks took them, and frees it.
 *
 * Threads: the one that opens the logs (before the reactors start).
 */
struct sl_jrec;
int sl_jrec_load(const char *data_dir, struct sl_jrec **out, char *err, size_t errlen);
/* A number above every file read: the new journals' first. */
uint64_t sl_jrec_next_seq(const struct sl_jrec *r);
/* Frames and chunks read (for the start-up line). */
void sl_jrec_counts(const struct sl_jrec *r, uint64_t *files, uint64_t *frames, uint64_t *chunks);
/* keep: a log could not take its chunks (refused): the files stay for the
 * next start. Keys nobody claimed whose folder is in data_dir (a topic no
 * longer configured) keep them too, said on stderr; without a folder (a
 * topic deleted at runtime) their chunks are dropped. */
int sl_jrec_finish(struct sl_jrec *r, const char *data_dir, bool keep, char *err, size_t errlen);
void sl_jrec_free(struct sl_jrec *r);

struct sl_log;
/* The log's journal (its options'), or NULL. */
struct sl_journal *sl_log_journal(const struct sl_log *log);
/* Makes an idle, unjournaled fsync log journaled from now on (a partition
 * adopted at runtime by a reactor with a journal), on the owner's thread.
 * 0 or -ENOMEM. */
int sl_log_set_journal(struct sl_log *log, struct sl_journal *j, const char *key);
/*
 * A durability policy changed while the log runs (a topic's `durability`
 * altered at runtime): policy d (interval_ns for SL_LOG_INTERVAL) and, for
 * SL_LOG_FSYNC, the journal j that makes it durable under key (NULL: the
 * log fdatasyncs its own segment). The change waits for a group-commit
 * boundary: no write or fdatasync of the log in flight, and nothing it
 * handed to its journal that a frame's sync has not made durable yet. Until
 * then sl_log_flush writes nothing and hands nothing over (appends gather
 * in the buffer) and each call tries again (sl_log_switch too). At the
 * boundary:
 *   - leaving the journal (fsync -> interval or none, or to its own
 *     fdatasync): the bytes the journal holds for the log that still wait
 *     for their segment are written there; then, as on joining a journal
 *     and on entering fsync, the log rolls: the active segment is sealed
 *     (fdatasynced whole) and the next one starts at the switch. So every
 *     event before the switch is on the device, and a restart's replay of
 *     the journal never writes its older chunks of this log over newer
 *     segment bytes: they all end at or below the new segment's base,
 *     which recovery skips ("chunks below the last segment"). Detached, the
 *     journal forgets the log (its deferred-write and checkpoint lists).
 *   - joining the journal (interval or none -> fsync): the same roll makes
 *     what was written under the relaxed policy durable, so the last
 *     segment holds only journaled bytes, and the first chunk starts at its
 *     base; acks wait for the journal's syncs from here.
 *   - entering fsync without a journal: the same roll, so that recovery's
 *     fsync rule (a bad batch before a later write's batch is corruption)
 *     never meets a relaxed policy's unsynced writes in the last segment.
 *   - leaving its own fsync, or between interval and none: nothing to
 *     write; the next group commit goes under the new policy.
 * An interval's length alone changes at once. Events appended before the
 * switch and written under the old policy were acked under it; those
 * written after it are acked under the new one. A new call replaces a
 * change still waiting (one back to the running policy cancels it).
 * Returns 1 once the log runs under the policy (now, or already), 0 while
 * it waits for the boundary, -ENOMEM, or -SL_ELOG_FAILED (sl_log_error).
 * The owner's thread.
 */
int sl_log_set_durability(struct sl_log *log, enum sl_log_durability d, uint64_t interval_ns,
                          struct sl_journal *j, const char *key);
/* Tries the change sl_log_set_durability left waiting: 1 when none waits
 * (any more), 0 while it waits, -SL_ELOG_FAILED. */
int sl_log_switch(struct sl_log *log);
/* The policy the log runs under now. */
enum sl_log_durability sl_log_durability(const struct sl_log *log);

/* Events below this offset may be acked (durable); sl_log_durable is what
 * readers may read, the same or less for a journaled log. */
uint64_t sl_log_acked(const struct sl_log *log);

/* ---- truncation: a follower cuts what its new leader does not hold ---------- */

/*
 * sl_log_truncate makes the log end at `offset`: a batch boundary in
 * [sl_log_start, sl_log_end] (else -EINVAL, err saying why; offset ==
 * sl_log_end does nothing). Only while the log is idle: nothing buffered,
 * nothing handed to a journal and not yet acked, no I/O in flight (else
 * -EBUSY; the partition's owner, the only caller, waits until it is).
 * Bytes acked but still deferred for the segment (journaled) are written
 * there first. Afterwards appends (sl_log_append and sl_log_append_raw)
 * continue at `offset`, in the cut segment, which is the active one again,
 * rolling as before. Views opened before must not read at or past `offset`
 * (the caller lowers what it publishes first); segment files and offsets
 * there change. The caller also cuts the leader-epoch file
 * (sl_epochs_truncate_from) and its producer state.
 *
 * The steps, in this order, so that a crash anywhere leaves the old log or
 * a prefix of it no shorter than `offset`, never a hole, and never an old
 * event back above what the log kept:
 *   1. deferred bytes to the segment; fdatasync of the active segment:
 *      every event of the log is now in a synced segment, so nothing of
 *      it needs a journal any more;
 *   2. the record (`truncated`, truncated_format.h: generation + 1 and the
 *      offset) replaces the old one: tmp, fdatasync, rename, folder fsync;
 *   3. the preparer drained (it may still be writing an index or a
 *      producer checkpoint of this folder), then producer checkpoints
 *      (`<base>.dedup`) with a base above `offset` deleted (they describe
 *      events that go; a crash after this point replays producer state
 *      from an older checkpoint: slower, not wrong), then the later
 *      segments, last first, each .idx before its .log, a folder fsync
 *      after each, and the .idx of the segment that becomes active;
 *   4. that segment cut at the batch boundary (ftruncate: nothing of the
 *      old tail can be read back, and its pre-allocation is taken again in
 *      steps as it fills) and fdatasynced;
 *   5. the writer's state: end, durable, acked, write position, the
 *      segment's in-memory index (kept below the cut, rebuilt by reading
 *      the batch headers when it had none), the unit_start of the batch
 *      before the cut (the replica's roll rule). Every segment descriptor
 *      is open for writing, so nothing is reopened; a prepared next.prep
 *      is kept (it is independent of offsets: the next roll takes it).
 * A failure in 1 (a sync) fails the log as any failed sync does; in 2 the
 * log is as it was (-errno; when the rename had happened its next chunks
 * carry the new generation anyway, which step 1 makes safe); in 3-4 the
 * log fails (its files are a prefix of the old log no shorter than
 * `offset`; a restart recovers it).
 *
 * The journal. A journaled log's reactor journal (and the files an earlier
 * run kept, for any fsync log) may hold chunks of this log at or past
 * `offset`, written before the truncation, which a restart would replay
 * over the cut. Each chunk carries the generation of the log that wrote it
 * (journal_format.h, SL_JC_GEN; 0 before any truncation, and in older
 * files); the record holds the newest generation, and recovery
 * (sl_log_open) drops every chunk of the log whose generation is below the
 * record's. Dropping all of them, not only those past `offset`, is right
 * because of step 1: what the old chunks held below `offset` is in synced
 * segments, and no old chunk may resurrect anything above it. Chunks
 * written after the truncation carry the new generation and replay as
 * before (from `offset` on, after the segment's end). The generation, not
 * the journal's file or frame numbers, tells old from new: those restart
 * when a run finds no journal file, and a partition may move to another
 * reactor's journal between runs. Several truncations need nothing more:
 * each one's step 1 covers the ones before. A crash between steps 1 and 2
 * leaves the old generation and the old chunks, which the segments already
 * hold. Should a record be lost (the folder restored from elsewhere), the
 * largest generation among the chunks counts instead, and new chunks are
 * stamped above it.
 *
 * Returns 0, -EINVAL, -EBUSY, -SL_ELOG_FAILED (sl_log_error says why, as
 * err), -SL_ECORRUPT (no batch boundary where the segment should have one:
 * err names the file and byte) or -errno. The owner's thread.
 */
int sl_log_truncate(struct sl_log *log, uint64_t offset, char *err, size_t errlen);

/* The `truncated` record: the newest truncation's generation (>= 1) and
 * offset. */
struct sl_log_trunc {
	uint64_t gen;
	uint64_t offset;
};
/* The log's (gen 0 when it was never truncated). */
void sl_log_truncation(const struct sl_log *log, struct sl_log_trunc *out);
/* The record's bytes (the fuzz target, the golden test): decode checks the
 * size, magic, checksum and a generation >= 1 (-SL_ECORRUPT, err saying
 * what; *out untouched); encode returns the size, writing only when it fits
 * cap. Pure, any thread. */
int sl_log_trunc_decode(const uint8_t *p, size_t n, struct sl_log_trunc *out, char *err,
                        size_t errlen);
size_t sl_log_trunc_encode(const struct sl_log_trunc *t, uint8_t *p, size_t cap);

/* The log's preparer (its options'), or NULL. */
struct sl_segprep *sl_log_segprep(const struct sl_log *log);

/* The log's next segment is prepared (its next roll takes it); asked for
 * (a log asks once half of its active segment is written). */
bool sl_log_next_ready(const struct sl_log *log);
bool sl_log_next_asked(const struct sl_log *log);

/* Opens (creating or recovering) a partition log. On -SL_ECORRUPT or an I/O
 * error, `err` says which file and where. */
int sl_log_open(const struct sl_log_opts *opts, struct sl_log **out, char *err, size_t errlen);
void sl_log_close(struct sl_log *log);

/*
 * The leader epoch the batches appended from now on carry (batch.h): the
 * partition's epoch while this node leads it, 0 for a partition that is
 * not replicated. A batch still open is closed first: no batch spans two
 * epochs. Raw appends keep the epoch their batches came with. Log thread.
 */
void sl_log_set_leader_epoch(struct sl_log *log, uint32_t epoch);

/*
 * Appends one encoded event of producer (producer_id, epoch) with sequence
 * `seq`. Returns 0 and the event's offset, -SL_ELOG_FAILED after an I/O
 * failure, -EMSGSIZE for an event larger than a batch may hold.
 */
int sl_log_append(struct sl_log *log, uint64_t producer_id, uint32_t epoch, uint64_t seq,
                  const uint8_t *event, uint32_t len, uint64_t *offset);
/* The append time (ms, CLOCK_REALTIME) of the batch the last sl_log_append
 * went into: what its header's SL_BATCH_TIME_MS holds once written. One
 * clock read per batch, taken when it opens. Log thread. */
int64_t sl_log_append_time_ms(const struct sl_log *log);

/*
 * Segment i of the log (0 = the oldest held, up to sl_log_segments - 1):
 * its base offset and the append time of its first batch (one pread of a
 * header; -ENODATA for a segment with no batch yet, -errno). For the
 * event-id window's rebuild at open: segments' times bound where the
 * window starts without reading them. Log thread.
 */
uint32_t sl_log_segments(const struct sl_log *log);
int sl_log_segment_first(const struct sl_log *log, uint32_t i, uint64_t *base, int64_t *time_ms);

/*
 * Raw appends: a replica's copy of its leader's log. [p, p + n) holds whole
 * record batches back to back as a segment holds them (each at an 8-byte
 * aligned position from p, zero padding between them and after the last:
 * what sl_log_view_read_raw returns). Every batch is checked and must
 * continue the log (the first at sl_log_end, the rest in sequence):
 * otherwise -SL_ECORRUPT (a batch fails its checks, or non-zero padding)
 * or -EINVAL (a gap, an overlap, n not whole batches), and nothing is
 * appended. The bytes go to the segment verbatim: the leader's unit_start
 * and checksum are kept (never resealed, by the log or by its journal), so
 * replicas are byte-identical. Group commit, durability, completions and
 * stats are those of sl_log_append; nothing is allocated per batch.
 *
 * Returns the bytes taken (a prefix of whole batches, *end the offset after
 * them), fewer than n when the rest must start a new group commit: the
 * buffered group holds the log's own batches (sl_log_append; raw batches
 * follow them only in a group of their own), or the leader rolled to a new
 * segment there. The caller then flushes (sl_log_flush until the group is
 * written or handed off) and passes the rest. -SL_ELOG_FAILED / FULL as
 * sl_log_append.
 *
 * Rolls. The leader's roll is not a function of segment_bytes and the
 * batch sizes: the writer rolls before a group-commit write that would pass
 * segment_bytes (write_pos > 0), so where it rolls depends on how batches
 * were grouped, which the replica cannot know from sizes (two groups of
 * one batch each and one group of both roll differently). What it can see
 * is unit_start, the position of the batch's write in its segment: the
 * replica rolls before a batch whose unit_start is 0 when its active
 * segment holds bytes and the batch before had a non-zero one (the leader
 * began a segment there), and never before a batch whose unit_start is not
 * 0. One case stays open: the active segment so far is one group written at
 * 0 (every unit_start 0) and the next batch is at 0 too; it either goes on
 * in that group or is the first of the next segment. The first later batch
 * with a non-zero unit_start in the same call settles it (its unit_start is
 * its distance from its segment's start); without one the batch goes on in
 * the group. What cannot be told: a run of several leader segments that
 * are one group each (a group of more than half a segment: an overload's
 * group commits, or segments far smaller than the traffic) leaves only the
 * last of their rolls visible, and a fetch that ends inside such a run
 * none. So segment files are byte-identical when every leader segment
 * holds two group commits or more (the normal case: 64 MiB segments and
 * groups of a few MiB), or a one-group segment is followed by a segment
 * whose second group comes in the same fetch; otherwise a replica may end
 * a file at another batch. The offsets and every batch's bytes are the
 * same regardless: only where a file ends may differ. Replayed journal
 * chunks and recovered leaders keep their unit_starts, so the rule holds
 * across their restarts.
 */
int sl_log_append_raw(struct sl_log *log, const uint8_t *p, size_t n, uint64_t *end);

/*
 * Starts the next group commit if there is something to write (a full log:
 * when its retry is due, else 0): writes the
 * buffered batches (pwrite, on this thread) and, under the fsync policy (or
 * the interval policy's due sync), queues their fdatasync on `ring` tagged
 * with user data `ud` (the caller routes its completion to sl_log_on_cqe).
 * Returns 1 when an fdatasync is queued, 2 when the write alone made the
 * events durable (interval and none policies), 3 when a journaled log
 * handed its batches to its journal (the caller then commits the journal),
 * 0 when there was nothing to
 * do, or the log waits for I/O in flight (fsync: the next group waits for
 * the sync in flight; interval: writes go on beside a sync, but a roll waits
 * for it), or -SL_ELOG_FAILED. May roll to a new segment first (synchronous:
 * a few ms every segment_bytes).
 */
int sl_log_flush(struct sl_log *log, struct io_uring *ring, uint64_t ud);

/*
 * Under the interval and none policies sl_log_flush also queues, every
 * SL_LOG_WRITEBACK_BYTES written, a sync_file_range(SYNC_FILE_RANGE_WRITE)
 * of them on `ring`, tagged SL_LOG_UD_IGNORE: it starts their writeback in
 * the background so that the fsync of a segment's roll finds little left
 * to write (it wrote the whole 64 MiB on the calling thread before: ~55 ms
 * a roll at 500k events/s, an ack p99 of 50-57 ms). Its completions carry
 * nothing: callers drop CQEs with this user data. A failed writeback shows
 * in the roll's fsync.
 */
#define SL_LOG_UD_IGNORE       0
#define SL_LOG_WRITEBACK_BYTES (4u << 20)

/* Feeds one completion of the log's I/O. Returns 1 when `durable` moved,
 * 0 otherwise, or -SL_ELOG_FAILED when the I/O failed (the log is now failed
 * and `sl_log_error` says why). */
int sl_log_on_cqe(struct sl_log *log, int res);

/* True when the durability policy wants an fdatasync now (interval policy);
 * the caller then calls sl_log_flush. */
bool sl_log_sync_due(const struct sl_log *log, uint64_t now_ns);
/* True when sl_log_flush would queue an fdatasync now (fsync policy with
 * bytes waiting, or interval policy due): lets the caller pace syncs. */
bool sl_log_flush_syncs(const struct sl_log *log, uint64_t now_ns);

/* Events below this offset are durable under the policy. */
uint64_t sl_log_durable(const struct sl_log *log);
/* The offset the next appended event gets. */
uint64_t sl_log_end(const struct sl_log *log);
/* The first offset still stored. */
uint64_t sl_log_start(const struct sl_log *log);
bool sl_log_failed(const struct sl_log *log);
/* The device is full (see above); sl_log_error says what failed. The
 * owner calls sl_log_flush now and then (every tick) to try again. */
bool sl_log_full(const struct sl_log *log);
/* How often a full log tries its write (or roll) again: a write of what it
 * buffered costs little, and space an operator frees shows within it. */
#define SL_LOG_FULL_RETRY_NS (100ull * 1000 * 1000)
bool sl_log_busy(const struct sl_log *log);       /* I/O in flight or bytes waiting */
bool sl_log_io_pending(const struct sl_log *log); /* I/O in flight */
const char *sl_log_error(const struct sl_log *log);

struct sl_log_stats {
	uint64_t bytes_written;
	uint64_t writes;
	uint64_t syncs;
	uint64_t batches;
	uint64_t segments;
	uint64_t segments_prepared; /* of which rolled into a prepared file */
	uint64_t sync_ns;           /* fdatasyncs' time from queued to completed, summed */
	/* How many took at most SL_LOG_SYNC_BUCKETS_US[i] (the last: any). */
	uint64_t sync_hist[SL_LOG_SYNC_BUCKETS];
	/* Group commits: from the append of a group's first event until the
	 * group was durable under the policy (fdatasync done, or written for
	 * interval and none). The oldest event of each group, so the wait
	 * for a sync already in flight shows here and not in sync_hist. */
	uint64_t commits;
	uint64_t commit_ns;
	uint64_t commit_hist[SL_LOG_SYNC_BUCKETS];
	uint64_t writebacks;                 /* background writeback kicks (interval, none) */
	uint64_t rolls;                      /* segment rolls (seal, checkpoint, next segment) */
	uint64_t roll_ns;                    /* time they took, on the calling thread */
	uint64_t recovered_truncated_bytes;  /* torn tail cut at open */
	uint64_t recovered_replayed_batches; /* written again from the journal at open */
	uint64_t full_episodes;              /* times the device ran out of space */
	uint64_t prealloc_steps;             /* fallocates ahead of the writes */
	uint64_t full_ns;                    /* time spent full (episodes ended) */
	uint64_t retained_segments;          /* segments deleted by retention */
	uint64_t retained_bytes;             /* their bytes */
};
void sl_log_get_stats(const struct sl_log *log, struct sl_log_stats *out);

/* ---- retention ------------------------------------------------------------ */

/*
 * Retention (issue 18 item 4): the oldest sealed segments are deleted once
 * they are wholly past a limit, front first, so the log stays one run of
 * offsets from sl_log_start() to its end. Segment k (never the active one)
 * goes when every segment before it went and
 *   - bytes: the partition's bytes (every segment's batches, the active
 *     one's written so far) minus segment k's are still >= `bytes`: the
 *     partition keeps at least `bytes` (or everything, when it holds less),
 *     at most `bytes` plus one segment and the active one; or
 *   - age: the newest append time in segment k (the running maximum of its
 *     batches' SL_BATCH_TIME_MS, server clock; from its `.tix`, or its
 *     batch headers when it has none) is older than now_ms - age_ms;
 * and the next segment's base is <= `hold`: every reader that must see
 * each event (a projection, a sink, a pipeline stage; not a consumer) has
 * read past all of segment k. A segment past a limit but held is kept,
 * and `held` says so.
 *
 * The files are removed on the preparer's thread when the log has one
 * (the last close of a big unlinked file frees its blocks: file system
 * work that must not stall the owner), else here; `start_pub` (if not
 * NULL) is stored with release first. Views that hold a deleted segment
 * open keep reading it (the descriptor keeps the file) until they let go
 * (sl_log_view_follow_start). The folder is synced after the deletions:
 * a crash before that may bring segments back, whole, and a later pass
 * deletes them again; sl_log_start never passes an event still needed.
 *
 * Owner thread. Returns the segments deleted (out says which bytes and the
 * new start), 0, or -ENOMEM (nothing deleted).
 */
struct sl_log_retention {
	uint64_t bytes;  /* 0: no limit by size */
	uint64_t age_ms; /* 0: no limit by age */
	int64_t now_ms;  /* the wall clock (append times are) */
	uint64_t hold;   /* lowest offset still to be read; UINT64_MAX: none */
#ifndef __cplusplus
	_Atomic uint64_t *start_pub;
#else
	void *start_pub;
#endif
};
struct sl_log_retained {
	uint32_t segments;
	uint64_t bytes;
	uint64_t start; /* sl_log_start after */
	bool held;      /* a segment past a limit was kept for `hold` */
	bool by_age;    /* a segment went for its age alone */
};
int sl_log_retain(struct sl_log *log, const struct sl_log_retention *r,
                  struct sl_log_retained *out);

/* ---- reading -------------------------------------------------------------- */

/* One stored event, as read back. `event` points into the reader's buffer
 * and is valid until the next sl_log_reader_next(). */
struct sl_log_record {
	uint64_t offset;
	uint64_t producer_id;
	uint32_t epoch;
	uint64_t seq;
	int64_t append_time_ms;
	const uint8_t *event;
	uint32_t len;
};

struct sl_log_reader;

/* A reader positioned at `offset` (clamped to the start): a view of the
 * log's folder (below) read one event at a time, for the writer's thread or
 * a tool. Never touches the writer's buffers. */
int sl_log_reader_open(struct sl_log *log, uint64_t offset, struct sl_log_reader **out);
/*
 * Next event below `limit` (pass sl_log_durable()). Returns 1 with *rec
 * filled, 0 at `limit`, -SL_ECORRUPT when a stored batch fails its checksum
 * (sl_log_reader_error names the file and position), or -errno.
 */
int sl_log_reader_next(struct sl_log_reader *rd, uint64_t limit, struct sl_log_record *rec);
const char *sl_log_reader_error(const struct sl_log_reader *rd);
void sl_log_reader_close(struct sl_log_reader *rd);

/* ---- views: reading from another thread --------------------------------------- */

/*
 * A read-only view of a partition's folder, for a thread other than the
 * writer's. It shares nothing with the writer but the files: it lists the
 * segments itself, keeps its own descriptors and its own sparse index built
 * as it reads, and is told how far it may read (`limit`, the durable end the
 * writer published). Below that point segment bytes never change, so no lock
 * is needed; every batch is checked (checksum, offsets in sequence) as read.
 *
 * One exception: a replica's log is cut where its new leader's differs
 * (sl_log_truncate), and what lay past the cut is written again with other
 * bytes. A view keeps bytes read ahead, batch positions and the segment
 * list, all of which may then describe the old log: a view that may see a
 * cut follows a counter its writer bumps after each one
 * (sl_log_view_follow_cuts) and drops all it kept when the counter moved.
 *
 * Ownership: the caller closes the view. Threads: one thread per view.
 */
struct sl_log_view;

int sl_log_view_open(const char *dir, struct sl_log_view **out);
void sl_log_view_close(struct sl_log_view *v);
/* `cuts` (owned by the caller, outliving the view): bumped with release by
 * the log's writer after each cut, before it publishes a limit past the
 * cut. Every read loads it (acquire) after the caller loaded its limit;
 * when it moved, the view starts over from the files. NULL: never cut.
 * Called again with the same counter: nothing changes. */
#ifndef __cplusplus /* _Atomic is C's (the C++ benchmarks never call it) */
void sl_log_view_follow_cuts(struct sl_log_view *v, const _Atomic uint64_t *cuts);
#endif

/* Called for each event read: 0 to go on, > 0 to stop after this event,
 * < 0 to stop before it (it is not counted and is read again next time). */
typedef int (*sl_log_visit_fn)(void *arg, const struct sl_log_record *rec);

/*
 * Visits events [offset, limit), at most max_events and about max_bytes of
 * event bytes (at least one event). *next is the offset after the last one
 * visited. Returns the number visited, -SL_ECORRUPT or -errno (a failed read:
 * sl_log_view_error says which file and position for both). An offset below the oldest stored one
 * starts at the oldest.
 */
int sl_log_view_read(struct sl_log_view *v, uint64_t offset, uint64_t limit, uint32_t max_events,
                     uint32_t max_bytes, sl_log_visit_fn fn, void *arg, uint64_t *next);
/*
 * The leader's side of replication: copies whole batches, as they lie in
 * their segments, padding included, into buf (cap bytes): from the batch
 * that starts at `offset` (-EINVAL when a batch holds `offset` but does not
 * start there: a follower only ever holds whole batches; -ERANGE below the
 * oldest stored offset) up to `limit` (the durable end), about max_bytes
 * (at least one batch when it fits cap; -ENOBUFS when the first does not).
 * Every batch is checked as sl_log_view_read checks it. *len: bytes copied;
 * *next: the offset after the last batch copied. The result is what
 * sl_log_append_raw takes. Returns the batches copied, -SL_ECORRUPT (the
 * batches before the damage come first, the error on the next call) or
 * -errno, as sl_log_view_read.
 */
int sl_log_view_read_raw(struct sl_log_view *v, uint64_t offset, uint64_t limit, uint32_t max_bytes,
                         uint8_t *buf, size_t cap, size_t *len, uint64_t *next);
const char *sl_log_view_error(const struct sl_log_view *v);
/* What the last sl_log_view_read that returned `err` (< 0) failed on: the
 * view's own words when it has them (the file and position of a corrupt
 * batch or of a failed read), else sl_strerror(err). */
const char *sl_log_view_strerror(const struct sl_log_view *v, int err);
/* The first offset stored (after retention), from the files. */
uint64_t sl_log_view_start(struct sl_log_view *v);
/*
 * Follows the log's published first offset (`start`, owned by the caller,
 * stored with release by the owner: sl_log_retain's start_pub). Every read
 * loads it and closes the segments wholly below it, so that retention's
 * deletions free their space while the view lives. `strict`: a read below
 * it (or below the first segment left) fails with -SL_EOUT_OF_RANGE
 * instead of starting at the oldest event (the reader's Fetch; appliers
 * and sinks hold the log and keep the old behaviour, which counts a gap).
 */
#ifndef __cplusplus
void sl_log_view_follow_start(struct sl_log_view *v, const _Atomic uint64_t *start, bool strict);
#endif
/*
 * Seek by time: the first offset below `limit` whose batch's append time
 * (the running maximum, tix_format.h) is >= time_ms, in *offset: 1; 0 when
 * no event below limit is that recent (*offset = limit). Sealed segments
 * are read through their `.tix` (or their headers, once, when it is
 * missing or bad), the last through its headers (kept between calls).
 * -errno on a failed read.
 */
int sl_log_view_seek_time(struct sl_log_view *v, int64_t time_ms, uint64_t limit, uint64_t *offset);

/* ---- leader epochs: where each leader's writes began ------------------------ */

/*
 * The leader-epoch file (`leader-epochs` in the partition's folder, bytes in
 * epochs_format.h): (leader epoch, first offset that leader wrote), both
 * ascending. A follower that becomes one asks its new leader where its
 * last epoch ended (sl_epochs_end_of, KIP-101) and truncates its log there
 * (sl_log_truncate, then sl_epochs_truncate_from) before fetching.
 *
 * Ownership: sl_epochs_load returns a list freed with sl_epochs_free.
 * Threads: the partition's owner; every change is durable (tmp, fdatasync,
 * rename, folder fsync) before it returns, so a crash leaves the old list
 * or the new one.
 */
struct sl_epoch {
	uint32_t epoch;
	uint64_t start;
};
struct sl_epochs;
/* A missing file is an empty list; a damaged one -SL_ECORRUPT, err saying
 * what. */
int sl_epochs_load(const char *dir, struct sl_epochs **out, char *err, size_t errlen);
void sl_epochs_free(struct sl_epochs *e);
/* Adds (epoch, start): epochs must increase and starts not decrease
 * (-EINVAL). 0 once on disk, else -errno and the list is unchanged. */
int sl_epochs_append(struct sl_epochs *e, uint32_t epoch, uint64_t start);
/* Drops the entries whose start is >= offset (with sl_log_truncate). */
int sl_epochs_truncate_from(struct sl_epochs *e, uint64_t offset);
/* For the largest epoch <= `epoch` held (*epoch_found): the start of the
 * next epoch held, or log_end when it is the last. -ENOENT when every
 * epoch held is larger (or none is). */
int sl_epochs_end_of(const struct sl_epochs *e, uint32_t epoch, uint64_t log_end,
                     uint64_t *end_offset, uint32_t *epoch_found);
/* The newest entry, or NULL. Valid until the next change. */
const struct sl_epoch *sl_epochs_last(const struct sl_epochs *e);
uint32_t sl_epochs_count(const struct sl_epochs *e);
/* All entries, oldest first (sl_epochs_count of them). Valid until the next
 * change. */
const struct sl_epoch *sl_epochs_entries(const struct sl_epochs *e);
/* The loader and writer on bytes (the fuzz target, the golden test): an
 * empty list of folder `dir` (for messages); decode replaces its entries
 * (-SL_ECORRUPT, err); encode returns the size, writing only when it fits
 * cap. */
struct sl_epochs *sl_epochs_new(const char *dir);
int sl_epochs_decode(struct sl_epochs *e, const uint8_t *p, size_t n, char *err, size_t errlen);
size_t sl_epochs_encode(const struct sl_epochs *e, uint8_t *p, size_t cap);

#endif
