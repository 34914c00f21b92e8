//! The image store as the engine uses it: content, snapshots and the index under one root.
//!
//! Concurrency and crashes:
//! - Every change of `images.json` happens under one lock, as a load-modify-save of the whole
//!   file (which is replaced atomically).
//! - Data (blobs, snapshots) is added before the names that need it and taken away after:
//!   an import or load writes its data, then the index; a removal rewrites the index, then
//!   [`ImageStore::gc`] removes what no image needs. A crash in between leaves unused data,
//!   which the next collection removes, never an image without its data.
//! - Writers of new data (import, load) hold the collector's lock shared for their whole run,
//!   so a collection never sees their data before their names; the collector holds it
//!   exclusively. Readers that stream data out for a long time (save) pin their blobs instead,
//!   so they do not hold up removals.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use berth_core::{Digest, Reference};

use crate::archive::Archive;
use crate::content::ContentStore;
use crate::delete::{self, ImageUser, Removal};
use crate::error::{ImageError, Result};
use crate::import::{import_rootfs, Imported};
use crate::load::{self, Created};
use crate::oci::{Descriptor, ImageConfig, Manifest, RunConfig, MEDIA_MANIFEST};
use crate::refs::{ImageRecord, Index, IndexFile};
use crate::save::{self, ExportImage};
use crate::snapshot::{chain_id, SnapshotStore};

/// Blobs in use by readers (a `save` being streamed), by count.
#[derive(Debug, Default)]
struct Pins(Mutex<HashMap<Digest, usize>>);

impl Pins {
    fn set(&self) -> HashSet<Digest> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }
}

/// Keeps blobs from being collected while it lives.
#[derive(Debug)]
struct PinGuard {
    pins: Arc<Pins>,
    digests: Vec<Digest>,
}

