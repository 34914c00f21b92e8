//! The daemon serves Docker's API on its socket: the real `docker` CLI talks to it, versions
//! are negotiated and checked like Docker's, errors are Docker's JSON, and the socket is
//! guarded (mode 0660, never stolen from a live daemon, removed on shutdown).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testutil::*;

#[test]
fn docker_cli_talks_to_berth() {
    let d = TestDaemon::start();
    let out = d.docker(&[
        "version",
        "--format",
        "{{.Server.Version}}|{{.Server.APIVersion}}|{{.Server.Os}}",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text(&out),
        format!("{}|1.45|linux", env!("CARGO_PKG_VERSION"))
    );
    let out = d.docker(&[
        "info",
        "--format",
        "{{.DockerRootDir}}|{{.OSType}}|{{.LoggingDriver}}",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text(&out),
        format!("{}|linux|json-file", d.dir.path().join("root").display())
    );
}

#[test]
fn versions_and_errors_follow_docker() {
    let d = TestDaemon::start();
    let (status, body) = d.request("GET", "/_ping");
    assert_eq!((status, body.as_str()), (200, "OK"));
    let (status, body) = d.request("HEAD", "/v1.41/_ping");
    assert_eq!((status, body.as_str()), (200, ""));
    for path in ["/version", "/v1.24/version", "/v1.45/version"] {
        let (status, body) = d.request("GET", path);
        assert_eq!(status, 200, "{path}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["ApiVersion"], "1.45");
        assert_eq!(v["MinAPIVersion"], "1.24");
    }
    let (status, body) = d.request("GET", "/v1.99/version");
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.45"
    );
    let (status, body) = d.request("GET", "/v1.12/version");
    assert_eq!(status, 400, "{body}");
    let (status, body) = d.request("GET", "/no/such/thing");
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["message"], "page not found: /no/such/thing");
}

#[test]
fn the_socket_is_guarded() {
    let mut d = TestDaemon::start();
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);

    // A second daemon does not take over a live socket (with networking of its own).
    let net2 = d.dir.path().join("second");
    std::fs::create_dir_all(&net2).unwrap();
    let second = Command::new(berth_bin())
        .args(["daemon", "--root"])
        .arg(d.dir.path().join("root2"))
        .args(net_args(&net2))
        .arg("-H")
        .arg(d.host())
        .output()
        .unwrap();
    remove_net(&net2);
    assert_eq!(second.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already listening"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        UnixStream::connect(d.socket()).is_ok(),
        "first daemon lost its socket"
    );

    // SIGTERM stops it cleanly and removes the socket.
    let status = d.stop();
    assert!(status.success(), "{status:?}");
    assert!(!d.socket().exists());
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("berth.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap()); // leaves the file behind
    assert!(Path::new(&sock).exists());
    let mut child = Command::new(berth_bin())
        .args(["daemon", "--root"])
        .arg(dir.path().join("root"))
        .args(net_args(dir.path()))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&sock).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            remove_net(dir.path());
            panic!("daemon did not take over the stale socket");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let clean = exits_within(&mut child, Duration::from_secs(10)).success();
    remove_net(dir.path());
    assert!(clean);
}

#[test]
fn berth_cli_version_and_info() {
    let d = TestDaemon::start();
    let out = berth(
        &d.host(),
        &[
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.APIVersion}}",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text(&out), format!("{} 1.45", env!("CARGO_PKG_VERSION")));
    let out = berth(&d.host(), &["info", "--format", "{{json .DockerRootDir}}"]);
    assert_eq!(
        text(&out),
        format!("\"{}\"", d.dir.path().join("root").display())
    );
    let out = berth(&d.host(), &["version"]);
    let t = text(&out);
    assert!(t.starts_with("Client:\n Version:"), "{t}");
    assert!(t.contains("Server: berth\n Engine:\n  Version:"), "{t}");
    let out = berth(&d.host(), &["version", "--format", "{{.Server.Version"]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn unreachable_daemon_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}", dir.path().join("nobody.sock").display());
    // Docker's CLI exits 1 when the daemon cannot be reached (125 is for run and create).
    let out = berth(&host, &["info"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")
    );
}

#[test]
fn the_cli_starts_the_daemon_when_root() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("BERTH_TEST_ALLOW_NONROOT").is_some(),
            "this test needs root (or BERTH_TEST_ALLOW_NONROOT=1 to skip it)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("auto.sock");
    let net = net_args(dir.path());
    let out = Command::new(berth_bin())
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .env("BERTH_HOST", format!("unix://{}", sock.display()))
        .env("BERTH_ROOT", dir.path().join("root"))
        .env("BERTH_DAEMON_LOG", dir.path().join("daemon.log"))
        .env_remove("BERTH_NO_AUTOSTART")
        // The daemon's networking of its own, never the host's default berth0.
        .env("BERTH_BRIDGE", &net[1])
        .env("BERTH_BIP", &net[3])
        .env("BERTH_NFT_TABLE", &net[5])
        .env("BERTH_DEFAULT_ADDRESS_POOL", &net[7])
        .output()
        .unwrap();
    // Whatever happens below, stop the daemon we caused, by the pid on the socket's far end.
    let peer = UnixStream::connect(&sock).ok().and_then(|s| {
        nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials).ok()
    });
    if let Some(cred) = &peer {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(cred.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text(&out), dir.path().join("root").display().to_string());
    let cred = peer.expect("a daemon answers on the socket");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", cred.pid())).exists() {
        if Instant::now() > deadline {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(cred.pid()),
                nix::sys::signal::Signal::SIGKILL,
            );
            remove_net(dir.path());
            panic!("auto-started daemon did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    remove_net(dir.path());
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("berth daemon listening"), "{log}");
}

