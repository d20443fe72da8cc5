/*
 * Retention and seek by time on real files (issue 18 items 2 and 4):
 * sl_log_retain deletes exactly the sealed segments its rule names (by
 * size, by age, never the active one, never past the hold), the start
 * stays true across a reopen, views let go of deleted segments and a
 * strict view refuses a read below the start; the time index (`.tix`)
 * finds the first event at or after a time, from its file, from the
 * segments' headers when the file is missing or damaged, across a clock
 * stepped back (the running maximum), and in the active segment.
 *
 * Append times come from the log's clock hook (opts.clock_ms): one batch
 * per round, at a time the test chose.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "log/log.h"
#include "log/tix_format.h"

static char g_dir[256];
static struct io_uring g_ring;
static int64_t g_now_ms;

static int64_t test_clock(void)
{
	return g_now_ms;
}

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-retention-test-XXXXXX");
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

TestSuite(retention, .init = setup, .fini = teardown);

#define SEG_BYTES 8192u
#define PER_ROUND 10u
#define EV_BYTES  100u

static struct sl_log *open_log(void)
{
	struct sl_log_opts o = {.dir = g_dir,
	                        .segment_bytes = SEG_BYTES,
	                        .durability = SL_LOG_FSYNC,
	                        .clock_ms = test_clock};
	struct sl_log *log;
	char err[400];
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	cr_assert_eq(ret, 0, "open: %s (%s)", sl_strerror(ret), err);
	return log;
}

static void commit(struct sl_log *log)
{
	for (int turns = 0; turns < 100000; turns++) {
		int ret = sl_log_flush(log, &g_ring, 7);
		cr_assert_geq(ret, 0, "flush: %s", sl_log_error(log));
		if (ret == 1)
			cr_assert_geq(io_uring_submit(&g_ring), 1);
		if (!sl_log_io_pending(log))
			return;
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
		int res = cqe->res;
		bool ours = cqe->user_data == 7;
		io_uring_cqe_seen(&g_ring, cqe);
		if (ours)
			cr_assert_geq(sl_log_on_cqe(log, res), 0);
	}
	cr_assert_fail("group commit never finished");
}

/* One round: PER_ROUND events of one batch (a producer per round) appended
 * at time t, committed. */
static void round_at(struct sl_log *log, uint64_t round, int64_t t)
{
	uint8_t ev[EV_BYTES];
	g_now_ms = t;
	for (uint32_t i = 0; i < PER_ROUND; i++) {
		uint64_t off;
		memset(ev, (int)(round + i), sizeof(ev));
		cr_assert_eq(sl_log_append(log, 100 + round, 1, i, ev, sizeof(ev), &off), 0);
		cr_assert_eq(off, round * PER_ROUND + i);
	}
	commit(log);
}

/* The segment bases in the folder, ascending; their count. */
static size_t bases(uint64_t *out, size_t cap)
{
	DIR *d = opendir(g_dir);
	struct dirent *de;
	size_t n = 0;
	cr_assert_not_null(d);
	while ((de = readdir(d)))
		if (strlen(de->d_name) == 24 && !strcmp(de->d_name + 20, ".log") && n < cap)
			out[n++] = strtoull(de->d_name, NULL, 10);
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && out[k - 1] > out[k]; k--) {
			uint64_t x = out[k];
			out[k] = out[k - 1];
			out[k - 1] = x;
		}
	return n;
}

static uint64_t file_size(uint64_t base, const char *ext)
{
	char path[400];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".%s", g_dir, base, ext);
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

/* 40 rounds at times 1000, 1010, ... : several sealed segments. */
static struct sl_log *build(void)
{
	struct sl_log *log = open_log();
	for (uint64_t r = 0; r < 40; r++)
		round_at(log, r, 1000 + (int64_t)r * 10);
	return log;
}

static int count_visit(void *arg, const struct sl_log_record *rec)
{
	uint64_t *n = arg;
	(void)rec;
	(*n)++;
	return 0;
}

