#!/usr/bin/env bash
# WebSocket chat load against the real release server: builds `girok` and `girok-bench`
# (release), starts `girok serve` on a fresh temp data dir and a free loopback port, pinned to
# core 0, with the limits that would distort a load test raised (per-connection send rate,
# login rate, connection count) and warn-level logs; waits for /readyz; then runs the external
# open-loop generator `girok-bench chat-load` pinned to core 1 with the given arguments, which
# also samples the server's CPU and RSS. Stops the server (SIGTERM) and removes the temp dir at
# the end. Needs 2 cores and taskset (util-linux).
#
#   scripts/chat-load.sh --rate 10000
#   scripts/chat-load.sh --clients 100 --rooms 10 --users 20 --rate 500 --warmup 2 --seconds 5
#
# Arguments go to `girok-bench chat-load` (see `girok-bench chat-load --help`); --out FILE
# writes the JSON figures elsewhere than target/girok-bench/chat-load.json. To compare builds,
# GIROK_BIN and GIROK_BENCH_BIN name the binaries to run (nothing is built when both are set):
#
#   GIROK_BIN=/tmp/old/girok GIROK_BENCH_BIN=target/release/girok-bench scripts/chat-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v taskset >/dev/null; then
  echo "chat-load.sh: taskset is missing (it is in util-linux: apt-get install util-linux)" >&2
  exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "chat-load.sh: needs 2 cores (server on core 0, generator on core 1)" >&2
  exit 1
fi

. "$(dirname "$0")/bench-server.sh"
bench_binaries
bench_tmp chat-load

# 1000s of sockets on both sides; both processes inherit this.
ulimit -n "$(ulimit -Hn)"

echo "== girok serve (core 0, data in $tmp/data)"
start_girok "$tmp/data" \
  GIROK__WS__SENDS_PER_SECOND=1000 \
  GIROK__WS__SEND_BURST=2000 \
  GIROK__SERVER__MAX_CONNECTIONS=10000 \
  taskset -c 0

echo "== girok-bench chat-load (core 1)"
status=0
taskset -c 1 "$bench_bin" chat-load --url "$url" --server-pid "$server_pid" "$@" ||
  status=$?
stop_check || status=1
exit "$status"
