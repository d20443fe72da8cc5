/*
 * The partition log on real files: append and group commit through a real
 * io_uring, reopen and read back, segment roll and index lookups, torn tails
 * at every byte of the last batch, corruption told apart from a torn tail,
 * fdatasync failure, and a full device.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/base.h"
#include "log/index_format.h"
#include "log/log.h"

static char g_dir[256];
static struct io_uring g_ring;

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-log-test-XXXXXX");
	cr_assert_not_null(mkdtemp(g_dir));
	cr_assert_eq(io_uring_queue_init(64, &g_ring, 0), 0);
}

static void teardown(void)
{
	char cmd[300];
	io_uring_queue_exit(&g_ring);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	cr_assert_eq(system(cmd), 0);
}

static struct sl_log *open_log(const char *dir, uint64_t seg, enum sl_log_durability d)
{
	struct sl_log_opts o = {
	    .dir = dir, .segment_bytes = seg, .durability = d, .interval_ns = 1000000};
	struct sl_log *log;
	char err[400];
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	cr_assert_eq(ret, 0, "open %s: %s (%s)", dir, sl_strerror(ret), err);
	return log;
}

/* Runs the log's group commits until nothing is left to write. */
static int commit(struct sl_log *log)
{
	for (int turns = 0; turns < 100000; turns++) {
		int ret = sl_log_flush(log, &g_ring, 7);
		if (ret < 0)
			return ret;
		if (ret == 1)
			cr_assert_geq(io_uring_submit(&g_ring), 1);
		if (!sl_log_io_pending(log))
			return 0;
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
		if (cqe->user_data == SL_LOG_UD_IGNORE) { /* a writeback kick */
			io_uring_cqe_seen(&g_ring, cqe);
			continue;
		}
		cr_assert_eq(cqe->user_data, 7);
		int r = sl_log_on_cqe(log, cqe->res);
		io_uring_cqe_seen(&g_ring, cqe);
		if (r < 0)
			return r;
	}
	cr_assert_fail("group commit never finished");
	return -1;
}

/* Deterministic event bytes for (producer, seq). */
static uint32_t make_event(uint8_t *buf, uint64_t pid, uint64_t seq)
{
	uint32_t len = 20 + (uint32_t)((pid * 31 + seq * 7) % 180);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(pid * 13 + seq * 3 + i);
	return len;
}

static void append_n(struct sl_log *log, uint64_t pid, uint64_t seq0, uint32_t n)
{
	uint8_t ev[256];
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off, seq = seq0 + i;
		uint32_t len = make_event(ev, pid, seq);
		cr_assert_eq(sl_log_append(log, pid, 1, seq, ev, len, &off), 0);
	}
}

/* Reads everything from `from` and checks it against make_event, expecting
 * producers to interleave exactly as appended by append_rounds(). */
static uint64_t read_all(struct sl_log *log, uint64_t from, uint64_t expect_end)
{
	struct sl_log_reader *rd;
	struct sl_log_record rec;
	uint8_t ev[256];
	uint64_t n = 0, next = from;
	int ret;

	cr_assert_eq(sl_log_reader_open(log, from, &rd), 0);
	while ((ret = sl_log_reader_next(rd, sl_log_durable(log), &rec)) == 1) {
		cr_assert_eq(rec.offset, next, "offsets not dense: %llu after %llu",
		             (unsigned long long)rec.offset, (unsigned long long)next);
		uint32_t len = make_event(ev, rec.producer_id, rec.seq);
		cr_assert_eq(rec.len, len);
		cr_assert_eq(memcmp(rec.event, ev, len), 0, "event %llu differs",
		             (unsigned long long)rec.offset);
		next++;
		n++;
	}
	cr_assert_eq(ret, 0, "reader: %s", sl_log_reader_error(rd));
	cr_assert_eq(next, expect_end);
	sl_log_reader_close(rd);
	return n;
}

/* Waits (5 s at most, then fails with `why`) until an interval log wants its
 * fdatasync. */
static void wait_sync_due(struct sl_log *log, const char *why)
{
	uint64_t t0 = sl_now_ns();
	while (!sl_log_sync_due(log, sl_now_ns()))
		cr_assert_lt(sl_now_ns() - t0, 5000000000ull, "%s", why);
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, append_commit_reopen_read)
{
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 0);
	for (uint64_t round = 0; round < 20; round++) {
		for (uint64_t pid = 1; pid <= 3; pid++)
			append_n(log, pid, round * 50, 50);
		cr_assert_eq(sl_log_durable(log), round * 150);
		cr_assert_eq(commit(log), 0);
		cr_assert_eq(sl_log_durable(log), (round + 1) * 150);
	}
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	cr_assert_eq(st.syncs, 20);
	/* Each group waited from its first append through its sync: one
	 * commit per sync, never shorter than the sync, counted once. */
	cr_assert_eq(st.commits, 20);
	cr_assert_geq(st.commit_ns, st.sync_ns);
	uint64_t in_hist = 0;
	for (uint32_t k = 0; k < SL_LOG_SYNC_BUCKETS; k++)
		in_hist += st.commit_hist[k];
	cr_assert_eq(in_hist, 20);
	read_all(log, 0, 3000);
	read_all(log, 1234, 3000);
	sl_log_close(log);

	log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 3000);
	cr_assert_eq(sl_log_durable(log), 3000);
	read_all(log, 0, 3000);
	/* Appends continue after the recovered end. */
	append_n(log, 9, 0, 10);
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), 3010);
	sl_log_close(log);
	log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	read_all(log, 2990, 3010);
	sl_log_close(log);
}

Test(log, segments_roll_and_index_lookups)
{
	struct sl_log *log = open_log(g_dir, 16384, SL_LOG_FSYNC);
	for (uint64_t round = 0; round < 40; round++) {
		append_n(log, 1 + round % 2, round * 30, 30);
		cr_assert_eq(commit(log), 0);
	}
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	cr_assert_gt(st.segments, 5, "only %llu segments", (unsigned long long)st.segments);
	/* Every offset is found, whichever segment and index entry holds it. */
	for (uint64_t from = 0; from < 1200; from += 37)
		read_all(log, from, 1200);
	sl_log_close(log);
	log = open_log(g_dir, 16384, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 1200);
	for (uint64_t from = 0; from < 1200; from += 101)
		read_all(log, from, 1200);
	sl_log_close(log);
}

static const char *last_segment(const char *dir, char *path, size_t cap)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "ls '%s'/*.log | sort | tail -1", dir);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(path, (int)cap, p));
	path[strcspn(path, "\n")] = '\0';
	pclose(p);
	return path;
}

static void copy_dir(const char *from, const char *to)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
	cr_assert_eq(system(cmd), 0);
}

/*
 * Power loss in the middle of the last group commit leaves any prefix of its
 * bytes on disk. Cut (zero) the last batch at every byte: recovery must keep
 * everything before it, drop it, and accept appends again.
 */
