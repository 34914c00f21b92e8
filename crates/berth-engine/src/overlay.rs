//! Overlay mounts for container and build-step root filesystems.
//!
//! The classic `mount(2)` takes all options in one string of at most a page (4096 bytes), and
//! every lower dir is a path of ~100 bytes under berth's root: an image of ~40 layers (a base
//! and a Dockerfile of 30 steps) would not fit. When the string is too long, the layers are
//! passed one by one through the new mount API (`fsopen`, `fsconfig` with `lowerdir+`,
//! Linux 6.8+), which has no such limit.
//!
//! In a user namespace (a rootless daemon) overlayfs is mounted with `userxattr`: it keeps its
//! own marks (opaque directories) in `user.overlay.*`, since `trusted.*` needs the host's
//! CAP_SYS_ADMIN; the layer code writes and reads the same names
//! (`berth_image::layer::whiteout::opaque_xattr`).

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How the daemon mounts overlays (`berth daemon --storage-driver`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageDriver {
    /// The kernel's overlayfs (Docker's `overlay2`).
    #[default]
    Overlayfs,
    /// fuse-overlayfs, for a rootless daemon on a kernel that will not mount overlayfs in a
    /// user namespace (before 5.11); a rootless daemon falls back to it by itself.
    FuseOverlayfs,
}

impl std::str::FromStr for StorageDriver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "overlayfs" | "overlay2" => Ok(StorageDriver::Overlayfs),
            "fuse-overlayfs" => Ok(StorageDriver::FuseOverlayfs),
            _ => Err(format!(
                "unsupported storage driver {s:?}: overlayfs (overlay2) or fuse-overlayfs"
            )),
        }
    }
}

/// fuse-overlayfs's program once the daemon mounts overlays with it. The driver is the
/// daemon's, one per process, chosen when the engine opens ([`choose_driver`]).
static FUSE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The driver in use, as `docker info` names it.
pub(crate) fn driver_name() -> &'static str {
    if FUSE.get().is_some() {
        "fuse-overlayfs"
    } else {
        "overlayfs"
    }
}

/// Settles the driver at engine start: fuse-overlayfs when asked for, or when this process
/// is in a user namespace where the kernel refuses overlayfs (checked with a mount in
/// `scratch`). The error says what to install.
pub(crate) fn choose_driver(asked: StorageDriver, scratch: &Path) -> io::Result<()> {
    let fuse = || {
        berth_core::program::find("fuse-overlayfs").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "fuse-overlayfs is not installed (Debian: apt-get install fuse-overlayfs)",
            )
        })
    };
    match asked {
        StorageDriver::FuseOverlayfs => {
            let _ = FUSE.set(fuse()?);
        }
        StorageDriver::Overlayfs if berth_core::idmap::in_user_namespace() => {
            if let Err(e) = probe_kernel_overlay(scratch) {
                let program = fuse().map_err(|f| {
                    io::Error::new(
                        f.kind(),
                        format!("this kernel will not mount overlayfs in a user namespace ({e}), and {f}"),
                    )
                })?;
                tracing::warn!(error = %e, "overlayfs cannot be mounted here; using fuse-overlayfs");
                let _ = FUSE.set(program);
            }
        }
        StorageDriver::Overlayfs => {}
    }
    Ok(())
}

