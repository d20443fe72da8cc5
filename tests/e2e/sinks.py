#!/usr/bin/env python3
"""End-to-end cases for sinks served by sluiced.

jsonl_exactly_once_across_kills: the real `jsonl` sink (plugins/jsonl)
  archives topic `events` while one `sluice produce --print-acks` streams
  20,000 events into it; sluiced is SIGKILLed twice mid-stream and restarted
  on the same data folder and port (the producer rides the restarts). Once
  every event is acked, the archive files must come to hold every acked event
  exactly once, at the partition and offset its ack named, with dense offsets
  per partition (a deadline bounds the wait; the files are polled). Then a
  clean SIGTERM must exit 0.
sink_refusals: a sink naming a projection plugin, an unknown plugin, or bad
  args makes sluiced refuse to start with a message naming the sink.
"""

import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, Server, Workdir, check, main, wait_for_files  # noqa: E402
from crash import Deadline, Producer, event_id, index_of, sigkill  # noqa: E402

PARTS = 4


class SinkServer(Server):
    """A Server whose config also lists sinks (harness.Server knows topics
    and projections only)."""

    def __init__(self, sluiced, workdir, sinks, port=0):
        super().__init__(sluiced, workdir, port=port, topics=[("events", PARTS)])
        lines = ["sinks:"]
        for name, plugin, args in sinks:
            lines.append("  - { name: %s, plugin: %s, from: events, args: %s }" % (
                name, plugin, json.dumps(args)))
        with open(self.config, "a") as f:
            f.write("\n".join(lines) + "\n")


def archive_file(base, p):
    root, ext = os.path.splitext(base)
    return "%s.%d%s" % (root, p, ext)


def read_archive(base):
    """Every line of every partition file: a list of (partition, offset, id)."""
    out = []
    for p in range(PARTS):
        path = archive_file(base, p)
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        # A line being appended right now may be torn: only whole lines.
        for n, line in enumerate(data.split(b"\n")[:-1], 1):
            try:
                ev = json.loads(line)
            except ValueError:
                raise Failure("%s:%d is not JSON: %r" % (path, n, line[:200]))
            check(ev.get("partition") == p, "%s:%d holds partition %r" % (
                path, n, ev.get("partition")))
            out.append((p, ev["offset"], ev.get("id")))
    return out


