#!/usr/bin/env bash
# Fuzzing: every cargo-fuzz target in fuzz/ for SECONDS each (default 60), on the nightly
# toolchain, starting from the project's seeds (fuzz/seeds/TARGET, never written to: new
# inputs go to a scratch corpus). Prints, per target, the executions run and whether it
# found a crash; a crash's input is kept under fuzz/artifacts/TARGET/ and the script exits 1.
# Every crash found becomes a regression test beside the code it broke.
#
# Usage: bash bench/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked -q cargo-fuzz
rustup toolchain list | grep -q nightly || { echo "fuzzing needs the nightly toolchain" >&2; exit 1; }
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
# FUZZ_PROFILE=dev: unoptimized (a quicker build, for CI's short runs); else release.
profile=-O
[ "${FUZZ_PROFILE:-release}" = dev ] && profile=--dev
(cd fuzz && cargo +nightly fuzz build "$profile" 2>&1 | grep -E '^(error|warning: unused)' || true)
work=$(mktemp -d /tmp/berth-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
total=0 found=0
printf '%-16s %14s %10s\n' target executions finding
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log=$work/$t.log
  status=0
  extra=() asan=${ASAN_OPTIONS:-}
  # gtmpl lexes in a thread of its own, which may outlive the render by a moment: libFuzzer
  # counts the memory it still holds when an input ends as leaked (32 bytes, never when the
  # input is run again alone), and so does LeakSanitizer at exit. Hangs and crashes are still
  # found.
  if [ "$t" = go_template ]; then
    extra+=(-detect_leaks=0)
    asan=${asan:+$asan:}detect_leaks=0
  fi
  (cd fuzz && ASAN_OPTIONS=$asan cargo +nightly fuzz run "$profile" "$t" "$work/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 "${extra[@]}") \
    >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  execs=${execs:-0}
  total=$((total + execs))
  if [ "$status" = 0 ]; then
    printf '%-16s %14s %10s\n' "$t" "$execs" none
  else
    found=$((found + 1))
    printf '%-16s %14s %10s\n' "$t" "$execs" "CRASH"
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|artifact_prefix|Test unit written' "$log" | head -8 | sed 's/^/    /'
  fi
done
echo "total executions: $total; targets with a finding: $found (of ${#targets[@]}, ${seconds}s each)"
[ "$found" = 0 ]
