//! Image layers as a remapped container sees them, without copying them: idmapped mounts
//! (`open_tree(OPEN_TREE_CLONE)` of a snapshot, then `mount_setattr(MOUNT_ATTR_IDMAP)` with a
//! user namespace carrying the mapping), detached and handed to overlayfs as
//! `/proc/self/fd/<n>` lower dirs. Files stored as owned by 0 appear owned by the mapping's
//! host root (100000), which is root inside the container.
//!
//! Only the lower layers are idmapped, not the finished overlay: overlayfs refuses to be
//! idmapped itself (`mount_setattr` fails with EINVAL), and an idmapped upper dir does not
//! work for a root mounter either (overlayfs makes its work dir as the mounter, root, which
//! the mapping cannot express: EOVERFLOW, and the overlay turns read-only). So the upper dir
//! is a plain directory: what the container writes is stored in the host's view (100000),
//! which commit, export and `cp` translate back (see `berth_core::idmap`).
//!
//! Where the kernel or filesystem cannot idmap (before Linux 5.19 for overlayfs layers, or a
//! filesystem without support), each layer is copied once per mapping with its owners moved
//! into the mapping's range (`<root>/remap/<uid>.<gid>/<snapshot>`): a start pays a full copy
//! of every layer not copied yet, and the disk holds each layer once more per mapping.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_core::idmap::IdMap;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` (linux/mount.h).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached copy of the mount of `dir` (only `dir` and below), its IDs mapped through the
/// user namespace `userns`.
pub(crate) fn idmapped_clone(dir: &Path, userns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated; the result is a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_tree returned a new descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed; "" with AT_EMPTY_PATH names
    // the detached tree itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// Whether an error of [`idmapped_clone`] means "not here" (old kernel, a filesystem that
/// cannot), rather than a failure to report.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP | libc::EPERM)
    )
}

/// Lower dirs for an overlay in a mapping's view: descriptors of idmapped clones (their
/// `/proc/self/fd/<n>` paths are valid while this lives; overlayfs keeps its own references
/// once mounted), or copies.
#[derive(Debug, Default)]
pub(crate) struct Lowers {
    pub(crate) paths: Vec<PathBuf>,
    _held: Vec<OwnedFd>,
}

impl Lowers {
    /// Idmapped clones of `dirs` (top first).
    pub(crate) fn idmapped(dirs: &[PathBuf], userns: BorrowedFd<'_>) -> io::Result<Lowers> {
        let mut out = Lowers::default();
        for d in dirs {
            let fd = idmapped_clone(d, userns)
                .map_err(|e| io::Error::new(e.kind(), format!("idmap {}: {e}", d.display())))?;
            out.paths
                .push(PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())));
            out._held.push(fd);
        }
        Ok(out)
    }

    /// Copies of `dirs` under `copies` with owners in `map`'s range, each made once (into a
    /// temporary name, then renamed, so a copy is whole or absent).
    pub(crate) fn copied(dirs: &[PathBuf], copies: &Path, map: &IdMap) -> io::Result<Lowers> {
        std::fs::create_dir_all(copies)?;
        let mut out = Lowers::default();
        for d in dirs {
            let dest = copies.join(copy_name(d));
            if !dest.exists() {
                let tmp = copies.join(format!(".tmp-{}-{}", copy_name(d), std::process::id()));
                let _ = std::fs::remove_dir_all(&tmp);
                std::fs::create_dir(&tmp)?;
                let copied = crate::confined::copy::copy_tree_into_range(d, &tmp, map)
                    .and_then(|()| std::fs::rename(&tmp, &dest));
                if let Err(e) = copied {
                    let _ = std::fs::remove_dir_all(&tmp);
                    // Another start made it meanwhile: theirs is as good.
                    if !dest.exists() {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("copy {} for the mapping: {e}", d.display()),
                        ));
                    }
                }
            }
            out.paths.push(dest);
        }
        Ok(out)
    }
}

/// A layer copy's name: its snapshot's (`snapshots/<hex>/fs` → `<hex>`).
fn copy_name(dir: &Path) -> String {
    let named = if dir.file_name().is_some_and(|n| n == "fs") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    named
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "layer".into())
}

/// Removes the copies under `copies` whose snapshot (a name in `snapshots`) is gone, and
/// copies left half-made.
pub(crate) fn sweep_copies(copies: &Path, snapshots: &Path) {
    let Ok(entries) = std::fs::read_dir(copies) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") || !snapshots.join(&name).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_named_after_their_snapshot() {
        assert_eq!(copy_name(Path::new("/r/snapshots/abc/fs")), "abc");
        assert_eq!(copy_name(Path::new("/r/containers/x/empty")), "empty");
    }
}
