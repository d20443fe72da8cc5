#!/usr/bin/env python3
"""End-to-end cases for projections served by sluiced and queried over HTTP.

read_your_writes: one producer, one event at a time; after each ack, a query
  with the ack's token must show that very event (10,000 times).
query_errors: every error answer of GET /v1/projections/NAME/KEY.
exactly_once_restarts: the counter projection after a clean restart and
  after SIGKILL counts every stored event exactly once.
rebuild_equals_live: `sluice projection rebuild` (from offset 0) equals the
  live models, before and after a SIGKILL.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, Workdir, check, http_open, main, run, wait_for_files  # noqa: E402
from cases import Producer  # noqa: E402

PROJECTIONS = [("counter", "counter", "events"), ("latest", "latest", "events")]


def get(srv, path, timeout=30):
    """GET on the server's HTTP port: (status, parsed JSON body)."""
    url = "http://127.0.0.1:%d%s" % (srv.http_port, path)
    try:
        with http_open(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def q(name, key, **params):
    path = "/v1/projections/%s/%s" % (urllib.parse.quote(name, safe=""),
                                      urllib.parse.quote(key, safe=""))
    if params:
        path += "?" + urllib.parse.urlencode(params)
    return path


def event(i, agg):
    return json.dumps({"type": "Deposited", "aggregate": agg, "data": {"n": i}})


def case_read_your_writes(a):
    n = 10000
    with Workdir() as wd, Server(a.sluiced, wd, projections=PROJECTIONS) as srv:
        check(srv.http_port, "no http port in sluiced's output")
        prod = Producer(a.sluice, srv.addr, 60)
        t0 = time.monotonic()
        try:
            for i in range(n):
                agg = "acct-%d" % (i % 37)
                prod.send([event(i, agg)])
                ack = prod.read_acks(1)[0]
                st, body = get(srv, q("latest", agg, min_offset=ack["token"]))
                check(st == 200, "iteration %d: status %d: %r" % (i, st, body))
                data = body.get("data")
                check(isinstance(data, dict) and data.get("n") == i,
                      "iteration %d: read %r, not the write just acked (token %s)" % (
                          i, body, ack["token"]))
            rc, _, err = prod.finish()
            check(rc == 0, "produce rc %d: %s" % (rc, err))
        finally:
            prod.kill()
        took = time.monotonic() - t0
        wait_all(srv)
        st, body = get(srv, q("counter", "type:Deposited"))
        check(st == 200 and body.get("count") == n, "counter type:Deposited: %d %r" % (st, body))
        print("read_your_writes: %d iterations, every read saw its write, %.1f s (%.0f us each)"
              % (n, took, took * 1e6 / n))


def case_query_errors(a):
    with Workdir() as wd, Server(a.sluiced, wd, projections=PROJECTIONS) as srv:
        prod = Producer(a.sluice, srv.addr, 30)
        try:
            prod.send([event(1, "acct-1")])
            ack = prod.read_acks(1)[0]
            prod.finish()
        finally:
            prod.kill()
        st, body = get(srv, q("nope", "acct-1"))
        check(st == 404 and "nope" in body.get("message", ""), "unknown projection: %d %r" % (st, body))
        st, body = get(srv, q("latest", "acct-404"))
        check(st == 404, "unknown key: %d %r" % (st, body))
        st, body = get(srv, q("latest", "acct-1", min_offset="x:1"))
        check(st == 400 and "min_offset" in body.get("message", ""), "bad token: %d %r" % (st, body))
        st, body = get(srv, q("latest", "acct-1", min_offset="99:0"))
        check(st == 400, "token of a partition that does not exist: %d %r" % (st, body))
        # A token past the end (no such event yet): waits, then a clear timeout.
        p = ack["token"].split(":")[0]
        t0 = time.monotonic()
        st, body = get(srv, q("latest", "acct-1", min_offset="%s:1000" % p, timeout_ms=300))
        took = time.monotonic() - t0
        check(st == 504 and body.get("error") == "timeout", "timeout: %d %r" % (st, body))
        check(0.25 < took < 5, "timeout answered after %.2f s, asked 0.3 s" % took)
        st, body = get(srv, q("latest", "acct-1", min_offset=ack["token"], max_lag=0))
        check(st == 200, "caught up, max_lag 0: %d %r" % (st, body))
        st, body = get(srv, "/v1/status")
        check(st == 200 and [p["name"] for p in body["projections"]] == ["counter", "latest"],
              "status: %r" % body)
        out = run([a.sluice, "query", "latest", "acct-1", "--min-offset", ack["token"],
                   "--http", "127.0.0.1:%d" % srv.http_port])
        check(out[0] == 0 and json.loads(out[1])["data"]["n"] == 1, "sluice query: %r" % (out,))
        # sluice status reads both ports: the projections and their lag, the
        # topic's pressure and overload counts.
        rc, out, err = run([a.sluice, "status", "--server", srv.addr,
                            "--http", "127.0.0.1:%d" % srv.http_port])
        check(rc == 0, "sluice status: %d %s" % (rc, err))
        lines = out.splitlines()
        check(any(l.split()[:2] == ["counter", "counter"] and "lag" in l for l in lines) and
              any(l.split()[:2] == ["latest", "latest"] for l in lines),
              "sluice status, projections: %r" % out)
        check(any(l.split()[:1] == ["events"] and "pressured" in l and "dropped 0" in l
                  for l in lines), "sluice status, pressure: %r" % out)
        check("sinks: none" in out and "pipelines: none" in out, "sluice status: %r" % out)


def count_of(srv, key):
    st, body = get(srv, q("counter", key))
    check(st == 200, "counter %s: %d %r" % (key, st, body))
    return body["count"]


def wait_all(srv):
    st, body = get(srv, "/v1/status")
    check(st == 200, "status: %d" % st)
    for part in body["topics"][0]["partitions"]:
        if part["end_offset"] > 0:
            token = "%d:%d" % (part["partition"], part["end_offset"] - 1)
            st, body = get(srv, q("counter", "type:Deposited", min_offset=token,
                                  timeout_ms=30000), timeout=60)
            check(st == 200, "waiting for %s: %d %r" % (token, st, body))


def case_exactly_once_restarts(a):
    per = 3000
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, projections=PROJECTIONS).start()
        try:
            for round_ in range(3):
                prod = Producer(a.sluice, srv.addr, 60)
                try:
                    # In steps: a whole round at once could fill both pipes
                    # (our writes to its stdin, its acks to its stdout).
                    acks = []
                    for lo in range(0, per, 200):
                        prod.send([event(i, "acct-%d" % (i % 11)) for i in range(lo, lo + 200)])
                        acks += prod.read_acks(200)
                    rc, _, err = prod.finish()
                    check(rc == 0, "produce rc %d: %s" % (rc, err))
                finally:
                    prod.kill()
                want = per * (round_ + 1)
                # Every event stored is applied once: wait until every
                # partition's last event is applied (a model may trail by a
                # tick; read your writes is per token).
                wait_all(srv)
                got = count_of(srv, "type:Deposited")
                check(got == want, "round %d: counter says %d, stored %d" % (round_, got, want))
                if round_ == 0:
                    check(srv.stop() == 0, "clean stop")
                else:
                    srv.kill()  # SIGKILL: the model restarts from a snapshot or from 0
                srv = Server(a.sluiced, wd, port=srv.port, projections=PROJECTIONS).start()
                # No new writes: wait (server side, read-your-writes) until
                # the counter has applied the last stored event of every
                # partition, then it must hold the same count.
                wait_all(srv)
                got = count_of(srv, "type:Deposited")
                check(got == want, "after restart %d: counter says %d, stored %d" % (
                    round_, got, want))
        finally:
            srv.kill()


