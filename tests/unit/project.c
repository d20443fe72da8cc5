/*
 * Projections without the reactor: the snapshot store (atomic replace, the
 * last two kept, torn and corrupt files skipped, a crash before the rename
 * keeps the old one) and the applier (exactly once across a simulated crash,
 * periodic snapshots, fallbacks, rebuild from 0 equal to the live model),
 * with the counter plugin as the model.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugins_util.h"
#include "project/project.h"
#include "topic/topic.h"

/* ---- snapshot store --------------------------------------------------------------- */

static struct sl_snap_store *store_open(const char *dir, bool stop)
{
	struct sl_snap_store_opts o = {.dir = dir, .test_stop_before_rename = stop};
	struct sl_snap_store *s;
	char err[512];
	cr_assert_eq(sl_snap_store_open(&o, &s, err, sizeof(err)), 0, "%s", err);
	return s;
}

static void store_write(struct sl_snap_store *s, uint64_t offset, const char *payload)
{
	struct sl_snap_mark m[2] = {{.partition = 3, .offset = offset},
	                            {.partition = 9, .offset = offset * 2}};
	char err[512];
	cr_assert_eq(sl_snap_store_write(s, m, 2, payload, strlen(payload), err, sizeof(err)), 0,
	             "%s", err);
}

static int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), k = strlen(suffix);
		if (l > k && !strcmp(de->d_name + l - k, suffix))
			n++;
	}
	closedir(d);
	return n;
}

static void snap_path(const char *dir, uint64_t gen, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%020llu.snap", dir, (unsigned long long)gen);
}

Test(project, store_round_trip_keeps_two)
{
	char *dir = tu_tmpdir("snap");
	char sub[256];
	snprintf(sub, sizeof(sub), "%s/a/b", dir); /* created with parents */
	struct sl_snap_store *s = store_open(sub, false);
	struct sl_snap snap;
	char err[512];

	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), -ENOENT);
	store_write(s, 10, "one");
	store_write(s, 20, "two");
	store_write(s, 30, "three");
	cr_assert_eq(count_files(sub, ".snap"), 2);
	cr_assert_eq(sl_snap_store_next_gen(s), 4);

	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), 0);
	cr_assert_eq(snap.generation, 3);
	cr_assert_eq(snap.n_marks, 2);
	cr_assert_eq(snap.marks[0].partition, 3);
	cr_assert_eq(snap.marks[0].offset, 30);
	cr_assert_eq(snap.marks[1].offset, 60);
	cr_assert_eq(snap.payload_len, 5);
	cr_assert_eq(memcmp(snap.payload, "three", 5), 0);
	sl_snap_release(&snap);
	cr_assert_eq(sl_snap_store_load(s, 3, &snap, NULL, err, sizeof(err)), 0);
	cr_assert_eq(snap.generation, 2);
	sl_snap_release(&snap);
	cr_assert_eq(sl_snap_store_load(s, 2, &snap, NULL, err, sizeof(err)), -ENOENT);
	sl_snap_store_close(s);

	/* Reopened, it goes on from the newest generation. */
	s = store_open(sub, false);
	cr_assert_eq(sl_snap_store_next_gen(s), 4);
	store_write(s, 40, "");
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), 0);
	cr_assert_eq(snap.generation, 4);
	cr_assert_eq(snap.payload_len, 0);
	sl_snap_release(&snap);
	sl_snap_store_close(s);
	tu_rmdir(dir);
}

/*
 * A snapshot as every sluice so far wrote it (project/snap_format.h):
 * generation 1, one mark (partition 3, offset 10), payload "hi", written at
 * 1764979200123 ms. Existing data folders must keep loading: this must
 * still read, and the writer must still lay a snapshot out the same way.
 */
static const uint8_t golden_snap[62] = {
    0x53, 0x4c, 0x50, 0x53, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x7b, 0x50, 0xf5, 0xf0, 0x9a, 0x01, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x68, 0x69, 0x17, 0xd4, 0x88, 0x10,
};

