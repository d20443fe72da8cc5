#!/usr/bin/env bash
# bench/scripts/state_store.sh [BINDIR] [REPS]: bench/state_store.cc's matrix,
# REPS (2) times, LMDB and RocksDB alternating so both see the same machine:
# N = 1M and 10M keys of 8-byte values (10M also: the read pass, RSS, reopen),
# and N = 1M of 200-byte values. Each run's store lives under $TMPDIR (else
# BINDIR/../tmp) and is removed by the run. Output: one block per run.
set -euo pipefail
BIN=$(realpath "${1:-build/bin}") REPS=${2:-2}
TIMEFORMAT='## %R s wall, %U s user, %S s sys'
for rep in $(seq "$REPS"); do
  for args in "--keys 1000000 --value 8" "--keys 10000000 --value 8 --pass" \
              "--keys 1000000 --value 200"; do
    for store in lmdb rocksdb; do
      echo "## rep $rep: $store $args ($(date -u +%T), load $(cut -d' ' -f1 /proc/loadavg))"
      # shellcheck disable=SC2086
      time "$BIN/bench_state_store" --store "$store" $args
    done
  done
done
