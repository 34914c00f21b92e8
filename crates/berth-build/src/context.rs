//! The build context: a directory and its `.dockerignore`. [`Context::walk`] yields what
//! Docker would send — every file, directory and link not excluded, with its metadata —
//! without reading excluded directories unless an exception (`!pattern`) could re-include
//! something below them.
//!
//! Docker's documentation: the Dockerfile and `.dockerignore` can be excluded and are still
//! sent (the builder needs them), but ADD and COPY do not see them. [`Context::keep`] names
//! such files; they come out of the walk with [`Entry::forced`] set, and [`Context::visible`]
//! (what COPY may read) leaves them out.

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

use crate::ignore::{clean, Ignore, IgnoreError};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// A symbolic link and its target (not followed).
    Symlink(PathBuf),
    /// Devices, fifos, sockets.
    Other,
}

/// One file of the context.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the context root, `/`-separated (`src/main.rs`).
    pub path: String,
    pub kind: EntryKind,
    /// `lstat` of it.
    pub metadata: Metadata,
    /// Excluded by `.dockerignore` but sent anyway (the Dockerfile, `.dockerignore`).
    pub forced: bool,
}

/// A context directory and its ignore patterns.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    ignore: Ignore,
    keep: Vec<String>,
}

/// A walk that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

impl Context {
    pub fn new(root: impl Into<PathBuf>, ignore: Ignore) -> Context {
        Context {
            root: root.into(),
            ignore,
            keep: Vec::new(),
        }
    }

    /// The context at `root` with its `.dockerignore` (none when missing). `.dockerignore`
    /// itself is kept.
    pub fn open(root: impl Into<PathBuf>) -> Result<Context, ContextError> {
        let root = root.into();
        let ignore = Ignore::from_file(&root.join(".dockerignore"))?;
        Ok(Context::new(root, ignore).keep(".dockerignore"))
    }

    /// The context at `root` for the Dockerfile at `dockerfile` (relative to the root): its
    /// own `<Dockerfile>.dockerignore` when there is one beside it (BuildKit's rule: it wins
    /// over the context's), else `.dockerignore`. The Dockerfile and the ignore file used
    /// are kept.
    pub fn open_for(
        root: impl Into<PathBuf>,
        dockerfile: Option<&str>,
    ) -> Result<Context, ContextError> {
        let root = root.into();
        if let Some(df) = dockerfile.map(|d| clean(d.trim_start_matches('/'))) {
            let own = format!("{df}.dockerignore");
            let path = root.join(&own);
            if path.is_file() && !path.is_symlink() {
                let ignore = Ignore::from_file(&path)?;
                return Ok(Context::new(root, ignore).keep(&own).keep(&df));
            }
            return Ok(Context::open(root)?.keep(&df));
        }
        Context::open(root)
    }

    /// Sends `rel` even if excluded (the Dockerfile's path inside the context).
    pub fn keep(mut self, rel: &str) -> Context {
        let c = clean(rel.trim_start_matches('/'));
        if !self.keep.contains(&c) {
            self.keep.push(c);
        }
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn ignore(&self) -> &Ignore {
        &self.ignore
    }

    /// Whether COPY may read `rel`: not excluded (forced files count as excluded).
    pub fn visible(&self, rel: &str) -> bool {
        !self.ignore.matches(rel)
    }

    /// Every entry to send, depth first, names in byte order (directories before what they
    /// hold).
    pub fn walk(&self) -> Result<Vec<Entry>, ContextError> {
        let mut out = Vec::new();
        self.walk_with("", &mut |e| {
            out.push(e);
            Ok(())
        })?;
        Ok(out)
    }

    /// Walks below `rel` (a directory of the context; "" for the root), calling `f` per entry.
    pub fn walk_with(
        &self,
        rel: &str,
        f: &mut dyn FnMut(Entry) -> Result<(), ContextError>,
    ) -> Result<(), ContextError> {
        let rel = match clean(rel.trim_start_matches('/')).as_str() {
            "." => String::new(),
            r => r.to_owned(),
        };
        self.walk_dir(&rel, f)?;
        // Kept files that the walk skipped (inside a directory it did not read).
        for k in &self.keep {
            if !rel.is_empty() && !k.starts_with(&format!("{rel}/")) {
                continue;
            }
            if !self.ignore.matches(k) {
                continue;
            }
            let mut parent_read = true;
            let mut p = k.as_str();
            while let Some((d, _)) = p.rsplit_once('/') {
                if self.ignore.matches(d) && !self.ignore.may_include_under(d) {
                    parent_read = false;
                }
                p = d;
            }
            if !parent_read {
                if let Some(e) = self.entry(k, true)? {
                    f(e)?;
                }
            }
        }
        Ok(())
    }

    fn entry(&self, rel: &str, forced: bool) -> Result<Option<Entry>, ContextError> {
        let full = self.root.join(rel);
        let metadata = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&full, e)),
        };
        let ft = metadata.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_symlink() {
            EntryKind::Symlink(std::fs::read_link(&full).map_err(|e| io_err(&full, e))?)
        } else {
            EntryKind::Other
        };
        Ok(Some(Entry {
            path: rel.to_owned(),
            kind,
            metadata,
            forced,
        }))
    }

    fn walk_dir(
        &self,
        rel: &str,
        f: &mut dyn FnMut(Entry) -> Result<(), ContextError>,
    ) -> Result<(), ContextError> {
        let dir = if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        };
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| io_err(&dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(&dir, e))?;
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let excluded = self.ignore.matches(&child);
            let forced = excluded && self.keep.contains(&child);
            let Some(entry) = self.entry(&child, forced)? else {
                continue; // gone since the listing
            };
            let is_dir = entry.kind == EntryKind::Dir;
            if !excluded || forced {
                f(entry)?;
            }
            if is_dir && (!excluded || self.ignore.may_include_under(&child)) {
                self.walk_dir(&child, f)?;
            }
        }
        Ok(())
    }
}

