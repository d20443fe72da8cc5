/*
 * The log's replication primitives on real files: a follower appends the
 * batches a leader's view reads raw and ends byte-identical, segment file by
 * segment file, plain or journaled; raw appends refuse what does not
 * continue the log, with nothing appended.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "log/batch.h"
#include "log/log.h"
#include "topic/topic.h"

static char g_dir[256];
static struct io_uring g_ring;

static void setup(void)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-replica-test-XXXXXX");
	cr_assert_not_null(mkdtemp(g_dir));
	cr_assert_eq(io_uring_queue_init(64, &g_ring, 0), 0);
}

static void teardown(void)
{
	char cmd[300];
	io_uring_queue_exit(&g_ring);
	snprintf(cmd, sizeof(cmd), getenv("KEEP") ? "true %s" : "rm -rf '%s'", g_dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(replica, .init = setup, .fini = teardown);

static struct sl_log *open_at(const char *sub, uint64_t seg, struct sl_journal *j,
                              struct sl_jrec *rec, bool replicated)
{
	char dir[400], err[400];
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, sub);
	struct sl_log_opts o = {.dir = dir,
	                        .segment_bytes = seg,
	                        .durability = SL_LOG_FSYNC,
	                        .journal = j,
	                        .journal_key = j || rec ? sub : NULL,
	                        .journal_arg = (void *)1,
	                        .replay = rec,
	                        .replicated = replicated};
	struct sl_log *log;
	int ret = sl_log_open(&o, &log, err, sizeof(err));
	cr_assert_eq(ret, 0, "open %s: %s (%s)", dir, sl_strerror(ret), err);
	return log;
}

static struct sl_journal *open_journal(uint64_t first_seq)
{
	char dir[400], err[400];
	snprintf(dir, sizeof(dir), "%s/%s/0", g_dir, SL_JOURNAL_DIR_NAME);
	struct sl_journal_opts o = {.dir = dir, .first_seq = first_seq};
	struct sl_journal *j;
	cr_assert_eq(sl_journal_create(&o, &j, err, sizeof(err)), 0, "journal: %s", err);
	return j;
}

static void journal_cb(void *arg, void *log_arg, int status)
{
	(void)arg;
	(void)log_arg;
	cr_assert_geq(status, 0);
}

/* Group commits until everything appended is durable (acked). */
static void commit(struct sl_log *log)
{
	for (int turns = 0; turns < 100000; turns++) {
		int ret = sl_log_flush(log, &g_ring, 7);
		cr_assert_geq(ret, 0, "flush: %s", sl_log_error(log));
		if (ret == 3) {
			struct sl_journal *j = sl_log_journal(log);
			cr_assert_eq(sl_journal_commit(j, &g_ring, 42, journal_cb, NULL), 1);
			cr_assert_geq(io_uring_submit(&g_ring), 1);
			struct io_uring_cqe *cqe;
			cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
			cr_assert_eq(sl_journal_on_cqe(j, cqe->res, journal_cb, NULL), 1);
			io_uring_cqe_seen(&g_ring, cqe);
			continue;
		}
		if (ret == 1)
			cr_assert_geq(io_uring_submit(&g_ring), 1);
		if (!sl_log_io_pending(log)) {
			if (sl_log_acked(log) == sl_log_end(log))
				return;
			continue;
		}
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
		if (cqe->user_data == SL_LOG_UD_IGNORE) {
			io_uring_cqe_seen(&g_ring, cqe);
			continue;
		}
		cr_assert_eq(cqe->user_data, 7);
		cr_assert_geq(sl_log_on_cqe(log, cqe->res), 0);
		io_uring_cqe_seen(&g_ring, cqe);
	}
	cr_assert_fail("group commit never finished");
}

static uint32_t make_event(uint8_t *buf, uint64_t pid, uint64_t seq)
{
	uint32_t len = 20 + (uint32_t)((pid * 31 + seq * 7) % 180);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(pid * 13 + seq * 3 + i);
	return len;
}

/* n events of producer pid from seq0, in batches of `per` (each batch a
 * producer change closes). */
static void append_n(struct sl_log *log, uint64_t pid, uint64_t seq0, uint32_t n)
{
	uint8_t ev[256];
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off;
		uint32_t len = make_event(ev, pid, seq0 + i);
		cr_assert_eq(sl_log_append(log, pid, 1, seq0 + i, ev, len, &off), 0);
	}
}

/*
 * A leader written in groups of varied sizes on 8 KiB segments, each group
 * below half a segment: every segment holds two groups or more, so each roll
 * shows in unit_start (log.h: the replica's roll rule). Returns its end.
 */
static uint64_t write_leader(struct sl_log *l)
{
	static const uint32_t groups[] = {3, 5, 27, 2, 9, 24, 1, 26, 1, 20, 12, 29, 7, 30, 4};
	uint64_t seq[4] = {0};
	for (uint32_t r = 0; r < 90; r++) {
		uint32_t n = groups[r % 15];
		for (uint32_t k = 0; k < n;) {
			uint64_t pid = 1 + (r + k) % 3;
			uint32_t m = n - k < 5 ? n - k : 5;
			append_n(l, pid, seq[pid], m);
			seq[pid] += m;
			k += m;
		}
		commit(l);
	}
	return sl_log_end(l);
}

/* Copies the leader's durable batches into the follower, fetches of about
 * max_bytes each. */
static void replicate(struct sl_log *l, const char *ldir, struct sl_log *f, uint32_t max_bytes)
{
	struct sl_log_view *v;
	size_t cap = 1 << 20, len;
	uint8_t *buf = malloc(cap);
	uint64_t next;
	cr_assert_eq(sl_log_view_open(ldir, &v), 0);
	while (sl_log_end(f) < sl_log_durable(l)) {
		int n = sl_log_view_read_raw(v, sl_log_end(f), sl_log_durable(l), max_bytes, buf,
		                             cap, &len, &next);
		cr_assert_gt(n, 0, "read_raw: %d %s", n, sl_log_view_error(v));
		size_t at = 0;
		while (at < len) {
			uint64_t end;
			int took = sl_log_append_raw(f, buf + at, len - at, &end);
			cr_assert_geq(took, 0, "append_raw: %s", sl_strerror(took));
			at += (size_t)took;
			commit(f); /* a roll (took < len) waits for the group before */
		}
		cr_assert_eq(sl_log_end(f), next);
	}
	sl_log_view_close(v);
	free(buf);
}

/* The .log files of two folders: same names, same bytes. Returns how many. */
static int same_segments(const char *a, const char *b)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd),
	         "cd '%s/%s' && ls *.log > /tmp/sl-rep-a.$$ && cd '%s/%s' && ls *.log | cmp -s - "
	         "/tmp/sl-rep-a.$$ && for f in $(cat /tmp/sl-rep-a.$$); do cmp -s \"$f\" "
	         "'%s/%s'/\"$f\" || exit 1; done; r=$?; rm -f /tmp/sl-rep-a.$$; exit $r",
	         g_dir, a, g_dir, b, g_dir, a);
	int st = system(cmd);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "segments of %s and %s differ", a, b);
	DIR *d;
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, a);
	cr_assert_not_null(d = opendir(dir));
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".log") != NULL;
	closedir(d);
	return n;
}

