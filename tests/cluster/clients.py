"""The clients under test: producers that record every ack, consumers that
record every read.

Producer j runs `sluice produce --server <every node> --print-acks`: the
client under test (libsluice's router finds leaders and resends after any
failure). A feeder thread writes its stdin at a bounded rate (events/s and
a total cap); every event has a fresh UUID, a key of this producer's own
(`p<j>k<m>`) and a per-producer sequence number `i`, so per-key order is
checkable from the log alone. A reader thread records every ack line with
its time (time.monotonic()) and the partition and offset it names.

If the produce process exits while the run goes on (it gave up after
--timeout, or crashed), a new one is started and gets first the events that
were fed but never acked (marked `resent`: their order relative to later
events is the harness's doing, not the engine's, so the checker leaves them
out of the order check), then the rest of the stream.

Consumer p runs `sluice consume --partition p --follow` and records each
event it reads (offset, id, time); when it exits (its leader failed), a new
one starts at the next offset.
"""

import json
import os
import subprocess
import threading
import time
import uuid

from topology import log

PAD = "x" * 64
TICK_S = 0.05  # the feeders' pacing step


class Producer:
    def __init__(self, topo, j, rate, total, keys, timeout_s):
        self.topo = topo
        self.j = j
        self.rate = rate  # events/s of this producer
        self.total = total  # at most this many events fed
        self.keys = keys
        self.timeout_s = timeout_s
        self.attempted = {}  # id -> (key, i, time fed, incarnation)
        self.order = []  # ids in the order fed (first time)
        self.acks = {}  # id -> (time, partition, offset) of the first ack
        self.ack_count = 0
        self.acked_twice = 0
        self.resent = set()
        self.incarnations = []  # (start time, exit time, rc, stderr tail)
        self.cv = threading.Condition()
        self.stopping = False
        self.proc = None
        self.seq = 0
        self.unacked_in = []  # what a new incarnation sends first

    def _start_proc(self):
        n = len(self.incarnations)
        err = open(os.path.join(self.topo.wd, "produce.%d.%d.err" % (self.j, n)), "wb")
        self.proc = subprocess.Popen(
            [self.topo.a.sluice, "produce", "--server", self.topo.servers(), "--topic",
             "events", "--print-acks", "--timeout", str(self.timeout_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        err.close()
        self.incarnations.append([time.monotonic(), None, None, err.name])
        threading.Thread(target=self._read, args=(self.proc, n), daemon=True).start()
        return self.proc

    def _read(self, proc, n):
        for line in proc.stdout:
            t = time.monotonic()
            try:
                a = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.ack_count += 1
                if a["id"] in self.acks:
                    self.acked_twice += 1
                else:
                    self.acks[a["id"]] = (t, a["partition"], a["offset"])
                self.cv.notify_all()
        rc = proc.wait()
        with self.cv:
            self.incarnations[n][1] = time.monotonic()
            self.incarnations[n][2] = rc
            self.cv.notify_all()

    def _line(self, eid):
        key, i, _, inc = self.attempted[eid]
        return (json.dumps({"type": "t", "aggregate": key, "id": eid,
                            "data": {"p": self.j, "i": i, "inc": inc, "pad": PAD}}) +
                "\n").encode()

    def _new_event(self):
        eid = str(uuid.uuid4())
        key = "p%dk%d" % (self.j, self.seq % self.keys)
        self.attempted[eid] = (key, self.seq, time.monotonic(), len(self.incarnations))
        self.order.append(eid)
        self.seq += 1
        return eid

    def _write(self, proc, data):
        try:
            proc.stdin.write(data)
            proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def _feed(self):
        proc = self._start_proc()
        t0 = time.monotonic()
        sent = 0
        while not self.stopping and sent < self.total:
            if proc.poll() is not None:
                # The client gave up: a new one, the unacked events first.
                with self.cv:
                    self.cv.wait_for(lambda: self.incarnations[-1][2] is not None, 30)
                    again = [e for e in self.order if e not in self.acks]
                log("producer %d: sluice produce exited (rc %s); a new one resends %d unacked "
                    "events" % (self.j, proc.returncode, len(again)))
                self.resent.update(again)
                proc = self._start_proc()
                if not self._write(proc, b"".join(self._line(e) for e in again)):
                    continue
            want = min(self.total, int((time.monotonic() - t0) * self.rate) + 1)
            if want > sent:
                lines = b"".join(self._line(self._new_event()) for _ in range(want - sent))
                # Blocked writes (the client's window is full) lose their
                # slots: the load stays bounded, it never bursts to catch up.
                if self._write(proc, lines):
                    sent = want
                t0 = max(t0, time.monotonic() - sent / self.rate)
            time.sleep(TICK_S)  # the load's pacing, not synchronisation
        try:
            proc.stdin.close()
        except OSError:
            pass

    def start(self):
        self.feeder = threading.Thread(target=self._feed, daemon=True)
        self.feeder.start()

    def stop(self, timeout):
        """Ends the input; waits (bounded) until the client exits, having
        acked what it could within its --timeout."""
        self.stopping = True
        self.feeder.join(timeout)
        if self.proc:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("producer %d: still running after %d s: killed" % (self.j, timeout))
                self.proc.kill()
                self.proc.wait()
        with self.cv:
            self.cv.wait_for(lambda: self.incarnations[-1][2] is not None, 30)

    def kill(self):
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()


class Consumer:
    RESTART_PACE_S = 0.5  # a client's retry pacing while no leader answers

    def __init__(self, topo, partition):
        self.topo = topo
        self.p = partition
        self.reads = {}  # offset -> id (the first read of that offset)
        self.read_at = {}  # offset -> when it was first read
        self.reread_differs = 0  # an offset read twice with different ids
        self.next = 0
        self.restarts = 0
        self.stopping = False
        self.proc = None

    def _run(self):
        while not self.stopping:
            self.proc = subprocess.Popen(
                [self.topo.a.sluice, "consume", "--server", self.topo.servers(), "--topic",
                 "events", "--partition", str(self.p), "--from", str(self.next), "--follow"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            for line in self.proc.stdout:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                off = e["offset"]
                if off in self.reads and self.reads[off] != e["id"]:
                    self.reread_differs += 1
                if off not in self.reads:
                    self.reads[off] = e["id"]
                    self.read_at[off] = time.monotonic()
                self.next = max(self.next, off + 1)
            self.proc.wait()
            if self.stopping:
                return
            self.restarts += 1
            time.sleep(self.RESTART_PACE_S)  # retry pacing of the client, see above

    def start(self):
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def stop(self):
        self.stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        self.th.join(30)
