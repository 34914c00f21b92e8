//! Holes an attacker inside a container (or on the API) would try, closed (issue 14): each
//! test shows the attempt failing where it used to succeed.

use berth_testutil::*;

#[test]
fn a_container_cannot_lift_its_own_cgroup_limits() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let script = if cgroup_v2() {
        "echo max > /sys/fs/cgroup/pids.max && echo LIFTED; \
         mkdir /sys/fs/cgroup/sub && echo MADE; \
         cat /sys/fs/cgroup/pids.max; grep ' /sys/fs/cgroup' /proc/self/mounts"
    } else {
        "echo -1 > /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes && echo LIFTED; \
         echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes && echo LIFTED; \
         echo max > /sys/fs/cgroup/pids/pids.max && echo LIFTED; \
         echo -1 > /sys/fs/cgroup/cpu/cpu.cfs_quota_us && echo LIFTED; \
         mkdir /sys/fs/cgroup/pids/sub && echo MADE; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; \
         grep ' /sys/fs/cgroup' /proc/self/mounts"
    };
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--memory",
        "32m",
        "--memory-swap",
        "32m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "bb",
        "sh",
        "-c",
        script,
    ]));
    assert!(!out.contains("LIFTED") && !out.contains("MADE"), "{out}");
    if !cgroup_v2() {
        assert!(
            out.starts_with("33554432\n50\n"),
            "the limits changed: {out}"
        );
    }
    let mounts: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" /sys/fs/cgroup"))
        .collect();
    assert!(!mounts.is_empty(), "{out}");
    for m in &mounts {
        let opts = m.split(' ').nth(3).unwrap_or("");
        assert!(opts.split(',').any(|o| o == "ro"), "writable: {m}");
    }
    // --privileged keeps them writable, as Docker's does.
    let privileged = ok(&d.docker(&[
        "run",
        "--rm",
        "--privileged",
        "bb",
        "sh",
        "-c",
        "grep ' /sys/fs/cgroup/' /proc/self/mounts | head -1",
    ]));
    assert!(
        privileged.split(' ').nth(3).unwrap_or("").starts_with("rw"),
        "{privileged}"
    );
    // The capability used for the remount is gone again, with or without a seccomp filter.
    for extra in [&[][..], &["--security-opt", "seccomp=unconfined"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["bb", "sh", "-c", "grep CapEff /proc/self/status"]);
        assert_eq!(
            ok(&d.docker(&args)),
            "CapEff:\t00000000a80425fb",
            "{extra:?}"
        );
    }
}