static void byte_identical_case(bool journaled, uint32_t max_bytes)
{
	char ldir[400];
	snprintf(ldir, sizeof(ldir), "%s/leader", g_dir);
	struct sl_log *l = open_at("leader", 8192, NULL, NULL, false);
	uint64_t end = write_leader(l);
	struct sl_journal *j = journaled ? open_journal(0) : NULL;
	struct sl_log *f = open_at("follower", 8192, j, NULL, true);
	replicate(l, ldir, f, max_bytes);
	cr_assert_eq(sl_log_end(f), end);
	struct sl_log_stats st;
	sl_log_get_stats(f, &st);
	cr_assert_geq(st.batches, 1);
	sl_log_close(f);
	if (j)
		sl_journal_destroy(j);
	sl_log_close(l);
	int segs = same_segments("leader", "follower");
	cr_assert_geq(segs, 3, "at least two rolls (%d segments)", segs);
}

Test(replica, raw_append_plain_follower_is_byte_identical)
{
	byte_identical_case(false, 1u << 20);
}

Test(replica, raw_append_plain_follower_small_fetches_is_byte_identical)
{
	byte_identical_case(false, 3000);
}

Test(replica, raw_append_journaled_follower_is_byte_identical)
{
	byte_identical_case(true, 1u << 20);
}

Test(replica, raw_append_journaled_follower_small_fetches_is_byte_identical)
{
	byte_identical_case(true, 3000);
}

/* The leader's first `want` bytes or more of whole batches. */
static size_t leader_bytes(struct sl_log **lp, uint8_t *buf, size_t cap, uint64_t *next)
{
	char ldir[400];
	snprintf(ldir, sizeof(ldir), "%s/leader", g_dir);
	struct sl_log *l = open_at("leader", 1 << 20, NULL, NULL, false);
	for (uint32_t r = 0; r < 4; r++) {
		append_n(l, 1 + r, 0, 10);
		commit(l);
	}
	struct sl_log_view *v;
	size_t len;
	cr_assert_eq(sl_log_view_open(ldir, &v), 0);
	int n = sl_log_view_read_raw(v, 0, sl_log_durable(l), UINT32_MAX, buf, cap, &len, next);
	cr_assert_eq(n, 4, "four batches: %d", n);
	cr_assert_eq(*next, 40);
	/* Only from a batch start. */
	size_t l2;
	uint64_t n2;
	cr_assert_eq(sl_log_view_read_raw(v, 5, 40, UINT32_MAX, buf + len, cap - len, &l2, &n2),
	             -EINVAL);
	cr_assert_eq(sl_log_view_read_raw(v, 10, 40, 1, buf + len, cap - len, &l2, &n2), 1);
	cr_assert_eq(n2, 20, "at least one batch whatever max_bytes");
	cr_assert_eq(sl_log_view_read_raw(v, 10, 40, UINT32_MAX, buf + len, 64, &l2, &n2),
	             -ENOBUFS);
	sl_log_view_close(v);
	*lp = l;
	return len;
}

static void assert_nothing_appended(struct sl_log *f, uint64_t end)
{
	cr_assert_eq(sl_log_end(f), end);
	cr_assert_not(sl_log_busy(f), "nothing buffered");
}

Test(replica, raw_append_refuses_bad_crc_gap_overlap_misaligned)
{
	uint8_t buf[16384], bad[16384];
	uint64_t next, end;
	struct sl_log *l;
	size_t len = leader_bytes(&l, buf, sizeof(buf), &next);
	struct sl_log *f = open_at("follower", 1 << 20, NULL, NULL, true);
	/* The batches' spans, from their headers. */
	size_t span0 = sl_batch_span_at(buf);

	/* A bad checksum in the last batch: the first three are not taken
	 * either. */
	memcpy(bad, buf, len);
	bad[len - 9] ^= 0x40;
	cr_assert_eq(sl_log_append_raw(f, bad, len, &end), -SL_ECORRUPT);
	assert_nothing_appended(f, 0);
	/* A gap: starting at the second batch. */
	cr_assert_eq(sl_log_append_raw(f, buf + span0, len - span0, &end), -EINVAL);
	assert_nothing_appended(f, 0);
	/* Not whole batches (cut inside the last). */
	cr_assert_eq(sl_log_append_raw(f, buf, len - 8, &end), -SL_ECORRUPT);
	assert_nothing_appended(f, 0);
	/* Misaligned: 4 bytes between the first and second batch. */
	memcpy(bad, buf, span0);
	memset(bad + span0, 0xee, 4);
	memcpy(bad + span0 + 4, buf + span0, len - span0);
	memset(bad + len + 4, 0, 4);
	cr_assert_eq(sl_log_append_raw(f, bad, len + 8, &end), -SL_ECORRUPT);
	assert_nothing_appended(f, 0);
	/* Non-zero padding is refused too (a segment never holds it). */
	size_t hl = SL_LOG_BATCH_HDR + sl_get_le32(buf + SL_BATCH_LEN);
	if (hl < span0) {
		memcpy(bad, buf, len);
		bad[hl] = 1;
		cr_assert_eq(sl_log_append_raw(f, bad, len, &end), -SL_ECORRUPT);
		assert_nothing_appended(f, 0);
	}
	/* The first batch, then an overlap (the first two again). */
	cr_assert_eq(sl_log_append_raw(f, buf, span0, &end), (int)span0);
	cr_assert_eq(end, 10);
	commit(f);
	size_t span1 = sl_batch_span_at(buf + span0);
	cr_assert_eq(sl_log_append_raw(f, buf, span0 + span1, &end), -EINVAL);
	assert_nothing_appended(f, 10);
	/* The rest continues it. */
	cr_assert_eq(sl_log_append_raw(f, buf + span0, len - span0, &end), (int)(len - span0));
	cr_assert_eq(end, 40);
	commit(f);
	cr_assert_eq(sl_log_durable(f), 40);
	sl_log_close(f);
	sl_log_close(l);
}

Test(replica, own_appends_and_raw_appends_mix_in_order)
{
	uint8_t buf[16384];
	uint64_t next, end, off;
	struct sl_log *l;
	size_t len = leader_bytes(&l, buf, sizeof(buf), &next);
	struct sl_log *f = open_at("follower", 1 << 20, NULL, NULL, true);
	size_t span0 = sl_batch_span_at(buf);
	cr_assert_eq(sl_log_append_raw(f, buf, span0, &end), (int)span0);
	/* Own events after raw ones in the same group: sealed by the log. */
	uint8_t ev[256];
	uint32_t elen = make_event(ev, 9, 0);
	cr_assert_eq(sl_log_append(f, 9, 1, 0, ev, elen, &off), 0);
	cr_assert_eq(off, 10);
	/* Raw after own: not in the same group; the leader's next batch now
	 * starts at 10 but the log ends at 11: refused as an overlap. */
	cr_assert_eq(sl_log_append_raw(f, buf + span0, len - span0, &end), -EINVAL);
	commit(f);
	cr_assert_eq(sl_log_durable(f), 11);
	struct sl_log_reader *rd;
	struct sl_log_record rec;
	cr_assert_eq(sl_log_reader_open(f, 0, &rd), 0);
	uint64_t n = 0;
	int ret;
	while ((ret = sl_log_reader_next(rd, sl_log_durable(f), &rec)) == 1)
		n++;
	cr_assert_eq(ret, 0, "%s", sl_log_reader_error(rd));
	cr_assert_eq(n, 11);
	cr_assert_eq(rec.producer_id, 9);
	sl_log_reader_close(rd);
	sl_log_close(f);
	sl_log_close(l);
}

/* ---- leader epochs ------------------------------------------------------- */

#include "log/epochs_format.h"

static struct sl_epochs *load_epochs(void)
{
	struct sl_epochs *e;
	char err[400];
	int ret = sl_epochs_load(g_dir, &e, err, sizeof(err));
	cr_assert_eq(ret, 0, "load: %s", err);
	return e;
}

