//! One process at a time on a root: the daemon holds `<root>/berth.lock` (an exclusive
//! `flock`) for as long as it runs, and so does an offline `berth system check`, so neither
//! ever changes a store the other is using. The kernel lets go of the lock when its holder
//! dies, however it dies; the descriptor is close-on-exec, so shims never inherit it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The lock file's name under the root.
pub const LOCK_FILE: &str = "berth.lock";

/// Held while it lives.
#[derive(Debug)]
pub struct RootLock {
    _file: File,
    path: PathBuf,
}

impl RootLock {
    /// Takes the lock of `root` or fails at once, naming who holds it when `berth.pid` says.
    pub fn acquire(root: &Path) -> io::Result<RootLock> {
        std::fs::create_dir_all(root)?;
        let path = root.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("lock {}: {e}", path.display()),
                ));
            }
            let pid = std::fs::read_to_string(root.join("berth.pid"))
                .ok()
                .map(|p| format!(" (pid {})", p.trim()))
                .unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another berth process{pid}: a daemon serves it, or a system check runs on it",
                    root.display()
                ),
            ));
        }
        Ok(RootLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = RootLock::acquire(dir.path()).unwrap();
        std::fs::write(dir.path().join("berth.pid"), "4242\n").unwrap();
        let err = RootLock::acquire(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains("(pid 4242)"), "{err}");
        drop(first);
        RootLock::acquire(dir.path()).unwrap();
    }
}
