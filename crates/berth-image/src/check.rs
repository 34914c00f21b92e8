//! `berth system check` for the image store, as `fsck` checks a file system: every name
//! resolves to an image whose manifest and config are there and readable, every layer's
//! blob and snapshot is there, every snapshot has its metadata and its parent chain, (deep)
//! every blob's content matches its digest, and nothing is left of interrupted writes.
//! [`ImageStore::repair`] puts each problem right in the least destructive way there is.

use std::path::PathBuf;

use berth_core::Digest;

use crate::content::HashingReader;
use crate::error::{ImageError, Result};
use crate::store::{chain_ids, ImageStore};

/// One inconsistency of the image store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A name points at an image the index does not have.
    DanglingName { name: String, image: Digest },
    /// An image whose manifest or config is missing or unreadable: it cannot run.
    BrokenImage { image: Digest, why: String },
    /// A layer blob of an image is missing: it runs, but `save` and `push` fail.
    MissingLayerBlob { image: Digest, layer: Digest },
    /// An unpacked layer of an image is missing (`layer` is its blob, when present).
    MissingSnapshot {
        image: Digest,
        chain: Digest,
        layer: Option<Digest>,
        parent: Option<Digest>,
    },
    /// A snapshot whose metadata is missing, unreadable, names another chain or a parent
    /// that is not there.
    BrokenSnapshot { chain: Digest, why: String },
    /// (deep) A blob whose content does not match its name.
    CorruptBlob { digest: Digest, actual: Digest },
    /// What an interrupted write left (an ingest, an unpack, a removal).
    Leftover { path: PathBuf },
}

impl Problem {
    /// What is wrong, in a sentence.
    pub fn message(&self) -> String {
        match self {
            Problem::DanglingName { name, image } => {
                format!("name {name} points at image {image}, which does not exist")
            }
            Problem::BrokenImage { image, why } => format!("image {image}: {why}"),
            Problem::MissingLayerBlob { image, layer } => {
                format!("image {image}: layer blob {layer} is missing (save and push fail)")
            }
            Problem::MissingSnapshot { image, chain, .. } => {
                format!("image {image}: unpacked layer {chain} is missing")
            }
            Problem::BrokenSnapshot { chain, why } => format!("unpacked layer {chain}: {why}"),
            Problem::CorruptBlob { digest, actual } => {
                format!("blob {digest}: its content has digest {actual}")
            }
            Problem::Leftover { path } => {
                format!("{} is left from an interrupted write", path.display())
            }
        }
    }

    /// What `repair` does about it.
    pub fn repair_action(&self) -> String {
        match self {
            Problem::DanglingName { name, .. } => format!("remove the name {name}"),
            Problem::BrokenImage { .. } => {
                "remove the image and its names (pull or load it again)".into()
            }
            Problem::MissingLayerBlob { .. } => {
                "none: the image runs; pull or load it again to save or push it".into()
            }
            Problem::MissingSnapshot { layer: Some(l), .. } => {
                format!("unpack the layer again from blob {l}")
            }
            Problem::MissingSnapshot { layer: None, .. } => {
                "remove the image and its names (its layer blob is missing too)".into()
            }
            Problem::BrokenSnapshot { .. } => {
                "remove it (images that need it get it unpacked again)".into()
            }
            Problem::CorruptBlob { .. } => {
                "remove the blob (what needs it is then repaired or removed)".into()
            }
            Problem::Leftover { .. } => "remove it".into(),
        }
    }

    /// Whether `repair` can put it right.
    pub fn repairable(&self) -> bool {
        !matches!(self, Problem::MissingLayerBlob { .. })
    }
}

impl ImageStore {
    /// Checks the store. `deep` also reads every blob to verify its digest. `leftovers`:
    /// whether temporary files count as problems (not while a daemon may be writing them).
    pub fn check(&self, deep: bool, leftovers: bool) -> Result<Vec<Problem>> {
        let index = self.index()?;
        let mut problems = Vec::new();
        for (name, image) in &index.refs {
            if !index.images.contains_key(image) {
                problems.push(Problem::DanglingName {
                    name: name.clone(),
                    image: image.clone(),
                });
            }
        }
        for (image, record) in &index.images {
            problems.extend(self.check_image(image, &record.manifest));
        }
        for chain in self.snapshots.list()? {
            if let Err(why) = self.snapshot_sound(&chain) {
                problems.push(Problem::BrokenSnapshot { chain, why });
            }
        }
        if deep {
            for blob in self.content.list()? {
                if let Some(actual) = self.blob_digest_if_wrong(&blob.digest)? {
                    problems.push(Problem::CorruptBlob {
                        digest: blob.digest,
                        actual,
                    });
                }
            }
        }
        if leftovers {
            problems.extend(
                self.content
                    .leftovers()
                    .into_iter()
                    .chain(self.snapshots.leftovers())
                    .map(|path| Problem::Leftover { path }),
            );
        }
        Ok(problems)
    }

