"""The fault harness's world: network namespaces, etcd and sluiced nodes.

Layout (every name starts with the run's prefix, `slfh-<pid>-<4 hex>`):

  PREFIX-hub    the bridge `br0` (10.199.S.1/24) and one veth end per member;
                the harness itself and its clients live here (setns), so
                they reach every node and are never partitioned.
  PREFIX-e1..3  one etcd member each, eth0 = 10.199.S.2..4
  PREFIX-n1..5  one sluiced each, eth0 = 10.199.S.11..15, listening on
                :7400 (native) and :7480 (HTTP) with `auth` (a token file
                shared by the nodes; clients get it in SLUICE_TOKEN)

veth pairs are made inside the hub (`ip -n hub link add ... peer ... netns
member`), so nothing is ever created in the host's namespace and two runs
(ctest runs tests in parallel) never share a name, an address or a port.
A partition is an iptables DROP rule inside a node's namespace (nemesis.py).

Each node's data folder is a tmpfs of its own (the full-disk fault fills it).

Cleanup (Topology.cleanup, idempotent; called from `finally`, atexit and
the signal handlers run.py installs) kills every process started here and
every process left in our namespaces, unmounts our tmpfs mounts and deletes
our namespaces. sweep_stale() does the same for the leftovers of a killed
run of this harness: a namespace or mount whose prefix names a pid that is
no longer a live fault harness.
"""

import ctypes
import ctypes.util
import json
import os
import re
import select
import signal
import subprocess
import tempfile
import time
import urllib.request
import base64

PREFIX_RE = re.compile(r"^slfh-(\d+)-[0-9a-f]{4}")
CLONE_NEWNET = 0x40000000
NATIVE_PORT = 7400
HTTP_PORT = 7480
ETCD_PORT = 2379
ETCD_PEER_PORT = 2380
READY_TIMEOUT = 30
# After kill -9 the port stays bound for 10-30 ms (CLUSTER-NOTES.md): a
# restart that fails to bind is tried again, at most this many times.
BIND_RETRIES = 100
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_IN_EVENTS = 0x2 | 0x8 | 0x80 | 0x100  # IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE


class Failure(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def sh(*cmd, check=True, timeout=30):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    if check and p.returncode != 0:
        raise Failure("%s: rc %d: %s" % (" ".join(cmd), p.returncode,
                                          p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode(errors="replace")


def wait_for_files(folders, done, timeout):
    """done() whenever a file directly in one of `folders` is written, created
    or moved in (inotify), until it returns something true (returned), or
    None after `timeout` seconds. done() runs once after the watches are in
    place, so no write is missed."""
    fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise Failure("inotify_init1: %s" % os.strerror(ctypes.get_errno()))
    try:
        for f in [folders] if isinstance(folders, str) else folders:
            if _LIBC.inotify_add_watch(fd, os.fsencode(f), _IN_EVENTS) < 0:
                raise Failure("inotify_add_watch %s: %s" % (f, os.strerror(ctypes.get_errno())))
        deadline = time.monotonic() + timeout
        while True:
            v = done()
            if v:
                return v
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            # A bound on each wake-up as well: done() may depend on more than
            # the files (an HTTP answer), so it is asked again at least
            # every second even when nothing was written.
            if select.select([fd], [], [], min(left, 1.0))[0]:
                try:
                    while os.read(fd, 65536):
                        pass
                except BlockingIOError:
                    pass
    finally:
        os.close(fd)


def proc_start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def is_live_harness(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return b"tests/cluster/" in f.read() or pid == os.getpid()
    except OSError:
        return False


def sweep_stale():
    """Removes what a killed run of this harness left: namespaces and tmpfs
    mounts whose name carries the prefix of a pid that is not a live fault
    harness (this one's prefix shape exactly, nobody else's). Returns what
    it removed."""
    removed = []
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        m = PREFIX_RE.match(name)
        if not m or is_live_harness(int(m.group(1))):
            continue
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            if pid.isdigit() and int(pid) != os.getpid():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        sh("ip", "netns", "del", name, check=False)
        removed.append("netns " + name)
    tmp = tempfile.gettempdir()
    with open("/proc/self/mounts") as f:
        mounts = [x.split()[1] for x in f]
    for mp in sorted(mounts, key=len, reverse=True):
        if not mp.startswith(tmp + "/"):
            continue
        m = PREFIX_RE.match(mp[len(tmp) + 1:])
        if m and not is_live_harness(int(m.group(1))):
            sh("umount", "-l", mp, check=False)
            removed.append("mount " + mp)
    return removed


class Proc:
    """A process started in a namespace; its stdout and stderr in files."""

    def __init__(self, popen, out_path, err_path):
        self.popen = popen
        self.pid = popen.pid
        self.out_path = out_path
        self.err_path = err_path
        self.stopped = False

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self):
        if self.alive():
            self.signal(signal.SIGKILL)
            self.signal(signal.SIGCONT)
            self.popen.wait(timeout=30)


class Topology:
    def __init__(self, args, n_nodes=3, n_etcd=1, acks="quorum", partitions=3,
                 session_ttl="2s", lag="2s", disk_mb=256, workdir=None):
        self.a = args
        self.prefix = "slfh-%d-%s" % (os.getpid(), os.urandom(2).hex())
        self.wd = workdir or tempfile.mkdtemp(prefix=self.prefix + "-")
        self.subnet = "10.199.%d" % (1 + int.from_bytes(os.urandom(1), "big") % 254)
        self.nodes = ["n%d" % (i + 1) for i in range(n_nodes)]
        self.etcds = ["e%d" % (i + 1) for i in range(n_etcd)]
        self.acks = acks
        self.partitions = partitions
        self.session_ttl = session_ttl
        self.lag = lag
        self.disk_mb = disk_mb
        self.namespaces = []
        self.mounts = []
        self.procs = {}  # member -> Proc (the current one)
        self.all_procs = []
        self.orig_netns = None
        self.cleaned = False
        self.cluster_name = "faults"
        self.token = os.urandom(24).hex()
        self.token_file = os.path.join(self.wd, "token")
        self.gen = {}
        self.skew = {}  # node -> its clock's skew in seconds
        self.skew_lib = None  # the preload library of the skew fault

    # -- addresses -------------------------------------------------------
    def ip(self, member):
        if member.startswith("e"):
            return "%s.%d" % (self.subnet, 1 + int(member[1:]))
        return "%s.%d" % (self.subnet, 10 + int(member[1:]))

    def ns(self, member):
        return "%s-%s" % (self.prefix, member)

    def native(self, n):
        return "%s:%d" % (self.ip(n), NATIVE_PORT)

    def http(self, n):
        return "%s:%d" % (self.ip(n), HTTP_PORT)

    def servers(self):
        return ",".join(self.native(n) for n in self.nodes)

    def etcd_urls(self):
        return ["http://%s:%d" % (self.ip(e), ETCD_PORT) for e in self.etcds]

    # -- network ---------------------------------------------------------
    def _add_ns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build_network(self):
        hub = self.ns("hub")
        self._add_ns(hub)
        sh("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", hub, "addr", "add", "%s.1/24" % self.subnet, "dev", "br0")
        sh("ip", "-n", hub, "link", "set", "br0", "up")
        for m in self.etcds + self.nodes:
            ns = self.ns(m)
            self._add_ns(ns)
            sh("ip", "-n", hub, "link", "add", "v" + m, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "-n", hub, "link", "set", "v" + m, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", "%s/24" % self.ip(m), "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        # The harness and its clients live in the hub from now on (this
        # thread; started before any other, so every thread and child
        # inherits it).
        self.orig_netns = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/" + hub, os.O_RDONLY)
        try:
            if _LIBC.setns(fd, CLONE_NEWNET) != 0:
                raise Failure("setns %s: %s" % (hub, os.strerror(ctypes.get_errno())))
        finally:
            os.close(fd)

    def iptables(self, node, *rule):
        sh("ip", "netns", "exec", self.ns(node), "iptables", *rule)

    # -- processes -------------------------------------------------------
    def _spawn(self, member, cmd, name, env=None):
        d = os.path.join(self.wd, member)
        os.makedirs(d, exist_ok=True)
        self.gen[member] = self.gen.get(member, 0) + 1
        out = os.path.join(d, "%s.%d.out" % (name, self.gen[member]))
        err = os.path.join(d, "%s.%d.err" % (name, self.gen[member]))
        with open(out, "wb") as fo, open(err, "wb") as fe:
            p = subprocess.Popen(["ip", "netns", "exec", self.ns(member)] + cmd, stdout=fo,
                                 stderr=fe, stdin=subprocess.DEVNULL, env=env)
        proc = Proc(p, out, err)
        self.procs[member] = proc
        self.all_procs.append(proc)
        return proc

    def start_etcd(self):
        cluster = ",".join("%s=http://%s:%d" % (e, self.ip(e), ETCD_PEER_PORT) for e in self.etcds)
        for e in self.etcds:
            url = "http://%s:%d" % (self.ip(e), ETCD_PORT)
            peer = "http://%s:%d" % (self.ip(e), ETCD_PEER_PORT)
            self._spawn(e, ["etcd", "--name", e, "--data-dir", os.path.join(self.wd, e, "data"),
                            "--listen-client-urls", url, "--advertise-client-urls", url,
                            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                            "--initial-cluster", cluster, "--initial-cluster-state", "new"],
                        "etcd")
        for e in self.etcds:
            p = self.procs[e]
            ok = wait_for_files(os.path.dirname(p.err_path),
                                lambda: b"ready to serve client requests" in
                                open(p.err_path, "rb").read() or not p.alive(), READY_TIMEOUT)
            if not ok or not p.alive():
                raise Failure("etcd %s not ready: %s" % (e, open(p.err_path).read()[-1500:]))

    def write_configs(self):
        with open(self.token_file, "w") as f:
            f.write(self.token + "\n")
        os.chmod(self.token_file, 0o600)
        os.environ["SLUICE_TOKEN"] = self.token
        for n in self.nodes:
            d = os.path.join(self.wd, n)
            data = os.path.join(d, "data")
            os.makedirs(data, exist_ok=True)
            sh("mount", "-t", "tmpfs", "-o", "size=%dm" % self.disk_mb, self.prefix + "-" + n,
               data)
            self.mounts.append(data)
            cfg = [
                "data_dir: %s" % data,
                "cores: 1",
                "listen: { native: %s, http: %s }" % (self.native(n), self.http(n)),
                "node: { id: %s }" % n,
                "cluster: { etcd: [ %s ], name: %s, session_ttl: %s }" % (
                    ", ".join(self.etcd_urls()), self.cluster_name, self.session_ttl),
                "auth: { token_file: %s }" % self.token_file,
                "projections:",
                "  - { name: counter, plugin: counter, from: events }",
                "topics:",
                "  - name: events",
                "    partitions: %d" % self.partitions,
                "    replicas: %d" % min(3, len(self.nodes)),
                "    acks: %s" % self.acks,
                "    min_insync: 2",
                "    replica_lag_max: %s" % self.lag,
            ]
            with open(os.path.join(d, "sluice.yaml"), "w") as f:
                f.write("\n".join(cfg) + "\n")

    def start_node(self, n, skew_s=None):
        """sluiced on node n (again), ready: its "sluiced: ready" line. A bind
        refused right after a kill -9 is tried again (BIND_RETRIES).
        skew_s: its wall clock that many seconds off, through the preload
        library self.skew_lib: skewtime.c (or libfaketime, which cannot
        start a jemalloc build: skewtime.c says why)."""
        cfg = os.path.join(self.wd, n, "sluice.yaml")
        env = None
        if skew_s:
            env = dict(os.environ, LD_PRELOAD=self.skew_lib, SL_SKEW_S=str(skew_s),
                       FAKETIME="%+ds" % skew_s)
        self.skew[n] = skew_s
        for attempt in range(BIND_RETRIES):
            p = self._spawn(n, [self.a.sluiced, "--config", cfg], "sluiced", env=env)

            def ready():
                with open(p.out_path, "rb") as f:
                    if b"sluiced: ready" in f.read():
                        return "ready"
                return None if p.alive() else "exited"
            st = wait_for_files(os.path.join(self.wd, n), ready, READY_TIMEOUT)
            if st == "ready":
                return p
            p.kill9()
            err = open(p.err_path, errors="replace").read()
            if st == "exited" and "in use" in err and attempt + 1 < BIND_RETRIES:
                continue
            raise Failure("sluiced %s not ready (%s): %s" % (n, st, err[-1500:]))

    def start(self):
        self.build_network()
        self.start_etcd()
        self.write_configs()
        for n in self.nodes:
            self.start_node(n)
        # Serving once every partition has a leader that said so.
        deadline = time.monotonic() + 60
        while True:
            st = self.partition_states()
            if st and all(s.get("leader") for s in st.values()):
                leaders = {p: s["leader"] for p, s in st.items()}
                ok = all("events/%d: leader, leader epoch" % p in self.node_log(l)
                         for p, l in leaders.items())
                if ok:
                    return leaders
            if time.monotonic() > deadline:
                raise Failure("no leader for every partition after 60 s: %r" % st)
            wait_for_files([os.path.join(self.wd, n) for n in self.nodes], lambda: False, 0.5)

    def node_log(self, n):
        p = self.procs.get(n)
        if not p:
            return ""
        with open(p.err_path, errors="replace") as f:
            return f.read()

    # -- etcd views ------------------------------------------------------
    def etcd(self, path, body):
        last = None
        for url in self.etcd_urls():
            try:
                req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"},
                                             method="POST")
                with urllib.request.urlopen(req, timeout=5) as r:
                    return json.loads(r.read())
            except OSError as e:
                last = e
        raise Failure("etcd %s: %s" % (path, last))

    def partition_states(self):
        """{partition: state} as etcd holds it (leader, epoch, isr, ...)."""
        key = "/sluice/%s/partitions/events/" % self.cluster_name
        end = key[:-1] + chr(ord(key[-1]) + 1)
        ans = self.etcd("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode(),
                                         "range_end": base64.b64encode(end.encode()).decode()})
        out = {}
        for kv in ans.get("kvs", []):
            k = base64.b64decode(kv["key"]).decode()
            out[int(k.rsplit("/", 1)[1])] = json.loads(base64.b64decode(kv["value"]))
        return out

    def live_members(self):
        key = "/sluice/%s/nodes/" % self.cluster_name
        end = key[:-1] + chr(ord(key[-1]) + 1)
        ans = self.etcd("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode(),
                                         "range_end": base64.b64encode(end.encode()).decode(),
                                         "keys_only": True})
        return sorted(base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]
                      for kv in ans.get("kvs", []))

    def node_status(self, n, timeout=5):
        req = urllib.request.Request("http://%s/v1/cluster" % self.http(n))
        req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    # -- cleanup ---------------------------------------------------------
    def cleanup(self, keep_data=False):
        """keep_data: each node's data tmpfs copied to nX/data.kept first
        (a failed run's evidence outlives the mount)."""
        if self.cleaned:
            return
        self.cleaned = True
        for p in self.all_procs:
            try:
                p.kill9()
            except Exception:  # noqa: BLE001 (cleanup goes on whatever failed)
                pass
        # Back in the namespace we came from before anything in the hub is
        # killed (this process lives there).
        if self.orig_netns is not None:
            _LIBC.setns(self.orig_netns, CLONE_NEWNET)
            os.close(self.orig_netns)
            self.orig_netns = None
        for ns in self.namespaces:
            # Whatever else runs in our namespaces was started by us (a
            # client's child, a process that outlived its Popen).
            for pid in sh("ip", "netns", "pids", ns, check=False).split():
                if pid.isdigit() and int(pid) != os.getpid():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for mp in reversed(self.mounts):
            if keep_data:
                import shutil
                shutil.copytree(mp, mp + ".kept", dirs_exist_ok=True)
            sh("umount", "-l", mp, check=False)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        self.mounts = []
