#!/usr/bin/env bash
# Idle QUIC connections against the real release server: builds `girok` and `girok-bench`
# (release), starts `girok serve` on a fresh temp data dir (free HTTP and QUIC ports), then
# runs `girok-bench quic-idle`, which opens the connections (girok/1, signed in, subscribed to
# notifications), holds them silent, pings each, and reports the server's RSS per connection.
#
#   scripts/quic-idle.sh                          # 10,000 connections, 20 s idle
#   scripts/quic-idle.sh --connections 2000 --hold 5
#
# Arguments go to `girok-bench quic-idle` (see its --help).
set -euo pipefail
cd "$(dirname "$0")/.."

. "$(dirname "$0")/bench-server.sh"
bench_binaries
bench_tmp quic-idle

# Thousands of connections: both processes inherit this.
ulimit -n "$(ulimit -Hn)"

echo "== girok serve (data in $tmp/data)"
start_girok "$tmp/data" GIROK__QUIC__MAX_CONNECTIONS=100000 GIROK__QUIC__MAX_CONNECTIONS_PER_IP=0

echo "== girok-bench quic-idle"
status=0
"$bench_bin" quic-idle --url "$url" --server-pid "$server_pid" "$@" || status=$?
stop_check || status=1
exit "$status"