Test(project, golden_snapshot_still_loads)
{
	char *dir = tu_tmpdir("snap");
	char path[512], err[512];
	snap_path(dir, 1, path, sizeof(path));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, golden_snap, sizeof(golden_snap)), (ssize_t)sizeof(golden_snap));
	close(fd);

	struct sl_snap_store *s = store_open(dir, false);
	struct sl_snap snap;
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_eq(snap.generation, 1);
	cr_assert_eq(snap.written_ms, 1764979200123ll);
	cr_assert_eq(snap.n_marks, 1);
	cr_assert_eq(snap.marks[0].partition, 3);
	cr_assert_eq(snap.marks[0].offset, 10);
	cr_assert_eq(snap.payload_len, 2);
	cr_assert_eq(memcmp(snap.payload, "hi", 2), 0);
	sl_snap_release(&snap);

	/* The writer: the same marks and payload make the same bytes but for
	 * the generation, the time and the checksum. */
	struct sl_snap_mark m = {.partition = 3, .offset = 10};
	cr_assert_eq(sl_snap_store_write(s, &m, 1, "hi", 2, err, sizeof(err)), 0, "%s", err);
	snap_path(dir, 2, path, sizeof(path));
	uint8_t img[sizeof(golden_snap) + 1];
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(read(fd, img, sizeof(img)), (ssize_t)sizeof(golden_snap));
	close(fd);
	cr_assert_eq(memcmp(img, golden_snap, SL_SNAP_OFF_GEN), 0);
	cr_assert_eq(sl_get_le64(img + SL_SNAP_OFF_GEN), 2);
	cr_assert_eq(memcmp(img + SL_SNAP_OFF_PLEN, golden_snap + SL_SNAP_OFF_PLEN,
	                    SL_SNAP_OFF_WRITTEN - SL_SNAP_OFF_PLEN),
	             0);
	cr_assert_eq(memcmp(img + SL_SNAP_HDR, golden_snap + SL_SNAP_HDR,
	                    sizeof(golden_snap) - SL_SNAP_HDR - SL_SNAP_TRAILER),
	             0);
	sl_snap_store_close(s);
	tu_rmdir(dir);
}

Test(project, store_torn_or_corrupt_falls_back)
{
	char *dir = tu_tmpdir("snap");
	struct sl_snap_store *s = store_open(dir, false);
	struct sl_snap snap;
	char path[512], err[512];
	uint32_t bad = 0;

	store_write(s, 10, "older payload");
	store_write(s, 20, "newer payload");

	/* Torn: the newest cut short. */
	snap_path(dir, 2, path, sizeof(path));
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(truncate(path, st.st_size - 3), 0);
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, &bad, err, sizeof(err)), 0);
	cr_assert_eq(snap.generation, 1);
	cr_assert_eq(snap.marks[0].offset, 10);
	cr_assert_eq(bad, 1);
	cr_assert_not_null(strstr(err, "00000000000000000002.snap"), "%s", err);
	cr_assert_not_null(strstr(err, "torn"), "%s", err);
	sl_snap_release(&snap);

	/* Corrupt: one payload byte of the older one flipped. */
	snap_path(dir, 1, path, sizeof(path));
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	char c; /* two marks (store_write), then the payload */
	cr_assert_eq(pread(fd, &c, 1, SL_SNAP_HDR + 2 * SL_SNAP_MARK + 2), 1);
	c ^= 0x20;
	cr_assert_eq(pwrite(fd, &c, 1, SL_SNAP_HDR + 2 * SL_SNAP_MARK + 2), 1);
	close(fd);
	bad = 0;
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, &bad, err, sizeof(err)), -ENOENT);
	cr_assert_eq(bad, 2);
	cr_assert_not_null(strstr(err, "00000000000000000002.snap"), "the newest is named: %s",
	                   err);
	struct sl_snap_store *s1 = store_open(dir, false);
	cr_assert_eq(sl_snap_store_load(s1, 2, &snap, NULL, err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, "checksum mismatch"), "%s", err);
	sl_snap_store_close(s1);

	/* A header that is not ours. */
	store_write(s, 30, "x");
	snap_path(dir, 3, path, sizeof(path));
	fd = open(path, O_RDWR);
	cr_assert_eq(pwrite(fd, "XXXX", 4, 0), 4);
	close(fd);
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), -ENOENT);
	cr_assert_not_null(strstr(err, "bad magic"), "%s", err);
	sl_snap_store_close(s);
	tu_rmdir(dir);
}

