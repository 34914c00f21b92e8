//! What dispatching an instruction hands the engine: a [`Step`] (its history entry and cache
//! text) and its [`StepKind`] — a RUN ([`RunStep`]) or COPY/ADD ([`CopyStep`]) to execute, a
//! working directory to create, or nothing (metadata, already committed).

use berth_image::oci::History;

use crate::mount::Mount;
use crate::parser::InlineSource;

use super::Source;

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
