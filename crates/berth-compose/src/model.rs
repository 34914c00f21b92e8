//! The typed model of a loaded project: what convergence reads, and what `config` prints.
//!
//! Serialization mirrors compose-go's JSON encoding field by field (Go declaration order,
//! `omitempty` where Go has it, sizes as decimal strings, durations as Go prints them,
//! maps sorted), because `com.docker.compose.config-hash` is the SHA-256 of that encoding:
//! the same bytes here and in Docker Compose v2 mean neither tool recreates what the other
//! made. [`go_json`] applies Go's escaping on top.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use crate::units;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}
fn is_zero_f32(v: &f32) -> bool {
    *v == 0.0
}

/// A float32 as Go's encoding/json prints it (`2`, `0.5`).
fn go_f32<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e21 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f32(*v)
    }
}

fn go_f32_opt<S: Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(f) => go_f32(f, s),
        None => s.serialize_none(),
    }
}

/// A byte count; JSON carries it as a decimal string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes(pub i64);

impl Bytes {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::String(s) if s.parse::<i64>().is_ok() => Ok(Bytes(s.parse().unwrap_or_default())),
            Json::String(s) => units::ram_in_bytes(&s)
                .map(Bytes)
                .map_err(serde::de::Error::custom),
            Json::Number(n) => Ok(Bytes(n.as_i64().unwrap_or_default())),
            other => Err(serde::de::Error::custom(format!("not a size: {other}"))),
        }
    }
}

/// A duration in nanoseconds; JSON carries it as Go prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Duration(pub i64);

impl Duration {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&units::go_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        units::parse_duration(&s)
            .map(Duration)
            .map_err(serde::de::Error::custom)
    }
}

/// A ulimit: one value, or soft and hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ulimit {
    Single(i64),
    Range { soft: i64, hard: i64 },
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct SoftHard {
            #[serde(skip_serializing_if = "is_zero_i64")]
            soft: i64,
            #[serde(skip_serializing_if = "is_zero_i64")]
            hard: i64,
        }
        match self {
            Ulimit::Single(v) if *v != 0 => s.serialize_i64(*v),
            Ulimit::Single(_) => SoftHard { soft: 0, hard: 0 }.serialize(s),
            Ulimit::Range { soft, hard } => SoftHard {
                soft: *soft,
                hard: *hard,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Json::deserialize(d)? {
            Json::Number(n) => Ok(Ulimit::Single(n.as_i64().unwrap_or_default())),
            Json::Object(m) => Ok(Ulimit::Range {
                soft: m.get("soft").and_then(Json::as_i64).unwrap_or_default(),
                hard: m.get("hard").and_then(Json::as_i64).unwrap_or_default(),
            }),
            other => Err(serde::de::Error::custom(format!("not a ulimit: {other}"))),
        }
    }
}

impl Ulimit {
    /// (soft, hard) as the engine wants them.
    pub fn soft_hard(&self) -> (i64, i64) {
        match self {
            Ulimit::Single(v) => (*v, *v),
            Ulimit::Range { soft, hard } => (*soft, *hard),
        }
    }
}

/// An env file reference; a required one prints as its path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvFile {
    pub path: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub format: String,
}

impl Serialize for EnvFile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Long<'a> {
            path: &'a str,
            required: bool,
            #[serde(skip_serializing_if = "str::is_empty")]
            format: &'a str,
        }
        if self.required {
            s.serialize_str(&self.path)
        } else {
            Long {
                path: &self.path,
                required: self.required,
                format: &self.format,
            }
            .serialize(s)
        }
    }
}