def case_rebuild_equals_live(a):
    per = 6000
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, projections=PROJECTIONS).start()
        try:
            for round_ in range(2):
                prod = Producer(a.sluice, srv.addr, 60)
                try:
                    for lo in range(0, per, 500):
                        prod.send([event(i, "acct-%d" % (i % 97)) for i in range(lo, lo + 500)])
                        prod.read_acks(500)
                    rc, _, err = prod.finish()
                    check(rc == 0, "produce rc %d: %s" % (rc, err))
                finally:
                    prod.kill()
                wait_all(srv)
                for name in ("counter", "latest"):
                    rc, out, err = run([a.sluice, "projection", "rebuild", name, "--http",
                                        "127.0.0.1:%d" % srv.http_port], timeout=300)
                    check(rc == 0, "rebuild %s: rc %d %s %s" % (name, rc, out, err))
                    res = json.loads(out)
                    events = sum(p["events"] for p in res["partitions"])
                    check(res["equal"] and events == per * (round_ + 1),
                          "rebuild %s: %r" % (name, res))
                # The second round starts from snapshots or a replay after SIGKILL.
                srv.kill()
                srv = Server(a.sluiced, wd, port=srv.port, projections=PROJECTIONS).start()
            rc, out, err = run([a.sluice, "projection", "rebuild", "nope", "--http",
                                "127.0.0.1:%d" % srv.http_port])
            check(rc == 1 and "nope" in err, "rebuild of an unknown projection: %d %r" % (rc, err))
        finally:
            srv.kill()


