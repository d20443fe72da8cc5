// state_store: LMDB against RocksDB on the projection state store's access
// pattern (projection state moving from in-memory hash tables to disk).
//
// The design measured: a projection instance keeps a write-back cache; a
// writer thread takes its D dirty keys and writes them, with one meta key
// holding the applied log offset (8 bytes), in ONE durable transaction
// (LMDB: an env without MDB_NOSYNC, so a commit fsyncs; RocksDB: a WriteBatch
// with sync=true, WAL on). Cache misses and queries do point gets from other
// threads at the same time (LMDB: MDB_NOTLS read txns, reset and renewed per
// get; RocksDB: Get, block cache bounded to 64 MiB, 10-bit Bloom filters).
// Keys are aggregate ids "agg-0001234567" (14 bytes); values 8 or 200 bytes.
//
// One store, one N, one value size per process, so that the RSS figures are
// that store's alone; bench/scripts/state_store.sh runs the matrix twice.
//   load      N keys in key order (LMDB: MDB_APPEND, a durable txn per 1M;
//             RocksDB: batches of 100k without WAL, then a flush and the
//             compactions it starts), keys/s and seconds.
//   flush     D = 10k and 100k dirty keys a commit, uniform over N and hot
//             (within the newest 1% of ids), unsorted and sorted: ms per
//             commit (median, max), keys/s, bytes written per commit (wchar
//             of /proc/self/io: what the store hands to write syscalls;
//             RocksDB: "fg" during the commits, the WAL; "all" also the
//             memtable flush and compactions that follow, waited for; and a
//             sum over all cases, since a flush lands in whichever case came
//             before it), and process CPU per commit (RocksDB's background
//             threads count). The 1% hot set is skipped where D exceeds it.
//   get       one reader thread, keys uniform over N, ns per get p50/p99,
//             a) alone, b) while a writer commits D = 10k uniform in a loop.
//   pass      gets of every key in order, then RssAnon / RssFile of the
//             process, the store's size on disk, and the time to close and
//             reopen it.
//   iter      every key in order with a cursor / iterator, keys/s.
//
// Not Google Benchmark, unlike the other bench/*.cc: every figure here needs
// a store of N keys built once and shared by all phases (a 10M-key load is
// most of the run), a second thread whose life spans one phase, percentiles,
// and process-wide RSS after a given phase; Google Benchmark's per-case
// iteration model fits none of that. It is built only when both libraries are
// found, and is not a CTest smoke test (bench/CMakeLists.txt).
//
//   build/bin/bench_state_store --store lmdb|rocksdb --keys N --value 8|200
//                               [--pass] [--dir DIR]
// The store is made under $TMPDIR (else build/tmp) and removed at the end.
//
// Measured 2026-12-07 (bench/scripts/state_store.sh build/bin 2), shared
// 2-vCPU VM, ext4 on /dev/vda, load 3.5-5 from other builds; LMDB 0.9.24,
// RocksDB 7.8.3; two runs, ranges over both. N = 10M, 8-byte values:
//                             LMDB                 RocksDB
//   load                      1.8-2.6 s            9.2-10.8 s (with compaction)
//   flush uniform D=10k       265-411 ms, 38.6 MiB 23-56 ms, 0.24 MiB WAL
//   flush uniform D=100k      0.95-2.05 s, 224 MiB 0.20-1.1 s, 2.4 MiB WAL
//   flush hot 1% D=100k       53-79 ms, 3.1 MiB    0.24-1.65 s, 2.4 MiB WAL
//   written, all flush cases  1441 B/key           145 B/key (WAL, flush, compaction)
//   get p50/p99 alone         1.3/8-9 us           9-10/35-53 us
//   get p50/p99 with writer   1.5-1.6/10.5 us      11-12/41 us, p99.9 4-12 ms
//   iterate                   22-46M keys/s        1.9-4.1M keys/s
//   after a read pass         anon 250 MiB (page   anon 130-143 MiB, file 13
//                             buffers LMDB keeps
//                             after a big txn),
//                             file 769 MiB
//   disk                      759 MiB (309 live)   90-93 MiB
//   reopen                    0.4-0.5 ms           69-120 ms
// LMDB writes a 4 KiB page per key spread over a large tree: its durable
// flush of uniform keys is 4-10x slower and writes ~10x more; RocksDB's gets
// are 6-8x slower (88 MiB of Snappy blocks behind a 64 MiB cache). No write
// stalls. The kernel's write_bytes read 2-8x wchar for LMDB (see io_now).
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <rocksdb/c.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace
{

// "agg-" and ten digits: the aggregate ids of the design.
constexpr size_t kKeyLen = 14;
// The applied log offset's key; '!' sorts before "agg-", so loads in key
// order (MDB_APPEND) never meet it.
const char kMetaKey[] = "!applied";
constexpr size_t kMetaLen = sizeof(kMetaKey) - 1;
// RocksDB's bound for the block cache, as the design states.
constexpr size_t kBlockCache = 64u << 20;

[[noreturn]] void die(const char *what, const char *detail)
{
	fprintf(stderr, "state_store: %s: %s\n", what, detail);
	exit(1);
}

uint64_t now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double cpu_s()
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

void key_of(uint64_t id, char *out)
{
	memcpy(out, "agg-", 4);
	for (int i = 13; i >= 4; i--) {
		out[i] = (char)('0' + id % 10);
		id /= 10;
	}
}

// A field of /proc/self/io or /proc/self/status ("write_bytes:", "RssAnon:").
uint64_t proc_field(const char *file, const char *name)
{
	FILE *f = fopen(file, "r");
	if (!f)
		die(file, strerror(errno));
	char line[256];
	uint64_t v = 0;
	size_t n = strlen(name);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, name, n) == 0) {
			v = strtoull(line + n, nullptr, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

// What the process wrote: wchar counts the bytes handed to write-like
// syscalls (the stores' own writes; the bench prints nothing mid-phase),
// write_bytes what the kernel accounts as sent to storage. On this VM the
// second reads 2-8x the first for LMDB (its pwrite/writev of whole 4 KiB
// pages, checked with strace), so wchar is the figure reported.
struct Io {
	uint64_t wchar, wbytes;
};
Io io_now()
{
	return {proc_field("/proc/self/io", "wchar:"), proc_field("/proc/self/io", "write_bytes:")};
}

uint64_t g_du;
int du_one(const char *, const struct stat *st, int, struct FTW *)
{
	g_du += (uint64_t)st->st_blocks * 512;
	return 0;
}
uint64_t disk_usage(const std::string &dir)
{
	g_du = 0;
	nftw(dir.c_str(), du_one, 16, FTW_PHYS);
	return g_du;
}

int rm_one(const char *path, const struct stat *, int, struct FTW *)
{
	return remove(path);
}
void remove_tree(const std::string &dir)
{
	nftw(dir.c_str(), rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

// Values read land here, so that no read can be optimised away.
volatile uint64_t g_sink;

// xorshift64*: cheap, and each thread has its own.
struct Rng {
	uint64_t s;
	explicit Rng(uint64_t seed) : s(seed ? seed : 1) {}
	uint64_t next()
	{
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		return s * 2685821657736338717ull;
	}
	uint64_t below(uint64_t n) { return (uint64_t)(((__uint128_t)next() * n) >> 64); }
};

// D distinct ids from [lo, lo + span), in draw order (the dirty set as a
// hash table hands it over: unsorted).
void draw_distinct(Rng &rng, uint64_t lo, uint64_t span, size_t d, std::vector<uint8_t> &seen,
                   std::vector<uint64_t> &out)
{
	out.clear();
	while (out.size() < d) {
		uint64_t id = lo + rng.below(span);
		if (seen[id])
			continue;
		seen[id] = 1;
		out.push_back(id);
	}
	for (uint64_t id : out)
		seen[id] = 0;
}

struct Reader {
	virtual ~Reader() = default;
	// false when the key is absent; the value's first 8 bytes are read so
	// that the get cannot be cut short.
	virtual bool get(uint64_t id, uint64_t *sink) = 0;
};

struct Store {
	virtual ~Store() = default;
	virtual const char *name() const = 0;
	virtual void open() = 0;
	virtual void close() = 0;
	virtual void load(uint64_t n, size_t vlen) = 0;
	// One durable transaction: the ids' values and the applied offset.
	virtual void commit(const uint64_t *ids, size_t d, size_t vlen, uint64_t offset) = 0;
	// Waits for the background work the commits left (RocksDB: memtable
	// flush and compactions), so that its writes can be counted.
	virtual void settle() {}
	virtual std::unique_ptr<Reader> reader() = 0;
	virtual uint64_t iterate() = 0;
	virtual void report() {}
};

// The counter, then (200-byte values) bytes that do not compress: RocksDB
// compresses blocks (Snappy by default) and LMDB does not, so a compressible
// filler would flatter RocksDB's sizes and writes.
void fill_value(char *v, size_t vlen, uint64_t x)
{
	memcpy(v, &x, sizeof(x));
	uint64_t h = x * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 8; i < vlen; i += 8) {
		h ^= h >> 29;
		h *= 0xbf58476d1ce4e5b9ull;
		h ^= h >> 32;
		memcpy(v + i, &h, std::min<size_t>(8, vlen - i));
	}
}

// --- LMDB ---

struct Lmdb final : Store {
	std::string dir;
	MDB_env *env = nullptr;
	MDB_dbi dbi = 0;
	// Large enough for 10M keys of 200 bytes with the pages a commit keeps
	// while readers hold older snapshots; only what is used takes disk.
	size_t map_size = (size_t)64 << 30;

	explicit Lmdb(std::string d) : dir(std::move(d)) {}
	const char *name() const override { return "lmdb"; }

	static void check(int rc, const char *what)
	{
		if (rc != 0)
			die(what, mdb_strerror(rc));
	}

	void open() override
	{
		check(mdb_env_create(&env), "mdb_env_create");
		check(mdb_env_set_mapsize(env, map_size), "mdb_env_set_mapsize");
		// MDB_NOTLS: read txns are reset and renewed, not tied to a thread.
		// No MDB_NOSYNC / MDB_NOMETASYNC: each commit is durable.
		check(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644), "mdb_env_open");
		MDB_txn *txn;
		check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
		check(mdb_dbi_open(txn, nullptr, 0, &dbi), "mdb_dbi_open");
		check(mdb_txn_commit(txn), "mdb_txn_commit");
	}

	void close() override
	{
		mdb_env_close(env);
		env = nullptr;
	}

	void load(uint64_t n, size_t vlen) override
	{
		// 1M keys a txn keeps a txn's dirty pages well under LMDB's
		// 128k-page limit, past which it spills.
		const uint64_t per_txn = 1000000;
		char k[kKeyLen], v[256];
		for (uint64_t base = 0; base < n; base += per_txn) {
			MDB_txn *txn;
			check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
			uint64_t end = std::min(n, base + per_txn);
			for (uint64_t id = base; id < end; id++) {
				key_of(id, k);
				fill_value(v, vlen, id);
				MDB_val kv = {kKeyLen, k}, vv = {vlen, v};
				check(mdb_put(txn, dbi, &kv, &vv, MDB_APPEND), "mdb_put (load)");
			}
			check(mdb_txn_commit(txn), "mdb_txn_commit (load)");
		}
	}

	void commit(const uint64_t *ids, size_t d, size_t vlen, uint64_t offset) override
	{
		char k[kKeyLen], v[256];
		MDB_txn *txn;
		check(mdb_txn_begin(env, nullptr, 0, &txn), "mdb_txn_begin");
		for (size_t i = 0; i < d; i++) {
			key_of(ids[i], k);
			fill_value(v, vlen, offset + i);
			MDB_val kv = {kKeyLen, k}, vv = {vlen, v};
			check(mdb_put(txn, dbi, &kv, &vv, 0), "mdb_put");
		}
		MDB_val mk = {kMetaLen, (void *)kMetaKey}, mv = {sizeof(offset), &offset};
		check(mdb_put(txn, dbi, &mk, &mv, 0), "mdb_put (meta)");
		check(mdb_txn_commit(txn), "mdb_txn_commit");
	}

	struct LReader final : Reader {
		Lmdb *s;
		MDB_txn *txn = nullptr;
		explicit LReader(Lmdb *st) : s(st)
		{
			check(mdb_txn_begin(s->env, nullptr, MDB_RDONLY, &txn),
			      "mdb_txn_begin (ro)");
			mdb_txn_reset(txn);
		}
		~LReader() override { mdb_txn_abort(txn); }
		bool get(uint64_t id, uint64_t *sink) override
		{
			char k[kKeyLen];
			key_of(id, k);
			// A query's snapshot: renewed per get, reset after, so the
			// writer can reuse the pages older snapshots held.
			check(mdb_txn_renew(txn), "mdb_txn_renew");
			MDB_val kv = {kKeyLen, k}, vv;
			int rc = mdb_get(txn, s->dbi, &kv, &vv);
			if (rc == 0)
				*sink += *(const uint64_t *)vv.mv_data;
			else if (rc != MDB_NOTFOUND)
				check(rc, "mdb_get");
			mdb_txn_reset(txn);
			return rc == 0;
		}
	};
	std::unique_ptr<Reader> reader() override { return std::make_unique<LReader>(this); }

	uint64_t iterate() override
	{
		MDB_txn *txn;
		MDB_cursor *cur;
		check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "mdb_txn_begin (ro)");
		check(mdb_cursor_open(txn, dbi, &cur), "mdb_cursor_open");
		MDB_val kv, vv;
		uint64_t n = 0, sum = 0;
		int rc = mdb_cursor_get(cur, &kv, &vv, MDB_FIRST);
		while (rc == 0) {
			n++;
			sum += ((const uint8_t *)vv.mv_data)[0];
			rc = mdb_cursor_get(cur, &kv, &vv, MDB_NEXT);
		}
		if (rc != MDB_NOTFOUND)
			check(rc, "mdb_cursor_get");
		mdb_cursor_close(cur);
		mdb_txn_abort(txn);
		g_sink += sum;
		return n;
	}

	void report() override
	{
		MDB_envinfo info;
		MDB_stat st;
		mdb_env_info(env, &info);
		mdb_env_stat(env, &st);
		printf("lmdb: page %u B, depth %u, branch %zu, leaf %zu, overflow %zu pages; "
		       "map used %.1f MiB of %.0f MiB\n",
		       st.ms_psize, st.ms_depth, (size_t)st.ms_branch_pages,
		       (size_t)st.ms_leaf_pages, (size_t)st.ms_overflow_pages,
		       (double)(info.me_last_pgno + 1) * st.ms_psize / (1 << 20),
		       (double)info.me_mapsize / (1 << 20));
	}
};

// --- RocksDB ---

struct Rocks final : Store {
	std::string dir;
	rocksdb_t *db = nullptr;
	rocksdb_options_t *opts = nullptr;
	rocksdb_block_based_table_options_t *bbo = nullptr;
	rocksdb_cache_t *cache = nullptr;
	rocksdb_filterpolicy_t *bloom = nullptr;
	rocksdb_writeoptions_t *wsync = nullptr, *wload = nullptr;
	rocksdb_readoptions_t *ro = nullptr;

	explicit Rocks(std::string d) : dir(std::move(d))
	{
		opts = rocksdb_options_create();
		rocksdb_options_set_create_if_missing(opts, 1);
		cache = rocksdb_cache_create_lru(kBlockCache);
		bbo = rocksdb_block_based_options_create();
		rocksdb_block_based_options_set_block_cache(bbo, cache);
		// Point gets of keys that may be absent (a new aggregate's first
		// event) are what Bloom filters are for; 10 bits ~ 1% false hits.
		bloom = rocksdb_filterpolicy_create_bloom(10);
		rocksdb_block_based_options_set_filter_policy(bbo, bloom);
		rocksdb_options_set_block_based_table_factory(opts, bbo);
		wsync = rocksdb_writeoptions_create();
		rocksdb_writeoptions_set_sync(wsync, 1);
		wload = rocksdb_writeoptions_create();
		rocksdb_writeoptions_disable_WAL(wload, 1);
		ro = rocksdb_readoptions_create();
	}
	~Rocks() override
	{
		if (db)
			close();
		rocksdb_readoptions_destroy(ro);
		rocksdb_writeoptions_destroy(wload);
		rocksdb_writeoptions_destroy(wsync);
		rocksdb_options_destroy(opts);
		// The table options own the filter policy once set.
		rocksdb_block_based_options_destroy(bbo);
		rocksdb_cache_destroy(cache);
	}
	const char *name() const override { return "rocksdb"; }

	static void check(char *err, const char *what)
	{
		if (err)
			die(what, err);
	}

	void open() override
	{
		char *err = nullptr;
		db = rocksdb_open(opts, dir.c_str(), &err);
		check(err, "rocksdb_open");
	}
	void close() override
	{
		rocksdb_close(db);
		db = nullptr;
	}

	uint64_t prop(const char *name)
	{
		uint64_t v = 0;
		if (rocksdb_property_int(db, name, &v) != 0)
			return 0;
		return v;
	}

	void settle() override
	{
		char *err = nullptr;
		rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
		rocksdb_flushoptions_set_wait(fo, 1);
		rocksdb_flush(db, fo, &err);
		rocksdb_flushoptions_destroy(fo);
		check(err, "rocksdb_flush");
		// Compactions the flush started; polled, as the C API has no wait.
		while (prop("rocksdb.compaction-pending") ||
		       prop("rocksdb.num-running-compactions") ||
		       prop("rocksdb.num-running-flushes"))
			usleep(20000);
	}

	void load(uint64_t n, size_t vlen) override
	{
		const uint64_t per_batch = 100000;
		char k[kKeyLen], v[256], *err = nullptr;
		rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
		for (uint64_t base = 0; base < n; base += per_batch) {
			rocksdb_writebatch_clear(wb);
			uint64_t end = std::min(n, base + per_batch);
			for (uint64_t id = base; id < end; id++) {
				key_of(id, k);
				fill_value(v, vlen, id);
				rocksdb_writebatch_put(wb, k, kKeyLen, v, vlen);
			}
			rocksdb_write(db, wload, wb, &err);
			check(err, "rocksdb_write (load)");
		}
		rocksdb_writebatch_destroy(wb);
		// Without the WAL the load is durable once flushed.
		settle();
	}

	void commit(const uint64_t *ids, size_t d, size_t vlen, uint64_t offset) override
	{
		char k[kKeyLen], v[256], *err = nullptr;
		rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
		for (size_t i = 0; i < d; i++) {
			key_of(ids[i], k);
			fill_value(v, vlen, offset + i);
			rocksdb_writebatch_put(wb, k, kKeyLen, v, vlen);
		}
		rocksdb_writebatch_put(wb, kMetaKey, kMetaLen, (const char *)&offset,
		                       sizeof(offset));
		rocksdb_write(db, wsync, wb, &err);
		rocksdb_writebatch_destroy(wb);
		check(err, "rocksdb_write");
	}

	struct RReader final : Reader {
		Rocks *s;
		explicit RReader(Rocks *st) : s(st) {}
		bool get(uint64_t id, uint64_t *sink) override
		{
			char k[kKeyLen], *err = nullptr;
			key_of(id, k);
			// Pinned: the value is not copied into a malloc'ed buffer.
			rocksdb_pinnableslice_t *ps =
			    rocksdb_get_pinned(s->db, s->ro, k, kKeyLen, &err);
			check(err, "rocksdb_get_pinned");
			if (!ps)
				return false;
			size_t len;
			const char *v = rocksdb_pinnableslice_value(ps, &len);
			uint64_t x;
			memcpy(&x, v, sizeof(x));
			*sink += x;
			rocksdb_pinnableslice_destroy(ps);
			return true;
		}
	};
	std::unique_ptr<Reader> reader() override { return std::make_unique<RReader>(this); }

	uint64_t iterate() override
	{
		rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
		uint64_t n = 0, sum = 0;
		size_t len;
		for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
		     rocksdb_iter_next(it)) {
			sum += (uint8_t)rocksdb_iter_value(it, &len)[0];
			n++;
		}
		char *err = nullptr;
		rocksdb_iter_get_error(it, &err);
		check(err, "rocksdb iterator");
		rocksdb_iter_destroy(it);
		g_sink += sum;
		return n;
	}

	void report() override
	{
		printf("rocksdb: block cache %.1f MiB used (pinned %.1f), table readers %.1f MiB, "
		       "memtables %.1f MiB, live sst %" PRIu64 " MiB (L0 files %" PRIu64 ")\n",
		       rocksdb_cache_get_usage(cache) / 1048576.0,
		       rocksdb_cache_get_pinned_usage(cache) / 1048576.0,
		       prop("rocksdb.estimate-table-readers-mem") / 1048576.0,
		       prop("rocksdb.cur-size-all-mem-tables") / 1048576.0,
		       prop("rocksdb.live-sst-files-size") >> 20,
		       prop("rocksdb.num-files-at-level0"));
		char *stats = rocksdb_property_value(db, "rocksdb.stats");
		if (stats) {
			// The stall lines say whether the flush runs met write stalls.
			for (char *line = strtok(stats, "\n"); line; line = strtok(nullptr, "\n"))
				if (strstr(line, "Cumulative stall") ||
				    strstr(line, "Interval stall") ||
				    strstr(line, "Cumulative compaction"))
					printf("rocksdb: %s\n", line);
			rocksdb_free(stats);
		}
	}
};

