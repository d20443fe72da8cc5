/*
 * The reactor journal (log.h) on real files through a real io_uring: a
 * group commit of several logs in one frame, acks before the segment write
 * and readers after it, a process that dies before its segment writes and
 * the replay that restores them (across rolls), torn and corrupt frames,
 * file retirement by checkpoint, and a failed journal sync.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "log/journal_format.h"
#include "log/log.h"

static char g_dir[256];
static struct io_uring g_ring;

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-journal-test-XXXXXX");
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

TestSuite(journal, .init = setup, .fini = teardown);

static struct sl_journal *open_journal(uint64_t file_bytes, uint64_t first_seq, uint32_t fail_at)
{
	char dir[400], err[400];
	snprintf(dir, sizeof(dir), "%s/%s/0", g_dir, SL_JOURNAL_DIR_NAME);
	struct sl_journal_opts o = {
	    .dir = dir, .file_bytes = file_bytes, .first_seq = first_seq, .fail_sync_at = fail_at};
	struct sl_journal *j;
	int ret = sl_journal_create(&o, &j, err, sizeof(err));
	cr_assert_eq(ret, 0, "journal: %s", err);
	return j;
}

static struct sl_log *open_jlog(struct sl_journal *j, uint32_t part, uint64_t seg,
                                struct sl_jrec *rec)
{
	char dir[400], key[64], err[400];
	snprintf(dir, sizeof(dir), "%s/t/%u", g_dir, part);
	snprintf(key, sizeof(key), "t/%u", part);
	struct sl_log_opts o = {.dir = dir,
	                        .segment_bytes = seg,
	                        .durability = SL_LOG_FSYNC,
	                        .journal = j,
	                        .journal_key = key,
	                        .journal_arg = (void *)(uintptr_t)(part + 1),
	                        .replay = rec};
	struct sl_log *log;
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	cr_assert_eq(ret, 0, "open %s: %s (%s)", dir, sl_strerror(ret), err);
	return log;
}

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
		uint64_t off;
		uint32_t len = make_event(ev, pid, seq0 + i);
		cr_assert_eq(sl_log_append(log, pid, 1, seq0 + i, ev, len, &off), 0);
	}
}

struct cbs {
	uint32_t moved[8], failed[8];
};

static void count_cb(void *arg, void *log_arg, int status)
{
	struct cbs *c = arg;
	uint32_t i = (uint32_t)(uintptr_t)log_arg - 1;
	cr_assert_lt(i, 8);
	if (status < 0)
		c->failed[i]++;
	else
		c->moved[i]++;
}

/* One group commit of every log: hand-offs, the frame, its sync. Returns
 * what the journal's completion returned (1, or < 0). */
static int group_commit(struct sl_journal *j, struct sl_log **logs, uint32_t n, struct cbs *c)
{
	for (uint32_t i = 0; i < n; i++) {
		int ret = sl_log_flush(logs[i], &g_ring, 9);
		cr_assert(ret == 3 || ret == 0, "flush: %d", ret);
	}
	int ret = sl_journal_commit(j, &g_ring, 42, count_cb, c);
	if (ret <= 0)
		return ret;
	cr_assert_geq(io_uring_submit(&g_ring), 1);
	struct io_uring_cqe *cqe;
	cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
	cr_assert_eq(cqe->user_data, 42);
	ret = sl_journal_on_cqe(j, cqe->res, count_cb, c);
	io_uring_cqe_seen(&g_ring, cqe);
	return ret;
}

/* Reads [0, end) of the log back and checks every event against
 * make_event for producer pid. */
static void read_back(struct sl_log *log, uint64_t pid, uint64_t end)
{
	struct sl_log_reader *rd;
	struct sl_log_record rec;
	uint8_t ev[256];
	uint64_t next = 0;
	int ret;
	cr_assert_eq(sl_log_reader_open(log, 0, &rd), 0);
	while ((ret = sl_log_reader_next(rd, sl_log_durable(log), &rec)) == 1) {
		cr_assert_eq(rec.offset, next);
		cr_assert_eq(rec.producer_id, pid);
		uint32_t len = make_event(ev, pid, rec.seq);
		cr_assert_eq(rec.len, len);
		cr_assert_eq(memcmp(rec.event, ev, len), 0, "event %llu differs",
		             (unsigned long long)rec.offset);
		next++;
	}
	cr_assert_eq(ret, 0, "reader: %s", sl_log_reader_error(rd));
	cr_assert_eq(next, end, "read %llu of %llu", (unsigned long long)next,
	             (unsigned long long)end);
	sl_log_reader_close(rd);
}

