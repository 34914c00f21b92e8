//! Fixtures for the networking tests: network namespaces standing in for containers, a
//! `Networking` with its own state dir, nftables table and bridges, and processes started
//! inside namespaces. Everything is removed on drop, also when a test fails.
//!
//! Traffic goes only to 127.0.0.0/8 and to addresses inside namespaces the test made.

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_network::{NetworkConfig, Networking, Options, Subnet};

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A short name unique to this process and call: `<prefix><pid><n>`, at most 15 bytes.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let name = format!("{prefix}{}x{n}", std::process::id() % 100_000);
    assert!(name.len() <= 15, "{name} too long for an interface");
    name
}

/// Whether this host can run the tests: berth-testutil's root check (fails without root
/// unless `BERTH_TEST_ALLOW_NONROOT` is set), then ip, nft and busybox; prints why not.
pub fn can_run() -> bool {
    if !berth_testutil::root_or_skip() {
        return false;
    }
    for tool in ["ip", "nft", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            eprintln!("skipping: {tool} is not installed (scripts/deps.sh installs it)");
            return false;
        }
    }
    true
}

pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace made with `ip netns add`, standing in for a container's.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub path: PathBuf,
}

impl Netns {
    pub fn new() -> Self {
        let name = unique("btns");
        run_ok(&["ip", "netns", "add", &name]);
        let path = PathBuf::from(format!("/run/netns/{name}"));
        Netns { name, path }
    }

    /// Runs a command inside (with /etc/netns/<name>/ files bind-mounted by `ip`).
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn exec_ok(&self, args: &[&str]) -> String {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run_ok(&all)
    }

    /// Starts a long-running command inside; killed on drop.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        Proc(child)
    }

    /// Writes /etc/netns/<name>/resolv.conf, which `ip netns exec` puts over /etc/resolv.conf.
    pub fn set_resolv_conf(&self, text: &str) {
        let dir = format!("/etc/netns/{}", self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/resolv.conf"), text).unwrap();
    }

    /// Names of the links inside.
    pub fn links(&self) -> Vec<String> {
        let out = self.exec_ok(&["ip", "-o", "link", "show"]);
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// A process this test started; killed (by its PID) and reaped on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `Networking` of the test's own: temporary state dir, its own nftables table; the
/// networks it creates are emptied and removed on drop, the table deleted.
#[derive(Debug)]
pub struct Env {
    pub net: Networking,
    pub dir: tempfile::TempDir,
    pub table: String,
    bridges: std::sync::Mutex<Vec<(String, String)>>,
}

impl Env {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let table = unique("bt_t");
        let net = Networking::new(Options {
            nft_table: table.clone(),
            ..Options::new(dir.path().join("networks"))
        })
        .unwrap();
        Env {
            net,
            dir,
            table,
            bridges: Default::default(),
        }
    }

    /// Another `Networking` on the same state and table: the daemon after a restart.
    pub fn reopen(&self) -> Networking {
        Networking::new(self.options()).unwrap()
    }

    /// The options this environment's `Networking` was made with.
    pub fn options(&self) -> Options {
        Options {
            nft_table: self.table.clone(),
            ..Options::new(self.dir.path().join("networks"))
        }
    }

    pub fn config(&self, name: &str, subnet: &str) -> NetworkConfig {
        let subnet: Subnet = subnet.parse().unwrap();
        NetworkConfig::new(name, unique("bt"), subnet)
    }

    /// Creates the network and remembers it for cleanup.
    pub fn create(&self, config: NetworkConfig) -> berth_network::NetworkState {
        self.bridges
            .lock()
            .unwrap()
            .push((config.name.clone(), config.bridge.clone()));
        self.net.create_network(config).unwrap()
    }

    pub fn track(&self, config: &NetworkConfig) {
        self.bridges
            .lock()
            .unwrap()
            .push((config.name.clone(), config.bridge.clone()));
    }

    /// Rules in this test's table, as `nft list table` prints them.
    pub fn table_text(&self) -> String {
        run_ok(&["nft", "list", "table", "ip", &self.table])
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for (name, bridge) in self.bridges.lock().unwrap().iter() {
            let _ = self.net.cleanup_network(name);
            let _ = self.net.remove_network(name);
            let _ = run(&["ip", "link", "del", bridge]);
        }
        let _ = self.net.delete_rules();
    }
}

/// Busybox's HTTP server inside `ns` on `port`, serving one file `index.html` with `body`.
pub fn httpd(ns: &Netns, port: u16, body: &str) -> (Proc, tempfile::TempDir) {
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), body).unwrap();
    let root = www.path().to_str().unwrap().to_string();
    let proc = ns.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        &port.to_string(),
        "-h",
        &root,
    ]);
    // Ready when it listens.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = ns.exec(&["busybox", "netstat", "-ltn"]);
        if String::from_utf8_lossy(&out.stdout).contains(&format!(":{port} ")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "httpd did not start in {}",
            ns.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (proc, www)
}

/// A plain HTTP GET of `/index.html` from the host; the body, or the error.
pub fn http_get(addr: Ipv4Addr, port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut conn =
        std::net::TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(3))?;
    conn.set_read_timeout(Some(Duration::from_secs(3)))?;
    write!(
        conn,
        "GET /index.html HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    conn.read_to_string(&mut resp)?;
    Ok(resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(resp))
}
