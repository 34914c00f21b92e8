//! `docker update`: new memory, CPU and pids limits and a new restart policy. A running
//! container gets them in its cgroup at once; every container keeps them in its record, so
//! the next start builds its spec with them. Both happen under the container's lock, and the
//! record is replaced atomically (a new file renamed over the old one).

use berth_api::ApiError;
use serde_json::Value;

use crate::cgroups::{self, Cgroup, Limits};
use crate::containers::Host;
use crate::Engine;

/// The CFS period berth's specs use (Docker's default).
const PERIOD: u64 = 100_000;

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

/// Fields of Docker's update request that berth cannot apply yet: refused when set, never
/// silently dropped.
const UNSUPPORTED: [&str; 14] = [
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpusetCpus",
    "CpusetMems",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "MemoryReservation",
    "KernelMemory",
    "KernelMemoryTCP",
    "Devices",
];

fn set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn number(body: &Value, key: &str) -> Result<Option<i64>, ApiError> {
    match &body[key] {
        Value::Null => Ok(None),
        v => v
            .as_i64()
            .map(|n| Some(n).filter(|n| *n != 0))
            .ok_or_else(|| ApiError::bad_request(format!("invalid {key}: {v}"))),
    }
}

impl Request {
    fn parse(body: &Value) -> Result<Request, ApiError> {
        for key in UNSUPPORTED {
            if set(&body[key]) {
                return Err(ApiError::bad_request(format!(
                    "updating {key} is not supported by this berth version"
                )));
            }
        }
        let restart = match body["RestartPolicy"]["Name"].as_str().unwrap_or("") {
            "" => None,
            name => Some((
                name.to_owned(),
                body["RestartPolicy"]["MaximumRetryCount"]
                    .as_i64()
                    .unwrap_or(0),
            )),
        };
        Ok(Request {
            memory: number(body, "Memory")?,
            memory_swap: number(body, "MemorySwap")?,
            nano_cpus: number(body, "NanoCpus")?.or(number(body, "NanoCPUs")?),
            cpu_quota: number(body, "CpuQuota")?,
            cpu_period: number(body, "CpuPeriod")?,
            cpu_shares: number(body, "CpuShares")?,
            // null: no change; 0 or -1: no limit.
            pids_limit: match &body["PidsLimit"] {
                Value::Null => None,
                v => Some(
                    v.as_i64()
                        .ok_or_else(|| ApiError::bad_request(format!("invalid PidsLimit: {v}")))?,
                ),
            },
            restart,
        })
    }

    /// `host` with the request applied, or Docker's error for a request it refuses.
    fn apply_to(&self, host: &Host, ncpu: i64) -> Result<Host, ApiError> {
        let bad = |m: &str| Err(ApiError::bad_request(m));
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
                return Err(ApiError::bad_request(format!(
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
                    return Err(ApiError::bad_request(format!(
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
                .filter(|_| berth_runtime::host::swap_accounting());
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
    /// `POST /containers/{id}/update`.
    pub(crate) fn update_resources(
        &self,
        key: &str,
        body: &Value,
    ) -> Result<Vec<String>, ApiError> {
        let req = Request::parse(body)?;
        let id = self.find(key)?.id;
        let lock = self.container_lock(&id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        // Read again under the lock: this is the record the next start will use.
        let mut rec = self.find(&id)?;
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        let host = req.apply_to(&rec.host, ncpu)?;
        let st = self.refresh(&id);
        let mut applied = None;
        if st.status == "running" {
            let cg = Cgroup::of_pid(st.pid).ok_or_else(|| {
                ApiError::internal(format!(
                    "Cannot update container {id}: its cgroup cannot be found (did it just stop?)"
                ))
            })?;
            let limits = req.limits(&host);
            if let Err(e) = cgroups::apply(&cg, &limits) {
                let _ = cgroups::apply(&cg, &previous(&limits, &rec.host));
                let memory_file = e
                    .file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| {
                        matches!(
                            n,
                            "memory.limit_in_bytes" | "memory.memsw.limit_in_bytes" | "memory.max"
                        )
                    });
                if memory_file && e.error.raw_os_error() == Some(libc::EBUSY) {
                    let usage = cgroups::memory_usage(&cg).unwrap_or(0);
                    return Err(ApiError::internal(format!(
                        "Cannot update container {id}: the memory limit {} is below what the container uses now ({}), and the kernel could not reclaim enough: {e}",
                        mib(host.memory.unwrap_or(0).max(0) as u64),
                        mib(usage)
                    )));
                }
                return Err(ApiError::internal(format!(
                    "Cannot update container {id}: {e}"
                )));
            }
            applied = Some((cg, limits));
        }
        let old = std::mem::replace(&mut rec.host, host);
        let path = self.container_dir(&id).join("config.json");
        if let Err(e) = berth_core::fs::write_json_atomic(&path, &rec) {
            if let Some((cg, limits)) = applied {
                let _ = cgroups::apply(&cg, &previous(&limits, &old));
            }
            return Err(ApiError::internal(format!(
                "Cannot update container {id}: write its record: {e}"
            )));
        }
        self.container_event(&rec, "update", &[]);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(body: Value) -> Request {
        Request::parse(&body).unwrap()
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
        let e = Request::parse(&json!({"CpusetCpus": "0-1"})).unwrap_err();
        assert!(e.message.contains("CpusetCpus"), "{}", e.message);
    }

    #[test]
    fn refuses_what_docker_refuses() {
        let host = Host {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            ..Default::default()
        };
        let err = |r: Request| r.apply_to(&host, 2).unwrap_err().message;
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
        assert!(e.message.contains("AutoRemove"));
        let none = Host::default();
        let e = Request {
            memory_swap: Some(1 << 30),
            ..Default::default()
        }
        .apply_to(&none, 2)
        .unwrap_err();
        assert!(e
            .message
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
}