static uint32_t count_files(const char *sub, const char *suffix)
{
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, sub);
	DIR *d = opendir(dir);
	uint32_t n = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strstr(e->d_name, suffix))
			n++;
	closedir(d);
	return n;
}

Test(journal, one_frame_commits_every_log_then_segments_take_the_bytes)
{
	struct sl_journal *j = open_journal(0, 0, 0);
	struct sl_log *logs[3];
	struct cbs c = {0};
	for (uint32_t i = 0; i < 3; i++) {
		logs[i] = open_jlog(j, i, 1 << 20, NULL);
		append_n(logs[i], 10 + i, 0, 100 + i);
	}
	cr_assert_eq(group_commit(j, logs, 3, &c), 1);
	struct sl_journal_stats st;
	sl_journal_get_stats(j, &st);
	cr_assert_eq(st.syncs, 1, "one fdatasync for three logs");
	cr_assert_eq(st.chunks, 3);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_eq(sl_log_acked(logs[i]), 100 + i, "acked after the journal's sync");
		cr_assert_eq(c.moved[i], 1);
		/* Small groups wait for their segment write: readers may not
		 * read what is not in the file yet. */
		cr_assert_eq(sl_log_durable(logs[i]), 0);
	}
	cr_assert(sl_journal_lazy(j));
	sl_journal_segwrites(j, true, count_cb, &c);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_eq(sl_log_durable(logs[i]), 100 + i);
		read_back(logs[i], 10 + i, 100 + i);
		sl_log_close(logs[i]);
	}
	sl_journal_destroy(j);
}

/* In a child: commits `rounds` groups of `per` events of producer 7 to log
 * t/0 (segment size `seg`), never writes its segment on its own, and dies
 * without closing anything, as a kill -9 would leave it. */
static void child_commits_and_dies(uint64_t seg, uint32_t rounds, uint32_t per, uint64_t file_bytes)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Its own ring: the parent's rings are shared memory. */
		if (io_uring_queue_init(64, &g_ring, 0) < 0)
			_exit(4);
		struct sl_journal *j = open_journal(file_bytes, 0, 0);
		struct sl_log *log = open_jlog(j, 0, seg, NULL);
		struct cbs c = {0};
		for (uint32_t r = 0; r < rounds; r++) {
			append_n(log, 7, (uint64_t)r * per, per);
			if (group_commit(j, &log, 1, &c) != 1 || sl_log_acked(log) != (r + 1) * per)
				_exit(3);
		}
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", st);
}

Test(journal, a_process_that_died_before_its_segment_write_is_replayed)
{
	child_commits_and_dies(1 << 20, 5, 200, 0);
	/* The segment holds none of it (only the journal does). */
	char err[400];
	struct sl_jrec *rec;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	uint64_t files, frames, chunks;
	sl_jrec_counts(rec, &files, &frames, &chunks);
	cr_assert_eq(frames, 5);
	cr_assert_eq(chunks, 5);
	struct sl_journal *j = open_journal(0, sl_jrec_next_seq(rec), 0);
	struct sl_log *log = open_jlog(j, 0, 1 << 20, rec);
	cr_assert_eq(sl_log_end(log), 1000, "replayed to the acked end");
	cr_assert_eq(sl_log_acked(log), 1000);
	struct sl_log_stats ls;
	sl_log_get_stats(log, &ls);
	cr_assert_gt(ls.recovered_replayed_batches, 0);
	read_back(log, 7, 1000);
	cr_assert_eq(sl_jrec_finish(rec, g_dir, false, err, sizeof(err)), 0, "%s", err);
	/* The old file is gone; the new journal's file stays. */
	cr_assert_eq(count_files(".journal/0", ".jnl"), 1);
	/* Appends go on after the replayed events, and a second replay of
	 * nothing changes nothing. */
	struct cbs c = {0};
	append_n(log, 7, 1000, 10);
	cr_assert_eq(group_commit(j, &log, 1, &c), 1);
	sl_log_close(log);
	sl_journal_destroy(j);
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	j = open_journal(0, sl_jrec_next_seq(rec), 0);
	log = open_jlog(j, 0, 1 << 20, rec);
	cr_assert_eq(sl_log_end(log), 1010);
	read_back(log, 7, 1010);
	cr_assert_eq(sl_jrec_finish(rec, g_dir, false, err, sizeof(err)), 0, "%s", err);
	sl_log_close(log);
	sl_journal_destroy(j);
}

