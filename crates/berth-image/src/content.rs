//! The content store: `content/blobs/sha256/<hex>`, immutable and verified.
//!
//! A blob is streamed into `content/ingest/` while its sha256 is computed, fsynced, checked
//! against the expected digest and size, and only then renamed into place; so a blob that is
//! visible is always whole and correct, whatever interrupted a write.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use berth_core::Digest;
use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, Result};

/// A verified blob: its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(hash: Sha256) -> Digest {
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
        .parse()
        .expect("a sha256 hex string is a valid digest")
}

/// A reader that hashes what passes through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left (tar archives end before their padding), then returns the digest
    /// and the number of bytes seen.
    pub fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((sha256_digest(self.hash), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

impl ContentStore {
    /// Opens (creating) the store under `root` (`<root>/content`).
    pub fn open(root: &Path) -> Result<ContentStore> {
        let root = root.join("content");
        for dir in [root.join("blobs/sha256"), root.join("ingest")] {
            std::fs::create_dir_all(&dir).map_err(|e| ImageError::io("create", &dir, e))?;
        }
        Ok(ContentStore { root })
    }

    /// A fresh path in `content/ingest/` for a blob being produced (e.g. a compressed layer);
    /// whatever is left there after a crash is removed by [`ContentStore::clean_ingest`].
    pub fn staging_path(&self, label: &str) -> PathBuf {
        self.root.join("ingest").join(format!(
            "{label}-{}-{}",
            std::process::id(),
            INGEST_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Where a download of `digest` is staged: the same path every time, so that an
    /// interrupted download resumes from what it had written. The downloader verifies the
    /// whole blob before it [`ContentStore::commit`]s the file; until then it is invisible.
    /// [`ContentStore::clean_ingest`] keeps these for a day.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("ingest").join(format!(
            "{PARTIAL_PREFIX}{}",
            digest.to_string().replace(':', "-")
        ))
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.path(digest)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::BlobNotFound(digest.clone()),
            _ => ImageError::io("open blob", self.path(digest), e),
        })
    }

    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut v)
            .map_err(|e| ImageError::io("read blob", self.path(digest), e))?;
        Ok(v)
    }

    /// Stores what `reader` yields. With `expected`, the content must have that digest (and
    /// size, when given) or nothing is stored. Storing a blob that exists is a no-op.
    pub fn ingest(
        &self,
        reader: impl Read,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<BlobInfo> {
        if let Some((digest, Some(size))) = expected {
            if self.exists(digest) {
                return Ok(BlobInfo {
                    digest: digest.clone(),
                    size,
                });
            }
        }
        let tmp = self.staging_path("blob");
        let result = self.ingest_to(&tmp, reader, expected);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn ingest_to(
        &self,
        tmp: &Path,
        reader: impl Read,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<BlobInfo> {
        let file = File::create(tmp).map_err(|e| ImageError::io("create", tmp, e))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let mut hashing = HashingReader::new(reader);
        std::io::copy(&mut hashing, &mut out).map_err(|e| ImageError::io("write", tmp, e))?;
        let file = out
            .into_inner()
            .map_err(|e| ImageError::io("write", tmp, e.into_error()))?;
        let (digest, size) = hashing
            .finish()
            .map_err(|e| ImageError::io("read", tmp, e))?;
        if let Some((want, want_size)) = expected {
            if *want != digest {
                return Err(ImageError::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                });
            }
            if let Some(want_size) = want_size {
                if want_size != size {
                    return Err(ImageError::SizeMismatch {
                        expected: want_size,
                        actual: size,
                    });
                }
            }
        }
        file.sync_all()
            .map_err(|e| ImageError::io("sync", tmp, e))?;
        drop(file);
        let dest = self.path(&digest);
        std::fs::rename(tmp, &dest).map_err(|e| ImageError::io("store", &dest, e))?;
        if let Some(parent) = dest.parent() {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(BlobInfo { digest, size })
    }

    /// Makes a fully written file in `content/ingest/` (from [`ContentStore::staging_path`])
    /// the blob `digest`, which the caller computed while writing it. The file is synced
    /// before it becomes visible; if the blob exists already the staged copy is dropped.
    pub fn commit(&self, staged: &Path, digest: &Digest) -> Result<()> {
        if self.exists(digest) {
            let _ = std::fs::remove_file(staged);
            return Ok(());
        }
        let synced = File::open(staged).and_then(|f| f.sync_all());
        if let Err(e) = synced {
            let _ = std::fs::remove_file(staged);
            return Err(ImageError::io("sync", staged, e));
        }
        let dest = self.path(digest);
        if let Err(e) = std::fs::rename(staged, &dest) {
            let _ = std::fs::remove_file(staged);
            return Err(ImageError::io("store", &dest, e));
        }
        if let Some(parent) = dest.parent() {
            let _ = File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Every blob in the store with its size on disk.
    pub fn list(&self) -> Result<Vec<BlobInfo>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| ImageError::io("read", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("read", &dir, e))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            else {
                continue;
            };
            let size = entry.metadata().map_or(0, |m| m.len());
            out.push(BlobInfo { digest, size });
        }
        Ok(out)
    }

    /// Stores `bytes` (manifests, configs).
    pub fn put(&self, bytes: &[u8]) -> Result<BlobInfo> {
        self.ingest(bytes, None)
    }

    pub fn delete(&self, digest: &Digest) -> Result<()> {
        match std::fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io("delete blob", self.path(digest), e)),
        }
    }

    /// Leftovers of interrupted ingests. Partial downloads ([`ContentStore::partial_path`])
    /// younger than a day are not: they wait to be resumed.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.root.join("ingest")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| {
                let resumable = entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(PARTIAL_PREFIX))
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age < PARTIAL_KEPT_FOR);
                !resumable
            })
            .map(|entry| entry.path())
            .collect()
    }

    /// Removes the [`ContentStore::leftovers`] (call when nothing else writes); returns them.
    pub fn clean_ingest(&self) -> Vec<PathBuf> {
        self.leftovers()
            .into_iter()
            .filter(|p| std::fs::remove_file(p).is_ok())
            .collect()
    }
}

