//! `berth-runtime update`: new resource limits for a container that exists (created, running
//! or paused), with runc's meaning.
//!
//! - A request is an OCI `LinuxResources` (from `--resources FILE|-`, or built from the flags)
//!   in which an absent field, a zero and an empty string mean "leave as it is", and -1 means
//!   "no limit" (memory, memory+swap, CFS quota, pids). Kernel memory is accepted and ignored,
//!   as runc does on current kernels. Of the document, what runc's update applies is applied:
//!   memory (limit, reservation, memory+swap), CPU (shares, quota, period, realtime, cpuset,
//!   idle), the block-I/O weight, the pids limit and `unified`; anything else is left alone.
//! - The limits are written through libcgroups' manager for the container's cgroup (cgroup v1,
//!   v2 or systemd, whichever created it): on v2 CPU shares become `cpu.weight` and
//!   memory+swap becomes `memory.swap.max`, and on v1 a raised memory+swap is written before
//!   the memory limit and a lowered one after it, so the kernel takes every step.
//! - What a container's limits are now is kept in `<root>/<id>/resources.json` (beside
//!   libcontainer's `state.json`, and removed with it), so later updates (and [`Runtime::resources`])
//!   start from the last one, as runc keeps them in its state file. Before the first update the
//!   container's spec is what it has.
//! - When the kernel refuses a write, the settings the request touched are put back as they
//!   were and the error says which file and value were refused.

use std::path::Path;

use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
use libcontainer::container::ContainerStatus;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::bundle::Bundle;
use crate::error::{cause_chain, Result, RuntimeError};
use crate::lifecycle::Runtime;

/// The container's current limits, in its runtime state directory.
pub const RESOURCES_FILE: &str = "resources.json";

/// The CFS period the kernel uses when none was set.
const DEFAULT_PERIOD: u64 = 100_000;
/// The CPU shares of a cgroup nobody set (v1's default; v2's weight 100 is its image).
const DEFAULT_SHARES: u64 = 1024;

/// `update`'s limit flags as given on the command line (runc's names and units).
#[derive(Debug, Clone, Default)]
pub struct LimitFlags {
    /// Bytes, with an optional unit (`64m`, `1.5g`); `-1` for no limit.
    pub memory: Option<String>,
    /// Memory plus swap; `-1` for unlimited swap.
    pub memory_swap: Option<String>,
    pub memory_reservation: Option<String>,
    /// Accepted and ignored (`--kernel-memory`, `--kernel-memory-tcp`).
    pub kernel_memory: Option<String>,
    pub kernel_memory_tcp: Option<String>,
    pub cpu_shares: Option<u64>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub blkio_weight: Option<u16>,
}

impl LimitFlags {
    /// Whether any limit flag was given.
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.memory_reservation.is_some()
            || self.kernel_memory.is_some()
            || self.kernel_memory_tcp.is_some()
            || self.cpu_shares.is_some()
            || self.cpu_period.is_some()
            || self.cpu_quota.is_some()
            || self.cpuset_cpus.is_some()
            || self.cpuset_mems.is_some()
            || self.pids_limit.is_some()
            || self.blkio_weight.is_some()
    }

    /// The request these flags make.
    pub fn to_resources(&self) -> std::result::Result<LinuxResources, String> {
        let bytes = |flag: &str, v: &Option<String>| {
            v.as_deref()
                .map(|s| parse_bytes(s).map_err(|e| format!("invalid value for --{flag}: {e}")))
                .transpose()
        };
        let mut memory = LinuxMemory::default();
        memory.set_limit(bytes("memory", &self.memory)?);
        memory.set_swap(bytes("memory-swap", &self.memory_swap)?);
        memory.set_reservation(bytes("memory-reservation", &self.memory_reservation)?);
        memory.set_kernel(bytes("kernel-memory", &self.kernel_memory)?);
        memory.set_kernel_tcp(bytes("kernel-memory-tcp", &self.kernel_memory_tcp)?);
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(self.cpu_shares);
        cpu.set_period(self.cpu_period);
        cpu.set_quota(self.cpu_quota);
        cpu.set_cpus(self.cpuset_cpus.clone());
        cpu.set_mems(self.cpuset_mems.clone());
        let mut r = LinuxResources::default();
        r.set_memory(Some(memory));
        r.set_cpu(Some(cpu));
        if let Some(limit) = self.pids_limit {
            let mut pids = LinuxPids::default();
            pids.set_limit(limit);
            r.set_pids(Some(pids));
        }
        if let Some(w) = self.blkio_weight {
            let mut io = LinuxBlockIo::default();
            io.set_weight(Some(w));
            r.set_block_io(Some(io));
        }
        Ok(r)
    }
}