impl PinGuard {
    fn new(pins: &Arc<Pins>, digests: Vec<Digest>) -> PinGuard {
        let mut map = pins.0.lock().unwrap_or_else(|p| p.into_inner());
        for d in &digests {
            *map.entry(d.clone()).or_default() += 1;
        }
        PinGuard {
            pins: pins.clone(),
            digests,
        }
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut map = self.pins.0.lock().unwrap_or_else(|p| p.into_inner());
        for d in &self.digests {
            if let Some(n) = map.get_mut(d) {
                *n -= 1;
                if *n == 0 {
                    map.remove(d);
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct ImageStore {
    pub content: ContentStore,
    pub snapshots: SnapshotStore,
    index: IndexFile,
    lock: Mutex<()>,
    /// Shared by writers of new data, exclusive for the collector.
    gc_lock: RwLock<()>,
    pins: Arc<Pins>,
    /// Pins of data being brought in (a pull): blobs and, by chain ID, snapshots. Kept apart
    /// from `pins` (a save's blobs), which must not keep a snapshot whose chain ID happens to
    /// equal a blob's digest (a single uncompressed layer).
    pulling: Arc<Pins>,
    /// More roots for the collector: what the build cache keeps (blobs, and snapshots by
    /// chain ID).
    roots: ExtraRoots,
}

/// Returns blobs and snapshots (by chain ID) that a collection must keep.
pub type RootsFn = Arc<dyn Fn() -> (HashSet<Digest>, HashSet<Digest>) + Send + Sync>;

#[derive(Default)]
struct ExtraRoots(RwLock<Option<RootsFn>>);

impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtraRoots")
    }
}

/// An image as `images`, `inspect` and `history` show it.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub id: Digest,
    /// The names that point at it.
    pub refs: Vec<Reference>,
    pub manifest: Digest,
    pub config: ImageConfig,
    pub added: String,
    pub last_tag_time: Option<String>,
    /// Bytes of all layers, uncompressed.
    pub size: u64,
    /// Bytes of each layer, uncompressed, bottom first.
    pub layer_sizes: Vec<u64>,
}

impl ImageView {
    /// Docker's RepoDigests: `repository@manifest-digest` for each repository it is named in
    /// (and any digest names it has).
    /// A repository with a digest name of its own (a pull records `repository@<digest the
    /// name resolved to>`, an index's for a multi-platform image) shows only those.
    pub fn repo_digests(&self) -> Vec<Reference> {
        let mut out: Vec<Reference> = Vec::new();
        let pinned: Vec<String> = self
            .refs
            .iter()
            .filter(|r| r.digest.is_some())
            .map(Reference::name)
            .collect();
        for r in &self.refs {
            if r.digest.is_none() && pinned.contains(&r.name()) {
                continue;
            }
            let d = Reference {
                tag: None,
                digest: Some(r.digest.clone().unwrap_or_else(|| self.manifest.clone())),
                ..r.clone()
            };
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

/// What a collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<Digest>,
    /// Bytes freed on disk.
    pub bytes: u64,
}

/// An image `docker load` brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub id: Digest,
    pub names: Vec<Reference>,
    /// Names that pointed at another image before, and that image.
    pub replaced: Vec<(Reference, Digest)>,
}

/// Blobs and snapshots (by digest and chain ID) kept from collection while it lives: data
/// being brought in (a pull) that no name needs yet. See [`ImageStore::pin`].
#[derive(Debug)]
pub struct Pin {
    _guard: PinGuard,
}

/// What [`ImageStore::add_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The image ID (config digest).
    pub id: Digest,
    /// The names given that did not point at this image before.
    pub new_names: Vec<Reference>,
    /// Names that pointed at another image before, and that image.
    pub replaced: Vec<(Reference, Digest)>,
}

/// A `docker save` ready to be written: its blobs are pinned until it is dropped.
#[derive(Debug)]
pub struct Export {
    content: ContentStore,
    pub images: Vec<ExportImage>,
    _pins: PinGuard,
}

impl Export {
    pub fn write_to(&self, out: impl std::io::Write) -> Result<()> {
        save::write_archive(&self.content, &self.images, out)
    }
}

/// Finds an image in `index` by name (`busybox`, `busybox:1`, `busybox@sha256:<manifest>`),
/// full ID, or ID prefix (with or without `sha256:`), as Docker does.
pub fn resolve_in(index: &Index, name: &str) -> Option<Digest> {
    if let Ok(d) = name.parse::<Digest>() {
        if index.images.contains_key(&d) {
            return Some(d);
        }
    }
    if let Ok(r) = name.parse::<Reference>() {
        match &r.digest {
            Some(digest) => {
                let by_digest = Reference {
                    tag: None,
                    ..r.clone()
                };
                if let Some(id) = index.refs.get(&by_digest.to_string()) {
                    return Some(id.clone());
                }
                // The manifest digest of an image named in that repository.
                if let Some((id, _)) = index.images.iter().find(|(id, rec)| {
                    rec.manifest == *digest
                        && index.references_of(id).iter().any(|n| n.name() == r.name())
                }) {
                    return Some(id.clone());
                }
                return None;
            }
            None => {
                if let Some(id) = index.refs.get(&r.to_string()) {
                    return Some(id.clone());
                }
            }
        }
    }
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hits: Vec<&Digest> = index
            .images
            .keys()
            .filter(|d| d.hex().starts_with(hex))
            .collect();
        if hits.len() == 1 {
            return Some(hits[0].clone());
        }
    }
    None
}

/// How Docker names a missing image: a reference in its familiar form, anything else as typed.
pub fn missing_name(name: &str) -> String {
    if name.starts_with("sha256:") {
        return name.to_owned();
    }
    name.parse::<Reference>()
        .map_or_else(|_| name.to_owned(), |r| r.familiar())
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore> {
        let content = ContentStore::open(root)?;
        let snapshots = SnapshotStore::open(root)?;
        Ok(ImageStore {
            content,
            snapshots,
            index: IndexFile::new(root),
            lock: Mutex::new(()),
            gc_lock: RwLock::new(()),
            pins: Arc::default(),
            pulling: Arc::default(),
            roots: ExtraRoots::default(),
        })
    }

    /// Removes what interrupted writes left (ingests, unpacks, removals); returns the paths.
    /// Only while nothing writes: when the daemon starts, or offline.
    pub fn clean_leftovers(&self) -> Vec<PathBuf> {
        let mut gone = self.content.clean_ingest();
        gone.extend(self.snapshots.clean_partial());
        gone
    }

    /// Registers more roots for collections (the build cache's layers and snapshots).
    pub fn set_roots(&self, roots: RootsFn) {
        *self.roots.0.write().unwrap_or_else(|p| p.into_inner()) = Some(roots);
    }

    pub fn index(&self) -> Result<Index> {
        self.index.load()
    }

    /// Changes the index under the lock: `f` gets the current one and, when it succeeds, the
    /// changed index is saved (atomically).
    pub(crate) fn update<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.index.load()?;
        let out = f(&mut index)?;
        self.index.save(&index)?;
        Ok(out)
    }

    fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gc_lock.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Imports a rootfs tarball and names it `reference` (a re-used name leaves the image it
    /// named before dangling, as in Docker).
    pub fn import(
        &self,
        reader: impl Read,
        reference: Option<&Reference>,
        config: RunConfig,
        comment: Option<String>,
        now: &str,
    ) -> Result<Imported> {
        let _writing = self.shared();
        let imported = import_rootfs(&self.content, &self.snapshots, reader, config, comment, now)?;
        self.update(|index| {
            let record = index
                .images
                .entry(imported.id.clone())
                .or_insert(ImageRecord {
                    manifest: imported.manifest.clone(),
                    added: now.to_owned(),
                    last_tag_time: None,
                });
            if let Some(r) = reference {
                record.last_tag_time = Some(now.to_owned());
                index.tag(r, &imported.id);
            }
            Ok(())
        })?;
        Ok(imported)
    }

    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        serde_json::from_slice(&self.content.read_blob(id)?)
            .map_err(|e| ImageError::BadArchive(format!("image config {id}: {e}")))
    }

    pub(crate) fn manifest(&self, digest: &Digest) -> Result<Manifest> {
        serde_json::from_slice(&self.content.read_blob(digest)?)
            .map_err(|e| ImageError::BadArchive(format!("image manifest {digest}: {e}")))
    }

    /// Finds an image by name, ID or ID prefix (see [`resolve_in`]).
    pub fn resolve(&self, name: &str) -> Result<Option<Digest>> {
        Ok(resolve_in(&self.index.load()?, name))
    }

    /// Like [`ImageStore::resolve`], with Docker's "No such image" when there is none.
    pub fn lookup(&self, name: &str) -> Result<Digest> {
        self.resolve(name)?
            .ok_or_else(|| ImageError::NoSuchImage(missing_name(name)))
    }

    /// The snapshot (chain ID) of an image's top layer.
    pub fn top_snapshot(&self, config: &ImageConfig) -> Option<Digest> {
        chain_ids(config).pop()
    }

    /// The overlay lower dirs of an image, top first.
    pub fn lower_dirs(&self, config: &ImageConfig) -> Result<Vec<PathBuf>> {
        match self.top_snapshot(config) {
            Some(top) => self.snapshots.lower_dirs(&top),
            None => Ok(Vec::new()),
        }
    }

    fn view_of(&self, index: &Index, id: &Digest, record: &ImageRecord) -> Result<ImageView> {
        let config = self.config(id)?;
        let layer_sizes: Vec<u64> = chain_ids(&config)
            .iter()
            .map(|c| self.snapshots.meta(c).map_or(0, |m| m.size))
            .collect();
        Ok(ImageView {
            id: id.clone(),
            refs: index.references_of(id),
            manifest: record.manifest.clone(),
            size: layer_sizes.iter().sum(),
            layer_sizes,
            config,
            added: record.added.clone(),
            last_tag_time: record.last_tag_time.clone(),
        })
    }

