#!/usr/bin/env bash
# Creates .venv (if missing) and installs the project with its dev tools into it.
# Idempotent: a second run only re-checks requirements. pip's cache lives outside the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/agent-stack-policy/pip}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[dev]'
