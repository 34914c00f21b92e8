#!/usr/bin/env bash
# Where one `run --rm` spends its time: berth's daemon logs the steps of each container's life
# (berth-core's timing spans: create, start and its parts, the container's run from its
# recorded start to the shim's record of its end, the wait's answer after that end with the
# clean-up and removal inside it) while the berth CLI runs `run --rm --network none bb true` RUNS times
# (default 25); the table gives each step's median beside the median of the whole command as
# the CLI sees it. A step inside another is indented under it.
#
# Usage: bash bench/trace.sh [RUNS]        (as root)
set -euo pipefail
runs=${1:-25}
source "$(dirname "$0")/lib.sh"
bench_setup trace
trap bench_cleanup EXIT
busybox_tar sh true
"$bin/berth" daemon --root "$work/berth" -H "unix://$work/berth.sock" \
  --bridge "$bench_bridge" --bip "$(free_24 10.253).1/24" --nft-table "$bench_table" \
  --log-level "info,berth::timing=debug" 2>"$work/berth.log" &
berth_pid=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
B import "$work/bb.tar" bb >/dev/null
B run --rm --network none bb true # warm: the first run reads the image's files
: >"$work/berth.log"
for _ in $(seq "$runs"); do
  t0=$(date +%s%N)
  B run --rm --network none bb true
  echo "total $((($(date +%s%N) - t0) / 1000))" >>"$work/totals"
done
sleep 0.3 # the last removal's log lines
python3 - "$work/berth.log" "$work/totals" "$runs" <<'PY'
import re, statistics, sys
log, totals, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
steps = {}
for line in open(log):
    m = re.search(r"berth::timing: step=(\S+) us=(\d+)", re.sub(r"\x1b\[[0-9;]*m", "", line))
    if m:
        steps.setdefault(m.group(1), []).append(int(m.group(2)))
total = statistics.median(int(l.split()[1]) for l in open(totals))
# (name, depth): a step inside another is indented under it. The wait's answer comes after
# the end was seen, cleaned up and (for --rm) the container removed: those are inside it.
order = [("create", 0), ("start", 0), ("start.rootfs", 1), ("start.bundle", 1),
         ("start.shim", 1), ("start.shim.launch", 2), ("start.shim.fork", 2),
         ("start.shim.sockets", 2), ("start.shim.create", 2), ("start.shim.attach", 2),
         ("start.shim.start", 2), ("start.shim.record", 2), ("start.shim.return", 2),
         ("start.record", 1), ("run", 0), ("wait.lag", 0),
         ("exit.seen", 1), ("exit.cleanup", 1), ("remove", 1), ("remove.kill", 2),
         ("remove.unmount", 2), ("remove.runtime_delete", 2), ("remove.network", 2),
         ("remove.files", 2)]
print(f"one `berth run --rm --network none bb true`, medians of {runs} runs")
print(f"{'step':<26}{'ms':>8}{'of the run':>12}{'seen':>6}")
print(f"{'whole command (CLI)':<26}{total / 1000:>8.2f}{'100%':>12}{runs:>6}")
known = {name for name, _ in order}
for name, depth in order + [(n, 0) for n in sorted(set(steps) - known)]:
    v = steps.get(name)
    if not v:
        continue
    med = statistics.median(v)
    label = "  " * depth + name
    print(f"{label:<26}{med / 1000:>8.2f}{100 * med / total:>11.0f}%{len(v):>6}")
top = sum(statistics.median(steps[n]) for n in ("create", "start", "run", "wait.lag") if n in steps)
print(f"{'rest (CLI, API)':<26}{(total - top) / 1000:>8.2f}{100 * (total - top) / total:>11.0f}%")
PY