    /// One image, by name or ID.
    pub fn view(&self, name: &str) -> Result<ImageView> {
        let index = self.index.load()?;
        let id =
            resolve_in(&index, name).ok_or_else(|| ImageError::NoSuchImage(missing_name(name)))?;
        let record = &index.images[&id];
        self.view_of(&index, &id, record)
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<ImageView>> {
        let index = self.index.load()?;
        let mut out = Vec::new();
        for (id, record) in &index.images {
            // An image whose config cannot be read is left out rather than failing the list.
            if let Ok(v) = self.view_of(&index, id, record) {
                out.push(v);
            }
        }
        out.sort_by(|a, b| b.added.cmp(&a.added));
        Ok(out)
    }

    /// Points `reference` (a tag) at image `id`; returns the image it named before, if
    /// another.
    pub fn tag(&self, id: &Digest, reference: &Reference, now: &str) -> Result<Option<Digest>> {
        if reference.digest.is_some() {
            return Err(ImageError::InvalidArgument(
                "refusing to create a tag with a digest reference".to_owned(),
            ));
        }
        self.update(|index| {
            let record = index
                .images
                .get_mut(id)
                .ok_or_else(|| ImageError::NoSuchImage(id.to_string()))?;
            record.last_tag_time = Some(now.to_owned());
            Ok(index.tag(reference, id).filter(|old| old != id))
        })
    }

    /// `docker rmi [-f] NAME`: Docker's rules (see [`delete`]), in the index only; the caller
    /// collects the data afterwards ([`ImageStore::gc`]).
    pub fn remove(&self, name: &str, force: bool, users: &[ImageUser]) -> Result<Vec<Removal>> {
        self.update(|index| {
            let id = resolve_in(index, name)
                .ok_or_else(|| ImageError::NoSuchImage(missing_name(name)))?;
            delete::delete(index, name, &id, force, users)
        })
    }

    /// Removes images whole, names and all (prune). With `dangling_only`, an image that got a
    /// name since it was chosen is kept.
    pub fn remove_images(&self, ids: &[Digest], dangling_only: bool) -> Result<Vec<Removal>> {
        self.update(|index| {
            let mut records = Vec::new();
            for id in ids {
                if !index.images.contains_key(id) || (dangling_only && !index.is_dangling(id)) {
                    continue;
                }
                for r in index.remove_image(id) {
                    records.push(Removal::Untagged(r));
                }
                records.push(Removal::Deleted(id.clone()));
            }
            Ok(records)
        })
    }

    /// What the images in `index` need, and the images in `keep` (gone from the index but
    /// still used by containers): blobs and snapshots. Fails when an image's documents cannot
    /// be read, so that nothing is collected on a guess.
    fn mark(&self, index: &Index, keep: &[Digest]) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let mut blobs = HashSet::new();
        let mut snapshots = HashSet::new();
        for (id, record) in &index.images {
            blobs.insert(id.clone());
            snapshots.extend(chain_ids(&self.config(id)?));
            blobs.insert(record.manifest.clone());
            let manifest = self.manifest(&record.manifest)?;
            blobs.insert(manifest.config.digest);
            blobs.extend(manifest.layers.into_iter().map(|l| l.digest));
        }
        for id in keep {
            if index.images.contains_key(id) {
                continue;
            }
            if let Ok(config) = self.config(id) {
                blobs.insert(id.clone());
                snapshots.extend(chain_ids(&config));
            }
        }
        let roots = self
            .roots
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(roots) = roots {
            let (b, s) = roots();
            blobs.extend(b);
            snapshots.extend(s);
        }
        Ok((blobs, snapshots))
    }

