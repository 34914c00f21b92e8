#!/usr/bin/env bash
# Benchmark: image distribution through a loopback registry, berth beside Docker and skopeo
# when they are installed (apt-get install docker.io skopeo docker-registry), each engine on its
# own private root and socket, all registries on 127.0.0.1 with storage in the scratch dir.
#
# The image: ~200 MiB uncompressed in 5 gzip layers, assembled here by hand as an OCI image
# layout (berth has no builder yet) and loaded with `berth load`. Neither all-random (gzip can do
# nothing) nor all-text (gzip does too much); the layers are:
#   1 usr/lib/...      40 MiB of real files copied from /usr/lib/<multiarch> (shared libraries)
#   2 usr/include/...  40 MiB of real text files copied from /usr/include (C headers)
#   3 usr/lib/+opt/    24 MiB more /usr/lib files + 4 x 4 MiB of random bytes (media-like)
#   4 srv/app/...      8000 small files of 5 KiB each (1 KiB random + 4 KiB text): per-file cost
#   5 var/lib/db/...   one 40 MiB file, 64 KiB blocks, one in four random, the rest text
# The random bytes come from a seeded PRNG, so layers 3-5 are the same on every run.
#
# Two registries serve it: Debian's docker-registry (the reference distribution server) and
# `berth registry serve`. For each, hyperfine times (median of RUNS, default 5):
#   berth pull IMAGE     download + verify + unpack; `berth rmi` + `berth image prune -a -f`
#                        before each run, so every run downloads every layer
#   docker pull IMAGE    the same with a private dockerd; `docker rmi` + `docker image prune -a -f`
#   skopeo copy … dir:   download + verify only: no unpack (a lower bound for the network part)
# and, as the physical floor of the unpack, `tar -xzf` of the same 5 layer files (GNU tar +
# gzip): one after the other, the same followed by `sync` (berth makes each layer durable
# before it shows it: a pull's time includes that), all 5 at once; and `gzip -dc` alone.
# Throughputs are MB/s (10^6 bytes) of the uncompressed image per second of the whole
# command. Each run starts after a `sync`. Also printed: the daemon's CPU time per pull
# (dockerd's includes the children it unpacks layers in), steadier than wall time on a busy host.
# (CLK_TCK is taken to be 100, as on every Linux this runs on.)
# Push is timed once per engine and registry, each time to a fresh, empty registry (so every
# blob is uploaded, nothing mounted): berth pushes the loaded image, docker the one it pulled
# (Docker keeps no compressed layers: it recompresses them on push).
#
# Usage: bash bench/pull.sh [RUNS]        (as root)
set -euo pipefail
runs=${1:-5}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/pull.sh needs root" >&2; exit 1; }
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
command -v docker-registry >/dev/null || apt-get install -y -q docker-registry >/dev/null

cargo build --release -q --workspace --bins
bin=${CARGO_TARGET_DIR:-$PWD/target}/release

work=$(mktemp -d /tmp/berth-bench-pull-XXXXXX)
berth_pid= ; dockerd_pid= ; reg_pids=()
B() { "$bin/berth" -H "unix://$work/berth.sock" "$@"; }
D() { docker -H "unix://$work/docker.sock" "$@"; }
cleanup() {
  set +e
  for p in "${reg_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -n "$dockerd_pid" ] && { kill "$dockerd_pid"; wait "$dockerd_pid"; } 2>/dev/null
  [ -n "$berth_pid" ] && { kill "$berth_pid"; wait "$berth_pid"; } 2>/dev/null
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap 'cleanup; ip link del "bbench$$" 2>/dev/null; nft delete table ip "berth_bench_$$" 2>/dev/null; true' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # port: until the registry answers /v2/
  for _ in $(seq 200); do
    python3 -c 'import sys,urllib.request as u
try: u.urlopen("http://127.0.0.1:%s/v2/" % sys.argv[1], timeout=1)
except Exception as e:
    if not hasattr(e, "code"): sys.exit(1)' "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "registry on port $1 did not come up" >&2; return 1
}
start_registry() { # kind(distribution|berth) dir -> sets reg_port; the pid joins reg_pids
  local kind=$1 dir=$2 port; port=$(free_port); mkdir -p "$dir"
  if [ "$kind" = distribution ]; then
    cat >"$dir.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port}
EOF
    docker-registry serve "$dir.yml" >"$dir.log" 2>&1 &
  else
    "$bin/berth" registry serve --addr "127.0.0.1:$port" --root "$dir" --log-level error >"$dir.log" 2>&1 &
  fi
  reg_pids+=($!)
  wait_http "$port"
  reg_port=$port
}

