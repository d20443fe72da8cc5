#!/usr/bin/env bash
# bench/scripts/scale.sh BINDIR N: issue 22's table row for N partitions:
# a fresh sluiced (2 reactors, fsync, segment_bytes 16MiB, no projections),
# `sluice bench --events 1000000 --size 100 --connections 2 --keys 100000`,
# then events/s, ack p99, fdatasyncs (from /metrics), RSS, descriptors and
# disk reserved.
set -euo pipefail
BIN=$1 N=$2
D=$(mktemp -d /tmp/sluice-scale.XXXXXX)
trap 'kill -TERM $P 2>/dev/null; wait $P 2>/dev/null; rm -rf "$D"' EXIT
cat > "$D/cfg.yaml" <<EOC
data_dir: $D/data
cores: 2
listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }
topics: [ { name: events, partitions: $N, segment_bytes: 16MiB } ]
EOC
"$BIN/sluiced" --config "$D/cfg.yaml" > "$D/out" 2> "$D/err" &
P=$!
for _ in $(seq 1200); do grep -q ready "$D/out" && break; sleep 0.05; done
PORT=$(grep -o 'native [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
HP=$(grep -o 'http [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
"$BIN/sluice" bench --events 1000000 --size 100 --connections 2 --keys 100000 \
  --server "127.0.0.1:$PORT" 2>/dev/null |
  python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); print("events/s %.0f p99_us %d" % (j["events_per_s"], j["p99_us"]), end=" ")'
syncs=$(curl -s "http://127.0.0.1:$HP/metrics" | awk '/^sluice_log_sync_seconds_count/ {s+=$2} END {print s}')
echo "N=$N syncs=$syncs rss=$(awk '/VmRSS/ {print $2}' /proc/$P/status)kB" \
     "fds=$(ls /proc/$P/fd | wc -l) reserved=$(du -sm "$D/data" | cut -f1)MiB"
