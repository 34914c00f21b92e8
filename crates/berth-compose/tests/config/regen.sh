#!/usr/bin/env bash
# Regenerate every expected file of the corpus with a Docker Compose v2 binary.
# usage: regen.sh /path/to/docker-compose        (reference: v2.40.3)
#        regen.sh /path/to/docker-compose CASE... (only these cases, e.g. good/01-minimal)
set -u
shopt -s nullglob
[ $# -ge 1 ] || { echo "usage: $0 /path/to/docker-compose [good/NN-x|bad/NN-x ...]" >&2; exit 2; }
V2=$1; shift
case "$V2" in */*) V2=$(cd "$(dirname "$V2")" && pwd -P)/$(basename "$V2") ;; *) V2=$(command -v "$V2") ;; esac
[ -x "$V2" ] || { echo "not executable: $V2" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
. "$ROOT/lib.sh"

if [ $# -gt 0 ]; then cases=("$@"); else
  cases=(); for d in "$ROOT"/good/*/ "$ROOT"/bad/*/; do d=${d%/}; cases+=("${d#"$ROOT"/}"); done
fi

problems=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for c in "${cases[@]}"; do
  c=${c%/}; dir="$ROOT/$c"
  [ -d "$dir" ] || { echo "no such case: $c" >&2; problems=$((problems+1)); continue; }
  run_case "$dir" "$tmp/out" "$tmp/err" "$V2"; rc=$?
  subst_dir "$tmp/out" "$dir"; subst_dir "$tmp/err" "$dir"; subst_time "$tmp/err"
  case "$c" in
    good/*)
      rm -f "$dir/expected.err" "$dir/expected.code"
      if [ $rc -ne 0 ]; then
        echo "PROBLEM $c: v2 exited $rc (good case must succeed):"; sed 's/^/    /' "$tmp/err"; problems=$((problems+1)); continue
      fi
      jq . "$tmp/out" > "$dir/expected.json" || { echo "PROBLEM $c: output is not JSON"; problems=$((problems+1)); }
      if [ -s "$tmp/err" ]; then cp "$tmp/err" "$dir/expected.stderr"; else rm -f "$dir/expected.stderr"; fi
      ;;
    bad/*)
      rm -f "$dir/expected.json" "$dir/expected.stderr"
      if [ $rc -eq 0 ]; then echo "PROBLEM $c: v2 accepted a bad case"; problems=$((problems+1)); fi
      cp "$tmp/err" "$dir/expected.err"; echo "$rc" > "$dir/expected.code"
      [ -s "$tmp/err" ] || { echo "PROBLEM $c: empty stderr"; problems=$((problems+1)); }
      ;;
  esac
  # sanity: nothing machine-specific may remain
  if grep -q -F -e "$ROOT" "$dir"/expected.* 2>/dev/null; then
    echo "PROBLEM $c: expected file still contains the corpus path $ROOT"; problems=$((problems+1))
  fi
  echo "ok $c (exit $rc)"
done
echo "done: ${#cases[@]} cases, $problems problem(s)"
[ $problems -eq 0 ]
