#!/usr/bin/env bash
# The API under load: bench/load.py's 16 clients for SECONDS (default 60; at most 200000
# requests) mixing ps, inspect, logs, events, exec and create/start/rm, against berth and
# against a private dockerd (when docker.io is installed), one after the other on this
# machine, twice each: as fast as each daemon answers (the most it serves), then paced at
# RATE requests/s in all (default 40), the same load for both, whose latencies compare.
# Prints per kind requests/s, p50 and p99 (ms) and errors (paced, also the "floor": the same
# client against a server that answers at once, under the same load), then each daemon's RSS and open
# fds before the load, right after it, and 10 s later (containers the load made are gone by
# then; growth there is a leak). Loopback only: unix sockets.
#
# Usage: bash bench/load.sh [SECONDS] [CLIENTS] [RATE]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds=${1:-60}
clients=${2:-16}
rate=${3:-40}
bench_setup load
trap bench_cleanup EXIT
busybox_tar sh echo cat sleep

# rss_fds PID…: "RSS_KiB FDS" summed over the processes.
rss_fds() {
  local rss=0 fds=0 p
  for p in "$@"; do
    rss=$((rss + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
    fds=$((fds + $(ls "/proc/$p/fd" | wc -l)))
  done
  echo "$rss $fds"
}

# measure NAME SOCKET PID…: the load against one daemon; JSON to $work/NAME.json, resource
# use to $work/NAME.res.
measure() {
  local name=$1 sock=$2; shift 2
  local cli=(docker -H "unix://$sock")
  "${cli[@]}" run -d --name load-target bb sh -c 'while true; do echo tick; sleep 1; done' >/dev/null
  sleep 1
  local before after later
  before=$(rss_fds "$@")
  python3 bench/load.py "$sock" load-target bb --clients "$clients" --seconds "$seconds" >"$work/$name.max.json"
  python3 bench/load.py "$sock" load-target bb --clients "$clients" --seconds "$seconds" \
    --rate "$rate" >"$work/$name.paced.json"
  after=$(rss_fds "$@")
  # What the load left (containers of interrupted lives) goes, then the daemon settles.
  local keep
  keep=$("${cli[@]}" inspect -f '{{.Id}}' load-target)
  "${cli[@]}" ps -aq --no-trunc | grep -v "$keep" | xargs -r "${cli[@]}" rm -f >/dev/null 2>&1 || true
  sleep 10
  later=$(rss_fds "$@")
  echo "$before|$after|$later" >"$work/$name.res"
  "${cli[@]}" rm -f load-target >/dev/null
}

start_berth
measure berth "$work/berth.sock" "$berth_pid"
names=(berth)
if start_dockerd berthload --bridge=none; then
  # dockerd and its containerd: the engine's processes (shims excluded for both).
  ctrd=$(pgrep -P "$dockerd_pid" containerd || true)
  measure docker "$work/docker.sock" "$dockerd_pid" $ctrd
  names+=(docker)
fi

python3 - "$work" "$rate" "${names[@]}" <<'EOF'
import json, sys
work, rate, names = sys.argv[1], sys.argv[2], sys.argv[3:]
fmt = lambda v: "-" if v is None else f"{v:.2f}"
for phase, title in (("max", "as fast as each answers"), ("paced", f"paced at {rate} requests/s in all")):
    runs = {n: json.load(open(f"{work}/{n}.{phase}.json")) for n in names}
    kinds = list(runs[names[0]]["kinds"])
    print(f"{title}:")
    print(f"{'kind':<8}" + "".join(f"{n + ' req/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}" for n in names))
    for k in kinds:
        row = f"{k:<8}"
        for n in names:
            r = runs[n]["kinds"][k]
            row += f"{r['rps']:>14}{fmt(r['p50_ms']):>9}{fmt(r['p99_ms']):>9}{r['errors']:>8}"
        print(row)
    for n in names:
        for k in kinds:
            e = runs[n]["kinds"][k]["first_error"]
            if e:
                print(f"{n} {k} first error: {e}")
    if phase == "paced" and "docker" in runs:
        for k in ("ps", "inspect"):
            ours, theirs = runs["berth"]["kinds"][k]["p99_ms"], runs["docker"]["kinds"][k]["p50_ms"]
            if ours is not None and theirs is not None:
                verdict = "below" if ours < theirs else "NOT below"
                print(f"{k}: berth's p99 {ours:.2f} ms is {verdict} dockerd's p50 {theirs:.2f} ms")
        floor = runs["berth"]["kinds"].get("floor")
        if floor and floor["p99_ms"] is not None:
            print(f"floor (a server that answers at once, same client, during berth's run): "
                  f"p50 {floor['p50_ms']:.2f} ms, p99 {floor['p99_ms']:.2f} ms")
    print()
print(f"{'daemon':<8}{'RSS before':>12}{'after':>10}{'10 s later':>12}{'fds before':>12}{'after':>8}{'10 s later':>12}")
for n in names:
    b, a, l = (p.split() for p in open(f"{work}/{n}.res").read().strip().split("|"))
    mib = lambda kib: f"{int(kib) / 1024:.1f} MiB"
    print(f"{n:<8}{mib(b[0]):>12}{mib(a[0]):>10}{mib(l[0]):>12}{b[1]:>12}{a[1]:>8}{l[1]:>12}")
EOF
