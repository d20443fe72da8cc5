#!/usr/bin/env python3
"""Slow and greedy clients against the real sluiced (issue 23, item 2).

Cases:
  slowloris_health    300 connections from 127.0.0.3 each send half a request
                      header and wait, with http_max_connections 256 (the old
                      fixed size); meanwhile a health checker on 127.0.0.2
                      gets 200 from /healthz and /metrics on every try, other
                      requests get 503 with Retry-After, and every attacker
                      connection is closed by the header timeout (counted in
                      /metrics).
  over_limit_503      past max_connections_per_ip and past
                      http_max_connections a new request gets 503 with
                      Retry-After naming the limit; /healthz is still 200; a
                      slot freed is served again.
  idle_native         10,000 silent native connections from ten addresses
                      (127.0.1.1-10), plus more from one of them than
                      max_connections_per_ip allows (refused with ERR_LIMIT
                      naming the address); a producer on 127.0.0.1 produces
                      and is acked.
  parallel_600        600 clients connecting at once, 3,000 queries in all,
                      each on a new connection: every one answered 200.

Every socket is closed and the server stopped also when a check fails
(try/finally and the Server context manager); waits poll a condition with a
deadline, never sleep.
"""

import os
import re
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Failure, Server, Workdir, check, main, run  # noqa: E402

