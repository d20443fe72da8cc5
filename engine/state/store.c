/*
 * The RocksDB side of the state store (state.h): the database, durable
 * commits of frozen batches (the writer thread, or the owner at a clean
 * stop), read views on snapshots (any thread), and the host functions,
 * which send a writer view to its cache (cache.c) and read a read view
 * from its snapshot.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "state/state_impl.h"

/* Files RocksDB may keep open per projection: tables beyond it are opened
 * per read. A few hundred cover tens of GiB of state at the default 64 MiB
 * tables. */
#define SL__MAX_OPEN_FILES 256
/* Bloom filters: 10 bits a key, about 1% false positives, so a new key (a
 * miss on the owner) rarely costs a read of a table. */
#define SL__BLOOM_BITS 10.0

/* RocksDB reports errors as malloc'd text: copied into err, freed. */
static int sl__rerr(char *rerr, const char *what, const char *path, char *err, size_t errlen)
{
	sl_errf(err, errlen, "%s: %s: %s", path, what, rerr);
	int ret = strstr(rerr, "No space")     ? -ENOSPC
	          : strstr(rerr, "Corruption") ? -SL_ECORRUPT
	                                       : -EIO;
	rocksdb_free(rerr);
	return ret;
}

size_t sl__state_key(uint8_t *out, uint32_t space, const void *key, size_t klen)
{
	out[0] = SL_STATE_TAG_KEY;
	out[1] = (uint8_t)(space >> 24);
	out[2] = (uint8_t)(space >> 16);
	out[3] = (uint8_t)(space >> 8);
	out[4] = (uint8_t)space;
	if (klen)
		memcpy(out + SL_STATE_PREFIX_BYTES, key, klen);
	return SL_STATE_PREFIX_BYTES + klen;
}

static void sl__mark_key(uint8_t *out, uint32_t space)
{
	sl__state_key(out, space, NULL, 0);
	out[0] = SL_STATE_TAG_MARK;
}

static void sl__live_key(uint8_t *out, uint32_t partition)
{
	sl__state_key(out, partition, NULL, 0);
	out[0] = SL_STATE_TAG_LIVE;
}

