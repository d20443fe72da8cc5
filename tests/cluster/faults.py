#!/usr/bin/env python3
"""The Jepsen-style fault harness (issue 17 items 5 and 6).

One etcd (or three: --etcd 3) and 3 to 5 sluiced nodes, each in its own
network namespace (topology.py); producers and consumers that record every
ack and read (clients.py); a nemesis on a seeded schedule (nemesis.py):
kill -9, SIGSTOP pauses longer than session_ttl, network partitions with
iptables (isolate a node, minority/majority, a bridge node), clock skew
(a preload library), a full disk; then, with every fault healed and the cluster
whole, the checker (checker.py).

  faults.py --sluiced P --sluice P [--acks quorum] [--duration 60] [--seed S]
            [--modes quorum,all,leader] [--faults kill,pause,...]
            [--nodes 3] [--etcd 1] [--partitions 3] [--rate 300]
            [--max-events N] [--session-ttl 2] [--overlap]
            [--assert-no-dup auto|on|off] [--expect-loss] [--json F]

Pass: 0 lost, 0 order violations, 0 never-attempted events stored, 0
replicas differing below the HW, 0 reads of events that did not last, 0
acks whose event is stored at another offset (the last one and `lost`
are not asserted for `acks: leader`, whose loss of acks is documented: it
is counted; --expect-loss turns it around and fails a run that lost
nothing; what readers see lasts in every mode); duplicates per --assert-no-dup (auto: none may come from the
fault kinds in NO_DUP_KINDS). Exit 0 pass, 1 fail, 77 skip (not root, or
a tool missing).

The seed is printed; --seed S reruns the same schedule (the same fault
kinds, holds and roles; who leads is the cluster's doing). Every fault is
logged with its time since the start; the summary is one JSON line
(`faults-summary: {...}`) and a table.
"""

import argparse
import atexit
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
from clients import Consumer, Producer  # noqa: E402
from nemesis import KINDS, Nemesis, Schedule  # noqa: E402
from topology import FAKETIME_LIB, Failure, Topology, log, sweep_stale, wait_for_files  # noqa: E402

SKIP = 77
# Fault kinds under which the leader keeps its producer state (no
# failover of the producer's partition is needed to ride them out, or the
# new leader rebuilt it): a duplicate first fed during one of these fails
# the run under --assert-no-dup auto. See README (Cluster, fault harness).
NO_DUP_KINDS = ("bridge", "disk")


def need():
    if os.geteuid() != 0:
        return "needs root (network namespaces, iptables, tmpfs mounts)"
    for tool in ("ip", "iptables", "etcd", "mount"):
        if not shutil.which(tool):
            return "needs %s (./ops/deps installs it)" % tool
    return None


def final_state(topo, bound):
    """{partition: (HW, the lowest and the highest durable offset of its
    replicas, ISR)} from each leader's
    view once every replica holds the whole log of every partition (True
    with it), or the last view after `bound` seconds (False with it)."""
    last = {}

    def done():
        try:
            st = topo.partition_states()
            whole = True
            for p in range(topo.partitions):
                view = topo.node_status(st[p]["leader"])["topics"][0]["partitions"][p]
                if view.get("this_node") != "leader":
                    return None
                hw = view["high_watermark"]
                durable = [r["durable_offset"] for r in view["replica_state"]]
                last[p] = (hw, min(durable + [hw]), max(durable + [hw]), view["isr"])
                if any(d != hw for d in durable) or len(view["isr"]) < min(3, len(topo.nodes)):
                    whole = False
            return whole
        except (Failure, OSError, ValueError, KeyError):
            return None
    ok = wait_for_files([os.path.join(topo.wd, n) for n in topo.nodes], done, bound)
    return bool(ok), last


