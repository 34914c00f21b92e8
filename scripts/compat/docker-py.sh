#!/usr/bin/env bash
# Runs Docker's SDK for Python integration suite (github.com/docker/docker-py,
# tests/integration) against a private daemon: berth (this tree, built here) or Debian's
# dockerd, for an API-fidelity report (docs/compat/docker-py.md). Run by hand, as root: the
# suite comes from a checkout you give, PyPI gives pytest; nothing talks to Docker Hub.
#
#   scripts/compat/docker-py.sh PATH-TO-DOCKER-PY [--engine berth|docker] [--artifacts DIR]
#                               [-- PYTEST-ARGS…]
#
# Everything lives in one temp dir: a venv (pytest 7.4, pytest-timeout, docker-py's
# requirements; the `docker` package itself from the checkout, by PYTHONPATH), the daemon's
# root, socket and log. The daemon gets a bridge, a /24 and (berth) an nftables table of its
# own. alpine:3.10, alpine:latest and busybox:latest are look-alikes imported from Debian's
# busybox-static (all applets, a postgres user, /var/opt). The tests that need Docker Hub,
# swarm, plugins, a shared `/` or websockets over tcp are deselected (list below).
#
# Prints pytest's summary line; exits 0 whenever pytest ran, whatever it counted (non-zero
# only when the set-up failed). --artifacts DIR keeps the JUnit XML, the whole pytest output
# and the daemon's log there. PYTEST-ARGS go to pytest after ours (e.g. -k, -x, a node id in
# place of the whole suite: then give tests/… paths yourself).
#
# On exit (also on failure or ^C) it removes everything it made: containers through the API
# while the daemon still runs (they outlive it), networks likewise, then the daemon by PID,
# whatever process still runs from the temp dir, mounts under it, the bridges, the nftables
# table, the containers' cgroups, the temp dir.
set -euo pipefail

usage() {
  sed -n '7,8p' "$0" | sed 's/^# *//' >&2
  exit 2
}

src= engine=berth artifacts= extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --engine) engine=${2:?}; shift 2 ;;
    --engine=*) engine=${1#*=}; shift ;;
    --artifacts) artifacts=${2:?}; shift 2 ;;
    --artifacts=*) artifacts=${1#*=}; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    -*) echo "unknown flag $1" >&2; usage ;;
    *) [ -z "$src" ] || usage; src=$1; shift ;;
  esac
done
[ -n "$src" ] || usage
case $engine in berth|docker) ;; *) echo "--engine is berth or docker" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "docker-py.sh needs root (it runs a container engine)" >&2; exit 1; }
src=$(cd "$src" && pwd)
[ -f "$src/tests/integration/conftest.py" ] && [ -d "$src/docker" ] ||
  { echo "$src is not a docker-py checkout" >&2; exit 1; }
for tool in python3 curl ip busybox; do
  command -v $tool >/dev/null || { echo "docker-py.sh needs $tool" >&2; exit 1; }
