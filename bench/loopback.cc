// loopback: the floor under any request/response over TCP on this machine,
// e.g. a read-model query over HTTP. Two threads, one blocking 100-byte echo
// over a loopback connection (TCP_NODELAY), one round trip per iteration;
// reports the round trip's p50/p99/p99.9 in microseconds beside the rate.
//
// Run it on its own (idle floor) and while `sluice bench` loads the same
// cores (the floor under ingest): a query cannot answer faster than a bare
// echo that needs the same two thread wake-ups. Measured on the 2-vCPU
// development machine (2026-11-25, four runs each): idle p50 105-122 us, p99
// 240-665 us; under `sluice bench --connections 2` p50 19-25 us, p99
// 0.71-1.14 ms.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <arpa/inet.h>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace
{

void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Reads exactly n bytes; false at end of stream or error.
bool read_all(int fd, char *p, size_t n)
{
	while (n) {
		ssize_t k = recv(fd, p, n, 0);
		if (k <= 0)
			return false;
		p += k;
		n -= (size_t)k;
	}
	return true;
}

void BM_TcpEchoRtt(benchmark::State &state)
{
	const size_t size = 100;
	sockaddr_in a = {};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	socklen_t len = sizeof(a);
	if (lfd < 0 || bind(lfd, (sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (sockaddr *)&a, &len) < 0) {
		state.SkipWithError("cannot listen on 127.0.0.1");
		return;
	}
	std::thread echo([lfd, size] {
		int c = accept(lfd, nullptr, nullptr);
		if (c < 0)
			return;
		nodelay(c);
		std::vector<char> buf(size);
		// Bounded by the client: it closes when the benchmark ends.
		while (read_all(c, buf.data(), size))
			if (send(c, buf.data(), size, MSG_NOSIGNAL) != (ssize_t)size)
				break;
		close(c);
	});
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (sockaddr *)&a, sizeof(a)) < 0) {
		state.SkipWithError("cannot connect to 127.0.0.1");
		if (fd >= 0)
			close(fd);
		shutdown(lfd, SHUT_RDWR);
		echo.join();
		close(lfd);
		return;
	}
	nodelay(fd);
	std::vector<char> buf(size, 'x');
	std::vector<uint32_t> ns;
	ns.reserve(1 << 20);
	for (auto _ : state) {
		auto t0 = std::chrono::steady_clock::now();
		if (send(fd, buf.data(), size, MSG_NOSIGNAL) != (ssize_t)size ||
		    !read_all(fd, buf.data(), size)) {
			state.SkipWithError("echo failed");
			break;
		}
		auto d = std::chrono::steady_clock::now() - t0;
		if (ns.size() < ns.capacity())
			ns.push_back((uint32_t)std::min<int64_t>(
			    std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(),
			    UINT32_MAX));
	}
	close(fd);
	echo.join();
	close(lfd);
	if (ns.empty())
		return;
	std::sort(ns.begin(), ns.end());
	auto pct = [&](double q) { return ns[(size_t)(q * (double)(ns.size() - 1))] / 1000.0; };
	state.counters["p50_us"] = pct(0.50);
	state.counters["p99_us"] = pct(0.99);
	state.counters["p999_us"] = pct(0.999);
	state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TcpEchoRtt)->UseRealTime()->MinTime(2.0);

} // namespace

BENCHMARK_MAIN();