Test(retention, by_size_deletes_exactly_the_oldest_past_the_limit)
{
	struct sl_log *log = build();
	uint64_t b[64], size[64], total;
	size_t n = bases(b, 64);
	cr_assert_geq(n, 5, "only %zu segments", n);
	for (size_t i = 0; i + 1 < n; i++)
		size[i] = file_size(b[i], "log");
	/* The partition's bytes: every sealed segment's and what the active
	 * one holds (everything this fresh log wrote). */
	struct sl_log_stats st;
	sl_log_get_stats(log, &st);
	total = st.bytes_written;
	cr_assert_gt(total, size[0] + size[1]);
	/* A limit half way into segment 2: segments 0 and 1 go (what stays
	 * is still >= it), 2 stays (without it, less would). The rule,
	 * computed independently: */
	uint64_t limit = total - size[0] - size[1] - size[2] / 2;
	size_t expect = 0;
	for (uint64_t left = total; expect + 1 < n && left - size[expect] >= limit; expect++)
		left -= size[expect];
	cr_assert_eq(expect, 2);
	_Atomic uint64_t pub = 0;
	struct sl_log_retention rt = {
	    .bytes = limit, .now_ms = 5000, .hold = UINT64_MAX, .start_pub = &pub};
	struct sl_log_retained out;
	int ret = sl_log_retain(log, &rt, &out);
	cr_assert_eq(ret, (int)expect);
	uint64_t nb[64];
	size_t m = bases(nb, 64);
	cr_assert_eq(m, n - expect);
	cr_assert_eq(nb[0], b[expect]);
	cr_assert_eq(out.start, nb[0]);
	cr_assert_eq(sl_log_start(log), nb[0]);
	cr_assert_eq(atomic_load(&pub), nb[0]);
	cr_assert_eq(out.segments, (uint32_t)ret);
	uint64_t gone = 0;
	for (size_t i = 0; i < (size_t)ret; i++) {
		gone += size[i];
		cr_assert_eq(file_size(b[i], "idx"), UINT64_MAX, "index of a deleted segment kept");
		cr_assert_eq(file_size(b[i], "tix"), UINT64_MAX);
	}
	cr_assert_eq(out.bytes, gone);
	cr_assert(!out.held);
	/* Again: nothing more goes (the next would leave less than it). */
	cr_assert_eq(sl_log_retain(log, &rt, &out), 0);
	/* The rest reads, from the start; a reopen keeps that start. */
	struct sl_log_view *v;
	uint64_t cnt = 0, next;
	cr_assert_eq(sl_log_view_open(g_dir, &v), 0);
	cr_assert_eq(sl_log_view_read(v, nb[0], sl_log_durable(log), 10000, UINT32_MAX, count_visit,
	                              &cnt, &next),
	             (int)(400 - nb[0]));
	sl_log_view_close(v);
	sl_log_close(log);
	log = open_log();
	cr_assert_eq(sl_log_start(log), nb[0]);
	cr_assert_eq(sl_log_end(log), 400);
	round_at(log, 40, 2000);
	cr_assert_eq(sl_log_end(log), 410);
	sl_log_close(log);
}

Test(retention, by_age_deletes_segments_whose_newest_event_is_older)
{
	struct sl_log *log = build();
	uint64_t b[64];
	size_t n = bases(b, 64);
	cr_assert_geq(n, 4);
	/* Segment 1's newest event: the round before segment 2's base. */
	int64_t newest1 = 1000 + (int64_t)((b[2] - 1) / PER_ROUND) * 10;
	struct sl_log_retention rt = {
	    .age_ms = 100, .now_ms = newest1 + 100 + 1, .hold = UINT64_MAX};
	struct sl_log_retained out;
	/* Older than now - age: segments 0 and 1, not 2 (its newest is
	 * later). */
	cr_assert_eq(sl_log_retain(log, &rt, &out), 2);
	cr_assert_eq(sl_log_start(log), b[2]);
	cr_assert(out.by_age);
	/* Exactly at the edge: not older, kept. */
	int64_t newest2 = 1000 + (int64_t)((b[3] - 1) / PER_ROUND) * 10;
	rt.now_ms = newest2 + 100;
	cr_assert_eq(sl_log_retain(log, &rt, &out), 0);
	/* After a reopen the sealed segments' ages come from their .tix; and
	 * without it, from their headers. */
	sl_log_close(log);
	char path[400];
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".tix", g_dir, b[2]);
	cr_assert_eq(unlink(path), 0);
	log = open_log();
	rt.now_ms = newest2 + 101;
	cr_assert_eq(sl_log_retain(log, &rt, &out), 1);
	cr_assert_eq(sl_log_start(log), b[3]);
	/* The active segment never goes, whatever its age. */
	rt.now_ms = 1000000;
	int k = sl_log_retain(log, &rt, &out);
	cr_assert_eq(k, (int)(n - 4));
	cr_assert_eq(bases(b, 64), 1);
	cr_assert_eq(sl_log_end(log), 400);
	sl_log_close(log);
}

