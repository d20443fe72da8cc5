// proto: the hot-path codec next to protobuf-c on the same bytes.
//
// The workload is the one the server sees most: one Produce of 64 events,
// each with a 16-byte id, a type, an aggregate, a timestamp and 100 bytes of
// data (~150 B per event, ~9.6 KiB per frame). Every case reports events/s
// (items_per_second) and ns_per_event:
//   ProduceScan         sl_produce_scan: full validation, no allocation
//   ProduceScanIterate  the server's path: validate, then walk every event's
//                       view (aggregate for the partitioner, raw for the log)
//   ProduceScanViews    the same in one pass, views into a scratch array
//   PbcUnpack           protobuf_c_message_unpack + free_unpacked, the
//                       alternative (malloc is jemalloc here, as in sluiced)
//   ProduceBuild        the client's path: begin, 64 x add_event, finish
//   ProduceBuildEncoded add 64 pre-encoded events (copy) and finish
//   PbcPack             protobuf_c_message_pack of the same Produce
//   AckEncode           the server's ack of a whole Produce (one part, a run
//                       of 64 indexes); AckEncodeOffsets with explicit offsets
//   EventScan           sl_event_scan of one event (consumers, projections)
// Figures go in the header comment of engine/proto/scan.c.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "proto/proto.h"
#include "sluice/v1/event.pb-c.h"
}

namespace
{

constexpr int kEvents = 64;
constexpr size_t kDataLen = 100;

// One Produce frame, built once with the builder and checked with protobuf-c.
struct Fixture {
	std::vector<uint8_t> frame;
	const uint8_t *body = nullptr;
	size_t body_len = 0;
	uint8_t ids[kEvents][SL_EVENT_ID_LEN];
	char aggs[kEvents][24];
	uint8_t data[kDataLen];
	struct sl_event_view views[kEvents];
	std::vector<std::vector<uint8_t>> encoded;

