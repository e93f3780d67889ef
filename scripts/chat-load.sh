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
#   scripts/chat-load.sh --transport quic --rate 10000      # girok/1 over QUIC instead of /ws
#   scripts/chat-load.sh --transports ws,quic --rate 10000  # each in turn, same load, a
#                                                           # fresh server each; prints both
#                                                           # and the QUIC/WS ratios
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

# One run of the generator against a fresh server; extra arguments go to chat-load.
run_once() {
  echo "== girok serve (core 0, data in $tmp/data)"
  start_girok "$tmp/data" \
    GIROK__WS__SENDS_PER_SECOND=1000 \
    GIROK__WS__SEND_BURST=2000 \
    GIROK__SERVER__MAX_CONNECTIONS=10000 \
    GIROK__QUIC__MAX_CONNECTIONS_PER_IP=0 \
    taskset -c 0

  echo "== girok-bench chat-load (core 1)"
  local status=0
  taskset -c 1 "$bench_bin" chat-load --url "$url" --server-pid "$server_pid" "$@" ||
    status=$?
  stop_check || status=1
  kill -TERM "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$tmp/data"
  return "$status"
}

transports=""
args=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
  --transports) transports=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  *) args+=("$1"); shift ;;
  esac
done

if [ -z "$transports" ]; then
  status=0
  run_once ${out:+--out "$out"} "${args[@]}" || status=$?
  exit "$status"
fi

status=0
results=()
for transport in ${transports//,/ }; do
  result="${out:-target/girok-bench/chat-load}-$transport.json"
  mkdir -p "$(dirname "$result")"
  run_once --out "$result" --transport "$transport" "${args[@]}" || status=$?
  results+=("$result")
done
echo "== transports compared (delivery latency from the schedule, ms)"
python3 - "${results[@]}" <<'PY'
import json, sys
runs = [json.load(open(path)) for path in sys.argv[1:]]
ms = lambda us: us / 1000.0
print(f"{'transport':<10}{'acked/s':>10}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'missing':>9}  closes  server RSS peak")
for r in runs:
    d = r["delivery_latency"]
    rss = (r.get("server") or {}).get("rss_peak_mib")
    print(f"{r['transport']:<10}{r['acked_per_sec']:>10.0f}{ms(d['p50_us']):>9.2f}{ms(d['p99_us']):>9.2f}"
          f"{ms(d['p999_us']):>9.2f}{ms(d['max_us']):>9.2f}{r['missing_deliveries']:>9}  {r['closes_by_code'] or 'none'}  {rss}")
if len(runs) == 2:
    a, b = runs
    ratio = b["delivery_latency"]["p99_us"] / max(1, a["delivery_latency"]["p99_us"])
    print(f"p99 ratio {b['transport']}/{a['transport']}: {ratio:.2f}")
PY
exit "$status"
