#!/usr/bin/env python3
"""Projections, pipelines and sinks of a topic created later (issue 22).

  late_projection  `counter` reads `orders`, which the config does not
                   list: sluiced says it waits, status and /metrics say
                   waiting_for_topic, a query is 503 not_serving naming the
                   topic, --check-config accepts it with a note; `sluice
                   topic create orders`, N events, and `counter` counts N
                   (read-your-writes tokens, no sleeps); deleting `orders`
                   is refused (409 naming the projection); the count
                   survives a SIGTERM restart and a kill -9 with more
                   events (equal to the events stored).
  late_sink        the jsonl sink of a later topic: every event in its
                   files once the topic is made; after kill -9 the sink is
                   bound at start (the topic is in data_dir/topics.yaml)
                   and the next events are there too, none twice.
  late_pipeline    the filter plugin from a later topic into `big` (a
                   config topic): the OrderPlaced events arrive; a second
                   pipeline whose `from` and `to` are both missing binds
                   when the second of them is made.
"""

import json
import os
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Failure, Server, Workdir, check, main, run, wait_for_files  # noqa: E402
from topics import call, consume, lines, produce  # noqa: E402


def typed_lines(tag, n):
    """Events i of type OrderPlaced when i % 3 == 0, else Other."""
    return "".join(json.dumps({"type": "OrderPlaced" if i % 3 == 0 else "Other",
                               "aggregate": "k%d" % (i % 17),
                               "id": "%08x-0000-4000-8000-%012x" % (tag, i),
                               "data": {"i": i}}) + "\n" for i in range(n)).encode()


def create(a, srv, name, partitions):
    rc, out, err = run([a.sluice, "topic", "create", name, "--partitions", str(partitions),
                        "--server", srv.addr])
    check(rc == 0, "sluice topic create %s: rc %d %s %s" % (name, rc, out, err))


def stderr_text(srv):
    with open(srv.stderr_path, errors="replace") as f:
        return f.read()


def status(srv):
    st, body = call(srv, "GET", "/v1/status")
    check(st == 200, "status: %d %r" % (st, body))
    return body


def metrics(srv):
    st, body = call_raw(srv, "/metrics")
    check(st == 200, "metrics: %d" % st)
    return body


def call_raw(srv, path):
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (srv.http_port, path))
    tok = os.environ.get("SLUICE_TOKEN") or getattr(srv, "token", None)
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def count_after(srv, acks):
    """counter's type:T once it applied every acked event: a read-your-writes
    token per partition (the last ack there), each waited for by the server."""
    last = {}
    for x in acks:
        last[x["partition"]] = max(last.get(x["partition"], -1), x["offset"])
    body = None
    for p, off in sorted(last.items()):
        st, body = call(srv, "GET", "/v1/projections/counter/%s?min_offset=%d:%d&timeout_ms=30000"
                        % (urllib.parse.quote("type:T"), p, off))
        check(st == 200, "counter after %d:%d: %d %r" % (p, off, st, body))
    return body["count"] if body else 0


