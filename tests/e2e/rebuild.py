#!/usr/bin/env python3
"""`sluice projection rebuild --swap` (issue 21 item 4) against the real sluiced.

The live model is made wrong the way a user's would be: the events are
applied by a buggy build of `counter` (tests/plugins: out/buggy/counter.so
adds 2 per event to an aggregate's count), then sluiced restarts with the
real counter, so a rebuild from offset 0 differs from the live model and a
swap must repair it. Topic `events` has 2 partitions; partition 0 is
rebuilt first, so a rebuild stopped by the test hook
(SLUICE_TEST_REBUILD_PAUSE, engine/server/server.h) stops in partition 0
with partition 1 untouched.

swap_replaces_a_differing_model: a rebuild without --swap says "different"
  and changes nothing; with --swap every partition is swapped while a
  thread queries all along (each answer is the old count or the new one,
  never anything else, never an error); the counts then equal the events
  stored, go on exactly once for new events, across a kill -9, and a new
  rebuild is equal. --swap of an in-memory (ABI 1.1) projection and bad
  swap= values are refused.
kill9_during_rebuild: kill -9 while a rebuild --swap is applying (paused
  after 700 events of partition 0, seen in sluice_projection_rebuild_*):
  the live model is whole (the old counts), the rebuild's keys are removed
  at the next start (said on stderr; not resumed), and a new rebuild --swap
  works.
kill9_around_swap: kill -9 with both models settled just before the swap's
  write, and again just after it: partition 0 is wholly old, or wholly
  new; events produced after the restart are applied exactly once on top.
powerloss_rebuild_swap: the same three points with data_dir on faultfs and
  the power cut after the kill (crash, crash reorder, crash torn), each
  point checked as above; --rounds repeats them (slow).
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faultfs"))
from harness import Failure, Server, Workdir, check, http_open, run  # noqa: E402
from projections import get, q  # noqa: E402

AGGS = 24
PAUSE_ENV = "SLUICE_TEST_REBUILD_PAUSE"


class RServer(Server):
    """sluiced with topic events (2 partitions), the projection counter from
    the real plugins or the buggy build, a mem_counter, a data_dir of the
    test's choice and the rebuild test hook in its environment."""

    def __init__(self, a, wd, buggy, data_dir=None, pause=None, port=0):
        super().__init__(a.sluiced, wd, port=port)
        bindir = os.path.dirname(os.path.abspath(a.sluiced))
        tplugins = os.path.join(bindir, "..", "tests", "plugins", "out")
        path = [os.path.join(tplugins, "buggy") if buggy else os.path.join(bindir, "..", "plugins"),
                tplugins]
        self.pause = pause
        cfg = [
            "data_dir: %s" % (data_dir or os.path.join(self.dir, "data")),
            "cores: 2",
            "listen: { native: 127.0.0.1:%d, http: 127.0.0.1:0 }" % port,
            "topics:",
            "  - name: events",
            "    partitions: 2",
            "plugin_path: [ %s ]" % ", ".join(path),
            "projections:",
            "  - { name: counter, plugin: counter, from: events }",
            "  - { name: mem, plugin: mem_counter, from: events }",
        ]
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")

    def start(self):
        # An earlier instance's stderr kept aside (TSan's reports in it are
        # read at the end, harness.tsan_reports).
        if os.path.exists(self.stderr_path):
            k = 1
            while os.path.exists(os.path.join(self.dir, "stderr.%d.txt" % k)):
                k += 1
            os.replace(self.stderr_path, os.path.join(self.dir, "stderr.%d.txt" % k))
        old = os.environ.pop(PAUSE_ENV, None)
        if self.pause:
            os.environ[PAUSE_ENV] = self.pause
        try:
            return super().start()
        except Failure:
            self.kill()
            raise
        finally:
            os.environ.pop(PAUSE_ENV, None)
            if old is not None:
                os.environ[PAUSE_ENV] = old


def sigkill(srv):
    srv.proc.kill()
    srv.proc.wait(timeout=30)
    srv.proc.stdout.close()
    srv.stderr.close()