#[test]
fn docker_import_and_images() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var_os("BERTH_TEST_ALLOW_NONROOT").is_some(),
            "this test needs root (or BERTH_TEST_ALLOW_NONROOT=1 to skip it)"
        );
        return;
    }
    let d = TestDaemon::start();
    let tarball = busybox_tarball(d.dir.path());
    let out = d.docker(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-m",
        "from the test",
        tarball.to_str().unwrap(),
        "busybox:test",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = text(&out);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let out = d.docker(&["images", "--format", "{{.Repository}}|{{.Tag}}|{{.ID}}"]);
    assert_eq!(text(&out), format!("busybox|test|{}", &id[7..19]));
    // Importing again under no name gives a second image; the first keeps its name.
    let out = d.docker(&["import", tarball.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.docker(&["images", "-q"]);
    assert_eq!(text(&out).lines().count(), 2);
    let out = d.docker(&["info", "--format", "{{.Images}}"]);
    assert_eq!(text(&out), "2");

    // Bad input: Docker's status and message, and nothing changes.
    let out = d.docker(&["import", "-c", "RUN make", tarball.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RUN is not a valid change command"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let garbage = d.dir.path().join("garbage.tar");
    std::fs::write(&garbage, vec![0x42u8; 4096]).unwrap();
    let out = d.docker(&["import", garbage.to_str().unwrap(), "junk"]);
    assert!(!out.status.success(), "garbage was imported");
    let out = d.docker(&["images", "-q"]);
    assert_eq!(text(&out).lines().count(), 2);
    let leftovers: Vec<_> = std::fs::read_dir(d.dir.path().join("root/tmp"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "upload files left behind");
}

#[test]
fn docker_run_wait_logs_ps_inspect_rm() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();

    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "t1",
        "-e",
        "WHO=berth",
        "bb",
        "sh",
        "-c",
        "echo hello $WHO; echo oops >&2; exit 3",
    ]));
    assert_eq!(id.len(), 64, "{id}");
    assert_eq!(ok(&d.docker(&["wait", "t1"])), "3");
    let logs = d.docker(&["logs", "t1"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "hello berth\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "oops\n");
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "t1",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}} {{.Name}} {{.Id}}"
        ])),
        format!("exited 3 /t1 {id}")
    );
    let ps = ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}|{{.Image}}|{{.Status}}"]));
    assert!(ps.starts_with("t1|bb|Exited (3) "), "{ps}");
    assert_eq!(
        ok(&d.docker(&["ps", "-q"])),
        "",
        "exited containers are not listed without -a"
    );

    // A running container: rm refuses without -f, stop ends it (sleep ignores SIGTERM as pid 1,
    // so it takes the SIGKILL after the timeout).
    ok(&d.docker(&["run", "-d", "--name", "t2", "bb", "sleep", "100"]));
    assert_eq!(ok(&d.docker(&["ps", "--format", "{{.Names}}"])), "t2");
    let rm = d.docker(&["rm", "t2"]);
    assert!(!rm.status.success());
    assert!(String::from_utf8_lossy(&rm.stderr)
        .contains("container is running: stop the container before removing or force remove"));
    ok(&d.docker(&["stop", "-t", "1", "t2"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "t2", "--format", "{{.State.ExitCode}}"])),
        "137"
    );
    ok(&d.docker(&["rm", "t1", "t2"]));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");

    // Bad input: unknown image, a name in use, a bad flag value; nothing is created.
    let out = d.docker(&["run", "-d", "nosuchimage"]);
    assert!(!out.status.success());
    // The CLI hears "No such image" (404) and would pull; pulling comes with distribution.
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Unable to find image 'nosuchimage:latest' locally"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&d.docker(&["create", "--name", "taken", "bb"]));
    let out = d.docker(&["create", "--name", "taken", "bb"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is already in use by container"));
    let out = d.docker(&["create", "--cap-add", "WIZARDRY", "bb"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown capability"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}"])),
        "taken"
    );
}

