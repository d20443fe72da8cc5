"""Drives the real sluiced and sluice processes for the e2e tests.

Every server gets its own temporary folder (config, data) and listens on
127.0.0.1 with port 0, so tests run in parallel with each other and with
anything else on the machine. A server is started by waiting for its
"sluiced: ready" line on stdout (the port comes from the "native" line before
it), never by sleeping, and is always stopped at the end: SIGTERM, then
SIGKILL if it does not exit in time.
"""

import ctypes
import ctypes.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30

# SLUICE_E2E_AUTH=1 runs a test's servers with `auth` (a fresh token file
# each) and hands the token to every client the test starts through
# SLUICE_TOKEN: the same cases, through an authenticated server.
E2E_AUTH = os.environ.get("SLUICE_E2E_AUTH") == "1"


def new_token():
    return os.urandom(24).hex()


def write_token_file(path, *tokens):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(t + "\n" for t in tokens))


def http_open(url, timeout=30, token=None, method=None):
    """urllib's urlopen with `Authorization: Bearer` when a token is given or
    SLUICE_TOKEN is set (the server then has auth)."""
    import urllib.request
    token = token or os.environ.get("SLUICE_TOKEN")
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    return urllib.request.urlopen(req, timeout=timeout)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class _Process:
    """A process a test starts (start() returns self) and always kills: on
    kill(), and at the end of a `with` block, failed or not."""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
        return False