# ---- the image -------------------------------------------------------------------------------
echo "building the image (OCI layout, 5 gzip layers) ..."
python3 - "$work" <<'PY'
import glob, gzip, hashlib, io, json, os, platform, random, sys, tarfile
work = sys.argv[1]
MiB = 1 << 20
rng = random.Random(20240601)

def real_files(roots, skip=0):
    """Regular files of at most 4 MiB under roots, in sorted order, the first `skip` left out."""
    n, seen = 0, set()
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if p in seen or os.path.islink(p) or not os.path.isfile(p):
                    continue
                seen.add(p)
                if os.path.getsize(p) > 4 * MiB:
                    continue
                n += 1
                if n > skip:
                    yield p

text = bytearray()
for p in real_files(["/usr/include", "/usr/share/doc"]):
    with open(p, "rb") as f:
        text += f.read()
    if len(text) >= 16 * MiB:
        break
text = bytes(text)
def text_slice(n):
    o = rng.randrange(0, len(text) - n)
    return text[o:o + n]

class Layer:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.dirs = set()
        self.size = self.files = 0
    def _dir(self, d):
        if not d or d in self.dirs:
            return
        self._dir(os.path.dirname(d))
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 1700000000
        self.tar.addfile(ti); self.dirs.add(d)
    def add(self, name, data, mode=0o644):
        self._dir(os.path.dirname(name))
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.mtime = 1700000000
        self.tar.addfile(ti, io.BytesIO(data)); self.size += len(data); self.files += 1
    def add_real(self, paths, budget):
        taken = 0
        for p in paths:
            with open(p, "rb") as f:
                data = f.read()
            self.add(p.lstrip("/"), data, os.stat(p).st_mode & 0o7777)
            taken += 1
            if self.size >= budget:
                return taken
        return taken

libs = sorted(glob.glob("/usr/lib/*-linux-gnu")) + ["/usr/lib"]  # shared libraries first
layers = []
l = Layer(); n1 = l.add_real(real_files(libs), 40 * MiB); layers.append((l, "40 MiB of /usr/lib files"))
l = Layer(); l.add_real(real_files(["/usr/include", "/usr/share"]), 40 * MiB); layers.append((l, "40 MiB of /usr/include text"))
l = Layer(); l.add_real(real_files(libs, skip=n1), 24 * MiB)
for i in range(4):
    l.add("opt/assets/blob%d.bin" % i, rng.randbytes(4 * MiB))
layers.append((l, "24 MiB more /usr/lib files + 16 MiB random"))
l = Layer()
for i in range(8000):
    l.add("srv/app/m%02d/f%04d.dat" % (i // 250, i), rng.randbytes(1024) + text_slice(4096))
layers.append((l, "8000 files of 5 KiB (1 random, 4 text)"))
l = Layer()
l.add("var/lib/db/data.bin", b"".join(rng.randbytes(64 * 1024) if i % 4 == 0 else text_slice(64 * 1024) for i in range(640)))
layers.append((l, "one 40 MiB file, 1/4 random 64 KiB blocks"))

os.makedirs(f"{work}/layers"); os.makedirs(f"{work}/oci/blobs/sha256")
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{work}/oci/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d
descs, diff_ids, history, summary = [], [], [], {"layers": []}
for i, (l, what) in enumerate(layers, 1):
    l.tar.close(); raw = l.buf.getvalue()
    gz = gzip.compress(raw, compresslevel=6, mtime=0)
    with open(f"{work}/layers/{i}.tar.gz", "wb") as f:
        f.write(gz)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz), "size": len(gz)})
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    history.append({"created": "2024-06-01T00:00:00Z", "created_by": "bench/pull.sh: " + what})
    summary["layers"].append({"what": what, "tar": len(raw), "gzip": len(gz), "files": l.files})
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
config = json.dumps({"created": "2024-06-01T00:00:00Z", "architecture": arch, "os": "linux",
    "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}).encode()
cd = blob(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
    "layers": descs}).encode()
md = blob(manifest)
with open(f"{work}/oci/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(manifest),
            "annotations": {"io.containerd.image.name": "docker.io/bench/big:1", "org.opencontainers.image.ref.name": "1"}}]}, f)