int sl_state_db_open(const struct sl_state_db_opts *o, struct sl_state_db **out, char *err,
                     size_t errlen)
{
	struct sl_state_db *db;
	char *rerr = NULL;
	int ret;

	*out = NULL;
	db = calloc(1, sizeof(*db));
	if (!db || !(db->path = strdup(o->path))) {
		free(db);
		return -ENOMEM;
	}
	if ((ret = sl_mkdirs(o->path)) < 0) {
		sl_errf(err, errlen, "%s: cannot create the folder: %s", o->path, sl_strerror(ret));
		goto fail;
	}
	size_t wb = o->write_buffer_bytes ? o->write_buffer_bytes : SL_STATE_WRITE_BUFFER_DEFAULT;
	size_t bc = o->block_cache_bytes ? o->block_cache_bytes : SL_STATE_BLOCK_CACHE_DEFAULT;
	db->opts = rocksdb_options_create();
	db->table = rocksdb_block_based_options_create();
	db->cache = rocksdb_cache_create_lru(bc);
	db->sync = rocksdb_writeoptions_create();
	db->read = rocksdb_readoptions_create();
	if (!db->opts || !db->table || !db->cache || !db->sync || !db->read) {
		ret = -ENOMEM;
		goto fail;
	}
	rocksdb_options_set_create_if_missing(db->opts, 1);
	/* Two background jobs: RocksDB gives one to flushes and one to
	 * compactions, so a long compaction never holds a flush back. With
	 * one job, at 15M aggregates, level 0 reached 20 files behind a
	 * compaction and writes stalled (ingest ~10k events/s). Aggregate ids
	 * arrive in no key order, so every level-0 file spans the key space:
	 * level sizes follow the data (dynamic level bytes), and levels 0 and
	 * 1, rewritten most, are not compressed (CPU). */
	rocksdb_options_set_max_background_jobs(db->opts, 2);
	rocksdb_options_set_level_compaction_dynamic_level_bytes(db->opts, 1);
	int levels[7] = {rocksdb_no_compression,  rocksdb_no_compression,  rocksdb_lz4_compression,
	                 rocksdb_lz4_compression, rocksdb_lz4_compression, rocksdb_lz4_compression,
	                 rocksdb_lz4_compression};
	rocksdb_options_set_compression_per_level(db->opts, levels, 7);
	rocksdb_options_set_level0_slowdown_writes_trigger(db->opts, 40);
	rocksdb_options_set_level0_stop_writes_trigger(db->opts, 64);
	/* Memtables count in the budget: two of `wb` at most. */
	rocksdb_options_set_write_buffer_size(db->opts, wb);
	rocksdb_options_set_max_write_buffer_number(db->opts, 2);
	rocksdb_options_set_max_open_files(db->opts, SL__MAX_OPEN_FILES);
	rocksdb_options_set_keep_log_file_num(db->opts, 2);
	rocksdb_options_set_info_log_level(db->opts, 2 /* warnings and worse */);
	/* Index and filter blocks in the block cache, so its size bounds them
	 * (outside it they grew with the state: 133 MiB at 15M aggregates of
	 * two projections), partitioned into 4 KiB pieces: a lookup reads the
	 * piece it needs, where a table's whole filter (1.2 MiB per million
	 * keys) used to be read back and checksummed at nearly every miss
	 * (perf: 40% of the reactor, ingest at 1M aggregates 176k -> 32k
	 * events/s). The top-level index of each table stays pinned. */
	rocksdb_block_based_options_set_block_cache(db->table, db->cache);
	rocksdb_block_based_options_set_index_type(
	    db->table, rocksdb_block_based_table_index_type_two_level_index_search);
	rocksdb_block_based_options_set_partition_filters(db->table, 1);
	rocksdb_block_based_options_set_metadata_block_size(db->table, 4096);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(db->table, 1);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(db->table,
	                                                                                 1);
	rocksdb_block_based_options_set_pin_top_level_index_and_filter(db->table, 1);
	db->filter = rocksdb_filterpolicy_create_bloom(SL__BLOOM_BITS);
	rocksdb_block_based_options_set_filter_policy(db->table, db->filter);
	rocksdb_options_set_block_based_table_factory(db->opts, db->table);
	rocksdb_writeoptions_set_sync(db->sync, 1);
	db->db = rocksdb_open(db->opts, o->path, &rerr);
	if (!db->db) {
		ret = sl__rerr(rerr, "cannot open the state store", o->path, err, errlen);
		goto fail;
	}
	*out = db;
	return 0;
fail:
	sl_state_db_close(db);
	return ret;
}

void sl_state_db_close(struct sl_state_db *db)
{
	if (!db)
		return;
	if (db->db)
		rocksdb_close(db->db);
	if (db->opts)
		rocksdb_options_destroy(db->opts);
	/* The table options own the filter policy once it is set. */
	if (db->table)
		rocksdb_block_based_options_destroy(db->table);
	if (db->cache)
		rocksdb_cache_destroy(db->cache);
	if (db->sync)
		rocksdb_writeoptions_destroy(db->sync);
	if (db->read)
		rocksdb_readoptions_destroy(db->read);
	free(db->path);
	free(db);
}

void sl_state_db_test_fail_commits(struct sl_state_db *db, bool on)
{
	atomic_store_explicit(&db->test_fail_commits, on, memory_order_relaxed);
}

