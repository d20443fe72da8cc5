#!/usr/bin/env python3
"""The test of faultfs itself: mounts it on a temporary folder and checks
every mode against a plain Python file workload (os.open/os.pwrite/os.fsync,
no buffering), one case after the other on one mount.

  - crash: synced data survives, unsynced writes and size changes are gone;
    a handle open across the crash stays valid and sees the old contents;
  - crash reorder SEED: every page of the file is wholly the synced or the
    new contents, some pages of each over a few seeds, never a mix;
  - crash torn SEED: every write but the last kept, the last cut at a
    512-byte boundary inside it, what follows the cut the old bytes;
  - metadata: a file created and not fsynced is gone, fsynced it stays;
    tmp + fsync + rename + fsync(folder) survives, without the folder
    fsync the old file is back; an unlink not made durable is undone;
  - eio fsync|write|read PATTERN once|always fire on the named path only,
    once means once, clear removes them; enospc BYTES: the write that
    crosses the line is short, then ENOSPC (fallocate too), off ends it;
    nofallocate on: fallocate fails EOPNOTSUPP;
  - the control file: counters move, a bad command fails with EINVAL.

Exits 77 (skipped) when FUSE cannot be mounted here (no /dev/fuse or no
fusermount3). The mount is always unmounted and faultfs stopped, also when
a check fails.

Usage: test_faultfs.py --faultfs PATH [--keep]
"""

import argparse
import ctypes
import ctypes.util
import errno
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

PAGE = 4096
SECTOR = 512
MOUNT_TIMEOUT_S = 10
UNMOUNT_TIMEOUT_S = 10

_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def fallocate(fd, off, length):
    """The raw system call (glibc's posix_fallocate would emulate it with
    writes where the filesystem says EOPNOTSUPP): 0 or -errno."""
    if _LIBC.fallocate(fd, 0, off, length) == 0:
        return 0
    return -ctypes.get_errno()