def case_late_projection(a):
    n1, n2 = 4000, 1500
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, projections=[("counter", "counter", "orders")])
        rc, out, err = run([a.sluiced, "--check-config", srv.config])
        check(rc == 0 and "projection counter waits for topic orders" in out,
              "--check-config: rc %d %s %s" % (rc, out[:600], err))
        srv.start()
        try:
            check("sluiced: projection counter waits for topic orders" in stderr_text(srv),
                  "no start line for the waiting projection: %s" % stderr_text(srv)[-600:])
            pj = status(srv)["projections"][0]
            check(pj["state"] == "waiting_for_topic" and pj["topic"] == "orders"
                  and pj["partitions"] == [], "status while waiting: %r" % pj)
            check('sluice_projection_waiting_for_topic{projection="counter",topic="orders"} 1'
                  in metrics(srv), "/metrics does not say it waits")
            st, body = call(srv, "GET", "/v1/projections/counter/type:T")
            check(st == 503 and body.get("error") == "not_serving"
                  and "waits for topic orders" in body.get("message", ""),
                  "query while waiting: %d %r" % (st, body))
            create(a, srv, "orders", 4)
            rc, acks, err = produce(a, srv, "orders", 1, n1)
            check(rc == 0 and len(acks) == n1, "produce: rc %d, %d acks: %s"
                  % (rc, len(acks), err[-300:]))
            got = count_after(srv, acks)
            check(got == n1, "counter counts %d of %d" % (got, n1))
            pj = status(srv)["projections"][0]
            check(pj["state"] == "serving" and len(pj["partitions"]) == 4,
                  "status once bound: %r" % pj)
            check('sluice_projection_waiting_for_topic{projection="counter",topic="orders"} 0'
                  in metrics(srv), "/metrics still says it waits")
            st, body = call(srv, "DELETE", "/v1/topics/orders")
            check(st == 409 and body.get("error") == "in_use"
                  and "projection counter" in body.get("message", ""),
                  "delete of a topic a projection reads: %d %r" % (st, body))
            # A clean restart: bound at start (orders is in topics.yaml).
            check(srv.stop() == 0, "sluiced did not stop cleanly")
            srv.start()
            check("waits for topic" not in stderr_text(srv), "waits after the restart: %s"
                  % stderr_text(srv)[-600:])
            got = count_after(srv, acks)
            check(got == n1, "after a restart counter counts %d of %d" % (got, n1))
            rc, acks2, err = produce(a, srv, "orders", 2, n2)
            check(rc == 0 and len(acks2) == n2, "produce 2: %s" % err[-300:])
            srv.kill()
            srv.start()
            rc, evs, err = consume(a, srv, "orders")
            check(rc == 0 and len(evs) == n1 + n2, "stored: %d of %d (%s)"
                  % (len(evs), n1 + n2, err[-300:]))
            got = count_after(srv, acks + acks2)
            check(got == len(evs), "after kill -9 counter counts %d, %d stored" % (got, len(evs)))
            print("late_projection: waited (503, status, metrics), bound at create, counted "
                  "%d; delete refused; %d after restart and kill -9" % (n1, got))
        finally:
            srv.kill()


def sink_lines(folder):
    out = []
    for f in sorted(os.listdir(folder)):
        if f.startswith("out.") and f.endswith(".jsonl"):
            with open(os.path.join(folder, f), errors="replace") as x:
                out += [json.loads(line) for line in x if line.strip()]
    return out


def case_late_sink(a):
    n1, n2 = 3000, 1000
    with Workdir() as wd:
        srv = Server(a.sluiced, wd)
        folder = os.path.join(srv.dir, "sink")
        os.makedirs(folder)
        with open(srv.config, "a") as f:
            f.write("sinks:\n  - { name: archive, plugin: jsonl, from: orders,\n"
                    "      args: { path: %s } }\n" % os.path.join(folder, "out.jsonl"))
        srv.start()
        try:
            check("sluiced: sink archive waits for topic orders" in stderr_text(srv),
                  "no start line for the waiting sink: %s" % stderr_text(srv)[-600:])
            sk = status(srv)["sinks"][0]
            check(sk["state"] == "waiting_for_topic" and sk["topic"] == "orders", "sink: %r" % sk)
            create(a, srv, "orders", 3)
            rc, acks, err = produce(a, srv, "orders", 3, n1)
            check(rc == 0 and len(acks) == n1, "produce: %s" % err[-300:])
            ok = wait_for_files(folder, lambda: len(sink_lines(folder)) >= n1, 60)
            evs = sink_lines(folder)
            check(ok and sorted(e["id"] for e in evs) == sorted(x["id"] for x in acks),
                  "the sink wrote %d of %d" % (len(evs), n1))
            srv.kill()
            srv.start()
            sk = status(srv)["sinks"][0]
            check(sk["state"] == "serving" and len(sk["partitions"]) == 3,
                  "after kill -9 the sink is not bound at start: %r" % sk)
            rc, acks2, err = produce(a, srv, "orders", 4, n2)
            check(rc == 0 and len(acks2) == n2, "produce 2: %s" % err[-300:])
            want = sorted(x["id"] for x in acks + acks2)
            ok = wait_for_files(folder, lambda: len(sink_lines(folder)) >= len(want), 60)
            ids = [e["id"] for e in sink_lines(folder)]
            check(ok and sorted(ids) == want, "the sink holds %d lines, %d distinct, of %d"
                  % (len(ids), len(set(ids)), len(want)))
            print("late_sink: waited, bound at create (%d events), bound at start after kill -9 "
                  "(%d more), each once" % (n1, n2))
        finally:
            srv.kill()