def produce(a, srv, lo, hi, want):
    """Events lo..hi-1, event i of aggregate acct-(i % AGGS); adds them to
    want (the true count per aggregate)."""
    lines = "".join(json.dumps({"type": "Deposited", "aggregate": "acct-%d" % (i % AGGS),
                                "data": {"n": i}}) + "\n" for i in range(lo, hi))
    rc, _, err = run([a.sluice, "produce", "--server", srv.addr], lines.encode(), timeout=120)
    check(rc == 0, "produce: %s" % err)
    for i in range(lo, hi):
        want["acct-%d" % (i % AGGS)] = want.get("acct-%d" % (i % AGGS), 0) + 1


def wait_applied(srv):
    """Read your writes on the last stored event of each partition."""
    st, body = get(srv, "/v1/status")
    check(st == 200, "status: %d" % st)
    topic = [t for t in body["topics"] if t["name"] == "events"][0]
    for part in topic["partitions"]:
        if part["end_offset"] > 0:
            token = "%d:%d" % (part["partition"], part["end_offset"] - 1)
            st, b = get(srv, q("counter", "total", min_offset=token, timeout_ms=30000),
                        timeout=60)
            check(st == 200, "waiting for %s: %d %r" % (token, st, b))


def counts(srv):
    """{aggregate: (count, partition)} as the live model answers."""
    out = {}
    for i in range(AGGS):
        agg = "acct-%d" % i
        st, body = get(srv, q("counter", agg))
        check(st == 200 and "token" in body,
              "query %s: %d %r (no token: the model's mark says it applied nothing)" % (
                  agg, st, body))
        out[agg] = (body["count"], int(body["token"].split(":")[0]))
    return out


def which_model(srv, want, what):
    """After a cut at a random moment: each partition's model, 1 (new) or 2
    (old), checked whole (check_model)."""
    rule = {}
    for agg, (c, p) in counts(srv).items():
        if c == want[agg] and want["bug"].get(agg, 0):
            rule.setdefault(p, 1)
        else:
            rule.setdefault(p, 2)
    return check_model(srv, want, rule, what) and rule


def check_model(srv, want, rule, what):
    """`rule` maps each partition to its model: 1 the rebuilt (real
    counter's) one, an aggregate's count is its events; 2 the old one, built
    by the buggy counter, which counted each of its events twice and the
    real counter every event since (want["bug"]). A partition's model is
    wholly one or the other, with every event applied once."""
    got = counts(srv)
    for agg, (c, p) in sorted(got.items()):
        exp = want[agg] + (want["bug"].get(agg, 0) if rule[p] == 2 else 0)
        check(c == exp,
              "%s: %s (partition %d) counts %d, want %d (%d events, %d by the buggy counter): "
              "the model is not wholly the %s one, or an event was applied twice or not at "
              "all" % (what, agg, p, c, exp, want[agg], want["bug"].get(agg, 0),
                       "new" if rule[p] == 1 else "old"))
    return got


def rebuild(a, srv, swap, timeout=300):
    cmd = [a.sluice, "projection", "rebuild", "counter", "--http",
           "127.0.0.1:%d" % srv.http_port] + (["--swap"] if swap else [])
    rc, out, err = run(cmd, timeout=timeout)
    return rc, (json.loads(out) if out.strip() else None), err


def rebuild_background(a, srv, wd):
    """`sluice projection rebuild counter --swap` left running (the test hook
    stops the rebuild; the kill ends it)."""
    return subprocess.Popen([a.sluice, "projection", "rebuild", "counter", "--swap", "--http",
                             "127.0.0.1:%d" % srv.http_port], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(wd, "rebuild.stderr"), "w"))


def metrics(srv):
    with http_open("http://127.0.0.1:%d/metrics" % srv.http_port, timeout=30) as r:
        return r.read().decode()


def rebuild_metric(text, name, partition):
    m = re.search(r'^%s\{projection="counter",partition="%d"\} (\d+)$' % (name, partition),
                  text, re.M)
    return int(m.group(1)) if m else None


