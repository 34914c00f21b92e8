//! One build's run: its stages wave by wave (those of a wave at the same time), each stage's
//! steps in order, every RUN/COPY/ADD/WORKDIR looked up in the cache first and executed on a
//! step root when it is not there, its layer stored and remembered under its cache key.

use std::sync::Mutex;
use std::time::Instant;

use crate::error::EngineError;
use berth_api::build::BuildRequest;
use berth_build::{
    Base, BuildPlan, CacheKey, Context, ContextHasher, FileHashCache, Source, Step, StepKind,
};
use berth_core::Digest;
use berth_image::oci::{Descriptor, ImageConfig, MEDIA_LAYER_GZIP};
use berth_image::snapshot::chain_id;
use berth_image::store::Pin;
use tokio::sync::mpsc::unbounded_channel;

use super::cache::{self, BuildCache};
use super::workspace::StepRoot;
use super::{copy, download, img_err, internal, run, short, Out, Result};
use crate::Engine;

/// A stage's result (or the state of one being built).
#[derive(Debug, Clone)]
pub(super) struct Built {
    pub(super) config: ImageConfig,
    pub(super) layers: Vec<Descriptor>,
    /// The top snapshot (chain ID); None: no layers.
    pub(super) chain: Option<Digest>,
    pub(super) key: CacheKey,
    /// The image a stage starts from, when it is one (its ID is shown under FROM).
    pub(super) config_id: Option<String>,
    /// How many of `layers` the stage's base had (what `--squash` keeps as they are).
    pub(super) base_layers: usize,
}

/// What a build runs with.
pub(super) struct Build<'a> {
    pub(super) engine: &'a Engine,
    pub(super) req: &'a BuildRequest,
    pub(super) plan: BuildPlan,
    pub(super) context: Context,
    /// Context file hashes (kept between builds for a context read in place).
    pub(super) hashes: Mutex<FileHashCache>,
    pub(super) cache: BuildCache,
    pub(super) results: Mutex<Vec<Option<Built>>>,
    /// Everything this build uses or made, kept from collections until it is over.
    pub(super) pins: Mutex<Vec<Pin>>,
    /// `ADD <url>` files fetched by this build, by URL.
    pub(super) downloads: Mutex<std::collections::HashMap<String, download::Downloaded>>,
    /// This build's own files (downloads), removed when it ends.
    pub(super) scratch: Scratch,
    /// Step numbers: the first step of each stage (FROM counts, as in Docker's output).
    pub(super) first_step: Vec<usize>,
    pub(super) total_steps: usize,
    /// With `cachefrom`: the layers (diff IDs) and history length of each image named that
    /// exists. None: the whole cache is trusted.
    pub(super) cache_sources: Option<Vec<(Vec<Digest>, usize)>>,
}

/// What `cachefrom` names, as [`Build::cache_sources`] keeps it (names that are no image are
/// left out, as Docker leaves them).
pub(super) fn cache_sources(
    engine: &Engine,
    names: &[String],
) -> Option<Vec<(Vec<Digest>, usize)>> {
    if names.is_empty() {
        return None;
    }
    Some(
        names
            .iter()
            .filter_map(|n| engine.images.view(n).ok())
            .map(|v| (v.config.rootfs.diff_ids.clone(), v.config.history.len()))
            .collect(),
    )
}