def pipe_outputs(srv, name):
    for pl in status(srv)["pipelines"]:
        if pl["name"] == name:
            return pl, sum(p["outputs_durable"] for p in pl["partitions"])
    raise Failure("no pipeline %s in status" % name)


def wait_outputs(srv, name, to, want, timeout=60):
    """Waits until pipeline `name` has `want` durable outputs, woken by the
    writes that come with them (never a sleep): its outputs into the
    folders of topic `to`, and its progress file, rewritten about once a
    second while it moves (so the last acks are seen too)."""
    data = os.path.join(srv.dir, "data")
    folders = [os.path.join(data, to, d) for d in os.listdir(os.path.join(data, to))]
    prog = os.path.join(data, "pipelines", name)
    folders.append(prog if os.path.isdir(prog) else os.path.join(data, "pipelines"))
    seen = [None, 0]

    def done():
        seen[0], seen[1] = pipe_outputs(srv, name)
        return seen[1] >= want
    wait_for_files([f for f in folders if os.path.isdir(f)], done, timeout)
    return seen[0], seen[1]


def case_late_pipeline(a):
    n = 3000
    want = len([i for i in range(n) if i % 3 == 0])
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", 2), ("big", 2)])
        with open(srv.config, "a") as f:
            f.write("pipelines:\n"
                    "  - { name: late-big, from: orders, to: big,\n"
                    "      transforms: [ { plugin: filter, args: { type: OrderPlaced } } ] }\n"
                    "  - { name: late-both, from: orders, to: big2,\n"
                    "      transforms: [ { plugin: filter, args: { type: OrderPlaced } } ] }\n")
        rc, out, err = run([a.sluiced, "--check-config", srv.config])
        check(rc == 0 and "pipeline late-both waits for topic orders" in out,
              "--check-config: rc %d %s %s" % (rc, out[:600], err))
        srv.start()
        try:
            states = {p["name"]: p["state"] for p in status(srv)["pipelines"]}
            check(states == {"late-big": "waiting_for_topic", "late-both": "waiting_for_topic"},
                  "pipelines at start: %r" % states)
            create(a, srv, "orders", 4)
            rc, out, err = run([a.sluice, "produce", "--print-acks", "--timeout", "60",
                                "--topic", "orders", "--server", srv.addr],
                               stdin=typed_lines(5, n))
            check(rc == 0 and len(out.splitlines()) == n, "produce: %s" % err[-300:])
            pl, got = wait_outputs(srv, "late-big", "big", want)
            check(pl["state"] == "serving" and got == want, "late-big: %d of %d outputs, %r"
                  % (got, want, pl))
            rc, evs, err = consume(a, srv, "big")
            check(rc == 0 and sorted(e["id"] for e in evs)
                  == sorted("%08x-0000-4000-8000-%012x" % (5, i) for i in range(0, n, 3)),
                  "big holds %d events, wanted %d: %s" % (len(evs), want, err[-300:]))
            pl, _ = pipe_outputs(srv, "late-both")
            check(pl["state"] == "waiting_for_topic" and pl["to"] == "big2",
                  "late-both before big2: %r" % pl)
            create(a, srv, "big2", 2)
            pl, got = wait_outputs(srv, "late-both", "big2", want)
            check(pl["state"] == "serving" and got == want, "late-both: %d of %d, %r"
                  % (got, want, pl))
            rc, evs, err = consume(a, srv, "big2")
            check(rc == 0 and len(evs) == want and all(e["type"] == "OrderPlaced" for e in evs),
                  "big2 holds %d events of %d" % (len(evs), want))
            st, body = call(srv, "DELETE", "/v1/topics/big2")
            check(st == 409 and "pipeline late-both" in body.get("message", ""),
                  "delete of a pipeline's to: %d %r" % (st, body))
            print("late_pipeline: %d OrderPlaced of %d through a pipeline of a later topic, "
                  "and through one whose from and to came later" % (want, n))
        finally:
            srv.kill()


if __name__ == "__main__":
    sys.exit(main({"late_projection": case_late_projection, "late_sink": case_late_sink,
                   "late_pipeline": case_late_pipeline}))
