#!/usr/bin/env bash
# Race: patronage (ingest + validate + RFM/BTYD features + segments + Parquet out) against DuckDB
# and Python polars doing the RFM/BTYD aggregation on the same Parquet file, in one run.
# Usage: scripts/bench-rfm.sh [CUSTOMERS] [REPEATS]   (default 4,800,000 customers ≈ 10M orders)
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-4800000}"
REPEATS="${2:-3}"
PY="$(bash scripts/pyenv.sh)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
WORK="${BENCH_DIR:-$(mktemp -d)}"
if [ ! -f "$WORK/orders.parquet" ]; then
    "$BIN" generate --customers "$CUSTOMERS" --format parquet --out "$WORK" >&2
fi
# Fresh pages cost several µs each here, more when the kernel must first evict page cache: start
# every race from the same clean cache when we may (root), and say so.
if [ -w /proc/sys/vm/drop_caches ]; then
    sync && echo 1 > /proc/sys/vm/drop_caches && echo "(page cache dropped before the race)"
fi
"$PY" scripts/bench_rfm.py "$BIN" "$WORK/orders.parquet" "$REPEATS"
