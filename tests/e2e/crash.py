"""Exactly once across crashes: SIGKILL sluiced K times under one producer.

One `sluice produce --print-acks` process (one client, so one producer id for
the whole run) is fed N JSON lines from a thread: ids derived from the index
(so every event is recognisable and unique), aggregates from --keys keys (so
per-key order is meaningful; default KEYS), written in index order, which is
the producer's send order. The topic has --partitions partitions (default 8);
the keys must be several times the partitions for the events to reach most
of them (see KEYS). Meanwhile the main thread kills sluiced with SIGKILL K
times at random moments and restarts it on the same data_dir and port; the
producer rides every restart (reconnect, resend of everything unanswered with
its original sequence).

Kills are spread over the whole stream and land mid-stream: kill j is
due once the producer has had an ack from the current server instance (it
is streaming to it), the writer has passed a random point (seeded, printed)
in the j-th of K+1 equal shares of the input, a random delay of up to
--max-delay (seeded, printed) has passed, and then at the next moment some
written event is not acked yet (bounded waits). Each kill reports how many events
were written but not yet acked then; a kill with none is counted as idle
and said so. The writer goes as fast as the producer takes input unless
--rate paces it; while the server is down it blocks on the full pipe (the
producer's window is full), which is part of what is tested.

After the K-th kill the rest of the input goes out; once the producer has
exited 0 (everything acked), the server is killed once more (not counted in
K) and restarted, and every partition is read from earliest with
`sluice consume`. Checks:
  - every id is stored exactly once (lost=..., duplicated=...);
  - per key, in offset order, the events follow the send order
    (reordered=...);
  - every partition's offsets are dense 0..end-1 and end where
    `sluice status` says (gaps=...);
  - every ack the producer printed points at where its event is stored
    (misacked=...; a duplicate whose original offset the server no longer
    knows is skipped).
Then one summary line:
  crash: N=.. K=.. lost=0 duplicated=0 reordered=0 gaps=0 seconds=..
and one with the rest, among it how many partitions hold events.

Every wait has a timeout; the whole run has a deadline (--deadline).

Usage: crash.py --sluiced P --sluice P [--events N] [--kills K] [--seed S]
                [--partitions N] [--keys K]
"""

import argparse
import array
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import threading
import time

from harness import Failure, Server, Workdir, check, run

# The default key count. Keys land on partitions by a hash, so K keys over
# P partitions reach about P * (1 - exp(-K / P)) of them: 300 keys fill all
# 8 partitions of the default topic, but only about 260 of 1,000, which is
# why a 1,000-partition run passes --keys 5000 (about 993 of 1,000).
KEYS = 300
# harness.Server's topic: what e2e_crash has always run against.
PARTITIONS = 8
# Ids are RUN_TAG-0000-4000-8000-<index, 12 hex digits>: canonical v4-shaped
# UUIDs, unique per index, and anything else in the topic is recognisably
# foreign.
RUN_TAG = 0x5eed0000
OFFSET_UNKNOWN = (1 << 64) - 1


def event_id(i):
    return "%08x-0000-4000-8000-%012x" % (RUN_TAG, i)


def index_of(ev_id):
    """The index an id was made from, or -1 for an id this run did not make."""
    if len(ev_id) != 36 or not ev_id.startswith("%08x-0000-4000-8000-" % RUN_TAG):
        return -1
    try:
        return int(ev_id[24:], 16)
    except ValueError:
        return -1


def event_line(i, keys=KEYS):
    return ('{"id":"%s","type":"Tick","aggregate":"agg-%d","timestamp":%d,'
            '"data":{"i":%d,"pad":"%s"}}\n' % (
                event_id(i), i % keys, 1700000000000 + i, i, "p" * (i % 40)))


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self, cap=None):
        left = self.end - time.monotonic()
        check(left > 0, "the run took longer than its deadline of %d s" % self.seconds)
        return left if cap is None else min(left, cap)


class Acks:
    """Where each event's ack said it is: partition -1 none yet, offset -2
    unknown (a duplicate acked more than a window ago). Producers that
    share one index space share one Acks."""

    def __init__(self, n):
        self.ack_part = array.array("i", [-1]) * n
        self.ack_off = array.array("q", [-1]) * n


