//! Gets the kernel ready for the cgroup move every start and every exec makes.
//!
//! The runtime puts each new container process into its cgroup by writing its PID to a
//! `cgroup.procs` file. For that the kernel takes one global lock (the cgroup threadgroup
//! lock) for writing, and taking it when nobody has taken it in the last few milliseconds waits
//! for an RCU grace period: 6–15 ms on this 2-core VM, measured with the runtime's own move
//! (cgroup v1; v2 takes the same lock), more than everything else in a start. A move that comes
//! within a grace period of the one before does not wait (0.1–0.2 ms here).
//!
//! So when a container or an exec is about to start, [`warm`] has a thread of the daemon move
//! itself into the cgroup it is already in: that changes nothing (the kernel skips a move to
//! the same cgroup), but it takes the lock, so the grace period runs while the daemon writes
//! the bundle and the runtime builds the container's processes, and the runtime's own move
//! then finds the lock ready. Only the daemon's own thread is named (v1: its thread ID in
//! `tasks`; v2: the daemon's PID in `cgroup.procs`, the move of the whole daemon to where it
//! is). Where the daemon may not write its cgroup (rootless), the first failure turns this
//! off; nothing else depends on it.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::OnceLock;

use crate::cgroups::Cgroup;

/// The file a move of the warming thread goes to, and what is written there.
struct Target {
    file: PathBuf,
    /// v1: the thread's own ID (only it moves); v2: the process's.
    thread: bool,
}

impl Target {
    fn of_self() -> Option<Target> {
        match Cgroup::of_pid(i64::from(std::process::id()))? {
            Cgroup::V1(dirs) => {
                let dir = dirs.get("pids").or_else(|| dirs.values().next())?;
                Some(Target {
                    file: dir.join("tasks"),
                    thread: true,
                })
            }
            Cgroup::V2(dir) => Some(Target {
                file: dir.join("cgroup.procs"),
                thread: false,
            }),
        }
    }

    /// Moves the calling thread (or the daemon) to where it is.
    fn move_here(&self) -> std::io::Result<()> {
        let id = if self.thread {
            nix::unistd::gettid().as_raw()
        } else {
            nix::unistd::getpid().as_raw()
        };
        std::fs::write(&self.file, id.to_string())
    }
}

/// Asks the warming thread for one move; returns at once. Asks made while one is pending are
/// the same ask.
pub(crate) fn warm() {
    static WARMER: OnceLock<Option<SyncSender<()>>> = OnceLock::new();
    let sender = WARMER.get_or_init(|| {
        let target = Target::of_self()?;
        let (tx, rx) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("cgroup-warm".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                while rx.recv().is_ok() {
                    if let Err(e) = target.move_here() {
                        tracing::debug!(file = %target.file.display(), error = %e,
                            "cannot move within the daemon's cgroup; starts will not be warmed");
                        return;
                    }
                }
            })
            .ok()?;
        Some(tx)
    });
    if let Some(tx) = sender {
        let _ = tx.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_to_where_the_thread_is_changes_nothing() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: moving within a cgroup needs root");
            return;
        }
        let Some(target) = Target::of_self() else {
            eprintln!("SKIPPED: no cgroup hierarchy found for this process");
            return;
        };
        let before = std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
        target.move_here().unwrap();
        let after = std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
        assert_eq!(before, after);
        let all = std::fs::read_to_string(&target.file).unwrap();
        let me = if target.thread {
            nix::unistd::gettid().as_raw()
        } else {
            nix::unistd::getpid().as_raw()
        };
        assert!(all.lines().any(|l| l == me.to_string()), "{all}");
    }
}
