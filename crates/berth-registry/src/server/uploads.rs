//! Blob upload sessions. Each session's data is a file in the content store's staging area
//! (`content/ingest/`), appended to as chunks arrive while its sha256 is computed on the
//! way, so closing the session needs no second read: the digest is compared, the file
//! fsynced and renamed into `content/blobs/` (the store's verified commit). A session that
//! fails, is cancelled or expires takes its file with it (a [`Session`] removes its file when
//! dropped), so nothing partial stays in staging.
//!
//! Sessions live in memory: a restarted registry forgets unfinished uploads (clients start
//! again, as the spec allows), and the staging area is emptied when the registry starts.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use berth_core::Digest;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use super::error::{Code, RegistryError, Result};

/// Chunks are gathered to this size before a blocking task writes and hashes them.
const WRITE_BATCH: usize = 1 << 20;

#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub repo: String,
    pub path: PathBuf,
    pub size: u64,
    hasher: Sha256,
    file: Option<File>,
    pub touched: Instant,
    /// Finished or cancelled: the session is gone even if someone still holds it.
    pub closed: bool,
}

impl Session {
    pub fn new(id: String, repo: String, path: PathBuf) -> Session {
        Session {
            id,
            repo,
            path,
            size: 0,
            hasher: Sha256::new(),
            file: None,
            touched: Instant::now(),
            closed: false,
        }
    }

    /// What stays behind in a session's lock when the session itself is taken out.
    pub fn placeholder() -> Session {
        let mut s = Session::new(String::new(), String::new(), PathBuf::new());
        s.closed = true;
        s
    }

    /// The sha256 of everything appended so far.
    pub fn digest(&self) -> Digest {
        berth_image::content::sha256_digest(self.hasher.clone())
    }

    /// Appends `body` (streamed, at most [`WRITE_BATCH`] bytes held at once). With `expect`,
    /// the body must be exactly that long. On any failure the session is put back as it was
    /// before, so the client can retry the chunk.
    pub async fn append(&mut self, body: Body, expect: Option<u64>) -> Result<u64> {
        let old_size = self.size;
        let old_hasher = self.hasher.clone();
        let result = self.append_inner(body, expect).await;
        if result.is_err() {
            self.hasher = old_hasher;
            self.size = old_size;
            let rolled_back = match self.file.as_ref() {
                Some(f) => f.set_len(old_size).is_ok(),
                None => {
                    std::fs::metadata(&self.path).map_or(old_size == 0, |m| m.len() == old_size)
                }
            };
            if !rolled_back {
                // The data on disk no longer matches what we hashed: the session is unusable.
                self.closed = true;
            }
        }
        self.touched = Instant::now();
        result
    }

    async fn append_inner(&mut self, body: Body, expect: Option<u64>) -> Result<u64> {
        if self.file.is_none() {
            let path = self.path.clone();
            let file = tokio::task::spawn_blocking(move || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            })
            .await??;
            self.file = Some(file);
        }
        let mut stream = body.into_data_stream();
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut written = 0u64;
        let too_long = |n: u64| {
            RegistryError::new(Code::SizeInvalid)
                .detail(format!("the body is longer than the {n} bytes announced"))
        };
        loop {
            let chunk = match stream.next().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    return Err(RegistryError::new(Code::BlobUploadInvalid)
                        .detail(format!("reading the request body: {e}")))
                }
                None => break,
            };
            pending_len += chunk.len();
            pending.push(chunk);
            if let Some(n) = expect {
                if written + pending_len as u64 > n {
                    return Err(too_long(n));
                }
            }
            if pending_len >= WRITE_BATCH {
                written += self.flush(std::mem::take(&mut pending)).await?;
                pending_len = 0;
            }
        }
        written += self.flush(pending).await?;
        if let Some(n) = expect {
            if written != n {
                return Err(RegistryError::new(Code::SizeInvalid)
                    .detail(format!("the body has {written} bytes, {n} were announced")));
            }
        }
        Ok(written)
    }

    /// Writes and hashes `bufs` in a blocking task.
    async fn flush(&mut self, bufs: Vec<Bytes>) -> Result<u64> {
        if bufs.is_empty() {
            return Ok(0);
        }
        let mut file = self.file.take().expect("the session's file is open");
        let mut hasher = self.hasher.clone();
        let (file, hasher, result) = tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            for b in &bufs {
                if let Err(e) = file.write_all(b) {
                    return (file, hasher, Err(e));
                }
                hasher.update(b);
                n += b.len() as u64;
            }
            (file, hasher, Ok(n))
        })
        .await?;
        self.file = Some(file);
        let n = result?;
        self.hasher = hasher;
        self.size += n;
        Ok(n)
    }

    /// Flushes the data to disk and closes the file: the session is ready to be committed.
    pub async fn sync(&mut self) -> Result<()> {
        let file = self.file.take();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || match file {
            Some(f) => f.sync_all(),
            // Nothing was ever appended: an empty blob.
            None => File::create(&path).and_then(|f| f.sync_all()),
        })
        .await??;
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Committed sessions were renamed away; anything else is a leftover.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub type SessionRef = Arc<tokio::sync::Mutex<Session>>;

/// The open sessions by id.
#[derive(Debug, Default)]
pub struct Uploads {
    sessions: std::sync::Mutex<HashMap<String, SessionRef>>,
}

impl Uploads {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionRef>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, session: Session) -> SessionRef {
        let id = session.id.clone();
        let s = Arc::new(tokio::sync::Mutex::new(session));
        self.map().insert(id, s.clone());
        s
    }

    pub fn get(&self, id: &str) -> Option<SessionRef> {
        self.map().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<SessionRef> {
        self.map().remove(id)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets sessions untouched for `idle` (their files go with them). Sessions in use are
    /// left alone.
    pub fn expire(&self, idle: Duration) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| match s.try_lock() {
            Ok(s) => !s.closed && s.touched.elapsed() < idle,
            Err(_) => true,
        });
        before - map.len()
    }
}

/// A fresh upload id (a random UUID, as the spec asks of upload locations).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_hash_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u");
        let mut s = Session::new("id".into(), "r".into(), path.clone());
        assert_eq!(s.append(Body::from("hel"), Some(3)).await.unwrap(), 3);
        // Announced 5, sent 2: refused, and the session is as before.
        let err = s.append(Body::from("lo"), Some(5)).await.unwrap_err();
        assert_eq!(err.code, Code::SizeInvalid);
        assert_eq!(s.size, 3);
        assert_eq!(std::fs::read(&path).unwrap(), b"hel");
        let err = s.append(Body::from("lo!!"), Some(2)).await.unwrap_err();
        assert_eq!(err.code, Code::SizeInvalid);
        assert_eq!(s.append(Body::from("lo"), None).await.unwrap(), 2);
        assert_eq!(
            s.digest().to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        s.sync().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        drop(s);
        assert!(!path.exists(), "a dropped session removes its file");
    }

    #[tokio::test]
    async fn idle_sessions_expire() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::default();
        let path = dir.path().join("u");
        std::fs::write(&path, b"x").unwrap();
        uploads.insert(Session::new("a".into(), "r".into(), path.clone()));
        assert_eq!(uploads.expire(Duration::from_secs(60)), 0);
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads.expire(Duration::ZERO), 1);
        assert!(uploads.is_empty());
        assert!(!path.exists());
    }
}
