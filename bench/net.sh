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
source "$(dirname "$0")/lib.sh"
bench_setup net curl:curl
trap bench_cleanup EXIT
busybox_tar sh true sleep echo dd mkdir
start_berth
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

command -v dockerd >/dev/null || exit 0
own_bridge
start_dockerd berth-bnet --bridge "$bench_dbridge" --ip-forward=false --ip-masq=false || exit 0
if ! D run --rm bb true >/dev/null 2>&1; then
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
