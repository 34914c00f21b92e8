//! The daemon serves Docker's API on its socket: the real `docker` CLI talks to it, versions
//! are negotiated and checked like Docker's, errors are Docker's JSON, and the socket is
//! guarded (mode 0660, never stolen from a live daemon, removed on shutdown).

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const DOCKER: &str = "/usr/local/bin/docker";

/// A daemon on a private root and socket; stopped (SIGTERM, then SIGKILL) on drop.
struct TestDaemon {
    dir: tempfile::TempDir,
    child: Child,
}

impl TestDaemon {
    fn start() -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-daemon-test-")
            .tempdir()
            .unwrap();
        let child = Command::new(BERTH)
            .args(["daemon", "--root"])
            .arg(dir.path().join("root"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("berth.sock").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let d = TestDaemon { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(d.socket()).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(self.host())
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .output()
            .expect("the docker CLI is at /usr/local/bin/docker on these machines")
    }

    /// One raw HTTP/1.0 request; returns status code and body.
    fn request(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        write!(s, "{method} {path} HTTP/1.0\r\nHost: berth\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

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

    // A second daemon does not take over a live socket.
    let second = Command::new(BERTH)
        .args(["daemon", "--root"])
        .arg(d.dir.path().join("root2"))
        .arg("-H")
        .arg(d.host())
        .output()
        .unwrap();
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
    let mut child = Command::new(BERTH)
        .args(["daemon", "--root"])
        .arg(dir.path().join("root"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(&sock).is_err() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("daemon did not take over the stale socket");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

fn berth(host: &str, args: &[&str]) -> std::process::Output {
    Command::new(BERTH)
        .arg("-H")
        .arg(host)
        .args(args)
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .unwrap()
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
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn unreachable_daemon_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}", dir.path().join("nobody.sock").display());
    let out = berth(&host, &["info"]);
    assert_eq!(out.status.code(), Some(125));
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
    let out = Command::new(BERTH)
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .env("BERTH_HOST", format!("unix://{}", sock.display()))
        .env("BERTH_ROOT", dir.path().join("root"))
        .env("BERTH_DAEMON_LOG", dir.path().join("daemon.log"))
        .env_remove("BERTH_NO_AUTOSTART")
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
        assert!(
            Instant::now() < deadline,
            "auto-started daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("berth daemon listening"), "{log}");
}

/// A busybox rootfs tarball made from Debian's busybox-static, in `dir`.
fn busybox_tarball(dir: &Path) -> PathBuf {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("the tests need Debian's busybox-static (apt-get install busybox-static)");
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "sleep", "id"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    let tarball = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tarball
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
