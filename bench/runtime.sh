#!/usr/bin/env bash
# Benchmark: `run` of /bin/true on one busybox bundle with Docker's default spec (seccomp
# profile, masked paths, 14 capabilities, an explicit cgroups path), timed with hyperfine for
# berth-runtime, runc and crun side by side, printed as ratios to runc; then `exec` of
# /bin/true into a running container of each (the same spec running `sleep`).
#
# Two bundles are timed: the spec `berth-runtime spec` writes (its seccomp filter covers only
# the ABIs this kernel runs), and the same spec with the filter also covering x32, as the
# specs Docker and podman hand to runc do. berth-runtime drops a dead x32 arch itself at
# create time; runc and crun build it.
#
# crun refuses this kind of host's hybrid cgroups (v1 controllers plus an empty v2 at
# /sys/fs/cgroup/unified), so all three run in one private mount namespace where that v2
# mount is gone: the same conditions for each.
#
# Usage: bash bench/runtime.sh [RUNS]      (as root; installs hyperfine, runc, crun if missing)
set -euo pipefail
runs=${1:-200}
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh needs root" >&2; exit 1; }
missing=()
for pair in hyperfine:hyperfine runc:runc crun:crun busybox:busybox-static; do
  command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get install -y -q "${missing[@]}" >/dev/null
fi

cargo build --release -q -p berth-runtime
berth=${CARGO_TARGET_DIR:-$PWD/target}/release/berth-runtime
runtimes=("$berth" runc crun)

work=$(mktemp -d /tmp/berth-bench-XXXXXX)
cleanup() {
  local rt n id
  for rt in "${runtimes[@]}"; do
    n=$(basename "$rt")
    for id in bench "sleeper-$n"; do "$rt" --root "$work/state-$n" delete --force "$id" >/dev/null 2>&1 || true; done
  done
  rmdir /sys/fs/cgroup/*/berth-bench 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/bundle/rootfs/"{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
"$berth" spec -b "$work/bundle" -- /bin/true
mkdir -p "$work/bundle-x32"
python3 - "$work/bundle/config.json" "$work/bundle-x32/config.json" <<'PY'
import json, sys
src, x32 = sys.argv[1], sys.argv[2]
spec = json.load(open(src))
spec["linux"]["cgroupsPath"] = "/berth-bench/bench"
json.dump(spec, open(src, "w"))
# Both bundles run the one rootfs (runc refuses a symlinked rootfs, so name it absolutely).
spec["root"]["path"] = src.rsplit("/", 1)[0] + "/rootfs"
arches = spec["linux"]["seccomp"]["architectures"]
if "SCMP_ARCH_X86_64" in arches and "SCMP_ARCH_X32" not in arches:
    arches.append("SCMP_ARCH_X32")
json.dump(spec, open(x32, "w"))
PY
# For exec: one long-running container per runtime, each in a cgroup of its own.
for rt in "${runtimes[@]}"; do
  n=$(basename "$rt")
  mkdir -p "$work/sleeper-$n"
  python3 - "$work/bundle/config.json" "$work/sleeper-$n/config.json" "$n" <<'PY'
import json, sys
src, dst, name = sys.argv[1:]
spec = json.load(open(src))
spec["root"]["path"] = src.rsplit("/", 1)[0] + "/rootfs"
spec["process"]["args"] = ["/bin/sleep", "600"]
spec["linux"]["cgroupsPath"] = "/berth-bench/sleeper-" + name
json.dump(spec, open(dst, "w"))
PY
done

for b in bundle bundle-x32; do
  unshare -m --propagation private bash -c "
    if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
    hyperfine -N --warmup 10 --runs $runs --export-json '$work/$b.json' \
      -n berth-runtime '$berth --root $work/state-berth-runtime run -b $work/$b bench' \
      -n runc 'runc --root $work/state-runc run -b $work/$b bench' \
      -n crun 'crun --root $work/state-crun run -b $work/$b bench'
  "
done

unshare -m --propagation private bash -c "
  set -e
  if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
  for rt in ${runtimes[*]}; do
    n=\$(basename \$rt)
    \$rt --root $work/state-\$n run -d -b $work/sleeper-\$n sleeper-\$n </dev/null >/dev/null 2>&1
  done
  hyperfine -N --warmup 10 --runs $runs --export-json '$work/exec.json' \
    -n berth-runtime '$berth --root $work/state-berth-runtime exec sleeper-berth-runtime /bin/true' \
    -n runc 'runc --root $work/state-runc exec sleeper-runc /bin/true' \
    -n crun 'crun --root $work/state-crun exec sleeper-crun /bin/true'
"

python3 - "$work/bundle.json" "$work/bundle-x32.json" "$work/exec.json" <<'PY'
import json, sys
titles = ["run of /bin/true, berth's default spec",
          "run of /bin/true, the same spec with an x32 seccomp arch (as Docker's)",
          "exec of /bin/true into a running container, berth's default spec"]
for path, title in zip(sys.argv[1:], titles):
    results = {r["command"]: r for r in json.load(open(path))["results"]}
    base = results["runc"]["median"]
    print()
    print(f"{title}:")
    print(f"{'runtime':<15} {'median ms':>10} {'mean ms':>10} {'vs runc (median)':>18}")
    for name in ("berth-runtime", "runc", "crun"):
        r = results[name]
        print(f"{name:<15} {r['median']*1e3:>10.2f} {r['mean']*1e3:>10.2f} {r['median']/base:>17.2f}x")
PY
