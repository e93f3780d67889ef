#!/usr/bin/env bash
# The Python QUIC client of the tests: aioquic (PyPI) with protobuf and grpcio-tools (to
# compile girok's .proto files), in a virtualenv cached under ~/.cache/girok (about 10 s the
# first time). The test `girok/tests/quic.rs` runs `girok/tests/clients/girok1_aioquic.py`
# with it, a girok/1 client written from docs/quic.md.
#
#   scripts/aioquic.sh install      create the virtualenv if missing; prints its python
set -euo pipefail

venv=${GIROK_AIOQUIC_VENV:-$HOME/.cache/girok/aioquic-venv}

. "$(dirname "$0")/venv.sh"

case "${1:-}" in
install)
  if ! "$venv/bin/python" -c 'import aioquic, grpc_tools, google.protobuf' 2>/dev/null; then
    echo "== installing aioquic, protobuf and grpcio-tools in $venv" >&2
    make_venv "$venv" 'aioquic>=1.2,<2' 'protobuf>=5,<7' 'grpcio-tools>=1.60,<2'
  fi
  echo "$venv/bin/python"
  ;;
*)
  echo "usage: aioquic.sh install" >&2
  exit 2
  ;;
esac
