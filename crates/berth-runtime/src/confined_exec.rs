//! berth's workload executor: the code libcontainer runs in the container process, once it
//! is set up, to validate and then execute the user's command.
//!
//! It does three things libcontainer's default executor does not:
//!
//! - **Docker's errors for a command that cannot run.** `validate` (before `create` returns)
//!   looks the command up as runc does and fails with Docker's words ([`crate::command`]);
//!   the exec itself uses the file found, and all signal actions are reset to their defaults
//!   first (the runtime ignores SIGPIPE, which must not leak into containers).
//! - **Our own seccomp load.** libcontainer 0.7 drops `linux.seccomp` for processes that join
//!   a running container (`exec`), which would run them unfiltered; and it builds the filter
//!   with libseccomp at every start, while we load a program compiled once
//!   ([`crate::seccomp_bpf`]). Loading a filter without no_new_privs needs CAP_SYS_ADMIN, and
//!   by the time the executor runs, capabilities are already the process's own. So the
//!   process is set up with CAP_SYS_ADMIN (and CAP_SETPCAP, to shrink the bounding set) added,
//!   loads the filter, and drops exactly those additions before it executes anything of the
//!   user's.
//! - **`--init`** ([`crate::init`]): pid 1 forks the command and stays as its init, confined
//!   like it (the filter is loaded and the capabilities are final before the fork).
//! - **The container's user namespace for `exec`.** libcontainer 0.7 joins every namespace
//!   of a running container but its user namespace (`--userns-remap`), which would leave an
//!   exec'd process real root on the host. The exec command opens the namespace outside the
//!   container; the executor enters it first (with the temporary CAP_SYS_ADMIN), which
//!   resets credentials, and so sets the process's user, groups and capabilities again,
//!   as the container's namespace names them.
//! - **Read-only cgroup v1 hierarchies.** libcontainer 0.7 mounts v1 hierarchies read-write
//!   whatever the spec's `/sys/fs/cgroup` mount says, so a container could raise its own
//!   limits. When the spec asks for them read-only, the executor remounts them so (with the
//!   same temporary CAP_SYS_ADMIN) before anything of the user's runs, as runc mounts them.

use std::os::fd::RawFd;

use caps::{CapSet, Capability as Cap};
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use crate::command;
use crate::init::{self, PreparedExec};
use crate::seccomp_bpf::{self, CompiledFilter};

/// A capability added for the filter load, and to which sets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Added {
    cap: Cap,
    bounding: bool,
    effective: bool,
    permitted: bool,
}

impl Added {
    fn to(&self, set: &CapSet) -> bool {
        match set {
            CapSet::Bounding => self.bounding,
            CapSet::Effective => self.effective,
            CapSet::Permitted => self.permitted,
            _ => false,
        }
    }
}

/// Validates and runs the workload: optionally under a precompiled seccomp filter (first
/// shedding the temporary capabilities loading it needed) and optionally under berth's init.
#[derive(Clone, Debug, Default)]
pub struct ConfinedExecutor {
    filter: Option<CompiledFilter>,
    /// Capabilities added for the filter load and the remount, with the sets each was added to.
    temporary: Vec<Added>,
    init: bool,
    /// Remount the cgroup v1 hierarchies under /sys/fs/cgroup read-only.
    readonly_cgroups: bool,
    /// Enter this user namespace (an open descriptor the process inherited) first.
    userns: Option<RawFd>,
}

impl ConfinedExecutor {
    /// An executor with no filter of its own and no init.
    pub fn new() -> ConfinedExecutor {
        ConfinedExecutor::default()
    }

    /// Runs the command under berth's init (pid 1 stays ours) when `init` is true.
    pub fn with_init(mut self, init: bool) -> ConfinedExecutor {
        self.init = init;
        self
    }

    /// Prepares `process` (adds the capabilities the filter load needs) and returns the
    /// executor that loads `filter` and removes them again.
    pub fn prepare(process: &mut Process, filter: CompiledFilter) -> ConfinedExecutor {
        ConfinedExecutor::new().confined(process, filter)
    }

    /// This executor, loading `filter` before the exec; `process` gets the capabilities the
    /// load needs, in exactly the sets that lack them, and loses them there right after it.
    /// (A non-root process as Docker specifies it has capabilities in its bounding set only.)
    pub fn confined(mut self, process: &mut Process, filter: CompiledFilter) -> ConfinedExecutor {
        self.add_temporary_caps(process);
        self.filter = Some(filter);
        self
    }

