/*
 * ring: FIFO order, no loss, no duplicates, the full/empty edges (a ring of
 * N slots holds N - 1), partial batches at the edges and across the end of
 * the slot array, counters wrapping past UINT_MAX, typed rings; then real
 * threads pinned to different cores (SPSC, MPMC 2 producers + 2 consumers,
 * MPSC) checking that every tagged item arrives exactly once and in each
 * producer's order. Every wait is bounded: a thread stuck for STUCK_NS fails
 * the test instead of hanging it.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ring/ring.h"

/* ---- single-threaded ---- */

struct ptr_ops {
	const char *name;
	bool (*push)(struct sl_ring *, void *);
	bool (*pop)(struct sl_ring *, void **);
	unsigned int (*push_batch)(struct sl_ring *, void *const *, unsigned int);
	unsigned int (*pop_batch)(struct sl_ring *, void **, unsigned int);
};

static const struct ptr_ops ops[] = {
    {"spsc", sl_ring_push_spsc, sl_ring_pop_spsc, sl_ring_push_batch_spsc, sl_ring_pop_batch_spsc},
    {"mpmc", sl_ring_push_mpmc, sl_ring_pop_mpmc, sl_ring_push_batch_mpmc, sl_ring_pop_batch_mpmc},
};

#define P(v) ((void *)(uintptr_t)(v))
#define V(p) ((uintptr_t)(p))

static struct sl_ring ring; /* static storage: SL_CACHELINE-aligned */

Test(ring, init_rejects_bad_capacity)
{
	const unsigned int bad[] = {0, 1, 3, 6, 1000, (1u << 31) + 1, UINT_MAX};

	for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++)
		cr_assert_eq(sl_ring_init(&ring, bad[i]), -EINVAL, "capacity %u", bad[i]);
	cr_assert_eq(sl__ring_init(&ring, 8, 0), -EINVAL);

	cr_assert_eq(sl_ring_init(&ring, 2), 0);
	cr_assert_eq(sl_ring_capacity(&ring), 2);
	cr_assert_eq((uintptr_t)ring.slots % SL_CACHELINE, 0);
	sl_ring_destroy(&ring);
	cr_assert_null(ring.slots);
}

Test(ring, counters_live_on_separate_cache_lines)
{
	cr_assert_eq(__alignof__(struct sl_ring), SL_CACHELINE);
	cr_assert_geq(offsetof(struct sl_ring, ck.p_tail) - offsetof(struct sl_ring, ck.c_head),
	              SL_CACHELINE);
	cr_assert_eq(offsetof(struct sl_ring, ck.p_tail) / SL_CACHELINE,
	             offsetof(struct sl_ring, ck.p_head) / SL_CACHELINE);
	size_t lines[] = {
	    offsetof(struct sl_ring, ck.c_head) / SL_CACHELINE,
	    offsetof(struct sl_ring, ck.p_tail) / SL_CACHELINE,
	    offsetof(struct sl_ring, ck.mask) / SL_CACHELINE,
	    offsetof(struct sl_ring, p_seen_c) / SL_CACHELINE,
	    offsetof(struct sl_ring, c_seen_p) / SL_CACHELINE,
	};
	for (size_t i = 0; i < SL_ARRAY_LEN(lines); i++)
		for (size_t j = i + 1; j < SL_ARRAY_LEN(lines); j++)
			cr_assert_neq(lines[i], lines[j], "fields %zu and %zu share a line", i, j);
	cr_assert_eq(offsetof(struct sl_ring, slots) / SL_CACHELINE,
	             offsetof(struct sl_ring, ck.mask) / SL_CACHELINE);
}