uint64_t sl_state_db_file_bytes(const struct sl_state_db *db)
{
	char p[4096];
	uint64_t sum = 0;
	struct dirent *d;
	DIR *dir = opendir(db->path);

	if (!dir)
		return 0;
	while ((d = readdir(dir))) {
		struct stat st;
		if (d->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", db->path, d->d_name);
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_blocks * 512u;
	}
	closedir(dir);
	return sum;
}

uint64_t sl_state_db_memory_bytes(const struct sl_state_db *db)
{
	uint64_t mem = 0, readers = 0;
	(void)rocksdb_property_int(db->db, "rocksdb.cur-size-all-mem-tables", &mem);
	(void)rocksdb_property_int(db->db, "rocksdb.estimate-table-readers-mem", &readers);
	return mem + readers + rocksdb_cache_get_usage(db->cache);
}

static uint64_t sl__ld64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t sl__ld32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The bytes of a small record (a mark, a live record) into buf: 0 with *n,
 * 1 when absent, -SL_ECORRUPT when longer than cap, -EIO. */
static int sl__get_record(struct sl_state_db *db, const rocksdb_readoptions_t *ro, const uint8_t *k,
                          uint8_t *buf, size_t cap, size_t *n)
{
	char *rerr = NULL;
	rocksdb_pinnableslice_t *s = rocksdb_get_pinned(db->db, ro ? ro : db->read, (const char *)k,
	                                                SL_STATE_PREFIX_BYTES, &rerr);
	if (rerr) {
		rocksdb_free(rerr);
		return -EIO;
	}
	if (!s)
		return 1;
	const char *v = rocksdb_pinnableslice_value(s, n);
	int ret = *n > cap ? -SL_ECORRUPT : 0;
	if (!ret)
		memcpy(buf, v, *n);
	rocksdb_pinnableslice_destroy(s);
	return ret;
}

int sl__state_read_mark(struct sl_state_db *db, const rocksdb_readoptions_t *ro, uint32_t space,
                        struct sl_state_mark *mark)
{
	uint8_t k[SL_STATE_PREFIX_BYTES], v[SL_STATE_META_BYTES];
	size_t n;

	memset(mark, 0, sizeof(*mark));
	sl__mark_key(k, space);
	int ret = sl__get_record(db, ro, k, v, sizeof(v), &n);
	return ret ? (ret > 0 ? 0 : ret) : sl_state_mark_parse(v, n, mark);
}

int sl_state_mark_parse(const void *bytes, size_t n, struct sl_state_mark *mark)
{
	const uint8_t *v = bytes;

	memset(mark, 0, sizeof(*mark));
	if (n != SL_STATE_META_BYTES ||
	    sl__ld32(v + SL_STATE_META_OFF_MAGIC) != SL_STATE_META_MAGIC ||
	    sl__ld32(v + SL_STATE_META_OFF_VERSION) != SL_STATE_META_VERSION)
		return -SL_ECORRUPT;
	mark->next = sl__ld64(v + SL_STATE_META_OFF_NEXT);
	mark->emit_seq = sl__ld64(v + SL_STATE_META_OFF_EMIT_SEQ);
	mark->gen = sl__ld64(v + SL_STATE_META_OFF_GEN);
	return 0;
}

int sl_state_live_parse(const void *bytes, size_t n, uint32_t partition, uint32_t *space)
{
	const uint8_t *v = bytes;

	*space = partition;
	if (n != SL_STATE_LIVE_BYTES ||
	    sl__ld32(v + SL_STATE_LIVE_OFF_MAGIC) != SL_STATE_LIVE_MAGIC)
		return -SL_ECORRUPT;
	uint32_t s = sl__ld32(v + SL_STATE_LIVE_OFF_SPACE);
	/* Only the partition's own two spaces: any other would read (and, at
	 * a swap, delete) another partition's keys. */
	if ((s & ~SL_STATE_SPACE_ALT) != (partition & ~SL_STATE_SPACE_ALT))
		return -SL_ECORRUPT;
	*space = s;
	return 0;
}

int sl__state_live_space(struct sl_state_db *db, const rocksdb_readoptions_t *ro,
                         uint32_t partition, uint32_t *space)
{
	uint8_t k[SL_STATE_PREFIX_BYTES], v[SL_STATE_LIVE_BYTES];
	size_t n;

	*space = partition;
	sl__live_key(k, partition);
	int ret = sl__get_record(db, ro, k, v, sizeof(v), &n);
	return ret ? (ret > 0 ? 0 : ret) : sl_state_live_parse(v, n, partition, space);
}

int sl__state_space_used(struct sl_state_db *db, uint32_t space)
{
	uint8_t k[SL_STATE_PREFIX_BYTES];
	struct sl_state_mark m;
	char *rerr = NULL;
	int used = 0;

	/* A mark left by a commit that wrote no key counts too. */
	int ret = sl__state_read_mark(db, NULL, space, &m);
	if (ret == -SL_ECORRUPT || (ret == 0 && m.gen))
		return 1;
	if (ret < 0)
		return ret;
	sl__state_key(k, space, NULL, 0);
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->db, db->read);
	if (!it)
		return -ENOMEM;
	rocksdb_iter_seek(it, (const char *)k, sizeof(k));
	if (rocksdb_iter_valid(it)) {
		size_t kl;
		const char *key = rocksdb_iter_key(it, &kl);
		used = kl >= sizeof(k) && !memcmp(key, k, sizeof(k));
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr) {
		rocksdb_free(rerr);
		return -EIO;
	}
	return used;
}

