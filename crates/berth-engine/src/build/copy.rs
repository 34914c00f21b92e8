//! COPY and ADD onto a step's root, with Docker's rules:
//!
//! - a file source lands at the destination, or inside it when the destination ends with `/`
//!   or is a directory already; a directory source's *content* is copied into the
//!   destination; several sources (or a glob matching several) need a directory destination
//!   ending with `/`;
//! - the context's `.dockerignore` applies; `--from` reads a stage's or image's files instead;
//!   a source that is a symlink is followed (inside its root), links below it are copied as
//!   links;
//! - everything copied belongs to root unless `--chown` (names from the destination's
//!   `/etc/passwd` and `/etc/group`), keeps its mode unless `--chmod`, and its mtime;
//! - ADD unpacks a local tar archive (plain, gzip or zstd) into the destination directory;
//! - heredoc sources (`COPY <<EOF /file`) become files.
//!
//! The sources are written as a tar stream (by a thread) and unpacked through the same
//! confined extraction as `docker cp`: every path is resolved inside the step's root, so
//! neither a symlink in the image nor one in the context can send a file elsewhere. Source
//! paths are resolved inside their own root the same way.

use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_build::{Context, ContextHasher, CopyStep, FileHashCache, Ignore};

use std::collections::HashMap;

use super::download::Downloaded;
use super::workspace::StepRoot;
use crate::confined::extract::{ensure_dir, extract, lookup_owner, Options};
use crate::confined::{join, Root, View};
use crate::Engine;

/// Creates the directory `dir` (WORKDIR) inside the root at `merged`, parents too.
pub(super) fn make_dir(merged: &Path, dir: &str) -> io::Result<()> {
    let view = View::new(Root::open(merged)?);
    let comps = view.resolve_target(dir.as_bytes())?;
    ensure_dir(&view, &comps).map(drop)
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@")
}

/// One source, found.
struct Item {
    /// On the host, symlinks resolved inside the source's root.
    host: PathBuf,
    /// Its path in the source's root (for `.dockerignore` of what is below it).
    rel: String,
    meta: std::fs::Metadata,
    /// Fetched from a URL (never unpacked).
    remote: bool,
}

/// What goes into the tar.
enum Plan {
    Dir {
        item: Item,
        name: String,
        make_dest: bool,
    },
    File {
        item: Item,
        name: String,
    },
    Inline {
        name: String,
        content: Vec<u8>,
    },
    Archive {
        item: Item,
    },
}

fn not_found(src: &str) -> String {
    format!("file not found in build context or excluded by .dockerignore: stat {src}: file does not exist")
}

/// The sources of a COPY/ADD in `root` (`ctx`'s `.dockerignore` applies when it is the
/// context).
fn find_sources(
    sources: &[String],
    root: &Path,
    ctx: Option<&Context>,
    add: bool,
    downloads: &HashMap<String, Downloaded>,
) -> Result<Vec<Item>, String> {
    let plain;
    let context = match ctx {
        Some(c) => c,
        None => {
            plain = Context::new(root, Ignore::empty());
            &plain
        }
    };
    let view = View::new(Root::open(root).map_err(|e| format!("open the source: {e}"))?);
    let mut hashes = FileHashCache::in_memory();
    let mut items = Vec::new();
    for src in sources {
        if is_url(src) {
            let d = match (add, downloads.get(src)) {
                (true, Some(d)) => d,
                (true, None) => return Err(format!("ADD {src}: the file was not fetched")),
                (false, _) => return Err(format!("COPY {src}: a URL is only allowed with ADD")),
            };
            let meta = std::fs::metadata(&d.path).map_err(|e| e.to_string())?;
            items.push(Item {
                host: d.path.clone(),
                rel: d.name.clone(),
                meta,
                remote: true,
            });
            continue;
        }
        let rels: Vec<String> = if has_glob(src) {
            ContextHasher::new(context, &mut hashes)
                .source_entries(src)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|e| e.path)
                .collect()
        } else {
            let rel = berth_build::ignore::clean(src.trim_start_matches('/'));
            if rel == ".." || rel.starts_with("../") {
                return Err(format!(
                    "Forbidden path outside the build context: {src} ()"
                ));
            }
            let rel = if rel == "." { String::new() } else { rel };
            if ctx.is_some() && !rel.is_empty() && !context.visible(&rel) {
                return Err(not_found(src));
            }
            vec![rel]
        };
        for rel in rels {
            let comps = view
                .resolve(rel.as_bytes(), true)
                .map_err(|_| not_found(src))?;
            let host = root.join(String::from_utf8_lossy(&join(&comps)).trim_start_matches('/'));
            let meta = std::fs::symlink_metadata(&host).map_err(|_| not_found(src))?;
            items.push(Item {
                host,
                rel,
                meta,
                remote: false,
            });
        }
    }
    Ok(items)
}

