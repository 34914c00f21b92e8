//! Loading a container's seccomp filter ourselves, from the workload executor that runs in the
//! container process just before `execve`.
//!
//! Two reasons: libcontainer 0.7 drops `linux.seccomp` for processes that join a running
//! container (`exec`), which would run them unfiltered; and libcontainer builds the filter
//! with libseccomp at every start, while we load a program compiled once
//! ([`crate::seccomp_bpf`]).
//!
//! Loading a filter without no_new_privs needs CAP_SYS_ADMIN, and by the time the executor
//! runs, capabilities are already the process's own. So the process is set up with
//! CAP_SYS_ADMIN (and CAP_SETPCAP, to shrink the bounding set) added, loads the filter, and
//! drops exactly those additions before it executes anything of the user's.

use caps::{CapSet, Capability as Cap};
use libcontainer::workload::{
    default::get_executor, Executor, ExecutorError, ExecutorValidationError,
};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use crate::seccomp_bpf::{self, CompiledFilter};

/// Runs the workload under `filter`, first shedding the temporary capabilities.
#[derive(Clone, Debug)]
pub struct ConfinedExecutor {
    filter: CompiledFilter,
    temporary: Vec<Cap>,
}

impl ConfinedExecutor {
    /// Prepares `process` (adds the capabilities the filter load needs) and returns the
    /// executor that loads `filter` and removes them again.
    pub fn prepare(process: &mut Process, filter: CompiledFilter) -> ConfinedExecutor {
        let mut temporary = Vec::new();
        let mut caps: LinuxCapabilities = process.capabilities().clone().unwrap_or_default();
        for (oci, raw) in [
            (Capability::SysAdmin, Cap::CAP_SYS_ADMIN),
            (Capability::Setpcap, Cap::CAP_SETPCAP),
        ] {
            let held = caps.effective().as_ref().is_some_and(|e| e.contains(&oci))
                && caps.bounding().as_ref().is_some_and(|b| b.contains(&oci))
                && caps.permitted().as_ref().is_some_and(|p| p.contains(&oci));
            if held {
                continue;
            }
            temporary.push(raw);
            let add = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(oci);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
        ConfinedExecutor { filter, temporary }
    }

    fn shed_temporary_caps(&self) -> Result<(), String> {
        // The bounding set first: that needs CAP_SETPCAP, which may itself be temporary.
        for cap in &self.temporary {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| format!("drop {cap}: {e}"))?;
        }
        for set in [
            CapSet::Effective,
            CapSet::Permitted,
            CapSet::Inheritable,
            CapSet::Ambient,
        ] {
            for cap in &self.temporary {
                caps::drop(None, set, *cap).map_err(|e| format!("drop {cap}: {e}"))?;
            }
        }
        for cap in &self.temporary {
            if caps::has_cap(None, CapSet::Permitted, *cap).unwrap_or(true) {
                return Err(format!("{cap} is still held"));
            }
        }
        Ok(())
    }
}

impl Executor for ConfinedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        seccomp_bpf::load(&self.filter).map_err(|e| {
            ExecutorError::Other(format!("load the container's seccomp filter: {e}"))
        })?;
        self.shed_temporary_caps().map_err(|e| {
            ExecutorError::Other(format!("restore the process's capabilities: {e}"))
        })?;
        get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        get_executor().validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_only_missing_capabilities() {
        let spec = crate::spec::docker_default(&crate::spec::ContainerOptions::new(
            "rootfs",
            vec!["true".into()],
        ))
        .unwrap();
        let mut process = spec.process().clone().unwrap();
        let filter = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
        let exec = ConfinedExecutor::prepare(&mut process, seccomp_bpf::compile(&filter).unwrap());
        // The default set has SETPCAP but not SYS_ADMIN.
        assert_eq!(exec.temporary, vec![Cap::CAP_SYS_ADMIN]);
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
    }
}
