//! A service as the Engine's container create request: `Config`, `HostConfig` and
//! `NetworkingConfig`, mapped field by field the way Docker Compose v2 maps them (so a
//! container made by either tool looks the same to `docker inspect`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::{Project, Service, ServiceVolume};

/// What the create request needs beyond the service itself.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub project: &'a Project,
    pub service: &'a Service,
    pub container_name: &'a str,
    pub image: &'a str,
    pub labels: BTreeMap<String, String>,
    /// `network_mode`/`ipc`/`pid` `service:x` and `volumes_from` already resolved to
    /// container IDs.
    pub resolved: Resolved,
    /// One-off `run`: aliases are the container name only.
    pub oneoff: bool,
    /// `HostConfig.Links` (`container:alias`), from `links` and `external_links`.
    pub links: Vec<String>,
    /// `security_opt` with a `seccomp=<file>` replaced by the profile's JSON.
    pub security_opt: Vec<String>,
}

/// References to other services' containers, resolved to container IDs.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub network_mode: Option<String>,
    pub ipc: Option<String>,
    pub pid: Option<String>,
    pub volumes_from: Vec<String>,
}

fn nanos_or_null(d: Option<crate::model::Duration>) -> Value {
    match d {
        Some(d) if d.0 != 0 => json!(d.0),
        _ => Value::Null,
    }
}

/// `restart:` (or `deploy.restart_policy`, which wins) as the Engine's RestartPolicy.
pub fn restart_policy(s: &Service) -> Value {
    let map_name = |n: &str| match n {
        "no" | "none" => "no".to_owned(),
        "always" | "any" => "always".to_owned(),
        other => other.to_owned(),
    };
    if let Some(p) = s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()) {
        return json!({
            "Name": map_name(&p.condition),
            "MaximumRetryCount": p.max_attempts.unwrap_or(0),
        });
    }
    if s.restart.is_empty() {
        return json!({"Name": "", "MaximumRetryCount": 0});
    }
    let (name, count) = match s.restart.split_once(':') {
        Some((n, c)) => (n, c.parse::<i64>().unwrap_or(0)),
        None => (s.restart.as_str(), 0),
    };
    json!({"Name": map_name(name), "MaximumRetryCount": count})
}

/// NanoCPUs as Go computes them (in float32).
fn nano_cpus(cpus: f32) -> i64 {
    (cpus * 1e9_f32) as i64
}

/// The mounts of a service: short-syntax binds and plain named volumes as `Binds`, the
/// rest as `Mounts`, as v2 does.
fn mounts(t: &Target) -> (Vec<String>, Vec<Value>) {
    let mut binds = Vec::new();
    let mut mounts = Vec::new();
    for v in &t.service.volumes {
        volume_mount(t, v, &mut binds, &mut mounts);
    }
    // File-based secrets and configs are read-only binds.
    let used: Vec<String> = t.service.volumes.iter().map(|v| v.target.clone()).collect();
    for (refs, objects, default_dir) in [
        (&t.service.secrets, &t.project.secrets, "/run/secrets/"),
        (&t.service.configs, &t.project.configs, "/"),
    ] {
        for r in refs {
            let Some(obj) = objects.get(&r.source) else {
                continue;
            };
            if obj.file.is_empty() {
                continue;
            }
            let target = file_target(&r.target, &r.source, default_dir);
            if used.contains(&target) {
                continue;
            }
            mounts.push(json!({
                "Type": "bind",
                "Source": obj.file,
                "Target": target,
                "ReadOnly": true,
                "BindOptions": {},
            }));
        }
    }
    (binds, mounts)
}

/// Where a secret or config lands: its target (relative ones under the default
/// directory), else the default directory and its name.
pub fn file_target(target: &str, source: &str, default_dir: &str) -> String {
    if target.is_empty() {
        format!("{default_dir}{source}")
    } else if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("{default_dir}{target}")
    }
}

