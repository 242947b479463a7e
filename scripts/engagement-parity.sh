#!/usr/bin/env bash
# Engagement columns against an independent computation: runs patronage on the bundled sample
# and on a generated shop (orders + clicks), recomputes every engagement column in DuckDB SQL
# with window functions from the raw clicks CSV, and compares them customer by customer.
# Run by CI. Usage: scripts/engagement-parity.sh [GENERATED_CUSTOMERS]   (default 5,000)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/pyenv.sh)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIN="${CARGO_TARGET_DIR:-target}/debug/patronage"
cargo build --quiet
compare() { # orders clicks as-of label
    "$BIN" run --quiet --no-models --orders "$1" --clicks "$2" --out "$WORK/out-$4" --as-of "$3" >/dev/null
    echo "-- $4"
    "$PY" scripts/engagement_parity.py "$2" "$WORK/out-$4/customer_features/run_date=$3/part-0.parquet" "$3"
}
compare data-samples/orders.csv data-samples/clicks.csv 2024-12-30 sample
"$BIN" generate --customers "${1:-5000}" --seed 11 --out "$WORK/shop" >/dev/null
compare "$WORK/shop/orders.csv" "$WORK/shop/clicks.csv" 2024-12-31 generated