Test(replica, epochs_append_load_truncate_end_of)
{
	struct sl_epochs *e = load_epochs(); /* missing file: empty */
	uint64_t end;
	uint32_t found;
	cr_assert_eq(sl_epochs_count(e), 0);
	cr_assert_null(sl_epochs_last(e));
	cr_assert_eq(sl_epochs_end_of(e, 5, 100, &end, &found), -ENOENT);
	cr_assert_eq(sl_epochs_append(e, 1, 0), 0);
	cr_assert_eq(sl_epochs_append(e, 3, 40), 0);
	cr_assert_eq(sl_epochs_append(e, 4, 40), 0, "an epoch that wrote nothing");
	cr_assert_eq(sl_epochs_append(e, 7, 90), 0);
	cr_assert_eq(sl_epochs_append(e, 7, 95), -EINVAL, "epochs must increase");
	cr_assert_eq(sl_epochs_append(e, 8, 80), -EINVAL, "starts must not decrease");
	sl_epochs_free(e);
	e = load_epochs();
	cr_assert_eq(sl_epochs_count(e), 4);
	cr_assert_eq(sl_epochs_last(e)->epoch, 7);
	cr_assert_eq(sl_epochs_last(e)->start, 90);
	/* KIP-101: the largest epoch <= asked, ended by the next one's start. */
	cr_assert_eq(sl_epochs_end_of(e, 1, 120, &end, &found), 0);
	cr_assert(found == 1 && end == 40);
	cr_assert_eq(sl_epochs_end_of(e, 2, 120, &end, &found), 0);
	cr_assert(found == 1 && end == 40, "epoch 2 unknown: epoch 1's end");
	cr_assert_eq(sl_epochs_end_of(e, 3, 120, &end, &found), 0);
	cr_assert(found == 3 && end == 40);
	cr_assert_eq(sl_epochs_end_of(e, 6, 120, &end, &found), 0);
	cr_assert(found == 4 && end == 90);
	cr_assert_eq(sl_epochs_end_of(e, 9, 120, &end, &found), 0);
	cr_assert(found == 7 && end == 120, "the last epoch ends at the log's end");
	cr_assert_eq(sl_epochs_end_of(e, 0, 120, &end, &found), -ENOENT);
	/* Truncation drops the epochs that start at or after it, durably. */
	cr_assert_eq(sl_epochs_truncate_from(e, 40), 0);
	sl_epochs_free(e);
	e = load_epochs();
	cr_assert_eq(sl_epochs_count(e), 1);
	cr_assert_eq(sl_epochs_last(e)->epoch, 1);
	cr_assert_eq(sl_epochs_append(e, 2, 41), 0);
	sl_epochs_free(e);
}

/* The format's bytes, spelled out: a change to the layout fails here. */
static const uint8_t golden_epochs[] = {
    0x53, 0x4c, 0x45, 0x31, /* 'SLE1' */
    0,    0,    0,    0,    /* crc32c, filled below from the known answer */
    2,    0,    0,    0,    /* two entries */
    1,    0,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, /* epoch 1 from offset 0 */
    3,    0,    0,    0,    0x10, 0x27, 0, 0, 0, 0, 0, 0, /* epoch 3 from 10000 */
};

Test(replica, epochs_golden_bytes)
{
	struct sl_epochs *e = load_epochs();
	cr_assert_eq(sl_epochs_append(e, 1, 0), 0);
	cr_assert_eq(sl_epochs_append(e, 3, 10000), 0);
	sl_epochs_free(e);
	char path[400];
	uint8_t got[64];
	snprintf(path, sizeof(path), "%s/leader-epochs", g_dir);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	ssize_t n = read(fd, got, sizeof(got));
	close(fd);
	cr_assert_eq(n, (ssize_t)sizeof(golden_epochs));
	uint8_t want[sizeof(golden_epochs)];
	memcpy(want, golden_epochs, sizeof(want));
	sl_put_le32(want + SL_EPOCHS_CRC,
	            sl_crc32c(0, want + SL_EPOCHS_CRC_FROM, sizeof(want) - SL_EPOCHS_CRC_FROM));
	cr_assert_eq(memcmp(got, want, sizeof(want)), 0, "leader-epochs bytes changed");
	cr_assert_eq(sl_get_le32(got + SL_EPOCHS_CRC), 0xfb1b23aeu, "crc32c known answer: %08x",
	             sl_get_le32(got + SL_EPOCHS_CRC));
}

Test(replica, epochs_damaged_file_is_refused)
{
	struct sl_epochs *e = load_epochs();
	cr_assert_eq(sl_epochs_append(e, 1, 0), 0);
	cr_assert_eq(sl_epochs_append(e, 2, 50), 0);
	sl_epochs_free(e);
	char path[400], err[400];
	snprintf(path, sizeof(path), "%s/leader-epochs", g_dir);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	uint8_t b = 9;
	cr_assert_eq(pwrite(fd, &b, 1, SL_EPOCHS_HDR + SL_EPOCHS_ENTRY + SL_EPOCHS_E_START), 1);
	close(fd);
	cr_assert_eq(sl_epochs_load(g_dir, &e, err, sizeof(err)), -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, "leader-epochs"), "names the file: %s", err);
	cr_assert_not_null(strstr(err, "checksum"), "%s", err);
	/* Cut short. */
	cr_assert_eq(truncate(path, SL_EPOCHS_HDR + 4), 0);
	cr_assert_eq(sl_epochs_load(g_dir, &e, err, sizeof(err)), -SL_ECORRUPT);
}

/* ---- recovery of a replicated log ---------------------------------------- */

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