Test(project, crash_before_rename_keeps_the_old_one)
{
	char *dir = tu_tmpdir("snap");
	struct sl_snap_store *s = store_open(dir, false);
	struct sl_snap snap;
	char err[512];
	struct sl_snap_mark m = {.partition = 3, .offset = 99};

	store_write(s, 10, "kept");
	sl_snap_store_close(s);

	s = store_open(dir, true);
	cr_assert_eq(sl_snap_store_write(s, &m, 1, "lost", 4, err, sizeof(err)), -ECANCELED);
	cr_assert_eq(count_files(dir, ".snap.tmp"), 1, "the crash leaves its tmp file");
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), 0);
	cr_assert_eq(snap.marks[0].offset, 10);
	cr_assert_eq(memcmp(snap.payload, "kept", 4), 0);
	sl_snap_release(&snap);
	sl_snap_store_close(s);

	/* The restart removes the leftover and reuses nothing of it. */
	s = store_open(dir, false);
	cr_assert_eq(count_files(dir, ".snap.tmp"), 0);
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), 0);
	cr_assert_eq(snap.marks[0].offset, 10);
	sl_snap_release(&snap);
	store_write(s, 20, "next");
	cr_assert_eq(sl_snap_store_load(s, UINT64_MAX, &snap, NULL, err, sizeof(err)), 0);
	cr_assert_eq(snap.marks[0].offset, 20);
	sl_snap_release(&snap);
	sl_snap_store_close(s);
	tu_rmdir(dir);
}

/* ---- applier ------------------------------------------------------------------------ */

#define N_AGGS  37
#define N_TYPES 5

/* Event i: type "T<i % 5>", aggregate "a<i % 37>". */
static void fill_log(struct tu_log *t, uint64_t from, uint64_t to)
{
	uint8_t ev[256];
	char type[16], agg[16];

	for (uint64_t i = from; i < to; i++) {
		snprintf(type, sizeof(type), "T%llu", (unsigned long long)(i % N_TYPES));
		snprintf(agg, sizeof(agg), "a%llu", (unsigned long long)(i % N_AGGS));
		uint32_t len = tu_event(ev, sizeof(ev), type, agg, "{\"v\":1}", i);
		cr_assert_eq(tu_log_append(t, ev, len), i);
		if (i % 100 == 99)
			tu_log_commit(t);
	}
	tu_log_commit(t);
}

struct env {
	char *dir;
	char log_dir[256], snap_dir[256];
	struct tu_log log;
	struct sl_plugin *p;
};

static void env_init(struct env *e, uint64_t n_events)
{
	e->dir = tu_tmpdir("apply");
	snprintf(e->log_dir, sizeof(e->log_dir), "%s/log", e->dir);
	snprintf(e->snap_dir, sizeof(e->snap_dir), "%s/snap", e->dir);
	tu_log_open(&e->log, e->log_dir);
	fill_log(&e->log, 0, n_events);
	e->p = tu_load_from(SL_TEST_PLUGIN_DIR, "mem_counter", SL_PLUGIN_PROJECTION);
}

static void env_fini(struct env *e)
{
	tu_log_close(&e->log);
	sl_plugin_unload(e->p);
	tu_rmdir(e->dir);
}

static struct sl_applier *app_open(struct env *e, const char *snap_dir, uint64_t every,
                                   bool rebuild, bool stop)
{
	struct sl_applier_opts o = {
	    .plugin = e->p,
	    .inst = {.name = "counter", .topic = "events", .partition = 3, .n_partitions = 8},
	    .log_dir = e->log_dir,
	    .snap_dir = snap_dir,
	    .snapshot_every_events = every,
	    .batch = 64,
	    .rebuild = rebuild,
	    .test_stop_before_rename = stop,
	};
	struct sl_applier *a;
	char err[512];
	cr_assert_eq(sl_applier_open(&o, &a, err, sizeof(err)), 0, "%s", err);
	return a;
}

/* Steps until caught up with `limit`; returns how many were applied. */
static uint64_t drain(struct sl_applier *a, uint64_t limit, uint32_t step)
{
	uint64_t total = 0;
	for (int turns = 0; turns < 1000000; turns++) {
		int n = sl_applier_step(a, limit, step);
		cr_assert_geq(n, 0, "step: %s", sl_applier_error(a));
		if (n == 0)
			return total;
		total += (uint64_t)n;
	}
	cr_assert_fail("applier never caught up");
	return 0;
}

