//! Extracting a tar stream into a directory of a container (`PUT …/archive`), with Docker's
//! rules: entries may not leave the directory, an existing directory is merged with a
//! directory entry and anything else is replaced (or refused, with `noOverwriteDirNonDir`),
//! missing parents are made, ownership and modes and times come from the archive (ownership
//! from the container's user with `copyUIDGID`). Names like `.wh.x` are plain files here.
//!
//! Every parent is opened through [`View`] (`openat2` with `RESOLVE_IN_ROOT`), so a symlink in
//! the container or in the archive leads somewhere inside the container, never to the host;
//! files are created and changed relative to those descriptors, never through path strings.

use std::ffi::CStr;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use berth_core::idmap::IdMap;

use super::resolve::{components, cstring, is_dir, join, list_dir, lstat_at, open_in, View};

/// Why an extraction stopped: Docker's wording for the ones a user can cause.
#[derive(Debug)]
pub(crate) enum ExtractError {
    /// An entry would land outside the directory (`../x`).
    Breakout(String),
    /// `noOverwriteDirNonDir` refused a replacement.
    Conflict(String),
    Io(String, io::Error),
    BadArchive(String),
}

impl std::fmt::Display for ExtractError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtractError::Breakout(m) | ExtractError::Conflict(m) | ExtractError::BadArchive(m) => {
                f.write_str(m)
            }
            ExtractError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

fn io_err(what: impl std::fmt::Display, name: &[u8], e: io::Error) -> ExtractError {
    ExtractError::Io(format!("{what} {}", String::from_utf8_lossy(name)), e)
}

/// How to extract.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    pub(crate) no_overwrite_dir_non_dir: bool,
    /// Owner for every entry instead of the archive's.
    pub(crate) owner: Option<(u32, u32)>,
    /// Into a remapped container (stored in the host's view): owners, the archive's or
    /// `owner`, are the container's and written through its mapping.
    pub(crate) ids: Option<IdMap>,
}

pub(crate) fn errno(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes `name` from `dir`, a directory with everything in it.
pub(crate) fn remove_all(dir: RawFd, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOENT) => Ok(()),
        Some(libc::EISDIR) | Some(libc::EPERM) => {
            let sub = open_in(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
            for child in list_dir(sub.as_raw_fd())? {
                remove_all(sub.as_raw_fd(), &child)?;
            }
            // SAFETY: `name` is NUL-terminated.
            errno(unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) })
        }
        _ => Err(e),
    }
}

/// Creates the new file `name` in `dir` (0600 until its mode is set), never through a symlink.
pub(crate) fn create_in(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_WRONLY
        | libc::O_CREAT
        | libc::O_EXCL
        | libc::O_NOFOLLOW
        | libc::O_NOCTTY
        | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated; the mode is passed as O_CREAT requires.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Opens the directory `comps` inside the root, making missing ones (0755) on the way.
pub(crate) fn ensure_dir(root: &View, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
    match root.open_dir(comps) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !comps.is_empty() => {
            let parent = ensure_dir(root, &comps[..comps.len() - 1])?;
            let name = cstring(&comps[comps.len() - 1])?;
            // SAFETY: `name` is NUL-terminated.
            let r = unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) };
            if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                return Err(io::Error::last_os_error());
            }
            root.open_dir(comps)
        }
        other => other,
    }
}

