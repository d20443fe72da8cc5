/*
 * state: the keyed state of host-state projections (plugin ABI 1.2,
 * SL_PROJECTION_HOST_STATE), kept on disk in RocksDB behind a write-back
 * cache, so a read model may be far larger than memory and a restart costs
 * nothing in proportion to it.
 *
 * Layout. One RocksDB database per projection (sl_state_db: the folder
 * data_dir/projections/NAME/state), holding every partition's keys, each
 * prefixed with the partition, and per partition a mark: the first log
 * offset the committed state does not reflect (state_format.h). Keys and
 * mark are written in one durable write (one WAL record, fdatasync'd), so
 * the state on disk and the offset it reflects never disagree: after a
 * kill -9 or a power cut the applier resumes at the committed offset and
 * applies every later event exactly once. Why RocksDB rather than LMDB,
 * measured: engine/README.md, "Projection state".
 *
 * Write path. Each partition's instance (sl_state_part) is owned by the
 * reactor that applies its partition. Plugins read and change keys through
 * the writer view (struct sl_state, host->state_*): a hash table of cached
 * entries in front of the store, so an apply that hits the cache touches
 * memory only. Changed entries are dirty. Between two steps the owner
 * freezes them (sl_state_part_end_step): their bytes are copied into one
 * batch with the applied offset, and the batch is handed to the server's
 * state writer thread (sl_state_writer), which writes every pending batch
 * of a projection in one durable write. The owner learns of the commit at
 * its next step (sl_state_part_poll). A batch's entries stay pinned in the
 * cache until their commit, so a cache miss never reads an older value
 * from disk. Commits are self-clocking, like the log's group commit: a
 * batch is frozen only when the previous one is committed and at least
 * `interval_ns` after it, so the busier the disk the larger the batches.
 *
 * Memory. Each instance's cache has a byte budget (entries, key and value
 * bytes, its table); past it, clean entries are evicted by CLOCK at the end
 * of a step. When dirty and pinned entries alone fill the budget the
 * applier stops applying (sl_state_part_poll false) until a commit frees
 * them: the log holds the events meanwhile. A step may go past the budget
 * by what one apply call inserts. Each database adds its memtables (two of
 * write_buffer_bytes at most) and its block cache (index and filter blocks
 * included): all of it is in the server's memory budget.
 *
 * Reads off the owner. Queries run on any thread through a read view
 * (sl_state_view_begin): a RocksDB snapshot, which sees the newest commit
 * whole and never blocks the writer, and the offset that commit reflects
 * (the answer's token).
 *
 * Keys: any bytes, 1 to SL_STATE_KEY_MAX long; -ENAMETOOLONG beyond.
 * Values: any length up to 1 GiB.
 *
 * Ownership and threads:
 *  - sl_state_db: opened and closed by the thread that starts and stops the
 *    server, after every part of it is closed.
 *  - sl_state_part: one owner thread at a time (the reactor; open and close
 *    on the starting / stopping thread), except sl_state_part_committed,
 *    _commit_failures and _get_stats (any thread).
 *  - sl_state_writer: started and stopped by the server; parts register
 *    with it while it runs (any thread, under its mutex).
 *  - read views: any thread, each used by one thread.
 */
#ifndef SL_STATE_H
#define SL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/plugin.h"

/* The ABI's promise (sluice/plugin.h); keeps keys small enough for the
 * owners' stack buffers. */
#define SL_STATE_KEY_MAX 496u

struct sl_state_db;
struct sl_state_part;
struct sl_state_writer;

struct sl_state_db_opts {
	const char *path;          /* the database's folder; created */
	size_t write_buffer_bytes; /* one memtable; 0: SL_STATE_WRITE_BUFFER_DEFAULT */
	size_t block_cache_bytes;  /* 0: SL_STATE_BLOCK_CACHE_DEFAULT */
};

#define SL_STATE_WRITE_BUFFER_DEFAULT (8u << 20)
#define SL_STATE_BLOCK_CACHE_DEFAULT  (16u << 20)