// --- phases ---

struct Config {
	std::string store = "lmdb";
	uint64_t n = 1000000;
	size_t vlen = 8;
	bool pass = false;
	double get_s = 2.0;
	std::string dir;
};

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	return v.empty() ? 0 : v[v.size() / 2];
}

uint64_t g_offset = 1;
// Every flush case's writes together: RocksDB's flushes and compactions land
// in whichever case's settle() they happen to follow, the sum does not.
uint64_t g_flush_bytes, g_flush_keys, g_flush_commits;

void phase_flush(Store &s, const Config &c, size_t d, bool hot, bool sorted, int commits)
{
	uint64_t span = hot ? c.n / 100 : c.n, lo = c.n - span;
	const char *set = hot ? "hot1%" : "uniform";
	if (d > span) {
		printf("flush  %-7s D=%-6zu %-8s n/a (D larger than the hot set of %" PRIu64
		       " keys)\n",
		       set, d, sorted ? "sorted" : "unsorted", span);
		return;
	}
	Rng rng(0x5eed + d + hot * 7 + sorted * 13);
	std::vector<uint8_t> seen(c.n);
	std::vector<uint64_t> ids;
	std::vector<double> ms;
	Io w0 = io_now();
	double cpu0 = cpu_s();
	uint64_t t0 = now_ns();
	for (int i = 0; i < commits; i++) {
		draw_distinct(rng, lo, span, d, seen, ids);
		uint64_t a = now_ns();
		// The writer's sort is part of its commit when it sorts.
		if (sorted)
			std::sort(ids.begin(), ids.end());
		s.commit(ids.data(), ids.size(), c.vlen, g_offset);
		g_offset += d;
		ms.push_back((now_ns() - a) / 1e6);
	}
	double wall = (now_ns() - t0) / 1e9;
	uint64_t fg = io_now().wchar - w0.wchar;
	double cpu = cpu_s() - cpu0;
	s.settle();
	Io w1 = io_now();
	uint64_t all = w1.wchar - w0.wchar;
	double cpu_all = cpu_s() - cpu0;
	double sum = 0;
	for (double x : ms)
		sum += x;
	g_flush_bytes += all;
	g_flush_keys += (uint64_t)d * commits;
	g_flush_commits += commits;
	printf("flush  %-7s D=%-6zu %-8s %2d commits: %8.0f keys/s  ms/commit median %7.1f max "
	       "%7.1f  MiB/commit fg %6.2f all %6.2f (kernel %6.2f)  B/key all %6.0f  cpu "
	       "ms/commit %6.1f (with settle %6.1f)  wall %.1fs\n",
	       set, d, sorted ? "sorted" : "unsorted", commits, d * commits / (sum / 1e3),
	       median(ms), *std::max_element(ms.begin(), ms.end()), fg / 1048576.0 / commits,
	       all / 1048576.0 / commits, (w1.wbytes - w0.wbytes) / 1048576.0 / commits,
	       (double)all / commits / d, cpu * 1e3 / commits, cpu_all * 1e3 / commits, wall);
	fflush(stdout);
}

