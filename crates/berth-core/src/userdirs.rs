//! Where a rootless berth keeps its state and its socket: the XDG base directories of the
//! user, as Docker's rootless mode does (`$XDG_DATA_HOME/berth`, `$XDG_RUNTIME_DIR/berth`).

use std::path::PathBuf;

/// `$XDG_RUNTIME_DIR`, else `/run/user/<uid>` when it exists.
pub fn runtime_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let dir = PathBuf::from(format!("/run/user/{}", effective_uid()));
    dir.is_dir().then_some(dir)
}

/// `$XDG_DATA_HOME`, else `$HOME/.local/share`.
pub fn data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".local/share"))
}

/// A rootless daemon's socket: `$XDG_RUNTIME_DIR/berth/berth.sock`.
pub fn rootless_socket() -> Option<PathBuf> {
    runtime_dir().map(|d| d.join("berth/berth.sock"))
}

/// A rootless daemon's root: `$XDG_DATA_HOME/berth`.
pub fn rootless_root() -> Option<PathBuf> {
    data_dir().map(|d| d.join("berth"))
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
