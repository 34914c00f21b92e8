//! The parsed form of an instruction: [`Instruction`] (keyword, lines, source, flags,
//! heredocs, comments) and the typed [`Command`] it says, with each command's arguments as
//! written (unexpanded).

use super::heredoc::Heredoc;

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword as written (`run`, `Copy`, …).
    pub keyword: String,
    /// First and last line (1-based, inclusive), heredoc bodies included.
    pub line: usize,
    pub end_line: usize,
    /// The logical line: continuations joined, comment lines dropped (BuildKit's `Original`).
    pub original: String,
    /// The source lines `line..=end_line`, verbatim.
    pub source: String,
    /// The builder flags as written (`--mount=type=cache,target=/x`).
    pub flags: Vec<String>,
    /// Heredocs read after the line, in order.
    pub heredocs: Vec<Heredoc>,
    /// Comment lines right above the instruction.
    pub comments: Vec<String>,
    pub command: Command,
}

impl Instruction {
    /// The keyword in capitals (`RUN`); `ONBUILD`'s own.
    pub fn name(&self) -> String {
        self.keyword.to_ascii_uppercase()
    }
}

/// Shell form (a string for the shell) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Shell(String),
    Exec(Vec<String>),
}

impl CommandLine {
    pub fn is_shell(&self) -> bool {
        matches!(self, CommandLine::Shell(_))
    }
}

/// A `key=value` of ENV or LABEL, unexpanded (quotes still in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written in the legacy form `ENV key value`.
    pub legacy: bool,
}

/// A name of ARG, with its default when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// A COPY/ADD source given as a heredoc: a file named `name` holding `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    pub name: String,
    /// The content, tabs already stripped for `<<-`.
    pub content: String,
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromCmd {
    /// The image as written (`alpine:${V}`, `scratch`, a stage name).
    pub image: String,
    /// `AS name`, lower-cased as BuildKit does.
    pub stage_name: Option<String>,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCmd {
    pub command: CommandLine,
    /// `--mount` values as written (expanded and read by [`crate::mount::Mount::parse`]).
    pub mounts: Vec<String>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// `--security=sandbox|insecure`.
    pub security: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCmd {
    /// Source paths (or URLs for ADD), unexpanded.
    pub sources: Vec<String>,
    /// Sources given as heredocs.
    pub inline: Vec<InlineSource>,
    pub dest: String,
    /// COPY `--from=stage|index|image`.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// COPY `--parents`.
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD `--checksum=`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: Option<bool>,
    /// ADD `--unpack`.
    pub unpack: Option<bool>,
    /// Written as a JSON array.
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthcheckCmd {
    /// `HEALTHCHECK NONE`: turn off a check inherited from the base.
    None,
    Check(Healthcheck),
}

/// A `HEALTHCHECK CMD`, durations in nanoseconds (0: not given, the engine's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", args…]` (exec form) or `["CMD-SHELL", "cmd"]` (shell form).
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub start_interval: i64,
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnbuildCmd {
    /// The trigger as stored in the image's `OnBuild` (`RUN echo hi`).
    pub expression: String,
    /// The trigger parsed (its lines are the ONBUILD's).
    pub trigger: Box<Instruction>,
}

/// What an instruction says, values as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    From(FromCmd),
    Run(RunCmd),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Copy(CopyCmd),
    Add(CopyCmd),
    Workdir(String),
    Env(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Label(Vec<KeyValue>),
    Expose(Vec<String>),
    User(String),
    Volume(Vec<String>),
    Healthcheck(HealthcheckCmd),
    Shell(Vec<String>),
    StopSignal(String),
    Onbuild(OnbuildCmd),
    Maintainer(String),
    /// Only from [`Dockerfile::parse_lenient`](super::Dockerfile::parse_lenient): a keyword
    /// Docker does not know, or an instruction whose arguments are wrong (the error is
    /// reported beside it).
    Invalid,
}