Test(replica, replicated_recovery_cuts_a_damaged_then_valid_tail)
{
	/* Two group commits: the second's write began after the first. */
	struct sl_log *l = open_at("p", 1 << 20, NULL, NULL, false);
	append_n(l, 1, 0, 10);
	commit(l);
	append_n(l, 1, 10, 10);
	commit(l);
	sl_log_close(l);
	char seg[512], dir[400], err[400];
	snprintf(dir, sizeof(dir), "%s/p", g_dir);
	snprintf(seg, sizeof(seg), "%s/00000000000000000000.log", dir);
	flip_byte(seg, SL_LOG_BATCH_HDR + 14); /* inside the first batch */
	/* A plain log refuses it: acked data would be cut. */
	struct sl_log_opts o = {.dir = dir, .segment_bytes = 1 << 20};
	cr_assert_eq(sl_log_open(&o, &l, err, sizeof(err)), -SL_ECORRUPT);
	/* A replica cuts it (the leader sends it again) and goes on there. */
	l = open_at("p", 1 << 20, NULL, NULL, true);
	cr_assert_eq(sl_log_end(l), 0);
	struct sl_log_stats st;
	sl_log_get_stats(l, &st);
	cr_assert_gt(st.recovered_truncated_bytes, 0);
	append_n(l, 2, 0, 5);
	commit(l);
	sl_log_close(l);
	l = open_at("p", 1 << 20, NULL, NULL, true);
	cr_assert_eq(sl_log_end(l), 5, "the cut bytes were zeroed on disk");
	sl_log_close(l);
	/* The plain log now opens too: nothing damaged is left. */
	cr_assert_eq(sl_log_open(&o, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_log_end(l), 5);
	sl_log_close(l);
}

/* ---- truncation (sl_log_truncate) ------------------------------------------ */

#include "log/truncated_format.h"

/* Appends `groups` batches of `per` events each, producer pid0 + g for
 * group g (so each is its own batch), committing after every `commit_every`
 * groups. Batch boundaries are the multiples of `per`. */
static void append_batches(struct sl_log *log, uint64_t pid0, uint32_t groups, uint32_t per,
                           uint32_t commit_every)
{
	for (uint32_t g = 0; g < groups; g++) {
		append_n(log, pid0 + g, 0, per);
		if ((g + 1) % commit_every == 0)
			commit(log);
	}
	commit(log);
}

/* What a log should hold: offset ranges [from, to), each of producer pid
 * from sequence seq0 (the events make_event gives). */
struct span {
	uint64_t from, to, pid, seq0;
};

static int check_record(void *arg, const struct sl_log_record *rec)
{
	const struct span *sp = arg;
	while (rec->offset >= sp->to)
		sp++;
	uint8_t ev[256];
	uint64_t seq = sp->seq0 + (rec->offset - sp->from);
	cr_assert_eq(rec->producer_id, sp->pid, "offset %llu: producer %llu, want %llu",
	             (unsigned long long)rec->offset, (unsigned long long)rec->producer_id,
	             (unsigned long long)sp->pid);
	cr_assert_eq(rec->seq, seq, "offset %llu: seq", (unsigned long long)rec->offset);
	uint32_t len = make_event(ev, sp->pid, seq);
	cr_assert_eq(rec->len, len);
	cr_assert_eq(memcmp(rec->event, ev, len), 0, "offset %llu: bytes",
	             (unsigned long long)rec->offset);
	return 0;
}

/* Reads [from, end) through view v and checks it against the spans. */
static void expect_through(struct sl_log_view *v, const struct span *sp, uint64_t from,
                           uint64_t end)
{
	uint64_t next = from;
	while (from < end) {
		int ret =
		    sl_log_view_read(v, from, end, 1000, 1 << 20, check_record, (void *)sp, &next);
		cr_assert_gt(ret, 0, "view read at %llu: %s", (unsigned long long)from,
		             sl_log_view_strerror(v, ret));
		from = next;
	}
	cr_assert_eq(from, end);
}

/* A fresh view of the folder reads exactly the spans, to the last one's
 * end (where the log ends: the callers check sl_log_end). */
static void expect_view(const char *sub, const struct span *sp, size_t n)
{
	char dir[400];
	struct sl_log_view *v;
	uint64_t end = sp[n - 1].to, next = 0;
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, sub);
	cr_assert_eq(sl_log_view_open(dir, &v), 0);
	expect_through(v, sp, 0, end);
	sl_log_view_close(v);
	/* Each span's first event again, last first, by a fresh view: it
	 * seeks through the segments' indexes instead of reading on. */
	cr_assert_eq(sl_log_view_open(dir, &v), 0);
	for (size_t i = n; i-- > 0;) {
		int ret =
		    sl_log_view_read(v, sp[i].from, end, 1, 1, check_record, (void *)sp, &next);
		cr_assert_eq(ret, 1, "seek to %llu: %s", (unsigned long long)sp[i].from,
		             sl_log_view_strerror(v, ret));
		cr_assert_eq(next, sp[i].from + 1);
	}
	sl_log_view_close(v);
}

static bool file_exists(const char *sub, const char *name)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s/%s", g_dir, sub, name);
	return stat(path, &st) == 0;
}

static off_t file_size(const char *sub, const char *name)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s/%s", g_dir, sub, name);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_size;
}

static void touch(const char *sub, const char *name)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s/%s", g_dir, sub, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
}

/* Segment bases of a folder, ascending. */
static size_t bases_of(const char *sub, uint64_t *out, size_t cap)
{
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/%s", g_dir, sub);
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strlen(de->d_name) == 24 && !strcmp(de->d_name + 20, ".log")) {
			cr_assert_lt(n, cap);
			out[n++] = strtoull(de->d_name, NULL, 10);
		}
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t k = i; k > 0 && out[k - 1] > out[k]; k--) {
			uint64_t t = out[k];
			out[k] = out[k - 1];
			out[k - 1] = t;
		}
	return n;
}

static void truncate_ok(struct sl_log *log, uint64_t offset)
{
	char err[400];
	int ret = sl_log_truncate(log, offset, err, sizeof(err));
	cr_assert_eq(ret, 0, "truncate to %llu: %s (%s)", (unsigned long long)offset,
	             sl_strerror(ret), err);
	cr_assert_eq(sl_log_end(log), offset);
	cr_assert_eq(sl_log_durable(log), offset);
	cr_assert_eq(sl_log_acked(log), offset);
}

Test(replica, truncate_to_the_middle_of_the_last_segment)
{
	struct sl_log *l = open_at("p", 1 << 20, NULL, NULL, false);
	append_batches(l, 1, 3, 10, 1); /* batches at 0, 10, 20 */
	off_t before = file_size("p", "00000000000000000000.log");
	truncate_ok(l, 20);
	struct sl_log_trunc t;
	sl_log_truncation(l, &t);
	cr_assert(t.gen == 1 && t.offset == 20);
	/* The segment ends at the batch of offset 20: nothing of it stays. */
	off_t cut = file_size("p", "00000000000000000000.log");
	cr_assert_lt(cut, before);
	cr_assert_gt(cut, 0);
	struct span want1[] = {{0, 10, 1, 0}, {10, 20, 2, 0}};
	expect_view("p", want1, 2);
	/* Own appends continue at 20, in the same segment. */
	append_n(l, 9, 0, 5);
	commit(l);
	cr_assert_eq(sl_log_durable(l), 25);
	struct span want2[] = {{0, 10, 1, 0}, {10, 20, 2, 0}, {20, 25, 9, 0}};
	expect_view("p", want2, 3);
	sl_log_close(l);
	l = open_at("p", 1 << 20, NULL, NULL, false);
	cr_assert_eq(sl_log_end(l), 25);
	sl_log_truncation(l, &t);
	cr_assert(t.gen == 1 && t.offset == 20, "the record is read back");
	sl_log_close(l);
	expect_view("p", want2, 3);
}

Test(replica, truncate_to_an_earlier_segment_drops_later_segments_indexes_checkpoints)
{
	/* 8 KiB segments, ~130-byte events, batches of 10: rolls every
	 * ~60 events. */
	struct sl_log *l = open_at("p", 8192, NULL, NULL, false);
	append_batches(l, 1, 30, 10, 2);
	uint64_t b[64];
	size_t n = bases_of("p", b, 64);
	cr_assert_geq(n, 4, "segments: %zu", n);
	cr_assert(b[1] > 30, "offset 20 is well inside the first segment (the next starts at %llu)",
	          (unsigned long long)b[1]);
	/* Producer checkpoints at each segment's base, as rolls leave them
	 * (the log never reads them: names are what counts here). */
	char name[64];
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%020llu.dedup", (unsigned long long)b[i]);
		touch("p", name);
	}
	touch("p", "00000000000000000020.dedup"); /* at the cut: stays */
	cr_assert(file_exists("p", "00000000000000000000.idx"), "sealed segments have indexes");
	truncate_ok(l, 20);
	uint64_t b2[64];
	cr_assert_eq(bases_of("p", b2, 64), 1, "later segments deleted");
	cr_assert_eq(b2[0], 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%020llu.idx", (unsigned long long)b[i]);
		cr_assert_not(file_exists("p", name), "%s left", name);
		snprintf(name, sizeof(name), "%020llu.dedup", (unsigned long long)b[i]);
		cr_assert_eq(file_exists("p", name), b[i] <= 20, "%s", name);
	}
	cr_assert(file_exists("p", "00000000000000000020.dedup"));
	struct span want1[] = {{0, 10, 1, 0}, {10, 20, 2, 0}};
	expect_view("p", want1, 2);
	/* Appends continue at 20 and roll again as a segment fills (the cut
	 * segment is sealed again with an index of its own). */
	append_batches(l, 50, 20, 10, 2);
	cr_assert_eq(sl_log_durable(l), 220);
	cr_assert(file_exists("p", "00000000000000000000.idx"));
	cr_assert_geq(bases_of("p", b2, 64), 3, "rolled again");
	struct span want3[22];
	memcpy(want3, want1, sizeof(want1));
	for (uint32_t g = 0; g < 20; g++)
		want3[2 + g] = (struct span){20 + g * 10, 30 + g * 10, 50 + g, 0};
	expect_view("p", want3, 22);
	sl_log_close(l);
	l = open_at("p", 8192, NULL, NULL, false);
	cr_assert_eq(sl_log_end(l), 220);
	sl_log_close(l);
	expect_view("p", want3, 22);
}