    /// Removes every blob and snapshot that no image needs; `keep` are images no longer in
    /// the index whose data containers still use. Leftovers of interrupted removals go too.
    pub fn gc(&self, keep: &[Digest]) -> Result<GcReport> {
        let _exclusive = self.gc_lock.write().unwrap_or_else(|p| p.into_inner());
        let index = self.index.load()?;
        let (blobs, snapshots) = self.mark(&index, keep)?;
        let pinned = self.pins.set();
        let pulling = self.pulling.set();
        let mut report = GcReport::default();
        for blob in self.content.list()? {
            if blobs.contains(&blob.digest)
                || pinned.contains(&blob.digest)
                || pulling.contains(&blob.digest)
            {
                continue;
            }
            self.content.delete(&blob.digest)?;
            report.bytes += blob.size;
            report.blobs.push(blob.digest);
        }
        for chain in self.snapshots.list()? {
            if snapshots.contains(&chain) || pulling.contains(&chain) {
                continue;
            }
            report.bytes += self.snapshots.remove(&chain)?;
            report.snapshots.push(chain);
        }
        Ok(report)
    }

    /// Takes away what a failed load created, unless an image has come to need it meanwhile.
    fn discard(&self, created: &Created) {
        let _exclusive = self.gc_lock.write().unwrap_or_else(|p| p.into_inner());
        let Ok(index) = self.index.load() else {
            return;
        };
        let Ok((blobs, snapshots)) = self.mark(&index, &[]) else {
            return; // a later collection will do it
        };
        let pinned = self.pins.set();
        let pulling = self.pulling.set();
        for b in &created.blobs {
            if !blobs.contains(b) && !pinned.contains(b) && !pulling.contains(b) {
                let _ = self.content.delete(b);
            }
        }
        for s in &created.snapshots {
            if !snapshots.contains(s) && !pulling.contains(s) {
                let _ = self.snapshots.remove(s);
            }
        }
    }

