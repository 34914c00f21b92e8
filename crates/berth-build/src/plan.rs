//! The build model: stages, the graph between them, build arguments, and what each instruction
//! does to the image config and its history.
//!
//! Two phases, because an instruction's expansion depends on the base image's config (its
//! `Env`, `WorkingDir`, `Shell`, `OnBuild`), which only the engine can fetch:
//!
//! 1. [`BuildPlan::new`] works from the Dockerfile and the options alone: global ARGs (those
//!    before the first FROM, plus the automatic `TARGETPLATFORM`/`BUILDPLATFORM` family and
//!    `--build-arg` overrides) expand each FROM's image and `--platform`; stages get their base
//!    ([`Base::Scratch`], an image, or an earlier stage by name or index) and their
//!    dependencies (`COPY --from`, `RUN --mount=from=`); `--target` picks the final stage and
//!    only the stages it needs are kept, in an order where dependencies come first and
//!    grouped into waves of stages that can be built at the same time.
//! 2. For each stage, [`BuildPlan::stage_builder`] starts from the base image's config and
//!    [`StageBuilder::next_step`] walks the instructions (the base's ONBUILD triggers first), as
//!    Docker's classic builder dispatches them: the variables in ADD COPY ENV EXPOSE LABEL
//!    STOPSIGNAL USER VOLUME WORKDIR ARG and RUN `--mount` values are expanded (RUN/CMD/
//!    ENTRYPOINT/SHELL/HEALTHCHECK commands are not), metadata instructions change the config
//!    and are committed at once as an empty-layer history entry, and RUN, COPY/ADD and
//!    WORKDIR come back as [`Step`]s for the engine to execute and then
//!    [`StageBuilder::commit`] with the layer they made (or none).
//!
//! History texts are the classic builder's: `/bin/sh -c #(nop)  CMD ["sh"]` for metadata,
//! `/bin/sh -c make` (or `|1 V=2 /bin/sh -c make` when build args are in effect) for RUN,
//! `/bin/sh -c #(nop) COPY dir:<hash> in /app ` for COPY/ADD, `/bin/sh -c #(nop) WORKDIR /app`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use berth_core::Digest;
use berth_image::oci::{History, ImageConfig, RootFs, RunConfig};

use crate::gofmt;
use crate::mount::Mount;
use crate::parser::{
    self, ArgDecl, Command, CommandLine, CopyCmd, Dockerfile, HealthcheckCmd, InlineSource,
    Instruction,
};
use crate::shell::{Env, Lexer};

/// The PATH the builder puts in an image whose config has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build args Docker always accepts; they reach RUN's environment but stay out of the history
/// unless the Dockerfile declares them.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A planning or dispatch error, with the Dockerfile line when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PlanError {
    pub line: Option<usize>,
    pub message: String,
}

impl PlanError {
    fn at(line: usize, message: impl Into<String>) -> PlanError {
        PlanError {
            line: Some(line),
            message: message.into(),
        }
    }
    fn new(message: impl Into<String>) -> PlanError {
        PlanError {
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "Dockerfile:{l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl berth_core::error::HasErrorKind for PlanError {
    fn kind(&self) -> berth_core::ErrorKind {
        berth_core::ErrorKind::InvalidArgument
    }
}

/// An OCI platform, `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This host's platform.
    pub fn host() -> Platform {
        let (os, arch, variant) = berth_image::oci::host_platform();
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
        }
    }

    /// Parses `linux/arm64/v8`, `linux/amd64`, or an architecture alone (`arm64`, Linux).
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let bad = || format!("failed to parse platform {s}: invalid platform");
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let norm_arch = |a: &str| -> String {
            match a.to_ascii_lowercase().as_str() {
                "x86_64" | "x86-64" => "amd64".into(),
                "aarch64" => "arm64".into(),
                "armhf" => "arm".into(),
                "i386" => "386".into(),
                other => other.into(),
            }
        };
        let (os, arch, variant) = match parts.as_slice() {
            [a] if *a != "linux" => ("linux".to_owned(), norm_arch(a), None),
            [os, a] => (os.to_ascii_lowercase(), norm_arch(a), None),
            [os, a, v] => (
                os.to_ascii_lowercase(),
                norm_arch(a),
                Some(v.to_ascii_lowercase()),
            ),
            _ => return Err(bad()),
        };
        let variant = match (arch.as_str(), variant) {
            ("arm64", Some(v)) if v == "v8" => Some(v),
            (_, v) => v,
        };
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a build is asked for.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg NAME=VALUE`; `None` for `--build-arg NAME` with no value (and none in the
    /// caller's environment), which Docker ignores.
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--target`: the stage to stop at (by name); the last stage when `None`.
    pub target: Option<String>,
    /// `--platform`: the platform built for (the host's by default).
    pub platform: Platform,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// `--label`s, added to the final stage.
    pub labels: BTreeMap<String, String>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
            labels: BTreeMap::new(),
        }
    }
}

impl BuildOptions {
    /// Adds `--build-arg` values as the docker CLI reads them (`K=V`, or `K` taking its value
    /// from `lookup`, usually the environment).
    pub fn with_build_args<'a>(
        mut self,
        args: impl IntoIterator<Item = &'a str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> BuildOptions {
        for a in args {
            match a.split_once('=') {
                Some((k, v)) => self.build_args.insert(k.to_owned(), Some(v.to_owned())),
                None => self.build_args.insert(a.to_owned(), lookup(a)),
            };
        }
        self
    }
}

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference to resolve (pull if needed).
    Image(String),
    /// An earlier stage's result.
    Stage(usize),
}

/// Where `COPY --from` or `RUN --mount=from=` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Stage(usize),
    Image(String),
}

/// One `FROM … [AS name]` and what follows it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    /// The base as written after expansion (`alpine:3.20`, `build`, `scratch`).
    pub base_name: String,
    /// `FROM --platform=` after expansion.
    pub platform: Option<Platform>,
    /// The FROM instruction.
    pub from: Instruction,
    pub instructions: Vec<Instruction>,
    /// Stages this one needs (its base stage, `COPY --from`, `--mount from=`), sorted.
    pub deps: Vec<usize>,
    /// Images read by `COPY --from`/`--mount from=` (to pull beside the base).
    pub images: Vec<String>,
}

/// What to build: the stages the target needs, in order.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub escape: char,
    /// Every stage of the Dockerfile, by index.
    pub stages: Vec<Stage>,
    /// The final stage.
    pub target: usize,
    /// The stages to build, dependencies first (stages the target does not need are skipped).
    pub order: Vec<usize>,
    /// `order` in waves: a stage depends only on stages of earlier waves, so the stages of a
    /// wave can be built at the same time.
    pub waves: Vec<Vec<usize>>,
    /// Warnings for the build output (unused build args).
    pub warnings: Vec<String>,
    /// Build args given but declared by no ARG of a built stage (Docker warns about them).
    pub unused_build_args: Vec<String>,
    /// The global ARG values (after overrides) FROM lines were expanded with.
    pub meta_args: BTreeMap<String, String>,
    options: BuildOptions,
}

