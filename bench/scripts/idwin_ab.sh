#!/usr/bin/env bash
# bench/scripts/idwin_ab.sh BINDIR PLUGDIR [EVENTS] [PAIRS]: the event-id
# window's cost on the default config's throughput. Each run starts a fresh
# sluiced of BINDIR with the default config's topic and projections (written
# out below: 8 partitions, fsync, counter and latest), A with
# `dedup_window: 0` (off) and B with the default (10m, 262,144 ids), and runs
# `sluice bench --events EVENTS --size 100 --connections 8` (default keys:
# every id a random v4 UUID). A and B alternate (A, B, A, B, ...) PAIRS
# times; it prints each run's events/s and the median of B/A.
set -euo pipefail
BIN=$(realpath "$1") PLUG=$(realpath "$2") N=${3:-1000000} PAIRS=${4:-3}
run() { # $1: extra topic keys
  local D SP PORT
  D=$(mktemp -d /tmp/sluice-idwin.XXXXXX)
  {
    echo "data_dir: $D/data"
    echo "plugin_path: [$PLUG]"
    echo "listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }"
    echo "topics:"
    echo "  - { name: events, partitions: 8$1 }"
    echo "projections:"
    echo "  - { name: counter, plugin: counter, from: events }"
    echo "  - { name: latest, plugin: latest, from: events }"
  } > "$D/cfg.yaml"
  "$BIN/sluiced" --config "$D/cfg.yaml" > "$D/out" 2> "$D/err" &
  SP=$!
  for _ in $(seq 600); do grep -q ready "$D/out" && break; sleep 0.05; done
  PORT=$(grep -o 'native [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
  "$BIN/sluice" bench --events "$N" --size 100 --connections 8 --server "127.0.0.1:$PORT" \
    2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["events_per_s"])'
  kill -TERM $SP; wait $SP 2>/dev/null || true
  rm -rf "$D"
}
a=() b=()
for i in $(seq "$PAIRS"); do
  a+=("$(run ', dedup_window: 0')")
  b+=("$(run '')")
  echo "pair $i: A (off) ${a[-1]}  B (on) ${b[-1]}  B/A $(python3 -c "print(round(${b[-1]}/${a[-1]}, 3))")"
done
python3 - "${a[*]}" "${b[*]}" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
r = [y / x for x, y in zip(a, b)]
print(f"median A {statistics.median(a):.0f}  median B {statistics.median(b):.0f}  "
      f"median B/A {statistics.median(r):.3f}  (cost {100 * (1 - statistics.median(r)):.1f}%)")
PY