void phase_get(Store &s, const Config &c, bool with_writer)
{
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> commits{0};
	std::vector<double> commit_ms;
	std::thread writer;
	uint64_t w0 = io_now().wchar;
	if (with_writer) {
		writer = std::thread([&] {
			Rng rng(0xabcdef);
			std::vector<uint8_t> seen(c.n);
			std::vector<uint64_t> ids;
			while (!stop.load(std::memory_order_relaxed)) {
				draw_distinct(rng, 0, c.n, 10000, seen, ids);
				uint64_t a = now_ns();
				s.commit(ids.data(), ids.size(), c.vlen, g_offset);
				commit_ms.push_back((now_ns() - a) / 1e6);
				g_offset += ids.size();
				commits.fetch_add(1, std::memory_order_relaxed);
			}
		});
	}
	std::unique_ptr<Reader> r = s.reader();
	Rng rng(0x1234);
	uint64_t sink = 0, t0 = now_ns(), end = t0 + (uint64_t)(c.get_s * 1e9);
	std::vector<uint32_t> ns;
	ns.reserve(4 << 20);
	uint64_t missing = 0;
	for (;;) {
		uint64_t id = rng.below(c.n);
		uint64_t a = now_ns();
		if (!r->get(id, &sink))
			missing++;
		uint64_t b = now_ns();
		ns.push_back((uint32_t)std::min<uint64_t>(b - a, UINT32_MAX));
		if (b >= end)
			break;
	}
	stop.store(true);
	if (writer.joinable())
		writer.join();
	r.reset();
	if (missing)
		die("get", "a loaded key was not found");
	std::sort(ns.begin(), ns.end());
	double secs = (now_ns() - t0) / 1e9;
	printf("get    %-13s %8zu gets: p50 %6u ns  p99 %7u ns  p99.9 %8u ns  max %9u ns  "
	       "%8.0f gets/s",
	       with_writer ? "with writer" : "alone", ns.size(), ns[ns.size() / 2],
	       ns[ns.size() * 99 / 100], ns[ns.size() * 999 / 1000], ns.back(), ns.size() / secs);
	if (with_writer)
		printf(
		    "  | writer %" PRIu64 " commits of 10k (%.0f keys/s, ms median %.1f max %.1f, "
		    "%.2f MiB/commit)",
		    commits.load(), commits.load() * 10000 / secs, median(commit_ms),
		    commit_ms.empty() ? 0.0 : *std::max_element(commit_ms.begin(), commit_ms.end()),
		    commits.load() ? (io_now().wchar - w0) / 1048576.0 / commits.load() : 0.0);
	printf("  (sink %" PRIu64 ")\n", sink & 1);
	fflush(stdout);
}

