//! What a test daemon holds on the host, to compare before and after a test's cycles: mounts
//! under its root, ports of its bridge, rules in its nftables table, shims, the daemon's open
//! files, temporary files, runtime state entries, and the cgroups of given containers.

use std::path::Path;
use std::process::Command;

use crate::daemon::{net_args, TestDaemon};

/// One look at a daemon's footprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// Mount points under the daemon's directory.
    pub mounts: Vec<String>,
    /// Interfaces on its default bridge.
    pub bridge_ports: Vec<String>,
    /// Rules in its nftables table.
    pub nft_rules: usize,
    /// Containers (by ID) whose `berth-shim` runs.
    pub shims: Vec<String>,
    /// Open file descriptors of the daemon.
    pub daemon_fds: usize,
    /// Entries of the root's temporary places (uploads, ingests, unpacks, build dirs).
    pub temp_files: Vec<String>,
}

impl Footprint {
    /// Whether nothing grew since `before`: the same mounts, ports, rules, shims and
    /// temporary files, and no more open descriptors (one open at the first look, a
    /// connection being closed, may be gone at the second).
    pub fn within(&self, before: &Footprint) -> bool {
        Footprint {
            daemon_fds: before.daemon_fds,
            ..self.clone()
        } == *before
            && self.daemon_fds <= before.daemon_fds
    }

    pub fn of(d: &TestDaemon) -> Footprint {
        let dir = d.dir.path();
        let root = dir.join("root");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&dir.display().to_string()))
            .map(str::to_owned)
            .collect();
        let mut temp_files = Vec::new();
        for place in ["tmp", "content/ingest", "build/work", "build/contexts"] {
            if let Ok(entries) = std::fs::read_dir(root.join(place)) {
                for e in entries.flatten() {
                    temp_files.push(format!("{place}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(root.join("snapshots")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    temp_files.push(format!("snapshots/{name}"));
                }
            }
        }
        temp_files.sort();
        let daemon_fds = std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
            .map(|e| e.count())
            .unwrap_or(0);
        Footprint {
            mounts,
            bridge_ports: bridge_ports(&net_args(dir)[1]),
            nft_rules: nft_rule_count(&net_args(dir)[5]),
            shims: shims_of(&root.join("containers"))
                .into_iter()
                .map(|(id, _)| id)
                .collect(),
            daemon_fds,
            temp_files,
        }
    }
}

/// Interfaces whose master is `bridge`.
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_owned())
        .collect()
}

/// Rules (not chains) in nftables table `ip TABLE`.
pub fn nft_rule_count(table: &str) -> usize {
    let out = Command::new("nft")
        .args(["-a", "list", "table", "ip", table])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("# handle") && !l.contains("chain") && !l.contains("table"))
        .count()
}

/// The shims of containers under `containers` (`berth-shim --state-dir <containers>/<id>`):
/// (container ID, shim pid), by ID.
pub fn shims_of(containers: &Path) -> Vec<(String, u32)> {
    let want = format!("--state-dir\0{}/", containers.display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if let Some(at) = cmdline.find(&want) {
            let rest = &cmdline[at + want.len()..];
            out.push((rest.split('\0').next().unwrap_or("").to_owned(), pid));
        }
    }
    out.sort();
    out
}

/// The cgroup directories (any controller, v1 or v2) of the container `id` that exist.
pub fn cgroups_of(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    let mut places: Vec<std::path::PathBuf> = vec!["/sys/fs/cgroup".into()];
    places.extend(controllers.flatten().map(|e| e.path()));
    for place in places {
        let p = place.join("berth").join(id);
        if p.is_dir() {
            out.push(p.display().to_string());
        }
    }
    out
}
