#!/usr/bin/env python3
"""Topics at runtime (issue 22) over HTTP: /v1/topics.

  topics_lifecycle  create a topic (201), produce to it and read it back,
                    list / describe it (source runtime, settings), alter
                    what may change (overload) and be refused what may not
                    (partitions, segment_bytes); a SIGTERM restart keeps it
                    with its events; delete it (then 404, produce refused,
                    folder gone), a restart does not bring it back, and a
                    new topic of the same name starts empty.
  topics_errors     bad bodies (not JSON, unknown field, bad setting,
                    replicas > 1), an existing name (409), a config topic
                    altered or deleted (409), an unknown topic (404): each
                    with a message that says what is wrong.
  topics_kill9      events acked by a topic created at runtime survive a
                    kill -9 (the registry and the events are durable before
                    the acks), and the topic is there after the restart,
                    with an alter answered before the kill; a topic deleted
                    before it stays deleted.
  topics_under_load a producer streams to `events` while topics are
                    created, altered and deleted; every one of its events is
                    acked.
  topics_cli        the same through `sluice topic`, over the native port
                    (its default) and over HTTP (--http).
  topics_auto_create
                    with `auto_create_topics: true`, four producers at once
                    to a topic that does not exist: it is created once (the
                    server says so), every event acked and stored once, the
                    topic there after kill -9; without the option the same
                    produce is refused as an unknown topic.
"""

import json
import os
import subprocess
import sys
import urllib.error

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Failure, Server, Workdir, check, http_open, main, parse_json_lines, run  # noqa: E402,F401


def call(srv, method, path, body=None):
    """An HTTP request on the server's port: (status, parsed JSON body)."""
    import urllib.request
    url = "http://127.0.0.1:%d%s" % (srv.http_port, path)
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    tok = os.environ.get("SLUICE_TOKEN") or getattr(srv, "token", None)
    if tok:
        req.add_header("Authorization", "Bearer " + tok)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def lines(tag, n):
    return "".join(json.dumps({"type": "T", "aggregate": "k%d" % (i % 31),
                               "id": "%08x-0000-4000-8000-%012x" % (tag, i),
                               "data": {"i": i}}) + "\n" for i in range(n)).encode()


def produce(a, srv, topic, tag, n, timeout=60):
    rc, out, err = run([a.sluice, "produce", "--print-acks", "--timeout", str(timeout),
                        "--topic", topic, "--server", srv.addr], stdin=lines(tag, n),
                       timeout=timeout + 60)
    return rc, parse_json_lines(out), err


def consume(a, srv, topic):
    rc, out, err = run([a.sluice, "consume", "--topic", topic, "--server", srv.addr], timeout=120)
    return rc, parse_json_lines(out), err