Test(journal, replay_rolls_segments_where_the_writer_did)
{
	/* 64 KiB segments, ~120-byte events: rolls every ~500 events. */
	child_commits_and_dies(64 << 10, 20, 150, 0);
	char err[400];
	struct sl_jrec *rec;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	struct sl_journal *j = open_journal(0, sl_jrec_next_seq(rec), 0);
	struct sl_log *log = open_jlog(j, 0, 64 << 10, rec);
	cr_assert_eq(sl_log_end(log), 3000);
	cr_assert_gt(count_files("t/0", ".log"), 3, "segments rolled");
	read_back(log, 7, 3000);
	cr_assert_eq(sl_jrec_finish(rec, g_dir, false, err, sizeof(err)), 0, "%s", err);
	sl_log_close(log);
	sl_journal_destroy(j);
}

Test(journal, retired_files_are_checkpointed_and_deleted_and_the_rest_replays)
{
	/* 16 KiB journal files: about one frame each. */
	child_commits_and_dies(1 << 20, 40, 100, 16 << 10);
	cr_assert_leq(count_files(".journal/0", ".jnl"), 2, "retired files deleted");
	char err[400];
	struct sl_jrec *rec;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	struct sl_journal *j = open_journal(0, sl_jrec_next_seq(rec), 0);
	struct sl_log *log = open_jlog(j, 0, 1 << 20, rec);
	cr_assert_eq(sl_log_end(log), 4000,
	             "checkpointed part from the segment, the rest replayed");
	read_back(log, 7, 4000);
	cr_assert_eq(sl_jrec_finish(rec, g_dir, false, err, sizeof(err)), 0, "%s", err);
	sl_log_close(log);
	sl_journal_destroy(j);
}

static void journal_file(char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s/0/%020d.jnl", g_dir, SL_JOURNAL_DIR_NAME, 0);
}

static void flip(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, at), 1);
	b ^= 0x40;
	cr_assert_eq(pwrite(fd, &b, 1, at), 1);
	close(fd);
}

Test(journal, torn_last_frame_is_dropped_a_bad_earlier_frame_is_corruption)
{
	child_commits_and_dies(1 << 20, 3, 50, 0);
	char path[500], err[400];
	journal_file(path, sizeof(path));
	struct sl_jrec *rec;
	uint64_t files, frames, chunks;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	sl_jrec_counts(rec, &files, &frames, &chunks);
	cr_assert_eq(frames, 3);
	sl_jrec_free(rec);

	/* Damage in the last frame: a torn tail, never acked. */
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	int fd = open(path, O_RDONLY);
	uint8_t *d = malloc((size_t)st.st_size);
	cr_assert_eq(pread(fd, d, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	size_t f2 = SL_JF_HDR + sl_get_le32(d + SL_JF_LEN);
	size_t f3 = f2 + SL_JF_HDR + sl_get_le32(d + f2 + SL_JF_LEN);
	free(d);
	flip(path, (off_t)(f3 + SL_JF_HDR + 40));
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	sl_jrec_counts(rec, &files, &frames, &chunks);
	cr_assert_eq(frames, 2, "the torn frame is dropped");
	sl_jrec_free(rec);

	/* Damage in the first frame, with valid frames after it: those were
	 * written after its sync completed, so it was acked: corruption. */
	flip(path, (off_t)(SL_JF_HDR + 40));
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, "corrupt frame at byte 0"), "%s", err);
	cr_assert_not_null(strstr(err, path), "the error names the file: %s", err);
}

