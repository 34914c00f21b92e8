//! A container's files through the archive API (`docker cp`), `export`, `diff` and `commit`.
//!
//! - Paths are resolved inside the container ([`crate::confined`]): `openat2(RESOLVE_IN_ROOT)`
//!   from a descriptor of its root filesystem (or of a volume's directory for paths in a
//!   volume), so no symlink the container made can lead berth to a host path; all reading and
//!   writing is then relative to descriptors opened that way.
//! - A running container's rootfs is its mounted overlay. A stopped one's is mounted for the
//!   operation and unmounted after, under the container's lock (held to the end, so it cannot
//!   be started or removed meanwhile and its upper dir is never in two overlays at once).
//! - Requested paths follow Docker: cleaned lexically, a trailing `/` or `/.` follows a final
//!   symlink (and `/.` names the directory's content), archives are named after the last
//!   element (`foo/…`, `./…`, `/…` for the root) so the docker CLI can rename them.
//! - Archives are written by berth-image's tree writer (`berth_image::layer::write`, the one
//!   commit's layers are written with); `diff` is berth-image's comparer
//!   (`berth_image::layer::diff`) over the container's upper dir and its image's snapshots.

pub(crate) mod commit;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::EngineError;
use berth_api::archive::{ArchiveBackend, Change, CommitRequest, ExtractOptions, PathStat};

use crate::confined::{cstring, extract, is_dir, is_symlink, join, lexical, lstat_at, Root, View};
use crate::container::record::Record;
use crate::Engine;
use berth_api::BackendResult;
use berth_image::layer::write::{Flavor, TreeWriter};

/// `statfs.f_type` of overlayfs.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Go's `os.FileMode` for a stat (what the docker CLI decodes from the stat header).
pub(crate) fn go_mode(st: &libc::stat) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let m = st.st_mode;
    let mut out = m & 0o777;
    if m & libc::S_ISUID != 0 {
        out |= SETUID;
    }
    if m & libc::S_ISGID != 0 {
        out |= SETGID;
    }
    if m & libc::S_ISVTX != 0 {
        out |= STICKY;
    }
    out | match m & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR_DEVICE,
        libc::S_IFIFO => NAMED_PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    }
}

fn rfc3339(secs: i64, nanos: i64) -> String {
    chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_owned())
}

/// A requested path as Docker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    /// Cleaned lexically (`..` removes the component before it), from the root.
    comps: Vec<Vec<u8>>,
    /// A trailing `/` or `/.`: a final symlink is followed.
    follow_last: bool,
    /// The last element of the path (`.` for `dir/.`, `/` for the root): what Docker names
    /// the stat and the archive's top entry.
    name: String,
}

fn parse_request(path: &str) -> Request {
    let raw = path.as_bytes();
    let comps = lexical(raw);
    let current_dir = raw == b"." || raw.ends_with(b"/.");
    let follow_last = current_dir || raw.ends_with(b"/");
    let name = if current_dir {
        ".".to_owned()
    } else {
        comps.last().map_or_else(
            || "/".to_owned(),
            |c| String::from_utf8_lossy(c).into_owned(),
        )
    };
    Request {
        comps,
        follow_last,
        name,
    }
}

/// A path found in the container: its parent directory, its name there, what it is, and
/// where it is (logical components).
struct Found {
    parent: OwnedFd,
    leaf: CString,
    st: libc::stat,
    logical: Vec<Vec<u8>>,
}

fn locate(view: &View, req: &Request) -> io::Result<Found> {
    let logical = view.resolve(&join(&req.comps), req.follow_last)?;
    let (parent, leaf) = match (logical.split_last(), view.mount_at(&logical)) {
        (None, _) => (view.open_dir(&[])?, c".".to_owned()),
        // A volume's own directory: its root, not the mount point under it.
        (Some(_), Some(m)) => (m.root.open_dir(&[])?, c".".to_owned()),
        (Some((last, parents)), None) => (view.open_dir(parents)?, cstring(last)?),
    };
    let st = lstat_at(parent.as_raw_fd(), &leaf)?;
    Ok(Found {
        parent,
        leaf,
        st,
        logical,
    })
}

fn stat_of(view: &View, req: &Request, found: &Found) -> PathStat {
    let link_target = if is_symlink(&found.st) {
        view.resolve_target(&join(&found.logical))
            .map(|c| String::from_utf8_lossy(&join(&c)).into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    PathStat {
        name: req.name.clone(),
        size: found.st.st_size,
        mode: go_mode(&found.st),
        mtime: rfc3339(found.st.st_mtime, found.st.st_mtime_nsec),
        link_target,
    }
}

/// Docker's answer for a path that cannot be looked up.
fn path_error(e: io::Error, path: &str, container: &str) -> EngineError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => EngineError::not_found(format!(
            "Could not find the file {path} in container {container}"
        )),
        Some(libc::ELOOP) => EngineError::invalid(format!(
            "{path} in container {container}: too many levels of symbolic links"
        )),
        Some(libc::EROFS) => EngineError::forbidden(format!(
            "{path} in container {container}: read-only file system"
        )),
        _ => EngineError::internal(format!("{path} in container {container}: {e}")),
    }
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(e.to_string())
}

