#!/usr/bin/env bash
# Benchmark: what networking costs (issue 6). A berth daemon on a private root and socket, with
# a bridge, subnet and nftables table of its own (removed at the end), and the busybox image
# imported from Debian's busybox-static:
#
#   run --rm bb true                        with bridge networking (the default)
#   run --rm --network none bb true         the same without (the difference is the network setup)
#   GET of a 256 MiB file from busybox httpd through a published port on 127.0.0.1 (curl)
#
# Start times are hyperfine medians. When dockerd is installed, the same is measured beside a
# private Docker daemon that touches nothing of the host's: its own root, a bridge the script
# makes (not docker0), --iptables=false --ip-forward=false --ip-masq=false. Its published
# port on 127.0.0.1 then goes through docker-proxy, which is also what carries a stock
# Docker's traffic from the host to 127.0.0.1:PORT.
#
# Usage: bash bench/net.sh [RUNS]        (as root)
set -euo pipefail
runs=${1:-30}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/net.sh needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
command -v busybox >/dev/null || apt-get install -y -q busybox-static >/dev/null
command -v curl >/dev/null || apt-get install -y -q curl >/dev/null

cargo build --release -q --workspace --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release

work=$(mktemp -d /tmp/berth-bench-net-XXXXXX)
bridge=bbench$$ table=berth_bench_$$ dbridge=bdock$$
berth_pid= ; dockerd_pid=
B() { "$bin/berth" -H "unix://$work/berth.sock" "$@"; }
D() { docker -H "unix://$work/docker.sock" "$@"; }
cleanup() {
  set +e
  B rm -f $(B ps -aq 2>/dev/null) >/dev/null 2>&1
  [ -n "$berth_pid" ] && { kill "$berth_pid"; wait "$berth_pid"; } 2>/dev/null
  if [ -n "$dockerd_pid" ]; then
    D rm -f $(D ps -aq 2>/dev/null) >/dev/null 2>&1
    kill "$dockerd_pid"; wait "$dockerd_pid"
  fi 2>/dev/null
  ip link del "$dbridge" 2>/dev/null
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  ip link del "$bridge" 2>/dev/null
  nft delete table ip "$table" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/rootfs/"{bin,etc,proc,sys,dev,tmp}
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in sh true sleep echo dd mkdir; do ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/bb.tar" .

# A /24 of 10.253.x.0 that no host interface uses.
x=0
while ip -o -4 addr show | grep -q " 10\.253\.$x\."; do x=$((x + 1)); done
"$bin/berth" daemon --root "$work/berth" -H "unix://$work/berth.sock" \
  --bridge "$bridge" --bip "10.253.$x.1/24" --nft-table "$table" 2>"$work/berth.log" &
berth_pid=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
B import "$work/bb.tar" bb >/dev/null
B run --rm bb true # warm up (the bridge goes up with its first port)

hyperfine -N -w 3 -r "$runs" --export-json "$work/start.json" \
  -n bridge "$bin/berth -H unix://$work/berth.sock run --rm bb true" \
  -n none "$bin/berth -H unix://$work/berth.sock run --rm --network none bb true" >/dev/null
python3 - "$work/start.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"run --rm, bridge: {r['bridge']*1000:.1f} ms   none: {r['none']*1000:.1f} ms   "
      f"network setup: {(r['bridge']-r['none'])*1000:.1f} ms per container")
PY

throughput() { # engine-CLI-function -> best MB/s of 3 GETs of 256 MiB through 127.0.0.1:PORT
  local id port best=0 bps
  id=$($1 run -d -p 127.0.0.1::80 --tmpfs /www:size=300m bb sh -c \
    'dd if=/dev/zero of=/www/big bs=1M count=256 2>/dev/null; exec busybox httpd -f -p 80 -h /www')
  port=$($1 port "$id" 80/tcp | head -1 | sed 's/.*://')
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/big" && break; sleep 0.1; done
  for _ in 1 2 3; do
    bps=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$port/big")
    best=$(python3 -c "print(max($best, $bps))")
  done
  $1 rm -f "$id" >/dev/null
  python3 -c "print(f'{$best/1e6:.0f}')"
}
berth_mbs=$(throughput B)
echo "published port 127.0.0.1 -> container, berth: $berth_mbs MB/s (best of 3 x 256 MiB)"

command -v dockerd >/dev/null && command -v docker >/dev/null || exit 0
y=0
while ip -o -4 addr show | grep -q " 10\.252\.$y\."; do y=$((y + 1)); done
ip link add "$dbridge" type bridge
ip addr add "10.252.$y.1/24" dev "$dbridge"
ip link set "$dbridge" up
dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
  --pidfile "$work/docker.pid" --bridge "$dbridge" --iptables=false --ip6tables=false \
  --ip-forward=false --ip-masq=false \
  --containerd-namespace berth-bnet --containerd-plugins-namespace berth-bnet-plugins \
  >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 400); do D version >/dev/null 2>&1 && break; sleep 0.05; done
if ! D import "$work/bb.tar" bb >/dev/null 2>&1 || ! D run --rm bb true >/dev/null 2>&1; then
  echo "docker: cannot run a container with networking here (see $work/dockerd.log); skipped" >&2
  exit 0
fi
hyperfine -N -w 3 -r "$runs" --export-json "$work/dstart.json" \
  -n bridge "docker -H unix://$work/docker.sock run --rm bb true" \
  -n none "docker -H unix://$work/docker.sock run --rm --network none bb true" >/dev/null
python3 - "$work/dstart.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"docker run --rm, bridge: {r['bridge']*1000:.1f} ms   none: {r['none']*1000:.1f} ms   "
      f"network setup: {(r['bridge']-r['none'])*1000:.1f} ms per container")
PY
docker_mbs=$(throughput D)
echo "published port 127.0.0.1 -> container, docker: $docker_mbs MB/s"
python3 -c "print(f'throughput berth / docker: {$berth_mbs/$docker_mbs:.2f}x (higher is faster)')"
