//! Reading an image archive (`docker load`) in place: one pass over the tar headers records
//! where every file's data is, and files are then read by name straight from the archive,
//! never unpacked to disk. Names are checked on the way in: an absolute name, a `..`, or a
//! link that leaves the archive makes the whole archive invalid.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{ImageError, Result};

/// How many links may be followed to reach one file.
const MAX_LINKS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File {
        offset: u64,
        size: u64,
    },
    /// Where the link points, as a name in the archive.
    Link(String),
    Dir,
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(msg.into())
}

/// `a/./b/` → `a/b`; absolute names and `..` are refused.
pub fn normalize(name: &str) -> Result<String> {
    if name.starts_with('/') {
        return Err(invalid(format!("entry {name:?} has an absolute path")));
    }
    let mut parts = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid(format!("entry {name:?} leaves the archive (..)"))),
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// Where a symlink at `name` pointing at `target` leads, as a name in the archive. Absolute
/// targets are taken within the archive; one that climbs out of it is refused.
fn resolve_link(name: &str, target: &str) -> Result<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut p: Vec<&str> = name.split('/').collect();
        p.pop();
        p
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid(format!(
                        "link {name:?} -> {target:?} points outside the archive"
                    )));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

/// An archive on disk, indexed by name.
#[derive(Debug)]
pub struct Archive {
    file: File,
    entries: HashMap<String, Entry>,
}

