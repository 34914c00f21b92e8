//! The rootless daemon's first steps inside its namespaces, before any thread exists: wait
//! for the agent to map the ids, become root of the user namespace, and make the mounts the
//! engine and the runtime rely on.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};

use super::ports::AgentPorts;

/// What the daemon keeps of its agent, and what it found.
pub struct Rootless {
    pub ports: AgentPorts,
    /// Whether the daemon's cgroup was delegated to the user (so containers get cgroups).
    pub cgroups: bool,
}

/// Runs the set-up; `env` is the value of [`super::CHILD_ENV`].
pub fn enter(env: &str) -> Result<Rootless> {
    let fd = parse_env(env)?;
    // SAFETY: the agent put this descriptor at this number for us; nothing else owns it.
    let ports = unsafe { OwnedFd::from_raw_fd(fd) };
    set_cloexec(&ports)?;
    // Made here, not before exec: a process that executes in a user namespace where it is
    // not (yet) root loses its capabilities there.
    nix::sched::unshare(
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET,
    )
    .context("make the user, mount and network namespaces (are unprivileged user namespaces allowed? see /proc/sys/user/max_user_namespaces)")?;
    nix::unistd::write(&ports, b"ready").context("tell the rootless agent we are ready")?;
    let mut buf = [0u8; 16];
    let n = nix::unistd::read(ports.as_raw_fd(), &mut buf)
        .context("wait for the rootless agent to map ids")?;
    if &buf[..n] != b"mapped" {
        bail!("the rootless agent went away before it mapped ids");
    }

    let root = Gid::from_raw(0);
    nix::unistd::setresgid(root, root, root).context("become gid 0 in the user namespace")?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .context("become uid 0 in the user namespace")?;
    let _ = nix::unistd::setgroups(&[]);

    // Mounts made here stay here; the host's still come in.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("make / a slave mount")?;
    let fs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // The sysfs of this network namespace (bridges and veths under /sys/class/net are ours).
    mount(Some("sysfs"), "/sys", Some("sysfs"), fs_flags, None::<&str>)
        .context("mount a sysfs for the daemon's network namespace")?;
    // Only cgroup v2 can be mounted from a user namespace. In a cgroup namespace of its own
    // the daemon sees its cgroup as the root; where that subtree was delegated to the user it
    // can make containers' cgroups in it, elsewhere the runtime leaves them in their parent's.
    nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).context("make a cgroup namespace")?;
    mount(
        Some("cgroup2"),
        "/sys/fs/cgroup",
        Some("cgroup2"),
        fs_flags,
        None::<&str>,
    )
    .context("mount the cgroup v2 hierarchy")?;
    Ok(Rootless {
        ports: AgentPorts::new(ports),
        cgroups: move_into_leaf(),
    })
}

/// Where the user may write the daemon's cgroup (a delegated v2 subtree), moves the daemon
/// into a leaf of it: cgroup v2 enables controllers for children only of cgroups without
/// processes, and containers' cgroups go beside this leaf. True when that worked and the
/// subtree has the controllers limits need (cpu, memory, pids); a cgroup v1 host's v2
/// hierarchy has none of them.
fn move_into_leaf() -> bool {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !["cpu", "memory", "pids"].iter().all(|c| has(c)) {
        return false;
    }
    let leaf = root.join("berth-daemon");
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(_) => return false,
    }
    std::fs::write(leaf.join("cgroup.procs"), "0").is_ok()
}

fn set_cloexec(fd: &impl std::os::fd::AsRawFd) -> Result<()> {
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .context("mark the agent's descriptor close-on-exec")?;
    Ok(())
}

fn parse_env(env: &str) -> Result<i32> {
    match env.parse() {
        Ok(fd) if fd > 2 => Ok(fd),
        _ => bail!("malformed {}={env:?}", super::CHILD_ENV),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_descriptor_number() {
        assert_eq!(parse_env("3").unwrap(), 3);
        for bad in ["", "2", "-1", "a", "3,4"] {
            assert!(parse_env(bad).is_err(), "{bad:?}");
        }
    }
}
