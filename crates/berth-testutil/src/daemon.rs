//! `TestDaemon`: a whole berth daemon for one test, on its own `--root`, socket, bridge,
//! subnet and nftables table, so tests run side by side and never touch the host's setup.
//! Dropping it force-removes its containers, stops the daemon, unmounts whatever is left
//! under its root and deletes its bridges and table, also when the test failed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::{berth_bin, runtime_bin};
use crate::busybox::busybox_tarball;
use crate::process::{ok, output_with_stdin};

/// The real docker CLI, which the tests drive berth with.
pub const DOCKER: &str = "/usr/local/bin/docker";

/// A daemon on a private root and socket; stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct TestDaemon {
    pub dir: tempfile::TempDir,
    pub child: Child,
    /// The flags it was started with (`start_again` gives them again).
    extra: Vec<String>,
}

/// The daemon's own bridge, subnet, address pool and nftables table (`--bridge`, `--bip`,
/// `--default-address-pool`, `--nft-table`), chosen once per test dir (kept in `net-args`,
/// so a restarted daemon gets the same) and clear of the host's addresses: tests never touch
/// a real setup, and daemons of tests running side by side never give two networks one
/// subnet (each checks the host's addresses, but two creating at once both see it free).
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
    // A /20 (sixteen /24 networks) of 10.100.0.0–10.199.255.255.
    let mut k = h as u32;
    let pool = loop {
        let (b, c) = (100 + (k / 16) % 100, (k % 16) * 16);
        if !(c..c + 16).any(|c| taken.contains(&format!(" 10.{b}.{c}."))) {
            break format!("base=10.{b}.{c}.0/20,size=24");
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
        "--default-address-pool".to_owned(),
        pool,
    ];
    std::fs::write(&file, args.join("\n")).unwrap();
    args
}

/// Deletes what the daemon of `dir` made on the host: its bridges (from the network state
/// files) and its nftables tables (`ip`, and `ip6` when it had a dual-stack network).
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
    for family in ["ip", "ip6"] {
        let _ = Command::new("nft")
            .args(["delete", "table", family, &args[5]])
            .output();
    }
}

/// A daemon on `dir`'s root, socket and network (see [`net_args`]); not waited for.
pub fn spawn_daemon(dir: &Path) -> Child {
    spawn_daemon_with(dir, &[])
}

/// A daemon with `extra` flags.
pub fn spawn_daemon_with(dir: &Path, extra: &[&str]) -> Child {
    spawn_daemon_env(dir, extra, &[])
}

/// A daemon with `extra` flags and `env` variables.
pub fn spawn_daemon_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(berth_bin())
        .args(["daemon", "--root"])
        .arg(dir.join("root"))
        .args(net_args(dir))
        .args(extra)
        .arg("-H")
        .arg(format!("unix://{}", dir.join("berth.sock").display()))
        .env("BERTH_RUNTIME", runtime_bin())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(daemon_log(dir))
        .spawn()
        .unwrap()
}

