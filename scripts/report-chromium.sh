#!/usr/bin/env bash
# The analyst's report in a real browser: renders the reports of the bundled sample (two runs,
# with a holdout) and of CDNOW in headless Chromium driven by chromedriver (Debian's chromium
# and chromium-driver, installed here when missing; selenium from PyPI), fails on any console
# message or a chart that draws nothing, and saves full-page screenshots.
# Run by CI. Usage: scripts/report-chromium.sh [SCREENSHOT_DIR]   (default: a temporary one)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
PY="$(bash scripts/pyenv.sh selenium=selenium)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIN="${CARGO_TARGET_DIR:-target}/debug/patronage"
cargo build --quiet
D=data-samples
ALL=(--orders "$D/orders.csv" --customers "$D/customers.csv" --clicks "$D/clicks.csv" --quiet)
"$BIN" run "${ALL[@]}" --as-of 2024-09-30 --out "$WORK/sample" >/dev/null
"$BIN" run "${ALL[@]}" --as-of 2024-12-30 --holdout-days 90 --report --out "$WORK/sample" >/dev/null
"$BIN" run --orders "$D/cdnow/cdnow_orders.csv" --as-of 1998-06-30 --report --quiet --out "$WORK/cdnow" >/dev/null
"$PY" scripts/report_browser.py "${1:-$WORK/shots}" \
    "$WORK/sample/reports/2024-12-30.html" "$WORK/cdnow/reports/1998-06-30.html"