/// Whether the file at `path` is a tar archive (maybe compressed) ADD unpacks.
fn is_archive(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok((_, mut stream)) = berth_image::compression::decompressed(f) else {
        return false;
    };
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match stream.read(&mut block[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && block[257..262] == *b"ustar"
}

fn join_name(dir: &str, leaf: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        leaf.to_owned()
    } else {
        format!("{dir}/{leaf}")
    }
}

/// Writes the tar of the plan.
struct TarOut<W: Write> {
    tar: tar::Builder<W>,
    chmod: Option<u32>,
    ctx: Option<Context>,
    /// `--exclude` patterns, matched against paths inside the source directory being copied.
    exclude: Option<Ignore>,
}

impl<W: Write> TarOut<W> {
    fn header(&self, meta: &std::fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        let mode = meta.permissions().mode() & 0o7777;
        h.set_mode(match kind {
            tar::EntryType::Symlink => mode,
            _ => self.chmod.unwrap_or(mode),
        });
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    }

    fn add(&mut self, host: &Path, meta: &std::fs::Metadata, name: &str) -> io::Result<()> {
        let ft = meta.file_type();
        if ft.is_file() {
            let mut h = self.header(meta, tar::EntryType::Regular);
            let f = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(host)?;
            h.set_size(f.metadata()?.len());
            self.tar.append_data(&mut h, name, f.take(meta.len()))
        } else if ft.is_symlink() {
            let mut h = self.header(meta, tar::EntryType::Symlink);
            let target = std::fs::read_link(host)?;
            self.tar.append_link(&mut h, name, target)
        } else if ft.is_dir() {
            let mut h = self.header(meta, tar::EntryType::Directory);
            self.tar
                .append_data(&mut h, format!("{name}/"), io::empty())
        } else {
            Ok(()) // devices, fifos and sockets are not copied
        }
    }

    /// The content of directory `host` (at `rel` in its source) under `name`.
    fn add_children(&mut self, host: &Path, rel: &str, name: &str) -> io::Result<()> {
        self.add_children_of(host, rel, "", name)
    }

    /// `inside`: `rel` relative to the directory the copy started from (for `--exclude`).
    fn add_children_of(
        &mut self,
        host: &Path,
        rel: &str,
        inside: &str,
        name: &str,
    ) -> io::Result<()> {
        let mut names: Vec<_> = std::fs::read_dir(host)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let leaf = n.to_string_lossy().into_owned();
            let child_rel = join_name(rel, &leaf);
            let child = host.join(&n);
            let meta = std::fs::symlink_metadata(&child)?;
            let child_inside = join_name(inside, &leaf);
            if self
                .exclude
                .as_ref()
                .is_some_and(|x| x.matches(&child_inside))
            {
                continue;
            }
            let visible = self.ctx.as_ref().is_none_or(|c| c.visible(&child_rel));
            let child_name = join_name(name, &leaf);
            if meta.is_dir() {
                if visible {
                    self.add(&child, &meta, &child_name)?;
                }
                // An excluded directory may still hold files an exception brings back.
                let excluded_dir = !visible
                    && self
                        .ctx
                        .as_ref()
                        .is_some_and(|c| !c.ignore().has_exclusions());
                if !excluded_dir {
                    self.add_children_of(&child, &child_rel, &child_inside, &child_name)?;
                }
            } else if visible {
                self.add(&child, &meta, &child_name)?;
            }
        }
        Ok(())
    }

    fn inline(&mut self, name: &str, content: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(self.chmod.unwrap_or(0o644));
        h.set_size(content.len() as u64);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        self.tar.append_data(&mut h, name, content)
    }
}

