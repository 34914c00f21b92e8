//! Whiteouts, the one table of them: how a layer says "deleted" and "replaced", in both of
//! the forms berth handles.
//!
//! | meaning | OCI layer tar (what images carry) | overlayfs (snapshots, upper dirs) |
//! |---|---|---|
//! | `dir/x` deleted | a file `dir/.wh.x` | a character device 0/0 named `x` |
//! | `dir` replaced (lower layers' content hidden) | a file `dir/.wh..wh..opq` | `trusted.overlay.opaque=y` on `dir` (`user.overlay.opaque` in a user namespace) |
//!
//! [`super::apply`] turns the tar form into overlayfs's, [`super::write`] overlayfs's into the
//! tar form, and [`super::diff`] reads overlayfs's.

use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;

use super::fd::fgetxattr;

/// Prefix of a whiteout entry's name in a layer tar.
pub const PREFIX: &[u8] = b".wh.";
/// Name of the entry that marks its directory opaque in a layer tar.
pub const OPAQUE: &[u8] = b".wh..wh..opq";
/// The extended attribute that marks an overlayfs directory opaque (value `y`) on the host.
pub const TRUSTED_OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
/// The same in a user namespace (a rootless daemon), where `trusted.*` cannot be set and
/// overlayfs is mounted with `userxattr`, which reads `user.overlay.*` instead.
pub const USER_OPAQUE_XATTR: &CStr = c"user.overlay.opaque";

/// The opaque marker this process's overlay mounts read (see [`overlay_xattr_prefix`]).
pub fn opaque_xattr() -> &'static CStr {
    if berth_core::idmap::in_user_namespace() {
        USER_OPAQUE_XATTR
    } else {
        TRUSTED_OPAQUE_XATTR
    }
}

/// The prefix of overlayfs's own extended attributes for this process: `trusted.overlay.`,
/// or `user.overlay.` in a user namespace (overlayfs's `userxattr`). They describe a layer's
/// place in an overlay and are never copied as a file's own.
pub fn overlay_xattr_prefix() -> &'static [u8] {
    if berth_core::idmap::in_user_namespace() {
        b"user.overlay."
    } else {
        b"trusted.overlay."
    }
}

/// What the last component of a layer entry's name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// `.wh..wh..opq`: the directory holding it is opaque.
    Opaque,
    /// `.wh.NAME`: NAME is deleted (NAME may be empty, which no valid layer has).
    Whiteout(&'a [u8]),
    /// A file like any other.
    Plain,
}

/// Reads the last component of a layer entry's name.
pub fn entry(last: &[u8]) -> Entry<'_> {
    if last == OPAQUE {
        Entry::Opaque
    } else if let Some(hidden) = last.strip_prefix(PREFIX) {
        Entry::Whiteout(hidden)
    } else {
        Entry::Plain
    }
}

/// The layer tar name of the whiteout for the entry named `name` (`dir/x` → `dir/.wh.x`).
pub fn tar_name(name: &[u8]) -> Vec<u8> {
    let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => (&b""[..], name),
    };
    let mut out = dir.to_vec();
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(base);
    out
}

/// The layer tar name of the opaque marker in the directory named `dir` (empty: the top).
pub fn opaque_tar_name(dir: &[u8]) -> Vec<u8> {
    let mut out = dir.to_vec();
    if !out.is_empty() && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(OPAQUE);
    out
}

/// Whether `st` is an overlayfs whiteout (a character device 0/0).
pub fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// The opaque mark fuse-overlayfs (a rootless daemon's `--storage-driver fuse-overlayfs`)
/// sets on an upper directory, beside a `.wh..wh..opq` file and a `.wh..opq` whiteout.
pub const FUSE_OPAQUE_XATTR: &CStr = c"user.fuseoverlayfs.opaque";

/// Whether the directory open as `dir` is an overlayfs (or fuse-overlayfs) opaque directory.
pub fn is_opaque(dir: RawFd) -> bool {
    fgetxattr(dir, opaque_xattr()).as_deref() == Some(b"y")
        || fgetxattr(dir, FUSE_OPAQUE_XATTR).as_deref() == Some(b"y")
}

/// Whether `name` in an upper directory is one of fuse-overlayfs's own opaque markers (the
/// directory's [`is_opaque`] says the same), not a file of the container's.
pub fn is_fuse_marker(name: &[u8]) -> bool {
    name == b".wh..opq" || name == OPAQUE
}

/// Marks the directory open as `dir` opaque.
pub fn mark_opaque(dir: RawFd) -> io::Result<()> {
    // SAFETY: the key is NUL-terminated; the value is a valid 1-byte buffer.
    let r = unsafe { libc::fsetxattr(dir, opaque_xattr().as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the overlayfs whiteout `name` in the directory open as `dir` (nothing may be there).
pub fn make_whiteout(dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    let r = unsafe { libc::mknodat(dir, name.as_ptr(), libc::S_IFCHR, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn fuse_overlayfs_markers_are_its_own_names_only() {
        assert!(is_fuse_marker(b".wh..opq"));
        assert!(is_fuse_marker(b".wh..wh..opq"));
        assert!(!is_fuse_marker(b".wh.x"));
        assert!(!is_fuse_marker(b"opq"));
    }
    use super::*;

    #[test]
    fn names_in_both_directions() {
        assert_eq!(entry(b".wh..wh..opq"), Entry::Opaque);
        assert_eq!(entry(b".wh.passwd"), Entry::Whiteout(b"passwd"));
        assert_eq!(entry(b".wh."), Entry::Whiteout(b""));
        assert_eq!(entry(b"passwd"), Entry::Plain);
        assert_eq!(entry(b"x.wh.y"), Entry::Plain);
        assert_eq!(tar_name(b"etc/passwd"), b"etc/.wh.passwd");
        assert_eq!(tar_name(b"top"), b".wh.top");
        assert_eq!(opaque_tar_name(b"var/lib"), b"var/lib/.wh..wh..opq");
        assert_eq!(opaque_tar_name(b"var/"), b"var/.wh..wh..opq");
        assert_eq!(opaque_tar_name(b""), b".wh..wh..opq");
        for name in [&b"etc/passwd"[..], b"a"] {
            let t = tar_name(name);
            let last = t.rsplit(|&b| b == b'/').next().unwrap();
            let base = name.rsplit(|&b| b == b'/').next().unwrap();
            assert_eq!(entry(last), Entry::Whiteout(base));
        }
    }

    #[test]
    fn overlay_forms() {
        if !nix::unistd::geteuid().is_root() {
            return; // device nodes and trusted xattrs need root
        }
        use std::os::fd::AsRawFd;
        let t = tempfile::tempdir().unwrap();
        let dir = std::fs::File::open(t.path()).unwrap();
        assert!(!is_opaque(dir.as_raw_fd()));
        mark_opaque(dir.as_raw_fd()).unwrap();
        assert!(is_opaque(dir.as_raw_fd()));
        make_whiteout(dir.as_raw_fd(), c"gone").unwrap();
        let st = super::super::fd::lstat_at(dir.as_raw_fd(), c"gone").unwrap();
        assert!(is_whiteout(&st));
        std::fs::write(t.path().join("file"), "").unwrap();
        let st = super::super::fd::lstat_at(dir.as_raw_fd(), c"file").unwrap();
        assert!(!is_whiteout(&st));
    }
}