Test(ring, holds_capacity_minus_one_then_refuses)
{
	const unsigned int caps[] = {2, 8, 1024};

	for (size_t o = 0; o < SL_ARRAY_LEN(ops); o++) {
		for (size_t c = 0; c < SL_ARRAY_LEN(caps); c++) {
			const unsigned int cap = caps[c];
			void *item = NULL, *one = P(1);

			cr_assert_eq(sl_ring_init(&ring, cap), 0);
			cr_assert_not(ops[o].pop(&ring, &item), "%s: pop from empty", ops[o].name);
			cr_assert_eq(ops[o].pop_batch(&ring, &item, 1), 0);
			cr_assert_eq(sl_ring_size(&ring), 0);
			for (unsigned int i = 0; i < cap - 1; i++)
				cr_assert(ops[o].push(&ring, P(i + 1)), "%s cap %u: push %u",
				          ops[o].name, cap, i);
			cr_assert_eq(sl_ring_size(&ring), cap - 1);
			cr_assert_not(ops[o].push(&ring, P(cap)), "%s cap %u: push into full",
			              ops[o].name, cap);
			cr_assert_eq(ops[o].push_batch(&ring, &one, 1), 0);
			cr_assert_eq(sl_ring_size(&ring), cap - 1);
			for (unsigned int i = 0; i < cap - 1; i++) {
				cr_assert(ops[o].pop(&ring, &item));
				cr_assert_eq(V(item), i + 1, "%s cap %u: FIFO", ops[o].name, cap);
			}
			cr_assert_not(ops[o].pop(&ring, &item));
			cr_assert_eq(ops[o].pop_batch(&ring, &item, 1), 0);
			cr_assert_eq(sl_ring_size(&ring), 0);
			sl_ring_destroy(&ring);
		}
	}
}

static void expect_seq(void **got, unsigned int n, uintptr_t first, const char *what)
{
	for (unsigned int i = 0; i < n; i++)
		cr_assert_eq(V(got[i]), first + i, "%s: item %u is %lu, want %lu", what, i,
		             (unsigned long)V(got[i]), (unsigned long)(first + i));
}