/* A view that stays open across a cut (the reader thread's, a
 * projection's) had read ahead past where it was allowed to read, listed
 * segments the cut deleted and noted batch positions past the cut; the
 * log is then written again past the cut with other batches. Told of the
 * cut, it reads the new log; without sl_log_view_follow_cuts (or without
 * the bump) it served the old bytes where the new batches start at the
 * same offsets (harness: consumers and a projection read events a cut had
 * taken back; a leader that was cut and grew again served its followers
 * nothing valid past the cut). */
Test(replica, a_view_kept_across_a_cut_reads_what_was_written_again)
{
	struct sl_log *l = open_at("p", 8192, NULL, NULL, false);
	append_batches(l, 1, 30, 10, 2); /* 300 events, several segments */
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/p", g_dir);
	_Atomic uint64_t cuts = 0;
	struct sl_log_view *v, *raw;
	cr_assert_eq(sl_log_view_open(dir, &v), 0);
	cr_assert_eq(sl_log_view_open(dir, &raw), 0);
	sl_log_view_follow_cuts(v, &cuts);
	sl_log_view_follow_cuts(raw, &cuts);
	/* Readers were shown 20 (reading ahead past it); the leader's side
	 * copied the whole log to a follower (every segment listed). */
	struct span old[30];
	for (uint32_t g = 0; g < 30; g++)
		old[g] = (struct span){g * 10, g * 10 + 10, 1 + g, 0};
	expect_through(v, old, 0, 20);
	size_t cap = 1 << 20, len;
	uint8_t *buf = malloc(cap);
	uint64_t next;
	cr_assert_gt(sl_log_view_read_raw(raw, 0, 300, UINT32_MAX, buf, cap, &len, &next), 0);
	cr_assert_eq(next, 300, "raw read of the whole log");
	truncate_ok(l, 20);
	atomic_fetch_add_explicit(&cuts, 1, memory_order_release);
	/* Told again (the reader once did at every request): the cut it has
	 * not acted on yet still counts. */
	sl_log_view_follow_cuts(v, &cuts);
	sl_log_view_follow_cuts(raw, &cuts);
	append_batches(l, 50, 20, 10, 2); /* other producers from 20 on */
	cr_assert_eq(sl_log_durable(l), 220);
	struct span want[22];
	want[0] = old[0];
	want[1] = old[1];
	for (uint32_t g = 0; g < 20; g++)
		want[2 + g] = (struct span){20 + g * 10, 30 + g * 10, 50 + g, 0};
	expect_through(v, want, 20, 220);
	/* The raw side: what it copies now is the new log, byte for byte
	 * what a fresh view copies. */
	size_t len2;
	uint8_t *buf2 = malloc(cap);
	struct sl_log_view *fresh;
	cr_assert_eq(sl_log_view_open(dir, &fresh), 0);
	int n = sl_log_view_read_raw(raw, 20, 220, UINT32_MAX, buf, cap, &len, &next);
	cr_assert_gt(n, 0, "raw after the cut: %s", sl_log_view_strerror(raw, n));
	uint64_t next2;
	cr_assert_eq(sl_log_view_read_raw(fresh, 20, 220, UINT32_MAX, buf2, cap, &len2, &next2), n);
	cr_assert(len == len2 && next == next2 && !memcmp(buf, buf2, len),
	          "the kept view copies the new batches");
	sl_log_view_close(fresh);
	sl_log_view_close(raw);
	sl_log_view_close(v);
	free(buf);
	free(buf2);
	sl_log_close(l);
}

/* The history of a leader the fault harness saw serve nothing past its
 * cut: a replica copies its leader, leads an epoch of its own (its own
 * batches, read raw by its followers through its reader's view), follows
 * a new leader that does not hold them (cut), copies that leader's
 * batches, and leads again with events of its own. Its kept view copies
 * the new log from anywhere past the cut, as a fresh view does. */
Test(replica, a_replica_cut_then_copied_then_leading_serves_its_new_log)
{
	char ldir[400], xdir[400];
	snprintf(ldir, sizeof(ldir), "%s/lead", g_dir);
	snprintf(xdir, sizeof(xdir), "%s/x", g_dir);
	struct sl_log *l = open_at("lead", 1 << 20, NULL, NULL, true);
	struct sl_log *x = open_at("x", 1 << 20, NULL, NULL, true);
	append_batches(l, 1, 20, 10, 2);
	replicate(l, ldir, x, 4096);
	cr_assert_eq(sl_log_end(x), 200);
	append_batches(x, 100, 6, 10, 1); /* its own term: 200..260 */
	_Atomic uint64_t cuts = 0;
	struct sl_log_view *v;
	cr_assert_eq(sl_log_view_open(xdir, &v), 0);
	sl_log_view_follow_cuts(v, &cuts);
	size_t cap = 1 << 20, len, len2;
	uint8_t *buf = malloc(cap), *buf2 = malloc(cap);
	uint64_t next, next2;
	cr_assert_gt(sl_log_view_read_raw(v, 0, 260, UINT32_MAX, buf, cap, &len, &next), 0);
	cr_assert_eq(next, 260);
	truncate_ok(x, 200);
	atomic_fetch_add_explicit(&cuts, 1, memory_order_release);
	append_batches(l, 200, 10, 10, 2); /* the new leader's 200..300 */
	replicate(l, ldir, x, 4096);
	cr_assert_eq(sl_log_end(x), 300);
	append_n(x, 900, 0, 1); /* leading again: 300, 301 */
	commit(x);
	append_n(x, 901, 0, 1);
	commit(x);
	cr_assert_eq(sl_log_durable(x), 302);
	struct sl_log_view *fresh;
	cr_assert_eq(sl_log_view_open(xdir, &fresh), 0);
	uint64_t froms[] = {300, 200, 250, 301};
	for (size_t k = 0; k < SL_ARRAY_LEN(froms); k++) {
		int n = sl_log_view_read_raw(v, froms[k], 302, UINT32_MAX, buf, cap, &len, &next);
		cr_assert_gt(n, 0, "kept view from %llu: %s", (unsigned long long)froms[k],
		             sl_log_view_strerror(v, n));
		cr_assert_eq(sl_log_view_read_raw(fresh, froms[k], 302, UINT32_MAX, buf2, cap,
		                                  &len2, &next2),
		             n);
		cr_assert(len == len2 && next == next2 && next == 302 && !memcmp(buf, buf2, len),
		          "from %llu: the kept view copies what a fresh one does",
		          (unsigned long long)froms[k]);
	}
	sl_log_view_close(fresh);
	sl_log_view_close(v);
	free(buf);
	free(buf2);
	sl_log_close(x);
	sl_log_close(l);
}