def case_topics_lifecycle(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd).start()
        try:
            st, body = call(srv, "POST", "/v1/topics",
                            {"name": "orders", "partitions": 4,
                             "settings": {"overload": "block", "segment_bytes": "64KiB"}})
            check(st == 201, "create: %d %r" % (st, body))
            check(body["name"] == "orders" and body["partitions"] == 4
                  and body["source"] == "runtime", "create answered %r" % body)
            check(body["settings"]["segment_bytes"] == "64KiB", "settings: %r" % body["settings"])
            rc, acks, err = produce(a, srv, "orders", 1, 3000)
            check(rc == 0 and len(acks) == 3000, "produce to orders: rc %d, %d acks: %s"
                  % (rc, len(acks), err[-400:]))
            check({x["partition"] for x in acks} == {0, 1, 2, 3}, "partitions used: %r"
                  % sorted({x["partition"] for x in acks}))
            rc, evs, err = consume(a, srv, "orders")
            check(rc == 0 and sorted(e["id"] for e in evs) == sorted(x["id"] for x in acks),
                  "consume orders: rc %d, %d events: %s" % (rc, len(evs), err[-300:]))
            st, body = call(srv, "GET", "/v1/topics")
            names = {t["name"]: t for t in body.get("topics", [])}
            check(st == 200 and set(names) == {"events", "orders"}, "list: %d %r" % (st, body))
            check(names["events"]["source"] == "config", "events' source: %r" % names["events"])
            check(sum(names["orders"]["end_offsets"]) == 3000, "end offsets: %r" % names["orders"])
            st, body = call(srv, "GET", "/v1/topics/orders")
            check(st == 200 and body["name"] == "orders", "describe: %d %r" % (st, body))
            st, body = call(srv, "POST", "/v1/topics/orders", {"settings": {"overload": "reject"}})
            check(st == 200 and body["settings"]["overload"] == "reject", "alter: %d %r" % (st, body))
            for bad in ({"partitions": 8}, {"segment_bytes": "1MiB"}):
                st, body = call(srv, "POST", "/v1/topics/orders", {"settings": bad})
                check(st == 400 and "cannot change" in body.get("message", ""),
                      "alter %r: %d %r" % (bad, st, body))
            # A restart keeps the topic, its settings and its events.
            check(srv.stop() == 0, "sluiced did not stop cleanly")
            srv.start()
            st, body = call(srv, "GET", "/v1/topics/orders")
            check(st == 200 and body["settings"]["overload"] == "reject"
                  and sum(body["end_offsets"]) == 3000, "after restart: %d %r" % (st, body))
            rc, acks2, err = produce(a, srv, "orders", 2, 500)
            check(rc == 0 and len(acks2) == 500, "produce after restart: %s" % err[-300:])
            # Delete: gone from lookups, refused, its folder removed.
            st, body = call(srv, "DELETE", "/v1/topics/orders")
            check(st == 200, "delete: %d %r" % (st, body))
            st, body = call(srv, "GET", "/v1/topics/orders")
            check(st == 404, "describe after delete: %d %r" % (st, body))
            rc, acks3, err = produce(a, srv, "orders", 3, 10, timeout=10)
            check(not acks3 and "ERR_UNKNOWN_TOPIC" in err, "produce to a deleted topic: rc %d %r"
                  % (rc, err[-300:]))
            data = os.path.join(srv.dir, "data")
            check(not [d for d in os.listdir(data) if "orders" in d],
                  "the deleted topic's folder is still there: %r" % os.listdir(data))
            check(srv.stop() == 0, "sluiced did not stop cleanly")
            srv.start()
            st, body = call(srv, "GET", "/v1/topics/orders")
            check(st == 404, "the deleted topic came back: %d %r" % (st, body))
            st, body = call(srv, "POST", "/v1/topics", {"name": "orders", "partitions": 2})
            check(st == 201 and sum(body["end_offsets"]) == 0, "re-create: %d %r" % (st, body))
            rc, evs, err = consume(a, srv, "orders")
            check(rc == 0 and not evs, "a re-created topic holds %d old events" % len(evs))
            print("topics_lifecycle: created, produced 3,500, listed, altered, restarted, "
                  "deleted, re-created empty")
        finally:
            srv.kill()


def case_topics_errors(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd).start()
        try:
            cases = [
                ("POST", "/v1/topics", b"{not json", 400, "request body"),
                ("POST", "/v1/topics", {"name": "x", "colour": 1}, 400, "unknown field 'colour'"),
                ("POST", "/v1/topics", {"name": "x", "settings": {"overload": "maybe"}}, 400,
                 "overload"),
                ("POST", "/v1/topics", {"name": "x", "replicas": 3}, 400, "replicas"),
                ("POST", "/v1/topics", {"name": "../x"}, 400, "name"),
                ("POST", "/v1/topics", {"name": "events"}, 409, "exists"),
                ("POST", "/v1/topics/events", {"settings": {"overload": "drop"}}, 409, "config"),
                ("DELETE", "/v1/topics/events", None, 409, "config"),
                ("DELETE", "/v1/topics/nope", None, 404, "nope"),
                ("GET", "/v1/topics/nope", None, 404, "nope"),
            ]
            for method, path, body, want, words in cases:
                st, ans = call(srv, method, path, body)
                check(st == want and words in ans.get("message", ""),
                      "%s %s %r: %d %r (wanted %d and %r)" % (method, path, body, st, ans, want,
                                                              words))
            st, body = call(srv, "GET", "/v1/topics")
            check([t["name"] for t in body["topics"]] == ["events"], "a refused create left "
                  "something: %r" % body)
            check(srv.proc.poll() is None, "sluiced exited")
            print("topics_errors: %d refusals, each with its reason" % len(cases))
        finally:
            srv.kill()