    /// This executor, remounting the cgroup v1 hierarchies read-only before the exec
    /// (`process` gets the capability that needs, as for [`Self::confined`]).
    pub fn readonly_cgroups(mut self, process: &mut Process) -> ConfinedExecutor {
        self.add_temporary_caps(process);
        self.readonly_cgroups = true;
        self
    }

    /// This executor, entering the user namespace open at `fd` (kept open by the caller
    /// until the process runs) before anything else: an `exec` into a container that has
    /// one. `process` gets the capability entering needs, as for [`Self::confined`].
    pub fn joining_userns(mut self, process: &mut Process, fd: RawFd) -> ConfinedExecutor {
        self.add_temporary_caps(process);
        self.userns = Some(fd);
        self
    }

    /// Gives `process` CAP_SYS_ADMIN and CAP_SETPCAP in the sets that lack them (once), and
    /// remembers what to take back.
    fn add_temporary_caps(&mut self, process: &mut Process) {
        if !self.temporary.is_empty() {
            return;
        }
        let mut temporary = Vec::new();
        let mut caps: LinuxCapabilities = process.capabilities().clone().unwrap_or_default();
        for (oci, raw) in [
            (Capability::SysAdmin, Cap::CAP_SYS_ADMIN),
            (Capability::Setpcap, Cap::CAP_SETPCAP),
        ] {
            let lacks = |set: &Option<std::collections::HashSet<Capability>>| {
                !set.as_ref().is_some_and(|s| s.contains(&oci))
            };
            let with = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(oci);
                Some(s)
            };
            let added = Added {
                cap: raw,
                bounding: lacks(caps.bounding()),
                effective: lacks(caps.effective()),
                permitted: lacks(caps.permitted()),
            };
            if added.bounding {
                caps.set_bounding(with(caps.bounding()));
            }
            if added.effective {
                caps.set_effective(with(caps.effective()));
            }
            if added.permitted {
                caps.set_permitted(with(caps.permitted()));
            }
            if added.bounding || added.effective || added.permitted {
                temporary.push(added);
            }
        }
        process.set_capabilities(Some(caps));
        self.temporary = temporary;
    }

    fn shed_temporary_caps(&self) -> Result<(), String> {
        // The bounding set first: that needs CAP_SETPCAP, which may itself be temporary. Then
        // effective before permitted (an effective capability must be permitted).
        for set in [CapSet::Bounding, CapSet::Effective, CapSet::Permitted] {
            for added in self.temporary.iter().filter(|a| a.to(&set)) {
                let cap = added.cap;
                caps::drop(None, set, cap).map_err(|e| format!("drop {cap}: {e}"))?;
            }
        }
        for added in self.temporary.iter().filter(|a| a.permitted) {
            if caps::has_cap(None, CapSet::Permitted, added.cap).unwrap_or(true) {
                return Err(format!("{} is still held", added.cap));
            }
        }
        Ok(())
    }
}

/// Enters the user namespace open at `fd`. That gives the process every capability in it
/// and leaves its IDs as they were outside (which the namespace does not map), so the user,
/// groups and capabilities of `spec`'s process are set again, now inside (the temporary
/// capabilities included: they go later, as they would have).
fn enter_userns(fd: RawFd, spec: &Spec) -> Result<(), String> {
    use nix::unistd::{Gid, Uid};
    let process = spec.process().as_ref().ok_or("the spec has no process")?;
    // SAFETY: the exec command opened `fd` for this and keeps it open until we run.
    let userns = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    nix::sched::setns(userns, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("setns: {e}"))?;
    let syscall = libcontainer::syscall::syscall::create_syscall();
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    syscall
        .set_groups(&groups)
        .map_err(|e| format!("set the groups: {e}"))?;
    syscall
        .set_id(Uid::from_raw(user.uid()), Gid::from_raw(user.gid()))
        .map_err(|e| format!("set the user: {e}"))?;
    if let Some(caps) = process.capabilities() {
        libcontainer::capabilities::drop_privileges(caps, syscall.as_ref())
            .map_err(|e| format!("set the capabilities: {e}"))?;
    }
    Ok(())
}