/// Opens a container's mounted rootfs, making sure it is its overlay (not the empty mount
/// point of a container that just stopped).
fn open_rootfs(path: &std::path::Path) -> Result<Root, EngineError> {
    let root =
        Root::open(path).map_err(|e| internal(format!("open the container's rootfs: {e}")))?;
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `fs` is a valid out-buffer; the descriptor is open.
    let r = unsafe { libc::fstatfs(root.raw(), &mut fs) };
    if r != 0 || fs.f_type as i64 != OVERLAYFS_MAGIC {
        return Err(EngineError::conflict(
            "the container's filesystem is not mounted (it stopped meanwhile); try again",
        ));
    }
    Ok(root)
}

impl Engine {
    /// The container's files as it sees them: its root with its volumes and bind mounts.
    fn view_of(&self, rec: &Record, root: Root) -> View {
        let mut view = View::new(root);
        for m in &rec.mounts {
            let source = match m.kind.as_str() {
                "volume" => self.volume_data(&m.source),
                "bind" => std::path::PathBuf::from(&m.source),
                // tmpfs lives in the container's own mount namespace only.
                _ => continue,
            };
            // Bind-mounted files are not directories to look things up in; left out.
            if let Ok(r) = Root::open(&source) {
                view.add_mount(m.target.as_bytes(), r, m.readonly);
            }
        }
        view
    }

    /// Runs `f` on the container `key`'s files: a running container's mounted rootfs, or a
    /// stopped one's mounted for the call (under its lock, unmounted after).
    fn with_view<T>(
        &self,
        key: &str,
        f: impl FnOnce(&Record, &View) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let rec = self.find(key)?;
        let lock = self.container_lock(&rec.id);
        let held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.container_dir(&rec.id).join("config.json").exists() {
            return Err(EngineError::not_found(format!("No such container: {key}")));
        }
        if self.refresh(&rec.id).running() {
            // The descriptor keeps the overlay reachable even if the container stops now.
            let root = open_rootfs(&self.rootfs(&rec.id))?;
            drop(held);
            return f(&rec, &self.view_of(&rec, root));
        }
        self.mount_rootfs(&rec)?;
        let result = open_rootfs(&self.rootfs(&rec.id)).and_then(|root| {
            let view = self.view_of(&rec, root);
            f(&rec, &view)
        });
        self.unmount_rootfs(&rec.id);
        drop(held);
        result
    }
}

impl Engine {
    pub fn stat_container_path(&self, key: &str, path: &str) -> Result<PathStat, EngineError> {
        let req = parse_request(path);
        self.with_view(key, |_, view| {
            let found = locate(view, &req).map_err(|e| path_error(e, path, key))?;
            Ok(stat_of(view, &req, &found))
        })
    }

    pub fn archive_container_path(
        &self,
        key: &str,
        path: &str,
        found_cb: &mut dyn FnMut(&PathStat),
        out: &mut dyn io::Write,
    ) -> Result<(), EngineError> {
        let req = parse_request(path);
        self.with_view(key, |rec, view| {
            let found = locate(view, &req).map_err(|e| path_error(e, path, key))?;
            found_cb(&stat_of(view, &req, &found));
            let mut tree = TreeWriter::new(out, Flavor::Files)
                .crossing_mounts(view, found.logical.clone())
                .in_container_view(self.idmap_of(rec));
            tree.add(found.parent.as_raw_fd(), &found.leaf, req.name.as_bytes())
                .map_err(internal)?;
            tree.finish().map_err(internal)?;
            self.container_event(rec, "archive-path", &[]);
            Ok(())
        })
    }

    pub fn extract_to_container(
        &self,
        key: &str,
        path: &str,
        opts: ExtractOptions,
        tar: &mut dyn io::Read,
    ) -> Result<(), EngineError> {
        let req = parse_request(path);
        self.with_view(key, |rec, view| {
            // The destination is followed to the end: a symlink to a directory extracts there.
            let dest = view
                .resolve(&join(&req.comps), true)
                .map_err(|e| path_error(e, path, key))?;
            let fd = view
                .open_at(&dest, libc::O_PATH)
                .map_err(|e| path_error(e, path, key))?;
            let st = lstat_at(fd.as_raw_fd(), c"").map_err(internal)?;
            if !is_dir(&st) {
                return Err(EngineError::invalid("extraction point is not a directory"));
            }
            match view.mount_of(&dest) {
                Some(m) if m.readonly => {
                    return Err(EngineError::forbidden("mounted volume is marked read-only"))
                }
                None if rec.readonly_rootfs() => {
                    return Err(EngineError::forbidden(
                        "container rootfs is marked read-only",
                    ))
                }
                _ => {}
            }
            let owner = if opts.copy_uid_gid && !rec.user().is_empty() {
                Some(extract::lookup_owner(view, rec.user()).ok_or_else(|| {
                    EngineError::invalid(format!(
                        "unable to find user {}: no matching entries in passwd file",
                        rec.user()
                    ))
                })?)
            } else {
                None
            };
            let (_, stream) = berth_image::compression::decompressed(tar)
                .map_err(|e| EngineError::invalid(format!("reading the archive: {e}")))?;
            extract::extract(
                view,
                &dest,
                stream,
                extract::Options {
                    no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                    owner,
                    ids: self.idmap_of(rec),
                },
            )
            .map_err(|e| match e {
                extract::ExtractError::Io(_, ref io) if io.raw_os_error() == Some(libc::EROFS) => {
                    EngineError::forbidden(e.to_string())
                }
                extract::ExtractError::Io(..) => EngineError::internal(e.to_string()),
                _ => EngineError::invalid(e.to_string()),
            })?;
            self.container_event(rec, "extract-to-dir", &[]);
            Ok(())
        })
    }

