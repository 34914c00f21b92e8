//! Writing a directory tree as a tar stream from descriptors: an overlayfs upper dir as an
//! OCI layer ([`write_layer`]: what `commit` and `build` store), and files as they are (the
//! engine's `GET …/archive` and `export`, which cross into a container's volumes through
//! [`Mounts`]).
//!
//! The tree is walked with `openat(O_NOFOLLOW)` from the descriptor of its top, so nothing a
//! container does meanwhile (a directory swapped for a symlink) makes the walk leave it. Names
//! go into the headers byte for byte (GNU long-name records when they do not fit): the docker
//! CLI renames entries by their first component (`foo/…`, `./…`), which must stay as written.
//!
//! As a layer, overlayfs whiteouts become `.wh.` files and opaque directories get
//! `.wh..wh..opq` ([`super::whiteout`]), overlayfs's own attributes stay out, and so do the
//! runtime's empty mount points ([`super::mount_points`]).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use berth_core::idmap::IdMap;
use berth_core::Digest;

use super::fd::{fgetxattr, list_dir, lstat_at, open_dir_path, open_in, readlink_at};
use super::mount_points::runtime_made;
use super::whiteout::{self, is_opaque, is_whiteout};
use crate::content::HashingWriter;
use crate::error::{ImageError, Result};

/// Yields exactly `left` bytes of `inner`: zeros when the file shrank while it was read, and
/// no more than that when it grew (the header already holds the size).
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A header for a GNU long name (`L`) or long link name (`K`) record of `len` bytes.
fn long_record(kind: u8, len: usize) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(len as u64 + 1);
    h.set_entry_type(tar::EntryType::new(kind));
    h.set_cksum();
    h
}

/// Appends an entry named `name` (and linking to `link`) exactly as given: names that do not
/// fit the header go in GNU long-name records first.
pub fn append_raw<W: Write>(
    out: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    let old = header.as_old_mut();
    old.name.fill(0);
    if name.len() > old.name.len() {
        out.append(&long_record(b'L', name.len()), name.chain(&[0u8][..]))?;
    }
    let n = name.len().min(old.name.len());
    header.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    if let Some(link) = link {
        header.as_old_mut().linkname.fill(0);
        if link.len() > header.as_old().linkname.len() {
            out.append(&long_record(b'K', link.len()), link.chain(&[0u8][..]))?;
        }
        let n = link.len().min(header.as_old().linkname.len());
        header.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
    }
    header.set_cksum();
    out.append(header, data)
}

/// PAX extended records (`SCHILY.xattr.…`) for the entry that follows.
fn append_pax<W: Write>(
    out: &mut tar::Builder<W>,
    name: &[u8],
    records: &[(String, Vec<u8>)],
) -> io::Result<()> {
    let mut body = Vec::new();
    for (k, v) in records {
        // "<len> <key>=<value>\n", where len counts itself.
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len = len.to_string().len() + rest;
        }
        body.extend_from_slice(format!("{len} {k}=").as_bytes());
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_entry_type(tar::EntryType::XHeader);
    let mut pax_name = b"PaxHeaders.0/".to_vec();
    let base = name
        .rsplit(|&b| b == b'/')
        .find(|c| !c.is_empty())
        .unwrap_or(b"x");
    pax_name.extend_from_slice(&base[..base.len().min(80)]);
    append_raw(out, &mut h, &pax_name, None, &body[..])
}

/// What a tree is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Files as they are (`cp`, `export`).
    Files,
    /// An overlayfs upper dir as an OCI layer: whiteouts become `.wh.` files, opaque
    /// directories get `.wh..wh..opq`, overlayfs's own attributes stay out.
    Layer,
}

/// Directories mounted into the tree being written (a container's volumes and bind mounts),
/// which the writer descends into instead of what is under them.
pub trait Mounts {
    /// The directory mounted at the logical path `comps`, opened for reading, if one is.
    fn mounted_at(&self, comps: &[Vec<u8>]) -> Option<io::Result<OwnedFd>>;
}

/// Writes trees into a tar stream.
pub struct TreeWriter<'v, W: Write> {
    out: tar::Builder<W>,
    flavor: Flavor,
    /// The mounts to descend into (`cp` of a directory holding a volume), and the logical
    /// path of the entry being written.
    mounts: Option<&'v dyn Mounts>,
    logical: Vec<Vec<u8>>,
    /// Files with several links: (dev, ino) → the name written first.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// A remapped container's tree, stored in the host's view: owners (and file
    /// capabilities) are written as the container sees them.
    ids: Option<IdMap>,
    /// Entries written.
    pub entries: u64,
}

