#!/usr/bin/env bash
# The web app's build (web/, Preact and TypeScript bundled by esbuild). Its output is committed
# in frontends/assets/web and compiled into girok, so running girok needs no Node.js; this
# script is for changing the app, and for the test suite's check that the committed build is
# the one the sources make. npm packages are pinned by web/package-lock.json (npm ci, into
# web/node_modules, again only when the lock file changes; npm keeps the downloads cached).
#
#   scripts/web.sh build    type-check, then build into frontends/assets/web (commit the result)
#   scripts/web.sh check    type-check, rebuild in memory, fail if it differs from the committed build
set -euo pipefail
cd "$(dirname "$0")/.."

install() {
  if ! command -v npm >/dev/null; then
    echo "== installing nodejs and npm" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
  fi
  if ! cmp -s web/package-lock.json web/node_modules/.girok-installed-lock; then
    echo "== npm ci (preact, esbuild, typescript) in web/" >&2
    # No install scripts (esbuild's only checks its binary, which npm already placed).
    (cd web && npm ci --no-audit --no-fund --ignore-scripts >&2)
    cp web/package-lock.json web/node_modules/.girok-installed-lock
  fi
}

typecheck() {
  (cd web && node_modules/.bin/tsc --noEmit -p .)
}

case "${1:-}" in
build)
  install
  typecheck
  (cd web && node build.mjs)
  ;;
check)
  install
  typecheck
  (cd web && node build.mjs --check)
  ;;
*)
  echo "usage: web.sh build|check" >&2
  exit 2
  ;;
esac
