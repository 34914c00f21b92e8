//! `version` and `info`: what this engine is and what it runs on; `system check` online
//! (the check itself is `crate::check`).

use berth_api::system::SystemBackend;
use berth_oci::host::{cgroup_mode, CgroupMode};
use bollard_stubs::models::{
    LocalNodeState, PluginsInfo, SwarmInfo, SystemInfo, SystemInfoCgroupDriverEnum,
    SystemInfoCgroupVersionEnum, SystemVersion, SystemVersionComponents, SystemVersionPlatform,
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
        // A rootless daemon without delegated cgroups enforces no limit (and refuses them).
        let limits = self.rootless().is_none_or(|r| r.cgroups);
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
            driver: Some(crate::overlay::driver_name().to_owned()),
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
            // berth-runtime has runc's CLI and answers to its name, as containers record it.
            default_runtime: Some("runc".to_owned()),
            runtimes: Some(
                ["runc", "berth"]
                    .into_iter()
                    .map(|name| {
                        let rt = bollard_stubs::models::Runtime {
                            path: Some(self.runtime_bin().display().to_string()),
                            ..Default::default()
                        };
                        (name.to_owned(), rt)
                    })
                    .collect(),
            ),
            logging_driver: Some("json-file".to_owned()),
            // What berth has; Docker lists its built-in drivers the same way.
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".into()]),
                network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
                authorization: None,
                log: Some(vec!["json-file".into(), "local".into(), "none".into()]),
            }),
            swarm: Some(SwarmInfo {
                node_id: Some(String::new()),
                node_addr: Some(String::new()),
                local_node_state: Some(LocalNodeState::INACTIVE),
                control_available: Some(false),
                error: Some(String::new()),
                remote_managers: None,
                ..Default::default()
            }),
            debug: Some(false),
            experimental_build: Some(false),
            live_restore_enabled: Some(false),
            memory_limit: Some(limits),
            swap_limit: Some(limits && berth_oci::host::swap_accounting()),
            cpu_cfs_period: Some(limits),
            cpu_cfs_quota: Some(limits),
            cpu_shares: Some(limits),
            cpu_set: Some(limits),
            pids_limit: Some(limits),
            oom_kill_disable: Some(false),
            index_server_address: Some("https://index.docker.io/v1/".to_owned()),
            security_options: Some(self.security_options()),
            labels: Some(Vec::new()),
            system_time: Some(
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ),
            ..Default::default()
        }
    }

    fn system_check(&self, deep: bool) -> berth_api::BackendResult<berth_api::system::CheckReport> {
        Ok(self.check_report(deep, crate::check::CheckMode::Online)?)
    }
}

impl Engine {
    /// `SecurityOptions` as dockerd lists them: seccomp, `rootless` for a rootless daemon,
    /// `userns` with `--userns-remap`.
    fn security_options(&self) -> Vec<String> {
        let mut opts = vec!["name=seccomp,profile=builtin".to_owned()];
        if self.rootless().is_some() {
            opts.push("name=rootless".to_owned());
        }
        // As dockerd lists it with --userns-remap.
        if self.remap().is_some() {
            opts.push("name=userns".to_owned());
        }
        opts
    }
}