/// The automatic platform args, from the target and build platforms.
pub fn platform_args(target: &Platform, build: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        m.insert(format!("{prefix}PLATFORM"), p.to_string());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// The declared ARGs of a scope and the values they resolve to.
#[derive(Debug, Clone, Default)]
struct Args {
    /// Declared name → its default (None: declared without one).
    declared: BTreeMap<String, Option<String>>,
}

impl Args {
    /// Docker's `getBuildArg`: an override from `--build-arg`, else the declared default, else
    /// (declared without one) the global value.
    fn value(
        &self,
        name: &str,
        opts: &BTreeMap<String, Option<String>>,
        meta: &BTreeMap<String, String>,
    ) -> Option<String> {
        if let Some(Some(v)) = opts.get(name) {
            return Some(v.clone());
        }
        match self.declared.get(name) {
            Some(Some(d)) => Some(d.clone()),
            Some(None) => meta.get(name).cloned(),
            None => None,
        }
    }

    /// Every arg in effect: the declared ones with a value, and proxy args given by the user.
    fn all(
        &self,
        opts: &BTreeMap<String, Option<String>>,
        meta: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for name in self.declared.keys() {
            if let Some(v) = self.value(name, opts, meta) {
                out.insert(name.clone(), v);
            }
        }
        for p in PROXY_ARGS {
            if let Some(Some(v)) = opts.get(*p) {
                out.entry((*p).to_owned()).or_insert_with(|| v.clone());
            }
        }
        out
    }
}

impl BuildPlan {
    /// Plans a build of `df` (see the module docs).
    pub fn new(df: &Dockerfile, options: &BuildOptions) -> Result<BuildPlan, PlanError> {
        let lex = Lexer::new(df.escape);
        let opts = &options.build_args;
        let auto = platform_args(&options.platform, &options.build_platform);

        // Global scope: the automatic platform args, then each ARG before the first FROM.
        let mut meta: BTreeMap<String, String> = auto.clone();
        for (k, v) in opts {
            if let (true, Some(v)) = (auto.contains_key(k), v) {
                meta.insert(k.clone(), v.clone());
            }
        }
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        let froms = df.froms();
        let first_from = froms.first().copied().unwrap_or(df.instructions.len());
        for ins in &df.instructions[..first_from] {
            let Command::Arg(decls) = &ins.command else {
                continue;
            };
            for d in decls {
                let name = expand(&lex, &d.name, &meta, ins.line)?;
                let default = match &d.default {
                    Some(v) => Some(expand(&lex, v, &meta, ins.line)?),
                    None => None,
                };
                referenced.insert(name.clone());
                let value = match opts.get(&name) {
                    Some(Some(v)) => Some(v.clone()),
                    _ => default,
                };
                match value {
                    Some(v) => meta.insert(name, v),
                    None => meta.remove(&name),
                };
            }
        }

        // Stages.
        let mut stages: Vec<Stage> = Vec::new();
        for (si, &fi) in froms.iter().enumerate() {
            let from_ins = &df.instructions[fi];
            let Command::From(f) = &from_ins.command else {
                continue;
            };
            let end = froms.get(si + 1).copied().unwrap_or(df.instructions.len());
            let instructions: Vec<Instruction> = df.instructions[fi + 1..end].to_vec();
            let base_name = expand(&lex, &f.image, &meta, from_ins.line)?;
            if base_name.is_empty() {
                return Err(PlanError::at(
                    from_ins.line,
                    format!("base name ({}) should not be blank", f.image),
                ));
            }
            let platform = match &f.platform {
                Some(p) => {
                    let p = expand(&lex, p, &meta, from_ins.line)?;
                    Some(Platform::parse(&p).map_err(|e| PlanError::at(from_ins.line, e))?)
                }
                None => None,
            };
            let base = if base_name.eq_ignore_ascii_case("scratch") {
                Base::Scratch
            } else if let Some(s) = find_stage(&stages, &base_name) {
                Base::Stage(s)
            } else {
                Base::Image(base_name.clone())
            };
            let mut deps = BTreeSet::new();
            let mut images = Vec::new();
            if let Base::Stage(s) = base {
                deps.insert(s);
            }
            for ins in &instructions {
                for src in sources_of(ins) {
                    let src = expand(&lex, &src, &meta, ins.line)?;
                    match resolve_source(&stages, si, &src)
                        .map_err(|e| PlanError::at(ins.line, e))?
                    {
                        Source::Stage(s) => {
                            deps.insert(s);
                        }
                        Source::Image(i) => {
                            if !images.contains(&i) {
                                images.push(i)
                            }
                        }
                    }
                }
            }
            stages.push(Stage {
                index: si,
                name: f.stage_name.clone(),
                base,
                base_name,
                platform,
                from: from_ins.clone(),
                instructions,
                deps: deps.into_iter().collect(),
                images,
            });
        }
        if stages.is_empty() {
            return Err(PlanError::new("dockerfile contains no stages to build"));
        }

        let target = match &options.target {
            None => stages.len() - 1,
            Some(t) => find_stage(&stages, t).ok_or_else(|| {
                PlanError::new(format!(
                    "target stage {} could not be found",
                    gofmt::go_quote(t)
                ))
            })?,
        };

        // The stages the target needs: all earlier ones are candidates, deps point backwards.
        let mut needed = vec![false; stages.len()];
        needed[target] = true;
        for i in (0..=target).rev() {
            if needed[i] {
                for &d in &stages[i].deps {
                    needed[d] = true;
                }
            }
        }
        let order: Vec<usize> = (0..stages.len()).filter(|&i| needed[i]).collect();
        let mut level = vec![0usize; stages.len()];
        for &i in &order {
            level[i] = stages[i]
                .deps
                .iter()
                .map(|&d| level[d] + 1)
                .max()
                .unwrap_or(0);
        }
        let mut waves: Vec<Vec<usize>> = Vec::new();
        for &i in &order {
            if waves.len() <= level[i] {
                waves.resize(level[i] + 1, Vec::new());
            }
            waves[level[i]].push(i);
        }

        // Unused build args: given, not a proxy arg, declared by no ARG that is built.
        for &i in &order {
            for ins in &stages[i].instructions {
                if let Command::Arg(decls) = &ins.command {
                    for d in decls {
                        referenced.insert(d.name.clone());
                    }
                }
            }
        }
        let unused: Vec<String> = opts
            .keys()
            .filter(|k| !referenced.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
            .filter(|k| !auto.contains_key(*k))
            .cloned()
            .collect();
        let mut warnings = Vec::new();
        if !unused.is_empty() {
            warnings.push(format!(
                "[Warning] One or more build-args {} were not consumed",
                gofmt::plain_list(&unused)
            ));
        }

        Ok(BuildPlan {
            escape: df.escape,
            stages,
            target,
            order,
            waves,
            warnings,
            unused_build_args: unused,
            meta_args: meta,
            options: options.clone(),
        })
    }

    /// Instructions to run in total (FROMs included), for `Step N/M` progress lines.
    pub fn step_count(&self) -> usize {
        self.order
            .iter()
            .map(|&i| 1 + self.stages[i].instructions.len())
            .sum()
    }

    /// What `from=` (of `RUN --mount` or `COPY --from`) names for stage `current`: an
    /// earlier stage by name or index, else an image.
    pub fn source(&self, current: usize, from: &str) -> Result<Source, String> {
        resolve_source(&self.stages[..current], current, from)
    }

    /// The platform a stage builds for: its `FROM --platform`, else the build's.
    pub fn stage_platform(&self, index: usize) -> Platform {
        self.stages
            .get(index)
            .and_then(|s| s.platform.clone())
            .unwrap_or_else(|| self.options.platform.clone())
    }

    /// Starts dispatching stage `index` on its base image's config (`None` for scratch; for a
    /// stage base, the config that stage produced).
    pub fn stage_builder(
        &self,
        index: usize,
        base: Option<&ImageConfig>,
    ) -> Result<StageBuilder<'_>, PlanError> {
        let stage = self
            .stages
            .get(index)
            .ok_or_else(|| PlanError::new(format!("no stage {index}")))?;
        let platform = self.stage_platform(index);
        let mut image = match base {
            Some(b) => b.clone(),
            None => ImageConfig {
                created: None,
                author: None,
                comment: None,
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                config: RunConfig::default(),
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                history: Vec::new(),
            },
        };
        image.created = None;
        image.comment = None;
        if image.architecture.is_empty() {
            image.architecture = platform.architecture.clone();
        }
        if image.os.is_empty() {
            image.os = platform.os.clone();
        }
        let env = image.config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.split('=').next() == Some("PATH")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        // ONBUILD triggers of the base run first, and are not inherited.
        let mut queue = VecDeque::new();
        if let Some(triggers) = image.config.on_build.take() {
            for t in triggers {
                let ins = parser::parse_trigger(&t, self.escape).map_err(|e| {
                    PlanError::at(
                        stage.from.line,
                        format!("onbuild trigger {t:?}: {}", e.message),
                    )
                })?;
                let mut ins = ins;
                ins.line = stage.from.line;
                ins.end_line = stage.from.end_line;
                queue.push_back(ins);
            }
        }
        queue.extend(stage.instructions.iter().cloned());
        let history_base = image.history.len();
        Ok(StageBuilder {
            plan: self,
            stage: index,
            lex: Lexer::new(self.escape),
            image,
            args: Args::default(),
            queue,
            cmd_set: false,
            labels_done: index != self.target || self.options.labels.is_empty(),
            pending: None,
            step_index: 0,
            history_base,
        })
    }
}

fn find_stage(stages: &[Stage], name: &str) -> Option<usize> {
    stages.iter().position(|s| {
        s.name
            .as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })
}

/// `--from` of COPY and `from=` of RUN mounts.
fn sources_of(ins: &Instruction) -> Vec<String> {
    match &ins.command {
        Command::Copy(c) => c.from.iter().cloned().collect(),
        Command::Run(r) => r
            .mounts
            .iter()
            .filter_map(|m| Mount::parse(m, None).ok())
            .filter(|m| m.kind != crate::mount::MountType::Secret)
            .filter_map(|m| m.from)
            .collect(),
        _ => Vec::new(),
    }
}

fn resolve_source(stages: &[Stage], current: usize, from: &str) -> Result<Source, String> {
    if let Some(s) = find_stage(stages, from) {
        return Ok(Source::Stage(s));
    }
    if let Ok(n) = from.parse::<usize>() {
        if n == current {
            return Err(format!(
                "invalid from flag value {from}: refers to current build stage"
            ));
        }
        if n > current {
            return Err(format!(
                "invalid from flag value {from}: index out of bounds"
            ));
        }
        return Ok(Source::Stage(n));
    }
    Ok(Source::Image(from.to_owned()))
}

fn expand(lex: &Lexer, word: &str, env: &dyn Env, line: usize) -> Result<String, PlanError> {
    lex.process_word(word, env)
        .map_err(|e| PlanError::at(line, e.0))
}

/// What the engine must do for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Config only; already committed as an empty-layer history entry.
    Metadata,
    Run(RunStep),
    Copy(CopyStep),
    /// Create the working directory (it may already exist: then no layer).
    Workdir(String),
}

