//! `exec`: a new process in a running container's namespaces and cgroup, by default with the
//! container's own environment, capabilities and user, as runc does.

use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::{Capability, Process};

use crate::bundle::Bundle;
use crate::confined_exec::ConfinedExecutor;
use crate::console::ConsoleSocket;
use crate::error::{Result, RuntimeError};
use crate::foreground;
use crate::lifecycle::Runtime;

/// What to run and how; unset fields take the container's values.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `KEY=value`, added to (and overriding) the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `uid[:gid]` numbers.
    pub user: Option<(u32, Option<u32>)>,
    pub additional_gids: Vec<u32>,
    /// Capabilities to add to the container's set.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
    /// A complete process.json instead of all of the above.
    pub process_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    pub detach: bool,
}

fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |s: &str| {
        s.split_once('=')
            .map_or(s.to_owned(), |(k, _)| k.to_owned())
    };
    let mut out: Vec<String> = base.to_vec();
    for e in extra {
        let k = key(e);
        match out.iter_mut().find(|x| key(x) == k) {
            Some(x) => x.clone_from(e),
            None => out.push(e.clone()),
        }
    }
    out
}

fn process_from_options(base: &Process, opts: &ExecOptions) -> Result<Process> {
    let mut p = base.clone();
    if opts.args.is_empty() {
        return Err(RuntimeError::MalformedConfig {
            path: PathBuf::from("exec"),
            reason: "no command given".into(),
        });
    }
    p.set_args(Some(opts.args.clone()));
    let env = merge_env(p.env().as_deref().unwrap_or(&[]), &opts.env);
    p.set_env(Some(env));
    if let Some(cwd) = &opts.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    p.set_terminal(Some(opts.tty));
    p.set_console_size(None);
    if let Some((uid, gid)) = opts.user {
        let mut user = p.user().clone();
        user.set_uid(uid);
        user.set_gid(gid.unwrap_or(0));
        user.set_additional_gids(None);
        p.set_user(user);
    }
    if !opts.additional_gids.is_empty() {
        let mut user = p.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&opts.additional_gids);
        user.set_additional_gids(Some(gids));
        p.set_user(user);
    }
    if !opts.caps.is_empty() {
        let extra: Vec<Capability> = opts
            .caps
            .iter()
            .map(|c| crate::spec::caps::parse(c))
            .collect::<std::result::Result<_, _>>()?;
        if let Some(mut caps) = p.capabilities().clone() {
            let add = |set: &Option<std::collections::HashSet<Capability>>| {
                let mut s = set.clone().unwrap_or_default();
                s.extend(extra.iter().copied());
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
            p.set_capabilities(Some(caps));
        }
    }
    if opts.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Runs a process in container `id`. Detached, returns 0 once it runs (its pid goes to
/// `pid_file`); otherwise waits and returns its exit code.
pub fn exec(runtime: &Runtime, id: &str, mut opts: ExecOptions) -> Result<i32> {
    let container = runtime.load(id)?;
    let bundle = Bundle::load(container.bundle())?;
    let mut process = match &opts.process_file {
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| RuntimeError::io(format!("read {}", path.display()), e))?;
            serde_json::from_slice::<Process>(&text).map_err(|e| RuntimeError::MalformedConfig {
                path: path.clone(),
                reason: e.to_string(),
            })?
        }
        None => {
            let base = bundle.spec.process().clone().unwrap_or_default();
            process_from_options(&base, &opts)?
        }
    };
    // The exec'd process runs under the container's own seccomp filter, as runc's does (and
    // never under berth's init: that is the container's pid 1 only).
    let executor =
        match bundle
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().clone())
        {
            Some(mut filter) => {
                crate::host::kernel_runs_x32_remembered(&runtime.filter_cache());
                crate::spec::seccomp::drop_dead_arches(&mut filter);
                let compiled = crate::seccomp_bpf::cached(&runtime.filter_cache(), &filter)
                    .map_err(|e| RuntimeError::Operation {
                        id: id.to_owned(),
                        action: "exec in",
                        reason: e.to_string(),
                    })?;
                ConfinedExecutor::prepare(&mut process, compiled)
            }
            None => ConfinedExecutor::new(),
        };
    // libcontainer 0.7 joins all of the container's namespaces but its user namespace: the
    // executor enters it, from a descriptor opened here, outside the container.
    let userns = match container.pid().filter(|_| has_user_namespace(&bundle.spec)) {
        Some(pid) => Some(
            std::fs::File::open(format!("/proc/{pid}/ns/user"))
                .map_err(|e| RuntimeError::io(format!("open the user namespace of {id}"), e))?,
        ),
        None => None,
    };
    let executor = match &userns {
        Some(f) => executor.joining_userns(&mut process, std::os::fd::AsRawFd::as_raw_fd(f)),
        None => executor,
    };
    let terminal = process.terminal().unwrap_or(false);
    let process_path = runtime
        .root()
        .join(id)
        .join(format!("exec-{}.json", std::process::id()));
    let text = serde_json::to_vec(&process).map_err(|e| RuntimeError::MalformedConfig {
        path: process_path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&process_path, text)
        .map_err(|e| RuntimeError::io(format!("write {}", process_path.display()), e))?;

    let console = if terminal && !opts.detach && opts.console_socket.is_none() {
        let socket = ConsoleSocket::new()?;
        opts.console_socket = Some(socket.path().to_path_buf());
        Some(socket)
    } else {
        None
    };
    // libcontainer accepts a console socket only for a "detached" process; we wait ourselves.
    let detach = opts.detach || console.is_some();
    let built = build(runtime.root(), id, &process_path, &opts, detach, executor);
    drop(userns);
    let _ = std::fs::remove_file(&process_path);
    let pid = built?;
    if opts.detach {
        return Ok(0);
    }
    let pty = match &console {
        Some(socket) => Some(socket.receive_master()?),
        None => None,
    };
    drop(console);
    foreground::wait(pid, pty)
}

