//! berth-runtime on real containers: processes, identity, limits, confinement, terminal,
//! lifecycle operations and hooks. Needs root (see `berth_testutil::root_or_skip`).

#[macro_use]
mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_runtime::spec::{ContainerOptions, SeccompChoice};
use common::*;

#[test]
fn output_and_exit_code_of_a_command() {
    root_only!();
    let sb = Sandbox::new();
    let (_, id, out) = sb.run_new(
        "out",
        sh("echo hello from berth; echo to-stderr >&2; exit 3"),
    );
    assert_eq!(stdout(&out), "hello from berth\n");
    assert_eq!(stderr(&out), "to-stderr\n");
    assert_eq!(out.status.code(), Some(3));
    // run deletes the container afterwards.
    assert!(!sb.root.join(&id).exists());
}

#[test]
fn sigkill_gives_exit_code_137() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("kill9", sh("sleep 100"));
    let id = sb.id("kill9");
    let run = sb.spawn(&["run", "-b", b.to_str().unwrap(), &id]);
    sb.wait_status(&id, "running");
    let k = sb.rt(&["kill", &id, "KILL"]);
    assert!(k.status.success(), "{}", stderr(&k));
    let out = sb.wait_spawned(run);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

#[test]
fn identity_pid_hostname_env_cwd() {
    root_only!();
    let sb = Sandbox::new();
    let (_, _, out) = sb.run_new(
        "ident",
        ContainerOptions {
            hostname: Some("box-one".into()),
            env: vec!["GREETING=hi there".into()],
            cwd: Some("/tmp".into()),
            ..sh("echo pid=$$; hostname; echo \"$GREETING\"; pwd")
        },
    );
    assert_eq!(
        stdout(&out),
        "pid=1\nbox-one\nhi there\n/tmp\n",
        "{}",
        stderr(&out)
    );
    assert!(out.status.success());
}

#[test]
fn user_option_sets_ids() {
    root_only!();
    let sb = Sandbox::new();
    let (_, _, out) = sb.run_new(
        "user",
        ContainerOptions {
            user: Some("1000:1000".into()),
            ..sh("id")
        },
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("uid=1000(user) gid=1000(user)"),
        "{text} {}",
        stderr(&out)
    );
}