/// A RUN, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    /// The process to run (the shell prepended for shell form).
    pub argv: Vec<String>,
    /// Its environment: the config's Env plus the build args in effect.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub mounts: Vec<Mount>,
    pub network: Option<String>,
    pub security: Option<String>,
    /// A heredoc that is the whole command and starts with `#!`: write it (mode 0755) at
    /// `/dev/pipes/<name>` and run it (BuildKit's behaviour); `argv` already names it.
    pub script: Option<(String, String)>,
}

/// A COPY or ADD, expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyStep {
    /// ADD (archives unpacked, URLs fetched) rather than COPY.
    pub add: bool,
    /// Sources after expansion, as written (context-relative paths, globs, URLs for ADD).
    pub sources: Vec<String>,
    /// Heredoc sources, variables expanded when the delimiter was not quoted.
    pub inline: Vec<InlineSource>,
    /// The destination, absolute (a relative one is joined to the working directory); a
    /// trailing `/` (a directory) is kept.
    pub dest: String,
    pub from: Option<Source>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: Option<bool>,
    pub unpack: Option<bool>,
}

impl CopyStep {
    /// The classic builder's history text for this copy, given Docker's source hash
    /// (`file:<hex>`, `dir:<hex>`, `multi:<hex>`).
    pub fn created_by(&self, shell: &[String], src_hash: &str) -> String {
        let chown = self
            .chown
            .as_ref()
            .map(|c| format!("--chown={c} "))
            .unwrap_or_default();
        let name = if self.add { "ADD" } else { "COPY" };
        format!(
            "{} #(nop) {name} {chown}{src_hash} in {} ",
            shell.join(" "),
            self.dest
        )
    }
}

/// One instruction, resolved and ready for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Position in the stage (ONBUILD triggers first).
    pub index: usize,
    pub line: usize,
    pub end_line: usize,
    /// The instruction as written (for `Step N/M : …` lines).
    pub text: String,
    pub kind: StepKind,
    /// The history entry (`created_by`, `empty_layer` true for metadata).
    pub history: History,
    /// The instruction after expansion, plus what else decides its result: the text the cache
    /// key hashes.
    pub cache_text: String,
}

impl Step {
    /// This step's cache key: see [`crate::cache::CacheKey`].
    pub fn cache_key(
        &self,
        parent: &crate::cache::CacheKey,
        content: Option<&str>,
    ) -> crate::cache::CacheKey {
        parent.child(&self.cache_text, content)
    }
}

/// Dispatches one stage's instructions onto an image config (see the module docs).
#[derive(Debug)]
pub struct StageBuilder<'p> {
    plan: &'p BuildPlan,
    stage: usize,
    lex: Lexer,
    image: ImageConfig,
    args: Args,
    queue: VecDeque<Instruction>,
    cmd_set: bool,
    labels_done: bool,
    pending: Option<usize>,
    step_index: usize,
    history_base: usize,
}