ATTACKER = "127.0.0.3"
CHECKER = "127.0.0.2"


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        check(hard == resource.RLIM_INFINITY or hard >= need,
              "this test needs %d open files; the hard limit is %d" % (need, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def dial(port, src, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
    except BaseException:
        s.close()
        raise
    return s


def read_response(s, deadline):
    """Reads one HTTP response from s: (status, headers dict, body bytes),
    or (None, {}, b"") when the server closed without one."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            c = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            c = b""
        if not c:
            return None, {}, buf
        buf += c
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        c = s.recv(65536)
        if not c:
            break
        body += c
    return status, headers, body


def request(port, path, src, timeout=5.0, keep=False):
    """GET path on a new connection from src: (status, headers, body);
    with keep=True also the open socket (the caller closes it)."""
    s = dial(port, src, timeout)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: sluice\r\n\r\n" % path.encode())
        out = read_response(s, time.monotonic() + timeout)
    except BaseException:
        s.close()
        raise
    if keep:
        return out + (s,)
    s.close()
    return out


def metric(port, name, src=CHECKER):
    status, _, body = request(port, "/metrics", src)
    check(status == 200, "/metrics answered %s" % status)
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    check(m, "no %s in /metrics" % name)
    return int(m.group(1))


def wait_until(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        check(time.monotonic() < deadline, "timed out after %.0f s waiting for %s" % (timeout, what))


def closed_by_server(s):
    """True once the server closed s (EOF or reset), without blocking."""
    s.setblocking(False)
    try:
        while True:
            c = s.recv(65536)
            if not c:
                return True
    except BlockingIOError:
        return False
    except (ConnectionResetError, OSError):
        return True


def slowloris_health(args):
    raise_nofile(2048)
    header_timeout = 4
    extra = ["limits: { http_max_connections: 256, http_header_timeout: %ds }" % header_timeout]
    attackers = []
    with Workdir() as w, Server(args.sluiced, w, extra=extra) as srv:
        port = srv.http_port
        try:
            for _ in range(300):
                s = dial(port, ATTACKER)
                s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: slow")  # no end of header
                attackers.append(s)
            t_attack = time.monotonic()
            # Every attacker connection is taken in: 256 admitted, 8 spare
            # slots, the rest answered 503 at once.
            wait_until("the 300 attacker connections",
                       lambda: metric(port, "sluice_http_connections") >= 300 - 40, 10)
            # Health checks while the attack holds: each must be 200.
            ok = tries = 0
            while time.monotonic() < t_attack + header_timeout - 1.5:
                path = "/healthz" if tries % 2 == 0 else "/metrics"
                status, _, body = request(port, path, CHECKER)
                tries += 1
                check(status == 200, "%s answered %s during the attack (try %d)" % (
                    path, status, tries))
                ok += 1
            check(ok >= 10, "only %d health checks in the window" % ok)
            # Anything else is refused with a hint, not dropped.
            status, hdr, body = request(port, "/v1/status", CHECKER)
            check(status == 503, "/v1/status answered %s during the attack" % status)
            check(hdr.get("retry-after") == "1", "503 without Retry-After: %r" % hdr)
            check(b"http_max_connections" in body, "503 body: %r" % body)
            # The header timeout ends every attacker connection.
            wait_until("the header timeout to close every attacker connection",
                       lambda: all(closed_by_server(s) for s in attackers),
                       header_timeout + 5)
            timeouts = metric(port, "sluice_http_header_timeouts_total")
            check(timeouts >= 256, "header timeouts counted: %d" % timeouts)
            served = metric(port, "sluice_http_over_limit_served_total")
            check(served >= ok, "over-limit health answers counted: %d of %d" % (served, ok))
            refused = metric(port, 'sluice_http_refused_total{limit="http_max_connections"}')
            check(refused >= 1, "refusals counted: %d" % refused)
            print("slowloris: %d health checks answered 200 of %d while 300 half-open "
                  "connections were held; %d header timeouts, %d refused" % (
                      ok, tries, timeouts, refused))
            # And with the attack over, the port is back to normal.
            status, _, _ = request(port, "/v1/status", CHECKER)
            check(status == 200, "/v1/status after the attack: %s" % status)
        finally:
            for s in attackers:
                s.close()
        check(srv.stop() == 0, "sluiced did not exit cleanly")


def over_limit_503(args):
    extra = ["limits: { http_max_connections: 4, max_connections_per_ip: 3 }"]
    held = []
    with Workdir() as w, Server(args.sluiced, w, extra=extra) as srv:
        port = srv.http_port
        try:
            # Three idle keep-alive connections from 127.0.0.1: its share.
            for _ in range(3):
                st, _, _, s = request(port, "/v1/status", "127.0.0.1", keep=True)
                held.append(s)
                check(st == 200, "keep-alive request answered %s" % st)
            st, hdr, body = request(port, "/v1/status", "127.0.0.1")
            check(st == 503, "a 4th connection from 127.0.0.1 got %s" % st)
            check(hdr.get("retry-after") == "1", "no Retry-After: %r" % hdr)
            check(hdr.get("connection", "").lower() == "close", "not closed: %r" % hdr)
            check(b"too many connections from 127.0.0.1: 3 (limits.max_connections_per_ip)"
                  in body, "503 body: %r" % body)
            # Another address takes the last slot, then the port is full.
            st, _, _, s = request(port, "/v1/status", "127.0.0.4", keep=True)
            held.append(s)
            check(st == 200, "127.0.0.4 answered %s" % st)
            st, hdr, body = request(port, "/v1/status", CHECKER)
            check(st == 503, "past http_max_connections: %s" % st)
            check(hdr.get("retry-after") == "1", "no Retry-After: %r" % hdr)
            check(b"too many connections: 4 (limits.http_max_connections)" in body,
                  "503 body: %r" % body)
            st, _, body = request(port, "/healthz", CHECKER)
            check(st == 200 and body == b"ok\n", "/healthz past the limit: %s %r" % (st, body))
            check(metric(port, 'sluice_http_refused_total{limit="http_max_connections"}') == 1,
                  "refusals by http_max_connections")
            check(metric(port, 'sluice_http_refused_total{limit="max_connections_per_ip"}') == 1,
                  "refusals by max_connections_per_ip")
            # A slot freed is served again (the close takes a moment to be seen).
            held.pop().close()
            wait_until("a freed slot",
                       lambda: request(port, "/v1/status", CHECKER)[0] == 200, 10)
        finally:
            for s in held:
                s.close()
        check(srv.stop() == 0, "sluiced did not exit cleanly")


def idle_native(args):
    per_addr, n_addr = 1000, 10
    raise_nofile(per_addr * n_addr + 1000)
    extra = ["limits: { max_connections: 10100, max_connections_per_ip: 1024, "
             "handshake_timeout: 120s }"]
    socks = []
    with Workdir() as w, Server(args.sluiced, w, extra=extra) as srv:
        try:
            t0 = time.monotonic()
            for a in range(1, n_addr + 1):
                for _ in range(per_addr + (30 if a == 1 else 0)):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.bind(("127.0.1.%d" % a, 0))
                    s.setblocking(False)
                    try:
                        s.connect(("127.0.0.1", srv.port))
                    except BlockingIOError:
                        pass
            want = per_addr * n_addr + 24
            wait_until("%d native connections held" % want,
                       lambda: metric(srv.http_port, "sluice_connections") >= want, 60)
            refused = wait_until(
                "the refusals past max_connections_per_ip",
                lambda: metric(srv.http_port,
                               'sluice_connections_refused_total{limit="max_connections_per_ip"}')
                >= 6 and metric(srv.http_port,
                                'sluice_connections_refused_total{limit="max_connections_per_ip"}'),
                30)
            check(refused == 6, "refused %d connections of 127.0.1.1, want 6" % refused)
            check(metric(srv.http_port, "sluice_connections") == want,
                  "connections held: want %d" % want)
            # The refused ones were told why: an Error frame naming the address.
            told = 0
            for s in socks[:per_addr + 30]:
                try:
                    data = s.recv(4096)
                except (BlockingIOError, OSError):
                    continue
                if b"too many connections from 127.0.1.1: 1024" in data:
                    told += 1
            check(told == 6, "%d refused connections were told why, want 6" % told)
            print("idle_native: %d idle connections held in %.1f s, 6 refused" % (
                want, time.monotonic() - t0))
            # A producer on another address is served while they are held.
            lines = "".join('{"type":"T","aggregate":"k%d"}\n' % i for i in range(100))
            rc, out, err = run([args.sluice, "produce", "--print-acks", "--timeout", "30",
                                "--server", srv.addr], stdin=lines.encode(), timeout=60)
            check(rc == 0, "produce failed while 10,000 connections were idle: %s" % err)
            check(len(out.splitlines()) == 100, "%d acks of 100" % len(out.splitlines()))
        finally:
            for s in socks:
                s.close()
        check(srv.stop() == 0, "sluiced did not exit cleanly")


def parallel_600(args):
    raise_nofile(4096)
    clients, total = 600, 3000
    with Workdir() as w, Server(args.sluiced, w,
                                projections=[("counter", "counter", "events")]) as srv:
        rc, _, err = run([args.sluice, "produce", "--server", srv.addr],
                         stdin=b'{"type":"T","aggregate":"a"}\n')
        check(rc == 0, "produce: %s" % err)
        path = "/v1/projections/counter/type:T"
        wait_until("the projection to apply the event",
                   lambda: request(srv.http_port, path, "127.0.0.1")[0] == 200, 30)
        req = b"GET %s HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n" % path.encode()
        sel = selectors.DefaultSelector()
        results = {}
        started = [0]

        def start():
            if started[0] >= total:
                return
            started[0] += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", srv.http_port))
            except BlockingIOError:
                pass
            sel.register(s, selectors.EVENT_WRITE, {"buf": b"", "sent": False})

        def finish(s, outcome):
            results[outcome] = results.get(outcome, 0) + 1
            sel.unregister(s)
            s.close()
            start()

        try:
            for _ in range(clients):  # all 600 connect at once
                start()
            deadline = time.monotonic() + 45
            while sel.get_map():
                check(time.monotonic() < deadline, "not done in 45 s: %r" % results)
                for key, _ in sel.select(timeout=1):
                    s, d = key.fileobj, key.data
                    if not d["sent"]:
                        try:
                            s.sendall(req)
                        except OSError as e:
                            finish(s, "send: " + e.strerror)
                            continue
                        d["sent"] = True
                        sel.modify(s, selectors.EVENT_READ, d)
                        continue
                    try:
                        c = s.recv(65536)
                    except OSError as e:
                        finish(s, "recv: " + e.strerror)
                        continue
                    d["buf"] += c
                    if not c:
                        finish(s, d["buf"][9:12].decode() if d["buf"] else "closed unanswered")
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
        print("parallel_600: %r" % results)
        check(results == {"200": total}, "not every query answered 200: %r" % results)
        check(srv.stop() == 0, "sluiced did not exit cleanly")


if __name__ == "__main__":
    sys.exit(main({
        "slowloris_health": slowloris_health,
        "over_limit_503": over_limit_503,
        "idle_native": idle_native,
        "parallel_600": parallel_600,
    }))
