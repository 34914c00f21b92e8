//! The stored container: what it was created as (the create request's Config, HostConfig and
//! NetworkingConfig as normalized, so `inspect` echoes them as Docker does, plus what create
//! resolved: command, image, mounts, network settings, health check) and what it is doing
//! (`State`, with an enum status). Other engine modules (networks, volumes, health, archive)
//! depend on this file only, never on the rest of `container`.

use std::collections::BTreeMap;

use berth_oci::shim::health::HealthConfig;
use bollard_stubs::models::{ContainerConfig, HostConfig, NetworkingConfig};
use serde::{Deserialize, Serialize};

use std::net::{IpAddr, Ipv4Addr};

use berth_network::PortSpec;

/// What a container is. Fixed at create except where an API call changes it on purpose
/// (rename, update, network connect/disconnect), always through `ContainerStore::update`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    /// The image as the user named it, and the image ID it resolved to.
    pub image: String,
    pub image_id: String,
    /// The command: entrypoint and cmd resolved against the image's.
    pub path: String,
    pub args: Vec<String>,
    /// The create request's Config with the image's defaults merged in (Env, Cmd,
    /// Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes…), as inspect shows it.
    pub config: ContainerConfig,
    /// The create request's HostConfig, normalized (NetworkMode named, RestartPolicy and
    /// LogConfig filled): the limits the spec is built from and what inspect echoes.
    pub host_config: HostConfig,
    /// The create request's NetworkingConfig as given.
    #[serde(default)]
    pub networking_config: Option<NetworkingConfig>,
    pub restart: RestartPolicy,
    #[serde(default)]
    pub log: LogOptions,
    /// Volumes, binds and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<MountRecord>,
    /// The health check the shim runs.
    #[serde(default)]
    pub healthcheck: Option<HealthConfig>,
    /// Network mode, networks, published ports, DNS and hosts settings.
    #[serde(default)]
    pub net: NetRecord,
    /// Legacy links to other containers on the default bridge (`HostConfig.Links`), as
    /// create resolved them; inspect shows them as Docker does (`/child:/this/alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// One legacy link (`--link name:alias`): the linked container by ID (renames keep the
/// link), its name when linked (what is shown once it is gone, as Docker does), the alias.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub child: String,
    pub name: String,
    pub alias: String,
}

/// One mount of a container, as recorded at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    /// The volume's name, or the host path of a bind.
    #[serde(default)]
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub propagation: Option<String>,
    /// What inspect shows as `Mode`: a `-v` spec's options as given (`ro`, `rw,rshared`),
    /// `z` for a volume given without options or by `--mount`, else empty (Docker's rules).
    #[serde(default)]
    pub mode: String,
    /// Volumes: do not fill an empty volume from the image.
    #[serde(default)]
    pub nocopy: bool,
    /// tmpfs: mount options (`size=…`, `mode=…`).
    #[serde(default)]
    pub options: Vec<String>,
}

/// One network a container is to be attached to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetAttach {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The endpoint's `IPAMConfig` as given (Docker echoes it in inspect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam_config: Option<bollard_stubs::models::EndpointIpamConfig>,
    /// The endpoint's `Links` as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// The endpoint's `DriverOpts` as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_opts: Option<std::collections::HashMap<String, String>>,
    /// The endpoint's `MacAddress` as given (`network connect`; the first network's is
    /// `NetRecord::mac`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A container's network settings, fixed at create.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetRecord {
    /// `bridge`, `none`, `host`, `container:<id>` or a user network's name.
    pub mode: String,
    /// The networks attached at start, in order (`eth0`, `eth1` …).
    #[serde(default)]
    pub networks: Vec<NetAttach>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
}

/// When a container is started again after it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// At most `max` restarts (0: no limit) after a non-zero exit.
    OnFailure {
        max: i64,
    },
    /// berth's own: after the shim killed it for turning unhealthy.
    OnUnhealthy,
}

impl RestartPolicy {
    /// Docker's name and maximum retry count, with Docker's error for an unknown name.
    pub fn parse(name: &str, max: i64) -> Result<RestartPolicy, String> {
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max },
            "on-unhealthy" => RestartPolicy::OnUnhealthy,
            other => return Err(format!("invalid restart policy '{other}'")),
        };
        if max != 0 && !matches!(policy, RestartPolicy::OnFailure { .. }) {
            return Err(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                    .into(),
            );
        }
        if max < 0 {
            return Err("invalid restart policy: maximum retry count cannot be negative".into());
        }
        Ok(policy)
    }

    /// The policy's name (Docker's, or berth's `on-unhealthy`) and retry count: what
    /// [`RestartPolicy::parse`] takes.
    pub fn name_and_max(self) -> (&'static str, i64) {
        match self {
            RestartPolicy::No => ("no", 0),
            RestartPolicy::Always => ("always", 0),
            RestartPolicy::UnlessStopped => ("unless-stopped", 0),
            RestartPolicy::OnFailure { max } => ("on-failure", max),
            RestartPolicy::OnUnhealthy => ("on-unhealthy", 0),
        }
    }

    /// Docker's RestartPolicy (berth's `on-unhealthy` has no name in Docker's models).
    pub fn to_api(self) -> Option<bollard_stubs::models::RestartPolicy> {
        if self == RestartPolicy::OnUnhealthy {
            return None;
        }
        let (name, max) = self.name_and_max();
        Some(bollard_stubs::models::RestartPolicy {
            name: name.parse().ok(),
            maximum_retry_count: Some(max),
        })
    }

    pub fn is_none(self) -> bool {
        self == RestartPolicy::No
    }
}