class Producer:
    """`sluice produce --print-acks` with a paced, gated writer thread on its
    stdin and a reader thread on its stdout that records every ack.

    It sends the events first, first+stride, ... below n (by default all of
    0..n-1); several producers with the same n, first 0..stride-1 and one
    shared `acks` cover the index space between them (power loss runs
    several; with stride dividing `keys` each key has one producer, so
    per-key order is still a send order). Event i's key is i % keys."""

    def __init__(self, sluice, addr, n, rate, timeout_s, workdir, first=0, stride=1, acks=None,
                 name="produce", keys=KEYS):
        self.n = n
        self.keys = keys
        self.first = first
        self.stride = stride
        self.count = len(range(first, n, stride))  # lines this producer writes
        self.rate = rate
        self.err_path = os.path.join(workdir, name + ".stderr")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            [sluice, "produce", "--print-acks", "--timeout", str(timeout_s), "--server", addr],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.lock = threading.Lock()
        self.cv = threading.Condition(self.lock)
        self.written = 0          # lines written to the pipe
        self.acked = 0            # ack lines read
        self.stop = False
        self.writer_error = None
        self.reader_error = None
        acks = acks or Acks(n)
        self.ack_part = acks.ack_part
        self.ack_off = acks.ack_off
        self.ack_twice = 0
        self.ack_foreign = 0
        self.writer = threading.Thread(target=self._write, daemon=True)
        self.reader = threading.Thread(target=self._read, daemon=True)

    def start(self):
        self.writer.start()
        self.reader.start()

    def _write(self):
        """Unpaced: steps of 1000 lines, as fast as the pipe takes them.
        Paced (--rate): small steps, about one every 2 ms, so the stream is
        nearly continuous at the server's ~1 ms ack latency, and no catch-up
        after a stall."""
        step = max(1, int(self.rate * 0.002)) if self.rate else 1000
        pause = step / self.rate if self.rate else 0
        i = 0
        try:
            while i < self.count:
                with self.cv:
                    if self.stop:
                        return
                end = min(i + step, self.count)
                buf = "".join(event_line(self.first + j * self.stride, self.keys)
                              for j in range(i, end)).encode()
                t0 = time.monotonic()
                self.proc.stdin.write(buf)
                self.proc.stdin.flush()
                with self.cv:
                    self.written = end
                    self.cv.notify_all()
                left = pause * (end - i) / step - (time.monotonic() - t0)
                i = end
                if pause and left > 0:
                    time.sleep(left)  # pacing, not synchronisation
            self.proc.stdin.close()
        except (BrokenPipeError, OSError) as e:
            self.writer_error = "writing the producer's stdin: %s" % e

    def _read(self):
        buf = b""
        fd = self.proc.stdout.fileno()
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line:
                        self._ack(json.loads(line))
                with self.cv:
                    self.acked += len(lines)
                    self.cv.notify_all()
        except (OSError, ValueError) as e:
            self.reader_error = "reading the producer's acks: %s" % e

    def _ack(self, a):
        i = index_of(a["id"])
        if i < 0 or i >= self.n:
            self.ack_foreign += 1
            return
        if self.ack_part[i] != -1:
            self.ack_twice += 1
        self.ack_part[i] = a["partition"]
        self.ack_off[i] = -2 if a["offset"] == OFFSET_UNKNOWN else a["offset"]

    def snapshot(self):
        with self.lock:
            return self.written, self.acked

    def wait_acks_beyond(self, count, timeout_s):
        """Waits until more than `count` acks were read; False on timeout or
        when the producer's stdout ended."""
        end = time.monotonic() + timeout_s
        with self.cv:
            while self.acked <= count:
                left = end - time.monotonic()
                if left <= 0 or not self.reader.is_alive():
                    return False
                self.cv.wait(min(left, 0.5))
            return True

    def wait_written(self, count, timeout_s):
        """Waits until the writer has written `count` lines; False on timeout
        or when the writer stopped."""
        end = time.monotonic() + timeout_s
        with self.cv:
            while self.written < count:
                left = end - time.monotonic()
                if left <= 0 or not self.writer.is_alive():
                    return False
                self.cv.wait(min(left, 0.5))
            return True

    def wait_unacked(self, timeout_s):
        """Waits until some written event is not acked yet (the producer is
        mid-stream) and returns (written, acked) at that moment; on timeout
        the counts as they are."""
        end = time.monotonic() + timeout_s
        with self.cv:
            while self.written <= self.acked and self.written < self.count:
                left = end - time.monotonic()
                if left <= 0 or not self.writer.is_alive():
                    break
                self.cv.wait(min(left, 0.5))
            return self.written, self.acked

    def finish(self, timeout_s):
        """Waits for the producer to exit; returns (rc, stderr text)."""
        try:
            rc = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise Failure("producer still running %d s after the last kill; written %d, "
                          "acked %d:\n%s" % (timeout_s, self.written, self.acked,
                                             self.stderr_text()))
        self.writer.join(timeout=30)
        self.reader.join(timeout=60)
        check(not self.reader.is_alive(), "the ack reader did not finish")
        return rc, self.stderr_text()

    def stderr_text(self):
        self.err.flush()
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self):
        with self.cv:
            self.stop = True
            self.cv.notify_all()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def restart(sluiced, wd, port, n_restart, partitions=PARTITIONS):
    """A new sluiced on the same data_dir and port; keeps the previous
    instance's stderr beside it."""
    old = os.path.join(wd, "srv", "stderr.txt")
    if os.path.exists(old):
        shutil.copyfile(old, os.path.join(wd, "srv", "stderr.%d.txt" % n_restart))
    srv = Server(sluiced, wd, port=port, topics=[("events", partitions)])
    try:
        return srv.start()
    except Failure:
        srv.kill()  # not ready in time: do not leave it running
        raise