/// Mounts (and unmounts) a one-layer overlay under `scratch`.
fn probe_kernel_overlay(scratch: &Path) -> io::Result<()> {
    let dir = scratch.join(format!("overlay-probe-{}", std::process::id()));
    let (lower, upper, work, target) = (dir.join("l"), dir.join("u"), dir.join("w"), dir.join("m"));
    for d in [&lower, &upper, &work, &target] {
        std::fs::create_dir_all(d)?;
    }
    let mounted = mount_overlay(&target, std::slice::from_ref(&lower), &lower, &upper, &work);
    if mounted.is_ok() {
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(&dir);
    mounted
}

/// Mounts with fuse-overlayfs, which serves the mount from a process of its own (it goes to
/// the background once the mount is there, and ends when it is unmounted).
fn mount_fuse(
    program: &Path,
    target: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> io::Result<()> {
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let out = std::process::Command::new(program)
        .arg("-o")
        .arg(format!(
            "lowerdir={lower},upperdir={},workdir={}",
            upper.display(),
            work.display()
        ))
        .arg(target)
        .stdin(std::process::Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "fuse-overlayfs failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// What fits in one page of mount options, with room to spare.
const MAX_OPTIONS: usize = 4000;

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Mounts an overlay at `target`: `lowers` top first (`empty`, an empty directory, when there
/// are none: overlayfs needs one), `upper` collecting the changes, `work` its scratch dir.
pub(crate) fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    empty: &Path,
    upper: &Path,
    work: &Path,
) -> io::Result<()> {
    let empty_list = [empty.to_path_buf()];
    let lowers = if lowers.is_empty() {
        &empty_list[..]
    } else {
        lowers
    };
    if let Some(program) = FUSE.get() {
        return mount_fuse(program, target, lowers, upper, work);
    }
    let lower = lowers
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut opts = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if berth_core::idmap::in_user_namespace() {
        opts.push_str(",userxattr");
    }
    if opts.len() <= MAX_OPTIONS {
        return nix::mount::mount(
            Some("overlay"),
            target,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(io::Error::from);
    }
    mount_layer_by_layer(target, lowers, upper, work).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "{} layers are too many for one mount string, and this kernel cannot take \
                 them one by one (overlayfs lowerdir+ needs Linux 6.8): {e}",
                lowers.len()
            ),
        )
    })
}

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn set_string(fs: RawFd, key: &str, value: &[u8]) -> io::Result<()> {
    let key = cstr(key.as_bytes())?;
    let value = cstr(value)?;
    // SAFETY: both strings are NUL-terminated and outlive the call; `fs` is an fs context.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
    .map(drop)
}

fn mount_layer_by_layer(
    target: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> io::Result<()> {
    let name = cstr(b"overlay")?;
    // SAFETY: `name` is NUL-terminated; the returned descriptor is owned below.
    let fs = check(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned a new descriptor that nothing else owns.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fs);
    for l in lowers {
        set_string(raw, "lowerdir+", l.as_os_str().as_bytes())?;
    }
    set_string(raw, "upperdir", upper.as_os_str().as_bytes())?;
    set_string(raw, "workdir", work.as_os_str().as_bytes())?;
    if berth_core::idmap::in_user_namespace() {
        let key = cstr(b"userxattr")?;
        // SAFETY: `key` is NUL-terminated; a flag takes no value.
        check(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                raw,
                FSCONFIG_SET_FLAG,
                key.as_ptr(),
                std::ptr::null::<libc::c_void>(),
                0,
            )
        })?;
    }
    // SAFETY: null key and value are what FSCONFIG_CMD_CREATE takes.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            raw,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: `raw` is a configured fs context; the returned mount descriptor is owned below.
    let mnt = check(unsafe { libc::syscall(libc::SYS_fsmount, raw, FSMOUNT_CLOEXEC, 0) })?;
    // SAFETY: fsmount returned a new descriptor that nothing else owns.
    let mnt = unsafe { OwnedFd::from_raw_fd(mnt as RawFd) };
    let empty = cstr(b"")?;
    let to = cstr(target.as_os_str().as_bytes())?;
    // SAFETY: the strings are NUL-terminated; `mnt` is a detached mount to attach at `to`.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            std::os::fd::AsRawFd::as_raw_fd(&mnt),
            empty.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

#[cfg(test)]
mod tests {

    #[test]
    fn storage_drivers_by_dockers_names() {
        assert_eq!("overlay2".parse(), Ok(StorageDriver::Overlayfs));
        assert_eq!("overlayfs".parse(), Ok(StorageDriver::Overlayfs));
        assert_eq!("fuse-overlayfs".parse(), Ok(StorageDriver::FuseOverlayfs));
        let e = "vfs".parse::<StorageDriver>().unwrap_err();
        assert!(e.starts_with("unsupported storage driver \"vfs\""), "{e}");
    }
    use super::*;

    #[test]
    fn more_layers_than_one_mount_string_holds() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED more_layers_than_one_mount_string_holds: needs root to mount");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // 60 layers of long paths: ~9 KB of lowerdir, more than a page. Layer i has file
        // `f` saying i (the top one wins) and its own file `only<i>`.
        let deep = dir.path().join("x".repeat(100));
        let mut lowers = Vec::new();
        for i in 0..60 {
            let l = deep.join(format!("layer-{i:02}-{}", "y".repeat(40)));
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join("f"), i.to_string()).unwrap();
            std::fs::write(l.join(format!("only{i}")), "").unwrap();
            lowers.insert(0, l);
        }
        let (target, upper, work, empty) = (
            dir.path().join("merged"),
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("empty"),
        );
        for d in [&target, &upper, &work, &empty] {
            std::fs::create_dir_all(d).unwrap();
        }
        match mount_overlay(&target, &lowers, &empty, &upper, &work) {
            Ok(()) => {}
            // Kernels before 6.8 have no lowerdir+: the error must say so.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                assert!(e.to_string().contains("Linux 6.8"), "{e}");
                return;
            }
            Err(e) => panic!("{e}"),
        }
        let seen = (
            std::fs::read_to_string(target.join("f")),
            target.join("only0").exists() && target.join("only59").exists(),
        );
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(seen.0.unwrap(), "59");
        assert!(seen.1, "every layer is visible");
        // A short stack still goes through the one string.
        mount_overlay(&target, &lowers[..2], &empty, &upper, &work).unwrap();
        let top = std::fs::read_to_string(target.join("f")).unwrap();
        let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(top, "59");
    }
}
