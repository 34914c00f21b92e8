//! berth's builder, the parts that need no engine: the Dockerfile parser, Docker's variable
//! expansion, the build plan (stages, their graph, build args, the image config and history
//! each instruction produces), `.dockerignore` and the context walker, cache keys, and the
//! linter behind `berth lint`.
//!
//! The engine drives a build with it like this (it owns running RUN steps, making layers and
//! storing images):
//!
//! ```no_run
//! use berth_build::{BuildOptions, BuildPlan, CacheKey, Context, ContextHasher, Dockerfile,
//!     FileHashCache, StepKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let text = std::fs::read_to_string("ctx/Dockerfile")?;
//! let df = Dockerfile::parse(&text)?;                  // errors show the line, like BuildKit
//! let opts = BuildOptions::default()
//!     .with_build_args(["VERSION=1.2"], |k| std::env::var(k).ok());
//! let plan = BuildPlan::new(&df, &opts)?;              // stages, graph, --target, waves
//! for w in &plan.warnings { eprintln!("{w}"); }        // unused --build-arg
//! let ctx = Context::open("ctx")?.keep("Dockerfile");  // .dockerignore applied
//! let mut hashes = FileHashCache::open("/var/lib/berth/build/hashes.json");
//! for &i in &plan.order {                              // or plan.waves, in parallel
//!     let stage = &plan.stages[i];
//!     // The engine resolves stage.base (image, earlier stage, scratch) to its config…
//!     let base_config = None;
//!     let mut parent = CacheKey::base("scratch", &plan.stage_platform(i).to_string());
//!     let mut builder = plan.stage_builder(i, base_config)?;
//!     while let Some(step) = builder.next_step() {
//!         let step = step?;
//!         let content = match &step.kind {
//!             StepKind::Copy(c) if c.from.is_none() => Some(
//!                 ContextHasher::new(&ctx, &mut hashes).hash_sources(&c.sources)?.digest),
//!             _ => None,
//!         };
//!         let key = step.cache_key(&parent, content.as_deref());
//!         match &step.kind {
//!             StepKind::Metadata => {}                 // config updated, history written
//!             _ => builder.commit(&step, None, None),  // run it (or reuse `key`), then commit
//!         }
//!         parent = key;
//!     }
//!     let _config = builder.finish(Some("2024-01-01T00:00:00Z"));
//!     let _ = stage;
//! }
//! hashes.save()?;
//! # Ok(()) }
//! ```
//!
//! Modules:
//! - [`parser`]: [`Dockerfile::parse`] (strict) and [`Dockerfile::parse_lenient`] (for the
//!   linter); every instruction keeps its line range and source; [`ParseError`] displays as
//!   BuildKit does.
//! - [`shell`]: [`Lexer`], Docker's shell lexer (`$VAR`, `${VAR:-x}`, quotes, escapes).
//! - [`plan`]: [`BuildPlan`], [`StageBuilder`], [`Step`]: see its docs for which instructions
//!   expand what and the classic builder's history texts.
//! - [`mount`]: `RUN --mount` values.
//! - [`ignore`], [`context`]: `.dockerignore` ([`Ignore`]) and [`Context::walk`].
//! - [`cache`]: [`CacheKey`], [`FileHashCache`], [`ContextHasher`].
//! - [`lint`]: [`lint::lint`] and its rules.

pub mod cache;
pub mod context;
pub mod gofmt;
pub mod ignore;
pub mod lint;
pub mod mount;
pub mod parser;
pub mod plan;
pub mod shell;

pub use cache::{CacheKey, ContextHasher, FileHashCache, SourceError, SourceHash};
pub use context::{Context, ContextError, Entry, EntryKind};
pub use ignore::{Ignore, IgnoreError};
pub use parser::{Command, CommandLine, Dockerfile, Instruction, ParseError};
pub use plan::{
    Base, BuildOptions, BuildPlan, CopyStep, PlanError, Platform, RunStep, Source, Stage,
    StageBuilder, Step, StepKind,
};
pub use shell::Lexer;

impl berth_core::error::HasErrorKind for ParseError {
    fn kind(&self) -> berth_core::ErrorKind {
        berth_core::ErrorKind::InvalidArgument
    }
}