    /// `docker save NAME…`: which images with which names, as Docker chooses them. A bare
    /// repository name (`busybox`) saves all its tags; `name:tag` that tag; an ID or digest the
    /// image without names.
    pub fn export(&self, names: &[String]) -> Result<Export> {
        let index = self.index.load()?;
        let mut chosen: Vec<(Digest, Vec<Reference>)> = Vec::new();
        let mut add = |id: Digest, tag: Option<Reference>| {
            let pos = match chosen.iter().position(|(i, _)| *i == id) {
                Some(p) => p,
                None => {
                    chosen.push((id, Vec::new()));
                    chosen.len() - 1
                }
            };
            if let Some(t) = tag {
                if !chosen[pos].1.contains(&t) {
                    chosen[pos].1.push(t);
                }
            }
        };
        for name in names {
            let parsed = name.parse::<Reference>().ok();
            if let Some(r) = parsed.as_ref().filter(|_| is_name_only(name)) {
                let tagged: Vec<(Reference, Digest)> = index
                    .refs
                    .iter()
                    .filter_map(|(n, id)| Some((n.parse::<Reference>().ok()?, id.clone())))
                    .filter(|(n, _)| n.name() == r.name() && n.digest.is_none())
                    .collect();
                if !tagged.is_empty() {
                    for (n, id) in tagged {
                        add(id, Some(n));
                    }
                    continue;
                }
            }
            let id = resolve_in(&index, name)
                .ok_or_else(|| ImageError::NoSuchImage(missing_name(name)))?;
            // Saved under the tag it was named by; by ID or digest, without a name.
            let tag = parsed
                .filter(|r| r.digest.is_none() && index.refs.get(&r.to_string()) == Some(&id));
            add(id, tag);
        }
        let mut images = Vec::new();
        for (id, tags) in chosen {
            let record = &index.images[&id];
            let bytes = self.content.read_blob(&record.manifest)?;
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                ImageError::BadArchive(format!("image manifest {}: {e}", record.manifest))
            })?;
            let config = self.config(&id)?;
            images.push(ExportImage {
                id: id.clone(),
                config_size: manifest.config.size,
                manifest: Descriptor::new(
                    manifest.media_type.as_deref().unwrap_or(MEDIA_MANIFEST),
                    record.manifest.clone(),
                    bytes.len() as u64,
                ),
                layers: manifest.layers,
                diff_ids: config.rootfs.diff_ids,
                tags,
            });
        }
        // Pin under the collector's lock, so that what was read above is still all there.
        let _shared = self.shared();
        let digests: Vec<Digest> = images
            .iter()
            .flat_map(|i| i.blobs().into_iter().map(|(d, _)| d))
            .collect();
        let pins = PinGuard::new(&self.pins, digests.clone());
        if let Some(missing) = digests.iter().find(|d| !self.content.exists(d)) {
            return Err(ImageError::BlobNotFound(missing.clone()));
        }
        Ok(Export {
            content: self.content.clone(),
            images,
            _pins: pins,
        })
    }

    /// Keeps `digests` (blobs, and snapshots by chain ID) from collection until the returned
    /// [`Pin`] is dropped. Taken before data is written (a pull pins what its manifest names,
    /// then downloads), so a collection running meanwhile never removes it.
    pub fn pin(&self, digests: Vec<Digest>) -> Pin {
        // Under the collector's lock: a collection is either over or sees the pins.
        let _shared = self.shared();
        Pin {
            _guard: PinGuard::new(&self.pulling, digests),
        }
    }

    /// Registers the image whose manifest, config and layer blobs are in the content store
    /// (a pull put them there) and points `names` at it. Layers without a snapshot yet are
    /// unpacked from their blobs first, each checked against the config's diff ID.
    pub fn add_image(&self, manifest: &Digest, names: &[Reference], now: &str) -> Result<Added> {
        let _writing = self.shared();
        let parsed = self.manifest(manifest)?;
        let id = parsed.config.digest.clone();
        let config = self.config(&id)?;
        if config.rootfs.diff_ids.len() != parsed.layers.len() {
            return Err(ImageError::InvalidArgument(format!(
                "image manifest {manifest} has {} layers, its config {} diff IDs",
                parsed.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut parent: Option<Digest> = None;
        for (layer, diff_id) in parsed.layers.iter().zip(&config.rootfs.diff_ids) {
            if !self.content.exists(&layer.digest) {
                return Err(ImageError::BlobNotFound(layer.digest.clone()));
            }
            let chain = chain_id(parent.as_ref(), diff_id);
            if !self.snapshots.exists(&chain) {
                let blob = self.content.open_blob(&layer.digest)?;
                let (_, stream) = crate::compression::decompressed(blob).map_err(|e| {
                    ImageError::io("read blob", self.content.path(&layer.digest), e)
                })?;
                let staged = self.snapshots.stage(parent.as_ref(), stream)?;
                if staged.meta().diff_id != *diff_id {
                    return Err(ImageError::InvalidArgument(format!(
                        "layer {}: its content (diff ID {}) is not what the image config says ({diff_id})",
                        layer.digest,
                        staged.meta().diff_id
                    )));
                }
                staged.commit()?;
            }
            parent = Some(chain);
        }
        self.update(|index| {
            let record = index.images.entry(id.clone()).or_insert(ImageRecord {
                manifest: manifest.clone(),
                added: now.to_owned(),
                last_tag_time: None,
            });
            if !names.is_empty() {
                record.last_tag_time = Some(now.to_owned());
            }
            let mut new_names = Vec::new();
            let mut replaced = Vec::new();
            for n in names {
                match index.tag(n, &id) {
                    Some(old) if old == id => {}
                    Some(old) => {
                        replaced.push((n.clone(), old));
                        new_names.push(n.clone());
                    }
                    None => new_names.push(n.clone()),
                }
            }
            Ok(Added {
                id: id.clone(),
                new_names,
                replaced,
            })
        })
    }

    /// `docker load`: brings in every image of the archive at `path` (verified) and then its
    /// names. On any error nothing is named and what this load added is taken away again.
    pub fn load(&self, path: &Path, now: &str) -> Result<Vec<Loaded>> {
        let archive = Archive::open(path)?;
        let plan = load::plan(&archive)?;
        let mut created = Created::default();
        let writing = self.shared();
        let result = (|| {
            let mut manifests = Vec::new();
            for image in &plan {
                manifests.push(load::load_image(
                    &self.content,
                    &self.snapshots,
                    &archive,
                    image,
                    &mut created,
                )?);
            }
            self.update(|index| {
                let mut loaded = Vec::new();
                for (image, manifest) in plan.iter().zip(manifests) {
                    let record = index.images.entry(image.id.clone()).or_insert(ImageRecord {
                        manifest,
                        added: now.to_owned(),
                        last_tag_time: None,
                    });
                    if !image.names.is_empty() {
                        record.last_tag_time = Some(now.to_owned());
                    }
                    let mut replaced = Vec::new();
                    for n in &image.names {
                        if let Some(old) = index.tag(n, &image.id).filter(|old| *old != image.id) {
                            replaced.push((n.clone(), old));
                        }
                    }
                    loaded.push(Loaded {
                        id: image.id.clone(),
                        names: image.names.clone(),
                        replaced,
                    });
                }
                Ok(loaded)
            })
        })();
        drop(writing);
        if result.is_err() {
            self.discard(&created);
        }
        result
    }
}

/// Whether `name` is a repository without a tag or digest (`busybox`, `host:5000/app`).
fn is_name_only(name: &str) -> bool {
    !name.contains('@')
        && name
            .rsplit('/')
            .next()
            .is_none_or(|last| !last.contains(':'))
}

/// The chain IDs of an image's layers, bottom first.
pub fn chain_ids(config: &ImageConfig) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::new();
    for diff in &config.rootfs.diff_ids {
        let c = chain_id(out.last(), diff);
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_with(names: &[(&str, char)]) -> Index {
        let mut ix = Index::default();
        for (name, c) in names {
            let id: Digest = format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap();
            let manifest: Digest = format!("sha256:{}", "f".repeat(63) + &c.to_string())
                .parse()
                .unwrap();
            ix.images.insert(
                id.clone(),
                ImageRecord {
                    manifest,
                    added: String::new(),
                    last_tag_time: None,
                },
            );
            if !name.is_empty() {
                ix.tag(&name.parse().unwrap(), &id);
            }
        }
        ix
    }

    #[test]
    fn resolving_like_docker() {
        let ix = index_with(&[("bb", 'a'), ("", 'b'), ("example.com/x:2", 'c')]);
        let a = "sha256:".to_owned() + &"a".repeat(64);
        assert_eq!(resolve_in(&ix, "bb").unwrap().to_string(), a);
        assert_eq!(resolve_in(&ix, "bb:latest").unwrap().to_string(), a);
        assert_eq!(
            resolve_in(&ix, "docker.io/library/bb").unwrap().to_string(),
            a
        );
        assert_eq!(resolve_in(&ix, &a).unwrap().to_string(), a);
        assert_eq!(resolve_in(&ix, "aaaa").unwrap().to_string(), a);
        assert_eq!(resolve_in(&ix, "sha256:aaaa").unwrap().to_string(), a);
        assert!(resolve_in(&ix, "bb:2").is_none());
        assert!(resolve_in(&ix, "bbbb").is_some());
        // By manifest digest, within a repository that names the image.
        let m = format!("sha256:{}a", "f".repeat(63));
        assert_eq!(resolve_in(&ix, &format!("bb@{m}")).unwrap().to_string(), a);
        assert!(resolve_in(&ix, &format!("other@{m}")).is_none());
        assert!(resolve_in(&ix, "example.com/x").is_none());
        assert!(resolve_in(&ix, "example.com/x:2").is_some());
    }

    #[test]
    fn names_of_missing_images() {
        assert_eq!(missing_name("nosuch"), "nosuch:latest");
        assert_eq!(missing_name("a/b:1"), "a/b:1");
        assert_eq!(missing_name("sha256:abc"), "sha256:abc");
        assert_eq!(missing_name("Bad"), "Bad");
    }

    #[test]
    fn name_only_references() {
        assert!(is_name_only("busybox"));
        assert!(is_name_only("localhost:5000/app"));
        assert!(!is_name_only("busybox:1"));
        assert!(!is_name_only("localhost:5000/app:v"));
        assert!(!is_name_only("busybox@sha256:abc"));
    }

    /// A one-layer image's blobs in the content store (as a pull leaves them); its manifest.
    fn pulled_blobs(store: &ImageStore, data: &[u8]) -> (Digest, Digest, Digest) {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "f", data).unwrap();
        let layer = b.into_inner().unwrap();
        let l = store.content.put(&layer).unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            l.digest
        );
        let c = store.content.put(config.as_bytes()).unwrap();
        let manifest = serde_json::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: Descriptor::new(crate::oci::MEDIA_CONFIG, c.digest.clone(), c.size),
            layers: vec![Descriptor::new(
                crate::oci::MEDIA_LAYER_TAR,
                l.digest.clone(),
                l.size,
            )],
            annotations: Default::default(),
        })
        .unwrap();
        let m = store.content.put(&manifest).unwrap();
        (m.digest, c.digest, l.digest)
    }

    #[test]
    fn pinned_data_survives_collection_and_registers() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let (m, c, l) = pulled_blobs(&store, b"pulled");
        let pin = store.pin(vec![m.clone(), c.clone(), l.clone()]);
        // The snapshot a pull unpacks before naming the image (chain ID = diff ID here).
        store
            .snapshots
            .unpack(None, &store.content.read_blob(&l).unwrap()[..])
            .unwrap();
        let report = store.gc(&[]).unwrap();
        assert!(
            report.blobs.is_empty() && report.snapshots.is_empty(),
            "{report:?}"
        );
        let name: Reference = "example.com/app:1".parse().unwrap();
        let added = store
            .add_image(&m, std::slice::from_ref(&name), "now")
            .unwrap();
        drop(pin);
        assert_eq!(added.id, c);
        assert_eq!(added.new_names, vec![name.clone()]);
        assert!(store.gc(&[]).unwrap().blobs.is_empty());
        assert_eq!(store.lookup("example.com/app:1").unwrap(), c);
        let again = store.add_image(&m, &[name], "later").unwrap();
        assert!(again.new_names.is_empty() && again.replaced.is_empty());
    }

    #[test]
    fn registering_unpacks_missing_layers() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path()).unwrap();
        let (m, c, l) = pulled_blobs(&store, b"unpack me");
        let added = store.add_image(&m, &[], "now").unwrap();
        assert_eq!(added.id, c);
        assert!(store.snapshots.exists(&l));
        let fs = store.snapshots.fs(&l);
        assert_eq!(std::fs::read(fs.join("f")).unwrap(), b"unpack me");
        // A layer whose blob is missing is refused.
        let (m2, _, l2) = pulled_blobs(&store, b"other");
        store.content.delete(&l2).unwrap();
        assert!(matches!(
            store.add_image(&m2, &[], "now"),
            Err(ImageError::BlobNotFound(_))
        ));
    }

    #[test]
    fn repo_digests_per_repository() {
        let m: Digest = format!("sha256:{}", "f".repeat(64)).parse().unwrap();
        let v = ImageView {
            id: m.clone(),
            refs: vec![
                "bb:1".parse().unwrap(),
                "bb:2".parse().unwrap(),
                "x/y".parse().unwrap(),
            ],
            manifest: m.clone(),
            config: serde_json::from_str(r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap(),
            added: String::new(),
            last_tag_time: None,
            size: 0,
            layer_sizes: Vec::new(),
        };
        let shown: Vec<String> = v.repo_digests().iter().map(|r| r.familiar()).collect();
        assert_eq!(shown, [format!("bb@{m}"), format!("x/y@{m}")]);
        // A pulled multi-platform image: its repository's digest is the index's.
        let index: Digest = format!("sha256:{}", "e".repeat(64)).parse().unwrap();
        let pulled = ImageView {
            refs: vec![
                "bb:1".parse().unwrap(),
                format!("bb@{index}").parse().unwrap(),
                "x/y".parse().unwrap(),
            ],
            ..v
        };
        let shown: Vec<String> = pulled.repo_digests().iter().map(|r| r.familiar()).collect();
        assert_eq!(shown, [format!("bb@{index}"), format!("x/y@{m}")]);
    }
}
