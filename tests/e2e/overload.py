#!/usr/bin/env python3
"""Overload: the memory budget holds and nothing is lost.

The real sluiced with a small memory_budget is offered ten times the rate it
can take (its peak measured first, closed loop) from many connections, open
loop, under the `block` policy. Its peak resident memory (VmHWM, the
kernel's high-water mark: no sampling can miss a spike) must stay under the
budget; every event must be acked exactly once; afterwards a closed-loop run
must complete again (its throughput against the first peak is printed: the
figure for the notes, not an assertion on a shared 2-core machine).

  overload_memory       200 connections, 256 MiB budget (default suite)
  slow_sink_block       a deliberately slow sink (tests/plugins/flaky_sink, 20 ms a
                        batch) under `block`: producers are throttled (credit waits),
                        RSS stays under the budget, nothing is lost, the sink gets all
  overload_memory_slow  1,000 connections, the default 512 MiB budget, 4M events (`slow`)
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, Server, Workdir, check, main, run, wait_for_files  # noqa: E402


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise Failure("no %s for pid %d" % (key, pid))


def bench(args, srv, events, conns, rate=None, size=100):
    cmd = [args.sluice, "bench", "--server", srv.addr, "--events", str(events),
           "--size", str(size), "--connections", str(conns)]
    if rate:
        cmd += ["--rate", "%.0f" % rate]
    rc, out, err = run(cmd, timeout=600)
    check(rc == 0, "bench failed (rc %d): %s" % (rc, err[-2000:]))
    line = out.strip().splitlines()[-1]
    return json.loads(line)


def overload(args, conns, budget_mib, events):
    with Workdir() as wd:
        srv = Server(args.sluiced, wd)
        with open(srv.config) as f:
            cfg = f.read()
        cfg += "limits: { memory_budget: %dMiB }\n" % budget_mib
        with open(srv.config, "w") as f:
            f.write(cfg)
        with srv:
            pid = srv.proc.pid
            rss0 = vm(pid, "VmRSS")
            peak = bench(args, srv, events // 4, 1)
            p = peak["events_per_s"]
            check(peak["acked"] == events // 4, "peak run lost events: %r" % peak)
            t0 = time.monotonic()
            over = bench(args, srv, events, conns, rate=10 * p)
            t_over = time.monotonic() - t0
            check(over["acked"] == events and over["refused"] == 0,
                  "events lost or refused under overload: %r" % over)
            check(over["duplicates"] == 0, "duplicates under overload: %r" % over)
            hwm = vm(pid, "VmHWM")
            # Recovery: closed-loop runs one after the other, from the moment
            # the overload stopped, until one reaches 90% of the peak.
            t1 = time.monotonic()
            afters = []
            for _ in range(5):
                after = bench(args, srv, events // 4, 1)
                check(after["acked"] == events // 4, "run after the overload lost events")
                afters.append("%.0f" % after["events_per_s"])
                if after["events_per_s"] >= 0.9 * p:
                    break
            recovered = time.monotonic() - t1
            budget = budget_mib << 20
            print("overload: %d connections offered %.0f events/s (10x the peak %.0f); "
                  "took %.0f events/s for %.1f s, send p99 %.1f ms; RSS at start %.1f MiB, "
                  "high-water %.1f MiB of a %d MiB budget; after: closed-loop runs at %s "
                  "events/s, the last %.0f%% of the peak, %.1f s after the overload stopped; "
                  "credit waits %d (%.0f ms summed)" % (
                      conns, 10 * p, p, over["events_per_s"], t_over,
                      over["send_p99_us"] / 1000, rss0 / 2**20, hwm / 2**20, budget_mib,
                      ", ".join(afters), 100 * after["events_per_s"] / p, recovered,
                      over["credit_waits"], over["credit_wait_ms"]))
            # Under a sanitizer the process carries shadow memory and a
            # quarantine the budget knows nothing of: the rest still holds.
            if not os.environ.get("SLUICE_SANITIZED"):
                check(hwm < budget, "RSS high-water %.1f MiB over the %d MiB budget" % (
                    hwm / 2**20, budget_mib))
            check(srv.stop() == 0, "sluiced did not drain cleanly")


def case_slow_sink_block(args):
    plugins = os.path.join(os.path.dirname(os.path.abspath(args.sluiced)), "..", "tests",
                           "plugins", "out")
    check(os.path.exists(os.path.join(plugins, "flaky_sink.so")), "no flaky_sink.so in " + plugins)
    n = 300000
    with Workdir() as wd:
        srv = Server(args.sluiced, wd)
        out = os.path.join(srv.dir, "sink.out")
        with open(srv.config) as f:
            cfg = f.read()
        cfg += ("limits: { memory_budget: 256MiB, max_follower_lag: 5000 }\n"
                "plugin_path: [ %s ]\n"
                "sinks:\n"
                "  - { name: slow, plugin: flaky_sink, from: events,\n"
                "      args: { path: %s, delay_us: 20000 } }\n" % (plugins, out))
        with open(srv.config, "w") as f:
            f.write(cfg)
        with srv:
            b = bench(args, srv, n, 50)
            check(b["acked"] == n and b["refused"] == 0 and b["dropped"] == 0,
                  "events lost under block: %r" % b)
            check(b["credit_waits"] > 0, "the producers were never throttled: %r" % b)
            # The sink catches up: woken by its writes, for at most 120 s.
            seen = [0]

            def sink_done():
                with open(out, "rb") as f:
                    seen[0] = f.read().count(b"\n")
                return seen[0] >= n

            wait_for_files(srv.dir, sink_done, 120)
            lines = seen[0]
            check(lines == n, "the sink holds %d of %d events" % (lines, n))
            hwm = vm(srv.proc.pid, "VmHWM")
            print("slow sink: %.0f events/s taken (the sink's pace), %d credit waits "
                  "(%.0f ms summed), RSS high-water %.1f MiB of 256 MiB, sink complete" % (
                      b["events_per_s"], b["credit_waits"], b["credit_wait_ms"], hwm / 2**20))
            if not os.environ.get("SLUICE_SANITIZED"):
                check(hwm < 256 << 20, "RSS high-water %.1f MiB over the budget" % (hwm / 2**20))
            check(srv.stop() == 0, "sluiced did not drain cleanly")


def case_overload_memory(args):
    overload(args, 200, 256, 1000000)


def case_overload_memory_slow(args):
    overload(args, 1000, 512, 4000000)


if __name__ == "__main__":
    sys.exit(main({
        "overload_memory": case_overload_memory,
        "slow_sink_block": case_slow_sink_block,
        "overload_memory_slow": case_overload_memory_slow,
    }))