#[test]
fn memory_limit_oom_kills_a_hog() {
    root_only!();
    let sb = Sandbox::new();
    // Doubles a string 28 times: a 256 MiB string (and its copies) against a 32 MiB limit.
    let hog = r#"awk 'BEGIN { s = "x"; for (i = 0; i < 28; i++) s = s s; print length(s) }'"#;
    let (_, _, out) = sb.run_new(
        "oom",
        ContainerOptions {
            memory: Some(32 << 20),
            memory_swap: Some(32 << 20),
            ..argv(&["/bin/sh", "-c", &format!("exec {hog}")])
        },
    );
    assert_eq!(
        out.status.code(),
        Some(137),
        "not OOM-killed: out {} err {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // The same hog without a limit completes, so the limit is what killed it.
    let (_, _, out2) = sb.run_new("nooom", argv(&["/bin/sh", "-c", &format!("exec {hog}")]));
    assert_eq!(stdout(&out2), "268435456\n", "{}", stderr(&out2));
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    root_only!();
    let sb = Sandbox::new();
    let bomb = "n=0; for i in $(seq 1 60); do sleep 5 & n=$((n+1)); done; echo started=$n";
    let (_, _, out) = sb.run_new(
        "pids",
        ContainerOptions {
            pids_limit: Some(20),
            ..sh(bomb)
        },
    );
    let err = stderr(&out);
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "no fork failure: out {} err {err}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("started=60"));
}

#[test]
fn sys_admin_only_when_privileged() {
    root_only!();
    let sb = Sandbox::new();
    let script = "mount -t tmpfs none /mnt && echo mounted";
    let (_, _, out) = sb.run_new("nopriv", sh(script));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("permission denied"),
        "mount did not fail for want of CAP_SYS_ADMIN: {}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains("mounted"));

    let (_, _, out) = sb.run_new(
        "priv",
        ContainerOptions {
            privileged: true,
            ..sh(&format!("{script}; grep CapEff /proc/self/status"))
        },
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("mounted\n"), "{}", stdout(&out));
}

#[test]
fn default_seccomp_denies_unshare_and_keyctl() {
    root_only!();
    let sb = Sandbox::new();
    let script = "syscall-probe echo; syscall-probe keyctl; syscall-probe unshare-user; true";
    let (_, _, out) = sb.run_new("seccomp", sh(script));
    let text = stdout(&out);
    assert!(text.contains("echo\necho ok\n"), "{text}");
    assert!(
        text.contains("keyctl errno=1\n"),
        "keyctl not denied: {text}"
    );
    assert!(
        text.contains("unshare-user errno=1\n"),
        "unshare not denied: {text}"
    );

    // The same calls pass the filter when it is off, so the denial above was seccomp's.
    let (_, _, out) = sb.run_new(
        "unconfined",
        ContainerOptions {
            seccomp: SeccompChoice::Unconfined,
            ..sh(script)
        },
    );
    let text = stdout(&out);
    assert!(!text.contains("keyctl errno=1\n"), "{text}");
    assert!(text.contains("unshare-user ok\n"), "{text}");
}

#[test]
fn masked_paths_read_empty_or_fail() {
    root_only!();
    let sb = Sandbox::new();
    let (_, _, out) = sb.run_new(
        "masked",
        sh(
            "echo keys=$(wc -c < /proc/keys); echo fw=$(ls /sys/firmware | wc -l); \
            cat /proc/kcore > /dev/null 2>&1 && echo kcore=read || echo kcore=refused",
        ),
    );
    let text = stdout(&out);
    assert!(text.contains("keys=0\n"), "{text} {}", stderr(&out));
    assert!(text.contains("fw=0\n"), "{text}");
    // /proc/kcore is masked with /dev/null: reading gives nothing, or is refused.
    let kcore_ok = text.contains("kcore=refused") || text.contains("kcore=read");
    assert!(kcore_ok, "{text}");
    // Read-only paths refuse writes even for root.
    let (_, _, out) = sb.run_new("roproc", sh("echo 1 > /proc/sys/kernel/domainname"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn readonly_rootfs_refuses_writes() {
    root_only!();
    let sb = Sandbox::new();
    let (b, _, out) = sb.run_new(
        "ro",
        ContainerOptions {
            readonly_rootfs: true,
            ..sh("touch /newfile")
        },
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    assert!(!b.join("rootfs/newfile").exists());
}

#[test]
fn terminal_through_console_socket() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "tty",
        ContainerOptions {
            tty: true,
            ..sh("tty; echo TERM=$TERM")
        },
    );
    let id = sb.id("tty");
    let socket = berth_runtime::console::ConsoleSocket::new().unwrap();
    let out = sb.rt(&[
        "run",
        "-d",
        "--console-socket",
        socket.path().to_str().unwrap(),
        "-b",
        b.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let master = socket.receive_master().unwrap();
    let mut file = std::fs::File::from(master);
    let mut text = Vec::new();
    // Reading the master ends with EIO once the container closes its side.
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("TERM=xterm"), "{text:?}");
    let _ = file.as_raw_fd();
}

#[test]
fn pause_freezes_and_resume_thaws() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "pause",
        sh("i=0; while true; do i=$((i+1)); echo $i > /tick; sleep 0.02; done"),
    );
    let id = sb.id("pause");
    let out = sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tick = b.join("rootfs/tick");
    let read = || std::fs::read_to_string(&tick).unwrap_or_default();
    let wait_change = |from: String| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while read() == from {
            assert!(Instant::now() < deadline, "counter stuck at {from}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_change(String::new());

    let p = sb.rt(&["pause", &id]);
    assert!(p.status.success(), "{}", stderr(&p));
    assert_eq!(sb.status(&id).as_deref(), Some("paused"));
    let frozen = read();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read(), frozen, "counter moved while paused");

    let r = sb.rt(&["resume", &id]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    wait_change(frozen);
}

#[test]
fn kill_delivers_the_signal() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "usr1",
        sh(
            "trap 'echo got-usr1 > /signalled; exit 0' USR1; echo ready > /ready; \
            while true; do sleep 0.05; done",
        ),
    );
    let id = sb.id("usr1");
    let out = sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.join("rootfs/ready").exists() {
        assert!(Instant::now() < deadline, "container never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let k = sb.rt(&["kill", &id, "USR1"]);
    assert!(k.status.success(), "{}", stderr(&k));
    sb.wait_status(&id, "stopped");
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/signalled")).unwrap(),
        "got-usr1\n"
    );
}

#[test]
fn exec_into_a_running_container() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "exec",
        ContainerOptions {
            env: vec!["FROM_SPEC=yes".into()],
            ..sh("sleep 100")
        },
    );
    let id = sb.id("exec");
    let out = sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e = sb.rt(&[
        "exec",
        "--env",
        "EXTRA=1",
        &id,
        "sh",
        "-c",
        "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); echo $FROM_SPEC $EXTRA; exit 7",
    ]);
    assert_eq!(e.status.code(), Some(7), "{}", stderr(&e));
    let text = stdout(&e);
    // busybox sh execs its last command, so pid 1 is sleep itself.
    assert!(text.contains("pid1=sleep 100"), "{text}");
    assert!(text.contains("yes 1\n"), "{text}");
    let e = sb.rt(&["exec", "--user", "1000:1000", &id, "id", "-u"]);
    assert_eq!(stdout(&e), "1000\n", "{}", stderr(&e));

    // The exec'd process is under the container's seccomp filter, with the container's
    // capabilities (nothing extra left over from loading the filter).
    let e = sb.rt(&["exec", &id, "syscall-probe", "keyctl"]);
    assert_eq!(stdout(&e), "keyctl errno=1\n", "{}", stderr(&e));
    let e = sb.rt(&[
        "exec",
        &id,
        "grep",
        "-E",
        "^(Cap|Seccomp:)",
        "/proc/self/status",
    ]);
    let exec_status = stdout(&e);
    let state: serde_json::Value = serde_json::from_slice(&sb.rt(&["state", &id]).stdout).unwrap();
    let init_status = std::fs::read_to_string(format!("/proc/{}/status", state["pid"])).unwrap();
    for line in exec_status.lines() {
        assert!(
            init_status.lines().any(|l| l == line),
            "exec has {line:?}, init:\n{init_status}"
        );
    }
    assert!(exec_status.contains("Seccomp:\t2"), "{exec_status}");

    // ...and in the container's cgroups, not beside them.
    let e = sb.rt(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let init_cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", state["pid"])).unwrap();
    assert_eq!(stdout(&e), init_cgroups, "{}", stderr(&e));
    assert!(
        init_cgroups.contains(&format!("/berth/{id}")),
        "{init_cgroups}"
    );
    // Exec into a container that does not exist.
    let e = sb.rt(&["exec", "no-such-container", "true"]);
    assert_eq!(e.status.code(), Some(1));
    assert!(stderr(&e).contains("does not exist"), "{}", stderr(&e));
}

#[test]
fn lifecycle_state_list_ps_and_delete() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("life", sh("sleep 100"));
    let id = sb.id("life");
    let out = sb.rt(&["create", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));

    let state: serde_json::Value = serde_json::from_slice(&sb.rt(&["state", &id]).stdout).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert!(state["pid"].as_i64().unwrap() > 0);
    assert_eq!(
        Path::new(state["bundle"].as_str().unwrap()),
        b.canonicalize().unwrap()
    );
    assert!(state["ociVersion"].as_str().unwrap().starts_with("1."));
    assert!(state["created"].as_str().unwrap().contains('T'));

    // The cgroups exist while the container does.
    for dir in cgroup_dirs(&id) {
        assert!(dir.is_dir(), "{} missing", dir.display());
    }
    let out = sb.rt(&["start", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    // Starting twice is refused.
    let again = sb.rt(&["start", &id]);
    assert!(!again.status.success());

    let list = stdout(&sb.rt(&["list", "--format", "json"]));
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    let table = stdout(&sb.rt(&["list"]));
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id));

    let ps: Vec<i32> =
        serde_json::from_slice(&sb.rt(&["ps", "--format", "json", &id]).stdout).unwrap();
    assert_eq!(ps, vec![state["pid"].as_i64().unwrap() as i32]);

    // A running container is not deleted without --force.
    let d = sb.rt(&["delete", &id]);
    assert!(!d.status.success());
    assert!(sb.root.join(&id).exists());
    let d = sb.rt(&["delete", "--force", &id]);
    assert!(d.status.success(), "{}", stderr(&d));
    assert!(!sb.root.join(&id).exists(), "state dir left behind");
    for dir in cgroup_dirs(&id) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(!mounts_mention(b.to_str().unwrap()));
}

#[test]
fn hooks_run_in_order() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("hooks", sh("echo main >> /hooks.log"));
    let log = b.join("rootfs/hooks.log");
    let host_hook = |name: &str| {
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo {name} >> {}", log.display())]
        })
    };
    // startContainer runs inside the container, where the log is /hooks.log.
    let container_hook = |name: &str| {
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo {name} >> /hooks.log")]
        })
    };
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    spec["hooks"] = serde_json::json!({
        "prestart": [host_hook("prestart")],
        "createRuntime": [host_hook("createRuntime")],
        "createContainer": [host_hook("createContainer")],
        "startContainer": [container_hook("startContainer")],
        "poststart": [host_hook("poststart")],
        "poststop": [host_hook("poststop")],
    });
    std::fs::write(b.join("config.json"), spec.to_string()).unwrap();
    let id = sb.id("hooks");
    let out = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text.lines().collect();
    // libcontainer runs poststart as soon as it has told init to go on, so poststart may
    // overtake startContainer (which init runs before exec): only its place after
    // createContainer and before poststop is fixed.
    let pos = |n: &str| {
        order
            .iter()
            .position(|l| *l == n)
            .unwrap_or_else(|| panic!("{n} missing: {order:?}"))
    };
    assert!(pos("prestart") < pos("createRuntime"), "{order:?}");
    assert!(pos("createRuntime") < pos("createContainer"), "{order:?}");
    assert!(pos("createContainer") < pos("startContainer"), "{order:?}");
    assert!(pos("startContainer") < pos("main"), "{order:?}");
    assert!(pos("createContainer") < pos("poststart"), "{order:?}");
    assert_eq!(order.last(), Some(&"poststop"), "{order:?}");
}

