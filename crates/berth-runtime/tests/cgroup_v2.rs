//! The runtime on pure cgroup v2. On a v1 or hybrid host the test makes a private mount
//! namespace with cgroup2 mounted at /sys/fs/cgroup (that hierarchy then has only the
//! controllers v1 does not hold, so limits are not checked here). It proves our code makes no
//! v1-only assumption: create, the cgroup namespace, freeze, thaw, exec, delete, exit codes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn lifecycle_on_cgroup_v2() {
    if !root_or_skip() {
        return;
    }
    let sb = Sandbox::new();
    let b = sb.bundle("v2", sh("sleep 100"));
    let b_fg = sb.bundle("v2fg", sh("exit 42"));
    let id = sb.id("v2");
    let id_fg = sb.id("v2fg");
    let (bin, root, bundle, bundle_fg) = (BIN, sb.root.display(), b.display(), b_fg.display());
    let script = format!(
        r#"set -e
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
  umount -l /sys/fs/cgroup
  mount -t cgroup2 none /sys/fs/cgroup
fi
rt() {{ {bin} --root {root} "$@"; }}
rt run -d -b {bundle} {id} > {bundle}/out.log
test -d /sys/fs/cgroup/berth/{id} && echo cgroup-made
pid=$(rt state {id} | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
grep -qx "0::/berth/{id}" /proc/$pid/cgroup && echo init-in-cgroup
rt pause {id}
test "$(cat /sys/fs/cgroup/berth/{id}/cgroup.freeze)" = 1 && echo frozen
rt resume {id}
test "$(cat /sys/fs/cgroup/berth/{id}/cgroup.freeze)" = 0 && echo thawed
rt exec {id} sh -c 'echo exec-ok'
rt delete --force {id}
test ! -e /sys/fs/cgroup/berth/{id} && echo cgroup-gone
rt run -b {bundle_fg} {id_fg} || echo exit=$?
"#
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let out = output_with_timeout(cmd, Duration::from_secs(60));
    let text = stdout(&out);
    for want in [
        "cgroup-made",
        "init-in-cgroup",
        "frozen",
        "thawed",
        "exec-ok",
        "cgroup-gone",
        "exit=42",
    ] {
        assert!(
            text.contains(want),
            "{want} missing: {text} / {}",
            stderr(&out)
        );
    }
}
