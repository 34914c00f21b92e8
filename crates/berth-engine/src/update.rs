//! `docker update`: new memory, CPU and pids limits and a new restart policy. A running
//! container gets them in its cgroup at once, through `berth-runtime update --resources -`
//! (the runtime owns the cgroup; the engine only reads it, for `stats`); every container keeps
//! them in its record, so the next start builds its spec with them. Both happen under the
//! container's lock, and the record is replaced atomically (a new file renamed over the old
//! one).

use std::io::Write;
use std::process::Stdio;

use crate::error::EngineError;
use bollard_stubs::models::ContainerUpdateBody;
use serde_json::{json, Map, Value};

use crate::cgroups::{self, Cgroup};
use crate::container::record::{Record, RestartPolicy};
use crate::Engine;

/// The CFS period berth's specs use (Docker's default).
const PERIOD: u64 = 100_000;

/// The settings an update can change, as the record holds them (in its HostConfig and
/// restart policy).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Host {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub pids_limit: Option<i64>,
    pub auto_remove: bool,
    /// The restart policy's name and retry count.
    pub restart: String,
    pub restart_max: i64,
}

impl Host {
    fn of(rec: &Record) -> Host {
        let hc = &rec.host_config;
        let set = |n: Option<i64>| n.filter(|n| *n != 0);
        let (restart, restart_max) = rec.restart.name_and_max();
        Host {
            memory: set(hc.memory),
            memory_swap: set(hc.memory_swap),
            nano_cpus: set(hc.nano_cpus),
            cpu_shares: set(hc.cpu_shares).map(|n| n as u64),
            pids_limit: set(hc.pids_limit),
            auto_remove: rec.auto_remove(),
            restart: restart.to_owned(),
            restart_max,
        }
    }

    /// Puts these settings into `rec` (HostConfig and restart policy), as inspect shows them.
    fn store_in(&self, rec: &mut Record) -> crate::error::Result<()> {
        let hc = &mut rec.host_config;
        hc.memory = self.memory;
        hc.memory_swap = self.memory_swap;
        hc.nano_cpus = self.nano_cpus;
        hc.cpu_shares = self.cpu_shares.map(|n| n as i64);
        hc.pids_limit = self.pids_limit;
        if self.nano_cpus.is_some() {
            // berth keeps CPU limits as a number of CPUs.
            hc.cpu_quota = None;
            hc.cpu_period = None;
        }
        rec.restart = RestartPolicy::parse(&self.restart, self.restart_max)
            .map_err(crate::error::EngineError::invalid)?;
        rec.host_config.restart_policy = rec.restart.to_api();
        Ok(())
    }
}

/// What an update request asks for; `None` leaves a setting as it is (Docker sends zero for
/// "no change" in most fields, and `null` for `PidsLimit`).
#[derive(Debug, Clone, Default, PartialEq)]
struct Request {
    memory: Option<i64>,
    memory_swap: Option<i64>,
    nano_cpus: Option<i64>,
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    cpu_shares: Option<i64>,
    pids_limit: Option<i64>,
    /// Policy name and maximum retry count.
    restart: Option<(String, i64)>,
}

/// The settings of Docker's update request that berth cannot apply yet, named as Docker
/// names them, when `body` sets them: refused, never silently dropped.
fn unsupported(body: &ContainerUpdateBody) -> Option<&'static str> {
    fn some_list<T>(l: &Option<Vec<T>>) -> bool {
        l.as_ref().is_some_and(|l| !l.is_empty())
    }
    let some_text = |t: &Option<String>| t.as_ref().is_some_and(|t| !t.is_empty());
    let some_number = |n: Option<i64>| n.is_some_and(|n| n != 0);
    [
        ("BlkioWeight", body.blkio_weight.is_some_and(|w| w != 0)),
        ("BlkioWeightDevice", some_list(&body.blkio_weight_device)),
        ("BlkioDeviceReadBps", some_list(&body.blkio_device_read_bps)),
        (
            "BlkioDeviceWriteBps",
            some_list(&body.blkio_device_write_bps),
        ),
        (
            "BlkioDeviceReadIOps",
            some_list(&body.blkio_device_read_iops),
        ),
        (
            "BlkioDeviceWriteIOps",
            some_list(&body.blkio_device_write_iops),
        ),
        ("CpusetCpus", some_text(&body.cpuset_cpus)),
        ("CpusetMems", some_text(&body.cpuset_mems)),
        ("CpuRealtimePeriod", some_number(body.cpu_realtime_period)),
        ("CpuRealtimeRuntime", some_number(body.cpu_realtime_runtime)),
        ("MemoryReservation", some_number(body.memory_reservation)),
        ("Devices", some_list(&body.devices)),
    ]
    .into_iter()
    .find(|(_, set)| *set)
    .map(|(name, _)| name)
}