Test(ring, batches_are_partial_at_the_edges_and_cross_the_end)
{
	void *in[16], *out[16];

	for (size_t o = 0; o < SL_ARRAY_LEN(ops); o++) {
		const char *name = ops[o].name;
		uintptr_t next_in = 1, next_out = 1;

		for (unsigned int i = 0; i < 16; i++)
			in[i] = NULL;
		cr_assert_eq(sl_ring_init(&ring, 8), 0);
		/* Move the indices to slot 5 so the next batch crosses the end. */
		for (unsigned int i = 0; i < 5; i++)
			in[i] = P(next_in++);
		cr_assert_eq(ops[o].push_batch(&ring, in, 5), 5, "%s", name);
		cr_assert_eq(ops[o].pop_batch(&ring, out, 5), 5);
		expect_seq(out, 5, next_out, name);
		next_out += 5;

		/* Asking for 10 into 7 free slots (5, 6, 7, 0, 1, 2, 3). */
		for (unsigned int i = 0; i < 10; i++)
			in[i] = P(next_in + i);
		cr_assert_eq(ops[o].push_batch(&ring, in, 10), 7, "%s: partial push", name);
		next_in += 7;
		cr_assert_eq(ops[o].push_batch(&ring, in, 1), 0, "%s: push into full", name);
		cr_assert_eq(ops[o].push_batch(&ring, in, 0), 0);
		cr_assert_eq(sl_ring_size(&ring), 7);

		cr_assert_eq(ops[o].pop_batch(&ring, out, 0), 0);
		cr_assert_eq(ops[o].pop_batch(&ring, out, 4), 4, "%s", name);
		expect_seq(out, 4, next_out, name);
		next_out += 4;

		/* 4 free slots, again across the end (4, 5, 6, 7). */
		for (unsigned int i = 0; i < 6; i++)
			in[i] = P(next_in + i);
		cr_assert_eq(ops[o].push_batch(&ring, in, 6), 4, "%s: partial push", name);
		next_in += 4;

		cr_assert_eq(ops[o].pop_batch(&ring, out, 16), 7, "%s: partial pop", name);
		expect_seq(out, 7, next_out, name);
		next_out += 7;
		cr_assert_eq(ops[o].pop_batch(&ring, out, 16), 0, "%s: pop from empty", name);
		cr_assert_eq(next_in, next_out);
		sl_ring_destroy(&ring);
	}
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Random single and batch operations against a model: every count returned
 * must be exactly min(asked, room) or min(asked, held), and items come out in
 * the order they went in. Covers every wrap offset and batch length. */
Test(ring, random_ops_match_a_model)
{
	void *in[24], *out[24];

	for (size_t o = 0; o < SL_ARRAY_LEN(ops); o++) {
		const unsigned int cap = 16;
		uint64_t rng = 0x9e3779b97f4a7c15ull + o;
		uintptr_t next_in = 1, next_out = 1;

		cr_assert_eq(sl_ring_init(&ring, cap), 0);
		for (int step = 0; step < 20000; step++) {
			unsigned int held = (unsigned int)(next_in - next_out);
			unsigned int r = (unsigned int)xorshift(&rng);
			unsigned int n = (r >> 8) % 21, want, got;

			switch (r % 4) {
			case 0:
				got = ops[o].push(&ring, P(next_in)) ? 1 : 0;
				want = held < cap - 1 ? 1 : 0;
				cr_assert_eq(got, want, "%s step %d: push", ops[o].name, step);
				next_in += got;
				break;
			case 1:
				for (unsigned int i = 0; i < n; i++)
					in[i] = P(next_in + i);
				got = ops[o].push_batch(&ring, in, n);
				want = n < cap - 1 - held ? n : cap - 1 - held;
				cr_assert_eq(got, want, "%s step %d: push_batch %u", ops[o].name,
				             step, n);
				next_in += got;
				break;
			case 2:
				got = ops[o].pop(&ring, out) ? 1 : 0;
				cr_assert_eq(got, held ? 1u : 0u, "%s step %d: pop", ops[o].name,
				             step);
				expect_seq(out, got, next_out, ops[o].name);
				next_out += got;
				break;
			default:
				got = ops[o].pop_batch(&ring, out, n);
				want = n < held ? n : held;
				cr_assert_eq(got, want, "%s step %d: pop_batch %u", ops[o].name,
				             step, n);
				expect_seq(out, got, next_out, ops[o].name);
				next_out += got;
				break;
			}
			cr_assert_eq(sl_ring_size(&ring), (unsigned int)(next_in - next_out));
		}
		sl_ring_destroy(&ring);
	}
}

/* The counters are unsigned int and wrap after 2^32 items; start just below
 * the wrap and go through it with single and batch operations. */
Test(ring, counters_wrap_past_uint_max)
{
	void *in[8], *out[8];

	for (size_t o = 0; o < SL_ARRAY_LEN(ops); o++) {
		const unsigned int start = UINT_MAX - 5;
		uintptr_t next_in = 1, next_out = 1;

		cr_assert_eq(sl_ring_init(&ring, 8), 0);
		ring.ck.c_head = ring.ck.p_tail = ring.ck.p_head = start;
		ring.p_seen_c = ring.c_seen_p = start;
		for (int lap = 0; lap < 6; lap++) {
			for (unsigned int i = 0; i < 6; i++)
				in[i] = P(next_in + i);
			cr_assert_eq(ops[o].push_batch(&ring, in, 6), 6, "%s lap %d", ops[o].name,
			             lap);
			next_in += 6;
			cr_assert(ops[o].push(&ring, P(next_in)));
			next_in++;
			cr_assert_not(ops[o].push(&ring, P(next_in)), "%s lap %d: full",
			              ops[o].name, lap);
			cr_assert_eq(sl_ring_size(&ring), 7);
			cr_assert(ops[o].pop(&ring, out));
			expect_seq(out, 1, next_out, ops[o].name);
			next_out++;
			cr_assert_eq(ops[o].pop_batch(&ring, out, 8), 6, "%s lap %d", ops[o].name,
			             lap);
			expect_seq(out, 6, next_out, ops[o].name);
			next_out += 6;
		}
		cr_assert_lt(ring.ck.c_head, start, "the counters did wrap");
		sl_ring_destroy(&ring);
	}
}

/* ---- typed rings ---- */

struct desc {
	uint32_t producer;
	uint32_t seq;
	uint64_t offset;
	uint64_t len;
	uint64_t check; /* a function of the rest: catches torn copies */
};
SL_RING_DEFINE(desc, struct desc);

struct odd5 {
	uint8_t b[5];
};
SL_RING_DEFINE(odd5, struct odd5);

struct odd12 {
	uint32_t w[3];
};
SL_RING_DEFINE(odd12, struct odd12);

static uint64_t desc_check(const struct desc *d)
{
	return ((uint64_t)d->producer << 32 | d->seq) * 0x9e3779b97f4a7c15ull ^ d->offset ^
	       (d->len << 7);
}

static struct desc make_desc(uint32_t producer, uint32_t seq)
{
	struct desc d = {
	    .producer = producer, .seq = seq, .offset = (uint64_t)seq * 4096, .len = 100 + seq % 7};
	d.check = desc_check(&d);
	return d;
}

static struct sl_ring_desc dring;
static struct sl_ring_odd5 r5;
static struct sl_ring_odd12 r12;

Test(ring, typed_ring_round_trip)
{
	struct desc in[10], out[10], one;

	cr_assert_eq(sizeof(struct desc), 32);
	cr_assert_eq(sl_ring_desc_init(&dring, 0), -EINVAL);
	for (int mp = 0; mp < 2; mp++) {
		uint32_t next_in = 0, next_out = 0;

		cr_assert_eq(sl_ring_desc_init(&dring, 8), 0);
		cr_assert_eq(sl_ring_desc_capacity(&dring), 8);
		for (int lap = 0; lap < 5; lap++) {
			for (unsigned int i = 0; i < 10; i++)
				in[i] = make_desc(7, next_in + i);
			unsigned int got = mp ? sl_ring_desc_push_batch_mpmc(&dring, in, 10)
			                      : sl_ring_desc_push_batch_spsc(&dring, in, 10);
			cr_assert_eq(got, 7, "mp %d lap %d", mp, lap);
			next_in += 7;
			one = make_desc(7, next_in);
			cr_assert_not(mp ? sl_ring_desc_push_mpmc(&dring, &one)
			                 : sl_ring_desc_push_spsc(&dring, &one));
			cr_assert_eq(sl_ring_desc_size(&dring), 7);

			cr_assert(mp ? sl_ring_desc_pop_mpmc(&dring, &one)
			             : sl_ring_desc_pop_spsc(&dring, &one));
			struct desc want = make_desc(7, next_out++);
			cr_assert_eq(memcmp(&one, &want, sizeof(one)), 0);
			got = mp ? sl_ring_desc_pop_batch_mpmc(&dring, out, 10)
			         : sl_ring_desc_pop_batch_spsc(&dring, out, 10);
			cr_assert_eq(got, 6);
			for (unsigned int i = 0; i < got; i++) {
				want = make_desc(7, next_out++);
				cr_assert_eq(memcmp(&out[i], &want, sizeof(want)), 0,
				             "mp %d lap %d item %u", mp, lap, i);
			}
			/* A lone push and pop to shift the wrap offset each lap. */
			one = make_desc(7, next_in++);
			cr_assert(mp ? sl_ring_desc_push_mpmc(&dring, &one)
			             : sl_ring_desc_push_spsc(&dring, &one));
			cr_assert(mp ? sl_ring_desc_pop_mpmc(&dring, &one)
			             : sl_ring_desc_pop_spsc(&dring, &one));
			cr_assert_eq(one.seq, next_out++);
			cr_assert_not(mp ? sl_ring_desc_pop_mpmc(&dring, &one)
			                 : sl_ring_desc_pop_spsc(&dring, &one));
		}
		sl_ring_desc_destroy(&dring);
	}
}

/* Sizes that are not a multiple of 8 take the narrower word copies on the
 * MPMC ends (bytes for 5, 32-bit words for 12). */
Test(ring, typed_ring_odd_sizes)
{
	struct odd5 a[5], b[5];
	struct odd12 c[5], d[5];

	cr_assert_eq(sl_ring_odd5_init(&r5, 4), 0);
	cr_assert_eq(sl_ring_odd12_init(&r12, 4), 0);
	for (int lap = 0; lap < 4; lap++) {
		for (int i = 0; i < 5; i++) {
			for (int j = 0; j < 5; j++)
				a[i].b[j] = (uint8_t)(lap * 31 + i * 5 + j);
			for (int j = 0; j < 3; j++)
				c[i].w[j] = (uint32_t)(lap * 1000003 + i * 3 + j);
		}
		cr_assert_eq(sl_ring_odd5_push_batch_mpmc(&r5, a, 5), 3);
		cr_assert_eq(sl_ring_odd5_pop_batch_mpmc(&r5, b, 5), 3);
		cr_assert_eq(memcmp(a, b, 3 * sizeof(a[0])), 0, "lap %d", lap);
		cr_assert(sl_ring_odd5_push_spsc(&r5, &a[4]));
		cr_assert(sl_ring_odd5_pop_spsc(&r5, &b[4]));
		cr_assert_eq(memcmp(&a[4], &b[4], sizeof(a[4])), 0);

		cr_assert_eq(sl_ring_odd12_push_batch_mpmc(&r12, c, 5), 3);
		cr_assert(sl_ring_odd12_pop_mpmc(&r12, &d[0]));
		cr_assert_eq(sl_ring_odd12_pop_batch_spsc(&r12, &d[1], 4), 2);
		cr_assert_eq(memcmp(c, d, 3 * sizeof(c[0])), 0, "lap %d", lap);
	}
	sl_ring_odd5_destroy(&r5);
	sl_ring_odd12_destroy(&r12);
}

/* ---- threads ---- */

#if SL_SANITIZED
#define PER_PRODUCER (1u << 15)
#else
#define PER_PRODUCER (1u << 18)
#endif
#define STUCK_NS    (20ull * 1000 * 1000 * 1000)
#define MAX_THREADS 4

/* What a pointer item points at: written by its producer just before the
 * push and read by the consumer, so TSan checks the ring's happens-before on
 * the payload too (the MPMC slots themselves are atomic words). */
struct payload {
	uint32_t producer;
	uint32_t seq;
};

enum mt_kind { MT_PTR, MT_TYPED };

struct mt {
	enum mt_kind kind;
	bool mp_push, mc_pop;
	unsigned int batch;
	unsigned int producers, consumers;
	unsigned int capacity;
	struct sl_ring *ring;
	struct sl_ring_desc *tring;
	struct payload *payloads; /* producers * PER_PRODUCER */
	uint32_t *seen;           /* producers * PER_PRODUCER, atomic counters */
	uint64_t popped;          /* atomic */
	int failed;               /* atomic: first failure wins the message */
	char why[256];
};

struct worker {
	struct mt *mt;
	unsigned int id;   /* producer or consumer index */
	unsigned int slot; /* thread index: which CPU it pins to */
};

static void mt_fail(struct mt *mt, const char *fmt, ...)
{
	int zero = 0;
	va_list ap;

	if (!__atomic_compare_exchange_n(&mt->failed, &zero, 1, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE))
		return;
	va_start(ap, fmt);
	vsnprintf(mt->why, sizeof(mt->why), fmt, ap);
	va_end(ap);
}

static bool mt_failed(struct mt *mt)
{
	return __atomic_load_n(&mt->failed, __ATOMIC_ACQUIRE) != 0;
}

/* Pins the calling thread to the i-th CPU it may run on (modulo their count). */
static int pin(unsigned int i)
{
	cpu_set_t allowed, one;
	int n, cpu;

	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		return -errno;
	n = CPU_COUNT(&allowed);
	if (n <= 0)
		return -EINVAL;
	i %= (unsigned int)n;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed) && i-- == 0)
			break;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return -pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
}

