/*
 * Internals of log/, shared by its files. Each file runs under one thread
 * contract (its top comment says which):
 *
 *   batch.c    the record batch format's checks; pure, any thread
 *   segment.c  segment files, their indexes, rolls and seals; the log's
 *              thread, plus the file helpers views use on their own thread
 *   recover.c  open (recovery of the last segment) and close; the thread
 *              that opens the log, which then hands it to its owner
 *   commit.c   append, group commit, completions, stats: the owner's thread
 *   view.c     views and readers: any one thread per view
 *   prep.c     the segment preparer: its own thread, and a mutex with the logs
 *   journal.c  a reactor's journal (log.h): the owner's thread, checkpoints on
 *              the preparer's
 *   jrec.c     the journals read back for recovery: the opening thread
 *   truncate.c sl_log_truncate: the owner's thread, the log idle; its
 *              record read at open: the opening thread
 */
#ifndef SL_LOG_IMPL_H
#define SL_LOG_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/batch.h"
#include "log/index_format.h"
#include "log/log.h"
#include "log/tix_format.h"

/* The prepared next segment's name in a log's folder: never a segment
 * name (those are 20 digits and ".log"), so readers never list it. */
#define SL_SEGPREP_NAME "next.prep"

enum sl_segprep_state {
	SL_SEGPREP_NONE = 0, /* nothing asked */
	SL_SEGPREP_WAITING,  /* queued or being prepared */
	SL_SEGPREP_READY,    /* `fd` is the prepared file */
	SL_SEGPREP_FAILED,   /* the roll creates its segment in place */
};

typedef int (*sl_fallocate_fn)(int fd, int mode, off_t off, off_t len);

/* One log's request, embedded in the log. `state` is set by the preparer
 * (release) and read by the log's thread (acquire); `fd` and
 * `prealloc_err` are written before that release; the rest belongs to
 * whoever holds the preparer's mutex. */
struct sl_segprep_req {
	char *path; /* <dir>/next.prep, owned by the log */
	uint64_t bytes;
	/* The log's (opts.fallocate_fn or fallocate(2)), resolved once at open;
	 * the log's own pre-allocation uses it too. */
	sl_fallocate_fn fallocate_fn;
	_Atomic int state;
	int fd;
	int prealloc_err; /* -EOPNOTSUPP/-ENOSYS: prepared without pre-allocation */
	bool queued;
	struct sl_segprep_req *next;
};

/* Asks for a prepared file unless one is asked for or ready. */
void sl__segprep_request(struct sl_segprep *p, struct sl_segprep_req *rq);
/* Withdraws a queued request, or waits until the one being prepared is
 * done: afterwards the preparer no longer touches rq. */
void sl__segprep_cancel(struct sl_segprep *p, struct sl_segprep_req *rq);

/* fallocate errors that mean "this filesystem cannot", not "no space": the
 * log then goes on without pre-allocation (issue 15). */
static inline bool sl__prealloc_unsupported(int err)
{
	return err == -EOPNOTSUPP || err == -ENOSYS;
}

/* One segment file, as the writer or a view knows it. */
struct sl_seg {
	uint64_t base;
	int fd;
	uint64_t size; /* bytes of batches (sealed) or written so far (active) */
	struct sl_idx *idx;
	uint32_t n_idx, cap_idx;
	uint32_t last_idx_pos;
	/* The time index (tix_format.h): the writer's, built as it writes (and
	 * written beside the segment at seal), or a view's, loaded or
	 * scanned. tix_max: the running maximum of the batch times seen, the
	 * last batch seen at tix_last_rel/pos. tix_bad: the entries miss
	 * batches (a truncation rebuilt the segment's end): none are written
	 * and readers scan. tix_whole: every batch of a sealed segment is in
	 * (its last entry is its last batch). */
	struct sl_tix *tix;
	uint32_t n_tix, cap_tix;
	uint32_t last_tix_pos;
	uint32_t tix_last_rel, tix_last_pos;
	int64_t tix_max;
	bool tix_bad, tix_whole;
};

struct sl_wbuf {
	uint8_t *p;
	uint32_t len; /* a group commit is far below 4 GiB: batches are capped */
	size_t cap;
	size_t peak;           /* recent group-commit sizes, decaying (sl__wbuf_reuse) */
	uint64_t first_offset; /* offset of the first event in it */
};

