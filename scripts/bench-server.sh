# Shared by the load scripts (sourced, not run): the release binaries, a temp dir removed at
# exit, and `girok serve` started on a free loopback port and waited for.
#
#   bench_binaries                 # girok_bin, bench_bin (built unless GIROK_BIN and
#                                  # GIROK_BENCH_BIN are both set)
#   bench_tmp NAME                 # tmp=/tmp/girok-NAME.XXXXXX, removed (and girok stopped) at exit
#   start_girok DATA [PREFIX...]   # starts girok on DATA after bench_tmp; PREFIX: more
#                                  # NAME=VALUE settings, then a wrapper such as taskset -c 0;
#                                  # sets server_pid, url
#   stop_check                     # fails if girok exited; shows its warnings and errors
#   start_baseline SUITE [ARGS...] # starts `girok-bench SUITE ARGS` (a seed-design baseline)
#                                  # on core 0 and waits for its address; sets baseline_pid,
#                                  # baseline_url; fails (and stops it) if it does not start
#   read_data_set DIR NAMED JSON [ARGS...]
#                                  # makes DIR once with `girok-bench read-data ARGS` (figures
#                                  # to JSON; a .complete marker says it is whole); a directory
#                                  # the caller named (NAMED non-empty) is never remade

read_data_set() {
  local data=$1 named=$2 json=$3
  shift 3
  if [ -f "$data/.complete" ]; then
    return
  fi
  if [ -n "$named" ]; then
    # Never remake (or remove) a directory the caller named.
    echo "$(basename "$0"): $data has no .complete marker (make it with girok-bench read-data)" >&2
    exit 1
  fi
  echo "== girok-bench read-data (once, into $data)"
  rm -rf "$data"
  "$bench_bin" --out "$json" read-data --data-dir "$data" "$@"
  touch "$data/.complete"
}

bench_binaries() {
  local target=${CARGO_TARGET_DIR:-target}
  girok_bin=${GIROK_BIN:-$target/release/girok}
  bench_bin=${GIROK_BENCH_BIN:-$target/release/girok-bench}
  if [ -z "${GIROK_BIN:-}" ] || [ -z "${GIROK_BENCH_BIN:-}" ]; then
    echo "== cargo build --release -p girok -p girok-bench"
    cargo build --release -p girok -p girok-bench
  fi
}

server_pid=""
bench_cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  if [ -n "${tmp:-}" ]; then
    rm -rf "$tmp"
  fi
}

bench_tmp() {
  tmp=$(mktemp -d "/tmp/girok-$1.XXXXXX")
  trap bench_cleanup EXIT
}

start_girok() {
  : "${tmp:?call bench_tmp before start_girok}"
  local data=$1
  shift
  # Port 0: the kernel picks a free port and the server prints it (no race with a guessed one);
  # the QUIC endpoint's too (clients find it at /v1/quic).
  env -u RUST_LOG \
    GIROK__AUTH__LOGIN_PER_MINUTE_PER_IP=1000000 \
    GIROK__AUTH__LOGIN_PER_MINUTE_PER_USERNAME=1000000 \
    GIROK__AUTH__REGISTRATIONS_PER_MINUTE_PER_IP=1000000 \
    GIROK__SERVER__MAX_CONNECTIONS_PER_IP=0 \
    GIROK__WS__MAX_SOCKETS_PER_USER=100000 \
    GIROK__RATE_LIMITS__MESSAGES__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__POSTS__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__COMMENTS__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__LIKES__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__FOLLOWS__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__ROOMS__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__MATCHING__PER_MINUTE=0 \
    GIROK__RATE_LIMITS__MEDIA__PER_MINUTE=0 \
    GIROK__LOG__FILTER=warn \
    GIROK__QUIC__ADDR=127.0.0.1:0 \
    "$@" "$girok_bin" --data-dir "$data" serve --http-addr 127.0.0.1:0 \
    >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  url=""
  local started
  started=$(date +%s)
  while true; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "girok exited at startup:" >&2
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
      echo "girok not ready after 600 s" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "girok (pid $server_pid) ready at $url after $(($(date +%s) - started)) s"
}

stop_check() {
  local status=0
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "girok exited during the run" >&2
    status=1
  fi
  if [ -s "$tmp/server.err" ]; then
    echo "== server warnings and errors (last 20 lines of $(wc -l <"$tmp/server.err"))"
    tail -n 20 "$tmp/server.err"
  fi
  return "$status"
}

start_baseline() {
  : "${tmp:?call bench_tmp before start_baseline}"
  local suite=$1
  shift
  taskset -c "${baseline_cores:-0}" "$bench_bin" "$suite" "$@" >"$tmp/baseline.out" 2>"$tmp/baseline.err" &
  baseline_pid=$!
  baseline_url=""
  for _ in $(seq 100); do
    baseline_url=$(sed -n 's/^baseline listening on \(http:[^ ]*\).*/\1/p' "$tmp/baseline.out")
    [ -n "$baseline_url" ] && return 0
    sleep 0.1
  done
  echo "the baseline did not start:" >&2
  cat "$tmp/baseline.err" >&2
  kill "$baseline_pid" 2>/dev/null || true
  return 1
}