/* Bounded waiting after a failed push or pop: pause at first, then yield so a
 * thread sharing the core can run, and give up after STUCK_NS without
 * progress. */
struct spin {
	unsigned int fails;
	uint64_t since;
};

static bool spin_more(struct spin *s)
{
	uint64_t now;

	if (++s->fails < 256) {
		ck_pr_stall();
		return true;
	}
	now = sl_now_ns();
	if (s->fails == 256)
		s->since = now;
	else if (now - s->since > STUCK_NS)
		return false;
	sched_yield();
	return true;
}

static unsigned int mt_push(struct mt *mt, unsigned int p, uint32_t seq, unsigned int n)
{
	if (mt->kind == MT_PTR) {
		void *items[64];

		for (unsigned int i = 0; i < n; i++) {
			struct payload *pl = &mt->payloads[(size_t)p * PER_PRODUCER + seq + i];

			pl->producer = p;
			pl->seq = seq + i;
			items[i] = pl;
		}
		if (mt->batch == 1)
			return (mt->mp_push ? sl_ring_push_mpmc(mt->ring, items[0])
			                    : sl_ring_push_spsc(mt->ring, items[0]))
			           ? 1
			           : 0;
		return mt->mp_push ? sl_ring_push_batch_mpmc(mt->ring, items, n)
		                   : sl_ring_push_batch_spsc(mt->ring, items, n);
	}
	struct desc items[64];

	for (unsigned int i = 0; i < n; i++)
		items[i] = make_desc(p, seq + i);
	if (mt->batch == 1)
		return (mt->mp_push ? sl_ring_desc_push_mpmc(mt->tring, &items[0])
		                    : sl_ring_desc_push_spsc(mt->tring, &items[0]))
		           ? 1
		           : 0;
	return mt->mp_push ? sl_ring_desc_push_batch_mpmc(mt->tring, items, n)
	                   : sl_ring_desc_push_batch_spsc(mt->tring, items, n);
}