def read_partition(topo, p, bound=60):
    """Partition p through its leader (`sluice consume` without --follow):
    (events, None), or (what it printed, why it failed) when it failed or
    had not ended after `bound` seconds."""
    proc = subprocess.Popen([topo.a.sluice, "consume", "--server", topo.servers(), "--topic",
                             "events", "--partition", str(p), "--from", "earliest"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=bound)
        why = None if proc.returncode == 0 else "rc %d: %s" % (proc.returncode,
                                                               err.decode()[-300:])
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        why = "still running after %d s" % bound
    evs = []
    for x in out.decode(errors="replace").splitlines():
        try:
            evs.append(json.loads(x))
        except ValueError:
            pass
    return evs, why


def run_mode(a, acks, seed):
    ttl = a.session_ttl
    kinds = a.faults.split(",")
    topo = Topology(a, n_nodes=a.nodes, n_etcd=a.etcd, acks=acks, partitions=a.partitions,
                    session_ttl="%gs" % ttl, lag="%gs" % max(ttl, 2))
    atexit.register(topo.cleanup)
    topo.skew_lib = a.skew_lib
    producers, consumers = [], []
    nem = None
    ok = False
    try:
        log("mode acks=%s seed %d: %d nodes, %d etcd, %d partitions, session_ttl %gs, "
            "faults %s; work folder %s, prefix %s, subnet %s.0/24" % (
                acks, seed, a.nodes, a.etcd, a.partitions, ttl, kinds, topo.wd, topo.prefix,
                topo.subnet))
        leaders = topo.start()
        log("cluster up: leaders %s" % leaders)
        sched = Schedule(seed, kinds, a.duration, ttl, topo.nodes, a.partitions)
        for i, s in enumerate(sched.steps):
            log("schedule %d: %s hold %.2f s quiet %.2f s role %s" % (
                i, s["kind"], s["hold"], s["quiet"],
                "leader of p%d" % s["leader_of"] if s["leader_of"] is not None else
                "node #%d" % (s["pick"] % a.nodes)))
        per = a.rate / a.producers
        total = (a.max_events or int(a.rate * (a.duration + 60))) // a.producers
        for j in range(a.producers):
            producers.append(Producer(topo, j, per, total, a.keys, a.producer_timeout))
        for p in range(a.partitions):
            consumers.append(Consumer(topo, p))
        t_zero = time.monotonic()
        for x in producers + consumers:
            x.start()
        # Load first: every partition acks before the first fault.
        def acked_everywhere():
            parts = set()
            for pr in producers:
                with pr.cv:
                    parts |= {v[1] for v in pr.acks.values()}
            return len(parts) == a.partitions
        if not wait_for_files(topo.wd, acked_everywhere, 60):
            raise Failure("not every partition acked within 60 s of the start")
        nem = Nemesis(topo, sched, overlap=a.overlap, recover_s=a.recover_s)
        nem.run(t_zero + a.duration, t_zero)
        nem.heal_all()
        t_end = time.monotonic()
        log("schedule over at +%.2f s (%d faults); waiting for a whole cluster" % (
            t_end - t_zero, len(nem.faults)))
        fails = []
        if nem.wait_whole(a.recover_s) is None:
            fails.append("the cluster was not whole %d s after the last heal" % a.recover_s)
        for pr in producers:
            pr.stop(a.producer_timeout + 30)
        caught_up, views = final_state(topo, a.recover_s if not fails else 5)
        if not caught_up:
            fails.append("replicas did not all end at their leader's HW within %d s "
                         "(partition: HW, lowest, highest durable end, ISR): %s" % (
                             a.recover_s, views))
        # Replicas compared below what every one of them holds (all of the
        # log once they caught up).
        hws = {p: v[1] for p, v in views.items()}
        for c in consumers:
            c.stop()
        # The final log: each partition's leader's own segments below its
        # HW (what it holds, whatever its read path serves); what a reader
        # gets through the leader is compared with it.
        st = topo.partition_states()
        final = {}
        read_short = {}
        for p in range(a.partitions):
            hw = views.get(p, (0, 0))[0]
            final[p] = checker.disk_log(topo, st[p]["leader"], p, hw)
            if [e["offset"] for e in final[p]] != list(range(hw)):
                fails.append("partition %d: %s's segments do not hold offsets 0 to %d densely" %
                             (p, st[p]["leader"], hw))
            got, why = read_partition(topo, p)
            want = [e["id"] for e in final[p]]
            if why or [e["id"] for e in got] != want:
                at = next((i for i, (x, y) in enumerate(zip(got, want)) if x["id"] != y),
                          min(len(got), len(want)))
                read_short[p] = {"read": len(got), "hw": hw, "first_difference": at,
                                 "leader": st[p]["leader"], "failed": why}
        if read_short:
            fails.append("a consume through the leader does not return the leader's log "
                         "below the HW: %s" % read_short)
        summary, details = checker.check(topo, producers, consumers, final, hws, nem.faults,
                                         t_zero, ttl,
                                         {p: st[p]["replicas"] for p in range(a.partitions)})
        summary.update(mode=acks, seed=seed, duration_s=round(t_end - t_zero, 1),
                       nodes=a.nodes, etcd=a.etcd, partitions=a.partitions,
                       producer_exits=sum(len(p.incarnations) - 1 for p in producers),
                       consumer_restarts=sum(c.restarts for c in consumers),
                       final_read_short=read_short)
        strict = acks != "leader"
        if a.expect_loss:
            if summary["lost"] == 0:
                fails.append("expected acked events lost (--expect-loss), none were")
        elif strict and summary["lost"]:
            fails.append("%d acked events lost, e.g. %s" % (summary["lost"],
                                                            details["lost_ex"][:3]))
        if summary["order"]:
            fails.append("%d per-key order violations: %s" % (summary["order"],
                                                              details["order_ex"]))
        if summary["never_attempted"]:
            fails.append("%d stored events never produced: %s" % (summary["never_attempted"],
                                                                 details["never_ex"]))
        # Every mode: readers are shown the HW, which a failover keeps,
        # and replicas agree below it (`leader` loses acks, not reads).
        if summary["replica_diff"]:
            fails.append("replicas differ below the HW: %s" % details["replica_first"])
        if summary["read_lost"]:
            fails.append("%d consumer reads of events not in the final log there, e.g. %s" %
                         (summary["read_lost"], details["read_lost_ex"]))
        if strict and summary["ack_offset_moved"]:
            fails.append("%d acked events stored at another offset: %s" % (
                summary["ack_offset_moved"], details["moved_ex"]))
        if a.assert_no_dup == "on" and summary["dup"]:
            fails.append("%d duplicates (--assert-no-dup on)" % summary["dup"])
        elif a.assert_no_dup == "auto":
            bad = {k: v for k, v in summary["dup_by_fault"].items() if k in NO_DUP_KINDS}
            if bad:
                fails.append("duplicates first fed during %s (faults that keep the leader's "
                             "producer state)" % bad)
        summary["pass"] = not fails
        print("faults-summary: " + json.dumps(summary, sort_keys=True), flush=True)
        print("fault harness, acks=%s, seed %d, %.1f s, %d faults:\n%s" % (
            acks, seed, summary["duration_s"], len(nem.faults),
            checker.table(summary, details)), flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps({"summary": summary, "details": details}) + "\n")
        for x in fails:
            log("FAIL: " + x)
        ok = not fails
        return ok
    finally:
        for x in producers:
            x.kill()
        for c in consumers:
            c.stopping = True
            if c.proc and c.proc.poll() is None:
                c.proc.kill()
        if nem:
            nem.heal_all()
        topo.cleanup(keep_data=not ok or a.keep)
        if ok and not a.keep:
            shutil.rmtree(topo.wd, ignore_errors=True)
        else:
            log("kept %s for inspection" % topo.wd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--acks", default="quorum", choices=["leader", "quorum", "all"])
    ap.add_argument("--modes", help="several modes one after the other (comma-separated); "
                                    "--duration each")
    ap.add_argument("--duration", type=float, default=60, help="seconds of faults")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--faults", default=",".join(KINDS))
    ap.add_argument("--nodes", type=int, default=3, choices=[3, 4, 5])
    ap.add_argument("--etcd", type=int, default=1, choices=[1, 3])
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--rate", type=float, default=300, help="events/s over all producers")
    ap.add_argument("--max-events", type=int, help="total cap (default: rate x (duration+60))")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--keys", type=int, default=8, help="keys per producer")
    ap.add_argument("--producer-timeout", type=int, default=120)
    ap.add_argument("--session-ttl", type=float, default=2)
    ap.add_argument("--recover-s", type=int, default=60,
                    help="bound on the wait for a whole cluster after each heal and at the end")
    ap.add_argument("--overlap", action="store_true",
                    help="the next fault does not wait for the cluster to be whole")
    ap.add_argument("--assert-no-dup", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--expect-loss", action="store_true",
                    help="fail unless acked events were lost (shows the harness can fail)")
    ap.add_argument("--skew-with", default="skewtime", choices=["skewtime", "libfaketime"],
                    help="the skew fault's preload library (skewtime.c, built here with cc)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--json", help="append each mode's summary and details to this file")
    a = ap.parse_args()
    for k in a.faults.split(","):
        if k not in KINDS:
            ap.error("unknown fault %r (known: %s)" % (k, ",".join(KINDS)))
    why = need()
    if why:
        print("SKIP: the fault harness %s" % why, flush=True)
        return SKIP

    def on_signal(sig, frame):
        raise SystemExit("signal %d" % sig)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    a.skew_lib = FAKETIME_LIB
    if a.skew_with == "libfaketime" and not os.path.exists(FAKETIME_LIB):
        print("SKIP: the fault harness needs %s (./ops/deps installs faketime)" % FAKETIME_LIB)
        return SKIP
    if a.skew_with == "skewtime":
        # Built fresh each run into a folder of its own (one small file).
        import tempfile
        out = os.path.join(tempfile.mkdtemp(prefix="slfh-skewtime-"), "skewtime.so")
        cc = shutil.which("cc") or shutil.which("gcc")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "skewtime.c")
        if not cc or subprocess.run([cc, "-O2", "-shared", "-fPIC", src, "-o", out]).returncode:
            print("SKIP: the fault harness cannot build skewtime.c (no C compiler)", flush=True)
            return SKIP
        a.skew_lib = out
        atexit.register(shutil.rmtree, os.path.dirname(out), True)
    gone = sweep_stale()
    if gone:
        log("removed what a killed run left: %s" % ", ".join(gone))
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    log("seed %d (rerun with --seed %d)" % (seed, seed))
    modes = a.modes.split(",") if a.modes else [a.acks]
    results = {}
    for m in modes:
        try:
            results[m] = run_mode(a, m, seed)
        except Failure as e:
            log("FAIL (acks=%s): %s" % (m, e))
            results[m] = False
    log("results: %s (seed %d)" % (", ".join("%s %s" % (m, "pass" if ok else "FAIL")
                                             for m, ok in results.items()), seed))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
