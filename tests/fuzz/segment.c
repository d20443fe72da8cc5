/*
 * Fuzz target: the last segment of a partition after a crash or disk damage.
 *
 * The input is the content of the partition's last segment file. When its
 * bytes 8..15 (the first batch's base_offset) hold 3, the input is named
 * 00000000000000000003.log and follows a valid sealed segment of three
 * events made with the log API at start-up; otherwise it is alone as
 * 00000000000000000000.log. Recovery runs under the fsync policy, or under
 * `none` when size % 4 == 3 (where any bad batch is a torn tail).
 *
 * Then, checked against an independent reading of the format in log/batch.h:
 *   - sl_log_open refuses (-SL_ECORRUPT, naming the file) exactly when a bad
 *     batch is followed by a valid batch of a later group-commit write, and
 *     leaves the file as it was; any other error is a failure;
 *   - otherwise it keeps exactly the valid, dense prefix of batches, zeroes
 *     everything after it on disk, and a reader returns every event of that
 *     prefix with its producer, epoch, sequence, time and bytes;
 *   - a few events appended and committed read back after close and reopen
 *     (the input may already be longer than the segment size, so the commit
 *     may roll and the input file becomes a sealed segment).
 *
 * The check is the specification: a bad batch followed by any valid batch
 * of a later write is corruption (seed flip_in_first_of_two once caught
 * recovery looking only at the first valid batch after the damage).
 *
 * Files live in a per-process folder on /dev/shm (tmpfs: fdatasync costs
 * nothing, so the fuzzer is not bound by the disk), removed at exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"

static void cleanup(void);

/* Removes the folder before aborting: libFuzzer does not run atexit handlers
 * on a crash. */
#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x)) {                                                                        \
			fprintf(stderr, "segment.c:%d: check failed: %s\n", __LINE__, #x);         \
			cleanup();                                                                 \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* The smallest segment sl_log_open accepts: inputs longer than it make the
 * next commit roll, so rolls and sealed-segment loading are reached too. */
#define SEG_BYTES     4096u
#define PREFIX_EVENTS 3u
#define BATCH_MAX     SL_BATCH_MAX
#define MAX_APPEND    8u

static struct {
	char root[128];
	char dir[160];
	struct io_uring ring;
	uint8_t *prefix_log, *prefix_idx;
	size_t prefix_log_len, prefix_idx_len;
	uint32_t crc_table[256];
} g;

/* ---- files --------------------------------------------------------------------- */

/* The log creates only plain files in its folder. */
static void remove_files(const char *dir)
{
	char path[512];
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

static void cleanup(void)
{
	remove_files(g.dir);
	remove_files(g.root);
}

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
	close(fd);
}

static uint8_t *read_file(const char *dir, const char *name, size_t *len)
{
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0);
	uint8_t *p = malloc((size_t)st.st_size + 1);
	CHECK(p);
	CHECK(read(fd, p, (size_t)st.st_size) == st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/* ---- driving the log -------------------------------------------------------------- */

static struct sl_log *open_log(enum sl_log_durability d, int *ret, char *err, size_t errlen)
{
	struct sl_log_opts o = {.dir = g.dir, .segment_bytes = SEG_BYTES, .durability = d};
	struct sl_log *log = NULL;
	*ret = sl_log_open(&o, &log, err, errlen);
	return *ret == 0 ? log : NULL;
}

static void commit(struct sl_log *log)
{
	for (int turns = 0; turns < 64; turns++) {
		int ret = sl_log_flush(log, &g.ring, 5);
		CHECK(ret >= 0);
		if (ret == 1)
			CHECK(io_uring_submit(&g.ring) >= 1);
		if (!sl_log_io_pending(log))
			return;
		struct io_uring_cqe *cqe;
		int w;
		/* libFuzzer's -timeout arms SIGALRM every few seconds: a wait it
		 * interrupts is simply waited again. */
		while ((w = io_uring_wait_cqe(&g.ring, &cqe)) == -EINTR)
			;
		CHECK(w == 0);
		if (cqe->user_data == SL_LOG_UD_IGNORE) { /* a writeback kick */
			io_uring_cqe_seen(&g.ring, cqe);
			continue;
		}
		CHECK(cqe->user_data == 5);
		ret = sl_log_on_cqe(log, cqe->res);
		io_uring_cqe_seen(&g.ring, cqe);
		CHECK(ret >= 0);
	}
	CHECK(!"group commit never finished");
}

/* Events the target appends: producer, sequence and bytes all follow from
 * (salt, i), so they can be checked after reopening. */
static uint32_t made_event(uint8_t *buf, uint32_t salt, uint32_t i)
{
	uint32_t len = (salt + i * 37) % 300;
	for (uint32_t k = 0; k < len; k++)
		buf[k] = (uint8_t)(salt ^ (i * 7 + k));
	return len;
}

static uint64_t made_pid(uint32_t i)
{
	return 1000 + i % 2; /* two producers: batches alternate */
}

/* ---- the format, read independently of log.c ------------------------------------- */

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
		g.crc_table[i] = c;
	}
}

