#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build berth, and run real
# containers — first straight through the OCI runtime, then through the berth daemon with an
# image imported from a busybox rootfs (Debian's busybox-static; no registry needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
berth_deps

cargo build --release -q --workspace --bins
bin=$PWD/target/release

work=$(mktemp -d /tmp/berth-quickstart-XXXXXX)
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ]; then
    DOCKER_HOST=unix://$work/berth.sock docker rm -f quickstart >/dev/null 2>&1 || true
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/"{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/bundle/rootfs/etc/group"

echo "== berth-runtime run (an OCI bundle with Docker's default security)"
"$bin/berth-runtime" spec -b "$work/bundle" -- /bin/sh -c \
  'echo "hello from a berth container"; echo "pid $$, host $(hostname), $(id)"; grep Seccomp: /proc/self/status'
"$bin/berth-runtime" --root "$work/runtime-state" run -b "$work/bundle" "quickstart-$$"

echo
echo "== berth daemon, driven by the docker CLI when it is installed"
"$bin/berth" daemon --root "$work/root" -H "unix://$work/berth.sock" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
BERTH_HOST=unix://$work/berth.sock "$bin/berth" version
if command -v docker >/dev/null; then
  export DOCKER_HOST=unix://$work/berth.sock DOCKER_CONFIG=$work/docker-config
  tar -C "$work/bundle/rootfs" -cf "$work/busybox.tar" .
  docker import -c 'CMD ["sh"]' "$work/busybox.tar" busybox
  docker images
  docker run --name quickstart busybox sh -c 'echo "hello from berth, via the docker CLI"; uname -s'
  docker ps -a
  docker rm quickstart
fi
