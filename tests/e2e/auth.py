"""Authentication (issue 23): a server with `auth: { token_file }`.

  auth_native     Hello without a token, or with a wrong one: ERR_AUTH with a
                  clear message, the connection closed, nothing stored, the
                  refusal counted in /metrics; with --token-file or
                  SLUICE_TOKEN every client command works.
  auth_http       every route but /healthz answers 401 (WWW-Authenticate:
                  Bearer) without `Authorization: Bearer TOKEN`, or with a
                  wrong one or another scheme; 200 with it; counted.
  auth_rotation   SIGHUP reads the token file again: a second token is
                  accepted beside the first, the first goes when its line
                  goes, and a bad file keeps the tokens as they were.
  open_ports      a listen address off loopback without `auth` is refused
                  at start and by --check-config, naming the key; with a
                  token or allow_unauthenticated it is accepted.

Usage: auth.py --sluiced P --sluice P CASE
"""

import json
import os
import re
import signal
import sys
import urllib.error

from harness import (Server, Workdir, check, http_open, main, new_token, run, wait_for_files,
                     write_token_file)


def event_id(i):
    return "%08x-0000-4000-8000-%012x" % (0xa1, i)


def event(i):
    return json.dumps({"type": "T", "aggregate": "k%d" % (i % 7), "id": event_id(i),
                       "data": {"i": i}})


def produce(a, srv, n, token_file=None, env_token=None, first=0):
    """n events from event(first) on: their ids differ from other calls'
    only with another `first` (the topic's dedup_window answers an id sent
    again as a duplicate)."""
    args = [a.sluice, "produce", "--print-acks", "--timeout", "5", "--server", srv.addr]
    if token_file:
        args += ["--token-file", token_file]
    env = dict(os.environ)
    env.pop("SLUICE_TOKEN", None)
    if env_token:
        env["SLUICE_TOKEN"] = env_token
    return run(args, ("\n".join(event(i) for i in range(first, first + n)) + "\n").encode(),
               env=env)


def metric(srv, port):
    with http_open("http://127.0.0.1:%d/metrics" % srv.http_port, token=srv.token) as r:
        text = r.read().decode()
    m = re.search(r'^sluice_auth_failures_total\{port="%s"\} (\d+)$' % port, text, re.M)
    check(m, "no sluice_auth_failures_total{port=%s} in /metrics" % port)
    return int(m.group(1))


def http_status(url, token=None, header=None):
    """(status, headers, body) of a GET, with the given Authorization."""
    import urllib.request
    req = urllib.request.Request(url)
    if header is not None:
        req.add_header("Authorization", header)
    elif token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def case_auth_native(a):
    with Workdir() as wd, Server(a.sluiced, wd, auth=True) as srv:
        rc, out, err = produce(a, srv, 3)
        check(rc != 0 and "ERR_AUTH" in err and "requires a token" in err,
              "no token: rc %d %r" % (rc, err[-300:]))
        rc, out, err = produce(a, srv, 3, env_token="x" * 32)
        check(rc != 0 and "ERR_AUTH" in err and "wrong token" in err,
              "wrong token: rc %d %r" % (rc, err[-300:]))
        # A prefix of the token and the token with a byte more are wrong too.
        for bad in (srv.token[:-1], srv.token + "0"):
            rc, out, err = produce(a, srv, 1, env_token=bad)
            check(rc != 0 and "wrong token" in err, "%r accepted" % bad)
        check(metric(srv, "native") == 4, "native refusals not counted")
        rc, out, err = produce(a, srv, 5, token_file=srv.token_file)
        check(rc == 0 and len(out.splitlines()) == 5, "--token-file: rc %d %r" % (rc, err))
        rc, out, err = produce(a, srv, 5, env_token=srv.token, first=5)
        check(rc == 0 and len(out.splitlines()) == 5, "SLUICE_TOKEN: rc %d %r" % (rc, err))
        env = dict(os.environ)
        env.pop("SLUICE_TOKEN", None)
        rc, out, err = run([a.sluice, "consume", "--server", srv.addr], env=env)
        check(rc != 0 and "requires a token" in err, "consume without token: %r" % err)
        rc, out, err = run([a.sluice, "consume", "--server", srv.addr, "--token-file",
                            srv.token_file], env=env)
        check(rc == 0 and len(out.splitlines()) == 10, "consume: rc %d, %d events, %r"
              % (rc, len(out.splitlines()), err))
        rc, out, err = run([a.sluice, "status", "--server", srv.addr, "--http",
                            "127.0.0.1:%d" % srv.http_port, "--token-file", srv.token_file],
                           env=env)
        check(rc == 0 and "10 events stored" in out and "cannot" not in out,
              "status: rc %d %r %r" % (rc, out, err))
        check(srv.proc.poll() is None, "sluiced exited")