Test(journal, a_failed_sync_fails_every_log_of_the_frame_and_acks_nothing)
{
	struct sl_journal *j = open_journal(0, 0, 1);
	struct sl_log *logs[2];
	struct cbs c = {0};
	for (uint32_t i = 0; i < 2; i++) {
		logs[i] = open_jlog(j, i, 1 << 20, NULL);
		append_n(logs[i], 3, 0, 20);
	}
	cr_assert_eq(group_commit(j, logs, 2, &c), -SL_ELOG_FAILED);
	for (uint32_t i = 0; i < 2; i++) {
		cr_assert_eq(c.failed[i], 1);
		cr_assert_eq(sl_log_acked(logs[i]), 0);
		cr_assert(sl_log_failed(logs[i]));
		cr_assert_not_null(strstr(sl_log_error(logs[i]), "Input/output error"), "%s",
		                   sl_log_error(logs[i]));
		cr_assert_not_null(strstr(sl_log_error(logs[i]), ".jnl"), "names the file: %s",
		                   sl_log_error(logs[i]));
	}
	/* Later groups fail too: the page cache may hold what the disk
	 * does not. */
	uint64_t off;
	uint8_t ev[8] = {0};
	cr_assert_eq(sl_log_append(logs[0], 3, 1, 20, ev, sizeof(ev), &off), -SL_ELOG_FAILED);
	cr_assert(sl_journal_failed(j));
	for (uint32_t i = 0; i < 2; i++)
		sl_log_close(logs[i]);
	sl_journal_destroy(j);
}

/* A filesystem that stops pre-allocating under a log (a segment recovered
 * from one that could, on one that cannot): fallocate works for the first
 * step, then says EOPNOTSUPP while bytes wait for their deferred segment
 * write. Every byte must still land where its batch was sealed for. */
static int g_falloc_calls;
static int falloc_then_unsupported(int fd, int mode, off_t off, off_t len)
{
	if (g_falloc_calls++ == 0)
		return fallocate(fd, mode, off, len);
	errno = EOPNOTSUPP;
	return -1;
}

Test(journal, fallocate_lost_midway_with_bytes_deferred)
{
	struct sl_journal *j = open_journal(0, 0, 0);
	char dir[400], err[400];
	snprintf(dir, sizeof(dir), "%s/t/0", g_dir);
	struct sl_log_opts o = {.dir = dir,
	                        .segment_bytes = 4 << 20,
	                        .durability = SL_LOG_FSYNC,
	                        .journal = j,
	                        .journal_key = "t/0",
	                        .journal_arg = (void *)(uintptr_t)1,
	                        .fallocate_fn = falloc_then_unsupported};
	struct sl_log *log;
	g_falloc_calls = 0;
	cr_assert_eq(sl_log_open(&o, &log, err, sizeof(err)), 0, "%s", err);
	struct cbs c = {0};
	/* ~12 KB a commit (under SL_JOURNAL_SEGWRITE_MIN: deferred, and no
	 * deferred write is run here), past the first 1 MiB step. */
	uint32_t per = 100, rounds = 0;
	while (g_falloc_calls < 2 && rounds < 400) {
		append_n(log, 7, (uint64_t)rounds * per, per);
		cr_assert_eq(group_commit(j, &log, 1, &c), 1);
		rounds++;
	}
	cr_assert_geq(g_falloc_calls, 2, "never needed a second step");
	/* A few more commits in the no-pre-allocation mode. */
	for (uint32_t k = 0; k < 5; k++, rounds++) {
		append_n(log, 7, (uint64_t)rounds * per, per);
		cr_assert_eq(group_commit(j, &log, 1, &c), 1);
	}
	sl_journal_segwrites(j, true, count_cb, &c);
	cr_assert_eq(sl_log_durable(log), (uint64_t)rounds * per);
	read_back(log, 7, (uint64_t)rounds * per);
	sl_log_close(log);
	sl_journal_destroy(j);
}

/* ---- durability changed while the log runs (log.h, sl_log_set_durability) -- */

