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
//!
//! Modules, by job:
//! - `graph`: phase 1, [`BuildOptions`] into a [`BuildPlan`] (global ARGs, FROM, the stage
//!   graph, `--target`, order and waves);
//! - `builder`: phase 2, [`StageBuilder`] (its start on the base config, `next_step`,
//!   `commit`, `finish`);
//! - `dispatch`: what each instruction does to the config and history, one function per
//!   instruction (metadata and WORKDIR there, RUN in `run`, COPY/ADD in `copy`);
//! - `args`: ARG scoping within a stage;
//! - `step`: [`Step`] and what the engine must do for it ([`RunStep`], [`CopyStep`]);
//! - `platform`: [`Platform`] and the automatic platform args;
//! - `values`: WORKDIR/COPY paths, EXPOSE port specs, STOPSIGNAL signals.

mod args;
mod builder;
mod copy;
mod dispatch;
mod graph;
mod platform;
mod run;
mod step;
mod values;

#[cfg(test)]
mod testutil;

use std::fmt;

use crate::shell::{Env, Lexer};

pub use builder::StageBuilder;
pub use graph::{Base, BuildOptions, BuildPlan, Source, Stage};
pub use platform::{platform_args, Platform};
pub use step::{CopyStep, RunStep, Step, StepKind};
pub use values::{clean_path, normalize_dest, normalize_workdir, port_keys};

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

fn expand(lex: &Lexer, word: &str, env: &dyn Env, line: usize) -> Result<String, PlanError> {
    lex.process_word(word, env)
        .map_err(|e| PlanError::at(line, e.0))
}
