/*
 * part: which partition of a topic an event goes to, keyed by its aggregate
 * id. A partitioner is a small value built once per topic at start-up and
 * then read by every reactor (and HTTP) thread concurrently.
 *
 * Strategies (each mapping depends only on the key's bytes and the topic's
 * settings: no pointer, address or random seed enters it, so it is the same
 * on every machine and across restarts; tests/unit/part.c pins it):
 *   hash        the high 32 bits of xxh3(key), multiply-shifted onto [0, N).
 *               Stored data depends on it: never change it.
 *   range       N-1 split keys in bytewise order (memcmp, a shorter key
 *               first when it is a prefix); partition i holds the keys in
 *               [split(i-1), split(i)). Binary search.
 *   consistent  a ring of V points per partition (xxh3 of the partition and
 *               point number); a key goes to the first point at or after
 *               xxh3(key), wrapping. Adding a partition moves ~1/(N+1).
 *   jump        Lamping and Veach's jump consistent hash of xxh3(key), in
 *               integer arithmetic. Adding a partition moves exactly the
 *               keys the new one takes, 1/(N+1) of them on average.
 *   directory   a table of `key partition` lines read from a file; keys
 *               it does not list go to a fallback (hash, jump or
 *               consistent). The file is read again by sl_part_reload
 *               (SIGHUP) while readers go on; see "Directory file" below.
 *
 * Directory file (sl_part_dir_parse): one entry per line, `KEY PARTITION`,
 * separated by spaces or tabs. Blank lines and lines whose first non-blank
 * byte is '#' are skipped. A key is any run of bytes without a space, tab,
 * CR, LF or NUL that does not start with '#' (no quoting: a key holding a
 * space cannot be listed and goes to the fallback); PARTITION is decimal, below the topic's
 * partition count. A key listed twice, a third field, a missing or bad partition, a NUL byte or a
 * key longer than SL_PART_KEY_MAX refuses the whole file with "FILE:LINE: reason".
 *
 * Reload: the new table is parsed and built on the caller's thread, then
 * published with one atomic store; the old one is freed once every lookup
 * that could have read it has ended (two reader counters per stripe,
 * flipped by the reloader: sleepable RCU in miniature; see part.c). A bad
 * file keeps the old table.
 *
 * Ownership: sl_part_init*() fill a caller-owned struct and copy what they
 * need from the spec (the spec may go right after); sl_part_destroy() frees
 * it. The struct may be copied by value: copies share the built tables, and
 * only one of them is destroyed, after every copy is done.
 * Threads: init/destroy on one thread before / after the readers run;
 * sl_part_of_key() from any thread, concurrently, without allocating,
 * locking or syscalls; sl_part_reload() from any one thread at a time (a
 * mutex serialises reloaders) while readers run.
 */
#ifndef SL_PART_H
#define SL_PART_H

#include <stddef.h>
#include <stdint.h>

enum sl_part_kind {
	SL_PART_HASH = 0,
	SL_PART_RANGE,
	SL_PART_CONSISTENT,
	SL_PART_JUMP,
	SL_PART_DIRECTORY,
};

/* The most partitions any strategy takes (config's topic limit). */
#define SL_PART_MAX_PARTS 4096u
/*
 * Ring points per partition when `vnodes` is not given. Measured with
 * bench/part.cc BM_Vnodes (1,000,000 random keys; ns per lookup, 65,536 keys
 * cycled; 2-core VM, 2026-12, release build):
 *
 *   V      CV N=8   CV N=64   CV N=1024   ns N=8   ns N=64   ns N=1024
 *   16     0.30     0.25      0.25        33       50        83
 *   64     0.090    0.14      0.13        43       61        101
 *   128    0.12     0.079     0.098       51       72        120
 *   256    0.048    0.059     0.068       56       86        132
 *   512    0.050    0.047     0.053       65       93        159
 *   1024   0.034    0.029     0.046       72       101       168
 *
 * CV falls as ~1/sqrt(V) while a lookup (a binary search over N*V points)
 * grows with log(V) and, on big rings, cache misses: 256 is the last
 * doubling that buys a clear gain (0.07 or better at every N, against
 * 0.10-0.12 at 128) for ~10 ns; 512 buys little more for 10-25 ns. The ring
 * is 12 B * N * V (12 MiB at 4,096 partitions).
 */
