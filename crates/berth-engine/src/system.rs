//! `version` and `info`: what this engine is and what it runs on.

use berth_api::system::SystemBackend;
use berth_oci::host::{cgroup_mode, CgroupMode};
use bollard_stubs::models::{
    SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, SystemVersion,
    SystemVersionComponents, SystemVersionPlatform,
};

use crate::Engine;

fn os_release() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "Linux".to_owned())
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl SystemBackend for Engine {
    fn version(&self) -> SystemVersion {
        let version = env!("CARGO_PKG_VERSION").to_owned();
        let git_commit = option_env!("BERTH_GIT_COMMIT")
            .unwrap_or("unknown")
            .to_owned();
        // `docker version` prints the engine component's details.
        let details: std::collections::HashMap<String, String> = [
            ("ApiVersion", berth_api::API_VERSION.to_owned()),
            ("MinAPIVersion", berth_api::MIN_API_VERSION.to_owned()),
            ("GitCommit", git_commit.clone()),
            ("GoVersion", "n/a (rust)".to_owned()),
            ("Os", "linux".to_owned()),
            ("Arch", go_arch().to_owned()),
            ("KernelVersion", kernel()),
            ("Experimental", "false".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: "berth".to_owned(),
            }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".to_owned(),
                version: version.clone(),
                details: Some(details),
            }]),
            version: Some(version),
            api_version: Some(berth_api::API_VERSION.to_owned()),
            min_api_version: Some(berth_api::MIN_API_VERSION.to_owned()),
            git_commit: Some(git_commit),
            go_version: Some("n/a (rust)".to_owned()),
            os: Some("linux".to_owned()),
            arch: Some(go_arch().to_owned()),
            kernel_version: Some(kernel()),
            experimental: Some(false),
            build_time: None,
        }
    }

    fn info(&self) -> SystemInfo {
        let cgroup_version = match cgroup_mode() {
            CgroupMode::Unified => SystemInfoCgroupVersionEnum::_2,
            CgroupMode::Legacy => SystemInfoCgroupVersionEnum::_1,
        };
        let (running, paused, stopped) = self.container_counts();
        SystemInfo {
            id: Some(format!(
                "berth-{}",
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )),
            containers: Some((running + paused + stopped) as i64),
            containers_running: Some(running as i64),
            containers_paused: Some(paused as i64),
            containers_stopped: Some(stopped as i64),
            images: Some(self.images.index().map_or(0, |i| i.images.len() as i64)),
            driver: Some("overlayfs".to_owned()),
            docker_root_dir: Some(self.root().display().to_string()),
            server_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            operating_system: Some(os_release()),
            os_type: Some("linux".to_owned()),
            architecture: Some(std::env::consts::ARCH.to_owned()),
            kernel_version: Some(kernel()),
            ncpu: Some(std::thread::available_parallelism().map_or(1, |n| n.get() as i64)),
            mem_total: Some(mem_total()),
            name: nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned()),
            cgroup_driver: Some(if berth_oci::host::systemd_is_init() {
                SystemInfoCgroupDriverEnum::SYSTEMD
            } else {
                SystemInfoCgroupDriverEnum::CGROUPFS
            }),
            cgroup_version: Some(cgroup_version),
            default_runtime: Some("berth-runtime".to_owned()),
            logging_driver: Some("json-file".to_owned()),
            ..Default::default()
        }
    }
}
