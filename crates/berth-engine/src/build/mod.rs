//! `docker build` (issue 7): the engine side of the builder. `berth-build` parses the
//! Dockerfile and plans the stages; this module runs the plan.
//!
//! - Each stage starts from its base (an image, pulled when missing or with `--pull`; an
//!   earlier stage's result; `scratch`) and walks its steps. Metadata steps only change the
//!   config. RUN, COPY/ADD and WORKDIR run on a [`workspace::StepRoot`]: an overlay of the
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

pub mod cache;
mod context;
mod copy;
mod download;
mod run;
mod workspace;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use berth_api::build::{BuildContext, BuildRequest};
use berth_api::distribution::{DistributionBackend, PullRequest};
use berth_api::ApiError;
use berth_build::{
    Base, BuildOptions, BuildPlan, CacheKey, Context, ContextHasher, Dockerfile, FileHashCache,
    Platform, Source, Step, StepKind,
};
use berth_core::{Digest, Reference};
use berth_image::oci::{Descriptor, ImageConfig, MEDIA_LAYER_GZIP};
use berth_image::snapshot::chain_id;
use berth_image::store::Pin;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use crate::Engine;
use cache::BuildCache;
use workspace::StepRoot;

/// The cache's size bound unless the daemon is told otherwise (`--builder-cache-max`):
/// Docker's cache has none.
pub const DEFAULT_CACHE_MAX: u64 = 20 << 30;

fn img_err(e: berth_image::ImageError) -> ApiError {
    ApiError::from_kind(&e)
}

fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
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
}

/// A stage's result (or the state of one being built).
#[derive(Debug, Clone)]
struct Built {
    config: ImageConfig,
    layers: Vec<Descriptor>,
    /// The top snapshot (chain ID); None: no layers.
    chain: Option<Digest>,
    key: CacheKey,
}

/// What a build runs with.
struct Build<'a> {
    engine: &'a Engine,
    req: &'a BuildRequest,
    plan: BuildPlan,
    context: Context,
    /// Context file hashes (kept between builds for a context read in place).
    hashes: Mutex<FileHashCache>,
    cache: BuildCache,
    results: Mutex<Vec<Option<Built>>>,
    /// Everything this build uses or made, kept from collections until it is over.
    pins: Mutex<Vec<Pin>>,
    /// `ADD <url>` files fetched by this build, by URL.
    downloads: Mutex<std::collections::HashMap<String, download::Downloaded>>,
    /// This build's own files (downloads), removed when it ends.
    scratch: Scratch,
    /// Step numbers: the first step of each stage (FROM counts, as in Docker's output).
    first_step: Vec<usize>,
    total_steps: usize,
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Why a build stopped.
type Result<T> = std::result::Result<T, ApiError>;

impl Engine {
    fn build_dir(&self) -> std::path::PathBuf {
        self.root().join("build")
    }

    pub(crate) fn build_cache(&self) -> BuildCache {
        BuildCache::open(self.build_dir().join("cache"))
    }

