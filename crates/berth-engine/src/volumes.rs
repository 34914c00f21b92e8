//! Volumes (`docker volume …`) and a container's mounts.
//!
//! A volume is `<root>/volumes/<name>/_data` with its record beside it (`volume.json`, written
//! atomically). Named volumes are created on demand by `-v name:/path`; anonymous ones (64 hex
//! digits) come from `-v /path`, `--mount type=volume` without a source, and the image's
//! `VOLUME`s. An empty volume mounted for the first time gets the image's content at the mount
//! point (Docker's copy-up). Data is never lost by accident: a container's removal keeps named
//! volumes (and anonymous ones unless `rm -v` or `--rm`), a volume any container references is
//! never removed, and `volume prune` takes only unused anonymous volumes unless `all=true`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::EngineError;
use berth_api::volumes::VolumeBackend;
use berth_core::filters::Filters;
use berth_oci::spec::UserMount;
use serde::{Deserialize, Serialize};

use crate::container::record::Record;
use crate::Engine;
use berth_api::BackendResult;
use bollard_stubs::models::{
    ContainerCreateBody, Mount, MountType as MountTypeEnum, Volume as VolumeModel,
    VolumeCreateRequest, VolumeListResponse, VolumePruneResponse, VolumeScopeEnum, VolumeUsageData,
};

/// A volume's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub created: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Made for one container (no name given): `rm -v`, `--rm` and `prune` may take it.
    #[serde(default)]
    pub anonymous: bool,
}

pub use crate::container::record::MountRecord;

fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::invalid(msg)
}

fn io_err(what: &str, e: std::io::Error) -> EngineError {
    EngineError::internal(format!("{what}: {e}"))
}

fn clean_target(target: &str) -> Result<String, EngineError> {
    if !target.starts_with('/') {
        return Err(bad(format!(
            "invalid mount config for type \"volume\": invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    let mut parts = Vec::new();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad("invalid specification: destination can't be '/'"));
    }
    Ok(format!("/{}", parts.join("/")))
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// `-v SRC:DST[:OPTS]`, `-v DST` (an anonymous volume).
fn parse_bind(spec: &str) -> Result<MountRecord, EngineError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => return Err(bad(format!("invalid volume specification: '{spec}'"))),
    };
    let mut m = MountRecord {
        kind: if source.starts_with('/') {
            "bind"
        } else {
            "volume"
        }
        .into(),
        source: source.to_owned(),
        target: clean_target(target)?,
        readonly: false,
        propagation: None,
        mode: opts.to_owned(),
        nocopy: false,
        options: Vec::new(),
    };
    if opts.is_empty() && m.kind == "volume" && !source.is_empty() {
        m.mode = "z".to_owned();
    }
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.readonly = true,
            "rw" => m.readonly = false,
            "z" | "Z" => {}
            "nocopy" => m.nocopy = true,
            p if PROPAGATIONS.contains(&p) => m.propagation = Some(p.to_owned()),
            other => {
                return Err(bad(format!(
                    "invalid volume specification: '{spec}': unknown option {other:?}"
                )))
            }
        }
    }
    if m.kind == "volume" && !m.source.is_empty() && !valid_volume_name(&m.source) {
        return Err(bad(format!(
            "create {}: \"{}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
            m.source, m.source
        )));
    }
    Ok(m)
}

