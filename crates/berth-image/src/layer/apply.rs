//! Applying a layer (an uncompressed tar stream) to a directory, in overlayfs's format:
//! `.wh.NAME` becomes a whiteout (a 0/0 character device named NAME) and `.wh..wh..opq`
//! marks its directory opaque (`trusted.overlay.opaque=y`); see [`super::whiteout`].
//!
//! Nothing is ever written outside the directory: entries with absolute names or `..` are
//! refused, parents are opened one component at a time without following symlinks (an entry
//! whose path goes through a symlink is refused), and hard links may only point at files
//! already in this layer. Every refusal names the entry.

use std::ffi::{CStr, CString, OsStr};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_core::Digest;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use tar::EntryType;

use super::whiteout;
use crate::content::HashingReader;
use crate::error::{ImageError, Result};

/// What applying a layer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream (the image config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Bytes of the uncompressed stream.
    pub size: u64,
    pub entries: u64,
}

fn unsafe_entry(entry: &[u8], reason: &'static str) -> ImageError {
    ImageError::UnsafeEntry {
        entry: String::from_utf8_lossy(entry).into_owned(),
        reason,
    }
}

/// Splits an entry name into components; refuses absolute names and `..`.
fn components(name: &[u8]) -> Result<Vec<&[u8]>> {
    if name.first() == Some(&b'/') {
        return Err(unsafe_entry(name, "absolute path"));
    }
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => return Err(unsafe_entry(name, "path leaves the layer (..)")),
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn cstr(bytes: &[u8], entry: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| unsafe_entry(entry, "NUL byte in name"))
}

fn path_of(entry: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(entry))
}

fn sys_err(entry: &[u8], what: &'static str, e: Errno) -> ImageError {
    ImageError::io(
        what,
        path_of(entry),
        std::io::Error::from_raw_os_error(e as i32),
    )
}

/// Opens `name` under `dir` as a directory without following a symlink.
fn open_dir_at(dir: &OwnedFd, name: &CStr) -> std::result::Result<OwnedFd, Errno> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Walks `comps` from `root`, creating missing directories (0755) when `create` is set.
/// A component that is a symlink or not a directory stops the walk with an error.
fn walk(root: &OwnedFd, comps: &[&[u8]], entry: &[u8], create: bool) -> Result<OwnedFd> {
    let mut cur = root
        .try_clone()
        .map_err(|e| ImageError::io("dup", "layer root", e))?;
    for c in comps {
        let name = cstr(c, entry)?;
        cur = match open_dir_at(&cur, &name) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create => {
                match nix::sys::stat::mkdirat(
                    Some(cur.as_raw_fd()),
                    name.as_c_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys_err(entry, "create directory", e)),
                }
                open_dir_at(&cur, &name).map_err(|e| sys_err(entry, "open directory", e))?
            }
            Err(Errno::ELOOP) | Err(Errno::ENOTDIR) => {
                return Err(unsafe_entry(entry, "path goes through a symlink or a file"))
            }
            Err(e) => return Err(sys_err(entry, "open directory", e)),
        };
    }
    Ok(cur)
}

/// Removes whatever is at `name` in `dir` (recursively for a directory).
fn remove_at(dir: &OwnedFd, name: &CStr, entry: &[u8]) -> Result<()> {
    match nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        name,
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {
            let sub = open_dir_at(dir, name).map_err(|e| sys_err(entry, "open directory", e))?;
            clear_dir(&sub, entry)?;
            nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name,
                nix::unistd::UnlinkatFlags::RemoveDir,
            )
            .map_err(|e| sys_err(entry, "remove directory", e))
        }
        Err(e) => Err(sys_err(entry, "remove", e)),
    }
}

fn clear_dir(dir: &OwnedFd, entry: &[u8]) -> Result<()> {
    let dup = dir
        .try_clone()
        .map_err(|e| ImageError::io("dup", "layer dir", e))?;
    let mut listing =
        nix::dir::Dir::from_fd(dup.as_raw_fd()).map_err(|e| sys_err(entry, "list", e))?;
    std::mem::forget(dup); // owned by `listing` now
    let names: Vec<CString> = listing
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for n in names {
        remove_at(dir, &n, entry)?;
    }
    Ok(())
}

fn set_owner(dir: &OwnedFd, name: &CStr, uid: u64, gid: u64, entry: &[u8]) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(()); // ownership cannot be represented without root
    }
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        name,
        Some(nix::unistd::Uid::from_raw(uid as u32)),
        Some(nix::unistd::Gid::from_raw(gid as u32)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys_err(entry, "chown", e))
}

fn set_mode(dir: &OwnedFd, name: &CStr, mode: u32, entry: &[u8]) -> Result<()> {
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        Mode::from_bits_truncate(mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| sys_err(entry, "chmod", e))
}

fn set_mtime(dir: &OwnedFd, name: &CStr, mtime: u64, entry: &[u8]) -> Result<()> {
    let t = nix::sys::time::TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::utimensat(
        Some(dir.as_raw_fd()),
        name,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| sys_err(entry, "set times", e))
}

