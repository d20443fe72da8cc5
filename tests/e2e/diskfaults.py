"""Disk faults end to end (issue 15): what sluiced does when its device is
full, when an fdatasync fails, and when a read of a sealed segment fails.

  disk_full   sluiced's data_dir on a small tmpfs filled by a filler file:
              producers hear ERR_DISK_FULL (retryable; the text names the
              partition's folder), the server stays up, nothing acked is
              lost or stored twice, no refused event is stored, and once
              the filler is removed the partitions serve again by
              themselves, without a restart.
  disk_full_faultfs  the same on faultfs without fallocate (sluiced falls
              back to appending, said once per partition), filled by
              faultfs's `enospc`: the group commits' writes meet ENOSPC.

  fsync_eio   sluiced on faultfs (tests/faultfs/): every fdatasync of one
              reactor's journal fails with EIO. The partitions it carries
              refuse with ERR_STORAGE naming the journal file and the errno,
              the others keep acking, the server stays up, nothing acked
              before is lost, and a restart on the healthy disk serves them
              again.
  read_eio    sluiced on faultfs: reads of a sealed segment fail with EIO.
              The consumer gets an error naming the file; the server stays
              up and serves the same read once the disk reads again.

Needs root (mount, FUSE); every mount is undone in a finally, also on
failure.

Usage: diskfaults.py --sluiced P --sluice P [--faultfs P] CASE
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys

from harness import Failure, Server, Workdir, check, main, parse_json_lines, run, wait_for_files

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faultfs"))
from test_faultfs import FaultFS  # noqa: E402


def need(root=False, fuse=False):
    """Exits 77 (CTest: skipped) where the fault cannot be made: mounts need
    root, faultfs needs /dev/fuse."""
    if root and os.geteuid() != 0:
        print("SKIP: needs root (mount)")
        sys.exit(77)
    if fuse and not os.path.exists("/dev/fuse"):
        print("SKIP: no /dev/fuse")
        sys.exit(77)


def event_id(tag, i):
    return "%08x-0000-4000-8000-%012x" % (tag, i)


def write_events(path, tag, n, pad=60):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"type": "T", "aggregate": "k%d" % (i % 97),
                                "id": event_id(tag, i), "data": {"p": "x" * pad}}) + "\n")


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    rc, out, err = run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", path])
    check(rc == 0, "mount tmpfs on %s (needs root): %s" % (path, err))


def unmount(path):
    subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fill(path, leave):
    """Writes `path` until only `leave` bytes are free on its filesystem."""
    st = os.statvfs(os.path.dirname(path))
    room = st.f_bavail * st.f_frsize - leave
    check(room > 0, "only %d bytes free, wanted to leave %d" % (st.f_bavail * st.f_frsize, leave))
    block = b"\0" * 65536
    with open(path, "wb") as f:
        while room > 0:
            room -= f.write(block[:min(len(block), room)])


def configure(srv, data_dir, partitions=2, segment_bytes="1MiB"):
    """Rewrites the server's config: data_dir elsewhere, small segments."""
    with open(srv.config, "w") as f:
        f.write("data_dir: %s\ncores: 2\n"
                "listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }\n"
                "topics:\n  - { name: events, partitions: %d, segment_bytes: %s }\n"
                % (data_dir, partitions, segment_bytes))


def produce_events(a, srv, wd, tag, n, timeout=60):
    """Writes n events of run `tag` to a file and produces them with
    `sluice produce --print-acks`: (rc, acks, stderr)."""
    path = os.path.join(wd, "in%d.jsonl" % tag)
    write_events(path, tag, n)
    with open(path, "rb") as f:
        rc, out, err = run([a.sluice, "produce", "--print-acks", "--timeout", str(timeout),
                            "--server", srv.addr], stdin=f.read(), timeout=timeout + 120)
    return rc, parse_json_lines(out), err


def data_server(a, wd, data_dir, **kw):
    """A Server (not started; `with` starts and kills it) whose config puts
    its data in data_dir (configure)."""
    srv = Server(a.sluiced, wd)
    configure(srv, data_dir, **kw)
    return srv


