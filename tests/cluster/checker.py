"""The checker: what the clients saw against what the cluster holds at the end.

Inputs: every producer's attempted events and acks (with times), every
consumer's reads, the final log of each partition (read from its leader
once the cluster is whole and every fault healed), each node's segment
files, and the nemesis's fault records.

Counts (the summary's keys):
  acked              distinct events acked
  lost               acked but absent from the final log
  dup                stored more than once (stored - distinct stored)
  order              per-key order violations: of the first occurrences of a
                     key's events in the log (events the harness resent after
                     a client exit left out), one whose producer sequence is
                     below the previous one's
  never_attempted    stored events no producer ever fed (a bug)
  unacked_stored     stored, fed, never acked (allowed, counted)
  ack_offset_moved   acked at (p, o), but no copy of it is stored there
  read_lost          read by a consumer at an offset where the final log has
                     another event or none (a read of something not durable)
  replica_diff       batches below the HW that differ between replicas, or a
                     replica missing one (byte compare of each batch)
Availability: for every fault and partition, the time from the fault's
start to the next ack on that partition (`next_ack_s`); failover time is
that for the partitions the faulted node led when the fault started, for
the kinds that take a leader away (kill, pause, isolate, split, skew);
p50/p99 over the run against session_ttl.
"""

import collections
import json
import os
import struct

HDR = 64
MAGIC = b"SLB2"
LEADER_LOSING = ("kill", "pause", "isolate", "split", "skew")


def batches(folder):
    """(base, count, bytes) of every batch in a partition folder's segments,
    laid out as engine/log/batch.h says (base at 8, count at 16, len at 20)."""
    out = []
    if not os.path.isdir(folder):
        return out
    for f in sorted(x for x in os.listdir(folder) if x.endswith(".log")):
        with open(os.path.join(folder, f), "rb") as fh:
            img = fh.read()
        pos = 0
        while pos + HDR <= len(img) and img[pos:pos + 4] == MAGIC:
            base, count, blen = struct.unpack_from("<QII", img, pos + 8)
            out.append((base, count, img[pos:pos + HDR + blen]))
            pos += (HDR + blen + 7) & ~7
    return out


def _varint(b, i):
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, i
        shift += 7


def _event(b):
    """id, aggregate and data of an encoded sluice.v1.Event
    (schemas/sluice/v1/event.proto: id = 1 (16 bytes), aggregate = 3,
    data = 5); other fields skipped by wire type."""
    out = {}
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            _, i = _varint(b, i)
        elif wt == 2:
            n, i = _varint(b, i)
            out[field] = b[i:i + n]
            i += n
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
    import uuid
    data = out.get(5, b"")
    try:
        data = json.loads(data)
    except ValueError:
        data = {}
    return {"id": str(uuid.UUID(bytes=out[1])), "aggregate": out.get(3, b"").decode(),
            "data": data}


def disk_log(topo, node, partition, upto):
    """The events of node's own copy of a partition below offset `upto`, read
    from its segment files (batch.h's layout: records of varint size, varint
    sequence delta, encoded event): what the node holds, whatever its read
    path serves."""
    d = os.path.join(topo.wd, node, "data", "events", str(partition))
    out = []
    for base, count, x in batches(d):
        i = HDR
        for k in range(count):
            size, i = _varint(x, i)
            _, i = _varint(x, i)
            if base + k < upto:
                e = _event(x[i:i + size])
                e["offset"] = base + k
                out.append(e)
            i += size
    out.sort(key=lambda e: e["offset"])
    return out