fn volume_mount(t: &Target, v: &ServiceVolume, binds: &mut Vec<String>, mounts: &mut Vec<Value>) {
    let mode = if v.read_only { "ro" } else { "rw" };
    match v.kind.as_str() {
        "bind" => {
            let simple = match &v.bind {
                None => true,
                Some(b) => b.create_host_path && b.propagation.is_empty() && b.recursive.is_empty(),
            };
            if simple {
                let mut s = format!("{}:{}:{mode}", v.source, v.target);
                if let Some(b) = &v.bind {
                    if !b.selinux.is_empty() {
                        s.push(',');
                        s.push_str(&b.selinux);
                    }
                }
                binds.push(s);
            } else {
                let b = v.bind.clone().unwrap_or_default();
                let mut opts = Map::new();
                if !b.propagation.is_empty() {
                    opts.insert("Propagation".into(), json!(b.propagation));
                }
                if b.create_host_path {
                    opts.insert("CreateMountpoint".into(), json!(true));
                }
                match b.recursive.as_str() {
                    "disabled" => {
                        opts.insert("NonRecursive".into(), json!(true));
                    }
                    "writable" => {
                        opts.insert("ReadOnlyNonRecursive".into(), json!(true));
                    }
                    "readonly" => {
                        opts.insert("ReadOnlyForceRecursive".into(), json!(true));
                    }
                    _ => {}
                }
                mounts.push(json!({
                    "Type": "bind",
                    "Source": v.source,
                    "Target": v.target,
                    "ReadOnly": v.read_only,
                    "Consistency": v.consistency,
                    "BindOptions": opts,
                }));
            }
        }
        "volume" => {
            let real = t
                .project
                .volumes
                .get(&v.source)
                .map(|vol| vol.name.clone())
                .unwrap_or_else(|| v.source.clone());
            let opts = v.volume.clone().unwrap_or_default();
            let plain = !v.source.is_empty()
                && opts.labels.is_empty()
                && opts.subpath.is_empty()
                && !opts.nocopy;
            if plain {
                binds.push(format!("{real}:{}:{mode}", v.target));
            } else {
                let mut vo = Map::new();
                if opts.nocopy {
                    vo.insert("NoCopy".into(), json!(true));
                }
                if !opts.subpath.is_empty() {
                    vo.insert("Subpath".into(), json!(opts.subpath));
                }
                if !opts.labels.is_empty() {
                    vo.insert("Labels".into(), json!(opts.labels));
                }
                let source = if v.source.is_empty() {
                    String::new()
                } else {
                    real
                };
                mounts.push(json!({
                    "Type": "volume",
                    "Source": source,
                    "Target": v.target,
                    "ReadOnly": v.read_only,
                    "VolumeOptions": vo,
                }));
            }
        }
        "tmpfs" => {
            let mut to = Map::new();
            if let Some(tmp) = &v.tmpfs {
                if tmp.size.0 != 0 {
                    to.insert("SizeBytes".into(), json!(tmp.size.0));
                }
                if tmp.mode != 0 {
                    to.insert("Mode".into(), json!(tmp.mode));
                }
            }
            mounts.push(json!({
                "Type": "tmpfs",
                "Target": v.target,
                "ReadOnly": v.read_only,
                "TmpfsOptions": to,
            }));
        }
        other => mounts.push(json!({
            "Type": other,
            "Source": v.source,
            "Target": v.target,
            "ReadOnly": v.read_only,
        })),
    }
}

/// `gpus` and `deploy.resources.reservations.devices` as the Engine's DeviceRequests.
fn device_requests(s: &Service) -> Vec<Value> {
    let request = |d: &crate::model::DeviceRequest, gpu: bool| {
        let mut caps = d.capabilities.clone();
        if gpu && !caps.iter().any(|c| c == "gpu") {
            caps.push("gpu".into());
        }
        json!({
            "Driver": d.driver,
            "Count": d.count,
            "DeviceIDs": d.device_ids,
            "Capabilities": [caps],
            "Options": d.options,
        })
    };
    let mut out: Vec<Value> = s.gpus.iter().map(|d| request(d, true)).collect();
    if let Some(r) = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.reservations.as_ref())
    {
        out.extend(r.devices.iter().map(|d| request(d, false)));
    }
    out
}

/// The networks of a service by priority (highest first, then by name).
pub fn networks_by_priority(s: &Service) -> Vec<String> {
    let mut nets: Vec<(&String, i64)> = s
        .networks
        .iter()
        .map(|(k, v)| (k, v.as_ref().map_or(0, |n| n.priority)))
        .collect();
    nets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    nets.into_iter().map(|(k, _)| k.clone()).collect()
}

