/*
 * The state store (engine/state): the writer view over the cache and the
 * store, what read views see, commits that carry their offset, eviction that
 * never drops what is not committed, a cache full of uncommitted changes
 * that stops the owner, the writer thread with queries reading alongside
 * (TSan), a process that dies without closing, and rebuilds beside the
 * live model: their own key space, the swap that makes one live in one
 * write, and what an interrupted one leaves (removed at the next open).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/base.h"
#include "plugins_util.h"
#include "state/state.h"
#include "state/state_impl.h"

struct fx {
	char *dir;
	char path[512];
	struct sl_state_db *db;
};

static void fx_init(struct fx *f)
{
	char err[512];
	f->dir = tu_tmpdir("state");
	snprintf(f->path, sizeof(f->path), "%s/sub/state", f->dir);
	struct sl_state_db_opts o = {.path = f->path};
	cr_assert_eq(sl_state_db_open(&o, &f->db, err, sizeof(err)), 0, "%s", err);
}

static void fx_fini(struct fx *f)
{
	sl_state_db_close(f->db);
	tu_rmdir(f->dir);
}

static struct sl_state_part *part_open(struct fx *f, uint32_t partition, size_t cache,
                                       struct sl_state_mark *m)
{
	struct sl_state_part *p;
	char err[512];
	struct sl_state_part_opts o = {.partition = partition, .cache_bytes = cache};
	cr_assert_eq(sl_state_part_open(f->db, &o, &p, m, err, sizeof(err)), 0, "%s", err);
	return p;
}

static struct sl_state_part *rebuild_open(struct fx *f, uint32_t partition, struct sl_state_mark *m)
{
	struct sl_state_part *p;
	char err[512];
	struct sl_state_part_opts o = {.partition = partition, .rebuild = true};
	cr_assert_eq(sl_state_part_open(f->db, &o, &p, m, err, sizeof(err)), 0, "%s", err);
	return p;
}

static void put_u64(struct sl_state *st, const char *k, uint64_t v)
{
	cr_assert_eq(sl_state_put(st, k, strlen(k), &v, sizeof(v)), 0);
}

/* The value of k (UINT64_MAX: absent). */
static uint64_t get_u64(struct sl_state *st, const char *k)
{
	const void *v;
	size_t n;
	int ret = sl_state_get(st, k, strlen(k), &v, &n);
	if (ret == -ENOENT)
		return UINT64_MAX;
	cr_assert_eq(ret, 0, "get %s: %d", k, ret);
	cr_assert_eq(n, 8);
	uint64_t x;
	memcpy(&x, v, 8);
	return x;
}

static void sync_at(struct sl_state_part *p, uint64_t next)
{
	char err[300];
	struct sl_state_mark m = {.next = next, .emit_seq = next * 2};
	cr_assert_eq(sl_state_part_sync(p, &m, err, sizeof(err)), 0, "%s", err);
}

struct seen {
	char keys[64][16];
	uint64_t vals[64];
	int n;
};

static int collect(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct seen *s = arg;
	cr_assert_lt(s->n, 64);
	cr_assert_lt(klen, 16);
	memcpy(s->keys[s->n], key, klen);
	s->keys[s->n][klen] = '\0';
	s->vals[s->n] = 0;
	if (vlen == 8)
		memcpy(&s->vals[s->n], val, 8);
	s->n++;
	return 0;
}

