//! `berth-runtime update` on real containers: the limits land in the container's cgroup files
//! (v1 or v2, whichever this host has), later updates start from the last one, a request the
//! kernel refuses leaves the limits as they were, and bad input is a clear error.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_runtime::host::{cgroup_mode, swap_accounting, CgroupMode};
use berth_runtime::lifecycle::Runtime;
use berth_runtime::spec::ContainerOptions;
use common::*;

fn unified() -> bool {
    cgroup_mode() == CgroupMode::Unified
}

/// A cgroup file of container `id`: `v1` under its controller's hierarchy, `v2` in the
/// unified directory.
fn cg(id: &str, controller: &str, v1: &str, v2: &str) -> String {
    let path = if unified() {
        PathBuf::from(format!("/sys/fs/cgroup/berth/{id}/{v2}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/berth/{id}/{v1}"))
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

fn memory(id: &str) -> String {
    cg(id, "memory", "memory.limit_in_bytes", "memory.max")
}

/// Memory plus swap as v1 keeps it; v2 keeps swap alone, so it is added back here.
fn memory_and_swap(id: &str) -> Option<u64> {
    if !swap_accounting() {
        return None;
    }
    if unified() {
        let swap = cg(id, "memory", "", "memory.swap.max");
        Some(swap.parse::<u64>().ok()? + memory(id).parse::<u64>().ok()?)
    } else {
        cg(id, "memory", "memory.memsw.limit_in_bytes", "")
            .parse()
            .ok()
    }
}

fn pids(id: &str) -> String {
    cg(id, "pids", "pids.max", "pids.max")
}

/// The CFS quota and period.
fn cpu_max(id: &str) -> (String, String) {
    if unified() {
        let text = cg(id, "cpu", "", "cpu.max");
        let (q, p) = text.split_once(' ').unwrap();
        (q.to_owned(), p.to_owned())
    } else {
        (
            cg(id, "cpu", "cpu.cfs_quota_us", ""),
            cg(id, "cpu", "cpu.cfs_period_us", ""),
        )
    }
}

/// CPU shares as the cgroup shows them: `cpu.shares` on v1, `cpu.weight` on v2.
fn cpu_share_file(id: &str) -> String {
    cg(id, "cpu", "cpu.shares", "cpu.weight")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {} / {}",
        stdout(out),
        stderr(out)
    );
}

/// `update … --resources - ID` with `json` on standard input.
fn update_with_stdin(sb: &Sandbox, id: &str, json: &str) -> Output {
    let mut child = sb
        .cmd()
        .args(["update", "--resources", "-", id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn running(sb: &Sandbox, name: &str, opts: ContainerOptions) -> String {
    let b = sb.bundle(name, opts);
    let id = sb.id(name);
    ok(&sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]));
    sb.wait_status(&id, "running");
    id
}

#[test]
fn update_writes_the_cgroup_and_keeps_the_result() {
    root_only!();
    let sb = Sandbox::new();
    let id = running(
        &sb,
        "upd",
        ContainerOptions {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            pids_limit: Some(100),
            ..sh("sleep 100")
        },
    );
    assert_eq!(memory(&id), (64u64 << 20).to_string());
    assert_eq!(pids(&id), "100");

    ok(&sb.rt(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "192m",
        "--pids-limit",
        "50",
        "--cpu-shares",
        "512",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        &id,
    ]));
    assert_eq!(memory(&id), (96u64 << 20).to_string());
    if let Some(memsw) = memory_and_swap(&id) {
        assert_eq!(memsw, 192 << 20);
    }
    assert_eq!(pids(&id), "50");
    // runc's mapping of shares onto cgroup v2's weight: 512 → 20.
    assert_eq!(cpu_share_file(&id), if unified() { "20" } else { "512" });
    assert_eq!(cpu_max(&id), ("50000".into(), "100000".into()));

    // The result is kept: a later update starts from it (a new period keeps the quota).
    let rt = Runtime::new(&sb.root, false).unwrap();
    let now = serde_json::to_value(rt.resources(&id).unwrap()).unwrap();
    assert_eq!(now["memory"]["limit"], 96 << 20);
    assert_eq!(now["memory"]["swap"], 192 << 20);
    assert_eq!(now["pids"]["limit"], 50);
    assert_eq!(now["cpu"]["shares"], 512);
    ok(&sb.rt(&["update", "--cpu-period", "200000", &id]));
    assert_eq!(cpu_max(&id), ("50000".into(), "200000".into()));
    let now = serde_json::to_value(rt.resources(&id).unwrap()).unwrap();
    assert_eq!(
        (&now["cpu"]["quota"], &now["cpu"]["period"]),
        (&50000.into(), &200000.into())
    );

    // -1 lifts a limit; kernel memory is accepted and changes nothing.
    ok(&sb.rt(&["update", "--pids-limit", "-1", "--cpu-quota", "-1", &id]));
    assert_eq!(pids(&id), "max");
    assert_eq!(cpu_max(&id).0, if unified() { "max" } else { "-1" });
    ok(&sb.rt(&["update", "--kernel-memory", "10m", &id]));
    assert_eq!(memory(&id), (96u64 << 20).to_string());

    // runc's --resources: an OCI LinuxResources document, from a file or standard input.
    ok(&update_with_stdin(
        &sb,
        &id,
        r#"{"memory": {"limit": 83886080}}"#,
    ));
    assert_eq!(memory(&id), (80u64 << 20).to_string());
    let file = sb.dir.path().join("resources.json");
    std::fs::write(&file, r#"{"pids": {"limit": 42}}"#).unwrap();
    ok(&sb.rt(&["update", "-r", file.to_str().unwrap(), &id]));
    assert_eq!(pids(&id), "42");

    // A request the kernel (or the v2 conversion) refuses: memory above memory+swap. The
    // limits stay as they were, in the cgroup and in the record.
    if swap_accounting() {
        let before = (memory(&id), memory_and_swap(&id));
        let out = sb.rt(&["update", "--memory", "300m", "--memory-swap", "200m", &id]);
        assert!(!out.status.success(), "accepted: {}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("update container \"{id}\"")),
            "{}",
            stderr(&out)
        );
        assert_eq!((memory(&id), memory_and_swap(&id)), before);
        let now = serde_json::to_value(rt.resources(&id).unwrap()).unwrap();
        assert_eq!(now["memory"]["limit"], 80 << 20);
    }

    // The container ran on through all of it.
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    ok(&sb.rt(&["delete", "--force", &id]));
    assert!(
        !sb.root.join(&id).exists(),
        "state (and the record) left behind"
    );
}

