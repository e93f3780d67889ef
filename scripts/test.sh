#!/usr/bin/env bash
# girok's whole test suite, from a fresh Debian machine with a Rust toolchain: installs what the
# tests need, checks formatting and lints, then runs every test (unit, storage on temp dirs,
# dataflow views, and end-to-end tests that start the real `girok` binary).
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

# Last, so that its summary is the closing line of the run.
echo "== tests"
cargo nextest run --workspace --no-fail-fast