Test(state, writer_view_read_view_and_marks)
{
	struct fx f;
	struct sl_state_mark m;
	fx_init(&f);
	struct sl_state_part *p = part_open(&f, 7, 0, &m);
	struct sl_state *st = sl_state_part_view(p);
	cr_assert_eq(m.next, 0);
	cr_assert_eq(m.gen, 0);

	put_u64(st, "b", 2);
	put_u64(st, "a", 1);
	put_u64(st, "c", 3);
	cr_assert_eq(get_u64(st, "a"), 1);
	void *v;
	cr_assert_eq(sl_state_modify(st, "a", 1, 8, &v), 1);
	uint64_t x = 11;
	memcpy(v, &x, 8);
	cr_assert_eq(sl_state_modify(st, "d", 1, 8, &v), 0, "a new key is 0");
	cr_assert_eq(((uint8_t *)v)[0] | ((uint8_t *)v)[7], 0);
	cr_assert_eq(sl_state_del(st, "c", 1), 0);
	cr_assert_eq(get_u64(st, "c"), UINT64_MAX);
	cr_assert_eq(sl_state_put(st, "", 0, &x, 8), -EINVAL);
	char big[600];
	memset(big, 'k', sizeof(big));
	cr_assert_eq(sl_state_put(st, big, SL_STATE_KEY_MAX + 1, &x, 8), -ENAMETOOLONG);
	cr_assert_eq(sl_state_put(st, big, SL_STATE_KEY_MAX, &x, 8), 0);
	cr_assert_eq(sl_state_del(st, big, SL_STATE_KEY_MAX), 0);

	/* Nothing committed: a read view sees an empty partition at 0. */
	struct sl_state *rv;
	cr_assert_eq(sl_state_view_begin(f.db, 7, &rv, &m), 0);
	cr_assert_eq(m.next, 0);
	cr_assert_eq(get_u64(rv, "a"), UINT64_MAX);
	cr_assert_eq(sl_state_put(rv, "a", 1, &x, 8), -EROFS);
	sl_state_view_end(rv);

	sync_at(p, 10);
	cr_assert_eq(sl_state_part_committed(p), 10);
	cr_assert_eq(sl_state_view_begin(f.db, 7, &rv, &m), 0);
	cr_assert_eq(m.next, 10);
	cr_assert_eq(m.emit_seq, 20);
	cr_assert_eq(m.gen, 1);
	cr_assert_eq(get_u64(rv, "a"), 11);
	cr_assert_eq(get_u64(rv, "b"), 2);
	cr_assert_eq(get_u64(rv, "c"), UINT64_MAX);
	struct seen s = {0};
	cr_assert_eq(sl_state_iter(rv, NULL, 0, collect, &s), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.keys[0], "a");
	cr_assert_str_eq(s.keys[1], "b");
	cr_assert_str_eq(s.keys[2], "d");
	sl_state_view_end(rv);
	/* Another partition of the same store sees none of it. */
	cr_assert_eq(sl_state_view_begin(f.db, 8, &rv, &m), 0);
	cr_assert_eq(m.next, 0);
	cr_assert_eq(get_u64(rv, "a"), UINT64_MAX);
	s.n = 0;
	cr_assert_eq(sl_state_iter(rv, NULL, 0, collect, &s), 0);
	cr_assert_eq(s.n, 0);
	sl_state_view_end(rv);

	/* The writer's iteration merges its uncommitted changes in order. */
	put_u64(st, "bb", 5);
	cr_assert_eq(sl_state_del(st, "b", 1), 0);
	put_u64(st, "a", 12);
	s.n = 0;
	cr_assert_eq(sl_state_iter(st, "a", 1, collect, &s), 0);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.keys[0], "a");
	cr_assert_eq(s.vals[0], 12);
	cr_assert_str_eq(s.keys[1], "bb");
	cr_assert_str_eq(s.keys[2], "d");
	s.n = 0;
	cr_assert_eq(sl_state_iter(st, "b", 1, collect, &s), 0);
	cr_assert_eq(s.n, 2, "from 'b': bb, d");
	sl_state_part_end_step(p, NULL, false);

	/* Closed without committing: reopened at the last commit. */
	sl_state_part_close(p);
	p = part_open(&f, 7, 0, &m);
	cr_assert_eq(m.next, 10);
	cr_assert_eq(m.gen, 1);
	st = sl_state_part_view(p);
	cr_assert_eq(get_u64(st, "a"), 11);
	cr_assert_eq(get_u64(st, "b"), 2);
	cr_assert_eq(get_u64(st, "bb"), UINT64_MAX);
	sl_state_part_close(p);
	fx_fini(&f);
}

