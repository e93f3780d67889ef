#!/usr/bin/env bash
# The browser of the tests: Debian's Chromium (apt, about a minute the first time), driven by
# playwright-core from npm (no browser download), with protobufjs for girok/1's frames. The
# npm packages are pinned by girok/tests/browser/package-lock.json and installed into a cache
# under ~/.cache/girok, again only when the lock file changes.
#
#   scripts/browser.sh install      installs what is missing; prints the node_modules path
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${GIROK_BROWSER_CACHE:-$HOME/.cache/girok/browser}

case "${1:-}" in
install)
  if ! command -v chromium >/dev/null; then
    echo "== installing Debian's chromium" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  fi
  if ! command -v npm >/dev/null; then
    echo "== installing nodejs and npm" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
  fi
  lock=girok/tests/browser/package-lock.json
  if ! cmp -s "$lock" "$cache/package-lock.json" || [ ! -d "$cache/node_modules" ]; then
    echo "== npm ci (playwright-core, protobufjs) in $cache" >&2
    rm -rf "$cache"
    mkdir -p "$cache"
    cp girok/tests/browser/package.json "$lock" "$cache/"
    (cd "$cache" && npm ci --no-audit --no-fund --ignore-scripts >&2)
  fi
  echo "$cache/node_modules"
  ;;
*)
  echo "usage: browser.sh install" >&2
  exit 2
  ;;
esac
