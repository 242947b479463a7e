#!/usr/bin/env bash
# Race: patronage (ingest + validate + RFM/BTYD features + segments + Parquet out) against DuckDB
# and Python polars doing the RFM/BTYD aggregation on the same Parquet file, in one run.
# Usage: scripts/bench-rfm.sh [CUSTOMERS] [REPEATS] [IDS]   (default 4,800,000 customers ≈ 10M
# orders, 3 repeats, IDS = string: every column text, as many exports are; IDS = int: the same
# shop as typed Parquet — Int64 customer and order ids, a timestamp, Float64 amounts)
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-4800000}"
REPEATS="${2:-3}"
IDS="${3:-string}"
case "$IDS" in
    string) FORMAT=parquet ;;
    int) FORMAT=parquet-typed ;;
    *) echo "IDS must be string or int" >&2; exit 2 ;;
esac
PY="$(bash scripts/pyenv.sh)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
WORK="${BENCH_DIR:-$(mktemp -d)}"
if [ ! -f "$WORK/orders.parquet" ]; then
    "$BIN" generate --customers "$CUSTOMERS" --format "$FORMAT" --out "$WORK" >&2
fi
# Fresh pages cost several µs each here, more when the kernel must first evict page cache: start
# every race from the same clean cache when we may (root), and say so.
if [ -w /proc/sys/vm/drop_caches ]; then
    sync && echo 1 > /proc/sys/vm/drop_caches && echo "(page cache dropped before the race)"
fi
"$PY" scripts/bench_rfm.py "$BIN" "$WORK/orders.parquet" "$REPEATS"