def case_topics_kill9(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd).start()
        try:
            st, body = call(srv, "POST", "/v1/topics", {"name": "runtime1", "partitions": 40})
            check(st == 201, "create: %d %r" % (st, body))
            rc, acks, err = produce(a, srv, "runtime1", 4, 20000)
            check(rc == 0 and len(acks) == 20000, "produce: rc %d, %d acks: %s"
                  % (rc, len(acks), err[-300:]))
            # An alter and a delete answered before the kill hold after it.
            st, body = call(srv, "PATCH", "/v1/topics/runtime1",
                            {"settings": {"overload": "drop", "dedup_window": "0"}})
            check(st == 200, "alter: %d %r" % (st, body))
            st, body = call(srv, "POST", "/v1/topics", {"name": "gone", "partitions": 2})
            check(st == 201, "create gone: %d %r" % (st, body))
            st, body = call(srv, "DELETE", "/v1/topics/gone")
            check(st == 200, "delete gone: %d %r" % (st, body))
            srv.kill()
            srv.start()
            st, body = call(srv, "GET", "/v1/topics/runtime1")
            check(st == 200 and body["settings"]["overload"] == "drop"
                  and body["settings"]["dedup_window"] == "0",
                  "the alter after kill -9: %d %r" % (st, body))
            st, body = call(srv, "GET", "/v1/topics/gone")
            check(st == 404, "the deleted topic after kill -9: %d %r" % (st, body))
            rc, evs, err = consume(a, srv, "runtime1")
            got = {e["id"] for e in evs}
            lost = {x["id"] for x in acks} - got
            check(rc == 0 and not lost, "%d acked events lost after kill -9: %s"
                  % (len(lost), err[-300:]))
            check(len(evs) == len(got), "an event is stored twice")
            print("topics_kill9: 20,000 events acked by a runtime topic of 40 partitions, all "
                  "there after kill -9, with its alter; a deleted topic stays deleted")
        finally:
            srv.kill()


def case_topics_under_load(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd).start()
        try:
            n = 200000
            p = subprocess.Popen([a.sluice, "produce", "--print-acks", "--timeout", "120",
                                  "--server", srv.addr], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            import threading
            out = {}
            t = threading.Thread(target=lambda: out.update(zip(("o", "e"), p.communicate(lines(9, n)))))
            t.start()
            made = 0
            for k in range(6):
                st, body = call(srv, "POST", "/v1/topics", {"name": "t%d" % k, "partitions": 8})
                check(st == 201, "create t%d under load: %d %r" % (k, st, body))
                made += 1
                if k % 2:
                    st, body = call(srv, "DELETE", "/v1/topics/t%d" % (k - 1))
                    check(st == 200, "delete under load: %d %r" % (st, body))
                    st, body = call(srv, "PATCH", "/v1/topics/t%d" % k,
                                    {"settings": {"overload": "reject", "dedup_window": "1m"}})
                    check(st == 200, "alter under load: %d %r" % (st, body))
            inflight = p.poll() is None
            check(inflight, "the producer finished before the topic changes: they were not "
                  "made under load (raise n)")
            t.join(300)
            check(not t.is_alive(), "the producer did not finish")
            acks = parse_json_lines(out["o"].decode())
            check(p.returncode == 0 and len(acks) == n, "producer: rc %d, %d of %d acked: %s"
                  % (p.returncode, len(acks), n, out["e"].decode()[-300:]))
            st, body = call(srv, "GET", "/v1/topics")
            names = sorted(t["name"] for t in body["topics"])
            check(names == ["events", "t1", "t3", "t5"], "topics after: %r" % names)
            print("topics_under_load: %d topics created, 3 altered and 3 deleted while %d "
                  "events streamed, all acked" % (made, n))
        finally:
            srv.kill()


def case_topics_cli(a):
    """The same through `sluice topic`: create (with a dotted setting),
    list, describe, alter, a refused second create, delete; over the
    native port, then over HTTP."""
    for port in ("--server", "--http"):
        topics_cli_over(a, port)


def topics_cli_over(a, port):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd).start()
        try:
            addr = srv.addr if port == "--server" else "127.0.0.1:%d" % srv.http_port

            def cli(*args):
                return run([a.sluice, "topic"] + list(args) + [port, addr], timeout=60)
            rc, out, err = cli("create", "audit", "--partitions", "3",
                               "--set", "retention.bytes=1GiB", "--set", "overload=drop")
            check(rc == 0, "create: rc %d %s" % (rc, err))
            body = json.loads(out)
            check(body["settings"]["retention.bytes"] == "1GiB"
                  and body["settings"]["overload"] == "drop", "create printed %r" % body)
            rc, out, err = cli("create", "audit")
            check(rc == 1 and "exists" in err, "a second create: rc %d %r" % (rc, err))
            rc, out, err = cli("list")
            check(rc == 0 and "audit" in out and "events" in out, "list: rc %d %r" % (rc, out))
            rc, out, err = cli("alter", "audit", "--set", "overload=block")
            check(rc == 0 and json.loads(out)["settings"]["overload"] == "block",
                  "alter: rc %d %r %r" % (rc, out, err))
            rc, out, err = cli("describe", "audit")
            check(rc == 0 and json.loads(out)["partitions"] == 3, "describe: %r" % out)
            rc, out, err = cli("delete", "audit")
            check(rc == 0, "delete: rc %d %r" % (rc, err))
            rc, out, err = cli("describe", "audit")
            check(rc == 1 and "no topic named" in err, "describe after delete: %d %r" % (rc, err))
            print("topics_cli: create, list, alter, describe, delete through sluice topic %s"
                  % port)
        finally:
            srv.kill()


