#!/usr/bin/env bash
# bench/scripts/cluster.sh BINDIR MODE [EVENTS] [RATE]: issue 16's figures.
#   MODE alone: one sluiced, no cluster (cores 2)
#   MODE r1:    three nodes and an etcd, topic with replicas 1 (acks leader)
#   MODE r3:    three nodes and an etcd, replicas 3, acks quorum
# Every node has one reactor (three servers share the two cores here). The
# topic has one partition, led by n1 (placement: the first node by id), so
# that one `sluice bench` against n1 measures the replicated write path:
#   sluice bench --events EVENTS --size 100 --connections 2 [--rate RATE]
# Prints the bench's JSON line, then (cluster modes) the largest follower
# lag seen on the leader's /v1/cluster, sampled every 50 ms during the run.
set -euo pipefail
BIN=$1 MODE=$2 EVENTS=${3:-1000000} RATE=${4:-0}
D=$(mktemp -d /tmp/sluice-cbench.XXXXXX)
PIDS=()
declare -a ADDR HADDR
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
      wait 2>/dev/null || true; rm -rf "$D"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_line() { # FILE TEXT: until the file holds the text (at most 30 s)
  for _ in $(seq 3000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.01; done
  echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

if [[ $MODE == alone ]]; then
  NP=$(port) HPORT=$(port)
  cat > "$D/n1.yaml" <<EOC
data_dir: $D/n1
cores: 2
listen: { native: 127.0.0.1:$NP, http: 127.0.0.1:$HPORT }
topics: [ { name: events, partitions: 1 } ]
projections: []
EOC
  "$BIN/sluiced" --config "$D/n1.yaml" > "$D/n1.out" 2> "$D/n1.err" & PIDS+=($!)
  wait_line "$D/n1.out" "sluiced: ready"
  LEADER=127.0.0.1:$NP
else
  R=1; [[ $MODE == r3 ]] && R=3
  EP=$(port) EPP=$(port)
  etcd --name t --data-dir "$D/etcd" --listen-client-urls "http://127.0.0.1:$EP" \
    --advertise-client-urls "http://127.0.0.1:$EP" --listen-peer-urls "http://127.0.0.1:$EPP" \
    --initial-advertise-peer-urls "http://127.0.0.1:$EPP" \
    --initial-cluster "t=http://127.0.0.1:$EPP" > "$D/etcd.log" 2>&1 & PIDS+=($!)
  wait_line "$D/etcd.log" "ready to serve client requests"
  for i in 1 2 3; do
    NP=$(port) HPORT=$(port)
    ADDR[$i]=127.0.0.1:$NP HADDR[$i]=127.0.0.1:$HPORT
    cat > "$D/n$i.yaml" <<EOC
data_dir: $D/n$i
cores: 1
listen: { native: 127.0.0.1:$NP, http: 127.0.0.1:$HPORT }
node: { id: n$i }
cluster: { etcd: [ http://127.0.0.1:$EP ], name: bench, session_ttl: 5s }
topics: [ { name: events, partitions: 1, replicas: $R } ]
projections: []
EOC
    "$BIN/sluiced" --config "$D/n$i.yaml" > "$D/n$i.out" 2> "$D/n$i.err" & PIDS+=($!)
  done
  # The leader: n1 under replicas 3 (the first live node by id); with one
  # replica, whichever node placed the partition first.
  for _ in $(seq 3000); do
    L=$(grep -l "events/0: leader, leader epoch" "$D"/n?.err 2>/dev/null | head -1 || true)
    [[ -n $L ]] && break; sleep 0.01
  done
  [[ -n $L ]] || { echo "no leader" >&2; exit 1; }
  i=${L##*/n}; i=${i%.err}
  LEADER=${ADDR[$i]} LHTTP=${HADDR[$i]}
fi

args=(--events "$EVENTS" --size 100 --connections 2 --server "$LEADER")
[[ $RATE != 0 ]] && args+=(--rate "$RATE")
"$BIN/sluice" bench "${args[@]}" > "$D/bench.out" 2> "$D/bench.err" & B=$!
if [[ $MODE == r3 ]]; then
  : > "$D/lag"
  while kill -0 $B 2>/dev/null; do
    curl -sf --max-time 1 "http://$LHTTP/v1/cluster" >> "$D/lag" || true
    echo >> "$D/lag"
    sleep 0.05
  done
fi
wait $B
tail -n 1 "$D/bench.out"
if [[ $MODE == r3 ]]; then
  python3 - "$D/lag" <<'EOP'
import json, sys
ev = sec = 0.0
n = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    try:
        p = json.loads(line)["topics"][0]["partitions"][0]
    except (ValueError, KeyError, IndexError):
        continue
    n += 1
    for r in p.get("replica_state", []):
        if r["node"] != p["leader"]:
            ev = max(ev, r["lag_events"])
            sec = max(sec, r["lag_seconds"])
print(json.dumps({"lag_samples": n, "max_lag_events": ev, "max_lag_seconds": sec}))
EOP
fi
