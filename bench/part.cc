// part: ns per key of sl_part_of_key for each strategy at N = 8, 64 and
// 1024, with the evenness of the spread (CV of the partition sizes over
// 1,000,000 random keys) and the movement when N grows to N+1 (fraction of
// those keys whose partition changes) as counters. Keys are 16 hex digits
// (uniform), so range's evenly spaced splits over that space spread evenly.
// directory lists half of the timed keys (its other half and the rest of
// the 1,000,000 go to the jump fallback).
//
// BM_Vnodes sweeps consistent's points per partition: the measurement
// behind SL_PART_VNODES_DEFAULT (part.h).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <unistd.h>
#include <vector>

extern "C" {
#include "part/part.h"
}

namespace
{

constexpr uint32_t kKeys = 1000000;
constexpr uint32_t kTimed = 1 << 16; // timed keys: cycled, fit in L2 with the tables

struct Keys {
	std::vector<std::string> k;
	Keys()
	{
		uint64_t x = 0x9e3779b97f4a7c15ull;
		char b[17];
		k.reserve(kKeys);
		for (uint32_t i = 0; i < kKeys; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(x));
			k.emplace_back(b, 16);
		}
	}
};

const Keys &keys()
{
	static Keys k;
	return k;
}

std::string dir_file(uint32_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/tmp/sluice-bench-part-%d-%u.dir", getpid(), n);
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	for (uint32_t i = 0; i < kTimed; i += 2)
		fprintf(f, "%s %u\n", keys().k[i].c_str(), (i / 2) % n);
	fclose(f);
	return path;
}

struct Part {
	sl_partitioner p{};
	std::vector<std::string> split_s;
	std::vector<const char *> split_p;
	std::string file;
	Part(sl_part_kind kind, uint32_t n, uint32_t vnodes = 0)
	{
		sl_part_spec s{};
		s.kind = kind;
		s.n_parts = n;
		s.vnodes = vnodes;
		s.fallback = SL_PART_JUMP;
		if (kind == SL_PART_RANGE) {
			char b[17];
			for (uint32_t i = 1; i < n; i++) {
				unsigned __int128 v = (static_cast<unsigned __int128>(i) << 64) / n;
				snprintf(b, sizeof(b), "%016llx",
				         static_cast<unsigned long long>(v));
				split_s.emplace_back(b);
			}
			for (auto &x : split_s)
				split_p.push_back(x.c_str());
			s.splits = split_p.data();
			s.n_splits = n - 1;
		}
		if (kind == SL_PART_DIRECTORY) {
			file = dir_file(n);
			s.file = file.c_str();
		}
		char err[400];
		if (sl_part_init_spec(&p, &s, err, sizeof(err)) != 0) {
			fprintf(stderr, "bench part: %s\n", err);
			abort();
		}
	}
	~Part()
	{
		sl_part_destroy(&p);
		if (!file.empty())
			unlink(file.c_str());
	}
};

double cv(const sl_partitioner &p)
{
	std::vector<uint64_t> c(p.n_parts);
	for (const auto &k : keys().k)
		c[sl_part_of_key(&p, k.data(), k.size())]++;
	double mean = static_cast<double>(kKeys) / p.n_parts, var = 0;
	for (uint64_t x : c)
		var += (static_cast<double>(x) - mean) * (static_cast<double>(x) - mean);
	return std::sqrt(var / p.n_parts) / mean;
}

double moved(const sl_partitioner &a, const sl_partitioner &b)
{
	uint64_t m = 0;
	for (const auto &k : keys().k)
		m += sl_part_of_key(&a, k.data(), k.size()) !=
		     sl_part_of_key(&b, k.data(), k.size());
	return static_cast<double>(m) / kKeys;
}

// The counters cost seconds: computed once per case, not per repetition.
std::pair<double, double> figures(sl_part_kind kind, uint32_t n, uint32_t vnodes)
{
	static std::map<std::tuple<int, uint32_t, uint32_t>, std::pair<double, double>> memo;
	auto key = std::make_tuple(static_cast<int>(kind), n, vnodes);
	auto it = memo.find(key);
	if (it != memo.end())
		return it->second;
	Part a(kind, n, vnodes);
	double m = -1;
	// range's splits are the operator's: growing N re-spaces them all, so
	// its movement says nothing about the strategy (reported as -1).
	if (kind != SL_PART_RANGE) {
		Part b(kind, n + 1, vnodes);
		m = moved(a.p, b.p);
	}
	return memo[key] = {cv(a.p), m};
}

void lookups(benchmark::State &state, sl_part_kind kind, uint32_t n, uint32_t vnodes)
{
	Part pt(kind, n, vnodes);
	const auto &k = keys().k;
	uint32_t i = 0;
	uint64_t sum = 0;
	for (auto _ : state) {
		const std::string &key = k[i];
		sum += sl_part_of_key(&pt.p, key.data(), key.size());
		i = (i + 1) & (kTimed - 1);
	}
	benchmark::DoNotOptimize(sum);
	auto f = figures(kind, n, vnodes);
	state.SetItemsProcessed(state.iterations());
	state.counters["ns_per_key"] =
	    benchmark::Counter(static_cast<double>(state.iterations()),
	                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
	state.counters["cv"] = f.first;
	state.counters["moved_n1"] = f.second;
}

void BM_Hash(benchmark::State &s)
{
	lookups(s, SL_PART_HASH, static_cast<uint32_t>(s.range(0)), 0);
}
void BM_Range(benchmark::State &s)
{
	lookups(s, SL_PART_RANGE, static_cast<uint32_t>(s.range(0)), 0);
}
void BM_Consistent(benchmark::State &s)
{
	lookups(s, SL_PART_CONSISTENT, static_cast<uint32_t>(s.range(0)), 0);
}
void BM_Jump(benchmark::State &s)
{
	lookups(s, SL_PART_JUMP, static_cast<uint32_t>(s.range(0)), 0);
}
void BM_Directory(benchmark::State &s)
{
	lookups(s, SL_PART_DIRECTORY, static_cast<uint32_t>(s.range(0)), 0);
}
BENCHMARK(BM_Hash)->Arg(8)->Arg(64)->Arg(1024);
BENCHMARK(BM_Range)->Arg(8)->Arg(64)->Arg(1024);
BENCHMARK(BM_Consistent)->Arg(8)->Arg(64)->Arg(1024);
BENCHMARK(BM_Jump)->Arg(8)->Arg(64)->Arg(1024);
BENCHMARK(BM_Directory)->Arg(8)->Arg(64)->Arg(1024);

// Args: vnodes, partitions.
void BM_Vnodes(benchmark::State &s)
{
	lookups(s, SL_PART_CONSISTENT, static_cast<uint32_t>(s.range(1)),
	        static_cast<uint32_t>(s.range(0)));
}
BENCHMARK(BM_Vnodes)->ArgsProduct({{16, 64, 128, 256, 512, 1024}, {8, 64, 1024}});

} // namespace

BENCHMARK_MAIN();
