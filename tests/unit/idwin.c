/*
 * The event-id window (dedup/idwin.h) alone: find and add, a second add of
 * an id keeping the first, the time edge on both sides, the count cap,
 * truncate_from, the horizon guarantee, a randomized comparison against a
 * trivially correct model, and memory per id. Then on a partition
 * (topic/): duplicates by id answered like sequence duplicates, and the
 * window rebuilt at open answering every id like the live one, with its
 * start inside an older segment (by the cap and by time).
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "dedup/idwin.h"
#include "proto/proto.h"
#include "topic/topic.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return g_rng;
}

/* Id number n: distinct numbers, distinct ids, alike in their first bytes
 * (so the index cannot get by on a prefix). */
static void id_of(uint64_t n, uint8_t id[16])
{
	memset(id, 0xab, 8);
	memcpy(id + 8, &n, 8);
}

static struct sl_idwin *mk(int64_t window_ms, uint32_t cap)
{
	struct sl_idwin *w;
	cr_assert_eq(sl_idwin_create(window_ms, cap, &w), 0);
	return w;
}

static bool has(const struct sl_idwin *w, uint64_t n, uint64_t *off)
{
	uint8_t id[16];
	uint64_t o = UINT64_MAX;
	id_of(n, id);
	int r = sl_idwin_find(w, id, &o, NULL);
	cr_assert(r == 0 || r == 1);
	if (off)
		*off = o;
	return r == 1;
}

static int add(struct sl_idwin *w, uint64_t n, uint64_t off, int64_t t)
{
	uint8_t id[16];
	id_of(n, id);
	return sl_idwin_add(w, id, off, t);
}

Test(idwin, create_refuses_bad_arguments)
{
	struct sl_idwin *w = (void *)1;
	cr_assert_eq(sl_idwin_create(0, 10, &w), -EINVAL);
	cr_assert_null(w);
	cr_assert_eq(sl_idwin_create(1000, 0, &w), -EINVAL);
	cr_assert_eq(sl_idwin_create(1000, SL_IDWIN_CAP_MAX + 1, &w), -EINVAL);
}

Test(idwin, find_add_and_the_first_offset_kept)
{
	struct sl_idwin *w = mk(60000, 1000);
	uint64_t off;
	for (uint64_t i = 0; i < 500; i++)
		cr_assert_eq(add(w, i, 10 + 2 * i, 1000), 0);
	cr_assert_eq(sl_idwin_count(w), 500);
	for (uint64_t i = 0; i < 500; i++) {
		cr_assert(has(w, i, &off), "id %lu", (unsigned long)i);
		cr_assert_eq(off, 10 + 2 * i);
	}
	cr_assert_not(has(w, 500, NULL));
	cr_assert_not(has(w, UINT64_MAX, NULL));
	/* Same first 15 bytes, another last one: another id. */
	uint8_t id[16];
	id_of(7, id);
	id[15] ^= 1;
	cr_assert_eq(sl_idwin_find(w, id, &off, NULL), 0);

	/* A second add of an id held keeps the first offset (and counts
	 * nothing), but the next add must still be past it. */
	cr_assert_eq(add(w, 7, 5000, 1000), 1);
	cr_assert(has(w, 7, &off));
	cr_assert_eq(off, 24);
	cr_assert_eq(sl_idwin_count(w), 500);
	cr_assert_eq(add(w, 9999, 5000, 1000), -EINVAL, "offsets increase strictly");
	cr_assert_eq(add(w, 9999, 4000, 1000), -EINVAL);
	cr_assert_eq(add(w, 9999, 5001, 1000), 0);
	int64_t t = 0;
	id_of(9999, id);
	cr_assert_eq(sl_idwin_find(w, id, &off, &t), 1);
	cr_assert_eq(off, 5001);
	cr_assert_eq(t, 1000);
	sl_idwin_destroy(w);
}

/* The edge: an id stored at t is in the window while now - t < window;
 * at now - t == window it is out. */