/// A size as runc's update takes it: bytes, or a number with a binary unit (`k`, `m`, `g`,
/// `t`, `p`, optionally followed by `b` or `ib`, any case); `-1` for "no limit".
pub fn parse_bytes(text: &str) -> std::result::Result<i64, String> {
    let s = text.trim();
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => {
            return Err(format!(
                "{text:?} is not a size (e.g. 1048576, 512k, 64m, 1.5g)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1048576, 512k, 64m, 1.5g)"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes as i64)
}

/// A request read from `--resources`: runc's JSON (an OCI `LinuxResources`).
pub fn parse_resources(text: &str) -> Result<LinuxResources> {
    serde_json::from_str(text).map_err(|e| RuntimeError::BadRequest(format!("--resources: {e}")))
}

/// A value the request sets: present and not zero (zero is runc's "no change").
fn given<T: PartialEq + Default + Copy>(v: Option<T>) -> Option<T> {
    v.filter(|v| *v != T::default())
}

fn given_str(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

/// What of `req` is applied, in runc's terms: the fields update handles, with "no change"
/// values dropped and kernel memory ignored. `None` when nothing is left.
fn requested(req: &LinuxResources) -> LinuxResources {
    let mut out = LinuxResources::default();
    if let Some(m) = req.memory() {
        let mut mem = LinuxMemory::default();
        mem.set_limit(given(m.limit()));
        mem.set_reservation(given(m.reservation()));
        mem.set_swap(given(m.swap()));
        if mem != LinuxMemory::default() {
            out.set_memory(Some(mem));
        }
    }
    if let Some(c) = req.cpu() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(given(c.shares()));
        cpu.set_quota(given(c.quota()));
        cpu.set_period(given(c.period()));
        cpu.set_realtime_runtime(given(c.realtime_runtime()));
        cpu.set_realtime_period(given(c.realtime_period()));
        cpu.set_cpus(given_str(c.cpus()));
        cpu.set_mems(given_str(c.mems()));
        cpu.set_idle(c.idle());
        if cpu != LinuxCpu::default() {
            out.set_cpu(Some(cpu));
        }
    }
    if let Some(w) = req.block_io().as_ref().and_then(|b| given(b.weight())) {
        let mut io = LinuxBlockIo::default();
        io.set_weight(Some(w));
        out.set_block_io(Some(io));
    }
    if let Some(p) = req.pids().filter(|p| p.limit() != 0) {
        out.set_pids(Some(p));
    }
    if let Some(u) = req.unified().as_ref().filter(|u| !u.is_empty()) {
        out.set_unified(Some(u.clone()));
    }
    out
}

/// `current` with `req` (already [`requested`]) laid over it: the container's limits after the
/// update.
fn merged(current: &LinuxResources, req: &LinuxResources) -> LinuxResources {
    let mut out = current.clone();
    if let Some(m) = req.memory() {
        let mut mem = current.memory().unwrap_or_default();
        mem.set_limit(m.limit().or(mem.limit()));
        mem.set_reservation(m.reservation().or(mem.reservation()));
        mem.set_swap(m.swap().or(mem.swap()));
        out.set_memory(Some(mem));
    }
    if let Some(c) = req.cpu() {
        let mut cpu = current.cpu().clone().unwrap_or_default();
        cpu.set_shares(c.shares().or(cpu.shares()));
        cpu.set_quota(c.quota().or(cpu.quota()));
        cpu.set_period(c.period().or(cpu.period()));
        cpu.set_realtime_runtime(c.realtime_runtime().or(cpu.realtime_runtime()));
        cpu.set_realtime_period(c.realtime_period().or(cpu.realtime_period()));
        cpu.set_cpus(c.cpus().clone().or(cpu.cpus().clone()));
        cpu.set_mems(c.mems().clone().or(cpu.mems().clone()));
        cpu.set_idle(c.idle().or(cpu.idle()));
        out.set_cpu(Some(cpu));
    }
    if let Some(w) = req.block_io().as_ref().and_then(|b| b.weight()) {
        let mut io = current.block_io().clone().unwrap_or_default();
        io.set_weight(Some(w));
        out.set_block_io(Some(io));
    }
    if let Some(p) = req.pids() {
        out.set_pids(Some(*p));
    }
    if let Some(u) = req.unified() {
        let mut all = current.unified().clone().unwrap_or_default();
        all.extend(u.clone());
        out.set_unified(Some(all));
    }
    out
}

/// What goes to the cgroup manager for request `req` on a container whose limits become
/// `after`. The manager needs a setting's partners to write it right: memory+swap goes with
/// the memory limit (v2 stores swap alone, as their difference), and quota with period (so a
/// new period keeps the quota, and `cpu.max` gets both). Without swap accounting in the
/// kernel, memory+swap cannot be set and is left out, as runc does.
fn to_write(req: &LinuxResources, after: &LinuxResources, swap_accounting: bool) -> LinuxResources {
    let mut out = req.clone();
    if let (Some(m), Some(a)) = (req.memory(), after.memory()) {
        let mut mem = *m;
        if mem.swap().is_some() || mem.limit().is_some() {
            mem.set_limit(a.limit().or(mem.limit()));
        }
        if !swap_accounting {
            mem.set_swap(None);
        }
        out.set_memory(Some(mem));
    }
    if let (Some(c), Some(a)) = (req.cpu(), after.cpu()) {
        let mut cpu = c.clone();
        if c.quota().is_some() || c.period().is_some() {
            cpu.set_quota(a.quota().or(c.quota()));
            cpu.set_period(a.period().or(c.period()));
        }
        out.set_cpu(Some(cpu));
    }
    out
}

/// What puts back the settings `written` changed, from the limits the container had before
/// (`before`); a setting it never had goes back to the kernel's default (no limit).
fn to_restore(written: &LinuxResources, before: &LinuxResources) -> LinuxResources {
    let mut out = LinuxResources::default();
    if let Some(m) = written.memory() {
        let old = before.memory().unwrap_or_default();
        let mut mem = LinuxMemory::default();
        if m.limit().is_some() || m.swap().is_some() {
            mem.set_limit(Some(old.limit().unwrap_or(-1)));
        }
        if m.swap().is_some() {
            mem.set_swap(Some(old.swap().unwrap_or(-1)));
        }
        if m.reservation().is_some() {
            mem.set_reservation(Some(old.reservation().unwrap_or(-1)));
        }
        out.set_memory(Some(mem));
    }
    if let Some(c) = written.cpu() {
        let old = before.cpu().clone().unwrap_or_default();
        let mut cpu = LinuxCpu::default();
        if c.shares().is_some() {
            cpu.set_shares(Some(old.shares().unwrap_or(DEFAULT_SHARES)));
        }
        if c.quota().is_some() || c.period().is_some() {
            cpu.set_quota(Some(old.quota().unwrap_or(-1)));
            cpu.set_period(Some(old.period().unwrap_or(DEFAULT_PERIOD)));
        }
        // A cpuset nobody set is the parent's: not known here, so left as the update made it.
        cpu.set_cpus(c.cpus().as_ref().and(old.cpus().clone()));
        cpu.set_mems(c.mems().as_ref().and(old.mems().clone()));
        out.set_cpu(Some(cpu));
    }
    if written.pids().is_some() {
        let mut pids = LinuxPids::default();
        pids.set_limit(before.pids().map_or(-1, |p| p.limit()));
        out.set_pids(Some(pids));
    }
    out
}

/// Writes `path` through a temporary file renamed over it.
fn write_json(path: &Path, value: &LinuxResources) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, path)
}

