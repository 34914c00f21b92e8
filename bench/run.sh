#!/usr/bin/env bash
# Benchmark: the engine end to end, berth beside Docker and podman when they are installed
# (apt-get install docker.io podman), each on its own private root and socket, all with the
# same busybox image (imported from Debian's busybox-static) and --network none for all
# (network setup is measured apart, by bench/net.sh):
#
#   run --rm IMAGE true          create + start + wait + remove, attached
#   run -d IMAGE sleep 60; rm -f a detached container's whole life
#   exec CONTAINER true          one exec into a running container
#   50 x run -d IMAGE sleep 600   one after another (the total), then the daemon's RSS with 50 running
#
# Times are hyperfine medians; the table prints each engine's ratio to Docker's (or to
# berth's when Docker is absent). Then memory: the daemon's RSS just after the runs and after
# 21 s without a request, and the RSS of
# the per-container supervisor (berth's shim, Docker's containerd-shim-runc-v2, podman's
# conmon) for 5 running containers.
#
# Usage: bash bench/run.sh [RUNS]        (as root)
set -euo pipefail
runs=${1:-30}
source "$(dirname "$0")/lib.sh"
bench_setup run
trap bench_cleanup EXIT
busybox_tar sh true sleep echo

engines=(berth)
start_berth
if start_dockerd berth-bench; then engines+=(docker); fi
if command -v podman >/dev/null && P import "$work/bb.tar" bb >/dev/null 2>&1; then
  # podman sets rlimits above what a restricted host allows (RLIMIT_NPROC here): skip it then.
  if probe=$(P run --rm --network none bb true 2>&1); then engines+=(podman); else
    echo "podman: cannot run a container here ($probe); skipped" >&2; fi
fi
if [[ " ${engines[*]} " == *" docker "* ]]; then
  if ! probe=$(D run --rm --network none bb true 2>&1); then
    echo "docker: cannot run a container here ($probe); skipped" >&2
    kept=(); for e in "${engines[@]}"; do [ "$e" = docker ] || kept+=("$e"); done
    engines=("${kept[@]}")
  fi
fi
echo "engines: ${engines[*]}  (runs per measurement: $runs)"

cmd_of() { # engine -> the CLI prefix
  case $1 in
    berth) echo "$bin/berth -H unix://$work/berth.sock" ;;
    docker) echo "docker -H unix://$work/docker.sock" ;;
    podman) echo "podman --root $work/podman --runroot $work/podman-run --storage-driver overlay" ;;
  esac
}
net_of() { echo "--network none"; }

declare -A median
measure() { # name engine command...
  local name=$1 engine=$2; shift 2
  hyperfine --warmup 3 --runs "$runs" --export-json "$work/h.json" "$*" >/dev/null
  median[$name/$engine]=$(median_of "$work/h.json")
}

for e in "${engines[@]}"; do
  c=$(cmd_of "$e"); n=$(net_of "$e")
  measure "run --rm" "$e" "$c run --rm $n bb true"
  measure "run -d + rm -f" "$e" "bash -c '$c rm -f \$($c run -d $n bb sleep 60) >/dev/null'"
  $c run -d $n --name bench-exec bb sleep 600 >/dev/null
  measure "exec" "$e" "$c exec bench-exec true"
  $c rm -f bench-exec >/dev/null
done

base=berth
[[ " ${engines[*]} " == *" docker "* ]] && base=docker
printf '\n%-16s' "median (ms)"; for e in "${engines[@]}"; do printf '%14s' "$e"; done; echo
for m in "run --rm" "run -d + rm -f" "exec"; do
  printf '%-16s' "$m"
  for e in "${engines[@]}"; do
    printf '%14s' "$(python3 -c "print(f'{${median[$m/$e]}*1000:.1f}')")"
  done
  echo
done
echo
echo "ratio to $base (lower is faster):"
for m in "run --rm" "run -d + rm -f" "exec"; do
  printf '%-16s' "$m"
  for e in "${engines[@]}"; do
    printf '%14s' "$(python3 -c "print(f'{${median[$m/$e]}/${median[$m/$base]}:.2f}x')")"
  done
  echo
