"""The nemesis: faults on a seeded random schedule.

Schedule(seed, kinds, duration, ttl) draws, up front, a list of steps
(kind, role, hold seconds, quiet seconds, parameters): the same seed gives
the same steps. Roles, not node names, are drawn ("the leader of partition
p", "a random node"), because who leads depends on earlier failovers; the
node a role named is logged when the step runs.

Kinds:
  kill      kill -9 a node; it stays down for `hold`; restarted (a bind
            refused in the first milliseconds is retried: topology.py).
  pause     SIGSTOP a node for `hold` > session_ttl, then SIGCONT.
  isolate   a node (the leader by preference) cut off from every other node
            and from etcd: iptables DROP in its namespace; clients still
            reach it (the hub is never cut off).
  split     a minority of the nodes against the majority (etcd with the
            majority): 1 of 3, 2 of 5.
  bridge    two sides that do not see each other and a node that sees both
            (etcd seen by all).
  skew      the node is stopped (SIGTERM) and restarted with its wall clock
            `+N s` or `-N s` off (a preload library: skewtime.c, or
            libfaketime with --skew-with libfaketime; skewtime.c says why
            not libfaketime by default); after `hold` it is restarted with
            the true clock.
  disk      the node's data tmpfs is filled (a filler file written until
            ENOSPC); after `hold` the filler is removed.

Each fault is healed before the next starts; after a heal the nemesis
waits (bounded: --recover-s, 60 s) until the cluster is whole again (every node has
its lease in etcd and every partition a leader with a full in-sync set) and
then for `quiet` seconds of normal running. Unless `overlap` is set: then
the next fault starts at the end of `quiet` whether or not the cluster is
whole (recoveries are still logged).
"""

import errno
import json
import os
import random
import signal
import time

from topology import Failure, log, wait_for_files

KINDS = ["kill", "pause", "isolate", "split", "bridge", "skew", "disk"]


class Schedule:
    def __init__(self, seed, kinds, duration_s, ttl_s, nodes, partitions):
        self.seed = seed
        rng = random.Random(seed)
        self.steps = []
        t = 0.0
        while t < duration_s:
            kind = rng.choice(kinds)
            # Faults last a few TTLs: long enough for a lease to expire and
            # a failover to happen during the fault (pause > session_ttl).
            hold = round(rng.uniform(1.5 * ttl_s, 4.0 * ttl_s), 2)
            quiet = round(rng.uniform(1.0, 3.0), 2)
            step = {"kind": kind, "hold": hold, "quiet": quiet,
                    "leader_of": rng.randrange(partitions) if rng.random() < 0.75 else None,
                    "pick": rng.randrange(1 << 30), "sign": rng.choice([1, -1]),
                    "skew_s": rng.choice([5, 30, 120, 600, 3600])}
            self.steps.append(step)
            t += hold + quiet + 2.0  # 2 s: a rough allowance for the recovery
        self.n_nodes = len(nodes)