/// The data of one file in the archive, read in place.
#[derive(Debug)]
pub struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Archive {
    pub fn open(path: &Path) -> Result<Archive> {
        let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        Archive::new(file)
    }

    /// Indexes the tar archive in `file`.
    pub fn new(file: File) -> Result<Archive> {
        let len = file
            .metadata()
            .map_err(|e| ImageError::io("stat", "archive", e))?
            .len();
        let mut entries = HashMap::new();
        {
            let mut reader = &file;
            std::io::Seek::rewind(&mut reader).map_err(|e| ImageError::io("seek", "archive", e))?;
            let mut tar = tar::Archive::new(reader);
            let iter = tar
                .entries_with_seek()
                .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
            for entry in iter {
                let entry = entry.map_err(|e| invalid(format!("not a tar archive: {e}")))?;
                let raw = entry.path_bytes();
                let name = std::str::from_utf8(&raw)
                    .map_err(|_| invalid("an entry name is not UTF-8"))?
                    .to_owned();
                let key = normalize(&name)?;
                let kind = entry.header().entry_type();
                let value = match kind {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let offset = entry.raw_file_position();
                        let size = entry.size();
                        if offset.checked_add(size).is_none_or(|end| end > len) {
                            return Err(invalid(format!(
                                "truncated: {name:?} ends past the end of the archive"
                            )));
                        }
                        Entry::File { offset, size }
                    }
                    tar::EntryType::Directory => Entry::Dir,
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let target = entry
                            .link_name_bytes()
                            .ok_or_else(|| invalid(format!("link {name:?} has no target")))?;
                        let target = std::str::from_utf8(&target)
                            .map_err(|_| invalid("a link target is not UTF-8"))?;
                        if kind == tar::EntryType::Symlink {
                            Entry::Link(resolve_link(&key, target)?)
                        } else {
                            // Hard links name their target from the archive's top.
                            Entry::Link(normalize(target)?)
                        }
                    }
                    t if t.is_gnu_sparse() => {
                        return Err(invalid(format!("sparse entry {name:?} is not supported")))
                    }
                    // Devices, fifos and the like cannot be part of an image archive's files.
                    _ => continue,
                };
                entries.insert(key, value);
            }
        }
        Ok(Archive { file, entries })
    }

    fn find(&self, name: &str) -> Result<Option<(u64, u64)>> {
        let mut key = normalize(name)?;
        for _ in 0..MAX_LINKS {
            match self.entries.get(&key) {
                None | Some(Entry::Dir) => return Ok(None),
                Some(Entry::File { offset, size }) => return Ok(Some((*offset, *size))),
                Some(Entry::Link(to)) => key = to.clone(),
            }
        }
        Err(invalid(format!("too many levels of links at {name:?}")))
    }

    pub fn contains(&self, name: &str) -> bool {
        matches!(self.find(name), Ok(Some(_)))
    }

    /// The file `name` (links followed) and its size, or `None` when there is no such file.
    pub fn open_file(&self, name: &str) -> Result<Option<(Section<'_>, u64)>> {
        Ok(self.find(name)?.map(|(offset, size)| {
            (
                Section {
                    file: &self.file,
                    pos: offset,
                    end: offset + size,
                },
                size,
            )
        }))
    }

    /// The whole of a small file (JSON documents), at most `limit` bytes.
    pub fn read_small(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((mut section, size)) = self.open_file(name)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(invalid(format!(
                "{name} is too large ({size} bytes, at most {limit})"
            )));
        }
        let mut out = Vec::with_capacity(size as usize);
        section
            .read_to_end(&mut out)
            .map_err(|e| ImageError::io("read", name, e))?;
        Ok(Some(out))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar file built in memory from (name, kind, link target, data) entries.
    pub(crate) fn tar_file(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> File {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            // Raw names, so the tests can write what a hostile archive would.
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            if !link.is_empty() {
                let raw = &mut h.as_old_mut().linkname;
                raw[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        f
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    #[test]
    fn files_are_read_in_place_through_links() {
        let a = Archive::new(tar_file(&[
            ("./abc/", Directory, "", b""),
            ("./abc/layer.tar", Regular, "", b"layer bytes"),
            ("def/layer.tar", Symlink, "../abc/layer.tar", b""),
            ("hard", Link, "abc/layer.tar", b""),
            ("manifest.json", Regular, "", b"[]"),
        ]))
        .unwrap();
        let read = |n: &str| {
            let (mut s, size) = a.open_file(n).unwrap().unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).unwrap();
            assert_eq!(v.len() as u64, size);
            v
        };
        assert_eq!(read("abc/layer.tar"), b"layer bytes");
        assert_eq!(read("def/layer.tar"), b"layer bytes");
        assert_eq!(read("hard"), b"layer bytes");
        assert_eq!(a.read_small("manifest.json", 10).unwrap().unwrap(), b"[]");
        assert!(a.read_small("manifest.json", 1).is_err());
        assert!(a.open_file("nothing").unwrap().is_none());
        assert!(a.open_file("abc").unwrap().is_none());
        assert!(!a.contains("abc/"));
    }

    #[test]
    fn escapes_are_refused() {
        for entries in [
            vec![("../evil", Regular, "", &b"x"[..])],
            vec![("/etc/passwd", Regular, "", &b"x"[..])],
            vec![("a/../../b", Regular, "", &b"x"[..])],
            vec![("l", Symlink, "../../etc/passwd", &b""[..])],
            vec![("h", Link, "../outside", &b""[..])],
        ] {
            let err = Archive::new(tar_file(&entries)).unwrap_err();
            assert!(matches!(err, ImageError::InvalidArchive(_)), "{err}");
        }
        // Absolute symlink targets stay inside.
        let a = Archive::new(tar_file(&[
            ("x/f", Regular, "", b"1"),
            ("l", Symlink, "/x/f", b""),
            ("loop", Symlink, "loop", b""),
        ]))
        .unwrap();
        assert!(a.contains("l"));
        assert!(a.open_file("loop").is_err());
    }

    #[test]
    fn truncated_archives_are_refused() {
        let f = tar_file(&[("big", Regular, "", &[7u8; 4096][..])]);
        f.set_len(1024).unwrap();
        let err = Archive::new(f).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let mut garbage = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut garbage, &[0x42; 1024]).unwrap();
        assert!(Archive::new(garbage).is_err());
    }
}
