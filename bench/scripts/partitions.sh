#!/usr/bin/env bash
# bench/scripts/partitions.sh BINDIR N [TOPICS]: starts sluiced with N
# partitions (split over TOPICS topics, default 1; at most 4,096 each),
# segment_bytes 16MiB, and prints the time to "ready", the disk reserved,
# the open descriptors and the resident memory, then produces one event.
set -euo pipefail
BIN=$1 N=$2 T=${3:-1}
D=$(mktemp -d /tmp/sluice-parts.XXXXXX)
trap 'kill -TERM $P 2>/dev/null; wait $P 2>/dev/null; rm -rf "$D"' EXIT
{
  echo "data_dir: $D/data"
  echo "cores: 2"
  echo "listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }"
  echo "topics:"
  for t in $(seq "$T"); do
    echo "  - { name: t$t, partitions: $(( N / T )), segment_bytes: 16MiB }"
  done
} > "$D/cfg.yaml"
t0=$(date +%s.%N)
"$BIN/sluiced" --config "$D/cfg.yaml" > "$D/out" 2> "$D/err" &
P=$!
for _ in $(seq 6000); do grep -q ready "$D/out" && break; kill -0 $P 2>/dev/null || break; sleep 0.05; done
t1=$(date +%s.%N)
if ! grep -q ready "$D/out"; then echo "N=$N failed: $(tail -3 "$D/err")"; exit 1; fi
PORT=$(grep -o 'native [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
echo "N=$N start=$(echo "$t1 - $t0" | bc)s reserved=$(du -sm "$D/data" | cut -f1)MiB" \
     "fds=$(ls /proc/$P/fd | wc -l) rss=$(awk '/VmRSS/ {print $2}' /proc/$P/status)kB"
echo '{"type":"t","aggregate":"x","data":1}' |
  "$BIN/sluice" produce --topic t1 --server "127.0.0.1:$PORT" 2>&1 | tail -1
