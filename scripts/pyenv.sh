#!/usr/bin/env bash
# Creates (once) the Python virtualenv the comparison scripts use and prints its python.
# Packages: lifetimes (peer for the BTYD models), duckdb and polars (peers for the aggregation),
# pyarrow. Installed from PyPI; nothing else is needed on the machine but python3.
# Usage: scripts/pyenv.sh [MODULE=PACKAGE ...]   extra packages a script needs, installed when
# their module does not import (e.g. sklearn=scikit-learn).
set -euo pipefail
VENV="${PATRONAGE_VENV:-$HOME/.cache/patronage/venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import lifetimes, duckdb, polars, pyarrow" 2>/dev/null; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check lifetimes==0.11.3 duckdb polars pyarrow >&2
fi
for extra in "$@"; do
    "$VENV/bin/python" -c "import ${extra%%=*}" 2>/dev/null \
        || "$VENV/bin/pip" install -q --disable-pip-version-check "${extra#*=}" >&2
done
echo "$VENV/bin/python"
