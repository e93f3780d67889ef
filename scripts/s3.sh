#!/usr/bin/env bash
# A throwaway loopback-only S3-compatible server for tests and benches: moto's standalone
# server (PyPI `moto[server]`), in a virtualenv cached under ~/.cache/girok. moto because it
# is one pip install (seconds, no daemon, no licence question), speaks path-style S3 with
# presigned URLs, and keeps objects in memory, so every start is clean.
#
#   scripts/s3.sh install           create the virtualenv with moto if missing
#   scripts/s3.sh start DIR         start one (a free port, state in DIR); prints its URL
#   scripts/s3.sh stop DIR          stop it
set -euo pipefail

venv=${GIROK_S3_VENV:-$HOME/.cache/girok/moto-venv}

. "$(dirname "$0")/free-port.sh"
. "$(dirname "$0")/venv.sh"

case "${1:-}" in
install)
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "== installing moto (S3-compatible test server) in $venv" >&2
    make_venv "$venv" 'moto[server]>=5,<6'
  fi
  ;;
start)
  dir=${2:?usage: s3.sh start DIR}
  mkdir -p "$dir"
  port=$(free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
      echo "http://127.0.0.1:$port"
      exit 0
    fi
    sleep 0.1
  done
  echo "moto did not start; see $dir/moto.log" >&2
  exit 1
  ;;
stop)
  dir=${2:?usage: s3.sh stop DIR}
  if [ -f "$dir/moto.pid" ]; then
    kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    rm -f "$dir/moto.pid"
  fi
  ;;
*)
  echo "usage: s3.sh install | start DIR | stop DIR" >&2
  exit 2
  ;;
esac