done
[ "$engine" = berth ] && { command -v nft >/dev/null || { echo "needs nft" >&2; exit 1; }; }
[ "$engine" = docker ] && { command -v dockerd >/dev/null || { echo "needs dockerd" >&2; exit 1; }; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
[ -z "$artifacts" ] || { mkdir -p "$artifacts"; artifacts=$(cd "$artifacts" && pwd); }

tmp=$(mktemp -d /tmp/berth-dockerpy-XXXXXX)
sock=$tmp/engine.sock
daemon_pid= pytest_pid= tail_pid= bridge= table= bridges=() cids=()
# Directories a daemon makes outside its roots (cgroup parents, dockerd's plugin dir): the
# ones that are not there yet go again at the end, when empty (rmdir: never one in use).
host_dirs=(/run/docker/plugins /run/docker /sys/fs/cgroup/docker /sys/fs/cgroup/berth)
new_dirs=()
for d in "${host_dirs[@]}"; do [ -e "$d" ] || new_dirs+=("$d"); done
for c in /sys/fs/cgroup/*/; do
  for d in "${c}docker" "${c}berth"; do [ -e "$d" ] || new_dirs+=("$d"); done
done

# api METHOD PATH [CURL ARGS…]: one Engine API call on the private socket; the body on stdout.
api() {
  local m=$1 p=$2; shift 2
  curl -sS --unix-socket "$sock" -X "$m" "$@" "http://engine/v1.41$p"
}

# A /24 (PREFIX.N.0) that no host interface uses, by its gateway PREFIX.N.1.
free_24() {
  local n=0
  while ip -o -4 addr show | grep -q " ${1//./\\.}\.$n\."; do n=$((n + 1)); done
  [ $n -lt 256 ] || { echo "no free /24 in $1.0.0/16" >&2; return 1; }
  echo "$1.$n.1"
}

# The bridges of the daemon's networks (remembered so they can go once the daemon is gone:
# a daemon that dies leaves them behind).
note_bridges() {
  local b
  for b in $(api GET /networks 2>/dev/null | python3 -c '
import json, sys
for n in json.load(sys.stdin):
    if n.get("Driver") == "bridge":
        print((n.get("Options") or {}).get("com.docker.network.bridge.name") or "br-" + n["Id"][:12])
' 2>/dev/null); do bridges+=("$b"); done
}

cleanup() {
  local rc=$? id pid mnt b c
  set +e
  trap - EXIT INT TERM
  # An interrupted run: the suite first, so it does not see its containers vanish.
  for pid in $pytest_pid $tail_pid; do
    kill "$pid" 2>/dev/null && { wait "$pid"; } 2>/dev/null
  done
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    # Containers first: they outlive the daemon. Then the networks (their bridges go with them).
    cids=($(api GET '/containers/json?all=1' 2>/dev/null |
      python3 -c 'import json,sys; print(*[c["Id"] for c in json.load(sys.stdin)])' 2>/dev/null))
    for id in "${cids[@]}"; do
      api DELETE "/containers/$id?force=1&v=1" -o /dev/null --max-time 60
    done
    note_bridges
    for id in $(api GET /networks 2>/dev/null | python3 -c '
import json, sys
print(*[n["Id"] for n in json.load(sys.stdin) if n["Name"] not in ("bridge", "host", "none")])
' 2>/dev/null); do
      api DELETE "/networks/$id" -o /dev/null --max-time 30
    done
  fi
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
  fi
  # Whatever still runs from the temp dir (dockerd's containerd and shims, berth's shims,
  # containers' processes are gone with the containers): only ours, each by PID.
  for pid in $(grep -lsF "$tmp/" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [ "$pid" != $$ ] && kill -9 "$pid" 2>/dev/null
  done
  sleep 0.2
  for mnt in $(awk -v t="$tmp/" 'index($5, t) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$mnt" 2>/dev/null
  done
  for f in "$tmp"/root/networks/*.json; do
    [ -f "$f" ] && bridges+=($(python3 -c '
import json, sys
b = json.load(open(sys.argv[1])).get("config", {}).get("bridge")
print(b or "")' "$f" 2>/dev/null))
  done
  for b in "${bridges[@]}" $bridge; do
    [ -n "$b" ] && ip link show "$b" >/dev/null 2>&1 && ip link del "$b"
  done
  for fam in ip ip6; do [ -n "$table" ] && nft list table $fam "$table" >/dev/null 2>&1 && nft delete table $fam "$table"; done
  for id in "${cids[@]}"; do
    for c in /sys/fs/cgroup/*/berth/$id /sys/fs/cgroup/*/docker/$id /sys/fs/cgroup/berth/$id \
             /sys/fs/cgroup/docker/$id /sys/fs/cgroup/system.slice/docker-$id.scope; do
      [ -d "$c" ] && rmdir "$c" 2>/dev/null
    done
  done
  for d in "${new_dirs[@]}"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  if [ -n "$artifacts" ] && [ -f "$tmp/daemon.log" ]; then cp "$tmp/daemon.log" "$artifacts/"; fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the Python side ---------------------------------------------------------------------
echo "== venv ($tmp/venv)" >&2
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --disable-pip-version-check \
  'pytest==7.4.*' 'pytest-timeout' 'requests>=2.26.0' 'urllib3>=1.26.0' \
  'websocket-client>=1.3.0' 'paramiko>=2.4.3' >&2

# --- the daemon --------------------------------------------------------------------------
if [ "$engine" = berth ]; then
  echo "== building berth" >&2
  # The target dir may be shared: bring the binaries up to date, then run private copies.
  (cd "$repo" && touch src/main.rs crates/berth-runtime/src/main.rs &&
    cargo build -q --workspace --bins) >&2
  bin=${CARGO_TARGET_DIR:-$repo/target}/debug
  mkdir "$tmp/bin"
  cp "$bin/berth" "$bin/berth-runtime" "$bin/berth-shim" "$tmp/bin/"
  bridge=bdpy$$ table=berth_dockerpy_$$
  gw=$(free_24 10.228)
  BERTH_RUNTIME=$tmp/bin/berth-runtime "$tmp/bin/berth" daemon --root "$tmp/root" \
    -H "unix://$sock" --bridge "$bridge" --bip "$gw/24" --nft-table "$table" \
    >"$tmp/daemon.log" 2>&1 &
  daemon_pid=$!
  engine_desc="berth $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- crates src || echo +dirty)"
else
  # Debian's dockerd on its own data root, exec root, socket, containerd namespace, config
  # file and bridge; it never touches iptables.
  bridge=ddpy$$
  gw=$(free_24 10.227)
  ip link add "$bridge" type bridge
  ip addr add "$gw/24" dev "$bridge"
  ip link set "$bridge" up
  pool=$(free_24 10.226); pool=${pool%.*.1}
  echo '{}' >"$tmp/daemon.json"
  dockerd --config-file "$tmp/daemon.json" --data-root "$tmp/root" --exec-root "$tmp/exec" \
    -H "unix://$sock" --pidfile "$tmp/docker.pid" --iptables=false --ip6tables=false \
    --bridge "$bridge" --default-address-pool "base=$pool.0.0/16,size=24" \
    --containerd-namespace "dockerpy$$" --containerd-plugins-namespace "dockerpy$$-plugins" \
    >"$tmp/daemon.log" 2>&1 &
  daemon_pid=$!
  engine_desc="dockerd $(dockerd --version | sed 's/^Docker version //')"
fi
for _ in $(seq 600); do
  [ "$(curl -s --unix-socket "$sock" http://engine/_ping 2>/dev/null)" = OK ] && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
[ "$(curl -s --unix-socket "$sock" http://engine/_ping 2>/dev/null)" = OK ] || {
  echo "the $engine daemon did not start; its log:" >&2; tail -30 "$tmp/daemon.log" >&2; exit 1
}
echo "== $engine_desc on $sock" >&2

# --- the images (no registry): busybox-static with every applet, alpine's users -----------
rootfs=$tmp/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/opt,var/tmp,proc,sys,dev}
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in $(busybox --list-full); do
  [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
done
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
postgres:x:70:70::/var/lib/postgresql:/bin/sh
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
nogroup:x:65533:
nobody:x:65534:
postgres:x:70:
EOF
printf 'NAME="busybox look-alike of Alpine Linux (berth scripts/compat/docker-py.sh)"\nID=alpine\nVERSION_ID=3.10.9\n' \
  >"$rootfs/etc/os-release"
tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -cf "$tmp/rootfs.tar" .
path_env=$(python3 -c 'import urllib.parse; print(urllib.parse.quote("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"))')
for ref in alpine:3.10:/bin/sh alpine:latest:/bin/sh busybox:latest:sh; do
  IFS=: read -r name tag cmd <<<"$ref"
  cmdq=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote("CMD [\"%s\"]" % sys.argv[1]))' "$cmd")
  out=$(api POST "/images/create?fromSrc=-&repo=$name&tag=$tag&changes=$path_env&changes=$cmdq" \
    -H 'Content-Type: application/x-tar' --data-binary @"$tmp/rootfs.tar")
  api GET "/images/$name:$tag/json" -f -o /dev/null ||
    { echo "importing $name:$tag failed: $out" >&2; exit 1; }
done
echo "== images: alpine:3.10 alpine:latest busybox:latest (busybox-static look-alikes)" >&2

# --- the suite ---------------------------------------------------------------------------
# Deselected: Docker Hub pulls, swarm (services, secrets, configs, nodes, overlay, ingress),
# plugins, the credential helpers, a shared mount propagation `/` and websockets over tcp.
t=tests/integration
deselect=(
  --ignore=$t/api_swarm_test.py --ignore=$t/api_service_test.py
  --ignore=$t/api_secret_test.py --ignore=$t/api_config_test.py
  --ignore=$t/models_swarm_test.py --ignore=$t/models_services_test.py
  --ignore=$t/models_nodes_test.py --ignore=$t/api_plugin_test.py --ignore=$t/credentials
  --deselect=$t/api_network_test.py::TestNetworks::test_create_network_attachable
  --deselect=$t/api_network_test.py::TestNetworks::test_create_network_ingress
  --deselect=$t/api_network_test.py::TestNetworks::test_create_inspect_network_with_scope
  --deselect=$t/api_image_test.py::PullImageTest::test_pull
  --deselect=$t/api_image_test.py::PullImageTest::test_pull_streaming
  --deselect=$t/api_image_test.py::ImportImageTest::test_get_load_image
  --deselect=$t/api_image_test.py::InspectDistributionTest::test_inspect_distribution
  --deselect=$t/api_image_test.py::PruneImagesTest::test_prune_images
  --deselect=$t/models_containers_test.py::ContainerCollectionTest::test_run_with_image_that_does_not_exist
  --deselect=$t/models_images_test.py::ImageCollectionTest::test_list
  --deselect=$t/models_images_test.py::ImageCollectionTest::test_list_with_repository
  --deselect=$t/models_images_test.py::ImageCollectionTest::test_pull
  --deselect=$t/models_images_test.py::ImageCollectionTest::test_pull_with_tag
  --deselect=$t/models_images_test.py::ImageCollectionTest::test_pull_with_sha
  --deselect=$t/models_images_test.py::ImageCollectionTest::test_pull_multiple
  --deselect=$t/models_images_test.py::ImageTest::test_tag_and_remove
  --deselect=$t/api_container_test.py::VolumeBindTest::test_create_with_binds_rw_rshared
  --deselect=$t/api_container_test.py::AttachContainerTest::test_run_container_reading_socket_ws
)
targets=("$t")
for a in "${extra[@]}"; do case $a in tests/*) targets=() ;; esac; done
junit=()
[ -z "$artifacts" ] || junit=(--junitxml="$artifacts/junit-$engine.xml")
# A client config file, as on any docker host: without one docker-py keeps its contexts in
# ./contexts, i.e. in the checkout, where one test leaves a context that fails the next run.
mkdir -p "$tmp/t" "$tmp/home/.docker"
echo '{}' >"$tmp/home/.docker/config.json"
echo "== pytest in $src ($(git -C "$src" rev-parse HEAD 2>/dev/null || echo 'not a git tree'))" >&2
# pytest runs in the background and is waited for, so a TERM to this script is handled at once
# (the trap's sweep of processes running from $tmp ends pytest too); its output is followed live.
(
  cd "$src"
  # No bytecode or pytest cache left in the checkout; the tests' temp dirs in ours.
  exec env DOCKER_HOST="unix://$sock" DOCKER_TEST_API_VERSION=1.41 PYTHONPATH="$src" \
    PYTHONDONTWRITEBYTECODE=1 TMPDIR="$tmp/t" HOME="$tmp/home" DOCKER_CONFIG="$tmp/home/.docker" \
    "$tmp/venv/bin/python" -m pytest -p no:cacheprovider --timeout=120 "${junit[@]}" \
    "${deselect[@]}" "${extra[@]}" "${targets[@]}"
) >"$tmp/pytest.out" 2>&1 &
pytest_pid=$!
tail -n +1 -f --pid=$pytest_pid "$tmp/pytest.out" &
tail_pid=$!
wait $pytest_pid || true
wait $tail_pid || true
[ -z "$artifacts" ] || cp "$tmp/pytest.out" "$artifacts/pytest-$engine.out"
summary=$(grep -E '^=+ .*( in [0-9.]+s).* =+$' "$tmp/pytest.out" | tail -1)
if [ -z "$summary" ]; then
  echo "pytest did not run to its summary" >&2
  exit 1
fi
echo
echo "docker-py $(git -C "$src" rev-parse --short HEAD 2>/dev/null) on $engine_desc: $summary"
