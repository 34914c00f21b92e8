//! Unpacked layers: `snapshots/<chain-id hex>/{fs,meta.json}`. A layer is unpacked once, under
//! its chain ID (which names the layer together with everything below it), and shared by every
//! image that has the same stack; a container's rootfs is an overlay of these as lower dirs.
//!
//! A snapshot is unpacked into a temporary directory and renamed into place only when whole,
//! so a visible snapshot is always complete.

use std::io::Read;
use std::path::{Path, PathBuf};

use berth_core::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::content::sha256_digest;
use crate::error::{ImageError, Result};
use crate::layer;

/// OCI's chain ID: the diff ID of the bottom layer, then sha256("<parent> <diff_id>").
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => {
            let mut h = Sha256::new();
            h.update(format!("{p} {diff_id}").as_bytes());
            sha256_digest(h)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub chain_id: Digest,
    pub parent: Option<Digest>,
    pub diff_id: Digest,
    /// Bytes of the uncompressed layer.
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    pub fn open(root: &Path) -> Result<SnapshotStore> {
        let root = root.join("snapshots");
        std::fs::create_dir_all(&root).map_err(|e| ImageError::io("create", &root, e))?;
        Ok(SnapshotStore { root })
    }

    pub fn dir(&self, chain: &Digest) -> PathBuf {
        self.root.join(chain.hex())
    }

    /// The unpacked files of a snapshot (an overlay lower dir).
    pub fn fs(&self, chain: &Digest) -> PathBuf {
        self.dir(chain).join("fs")
    }

    pub fn meta(&self, chain: &Digest) -> Option<SnapshotMeta> {
        serde_json::from_slice(&std::fs::read(self.dir(chain).join("meta.json")).ok()?).ok()
    }

    pub fn exists(&self, chain: &Digest) -> bool {
        self.meta(chain).is_some()
    }

    /// Unpacks the layer in `reader` (uncompressed tar) on top of `parent`. The diff ID is only
    /// known at the end, so the layer goes to a temporary directory first; if a snapshot with
    /// the resulting chain ID already exists, the new copy is dropped and the existing one kept.
    pub fn unpack(&self, parent: Option<&Digest>, reader: impl Read) -> Result<SnapshotMeta> {
        let tmp = self.root.join(format!(
            ".unpack-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = self.unpack_into(&tmp, parent, reader);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn unpack_into(
        &self,
        tmp: &Path,
        parent: Option<&Digest>,
        reader: impl Read,
    ) -> Result<SnapshotMeta> {
        let fs = tmp.join("fs");
        std::fs::create_dir_all(&fs).map_err(|e| ImageError::io("create", &fs, e))?;
        let applied = layer::apply(reader, &fs)?;
        let chain = chain_id(parent, &applied.diff_id);
        let meta = SnapshotMeta {
            chain_id: chain.clone(),
            parent: parent.cloned(),
            diff_id: applied.diff_id,
            size: applied.size,
        };
        if self.exists(&chain) {
            let _ = std::fs::remove_dir_all(tmp);
            return Ok(meta);
        }
        let meta_path = tmp.join("meta.json");
        let text = serde_json::to_vec(&meta).expect("snapshot metadata serializes");
        std::fs::write(&meta_path, text).map_err(|e| ImageError::io("write", &meta_path, e))?;
        // Make the files durable before the snapshot becomes visible.
        if let Ok(dir) = std::fs::File::open(tmp) {
            // SAFETY: syncfs only reads the descriptor, which `dir` keeps open.
            unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
        }
        let dest = self.dir(&chain);
        match std::fs::rename(tmp, &dest) {
            Ok(()) => Ok(meta),
            // Someone else finished the same snapshot first: theirs is as good.
            Err(_) if self.exists(&chain) => {
                let _ = std::fs::remove_dir_all(tmp);
                Ok(meta)
            }
            Err(e) => Err(ImageError::io("store snapshot", &dest, e)),
        }
    }

    /// The lower dirs for an overlay of `top` and everything under it, top first.
    pub fn lower_dirs(&self, top: &Digest) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut cur = Some(top.clone());
        while let Some(c) = cur {
            let meta = self.meta(&c).ok_or_else(|| {
                ImageError::io(
                    "find snapshot",
                    self.dir(&c),
                    std::io::ErrorKind::NotFound.into(),
                )
            })?;
            out.push(self.fs(&c));
            cur = meta.parent;
        }
        Ok(out)
    }

    /// Removes leftovers of interrupted unpacks (call when nothing else writes).
    pub fn clean_partial(&self) -> usize {
        let mut n = 0;
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(".unpack-")
                    && std::fs::remove_dir_all(e.path()).is_ok()
                {
                    n += 1;
                }
            }
        }
        n
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a: Digest = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .parse()
            .unwrap();
        let b: Digest = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
            .parse()
            .unwrap();
        assert_eq!(chain_id(None, &a), a);
        let mut h = Sha256::new();
        h.update(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id(Some(&a), &b), sha256_digest(h));
    }
}
