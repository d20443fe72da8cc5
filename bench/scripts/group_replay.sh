#!/usr/bin/env bash
# bench/scripts/group_replay.sh BINDIR [EVENTS]: issue 18's figure, the
# replay rate of a consumer group of two from disk: N events stored
# (8 partitions), then two members of a new group read them all at once
# (non-following; their output counted), timed from their start until both
# exited; the page cache dropped first so the reads come from the device.
set -euo pipefail
BIN=$1 N=${2:-2000000}
D=$(mktemp -d /var/tmp/sluice-replay.XXXXXX)
P=
trap 'if [[ -n $P ]]; then kill -KILL $P 2>/dev/null || true; wait $P 2>/dev/null || true; fi; rm -rf "$D"' EXIT
cat > $D/cfg.yaml <<EOC
data_dir: $D/data
listen: { native: 127.0.0.1:0, http: 127.0.0.1:0 }
topics: [ { name: events, partitions: 8 } ]
EOC
$BIN/sluiced --config $D/cfg.yaml > $D/out 2> $D/err &
P=$!
for _ in $(seq 2000); do grep -q "sluiced: ready" $D/out && break; sleep 0.01; done
NP=$(grep -o 'native [0-9.]*:[0-9]*' $D/out | cut -d: -f2)
$BIN/sluice bench --events $N --size 100 --connections 2 --server 127.0.0.1:$NP 2>/dev/null | tail -1 | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print("stored %d events at %.0f events/s" % (j["acked"], j["events_per_s"]))'
sync; echo 3 > /proc/sys/vm/drop_caches || true
t0=$(date +%s%N)
$BIN/sluice consume --group replay --server 127.0.0.1:$NP > $D/m1 2>$D/m1.err &
A=$!
$BIN/sluice consume --group replay --server 127.0.0.1:$NP > $D/m2 2>$D/m2.err &
B=$!
wait $A; wait $B
t1=$(date +%s%N)
n1=$(wc -l < $D/m1); n2=$(wc -l < $D/m2)
ms=$(( (t1 - t0) / 1000000 ))
echo "group of two: $n1 + $n2 = $((n1 + n2)) events printed in $ms ms: $(( (n1 + n2) * 1000 / (ms + 1) )) events/s"