void print_rss(const char *when)
{
	printf("rss    %-22s RssAnon %7.1f MiB  RssFile %7.1f MiB\n", when,
	       proc_field("/proc/self/status", "RssAnon:") / 1024.0,
	       proc_field("/proc/self/status", "RssFile:") / 1024.0);
}

void phase_pass(Store &s, const Config &c)
{
	std::unique_ptr<Reader> r = s.reader();
	uint64_t sink = 0, t0 = now_ns();
	for (uint64_t id = 0; id < c.n; id++)
		if (!r->get(id, &sink))
			die("pass", "a loaded key was not found");
	double secs = (now_ns() - t0) / 1e9;
	r.reset();
	printf("pass   gets of all %" PRIu64 " keys in order: %.1fs, %.0f gets/s (sink %" PRIu64
	       ")\n",
	       c.n, secs, c.n / secs, sink & 1);
	print_rss("after the read pass");
}

void phase_iter(Store &s, const Config &c)
{
	uint64_t t0 = now_ns();
	uint64_t n = s.iterate();
	double secs = (now_ns() - t0) / 1e9;
	// N keys and the meta key.
	if (n != c.n + 1)
		die("iterate", "key count differs from the loaded count");
	printf("iter   %" PRIu64 " keys in order: %.2fs, %.0f keys/s\n", n, secs, n / secs);
	fflush(stdout);
}

