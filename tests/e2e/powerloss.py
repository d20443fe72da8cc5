#!/usr/bin/env python3
"""Power loss: sluiced with its data_dir on faultfs, the power cut K times.

faultfs (tests/faultfs/) is mounted on a temporary folder and sluiced keeps
its data there: topic `events` (--partitions, default 4; small segments so
they roll every few hundred milliseconds at 4 partitions, the given
durability) and the projection `counter`. P `sluice produce --print-acks`
processes (crash.py's Producer: P divides --keys, default crash.KEYS, so
every key has one producer and per-key order is a send order) stream N
events between them at --rate events/s in all. Many partitions need many
more keys than crash.KEYS to be reached at all (see crash.KEYS).

Each cut, at a random moment (seeded, printed): once the current instance
has acked something and the acks passed a random point of the cut's share
of the input, after a random delay, and when some written event is
not acked yet, sluiced is SIGKILLed; one cut in four first gets SIGTERM
and is killed during its stop, which writes the producer checkpoints and
the projection snapshots (which the config also asks for every 5,000
events or 200 ms, so cuts land in them under load too): half of those a
few milliseconds in, half the moment faultfs
shows a snapshot or checkpoint half written (polled, bounded). Once the process is gone, faultfs's state says
what a power cut would lose (unsynced bytes, pending renames and creates,
by file: segment roll, producer checkpoint, projection snapshot), and then
the power is cut: `crash`, `crash reorder SEED` or `crash torn SEED`
(seeded). sluiced restarts on the same data and port (with fallocate refused
by faultfs half of the time, seeded: segments then grow by appends), the
producers ride through. A cut with nothing unacked and nothing unsynced is idle: counted,
and a failure (the run did not test what it means to).

After the K cuts the producers finish; one more cut (plain `crash`) and a
restart, then crash.py's verify() reads everything back: lost, duplicated,
reordered, gaps, misacked must all be 0, and the projection must have
applied every stored event once: counter's `type:Tick` equals the events
stored and `sluice projection rebuild counter` is equal to the live model.

With --expect-loss (durability none) the test passes only when acked events
were lost: it shows the test can see loss.

Summary line: powerloss: durability=.. cuts=.. acked=.. lost=.. ...

Usage: powerloss.py --sluiced P --sluice P --faultfs P [--cuts K] [--events N]
                    [--durability fsync|none] [--seed S] [--expect-loss]
                    [--partitions N] [--keys K]
"""

import argparse
import json
import os
import random
import re
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faultfs"))
from harness import Failure, Server, Workdir, check, run  # noqa: E402
from crash import KEYS, Acks, Deadline, Producer, sigkill, verify  # noqa: E402
from projections import get, q  # noqa: E402
from test_faultfs import FaultFS  # noqa: E402
from test_faultfs import Failure as FaultFSFailure  # noqa: E402

PARTITIONS = 4
MODES = ("crash", "reorder", "torn")


