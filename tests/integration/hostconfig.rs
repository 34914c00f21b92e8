//! HostConfig settings applied to the container as Docker applies them, through the docker
//! CLI: shared or host namespaces, /dev/shm, devices, cpu and memory limits, groups, the OOM
//! score; bad values refused at create with Docker's words and nothing left behind.

use berth_testutil::*;

/// `docker run --rm ARGS`, its stdout (it must succeed).
fn run(d: &TestDaemon, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    ok(&d.docker(&all))
}

/// `docker run --rm ARGS` must fail; its stderr.
fn refused(d: &TestDaemon, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm"];
    all.extend_from_slice(args);
    let out = d.docker(&all);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The IDs of every container the daemon has.
fn containers(d: &TestDaemon) -> String {
    ok(&d.docker(&["ps", "-aq"]))
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn pid_ipc_uts_and_cgroup_namespaces() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // --pid host: the host's processes, whose pid 1 is not the container's shell.
    let comm = run(&d, &["--pid", "host", "bb", "cat", "/proc/1/comm"]);
    assert_ne!(comm, "sh");
    assert_eq!(
        run(
            &d,
            &[
                "--pid",
                "host",
                "bb",
                "busybox",
                "readlink",
                "/proc/self/ns/pid"
            ]
        ),
        host_ns("pid")
    );
    // Its own by default.
    assert_eq!(run(&d, &["bb", "cat", "/proc/1/comm"]), "cat");

    // --pid container:A sees A's processes.
    ok(&d.docker(&["run", "-d", "--name", "pa", "bb", "sleep", "300"]));
    let ps = run(&d, &["--pid", "container:pa", "bb", "busybox", "ps"]);
    assert!(ps.contains("sleep 300"), "{ps}");

    // --ipc: a shareable container's /dev/shm and namespace are another's to join.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "ia",
        "--ipc",
        "shareable",
        "bb",
        "sh",
        "-c",
        "echo hello > /dev/shm/note && sleep 300",
    ]));
    let a_ns = ok(&d.docker(&["exec", "ia", "busybox", "readlink", "/proc/self/ns/ipc"]));
    let mut note = String::new();
    for _ in 0..50 {
        note = run(&d, &["--ipc", "container:ia", "bb", "cat", "/dev/shm/note"]);
        if !note.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(note, "hello");
    assert_eq!(
        run(
            &d,
            &[
                "--ipc",
                "container:ia",
                "bb",
                "busybox",
                "readlink",
                "/proc/self/ns/ipc"
            ]
        ),
        a_ns
    );
    // A write of the joiner is seen by the donor.
    run(
        &d,
        &[
            "--ipc",
            "container:ia",
            "bb",
            "sh",
            "-c",
            "echo back > /dev/shm/reply",
        ],
    );
    assert_eq!(
        ok(&d.docker(&["exec", "ia", "cat", "/dev/shm/reply"])),
        "back"
    );
    // A private one (Docker's default) is not.
    let err = refused(&d, &["--ipc", "container:pa", "bb", "true"]);
    assert!(
        err.contains(
            "container pa: non-shareable IPC (hint: use IpcMode:shareable for the donor container)"
        ),
        "{err}"
    );
    // --ipc host: the host's namespace; none: no /dev/shm.
    assert_eq!(
        run(
            &d,
            &[
                "--ipc",
                "host",
                "bb",
                "busybox",
                "readlink",
                "/proc/self/ns/ipc"
            ]
        ),
        host_ns("ipc")
    );
    assert_ne!(
        run(&d, &["bb", "busybox", "readlink", "/proc/self/ns/ipc"]),
        host_ns("ipc")
    );
    let none = d.docker(&["run", "--rm", "--ipc", "none", "bb", "ls", "/dev/shm"]);
    assert!(!none.status.success(), "/dev/shm exists with --ipc none");

    // Joining a container that does not run: Docker's words, and the --rm container is gone.
    ok(&d.docker(&[
        "create",
        "--name",
        "idle",
        "--ipc",
        "shareable",
        "bb",
        "true",
    ]));
    let before = containers(&d);
    let err = refused(&d, &["--pid", "container:idle", "bb", "true"]);
    assert!(
        err.contains("cannot join PID of a non running container: idle"),
        "{err}"
    );
    let err = refused(&d, &["--ipc", "container:idle", "bb", "true"]);
    assert!(
        err.contains("cannot join IPC of a non running container: idle"),
        "{err}"
    );
    assert_eq!(containers(&d), before);

    // --uts host: the host's name.
    let host_name = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        run(&d, &["--uts", "host", "bb", "busybox", "hostname"]),
        host_name
    );
    assert_eq!(
        run(
            &d,
            &[
                "--uts",
                "host",
                "bb",
                "busybox",
                "readlink",
                "/proc/self/ns/uts"
            ]
        ),
        host_ns("uts")
    );

    // --cgroupns private gives one of its own; host the host's.
    assert_ne!(
        run(
            &d,
            &[
                "--cgroupns",
                "private",
                "bb",
                "busybox",
                "readlink",
                "/proc/self/ns/cgroup"
            ]
        ),
        host_ns("cgroup")
    );
    assert_eq!(
        run(
            &d,
            &[
                "--cgroupns",
                "host",
                "bb",
                "busybox",
                "readlink",
                "/proc/self/ns/cgroup"
            ]
        ),
        host_ns("cgroup")
    );

    // Bad modes are refused at create, with nothing made.
    let before = containers(&d);
    for (flag, value, words) in [
        ("--pid", "bogus", "invalid PID mode: bogus"),
        ("--ipc", "bogus", "invalid IPC mode: bogus"),
        ("--uts", "bogus", "invalid UTS mode: bogus"),
    ] {
        let body = serde_json::json!({
            "Image": "bb",
            "HostConfig": { match flag { "--pid" => "PidMode", "--ipc" => "IpcMode", _ => "UTSMode" }: value },
        });
        let (status, answer) = d.request_body("POST", "/containers/create", &body.to_string());
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(words), "{answer}");
    }
    assert_eq!(containers(&d), before);
}

