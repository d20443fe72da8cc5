// ring: items/s through sl_ring (SPSC one item per call, SPSC 64 per call,
// typed 32-byte descriptors, MPMC 2 producers + 1 consumer) next to the same
// traffic through raw ck_ring in the same binary, so the cost of our layer is
// visible in one run.
//
// Shape of every case: the benchmark thread is the consumer, pinned to the
// first allowed CPU; producers run for the whole case, pinned to the next
// CPUs, pushing as fast as the ring takes items. One iteration pops
// kItemsPerIter items; items/s is what the consumer received over wall time.
#include <benchmark/benchmark.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "ring/ring.h"

namespace
{

// ~10 ms per iteration at 100M items/s: long enough to hide thread start-up,
// short enough for a --benchmark_min_time=0.01 smoke run.
constexpr uint64_t kItemsPerIter = 1u << 20;
// 32 KiB of pointers: the ring stays in L1/L2 of both cores.
constexpr unsigned kCapacity = 4096;
constexpr unsigned kBatch = 64;

// How a thread waits after a failed push or pop. It pauses kPausesPerFail
// times before trying again: a consumer that re-reads an empty ring's p_tail
// (or a producer a full ring's c_head) on every spin keeps stealing that line
// from the thread writing it, and the figure then measures the polling, not
// the ring (with 1 pause, SPSC single runs swing between 40M and 140M items/s
// for sl_ring and sit near 55M for ck_ring; with 32 both are stable).
// SPSC: each thread has its own core and never yields; a yield would only
// offer the core to other processes on a shared machine. 2P/1C on 2 CPUs:
// two threads share a core, and a producer spinning on a full ring would
// hold it for a whole time slice while the consumer waits, so after a few
// failures it yields.
constexpr unsigned kPausesPerFail = 32;

struct Placement {
	std::vector<unsigned> producer_slots; // allowed-CPU index of each producer
	unsigned yield_after;                 // failed attempts before sched_yield
};
// One producer on the other CPU.
const Placement kSpsc = {{1}, ~0u};
// Two producers: slot 1 is the other CPU; slot 2 is the consumer's CPU again
// on a 2-CPU machine (on more CPUs every thread has its own).
const Placement kTwoToOne = {{1, 2}, 64};

struct desc {
	uint64_t id, offset, len, flags;
};
SL_RING_DEFINE(desc, struct desc);

int nth_allowed_cpu(unsigned i)
{
	cpu_set_t allowed;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
		return -1;
	int n = CPU_COUNT(&allowed);
	if (n <= 0)
		return -1;
	i %= static_cast<unsigned>(n);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &allowed) && i-- == 0)
			return cpu;
	return -1;
}

bool pin_self(int cpu)
{
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
}

struct Backoff {
	unsigned yield_after;
	unsigned fails = 0;
	explicit Backoff(unsigned y) : yield_after(y) {}
	void wait()
	{
		if (++fails < yield_after) {
			for (unsigned i = 0; i < kPausesPerFail; i++)
				ck_pr_stall();
		} else {
			fails = 0;
			sched_yield();
		}
	}
	void reset() { fails = 0; }
};

struct alignas(SL_CACHELINE) StopFlag {
	std::atomic<bool> v{false};
};

// Runs one thread per producer slot calling produce(stop, backoff) until
// stop, while the benchmark thread calls consume(backoff) once per
// iteration; consume returns the items it popped.
template <class Produce, class Consume>
void run(benchmark::State &state, const Placement &place, Produce produce, Consume consume)
{
	cpu_set_t saved;
	pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved);
	int ccpu = nth_allowed_cpu(0);
	std::vector<int> pcpu;
	for (unsigned s : place.producer_slots)
		pcpu.push_back(nth_allowed_cpu(s));
	if (ccpu < 0 || !pin_self(ccpu)) {
		state.SkipWithError("cannot pin the consumer");
		return;
	}

	// Producers poll the stop flag on every push, so it has a cache line to
	// itself, and each producer runs its own copy of `produce` whose
	// captures are copies too (ring pointers by value): a producer that read
	// a line of the consumer's stack on every push shared it with whatever
	// the consumer spilled there, a false sharing whose cost depended on the
	// stack's alignment. (The figures still differ 2-4x between processes:
	// every case of a run together, raw ck_ring too, with the host's vCPU
	// placement; see README.)
	StopFlag stop;
	std::atomic<unsigned> started{0}, pin_failed{0};
	std::vector<std::thread> threads;
	for (unsigned i = 0; i < pcpu.size(); i++) {
		threads.emplace_back([&, i, produce]() mutable {
			if (pcpu[i] < 0 || !pin_self(pcpu[i]))
				pin_failed.fetch_add(1);
			started.fetch_add(1);
			Backoff b(place.yield_after);
			produce(stop.v, b);
		});
	}
	while (started.load() != pcpu.size())
		ck_pr_stall();

	uint64_t total = 0;
	if (pin_failed.load() == 0) {
		Backoff b(place.yield_after);
		for (auto _ : state)
			total += consume(b);
	}
	stop.v.store(true);
	for (auto &t : threads)
		t.join();
	pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	if (pin_failed.load() != 0)
		state.SkipWithError("cannot pin a producer");
	state.SetItemsProcessed(static_cast<int64_t>(total));
	state.counters["cpus"] = static_cast<double>(CPU_COUNT(&saved));
}

