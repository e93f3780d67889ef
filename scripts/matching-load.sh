#!/usr/bin/env bash
# Random matching under an external open-loop load, girok against the seed design's in-memory
# sorted set in the same run: builds `girok` and `girok-bench` (release), starts `girok serve`
# on a fresh temp data dir and `girok-bench matching-baseline`, both pinned to core 0 (one at a
# time is loaded), then runs `girok-bench matching` pinned to core 1 against girok and then the
# baseline, which prints both sets of figures and girok's ratios. Needs 2 cores and taskset.
#
#   scripts/matching-load.sh --rate 2000
#   scripts/matching-load.sh --users 1000 --rate 10000 --warmup 3 --seconds 10
#   scripts/matching-load.sh --users 1500 --rate 10000 --warmup 3 --seconds 60   # sustained
#
# Every match ends with a skip that keeps its pair apart for a day, so a run may use at most
# half of the users' pairs (`girok-bench matching` refuses more and names the users needed).
# Arguments go to `girok-bench matching` (see `girok-bench matching --help`); GIROK_BIN and
# GIROK_BENCH_BIN name the binaries to run (nothing is built when both are set).
# SERVER_CORES=0,1 lets both servers use the whole machine (the generator stays on core 1 and
# shares it with them): the machine as a deployment would give it, next to the default's one
# core each.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v taskset >/dev/null; then
  echo "matching-load.sh: taskset is missing (it is in util-linux: apt-get install util-linux)" >&2
  exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "matching-load.sh: needs 2 cores (servers on core 0, generator on core 1)" >&2
  exit 1
fi

. "$(dirname "$0")/bench-server.sh"
bench_binaries
bench_tmp matching-load
ulimit -n "$(ulimit -Hn)"

server_cores=${SERVER_CORES:-0}
echo "== girok serve (cores $server_cores, data in $tmp/data)"
start_girok "$tmp/data" GIROK__SERVER__MAX_CONNECTIONS=20000 taskset -c "$server_cores"

echo "== girok-bench matching-baseline (cores $server_cores)"
baseline_cores=$server_cores start_baseline matching-baseline

echo "== girok-bench matching (core 1)"
status=0
taskset -c 1 "$bench_bin" matching --url "$url" --server-pid "$server_pid" \
  --baseline-url "$baseline_url" --baseline-pid "$baseline_pid" "$@" || status=$?
kill "$baseline_pid" 2>/dev/null || true
stop_check || status=1
exit "$status"
