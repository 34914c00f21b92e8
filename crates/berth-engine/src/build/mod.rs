//! `docker build` (issue 7): the engine side of the builder. `berth-build` parses the
//! Dockerfile and plans the stages; this module runs the plan.
//!
//! - Each stage starts from its base (an image, pulled when missing or with `--pull`; an
//!   earlier stage's result; `scratch`) and walks its steps. Metadata steps only change the
//!   config. RUN, COPY/ADD and WORKDIR run on a `workspace::StepRoot`: an overlay of the
//!   stage's snapshots so far and a fresh upper dir; afterwards the upper dir becomes the
//!   step's layer (gzip blob in the content store) and its snapshot (COPY/WORKDIR: the upper
//!   dir itself is moved into the snapshot store; RUN: unpacked from the layer, which leaves
//!   out the runtime's mount points).
//! - Every step has a cache key (its parent's key, the expanded instruction, the content it
//!   reads); [`cache::BuildCache`] remembers what each key produced, so a rebuild reuses it
//!   and a change invalidates only the steps from it on.
//! - Independent stages of the plan's waves build at the same time: the first stage of a wave
//!   streams its output live, the others' output follows when they finish.
//! - The result is stored and named only when every step succeeded: a failed build tags
//!   nothing and leaves no image.
//!
//! The output is the classic builder's (`Step 2/5 : RUN …`, ` ---> Running in …`,
//! `Successfully built …`), which `docker build` with `DOCKER_BUILDKIT=0` prints as is, plus
//! one line per step saying `CACHED` or how long it took.
//!
//! Modules: `context` (the context received), `stages` (a build's run: stages, steps, the
//! cache lookups), `run` (RUN), `copy` (COPY/ADD), `download` (ADD of URLs),
//! `workspace` (a step's overlay), [`cache`] (the entries), `maintenance` (the cache's
//! upkeep: collector roots, size bound, prune, `system df`).

pub mod cache;
mod context;
mod copy;
pub(crate) mod download;
mod maintenance;
mod run;
mod squash;
mod stages;
mod workspace;

use std::sync::Mutex;

use crate::error::EngineError;
use berth_api::build::{BuildContext, BuildRequest};
use berth_api::distribution::PullRequest;
use berth_api::BackendResult;
use berth_build::{BuildOptions, BuildPlan, Context, Dockerfile, FileHashCache, Platform};
use berth_core::{Digest, Reference};
use berth_image::oci::{Descriptor, ImageConfig};
use tokio::sync::mpsc::UnboundedSender;

use crate::Engine;
use stages::{Build, Scratch};

/// The cache's size bound unless the daemon is told otherwise (`--builder-cache-max`):
/// Docker's cache has none.
pub const DEFAULT_CACHE_MAX: u64 = 20 << 30;

fn img_err(e: berth_image::ImageError) -> EngineError {
    EngineError::from_kind(&e)
}

fn internal(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::internal(format!("{what}: {e}"))
}

/// A pipe (read end, write end), close-on-exec.
pub(crate) fn pipe() -> std::io::Result<(std::fs::File, std::fs::File)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((r.into(), w.into()))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn short(d: &str) -> &str {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    hex.get(..12).unwrap_or(hex)
}

/// Where a build's messages go: Docker's JSON message lines.
#[derive(Clone)]
pub(crate) struct Out {
    tx: UnboundedSender<String>,
    quiet: bool,
}

impl Out {
    /// Build output text (suppressed with `-q`).
    pub(crate) fn text(&self, text: &str) {
        if !self.quiet {
            let _ = self
                .tx
                .send(serde_json::json!({ "stream": text }).to_string());
        }
    }

    fn line(&self, text: &str) {
        self.text(&format!("{text}\n"));
    }

    /// Whether the client is gone (the build then stops).
    pub(crate) fn closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// An empty message: while a step is silent, it is what lets the server notice that the
    /// client went away (a connection's end shows when writing to it fails).
    pub(crate) fn keepalive(&self) {
        let _ = self
            .tx
            .send(serde_json::json!({ "stream": "" }).to_string());
    }
}

/// Why a build stopped.
type Result<T> = std::result::Result<T, EngineError>;

impl Engine {
    fn build_dir(&self) -> std::path::PathBuf {
        self.root().join("build")
    }

    /// An image by name for FROM or `COPY --from`, pulled when missing (or always, with
    /// `--pull`). Returns its ID, config and layers.
    fn build_base(
        &self,
        name: &str,
        pull: bool,
        platform: Option<&Platform>,
        out: &Out,
    ) -> Result<(Digest, ImageConfig, Vec<Descriptor>)> {
        let local = self.images.resolve(name).map_err(img_err)?;
        let id = match local {
            Some(id) if !pull => id,
            _ => {
                let r: Reference = name.parse().map_err(|e| EngineError::from_kind(&e))?;
                let tag = match (&r.digest, &r.tag) {
                    (Some(d), _) => d.to_string(),
                    (None, Some(t)) => t.clone(),
                    (None, None) => "latest".to_owned(),
                };
                let req = PullRequest {
                    from_image: r.name(),
                    tag: Some(tag),
                    platform: platform.map(|p| p.to_string()),
                    auth: None,
                };
                match self.pull_image(req, out.tx.clone()) {
                    Ok(()) => {}
                    // With --pull, a local image is still good when the registry is not.
                    Err(_) if local.is_some() => {}
                    Err(e) => return Err(e),
                }
                self.images.lookup(name).map_err(img_err)?
            }
        };
        let config = self.images.config(&id).map_err(img_err)?;
        let layers = self.image_layers(&id)?;
        Ok((id, config, layers))
    }

