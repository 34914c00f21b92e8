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

/// Runs the berth CLI against `sock` with autostart allowed; stops whatever daemon the call
/// left listening there (by the peer pid of the socket), and says whether there was one.
fn cli_may_start_a_daemon(
    sock: &std::path::Path,
    root: Option<&std::path::Path>,
) -> (std::process::Output, bool) {
    let mut cmd = std::process::Command::new(berth_bin());
    cmd.args(["info", "--format", "{{.DockerRootDir}}"])
        .env("BERTH_HOST", format!("unix://{}", sock.display()))
        .env_remove("BERTH_NO_AUTOSTART")
        .env_remove("BERTH_ROOT")
        .env("BERTH_DAEMON_LOG", sock.with_extension("log"));
    if let Some(r) = root {
        cmd.env("BERTH_ROOT", r);
    }
    let out = cmd.output().unwrap();
    let started = std::os::unix::net::UnixStream::connect(sock)
        .ok()
        .and_then(|s| {
            nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials).ok()
        })
        .map(|cred| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(cred.pid()),
                nix::sys::signal::Signal::SIGTERM,
            );
        })
        .is_some();
    (out, started)
}

#[test]
fn the_cli_never_starts_a_stranger_on_another_daemons_socket() {
    if !root_or_skip() {
        return;
    }
    // A daemon on its own root and socket dies (kill -9: its socket file stays).
    let d = TestDaemon::start();
    let root = d.dir.path().join("root");
    // The daemon writes berth.pid just after it binds its sockets.
    eventually(
        "the daemon's pid file",
        std::time::Duration::from_secs(10),
        || root.join("berth.pid").exists(),
    );
    let pid: i32 = std::fs::read_to_string(root.join("berth.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let sock = d.socket();
    // (Its process stays a zombie of this test until the harness reaps it; its socket closes.)
    eventually(
        "the daemon is gone",
        std::time::Duration::from_secs(10),
        || std::os::unix::net::UnixStream::connect(&sock).is_err(),
    );
    let (out, started) = cli_may_start_a_daemon(&sock, None);
    assert!(
        !started,
        "a daemon on the default root took the dead daemon's socket"
    );
    assert!(!out.status.success());

    // A live daemon's root is never given a second daemon on another socket.
    let live = TestDaemon::start();
    let other = live.dir.path().join("other.sock");
    let (out, started) = cli_may_start_a_daemon(&other, Some(&live.dir.path().join("root")));
    assert!(
        !started,
        "a second daemon was started on a live daemon's root"
    );
    assert!(!out.status.success());
    assert!(err(&out).contains("listens elsewhere"), "{}", err(&out));
    // The live one still answers on its own socket.
    assert_eq!(
        ok(&live.docker(&["info", "--format", "{{.DockerRootDir}}"])),
        live.dir.path().join("root").display().to_string()
    );
}

#[test]
fn network_create_leaves_what_berth_does_not_own_alone() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::start();
    // A bridge of the host's that berth did not make, with an address (this test makes and
    // removes it).
    let dummy = format!("bsec{:x}", std::process::id() & 0xffff);
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap()
            .success()
    };
    assert!(ip(&["link", "add", &dummy, "type", "bridge"]));
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.0])
                .status();
        }
    }
    let _gone = Gone(dummy.clone());
    assert!(ip(&["addr", "add", "10.254.254.1/24", "dev", &dummy]));
    let before = std::fs::read_to_string(format!("/sys/class/net/{dummy}/address")).unwrap();

    let create = |body: String| d.request_body("POST", "/networks/create", &body);
    let (status, body) = create(format!(
        r#"{{"Name":"grab","Options":{{"com.docker.network.bridge.name":"{dummy}"}}}}"#
    ));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("did not create"), "{body}");
    for subnet in ["127.0.0.0/8", "10.254.254.0/24", "10.254.0.0/16"] {
        let (status, body) = create(format!(
            r#"{{"Name":"shadow","IPAM":{{"Config":[{{"Subnet":"{subnet}"}}]}}}}"#
        ));
        assert!(status >= 400, "{subnet}: {status} {body}");
        assert!(body.contains("Pool overlaps"), "{subnet}: {body}");
    }
    // Nothing was made or changed.
    assert_eq!(
        ok(&d.docker(&["network", "ls", "--format", "{{.Name}}"])),
        "bridge\nhost\nnone"
    );
    let after = std::fs::read_to_string(format!("/sys/class/net/{dummy}/address")).unwrap();
    assert_eq!(before, after, "the interface's MAC changed");
    let addrs = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", &dummy])
        .output()
        .unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    assert!(addrs.contains("10.254.254.1/24"), "{addrs}");
}