struct sl_log {
	struct sl_log_opts opts;
	char *dir;
	/* No descriptor of the folder is held: a partition keeps one, its
	 * active segment's (10,000 partitions in a 20,000-file limit); the
	 * folder is opened for the rare syncs of a roll (sl__fsync_dir). */
	struct sl_seg *segs;
	uint32_t n_segs, cap_segs;

	uint64_t next_offset;
	uint64_t durable;
	uint64_t write_pos; /* where the next write goes in the active segment */

	/* Appends go here; a group commit pwrites it (synchronously, on this
	 * thread) and it is emptied at once, while the fdatasync runs. One
	 * buffer: a second (from when the write itself went through io_uring)
	 * only kept its capacity resident between commits, outside what the
	 * credits count, which took the 1,000-producer overload over its
	 * memory budget once syncs got larger. */
	struct sl_wbuf wb;
	/* The batch being filled, in wb. */
	bool batch_open;
	uint32_t batch_at;
	uint64_t batch_pid, batch_base_seq, batch_base_off;
	/* The open batch's append time (SL_BATCH_TIME_MS), read when it
	 * opens: the partition records it with each event's id
	 * (sl_log_append_time_ms) before the batch is closed. */
	int64_t batch_time_ms;
	uint32_t batch_epoch, batch_count;
	uint32_t leader_epoch; /* what the batches built from now on carry */

	/* The group commit in flight. */
	bool inflight;
	uint32_t inflight_ops;
	uint64_t inflight_end;
	uint64_t inflight_pos, inflight_len;
	int inflight_err;
	bool inflight_is_sync;       /* an fdatasync is among the ops */
	bool inflight_fail;          /* test hook fired for this sync */
	uint64_t inflight_t0;        /* when the fdatasync was queued (stats) */
	uint64_t wb_kicked;          /* active segment: writeback started below this */
	uint64_t inflight_synced_to; /* write_pos when the sync in flight was queued */
	/* When the first event of the buffered group / of the group in flight
	 * was appended: its wait until durable is the commit latency. */
	uint64_t group_t0, inflight_group_t0;
	bool unsynced; /* written, not yet fdatasync'd (interval policy) */
	uint64_t last_sync_ns;
	uint32_t n_syncs;

	bool failed;
	char error[320];
	/* The device is full (a write or a roll's pre-allocation got ENOSPC):
	 * appends are refused with -SL_ELOG_FULL, what the buffer holds waits,
	 * and sl_log_flush tries again from full_retry_ns on. `error` says
	 * what failed. */
	bool full;
	uint64_t full_retry_ns;
	uint64_t full_since_ns;
	bool sealed; /* a roll sealed the active segment, the next is not made yet */
	/* Active segment: bytes pre-allocated (its file size) and the last
	 * step taken (sl__prealloc_ahead). */
	uint64_t alloc_end, alloc_step;
	struct sl_log_stats stats;
	struct sl_segprep_req prep; /* the next segment, when opts.prep */
	/* The folder's filesystem cannot fallocate: segments grow as written
	 * (said once on stderr). */
	bool no_prealloc;

	/* Journaled (opts.journal, log.h): wb[0, jsent) was handed to the
	 * journal and is not yet in the segment (it goes at write_pos);
	 * jsent_off is the offset after it. `acked`: what the journal made
	 * durable; `durable` is the least of it and what the segment holds. */
	char *jkey;
	uint32_t jsent;
	uint64_t jsent_off;
	uint64_t acked;
	uint64_t jopen_gen; /* the journal frame holding its last hand-off (+1) */
	uint32_t jopen_idx; /* its entry there */
	uint64_t jfile_gen; /* the journal file it last handed bytes to */
	bool jlazy;         /* on the journal's deferred-write list */
	uint64_t jlazy_since;
	bool replaying; /* open: replaying the journal (no on_seal) */
	/* Truncation (truncate.c, log.h): the generation its journal chunks
	 * carry (the `truncated` record's, 0 without one) and where that
	 * truncation cut the log. */
	uint64_t jgen;
	uint64_t trunc_at;

	/* A durability change waiting for a group-commit boundary
	 * (sl_log_set_durability, commit.c): the policy, interval, journal
	 * (NULL: own fdatasync, or not fsync) and key it switches to. */
	bool sw_pending;
	enum sl_log_durability sw_dur;
	uint64_t sw_interval_ns;
	struct sl_journal *sw_journal;
	char *sw_key;

