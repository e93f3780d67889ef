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
#   scripts/chat-load.sh --baseline sync --rate 10000       # then the same load against
#                                                           # `girok-bench chat-baseline` (the
#                                                           # seed design's chat path, fdatasync
#                                                           # group commit; `none`: no file),
#                                                           # also on core 0; prints both and
#                                                           # girok's ratios to it (WebSocket
#                                                           # only; with --transports, after
#                                                           # those runs)
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

# One run of the generator against `girok-bench chat-baseline --durability $1` on core 0.
run_baseline() {
  local durability=$1
  shift
  echo "== girok-bench chat-baseline --durability $durability (core 0)"
  start_baseline chat-baseline --durability "$durability" --data-dir "$tmp/baseline" || return 1
  echo "== girok-bench chat-load against the baseline (core 1)"
  local status=0
  taskset -c 1 "$bench_bin" chat-load --url "$baseline_url" --server-pid "$baseline_pid" "$@" ||
    status=$?
  if ! kill -0 "$baseline_pid" 2>/dev/null; then
    echo "the baseline exited during the run:" >&2
    cat "$tmp/baseline.err" >&2
    status=1
  fi
  kill "$baseline_pid" 2>/dev/null || true
  wait "$baseline_pid" 2>/dev/null || true
  rm -rf "$tmp/baseline"
  return "$status"
}

transports=""
baseline=""
args=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
  --transports) transports=$2; shift 2 ;;
  --baseline) baseline=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  *) args+=("$1"); shift ;;
  esac
done
case "$baseline" in
"" | sync | none) ;;
*) echo "chat-load.sh: --baseline takes sync or none" >&2; exit 2 ;;
esac
if [ -n "$baseline" ]; then
  for ((i = 0; i < ${#args[@]}; i++)); do
    if [ "${args[$i]}" = --transport ] || [[ ${args[$i]} == --transport=* ]]; then
      echo "chat-load.sh: the baseline speaks WebSocket only; compare girok/1 with" \
        "--transports ws,quic --baseline $baseline" >&2
      exit 2
    fi
  done
fi

if [ -z "$transports" ] && [ -z "$baseline" ]; then
  status=0
  run_once ${out:+--out "$out"} "${args[@]}" || status=$?
  exit "$status"
fi

status=0
labels=()
results=()
for transport in ${transports//,/ }; do
  result="${out:-target/girok-bench/chat-load}-$transport.json"
  mkdir -p "$(dirname "$result")"
  run_once --out "$result" --transport "$transport" "${args[@]}" || status=$?
  labels+=("girok-$transport")
  results+=("$result")
done
if [ -n "$baseline" ]; then
  if [ -z "$transports" ]; then
    result="${out:-target/girok-bench/chat-load}-ws.json"
    mkdir -p "$(dirname "$result")"
    run_once --out "$result" "${args[@]}" || status=$?
    labels+=("girok")
    results+=("$result")
  fi
  result="${out:-target/girok-bench/chat-load}-baseline.json"
  run_baseline "$baseline" --out "$result" "${args[@]}" || status=$?
  labels+=("baseline")
  results+=("$result")
fi
echo "== compared (delivery latency from the schedule, ms)"
python3 - "$baseline" "${labels[@]}" -- "${results[@]}" <<'PY'
import json, sys
baseline = sys.argv[1]
split = sys.argv.index("--")
labels, paths = sys.argv[2:split], sys.argv[split + 1:]
runs = []
for label, path in zip(labels, paths):
    try:
        r = json.load(open(path))
    except OSError:
        print(f"{label}: no figures ({path}): that run failed")
        continue
    # A girok run is named by the transport it used (a `--transport` passed through counts).
    runs.append((f"girok-{r['transport']}" if label.startswith("girok") else label, r))
ms = lambda us: us / 1000.0
cores = lambda r: (r.get("server") or {}).get("cpu_cores")
print(f"{'run':<10}{'acked/s':>10}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}{'missing':>9}{'cores':>7}  closes  server RSS peak")
for label, r in runs:
    d = r["delivery_latency"]
    rss = (r.get("server") or {}).get("rss_peak_mib")
    c = cores(r)
    c = f"{c:.2f}" if c is not None else "n/a"
    print(f"{label:<10}{r['acked_per_sec']:>10.0f}{ms(d['p50_us']):>9.2f}{ms(d['p99_us']):>9.2f}"
          f"{ms(d['p999_us']):>9.2f}{ms(d['max_us']):>9.2f}{r['missing_deliveries']:>9}{c:>7}  {r['closes_by_code'] or 'none'}  {rss}")
p99 = lambda r: max(1, r["delivery_latency"]["p99_us"])
girok = [(l, r) for l, r in runs if l.startswith("girok-")]
if len(girok) == 2:
    (la, a), (lb, b) = girok
    print(f"p99 ratio {lb}/{la}: {p99(b) / p99(a):.2f}")
if baseline and runs and runs[-1][0] == "baseline":
    base = runs[-1][1]
    for label, r in girok:
        line = f"{label}/baseline ({baseline}): p99 ratio {p99(r) / p99(base):.2f}"
        if cores(r) and cores(base):
            line += f", server cores ratio {cores(r) / cores(base):.2f}"
        print(line)
PY
exit "$status"
