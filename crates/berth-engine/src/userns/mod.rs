//! `berth daemon --userns-remap` (docs/architecture.md, "User-namespace remap"): containers
//! run in user namespaces of their own in which root is an unprivileged host ID from the
//! remap user's subordinate ranges, unless they opt out (`--userns host`).
//!
//! - [`remap`]: the flag, its user and ranges (from `berth_core::subid`).
//! - [`holder`]: user and network namespaces made from the (multi-threaded) daemon.
//! - [`idmount`]: image layers in the mapping's view, idmapped (or copied where the kernel
//!   cannot).
//! - Here: the daemon's mapping ([`Remap`]) and what a container's start and end do with it:
//!   its user namespace, pinned at `containers/<id>/userns` (its network namespace is made
//!   inside it, so the container can join that and mount sysfs), the refusals Docker makes.

mod holder;
pub(crate) mod idmount;
pub mod remap;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use berth_core::idmap::IdMap;

use crate::container::record::Record;
use crate::error::{EngineError, Result};
use crate::Engine;

pub use remap::{RemapError, RemapSpec, Resolved};

/// `BERTH_USERNS_COPY=1`: copy layers per mapping even where they could be idmapped (to test
/// the fallback).
const FORCE_COPY_ENV: &str = "BERTH_USERNS_COPY";

/// The daemon's mapping and what it keeps for it.
#[derive(Debug)]
pub struct Remap {
    pub resolved: Resolved,
    /// A user namespace with the mapping, for idmapped mounts: one for the daemon's life,
    /// made on first use.
    userns: Mutex<Option<Arc<OwnedFd>>>,
    /// Whether layers are idmapped (else copied): known after the first try.
    idmapped: OnceLock<bool>,
    /// Where layer copies go when they are not idmapped (`<root>/remap/<uid>.<gid>`).
    copies: PathBuf,
}

impl Remap {
    pub(crate) fn new(resolved: Resolved, root: &Path) -> Remap {
        let (uid, gid) = resolved.map.root();
        let copies = root.join("remap").join(format!("{uid}.{gid}"));
        let idmapped = OnceLock::new();
        if std::env::var_os(FORCE_COPY_ENV).is_some_and(|v| v == "1") {
            let _ = idmapped.set(false);
        }
        Remap {
            resolved,
            userns: Mutex::new(None),
            idmapped,
            copies,
        }
    }

    pub fn map(&self) -> &IdMap {
        &self.resolved.map
    }

    /// The mapping's user namespace (made once).
    fn userns(&self) -> io::Result<Arc<OwnedFd>> {
        let mut held = self.userns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fd) = &*held {
            return Ok(fd.clone());
        }
        let fd = Arc::new(holder::userns_fd(self.map())?);
        *held = Some(fd.clone());
        Ok(fd)
    }

    /// The lower dirs `dirs` (top first) as a container under the mapping must see them.
    pub(crate) fn lowers(&self, dirs: &[PathBuf]) -> io::Result<idmount::Lowers> {
        if dirs.is_empty() {
            return Ok(idmount::Lowers::default());
        }
        if self.idmapped.get() != Some(&false) {
            let userns = self.userns()?;
            match idmount::Lowers::idmapped(dirs, userns.as_fd()) {
                Ok(l) => {
                    let _ = self.idmapped.set(true);
                    return Ok(l);
                }
                Err(e) if self.idmapped.get().is_none() && idmount::unsupported(&e) => {
                    tracing::warn!(
                        error = %e,
                        "idmapped mounts are not available: image layers are copied once per \
                         mapping for remapped containers"
                    );
                    let _ = self.idmapped.set(false);
                }
                Err(e) => return Err(e),
            }
        }
        idmount::Lowers::copied(dirs, &self.copies, self.map())
    }

    /// Whether layers are copied rather than idmapped (once known).
    pub fn copies_layers(&self) -> bool {
        self.idmapped.get() == Some(&false)
    }

    /// Drops layer copies whose snapshot is gone.
    pub(crate) fn sweep_copies(&self, snapshots: &Path) {
        idmount::sweep_copies(&self.copies, snapshots);
    }
}