Test(log, torn_tail_at_every_byte_of_the_last_batch, .timeout = 120)
{
	struct sl_log *log = open_log(g_dir, 65536, SL_LOG_FSYNC);
	append_n(log, 1, 0, 40);
	cr_assert_eq(commit(log), 0);
	append_n(log, 2, 0, 1); /* the last batch: one event */
	cr_assert_eq(commit(log), 0);
	sl_log_close(log);

	char seg[512], work[300];
	last_segment(g_dir, seg, sizeof(seg));
	/* Find the last batch: it starts where 40 events' worth ends. */
	log = open_log(g_dir, 65536, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 41);
	sl_log_close(log);
	int fd = open(seg, O_RDONLY);
	uint8_t *img = malloc(65536);
	cr_assert_eq(pread(fd, img, 65536, 0), 65536);
	close(fd);
	uint32_t last_at = (uint32_t)sl_batch_span_at(img);
	uint32_t last_len = sl_get_le32(img + last_at + SL_BATCH_LEN);
	uint32_t last_end = last_at + SL_LOG_BATCH_HDR + last_len;

	snprintf(work, sizeof(work), "%s-work", g_dir);
	for (uint32_t cut = last_at; cut < last_end; cut++) {
		copy_dir(g_dir, work);
		char wseg[600];
		snprintf(wseg, sizeof(wseg), "%s/%s", work, strrchr(seg, '/') + 1);
		fd = open(wseg, O_WRONLY);
		cr_assert_geq(fd, 0);
		uint8_t zeros[512] = {0};
		cr_assert_eq(pwrite(fd, zeros, last_end - cut, cut), (ssize_t)(last_end - cut));
		close(fd);
		log = open_log(work, 65536, SL_LOG_FSYNC);
		cr_assert_eq(sl_log_end(log), 40, "cut at byte %u: end %llu", cut,
		             (unsigned long long)sl_log_end(log));
		read_all(log, 0, 40);
		append_n(log, 3, 0, 5);
		cr_assert_eq(commit(log), 0);
		sl_log_close(log);
		log = open_log(work, 65536, SL_LOG_FSYNC);
		cr_assert_eq(sl_log_end(log), 45, "cut at byte %u", cut);
		read_all(log, 0, 45);
		sl_log_close(log);
	}
	/* The same with the file cut short instead of zeroed. */
	for (uint32_t cut = last_at; cut < last_end; cut += 7) {
		copy_dir(g_dir, work);
		char wseg[600];
		snprintf(wseg, sizeof(wseg), "%s/%s", work, strrchr(seg, '/') + 1);
		cr_assert_eq(truncate(wseg, cut), 0);
		log = open_log(work, 65536, SL_LOG_FSYNC);
		cr_assert_eq(sl_log_end(log), 40, "truncated at byte %u", cut);
		read_all(log, 0, 40);
		sl_log_close(log);
	}
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	cr_assert_eq(system(cmd), 0);
	free(img);
}

/*
 * The last group commit holds several batches (three producers), and power
 * loss leaves garbage, not zeros, in what was not written: (a) random bytes
 * from every cut point of the commit to its end, and (b) a damaged stretch
 * inside one batch with the batches after it intact, as a disk that wrote
 * the commit's later sectors but not an earlier one leaves it. Either way
 * the commit was never acked (its fdatasync did not return): recovery keeps
 * every event before the first damaged batch and nothing after it, and the
 * log appends there again.
 */
Test(log, torn_multi_batch_commit_with_garbage, .timeout = 120)
{
	enum { FIRST = 40, PER = 5, BATCHES = 3, SEG = 65536 };
	struct sl_log *log = open_log(g_dir, SEG, SL_LOG_FSYNC);
	append_n(log, 1, 0, FIRST);
	cr_assert_eq(commit(log), 0);
	for (uint64_t pid = 2; pid < 2 + BATCHES; pid++)
		append_n(log, pid, 0, PER); /* one commit, one batch per producer */
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), FIRST + BATCHES * PER);
	sl_log_close(log);

	char seg[512], work[300], wseg[600];
	last_segment(g_dir, seg, sizeof(seg));
	uint8_t *img = malloc(SEG);
	int fd = open(seg, O_RDONLY);
	cr_assert_eq(pread(fd, img, SEG, 0), SEG);
	close(fd);
	/* Batch starts of the last commit, and where it ends. */
	uint32_t at[BATCHES + 1];
	at[0] = (uint32_t)sl_batch_span_at(img);
	for (int b = 0; b < BATCHES; b++) {
		cr_assert_eq(sl_get_le64(img + at[b] + SL_BATCH_BASE_OFFSET),
		             (uint64_t)(FIRST + b * PER));
		cr_assert_eq(sl_get_le32(img + at[b] + SL_BATCH_UNIT_START), at[0],
		             "batch %d is not of the last commit", b);
		at[b + 1] = at[b] + (uint32_t)sl_batch_span_at(img + at[b]);
	}
	snprintf(work, sizeof(work), "%s-work", g_dir);
	snprintf(wseg, sizeof(wseg), "%s/%s", work, strrchr(seg, '/') + 1);
	uint64_t rng = 0x5eed;
	uint8_t junk[4096];
	cr_assert_leq(at[BATCHES] - at[0], sizeof(junk));

	for (int mode = 0; mode < 2; mode++) {
		for (uint32_t cut = at[0]; cut < at[BATCHES]; cut += 3) {
			/* (a) garbage from cut to the commit's end; (b) 16 bytes of
			 * it at cut, everything after as written. */
			uint32_t end = mode == 0 ? at[BATCHES] : cut + 16;
			if (end > at[BATCHES])
				end = at[BATCHES];
			/* The first batch whose bytes (not its padding, which no
			 * checksum covers) the damage touches; BATCHES: none. */
			int damaged = 0;
			while (damaged < BATCHES &&
			       at[damaged] + SL_LOG_BATCH_HDR +
			               sl_get_le32(img + at[damaged] + SL_BATCH_LEN) <=
			           cut)
				damaged++;
			for (uint32_t i = 0; i < end - cut; i++) {
				rng = rng * 6364136223846793005ull + 1442695040888963407ull;
				junk[i] = (uint8_t)(rng >> 56);
			}
			/* Garbage equal to what it replaces damages nothing. */
			if (memcmp(junk, img + cut, end - cut) == 0)
				continue;
			copy_dir(g_dir, work);
			fd = open(wseg, O_WRONLY);
			cr_assert_geq(fd, 0);
			cr_assert_eq(pwrite(fd, junk, end - cut, cut), (ssize_t)(end - cut));
			close(fd);
			uint64_t keep = FIRST + (uint64_t)damaged * PER;
			log = open_log(work, SEG, SL_LOG_FSYNC);
			cr_assert_eq(
			    sl_log_end(log), keep,
			    "mode %d, damage at byte %u (batch %d of the commit): end %llu, "
			    "want %llu",
			    mode, cut, damaged, (unsigned long long)sl_log_end(log),
			    (unsigned long long)keep);
			read_all(log, 0, keep);
			append_n(log, 9, 0, 5);
			cr_assert_eq(commit(log), 0);
			sl_log_close(log);
			log = open_log(work, SEG, SL_LOG_FSYNC);
			cr_assert_eq(sl_log_end(log), keep + 5, "mode %d, cut %u: after reopen",
			             mode, cut);
			read_all(log, 0, keep + 5);
			sl_log_close(log);
		}
	}
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work);
	cr_assert_eq(system(cmd), 0);
	free(img);
}

