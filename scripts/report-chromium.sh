#!/usr/bin/env bash
# The analyst's report in a real browser: renders the reports of the bundled sample (two runs,
# with a holdout) and of CDNOW in headless Chromium (Debian's package, installed here when
# missing), fails on any console message or failed load, and saves full-page screenshots.
# Run by CI. Usage: scripts/report-chromium.sh [SCREENSHOT_DIR]   (default: a temporary one)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SHOTS="${1:-$WORK/shots}"
mkdir -p "$SHOTS"
BIN="${CARGO_TARGET_DIR:-target}/debug/patronage"
cargo build --quiet
D=data-samples
ALL=(--orders "$D/orders.csv" --customers "$D/customers.csv" --clicks "$D/clicks.csv" --quiet)
"$BIN" run "${ALL[@]}" --as-of 2024-09-30 --out "$WORK/sample" >/dev/null
"$BIN" run "${ALL[@]}" --as-of 2024-12-30 --holdout-days 90 --report --out "$WORK/sample" >/dev/null
"$BIN" run --orders "$D/cdnow/cdnow_orders.csv" --as-of 1998-06-30 --report --quiet --out "$WORK/cdnow" >/dev/null
status=0
for page in "$WORK/sample/reports/2024-12-30.html" "$WORK/cdnow/reports/1998-06-30.html"; do
    name="$(basename "$(dirname "$(dirname "$page")")")"
    # The flags this closed network needs (no background connections), a fresh profile.
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$WORK/profile-$name" --enable-logging=stderr --v=0 \
        --window-size=1100,4600 --hide-scrollbars --screenshot="$SHOTS/report-$name.png" \
        "file://$page" 2>"$WORK/$name.log" >/dev/null || true
    if grep -E "CONSOLE|Uncaught|net::ERR_|Failed to load" "$WORK/$name.log"; then
        echo "report ($name): the browser reported errors above"
        status=1
    fi
    size=$(stat -c %s "$SHOTS/report-$name.png" 2>/dev/null || echo 0)
    if [ "$size" -lt 20000 ]; then
        echo "report ($name): no screenshot, or an empty one ($size bytes)"
        status=1
    else
        echo "report ($name): rendered in Chromium, no console message, screenshot $SHOTS/report-$name.png ($size bytes)"
    fi
done
exit $status
