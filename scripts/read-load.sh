#!/usr/bin/env bash
# Read load against the real release server: builds `girok` and `girok-bench` (release), makes
# the read data set once (`girok-bench read-data`: 10,000 users, ~520,000 follows, 200,000
# posts, 1 M likes, 200,000 comments, 1,000 rooms with 100,000 messages; kept in
# target/girok-bench/read-data, about a minute to make), copies it to a temp dir, starts
# `girok serve` on the copy and a free loopback port (login limits raised, warn-level logs),
# waits for /readyz, then runs the external closed-loop generator `girok-bench read-load` with
# the given arguments, which also samples the server's CPU and RSS. Server and generator share
# both cores, as a client on the same machine would. Stops the server (SIGTERM) and removes
# the temp dir at the end.
#
#   scripts/read-load.sh                                   # every target, 8 connections
#   scripts/read-load.sh --targets graphql --connections 1,8,16,32
#
# Arguments go to `girok-bench read-load` (see `girok-bench read-load --help`). GIROK_BIN and
# GIROK_BENCH_BIN name other binaries to run (nothing is built when both are set);
# READ_DATA_DIR another prepared data set.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
girok_bin=${GIROK_BIN:-$target/release/girok}
bench_bin=${GIROK_BENCH_BIN:-$target/release/girok-bench}
if [ -z "${GIROK_BIN:-}" ] || [ -z "${GIROK_BENCH_BIN:-}" ]; then
  echo "== cargo build --release -p girok-frontends -p girok-bench"
  cargo build --release -p girok-frontends -p girok-bench
fi

data=${READ_DATA_DIR:-$target/girok-bench/read-data}
if [ ! -f "$data/.complete" ]; then
  echo "== girok-bench read-data (once, into $data)"
  rm -rf "$data"
  "$bench_bin" --out "$target/girok-bench/read-data.json" read-data --data-dir "$data"
  touch "$data/.complete"
fi

tmp=$(mktemp -d /tmp/girok-read-load.XXXXXX)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server appends (logins) to its data: it runs on a copy, so every run starts alike.
cp -a "$data" "$tmp/data"

echo "== girok serve (data: a copy of $data)"
env -u RUST_LOG \
  GIROK__AUTH__LOGIN_PER_MINUTE_PER_IP=1000000 \
  GIROK__AUTH__LOGIN_PER_MINUTE_PER_USERNAME=1000000 \
  GIROK__LOG__FILTER=warn \
  "$girok_bin" --data-dir "$tmp/data" serve --http-addr 127.0.0.1:0 \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!

url=""
started=$(date +%s)
while true; do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "read-load.sh: girok exited at startup:" >&2
    cat "$tmp/server.err" >&2
    exit 1
  fi
  if [ -z "$url" ]; then
    url=$(sed -n 's/^girok listening on \(http:[^ ]*\).*/\1/p' "$tmp/server.out" | head -n 1)
  fi
  if [ -n "$url" ] && curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then
    break
  fi
  if [ $(($(date +%s) - started)) -gt 600 ]; then
    echo "read-load.sh: girok not ready after 600 s" >&2
    exit 1
  fi
  sleep 0.2
done
echo "girok (pid $server_pid) ready at $url after $(($(date +%s) - started)) s, RSS $(awk '/VmRSS/ {print int($2/1024)}' "/proc/$server_pid/status") MiB"

echo "== girok-bench read-load"
status=0
"$bench_bin" read-load --url "$url" --server-pid "$server_pid" "$@" || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "read-load.sh: girok exited during the run" >&2
  status=1
fi
if [ -s "$tmp/server.err" ]; then
  echo "== server warnings and errors (last 20 lines of $(wc -l <"$tmp/server.err"))"
  tail -n 20 "$tmp/server.err"
fi
exit "$status"