Test(idwin, time_edge_both_sides)
{
	struct sl_idwin *w = mk(1000, 100);
	cr_assert_eq(add(w, 1, 0, 5000), 0);
	cr_assert_eq(add(w, 2, 1, 5001), 0);
	cr_assert_eq(sl_idwin_expire(w, 5999), 0, "999 ms after: inside");
	cr_assert(has(w, 1, NULL));
	cr_assert_eq(sl_idwin_horizon_ms(w), 0);
	cr_assert_eq(sl_idwin_expire(w, 6000), 1, "1000 ms after: out");
	cr_assert_not(has(w, 1, NULL));
	cr_assert(has(w, 2, NULL), "stored a ms later: still inside");
	cr_assert_eq(sl_idwin_horizon_ms(w), 5000);
	cr_assert_eq(sl_idwin_expire(w, 6001), 1);
	cr_assert_eq(sl_idwin_count(w), 0);
	cr_assert_eq(sl_idwin_horizon_ms(w), 5001);
	/* Empty, then used again: the marks start over. */
	cr_assert_eq(add(w, 3, 2, 7000), 0);
	int64_t t;
	uint64_t off;
	uint8_t id[16];
	id_of(3, id);
	cr_assert_eq(sl_idwin_find(w, id, &off, &t), 1);
	cr_assert_eq(t, 7000);
	/* A clock stepped back: recorded at the newest time, kept longer. */
	cr_assert_eq(add(w, 4, 3, 6500), 0);
	id_of(4, id);
	cr_assert_eq(sl_idwin_find(w, id, &off, &t), 1);
	cr_assert_eq(t, 7000);
	cr_assert_eq(sl_idwin_expire(w, 7999), 0);
	cr_assert_eq(sl_idwin_expire(w, 8000), 2);
	sl_idwin_destroy(w);
}

Test(idwin, count_cap_drops_oldest_first)
{
	struct sl_idwin *w = mk(60000, 100); /* not a power of two */
	for (uint64_t i = 0; i < 250; i++)
		cr_assert_eq(add(w, i, i, 1000 + (int64_t)i), 0);
	cr_assert_eq(sl_idwin_count(w), 100);
	for (uint64_t i = 0; i < 250; i++)
		cr_assert_eq(has(w, i, NULL), i >= 150, "id %lu", (unsigned long)i);
	cr_assert_eq(sl_idwin_horizon_ms(w), 1000 + 149, "the newest dropped by count");
	sl_idwin_destroy(w);
}

Test(idwin, truncate_from_drops_at_and_past_the_cut)
{
	struct sl_idwin *w = mk(60000, 1000);
	for (uint64_t i = 0; i < 100; i++)
		cr_assert_eq(add(w, i, i, 1000 + (int64_t)(i / 10)), 0);
	cr_assert_eq(sl_idwin_truncate_from(w, 200), 0);
	cr_assert_eq(sl_idwin_truncate_from(w, 60), 40);
	cr_assert_eq(sl_idwin_count(w), 60);
	for (uint64_t i = 0; i < 100; i++)
		cr_assert_eq(has(w, i, NULL), i < 60);
	cr_assert_eq(sl_idwin_horizon_ms(w), 0, "a cut is not a drop");
	/* Appends continue at the cut, with the ids that were cut too. */
	cr_assert_eq(add(w, 75, 60, 2000), 0);
	uint64_t off;
	cr_assert(has(w, 75, &off));
	cr_assert_eq(off, 60);
	/* The marks past the cut went with it: times are right again. */
	int64_t t;
	uint8_t id[16];
	id_of(75, id);
	cr_assert_eq(sl_idwin_find(w, id, &off, &t), 1);
	cr_assert_eq(t, 2000);
	id_of(59, id);
	cr_assert_eq(sl_idwin_find(w, id, &off, &t), 1);
	cr_assert_eq(t, 1005);
	cr_assert_eq(sl_idwin_expire(w, 1000 + 60000 + 5), 60);
	cr_assert_eq(sl_idwin_count(w), 1);
	cr_assert_eq(sl_idwin_truncate_from(w, 0), 1);
	cr_assert_eq(sl_idwin_count(w), 0);
	cr_assert_eq(add(w, 1, 0, 3000), 0);
	sl_idwin_destroy(w);
}

/*
 * A trivially correct model: every entry in an array in offset order, found
 * by a linear scan. The window and the model get the same random stream
 * (adds of new and repeated ids, expiries, cuts, clocks stepping back) and
 * must agree on every answer, offsets and times included; and the horizon
 * guarantee is checked against every id ever added.
 */
struct ment {
	uint64_t n, off;
	int64_t t;
};