Test(replica, truncate_refuses_inside_a_batch_beyond_the_end_and_while_busy)
{
	char err[400];
	struct sl_log *l = open_at("p", 1 << 20, NULL, NULL, false);
	append_batches(l, 1, 3, 10, 1);
	cr_assert_eq(sl_log_truncate(l, 15, err, sizeof(err)), -EINVAL);
	cr_assert_not_null(strstr(err, "inside the batch"), "%s", err);
	cr_assert_eq(sl_log_truncate(l, 31, err, sizeof(err)), -EINVAL);
	cr_assert_eq(sl_log_truncate(l, UINT64_MAX, err, sizeof(err)), -EINVAL);
	cr_assert_eq(sl_log_end(l), 30, "nothing cut");
	cr_assert_eq(sl_log_truncate(l, 30, err, sizeof(err)), 0, "at the end: nothing to do");
	struct sl_log_trunc t;
	sl_log_truncation(l, &t);
	cr_assert_eq(t.gen, 0, "and no record written");
	cr_assert_not(file_exists("p", SL_TRUNC_FILE));
	/* Bytes buffered: the owner waits until the log is idle. */
	append_n(l, 7, 0, 3);
	cr_assert_eq(sl_log_truncate(l, 10, err, sizeof(err)), -EBUSY);
	/* A group in flight (written, its fdatasync queued): still busy. */
	cr_assert_eq(sl_log_flush(l, &g_ring, 7), 1);
	cr_assert_geq(io_uring_submit(&g_ring), 1);
	cr_assert_eq(sl_log_truncate(l, 10, err, sizeof(err)), -EBUSY);
	commit(l);
	cr_assert_eq(sl_log_end(l), 33);
	struct span want[] = {{0, 10, 1, 0}, {10, 20, 2, 0}, {20, 30, 3, 0}, {30, 33, 7, 0}};
	expect_view("p", want, 4);
	truncate_ok(l, 10);
	sl_log_close(l);
}

Test(replica, truncate_journaled_refuses_what_the_journal_has_not_acked)
{
	char err[400];
	struct sl_journal *j = open_journal(0);
	struct sl_log *l = open_at("p", 1 << 20, j, NULL, false);
	append_batches(l, 1, 3, 10, 1);
	append_n(l, 7, 0, 3);
	cr_assert_eq(sl_log_flush(l, &g_ring, 7), 3, "handed to the journal");
	cr_assert_eq(sl_log_truncate(l, 10, err, sizeof(err)), -EBUSY);
	/* The journal's frame, written and its sync queued: still busy. */
	cr_assert_eq(sl_journal_commit(j, &g_ring, 42, journal_cb, NULL), 1);
	cr_assert_geq(io_uring_submit(&g_ring), 1);
	cr_assert_eq(sl_log_truncate(l, 10, err, sizeof(err)), -EBUSY);
	struct io_uring_cqe *cqe;
	cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
	cr_assert_eq(sl_journal_on_cqe(j, cqe->res, journal_cb, NULL), 1);
	io_uring_cqe_seen(&g_ring, cqe);
	cr_assert_eq(sl_log_acked(l), 33);
	cr_assert_lt(sl_log_durable(l), 33, "the bytes wait for their segment write");
	/* Acked; its bytes may wait for the segment: truncate writes them. */
	truncate_ok(l, 20);
	struct span want[] = {{0, 10, 1, 0}, {10, 20, 2, 0}};
	expect_view("p", want, 2);
	sl_log_close(l);
	sl_journal_destroy(j);
}

/* A follower that replicated `leader`; a new leader that shares the first
 * `keep` offsets with it and then went on with its own events; the
 * follower truncates to `keep` and fetches again: both logs read back the
 * same batches, byte for byte. */
static void raw_after_truncate_case(bool journaled)
{
	char ldir[400], ndir[400];
	snprintf(ldir, sizeof(ldir), "%s/leader", g_dir);
	snprintf(ndir, sizeof(ndir), "%s/newleader", g_dir);
	struct sl_log *l = open_at("leader", 8192, NULL, NULL, false);
	uint64_t end = write_leader(l);
	struct sl_journal *j = journaled ? open_journal(0) : NULL;
	struct sl_log *f = open_at("follower", 8192, j, NULL, true);
	replicate(l, ldir, f, 3000);
	cr_assert_eq(sl_log_end(f), end);

	/* The new leader: the old leader's batches up to a batch boundary
	 * past the second segment, then events of its own. */
	struct sl_log_view *v;
	size_t cap = 1 << 20, len;
	uint8_t *buf = malloc(cap);
	uint64_t keep;
	cr_assert_eq(sl_log_view_open(ldir, &v), 0);
	cr_assert_gt(sl_log_view_read_raw(v, 0, end, 17000, buf, cap, &len, &keep), 0);
	sl_log_view_close(v);
	cr_assert(keep > 0 && keep < end);
	struct sl_log *nl = open_at("newleader", 8192, NULL, NULL, true);
	uint64_t nend;
	for (size_t at = 0; at < len;) {
		int took = sl_log_append_raw(nl, buf + at, len - at, &nend);
		cr_assert_geq(took, 0);
		at += (size_t)took;
		commit(nl);
	}
	cr_assert_eq(sl_log_end(nl), keep);
	/* One group of its own larger than what its segment has left: it
	 * rolls right at keep, and every batch of that group has unit_start
	 * 0, so only the batch before keep (whose unit_start is not 0: it
	 * is not the first group of its segment) tells a follower to roll. */
	for (uint32_t g = 0; g < 9; g++)
		append_n(nl, 30 + g, 0, 7);
	commit(nl);
	append_batches(nl, 40, 30, 7, 3);
	uint64_t nbases[64], fb[64];
	size_t n_nb = bases_of("newleader", nbases, 64), k = 0;
	while (k < n_nb && nbases[k] != keep)
		k++;
	cr_assert_lt(k, n_nb, "the new leader rolled at %llu", (unsigned long long)keep);

	truncate_ok(f, keep);
	replicate(nl, ndir, f, 3000);
	cr_assert_eq(sl_log_end(f), sl_log_end(nl));
	size_t n_fb = bases_of("follower", fb, 64);
	k = 0;
	while (k < n_fb && fb[k] != keep)
		k++;
	cr_assert_lt(k, n_fb, "the follower rolled where its new leader did (%llu)",
	             (unsigned long long)keep);
	/* And own appends after the raw ones. */
	uint64_t fend = sl_log_end(f);
	append_n(f, 99, 0, 4);
	commit(f);
	cr_assert_eq(sl_log_acked(f), fend + 4);
	truncate_ok(f, fend);

	/* Both read back the same batches (segment boundaries may differ,
	 * log.h: the replica's roll rule). */
	uint8_t *a = malloc(cap), *b = malloc(cap);
	size_t la, lb;
	uint64_t na, nb;
	struct sl_log_view *va, *vb;
	char fdir[400];
	snprintf(fdir, sizeof(fdir), "%s/follower", g_dir);
	cr_assert_eq(sl_log_view_open(ndir, &va), 0);
	cr_assert_eq(sl_log_view_open(fdir, &vb), 0);
	for (uint64_t at = 0; at < fend; at = na) {
		cr_assert_gt(sl_log_view_read_raw(va, at, fend, 1 << 19, a, cap, &la, &na), 0);
		cr_assert_gt(sl_log_view_read_raw(vb, at, fend, 1 << 19, b, cap, &lb, &nb), 0,
		             "follower at %llu: %s", (unsigned long long)at, sl_log_view_error(vb));
		cr_assert_eq(na, nb);
		cr_assert_eq(la, lb);
		cr_assert_eq(memcmp(a, b, la), 0, "batches from %llu differ",
		             (unsigned long long)at);
	}
	sl_log_view_close(va);
	sl_log_view_close(vb);
	free(a);
	free(b);
	free(buf);
	sl_log_close(f);
	if (j)
		sl_journal_destroy(j);
	sl_log_close(nl);
	sl_log_close(l);
}

Test(replica, truncate_then_raw_appends_from_a_new_leader)
{
	raw_after_truncate_case(false);
}

