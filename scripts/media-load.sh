#!/usr/bin/env bash
# Image uploads through the release server against the same pipeline on the library: builds
# `girok` and `girok-bench` (release), starts `girok serve` on a fresh temp data dir pinned to
# core 0 (one processing worker, the default), then runs `girok-bench media` pinned to core 1,
# which uploads photo-sized JPEGs (1 and 12 megapixels by default), then runs the same pipeline
# directly on the library, and prints both rates, their ratio, complete→ready latency and
# girok's peak RSS. Needs 2 cores and taskset.
#
#   scripts/media-load.sh
#   scripts/media-load.sh --megapixels 12 --images 10 --concurrency 2
#
# Arguments go to `girok-bench media` (see `girok-bench media --help`); GIROK_BIN and
# GIROK_BENCH_BIN name the binaries to run (nothing is built when both are set).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v taskset >/dev/null; then
  echo "media-load.sh: taskset is missing (it is in util-linux: apt-get install util-linux)" >&2
  exit 1
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "media-load.sh: needs 2 cores (server on core 0, generator on core 1)" >&2
  exit 1
fi

. "$(dirname "$0")/bench-server.sh"
bench_binaries
bench_tmp media-load

echo "== girok serve (core 0, data in $tmp/data)"
start_girok "$tmp/data" taskset -c 0

echo "== girok-bench media (core 1)"
status=0
taskset -c 1 "$bench_bin" media --url "$url" --server-pid "$server_pid" "$@" || status=$?
stop_check || status=1
exit "$status"