/// The container's logging driver and the log's rotation (`--log-opt max-size=10m --log-opt
/// max-file=3`; the shim's defaults when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    #[serde(default)]
    pub driver: LogDriver,
    pub max_size: Option<u64>,
    pub max_files: Option<u32>,
}

/// The logging drivers berth has. `local` keeps the same log files as `json-file` (berth's
/// format is its own either way); `none` keeps no log, so `logs` cannot be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    #[default]
    JsonFile,
    Local,
    None,
}

impl LogDriver {
    pub fn name(self) -> &'static str {
        match self {
            LogDriver::JsonFile => "json-file",
            LogDriver::Local => "local",
            LogDriver::None => "none",
        }
    }
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// It ran and ended (exited or dead).
    pub fn ended(self) -> bool {
        matches!(self, Status::Exited | Status::Dead)
    }
}

/// What a container is doing: changes over its life (`state.json`, beside the record).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub started_at: String,
    pub finished_at: String,
    pub error: String,
    /// Frozen by `pause` (status stays running, as in Docker).
    #[serde(default)]
    pub paused: bool,
    /// Stopped or killed by a user: the restart policy leaves it alone (until `start`).
    #[serde(default)]
    pub manually_stopped: bool,
    /// Restarts done by the policy.
    #[serde(default)]
    pub restart_count: i64,
    /// The shim killed it for turning unhealthy (`--restart on-unhealthy` brings it back).
    #[serde(default)]
    pub killed_unhealthy: bool,
}

impl State {
    pub fn running(&self) -> bool {
        self.status == Status::Running
    }

    /// Running and not paused (what exec needs).
    pub fn active(&self) -> bool {
        self.running() && !self.paused
    }
}

/// Docker's zero time, for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Now as records keep times.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Seconds since the epoch of a recorded time (0 when it is not one).
pub fn unix_time(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or(0, |t| t.timestamp())
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Record {
    pub fn env(&self) -> &[String] {
        self.config.env.as_deref().unwrap_or_default()
    }
    pub fn user(&self) -> &str {
        self.config.user.as_deref().unwrap_or_default()
    }
    pub fn cwd(&self) -> &str {
        self.config.working_dir.as_deref().unwrap_or_default()
    }
    pub fn hostname(&self) -> &str {
        self.config.hostname.as_deref().unwrap_or_default()
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
    pub fn open_stdin(&self) -> bool {
        self.config.open_stdin.unwrap_or(false)
    }
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.config
            .labels
            .as_ref()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
    pub fn label(&self, key: &str) -> Option<&str> {
        self.config.labels.as_ref()?.get(key).map(String::as_str)
    }
    pub fn stop_signal(&self) -> Option<&str> {
        self.config.stop_signal.as_deref().filter(|s| !s.is_empty())
    }
    pub fn stop_timeout(&self) -> Option<i64> {
        self.config.stop_timeout
    }
    pub fn auto_remove(&self) -> bool {
        self.host_config.auto_remove.unwrap_or(false)
    }
    pub fn readonly_rootfs(&self) -> bool {
        self.host_config.readonly_rootfs.unwrap_or(false)
    }
    /// The full command line, as `ps` shows it.
    pub fn command_line(&self) -> String {
        std::iter::once(self.path.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Whether the restart policy wants this container started again after it ended with
    /// `st`.
    pub fn policy_restarts(&self, st: &State) -> bool {
        if st.manually_stopped || !st.status.ended() {
            return false;
        }
        match self.restart {
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure { max } => {
                st.exit_code != 0 && (max == 0 || st.restart_count < max)
            }
            RestartPolicy::OnUnhealthy => st.killed_unhealthy,
            RestartPolicy::No => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse_as_docker_names_them() {
        assert_eq!(RestartPolicy::parse("", 0), Ok(RestartPolicy::No));
        assert_eq!(
            RestartPolicy::parse("on-failure", 3),
            Ok(RestartPolicy::OnFailure { max: 3 })
        );
        assert_eq!(
            RestartPolicy::parse("sometimes", 0).unwrap_err(),
            "invalid restart policy 'sometimes'"
        );
        assert!(RestartPolicy::parse("always", 2).is_err());
        assert!(RestartPolicy::parse("on-failure", -1).is_err());
        assert!(RestartPolicy::OnUnhealthy.to_api().is_none());
    }

    #[test]
    fn states_keep_their_status_as_a_word() {
        let st = State {
            status: Status::Exited,
            ..Default::default()
        };
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(v["status"], "exited");
        let back: State = serde_json::from_value(v).unwrap();
        assert!(back.status.ended());
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-web"));
        assert!(!valid_name(""));
        assert!(!valid_name("we b"));
    }
}