impl<W: Write> std::fmt::Debug for TreeWriter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeWriter")
            .field("flavor", &self.flavor)
            .field("crossing_mounts", &self.mounts.is_some())
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

fn child_name(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    if !out.is_empty() && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

impl<'v, W: Write> TreeWriter<'v, W> {
    pub fn new(out: W, flavor: Flavor) -> TreeWriter<'v, W> {
        TreeWriter {
            out: tar::Builder::new(out),
            flavor,
            mounts: None,
            logical: Vec::new(),
            links: HashMap::new(),
            ids: None,
            entries: 0,
        }
    }

    /// The tree is a remapped container's, owned in the host's view through `ids`: entries
    /// get the owners the container sees (an ID outside the mapping is the overflow ID).
    pub fn in_container_view(mut self, ids: Option<IdMap>) -> Self {
        self.ids = ids;
        self
    }

    /// Descends into `mounts`; what is added next is at `logical` among them.
    pub fn crossing_mounts(mut self, mounts: &'v dyn Mounts, logical: Vec<Vec<u8>>) -> Self {
        self.mounts = Some(mounts);
        self.logical = logical;
        self
    }

    /// Ends the archive; returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.out.into_inner()
    }

    fn header(&self, st: &libc::stat, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(st.st_mode & 0o7777);
        let (uid, gid) = match &self.ids {
            Some(map) => map.owner_to_container(st.st_uid, st.st_gid),
            None => (st.st_uid, st.st_gid),
        };
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        h
    }

    /// Adds `leaf` of the directory `parent` as `name`, and everything below it.
    pub fn add(&mut self, parent: RawFd, leaf: &CStr, name: &[u8]) -> io::Result<()> {
        let mount = self.mounts.and_then(|m| m.mounted_at(&self.logical));
        let (dir, st) = match mount {
            // A volume mounted here: its own directory, as the container sees it.
            Some(dir) => {
                let dir = dir?;
                let st = lstat_at(dir.as_raw_fd(), c"")?;
                (Some(dir), st)
            }
            None => (None, lstat_at(parent, leaf)?),
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let dir = match dir {
                    Some(d) => d,
                    None => open_in(parent, leaf, libc::O_RDONLY | libc::O_DIRECTORY)?,
                };
                if self.flavor == Flavor::Layer
                    && runtime_made(&self.logical, &st, Some(dir.as_raw_fd()))
                {
                    return Ok(());
                }
                let mut dir_name = name.to_vec();
                if !dir_name.ends_with(b"/") {
                    dir_name.push(b'/');
                }
                let mut h = self.header(&st, tar::EntryType::Directory);
                self.append(&mut h, &dir_name, None, io::empty())?;
                self.add_children(dir.as_raw_fd(), name)
            }
            _ if self.flavor == Flavor::Layer && runtime_made(&self.logical, &st, None) => Ok(()),
            _ => self.add_non_dir(parent, leaf, name, &st),
        }
    }

    /// Adds what is in the directory `dir`, named `prefix/<name>` (`prefix` empty: `<name>`).
    pub fn add_children(&mut self, dir: RawFd, prefix: &[u8]) -> io::Result<()> {
        if self.flavor == Flavor::Layer && is_opaque(dir) {
            let st = lstat_at(dir, c"")?;
            let mut h = self.header(&st, tar::EntryType::Regular);
            h.set_mode(0o600);
            let name = whiteout::opaque_tar_name(prefix);
            self.append(&mut h, &name, None, io::empty())?;
        }
        for child in list_dir(dir)? {
            if self.flavor == Flavor::Layer && whiteout::is_fuse_marker(child.to_bytes()) {
                continue; // fuse-overlayfs's opaque marks: is_opaque above took them
            }
            let name = child_name(prefix, child.to_bytes());
            self.logical.push(child.to_bytes().to_vec());
            let added = self.add(dir, &child, &name);
            self.logical.pop();
            match added {
                // Gone since the listing (a running container deleted it): leave it out.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        Ok(())
    }

    fn append(
        &mut self,
        h: &mut tar::Header,
        name: &[u8],
        link: Option<&[u8]>,
        data: impl Read,
    ) -> io::Result<()> {
        self.entries += 1;
        append_raw(&mut self.out, h, name, link, data)
    }

    fn add_non_dir(
        &mut self,
        parent: RawFd,
        leaf: &CStr,
        name: &[u8],
        st: &libc::stat,
    ) -> io::Result<()> {
        use tar::EntryType;
        let kind = st.st_mode & libc::S_IFMT;
        if self.flavor == Flavor::Layer && is_whiteout(st) {
            let wh = whiteout::tar_name(name);
            let mut h = self.header(st, EntryType::Regular);
            return self.append(&mut h, &wh, None, io::empty());
        }
        if kind != libc::S_IFLNK && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.header(st, EntryType::Link);
                return self.append(&mut h, name, Some(&first), io::empty());
            }
            self.links.insert(key, name.to_vec());
        }
        match kind {
            libc::S_IFREG => {
                let file = open_in(
                    parent,
                    leaf,
                    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
                )?;
                let st = lstat_at(file.as_raw_fd(), c"")?;
                if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Ok(()); // swapped for something else since it was listed
                }
                let mut h = self.header(&st, EntryType::Regular);
                h.set_size(st.st_size as u64);
                if let Some(mut cap) = fgetxattr(file.as_raw_fd(), c"security.capability") {
                    if let Some(map) = &self.ids {
                        cap = map.fcaps_to_container(&cap);
                    }
                    append_pax(
                        &mut self.out,
                        name,
                        &[("SCHILY.xattr.security.capability".to_owned(), cap)],
                    )?;
                }
                let data = Exactly {
                    inner: std::fs::File::from(file),
                    left: st.st_size as u64,
                };
                self.append(&mut h, name, None, data)
            }
            libc::S_IFLNK => {
                let target = readlink_at(parent, leaf)?;
                let mut h = self.header(st, EntryType::Symlink);
                self.append(&mut h, name, Some(&target), io::empty())
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                let kind = match kind {
                    libc::S_IFCHR => EntryType::Char,
                    libc::S_IFBLK => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let mut h = self.header(st, kind);
                if kind != EntryType::Fifo {
                    h.set_device_major(libc::major(st.st_rdev))?;
                    h.set_device_minor(libc::minor(st.st_rdev))?;
                }
                self.append(&mut h, name, None, io::empty())
            }
            // Sockets cannot be archived (Docker leaves them out too).
            _ => Ok(()),
        }
    }
}

