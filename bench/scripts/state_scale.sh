#!/usr/bin/env bash
# bench/scripts/state_scale.sh BINDIR EVENTS KEYS [PROJECTIONS] [BUDGET]:
# issue 21's table row. A fresh sluiced (8 partitions, fsync, the given
# projections, default: counter and latest; memory_budget default 512MiB),
# `sluice bench --events EVENTS --size 100 --connections 2 --keys KEYS`
# with a query thread asking counter for its total meanwhile; then:
#   ingest events/s, query p50/p99 under ingest (us),
#   apply: seconds from the bench's start until every projection applied
#          (and committed) every event, and the rate that makes,
#   RSS at the end (VmRSS, RssAnon, RssFile) and its high-water mark (VmHWM),
#   disk of data/projections,
#   drain: SIGTERM to exit, ms,
#   restart: launch to the first /healthz 200, ms, and to a counter answer
#            with lag 0, ms; RSS right after.
# Distinct aggregates are about KEYS x (1 - e^(-EVENTS/KEYS)) (random draws);
# with SEQ=1 in the environment (--sequential-keys) exactly min(EVENTS, KEYS).
set -euo pipefail
BIN=$1 EVENTS=$2 KEYS=$3 PROJ=${4:-counter,latest} BUDGET=${5:-512MiB}
D=$(mktemp -d /var/tmp/sluice-state-scale.XXXXXX)
P=
trap 'if [[ -n $P ]]; then kill -KILL "$P" 2>/dev/null || true; wait "$P" 2>/dev/null || true; fi
      rm -rf "$D"' EXIT
{
  echo "data_dir: $D/data"
  echo "listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }"
  echo "limits: { memory_budget: $BUDGET }"
  echo "topics: [ { name: events, partitions: 8 } ]"
  echo "projections:"
  for p in ${PROJ//,/ }; do echo "  - { name: $p, plugin: $p, from: events }"; done
} > "$D/cfg.yaml"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
start() {
  : > "$D/out"
  "$BIN/sluiced" --config "$D/cfg.yaml" > "$D/out" 2>> "$D/err" &
  P=$!
  HP='' NP=''
  for _ in $(seq 12000); do
    kill -0 "$P" 2>/dev/null || { echo "sluiced exited: $(tail -3 "$D/err")" >&2; exit 1; }
    [[ -z $HP ]] && HP=$(grep -o 'http [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2 || true)
    if [[ -n $HP ]] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$HP/healthz"; then
      NP=$(grep -o 'native [0-9.]*:[0-9]*' "$D/out" | cut -d: -f2)
      return
    fi
    sleep 0.005
  done
  echo "no /healthz within 60 s" >&2
  exit 1
}
# Whether every projection partition has applied its partition's end (the
# status's per-partition applied offsets against the end offsets).
caught_up() {
  curl -sf "http://127.0.0.1:$HP/v1/status" | python3 -c '
import json, sys
s = json.load(sys.stdin)
end = sum(p["end_offset"] for t in s["topics"] for p in t["partitions"])
lag = sum(p["lag"] for pj in s["projections"] for p in pj["partitions"])
sys.exit(0 if end >= int(sys.argv[1]) and lag == 0 else 1)' "$EVENTS"
}
rss() { awk '/^(VmRSS|RssAnon|RssFile|VmHWM):/ {printf "%s %d MiB ", $1, $2/1024}' "/proc/$P/status"; }

start
t0=$(now_ms)
"$BIN/sluice" bench --events "$EVENTS" --size 100 --connections 2 --keys "$KEYS" \
  --server "127.0.0.1:$NP" --query counter/total --http "127.0.0.1:$HP" \
  ${SEQ:+--sequential-keys} 2>/dev/null > "$D/bench.json"
python3 - "$D/bench.json" <<'EOP'
import json, sys
j = json.loads(open(sys.argv[1]).readline())
print("ingest %.0f events/s, query p50 %s us p99 %s us (%s answers, %s errors)" % (
    j["events_per_s"], j.get("query_p50_us"), j.get("query_p99_us"), j.get("queries"),
    j.get("query_errors")))
EOP
for _ in $(seq 36000); do caught_up && break; sleep 0.05; done
t1=$(now_ms)
echo "applied all: $(( (t1 - t0) / 1000 )).$(( (t1 - t0) % 1000 / 100 )) s from the bench's start" \
     "($(( EVENTS * 1000 / (t1 - t0 + 1) )) events/s per projection)"
echo "end: $(rss)"
echo "disk: projections $(du -sm "$D/data/projections" | cut -f1) MiB, log $(du -sm "$D/data/events" | cut -f1) MiB"
t2=$(now_ms)
kill -TERM "$P"
wait "$P" || true
P=
echo "drain: $(( $(now_ms) - t2 )) ms"
t3=$(now_ms)
start
t4=$(now_ms)
for _ in $(seq 12000); do
  curl -sf "http://127.0.0.1:$HP/v1/projections/counter/total" | grep -q '"lag":0' && break
  sleep 0.005
done
echo "restart: /healthz after $(( t4 - t3 )) ms, counter total with lag 0 after $(( $(now_ms) - t3 )) ms; $(rss)"
