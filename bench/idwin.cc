// idwin: ns per event for what a partition does with every event of a
// client producer when its topic has a dedup_window: sl_idwin_find of its
// id (a miss: the event is new) then sl_idwin_add (the window full at its
// cap, so each add drops the oldest id: steady state, nothing allocated).
// At 1k, 64k and 256k ids (256k: dedup_window_events' default). Ids are
// random 16 bytes like libsluice's. Batches of 64 ids share a millisecond,
// as a group commit's do. Counter bytes_per_id: the window's memory over
// its ids. BM_FindHit: a resend, found with its time (the marks' search).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dedup/idwin.h"

namespace
{

struct Ids {
	std::vector<uint8_t> v;
	uint64_t x = 88172645463325252ull;
	explicit Ids(size_t n) : v(n * 16)
	{
		for (size_t i = 0; i < n * 2; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			std::memcpy(&v[i * 8], &x, 8);
		}
	}
	const uint8_t *at(size_t i) const { return &v[i * 16]; }
};

void BM_FindAdd(benchmark::State &state)
{
	const uint32_t cap = static_cast<uint32_t>(state.range(0));
	// Ids to cycle through: far more than the window holds, so every find
	// misses (an id comes back only after it was dropped).
	const size_t n = 4 * static_cast<size_t>(cap) < (1u << 20) ? (1u << 20) : 4 * (size_t)cap;
	Ids ids(n);
	sl_idwin *w = nullptr;
	if (sl_idwin_create(600000, cap, &w) != 0)
		abort();
	uint64_t off = 0, o;
	size_t k = 0;
	for (; k < 2 * (size_t)cap; k++, off++)
		if (sl_idwin_add(w, ids.at(k % n), off, 1000 + (int64_t)(off / 64)) != 0)
			abort();
	const size_t mem = sl_idwin_memory(w);
	for (auto _ : state) {
		const uint8_t *id = ids.at(k++ % n);
		if (sl_idwin_find(w, id, &o, nullptr))
			abort();
		if (sl_idwin_add(w, id, off, 1000 + (int64_t)(off / 64)) != 0)
			abort();
		off++;
	}
	if (sl_idwin_memory(w) != mem)
		state.SkipWithError("steady state allocated");
	state.SetItemsProcessed(state.iterations());
	state.counters["bytes_per_id"] =
	    static_cast<double>(mem) / static_cast<double>(sl_idwin_count(w));
	sl_idwin_destroy(w);
}
BENCHMARK(BM_FindAdd)->Arg(1024)->Arg(65536)->Arg(262144);

// BM_FindAdd as the server does it (reactor/xfer.c, produce.c): the slot
// of the id 8 events ahead prefetched before find + add of this one.
void BM_FindAddPrefetch(benchmark::State &state)
{
	const uint32_t cap = static_cast<uint32_t>(state.range(0));
	const size_t n = 4 * static_cast<size_t>(cap) < (1u << 20) ? (1u << 20) : 4 * (size_t)cap;
	Ids ids(n);
	sl_idwin *w = nullptr;
	if (sl_idwin_create(600000, cap, &w) != 0)
		abort();
	uint64_t off = 0, o;
	size_t k = 0;
	for (; k < 2 * (size_t)cap; k++, off++)
		if (sl_idwin_add(w, ids.at(k % n), off, 1000 + (int64_t)(off / 64)) != 0)
			abort();
	const size_t mem = sl_idwin_memory(w);
	for (auto _ : state) {
		sl_idwin_prefetch(w, ids.at((k + 8) % n));
		const uint8_t *id = ids.at(k++ % n);
		if (sl_idwin_find(w, id, &o, nullptr))
			abort();
		if (sl_idwin_add(w, id, off, 1000 + (int64_t)(off / 64)) != 0)
			abort();
		off++;
	}
	if (sl_idwin_memory(w) != mem)
		state.SkipWithError("steady state allocated");
	state.SetItemsProcessed(state.iterations());
	sl_idwin_destroy(w);
}
BENCHMARK(BM_FindAddPrefetch)->Arg(1024)->Arg(65536)->Arg(262144);

// A window filling from empty, as a fresh partition's does: find + add
// (with the prefetch) of `cap` new ids, growths included; ns per id.
void BM_Fill(benchmark::State &state)
{
	const uint32_t cap = static_cast<uint32_t>(state.range(0));
	Ids ids(cap);
	uint64_t o;
	for (auto _ : state) {
		sl_idwin *w = nullptr;
		if (sl_idwin_create(600000, cap, &w) != 0)
			abort();
		for (uint32_t i = 0; i < cap; i++) {
			if (i + 8 < cap)
				sl_idwin_prefetch(w, ids.at(i + 8));
			if (sl_idwin_find(w, ids.at(i), &o, nullptr))
				abort();
			if (sl_idwin_add(w, ids.at(i), i, 1000 + (int64_t)(i / 64)) != 0)
				abort();
		}
		sl_idwin_destroy(w);
	}
	state.SetItemsProcessed(state.iterations() * cap);
}
BENCHMARK(BM_Fill)->Arg(131072)->Arg(262144)->Unit(benchmark::kMillisecond);

void BM_FindHit(benchmark::State &state)
{
	const uint32_t cap = static_cast<uint32_t>(state.range(0));
	Ids ids(cap);
	sl_idwin *w = nullptr;
	if (sl_idwin_create(600000, cap, &w) != 0)
		abort();
	for (uint64_t i = 0; i < cap; i++)
		if (sl_idwin_add(w, ids.at(i), i, 1000 + (int64_t)(i / 64)) != 0)
			abort();
	uint64_t o, x = 1;
	int64_t t;
	for (auto _ : state) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if (!sl_idwin_find(w, ids.at((x >> 33) % cap), &o, &t))
			abort();
		benchmark::DoNotOptimize(t);
	}
	state.SetItemsProcessed(state.iterations());
	sl_idwin_destroy(w);
}
BENCHMARK(BM_FindHit)->Arg(1024)->Arg(65536)->Arg(262144);

} // namespace

BENCHMARK_MAIN();
