#!/usr/bin/env bash
# Peer parity with the `lifetimes` Python package (0.11.3, from PyPI) on real CDNOW data:
# runs patronage on the CDNOW orders (calibration to 1997-09-30, as in Fader, Hardie & Lee 2005),
# fits lifetimes on the very same BTYD summary, and compares fits and per-customer predictions;
# then the same for MBG/NBD and Pareto/NBD (models.customer_model).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/pyenv.sh)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
cargo run --quiet -- run --quiet --orders data-samples/cdnow/cdnow_orders.csv --out "$OUT" --as-of 1997-09-30 >/dev/null
# The other customer-base models, each in its own OUT.
for model in mbgnbd pareto_nbd; do
    printf '[models]\ncustomer_model = "%s"\n' "$model" > "$OUT/$model.toml"
    cargo run --quiet -- run --quiet --orders data-samples/cdnow/cdnow_orders.csv --out "$OUT/$model" \
        --as-of 1997-09-30 --config "$OUT/$model.toml" >/dev/null
done
"$PY" scripts/lifetimes_parity.py "$OUT" 1997-09-30 "$OUT/mbgnbd" "$OUT/pareto_nbd"
