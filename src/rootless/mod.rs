//! Rootless berth: `berth daemon` run by an unprivileged user.
//!
//! Two processes, as rootlesskit splits it. The one the user starts stays in the host's
//! namespaces as the **agent** (`agent.rs`): it maps the user's subordinate ids into a new
//! user namespace with `newuidmap`/`newgidmap`, gives that namespace's network its way out
//! with `pasta` (or `slirp4netns`), binds published ports on the host for the daemon
//! (`ports.rs`), forwards SIGTERM/SIGINT and exits with the daemon's status. The **daemon**
//! is the same binary re-executed inside new user, mount and network namespaces
//! (`child.rs`): root there, it mounts a sysfs of its own network namespace and, in a cgroup
//! namespace of its own, the cgroup v2 hierarchy at `/sys/fs/cgroup`, then runs the ordinary
//! engine with state under `$XDG_DATA_HOME/berth` and its socket at
//! `$XDG_RUNTIME_DIR/berth/berth.sock`.

pub mod agent;
pub mod child;
pub mod ports;

/// Set in the daemon's environment by the agent: the descriptor of its end of the agent's
/// socket.
pub const CHILD_ENV: &str = "BERTH_ROOTLESS_CHILD";

/// The descriptor number the agent hands the daemon its socket at.
pub const PORTS_FD: i32 = 3;

/// Whether this process runs as an unprivileged user (so `berth daemon` goes rootless).
pub fn unprivileged() -> bool {
    !nix::unistd::geteuid().is_root()
}