static uint64_t count_of(struct sl_applier *a, const char *key)
{
	struct sl_plugin_out out = {0};
	int ret = sl_applier_query(a, key, (uint32_t)strlen(key), SL_PLUGIN_QUERY_PART, &out);
	uint64_t c = 0;
	if (ret == 0) {
		cr_assert_eq(out.buf.len, 8);
		memcpy(&c, out.buf.data, 8);
	}
	sl_plugin_out_release(&out);
	return c;
}

/* Every event of [0, n) counted exactly once. */
static void expect_exact(struct sl_applier *a, uint64_t n)
{
	char key[32];
	cr_assert_eq(count_of(a, "total"), n);
	for (int k = 0; k < N_AGGS; k++) {
		snprintf(key, sizeof(key), "a%d", k);
		uint64_t want = n / N_AGGS + ((uint64_t)k < n % N_AGGS);
		cr_assert_eq(count_of(a, key), want, "%s", key);
	}
	for (int k = 0; k < N_TYPES; k++) {
		snprintf(key, sizeof(key), "type:T%d", k);
		uint64_t want = n / N_TYPES + ((uint64_t)k < n % N_TYPES);
		cr_assert_eq(count_of(a, key), want, "%s", key);
	}
}

Test(project, applier_exactly_once_across_a_crash)
{
	struct env e;
	env_init(&e, 1000);
	uint64_t end = sl_log_durable(e.log.log);
	cr_assert_eq(end, 1000);

	struct sl_applier *a = app_open(&e, e.snap_dir, 0, false, false);
	cr_assert_eq(sl_applier_next(a), 0);
	cr_assert_eq(sl_applier_step(a, end, 300), 300);
	cr_assert_eq(sl_applier_snapshot(a), 0);
	/* Applied after the snapshot, then lost with the process. */
	cr_assert_eq(sl_applier_step(a, end, 250), 250);
	cr_assert_eq(sl_applier_next(a), 550);
	expect_exact(a, 550);
	sl_applier_close(a);

	a = app_open(&e, e.snap_dir, 0, false, false);
	struct sl_applier_stats st;
	sl_applier_get_stats(a, &st);
	cr_assert_eq(st.restored_gen, 1);
	cr_assert_eq(st.restored_offset, 300);
	cr_assert_eq(sl_applier_next(a), 300);
	expect_exact(a, 300);
	cr_assert_eq(drain(a, end, 128), 700);
	expect_exact(a, 1000);

	/* More events arrive; it resumes where it is. */
	fill_log(&e.log, 1000, 1234);
	end = sl_log_durable(e.log.log);
	cr_assert_eq(drain(a, end, 1000), 234);
	expect_exact(a, 1234);
	sl_applier_close(a);
	env_fini(&e);
}

Test(project, applier_never_passes_the_limit)
{
	struct env e;
	env_init(&e, 500);
	struct sl_applier *a = app_open(&e, e.snap_dir, 0, false, false);

	cr_assert_eq(drain(a, 123, 1000), 123);
	cr_assert_eq(sl_applier_next(a), 123);
	expect_exact(a, 123);
	cr_assert_eq(sl_applier_step(a, 123, 10), 0);
	cr_assert_eq(drain(a, 500, 7), 377);
	expect_exact(a, 500);
	sl_applier_close(a);
	env_fini(&e);
}

Test(project, applier_periodic_snapshots_and_restart)
{
	struct env e;
	env_init(&e, 2000);
	struct sl_applier *a = app_open(&e, e.snap_dir, 256, false, false);
	struct sl_applier_stats st;

	cr_assert_eq(drain(a, 1900, 100), 1900);
	sl_applier_get_stats(a, &st);
	cr_assert_geq(st.snapshots, 1900 / (256 + 64), "%llu snapshots",
	              (unsigned long long)st.snapshots);
	cr_assert_eq(st.snapshot_failures, 0);
	sl_applier_close(a); /* the crash: no final snapshot */

	a = app_open(&e, e.snap_dir, 256, false, false);
	sl_applier_get_stats(a, &st);
	cr_assert_geq(st.restored_offset, 1900 - 256 - 64);
	cr_assert_leq(st.restored_offset, 1900);
	cr_assert_eq(drain(a, 2000, 100), 2000 - st.restored_offset);
	expect_exact(a, 2000);
	sl_applier_close(a);
	env_fini(&e);
}