impl Request {
    fn parse(body: &ContainerUpdateBody) -> Result<Request, EngineError> {
        if let Some(key) = unsupported(body) {
            return Err(EngineError::invalid(format!(
                "updating {key} is not supported by this berth version"
            )));
        }
        let restart = body.restart_policy.as_ref().and_then(|p| {
            let name = p.name.map(|n| n.to_string()).unwrap_or_default();
            (!name.is_empty()).then(|| (name, p.maximum_retry_count.unwrap_or(0)))
        });
        let set = |n: Option<i64>| n.filter(|n| *n != 0);
        Ok(Request {
            memory: set(body.memory),
            memory_swap: set(body.memory_swap),
            nano_cpus: set(body.nano_cpus),
            cpu_quota: set(body.cpu_quota),
            cpu_period: set(body.cpu_period),
            cpu_shares: set(body.cpu_shares),
            // null: no change; 0 or -1: no limit.
            pids_limit: body.pids_limit,
            restart,
        })
    }

    /// `host` with the request applied, or Docker's error for a request it refuses.
    fn apply_to(&self, host: &Host, ncpu: i64) -> Result<Host, EngineError> {
        let bad = |m: &str| Err(EngineError::invalid(m));
        let mut h = host.clone();
        if let Some(m) = self.memory {
            if m < 6 * 1024 * 1024 {
                return bad("Minimum memory limit allowed is 6MB");
            }
            if self.memory_swap.is_none() && host.memory_swap.is_some_and(|s| s > 0 && m > s) {
                return bad("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
            }
            h.memory = Some(m);
        }
        if let Some(s) = self.memory_swap {
            let Some(m) = h.memory else {
                return bad(
                    "You should always set the Memory limit when using Memoryswap limit, see usage",
                );
            };
            if s > 0 && s < m {
                return bad(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                );
            }
            h.memory_swap = Some(s);
        }
        if self.nano_cpus.is_some() && self.cpu_period.is_some() {
            return bad("Conflicting options: Nano CPUs and CPU Period cannot both be set");
        }
        if self.nano_cpus.is_some() && self.cpu_quota.is_some() {
            return bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
        }
        if let Some(n) = self.nano_cpus {
            if n < 10_000_000 || n > ncpu * 1_000_000_000 {
                return Err(EngineError::invalid(format!(
                    "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
                )));
            }
            h.nano_cpus = Some(n);
        }
        if self.cpu_quota.is_some() || self.cpu_period.is_some() {
            let (quota, period) = self.quota_period(host);
            if quota > 0 && quota < 1000 {
                return bad("CPU cfs quota can not be less than 1ms (i.e. 1000)");
            }
            if !(1000..=1_000_000).contains(&period) {
                return bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)");
            }
            // berth keeps CPU limits as a number of CPUs (quota / period).
            h.nano_cpus = (quota > 0).then(|| quota * 1_000_000_000 / period as i64);
        }
        if let Some(s) = self.cpu_shares {
            if s < 0 {
                return bad("invalid CPU shares: must not be negative");
            }
            h.cpu_shares = Some(s as u64);
        }
        if let Some(p) = self.pids_limit {
            h.pids_limit = (p > 0).then_some(p);
        }
        if let Some((name, max)) = &self.restart {
            if host.auto_remove {
                return bad(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container",
                );
            }
            match name.as_str() {
                "no" | "always" | "unless-stopped" if *max != 0 => {
                    return bad("invalid restart policy: maximum retry count can only be used with 'on-failure'")
                }
                "on-failure" if *max < 0 => {
                    return bad("invalid restart policy: maximum retry count cannot be negative")
                }
                "no" | "always" | "unless-stopped" | "on-failure" => {}
                other => {
                    return Err(EngineError::invalid(format!(
                        "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                    )))
                }
            }
            h.restart = name.clone();
            h.restart_max = *max;
        }
        Ok(h)
    }

    /// The CFS quota (-1: none) and period the request sets, the unset one taken from what
    /// the container has.
    fn quota_period(&self, host: &Host) -> (i64, u64) {
        let period = self.cpu_period.unwrap_or(PERIOD as i64).max(0) as u64;
        let quota = match self.cpu_quota {
            Some(q) => q.max(-1),
            None => host
                .nano_cpus
                .map_or(-1, |n| n * period as i64 / 1_000_000_000),
        };
        (quota, period)
    }

    /// What to write into a running container's cgroup for the updated `new` record.
    fn limits(&self, new: &Host) -> Limits {
        let mut l = Limits::default();
        if self.memory.is_some() || self.memory_swap.is_some() {
            l.memory = new.memory;
            // As the spec has it at start: without an explicit value, as much swap as memory.
            l.memory_swap = new
                .memory_swap
                .or(new.memory.map(|m| m * 2))
                .filter(|_| berth_oci::host::swap_accounting());
        }
        if self.nano_cpus.is_some() {
            l.cpu_quota = Some((
                new.nano_cpus
                    .map_or(-1, |n| n * PERIOD as i64 / 1_000_000_000),
                PERIOD,
            ));
        } else if self.cpu_quota.is_some() || self.cpu_period.is_some() {
            l.cpu_quota = Some(self.quota_period(new));
        }
        if self.cpu_shares.is_some() {
            l.cpu_shares = new.cpu_shares;
        }
        if self.pids_limit.is_some() {
            l.pids = Some(new.pids_limit.unwrap_or(-1));
        }
        l
    }
}

/// New limits for a running container; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Limits {
    /// Bytes; -1 for no limit.
    memory: Option<i64>,
    /// Memory plus swap in bytes; -1 for unlimited swap.
    memory_swap: Option<i64>,
    /// CFS quota and period in microseconds; a quota of -1 for no limit.
    cpu_quota: Option<(i64, u64)>,
    /// Docker's CPU shares (relative weight, 2..262144).
    cpu_shares: Option<u64>,
    /// Most processes; -1 for no limit.
    pids: Option<i64>,
}

impl Limits {
    /// The OCI `LinuxResources` document `berth-runtime update --resources` takes (runc's:
    /// what is absent stays as it is).
    fn to_resources(&self) -> Value {
        let mut r = Map::new();
        let mut memory = Map::new();
        if let Some(m) = self.memory {
            memory.insert("limit".into(), json!(m));
        }
        if let Some(s) = self.memory_swap {
            memory.insert("swap".into(), json!(s));
        }
        if !memory.is_empty() {
            r.insert("memory".into(), Value::Object(memory));
        }
        let mut cpu = Map::new();
        if let Some((quota, period)) = self.cpu_quota {
            cpu.insert("quota".into(), json!(quota));
            cpu.insert("period".into(), json!(period));
        }
        if let Some(shares) = self.cpu_shares {
            cpu.insert("shares".into(), json!(shares));
        }
        if !cpu.is_empty() {
            r.insert("cpu".into(), Value::Object(cpu));
        }
        if let Some(p) = self.pids {
            r.insert("pids".into(), json!({ "limit": p }));
        }
        Value::Object(r)
    }
}

/// The limits `host` gives, for the settings `l` touches (to put back after a failure).
fn previous(l: &Limits, host: &Host) -> Limits {
    Limits {
        memory: l.memory.map(|_| host.memory.unwrap_or(-1)),
        memory_swap: l.memory_swap.map(|_| {
            host.memory_swap
                .or(host.memory.map(|m| m * 2))
                .unwrap_or(-1)
        }),
        cpu_quota: l.cpu_quota.map(|_| {
            (
                host.nano_cpus
                    .map_or(-1, |n| n * PERIOD as i64 / 1_000_000_000),
                PERIOD,
            )
        }),
        cpu_shares: l.cpu_shares.map(|_| host.cpu_shares.unwrap_or(1024)),
        pids: l.pids.map(|_| host.pids_limit.unwrap_or(-1)),
    }
}

/// Docker-like bytes for messages ("64MiB").
fn mib(n: u64) -> String {
    format!("{:.1}MiB", n as f64 / 1048576.0).replace(".0MiB", "MiB")
}

impl Engine {
    /// `berth-runtime update --resources - ID` with `limits`; the runtime's one-line error.
    fn runtime_update(&self, id: &str, limits: &Limits) -> Result<(), String> {
        let mut child = self
            .runtime()
            .args(["update", "--resources", "-", id])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("run berth-runtime: {e}"))?;
        let document = limits.to_resources().to_string();
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(document.as_bytes())
                .map_err(|e| format!("send the limits to berth-runtime: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("run berth-runtime: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr);
        let text = text.trim();
        Err(text
            .strip_prefix("berth-runtime: ")
            .unwrap_or(text)
            .to_owned())
    }

    /// `POST /containers/{id}/update`.
    pub(crate) fn update_resources(
        &self,
        key: &str,
        body: &ContainerUpdateBody,
    ) -> Result<Vec<String>, EngineError> {
        let req = Request::parse(body)?;
        if self.rootless().is_some() {
            // The update body's limits have the HostConfig's names.
            let as_host: bollard_stubs::models::HostConfig = serde_json::to_value(body)
                .and_then(serde_json::from_value)
                .unwrap_or_default();
            crate::rootless::check_limits(self.rootless(), &as_host)?;
        }
        let id = self.find(key)?.id.clone();
        let lock = self.container_lock(&id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Read again under the lock: this is the record the next start will use.
        let rec = self.find(&id)?;
        let current = Host::of(&rec);
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        let host = req.apply_to(&current, ncpu)?;
        let st = self.refresh(&id);
        let mut applied = None;
        if st.running() {
            let limits = req.limits(&host);
            if limits != Limits::default() {
                // The runtime puts back what it changed when the kernel refuses a write.
                if let Err(e) = self.runtime_update(&id, &limits) {
                    // The usual refusal: a memory limit below what the container holds, which
                    // the kernel could not reclaim (v1 refuses; v2 would kill instead).
                    let usage = Cgroup::of_pid(st.pid).and_then(|cg| cgroups::memory_usage(&cg));
                    if let (Some(limit), Some(usage)) = (limits.memory.filter(|m| *m > 0), usage) {
                        if usage >= limit as u64 {
                            return Err(EngineError::internal(format!(
                                "Cannot update container {id}: the memory limit {} is below what the container uses now ({}), and the kernel could not reclaim enough: {e}",
                                mib(limit as u64),
                                mib(usage)
                            )));
                        }
                    }
                    return Err(EngineError::internal(format!(
                        "Cannot update container {id}: {e}"
                    )));
                }
                applied = Some(limits);
            }
        }
        let stored = self.containers.update(&id, |r| host.store_in(r));
        let rec = match stored {
            Ok((rec, ())) => rec,
            Err(e) => {
                if let Some(limits) = applied {
                    let _ = self.runtime_update(&id, &previous(&limits, &current));
                }
                return Err(EngineError::internal(format!(
                    "Cannot update container {id}: write its record: {e}"
                )));
            }
        };
        self.container_event(&rec, "update", &[]);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: Value) -> Request {
        Request::parse(&serde_json::from_value(body).unwrap()).unwrap()
    }

    #[test]
    fn parses_what_the_docker_cli_sends() {
        // The CLI sends every field, zero for "no change".
        let body = json!({"BlkioWeight": 0, "CpuShares": 0, "Memory": 104857600, "MemorySwap": 0,
            "NanoCpus": 0, "CpuQuota": 0, "CpusetCpus": "", "PidsLimit": null, "Devices": null,
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}});
        assert_eq!(
            req(body),
            Request {
                memory: Some(104_857_600),
                ..Default::default()
            }
        );
        let body = json!({"PidsLimit": 0, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}});
        assert_eq!(
            req(body),
            Request {
                pids_limit: Some(0),
                restart: Some(("on-failure".into(), 3)),
                ..Default::default()
            }
        );
        let e = Request::parse(&serde_json::from_value(json!({"CpusetCpus": "0-1"})).unwrap())
            .unwrap_err();
        assert!(e.message().contains("CpusetCpus"), "{}", e.message());
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let host = Host {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            ..Default::default()
        };
        let err = |r: Request| r.apply_to(&host, 2).unwrap_err().to_string();
        assert_eq!(
            err(Request {
                memory: Some(1 << 20),
                ..Default::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert!(err(Request {
            memory: Some(256 << 20),
            ..Default::default()
        })
        .starts_with("Memory limit should be smaller than already set memoryswap limit"));
        assert!(err(Request {
            memory: Some(256 << 20),
            memory_swap: Some(100 << 20),
            ..Default::default()
        })
        .starts_with("Minimum memoryswap limit should be larger"));
        assert_eq!(
            err(Request {
                nano_cpus: Some(3_000_000_000),
                ..Default::default()
            }),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert!(err(Request {
            nano_cpus: Some(1_000_000_000),
            cpu_quota: Some(50_000),
            ..Default::default()
        })
        .starts_with("Conflicting options"));
        assert!(err(Request {
            restart: Some(("sometimes".into(), 0)),
            ..Default::default()
        })
        .contains("unknown policy 'sometimes'"));
        let auto = Host {
            auto_remove: true,
            ..Default::default()
        };
        let e = Request {
            restart: Some(("always".into(), 0)),
            ..Default::default()
        }
        .apply_to(&auto, 2)
        .unwrap_err();
        assert!(e.message().contains("AutoRemove"));
        let none = Host::default();
        let e = Request {
            memory_swap: Some(1 << 30),
            ..Default::default()
        }
        .apply_to(&none, 2)
        .unwrap_err();
        assert!(e
            .message()
            .starts_with("You should always set the Memory limit"));
    }

    #[test]
    fn records_and_writes_the_new_limits() {
        let host = Host {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            ..Default::default()
        };
        let r = Request {
            memory: Some(32 << 20),
            pids_limit: Some(-1),
            cpu_shares: Some(512),
            ..Default::default()
        };
        let new = r.apply_to(&host, 2).unwrap();
        assert_eq!(new.memory, Some(32 << 20));
        assert_eq!(new.pids_limit, None);
        assert_eq!(new.cpu_shares, Some(512));
        assert_eq!(new.nano_cpus, Some(500_000_000), "untouched");
        let l = r.limits(&new);
        assert_eq!(l.memory, Some(32 << 20));
        assert_eq!(l.pids, Some(-1));
        assert_eq!(l.cpu_quota, None);
        // Quota and period become a number of CPUs in the record, and go to the cgroup as given.
        let r = Request {
            cpu_quota: Some(150_000),
            cpu_period: Some(200_000),
            ..Default::default()
        };
        let new = r.apply_to(&host, 2).unwrap();
        assert_eq!(new.nano_cpus, Some(750_000_000));
        assert_eq!(r.limits(&new).cpu_quota, Some((150_000, 200_000)));
        let r = Request {
            nano_cpus: Some(1_500_000_000),
            ..Default::default()
        };
        assert_eq!(
            r.limits(&r.apply_to(&host, 2).unwrap()).cpu_quota,
            Some((150_000, PERIOD))
        );
        let r = Request {
            cpu_quota: Some(-1),
            ..Default::default()
        };
        let new = r.apply_to(&host, 2).unwrap();
        assert_eq!(new.nano_cpus, None);
        assert_eq!(r.limits(&new).cpu_quota, Some((-1, PERIOD)));
        let r = Request {
            restart: Some(("on-failure".into(), 2)),
            ..Default::default()
        };
        let new = r.apply_to(&host, 2).unwrap();
        assert_eq!((new.restart.as_str(), new.restart_max), ("on-failure", 2));
        assert_eq!(
            r.limits(&new),
            Limits::default(),
            "a policy is the record's only"
        );
    }

    #[test]
    fn limits_go_to_the_runtime_as_oci_resources() {
        let l = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(-1),
            cpu_quota: Some((-1, PERIOD)),
            cpu_shares: Some(512),
            pids: Some(-1),
        };
        assert_eq!(
            l.to_resources(),
            json!({
                "memory": {"limit": 64 << 20, "swap": -1},
                "cpu": {"quota": -1, "period": 100_000, "shares": 512},
                "pids": {"limit": -1}
            })
        );
        let only_pids = Limits {
            pids: Some(30),
            ..Default::default()
        };
        assert_eq!(only_pids.to_resources(), json!({"pids": {"limit": 30}}));
    }
}
