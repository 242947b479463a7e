#!/usr/bin/env bash
# Engagement columns against an independent computation: runs patronage on the bundled sample
# (orders + clicks), recomputes every engagement column in DuckDB SQL with window functions from
# the raw clicks CSV, and compares them customer by customer. Run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/pyenv.sh)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
AS_OF=2024-12-30
cargo run --quiet -- run --quiet --no-models --orders data-samples/orders.csv \
    --clicks data-samples/clicks.csv --out "$OUT" --as-of "$AS_OF" >/dev/null
"$PY" scripts/engagement_parity.py data-samples/clicks.csv \
    "$OUT/customer_features/run_date=$AS_OF/part-0.parquet" "$AS_OF"
