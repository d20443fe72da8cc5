#!/usr/bin/env python3
"""Named producers (issue 20 item 2): `sluice produce --producer NAME`.

A name is one input stream: event i of the input is sequence i of NAME, and
the server says where the stream's stored events end, so running a killed
`sluice produce --producer NAME` again on the same input stores every event
exactly once.

  client_kill9   the producer is killed (-9) with events in flight, after
                 some but not all were stored; the same command again on the
                 same file stores each of the 100,000 events exactly once.
  server_kill9   the same, with the server killed (-9) too between the runs
                 (at once, while the killed producer's last events may still
                 be on their way to disk): the name is seeded from the logs.
  fenced         two live sessions of one name: the older is fenced
                 (ERR_FENCED) once the newer says hello, and what the newer
                 sends is stored.
  bench          `sluice bench --producer load` run twice: connection i is
                 `load-i` both times, so the partitions know 4 producers
                 after 8 connections (fresh ids would make 8).

Waits are on conditions (stored counts, process exits), never on sleeps.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, Workdir, check, main, run  # noqa: E402
from crash import event_line, index_of, restart  # noqa: E402

N = 100000
# Lines written to the first run's stdin before it is killed: the rest of
# the file never reaches it, so "not all were stored" holds by construction.
FIRST_PART = 60000
# Stored before the kill: enough that the second run skips something.
KILL_AFTER = 5000


def stored(sluice, addr):
    """Events stored in topic events: the sum of the partitions' end
    offsets (`sluice status`: partition, first, end; below end is durable)."""
    rc, out, err = run([sluice, "status", "--server", addr], timeout=60)
    check(rc == 0, "status failed (%d): %s" % (rc, err))
    total = 0
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and all(x.isdigit() for x in f):
            total += int(f[2])
    return total


def wait_until(what, cond, timeout=60):
    """Polls cond() until true: a wait on a condition the server reaches,
    asked again as soon as the last answer came."""
    end = time.monotonic() + timeout
    while not cond():
        check(time.monotonic() < end, "not within %d s: %s" % (timeout, what))


def write_input(path):
    with open(path, "w") as f:
        for i in range(N):
            f.write(event_line(i))


def start_producer(sluice, addr, name, err_path):
    return subprocess.Popen(
        [sluice, "produce", "--producer", name, "--server", addr, "--timeout", "60"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=open(err_path, "wb"))


def killed_run(a, srv, wd, path):
    """The first run: fed FIRST_PART lines, killed once KILL_AFTER are
    stored, with its stdin still open (it is producing when it dies)."""
    p = start_producer(a.sluice, srv.addr, "orders", os.path.join(wd, "run1.err"))
    with open(path, "rb") as f:
        lines = f.readlines()[:FIRST_PART]

    def feed():
        # A thread of its own, so the kill lands while the pipe is full and
        # the producer is mid-stream.
        try:
            for k in range(0, len(lines), 500):
                p.stdin.write(b"".join(lines[k:k + 500]))
                p.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=feed)
    writer.start()
    wait_until("%d events stored by the first run" % KILL_AFTER,
               lambda: stored(a.sluice, srv.addr) >= KILL_AFTER)
    check(p.poll() is None, "the first run ended before the kill (rc %s)" % p.returncode)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    writer.join(timeout=30)
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass


def rerun(a, srv, wd, path):
    """The same command on the whole file: exits 0, says what it skipped."""
    with open(path, "rb") as f:
        rc, _, err = run([a.sluice, "produce", "--producer", "orders", "--server", srv.addr,
                          "--timeout", "60"], stdin=f.read(), timeout=180)
    with open(os.path.join(wd, "run2.err"), "w") as f:
        f.write(err)
    check(rc == 0, "second run failed (%d): %s" % (rc, err[-2000:]))
    m = re.search(r"skipping the first (\d+) events", err)
    check(m, "second run did not say what it skipped: %r" % err[-2000:])
    return int(m.group(1))


def verify_once(a, srv):
    """Every one of the N events stored exactly once, nothing else."""
    rc, out, err = run([a.sluice, "consume", "--server", srv.addr], timeout=300)
    check(rc == 0, "consume failed (%d): %s" % (rc, err))
    seen = bytearray(N)
    dups = foreign = 0
    for line in out.splitlines():
        i = index_of(json.loads(line)["id"])
        if i < 0 or i >= N:
            foreign += 1
        elif seen[i]:
            dups += 1
        else:
            seen[i] = 1
    gaps = N - sum(seen)
    check(dups == 0 and gaps == 0 and foreign == 0,
          "%d duplicates, %d missing, %d foreign of %d events" % (dups, gaps, foreign, N))


def kill9_case(a, server_too):
    with Workdir() as wd:
        path = os.path.join(wd, "input.jsonl")
        write_input(path)
        srv = Server(a.sluiced, wd).start()
        try:
            killed_run(a, srv, wd, path)
            before = stored(a.sluice, srv.addr)
            # Some, and not even all of what it was given: it died with
            # events in flight (or not yet read from its stdin).
            check(0 < before < FIRST_PART,
                  "stored before the rerun: %d, want some but not all" % before)
            if server_too:
                # At once: the killed run's last events may still be on
                # their way to disk, on some partitions and not others.
                port = srv.port
                srv.proc.send_signal(signal.SIGKILL)
                srv.proc.wait(timeout=30)
                srv.proc.stdout.close()
                srv.stderr.close()
                srv = restart(a.sluiced, wd, port, 1)
            skipped = rerun(a, srv, wd, path)
            print("stored before the rerun: %d, skipped by it: %d" % (before, skipped))
            verify_once(a, srv)  # the contract first, then how it got there
            if not server_too:
                # Every stored event was accepted before it, in sequence
                # order: the name resumes at or past all of them (past:
                # accepted ones still on their way to disk at `before`).
                check(before <= skipped < N,
                      "skipped %d, but %d were stored already" % (skipped, before))
            else:
                # One window (8192) back from the logs' highest: the
                # resent ones that were stored are answered as duplicates.
                check(skipped < before, "skipped %d of %d stored" % (skipped, before))
        finally:
            srv.kill()


def client_kill9(a):
    kill9_case(a, False)


def server_kill9(a):
    kill9_case(a, True)


def fenced(a):
    with Workdir() as wd:
        with Server(a.sluiced, wd) as srv:
            old_err = os.path.join(wd, "old.err")
            old = start_producer(a.sluice, srv.addr, "shared", old_err)
            old.stdin.write(b"".join(event_line(i).encode() for i in range(100)))
            old.stdin.flush()
            wait_until("the older session's 100 events stored",
                       lambda: stored(a.sluice, srv.addr) >= 100)
            # The newer session: the same name, the next 100 events.
            lines = b"".join(event_line(i).encode() for i in range(200))
            rc, _, err = run([a.sluice, "produce", "--producer", "shared", "--server",
                              srv.addr], stdin=lines, timeout=60)
            check(rc == 0, "newer session failed (%d): %s" % (rc, err))
            check("skipping the first 100 events" in err, "newer session: %r" % err)
            check(stored(a.sluice, srv.addr) == 200, "the newer session's events not stored")
            # The older one speaks again: fenced, nothing of it stored.
            old.stdin.write(b"".join(event_line(i).encode() for i in range(100, 150)))
            old.stdin.close()
            rc = old.wait(timeout=60)
            with open(old_err) as f:
                text = f.read()
            check(rc != 0, "the older session exited 0 after being fenced: %s" % text)
            check("FENCED" in text or "fenced" in text, "no fencing in: %r" % text)
            check(stored(a.sluice, srv.addr) == 200,
                  "a fenced session stored events: %d" % stored(a.sluice, srv.addr))


def partition_producers(srv):
    """Each partition's count of producers tracked (/metrics)."""
    from harness import http_open
    with http_open("http://127.0.0.1:%d/metrics" % srv.http_port) as r:
        text = r.read().decode()
    counts = [int(v) for v in
              re.findall(r'^sluice_partition_producers\{[^}]*\} (\d+)$', text, re.M)]
    check(counts, "no sluice_partition_producers in /metrics")
    return counts