def compare_replicas(topo, partition, hw, nodes=None):
    """Batches below the HW, node by node (the partition's replicas: `nodes`,
    default every node) against the fullest: the number that differ or are
    missing, and a description of the first."""
    views = {}
    for n in nodes or topo.nodes:
        d = os.path.join(topo.wd, n, "data", "events", str(partition))
        views[n] = {b: (c, x) for b, c, x in batches(d) if b + c <= hw}
    ref_node = max(views, key=lambda n: sum(c for c, _ in views[n].values()))
    ref = views[ref_node]
    diff = 0
    first = None
    for n, v in views.items():
        if n == ref_node:
            continue
        for base, (c, x) in ref.items():
            if v.get(base) != (c, x):
                diff += 1
                if first is None:
                    first = "%s vs %s: batch at offset %d %s" % (
                        n, ref_node, base, "missing" if base not in v else "differs")
    covered = sum(c for c, _ in ref.values())
    return diff, first, covered


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def check(topo, producers, consumers, final, hws, faults, t_zero, ttl_s, replicas=None):
    """replicas: {partition: [node, ...]} as etcd holds them (with more
    nodes than replicas, the others hold nothing of it)."""
    attempted = {}
    resent = set()
    acks = {}
    acked_twice = 0
    for pr in producers:
        attempted.update(pr.attempted)
        resent |= pr.resent
        acks.update(pr.acks)
        acked_twice += pr.acked_twice
    stored_at = {}  # id -> (partition, offset) of the first occurrence
    stored_all = collections.defaultdict(set)  # id -> every (partition, offset)
    counts = collections.Counter()
    order = 0
    order_ex = []
    for p, evs in sorted(final.items()):
        last = {}
        for e in evs:
            counts[e["id"]] += 1
            stored_all[e["id"]].add((p, e["offset"]))
            if e["id"] in stored_at:
                continue
            stored_at[e["id"]] = (p, e["offset"])
            if e["id"] in resent or e["id"] not in attempted:
                continue
            k = e["aggregate"]
            i = e["data"]["i"]
            if k in last and last[k][0] > i:
                order += 1
                if len(order_ex) < 3:
                    order_ex.append("%s: i %d at %d:%d after i %d at %d:%d" % (
                        k, i, p, e["offset"], last[k][0], p, last[k][1]))
            if k not in last or last[k][0] < i:
                last[k] = (i, e["offset"])
    lost = [x for x in acks if x not in stored_at]
    dup_ids = [x for x, c in counts.items() if c > 1]
    dup = sum(c - 1 for c in counts.values())
    never = [x for x in stored_at if x not in attempted]
    unacked_stored = [x for x in stored_at if x not in acks]
    # An event stored twice (a resend under a new producer identity) is
    # acked at one of its places: moved only when that is none of them.
    moved = [x for x, (t, p, o) in acks.items() if x in stored_at and (p, o) not in stored_all[x]]
    read_lost = 0
    reads = 0
    read_lost_ex = []
    for c in consumers:
        by_off = {e["offset"]: e["id"] for e in final.get(c.p, [])}
        for off, eid in sorted(c.reads.items()):
            reads += 1
            if by_off.get(off) != eid:
                read_lost += 1
                if len(read_lost_ex) < 3 or off == max(c.reads):
                    read_lost_ex.append({
                        "partition": c.p, "offset": off, "read": eid,
                        "final_there": by_off.get(off), "final_at": stored_at.get(eid),
                        "acked": eid in acks, "read_at_s": round(c.read_at[off] - t_zero, 3)})
    replica_diff = 0
    replica_first = None
    compared = {}
    for p, hw in hws.items():
        d, first, covered = compare_replicas(topo, p, hw, (replicas or {}).get(p))
        replica_diff += d
        compared[p] = covered
        replica_first = replica_first or first

    # Availability: acks per partition, in time order.
    by_part = collections.defaultdict(list)
    for t, p, o in acks.values():
        by_part[p].append(t - t_zero)
    for p in by_part:
        by_part[p].sort()
    import bisect
    failover = []
    timeline = []
    for f in faults:
        nxt = {}
        for p in range(topo.partitions):
            ts = by_part.get(p, [])
            i = bisect.bisect_right(ts, f["start"])
            nxt[p] = round(ts[i] - f["start"], 3) if i < len(ts) else None
        led = [p for p, l in f["leaders"].items() if l == f["node"]]
        fo = {p: nxt[p] for p in led} if f["kind"] in LEADER_LOSING else {}
        failover += [v for v in fo.values() if v is not None]
        timeline.append({"fault": f["i"], "kind": f["kind"], "what": f["what"],
                         "start": round(f["start"], 3), "healed": round(f.get("healed", 0), 3),
                         "whole_after_heal_s": f.get("whole_after_heal_s"),
                         "next_ack_s": nxt, "failover_s": fo})
    # Duplicates and losses by the fault that was on (or last) when the
    # event was first fed.
    def fault_at(t):
        cur = None
        for f in faults:
            if f["start"] <= t - t_zero:
                cur = f
        return cur["kind"] if cur else "none"
    dup_by_kind = collections.Counter(fault_at(attempted[x][2]) for x in dup_ids
                                      if x in attempted)
    lost_by_kind = collections.Counter(fault_at(attempted[x][2]) for x in lost)
    summary = {
        "acked": len(acks), "attempted": len(attempted), "stored": sum(counts.values()),
        "lost": len(lost), "dup": dup, "order": order, "never_attempted": len(never),
        "unacked_stored": len(unacked_stored), "ack_offset_moved": len(moved),
        "acked_twice": acked_twice, "resent": len(resent), "reads": reads,
        "read_lost": read_lost, "replica_diff": replica_diff,
        "replica_compared_events": compared,
        "faults": len(faults),
        "failover_p50_s": pct(failover, 0.5), "failover_p99_s": pct(failover, 0.99),
        "failover_n": len(failover), "session_ttl_s": ttl_s,
        "dup_by_fault": dict(dup_by_kind), "lost_by_fault": dict(lost_by_kind),
    }
    details = {"lost_ex": lost[:5], "dup_ex": dup_ids[:5], "order_ex": order_ex,
               "never_ex": never[:5], "moved_ex": [(x, acks[x][1:], stored_at[x])
                                                   for x in moved[:5]],
               "replica_first": replica_first, "read_lost_ex": read_lost_ex,
               "timeline": timeline}
    return summary, details


def table(summary, details):
    rows = [("acked", "lost", "dup", "order", "unacked_stored", "never_attempted",
             "ack_offset_moved", "read_lost", "replica_diff")]
    lines = ["  %-18s %s" % (k, summary[k]) for k in rows[0]]
    lines.append("  %-18s p50 %s s, p99 %s s over %d leader-losing faults (session_ttl %s s)"
                 % ("failover", summary["failover_p50_s"], summary["failover_p99_s"],
                    summary["failover_n"], summary["session_ttl_s"]))
    lines.append("  %-18s %s" % ("dup by fault", json.dumps(summary["dup_by_fault"])))
    lines.append("  %-18s %s" % ("lost by fault", json.dumps(summary["lost_by_fault"])))
    lines.append("  availability (fault -> next ack per partition, s):")
    for r in details["timeline"]:
        lines.append("    #%-3d +%7.2f %-8s %-62s next %s%s" % (
            r["fault"], r["start"], r["kind"], r["what"][:62],
            " ".join("p%d=%s" % (p, "-" if v is None else "%.2f" % v)
                     for p, v in sorted(r["next_ack_s"].items())),
            "" if r["whole_after_heal_s"] is not None or r["kind"] is None
            else " (not whole after heal)"))
    return "\n".join(lines)