def case_auth_http(a):
    with Workdir() as wd, Server(a.sluiced, wd, auth=True,
                                 projections=[("latest", "latest", "events")]) as srv:
        base = "http://127.0.0.1:%d" % srv.http_port
        before = metric(srv, "http")
        refused = 0
        for path in ("/", "/metrics", "/v1/status", "/v1/projections/latest/k1", "/nope"):
            for header in (None, "Bearer " + "y" * 32, "Basic " + srv.token, srv.token,
                           "Bearer"):
                st, hdrs, body = http_status(base + path, header=header)
                check(st == 401, "%s with %r: %d" % (path, header, st))
                check(hdrs.get("WWW-Authenticate", "").startswith("Bearer"),
                      "no WWW-Authenticate on %s" % path)
                check(json.loads(body)["error"] == "unauthorized", body)
                refused += 1
        st, _, body = http_status(base + "/healthz")
        check(st == 200 and body == b"ok\n", "/healthz without a token: %d" % st)
        for path in ("/", "/metrics", "/v1/status"):
            st, _, _ = http_status(base + path, token=srv.token)
            check(st == 200, "%s with the token: %d" % (path, st))
        st, _, _ = http_status(base + "/v1/projections/latest/k1", token=srv.token)
        check(st == 404, "a query with the token reaches the projection: %d" % st)
        check(metric(srv, "http") - before == refused, "http refusals counted %d, made %d"
              % (metric(srv, "http") - before, refused))
        env = dict(os.environ)
        env.pop("SLUICE_TOKEN", None)
        rc, out, err = run([a.sluice, "query", "latest", "k1", "--http",
                            "127.0.0.1:%d" % srv.http_port], env=env)
        check(rc == 1 and ("401" in err or "requires" in err), "query without token: %r" % err)
        rc, out, err = produce(a, srv, 7, token_file=srv.token_file)
        check(rc == 0, "produce: %r" % err)
        # Read your writes: the ack of k1's event (event 1) is the token.
        mine = [json.loads(x) for x in out.splitlines() if event_id(1) in x]
        check(len(mine) == 1, "no ack for event 1: %r" % out)
        for ack in mine:
            rc, q, err = run([a.sluice, "query", "latest", "k1", "--min-offset", ack["token"],
                              "--http", "127.0.0.1:%d" % srv.http_port, "--token-file",
                              srv.token_file], env=env)
            check(rc == 0 and json.loads(q)["aggregate"] == "k1", "query: rc %d %r" % (rc, err))


def case_auth_rotation(a):
    with Workdir() as wd, Server(a.sluiced, wd, auth=True) as srv:
        old, new = srv.token, new_token()

        def hup(tokens, said):
            if tokens is not None:
                write_token_file(srv.token_file, *tokens)
            n = srv.stderr_text().count(said)
            srv.proc.send_signal(signal.SIGHUP)
            check(wait_for_files(srv.dir, lambda: srv.stderr_text().count(said) > n, 30),
                  "sluiced did not say %r after SIGHUP: %r" % (said, srv.stderr_text()))

        def works(tok):
            rc, out, err = produce(a, srv, 1, env_token=tok)
            return rc == 0

        check(works(old) and not works(new), "before rotation")
        hup([old, new], "auth tokens reloaded")
        check(works(old) and works(new), "during rotation both must work")
        hup([new], "auth tokens reloaded")
        check(works(new) and not works(old), "after rotation only the new one")
        os.chmod(srv.token_file, 0o644)
        hup(None, "auth not reloaded")
        check(works(new) and not works(old), "a bad file must keep the tokens")
        check("group or others" in srv.stderr_text(), srv.stderr_text()[-300:])


def case_open_ports(a):
    with Workdir() as wd:
        tok = os.path.join(wd, "tok")
        write_token_file(tok, new_token())
        cases = [
            ("listen: { native: 0.0.0.0:0, http: 127.0.0.1:0 }\n", "listen.native"),
            ("listen: { native: 127.0.0.1:0, http: '[::]:0' }\n", "listen.http"),
            ("listen: { native: 127.0.0.1:0, http: 10.1.2.3:0 }\n", "listen.http"),
        ]
        for i, (yaml, key) in enumerate(cases):
            path = os.path.join(wd, "c%d.yaml" % i)
            with open(path, "w") as f:
                f.write(yaml)
            rc, out, err = run([a.sluiced, "--check-config", path])
            check(rc != 0 and key in err and "not a loopback address" in err,
                  "%r accepted: rc %d %r" % (yaml, rc, err))
            # sluiced itself refuses to start, before binding anything.
            rc, out, err = run([a.sluiced, "--config", path, "--data-dir",
                                os.path.join(wd, "d%d" % i)], timeout=30)
            check(rc != 0 and "not a loopback address" in err, "started: %r" % err)
            for extra in ("auth: { token_file: %s }\n" % tok,
                          "auth: { allow_unauthenticated: true }\n"):
                with open(path, "w") as f:
                    f.write(yaml + extra)
                rc, out, err = run([a.sluiced, "--check-config", path])
                check(rc == 0, "%r refused: %r" % (yaml + extra, err))
        path = os.path.join(wd, "lo.yaml")
        with open(path, "w") as f:
            f.write("listen: { native: 127.0.0.2:0, http: '[::1]:0' }\n")
        rc, out, err = run([a.sluiced, "--check-config", path])
        check(rc == 0, "loopback refused: %r" % err)


if __name__ == "__main__":
    sys.exit(main({"auth_native": case_auth_native, "auth_http": case_auth_http,
                   "auth_rotation": case_auth_rotation, "open_ports": case_open_ports}))