/* What a read view of `partition` holds: every key, as "k=v," in order. */
static void view_dump(struct fx *f, uint32_t partition, char *out, size_t cap,
                      struct sl_state_mark *m)
{
	struct sl_state *v;
	struct seen s = {0};
	cr_assert_eq(sl_state_view_begin(f->db, partition, &v, m), 0);
	cr_assert_eq(sl_state_iter(v, NULL, 0, collect, &s), 0);
	sl_state_view_end(v);
	size_t n = 0;
	out[0] = '\0';
	for (int i = 0; i < s.n; i++)
		n += (size_t)snprintf(out + n, cap - n, "%s=%llu,", s.keys[i],
		                      (unsigned long long)s.vals[i]);
}

Test(state, swap_makes_a_rebuild_live_in_one_write)
{
	struct fx f;
	struct sl_state_mark m;
	char dump[512], err[300];
	fx_init(&f);
	struct sl_state_part *live = part_open(&f, 1, 0, &m);
	struct sl_state_part *other = part_open(&f, 2, 0, &m);
	struct sl_state *st = sl_state_part_view(live);
	put_u64(st, "a", 1);
	put_u64(st, "b", 2);
	put_u64(st, "x", 9);
	sync_at(live, 10);
	put_u64(sl_state_part_view(other), "a", 100);
	sync_at(other, 5);

	/* The rebuild starts from nothing, in its own space. */
	struct sl_state_part *rb = rebuild_open(&f, 1, &m);
	cr_assert_eq(m.next, 0);
	cr_assert_eq(get_u64(sl_state_part_view(rb), "a"), UINT64_MAX);
	put_u64(sl_state_part_view(rb), "a", 5);
	put_u64(sl_state_part_view(rb), "c", 7);
	/* Not settled (changes not committed): nothing done. */
	cr_assert_eq(sl_state_part_swap(live, rb, 42, err, sizeof(err)), -EBUSY);
	sync_at(rb, 9);
	cr_assert_eq(sl_state_part_swap(live, rb, 42, err, sizeof(err)), -EBUSY, "at 9, not 10");
	/* A rebuild's commits are invisible to the live model's readers. */
	view_dump(&f, 1, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "a=1,b=2,x=9,");
	put_u64(sl_state_part_view(rb), "c", 8);
	sync_at(rb, 10);

	/* A swap that fails to write leaves the old model, and may be tried again. */
	sl_state_db_test_fail_commits(f.db, true);
	cr_assert_eq(sl_state_part_swap(live, rb, 42, err, sizeof(err)), -ECANCELED);
	sl_state_db_test_fail_commits(f.db, false);
	view_dump(&f, 1, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "a=1,b=2,x=9,");
	cr_assert_eq(get_u64(st, "x"), 9);

	cr_assert_eq(sl_state_part_swap(live, rb, 42, err, sizeof(err)), 0, "%s", err);
	view_dump(&f, 1, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "a=5,c=8,");
	cr_assert_eq(m.next, 10);
	cr_assert_eq(m.emit_seq, 42, "the live model's emit sequence goes on");
	/* The owner's view, which the plugin holds, reads the new model. */
	cr_assert_eq(get_u64(st, "a"), 5);
	cr_assert_eq(get_u64(st, "x"), UINT64_MAX);
	cr_assert_eq(sl_state_part_committed(live), 10);
	/* Its keys are live now: closing the rebuild keeps them. */
	sl_state_part_close(rb);
	view_dump(&f, 2, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "a=100,", "another partition untouched");

	/* It goes on applying into the new space, and a reopen finds it. */
	put_u64(st, "d", 1);
	sync_at(live, 12);
	sl_state_part_end_step(live, NULL, false);
	sl_state_part_close(live);
	sl_state_part_end_step(other, NULL, false);
	sl_state_part_close(other);
	sl_state_db_close(f.db);
	struct sl_state_db_opts o = {.path = f.path};
	cr_assert_eq(sl_state_db_open(&o, &f.db, err, sizeof(err)), 0, "%s", err);
	live = part_open(&f, 1, 0, &m);
	cr_assert_eq(m.next, 12);
	view_dump(&f, 1, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "a=5,c=8,d=1,");
	/* The old space is gone; a second rebuild and swap goes back to it. */
	cr_assert_eq(sl__state_space_used(f.db, 1), 0);
	rb = rebuild_open(&f, 1, &m);
	put_u64(sl_state_part_view(rb), "z", 3);
	sync_at(rb, 12);
	cr_assert_eq(sl_state_part_swap(live, rb, 0, err, sizeof(err)), 0, "%s", err);
	sl_state_part_close(rb);
	view_dump(&f, 1, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "z=3,");
	sl_state_part_end_step(live, NULL, false);
	sl_state_part_close(live);
	fx_fini(&f);
}

