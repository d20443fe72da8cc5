#!/usr/bin/env bash
# bench/scripts/scale.sh BINDIR N: issue 22's table row for N partitions:
# a fresh sluiced (2 reactors, fsync, segment_bytes 16MiB, no projections),
# `sluice bench --events 1000000 --size 100 --connections 2 --keys 100000`,
# then events/s, ack p99, fdatasyncs (from /metrics), RSS, descriptors,
# disk reserved and the start time (launch to the first /healthz answer, ms).
set -euo pipefail
BIN=$1 N=$2
D=$(mktemp -d /tmp/sluice-scale.XXXXXX)
# The trap runs under set -e too: a kill or wait that fails (sluiced gone
# already, or exiting non-zero) must not skip the rm.
P=
trap 'if [[ -n $P ]]; then kill -TERM "$P" 2>/dev/null || true; wait "$P" 2>/dev/null || true; fi
      rm -rf "$D"' EXIT
cat > "$D/cfg.yaml" <<EOC
data_dir: $D/data
cores: 2
listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }
topics: [ { name: events, partitions: $N, segment_bytes: 16MiB } ]
EOC
t0=$(date +%s%N)
"$BIN/sluiced" --config "$D/cfg.yaml" > "$D/out" 2> "$D/err" &
P=$!
# Start time: from the launch to the first 200 from /healthz, what a
# readiness probe sees. The ports are 0, and sluiced's stdout (a file here)
# is flushed at "ready", so the HTTP port is known from then on: the figure
# is the whole start (partitions opened and recovered) plus one answer.
# Polled every 5 ms (plus a curl, a few ms), so it is good to ~10 ms; at
# most 60 s (10,000 partitions start in 6 s), and over at once if sluiced
# exits.
HP='' start_ms=''
while (( $(date +%s%N) - t0 < 60000000000 )); do
  kill -0 "$P" 2>/dev/null || break
  [[ -z $HP ]] && HP=$(grep -o 'http [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2 || true)
  if [[ -n $HP ]] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$HP/healthz"; then
    start_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    break
  fi
  sleep 0.005
done
if [[ -z $start_ms ]]; then
  kill -0 "$P" 2>/dev/null && why="no /healthz answer within 60 s" || why="sluiced exited"
  echo "N=$N: $why: $(tail -3 "$D/err")" >&2
  exit 1
fi
PORT=$(grep -o 'native [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
"$BIN/sluice" bench --events 1000000 --size 100 --connections 2 --keys 100000 \
  --server "127.0.0.1:$PORT" 2>/dev/null |
  python3 -c 'import json,sys; j=json.loads(sys.stdin.readline()); print("events/s %.0f p99_us %d" % (j["events_per_s"], j["p99_us"]), end=" ")'
syncs=$(curl -s "http://127.0.0.1:$HP/metrics" | awk '/^sluice_(log|journal)_sync_seconds_count/ {s+=$2} END {print s+0}')
echo "N=$N syncs=$syncs rss=$(awk '/VmRSS/ {print $2}' /proc/$P/status)kB" \
     "fds=$(ls /proc/$P/fd | wc -l) reserved=$(du -sm "$D/data" | cut -f1)MiB start_ms=$start_ms"
