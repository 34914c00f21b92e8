//! Copying a directory of one root into a directory of another: Docker's copy-up, which fills
//! a new, empty volume with what the image has at its mount point before the first start.
//!
//! What `cp -a` did here before, without its path strings: the source path is resolved inside
//! the container's rootfs (`openat2` with `RESOLVE_IN_ROOT`, so `/vol -> ../../etc` is the
//! image's `/etc`, never the host's), and the tree is walked from that descriptor with
//! `O_NOFOLLOW`: symlinks are copied as links (their targets are never read), files, devices,
//! fifos and sockets as what they are, hard links inside the tree as hard links; owners, modes,
//! access and modification times (to the nanosecond) and extended attributes come along, the
//! directory's own too. Everything is created relative to descriptors of the volume's
//! directory, with `O_EXCL`/`O_NOFOLLOW`, so nothing is ever written outside it.
//!
//! The same walk copies an image layer for a remapped container where the kernel cannot
//! idmap it ([`copy_tree_into_range`]): owners moved into the mapping's range, overlayfs's
//! own attributes (opaque directories) kept, file capabilities tied to the mapping's root.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use berth_core::idmap::{IdMap, OVERFLOW_ID};

use super::extract::{create_in, errno, set_mode, set_owner};
use super::{cstring, is_dir, list_dir, lstat_at, open_in, readlink_at, Root};

/// Fills the directory `dest` (a host directory berth made: a volume's `_data`) with what the
/// root filesystem at `rootfs` has at `path`, resolved inside it as the container would see
/// it. Nothing happens when `dest` is not empty or `path` is no directory there. Returns
/// whether anything was copied.
pub(crate) fn copy_up(rootfs: &Path, path: &[u8], dest: &Path) -> io::Result<bool> {
    let to = Root::open(dest)?;
    let top = to.open_dir(&[])?;
    if !list_dir(top.as_raw_fd()).is_ok_and(|l| l.is_empty()) {
        return Ok(false);
    }
    let from = Root::open(rootfs)?;
    let src = match from.open_at(path, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        // Missing, not a directory, or a loop of links: nothing to copy (as before).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP)
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(e),
    };
    let mut copier = Copier {
        to: &to,
        links: HashMap::new(),
        ids: None,
    };
    copier.tree(src.as_raw_fd(), top.as_raw_fd())?;
    Ok(true)
}

/// Copies the directory `src` (a snapshot berth unpacked) into the empty directory `dest`
/// with every owner moved from the image's view into `map`'s range on the host, for a
/// remapped container where the kernel cannot idmap the layer. Whiteouts and opaque marks
/// stay what they are.
pub(crate) fn copy_tree_into_range(src: &Path, dest: &Path, map: &IdMap) -> io::Result<()> {
    let to = Root::open(dest)?;
    let top = to.open_dir(&[])?;
    let from = Root::open(src)?.open_dir(&[])?;
    let mut copier = Copier {
        to: &to,
        links: HashMap::new(),
        ids: Some(map),
    };
    copier.tree(from.as_raw_fd(), top.as_raw_fd())
}

struct Copier<'r> {
    to: &'r Root,
    /// Files with several links: (dev, ino) in the source → where the first one went.
    links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    /// A layer copied into a mapping's range (see [`copy_tree_into_range`]).
    ids: Option<&'r IdMap>,
}

