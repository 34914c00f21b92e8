//! The image store as the engine uses it: content, snapshots and the index under one root,
//! with one writer at a time (a lock around every change of `images.json`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_core::{Digest, Reference};

use crate::content::ContentStore;
use crate::error::{ImageError, Result};
use crate::import::{import_rootfs, Imported};
use crate::oci::{ImageConfig, RunConfig};
use crate::refs::{ImageRecord, Index, IndexFile};
use crate::snapshot::{chain_id, SnapshotStore};

#[derive(Debug)]
pub struct ImageStore {
    pub content: ContentStore,
    pub snapshots: SnapshotStore,
    index: IndexFile,
    lock: Mutex<()>,
}

/// An image as `images` and `inspect` show it.
#[derive(Debug, Clone)]
pub struct ImageView {
    pub id: Digest,
    pub names: Vec<String>,
    pub config: ImageConfig,
    pub added: String,
    /// Bytes of all layers, uncompressed.
    pub size: u64,
}

impl ImageStore {
    pub fn open(root: &Path) -> Result<ImageStore> {
        let content = ContentStore::open(root)?;
        let snapshots = SnapshotStore::open(root)?;
        content.clean_ingest()?;
        snapshots.clean_partial();
        Ok(ImageStore {
            content,
            snapshots,
            index: IndexFile::new(root),
            lock: Mutex::new(()),
        })
    }

    pub fn index(&self) -> Result<Index> {
        self.index.load()
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
        let imported = import_rootfs(&self.content, &self.snapshots, reader, config, comment, now)?;
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut index = self.index.load()?;
        index
            .images
            .entry(imported.id.clone())
            .or_insert(ImageRecord {
                manifest: imported.manifest.clone(),
                added: now.to_owned(),
            });
        if let Some(r) = reference {
            index.tag(r, &imported.id);
        }
        self.index.save(&index)?;
        Ok(imported)
    }

    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        serde_json::from_slice(&self.content.read_blob(id)?)
            .map_err(|e| ImageError::BadArchive(format!("image config {id}: {e}")))
    }

    /// Finds an image by name (`busybox`, `busybox:1`), full ID, or ID prefix (with or without
    /// `sha256:`), as Docker does.
    pub fn resolve(&self, name: &str) -> Result<Option<Digest>> {
        let index = self.index.load()?;
        if let Ok(d) = name.parse::<Digest>() {
            if index.images.contains_key(&d) {
                return Ok(Some(d));
            }
        }
        if let Ok(r) = name.parse::<Reference>() {
            if let Some(id) = index.refs.get(&r.to_string()) {
                return Ok(Some(id.clone()));
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&Digest> = index
                .images
                .keys()
                .filter(|d| d.hex().starts_with(hex))
                .collect();
            if hits.len() == 1 {
                return Ok(Some(hits[0].clone()));
            }
        }
        Ok(None)
    }

    /// The snapshot (chain ID) of an image's top layer.
    pub fn top_snapshot(&self, config: &ImageConfig) -> Option<Digest> {
        let mut chain: Option<Digest> = None;
        for diff in &config.rootfs.diff_ids {
            chain = Some(chain_id(chain.as_ref(), diff));
        }
        chain
    }

    /// The overlay lower dirs of an image, top first.
    pub fn lower_dirs(&self, config: &ImageConfig) -> Result<Vec<PathBuf>> {
        match self.top_snapshot(config) {
            Some(top) => self.snapshots.lower_dirs(&top),
            None => Ok(Vec::new()),
        }
    }

    pub fn list(&self) -> Result<Vec<ImageView>> {
        let index = self.index.load()?;
        let mut out = Vec::new();
        for (id, record) in &index.images {
            let Ok(config) = self.config(id) else {
                continue;
            };
            let mut size = 0;
            let mut chain: Option<Digest> = None;
            for diff in &config.rootfs.diff_ids {
                let c = chain_id(chain.as_ref(), diff);
                size += self.snapshots.meta(&c).map_or(0, |m| m.size);
                chain = Some(c);
            }
            out.push(ImageView {
                id: id.clone(),
                names: index.names_of(id),
                config,
                added: record.added.clone(),
                size,
            });
        }
        out.sort_by(|a, b| b.added.cmp(&a.added));
        Ok(out)
    }
}