/// Whether the container has a user namespace of its own.
fn has_user_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
        })
}

fn build(
    root: &Path,
    id: &str,
    process: &Path,
    opts: &ExecOptions,
    detach: bool,
    executor: ConfinedExecutor,
) -> Result<nix::unistd::Pid> {
    ContainerBuilder::new(id.to_owned(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(root)
        .map_err(|e| RuntimeError::libcontainer(id, "exec in", e))?
        .with_pid_file(opts.pid_file.as_ref())
        .map_err(|e| RuntimeError::libcontainer(id, "exec in", e))?
        .with_console_socket(opts.console_socket.as_ref())
        .with_preserved_fds(opts.preserve_fds)
        .as_tenant()
        .with_detach(detach)
        .with_process(Some(process))
        .build()
        .map_err(|e| RuntimeError::libcontainer(id, "exec in", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_override_the_container_process() {
        let spec = crate::spec::docker_default(&crate::spec::ContainerOptions {
            env: vec!["A=1".into(), "B=2".into()],
            ..crate::spec::ContainerOptions::new("rootfs", vec!["sleep".into(), "9".into()])
        })
        .unwrap();
        let base = spec.process().clone().unwrap();
        let p = process_from_options(
            &base,
            &ExecOptions {
                args: vec!["id".into()],
                env: vec!["B=3".into()],
                user: Some((1000, Some(1000))),
                cwd: Some("/tmp".into()),
                tty: true,
                caps: vec!["SYS_ADMIN".into()],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &vec!["id".to_owned()]);
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"A=1".to_owned()) && env.contains(&"B=3".to_owned()));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
        assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
        assert_eq!(p.terminal(), Some(true));
        let caps = p.capabilities().as_ref().unwrap();
        assert!(caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert!(process_from_options(&base, &ExecOptions::default()).is_err());
    }
}