static void flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

Test(log, bit_flip_before_a_later_commit_is_corruption_not_a_torn_tail)
{
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	append_n(log, 1, 0, 10);
	cr_assert_eq(commit(log), 0);
	append_n(log, 1, 10, 10);
	cr_assert_eq(commit(log), 0);
	sl_log_close(log);
	char seg[512];
	last_segment(g_dir, seg, sizeof(seg));
	flip_byte(seg, SL_LOG_BATCH_HDR + 14); /* inside the first, long since acked, batch */

	struct sl_log_opts o = {.dir = g_dir, .segment_bytes = 1 << 20};
	char err[400];
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, "00000000000000000000.log"),
	                   "error does not name the file: %s", err);
	cr_assert_not_null(strstr(err, "byte 0"), "error does not name the position: %s", err);
	/* Nothing was cut: the file still holds both batches. */
	struct stat st;
	cr_assert_eq(stat(seg, &st), 0);
	flip_byte(seg, SL_LOG_BATCH_HDR + 14);
	log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 20);
	sl_log_close(log);
}

Test(log, bit_flip_in_a_sealed_segment_is_refused_on_read)
{
	struct sl_log *log = open_log(g_dir, 8192, SL_LOG_FSYNC);
	for (int i = 0; i < 20; i++) {
		append_n(log, 1, (uint64_t)i * 20, 20);
		cr_assert_eq(commit(log), 0);
	}
	uint64_t end = sl_log_end(log);
	sl_log_close(log);
	char first[600];
	snprintf(first, sizeof(first), "%s/00000000000000000000.log", g_dir);
	flip_byte(first, 100);

	/* Opening does not read sealed segments (recovery time must not grow
	 * with the log), so it succeeds; reading the bad batch is refused. */
	log = open_log(g_dir, 8192, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), end);
	struct sl_log_reader *rd;
	struct sl_log_record rec;
	cr_assert_eq(sl_log_reader_open(log, 0, &rd), 0);
	cr_assert_eq(sl_log_reader_next(rd, sl_log_durable(log), &rec), -SL_ECORRUPT);
	cr_assert_not_null(strstr(sl_log_reader_error(rd), "00000000000000000000.log"));
	sl_log_reader_close(rd);
	/* Data in the other segments still reads. */
	read_all(log, end - 20, end);
	sl_log_close(log);
	/* And the damaged file was not truncated. */
	struct stat st;
	cr_assert_eq(stat(first, &st), 0);
	cr_assert_gt(st.st_size, 100);
}

Test(log, failed_fdatasync_stops_the_log_and_acks_nothing_it_covered)
{
	struct sl_log_opts o = {.dir = g_dir, .segment_bytes = 1 << 20, .fail_sync_at = 2};
	struct sl_log *log;
	char err[400];
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0);
	append_n(log, 1, 0, 10);
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), 10);
	append_n(log, 1, 10, 10);
	cr_assert_eq(commit(log), -SL_ELOG_FAILED);
	cr_assert_eq(sl_log_durable(log), 10, "a failed sync made data durable");
	cr_assert(sl_log_failed(log));
	cr_assert_not_null(strstr(sl_log_error(log), "fdatasync"));
	cr_assert_not_null(strstr(sl_log_error(log), "00000000000000000000.log"));
	uint64_t off;
	uint8_t ev[8] = {0};
	cr_assert_eq(sl_log_append(log, 1, 1, 20, ev, sizeof(ev), &off), -SL_ELOG_FAILED);
	cr_assert_eq(sl_log_flush(log, &g_ring, 7), -SL_ELOG_FAILED);
	sl_log_close(log);
}

Test(log, relaxed_policies_are_durable_after_write)
{
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_NONE);
	append_n(log, 1, 0, 10);
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), 10);
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	cr_assert_eq(st.syncs, 0);
	cr_assert_eq(st.commits, 1, "none: the write is the commit");
	sl_log_close(log);

	char dir2[300];
	snprintf(dir2, sizeof(dir2), "%s/interval", g_dir);
	log = open_log(dir2, 1 << 20, SL_LOG_INTERVAL);
	append_n(log, 1, 0, 10);
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), 10);
	/* interval_ns is 1 ms: once it has passed, a sync is due. */
	wait_sync_due(log, "sync never became due");
	cr_assert_eq(commit(log), 0);
	sl_log_get_stats(log, &st);
	cr_assert_eq(st.syncs, 1);
	/* The lone interval sync covered a write already counted. */
	cr_assert_eq(st.commits, 1);
	sl_log_close(log);
}

/* None: every SL_LOG_WRITEBACK_BYTES written start their writeback in the
 * background (a sync_file_range through the ring, its CQE tagged
 * SL_LOG_UD_IGNORE), so a roll's fsync finds little left; what is stored
 * is unchanged. */
Test(log, none_starts_writeback_as_segments_fill)
{
	struct sl_log *log = open_log(g_dir, 8u << 20, SL_LOG_NONE);
	uint64_t n = 0;
	struct sl_log_stats st;
	do {
		append_n(log, 1, n, 1000);
		n += 1000;
		cr_assert_eq(commit(log), 0);
		cr_assert_eq(io_uring_submit(&g_ring) >= 0, 1);
		sl_log_get_stats(log, &st);
	} while (st.segments < 3);
	cr_assert_geq(st.writebacks, 2, "%llu bytes written, %llu kicks",
	              (unsigned long long)st.bytes_written, (unsigned long long)st.writebacks);
	cr_assert_leq(st.writebacks, st.bytes_written / SL_LOG_WRITEBACK_BYTES);
	cr_assert_eq(sl_log_durable(log), n);
	/* Every kick completes, tagged to be ignored. */
	for (uint64_t seen = 0; seen < st.writebacks;) {
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
		cr_assert_eq(cqe->user_data, SL_LOG_UD_IGNORE);
		cr_assert_geq(cqe->res, 0, "writeback: %s", strerror(-cqe->res));
		io_uring_cqe_seen(&g_ring, cqe);
		seen++;
	}
	sl_log_close(log);
	log = open_log(g_dir, 8u << 20, SL_LOG_NONE);
	read_all(log, 0, n);
	sl_log_close(log);
}

/* Interval: acks come at the write, so writes go on while the periodic sync
 * runs; the sync then covers only what was written before it, and its end
 * never takes `durable` back. */