def restart(srv, wd):
    """Stops srv (it must exit 0), keeps its stderr in wd/first-stderr.txt
    (the restart writes it anew), and starts it again."""
    check(srv.stop() == 0, "sluiced did not exit 0: %s" % srv.stderr_text()[-500:])
    with open(os.path.join(wd, "first-stderr.txt"), "w") as f:
        f.write(srv.stderr_text())
    srv.start()


@contextlib.contextmanager
def faultfs_mounted(a, wd):
    """faultfs mounted under wd for the block, unmounted after it, also on
    failure."""
    fs = FaultFS(a.faultfs, os.path.join(wd, "fs"))
    try:
        fs.mount()
        yield fs
    finally:
        fs.unmount()


def summary(err):
    m = re.search(r"(\d+) events read, (\d+) acked, (\d+) refused", err)
    check(m, "no summary from sluice produce: %r" % err[-500:])
    return tuple(int(x) for x in m.groups())


def consume_ids(sluice, addr):
    rc, out, err = run([sluice, "consume", "--server", addr], timeout=300)
    check(rc == 0, "consume failed (%d): %s" % (rc, err))
    return [e["id"] for e in parse_json_lines(out)]


def disk_full_run(a, wd, mnt, make_full, make_room, label):
    """The disk_full scenario on `mnt`: make_full() once the server is up,
    make_room() once producers were refused."""
    n = 60000
    p = None
    srv = None
    try:
        srv = data_server(a, wd, os.path.join(mnt, "data")).start()
        make_full()
        inp = os.path.join(wd, "in.jsonl")
        write_events(inp, 1, n)
        acks_path, perr_path = os.path.join(wd, "acks.jsonl"), os.path.join(wd, "p.err")
        p = subprocess.Popen([a.sluice, "produce", "--print-acks", "--timeout", "120",
                              "--server", srv.addr], stdin=open(inp, "rb"),
                             stdout=open(acks_path, "wb"), stderr=open(perr_path, "wb"))

        def perr():
            with open(perr_path, errors="replace") as f:
                return f.read()

        check(wait_for_files(srv.dir, lambda: "No space left" in srv.stderr_text(), 120),
              "the server never said its device was full: %r" % srv.stderr_text()[-800:])
        check(wait_for_files(wd, lambda: "ERR_DISK_FULL" in perr() or p.poll() is not None,
                             120), "no producer was refused with ERR_DISK_FULL")
        check("ERR_DISK_FULL" in perr(), "the producer ended without a refusal: %r"
              % perr()[-500:])
        check("no space left on the device of %s" % os.path.join(mnt, "data", "events")
              in perr(), "the refusal does not name the partition's folder: %r"
              % perr()[-500:])
        check(srv.proc.poll() is None, "sluiced exited on a full disk: %s"
              % srv.stderr_text()[-800:])
        full = len(re.findall(r"partition \d+: (?:write|pre-allocate|create|journal) .*No space left",
                              srv.stderr_text()))
        check(full >= 1, "no partition said it was full: %r" % srv.stderr_text()[-800:])
        # Space comes back: every partition that was full serves again,
        # by itself.
        make_room()
        check(wait_for_files(srv.dir, lambda: srv.stderr_text().count("space again, serving")
                             >= full, 60),
              "the partitions did not serve again after space was freed: %r"
              % srv.stderr_text()[-800:])
        p.wait(timeout=180)
        read, acked, refused = summary(perr())
        check(read == n, "producer read %d of %d lines" % (read, n))
        check(refused > 0, "nothing was refused: %r" % perr()[-500:])
        check(acked + refused == n, "%d events neither acked nor refused after space came "
              "back: %r" % (n - acked - refused, perr()[-500:]))
        with open(acks_path) as f:
            acked_ids = [x["id"] for x in parse_json_lines(f.read())]
        check(len(acked_ids) == acked, "%d ack lines for %d acked" % (len(acked_ids), acked))
        # Without a restart: fresh events are all acked.
        rc, acks2, err = produce_events(a, srv, wd, 2, 2000)
        check(rc == 0, "after space came back, producing failed (%d): %s" % (rc, err[-500:]))
        acked_ids += [x["id"] for x in acks2]
        want = sorted(acked_ids)
        check(len(set(want)) == len(want), "an event was acked twice")
        for when in ("live", "after a restart"):
            stored = sorted(consume_ids(a.sluice, srv.addr))
            check(len(set(stored)) == len(stored), "%s: an event is stored twice" % when)
            lost = set(want) - set(stored)
            extra = set(stored) - set(want)
            check(not lost, "%s: %d acked events are not stored, e.g. %s"
                  % (when, len(lost), sorted(lost)[:3]))
            check(not extra, "%s: %d events stored that were refused or never acked, "
                  "e.g. %s" % (when, len(extra), sorted(extra)[:3]))
            if when == "live":
                restart(srv, wd)
        print("%s: %d events, %d acked, %d refused with ERR_DISK_FULL, %d partition "
              "episodes, all acked stored once" % (label, n, acked, refused, full))
        return srv
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        if srv:
            srv.kill()


