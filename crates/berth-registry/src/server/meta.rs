//! Repository metadata: for each repository, its tags (→ manifest digests), the manifests it
//! holds (with their media types) and the blobs linked into it. One small JSON file per
//! repository, `repositories/<name>/_repo.json` (no name component can start with `_`),
//! always replaced whole: written to a temporary name, fsynced, renamed, directory fsynced.
//!
//! Everything is also kept in memory. Readers take a read lock for a moment; writers are
//! serialized by one lock ([`Meta::lock`]) held across "check, change, persist", and also
//! across the content-store operations that must agree with the metadata (committing an
//! uploaded blob before linking it, removing a blob nobody links any more).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};

use berth_core::Digest;
use serde::{Deserialize, Serialize};

const REPO_FILE: &str = "_repo.json";

/// A manifest a repository holds: what it is and how big.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repo {
    #[serde(default)]
    pub tags: BTreeMap<String, Digest>,
    #[serde(default)]
    pub manifests: BTreeMap<Digest, ManifestEntry>,
    #[serde(default)]
    pub blobs: BTreeSet<Digest>,
}

impl Repo {
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.manifests.is_empty() && self.blobs.is_empty()
    }

    /// Whether `digest` can be fetched from this repository's blob endpoint: a linked blob
    /// or one of its manifests.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blobs.contains(digest) || self.manifests.contains_key(digest)
    }
}

pub type Repos = BTreeMap<String, Repo>;

#[derive(Debug)]
pub struct Meta {
    dir: PathBuf,
    repos: RwLock<Repos>,
    writer: Mutex<()>,
}

impl Meta {
    /// Loads every repository under `dir` (creating it), and removes temporary files that an
    /// interrupted write left.
    pub fn open(dir: &Path) -> std::io::Result<Meta> {
        std::fs::create_dir_all(dir)?;
        let mut repos = Repos::new();
        load_dir(dir, dir, &mut repos)?;
        Ok(Meta {
            dir: dir.to_owned(),
            repos: RwLock::new(repos),
            writer: Mutex::new(()),
        })
    }

    /// Runs `f` on the current state (do not block in it).
    pub fn read<R>(&self, f: impl FnOnce(&Repos) -> R) -> R {
        f(&self.repos.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes the writers' lock (blocking: call from a blocking task).
    pub fn lock(&self) -> MetaTx<'_> {
        MetaTx {
            meta: self,
            _guard: self.writer.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    fn repo_file(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(REPO_FILE)
    }
}

fn load_dir(base: &Path, dir: &Path, repos: &mut Repos) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            load_dir(base, &path, repos)?;
        } else if file_name == REPO_FILE {
            let name = dir
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&path)?;
            match serde_json::from_slice::<Repo>(&bytes) {
                Ok(repo) if super::names::valid_name(&name) => {
                    repos.insert(name, repo);
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "ignoring a repository with an invalid name")
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    ))
                }
            }
        } else if berth_core::fs::is_temp_file(&entry.file_name()) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// The writers' lock: read, decide, [`MetaTx::save`]. Dropping it lets the next writer in.
#[derive(Debug)]
pub struct MetaTx<'a> {
    meta: &'a Meta,
    _guard: MutexGuard<'a, ()>,
}

impl MetaTx<'_> {
    /// The repository as it is (empty when it does not exist).
    pub fn repo(&self, name: &str) -> Repo {
        self.meta
            .read(|repos| repos.get(name).cloned())
            .unwrap_or_default()
    }

    /// Whether any repository links `digest`, as a blob or as a manifest.
    pub fn referenced(&self, digest: &Digest) -> bool {
        self.meta
            .read(|repos| repos.values().any(|r| r.has_blob(digest)))
    }

    /// Persists `repo` as `name` (an empty repository is removed), then makes it visible.
    pub fn save(&mut self, name: &str, repo: Repo) -> std::io::Result<()> {
        let path = self.meta.repo_file(name);
        if repo.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            // Empty directories up to the root go too (a nested name's parents may hold
            // other repositories, so only empty ones).
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == self.meta.dir || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            self.meta
                .repos
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name);
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&repo).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        berth_core::fs::write_atomic(&path, &bytes)?;
        self.meta
            .repos
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), repo);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn repositories_persist_and_empty_ones_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path()).unwrap();
        let mut repo = Repo::default();
        repo.blobs.insert(digest('a'));
        repo.manifests.insert(
            digest('b'),
            ManifestEntry {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 3,
            },
        );
        repo.tags.insert("latest".into(), digest('b'));
        {
            let mut tx = meta.lock();
            tx.save("org/app", repo.clone()).unwrap();
            tx.save("other", Repo::default()).unwrap();
            assert!(tx.referenced(&digest('a')));
            assert!(tx.referenced(&digest('b')));
            assert!(!tx.referenced(&digest('c')));
        }
        assert!(dir.path().join("org/app/_repo.json").is_file());
        // Nothing temporary is left, and a reopened store sees the same.
        let reopened = Meta::open(dir.path()).unwrap();
        reopened.read(|r| {
            assert_eq!(r.len(), 1);
            assert_eq!(r["org/app"], repo);
        });
        let mut tx = reopened.lock();
        tx.save("org/app", Repo::default()).unwrap();
        drop(tx);
        assert!(!dir.path().join("org").exists());
        assert!(reopened.read(|r| r.is_empty()));
    }

    #[test]
    fn leftover_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("x")).unwrap();
        std::fs::write(dir.path().join("x/.tmp-1-2"), b"{").unwrap();
        let meta = Meta::open(dir.path()).unwrap();
        assert!(meta.read(|r| r.is_empty()));
        assert!(!dir.path().join("x/.tmp-1-2").exists());
    }
}