class Nemesis:
    def __init__(self, topo, schedule, overlap=False, recover_s=60):
        self.t = topo
        self.recover_s = recover_s
        self.s = schedule
        self.overlap = overlap
        self.faults = []  # one record per fault run
        self.heal_fn = None

    # -- choosing --------------------------------------------------------
    def _target(self, step):
        nodes = self.t.nodes
        if step["leader_of"] is not None:
            st = self.t.partition_states().get(step["leader_of"], {})
            if st.get("leader") in nodes:
                return st["leader"]
        return nodes[step["pick"] % len(nodes)]

    # -- faults ----------------------------------------------------------
    def _block(self, pairs):
        """DROP both ways between each (node, peer) in node's namespace."""
        for n, peer in pairs:
            ip = self.t.ip(peer)
            self.t.iptables(n, "-A", "INPUT", "-s", ip, "-j", "DROP")
            self.t.iptables(n, "-A", "OUTPUT", "-d", ip, "-j", "DROP")

    def heal_network(self):
        for n in self.t.nodes:
            self.t.iptables(n, "-F")

    def _cut(self, sides, etcd_side):
        """sides: lists of nodes that see only their own side; etcd with
        sides[etcd_side] (None: seen by all)."""
        pairs = []
        for i, a in enumerate(sides):
            for j, b in enumerate(sides):
                if i != j:
                    pairs += [(n, m) for n in a for m in b]
            if etcd_side is not None and i != etcd_side:
                pairs += [(n, e) for n in a for e in self.t.etcds]
        self._block(pairs)

    def fault_kill(self, step, n):
        self.t.procs[n].kill9()
        return "kill -9 %s" % n, lambda: self.t.start_node(n)

    def fault_pause(self, step, n):
        self.t.procs[n].signal(signal.SIGSTOP)
        return "SIGSTOP %s" % n, lambda: self.t.procs[n].signal(signal.SIGCONT)

    def fault_isolate(self, step, n):
        others = [m for m in self.t.nodes if m != n]
        self._cut([[n], others], 1)
        return "isolate %s from %s and etcd" % (n, others), self.heal_network

    def fault_split(self, step, n):
        nodes = list(self.t.nodes)
        k = (len(nodes) - 1) // 2
        rng = random.Random(step["pick"])
        rest = [m for m in nodes if m != n]
        minority = [n] + rng.sample(rest, k - 1)
        majority = [m for m in nodes if m not in minority]
        self._cut([minority, majority], 1)
        return "split %s | %s (etcd with the majority)" % (minority, majority), self.heal_network

    def fault_bridge(self, step, n):
        rng = random.Random(step["pick"])
        rest = [m for m in self.t.nodes if m != n]
        rng.shuffle(rest)
        bridge = rest[0]
        others = [n] + rest[1:]
        half = (len(others) + 1) // 2
        a, b = others[:half], others[half:]
        pairs = [(x, y) for x in a for y in b] + [(y, x) for x in a for y in b]
        self._block(pairs)
        return "bridge %s: %s | %s see it but not each other (etcd seen by all)" % (
            bridge, a, b), self.heal_network

    def fault_skew(self, step, n):
        skew = step["sign"] * step["skew_s"]
        self.t.procs[n].signal(signal.SIGTERM)
        try:
            self.t.procs[n].popen.wait(timeout=30)
        except Exception:  # noqa: BLE001 (it did not drain in time: kill it)
            self.t.procs[n].kill9()
        self.t.start_node(n, skew_s=skew)

        def heal():
            self.t.procs[n].signal(signal.SIGTERM)
            try:
                self.t.procs[n].popen.wait(timeout=30)
            except Exception:  # noqa: BLE001
                self.t.procs[n].kill9()
            self.t.start_node(n)
        return "clock of %s skewed %+d s (%s, restarted)" % (
            n, skew, os.path.basename(self.t.skew_lib)), heal

    def fault_disk(self, step, n):
        data = os.path.join(self.t.wd, n, "data")
        filler = os.path.join(data, "filler.nemesis")
        written = 0
        chunk = b"\xa5" * (1 << 20)
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while True:
                try:
                    w = os.write(fd, chunk)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        break
                    raise
                written += w
                if w < len(chunk):
                    chunk = chunk[:max(len(chunk) - w, 1)]
        finally:
            os.close(fd)

        def heal():
            os.unlink(filler)
        return "disk of %s full (%d MiB filler)" % (n, written >> 20), heal

    # -- recovery --------------------------------------------------------
    def whole(self):
        """The cluster is whole: every node live in etcd, every partition
        has a leader with every replica in sync, and the leader says so."""
        try:
            if self.t.live_members() != sorted(self.t.nodes):
                return False
            st = self.t.partition_states()
            reps = min(3, len(self.t.nodes))
            for p in range(self.t.partitions):
                s = st.get(p)
                if not s or not s.get("leader") or len(s.get("isr", [])) < reps:
                    return False
                view = self.t.node_status(s["leader"])
                mine = view["topics"][0]["partitions"][p]
                if mine.get("this_node") != "leader" or len(mine.get("isr", [])) < reps:
                    return False
            return True
        except (Failure, OSError, ValueError, KeyError):
            return False

    def wait_whole(self, bound):
        folders = [os.path.join(self.t.wd, n) for n in self.t.nodes]
        t0 = time.monotonic()
        ok = wait_for_files(folders, self.whole, bound)
        if not ok:
            log("not whole: %s" % self.views())
        return (time.monotonic() - t0) if ok else None

    def views(self):
        """etcd's and every node's view (a diagnosis of a cluster that does
        not become whole)."""
        out = {}
        try:
            out["etcd_live"] = self.t.live_members()
            out["etcd"] = self.t.partition_states()
        except Exception as e:  # noqa: BLE001 (a diagnosis, whatever failed)
            out["etcd"] = repr(e)
        for n in self.t.nodes:
            try:
                v = self.t.node_status(n)
                out[n] = [{k: x.get(k) for k in ("partition", "leader", "epoch", "isr",
                                                  "high_watermark", "this_node",
                                                  "replica_state")}
                          for x in v["topics"][0]["partitions"]]
            except Exception as e:  # noqa: BLE001
                out[n] = repr(e)
        return json.dumps(out)

    # -- the loop --------------------------------------------------------
    def run(self, deadline, t_zero):
        for i, step in enumerate(self.s.steps):
            if time.monotonic() >= deadline:
                break
            n = self._target(step)
            leaders = {p: s.get("leader") for p, s in self.t.partition_states().items()}
            t0 = time.monotonic()
            what, heal = getattr(self, "fault_" + step["kind"])(step, n)
            rec = {"i": i, "kind": step["kind"], "node": n, "what": what,
                   "leaders": leaders, "start": t0 - t_zero, "hold": step["hold"]}
            self.faults.append(rec)
            self.heal_fn = heal
            log("fault %d at +%.2f s: %s (hold %.2f s)" % (i, rec["start"], what, step["hold"]))
            time.sleep(step["hold"])  # the fault's duration
            heal()
            self.heal_fn = None
            rec["healed"] = time.monotonic() - t_zero
            rec["leaders_after"] = {p: s.get("leader")
                                    for p, s in self.t.partition_states().items()}
            if not self.overlap:
                took = self.wait_whole(self.recover_s)
                rec["whole_after_heal_s"] = took
                log("fault %d healed at +%.2f s; cluster whole %s" % (
                    i, rec["healed"], "after %.2f s" % took if took is not None else
                    "NOT within %d s" % self.recover_s))
            else:
                log("fault %d healed at +%.2f s" % (i, rec["healed"]))
            time.sleep(step["quiet"])  # the schedule's pacing between faults

    def heal_all(self):
        """Whatever fault is on: off (used at the end and on failure)."""
        if self.heal_fn:
            fn, self.heal_fn = self.heal_fn, None
            try:
                fn()
            except Exception as e:  # noqa: BLE001 (cleanup goes on)
                log("heal failed: %s" % e)
        for n in self.t.nodes:
            p = self.t.procs.get(n)
            if p:
                p.signal(signal.SIGCONT)