Test(log, interval_writes_go_on_beside_the_sync)
{
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_INTERVAL);
	append_n(log, 1, 0, 10);
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), 10);
	wait_sync_due(log, "sync never became due");
	cr_assert_eq(sl_log_flush(log, &g_ring, 7), 1, "the due sync is queued");
	cr_assert(sl_log_io_pending(log));
	append_n(log, 1, 10, 10);
	cr_assert_eq(sl_log_flush(log, &g_ring, 7), 2, "the write waited for the sync");
	cr_assert_eq(sl_log_durable(log), 20);
	cr_assert_geq(io_uring_submit(&g_ring), 1);
	for (;;) {
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		io_uring_cqe_seen(&g_ring, cqe);
		if (ud == SL_LOG_UD_IGNORE)
			continue;
		cr_assert_eq(ud, 7);
		cr_assert_eq(sl_log_on_cqe(log, res), 0, "durable did not move");
		break;
	}
	cr_assert_eq(sl_log_durable(log), 20);
	cr_assert_not(sl_log_io_pending(log));
	/* The second write was not covered: another sync becomes due. */
	wait_sync_due(log, "the later write was taken as synced");
	struct sl_log_stats st0, st;
	sl_log_get_stats(log, &st0);
	cr_assert_eq(commit(log), 0);
	sl_log_get_stats(log, &st);
	cr_assert_eq(st.syncs, st0.syncs + 1);
	cr_assert_not(sl_log_sync_due(log, sl_now_ns() + 1000000000ull), "all synced now");
	sl_log_close(log);
	log = open_log(g_dir, 1 << 20, SL_LOG_INTERVAL);
	read_all(log, 0, 20);
	sl_log_close(log);
}

Test(log, crc32c_known_answer)
{
	/* RFC 3720 B.4: 32 bytes of zeros -> 0x8a9136aa; the check value of
	 * "123456789" is 0xe3069283. */
	uint8_t zeros[32] = {0};
	cr_assert_eq(sl_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau);
	const char *s = "123456789";
	cr_assert_eq(sl_crc32c(0, s, 9), 0xe3069283u);
	/* Chainable. */
	cr_assert_eq(sl_crc32c(sl_crc32c(0, s, 4), s + 4, 5), 0xe3069283u);
}

struct visit_ctx {
	uint64_t next;
	uint64_t n;
};

static int visit_check(void *arg, const struct sl_log_record *rec)
{
	struct visit_ctx *ctx = arg;
	uint8_t ev[256];
	cr_assert_eq(rec->offset, ctx->next, "view skipped: %llu after %llu",
	             (unsigned long long)rec->offset, (unsigned long long)ctx->next);
	uint32_t len = make_event(ev, rec->producer_id, rec->seq);
	cr_assert_eq(rec->len, len);
	cr_assert_eq(memcmp(rec->event, ev, len), 0);
	ctx->next++;
	ctx->n++;
	return 0;
}

/* Reads [from, limit) through a view in small pieces, as a consumer would. */
static void view_read_all(struct sl_log_view *v, uint64_t from, uint64_t limit, uint32_t step)
{
	struct visit_ctx ctx = {.next = from};
	uint64_t off = from, next;
	for (int guard = 0; off < limit; guard++) {
		cr_assert_lt(guard, 1000000);
		int n = sl_log_view_read(v, off, limit, step, 1 << 20, visit_check, &ctx, &next);
		cr_assert_gt(n, 0, "view read at %llu: %d %s", (unsigned long long)off, n,
		             sl_log_view_error(v));
		cr_assert_eq(next, off + (uint64_t)n);
		off = next;
	}
	cr_assert_eq(ctx.next, limit);
}

Test(log, views_read_across_segments_while_the_writer_goes_on)
{
	struct sl_log *log = open_log(g_dir, 16384, SL_LOG_FSYNC);
	for (uint64_t round = 0; round < 30; round++) {
		append_n(log, 1 + round % 3, round * 25, 25);
		cr_assert_eq(commit(log), 0);
	}
	struct sl_log_view *v;
	cr_assert_eq(sl_log_view_open(g_dir, &v), 0);
	cr_assert_eq(sl_log_view_start(v), 0);
	view_read_all(v, 0, 750, 7);
	view_read_all(v, 0, 750, 1000);
	for (uint64_t from = 3; from < 750; from += 97)
		view_read_all(v, from, 750, 13);
	/* The writer rolls on; the same view follows into new segments. */
	for (uint64_t round = 30; round < 60; round++) {
		append_n(log, 1 + round % 3, round * 25, 25);
		cr_assert_eq(commit(log), 0);
	}
	view_read_all(v, 740, sl_log_durable(log), 50);
	/* Nothing past the limit is visited. */
	uint64_t next;
	struct visit_ctx ctx = {.next = 100};
	cr_assert_eq(sl_log_view_read(v, 100, 105, 1000, 1 << 20, visit_check, &ctx, &next), 5);
	cr_assert_eq(next, 105);
	cr_assert_eq(sl_log_view_read(v, 1500, 1500, 10, 1 << 20, visit_check, &ctx, &next), 0);
	sl_log_view_close(v);
	sl_log_close(log);

	/* A flipped byte in a sealed segment: the view refuses, naming it. */
	char first[600];
	snprintf(first, sizeof(first), "%s/00000000000000000000.log", g_dir);
	flip_byte(first, 100);
	cr_assert_eq(sl_log_view_open(g_dir, &v), 0);
	ctx.next = 0;
	int n = sl_log_view_read(v, 0, 1500, 10, 1 << 20, visit_check, &ctx, &next);
	cr_assert_eq(n, -SL_ECORRUPT);
	cr_assert_not_null(strstr(sl_log_view_error(v), "00000000000000000000.log"));
	sl_log_view_close(v);
}

/* A visitor that refuses every 5th record it is offered (not visited: offered
 * again by the next read) and ends the read after every 3rd it takes. */
struct fussy_ctx {
	struct visit_ctx check;
	uint64_t offered, taken;
};

static int visit_fussy(void *arg, const struct sl_log_record *rec)
{
	struct fussy_ctx *f = arg;
	if (++f->offered % 5 == 0)
		return -1;
	/* Appended below with seq == offset: a resume at the wrong record
	 * shows as a record under another's offset. */
	cr_assert_eq(rec->seq, rec->offset, "offset %llu holds seq %llu",
	             (unsigned long long)rec->offset, (unsigned long long)rec->seq);
	visit_check(&f->check, rec);
	return ++f->taken % 3 == 0 ? 1 : 0;
}

/* Reads stop inside batches in every way a visitor can make them (a limit of
 * events, a refusal, a stop after the record) and resume there: each record
 * comes exactly once, in order, with its bytes. */
Test(log, views_resume_inside_batches_after_refusals_and_stops)
{
	struct sl_log *log = open_log(g_dir, 16384, SL_LOG_FSYNC);
	for (uint64_t round = 0; round < 20; round++) {
		append_n(log, 1 + round % 2, round * 64, 64);
		cr_assert_eq(commit(log), 0);
	}
	struct sl_log_view *v;
	cr_assert_eq(sl_log_view_open(g_dir, &v), 0);
	cr_assert_eq(sl_log_view_start(v), 0);
	for (uint32_t step = 1; step <= 9; step += 4) {
		struct fussy_ctx f = {.check = {.next = 0}};
		uint64_t off = 0, next;
		for (int guard = 0; off < 1280; guard++) {
			cr_assert_lt(guard, 100000);
			int n =
			    sl_log_view_read(v, off, 1280, step, 1 << 20, visit_fussy, &f, &next);
			cr_assert_geq(n, 0, "view read at %llu: %s", (unsigned long long)off,
			              sl_log_view_error(v));
			cr_assert_eq(next, off + (uint64_t)n);
			off = next;
		}
		cr_assert_eq(f.check.next, 1280);
		cr_assert_eq(f.taken, 1280);
	}
	sl_log_view_close(v);
	sl_log_close(log);
}

