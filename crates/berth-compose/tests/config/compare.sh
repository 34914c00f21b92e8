#!/usr/bin/env bash
# Compare another implementation against the recorded v2 outputs.
# usage: compare.sh BIN [CASE...]      e.g. compare.sh berth  or  compare.sh ./target/debug/berth good/07-ports-short
# Runs `BIN compose <args> config --format json` per case (same controlled
# environment as regen.sh), replaces the case directory by @DIR@, and compares
# with expected.json using `jq -S` (key order and whitespace are irrelevant).
# Bad cases pass when BIN exits non-zero (the exact code and message are shown
# but not required). Set DIFF=1 to print a diff for failing good cases.
set -u
shopt -s nullglob
[ $# -ge 1 ] || { echo "usage: $0 BIN [good/NN-x|bad/NN-x ...]" >&2; exit 2; }
BIN=$1; shift
case "$BIN" in */*) BIN=$(cd "$(dirname "$BIN")" && pwd -P)/$(basename "$BIN") ;; *) BIN=$(command -v "$BIN") || { echo "not found: $1" >&2; exit 2; } ;; esac
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
. "$ROOT/lib.sh"

if [ $# -gt 0 ]; then cases=("$@"); else
  cases=(); for d in "$ROOT"/good/*/ "$ROOT"/bad/*/; do d=${d%/}; cases+=("${d#"$ROOT"/}"); done
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
printf '%-45s %-5s %s\n' CASE RESULT DETAIL
for c in "${cases[@]}"; do
  c=${c%/}; dir="$ROOT/$c"
  run_case "$dir" "$tmp/out" "$tmp/err" "$BIN" compose; rc=$?
  subst_dir "$tmp/out" "$dir"; subst_dir "$tmp/err" "$dir"; subst_time "$tmp/err"
  res=FAIL; detail=
  case "$c" in
    good/*)
      if [ $rc -ne 0 ]; then detail="exit $rc: $(head -c 120 "$tmp/err" | tr '\n' ' ')"
      elif ! jq -S . "$tmp/out" > "$tmp/got" 2>/dev/null; then detail="output is not JSON"
      else
        jq -S . "$dir/expected.json" > "$tmp/want"
        if cmp -s "$tmp/got" "$tmp/want"; then res=PASS
        else
          detail="JSON differs ($(diff "$tmp/want" "$tmp/got" | grep -c '^[<>]') lines)"
          [ "${DIFF:-0}" = 1 ] && diff -u "$tmp/want" "$tmp/got" | sed 's/^/    /' >&2
        fi
      fi ;;
    bad/*)
      want=$(cat "$dir/expected.code")
      if [ $rc -ne 0 ]; then res=PASS; detail="exit $rc (v2: $want)"
      else detail="accepted (v2 exits $want: $(head -c 100 "$dir/expected.err" | tr '\n' ' '))"; fi ;;
  esac
  [ $res = PASS ] && pass=$((pass+1)) || fail=$((fail+1))
  printf '%-45s %-5s %s\n' "$c" "$res" "$detail"
done
echo "total: $((pass+fail))  pass: $pass  fail: $fail"
[ $fail -eq 0 ]
