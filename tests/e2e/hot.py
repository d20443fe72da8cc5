"""Hot partitions and hot keys (issue 19 item 3) through a real sluiced.

skewed_stream: 8 partitions, the defaults (hot_keys 10, hot_partition_factor
  4). Batches of 20,000 events, 60% of them under one aggregate id and the
  rest over 2,000 others, so the hot key's partition takes ~65% of the
  events (~5x the mean). After each batch /v1/status, /metrics and `sluice
  status` are read, until all of them name the hot key first (with its
  partition), the skew is over 1 and the server's stderr says the hot
  key's partition is hot; at most 60 s of batches. Two more batches then
  leave that line said once (a crossing, not a tick).
"""

import json
import random
import re
import time

from harness import Server, Workdir, check, http_open, main, run

HOT = "hot-key"
BATCH = 20000
DEADLINE_S = 60


def batch(rng):
    lines = []
    for _ in range(BATCH):
        key = HOT if rng.random() < 0.6 else "k-%d" % rng.randrange(2000)
        lines.append(json.dumps({"type": "T", "aggregate": key, "data": {}}))
    return ("\n".join(lines) + "\n").encode()


def get(srv, path):
    with http_open("http://127.0.0.1:%d%s" % (srv.http_port, path), token=srv.token) as r:
        return r.read().decode()


def hot_lines(srv, part):
    return re.findall(r"^sluiced: hot partition: topic=events partition=%d " % part,
                      srv.stderr_text(), re.M)


def skewed_stream(args):
    rng = random.Random(19)
    with Workdir() as wd, Server(args.sluiced, wd) as srv:
        deadline = time.monotonic() + DEADLINE_S
        seen = None
        while not seen:
            check(time.monotonic() < deadline,
                  "not seen within %d s: status %s\nstderr:\n%s" %
                  (DEADLINE_S, get(srv, "/v1/status")[:3000], srv.stderr_text()[-2000:]))
            rc, _, err = run([args.sluice, "produce", "--server", srv.addr], stdin=batch(rng))
            check(rc == 0, "produce failed (%d): %s" % (rc, err))
            st = json.loads(get(srv, "/v1/status"))
            t = [t for t in st["topics"] if t["name"] == "events"][0]
            keys = t.get("hot_keys", [])
            if not keys or keys[0]["key"] != HOT or t["skew"] <= 1:
                continue
            part = keys[0]["partition"]
            metrics = get(srv, "/metrics")
            m = re.search(r'^sluice_topic_hot_key_events_per_second\{topic="events",rank="1",'
                          r'key="([^"]*)"\} (\S+)$', metrics, re.M)
            sk = re.search(r'^sluice_topic_partition_skew\{topic="events"\} (\S+)$', metrics,
                           re.M)
            if not (m and m.group(1) == HOT and sk and float(sk.group(1)) > 1):
                continue
            if not hot_lines(srv, part):
                continue
            seen = (t, part, metrics)
        t, part, metrics = seen
        # The hot key's partition is the busiest, by the status and metrics.
        rates = [p["events_per_s"] for p in t["partitions"]]
        check(max(rates) == rates[part], "partition %d is not the busiest: %s" % (part, rates))
        check(keys[0]["events_per_s"] > 0 and keys[0]["error"] >= 0, "hot key %s" % keys[0])
        check(re.search(r'^sluice_partition_events_per_second\{topic="events",partition="%d"\} '
                        % part, metrics, re.M), "no partition rate in /metrics")
        rc, out, err = run([args.sluice, "status", "--server", srv.addr,
                            "--http", "127.0.0.1:%d" % srv.http_port])
        check(rc == 0, "status failed (%d): %s" % (rc, err))
        check(re.search(r"^\s+1\. %s\s.*partition %d$" % (HOT, part), out, re.M),
              "sluice status does not name %s first:\n%s" % (HOT, out))
        check(re.search(r"^\s+events\s.*skew", out, re.M), "no skew line:\n%s" % out)
        # Said once per crossing: still one line after more of the same.
        for _ in range(2):
            rc, _, err = run([args.sluice, "produce", "--server", srv.addr], stdin=batch(rng))
            check(rc == 0, "produce failed (%d): %s" % (rc, err))
        check(len(hot_lines(srv, part)) == 1,
              "the hot line said %d times:\n%s" % (len(hot_lines(srv, part)),
                                                   srv.stderr_text()[-2000:]))


if __name__ == "__main__":
    raise SystemExit(main({"skewed_stream": skewed_stream}))
