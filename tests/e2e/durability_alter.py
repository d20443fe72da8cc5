#!/usr/bin/env python3
"""`durability` altered at runtime (issue 22) while producers stream.

Each case runs a server whose config holds one idle topic (`cfg`, 1
partition) and creates the runtime topic `events` over HTTP; crash.py's
Producer streams to it (one producer id, resends across restarts, acks
printed). --partitions 40 puts 20 fsync partitions on each of the two
reactors, past SL_JOURNAL_MIN_PARTITIONS: their fsync goes through the
reactors' journals; --partitions 4 leaves them syncing their own segments.
Every alter is made while events are in flight (written to the producer,
not acked: asserted right before it), its answer must say the new
durability, and /metrics must show it in force: under `none` no fdatasync
of the topic's logs or of the journals while acks go on, under fsync
syncs again (the journals' with 40 partitions, the partitions' own with 4).

  alter_kill9      created fsync; altered to none, then sluiced is killed
                   (kill -9) mid-stream and restarted (the topic is `none`
                   there); altered to interval:5ms and back to fsync, then
                   killed and restarted again. The producer rides both
                   restarts; afterwards every event is stored exactly once
                   (crash.verify: lost, duplicated, reordered, gaps,
                   misacked all 0). Under none a kill -9 keeps the page
                   cache, so no acked event may go either: a replay of the
                   journal's older chunks over what none wrote after them
                   would lose some.
  alter_powerloss  data_dir on faultfs (tests/faultfs); created `none`, a
                   first producer streams, the topic is altered to fsync
                   under it; then a second producer (new events) streams
                   and the power is cut (kill -9, then faultfs drops every
                   unsynced byte) while its events are in flight. After the
                   restart every event the second producer had acked is
                   stored, and no event twice. Needs /dev/fuse (77: skip).

Usage: durability_alter.py --sluiced P --sluice P [--faultfs P]
                           [--partitions N] CASE
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faultfs"))
from harness import Failure, Server, Workdir, check, http_open  # noqa: E402
from crash import Acks, Deadline, Producer, index_of, sigkill, verify  # noqa: E402
from topics import call  # noqa: E402

KEYS = 300  # fills 40 partitions (crash.KEYS says why)


class DServer(Server):
    """harness.Server with the idle config topic `cfg`, optionally its
    data_dir elsewhere (on faultfs)."""

    def __init__(self, sluiced, wd, port=0, data_dir=None):
        super().__init__(sluiced, wd, port=port, topics=[("cfg", 1)])
        if data_dir:
            with open(self.config) as f:
                lines = f.read().splitlines()
            lines = ["data_dir: %s" % data_dir if x.startswith("data_dir:") else x
                     for x in lines]
            with open(self.config, "w") as f:
                f.write("\n".join(lines) + "\n")


def start(a, wd, port=0, data_dir=None, n_restart=0):
    old = os.path.join(wd, "srv", "stderr.txt")
    if n_restart and os.path.exists(old):
        os.replace(old, os.path.join(wd, "srv", "stderr.%d.txt" % n_restart))
    srv = DServer(a.sluiced, wd, port=port, data_dir=data_dir)
    try:
        return srv.start()
    except Failure:
        srv.kill()
        raise


def syncs(srv):
    """fdatasyncs so far: (the topic's logs' own, the journals')."""
    tok = os.environ.get("SLUICE_TOKEN") or getattr(srv, "token", None)
    with http_open("http://127.0.0.1:%d/metrics" % srv.http_port, token=tok) as r:
        text = r.read().decode()
    own = sum(int(m.group(1)) for m in re.finditer(
        r'^sluice_log_sync_seconds_count\{topic="events",partition="\d+"\} (\d+)$', text, re.M))
    jnl = sum(int(m.group(1)) for m in re.finditer(
        r'^sluice_journal_sync_seconds_count\{reactor="\d+"\} (\d+)$', text, re.M))
    return own, jnl


def progress(prod, more, deadline, why):
    """Waits until the producer has `more` acks beyond now (bounded)."""
    want = prod.snapshot()[1] + more
    while prod.snapshot()[1] < want:
        check(prod.proc.poll() is None or prod.reader.is_alive(),
              "the producer exited (%s): %s" % (why, prod.stderr_text()[-1500:]))
        prod.wait_acks_beyond(prod.snapshot()[1], deadline.left(30))
        check(time.monotonic() < deadline.end, "no acks %s" % why)


def in_flight(prod, why):
    """Asserts that some written event is not acked yet (the producer is
    mid-stream), waiting for that moment (bounded)."""
    written, acked = prod.wait_unacked(20)
    check(written > acked, "nothing in flight %s (written %d, acked %d): raise the event count"
          % (why, written, acked))


def alter(srv, prod, durability, journaled):
    in_flight(prod, "before the alter to %s" % durability)
    st, body = call(srv, "PATCH", "/v1/topics/events", {"settings": {"durability": durability}})
    check(st == 200, "alter to %s: %d %r" % (durability, st, body))
    check(body.get("durability") == durability
          and body["settings"].get("durability") == durability,
          "the alter's answer does not say durability %s: %r" % (durability, body))


def check_in_force(srv, prod, durability, journaled, deadline):
    """Acks go on and the syncs follow the policy: none: no fdatasync of the
    topic or the journals over 2,000 acks; fsync: the journals' (40
    partitions) or the logs' own (4) go up."""
    before = syncs(srv)
    progress(prod, 2000, deadline, "after the alter to %s" % durability)
    after = syncs(srv)
    if durability == "none":
        check(after == before, "fdatasyncs under none: (own, journal) %r -> %r" % (before, after))
    elif durability == "fsync":
        k = 1 if journaled else 0
        check(after[k] > before[k], "no %s fdatasync under fsync: (own, journal) %r -> %r"
              % ("journal" if journaled else "own", before, after))
        check(after[1 - k] == before[1 - k], "%s fdatasyncs under fsync: %r -> %r"
              % ("own" if journaled else "journal", before, after))
    else:
        check(after[0] > before[0] and after[1] == before[1],
              "interval: (own, journal) %r -> %r" % (before, after))
    print("  %s in force: (own, journal) syncs %r -> %r over 2,000 acks" % (
        durability, before, after), flush=True)


def create(srv, partitions, durability):
    st, body = call(srv, "POST", "/v1/topics", {
        "name": "events", "partitions": partitions,
        "settings": {"durability": durability, "segment_bytes": "64KiB"}})
    check(st == 201 and body.get("durability") == durability, "create: %d %r" % (st, body))


def kill_in_flight(srv, prod):
    in_flight(prod, "at the kill")
    sigkill(srv)


def case_alter_kill9(a):
    journaled = a.partitions > 2 * 16
    deadline = Deadline(250)
    n = 90000
    with Workdir() as wd:
        srv = start(a, wd)
        prod = None
        try:
            create(srv, a.partitions, "fsync")
            port = srv.port
            prod = Producer(a.sluice, srv.addr, n, 6000, 120, wd, keys=KEYS)
            prod.start()
            progress(prod, 1000, deadline, "from the start")
            alter(srv, prod, "none", journaled)
            check_in_force(srv, prod, "none", journaled, deadline)
            kill_in_flight(srv, prod)
            srv = start(a, wd, port=port, n_restart=1)
            st, body = call(srv, "GET", "/v1/topics/events")
            check(st == 200 and body["durability"] == "none", "after kill -9: %r" % body)
            progress(prod, 1000, deadline, "after the first restart")
            alter(srv, prod, "interval:5ms", journaled)
            check_in_force(srv, prod, "interval:5ms", journaled, deadline)
            alter(srv, prod, "fsync", journaled)
            check_in_force(srv, prod, "fsync", journaled, deadline)
            kill_in_flight(srv, prod)
            srv = start(a, wd, port=port, n_restart=2)
            st, body = call(srv, "GET", "/v1/topics/events")
            check(st == 200 and body["durability"] == "fsync", "after kill -9: %r" % body)
            rc, err = prod.finish(deadline.left(150))
            check(rc == 0 and prod.acked == n, "producer: rc %d, %d of %d acked: %s"
                  % (rc, prod.acked, n, err[-1500:]))
            check(prod.ack_twice == 0 and prod.ack_foreign == 0, "acks twice or foreign")
            stats, examples = verify(a.sluice, srv.addr, prod, n, deadline)
            bad = [k for k in ("lost", "duplicated", "reordered", "gaps", "misacked", "foreign")
                   if stats[k]]
            check(not bad, "after the alters and kills: " + " | ".join(
                "%s=%d, e.g. %s" % (k, stats[k], "; ".join(examples[k])) for k in bad))
            check(stats["partitions_written"] == a.partitions,
                  "events reached %d of %d partitions" % (stats["partitions_written"],
                                                          a.partitions))
            check(srv.stop() == 0, "sluiced did not exit 0 on SIGTERM")
            print("alter_kill9: %d partitions (%s): fsync -> none -> kill -9 -> interval:5ms -> "
                  "fsync -> kill -9, %d events stored once" % (
                      a.partitions, "journaled" if journaled else "own fdatasync", stats["stored"]))
        finally:
            if prod:
                prod.kill()
            srv.kill()


def read_ids(a, srv, deadline):
    """Every event of `events`: index -> times stored."""
    proc = subprocess.Popen([a.sluice, "consume", "--topic", "events", "--server", srv.addr],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=deadline.left(120))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    check(proc.returncode == 0, "consume: %s" % err.decode(errors="replace")[-500:])
    seen = {}
    for line in out.decode().splitlines():
        i = index_of(json.loads(line)["id"])
        seen[i] = seen.get(i, 0) + 1
    return seen


def case_alter_powerloss(a):
    if not os.path.exists("/dev/fuse") or not a.faultfs:
        print("SKIP alter_powerloss: no /dev/fuse or no --faultfs")
        sys.exit(77)
    from test_faultfs import FaultFS
    journaled = a.partitions > 2 * 16
    deadline = Deadline(250)
    n1, n = 20000, 60000
    with Workdir() as wd:
        fs = FaultFS(a.faultfs, os.path.join(wd, "fs"))
        srv = None
        prods = []
        try:
            fs.mount()
            data = os.path.join(fs.mnt, "data")
            srv = start(a, wd, data_dir=data)
            port = srv.port
            create(srv, a.partitions, "none")
            acks = Acks(n)
            before = Producer(a.sluice, srv.addr, n1, 4000, 60, wd, acks=acks, name="before",
                              keys=KEYS)
            prods.append(before)
            before.start()
            progress(before, 1000, deadline, "under none")
            alter(srv, before, "fsync", journaled)
            # Acked from here under fsync; the first producer stops (what it
            # had in flight may or may not be stored: not counted).
            check_in_force(srv, before, "fsync", journaled, deadline)
            before.kill()
            after = Producer(a.sluice, srv.addr, n, 4000, 120, wd, first=n1, acks=acks,
                             name="after", keys=KEYS)
            prods.append(after)
            after.start()
            progress(after, 5000, deadline, "after the alter")
            in_flight(after, "at the power cut")
            sigkill(srv)
            state = fs.state()
            fs.do("crash")
            print("  power cut: %d unsynced bytes in %d files dropped" % (
                state["unsynced_bytes"], state["unsynced_files"]), flush=True)
            srv = start(a, wd, port=port, data_dir=data, n_restart=1)
            rc, err = after.finish(deadline.left(150))
            check(rc == 0 and after.acked == n - n1, "the second producer: rc %d, %d of %d "
                  "acked: %s" % (rc, after.acked, n - n1, err[-1500:]))
            seen = read_ids(a, srv, deadline)
            lost = [i for i in range(n1, n) if acks.ack_part[i] != -1 and not seen.get(i)]
            twice = [i for i, k in seen.items() if k > 1]
            check(not lost, "%d events acked after the alter lost by the power cut, e.g. %r"
                  % (len(lost), lost[:5]))
            check(not twice, "%d events stored twice, e.g. %r" % (len(twice), twice[:5]))
            lost_before = sum(1 for i in range(n1) if acks.ack_part[i] != -1 and not seen.get(i))
            check(srv.stop() == 0, "sluiced did not exit 0 on SIGTERM")
            srv = None
            print("alter_powerloss: %d partitions (%s): none -> fsync under load; %d events "
                  "acked after it all stored once after a power cut (%d acked before it lost)"
                  % (a.partitions, "journaled" if journaled else "own fdatasync", n - n1,
                     lost_before))
        finally:
            for p in prods:
                p.kill()
            if srv:
                srv.kill()
            rc = fs.unmount()
        check(rc == 0, "faultfs exited %s (its log: %s)" % (rc, fs.log_text()))


CASES = {"alter_kill9": case_alter_kill9, "alter_powerloss": case_alter_powerloss}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--faultfs")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("case", choices=sorted(CASES))
    a = ap.parse_args()
    t0 = time.monotonic()
    try:
        CASES[a.case](a)
    except Failure as e:
        print("FAIL %s (%d partitions): %s" % (a.case, a.partitions, e), file=sys.stderr)
        return 1
    print("PASS %s (%d partitions, %.2f s)" % (a.case, a.partitions, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
