"""Idempotence by event id (issue 20, item 3): the topic's dedup_window.

Two `sluice produce` processes are two producers (each its own producer id
and sequences), so only the events' ids can tell that the second sends what
the first stored.

two_producers: the same 100,000-event file with fixed ids produced twice,
  one process after the other: stored once (counted with `sluice consume`),
  every ack of the second run says duplicate with the first run's offset;
  /metrics counts the duplicates and the window's ids.
kill9_between: the same, with kill -9 of the server between the two runs:
  the window is rebuilt from the log at start, still stored once.
window_edge: dedup_window 2s: an id resent inside the window is a duplicate,
  resent past it is stored again. The append time lies between the first
  produce's start and its exit (one clock on one machine); the case waits
  by polling the clock for bounds computed from those, never for a guess.
"""

import json
import os
import re
import signal
import time

from harness import (Failure, Server, Workdir, check, http_open, main, parse_json_lines, run)

KEYS = 61


def write_events(path, n, tag=0):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "id": "%08x-%04x-4000-8000-%012x" % (i, tag, i),
                "type": "Deposited",
                "aggregate": "acct-%d" % (i % KEYS),
                "data": {"n": i},
            }) + "\n")


def produce_file(sluice, addr, path, timeout=300):
    with open(path, "rb") as f:
        data = f.read()
    rc, out, err = run([sluice, "produce", "--print-acks", "--server", addr], stdin=data,
                       timeout=timeout)
    check(rc == 0, "produce failed (%d): %s" % (rc, err))
    return parse_json_lines(out)


def consume_all(sluice, addr):
    rc, out, err = run([sluice, "consume", "--server", addr], timeout=300)
    check(rc == 0, "consume failed (%d): %s" % (rc, err))
    return parse_json_lines(out)


def metric_sum(srv, name):
    with http_open("http://127.0.0.1:%d/metrics" % srv.http_port, token=srv.token) as r:
        text = r.read().decode()
    vals = [float(m.group(1)) for m in re.finditer(r"^%s\{[^}]*\} (\S+)$" % name, text, re.M)]
    check(vals, "no %s in /metrics" % name)
    return sum(vals)


def twice(a, kill_between):
    n = 100000
    with Workdir() as wd:
        path = os.path.join(wd, "events.jsonl")
        write_events(path, n)
        srv = Server(a.sluiced, wd).start()
        port = srv.port
        try:
            first = produce_file(a.sluice, srv.addr, path)
            check(len(first) == n, "%d acks for %d events" % (len(first), n))
            check(not any(x.get("duplicate") for x in first), "a first send said duplicate")
            where = {x["id"]: (x["partition"], x["offset"]) for x in first}
            check(len(where) == n, "ids acked twice in the first run")
            if kill_between:
                srv.proc.send_signal(signal.SIGKILL)
                srv.proc.wait()
                srv = Server(a.sluiced, wd, port=port).start()
            t0 = time.monotonic()
            second = produce_file(a.sluice, srv.addr, path)
            secs = time.monotonic() - t0
            check(len(second) == n, "%d acks for %d events" % (len(second), n))
            dups = [x for x in second if x.get("duplicate")]
            check(len(dups) == n, "%d of %d acks of the second run say duplicate"
                  % (len(dups), n))
            for x in second:
                check((x["partition"], x["offset"]) == where[x["id"]],
                      "event %s: acked at %r, stored at %r" % (
                          x["id"], (x["partition"], x["offset"]), where[x["id"]]))
            consumed = consume_all(a.sluice, srv.addr)
            ids = [e["id"] for e in consumed]
            check(len(consumed) == n and len(set(ids)) == n,
                  "consumed %d events, %d distinct, for %d sent twice"
                  % (len(consumed), len(set(ids)), n))
            check(metric_sum(srv, "sluice_id_duplicates_total") == n,
                  "sluice_id_duplicates_total is not %d" % n)
            entries = metric_sum(srv, "sluice_partition_id_window_entries")
            check(entries == n, "%d ids in the windows, %d stored" % (entries, n))
            mem = metric_sum(srv, "sluice_partition_id_window_bytes")
            print("second run: %d duplicates by id in %.2f s; windows %d ids, %d bytes "
                  "(%.1f per id)" % (n, secs, entries, mem, mem / entries))
            check(srv.stop() == 0, "sluiced did not exit 0")
        finally:
            srv.kill()


def case_two_producers(a):
    twice(a, False)


def case_kill9_between(a):
    twice(a, True)


def wall_ms():
    return time.time() * 1000.0


def wait_until(ms, what):
    """Polls the clock until it reads `ms` (bounded by how far that is)."""
    deadline = time.monotonic() + max(0.0, (ms - wall_ms()) / 1000.0) + 5
    while wall_ms() < ms:
        check(time.monotonic() < deadline, "the clock did not reach %s" % what)
        # The window's edge in wall time is what is under test: nothing
        # to wait on but the clock itself.
        time.sleep(0.005)


def case_window_edge(a):
    window = 2000
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", 2)],
                     topic_keys=["dedup_window: 2s"]).start()
        try:
            path = os.path.join(wd, "one.jsonl")
            write_events(path, 1, tag=7)
            s0 = wall_ms()
            first = produce_file(a.sluice, srv.addr, path)
            a0 = wall_ms()
            check(len(first) == 1 and not first[0].get("duplicate"), "first: %r" % first)
            # The append time T is in [s0, a0]. Inside: resent so that it
            # arrives before s0 + window (now - T < window for any T).
            wait_until(a0 + 200, "a0 + 200 ms")
            s1 = wall_ms()
            inside = produce_file(a.sluice, srv.addr, path)
            a1 = wall_ms()
            check(a1 < s0 + window,
                  "the resend took too long to be inside the window (%.0f ms after the "
                  "first send)" % (a1 - s0))
            check(inside[0].get("duplicate") and inside[0]["offset"] == first[0]["offset"],
                  "resent %.0f-%.0f ms after the first send (inside %d ms): %r"
                  % (s1 - a0, a1 - s0, window, inside))
            # Just past: resent once now - T >= window for any T <= a0.
            wait_until(a0 + window + 50, "a0 + window")
            s2 = wall_ms()
            past = produce_file(a.sluice, srv.addr, path)
            check(not past[0].get("duplicate"),
                  "resent %.0f ms after the first ack (window %d ms): still a duplicate: %r"
                  % (s2 - a0, window, past))
            check((past[0]["partition"], past[0]["offset"]) ==
                  (first[0]["partition"], first[0]["offset"] + 1),
                  "stored again after its original: %r then %r" % (first, past))
            # And that second copy is in the window again.
            again = produce_file(a.sluice, srv.addr, path)
            check(again[0].get("duplicate") and again[0]["offset"] == past[0]["offset"],
                  "the copy stored again is not in the window: %r" % again)
            consumed = consume_all(a.sluice, srv.addr)
            check(len(consumed) == 2, "stored %d times, want 2" % len(consumed))
            print("inside: resent %.0f ms after the first ack, duplicate; past: %.0f ms, "
                  "stored again" % (s1 - a0, s2 - a0))
            check(srv.stop() == 0, "sluiced did not exit 0")
        finally:
            srv.kill()


if __name__ == "__main__":
    raise SystemExit(main({
        "two_producers": case_two_producers,
        "kill9_between": case_kill9_between,
        "window_edge": case_window_edge,
    }))