/// The daemon's stderr: appended to `daemon.log` in the test's directory, so a daemon that
/// does not come up says why (see [`TestDaemon::start_again`]).
fn daemon_log(dir: &Path) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("daemon.log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// The last lines of the test daemon's log.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl TestDaemon {
    /// A daemon with no images.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(&[])
    }

    /// A daemon with `extra` flags.
    pub fn start_with(extra: &[&str]) -> TestDaemon {
        TestDaemon::start_with_env(extra, &[])
    }

    /// A daemon with `extra` flags and `env` variables.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> TestDaemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-daemon-test-")
            .tempdir()
            .unwrap();
        if extra.iter().any(|a| a.starts_with("--userns-remap")) {
            // The remapped root must pass through it to the containers' files, as through
            // /var/lib (the daemon refuses a root it cannot reach).
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let child = spawn_daemon_env(dir.path(), extra, env);
        let mut d = TestDaemon {
            dir,
            child,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        d.wait_up();
        d
    }

    /// Waits (20 s at most) until the daemon accepts connections; panics with its exit
    /// status and the end of its log when it does not.
    fn wait_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(self.socket()).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon exited ({status}) before listening:\n{}",
                    log_tail(self.dir.path())
                );
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not start listening:\n{}",
                log_tail(self.dir.path())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A daemon with the busybox fixture imported as `bb` (CMD sh).
    pub fn with_busybox() -> TestDaemon {
        TestDaemon::with_busybox_and(&[])
    }

    /// [`TestDaemon::with_busybox`] with `extra` daemon flags.
    pub fn with_busybox_and(extra: &[&str]) -> TestDaemon {
        TestDaemon::start_with(extra).import_busybox()
    }

    /// This daemon with the busybox fixture imported as `bb` (CMD sh).
    pub fn import_busybox(self) -> TestDaemon {
        let tarball = busybox_tarball(self.dir.path());
        ok(&self.docker(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            tarball.to_str().unwrap(),
            "bb",
        ]));
        self
    }

    /// Its API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    /// Its socket as a `-H`/`DOCKER_HOST` value.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The docker CLI against this daemon (with a config dir of its own).
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
        self.exchange(format!("{method} {path} HTTP/1.0\r\nHost: berth\r\n\r\n"))
    }

    /// One raw HTTP/1.0 request with a JSON body; returns status code and body.
    pub fn request_body(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        self.exchange(format!(
            "{method} {path} HTTP/1.0\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// Writes `raw` on a new connection and reads the answer to the end: (status, body).
    fn exchange(&self, raw: String) -> (u16, String) {
        let mut s = UnixStream::connect(self.socket()).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
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
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = spawn_daemon_with(self.dir.path(), &extra);
        self.wait_up();
    }

    /// The `berth` CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> std::process::Output {
        berth(&self.host(), args)
    }

    /// The `berth` CLI with `input` on its stdin.
    pub fn berth_with_stdin(&self, args: &[&str], input: &[u8]) -> std::process::Output {
        let mut cmd = Command::new(berth_bin());
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

    /// SIGTERM, then SIGKILL after 10 s; how the daemon ended.
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
        // A test that failed while its daemon was stopped (or killed) may have left
        // containers running: they outlive a daemon by design, so one is started to remove
        // them (not waited for long, and never panicking here).
        let stopped = self.child.try_wait().ok().flatten().is_some();
        let has_containers = std::fs::read_dir(self.dir.path().join("root/containers"))
            .is_ok_and(|mut entries| entries.next().is_some());
        if stopped && has_containers {
            let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
            self.child = spawn_daemon_with(self.dir.path(), &extra);
            let deadline = Instant::now() + Duration::from_secs(10);
            while UnixStream::connect(self.socket()).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Containers first (force-removed through the API), then the daemon.
        if self.child.try_wait().ok().flatten().is_none() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            self.stop();
        }
        // A daemon that could not start again (the failure under test may be that) removed
        // nothing: the containers' processes are killed here, and their shims, which delete
        // the runtime's records (cgroups included), are given a moment to finish.
        kill_containers(&self.dir.path().join("root/containers"));
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

/// Kills the init of every container under `containers` whose shim still runs, and waits
/// (5 s at most) for those shims to end.
pub fn kill_containers(containers: &Path) {
    let Ok(entries) = std::fs::read_dir(containers) else {
        return;
    };
    let mut shims = Vec::new();
    for e in entries.flatten() {
        let Ok(text) = std::fs::read(e.path().join("shim.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
            continue;
        };
        let (Some(shim), Some(init)) = (v["shim_pid"].as_i64(), v["init_pid"].as_i64()) else {
            continue;
        };
        let id = e.file_name().to_string_lossy().into_owned();
        // Only a shim of this container (its command line names it): the pid may be reused.
        let named = std::fs::read(format!("/proc/{shim}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == id.as_bytes()));
        // And only its init: a process whose parent is that shim.
        let child = std::fs::read_to_string(format!("/proc/{init}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                == Some(shim.to_string().as_str())
        });
        if named && child {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(init as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            shims.push(shim);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while shims
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `berth` CLI against the daemon at `host` (never starting one itself).
pub fn berth(host: &str, args: &[&str]) -> std::process::Output {
    Command::new(berth_bin())
        .arg("-H")
        .arg(host)
        .args(args)
        .env("BERTH_NO_AUTOSTART", "1")
        .output()
        .unwrap()
}
