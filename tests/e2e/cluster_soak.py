"""The replication soak (issue 16 item 9): faults round after round under one
producer, on three sluiced nodes and one etcd on loopback (cluster.py's
Cluster: topic `events`, replicas 3, acks quorum, replica_lag_max 2 s).

Two partitions by default: their first leaders are n1 and n2 (placement), so
at any time at least one node leads nothing and can be killed as a follower
only.

One idempotent producer that knows the three nodes (`sluice produce --server
a,b,c --print-acks`) runs through every round. A thread feeds its stdin in
chunks, PACED by the acks: a chunk is written only while at most `window`
events are unacked, so there is always load in flight and the input never
runs out before the faults (it ends only when the rounds are over). Each
round first waits until acks grew since the previous one, then does one of:

  kill   kill -9 a node that leads no partition (a follower of every one);
         wait until each partition's leader shows it out of the in-sync set
         in /v1/cluster (a restart before that would rejoin on the old lease
         and never leave the set); restart it; wait until it is back in the
         set of every partition.
  move   a planned leader move of one partition to another in-sync replica
         (cluster.move: POST /v1/cluster/leader, or `sluice partition leader`
         for moves to n1); the new leader's stderr names the next epoch.
  failover
         kill -9 a node that leads a partition; wait until the failover
         controller gave each partition it led a new leader (a survivor's
         /v1/cluster names another leader with a higher epoch); restart it;
         wait until it is back in the in-sync set of every partition. The
         producer's events in flight at the dead leader go to the new one
         under their producer id and sequences: none is stored twice.

Rounds cycle kill, move, failover; the seed picks the node, partition and target
(printed, and --seed repeats a run's choices), preferring to kill former
leaders and to move partitions back to them (Schedule). At the end: the producer exits 0, every
event is acked once at the offset it is stored at, every node serves each
partition's events once, in per-key order (read from that node alone through
libsluice's consumer: `sluice consume` would read from the leader), and the
replicas' segments are byte-identical. One summary line per round and the totals on stdout.

Waits are on events (the acks' pipe, an HTTP answer polled between wake-ups
on the leader's stderr through inotify, a node's log line, a consume that
returns when the data is there), never sleeps. Every process is killed at
the end, also on failure.

Usage: cluster_soak.py --sluiced P --sluice P [--libsluice SO] [--rounds N] [--seed S]
       [--partitions 1|2]
       (SLUICE_SOAK_ROUNDS sets the default rounds)
"""

import argparse
import collections
import ctypes
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (NODES, TIMEOUT, Cluster, check_exactly_once, check_identical,  # noqa: E402
                     events, move, wait_replicated)
from harness import Failure, Workdir, check, wait_for_files  # noqa: E402

KEYS = 64      # spread over the partitions by hash; every key's order is checked
CHUNK = 500    # events a write to the producer's stdin
WINDOW = 4000  # at most this many unacked before the next chunk (about 0.1-0.3 s of load)


class _Opts(ctypes.Structure):  # struct sl_consumer_opts (sluice/consumer.h)
    _fields_ = [("host", ctypes.c_char_p), ("port", ctypes.c_uint16),
                ("client_name", ctypes.c_char_p), ("timeout_ms", ctypes.c_uint32),
                ("token", ctypes.c_char_p)]


class _Fetched(ctypes.Structure):  # struct sl_fetched
    _fields_ = [("partition", ctypes.c_uint32), ("offset", ctypes.c_uint64),
                ("append_time_ms", ctypes.c_int64), ("event", ctypes.c_void_p),
                ("len", ctypes.c_size_t)]


_VISIT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Fetched))


def _event(buf):
    """The fields of an encoded sluice.v1.Event the checks use: id (1),
    aggregate (3), data (5, JSON here)."""
    out, i = {}, 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v
    while i < len(buf):
        key = varint()
        if key & 7 == 0:
            varint()
        elif key & 7 == 2:
            n = varint()
            val = buf[i:i + n]
            i += n
            if key >> 3 == 1:
                out["id"] = str(uuid.UUID(bytes=val))
            elif key >> 3 == 3:
                out["aggregate"] = val.decode()
            elif key >> 3 == 5:
                out["data"] = json.loads(val)
        else:
            raise Failure("unexpected wire type %d in a stored event" % (key & 7))
    return out


