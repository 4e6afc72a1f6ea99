#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 for the cluster integration tests.
#
# Why from source: no package registry reachable here ships those binaries and there is no Docker,
# but Debian bookworm's *source* package `kubernetes` holds the full upstream v1.20.2 tree (with
# vendor/) and Debian's Go 1.19 builds it offline. etcd comes from Debian's `etcd-server`.
#
# Idempotent: when both binaries are cached and etcd is installed it exits at once. Otherwise it
# installs only what is missing, reuses an already downloaded/unpacked source tree and Go build cache,
# and moves finished binaries into the cache with a rename, so an interrupted build never leaves a
# half-written binary where the tests look for it.
#
# Cache: ${AGENT_STACK_CACHE:-$HOME/.cache/agent-stack-policy}/kube-v1.20.2/{bin,build}
set -euo pipefail

readonly KUBE_VERSION="v1.20.2"
readonly DEB_SOURCE_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
readonly ORIG_TARBALL="kubernetes_1.20.5+really1.20.2.orig.tar.gz"
readonly TREE_NAME="kubernetes-1.20.2"
readonly BINARIES=(kube-apiserver kube-controller-manager)
readonly GO_ROOT="/usr/lib/go-1.19"
readonly DEB_SRC_FILE="/etc/apt/sources.list.d/agent-stack-bookworm-src.sources"

CACHE_ROOT="${AGENT_STACK_CACHE:-$HOME/.cache/agent-stack-policy}"
KUBE_DIR="$CACHE_ROOT/kube-$KUBE_VERSION"
BIN_DIR="$KUBE_DIR/bin"
BUILD_DIR="$KUBE_DIR/build"

log() { echo "build-kube: $*"; }
die() {
  echo "build-kube: error: $*" >&2
  exit 1
}

etcd_path() {
  if command -v etcd >/dev/null 2>&1; then
    command -v etcd
  elif [ -x /usr/bin/etcd ]; then
    echo /usr/bin/etcd
  else
    return 1
  fi
}

binaries_cached() {
  local name
  for name in "${BINARIES[@]}"; do
    [ -x "$BIN_DIR/$name" ] || return 1
  done
  # the unpacked tree's OpenAPI spec: tests/unit/test_generated_kube_api.py checks the v1.20 table
  # against it (a cache whose build tree was pruned is built again)
  [ -f "$BUILD_DIR/$TREE_NAME/api/openapi-spec/swagger.json" ] || return 1
}

# ---- fast path ------------------------------------------------------------------------------------
# (openssl is checked too: the test harness makes its service-account key with it; and shellcheck,
# which tests/chart/test_log_collector.py runs on the chart's log collector script.)
if binaries_cached && etcd_path >/dev/null && command -v openssl >/dev/null 2>&1 \
  && command -v shellcheck >/dev/null 2>&1; then
  log "$KUBE_VERSION kube-apiserver and kube-controller-manager cached in $BIN_DIR, etcd at $(etcd_path); nothing to do"
  exit 0
fi

START_SECONDS=$SECONDS

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
}

# ---- system packages: only what is missing --------------------------------------------------------
NEED_BUILD=0
binaries_cached || NEED_BUILD=1

missing_packages=()
etcd_path >/dev/null || missing_packages+=(etcd-server)
command -v openssl >/dev/null 2>&1 || missing_packages+=(openssl)
command -v curl >/dev/null 2>&1 || missing_packages+=(curl)
command -v shellcheck >/dev/null 2>&1 || missing_packages+=(shellcheck)  # tests/chart/test_log_collector.py
if [ "$NEED_BUILD" -eq 1 ]; then
  [ -x "$GO_ROOT/bin/go" ] || missing_packages+=(golang-1.19-go)
  command -v rsync >/dev/null 2>&1 || missing_packages+=(rsync)
  command -v make >/dev/null 2>&1 || missing_packages+=(make)
  package_installed debian-archive-keyring || missing_packages+=(debian-archive-keyring)
fi

if [ "${#missing_packages[@]}" -gt 0 ]; then
  apt_update_once
  log "installing ${missing_packages[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing_packages[@]}" >/dev/null
fi
etcd_path >/dev/null || die "etcd is still not on PATH or at /usr/bin/etcd after installing etcd-server"

if [ "$NEED_BUILD" -eq 0 ]; then
  log "binaries already cached in $BIN_DIR; installed missing tools only (${SECONDS}s)"
  exit 0