static void *producer_main(void *arg)
{
	struct worker *w = arg;
	struct mt *mt = w->mt;
	struct spin spin = {0};
	uint32_t seq = 0;
	int err = pin(w->slot);

	if (err) {
		mt_fail(mt, "producer %u: pin: %s", w->id, sl_strerror(err));
		return NULL;
	}
	while (seq < PER_PRODUCER) {
		unsigned int n = PER_PRODUCER - seq < mt->batch ? PER_PRODUCER - seq : mt->batch;
		unsigned int got = mt_push(mt, w->id, seq, n);

		if (got > n) {
			mt_fail(mt, "producer %u: pushed %u of %u", w->id, got, n);
			return NULL;
		}
		if (got) {
			seq += got;
			spin.fails = 0;
			continue;
		}
		if (mt_failed(mt))
			return NULL;
		if (!spin_more(&spin)) {
			mt_fail(mt, "producer %u stuck at seq %u: ring full for %llu s", w->id, seq,
			        STUCK_NS / 1000000000ull);
			return NULL;
		}
	}
	return NULL;
}

static unsigned int mt_pop(struct mt *mt, struct desc *out)
{
	unsigned int n;

	if (mt->kind == MT_PTR) {
		void *items[64];

		if (mt->batch == 1)
			n = (mt->mc_pop ? sl_ring_pop_mpmc(mt->ring, &items[0])
			                : sl_ring_pop_spsc(mt->ring, &items[0]))
			        ? 1
			        : 0;
		else
			n = mt->mc_pop ? sl_ring_pop_batch_mpmc(mt->ring, items, mt->batch)
			               : sl_ring_pop_batch_spsc(mt->ring, items, mt->batch);
		for (unsigned int i = 0; i < n && i < 64; i++) {
			const struct payload *pl = items[i];

			/* Payloads live in one array: anything else is garbage. */
			if (pl < mt->payloads ||
			    pl >= mt->payloads + (size_t)mt->producers * PER_PRODUCER) {
				out[i].producer = UINT32_MAX;
				continue;
			}
			out[i] = (struct desc){.producer = pl->producer, .seq = pl->seq};
			if ((size_t)(pl - mt->payloads) !=
			    (size_t)pl->producer * PER_PRODUCER + pl->seq)
				out[i].producer = UINT32_MAX;
		}
		return n;
	}
	if (mt->batch == 1)
		n = (mt->mc_pop ? sl_ring_desc_pop_mpmc(mt->tring, &out[0])
		                : sl_ring_desc_pop_spsc(mt->tring, &out[0]))
		        ? 1
		        : 0;
	else
		n = mt->mc_pop ? sl_ring_desc_pop_batch_mpmc(mt->tring, out, mt->batch)
		               : sl_ring_desc_pop_batch_spsc(mt->tring, out, mt->batch);
	for (unsigned int i = 0; i < n && i < 64; i++)
		if (out[i].check != desc_check(&out[i]))
			out[i].producer = UINT32_MAX;
	return n;
}