with open(f"{work}/oci/oci-layout", "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with tarfile.open(f"{work}/image.tar", "w") as t:
    for name in ["oci-layout", "index.json", "blobs"]:
        t.add(f"{work}/oci/{name}", arcname=name)
summary.update(config=cd, manifest=md, tar=sum(x["tar"] for x in summary["layers"]),
               gzip=sum(x["gzip"] for x in summary["layers"]))
json.dump(summary, open(f"{work}/image.json", "w"))
PY
rm -rf "$work/oci"
jq_() { python3 -c "import json,sys; d=json.load(open('$work/image.json')); print($1)"; }
unc=$(jq_ 'd["tar"]'); comp=$(jq_ 'd["gzip"]'); config_digest=$(jq_ 'd["config"]')
python3 - "$work/image.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for i, l in enumerate(d["layers"], 1):
    print(f"  layer {i}: {l['tar']/1e6:6.1f} MB tar, {l['gzip']/1e6:6.1f} MB gzip ({l['tar']/l['gzip']:.2f}x), {l['files']:5d} files  {l['what']}")
print(f"  image:   {d['tar']/1e6:6.1f} MB tar, {d['gzip']/1e6:6.1f} MB gzip ({d['tar']/d['gzip']:.2f}x)")
PY

# ---- engines and registries ------------------------------------------------------------------
# Everything that pulls, pushes or unpacks lives on a fresh ext4 (with a journal) on a loop device,
# not on the scratch dir's own filesystem: where that is ext4 without a journal (this host's /),
# ext4 skips, one by one, every inode deleted in the last ~30 s when it allocates one, so a pull
# right after `rmi` + `prune` of 11,000 files spends most of its time in the kernel
# (recently_deleted, find_inode_bit): 2-5 s of system time per pull for either engine, varying
# 3x from run to run. Falls back to the scratch dir when no loop device can be set up.
fs=$work/fs; mkdir "$fs"
if truncate -s 8G "$work/fs.img" && mkfs.ext4 -q -F "$work/fs.img" && mount -o loop "$work/fs.img" "$fs"; then
  fs_what="a fresh 8 GiB ext4 (journal) on a loop device"
else
  fs_what="the scratch dir ($(findmnt -no FSTYPE -T "$work"))"
fi
echo "engines, registries and unpacks on $fs_what"
# Networking of its own (the host's berth0 and nft table berth stay untouched), removed at exit.
"$bin/berth" daemon --root "$fs/berth" -H "unix://$work/berth.sock" --bridge "bbench$$" \
  --bip 10.254.$(($$ % 250)).1/24 --nft-table "berth_bench_$$" 2>"$work/berth.log" &
berth_pid=$!
for _ in $(seq 200); do [ -S "$work/berth.sock" ] && break; sleep 0.05; done
B load -q -i "$work/image.tar" >/dev/null
rm -f "$work/image.tar"

engines=(berth)
if command -v dockerd >/dev/null && command -v docker >/dev/null; then
  # Docker treats 127.0.0.0/8 as an insecure (plain HTTP) registry by default: no flag needed.
  dockerd --data-root "$fs/docker" --exec-root "$work/docker-exec" -H "unix://$work/docker.sock" \
    --pidfile "$work/docker.pid" --bridge=none --iptables=false --ip6tables=false \
    --containerd-namespace berth-bench --containerd-plugins-namespace berth-bench-plugins \
    >"$work/dockerd.log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 400); do D version >/dev/null 2>&1 && break; sleep 0.05; done
  if D version >/dev/null 2>&1; then engines+=(docker); else
    echo "docker: could not start a private dockerd (see $work/dockerd.log); skipped" >&2; fi
fi
command -v skopeo >/dev/null && have_skopeo=1 || have_skopeo=

now_ns() { date +%s%N; }
declare -A median push_s
timed() { # key command...: runs it once, records seconds in push_s[key]
  local key=$1 t0 t1; shift
  sync; t0=$(now_ns)
  "$@" >"$work/out.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/out.log" >&2; return 1; }
  t1=$(now_ns); push_s[$key]=$(python3 -c "print(($t1 - $t0) / 1e9)")
}
# cpu.sh PID OUT CMD...: runs CMD and appends to OUT the CPU time (s) that PID and the children
# it waited for (Docker unpacks layers in one) used meanwhile: the pull's alone, not the prepare's.
cat >"$work/cpu.sh" <<'EOF'
t() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }
pid=$1 out=$2; shift 2; a=$(t "$pid"); "$@"; rc=$?; echo "$(( $(t "$pid") - a ))" >>"$out"; exit $rc
EOF
declare -A cpu
measure() { # key prepare command [daemon pid]: hyperfine median; with a pid, its CPU per run
  local cmd=$3
  [ -n "${4:-}" ] && { rm -f "$work/cpu.out"; cmd="bash $work/cpu.sh $4 $work/cpu.out $3"; }
  hyperfine --runs "$runs" --prepare "$2; sync" --export-json "$work/h.json" "$cmd" >/dev/null
  median[$1]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/h.json")
  [ -n "${4:-}" ] && cpu[$1]=$(python3 -c 'import statistics,sys; print(statistics.median(int(l) for l in open(sys.argv[1])) / 100)' "$work/cpu.out")
  return 0
}
count_pulled() { grep -c "Pull complete" "$work/out.log" || true; }

