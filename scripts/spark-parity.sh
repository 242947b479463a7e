#!/usr/bin/env bash
# The Spark recipe (examples/spark/patronage_spark.py) on local[2] against `patronage run`: a
# generated shop (orders, profiles, clicks; Parquet), routed by Spark into 3 partitions, every
# table compared customer by customer with the single run's. Installs pyspark (PyPI) itself;
# needs Java 17 (on the machine).
# Usage: scripts/spark-parity.sh [CUSTOMERS] [PARTITIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-1500}"
PARTITIONS="${2:-3}"
PY="$(bash scripts/pyenv.sh pyspark=pyspark==3.5.3)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$BIN" generate --customers "$CUSTOMERS" --seed 17 --format parquet --out "$WORK/shop" >/dev/null
SHOP=(--orders "$WORK/shop/orders.parquet" --customers "$WORK/shop/customers.csv"
      --clicks "$WORK/shop/clicks.parquet")
FLAGS=(--holdout-days 90)
"$BIN" run -q "${SHOP[@]}" --out "$WORK/single" --as-of 2024-12-31 "${FLAGS[@]}" >/dev/null
"$PY" examples/spark/patronage_spark.py --binary "$BIN" "${SHOP[@]}" --out "$WORK/spark" \
    --work "$WORK/work" --as-of 2024-12-31 --partitions "$PARTITIONS" --master 'local[2]' \
    -- "${FLAGS[@]}" >/dev/null
"$PY" scripts/compare_runs.py "$WORK/single" "$WORK/spark" 2024-12-31 --rejected-by-content
echo "spark local[2], $PARTITIONS partitions: every table equals the single run's"