Test(replica, truncate_then_raw_appends_from_a_new_leader_journaled)
{
	raw_after_truncate_case(true);
}

/* ---- truncation and crashes ------------------------------------------------ */

/*
 * In a child (its own ring): log "p" (journaled when asked, 1 MiB
 * segments) gets producers 1, 2, 3 as batches [0,10) [10,20) [20,30), each
 * its own group commit; then for each step of `plan`: a truncation to
 * `to`, then `add` events of producer `pid` in one group commit. The child
 * dies without closing anything (a kill -9), its journal's deferred
 * segment writes never made: what they hold is only in the journal.
 */
struct step {
	uint64_t to, pid;
	uint32_t add;
};

static void child_truncates_and_dies(bool journaled, const struct step *plan, size_t n)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char err[400];
		if (io_uring_queue_init(64, &g_ring, 0) < 0)
			_exit(4);
		struct sl_journal *j = journaled ? open_journal(0) : NULL;
		struct sl_log *l = open_at("p", 1 << 20, j, NULL, false);
		append_batches(l, 1, 3, 10, 1);
		for (size_t i = 0; i < n; i++) {
			if (sl_log_truncate(l, plan[i].to, err, sizeof(err)) != 0 ||
			    sl_log_end(l) != plan[i].to)
				_exit(3);
			if (plan[i].add) {
				append_n(l, plan[i].pid, 0, plan[i].add);
				commit(l);
			}
		}
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: %d", st);
}

/* Recovery as the server does it: the journals read back, a journal for
 * this run numbered after them, the log opened with the replay. keep: the
 * journal files stay for the next start (as when another partition was
 * refused). */
static void reopen_expect(bool journaled, bool keep, const struct span *want, size_t n)
{
	char err[400];
	struct sl_jrec *rec;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	struct sl_journal *j = journaled ? open_journal(sl_jrec_next_seq(rec)) : NULL;
	struct sl_log *l = open_at("p", 1 << 20, j, rec, false);
	cr_assert_eq(sl_log_end(l), want[n - 1].to, "the log ends at %llu",
	             (unsigned long long)sl_log_end(l));
	cr_assert_eq(sl_jrec_finish(rec, g_dir, keep, err, sizeof(err)), 0, "%s", err);
	sl_log_close(l);
	if (j)
		sl_journal_destroy(j);
	expect_view("p", want, n);
}

Test(replica, truncate_then_crash_plain)
{
	struct step plan[] = {{10, 0, 0}};
	child_truncates_and_dies(false, plan, 1);
	struct span want[] = {{0, 10, 1, 0}};
	reopen_expect(false, false, want, 1);
}

Test(replica, truncate_append_then_crash_plain)
{
	struct step plan[] = {{10, 9, 5}};
	child_truncates_and_dies(false, plan, 1);
	struct span want[] = {{0, 10, 1, 0}, {10, 15, 9, 0}};
	reopen_expect(false, false, want, 2);
}

Test(replica, truncate_then_crash_journaled_resurrects_nothing)
{
	struct step plan[] = {{10, 0, 0}};
	child_truncates_and_dies(true, plan, 1);
	/* The journal still holds [0, 30), written before the truncation. */
	char err[400];
	struct sl_jrec *rec;
	uint64_t files, frames, chunks;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	sl_jrec_counts(rec, &files, &frames, &chunks);
	cr_assert_eq(chunks, 3, "the old chunks are there to be dropped");
	sl_jrec_free(rec);
	struct span want[] = {{0, 10, 1, 0}};
	reopen_expect(true, true, want, 1);
	/* The files were kept: a second start drops them again. */
	reopen_expect(true, false, want, 1);
}

Test(replica, truncate_append_then_crash_journaled_replays_only_the_new)
{
	struct step plan[] = {{10, 9, 5}};
	child_truncates_and_dies(true, plan, 1);
	char err[400];
	struct sl_jrec *rec;
	cr_assert_eq(sl_jrec_load(g_dir, &rec, err, sizeof(err)), 0, "%s", err);
	struct sl_journal *j = open_journal(sl_jrec_next_seq(rec));
	struct sl_log *l = open_at("p", 1 << 20, j, rec, false);
	struct sl_log_stats st;
	sl_log_get_stats(l, &st);
	cr_assert_gt(st.recovered_replayed_batches, 0,
	             "the events after the truncation were in the journal only");
	cr_assert_eq(sl_log_end(l), 15);
	cr_assert_eq(sl_jrec_finish(rec, g_dir, true, err, sizeof(err)), 0, "%s", err);
	/* Appends go on after the replayed ones (this run's generation). */
	append_n(l, 11, 0, 5);
	commit(l);
	sl_log_close(l);
	sl_journal_destroy(j);
	struct span want[] = {{0, 10, 1, 0}, {10, 15, 9, 0}, {15, 20, 11, 0}};
	reopen_expect(true, false, want, 3);
}

Test(replica, truncate_twice_then_crash_journaled)
{
	/* [20,30) of producer 8 written after the first truncation, cut by the
	 * second: two generations of chunks beyond what the log keeps. */
	struct step plan[] = {{20, 8, 10}, {20, 9, 5}};
	child_truncates_and_dies(true, plan, 2);
	struct span want[] = {{0, 10, 1, 0}, {10, 20, 2, 0}, {20, 25, 9, 0}};
	reopen_expect(true, false, want, 3);
}

/* ---- the truncation record -------------------------------------------------- */

/* The format's bytes, spelled out: a change to the layout fails here. */
static const uint8_t golden_trunc[] = {
    0x53, 0x4c, 0x54, 0x31,             /* 'SLT1' */
    0,    0,    0,    0,                /* crc32c, filled below */
    2,    0,    0,    0,    0, 0, 0, 0, /* generation 2 */
    0x10, 0x27, 0,    0,    0, 0, 0, 0, /* offset 10000 */
};

Test(replica, truncation_record_golden_bytes_and_damage_refused)
{
	uint8_t want[sizeof(golden_trunc)], got[64];
	char err[400], path[500];
	struct sl_log_trunc t = {.gen = 2, .offset = 10000}, back;
	memcpy(want, golden_trunc, sizeof(want));
	sl_put_le32(want + SL_TRUNC_CRC,
	            sl_crc32c(0, want + SL_TRUNC_CRC_FROM, sizeof(want) - SL_TRUNC_CRC_FROM));
	cr_assert_eq(sl_log_trunc_encode(&t, NULL, 0), sizeof(want));
	cr_assert_eq(sl_log_trunc_encode(&t, got, sizeof(got)), sizeof(want));
	cr_assert_eq(memcmp(got, want, sizeof(want)), 0, "truncated bytes changed");
	cr_assert_eq(sl_get_le32(got + SL_TRUNC_CRC), 0x074ccd67u, "crc32c known answer: %08x",
	             sl_get_le32(got + SL_TRUNC_CRC));
	cr_assert_eq(sl_log_trunc_decode(got, sizeof(want), &back, err, sizeof(err)), 0);
	cr_assert(back.gen == 2 && back.offset == 10000);
	cr_assert_eq(sl_log_trunc_decode(got, sizeof(want) - 1, &back, err, sizeof(err)),
	             -SL_ECORRUPT);

	/* What a truncation writes, at generation 1 then 2. */
	struct sl_log *l = open_at("p", 1 << 20, NULL, NULL, false);
	append_batches(l, 1, 3, 10, 1);
	truncate_ok(l, 20);
	truncate_ok(l, 10);
	sl_log_close(l);
	snprintf(path, sizeof(path), "%s/p/%s", g_dir, SL_TRUNC_FILE);
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, got, sizeof(got)), SL_TRUNC_SIZE);
	cr_assert_eq(sl_log_trunc_decode(got, SL_TRUNC_SIZE, &back, err, sizeof(err)), 0);
	cr_assert(back.gen == 2 && back.offset == 10);
	/* A damaged record refuses the partition, naming the file. */
	uint8_t x = got[SL_TRUNC_GEN] ^ 4;
	cr_assert_eq(pwrite(fd, &x, 1, SL_TRUNC_GEN), 1);
	close(fd);
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/p", g_dir);
	struct sl_log_opts o = {.dir = dir, .segment_bytes = 1 << 20};
	cr_assert_eq(sl_log_open(&o, &l, err, sizeof(err)), -SL_ECORRUPT);
	cr_assert_not_null(strstr(err, SL_TRUNC_FILE), "names the file: %s", err);
	cr_assert_not_null(strstr(err, "checksum"), "%s", err);
}

