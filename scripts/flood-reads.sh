#!/usr/bin/env bash
# Reads during a write flood, against the real release server: starts `girok serve` pinned to
# core 0 (as scripts/chat-load.sh does), signs a reader in, fills a room with 50 messages,
# then times one client's REST history reads (`GET /v1/rooms/{id}/messages?first=20`, one
# keep-alive connection, back to back, 8 s) first on an idle server, then during a WebSocket
# write flood (`girok-bench chat-load`, 1,000 clients, --rate msg/s, default 20,000) and, with
# --http, 64 parallel HTTP writers (curl) as well. The reader, the generator and curl share
# core 1, so the read figures include their competition for it. Needs taskset, curl, python3.
#
#   scripts/flood-reads.sh                 # WebSocket flood at 20,000 msg/s
#   scripts/flood-reads.sh --rate 10000 --http
#
# GIROK_BIN and GIROK_BENCH_BIN name the binaries to run (nothing is built when both are set).
set -euo pipefail
cd "$(dirname "$0")/.."

rate=20000
http=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rate) rate=$2; shift 2 ;;
    --http) http=1; shift ;;
    *) echo "flood-reads.sh: unknown argument $1 (--rate N, --http)" >&2; exit 2 ;;
  esac
done
for tool in taskset curl python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "flood-reads.sh: $tool is missing" >&2
    exit 1
  fi
done

. "$(dirname "$0")/bench-server.sh"
bench_binaries
bench_tmp flood-reads
ulimit -n "$(ulimit -Hn)"
start_girok "$tmp/data" \
  GIROK__WS__SENDS_PER_SECOND=1000 \
  GIROK__WS__SEND_BURST=2000 \
  GIROK__SERVER__MAX_CONNECTIONS=10000 \
  taskset -c 0

json_field() { python3 -c "import sys, json; print(json.load(sys.stdin)['$1'])"; }
post() { curl -fsS -X POST "$url$1" -H 'content-type: application/json' "${@:3}" -d "$2"; }
post /v1/auth/register \
  '{"username":"flood_reader","email":"flood_reader@example.org","password":"password123","displayName":"reader"}' \
  >/dev/null
token=$(post /v1/auth/login '{"username":"flood_reader","password":"password123"}' | json_field accessToken)
auth=(-H "authorization: Bearer $token")
room=$(post /v1/rooms '{"title":"read"}' "${auth[@]}" | json_field id)
written=$(post /v1/rooms '{"title":"write"}' "${auth[@]}" | json_field id)
for i in $(seq 1 50); do post "/v1/rooms/$room/messages" "{\"body\":\"message $i\"}" "${auth[@]}" >/dev/null; done

reads() {
  taskset -c 1 python3 - "$url" "$token" "$room" "$1" <<'PY'
import http.client, sys, time
base, token, room, label = sys.argv[1:]
connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
latencies, statuses = [], {}
end = time.time() + 8
while time.time() < end:
    started = time.perf_counter()
    connection.request("GET", f"/v1/rooms/{room}/messages?first=20",
                       headers={"authorization": f"Bearer {token}"})
    response = connection.getresponse()
    response.read()
    latencies.append((time.perf_counter() - started) * 1000)
    statuses[response.status] = statuses.get(response.status, 0) + 1
latencies.sort()
at = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"reads {label}: {len(latencies)} in 8 s, status {statuses}, p50 {at(0.5):.2f} ms, "
      f"p90 {at(0.9):.2f} ms, p99 {at(0.99):.2f} ms, max {latencies[-1]:.2f} ms")
PY
}

reads idle
taskset -c 1 "$bench_bin" chat-load --url "$url" --server-pid "$server_pid" --rate "$rate" \
  --warmup 3 --seconds 12 --drain 3 >"$tmp/chat-load.txt" 2>&1 &
load=$!
writers=""
if [ "$http" = 1 ]; then
  for _ in $(seq 1 40000); do echo "url = \"$url/v1/rooms/$written/messages\""; done >"$tmp/urls"
  taskset -c 1 curl -Z --parallel-max 64 -s -o /dev/null -w '%{http_code}\n' -X POST "${auth[@]}" \
    -H 'content-type: application/json' -d '{"body":"http flood"}' -K "$tmp/urls" \
    >"$tmp/http-codes" 2>/dev/null &
  writers=$!
fi
sleep 8 # past the generator's setup and warm-up
reads "during the flood"
wait "$load" || true
if [ -n "$writers" ]; then
  kill "$writers" 2>/dev/null || true
  echo "HTTP writers' answers (status count):"
  sort "$tmp/http-codes" | uniq -c
fi
echo "the WebSocket flood (girok-bench chat-load --rate $rate):"
grep -E "^(sent|acked|ack latency|delivered|delivery latency|errors by code|closes by code|server)" "$tmp/chat-load.txt"
stop_check
