#!/usr/bin/env bash
# The manifest's JSON Schema (docs/manifest.schema.json) against the manifests real runs write:
# the bundled sample with a holdout (and with the customer model chosen by `auto`), with every optional stage off, partitioned in one process
# (run --partitions), and through the scale-out phases. Validated with Python's `jsonschema`
# (PyPI). Run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$(bash scripts/pyenv.sh jsonschema=jsonschema)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIN="${CARGO_TARGET_DIR:-target}/debug/patronage"
cargo build --quiet
D=data-samples
ALL=(--orders "$D/orders.csv" --customers "$D/customers.csv" --clicks "$D/clicks.csv" --as-of 2024-12-30 --quiet)
"$BIN" run "${ALL[@]}" --holdout-days 90 --out "$WORK/holdout" >/dev/null
printf '[models]\ncustomer_model = "auto"\nseasonality = "month_of_year"\n' > "$WORK/auto.toml"
"$BIN" run "${ALL[@]}" --holdout-days 90 --config "$WORK/auto.toml" --out "$WORK/auto" >/dev/null
"$BIN" run --orders "$D/orders.csv" --no-models --no-clusters --no-loyalty --quiet --out "$WORK/bare" >/dev/null
"$BIN" run "${ALL[@]}" --partitions 3 --format delta --out "$WORK/partitioned" >/dev/null
for i in 0 1; do "$BIN" partial "${ALL[@]}" --work "$WORK/w" --partition "$i/2" --out "$WORK/phases"; done >/dev/null
"$BIN" fit "${ALL[@]}" --work "$WORK/w" --partitions 2 --out "$WORK/phases" >/dev/null
for i in 0 1; do "$BIN" score "${ALL[@]}" --work "$WORK/w" --partition "$i/2" --out "$WORK/phases"; done >/dev/null
"$BIN" publish "${ALL[@]}" --work "$WORK/w" --partitions 2 --out "$WORK/phases" >/dev/null
"$PY" - docs/manifest.schema.json "$WORK"/*/manifests/*.json <<'PY'
import json, sys
from jsonschema import Draft202012Validator

schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    manifest = json.load(open(path))
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    for e in errors[:5]:
        print(f"{path}: {'/'.join(map(str, e.path)) or '(top)'}: {e.message}")
    bad += bool(errors)
    print(f"{'INVALID' if errors else 'valid'}: {path}")
sys.exit(1 if bad or len(sys.argv) < 6 else 0)
PY