    /// Registers the build cache's layers as roots for image collections.
    pub(crate) fn register_build_cache(&self) {
        let cache = self.build_cache();
        self.images.set_roots(Arc::new(move || cache.roots()));
        // Work dirs of builds interrupted by a crash.
        let work = self.build_dir().join("work");
        if let Ok(rd) = std::fs::read_dir(&work) {
            for e in rd.flatten() {
                let _ =
                    nix::mount::umount2(&e.path().join("merged"), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let _ = std::fs::remove_dir_all(self.build_dir().join("contexts"));
    }

    /// Drops cache entries `may_go` accepts beyond `keep` bytes (all with None), least
    /// recently used first, then the data no image and no entry needs. Returns the keys
    /// dropped and the bytes freed.
    fn evict_build_cache(
        &self,
        keep: Option<u64>,
        may_go: impl Fn(&cache::Entry) -> bool,
    ) -> (Vec<String>, u64) {
        let (removed, _) = self.build_cache().evict(keep, may_go);
        if removed.is_empty() {
            return (removed, 0);
        }
        let freed = self.collect_image_garbage();
        (removed, freed)
    }

    /// Snapshots (chain IDs) images use.
    fn image_chains(&self) -> std::collections::HashSet<Digest> {
        let mut chains = std::collections::HashSet::new();
        if let Ok(views) = self.images.list() {
            for v in views {
                chains.extend(berth_image::store::chain_ids(&v.config));
            }
        }
        chains
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
                let r: Reference = name.parse().map_err(|e| ApiError::from_kind(&e))?;
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
            .ok_or_else(|| ApiError::not_found(format!("No such image: {id}")))?;
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
                    .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?;
                if r.digest.is_some() {
                    return Err(ApiError::bad_request(format!(
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
        let df = Dockerfile::parse(&df_text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut opts = BuildOptions {
            target: req.target.clone(),
            labels: req.labels.clone(),
            build_args: req.build_args.clone(),
            ..Default::default()
        };
        if let Some(p) = &req.platform {
            opts.platform = Platform::parse(p)
                .map_err(|e| ApiError::bad_request(format!("invalid platform {p:?}: {e}")))?;
        }
        let plan = BuildPlan::new(&df, &opts).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut ctx = Context::open(received.root())
            .map_err(|e| ApiError::bad_request(format!("the context's .dockerignore: {e}")))?
            .keep(".dockerignore");
        if let Some(rel) = &df_rel {
            ctx = ctx.keep(rel);
        }
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
            plan,
        };
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
        let earlier = match req.no_cache {
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
                let added =
                    self.store_image(&config, built.layers.clone(), None, &names, &created)?;
                self.remember_result(&built.key, &added.id);
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

    fn result_file(&self, key: &CacheKey) -> std::path::PathBuf {
        let hex = key.as_str().trim_start_matches("sha256:");
        self.build_dir().join("results").join(hex)
    }

    /// The image an earlier build with the same final cache key made, if it is still there
    /// (its ID and manifest).
    fn earlier_result(&self, key: &CacheKey) -> Option<(Digest, Digest)> {
        let text = std::fs::read_to_string(self.result_file(key)).ok()?;
        let id: Digest = text.trim().parse().ok()?;
        let index = self.images.index().ok()?;
        let manifest = index.images.get(&id)?.manifest.clone();
        Some((id, manifest))
    }

    fn remember_result(&self, key: &CacheKey, id: &Digest) {
        let path = self.result_file(key);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, id.to_string());
    }

    /// The cache's entries as `system df` lists them (Docker's BuildCache records): a layer an
    /// image also uses is `Shared` (pruning the cache does not free it).
    pub(crate) fn build_cache_usage(&self) -> Vec<serde_json::Value> {
        let image_chains = self.image_chains();
        let time = |t: std::time::SystemTime| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        };
        self.build_cache()
            .entries()
            .into_iter()
            .map(|(e, used, _)| {
                let hex = e.key.trim_start_matches("sha256:");
                serde_json::json!({
                    "ID": hex.get(..25).unwrap_or(hex),
                    "Parents": null,
                    "Type": "regular",
                    "Description": e.created_by.clone().unwrap_or_default(),
                    "InUse": false,
                    "Shared": e.chain.as_ref().is_some_and(|c| image_chains.contains(c)),
                    "Size": e.size,
                    "CreatedAt": time(used),
                    "LastUsedAt": time(used),
                    "UsageCount": 1,
                })
            })
            .collect()
    }

    /// `builder prune`: with `all`, every entry; with `keep` (`--keep-storage`), the least
    /// recently used until the rest fits; otherwise the dangling ones — entries whose layer
    /// no image uses (removing the others would lose cache and free nothing).
    pub(crate) fn prune_build(&self, all: bool, keep: Option<u64>) -> serde_json::Value {
        let used = self.image_chains();
        let (removed, freed) = self.evict_build_cache(keep, |e| {
            all || keep.is_some() || e.chain.as_ref().is_none_or(|c| !used.contains(c))
        });
        // Records of earlier results whose image is gone (all of them with everything).
        if let Ok(rd) = std::fs::read_dir(self.build_dir().join("results")) {
            let index = self.images.index().ok();
            for e in rd.flatten() {
                let alive = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<Digest>().ok())
                    .is_some_and(|id| index.as_ref().is_some_and(|i| i.images.contains_key(&id)));
                if (all && keep.is_none()) || !alive {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        serde_json::json!({ "CachesDeleted": removed, "SpaceReclaimed": freed })
    }
}

impl Build<'_> {
    fn pin(&self, digests: Vec<Digest>) {
        let pin = self.engine.images.pin(digests);
        self.pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pin);
    }

    fn result(&self, stage: usize) -> Option<Built> {
        self.results.lock().unwrap_or_else(|p| p.into_inner())[stage].clone()
    }

    /// Builds the stages wave by wave; returns the target's result.
    fn run(&self, out: &Out) -> Result<Built> {
        for wave in &self.plan.waves {
            if let [only] = wave.as_slice() {
                self.stage(*only, out)?;
                continue;
            }
            // The first stage streams live; the others are buffered and follow in order. The
            // threads enter the daemon's runtime (pulls of base images need it).
            let runtime = tokio::runtime::Handle::try_current().ok();
            let outcomes = std::thread::scope(|s| {
                let mut handles = Vec::new();
                for (n, &stage) in wave.iter().enumerate() {
                    let (stage_out, rx) = if n == 0 {
                        (out.clone(), None)
                    } else {
                        let (tx, rx) = unbounded_channel();
                        (
                            Out {
                                tx,
                                quiet: out.quiet,
                            },
                            Some(rx),
                        )
                    };
                    let runtime = runtime.clone();
                    handles.push((
                        s.spawn(move || {
                            let _entered = runtime.as_ref().map(|h| h.enter());
                            self.stage(stage, &stage_out)
                        }),
                        rx,
                    ));
                }
                handles
                    .into_iter()
                    .map(|(h, rx)| {
                        let r = h
                            .join()
                            .unwrap_or_else(|_| Err(ApiError::internal("a build stage panicked")));
                        (r, rx)
                    })
                    .collect::<Vec<_>>()
            });
            let mut first_err = None;
            for (r, rx) in outcomes {
                if let Some(mut rx) = rx {
                    while let Ok(l) = rx.try_recv() {
                        let _ = out.tx.send(l);
                    }
                }
                if let (Err(e), None) = (r, &first_err) {
                    first_err = Some(e);
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        }
        self.result(self.plan.target)
            .ok_or_else(|| ApiError::internal("the target stage was not built"))
    }

    /// Where a stage starts.
    fn base(&self, stage: usize, out: &Out) -> Result<Built> {
        let s = &self.plan.stages[stage];
        let platform = self.plan.stage_platform(stage);
        match &s.base {
            Base::Scratch => Ok(Built {
                config: self
                    .plan
                    .stage_builder(stage, None)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?
                    .config()
                    .clone(),
                layers: Vec::new(),
                chain: None,
                key: CacheKey::base("scratch", &platform.to_string()),
            }),
            Base::Stage(i) => self
                .result(*i)
                .ok_or_else(|| ApiError::internal(format!("stage {i} was not built"))),
            Base::Image(name) => {
                let (id, config, layers) =
                    self.engine
                        .build_base(name, self.req.pull, Some(&platform), out)?;
                let chain = berth_image::store::chain_ids(&config).pop();
                let mut pinned: Vec<Digest> = berth_image::store::chain_ids(&config);
                pinned.extend(layers.iter().map(|l| l.digest.clone()));
                pinned.push(id.clone());
                self.pin(pinned);
                Ok(Built {
                    key: CacheKey::base(&id.to_string(), &platform.to_string()),
                    config,
                    layers,
                    chain,
                })
            }
        }
    }

    /// The root of a source for `COPY --from` or `RUN --mount from=`, mounted.
    fn source_root(&self, src: &Source, out: &Out) -> Result<StepRoot> {
        let chain = match src {
            Source::Stage(i) => {
                self.result(*i)
                    .ok_or_else(|| ApiError::internal(format!("stage {i} was not built")))?
                    .chain
            }
            Source::Image(name) => {
                let (_, config, layers) = self.engine.build_base(name, false, None, out)?;
                let chains = berth_image::store::chain_ids(&config);
                let mut pinned = chains.clone();
                pinned.extend(layers.into_iter().map(|l| l.digest));
                self.pin(pinned);
                chains.last().cloned()
            }
        };
        self.step_root(chain.as_ref())
    }

    /// A fresh step root over `chain`.
    fn step_root(&self, chain: Option<&Digest>) -> Result<StepRoot> {
        let lowers = match chain {
            Some(c) => self
                .engine
                .images
                .snapshots
                .lower_dirs(c)
                .map_err(img_err)?,
            None => Vec::new(),
        };
        let id = berth_core::ContainerId::generate().map_err(|e| internal("an ID", e))?;
        let dir = self.engine.build_dir().join("work").join(id.as_str());
        StepRoot::mount(dir, &lowers).map_err(|e| internal("prepare the step", e))
    }

    /// Builds one stage.
    fn stage(&self, stage: usize, out: &Out) -> Result<()> {
        let s = &self.plan.stages[stage];
        let mut number = self.first_step[stage] + 1;
        out.line(&format!(
            "Step {number}/{} : {}",
            self.total_steps,
            s.from.original.trim()
        ));
        let mut cur = self.base(stage, out)?;
        out.line(&format!(" ---> {}", short(cur.key.as_str())));
        let base_config = match s.base {
            Base::Scratch => None,
            _ => Some(cur.config.clone()),
        };
        let mut builder = self
            .plan
            .stage_builder(stage, base_config.as_ref())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        while let Some(step) = builder.next_step() {
            let step = step.map_err(|e| ApiError::bad_request(e.to_string()))?;
            if out.closed() {
                return Err(ApiError::bad_request("the build was canceled"));
            }
            if step.line > 0 {
                number += 1;
                out.line(&format!(
                    "Step {number}/{} : {}",
                    self.total_steps,
                    step.text.trim()
                ));
            }
            let started = Instant::now();
            let key = match &step.kind {
                StepKind::Metadata => step.cache_key(&cur.key, None),
                _ => {
                    let content = self.content_of(&step, out)?;
                    let key = step.cache_key(&cur.key, content.as_ref().map(|c| c.0.as_str()));
                    let hit = match self.req.no_cache {
                        true => None,
                        false => self.cached(&key),
                    };
                    let (entry, hit) = match hit {
                        Some(e) => (e, true),
                        None => {
                            let shell = builder.shell();
                            let e = self.execute(stage, &step, &cur, &key, content, &shell, out)?;
                            (e, false)
                        }
                    };
                    if hit {
                        out.line(" ---> Using cache");
                    }
                    builder.commit(&step, entry.diff_id.clone(), entry.created_by.clone());
                    if let (Some(l), Some(c)) = (entry.layer, entry.chain) {
                        cur.layers.push(l);
                        cur.chain = Some(c);
                    }
                    if hit {
                        out.line(&format!(" ---> {} CACHED", short(key.as_str())));
                        cur.key = key;
                        continue;
                    }
                    key
                }
            };
            out.line(&format!(
                " ---> {} {:.2}s",
                short(key.as_str()),
                started.elapsed().as_secs_f64()
            ));
            cur.key = key;
        }
        cur.config = builder.finish(None);
        self.results.lock().unwrap_or_else(|p| p.into_inner())[stage] = Some(cur);
        Ok(())
    }

    /// The cache entry for `key`, when its data is all there (pinned for this build from
    /// before it is checked, so no collection can take it after).
    fn cached(&self, key: &CacheKey) -> Option<cache::Entry> {
        let e = self.cache.get(key)?;
        if let (Some(l), Some(c)) = (&e.layer, &e.chain) {
            self.pin(vec![l.digest.clone(), c.clone()]);
        }
        match (&e.layer, &e.chain) {
            (None, _) => Some(e),
            (Some(l), Some(c))
                if self.engine.images.content.exists(&l.digest)
                    && self.engine.images.snapshots.exists(c) =>
            {
                Some(e)
            }
            _ => None,
        }
    }

    /// What a COPY/ADD reads, hashed for its cache key (with Docker's history text).
    fn content_of(&self, step: &Step, out: &Out) -> Result<Option<(String, String)>> {
        let StepKind::Copy(c) = &step.kind else {
            return Ok(None);
        };
        if !c.inline.is_empty() && c.sources.is_empty() {
            return Ok(None); // heredocs: their text is in the instruction
        }
        match &c.from {
            None => {
                let (urls, local): (Vec<&String>, Vec<&String>) =
                    c.sources.iter().partition(|s| copy::is_url(s));
                let mut parts = Vec::new();
                if !local.is_empty() {
                    let local: Vec<String> = local.into_iter().cloned().collect();
                    let mut hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
                    let h = ContextHasher::new(&self.context, &mut hashes)
                        .hash_sources(&local)
                        .map_err(|e| step_error(step, e))?;
                    parts.push((h.digest, h.docker_text));
                }
                if !urls.is_empty() && !c.add {
                    return Err(step_error(step, "a URL source is only allowed with ADD"));
                }
                for url in urls {
                    let d = download::fetch(url, &self.scratch.0, c.checksum.as_deref(), out)
                        .map_err(|e| step_error(step, e.message))?;
                    parts.push((
                        d.digest.clone(),
                        format!("file:{}", d.digest.trim_start_matches("sha256:")),
                    ));
                    self.downloads
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(url.clone(), d);
                }
                if let [(digest, text)] = parts.as_slice() {
                    return Ok(Some((digest.clone(), text.clone())));
                }
                let joined: Vec<&str> = parts.iter().map(|(d, _)| d.as_str()).collect();
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                sha2::Digest::update(&mut h, joined.join(",").as_bytes());
                let hex: String = sha2::Digest::finalize(h)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                Ok(Some((format!("sha256:{hex}"), format!("multi:{hex}"))))
            }
            Some(Source::Stage(i)) => {
                let key = self
                    .result(*i)
                    .map(|b| b.key.to_string())
                    .unwrap_or_default();
                Ok(Some((format!("stage:{key}"), format!("stage:{key}"))))
            }
            Some(Source::Image(name)) => {
                let (id, _, _) = self.engine.build_base(name, false, None, out)?;
                Ok(Some((format!("image:{id}"), format!("image:{id}"))))
            }
        }
    }

    /// Runs a RUN/COPY/ADD/WORKDIR step and stores what it made.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        stage: usize,
        step: &Step,
        cur: &Built,
        key: &CacheKey,
        content: Option<(String, String)>,
        shell: &[String],
        out: &Out,
    ) -> Result<cache::Entry> {
        let mut root = self.step_root(cur.chain.as_ref())?;
        let mut created_by = None;
        let mut stubs = Vec::new();
        let adopt = match &step.kind {
            StepKind::Run(r) => {
                let network = r
                    .network
                    .clone()
                    .or_else(|| self.req.network.clone())
                    .unwrap_or_else(|| "default".into());
                stubs = self.run_step(stage, &root, step, r, &network, out)?;
                false
            }
            StepKind::Copy(c) => {
                let from = match &c.from {
                    Some(src) => Some(self.source_root(src, out)?),
                    None => None,
                };
                let downloads = self
                    .downloads
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                self.engine
                    .copy_step(&root, c, &self.context, from.as_ref(), &downloads)
                    .map_err(|e| step_error(step, e))?;
                if let Some((_, text)) = &content {
                    created_by = Some(c.created_by(shell, text));
                }
                true
            }
            StepKind::Workdir(dir) => {
                copy::make_dir(&root.merged(), dir).map_err(|e| step_error(step, e))?;
                true
            }
            StepKind::Metadata => unreachable!("metadata steps run nothing"),
        };
        root.unmount();
        run::remove_stubs(&root.upper(), &stubs);
        let staged = self.engine.stage_layer_of(&root.upper())?;
        if staged.entries == 0 {
            let _ = std::fs::remove_file(&staged.path);
            let entry = cache::Entry {
                key: key.to_string(),
                layer: None,
                diff_id: None,
                chain: None,
                created_by,
                size: 0,
            };
            let _ = self.cache.put(&entry);
            return Ok(entry);
        }
        let chain = chain_id(cur.chain.as_ref(), &staged.diff_id);
        self.pin(vec![staged.digest.clone(), chain.clone()]);
        let images = &self.engine.images;
        images
            .content
            .commit(&staged.path, &staged.digest)
            .map_err(img_err)?;
        if adopt {
            images
                .snapshots
                .adopt(
                    cur.chain.as_ref(),
                    &root.upper(),
                    &staged.diff_id,
                    staged.diff_size,
                )
                .map_err(img_err)?;
        } else {
            let blob = images.content.open_blob(&staged.digest).map_err(img_err)?;
            let (_, stream) = berth_image::compression::decompressed(blob)
                .map_err(|e| internal("read the layer", e))?;
            images
                .snapshots
                .stage(cur.chain.as_ref(), stream)
                .and_then(|s| s.commit())
                .map_err(img_err)?;
        }
        let entry = cache::Entry {
            key: key.to_string(),
            layer: Some(Descriptor::new(
                MEDIA_LAYER_GZIP,
                staged.digest.clone(),
                staged.size,
            )),
            diff_id: Some(staged.diff_id.clone()),
            chain: Some(chain),
            created_by,
            size: staged.diff_size,
        };
        self.cache
            .put(&entry)
            .map_err(|e| internal("write the build cache", e))?;
        Ok(entry)
    }

    /// The target's image config, stamped.
    fn finish_config(&self, built: &Built, created: &str) -> ImageConfig {
        let mut config = built.config.clone();
        config.created = Some(created.to_owned());
        // History entries this build added have no time yet.
        for h in &mut config.history {
            if h.created.is_none() {
                h.created = Some(created.to_owned());
            }
        }
        config
    }
}

/// A step's failure, naming its line and instruction.
fn step_error(step: &Step, e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "Dockerfile:{}: {}: {e}",
        step.line,
        step.text.trim()
    ))
}

impl berth_api::build::BuildBackend for Engine {
    fn build_image(
        &self,
        req: BuildRequest,
        context: BuildContext,
        out: UnboundedSender<String>,
    ) -> std::result::Result<(), ApiError> {
        self.build(req, context, out)
    }

    fn prune_build_cache(
        &self,
        all: bool,
        keep_storage: Option<u64>,
    ) -> std::result::Result<serde_json::Value, ApiError> {
        Ok(self.prune_build(all, keep_storage))
    }
}