/* ---- a follower's partition cut where its new leader's log differs ---------- */

static void count_unwaited(void *arg, const struct sl_ack_ref *ref)
{
	uint64_t *v = arg;
	cr_assert_geq(ref->offset, v[1], "a ref below the cut taken out");
	v[0]++;
}

/*
 * sl_partition_truncate: the log, the epoch file and its copy end at the cut;
 * the producer sequences of the cut events are forgotten (a resend of one is
 * new again, not answered as a duplicate of an event that is gone) while the
 * kept ones still answer as duplicates; acks waiting past the cut are handed
 * back, those below stay; a cut below what readers were shown is refused.
 */
Test(replica, partition_truncate_forgets_cut_sequences)
{
	char path[400], err[400];
	struct sl_producers *prods;
	struct sl_topics topics;
	snprintf(path, sizeof(path), "%s/producers", g_dir);
	cr_assert_eq(sl_producers_open(path, &prods, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/data", g_dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	struct sl_topic_spec spec = {.name = "events",
	                             .n_parts = 1,
	                             .durability = SL_LOG_FSYNC,
	                             .replicas = 3,
	                             .acks = SL_REPL_ACKS_QUORUM};
	cr_assert_eq(sl_topics_create(&spec, 1, 1, path, prods, &topics, err, sizeof(err)), 0, "%s",
	             err);
	struct sl_partition *p = &topics.v[0].parts[0];
	struct sl_prepl rp = {0};
	pthread_mutex_init(&rp.mu, NULL);
	cr_assert_eq(sl_epochs_load(p->dir, &rp.epoch_file, err, sizeof(err)), 0, "%s", err);
	p->repl = &rp;
	/* Epoch 1 wrote offsets 0..5, epoch 2 (this node, leading) 6..9. */
	cr_assert_eq(sl_epochs_append(rp.epoch_file, 1, 0), 0);
	cr_assert_eq(sl_epochs_append(rp.epoch_file, 2, 6), 0);
	rp.epochs[0] = 1, rp.epoch_starts[0] = 0;
	rp.epochs[1] = 2, rp.epoch_starts[1] = 6;
	rp.n_epochs = 2;
	uint8_t ev[256];
	for (uint64_t seq = 0; seq < 10; seq++) {
		struct sl_ack_ref ref = {.base_seq = seq};
		if (seq == 6)
			sl_log_set_leader_epoch(p->log, 2);
		uint32_t len = make_event(ev, 7, seq);
		cr_assert_eq(sl_partition_produce(p, 7, 1, seq, 0, ev, len, NULL, &ref), 0);
		cr_assert_eq(ref.offset, seq);
	}
	commit(p->log);
	atomic_store(&p->durable_pub, 4); /* readers saw 0..3 */

	uint64_t counted[2] = {0, 6};
	cr_assert_eq(sl_partition_truncate(p, 3, prods, count_unwaited, counted, err, sizeof(err)),
	             -ERANGE);
	cr_assert_eq(sl_log_end(p->log), 10, "a refused cut cut nothing");
	cr_assert_eq(sl_partition_truncate(p, 6, prods, count_unwaited, counted, err, sizeof(err)),
	             0, "%s", err);
	cr_assert_eq(sl_log_end(p->log), 6);
	cr_assert_eq(atomic_load(&rp.local_end), 6);
	cr_assert_eq(counted[0], 4, "acks waiting for offsets 6..9 handed back");
	cr_assert_eq(sl_partition_waiting(p), 6, "those for 0..5 still wait");
	cr_assert_eq(rp.n_epochs, 1);
	cr_assert_eq(sl_epochs_count(rp.epoch_file), 1);
	cr_assert_eq(sl_epochs_last(rp.epoch_file)->epoch, 1);
	uint64_t off;
	cr_assert_eq(sl_dedup_check(p->dd, 7, 1, 5, &off), SL_DEDUP_DUP);
	cr_assert_eq(off, 5);
	cr_assert_eq(sl_dedup_check(p->dd, 7, 1, 6, &off), SL_DEDUP_NEW,
	             "a cut event is new again");
	/* The epoch file says the same after a reload. */
	sl_epochs_free(rp.epoch_file);
	cr_assert_eq(sl_epochs_load(p->dir, &rp.epoch_file, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl_epochs_count(rp.epoch_file), 1);

	p->repl = NULL;
	sl_epochs_free(rp.epoch_file);
	pthread_mutex_destroy(&rp.mu);
	sl_topics_destroy(&topics);
	sl_producers_close(prods);
}

/* ---- the high watermark (sl_prepl_hw) --------------------------------------- */

/* Three replicas, this node (the leader) first, the followers' reports. */
static void hw_setup(struct sl_prepl *rp, enum sl_repl_acks acks, uint64_t f1, uint64_t f2,
                     uint32_t isr)
{
	memset(rp, 0, sizeof(*rp));
	rp->acks = acks;
	rp->min_insync = 2;
	rp->n_peers = 3;
	rp->self = 0;
	atomic_store(&rp->peers[1].durable, f1);
	atomic_store(&rp->peers[2].durable, f2);
	atomic_store(&rp->isr_mask, isr);
}

/* What readers are shown is what a failover keeps: a majority's end under
 * quorum and under leader too (acks: leader acks ahead of it, at the
 * leader's own end: ack_end, set by the owner); the in-sync set's lowest
 * under all. A leader's HW that was its own end under `leader` (as before)
 * fails the leader case: readers saw events a cut could remove. */
Test(replica, hw_is_a_majority_end_under_quorum_and_leader_the_isr_low_under_all)
{
	/* The leader's own durable end is 100 in every row. */
	static const struct {
		enum sl_repl_acks acks;
		uint64_t f1, f2;
		uint32_t isr;
		uint64_t hw;
		const char *why;
	} rows[] = {
	    {SL_REPL_ACKS_QUORUM, 70, 40, 7, 70, "second largest of 100, 70, 40"},
	    {SL_REPL_ACKS_LEADER, 70, 40, 7, 70, "leader: readers see a majority's end"},
	    {SL_REPL_ACKS_LEADER, 0, 0, 1, 0, "leader alone: nothing shown yet"},
	    {SL_REPL_ACKS_QUORUM, 120, 40, 7, 100, "never past the leader's own end"},
	    {SL_REPL_ACKS_ALL, 70, 40, 7, 40, "all: the in-sync set's lowest"},
	    {SL_REPL_ACKS_ALL, 70, 40, 3, 70, "all: the one out of sync does not count"},
	    {SL_REPL_ACKS_ALL, 70, 40, 1, 0, "all: fewer in sync than min_insync"},
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(rows); i++) {
		struct sl_prepl rp;
		hw_setup(&rp, rows[i].acks, rows[i].f1, rows[i].f2, rows[i].isr);
		cr_assert_eq(sl_prepl_hw(&rp, 100), rows[i].hw, "%s", rows[i].why);
	}
}