int sl_state_db_open(const struct sl_state_db_opts *o, struct sl_state_db **out, char *err,
                     size_t errlen);
void sl_state_db_close(struct sl_state_db *db);
/* Bytes of its files on disk; bytes of its memtables and block cache. */
uint64_t sl_state_db_file_bytes(const struct sl_state_db *db);
uint64_t sl_state_db_memory_bytes(const struct sl_state_db *db);
/* Test hook: while on, every commit is abandoned before it is written
 * (-ECANCELED, counted as a failed commit); tests/unit/state.c. */
void sl_state_db_test_fail_commits(struct sl_state_db *db, bool on);

/* What a partition's committed state reflects. */
struct sl_state_mark {
	uint64_t next;     /* the first log offset not in the state */
	uint64_t emit_seq; /* the sequence of the next event its projection emits */
	uint64_t gen;      /* commits so far (0: none) */
};

/* Reads a stored mark (state_format.h): 0, or -SL_ECORRUPT for bytes of
 * another size, magic or version. Pure; any thread. */
int sl_state_mark_parse(const void *bytes, size_t n, struct sl_state_mark *mark);
/* Reads a stored live record of `partition` (state_format.h): 0 with *space
 * (partition or partition | SL_STATE_SPACE_ALT), or -SL_ECORRUPT. Pure. */
int sl_state_live_parse(const void *bytes, size_t n, uint32_t partition, uint32_t *space);

struct sl_state_part_opts {
	uint32_t partition;
	/* The partition's other key space (state_format.h), emptied first: a
	 * rebuild beside the live model. Dropped at close unless swapped in. */
	bool rebuild;
	size_t cache_bytes; /* the cache's budget; 0: 1 MiB */
	/* Called on the writer thread after each commit of this part (wake
	 * its owner); may be NULL. */
	void (*on_commit)(void *arg);
	void *on_commit_arg;
};

/* Opens partition o->partition of db and reads its mark (*mark: zeros when
 * nothing was committed). The live model's open also removes what an
 * interrupted rebuild left in the other key space (said on stderr): a
 * rebuild is never resumed. -errno with err. */
int sl_state_part_open(struct sl_state_db *db, const struct sl_state_part_opts *o,
                       struct sl_state_part **out, struct sl_state_mark *mark, char *err,
                       size_t errlen);
/* Closes; what is not committed is dropped (sl_state_part_sync first for a
 * clean stop). Unregisters from the writer. */
void sl_state_part_close(struct sl_state_part *p);

/* The plugins' writer view of p (host->state_*): valid until close. */
struct sl_state *sl_state_part_view(struct sl_state_part *p);

/* ---- the owner's step ---------------------------------------------------------- */

/* At the start of a step: takes in a commit that completed (the batch is
 * freed, its entries become evictable). True when the state has room to
 * apply (false: wait for a commit; the writer wakes the owner). */
bool sl_state_part_poll(struct sl_state_part *p);
/*
 * At the end of a step: ends the step's reads, evicts past the budget;
 * then, with `mark` (the applier's next offset and emit sequence: the
 * cache holds exactly the changes of the events below it; NULL when the
 * state may not be committed now), freezes the dirty entries into a batch
 * for the writer when none is in flight and `force`, the cache is full,
 * dirty bytes are half the budget or the interval passed. 0, -ENOMEM
 * (nothing frozen; tried again next step).
 */
int sl_state_part_end_step(struct sl_state_part *p, const struct sl_state_mark *mark, bool force);
/* Commits everything up to `mark` on the calling thread (a clean stop, or
 * a part without a writer): 0 or -errno with err. The writer must not be
 * running with a batch of p. */
int sl_state_part_sync(struct sl_state_part *p, const struct sl_state_mark *mark, char *err,
                       size_t errlen);

/*
 * Swaps: whether p holds nothing but its commit at `next` (nothing dirty,
 * no batch in flight, the committed mark's next is `next`). Owner only.
 */