def bench(a):
    with Workdir() as wd:
        with Server(a.sluiced, wd) as srv:
            for run_no in (1, 2):
                rc, out, err = run([a.sluice, "bench", "--events", "4000", "--size", "50",
                                    "--connections", "4", "--producer", "load",
                                    "--server", srv.addr], timeout=120)
                check(rc == 0, "bench run %d failed (%d): %s" % (run_no, rc, err))
                check(stored(a.sluice, srv.addr) == 4000 * run_no,
                      "run %d: %d stored" % (run_no, stored(a.sluice, srv.addr)))
            # One unnamed producer after them, to every partition: once the
            # tick has published it, each partition shows 4 named + 1 (fresh
            # ids per run would show 8 + 1).
            lines = "".join(event_line(i) for i in range(400)).encode()
            rc, _, err = run([a.sluice, "produce", "--server", srv.addr], stdin=lines,
                             timeout=60)
            check(rc == 0, "produce failed (%d): %s" % (rc, err))
            wait_until("every partition to know 5 producers (4 named, 1 not)",
                       lambda: partition_producers(srv) == [5] * len(partition_producers(srv)),
                       timeout=30)


if __name__ == "__main__":
    sys.exit(main({"client_kill9": client_kill9, "server_kill9": server_kill9,
                   "fenced": fenced, "bench": bench}))