static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;
	for (size_t i = 0; i < n; i++)
		c = g.crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

struct rec {
	uint64_t offset, pid, seq;
	int64_t time_ms;
	uint32_t epoch, len;
	const uint8_t *ev;
};

struct batch {
	uint64_t base, pid, base_seq;
	uint32_t count, len, epoch, unit_start;
	int64_t time_ms;
	size_t hdr;
};

/* Up to 10 bytes, little-endian groups of 7 bits, within 64 bits: the 10th
 * byte may hold bit 63 only (base/varint.h; the log's decoder before it
 * dropped the bits past 64, which no writer ever produced). */
static size_t varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	for (size_t i = 0; i < 10 && p + i < end; i++) {
		if (i == 9 && p[i] > 1)
			return 0;
		r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = r;
			return i + 1;
		}
	}
	return 0;
}

/* A batch at `at` of the file image: whole, checksummed, at least one record
 * (the log never writes an empty batch), records filling it exactly. When
 * `out` is given, its records are appended there. */
static bool batch_at(const uint8_t *img, size_t size, size_t at, struct batch *b, struct rec *out,
                     size_t *n_out)
{
	/* 'SLB2' (64-byte header, leader epoch at 56, then zero) or 'SLB1'
	 * (56 bytes, before leader epochs). */
	if (at + SL_LOG_BATCH_HDR_V1 > size)
		return false;
	const uint8_t *h = img + at;
	size_t hdr = get32(h + SL_BATCH_MAGIC) == SL_LOG_MAGIC      ? 64
	             : get32(h + SL_BATCH_MAGIC) == SL_LOG_MAGIC_V1 ? 56
	                                                            : 0;
	if (!hdr || at + hdr > size || (hdr == 64 && get32(h + 60)))
		return false;
	b->hdr = hdr;
	b->base = get64(h + SL_BATCH_BASE_OFFSET);
	b->count = get32(h + SL_BATCH_COUNT);
	b->len = get32(h + SL_BATCH_LEN);
	b->time_ms = (int64_t)get64(h + SL_BATCH_TIME_MS);
	b->pid = get64(h + SL_BATCH_PRODUCER);
	b->epoch = get32(h + SL_BATCH_EPOCH);
	b->unit_start = get32(h + SL_BATCH_UNIT_START);
	b->base_seq = get64(h + SL_BATCH_BASE_SEQ);
	if (!b->count || b->len > BATCH_MAX || at + hdr + b->len > size)
		return false;
	if (crc32c(h + SL_BATCH_CRC_FROM, hdr - SL_BATCH_CRC_FROM + (size_t)b->len) !=
	    get32(h + SL_BATCH_CRC))
		return false;
	const uint8_t *r = h + hdr, *end = r + b->len;
	for (uint32_t i = 0; i < b->count; i++) {
		uint64_t sz, delta;
		size_t n = varint(r, end, &sz);
		if (!n)
			return false;
		r += n;
		n = varint(r, end, &delta);
		if (!n)
			return false;
		r += n;
		if (sz > (uint64_t)(end - r))
			return false;
		if (out)
			out[(*n_out)++] = (struct rec){
			    b->base + i,  b->pid, b->base_seq + delta, b->time_ms, b->epoch,
			    (uint32_t)sz, r};
		r += sz;
	}
	return r == end;
}

struct expect {
	bool corrupt;
	uint64_t end; /* offset after the last kept event */
	size_t pos;   /* bytes kept */
	size_t last_nonzero;
	struct rec *recs;
	size_t n_recs;
};