/// Runs `berth-runtime ARGS` with a pty as its stdio (as a person's terminal), types `input`,
/// and returns its exit code and everything it printed.
fn on_a_terminal(sb: &Sandbox, args: &[&str], input: &[u8]) -> (Option<i32>, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = sb
        .cmd()
        .args(args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    use std::io::Write;
    master.write_all(input).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth-runtime {args:?} on a terminal did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Everything printed is buffered in our pty now.
    nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.extend_from_slice(&buf[..n]);
    }
    (status.code(), String::from_utf8_lossy(&text).into_owned())
}

#[test]
fn foreground_run_relays_its_own_terminal() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "fgtty",
        ContainerOptions {
            tty: true,
            ..sh("read line; echo got:$line; tty; exit 4")
        },
    );
    let id = sb.id("fgtty");
    let (code, text) = on_a_terminal(&sb, &["run", "-b", b.to_str().unwrap(), &id], b"hello\r");
    assert_eq!(code, Some(4), "{text}");
    assert!(text.contains("got:hello"), "{text:?}");
    assert!(text.contains("/dev/pts/0"), "{text:?}");
}

#[test]
fn exec_with_a_terminal() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle("exectty", sh("sleep 100"));
    let id = sb.id("exectty");
    assert!(sb
        .rt(&["run", "-d", "-b", b.to_str().unwrap(), &id])
        .status
        .success());
    let (code, text) = on_a_terminal(
        &sb,
        &[
            "exec",
            "-t",
            &id,
            "sh",
            "-c",
            "read line; echo got:$line; tty; exit 6",
        ],
        b"typed\r",
    );
    assert_eq!(code, Some(6), "{text}");
    assert!(text.contains("got:typed"), "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
}