def case_disk_full(a):
    need(root=True)
    with Workdir() as wd:
        mnt = os.path.join(wd, "mnt")
        mount_tmpfs(mnt, "16m")
        try:
            filler = os.path.join(mnt, "filler")
            disk_full_run(a, wd, mnt, lambda: fill(filler, 3 << 20),
                          lambda: os.unlink(filler), "disk_full")
        finally:
            unmount(mnt)


def case_disk_full_faultfs(a):
    """The same on faultfs without fallocate: segments are not pre-allocated
    (sluiced says so once per partition and appends), so the group commits'
    own writes meet ENOSPC, in the middle of a write."""
    need(fuse=True)
    check(a.faultfs, "--faultfs is required")
    with Workdir() as wd:
        with faultfs_mounted(a, wd) as fs:
            check(fs.cmd("nofallocate on") == 0, "nofallocate")

            def arm():
                check(fs.cmd("enospc %d" % (3 << 20)) == 0, "arming enospc")

            srv = disk_full_run(a, wd, fs.mnt, arm, lambda: fs.cmd("enospc off"),
                                "disk_full_faultfs")
            said = open(os.path.join(wd, "first-stderr.txt")).read()
            check(said.count("cannot pre-allocate segments") == 2,
                  "the fallback must be said once per partition: %r" % said[-800:])
            check(re.search(r"partition \d+: write of .*No space left", said),
                  "no group commit write met ENOSPC: %r" % said[-800:])
            check(srv is not None, "no server")