impl Engine {
    /// Runs a COPY/ADD on `root`: from the context, or from `from` (a stage's or image's
    /// root) with `--from`.
    pub(super) fn copy_step(
        &self,
        root: &StepRoot,
        c: &CopyStep,
        ctx: &Context,
        from: Option<&StepRoot>,
        downloads: &HashMap<String, Downloaded>,
    ) -> Result<(), String> {
        let merged = root.merged();
        let view = View::new(Root::open(&merged).map_err(|e| e.to_string())?);
        let owner = match &c.chown {
            Some(u) => Some(lookup_owner(&view, u).ok_or_else(|| {
                format!("unable to convert uid/gid chown string to host mapping: {u}")
            })?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| format!("invalid chmod parameter {m:?}: use octal"))?,
            ),
            None => None,
        };
        let (src_root, src_ctx) = match from {
            Some(r) => (r.merged(), None),
            None => (ctx.root().to_path_buf(), Some(ctx)),
        };
        let exclude = match c.exclude.is_empty() {
            true => None,
            false => {
                Some(Ignore::from_patterns(&c.exclude).map_err(|e| format!("--exclude: {e}"))?)
            }
        };
        let mut items = find_sources(&c.sources, &src_root, src_ctx, c.add, downloads)?;
        // A source that is itself excluded (by name, or by its path) is not copied.
        if let Some(x) = &exclude {
            items.retain(|i| {
                let base = Path::new(&i.rel)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                i.rel.is_empty() || !(x.matches(&base) || x.matches(&i.rel))
            });
        }
        let count = items.len() + c.inline.len();
        let dest_text = c.dest.clone();
        let dest_comps = view
            .resolve_target(dest_text.as_bytes())
            .map_err(|e| format!("destination {dest_text}: {e}"))?;
        let dest_name = String::from_utf8_lossy(&join(&dest_comps))
            .trim_start_matches('/')
            .to_owned();
        let dest_exists_dir = view.open_dir(&dest_comps).is_ok();
        let dest_is_dir = dest_text.ends_with('/') || dest_exists_dir;
        if count > 1 && !dest_is_dir {
            return Err(format!(
                "When using {} with more than one source file, the destination must be a directory and end with a /",
                if c.add { "ADD" } else { "COPY" }
            ));
        }
        let mut plans = Vec::new();
        for item in items {
            let base = Path::new(&item.rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if c.parents {
                // --parents: the source's path (in its root) is kept under the destination.
                let name = join_name(&dest_name, &item.rel);
                if item.meta.is_dir() {
                    plans.push(Plan::Dir {
                        make_dest: !item.rel.is_empty() || !dest_exists_dir,
                        item,
                        name,
                    });
                } else {
                    plans.push(Plan::File { item, name });
                }
            } else if item.meta.is_dir() {
                plans.push(Plan::Dir {
                    item,
                    name: dest_name.clone(),
                    make_dest: !dest_exists_dir,
                });
            } else if c.add && !item.remote && c.unpack != Some(false) && is_archive(&item.host) {
                plans.push(Plan::Archive { item });
            } else {
                let name = if dest_is_dir {
                    join_name(&dest_name, &base)
                } else {
                    dest_name.clone()
                };
                plans.push(Plan::File { item, name });
            }
        }
        for i in &c.inline {
            let name = if dest_is_dir {
                join_name(&dest_name, &i.name)
            } else {
                dest_name.clone()
            };
            plans.push(Plan::Inline {
                name,
                content: i.content.clone().into_bytes(),
            });
        }
        let opts = Options {
            no_overwrite_dir_non_dir: false,
            owner: Some(owner.unwrap_or((0, 0))),
            ids: None,
        };
        // Archives unpack with their own owners (unless --chown), into the destination.
        let (archives, plans): (Vec<Plan>, Vec<Plan>) = plans
            .into_iter()
            .partition(|p| matches!(p, Plan::Archive { .. }));
        let (reader, writer) = super::pipe().map_err(|e| e.to_string())?;
        let tar_ctx = src_ctx.cloned();
        let producer = std::thread::spawn(move || -> io::Result<()> {
            let mut out = TarOut {
                tar: tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, writer)),
                chmod,
                ctx: tar_ctx,
                exclude,
            };
            for p in plans {
                match p {
                    Plan::Dir {
                        item,
                        name,
                        make_dest,
                    } => {
                        if make_dest && !name.is_empty() {
                            out.add(&item.host, &item.meta, &name)?;
                        }
                        out.add_children(&item.host, &item.rel, &name)?;
                    }
                    Plan::File { item, name } => out.add(&item.host, &item.meta, &name)?,
                    Plan::Inline { name, content } => out.inline(&name, &content)?,
                    Plan::Archive { .. } => {}
                }
            }
            out.tar.into_inner()?.flush()
        });
        let extracted = extract(&view, &[], reader, opts).map_err(|e| e.to_string());
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the copy panicked")));
        extracted?;
        produced.map_err(|e| format!("reading the sources: {e}"))?;
        for a in archives {
            let Plan::Archive { item } = a else { continue };
            let f = std::fs::File::open(&item.host).map_err(|e| e.to_string())?;
            let (_, stream) =
                berth_image::compression::decompressed(f).map_err(|e| e.to_string())?;
            let dest = ensure_dir(&view, &dest_comps).map(drop);
            dest.map_err(|e| format!("destination {dest_text}: {e}"))?;
            extract(
                &view,
                &dest_comps,
                stream,
                Options {
                    no_overwrite_dir_non_dir: false,
                    owner,
                    ids: None,
                },
            )
            .map_err(|e| format!("unpacking {}: {e}", item.rel))?;
        }
        Ok(())
    }
}
