#!/usr/bin/env python3
"""Pipelines: a filter pipeline exactly once across SIGKILLs of sluiced.

  filter_exactly_once_across_kills
      Topic `events` (4 partitions) and a pipeline `big-orders` keeping type
      OrderPlaced into the derived topic `big`. One `sluice produce
      --print-acks` process streams 50,000 events (ids made from their index,
      one type in three OrderPlaced, 200 keys); sluiced is SIGKILLed twice
      mid-stream (once the producer has had 10,000 and then 30,000 acks)
      and restarted on the same data folder and port: the producer rides the
      restarts, and the pipeline resumes from its saved progress, running
      again what was in flight. Once every event is acked, the server is
      killed once more and restarted; then, within a bounded wait, `big`'s
      end offsets (GET /v1/status) stop moving at exactly the number of
      OrderPlaced events, and `sluice consume --topic big` shows each of them
      exactly once, nothing else, in per-key order.

Every wait is bounded; nothing sleeps to synchronise (the status poll has a
short pause between two reads).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, Server, Workdir, check, main, run  # noqa: E402

N = 50000
KEYS = 200
TAG = 0x9e9e0000


def event_id(i):
    return "%08x-0000-4000-8000-%012x" % (TAG, i)


def index_of(ev_id):
    if not ev_id.startswith("%08x-0000-4000-8000-" % TAG):
        return -1
    return int(ev_id[24:], 16)


def event_type(i):
    return "OrderPlaced" if i % 3 == 0 else ("Refund" if i % 3 == 1 else "Other")


def event_line(i):
    return ('{"id":"%s","type":"%s","aggregate":"k-%d","data":{"i":%d}}\n' % (
        event_id(i), event_type(i), i % KEYS, i))


PIPELINE = ("pipelines:\n"
            "  - { name: big-orders, from: events, to: big,\n"
            "      transforms: [ { plugin: filter, args: { type: OrderPlaced } } ] }\n")


def new_server(args, wd, port=0, n_restart=0):
    old = os.path.join(wd, "srv", "stderr.txt")
    if os.path.exists(old):
        shutil.copyfile(old, os.path.join(wd, "srv", "stderr.%d.txt" % n_restart))
    srv = Server(args.sluiced, wd, port=port, topics=[("events", 4)])
    with open(srv.config, "a") as f:
        f.write(PIPELINE)
    try:
        return srv.start()
    except Failure:
        srv.kill()
        raise


def sigkill(srv):
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=30)
    srv.proc.stdout.close()
    srv.stderr.close()


class Producer:
    """`sluice produce --print-acks`, fed from a thread, its acks counted."""

    def __init__(self, sluice, addr, wd):
        self.err = open(os.path.join(wd, "produce.stderr"), "wb")
        self.proc = subprocess.Popen(
            [sluice, "produce", "--print-acks", "--timeout", "120", "--server", addr],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.cv = threading.Condition()
        self.acked = 0
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.writer.start()
        self.reader.start()

    def _write(self):
        try:
            for i in range(0, N, 1000):
                self.proc.stdin.write("".join(
                    event_line(j) for j in range(i, min(i + 1000, N))).encode())
                self.proc.stdin.flush()
            self.proc.stdin.close()
        except OSError:
            pass  # the producer died: finish() says so

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                with self.cv:
                    self.acked += 1
                    self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_acked(self, count, timeout_s):
        end = time.monotonic() + timeout_s
        with self.cv:
            while self.acked < count:
                left = end - time.monotonic()
                check(left > 0 and self.reader.is_alive(),
                      "the producer had %d acks, not %d, within %d s" % (
                          self.acked, count, timeout_s))
                self.cv.wait(min(left, 0.5))

    def finish(self, timeout_s):
        rc = self.proc.wait(timeout=timeout_s)
        self.reader.join(timeout=30)
        self.err.close()
        check(rc == 0, "sluice produce exited %d" % rc)
        check(self.acked == N, "%d acks printed, want %d" % (self.acked, N))


def filter_exactly_once_across_kills(args):
    with Workdir() as wd:
        srv = new_server(args, wd)
        port = srv.port
        prod = Producer(args.sluice, srv.addr, wd)
        try:
            for n_kill, at in enumerate((10000, 30000), 1):
                prod.wait_acked(at, 120)
                sigkill(srv)
                srv = new_server(args, wd, port, n_kill)
            prod.finish(300)
            sigkill(srv)
            srv = new_server(args, wd, port, 3)
            want = len([i for i in range(N) if i % 3 == 0])
            # Bounded: 60 s. The pipeline reads what survived and runs again
            # what was in flight at each kill (duplicates: not stored); the
            # server's long poll (consume --follow) wakes the wait as `big`
            # grows. Exactly `want` once each is checked below.
            try:
                rc, _, err = run([args.sluice, "consume", "--server", srv.addr, "--topic",
                                  "big", "--follow", "--max", str(want)], timeout=60)
            except subprocess.TimeoutExpired:
                rc, err = -1, "timed out"
            check(rc == 0, "big did not reach %d events within 60 s (%d): %s" % (want, rc, err))
            rc, out, err = run([args.sluice, "consume", "--server", srv.addr, "--topic", "big"],
                               timeout=120)
            check(rc == 0, "consume failed (%d): %s" % (rc, err))
            seen = bytearray(N)
            last = [-1] * KEYS
            for line in out.splitlines():
                ev = json.loads(line)
                i = index_of(ev["id"])
                check(0 <= i < N, "foreign event in big: %r" % line)
                check(ev["type"] == "OrderPlaced", "big holds a %s" % ev["type"])
                check(seen[i] == 0, "event %d stored twice in big" % i)
                seen[i] = 1
                k = i % KEYS
                # Offsets within a partition; a key lives in one partition.
                check(i > last[k], "key %d out of order in big: %d after %d" % (k, i, last[k]))
                last[k] = i
            missing = [i for i in range(0, N, 3) if not seen[i]]
            check(not missing, "%d kept events missing from big, e.g. %r" % (
                len(missing), missing[:5]))
            print("pipelines: %d events, 2 kills mid-stream + 1 after, big holds %d once each"
                  % (N, want))
            check(srv.stop() == 0, "sluiced did not drain cleanly: %s" % srv.stderr_text())
        finally:
            if prod.proc.poll() is None:
                prod.proc.kill()
                prod.proc.wait()
            srv.kill()


if __name__ == "__main__":
    raise SystemExit(main({
        "filter_exactly_once_across_kills": filter_exactly_once_across_kills,
    }))