class Server(_Process):
    """One sluiced process with its own folder."""

    def __init__(self, sluiced, workdir, port=0, topics=None, name="srv", projections=None,
                 auth=None, extra=None, topic_keys=None, cores=2, http_port=0):
        self.sluiced = sluiced
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.port = None
        self.http_port = None
        self.proc = None
        self.stdout_lines = []
        self.stderr_path = os.path.join(self.dir, "stderr.txt")
        topics = topics or [("events", 8)]
        cfg = [
            "data_dir: %s" % os.path.join(self.dir, "data"),
            "cores: %d" % cores,
            "listen: { native: 127.0.0.1:%d, http: 127.0.0.1:%d }" % (port, http_port),
            "topics:",
        ]
        for t, n in topics:
            cfg += ["  - name: %s" % t, "    partitions: %d" % n]
            cfg += ["    " + k for k in (topic_keys or [])]
        if projections:
            cfg += ["projections:"]
            for pname, plugin, topic in projections:
                cfg += ["  - { name: %s, plugin: %s, from: %s }" % (pname, plugin, topic)]
        cfg += extra or []  # more top-level lines, e.g. a limits section
        # auth: a token of its own (True), or none unless SLUICE_E2E_AUTH.
        if auth is None and E2E_AUTH:
            auth = True
        self.token = None
        if auth:
            self.token = os.environ.get("SLUICE_TOKEN") if E2E_AUTH else None
            self.token = self.token or new_token()
            self.token_file = os.path.join(self.dir, "token")
            write_token_file(self.token_file, self.token)
            cfg += ["auth: { token_file: %s }" % self.token_file]
            if E2E_AUTH:
                os.environ["SLUICE_TOKEN"] = self.token
        self.config = os.path.join(self.dir, "sluice.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")

    def start(self):
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [self.sluiced, "--config", self.config],
            stdout=subprocess.PIPE, stderr=self.stderr, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        buf = b""
        while True:
            left = deadline - time.monotonic()
            check(left > 0, "sluiced not ready after %d s: %r" % (READY_TIMEOUT_S, buf))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise Failure("sluiced exited before ready (rc %s): %s\n%s" % (
                    self.proc.wait(), buf.decode(errors="replace"), self.stderr_text()))
            buf += chunk
            lines = buf.decode(errors="replace").splitlines()
            m = re.search(r"native [0-9.]+:(\d+)", buf.decode(errors="replace"))
            if m:
                self.port = int(m.group(1))
            m = re.search(r"http [0-9.]+:(\d+)", buf.decode(errors="replace"))
            if m:
                self.http_port = int(m.group(1))
            if any(line.strip() == "sluiced: ready" for line in lines):
                self.stdout_lines = lines
                break
        check(self.port, "no port in sluiced's output: %r" % buf)
        return self

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stderr_text(self):
        try:
            with open(self.stderr_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        """Signals the server and waits; returns its exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("sluiced did not exit within %d s of signal %d" % (STOP_TIMEOUT_S, sig))
        finally:
            self.proc.stdout.close()
            self.stderr.close()
        return rc



def free_port():
    """A port nothing listens on now (for programs that cannot take port 0)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Etcd(_Process):
    """One etcd member (Debian's etcd-server) on loopback, in its own folder;
    ready when it logs that it serves clients (read from its stderr, never a
    sleep). Always killed at the end."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "etcd")
        self.port = free_port()
        self.peer = free_port()
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        peer = "http://127.0.0.1:%d" % self.peer
        exe = shutil.which("etcd") or "/usr/bin/etcd"
        self.log_path = self.dir + ".log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [exe, "--name", "t", "--data-dir", self.dir, "--listen-client-urls", self.url,
             "--advertise-client-urls", self.url, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", "t=" + peer,
             "--log-level", "info"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        buf = b""
        while b"ready to serve client requests" not in buf:
            left = deadline - time.monotonic()
            check(left > 0, "etcd not ready after %d s: %r" % (READY_TIMEOUT_S, buf[-2000:]))
            if not select.select([self.proc.stderr], [], [], left)[0]:
                continue
            chunk = os.read(self.proc.stderr.fileno(), 65536)
            check(chunk, "etcd exited before ready: %r" % buf[-2000:])
            buf += chunk
        self.log.write(buf)
        # Keep draining its log so that it never blocks on a full pipe.
        import threading

        def drain():
            while True:
                chunk = os.read(self.proc.stderr.fileno(), 65536)
                if not chunk:
                    return
                self.log.write(chunk)
        self.drainer = threading.Thread(target=drain, daemon=True)
        self.drainer.start()
        return self



_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_IN_EVENTS = 0x2 | 0x8 | 0x80 | 0x100  # IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE


def wait_for_files(folder, done, timeout):
    """Calls done() whenever a file directly in `folder` (a path, or a list of
    them) is written, created or moved in, until it returns true: True, or
    False after `timeout` seconds. The wake-ups are the kernel's (inotify),
    never a sleep; done() is first called once the watches are in place, so
    no write is missed."""
    fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    check(fd >= 0, "inotify_init1: %s" % os.strerror(ctypes.get_errno()))
    try:
        for f in [folder] if isinstance(folder, str) else folder:
            wd = _LIBC.inotify_add_watch(fd, os.fsencode(f), _IN_EVENTS)
            check(wd >= 0, "inotify_add_watch %s: %s" % (f, os.strerror(ctypes.get_errno())))
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if select.select([fd], [], [], left)[0]:
                try:
                    while os.read(fd, 65536):
                        pass
                except BlockingIOError:
                    pass
        return True
    finally:
        os.close(fd)


def run(cmd, stdin=b"", timeout=120, env=None):
    """Runs a command to completion: (rc, stdout text, stderr text)."""
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


TSAN_WARNING = "WARNING: ThreadSanitizer"


def tsan_reports(path):
    """ThreadSanitizer's reports in the servers' stderr files under `path`
    (stderr.txt, and stderr.N.txt kept aside at a restart): a list of
    (file, its first report), empty when there are none. A TSan build of
    sluiced keeps running after a report (halt_on_error=0, the default), so
    a case runs to its end and the work folder says everything TSan saw."""
    found = []
    for root, _, files in os.walk(path):
        for f in sorted(files):
            if not re.match(r"stderr(\.\d+)?\.txt$", f):
                continue
            with open(os.path.join(root, f), errors="replace") as x:
                text = x.read()
            at = text.find(TSAN_WARNING)
            if at >= 0:
                end = text.find("SUMMARY: ThreadSanitizer", at)
                end = text.find("\n", end) if end >= 0 else at + 3000
                found.append((os.path.relpath(os.path.join(root, f), path),
                              text.count(TSAN_WARNING), text[at:end]))
    return found


class Workdir:
    """A temporary folder for one case: removed when the case passes, kept
    when it fails. A server's ThreadSanitizer report anywhere in it fails
    the case (tests/e2e under the TSan build, ./ops/test's tsan phase)."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="sluice-e2e-")
        return self.path

    def __exit__(self, exc_type, *rest):
        races = tsan_reports(self.path)
        for f, n, first in races:
            print("%s: %d ThreadSanitizer report(s), the first:\n%s" % (f, n, first),
                  file=sys.stderr)
        if exc_type is None and not races:
            shutil.rmtree(self.path, ignore_errors=True)
            return False
        print("kept %s for inspection" % self.path, file=sys.stderr)
        if exc_type is None:
            raise Failure("ThreadSanitizer reports in %s" % ", ".join(f for f, _, _ in races))
        return False


UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_json_lines(text):
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except ValueError as e:
            raise Failure("output line %d is not JSON (%s): %r" % (i, e, line))
    return out


def main(cases):
    """cases: name -> fn(args). Usage: script --sluiced P --sluice P [...] CASE"""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluiced", required=True)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--build-dir")
    ap.add_argument("--cc")
    ap.add_argument("--faultfs", help="tests/faultfs binary, for cases that need it")
    ap.add_argument("case", choices=sorted(cases))
    args = ap.parse_args()
    start = time.monotonic()
    try:
        cases[args.case](args)
    except Failure as e:
        print("FAIL %s: %s" % (args.case, e), file=sys.stderr)
        print("0 passed, 1 failed", file=sys.stderr)
        return 1
    print("PASS %s (%.2f s)" % (args.case, time.monotonic() - start))
    return 0