pub type Mapping = BTreeMap<String, String>;
/// Environment: a value, or null for "take it from the shell at run time".
pub type Environment = BTreeMap<String, Option<String>>;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(skip)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub annotations: Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<Develop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<Blkio>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup_parent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_count: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero_f32",
        serialize_with = "go_f32"
    )]
    pub cpu_percent: f32,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_period: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_quota: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_period: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_rt_runtime: i64,
    #[serde(
        default,
        skip_serializing_if = "is_zero_f32",
        serialize_with = "go_f32"
    )]
    pub cpus: f32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpuset: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub cpu_shares: i64,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileReference>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<Json>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domainname: String,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Json>,
    #[serde(default, skip_serializing_if = "Environment::is_empty")]
    pub environment: Environment,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<Extends>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipc: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_file: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_driver: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub log_opt: Mapping,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub mem_limit: Bytes,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub mem_reservation: Bytes,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub memswap_limit: Bytes,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub mem_swappiness: Bytes,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Json>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub net: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network_mode: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub oom_kill_disable: bool,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub oom_score_adj: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pid: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pids_limit: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pull_policy: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub restart: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub shm_size: Bytes,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stdin_open: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub storage_opt: Mapping,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub sysctls: Mapping,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_api_socket: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub userns_mode: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uts: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub volume_driver: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Develop {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<Watch>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    /// A struct in Go (never omitted).
    #[serde(default)]
    pub exec: Hook,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub initial_sync: bool,
}

/// A lifecycle hook (`post_start`, `pre_stop`) or a watch's exec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Environment::is_empty")]
    pub environment: Environment,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Build {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub context: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dockerfile: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dockerfile_inline: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<String>,
    #[serde(default, skip_serializing_if = "Environment::is_empty")]
    pub args: Environment,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provenance: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sbom: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Json>,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_cache: bool,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub additional_contexts: Mapping,
    #[serde(default, skip_serializing_if = "is_false")]
    pub pull: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub isolation: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileReference>,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub shm_size: Bytes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub weight: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<ThrottleDevice>,
}