static size_t align8(size_t v)
{
	return (v + 7) & ~(size_t)7;
}

static void expect_of(const uint8_t *img, size_t size, uint64_t base, bool fsync_policy,
                      struct expect *e)
{
	struct batch b;
	size_t pos = 0;
	uint64_t off = base;

	/* Every record takes at least two bytes. */
	e->recs = malloc((size / 2 + 1) * sizeof(*e->recs));
	CHECK(e->recs);
	e->n_recs = 0;
	for (;;) {
		size_t n = e->n_recs;
		if (!batch_at(img, size, pos, &b, e->recs, &e->n_recs) || b.base != off) {
			e->n_recs = n;
			break;
		}
		off += b.count;
		pos += align8(b.hdr + (size_t)b.len);
	}
	e->end = off;
	e->pos = pos;
	e->last_nonzero = pos;
	bool any_later = false;
	for (size_t at = pos; at < size; at += 8) {
		uint64_t word = 0;
		size_t take = size - at < 8 ? size - at : 8;
		memcpy(&word, img + at, take);
		if (!word)
			continue;
		e->last_nonzero = at + take;
		if (((uint32_t)word != SL_LOG_MAGIC && (uint32_t)word != SL_LOG_MAGIC_V1) ||
		    !batch_at(img, size, at, &b, NULL, NULL))
			continue;
		/* A later write began after the damage: the damage was synced. */
		any_later |= b.unit_start > pos;
	}
	e->corrupt = fsync_policy && any_later;
}

/* ---- set-up ------------------------------------------------------------------------ */

/* A sealed segment of PREFIX_EVENTS events and its index, made once with the
 * log itself: three small events, then one too large for the segment's rest,
 * which makes the next commit roll. */
