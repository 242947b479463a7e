#!/usr/bin/env bash
# `--format delta` read by the tools a lakehouse uses: delta-rs (Python `deltalake`), DuckDB's
# `delta` extension (delta-kernel-rs, from PyPI's duckdb-extension-delta) and polars. Runs the
# bundled sample three times in both layouts (an as-of, its rerun, an earlier as-of) and once
# partitioned, then checks every Delta table's rows and column descriptions against the Parquet
# layout's. Its own virtualenv: the DuckDB extension pins DuckDB's version, and the benchmark
# scripts race the newest DuckDB. Run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(PATRONAGE_VENV="${PATRONAGE_DELTA_VENV:-$HOME/.cache/patronage/venv-delta}" \
    bash scripts/pyenv.sh deltalake=deltalake duckdb_extension_delta=duckdb-extension-delta)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIN="${CARGO_TARGET_DIR:-target}/debug/patronage"
cargo build --quiet
D=data-samples
ALL=(--orders "$D/orders.csv" --customers "$D/customers.csv" --clicks "$D/clicks.csv" --holdout-days 90 --quiet)
for as_of in 2024-12-30 2024-12-30 2024-09-30; do
    "$BIN" run "${ALL[@]}" --as-of "$as_of" --out "$WORK/parquet" >/dev/null
    "$BIN" run "${ALL[@]}" --as-of "$as_of" --out "$WORK/delta" --format delta >/dev/null
done
"$BIN" run "${ALL[@]}" --as-of 2024-12-30 --partitions 3 --format delta --out "$WORK/delta-partitioned" >/dev/null
"$PY" scripts/delta_readers.py "$WORK"