Test(retention, a_hold_keeps_what_a_follower_has_not_read)
{
	struct sl_log *log = build();
	uint64_t b[64];
	size_t n = bases(b, 64);
	cr_assert_geq(n, 4);
	struct sl_log_retention rt = {.age_ms = 1, .now_ms = 100000, .hold = b[2] - 1};
	struct sl_log_retained out;
	/* Segment 0 ends at b[1] <= hold: read whole, deleted; segment 1
	 * holds offset b[2]-1, not read yet: kept, held. */
	cr_assert_eq(sl_log_retain(log, &rt, &out), 1);
	cr_assert(out.held);
	cr_assert_eq(sl_log_start(log), b[1]);
	rt.hold = b[2];
	cr_assert_eq(sl_log_retain(log, &rt, &out), 1);
	cr_assert(out.held);
	cr_assert_eq(sl_log_start(log), b[2]);
	sl_log_close(log);
}

Test(retention, views_let_go_and_a_strict_view_refuses_below_the_start)
{
	struct sl_log *log = build();
	uint64_t b[64];
	size_t n = bases(b, 64);
	cr_assert_geq(n, 4);
	_Atomic uint64_t start = 0;
	struct sl_log_view *strict, *lax;
	uint64_t cnt = 0, next;
	cr_assert_eq(sl_log_view_open(g_dir, &strict), 0);
	cr_assert_eq(sl_log_view_open(g_dir, &lax), 0);
	sl_log_view_follow_start(strict, &start, true);
	sl_log_view_follow_start(lax, &start, false);
	/* Both hold segment 0 open (read once). */
	cr_assert_eq(sl_log_view_read(strict, 0, 400, 5, UINT32_MAX, count_visit, &cnt, &next), 5);
	cr_assert_eq(sl_log_view_read(lax, 0, 400, 5, UINT32_MAX, count_visit, &cnt, &next), 5);
	struct sl_log_retention rt = {
	    .age_ms = 1, .now_ms = 100000, .hold = b[2], .start_pub = &start};
	struct sl_log_retained out;
	cr_assert_eq(sl_log_retain(log, &rt, &out), 2);
	cr_assert_eq(atomic_load(&start), b[2]);
	/* Below the start: refused with the start, never moved up. */
	cr_assert_eq(sl_log_view_read(strict, 5, 400, 5, UINT32_MAX, count_visit, &cnt, &next),
	             -SL_EOUT_OF_RANGE);
	cr_assert_not_null(strstr(sl_log_view_strerror(strict, -SL_EOUT_OF_RANGE), "retention"));
	cr_assert_eq(sl_log_view_start(strict), b[2]);
	/* A lax view starts at the first stored event (an applier counts the
	 * gap). */
	cr_assert_eq(sl_log_view_read(lax, 5, 400, 1, UINT32_MAX, count_visit, &cnt, &next), 1);
	cr_assert_eq(next, b[2] + 1);
	cr_assert_eq(
	    sl_log_view_read(strict, b[2], 400, 1000, UINT32_MAX, count_visit, &cnt, &next),
	    (int)(400 - b[2]));
	/* Their descriptors of the deleted files are closed: nothing in
	 * this process holds a deleted segment. */
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd | grep -c '%s.*(deleted)' > /dev/null",
	         (int)getpid(), g_dir);
	cr_assert_neq(system(cmd), 0, "a deleted segment is still open");
	sl_log_view_close(strict);
	sl_log_view_close(lax);
	sl_log_close(log);
}