/// A layer [`write_layer`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// sha256 of the compressed blob (the manifest's layer digest), and its bytes.
    pub digest: Digest,
    pub size: u64,
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry), and its bytes.
    pub diff_id: Digest,
    pub diff_size: u64,
    /// Entries in the tar: 0 for an upper dir with nothing in it (then it is no layer).
    pub entries: u64,
}

/// Writes the overlayfs upper dir `upper` (missing: empty) as a gzip-compressed OCI layer into
/// the new file `dest` (the content store's staging area), synced; hashed uncompressed (diff
/// ID) and compressed (digest) in the same pass. On failure `dest` is removed. `ids`: the
/// upper dir of a remapped container, whose owners are written as the container sees them.
pub fn write_layer(upper: &Path, dest: &Path, ids: Option<IdMap>) -> Result<Written> {
    let result = (|| -> io::Result<Written> {
        let file = std::fs::File::create(dest)?;
        let compressed = HashingWriter::new(io::BufWriter::new(file));
        let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
        let mut tree =
            TreeWriter::new(HashingWriter::new(gz), Flavor::Layer).in_container_view(ids);
        if upper.exists() {
            let top = open_dir_path(upper, libc::O_PATH)?;
            tree.add_children(top.as_raw_fd(), b"")?;
        }
        let entries = tree.entries;
        let (gz, diff_id, diff_size) = tree.finish()?.finish();
        let (buf, digest, size) = gz.finish()?.finish();
        buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(Written {
            digest,
            size,
            diff_id,
            diff_size,
            entries,
        })
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(dest);
        ImageError::io("write the layer of", PathBuf::from(upper), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                let kind = e.header().entry_type();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                let mut data = String::new();
                e.read_to_string(&mut data).unwrap();
                (name, kind, if link.is_empty() { data } else { link })
            })
            .collect()
    }

    fn mknod_whiteout(dir: &std::path::Path, name: &str) -> bool {
        let c = CString::new(dir.join(name).as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is NUL-terminated.
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) == 0 }
    }

    #[test]
    fn a_remapped_tree_is_written_with_the_containers_owners() {
        if !nix::unistd::geteuid().is_root() {
            return; // the owners of the host's view need root to set
        }
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/mine"), "x").unwrap();
        std::fs::write(upper.join("host-root"), "y").unwrap();
        for (p, uid, gid) in [("etc", 100_000, 100_000), ("etc/mine", 100_007, 100_008)] {
            std::os::unix::fs::lchown(upper.join(p), Some(uid), Some(gid)).unwrap();
        }
        let range = berth_core::idmap::IdRange {
            container: 0,
            host: 100_000,
            size: 65536,
        };
        let map = IdMap {
            uids: range,
            gids: range,
        };
        let mut w = TreeWriter::new(Vec::new(), Flavor::Layer).in_container_view(Some(map));
        w.add_children(top(&upper).as_raw_fd(), b"").unwrap();
        let bytes = w.finish().unwrap();
        let mut owners: Vec<(String, u64, u64)> = tar::Archive::new(&bytes[..])
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
                (name, h.uid().unwrap(), h.gid().unwrap())
            })
            .collect();
        owners.sort();
        assert_eq!(
            owners,
            vec![
                ("etc/".to_owned(), 0, 0),
                ("etc/mine".to_owned(), 7, 8),
                // Not the container's: nobody, as the container sees it.
                ("host-root".to_owned(), 65534, 65534),
            ]
        );
    }

    #[test]
    fn names_are_kept_as_given_and_long_ones_survive() {
        let dir = tempfile::tempdir().unwrap();
        let long = "d".repeat(150);
        std::fs::create_dir_all(dir.path().join("top").join(&long)).unwrap();
        std::fs::write(dir.path().join("top").join(&long).join("f"), "data").unwrap();
        std::fs::write(dir.path().join("top/a.txt"), "a").unwrap();
        std::fs::hard_link(dir.path().join("top/a.txt"), dir.path().join("top/b.txt")).unwrap();
        std::os::unix::fs::symlink("x".repeat(120), dir.path().join("top/link")).unwrap();
        let root = top(dir.path());
        let mut w = TreeWriter::new(Vec::new(), Flavor::Files);
        w.add(root.as_raw_fd(), c"top", b".").unwrap();
        let got = entries(&w.finish().unwrap());
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "./",
                "./a.txt",
                "./b.txt",
                &format!("./{long}/"),
                &format!("./{long}/f"),
                "./link"
            ]
        );
        assert_eq!(got[1].2, "a");
        assert_eq!(got[2].1, tar::EntryType::Link);
        assert_eq!(got[2].2, "./a.txt");
        assert_eq!(got[4].2, "data");
        assert_eq!(got[5].2, "x".repeat(120));
    }

    /// A directory opened as the engine opens a tree's top (`O_PATH`).
    fn top(path: &Path) -> OwnedFd {
        open_dir_path(path, libc::O_PATH).unwrap()
    }

    #[test]
    fn overlay_whiteouts_become_oci_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            return; // whiteouts are device nodes and the opaque mark a trusted xattr
        }
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/new"), "n").unwrap();
        assert!(mknod_whiteout(&upper.join("etc"), "gone"));
        std::fs::create_dir_all(upper.join("opaque")).unwrap();
        std::fs::write(upper.join("opaque/kept"), "k").unwrap();
        // The runtime's mount points stay out of the layer.
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        let c = CString::new(upper.join("opaque").as_os_str().as_bytes()).unwrap();
        // SAFETY: both strings are NUL-terminated; the value is a 1-byte buffer.
        let r = unsafe {
            libc::setxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            )
        };
        assert_eq!(r, 0);
        let root = top(upper);
        let mut w = TreeWriter::new(Vec::new(), Flavor::Layer);
        w.add_children(root.as_raw_fd(), b"").unwrap();
        let got = entries(&w.finish().unwrap());
        let names: Vec<&str> = got.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "etc/",
                "etc/.wh.gone",
                "etc/new",
                "opaque/",
                "opaque/.wh..wh..opq",
                "opaque/kept"
            ]
        );
        assert_eq!(got[1].1, tar::EntryType::Regular);

        // And berth-image's layer apply turns them back into overlayfs's form.
        let mut w = TreeWriter::new(Vec::new(), Flavor::Layer);
        w.add_children(root.as_raw_fd(), b"").unwrap();
        let tar = w.finish().unwrap();
        let back = tempfile::tempdir().unwrap();
        crate::layer::apply(&tar[..], back.path()).unwrap();
        let st = std::fs::symlink_metadata(back.path().join("etc/gone")).unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        assert!(st.file_type().is_char_device() && st.rdev() == 0);
        let opaque = std::fs::File::open(back.path().join("opaque")).unwrap();
        assert!(is_opaque(opaque.as_raw_fd()));
    }

    #[test]
    fn a_file_that_shrinks_is_padded() {
        let mut r = Exactly {
            inner: &b"abc"[..],
            left: 5,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0");
        let mut r = Exactly {
            inner: &b"abcdef"[..],
            left: 2,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab");
    }
}