def case_snapshot_cadence(a):
    """`snapshot: { every_events: 500 }` snapshots a projection's partition
    as it goes; the default (1M events, 60 s) has none after 3,000 events;
    a restart loads the snapshot and the counter is still right."""
    n = 3000
    # counter and latest keep their models in the host's state (no
    # snapshots): the snapshot cadence is the in-memory counter's, a test
    # plugin, once at every_events 500 and once at the default.
    bindir = os.path.dirname(os.path.abspath(a.sluiced))
    plugins = [os.path.join(bindir, "..", "plugins"),
               os.path.join(bindir, "..", "tests", "plugins", "out")]
    extra = ["plugin_path: [ %s ]" % ", ".join(plugins),
             "projections:",
             "  - { name: counter, plugin: mem_counter, from: events,"
             " snapshot: { every_events: 500, every: 1h } }",
             "  - { name: quiet, plugin: mem_counter, from: events }"]
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", 1)], extra=extra).start()
        try:
            lines = "\n".join(event(i, "acct-%d" % (i % 5)) for i in range(n)) + "\n"
            rc, out, err = run([a.sluice, "produce", "--server", srv.addr], lines.encode())
            check(rc == 0, "produce: %s" % err)
            wait_all(srv)
            snaps = os.path.join(srv.dir, "data", "projections", "counter", "0")

            def snapshots():
                return [f for f in os.listdir(snaps) if f.endswith(".snap")]

            check(wait_for_files(snaps, lambda: len(snapshots()) > 0, 30),
                  "no snapshot of counter after %d events (every_events: 500)" % n)
            quiet = os.path.join(srv.dir, "data", "projections", "quiet", "0")
            check(not [f for f in os.listdir(quiet) if f.endswith(".snap")],
                  "quiet (default cadence) snapshotted after %d events" % n)
            check(srv.stop() == 0, "sluiced did not exit 0")
            srv.start()
            wait_all(srv)
            st, body = get(srv, q("counter", "type:Deposited"))
            check(st == 200 and body.get("count") == n, "after restart: %d %r" % (st, body))
            print("snapshot_cadence: %d snapshot(s) of counter at every_events 500 over %d "
                  "events, none of quiet at the default" % (len(snapshots()), n))
        finally:
            srv.kill()


if __name__ == "__main__":
    sys.exit(main({
        "read_your_writes": case_read_your_writes,
        "query_errors": case_query_errors,
        "exactly_once_restarts": case_exactly_once_restarts,
        "rebuild_equals_live": case_rebuild_equals_live,
        "snapshot_cadence": case_snapshot_cadence,
    }))
