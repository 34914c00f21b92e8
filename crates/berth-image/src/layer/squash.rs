//! Squashing (`docker build --squash`): layers in overlayfs's format (snapshot directories)
//! merged, bottom first, into one directory in the same format, which [`super::write`] then
//! turns into the one layer that replaces them.
//!
//! Each layer is laid over what the ones below it left, as overlayfs would show it: an entry
//! replaces what was at its path (a directory merges into a directory); a whiteout removes it
//! and stays, for what the image below the squashed layers may have there; an opaque
//! directory replaces the directory and stays opaque. Symlinks are copied as links and never
//! followed; hard links inside one layer stay hard links; owners, modes, times and extended
//! attributes come along (overlayfs's own attributes only where they mean opaque).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::whiteout::{opaque_xattr, overlay_xattr_prefix};

/// Lays the layer directory `layer` over `dest` (which holds the layers below, merged).
pub fn merge_into(layer: &Path, dest: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    merge_dir(layer, dest, &mut links)
}

fn merge_dir(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (s, d) = (entry.path(), dst.join(entry.file_name()));
        let st = std::fs::symlink_metadata(&s)?;
        let existing = std::fs::symlink_metadata(&d).ok();
        let ft = st.file_type();
        if ft.is_char_device() && st.rdev() == 0 {
            // A whiteout: what the layers below had here goes; the whiteout stays.
            if existing.is_some() {
                remove_any(&d)?;
            }
            mknod(&d, libc::S_IFCHR, 0)?;
            continue;
        }
        if ft.is_dir() {
            // A directory over a whiteout or a file of the layers below replaces what the
            // image under them has there too: opaque, as overlayfs stacked them.
            let opaque = xattr(&s, opaque_xattr().to_bytes()).as_deref() == Some(b"y")
                || existing.as_ref().is_some_and(|m| !m.is_dir());
            match &existing {
                Some(m) if m.is_dir() && !opaque => {}
                Some(_) => {
                    remove_any(&d)?;
                    std::fs::create_dir(&d)?;
                }
                None => std::fs::create_dir(&d)?,
            }
            if opaque {
                set_xattr(&d, opaque_xattr().to_bytes(), b"y")?;
            }
            merge_dir(&s, &d, links)?;
            copy_attrs(&s, &d, &st)?;
            continue;
        }
        if existing.is_some() {
            remove_any(&d)?;
        }
        let key = (st.dev(), st.ino());
        if st.nlink() > 1 {
            if let Some(first) = links.get(&key) {
                std::fs::hard_link(first, &d)?;
                continue;
            }
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
        } else if ft.is_file() {
            std::fs::copy(&s, &d)?;
        } else {
            // Devices, fifos, sockets: made again as what they are.
            mknod(&d, st.mode() & libc::S_IFMT, st.rdev())?;
        }
        copy_attrs(&s, &d, &st)?;
        if st.nlink() > 1 {
            links.insert(key, d);
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (a whole directory too), never following a symlink.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn mknod(path: &Path, kind: libc::mode_t, rdev: u64) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: `p` is NUL-terminated.
    check(unsafe { libc::mknod(p.as_ptr(), kind, rdev as libc::dev_t) })
}

/// Owner, then mode (a chown clears set-id bits), then extended attributes (a chown clears
/// file capabilities), then times (the others touch ctime only).
fn copy_attrs(src: &Path, dst: &Path, st: &std::fs::Metadata) -> io::Result<()> {
    let p = cpath(dst)?;
    // SAFETY: `p` is NUL-terminated; lchown does not follow a symlink.
    check(unsafe { libc::lchown(p.as_ptr(), st.uid(), st.gid()) })?;
    if !st.file_type().is_symlink() {
        // SAFETY: as above; `dst` is no symlink (we made it).
        check(unsafe { libc::chmod(p.as_ptr(), (st.mode() & 0o7777) as libc::mode_t) })?;
    }
    for name in xattr_names(src) {
        if name.starts_with(overlay_xattr_prefix()) {
            continue;
        }
        if let Some(value) = xattr(src, &name) {
            // Filesystems without xattr support lose them, as layers applied there do.
            let _ = set_xattr(dst, &name, &value);
        }
    }
    let times = [
        libc::timespec {
            tv_sec: st.atime(),
            tv_nsec: st.atime_nsec(),
        },
        libc::timespec {
            tv_sec: st.mtime(),
            tv_nsec: st.mtime_nsec(),
        },
    ];
    // SAFETY: `p` is NUL-terminated and `times` holds two timespecs.
    check(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

fn xattr_names(path: &Path) -> Vec<Vec<u8>> {
    let Ok(p) = cpath(path) else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: `p` is NUL-terminated; `buf` is writable for its length.
        let n = unsafe { libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return buf
                .split(|b| *b == 0)
                .filter(|n| !n.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return Vec::new();
    }
}

fn xattr(path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let p = cpath(path).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: both strings are NUL-terminated; `buf` is writable for its length.
        let r =
            unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if r >= 0 {
            buf.truncate(r as usize);
            return Some(buf);
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return None;
    }
}

fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let p = cpath(path)?;
    let n = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: both strings are NUL-terminated; `value` is readable for its length.
    check(unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root() -> bool {
        let me = nix::unistd::geteuid().is_root();
        if !me {
            eprintln!("SKIPPED: squash tests need root (whiteouts are device nodes)");
        }
        me
    }

    fn write(path: &Path, data: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn later_layers_replace_remove_and_hide_what_earlier_ones_made() {
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (one, two, out) = (t.path().join("1"), t.path().join("2"), t.path().join("out"));
        write(&one.join("keep"), "keep");
        write(&one.join("gone"), "gone");
        write(&one.join("changed"), "old");
        write(&one.join("d/inner"), "inner");
        write(&one.join("o/old"), "old");
        std::os::unix::fs::symlink("keep", one.join("link")).unwrap();
        std::fs::set_permissions(one.join("keep"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        write(&two.join("changed"), "new");
        write(&two.join("d/more"), "more");
        write(&two.join("o/new"), "new");
        set_xattr(&two.join("o"), opaque_xattr().to_bytes(), b"y").unwrap();
        mknod(&two.join("gone"), libc::S_IFCHR, 0).unwrap();
        // A whiteout of something only the base image has stays a whiteout.
        mknod(&two.join("from-base"), libc::S_IFCHR, 0).unwrap();
        // A directory where a lower layer had deleted one: it hides the base's.
        mknod(&one.join("redone"), libc::S_IFCHR, 0).unwrap();
        write(&two.join("redone/x"), "x");
        std::fs::create_dir(&out).unwrap();
        merge_into(&one, &out).unwrap();
        merge_into(&two, &out).unwrap();

        let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
        assert_eq!(read("keep"), "keep");
        assert_eq!(read("changed"), "new");
        assert_eq!(read("d/inner"), "inner");
        assert_eq!(read("d/more"), "more");
        assert_eq!(read("o/new"), "new");
        assert!(
            !out.join("o/old").exists(),
            "an opaque dir hides what was there"
        );
        assert_eq!(
            xattr(&out.join("o"), opaque_xattr().to_bytes()).as_deref(),
            Some(&b"y"[..])
        );
        assert_eq!(
            xattr(&out.join("redone"), opaque_xattr().to_bytes()).as_deref(),
            Some(&b"y"[..])
        );
        for w in ["gone", "from-base"] {
            let m = std::fs::symlink_metadata(out.join(w)).unwrap();
            assert!(m.file_type().is_char_device() && m.rdev() == 0, "{w}");
        }
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("keep")
        );
        let mode = std::fs::metadata(out.join("keep"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o4750);
    }
}
