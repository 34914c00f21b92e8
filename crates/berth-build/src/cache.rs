//! Cache keys. A step's key is a sha256 over its parent's key, the instruction after expansion
//! ([`crate::plan::Step::cache_text`]) and, for COPY/ADD, a hash of the content it reads; the
//! first parent is the base image's ([`CacheKey::base`]). A changed file so changes the key of
//! the step that reads it and of every step after it, and nothing before.
//!
//! Hashing the context is metadata-aware: [`FileHashCache`] remembers each file's sha256 under
//! (path, size, mtime, inode, mode), in a small JSON file whose location the caller chooses, so
//! a rebuild reads only files whose metadata changed. A file modified in the last two seconds
//! is never remembered (the same mtime could hide a second write, git's "racily clean" case).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::context::{Context, ContextError, Entry, EntryKind};
use crate::ignore::clean;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A step's cache key, `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key a stage starts from: its base (an image ID, or `scratch`) and platform.
    pub fn base(image: &str, platform: &str) -> CacheKey {
        let mut h = Sha256::new();
        h.update(b"berth-build-cache-v1\0base\0");
        h.update(image.as_bytes());
        h.update(b"\0");
        h.update(platform.as_bytes());
        CacheKey(format!("sha256:{}", hex(&h.finalize())))
    }

    /// The key of a step with this key as parent.
    pub fn child(&self, instruction: &str, content: Option<&str>) -> CacheKey {
        let mut h = Sha256::new();
        h.update(b"berth-build-cache-v1\0step\0");
        h.update(self.0.as_bytes());
        h.update(b"\0");
        h.update((instruction.len() as u64).to_le_bytes());
        h.update(instruction.as_bytes());
        match content {
            Some(c) => {
                h.update(b"\x01");
                h.update(c.as_bytes());
            }
            None => h.update(b"\x00"),
        }
        CacheKey(format!("sha256:{}", hex(&h.finalize())))
    }

    /// A key as [`CacheKey::as_str`] gave it (read back from storage).
    pub fn from_string(key: String) -> CacheKey {
        CacheKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    dev: u64,
    mode: u32,
    sha256: String,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CacheFile {
    version: u32,
    files: BTreeMap<String, Stamp>,
}

/// File content hashes remembered under their metadata.
#[derive(Debug)]
pub struct FileHashCache {
    path: Option<PathBuf>,
    files: HashMap<String, Stamp>,
    dirty: bool,
    /// Files whose hash came from the cache / had to be read.
    pub hits: u64,
    pub misses: u64,
}

fn mtime_ns(m: &std::fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

impl FileHashCache {
    /// A cache kept in memory only.
    pub fn in_memory() -> FileHashCache {
        FileHashCache {
            path: None,
            files: HashMap::new(),
            dirty: false,
            hits: 0,
            misses: 0,
        }
    }

    /// The cache stored at `path` (empty when missing or unreadable: it is only a cache).
    pub fn open(path: impl Into<PathBuf>) -> FileHashCache {
        let path = path.into();
        let files = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
            .filter(|c| c.version == 1)
            .map(|c| c.files.into_iter().collect())
            .unwrap_or_default();
        FileHashCache {
            path: Some(path),
            files,
            dirty: false,
            hits: 0,
            misses: 0,
        }
    }

    /// The sha256 (hex) of the regular file at `path` whose `lstat` is `meta`.
    pub fn hash_file(&mut self, path: &Path, meta: &std::fs::Metadata) -> io::Result<String> {
        let key = path.to_string_lossy().into_owned();
        let stamp = |sha256: String| Stamp {
            size: meta.len(),
            mtime_ns: mtime_ns(meta),
            ino: meta.ino(),
            dev: meta.dev(),
            mode: meta.mode(),
            sha256,
        };
        if let Some(s) = self.files.get(&key) {
            if *s == stamp(s.sha256.clone()) {
                self.hits += 1;
                return Ok(s.sha256.clone());
            }
        }
        self.misses += 1;
        let mut f = std::fs::File::open(path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let sum = hex(&h.finalize());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        if now - mtime_ns(meta) > 2_000_000_000 {
            self.files.insert(key, stamp(sum.clone()));
            self.dirty = true;
        } else if self.files.remove(&key).is_some() {
            self.dirty = true;
        }
        Ok(sum)
    }

    /// Writes the cache back (atomically) when it changed.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let file = CacheFile {
            version: 1,
            files: self
                .files
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let data = serde_json::to_vec(&file).map_err(io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        berth_core::fs::write_atomic(path, &data)?;
        self.dirty = false;
        Ok(())
    }
}

/// Why COPY/ADD sources could not be hashed (the texts are the classic builder's).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("Forbidden path outside the build context: {0} ()")]
    OutsideContext(String),
    #[error("file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("no source files were specified")]
    NoSources,
    #[error(transparent)]
    Context(#[from] ContextError),
}

/// The hash of what a COPY/ADD reads from the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHash {
    /// `sha256:<hex>` over every file read (path, type, mode, size, content or link target).
    pub digest: String,
    /// Docker's text for the history line: `file:<hex>`, `dir:<hex>` or `multi:<hex>`.
    pub docker_text: String,
    /// The context entries read, per source, in order.
    pub files: Vec<String>,
}

/// Hashes COPY/ADD sources in a context, with a [`FileHashCache`].
#[derive(Debug)]
pub struct ContextHasher<'a> {
    context: &'a Context,
    cache: &'a mut FileHashCache,
}

fn is_remote(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@")
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl<'a> ContextHasher<'a> {
    pub fn new(context: &'a Context, cache: &'a mut FileHashCache) -> ContextHasher<'a> {
        ContextHasher { context, cache }
    }

    /// Hashes the sources of a COPY/ADD (expanded, as in [`crate::plan::CopyStep::sources`]).
    /// URLs are left to the executor (their text is in the cache text already).
    pub fn hash_sources(&mut self, sources: &[String]) -> Result<SourceHash, SourceError> {
        if sources.is_empty() {
            return Err(SourceError::NoSources);
        }
        let mut total = Sha256::new();
        let mut files = Vec::new();
        let mut parts = Vec::new();
        for src in sources {
            if is_remote(src) {
                total.update(b"remote\0");
                total.update(src.as_bytes());
                parts.push(format!("remote:{src}"));
                continue;
            }
            let rel = clean(src.trim_start_matches('/'));
            if rel == ".." || rel.starts_with("../") {
                return Err(SourceError::OutsideContext(src.clone()));
            }
            let rel = if rel == "." { String::new() } else { rel };
            let roots = self.resolve(&rel, src)?;
            let mut h = Sha256::new();
            let mut kind = "file";
            for root in roots {
                let entry = root;
                if entry.kind == EntryKind::Dir {
                    kind = "dir";
                }
                self.add(&mut h, &entry, &mut files)?;
                if entry.kind == EntryKind::Dir {
                    let mut inner = Vec::new();
                    self.context.walk_with(&entry.path, &mut |e| {
                        if !e.forced {
                            inner.push(e);
                        }
                        Ok(())
                    })?;
                    for e in inner {
                        self.add(&mut h, &e, &mut files)?;
                    }
                }
            }
            let sum = hex(&h.finalize());
            total.update(sum.as_bytes());
            parts.push(format!("{kind}:{sum}"));
        }
        let digest = format!("sha256:{}", hex(&total.finalize()));
        let docker_text = if parts.len() == 1 {
            parts.remove(0)
        } else {
            let mut h = Sha256::new();
            h.update(parts.join(",").as_bytes());
            format!("multi:{}", hex(&h.finalize()))
        };
        Ok(SourceHash {
            digest,
            docker_text,
            files,
        })
    }

    /// The context entries a COPY/ADD source (as written, expanded) names: itself, or what
    /// its glob matches. A directory's content is not listed (walk it with
    /// [`Context::walk_with`]).
    pub fn source_entries(&mut self, src: &str) -> Result<Vec<Entry>, SourceError> {
        let rel = clean(src.trim_start_matches('/'));
        if rel == ".." || rel.starts_with("../") {
            return Err(SourceError::OutsideContext(src.to_owned()));
        }
        let rel = if rel == "." { String::new() } else { rel };
        self.resolve(&rel, src)
    }

    /// The entries a source names: itself, or what its glob matches (each component may be a
    /// glob, as Go's `filepath.Glob`).
    fn resolve(&mut self, rel: &str, src: &str) -> Result<Vec<Entry>, SourceError> {
        let not_found = || SourceError::NotFound(src.to_owned());
        if !has_glob(rel) {
            if !rel.is_empty() && !self.context.visible(rel) {
                return Err(not_found());
            }
            let full = self.context.root().join(rel);
            let meta = std::fs::symlink_metadata(&full).map_err(|_| not_found())?;
            return Ok(vec![entry_of(rel, &full, meta)?]);
        }
        let depth = rel.split('/').count();
        let mut found = Vec::new();
        let ctx = self.context;
        // Walk down only as deep as the pattern reaches.
        let mut level: Vec<String> = vec![String::new()];
        for d in 0..depth {
            let mut next = Vec::new();
            for dir in &level {
                let full = if dir.is_empty() {
                    ctx.root().to_path_buf()
                } else {
                    ctx.root().join(dir)
                };
                let Ok(rd) = std::fs::read_dir(&full) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for n in names {
                    let p = if dir.is_empty() {
                        n
                    } else {
                        format!("{dir}/{n}")
                    };
                    let head: Vec<&str> = rel.split('/').take(d + 1).collect();
                    let m = crate::ignore::Ignore::from_patterns(&[head.join("/")])
                        .map(|i| i.patterns().first().is_some_and(|_| i.matches(&p)))
                        .unwrap_or(false);
                    if m && ctx.visible(&p) {
                        next.push(p);
                    }
                }
            }
            level = next;
        }
        for p in level {
            let full = ctx.root().join(&p);
            if let Ok(meta) = std::fs::symlink_metadata(&full) {
                found.push(entry_of(&p, &full, meta)?);
            }
        }
        if found.is_empty() {
            return Err(not_found());
        }
        Ok(found)
    }

    fn add(
        &mut self,
        h: &mut Sha256,
        e: &Entry,
        files: &mut Vec<String>,
    ) -> Result<(), SourceError> {
        use std::os::unix::fs::PermissionsExt;
        let mode = e.metadata.permissions().mode() & 0o7777;
        h.update(e.path.as_bytes());
        h.update(b"\0");
        match &e.kind {
            EntryKind::File => {
                let full = self.context.root().join(&e.path);
                let sum = self.cache.hash_file(&full, &e.metadata).map_err(|source| {
                    ContextError::Io {
                        path: full.display().to_string(),
                        source,
                    }
                })?;
                h.update(format!("f {mode:o} {} {sum}\n", e.metadata.len()).as_bytes());
            }
            EntryKind::Dir => h.update(format!("d {mode:o}\n").as_bytes()),
            EntryKind::Symlink(t) => h.update(format!("l {}\n", t.display()).as_bytes()),
            EntryKind::Other => h.update(format!("o {mode:o}\n").as_bytes()),
        }
        files.push(e.path.clone());
        Ok(())
    }
}

fn entry_of(rel: &str, full: &Path, metadata: std::fs::Metadata) -> Result<Entry, SourceError> {
    let ft = metadata.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink(std::fs::read_link(full).map_err(|source| ContextError::Io {
            path: full.display().to_string(),
            source,
        })?)
    } else {
        EntryKind::Other
    };
    Ok(Entry {
        path: rel.to_owned(),
        kind,
        metadata,
        forced: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ignore::Ignore;
    use crate::parser::Dockerfile;
    use crate::plan::{BuildOptions, BuildPlan, Platform, StepKind};
    use std::fs;
    use std::time::Duration;

    fn set_old_mtime(p: &Path) {
        let f = fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    fn write_old(p: &Path, data: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
        set_old_mtime(p);
    }

    /// The keys of every step of a one-stage build over `ctx`.
    fn keys(df: &str, ctx: &Context, cache: &mut FileHashCache) -> Vec<CacheKey> {
        let df = Dockerfile::parse(df).unwrap();
        let o = BuildOptions {
            platform: Platform::parse("linux/amd64").unwrap(),
            build_platform: Platform::parse("linux/amd64").unwrap(),
            ..Default::default()
        };
        let plan = BuildPlan::new(&df, &o).unwrap();
        let mut b = plan.stage_builder(0, None).unwrap();
        let mut parent = CacheKey::base("sha256:base", "linux/amd64");
        let mut out = Vec::new();
        while let Some(step) = b.next_step() {
            let step = step.unwrap();
            let content = match &step.kind {
                StepKind::Copy(c) => Some(
                    ContextHasher::new(ctx, cache)
                        .hash_sources(&c.sources)
                        .unwrap()
                        .digest,
                ),
                _ => None,
            };
            let key = step.cache_key(&parent, content.as_deref());
            if step.kind != StepKind::Metadata {
                b.commit(&step, None, None);
            }
            out.push(key.clone());
            parent = key;
        }
        out
    }

    const DF: &str = "FROM base\nENV A=1\nCOPY requirements.txt /app/\nRUN install\nCOPY src /app/src\nRUN build\n";

    #[test]
    fn a_changed_file_changes_keys_from_its_step_on() {
        let d = tempfile::tempdir().unwrap();
        write_old(&d.path().join("requirements.txt"), "flask\n");
        write_old(&d.path().join("src/app.py"), "print(1)\n");
        write_old(&d.path().join("src/util.py"), "x = 1\n");
        let ctx = Context::new(d.path(), Ignore::empty());
        let mut cache = FileHashCache::in_memory();
        let k1 = keys(DF, &ctx, &mut cache);
        assert_eq!(k1.len(), 5);
        // Same content: same keys, and nothing re-read.
        let misses = cache.misses;
        let k2 = keys(DF, &ctx, &mut cache);
        assert_eq!(k1, k2);
        assert_eq!(cache.misses, misses, "unchanged files are not re-read");
        // A source file changes: keys from `COPY src` on change, not before.
        write_old(&d.path().join("src/app.py"), "print(2)\n");
        let k3 = keys(DF, &ctx, &mut cache);
        assert_eq!(k3[..3], k1[..3]);
        assert_ne!(k3[3], k1[3]);
        assert_ne!(k3[4], k1[4]);
        // requirements.txt changes: from the first COPY on.
        write_old(&d.path().join("requirements.txt"), "flask\nrequests\n");
        let k4 = keys(DF, &ctx, &mut cache);
        assert_eq!(k4[0], k1[0]);
        assert!(k4[1..].iter().zip(&k3[1..]).all(|(a, b)| a != b));
        // The instruction text matters too.
        let k5 = keys(&DF.replace("ENV A=1", "ENV A=2"), &ctx, &mut cache);
        assert!(k5.iter().zip(&k4).all(|(a, b)| a != b));
    }

    #[test]
    fn permissions_and_excluded_files_count() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        write_old(&d.path().join("src/run.sh"), "echo\n");
        write_old(&d.path().join("src/x.log"), "noise\n");
        let ctx = Context::new(d.path(), Ignore::parse("**/*.log").unwrap());
        let mut cache = FileHashCache::in_memory();
        let mut h = ContextHasher::new(&ctx, &mut cache);
        let a = h.hash_sources(&["src".into()]).unwrap();
        assert_eq!(a.files, vec!["src", "src/run.sh"]);
        assert!(a.docker_text.starts_with("dir:"));
        // An excluded file changing changes nothing.
        write_old(&d.path().join("src/x.log"), "more noise\n");
        let mut h = ContextHasher::new(&ctx, &mut cache);
        assert_eq!(h.hash_sources(&["src".into()]).unwrap().digest, a.digest);
        // A mode change does.
        fs::set_permissions(
            d.path().join("src/run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let mut h = ContextHasher::new(&ctx, &mut cache);
        assert_ne!(h.hash_sources(&["src".into()]).unwrap().digest, a.digest);
    }

    #[test]
    fn sources_missing_outside_excluded_and_globs() {
        let d = tempfile::tempdir().unwrap();
        write_old(&d.path().join("a.txt"), "a");
        write_old(&d.path().join("b.txt"), "b");
        write_old(&d.path().join("c.md"), "c");
        write_old(&d.path().join("secret.txt"), "s");
        let ctx = Context::new(d.path(), Ignore::parse("secret.txt").unwrap());
        let mut cache = FileHashCache::in_memory();
        let mut h = ContextHasher::new(&ctx, &mut cache);
        let g = h.hash_sources(&["*.txt".into()]).unwrap();
        assert_eq!(g.files, vec!["a.txt", "b.txt"]);
        assert!(h.hash_sources(&["two.txt".into(), "a.txt".into()]).is_err());
        let e = h.hash_sources(&["missing".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file not found in build context or excluded by .dockerignore: stat missing: file does not exist"
        );
        assert!(matches!(
            h.hash_sources(&["secret.txt".into()]),
            Err(SourceError::NotFound(_))
        ));
        assert!(matches!(
            h.hash_sources(&["../etc/passwd".into()]),
            Err(SourceError::OutsideContext(_))
        ));
        assert!(matches!(
            h.hash_sources(&["*.none".into()]),
            Err(SourceError::NotFound(_))
        ));
        let m = h.hash_sources(&["a.txt".into(), "c.md".into()]).unwrap();
        assert!(m.docker_text.starts_with("multi:"));
        let f = h.hash_sources(&["/a.txt".into()]).unwrap();
        assert!(f.docker_text.starts_with("file:"));
    }

    #[test]
    fn cache_file_round_trip_and_recent_files() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        write_old(&f, "data");
        let store = d.path().join("state/hashes.json");
        let mut c = FileHashCache::open(&store);
        let meta = fs::symlink_metadata(&f).unwrap();
        let sum = c.hash_file(&f, &meta).unwrap();
        c.save().unwrap();
        let mut c2 = FileHashCache::open(&store);
        assert_eq!(c2.hash_file(&f, &meta).unwrap(), sum);
        assert_eq!((c2.hits, c2.misses), (1, 0));
        // Same size and mtime forced back, different inode: re-read.
        fs::remove_file(&f).unwrap();
        write_old(&f, "DATA");
        let meta2 = fs::symlink_metadata(&f).unwrap();
        assert_ne!(c2.hash_file(&f, &meta2).unwrap(), sum);
        // A file written just now is hashed but not remembered.
        let g = d.path().join("g");
        fs::write(&g, "fresh").unwrap();
        let mg = fs::symlink_metadata(&g).unwrap();
        c2.hash_file(&g, &mg).unwrap();
        c2.hash_file(&g, &mg).unwrap();
        assert_eq!(c2.misses, 3);
        // A corrupt cache file is an empty cache.
        fs::write(&store, "not json").unwrap();
        let mut c3 = FileHashCache::open(&store);
        c3.hash_file(&f, &meta2).unwrap();
        assert_eq!(c3.misses, 1);
    }

    #[test]
    fn keys_are_stable_and_distinct() {
        let b = CacheKey::base("sha256:x", "linux/amd64");
        assert_eq!(b, CacheKey::base("sha256:x", "linux/amd64"));
        assert_ne!(b, CacheKey::base("sha256:x", "linux/arm64"));
        assert_ne!(b.child("RUN a", None), b.child("RUN a", Some("")));
        assert_ne!(b.child("RUN a", None), b.child("RUN b", None));
        assert!(b.as_str().starts_with("sha256:") && b.as_str().len() == 71);
    }
}
