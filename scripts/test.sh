#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs everything the tests need (Python packages,
# the real kube-apiserver/controller-manager build, Helm), runs the static checks, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
if [ -x scripts/build-kube.sh ]; then
  ./scripts/build-kube.sh
fi
if [ -x scripts/install-helm.sh ]; then
  ./scripts/install-helm.sh
fi
echo "== ruff";          .venv/bin/ruff check engine tests bench
echo "== ruff format";   .venv/bin/ruff format --check engine tests bench
echo "== mypy --strict"; .venv/bin/mypy
echo "== import-linter"; .venv/bin/lint-imports
echo "== pytest"
export REQUIRE_KUBE="${REQUIRE_KUBE:-1}"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