def read_node(a, c, n, partition, n_events):
    """Events 0..n_events-1 of a partition as node n serves them (libsluice's
    consumer connected to n alone: `sluice consume` reads each partition from
    its leader, whatever --server says), waiting at n (long polls) until its
    high watermark passed them."""
    lib = ctypes.CDLL(a.libsluice)
    lib.sl_consumer_connect.argtypes = [ctypes.POINTER(_Opts), ctypes.POINTER(ctypes.c_void_p),
                                        ctypes.c_char_p, ctypes.c_size_t]
    lib.sl_consumer_fetch.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_uint32,
        ctypes.c_uint32, ctypes.c_uint32, _VISIT, ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint64)]
    lib.sl_consumer_close.argtypes = [ctypes.c_void_p]
    lib.sl_consumer_last_error.argtypes = [ctypes.c_void_p]
    lib.sl_consumer_last_error.restype = ctypes.c_char_p
    token = os.environ.get("SLUICE_TOKEN")
    opts = _Opts(b"127.0.0.1", c.nodes[n].port, b"cluster_soak", 30000,
                 token.encode() if token else None)
    con = ctypes.c_void_p()
    err = ctypes.create_string_buffer(512)
    ret = lib.sl_consumer_connect(ctypes.byref(opts), ctypes.byref(con), err, len(err))
    check(ret == 0, "%s: cannot connect a consumer: %s" % (n, err.value.decode()))
    raw = []

    def visit(_, ev):
        raw.append((ev.contents.offset, ctypes.string_at(ev.contents.event, ev.contents.len)))
        return 0
    cb = _VISIT(visit)
    nxt, end = ctypes.c_uint64(0), ctypes.c_uint64(0)
    deadline = time.monotonic() + TIMEOUT
    try:
        while nxt.value < n_events:
            check(time.monotonic() < deadline, "%s served %d of %d events of events/%d in %d s" % (
                n, nxt.value, n_events, partition, TIMEOUT))
            ret = lib.sl_consumer_fetch(con, b"events", partition, nxt.value, 0, 0, 1000, cb,
                                        None, ctypes.byref(nxt), ctypes.byref(end))
            check(ret >= 0, "%s: fetch of events/%d at %d: %s (%d)" % (
                n, partition, nxt.value, lib.sl_consumer_last_error(con).decode(), ret))
    finally:
        lib.sl_consumer_close(con)
    evs = []
    for off, buf in raw:
        e = _event(buf)
        e["offset"] = off
        evs.append(e)
    return evs


