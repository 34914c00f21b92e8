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
    /// What an unpack must leave free (`--min-free-space`).
    min_free: crate::space::MinFree,
}

impl SnapshotStore {
    pub fn open(root: &Path) -> Result<SnapshotStore> {
        let root = root.join("snapshots");
        std::fs::create_dir_all(&root).map_err(|e| ImageError::io("create", &root, e))?;
        Ok(SnapshotStore {
            root,
            min_free: crate::space::MinFree::default(),
        })
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
        self.stage(parent, reader)?.commit()
    }

    /// Sets what an unpack must leave free on the store's filesystem.
    pub fn set_min_free(&mut self, min_free: crate::space::MinFree) {
        self.min_free = min_free;
    }

    /// Unpacks the layer in `reader` on top of `parent` into a directory that is not a
    /// snapshot yet: the caller checks what it needs (the diff ID against an image config, the
    /// compressed blob's digest) and then [`Staged::commit`]s it, or drops it and nothing is
    /// left behind.
    pub fn stage(&self, parent: Option<&Digest>, reader: impl Read) -> Result<Staged<'_>> {
        let mut staged = Staged {
            store: self,
            tmp: self.root.join(format!(
                ".unpack-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
            meta: None,
        };
        let fs = staged.tmp.join("fs");
        std::fs::create_dir_all(&fs).map_err(|e| ImageError::io("create", &fs, e))?;
        crate::space::check(&fs, self.min_free)?;
        let applied = layer::apply::apply_reserving(reader, &fs, self.min_free)?;
        let meta = SnapshotMeta {
            chain_id: chain_id(parent, &applied.diff_id),
            parent: parent.cloned(),
            diff_id: applied.diff_id,
            size: applied.size,
        };
        let meta_path = staged.tmp.join("meta.json");
        let text = serde_json::to_vec(&meta).expect("snapshot metadata serializes");
        std::fs::write(&meta_path, text).map_err(|e| ImageError::io("write", &meta_path, e))?;
        staged.meta = Some(meta);
        Ok(staged)
    }

    /// Makes the directory `fs` (an overlayfs upper dir whose content is the layer with
    /// `diff_id`, `size` bytes) the snapshot on top of `parent`, moving it (same filesystem)
    /// instead of unpacking the layer again. If that snapshot exists, `fs` is left as it was.
    pub fn adopt(
        &self,
        parent: Option<&Digest>,
        fs: &Path,
        diff_id: &Digest,
        size: u64,
    ) -> Result<SnapshotMeta> {
        let meta = SnapshotMeta {
            chain_id: chain_id(parent, diff_id),
            parent: parent.cloned(),
            diff_id: diff_id.clone(),
            size,
        };
        if self.exists(&meta.chain_id) {
            return Ok(meta);
        }
        let staged = Staged {
            store: self,
            tmp: self.root.join(format!(
                ".unpack-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            )),
            meta: Some(meta),
        };
        std::fs::create_dir_all(&staged.tmp)
            .map_err(|e| ImageError::io("create", &staged.tmp, e))?;
        let dest = staged.tmp.join("fs");
        std::fs::rename(fs, &dest).map_err(|e| ImageError::io("move", fs, e))?;
        let meta_path = staged.tmp.join("meta.json");
        let text = serde_json::to_vec(staged.meta()).expect("snapshot metadata serializes");
        std::fs::write(&meta_path, text).map_err(|e| ImageError::io("write", &meta_path, e))?;
        staged.commit()
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

    /// Chain IDs of every snapshot there is.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let io = |e| ImageError::io("read", &self.root, e);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io)? {
            let entry = entry.map_err(io)?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Removes a snapshot; returns the bytes it used on disk. The directory is first renamed
    /// out of the way, so an interrupted removal never leaves a snapshot that looks whole but
    /// is not ([`SnapshotStore::clean_partial`] finishes the job).
    pub fn remove(&self, chain: &Digest) -> Result<u64> {
        let dir = self.dir(chain);
        let trash = self.root.join(format!(
            ".trash-{}-{}-{}",
            chain.hex(),
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        match std::fs::rename(&dir, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(ImageError::io("remove snapshot", &dir, e)),
        }
        let _ = std::fs::File::open(&self.root).and_then(|d| d.sync_all());
        let bytes = berth_core::fs::allocated_size(&trash);
        std::fs::remove_dir_all(&trash).map_err(|e| ImageError::io("remove", &trash, e))?;
        Ok(bytes)
    }

    /// Leftovers of interrupted unpacks and removals.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(".unpack-") || name.starts_with(".trash-")
            })
            .map(|e| e.path())
            .collect()
    }

    /// Removes the [`SnapshotStore::leftovers`] (call when nothing else writes); returns them.
    pub fn clean_partial(&self) -> Vec<PathBuf> {
        self.leftovers()
            .into_iter()
            .filter(|p| std::fs::remove_dir_all(p).is_ok())
            .collect()
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An unpacked layer that is not a snapshot yet (see [`SnapshotStore::stage`]); dropping it
/// removes it.
#[derive(Debug)]
pub struct Staged<'a> {
    store: &'a SnapshotStore,
    tmp: PathBuf,
    meta: Option<SnapshotMeta>,
}

impl Staged<'_> {
    pub fn meta(&self) -> &SnapshotMeta {
        self.meta
            .as_ref()
            .expect("a staged snapshot has its metadata")
    }

    /// Makes the layer visible under its chain ID (durably); if that snapshot exists already
    /// the staged copy is dropped and the existing one kept.
    pub fn commit(mut self) -> Result<SnapshotMeta> {
        let meta = self
            .meta
            .take()
            .expect("a staged snapshot has its metadata");
        let store = self.store;
        if store.exists(&meta.chain_id) {
            return Ok(meta); // dropping `self` removes the copy
        }
        // Make the files durable before the snapshot becomes visible.
        if let Ok(dir) = std::fs::File::open(&self.tmp) {
            // SAFETY: syncfs only reads the descriptor, which `dir` keeps open.
            unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
        }
        let dest = store.dir(&meta.chain_id);
        match std::fs::rename(&self.tmp, &dest) {
            Ok(()) => {
                let _ = std::fs::File::open(&store.root).and_then(|d| d.sync_all());
                Ok(meta)
            }
            // Someone else finished the same snapshot first: theirs is as good.
            Err(_) if store.exists(&meta.chain_id) => Ok(meta),
            Err(e) => Err(ImageError::io("store snapshot", &dest, e)),
        }
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        // After a successful rename there is nothing left here.
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

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

    fn one_file_layer(data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "f", data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn staged_snapshots_are_invisible_until_committed() {
        let t = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(t.path()).unwrap();
        let staged = store.stage(None, &one_file_layer(b"x")[..]).unwrap();
        let chain = staged.meta().chain_id.clone();
        assert!(!store.exists(&chain));
        drop(staged);
        assert!(!store.exists(&chain));
        let entries = || {
            std::fs::read_dir(t.path().join("snapshots"))
                .unwrap()
                .count()
        };
        assert_eq!(entries(), 0);

        let staged = store.stage(None, &one_file_layer(b"x")[..]).unwrap();
        let meta = staged.commit().unwrap();
        assert_eq!(meta.chain_id, chain);
        assert_eq!(store.list().unwrap(), vec![chain.clone()]);
        assert!(store.remove(&chain).unwrap() > 0);
        assert!(!store.exists(&chain));
        assert_eq!(entries(), 0);
        assert_eq!(store.remove(&chain).unwrap(), 0);
    }
}