impl Runtime {
    /// The container's resource limits now: its last update, else its spec's.
    pub fn resources(&self, id: &str) -> Result<LinuxResources> {
        let c = self.load(id)?;
        let file = self.root().join(id).join(RESOURCES_FILE);
        if let Ok(text) = std::fs::read(&file) {
            return serde_json::from_slice(&text).map_err(|e| RuntimeError::Operation {
                id: id.to_owned(),
                action: "read the limits of",
                reason: format!("{}: {e}", file.display()),
            });
        }
        let spec = Bundle::load(c.bundle())?.spec;
        Ok(spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().clone())
            .unwrap_or_default())
    }

    /// `update`: applies `req` (runc's meaning, see the module) to the container's cgroup and
    /// records the result. Returns the container's limits after it.
    pub fn update(&self, id: &str, req: &LinuxResources) -> Result<LinuxResources> {
        let c = self.load(id)?;
        if c.status() == ContainerStatus::Stopped {
            return Err(RuntimeError::WrongState {
                id: id.to_owned(),
                status: crate::state::status_name(c.status()).to_owned(),
                action: "update",
            });
        }
        if req
            .memory()
            .is_some_and(|m| m.kernel().is_some() || m.kernel_tcp().is_some())
        {
            tracing::warn!(id, "kernel memory settings are ignored");
        }
        let before = self.resources(id)?;
        let req = requested(req);
        if req == LinuxResources::default() {
            return Ok(before);
        }
        let after = merged(&before, &req);
        let write = to_write(&req, &after, crate::host::swap_accounting());
        let config = c
            .spec()
            .map_err(|e| RuntimeError::libcontainer(id, "read config of", e))?;
        let manager = create_cgroup_manager(CgroupConfig {
            cgroup_path: config.cgroup_path.clone(),
            systemd_cgroup: c.systemd(),
            container_name: id.to_owned(),
        })
        .map_err(|e| RuntimeError::Operation {
            id: id.to_owned(),
            action: "find the cgroup of",
            reason: cause_chain(&e),
        })?;
        // The memory controller rewrites the OOM killer setting with every memory change:
        // keep the container's.
        let disable_oom_killer = before
            .memory()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or(false);
        let apply = |resources: &LinuxResources| {
            manager.apply(&ControllerOpt {
                resources,
                disable_oom_killer,
                oom_score_adj: None,
                freezer_state: None,
            })
        };
        if let Err(e) = apply(&write) {
            let reason = cause_chain(&e);
            if let Err(e2) = apply(&to_restore(&write, &before)) {
                tracing::warn!(id, error = %cause_chain(&e2), "cannot put the old limits back");
            }
            return Err(RuntimeError::Operation {
                id: id.to_owned(),
                action: "update",
                reason,
            });
        }
        let file = self.root().join(id).join(RESOURCES_FILE);
        write_json(&file, &after)
            .map_err(|e| RuntimeError::io(format!("record the limits in {}", file.display()), e))?;
        Ok(after)
    }
}