class Producer:
    """One `sluice produce` to the three nodes, its stdin fed from a thread in
    chunks paced by the acks read from its stdout on another."""

    def __init__(self, a, c, chunk=CHUNK, window=WINDOW):
        servers = ",".join(c.nodes[n].addr for n in NODES)
        self.proc = subprocess.Popen(
            [a.sluice, "produce", "--server", servers, "--topic", "events", "--print-acks",
             "--timeout", str(TIMEOUT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.chunk = chunk
        self.window = window
        self.cond = threading.Condition()
        self.acked = []     # raw ack lines, in the order printed
        self.ids = []       # ids written, in input order
        self.stopping = False
        self.eof = False    # its stdout ended: it exited
        self.write_error = None
        self.err_tail = collections.deque(maxlen=200)
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._read, self._write, self._drain)]
        for t in self.threads:
            t.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cond:
                self.acked.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def _drain(self):
        for line in self.proc.stderr:
            self.err_tail.append(line.decode(errors="replace"))

    def _write(self):
        try:
            while True:
                with self.cond:
                    while (not self.stopping and not self.eof and
                           len(self.ids) - len(self.acked) + self.chunk > self.window):
                        self.cond.wait()
                    if self.stopping or self.eof:
                        break
                    start = len(self.ids)
                data, ids = events(self.chunk, keys=KEYS, start=start)
                with self.cond:
                    self.ids.extend(ids)
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except OSError as e:  # its stdin closed under us: it exited
            self.write_error = e
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def n_acked(self):
        with self.cond:
            return len(self.acked)

    def wait_acks(self, n, timeout):
        """Until at least n acks were read: True, or False at the timeout or
        if the producer exited first."""
        with self.cond:
            return self.cond.wait_for(lambda: len(self.acked) >= n or self.eof, timeout) and \
                len(self.acked) >= n

    def running(self):
        return self.proc.poll() is None and not self.eof and self.write_error is None

    def finish(self):
        """Ends the input (the writer closes stdin after its chunk); the exit
        code once every event is acked or the producer gave up."""
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.threads[1].join(TIMEOUT)
        rc = self.proc.wait(timeout=TIMEOUT)
        self.threads[0].join(TIMEOUT)
        self.threads[2].join(TIMEOUT)
        return rc

    def kill(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def views(c, leaders):
    """Each partition's state as its leader reports it (/v1/cluster)."""
    return {p: c.state(leaders[p], p) for p in range(c.partitions)}


def wait_isr(c, leaders, node, inside):
    """Polls the leaders' /v1/cluster until `node` is in (inside) or out of
    every partition's in-sync set: the views then, and the seconds it took.
    Between polls: a wake-up on the leader's stderr (it logs each change of
    the set once etcd has it) or 0.25 s, whichever is first."""
    t0 = time.monotonic()
    deadline = t0 + TIMEOUT
    while True:
        vs = views(c, leaders)
        late = [p for p in vs if (node in vs[p]["isr"]) != inside]
        if not late:
            return vs, time.monotonic() - t0
        check(time.monotonic() < deadline,
              "%s still %s the in-sync set after %d s: %s" % (
                  node, "out of" if inside else "in", TIMEOUT, json.dumps(vs)))
        leader = leaders[late[0]]
        size = c.log_size(leader)
        wait_for_files(os.path.join(c.wd, leader), lambda: c.log_size(leader) > size, 0.25)


class Schedule:
    """Which node a round kills and where it moves a partition.

    Adversarial on purpose: kills prefer nodes that led a partition and were
    not killed since, and moves prefer nodes killed after they had led. Such
    a node restarted with the producer's session there known only from its
    log, while the producer had used up further sequences on events the
    node refused once the partition moved away (ERR_NOT_LEADER); the node
    once took the producer's next frame for a gap and refused it with
    ERR_SEQUENCE (fixed: sl_producer_seq_exact, handlers.c)."""

    def __init__(self, rng, leaders):
        self.rng = rng
        self.led = set(leaders.values())
        self.returned = set()  # led, then killed

    def victim(self, leaders):
        idle = [n for n in NODES if n not in leaders.values()]
        check(idle, "every node leads a partition: %r" % leaders)
        pref = [n for n in idle if n in self.led and n not in self.returned]
        n = self.rng.choice(pref or idle)
        if n in self.led:
            self.returned.add(n)
        return n

    def move(self, vs):
        """(partition, from, to) among the in-sync replicas."""
        moves = [(p, st["leader"], n) for p, st in sorted(vs.items()) for n in st["isr"]
                 if n != st["leader"]]
        check(moves, "no in-sync replica to move to: %s" % json.dumps(vs))
        pick = [m for m in moves if m[2] in self.returned] or moves
        m = self.rng.choice(pick)
        self.led.add(m[2])
        return m


def round_kill(c, prod, sched, leaders):
    victim = sched.victim(leaders)
    # In the set to begin with (a live follower may leave it for a moment
    # under load: replica_lag_max is 2 s on two cores), so that its leaving
    # is the kill's doing.
    wait_isr(c, leaders, victim, inside=True)
    check(prod.running(), "the producer ended before the kill of %s" % victim)
    at_kill = prod.n_acked()
    c.nodes[victim].proc.send_signal(signal.SIGKILL)
    c.nodes[victim].proc.wait()
    _, t_out = wait_isr(c, leaders, victim, inside=False)
    at_out = prod.n_acked()
    t = time.monotonic()
    c.restart(victim)  # ready once its old lease expired (up to 2 TTLs)
    t_up = time.monotonic() - t
    _, t_in = wait_isr(c, leaders, victim, inside=True)
    return "kill -9 %s (acks %d at the kill, +%d until it left the in-sync set after %.1f s), " \
        "restarted in %.1f s, back in after %.1f s" % (
            victim, at_kill, at_out - at_kill, t_out, t_up, t_in)


def round_move(c, prod, sched, leaders):
    vs = views(c, leaders)
    p, frm, to = sched.move(vs)
    st = vs[p]
    check(prod.running(), "the producer ended before the move of events/%d" % p)
    at_move = prod.n_acked()
    pos = c.log_size(to)
    ans = move(c, frm, to, p)
    check(ans.get("moved") is True and ans.get("leader") == to,
          "move of events/%d %s -> %s: %r" % (p, frm, to, ans))
    check(ans.get("epoch") == st["epoch"] + 1,
          "move of events/%d to epoch %r after %d" % (p, ans.get("epoch"), st["epoch"]))
    c.wait_log(to, "events/%d: leader, leader epoch %d\n" % (p, ans["epoch"]), pos)
    leaders[p] = to
    return "move events/%d %s -> %s (acks %d at the move), epoch %d" % (
        p, frm, to, at_move, ans["epoch"])


def wait_new_leaders(c, victim, led, epochs):
    """Polls the survivors' /v1/cluster until each partition in `led` has a
    leader other than `victim` with an epoch above epochs[p]: {p: leader}.
    Between polls: a wake-up on a survivor's stderr (a node logs its role
    change) or 0.25 s, whichever is first."""
    survivors = [n for n in NODES if n != victim]
    deadline = time.monotonic() + TIMEOUT
    while True:
        got = {}
        for p in led:
            st = c.state(survivors[0], p)
            if st["leader"] and st["leader"] != victim and st["epoch"] > epochs[p]:
                got[p] = st["leader"]
        if len(got) == len(led):
            return got
        check(time.monotonic() < deadline, "no new leader of %r within %d s" % (
            sorted(set(led) - set(got)), TIMEOUT))
        sizes = {n: c.log_size(n) for n in survivors}
        wait_for_files([os.path.join(c.wd, n) for n in survivors],
                       lambda: any(c.log_size(n) > sizes[n] for n in survivors), 0.25)


def round_failover(c, prod, sched, leaders):
    victim = sched.rng.choice(sorted(set(leaders.values())))
    led = sorted(p for p in leaders if leaders[p] == victim)
    vs = views(c, leaders)
    epochs = {p: vs[p]["epoch"] for p in led}
    check(prod.running(), "the producer ended before the failover of %s" % victim)
    at_kill = prod.n_acked()
    t = time.monotonic()
    c.nodes[victim].proc.send_signal(signal.SIGKILL)
    c.nodes[victim].proc.wait()
    new = wait_new_leaders(c, victim, led, epochs)
    t_new = time.monotonic() - t
    leaders.update(new)
    sched.returned.add(victim)
    at_new = prod.n_acked()
    t = time.monotonic()
    c.restart(victim)
    t_up = time.monotonic() - t
    _, t_in = wait_isr(c, leaders, victim, inside=True)
    return "failover: kill -9 %s, leader of %s (acks %d at the kill), new leaders %s after " \
        "%.1f s (acks %d then), restarted in %.1f s, back in after %.1f s" % (
            victim, ",".join("events/%d" % p for p in led), at_kill,
            ",".join("%s" % new[p] for p in led), t_new, at_new, t_up, t_in)


def soak(a):
    t0 = time.monotonic()
    with Workdir() as wd, Cluster(a, wd, partitions=a.partitions) as c:
        leaders = {p: NODES[p % len(NODES)] for p in range(a.partitions)}
        sched = Schedule(random.Random(a.seed), leaders)
        print("soak: %d rounds, %d partitions, seed %d, chunks of %d events, at most %d "
              "unacked" % (a.rounds, a.partitions, a.seed, CHUNK, WINDOW), flush=True)
        prod = Producer(a, c)
        counts = collections.Counter()
        try:
            prev = 0
            for r in range(1, a.rounds + 1):
                # Load in flight before each fault: acks grew by a chunk at
                # least since the previous round, and the stream goes on.
                if not prod.wait_acks(prev + CHUNK, TIMEOUT):
                    err = "".join(prod.err_tail)
                    raise Failure("round %d: acks stuck at %d (from %d)%s" % (
                        r, prod.n_acked(), prev, "" if prod.running() else
                        ": the producer ended: " + err[-2000:]))
                kind = ("kill", "move", "failover")[(r - 1) % 3]
                what = {"kill": round_kill, "move": round_move,
                        "failover": round_failover}[kind](c, prod, sched, leaders)
                counts[kind] += 1
                prev = prod.n_acked()
                vs = views(c, leaders)
                print("round %d/%d: %s; acks %d, written %d; epochs %s" % (
                    r, a.rounds, what, prev, len(prod.ids),
                    " ".join("events/%d=%d@%s" % (p, vs[p]["epoch"], vs[p]["leader"])
                             for p in vs)), flush=True)
            t_faults = time.monotonic() - t0
            rc = prod.finish()
            err = "".join(prod.err_tail)
            check(rc == 0, "produce failed (%d) after round %d: %s" % (
                rc, a.rounds, err[-3000:]))
        finally:
            prod.kill()
        ids = prod.ids
        check(prod.write_error is None, "writing the input: %s" % prod.write_error)
        acks = [json.loads(x) for x in prod.acked]
        check(len(acks) == len(ids), "%d acks for %d events" % (len(acks), len(ids)))
        check(len({x["id"] for x in acks}) == len(ids), "an event acked twice")
        check({x["id"] for x in acks} == set(ids), "acks for events never written")
        per = {p: {} for p in range(a.partitions)}  # partition -> id -> acked offset
        for x in acks:
            per[x["partition"]][x["id"]] = x["offset"]
        for p in range(a.partitions):
            check(per[p], "no events in events/%d (keys: %d)" % (p, KEYS))
            st = wait_replicated(c, len(per[p]), p)
            for n in NODES:
                evs = read_node(a, c, n, p, len(per[p]))
                check(len(evs) == len(per[p]), "%s: %d events of events/%d, %d acked" % (
                    n, len(evs), p, len(per[p])))
                check_exactly_once(evs, list(per[p]))
                stored = {e["id"]: e["offset"] for e in evs}
                check(stored == per[p], "%s: events/%d: %d events stored at another offset "
                      "than acked" % (n, p, sum(stored[i] != o for i, o in per[p].items())))
            check_identical(wd, len(per[p]), p)
            check(sorted(st["isr"]) == NODES, "events/%d: isr %r at the end" % (p, st["isr"]))
        vs = views(c, leaders)
        took = time.monotonic() - t0
        print("soak: %d rounds (%d kills, %d moves, %d failovers) in %.1f s (faults %.1f s); "
              "%d events acked once each (%.0f/s), %s; every node serves each once, in "
              "per-key order; replicas identical; epochs %s" % (
                  a.rounds, counts["kill"], counts["move"], counts["failover"], took, t_faults,
                  len(ids),
                  len(ids) / t_faults,
                  ", ".join("events/%d: %d" % (p, len(per[p])) for p in per),
                  " ".join("events/%d=%d@%s" % (p, vs[p]["epoch"], vs[p]["leader"])
                           for p in vs)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--libsluice", help="libsluice.so (default: ../lib/ beside sluice)")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("SLUICE_SOAK_ROUNDS", 12)))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--partitions", type=int, default=2, choices=(1, 2))
    a = ap.parse_args()
    a.libsluice = a.libsluice or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(a.sluice))), "lib", "libsluice.so")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1 << 31)
    start = time.monotonic()
    try:
        soak(a)
    except Failure as e:
        print("FAIL cluster_soak (seed %d): %s" % (a.seed, e), file=sys.stderr)
        print("0 passed, 1 failed", file=sys.stderr)
        return 1
    print("PASS cluster_soak (%.2f s)" % (time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