def case_jsonl_exactly_once_across_kills(a):
    n, kills = 20000, 2
    deadline = Deadline(240)
    rng = random.Random(7)
    with Workdir() as wd:
        base = os.path.join(wd, "archive.jsonl")
        sinks = [("archive", "jsonl", {"path": base})]
        srv = SinkServer(a.sluiced, wd, sinks).start()
        port = srv.port
        # Paced so the run lasts a few seconds and the kills land mid-stream.
        prod = Producer(a.sluice, srv.addr, n, 5000, 120, wd)
        try:
            prod.start()
            acked_at_ready = 0
            for j in range(kills):
                # The producer streams to this instance before it dies.
                check(prod.wait_acks_beyond(acked_at_ready, deadline.left(60)),
                      "kill %d: no ack from the server within 60 s of its start: %s" % (
                          j + 1, prod.stderr_text()[-2000:]))
                point = int((j + 1) * n / (kills + 1) * rng.uniform(0.8, 1.0))
                check(prod.wait_written(point, deadline.left(60)),
                      "kill %d: the writer did not reach event %d (written %d, acked %d): %s" % (
                          j + 1, point, prod.written, prod.acked, prod.stderr_text()[-2000:]))
                written, acked = prod.wait_unacked(deadline.left(5))
                sigkill(srv)
                print("kill %d/%d: written %d, acked %d, archived %d lines" % (
                    j + 1, kills, written, acked, len(read_archive(base))), flush=True)
                srv = SinkServer(a.sluiced, wd, sinks, port=port).start()
                _, acked_at_ready = prod.snapshot()
            rc, err = prod.finish(deadline.left(150))
            check(rc == 0, "producer failed (%d): %s" % (rc, err[-2000:]))
            check(prod.reader_error is None, prod.reader_error or "")
            acked = sum(1 for i in range(n) if prod.ack_part[i] != -1)
            check(acked == n, "only %d of %d events acked" % (acked, n))

            # The sink catches up on its own thread: wait until the files
            # hold as many lines as were acked, then compare exactly.
            t0 = time.monotonic()
            got = [[]]

            def archived():
                got[0] = read_archive(base)
                return len(got[0]) >= n

            check(wait_for_files(os.path.dirname(base), archived, deadline.left(60)),
                  "the archive holds %d lines of %d acked events after 60 s" % (
                      len(got[0]), n))
            lines = got[0]
            caught_up = time.monotonic() - t0

            seen = {}
            dup = foreign = misplaced = 0
            examples = []
            next_off = {}
            gaps = 0
            for p, off, ev_id in lines:
                if off != next_off.get(p, 0):
                    gaps += 1
                    if len(examples) < 5:
                        examples.append("partition %d: offset %d where %d was next" % (
                            p, off, next_off.get(p, 0)))
                next_off[p] = off + 1
                i = index_of(ev_id or "")
                if i < 0 or i >= n:
                    foreign += 1
                    continue
                if i in seen:
                    dup += 1
                    if len(examples) < 5:
                        examples.append("event %d at %d:%d and %d:%d" % (
                            i, p, off, *seen[i]))
                    continue
                seen[i] = (p, off)
                ao = prod.ack_off[i]
                if ao >= 0 and (prod.ack_part[i], ao) != (p, off):
                    misplaced += 1
                    if len(examples) < 5:
                        examples.append("event %d acked at %d:%d, archived at %d:%d" % (
                            i, prod.ack_part[i], ao, p, off))
            lost = [i for i in range(n) if i not in seen]
            print("sinks: N=%d kills=%d archived=%d lost=%d duplicated=%d misplaced=%d "
                  "gaps=%d foreign=%d caught_up=%.2fs" % (
                      n, kills, len(lines), len(lost), dup, misplaced, gaps, foreign,
                      caught_up), flush=True)
            check(not lost and not dup and not misplaced and not gaps and not foreign,
                  "archive wrong: lost %d (e.g. %s), duplicated %d, misplaced %d, gaps %d, "
                  "foreign %d; %s" % (len(lost), [event_id(i) for i in lost[:3]], dup,
                                      misplaced, gaps, foreign, examples))
            rc = srv.stop()
            check(rc == 0, "sluiced exited %s on SIGTERM: %s" % (rc, srv.stderr_text()[-2000:]))
            check("not served yet" not in srv.stderr_text(), srv.stderr_text()[-2000:])
        finally:
            prod.kill()
            srv.kill()


def case_sink_refusals(a):
    with Workdir() as wd:
        cases = [
            ([("arch", "counter", {})], "sink arch: ", "is a projection plugin"),
            ([("arch", "nope_no_such", {})], "sink arch: ", "nope_no_such"),
            ([("arch", "jsonl", {"pth": "x"})], "sink arch partition 0: ", "unknown arg 'pth'"),
        ]
        for k, (sinks, want1, want2) in enumerate(cases):
            srv = SinkServer(a.sluiced, wd, sinks, port=0)
            try:
                srv.start()
            except Failure as e:  # exited before ready, with its stderr
                msg = str(e)
            else:
                srv.stop()
                raise Failure("sluiced started with sinks %r" % (sinks,))
            finally:
                srv.kill()
            check(want1 in msg and want2 in msg,
                  "case %d: want %r and %r in: %s" % (k, want1, want2, msg[-1000:]))

if __name__ == "__main__":
    sys.exit(main({
        "jsonl_exactly_once_across_kills": case_jsonl_exactly_once_across_kills,
        "sink_refusals": case_sink_refusals,
    }))
