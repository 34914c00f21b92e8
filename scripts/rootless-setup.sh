#!/usr/bin/env bash
# Makes a machine ready for rootless berth (`berth daemon` run by an unprivileged user). Run it
# as root; it says what it needs and what it changed:
#   - newuidmap/newgidmap (Debian: uidmap) to map a user's subordinate ids,
#   - pasta (Debian: passt) for the network of the daemon's namespace,
#   - fuse-overlayfs for kernels that will not mount overlayfs in a user namespace,
#   - /dev/net/tun (pasta's) and /dev/fuse usable by users: 0666, as Debian's udev rules make
#     them (machines without udev leave them 0600),
#   - with a USER argument: that user (created when missing) with subordinate uid and gid
#     ranges in /etc/subuid and /etc/subgid.
# Usage: scripts/rootless-setup.sh [USER]
set -euo pipefail

user=${1:-}
if [ "$(id -u)" != 0 ]; then
  echo "rootless-setup: run me as root (I install packages, set device modes, add subordinate ids)" >&2
  exit 1
fi

need=()
command -v newuidmap >/dev/null || need+=(uidmap)
command -v pasta >/dev/null || need+=(passt)
# the fallback (and --storage-driver fuse-overlayfs) where the kernel will not mount overlayfs
# in a user namespace
command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
if [ ${#need[@]} -gt 0 ]; then
  echo "rootless-setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${need[@]}" >/dev/null
fi

for dev in /dev/net/tun /dev/fuse; do
  if [ -c "$dev" ] && [ "$(stat -c %a "$dev")" != 666 ]; then
    chmod 0666 "$dev"
    echo "rootless-setup: $dev is now 0666" >&2
  fi
done

if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" = 0 ]; then
  echo "rootless-setup: user namespaces are off (user.max_user_namespaces=0); rootless berth needs them" >&2
  exit 1
fi
if [ "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null || echo 1)" = 0 ]; then
  echo "rootless-setup: kernel.unprivileged_userns_clone=0; rootless berth needs it set to 1" >&2
  exit 1
fi

[ -n "$user" ] || exit 0
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
  echo "rootless-setup: created user $user" >&2
fi
# A range of 65536 ids after every range already handed out.
next_free() {
  awk -F: 'BEGIN { n = 100000 } NF == 3 && $2 + $3 > n { n = $2 + $3 } END { print n }' /etc/subuid /etc/subgid 2>/dev/null
}
for kind in uid gid; do
  file=/etc/sub$kind
  touch "$file"
  if ! grep -q "^$user:" "$file" && ! grep -q "^$(id -u "$user"):" "$file"; then
    start=$(next_free)
    usermod "--add-sub${kind}s" "$start-$((start + 65535))" "$user"
    echo "rootless-setup: $user gets sub${kind}s $start-$((start + 65535))" >&2
  fi
done
