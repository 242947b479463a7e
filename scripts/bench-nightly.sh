#!/usr/bin/env bash
# Race: the whole nightly job (patronage `run`, defaults) against the peer stack a data team would
# assemble — DuckDB (all threads) for order features and clickstream engagement, lifetimes
# (BG/NBD on weighted triples + Gamma-Gamma), scikit-learn k-means, pyarrow — on the same
# generated shop, for integer and string ids. Prints wall time, peak memory and ratios as a
# Markdown table (the README's performance table).
# Usage: scripts/bench-nightly.sh [SIZES] [REPEATS] [CLICKS_BELOW]
#   SIZES: millions of order rows, comma-separated (default 1,10; the issue's full set is
#   1,10,100); REPEATS (default 5); clicks are generated and used below CLICKS_BELOW million
#   order rows (default 2: at 1M rows, ~7 click events per order row). Shops have ~11.6 order
#   rows per customer (the speed issue's shape: 10M rows, ~0.9M customers).
# Generated shops are kept in $BENCH_DIR (default: a new temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${1:-1,10}"
REPEATS="${2:-5}"
CLICKS_BELOW="${3:-2}"
PY="$(bash scripts/pyenv.sh sklearn=scikit-learn)"
cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac
WORK="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
if [ -w /proc/sys/vm/drop_caches ]; then
    sync && echo 1 > /proc/sys/vm/drop_caches && echo "(page cache dropped before the race)" >&2
fi
"$PY" scripts/bench_nightly.py "$BIN" "$WORK" "$SIZES" "$REPEATS" "$CLICKS_BELOW"