done

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# avg_rss PID…: the mean RSS (KiB) of these processes, and their mean PSS (the shared pages
# divided among the processes mapping them); nothing when none is given.
avg_rss() {
  local total=0 pss=0 count=0 p
  for p in "$@"; do
    total=$((total + $(rss_kb "$p"))); pss=$((pss + $(pss_kb "$p"))); count=$((count + 1))
  done
  [ "$count" -gt 0 ] && echo "$((total / count)) (PSS $((pss / count)))"
}
echo
echo "memory (RSS, KiB):"
# Right after a run, and idle: the daemons after 21 s without a request, the supervisors 11 s
# after their container started (berth gives its code's file pages back after 10 to 20 s
# without work: berth_core::memory::IdleShed).
# (The timings above left berth idle while the other engines ran: one run first.)
B run --rm --network none bb true
berth_busy=$(rss_kb "$berth_pid")
docker_busy=
if [ -n "$dockerd_pid" ]; then D run --rm --network none bb true; docker_busy=$(rss_kb "$dockerd_pid"); fi
sleep 21
printf '%-30s%18s%18s\n' "" "just used" "idle"
printf '%-30s%18s%18s\n' "berth daemon" "$berth_busy" "$(rss_kb "$berth_pid")"
[ -n "$dockerd_pid" ] && printf '%-30s%18s%18s\n' "dockerd" "$docker_busy" "$(rss_kb "$dockerd_pid")"
for e in "${engines[@]}"; do
  c=$(cmd_of "$e"); n=$(net_of "$e")
  for i in 1 2 3 4 5; do $c run -d $n --name "mem$i" bb sleep 600 >/dev/null; done
  sleep 1
  case $e in
    berth) pids=$(for d in "$work"/berth/containers/*/; do python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["shim_pid"])' "$d/shim.json" 2>/dev/null; done) ;;
    docker) pids=$(pgrep -f "containerd-shim-runc-v2 -namespace berth-bench" || true) ;;
    podman) pids=$(for i in 1 2 3 4 5; do P inspect -f '{{.State.ConmonPid}}' "mem$i"; done) ;;
  esac
  # shellcheck disable=SC2086 # one PID a word
  started=$(avg_rss $pids || true)
  sleep 11 # berth's shim gives its file pages back after 10 s without a wake
  # shellcheck disable=SC2086
  [ -n "$started" ] && printf '%-30s%18s%18s\n' "$e per-container supervisor" "$started" "$(avg_rss $pids)"
  for i in 1 2 3 4 5; do $c rm -f "mem$i" >/dev/null; done
done

# 50 containers started one after another (`run -d`, the total), and the daemon's RSS with
# all 50 running (dockerd's own, and its containerd's beside it; berth's also after 21 s idle).
echo
echo "50 x run -d, one after another (total), and the daemon with 50 running:"
for e in "${engines[@]}"; do
  c=$(cmd_of "$e"); n=$(net_of "$e")
  t0=$(date +%s%N)
  for i in $(seq 50); do $c run -d $n --name "burst$i" bb sleep 600 >/dev/null; done
  total_ms=$((($(date +%s%N) - t0) / 1000000))
  sleep 1
  case $e in
    berth) rss="daemon $(rss_kb "$berth_pid") KiB"; sleep 21; rss="$rss, idle 21 s $(rss_kb "$berth_pid") KiB" ;;
    docker) rss="dockerd $(rss_kb "$dockerd_pid") KiB, its containerd $(rss_kb "$(pgrep -P "$dockerd_pid" containerd | head -1)") KiB" ;;
    *) rss="no daemon" ;;
  esac
  printf '%-8s %8s ms   %s\n' "$e" "$total_ms" "$rss"
  $c rm -f $(for i in $(seq 50); do echo "burst$i"; done) >/dev/null
done