kinds=(distribution berth)
declare -A port
for k in "${kinds[@]}"; do
  start_registry "$k" "$fs/reg-$k"; port[$k]=$reg_port
  B tag bench/big:1 "127.0.0.1:${port[$k]}/bench/big:1"
  timed "berth/$k" B push "127.0.0.1:${port[$k]}/bench/big:1"
  B rmi "127.0.0.1:${port[$k]}/bench/big:1" >/dev/null
done
# The loaded image would make every later pull "Already exists": it goes, layers and all.
B rmi bench/big:1 >/dev/null
B image prune -a -f >/dev/null
left=$(find "$fs/berth/content" "$fs/berth/snapshots" -type f 2>/dev/null | wc -l)
[ "$left" -le 2 ] || { echo "berth still holds $left files after rmi + prune -a:" >&2; du -sh "$fs/berth"/* >&2; }

bc="$bin/berth -H unix://$work/berth.sock"
dc="docker -H unix://$work/docker.sock"
for k in "${kinds[@]}"; do
  img="127.0.0.1:${port[$k]}/bench/big:1"
  berth_clean="$bc rmi -f $img >/dev/null 2>&1; $bc image prune -a -f >/dev/null"
  docker_clean="$dc rmi -f $img >/dev/null 2>&1; $dc image prune -a -f >/dev/null"
  # One untimed pull first: it must fetch all 5 layers, and the image's ID must be the config's.
  for e in "${engines[@]}"; do
    clean=${e}_clean; c=$([ "$e" = berth ] && echo "$bc" || echo "$dc")
    pid=$([ "$e" = berth ] && echo "$berth_pid" || echo "$dockerd_pid")
    bash -c "${!clean}"
    $c pull "$img" >"$work/out.log" 2>&1 || { echo "$e pull $img failed:" >&2; cat "$work/out.log" >&2; exit 1; }
    id=$($c image inspect -f '{{.Id}}' "$img")
    [ "$(count_pulled)" = 5 ] && [ "$id" = "$config_digest" ] || {
      echo "$e pull $img: expected 5 'Pull complete' and ID $config_digest, got $(count_pulled) and $id:" >&2
      cat "$work/out.log" >&2; exit 1; }
    measure "pull/$e/$k" "${!clean}" "$c pull $img" "$pid"
  done
  if [ -n "$have_skopeo" ]; then
    measure "pull/skopeo/$k" "rm -rf $fs/skopeo" \
      "skopeo copy -q --src-tls-verify=false docker://$img dir:$fs/skopeo"
  fi
done
rm -rf "$fs/skopeo"
measure "floor/gzip" "true" "bash -c 'cat $work/layers/*.tar.gz | gzip -dc >/dev/null'"
measure "floor/seq" "rm -rf $fs/floor; mkdir $fs/floor" \
  "bash -c 'for f in $work/layers/*.tar.gz; do tar -xzf \$f -C $fs/floor; done'"
measure "floor/sync" "rm -rf $fs/floor; mkdir $fs/floor" \
  "bash -c 'for f in $work/layers/*.tar.gz; do tar -xzf \$f -C $fs/floor; done; sync'"
measure "floor/par" "rm -rf $fs/floor; mkdir $fs/floor" \
  "bash -c 'for i in 1 2 3 4 5; do mkdir $fs/floor/\$i; tar -xzf $work/layers/\$i.tar.gz -C $fs/floor/\$i & done; wait'"
rm -rf "$fs/floor"

if [[ " ${engines[*]} " == *" docker "* ]]; then
  # Docker pushes what it pulled (from the last registry measured) to fresh, empty registries.
  src="127.0.0.1:${port[${kinds[-1]}]}/bench/big:1"
  D pull -q "$src" >/dev/null
  for k in "${kinds[@]}"; do
    start_registry "$k" "$fs/reg-$k-docker-push"; p=$reg_port
    D tag "$src" "127.0.0.1:$p/bench/big:1"
    timed "docker/$k" D push "127.0.0.1:$p/bench/big:1"
  done
fi

# ---- report ----------------------------------------------------------------------------------
base=berth
[[ " ${engines[*]} " == *" docker "* ]] && base=docker
pullers=("${engines[@]}"); [ -n "$have_skopeo" ] && pullers+=(skopeo)
py() { python3 -c "print($1)"; }
printf '\nimage: %.1f MB uncompressed (tar), %.1f MB gzip, 5 layers; %s runs per measurement\n' \
  "$(py "$unc/1e6")" "$(py "$comp/1e6")" "$runs"
printf '\n%-30s' "pull, median (s)"; for k in "${kinds[@]}"; do printf '%24s' "from $k"; done; echo
for e in "${pullers[@]}"; do
  printf '%-30s' "$e$([ "$e" = skopeo ] && echo ' (download only)')"
  for k in "${kinds[@]}"; do
    m=${median[pull/$e/$k]}
    printf '%24s' "$(py "f'{$m:.2f} s {$unc/1e6/$m:5.0f} MB/s {$m/${median[pull/$base/$k]}:.2f}x'")"
  done
  echo
done
echo "(MB/s: uncompressed image / whole pull time; Nx: ratio to $base's pull from the same registry, lower is faster)"
if [ "$base" = docker ]; then
  for k in "${kinds[@]}"; do
    r=$(py "${median[pull/berth/$k]} / ${median[pull/docker/$k]}")
    echo "goal (berth pull at least 3x faster than docker's), from $k: $(py "'met' if $r <= 1/3 else 'NOT met'") ($(py "f'{1/$r:.2f}'")x faster)"
  done
fi
# The unpack's floor: GNU tar + gzip unpacking all 5 layers at once (berth unpacks 3 at a time).
for k in "${kinds[@]}"; do
  f=$(py "${median[pull/berth/$k]} / ${median[floor/par]}")
  echo "goal (berth pull within 1.3x of 'tar -xzf, all 5 at once'), from $k: $(py "'met' if $f <= 1.3 else 'NOT met'") ($(py "f'{$f:.2f}'")x)"
done
for e in "${engines[@]}"; do
  printf '%-30s' "$e daemon CPU per pull"
  for k in "${kinds[@]}"; do printf '%24s' "$(py "f'{${cpu[pull/$e/$k]}:.2f} s'")"; done
  echo
done
echo "(median user + system time of the daemon and the children it waited for, during the pull)"
echo
echo "unpack floor, the same 5 layer files with GNU tar + gzip, median:"
for f in gzip seq sync par; do
  m=${median[floor/$f]}
  case $f in gzip) what="gzip -dc >/dev/null (no files)" ;; seq) what="tar -xzf, one after the other" ;;
    sync) what="the same, then sync" ;; par) what="tar -xzf, all 5 at once" ;; esac
  printf '  %-34s%8.2f s %6.0f MB/s\n' "$what" "$m" "$(py "$unc/1e6/$m")"
done
echo
printf '%-30s' "push, once (s)"; for k in "${kinds[@]}"; do printf '%24s' "to $k"; done; echo
for e in "${engines[@]}"; do
  printf '%-30s' "$e"
  for k in "${kinds[@]}"; do
    s=${push_s[$e/$k]}
    printf '%24s' "$(py "f'{$s:.2f} s {$comp/1e6/$s:5.0f} MB/s {$s/${push_s[$base/$k]}:.2f}x'")"
  done
  echo
done
echo "(each to a fresh, empty registry; MB/s: compressed image / push time; docker recompresses the layers)"
