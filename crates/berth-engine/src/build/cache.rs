//! The build cache: what a step with a given cache key produced, so that a rebuild reuses it.
//!
//! One small JSON file per key under `build/cache/` (written whole, then renamed into place),
//! naming the step's layer (blob and snapshot) or saying it made none. The file's mtime is when
//! the entry was last used: eviction (`builder prune --keep-storage`, and the size bound after
//! every build) drops the least recently used first. The layers and snapshots of entries are
//! roots for the image store's collector, so removing an image keeps what the cache still
//! names; pruning the cache and then collecting frees them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_build::CacheKey;
use berth_core::Digest;
use berth_image::oci::Descriptor;
use serde::{Deserialize, Serialize};

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// The layer (None: the step changed nothing).
    pub layer: Option<Descriptor>,
    pub diff_id: Option<Digest>,
    /// The snapshot of the layer on top of its parents (by chain ID).
    pub chain: Option<Digest>,
    /// The history text, when it is not the step's own (COPY names its source hash).
    pub created_by: Option<String>,
    /// Bytes of the uncompressed layer.
    pub size: u64,
}

/// The cache under one directory.
#[derive(Debug, Clone)]
pub struct BuildCache {
    dir: PathBuf,
}

impl BuildCache {
    pub fn open(dir: impl Into<PathBuf>) -> BuildCache {
        BuildCache { dir: dir.into() }
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        let hex = key.as_str().trim_start_matches("sha256:");
        self.dir.join(format!("{hex}.json"))
    }

    /// The entry for `key`, marked as just used.
    pub fn get(&self, key: &CacheKey) -> Option<Entry> {
        let path = self.path(key);
        let entry: Entry = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(entry)
    }

    pub fn put(&self, entry: &Entry) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let key = CacheKey::from_string(entry.key.clone());
        let path = self.path(&key);
        berth_core::fs::write_atomic(
            &path,
            &serde_json::to_vec(entry).map_err(std::io::Error::other)?,
        )
    }

    /// Every entry, with when it was last used, least recently used first.
    pub fn entries(&self) -> Vec<(Entry, SystemTime, PathBuf)> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for e in rd.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
                continue;
            };
            let used = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((entry, used, path));
        }
        out.sort_by_key(|(_, used, _)| *used);
        out
    }

    /// The blobs and snapshots the entries name (roots for the collector).
    pub fn roots(&self) -> (HashSet<Digest>, HashSet<Digest>) {
        let mut blobs = HashSet::new();
        let mut snapshots = HashSet::new();
        for (e, _, _) in self.entries() {
            if let Some(l) = e.layer {
                blobs.insert(l.digest);
            }
            if let Some(c) = e.chain {
                snapshots.insert(c);
            }
        }
        (blobs, snapshots)
    }

    /// Removes entries `may_go` accepts, least recently used first, until what is left takes
    /// at most `keep` bytes (all of them with `None`). Returns the keys removed and their
    /// layers' bytes. A layer shared by several entries counts once.
    pub fn evict(&self, keep: Option<u64>, may_go: impl Fn(&Entry) -> bool) -> (Vec<String>, u64) {
        let entries = self.entries();
        let mut seen = HashSet::new();
        let sizes: Vec<u64> = entries
            .iter()
            .map(|(e, _, _)| match &e.chain {
                Some(c) if seen.insert(c.clone()) => e.size,
                _ => 0,
            })
            .collect();
        let mut total: u64 = sizes.iter().sum();
        let mut removed = Vec::new();
        let mut freed = 0;
        for ((e, _, path), size) in entries.iter().zip(sizes) {
            if keep.is_some_and(|k| total <= k) {
                break;
            }
            if may_go(e) && std::fs::remove_file(path).is_ok() {
                total -= size;
                freed += size;
                removed.push(e.key.clone());
            }
        }
        (removed, freed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, size: u64) -> Entry {
        let chain: Digest = format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap();
        Entry {
            key: CacheKey::base(&n.to_string(), "linux/amd64").to_string(),
            layer: None,
            diff_id: None,
            chain: Some(chain),
            created_by: None,
            size,
        }
    }

    #[test]
    fn entries_come_back_and_eviction_drops_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BuildCache::open(dir.path().join("cache"));
        let (a, b, c) = (entry(1, 100), entry(2, 200), entry(3, 300));
        for e in [&a, &b, &c] {
            cache.put(e).unwrap();
            // Distinct use times, a before b before c.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let key_a = CacheKey::from_string(a.key.clone());
        // Using `a` makes it the most recent.
        assert_eq!(cache.get(&key_a), Some(a.clone()));
        assert_eq!(cache.roots().1.len(), 3);
        let (removed, freed) = cache.evict(Some(400), |_| true);
        assert_eq!(removed, vec![b.key.clone()]);
        assert_eq!(freed, 200);
        assert!(cache.get(&CacheKey::from_string(b.key.clone())).is_none());
        let (removed, _) = cache.evict(None, |_| true);
        assert_eq!(removed.len(), 2);
        assert!(cache.entries().is_empty());
    }
}