    /// The problems of one image: its documents, then each layer's blob and snapshot.
    fn check_image(&self, image: &Digest, manifest: &Digest) -> Vec<Problem> {
        let broken = |why: String| {
            vec![Problem::BrokenImage {
                image: image.clone(),
                why,
            }]
        };
        let config = match self.config(image) {
            Ok(c) => c,
            Err(ImageError::BlobNotFound(_)) => return broken("its config blob is missing".into()),
            Err(e) => return broken(format!("its config cannot be read: {e}")),
        };
        let manifest = match self.manifest(manifest) {
            Ok(m) => m,
            Err(ImageError::BlobNotFound(_)) => {
                return broken(format!("its manifest {manifest} is missing"))
            }
            Err(e) => return broken(format!("its manifest {manifest} cannot be read: {e}")),
        };
        if manifest.config.digest != *image {
            return broken(format!(
                "its manifest names config {}",
                manifest.config.digest
            ));
        }
        let chains = chain_ids(&config);
        if manifest.layers.len() != chains.len() {
            return broken(format!(
                "its manifest has {} layers, its config {}",
                manifest.layers.len(),
                chains.len()
            ));
        }
        let mut problems = Vec::new();
        for (i, (layer, chain)) in manifest.layers.iter().zip(&chains).enumerate() {
            let blob = self.content.exists(&layer.digest);
            if !blob {
                problems.push(Problem::MissingLayerBlob {
                    image: image.clone(),
                    layer: layer.digest.clone(),
                });
            }
            if self.snapshot_sound(chain).is_err() {
                problems.push(Problem::MissingSnapshot {
                    image: image.clone(),
                    chain: chain.clone(),
                    layer: blob.then(|| layer.digest.clone()),
                    parent: i.checked_sub(1).map(|p| chains[p].clone()),
                });
            }
        }
        problems
    }

    /// Whether a snapshot is whole: metadata naming it, its files, its parent whole too.
    fn snapshot_sound(&self, chain: &Digest) -> std::result::Result<(), String> {
        let mut cur = chain.clone();
        loop {
            let Some(meta) = self.snapshots.meta(&cur) else {
                return Err(if &cur == chain {
                    "its metadata is missing or unreadable".into()
                } else {
                    format!("layer {cur} under it is missing")
                });
            };
            if meta.chain_id != cur {
                return Err(format!("its metadata names layer {}", meta.chain_id));
            }
            if !self.snapshots.fs(&cur).is_dir() {
                return Err(format!("the files of layer {cur} are missing"));
            }
            match meta.parent {
                Some(p) => cur = p,
                None => return Ok(()),
            }
        }
    }

    /// The actual digest of a blob whose content does not match its name; None when it does.
    fn blob_digest_if_wrong(&self, digest: &Digest) -> Result<Option<Digest>> {
        let blob = self.content.open_blob(digest)?;
        let (actual, _) = HashingReader::new(blob)
            .finish()
            .map_err(|e| ImageError::io("read blob", self.content.path(digest), e))?;
        Ok((actual != *digest).then_some(actual))
    }

    /// Puts `problems` right (see [`Problem::repair_action`]); returns what it did, one line
    /// each. Problems that repairs cause (an image whose blob was corrupt) show in the next
    /// check; [`ImageStore::repair`] is meant to be run until a check finds nothing more.
    pub fn repair(&self, problems: &[Problem]) -> Result<Vec<String>> {
        let mut done = Vec::new();
        let mut remove_images = Vec::new();
        for p in problems {
            match p {
                Problem::DanglingName { name, .. } => {
                    let name = name.clone();
                    self.update(|ix| {
                        ix.refs.remove(&name);
                        Ok(())
                    })?;
                    done.push(format!("removed the name {name}"));
                }
                Problem::BrokenImage { image, .. }
                | Problem::MissingSnapshot {
                    image, layer: None, ..
                } => remove_images.push(image.clone()),
                Problem::MissingSnapshot {
                    chain,
                    layer: Some(layer),
                    parent,
                    ..
                } => {
                    if self.snapshots.exists(chain) {
                        continue; // unpacked for another image already
                    }
                    if let Some(p) = parent.as_ref().filter(|p| !self.snapshots.exists(p)) {
                        // The layer below first: the next round does this one.
                        done.push(format!("layer {chain} waits for layer {p} under it"));
                        continue;
                    }
                    let _ = self.snapshots.remove(chain);
                    let blob = self.content.open_blob(layer)?;
                    let path = self.content.path(layer);
                    let (_, stream) = crate::compression::decompressed(blob)
                        .map_err(|e| ImageError::io("read blob", &path, e))?;
                    let meta = self.snapshots.unpack(parent.as_ref(), stream)?;
                    if meta.chain_id != *chain {
                        let _ = self.snapshots.remove(&meta.chain_id);
                        return Err(ImageError::DigestMismatch {
                            expected: chain.clone(),
                            actual: meta.chain_id,
                        });
                    }
                    done.push(format!("unpacked layer {chain} again from blob {layer}"));
                }
                Problem::BrokenSnapshot { chain, .. } => {
                    self.snapshots.remove(chain)?;
                    done.push(format!("removed unpacked layer {chain}"));
                }
                Problem::CorruptBlob { digest, .. } => {
                    self.content.delete(digest)?;
                    done.push(format!("removed blob {digest}"));
                }
                Problem::Leftover { path } => {
                    berth_core::fs::remove_path(path)
                        .map_err(|e| ImageError::io("remove", path, e))?;
                    done.push(format!("removed {}", path.display()));
                }
                Problem::MissingLayerBlob { .. } => {}
            }
        }
        remove_images.sort();
        remove_images.dedup();
        if !remove_images.is_empty() {
            let ids = remove_images.clone();
            self.update(move |ix| {
                for id in &ids {
                    ix.remove_image(id);
                }
                Ok(())
            })?;
            for id in remove_images {
                done.push(format!("removed image {id} and its names"));
            }
        }
        Ok(done)
    }
}