def wait_paused(srv, applied=None, timeout_s=60):
    """Polls /metrics (bounded) until partition 0's rebuild is paused by the
    hook (phase 3), at `applied` when given: the rebuild is in flight."""
    end = time.monotonic() + timeout_s
    while True:
        text = metrics(srv)
        ph = rebuild_metric(text, "sluice_projection_rebuild_phase", 0)
        ap = rebuild_metric(text, "sluice_projection_rebuild_applied", 0)
        if ph == 3 and (applied is None or ap == applied):
            return ap
        check(time.monotonic() < end, "rebuild of partition 0 not paused after %d s (phase %r, "
              "applied %r)" % (timeout_s, ph, ap))
        check(srv.proc.poll() is None, "sluiced exited: %s" % srv.stderr_text()[-2000:])
        time.sleep(0.02)  # a poll interval, bounded by `end`


def buggy_model(a, wd, n, data_dir=None):
    """n events applied by the buggy counter, sluiced stopped cleanly: the
    true counts."""
    want = {"bug": {}}
    srv = RServer(a, wd, True, data_dir).start()
    try:
        produce(a, srv, 0, n, want)
        want["bug"] = {k: v for k, v in want.items() if k != "bug"}
        wait_applied(srv)
        check_model(srv, want, {0: 2, 1: 2}, "the buggy counter")
        check(srv.stop() == 0, "sluiced did not exit 0")
    finally:
        srv.kill()
    return want


def case_swap_replaces_a_differing_model(a):
    n = 3000
    with Workdir() as wd:
        want = buggy_model(a, wd, n)
        srv = RServer(a, wd, False).start()
        try:
            check_model(srv, want, {0: 2, 1: 2}, "after the restart with the real counter")
            # The live model goes on with the real counter (its cache then
            # holds keys the swap must forget).
            produce(a, srv, n, n + 500, want)
            n += 500
            wait_applied(srv)
            check_model(srv, want, {0: 2, 1: 2}, "events applied by the real counter")
            rc, res, err = rebuild(a, srv, False)
            check(rc == 1 and res and not res["equal"] and res["swapped"] == 0 and
                  all(not p["swapped"] for p in res["partitions"]),
                  "rebuild without --swap: rc %d %r %s" % (rc, res, err))
            check_model(srv, want, {0: 2, 1: 2}, "a rebuild without --swap changed the model")
            # Refusals: an in-memory projection, a bad swap value, another
            # parameter.
            rc, out, err = run([a.sluice, "projection", "rebuild", "mem", "--swap", "--http",
                                "127.0.0.1:%d" % srv.http_port])
            check(rc == 1 and "ABI 1.1" in err, "--swap of mem_counter: %d %s %s" % (rc, out, err))
            for bad in ("swap=2", "swap", "swap=1&swap=1", "sawp=1"):
                url = "http://127.0.0.1:%d/v1/projections/counter/rebuild?%s" % (
                    srv.http_port, bad)
                try:
                    with http_open(url, method="POST") as r:
                        status = r.status
                except urllib.error.HTTPError as e:
                    status = e.code
                check(status == 400, "rebuild?%s: %d, want 400" % (bad, status))

            # Queries all along the swap: each the old count or the new.
            stop = threading.Event()
            seen = {"old": 0, "new": 0, "bad": []}

            def reader():
                for i in range(200000):  # bounded; stopped once the swap answered
                    if stop.is_set():
                        return
                    agg = "acct-%d" % (i % AGGS)
                    st, body = get(srv, q("counter", agg))
                    if st != 200:
                        seen["bad"].append((agg, st, body))
                    elif body["count"] == want[agg] + want["bug"][agg]:
                        seen["old"] += 1
                    elif body["count"] == want[agg]:
                        seen["new"] += 1
                    else:
                        seen["bad"].append((agg, st, body))
            t = threading.Thread(target=reader)
            t.start()
            try:
                rc, res, err = rebuild(a, srv, True)
            finally:
                stop.set()
                t.join(timeout=60)
            check(rc == 0 and res and not res["equal"] and res["swapped"] == 2 and
                  all(p["swapped"] and not p["equal"] for p in res["partitions"]),
                  "rebuild --swap: rc %d %r %s" % (rc, res, err))
            check(not seen["bad"], "answers during the swap that are neither model's: %r" %
                  seen["bad"][:5])
            check_model(srv, want, {0: 1, 1: 1}, "after the swap")
            st, body = get(srv, q("counter", "total"))
            check(st == 200 and body["count"] == n, "total after the swap: %r" % body)
            # New events on top, exactly once; then a kill -9 and a restart.
            produce(a, srv, n, n + 1000, want)
            wait_applied(srv)
            check_model(srv, want, {0: 1, 1: 1}, "events applied after the swap")
            sigkill(srv)
            srv = RServer(a, wd, False, port=srv.port).start()
            wait_applied(srv)
            check_model(srv, want, {0: 1, 1: 1}, "after kill -9 and restart")
            rc, res, err = rebuild(a, srv, False)
            check(rc == 0 and res["equal"], "rebuild after the swap: rc %d %r %s" % (rc, res, err))
            print("swap_replaces_a_differing_model: %d events; queries during the swap: %d old, "
                  "%d new, 0 else; counts equal the events after the swap, new events and a "
                  "kill -9" % (n + 1000, seen["old"], seen["new"]))
        finally:
            srv.kill()


