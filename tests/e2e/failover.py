"""Automatic failover (issue 17): the controller replaces a dead leader.

Three sluiced nodes and one etcd on loopback (cluster.py's Cluster: topic
`events`, replicas 3, acks quorum, session_ttl 2s); one node at a time is the
failover controller (etcd's election), and when a leader's lease expires it
elects the most complete replica of a responding majority.

  leader_kill9             a producer that knows all three nodes streams;
                           the partition's leader is killed (kill -9) with
                           acks in flight; a new leader is elected (epoch 2),
                           the producer finishes; no acked event is lost and
                           per-key order of first occurrences holds
                           and none is stored twice (the events in flight
                           go to the new leader under their producer id and
                           sequences); the killed node comes back, follows,
                           rejoins the in-sync set and the replicas end
                           byte-identical.
  paused_leader_producer_moves the same stream; the leader is SIGSTOPped
                           (no RST, no answer): the producer finds the new
                           leader through Metadata while the old one is
                           still stopped (a leg silent for 1 s asks) and
                           finishes well inside ack_timeout_ms (30 s, which
                           it used to wait out), exactly once; the woken
                           node follows and the replicas end identical.
  consume_rides_out        `sluice consume --follow` reading from the leader
                           while it is killed goes on at the new leader:
                           every event printed once, in offset order.
  controller_dies          three partitions, one led by each node; the
                           controller is killed: another node becomes
                           controller and gives the dead node's partition a
                           leader; the node comes back, then another
                           partition's leader dies and the new controller
                           fails it over too.
  no_majority_no_election  leader and one follower killed: the survivor is
                           controller but one of three is no majority, so no
                           leader is elected (it says so; the state in etcd
                           is unchanged); with unclean_election: true the
                           survivor is elected, counted and logged as
                           unclean.
  paused_leader            fencing: the leader SIGSTOPped past its lease
                           under `quorum`, with its followers' reports of
                           more than its HW and a producer's events waiting
                           in its socket; it wakes, steps down and cuts;
                           nothing acked lost, every ack names its event,
                           replicas identical (see the function: why the
                           lease check is not what this one can see).
  paused_leader_acks_leader the same pause under `acks: leader` (acks go
                           at the leader's own durable end): the events written
                           into its socket while it was stopped are not
                           acked by it (they would be lost in its cut).
  leader_cut_from_etcd     `acks: leader`, the leader runs but its etcd
                           traffic is held (EtcdGate): past its lease
                           deadline it acks nothing while another replica is
                           elected; events it takes then are cut when it
                           hears etcd again, and acked by the new leader.
                           Both acks: leader cases fail without the lease
                           check in reactor/repl.c (the second every time).
  leader_cut_producer_moves the same cut under quorum with a producer that
                           knows all three nodes, n1 first: n1 still names
                           itself in Metadata; the producer asks the others
                           and finishes at the new leader while n1 is cut
                           off, exactly once.

Waits are on log lines (inotify), HTTP answers and process exits, never on
sleeps. Every process is killed at the end, also on failure.
"""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import (NODES, TIMEOUT, Cluster, check_identical, consume_all, etcd_call,  # noqa: E402
                     events, b64, wait_on_folder, wait_stopped)
from cluster import Producer as FedProducer  # noqa: E402
from harness import (Failure, Workdir, check, http_open, main, parse_json_lines,  # noqa: E402
                     wait_for_files)


def log_text(c, n):
    with open(os.path.join(c.wd, n, "stderr.txt")) as f:
        return f.read()


def wait_any(c, nodes, pattern, timeout=TIMEOUT):
    """Until one of `nodes`' stderr matches the regex `pattern`: (node, match).
    One inotify watch per node folder, woken by the kernel."""
    rx = re.compile(pattern)
    found = []

    def seen():
        for n in nodes:
            m = rx.search(log_text(c, n))
            if m:
                found.append((n, m))
                return True
        return False
    check(wait_for_files([os.path.join(c.wd, n) for n in nodes], seen, timeout),
          "none of %s said %r within %d s" % (nodes, pattern, timeout))
    return found[0]


def etcd_state(c, partition=0):
    key = "/sluice/%s/partitions/events/%d" % (c.name, partition)
    kv = etcd_call(c, "/v3/kv/range", {"key": b64(key)})["kvs"][0]
    return json.loads(base64.b64decode(kv["value"])), int(kv["mod_revision"])


