#!/usr/bin/env bash
# Peer parity with the `lifetimes` Python package (0.11.3, from PyPI) on real CDNOW data:
# runs patronage on the CDNOW orders (calibration to 1997-09-30, as in Fader, Hardie & Lee 2005),
# fits lifetimes on the very same BTYD summary, and compares fits and per-customer predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/pyenv.sh)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
cargo run --quiet -- run --quiet --orders data-samples/cdnow/cdnow_orders.csv --out "$OUT" --as-of 1997-09-30 >/dev/null
"$PY" scripts/lifetimes_parity.py "$OUT" 1997-09-30