#[test]
fn shm_size() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let df = run(
        &d,
        &["--shm-size", "8m", "bb", "busybox", "df", "-k", "/dev/shm"],
    );
    assert!(df.contains(" 8192 "), "{df}");
    let df = run(&d, &["bb", "busybox", "df", "-k", "/dev/shm"]);
    assert!(df.contains(" 65536 "), "{df}");
    // A shareable container's /dev/shm is the engine's tmpfs, of its size too; it is
    // unmounted when the container stops.
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--ipc",
        "shareable",
        "--shm-size",
        "4m",
        "bb",
        "sleep",
        "300",
    ]));
    let df = ok(&d.docker(&["exec", &id, "busybox", "df", "-k", "/dev/shm"]));
    assert!(df.contains(" 4096 "), "{df}");
    ok(&d.docker(&["rm", "-f", &id]));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "left mounted: {mounts}");
}

/// The container's cgroup file `file` of `controller` (`devices`, `cpuset`, `cpu`, `memory`),
/// read on the host: cgroup v1's per-controller hierarchy, or v2's one.
fn cgroup_file(d: &TestDaemon, id: &str, controller: &str, file: &str) -> String {
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", id]));
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })
        .map(|p| format!("/sys/fs/cgroup/{controller}{p}"))
        .or_else(|| {
            let p = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
            Some(format!("/sys/fs/cgroup{p}"))
        })
        .unwrap();
    std::fs::read_to_string(format!("{path}/{file}"))
        .unwrap_or_else(|e| panic!("{path}/{file}: {e}"))
        .trim()
        .to_owned()
}

fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// `POST /containers/create` with `host_config` must be refused with a 400 saying `words`.
fn create_refused(d: &TestDaemon, host_config: serde_json::Value, words: &str) {
    let body = serde_json::json!({"Image": "bb", "HostConfig": host_config});
    let (status, answer) = d.request_body("POST", "/containers/create", &body.to_string());
    assert_eq!(status, 400, "{host_config}: {answer}");
    assert!(answer.contains(words), "{host_config}: {answer}");
}

#[test]
fn devices_and_device_cgroup_rules() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let out = run(
        &d,
        &[
            "--device",
            "/dev/null:/dev/mynull",
            "bb",
            "sh",
            "-c",
            "echo gone > /dev/mynull && ls -l /dev/mynull",
        ],
    );
    assert!(out.starts_with("crw-rw-rw-"), "{out}");
    assert!(out.contains("1,   3"), "{out}");
    // Read-only (a device Docker does not allow by default): a write is refused by the
    // device cgroup.
    let ro = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/kmsg:/dev/mykmsg:r",
        "bb",
        "sh",
        "-c",
        "echo x > /dev/mykmsg",
    ]);
    assert!(!ro.status.success(), "wrote to a read-only device");
    assert!(
        String::from_utf8_lossy(&ro.stderr).contains("Operation not permitted"),
        "{}",
        String::from_utf8_lossy(&ro.stderr)
    );

    if !v2() {
        let id = ok(&d.docker(&[
            "run",
            "-d",
            "--device-cgroup-rule",
            "c 42:* rm",
            "bb",
            "sleep",
            "300",
        ]));
        let list = cgroup_file(&d, &id, "devices", "devices.list");
        assert!(list.lines().any(|l| l == "c 42:* rm"), "{list}");
        ok(&d.docker(&["rm", "-f", &id]));
    }

    let before = containers(&d);
    let e = d.docker(&["create", "--device", "/dev/nonexistent-dev", "bb"]);
    assert!(!e.status.success());
    assert!(
        String::from_utf8_lossy(&e.stderr).contains(
            "error gathering device information while adding custom device \"/dev/nonexistent-dev\": no such file or directory"
        ),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    create_refused(
        &d,
        serde_json::json!({"DeviceCgroupRules": ["c 1:3"]}),
        "invalid device cgroup rule format: 'c 1:3'",
    );
    create_refused(
        &d,
        serde_json::json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rwx"}]}),
        "invalid device mode: rwx",
    );
    assert_eq!(containers(&d), before);
}

