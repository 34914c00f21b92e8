#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build berth, and run a real
# container (a busybox rootfs from Debian's busybox-static) with Docker's default security.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
berth_deps

cargo build --release -q -p berth-runtime
rt=$PWD/target/release/berth-runtime

work=$(mktemp -d /tmp/berth-quickstart-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/"{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/bundle/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/bundle/rootfs/etc/group"

"$rt" spec -b "$work/bundle" -- /bin/sh -c \
  'echo "hello from a berth container"; echo "pid $$, host $(hostname), $(id)"; grep Seccomp: /proc/self/status'
"$rt" --root "$work/state" run -b "$work/bundle" "quickstart-$$"
