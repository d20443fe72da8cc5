#!/usr/bin/env bash
# bench/scripts/ab.sh KIND BINDIR PLUGDIR EVENTS: one `sluice bench` run
# against a fresh sluiced of BINDIR, printing events/s. Run it alternately
# with two builds (old, new, old, new, ...) to compare them on one machine
# in one sitting, as the session notes do.
#   KIND p2:  one topic of 2 partitions, fsync
#   KIND def: 8 partitions with the counter and latest projections
# The server gets 2 reactors; the load is 4 connections of 64-byte events.
set -euo pipefail
KIND=$1 BIN=$2 PLUG=$3 N=$4
D=$(mktemp -d /tmp/sluice-ab.XXXXXX)
trap 'kill -TERM $SP 2>/dev/null; wait $SP 2>/dev/null; rm -rf "$D"' EXIT
{
  echo "data_dir: $D/data"
  echo "cores: 2"
  echo "plugin_path: [$PLUG]"
  echo "listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }"
  echo "topics:"
  if [ "$KIND" = p2 ]; then
    echo "  - { name: events, partitions: 2 }"
  else
    echo "  - { name: events, partitions: 8 }"
    echo "projections:"
    echo "  - { name: c, plugin: counter, from: events }"
    echo "  - { name: l, plugin: latest, from: events }"
  fi
} > "$D/cfg.yaml"
"$BIN/sluiced" --config "$D/cfg.yaml" > "$D/out" 2> "$D/err" &
SP=$!
for _ in $(seq 600); do grep -q ready "$D/out" && break; sleep 0.05; done
PORT=$(grep -o 'native [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
"$BIN/sluice" bench --events "$N" --size 64 --connections 4 --server "127.0.0.1:$PORT" 2>/dev/null |
  python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["events_per_s"])'
