#!/usr/bin/env bash
# girok's whole test suite, from a fresh Debian machine with a Rust toolchain: installs what the
# tests need (cargo-nextest; ClickHouse from Debian's packages, started on a free loopback
# port for the analytics tests; moto, an S3-compatible server, for the media tests; aioquic,
# a Python QUIC library, and Debian's Chromium driven by playwright-core, for the QUIC
# protocol's and the web app's tests; the web app's npm packages, to check that its committed
# build is the one its sources make), checks
# formatting and lints, then runs every test (unit, storage on temp dirs, dataflow views,
# end-to-end tests that start the real `girok` binary, the analytics tests against the real
# ClickHouse and the media tests against the real S3-compatible server).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "== doc tests"
cargo test --workspace --doc --quiet

echo "== clickhouse"
scripts/clickhouse.sh install
clickhouse_dir=$(mktemp -d /tmp/girok-test-clickhouse.XXXXXX)
s3_dir=$(mktemp -d /tmp/girok-test-s3.XXXXXX)
trap 'scripts/clickhouse.sh stop "$clickhouse_dir"; rm -rf "$clickhouse_dir"; scripts/s3.sh stop "$s3_dir"; rm -rf "$s3_dir"' EXIT
GIROK_TEST_CLICKHOUSE_URL=$(scripts/clickhouse.sh start "$clickhouse_dir")
export GIROK_TEST_CLICKHOUSE_URL
echo "ClickHouse $(curl -s "$GIROK_TEST_CLICKHOUSE_URL/?query=SELECT%20version()") at $GIROK_TEST_CLICKHOUSE_URL"

echo "== s3 (moto)"
scripts/s3.sh install
GIROK_TEST_S3_URL=$(scripts/s3.sh start "$s3_dir")
export GIROK_TEST_S3_URL
echo "S3-compatible server at $GIROK_TEST_S3_URL"

echo "== aioquic (a QUIC client nobody here wrote)"
GIROK_TEST_AIOQUIC_PYTHON=$(scripts/aioquic.sh install)
export GIROK_TEST_AIOQUIC_PYTHON

echo "== browser (Debian's Chromium, playwright-core)"
GIROK_TEST_BROWSER_NODE_MODULES=$(scripts/browser.sh install)
export GIROK_TEST_BROWSER_NODE_MODULES
GIROK_TEST_CHROMIUM=$(command -v chromium)
export GIROK_TEST_CHROMIUM

echo "== web app (type-check, rebuild, compare with the committed build)"
scripts/web.sh check

# Last, so that its summary is the closing line of the run.
echo "== tests"
cargo nextest run --workspace --no-fail-fast