fi

# ---- source package -------------------------------------------------------------------------------
source_index_has_kubernetes() {
  apt-cache showsrc kubernetes 2>/dev/null | grep -qxF "Version: $DEB_SOURCE_VERSION"
}

mkdir -p "$BUILD_DIR/src" "$BUILD_DIR/home" "$BIN_DIR"

if [ ! -s "$BUILD_DIR/src/$ORIG_TARBALL" ]; then
  if ! source_index_has_kubernetes; then
    if [ ! -f "$DEB_SRC_FILE" ]; then
      log "adding a deb-src source for bookworm ($DEB_SRC_FILE)"
      as_root tee "$DEB_SRC_FILE" >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    APT_UPDATED=0
    apt_update_once
    source_index_has_kubernetes || die "apt has no source package kubernetes=$DEB_SOURCE_VERSION"
  fi
  log "downloading source package kubernetes=$DEB_SOURCE_VERSION"
  (cd "$BUILD_DIR/src" && apt-get source -qq --download-only "kubernetes=$DEB_SOURCE_VERSION" >/dev/null)
  [ -s "$BUILD_DIR/src/$ORIG_TARBALL" ] || die "apt-get source did not produce $ORIG_TARBALL"
fi

TREE="$BUILD_DIR/$TREE_NAME"
if [ ! -f "$TREE/.unpacked" ]; then
  log "unpacking $ORIG_TARBALL"
  rm -rf "$TREE" "$BUILD_DIR/unpack.tmp"
  mkdir -p "$BUILD_DIR/unpack.tmp"
  tar -xzf "$BUILD_DIR/src/$ORIG_TARBALL" -C "$BUILD_DIR/unpack.tmp"
  [ -d "$BUILD_DIR/unpack.tmp/$TREE_NAME" ] || die "$ORIG_TARBALL did not unpack to $TREE_NAME/"
  mv "$BUILD_DIR/unpack.tmp/$TREE_NAME" "$TREE"
  rmdir "$BUILD_DIR/unpack.tmp"
  touch "$TREE/.unpacked"
fi

VERSION_FILE="$BUILD_DIR/kube-version.env"
cat >"$VERSION_FILE" <<'EOF'
KUBE_GIT_VERSION='v1.20.2'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_COMMIT='faecb196815e248d3ecfb03c680a4507229c2a56'
EOF

# ---- build ----------------------------------------------------------------------------------------
# make needs rsync, and an _output made by a run without it is broken: start afresh unless the marker
# (written below, once rsync is known to be installed) says it came from this script. An interrupted
# run of this script keeps _output, whose Go build cache makes the next run much faster.
if [ -d "$TREE/_output" ] && [ ! -f "$TREE/_output/.built-with-rsync" ]; then
  log "removing an _output not made by this script"
  rm -rf "$TREE/_output"
fi
mkdir -p "$TREE/_output"
touch "$TREE/_output/.built-with-rsync"

log "building ${BINARIES[*]} $KUBE_VERSION with Go 1.19 (takes about 4-5 minutes cold)"
what=""
for name in "${BINARIES[@]}"; do
  what="$what cmd/$name"
done
(
  cd "$TREE"
  export PATH="$GO_ROOT/bin:$PATH"
  export CGO_ENABLED=0 GOPROXY=off GOFLAGS="" GO111MODULE=""
  export HOME="$BUILD_DIR/home"
  export KUBE_GIT_VERSION_FILE="$VERSION_FILE"
  make WHAT="${what# }"
) >"$BUILD_DIR/make.log" 2>&1 || {
  tail -n 40 "$BUILD_DIR/make.log" >&2
  die "make failed; full log in $BUILD_DIR/make.log"
}

# ---- install into the cache atomically ------------------------------------------------------------
rm -f "$BIN_DIR"/.kube-*.tmp.*  # left by an interrupted copy
for name in "${BINARIES[@]}"; do
  built="$TREE/_output/bin/$name"
  [ -x "$built" ] || die "make finished but $built is missing"
  tmp="$BIN_DIR/.$name.tmp.$$"
  cp "$built" "$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$BIN_DIR/$name"
  log "installed $BIN_DIR/$name ($("$BIN_DIR/$name" --version 2>/dev/null || echo 'version unknown'))"
done

log "done in $((SECONDS - START_SECONDS))s"