fn io_err(p: &Path, source: io::Error) -> ContextError {
    ContextError::Io {
        path: p.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            if f.ends_with('/') {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, f.as_bytes()).unwrap();
            }
        }
        d
    }

    fn paths(c: &Context) -> Vec<String> {
        c.walk().unwrap().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn walk_yields_included_entries_with_metadata() {
        let d = tree(&[
            "Dockerfile",
            ".dockerignore",
            "src/main.rs",
            "src/lib.rs",
            "target/debug/big",
            "target/keep.txt",
            "docs/a.md",
            "README.md",
        ]);
        fs::write(
            d.path().join(".dockerignore"),
            "target\n!target/keep.txt\n*.md\n!README.md\n.dockerignore\nDockerfile\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("src/main.rs", d.path().join("link")).unwrap();
        let c = Context::open(d.path()).unwrap().keep("Dockerfile");
        let entries = c.walk().unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            vec![
                ".dockerignore",
                "Dockerfile",
                "README.md",
                "docs",
                // `*.md` is anchored at the root: docs/a.md stays.
                "docs/a.md",
                "link",
                "src",
                "src/lib.rs",
                "src/main.rs",
                "target/keep.txt"
            ]
        );
        let df = entries.iter().find(|e| e.path == "Dockerfile").unwrap();
        assert!(df.forced);
        assert!(!c.visible("Dockerfile"));
        let link = entries.iter().find(|e| e.path == "link").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink("src/main.rs".into()));
        let lib = entries.iter().find(|e| e.path == "src/lib.rs").unwrap();
        assert_eq!(lib.metadata.len(), "src/lib.rs".len() as u64);
    }

    #[test]
    fn excluded_directories_are_not_read() {
        let d = tree(&["keep/a", "skip/a", "skip/sub/b"]);
        // An unreadable excluded directory would fail the walk if it were read.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(d.path().join("skip"), fs::Permissions::from_mode(0o000)).unwrap();
        let readable = fs::read_dir(d.path().join("skip")).is_ok(); // root reads anyway
        let c = Context::new(d.path(), Ignore::parse("skip").unwrap());
        assert_eq!(paths(&c), vec!["keep", "keep/a"]);
        fs::set_permissions(d.path().join("skip"), fs::Permissions::from_mode(0o755)).unwrap();
        if !readable {
            // With an exception below it, it must be read, and the error shows.
            let c = Context::new(d.path(), Ignore::parse("skip\n!skip/a").unwrap());
            assert_eq!(paths(&c), vec!["keep", "keep/a", "skip/a"]);
        }
        let c = Context::new(d.path(), Ignore::parse("skip\n!skip/sub/b").unwrap());
        assert_eq!(paths(&c), vec!["keep", "keep/a", "skip/sub/b"]);
        let c = Context::new(d.path(), Ignore::parse("*\n!**/b").unwrap());
        assert_eq!(paths(&c), vec!["skip/sub/b"]);
    }

    #[test]
    fn kept_file_inside_a_skipped_directory() {
        let d = tree(&["build/Dockerfile", "build/junk", "app"]);
        let c = Context::new(d.path(), Ignore::parse("build").unwrap()).keep("build/Dockerfile");
        let e = c.walk().unwrap();
        let names: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.forced)).collect();
        assert_eq!(names, vec![("app", false), ("build/Dockerfile", true)]);
    }

    #[test]
    fn walk_below_a_directory() {
        let d = tree(&["a/x", "a/y.tmp", "b/z"]);
        let c = Context::new(d.path(), Ignore::parse("*.tmp\n**/*.tmp").unwrap());
        let mut got = Vec::new();
        c.walk_with("a", &mut |e| {
            got.push(e.path);
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec!["a/x"]);
    }
}