class PowerServer(Server):
    """harness.Server with its data_dir on the faultfs mount, a chosen
    durability and segment size, and the counter projection."""

    def __init__(self, sluiced, workdir, port, data_dir, durability, segment_bytes,
                 partitions=PARTITIONS):
        super().__init__(sluiced, workdir, port=port)
        cfg = [
            "data_dir: %s" % data_dir,
            "cores: 2",
            "listen: { native: 127.0.0.1:%d, http: 127.0.0.1:0 }" % port,
            "topics:",
            "  - name: events",
            "    partitions: %d" % partitions,
            "    durability: %s" % durability,
            "    segment_bytes: %d" % segment_bytes,
            "projections:",
            # Snapshots while the load runs, not only at stops: a cut may
            # land in one (the default is every 1M events or 60 s).
            "  - { name: counter, plugin: counter, from: events,"
            " snapshot: { every_events: 5000, every: 200ms } }",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")


def classify(state):
    """What a cut caught in flight, from faultfs's state: the set of
    'roll' (a segment created or renamed into place, or its index),
    'checkpoint' (a producer checkpoint or the producer-id file),
    'snapshot' (a projection snapshot), 'segment' (unsynced log data)."""
    caught = set()
    items = [("pending", x) for x in state.get("pending", [])]
    items += [("unsynced", x) for x in state.get("unsynced", [])]
    for kind, text in items:
        if "/projections/" in text:
            caught.add("snapshot")
        elif ".dedup" in text or re.search(r"data/producers", text):
            caught.add("checkpoint")
        elif "next.prep" in text or ".idx" in text or (kind == "pending" and ".log" in text):
            caught.add("roll")
        elif ".log" in text:
            caught.add("segment")
    return caught


def wait_projection(srv, timeout_s):
    """Waits (server side, read your writes) until counter has applied the
    last stored event of every partition."""
    st, body = get(srv, "/v1/status")
    check(st == 200, "status: %d %r" % (st, body))
    for part in body["topics"][0]["partitions"]:
        if part["end_offset"] > 0:
            token = "%d:%d" % (part["partition"], part["end_offset"] - 1)
            st, body = get(srv, q("counter", "type:Tick", min_offset=token,
                                  timeout_ms=int(timeout_s * 1000)), timeout=timeout_s + 30)
            check(st == 200, "counter waiting for %s: %d %r" % (token, st, body))


def check_projection(a, srv, stored, deadline):
    """The live counter equals the events stored and a rebuild from 0.
    Returns a short verdict for the summary line, and a list of problems."""
    problems = []
    try:
        wait_projection(srv, deadline.left(60))
    except Failure as e:
        return "not-applied", [str(e)]
    st, body = get(srv, q("counter", "type:Tick"))
    count = body.get("count") if st == 200 else None
    if count != stored:
        problems.append("counter type:Tick is %r (HTTP %d), %d events stored" % (
            count, st, stored))
    rc, out, err = run([a.sluice, "projection", "rebuild", "counter", "--http",
                        "127.0.0.1:%d" % srv.http_port], timeout=deadline.left(300))
    try:
        res = json.loads(out)
    except ValueError:
        res = None
    if rc != 0 or not res or not res.get("equal"):
        problems.append("rebuild of counter is not equal to the live model (rc %d): %s %s" % (
            rc, out.strip()[:500], err.strip()[:300]))
    elif sum(p["events"] for p in res["partitions"]) != stored:
        problems.append("rebuild applied %d events, %d stored" % (
            sum(p["events"] for p in res["partitions"]), stored))
    return ("equal" if not problems else "DIFFERENT"), problems


def start_server(a, wd, fs, port, n_restart):
    srv = PowerServer(a.sluiced, wd, port, os.path.join(fs.mnt, "data"), a.durability,
                      a.segment_bytes, a.partitions)
    old = os.path.join(wd, "srv", "stderr.txt")
    if n_restart and os.path.exists(old):
        os.replace(old, os.path.join(wd, "srv", "stderr.%d.txt" % n_restart))
    try:
        return srv.start()
    except Failure:
        srv.kill()
        raise


def powerloss_run(a):
    rng = random.Random(a.seed)
    t_start = time.monotonic()
    deadline = Deadline(a.deadline)
    n, k, p_count = a.events, a.cuts, a.producers
    share = n / (k + 1)
    points = [int((j + rng.uniform(0.2, 0.8)) * share) for j in range(k)]
    print("powerloss: durability=%s N=%d K=%d producers=%d seed=%d segment_bytes=%d "
          "partitions=%d keys=%d" % (a.durability, n, k, p_count, a.seed, a.segment_bytes,
                                     a.partitions, a.keys), flush=True)
    totals = {"idle": 0, "unsynced_bytes": 0, "stop_cuts": 0, "nofallocate": 0}
    caught = {"roll": 0, "checkpoint": 0, "snapshot": 0, "segment": 0}
    modes = {m: 0 for m in MODES}
    with Workdir() as wd:
        fs = FaultFS(a.faultfs, wd)
        srv = None
        prods = []
        try:
            fs.mount()
            if a.nofallocate:
                fs.do("nofallocate on")
            srv = start_server(a, wd, fs, 0, 0)
            port = srv.port
            acks = Acks(n)
            prods = [Producer(a.sluice, srv.addr, n, a.rate / p_count, a.producer_timeout, wd,
                              first=i, stride=p_count, acks=acks, name="produce%d" % i,
                              keys=a.keys)
                     for i in range(p_count)]
            for p in prods:
                p.start()

            def counts():
                w = a_ = 0
                for p in prods:
                    pw, pa = p.snapshot()
                    w += pw
                    a_ += pa
                return w, a_
            def all_exited():
                return all(p.proc.poll() is not None for p in prods)
            acked_at_ready = 0
            cuts_done = 0
            for j in range(k):
                if a.expect_loss and all_exited():
                    # Under `none` a cut that loses acked events leaves each
                    # producer's next sequence ahead of the recovered log:
                    # the rest of its events are refused (ERR_SEQUENCE) and
                    # it exits. Loss is what this run is after; stop here.
                    print("powerloss: every producer exited after cut %d (refused events: "
                          "see produce*.stderr); no more cuts" % j, flush=True)
                    break
                w, ack = counts()
                check(ack < n, "cut %d: every event is acked already: the producers went faster "
                      "than the cuts (lower --rate or raise --events)" % (j + 1))
                # The current instance is at work: some producer got an ack
                # from it, and the writers passed this cut's point.
                end = time.monotonic() + min(deadline.left(), a.cut_wait)
                while counts()[1] <= acked_at_ready and not (a.expect_loss and all_exited()):
                    check(time.monotonic() < end, "cut %d: no ack from the server within %d s "
                          "of its start (written/acked %r): %s" % (
                              j + 1, a.cut_wait, counts(), srv.stderr_text()[-2000:]))
                    prods[j % p_count].wait_acks_beyond(prods[j % p_count].acked, 0.05)
                # Acks, not lines written: the writers run ahead by the
                # pipes and the producers' windows, and a cut after the
                # last ack would find nothing in flight.
                while counts()[1] < points[j] and not (a.expect_loss and all_exited()):
                    check(time.monotonic() < end, "cut %d: the acks did not reach %d within "
                          "%d s (written/acked %r)" % (j + 1, points[j], a.cut_wait, counts()))
                    prods[j % p_count].wait_acks_beyond(prods[j % p_count].acked, 0.05)
                stop_cut = rng.random() < 0.25
                delay = rng.uniform(0, a.max_delay)
                stop_delay = rng.uniform(0, 0.03)
                mode = rng.choice(MODES)
                crash_seed = rng.randrange(1 << 32)
                # The random moment: a plain wait is the point here.
                time.sleep(min(delay, deadline.left()))
                # Then the next moment something is in flight over all the
                # producers (bounded), and the kill right after that look.
                t_end = time.monotonic() + min(deadline.left(), 5)
                while True:
                    written, acked = counts()
                    if written > acked or time.monotonic() >= t_end:
                        break
                    prods[j % p_count].wait_written(prods[j % p_count].written + 1, 0.01)
                if stop_cut:
                    totals["stop_cuts"] += 1
                    srv.proc.send_signal(signal.SIGTERM)
                    if rng.random() < 0.5:
                        time.sleep(stop_delay)  # a random moment into the stop
                    else:
                        # The moment the stop's snapshots or checkpoints are
                        # half written (polled; bounded: the stop may end).
                        t_end = time.monotonic() + 2
                        while time.monotonic() < t_end and srv.proc.poll() is None:
                            if classify(fs.state()) & {"snapshot", "checkpoint"}:
                                break
                sigkill(srv)
                # The process and its I/O threads are gone (reaped): what
                # faultfs holds now is exactly what the disk was given.
                state = fs.state()
                got = classify(state)
                for c in got:
                    caught[c] += 1
                unacked = written - acked
                idle = unacked <= 0 and state["unsynced_bytes"] == 0 and state["pending_ops"] == 0
                if idle:
                    totals["idle"] += 1
                totals["unsynced_bytes"] += state["unsynced_bytes"]
                cmd = "crash" if mode == "crash" else "crash %s %d" % (mode, crash_seed)
                fs.do(cmd)
                modes[mode] += 1
                after = fs.state()
                print("cut %d/%d: %s%s; %.2f s; written %d, acked %d, unacked %d; unsynced %d B "
                      "in %d files, %d pending ops%s; undone %d B%s" % (
                          j + 1, k, cmd, " (during stop)" if stop_cut else "",
                          time.monotonic() - t_start, written, acked, unacked,
                          state["unsynced_bytes"], state["unsynced_files"],
                          state["pending_ops"], " [%s]" % ",".join(sorted(got)) if got else "",
                          after["last_crash_undone_bytes"],
                          " (IDLE: nothing in flight)" if idle else ""), flush=True)
                # The next instance's segments pre-allocated or grown by
                # appends (sluiced's fallback where fallocate is refused).
                noalloc = a.nofallocate or rng.random() < 0.5
                fs.do("nofallocate %s" % ("on" if noalloc else "off"))
                totals["nofallocate"] += noalloc
                srv = start_server(a, wd, fs, port, j + 1)
                cuts_done += 1
                _, acked_at_ready = counts()
            # Every event out; under fsync every one acked.
            results = []
            for p in prods:
                try:
                    rc, err = p.finish(deadline.left(a.producer_timeout + 60))
                except Failure as e:
                    rc, err = None, str(e)
                results.append((rc, err))
            w, acked = counts()
            if not a.expect_loss:
                for i, (rc, err) in enumerate(results):
                    check(prods[i].writer_error is None, prods[i].writer_error or "")
                    check(prods[i].reader_error is None, prods[i].reader_error or "")
                    check(rc == 0, "producer %d did not get every event acked (rc %s):\n%s" % (
                        i, rc, err[-3000:]))
                check(acked == n, "producers printed %d acks for %d events" % (acked, n))
                check(all(p.ack_twice == 0 and p.ack_foreign == 0 for p in prods),
                      "acks for events already acked or never sent")
            # One more cut with everything acked, then read back.
            sigkill(srv)
            fs.do("crash")
            srv = start_server(a, wd, fs, port, k + 1)
            stats, examples = verify(a.sluice, srv.addr, prods[0], n, deadline)
            proj, proj_problems = check_projection(a, srv, stats["stored"], deadline)
            check(srv.stop() == 0, "sluiced did not exit 0 on SIGTERM")
            srv = None
        finally:
            for p in prods:
                p.kill()
            if srv:
                srv.kill()
            rc = fs.unmount()
        seconds = time.monotonic() - t_start
        acked_total = sum(1 for i in range(n) if prods[0].ack_part[i] != -1)
        print("powerloss: durability=%s cuts=%d acked=%d stored=%d lost=%d lost_acked=%d "
              "duplicated=%d reordered=%d gaps=%d misacked=%d projection=%s idle=%d "
              "seconds=%.1f" % (
                  a.durability, cuts_done, acked_total, stats["stored"], stats["lost"],
                  stats["lost_acked"], stats["duplicated"], stats["reordered"], stats["gaps"],
                  stats["misacked"], proj, totals["idle"], seconds), flush=True)
        print("powerloss: modes %s; cuts during a stop %d; cuts that caught a roll %d, a "
              "checkpoint %d, a snapshot %d, unsynced segment data %d; unsynced bytes at the "
              "cuts %d; restarts without fallocate %d; partitions with events %d of %d; "
              "faultfs exit %s" % (
                  ", ".join("%s=%d" % kv for kv in modes.items()), totals["stop_cuts"],
                  caught["roll"], caught["checkpoint"], caught["snapshot"], caught["segment"],
                  totals["unsynced_bytes"], totals["nofallocate"], stats["partitions_written"],
                  stats["partitions"], rc), flush=True)
        check(rc == 0, "faultfs exited %s (its log: %s)" % (rc, fs.log_text()))
        bad = [kind for kind in ("lost", "duplicated", "reordered", "gaps", "misacked",
                                 "foreign") if stats[kind]]
        msgs = ["%s=%d, e.g. %s" % (kind, stats[kind], "; ".join(examples[kind])) for kind in bad]
        if a.expect_loss:
            check(stats["lost_acked"] > 0,
                  "durability %s lost no acked event over %d power cuts: the test cannot see "
                  "loss (stored %d of %d)" % (a.durability, k, stats["stored"], n))
            print("powerloss: loss seen, as expected under durability %s: %s" % (
                a.durability, " | ".join(msgs)[:2000]), flush=True)
            return
        check(cuts_done == k, "%d of %d cuts done" % (cuts_done, k))
        check(totals["idle"] == 0, "%d of %d cuts found nothing in flight" % (totals["idle"], k))
        check(not bad, "power loss broke exactly once: " + " | ".join(msgs))
        check(not proj_problems, "projection: " + " | ".join(proj_problems))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--faultfs", required=True)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--cuts", type=int, default=20)
    ap.add_argument("--producers", type=int, default=3, help="divides --keys")
    ap.add_argument("--durability", default="fsync")
    ap.add_argument("--rate", type=float, default=20000,
                    help="events per second over all producers (spreads the input over the cuts)")
    ap.add_argument("--segment-bytes", type=int, default=256 * 1024)
    ap.add_argument("--nofallocate", action="store_true",
                    help="faultfs always refuses fallocate (else after half of the cuts)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SLUICE_POWERLOSS_SEED", "1")))
    ap.add_argument("--max-delay", type=float, default=0.05,
                    help="longest random delay after a cut point is passed (s)")
    ap.add_argument("--cut-wait", type=float, default=120,
                    help="longest wait for the server to ack and the writers to reach a point")
    ap.add_argument("--producer-timeout", type=float, default=120, help="sluice produce --timeout")
    ap.add_argument("--deadline", type=float, default=600, help="the whole run (s)")
    ap.add_argument("--expect-loss", action="store_true",
                    help="pass only if acked events were lost (durability none)")
    ap.add_argument("--partitions", type=int, default=PARTITIONS,
                    help="partitions of the topic `events`")
    ap.add_argument("--keys", type=int, default=KEYS,
                    help="aggregates the events are spread over (several per partition)")
    a = ap.parse_args()
    if (a.events < 1 or a.cuts < 1 or a.producers < 1 or a.partitions < 1 or a.keys < 1
            or a.keys % a.producers):
        ap.error("need --events >= 1, --cuts >= 1, --partitions >= 1, --keys >= 1 and "
                 "--producers dividing --keys (%d)" % a.keys)
    if not os.path.exists("/dev/fuse") or not shutil_which("fusermount3"):
        print("SKIP powerloss: no /dev/fuse or no fusermount3 (Debian package fuse3)")
        return 77
    start = time.monotonic()
    try:
        powerloss_run(a)
    except (Failure, FaultFSFailure) as e:
        print("FAIL powerloss (seed %d): %s" % (a.seed, e), file=sys.stderr)
        return 1
    print("PASS powerloss (%.2f s)" % (time.monotonic() - start))
    return 0


def shutil_which(name):
    import shutil
    return shutil.which(name)


if __name__ == "__main__":
    raise SystemExit(main())