#[test]
fn containers_survive_a_killed_daemon() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::start();
    let tarball = busybox_tarball(d.dir.path());
    ok(&d.docker(&["import", tarball.to_str().unwrap(), "bb"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "keeper",
        "bb",
        "sh",
        "-c",
        "echo before; sleep 2; echo after; sleep 100",
    ]));
    let pid = ok(&d.docker(&["inspect", "keeper", "--format", "{{.State.Pid}}"]));

    // SIGKILL the daemon: no chance to clean up anything.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "container died with the daemon"
    );
    std::thread::sleep(Duration::from_millis(2500)); // "after" is logged while no daemon runs

    d.start_again();
    assert_eq!(
        ok(&d.docker(&["ps", "--format", "{{.Names}} {{.State}}"])),
        "keeper running"
    );
    let logs = d.docker(&["logs", "keeper"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "before\nafter\n");
    // Exits while the daemon was away are noticed too.
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    d.start_again();
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "keeper",
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}"
        ])),
        "exited 137"
    );
}

#[test]
fn docker_run_attached_streams_and_exit_codes() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();

    // Output that starts at once is not lost: start waits for the attached client.
    let out = d.docker(&[
        "run",
        "--name",
        "a1",
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out\n",
        "stderr: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // stdin reaches the container, and its end ends the container's input.
    let out = d.docker_with_stdin(
        &["run", "-i", "--rm", "bb", "cat"],
        b"hello through stdin\n",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello through stdin\n"
    );

    // --rm removes the container and still reports its exit code.
    let out = d.docker(&["run", "--rm", "bb", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}"])), "a1");
}

#[test]
fn docker_pause_and_unpause() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "p",
        "bb",
        "sh",
        "-c",
        "while true; do date +%s%N > /tmp/tick; sleep 0.02; done",
    ]));
    let rootfs = || {
        let id = ok(&d.docker(&["inspect", "p", "--format", "{{.Id}}"]));
        d.dir
            .path()
            .join("root/containers")
            .join(id)
            .join("upper/tmp/tick")
    };
    let tick = rootfs();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tick.exists() {
        assert!(Instant::now() < deadline, "container never ticked");
        std::thread::sleep(Duration::from_millis(20));
    }
    ok(&d.docker(&["pause", "p"]));
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "p",
            "--format",
            "{{.State.Status}} {{.State.Paused}}"
        ])),
        "paused true"
    );
    let status = ok(&d.docker(&["ps", "--format", "{{.Status}}"]));
    assert!(status.ends_with("(Paused)"), "{status:?}");
    let frozen = std::fs::read(&tick).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read(&tick).unwrap(), frozen, "ticked while paused");
    let again = d.docker(&["pause", "p"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("is already paused"));

    ok(&d.docker(&["unpause", "p"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "p", "--format", "{{.State.Status}}"])),
        "running"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read(&tick).unwrap() == frozen {
        assert!(Instant::now() < deadline, "did not thaw");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A paused container can be force-removed.
    ok(&d.docker(&["pause", "p"]));
    ok(&d.docker(&["rm", "-f", "p"]));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}

#[test]
fn docker_exec_streams_exit_codes_and_user() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&[
        "run", "-d", "--name", "e1", "-e", "FOO=bar", "bb", "sleep", "100",
    ]));

    let out = d.docker(&[
        "exec",
        "e1",
        "sh",
        "-c",
        "echo out $FOO; echo err >&2; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out bar\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    let out = d.docker_with_stdin(&["exec", "-i", "e1", "cat"], b"through exec stdin\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through exec stdin\n");

    assert_eq!(
        ok(&d.docker(&["exec", "-u", "1000:1000", "e1", "id", "-u"])),
        "1000"
    );
    assert_eq!(
        ok(&d.docker(&["exec", "-u", "root", "e1", "id", "-u"])),
        "0"
    );
    // Exec needs a running container.
    ok(&d.docker(&["stop", "-t", "0", "e1"]));
    let out = d.docker(&["exec", "e1", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_run_it_gives_a_terminal_with_its_size() {
    if !root_or_skip() {
        return;
    }
    use std::os::fd::AsRawFd;
    let d = TestDaemon::with_busybox();

    // The docker CLI on a terminal of 30x90, as a person would run it.
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 30,
            ws_col: 90,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = Command::new(DOCKER)
        .arg("-H")
        .arg(d.host())
        .args([
            "run",
            "-it",
            "--rm",
            "bb",
            "sh",
            "-c",
            "sleep 0.3; stty size; tty; read x; echo got:$x; exit 3",
        ])
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    std::thread::sleep(Duration::from_millis(1500));
    master.write_all(b"typed\r").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker run -it did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
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
    let text = String::from_utf8_lossy(&text);
    assert_eq!(status.code(), Some(3), "{text:?}");
    assert!(
        text.contains("30 90"),
        "window size not passed on: {text:?}"
    );
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("got:typed"), "{text:?}");
}

#[test]
fn docker_restart_rename_top() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "r1",
        "bb",
        "sh",
        "-c",
        "echo started; exec sleep 100",
    ]));
    let top = ok(&d.docker(&["top", "r1"]));
    assert!(top.starts_with("UID"), "{top}");
    assert!(top.lines().any(|l| l.ends_with("sleep 100")), "{top}");

    ok(&d.docker(&["rename", "r1", "r2"]));
    assert_eq!(ok(&d.docker(&["ps", "--format", "{{.Names}}"])), "r2");
    ok(&d.docker(&["run", "-d", "--name", "other", "bb", "sleep", "100"]));
    let clash = d.docker(&["rename", "other", "r2"]);
    assert!(String::from_utf8_lossy(&clash.stderr).contains("is already in use"));

    let pid_before = ok(&d.docker(&["inspect", "r2", "--format", "{{.State.Pid}}"]));
    ok(&d.docker(&["restart", "-t", "0", "r2"]));
    let pid_after = ok(&d.docker(&["inspect", "r2", "--format", "{{.State.Pid}}"]));
    assert_ne!(pid_before, pid_after);
    assert_eq!(
        ok(&d.docker(&["inspect", "r2", "--format", "{{.State.Status}}"])),
        "running"
    );
    let logs = d.docker(&["logs", "r2"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "started\nstarted\n");
}