def case_topics_auto_create(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, extra=["auto_create_topics: true"]).start()
        try:
            n, k = 20000, 4
            procs = [subprocess.Popen([a.sluice, "produce", "--print-acks", "--timeout", "120",
                                       "--topic", "born", "--server", srv.addr],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE) for _ in range(k)]
            outs = [p.communicate(lines(20 + i, n), timeout=300) for i, p in enumerate(procs)]
            acks = []
            for p, (o, e) in zip(procs, outs):
                got = parse_json_lines(o.decode())
                check(p.returncode == 0 and len(got) == n, "producer: rc %d, %d of %d acked: %s"
                      % (p.returncode, len(got), n, e.decode()[-300:]))
                acks += got
            st, body = call(srv, "GET", "/v1/topics/born")
            check(st == 200 and body["source"] == "runtime" and body["partitions"] == 8,
                  "the created topic: %d %r" % (st, body))
            made = srv.stderr_text().count("topic born created by its first produce")
            check(made == 1, "created %d times by a produce (want 1)" % made)
            srv.kill()
            srv.start()
            rc, evs, err = consume(a, srv, "born")
            ids = [e["id"] for e in evs]
            check(rc == 0 and sorted(ids) == sorted(x["id"] for x in acks),
                  "after kill -9: %d stored, %d acked: %s" % (len(ids), len(acks), err[-300:]))
        finally:
            srv.kill()
    with Workdir() as wd:
        srv = Server(a.sluiced, wd).start()
        try:
            rc, acks, err = produce(a, srv, "born", 30, 10, timeout=20)
            check(rc != 0 and "ERR_UNKNOWN_TOPIC" in err,
                  "without auto_create_topics: rc %d, %d acks: %r" % (rc, len(acks), err[-300:]))
            st, _ = call(srv, "GET", "/v1/topics/born")
            check(st == 404, "a refused produce made the topic: %d" % st)
        finally:
            srv.kill()
    print("topics_auto_create: %d producers made topic born once with their first events, "
          "%d events acked and stored once, there after kill -9; off by default" % (k, k * n))


if __name__ == "__main__":
    sys.exit(main({"topics_lifecycle": case_topics_lifecycle, "topics_errors": case_topics_errors,
          "topics_kill9": case_topics_kill9, "topics_under_load": case_topics_under_load, "topics_cli": case_topics_cli,
          "topics_auto_create": case_topics_auto_create}))
