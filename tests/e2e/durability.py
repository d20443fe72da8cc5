"""Durability end to end: what sluiced acked is on disk and reads back.

consume_roundtrip: produce events, consume them back; every acked event is
  where its ack says, byte for byte (as JSON), offsets dense.
kill9_acked_survive: produce a stream with `sluice produce --print-acks`,
  SIGKILL the server once a share of the acks is in, restart it on the same
  port (the producer rides the restart), and check after the producer has
  finished that every acked event is readable at its acked partition and
  offset with its exact content, offsets dense per partition, and each key's
  events in the order they were sent.
"""

import json
import os
import select
import signal
import subprocess
import time

from harness import (Failure, Server, Workdir, check, main, parse_json_lines, run)

KEYS = 37


def make_events(n):
    """n events with fixed ids, so acks pair with what was sent whatever
    order they come back in (and whatever a restart made the client resend)."""
    evs = []
    for i in range(n):
        evs.append({
            "id": "%08x-0000-4000-8000-%012x" % (i, i),
            "type": "Deposited",
            "aggregate": "acct-%d" % (i % KEYS),
            "timestamp": 1700000000000 + i,
            "data": {"n": i // KEYS, "amount": i % 997, "memo": "x" * (i % 50)},
        })
    return evs


def consume_all(sluice, addr):
    rc, out, err = run([sluice, "consume", "--server", addr], timeout=300)
    check(rc == 0, "consume failed (%d): %s" % (rc, err))
    return parse_json_lines(out)


def check_stored(acks, sent_by_id, consumed):
    """acks: dicts id/partition/offset; consumed: consume output."""
    at = {}
    for ev in consumed:
        k = (ev["partition"], ev["offset"])
        check(k not in at, "offset %r printed twice" % (k,))
        at[k] = ev
    # Dense offsets per partition, from 0.
    by_part = {}
    for (p, o) in at:
        by_part.setdefault(p, []).append(o)
    for p, offs in by_part.items():
        offs.sort()
        check(offs == list(range(len(offs))),
              "partition %d offsets not dense: %r..." % (p, offs[:10]))
    # Every ack points at its own event, unchanged.
    for a in acks:
        k = (a["partition"], a["offset"])
        check(k in at, "acked event %s at %r is missing" % (a["id"], k))
        ev = at[k]
        check(ev["id"] == a["id"], "at %r: id %s, the ack said %s" % (k, ev["id"], a["id"]))
        src = sent_by_id[a["id"]]
        for field in ("type", "aggregate", "timestamp", "data"):
            check(ev[field] == src[field], "event %s: %s is %r, sent %r" % (
                a["id"], field, ev[field], src[field]))
    # Per key, in offset order, first occurrences follow the send order.
    per_key = {}
    for k in sorted(at):
        ev = at[k]
        per_key.setdefault(ev["aggregate"], []).append(ev["data"]["n"])
    for key, ns in per_key.items():
        seen, firsts = set(), []
        for n in ns:
            if n not in seen:
                seen.add(n)
                firsts.append(n)
        check(firsts == sorted(firsts), "key %s out of order: %r" % (key, firsts[:20]))
    return at


def case_consume_roundtrip(a):
    with Workdir() as wd, Server(a.sluiced, wd) as srv:
        evs = make_events(3000)
        sent = {e["id"]: e for e in evs}
        rc, out, err = run([a.sluice, "produce", "--print-acks", "--server", srv.addr],
                           stdin="".join(json.dumps(e) + "\n" for e in evs).encode())
        check(rc == 0, "produce failed (%d): %s" % (rc, err))
        acks = parse_json_lines(out)
        check(len(acks) == len(evs), "%d acks for %d events" % (len(acks), len(evs)))
        consumed = consume_all(a.sluice, srv.addr)
        check(len(consumed) == len(evs), "consumed %d of %d" % (len(consumed), len(evs)))
        check_stored(acks, sent, consumed)
        # --partition, --from and --max.
        rc, out, err = run([a.sluice, "consume", "--server", srv.addr, "--partition", "3",
                            "--from", "5", "--max", "4"])
        check(rc == 0, "consume --partition failed: %s" % err)
        part = parse_json_lines(out)
        check([e["offset"] for e in part] == [5, 6, 7, 8], "got %r" % [e["offset"] for e in part])
        check(all(e["partition"] == 3 for e in part), "wrong partition")
        rc, out, err = run([a.sluice, "consume", "--server", srv.addr, "--from", "latest"])
        check(rc == 0 and out == "", "--from latest printed %r (%s)" % (out[:200], err))
        rc, out, err = run([a.sluice, "consume", "--server", srv.addr, "--topic", "nope"])
        check(rc != 0 and "nope" in err, "unknown topic: rc %d, %r" % (rc, err))
        # status counts what is stored, partition by partition.
        rc, out, err = run([a.sluice, "status", "--server", srv.addr])
        check(rc == 0, "status failed: %s" % err)
        check("topic events: 8 partitions, 3000 events stored" in out, "status said: %r" % out)
        ends = {}
        for ev in consumed:
            ends[ev["partition"]] = max(ends.get(ev["partition"], 0), ev["offset"] + 1)
        for p, end in ends.items():
            check(any(l.split()[:3] == [str(p), "0", str(end)] for l in out.splitlines()),
                  "status: partition %d should end at %d: %r" % (p, end, out))
        check(srv.stop() == 0, "sluiced did not exit 0")


class Producer:
    """sluice produce --print-acks fed from a file, acks read as they come."""

    def __init__(self, sluice, addr, path, timeout_s):
        self.proc = subprocess.Popen(
            [sluice, "produce", "--print-acks", "--timeout", str(timeout_s), "--server", addr],
            stdin=open(path, "rb"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        self.acks = []

    def _take(self):
        *done, self.buf = self.buf.split(b"\n")
        for line in done:
            if line:
                self.acks.append(json.loads(line))

    def read_until(self, n, timeout_s):
        deadline = time.monotonic() + timeout_s
        while len(self.acks) < n:
            left = deadline - time.monotonic()
            check(left > 0, "only %d of %d acks after %d s" % (len(self.acks), n, timeout_s))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise Failure("producer exited early: %s" % self.proc.stderr.read().decode())
                self.buf += chunk
                self._take()

    def finish(self, timeout_s):
        out, err = self.proc.communicate(timeout=timeout_s)
        self.buf += out
        self._take()
        return self.proc.returncode, err.decode(errors="replace")


def case_kill9_acked_survive(a):
    n = 60000
    with Workdir() as wd:
        evs = make_events(n)
        sent = {e["id"]: e for e in evs}
        path = os.path.join(wd, "events.jsonl")
        with open(path, "w") as f:
            for e in evs:
                f.write(json.dumps(e) + "\n")
        srv = Server(a.sluiced, wd).start()
        port = srv.port
        prod = Producer(a.sluice, srv.addr, path, 120)
        try:
            prod.read_until(n // 4, 120)
            srv.proc.send_signal(signal.SIGKILL)  # mid-stream, no drain
            srv.proc.wait()
            before = len(prod.acks)
            check(before < n, "every event was acked before the kill: nothing was in flight")
            srv2 = Server(a.sluiced, wd, port=port).start()
            rc, err = prod.finish(180)
            check(rc == 0, "producer did not get every event acked (%d): %s" % (rc, err))
            ids = {x["id"] for x in prod.acks}
            check(ids == set(sent), "%d events never acked" % (len(set(sent) - ids)))
            consumed = consume_all(a.sluice, srv2.addr)
            # Exactly once: the producer resends what the kill left unacked
            # with its original sequences, and the restarted server's
            # sequence tables (recovered from the log) answer what it had
            # already stored as duplicates.
            ids = [e["id"] for e in consumed]
            check(len(consumed) == n and len(set(ids)) == n,
                  "consumed %d events, %d distinct, for %d sent: exactly once broken"
                  % (len(consumed), len(set(ids)), n))
            check_stored(prod.acks, sent, consumed)
            print("acked before the kill: %d; after: %d; stored: %d" % (
                before, len(prod.acks) - before, len(consumed)))
            check(srv2.stop() == 0, "sluiced did not exit 0")
        finally:
            prod.proc.kill()
            srv.kill()


if __name__ == "__main__":
    raise SystemExit(main({
        "consume_roundtrip": case_consume_roundtrip,
        "kill9_acked_survive": case_kill9_acked_survive,
    }))