static void *consumer_main(void *arg)
{
	struct worker *w = arg;
	struct mt *mt = w->mt;
	const uint64_t total = (uint64_t)mt->producers * PER_PRODUCER;
	int64_t last[MAX_THREADS];
	struct desc out[64];
	struct spin spin = {0};
	int err = pin(w->slot);

	if (err) {
		mt_fail(mt, "consumer %u: pin: %s", w->id, sl_strerror(err));
		return NULL;
	}
	for (unsigned int p = 0; p < MAX_THREADS; p++)
		last[p] = -1;
	for (;;) {
		unsigned int n = mt_pop(mt, out);

		if (n > mt->batch) {
			mt_fail(mt, "consumer %u: popped %u, asked %u", w->id, n, mt->batch);
			return NULL;
		}
		if (n == 0) {
			if (__atomic_load_n(&mt->popped, __ATOMIC_ACQUIRE) == total ||
			    mt_failed(mt))
				return NULL;
			if (!spin_more(&spin)) {
				mt_fail(mt,
				        "consumer %u stuck: ring empty for %llu s, %llu of %llu",
				        w->id, STUCK_NS / 1000000000ull,
				        (unsigned long long)__atomic_load_n(&mt->popped,
				                                            __ATOMIC_ACQUIRE),
				        (unsigned long long)total);
				return NULL;
			}
			continue;
		}
		spin.fails = 0;
		for (unsigned int i = 0; i < n; i++) {
			const uint32_t p = out[i].producer, s = out[i].seq;

			if (p >= mt->producers || s >= PER_PRODUCER) {
				mt_fail(mt, "consumer %u: corrupt item (producer %u seq %u)", w->id,
				        p, s);
				return NULL;
			}
			/* One consumer sees each producer's items in its order;
			 * the only consumer sees all of them, without gaps. */
			if ((int64_t)s <= last[p] ||
			    (mt->consumers == 1 && (int64_t)s != last[p] + 1)) {
				mt_fail(mt, "consumer %u: producer %u seq %u after %lld", w->id, p,
				        s, (long long)last[p]);
				return NULL;
			}
			last[p] = s;
			if (__atomic_fetch_add(&mt->seen[(size_t)p * PER_PRODUCER + s], 1,
			                       __ATOMIC_RELAXED) != 0) {
				mt_fail(mt, "consumer %u: producer %u seq %u arrived twice", w->id,
				        p, s);
				return NULL;
			}
		}
		__atomic_fetch_add(&mt->popped, n, __ATOMIC_RELEASE);
	}
}