/// The daemon's remapping from its flag (`None` when the user is root): the user looked up
/// (or `dockremap` made), the root directory made traversable for the mapping's root (0711,
/// as dockerd makes its root) and every directory above it checked, with dockerd's words.
pub(crate) fn open(spec: &RemapSpec, root: &Path) -> io::Result<Option<Remap>> {
    let Some(resolved) = spec.resolve().map_err(io::Error::other)? else {
        tracing::warn!(
            "User namespaces: root cannot be remapped with itself; user namespaces are OFF"
        );
        return Ok(None);
    };
    let (uid, gid) = resolved.map.root();
    tracing::info!(
        user = %resolved.user,
        group = %resolved.group,
        root = %format!("{uid}:{gid}"),
        "User namespaces: ID ranges will be mapped to subuid/subgid ranges of {}",
        resolved.user
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
    let mut dir = root.canonicalize()?;
    while let Some(parent) = dir.parent().map(Path::to_path_buf) {
        let meta = std::fs::metadata(&parent)?;
        let mode = meta.mode();
        let passable = mode & 0o001 != 0
            || (meta.uid() == uid && mode & 0o100 != 0)
            || (meta.gid() == gid && mode & 0o010 != 0);
        if !passable {
            return Err(io::Error::other(format!(
                "a subdirectory in your graphroot path ({}) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories",
                root.display()
            )));
        }
        dir = parent;
    }
    let remap = Remap::new(resolved, root);
    remap.sweep_copies(&root.join("snapshots"));
    Ok(Some(remap))
}

/// Gives `path` (not following a symlink) to the mapping's root.
pub(crate) fn give_to_root(map: &IdMap, path: &Path) -> io::Result<()> {
    let (uid, gid) = map.root();
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Docker's refusals for a container under the daemon's mapping, and whether it runs under
/// it: not with `--userns host` (`HostConfig.UsernsMode`, the only mode there is).
pub(crate) fn check(rec: &Record, remap: Option<&IdMap>) -> Result<Option<IdMap>> {
    let hc = &rec.host_config;
    match hc.userns_mode.as_deref().unwrap_or("") {
        "" | "host" => {}
        m => return Err(EngineError::invalid(format!("invalid USER mode: {m}"))),
    }
    let Some(map) = remap else {
        return Ok(None);
    };
    if hc.userns_mode.as_deref() == Some("host") {
        return Ok(None);
    }
    if hc.privileged.unwrap_or(false) {
        return Err(EngineError::invalid(
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ));
    }
    if hc.network_mode.as_deref() == Some("host") {
        return Err(EngineError::invalid(
            "cannot share the host's network namespace when user namespaces are enabled",
        ));
    }
    if hc.pid_mode.as_deref() == Some("host") {
        return Err(EngineError::invalid(
            "cannot share the host PID namespace when user namespaces are enabled",
        ));
    }
    // The runtime cannot make device nodes in a user namespace (mknod is not permitted
    // there): it binds the host's node, from the path the device has inside.
    for d in hc.devices.iter().flatten() {
        let host = d.path_on_host.as_deref().unwrap_or("");
        let inside = d
            .path_in_container
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or(host);
        if inside != host {
            return Err(EngineError::invalid(format!(
                "cannot add device {host} as {inside} when user namespaces are enabled: devices are bound from the host at their own path (use --device {host} or --userns host)"
            )));
        }
    }
    Ok(Some(*map))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (nix::sys::stat::stat(a), nix::sys::stat::stat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

impl Engine {
    /// The daemon's mapping, when it remaps.
    pub fn remap(&self) -> Option<&Remap> {
        self.remap.as_deref()
    }

    /// The mapping container `rec` runs under, if any.
    pub(crate) fn idmap_of(&self, rec: &Record) -> Option<IdMap> {
        check(rec, self.remap().map(Remap::map)).ok().flatten()
    }

    fn userns_file(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("userns")
    }

    /// Before `rec` starts: the user namespace it joins, when it runs under the mapping. Its
    /// own, made with the mapping and pinned at `containers/<id>/userns`; or, when it joins
    /// another container's namespaces (`--network`/`--pid`/`--ipc container:NAME`), that
    /// container's, as Docker does: a namespace can only be joined from its own user
    /// namespace. Gone again with [`Engine::userns_down`].
    pub(crate) fn userns_up(&self, rec: &Record) -> Result<Option<PathBuf>> {
        let Some(map) = self.idmap_of(rec) else {
            return Ok(None);
        };
        let hc = &rec.host_config;
        let donors: Vec<&str> = [
            rec.net.mode.as_str(),
            hc.pid_mode.as_deref().unwrap_or(""),
            hc.ipc_mode.as_deref().unwrap_or(""),
        ]
        .into_iter()
        .filter_map(|m| m.strip_prefix("container:"))
        .filter(|n| !n.is_empty())
        .collect();
        let mut joined: Option<(PathBuf, &str)> = None;
        for name in donors {
            let file = self.donor_userns(name)?;
            match &joined {
                Some((first, first_name)) if !same_file(first, &file) => {
                    return Err(EngineError::conflict(format!(
                        "cannot join the namespaces of containers {first_name} and {name}: they run in different user namespaces"
                    )))
                }
                Some(_) => {}
                None => joined = Some((file, name)),
            }
        }
        if let Some((file, _)) = joined {
            return Ok(Some(file));
        }
        let file = self.userns_file(&rec.id);
        pin_new_userns(&file, &map)?;
        Ok(Some(file))
    }

    /// The user namespace of running container `name`, whose namespaces another container
    /// (or a build step) joins: a container under the remapping has its own pinned.
    pub(crate) fn donor_userns(&self, name: &str) -> Result<PathBuf> {
        let donor = self.find(name)?;
        if !self.refresh(&donor.id).running() {
            return Err(EngineError::conflict(format!(
                "cannot join the namespaces of a non running container: {name}"
            )));
        }
        let file = self.userns_file(&donor.id);
        if !crate::networks::is_nsfs(&file) {
            return Err(EngineError::conflict(format!(
                "cannot join the namespaces of container {name}: it does not run in a user namespace of this daemon's remapping (--userns host)"
            )));
        }
        Ok(file)
    }

    /// The container's user namespace is let go (with its network namespace, which it owns).
    pub(crate) fn userns_down(&self, id: &str) {
        holder::unpin(&self.userns_file(id));
    }
}

/// A new user namespace with `map`, pinned at `file` (anything pinned there before goes).
pub(crate) fn pin_new_userns(file: &Path, map: &IdMap) -> Result<()> {
    holder::unpin(file);
    let made = holder::Holder::spawn(holder::Recipe {
        join_user: None,
        new_user: true,
        new_net: false,
    })
    .and_then(|h| {
        h.write_maps(map)?;
        holder::pin(&h.ns("user"), file)
    });
    made.map_err(|e| EngineError::io("make the container's user namespace", e))
}

/// A new network namespace owned by the user namespace at `userns`, with `lo` up,
/// bind-mounted onto `path`.
pub(crate) fn make_netns_in(path: &Path, userns: &Path) -> io::Result<()> {
    let user = std::fs::File::open(userns)?;
    let h = holder::Holder::spawn(holder::Recipe {
        join_user: Some(user.as_fd()),
        new_user: false,
        new_net: true,
    })?;
    holder::pin(&h.ns("net"), path)
}

/// Unpins what [`make_netns_in`] or [`Engine::userns_up`] pinned at `path`.
pub(crate) fn unpin(path: &Path) {
    holder::unpin(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::containers::CreateRequest;
    use berth_core::idmap::IdRange;
    use berth_image::oci::RunConfig;

    fn record(host_config: serde_json::Value) -> Record {
        let body = serde_json::json!({"Cmd": ["sh"], "HostConfig": host_config});
        let req = CreateRequest::decode(None, body.to_string().as_bytes()).unwrap();
        crate::container::create::new_record(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "x",
            &req,
            "bb",
            "sha256:x",
            &RunConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn docker_refuses_what_a_user_namespace_cannot_do() {
        let range = IdRange {
            container: 0,
            host: 100_000,
            size: 65536,
        };
        let map = IdMap {
            uids: range,
            gids: range,
        };
        let check = |hc: serde_json::Value| check(&record(hc), Some(&map));
        assert_eq!(check(serde_json::json!({})).unwrap(), Some(map));
        assert_eq!(
            check(serde_json::json!({"IpcMode": "host"})).unwrap(),
            Some(map)
        );
        let same_path = serde_json::json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"}]});
        assert_eq!(check(same_path).unwrap(), Some(map));
        for (hc, words) in [
            (
                serde_json::json!({"Privileged": true}),
                "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
            ),
            (
                serde_json::json!({"NetworkMode": "host"}),
                "cannot share the host's network namespace when user namespaces are enabled",
            ),
            (
                serde_json::json!({"PidMode": "host"}),
                "cannot share the host PID namespace when user namespaces are enabled",
            ),
            (serde_json::json!({"UsernsMode": "private"}), "invalid USER mode: private"),
            (
                serde_json::json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rwm"}]}),
                "cannot add device /dev/null as /dev/n when user namespaces are enabled: devices are bound from the host at their own path (use --device /dev/null or --userns host)",
            ),
        ] {
            assert_eq!(check(hc).unwrap_err().to_string(), words);
        }
        // `--userns host` opts out of all of it.
        let host = serde_json::json!({"UsernsMode": "host", "Privileged": true, "NetworkMode": "host", "PidMode": "host"});
        assert_eq!(check(host.clone()).unwrap(), None);
        // Without remapping nothing is refused.
        assert_eq!(super::check(&record(host), None).unwrap(), None);
        assert_eq!(
            super::check(&record(serde_json::json!({"Privileged": true})), None).unwrap(),
            None
        );
    }
}