Test(project, applier_falls_back_past_a_torn_snapshot)
{
	struct env e;
	env_init(&e, 600);
	struct sl_applier *a = app_open(&e, e.snap_dir, 0, false, false);
	struct sl_applier_stats st;
	char path[512];

	cr_assert_eq(sl_applier_step(a, 600, 200), 200);
	cr_assert_eq(sl_applier_snapshot(a), 0);
	cr_assert_eq(sl_applier_step(a, 600, 200), 200);
	cr_assert_eq(sl_applier_snapshot(a), 0);
	sl_applier_close(a);
	snap_path(e.snap_dir, 2, path, sizeof(path));
	cr_assert_eq(truncate(path, 50), 0);

	a = app_open(&e, e.snap_dir, 0, false, false);
	sl_applier_get_stats(a, &st);
	cr_assert_eq(st.restored_gen, 1);
	cr_assert_eq(st.restored_offset, 200);
	cr_assert_eq(st.bad_snapshots, 1);
	cr_assert_eq(drain(a, 600, 64), 400);
	expect_exact(a, 600);
	sl_applier_close(a);

	/* Both unreadable: a rebuild from offset 0, still exact. */
	for (uint64_t g = 1; g <= 3; g++) {
		snap_path(e.snap_dir, g, path, sizeof(path));
		truncate(path, 10);
	}
	a = app_open(&e, e.snap_dir, 0, false, false);
	sl_applier_get_stats(a, &st);
	cr_assert_eq(st.restored_gen, 0);
	cr_assert_eq(sl_applier_next(a), 0);
	cr_assert_eq(drain(a, 600, 64), 600);
	expect_exact(a, 600);
	sl_applier_close(a);
	env_fini(&e);
}

Test(project, applier_falls_back_past_a_snapshot_the_plugin_refuses)
{
	struct env e;
	env_init(&e, 300);
	struct sl_applier *a = app_open(&e, e.snap_dir, 0, false, false);
	struct sl_applier_stats st;
	char err[512];

	cr_assert_eq(sl_applier_step(a, 300, 100), 100);
	cr_assert_eq(sl_applier_snapshot(a), 0);
	sl_applier_close(a);
	/* A valid file whose payload is not a counter model. */
	struct sl_snap_store *s = store_open(e.snap_dir, false);
	struct sl_snap_mark m = {.partition = 3, .offset = 250};
	cr_assert_eq(sl_snap_store_write(s, &m, 1, "not a model", 11, err, sizeof(err)), 0);
	sl_snap_store_close(s);

	a = app_open(&e, e.snap_dir, 0, false, false);
	sl_applier_get_stats(a, &st);
	cr_assert_eq(st.restored_gen, 1);
	cr_assert_eq(st.restored_offset, 100);
	cr_assert_eq(st.bad_snapshots, 1);
	cr_assert_eq(drain(a, 300, 64), 200);
	expect_exact(a, 300);
	sl_applier_close(a);
	env_fini(&e);
}

Test(project, applier_snapshot_crash_before_rename)
{
	struct env e;
	env_init(&e, 400);
	struct sl_applier *a = app_open(&e, e.snap_dir, 0, false, false);

	cr_assert_eq(sl_applier_step(a, 400, 150), 150);
	cr_assert_eq(sl_applier_snapshot(a), 0);
	sl_applier_close(a);

	/* This process dies between the tmp file and the rename. */
	a = app_open(&e, e.snap_dir, 0, false, true);
	cr_assert_eq(sl_applier_step(a, 400, 150), 150);
	cr_assert_eq(sl_applier_snapshot(a), -ECANCELED);
	sl_applier_close(a);

	a = app_open(&e, e.snap_dir, 0, false, false);
	cr_assert_eq(sl_applier_next(a), 150);
	cr_assert_eq(drain(a, 400, 64), 250);
	expect_exact(a, 400);
	sl_applier_close(a);
	env_fini(&e);
}

