/*
 * Concurrent queries (plugin ABI 1.1): the epoch module that keeps retired
 * memory alive while readers may hold it, and the counter projection read on
 * other threads while one thread applies (tables growing underneath). Run
 * under ASan (a freed table read is a use after free) and TSan (threads).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/epoch.h"
#include "plugins_util.h"

/* Checks on the reader threads are counted, with the first failure's line,
 * and asserted by the test's own thread after the join. */
static atomic_int bad_checks;
static atomic_int bad_line;
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			if (atomic_fetch_add(&bad_checks, 1) == 0)                                 \
				atomic_store(&bad_line, __LINE__);                                 \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)
#define ASSERT_NO_BAD_CHECKS()                                                                     \
	cr_assert_eq(atomic_load(&bad_checks), 0, "a reader's check at line %d failed",            \
	             atomic_load(&bad_line))

/* ---- the epoch module ----------------------------------------------------- */

static int freed_count;

static void count_free(void *p)
{
	freed_count++;
	free(p);
}

Test(concurrent_query, retired_memory_outlives_the_readers_that_saw_it)
{
	struct sl_epoch *e;
	cr_assert_eq(sl_epoch_create(&e), 0);
	struct sl_epoch_rec *w = sl_epoch_rec_get(e), *rd = sl_epoch_rec_get(e);
	cr_assert(w && rd && w != rd);

	freed_count = 0;
	sl_epoch_enter(rd);
	sl_epoch_retire(w, malloc(16), count_free);
	/* However often the writer polls, the open section keeps it. */
	for (int i = 0; i < 100; i++)
		cr_assert(sl_epoch_poll(w));
	cr_assert_eq(freed_count, 0);
	sl_epoch_leave(rd);
	/* A grace period takes a couple of epoch advances, each one poll. */
	for (int i = 0; i < 8 && sl_epoch_poll(w); i++)
		;
	cr_assert_eq(freed_count, 1);
	cr_assert_not(sl_epoch_poll(w));

	/* With no reader inside, the barrier frees at once. */
	sl_epoch_retire(w, malloc(16), count_free);
	sl_epoch_retire(w, malloc(16), count_free);
	sl_epoch_barrier(w);
	cr_assert_eq(freed_count, 3);

	/* A given-back record is handed out again. */
	sl_epoch_rec_put(rd);
	cr_assert_eq(sl_epoch_rec_get(e), rd);
	sl_epoch_rec_put(rd);
	sl_epoch_rec_put(w);
	sl_epoch_destroy(e);
}

/* A writer republishes a value thousands of times while readers read it:
 * a reader must never see a retired (poisoned or freed) one. */
struct box {
	uint64_t magic, serial;
};
#define BOX_LIVE 0x600df00dull

struct stress {
	struct sl_epoch *e;
	_Atomic(struct box *) cur;
	atomic_bool stop;
	atomic_uint_fast64_t reads;
};

static void box_free(void *p)
{
	struct box *b = p;
	b->magic = 0xdeadull;
	free(b);
}

static void *stress_reader(void *arg)
{
	struct stress *s = arg;
	uint64_t last = 0, n = 0;
	struct sl_epoch_rec *r = sl_epoch_rec_get(s->e);

	CHECK(r);
	/* Bounded by the writer's run (stop) and a hard cap. */
	while (!atomic_load(&s->stop) && n < 50000000) {
		sl_epoch_enter(r);
		struct box *b = atomic_load_explicit(&s->cur, memory_order_acquire);
		bool ok = b->magic == BOX_LIVE && b->serial >= last;
		last = b->serial;
		sl_epoch_leave(r);
		CHECK(ok);
		n++;
		atomic_fetch_add_explicit(&s->reads, 1, memory_order_relaxed);
	}
out:
	sl_epoch_rec_put(r);
	return NULL;
}

Test(concurrent_query, readers_never_see_freed_memory)
{
	struct stress s = {0};
	pthread_t th[2];
	cr_assert_eq(sl_epoch_create(&s.e), 0);
	struct sl_epoch_rec *w = sl_epoch_rec_get(s.e);
	struct box *b = malloc(sizeof(*b));
	*b = (struct box){BOX_LIVE, 0};
	atomic_store(&s.cur, b);

	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, stress_reader, &s), 0);
	/* At least 20,000 republications, and on until the readers have read
	 * a good many times (they may start late on a busy machine). */
	for (uint64_t i = 1; i <= 20000 || (atomic_load(&s.reads) < 100000 && i < 20000000); i++) {
		struct box *nb = malloc(sizeof(*nb));
		*nb = (struct box){BOX_LIVE, i};
		struct box *old = atomic_exchange_explicit(&s.cur, nb, memory_order_acq_rel);
		sl_epoch_retire(w, old, box_free);
		sl_epoch_poll(w);
	}
	atomic_store(&s.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ASSERT_NO_BAD_CHECKS();
	cr_assert_geq(atomic_load(&s.reads), 100000);
	sl_epoch_barrier(w);
	cr_assert_not(sl_epoch_poll(w));
	free(atomic_load(&s.cur));
	sl_epoch_rec_put(w);
	sl_epoch_destroy(s.e);
}

/* ---- the counter projection, queried while it applies --------------------- */

enum { AGGS = 60000, ROUNDS = 3, BATCH = 64 };

struct cq {
	struct sl_plugin *p;
	struct sl_plugin_inst *in;
	struct sl_epoch *e;
	atomic_uint_fast64_t applied; /* events applied, published after each batch */
	atomic_bool stop;
	atomic_int started;
	atomic_uint_fast64_t queries;
};