/* fork: in the release and ASan builds only, as below. */
#ifndef SL_TSAN_CRITERION_SHIM_H
Test(state, a_rebuild_closed_or_interrupted_leaves_nothing)
{
	struct fx f;
	struct sl_state_mark m;
	char dump[512], err[300];
	fx_init(&f);
	struct sl_state_part *live = part_open(&f, 3, 0, &m);
	put_u64(sl_state_part_view(live), "a", 1);
	sync_at(live, 4);
	struct sl_state_part *rb = rebuild_open(&f, 3, &m);
	put_u64(sl_state_part_view(rb), "a", 2);
	sync_at(rb, 4);
	cr_assert_eq(sl__state_space_used(f.db, 3 | SL_STATE_SPACE_ALT), 1);
	/* Closed without a swap (compare only): dropped. */
	sl_state_part_close(rb);
	cr_assert_eq(sl__state_space_used(f.db, 3 | SL_STATE_SPACE_ALT), 0);
	sl_state_part_end_step(live, NULL, false);
	sl_state_part_close(live);
	sl_state_db_close(f.db);
	f.db = NULL;

	/* A process that dies mid-rebuild (its commits durable) ... */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct sl_state_db *db;
		struct sl_state_db_opts o = {.path = f.path};
		if (sl_state_db_open(&o, &db, err, sizeof(err)) < 0)
			_exit(2);
		struct sl_state_part *p;
		struct sl_state_part_opts po = {.partition = 3, .rebuild = true};
		if (sl_state_part_open(db, &po, &p, &m, err, sizeof(err)) < 0)
			_exit(3);
		uint64_t v = 77;
		struct sl_state_mark mk = {.next = 2};
		if (sl_state_put(sl_state_part_view(p), "r", 1, &v, 8) < 0 ||
		    sl_state_part_sync(p, &mk, err, sizeof(err)) < 0)
			_exit(4);
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
	struct sl_state_db_opts o = {.path = f.path};
	cr_assert_eq(sl_state_db_open(&o, &f.db, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sl__state_space_used(f.db, 3 | SL_STATE_SPACE_ALT), 1);
	/* ... leaves the live model whole, and its open removes the rest. */
	live = part_open(&f, 3, 0, &m);
	cr_assert_eq(m.next, 4);
	cr_assert_eq(sl__state_space_used(f.db, 3 | SL_STATE_SPACE_ALT), 0);
	view_dump(&f, 3, dump, sizeof(dump), &m);
	cr_assert_str_eq(dump, "a=1,");
	sl_state_part_end_step(live, NULL, false);
	sl_state_part_close(live);
	fx_fini(&f);
}
#endif

Test(state, eviction_never_drops_what_is_not_committed)
{
	struct fx f;
	struct sl_state_mark m;
	char k[32];
	fx_init(&f);
	struct sl_state_part *p = part_open(&f, 0, 1, &m); /* 1 MiB */
	struct sl_state *st = sl_state_part_view(p);

	/* Commits fail: every change stays pinned, however full. */
	sl_state_db_test_fail_commits(f.db, true);
	uint32_t n = 0;
	for (; n < 100000 && sl_state_part_poll(p); n++) {
		snprintf(k, sizeof(k), "key-%u", n);
		put_u64(st, k, n);
		struct sl_state_mark mk = {.next = n + 1};
		if (n % 100 == 99)
			cr_assert_eq(sl_state_part_end_step(p, &mk, false), 0);
	}
	cr_assert_lt(n, 100000, "the cache never filled");
	cr_assert_geq(sl_state_part_commit_failures(p), 1);
	cr_assert_eq(sl_state_part_committed(p), 0);
	struct sl_state_part_stats ps;
	sl_state_part_get_stats(p, &ps);
	cr_assert_eq(ps.evictions, 0, "evicted %llu uncommitted", (unsigned long long)ps.evictions);
	cr_assert_gt(ps.blocked_steps, 0);
	for (uint32_t i = 0; i < n; i += 101) {
		snprintf(k, sizeof(k), "key-%u", i);
		cr_assert_eq(get_u64(st, k), i);
	}
	/* The disk comes back: the batch in flight commits at the next poll,
	 * then room is made. */
	sl_state_db_test_fail_commits(f.db, false);
	struct sl_state_mark mk = {.next = n};
	for (int i = 0; i < 4 && !sl_state_part_poll(p); i++)
		sl_state_part_end_step(p, &mk, true);
	cr_assert(sl_state_part_poll(p), "still full after the commits");
	cr_assert_eq(sl_state_part_committed(p), n);
	sl_state_part_get_stats(p, &ps);
	cr_assert_gt(ps.evictions, 0);
	for (uint32_t i = 0; i < n; i += 101) {
		snprintf(k, sizeof(k), "key-%u", i);
		cr_assert_eq(get_u64(st, k), i, "%s after eviction", k);
	}
	sl_state_part_end_step(p, NULL, false);
	sl_state_part_close(p);
	fx_fini(&f);
}

/* ---- the writer thread, with readers ------------------------------------------------ */

#define W_PARTS  3
#define W_EVENTS 20000u

struct wctx {
	struct fx *f;
	_Atomic bool done;
	_Atomic uint64_t views, distinct;
	_Atomic uint64_t wakes;
};

static void on_commit(void *arg)
{
	struct wctx *c = arg;
	atomic_fetch_add(&c->wakes, 1);
}

/* Every commit of partition p at next = N holds "n" = N and "sq" = N*N:
 * a view that sees anything else saw a commit torn or its mark wrong. */
static void *reader(void *arg)
{
	struct wctx *c = arg;
	uint64_t last = UINT64_MAX;
	while (!atomic_load(&c->done)) {
		for (uint32_t p = 0; p < W_PARTS; p++) {
			struct sl_state *v;
			struct sl_state_mark m;
			cr_assert_eq(sl_state_view_begin(c->f->db, p, &v, &m), 0);
			uint64_t n = get_u64(v, "n"), sq = get_u64(v, "sq");
			if (m.next == 0) {
				cr_assert_eq(n, UINT64_MAX);
			} else {
				cr_assert_eq(n, m.next, "partition %u: n %llu at mark %llu", p,
				             (unsigned long long)n, (unsigned long long)m.next);
				cr_assert_eq(sq, m.next * m.next);
			}
			sl_state_view_end(v);
			atomic_fetch_add(&c->views, 1);
			if (p == 0 && m.next != last) {
				last = m.next;
				atomic_fetch_add(&c->distinct, 1);
			}
		}
	}
	return NULL;
}

Test(state, writer_thread_commits_while_queries_read)
{
	struct fx f;
	struct wctx c = {.f = &f};
	struct sl_state_writer *w;
	struct sl_state_part *parts[W_PARTS];
	pthread_t rd[2];
	fx_init(&f);
	struct sl_state_writer_opts wo = {.interval_ns = 1000000};
	cr_assert_eq(sl_state_writer_start(&wo, &w), 0);
	for (uint32_t p = 0; p < W_PARTS; p++) {
		char err[300];
		struct sl_state_mark m;
		struct sl_state_part_opts o = {
		    .partition = p, .cache_bytes = 1, .on_commit = on_commit, .on_commit_arg = &c};
		cr_assert_eq(sl_state_part_open(f.db, &o, &parts[p], &m, err, sizeof(err)), 0);
		cr_assert_eq(sl_state_writer_add(w, parts[p]), 0);
	}
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&rd[i], NULL, reader, &c), 0);
	char k[32];
	for (uint64_t e = 1; e <= W_EVENTS; e++) {
		for (uint32_t p = 0; p < W_PARTS; p++) {
			struct sl_state *st = sl_state_part_view(parts[p]);
			/* Full: the writer commits and frees room (bounded). */
			for (uint64_t i = 0; !sl_state_part_poll(parts[p]); i++) {
				cr_assert_lt(i, 100000000ull, "the writer never freed room");
				sched_yield();
			}
			put_u64(st, "n", e);
			put_u64(st, "sq", e * e);
			snprintf(k, sizeof(k), "k%llu", (unsigned long long)(e % 5000));
			put_u64(st, k, e);
			struct sl_state_mark m = {.next = e};
			cr_assert_eq(sl_state_part_end_step(parts[p], &m, false), 0);
		}
	}
	/* Commit what is left, through the writer. */
	for (uint32_t p = 0; p < W_PARTS; p++) {
		struct sl_state_mark m = {.next = W_EVENTS};
		for (uint64_t i = 0; sl_state_part_committed(parts[p]) != W_EVENTS; i++) {
			cr_assert_lt(i, 100000000ull, "never committed");
			sl_state_part_poll(parts[p]);
			sl_state_part_end_step(parts[p], &m, true);
			sched_yield();
		}
	}
	atomic_store(&c.done, true);
	for (int i = 0; i < 2; i++)
		pthread_join(rd[i], NULL);
	sl_state_writer_stop(w);
	cr_assert_gt(atomic_load(&c.views), 0);
	cr_assert_gt(atomic_load(&c.distinct), 2, "the readers saw %llu commits",
	             (unsigned long long)atomic_load(&c.distinct));
	cr_assert_gt(atomic_load(&c.wakes), W_PARTS);
	for (uint32_t p = 0; p < W_PARTS; p++) {
		struct sl_state_part_stats ps;
		sl_state_part_get_stats(parts[p], &ps);
		cr_assert_gt(ps.commits, 1);
		sl_state_part_close(parts[p]);
	}
	fx_fini(&f);
}