/// Go has no JSON tags on these, so the keys print capitalized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightDevice {
    #[serde(rename = "Path", alias = "path", default)]
    pub path: String,
    #[serde(rename = "Weight", alias = "weight", default)]
    pub weight: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    #[serde(rename = "Path", alias = "path", default)]
    pub path: String,
    #[serde(rename = "Rate", alias = "rate", default)]
    pub rate: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub permissions: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub count: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub options: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub options: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// A struct in Go (never omitted).
    #[serde(default)]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub delay: Duration,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failure_action: String,
    #[serde(default, skip_serializing_if = "Duration::is_zero")]
    pub monitor: Duration,
    #[serde(
        default,
        skip_serializing_if = "is_zero_f32",
        serialize_with = "go_f32"
    )]
    pub max_failure_ratio: f32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub order: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Resource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Resource>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "go_f32_opt"
    )]
    pub cpus: Option<f32>,
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub memory: Bytes,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub pids: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_replicas_per_node: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlacementPreference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spread: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceNetwork {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub driver_opts: Mapping,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub gw_priority: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv6_address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub priority: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub target: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub published: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_protocol: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceVolume {
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<VolumeBind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeVolume>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<VolumeTmpfs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<VolumeImage>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeBind {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selinux: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub create_host_path: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recursive: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeVolume {
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "is_false")]
    pub nocopy: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeTmpfs {
    #[serde(default, skip_serializing_if = "Bytes::is_zero")]
    pub size: Bytes,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub mode: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VolumeImage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

/// A service's reference to a secret or config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gid: String,
    /// Octal, as Go prints it (`0440`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub restart: bool,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extends {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub driver_opts: Mapping,
    /// A struct in Go (never omitted).
    #[serde(default)]
    pub ipam: Ipam,
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub attachable: bool,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ipam {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IpamPool {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub aux_addresses: Mapping,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub driver_opts: Mapping,
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
}

/// A top-level secret or config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileObject {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub labels: Mapping,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Mapping::is_empty")]
    pub driver_opts: Mapping,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template_driver: String,
}

/// A loaded project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Project {
    pub name: String,
    pub working_dir: std::path::PathBuf,
    /// The compose files read, absolute.
    pub files: Vec<std::path::PathBuf>,
    pub services: BTreeMap<String, Service>,
    pub networks: BTreeMap<String, Network>,
    pub volumes: BTreeMap<String, Volume>,
    pub secrets: BTreeMap<String, FileObject>,
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-` keys.
    pub extensions: BTreeMap<String, Json>,
    /// Services left out because their profiles are not active.
    pub disabled: BTreeMap<String, Service>,
    /// The variables interpolation saw (shell over `.env`).
    pub environment: BTreeMap<String, String>,
}

impl Project {
    /// The JSON `docker compose config --format json` prints: Go's map order at the top,
    /// two-space indents, Go's escaping.
    pub fn to_config_json(&self) -> String {
        let mut out = String::from("{");
        let mut first = true;
        let mut entry = |key: &str, value: String| {
            out.push_str(if first { "\n  " } else { ",\n  " });
            first = false;
            out.push_str(&serde_json::to_string(key).unwrap_or_default());
            out.push_str(": ");
            out.push_str(&indent(&value));
        };
        // Sorted keys, as Go sorts a map's.
        let mut keys: Vec<(&str, String)> = Vec::new();
        keys.push(("name", pretty(&self.name)));
        // label_file is folded into labels and not printed (v2's `config` drops it).
        let services: BTreeMap<&String, Service> = self
            .services
            .iter()
            .map(|(k, s)| {
                (
                    k,
                    Service {
                        label_file: Vec::new(),
                        ..s.clone()
                    },
                )
            })
            .collect();
        keys.push(("services", pretty(&services)));
        if !self.networks.is_empty() {
            keys.push(("networks", pretty(&self.networks)));
        }
        if !self.volumes.is_empty() {
            keys.push(("volumes", pretty(&self.volumes)));
        }
        if !self.secrets.is_empty() {
            let secrets: BTreeMap<&String, FileObject> = self
                .secrets
                .iter()
                .map(|(k, s)| {
                    (
                        k,
                        FileObject {
                            content: String::new(),
                            ..s.clone()
                        },
                    )
                })
                .collect();
            keys.push(("secrets", pretty(&secrets)));
        }
        if !self.configs.is_empty() {
            let configs: BTreeMap<&String, FileObject> = self
                .configs
                .iter()
                .map(|(k, c)| {
                    let mut c = c.clone();
                    if !c.environment.is_empty() {
                        c.content.clear();
                    }
                    (k, c)
                })
                .collect();
            keys.push(("configs", pretty(&configs)));
        }
        for (k, v) in &self.extensions {
            keys.push((k, pretty(v)));
        }
        keys.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in keys {
            entry(k, v);
        }
        out.push_str("\n}");
        // `$` is written `$$`, so the output reads back to the same model; it can only
        // occur inside strings and keys.
        go_escape(&out).replace('$', "$$")
    }
}

fn pretty<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn indent(s: &str) -> String {
    s.replace('\n', "\n  ")
}

/// Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; they cannot
/// appear in JSON outside strings, so replacing them everywhere is exact.
pub fn go_escape(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// Compact JSON of a value as Go's json.Marshal prints it.
pub fn go_json<T: Serialize + ?Sized>(v: &T) -> String {
    go_escape(&serde_json::to_string(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_shapes() {
        let svc = Service {
            cpus: 2.0,
            command: None,
            mem_limit: Bytes(64 << 20),
            stop_grace_period: Some(Duration(90_000_000_000)),
            labels: [("a".to_owned(), "<&>".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(
            go_json(&svc),
            r#"{"cpus":2,"command":null,"entrypoint":null,"labels":{"a":"\u003c\u0026\u003e"},"mem_limit":"67108864","stop_grace_period":"1m30s"}"#
        );
        let half = Service {
            cpus: 0.5,
            ..Default::default()
        };
        assert!(go_json(&half).starts_with(r#"{"cpus":0.5,"#));
    }
}
