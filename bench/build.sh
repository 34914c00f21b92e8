#!/usr/bin/env bash
# Benchmark: `build` of a 50 MiB context (2,000 small files and four large ones) with a COPY
# and two RUNs, berth beside Docker's legacy builder (DOCKER_BUILDKIT=0) and podman (buildah)
# when they are installed and can run containers here; each engine on its own private root and
# socket, all from the same busybox image, RUN without network for all.
#
#   cold          build --no-cache (every step runs; the context is read whole)
#   cached        the same build again, nothing changed
#   touch 1 file  one small file changed before each build: the COPY and what follows run
#
# berth reads a local context in place; "berth (upload)" is berth sent a tar of the context
# the way the docker CLI sends it (BERTH_BUILD_UPLOAD=1). Times are hyperfine medians; the
# ratios are to Docker's (to berth's when Docker is absent).
#
# Usage: bash bench/build.sh [RUNS]        (as root)
set -euo pipefail
runs=${1:-10}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/build.sh needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
command -v busybox >/dev/null || apt-get install -y -q busybox-static >/dev/null

cargo build --release -q --workspace --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release

work=$(mktemp -d /tmp/berth-bench-build-XXXXXX)
berth_pid= ; dockerd_pid=
B() { "$bin/berth" -H "unix://$work/berth.sock" "$@"; }
D() { docker -H "unix://$work/docker.sock" "$@"; }
P() { podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver overlay "$@"; }
cleanup() {
  set +e
  [ -n "$dockerd_pid" ] && { kill "$dockerd_pid"; wait "$dockerd_pid"; } 2>/dev/null
  if command -v podman >/dev/null; then P system reset -f >/dev/null 2>&1; fi
  [ -n "$berth_pid" ] && { kill "$berth_pid"; wait "$berth_pid"; } 2>/dev/null
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap 'cleanup; ip link del "bbuild$$" 2>/dev/null; nft delete table ip "berth_bbuild_$$" 2>/dev/null; true' EXIT

mkdir -p "$work/rootfs/"{bin,etc,proc,sys,dev,tmp}
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for a in sh ls cat wc; do ln -s busybox "$work/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$work/rootfs/etc/passwd"
tar -C "$work/rootfs" -cf "$work/bb.tar" .

# The context: 2,000 files of 4 KiB in 40 directories, and four of 10 MiB.
ctx=$work/ctx
python3 - "$ctx" <<'EOF'
import os, sys
ctx = sys.argv[1]
for d in range(40):
    os.makedirs(f"{ctx}/src/d{d:02}", exist_ok=True)
    for f in range(50):
        with open(f"{ctx}/src/d{d:02}/f{f:03}.txt", "wb") as out:
            out.write(os.urandom(4096))
os.makedirs(f"{ctx}/big", exist_ok=True)
for i in range(4):
    with open(f"{ctx}/big/blob{i}.bin", "wb") as out:
        out.write(os.urandom(10 << 20))
with open(f"{ctx}/Dockerfile", "w") as out:
    out.write("FROM bb\nCOPY . /app\n"
              "RUN sh -c 'ls -R /app | wc -l > /count'\n"
              "RUN sh -c 'cat /app/big/*.bin | wc -c > /size'\n")
EOF
echo "context: $(du -sm "$ctx" | cut -f1) MiB, $(find "$ctx" -type f | wc -l) files"

engines=(berth "berth (upload)")
"$bin/berth" daemon --root "$work/berth" -H "unix://$work/berth.sock" --bridge "bbuild$$" \
  --bip 10.253.$(($$ % 250)).1/24 --nft-table "berth_bbuild_$$" 2>"$work/berth.log" &
berth_pid=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
B import "$work/bb.tar" bb >/dev/null

if command -v dockerd >/dev/null && command -v docker >/dev/null; then
  dockerd --data-root "$work/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
    --pidfile "$work/docker.pid" --bridge=none --iptables=false --ip6tables=false \
    --containerd-namespace berth-bbuild --containerd-plugins-namespace berth-bbuild-plugins \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 400); do D version >/dev/null 2>&1 && break; sleep 0.05; done
  if D import "$work/bb.tar" bb >/dev/null 2>&1 \
    && probe=$(DOCKER_BUILDKIT=0 D build -q --network none -t probe - <<<$'FROM bb\nRUN true' 2>&1); then
    engines+=(docker)
  else
    echo "docker: cannot build here (${probe:-see $work/dockerd.log}); skipped" >&2
  fi
fi
if command -v podman >/dev/null && P import "$work/bb.tar" bb >/dev/null 2>&1; then
  if probe=$(P build -q --network none -t probe - <<<$'FROM bb\nRUN true' 2>&1); then
    engines+=(podman)
  else
    echo "podman: cannot build here ($(tail -1 <<<"$probe")); skipped" >&2
  fi
fi
echo "engines: ${engines[*]}  (runs per measurement: $runs)"

build_cmd() { # engine [extra flags] -> the build command
  local e=$1; shift
  case $e in
    berth) echo "$bin/berth -H unix://$work/berth.sock build -q --network none $* -t app $ctx" ;;
    "berth (upload)") echo "env BERTH_BUILD_UPLOAD=1 $bin/berth -H unix://$work/berth.sock build -q --network none $* -t app $ctx" ;;
    docker) echo "env DOCKER_BUILDKIT=0 docker -H unix://$work/docker.sock build -q --network none $* -t app $ctx" ;;
    podman) echo "podman --root $work/podman --runroot $work/podman-run --storage-driver overlay build -q --network none --layers $* -t app $ctx" ;;
  esac
}

declare -A median
measure() { # name engine prepare command
  local name=$1 engine=$2 prepare=$3; shift 3
  hyperfine --warmup 1 --runs "$runs" --prepare "$prepare" --export-json "$work/h.json" "$*" >/dev/null
  median[$name/$engine]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/h.json")
}

for e in "${engines[@]}"; do
  measure "cold" "$e" "true" "$(build_cmd "$e" --no-cache)"
  measure "cached" "$e" "true" "$(build_cmd "$e")"
  measure "touch 1 file" "$e" "sh -c 'head -c 4096 /dev/urandom > $ctx/src/d07/f013.txt'" "$(build_cmd "$e")"
done

base=berth
[[ " ${engines[*]} " == *" docker "* ]] && base=docker
metrics=("cold" "cached" "touch 1 file")
printf '\n%-14s' "median (s)"; for e in "${engines[@]}"; do printf '%16s' "$e"; done; echo
for m in "${metrics[@]}"; do
  printf '%-14s' "$m"
  for e in "${engines[@]}"; do printf '%16s' "$(python3 -c "print(f'{${median[$m/$e]}:.3f}')")"; done
  echo
done
echo
echo "ratio to $base (lower is faster):"
for m in "${metrics[@]}"; do
  printf '%-14s' "$m"
  for e in "${engines[@]}"; do
    printf '%16s' "$(python3 -c "print(f'{${median[$m/$e]}/${median[$m/$base]}:.2f}x')")"
  done
  echo
done
