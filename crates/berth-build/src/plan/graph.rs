//! Phase 1 of a build: [`BuildPlan::new`] turns the Dockerfile and the [`BuildOptions`] into
//! stages — global ARGs expand each FROM, a base is scratch, an image or an earlier stage,
//! `COPY --from` and `RUN --mount=from=` add dependencies — then `--target` picks the stages to
//! build, in dependency order and in waves that can build in parallel; unused build args are
//! warned about.

use std::collections::{BTreeMap, BTreeSet};

use crate::gofmt;
use crate::mount::Mount;
use crate::parser::{Command, Dockerfile, Instruction};
use crate::shell::Lexer;

use super::{expand, platform_args, PlanError, Platform, PROXY_ARGS};

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
    pub(super) options: BuildOptions,
}

impl BuildPlan {
    /// Plans a build of `df` (see the module docs).
    pub fn new(df: &Dockerfile, options: &BuildOptions) -> Result<BuildPlan, PlanError> {
        let lex = Lexer::new(df.escape);
        let opts = &options.build_args;
        let auto = platform_args(&options.platform, &options.build_platform);
        let froms = df.froms();
        let (meta, mut referenced) = global_args(df, &froms, &lex, opts, &auto)?;

        let mut stages: Vec<Stage> = Vec::new();
        for (si, &fi) in froms.iter().enumerate() {
            if let Some(stage) = plan_stage(df, &froms, si, fi, &lex, &meta, &stages)? {
                stages.push(stage);
            }
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
        let order = needed_in_order(&stages, target);
        let waves = waves(&stages, &order);

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
}

/// The global scope: the automatic platform args (`--build-arg` may override them), then each
/// ARG before the first FROM (expanded with what comes before it, `--build-arg` overriding its
/// default). Returns the values and the names those ARGs declared.
fn global_args(
    df: &Dockerfile,
    froms: &[usize],
    lex: &Lexer,
    opts: &BTreeMap<String, Option<String>>,
    auto: &BTreeMap<String, String>,
) -> Result<(BTreeMap<String, String>, BTreeSet<String>), PlanError> {
    let mut meta: BTreeMap<String, String> = auto.clone();
    for (k, v) in opts {
        if let (true, Some(v)) = (auto.contains_key(k), v) {
            meta.insert(k.clone(), v.clone());
        }
    }
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    let first_from = froms.first().copied().unwrap_or(df.instructions.len());
    for ins in &df.instructions[..first_from] {
        let Command::Arg(decls) = &ins.command else {
            continue;
        };
        for d in decls {
            let name = expand(lex, &d.name, &meta, ins.line)?;
            let default = match &d.default {
                Some(v) => Some(expand(lex, v, &meta, ins.line)?),
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
    Ok((meta, referenced))
}

/// Stage `si`: the FROM at instruction `fi` and what follows up to the next FROM, its image
/// and `--platform` expanded with the global args `meta`, its base resolved against the
/// earlier `stages`.
fn plan_stage(
    df: &Dockerfile,
    froms: &[usize],
    si: usize,
    fi: usize,
    lex: &Lexer,
    meta: &BTreeMap<String, String>,
    stages: &[Stage],
) -> Result<Option<Stage>, PlanError> {
    let from_ins = &df.instructions[fi];
    let Command::From(f) = &from_ins.command else {
        return Ok(None);
    };
    let end = froms.get(si + 1).copied().unwrap_or(df.instructions.len());
    let instructions: Vec<Instruction> = df.instructions[fi + 1..end].to_vec();
    let base_name = expand(lex, &f.image, meta, from_ins.line)?;
    if base_name.is_empty() {
        return Err(PlanError::at(
            from_ins.line,
            format!("base name ({}) should not be blank", f.image),
        ));
    }
    let platform = match &f.platform {
        Some(p) => {
            let p = expand(lex, p, meta, from_ins.line)?;
            Some(Platform::parse(&p).map_err(|e| PlanError::at(from_ins.line, e))?)
        }
        None => None,
    };
    let base = if base_name.eq_ignore_ascii_case("scratch") {
        Base::Scratch
    } else if let Some(s) = find_stage(stages, &base_name) {
        Base::Stage(s)
    } else {
        Base::Image(base_name.clone())
    };
    let (deps, images) = stage_deps(&instructions, &base, si, lex, meta, stages)?;
    Ok(Some(Stage {
        index: si,
        name: f.stage_name.clone(),
        base,
        base_name,
        platform,
        from: from_ins.clone(),
        instructions,
        deps,
        images,
    }))
}

/// What stage `si` needs: its base stage and the stages `COPY --from`/`--mount from=` name
/// (sorted), and the images they name (in order of first use).
fn stage_deps(
    instructions: &[Instruction],
    base: &Base,
    si: usize,
    lex: &Lexer,
    meta: &BTreeMap<String, String>,
    stages: &[Stage],
) -> Result<(Vec<usize>, Vec<String>), PlanError> {
    let mut deps = BTreeSet::new();
    let mut images = Vec::new();
    if let Base::Stage(s) = base {
        deps.insert(*s);
    }
    for ins in instructions {
        for src in sources_of(ins) {
            let src = expand(lex, &src, meta, ins.line)?;
            match resolve_source(stages, si, &src).map_err(|e| PlanError::at(ins.line, e))? {
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
    Ok((deps.into_iter().collect(), images))
}

/// The stages the target needs, in index order: all earlier ones are candidates, deps point
/// backwards.
fn needed_in_order(stages: &[Stage], target: usize) -> Vec<usize> {
    let mut needed = vec![false; stages.len()];
    needed[target] = true;
    for i in (0..=target).rev() {
        if needed[i] {
            for &d in &stages[i].deps {
                needed[d] = true;
            }
        }
    }
    (0..stages.len()).filter(|&i| needed[i]).collect()
}

/// `order` grouped in waves: a stage goes one wave after its latest dependency.
fn waves(stages: &[Stage], order: &[usize]) -> Vec<Vec<usize>> {
    let mut level = vec![0usize; stages.len()];
    for &i in order {
        level[i] = stages[i]
            .deps
            .iter()
            .map(|&d| level[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for &i in order {
        if waves.len() <= level[i] {
            waves.resize(level[i] + 1, Vec::new());
        }
        waves[level[i]].push(i);
    }
    waves
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

pub(super) fn resolve_source(
    stages: &[Stage],
    current: usize,
    from: &str,
) -> Result<Source, String> {
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

#[cfg(test)]
mod tests {
    use crate::parser::Dockerfile;
    use crate::plan::testutil::{amd64, opts, plan};
    use crate::plan::*;

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
}