	/* Raw appends (sl_log_append_raw): where the buffered group holds
	 * batches that must reach the segment verbatim, never resealed
	 * (sorted, disjoint [from, to) of wb; dropped once the group is
	 * written or handed to the journal), and how the group's roll is
	 * decided. last_unit: unit_start of the last batch placed in the
	 * active segment or its buffer (the replica's roll rule, log.h). */
	struct sl_rawrun {
		uint32_t from, to;
	} * raw;
	uint32_t n_raw, cap_raw;
	enum {
		SL_RAWGROUP_NONE = 0, /* own batches first: the writer's size rule */
		SL_RAWGROUP_STAY,     /* a raw batch first, in the active segment */
		SL_RAWGROUP_ROLL,     /* a raw batch first, starting a new segment */
	} raw_group;
	uint32_t last_unit;
	bool group_own; /* the buffered group holds batches of sl_log_append */
};

/* A buffer keeps up to this much capacity whatever its recent use. */
#define SL_LOG_BUF_KEEP (4u << 20)

/* ---- journal.c / commit.c: a journaled log and its journal, the owner ------ */

int sl__journal_attach(struct sl_journal *j, struct sl_log *log);
void sl__journal_detach(struct sl_journal *j, struct sl_log *log);
/* The journal cannot write for want of space (every log of it is full). */
bool sl__journal_full(const struct sl_journal *j);
/* Adds a chunk of the log's sealed batches [p, p + len) ending before
 * offset `end` to the open frame; t0: when the group's first event was
 * appended. 0, -ENOMEM, or -SL_ELOG_FAILED (the journal failed). */
int sl__journal_add(struct sl_journal *j, struct sl_log *log, const uint8_t *p, uint32_t len,
                    uint64_t end, uint64_t t0);
/* The journal made the log durable below `end` (commit_ns: the group's
 * wait, for the stats). */
void sl__log_journaled(struct sl_log *log, uint64_t end, uint64_t commit_ns);
/* Writes wb[0, jsent) to the segment: 0 or -SL_ELOG_FAILED; kicks the
 * writeback of what it wrote on `ring` (NULL: none). */
int sl__log_segwrite(struct sl_log *log, struct io_uring *ring);
/* Stamps unit_start, checksums and indexes the batches of wb from byte
 * `at` to its end, which go to the active segment at `pos`; raw batches
 * (log->raw) are indexed only, their bytes kept. */
int sl__seal_group(struct sl_log *log, uint32_t at, uint64_t pos);
/* The buffered group (from wb byte `at`, going to segment position
 * seg_end) must start a new segment first. */
bool sl__group_rolls(const struct sl_log *log, uint64_t seg_end, uint32_t at);
/* The group reached its segment or the journal: its raw runs are done. */
void sl__group_done(struct sl_log *log);

/* One chunk read back from a journal (jrec.c): a log's batches
 * [first, end), pointing into the loaded file. */
struct sl_jchunk {
	const char *key;
	uint32_t key_len;
	const uint8_t *p;
	uint32_t len;
	uint64_t first, end;
	uint64_t gen;   /* the log's truncation generation when written */
	uint64_t order; /* file, frame and place: ties in `first` keep it */
	bool claimed;
};
/* The chunks of `key`, sorted by offset (marked claimed): their count. */
size_t sl__jrec_find(struct sl_jrec *r, const char *key, struct sl_jchunk **out);

/* ---- truncate.c ------------------------------------------------------------ */

/* Reads the folder's `truncated` record into jgen and trunc_at (none: 0).
 * -SL_ECORRUPT or -errno with err naming the file. The opening thread. */
int sl__trunc_load(struct sl_log *log, char *err, size_t errlen);

/* ---- segment.c: the log's thread unless marked ---------------------------- */