#[test]
fn default_capabilities_are_dockers_fourteen() {
    root_only!();
    let sb = Sandbox::new();
    let (_, _, out) = sb.run_new(
        "caps",
        sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"),
    );
    // The mask Docker containers show: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
    // SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert_eq!(
        stdout(&out),
        "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n\
         CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n",
        "{}",
        stderr(&out)
    );

    // Docker's spec for a non-root user has the capabilities in the bounding set only; loading
    // the seccomp filter borrows SYS_ADMIN and SETPCAP and gives back exactly what it borrowed.
    let b = sb.bundle(
        "caps-user",
        sh("grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"),
    );
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    spec["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
    let bounding = spec["process"]["capabilities"]["bounding"].clone();
    spec["process"]["capabilities"] = serde_json::json!({ "bounding": bounding });
    std::fs::write(b.join("config.json"), spec.to_string()).unwrap();
    let id = sb.id("caps-user");
    let out = sb.rt(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(
        stdout(&out),
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\n",
        "{}",
        stderr(&out)
    );
}

#[test]
fn custom_seccomp_profile_is_enforced() {
    root_only!();
    let sb = Sandbox::new();
    // Allow everything but mkdir/mkdirat, which fail with EACCES.
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    }))
    .unwrap();
    let (b, _, out) = sb.run_new(
        "custom",
        ContainerOptions {
            seccomp: SeccompChoice::Custom(Box::new(profile)),
            ..sh("touch /made-file && echo touched; mkdir /made-dir || echo mkdir-refused")
        },
    );
    assert_eq!(stdout(&out), "touched\nmkdir-refused\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    assert!(!b.join("rootfs/made-dir").exists());
}