class FaultFS:
    """faultfs BACKING MOUNT -f as a child process; mount() waits (bounded)
    until the control file answers; unmount() always leaves nothing mounted
    and no process behind."""

    def __init__(self, binary, root):
        self.binary = binary
        self.backing = os.path.join(root, "backing")
        self.mnt = os.path.join(root, "mnt")
        os.makedirs(self.backing, exist_ok=True)
        os.makedirs(self.mnt, exist_ok=True)
        self.ctl = os.path.join(self.mnt, ".faultfs", "ctl")
        self.proc = None
        self.log_path = os.path.join(root, "faultfs.log")

    def mount(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, self.backing, self.mnt, "-f"],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        # The kernel signals every change of the mount table on
        # /proc/self/mounts (POLLPRI): wait for those, not for time.
        deadline = time.monotonic() + MOUNT_TIMEOUT_S
        with open("/proc/self/mounts", "rb") as mounts:
            watch = select.poll()
            watch.register(mounts, select.POLLPRI | select.POLLERR)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise Failure("faultfs exited %d before mounting: %s" % (
                        self.proc.returncode, self.log_text()))
                if os.path.ismount(self.mnt) and os.path.exists(self.ctl):
                    return self
                # Bounded, so that an exit of faultfs (no mount change)
                # is seen too.
                watch.poll(100)
                mounts.seek(0)
                mounts.read()
        raise Failure("faultfs not mounted after %d s: %s" % (MOUNT_TIMEOUT_S, self.log_text()))

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-2000:]
        except OSError:
            return ""

    def unmount(self):
        """fusermount3 -u, else a lazy umount; then the process must exit
        (SIGKILL after a deadline). Returns faultfs's exit code."""
        if os.path.ismount(self.mnt):
            r = subprocess.run(["fusermount3", "-u", self.mnt], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", self.mnt], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        rc = None
        if self.proc:
            try:
                rc = self.proc.wait(timeout=UNMOUNT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            self.proc = None
            self.log.close()
        return rc

    def cmd(self, line):
        """Writes one command to the control file: 0 or -errno."""
        fd = os.open(self.ctl, os.O_WRONLY)
        try:
            os.write(fd, (line + "\n").encode())
            return 0
        except OSError as e:
            return -e.errno
        finally:
            os.close(fd)

    def do(self, line):
        rc = self.cmd(line)
        check(rc == 0, "faultfs command %r failed: %s" % (line, os.strerror(-rc)))

    def state(self):
        """The control file as a dict; repeated keys become lists."""
        with open(self.ctl, "rb") as f:
            text = f.read().decode()
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k in ("unsynced", "pending", "fault"):
                out.setdefault(k, []).append(v)
            else:
                out[k] = int(v)
        return out

    def path(self, rel):
        return os.path.join(self.mnt, rel)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, sync=True, mode=os.O_RDWR | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, mode, 0o644)
    try:
        check(os.pwrite(fd, data, 0) == len(data), "short write to %s" % path)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pattern(tag, n):
    """n bytes that say where they are: a write's bytes are recognisable."""
    unit = ("%s%07d|" % (tag, 0)).encode()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += ("%s%07d|" % (tag, i)).encode()
        i += 1
    del unit
    return bytes(out[:n])


# ---- the cases; each gets the mounted FaultFS and a fresh folder in it ----

def case_crash(fs, d):
    base = pattern("A", 3 * PAGE + 100)
    p = os.path.join(d, "f")
    write_file(p, base)
    fsync_dir(d)
    st = fs.state()
    check(st["unsynced_bytes"] == 0, "after fsync: unsynced_bytes %d" % st["unsynced_bytes"])
    fd = os.open(p, os.O_RDWR)
    try:
        os.pwrite(fd, b"x" * 1000, 500)              # overwrite inside
        os.pwrite(fd, pattern("B", 5000), len(base))  # append
        st = fs.state()
        check(st["unsynced_bytes"] == 6000, "unsynced_bytes %d, wrote 6000" % st["unsynced_bytes"])
        check(st["unsynced_files"] == 1, "unsynced_files %d" % st["unsynced_files"])
        fs.do("crash")
        # The handle stays valid and sees the rolled-back file.
        check(os.fstat(fd).st_size == len(base), "size after crash %d" % os.fstat(fd).st_size)
        check(os.pread(fd, len(base) + 10, 0) == base, "contents after crash differ")
        # Writes after the crash are tracked again from the synced state.
        os.pwrite(fd, b"y" * 10, 0)
        os.fsync(fd)
        os.pwrite(fd, b"z" * 10, 10)
    finally:
        os.close(fd)
    fs.do("crash")
    check(read_file(p) == b"y" * 10 + base[10:], "a fsync after a crash was not kept")
    # A truncate not synced is undone too.
    fd = os.open(p, os.O_RDWR)
    try:
        os.ftruncate(fd, 100)
    finally:
        os.close(fd)
    fs.do("crash")
    check(read_file(p) == b"y" * 10 + base[10:], "an unsynced truncate survived")
    st = fs.state()
    check(st["crashes"] >= 3 and st["unsynced_bytes"] == 0, "state after crashes: %r" % st)


def page_states(got, new, old):
    """Per page: 'new', 'old' or 'mixed'."""
    out = []
    for at in range(0, max(len(new), len(old), len(got)), PAGE):
        g = got[at:at + PAGE]
        n = new[at:at + PAGE]
        o = old[at:at + PAGE]
        if g == n:
            out.append("new")
        elif g == o:
            out.append("old")
        else:
            out.append("mixed")
    return out


def case_reorder(fs, d):
    kept = dropped = 0
    for seed in range(1, 7):
        old = pattern("O", 8 * PAGE)
        p = os.path.join(d, "r%d" % seed)
        write_file(p, old)
        fsync_dir(d)
        # Unsynced: three overlapping overwrites and an append of 4 pages,
        # unaligned, so pages hold bytes of several writes.
        fd = os.open(p, os.O_RDWR)
        try:
            os.pwrite(fd, pattern("X", 3 * PAGE), PAGE + 100)
            os.pwrite(fd, pattern("Y", 2 * PAGE), 3 * PAGE + 7)
            os.pwrite(fd, pattern("Z", 4 * PAGE + 333), 8 * PAGE)
            new = os.pread(fd, 16 * PAGE, 0)
        finally:
            os.close(fd)
        fs.do("crash reorder %d" % seed)
        got = read_file(p)
        check(len(got) in (len(old), len(new)),
              "seed %d: size %d, neither the synced %d nor the new %d" % (
                  seed, len(got), len(old), len(new)))
        # The synced image, extended with zeros: what a dropped page past
        # the old end reads as when the size was kept.
        old_z = old + bytes(len(new) - len(old))
        states = page_states(got, new[:len(got)], old_z[:len(got)])
        check("mixed" not in states, "seed %d: pages mix old and new bytes: %s" % (seed, states))
        # Pages never written keep their contents whatever the seed.
        check(states[0] in ("new", "old") and got[:PAGE] == old[:PAGE],
              "seed %d: an untouched page changed" % seed)
        st = fs.state()
        kept += st["last_crash_pages_kept"]
        dropped += st["last_crash_pages_dropped"]
        check(st["last_crash_pages_kept"] + st["last_crash_pages_dropped"] == 10,
              "seed %d: %d pages kept + %d dropped, 10 touched" % (
                  seed, st["last_crash_pages_kept"], st["last_crash_pages_dropped"]))
    check(kept > 0 and dropped > 0, "6 seeds kept %d and dropped %d pages" % (kept, dropped))
    # The same seed on the same history gives the same disk.
    outs = []
    for _ in range(2):
        p = os.path.join(d, "same")
        write_file(p, pattern("O", 4 * PAGE))
        fsync_dir(d)
        fd = os.open(p, os.O_RDWR)
        try:
            os.pwrite(fd, pattern("N", 6 * PAGE), 100)
        finally:
            os.close(fd)
        fs.do("crash reorder 42")
        outs.append(read_file(p))
    check(outs[0] == outs[1], "crash reorder 42 twice on the same history differs")


def case_torn(fs, d):
    cuts = set()
    for seed in range(1, 9):
        old = pattern("O", 4 * PAGE)
        p = os.path.join(d, "t%d" % seed)
        write_file(p, old)
        fsync_dir(d)
        w1 = (300, pattern("P", 2000))
        w2_off = 1000 + 17 * seed  # unaligned, over w1's end and past the old end
        w2 = (w2_off, pattern("Q", 5 * PAGE))
        fd = os.open(p, os.O_RDWR)
        try:
            os.pwrite(fd, w1[1], w1[0])
            os.pwrite(fd, w2[1], w2[0])
        finally:
            os.close(fd)
        after_w1 = bytearray(old)
        after_w1[w1[0]:w1[0] + len(w1[1])] = w1[1]
        after_w1 = bytes(after_w1)
        fs.do("crash torn %d" % seed)
        got = read_file(p)
        end = w2_off + len(w2[1])
        # Find the cut: the longest prefix of w2 present.
        c = w2_off
        while c < end and c < len(got) and got[c] == w2[1][c - w2_off]:
            c += 1
        # c is where w2's bytes stop matching; the real cut is the last
        # boundary at or below it whose tail matches the old bytes.
        cut = None
        for cand in [w2_off] + list(range((w2_off // SECTOR + 1) * SECTOR, end, SECTOR)):
            if cand > c:
                break
            want = after_w1[:w2_off] + w2[1][:cand - w2_off] + after_w1[cand:]
            want = want[:max(len(after_w1), cand)]
            if got == want:
                cut = cand
        check(cut is not None, "seed %d: the file is not the first write plus a sector-cut "
              "second one (len %d, w2 matched up to %d)" % (seed, len(got), c))
        check(cut == w2_off or cut % SECTOR == 0, "seed %d: cut %d" % (seed, cut))
        check(got[w1[0]:w1[0] + 100] == w1[1][:100], "seed %d: the first write was lost" % seed)
        cuts.add(cut)
        st = fs.state()
        check(st["last_crash_torn_files"] == 1, "seed %d: torn files %d" % (
            seed, st["last_crash_torn_files"]))
    check(len(cuts) > 2, "8 seeds cut at only %s" % sorted(cuts))


def case_metadata(fs, d):
    # Created and fsynced (file): stays. Created after it, never fsynced:
    # gone. (The other order would keep both: an fsync makes the journal
    # durable up to the file's last change, as ext4's commit does.)
    write_file(os.path.join(d, "kept"), b"def", sync=True)
    write_file(os.path.join(d, "loose"), b"abc", sync=False)
    check(fs.state()["pending_ops"] >= 1, "no pending operation after a create")
    fs.do("crash")
    check(not os.path.exists(os.path.join(d, "loose")), "an unsynced create survived")
    check(read_file(os.path.join(d, "kept")) == b"def", "an fsynced new file was lost")
    # sluice's pattern: tmp, fdatasync, rename over, fsync of the folder.
    name = os.path.join(d, "ckpt")
    write_file(name, b"generation-1")
    fsync_dir(d)
    for folder_sync, want in ((True, b"generation-2"), (False, b"generation-2")):
        tmp = name + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, want)
        os.fdatasync(fd)
        os.close(fd)
        os.rename(tmp, name)
        if folder_sync:
            fsync_dir(d)
        fs.do("crash")
        got = read_file(name)
        if folder_sync:
            check(got == want, "rename + fsync(folder) did not survive: %r" % got)
            # Back to generation 1 for the next round.
            write_file(name, b"generation-1")
            fsync_dir(d)
        else:
            check(got == b"generation-1", "a rename without fsync(folder) survived: %r" % got)
            # Its fdatasync made the new file durable under its first name
            # (on ext4 the creation commits with the inode): the tmp is back.
            check(read_file(tmp) == want, "the tmp file is not back whole after the undone rename")
    # An unlink not made durable comes back; made durable it stays gone.
    os.unlink(name)
    fs.do("crash")
    check(read_file(name) == b"generation-1", "an unlink without fsync(folder) survived")
    os.unlink(name)
    fsync_dir(d)
    fs.do("crash")
    check(not os.path.exists(name), "an unlink with fsync(folder) was undone")
    # A folder made without a sync of its parent goes, its files with it.
    sub = os.path.join(d, "sub")
    os.mkdir(sub)
    write_file(os.path.join(sub, "x"), b"1", sync=False)
    fs.do("crash")
    check(not os.path.exists(sub), "an unsynced mkdir survived")
    check(fs.state()["pending_ops"] == 0, "pending operations after a crash")


def case_faults(fs, d):
    a = os.path.join(d, "a.log")
    b = os.path.join(d, "b.log")
    write_file(a, b"a" * 100)
    write_file(b, b"b" * 100)
    rel = os.path.relpath(d, fs.mnt)
    for kind in ("fsync", "write", "read"):
        fs.do("eio %s %s/a.* once" % (kind, rel))
        st = fs.state()
        check(st.get("fault") == ["eio %s %s/a.* once" % (kind, rel)], "armed: %r" % st.get("fault"))

        def op(path):
            fd = os.open(path, os.O_RDWR)
            try:
                if kind == "fsync":
                    os.fsync(fd)
                elif kind == "write":
                    os.pwrite(fd, b"w", 0)
                else:
                    os.pread(fd, 10, 0)
                return 0
            except OSError as e:
                return e.errno
            finally:
                os.close(fd)
        fired0 = fs.state()["eio_fired"]
        check(op(b) == 0, "eio %s fired on b.log" % kind)
        check(op(a) == errno.EIO, "eio %s once did not fire on a.log" % kind)
        check(op(a) == 0, "eio %s once fired twice" % kind)
        fs.do("eio %s %s/a.* always" % (kind, rel))
        check(op(a) == errno.EIO and op(a) == errno.EIO, "eio %s always did not fire" % kind)
        check(op(b) == 0, "eio %s always fired on b.log" % kind)
        check(fs.state()["eio_fired"] == fired0 + 3, "eio_fired did not count 3")
        fs.do("clear")
        check(op(a) == 0, "eio %s fired after clear" % kind)
        check("fault" not in fs.state(), "faults listed after clear")
    # A failed fsync makes nothing durable.
    fs.do("eio fsync %s/a.log once" % rel)
    fd = os.open(a, os.O_RDWR)
    try:
        os.pwrite(fd, b"Q" * 10, 0)
        try:
            os.fsync(fd)
            raise Failure("fsync did not fail")
        except OSError as e:
            check(e.errno == errno.EIO, "fsync: %s" % e)
    finally:
        os.close(fd)
    fs.do("crash")
    check(read_file(a)[:10] != b"Q" * 10, "a write whose fsync failed survived the crash")
    # ENOSPC after BYTES, on every path; fallocate too; off ends it.
    fs.do("enospc 10000")
    fd = os.open(b, os.O_RDWR)
    try:
        check(os.pwrite(fd, b"x" * 8000, 0) == 8000, "write under the limit")
        n = os.pwrite(fd, b"y" * 4000, 8000)
        check(n == 2000, "the write crossing the limit wrote %d, not 2000" % n)
        try:
            os.pwrite(fd, b"z", 10000)
            raise Failure("write past the limit succeeded")
        except OSError as e:
            check(e.errno == errno.ENOSPC, "past the limit: %s" % e)
        check(fallocate(fd, 0, 1 << 20) == -errno.ENOSPC, "fallocate past the limit")
        check(fs.state()["enospc_fired"] == 2, "enospc_fired %d" % fs.state()["enospc_fired"])
        fs.do("enospc off")
        check(os.pwrite(fd, b"z", 10000) == 1, "write after enospc off")
        check(fallocate(fd, 0, 1 << 20) == 0, "fallocate with the fault off")
        check(os.fstat(fd).st_size == 1 << 20, "fallocate did not grow the file")
        fs.do("nofallocate on")
        check(fallocate(fd, 0, 2 << 20) == -errno.EOPNOTSUPP, "nofallocate on: fallocate worked")
        fs.do("clear")
        check(fallocate(fd, 0, 2 << 20) == 0, "fallocate after clear")
    finally:
        os.close(fd)
    # An unsynced fallocate is undone like an append.
    fs.do("crash")
    check(os.path.getsize(b) == 100, "size %d after crash, 100 synced" % os.path.getsize(b))


def case_control(fs, d):
    for bad in ("crash sideways 1", "eio fsync", "eio sync x once", "eio read x sometimes",
                "enospc lots", "nofallocate maybe", "reboot", "crash torn x"):
        check(fs.cmd(bad) == -errno.EINVAL, "%r was not refused with EINVAL" % bad)
    st = fs.state()
    check(st["ctl_errors"] >= 8, "ctl_errors %d" % st["ctl_errors"])
    check(os.listdir(os.path.join(fs.mnt, ".faultfs")) == ["ctl"], "the control folder")
    check(".faultfs-grave" not in os.listdir(fs.mnt), "the graveyard is visible")
    check(".faultfs" in os.listdir(fs.mnt), "the control folder is not listed")
    for k in ("unsynced_bytes", "fsyncs", "fdatasyncs", "dir_fsyncs", "crashes",
              "faults_fired", "pending_ops", "writes"):
        check(k in st, "no %s in the control file" % k)


CASES = [("crash", case_crash), ("reorder", case_reorder), ("torn", case_torn),
         ("metadata", case_metadata), ("faults", case_faults), ("control", case_control)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faultfs", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        print("SKIP faultfs: no /dev/fuse or no fusermount3 (Debian package fuse3)")
        return 77
    root = tempfile.mkdtemp(prefix="sluice-faultfs-")
    fs = FaultFS(a.faultfs, root)
    start = time.monotonic()
    failed = None
    try:
        fs.mount()
        for name, fn in CASES:
            d = os.path.join(fs.mnt, name)
            os.mkdir(d)
            fsync_dir(d)
            fsync_dir(fs.mnt)
            t0 = time.monotonic()
            fn(fs, d)
            print("ok %s (%.2f s)" % (name, time.monotonic() - t0), flush=True)
    except (Failure, OSError) as e:
        failed = "%s: %s" % (type(e).__name__, e)
    finally:
        rc = fs.unmount()
        log = fs.log_text()
        if os.path.ismount(fs.mnt):
            failed = failed or "still mounted after unmount"
        if not a.keep and not os.path.ismount(fs.mnt):
            shutil.rmtree(root, ignore_errors=True)
    if failed is None and rc != 0:
        failed = "faultfs exited %s" % rc
    if failed:
        print("FAIL faultfs: %s\nfaultfs log: %s" % (failed, log), file=sys.stderr)
        return 1
    print("PASS faultfs (%.2f s)" % (time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
