#!/usr/bin/env bash
# Race: patronage (ingest + validate + RFM/BTYD features + segments + Parquet out) against DuckDB
# and Python polars doing the RFM/BTYD aggregation on the same Parquet file, in one run.
# Usage: scripts/bench-rfm.sh [CUSTOMERS] [REPEATS]   (default 2,500,000 customers ≈ 10M orders)
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-2500000}"
REPEATS="${2:-3}"
PY="$(bash scripts/pyenv.sh)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
WORK="${BENCH_DIR:-$(mktemp -d)}"
if [ ! -f "$WORK/orders.parquet" ]; then
    "$BIN" generate --customers "$CUSTOMERS" --format parquet --out "$WORK" >&2
fi
"$PY" scripts/bench_rfm.py "$BIN" "$WORK/orders.parquet" "$REPEATS"