Test(project, rebuild_from_zero_equals_the_live_model)
{
	struct env e;
	env_init(&e, 3000);
	char rebuild_dir[300];
	struct sl_plugin_out live = {0}, rebuilt = {0};

	/* The live model: periodic snapshots, two restarts on the way. */
	struct sl_applier *a = app_open(&e, e.snap_dir, 500, false, false);
	cr_assert_eq(drain(a, 1100, 90), 1100);
	sl_applier_close(a);
	a = app_open(&e, e.snap_dir, 500, false, false);
	drain(a, 2300, 333);
	sl_applier_close(a);
	a = app_open(&e, e.snap_dir, 500, false, false);
	drain(a, 3000, 1000);
	cr_assert_eq(sl_applier_next(a), 3000);

	snprintf(rebuild_dir, sizeof(rebuild_dir), "%s/rebuild", e.dir);
	struct sl_applier *r = app_open(&e, rebuild_dir, 0, true, false);
	cr_assert_eq(sl_applier_next(r), 0);
	cr_assert_eq(drain(r, 3000, 4096), 3000);

	cr_assert_eq(sl_applier_model_bytes(a, &live), 0);
	cr_assert_eq(sl_applier_model_bytes(r, &rebuilt), 0);
	cr_assert_eq(live.buf.len, rebuilt.buf.len);
	cr_assert_eq(memcmp(live.buf.data, rebuilt.buf.data, live.buf.len), 0);

	/* rebuild ignores even a good snapshot in its folder. */
	cr_assert_eq(sl_applier_snapshot(r), 0);
	sl_applier_close(r);
	r = app_open(&e, rebuild_dir, 0, true, false);
	cr_assert_eq(sl_applier_next(r), 0);
	sl_applier_close(r);

	sl_plugin_out_release(&live);
	sl_plugin_out_release(&rebuilt);
	sl_applier_close(a);
	env_fini(&e);
}

/*
 * A query's lag (sl_pquery_lag): alone, from the durable end; a leader,
 * from its own durable end, what waits for the followers included; a
 * follower, from the leader's durable end as it last heard it (what it
 * does not hold yet counts), never from less than what it shows; and how
 * long ago it heard (never: UINT64_MAX).
 */
Test(project, query_lag_counts_from_the_leaders_end)
{
	struct sl_partition p = {0};
	struct sl_prepl rp = {0};
	struct sl_pquery q = {0};

	atomic_store(&p.durable_pub, 100);
	sl_pquery_lag(&p, 90, &q);
	cr_assert_eq(q.lag, 10);
	cr_assert_eq(q.applied, 90);
	cr_assert(!q.follower);

	p.repl = &rp;
	atomic_store(&rp.role, SL_REPL_LEADER);
	atomic_store(&rp.local_durable, 130); /* the HW (durable_pub) is 100 */
	sl_pquery_lag(&p, 100, &q);
	cr_assert_eq(q.lag, 30);
	cr_assert(!q.follower);
	cr_assert_eq(q.heard_ms, 0);

	atomic_store(&rp.role, SL_REPL_FOLLOWER);
	atomic_store(&rp.local_durable, 110);
	atomic_store(&rp.leader_end, 150);
	sl_pquery_lag(&p, 100, &q);
	cr_assert_eq(q.lag, 50, "a follower's lag counts what it has not fetched: %llu",
	             (unsigned long long)q.lag);
	cr_assert(q.follower);
	cr_assert_eq(q.heard_ms, UINT64_MAX);

	atomic_store(&rp.leader_end_ns, sl_now_ns() - 3000ull * 1000000u);
	sl_pquery_lag(&p, 150, &q);
	cr_assert_eq(q.lag, 0);
	cr_assert_geq(q.heard_ms, 3000);
	cr_assert_lt(q.heard_ms, 60000);

	/* A leader's word older than what this replica shows. */
	atomic_store(&rp.leader_end, 40);
	sl_pquery_lag(&p, 90, &q);
	cr_assert_eq(q.lag, 10);

	atomic_store(&rp.role, SL_REPL_NONE);
	sl_pquery_lag(&p, 100, &q);
	cr_assert(q.follower, "a replica without a role yet has no leader's word of its own");
}