static void run_threads(enum mt_kind kind, bool mp_push, bool mc_pop, unsigned int producers,
                        unsigned int consumers, unsigned int batch, unsigned int capacity)
{
	const size_t items = (size_t)producers * PER_PRODUCER;
	struct mt *mt = calloc(1, sizeof(*mt));
	pthread_t tid[MAX_THREADS];
	struct worker w[MAX_THREADS];
	unsigned int nt = producers + consumers;

	cr_assert_not_null(mt);
	cr_assert_leq(nt, MAX_THREADS);
	cr_assert_leq(batch, 64);
	*mt = (struct mt){.kind = kind,
	                  .mp_push = mp_push,
	                  .mc_pop = mc_pop,
	                  .batch = batch,
	                  .producers = producers,
	                  .consumers = consumers,
	                  .capacity = capacity};
	mt->payloads = calloc(items, sizeof(*mt->payloads));
	mt->seen = calloc(items, sizeof(*mt->seen));
	cr_assert(mt->payloads && mt->seen);
	if (kind == MT_PTR) {
		mt->ring = aligned_alloc(SL_CACHELINE, sizeof(*mt->ring));
		cr_assert_not_null(mt->ring);
		cr_assert_eq(sl_ring_init(mt->ring, capacity), 0);
	} else {
		mt->tring = aligned_alloc(SL_CACHELINE, sizeof(*mt->tring));
		cr_assert_not_null(mt->tring);
		cr_assert_eq(sl_ring_desc_init(mt->tring, capacity), 0);
	}

	/* Threads alternate producer/consumer so that with 2 CPUs each CPU
	 * gets one of each and an SPSC pair sits on different CPUs. */
	for (unsigned int t = 0, p = 0, c = 0; t < nt; t++) {
		bool is_producer = (t % 2 == 0 && p < producers) || c == consumers;

		w[t] = (struct worker){.mt = mt, .id = is_producer ? p++ : c++, .slot = t};
		cr_assert_eq(pthread_create(&tid[t], NULL,
		                            is_producer ? producer_main : consumer_main, &w[t]),
		             0);
	}
	for (unsigned int t = 0; t < nt; t++)
		pthread_join(tid[t], NULL);

	cr_assert_not(mt->failed, "%s", mt->why);
	cr_assert_eq(mt->popped, items);
	for (size_t i = 0; i < items; i++)
		cr_assert_eq(mt->seen[i], 1, "producer %zu seq %zu seen %u times", i / PER_PRODUCER,
		             i % PER_PRODUCER, mt->seen[i]);
	if (kind == MT_PTR) {
		cr_assert_eq(sl_ring_size(mt->ring), 0);
		sl_ring_destroy(mt->ring);
		free(mt->ring);
	} else {
		cr_assert_eq(sl_ring_desc_size(mt->tring), 0);
		sl_ring_desc_destroy(mt->tring);
		free(mt->tring);
	}
	free(mt->payloads);
	free(mt->seen);
	free(mt);
}