#[test]
fn restart_policies() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let wait_for = |cond: &dyn Fn() -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // on-failure:2 — two restarts, then it stays down; every run is in the log.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "bb",
        "sh",
        "-c",
        "echo run; exit 1",
    ]));
    wait_for(
        &|| {
            text(&d.docker(&[
                "inspect",
                "flaky",
                "--format",
                "{{.RestartCount}} {{.State.Status}}",
            ])) == "2 exited"
        },
        "two restarts",
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        ok(&d.docker(&["inspect", "flaky", "--format", "{{.RestartCount}}"])),
        "2"
    );
    assert_eq!(
        String::from_utf8_lossy(&d.docker(&["logs", "flaky"]).stdout),
        "run\nrun\nrun\n"
    );

    // always — comes back after it exits; `stop` keeps it down.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "steady",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "sleep 0.3",
    ]));
    wait_for(
        &|| text(&d.docker(&["inspect", "steady", "--format", "{{.RestartCount}}"])) != "0",
        "an always-restart",
    );
    ok(&d.docker(&["stop", "-t", "0", "steady"]));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        ok(&d.docker(&["inspect", "steady", "--format", "{{.State.Status}}"])),
        "exited"
    );

    // A "reboot": the daemon, the shims and the containers all die; on the next start the
    // daemon brings back `always` (even when stopped before) and `unless-stopped` containers.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "server",
        "--restart",
        "unless-stopped",
        "bb",
        "sleep",
        "100",
    ]));
    let root = d.dir.path().join("root/containers");
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        if let Ok(info) = std::fs::read(entry.path().join("shim.json")) {
            let v: serde_json::Value = serde_json::from_slice(&info).unwrap();
            for key in ["shim_pid", "init_pid"] {
                let pid = v[key].as_i64().unwrap() as i32;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    d.start_again();
    wait_for(
        &|| text(&d.docker(&["inspect", "server", "--format", "{{.State.Status}}"])) == "running",
        "unless-stopped container back after the reboot",
    );
    wait_for(
        &|| text(&d.docker(&["inspect", "steady", "--format", "{{.RestartCount}}"])) != "1",
        "always container back after the reboot",
    );
}

/// A test whose daemon cannot come back (the failure under test may be just that) still
/// leaves no container: the test daemon's last resort kills the containers' processes, and
/// their shims delete the rest (the torture test once left three running this way).
#[test]
fn the_test_daemons_last_resort_leaves_no_container() {
    if !root_or_skip() {
        return;
    }
    let mut d = TestDaemon::with_busybox();
    let id = ok(&d.docker(&["run", "-d", "bb", "sleep", "100000"]));
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let containers = d.dir.path().join("root/containers");
    assert_eq!(shims_of(&containers).len(), 1);
    kill_containers(&containers);
    assert!(shims_of(&containers).is_empty());
    eventually(
        "the container's cgroups gone",
        Duration::from_secs(10),
        || cgroups_of(&id).is_empty(),
    );
}
