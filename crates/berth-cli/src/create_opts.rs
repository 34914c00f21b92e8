//! The flags of `create` and `run`, and the Docker API create body they make.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

use crate::flag_values as fv;
use crate::refused_opts::RefusedOpts;

// Flags shared by `create` and `run`; a plain comment, as a doc comment would become the help
// text of the subcommands that flatten them (their augmentation is deferred, so it comes last).
#[derive(Args, Debug, Clone, Default)]
pub struct CreateOpts {
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory limit.
    #[arg(short = 'm', long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap.
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Tune container memory swappiness (0 to 100) (default -1).
    #[arg(
        long = "memory-swappiness",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub memory_swappiness: Option<String>,
    /// Disable OOM Killer.
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000).
    #[arg(long = "oom-score-adj", value_name = "int", allow_hyphen_values = true)]
    pub oom_score_adj: Option<String>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Number of CPUs.
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(
        short = 'c',
        long = "cpu-shares",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub cpu_shares: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period", value_name = "int", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Tune container pids limit (set -1 for unlimited).
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMISSIONS]).
    #[arg(long = "device", value_name = "list")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list.
    #[arg(long = "device-cgroup-rule", value_name = "list")]
    pub device_cgroup_rule: Vec<String>,
    /// Add additional groups to join.
    #[arg(long = "group-add", value_name = "list")]
    pub group_add: Vec<String>,
    /// PID namespace to use.
    #[arg(long = "pid", value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use.
    #[arg(long = "ipc", value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use.
    #[arg(long = "uts", value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use.
    #[arg(long = "userns", value_name = "string")]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private): 'host' runs the container in the host's
    /// cgroup namespace, 'private' in its own, '' as the daemon's default (the default).
    #[arg(long = "cgroupns", value_name = "string")]
    pub cgroupns: Option<String>,
    /// Runtime to use for this container.
    #[arg(long = "runtime", value_name = "string")]
    pub runtime: Option<String>,
    /// Container isolation technology.
    #[arg(long = "isolation", value_name = "string")]
    pub isolation: Option<String>,
    /// Write the container ID to the file.
    #[arg(long = "cidfile", value_name = "string")]
    pub cidfile: Option<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add", value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop", value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Security Options.
    #[arg(long = "security-opt", value_name = "list")]
    pub security_opt: Vec<String>,
    /// Ulimit options.
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Sysctl options.
    #[arg(long, value_name = "map")]
    pub sysctl: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Restart policy to apply when a container exits.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Signal to stop the container.
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout", value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Set meta data on a container.
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels.
    #[arg(long = "label-file", value_name = "list")]
    pub label_file: Vec<String>,
    /// Logging driver for the container.
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options.
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Publish a container's port(s) to the host.
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Bind mount a volume.
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container.
    #[arg(long = "mount", value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory.
    #[arg(long = "tmpfs", value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s).
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Connect a container to a network.
    #[arg(long = "network", visible_alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g. 172.30.100.104).
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g. 2001:db8::33).
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33).
    #[arg(long = "mac-address", value_name = "string")]
    pub mac_address: Option<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Set custom DNS servers.
    #[arg(long = "dns", value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Add link to another container.
    #[arg(long = "link", value_name = "list")]
    pub link: Vec<String>,
    /// Expose a port or a range of ports.
    #[arg(long = "expose", value_name = "list")]
    pub expose: Vec<String>,
    /// Command to run to check health.
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long = "health-interval", value_name = "duration")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long = "health-timeout", value_name = "duration")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries", value_name = "int")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before counting retries (ms|s|m|h).
    #[arg(long = "health-start-period", value_name = "duration")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h).
    #[arg(long = "health-start-interval", value_name = "duration")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Set platform if server is multi-platform capable (berth: the host's only).
    #[arg(long = "platform", value_name = "string")]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never"); berth pulls with `berth
    /// pull` only, so "never" is what it does.
    #[arg(long = "pull", value_name = "string")]
    pub pull: Option<String>,
    /// Skip image verification (default true).
    #[arg(
        long = "disable-content-trust",
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub disable_content_trust: Option<String>,
    #[command(flatten)]
    pub refused: RefusedOpts,
    /// Print usage.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The image, then the command and its arguments.
    // Everything from the image on is the container's (`sh -c …`), but before it an unknown
    // flag is an error, as docker's: with hyphen values allowed, `run --bogus bb` ran an
    // image named `--bogus` (and started a daemon to find it).
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        trailing_var_arg = true
    )]
    pub argv: Vec<String>,
}

