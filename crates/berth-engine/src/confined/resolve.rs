//! Paths inside a container's root filesystem, resolved by the kernel.
//!
//! Every lookup is `openat2(2)` from a descriptor of the container's root with
//! `RESOLVE_IN_ROOT`: `..` stops at the root and an absolute symlink starts again from it, so
//! whatever the container put in its filesystem (`/escape -> /`, `x -> ../../..`), no lookup
//! reaches a host path, even when the container renames things while we look (the class of
//! CVE-2018-15664 and CVE-2019-14271). Work on the files found is done relative to the
//! descriptors opened this way (`*at` calls with `AT_SYMLINK_NOFOLLOW`/`O_NOFOLLOW`), never on
//! path strings.
//!
//! [`View::resolve`] also works out the path a name leads to inside the container (a symlink's
//! final target, for `linkTarget` and the directory a PUT extracts into), one component at a
//! time, each step again through `openat2`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) use berth_image::layer::fd::{
    cstring, is_dir, is_symlink, list_dir, lstat_at, open_in, readlink_at,
};

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Symlinks followed in one lookup before it is given up (ELOOP), as the kernel's 40.
const MAX_LINKS: usize = 40;

/// `openat2(dir, path, flags, resolve)`; retried on EINTR, and on EAGAIN (the kernel answers
/// that for RESOLVE_IN_ROOT when a rename raced the lookup).
pub(crate) fn openat2(dir: RawFd, path: &CStr, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    let mut tries = 0;
    loop {
        // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the size passed;
        // the kernel only reads both.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            // SAFETY: the syscall returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) if tries < 128 => tries += 1,
            Some(libc::ENOSYS) => {
                return Err(io::Error::other(
                    "openat2 is not available (berth needs Linux 5.6 or later to copy files in and out of containers)",
                ))
            }
            _ => return Err(e),
        }
    }
}

/// The components of `path` (`/`-separated; empty ones and `.` dropped, `..` kept).
pub(crate) fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// `/a/b` of components (`/` for none).
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// A container's root filesystem, opened once for one operation.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
}

const IN_ROOT: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

impl Root {
    /// Opens the directory at `path` (a host path berth made: the rootfs mount point) as a root.
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let c = cstring(path.as_os_str().as_bytes())?;
        let fd = openat2(
            libc::AT_FDCWD,
            &c,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        Ok(Root { fd })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Opens `path` (taken as absolute inside the root) with `flags`, following symlinks
    /// inside the root only.
    pub(crate) fn open_at(&self, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
        let rel: Vec<u8> = path.iter().copied().skip_while(|&b| b == b'/').collect();
        let rel = if rel.is_empty() { b".".to_vec() } else { rel };
        openat2(self.raw(), &cstring(&rel)?, flags, IN_ROOT)
    }

    /// Opens the directory at `comps` for reading and for `*at` calls.
    pub(crate) fn open_dir(&self, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
        self.open_at(&join(comps), libc::O_RDONLY | libc::O_DIRECTORY)
    }
}

/// A directory mounted into the container (a volume or a bind mount), reached on the host
/// through its own root.
#[derive(Debug)]
pub(crate) struct Mount {
    /// Where the container sees it (resolved components).
    pub(crate) target: Vec<Vec<u8>>,
    pub(crate) root: Root,
    pub(crate) readonly: bool,
}

/// What the container sees: its root filesystem with its volumes and bind mounts over it.
/// A path is looked up in the mount with the longest target that contains it (else the root),
/// relative to that mount's root; the logical path is always the container's.
#[derive(Debug)]
pub(crate) struct View {
    pub(crate) root: Root,
    mounts: Vec<Mount>,
}

impl View {
    pub(crate) fn new(root: Root) -> View {
        View {
            root,
            mounts: Vec::new(),
        }
    }

    /// Adds a mount at `target` (a path in the container), resolved in the view so far as
    /// the runtime resolves mount targets.
    pub(crate) fn add_mount(&mut self, target: &[u8], root: Root, readonly: bool) {
        let target = self
            .resolve(target, true)
            .unwrap_or_else(|_| lexical(target));
        self.mounts.push(Mount {
            target,
            root,
            readonly,
        });
        self.mounts
            .sort_by_key(|m| std::cmp::Reverse(m.target.len()));
    }

