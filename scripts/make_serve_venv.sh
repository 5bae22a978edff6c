#!/usr/bin/env bash
# Create .venv-serve/: the serving-only install (pyproject's `serve` extra; no torch, no Lightning).
#
# The Docker serving image installs the same extra, so the test suite proves in this virtualenv what
# the image would run: the API server from a model artifact alone.
#
#   scripts/make_serve_venv.sh            # create or update .venv-serve (skips when up to date)
#   SERVE_VENV=/tmp/v scripts/make_serve_venv.sh
#
# Idempotent: a stamp file newer than pyproject.toml and this script means nothing to do. The
# install is editable, so code changes need no reinstall.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${SERVE_VENV:-.venv-serve}
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt scripts/make_serve_venv.sh && -x "$VENV/bin/python" ]]; then
    echo "$VENV is up to date (delete $STAMP to reinstall)"
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[serve]'
"$VENV/bin/python" -m pip check
# The point of this virtualenv: the server must not need the training stack.
if "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "error: torch is importable in $VENV; the serve extra must not pull it in" >&2
    exit 1
fi
touch "$STAMP"
echo "$VENV ready: $("$VENV/bin/python" -m pip list --format=freeze | wc -l) packages"