/* Found by the segment fuzz target: a commit of several batches whose first
 * is damaged, followed by a later commit, is corruption. */
Test(log, bit_flip_in_the_first_batch_of_a_multi_batch_commit_is_corruption)
{
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	append_n(log, 1, 0, 5);
	append_n(log, 2, 0, 5); /* same commit, a second batch */
	cr_assert_eq(commit(log), 0);
	append_n(log, 1, 5, 5);
	cr_assert_eq(commit(log), 0);
	cr_assert_eq(sl_log_durable(log), 15);
	sl_log_close(log);
	char seg[512];
	last_segment(g_dir, seg, sizeof(seg));
	flip_byte(seg, SL_LOG_BATCH_HDR + 14); /* inside the first batch */

	struct sl_log_opts o = {.dir = g_dir, .segment_bytes = 1 << 20};
	char err[400];
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	if (ret == 0) {
		uint64_t end = sl_log_end(log);
		sl_log_close(log);
		cr_assert_fail("15 acked events, recovery kept %llu and zeroed the rest",
		               (unsigned long long)end);
	}
	cr_assert_eq(ret, -SL_ECORRUPT);
}

/* A write that fails (here: RLIMIT_FSIZE makes it short) stops the log
 * before any fdatasync could claim the data durable. */
Test(log, failed_write_stops_the_log_before_any_sync)
{
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	append_n(log, 1, 0, 10);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, rl;
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	rl.rlim_cur = 1;
	rl.rlim_max = old.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	int ret = sl_log_flush(log, &g_ring, 7);
	setrlimit(RLIMIT_FSIZE, &old);
	cr_assert_eq(ret, -SL_ELOG_FAILED);
	cr_assert_not(sl_log_io_pending(log), "an fdatasync went out for a failed write");
	cr_assert_eq(sl_log_durable(log), 0);
	cr_assert(sl_log_failed(log));
	cr_assert_not_null(strstr(sl_log_error(log), "write of"), "%s", sl_log_error(log));
	uint64_t off;
	uint8_t ev[8] = {0};
	cr_assert_eq(sl_log_append(log, 1, 1, 10, ev, sizeof(ev), &off), -SL_ELOG_FAILED);
	sl_log_close(log);
}

/* Waits for the preparer thread to finish what was asked (its own
 * notification), then the next segment must be ready. */
static void wait_prepared(struct sl_segprep *prep, struct sl_log *log)
{
	sl_segprep_drain(prep);
	cr_assert(sl_log_next_ready(log), "the next segment was not prepared");
}

static bool has_prep_file(const char *dir)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/next.prep", dir);
	return access(path, F_OK) == 0;
}

/* Rolls into segments the preparer made ahead (allocated and synced): the same log as with in-place
 * segments, recovery included; a prepared file left behind (a crash) is deleted at open and never
 * read as a segment. */
Test(log, prepared_segments_roll_in)
{
	struct sl_segprep *prep;
	cr_assert_eq(sl_segprep_create(&prep), 0);
	struct sl_log_opts o = {
	    .dir = g_dir, .segment_bytes = 16384, .durability = SL_LOG_FSYNC, .prep = prep};
	struct sl_log *log;
	char err[400];
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert(!sl_log_next_asked(log), "an empty log asked for its next segment");
	for (uint64_t round = 0; round < 40; round++) {
		append_n(log, 1 + round % 2, round * 30, 30);
		cr_assert_eq(commit(log), 0);
		/* Half way through a segment the log asks; let the preparer
		 * finish before the roll, so every roll takes its file. */
		if (sl_log_next_asked(log))
			wait_prepared(prep, log);
	}
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	cr_assert_gt(st.segments, 5);
	cr_assert_eq(st.segments_prepared, st.segments - 1,
	             "%llu of %llu rolls took a prepared segment",
	             (unsigned long long)st.segments_prepared, (unsigned long long)st.segments - 1);
	for (uint64_t from = 0; from < 1200; from += 37)
		read_all(log, from, 1200);
	sl_log_close(log);
	cr_assert(!has_prep_file(g_dir), "a prepared segment outlived its log");

	/* A crash's leftover: junk under the prepared name. */
	char path[400];
	snprintf(path, sizeof(path), "%s/next.prep", g_dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("not a segment", f);
	fclose(f);
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_log_end(log), 1200);
	for (uint64_t from = 0; from < 1200; from += 101)
		read_all(log, from, 1200);
	append_n(log, 3, 0, 100);
	cr_assert_eq(commit(log), 0);
	read_all(log, 1100, 1300);
	sl_log_close(log);
	sl_segprep_destroy(prep);
}

/*
 * A segment as every sluice wrote it before batches carried their leader
 * epoch ('SLB1', log/batch.h): one batch of
 * producer 0x0102030405060708, epoch 3, events "abc" (seq 10) and "de"
 * (seq 12) at offsets 0 and 1, appended at 1764979200123 ms, checksum
 * included. Existing data folders must keep opening: this must still read.
 */
static const uint8_t golden_batch[72] = {
    0x53, 0x4c, 0x42, 0x31, 0x7b, 0x8f, 0xda, 0xa9, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x02, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x7b, 0x50, 0xf5, 0xf0, 0x9a, 0x01,
    0x00, 0x00, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x03, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x61, 0x62,
    0x63, 0x02, 0x02, 0x64, 0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void write_file(const char *dir, const char *name, const void *p, size_t len)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, p, len), (ssize_t)len);
	close(fd);
}

static size_t read_file(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, cap);
	cr_assert_geq(n, 0);
	close(fd);
	return (size_t)n;
}