/// Docker's byte sizes ("512m", "1g"), as an error the CLI can show.
pub fn parse_bytes(text: &str) -> Result<i64> {
    berth_core::humanize::parse_ram_bytes(text)
        .ok_or_else(|| anyhow::anyhow!("invalid size: '{text}'"))
}

/// `KEY=VALUE`, or `KEY` taken from our environment (dropped when unset), as docker does.
fn env_entry(entry: &str) -> Option<String> {
    if entry.contains('=') {
        Some(entry.to_owned())
    } else {
        std::env::var(entry).ok().map(|v| format!("{entry}={v}"))
    }
}

fn read_env_file(path: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("open env file {path}"))?;
    Ok(text
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(env_entry)
        .collect())
}

fn key_values(list: &[String]) -> serde_json::Map<String, Value> {
    list.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
            None => (l.clone(), Value::String(String::new())),
        })
        .collect()
}

fn restart_policy(text: &str) -> Result<Value> {
    let (name, count) = match text.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>().map_err(|_| {
                anyhow::anyhow!(
                    "invalid restart policy format: maximum retry count must be an integer"
                )
            })?,
        ),
        None => (text, 0),
    };
    match name {
        "no" | "always" | "unless-stopped" | "on-unhealthy" if count != 0 => {
            bail!("invalid restart policy format: maximum retry count can only be used with 'on-failure'")
        }
        // on-unhealthy is berth's: restart a container whose health check fails.
        "" | "no" | "always" | "unless-stopped" | "on-failure" | "on-unhealthy" => {}
        other => bail!("invalid restart policy format: unknown policy '{other}'"),
    }
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

fn ulimit(text: &str) -> Result<Value> {
    let (name, limits) = text
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("invalid ulimit argument: {text}"))?;
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (s, h),
        None => (limits, limits),
    };
    let parse = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| anyhow::anyhow!("invalid ulimit argument: {text}"))
    };
    Ok(json!({"Name": name, "Soft": parse(soft)?, "Hard": parse(hard)?}))
}

/// `--mount type=…,source=…,target=…,readonly,…` as a HostConfig.Mounts entry.
fn parse_mount_flag(spec: &str) -> Result<Value> {
    let mut m = json!({"Type": "volume"});
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (field.trim(), None),
        };
        let flag = |v: Option<&str>| -> Result<bool> {
            match v {
                None | Some("true") | Some("1") => Ok(true),
                Some("false") | Some("0") => Ok(false),
                Some(other) => bail!("invalid value for {k}: {other}"),
            }
        };
        let value =
            || v.ok_or_else(|| anyhow::anyhow!("invalid field '{field}' must be a key=value pair"));
        match k {
            "type" => m["Type"] = value()?.into(),
            "source" | "src" => m["Source"] = value()?.into(),
            "target" | "destination" | "dst" => m["Target"] = value()?.into(),
            "readonly" | "ro" => m["ReadOnly"] = flag(v)?.into(),
            "bind-propagation" => m["BindOptions"]["Propagation"] = value()?.into(),
            "volume-nocopy" => m["VolumeOptions"]["NoCopy"] = flag(v)?.into(),
            "tmpfs-size" => m["TmpfsOptions"]["SizeBytes"] = parse_bytes(value()?)?.into(),
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(value()?, 8)
                    .map_err(|_| anyhow::anyhow!("invalid value for tmpfs-mode: {field}"))?;
                m["TmpfsOptions"]["Mode"] = mode.into();
            }
            "" => {}
            other => bail!("unexpected key '{other}' in '{spec}'"),
        }
    }
    if m["Target"].is_null() {
        bail!("invalid argument \"{spec}\" for \"--mount\" flag: target is required");
    }
    Ok(m)
}