#[test]
fn cpu_and_memory_limits() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "200000",
        "--memory",
        "64m",
        "--memory-reservation",
        "32m",
        "--memory-swappiness",
        "10",
        "--oom-kill-disable",
        "bb",
        "sleep",
        "300",
    ]));
    assert_eq!(cgroup_file(&d, &id, "cpuset", "cpuset.cpus"), "0");
    assert_eq!(cgroup_file(&d, &id, "cpuset", "cpuset.mems"), "0");
    if v2() {
        assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.max"), "50000 200000");
        assert_eq!(
            cgroup_file(&d, &id, "memory", "memory.low"),
            (32u64 << 20).to_string()
        );
    } else {
        assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_period_us"), "200000");
        assert_eq!(
            cgroup_file(&d, &id, "memory", "memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(cgroup_file(&d, &id, "memory", "memory.swappiness"), "10");
        let oom = cgroup_file(&d, &id, "memory", "memory.oom_control");
        assert!(oom.lines().any(|l| l == "oom_kill_disable 1"), "{oom}");
    }
    ok(&d.docker(&["rm", "-f", &id]));

    // A quota alone, at create (not only through `docker update`).
    let id = ok(&d.docker(&["run", "-d", "--cpu-quota", "50000", "bb", "sleep", "300"]));
    if v2() {
        assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(cgroup_file(&d, &id, "cpu", "cpu.cfs_quota_us"), "50000");
    }
    ok(&d.docker(&["rm", "-f", &id]));

    // What Docker refuses at create, in its words, with nothing made.
    let before = containers(&d);
    let e = d.docker(&["create", "--cpuset-cpus", "0-x", "bb"]);
    assert!(
        String::from_utf8_lossy(&e.stderr)
            .contains("Invalid value 0-x for cpuset cpus: invalid format: 0-x"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    let e = d.docker(&["create", "--cpuset-cpus", "4000", "bb"]);
    assert!(
        String::from_utf8_lossy(&e.stderr)
            .contains("Requested CPUs are not available - requested 4000, available: "),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    for (hc, words) in [
        (
            serde_json::json!({"MemorySwappiness": 101}),
            "Invalid value: 101, valid memory swappiness range is 0-100",
        ),
        (
            serde_json::json!({"NanoCpus": 1_000_000_000i64, "CpuQuota": 50000}),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            serde_json::json!({"CpuPeriod": 100}),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            serde_json::json!({"MemoryReservation": 1024}),
            "Minimum memory reservation allowed is 6MB",
        ),
    ] {
        create_refused(&d, hc, words);
    }
    assert_eq!(containers(&d), before);
    // -1 swappiness is the host's: accepted.
    let body = serde_json::json!({"Image": "bb", "HostConfig": {"MemorySwappiness": -1}});
    let (status, answer) = d.request_body("POST", "/containers/create", &body.to_string());
    assert_eq!(status, 201, "{answer}");
}

#[test]
fn groups_and_the_oom_score() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    assert_eq!(run(&d, &["--group-add", "10", "bb", "id", "-G"]), "0 10");
    // By name, from the container's own /etc/group (read at start).
    let id = ok(&d.docker(&["create", "--group-add", "wheel", "bb", "id", "-G"]));
    let group = d.dir.path().join("group");
    std::fs::write(&group, "root:x:0:\nwheel:x:10:\n").unwrap();
    ok(&d.docker(&["cp", group.to_str().unwrap(), &format!("{id}:/etc/group")]));
    ok(&d.docker(&["start", "-a", &id]));
    assert_eq!(ok(&d.docker(&["logs", &id])), "0 10");
    ok(&d.docker(&["rm", &id]));
    let before = containers(&d);
    let err = refused(&d, &["--group-add", "nosuchgroup", "bb", "true"]);
    assert!(
        err.contains("unable to find group nosuchgroup: no matching entries in group file"),
        "{err}"
    );
    assert_eq!(containers(&d), before);

    assert_eq!(
        run(
            &d,
            &[
                "--oom-score-adj",
                "100",
                "bb",
                "cat",
                "/proc/self/oom_score_adj"
            ]
        ),
        "100"
    );
    assert_eq!(run(&d, &["bb", "cat", "/proc/self/oom_score_adj"]), "0");
    create_refused(
        &d,
        serde_json::json!({"OomScoreAdj": 1001}),
        "Invalid value 1001, range for oom score adj is [-1000, 1000]",
    );
    assert_eq!(containers(&d), before);
}

#[test]
fn runtime_isolation_and_security_options() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for runtime in ["runc", "berth", "berth-runtime"] {
        assert_eq!(run(&d, &["--runtime", runtime, "bb", "echo", "ok"]), "ok");
    }
    assert_eq!(
        run(
            &d,
            &[
                "--isolation",
                "default",
                "--security-opt",
                "label=disable",
                "--security-opt",
                "apparmor=unconfined",
                "bb",
                "echo",
                "ok"
            ]
        ),
        "ok"
    );
    let before = containers(&d);
    let e = d.docker(&["create", "--runtime", "kata", "bb"]);
    assert!(!e.status.success());
    assert!(
        String::from_utf8_lossy(&e.stderr)
            .contains("Error response from daemon: unknown or invalid runtime name: kata"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    assert_eq!(containers(&d), before);
}

#[test]
fn inspect_shows_what_create_filled_in() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["create", "bb", "true"]));
    let shown = ok(&d.docker(&[
        "inspect",
        "--format",
        "{{json .HostConfig.Runtime}} {{.HostConfig.IpcMode}} {{.HostConfig.ShmSize}} \
         {{.HostConfig.CgroupnsMode}} {{json .HostConfig.MemorySwappiness}} \
         {{json .HostConfig.PidsLimit}}",
        &id,
    ]));
    let cgroupns = if v2() { "private" } else { "host" };
    assert_eq!(
        shown,
        format!("\"runc\" private 67108864 {cgroupns} null null")
    );
    // What the container got is what inspect says: the cgroup namespace and /dev/shm.
    let ns = run(&d, &["bb", "busybox", "readlink", "/proc/self/ns/cgroup"]);
    assert_eq!(ns == host_ns("cgroup"), cgroupns == "host", "{ns}");
    let shm = run(&d, &["bb", "busybox", "df", "-k", "/dev/shm"]);
    assert!(shm.contains(" 65536 "), "{shm}");
    // Given values stay as given.
    let id = ok(&d.docker(&[
        "create",
        "--runtime",
        "berth",
        "--ipc",
        "shareable",
        "--pids-limit",
        "50",
        "bb",
        "true",
    ]));
    let shown = ok(&d.docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.Runtime}} {{.HostConfig.IpcMode}} {{.HostConfig.PidsLimit}}",
        &id,
    ]));
    assert_eq!(shown, "berth shareable 50");
    let info = ok(&d.docker(&["info", "--format", "{{.DefaultRuntime}}"]));
    assert_eq!(info, "runc");
}