struct model {
	struct ment *v;
	size_t head, len; /* live: v[head, len) */
	int64_t window, last_t, horizon;
	uint32_t cap;
	uint64_t next_min;
};

static int m_find(const struct model *m, uint64_t n)
{
	for (size_t i = m->head; i < m->len; i++)
		if (m->v[i].n == n)
			return (int)i;
	return -1;
}

static void m_drop(struct model *m)
{
	if (m->v[m->head].t > m->horizon)
		m->horizon = m->v[m->head].t;
	m->head++;
}

static int m_add(struct model *m, uint64_t n, uint64_t off, int64_t t)
{
	if (off < m->next_min)
		return -EINVAL;
	m->next_min = off + 1;
	if (m_find(m, n) >= 0)
		return 1;
	if (t < m->last_t)
		t = m->last_t;
	m->last_t = t;
	if (m->len - m->head == m->cap)
		m_drop(m);
	m->v[m->len++] = (struct ment){n, off, t};
	return 0;
}

static void randomized(uint64_t seed, uint32_t cap, uint32_t ids, int steps, uint32_t dmax)
{
	g_rng = seed;
	struct sl_idwin *w = mk(500, cap);
	if (dmax)
		cr_assert_eq(sl_idwin_set_distance_limit(w, dmax), 0);
	struct model m = {.v = calloc((size_t)steps + 1, sizeof(struct ment)),
	                  .window = 500,
	                  .last_t = INT64_MIN,
	                  .cap = cap};
	/* Every id ever added at its recorded time, for the horizon. */
	int64_t *added = calloc(ids, sizeof(*added));
	bool *was = calloc(ids, sizeof(*was));
	cr_assert(m.v && added && was);
	uint64_t off = 0;
	int64_t now = 100000;
	for (int s = 0; s < steps; s++) {
		uint64_t r = rnd() % 1000;
		if (r < 700) {
			uint64_t n = rnd() % ids;
			off += 1 + rnd() % 3;
			int64_t t = now - (rnd() % 50 == 0 ? (int64_t)(rnd() % 30) : 0);
			int got = add(w, n, off, t), want = m_add(&m, n, off, t);
			cr_assert_eq(got, want, "step %d add", s);
			if (want == 0) {
				added[n] = m.v[m.len - 1].t;
				was[n] = true;
			}
		} else if (r < 900) {
			now += (int64_t)(rnd() % 20);
		} else if (r < 980) {
			uint32_t got = sl_idwin_expire(w, now), want = 0;
			while (m.head < m.len && now - m.v[m.head].t >= m.window) {
				m_drop(&m);
				want++;
			}
			cr_assert_eq(got, want, "step %d expire", s);
		} else if (m.len > m.head) {
			/* A cut somewhere among the newest entries. */
			size_t k = m.head + (size_t)(rnd() % (m.len - m.head));
			uint64_t cut = m.v[k].off - (rnd() % 2);
			size_t before = m.len;
			while (m.len > m.head && m.v[m.len - 1].off >= cut) {
				was[m.v[m.len - 1].n] = false; /* its event is gone */
				m.len--;
			}
			if (cut < m.next_min)
				m.next_min = cut;
			cr_assert_eq(sl_idwin_truncate_from(w, cut), before - m.len);
			off = cut ? cut - 1 : 0; /* the next add may be at the cut */
		}
		cr_assert_eq(sl_idwin_count(w), m.len - m.head, "step %d", s);
		cr_assert_eq(sl_idwin_horizon_ms(w), m.horizon < 0 ? 0 : m.horizon);
		if (s % 97 == 0 || s == steps - 1)
			for (uint64_t n = 0; n < ids; n++) {
				uint8_t id[16];
				uint64_t o;
				int64_t t;
				id_of(n, id);
				int i = m_find(&m, n), got = sl_idwin_find(w, id, &o, &t);
				cr_assert_eq(got, i >= 0, "step %d id %lu", s, (unsigned long)n);
				if (i >= 0) {
					cr_assert_eq(o, m.v[i].off);
					cr_assert_eq(t, m.v[i].t);
				}
				/* The guarantee: added after the horizon, still here. */
				if (was[n] && added[n] > sl_idwin_horizon_ms(w))
					cr_assert_eq(got, 1,
					             "step %d: id %lu added at %ld > horizon %ld "
					             "is gone",
					             s, (unsigned long)n, (long)added[n],
					             (long)sl_idwin_horizon_ms(w));
			}
	}
	free(m.v);
	free(added);
	free(was);
	sl_idwin_destroy(w);
}

