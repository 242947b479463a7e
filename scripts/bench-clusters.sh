#!/usr/bin/env bash
# Race: patronage's clustering (k chosen in 3–8 on a 20,000-row sample by three indices under a
# 5% floor, 10 k-means++ starts for the chosen k, the fit on every customer, 5 bootstrap refits)
# against scikit-learn doing the same protocol and a plain KMeans(n_init=10) on every customer,
# on the same matrix (patronage's transform rebuilt in numpy from customer_features), all
# threads. Reports medians, the final inertia of both on that matrix, and their ratio.
# Usage: scripts/bench-clusters.sh [CUSTOMERS] [REPEATS]   (default 1,000,000 customers)
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-1000000}"
REPEATS="${2:-3}"
PY="$(bash scripts/pyenv.sh sklearn=scikit-learn)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
WORK="${BENCH_DIR:-$(mktemp -d)}"
if [ ! -f "$WORK/shop-$CUSTOMERS/orders.parquet" ]; then
    "$BIN" generate --customers "$CUSTOMERS" --format parquet --out "$WORK/shop-$CUSTOMERS" >&2
fi
"$PY" scripts/bench_clusters.py "$BIN" "$WORK/shop-$CUSTOMERS/orders.parquet" "$REPEATS"
