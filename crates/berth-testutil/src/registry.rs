//! `RegistryProcess`: a registry on 127.0.0.1 for a test — `berth registry serve` (with an
//! htpasswd file when given) or any other server the test starts — killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bins::berth_bin;
use crate::process::free_port;

/// A registry process listening on `127.0.0.1:port`.
#[derive(Debug)]
pub struct RegistryProcess {
    pub child: Child,
    pub port: u16,
}

impl RegistryProcess {
    /// Waits (20 s at most) until `child` listens on `port`; fails the test if it exits.
    pub fn listening(child: Child, port: u16) -> RegistryProcess {
        let mut reg = RegistryProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(st) = reg.child.try_wait().unwrap() {
                panic!("the registry exited: {st}");
            }
            assert!(Instant::now() < deadline, "the registry did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    /// `berth registry serve` on a free port, its storage under `dir`.
    pub fn berth(dir: &Path, htpasswd: Option<&Path>) -> RegistryProcess {
        let port = free_port();
        let mut cmd = Command::new(berth_bin());
        cmd.args([
            "registry",
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--root",
        ])
        .arg(dir.join(format!("registry-{port}")))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(h) = htpasswd {
            cmd.arg("--htpasswd").arg(h);
        }
        RegistryProcess::listening(cmd.spawn().unwrap(), port)
    }

    /// `127.0.0.1:PORT/repo`.
    pub fn name(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