/// `--oom-kill-disable` for a container just created from `spec`. libcontainer 0.7 applies
/// the spec's memory limits but never its `disableOOMKiller` (it always passes `false`), so
/// when the spec asks for it the memory controller is applied once more with the switch on.
/// Only cgroup v1 has it; the spec builder never asks for it on v2.
pub(crate) fn disable_oom_killer(
    id: &str,
    container: &libcontainer::container::Container,
    spec: &oci_spec::runtime::Spec,
) -> Result<()> {
    let Some(memory) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| *r.memory())
        .filter(|m| m.disable_oom_killer() == Some(true))
    else {
        return Ok(());
    };
    let failed = |reason: String| RuntimeError::Operation {
        id: id.to_owned(),
        action: "disable the OOM killer of",
        reason,
    };
    let config = container
        .spec()
        .map_err(|e| RuntimeError::libcontainer(id, "read config of", e))?;
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path.clone(),
        systemd_cgroup: container.systemd(),
        container_name: id.to_owned(),
    })
    .map_err(|e| failed(cause_chain(&e)))?;
    let mut resources = LinuxResources::default();
    resources.set_memory(Some(memory));
    manager
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: true,
            oom_score_adj: None,
            freezer_state: None,
        })
        .map_err(|e| failed(cause_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn json(r: &LinuxResources) -> serde_json::Value {
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn sizes_like_runc() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        assert_eq!(parse_bytes("2gb"), Ok(2 << 30));
        assert_eq!(parse_bytes("-1"), Ok(-1));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("12x").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("99999p").is_err());
    }

    #[test]
    fn flags_become_a_request() {
        let flags = LimitFlags {
            memory: Some("64m".into()),
            cpu_shares: Some(512),
            pids_limit: Some(20),
            cpuset_cpus: Some("0".into()),
            ..Default::default()
        };
        assert!(flags.any());
        assert!(!LimitFlags::default().any());
        let r = flags.to_resources().unwrap();
        assert_eq!(r.memory().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(512));
        assert_eq!(r.pids().unwrap().limit(), 20);
        let bad = LimitFlags {
            memory_swap: Some("much".into()),
            ..Default::default()
        };
        assert!(bad.to_resources().unwrap_err().contains("--memory-swap"));
    }

    #[test]
    fn zero_and_absent_leave_settings_alone() {
        let req = requested(&res(serde_json::json!({
            "memory": {"limit": 0, "swap": 0, "kernel": 1048576},
            "cpu": {"shares": 0, "quota": 0, "cpus": ""},
            "pids": {"limit": 0},
            "blockIO": {"weight": 0},
            "devices": [{"allow": true, "access": "rwm"}]
        })));
        assert_eq!(req, LinuxResources::default(), "{}", json(&req));
        let req = requested(&res(serde_json::json!({"pids": {"limit": -1}})));
        assert_eq!(req.pids().unwrap().limit(), -1);
    }

    #[test]
    fn an_update_lays_over_the_limits_before() {
        let before = res(serde_json::json!({
            "memory": {"limit": 134217728, "swap": 268435456},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
            "pids": {"limit": 100},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        let req = requested(&res(serde_json::json!({
            "memory": {"limit": 67108864},
            "cpu": {"period": 200000}
        })));
        let after = merged(&before, &req);
        let a = json(&after);
        assert_eq!(a["memory"]["limit"], 67108864);
        assert_eq!(a["memory"]["swap"], 268435456, "kept");
        assert_eq!(a["cpu"]["period"], 200000);
        assert_eq!(a["cpu"]["quota"], 50000, "kept");
        assert_eq!(a["pids"]["limit"], 100);
        assert_eq!(a["devices"], before_devices());
        // The manager gets the quota with the new period, memory alone (its swap unchanged).
        let w = json(&to_write(&req, &after, true));
        assert_eq!(
            w["cpu"],
            serde_json::json!({"quota": 50000, "period": 200000})
        );
        assert_eq!(w["memory"], serde_json::json!({"limit": 67108864}));
        assert!(w.get("pids").is_none());
        // Putting back: the old values of what was written, nothing else.
        let r = json(&to_restore(&to_write(&req, &after, true), &before));
        assert_eq!(r["memory"], serde_json::json!({"limit": 134217728}));
        assert_eq!(
            r["cpu"],
            serde_json::json!({"quota": 50000, "period": 100000})
        );
        assert!(r.get("pids").is_none());
    }

    fn before_devices() -> serde_json::Value {
        serde_json::json!([{"allow": false, "access": "rwm"}])
    }

    #[test]
    fn swap_goes_with_its_memory_limit_and_only_where_the_kernel_counts_it() {
        let before = res(serde_json::json!({"memory": {"limit": 134217728}}));
        let req = requested(&res(serde_json::json!({"memory": {"swap": 536870912}})));
        let after = merged(&before, &req);
        let w = json(&to_write(&req, &after, true));
        assert_eq!(
            w["memory"],
            serde_json::json!({"limit": 134217728, "swap": 536870912})
        );
        let w = json(&to_write(&req, &after, false));
        assert_eq!(w["memory"], serde_json::json!({"limit": 134217728}));
        // Nothing set before: restoring means no limits.
        let r = json(&to_restore(
            &to_write(&req, &after, true),
            &LinuxResources::default(),
        ));
        assert_eq!(r["memory"], serde_json::json!({"limit": -1, "swap": -1}));
    }

    #[test]
    fn malformed_json_is_a_clear_error() {
        let e = parse_resources("{\"memory\": {\"limit\": \"lots\"}}").unwrap_err();
        assert!(e.to_string().contains("--resources"), "{e}");
        assert!(parse_resources("not json").is_err());
        assert!(parse_resources("{}").is_ok());
    }
}