    /// The layer descriptors of a stored image.
    fn image_layers(&self, id: &Digest) -> Result<Vec<Descriptor>> {
        let index = self.images.index().map_err(img_err)?;
        let record = index
            .images
            .get(id)
            .ok_or_else(|| EngineError::not_found(format!("No such image: {id}")))?;
        let manifest: berth_image::oci::Manifest = serde_json::from_slice(
            &self
                .images
                .content
                .read_blob(&record.manifest)
                .map_err(img_err)?,
        )
        .map_err(|e| internal("the image's manifest", e))?;
        Ok(manifest.layers)
    }

    /// `POST /build`.
    pub(crate) fn build(
        &self,
        req: BuildRequest,
        context: BuildContext,
        tx: UnboundedSender<String>,
    ) -> Result<()> {
        let out = Out {
            tx,
            quiet: req.quiet,
        };
        // Names are checked before anything runs.
        let names = req
            .tags
            .iter()
            .map(|t| {
                let mut r: Reference = t
                    .parse()
                    .map_err(|e| EngineError::invalid(format!("invalid tag {t:?}: {e}")))?;
                if r.digest.is_some() {
                    return Err(EngineError::invalid(format!(
                        "invalid tag {t:?}: a tag cannot name a digest"
                    )));
                }
                if r.tag.is_none() {
                    r.tag = Some("latest".into());
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>>>()?;
        let received = context::Received::open(self, context)?;
        let (df_text, df_rel) = received.dockerfile(&req.dockerfile)?;
        let df = Dockerfile::parse(&df_text).map_err(|e| EngineError::invalid(e.to_string()))?;
        let mut opts = BuildOptions {
            target: req.target.clone(),
            labels: req.labels.clone(),
            build_args: req.build_args.clone(),
            ..Default::default()
        };
        if let Some(p) = &req.platform {
            opts.platform = Platform::parse(p).map_err(EngineError::invalid)?;
        }
        let plan = BuildPlan::new(&df, &opts).map_err(|e| EngineError::invalid(e.to_string()))?;
        let ctx = Context::open_for(received.root(), df_rel.as_deref())
            .map_err(|e| EngineError::invalid(format!("the context's .dockerignore: {e}")))?;
        let hashes = if received.in_place() {
            FileHashCache::open(self.build_dir().join("hashes.json"))
        } else {
            FileHashCache::in_memory()
        };
        let mut first_step = vec![0; plan.stages.len()];
        let mut total = 0;
        for &i in &plan.order {
            first_step[i] = total;
            total += 1 + plan.stages[i].instructions.len();
        }
        let build = Build {
            engine: self,
            req: &req,
            context: ctx,
            hashes: Mutex::new(hashes),
            cache: self.build_cache(),
            results: Mutex::new(vec![None; plan.stages.len()]),
            pins: Mutex::new(Vec::new()),
            downloads: Mutex::default(),
            scratch: Scratch(self.build_dir().join("work").join(format!(
                    "files-{}",
                    berth_core::ContainerId::generate()
                        .map_err(|e| internal("an ID", e))?
                        .as_str()
                ))),
            first_step,
            total_steps: total,
            cache_sources: stages::cache_sources(self, &req.cache_from),
            plan,
        };
        // The Dockerfile is good: from here on the answer is a 200 stream and failures (a
        // pull, a RUN) are reported in it, as Docker's builder does even with `q=1`.
        out.keepalive();
        for w in &build.plan.warnings {
            out.text(&format!("[Warning] {w}\n"));
        }
        let result = build.run(&out);
        if received.in_place() {
            let _ = build
                .hashes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .save();
        }
        drop(received);
        let built = result?;
        let created = now();
        // A build whose every step was the same as an earlier one's gives that build's image
        // (as the classic builder's chain of cached images does), not a copy with a new date.
        let earlier = match req.no_cache || req.squash {
            true => None,
            false => self.earlier_result(&built.key),
        };
        let id = match earlier {
            Some((id, manifest)) => {
                self.images
                    .add_image(&manifest, &names, &created)
                    .map_err(img_err)?;
                id.to_string()
            }
            None => {
                let config = build.finish_config(&built, &created);
                let squashed = match req.squash {
                    true => self.squash(&built, config.clone())?,
                    false => None,
                };
                let added = match squashed {
                    Some(s) => {
                        self.store_image(&s.config, s.layers, s.staged.as_ref(), &names, &created)?
                    }
                    None => {
                        self.store_image(&config, built.layers.clone(), None, &names, &created)?
                    }
                };
                if !req.squash {
                    self.remember_result(&built.key, &added.id);
                }
                added.id.to_string()
            }
        };
        drop(build);
        let _ = out
            .tx
            .send(serde_json::json!({ "aux": { "ID": id } }).to_string());
        if req.quiet {
            let _ = out
                .tx
                .send(serde_json::json!({ "stream": format!("{id}\n") }).to_string());
        }
        out.line(&format!("Successfully built {}", short(&id)));
        for n in &names {
            out.line(&format!("Successfully tagged {}", n.familiar()));
            self.image_event(
                crate::images::ImageAction::Tag,
                &id,
                [("name".to_owned(), n.familiar())].into(),
            );
        }
        self.evict_build_cache(Some(self.build_cache_max), |_| true);
        Ok(())
    }
}

impl berth_api::build::BuildBackend for Engine {
    fn build_image(
        &self,
        req: BuildRequest,
        context: BuildContext,
        out: UnboundedSender<String>,
    ) -> BackendResult<()> {
        Ok(self.build(req, context, out)?)
    }

    fn prune_build_cache(
        &self,
        all: bool,
        keep_storage: Option<u64>,
    ) -> BackendResult<bollard_stubs::models::BuildPruneResponse> {
        Ok(self.prune_build(all, keep_storage))
    }
}