/// Remounts every mount at or under /sys/fs/cgroup read-only (and nosuid, nodev, noexec, as
/// Docker's are), children first. A bind remount changes only the mount point's flags.
fn remount_cgroups_readonly() -> Result<(), String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    let mut points: Vec<String> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| *p == "/sys/fs/cgroup" || p.starts_with("/sys/fs/cgroup/"))
        .map(str::to_owned)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    use nix::mount::MsFlags;
    for p in &points {
        nix::mount::mount(
            None::<&str>,
            p.as_str(),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_BIND
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| format!("remount {p}: {e}"))?;
    }
    Ok(())
}

/// Whether `spec` mounts /sys/fs/cgroup read-only (Docker's default; `--privileged` makes it
/// writable).
pub fn wants_readonly_cgroups(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == std::path::Path::new("/sys/fs/cgroup")
            && m.options().iter().flatten().any(|o| o == "ro")
    })
}

/// The command line of the spec's process.
fn args_of(spec: &Spec) -> Option<&Vec<String>> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .filter(|a| !a.is_empty())
}

/// Prints `message` where the container's output goes and ends the process with `code`: after
/// `start` nobody else is listening for the container process's errors.
fn die(message: &str, code: i32) -> ! {
    eprintln!("{message}");
    std::process::exit(code)
}

impl Executor for ConfinedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        let args = args_of(spec).ok_or(ExecutorError::InvalidArg)?;
        // The environment is the process's own by now (setup_envs ran), PATH included. The
        // file was found at create time; finding it again covers a change since.
        let path_var = std::env::var_os("PATH");
        let program = match command::lookup(&args[0], path_var.as_deref()) {
            Ok(p) => p,
            Err(e) => die(&e.to_string(), e.exit_code()),
        };
        let prepared =
            PreparedExec::new(&program, args, std::env::vars_os()).map_err(ExecutorError::Other)?;
        if let Some(fd) = self.userns {
            enter_userns(fd, spec).map_err(|e| {
                ExecutorError::Other(format!("enter the container's user namespace: {e}"))
            })?;
        }
        if self.readonly_cgroups {
            remount_cgroups_readonly()
                .map_err(|e| ExecutorError::Other(format!("make /sys/fs/cgroup read-only: {e}")))?;
        }
        if let Some(filter) = &self.filter {
            seccomp_bpf::load(filter).map_err(|e| {
                ExecutorError::Other(format!("load the container's seccomp filter: {e}"))
            })?;
        }
        self.shed_temporary_caps().map_err(|e| {
            ExecutorError::Other(format!("restore the process's capabilities: {e}"))
        })?;
        init::reset_signal_actions();
        if self.init {
            init::run(&prepared)
        } else {
            prepared.exec()
        }
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let args = args_of(spec).ok_or_else(|| {
            ExecutorValidationError::ArgValidationError(
                "the process has no command (process.args is empty)".into(),
            )
        })?;
        let env = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().clone())
            .unwrap_or_default();
        if let Some(bad) = args.iter().chain(&env).find(|s| s.contains('\0')) {
            return Err(ExecutorValidationError::ArgValidationError(format!(
                "argument or environment entry contains a NUL byte: {bad:?}"
            )));
        }
        let path_var = command::path_from_env(&env);
        command::lookup(&args[0], path_var.as_deref())
            .map(|_| ())
            .map_err(|e| ExecutorValidationError::ArgValidationError(e.to_string()))
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
        let everywhere = |cap| Added {
            cap,
            bounding: true,
            effective: true,
            permitted: true,
        };
        assert_eq!(exec.temporary, vec![everywhere(Cap::CAP_SYS_ADMIN)]);
        let caps = process.capabilities().as_ref().unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));

        // Docker's non-root process: capabilities in the bounding set only. SETPCAP is added
        // where it is missing and will be dropped there only, so the bounding set keeps it.
        let mut process = spec.process().clone().unwrap();
        let mut caps = process.capabilities().clone().unwrap();
        caps.set_effective(None);
        caps.set_permitted(None);
        process.set_capabilities(Some(caps));
        let exec = ConfinedExecutor::prepare(&mut process, seccomp_bpf::compile(&filter).unwrap());
        assert_eq!(
            exec.temporary,
            vec![
                everywhere(Cap::CAP_SYS_ADMIN),
                Added {
                    bounding: false,
                    ..everywhere(Cap::CAP_SETPCAP)
                },
            ]
        );
    }
}