/// `name` cleaned against the extraction directory: None if it leaves it.
fn clean(name: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in components(name) {
        if c == b".." {
            out.pop()?;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

pub(crate) fn set_owner(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(()); // ownership cannot be given without root
    }
    // SAFETY: `name` is NUL-terminated.
    errno(unsafe {
        libc::fchownat(
            dir,
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW
                | if name.is_empty() {
                    libc::AT_EMPTY_PATH
                } else {
                    0
                },
        )
    })
}

fn set_times(dir: RawFd, name: &CStr, mtime: i64) -> io::Result<()> {
    let t = libc::timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = [t, t];
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

/// The mode of a non-symlink `name` in `dir`: through a descriptor opened without following.
pub(crate) fn set_mode(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    let fd = open_in(dir, name, libc::O_PATH)?;
    // fchmod does not take O_PATH descriptors; its /proc name does, and it is this very file.
    let proc = cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: `proc` is NUL-terminated.
    errno(unsafe { libc::chmod(proc.as_ptr(), mode & 0o7777) })
}

/// Extracts the (uncompressed) tar in `reader` into the directory `dest` (components of a
/// resolved path inside `root`).
pub(crate) fn extract(
    root: &View,
    dest: &[Vec<u8>],
    reader: impl Read,
    opts: Options,
) -> Result<u64, ExtractError> {
    let dest_text = String::from_utf8_lossy(&join(dest)).into_owned();
    let mut archive = tar::Archive::new(reader);
    let mut dir_times: Vec<(Vec<Vec<u8>>, i64)> = Vec::new();
    let mut count = 0u64;
    let iter = archive
        .entries()
        .map_err(|e| ExtractError::BadArchive(e.to_string()))?;
    for entry in iter {
        let mut entry = entry.map_err(|e| ExtractError::BadArchive(e.to_string()))?;
        count += 1;
        let name = entry.path_bytes().into_owned();
        let rel = clean(&name).ok_or_else(|| {
            ExtractError::Breakout(format!(
                "{:?} is outside of {dest_text:?}",
                String::from_utf8_lossy(&name)
            ))
        })?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        let (uid, gid) = opts.owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let (uid, gid) = match &opts.ids {
            Some(map) => map.owner_to_host(uid, gid).map_err(|e| {
                ExtractError::BadArchive(format!("{}: {e}", String::from_utf8_lossy(&name)))
            })?,
            None => (uid, gid),
        };
        let mtime = header.mtime().unwrap_or(0) as i64;
        let mut full: Vec<Vec<u8>> = dest.to_vec();
        full.extend(rel.iter().cloned());

        let Some((leaf, parents)) = full.split_last().filter(|_| !rel.is_empty()) else {
            // The directory itself (`.`): Docker gives it the entry's metadata.
            if kind == tar::EntryType::Directory {
                let d = root.open_dir(dest).map_err(|e| io_err("open", &name, e))?;
                let _ = set_owner(d.as_raw_fd(), c"", uid, gid);
                let _ = set_mode(d.as_raw_fd(), c".", mode);
                dir_times.push((dest.to_vec(), mtime));
            }
            continue;
        };
        let parent =
            ensure_dir(root, parents).map_err(|e| io_err("create the parent of", &name, e))?;
        let p = parent.as_raw_fd();
        let leaf_c = cstring(leaf).map_err(|e| io_err("name", &name, e))?;
        let leaf_c = leaf_c.as_c_str();
        let is_dir_entry = kind == tar::EntryType::Directory;
        match lstat_at(p, leaf_c) {
            Ok(st) => {
                let path = String::from_utf8_lossy(&join(&full)).into_owned();
                let entry_name = String::from_utf8_lossy(&name).into_owned();
                if opts.no_overwrite_dir_non_dir && is_dir(&st) && !is_dir_entry {
                    return Err(ExtractError::Conflict(format!(
                        "cannot overwrite directory {path:?} with non-directory {entry_name:?}"
                    )));
                }
                if opts.no_overwrite_dir_non_dir && !is_dir(&st) && is_dir_entry {
                    return Err(ExtractError::Conflict(format!(
                        "cannot overwrite non-directory {path:?} with directory {entry_name:?}"
                    )));
                }
                if !(is_dir(&st) && is_dir_entry) {
                    remove_all(p, leaf_c).map_err(|e| io_err("replace", &name, e))?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("look at", &name, e)),
        }
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                // SAFETY: `leaf_c` is NUL-terminated.
                let r = unsafe { libc::mkdirat(p, leaf_c.as_ptr(), 0o700) };
                if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                    return Err(io_err(
                        "create directory",
                        &name,
                        io::Error::last_os_error(),
                    ));
                }
                dir_times.push((full.clone(), mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let fd = create_in(p, leaf_c).map_err(|e| io_err("create", &name, e))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(|e| io_err("write", &name, e))?;
            }
            T::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    ExtractError::BadArchive(format!(
                        "symlink {:?} has no target",
                        String::from_utf8_lossy(&name)
                    ))
                })?;
                let target = cstring(&target).map_err(|e| io_err("symlink", &name, e))?;
                // SAFETY: both strings are NUL-terminated.
                errno(unsafe { libc::symlinkat(target.as_ptr(), p, leaf_c.as_ptr()) })
                    .map_err(|e| io_err("create symlink", &name, e))?;
            }
            T::Link => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    ExtractError::BadArchive(format!(
                        "hard link {:?} has no target",
                        String::from_utf8_lossy(&name)
                    ))
                })?;
                let trel = clean(&target).filter(|t| !t.is_empty()).ok_or_else(|| {
                    ExtractError::Breakout(format!(
                        "{:?} is outside of {dest_text:?}",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                let mut tfull = dest.to_vec();
                tfull.extend(trel);
                let (tleaf, tparents) = tfull.split_last().expect("not empty");
                let tdir = root
                    .open_dir(tparents)
                    .map_err(|e| io_err("find the hard link target of", &name, e))?;
                let tleaf = cstring(tleaf).map_err(|e| io_err("name", &name, e))?;
                // SAFETY: both names are NUL-terminated; flags 0 do not follow a symlink.
                errno(unsafe {
                    libc::linkat(tdir.as_raw_fd(), tleaf.as_ptr(), p, leaf_c.as_ptr(), 0)
                })
                .map_err(|e| io_err("create hard link", &name, e))?;
                continue; // a hard link shares its target's metadata
            }
            T::Char | T::Block | T::Fifo => {
                let kind_bits = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                // SAFETY: `leaf_c` is NUL-terminated.
                errno(unsafe {
                    libc::mknodat(
                        p,
                        leaf_c.as_ptr(),
                        kind_bits | 0o600,
                        libc::makedev(major, minor),
                    )
                })
                .map_err(|e| io_err("create device", &name, e))?;
            }
            T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => continue,
            other => {
                return Err(ExtractError::BadArchive(format!(
                    "{:?}: unsupported entry type {other:?}",
                    String::from_utf8_lossy(&name)
                )))
            }
        }
        set_owner(p, leaf_c, uid, gid).map_err(|e| io_err("chown", &name, e))?;
        if kind != tar::EntryType::Symlink {
            // After chown, which clears set-id bits.
            set_mode(p, leaf_c, mode).map_err(|e| io_err("chmod", &name, e))?;
        }
        if kind != tar::EntryType::Directory {
            set_times(p, leaf_c, mtime).map_err(|e| io_err("set times of", &name, e))?;
        }
    }
    // Directory times last (their children changed them), deepest first.
    dir_times.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
    for (comps, mtime) in dir_times {
        match comps.split_last() {
            Some((leaf, parents)) => {
                if let (Ok(d), Ok(l)) = (root.open_dir(parents), cstring(leaf)) {
                    let _ = set_times(d.as_raw_fd(), &l, mtime);
                }
            }
            None => {
                if let Ok(d) = root.open_dir(&[]) {
                    let _ = set_times(d.as_raw_fd(), c".", mtime);
                }
            }
        }
    }
    Ok(count)
}

/// A `user[:group]` of the container (names looked up in its own /etc/passwd and /etc/group)
/// as numbers.
pub(crate) fn lookup_owner(root: &View, user: &str) -> Option<(u32, u32)> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let read = |path: &[u8]| -> String {
        let mut s = String::new();
        if let Ok(fd) = root.open_at(&components(path), libc::O_RDONLY) {
            let _ = std::fs::File::from(fd).read_to_string(&mut s);
        }
        s
    };
    let passwd = read(b"/etc/passwd");
    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && (f[0] == u || f[2] == u)).then(|| (f[2].parse().ok(), f[3].parse().ok()))
    });
    let uid: u32 = u.parse().ok().or_else(|| entry.and_then(|(uid, _)| uid))?;
    let gid: u32 = match g {
        Some(g) => g.parse().ok().or_else(|| {
            read(b"/etc/group").lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == g)
                    .then(|| f[2].parse().ok())
                    .flatten()
            })
        })?,
        None => entry.and_then(|(_, gid)| gid).unwrap_or(0),
    };
    Some((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::confined::Root;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_mtime(1_000_000);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    berth_image::layer::write::append_raw(
                        &mut b,
                        &mut h,
                        name.as_bytes(),
                        Some(data.as_bytes()),
                        io::empty(),
                    )
                    .unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    berth_image::layer::write::append_raw(
                        &mut b,
                        &mut h,
                        name.as_bytes(),
                        None,
                        data.as_bytes(),
                    )
                    .unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType as T;

    #[test]
    fn entries_stay_inside_and_links_resolve_in_the_root() {
        let host = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("dest")).unwrap();
        // A symlink of the container naming a host directory, which the container has too.
        std::os::unix::fs::symlink(host.path(), p.join("dest/out")).unwrap();
        let inside = p.join(host.path().strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        let root = View::new(Root::open(p).unwrap());
        let dest = vec![b"dest".to_vec()];
        let tar = tar_of(&[
            ("out/x", T::Regular, "in root"),
            ("./sub/f", T::Regular, "made parents"),
            ("link", T::Symlink, "/"),
            ("link/etc/via-link", T::Regular, "root too"),
            ("hard", T::Link, "sub/f"),
            (".wh.plain", T::Regular, "just a file"),
        ]);
        extract(&root, &dest, &tar[..], Options::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(inside.join("x")).unwrap(),
            "in root"
        );
        assert_eq!(
            std::fs::read_dir(host.path()).unwrap().count(),
            0,
            "nothing on the host"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("dest/sub/f")).unwrap(),
            "made parents"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("etc/via-link")).unwrap(),
            "root too"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("dest/hard")).unwrap(),
            "made parents"
        );
        assert_eq!(
            std::fs::read_to_string(p.join("dest/.wh.plain")).unwrap(),
            "just a file"
        );
        // A link to a host path the container does not have: refused, nothing made anywhere.
        std::os::unix::fs::symlink("/nonexistent-on-both", p.join("dest/dangling")).unwrap();
        let e = extract(
            &root,
            &dest,
            &tar_of(&[("dangling/x", T::Regular, "no")])[..],
            Options::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ExtractError::Io(..)), "{e}");
        assert!(!std::path::Path::new("/nonexistent-on-both").exists());

        let bad = tar_of(&[("../../escape", T::Regular, "no")]);
        let e = extract(&root, &dest, &bad[..], Options::default()).unwrap_err();
        assert!(matches!(e, ExtractError::Breakout(_)), "{e}");
        assert!(e.to_string().contains("is outside of \"/dest\""), "{e}");
    }

    #[test]
    fn no_overwrite_dir_non_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        std::fs::write(dir.path().join("d/file"), "f").unwrap();
        let root = View::new(Root::open(dir.path()).unwrap());
        let dest = vec![b"d".to_vec()];
        let strict = Options {
            no_overwrite_dir_non_dir: true,
            owner: None,
            ids: None,
        };
        let e = extract(
            &root,
            &dest,
            &tar_of(&[("sub", T::Regular, "x")])[..],
            strict,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot overwrite directory \"/d/sub\" with non-directory \"sub\""),
            "{e}"
        );
        let e = extract(
            &root,
            &dest,
            &tar_of(&[("file", T::Directory, "")])[..],
            strict,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("cannot overwrite non-directory"),
            "{e}"
        );
        // Without the option the new entry replaces the old one.
        extract(
            &root,
            &dest,
            &tar_of(&[("sub", T::Regular, "x")])[..],
            Options::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("d/sub")).unwrap(),
            "x"
        );
    }

    #[test]
    fn owners_by_name_from_the_containers_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let root = View::new(Root::open(dir.path()).unwrap());
        assert_eq!(lookup_owner(&root, "app"), Some((1000, 1001)));
        assert_eq!(lookup_owner(&root, "app:staff"), Some((1000, 50)));
        assert_eq!(lookup_owner(&root, "1000"), Some((1000, 1001)));
        assert_eq!(lookup_owner(&root, "7:8"), Some((7, 8)));
        assert_eq!(lookup_owner(&root, "nobody"), None);
    }

    #[test]
    fn into_a_remapped_container_owners_cross_its_mapping() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root to give files owners");
            return;
        }
        use std::os::unix::fs::MetadataExt;
        let range = berth_core::idmap::IdRange {
            container: 0,
            host: 100_000,
            size: 65536,
        };
        let ids = Some(IdMap {
            uids: range,
            gids: range,
        });
        let dir = tempfile::tempdir().unwrap();
        let root = View::new(Root::open(dir.path()).unwrap());
        let opts = Options {
            ids,
            ..Options::default()
        };
        extract(&root, &[], &tar_of(&[("f", T::Regular, "x")])[..], opts).unwrap();
        let m = std::fs::metadata(dir.path().join("f")).unwrap();
        assert_eq!((m.uid(), m.gid()), (100_000, 100_000));
        // `--chown`-like owners are the container's too.
        let opts = Options {
            owner: Some((7, 8)),
            ids,
            ..Options::default()
        };
        extract(&root, &[], &tar_of(&[("g", T::Regular, "x")])[..], opts).unwrap();
        let m = std::fs::metadata(dir.path().join("g")).unwrap();
        assert_eq!((m.uid(), m.gid()), (100_007, 100_008));
        // An owner the mapping does not have is refused, not written as the host's.
        let opts = Options {
            owner: Some((70_000, 0)),
            ids,
            ..Options::default()
        };
        let e = extract(&root, &[], &tar_of(&[("h", T::Regular, "x")])[..], opts).unwrap_err();
        assert!(
            e.to_string()
                .contains("container ID 70000 cannot be mapped"),
            "{e}"
        );
    }
}