static INGEST_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Names of resumable downloads in `content/ingest/`.
const PARTIAL_PREFIX: &str = "partial-";
/// How long a partial download waits to be resumed.
const PARTIAL_KEPT_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Writes through to `inner` while hashing, for producing blobs (e.g. compressing a layer).
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, sha256_digest(self.hash), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn verified_blobs_become_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let info = store.put(b"hello").unwrap();
        assert_eq!(info.digest.to_string(), HELLO);
        assert_eq!(info.size, 5);
        assert_eq!(store.read_blob(&info.digest).unwrap(), b"hello");
    }

    #[test]
    fn a_wrong_digest_or_size_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let want: Digest = HELLO.parse().unwrap();
        let err = store
            .ingest(&b"hellO"[..], Some((&want, None)))
            .unwrap_err();
        assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
        assert!(!store.exists(&want));
        let err = store
            .ingest(&b"hello"[..], Some((&want, Some(6))))
            .unwrap_err();
        assert!(matches!(err, ImageError::SizeMismatch { .. }), "{err}");
        assert!(!store.exists(&want));
        // Nothing half-written is left in ingest either.
        assert_eq!(
            std::fs::read_dir(dir.path().join("content/ingest"))
                .unwrap()
                .count(),
            0
        );
        store.ingest(&b"hello"[..], Some((&want, Some(5)))).unwrap();
        assert!(store.exists(&want));
    }

    #[test]
    fn staged_files_are_committed_under_their_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let staged = store.staging_path("t");
        std::fs::write(&staged, b"hello").unwrap();
        let d: Digest = HELLO.parse().unwrap();
        store.commit(&staged, &d).unwrap();
        assert!(!staged.exists());
        assert_eq!(store.read_blob(&d).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![BlobInfo { digest: d, size: 5 }]);
    }

    #[test]
    fn partial_downloads_survive_cleaning() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d: Digest = HELLO.parse().unwrap();
        let partial = store.partial_path(&d);
        assert_eq!(partial, store.partial_path(&d), "stable for a digest");
        std::fs::write(&partial, b"hel").unwrap();
        std::fs::write(store.staging_path("blob"), b"x").unwrap();
        assert_eq!(store.clean_ingest().len(), 1);
        assert_eq!(std::fs::read(&partial).unwrap(), b"hel");
        assert!(!store.exists(&d));
    }

    #[test]
    fn missing_blob_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let d: Digest = HELLO.parse().unwrap();
        assert!(matches!(
            store.open_blob(&d),
            Err(ImageError::BlobNotFound(_))
        ));
    }
}
