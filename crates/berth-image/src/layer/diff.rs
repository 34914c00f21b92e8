//! `docker diff`: what a container changed, read from its overlayfs upper dir and compared
//! with the image's layers (overlay lower dirs), as Docker's overlay driver reports it. The
//! comparer beside [`super::apply`] and [`super::write`], reading whiteouts through
//! [`super::whiteout`].
//!
//! - A whiteout (character device 0/0) is a deletion, and so is an opaque directory that
//!   replaced a directory of the image (its old content is gone; Docker reports it so).
//! - Anything else in the upper dir is an addition when the image does not have it, else a
//!   modification — except a directory whose size, mode and mtime are unchanged (copied up
//!   only because something below it changed).
//! - The parent of an addition or deletion is reported modified (once) even when its own
//!   metadata did not change.
//!
//! The image's view of a path is the merged one: layers top first, a whiteout or a
//! non-directory on the way hides what is below, an opaque directory hides the layers under
//! it. Everything is walked from descriptors without following symlinks.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use super::fd::{cstring, is_dir, list_dir, lstat_at, open_dir_path, open_in};
use super::mount_points::{join, only_runtime_made, runtime_made};
use super::whiteout::{is_opaque, is_whiteout};
use crate::error::{ImageError, Result};

/// What happened to a path (Docker's `Kind` numbers: 0 modified, 1 added, 2 deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

