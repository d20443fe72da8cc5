// hot: ns per event for the hot-key summary's update (sl_hot_add), what a
// reactor does for every event it appends to a topic with hot_keys on.
// Keys are aggregate ids like "acct-0001f3a2" drawn from Zipf(s) over
// 100,000 keys (s = 1.1: a few hot keys, a long tail that keeps replacing
// the smallest counter; s = 0: uniform, every event a replacement, the
// worst case), and from 1M distinct keys. Arg 1: the sample (1 counts every
// event; 8 one in eight). BM_Publish: the tick's copy of the top entries
// (once a second per topic and reactor). BM_Read: a reader's copy.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "hot/hot.h"

namespace
{

// The stream's keys laid out in stream order, as a reactor meets them (in
// the event it just received): read in sequence, no cache miss of the
// benchmark's own.
struct Keys {
	std::vector<char> text;
	std::vector<uint32_t> at;
	std::vector<uint8_t> len;
	std::vector<char> stream; // each key's text, in stream order
	std::vector<uint8_t> slen;
	Keys(uint32_t n_keys, double s, size_t n)
	{
		char buf[32];
		for (uint32_t k = 0; k < n_keys; k++) {
			int l = snprintf(buf, sizeof(buf), "acct-%08x", k * 2654435761u);
			at.push_back(static_cast<uint32_t>(text.size()));
			len.push_back(static_cast<uint8_t>(l));
			text.insert(text.end(), buf, buf + l);
		}
		std::vector<double> cdf(n_keys);
		double sum = 0;
		for (uint32_t k = 0; k < n_keys; k++)
			cdf[k] = (sum += s == 0 ? 1.0 : 1.0 / std::pow(k + 1.0, s));
		uint64_t x = 88172645463325252ull;
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			double u = static_cast<double>(x >> 11) / 9007199254740992.0 * sum;
			uint32_t lo = 0, hi = n_keys - 1;
			while (lo < hi) {
				uint32_t mid = (lo + hi) / 2;
				if (cdf[mid] < u)
					lo = mid + 1;
				else
					hi = mid;
			}
			stream.insert(stream.end(), &text[at[lo]], &text[at[lo]] + len[lo]);
			slen.push_back(len[lo]);
		}
	}
};

const Keys &zipf(int which)
{
	static const Keys z11(100000, 1.1, 1u << 20), uni(100000, 0, 1u << 20),
	    distinct(1u << 20, 0, 1u << 20);
	return which == 0 ? z11 : which == 1 ? uni : distinct;
}

void BM_Add(benchmark::State &state)
{
	const Keys &k = zipf(static_cast<int>(state.range(0)));
	sl_hot *h = sl_hot_create(static_cast<uint32_t>(state.range(1)), 0);
	if (!h)
		abort();
	size_t i = 0, off = 0, n = k.slen.size();
	for (auto _ : state) {
		sl_hot_add_call(h, &k.stream[off], k.slen[i], i & 7);
		off += k.slen[i];
		if (++i == n)
			i = 0, off = 0;
	}
	state.SetItemsProcessed(state.iterations());
	sl_hot_destroy(h);
}
// range(0): 0 Zipf(1.1), 1 uniform over 100k, 2 distinct; range(1): sample.
BENCHMARK(BM_Add)->ArgNames({"keys", "sample"})->ArgsProduct({{0, 1, 2}, {1, 8}});

void BM_Publish(benchmark::State &state)
{
	const Keys &k = zipf(0);
	sl_hot *h = sl_hot_create(1, 0);
	for (size_t i = 0, off = 0; i < k.slen.size(); off += k.slen[i++])
		sl_hot_add_call(h, &k.stream[off], k.slen[i], 0);
	uint64_t now = 1;
	for (auto _ : state)
		sl_hot_publish(h, now++);
	sl_hot_destroy(h);
}
BENCHMARK(BM_Publish);

void BM_Read(benchmark::State &state)
{
	const Keys &k = zipf(0);
	sl_hot *h = sl_hot_create(1, 0);
	for (size_t i = 0, off = 0; i < k.slen.size(); off += k.slen[i++])
		sl_hot_add_call(h, &k.stream[off], k.slen[i], 0);
	sl_hot_publish(h, 1000000000ull);
	static sl_hot_snap snap;
	for (auto _ : state) {
		if (sl_hot_read(h, &snap) < 0)
			abort();
		benchmark::DoNotOptimize(snap.n);
	}
	sl_hot_destroy(h);
}
BENCHMARK(BM_Read);

} // namespace

BENCHMARK_MAIN();