/* ---- a process that dies ------------------------------------------------------------------ */

/* Release and ASan builds only: TSan cannot fork a process that has threads
 * (RocksDB's background threads are up by then). */
#ifndef SL_TSAN_CRITERION_SHIM_H

Test(state, a_process_killed_leaves_its_last_commit)
{
	struct fx f;
	fx_init(&f);
	sl_state_db_close(f.db);
	f.db = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* The child commits at 100, 200, ... 500, changes more, and dies
		 * without closing anything. */
		char err[300];
		struct sl_state_db *db;
		struct sl_state_db_opts o = {.path = f.path};
		if (sl_state_db_open(&o, &db, err, sizeof(err)) < 0)
			_exit(2);
		struct sl_state_part *p;
		struct sl_state_mark m;
		struct sl_state_part_opts po = {.partition = 1};
		if (sl_state_part_open(db, &po, &p, &m, err, sizeof(err)) < 0)
			_exit(3);
		struct sl_state *st = sl_state_part_view(p);
		for (uint64_t e = 1; e <= 550; e++) {
			char k[32];
			snprintf(k, sizeof(k), "k%llu", (unsigned long long)(e % 7));
			uint64_t v = e;
			if (sl_state_put(st, k, strlen(k), &v, 8) < 0 ||
			    sl_state_put(st, "n", 1, &v, 8) < 0)
				_exit(4);
			if (e % 100 == 0) {
				struct sl_state_mark mk = {.next = e};
				if (sl_state_part_sync(p, &mk, err, sizeof(err)) < 0)
					_exit(5);
			}
		}
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %d", status);
	char err[300];
	struct sl_state_db_opts o = {.path = f.path};
	cr_assert_eq(sl_state_db_open(&o, &f.db, err, sizeof(err)), 0, "%s", err);
	struct sl_state_mark m;
	struct sl_state_part *p = part_open(&f, 1, 0, &m);
	cr_assert_eq(m.next, 500);
	cr_assert_eq(m.gen, 5);
	struct sl_state *st = sl_state_part_view(p);
	cr_assert_eq(get_u64(st, "n"), 500);
	for (uint64_t j = 0; j < 7; j++) {
		char k[32];
		snprintf(k, sizeof(k), "k%llu", (unsigned long long)j);
		/* The last e <= 500 with e % 7 == j. */
		uint64_t want = 500 - ((500 - j) % 7 ? (500 - j) % 7 : 0);
		cr_assert_eq(get_u64(st, k), want, "%s", k);
	}
	sl_state_part_end_step(p, NULL, false);
	sl_state_part_close(p);
	fx_fini(&f);
}
#endif