/// `ContainerOptions` with `--init`.
fn with_init(opts: ContainerOptions) -> ContainerOptions {
    ContainerOptions { init: true, ..opts }
}

#[test]
fn init_is_pid_1_and_passes_on_the_exit_status() {
    root_only!();
    let sb = Sandbox::new();
    let (_, _, out) = sb.run_new(
        "initpid",
        with_init(sh(
            "echo comm=$(cat /proc/1/comm); echo cmdline=$(tr '\\0' ' ' < /proc/1/cmdline); \
             echo self=$$; echo blocked=$(grep SigBlk /proc/self/status | cut -f2); \
             echo ignored=$(grep SigIgn /proc/self/status | cut -f2); exit 3",
        )),
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(3), "{text} {}", stderr(&out));
    assert!(text.contains("comm=berth-init\n"), "{text}");
    // The command line is ours, not the runtime's (no host paths in the container).
    assert!(text.contains("cmdline=berth-init -- "), "{text}");
    assert!(!text.contains("--root"), "{text}");
    assert!(
        text.contains("self=2\n"),
        "the command is not pid 1: {text}"
    );
    // The command starts with no signal blocked or ignored, as under Docker.
    assert!(text.contains("blocked=0000000000000000\n"), "{text}");
    assert!(text.contains("ignored=0000000000000000\n"), "{text}");

    // So does the command without init (the runtime ignores SIGPIPE, and glibc's posix_spawn
    // leaves signals 32 and 33 ignored in what it starts: none of that reaches containers).
    let (_, _, out) = sb.run_new(
        "noinitsig",
        argv(&["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]),
    );
    assert_eq!(
        stdout(&out),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "{}",
        stderr(&out)
    );

    // A command killed by a signal: 128+N, as a shell reports it.
    let (_, _, out) = sb.run_new("initsig", with_init(sh("kill -USR1 $$")));
    assert_eq!(out.status.code(), Some(128 + 10), "{}", stderr(&out));
}

#[test]
fn init_reaps_orphans() {
    root_only!();
    let sb = Sandbox::new();
    // The orphan's parent exits at once; the orphan is reparented to pid 1 and ends soon
    // after. pid 1 is the command (`exec sleep`, which never waits) or berth's init.
    let script = "(sh -c 'sleep 0.1; touch /orphan-done' &); exec sleep 100";
    let zombies = |id: &str| {
        let e = sb.rt(&[
            "exec",
            id,
            "sh",
            "-c",
            "grep -h '^State:' /proc/[0-9]*/status | grep -c Z; true",
        ]);
        stdout(&e).trim().parse::<u32>().unwrap_or_else(|_| {
            panic!("counting zombies: {} {}", stdout(&e), stderr(&e));
        })
    };
    let mut seen = Vec::new();
    for (name, init) in [("orphan-noinit", false), ("orphan-init", true)] {
        let b = sb.bundle(name, ContainerOptions { init, ..sh(script) });
        let id = sb.id(name);
        let out = sb.rt(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.join("rootfs/orphan-done").exists() {
            assert!(Instant::now() < deadline, "the orphan never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Give the orphan's exit time to be noticed.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut count = zombies(&id);
        while Instant::now() < deadline && count != u32::from(!init) {
            std::thread::sleep(Duration::from_millis(50));
            count = zombies(&id);
        }
        seen.push(count);
    }
    // Without init the orphan stays a zombie (so this test can tell); with init it is reaped.
    assert_eq!(seen, vec![1, 0], "zombies without and with init");
}

#[test]
fn init_forwards_signals_to_the_command() {
    root_only!();
    let sb = Sandbox::new();
    // Without init, `sleep` is pid 1 and SIGTERM (no handler) does nothing to it.
    let b = sb.bundle("term-noinit", argv(&["sleep", "100"]));
    let id = sb.id("term-noinit");
    let run = sb.spawn(&["run", "-b", b.to_str().unwrap(), &id]);
    sb.wait_status(&id, "running");
    assert!(sb.rt(&["kill", &id, "TERM"]).status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sb.status(&id).as_deref(), Some("running"));
    assert!(sb.rt(&["kill", &id, "KILL"]).status.success());
    assert_eq!(sb.wait_spawned(run).status.code(), Some(137));

    // With init, the signal reaches sleep (not pid 1), which it ends: 128+15.
    let b = sb.bundle("term-init", with_init(argv(&["sleep", "100"])));
    let id = sb.id("term-init");
    let run = sb.spawn(&["run", "-b", b.to_str().unwrap(), &id]);
    sb.wait_status(&id, "running");
    let ps = sb.rt(&["exec", &id, "ps", "-o", "pid,args"]);
    let table = stdout(&ps);
    assert!(
        table.contains("    1 berth-init -- sleep 100") && table.contains("    2 sleep 100"),
        "{table} {}",
        stderr(&ps)
    );
    assert!(sb.rt(&["kill", &id, "TERM"]).status.success());
    let out = sb.wait_spawned(run);
    assert_eq!(out.status.code(), Some(143), "{}", stderr(&out));

    // A handler in the command sees the forwarded signal.
    let b = sb.bundle(
        "usr1-init",
        with_init(sh(
            "trap 'echo got-usr1; exit 0' USR1; touch /ready; while true; do sleep 0.05; done",
        )),
    );
    let id = sb.id("usr1-init");
    let run = sb.spawn(&["run", "-b", b.to_str().unwrap(), &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.join("rootfs/ready").exists() {
        assert!(Instant::now() < deadline, "container never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sb.rt(&["kill", &id, "USR1"]).status.success());
    let out = sb.wait_spawned(run);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "got-usr1\n");
}

/// Types into an interactive shell on a terminal, waiting for the output between steps.
struct Typist {
    master: std::fs::File,
    seen: Vec<u8>,
}

impl Typist {
    fn type_in(&mut self, text: &[u8]) {
        use std::io::Write;
        self.master.write_all(text).unwrap();
    }

    /// Reads until `marker` has appeared (10 s at most).
    fn wait_for(&mut self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.seen).contains(marker) {
            assert!(
                Instant::now() < deadline,
                "{marker:?} never appeared in {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            let mut fds = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&self.master),
                nix::poll::PollFlags::POLLIN,
            )];
            if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u8)).unwrap_or(0) > 0 {
                match self.master.read(&mut buf) {
                    Ok(0) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                }
            }
        }
    }
}

#[test]
fn init_with_a_terminal_gives_the_shell_job_control_and_ctrl_c() {
    root_only!();
    let sb = Sandbox::new();
    let b = sb.bundle(
        "inittty",
        with_init(ContainerOptions {
            tty: true,
            ..argv(&["sh", "-i"])
        }),
    );
    let id = sb.id("inittty");
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = sb
        .cmd()
        .args(["run", "-b", b.to_str().unwrap(), &id])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut t = Typist {
        master: std::fs::File::from(pty.master),
        seen: Vec::new(),
    };
    t.wait_for("# ");
    // The shell owns the terminal: it can turn job control on.
    assert!(
        !String::from_utf8_lossy(&t.seen).contains("job control turned off"),
        "{:?}",
        String::from_utf8_lossy(&t.seen)
    );
    // The quotes keep the typed line (echoed back) from matching the output.
    t.type_in(b"echo sleep''ing; sleep 100\r");
    t.wait_for("sleeping\r\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sb.rt(&["exec", &id, "pidof", "sleep"]).status.success() {
        assert!(Instant::now() < deadline, "sleep never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.type_in(b"\x03");
    t.wait_for("# ");
    t.type_in(b"echo status=$? pid=$$ init=$(cat /proc/1/comm)\r");
    t.wait_for("status=130 pid=2 init=berth-init");
    t.type_in(b"exit 5\r");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the shell did not exit: {:?}",
                String::from_utf8_lossy(&t.seen)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(5));
}

/// The shim deletes its container when it ends, and the engine may delete it at the same time
/// (a removal): two deletes of one stopped container. Each walks the cgroup hierarchies in its
/// own order, so unserialized they could each stop at a directory the other had just removed
/// and leave one hierarchy's directory behind (seen on this host: empty `berth/<id>` dirs in
/// one of pids, memory, cpu, cpuacct).
#[test]
fn two_deletes_at_once_leave_nothing() {
    root_only!();
    let sb = Sandbox::new();
    for round in 0..12 {
        let b = sb.bundle(&format!("twice{round}"), sh("true"));
        let id = sb.id(&format!("twice{round}"));
        let out = sb.rt(&["create", "-b", b.to_str().unwrap(), &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let out = sb.rt(&["start", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        sb.wait_status(&id, "stopped");
        let deletes: Vec<_> = (0..2)
            .map(|_| {
                let mut c = sb.cmd();
                c.args(["delete", "--force", &id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for d in deletes {
            let out = d.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        assert!(
            !sb.root.join(&id).exists(),
            "round {round}: state dir left behind"
        );
        let left: Vec<_> = cgroup_dirs(&id)
            .into_iter()
            .filter(|d| d.exists())
            .collect();
        assert!(left.is_empty(), "round {round}: {left:?} left behind");
    }
}