/* The keys of `space` are [its prefix, the next space's prefix). */
static void sl__space_range(rocksdb_writebatch_t *wb, uint32_t space)
{
	uint8_t from[SL_STATE_PREFIX_BYTES], to[SL_STATE_PREFIX_BYTES];

	sl__state_key(from, space, NULL, 0);
	sl__state_key(to, space + 1, NULL, 0);
	if (space == UINT32_MAX)
		to[0] = SL_STATE_TAG_KEY + 1; /* every key of this tag */
	rocksdb_writebatch_delete_range(wb, (const char *)from, sizeof(from), (const char *)to,
	                                sizeof(to));
	sl__mark_key(from, space);
	rocksdb_writebatch_delete(wb, (const char *)from, sizeof(from));
}

int sl__state_drop_space(struct sl_state_db *db, uint32_t space, char *err, size_t errlen)
{
	char *rerr = NULL;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();

	if (!wb || !wo) {
		if (wb)
			rocksdb_writebatch_destroy(wb);
		if (wo)
			rocksdb_writeoptions_destroy(wo);
		return -ENOMEM;
	}
	sl__space_range(wb, space);
	rocksdb_write(db->db, wo, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	rocksdb_writeoptions_destroy(wo);
	return rerr ? sl__rerr(rerr, "dropping a key space", db->path, err, errlen) : 0;
}

static void sl__mark_bytes(uint8_t m[SL_STATE_META_BYTES], const struct sl_state_mark *mark)
{
	uint32_t magic = SL_STATE_META_MAGIC, version = SL_STATE_META_VERSION;
	int64_t ms = (int64_t)sl_wall_ms();
	memcpy(m + SL_STATE_META_OFF_MAGIC, &magic, 4);
	memcpy(m + SL_STATE_META_OFF_VERSION, &version, 4);
	memcpy(m + SL_STATE_META_OFF_NEXT, &mark->next, 8);
	memcpy(m + SL_STATE_META_OFF_EMIT_SEQ, &mark->emit_seq, 8);
	memcpy(m + SL_STATE_META_OFF_GEN, &mark->gen, 8);
	memcpy(m + SL_STATE_META_OFF_MS, &ms, 8);
}

int sl__state_swap_write(struct sl_state_db *db, uint32_t partition, uint32_t old_space,
                         uint32_t new_space, const struct sl_state_mark *mark, char *err,
                         size_t errlen)
{
	uint8_t k[SL_STATE_PREFIX_BYTES], m[SL_STATE_META_BYTES], live[SL_STATE_LIVE_BYTES];
	uint32_t magic = SL_STATE_LIVE_MAGIC;
	char *rerr = NULL;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();

	if (!wb)
		return -ENOMEM;
	/* In one WAL record, synced: the live record and the new mark, and
	 * the old space gone. A batch applies in order, so the deletion
	 * (of old_space only) cannot touch what the puts write. */
	memcpy(live + SL_STATE_LIVE_OFF_MAGIC, &magic, 4);
	memcpy(live + SL_STATE_LIVE_OFF_SPACE, &new_space, 4);
	sl__live_key(k, partition);
	rocksdb_writebatch_put(wb, (const char *)k, sizeof(k), (const char *)live, sizeof(live));
	sl__mark_bytes(m, mark);
	sl__mark_key(k, new_space);
	rocksdb_writebatch_put(wb, (const char *)k, sizeof(k), (const char *)m, sizeof(m));
	sl__space_range(wb, old_space);
	if (atomic_load_explicit(&db->test_fail_commits, memory_order_relaxed)) {
		rocksdb_writebatch_destroy(wb);
		sl_errf(err, errlen, "%s: swap stopped by the test hook", db->path);
		return -ECANCELED;
	}
	rocksdb_write(db->db, db->sync, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	return rerr ? sl__rerr(rerr, "swap", db->path, err, errlen) : 0;
}

int sl__state_get(struct sl_state_db *db, const rocksdb_readoptions_t *ro, uint32_t space,
                  const void *key, size_t klen, rocksdb_pinnableslice_t **out)
{
	uint8_t k[SL_STATE_PREFIX_BYTES + SL_STATE_KEY_MAX];
	char *rerr = NULL;
	size_t n = sl__state_key(k, space, key, klen);

	*out = rocksdb_get_pinned(db->db, ro ? ro : db->read, (const char *)k, n, &rerr);
	if (rerr) {
		rocksdb_free(rerr);
		return -EIO;
	}
	return *out ? 0 : -ENOENT;
}

/* A batch's records in key order: RocksDB's memtable inserts keys given in
 * order next to the previous one (its skip list keeps a splice for
 * sequential inserts) instead of searching from the top for each. */
struct sl__rec {
	const uint8_t *key;
	const uint8_t *val;
	uint32_t klen, vlen;
};

static int sl__rec_cmp(const void *a, const void *b)
{
	const struct sl__rec *x = a, *y = b;
	return sl__state_key_cmp(x->key, x->klen, y->key, y->klen);
}

static void sl__write_batch(rocksdb_writebatch_t *wb, const struct sl__batch *b,
                            struct sl__rec *recs)
{
	uint8_t k[SL_STATE_PREFIX_BYTES + SL_STATE_KEY_MAX];
	const uint8_t *at = b->bytes;

	for (uint32_t i = 0; i < b->n; i++) {
		struct sl__rec *r = &recs[i];
		r->klen = sl__ld32(at);
		r->vlen = sl__ld32(at + 4);
		r->key = at + 8;
		r->val = r->key + r->klen;
		at = r->val + (r->vlen == SL__ABSENT ? 0 : r->vlen);
	}
	qsort(recs, b->n, sizeof(*recs), sl__rec_cmp);
	for (uint32_t i = 0; i < b->n; i++) {
		const struct sl__rec *r = &recs[i];
		size_t n = sl__state_key(k, b->space, r->key, r->klen);
		if (r->vlen == SL__ABSENT)
			rocksdb_writebatch_delete(wb, (const char *)k, n);
		else
			rocksdb_writebatch_put(wb, (const char *)k, n, (const char *)r->val,
			                       r->vlen);
	}
	uint8_t m[SL_STATE_META_BYTES];
	sl__mark_bytes(m, &b->mark);
	sl__mark_key(k, b->space);
	rocksdb_writebatch_put(wb, (const char *)k, SL_STATE_PREFIX_BYTES, (const char *)m,
	                       sizeof(m));
}

static int sl__batch_cmp(const void *a, const void *b)
{
	const struct sl__batch *x = *(struct sl__batch *const *)a,
	                       *y = *(struct sl__batch *const *)b;
	return (x->space > y->space) - (x->space < y->space);
}

int sl__state_commit(struct sl_state_db *db, struct sl__batch *const *b, uint32_t n, char *err,
                     size_t errlen)
{
	char *rerr = NULL;
	struct sl__rec *recs = NULL;
	uint32_t most = 1;

	for (uint32_t i = 0; i < n; i++)
		if (b[i]->n > most)
			most = b[i]->n;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	if (!wb || !(recs = malloc((size_t)most * sizeof(*recs)))) {
		if (wb)
			rocksdb_writebatch_destroy(wb);
		sl_errf(err, errlen, "%s: commit: out of memory", db->path);
		return -ENOMEM;
	}
	/* Spaces in order too (the writer hands them in any order). */
	struct sl__batch **ord = malloc((size_t)(n ? n : 1) * sizeof(*ord));
	if (!ord) {
		free(recs);
		rocksdb_writebatch_destroy(wb);
		sl_errf(err, errlen, "%s: commit: out of memory", db->path);
		return -ENOMEM;
	}
	memcpy(ord, b, (size_t)n * sizeof(*ord));
	qsort(ord, n, sizeof(*ord), sl__batch_cmp);
	for (uint32_t i = 0; i < n; i++)
		sl__write_batch(wb, ord[i], recs);
	free(ord);
	free(recs);
	if (atomic_load_explicit(&db->test_fail_commits, memory_order_relaxed)) {
		rocksdb_writebatch_destroy(wb);
		sl_errf(err, errlen, "%s: commit stopped by the test hook", db->path);
		return -ECANCELED;
	}
	/* One write of every batch and their marks: all or none survive a
	 * crash (the WAL record is checksummed), and sync makes it durable
	 * before it returns. */
	rocksdb_write(db->db, db->sync, wb, &rerr);
	rocksdb_writebatch_destroy(wb);
	if (rerr)
		return sl__rerr(rerr, "commit", db->path, err, errlen);
	return 0;
}

void sl__state_committed(struct sl_state_part *p, const struct sl__batch *b)
{
	atomic_fetch_add_explicit(&p->commits, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->committed_keys, b->n, memory_order_relaxed);
	atomic_store_explicit(&p->committed_next, b->mark.next, memory_order_relaxed);
	/* Release: the owner that sees the generation sees the commit done,
	 * so it may free the batch and evict its entries. */
	atomic_store_explicit(&p->committed_gen, b->mark.gen, memory_order_release);
}

uint64_t sl_state_part_committed(const struct sl_state_part *p)
{
	/* Read after the generation: next is stored before it. */
	(void)atomic_load_explicit(&p->committed_gen, memory_order_acquire);
	return atomic_load_explicit(&p->committed_next, memory_order_relaxed);
}

uint64_t sl_state_part_commit_failures(const struct sl_state_part *p)
{
	return atomic_load_explicit(&p->commit_failures, memory_order_relaxed);
}

int sl__state_iter_ro(struct sl_state_db *db, const rocksdb_readoptions_t *ro, uint32_t space,
                      const void *from, size_t from_len,
                      int (*fn)(void *arg, const void *key, size_t klen, const void *val,
                                size_t vlen),
                      void *arg)
{
	uint8_t k[SL_STATE_PREFIX_BYTES + SL_STATE_KEY_MAX];
	char *rerr = NULL;
	int ret = 0;

	if (from_len > SL_STATE_KEY_MAX)
		return -ENAMETOOLONG;
	size_t n = sl__state_key(k, space, from, from_len);
	rocksdb_iterator_t *it = rocksdb_create_iterator(db->db, ro ? ro : db->read);
	if (!it)
		return -ENOMEM;
	for (rocksdb_iter_seek(it, (const char *)k, n); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *key = rocksdb_iter_key(it, &kl);
		/* Past this space's keys (the next space, or marks). */
		if (kl < SL_STATE_PREFIX_BYTES || memcmp(key, k, SL_STATE_PREFIX_BYTES))
			break;
		const char *val = rocksdb_iter_value(it, &vl);
		ret = fn(arg, key + SL_STATE_PREFIX_BYTES, kl - SL_STATE_PREFIX_BYTES, val, vl);
		if (ret)
			break;
	}
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr) {
		rocksdb_free(rerr);
		return -EIO;
	}
	return ret;
}

/* ---- read views ----------------------------------------------------------------------- */

int sl_state_view_begin(struct sl_state_db *db, uint32_t partition, struct sl_state **out,
                        struct sl_state_mark *mark)
{
	struct sl_state *v = calloc(1, sizeof(*v));
	int ret;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	v->db = db;
	v->partition = partition;
	/* One snapshot: the mark and every key read belong to one commit. */
	v->snap = rocksdb_create_snapshot(db->db);
	v->ro = rocksdb_readoptions_create();
	if (!v->snap || !v->ro) {
		sl_state_view_end(v);
		return -ENOMEM;
	}
	rocksdb_readoptions_set_snapshot(v->ro, v->snap);
	/* The live record from the same snapshot: a swap's one write changes
	 * it with the keys, so the view is the old model or the new, whole. */
	if ((ret = sl__state_live_space(db, v->ro, partition, &v->space)) < 0 ||
	    (ret = sl__state_read_mark(db, v->ro, v->space, mark)) < 0) {
		sl_state_view_end(v);
		return ret;
	}
	*out = v;
	return 0;
}

void sl_state_view_end(struct sl_state *v)
{
	if (!v)
		return;
	if (v->held)
		rocksdb_pinnableslice_destroy(v->held);
	if (v->ro)
		rocksdb_readoptions_destroy(v->ro);
	if (v->snap)
		rocksdb_release_snapshot(v->db->db, v->snap);
	free(v);
}

/* ---- the host functions ------------------------------------------------------------------ */

int sl_state_get(struct sl_state *st, const void *key, size_t klen, const void **val, size_t *vlen)
{
	if (!st)
		return -EINVAL;
	if (st->part)
		return sl__part_get(st->part, key, klen, val, vlen);
	if (!klen || klen > SL_STATE_KEY_MAX)
		return klen ? -ENAMETOOLONG : -EINVAL;
	if (st->held) {
		rocksdb_pinnableslice_destroy(st->held);
		st->held = NULL;
	}
	int ret = sl__state_get(st->db, st->ro, st->space, key, klen, &st->held);
	if (ret < 0)
		return ret;
	*val = rocksdb_pinnableslice_value(st->held, vlen);
	return 0;
}

int sl_state_put(struct sl_state *st, const void *key, size_t klen, const void *val, size_t vlen)
{
	if (!st)
		return -EINVAL;
	return st->part ? sl__part_put(st->part, key, klen, val, vlen) : -EROFS;
}

int sl_state_modify(struct sl_state *st, const void *key, size_t klen, size_t vlen, void **val)
{
	if (!st)
		return -EINVAL;
	return st->part ? sl__part_modify(st->part, key, klen, vlen, val) : -EROFS;
}

int sl_state_del(struct sl_state *st, const void *key, size_t klen)
{
	if (!st)
		return -EINVAL;
	return st->part ? sl__part_del(st->part, key, klen) : -EROFS;
}

int sl_state_iter(struct sl_state *st, const void *from, size_t from_len,
                  int (*fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen),
                  void *arg)
{
	if (!st || !fn)
		return -EINVAL;
	if (st->part)
		return sl__part_iter(st->part, from, from_len, fn, arg);
	return sl__state_iter_ro(st->db, st->ro, st->space, from, from_len, fn, arg);
}
