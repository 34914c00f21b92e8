//! `images.json`: which images exist (by ID, the config digest, as Docker names them) and
//! which names point at them. Rewritten whole and atomically (temporary file, fsync, rename,
//! fsync of the directory), so a crash leaves the old or the new version, never a mix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_core::{Digest, Reference};
use serde::{Deserialize, Serialize};

use crate::error::{ImageError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The manifest that describes this image's layers.
    pub manifest: Digest,
    /// When it was added to this store (RFC 3339).
    pub added: String,
    /// When a name was last pointed at it (RFC 3339; inspect's `Metadata.LastTagTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tag_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Image ID (config digest) → record.
    pub images: BTreeMap<Digest, ImageRecord>,
    /// Normalized reference (`docker.io/library/busybox:latest`) → image ID.
    pub refs: BTreeMap<String, Digest>,
}

impl Index {
    /// The names that point at `image`.
    pub fn names_of(&self, image: &Digest) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(_, id)| *id == image)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The names that point at `image`, parsed.
    pub fn references_of(&self, image: &Digest) -> Vec<Reference> {
        self.refs
            .iter()
            .filter(|(_, id)| *id == image)
            .filter_map(|(n, _)| n.parse().ok())
            .collect()
    }

    /// Whether no name points at `image` (Docker's "dangling").
    pub fn is_dangling(&self, image: &Digest) -> bool {
        !self.refs.values().any(|id| id == image)
    }

    /// Points `reference` at `image`, returning the image it pointed at before.
    pub fn tag(&mut self, reference: &Reference, image: &Digest) -> Option<Digest> {
        self.refs.insert(reference.to_string(), image.clone())
    }

    /// Removes `reference`, returning the image it pointed at.
    pub fn untag(&mut self, reference: &Reference) -> Option<Digest> {
        self.refs.remove(&reference.to_string())
    }

    /// Forgets `image` and every name that points at it; returns those names.
    pub fn remove_image(&mut self, image: &Digest) -> Vec<Reference> {
        let names = self.references_of(image);
        self.refs.retain(|_, id| id != image);
        self.images.remove(image);
        names
    }
}

#[derive(Debug, Clone)]
pub struct IndexFile {
    path: PathBuf,
}

impl IndexFile {
    pub fn new(root: &Path) -> IndexFile {
        IndexFile {
            path: root.join("images.json"),
        }
    }

    pub fn load(&self) -> Result<Index> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::io("parse", &self.path, std::io::Error::other(e))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(ImageError::io("read", &self.path, e)),
        }
    }

    pub fn save(&self, index: &Index) -> Result<()> {
        berth_core::fs::write_json_atomic(&self.path, index)
            .map_err(|e| ImageError::io("write", &self.path, e))
    }
}