    /// The mount holding `comps` (None: the root filesystem).
    pub(crate) fn mount_of(&self, comps: &[Vec<u8>]) -> Option<&Mount> {
        self.mounts.iter().find(|m| comps.starts_with(&m.target))
    }

    /// The mount whose target is exactly `comps`.
    pub(crate) fn mount_at(&self, comps: &[Vec<u8>]) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.target == comps)
    }

    /// Opens the logical path `comps` with `flags`.
    pub(crate) fn open_at(&self, comps: &[Vec<u8>], flags: i32) -> io::Result<OwnedFd> {
        match self.mount_of(comps) {
            Some(m) => m.root.open_at(&join(&comps[m.target.len()..]), flags),
            None => self.root.open_at(&join(comps), flags),
        }
    }

    /// Opens the directory at `comps` for reading and for `*at` calls.
    pub(crate) fn open_dir(&self, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
        self.open_at(comps, libc::O_RDONLY | libc::O_DIRECTORY)
    }

    /// The components of the path `path` leads to inside the container: symlinks are
    /// followed (the last one only with `follow_last`), `..` stops at the root. A missing last
    /// component is fine (it is what a copy creates); a missing or non-directory one before it
    /// is not. Each step is a lookup through `openat2`, so no step leaves a root.
    pub(crate) fn resolve(&self, path: &[u8], follow_last: bool) -> io::Result<Vec<Vec<u8>>> {
        self.resolve_in(path, follow_last, false)
    }

    /// Where `path` leads, even when part of the way does not exist: from the first missing
    /// component on, the rest is taken as written (Docker's `FollowSymlinkInScope`, for a
    /// symlink's `linkTarget`: a copy to a dangling link creates its target).
    pub(crate) fn resolve_target(&self, path: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        self.resolve_in(path, true, true)
    }

    fn resolve_in(
        &self,
        path: &[u8],
        follow_last: bool,
        lenient: bool,
    ) -> io::Result<Vec<Vec<u8>>> {
        let mut todo: std::collections::VecDeque<Vec<u8>> = components(path).into();
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                done.pop();
                continue;
            }
            done.push(c);
            let last = todo.is_empty();
            if last && !follow_last {
                break;
            }
            let fd = match self.open_at(&done, libc::O_PATH | libc::O_NOFOLLOW) {
                Ok(fd) => fd,
                Err(e) if last && e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if lenient && e.kind() == io::ErrorKind::NotFound => {
                    for c in todo {
                        if c == b".." {
                            done.pop();
                        } else {
                            done.push(c);
                        }
                    }
                    break;
                }
                Err(e) => return Err(e),
            };
            let st = lstat_at(fd.as_raw_fd(), c"")?;
            if is_symlink(&st) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = readlink_at(fd.as_raw_fd(), c"")?;
                done.pop();
                if target.first() == Some(&b'/') {
                    done.clear();
                }
                for t in components(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            } else if !last && !is_dir(&st) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
        }
        Ok(done)
    }
}

/// The layer writer descends into the view's volumes and bind mounts (`cp` of a directory
/// holding one), each through its own root.
impl berth_image::layer::write::Mounts for View {
    fn mounted_at(&self, comps: &[Vec<u8>]) -> Option<io::Result<OwnedFd>> {
        self.mount_at(comps).map(|m| m.root.open_dir(&[]))
    }
}

