// dedup: ns per event for what a partition does with every idempotent event,
// sl_dedup_check (NEW) then sl_dedup_record, in steady state (FIFOs full at
// their window share, nothing allocated), for 1 producer and for 1000
// producers round robin in one partition's table; and the retry path, a
// check answered DUP from the FIFO (a binary search).
//
// Offsets grow by one per event as in a partition's log. The window is the
// default 8192. With 1000 producers each FIFO holds its last 8192 sequences:
// every producer's events are consecutive here (the worst case for memory:
// one partition receiving everything), 128 KiB each.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "dedup/dedup.h"

namespace
{

struct Table {
	sl_dedup *t = nullptr;
	explicit Table(uint32_t max_producers)
	{
		sl_dedup_opts o = {0, max_producers};
		if (sl_dedup_create(&o, &t) != 0)
			abort();
	}
	~Table() { sl_dedup_destroy(t); }
};

// Producer ids as the registry hands them out: consecutive from 1.
void BM_CheckRecord(benchmark::State &state)
{
	const uint64_t nprod = static_cast<uint64_t>(state.range(0));
	Table tb(static_cast<uint32_t>(nprod));
	std::vector<uint64_t> next(nprod, 0);
	uint64_t off = 0, p = 0, dummy = 0;

	// Warm-up: every FIFO past its growth to the window.
	for (uint64_t k = 0; k < nprod * (SL_DEDUP_WINDOW_DEFAULT + 16); k++) {
		uint64_t p = k % nprod;
		if (sl_dedup_record(tb.t, p + 1, 1, next[p]++, off++) != 0)
			abort();
	}
	const size_t mem = sl_dedup_memory(tb.t);
	// Round robin without a division in the loop (it would cost as much
	// as the check itself).
	for (auto _ : state) {
		if (++p == nprod)
			p = 0;
		uint64_t seq = next[p]++;
		int v = sl_dedup_check(tb.t, p + 1, 1, seq, &dummy);
		if (v != SL_DEDUP_NEW || sl_dedup_record(tb.t, p + 1, 1, seq, off++) != 0)
			abort();
	}
	if (sl_dedup_memory(tb.t) != mem)
		state.SkipWithError("steady state allocated");
	state.SetItemsProcessed(state.iterations());
	state.counters["table_MiB"] = static_cast<double>(mem) / (1024.0 * 1024.0);
}
BENCHMARK(BM_CheckRecord)->Arg(1)->Arg(1000);

// A retry: check of a sequence inside the window, answered from the FIFO.
// Arg 0: producers; arg 1: partitions the producer's events are spread over
// (1: consecutive here, one probe; 8: every 8th on average, a binary search
// over ~1024 entries).
void BM_CheckDup(benchmark::State &state)
{
	const uint64_t nprod = static_cast<uint64_t>(state.range(0));
	const uint64_t spread = static_cast<uint64_t>(state.range(1));
	Table tb(static_cast<uint32_t>(nprod));
	const uint64_t per = SL_DEDUP_WINDOW_DEFAULT;
	std::vector<uint64_t> stored;
	uint64_t off = 0, p = 0, o = 0, x = 88172645463325252ull;

	auto rnd = [&x] {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		return x;
	};
	for (uint64_t s = 0; s < per; s++) {
		if (spread > 1 && rnd() % spread)
			continue;
		stored.push_back(s);
		for (uint64_t q = 0; q < nprod; q++)
			if (sl_dedup_record(tb.t, q + 1, 1, s, off++) != 0)
				abort();
	}
	// Queries picked ahead, so the loop measures the check only.
	std::vector<uint64_t> queries(4096);
	for (auto &q : queries)
		q = stored[rnd() % stored.size()];
	size_t k = 0;
	for (auto _ : state) {
		if (++p == nprod)
			p = 0;
		if (sl_dedup_check(tb.t, p + 1, 1, queries[k++ & 4095], &o) != SL_DEDUP_DUP)
			abort();
		benchmark::DoNotOptimize(o);
	}
	state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckDup)->Args({1, 1})->Args({1, 8})->Args({1000, 1})->Args({1000, 8});

} // namespace

BENCHMARK_MAIN();
