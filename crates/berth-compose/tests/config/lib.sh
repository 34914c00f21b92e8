# Shared helpers for regen.sh and compare.sh (sourced, not executed).
# Each case directory may contain:
#   args    one line of extra global arguments, inserted before `config`.
#           Split like a shell word list (quotes allowed, no expansions).
#   osenv   KEY=VALUE lines exported as the *only* OS environment variables
#           besides PATH=/usr/bin:/bin and HOME=/nonexistent. Blank lines and
#           lines starting with '#' are ignored; values are taken literally.

# read_args DIR -> fills global array CASE_ARGS
read_args() {
  CASE_ARGS=()
  if [ -f "$1/args" ]; then
    mapfile -t CASE_ARGS < <(xargs -r printf '%s\n' < "$1/args")
  fi
}

# read_osenv DIR -> fills global array CASE_ENV
read_osenv() {
  CASE_ENV=()
  local line
  if [ -f "$1/osenv" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in ''|'#'*) continue ;; esac
      CASE_ENV+=("$line")
    done < "$1/osenv"
  fi
}

# run_case DIR OUT ERR CMD... : runs `CMD... <args> config --format json`
# inside DIR with a controlled environment; stdout -> OUT, stderr -> ERR.
# Returns the exit code of the command.
run_case() {
  local dir=$1 out=$2 err=$3; shift 3
  read_args "$dir"
  read_osenv "$dir"
  ( cd "$dir" && exec env -i PATH=/usr/bin:/bin HOME=/nonexistent "${CASE_ENV[@]}" \
      "$@" "${CASE_ARGS[@]}" config --format json ) >"$out" 2>"$err"
}

# subst_dir FILE DIR : replaces every occurrence of DIR (physical and logical
# spelling) in FILE by the literal @DIR@, in place.
subst_dir() {
  local file=$1 dir=$2 phys content
  phys=$(cd "$dir" && pwd -P)
  content=$(cat "$file"; printf x)   # keep trailing newlines
  content=${content%x}
  content=${content//"$phys"/@DIR@}
  if [ "$dir" != "$phys" ]; then content=${content//"$dir"/@DIR@}; fi
  printf '%s' "$content" > "$file"
}

# subst_time FILE : v2 logs warnings as logrus text lines with a wall-clock
# timestamp (time="2025-..."); replace it by time="@TIME@" so files are stable.
subst_time() {
  sed -E -i 's/time="[^"]*"/time="@TIME@"/g' "$1"
}
