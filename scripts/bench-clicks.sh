#!/usr/bin/env bash
# Race: patronage sessionizing and aggregating a clickstream (the full `run --no-models` with
# --clicks: validation, identity stitching, sessions, the 14 engagement columns, the order
# features and every table written as Parquet) against DuckDB SQL computing the same 14 columns
# with window functions (all threads) and writing them to Parquet, on one zstd Parquet file.
# Whole processes; medians; peak resident memory of each process.
#
# Data: `patronage generate` makes a shop (500,000 customers; its clickstream, about 8.4M
# events), and DuckDB repeats those events COPIES times (default 12 → about 100M), copy k shifted
# by k·61 days plus k hours within the two-year window, so each customer browses about twelve
# times as often; sorted by time, as an export is.
# Usage: scripts/bench-clicks.sh [COPIES] [REPEATS]   (BENCH_DIR keeps the data between runs)
set -euo pipefail
cd "$(dirname "$0")/.."
COPIES="${1:-12}"
REPEATS="${2:-3}"
PY="$(bash scripts/pyenv.sh)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
WORK="${BENCH_DIR:-$(mktemp -d)}"
if [ ! -f "$WORK/base/orders.parquet" ]; then
    "$BIN" generate --customers 500000 --format parquet --out "$WORK/base" >&2
fi
if [ ! -f "$WORK/clicks-x$COPIES.parquet" ]; then
    "$PY" scripts/bench_clicks.py prepare "$WORK/base/clicks.parquet" "$COPIES" "$WORK/clicks-x$COPIES.parquet"
fi
if [ -w /proc/sys/vm/drop_caches ]; then
    sync && echo 1 > /proc/sys/vm/drop_caches && echo "(page cache dropped before the race)"
fi
"$PY" scripts/bench_clicks.py race "$BIN" "$WORK/base/orders.parquet" "$WORK/clicks-x$COPIES.parquet" "$REPEATS"