fn set_xattrs(fd: &OwnedFd, xattrs: &[(String, Vec<u8>)], entry: &[u8]) -> Result<()> {
    for (key, value) in xattrs {
        let k = cstr(key.as_bytes(), entry)?;
        // SAFETY: `k` is NUL-terminated and `value` is a valid buffer of its length.
        let r = unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                k.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r != 0 {
            let e = Errno::last();
            // Filesystems without xattr support lose them, as Docker's do.
            if e != Errno::ENOTSUP {
                return Err(sys_err(entry, "set xattr", e));
            }
        }
    }
    Ok(())
}

/// A numeric header field; an empty one (all NUL or spaces, as some writers leave them) is 0,
/// as in Go's archive/tar that Docker uses.
fn numeric(parsed: std::io::Result<u64>, raw: &[u8], entry: &[u8], field: &str) -> Result<u64> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(ImageError::BadArchive(format!(
            "entry {:?}: bad {field}: {e}",
            String::from_utf8_lossy(entry)
        ))),
    }
}

/// Applies the layer in `reader` (uncompressed tar) to `dest`, which must exist.
pub fn apply(reader: impl Read, dest: &Path) -> Result<Applied> {
    apply_reserving(reader, dest, crate::space::MinFree::Bytes(0))
}

/// [`apply`], stopping with [`ImageError::NoSpace`] before the filesystem of `dest` has less
/// free than `min_free` (checked before each entry and every few MiB of a file).
pub fn apply_reserving(
    reader: impl Read,
    dest: &Path,
    min_free: crate::space::MinFree,
) -> Result<Applied> {
    let root = {
        let c = CString::new(dest.as_os_str().as_bytes())
            .map_err(|_| ImageError::io("open", dest, std::io::ErrorKind::InvalidInput.into()))?;
        let fd = nix::fcntl::open(
            c.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ImageError::io("open", dest, e.into()))?;
        // SAFETY: open just returned this descriptor.
        unsafe { OwnedFd::from_raw_fd(fd) }
    };
    let mut hashing = HashingReader::new(reader);
    let mut entries = 0u64;
    let mut dir_times: Vec<(Vec<Vec<u8>>, u64)> = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let iter = archive
            .entries()
            .map_err(|e| ImageError::BadArchive(e.to_string()))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| ImageError::BadArchive(e.to_string()))?;
            entries += 1;
            if entries % 256 == 0 {
                crate::space::check(dest, min_free)?;
            }
            let name = entry.path_bytes().into_owned();
            let comps = components(&name)?;
            let Some((last, parents)) = comps.split_last() else {
                continue; // the layer root itself
            };
            let parent = walk(&root, parents, &name, true)?;

            match whiteout::entry(last) {
                whiteout::Entry::Opaque => {
                    whiteout::mark_opaque(parent.as_raw_fd())
                        .map_err(|e| ImageError::io("mark opaque", path_of(&name), e))?;
                    continue;
                }
                whiteout::Entry::Whiteout(b"") => {
                    return Err(unsafe_entry(&name, "empty whiteout"));
                }
                whiteout::Entry::Whiteout(hidden) => {
                    let target = cstr(hidden, &name)?;
                    remove_at(&parent, &target, &name)?;
                    whiteout::make_whiteout(parent.as_raw_fd(), &target)
                        .map_err(|e| ImageError::io("create whiteout", path_of(&name), e))?;
                    continue;
                }
                whiteout::Entry::Plain => {}
            }

            let leaf = cstr(last, &name)?;
            let header = entry.header().clone();
            let old = header.as_old();
            let mode = numeric(header.mode().map(u64::from), &old.mode, &name, "mode")? as u32;
            let uid = numeric(header.uid(), &old.uid, &name, "uid")?;
            let gid = numeric(header.gid(), &old.gid, &name, "gid")?;
            let mtime = header.mtime().unwrap_or(0);
            let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions() {
                Ok(Some(exts)) => exts
                    .flatten()
                    .filter_map(|ext| {
                        let key = ext.key().ok()?;
                        key.strip_prefix("SCHILY.xattr.")
                            .map(|k| (k.to_owned(), ext.value_bytes().to_vec()))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let kind = header.entry_type();

            // A directory may already be there (implicitly created, or repeated): keep it.
            if kind == EntryType::Directory {
                match nix::sys::stat::mkdirat(
                    Some(parent.as_raw_fd()),
                    leaf.as_c_str(),
                    Mode::from_bits_truncate(0o700),
                ) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        if open_dir_at(&parent, &leaf).is_err() {
                            remove_at(&parent, &leaf, &name)?;
                            nix::sys::stat::mkdirat(
                                Some(parent.as_raw_fd()),
                                leaf.as_c_str(),
                                Mode::from_bits_truncate(0o700),
                            )
                            .map_err(|e| sys_err(&name, "create directory", e))?;
                        }
                    }
                    Err(e) => return Err(sys_err(&name, "create directory", e)),
                }
                set_owner(&parent, &leaf, uid, gid, &name)?;
                set_mode(&parent, &leaf, mode, &name)?;
                if !xattrs.is_empty() {
                    let d = open_dir_at(&parent, &leaf).map_err(|e| sys_err(&name, "open", e))?;
                    set_xattrs(&d, &xattrs, &name)?;
                }
                dir_times.push((comps.iter().map(|c| c.to_vec()).collect(), mtime));
                continue;
            }

            // Anything else replaces what an earlier entry put at the same name.
            remove_at(&parent, &leaf, &name)?;
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    let fd = nix::fcntl::openat(
                        Some(parent.as_raw_fd()),
                        leaf.as_c_str(),
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o600),
                    )
                    .map_err(|e| sys_err(&name, "create file", e))?;
                    // SAFETY: openat just returned this descriptor.
                    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                    let mut guarded = crate::space::ReserveWriter::new(file, dest, min_free);
                    std::io::copy(&mut entry, &mut guarded).map_err(|e| {
                        match e.get_ref().and_then(|i| i.downcast_ref::<ImageError>()) {
                            Some(ImageError::NoSpace(m)) => ImageError::NoSpace(m.clone()),
                            _ => {
                                ImageError::io("write", PathBuf::from(OsStr::from_bytes(&name)), e)
                            }
                        }
                    })?;
                    let owned = OwnedFd::from(guarded.into_inner());
                    set_xattrs(&owned, &xattrs, &name)?;
                }
                EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| unsafe_entry(&name, "symlink without a target"))?;
                    let target = cstr(&target, &name)?;
                    nix::unistd::symlinkat(
                        target.as_c_str(),
                        Some(parent.as_raw_fd()),
                        leaf.as_c_str(),
                    )
                    .map_err(|e| sys_err(&name, "create symlink", e))?;
                }
                EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .ok_or_else(|| unsafe_entry(&name, "hard link without a target"))?
                        .into_owned();
                    let tcomps = components(&target)
                        .map_err(|_| unsafe_entry(&name, "hard link points outside the layer"))?;
                    let Some((tlast, tparents)) = tcomps.split_last() else {
                        return Err(unsafe_entry(&name, "hard link to the layer root"));
                    };
                    let tdir = walk(&root, tparents, &name, false).map_err(|_| {
                        unsafe_entry(&name, "hard link target is not a file of this layer")
                    })?;
                    let tname = cstr(tlast, &name)?;
                    nix::unistd::linkat(
                        Some(tdir.as_raw_fd()),
                        tname.as_c_str(),
                        Some(parent.as_raw_fd()),
                        leaf.as_c_str(),
                        AtFlags::empty(),
                    )
                    .map_err(|e| match e {
                        Errno::ENOENT => {
                            unsafe_entry(&name, "hard link target is not a file of this layer")
                        }
                        e => sys_err(&name, "create hard link", e),
                    })?;
                    continue; // a hard link shares its target's metadata
                }
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    let sflag = match kind {
                        EntryType::Char => SFlag::S_IFCHR,
                        EntryType::Block => SFlag::S_IFBLK,
                        _ => SFlag::S_IFIFO,
                    };
                    let major = header.device_major().ok().flatten().unwrap_or(0);
                    let minor = header.device_minor().ok().flatten().unwrap_or(0);
                    nix::sys::stat::mknodat(
                        Some(parent.as_raw_fd()),
                        leaf.as_c_str(),
                        sflag,
                        Mode::from_bits_truncate(0o600),
                        nix::sys::stat::makedev(major.into(), minor.into()),
                    )
                    .map_err(|e| sys_err(&name, "create device", e))?;
                }
                other => {
                    return Err(ImageError::BadArchive(format!(
                        "entry {:?} has an unsupported type {other:?}",
                        String::from_utf8_lossy(&name)
                    )))
                }
            }
            set_owner(&parent, &leaf, uid, gid, &name)?;
            if kind != EntryType::Symlink {
                // After chown, which clears set-id bits.
                set_mode(&parent, &leaf, mode, &name)?;
            }
            set_mtime(&parent, &leaf, mtime, &name)?;
        }
    }
    // Directory times last (their children changed them), deepest first.
    dir_times.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
    for (comps, mtime) in dir_times {
        let refs: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
        if let Some((last, parents)) = refs.split_last() {
            if let Ok(dir) = walk(&root, parents, last, false) {
                let leaf = cstr(last, last)?;
                let _ = set_mtime(&dir, &leaf, mtime, last);
            }
        }
    }
    let (diff_id, size) = hashing
        .finish()
        .map_err(|e| ImageError::BadArchive(e.to_string()))?;
    Ok(Applied {
        diff_id,
        size,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(components(b"./a/b/").unwrap(), vec![&b"a"[..], &b"b"[..]]);
        assert!(components(b"/etc/passwd").is_err());
        assert!(components(b"a/../../etc").is_err());
        assert!(components(b"..").is_err());
        assert!(components(b"./").unwrap().is_empty());
    }
}
