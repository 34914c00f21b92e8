//! The slow half of a removal, done after the answer.
//!
//! `rm` answers once the container is gone for every client: its record is dropped and its
//! directory renamed to `containers/.removing-<id>` (out of every listing, nothing mounted in
//! it). Deleting that directory and the runtime's record of the container (`berth-runtime
//! delete`: its cgroups and state) takes milliseconds more, which one background thread does
//! in the order removals came. Nothing is lost if the daemon stops first: the daemon waits for
//! the queue at shutdown, and a daemon that crashed leaves `.removing-<id>` directories, which
//! the next one finishes at start, runtime records included (`Engine::finish_removals`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One removal's remains.
pub(crate) struct Remains {
    /// `containers/.removing-<id>`.
    pub dir: PathBuf,
    /// The runtime's record of the container (its state directory) and what deletes it
    /// (`berth-runtime delete --force <id>`: the record, the cgroups), run only if the record
    /// is still there when the removal gets to it.
    pub runtime_state: PathBuf,
    pub runtime_delete: Command,
    /// The container's shim, still finishing when the removal came: it deletes the runtime's
    /// record itself, so it is waited for first.
    pub shim: Option<std::os::fd::OwnedFd>,
}

/// How long a removal waits for a finishing shim before deleting the runtime's record itself.
const SHIM_GRACE: Duration = Duration::from_secs(10);

impl Remains {
    fn clear(mut self) {
        if let Some(shim) = &self.shim {
            super::runtime::ended_within(shim, SHIM_GRACE);
        }
        if self.runtime_state.exists() {
            let _ = self
                .runtime_delete
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Err(e) = remove_doomed(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e,
                "cannot delete a removed container's files; the next daemon start tries again");
        }
    }
}

/// Deletes a container's directory once renamed out of the way. A state write that looked up
/// the directory's path just before the rename still lands in it (the lookup and the write
/// are two steps; seen under load as a `state.json` appearing while the tree was deleted, and
/// the removal failing "Directory not empty"): what it left is taken too, a few times over.
pub(crate) fn remove_doomed(doomed: &std::path::Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(doomed) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            other => return other,
        }
    }
}

/// The background thread and how much it has still to do.
#[derive(Default)]
pub(crate) struct Reaper {
    queue: Mutex<Option<Sender<Remains>>>,
    pending: Arc<(Mutex<usize>, Condvar)>,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper").finish_non_exhaustive()
    }
}

impl Reaper {
    /// Queues `remains`; done here and now if no thread can be had.
    pub(crate) fn clear_later(&self, remains: Remains) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.is_none() {
            let (tx, rx) = channel::<Remains>();
            let pending = self.pending.clone();
            let spawned = std::thread::Builder::new()
                .name("removals".into())
                .spawn(move || {
                    for r in rx {
                        r.clear();
                        let (count, done) = &*pending;
                        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
                        *n -= 1;
                        done.notify_all();
                    }
                });
            if spawned.is_err() {
                drop(queue);
                return remains.clear();
            }
            *queue = Some(tx);
        }
        let Some(tx) = queue.as_ref() else {
            drop(queue);
            return remains.clear();
        };
        *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        if let Err(std::sync::mpsc::SendError(remains)) = tx.send(remains) {
            // The thread is gone (it panicked): done here.
            *self.pending.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            drop(queue);
            remains.clear();
        }
    }

    /// Waits (at most `limit`) until every queued removal is done; false if time ran out.
    pub(crate) fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let (count, done) = &*self.pending;
        let mut n = count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            n = done
                .wait_timeout(n, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_remains_are_cleared_and_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let reaper = Reaper::default();
        let mut dirs = Vec::new();
        for i in 0..5 {
            let dir = tmp.path().join(format!(".removing-{i}"));
            std::fs::create_dir_all(dir.join("upper/a/b")).unwrap();
            std::fs::write(dir.join("upper/a/b/f"), "x").unwrap();
            dirs.push(dir.clone());
            // The runtime's delete runs before the files go (run after, this would leave the
            // directory behind).
            let mut cmd = Command::new("mkdir");
            cmd.arg("-p").arg(dir.join("from-the-runtime"));
            reaper.clear_later(Remains {
                dir,
                runtime_state: tmp.path().to_path_buf(),
                runtime_delete: cmd,
                shim: None,
            });
        }
        assert!(reaper.wait_idle(Duration::from_secs(10)));
        for d in dirs {
            assert!(!d.exists(), "{}", d.display());
        }
        // Nothing queued: idle at once.
        assert!(reaper.wait_idle(Duration::ZERO));
    }

    /// A pidfd of a child standing in for a shim that finishes with `script`.
    fn shim(script: &str) -> (std::process::Child, std::os::fd::OwnedFd) {
        let child = Command::new("sh").args(["-c", script]).spawn().unwrap();
        let fd = super::super::runtime::pidfd_open(child.id() as i32).expect("a pidfd");
        (child, fd)
    }

    #[test]
    fn a_finishing_shim_is_left_to_delete_the_runtime_record() {
        let tmp = tempfile::tempdir().unwrap();
        let reaper = Reaper::default();
        for (case, shim_deletes) in [("deletes", true), ("dies", false)] {
            let state = tmp.path().join(format!("state-{case}"));
            std::fs::create_dir(&state).unwrap();
            let ran = tmp.path().join(format!("delete-ran-{case}"));
            let mut delete = Command::new("touch");
            delete.arg(&ran);
            let script = if shim_deletes {
                format!("sleep 0.2; rmdir {}", state.display())
            } else {
                "sleep 0.2".to_owned()
            };
            let (mut child, fd) = shim(&script);
            reaper.clear_later(Remains {
                dir: tmp.path().join(format!(".removing-{case}")),
                runtime_state: state.clone(),
                runtime_delete: delete,
                shim: Some(fd),
            });
            assert!(reaper.wait_idle(Duration::from_secs(10)));
            child.wait().unwrap();
            // The runtime's delete ran only when the record outlived the shim.
            assert_eq!(ran.exists(), !shim_deletes, "{case}");
        }
    }
}