struct SlRing {
	struct sl_ring *r;
	SlRing()
	{
		r = static_cast<struct sl_ring *>(aligned_alloc(SL_CACHELINE, sizeof(*r)));
		if (!r || sl_ring_init(r, kCapacity) != 0)
			abort();
	}
	~SlRing()
	{
		sl_ring_destroy(r);
		free(r);
	}
};

struct CkRing {
	ck_ring_t *r;
	ck_ring_buffer_t *buf;
	CkRing()
	{
		static_assert(sizeof(ck_ring_t) <= 3 * SL_CACHELINE, "ck_ring_t grew");
		r = static_cast<ck_ring_t *>(aligned_alloc(SL_CACHELINE, 3 * SL_CACHELINE));
		buf = static_cast<ck_ring_buffer_t *>(
		    aligned_alloc(SL_CACHELINE, kCapacity * sizeof(ck_ring_buffer_t)));
		if (!r || !buf)
			abort();
		memset(buf, 0, kCapacity * sizeof(ck_ring_buffer_t));
		ck_ring_init(r, kCapacity);
	}
	~CkRing()
	{
		free(buf);
		free(r);
	}
};

// One item per call ----------------------------------------------------------

template <class Push> void produce_single(std::atomic<bool> &stop, Backoff &b, Push push)
{
	uintptr_t v = 1;
	while (!stop.load(std::memory_order_relaxed)) {
		if (push(reinterpret_cast<void *>(v))) {
			v++;
			b.reset();
		} else {
			b.wait();
		}
	}
}

template <class Pop> uint64_t consume_single(Backoff &b, Pop pop)
{
	uintptr_t sum = 0;
	for (uint64_t got = 0; got < kItemsPerIter;) {
		void *p;
		if (pop(&p)) {
			sum += reinterpret_cast<uintptr_t>(p);
			got++;
			b.reset();
		} else {
			b.wait();
		}
	}
	benchmark::DoNotOptimize(sum);
	return kItemsPerIter;
}

void BM_ck_spsc_single(benchmark::State &state)
{
	CkRing q;
	run(
	    state, kSpsc,
	    [r = q.r, buf = q.buf](std::atomic<bool> &stop, Backoff &b) {
		    produce_single(stop, b,
		                   [=](void *v) { return ck_ring_enqueue_spsc(r, buf, v); });
	    },
	    [r = q.r, buf = q.buf](Backoff &b) {
		    return consume_single(
		        b, [=](void **p) { return ck_ring_dequeue_spsc(r, buf, p); });
	    });
}

void BM_sl_spsc_single(benchmark::State &state)
{
	SlRing q;
	run(
	    state, kSpsc,
	    [r = q.r](std::atomic<bool> &stop, Backoff &b) {
		    produce_single(stop, b, [=](void *v) { return sl_ring_push_spsc(r, v); });
	    },
	    [r = q.r](Backoff &b) {
		    return consume_single(b, [=](void **p) { return sl_ring_pop_spsc(r, p); });
	    });
}

void BM_ck_mpmc_single_2p1c(benchmark::State &state)
{
	CkRing q;
	run(
	    state, kTwoToOne,
	    [r = q.r, buf = q.buf](std::atomic<bool> &stop, Backoff &b) {
		    produce_single(stop, b,
		                   [=](void *v) { return ck_ring_enqueue_mpmc(r, buf, v); });
	    },
	    [r = q.r, buf = q.buf](Backoff &b) {
		    return consume_single(
		        b, [=](void **p) { return ck_ring_dequeue_mpmc(r, buf, p); });
	    });
}