void sl__fail(struct sl_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The device is full: sets `full` (see struct sl_log) and the error text,
 * and when to try again. */
void sl__full(struct sl_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A write or roll went through again: the log serves as before. */
void sl__full_clear(struct sl_log *log);
/* Errors that mean the device has no room (for us): retryable once space
 * is freed, unlike every other write error. */
static inline bool sl__no_space(int err)
{
	return err == -ENOSPC || err == -EDQUOT;
}

/* "<dir>/<base, 20 digits>.<ext>", malloc'd; NULL without memory. */
char *sl__seg_path(const struct sl_log *log, uint64_t base, const char *ext);
int sl__seg_add(struct sl_log *log, uint64_t base, int fd);
/* Creates the segment starting at base (prepared or in place), synced. */
int sl__seg_create(struct sl_log *log, uint64_t base);
/* Seals the active segment, calls on_seal and creates the next one. */
int sl__roll(struct sl_log *log, uint64_t base);
/* switch.c: a durability change asked for, done at a group-commit boundary:
 * 1 done (or none asked), 0 not at a boundary yet, -SL_ELOG_FAILED. */
int sl__log_switch(struct sl_log *log);
/* Pre-allocates the first step of a new segment file fd, or notes (once, on
 * stderr) that the folder's filesystem cannot: 0 then too. -errno on any
 * other failure. */
int sl__prealloc(struct sl_log *log, int fd);
/* The first step: SL_LOG_PREALLOC_FIRST, or the segment when smaller. */
uint64_t sl__prealloc_first(const struct sl_log *log);
/* Makes the active segment allocated up to at least need_end (a step past
 * alloc_end), on the log's thread: 0, or -errno of fallocate (-ENOSPC: the
 * device is full). Handing the steps to io_uring (an io-wq worker) was
 * measured and gained nothing (`sluice bench`, 8 partitions and two
 * projections, 1M events: -7% against whole segments, in line -8%, 6
 * interleaved pairs each): the cost is the journal's work for the new
 * extents during the run, which a whole segment paid at its creation. */
int sl__prealloc_ahead(struct sl_log *log, uint64_t need_end);
/* The size of the next step (twice the last, within the bounds); the
 * journal's files step the same way (sl__prealloc_step of its last). */
uint64_t sl__prealloc_next_step(const struct sl_log *log);
uint64_t sl__prealloc_step(uint64_t last);
/* fsync of a folder (a name made durable): 0 or -errno. Any thread. */
int sl__fsync_dir(const char *dir);
/* The latency bucket of ns (SL_LOG_SYNC_BUCKETS_US). Pure. */
uint32_t sl__hist_bucket(uint64_t ns);
/* Empties a write buffer for its next use, shrinking one that an overload
 * grew far past its recent peak (commit.c says why). */
void sl__wbuf_reuse(struct sl_wbuf *b, uint64_t first_offset);

/* Any thread, on the caller's own segment / descriptors: */
int sl__idx_add(struct sl_seg *s, uint64_t offset, uint64_t pos);
/* Notes the batch of first offset `offset` at `pos` appended at time_ms in
 * the segment's time index (batches in order; one seen before is
 * ignored): 0 or -ENOMEM. A first batch not at 0 marks the index bad. */
int sl__tix_add(struct sl_seg *s, uint64_t offset, uint64_t pos, int64_t time_ms);
/* The segment's batches are all noted: the last becomes an entry. */
int sl__tix_finish(struct sl_seg *s);
/* Loads `<base>.tix` of `dir` into s (a valid one: tix_whole set; else s
 * keeps what it had). */
void sl__tix_load(const char *dir, struct sl_seg *s);
/* Notes the batches of segment file fd after the last one noted in s's
 * time index (from its start when none), those wholly below `limit`: 0 or
 * -errno; it stops quietly where no batch continues the segment. */
int sl__tix_scan(int fd, struct sl_seg *s, uint64_t limit);
/* The newest append time (running maximum) of sealed segment s, whose
 * successor starts at next_base: from its `.tix`, else its batch headers
 * (kept in s). 0, -SL_ECORRUPT (its batches do not reach next_base), -errno. */
int sl__seg_newest_time(const char *dir, struct sl_seg *s, uint64_t next_base, int64_t *out);
/* Frees a segment's indexes (not its descriptor). */
void sl__seg_free_index(struct sl_seg *s);
void sl__idx_load(const char *dir, struct sl_seg *s);
ssize_t sl__pread_all(int fd, uint8_t *buf, size_t len, uint64_t pos);
ssize_t sl__pwrite_all(int fd, const uint8_t *p, size_t len, uint64_t pos);
/* The segment bases in `dir` greater than `after` (all of them when
 * `all`), sorted. *out is malloc'd (NULL when none). */
int sl__list_bases(const char *dir, bool all, uint64_t after, uint64_t **out, size_t *n);

#endif