/* The first offset whose running maximum of batch times reaches t, from
 * the times the rounds had. */
static uint64_t expected(const int64_t *times, uint32_t rounds, int64_t t)
{
	int64_t m = INT64_MIN;
	for (uint32_t r = 0; r < rounds; r++) {
		if (times[r] > m)
			m = times[r];
		if (m >= t)
			return (uint64_t)r * PER_ROUND;
	}
	return (uint64_t)rounds * PER_ROUND;
}

static void check_seeks(const int64_t *times, uint32_t rounds, uint64_t limit)
{
	struct sl_log_view *v;
	cr_assert_eq(sl_log_view_open(g_dir, &v), 0);
	for (int64_t t = 900; t <= 1000 + (int64_t)rounds * 10 + 20; t += 3) {
		uint64_t at = 0;
		int ret = sl_log_view_seek_time(v, t, limit, &at);
		uint64_t want = expected(times, rounds, t);
		cr_assert_geq(ret, 0, "seek %" PRId64 ": %s", t, sl_log_view_error(v));
		cr_assert_eq(at, want < limit ? want : limit,
		             "seek %" PRId64 ": %" PRIu64 ", expected %" PRIu64, t, at, want);
		cr_assert_eq(ret, want < limit);
	}
	sl_log_view_close(v);
}

Test(retention, seek_by_time_finds_the_first_event_at_or_after)
{
	int64_t times[40];
	struct sl_log *log = open_log();
	for (uint32_t r = 0; r < 40; r++) {
		/* The clock steps back by 25 ms at round 20 (then forward). */
		times[r] = 1000 + (int64_t)r * 10 - (r >= 20 && r < 23 ? 25 : 0);
		round_at(log, r, times[r]);
	}
	uint64_t b[64];
	cr_assert_geq(bases(b, 64), 4);
	cr_assert_neq(file_size(b[0], "tix"), UINT64_MAX, "no time index written at seal");
	/* The active segment (headers) and sealed ones (.tix). */
	check_seeks(times, 40, 400);
	/* What may be read bounds the answer. */
	check_seeks(times, 40, 200);
	/* The index is a cache: missing and damaged ones give the same
	 * answers from the headers. */
	char path[400];
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".tix", g_dir, b[0]);
	cr_assert_eq(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/%020" PRIu64 ".tix", g_dir, b[1]);
	int fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "short", 5), 5);
	close(fd);
	check_seeks(times, 40, 400);
	/* And after a reopen (recovery rebuilds the active segment's). */
	sl_log_close(log);
	log = open_log();
	check_seeks(times, 40, 400);
	sl_log_close(log);
}

Test(retention, tix_bytes_layout)
{
	/* The one definition of the bytes: 16 per entry, little endian. */
	struct sl_tix v[2] = {{0x0102030405060708, 0, 0}, {0x0102030405060708 + 5, 3, 4096}},
	              back[2];
	uint8_t raw[2 * SL_TIX_ENTRY];
	sl_tix_encode(raw, v, 2);
	cr_assert_eq(raw[SL_TIX_TIME], 0x08);
	cr_assert_eq(raw[SL_TIX_ENTRY + SL_TIX_REL], 3);
	cr_assert_eq(raw[SL_TIX_ENTRY + SL_TIX_POS + 1], 0x10);
	cr_assert_eq(sl_tix_decode(back, raw, sizeof(raw)), 2);
	cr_assert_eq(back[1].time_ms, v[1].time_ms);
	/* Order broken, first not at 0, size not whole: not an index. */
	cr_assert_eq(sl_tix_decode(back, raw, sizeof(raw) - 1), 0);
	sl_put_le64(raw + SL_TIX_ENTRY + SL_TIX_TIME, 1);
	cr_assert_eq(sl_tix_decode(back, raw, sizeof(raw)), 0);
	sl_tix_encode(raw, v, 2);
	sl_put_le32(raw + SL_TIX_POS, 8);
	cr_assert_eq(sl_tix_decode(back, raw, sizeof(raw)), 0);
}
