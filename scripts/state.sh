#!/usr/bin/env bash
# Bounded-state figures of the real release server (`girok-bench state`, see its --help): makes
# a data set once with `girok-bench read-data` at the chosen scale (kept in
# target/girok-bench/state-SCALE), copies it to a temp dir and runs `girok-bench state` on the
# copy: a start with the page cache dropped, cold and warm reads of room histories and home
# timelines, memory growth per million events written over REST once a first batch of writes
# filled the caches, and a restart.
#
#   scripts/state.sh small     # 1 M chat messages in 1,000 rooms, 100,000 posts, 10,000 users
#   scripts/state.sh issue     # 10 M chat messages in 10,000 rooms, 1 M posts, 100,000 users
#   scripts/state.sh small --warm-events 200000 --grow-events 200000
#
# Both scales: rooms of 10 members, each user following a log-normal number of accounts
# (mean 50, Zipf popularity) plus one author everyone follows, Zipf post authors, likes
# and comments on Zipf-chosen posts (one like per post and a quarter comment per post on
# average). Making `issue` takes a long while (17.6 M events through the engine, 23 min here).
# Arguments after the scale go to `girok-bench state`. GIROK_BIN and GIROK_BENCH_BIN name
# other binaries to run (nothing is built when both are set); STATE_DATA_DIR another
# prepared data set (it needs a .complete marker).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=${1:-small}
[ $# -gt 0 ] && shift
case $scale in
  small) users=10000 shape=(--posts 100000 --likes 100000 --comments 25000 --messages 1000000) ;;
  issue) users=100000 shape=(--posts 1000000 --likes 1000000 --comments 250000 --messages 10000000) ;;
  *)
    echo "usage: scripts/state.sh small|issue [girok-bench state arguments]" >&2
    exit 2
    ;;
esac

. "$(dirname "$0")/bench-server.sh"
bench_binaries

out=${CARGO_TARGET_DIR:-target}/girok-bench
data=${STATE_DATA_DIR:-$out/state-$scale}
read_data_set "$data" "${STATE_DATA_DIR:-}" "$out/state-$scale-data.json" \
  --users "$users" --room-size 10 "${shape[@]}"

bench_tmp state
# The run writes to its data: it runs on a copy, so every run starts alike.
cp -a "$data" "$tmp/data"
rm -f "$tmp/data/.complete"

echo "== girok-bench state (data: a copy of $data)"
"$bench_bin" --out "$out/state-$scale.json" state --data-dir "$tmp/data" --bin "$girok_bin" \
  --users "$users" "$@"
