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

. "$(dirname "$0")/bench-server.sh"
bench_binaries

data=${READ_DATA_DIR:-${CARGO_TARGET_DIR:-target}/girok-bench/read-data}
read_data_set "$data" "${READ_DATA_DIR:-}" "$(dirname "$data")/read-data.json"

bench_tmp read-load
# The server appends (logins) to its data: it runs on a copy, so every run starts alike.
cp -a "$data" "$tmp/data"

echo "== girok serve (data: a copy of $data)"
start_girok "$tmp/data"
echo "server RSS $(awk '/VmRSS/ {print int($2/1024)}' "/proc/$server_pid/status") MiB"

echo "== girok-bench read-load"
status=0
"$bench_bin" read-load --url "$url" --server-pid "$server_pid" "$@" || status=$?
stop_check || status=1
exit "$status"
