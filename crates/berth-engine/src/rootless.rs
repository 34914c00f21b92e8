//! What the engine does differently when its daemon is rootless (`berth daemon` run by an
//! unprivileged user; the namespaces are set up before the engine opens, see the binary's
//! `rootless` module): resource limits need cgroups the user may write, and containers cannot
//! outlive the daemon's namespaces.

use std::time::Duration;

use bollard_stubs::models::HostConfig;

use crate::error::EngineError;
use crate::Engine;

/// How the daemon runs rootless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootlessOptions {
    /// Whether the daemon's cgroup subtree was delegated to the user (cgroup v2), so that
    /// containers get cgroups of their own and limits work.
    pub cgroups: bool,
}

/// The Docker flag of each resource limit a HostConfig sets.
pub(crate) fn limits_set(hc: &HostConfig) -> Vec<&'static str> {
    let positive = |v: Option<i64>| v.is_some_and(|n| n > 0);
    let mut set = Vec::new();
    let mut flag = |on: bool, name: &'static str| {
        if on {
            set.push(name);
        }
    };
    flag(positive(hc.memory), "--memory");
    flag(positive(hc.memory_reservation), "--memory-reservation");
    flag(
        hc.memory_swap.is_some_and(|n| !(-1..=0).contains(&n)),
        "--memory-swap",
    );
    flag(
        hc.memory_swappiness.is_some_and(|n| n >= 0),
        "--memory-swappiness",
    );
    flag(positive(hc.nano_cpus), "--cpus");
    flag(positive(hc.cpu_shares), "--cpu-shares");
    flag(positive(hc.cpu_period), "--cpu-period");
    flag(positive(hc.cpu_quota), "--cpu-quota");
    flag(positive(hc.cpu_realtime_period), "--cpu-rt-period");
    flag(positive(hc.cpu_realtime_runtime), "--cpu-rt-runtime");
    let text = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    flag(text(&hc.cpuset_cpus), "--cpuset-cpus");
    flag(text(&hc.cpuset_mems), "--cpuset-mems");
    flag(hc.blkio_weight.is_some_and(|n| n > 0), "--blkio-weight");
    fn list<T>(v: &Option<Vec<T>>) -> bool {
        v.as_ref().is_some_and(|l| !l.is_empty())
    }
    flag(list(&hc.blkio_weight_device), "--blkio-weight-device");
    flag(list(&hc.blkio_device_read_bps), "--device-read-bps");
    flag(list(&hc.blkio_device_write_bps), "--device-write-bps");
    flag(list(&hc.blkio_device_read_iops), "--device-read-iops");
    flag(list(&hc.blkio_device_write_iops), "--device-write-iops");
    flag(positive(hc.pids_limit), "--pids-limit");
    flag(hc.oom_kill_disable == Some(true), "--oom-kill-disable");
    flag(list(&hc.device_cgroup_rules), "--device-cgroup-rule");
    set
}

/// Refuses limits a rootless daemon without delegated cgroups could not enforce: a limit
/// that is silently not there is worse than an error.
pub(crate) fn check_limits(
    opts: Option<RootlessOptions>,
    hc: &HostConfig,
) -> Result<(), EngineError> {
    let Some(opts) = opts else { return Ok(()) };
    let set = limits_set(hc);
    if opts.cgroups || set.is_empty() {
        return Ok(());
    }
    Err(EngineError::invalid(format!(
        "{} need{} cgroups, and this rootless daemon has none it may write: the host runs \
         cgroup v1, or its cgroup v2 subtree was not delegated to the user (see README, \
         Rootless berth)",
        set.join(", "),
        if set.len() == 1 { "s" } else { "" }
    )))
}

impl Engine {
    /// At a rootless daemon's start: a daemon that was killed (no shutdown) left its
    /// containers running in namespaces that ended with it, where this daemon can reach
    /// nothing. Their processes are the user's, so they can be killed: each such container's
    /// init gets SIGKILL (its shim then records the exit), and the kill is logged.
    pub(crate) fn end_containers_of_earlier_daemons(&self) {
        use std::os::unix::fs::MetadataExt;
        let user_ns = |pid: &str| {
            std::fs::metadata(format!("/proc/{pid}/ns/user"))
                .ok()
                .map(|m| m.ino())
        };
        let Some(ours) = user_ns("self") else { return };
        for rec in self.containers.all() {
            let dir = self.container_dir(&rec.id);
            let Some(info) = berth_oci::shim::read_shim(&dir) else {
                continue;
            };
            if !berth_oci::shim::shim_alive(&dir) {
                continue;
            }
            let theirs = user_ns(&info.init_pid.to_string());
            if theirs.is_none() || theirs == Some(ours) {
                continue;
            }
            let init = nix::unistd::Pid::from_raw(info.init_pid);
            if nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL).is_ok() {
                tracing::warn!(container = %rec.id, "killed a container an earlier rootless daemon left running in its namespaces");
                self.wait_exited(&rec.id, Duration::from_secs(10));
            }
        }
    }

    /// At a rootless daemon's shutdown: stops every running container (stop signal, SIGKILL
    /// after its timeout), all at once. A rootless daemon's containers live in its user and
    /// network namespaces, which end with it; a daemon started later could neither reach
    /// nor manage them. They are not marked stopped by hand, so restart policies bring them
    /// back with the next daemon, as Docker's do after its shutdown.
    pub fn stop_all_at_shutdown(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // The restart supervisor may be deciding under a container's lock right now; taking
        // each lock once waits that decision out, and it starts nothing after.
        for rec in self.containers.all() {
            drop(self.container_lock(&rec.id).lock());
        }
        let running: Vec<_> = self
            .containers
            .all()
            .into_iter()
            .filter(|rec| self.refresh(&rec.id).running())
            .collect();
        std::thread::scope(|scope| {
            for rec in &running {
                scope.spawn(move || {
                    self.thaw(&rec.id);
                    let secs = rec.stop_timeout().unwrap_or(10).max(0) as u64;
                    let _ = self.signal(&rec.id, rec.stop_signal().unwrap_or("SIGTERM"));
                    if !self.wait_exited(&rec.id, Duration::from_secs(secs)) {
                        let _ = self.signal(&rec.id, "SIGKILL");
                        self.wait_exited(&rec.id, Duration::from_secs(10));
                    }
                    tracing::info!(container = %rec.id, "stopped with the rootless daemon");
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_limit_set_and_nothing_else() {
        let hc = HostConfig {
            memory: Some(32 << 20),
            memory_swap: Some(-1),
            cpu_shares: Some(0),
            pids_limit: Some(10),
            cpuset_cpus: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(limits_set(&hc), ["--memory", "--pids-limit"]);
        assert!(limits_set(&HostConfig::default()).is_empty());
    }

    #[test]
    fn refuses_limits_only_without_delegated_cgroups() {
        let hc = HostConfig {
            memory: Some(32 << 20),
            ..Default::default()
        };
        let none = Some(RootlessOptions { cgroups: false });
        let e = check_limits(none, &hc).unwrap_err();
        assert!(e.to_string().starts_with("--memory needs cgroups"), "{e}");
        assert!(check_limits(Some(RootlessOptions { cgroups: true }), &hc).is_ok());
        assert!(check_limits(None, &hc).is_ok());
        assert!(check_limits(none, &HostConfig::default()).is_ok());
    }
}