def sigkill(srv):
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=30)
    srv.proc.stdout.close()
    srv.stderr.close()


def end_offsets(sluice, addr):
    rc, out, err = run([sluice, "status", "--server", addr], timeout=60)
    check(rc == 0, "status failed (%d): %s" % (rc, err))
    ends = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and all(x.isdigit() for x in f):
            ends[int(f[0])] = (int(f[1]), int(f[2]))
    check(ends, "no partitions in sluice status: %r" % out)
    return ends


def verify(sluice, addr, prod, n, deadline):
    """Reads every partition from earliest and checks the stored stream.
    Streams the consumer's output: 5M events do not fit in memory as text.
    Keys are prod.keys (every producer of the run sent the same)."""
    keys = prod.keys
    seen = bytearray(n)            # times each index is stored (saturating)
    last_of_key = [-1] * keys      # highest index stored so far, per key
    next_off = {}                  # partition -> next expected offset
    stats = {"stored": 0, "duplicated": 0, "reordered": 0, "gaps": 0, "foreign": 0,
             "misacked": 0, "unknown_offset_acks": 0}
    examples = {k: [] for k in stats}

    def note(kind, text):
        stats[kind] += 1
        if len(examples[kind]) < 5:
            examples[kind].append(text)

    errf = open(os.path.join(os.path.dirname(prod.err_path), "consume.stderr"), "wb")
    proc = subprocess.Popen([sluice, "consume", "--server", addr],
                            stdout=subprocess.PIPE, stderr=errf)
    try:
        fd = proc.stdout.fileno()
        buf = b""
        while True:
            r, _, _ = select.select([fd], [], [], deadline.left(300))
            check(r, "sluice consume produced nothing for 300 s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if not line:
                    continue
                ev = json.loads(line)
                p, off = ev["partition"], ev["offset"]
                stats["stored"] += 1
                exp = next_off.get(p, 0)
                if off != exp:
                    note("gaps", "partition %d: offset %d where %d was next" % (p, off, exp))
                next_off[p] = off + 1
                i = index_of(ev["id"])
                if i < 0 or i >= n:
                    note("foreign", "%s at %d:%d" % (ev["id"], p, off))
                    continue
                if ev["aggregate"] != "agg-%d" % (i % keys) or ev["data"]["i"] != i:
                    note("foreign", "%s at %d:%d has the wrong content" % (ev["id"], p, off))
                if seen[i]:
                    note("duplicated", "event %d again at %d:%d" % (i, p, off))
                    seen[i] = min(seen[i] + 1, 255)
                    continue
                seen[i] = 1
                k = i % keys
                if i < last_of_key[k]:
                    note("reordered", "key agg-%d: event %d at %d:%d after event %d" % (
                        k, i, p, off, last_of_key[k]))
                else:
                    last_of_key[k] = i
                ap, ao = prod.ack_part[i], prod.ack_off[i]
                if ao == -2:
                    stats["unknown_offset_acks"] += 1
                elif ap != -1 and (ap, ao) != (p, off):
                    note("misacked", "event %d acked at %d:%d, stored at %d:%d" % (
                        i, ap, ao, p, off))
        rc = proc.wait(timeout=deadline.left(60))
        errf.close()
        with open(errf.name, "rb") as f:
            err = f.read().decode(errors="replace")
        check(rc == 0, "consume failed (%d): %s" % (rc, err))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lost = [i for i in range(n) if not seen[i]]
    stats["lost"] = len(lost)
    # Lost although acknowledged (the producer will never send them again):
    # what a durability promise forbids.
    stats["lost_acked"] = sum(1 for i in lost if prod.ack_part[i] != -1)
    examples["lost"] = ["event %d (%s)" % (i, event_id(i)) for i in lost[:5]]
    # Ends: what the consumer read must be everything the server has.
    ends = end_offsets(sluice, addr)
    for p, (start, end) in ends.items():
        if start != 0 or next_off.get(p, 0) != end:
            note("gaps", "partition %d: status says %d..%d, read 0..%d" % (
                p, start, end, next_off.get(p, 0)))
    # How much of the topic the keys reached: a partition with no event
    # was not tested at all.
    stats["partitions"] = len(ends)
    stats["partitions_written"] = sum(1 for p in ends if next_off.get(p, 0) > 0)
    return stats, examples


def crash_run(a):
    rng = random.Random(a.seed)
    t_start = time.monotonic()
    deadline = Deadline(a.deadline)
    n, k = a.events, a.kills
    share = n / (k + 1)
    points = [int((j + rng.uniform(0.2, 0.8)) * share) for j in range(k)]
    delays = [rng.uniform(0, a.max_delay) for _ in range(k)]
    print("crash: N=%d K=%d seed=%d partitions=%d keys=%d rate=%s kill points %s" % (
        n, k, a.seed, a.partitions, a.keys, "%.0f/s" % a.rate if a.rate else "unpaced",
        ", ".join("%d+%.3fs" % (p, d) for p, d in zip(points, delays))), flush=True)
    idle_kills = 0
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", a.partitions)])
        try:
            srv.start()
        except Failure:
            srv.kill()  # not ready in time: do not leave it running
            raise
        port = srv.port
        prod = Producer(a.sluice, srv.addr, n, a.rate, a.producer_timeout, wd, keys=a.keys)
        try:
            prod.start()
            ready = time.monotonic()
            acked_at_ready = 0
            for j in range(k):
                # The producer is streaming to this instance (it reconnected
                # after a restart) before a kill may land.
                check(prod.wait_acks_beyond(acked_at_ready, deadline.left(a.kill_wait)),
                      "kill %d: no ack from the server within %d s of its start (written %d, "
                      "acked %d, producer rc %s): %s" % (
                          j + 1, a.kill_wait, prod.written, prod.acked, prod.proc.poll(),
                          prod.stderr_text()[-2000:]))
                check(prod.wait_written(points[j], deadline.left(a.kill_wait)),
                      "kill %d: the writer did not reach event %d within %d s (written %d, "
                      "acked %d, producer rc %s): %s" % (
                          j + 1, points[j], a.kill_wait, prod.written, prod.acked,
                          prod.proc.poll(), prod.stderr_text()[-2000:]))
                # The random moment: a plain wait is the point here, not
                # synchronisation.
                time.sleep(min(delays[j], deadline.left()))
                # Then the next moment something is in flight.
                written, acked = prod.wait_unacked(deadline.left(5))
                sigkill(srv)
                unacked = written - acked
                if unacked <= 0:
                    idle_kills += 1
                print("kill %d/%d: %.2f s after ready; written %d, acked %d, unacked %d%s" % (
                    j + 1, k, time.monotonic() - ready, written, acked, unacked,
                    " (IDLE: nothing in flight)" if unacked <= 0 else ""), flush=True)
                srv = restart(a.sluiced, wd, port, j + 1, a.partitions)
                ready = time.monotonic()
                # The old instance's acks were all read while this one started.
                _, acked_at_ready = prod.snapshot()
            check(prod.writer_error is None, prod.writer_error or "")
            rc, err = prod.finish(deadline.left(a.producer_timeout + 60))
            check(prod.writer_error is None, prod.writer_error or "")
            check(prod.reader_error is None, prod.reader_error or "")
            check(rc == 0, "producer did not get every event acked (rc %d):\n%s" % (rc, err))
            check(prod.written == n, "wrote %d of %d events" % (prod.written, n))
            check(prod.acked == n, "producer printed %d acks for %d events" % (prod.acked, n))
            check(prod.ack_twice == 0 and prod.ack_foreign == 0,
                  "acks: %d for an event already acked, %d for ids never sent" % (
                      prod.ack_twice, prod.ack_foreign))
            summary = [l for l in err.splitlines() if "events read" in l]
            print("producer: %s" % (summary[-1] if summary else err.strip()[-300:]), flush=True)
            # Everything is acked: one more crash, then read back.
            sigkill(srv)
            srv = restart(a.sluiced, wd, port, k + 1, a.partitions)
            stats, examples = verify(a.sluice, srv.addr, prod, n, deadline)
            check(srv.stop() == 0, "sluiced did not exit 0 on SIGTERM")
        finally:
            prod.kill()
            srv.kill()
        seconds = time.monotonic() - t_start
        print("crash: N=%d K=%d lost=%d duplicated=%d reordered=%d gaps=%d seconds=%.1f" % (
            n, k, stats["lost"], stats["duplicated"], stats["reordered"], stats["gaps"],
            seconds), flush=True)
        print("crash: stored=%d misacked=%d foreign=%d duplicate acks with unknown offset=%d "
              "idle kills=%d partitions with events=%d of %d" % (
                  stats["stored"], stats["misacked"], stats["foreign"],
                  stats["unknown_offset_acks"], idle_kills, stats["partitions_written"],
                  stats["partitions"]), flush=True)
        bad = [kind for kind in ("lost", "duplicated", "reordered", "gaps", "misacked",
                                 "foreign") if stats[kind]]
        msgs = []
        for kind in bad:
            msgs.append("%s=%d, e.g. %s" % (kind, stats[kind], "; ".join(examples[kind])))
        if idle_kills:
            # Not a failure of the server, but the run did not test what it
            # means to: say so loudly.
            print("crash: WARNING: %d of %d kills found nothing in flight" % (idle_kills, k),
                  flush=True)
        check(not bad, "exactly once violated: " + " | ".join(msgs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SLUICE_CRASH_SEED", "1")))
    ap.add_argument("--max-delay", type=float, default=0.02,
                    help="longest random delay after a kill point is passed (s)")
    ap.add_argument("--rate", type=float, default=0,
                    help="input lines per second (default: as fast as the producer reads)")
    ap.add_argument("--kill-wait", type=float, default=120,
                    help="longest wait for the writer to reach a kill point (s)")
    ap.add_argument("--producer-timeout", type=float, default=300,
                    help="sluice produce --timeout (s)")
    ap.add_argument("--deadline", type=float, default=900, help="the whole run (s)")
    ap.add_argument("--partitions", type=int, default=PARTITIONS,
                    help="partitions of the topic `events`")
    ap.add_argument("--keys", type=int, default=KEYS,
                    help="aggregates the events are spread over (several per partition)")
    a = ap.parse_args()
    if (a.events < 1 or a.kills < 0 or a.max_delay < 0 or a.rate < 0 or a.partitions < 1
            or a.keys < 1):
        ap.error("need --events >= 1, --kills >= 0, --max-delay >= 0, --rate >= 0, "
                 "--partitions >= 1, --keys >= 1")
    start = time.monotonic()
    try:
        crash_run(a)
    except Failure as e:
        print("FAIL crash: %s" % e, file=sys.stderr)
        return 1
    print("PASS crash (%.2f s)" % (time.monotonic() - start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