std::string make_dir(const Config &c)
{
	std::string base = c.dir;
	if (base.empty()) {
		const char *t = getenv("TMPDIR");
		if (t && *t) {
			base = t;
		} else {
			// build/bin/bench_state_store -> build/tmp
			char exe[PATH_MAX];
			ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
			if (n <= 0)
				die("readlink /proc/self/exe", strerror(errno));
			exe[n] = '\0';
			base = exe;
			base = base.substr(0, base.rfind('/'));
			base = base.substr(0, base.rfind('/')) + "/tmp";
		}
	}
	mkdir(base.c_str(), 0755);
	std::string tmpl = base + "/state_store." + c.store + ".XXXXXX";
	std::vector<char> buf(tmpl.begin(), tmpl.end());
	buf.push_back('\0');
	if (!mkdtemp(buf.data()))
		die(tmpl.c_str(), strerror(errno));
	return buf.data();
}

void usage()
{
	fprintf(stderr, "usage: bench_state_store --store lmdb|rocksdb --keys N --value 8|200 "
	                "[--pass] [--get-seconds S] [--dir DIR]\n");
	exit(2);
}

} // namespace

int main(int argc, char **argv)
{
	Config c;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		auto val = [&]() -> const char * {
			if (i + 1 >= argc)
				usage();
			return argv[++i];
		};
		if (a == "--store")
			c.store = val();
		else if (a == "--keys")
			c.n = strtoull(val(), nullptr, 10);
		else if (a == "--value")
			c.vlen = strtoul(val(), nullptr, 10);
		else if (a == "--pass")
			c.pass = true;
		else if (a == "--get-seconds")
			c.get_s = atof(val());
		else if (a == "--dir")
			c.dir = val();
		else
			usage();
	}
	if ((c.store != "lmdb" && c.store != "rocksdb") || c.n < 100 || c.n > 9999999999ull ||
	    c.vlen < 8 || c.vlen > 256)
		usage();

	std::string dir = make_dir(c);
	std::unique_ptr<Store> s;
	if (c.store == "lmdb")
		s = std::make_unique<Lmdb>(dir);
	else
		s = std::make_unique<Rocks>(dir);
	printf("== %s  N=%" PRIu64 "  value=%zu B  dir=%s  (lmdb %s, rocksdb C API)\n", s->name(),
	       c.n, c.vlen, dir.c_str(), MDB_VERSION_STRING);
	s->open();

	uint64_t w0 = io_now().wchar, t0 = now_ns();
	s->load(c.n, c.vlen);
	double load_s = (now_ns() - t0) / 1e9;
	printf("load   %" PRIu64 " keys: %.2fs, %.0f keys/s, %.1f MiB written, disk %.1f MiB\n",
	       c.n, load_s, c.n / load_s, (io_now().wchar - w0) / 1048576.0,
	       disk_usage(dir) / 1048576.0);
	print_rss("after the load");
	fflush(stdout);

	// Fewer commits where each one is large: the suite stays short.
	int few = c.n >= 5000000 ? 3 : 4;
	for (size_t d : {(size_t)10000, (size_t)100000}) {
		int commits = d == 10000 ? 10 : few;
		for (bool hot : {false, true}) {
			phase_flush(*s, c, d, hot, false, commits);
			phase_flush(*s, c, d, hot, true, commits);
		}
	}
	printf("flush  all cases: %" PRIu64 " commits, %" PRIu64 " keys, %.1f MiB written, "
	       "%.0f B/key\n",
	       g_flush_commits, g_flush_keys, g_flush_bytes / 1048576.0,
	       (double)g_flush_bytes / g_flush_keys);
	phase_get(*s, c, false);
	phase_get(*s, c, true);
	s->settle();
	phase_iter(*s, c);
	if (c.pass) {
		phase_pass(*s, c);
		s->report();
		printf("disk   %.1f MiB\n", disk_usage(dir) / 1048576.0);
		s->close();
		uint64_t a = now_ns();
		s->open();
		printf("open   existing store: %.1f ms\n", (now_ns() - a) / 1e6);
		print_rss("after the reopen");
	} else {
		s->report();
		printf("disk   %.1f MiB\n", disk_usage(dir) / 1048576.0);
	}
	s->close();
	s.reset();
	remove_tree(dir);
	return 0;
}