/// `path` cleaned as Go's `filepath.Clean` does it: `..` removes the component before it,
/// lexically (Docker cleans a requested path so before it resolves it).
pub(crate) fn lexical(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in components(path) {
        if c == b".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, tempfile::TempDir, View) {
        // A "host" directory with a secret, and a container root full of escape attempts.
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/shadow"), "container").unwrap();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/", r.join("escape")).unwrap();
        symlink("../../../../../../../../", r.join("a/b/up")).unwrap();
        symlink(host.path(), r.join("hostdir")).unwrap();
        symlink("/etc/shadow", r.join("a/abs")).unwrap();
        symlink("../etc", r.join("a/rel")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let root = Root::open(r).unwrap();
        (host, dir, View::new(root))
    }

    fn read(view: &View, path: &str) -> io::Result<String> {
        let fd = view.root.open_at(path.as_bytes(), libc::O_RDONLY)?;
        let mut s = String::new();
        io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s)?;
        Ok(s)
    }

    fn resolved(root: &View, path: &str, follow: bool) -> String {
        String::from_utf8(join(&root.resolve(path.as_bytes(), follow).unwrap())).unwrap()
    }

    #[test]
    fn symlinks_and_dotdot_stay_inside_the_root() {
        let (_host, _dir, root) = tree();
        assert_eq!(read(&root, "/etc/shadow").unwrap(), "container");
        assert_eq!(read(&root, "/escape/etc/shadow").unwrap(), "container");
        assert_eq!(
            read(&root, "/escape/escape/../../etc/shadow").unwrap(),
            "container"
        );
        assert_eq!(read(&root, "/a/b/up/etc/shadow").unwrap(), "container");
        assert_eq!(read(&root, "../../../etc/shadow").unwrap(), "container");
        assert_eq!(read(&root, "/a/abs").unwrap(), "container");
        // A link to a host path is that path inside the container, where it does not exist.
        assert_eq!(
            read(&root, "/hostdir/secret").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            read(&root, "/loop1").unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
    }

    #[test]
    fn resolution_names_the_path_inside_the_root() {
        let (host, _dir, root) = tree();
        assert_eq!(resolved(&root, "/escape/etc/shadow", true), "/etc/shadow");
        assert_eq!(resolved(&root, "/a/b/up", true), "/");
        assert_eq!(resolved(&root, "/a/b/up/../..", true), "/");
        assert_eq!(resolved(&root, "/a/abs", true), "/etc/shadow");
        assert_eq!(resolved(&root, "/a/abs", false), "/a/abs");
        assert_eq!(resolved(&root, "/a/rel/shadow", false), "/etc/shadow");
        assert_eq!(resolved(&root, "/escape/new-file", false), "/new-file");
        // The link leads to the host path's name inside the container, where it is missing.
        assert_eq!(
            root.resolve(b"/hostdir", true).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // As a link's target, that name is still where it leads (a copy there creates it).
        assert_eq!(
            join(&root.resolve_target(b"/hostdir").unwrap()),
            host.path().as_os_str().as_bytes()
        );
        assert_eq!(
            root.resolve(b"/hostdir/secret/more", true)
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            root.resolve(b"/etc/shadow/x", true)
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ENOTDIR)
        );
        assert_eq!(
            root.resolve(b"/loop1", true).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
    }

    #[test]
    fn mounts_are_looked_up_in_their_own_root() {
        let (_host, dir, mut view) = tree();
        let vol = tempfile::tempdir().unwrap();
        std::fs::write(vol.path().join("file"), "volume").unwrap();
        symlink("/etc/shadow", vol.path().join("abs")).unwrap();
        symlink("../etc", vol.path().join("up")).unwrap();
        symlink("/", vol.path().join("escape")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/file"), "hidden by the mount").unwrap();
        // The target itself goes through a symlink of the container (/escape -> /).
        view.add_mount(b"/escape/data", Root::open(vol.path()).unwrap(), true);
        let read_view = |p: &str| {
            let comps = view.resolve(p.as_bytes(), true).unwrap();
            let fd = view.open_at(&comps, libc::O_RDONLY).unwrap();
            let mut s = String::new();
            io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
            (String::from_utf8(join(&comps)).unwrap(), s)
        };
        assert_eq!(
            read_view("/data/file"),
            ("/data/file".into(), "volume".into())
        );
        // Links inside the volume are the container's links: absolute ones start at its root.
        assert_eq!(
            read_view("/data/abs"),
            ("/etc/shadow".into(), "container".into())
        );
        assert_eq!(
            read_view("/data/up/shadow"),
            ("/etc/shadow".into(), "container".into())
        );
        assert_eq!(
            read_view("/data/escape/data/file"),
            ("/data/file".into(), "volume".into())
        );
        assert!(view
            .mount_of(&lexical(b"/data/x"))
            .is_some_and(|m| m.readonly));
        assert!(view.mount_of(&lexical(b"/etc")).is_none());
        assert!(view.mount_at(&lexical(b"/data")).is_some());
    }
}