/// One entry of HostConfig.Mounts (`--mount`).
fn parse_mount(v: &Mount) -> Result<MountRecord, EngineError> {
    let kind = match v.typ {
        None | Some(MountTypeEnum::VOLUME) => "volume",
        Some(MountTypeEnum::BIND) => "bind",
        Some(MountTypeEnum::TMPFS) => "tmpfs",
        Some(other) => {
            return Err(bad(format!(
                "mount type {:?} is not supported",
                other.to_string()
            )))
        }
    }
    .to_owned();
    let target = clean_target(v.target.as_deref().unwrap_or(""))?;
    let source = v.source.clone().unwrap_or_default();
    let mut m = MountRecord {
        kind: kind.clone(),
        source,
        target,
        readonly: v.read_only.unwrap_or(false),
        propagation: v
            .bind_options
            .as_ref()
            .and_then(|b| b.propagation)
            .map(|p| p.as_ref().to_owned())
            .filter(|p| !p.is_empty()),
        mode: if kind == "volume" { "z" } else { "" }.to_owned(),
        nocopy: v
            .volume_options
            .as_ref()
            .and_then(|o| o.no_copy)
            .unwrap_or(false),
        options: Vec::new(),
    };
    match kind.as_str() {
        "bind" => {
            if !m.source.starts_with('/') {
                return Err(bad(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                    m.source
                )));
            }
            if !Path::new(&m.source).exists() {
                return Err(bad(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {}",
                    m.source
                )));
            }
        }
        "volume" if !m.source.is_empty() && !valid_volume_name(&m.source) => {
            return Err(bad(format!("invalid volume name: {:?}", m.source)));
        }
        "tmpfs" => {
            if !m.source.is_empty() {
                return Err(bad(
                    "invalid mount config for type \"tmpfs\": source must not be specified",
                ));
            }
            let opts = v.tmpfs_options.as_ref();
            if let Some(size) = opts.and_then(|o| o.size_bytes).filter(|s| *s > 0) {
                m.options.push(format!("size={size}"));
            }
            if let Some(mode) = opts.and_then(|o| o.mode).filter(|m| *m > 0) {
                m.options.push(format!("mode={mode:o}"));
            }
        }
        _ => {}
    }
    if m.propagation
        .as_deref()
        .is_some_and(|p| !PROPAGATIONS.contains(&p))
    {
        return Err(bad(format!(
            "invalid propagation mode: {}",
            m.propagation.unwrap_or_default()
        )));
    }
    Ok(m)
}