void BM_sl_mpmc_single_2p1c(benchmark::State &state)
{
	SlRing q;
	run(
	    state, kTwoToOne,
	    [r = q.r](std::atomic<bool> &stop, Backoff &b) {
		    produce_single(stop, b, [=](void *v) { return sl_ring_push_mpmc(r, v); });
	    },
	    [r = q.r](Backoff &b) {
		    return consume_single(b, [=](void **p) { return sl_ring_pop_mpmc(r, p); });
	    });
}

// kBatch items per call ------------------------------------------------------

// push(items, n) -> pushed; the producer keeps offering what did not fit.
template <class T, class Fill, class PushBatch>
void produce_batch(std::atomic<bool> &stop, Backoff &b, Fill fill, PushBatch push)
{
	T items[kBatch];
	uint64_t v = 1;
	unsigned off = 0;
	for (unsigned i = 0; i < kBatch; i++)
		fill(items[i], v++);
	while (!stop.load(std::memory_order_relaxed)) {
		unsigned n = push(items + off, kBatch - off);
		if (n == 0) {
			b.wait();
			continue;
		}
		b.reset();
		off += n;
		if (off == kBatch) {
			off = 0;
			for (unsigned i = 0; i < kBatch; i++)
				fill(items[i], v++);
		}
	}
}

template <class T, class Sum, class PopBatch>
uint64_t consume_batch(Backoff &b, Sum sum_of, PopBatch pop)
{
	T items[kBatch];
	uint64_t got = 0, sum = 0;
	while (got < kItemsPerIter) {
		unsigned n = pop(items, kBatch);
		if (n == 0) {
			b.wait();
			continue;
		}
		b.reset();
		for (unsigned i = 0; i < n; i++)
			sum += sum_of(items[i]);
		got += n;
	}
	benchmark::DoNotOptimize(sum);
	return got;
}

void fill_ptr(void *&p, uint64_t v)
{
	p = reinterpret_cast<void *>(v);
}
uint64_t sum_ptr(void *p)
{
	return reinterpret_cast<uintptr_t>(p);
}

void BM_sl_spsc_batch64(benchmark::State &state)
{
	SlRing q;
	run(
	    state, kSpsc,
	    [r = q.r](std::atomic<bool> &stop, Backoff &b) {
		    produce_batch<void *>(stop, b, fill_ptr, [=](void *const *it, unsigned n) {
			    return sl_ring_push_batch_spsc(r, it, n);
		    });
	    },
	    [r = q.r](Backoff &b) {
		    return consume_batch<void *>(b, sum_ptr, [=](void **it, unsigned n) {
			    return sl_ring_pop_batch_spsc(r, it, n);
		    });
	    });
}

// Typed ring: 32-byte descriptors copied by value, 64 per call.
void BM_sl_typed32_spsc_batch64(benchmark::State &state)
{
	struct sl_ring_desc *q =
	    static_cast<struct sl_ring_desc *>(aligned_alloc(SL_CACHELINE, sizeof(*q)));
	if (!q || sl_ring_desc_init(q, kCapacity) != 0)
		abort();
	run(
	    state, kSpsc,
	    [q](std::atomic<bool> &stop, Backoff &b) {
		    produce_batch<struct desc>(
		        stop, b,
		        [](struct desc &d, uint64_t v) {
			        d = {v, v * 64, 100, 0};
		        },
		        [=](const struct desc *it, unsigned n) {
			        return sl_ring_desc_push_batch_spsc(q, it, n);
		        });
	    },
	    [q](Backoff &b) {
		    return consume_batch<struct desc>(
		        b, [](const struct desc &d) { return d.id + d.len; },
		        [=](struct desc *it, unsigned n) {
			        return sl_ring_desc_pop_batch_spsc(q, it, n);
		        });
	    });
	sl_ring_desc_destroy(q);
	free(q);
}

void BM_sl_mpmc_batch64_2p1c(benchmark::State &state)
{
	SlRing q;
	run(
	    state, kTwoToOne,
	    [r = q.r](std::atomic<bool> &stop, Backoff &b) {
		    produce_batch<void *>(stop, b, fill_ptr, [=](void *const *it, unsigned n) {
			    return sl_ring_push_batch_mpmc(r, it, n);
		    });
	    },
	    [r = q.r](Backoff &b) {
		    return consume_batch<void *>(b, sum_ptr, [=](void **it, unsigned n) {
			    return sl_ring_pop_batch_mpmc(r, it, n);
		    });
	    });
}

} // namespace

BENCHMARK(BM_ck_spsc_single)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sl_spsc_single)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sl_spsc_batch64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sl_typed32_spsc_batch64)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ck_mpmc_single_2p1c)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sl_mpmc_single_2p1c)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_sl_mpmc_batch64_2p1c)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
