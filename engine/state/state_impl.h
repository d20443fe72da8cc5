/*
 * state: what the owner's cache (cache.c), the store (store.c) and the
 * writer thread (writer.c) share. Not for other modules: state.h is the face.
 */
#ifndef SL_STATE_IMPL_H
#define SL_STATE_IMPL_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <string.h>

#include "state/state.h"
#include "state/state_format.h"

struct sl_state_db {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *table;
	rocksdb_cache_t *cache;
	rocksdb_filterpolicy_t *filter; /* owned by table once set */
	rocksdb_writeoptions_t *sync;   /* durable writes: the WAL is fdatasync'd */
	rocksdb_readoptions_t *read;    /* the owners' misses: the newest commit */
	char *path;
	_Atomic bool test_fail_commits;
};

/* A view: a part's writer view (part set), or a read view (snap set). */
struct sl_state {
	struct sl_state_part *part;
	struct sl_state_db *db;
	const rocksdb_snapshot_t *snap;
	rocksdb_readoptions_t *ro;
	rocksdb_pinnableslice_t *held; /* the last get's value, until the next */
	uint32_t partition;
	uint32_t space; /* the key space read (state_format.h) */
	/* The store's key of the last lookup (a tag, the partition, the key). */
	uint8_t key[SL_STATE_PREFIX_BYTES + SL_STATE_KEY_MAX];
};

/* One cached key of a part. */
struct sl__sent {
	uint64_t hash;
	/* The batch generation that last carried it (0: none): it may be
	 * evicted only once that batch is committed, or a miss would read
	 * an older value from disk. */
	uint64_t pin_gen;
	uint32_t klen, vlen, vcap;
	uint32_t dirty_at; /* its index in the dirty list + 1; 0: clean */
	uint8_t absent;    /* no value: deleted, or a miss remembered */
	uint8_t ref;       /* CLOCK: used since the hand last passed */
	uint8_t bytes[];   /* klen key bytes, then vcap value bytes */
};

struct sl__slot {
	uint64_t hash; /* 0: empty (hashes are forced non-zero) */
	struct sl__sent *e;
};

/*
 * A frozen batch: records back to back, each u32 klen, u32 vlen
 * (SL__ABSENT: a deletion), key bytes, value bytes. Immutable once handed
 * to the writer; the owner frees it after its commit.
 */
#define SL__ABSENT UINT32_MAX
struct sl__batch {
	struct sl_state_mark mark;
	uint32_t space;
	uint32_t n;
	size_t len;
	uint8_t bytes[];
};

struct sl_state_part {
	struct sl_state_db *db;
	uint32_t partition;
	uint32_t space; /* its key space: the live one, or a rebuild's */
	bool rebuild;   /* opened beside the live model (.rebuild) */
	bool swapped;   /* rebuild: its space is live now, kept at close */
	struct sl_state view;

	/* The cache: open addressing, at most half full. */
	struct sl__slot *slots;
	uint32_t mask, used;
	uint32_t hand; /* CLOCK */
	struct sl__sent **dirty;
	uint32_t n_dirty, dirty_cap;
	size_t dirty_bytes;
	size_t bytes, budget;
	bool full;

	/* Commits. The owner freezes a batch (gen = ++gen), keeps it in
	 * `inflight` and hands it over in `handoff`; the writer commits it and
	 * publishes committed_gen. */
	uint64_t gen;
	uint64_t committed_seen; /* the owner's copy of committed_gen */
	struct sl__batch *inflight;
	_Atomic(struct sl__batch *) handoff;
	_Atomic uint64_t committed_gen;
	_Atomic uint64_t committed_next;
	_Atomic uint64_t commit_failures;
	char commit_err[256];
	uint64_t last_freeze_ns;
	uint64_t interval_ns;
	void (*on_commit)(void *arg);
	void *on_commit_arg;
	struct sl_state_writer *writer;

	/* Stats: the owner's (hits ... blocked_steps, *_pub at each step end)
	 * and the committer's (commits, committed_keys); read by any thread. */
	_Atomic uint64_t hits, misses, evictions, blocked_steps;
	_Atomic uint64_t commits, committed_keys;
	_Atomic uint64_t bytes_pub, entries_pub;
};

/* Byte order of keys, a shorter key first when it is a prefix: the
 * store's order, which the cache's iteration and the commits' sorting
 * follow. Either pointer may be NULL at length 0. */
static inline int sl__state_key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;
	return c ? c : (an > bn) - (an < bn);
}

/* store.c. A `space` is a partition's key space (state_format.h). */
/* Writes the store key of (space, key) into out; its length. */
size_t sl__state_key(uint8_t *out, uint32_t space, const void *key, size_t klen);
int sl__state_read_mark(struct sl_state_db *db, const rocksdb_readoptions_t *ro, uint32_t space,
                        struct sl_state_mark *mark);
/* The live space of `partition` as of ro (its live record; absent: the
 * partition's own number). 0, -SL_ECORRUPT, -EIO. */
int sl__state_live_space(struct sl_state_db *db, const rocksdb_readoptions_t *ro,
                         uint32_t partition, uint32_t *space);
/* Whether `space` holds any key or a mark (newest state); -EIO. */
int sl__state_space_used(struct sl_state_db *db, uint32_t space);
/* Deletes every key of `space` and its mark, in one write (not synced: a
 * later synced write, or the next open, makes it so). */
int sl__state_drop_space(struct sl_state_db *db, uint32_t space, char *err, size_t errlen);
/* The swap's one durable write (sl_state_part_swap). */
int sl__state_swap_write(struct sl_state_db *db, uint32_t partition, uint32_t old_space,
                         uint32_t new_space, const struct sl_state_mark *mark, char *err,
                         size_t errlen);
/* Reads (space, key) as of ro: 0 with a slice the caller destroys,
 * -ENOENT, -EIO. */
int sl__state_get(struct sl_state_db *db, const rocksdb_readoptions_t *ro, uint32_t space,
                  const void *key, size_t klen, rocksdb_pinnableslice_t **out);
/* Writes batches (all of db) in one durable write. */
int sl__state_commit(struct sl_state_db *db, struct sl__batch *const *b, uint32_t n, char *err,
                     size_t errlen);
/* After a commit of b (any thread that committed it). */
void sl__state_committed(struct sl_state_part *p, const struct sl__batch *b);
/* Iterates the stored keys of `space` >= from, as of ro. */
int sl__state_iter_ro(struct sl_state_db *db, const rocksdb_readoptions_t *ro, uint32_t space,
                      const void *from, size_t from_len,
                      int (*fn)(void *arg, const void *key, size_t klen, const void *val,
                                size_t vlen),
                      void *arg);

/* writer.c */
void sl__state_writer_kick(struct sl_state_writer *w);
void sl__state_writer_remove(struct sl_state_writer *w, struct sl_state_part *p);

/* cache.c, for the host functions on a writer view */
int sl__part_get(struct sl_state_part *p, const void *key, size_t klen, const void **val,
                 size_t *vlen);
int sl__part_put(struct sl_state_part *p, const void *key, size_t klen, const void *val,
                 size_t vlen);
int sl__part_modify(struct sl_state_part *p, const void *key, size_t klen, size_t vlen, void **val);
int sl__part_del(struct sl_state_part *p, const void *key, size_t klen);
int sl__part_iter(struct sl_state_part *p, const void *from, size_t from_len,
                  int (*fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen),
                  void *arg);

#endif