Test(log, golden_segment_still_reads)
{
	/* The names say what the bytes are. */
	cr_assert_eq(sl_get_le32(golden_batch + SL_BATCH_MAGIC), SL_LOG_MAGIC_V1);
	cr_assert_eq(sl_get_le32(golden_batch + SL_BATCH_LEN), 9);
	cr_assert_eq(sl_batch_span_at(golden_batch), sizeof(golden_batch));
	struct sl_bhdr b;
	cr_assert(sl_batch_valid(golden_batch, sizeof(golden_batch), &b));
	cr_assert_eq(b.hdr_len, SL_LOG_BATCH_HDR_V1);
	cr_assert_eq(b.leader_epoch, 0);
	cr_assert_eq(b.base_offset, 0);
	cr_assert_eq(b.count, 2);
	cr_assert_eq(b.producer_id, 0x0102030405060708ull);
	cr_assert_eq(b.epoch, 3);
	cr_assert_eq(b.base_seq, 10);
	cr_assert_eq(b.time_ms, 1764979200123ll);
	cr_assert_eq(b.unit_start, 0);

	write_file(g_dir, "00000000000000000000.log", golden_batch, sizeof(golden_batch));
	struct sl_log *log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 2);
	struct sl_log_reader *rd;
	struct sl_log_record rec;
	cr_assert_eq(sl_log_reader_open(log, 0, &rd), 0);
	cr_assert_eq(sl_log_reader_next(rd, sl_log_durable(log), &rec), 1);
	cr_assert_eq(rec.offset, 0);
	cr_assert_eq(rec.producer_id, 0x0102030405060708ull);
	cr_assert_eq(rec.epoch, 3);
	cr_assert_eq(rec.seq, 10);
	cr_assert_eq(rec.append_time_ms, 1764979200123ll);
	cr_assert_eq(rec.len, 3);
	cr_assert_eq(memcmp(rec.event, "abc", 3), 0);
	cr_assert_eq(sl_log_reader_next(rd, sl_log_durable(log), &rec), 1);
	cr_assert_eq(rec.offset, 1);
	cr_assert_eq(rec.seq, 12);
	cr_assert_eq(rec.len, 2);
	cr_assert_eq(memcmp(rec.event, "de", 2), 0);
	cr_assert_eq(sl_log_reader_next(rd, sl_log_durable(log), &rec), 0);
	sl_log_reader_close(rd);

	/* The writer writes 'SLB2' batches after it, in the same segment: the
	 * golden events appended again make a batch equal to it but for the
	 * magic, time, unit_start, checksum and the leader epoch (set here)
	 * before its records. */
	uint64_t off;
	sl_log_set_leader_epoch(log, 7);
	cr_assert_eq(
	    sl_log_append(log, 0x0102030405060708ull, 3, 10, (const uint8_t *)"abc", 3, &off), 0);
	cr_assert_eq(
	    sl_log_append(log, 0x0102030405060708ull, 3, 12, (const uint8_t *)"de", 2, &off), 0);
	cr_assert_eq(off, 3);
	cr_assert_eq(commit(log), 0);
	sl_log_close(log);
	enum { V2 = 80 }; /* 64 + 9, aligned to 8 */
	uint8_t img[sizeof(golden_batch) + V2];
	cr_assert_geq(read_file(g_dir, "00000000000000000000.log", img, sizeof(img)), sizeof(img));
	cr_assert_eq(memcmp(img, golden_batch, sizeof(golden_batch)), 0, "the old batch changed");
	const uint8_t *h = img + sizeof(golden_batch);
	static const uint8_t magic2[4] = {0x53, 0x4c, 0x42, 0x32}; /* "SLB2" */
	cr_assert_eq(memcmp(h, magic2, 4), 0);
	cr_assert_eq(sl_batch_span_at(h), V2);
	cr_assert(sl_batch_valid(h, V2, &b));
	cr_assert_eq(b.hdr_len, 64);
	cr_assert_eq(b.base_offset, 2);
	cr_assert_eq(b.unit_start, sizeof(golden_batch));
	cr_assert_eq(sl_get_le32(h + 56), 7, "the leader epoch at byte 56");
	cr_assert_eq(b.leader_epoch, 7);
	cr_assert_eq(sl_get_le32(h + 60), 0, "reserved");
	cr_assert_eq(memcmp(h + SL_BATCH_COUNT, golden_batch + SL_BATCH_COUNT,
	                    SL_BATCH_TIME_MS - SL_BATCH_COUNT),
	             0);
	cr_assert_eq(memcmp(h + SL_BATCH_PRODUCER, golden_batch + SL_BATCH_PRODUCER,
	                    SL_BATCH_UNIT_START - SL_BATCH_PRODUCER),
	             0);
	cr_assert_eq(memcmp(h + SL_BATCH_BASE_SEQ, golden_batch + SL_BATCH_BASE_SEQ,
	                    SL_LOG_BATCH_HDR_V1 - SL_BATCH_BASE_SEQ),
	             0);
	cr_assert_eq(memcmp(h + 64, golden_batch + SL_LOG_BATCH_HDR_V1, 9), 0, "the records");
	for (size_t i = 64 + 9; i < V2; i++)
		cr_assert_eq(h[i], 0, "padding");

	/* Both kinds in one segment recover and read. */
	log = open_log(g_dir, 1 << 20, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), 4);
	cr_assert_eq(sl_log_reader_open(log, 0, &rd), 0);
	for (uint64_t i = 0; i < 4; i++) {
		cr_assert_eq(sl_log_reader_next(rd, sl_log_durable(log), &rec), 1);
		cr_assert_eq(rec.offset, i);
		cr_assert_eq(rec.seq, i % 2 ? 12 : 10);
		cr_assert_eq(memcmp(rec.event, i % 2 ? "de" : "abc", rec.len), 0);
	}
	cr_assert_eq(sl_log_reader_next(rd, sl_log_durable(log), &rec), 0);
	sl_log_reader_close(rd);
	sl_log_close(log);
}

/* A sealed segment's .idx is what log/index_format.h says: 8-byte entries,
 * the first {0, 0}, each pointing at the batch that holds its offset. */
Test(log, index_file_layout)
{
	struct sl_log *log = open_log(g_dir, 65536, SL_LOG_FSYNC);
	for (uint64_t round = 0; round < 60; round++) {
		append_n(log, 1 + round % 3, round * 20, 20);
		cr_assert_eq(commit(log), 0);
	}
	sl_log_close(log);
	static uint8_t seg[65536], idx[4096];
	size_t n_seg = read_file(g_dir, "00000000000000000000.log", seg, sizeof(seg));
	size_t n_idx = read_file(g_dir, "00000000000000000000.idx", idx, sizeof(idx));
	cr_assert_gt(n_idx, SL_IDX_ENTRY, "only %zu index bytes", n_idx);
	cr_assert_eq(n_idx % SL_IDX_ENTRY, 0);
	cr_assert_eq(sl_get_le32(idx + SL_IDX_REL), 0);
	cr_assert_eq(sl_get_le32(idx + SL_IDX_POS), 0);
	struct sl_idx v[4096 / SL_IDX_ENTRY];
	sl_idx_decode(v, idx, n_idx / SL_IDX_ENTRY);
	for (size_t i = 0; i < n_idx / SL_IDX_ENTRY; i++) {
		cr_assert_eq(v[i].rel, sl_get_le32(idx + i * SL_IDX_ENTRY + SL_IDX_REL));
		cr_assert_lt(v[i].pos + SL_LOG_BATCH_HDR, n_seg);
		cr_assert_eq(sl_get_le32(seg + v[i].pos + SL_BATCH_MAGIC), SL_LOG_MAGIC);
		cr_assert_eq(sl_get_le64(seg + v[i].pos + SL_BATCH_BASE_OFFSET), v[i].rel,
		             "entry %zu points at the wrong batch", i);
		if (i)
			cr_assert_geq(v[i].pos - v[i - 1].pos, SL_IDX_EVERY);
	}
	uint8_t back[4096];
	sl_idx_encode(back, v, n_idx / SL_IDX_ENTRY);
	cr_assert_eq(memcmp(back, idx, n_idx), 0);
}

