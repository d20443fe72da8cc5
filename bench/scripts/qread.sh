#!/usr/bin/env bash
# bench/scripts/qread.sh BINDIR [QUERIES] [RATE]: issue 17 item 4's figures,
# the latency of a projection query with consistency=one against =quorum.
# Three nodes and an etcd on loopback (one reactor each; they share the
# machine's cores), topic `events` with one partition, replicas 3, acks
# quorum, the `counter` and `latest` projections; n1 leads. 1,000 events
# are produced first; with RATE > 0 a `sluice bench --rate RATE` writes on
# beside the queries (open loop, events/s).
# For each node asked (n1 the leader, n2 a follower) and each consistency,
# QUERIES (default 2000) sequential GET /v1/projections/latest/KEY on one
# keep-alive connection (the keys of the events, round robin); prints one
# JSON line per pair: {"node","consistency","queries","p50_us","p99_us",
# "max_us","errors","waited"} (waited: quorum answers that needed the
# second round, a model catching up with what another replica holds).
set -euo pipefail
BIN=$1 QUERIES=${2:-2000} RATE=${3:-0}
D=$(mktemp -d /tmp/sluice-qbench.XXXXXX)
PIDS=()
declare -a ADDR HADDR
trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
      wait 2>/dev/null || true; rm -rf "$D"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_line() { # FILE TEXT: until the file holds the text (at most 30 s)
  for _ in $(seq 3000); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.01; done
  echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

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
cluster: { etcd: [ http://127.0.0.1:$EP ], name: qbench, session_ttl: 5s }
topics: [ { name: events, partitions: 1, replicas: 3, acks: quorum } ]
projections:
  - { name: counter, plugin: counter, from: events }
  - { name: latest, plugin: latest, from: events }
EOC
  "$BIN/sluiced" --config "$D/n$i.yaml" > "$D/n$i.out" 2> "$D/n$i.err" & PIDS+=($!)
done
wait_line "$D/n1.err" "events/0: leader, leader epoch"

python3 -c '
import json
for i in range(1000):
    print(json.dumps({"type": "T", "aggregate": "k%d" % (i % 50), "data": {"i": i}}))
' | "$BIN/sluice" produce --server "${ADDR[1]}" --topic events --timeout 60 2> "$D/produce.err"

if [[ $RATE != 0 ]]; then
  "$BIN/sluice" bench --server "${ADDR[1]}" --topic events --events 100000000 --size 100 \
    --connections 2 --rate "$RATE" > "$D/bench.out" 2> "$D/bench.err" & PIDS+=($!)
fi

python3 - "$QUERIES" "n1=${HADDR[1]}" "n2=${HADDR[2]}" <<'EOP'
import http.client, json, sys, time
n = int(sys.argv[1])
for spec in sys.argv[2:]:
    node, addr = spec.split("=")
    host, port = addr.split(":")
    for cons in ("one", "quorum"):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        lat, errors, waited = [], 0, 0
        for q in range(n + 50):
            t0 = time.perf_counter()
            conn.request("GET", "/v1/projections/latest/k%d?consistency=%s" % (q % 50, cons))
            r = conn.getresponse()
            body = r.read()
            dt = time.perf_counter() - t0
            if r.status != 200:
                errors += 1
            elif b'"waited":true' in body:
                waited += 1
            if q >= 50:  # the first 50 warm the connections up
                lat.append(dt)
        conn.close()
        lat.sort()
        us = lambda x: round(x * 1e6)
        print(json.dumps({"node": node, "consistency": cons, "queries": n,
                          "p50_us": us(lat[len(lat) // 2]), "p99_us": us(lat[len(lat) * 99 // 100]),
                          "max_us": us(lat[-1]), "errors": errors, "waited": waited}))
EOP
