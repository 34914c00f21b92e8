//! Which repositories a blob is known to be in (it was pulled from or pushed to them), so a
//! push to another repository of the same registry can mount it instead of uploading it.
//! Kept in `<dir>/blob-sources.json` (replaced atomically) when the client has a directory
//! for it, in memory otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use berth_core::Digest;

/// How many repositories are remembered per blob (the latest first).
const PER_BLOB: usize = 5;

#[derive(Debug)]
pub(crate) struct BlobSources {
    path: Option<PathBuf>,
    map: Mutex<Option<BTreeMap<String, Vec<String>>>>,
}

impl BlobSources {
    pub fn new(dir: Option<PathBuf>) -> BlobSources {
        BlobSources {
            path: dir.map(|d| d.join("blob-sources.json")),
            map: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Vec<String>>) -> T) -> T {
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(|| {
            self.path
                .as_ref()
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        });
        f(map)
    }

    /// Notes that `digests` are in `registry/repository`.
    pub fn add(&self, digests: &[Digest], registry: &str, repository: &str) {
        let name = format!("{registry}/{repository}");
        let snapshot = self.with(|map| {
            for d in digests {
                let list = map.entry(d.to_string()).or_default();
                list.retain(|n| *n != name);
                list.insert(0, name.clone());
                list.truncate(PER_BLOB);
            }
            map.clone()
        });
        if let Some(path) = &self.path {
            // Best effort: losing this only costs an upload a mount would have saved.
            let _ = write_atomic(path, &serde_json::to_vec(&snapshot).unwrap_or_default());
        }
    }

    /// Other repositories of `registry` that have `digest` (their paths).
    pub fn candidates(&self, digest: &Digest, registry: &str, repository: &str) -> Vec<String> {
        let prefix = format!("{registry}/");
        self.with(|map| {
            map.get(&digest.to_string())
                .into_iter()
                .flatten()
                .filter_map(|n| n.strip_prefix(&prefix))
                .filter(|r| *r != repository)
                .map(str::to_owned)
                .collect()
        })
    }
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    berth_core::fs::write_atomic(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_per_registry() {
        let dir = tempfile::tempdir().unwrap();
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let s = BlobSources::new(Some(dir.path().to_path_buf()));
        s.add(std::slice::from_ref(&d), "localhost:5000", "one");
        s.add(std::slice::from_ref(&d), "localhost:5000", "two");
        s.add(std::slice::from_ref(&d), "other:5000", "three");
        assert_eq!(s.candidates(&d, "localhost:5000", "two"), vec!["one"]);
        assert_eq!(s.candidates(&d, "localhost:5000", "x"), vec!["two", "one"]);
        // Another client on the same directory knows it too.
        let again = BlobSources::new(Some(dir.path().to_path_buf()));
        assert_eq!(again.candidates(&d, "other:5000", "x"), vec!["three"]);
    }
}