def case_fsync_eio(a):
    """Every fdatasync of reactor 1's journal fails: the partitions it
    carries (the odd ones of 40, with 2 cores) refuse with ERR_STORAGE naming the
    journal file, and stop; reactor 0's partitions keep acking. After a
    restart on a healed disk all four serve and nothing acked is lost."""
    need(fuse=True)
    check(a.faultfs, "--faultfs is required")
    # 40 partitions: 20 per reactor, enough for each to keep a journal
    # (SL_JOURNAL_MIN_PARTITIONS); partition p lives on reactor p % 2.
    bad = set(range(1, 40, 2))
    with Workdir() as wd:
        with faultfs_mounted(a, wd) as fs, data_server(a, wd, os.path.join(fs.mnt, "data"),
                                                       partitions=40) as srv:
            rc, acks1, err = produce_events(a, srv, wd, 1, 4000)
            check(rc == 0 and len(acks1) == 4000, "before the fault: rc %d, %d acks: %s"
                  % (rc, len(acks1), err[-500:]))
            check({x["partition"] for x in acks1} & bad, "nothing went to reactor 1")
            check(fs.cmd("eio fsync data/.journal/1/*.jnl always") == 0, "arming eio")
            rc, acks2, err = produce_events(a, srv, wd, 2, 4000, timeout=20)
            read, acked, refused = summary(err)
            check(srv.proc.poll() is None, "sluiced exited: %s" % srv.stderr_text()[-800:])
            check(refused > 0, "nothing was refused with the journal's disk failing: %r"
                  % err[-500:])
            check(acked + refused == read == 4000, "%d events unanswered: %r"
                  % (read - acked - refused, err[-500:]))
            check(not [x for x in acks2 if x["partition"] in bad],
                  "an event of a partition of the failing journal was acked")
            others = {x["partition"] for x in acks2}
            check(others and not others & bad, "reactor 0's partitions did not keep acking: %r"
                  % sorted(others))
            check("ERR_STORAGE" in err and ".journal/1" in err and ".jnl" in err
                  and "Input/output error" in err,
                  "the refusal must name the journal file and the errno: %r" % err[-600:])
            stopped = {int(m) for m in re.findall(r"partition (\d+) stopped", srv.stderr_text())}
            check(stopped and stopped <= bad, "the server did not say which partitions stopped: %r"
                  % srv.stderr_text()[-600:])
            # The disk heals; a restart serves the partitions again.
            check(fs.cmd("clear") == 0, "clear")
            restart(srv, wd)
            rc, acks3, err = produce_events(a, srv, wd, 3, 4000)
            check(rc == 0 and len(acks3) == 4000, "after the restart: rc %d, %d acks: %s"
                  % (rc, len(acks3), err[-500:]))
            check(stopped <= {x["partition"] for x in acks3}, "partitions %r do not serve"
                  % sorted(stopped))
            acked_ids = {x["id"] for x in acks1 + acks2 + acks3}
            stored = consume_ids(a.sluice, srv.addr)
            check(len(set(stored)) == len(stored), "an event is stored twice")
            lost = acked_ids - set(stored)
            check(not lost, "%d acked events lost, e.g. %s" % (len(lost), sorted(lost)[:3]))
            print("fsync_eio: reactor 1's partitions refused %d events with ERR_STORAGE "
                  "(%d said stopped), reactor 0's acked %d; after a restart all served, "
                  "nothing acked lost" % (refused, len(stopped), acked))


def case_read_eio(a):
    need(fuse=True)
    check(a.faultfs, "--faultfs is required")
    with Workdir() as wd:
        with faultfs_mounted(a, wd) as fs, data_server(
                a, wd, os.path.join(fs.mnt, "data"), partitions=1,
                segment_bytes="64KiB") as srv:
            rc, acks, err = produce_events(a, srv, wd, 1, 3000)
            check(rc == 0 and len(acks) == 3000, "produce: rc %d: %s" % (rc, err[-500:]))
            segs = sorted(f for f in os.listdir(os.path.join(fs.mnt, "data", "events", "0"))
                          if f.endswith(".log"))
            check(len(segs) >= 3, "no sealed segments: %r" % segs)
            first = "data/events/0/%s" % segs[0]
            check(fs.cmd("eio read %s always" % first) == 0, "arming eio")
            rc, out, err = run([a.sluice, "consume", "--server", srv.addr], timeout=120)
            check(rc != 0, "consume succeeded over a failing read: %d events" % len(out.splitlines()))
            check(segs[0] in err and "Input/output error" in err,
                  "the consumer's error must name the file and the errno: %r" % err[-500:])
            check(srv.proc.poll() is None, "sluiced exited: %s" % srv.stderr_text()[-800:])
            check(fs.cmd("clear") == 0, "clear")
            stored = consume_ids(a.sluice, srv.addr)
            check(sorted(stored) == sorted(x["id"] for x in acks),
                  "after the disk reads again: %d events, %d acked" % (len(stored), len(acks)))
            print("read_eio: the consumer was told %r; the same read served all %d events "
                  "once the disk read again" % (err.strip()[-160:], len(stored)))


if __name__ == "__main__":
    sys.exit(main({"disk_full": case_disk_full, "disk_full_faultfs": case_disk_full_faultfs,
                   "fsync_eio": case_fsync_eio,
                   "read_eio": case_read_eio}))
