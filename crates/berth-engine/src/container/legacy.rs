//! Records written by berth before the record kept the create request's Config and
//! HostConfig: read once at start and turned into today's record (then written back), so an
//! upgraded daemon still knows its containers.

use std::collections::BTreeMap;

use bollard_stubs::models::{ContainerConfig, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use serde::Deserialize;

use super::record::{LogOptions, Record, RestartPolicy};

#[derive(Debug, Deserialize)]
pub(crate) struct LegacyRecord {
    id: String,
    name: String,
    created: String,
    image: String,
    image_id: String,
    path: String,
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    user: String,
    hostname: String,
    tty: bool,
    open_stdin: bool,
    labels: BTreeMap<String, String>,
    stop_signal: Option<String>,
    stop_timeout: Option<i64>,
    host: LegacyHost,
    #[serde(default)]
    mounts: Vec<crate::volumes::MountRecord>,
    #[serde(default)]
    healthcheck: Option<berth_oci::shim::health::HealthConfig>,
    #[serde(default)]
    net: crate::networks::NetRecord,
}

#[derive(Debug, Deserialize)]
struct LegacyHost {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_shares: Option<u64>,
    pids_limit: Option<i64>,
    cap_add: Vec<String>,
    cap_drop: Vec<String>,
    privileged: bool,
    readonly_rootfs: bool,
    security_opt: Vec<String>,
    auto_remove: bool,
    sysctls: BTreeMap<String, String>,
    /// `name=soft:hard`.
    ulimits: Vec<String>,
    #[serde(default)]
    restart: String,
    #[serde(default)]
    restart_max: i64,
    #[serde(default)]
    init: bool,
    #[serde(default)]
    log_max_size: Option<u64>,
    #[serde(default)]
    log_max_files: Option<u32>,
}

impl LegacyRecord {
    pub(crate) fn upgrade(self) -> Record {
        let h = self.host;
        let restart = RestartPolicy::parse(&h.restart, h.restart_max).unwrap_or_default();
        let ulimits = h
            .ulimits
            .iter()
            .filter_map(|u| {
                let (name, limits) = u.split_once('=')?;
                let (soft, hard) = limits.split_once(':')?;
                Some(ResourcesUlimits {
                    name: Some(name.to_owned()),
                    soft: soft.parse().ok(),
                    hard: hard.parse().ok(),
                })
            })
            .collect();
        let log = LogOptions {
            driver: Default::default(),
            max_size: h.log_max_size,
            max_files: h.log_max_files,
        };
        let mut log_config = std::collections::HashMap::new();
        if let Some(n) = h.log_max_size {
            log_config.insert("max-size".to_owned(), n.to_string());
        }
        if let Some(n) = h.log_max_files {
            log_config.insert("max-file".to_owned(), n.to_string());
        }
        Record {
            config: ContainerConfig {
                hostname: Some(self.hostname),
                user: Some(self.user),
                env: Some(self.env),
                cmd: Some(self.args.clone()),
                entrypoint: Some(vec![self.path.clone()]),
                working_dir: Some(self.cwd),
                tty: Some(self.tty),
                open_stdin: Some(self.open_stdin),
                labels: Some(self.labels.into_iter().collect()),
                stop_signal: self.stop_signal,
                stop_timeout: self.stop_timeout,
                image: Some(self.image.clone()),
                ..Default::default()
            },
            host_config: HostConfig {
                memory: h.memory,
                memory_swap: h.memory_swap,
                nano_cpus: h.nano_cpus,
                cpu_shares: h.cpu_shares.map(|n| n as i64),
                pids_limit: h.pids_limit,
                cap_add: Some(h.cap_add),
                cap_drop: Some(h.cap_drop),
                privileged: Some(h.privileged),
                readonly_rootfs: Some(h.readonly_rootfs),
                security_opt: Some(h.security_opt),
                auto_remove: Some(h.auto_remove),
                sysctls: Some(h.sysctls.into_iter().collect()),
                ulimits: Some(ulimits),
                init: Some(h.init),
                network_mode: Some(self.net.mode.clone()),
                restart_policy: restart.to_api(),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(log_config),
                }),
                ..Default::default()
            },
            id: self.id,
            name: self.name,
            created: self.created,
            image: self.image,
            image_id: self.image_id,
            path: self.path,
            args: self.args,
            networking_config: None,
            restart,
            log,
            mounts: self.mounts,
            healthcheck: self.healthcheck,
            net: self.net,
            links: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_record_keeps_its_settings() {
        let old = serde_json::json!({
            "id": "abc", "name": "web", "created": "2026-01-01T00:00:00Z", "image": "busybox",
            "image_id": "sha256:x", "path": "sh", "args": ["-c", "true"], "env": ["A=1"],
            "cwd": "/", "user": "", "hostname": "abc", "tty": false, "open_stdin": false,
            "labels": {"l": "v"}, "stop_signal": null, "stop_timeout": 5,
            "host": {"memory": 67108864, "memory_swap": null, "nano_cpus": null,
                     "cpu_shares": 512, "pids_limit": null, "cap_add": [], "cap_drop": [],
                     "privileged": false, "readonly_rootfs": false, "security_opt": [],
                     "auto_remove": false, "sysctls": {}, "ulimits": ["nofile=10:20"],
                     "restart": "on-failure", "restart_max": 3, "init": true,
                     "log_max_size": 1048576},
            "net": {"mode": "bridge"}
        });
        let rec = serde_json::from_value::<LegacyRecord>(old)
            .unwrap()
            .upgrade();
        assert_eq!(rec.restart, RestartPolicy::OnFailure { max: 3 });
        assert_eq!(rec.host_config.memory, Some(67108864));
        assert_eq!(rec.host_config.cpu_shares, Some(512));
        assert_eq!(rec.host_config.init, Some(true));
        assert_eq!(rec.host_config.ulimits.as_ref().unwrap()[0].hard, Some(20));
        assert_eq!(rec.log.max_size, Some(1048576));
        assert_eq!(rec.label("l"), Some("v"));
        assert_eq!(rec.env(), ["A=1"]);
        assert_eq!(rec.stop_timeout(), Some(5));
    }
}
