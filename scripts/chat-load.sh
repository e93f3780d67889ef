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

target=${CARGO_TARGET_DIR:-target}
girok_bin=${GIROK_BIN:-$target/release/girok}
bench_bin=${GIROK_BENCH_BIN:-$target/release/girok-bench}
if [ -z "${GIROK_BIN:-}" ] || [ -z "${GIROK_BENCH_BIN:-}" ]; then
  echo "== cargo build --release -p girok-frontends -p girok-bench"
  cargo build --release -p girok-frontends -p girok-bench
fi

tmp=$(mktemp -d /tmp/girok-chat-load.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1000s of sockets on both sides; both processes inherit this.
ulimit -n "$(ulimit -Hn)"

echo "== girok serve (core 0, data in $tmp/data)"
# Port 0: the kernel picks a free port and the server prints it (no race with a guessed one).
env -u RUST_LOG \
  GIROK__WS__SENDS_PER_SECOND=1000 \
  GIROK__WS__SEND_BURST=2000 \
  GIROK__AUTH__LOGIN_PER_MINUTE_PER_IP=1000000 \
  GIROK__AUTH__LOGIN_PER_MINUTE_PER_USERNAME=1000000 \
  GIROK__SERVER__MAX_CONNECTIONS=100000 \
  GIROK__LOG__FILTER=warn \
  taskset -c 0 "$girok_bin" --data-dir "$tmp/data" serve --http-addr 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

url=""
for _ in $(seq 1 600); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "chat-load.sh: girok exited at startup:" >&2
    cat "$tmp/server.err" >&2
    exit 1
  fi
  if [ -z "$url" ]; then
    url=$(sed -n 's/^girok listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out" | head -n 1)
  fi
  if [ -n "$url" ] && curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$url" ] || ! curl -fsS -o /dev/null "$url/readyz"; then
  echo "chat-load.sh: girok not ready after 60 s" >&2
  exit 1
fi
echo "girok (pid $server_pid) ready at $url"

echo "== girok-bench chat-load (core 1)"
status=0
taskset -c 1 "$bench_bin" chat-load --url "$url" --server-pid "$server_pid" "$@" ||
  status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "chat-load.sh: girok exited during the run" >&2
  status=1
fi
if [ -s "$tmp/server.err" ]; then
  echo "== server warnings and errors (last 20 lines of $(wc -l <"$tmp/server.err"))"
  tail -n 20 "$tmp/server.err"
fi
exit "$status"
