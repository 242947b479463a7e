#!/usr/bin/env bash
# The Spark recipe (examples/spark/patronage_spark.py) on local[2] against `patronage run`: a
# generated shop (orders, profiles, clicks; Parquet), routed by Spark into 1, 3 and 8
# partitions, every table compared customer by customer with the single run's. Installs pyspark
# (PyPI) itself; needs Java 17 (on the machine).
# Usage: scripts/spark-parity.sh [CUSTOMERS] [PARTITION COUNTS, e.g. "1 3 8"]
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-1500}"
COUNTS="${2:-1 3 8}"
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
for n in $COUNTS; do
    "$PY" examples/spark/patronage_spark.py --binary "$BIN" "${SHOP[@]}" --out "$WORK/spark-$n" \
        --work "$WORK/work-$n" --as-of 2024-12-31 --partitions "$n" --master 'local[2]' \
        -- "${FLAGS[@]}" >/dev/null 2>"$WORK/spark-$n.log" || { cat "$WORK/spark-$n.log" >&2; exit 1; }
    "$PY" scripts/compare_runs.py "$WORK/single" "$WORK/spark-$n" 2024-12-31 --rejected-by-content
    echo "spark local[2], $n partitions: every table equals the single run's"
done
