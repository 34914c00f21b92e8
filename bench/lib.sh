# What the engine benchmarks share; sourced by bench/run.sh, bench/build.sh and bench/net.sh
# after `set -euo pipefail`. Everything lives in one scratch directory ($work) and on a
# bridge, subnet and nftables table of the benchmark's own; each script's EXIT trap calls
# bench_cleanup, which removes all of it (and stops only the daemons started here, by PID).

# bench_setup NAME [COMMAND:PACKAGE …]: root check, missing tools from apt, a release build;
# sets $bin (berth's binaries) and $work.
bench_setup() {
  local name=$1 pair; shift
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  [ "$(id -u)" = 0 ] || { echo "bench/$name.sh needs root" >&2; exit 1; }
  for pair in hyperfine:hyperfine busybox:busybox-static "$@"; do
    command -v "${pair%%:*}" >/dev/null || apt-get install -y -q "${pair#*:}" >/dev/null
  done
  cargo build --release -q --workspace --bins
  bin=${CARGO_TARGET_DIR:-$PWD/target}/release
  work=$(mktemp -d "/tmp/berth-bench-$name-XXXXXX")
  berth_pid= ; dockerd_pid=
  bench_bridge=bb$name$$ bench_table=berth_bench_${name}_$$ bench_dbridge=
}

B() { "$bin/berth" -H "unix://$work/berth.sock" "$@"; }
D() { docker -H "unix://$work/docker.sock" "$@"; }
P() { podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay "$@"; }

# busybox_tar APPLET…: a busybox root filesystem with these applets, as $work/bb.tar.
busybox_tar() {
  local a
  mkdir -p "$work/rootfs/"{bin,etc,proc,sys,dev,tmp}
  cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
  for a in "$@"; do ln -s busybox "$work/rootfs/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
  tar -C "$work/rootfs" -cf "$work/bb.tar" .
}

# free_24 PREFIX: the first PREFIX.N (e.g. 10.253.N) whose /24 no host interface uses.
free_24() {
  local n=0
  while ip -o -4 addr show | grep -q " ${1//./\\.}\.$n\."; do n=$((n + 1)); done
  echo "$1.$n"
}

# start_berth: berth's daemon on $work with the benchmark's own bridge, subnet and table, and
# the busybox image imported as bb.
start_berth() {
  "$bin/berth" daemon --root "$work/berth" -H "unix://$work/berth.sock" \
    --bridge "$bench_bridge" --bip "$(free_24 10.253).1/24" --nft-table "$bench_table" \
    2>"$work/berth.log" &
  berth_pid=$!
  for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
  B import "$work/bb.tar" bb >/dev/null
}

# start_dockerd NAMESPACE [DOCKERD FLAG…]: a private dockerd (and containerd namespace) on
# $work, without a bridge unless flags give one, never touching the host's iptables; bb
# imported. Returns 1 (and says why) when it cannot.
start_dockerd() {
  local ns=$1; shift
  command -v dockerd >/dev/null && command -v docker >/dev/null || return 1
  [ $# -gt 0 ] || set -- --bridge=none
  dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
    --pidfile "$work/docker.pid" --iptables=false --ip6tables=false "$@" \
    --containerd-namespace "$ns" --containerd-plugins-namespace "$ns-plugins" \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 400); do D version >/dev/null 2>&1 && break; sleep 0.05; done
  D import "$work/bb.tar" bb >/dev/null 2>&1 || {
    echo "docker: could not start a private dockerd (see $work/dockerd.log); skipped" >&2
    return 1
  }
}

# own_bridge: a bridge for the private dockerd (not docker0), on a free /24 of 10.252.
own_bridge() {
  bench_dbridge=bdock$$
  ip link add "$bench_dbridge" type bridge
  ip addr add "$(free_24 10.252).1/24" dev "$bench_dbridge"
  ip link set "$bench_dbridge" up
}

bench_cleanup() {
  set +e
  B rm -f $(B ps -aq 2>/dev/null) >/dev/null 2>&1
  if [ -n "$dockerd_pid" ]; then
    D rm -f $(D ps -aq 2>/dev/null) >/dev/null 2>&1
    kill "$dockerd_pid"; wait "$dockerd_pid"
  fi 2>/dev/null
  if command -v podman >/dev/null && [ -d "$work/podman" ]; then
    P rm -fa >/dev/null 2>&1; P system reset -f >/dev/null 2>&1
  fi
  [ -n "$berth_pid" ] && { kill "$berth_pid"; wait "$berth_pid"; } 2>/dev/null
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  ip link del "$bench_bridge" 2>/dev/null
  [ -n "$bench_dbridge" ] && ip link del "$bench_dbridge" 2>/dev/null
  nft delete table ip "$bench_table" 2>/dev/null
  rm -rf "$work"
  true
}

# median_of FILE: the first result's median from a hyperfine JSON export.
median_of() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$1"
}