impl StageBuilder<'_> {
    /// The image config so far.
    pub fn config(&self) -> &ImageConfig {
        &self.image
    }

    /// The stage being built.
    pub fn stage(&self) -> &Stage {
        &self.plan.stages[self.stage]
    }

    /// The shell for shell-form commands (`SHELL`, default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        match &self.image.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    /// The build args in effect that the config's Env does not override, as `K=V`, sorted.
    pub fn build_arg_env(&self) -> Vec<String> {
        let env = self.image.config.env.clone().unwrap_or_default();
        self.args
            .all(&self.plan.options.build_args, &self.plan.meta_args)
            .into_iter()
            .filter(|(k, _)| !env.iter().any(|e| e.split('=').next() == Some(k.as_str())))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// What `$VAR` means now: the config's Env, then build args it does not override.
    fn expansion_env(&self) -> Vec<String> {
        let mut env = self.image.config.env.clone().unwrap_or_default();
        env.extend(self.build_arg_env());
        env
    }

    fn word(&self, w: &str, line: usize) -> Result<String, PlanError> {
        expand(&self.lex, w, &self.expansion_env(), line)
    }

    fn opt_word(&self, w: &Option<String>, line: usize) -> Result<Option<String>, PlanError> {
        w.as_ref().map(|v| self.word(v, line)).transpose()
    }

    /// Records a metadata step's history entry: `<shell> #(nop)  <comment>`.
    fn nop(&mut self, comment: &str) -> History {
        let h = History {
            created: None,
            created_by: Some(format!("{} #(nop)  {comment}", self.shell().join(" "))),
            author: self.image.author.clone(),
            comment: None,
            empty_layer: true,
        };
        self.image.history.push(h.clone());
        h
    }

    /// The next step, or `None` when the stage is done. Metadata steps are applied and
    /// committed here; a RUN/COPY/ADD/WORKDIR step must be [`commit`](Self::commit)ted before
    /// the next call.
    pub fn next_step(&mut self) -> Option<Result<Step, PlanError>> {
        if self.pending.is_some() {
            return Some(Err(PlanError::new(
                "the previous step was not committed before the next one",
            )));
        }
        let ins = match self.queue.pop_front() {
            Some(i) => i,
            None if !self.labels_done => {
                self.labels_done = true;
                return Some(Ok(self.option_labels()));
            }
            None => return None,
        };
        let r = self.dispatch(&ins);
        if let Ok(s) = &r {
            if s.kind != StepKind::Metadata {
                self.pending = Some(s.index);
            }
        }
        Some(r)
    }

    /// Records the result of a RUN/COPY/ADD/WORKDIR step: the diff ID of the layer it made,
    /// or `None` when it changed nothing (Docker then marks the history entry `empty_layer`).
    /// `created_by` overrides the step's history text (COPY/ADD: see
    /// [`CopyStep::created_by`]).
    pub fn commit(&mut self, step: &Step, diff_id: Option<Digest>, created_by: Option<String>) {
        let mut h = step.history.clone();
        if let Some(c) = created_by {
            h.created_by = Some(c);
        }
        h.author = self.image.author.clone();
        h.empty_layer = diff_id.is_none();
        if let Some(d) = diff_id {
            self.image.rootfs.diff_ids.push(d);
        }
        self.image.history.push(h);
        self.pending = None;
    }

    /// The finished image config; `created` (RFC 3339) stamps it and the history entries this
    /// stage added.
    pub fn finish(mut self, created: Option<&str>) -> ImageConfig {
        if let Some(c) = created {
            self.image.created = Some(c.to_owned());
            for h in &mut self.image.history[self.history_base..] {
                h.created = Some(c.to_owned());
            }
        }
        self.image
    }

    fn option_labels(&mut self) -> Step {
        let labels = self.plan.options.labels.clone();
        let map = self.image.config.labels.get_or_insert_with(BTreeMap::new);
        let mut text = String::from("LABEL");
        for (k, v) in &labels {
            map.insert(k.clone(), v.clone());
            text.push_str(&format!(" {k}={v}"));
        }
        let history = self.nop(&text);
        let index = self.step_index;
        self.step_index += 1;
        Step {
            index,
            line: 0,
            end_line: 0,
            text: text.clone(),
            kind: StepKind::Metadata,
            history,
            cache_text: text,
        }
    }

    fn dispatch(&mut self, ins: &Instruction) -> Result<Step, PlanError> {
        let line = ins.line;
        let index = self.step_index;
        self.step_index += 1;
        let step = |kind: StepKind, history: History, cache_text: String| Step {
            index,
            line,
            end_line: ins.end_line,
            text: ins.original.trim().to_owned(),
            kind,
            history,
            cache_text,
        };
        match &ins.command {
            Command::Env(pairs) => {
                let mut text = String::from("ENV");
                for kv in pairs {
                    let k = self.word(&kv.key, line)?;
                    let v = self.word(&kv.value, line)?;
                    text.push_str(&format!(" {k}={v}"));
                    let env = self.image.config.env.get_or_insert_with(Vec::new);
                    let new = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split('=').next() == Some(k.as_str()))
                    {
                        Some(e) => *e = new,
                        None => env.push(new),
                    }
                }
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Label(pairs) => {
                let mut text = String::from("LABEL");
                for kv in pairs {
                    let k = self.word(&kv.key, line)?;
                    let v = self.word(&kv.value, line)?;
                    text.push_str(&format!(" {k}={v}"));
                    self.image
                        .config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, v);
                }
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Maintainer(m) => {
                self.image.author = Some(m.clone());
                let text = format!("MAINTAINER {m}");
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Arg(decls) => {
                let mut parts = Vec::new();
                for ArgDecl { name, default } in decls {
                    let name = self.word(name, line)?;
                    let default = self.opt_word(default, line)?;
                    parts.push(match &default {
                        Some(d) => format!("{name}={d}"),
                        None => name.clone(),
                    });
                    self.args.declared.insert(name, default);
                }
                let text = format!("ARG {}", parts.join(" "));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Cmd(c) => {
                let cmd = self.resolve(c);
                self.image.config.cmd = Some(cmd.clone());
                self.image.config.args_escaped = None;
                self.cmd_set = true;
                let text = format!("CMD {}", gofmt::quote_list(&cmd));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Entrypoint(c) => {
                let ep = match c {
                    CommandLine::Exec(v) if v.is_empty() => None,
                    c => Some(self.resolve(c)),
                };
                self.image.config.entrypoint = ep.clone();
                self.image.config.args_escaped = None;
                // An ENTRYPOINT drops the CMD inherited from the base, not one set here.
                if !self.cmd_set {
                    self.image.config.cmd = None;
                }
                let text = format!("ENTRYPOINT {}", gofmt::quote_list(&ep.unwrap_or_default()));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Expose(ports) => {
                let env = self.expansion_env();
                let mut words = Vec::new();
                for p in ports {
                    let w = self
                        .lex
                        .process_words(p, &env)
                        .map_err(|e| PlanError::at(line, e.0))?;
                    words.extend(w);
                }
                let exposed = self
                    .image
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for w in &words {
                    for port in port_keys(w).map_err(|e| PlanError::at(line, e))? {
                        exposed.insert(port, serde_json::json!({}));
                    }
                }
                let text = format!("EXPOSE {}", words.join(" "));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::User(u) => {
                let u = self.word(u, line)?;
                self.image.config.user = Some(u.clone());
                let text = format!("USER {u}");
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Volume(vols) => {
                let mut out = Vec::new();
                for v in vols {
                    let v = self.word(v, line)?;
                    if v.is_empty() {
                        return Err(PlanError::at(
                            line,
                            "VOLUME specified can not be an empty string",
                        ));
                    }
                    out.push(v);
                }
                let map = self.image.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in &out {
                    map.insert(v.clone(), serde_json::json!({}));
                }
                let text = format!("VOLUME {}", gofmt::plain_list(&out));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::StopSignal(s) => {
                let s = self.word(s, line)?;
                if !valid_signal(&s) {
                    return Err(PlanError::at(line, format!("Invalid signal: {s}")));
                }
                self.image.config.stop_signal = Some(s.clone());
                let text = format!("STOPSIGNAL {s}");
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Healthcheck(hc) => {
                let (json, text) = healthcheck_config(hc);
                self.image.config.healthcheck = Some(json);
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Shell(s) => {
                self.image.config.shell = Some(s.clone());
                let text = format!("SHELL {}", gofmt::plain_list(s));
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Onbuild(o) => {
                self.image
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(o.expression.clone());
                let text = format!("ONBUILD {}", o.expression);
                let h = self.nop(&text);
                Ok(step(StepKind::Metadata, h, text))
            }
            Command::Workdir(w) => {
                let w = self.word(w, line)?;
                let current = self.image.config.working_dir.clone().unwrap_or_default();
                let dir = normalize_workdir(&current, &w);
                self.image.config.working_dir = Some(dir.clone());
                let h = History {
                    created_by: Some(format!("{} #(nop) WORKDIR {dir}", self.shell().join(" "))),
                    empty_layer: false,
                    ..Default::default()
                };
                let cache = format!("WORKDIR {dir}");
                Ok(step(StepKind::Workdir(dir), h, cache))
            }
            Command::Run(r) => {
                let env_now = self.expansion_env();
                let lex = self.lex;
                let exp = |v: &str| -> Result<String, String> {
                    lex.process_word(v, &env_now).map_err(|e| e.0)
                };
                let mut mounts = Vec::new();
                for m in &r.mounts {
                    mounts.push(Mount::parse(m, Some(&exp)).map_err(|e| PlanError::at(line, e.0))?);
                }
                let (cmdline, script) = run_command_line(&r.command, ins);
                let argv = self.resolve(&cmdline);
                let args = self.build_arg_env();
                // History shows the build args the Dockerfile uses (not bare proxy args).
                let shown: Vec<String> = args
                    .iter()
                    .filter(|kv| {
                        let k = kv.split('=').next().unwrap_or("");
                        self.args.declared.contains_key(k) || !PROXY_ARGS.contains(&k)
                    })
                    .cloned()
                    .collect();
                let mut save = Vec::new();
                if !args.is_empty() {
                    save.push(format!("|{}", shown.len()));
                    save.extend(shown);
                }
                save.extend(argv.iter().cloned());
                let created_by = save.join(" ");
                let mut env = self.image.config.env.clone().unwrap_or_default();
                env.extend(args);
                let mut cache = created_by.clone();
                for m in &r.mounts {
                    cache.push_str(&format!(" --mount={m}"));
                }
                if let Some(n) = &r.network {
                    cache.push_str(&format!(" --network={n}"));
                }
                if let Some((name, data)) = &script {
                    cache.push_str(&format!(" <<{name}\n{data}"));
                }
                let h = History {
                    created_by: Some(created_by),
                    ..Default::default()
                };
                let run = RunStep {
                    argv,
                    env,
                    user: self.image.config.user.clone().filter(|u| !u.is_empty()),
                    workdir: self
                        .image
                        .config
                        .working_dir
                        .clone()
                        .filter(|w| !w.is_empty()),
                    mounts,
                    network: r.network.clone(),
                    security: r.security.clone(),
                    script,
                };
                Ok(step(StepKind::Run(run), h, cache))
            }
            Command::Copy(c) | Command::Add(c) => {
                let add = matches!(ins.command, Command::Add(_));
                let cs = self.copy_step(c, add, line)?;
                let text = cs.created_by(&self.shell(), &cs.sources.join(" "));
                let mut cache = format!(
                    "{} {:?} {:?} {:?} {} {} {:?} {:?}",
                    if add { "ADD" } else { "COPY" },
                    cs.from,
                    cs.chown,
                    cs.chmod,
                    cs.link,
                    cs.parents,
                    cs.exclude,
                    cs.checksum
                );
                cache.push_str(&format!(" {:?} -> {}", cs.sources, cs.dest));
                for i in &cs.inline {
                    cache.push_str(&format!(" <<{}\n{}", i.name, i.content));
                }
                let h = History {
                    created_by: Some(text),
                    ..Default::default()
                };
                Ok(step(StepKind::Copy(cs), h, cache))
            }
            Command::From(_) => Err(PlanError::at(line, "FROM inside a stage")),
            Command::Invalid => Err(PlanError::at(
                line,
                format!("unknown instruction: {}", ins.keyword),
            )),
        }
    }

    fn copy_step(&self, c: &CopyCmd, add: bool, line: usize) -> Result<CopyStep, PlanError> {
        let mut sources = Vec::new();
        for s in &c.sources {
            sources.push(self.word(s, line)?);
        }
        let mut body = Lexer::new('\\');
        body.skip_process_quotes = true;
        let env = self.expansion_env();
        let mut inline = Vec::new();
        for i in &c.inline {
            let content = if i.expand {
                body.process_word(&i.content, &env)
                    .map_err(|e| PlanError::at(line, e.0))?
            } else {
                i.content.clone()
            };
            inline.push(InlineSource {
                content,
                ..i.clone()
            });
        }
        let dest = self.word(&c.dest, line)?;
        let workdir = self.image.config.working_dir.clone().unwrap_or_default();
        let dest = normalize_dest(&workdir, &dest);
        let from = match &c.from {
            Some(f) => {
                let f = expand(&self.lex, f, &self.plan.meta_args, line)?;
                Some(
                    resolve_source(&self.plan.stages[..self.stage], self.stage, &f)
                        .map_err(|e| PlanError::at(line, e))?,
                )
            }
            None => None,
        };
        Ok(CopyStep {
            add,
            sources,
            inline,
            dest,
            from,
            chown: self.opt_word(&c.chown, line)?,
            chmod: self.opt_word(&c.chmod, line)?,
            link: c.link,
            parents: c.parents,
            exclude: c.exclude.clone(),
            checksum: self.opt_word(&c.checksum, line)?,
            keep_git_dir: c.keep_git_dir,
            unpack: c.unpack,
        })
    }

    /// Shell form gets the shell prepended; exec form is taken as is.
    fn resolve(&self, c: &CommandLine) -> Vec<String> {
        match c {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }
}

/// The command a RUN runs, with BuildKit's heredoc handling: a RUN whose whole command is one
/// heredoc runs the heredoc's content (or, when it starts with `#!`, the heredoc as a script
/// file); otherwise the heredocs are appended to the command line for the shell to read.
fn run_command_line(c: &CommandLine, ins: &Instruction) -> (CommandLine, Option<(String, String)>) {
    let CommandLine::Shell(line) = c else {
        return (c.clone(), None);
    };
    if ins.heredocs.is_empty() {
        return (c.clone(), None);
    }
    if let Ok(Some(h)) = parser::parse_heredoc_word(line) {
        let doc = ins
            .heredocs
            .iter()
            .find(|d| d.name == h.name)
            .unwrap_or(&ins.heredocs[0]);
        let data = doc.body();
        if data.starts_with("#!") {
            let path = format!("/dev/pipes/{}", doc.name);
            return (
                CommandLine::Exec(vec![path]),
                Some((doc.name.clone(), data)),
            );
        }
        return (CommandLine::Shell(data), None);
    }
    let mut s = line.clone();
    for d in &ins.heredocs {
        s.push('\n');
        s.push_str(&d.content);
        s.push_str(&d.name);
    }
    (CommandLine::Shell(s), None)
}

/// WORKDIR: an absolute path is cleaned; a relative one is joined to the current one.
pub fn normalize_workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        clean_path(requested)
    } else {
        clean_path(&format!("/{current}/{requested}"))
    }
}

/// A COPY destination: relative to the working directory; a trailing `/` kept.
pub fn normalize_dest(workdir: &str, dest: &str) -> String {
    let dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.");
    let mut p = if dest.starts_with('/') {
        clean_path(dest)
    } else {
        clean_path(&format!("/{workdir}/{dest}"))
    };
    if dir && !p.ends_with('/') {
        p.push('/');
    }
    p
}

/// Go's `path.Clean` for absolute paths.
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// `80`, `80/udp`, `8000-8002/tcp`, `127.0.0.1:8080:80` → exposed-port keys (`80/tcp`).
pub fn port_keys(spec: &str) -> Result<Vec<String>, String> {
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let (port, proto) = match container.split_once('/') {
        Some((p, pr)) => (p, pr.to_ascii_lowercase()),
        None => (container, "tcp".to_owned()),
    };
    if port.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {port}");
    let (start, end) = match port.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = port.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad());
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn valid_signal(s: &str) -> bool {
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    if let Ok(n) = s.parse::<u32>() {
        return n > 0 && n <= 64;
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if NAMES.contains(&name) {
        return true;
    }
    // RTMIN+n / RTMAX-n
    for (base, sep) in [("RTMIN", '+'), ("RTMAX", '-')] {
        if name == base {
            return true;
        }
        if let Some(n) = name.strip_prefix(base).and_then(|r| r.strip_prefix(sep)) {
            return n.parse::<u32>().is_ok_and(|n| n <= 30);
        }
    }
    false
}

/// The config's `Healthcheck` (Docker's JSON, durations in ns, zero values left out) and the
/// history text (Go's `%+v` of the struct).
fn healthcheck_config(hc: &HealthcheckCmd) -> (serde_json::Value, String) {
    let c = match hc {
        HealthcheckCmd::None => parser::Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        },
        HealthcheckCmd::Check(c) => c.clone(),
    };
    let mut m = serde_json::Map::new();
    m.insert("Test".into(), serde_json::json!(c.test));
    for (k, v) in [
        ("Interval", c.interval),
        ("Timeout", c.timeout),
        ("StartPeriod", c.start_period),
        ("StartInterval", c.start_interval),
    ] {
        if v != 0 {
            m.insert(k.into(), serde_json::json!(v));
        }
    }
    if c.retries != 0 {
        m.insert("Retries".into(), serde_json::json!(c.retries));
    }
    let text = format!(
        "HEALTHCHECK &{{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        gofmt::plain_list(&c.test),
        berth_core::duration::format(c.interval),
        berth_core::duration::format(c.timeout),
        berth_core::duration::format(c.start_period),
        berth_core::duration::format(c.start_interval),
        c.retries
    );
    (serde_json::Value::Object(m), text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amd64() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }

    fn opts() -> BuildOptions {
        BuildOptions {
            platform: amd64(),
            build_platform: amd64(),
            ..Default::default()
        }
    }

    fn plan(text: &str, o: &BuildOptions) -> BuildPlan {
        let df = Dockerfile::parse(text).unwrap();
        BuildPlan::new(&df, o).unwrap()
    }

    /// Dispatches every step of a stage, committing layer steps with no layer.
    fn build(p: &BuildPlan, stage: usize, base: Option<&ImageConfig>) -> (ImageConfig, Vec<Step>) {
        let mut b = p.stage_builder(stage, base).unwrap();
        let mut steps = Vec::new();
        while let Some(s) = b.next_step() {
            let s = s.unwrap();
            if s.kind != StepKind::Metadata {
                b.commit(&s, None, None);
            }
            steps.push(s);
        }
        (b.finish(Some("2024-01-01T00:00:00Z")), steps)
    }

    fn base_with(f: impl FnOnce(&mut RunConfig)) -> ImageConfig {
        let mut c = ImageConfig {
            created: None,
            author: None,
            comment: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            config: RunConfig::default(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            history: vec![],
        };
        f(&mut c.config);
        c
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().architecture,
            "amd64"
        );
        assert_eq!(Platform::parse("arm64").unwrap().to_string(), "linux/arm64");
        assert!(Platform::parse("linux//x").is_err());
        let a = platform_args(&p, &amd64());
        assert_eq!(a["TARGETPLATFORM"], "linux/arm64/v8");
        assert_eq!(a["TARGETARCH"], "arm64");
        assert_eq!(a["TARGETVARIANT"], "v8");
        assert_eq!(a["BUILDOS"], "linux");
        assert_eq!(a["BUILDVARIANT"], "");
    }

    #[test]
    fn global_args_expand_from_and_build_args_override() {
        let text = "ARG VERSION=3.19\nARG IMG=alpine\nFROM ${IMG}:${VERSION} AS base\nFROM --platform=$BUILDPLATFORM busybox:$TARGETARCH\n";
        let p = plan(text, &opts());
        assert_eq!(p.stages[0].base, Base::Image("alpine:3.19".into()));
        assert_eq!(p.stages[1].base, Base::Image("busybox:amd64".into()));
        assert_eq!(p.stages[1].platform, Some(amd64()));
        let o = opts().with_build_args(["VERSION=3.20", "UNUSED=1", "HTTP_PROXY=http://p"], |_| {
            None
        });
        let p = plan(text, &o);
        assert_eq!(p.stages[0].base, Base::Image("alpine:3.20".into()));
        assert_eq!(
            p.warnings,
            vec!["[Warning] One or more build-args [UNUSED] were not consumed"]
        );
        assert_eq!(p.unused_build_args, vec!["UNUSED"]);
        let e =
            BuildPlan::new(&Dockerfile::parse("ARG X\nFROM $X\n").unwrap(), &opts()).unwrap_err();
        assert_eq!(e.message, "base name ($X) should not be blank");
    }

    #[test]
    fn stage_graph_target_and_waves() {
        let text = "\
FROM alpine AS deps
RUN make deps
FROM golang AS build
COPY --from=deps /deps /deps
RUN make
FROM alpine AS docs
RUN make docs
FROM build AS test
RUN make test
FROM scratch
COPY --from=build /app /app
COPY --from=docs /docs /docs
COPY --from=busybox:1.36 /bin/busybox /bin/
";
        let p = plan(text, &opts());
        assert_eq!(p.target, 4);
        // `test` is not needed by the final stage.
        assert_eq!(p.order, vec![0, 1, 2, 4]);
        assert_eq!(p.stages[1].deps, vec![0]);
        assert_eq!(p.stages[3].base, Base::Stage(1));
        assert_eq!(p.stages[4].deps, vec![1, 2]);
        assert_eq!(p.stages[4].base, Base::Scratch);
        assert_eq!(p.stages[4].images, vec!["busybox:1.36"]);
        assert_eq!(p.waves, vec![vec![0, 2], vec![1], vec![4]]);

        let mut o = opts();
        o.target = Some("test".into());
        let p = plan(text, &o);
        assert_eq!(p.order, vec![0, 1, 3]);
        assert_eq!(p.waves, vec![vec![0], vec![1], vec![3]]);
        o.target = Some("nope".into());
        let e = BuildPlan::new(&Dockerfile::parse(text).unwrap(), &o).unwrap_err();
        assert_eq!(e.message, "target stage \"nope\" could not be found");

        // Index references and their errors.
        let p = plan("FROM a\nFROM b\nCOPY --from=0 /x /x\n", &opts());
        assert_eq!(p.stages[1].deps, vec![0]);
        let e = BuildPlan::new(
            &Dockerfile::parse("FROM a\nCOPY --from=0 /x /x\n").unwrap(),
            &opts(),
        )
        .unwrap_err();
        assert!(e.message.contains("refers to current build stage"), "{e}");
        // RUN --mount=from= is a dependency too.
        let p = plan(
            "FROM a AS x\nFROM b\nRUN --mount=from=x,target=/x true\n",
            &opts(),
        );
        assert_eq!(p.stages[1].deps, vec![0]);
    }

    #[test]
    fn arg_scoping() {
        let text = "\
ARG V=global
ARG ONLY_GLOBAL=g
FROM alpine
RUN echo $V
ARG V
ARG LOCAL=l
ENV E=$V-$LOCAL-$ONLY_GLOBAL
FROM alpine
ARG V=second
ENV E=$V
";
        let p = plan(text, &opts());
        let (c0, steps) = build(&p, 0, None);
        let env = c0.config.env.unwrap();
        // Redeclared without a value: takes the global one; ONLY_GLOBAL not redeclared: empty.
        assert!(env.contains(&"E=global-l-".to_owned()), "{env:?}");
        // The RUN before `ARG V` does not see V in its environment.
        match &steps[0].kind {
            StepKind::Run(r) => assert!(!r.env.iter().any(|e| e.starts_with("V=")), "{:?}", r.env),
            k => panic!("{k:?}"),
        }
        let (c1, _) = build(&p, 1, None);
        assert!(c1.config.env.unwrap().contains(&"E=second".to_owned()));
        // --build-arg overrides the default.
        let o = opts().with_build_args(["V=cli"], |_| None);
        let p = plan(text, &o);
        let (c1, _) = build(&p, 1, None);
        assert!(c1.config.env.unwrap().contains(&"E=cli".to_owned()));
        // Automatic platform args need a redeclaration inside a stage.
        let p = plan(
            "FROM a\nENV A=x$TARGETARCH\nARG TARGETARCH\nENV B=$TARGETARCH\n",
            &opts(),
        );
        let env = build(&p, 0, None).0.config.env.unwrap();
        assert!(env.contains(&"A=x".to_owned()));
        assert!(env.contains(&"B=amd64".to_owned()));
    }

    #[test]
    fn run_history_with_build_args() {
        let text = "FROM a\nARG V=1\nRUN make\nRUN [\"echo\", \"hi\"]\n";
        let o = opts().with_build_args(["HTTP_PROXY=http://proxy"], |_| None);
        let p = plan(text, &o);
        let (cfg, steps) = build(&p, 0, None);
        match &steps[1].kind {
            StepKind::Run(r) => {
                assert_eq!(r.argv, vec!["/bin/sh", "-c", "make"]);
                assert!(r.env.contains(&"V=1".to_owned()));
                assert!(r.env.contains(&"HTTP_PROXY=http://proxy".to_owned()));
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(
            steps[1].history.created_by.as_deref(),
            Some("|1 V=1 /bin/sh -c make")
        );
        assert_eq!(
            steps[2].history.created_by.as_deref(),
            Some("|1 V=1 echo hi")
        );
        let h: Vec<_> = cfg
            .history
            .iter()
            .map(|h| (h.created_by.clone().unwrap(), h.empty_layer))
            .collect();
        assert_eq!(h[0], ("/bin/sh -c #(nop)  ARG V=1".into(), true));
        assert_eq!(h[1].0, "|1 V=1 /bin/sh -c make");
        assert!(h[1].1, "committed with no layer: empty");
        assert!(cfg
            .history
            .iter()
            .all(|h| h.created.as_deref() == Some("2024-01-01T00:00:00Z")));
        // Without build args: the plain command.
        let p = plan("FROM a\nRUN make\n", &opts());
        assert_eq!(
            build(&p, 0, None).1[0].history.created_by.as_deref(),
            Some("/bin/sh -c make")
        );
    }

    #[test]
    fn cmd_entrypoint_interplay() {
        let base = base_with(|c| c.cmd = Some(vec!["sh".into()]));
        // ENTRYPOINT resets the base's CMD.
        let p = plan("FROM a\nENTRYPOINT [\"/app\"]\n", &opts());
        let (c, steps) = build(&p, 0, Some(&base));
        assert_eq!(c.config.entrypoint, Some(vec!["/app".into()]));
        assert_eq!(c.config.cmd, None);
        assert_eq!(
            steps[0].history.created_by.as_deref(),
            Some("/bin/sh -c #(nop)  ENTRYPOINT [\"/app\"]")
        );
        // …but not a CMD of this Dockerfile, whatever the order.
        let p = plan("FROM a\nCMD [\"--help\"]\nENTRYPOINT /app run\n", &opts());
        let (c, _) = build(&p, 0, Some(&base));
        assert_eq!(c.config.cmd, Some(vec!["--help".into()]));
        assert_eq!(
            c.config.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "/app run".into()])
        );
        // Shell form uses SHELL.
        let p = plan(
            "FROM a\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nCMD echo $HOME\n",
            &opts(),
        );
        let (c, steps) = build(&p, 0, Some(&base));
        assert_eq!(
            c.config.cmd,
            Some(vec![
                "/bin/bash".into(),
                "-eu".into(),
                "-c".into(),
                "echo $HOME".into()
            ])
        );
        assert_eq!(
            steps[1].history.created_by.as_deref(),
            Some("/bin/bash -eu -c #(nop)  CMD [\"/bin/bash\" \"-eu\" \"-c\" \"echo $HOME\"]")
        );
        // The classic builder writes SHELL's entry with the new shell already in effect.
        assert_eq!(
            steps[0].history.created_by.as_deref(),
            Some("/bin/bash -eu -c #(nop)  SHELL [/bin/bash -eu -c]")
        );
        // ENTRYPOINT [] clears it.
        let base = base_with(|c| c.entrypoint = Some(vec!["/x".into()]));
        let p = plan("FROM a\nENTRYPOINT []\n", &opts());
        assert_eq!(build(&p, 0, Some(&base)).0.config.entrypoint, None);
    }

    #[test]
    fn config_of_metadata_instructions() {
        let text = "\
FROM a
MAINTAINER Jane <j@x>
ENV A=1 B=\"two words\"
ENV A 3
LABEL org.x=\"$B\" plain=1
EXPOSE 80 53/udp ${PORTS}
USER app:app
VOLUME [\"/data\", \"$A\"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/
ONBUILD RUN echo triggered
WORKDIR /srv
WORKDIR app/../www
";
        let base = base_with(|c| c.env = Some(vec!["PORTS=8000-8001".into()]));
        let p = plan(text, &opts());
        let (c, steps) = build(&p, 0, Some(&base));
        let rc = &c.config;
        assert_eq!(c.author.as_deref(), Some("Jane <j@x>"));
        assert_eq!(
            rc.env.as_ref().unwrap(),
            &vec![
                "PORTS=8000-8001".to_owned(),
                format!("PATH={DEFAULT_PATH}"),
                "A=3".into(),
                "B=two words".into()
            ]
        );
        assert_eq!(rc.labels.as_ref().unwrap()["org.x"], "two words");
        let ports: Vec<_> = rc.exposed_ports.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]);
        assert_eq!(rc.user.as_deref(), Some("app:app"));
        let vols: Vec<_> = rc.volumes.as_ref().unwrap().keys().cloned().collect();
        assert_eq!(vols, vec!["/data", "3"]);
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(
            rc.healthcheck.as_ref().unwrap(),
            &serde_json::json!({"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30_000_000_000i64, "Retries": 3})
        );
        assert_eq!(
            rc.on_build.as_ref().unwrap(),
            &vec!["RUN echo triggered".to_owned()]
        );
        assert_eq!(rc.working_dir.as_deref(), Some("/srv/www"));
        let by: Vec<String> = steps
            .iter()
            .map(|s| s.history.created_by.clone().unwrap())
            .collect();
        assert_eq!(by[0], "/bin/sh -c #(nop)  MAINTAINER Jane <j@x>");
        assert_eq!(by[1], "/bin/sh -c #(nop)  ENV A=1 B=two words");
        // Sorted as written (`$` first), then expanded, as the classic builder does.
        assert_eq!(by[4], "/bin/sh -c #(nop)  EXPOSE 8000-8001 53/udp 80");
        assert_eq!(by[6], "/bin/sh -c #(nop)  VOLUME [/data 3]");
        assert_eq!(
            by[8],
            "/bin/sh -c #(nop)  HEALTHCHECK &{Test:[CMD-SHELL curl -f http://localhost/] Interval:30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}"
        );
        assert_eq!(by[9], "/bin/sh -c #(nop)  ONBUILD RUN echo triggered");
        assert_eq!(by[11], "/bin/sh -c #(nop) WORKDIR /srv/www");
        assert!(matches!(steps[10].kind, StepKind::Workdir(ref d) if d == "/srv"));
        // Every metadata entry is an empty layer; history author is the maintainer.
        assert!(c.history.iter().all(|h| h.empty_layer));
        assert_eq!(c.history[1].author.as_deref(), Some("Jane <j@x>"));

        let e = BuildPlan::new(
            &Dockerfile::parse("FROM a\nSTOPSIGNAL SIGFOO\n").unwrap(),
            &opts(),
        )
        .unwrap()
        .stage_builder(0, None)
        .unwrap()
        .next_step()
        .unwrap()
        .unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:2: Invalid signal: SIGFOO");
    }

    #[test]
    fn copy_steps_expand_and_join_workdir() {
        let text = "\
FROM a AS build
FROM a
ARG SRC=src
WORKDIR /app
COPY --chown=${U:-app} $SRC/ ./out/
ADD --chmod=644 https://example.com/x.tgz rel
COPY --from=build /bin/x /usr/bin/
COPY <<EOF <<'RAW' conf/
v=$SRC
EOF
v=$SRC
RAW
";
        let p = plan(text, &opts());
        let (_, steps) = build(&p, 1, None);
        let copies: Vec<&CopyStep> = steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Copy(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(copies[0].sources, vec!["src/"]);
        assert_eq!(copies[0].dest, "/app/out/");
        assert_eq!(copies[0].chown.as_deref(), Some("app"));
        assert!(copies[1].add);
        assert_eq!(copies[1].dest, "/app/rel");
        assert_eq!(copies[2].from, Some(Source::Stage(0)));
        assert_eq!(copies[3].inline[0].content, "v=src\n");
        assert_eq!(copies[3].inline[1].content, "v=$SRC\n");
        assert_eq!(copies[3].dest, "/app/conf/");
        assert_eq!(
            copies[0].created_by(&["/bin/sh".into(), "-c".into()], "dir:abc"),
            "/bin/sh -c #(nop) COPY --chown=app dir:abc in /app/out/ "
        );
    }

    #[test]
    fn run_heredocs_and_mounts() {
        let text = "\
FROM a
ENV DIR=/cache
RUN <<EOF
echo one
echo two
EOF
RUN <<EOF
#!/usr/bin/env python3
print(1)
EOF
RUN cat <<A > /x
hello
A
RUN --mount=type=cache,target=$DIR --network=none make
";
        let p = plan(text, &opts());
        let (_, steps) = build(&p, 0, None);
        let runs: Vec<&RunStep> = steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Run(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(runs[0].argv, vec!["/bin/sh", "-c", "echo one\necho two\n"]);
        assert_eq!(runs[1].argv, vec!["/dev/pipes/EOF"]);
        assert_eq!(
            runs[1].script,
            Some(("EOF".into(), "#!/usr/bin/env python3\nprint(1)\n".into()))
        );
        assert_eq!(
            runs[2].argv,
            vec!["/bin/sh", "-c", "cat <<A > /x\nhello\nA"]
        );
        assert_eq!(runs[3].mounts[0].target.as_deref(), Some("/cache"));
        assert_eq!(runs[3].network.as_deref(), Some("none"));
    }

    #[test]
    fn onbuild_triggers_of_the_base_run_first_and_are_not_inherited() {
        let base = base_with(|c| {
            c.on_build = Some(vec!["ENV FROM_TRIGGER=1".into(), "RUN echo hi".into()])
        });
        let p = plan("FROM a\nUSER x\n", &opts());
        let (c, steps) = build(&p, 0, Some(&base));
        assert_eq!(steps.len(), 3);
        assert!(matches!(steps[1].kind, StepKind::Run(_)));
        assert_eq!(c.config.on_build, None);
        assert!(c.config.env.unwrap().contains(&"FROM_TRIGGER=1".to_owned()));
    }

    #[test]
    fn scratch_gets_path_and_platform_and_labels_from_options() {
        let mut o = opts();
        o.labels.insert("built.by".into(), "berth".into());
        let p = plan("FROM scratch\nCOPY a /a\n", &o);
        let (c, steps) = build(&p, 0, None);
        assert_eq!(c.architecture, "amd64");
        assert_eq!(c.config.env, Some(vec![format!("PATH={DEFAULT_PATH}")]));
        assert_eq!(c.config.labels.unwrap()["built.by"], "berth");
        assert_eq!(steps.last().unwrap().text, "LABEL built.by=berth");
        assert_eq!(p.step_count(), 2);
    }

    #[test]
    fn layer_steps_must_be_committed() {
        let p = plan("FROM a\nRUN x\nRUN y\n", &opts());
        let mut b = p.stage_builder(0, None).unwrap();
        let s = b.next_step().unwrap().unwrap();
        assert!(b.next_step().unwrap().is_err());
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        b.commit(&s, Some(d.clone()), None);
        assert!(b.next_step().unwrap().is_ok());
        assert_eq!(b.config().rootfs.diff_ids, vec![d]);
        assert!(!b.config().history[0].empty_layer);
    }

    /// Which instructions expand variables (Docker's list) and which leave them to the shell.
    #[test]
    fn expansion_per_instruction() {
        let text = "\
FROM a
ENV V=val D=/dir U=app S=SIGTERM
WORKDIR $D
USER $U
STOPSIGNAL $S
LABEL l=$V
VOLUME $D/vol
EXPOSE 80$V
COPY $V.txt $D/
ONBUILD RUN echo $V
RUN echo $V
CMD echo $V
ENTRYPOINT [\"echo\", \"$V\"]
HEALTHCHECK CMD echo $V
SHELL [\"/bin/sh\", \"-c\", \"$V\"]
";
        let p = plan(&text.replace("EXPOSE 80$V\n", ""), &opts());
        let (c, steps) = build(&p, 0, None);
        let rc = &c.config;
        assert_eq!(rc.working_dir.as_deref(), Some("/dir"));
        assert_eq!(rc.user.as_deref(), Some("app"));
        assert_eq!(rc.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(rc.labels.as_ref().unwrap()["l"], "val");
        assert!(rc.volumes.as_ref().unwrap().contains_key("/dir/vol"));
        let copy = steps.iter().find_map(|s| match &s.kind {
            StepKind::Copy(c) => Some(c.clone()),
            _ => None,
        });
        let copy = copy.unwrap();
        assert_eq!(
            (copy.sources[0].as_str(), copy.dest.as_str()),
            ("val.txt", "/dir/")
        );
        // Not expanded by the builder:
        assert_eq!(rc.on_build.as_ref().unwrap()[0], "RUN echo $V");
        let run = steps.iter().find_map(|s| match &s.kind {
            StepKind::Run(r) => Some(r.clone()),
            _ => None,
        });
        assert_eq!(run.unwrap().argv, vec!["/bin/sh", "-c", "echo $V"]);
        assert_eq!(rc.cmd.as_ref().unwrap()[2], "echo $V");
        assert_eq!(rc.entrypoint.as_ref().unwrap()[1], "$V");
        assert_eq!(rc.healthcheck.as_ref().unwrap()["Test"][1], "echo $V");
        assert_eq!(rc.shell.as_ref().unwrap()[2], "$V");
        // EXPOSE expands into words.
        let p = plan("FROM a\nENV P=\"80 443/udp\"\nEXPOSE $P\n", &opts());
        let ports: Vec<_> = build(&p, 0, None)
            .0
            .config
            .exposed_ports
            .unwrap()
            .into_keys()
            .collect();
        assert_eq!(ports, vec!["443/udp", "80/tcp"]);
        // Single quotes and escapes keep a `$`.
        let p = plan("FROM a\nENV V=x\nENV A='$V' B=\\$V C=\"$V\"\n", &opts());
        let env = build(&p, 0, None).0.config.env.unwrap();
        assert!(
            env.ends_with(&["A=$V".to_owned(), "B=$V".to_owned(), "C=x".to_owned()]),
            "{env:?}"
        );
    }

    #[test]
    fn paths_and_ports() {
        assert_eq!(normalize_workdir("/a", "b/../c"), "/a/c");
        assert_eq!(normalize_workdir("", "rel"), "/rel");
        assert_eq!(normalize_workdir("/a", "/x/./y/"), "/x/y");
        assert_eq!(normalize_dest("/app", "."), "/app/");
        assert_eq!(normalize_dest("", "x"), "/x");
        assert_eq!(port_keys("8080").unwrap(), vec!["8080/tcp"]);
        assert_eq!(port_keys("53/UDP").unwrap(), vec!["53/udp"]);
        assert!(port_keys("80/xyz").is_err());
        assert!(port_keys("abc").is_err());
        assert!(valid_signal("SIGTERM") && valid_signal("term") && valid_signal("9"));
        assert!(valid_signal("SIGRTMIN+3") && !valid_signal("SIGNOPE") && !valid_signal("0"));
    }
}