/* Count in a FULL answer {"key":...,"count":N}. */
static uint64_t count_of(const struct sl_plugin_out *o)
{
	const char *c = memmem(o->buf.data, o->buf.len, "\"count\":", 8);
	return c ? strtoull(c + 8, NULL, 10) : 0;
}

static void *cq_reader(void *arg)
{
	struct cq *q = arg;
	struct sl_plugin_out out = {0};
	struct sl_epoch_rec *r = sl_epoch_rec_get(q->e);
	uint64_t last_total = 0, last_type = 0, queries = 0;
	const struct sl_projection_ops *ops = &q->p->ops.projection;
	char key[32];

	CHECK(r);
	atomic_fetch_add(&q->started, 1);
	while (!atomic_load(&q->stop) && queries < 10000000) {
		/* What the writer had published before this query began is
		 * the least the query may see. */
		uint64_t floor = atomic_load_explicit(&q->applied, memory_order_acquire);
		sl_epoch_enter(r);
		out.buf.len = 0;
		int ret = ops->query(q->in->inst, "total", 5, SL_PLUGIN_QUERY_FULL, &out);
		uint64_t total = ret == 0 ? count_of(&out) : 0;
		out.buf.len = 0;
		int tret = ops->query(q->in->inst, "type:T", 6, SL_PLUGIN_QUERY_FULL, &out);
		uint64_t type = tret == 0 ? count_of(&out) : 0;
		/* An aggregate the writer has certainly inserted by `floor`. */
		int aret = 0;
		uint64_t agg = 1;
		if (floor) {
			uint64_t k = (queries * 7919) % (floor < AGGS ? floor : AGGS);
			snprintf(key, sizeof(key), "a%llu", (unsigned long long)k);
			out.buf.len = 0;
			aret = ops->query(q->in->inst, key, (uint32_t)strlen(key),
			                  SL_PLUGIN_QUERY_FULL, &out);
			agg = aret == 0 ? count_of(&out) : 0;
		}
		sl_epoch_leave(r);
		CHECK(ret == 0 && total >= floor && total >= last_total);
		CHECK(!floor || (tret == 0 && type >= floor && type >= last_type));
		CHECK(aret == 0 && agg >= 1);
		last_total = total;
		last_type = type;
		queries++;
		atomic_fetch_add_explicit(&q->queries, 1, memory_order_relaxed);
	}
out:
	sl_epoch_rec_put(r);
	sl_plugin_out_release(&out);
	return NULL;
}

Test(concurrent_query, counter_answers_while_it_applies)
{
	struct cq q = {0};
	pthread_t th[2];
	char err[256];
	static uint8_t evs[BATCH][128];
	struct sl_plugin_event pe[BATCH];

	cr_assert_eq(sl_epoch_create(&q.e), 0);
	q.p = tu_load_from(SL_TEST_PLUGIN_DIR, "mem_counter", SL_PLUGIN_PROJECTION);
	cr_assert(sl_plugin_concurrent_query(q.p));
	struct sl_plugin_inst_opts o = {
	    .partition = 0, .n_partitions = 1, .topic = "events", .epoch = q.e};
	cr_assert_eq(sl_plugin_inst_create(q.p, &o, &q.in, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(q.in->ctx.er);

	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&th[i], NULL, cq_reader, &q), 0);
	/* The readers are running before the first apply (bounded wait). */
	for (uint64_t t0 = sl_now_ns(); atomic_load(&q.started) < 2;) {
		cr_assert_lt(sl_now_ns() - t0, 10000000000ull, "readers did not start");
		sched_yield();
	}
	/* New aggregates first (the tables double many times under the
	 * readers), then every one again. */
	uint64_t n = 0;
	char agg[32];
	for (uint32_t round = 0; round < ROUNDS; round++)
		for (uint32_t base = 0; base < AGGS; base += BATCH) {
			uint32_t k = AGGS - base < BATCH ? AGGS - base : BATCH;
			for (uint32_t j = 0; j < k; j++) {
				snprintf(agg, sizeof(agg), "a%u", base + j);
				uint32_t len =
				    tu_event(evs[j], sizeof(evs[j]), "T", agg, NULL, n + j);
				tu_fill(&pe[j], evs[j], len, 0, n + j);
			}
			cr_assert_eq(q.p->ops.projection.apply(q.in->inst, pe, k, NULL), 0);
			n += k;
			atomic_store_explicit(&q.applied, n, memory_order_release);
			sl_plugin_inst_poll(q.in);
		}
	atomic_store(&q.stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	ASSERT_NO_BAD_CHECKS();
	cr_assert_gt(atomic_load(&q.queries), 0);

	struct sl_plugin_out out = {0};
	cr_assert_eq(q.p->ops.projection.query(q.in->inst, "total", 5, SL_PLUGIN_QUERY_FULL, &out),
	             0);
	cr_assert_eq(count_of(&out), (uint64_t)AGGS * ROUNDS);
	out.buf.len = 0;
	cr_assert_eq(q.p->ops.projection.query(q.in->inst, "a777", 4, SL_PLUGIN_QUERY_FULL, &out),
	             0);
	cr_assert_eq(count_of(&out), ROUNDS);
	sl_plugin_out_release(&out);
	sl_plugin_inst_destroy(q.in); /* runs what is still retired */
	sl_plugin_unload(q.p);
	sl_epoch_destroy(q.e);
}
