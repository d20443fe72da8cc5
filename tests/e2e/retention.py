"""Retention and seek by time through sluiced and sluice (issue 18 items 2, 4).

Every wait is on an event: a line sluiced writes to its stderr (watched with
inotify, harness.wait_for_files), never a sleep; every loop is bounded.

retention_by_size: a topic with 16 KiB segments and no limit takes 3,000
  events; nothing is deleted. `sluice topic alter --set retention.bytes=64KiB`
  makes the running partition delete its oldest segments (its stderr line).
  Then: status and /metrics say the new log_start_offset and the deletions;
  what is left is at least the limit and less than it plus two segments;
  `sluice consume` (earliest) prints exactly [start, end); `--from 0` stops
  with the out-of-range message naming the start; after kill -9 the start
  is the same, everything from it reads, and produce goes on.
retention_by_age: age 1s: once the events are a second old the sealed
  segments go (the line says by age), the active one stays.
retention_held_by_sink: a jsonl sink whose file is made immutable (chattr
  +i) cannot write: retention stops at what it has not read, status says
  `retention_held_by: sink archive` and /metrics sluice_retention_held 1;
  with the file writable again and a restart (the sink recovers at start)
  the sink catches up and retention goes on past where it held.
seek_by_time: two batches of events produced a clock tick apart; `sluice
  consume --from @MS` and `--from RFC3339` (the time between them) print
  exactly the second batch; a time after both prints nothing.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (Failure, Server, Workdir, check, http_open, main,  # noqa: E402
                     parse_json_lines, run, wait_for_files)

SEG = "segment_bytes: 16KiB"


def lines(tag, n):
    return "".join(json.dumps({"type": "T", "aggregate": "k%d" % (i % 7),
                               "id": "%08x-0000-4000-8000-%012x" % (tag, i),
                               "data": {"i": i, "pad": "x" * 100}}) + "\n"
                   for i in range(n)).encode()


def produce(a, srv, tag, n, topic="events"):
    rc, out, err = run([a.sluice, "produce", "--print-acks", "--topic", topic,
                        "--server", srv.addr],
                       stdin=lines(tag, n), timeout=120)
    check(rc == 0, "produce: rc %d %s" % (rc, err[-500:]))
    acks = parse_json_lines(out)
    check(len(acks) == n, "%d acks for %d events" % (len(acks), n))
    return acks


def produce_runs(a, srv, tag, runs, per, topic="events"):
    """Several produce runs: group commits stay small, so the 16 KiB
    segments roll (a segment holds whole group commits)."""
    for r in range(runs):
        produce(a, srv, tag * 1000 + r, per, topic)


def consume(a, srv, *extra):
    return run([a.sluice, "consume", "--server", srv.addr] + list(extra), timeout=120)


def status_part(srv, p=0, topic="events"):
    with http_open("http://127.0.0.1:%d/v1/status" % srv.http_port, token=srv.token) as r:
        st = json.loads(r.read())
    return [t for t in st["topics"] if t["name"] == topic][0]["partitions"][p]


def metric(srv, name, partition=0, topic="events"):
    with http_open("http://127.0.0.1:%d/metrics" % srv.http_port, token=srv.token) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{topic="%s",partition="%d"\} (\S+)$' % (name, topic, partition),
                  text, re.M)
    check(m, "no %s in /metrics" % name)
    return float(m.group(1))


def segments(srv, p=0, topic="events"):
    d = part_dir(srv, p, topic)
    return sorted(int(f[:20]) for f in os.listdir(d) if f.endswith(".log") and len(f) == 24)


def seg_size(srv, base, p=0, topic="events"):
    return os.path.getsize(os.path.join(part_dir(srv, p, topic), "%020d.log" % base))


def wait_said(srv, text, count=1, timeout=60):
    ok = wait_for_files(srv.dir, lambda: srv.stderr_text().count(text) >= count, timeout)
    check(ok, "sluiced did not say %r within %d s: %s" % (text, timeout,
                                                       srv.stderr_text()[-1500:]))


def part_dir(srv, p=0, topic="events"):
    return os.path.join(srv.dir, "data", topic, str(p))


def said_deleted(srv):
    return sum(int(m.group(1)) for m in
               re.finditer(r"retention deleted (\d+) segment", srv.stderr_text()))


def wait_deleted(srv, before, topic="events"):
    """After sluiced said it deleted: until the preparer removed the files
    (its lines name how many went, in total)."""
    def gone():
        said = said_deleted(srv)
        return said > 0 and len(segments(srv, 0, topic)) == before - said
    ok = wait_for_files([srv.dir, part_dir(srv, 0, topic)], gone, 60)
    check(ok, "segments %r of %d after: %s" % (segments(srv, 0, topic), before,
                                               srv.stderr_text()[-800:]))


def check_reads_from(a, srv, start, end, topic="events"):
    rc, out, err = consume(a, srv, "--topic", topic)
    check(rc == 0, "consume: rc %d %s" % (rc, err[-300:]))
    offs = [e["offset"] for e in parse_json_lines(out)]
    check(offs == list(range(start, end)),
          "consume printed %d events %s..%s, expected %d..%d" % (
              len(offs), offs[:1], offs[-1:], start, end))


def case_retention_by_size(a):
    # A topic created at runtime: only those take an alter (a config
    # topic's settings are the config's).
    t = "logs"
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", 1)]).start()
        try:
            rc, out, err = run([a.sluice, "topic", "create", t, "--partitions", "1",
                                "--set", "segment_bytes=16KiB", "--set", "retention.bytes=0",
                                "--set", "retention.age=0s", "--server", srv.addr], timeout=60)
            check(rc == 0, "create: rc %d %s" % (rc, err))
            produce_runs(a, srv, 1, 40, 40, t)
            n_segs = len(segments(srv, 0, t))
            check(n_segs > 10, "only %d segments" % n_segs)
            check("retention deleted" not in srv.stderr_text(),
                  "deleted without a limit: %s" % srv.stderr_text()[-500:])
            rc, out, err = run([a.sluice, "topic", "alter", t, "--set",
                                "retention.bytes=64KiB", "--server", srv.addr], timeout=60)
            check(rc == 0, "alter: rc %d %s" % (rc, err))
            wait_said(srv, "retention deleted")
            wait_deleted(srv, n_segs, t)
            left = segments(srv, 0, t)
            start = left[0]
            check(start > 0 and len(left) < n_segs, "segments %r" % left)
            check("by size" in srv.stderr_text(), srv.stderr_text()[-500:])
            sealed = [seg_size(srv, b, 0, t) for b in left[:-1]]
            # The rule (log.h): what stays is >= the limit with the active
            # segment; without the first kept one it would be less.
            check(sum(sealed[1:]) < 64 * 1024,
                  "segment %d could have gone too: %r" % (start, sealed))
            check(sum(sealed) + 16 * 1024 >= 64 * 1024, "too much went: %r" % sealed)
            st = status_part(srv, 0, t)
            check(st["log_start_offset"] == start and st["start_offset"] == start,
                  "status: %r (segments %r)" % (st, left))
            check(st["retention_deleted_segments"] == n_segs - len(left), "status: %r" % st)
            check(st["retention_held_by"] is None, "status: %r" % st)
            check(metric(srv, "sluice_log_start_offset", 0, t) == start, "metrics start")
            check(metric(srv, "sluice_retention_deleted_segments_total", 0, t)
                  == n_segs - len(left), "metrics segments")
            check_reads_from(a, srv, start, 1600, t)
            rc, out, err = consume(a, srv, "--topic", t, "--from", "0")
            check(rc == 1 and out == "" and "no longer stored" in err
                  and "starts at %d" % start in err,
                  "--from 0 below the start: rc %d %r %r" % (rc, out[:200], err))
            # kill -9: the start holds, reads and writes go on.
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait()
            port = srv.port
            srv = Server(a.sluiced, wd, port=port, topics=[("events", 1)]).start()
            check(segments(srv, 0, t)[0] == start, "after kill -9 the log starts at %d, not %d"
                  % (segments(srv, 0, t)[0], start))
            check(status_part(srv, 0, t)["log_start_offset"] == start, "status after kill -9")
            check_reads_from(a, srv, start, 1600, t)
            acks = produce(a, srv, 2, 10, t)
            check(acks[-1]["offset"] == 1609, "produce after restart: %r" % acks[-1])
            print("retention_by_size: %d of %d segments deleted after the alter, the log "
                  "starts at %d, kept across kill -9" % (n_segs - len(left), n_segs, start))
        finally:
            srv.kill()


def case_retention_by_age(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", 1)],
                     topic_keys=[SEG, "retention: { bytes: 0, age: 1s }"]).start()
        try:
            produce_runs(a, srv, 1, 30, 40)
            # Every sealed segment goes once its newest event is a second
            # old (some while the runs went on); the active one stays.
            ok = wait_for_files([srv.dir, part_dir(srv)], lambda: len(segments(srv)) == 1
                                and said_deleted(srv) >= 3, 60)
            check(ok, "segments left: %r; %s" % (segments(srv), srv.stderr_text()[-800:]))
            check("by age" in srv.stderr_text(), srv.stderr_text()[-500:])
            start = segments(srv)[0]
            check(start > 0, "nothing deleted")
            check(status_part(srv)["log_start_offset"] == start, "status start")
            check_reads_from(a, srv, start, 1200)
            print("retention_by_age: %d sealed segments deleted by age, the active one "
                  "(from %d) kept" % (said_deleted(srv), start))
        finally:
            srv.kill()


def chattr(flag, path):
    rc, _, err = run(["chattr", flag, path], timeout=30)
    check(rc == 0, "chattr %s %s: %s (needs root and a filesystem with it)" % (flag, path, err))


def case_retention_held_by_sink(a):
    with Workdir() as wd:
        keys = [SEG, "retention: { bytes: 32KiB, age: 0s }"]
        srv = Server(a.sluiced, wd, topics=[("events", 1)], topic_keys=keys)
        folder = os.path.join(srv.dir, "sink")
        os.makedirs(folder)
        sink_cfg = ("sinks:\n  - { name: archive, plugin: jsonl, from: events,\n"
                    "      args: { path: %s } }\n" % os.path.join(folder, "out.jsonl"))
        with open(srv.config, "a") as f:
            f.write(sink_cfg)
        srv.start()
        sink_file = os.path.join(folder, "out.0.jsonl")
        locked = False
        try:
            produce(a, srv, 1, 50)
            ok = wait_for_files(folder, lambda: os.path.getsize(sink_file) > 0, 30)
            check(ok, "the sink wrote nothing")
            chattr("+i", sink_file)
            locked = True
            produce_runs(a, srv, 2, 20, 100)
            wait_said(srv, "retention held at offset")
            wait_said(srv, "by sink archive")
            st = status_part(srv)
            check(st["retention_held_by"] == "sink archive", "status: %r" % st)
            check(metric(srv, "sluice_retention_held") == 1, "metrics held")
            held_start = st["log_start_offset"]
            # Nothing the sink has not written was deleted: its file ends
            # at or past the start.
            with open(sink_file) as f:
                written = sum(1 for line in f if line.strip())
            check(held_start <= written, "start %d past the sink's %d events"
                  % (held_start, written))
            rc, out, err = run([a.sluice, "status", "--server", srv.addr, "--http",
                                "127.0.0.1:%d" % srv.http_port], timeout=60)
            check(rc == 0 and "retention held by sink archive" in out,
                  "sluice status: rc %d %s" % (rc, out[-800:]))
            chattr("-i", sink_file)
            locked = False
            # The sink gave up on its file (it could not take back a failed
            # write): a restart recovers it; it then reads all and frees.
            srv.stop()
            os.rename(srv.stderr_path, os.path.join(srv.dir, "stderr.1.txt"))
            srv = Server(a.sluiced, wd, port=srv.port, topics=[("events", 1)], topic_keys=keys)
            with open(srv.config, "a") as f:
                f.write(sink_cfg)
            srv.start()
            wait_said(srv, "retention deleted")
            ok = wait_for_files(srv.dir, lambda: status_part(srv)["retention_held_by"] is None
                                and status_part(srv)["log_start_offset"] > held_start, 60)
            check(ok, "still held after the sink caught up: %r" % status_part(srv))
            print("retention_held_by_sink: held at %d by sink archive, freed after it caught "
                  "up (start %d)" % (held_start, status_part(srv)["log_start_offset"]))
        finally:
            if locked:
                subprocess.run(["chattr", "-i", sink_file])
            srv.kill()


def now_ms():
    return time.time_ns() // 1000000


def case_seek_by_time(a):
    with Workdir() as wd:
        srv = Server(a.sluiced, wd, topics=[("events", 2)], topic_keys=[SEG]).start()
        try:
            first = produce(a, srv, 1, 500)
            # Every event of the first batch was appended before produce
            # returned; the clock read after it, +1, is later than all of
            # them (one clock, one machine). Wait for the clock to pass it
            # (bounded: a few ms) so the second batch is strictly after.
            t = now_ms() + 1
            deadline = time.monotonic() + 5
            while now_ms() <= t:
                check(time.monotonic() < deadline, "the clock did not move")
            second = produce(a, srv, 2, 300)
            want = sorted(x["id"] for x in second)
            rfc = datetime.datetime.fromtimestamp(t / 1000, datetime.timezone.utc) \
                .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            for frm in ("@%d" % t, rfc):
                rc, out, err = consume(a, srv, "--from", frm)
                check(rc == 0, "--from %s: rc %d %s" % (frm, rc, err))
                got = sorted(e["id"] for e in parse_json_lines(out))
                check(got == want, "--from %s printed %d events, expected the %d of the "
                      "second batch" % (frm, len(got), len(want)))
            rc, out, err = consume(a, srv, "--from", "@%d" % (now_ms() + 60000))
            check(rc == 0 and out == "", "a future time printed %r %s" % (out[:200], err))
            rc, out, err = consume(a, srv, "--from", "@1")
            check(rc == 0 and len(parse_json_lines(out)) == len(first) + len(second),
                  "--from @1: %d events" % len(parse_json_lines(out)))
            rc, out, err = consume(a, srv, "--from", "2026-13-01T00:00:00Z")
            check(rc == 2, "a bad time: rc %d" % rc)
            print("seek_by_time: --from @%d and %s printed the %d events after it" % (
                t, rfc, len(want)))
        finally:
            srv.kill()


CASES = {
    "retention_by_size": case_retention_by_size,
    "retention_by_age": case_retention_by_age,
    "retention_held_by_sink": case_retention_held_by_sink,
    "seek_by_time": case_seek_by_time,
}

if __name__ == "__main__":
    sys.exit(main(CASES))