#[test]
fn a_restart_puts_right_what_a_crash_left() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "300"]));
    // What a kill -9 in the middle of `commit` and of a `load` leaves: the container frozen
    // with commit's marker beside it, and the upload's copy in the root's tmp.
    ok(&d.docker(&["pause", &id]));
    let root = d.dir.path().join("root");
    let marker = root.join("containers").join(&id).join("commit-paused");
    std::fs::write(&marker, b"").unwrap();
    d.stop();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    let upload = root.join("tmp").join("upload-999-0");
    std::fs::write(&upload, vec![0u8; 1 << 20]).unwrap();
    d.start_again();
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &id])),
        "running",
        "the container stayed frozen"
    );
    assert!(!marker.exists());
    assert!(!upload.exists(), "the upload's copy stayed");
    // A container the user paused stays paused.
    ok(&d.docker(&["pause", &id]));
    d.stop();
    d.start_again();
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", &id])),
        "paused"
    );
    ok(&d.docker(&["unpause", &id]));
    ok(&d.docker(&["rm", "-f", &id]));
}

#[test]
fn create_refuses_values_the_container_could_never_have() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    for (body, words) in [
        (
            format!(
                r#"{{"Image":"bb","Cmd":["true"],"Hostname":"{}"}}"#,
                "a".repeat(10_000)
            ),
            "invalid hostname format",
        ),
        (
            r#"{"Image":"bb","Cmd":["true"],"HostConfig":{"ShmSize":1e30}}"#.to_owned(),
            "HostConfig.ShmSize of type int64",
        ),
        (
            r#"{"Image":"bb","Cmd":["true"],"HostConfig":{"ShmSize":-1}}"#.to_owned(),
            "SHM size can not be less than 0",
        ),
        (
            r#"{"Image":"bb","Cmd":["true"],"HostConfig":{"Memory":"abc"}}"#.to_owned(),
            "HostConfig.Memory of type int64",
        ),
    ] {
        let (status, answer) = d.request_body("POST", "/containers/create", &body);
        assert_eq!(status, 400, "{answer}");
        assert!(answer.contains(words), "{answer}");
    }
    assert_eq!(
        ok(&d.docker(&["ps", "-aq"])),
        "",
        "a refused create left a container"
    );
    // The longest name the kernel takes works.
    let name = "h".repeat(64);
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "--hostname",
            &name,
            "bb",
            "busybox",
            "hostname"
        ])),
        name
    );
}

#[test]
fn an_unpack_stops_before_the_free_space_reserve() {
    if !root_or_skip() {
        return;
    }
    // A layer of 256 MiB of zeros, 250 kB compressed (the issue's 18 MB gzip of 4 GiB, smaller).
    let scratch = tempfile::tempdir().unwrap();
    let zero = scratch.path().join("zero");
    std::fs::File::create(&zero)
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let big = scratch.path().join("big.tgz");
    let made = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&big)
        .arg("-C")
        .arg(scratch.path())
        .arg("zero")
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::remove_file(&zero).unwrap();
    // A reserve 64 MB below what is free now: the layer cannot fit above it.
    let st = nix::sys::statvfs::statvfs(std::env::temp_dir().as_path()).unwrap();
    let free = st.blocks_free() * st.fragment_size();
    let reserve = free.saturating_sub(64 << 20).to_string();
    let d = TestDaemon::start_with(&["--min-free-space", &reserve]);
    let out = d.docker(&["import", big.to_str().unwrap(), "big"]);
    assert!(
        !out.status.success(),
        "a 256 MiB layer went past the reserve"
    );
    assert!(err(&out).contains("--min-free-space"), "{}", err(&out));
    // Nothing of it is left: no image, no partial unpack, no staged blob.
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    let root = d.dir.path().join("root");
    let leftovers: Vec<_> = ["snapshots", "tmp"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir)).ok())
        .flat_map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
        })
        .filter(|n| n.starts_with(".unpack") || n.starts_with("upload-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The flag refuses what it cannot read.
    let mut cmd = std::process::Command::new(berth_bin());
    cmd.args(["daemon", "--min-free-space", "lots", "--root"])
        .arg(d.dir.path().join("other"))
        // Never the default socket, and never for long, should the flag ever be taken.
        .arg("-H")
        .arg(format!(
            "unix://{}",
            d.dir.path().join("other.sock").display()
        ));
    let bad = output_with_timeout(cmd, std::time::Duration::from_secs(10));
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid --min-free-space"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