#[test]
fn update_refuses_bad_input_clearly() {
    root_only!();
    let sb = Sandbox::new();
    let out = sb.rt(&["update", "--memory", "64m", "no-such-container"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container \"no-such-container\" does not exist"),
        "{}",
        stderr(&out)
    );

    let id = running(&sb, "bad", sh("sleep 100"));
    let before = pids(&id);
    let file = sb.dir.path().join("bad.json");
    std::fs::write(&file, "{\"pids\": {\"limit\": \"many\"}").unwrap();
    let out = sb.rt(&["update", "--resources", file.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid --resources"),
        "{}",
        stderr(&out)
    );
    let out = update_with_stdin(&sb, &id, "not json");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid --resources"),
        "{}",
        stderr(&out)
    );
    let out = sb.rt(&["update", "--memory", "lots", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid value for --memory"),
        "{}",
        stderr(&out)
    );
    let out = sb.rt(&[
        "update",
        "--resources",
        file.to_str().unwrap(),
        "--pids-limit",
        "5",
        &id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot be combined"),
        "{}",
        stderr(&out)
    );
    let out = sb.rt(&["update", "--resources", "/nonexistent/limits.json", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/limits.json"),
        "{}",
        stderr(&out)
    );
    // None of it touched the container.
    assert_eq!(pids(&id), before);
    assert!(!sb.root.join(&id).join("resources.json").exists());
}

/// On a pure cgroup v2 hierarchy (made in a private mount namespace on a v1 or hybrid host,
/// where it holds only the controllers v1 does not), `update` goes through the v2 manager:
/// here `unified` keys for whatever controller that hierarchy has, and pids where it has them.
#[test]
fn update_on_cgroup_v2() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("v2upd", sh("sleep 100"));
    let id = sb.id("v2upd");
    let (bin, root, bundle) = (BIN, sb.root.display(), b.display());
    let script = format!(
        r#"set -e
if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
  umount -l /sys/fs/cgroup
  mount -t cgroup2 none /sys/fs/cgroup
fi
rt() {{ {bin} --root {root} "$@"; }}
dir=/sys/fs/cgroup/berth/{id}
# The container lives in this namespace's v2 hierarchy: it is removed here, also on failure
# (the sandbox's own clean-up runs outside, where this mount is not).
trap 'rt delete --force {id} 2>/dev/null; rmdir $dir 2>/dev/null; true' EXIT
rt run -d -b {bundle} {id} > {bundle}/out.log
if [ -e $dir/pids.max ]; then
  rt update --pids-limit 7 {id}
  test "$(cat $dir/pids.max)" = 7 && echo pids-updated
else
  echo pids-updated
fi
if [ -e $dir/hugetlb.2MB.max ]; then
  echo '{{"unified": {{"hugetlb.2MB.max": "4194304"}}}}' | rt update -r - {id}
  test "$(cat $dir/hugetlb.2MB.max)" = 4194304 && echo unified-updated
else
  echo unified-updated
fi
rt update --memory lots {id} 2>/dev/null || echo refused
rt delete --force {id}
test ! -e $dir && echo cgroup-gone
"#
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let out = output_with_timeout(cmd, Duration::from_secs(60));
    let text = stdout(&out);
    for want in ["pids-updated", "unified-updated", "refused", "cgroup-gone"] {
        assert!(
            text.contains(want),
            "{want} missing: {text} / {}",
            stderr(&out)
        );
    }
}
