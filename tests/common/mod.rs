//! The whole-system test harness: a berth daemon on a private root and socket, the busybox
//! fixture, and helpers to drive it with the `berth` CLI and the real `docker` CLI.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");
pub const DOCKER: &str = "/usr/local/bin/docker";

/// A daemon on a private root and socket; stopped (SIGTERM, then SIGKILL) on drop.
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub child: Child,
}

/// `berth-runtime`, built beside `berth` (cargo test --workspace builds both).
pub fn runtime_bin() -> PathBuf {
    // `cargo test` builds only this package's binaries: bring berth-runtime and berth-shim
    // up to date once per test process (a no-op when they are), so no test runs a stale one.
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "berth-runtime", "--bins"])
            .status()
            .unwrap();
        assert!(st.success(), "cannot build berth-runtime");
    });
    Path::new(BERTH).parent().unwrap().join("berth-runtime")
}

/// The daemon's own bridge, subnet and nftables table (`--bridge`, `--bip`, `--nft-table`),
/// chosen once per test dir (kept in `net-args`, so a restarted daemon gets the same) and
/// clear of the host's addresses: tests never touch a real setup.
pub fn net_args(dir: &Path) -> Vec<String> {
    let file = dir.join("net-args");
    if let Ok(text) = std::fs::read_to_string(&file) {
        return text.lines().map(str::to_owned).collect();
    }
    let taken = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let name = format!("bt{:08x}", h as u32);
    let mut k = (h >> 32) as u32;
    let bip = loop {
        let (b, c) = (230 + (k / 256) % 24, k % 256);
        if !taken.contains(&format!(" 10.{b}.{c}.")) {
            break format!("10.{b}.{c}.1/24");
        }
        k = k.wrapping_add(1);
    };
    let args = vec![
        "--bridge".to_owned(),
        name.clone(),
        "--bip".to_owned(),
        bip,
        "--nft-table".to_owned(),
        name,
    ];
    std::fs::write(&file, args.join("\n")).unwrap();
    args
}

/// Deletes what the daemon of `dir` made on the host: its bridges (from the network state
/// files) and its nftables table.
pub fn remove_net(dir: &Path) {
    let args = net_args(dir);
    if let Ok(entries) = std::fs::read_dir(dir.join("root/networks")) {
        for e in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if let Some(bridge) = v["config"]["bridge"].as_str() {
                let _ = Command::new("ip").args(["link", "del", bridge]).output();
            }
        }
    }
    let _ = Command::new("ip").args(["link", "del", &args[1]]).output();
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &args[5]])
        .output();
}

pub fn spawn_daemon(dir: &Path) -> Child {
    spawn_daemon_with(dir, &[])
}

/// A daemon with `extra` flags.
pub fn spawn_daemon_with(dir: &Path, extra: &[&str]) -> Child {
    Command::new(BERTH)
        .args(["daemon", "--root"])
        .arg(dir.join("root"))
        .args(net_args(dir))
        .args(extra)
        .arg("-H")
        .arg(format!("unix://{}", dir.join("berth.sock").display()))
        .env("BERTH_RUNTIME", runtime_bin())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub fn wait_listening(sock: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(sock).is_err() {
        assert!(Instant::now() < deadline, "daemon did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl TestDaemon {
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(&[])
    }

    /// A daemon with `extra` flags.
    pub fn start_with(extra: &[&str]) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-daemon-test-")
            .tempdir()
            .unwrap();
        let child = spawn_daemon_with(dir.path(), extra);
        let d = TestDaemon { dir, child };
        wait_listening(&d.socket());
        d
    }

    /// A daemon with the busybox fixture imported as `bb` (CMD sh).
    pub fn with_busybox() -> TestDaemon {
        TestDaemon::with_busybox_and(&[])
    }

    /// [`TestDaemon::with_busybox`] with `extra` daemon flags.
    pub fn with_busybox_and(extra: &[&str]) -> TestDaemon {
        let d = TestDaemon::start_with(extra);
        let tarball = busybox_tarball(d.dir.path());
        ok(&d.docker(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            tarball.to_str().unwrap(),
            "bb",
        ]));
        d
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new(DOCKER)
            .arg("-H")
            .arg(self.host())
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .output()
            .expect("the docker CLI is at /usr/local/bin/docker on these machines")
    }

    /// One raw HTTP/1.0 request; returns status code and body.
    pub fn request(&self, method: &str, path: &str) -> (u16, String) {
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

    /// One raw HTTP/1.0 request with a body; returns status code and body.
    pub fn request_body(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Starts the daemon again on the same root (after `stop` or a kill) and waits for it.
    pub fn start_again(&mut self) {
        self.child = spawn_daemon(self.dir.path());
        wait_listening(&self.socket());
    }

    /// The `berth` CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> std::process::Output {
        berth(&self.host(), args)
    }

    /// The `berth` CLI with `input` on its stdin.
    pub fn berth_with_stdin(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let mut cmd = Command::new(BERTH);
        cmd.arg("-H")
            .arg(self.host())
            .args(args)
            .env("BERTH_NO_AUTOSTART", "1");
        output_with_stdin(cmd, input)
    }

    /// The docker CLI with `input` on its stdin.
    pub fn docker_with_stdin(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let mut cmd = Command::new(DOCKER);
        cmd.arg("-H")
            .arg(self.host())
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"));
        output_with_stdin(cmd, input)
    }

    pub fn stop(&mut self) -> std::process::ExitStatus {
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
        // Containers first (force-removed through the API), then the daemon.
        if self.child.try_wait().ok().flatten().is_none() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            self.stop();
        }
        // Whatever a failed test left mounted under our root.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().display().to_string();
            for line in mounts.lines() {
                if let Some(point) = line.split(' ').nth(4) {
                    if point.starts_with(&root) {
                        let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
                    }
                }
            }
        }
        remove_net(self.dir.path());
    }
}

/// Runs `cmd` with `input` on its stdin (then closed); its output.
pub fn output_with_stdin(mut cmd: Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits for `child` (SIGKILLing it after `limit`, so a hung daemon fails the test instead of
/// hanging it).
pub fn exits_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn berth(host: &str, args: &[&str]) -> std::process::Output {
    Command::new(BERTH)
        .arg("-H")
        .arg(host)
        .args(args)
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .unwrap()
}

/// A busybox rootfs tarball made from Debian's busybox-static, in `dir`.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
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

pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("BERTH_TEST_ALLOW_NONROOT").is_some(),
        "this test needs root (or BERTH_TEST_ALLOW_NONROOT=1 to skip it)"
    );
    false
}

#[track_caller]
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}\nstdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    text(out)
}

/// Runs `cmd` on a new pseudo-terminal of `rows`x`cols`, as a person at a terminal would:
/// after `delay`, types `input`; returns the exit status and everything the terminal showed.
/// The process is killed (and the test fails) if it has not ended within 20 s.
pub fn run_in_pty(
    mut cmd: Command,
    rows: u16,
    cols: u16,
    delay: Duration,
    input: &[u8],
) -> (std::process::ExitStatus, String) {
    use std::os::fd::AsRawFd;
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = cmd
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let mut drain = |master: &mut std::fs::File, text: &mut Vec<u8>| {
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
    };
    let start = Instant::now();
    let mut typed = false;
    let status = loop {
        drain(&mut master, &mut text);
        if !typed && start.elapsed() >= delay {
            master.write_all(input).unwrap();
            typed = true;
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the process on the terminal did not end: {:?}",
                String::from_utf8_lossy(&text)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drain(&mut master, &mut text);
    (status, String::from_utf8_lossy(&text).into_owned())
}