/// A directory removed when dropped.
pub(super) struct Scratch(pub(super) std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
    pub(super) fn run(&self, out: &Out) -> Result<Built> {
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
                        let r = h.join().unwrap_or_else(|_| {
                            Err(EngineError::internal("a build stage panicked"))
                        });
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
            .ok_or_else(|| EngineError::internal("the target stage was not built"))
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
                    .map_err(|e| EngineError::invalid(e.to_string()))?
                    .config()
                    .clone(),
                layers: Vec::new(),
                chain: None,
                key: CacheKey::base("scratch", &platform.to_string()),
                config_id: None,
                base_layers: 0,
            }),
            Base::Stage(i) => self
                .result(*i)
                .map(|b| Built {
                    base_layers: b.layers.len(),
                    ..b
                })
                .ok_or_else(|| EngineError::internal(format!("stage {i} was not built"))),
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
                    config_id: Some(id.to_string()),
                    config,
                    base_layers: layers.len(),
                    layers,
                    chain,
                })
            }
        }
    }

    /// The root of a source for `COPY --from` or `RUN --mount from=`, mounted.
    pub(super) fn source_root(&self, src: &Source, out: &Out) -> Result<StepRoot> {
        let chain = match src {
            Source::Stage(i) => {
                self.result(*i)
                    .ok_or_else(|| EngineError::internal(format!("stage {i} was not built")))?
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
        self.step_root(chain.as_ref(), false)
    }

    /// A fresh step root over `chain`. A RUN step's (`run`) under `--userns-remap` sees the
    /// layers through the mapping, and its upper dir is in the host's view (its layer is
    /// written back in the image's); the engine's own steps (COPY, WORKDIR) work on the
    /// image's view, whose upper dir becomes the snapshot as it is.
    fn step_root(&self, chain: Option<&Digest>, run: bool) -> Result<StepRoot> {
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
        match self.engine.remap().filter(|_| run) {
            Some(remap) => {
                let mapped = remap
                    .lowers(&lowers)
                    .map_err(|e| internal("map the image's layers", e))?;
                StepRoot::mount(dir, &mapped.paths, Some(remap.map().root()))
            }
            None => StepRoot::mount(dir, &lowers, None),
        }
        .map_err(|e| internal("prepare the step", e))
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
        // Docker shows the base image's ID here; a stage or scratch has none: its key.
        let shown = match &s.base {
            Base::Image(_) => cur.config_id.clone(),
            _ => None,
        };
        out.line(&format!(
            " ---> {}",
            short(shown.as_deref().unwrap_or(cur.key.as_str()))
        ));
        let base_config = match s.base {
            Base::Scratch => None,
            _ => Some(cur.config.clone()),
        };
        let mut builder = self
            .plan
            .stage_builder(stage, base_config.as_ref())
            .map_err(|e| EngineError::invalid(e.to_string()))?;
        while let Some(step) = builder.next_step() {
            let step = step.map_err(|e| EngineError::invalid(e.to_string()))?;
            if out.closed() {
                return Err(EngineError::invalid("the build was canceled"));
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
                StepKind::Metadata => {
                    // Docker's builder makes an image of every step, so a step that only
                    // changes the config is "Using cache" too when it was built before.
                    let key = step.cache_key(&cur.key, None);
                    let config = builder.config();
                    let hit = !self.req.no_cache
                        && self.cache_source_has(&config.rootfs.diff_ids, config.history.len())
                        && self.cache.get(&key).is_some();
                    if hit {
                        out.line(" ---> Using cache");
                        out.line(&format!(" ---> {} CACHED", short(key.as_str())));
                        cur.key = key;
                        continue;
                    }
                    let _ = self.cache.put(&cache::Entry {
                        key: key.as_str().to_owned(),
                        layer: None,
                        diff_id: None,
                        chain: None,
                        created_by: None,
                        size: 0,
                    });
                    key
                }
                _ => {
                    let content = self.content_of(&step, out)?;
                    let key = step.cache_key(&cur.key, content.as_ref().map(|c| c.0.as_str()));
                    let hit = match self.req.no_cache {
                        true => None,
                        false => self.cached(&key).filter(|e| {
                            let config = builder.config();
                            let mut ids = config.rootfs.diff_ids.clone();
                            ids.extend(e.diff_id.clone());
                            self.cache_source_has(&ids, config.history.len() + 1)
                        }),
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

    /// Whether a step that leaves the image at `diff_ids` with `history` entries may come from
    /// the cache: always without `cachefrom`; with it, only where one of its images went.
    fn cache_source_has(&self, diff_ids: &[Digest], history: usize) -> bool {
        match &self.cache_sources {
            None => true,
            Some(sources) => sources
                .iter()
                .any(|(ids, len)| ids.starts_with(diff_ids) && *len >= history),
        }
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
                        .map_err(|e| step_error(step, e.message()))?;
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
        let run = matches!(step.kind, StepKind::Run(_));
        let mut root = self.step_root(cur.chain.as_ref(), run)?;
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
        let ids = self.engine.remap().filter(|_| run).map(|r| *r.map());
        let staged = self.engine.stage_layer_of(&root.upper(), ids)?;
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
    pub(super) fn finish_config(&self, built: &Built, created: &str) -> ImageConfig {
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
fn step_error(step: &Step, e: impl std::fmt::Display) -> EngineError {
    EngineError::invalid(format!(
        "Dockerfile:{}: {}: {e}",
        step.line,
        step.text.trim()
    ))
}