bool sl_state_part_settled(const struct sl_state_part *p, uint64_t next);
/*
 * Makes rebuild part `rb` (opened with .rebuild) the live model of its
 * partition, in place of `live`: one durable write names rb's key space
 * live, gives it the mark (rb's next, `emit_seq` (the live model's: what it
 * emitted was published), the next generation) and deletes the old space's
 * keys and mark. A crash before that write leaves the old model whole, after
 * it the new one (the open removes the other space's leftovers). Then
 * `live` reads and writes the new space (its cache emptied; its writer view,
 * which the plugin holds, stays valid) and rb may only be closed (its keys
 * are live now). Both must be settled at the same offset: -EBUSY otherwise,
 * nothing done. Owner of both (the same thread); queries on other threads
 * read the old model or the new one whole (their snapshot sees the live
 * record with the keys). -errno with err.
 */
int sl_state_part_swap(struct sl_state_part *live, struct sl_state_part *rb, uint64_t emit_seq,
                       char *err, size_t errlen);

/* The committed mark's next offset, published by the writer (any thread;
 * acquire: the state it reflects is committed). */
uint64_t sl_state_part_committed(const struct sl_state_part *p);
/* Failed commits so far, and the last one's reason (any thread; the
 * text is the writer's, read it only when the count changed). */
uint64_t sl_state_part_commit_failures(const struct sl_state_part *p);

/* Any thread; entries and cache_bytes as of the owner's last step. */
struct sl_state_part_stats {
	uint64_t entries, cache_bytes;
	uint64_t hits, misses, evictions;
	uint64_t commits, committed_keys, blocked_steps;
};
void sl_state_part_get_stats(const struct sl_state_part *p, struct sl_state_part_stats *out);

/* ---- the writer thread ----------------------------------------------------------- */

/*
 * The least time between two batches of a part, unless its cache fills or a
 * query waits for its own write (then at once). Every dirty key costs a put
 * into RocksDB's memtable at each commit (2-3 us of the writer's CPU): at
 * 10 ms a hot set of 10,000 aggregates took a core's worth on this 2-core
 * machine and ingest fell 38% (bench/scripts/state_scale.sh 2000000 10000);
 * at 100 ms a key changed many times is written once per 100 ms. Queries
 * without min_offset see the state up to this much older (max_lag counts
 * it), as Kafka Streams' commit.interval.ms does under exactly once.
 */
#define SL_STATE_INTERVAL_NS 100000000ull

struct sl_state_writer_opts {
	uint64_t interval_ns; /* 0: SL_STATE_INTERVAL_NS */
};

int sl_state_writer_start(const struct sl_state_writer_opts *o, struct sl_state_writer **out);
/* Commits what is pending, then stops and joins the thread. */
void sl_state_writer_stop(struct sl_state_writer *w);
/* Registers p: its batches are committed by w from now on. Without a
 * writer (tests), sl_state_part_end_step commits inline. */
int sl_state_writer_add(struct sl_state_writer *w, struct sl_state_part *p);

/* ---- read views (any thread) ------------------------------------------------------- */

/* A consistent view of partition `partition` as last committed, and its
 * mark. The view is the thread's until sl_state_view_end. -errno. */
int sl_state_view_begin(struct sl_state_db *db, uint32_t partition, struct sl_state **out,
                        struct sl_state_mark *mark);
void sl_state_view_end(struct sl_state *v);

/* ---- the host functions (sluice/plugin.h, ABI 1.2) ------------------------------------ */

int sl_state_get(struct sl_state *st, const void *key, size_t klen, const void **val, size_t *vlen);
int sl_state_put(struct sl_state *st, const void *key, size_t klen, const void *val, size_t vlen);
int sl_state_modify(struct sl_state *st, const void *key, size_t klen, size_t vlen, void **val);
int sl_state_del(struct sl_state *st, const void *key, size_t klen);
int sl_state_iter(struct sl_state *st, const void *from, size_t from_len,
                  int (*fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen),
                  void *arg);

#endif