/* In a forked child a failed cr_assert never returns to the runner (the
 * test would hang): there a failed check says why on stderr and exits
 * (the parent sees the status); in the test's own process it fails. */
static bool g_in_child;
#define D_CHECK(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			if (g_in_child) {                                                          \
				fprintf(stderr, __VA_ARGS__);                                      \
				fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__);                 \
				_exit(5);                                                          \
			}                                                                          \
			cr_assert_fail(__VA_ARGS__);                                               \
		}                                                                                  \
	} while (0)

/* Log t/0 under policy d, journaled by j when d is fsync and j is given,
 * replaying rec (NULL: nothing). */
static struct sl_log *open_dlog(struct sl_journal *j, enum sl_log_durability d, struct sl_jrec *rec)
{
	char dir[400], err[400];
	snprintf(dir, sizeof(dir), "%s/t/0", g_dir);
	struct sl_log_opts o = {.dir = dir,
	                        .segment_bytes = 1 << 20,
	                        .durability = d,
	                        .interval_ns = 1000000,
	                        .journal = d == SL_LOG_FSYNC ? j : NULL,
	                        .journal_key = "t/0",
	                        .journal_arg = (void *)(uintptr_t)1,
	                        .replay = rec};
	struct sl_log *log;
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	D_CHECK((ret) == (0), "open %s: %s (%s)", dir, sl_strerror(ret), err);
	return log;
}

/* One CQE of tag ud (writeback kicks skipped). */
static int wait_cqe_of(uint64_t ud)
{
	for (;;) {
		struct io_uring_cqe *cqe;
		D_CHECK((io_uring_wait_cqe(&g_ring, &cqe)) == (0),
		        "io_uring_wait_cqe(&g_ring, &cqe) == 0");
		uint64_t got = cqe->user_data;
		int res = cqe->res;
		io_uring_cqe_seen(&g_ring, cqe);
		if (got == SL_LOG_UD_IGNORE)
			continue;
		D_CHECK((got) == (ud), "got == ud");
		return res;
	}
}

/* A log without a journal: group commits until nothing is left. */
static void own_commit(struct sl_log *log)
{
	for (int turns = 0; turns < 1000; turns++) {
		int ret = sl_log_flush(log, &g_ring, 9);
		D_CHECK((ret) >= (0), "flush: %d (%s)", ret, sl_log_error(log));
		if (ret == 1)
			D_CHECK((io_uring_submit(&g_ring)) >= (1), "io_uring_submit(&g_ring) >= 1");
		if (sl_log_io_pending(log))
			D_CHECK((sl_log_on_cqe(log, wait_cqe_of(9))) >= (0),
			        "sl_log_on_cqe(log, wait_cqe_of(9)) >= 0");
		else if (!sl_log_busy(log))
			return;
	}
	D_CHECK(false, "group commit never finished");
}

/* fsync (journaled by j, or not) -> none -> fsync under appends of producer
 * 7: each change asked with a group in flight (it waits for it) or with
 * events buffered (they go out under the new policy), every phase's events
 * acked. With `end_none` it stops after the none phase. Returns the events
 * acked; the last fsync phase's segment writes are left deferred. */