/*
 * Issue 15: a filesystem without fallocate (FUSE, some network
 * filesystems). The hook stands in for fallocate(2) and fails as those do;
 * the log must go on without pre-allocation for segments created in place,
 * prepared, and recovered, with the same append/flush/roll/recover/read.
 */
static int g_falloc_calls;
static int g_falloc_errno = EOPNOTSUPP;
static int no_fallocate(int fd, int mode, off_t off, off_t len)
{
	(void)fd, (void)mode, (void)off, (void)len;
	__atomic_add_fetch(&g_falloc_calls, 1, __ATOMIC_RELAXED);
	errno = g_falloc_errno;
	return -1;
}

static off_t file_size(const char *dir, const char *name)
{
	char path[400];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_size;
}

static void no_fallocate_case(struct sl_segprep *prep)
{
	struct sl_log_opts o = {.dir = g_dir,
	                        .segment_bytes = 16384,
	                        .durability = SL_LOG_FSYNC,
	                        .prep = prep,
	                        .fallocate_fn = no_fallocate};
	struct sl_log *log;
	char err[400];
	g_falloc_calls = 0;
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(g_falloc_calls, 0, "the hook was not used");
	/* Not pre-allocated: the active segment holds what was written. */
	cr_assert_eq(file_size(g_dir, "00000000000000000000.log"), 0);
	append_n(log, 1, 0, 10);
	cr_assert_eq(commit(log), 0);
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	cr_assert_eq(file_size(g_dir, "00000000000000000000.log"), (off_t)st.bytes_written);
	for (uint64_t round = 1; round < 40; round++) {
		append_n(log, 1 + round % 2, round * 30 - 20, 30);
		cr_assert_eq(commit(log), 0);
		if (prep && sl_log_next_asked(log))
			sl_segprep_drain(prep);
	}
	sl_log_get_stats(log, &st);
	cr_assert_gt(st.segments, 5, "no rolls");
	if (prep)
		cr_assert_gt(st.segments_prepared, 0, "no prepared segment rolled in");
	read_all(log, 0, 1180);
	sl_log_close(log);

	/* Recovery of a short active segment with a torn tail: the tail is
	 * cut, nothing else, and the segment stays as long as it was. */
	char seg[512];
	last_segment(g_dir, seg, sizeof(seg));
	struct stat before;
	cr_assert_eq(stat(seg, &before), 0);
	cr_assert_lt(before.st_size, 16384);
	uint8_t junk[24];
	memset(junk, 0xab, sizeof(junk));
	sl_put_le32(junk, SL_LOG_MAGIC);
	int fd = open(seg, O_WRONLY);
	cr_assert_eq(pwrite(fd, junk, sizeof(junk), before.st_size), (ssize_t)sizeof(junk));
	close(fd);
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_log_end(log), 1180);
	sl_log_get_stats(log, &st);
	cr_assert_eq(st.recovered_truncated_bytes, sizeof(junk));
	read_all(log, 0, 1180);
	append_n(log, 3, 0, 100);
	cr_assert_eq(commit(log), 0);
	read_all(log, 500, 1280);
	sl_log_close(log);
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_log_end(log), 1280);
	read_all(log, 0, 1280);
	sl_log_close(log);
}

Test(log, without_fallocate_in_place)
{
	no_fallocate_case(NULL);
}

Test(log, without_fallocate_prepared)
{
	struct sl_segprep *prep;
	cr_assert_eq(sl_segprep_create(&prep), 0);
	no_fallocate_case(prep);
	sl_segprep_destroy(prep);
}

/* Only "cannot" falls back: a full disk still refuses the segment. */
Test(log, fallocate_enospc_still_fails)
{
	struct sl_log_opts o = {.dir = g_dir, .segment_bytes = 16384, .fallocate_fn = no_fallocate};
	struct sl_log *log;
	char err[400];
	g_falloc_errno = ENOSPC;
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	g_falloc_errno = EOPNOTSUPP;
	cr_assert_eq(ret, -ENOSPC, "%s", sl_strerror(ret));
	cr_assert_not_null(strstr(err, "pre-allocate"), "%s", err);
}

/*
 * A full device (issue 15). ENOSPC is not fatal: the log refuses new events
 * with -SL_ELOG_FULL, keeps what it buffered, writes it again once there is
 * room, and serves on without being reopened.
 */
static bool g_falloc_full;
static int full_fallocate(int fd, int mode, off_t off, off_t len)
{
	if (__atomic_load_n(&g_falloc_full, __ATOMIC_RELAXED)) {
		errno = ENOSPC;
		return -1;
	}
	return fallocate(fd, mode, off, len);
}

/* Flushes until the log is no longer full (5 s at most: it retries every
 * SL_LOG_FULL_RETRY_NS), then commits what is left. */
static void commit_until_not_full(struct sl_log *log)
{
	uint64_t t0 = sl_now_ns();
	while (sl_log_full(log)) {
		cr_assert_lt(sl_now_ns() - t0, 5000000000ull, "still full: %s", sl_log_error(log));
		cr_assert_geq(commit(log), 0);
	}
	cr_assert_eq(commit(log), 0);
}

/* Reads [0, end) back, closes the log, and reads it all again from a
 * reopen with the same options. */