impl Copier<'_> {
    /// Everything in `src` into `top`, which then takes the source directory's owner, mode
    /// and times too (as `cp -a src/. dest` gives them).
    fn tree(&mut self, src: RawFd, top: RawFd) -> io::Result<()> {
        self.children(src, top, &mut Vec::new())?;
        let st = lstat_at(src, c"")?;
        self.xattrs(src, top);
        self.own(top, c"", &st)?;
        fchmod(top, st.st_mode)?;
        set_times(top, c".", &st)
    }

    /// `name` in `dir` (`""`: `dir` itself) gets the owner of `st`, moved into the mapping's
    /// range when there is one (an ID it lacks becomes the overflow ID, as an idmapped mount
    /// shows it).
    fn own(&self, dir: RawFd, name: &CStr, st: &libc::stat) -> io::Result<()> {
        let (uid, gid) = match self.ids {
            Some(map) => (
                map.uids.to_host(st.st_uid).unwrap_or(OVERFLOW_ID),
                map.gids.to_host(st.st_gid).unwrap_or(OVERFLOW_ID),
            ),
            None => (st.st_uid, st.st_gid),
        };
        set_owner(dir, name, uid, gid)
    }

    fn xattrs(&self, from: RawFd, to: RawFd) {
        copy_xattrs(from, to, self.ids);
    }
    /// Copies what is in the directory `src` into the directory `dst` (at `comps` in the
    /// destination root).
    fn children(&mut self, src: RawFd, dst: RawFd, comps: &mut Vec<Vec<u8>>) -> io::Result<()> {
        for name in list_dir(src)? {
            comps.push(name.to_bytes().to_vec());
            let copied = self.entry(src, dst, &name, comps);
            comps.pop();
            copied?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        src: RawFd,
        dst: RawFd,
        name: &CStr,
        comps: &mut Vec<Vec<u8>>,
    ) -> io::Result<()> {
        let st = lstat_at(src, name)?;
        let kind = st.st_mode & libc::S_IFMT;
        if is_dir(&st) {
            // SAFETY: `name` is NUL-terminated.
            errno(unsafe { libc::mkdirat(dst, name.as_ptr(), 0o700) })?;
            let from = open_in(src, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
            let to = open_in(dst, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
            self.children(from.as_raw_fd(), to.as_raw_fd(), comps)?;
            self.own(to.as_raw_fd(), c"", &st)?;
            self.xattrs(from.as_raw_fd(), to.as_raw_fd());
            fchmod(to.as_raw_fd(), st.st_mode)?;
            // Last: the children changed it.
            return set_times(dst, name, &st);
        }
        if kind != libc::S_IFLNK && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                let (leaf, parents) = first.split_last().expect("a file has a name");
                let dir = self.to.open_dir(parents)?;
                let leaf = cstring(leaf)?;
                // SAFETY: both names are NUL-terminated; flags 0 do not follow a symlink.
                return errno(unsafe {
                    libc::linkat(dir.as_raw_fd(), leaf.as_ptr(), dst, name.as_ptr(), 0)
                });
            }
            self.links.insert(key, comps.clone());
        }
        match kind {
            libc::S_IFREG => {
                let from = open_in(src, name, libc::O_RDONLY | libc::O_NOCTTY)?;
                let to = create_in(dst, name)?;
                let mut reader = std::fs::File::from(from);
                let mut writer = std::fs::File::from(to);
                io::copy(&mut reader, &mut writer)?;
                self.own(writer.as_raw_fd(), c"", &st)?;
                // After chown, which drops security.capability, and before chmod (set-id bits).
                self.xattrs(reader.as_raw_fd(), writer.as_raw_fd());
                fchmod(writer.as_raw_fd(), st.st_mode)?;
            }
            libc::S_IFLNK => {
                // The link itself, never what it points at.
                let target = cstring(&readlink_at(src, name)?)?;
                // SAFETY: both strings are NUL-terminated.
                errno(unsafe { libc::symlinkat(target.as_ptr(), dst, name.as_ptr()) })?;
                self.own(dst, name, &st)?;
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK => {
                // SAFETY: `name` is NUL-terminated.
                errno(unsafe { libc::mknodat(dst, name.as_ptr(), kind | 0o600, st.st_rdev) })?;
                self.own(dst, name, &st)?;
                set_mode(dst, name, st.st_mode)?;
            }
            _ => return Ok(()),
        }
        set_times(dst, name, &st)
    }
}

/// The mode bits of `st_mode` onto the open file `fd` (after its owner: chown drops set-id
/// bits).
fn fchmod(fd: RawFd, st_mode: u32) -> io::Result<()> {
    // SAFETY: a plain call on an open descriptor.
    errno(unsafe { libc::fchmod(fd, st_mode & 0o7777) })
}

/// Access and modification times of `st` onto `name` in `dir` (`.`: `dir` itself), never
/// through a symlink.
fn set_times(dir: RawFd, name: &CStr, st: &libc::stat) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ];
    // SAFETY: `name` is NUL-terminated; `times` holds two timespecs.
    errno(unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// The names of the extended attributes of the open file `fd`.
fn xattr_names(fd: RawFd) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = unsafe { libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            break;
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return Vec::new();
    }
    buf.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Copies the extended attributes of the open file `from` to `to`, as `cp -a` does: one that
/// cannot be read or set is left out without a word. overlayfs's own come along only in a
/// layer copied into a mapping's range (`ids`), where file capabilities are tied to the
/// mapping's root.
fn copy_xattrs(from: RawFd, to: RawFd, ids: Option<&IdMap>) {
    for name in xattr_names(from) {
        let overlay_own = name.starts_with(berth_image::layer::whiteout::overlay_xattr_prefix());
        if (overlay_own && ids.is_none()) || name == b"security.selinux" {
            continue;
        }
        let Ok(key) = cstring(&name) else { continue };
        let Some(mut value) = berth_image::layer::fd::fgetxattr(from, &key) else {
            continue;
        };
        if let (Some(map), b"security.capability") = (ids, name.as_slice()) {
            value = map.fcaps_to_host(&value);
        }
        // SAFETY: `key` is NUL-terminated; `value` is a valid buffer of its length.
        unsafe { libc::fsetxattr(to, key.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};

    #[test]
    fn the_tree_comes_along_and_links_stay_links() {
        let t = tempfile::tempdir().unwrap();
        let (rootfs, vol) = (t.path().join("rootfs"), t.path().join("vol"));
        let data = rootfs.join("data");
        std::fs::create_dir_all(data.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(data.join("file"), "content").unwrap();
        std::fs::set_permissions(data.join("file"), PermissionsExt::from_mode(0o640)).unwrap();
        std::fs::hard_link(data.join("file"), data.join("sub/same")).unwrap();
        std::fs::write(data.join("sub/deeper/f"), "deep").unwrap();
        symlink("/etc", data.join("abs")).unwrap();
        symlink("../../..", data.join("up")).unwrap();
        symlink("file", data.join("rel")).unwrap();
        std::fs::set_permissions(&data, PermissionsExt::from_mode(0o751)).unwrap();
        let fifo = cstring(data.join("fifo").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `fifo` is NUL-terminated.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::fs::set_permissions(data.join("fifo"), PermissionsExt::from_mode(0o620)).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::new(1_000_000, 123);
        std::fs::File::open(data.join("sub/deeper/f"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::lchown(data.join("sub"), Some(1000), Some(1001)).unwrap();
            std::os::unix::fs::lchown(data.join("abs"), Some(7), Some(8)).unwrap();
        }

        assert!(copy_up(&rootfs, b"/data", &vol).unwrap());
        assert_eq!(
            std::fs::read_to_string(vol.join("file")).unwrap(),
            "content"
        );
        assert_eq!(
            std::fs::read_to_string(vol.join("sub/deeper/f")).unwrap(),
            "deep"
        );
        let m = |p: &str| std::fs::symlink_metadata(vol.join(p)).unwrap();
        assert_eq!(m("file").permissions().mode() & 0o7777, 0o640);
        assert_eq!(
            m("file").ino(),
            m("sub/same").ino(),
            "hard links stay linked"
        );
        assert_eq!(
            std::fs::read_link(vol.join("abs")).unwrap(),
            Path::new("/etc")
        );
        assert_eq!(
            std::fs::read_link(vol.join("up")).unwrap(),
            Path::new("../../..")
        );
        assert_eq!(
            std::fs::read_link(vol.join("rel")).unwrap(),
            Path::new("file")
        );
        assert!(m("fifo").file_type().is_fifo());
        assert_eq!(m("fifo").permissions().mode() & 0o7777, 0o620);
        assert_eq!(
            m("sub/deeper/f").modified().unwrap(),
            old,
            "times to the nanosecond"
        );
        // The directory itself takes the source's mode, as `cp -a src/. dest` does.
        assert_eq!(m(".").permissions().mode() & 0o7777, 0o751);
        if nix::unistd::geteuid().is_root() {
            assert_eq!((m("sub").uid(), m("sub").gid()), (1000, 1001));
            assert_eq!((m("abs").uid(), m("abs").gid()), (7, 8));
        }

        // Not empty any more: a second copy-up changes nothing.
        std::fs::write(data.join("later"), "x").unwrap();
        assert!(!copy_up(&rootfs, b"/data", &vol).unwrap());
        assert!(!vol.join("later").exists());
    }

    #[test]
    fn the_source_is_resolved_inside_the_rootfs() {
        // The host has a directory the image's links name; the image has its own.
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host").unwrap();
        let t = tempfile::tempdir().unwrap();
        let rootfs = t.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc/app")).unwrap();
        std::fs::write(rootfs.join("etc/app/conf"), "image").unwrap();
        symlink("/etc", rootfs.join("abs")).unwrap();
        symlink("../../../../../../etc", rootfs.join("up")).unwrap();
        symlink(host.path(), rootfs.join("hostdir")).unwrap();
        std::fs::write(rootfs.join("plain"), "x").unwrap();
        let copy = |path: &str| {
            let vol = tempfile::tempdir().unwrap();
            let copied = copy_up(&rootfs, path.as_bytes(), vol.path()).unwrap();
            let mut names: Vec<String> = std::fs::read_dir(vol.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            (copied, names)
        };
        assert_eq!(copy("/abs/app"), (true, vec!["conf".to_owned()]));
        assert_eq!(copy("/up/app"), (true, vec!["conf".to_owned()]));
        assert_eq!(copy("/../../etc/app"), (true, vec!["conf".to_owned()]));
        // A link to a host path is that path inside the rootfs, where it does not exist.
        assert_eq!(copy("/hostdir"), (false, vec![]));
        assert_eq!(copy("/missing/x"), (false, vec![]));
        assert_eq!(copy("/plain"), (false, vec![]));
    }
    #[test]
    fn a_layer_copied_into_a_range_keeps_its_overlay_marks() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root for owners, whiteouts and trusted xattrs");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (layer, copy) = (t.path().join("fs"), t.path().join("copy"));
        std::fs::create_dir_all(layer.join("opaque")).unwrap();
        std::fs::create_dir(&copy).unwrap();
        std::fs::write(layer.join("root-file"), "r").unwrap();
        std::fs::write(layer.join("user-file"), "u").unwrap();
        std::os::unix::fs::lchown(layer.join("user-file"), Some(7), Some(8)).unwrap();
        std::os::unix::fs::lchown(layer.join("opaque"), Some(70_000), Some(0)).unwrap();
        let dir = cstring(layer.join("opaque").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a one-byte value.
        let set = unsafe {
            libc::setxattr(
                dir.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(set, 0);
        let wh = cstring(layer.join("gone").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `wh` is NUL-terminated; a 0/0 character device is overlayfs's whiteout.
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
        let range = berth_core::idmap::IdRange {
            container: 0,
            host: 100_000,
            size: 65536,
        };
        let map = IdMap {
            uids: range,
            gids: range,
        };
        copy_tree_into_range(&layer, &copy, &map).unwrap();
        let owner = |p: &str| {
            let m = std::fs::symlink_metadata(copy.join(p)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner("."), (100_000, 100_000));
        assert_eq!(owner("root-file"), (100_000, 100_000));
        assert_eq!(owner("user-file"), (100_007, 100_008));
        assert_eq!(owner("opaque"), (OVERFLOW_ID, 100_000));
        let opaque = Root::open(&copy)
            .unwrap()
            .open_dir(&[b"opaque".to_vec()])
            .unwrap();
        assert_eq!(
            berth_image::layer::fd::fgetxattr(opaque.as_raw_fd(), c"trusted.overlay.opaque"),
            Some(b"y".to_vec())
        );
        let gone = std::fs::symlink_metadata(copy.join("gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        // The source is untouched.
        let m = std::fs::symlink_metadata(layer.join("root-file")).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0));
    }
}
