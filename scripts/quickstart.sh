#!/usr/bin/env bash
# The main job on a fresh machine: install what is needed, build berth, let the berth CLI start
# its daemon, import a busybox image made from Debian's busybox-static (no registry needed),
# run containers from it, build an image from a Dockerfile and run it — with the berth CLI,
# then with the docker CLI on berth's socket.
#
# Everything lives in a temporary directory (its own root and socket), removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
berth_deps

cargo build --release -q --workspace --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release
export PATH=$bin:$PATH

work=$(mktemp -d /tmp/berth-quickstart-XXXXXX)
export BERTH_HOST=unix://$work/berth.sock BERTH_ROOT=$work/root BERTH_DAEMON_LOG=$work/daemon.log
# Its own bridge, subnet and nftables table, removed at the end: a real berth (berth0, table
# berth) on this machine is left alone.
export BERTH_BRIDGE=bq$$ BERTH_BIP=10.251.$(( $$ % 200 + 20 )).1/24 BERTH_NFT_TABLE=berth_qs_$$
cleanup() {
  berth rm -f web >/dev/null 2>&1 || true
  if [ -f "$work/root/berth.pid" ]; then
    pid=$(cat "$work/root/berth.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  ip link del "$BERTH_BRIDGE" 2>/dev/null || true
  nft delete table ip "$BERTH_NFT_TABLE" 2>/dev/null || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A busybox root filesystem, as a tarball to import.
mkdir -p "$work/rootfs/"{bin,etc,proc,sys,dev,tmp}
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -s busybox "$work/rootfs/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
echo 'root:x:0:' > "$work/rootfs/etc/group"
tar -C "$work/rootfs" -cf "$work/busybox.tar" .

set -x
berth import -c 'CMD ["sh"]' "$work/busybox.tar" busybox   # the CLI starts the daemon
berth images
berth run --rm busybox sh -c 'echo "hello from a berth container: $(hostname), $(id)"; grep Seccomp: /proc/self/status'
berth run -d --name web busybox sh -c 'while true; do echo tick; sleep 1; done'
berth ps
berth exec web sh -c 'echo "exec in $(hostname)"'
sleep 1
berth logs web
berth stop -t 1 web
berth ps -a
berth rm web
set +x

# An image built from a Dockerfile (two stages, a RUN, COPY from the context), then run.
mkdir -p "$work/app"
echo 'echo "hello from a built image: $(cat /etc/app-version)"' > "$work/app/hello.sh"
cat > "$work/app/Dockerfile" <<'EOF'
FROM busybox AS build
RUN echo "app 1.0 built $(date -u +%F)" > /version
FROM busybox
COPY --from=build /version /etc/app-version
COPY hello.sh /usr/local/bin/hello.sh
CMD ["sh", "/usr/local/bin/hello.sh"]
EOF
set -x
berth build -t hello:1 "$work/app"
berth run --rm hello:1
berth build -t hello:1 "$work/app" | grep -c CACHED   # the second build is all cache
set +x

if command -v docker >/dev/null; then
  echo "== the docker CLI on berth's socket"
  export DOCKER_HOST=$BERTH_HOST DOCKER_CONFIG=$work/docker-config
  set -x
  docker run --rm busybox sh -c 'echo "hello from berth, via the docker CLI"; uname -s'
  docker images
  set +x
fi