    pub fn export_container(
        &self,
        key: &str,
        found: &mut dyn FnMut(),
        out: &mut dyn io::Write,
    ) -> Result<(), EngineError> {
        self.with_view(key, |rec, view| {
            // Docker's export is the container's own filesystem: volumes are not in it.
            let top = view.root.open_dir(&[]).map_err(internal)?;
            found();
            let mut tree =
                TreeWriter::new(out, Flavor::Files).in_container_view(self.idmap_of(rec));
            tree.add_children(top.as_raw_fd(), b"").map_err(internal)?;
            tree.finish().map_err(internal)?;
            self.container_event(rec, "export", &[]);
            Ok(())
        })
    }

    pub fn container_changes(&self, key: &str) -> Result<Vec<Change>, EngineError> {
        let rec = self.find(key)?;
        let image: berth_core::Digest = rec
            .image_id
            .parse()
            .map_err(|_| internal("bad image id in container record"))?;
        let config = self
            .images
            .config(&image)
            .map_err(|e| EngineError::from_kind(&e))?;
        let lowers = self
            .images
            .lower_dirs(&config)
            .map_err(|e| EngineError::from_kind(&e))?;
        let changes =
            berth_image::layer::changes(&self.container_dir(&rec.id).join("upper"), &lowers)
                .map_err(internal)?;
        Ok(changes
            .into_iter()
            .map(|c| Change {
                path: c.path,
                kind: c.kind as u8,
            })
            .collect())
    }

    pub fn commit_container(&self, req: CommitRequest) -> Result<String, EngineError> {
        self.commit(req)
    }
}

impl ArchiveBackend for Engine {
    fn stat_container_path(&self, key: &str, path: &str) -> BackendResult<PathStat> {
        Ok(Engine::stat_container_path(self, key, path)?)
    }
    fn archive_container_path(
        &self,
        key: &str,
        path: &str,
        found_cb: &mut dyn FnMut(&PathStat),
        out: &mut dyn io::Write,
    ) -> BackendResult<()> {
        Ok(Engine::archive_container_path(
            self, key, path, found_cb, out,
        )?)
    }
    fn extract_to_container(
        &self,
        key: &str,
        path: &str,
        opts: ExtractOptions,
        tar: &mut dyn io::Read,
    ) -> BackendResult<()> {
        Ok(Engine::extract_to_container(self, key, path, opts, tar)?)
    }
    fn export_container(
        &self,
        key: &str,
        found: &mut dyn FnMut(),
        out: &mut dyn io::Write,
    ) -> BackendResult<()> {
        Ok(Engine::export_container(self, key, found, out)?)
    }
    fn container_changes(&self, key: &str) -> BackendResult<Vec<Change>> {
        Ok(Engine::container_changes(self, key)?)
    }
    fn commit_container(&self, req: CommitRequest) -> BackendResult<String> {
        Ok(Engine::commit_container(self, req)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_paths_as_docker_reads_them() {
        let r = parse_request("/etc/passwd");
        assert_eq!((r.name.as_str(), r.follow_last), ("passwd", false));
        let r = parse_request("etc/../var/./log/");
        assert_eq!(join(&r.comps), b"/var/log");
        assert_eq!((r.name.as_str(), r.follow_last), ("log", true));
        let r = parse_request("/var/log/.");
        assert_eq!((r.name.as_str(), r.follow_last), (".", true));
        assert_eq!(parse_request("/").name, "/");
        assert_eq!(parse_request("/.").name, ".");
        assert_eq!(parse_request("a/..").name, "/");
        assert_eq!(parse_request("../../etc").comps, lexical(b"/etc"));
    }

    #[test]
    fn modes_in_gos_bits() {
        // SAFETY: an all-zero stat is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        st.st_mode = libc::S_IFDIR | 0o755;
        assert_eq!(go_mode(&st), (1 << 31) | 0o755);
        st.st_mode = libc::S_IFLNK | 0o777;
        assert_eq!(go_mode(&st), (1 << 27) | 0o777);
        st.st_mode = libc::S_IFREG | libc::S_ISUID | 0o4755 & 0o777;
        assert_eq!(go_mode(&st), (1 << 23) | 0o755);
        st.st_mode = libc::S_IFCHR | 0o600;
        assert_eq!(go_mode(&st), (1 << 26) | (1 << 21) | 0o600);
        assert_eq!(rfc3339(0, 5), "1970-01-01T00:00:00.000000005Z");
    }
}
