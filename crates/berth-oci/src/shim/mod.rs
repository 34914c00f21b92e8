//! What the per-container shim (`berth-runtime shim`) keeps in the engine's state directory
//! for a container, and how to read it. The shim writes these files; the engine only reads
//! them, so both sides share this one definition.
//!
//! State directory (the engine's `containers/<id>/`):
//! - `<id>-json.log` (+ `.1`, `.2` after rotation) — the log ([`log`]).
//! - `shim.json` — `{"shim_pid", "init_pid"}` once the container runs ([`ShimInfo`]).
//! - `exit.json` — `{"exit_code", "finished_at"}` once it has ended, written atomically
//!   ([`ExitInfo`]).
//! - `health.json` — Docker's `State.Health` when the container has a check ([`health`]).
//! - `attach.sock` — clients get the container's output as it comes (Docker's stream framing,
//!   raw for a tty) and what they send goes to its stdin.
//! - `control.sock` — one-line commands (`resize ROWS COLS`).

pub mod health;
pub mod log;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SHIM_FILE: &str = "shim.json";
pub const EXIT_FILE: &str = "exit.json";
pub const ATTACH_SOCKET: &str = "attach.sock";
/// Takes one-line commands: `resize ROWS COLS` sets the pty's window size.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Written once the container runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimInfo {
    pub shim_pid: i32,
    pub init_pid: i32,
    /// How long the shim's steps took, in microseconds and in order (`start.shim.create`,
    /// …): sent to the engine with the start for its timing log, not kept in `shim.json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<(String, u64)>,
}

/// Written once the container has ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
}

/// Writes `value` as JSON to `dir/name` through a temporary file, fsync and rename.
pub fn write_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// A path to `dir/name` short enough for a unix socket address (108 bytes), however long
/// `dir` is: it goes through an open descriptor of the directory, which the returned file
/// keeps open; use the path while it lives.
pub fn short_socket_path(dir: &Path, name: &str) -> std::io::Result<(std::fs::File, PathBuf)> {
    let d = std::fs::File::open(dir)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    Ok((d, path))
}

pub fn read_exit(state_dir: &Path) -> Option<ExitInfo> {
    serde_json::from_slice(&std::fs::read(state_dir.join(EXIT_FILE)).ok()?).ok()
}

pub fn read_shim(state_dir: &Path) -> Option<ShimInfo> {
    serde_json::from_slice(&std::fs::read(state_dir.join(SHIM_FILE)).ok()?).ok()
}

/// Whether the shim recorded in `state_dir` is still supervising its container (for an engine
/// that restarts and re-adopts its containers).
pub fn shim_alive(state_dir: &Path) -> bool {
    match read_shim(state_dir) {
        Some(info) => {
            // SAFETY: kill with signal 0 only checks that the process exists.
            let r = unsafe { libc::kill(info.shim_pid, 0) };
            r == 0 && read_exit(state_dir).is_none()
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_dead_shim_is_not_alive() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_shim(dir.path()), None);
        assert!(!shim_alive(dir.path()));
        let info = ShimInfo {
            shim_pid: std::process::id() as i32,
            init_pid: 1,
            steps: Vec::new(),
        };
        write_atomic(dir.path(), SHIM_FILE, &info).unwrap();
        assert_eq!(read_shim(dir.path()), Some(info));
        assert!(shim_alive(dir.path()), "we are alive");
        let exit = ExitInfo {
            exit_code: 3,
            finished_at: "2024-01-02T03:04:05.000000006Z".into(),
        };
        write_atomic(dir.path(), EXIT_FILE, &exit).unwrap();
        assert_eq!(read_exit(dir.path()), Some(exit));
        assert!(!shim_alive(dir.path()), "an exit was recorded");
        assert!(!dir.path().join(".exit.json.tmp").exists());
    }

    #[test]
    fn socket_paths_stay_short() {
        let long = tempfile::tempdir().unwrap();
        let deep = long.path().join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let (_keep, path) = short_socket_path(&deep, ATTACH_SOCKET).unwrap();
        assert!(path.as_os_str().len() < 108, "{}", path.display());
        assert!(path.ends_with(ATTACH_SOCKET));
    }
}