/// A random anonymous volume name (64 hex digits, like Docker's).
fn anonymous_name() -> Result<String, EngineError> {
    Ok(berth_core::ContainerId::generate()
        .map_err(|e| EngineError::internal(e.to_string()))?
        .to_string())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Engine {
    fn volumes_dir(&self) -> PathBuf {
        self.root().join("volumes")
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    /// The directory a container mounts.
    pub(crate) fn volume_data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    pub(crate) fn read_volume(&self, name: &str) -> Option<Volume> {
        if !valid_volume_name(name) {
            return None;
        }
        serde_json::from_slice(&std::fs::read(self.volume_dir(name).join("volume.json")).ok()?).ok()
    }

    fn volume(&self, name: &str) -> Result<Volume, EngineError> {
        self.read_volume(name)
            .ok_or_else(|| EngineError::not_found(format!("get {name}: no such volume")))
    }

    fn all_volumes(&self) -> Vec<Volume> {
        let Ok(entries) = std::fs::read_dir(self.volumes_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<Volume> = entries
            .flatten()
            .filter_map(|e| self.read_volume(&e.file_name().to_string_lossy()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Creates a volume (or returns the existing one of that name).
    pub(crate) fn ensure_volume(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<Volume, EngineError> {
        let anonymous = name.is_none_or(str::is_empty);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_volume_name(n) {
                    return Err(bad(format!(
                        "create {n}: \"{n}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
                    )));
                }
                n.to_owned()
            }
            None => anonymous_name()?,
        };
        if let Some(v) = self.read_volume(&name) {
            return Ok(v);
        }
        for k in options.keys() {
            if !matches!(k.as_str(), "type" | "device" | "o") {
                return Err(bad(format!("invalid option key: {k:?}")));
            }
        }
        if options.contains_key("type") != options.contains_key("device") {
            return Err(bad("missing required option: \"device\" (with \"type\")"));
        }
        let dir = self.volume_dir(&name);
        std::fs::create_dir_all(dir.join("_data")).map_err(|e| io_err("create the volume", e))?;
        self.give_to_remapped_root(&dir.join("_data"))?;
        let v = Volume {
            name,
            created: now(),
            labels,
            options,
            anonymous,
        };
        crate::save_json(&dir.join("volume.json"), &v)?;
        self.events.emit(
            "volume",
            "create",
            &v.name,
            [("driver".to_owned(), "local".to_owned())].into(),
        );
        Ok(v)
    }

    /// A directory the engine made for containers' data (a volume's `_data`, a missing bind
    /// source) belongs to the remapped root under `--userns-remap`, as in Docker.
    fn give_to_remapped_root(&self, dir: &Path) -> Result<(), EngineError> {
        match self.remap() {
            Some(remap) => crate::userns::give_to_root(remap.map(), dir)
                .map_err(|e| io_err("give the directory to the remapped root", e)),
            None => Ok(()),
        }
    }

    /// The containers that reference volume `name`, by ID.
    fn volume_users(&self, name: &str) -> Vec<String> {
        self.records()
            .into_iter()
            .filter(|r| {
                r.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.source == name)
            })
            .map(|r| r.id.clone())
            .collect()
    }

    /// Every volume as `system df` shows it: the API's view plus its size and how many
    /// containers' records mount it.
    pub(crate) fn volumes_usage(&self) -> Vec<VolumeModel> {
        self.all_volumes()
            .iter()
            .map(|v| VolumeModel {
                usage_data: Some(VolumeUsageData {
                    size: berth_core::fs::apparent_size(&self.volume_data(&v.name)) as i64,
                    ref_count: self.volume_users(&v.name).len() as i64,
                }),
                ..self.volume_json(v)
            })
            .collect()
    }

    /// The volume as the API shows it (Docker's Volume: no Status, no UsageData).
    fn volume_json(&self, v: &Volume) -> VolumeModel {
        VolumeModel {
            name: v.name.clone(),
            driver: "local".into(),
            mountpoint: self.volume_data(&v.name).display().to_string(),
            created_at: Some(v.created.clone()),
            labels: v.labels.clone().into_iter().collect(),
            scope: Some(VolumeScopeEnum::LOCAL),
            options: v.options.clone().into_iter().collect(),
            ..Default::default()
        }
    }

    /// Resolves a create request's mounts: `-v`, `--mount`, `--tmpfs`, `--volumes-from`, the
    /// image's VOLUMEs and `-v /path`; named volumes are created, anonymous ones named.
    pub(crate) fn mounts_for_create(
        &self,
        body: &ContainerCreateBody,
        image_volumes: &[String],
    ) -> Result<Vec<MountRecord>, EngineError> {
        let empty = Default::default();
        let hc = body.host_config.as_ref().unwrap_or(&empty);
        for m in hc.mounts.iter().flatten() {
            let driver = m
                .volume_options
                .as_ref()
                .and_then(|o| o.driver_config.as_ref());
            check_volume_driver(driver.and_then(|d| d.name.as_deref()))?;
        }
        let mut mounts: Vec<MountRecord> = Vec::new();
        let push = |m: MountRecord, mounts: &mut Vec<MountRecord>| -> Result<(), EngineError> {
            if mounts.iter().any(|o| o.target == m.target) {
                return Err(bad(format!("Duplicate mount point: {}", m.target)));
            }
            mounts.push(m);
            Ok(())
        };
        for spec in hc.binds.iter().flatten() {
            push(parse_bind(spec)?, &mut mounts)?;
        }
        for m in hc.mounts.iter().flatten() {
            push(parse_mount(m)?, &mut mounts)?;
        }
        if let Some(tmpfs) = &hc.tmpfs {
            let mut tmpfs: Vec<_> = tmpfs.iter().collect();
            tmpfs.sort();
            for (target, opts) in tmpfs {
                let options: Vec<String> = opts
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect();
                let readonly = options.iter().any(|o| o == "ro");
                push(
                    MountRecord {
                        kind: "tmpfs".into(),
                        source: String::new(),
                        target: clean_target(target)?,
                        readonly,
                        propagation: None,
                        mode: String::new(),
                        nocopy: false,
                        options: options
                            .into_iter()
                            .filter(|o| o != "ro" && o != "rw")
                            .collect(),
                    },
                    &mut mounts,
                )?;
            }
        }
        for from in hc.volumes_from.iter().flatten() {
            let (key, mode) = match from.rsplit_once(':') {
                Some((k, m @ ("ro" | "rw"))) => (k.to_owned(), Some(m)),
                _ => (from.clone(), None),
            };
            let other = self.find(&key)?;
            for mut m in other.mounts.iter().filter(|m| m.kind != "tmpfs").cloned() {
                if let Some(mode) = mode {
                    m.readonly = mode == "ro";
                }
                if !mounts.iter().any(|o| o.target == m.target) {
                    mounts.push(m);
                }
            }
        }
        // `-v /path` (Config.Volumes) and the image's VOLUMEs: anonymous volumes, unless
        // something else is mounted there.
        let mut anonymous: Vec<String> = body.volumes.clone().unwrap_or_default();
        anonymous.extend(image_volumes.iter().cloned());
        for target in anonymous {
            let target = clean_target(&target)?;
            if mounts.iter().any(|m| m.target == target) {
                continue;
            }
            mounts.push(MountRecord {
                kind: "volume".into(),
                source: String::new(),
                target,
                readonly: false,
                propagation: None,
                mode: String::new(),
                nocopy: false,
                options: Vec::new(),
            });
        }
        // `--volume-driver` drives the volumes this container makes (only those).
        if mounts.iter().any(|m| m.kind == "volume") {
            check_volume_driver(hc.volume_driver.as_deref())?;
        }
        // Volumes get their names now (anonymous ones too), binds their host directories
        // (`-v /host:/ctr` creates a missing host directory, as Docker does).
        for m in &mut mounts {
            match m.kind.as_str() {
                "volume" => {
                    let v = self.ensure_volume(
                        Some(m.source.as_str()).filter(|s| !s.is_empty()),
                        BTreeMap::new(),
                        BTreeMap::new(),
                    )?;
                    m.source = v.name;
                }
                "bind" if !Path::new(&m.source).exists() => {
                    std::fs::create_dir_all(&m.source)
                        .map_err(|e| bad(format!("create the bind source {}: {e}", m.source)))?;
                    self.give_to_remapped_root(Path::new(&m.source))?;
                }
                _ => {}
            }
        }
        Ok(mounts)
    }

    /// The runtime's mounts for a container about to start (its rootfs is mounted): empty
    /// volumes are filled from the image first.
    pub(crate) fn user_mounts(&self, rec: &Record) -> Result<Vec<UserMount>, EngineError> {
        let rootfs = self.rootfs(&rec.id);
        let mut out = Vec::new();
        for m in &rec.mounts {
            match m.kind.as_str() {
                "volume" => {
                    let data = self.volume_data(&m.source);
                    std::fs::create_dir_all(&data).map_err(|e| io_err("create the volume", e))?;
                    if let Some(v) = self.read_volume(&m.source) {
                        mount_driver_options(&v, &data)?;
                    }
                    if !m.nocopy {
                        copy_up(&rootfs, &m.target, &data)?;
                    }
                    out.push(UserMount::Bind {
                        source: data,
                        target: m.target.clone(),
                        readonly: m.readonly,
                        propagation: m.propagation.clone(),
                    });
                }
                "bind" => out.push(UserMount::Bind {
                    source: PathBuf::from(&m.source),
                    target: m.target.clone(),
                    readonly: m.readonly,
                    propagation: m.propagation.clone(),
                }),
                _ => out.push(UserMount::Tmpfs {
                    target: m.target.clone(),
                    options: m.options.clone(),
                    readonly: m.readonly,
                }),
            }
        }
        Ok(out)
    }

    /// After a container is removed: its anonymous volumes go when asked (`rm -v`, `--rm`) and
    /// no other container uses them.
    pub(crate) fn release_volumes(&self, rec: &Record, remove_anonymous: bool) {
        if !remove_anonymous {
            return;
        }
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            let Some(v) = self.read_volume(&m.source) else {
                continue;
            };
            if v.anonymous && self.volume_users(&v.name).is_empty() {
                let _ = self.remove_volume_dir(&v.name);
            }
        }
    }

    fn remove_volume_dir(&self, name: &str) -> Result<u64, EngineError> {
        let dir = self.volume_dir(name);
        // A volume with driver options (tmpfs, a bind) is unmounted first: nothing is ever
        // removed through the mount.
        let data = dir.join("_data");
        if is_mountpoint(&data) {
            nix::mount::umount2(&data, nix::mount::MntFlags::empty())
                .map_err(|e| io_err("unmount the volume", e.into()))?;
        }
        let size = berth_core::fs::apparent_size(&dir);
        // The record first: a half-removed volume is then gone, not a volume with lost data.
        std::fs::remove_file(dir.join("volume.json"))
            .map_err(|e| io_err("remove the volume", e))?;
        std::fs::remove_dir_all(&dir).map_err(|e| io_err("remove the volume", e))?;
        self.events.emit(
            "volume",
            "destroy",
            name,
            [("driver".to_owned(), "local".to_owned())].into(),
        );
        Ok(size)
    }
}

fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

/// The local driver's options (`--opt type=tmpfs --opt device=tmpfs --opt o=size=64m`, or
/// `--opt type=none --opt o=bind --opt device=/path`): mounted on `_data` at first use, as
/// mount(8) would, and kept until the volume is removed.
fn mount_driver_options(v: &Volume, data: &Path) -> Result<(), EngineError> {
    let (Some(kind), Some(device)) = (v.options.get("type"), v.options.get("device")) else {
        return Ok(());
    };
    if is_mountpoint(data) {
        return Ok(());
    }
    use nix::mount::MsFlags;
    let mut flags = MsFlags::empty();
    let mut data_opts = Vec::new();
    for o in v
        .options
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        match o {
            "" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "ro" => flags |= MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            other => data_opts.push(other),
        }
    }
    let fstype = if flags.contains(MsFlags::MS_BIND) || kind == "none" {
        None
    } else {
        Some(kind.as_str())
    };
    let joined = data_opts.join(",");
    nix::mount::mount(
        Some(device.as_str()),
        data,
        fstype,
        flags,
        (!joined.is_empty()).then_some(joined.as_str()),
    )
    .map_err(|e| {
        bad(format!(
            "error while mounting volume '{}': failed to mount local volume: mount {device}:{}, flags: {flags:?}, data: {joined}: {e}",
            v.name,
            data.display()
        ))
    })
}

/// berth's one volume driver is `local`; any other name gets Docker's answer for a driver
/// plugin it cannot find.
fn check_volume_driver(driver: Option<&str>) -> Result<(), EngineError> {
    match driver.unwrap_or("") {
        "" | "local" => Ok(()),
        d => Err(EngineError::not_found(format!(
            "error looking up volume plugin {d}: plugin \"{d}\" not found"
        ))),
    }
}

/// Fills an empty volume with what the image has at `target` (Docker's copy-up), through the
/// confined copy: the path is resolved inside `rootfs` and the tree walked without following
/// symlinks, so an image cannot point the copy at the host.
fn copy_up(rootfs: &Path, target: &str, data: &Path) -> Result<(), EngineError> {
    crate::confined::copy::copy_up(rootfs, target.as_bytes(), data)
        .map(|_| ())
        .map_err(|e| io_err("copy the image's content into the volume", e))
}

impl Engine {
    /// `ClusterVolumeSpec` is not looked at: berth has no swarm.
    pub fn create_volume(&self, req: VolumeCreateRequest) -> Result<VolumeModel, EngineError> {
        check_volume_driver(req.driver.as_deref())?;
        let v = self.ensure_volume(
            req.name.as_deref(),
            req.labels.unwrap_or_default().into_iter().collect(),
            req.driver_opts.unwrap_or_default().into_iter().collect(),
        )?;
        Ok(self.volume_json(&v))
    }

    pub fn list_volumes(&self, filters: Filters) -> Result<VolumeListResponse, EngineError> {
        filters.validate(&["dangling", "driver", "label", "name"])?;
        let dangling = filters.get_bool("dangling")?;
        let list: Vec<VolumeModel> = self
            .all_volumes()
            .iter()
            .filter(|v| {
                dangling.is_none_or(|d| d == self.volume_users(&v.name).is_empty())
                    && filters.exact_match("driver", "local")
                    && filters.any("name", |n| v.name.contains(n))
                    && filters.match_kv_list("label", &v.labels)
            })
            .map(|v| self.volume_json(v))
            .collect();
        Ok(VolumeListResponse {
            volumes: Some(list),
            warnings: Some(Vec::new()),
        })
    }

    pub fn inspect_volume(&self, name: &str) -> Result<VolumeModel, EngineError> {
        let v = self.volume(name)?;
        Ok(self.volume_json(&v))
    }

    pub fn remove_volume(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let v = match self.read_volume(name) {
            Some(v) => v,
            None if force => return Ok(()),
            None => {
                return Err(EngineError::not_found(format!(
                    "get {name}: no such volume"
                )))
            }
        };
        // Even with force: a volume a container references is never removed.
        let users = self.volume_users(&v.name);
        if !users.is_empty() {
            return Err(EngineError::conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        self.remove_volume_dir(&v.name).map(|_| ())
    }

    pub fn prune_volumes(&self, filters: Filters) -> Result<VolumePruneResponse, EngineError> {
        filters.validate(&["label", "label!", "all"])?;
        let all = filters.get_bool("all")?.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for v in self.all_volumes() {
            if !(all || v.anonymous) || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            if !filters.match_labels(&v.labels) {
                continue;
            }
            reclaimed += self.remove_volume_dir(&v.name)?;
            deleted.push(v.name);
        }
        Ok(VolumePruneResponse {
            volumes_deleted: Some(deleted),
            space_reclaimed: Some(i64::try_from(reclaimed).unwrap_or(i64::MAX)),
        })
    }

    pub fn export_volume(
        &self,
        name: &str,
    ) -> Result<berth_api::images::ExportWriter, EngineError> {
        let v = self.volume(name)?;
        let data = self.volume_data(&v.name);
        Ok(Box::new(move |out: &mut dyn std::io::Write| {
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(false);
            tar.append_dir_all(".", &data)?;
            tar.finish()
        }))
    }

    pub fn import_volume(&self, name: &str, tar_path: &Path) -> Result<(), EngineError> {
        let v = self.ensure_volume(Some(name), BTreeMap::new(), BTreeMap::new())?;
        let data = self.volume_data(&v.name);
        let non_empty = std::fs::read_dir(&data)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if non_empty {
            return Err(EngineError::conflict(format!(
                "volume {name} is not empty: import into an empty volume"
            )));
        }
        // Unpacked beside the volume, then moved into place: a bad archive changes nothing.
        let staging = self.volume_dir(&v.name).join(".import");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| io_err("prepare the import", e))?;
        let result = (|| -> Result<(), EngineError> {
            let file = std::fs::File::open(tar_path).map_err(|e| io_err("open the upload", e))?;
            let mut archive = tar::Archive::new(file);
            archive.set_preserve_permissions(true);
            archive.set_preserve_ownerships(true);
            archive.set_unpack_xattrs(true);
            for entry in archive
                .entries()
                .map_err(|e| bad(format!("invalid archive: {e}")))?
            {
                let mut entry = entry.map_err(|e| bad(format!("invalid archive: {e}")))?;
                // unpack_in refuses names that would leave the directory (`..`, absolute).
                if !entry
                    .unpack_in(&staging)
                    .map_err(|e| bad(format!("invalid archive: {e}")))?
                {
                    return Err(bad(format!(
                        "invalid archive: {} leaves the volume",
                        entry
                            .path()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )));
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        std::fs::remove_dir(&data).map_err(|e| io_err("replace the volume's data", e))?;
        std::fs::rename(&staging, &data).map_err(|e| io_err("replace the volume's data", e))
    }
}

impl VolumeBackend for Engine {
    fn create_volume(&self, req: VolumeCreateRequest) -> BackendResult<VolumeModel> {
        Ok(Engine::create_volume(self, req)?)
    }
    fn list_volumes(&self, filters: Filters) -> BackendResult<VolumeListResponse> {
        Ok(Engine::list_volumes(self, filters)?)
    }
    fn inspect_volume(&self, name: &str) -> BackendResult<VolumeModel> {
        Ok(Engine::inspect_volume(self, name)?)
    }
    fn remove_volume(&self, name: &str, force: bool) -> BackendResult<()> {
        Ok(Engine::remove_volume(self, name, force)?)
    }
    fn prune_volumes(&self, filters: Filters) -> BackendResult<VolumePruneResponse> {
        Ok(Engine::prune_volumes(self, filters)?)
    }
    fn export_volume(&self, name: &str) -> BackendResult<berth_api::images::ExportWriter> {
        Ok(Engine::export_volume(self, name)?)
    }
    fn import_volume(&self, name: &str, tar_path: &Path) -> BackendResult<()> {
        Ok(Engine::import_volume(self, name, tar_path)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_docker() {
        let m = parse_bind("/srv/data:/data:ro,rshared").unwrap();
        assert_eq!((m.kind.as_str(), m.readonly), ("bind", true));
        assert_eq!(m.propagation.as_deref(), Some("rshared"));
        let m = parse_bind("cache:/var/cache/").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.target.as_str()),
            ("volume", "cache", "/var/cache")
        );
        assert!(parse_bind("cache:relative").is_err());
        assert!(parse_bind("a:/b:c:d").is_err());
        assert!(parse_bind("bad name!:/x").is_err());
        assert!(parse_bind("v:/x:sometimes").is_err());
        assert!(parse_bind("v:/").is_err());
    }

    fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(dir.path()).unwrap();
        (dir, engine)
    }

    fn map(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_created_volume_is_sent_as_before_the_typed_models() {
        let (dir, e) = engine();
        let req = VolumeCreateRequest {
            name: Some("data".into()),
            driver: Some("local".into()),
            labels: Some(map(&[("l1", "v1")])),
            driver_opts: Some(map(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=1m"),
            ])),
            ..Default::default()
        };
        let v = serde_json::to_value(Engine::create_volume(&e, req).unwrap()).unwrap();
        let created = v["CreatedAt"].as_str().unwrap().to_owned();
        assert!(created.ends_with('Z'), "{created}");
        // What berth sent when it built this object as JSON by hand.
        let want = serde_json::json!({
            "Name": "data",
            "Driver": "local",
            "Mountpoint": dir.path().join("volumes/data/_data").display().to_string(),
            "CreatedAt": created,
            "Labels": {"l1": "v1"},
            "Options": {"device": "tmpfs", "o": "size=1m", "type": "tmpfs"},
            "Scope": "local",
        });
        assert_eq!(v, want);
        assert_eq!(
            serde_json::to_value(Engine::inspect_volume(&e, "data").unwrap()).unwrap(),
            want
        );
        // Created again: the volume as it is, its labels unchanged.
        let again = Engine::create_volume(
            &e,
            VolumeCreateRequest {
                name: Some("data".into()),
                labels: Some(map(&[("other", "x")])),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(serde_json::to_value(again).unwrap(), want);
        let list =
            serde_json::to_value(Engine::list_volumes(&e, Filters::default()).unwrap()).unwrap();
        assert_eq!(list, serde_json::json!({"Volumes": [want], "Warnings": []}));
    }

    #[test]
    fn create_refuses_as_before() {
        let (_dir, e) = engine();
        let create = |name: &str, driver: Option<&str>| {
            Engine::create_volume(
                &e,
                VolumeCreateRequest {
                    name: Some(name.into()),
                    driver: driver.map(str::to_owned),
                    ..Default::default()
                },
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            create("v", Some("nfsx")),
            "error looking up volume plugin nfsx: plugin \"nfsx\" not found"
        );
        assert_eq!(
            create("bad/name", None),
            "create bad/name: \"bad/name\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        );
        let err = Engine::create_volume(
            &e,
            VolumeCreateRequest {
                driver_opts: Some(map(&[("size", "1m")])),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid option key: \"size\"");
    }

    #[test]
    fn anonymous_volumes_are_named_and_pruned() {
        let (_dir, e) = engine();
        let anon = Engine::create_volume(&e, VolumeCreateRequest::default()).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.labels.is_empty() && anon.options.is_empty());
        Engine::create_volume(
            &e,
            VolumeCreateRequest {
                name: Some("named".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let pruned = Engine::prune_volumes(&e, Filters::default()).unwrap();
        assert_eq!(pruned.volumes_deleted, Some(vec![anon.name]));
        assert!(pruned.space_reclaimed.is_some_and(|n| n >= 0));
        let left = Engine::list_volumes(&e, Filters::default()).unwrap();
        let names: Vec<_> = left.volumes.unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["named"]);
        // Nothing to prune: an empty list, not null (as berth sent before).
        let v =
            serde_json::to_value(Engine::prune_volumes(&e, Filters::default()).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"VolumesDeleted": [], "SpaceReclaimed": 0})
        );
    }
}
