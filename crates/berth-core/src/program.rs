//! Finding the helper programs berth runs (`nft`, `newuidmap`, `pasta`, `fuse-overlayfs`…):
//! on `PATH`, then in the system directories, which an unprivileged user's `PATH` (and so a
//! rootless daemon's) usually lacks the sbin ones of.

use std::path::PathBuf;

/// Where a program is looked for after `PATH`.
const SYSTEM_DIRS: [&str; 4] = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/// `name` on `PATH`, else in the system directories; None when it is nowhere.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SYSTEM_DIRS.map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_system_program_and_not_a_missing_one() {
        assert!(find("sh").is_some_and(|p| p.ends_with("sh")));
        assert!(find("no-such-program-berth").is_none());
    }
}