enum { D_N1 = 300, D_FLIGHT = 50, D_N2 = 200, D_BUF = 10, D_N3 = 150 };
static uint64_t switch_sequence(struct sl_journal *j, struct sl_log *log, bool end_none)
{
	struct cbs c = {0};
	uint64_t n = 0;
	append_n(log, 7, n, D_N1);
	n += D_N1;
	if (j)
		D_CHECK((group_commit(j, &log, 1, &c)) == (1), "group_commit(j, &log, 1, &c) == 1");
	else
		own_commit(log);
	D_CHECK((sl_log_acked(log)) == (n), "sl_log_acked(log) == n");

	/* A group in flight: the switch waits for its sync, and nothing is
	 * written meanwhile. */
	append_n(log, 7, n, D_FLIGHT);
	n += D_FLIGHT;
	if (j) {
		D_CHECK((sl_log_flush(log, &g_ring, 9)) == (3),
		        "sl_log_flush(log, &g_ring, 9) == 3");
		D_CHECK((sl_journal_commit(j, &g_ring, 42, count_cb, &c)) == (1),
		        "sl_journal_commit(j, &g_ring, 42, count_cb, &c) == 1");
		D_CHECK((io_uring_submit(&g_ring)) >= (1), "io_uring_submit(&g_ring) >= 1");
	} else {
		D_CHECK((sl_log_flush(log, &g_ring, 9)) == (1),
		        "sl_log_flush(log, &g_ring, 9) == 1");
		D_CHECK((io_uring_submit(&g_ring)) >= (1), "io_uring_submit(&g_ring) >= 1");
	}
	D_CHECK((sl_log_set_durability(log, SL_LOG_NONE, 0, NULL, NULL)) == (0),
	        "a switch inside a group commit");
	append_n(log, 7, n, 1);
	n += 1;
	D_CHECK((sl_log_flush(log, &g_ring, 9)) == (0), "a write under a half-made switch");
	if (j)
		D_CHECK((sl_journal_on_cqe(j, wait_cqe_of(42), count_cb, &c)) == (1),
		        "sl_journal_on_cqe(j, wait_cqe_of(42), count_cb, &c) == 1");
	else
		D_CHECK((sl_log_on_cqe(log, wait_cqe_of(9))) == (1),
		        "sl_log_on_cqe(log, wait_cqe_of(9)) == 1");
	D_CHECK((sl_log_acked(log)) == (n - 1), "the group in flight is acked under fsync");
	D_CHECK((sl_log_switch(log)) == (1), "sl_log_switch(log) == 1");
	D_CHECK(!(sl_log_journal(log)), "detached");
	D_CHECK((sl_log_durability(log)) == (SL_LOG_NONE), "sl_log_durability(log) == SL_LOG_NONE");
	D_CHECK((sl_log_durable(log)) == (n - 1),
	        "the journal's deferred bytes are in the segment");

	append_n(log, 7, n, D_N2);
	n += D_N2;
	D_CHECK((sl_log_flush(log, &g_ring, 9)) == (2), "none: durable after the write");
	D_CHECK((sl_log_acked(log)) == (n), "sl_log_acked(log) == n");
	if (end_none)
		return n;

	/* Events buffered under none go out under fsync. */
	append_n(log, 7, n, D_BUF);
	n += D_BUF;
	D_CHECK((sl_log_set_durability(log, SL_LOG_FSYNC, 0, j, "t/0")) == (1),
	        "nothing in flight: at once");
	D_CHECK((sl_log_journal(log)) == (j), "sl_log_journal(log) == j");
	D_CHECK((sl_log_acked(log)) == (n - D_BUF), "buffered events wait for the new policy");
	append_n(log, 7, n, D_N3);
	n += D_N3;
	if (j)
		D_CHECK((group_commit(j, &log, 1, &c)) == (1), "group_commit(j, &log, 1, &c) == 1");
	else
		own_commit(log);
	D_CHECK((sl_log_acked(log)) == (n), "sl_log_acked(log) == n");
	return n;
}

/* The sequence in a child that dies without closing anything (kill -9:
 * the page cache is kept, nothing deferred is written). */
static uint64_t child_switches_and_dies(bool journaled, bool end_none)
{
	uint64_t expect = D_N1 + D_FLIGHT + 1 + D_N2 + (end_none ? 0 : D_BUF + D_N3);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		g_in_child = true;
		if (io_uring_queue_init(64, &g_ring, 0) < 0)
			_exit(4);
		struct sl_journal *j = journaled ? open_journal(0, 0, 0) : NULL;
		struct sl_log *log = open_dlog(j, SL_LOG_FSYNC, NULL);
		_exit(switch_sequence(j, log, end_none) == expect ? 0 : 3);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", st);
	return expect;
}

/* Zeroes the newest segment of t/0 whole, as a power cut may leave a file
 * none of whose bytes were synced since it was made. Returns its base. */