def case_kill9_during_rebuild(a):
    n, at = 3000, 700
    with Workdir() as wd:
        want = buggy_model(a, wd, n)
        srv = RServer(a, wd, False, pause="apply:%d" % at).start()
        rb = None
        try:
            rb = rebuild_background(a, srv, wd)
            wait_paused(srv, applied=at)
            check(rb.poll() is None, "the rebuild answered while paused")
            sigkill(srv)
            rb.wait(timeout=30)
            srv = RServer(a, wd, False, port=srv.port).start()
            check(re.search(r"partition 0: removed the keys of an interrupted rebuild",
                            srv.stderr_text()),
                  "no word of the interrupted rebuild's keys removed: %s" % srv.stderr_text())
            wait_applied(srv)
            check_model(srv, want, {0: 2, 1: 2}, "the live model after kill -9 mid-rebuild")
            rc, res, err = rebuild(a, srv, True)
            check(rc == 0 and res["swapped"] == 2, "a new rebuild --swap: rc %d %r %s" % (
                rc, res, err))
            check_model(srv, want, {0: 1, 1: 1}, "after the new rebuild --swap")
            print("kill9_during_rebuild: killed at %d events of partition 0's rebuild; live model "
                  "whole, leftovers removed at start, a new rebuild swapped both" % at)
        finally:
            if rb and rb.poll() is None:
                rb.kill()
                rb.wait()
            srv.kill()


def case_kill9_around_swap(a):
    n = 3000
    for point, rule in (("swap", {0: 2, 1: 2}), ("swapped", {0: 1, 1: 2})):
        with Workdir() as wd:
            want = buggy_model(a, wd, n)
            srv = RServer(a, wd, False, pause=point).start()
            rb = None
            try:
                rb = rebuild_background(a, srv, wd)
                wait_paused(srv)
                # Queries keep answering while the swap is held.
                check_model(srv, want, rule, "queries paused %s the swap's write" % (
                    "before" if point == "swap" else "after"))
                sigkill(srv)
                rb.wait(timeout=30)
                srv = RServer(a, wd, False, port=srv.port).start()
                wait_applied(srv)
                check_model(srv, want, rule, "after kill -9 %s the swap's write" % (
                    "before" if point == "swap" else "after"))
                # Exactly once on top of whichever model it is.
                produce(a, srv, n, n + 500, want)
                wait_applied(srv)
                check_model(srv, want, rule, "events applied after the restart")
                rc, res, err = rebuild(a, srv, True)
                check(rc == 0 and res["swapped"] == sum(1 for f in rule.values() if f == 2),
                      "rebuild --swap after the restart: rc %d %r %s" % (rc, res, err))
                check_model(srv, want, {0: 1, 1: 1}, "after the final swap")
                print("kill9_around_swap: killed %s the swap's write: partition 0 wholly %s, "
                      "exactly once after" % ("before" if point == "swap" else "after",
                                              "old" if rule[0] == 2 else "new"))
            finally:
                if rb and rb.poll() is None:
                    rb.kill()
                    rb.wait()
                srv.kill()


