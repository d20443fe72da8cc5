#!/usr/bin/env python3
"""Consumer groups (issue 18) through `sluice consume --group`.

  groups_under_load   a producer streams while members of one group join
                      one by one (1, 2, 3), one is killed with kill -9 and
                      one leaves: every event stored is printed by some
                      member (none skipped), each member prints a partition
                      in offset order, duplicates stay within the killed
                      member's last uncommitted batch, the assignment is
                      sticky (partitions moved between live members counted
                      by the server stay at what joining needs), and the
                      rebalance timeline (kill -> a survivor prints from a
                      partition of the killed member) is printed.
  groups_commit_modes with --commit after, a member killed mid-stream and a
                      new one after it print every event (at-least-once);
                      with --commit before, nothing is printed twice
                      (at-most-once).
  groups_server_kill9 committed offsets survive kill -9 of the server: a
                      member that printed exactly N events and left, then
                      the server killed and restarted, and the next member
                      prints exactly the rest.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Failure, Server, Workdir, check, main, run, wait_for_files  # noqa: E402,F401

TIMEOUT = 120


class Member:
    """One `sluice consume --group` process printing into out/NAME.jsonl;
    lines are read incrementally (complete lines only)."""

    def __init__(self, a, srv, outdir, name, group="g", extra=()):
        self.name = name
        self.path = os.path.join(outdir, name + ".jsonl")
        self.errpath = os.path.join(outdir, name + ".err")
        self.out = open(self.path, "wb")
        self.err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(
            [a.sluice, "consume", "--group", group, "--server", srv.addr] + list(extra),
            stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL)
        self.lines = []  # (partition, offset)
        self.pos = 0

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        for line in chunk[:end].splitlines():
            e = json.loads(line)
            self.lines.append((e["partition"], e["offset"]))
        self.pos += end
        return len(self.lines)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        self.out.close()
        self.err.close()
        self.read()
        return rc

    def stderr(self):
        with open(self.errpath, errors="replace") as f:
            return f.read()


def status(srv):
    with urllib.request.urlopen("http://127.0.0.1:%d/v1/status" % srv.http_port,
                                timeout=30) as r:
        return json.loads(r.read())


def ends(srv, topic="events"):
    for t in status(srv)["topics"]:
        if t["name"] == topic:
            return {p["partition"]: p["end_offset"] for p in t["partitions"]}
    raise Failure("no topic %s in status" % topic)


def group_doc(srv, name="g"):
    for g in status(srv)["groups"]:
        if g["name"] == name:
            return g
    raise Failure("no group %s in status" % name)


def wait(outdir, done, what):
    check(wait_for_files(outdir, done, TIMEOUT), "timed out waiting for " + what)


def coverage(members, end):
    """(missing, duplicates) over every (partition, offset < end)."""
    seen = {}
    for m in members:
        for po in m.lines:
            seen[po] = seen.get(po, 0) + 1
    missing = [(p, o) for p, e in end.items() for o in range(e) if (p, o) not in seen]
    dups = sum(c - 1 for c in seen.values())
    return missing, dups


def in_order(m):
    last = {}
    for p, o in m.lines:
        check(o > last.get(p, -1), "%s printed partition %d offset %d after %d" % (
            m.name, p, o, last.get(p, -1)))
        last[p] = o


def producer(a, srv, events, rate):
    return subprocess.Popen(
        [a.sluice, "bench", "--events", str(events), "--size", "60", "--connections", "2",
         "--rate", str(rate), "--server", srv.addr],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)


def case_groups_under_load(a):
    with Workdir() as wd, Server(a.sluiced, wd) as srv:
        outdir = os.path.join(wd, "out")
        os.makedirs(outdir)
        prod = producer(a, srv, 60000, 6000)
        ms = []
        try:
            follow = ["--follow", "--session-timeout", "3000"]
            A = Member(a, srv, outdir, "A", extra=follow)
            ms.append(A)
            wait(outdir, lambda: A.read() >= 3000, "A to print 3000")
            B = Member(a, srv, outdir, "B", extra=follow)
            ms.append(B)
            wait(outdir, lambda: B.read() >= 2000, "B to print 2000")
            C = Member(a, srv, outdir, "C", extra=follow)
            ms.append(C)
            wait(outdir, lambda: C.read() >= 1000, "C to print 1000")
            check(prod.poll() is None, "the producer finished before the kill: nothing "
                  "in flight")
            # B's partitions: those whose latest printed event (over all
            # members) is B's.
            latest = {}
            for m in ms:
                m.read()
                for i, (p, o) in enumerate(m.lines):
                    if o >= latest.get(p, (-1, None))[0]:
                        latest[p] = (o, m.name)
            b_parts = {p for p, (o, who) in latest.items() if who == "B"}
            check(b_parts, "B holds nothing before its kill: %r" % latest)
            base = {m.name: len(m.lines) for m in (A, C)}
            b_printed = len(B.lines)
            t_kill = time.monotonic()
            B.stop(signal.SIGKILL)

            def moved():
                for m in (A, C):
                    m.read()
                    if any(p in b_parts for p, _ in m.lines[base[m.name]:]):
                        return True
                return False
            wait(outdir, moved, "a survivor to print from B's partitions %r" % b_parts)
            t_resumed = time.monotonic()
            out, err = prod.communicate(timeout=TIMEOUT)
            check(prod.returncode == 0, "producer rc %d: %s" % (prod.returncode, err[-500:]))
            end = ends(srv)
            check(sum(end.values()) == 60000, "stored %d, not 60000" % sum(end.values()))

            def complete():
                for m in (A, C):
                    m.read()
                return not coverage(ms, end)[0]
            wait(outdir, complete, "every event printed")
            g = group_doc(srv)
            missing, dups = coverage(ms, end)
            for m in ms:
                in_order(m)
            # Sticky: B's join moves 4 of A's 8, C's 2 or 3 more; the kill
            # moves none between live members (B's go as orphans).
            check(g["partitions_moved"] <= 7, "moved %d partitions between live members: %r"
                  % (g["partitions_moved"], g))
            check(g["members_expired"] >= 1, "B's closed connection: %r" % g)
            check(len(g["members"]) == 2, "members: %r" % g["members"])
            check(dups <= 1000, "%d duplicates (B's last batch is at most 1000)" % dups)
            for p in g["topics"][0]["partitions"]:
                check(p["lag_events"] == 0 or p["member"], "lag with nobody reading: %r" % p)
            print("rebalance: B killed -> a survivor printed from B's partitions %s after "
                  "%.0f ms; %d events, %d duplicates (B printed %d), %d partitions moved "
                  "between live members over %d rebalances" % (
                      sorted(b_parts), (t_resumed - t_kill) * 1000, sum(end.values()), dups,
                      b_printed, g["partitions_moved"], g["rebalances"]))
            # One member leaves (SIGTERM ends it without a leave; its
            # connection closes): the other takes everything.
            A.stop()
            check(srv.stop() == 0, "sluiced exit code")
        finally:
            if prod.poll() is None:
                prod.kill()
                prod.wait()
            for m in ms:
                if m.proc.poll() is None:
                    m.proc.kill()
                    m.proc.wait()


def case_groups_commit_modes(a):
    with Workdir() as wd, Server(a.sluiced, wd) as srv:
        rc, out, err = run([a.sluice, "bench", "--events", "30000", "--size", "60",
                            "--connections", "2", "--server", srv.addr])
        check(rc == 0, "bench: %s" % err)
        end = ends(srv)
        outdir = os.path.join(wd, "out")
        os.makedirs(outdir)
        for mode, group in (("after", "ga"), ("before", "gb")):
            first = Member(a, srv, outdir, mode + "1", group=group,
                           extra=["--commit", mode, "--follow"])
            try:
                wait(outdir, lambda: first.read() >= 5000, "a first member to print 5000")
            finally:
                first.stop(signal.SIGKILL)
            second = Member(a, srv, outdir, mode + "2", group=group, extra=["--commit", mode])
            rc = second.proc.wait(timeout=TIMEOUT)
            second.stop()
            check(rc == 0, "second member rc %d: %s" % (rc, second.stderr()))
            missing, dups = coverage([first, second], end)
            in_order(first)
            in_order(second)
            if mode == "after":
                check(not missing, "--commit after lost %d events" % len(missing))
            else:
                check(dups == 0, "--commit before printed %d events twice" % dups)
            print("--commit %s: first printed %d before its kill, second %d; %d missing, "
                  "%d printed twice" % (mode, len(first.lines), len(second.lines),
                                        len(missing), dups))
        check(srv.stop() == 0, "sluiced exit code")


def case_groups_server_kill9(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd)
        try:
            srv.start()
            rc, out, err = run([a.sluice, "bench", "--events", "20000", "--size", "60",
                                "--connections", "2", "--server", srv.addr])
            check(rc == 0, "bench: %s" % err)
            end = ends(srv)
            rc, out1, err = run([a.sluice, "consume", "--group", "k", "--max", "7777",
                                 "--server", srv.addr])
            check(rc == 0, "first member: %s" % err)
            first = [(e["partition"], e["offset"]) for e in map(json.loads, out1.splitlines())]
            check(len(first) == 7777, "first member printed %d" % len(first))
            srv.kill()  # SIGKILL: only what was durable stays
            srv = Server(a.sluiced, wd)
            srv.start()
            check("commit records read back" in srv.stderr_text(),
                  "no replay said: %s" % srv.stderr_text())
            rc, out2, err = run([a.sluice, "consume", "--group", "k", "--server", srv.addr])
            check(rc == 0, "second member: %s" % err)
            second = [(e["partition"], e["offset"]) for e in map(json.loads, out2.splitlines())]
            both = set(first) | set(second)
            check(len(first) + len(second) == sum(end.values()) and
                  len(both) == sum(end.values()),
                  "first %d + second %d over %d events (%d distinct)" % (
                      len(first), len(second), sum(end.values()), len(both)))
            check(srv.stop() == 0, "sluiced exit code")
        finally:
            srv.kill()


if __name__ == "__main__":
    sys.exit(main({
        "groups_under_load": case_groups_under_load,
        "groups_commit_modes": case_groups_commit_modes,
        "groups_server_kill9": case_groups_server_kill9,
    }))
