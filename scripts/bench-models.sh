#!/usr/bin/env bash
# Race: BG/NBD + Gamma-Gamma maximum likelihood, patronage (examples/fit_summary, release) against
# lifetimes 0.11.3 at its best setting (distinct triples with weights), on the same summary of
# generated customers, in one run. Usage: scripts/bench-models.sh [CUSTOMERS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
CUSTOMERS="${1:-1000000}"
REPEATS="${2:-3}"
PY="$(bash scripts/pyenv.sh)"
cargo build --release --quiet --example fit_summary
BIN="${CARGO_TARGET_DIR:-target}/release/patronage"
EXAMPLE="${CARGO_TARGET_DIR:-target}/release/examples/fit_summary"
cargo build --release --quiet
WORK="${BENCH_DIR:-$(mktemp -d)}"
if [ ! -f "$WORK/summary.csv" ]; then
    "$BIN" generate --customers "$CUSTOMERS" --format parquet --out "$WORK" >&2
    "$BIN" run -q --no-models --orders "$WORK/orders.parquet" --out "$WORK/out" --as-of 2024-12-31 >&2
    "$PY" - "$WORK" <<'PYEOF'
import sys, pyarrow.parquet as pq
w = sys.argv[1]
t = pq.read_table(f"{w}/out/customer_features/run_date=2024-12-31/part-0.parquet").to_pandas()
t = t[t["frequency"] > 0]
t[["btyd_x", "btyd_t_x", "btyd_T", "btyd_m"]].rename(columns={"btyd_x": "x", "btyd_t_x": "t_x", "btyd_T": "T", "btyd_m": "m"}).to_csv(f"{w}/summary.csv", index=False)
PYEOF
fi
# Fresh pages cost several µs each here, more when the kernel must first evict page cache: start
# every race from the same clean cache when we may (root), and say so.
if [ -w /proc/sys/vm/drop_caches ]; then
    sync && echo 1 > /proc/sys/vm/drop_caches && echo "(page cache dropped before the race)"
fi
"$PY" scripts/bench_models.py "$EXAMPLE" "$WORK/summary.csv" "$REPEATS"