static void make_prefix(void)
{
	uint8_t ev[SEG_BYTES];
	uint64_t off;
	int ret;
	char err[400];

	struct sl_log *log = open_log(SL_LOG_FSYNC, &ret, err, sizeof(err));
	CHECK(log);
	for (uint32_t i = 0; i < PREFIX_EVENTS; i++) {
		uint32_t len = made_event(ev, 77, i);
		CHECK(sl_log_append(log, 7, 1, i, ev, len, &off) == 0);
	}
	commit(log);
	memset(ev, 0xab, sizeof(ev));
	CHECK(sl_log_append(log, 7, 1, PREFIX_EVENTS, ev, sizeof(ev), &off) == 0);
	commit(log);
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	CHECK(st.segments == 2);
	sl_log_close(log);
	g.prefix_log = read_file(g.dir, "00000000000000000000.log", &g.prefix_log_len);
	g.prefix_idx = read_file(g.dir, "00000000000000000000.idx", &g.prefix_idx_len);
	remove_files(g.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(g.root, sizeof(g.root), "%s/sluice-fuzz-segment-XXXXXX", base);
	CHECK(mkdtemp(g.root));
	snprintf(g.dir, sizeof(g.dir), "%s/p", g.root);
	atexit(cleanup);
	CHECK(io_uring_queue_init(8, &g.ring, 0) == 0);
	crc_init();
	make_prefix();
	return 0;
}

/* ---- one input ---------------------------------------------------------------------- */

/* Reads [from, durable) and checks it: dense offsets, the prefix segment's
 * events, the recovered records, then `n_made` appended events. */
static void check_read(struct sl_log *log, const struct expect *e, uint64_t base, uint32_t salt,
                       uint32_t n_made)
{
	struct sl_log_reader *rd;
	struct sl_log_record r;
	uint8_t ev[512];
	uint64_t next = 0;
	int ret;

	CHECK(sl_log_reader_open(log, 0, &rd) == 0);
	while ((ret = sl_log_reader_next(rd, sl_log_durable(log), &r)) == 1) {
		CHECK(r.offset == next);
		if (r.offset < base) {
			uint32_t len = made_event(ev, 77, (uint32_t)r.offset);
			CHECK(r.producer_id == 7 && r.epoch == 1 && r.seq == r.offset);
			CHECK(r.len == len && !memcmp(r.event, ev, len));
		} else if (r.offset < e->end) {
			const struct rec *x = &e->recs[r.offset - base];
			CHECK(x->offset == r.offset && x->pid == r.producer_id);
			CHECK(x->epoch == r.epoch && x->seq == r.seq);
			CHECK(x->time_ms == r.append_time_ms && x->len == r.len);
			CHECK(!x->len || !memcmp(x->ev, r.event, x->len));
		} else {
			uint32_t i = (uint32_t)(r.offset - e->end);
			uint32_t len = made_event(ev, salt, i);
			CHECK(i < n_made);
			CHECK(r.producer_id == made_pid(i) && r.epoch == 2 && r.seq == i);
			CHECK(r.len == len && (!len || !memcmp(r.event, ev, len)));
		}
		next++;
	}
	CHECK(ret == 0);
	CHECK(next == sl_log_durable(log));
	sl_log_reader_close(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const bool prefix =
	    size >= SL_BATCH_BASE_OFFSET + 8 && get64(data + SL_BATCH_BASE_OFFSET) == PREFIX_EVENTS;
	const uint64_t base = prefix ? PREFIX_EVENTS : 0;
	const bool fsync_policy = size % 4 != 3;
	const enum sl_log_durability pol = fsync_policy ? SL_LOG_FSYNC : SL_LOG_NONE;
	char name[32], err[400];
	uint8_t ev[512];
	struct expect e;
	int ret;

	snprintf(name, sizeof(name), "%020llu.log", (unsigned long long)base);
	CHECK(mkdir(g.dir, 0755) == 0);
	if (prefix) {
		write_file(g.dir, "00000000000000000000.log", g.prefix_log, g.prefix_log_len);
		write_file(g.dir, "00000000000000000000.idx", g.prefix_idx, g.prefix_idx_len);
	}
	write_file(g.dir, name, data, size);
	expect_of(data, size, base, fsync_policy, &e);

	struct sl_log *log = open_log(pol, &ret, err, sizeof(err));
	size_t len;
	uint8_t *img = read_file(g.dir, name, &len);
	if (e.corrupt) {
		if (ret != -SL_ECORRUPT)
			fprintf(stderr, "expected -SL_ECORRUPT, got %d (%s): kept %llu events\n",
			        ret, sl_strerror(ret),
			        log ? (unsigned long long)sl_log_end(log) : 0ull);
		CHECK(ret == -SL_ECORRUPT);
		CHECK(strstr(err, name));
		/* Refusing must not cut what may be acked data. */
		CHECK(len == size && (!size || !memcmp(img, data, size)));
		goto out;
	}
	if (ret != 0)
		fprintf(stderr, "sl_log_open: %s: %s\n", sl_strerror(ret), err);
	CHECK(ret == 0);
	CHECK(sl_log_start(log) == 0);
	CHECK(sl_log_end(log) == e.end && sl_log_durable(log) == e.end);
	/* The valid prefix is kept as it was; the torn tail is zeroed on disk.
	 * The file keeps its length: pre-allocation goes on in steps as the
	 * log is written (no longer to the whole segment at recovery). */
	CHECK(len >= size);
	CHECK(!e.pos || !memcmp(img, data, e.pos));
	for (size_t i = e.pos; i < len; i++)
		CHECK(img[i] == 0);
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	CHECK(st.recovered_truncated_bytes == e.last_nonzero - e.pos);
	check_read(log, &e, base, 0, 0);

	/* Appends resume after the recovered end and survive a reopen. */
	uint32_t salt = size ? data[size / 2] : 0, n_made = 1 + salt % MAX_APPEND;
	for (uint32_t i = 0; i < n_made; i++) {
		uint64_t off;
		uint32_t l = made_event(ev, salt, i);
		CHECK(sl_log_append(log, made_pid(i), 2, i, ev, l, &off) == 0);
		CHECK(off == e.end + i);
	}
	commit(log);
	CHECK(sl_log_durable(log) == e.end + n_made);
	check_read(log, &e, base, salt, n_made);
	sl_log_close(log);
	log = open_log(pol, &ret, err, sizeof(err));
	if (ret != 0)
		fprintf(stderr, "reopen: %s: %s\n", sl_strerror(ret), err);
	CHECK(ret == 0);
	CHECK(sl_log_end(log) == e.end + n_made);
	check_read(log, &e, base, salt, n_made);
out:
	sl_log_close(log);
	free(img);
	free(e.recs);
	remove_files(g.dir);
	return 0;
}