Test(ring, spsc_threads_single, .timeout = 120)
{
	run_threads(MT_PTR, false, false, 1, 1, 1, 256);
}

Test(ring, spsc_threads_batch, .timeout = 120)
{
	/* 7 never divides the capacity: batches start at every offset and
	 * split across the end of the slots. */
	run_threads(MT_PTR, false, false, 1, 1, 7, 64);
	run_threads(MT_PTR, false, false, 1, 1, 64, 256);
}

Test(ring, spsc_threads_typed, .timeout = 120)
{
	run_threads(MT_TYPED, false, false, 1, 1, 1, 64);
	run_threads(MT_TYPED, false, false, 1, 1, 5, 64);
}

Test(ring, mpmc_threads_2p2c_single, .timeout = 120)
{
	run_threads(MT_PTR, true, true, 2, 2, 1, 64);
}

Test(ring, mpmc_threads_2p2c_batch, .timeout = 120)
{
	run_threads(MT_PTR, true, true, 2, 2, 7, 64);
	/* 8 slots: both sides run out of room or items by their copy of the
	 * other's index nearly every call, so the copies are refreshed (and
	 * taken from one another) all the time. */
	run_threads(MT_PTR, true, true, 2, 2, 3, 8);
}

Test(ring, mpmc_threads_2p2c_typed, .timeout = 120)
{
	run_threads(MT_TYPED, true, true, 2, 2, 1, 64);
	run_threads(MT_TYPED, true, true, 2, 2, 5, 64);
}

/* The documented mix: many producers on push_*mpmc, one consumer on pop_*spsc. */
Test(ring, mpsc_threads_2p1c, .timeout = 120)
{
	run_threads(MT_PTR, true, false, 2, 1, 1, 64);
	run_threads(MT_PTR, true, false, 2, 1, 3, 8);
	run_threads(MT_TYPED, true, false, 2, 1, 6, 64);
}