static uint64_t lose_last_segment(void)
{
	char cmd[500], path[600];
	snprintf(cmd, sizeof(cmd), "ls '%s'/t/0/*.log | sort | tail -1", g_dir);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(path, sizeof(path), p));
	pclose(p);
	path[strcspn(path, "\n")] = '\0';
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	int fd = open(path, O_WRONLY);
	cr_assert_geq(fd, 0);
	uint8_t *z = calloc(1, (size_t)st.st_size + 1);
	cr_assert_eq(pwrite(fd, z, (size_t)st.st_size, 0), st.st_size);
	free(z);
	close(fd);
	return strtoull(strrchr(path, '/') + 1, NULL, 10);
}

/* Reopens t/0 the way the next start does under policy d (journaled when
 * fsync and `journaled`), replaying what the journals hold; checks every
 * event below `end` reads back, and returns the recovered end. */
static uint64_t reopen_and_read(enum sl_log_durability d, bool journaled, uint64_t end)
{
	char err[400];
	struct sl_jrec *rec;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	struct sl_journal *j = journaled ? open_journal(0, sl_jrec_next_seq(rec), 0) : NULL;
	struct sl_log *log = open_dlog(j, d, rec);
	uint64_t got = sl_log_end(log);
	cr_assert_eq(got, end, "recovered end %llu, expected %llu", (unsigned long long)got,
	             (unsigned long long)end);
	read_back(log, 7, end);
	cr_assert_eq(sl_jrec_finish(rec, g_dir, false, err, sizeof(err)), 0, "%s", err);
	sl_log_close(log);
	sl_journal_destroy(j);
	return got;
}

Test(journal, durability_switched_under_appends_every_acked_event_reads_back, .timeout = 60)
{
	struct sl_journal *j = open_journal(0, 0, 0);
	struct sl_log *log = open_dlog(j, SL_LOG_FSYNC, NULL);
	uint64_t n = switch_sequence(j, log, false);
	struct cbs c = {0};
	sl_journal_segwrites(j, true, count_cb, &c);
	cr_assert_eq(sl_log_durable(log), n);
	read_back(log, 7, n);
	/* A segment starts at each switch that left or joined the journal. */
	cr_assert_eq(count_files("t/0", ".log"), 3);
	sl_log_close(log);
	sl_journal_destroy(j);
	reopen_and_read(SL_LOG_FSYNC, true, n);
}

Test(journal, durability_switched_then_killed_journaled, .timeout = 60)
{
	uint64_t n = child_switches_and_dies(true, false);
	reopen_and_read(SL_LOG_FSYNC, true, n);
}

/* Killed under none after leaving the journal: the journal still holds the
 * log's older chunks, which must not be replayed over what none wrote
 * after them (every event acked under none survives a kill -9). */
Test(journal, durability_switched_to_none_then_killed, .timeout = 60)
{
	uint64_t n = child_switches_and_dies(true, true);
	reopen_and_read(SL_LOG_NONE, false, n);
}

/* Power cut after joining the journal: the segment made at the join held
 * only journaled bytes, none of them synced; losing all of it loses no
 * acked event (the journal replays them, and what none wrote before the
 * join was synced by the join). */
Test(journal, durability_switched_back_to_fsync_then_power_cut, .timeout = 60)
{
	uint64_t n = child_switches_and_dies(true, false);
	uint64_t base = lose_last_segment();
	cr_assert_eq(base, D_N1 + D_FLIGHT + 1 + D_N2, "the join's segment");
	reopen_and_read(SL_LOG_FSYNC, true, n);
}

/* Power cut under none after leaving the journal: what none wrote may go,
 * every event acked under fsync stays (synced by the switch's roll). */
Test(journal, durability_switched_to_none_then_power_cut, .timeout = 60)
{
	child_switches_and_dies(true, true);
	uint64_t base = lose_last_segment();
	cr_assert_eq(base, D_N1 + D_FLIGHT, "the detach's segment");
	reopen_and_read(SL_LOG_NONE, false, base);
}

/* The same switches on a log that syncs its own segment. */
Test(journal, durability_switched_own_fsync_then_killed, .timeout = 60)
{
	uint64_t n = child_switches_and_dies(false, false);
	cr_assert_eq(count_files("t/0", ".log"), 2, "one roll: entering fsync");
	reopen_and_read(SL_LOG_FSYNC, false, n);
}