def case_powerloss_rebuild_swap(a):
    from test_faultfs import FaultFS
    if not os.path.exists("/dev/fuse"):
        print("powerloss_rebuild_swap: no /dev/fuse, skipped")
        return 77
    rng = random.Random(a.seed)
    n = 3000
    # The hook's points (everything there is synced: what the cut tests is
    # that the state on disk is whole), then a random moment of a rebuild
    # and its swaps with no hook (the cut may drop RocksDB's unsynced files).
    points = [("apply:700", {0: 2, 1: 2}), ("swap", {0: 2, 1: 2}), ("swapped", {0: 1, 1: 2}),
              ("random", None)]
    outcomes = {}
    cuts = 0
    with Workdir() as wd:
        fs = FaultFS(a.faultfs, wd)
        srv = rb = None
        try:
            fs.mount()
            data = os.path.join(fs.mnt, "data")
            for r in range(a.rounds):
                for point, rule in points:
                    # A buggy model on the faultfs, synced by a clean stop.
                    if os.path.exists(data):
                        subprocess.run(["rm", "-rf", data], check=True)
                    want = buggy_model(a, wd, n, data)
                    srv = RServer(a, wd, False, data,
                                  pause=None if point == "random" else point).start()
                    rb = rebuild_background(a, srv, wd)
                    if point == "random":
                        time.sleep(rng.uniform(0, 0.3))  # the random moment itself
                    else:
                        wait_paused(srv)
                    sigkill(srv)
                    rb.wait(timeout=30)
                    mode = rng.choice(("crash", "reorder", "torn"))
                    state = fs.state()
                    cmd = "crash" if mode == "crash" else "crash %s %d" % (
                        mode, rng.randrange(1 << 32))
                    fs.do(cmd)
                    cuts += 1
                    srv = RServer(a, wd, False, data, port=srv.port).start()
                    wait_applied(srv)
                    if rule is None:
                        rule = which_model(srv, want, "round %d, power cut at a random moment "
                                           "(%s)" % (r, cmd))
                        key = "".join("old" if rule[p] == 2 else "new" for p in (0, 1))
                        outcomes[key] = outcomes.get(key, 0) + 1
                    check_model(srv, want, rule, "round %d, power cut at %s (%s)" % (
                        r, point, cmd))
                    produce(a, srv, n, n + 300, want)
                    wait_applied(srv)
                    check_model(srv, want, rule, "round %d, events after the cut at %s" % (
                        r, point))
                    rc, res, err = rebuild(a, srv, True)
                    check(rc == 0, "rebuild --swap after the cut at %s: %d %r %s" % (
                        point, rc, res, err))
                    check_model(srv, want, {0: 1, 1: 1}, "round %d, final swap" % r)
                    check(srv.stop() == 0, "sluiced did not exit 0")
                    srv = None
                    print("cut %d: %s at %s (unsynced %d B, %d pending ops): partitions "
                          "wholly %s, exactly once after" % (
                              cuts, cmd, point, state["unsynced_bytes"], state["pending_ops"],
                              "/".join("old" if rule[p] == 2 else "new" for p in (0, 1))),
                          flush=True)
        finally:
            if rb and rb.poll() is None:
                rb.kill()
                rb.wait()
            if srv:
                srv.kill()
            fs.unmount()
    print("powerloss_rebuild_swap: %d power cuts during rebuilds and swaps, every model whole; "
          "random-moment cuts left partitions (0,1) %r" % (cuts, outcomes))


CASES = {
    "swap_replaces_a_differing_model": case_swap_replaces_a_differing_model,
    "kill9_during_rebuild": case_kill9_during_rebuild,
    "kill9_around_swap": case_kill9_around_swap,
    "powerloss_rebuild_swap": case_powerloss_rebuild_swap,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--faultfs")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("case", choices=sorted(CASES))
    a = ap.parse_args()
    print("rebuild.py %s seed=%d" % (a.case, a.seed), flush=True)
    try:
        rc = CASES[a.case](a)
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