/// The HostConfig the docker CLI (28) sends when no flag is given: every field it always
/// sends, at its zero value (`MemorySwappiness` -1: the host's), so that a daemon sees the
/// same request from either CLI. The flags then fill in theirs.
const DOCKER_HOST_DEFAULTS: &str = r#"{
    "Binds": null,
    "ContainerIDFile": "",
    "LogConfig": {"Type": "", "Config": {}},
    "NetworkMode": "default",
    "PortBindings": {},
    "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": false,
    "VolumeDriver": "",
    "VolumesFrom": null,
    "ConsoleSize": [0, 0],
    "CapAdd": null,
    "CapDrop": null,
    "CgroupnsMode": "",
    "Dns": [],
    "DnsOptions": [],
    "DnsSearch": [],
    "ExtraHosts": null,
    "GroupAdd": null,
    "IpcMode": "",
    "Cgroup": "",
    "Links": null,
    "OomScoreAdj": 0,
    "PidMode": "",
    "Privileged": false,
    "PublishAllPorts": false,
    "ReadonlyRootfs": false,
    "SecurityOpt": null,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 0,
    "Isolation": "",
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "BlkioWeightDevice": [],
    "BlkioDeviceReadBps": [],
    "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [],
    "BlkioDeviceWriteIOps": [],
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": null,
    "DeviceRequests": null,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": -1,
    "OomKillDisable": false,
    "PidsLimit": 0,
    "Ulimits": [],
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
    "MaskedPaths": null,
    "ReadonlyPaths": null
}"#;

