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
source "$(dirname "$0")/lib.sh"
bench_setup build
trap bench_cleanup EXIT
busybox_tar sh ls cat wc

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
start_berth
if start_dockerd berth-bbuild; then
  if probe=$(DOCKER_BUILDKIT=0 D build -q --network none -t probe - <<<$'FROM bb\nRUN true' 2>&1); then
    engines+=(docker)
  else
    echo "docker: cannot build here ($probe); skipped" >&2
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
  median[$name/$engine]=$(median_of "$work/h.json")
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