/// The endpoint settings of every network the container joins, keyed by real name.
pub fn endpoints(t: &Target) -> Map<String, Value> {
    let mut out = Map::new();
    for key in networks_by_priority(t.service) {
        let real = t
            .project
            .networks
            .get(&key)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| key.clone());
        let cfg = t.service.networks.get(&key).cloned().flatten();
        let mut aliases = vec![t.container_name.to_owned()];
        if !t.oneoff {
            aliases.push(t.service.name.clone());
            if let Some(c) = &cfg {
                aliases.extend(c.aliases.iter().cloned());
            }
        }
        let mut ep = Map::new();
        ep.insert("Aliases".into(), json!(aliases));
        if !t.links.is_empty() {
            ep.insert("Links".into(), json!(t.links));
        }
        if out.is_empty() && !t.service.mac_address.is_empty() {
            ep.insert("MacAddress".into(), json!(t.service.mac_address));
        }
        if let Some(c) = &cfg {
            if !c.ipv4_address.is_empty()
                || !c.ipv6_address.is_empty()
                || !c.link_local_ips.is_empty()
            {
                ep.insert(
                    "IPAMConfig".into(),
                    json!({
                        "IPv4Address": c.ipv4_address,
                        "IPv6Address": c.ipv6_address,
                        "LinkLocalIPs": c.link_local_ips,
                    }),
                );
            }
            if !c.mac_address.is_empty() {
                ep.insert("MacAddress".into(), json!(c.mac_address));
            }
            if !c.driver_opts.is_empty() {
                ep.insert("DriverOpts".into(), json!(c.driver_opts));
            }
            if c.gw_priority != 0 {
                ep.insert("GwPriority".into(), json!(c.gw_priority));
            }
        }
        out.insert(real, Value::Object(ep));
    }
    out
}