	Fixture() : frame(1 << 16)
	{
		for (size_t i = 0; i < kDataLen; i++)
			data[i] = (uint8_t)('a' + i % 26);
		for (int i = 0; i < kEvents; i++) {
			for (int j = 0; j < SL_EVENT_ID_LEN; j++)
				ids[i][j] = (uint8_t)(i * 31 + j);
			int n = snprintf(aggs[i], sizeof(aggs[i]), "customer-%06d", i * 7919);
			struct sl_event_view v = {};
			v.id = ids[i];
			v.type = "OrderPlaced";
			v.type_len = 11;
			v.aggregate = aggs[i];
			v.aggregate_len = (size_t)n;
			v.timestamp_ms = 1764086400000LL + i;
			v.data = data;
			v.data_len = kDataLen;
			views[i] = v;
			std::vector<uint8_t> e(256);
			int m = sl_event_encode(e.data(), e.size(), &v, nullptr, 0);
			if (m < 0)
				abort();
			e.resize((size_t)m);
			encoded.push_back(e);
		}
		struct sl_produce_builder b;
		if (sl_produce_begin(&b, frame.data(), frame.size(), "events", 6, 1000, 3))
			abort();
		for (int i = 0; i < kEvents; i++)
			if (sl_produce_add_event(&b, &views[i], nullptr, 0))
				abort();
		int n = sl_produce_finish(&b);
		struct sl_frame f;
		if (sl_frame_parse(frame.data(), (size_t)n, 1u << 20, &f) != n)
			abort();
		body = f.body;
		body_len = f.body_len;
		ProtobufCMessage *m = protobuf_c_message_unpack(&sluice__v1__produce__descriptor,
		                                                nullptr, body_len, body);
		if (!m || ((Sluice__V1__Produce *)m)->n_events != kEvents)
			abort();
		protobuf_c_message_free_unpacked(m, nullptr);
	}
};

const Fixture &fixture()
{
	static Fixture f;
	return f;
}

void per_event(benchmark::State &state, int events)
{
	state.SetItemsProcessed((int64_t)state.iterations() * events);
	state.counters["ns_per_event"] =
	    benchmark::Counter((double)state.iterations() * events,
	                       benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void ProduceScan(benchmark::State &state)
{
	const Fixture &fx = fixture();
	struct sl_produce pr;

	for (auto _ : state) {
		int rc = sl_produce_scan(fx.body, fx.body_len, &pr, nullptr);
		benchmark::DoNotOptimize(rc);
		benchmark::DoNotOptimize(pr);
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(ProduceScan);

void ProduceScanIterate(benchmark::State &state)
{
	const Fixture &fx = fixture();
	struct sl_produce pr;
	struct sl_event_iter it;
	struct sl_event_view v;

	for (auto _ : state) {
		if (sl_produce_scan(fx.body, fx.body_len, &pr, nullptr))
			abort();
		size_t keys = 0;
		sl_produce_iter_init(&pr, &it);
		while (sl_event_iter_next(&it, &v) == 1)
			keys += v.aggregate_len + v.raw_len;
		benchmark::DoNotOptimize(keys);
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(ProduceScanIterate);

void ProduceScanViews(benchmark::State &state)
{
	const Fixture &fx = fixture();
	struct sl_produce pr;
	struct sl_event_view views[kEvents];

	for (auto _ : state) {
		if (sl_produce_scan_views(fx.body, fx.body_len, &pr, views, kEvents, nullptr))
			abort();
		size_t keys = 0;
		for (uint32_t i = 0; i < pr.n_events; i++)
			keys += views[i].aggregate_len + views[i].raw_len;
		benchmark::DoNotOptimize(keys);
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(ProduceScanViews);

void PbcUnpack(benchmark::State &state)
{
	const Fixture &fx = fixture();

	for (auto _ : state) {
		ProtobufCMessage *m = protobuf_c_message_unpack(&sluice__v1__produce__descriptor,
		                                                nullptr, fx.body_len, fx.body);
		benchmark::DoNotOptimize(m);
		protobuf_c_message_free_unpacked(m, nullptr);
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(PbcUnpack);

void ProduceBuild(benchmark::State &state)
{
	const Fixture &fx = fixture();
	std::vector<uint8_t> out(1 << 16);
	struct sl_produce_builder b;

	for (auto _ : state) {
		sl_produce_begin(&b, out.data(), out.size(), "events", 6, 1000, 3);
		for (int i = 0; i < kEvents; i++)
			sl_produce_add_event(&b, &fx.views[i], nullptr, 0);
		int n = sl_produce_finish(&b);
		benchmark::DoNotOptimize(n);
		benchmark::ClobberMemory();
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(ProduceBuild);

void ProduceBuildEncoded(benchmark::State &state)
{
	const Fixture &fx = fixture();
	std::vector<uint8_t> out(1 << 16);
	struct sl_produce_builder b;

	for (auto _ : state) {
		sl_produce_begin(&b, out.data(), out.size(), "events", 6, 1000, 3);
		for (int i = 0; i < kEvents; i++)
			sl_produce_add_encoded(&b, fx.encoded[i].data(), fx.encoded[i].size());
		int n = sl_produce_finish(&b);
		benchmark::DoNotOptimize(n);
		benchmark::ClobberMemory();
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(ProduceBuildEncoded);

void PbcPack(benchmark::State &state)
{
	const Fixture &fx = fixture();
	std::vector<uint8_t> out(1 << 16);
	ProtobufCMessage *m = protobuf_c_message_unpack(&sluice__v1__produce__descriptor, nullptr,
	                                                fx.body_len, fx.body);

	for (auto _ : state) {
		size_t n = protobuf_c_message_pack(m, out.data());
		benchmark::DoNotOptimize(n);
		benchmark::ClobberMemory();
	}
	protobuf_c_message_free_unpacked(m, nullptr);
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)fx.body_len);
	per_event(state, kEvents);
}
BENCHMARK(PbcPack);

void AckEncode(benchmark::State &state)
{
	uint8_t out[512];
	struct sl_ack_part part = {};
	part.partition = 5;
	part.base_offset = 123456789;
	part.index = {nullptr, 0, kEvents};
	struct sl_ack ack = {};
	ack.base_sequence = 1000;
	ack.parts = &part;
	ack.n_parts = 1;

	for (auto _ : state) {
		benchmark::DoNotOptimize(ack.base_sequence);
		int n = sl_ack_encode(out, sizeof(out), &ack);
		benchmark::DoNotOptimize(n);
		benchmark::ClobberMemory();
	}
	per_event(state, kEvents);
}
BENCHMARK(AckEncode);

void AckEncodeOffsets(benchmark::State &state)
{
	uint8_t out[2048];
	uint64_t offsets[kEvents];
	for (int i = 0; i < kEvents; i++)
		offsets[i] = 123456789 + 3 * (uint64_t)i;
	struct sl_ack_part part = {};
	part.partition = 5;
	part.index = {nullptr, 0, kEvents};
	part.offsets = offsets;
	part.duplicate = true;
	struct sl_ack ack = {};
	ack.base_sequence = 1000;
	ack.parts = &part;
	ack.n_parts = 1;

	for (auto _ : state) {
		benchmark::DoNotOptimize(ack.base_sequence);
		int n = sl_ack_encode(out, sizeof(out), &ack);
		benchmark::DoNotOptimize(n);
		benchmark::ClobberMemory();
	}
	per_event(state, kEvents);
}
BENCHMARK(AckEncodeOffsets);

void EventScan(benchmark::State &state)
{
	const Fixture &fx = fixture();
	struct sl_event_view v;
	int i = 0;

	for (auto _ : state) {
		const std::vector<uint8_t> &e = fx.encoded[(size_t)(i++ & (kEvents - 1))];
		int rc = sl_event_scan(e.data(), e.size(), &v);
		benchmark::DoNotOptimize(rc);
		benchmark::DoNotOptimize(v);
	}
	per_event(state, 1);
}
BENCHMARK(EventScan);

} // namespace

BENCHMARK_MAIN();