#[test]
fn log_drivers_json_file_local_and_none() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    // none: the output still reaches an attached client, but nothing is kept.
    let out = ok(&d.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "bb",
        "echo",
        "hi",
    ]));
    assert_eq!(out, "hi");
    let logs = d.docker(&["logs", "quiet"]);
    assert!(!logs.status.success());
    assert!(
        err(&logs).contains("configured logging driver does not support reading"),
        "{}",
        err(&logs)
    );
    let (status, _) = d.request("GET", "/containers/quiet/logs?stdout=1");
    assert_eq!(status, 501);
    let id = ok(&d.docker(&["inspect", "--format", "{{.Id}}", "quiet"]));
    let dir = d.dir.path().join("root/containers").join(&id);
    assert!(
        !dir.join(format!("{id}-json.log")).exists(),
        "a none container has a log file"
    );
    // local: logs are kept and read back, its options checked as Docker checks them.
    ok(&d.docker(&[
        "run",
        "--name",
        "kept",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
        "bb",
        "echo",
        "kept",
    ]));
    assert_eq!(ok(&d.docker(&["logs", "kept"])), "kept");
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "--format",
            "{{json .HostConfig.LogConfig}}",
            "kept"
        ])),
        r#"{"Type":"local","Config":{"max-size":"1k"}}"#
    );
    let before = containers(&d);
    assert!(
        refused(&d, &["--log-driver", "local", "--log-opt", "bogus=1", "bb"])
            .contains("unknown log opt 'bogus' for local log driver")
    );
    assert!(refused(&d, &["--log-driver", "asdf", "bb"])
        .contains(r#"error looking up logging plugin asdf: plugin "asdf" not found"#));
    assert!(refused(&d, &["--log-driver", "syslog", "bb"])
        .contains("logging driver \"syslog\" is not supported by berth"));
    assert_eq!(containers(&d), before, "a refused create left a container");
    ok(&d.docker(&["rm", "quiet", "kept"]));
}