/// The whole create request.
pub fn create_request(t: &Target) -> Value {
    let s = t.service;
    let mut exposed = Map::new();
    for e in &s.expose {
        exposed.insert(e.clone(), json!({}));
    }
    let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in &s.ports {
        let key = format!(
            "{}/{}",
            p.target,
            if p.protocol.is_empty() {
                "tcp"
            } else {
                &p.protocol
            }
        );
        exposed.insert(key.clone(), json!({}));
        bindings
            .entry(key)
            .or_default()
            .push(json!({"HostIp": p.host_ip, "HostPort": p.published}));
    }
    let env: Vec<String> = s
        .environment
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    let healthcheck = s.healthcheck.as_ref().map(|h| {
        let test = if h.disable {
            vec!["NONE".to_owned()]
        } else {
            h.test.clone()
        };
        let mut m = Map::new();
        m.insert("Test".into(), json!(test));
        for (k, d) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
        ] {
            let v = nanos_or_null(d);
            if !v.is_null() {
                m.insert(k.into(), v);
            }
        }
        if let Some(r) = h.retries {
            m.insert("Retries".into(), json!(r));
        }
        Value::Object(m)
    });
    let (binds, mount_list) = mounts(t);
    let tmpfs: Map<String, Value> = s
        .tmpfs
        .iter()
        .map(|t| match t.split_once(':') {
            Some((p, o)) => (p.to_owned(), json!(o)),
            None => (t.clone(), json!("")),
        })
        .collect();
    let ulimits: Vec<Value> = s
        .ulimits
        .iter()
        .map(|(name, u)| {
            let (soft, hard) = u.soft_hard();
            json!({"Name": name, "Soft": soft, "Hard": hard})
        })
        .collect();
    let extra_hosts: Vec<String> = s
        .extra_hosts
        .iter()
        .map(|h| h.replacen('=', ":", 1))
        .collect();
    let devices: Vec<Value> = s
        .devices
        .iter()
        .map(|d| {
            json!({
                "PathOnHost": d.source,
                "PathInContainer": d.target,
                "CgroupPermissions": if d.permissions.is_empty() { "rwm" } else { d.permissions.as_str() },
            })
        })
        .collect();

    let mut memory = s.mem_limit.0;
    let mut nano = if s.cpus != 0.0 { nano_cpus(s.cpus) } else { 0 };
    let mut pids = s.pids_limit;
    let mut reservation = s.mem_reservation.0;
    if let Some(r) = s.deploy.as_ref().map(|d| &d.resources) {
        if let Some(l) = &r.limits {
            if l.memory.0 != 0 {
                memory = l.memory.0;
            }
            if let Some(c) = l.cpus.filter(|c| *c != 0.0) {
                nano = nano_cpus(c);
            }
            if l.pids > 0 {
                pids = l.pids;
            }
        }
        if let Some(res) = &r.reservations {
            if res.memory.0 != 0 {
                reservation = res.memory.0;
            }
        }
    }

    let network_mode = if let Some(m) = &t.resolved.network_mode {
        m.clone()
    } else if !s.network_mode.is_empty() {
        s.network_mode.clone()
    } else if let Some(primary) = networks_by_priority(s).first() {
        t.project
            .networks
            .get(primary)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| primary.clone())
    } else {
        "none".into()
    };
    let uses_networks = t.resolved.network_mode.is_none() && s.network_mode.is_empty();

    let mut host = Map::new();
    let mut put = |k: &str, v: Value| {
        host.insert(k.into(), v);
    };
    put("Binds", json!(binds));
    put("Mounts", json!(mount_list));
    put("NetworkMode", json!(network_mode));
    put("PortBindings", json!(bindings));
    put("RestartPolicy", restart_policy(s));
    put("AutoRemove", json!(false));
    put("CapAdd", json!(s.cap_add));
    put("CapDrop", json!(s.cap_drop));
    put("Dns", json!(s.dns));
    put("DnsOptions", json!(s.dns_opt));
    put("DnsSearch", json!(s.dns_search));
    put("ExtraHosts", json!(extra_hosts));
    put("GroupAdd", json!(s.group_add));
    put(
        "IpcMode",
        json!(t.resolved.ipc.clone().unwrap_or_else(|| s.ipc.clone())),
    );
    put(
        "PidMode",
        json!(t.resolved.pid.clone().unwrap_or_else(|| s.pid.clone())),
    );
    put("Privileged", json!(s.privileged));
    put("ReadonlyRootfs", json!(s.read_only));
    put("SecurityOpt", json!(t.security_opt));
    put("Tmpfs", json!(tmpfs));
    put("UTSMode", json!(s.uts));
    put("UsernsMode", json!(s.userns_mode));
    put("CgroupnsMode", json!(s.cgroup));
    put("ShmSize", json!(s.shm_size.0));
    put("Sysctls", json!(s.sysctls));
    put("Runtime", json!(s.runtime));
    put("Isolation", json!(s.isolation));
    put("VolumesFrom", json!(t.resolved.volumes_from));
    put("VolumeDriver", json!(s.volume_driver));
    put("OomScoreAdj", json!(s.oom_score_adj));
    put("Annotations", json!(s.annotations));
    put("StorageOpt", json!(s.storage_opt));
    if let Some(i) = s.init {
        put("Init", json!(i));
    }
    if let Some(l) = &s.logging {
        put("LogConfig", json!({"Type": l.driver, "Config": l.options}));
    }
    // Resources.
    put("CgroupParent", json!(s.cgroup_parent));
    put("Memory", json!(memory));
    put("MemorySwap", json!(s.memswap_limit.0));
    put("MemoryReservation", json!(reservation));
    if s.mem_swappiness.0 != 0 {
        put("MemorySwappiness", json!(s.mem_swappiness.0));
    }
    put("OomKillDisable", json!(s.oom_kill_disable));
    put("NanoCpus", json!(nano));
    put("CpuShares", json!(s.cpu_shares));
    put("CpuPeriod", json!(s.cpu_period));
    put("CpuQuota", json!(s.cpu_quota));
    put("CpuRealtimePeriod", json!(s.cpu_rt_period));
    put("CpuRealtimeRuntime", json!(s.cpu_rt_runtime));
    put("CpuCount", json!(s.cpu_count));
    put("CpuPercent", json!((s.cpu_percent * 100.0) as i64));
    put("CpusetCpus", json!(s.cpuset));
    put("DeviceCgroupRules", json!(s.device_cgroup_rules));
    put("Devices", json!(devices));
    if pids != 0 {
        put("PidsLimit", json!(pids));
    }
    put("Ulimits", json!(ulimits));
    if let Some(b) = &s.blkio_config {
        put("BlkioWeight", json!(b.weight));
        put(
            "BlkioWeightDevice",
            json!(b
                .weight_device
                .iter()
                .map(|w| json!({"Path": w.path, "Weight": w.weight}))
                .collect::<Vec<_>>()),
        );
        for (key, list) in [
            ("BlkioDeviceReadBps", &b.device_read_bps),
            ("BlkioDeviceReadIOps", &b.device_read_iops),
            ("BlkioDeviceWriteBps", &b.device_write_bps),
            ("BlkioDeviceWriteIOps", &b.device_write_iops),
        ] {
            put(
                key,
                json!(list
                    .iter()
                    .map(|t| json!({"Path": t.path, "Rate": t.rate.0}))
                    .collect::<Vec<_>>()),
            );
        }
    }
    let requests = device_requests(s);
    if !requests.is_empty() {
        put("DeviceRequests", json!(requests));
    }
    put("Links", json!(t.links));

    let mut body = Map::new();
    let mut put = |k: &str, v: Value| {
        body.insert(k.into(), v);
    };
    put("Hostname", json!(s.hostname));
    put("Domainname", json!(s.domainname));
    put("User", json!(s.user));
    put("AttachStdin", json!(false));
    put("AttachStdout", json!(true));
    put("AttachStderr", json!(true));
    put("ExposedPorts", Value::Object(exposed));
    put("Tty", json!(s.tty));
    put("OpenStdin", json!(s.stdin_open));
    put("StdinOnce", json!(false));
    put("Env", json!(env));
    if let Some(c) = &s.command {
        put("Cmd", json!(c));
    }
    if let Some(e) = &s.entrypoint {
        put("Entrypoint", json!(e));
    }
    if let Some(h) = healthcheck {
        put("Healthcheck", h);
    }
    put("Image", json!(t.image));
    put("WorkingDir", json!(s.working_dir));
    put("Labels", json!(t.labels));
    if !s.stop_signal.is_empty() {
        put("StopSignal", json!(s.stop_signal));
    }
    if let Some(g) = s.stop_grace_period {
        put("StopTimeout", json!(g.0 / 1_000_000_000));
    }
    put("HostConfig", Value::Object(host));
    if uses_networks {
        put("NetworkingConfig", json!({"EndpointsConfig": endpoints(t)}));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Network, Port, ServiceNetwork, Volume, VolumeBind};

    fn project() -> Project {
        let mut p = Project {
            name: "p".into(),
            ..Default::default()
        };
        p.networks.insert(
            "default".into(),
            Network {
                name: "p_default".into(),
                ..Default::default()
            },
        );
        p.volumes.insert(
            "data".into(),
            Volume {
                name: "p_data".into(),
                ..Default::default()
            },
        );
        p
    }

    #[test]
    fn a_service_becomes_the_request_v2_sends() {
        let p = project();
        let s = Service {
            name: "web".into(),
            image: "busybox".into(),
            command: Some(vec!["httpd".into(), "-f".into()]),
            environment: [("A".into(), Some("1".into())), ("B".into(), None)].into(),
            ports: vec![Port {
                mode: "ingress".into(),
                target: 80,
                published: "8080".into(),
                protocol: "tcp".into(),
                ..Default::default()
            }],
            volumes: vec![
                ServiceVolume {
                    kind: "volume".into(),
                    source: "data".into(),
                    target: "/data".into(),
                    volume: Some(Default::default()),
                    ..Default::default()
                },
                ServiceVolume {
                    kind: "bind".into(),
                    source: "/srv".into(),
                    target: "/srv".into(),
                    read_only: true,
                    bind: Some(VolumeBind {
                        create_host_path: true,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            networks: [(
                "default".into(),
                Some(ServiceNetwork {
                    aliases: vec!["www".into()],
                    ..Default::default()
                }),
            )]
            .into(),
            restart: "on-failure:3".into(),
            stop_grace_period: Some(crate::model::Duration(90_000_000_000)),
            ..Default::default()
        };
        let t = Target {
            project: &p,
            service: &s,
            container_name: "p-web-1",
            image: "busybox",
            labels: BTreeMap::new(),
            resolved: Resolved::default(),
            oneoff: false,
            links: Vec::new(),
            security_opt: Vec::new(),
        };
        let r = create_request(&t);
        assert_eq!(r["Cmd"], json!(["httpd", "-f"]));
        assert_eq!(r["Env"], json!(["A=1", "B"]));
        assert_eq!(r["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(r["StopTimeout"], 90);
        let h = &r["HostConfig"];
        assert_eq!(h["PortBindings"]["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(h["Binds"], json!(["p_data:/data:rw", "/srv:/srv:ro"]));
        assert_eq!(h["NetworkMode"], "p_default");
        assert_eq!(
            h["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(
            r["NetworkingConfig"]["EndpointsConfig"]["p_default"]["Aliases"],
            json!(["p-web-1", "web", "www"])
        );
        assert!(r.get("Entrypoint").is_none());
    }

    #[test]
    fn float32_cpus_as_go_computes_them() {
        assert_eq!(nano_cpus(0.5), 500_000_000);
        assert_eq!(nano_cpus(1.5), 1_500_000_000);
    }
}