impl ChangeKind {
    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One line of `docker diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// From the root (`/etc/passwd`).
    pub path: String,
    pub kind: ChangeKind,
}

struct Differ {
    lowers: Vec<OwnedFd>,
    changed_dirs: HashSet<Vec<u8>>,
    out: Vec<Change>,
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    open_dir_path(path, libc::O_RDONLY)
}

/// The changes in the upper dir `upper` over the lower dirs `lowers` (top first), sorted by
/// path. A missing upper dir (a container never started) changed nothing.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>> {
    let top = match open_dir(upper) {
        Ok(fd) => fd,
        // Never started: nothing changed.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ImageError::io("open", upper, e)),
    };
    let mut d = Differ {
        lowers: lowers
            .iter()
            .map(|p| open_dir(p).map_err(|e| ImageError::io("open", p, e)))
            .collect::<Result<_>>()?,
        changed_dirs: HashSet::new(),
        out: Vec::new(),
    };
    d.walk(top.as_raw_fd(), &mut Vec::new())
        .map_err(|e| ImageError::io("compare", upper, e))?;
    // Docker lists changes by path; the walk's order depends on directory order on disk.
    d.out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(d.out)
}

fn same_time(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_mtime == b.st_mtime && a.st_mtime_nsec == b.st_mtime_nsec
}

impl Differ {
    /// The image's file at `comps`, if it has one.
    fn lower_stat(&self, comps: &[Vec<u8>]) -> io::Result<Option<libc::stat>> {
        'layers: for layer in &self.lowers {
            let mut cur: Option<OwnedFd> = None;
            let mut opaque_above = false;
            for (i, c) in comps.iter().enumerate() {
                let dir = cur.as_ref().map_or(layer.as_raw_fd(), AsRawFd::as_raw_fd);
                let name = cstring(c)?;
                let st = match lstat_at(dir, &name) {
                    Ok(st) => st,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if opaque_above {
                            return Ok(None);
                        }
                        continue 'layers;
                    }
                    Err(e) => return Err(e),
                };
                if is_whiteout(&st) {
                    return Ok(None);
                }
                if i + 1 == comps.len() {
                    return Ok(Some(st));
                }
                if !is_dir(&st) {
                    return Ok(None);
                }
                let next = open_in(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY)?;
                opaque_above |= is_opaque(next.as_raw_fd());
                cur = Some(next);
            }
        }
        Ok(None)
    }

    fn record(&mut self, path: Vec<u8>, kind: ChangeKind) {
        self.out.push(Change {
            path: String::from_utf8_lossy(&path).into_owned(),
            kind,
        });
    }

    fn walk(&mut self, dir: RawFd, comps: &mut Vec<Vec<u8>>) -> io::Result<()> {
        for name in list_dir(dir)? {
            if super::whiteout::is_fuse_marker(name.to_bytes()) {
                continue; // fuse-overlayfs's opaque marks, not the container's files
            }
            let st = match lstat_at(dir, &name) {
                Ok(st) => st,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            comps.push(name.to_bytes().to_vec());
            let path = join(comps);
            let sub = if is_dir(&st) {
                Some(open_in(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY)?)
            } else {
                None
            };
            if runtime_made(comps, &st, sub.as_ref().map(AsRawFd::as_raw_fd)) {
                comps.pop();
                continue;
            }
            let opaque = sub.as_ref().is_some_and(|s| is_opaque(s.as_raw_fd()));
            let lower = self.lower_stat(comps)?;
            let kind = if is_whiteout(&st) || (opaque && lower.as_ref().is_some_and(is_dir)) {
                Some(ChangeKind::Deleted)
            } else {
                match &lower {
                    None => Some(ChangeKind::Added),
                    Some(l)
                        if is_dir(&st)
                            && is_dir(l)
                            && st.st_size == l.st_size
                            && st.st_mode == l.st_mode
                            && same_time(&st, l) =>
                    {
                        None
                    }
                    Some(l)
                        if is_dir(&st)
                            && is_dir(l)
                            && st.st_mode == l.st_mode
                            && only_runtime_made(
                                sub.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                                comps,
                            )? =>
                    {
                        None
                    }
                    Some(_) => Some(ChangeKind::Modified),
                }
            };
            if let Some(kind) = kind {
                if is_dir(&st) {
                    self.changed_dirs.insert(path.clone());
                }
                if kind != ChangeKind::Modified && comps.len() > 1 {
                    let parent = join(&comps[..comps.len() - 1]);
                    if self.changed_dirs.insert(parent.clone()) {
                        self.record(parent, ChangeKind::Modified);
                    }
                }
                self.record(path, kind);
            }
            if let Some(sub) = sub {
                self.walk(sub.as_raw_fd(), comps)?;
            }
            comps.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_opaque(path: &Path) {
        let dir = std::fs::File::open(path).unwrap();
        super::super::whiteout::mark_opaque(dir.as_raw_fd()).unwrap();
    }

    fn whiteout(path: &Path) {
        let dir = std::fs::File::open(path.parent().unwrap()).unwrap();
        let name = cstring(path.file_name().unwrap().as_encoded_bytes()).unwrap();
        super::super::whiteout::make_whiteout(dir.as_raw_fd(), &name).unwrap();
    }

    #[test]
    fn additions_modifications_and_deletions() {
        if !nix::unistd::geteuid().is_root() {
            return; // whiteouts are device nodes and the opaque mark a trusted xattr
        }
        let t = tempfile::tempdir().unwrap();
        let (base, top, upper) = (t.path().join("l1"), t.path().join("l2"), t.path().join("u"));
        for d in ["etc", "var/lib", "old", "hidden"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("etc/passwd"), "root").unwrap();
        std::fs::write(base.join("etc/removed-below"), "x").unwrap();
        std::fs::write(base.join("old/f"), "x").unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        whiteout(&top.join("etc/removed-below"));
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "root\nme").unwrap();
        std::fs::write(upper.join("etc/removed-below"), "again").unwrap();
        // Timestamps are coarse: make the copied-up /etc visibly newer than the image's.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::open(upper.join("etc"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        std::fs::write(upper.join("new"), "n").unwrap();
        whiteout(&upper.join("hidden"));
        std::fs::create_dir_all(upper.join("old")).unwrap();
        set_opaque(&upper.join("old"));
        // /var copied up unchanged: no line for it.
        std::fs::create_dir_all(upper.join("var/lib")).unwrap();
        for d in ["var", "var/lib"] {
            let m = std::fs::metadata(base.join(d)).unwrap();
            let f = std::fs::File::open(upper.join(d)).unwrap();
            f.set_modified(m.modified().unwrap()).unwrap();
        }
        std::fs::write(upper.join("var/lib/db"), "d").unwrap();
        let lib = std::fs::metadata(base.join("var/lib")).unwrap();
        std::fs::File::open(upper.join("var/lib"))
            .unwrap()
            .set_modified(lib.modified().unwrap())
            .unwrap();
        // What the runtime made for its mounts is no change of the container's.
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        std::fs::create_dir_all(base.join("srv")).unwrap();
        std::fs::create_dir_all(upper.join("srv")).unwrap();
        std::fs::write(upper.join("srv/.dockerenv-not-at-root"), "").unwrap();
        std::fs::create_dir_all(upper.join("opt/etc")).unwrap();
        std::fs::write(upper.join("opt/etc/hosts"), "").unwrap();
        let got: Vec<String> = changes(&upper, &[top, base])
            .unwrap()
            .into_iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect();
        assert_eq!(
            got,
            vec![
                "C /etc",
                "C /etc/passwd",
                "A /etc/removed-below",
                "D /hidden",
                "A /new",
                "D /old",
                "A /opt",
                "A /opt/etc",
                "A /opt/etc/hosts",
                "C /srv",
                "A /srv/.dockerenv-not-at-root",
                "C /var/lib",
                "A /var/lib/db",
            ]
        );
    }
}