Test(idwin, randomized_against_a_model)
{
	randomized(1, 300, 2000, 60000, 0);  /* the cap binds, growth to 512 */
	randomized(2, 5000, 900, 60000, 0);  /* few ids, many repeats: time binds */
	randomized(3, 64, 100000, 30000, 0); /* never grows: cap below the start */
}

/* The same with distances that saturate at 1 or 3 slots from home: every
 * deletion that shifts a slot back must then find its home by rehashing
 * its id, which the default 15 makes rare. */
Test(idwin, randomized_with_distances_saturated)
{
	randomized(4, 300, 2000, 60000, 1);
	randomized(5, 5000, 900, 60000, 3);
	randomized(6, 4096, 20000, 60000, 1);
	struct sl_idwin *w = mk(500, 64);
	cr_assert_eq(sl_idwin_set_distance_limit(w, 0), -EINVAL);
	cr_assert_eq(sl_idwin_set_distance_limit(w, 16), -EINVAL);
	cr_assert_eq(sl_idwin_set_distance_limit(w, 2), -EINVAL); /* not all ones */
	sl_idwin_destroy(w);
}

/* Bytes the process holds allocated (jemalloc's stats.allocated: the
 * allocator the build links), or 0 without it. */
static size_t allocated(void)
{
	int (*ctl)(const char *, void *, size_t *, void *, size_t) =
	    (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
	uint64_t epoch = 1;
	size_t v = 0, sz = sizeof(epoch);
	if (!ctl)
		return 0;
	/* Freed blocks the thread's cache keeps count as allocated: flushed
	 * first, so the figure is what is live. */
	(void)ctl("thread.tcache.flush", NULL, NULL, NULL, 0);
	if (ctl("epoch", &epoch, &sz, &epoch, sz) != 0)
		return 0;
	sz = sizeof(v);
	return ctl("stats.allocated", &v, &sz, NULL, 0) == 0 ? v : 0;
}

/* 32 bytes per id at a power-of-two cap, ids arriving many per ms; a
 * trickle (each id its own ms) pays 16 more for its marks. Steady state:
 * no growth once full. */
Test(idwin, memory_per_id)
{
	const uint32_t cap = 1u << 18;
	size_t before = allocated();
	struct sl_idwin *w = mk(600000, cap);
	uint64_t n = 0;
	int bad = 0;
	/* No cr_assert in the loop: Criterion allocates for each. */
	for (; n < cap; n++)
		bad |= add(w, n, n, 1000 + (int64_t)(n / 500));
	size_t full = sl_idwin_memory(w), measured = allocated() - before;
	cr_assert_eq(bad, 0);
	double per = (double)full / cap;
	cr_log_info("idwin: %zu bytes for %u ids: %.2f bytes per id (the allocator: %.2f)", full,
	            cap, per, (double)measured / cap);
	cr_assert_leq(per, 32.1, "%.2f bytes per id", per);
	if (before)
		cr_assert_leq((double)measured / cap, 32.2, "the allocator holds %.2f bytes per id",
		              (double)measured / cap);
	for (; n < 3 * (uint64_t)cap; n++)
		cr_assert_eq(add(w, n, n, 1000 + (int64_t)(n / 500)), 0);
	cr_assert_eq(sl_idwin_memory(w), full, "steady state: nothing grows");
	cr_assert_eq(sl_idwin_count(w), cap);
	sl_idwin_destroy(w);

	w = mk(600000, cap);
	for (n = 0; n < cap; n++)
		cr_assert_eq(add(w, n, n, 1000 + (int64_t)n), 0);
	per = (double)sl_idwin_memory(w) / cap;
	cr_log_info("idwin: one id per ms: %.2f bytes per id", per);
	cr_assert_leq(per, 48.1, "%.2f bytes per id", per);
	sl_idwin_destroy(w);
}

/* ---- on a partition ------------------------------------------------------ */

static char g_dir[256];
static struct io_uring g_ring;
static struct sl_producers *g_prods;

static void psetup(void)
{
	char path[400], err[400];
	snprintf(g_dir, sizeof(g_dir), "/tmp/sluice-idwin-test-XXXXXX");
	cr_assert_not_null(mkdtemp(g_dir));
	cr_assert_eq(io_uring_queue_init(64, &g_ring, 0), 0);
	snprintf(path, sizeof(path), "%s/producers", g_dir);
	cr_assert_eq(sl_producers_open(path, &g_prods, err, sizeof(err)), 0, "%s", err);
	snprintf(path, sizeof(path), "%s/data", g_dir);
	cr_assert_eq(mkdir(path, 0755), 0);
}

static void pteardown(void)
{
	char cmd[300];
	sl_producers_close(g_prods);
	io_uring_queue_exit(&g_ring);
	snprintf(cmd, sizeof(cmd), getenv("KEEP") ? "true %s" : "rm -rf '%s'", g_dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(idwin_partition, .init = psetup, .fini = pteardown);

static void open_topics(struct sl_topics *t, int64_t window_ms, uint32_t cap)
{
	char path[400], err[400];
	snprintf(path, sizeof(path), "%s/data", g_dir);
	struct sl_topic_spec spec = {.name = "events",
	                             .n_parts = 1,
	                             .durability = SL_LOG_FSYNC,
	                             .segment_bytes = 4096,
	                             .dedup_window_ms = window_ms,
	                             .dedup_window_events = cap};
	cr_assert_eq(sl_topics_create(&spec, 1, 1, path, g_prods, t, err, sizeof(err)), 0, "%s",
	             err);
	cr_assert_null(t->v[0].parts[0].error);
	cr_assert_not_null(t->v[0].parts[0].idw);
}

/* Group commits until everything appended is durable (no journal here:
 * one fsync partition). */
static void commit(struct sl_log *log)
{
	for (int turns = 0; turns < 100000; turns++) {
		int ret = sl_log_flush(log, &g_ring, 7);
		cr_assert_geq(ret, 0, "flush: %s", sl_log_error(log));
		if (ret == 1)
			cr_assert_geq(io_uring_submit(&g_ring), 1);
		if (!sl_log_io_pending(log)) {
			if (sl_log_acked(log) == sl_log_end(log))
				return;
			continue;
		}
		struct io_uring_cqe *cqe;
		cr_assert_eq(io_uring_wait_cqe(&g_ring, &cqe), 0);
		if (cqe->user_data != SL_LOG_UD_IGNORE)
			cr_assert_geq(sl_log_on_cqe(log, cqe->res), 0);
		io_uring_cqe_seen(&g_ring, cqe);
	}
	cr_assert_fail("group commit never finished");
}

/* Event with id number n, some bytes of data. */
static uint32_t ev_of(uint8_t *buf, size_t cap, uint64_t n, const uint8_t **id_at)
{
	uint8_t id[16];
	char data[32];
	id_of(n, id);
	int dl = snprintf(data, sizeof(data), "payload %lu", (unsigned long)n);
	struct sl_event_view v = {.id = id,
	                          .type = "t",
	                          .type_len = 1,
	                          .aggregate = "k",
	                          .aggregate_len = 1,
	                          .data = (const uint8_t *)data,
	                          .data_len = (size_t)dl};
	int len = sl_event_encode(buf, cap, &v, NULL, 0);
	cr_assert_gt(len, 0);
	struct sl_event_view sv;
	cr_assert_eq(sl_event_scan(buf, (size_t)len, &sv), 0);
	*id_at = sv.id;
	return (uint32_t)len;
}

/* Produces event n as (pid, seq); returns sl_partition_produce's answer. */
static int produce(struct sl_partition *p, uint64_t pid, uint64_t seq, uint64_t n,
                   struct sl_ack_ref *ref)
{
	uint8_t buf[128];
	const uint8_t *id;
	uint32_t len = ev_of(buf, sizeof(buf), n, &id);
	memset(ref, 0, sizeof(*ref));
	ref->base_seq = seq;
	return sl_partition_produce(p, pid, 1, seq, 0, buf, len, id, ref);
}

static void drain_waiting(struct sl_partition *p)
{
	struct sl_ack_ref r;
	while (sl_partition_pop_any(p, &r))
		;
}

/* Duplicates by id answered like sequence duplicates: another producer's
 * resend, its own resend later (a gap by sequence), pid 0 recorded but not
 * checked, a stage's id recorded but not checked. */
Test(idwin_partition, duplicates_by_id_answered_like_sequence_duplicates)
{
	struct sl_topics t;
	open_topics(&t, 600000, 1024);
	struct sl_partition *p = &t.v[0].parts[0];
	struct sl_ack_ref ref;
	for (uint64_t i = 0; i < 10; i++) {
		cr_assert_eq(produce(p, 7, i, 100 + i, &ref), 0);
		cr_assert_eq(ref.offset, i);
		cr_assert_eq(ref.flags, 0);
	}
	/* Not durable yet: the duplicate waits for its original. */
	cr_assert_eq(produce(p, 8, 0, 103, &ref), 0);
	cr_assert_eq(ref.offset, 3);
	cr_assert_eq(ref.flags, SL_ACK_DUP);
	cr_assert_eq(sl_log_end(p->log), 10, "not stored");
	commit(p->log);
	drain_waiting(p);
	/* Durable: answered at once. */
	cr_assert_eq(produce(p, 8, 1, 105, &ref), 1);
	cr_assert_eq(ref.offset, 5);
	cr_assert_eq(ref.flags, SL_ACK_DUP);
	cr_assert_eq(atomic_load(&p->id_dups_pub), 2);
	/* Producer 8's sequences 0 and 1 were not recorded: its next event is
	 * new and stored, then its resend of 1 is a gap by sequence, and a
	 * duplicate by id. */
	cr_assert_eq(produce(p, 8, 2, 200, &ref), 0);
	cr_assert_eq(ref.offset, 10);
	cr_assert_eq(produce(p, 8, 1, 105, &ref), 1);
	cr_assert_eq(ref.offset, 5);
	cr_assert_eq(ref.flags, SL_ACK_DUP);
	/* A real gap (an id never stored) is still refused. */
	cr_assert_eq(produce(p, 8, 1, 999, &ref), -SL_ESEQ_GAP);
	/* pid 0 and a pipeline stage are never checked, but recorded. */
	cr_assert_eq(produce(p, 0, 0, 100, &ref), 0);
	cr_assert_eq(ref.offset, 11);
	cr_assert_eq(produce(p, SL_PRODUCERS_PIPE_ID_BASE | 5, 0, 101, &ref), 0);
	cr_assert_eq(ref.offset, 12);
	cr_assert_eq(produce(p, 0, 0, 300, &ref), 0);
	cr_assert_eq(produce(p, 9, 0, 300, &ref), 0, "pid 0's event: in the window");
	cr_assert_eq(ref.offset, 13);
	cr_assert_eq(ref.flags, SL_ACK_DUP);
	cr_assert_eq(atomic_load(&p->id_dups_pub), 4);
	cr_assert_eq(sl_log_end(p->log), 14);
	commit(p->log);
	drain_waiting(p);
	sl_topics_destroy(&t);
}

/* What a partition answers for id n: the offset of its original, or
 * UINT64_MAX. */
static uint64_t answer(struct sl_partition *p, uint64_t n)
{
	uint8_t id[16];
	uint64_t off;
	id_of(n, id);
	return sl_idwin_find(p->idw, id, &off, NULL) ? off : UINT64_MAX;
}

static uint32_t segments_in(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '\\.log$'", dir);
	FILE *f = popen(cmd, "r");
	unsigned n = 0;
	cr_assert_eq(fscanf(f, "%u", &n), 1);
	pclose(f);
	return n;
}

/* Bounded by the cap: 1,500 events in ~40 segments of 4 KiB, a window of
 * 1,024 ids: it starts well inside an older segment. The reopened window
 * answers every id like the live one, reads far less than the log, and
 * answers a resend by id. */
Test(idwin_partition, reopen_answers_like_the_live_window_cap_bound)
{
	struct sl_topics t;
	struct sl_ack_ref ref;
	open_topics(&t, 600000, 1024);
	struct sl_partition *p = &t.v[0].parts[0];
	const uint64_t N = 1500;
	for (uint64_t i = 0; i < N; i++) {
		cr_assert_eq(produce(p, 7, i, 1000 + i, &ref), 0);
		if (i % 50 == 49) {
			commit(p->log);
			drain_waiting(p);
		}
	}
	commit(p->log);
	drain_waiting(p);
	uint32_t segs = segments_in(p->dir);
	cr_assert_geq(segs, 10, "%u segments", segs);
	uint64_t live[1500];
	for (uint64_t i = 0; i < N; i++)
		live[i] = answer(p, 1000 + i);
	cr_assert_eq(sl_idwin_count(p->idw), 1024);
	int64_t horizon = sl_idwin_horizon_ms(p->idw);
	sl_topics_destroy(&t);

	open_topics(&t, 600000, 1024);
	p = &t.v[0].parts[0];
	for (uint64_t i = 0; i < N; i++)
		cr_assert_eq(answer(p, 1000 + i), live[i], "id %lu: %lu live", (unsigned long)i,
		             (unsigned long)live[i]);
	cr_assert_eq(sl_idwin_count(p->idw), 1024);
	cr_assert_geq(sl_idwin_horizon_ms(p->idw), horizon);
	cr_assert_leq(p->idw_replayed, 1025 + 0u, "read %lu records for ids",
	              (unsigned long)p->idw_replayed);
	cr_assert_eq(produce(p, 9, 0, 1000 + N - 1, &ref), 1);
	cr_assert_eq(ref.offset, N - 1);
	cr_assert_eq(ref.flags, SL_ACK_DUP);
	cr_assert_eq(produce(p, 9, 1, 1000, &ref), 0, "out of the window: stored again");
	cr_assert_eq(ref.offset, N);
	commit(p->log);
	drain_waiting(p);
	sl_topics_destroy(&t);
}

/* The batch time of the newest batch appended, read back by a view. */
static int64_t newest_time(struct sl_partition *p)
{
	return sl_log_append_time_ms(p->log);
}

/* Bounded by time: a first group of events, then (the clock polled past the
 * window) a second group spanning several segments. The reopened window
 * holds exactly the second group (within the window of the newest batch),
 * like the live one expired at that time, and skipped most of the first
 * group's segments. */
Test(idwin_partition, reopen_answers_like_the_live_window_time_bound)
{
	struct sl_topics t;
	struct sl_ack_ref ref;
	const int64_t win = 300;
	open_topics(&t, win, 100000);
	struct sl_partition *p = &t.v[0].parts[0];
	uint64_t seq = 0;
	/* Group commits of 25 events: a segment rolls only between them. */
	for (uint64_t i = 0; i < 600; i++, seq++) {
		cr_assert_eq(produce(p, 7, seq, i, &ref), 0);
		if (i % 25 == 24)
			commit(p->log);
	}
	commit(p->log);
	drain_waiting(p);
	int64_t t1 = newest_time(p);
	/* Poll the clock until the first group is out of the window: bounded
	 * (the window is 300 ms), never a sleep standing for an event. */
	for (int64_t guard = 0; (int64_t)(sl_wall_ns() / 1000000) - t1 <= win; guard++)
		cr_assert_lt(guard, 2000000000, "the clock does not move");
	uint32_t segs1 = segments_in(p->dir);
	int64_t t2 = INT64_MAX;
	for (uint64_t i = 600; i < 800; i++, seq++) {
		cr_assert_eq(produce(p, 7, seq, i, &ref), 0);
		if (t2 == INT64_MAX)
			t2 = newest_time(p);
		if (i % 25 == 24)
			commit(p->log);
	}
	commit(p->log);
	drain_waiting(p);
	int64_t t3 = newest_time(p);
	cr_assert_lt(t3 - t2, win, "the second group took %ld ms", (long)(t3 - t2));
	cr_assert_geq(segments_in(p->dir) - segs1, 2, "the second group spans segments");
	sl_idwin_expire(p->idw, t3);
	uint64_t live[800];
	for (uint64_t i = 0; i < 800; i++) {
		live[i] = answer(p, i);
		cr_assert_eq(live[i] != UINT64_MAX, i >= 600, "live id %lu", (unsigned long)i);
	}
	sl_topics_destroy(&t);

	open_topics(&t, win, 100000);
	p = &t.v[0].parts[0];
	for (uint64_t i = 0; i < 800; i++)
		cr_assert_eq(answer(p, i), live[i], "id %lu", (unsigned long)i);
	cr_assert_geq(sl_idwin_horizon_ms(p->idw), t1, "the first group counts as dropped");
	cr_assert_lt(p->idw_replayed, 700,
	             "read %lu records: the first group's segments "
	             "were skipped",
	             (unsigned long)p->idw_replayed);
	sl_topics_destroy(&t);
}