#define SL_PART_VNODES_DEFAULT 256u
#define SL_PART_VNODES_MAX     4096u
/* Ring points in all, N * V: 48 MiB at 12 B a point. */
#define SL_PART_RING_MAX (1u << 22)
/* The longest key a directory file may list (aggregate ids are short). */
#define SL_PART_KEY_MAX 1024u

struct sl_part_spec {
	enum sl_part_kind kind;
	uint32_t n_parts;
	/* range: n_parts - 1 split keys (NUL-terminated), strictly increasing */
	const char *const *splits;
	uint32_t n_splits;
	/* consistent (and directory's consistent fallback): 0 = default */
	uint32_t vnodes;
	/* directory: the table's file, and where unlisted keys go */
	const char *file;
	enum sl_part_kind fallback;
};

struct sl__part_range;
struct sl__part_ring;
struct sl_part_dir;

struct sl_partitioner {
	enum sl_part_kind kind;
	uint32_t n_parts;
	struct sl__part_range *range; /* RANGE */
	struct sl__part_ring *ring;   /* CONSISTENT; DIRECTORY's fallback */
	struct sl_part_dir *dir;      /* DIRECTORY */
	enum sl_part_kind fallback;   /* DIRECTORY: HASH, JUMP or CONSISTENT */
};

/* hash, jump or consistent (default vnodes) over n_parts: 0, -EINVAL (0 or
 * too many parts, or a strategy that needs arguments), -ENOMEM. */
int sl_part_init(struct sl_partitioner *p, enum sl_part_kind kind, uint32_t n_parts);
/* Any strategy from its spec. 0, or -SL_ECONFIG / -EINVAL / -ENOMEM / -errno
 * with err saying what is wrong (a split out of order, a file's line). */
int sl_part_init_spec(struct sl_partitioner *p, const struct sl_part_spec *s, char *err,
                      size_t errlen);
void sl_part_destroy(struct sl_partitioner *p);

/* The partition of `key` (an aggregate id); always < p->n_parts. */
uint32_t sl_part_of_key(const struct sl_partitioner *p, const void *key, size_t len);

/* DIRECTORY: reads the file again and publishes the new table; *n_keys (may
 * be NULL) its entries. A bad file keeps the old table: -SL_ECONFIG (or
 * -errno) with "FILE:LINE: reason" in err. -EINVAL for other strategies. */
int sl_part_reload(const struct sl_partitioner *p, uint32_t *n_keys, char *err, size_t errlen);
/* DIRECTORY: the file read (absolute or as given). */
const char *sl_part_dir_file(const struct sl_partitioner *p);

/* The name of a strategy ("hash", ...). */
const char *sl_part_kind_name(enum sl_part_kind k);

/*
 * The directory file's parser on its own (the fuzz target and the tests):
 * parses buf[0..len) named `name` in messages, for n_parts partitions.
 * 0 and *out (free with sl_part_table_free), or -SL_ECONFIG with err,
 * -ENOMEM. sl_part_table_find: the key's partition, or -1 when unlisted.
 */
struct sl_part_table;
int sl_part_dir_parse(const char *buf, size_t len, const char *name, uint32_t n_parts,
                      struct sl_part_table **out, char *err, size_t errlen);
void sl_part_table_free(struct sl_part_table *t);
int64_t sl_part_table_find(const struct sl_part_table *t, const void *key, size_t len);
uint32_t sl_part_table_len(const struct sl_part_table *t);

#endif