def metric(c, n, name):
    with http_open("http://%s/metrics" % c.http(n), timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    raise Failure("%s has no metric %s" % (n, name))


def controller(c, n):
    with http_open("http://%s/v1/cluster" % c.http(n), timeout=30) as r:
        return json.loads(r.read()).get("controller")


def wait_controller(c, nodes):
    """The node the survivors' logs name as controller (the latest term)."""
    n, _ = wait_any(c, nodes, r"sluiced: node (\S+): controller\n")
    return n


def kill9(c, n):
    c.nodes[n].proc.send_signal(signal.SIGKILL)
    c.nodes[n].proc.wait()


def check_acked_kept(acks, evs):
    """Every acked event stored; per-key order of first occurrences; the
    duplicates counted (returned)."""
    stored = [e["id"] for e in evs]
    first = {}
    for i, eid in enumerate(stored):
        first.setdefault(eid, i)
    lost = [x["id"] for x in acks if x["id"] not in first]
    check(not lost, "%d acked events lost, e.g. %r" % (len(lost), lost[:3]))
    offs = [e["offset"] for e in evs]
    check(offs == list(range(len(offs))), "offsets not dense from 0")
    last = {}
    for e in evs:
        if first[e["id"]] != e["offset"]:
            continue
        k, i = e["aggregate"], e["data"]["i"]
        check(last.get(k, -1) < i, "key %s out of order: %d after %d" % (k, i, last.get(k, -1)))
        last[k] = i
    return len(stored) - len(first)


def stored_once(a, c, new, acked, n_events):
    """Every one of n_events acked (`acked`: the --print-acks lines), stored
    in the new leader's log, once, in per-key order: (acks, evs)."""
    acks = [json.loads(x) for x in acked]
    check(len(acks) == n_events, "%d acks for %d events" % (len(acks), n_events))
    evs = consume_all(a, c.nodes[new].addr, 1, follow=False)
    dups = check_acked_kept(acks, evs)
    check(len(evs) == n_events and dups == 0,
          "%d events stored for %d produced, %d duplicates" % (len(evs), n_events, dups))
    return acks, evs


def longest_gap(times, since):
    """The longest pause between two acks from `since` - 1 s on."""
    ts = [t for t in times if t >= since - 1]
    return max(b - a for a, b in zip(ts, ts[1:]))


def n1_rejoins(a, c, wd, new, n, pos=0):
    """n1 follows the new leader (its log read from `pos`), which counts it
    in sync again; every node serves all n events and the replicas are
    byte-identical."""
    c.wait_log("n1", "events/0: follower, leader epoch 2", pos)
    c.wait_log(new, "in-sync replicas changed to 3 of 3")
    for x in NODES:
        consume_all(a, c.nodes[x].addr, n)
    check_identical(wd, n)


class Producer:
    """`sluice produce --server a,b,c --print-acks` on a stream of events, its
    acks read on a thread, with the time of each."""

    def __init__(self, c, data):
        servers = ",".join(c.nodes[n].addr for n in NODES)
        self.proc = subprocess.Popen(
            [c.a.sluice, "produce", "--server", servers, "--topic", "events",
             "--print-acks", "--timeout", "90"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.acked = []
        self.times = []
        self.eof = False  # the reader saw the end of stdout
        self.cv = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        threading.Thread(target=lambda: (self.proc.stdin.write(data), self.proc.stdin.close()),
                         daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.cv:
                self.acked.append(line)
                self.times.append(time.monotonic())
                self.cv.notify_all()
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    def wait_acks(self, n, timeout=TIMEOUT):
        # Until the reader has every line: a producer that exited may
        # still have acks in the pipe (waiting for its exit instead lost
        # the last ones now and then).
        with self.cv:
            ok = self.cv.wait_for(lambda: len(self.acked) >= n or self.eof, timeout)
            return ok and len(self.acked) >= n

    def finish(self):
        rc = self.proc.wait(timeout=TIMEOUT)
        self.reader.join(TIMEOUT)
        return rc, self.proc.stderr.read().decode()[-2000:]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def leader_kill9(a):
    with Workdir() as wd, Cluster(a, wd) as c:
        n_events = 60000
        data, ids = events(n_events)
        prod = Producer(c, data)
        try:
            check(prod.wait_acks(2000), "fewer than 2000 acks before the kill")
            at_kill = len(prod.acked)
            check(at_kill < n_events and prod.proc.poll() is None,
                  "the stream was over before the kill")
            pos = {n: c.log_size(n) for n in NODES}
            t_kill = time.monotonic()
            kill9(c, "n1")
            new, _ = wait_any(c, ["n2", "n3"], r"events/0: leader, leader epoch 2\n")
            t_leader = time.monotonic()
            check(prod.wait_acks(at_kill + 1), "no ack after the kill")
            rc, err = prod.finish()
            check(rc == 0, "produce failed (%d): %s" % (rc, err))
        finally:
            prod.kill()
        check(len(prod.acked) > at_kill, "acks did not grow after the kill")
        check(len(prod.acked) == n_events, "%d acks for %d events" % (len(prod.acked), n_events))
        _, m = wait_any(c, ["n2", "n3"],
                        r"controller (\S+): events/0: leader (\S+), leader epoch 2 \(was n1, "
                        r"gone; it holds epoch 1 to (\d+);")
        ctl_node, held_by_new = m.group(1), int(m.group(3))
        check(m.group(2) == new, "the controller elected %s, %s leads" % (m.group(2), new))
        # Exactly once across the failover: the events in flight at n1 go
        # to n2 again under n1's producer id and sequences (a resume leg),
        # and the sequence table n2 copied with the log answers those n1
        # had already replicated as duplicates.
        acks, evs = stored_once(a, c, new, prod.acked, n_events)
        # The client's outage: the longest pause between two acks around
        # the kill (kill -9 to the new leader's first ack).
        gap = longest_gap(prod.times, t_kill)
        print("leader_kill9: %d events stored for %d acked, 0 duplicates; new leader %s "
              "(controller %s); kill -9 -> new leader's line %.2f s; longest pause between "
              "acks %.2f s" % (len(evs), len(acks), new, ctl_node, t_leader - t_kill, gap))
        # n1 comes back: it follows the new leader (cutting what never
        # reached a quorum), rejoins the in-sync set; replicas identical.
        rejoin_from = c.log_size(new)
        c.restart("n1")
        c.wait_log("n1", "events/0: follower, leader epoch 2")
        try:
            c.wait_log(new, "in-sync replicas changed to 3 of 3", rejoin_from)
        except Failure as e:
            raise Failure("%s; the nodes' views: %s" % (e, json.dumps(
                {n: c.state(n) for n in NODES})))
        for n in NODES:
            consume_all(a, c.nodes[n].addr, len(evs))
        st = c.state(new)
        check(st["leader"] == new and st["epoch"] == 2, "state %r" % st)
        check(sorted(st["isr"]) == NODES, "isr %r" % st["isr"])
        check(st["high_watermark"] == len(evs), "HW %s, %d stored" % (st["high_watermark"],
                                                                     len(evs)))
        check_identical(wd, len(evs))
        cut = re.search(r"events/0: log cut from (\d+) to (\d+)", log_text(c, "n1"))
        print("leader_kill9: n1's log %s" % ("cut from %s to %s" % cut.groups() if cut else
                                             "needed no cut"))
        if cut:
            check(int(cut.group(2)) == held_by_new, "n1 cut to %s, the new leader's epoch 1 "
                  "ended at %d" % (cut.group(2), held_by_new))
        check(metric(c, ctl_node, "sluice_leader_elections_total") == 1, "elections metric")
        check(metric(c, ctl_node, "sluice_controller") == 1, "controller metric")
        check(metric(c, ctl_node, "sluice_unclean_elections_total") == 0, "unclean metric")
        check(controller(c, new) == ctl_node, "/v1/cluster names another controller")


def paused_leader_producer_moves(a):
    with Workdir() as wd, Cluster(a, wd) as c:
        n_events = 60000
        data, ids = events(n_events)
        prod = Producer(c, data)
        n1 = c.nodes["n1"]
        stopped = False
        try:
            check(prod.wait_acks(2000), "fewer than 2000 acks before the pause")
            at_stop = len(prod.acked)
            check(at_stop < n_events and prod.proc.poll() is None,
                  "the stream was over before the pause")
            t_stop = time.monotonic()
            n1.proc.send_signal(signal.SIGSTOP)
            stopped = True
            check(wait_stopped(n1.proc.pid), "n1 did not stop")
            # Every event acked while n1 is still stopped, well inside
            # the producer's ack_timeout_ms (30 s): before, its leg to n1
            # waited that long for an answer a paused node never sends.
            try:
                prod.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                prod.kill()
                raise Failure("the producer still waits 15 s after n1 was stopped: %d of %d "
                              "acked (%d at the pause): %s" % (
                                  len(prod.acked), n_events, at_stop,
                                  prod.proc.stderr.read().decode()[-1000:]))
            t_done = time.monotonic()
            rc, err = prod.finish()
            check(rc == 0, "produce failed (%d): %s" % (rc, err))
            check(wait_stopped(n1.proc.pid), "n1 ran again before the producer was done")
        finally:
            if stopped:
                n1.proc.send_signal(signal.SIGCONT)
            prod.kill()
        new, _ = wait_any(c, ["n2", "n3"], r"events/0: leader, leader epoch 2\n")
        acks, evs = stored_once(a, c, new, prod.acked, n_events)
        print("paused_leader_producer_moves: %d acked at the pause, all %d by %.2f s after it "
              "(n1 still stopped); longest pause between acks %.2f s; new leader %s; "
              "0 duplicates" % (at_stop, n_events, t_done - t_stop,
                                longest_gap(prod.times, t_stop), new))
        n1_rejoins(a, c, wd, new, len(evs))


def consume_rides_out(a):
    """`sluice consume --follow` reading from the leader (the first server it
    is given) goes on at the new leader when that one is killed: it prints
    every event once, in offset order, and ends at --max."""
    with Workdir() as wd, Cluster(a, wd) as c:
        n_events = 30000
        data, ids = events(n_events)
        servers = ",".join(c.nodes[n].addr for n in NODES)
        got = []
        cv = threading.Condition()
        cons = subprocess.Popen(
            [a.sluice, "consume", "--server", servers, "--topic", "events", "--follow",
             "--max", str(n_events)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def read():
            for line in cons.stdout:
                with cv:
                    got.append(json.loads(line))
                    cv.notify_all()
            with cv:
                cv.notify_all()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        prod = Producer(c, data)
        try:
            with cv:
                check(cv.wait_for(lambda: len(got) >= 2000 or cons.poll() is not None,
                                  TIMEOUT) and len(got) >= 2000,
                      "the consumer printed %d events before the kill" % len(got))
                at_kill = len(got)
            check(at_kill < n_events and cons.poll() is None,
                  "the read was over before the kill")
            kill9(c, "n1")
            check(prod.wait_acks(n_events), "%d of %d acked" % (len(prod.acked), n_events))
            rc, err = prod.finish()
            check(rc == 0, "produce failed (%d): %s" % (rc, err))
            crc = cons.wait(timeout=TIMEOUT)
            reader.join(TIMEOUT)
            cerr = cons.stderr.read().decode()
        finally:
            prod.kill()
            if cons.poll() is None:
                cons.kill()
                cons.wait()
        check(crc == 0, "consume failed (%d): %s" % (crc, cerr[-2000:]))
        check("asking where it is served now" in cerr,
              "the consumer never lost its node: %s" % cerr[-500:])
        offs = [e["offset"] for e in got]
        check(offs == list(range(n_events)), "offsets printed not 0..%d once each in order "
              "(%d printed)" % (n_events - 1, len(offs)))
        check(sorted(e["id"] for e in got) == sorted(ids), "the events printed are not the "
              "events produced")
        print("consume_rides_out: %d printed before the kill, %d in all" % (at_kill, len(got)))


def controller_dies(a):
    with Workdir() as wd, Cluster(a, wd, partitions=3) as c:
        first = wait_controller(c, NODES)
        check(controller(c, first) == first, "/v1/cluster of %s" % first)
        # partition p's first leader is NODES[p % 3]
        part = {n: i for i, n in enumerate(NODES)}
        data, ids = events(300)
        rc, out, err = run_produce(c, data)
        check(rc == 0, "produce failed: %s" % err)
        others = [n for n in NODES if n != first]
        pos = {n: c.log_size(n) for n in others}
        kill9(c, first)
        t0 = time.monotonic()
        # Another node takes the office and fails the dead one's partition over.
        second, _ = wait_any(c, others, r"sluiced: node (\S+): controller\n")
        check(log_text(c, second).count("sluiced: node %s: controller\n" % second) == 1,
              "%s was controller before" % second)
        leader, _ = wait_any(c, others, r"events/%d: leader, leader epoch 2\n" % part[first])
        t1 = time.monotonic()
        st, _ = etcd_state(c, part[first])
        check(st["leader"] == leader and st["epoch"] == 2, "state %r" % st)
        for n in others:
            if n != second:
                c.wait_log(n, "sluiced: node %s: the controller is %s" % (n, second), pos[n])
            check(controller(c, n) == second, "%s names controller %r" % (n, controller(c, n)))
        print("controller_dies: %s (controller) killed; %s controller, %s leads events/%d "
              "after %.2f s" % (first, second, leader, part[first], t1 - t0))
        # The dead node comes back (a follower everywhere), then the third
        # node, a leader but not the controller, dies: the new controller
        # fails it over (the returned node and the controller are a
        # majority).
        c.restart(first)
        c.wait_log(first, "events/%d: follower, leader epoch 2" % part[first])
        third = [n for n in others if n != second][0]
        kill9(c, third)
        survivors = [first, second]
        leader3, _ = wait_any(c, survivors, r"events/%d: leader, leader epoch 2\n" % part[third])
        c.wait_log(second, "controller %s: events/%d: leader %s, leader epoch 2" % (
            second, part[third], leader3))
        st, _ = etcd_state(c, part[third])
        check(st["leader"] == leader3 and third not in st["isr"], "state %r" % st)
        elected = 2
        if leader == third:
            # It had taken over the first dead node's partition: that one
            # moves again (epoch 3).
            wait_any(c, [second], r"controller %s: events/%d: leader \S+, leader epoch 3 " % (
                second, part[first]))
            elected = 3
        check(metric(c, second, "sluice_leader_elections_total") == elected,
              "elections metric: %s, want %d" % (
                  metric(c, second, "sluice_leader_elections_total"), elected))
        check(metric(c, first, "sluice_controller") == 0, "%s is not controller" % first)
        # Every event produced at first is still there (read from each
        # partition's leader).
        total = sum(len(consume_all(a, c.nodes[second].addr, 1, follow=False, partition=p))
                    for p in range(3))
        check(total == len(ids), "%d events stored, %d produced" % (total, len(ids)))


def socket_backlog(port, pid):
    """Bytes the kernel holds unread on the server side of process pid's TCP
    connections to 127.0.0.1:port (their Recv-Q in /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            x = line.split()
            lport, rport = int(x[1].split(":")[1], 16), int(x[2].split(":")[1], 16)
            rows.append((lport, rport, int(x[4].split(":")[1], 16), x[9]))
    mine = {lp for lp, rp, _, ino in rows if ino in inodes and rp == port}
    return sum(rx for lp, rp, rx, _ in rows if lp == port and rp in mine)


class VoidFault(Failure):
    """The fault a case sets up did not happen (a race of the set-up, not a
    finding): the case runs again from the start."""


def paused_leader(a):
    """paused_leader_once, again from a fresh cluster when its fault was
    void (the followers had no fetch waiting at n1 when they stopped, so
    nothing past its HW reached them): at most 3 tries, each said."""
    for attempt in range(1, 4):
        try:
            return paused_leader_once(a)
        except VoidFault as e:
            print("paused_leader: try %d: %s; again" % (attempt, e), file=sys.stderr)
    raise Failure("the fault was void 3 times in a row")


def paused_leader_once(a):
    """Fencing (issue 17 item 2) under `acks: quorum`: the leader is paused
    past its lease while a producer streams. The followers are stopped for
    a moment first, so the leader's HW freezes at H (no quorum) while it
    stores more and answers their waiting fetches with it; then the leader
    is stopped and the followers run again: they take that data and their
    reports of it wait in the stopped leader's socket, with the events of a
    producer that knows only the leader. The controller elects the most
    complete follower (epoch 1 ends at E2 > H there). The woken leader has
    reports of more than H in hand and must not act on them: it says it
    lost its lease, follows, and cuts what it alone holds; every ack names
    its event in the final log, nothing acked is lost (duplicates counted),
    the replicas end identical.

    What a woken quorum leader could still ack is only what a follower
    reported, which the new leader holds (the most complete of a majority),
    and a producer resumed there is answered those same offsets as
    duplicates: the fence is not visible in this case's data (a build
    without the lease check passes it). paused_leader_acks_leader and
    leader_cut_from_etcd are where it is."""
    with Workdir() as wd, Cluster(a, wd, lag="10s") as c:
        n1 = c.nodes["n1"]
        # A producer that knows only n1, with a session there (acked
        # events) before the fault: what it writes during the pause can
        # only reach n1's socket.
        side = FedProducer(a, n1.addr, wd)
        main_stream = None
        stopped = []
        try:
            pdata, pids = events(300, keys=4, tag="p")
            plines = pdata.splitlines(keepends=True)
            side.write(b"".join(plines[:50]))
            check(side.wait_acks(50), "the side producer's first 50 events not acked")
            n_events = 40000
            data, ids = events(n_events)
            main_stream = FedProducer(a, ",".join(c.nodes[n].addr for n in NODES), wd)
            main_stream.feed(data)
            check(main_stream.wait_acks(2000), "fewer than 2000 acks before the fault")
            check(len(main_stream.acked) < n_events, "the stream was over before the fault")
            for n in ("n2", "n3"):
                c.nodes[n].proc.send_signal(signal.SIGSTOP)
                stopped.append(n)
            for n in ("n2", "n3"):
                check(wait_stopped(c.nodes[n].proc.pid), "%s did not stop" % n)

            def n1_durable():
                st = c.state("n1")
                return [r for r in st["replica_state"] if r["node"] == "n1"][0]["durable_offset"]
            hw0 = c.state("n1")["high_watermark"]
            # n1 stores events past the frozen HW (woken by its segment
            # writes); by then every report the followers sent before they
            # stopped has been taken, so the HW read next is final.
            wait_on_folder("n1 durable 300 past its HW",
                           os.path.join(wd, "n1", "data", "events", "0"),
                           lambda: n1_durable() >= hw0 + 300)
            hw = c.state("n1")["high_watermark"]
            n1.proc.send_signal(signal.SIGSTOP)
            stopped.append("n1")
            check(wait_stopped(n1.proc.pid), "n1 did not stop")
            for n in ("n2", "n3"):
                c.nodes[n].proc.send_signal(signal.SIGCONT)
                stopped.remove(n)
            side.write(b"".join(plines[50:]))
            new, _ = wait_any(c, ["n2", "n3"], r"events/0: leader, leader epoch 2\n")
            _, m = wait_any(c, ["n2", "n3"],
                            r"controller (\S+): events/0: leader (\S+), leader epoch 2 \(was "
                            r"n1, gone; it holds epoch 1 to (\d+);")
            check(m.group(2) == new, "the controller elected %s, %s leads" % (m.group(2), new))
            e2 = int(m.group(3))
            # What the followers took while n1 was stopped waits in n1's
            # socket as their reports, and the side producer's events too.
            backlog = socket_backlog(n1.port, side.proc.pid)
            check(backlog > 0, "nothing of the side producer's waits in n1's socket")
            if e2 <= hw:
                raise VoidFault("the new leader holds nothing past n1's HW %d (epoch 1 ends "
                                "at %d): no report of more waits for n1" % (hw, e2))
            pos = c.log_size("n1")
            n1.proc.send_signal(signal.SIGCONT)
            stopped.remove("n1")
            c.wait_log("n1", "sluiced: node n1: lost its lease in etcd: acks stop", pos)
            c.wait_log("n1", "events/0: follower, leader epoch 2", pos)
            side.proc.stdin.close()
            side.finish()
            main_stream.finish()
        finally:
            for n in stopped:
                c.nodes[n].proc.send_signal(signal.SIGCONT)
            side.kill()
            if main_stream:
                main_stream.kill()
        acks = [json.loads(x) for x in main_stream.acked + side.acked]
        check(len(main_stream.acked) == n_events and len(side.acked) == len(pids),
              "%d and %d acks for %d and %d events" % (len(main_stream.acked), len(side.acked),
                                                       n_events, len(pids)))
        evs = consume_all(a, c.nodes[new].addr, 1, follow=False)
        dups = check_acked_kept(acks, evs)
        at = {e["offset"]: e["id"] for e in evs}
        wrong = [x for x in acks if at.get(x["offset"]) != x["id"]]
        check(not wrong, "%d acks name an offset that holds another event, e.g. %r" % (
            len(wrong), wrong[:3]))
        # n1 follows and cuts what never reached a quorum: to E2, from
        # past it (it stored events past what the followers took).
        cut = re.search(r"events/0: log cut from (\d+) to (\d+)", log_text(c, "n1")[pos:])
        check(cut and int(cut.group(2)) == e2 and int(cut.group(1)) > e2,
              "n1's cut: %r, want one to %d" % (cut and cut.group(0), e2))
        c.wait_log(new, "in-sync replicas changed to 3 of 3")
        for n in NODES:
            consume_all(a, c.nodes[n].addr, len(evs))
        st = c.state(new)
        check(st["leader"] == new and st["epoch"] == 2 and sorted(st["isr"]) == NODES,
              "state %r" % st)
        check(st["high_watermark"] == len(evs), "HW %s, %d stored" % (st["high_watermark"],
                                                                     len(evs)))
        check(metric(c, "n1", 'sluice_partition_high_watermark{topic="events",partition="0"}')
              <= st["high_watermark"], "n1's HW past the new leader's")
        check_identical(wd, len(evs))
        print("paused_leader: n1's HW %d when paused, epoch 1 ends at %d on %s, n1 cut from %s; "
              "%d bytes of the side producer in n1's socket; %d events stored for %d acked, "
              "%d duplicates, 0 lost" % (hw, e2, new, cut.group(1), backlog, len(evs),
                                         len(acks), dups))


def side_first_acked(a, c, wd, first, n_events):
    """A producer that knows only n1 (FedProducer), its first `first` of
    n_events events acked and held by both followers (n1's view of their
    reports), so whichever is elected nothing acked so far is gone.
    Returns the producer and the event lines."""
    side = FedProducer(a, c.nodes["n1"].addr, wd)
    data, ids = events(n_events, keys=4, tag="p")
    lines = data.splitlines(keepends=True)
    side.write(b"".join(lines[:first]))
    check(side.wait_acks(first), "the first %d events not acked" % first)

    def followers_hold():
        st = c.state("n1")
        return all(r["durable_offset"] >= first for r in st["replica_state"])
    wait_on_folder("the followers hold %d events" % first,
                   [os.path.join(wd, n, "data", "events", "0") for n in ("n2", "n3")],
                   followers_hold)
    return side, lines


def wait_epoch2(c, first):
    """The new leader of epoch 2 (n2 or n3) and where epoch 1 ends on it,
    which must be `first` (what n1 acked)."""
    new, _ = wait_any(c, ["n2", "n3"], r"events/0: leader, leader epoch 2\n")
    _, m = wait_any(c, ["n2", "n3"],
                    r"controller (\S+): events/0: leader (\S+), leader epoch 2 \(was "
                    r"n1, gone; it holds epoch 1 to (\d+);")
    e2 = int(m.group(3))
    check(e2 == first, "epoch 1 ends at %d on %s, %d were acked" % (e2, new, first))
    return new, e2


def side_acks_hold(a, c, new, side, n_events):
    """Every event acked, none lost, and every ack names its event in the
    new leader's log (not one n1 acked and then cut). (acks, evs, dups)."""
    acks = [json.loads(x) for x in side.acked]
    check(len(acks) == n_events, "%d acks for %d events" % (len(acks), n_events))
    evs = consume_all(a, c.nodes[new].addr, 1, follow=False)
    dups = check_acked_kept(acks, evs)
    at = {e["offset"]: e["id"] for e in evs}
    wrong = [x for x in acks if at.get(x["offset"]) != x["id"]]
    check(not wrong, "%d acks name an offset that holds another event (acked by n1, then "
          "cut?), e.g. %r" % (len(wrong), wrong[:3]))
    return acks, evs, dups


def paused_leader_acks_leader(a):
    """The same pause where the fence is all that stands between the woken
    leader and a loss: under `acks: leader` it acks at its own durable end,
    so the events a producer that knows only it wrote into its socket while
    it was stopped would be acked as soon as they are on its disk, and then
    cut when it follows the new leader. With the fence (lease deadline
    passed) it acks none of them: the producer resends them to the new
    leader and every ack names its event in the final log."""
    with Workdir() as wd, Cluster(a, wd, lag="10s", acks="leader") as c:
        n1 = c.nodes["n1"]
        stopped = []
        first, n_events = 50, 300
        side, lines = side_first_acked(a, c, wd, first, n_events)
        try:
            n1.proc.send_signal(signal.SIGSTOP)
            stopped.append("n1")
            check(wait_stopped(n1.proc.pid), "n1 did not stop")
            side.write(b"".join(lines[first:]))
            new, e2 = wait_epoch2(c, first)
            backlog = socket_backlog(n1.port, side.proc.pid)
            check(backlog > 0, "nothing of the producer's waits in n1's socket")
            pos = c.log_size("n1")
            n1.proc.send_signal(signal.SIGCONT)
            stopped.remove("n1")
            c.wait_log("n1", "sluiced: node n1: lost its lease in etcd: acks stop", pos)
            c.wait_log("n1", "events/0: follower, leader epoch 2", pos)
            side.proc.stdin.close()
            side.finish()
        finally:
            for n in stopped:
                c.nodes[n].proc.send_signal(signal.SIGCONT)
            side.kill()
        acks, evs, dups = side_acks_hold(a, c, new, side, n_events)
        cut = re.search(r"events/0: log cut from (\d+) to (\d+)", log_text(c, "n1")[pos:])
        check(not cut or int(cut.group(2)) == e2, "n1's cut: %r" % (cut and cut.group(0)))
        c.wait_log(new, "in-sync replicas changed to 3 of 3")
        for n in NODES:
            consume_all(a, c.nodes[n].addr, len(evs))
        check_identical(wd, len(evs))
        print("paused_leader_acks_leader: %d bytes in n1's socket while it was stopped; n1 %s; "
              "%d events stored for %d acked, %d duplicates, 0 lost" % (
                  backlog, "cut from %s to %s" % cut.groups() if cut else "needed no cut",
                  len(evs), len(acks), dups))


class EtcdGate:
    """A TCP proxy in front of etcd for one node: close() holds every byte
    both ways (read, then kept until open(); the kernel buffers the rest),
    so the node runs on but hears nothing from etcd and etcd nothing from it
    (its keepalives stop: a leader cut off from the control plane). One
    thread per direction of each connection; all closed by shut()."""

    def __init__(self, port):
        import socket
        self.socket = socket
        self.target = port
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.url = "http://127.0.0.1:%d" % self.ls.getsockname()[1]
        self.gate = threading.Event()
        self.gate.set()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.ls.accept()
            except OSError:
                return
            try:
                b = self.socket.create_connection(("127.0.0.1", self.target), timeout=30)
                b.settimeout(None)
            except OSError:
                a.close()
                continue
            self.conns += [a, b]
            for src, dst in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.gate.wait()
                dst.sendall(data)
            dst.shutdown(self.socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.gate.clear()

    def open(self):
        self.gate.set()

    def shut(self):
        self.gate.set()
        self.ls.close()
        for s in self.conns:
            s.close()


def leader_cut_from_etcd(a):
    """A leader that runs on but cannot reach etcd (its keepalives stop; an
    EtcdGate holds its traffic), under `acks: leader`, where it acks at its
    own durable end: past its lease deadline it says so and acks nothing,
    while the controller elects another replica. A producer that knows only
    it then writes events: it stores them (it has not heard of the new
    epoch), acks none, and once it reaches etcd again it follows the new
    leader and cuts them; the producer resends them there. Every ack names
    its event in the final log and nothing acked is lost. Without the lease
    check (reactor/repl.c) it acks them at once and the cut loses them."""
    with Workdir() as wd:
        c = Cluster(a, wd, lag="10s", acks="leader")
        gate = EtcdGate(c.etcd.port)  # etcd's port is chosen before it starts
        try:
            c.etcd_urls["n1"] = gate.url
            with c:
                cut_leader_run(a, c, wd, gate)
        finally:
            gate.shut()


def leader_cut_producer_moves(a):
    """The leader runs on but cannot reach etcd (EtcdGate) under quorum: at
    its lease deadline it stops acking and, not having heard of its
    successor, still names itself in Metadata. A producer that knows all
    three nodes, n1 first, writes the rest of its stream only then: it asks
    the other nodes too and finishes at the new leader while n1 is still
    cut off, exactly once (it used to ask n1 again and again and wait for
    the gate to open or its 30 s ack_timeout_ms)."""
    with Workdir() as wd:
        c = Cluster(a, wd)
        gate = EtcdGate(c.etcd.port)
        try:
            c.etcd_urls["n1"] = gate.url
            with c:
                first, n_events = 2000, 20000
                data, ids = events(n_events)
                lines = data.splitlines(keepends=True)
                prod = FedProducer(a, ",".join(c.nodes[n].addr for n in NODES), wd)
                try:
                    prod.write(b"".join(lines[:first]))
                    check(prod.wait_acks(first), "the first %d events not acked" % first)
                    pos = c.log_size("n1")
                    gate.close()
                    c.wait_log("n1", "sluiced: node n1: lost its lease in etcd: acks stop", pos)
                    t_cut = time.monotonic()
                    prod.feed(b"".join(lines[first:]))
                    # Done while n1 is still cut off, well inside the
                    # producer's ack_timeout_ms (30 s).
                    check(prod.wait_acks(n_events, timeout=15),
                          "the producer still waits 15 s after n1 stopped acking: %d of %d "
                          "acked" % (len(prod.acked), n_events))
                    t_done = time.monotonic()
                    prod.finish()
                    check("events/0: follower" not in log_text(c, "n1")[pos:],
                          "n1 heard of its successor before the producer was done")
                finally:
                    prod.kill()
                new, _ = wait_any(c, ["n2", "n3"], r"events/0: leader, leader epoch 2\n")
                acks, evs = stored_once(a, c, new, prod.acked, n_events)
                print("leader_cut_producer_moves: n1 stopped acking; the other %d events all "
                      "acked %.2f s later at %s, n1 still cut off from etcd; 0 duplicates" % (
                          n_events - first, t_done - t_cut, new))
                pos = c.log_size("n1")
                gate.open()
                n1_rejoins(a, c, wd, new, len(evs), pos)
        finally:
            gate.shut()


def cut_leader_run(a, c, wd, gate):
    first, n_events = 50, 300
    side, lines = side_first_acked(a, c, wd, first, n_events)
    try:
        pos = c.log_size("n1")
        gate.close()
        c.wait_log("n1", "sluiced: node n1: lost its lease in etcd: acks stop", pos)
        new, e2 = wait_epoch2(c, first)
        # n1 still leads epoch 1 as far as it knows: it takes the events
        # (durable on its disk, what acks: leader acks) and must ack none.
        check("events/0: follower" not in log_text(c, "n1")[pos:], "n1 heard of epoch 2")
        side.write(b"".join(lines[first:]))

        def n1_holds():
            st = c.state("n1")
            mine = [r for r in st["replica_state"] if r["node"] == "n1"][0]
            return mine["durable_offset"] >= n_events
        wait_on_folder("n1 holds all %d events" % n_events,
                       os.path.join(wd, "n1", "data", "events", "0"), n1_holds)
        st = c.state("n1")
        check(st["leader"] == "n1" and st["epoch"] == 1 and st["high_watermark"] == first,
              "n1 past its lease deadline: %r" % st)
        check(len(side.acked) == first, "n1 acked %d events past its lease deadline" % (
            len(side.acked) - first))
        pos = c.log_size("n1")
        gate.open()
        c.wait_log("n1", "events/0: follower, leader epoch 2", pos)
        side.proc.stdin.close()
        side.finish()
    finally:
        side.kill()
    acks, evs, dups = side_acks_hold(a, c, new, side, n_events)
    c.wait_log("n1", "events/0: log cut from %d to %d" % (n_events, first), pos)
    c.wait_log(new, "in-sync replicas changed to 3 of 3")
    for n in NODES:
        consume_all(a, c.nodes[n].addr, len(evs))
    check_identical(wd, len(evs))
    print("leader_cut_from_etcd: n1 held %d events past its lease deadline, acked none, cut "
          "them; %d events stored for %d acked, %d duplicates, 0 lost" % (
              n_events - first, len(evs), len(acks), dups))


def run_produce(c, data):
    servers = ",".join(c.nodes[n].addr for n in NODES)
    p = subprocess.run([c.a.sluice, "produce", "--server", servers, "--topic", "events",
                        "--print-acks", "--timeout", "60"], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def no_majority(a, unclean):
    keys = ["unclean_election: true"] if unclean else []
    with Workdir() as wd, Cluster(a, wd, topic_keys=keys) as c:
        data, ids = events(500)
        rc, out, err = run_produce(c, data)
        check(rc == 0 and len(parse_json_lines(out)) == len(ids), "produce failed: %s" % err)
        consume_all(a, c.nodes["n3"].addr, len(ids))
        before, rev = etcd_state(c)
        check(before["leader"] == "n1" and before["epoch"] == 1, "state %r" % before)
        kill9(c, "n1")
        kill9(c, "n2")
        # n3 is alone: it becomes controller once the others' leases are
        # gone (whoever held the office), then decides on events/0.
        c.wait_log("n3", "sluiced: node n3: controller")
        if not unclean:
            # How many it counts live depends on whether n2's lease had
            # run out yet when it looked (said once per state): n3 alone
            # answered either way.
            c.wait_log("n3", "controller n3: cannot elect a leader for events/0 (leader n1 "
                             "gone, epoch 1): no majority of the replicas answered; ")
            text = log_text(c, "n3")
            check(re.search(r"no majority of the replicas answered; [12] of 3 replicas live, "
                            r"1 answered \(unclean_election is off\)", text),
                  "n3's refusal: %r" % text[-600:])
            after, rev2 = etcd_state(c)
            check(after == before and rev2 == rev, "state changed: %r -> %r" % (before, after))
            check(metric(c, "n3", "sluice_leader_elections_total") == 0, "elections metric")
            text = log_text(c, "n3")
            check("events/0: leader, leader epoch" not in text, "n3 took the lead")
            return
        c.wait_log("n3", "UNCLEAN ELECTION of events/0: n3")
        c.wait_log("n3", "events/0: leader, leader epoch 2")
        after, _ = etcd_state(c)
        check(after["leader"] == "n3" and after["epoch"] == 2 and after["isr"] == ["n3"],
              "state %r" % after)
        check(metric(c, "n3", "sluice_unclean_elections_total") == 1, "unclean metric")
        check(metric(c, "n3", "sluice_leader_elections_total") == 1, "elections metric")


def no_majority_no_election(a):
    no_majority(a, False)
    no_majority(a, True)


if __name__ == "__main__":
    sys.exit(main({
        "leader_kill9": leader_kill9,
        "paused_leader_producer_moves": paused_leader_producer_moves,
        "consume_rides_out": consume_rides_out,
        "controller_dies": controller_dies,
        "no_majority_no_election": no_majority_no_election,
        "paused_leader": paused_leader,
        "paused_leader_acks_leader": paused_leader_acks_leader,
        "leader_cut_from_etcd": leader_cut_from_etcd,
        "leader_cut_producer_moves": leader_cut_producer_moves,
    }))