/// `--cap-add` or `--cap-drop` as the docker CLI (28) sends it: upper case, `CAP_` before
/// each name but `ALL`, each once, sorted.
fn normalized_caps(caps: &[String]) -> Vec<String> {
    let set: std::collections::BTreeSet<String> = caps
        .iter()
        .map(|c| {
            let c = c.to_ascii_uppercase();
            if c == "ALL" || c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect();
    set.into_iter().collect()
}

fn docker_host_defaults() -> Value {
    serde_json::from_str(DOCKER_HOST_DEFAULTS).expect("a JSON object")
}

impl CreateOpts {
    /// The create body's Healthcheck from the --health-* flags (None: the image's).
    fn healthcheck(&self) -> Result<Option<Value>> {
        if self.no_healthcheck {
            if self.health_cmd.is_some() {
                bail!("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(json!({"Test": ["NONE"]})));
        }
        let any = self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some();
        if !any {
            return Ok(None);
        }
        let mut h = json!({});
        if let Some(cmd) = &self.health_cmd {
            h["Test"] = json!(["CMD-SHELL", cmd]);
        }
        for (key, flag, value) in [
            ("Interval", "--health-interval", &self.health_interval),
            ("Timeout", "--health-timeout", &self.health_timeout),
            (
                "StartPeriod",
                "--health-start-period",
                &self.health_start_period,
            ),
            (
                "StartInterval",
                "--health-start-interval",
                &self.health_start_interval,
            ),
        ] {
            if let Some(v) = value {
                let ns = berth_core::duration::parse(v).map_err(|e| {
                    anyhow::anyhow!("invalid argument \"{v}\" for \"{flag}\" flag: {e}")
                })?;
                if ns < 0 {
                    bail!("{flag} cannot be negative");
                }
                h[key] = ns.into();
            }
        }
        if let Some(r) = self.health_retries {
            if r < 0 {
                bail!("--health-retries cannot be negative");
            }
            h["Retries"] = r.into();
        }
        Ok(Some(h))
    }

    pub fn image(&self) -> &str {
        &self.argv[0]
    }

    /// `--platform` as the create request's `platform` query: the host's platform only,
    /// since berth keeps one platform per image and runs no emulator.
    pub fn platform(&self) -> Result<Option<String>> {
        let Some(p) = self.platform.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let mut parts = p.split('/');
        let (os, want) = (parts.next().unwrap_or(""), parts.next());
        if os.eq_ignore_ascii_case("linux") && want.is_none_or(|a| a.eq_ignore_ascii_case(arch)) {
            return Ok(Some(p.to_owned()));
        }
        bail!("--platform {p}: berth runs images of this host's platform only (linux/{arch})")
    }

    /// The flags about the image itself: `--pull` (berth pulls with `berth pull` only) and
    /// `--disable-content-trust` (berth verifies no signatures).
    fn check_image_flags(&self) -> Result<()> {
        if let Some(p) = &self.pull {
            fv::pull_policy(p).map_err(anyhow::Error::msg)?;
            if p != "never" {
                bail!(
                    "--pull {p}: berth does not pull images at run or create; pull it first with `berth pull`, then use --pull never (or no --pull)"
                );
            }
        }
        match self.disable_content_trust.as_deref() {
            None | Some("true" | "1" | "t" | "T" | "TRUE" | "True") => Ok(()),
            Some("false" | "0" | "f" | "F" | "FALSE" | "False") => {
                bail!("--disable-content-trust=false: berth does not verify image signatures (content trust)")
            }
            Some(v) => bail!(fv::invalid(
                v,
                "--disable-content-trust",
                format_args!("strconv.ParseBool: parsing \"{v}\": invalid syntax")
            )),
        }
    }

    /// Labels from `--label-file` files, then `--label` (a later one wins).
    fn labels(&self) -> Result<Vec<String>> {
        let mut labels = Vec::new();
        for f in &self.label_file {
            let text = std::fs::read_to_string(f).with_context(|| format!("open {f}"))?;
            labels.extend(fv::key_value_lines(&text).map_err(anyhow::Error::msg)?);
        }
        labels.extend(self.label.iter().cloned());
        Ok(labels)
    }

    /// The resource, device and namespace settings of the HostConfig, each sent as the
    /// docker CLI sends it (its zero value when the flag is absent; `MemorySwappiness` -1).
    fn resources(&self, host: &mut Value) -> Result<()> {
        let e = anyhow::Error::msg;
        let int = |v: &Option<String>, flag: &str| -> Result<i64> {
            v.as_deref().map_or(Ok(0), |v| fv::int(v, flag).map_err(e))
        };
        let size = |v: &Option<String>, flag: &str| -> Result<i64> {
            v.as_deref()
                .map_or(Ok(0), |v| fv::bytes(v, flag).map_err(e))
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let pid = text(&self.pid);
        fv::pid_mode(&pid).map_err(e)?;
        let uts = text(&self.uts);
        fv::uts_mode(&uts).map_err(e)?;
        let userns = text(&self.userns);
        fv::userns_mode(&userns).map_err(e)?;
        let cgroupns = text(&self.cgroupns);
        fv::cgroupns_mode(&cgroupns).map_err(e)?;
        let swappiness = match &self.memory_swappiness {
            Some(v) => fv::swappiness(v).map_err(e)?,
            None => -1,
        };
        let devices = self
            .device
            .iter()
            .map(|d| {
                if fv::is_cdi_name(d) {
                    bail!("--device {d}: CDI devices are not supported by berth");
                }
                fv::device(d).map_err(e)
            })
            .collect::<Result<Vec<_>>>()?;
        let rules = self
            .device_cgroup_rule
            .iter()
            .map(|r| fv::device_cgroup_rule(r).map_err(e))
            .collect::<Result<Vec<_>>>()?;
        let fields = json!({
            "Memory": size(&self.memory, "-m, --memory")?,
            "MemoryReservation": size(&self.memory_reservation, "--memory-reservation")?,
            "MemorySwappiness": swappiness,
            "OomKillDisable": self.oom_kill_disable,
            "OomScoreAdj": int(&self.oom_score_adj, "--oom-score-adj")?,
            "ShmSize": size(&self.shm_size, "--shm-size")?,
            "NanoCpus": self.cpus.as_deref().map_or(Ok(0), |c| fv::nano_cpus(c, "--cpus").map_err(e))?,
            "CpuShares": int(&self.cpu_shares, "-c, --cpu-shares")?,
            "CpuPeriod": int(&self.cpu_period, "--cpu-period")?,
            "CpuQuota": int(&self.cpu_quota, "--cpu-quota")?,
            "CpusetCpus": text(&self.cpuset_cpus),
            "CpusetMems": text(&self.cpuset_mems),
            "Devices": devices,
            "DeviceCgroupRules": Some(rules).filter(|r| !r.is_empty()),
            "GroupAdd": Some(&self.group_add).filter(|g| !g.is_empty()),
            "PidMode": pid,
            "IpcMode": text(&self.ipc),
            "UTSMode": uts,
            "UsernsMode": userns,
            "CgroupnsMode": cgroupns,
            "Isolation": text(&self.isolation),
            "ContainerIDFile": text(&self.cidfile),
        });
        for (k, v) in fields.as_object().expect("an object").iter() {
            host[k] = v.clone();
        }
        if let Some(m) = &self.memory_swap {
            host["MemorySwap"] = fv::swap_bytes(m, "--memory-swap").map_err(e)?.into();
        }
        if let Some(p) = &self.pids_limit {
            host["PidsLimit"] = fv::int(p, "--pids-limit").map_err(e)?.into();
        }
        if let Some(r) = self.runtime.as_deref().filter(|r| !r.is_empty()) {
            host["Runtime"] = r.into();
        }
        Ok(())
    }

    /// The body of `POST /containers/create`.
    pub fn body(&self, attach: bool) -> Result<Value> {
        self.refused.check().map_err(anyhow::Error::msg)?;
        self.check_image_flags()?;
        let log_driver = self.log_driver.clone().unwrap_or_default();
        if log_driver == "none" && !self.log_opt.is_empty() {
            bail!("invalid logging opts for driver none");
        }
        let mut env = Vec::new();
        for f in &self.env_file {
            env.extend(read_env_file(f)?);
        }
        env.extend(self.env.iter().filter_map(|e| env_entry(e)));
        let cmd: Vec<&String> = self.argv[1..].iter().collect();
        let list = |l: &Vec<String>| Some(l.clone()).filter(|l| !l.is_empty());
        let (cap_add, cap_drop) = (
            normalized_caps(&self.cap_add),
            normalized_caps(&self.cap_drop),
        );
        let mut host = docker_host_defaults();
        for (k, v) in [
            ("Privileged", json!(self.privileged)),
            ("ReadonlyRootfs", json!(self.read_only)),
            ("AutoRemove", json!(self.rm)),
            ("CapAdd", json!(list(&cap_add))),
            ("CapDrop", json!(list(&cap_drop))),
            ("SecurityOpt", json!(list(&self.security_opt))),
            ("RestartPolicy", restart_policy(&self.restart)?),
            (
                "Ulimits",
                json!(self
                    .ulimit
                    .iter()
                    .map(|u| ulimit(u))
                    .collect::<Result<Vec<_>>>()?),
            ),
            (
                "LogConfig",
                json!({"Type": log_driver, "Config": key_values(&self.log_opt)}),
            ),
        ] {
            host[k] = v;
        }
        // Sent only when asked for, as the docker CLI does (`flags.Changed("init")`).
        if self.init {
            host["Init"] = true.into();
        }
        if !self.sysctl.is_empty() {
            host["Sysctls"] = Value::Object(key_values(&self.sysctl));
        }
        self.resources(&mut host)?;
        // `-v /path` is an anonymous volume (Config.Volumes), the rest are binds.
        let (anonymous, binds): (Vec<&String>, Vec<&String>) =
            self.volume.iter().partition(|v| !v.contains(':'));
        if !binds.is_empty() {
            host["Binds"] = json!(binds);
        }
        if !self.mount.is_empty() {
            host["Mounts"] = Value::Array(
                self.mount
                    .iter()
                    .map(|m| parse_mount_flag(m))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        if !self.tmpfs.is_empty() {
            host["Tmpfs"] = Value::Object(
                self.tmpfs
                    .iter()
                    .map(|t| match t.split_once(':') {
                        Some((path, opts)) => (path.to_owned(), Value::String(opts.to_owned())),
                        None => (t.clone(), Value::String(String::new())),
                    })
                    .collect(),
            );
        }
        if !self.volumes_from.is_empty() {
            host["VolumesFrom"] = json!(self.volumes_from);
        }
        if !self.publish.is_empty() {
            let mut bindings = serde_json::Map::new();
            for p in &self.publish {
                let (rest, proto) = p.rsplit_once('/').unwrap_or((p.as_str(), "tcp"));
                let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
                let (container, host_port, ip) = match parts.as_slice() {
                    [c] => (*c, "", ""),
                    [c, h] => (*c, *h, ""),
                    [c, h, ip] => (*c, *h, *ip),
                    _ => bail!("invalid publish spec: {p}"),
                };
                bindings
                    .entry(format!("{container}/{proto}"))
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                    .expect("inserted as an array")
                    .push(json!({"HostIp": ip, "HostPort": host_port}));
            }
            host["PortBindings"] = Value::Object(bindings);
        }
        if let Some(n) = &self.network {
            host["NetworkMode"] = n.clone().into();
        }
        if self.publish_all {
            host["PublishAllPorts"] = true.into();
        }
        for (key, list) in [
            ("Dns", &self.dns),
            ("DnsSearch", &self.dns_search),
            ("DnsOptions", &self.dns_option),
        ] {
            host[key] = json!(list);
        }
        if !self.add_host.is_empty() {
            host["ExtraHosts"] = json!(self.add_host);
        }
        let mut body = json!({
            "Image": self.image(),
            "Tty": self.tty,
            "OpenStdin": self.interactive,
            "StdinOnce": self.interactive && attach,
            "AttachStdin": self.interactive && attach,
            "AttachStdout": attach,
            "AttachStderr": attach,
            "Env": env,
            "Labels": key_values(&self.labels()?),
            "HostConfig": host,
        });
        if !cmd.is_empty() {
            body["Cmd"] = json!(cmd);
        }
        if let Some(e) = &self.entrypoint {
            body["Entrypoint"] = if e.is_empty() { json!([]) } else { json!([e]) };
        }
        for (key, value) in [
            ("WorkingDir", &self.workdir),
            ("User", &self.user),
            ("Hostname", &self.hostname),
            ("StopSignal", &self.stop_signal),
        ] {
            if let Some(v) = value {
                body[key] = v.clone().into();
            }
        }
        if let Some(t) = self.stop_timeout {
            body["StopTimeout"] = t.into();
        }
        // As the docker CLI: a published port is exposed too.
        let mut exposed: serde_json::Map<String, Value> = self
            .expose
            .iter()
            .map(|p| {
                let key = if p.contains('/') {
                    p.clone()
                } else {
                    format!("{p}/tcp")
                };
                (key, json!({}))
            })
            .collect();
        if let Some(bindings) = body["HostConfig"]["PortBindings"].as_object() {
            for port in bindings.keys() {
                exposed.insert(port.clone(), json!({}));
            }
        }
        if !exposed.is_empty() {
            body["ExposedPorts"] = Value::Object(exposed);
        }
        let mut endpoint = serde_json::Map::new();
        if !self.link.is_empty() {
            for l in &self.link {
                berth_core::link::parse(l).map_err(|e| {
                    anyhow::anyhow!("invalid argument {l:?} for \"--link\" flag: {e}")
                })?;
            }
            body["HostConfig"]["Links"] = json!(self.link);
            // On a user-defined network the links are the endpoint's (as docker's CLI sends
            // them): the daemon ignores HostConfig.Links there.
            let mode = self.network.as_deref().unwrap_or("default");
            let builtin = matches!(mode, "default" | "bridge" | "host" | "none")
                || mode.starts_with("container:");
            if !builtin {
                endpoint.insert("Links".into(), json!(self.link));
            }
        }
        if !self.network_alias.is_empty() {
            endpoint.insert("Aliases".into(), json!(self.network_alias));
        }
        let mut ipam = serde_json::Map::new();
        if let Some(ip) = &self.ip {
            ipam.insert("IPv4Address".into(), ip.clone().into());
        }
        if let Some(ip6) = &self.ip6 {
            ipam.insert("IPv6Address".into(), ip6.clone().into());
        }
        if !ipam.is_empty() {
            endpoint.insert("IPAMConfig".into(), Value::Object(ipam));
        }
        if let Some(mac) = &self.mac_address {
            endpoint.insert("MacAddress".into(), mac.clone().into());
        }
        if !endpoint.is_empty() {
            let net = self.network.clone().unwrap_or_else(|| "default".into());
            body["NetworkingConfig"] = json!({"EndpointsConfig": {net: endpoint}});
        }
        if let Some(h) = self.healthcheck()? {
            body["Healthcheck"] = h;
        }
        if !anonymous.is_empty() {
            body["Volumes"] = Value::Object(
                anonymous
                    .iter()
                    .map(|p| ((*p).clone(), json!({})))
                    .collect(),
            );
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("100b").unwrap(), 100);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("12x").is_err());
    }

    /// The create body of `berth create ARGS… bb`.
    fn body_of(args: &[&str]) -> anyhow::Result<Value> {
        use clap::Parser;
        let argv = ["berth", "create"].iter().chain(args).chain(&["bb"]);
        match crate::Cli::try_parse_from(argv)?.command {
            crate::Command::Create(c) => c.create.body(true),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_flag_before_the_image_is_refused_after_it_is_the_commands() {
        use clap::Parser;
        let argv_of = |args: &[&str]| -> Result<Vec<String>, clap::Error> {
            match crate::Cli::try_parse_from(["berth", "run"].iter().chain(args))?.command {
                crate::Command::Run(r) => Ok(r.create.argv),
                other => panic!("{other:?}"),
            }
        };
        let e = argv_of(&["--bogus", "bb"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument, "{e}");
        assert_eq!(
            argv_of(&["--rm", "bb", "sh", "-c", "echo --x", "--rm"]).unwrap(),
            ["bb", "sh", "-c", "echo --x", "--rm"]
        );
        assert_eq!(argv_of(&["bb", "-l"]).unwrap(), ["bb", "-l"]);
        assert_eq!(argv_of(&["--", "bb", "--x"]).unwrap(), ["bb", "--x"]);
    }

    #[test]
    fn each_flag_reaches_its_field() {
        let b = body_of(&[
            "--pid",
            "host",
            "--ipc",
            "shareable",
            "--uts",
            "host",
            "--cgroupns",
            "private",
            "--userns",
            "host",
            "--cpuset-cpus",
            "0-1",
            "--cpuset-mems",
            "0",
            "--cpu-period",
            "100000",
            "--cpu-quota",
            "50000",
            "-c",
            "512",
            "--memory-reservation",
            "32m",
            "--memory-swappiness",
            "10",
            "--oom-kill-disable",
            "--oom-score-adj",
            "-500",
            "--shm-size",
            "8m",
            "--device",
            "/dev/null",
            "--device",
            "/dev/zero:/dev/z:r",
            "--device-cgroup-rule",
            "c 1:3 mr",
            "--group-add",
            "1234",
            "--group-add",
            "audio",
            "--runtime",
            "runc",
            "--isolation",
            "default",
            "--log-driver",
            "local",
            "--cidfile",
            "/tmp/x.cid",
            "--pids-limit",
            "-1",
            "--memory-swap",
            "-1",
        ])
        .unwrap();
        let h = &b["HostConfig"];
        for (key, want) in [
            ("PidMode", json!("host")),
            ("IpcMode", json!("shareable")),
            ("UTSMode", json!("host")),
            ("CgroupnsMode", json!("private")),
            ("UsernsMode", json!("host")),
            ("CpusetCpus", json!("0-1")),
            ("CpusetMems", json!("0")),
            ("CpuPeriod", json!(100000)),
            ("CpuQuota", json!(50000)),
            ("CpuShares", json!(512)),
            ("MemoryReservation", json!(32 << 20)),
            ("MemorySwappiness", json!(10)),
            ("MemorySwap", json!(-1)),
            ("OomKillDisable", json!(true)),
            ("OomScoreAdj", json!(-500)),
            ("ShmSize", json!(8 << 20)),
            ("DeviceCgroupRules", json!(["c 1:3 mr"])),
            ("GroupAdd", json!(["1234", "audio"])),
            ("Runtime", json!("runc")),
            ("Isolation", json!("default")),
            ("LogConfig", json!({"Type": "local", "Config": {}})),
            ("ContainerIDFile", json!("/tmp/x.cid")),
            ("PidsLimit", json!(-1)),
        ] {
            assert_eq!(h[key], want, "{key}");
        }
        assert_eq!(
            h["Devices"],
            json!([
                {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z", "CgroupPermissions": "r"},
            ])
        );
        // Without the flags: the docker CLI's zero values.
        let b = body_of(&[]).unwrap();
        let h = &b["HostConfig"];
        assert_eq!(h["MemorySwappiness"], -1);
        assert_eq!(h["OomKillDisable"], false);
        assert_eq!(h["GroupAdd"], Value::Null);
        assert_eq!(h["Devices"], json!([]));
        assert_eq!(h["LogConfig"]["Type"], "");
        assert!(h.get("Runtime").is_none() && h.get("Init").is_none());
        // Bad values: the docker CLI's words.
        let err = |args: &[&str]| format!("{:#}", body_of(args).unwrap_err());
        assert_eq!(
            err(&["--cpus", "x"]),
            r#"invalid argument "x" for "--cpus" flag: failed to parse x as a rational number"#
        );
        assert_eq!(err(&["--pid", "nope"]), "--pid: invalid PID mode");
        assert_eq!(
            err(&["--device", "/dev/null:/x:rx"]),
            "bad mode specified: rx"
        );
        assert!(err(&["--blkio-weight", "300"]).contains("--blkio-weight"));
    }

    #[test]
    fn capabilities_as_the_docker_cli_sends_them() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            normalized_caps(&v(&["sys_admin", "chown", "CAP_CHOWN", "all"])),
            v(&["ALL", "CAP_CHOWN", "CAP_SYS_ADMIN"])
        );
    }

    #[test]
    fn restart_and_ulimits() {
        assert_eq!(
            restart_policy("on-failure:3").unwrap(),
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert!(restart_policy("always:3").is_err());
        assert!(restart_policy("sometimes").is_err());
        assert_eq!(
            ulimit("nofile=10:20").unwrap(),
            json!({"Name": "nofile", "Soft": 10, "Hard": 20})
        );
        assert!(ulimit("nofile").is_err());
    }
}