static void read_back_and_reopen(struct sl_log *log, const struct sl_log_opts *o, uint64_t end)
{
	char err[400];
	read_all(log, 0, end);
	sl_log_close(log);
	cr_assert_eq(sl_log_open(o, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_log_end(log), end);
	read_all(log, 0, end);
	sl_log_close(log);
}

static void assert_refuses_full(struct sl_log *log, uint64_t durable)
{
	uint64_t off;
	uint8_t ev[16] = {0};
	cr_assert(sl_log_full(log), "not full");
	cr_assert_not(sl_log_failed(log), "a full device stopped the log: %s", sl_log_error(log));
	cr_assert_eq(sl_log_append(log, 9, 1, 0, ev, sizeof(ev), &off), -SL_ELOG_FULL);
	cr_assert_eq(sl_log_durable(log), durable, "something was made durable while full");
	cr_assert_not(sl_log_io_pending(log), "an fdatasync went out while full");
	cr_assert_not_null(strstr(sl_log_error(log), strerror(ENOSPC)), "%s", sl_log_error(log));
}

Test(log, full_device_at_a_roll_refuses_then_resumes)
{
	struct sl_log_opts o = {.dir = g_dir,
	                        .segment_bytes = 16384,
	                        .durability = SL_LOG_FSYNC,
	                        .fallocate_fn = full_fallocate};
	struct sl_log *log;
	char err[400];
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	uint64_t seq = 0;
	/* Fill the first segment to just before its roll. */
	for (;;) {
		struct sl_log_stats st;
		sl_log_get_stats(log, &st);
		if (st.bytes_written > 16384 - 4096)
			break;
		append_n(log, 1, seq, 10);
		seq += 10;
		cr_assert_eq(commit(log), 0);
	}
	uint64_t durable = sl_log_durable(log);
	g_falloc_full = true;
	append_n(log, 1, seq, 60); /* more than the segment has left: a roll */
	seq += 60;
	cr_assert_eq(sl_log_flush(log, &g_ring, 7), 0);
	assert_refuses_full(log, durable);
	cr_assert_not_null(strstr(sl_log_error(log), "pre-allocate"), "%s", sl_log_error(log));
	/* Still full at the next retry: nothing changes. */
	uint64_t t0 = sl_now_ns();
	while (sl_now_ns() - t0 < 2 * SL_LOG_FULL_RETRY_NS)
		cr_assert_eq(sl_log_flush(log, &g_ring, 7), 0);
	assert_refuses_full(log, durable);
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	cr_assert_eq(st.full_episodes, 1);
	g_falloc_full = false;
	commit_until_not_full(log);
	cr_assert_eq(sl_log_durable(log), seq, "what waited was not written once space came back");
	append_n(log, 1, seq, 10);
	seq += 10;
	cr_assert_eq(commit(log), 0);
	read_back_and_reopen(log, &o, seq);
}

/* A real full filesystem: a 256 KiB tmpfs under the test's folder, a log
 * without pre-allocation (so that its writes meet ENOSPC), and a filler
 * file whose removal frees the space. Needs root (mount); skipped without. */
static char g_mnt[300];
static void unmount_tmpfs(void)
{
	if (g_mnt[0])
		umount2(g_mnt, MNT_DETACH);
	g_mnt[0] = 0;
	teardown();
}

Test(log, full_tmpfs_on_write_keeps_the_buffer_and_writes_it_again, .fini = unmount_tmpfs)
{
	snprintf(g_mnt, sizeof(g_mnt), "%s/mnt", g_dir);
	cr_assert_eq(mkdir(g_mnt, 0755), 0);
	if (mount("tmpfs", g_mnt, "tmpfs", 0, "size=256k") < 0) {
		g_mnt[0] = 0;
		cr_skip_test("mount tmpfs: %s (needs root)", strerror(errno));
	}
	char dir[400], filler[400];
	snprintf(dir, sizeof(dir), "%s/log", g_mnt);
	snprintf(filler, sizeof(filler), "%s/filler", g_mnt);
	struct sl_log_opts o = {.dir = dir,
	                        .segment_bytes = 1 << 20,
	                        .durability = SL_LOG_FSYNC,
	                        .fallocate_fn = no_fallocate};
	struct sl_log *log;
	char err[400];
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	/* All but 64 KiB goes to the filler. */
	int fd = open(filler, O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(fd, 0);
	static uint8_t block[4096];
	struct statvfs vs;
	cr_assert_eq(statvfs(g_mnt, &vs), 0);
	uint64_t room = (uint64_t)vs.f_bavail * vs.f_frsize;
	for (uint64_t w = 0; w + 65536 < room; w += sizeof(block))
		cr_assert_eq(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	close(fd);

	uint64_t seq = 0, durable = 0;
	for (int round = 0; round < 1000 && !sl_log_full(log); round++) {
		append_n(log, 1, seq, 50);
		seq += 50;
		int ret = commit(log);
		cr_assert_geq(ret, 0, "%s", sl_log_error(log));
		if (!sl_log_full(log))
			durable = seq;
	}
	cr_assert(sl_log_full(log), "64 KiB never filled");
	assert_refuses_full(log, durable);
	cr_assert_not_null(strstr(sl_log_error(log), "write of"), "%s", sl_log_error(log));
	cr_assert_eq(unlink(filler), 0);
	commit_until_not_full(log);
	cr_assert_eq(sl_log_durable(log), seq);
	read_back_and_reopen(log, &o, seq);
}

/* Space is reserved in steps ahead of the writes (issue 22): a new segment
 * holds SL_LOG_PREALLOC_FIRST on disk, later steps double up to
 * SL_LOG_PREALLOC_MAX_STEP, the file always covers what was written, and a
 * reopened log carries on from the file's size. */
Test(log, preallocation_in_steps, .timeout = 60)
{
	enum { SEG = 64 << 20 };
	struct sl_log *log = open_log(g_dir, SEG, SL_LOG_FSYNC);
	char seg[512];
	struct stat st;
	last_segment(g_dir, seg, sizeof(seg));
	cr_assert_eq(stat(seg, &st), 0);
	cr_assert_eq(st.st_size, SL_LOG_PREALLOC_FIRST, "a new segment holds %lld bytes",
	             (long long)st.st_size);
	cr_assert_leq((uint64_t)st.st_blocks * 512, SL_LOG_PREALLOC_FIRST + 65536);

	uint64_t seq = 0;
	struct sl_log_stats ls;
	for (int round = 0; round < 4000; round++) {
		append_n(log, 1, seq, 100);
		seq += 100;
		cr_assert_eq(commit(log), 0);
		sl_log_get_stats(log, &ls);
		cr_assert_eq(stat(seg, &st), 0);
		cr_assert_geq((uint64_t)st.st_size, ls.bytes_written, "written past the file");
		if (ls.bytes_written > 40u << 20)
			break;
	}
	cr_assert_eq(stat(seg, &st), 0);
	/* 1 MiB, then steps of 2, 4, 8, 16, 16 ... MiB past 40 MiB written. */
	cr_assert_geq(ls.prealloc_steps, 5, "40 MiB in %llu steps",
	              (unsigned long long)ls.prealloc_steps);
	cr_assert_lt((uint64_t)st.st_size, (uint64_t)SEG, "the whole segment was taken");
	cr_assert_geq((uint64_t)st.st_size, ls.bytes_written);
	/* A step is taken when a write needs it: never more than a step ahead. */
	cr_assert_leq((uint64_t)st.st_size - ls.bytes_written, SL_LOG_PREALLOC_MAX_STEP,
	              "more than a step ahead of the writes: %lld for %llu written",
	              (long long)st.st_size, (unsigned long long)ls.bytes_written);
	cr_assert_geq((uint64_t)st.st_blocks * 512, (uint64_t)st.st_size - 65536,
	              "the steps did not allocate: %lld blocks for %lld bytes",
	              (long long)st.st_blocks, (long long)st.st_size);
	sl_log_close(log);
	log = open_log(g_dir, SEG, SL_LOG_FSYNC);
	cr_assert_eq(sl_log_end(log), seq);
	append_n(log, 2, 0, 100);
	cr_assert_eq(commit(log), 0);
	read_all(log, 0, seq + 100);
	sl_log_close(log);

	/* A hundred idle partitions reserve a hundred first steps. */
	uint64_t blocks = 0;
	for (int p = 0; p < 100; p++) {
		char dir[400], path[600];
		snprintf(dir, sizeof(dir), "%s/p%d", g_dir, p);
		struct sl_log *l = open_log(dir, SEG, SL_LOG_FSYNC);
		sl_log_close(l);
		snprintf(path, sizeof(path), "%s/00000000000000000000.log", dir);
		cr_assert_eq(stat(path, &st), 0);
		blocks += (uint64_t)st.st_blocks * 512;
	}
	cr_assert_leq(blocks, 100ull * (SL_LOG_PREALLOC_FIRST + 65536), "%llu bytes for 100",
	              (unsigned long long)blocks);
}
