//! The Dockerfile parser: text → [`Dockerfile`], a list of typed [`Instruction`]s, each with
//! its 1-based line range and its source text.
//!
//! It follows BuildKit's two passes (`frontend/dockerfile/parser` then `instructions`):
//! 1. Lines become logical lines: parser directives at the very top (`# syntax=`, `# escape=`,
//!    `# check=`; the first line that is not one ends them), comments (`#` after optional
//!    whitespace) and blank lines dropped, a line ending in the escape token (optionally
//!    followed by blanks) continued on the next, whose leading whitespace is kept; comment lines
//!    and empty lines inside a continuation are skipped (an empty one earns a warning, as
//!    BuildKit gives). `RUN`, `COPY`, `ADD` (also under `ONBUILD`), when not in JSON form, read
//!    their heredocs (`<<EOF`, `<<-EOF` stripping leading tabs, `<<"EOF"`/`<<'EOF'` not
//!    expanded, several per line, read one after the other) from the following lines.
//! 2. Each logical line is split into keyword, builder flags (`--name=value` words at the front,
//!    quote- and escape-aware, up to `--`) and arguments, which are read per instruction (JSON
//!    array or shell form, `key=value` pairs or the legacy `ENV key value`, …) and checked.
//!
//! Values stay as written: variable expansion depends on the build state and is done by the
//! plan (see [`crate::plan`]), with [`crate::shell::Lexer`].
//!
//! **Why not the `parse-dockerfile` crate** (DESIGN.md's choice): measured against what the
//! builder and the linter need, it (0.1.9) keeps a shell-form command as raw source text, with
//! the continuation escapes and the comment lines inside it (`"echo a \\\n# c\n  b"` where Docker
//! runs `echo a   b`); drops the `<<EOF` words from a RUN command line, which Docker passes to
//! the shell when the heredoc is not the whole command (`cat <<EOF > f`); stops at the first
//! error (the linter wants every finding, including each unknown instruction); leaves `ENV`/
//! `LABEL` pairs, `--mount` and HEALTHCHECK flags unparsed; and reports byte spans where we want
//! BuildKit's line ranges and texts. Fixing each of those on top of it was more code than this
//! parser, so berth has its own.

use std::fmt;

use crate::gofmt;
use crate::shell::{Lexer, NoEnv};

/// The instruction keywords Docker knows.
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A parse error at a place in the Dockerfile, shown the way BuildKit shows it:
///
/// ```text
/// Dockerfile:7
/// --------------------
///    7 | >>> FOO bar
/// --------------------
/// unknown instruction: FOO
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The Dockerfile's name as shown (`Dockerfile`, or the `-f` path).
    pub file: String,
    /// First and last line (1-based) of the offending instruction.
    pub line: usize,
    pub end_line: usize,
    pub message: String,
    /// The offending source lines, without line endings.
    pub source: Vec<String>,
}

impl ParseError {
    pub fn new(line: usize, end_line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            file: "Dockerfile".into(),
            line,
            end_line: end_line.max(line),
            message: message.into(),
            source: Vec::new(),
        }
    }

    /// The same error naming another file (`-f path`).
    pub fn with_file(mut self, file: impl Into<String>) -> ParseError {
        self.file = file.into();
        self
    }

    /// `Dockerfile:7: unknown instruction: FOO`, for one-line output.
    pub fn short(&self) -> String {
        format!("{}:{}: {}", self.file, self.line, self.message)
    }

    fn with_source(mut self, lines: &[&str]) -> ParseError {
        let from = self.line.saturating_sub(1).min(lines.len());
        let to = self.end_line.min(lines.len()).max(from);
        // Long heredocs: the first lines are enough to recognize the instruction.
        self.source = lines[from..to]
            .iter()
            .take(6)
            .map(|l| trim_newline(l).to_owned())
            .collect();
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.end_line > self.line {
            writeln!(f, "{}:{}-{}", self.file, self.line, self.end_line)?;
        } else {
            writeln!(f, "{}:{}", self.file, self.line)?;
        }
        if !self.source.is_empty() {
            writeln!(f, "--------------------")?;
            for (i, l) in self.source.iter().enumerate() {
                writeln!(f, "{:>4} | >>> {}", self.line + i, l)?;
            }
            writeln!(f, "--------------------")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ParseError {}

/// Something BuildKit warns about but builds anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// `# syntax=` (only recorded: berth builds with its own frontend).
    pub syntax: Option<String>,
    /// `# check=` (BuildKit's lint configuration), recorded.
    pub check: Option<String>,
    /// The escape token, `\` or `` ` `` (`# escape=`).
    pub escape: char,
    pub instructions: Vec<Instruction>,
    pub warnings: Vec<Warning>,
}

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

/// A here-document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (quotes removed).
    pub name: String,
    /// The content as read, every line with its newline, before any tab stripping.
    pub content: String,
    /// Whether `$VAR`s in the content are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the content and the delimiter line.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none.
    pub fd: u32,
}

impl Heredoc {
    /// The content with leading tabs stripped when `<<-` asked for it.
    pub fn body(&self) -> String {
        if self.chomp {
            chomp_tabs(&self.content)
        } else {
            self.content.clone()
        }
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
    /// Only from [`Dockerfile::parse_lenient`]: a keyword Docker does not know, or an
    /// instruction whose arguments are wrong (the error is reported beside it).
    Invalid,
}

impl Dockerfile {
    /// Parses a Dockerfile; the first error ends it.
    pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
        let (df, mut errors) = Parser::run(text, false);
        match errors.is_empty() {
            true => Ok(df),
            false => Err(errors.remove(0)),
        }
    }

    /// Parses as much as it can: every instruction that fails becomes [`Command::Invalid`] and
    /// its error is returned beside it (for the linter). Never fails as a whole.
    pub fn parse_lenient(text: &str) -> (Dockerfile, Vec<ParseError>) {
        Parser::run(text, true)
    }

    /// Indexes of the FROM instructions, in order (stage `i` starts at `froms()[i]`).
    pub fn froms(&self) -> Vec<usize> {
        self.instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.command, Command::From(_)))
            .map(|(n, _)| n)
            .collect()
    }

    /// The ARGs before the first FROM.
    pub fn global_args(&self) -> Vec<&ArgDecl> {
        self.instructions
            .iter()
            .take_while(|i| !matches!(i.command, Command::From(_)))
            .filter_map(|i| match &i.command {
                Command::Arg(a) => Some(a.iter()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

/// Parses one ONBUILD trigger as stored in an image (`RUN make`), with its heredocs.
pub fn parse_trigger(text: &str, escape: char) -> Result<Instruction, ParseError> {
    let mut p = Parser::new(text, false);
    p.escape = escape;
    p.directives_done = true;
    let mut found = None;
    while let Some(r) = p.next_instruction() {
        let ins = r?;
        if found.is_some() {
            return Err(ParseError::new(
                ins.line,
                ins.end_line,
                "onbuild trigger should be a single expression",
            ));
        }
        found = Some(ins);
    }
    found.ok_or_else(|| ParseError::new(1, 1, "onbuild trigger should be a single expression"))
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn chomp_tabs(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// BuildKit's separator set for whitespace-delimited arguments.
fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

fn split_ws(s: &str) -> Vec<String> {
    s.split(is_sep)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A line continued on the next: ends in the escape token and blanks, the token not itself
/// escaped (BuildKit's regex `([^\\])\\[ \t]*$|^\\[ \t]*$`). Returns the line without it.
fn trim_continuation(line: &str, esc: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    if let Some(before) = body.strip_suffix(esc) {
        if before.is_empty() || !before.ends_with(esc) {
            return (before, true);
        }
    }
    (line, false)
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    pos: usize,
    escape: char,
    lenient: bool,
    directives_done: bool,
    seen_directives: Vec<String>,
    syntax: Option<String>,
    check: Option<String>,
    warnings: Vec<Warning>,
    errors: Vec<ParseError>,
}

/// A logical line before its arguments are read.
struct Logical {
    keyword: String,
    flags: Vec<String>,
    args: String,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, lenient: bool) -> Parser<'a> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        Parser {
            lines: text.split_inclusive('\n').collect(),
            pos: 0,
            escape: '\\',
            lenient,
            directives_done: false,
            seen_directives: Vec::new(),
            syntax: None,
            check: None,
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn run(text: &str, lenient: bool) -> (Dockerfile, Vec<ParseError>) {
        let mut p = Parser::new(text, lenient);
        let mut instructions = Vec::new();
        while let Some(r) = p.next_instruction() {
            match r {
                Ok(i) => instructions.push(i),
                Err(e) => {
                    p.errors.push(e);
                    if !lenient {
                        break;
                    }
                }
            }
        }
        if p.errors.is_empty() || lenient {
            p.check_stages(&instructions);
        }
        let errors = p
            .errors
            .iter()
            .map(|e| e.clone().with_source(&p.lines))
            .collect();
        let df = Dockerfile {
            syntax: p.syntax,
            check: p.check,
            escape: p.escape,
            instructions,
            warnings: p.warnings,
        };
        (df, errors)
    }

    /// Stage structure: something to build, nothing but ARG before the first FROM, stage names
    /// unique.
    fn check_stages(&mut self, instructions: &[Instruction]) {
        let last = self.lines.len().max(1);
        if instructions.is_empty() {
            self.errors
                .push(ParseError::new(last, last, "file with no instructions"));
            return;
        }
        let mut names: Vec<&str> = Vec::new();
        let mut in_stage = false;
        for ins in instructions {
            match &ins.command {
                Command::From(f) => {
                    in_stage = true;
                    if let Some(n) = &f.stage_name {
                        if names.contains(&n.as_str()) {
                            self.errors.push(ParseError::new(
                                ins.line,
                                ins.end_line,
                                format!("duplicate stage name {}", gofmt::go_quote(n)),
                            ));
                        }
                        names.push(n);
                    }
                }
                Command::Arg(_) | Command::Invalid => {}
                _ if !in_stage => {
                    self.errors.push(ParseError::new(
                        ins.line,
                        ins.end_line,
                        "no build stage in current context",
                    ));
                    in_stage = true; // once is enough
                }
                _ => {}
            }
        }
        if !instructions
            .iter()
            .any(|i| matches!(i.command, Command::From(_)))
        {
            self.errors.push(ParseError::new(
                last,
                last,
                "dockerfile contains no stages to build",
            ));
        }
    }

    /// Reads a `# key=value` parser directive; false when the line is not one.
    fn directive(&mut self, line: &str, lineno: usize) -> Result<bool, ParseError> {
        let Some(rest) = line.strip_prefix('#') else {
            return Ok(false);
        };
        let rest = rest.trim_start();
        let Some((key, value)) = rest.split_once('=') else {
            return Ok(false);
        };
        let key = key.trim_end();
        let value = value.trim();
        let mut chars = key.chars();
        let key_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric());
        if !key_ok || value.is_empty() {
            return Ok(false);
        }
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            return Ok(false);
        }
        if self.seen_directives.contains(&key) {
            return Err(ParseError::new(
                lineno,
                lineno,
                format!("only one {key} parser directive can be used"),
            ));
        }
        self.seen_directives.push(key.clone());
        match key.as_str() {
            "escape" => {
                if value != "`" && value != "\\" {
                    return Err(ParseError::new(
                        lineno,
                        lineno,
                        format!("invalid escape token '{value}' does not match ` or \\"),
                    ));
                }
                self.escape = value.chars().next().unwrap_or('\\');
            }
            "syntax" => self.syntax = Some(value.to_owned()),
            _ => self.check = Some(value.to_owned()),
        }
        Ok(true)
    }

    /// The next instruction, or None at the end.
    fn next_instruction(&mut self) -> Option<Result<Instruction, ParseError>> {
        let mut comments = Vec::new();
        loop {
            let raw = *self.lines.get(self.pos)?;
            let lineno = self.pos + 1;
            let line = trim_newline(raw);
            let stripped = line.trim_start();
            self.pos += 1;
            if !self.directives_done {
                match self.directive(stripped, lineno) {
                    Ok(true) => continue,
                    Ok(false) => self.directives_done = true,
                    Err(e) => return Some(Err(e)),
                }
            }
            if is_comment(line) {
                let c = stripped[1..].trim();
                if c.is_empty() {
                    comments.clear();
                } else {
                    comments.push(c.to_owned());
                }
                continue;
            }
            let (first, continued) = trim_continuation(stripped, self.escape);
            if !continued && first.is_empty() {
                continue;
            }
            let mut logical = first.to_owned();
            let mut open = continued;
            let mut empty_continuation = false;
            while open && self.pos < self.lines.len() {
                let l = trim_newline(self.lines[self.pos]);
                self.pos += 1;
                if is_comment(l) {
                    continue;
                }
                if l.trim_start().is_empty() {
                    empty_continuation = true;
                    continue;
                }
                let (part, more) = trim_continuation(l, self.escape);
                logical.push_str(part);
                open = more;
            }
            if empty_continuation {
                self.warnings.push(Warning {
                    line: self.pos,
                    message: format!("Empty continuation line found in: {logical}"),
                });
            }
            return Some(self.finish_instruction(lineno, logical, comments));
        }
    }

    fn finish_instruction(
        &mut self,
        start: usize,
        logical: String,
        comments: Vec<String>,
    ) -> Result<Instruction, ParseError> {
        let l = split_command(&logical, self.escape);
        let at = |this: &Parser, msg: String| ParseError::new(start, this.pos, msg);
        // Heredocs belong to RUN/COPY/ADD (also as an ONBUILD trigger) in shell form.
        let mut heredocs = Vec::new();
        if logical.contains("<<") && can_contain_heredoc(&l, self.escape) {
            let docs = heredocs_from_line(&logical).map_err(|e| at(self, e))?;
            for mut doc in docs {
                let mut content = String::new();
                let mut terminated = false;
                while self.pos < self.lines.len() {
                    let raw = self.lines[self.pos];
                    self.pos += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(at(
                        self,
                        format!("unterminated heredoc (no line \"{}\" ends it)", doc.name),
                    ));
                }
                doc.content = content;
                heredocs.push(doc);
            }
        }
        let end = self.pos;
        let source: String = self.lines[start - 1..end].concat();
        let result = parse_command(&l, &logical, &heredocs, self.escape, start, end);
        let command = match result {
            Ok(c) => c,
            Err(msg) => {
                if !self.lenient {
                    return Err(ParseError::new(start, end, msg));
                }
                self.errors.push(ParseError::new(start, end, msg));
                Command::Invalid
            }
        };
        Ok(Instruction {
            keyword: l.keyword,
            line: start,
            end_line: end,
            original: logical,
            source,
            flags: l.flags,
            heredocs,
            comments,
            command,
        })
    }
}

fn can_contain_heredoc(l: &Logical, escape: char) -> bool {
    let mut kw = l.keyword.to_ascii_lowercase();
    let mut args = l.args.clone();
    if kw == "onbuild" {
        let sub = split_command(&l.args, escape);
        kw = sub.keyword.to_ascii_lowercase();
        args = sub.args;
    }
    matches!(kw.as_str(), "run" | "copy" | "add") && !matches!(parse_json(&args), Ok(Some(_)))
}

/// The heredocs a line opens, in order (BuildKit's `heredocsFromLine`).
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(d) = parse_heredoc_word(&w)? {
            docs.push(d);
        }
    }
    Ok(docs)
}

/// A word `[fd]<<[-]NAME` as a heredoc (BuildKit's `ParseHeredoc`); None when it is not one.
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse().unwrap_or(0);
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &NoEnv).map_err(|e| e.0)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw = lex.process_words(rest, &NoEnv).map_err(|e| e.0)?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    Ok(Some(Heredoc {
        expand: quotes(&words[0]) == quotes(&raw[0]),
        name: words[0].clone(),
        content: String::new(),
        chomp,
        fd,
    }))
}

/// Keyword, builder flags and arguments of a logical line (BuildKit's `splitCommand`).
fn split_command(line: &str, escape: char) -> Logical {
    let line = line.trim();
    let (keyword, rest) = match line.find(is_sep) {
        Some(i) => (&line[..i], line[i..].trim_start_matches(is_sep)),
        None => (line, ""),
    };
    let (args, flags) = extract_flags(rest, escape);
    Logical {
        keyword: keyword.to_owned(),
        flags,
        args: args.trim().to_owned(),
    }
}

/// Leading `--flag[=value]` words (quotes and escapes honoured, `--` ends them); returns the
/// rest of the line and the flags.
fn extract_flags(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    while i < chars.len() {
        let (at, ch) = chars[i];
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    i += 1;
                    continue;
                }
                let next = chars.get(i + 1).map(|c| c.1);
                if ch != '-' || next != Some('-') {
                    return (line[at..].to_owned(), flags);
                }
                phase = Phase::Word;
                continue;
            }
            Phase::Word => {
                if ch.is_whitespace() {
                    if word == "--" {
                        return (line[at..].to_owned(), flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    phase = Phase::Spaces;
                } else if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                } else if ch == escape {
                    if let Some(&(_, n)) = chars.get(i + 1) {
                        word.push(n);
                        i += 1;
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                } else if ch == escape {
                    match chars.get(i + 1) {
                        Some(&(_, n)) => {
                            word.push(n);
                            i += 1;
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
        }
        i += 1;
    }
    if word != "--" && (blank_ok || !word.is_empty()) {
        flags.push(word);
    }
    (String::new(), flags)
}

/// Words of ENV/LABEL/ARG arguments: split on unquoted whitespace, quotes and escapes kept
/// (the expansion removes them) — BuildKit's `parseWords`.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if !in_word {
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            in_word = true;
        }
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    in_word = false;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if i + 1 == chars.len() {
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(ch);
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                    word.push(chars[i]);
                    i += 1;
                    continue;
                }
                word.push(ch);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// A JSON array of strings; Ok(None) when the text is not a JSON array (then it is shell
/// form, as Docker reads `RUN [ -f x ]`); an error for an array holding non-strings.
fn parse_json(rest: &str) -> Result<Option<Vec<String>>, String> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(t) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => {
                Err("when using JSON array syntax, arrays must be comprised of strings only".into())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The builder flags an instruction accepts.
#[derive(Default)]
struct Flags {
    values: Vec<(String, Kind, Vec<String>, bool)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Str,
    Strs,
}

impl Flags {
    fn new(spec: &[(&str, Kind)]) -> Flags {
        Flags {
            values: spec
                .iter()
                .map(|(n, k)| ((*n).to_owned(), *k, Vec::new(), false))
                .collect(),
        }
    }

    fn parse(mut self, given: &[String]) -> Result<Flags, String> {
        for a in given {
            if a == "--" {
                break;
            }
            let Some(body) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(slot) = self.values.iter_mut().find(|f| f.0 == name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            if slot.3 && slot.1 != Kind::Strs {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            slot.3 = true;
            match slot.1 {
                Kind::Bool => {
                    let v = match value.map(str::to_ascii_lowercase).as_deref() {
                        None => "true",
                        Some("") => return Err(format!("missing a value on flag: --{name}")),
                        Some("true") => "true",
                        Some("false") => "false",
                        Some(_) => {
                            return Err(format!(
                                "expecting boolean value for flag --{name}, not: {}",
                                value.unwrap_or_default()
                            ))
                        }
                    };
                    slot.2 = vec![v.to_owned()];
                }
                Kind::Str | Kind::Strs => {
                    let Some(v) = value else {
                        return Err(format!("missing a value on flag: --{name}"));
                    };
                    if slot.1 == Kind::Str {
                        slot.2 = vec![v.to_owned()];
                    } else {
                        slot.2.push(v.to_owned());
                    }
                }
            }
        }
        Ok(self)
    }

    fn string(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .find(|f| f.0 == name && f.3)
            .and_then(|f| f.2.first().cloned())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .find(|f| f.0 == name)
            .map(|f| f.2.clone())
            .unwrap_or_default()
    }

    fn boolean(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }
}

fn no_flags(flags: &[String]) -> Result<(), String> {
    Flags::new(&[]).parse(flags).map(|_| ())
}

fn at_least_one(name: &str) -> String {
    format!("{name} requires at least one argument")
}

fn exactly_one(name: &str) -> String {
    format!("{name} requires exactly one argument")
}

fn valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "-_.".contains(ch))
}

/// Shell form `rest`, or exec form when it is a JSON array.
fn maybe_json(rest: &str) -> Result<Option<CommandLine>, String> {
    if rest.is_empty() {
        return Ok(None);
    }
    Ok(Some(match parse_json(rest)? {
        Some(v) => CommandLine::Exec(v),
        None => CommandLine::Shell(rest.to_owned()),
    }))
}

fn maybe_json_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    Ok(match parse_json(rest)? {
        Some(v) => (v, true),
        None => (split_ws(rest), false),
    })
}

fn key_values(rest: &str, name: &str, escape: char) -> Result<Vec<KeyValue>, String> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(at_least_one(name));
    }
    if !words[0].contains('=') {
        let mut parts = rest.splitn(2, is_sep);
        let key = parts.next().unwrap_or_default();
        let value = parts.next().map(|v| v.trim_start_matches(is_sep));
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Err(format!("{name} must have two arguments"));
        };
        return Ok(vec![KeyValue {
            key: key.to_owned(),
            value: value.to_owned(),
            legacy: true,
        }]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                gofmt::go_quote(&w)
            ));
        };
        if k.is_empty() {
            return Err(format!("{name} names can not be blank"));
        }
        out.push(KeyValue {
            key: k.to_owned(),
            value: v.to_owned(),
            legacy: false,
        });
    }
    Ok(out)
}

fn duration_flag(flags: &Flags, name: &str) -> Result<i64, String> {
    let Some(v) = flags.string(name).filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let d = berth_core::duration::parse(&v).map_err(|e| e.to_string())?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(format!("Interval \"{name}\" cannot be less than 1ms"));
    }
    Ok(d)
}

fn copy_like(
    name: &str,
    rest: &str,
    heredocs: &[Heredoc],
    flags: &Flags,
) -> Result<CopyCmd, String> {
    let (args, json) = maybe_json_list(rest)?;
    if args.len() < 2 {
        return Err(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let (dest, srcs) = args.split_last().unwrap_or((&args[0], &[]));
    if !json && parse_heredoc_word(dest).ok().flatten().is_some() {
        return Err(format!("{name} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut inline = Vec::new();
    for s in srcs {
        match (!json)
            .then(|| parse_heredoc_word(s).ok().flatten())
            .flatten()
        {
            Some(h) => {
                let doc = heredocs.iter().find(|d| d.name == h.name);
                let mut content = doc.map(|d| d.content.clone()).unwrap_or_default();
                if h.chomp {
                    content = chomp_tabs(&content);
                }
                inline.push(InlineSource {
                    name: h.name,
                    content,
                    expand: h.expand,
                });
            }
            None => sources.push(s.clone()),
        }
    }
    Ok(CopyCmd {
        sources,
        inline,
        dest: dest.clone(),
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.boolean("link").unwrap_or(false),
        parents: flags.boolean("parents").unwrap_or(false),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.boolean("keep-git-dir"),
        unpack: flags.boolean("unpack"),
        json,
    })
}

/// Reads one instruction's arguments (BuildKit's line parsers and `instructions.Parse*`).
fn parse_command(
    l: &Logical,
    original: &str,
    heredocs: &[Heredoc],
    escape: char,
    start: usize,
    end: usize,
) -> Result<Command, String> {
    let name = l.keyword.to_ascii_uppercase();
    let rest = l.args.as_str();
    Ok(match name.as_str() {
        "FROM" => {
            let f = Flags::new(&[("platform", Kind::Str)]).parse(&l.flags)?;
            let args = split_ws(rest);
            let stage_name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let n = args[2].to_ascii_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            gofmt::go_quote(&args[2])
                        ));
                    }
                    Some(n)
                }
                1 => None,
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Command::From(FromCmd {
                image: args[0].clone(),
                stage_name,
                platform: f.string("platform"),
            })
        }
        "RUN" => {
            let f = Flags::new(&[
                ("mount", Kind::Strs),
                ("network", Kind::Str),
                ("security", Kind::Str),
            ])
            .parse(&l.flags)?;
            let Some(command) = maybe_json(rest)? else {
                return Err(at_least_one("RUN"));
            };
            let mounts = f.strings("mount");
            for m in &mounts {
                crate::mount::Mount::parse(m, None).map_err(|e| e.to_string())?;
            }
            let network = f.string("network");
            if let Some(n) = &network {
                if !matches!(n.as_str(), "default" | "none" | "host") {
                    return Err(format!("unsupported network mode {}", gofmt::go_quote(n)));
                }
            }
            let security = f.string("security");
            if let Some(s) = &security {
                if !matches!(s.as_str(), "sandbox" | "insecure") {
                    return Err(format!("unsupported security mode {}", gofmt::go_quote(s)));
                }
            }
            Command::Run(RunCmd {
                command,
                mounts,
                network,
                security,
            })
        }
        "CMD" | "ENTRYPOINT" => {
            no_flags(&l.flags)?;
            let Some(c) = maybe_json(rest)? else {
                return Err(at_least_one(&name));
            };
            if name == "CMD" {
                Command::Cmd(c)
            } else {
                Command::Entrypoint(c)
            }
        }
        "COPY" => {
            let f = Flags::new(&[
                ("chown", Kind::Str),
                ("from", Kind::Str),
                ("chmod", Kind::Str),
                ("link", Kind::Bool),
                ("exclude", Kind::Strs),
                ("parents", Kind::Bool),
            ])
            .parse(&l.flags)?;
            Command::Copy(copy_like("COPY", rest, heredocs, &f)?)
        }
        "ADD" => {
            let f = Flags::new(&[
                ("chown", Kind::Str),
                ("chmod", Kind::Str),
                ("link", Kind::Bool),
                ("keep-git-dir", Kind::Bool),
                ("checksum", Kind::Str),
                ("unpack", Kind::Bool),
                ("exclude", Kind::Strs),
            ])
            .parse(&l.flags)?;
            Command::Add(copy_like("ADD", rest, heredocs, &f)?)
        }
        "WORKDIR" | "USER" | "MAINTAINER" | "STOPSIGNAL" => {
            no_flags(&l.flags)?;
            if rest.is_empty() {
                return Err(exactly_one(&name));
            }
            let v = rest.to_owned();
            match name.as_str() {
                "WORKDIR" => Command::Workdir(v),
                "USER" => Command::User(v),
                "MAINTAINER" => Command::Maintainer(v),
                _ => Command::StopSignal(v),
            }
        }
        "ENV" => {
            no_flags(&l.flags)?;
            Command::Env(key_values(rest, "ENV", escape)?)
        }
        "LABEL" => {
            no_flags(&l.flags)?;
            Command::Label(key_values(rest, "LABEL", escape)?)
        }
        "ARG" => {
            no_flags(&l.flags)?;
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut decls = Vec::new();
            for w in words {
                let d = match w.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => ArgDecl {
                        name: k.to_owned(),
                        default: Some(v.to_owned()),
                    },
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                decls.push(d);
            }
            Command::Arg(decls)
        }
        "EXPOSE" => {
            no_flags(&l.flags)?;
            let mut ports = split_ws(rest);
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            ports.sort();
            Command::Expose(ports)
        }
        "VOLUME" => {
            no_flags(&l.flags)?;
            let (vols, _) = maybe_json_list(rest)?;
            if vols.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            let mut out = Vec::new();
            for v in vols {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                out.push(v.to_owned());
            }
            Command::Volume(out)
        }
        "SHELL" => {
            no_flags(&l.flags)?;
            match maybe_json(rest)? {
                None => return Err(at_least_one("SHELL")),
                Some(CommandLine::Exec(v)) if v.is_empty() => return Err(at_least_one("SHELL")),
                Some(CommandLine::Exec(v)) => Command::Shell(v),
                Some(CommandLine::Shell(_)) => {
                    return Err("SHELL requires the arguments to be in JSON form".into())
                }
            }
        }
        "HEALTHCHECK" => parse_healthcheck(l, rest)?,
        "ONBUILD" => {
            no_flags(&l.flags)?;
            if rest.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            let sub = split_command(rest, escape);
            let trigger_name = sub.keyword.to_ascii_uppercase();
            match trigger_name.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!(
                        "{trigger_name} isn't allowed as an ONBUILD trigger"
                    ))
                }
                _ => {}
            }
            let command = parse_command(&sub, rest, heredocs, escape, start, end)?;
            if command == Command::Invalid || !INSTRUCTIONS.contains(&trigger_name.as_str()) {
                return Err(format!("unknown instruction: {}", sub.keyword));
            }
            let mut expression = strip_keyword(original, "ONBUILD").to_owned();
            for h in heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            Command::Onbuild(OnbuildCmd {
                expression,
                trigger: Box::new(Instruction {
                    keyword: sub.keyword.clone(),
                    line: start,
                    end_line: end,
                    original: rest.to_owned(),
                    source: String::new(),
                    flags: sub.flags.clone(),
                    heredocs: heredocs.to_vec(),
                    comments: Vec::new(),
                    command,
                }),
            })
        }
        _ => {
            let mut msg = format!("unknown instruction: {}", l.keyword);
            if let Some(s) = suggest(&name) {
                msg.push_str(&format!(" (did you mean {}?)", s.to_ascii_lowercase()));
            }
            return Err(msg);
        }
    })
}

fn strip_keyword<'s>(original: &'s str, kw: &str) -> &'s str {
    let t = original.trim_start();
    match t.get(..kw.len()) {
        Some(head) if head.eq_ignore_ascii_case(kw) => t[kw.len()..].trim_start(),
        _ => t,
    }
}

fn parse_healthcheck(l: &Logical, rest: &str) -> Result<Command, String> {
    let (typ, after) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim_start()),
        None => (rest, ""),
    };
    if typ.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ_up = typ.to_ascii_uppercase();
    if typ_up == "NONE" {
        if !after.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Command::Healthcheck(HealthcheckCmd::None));
    }
    let f = Flags::new(&[
        ("interval", Kind::Str),
        ("timeout", Kind::Str),
        ("start-period", Kind::Str),
        ("start-interval", Kind::Str),
        ("retries", Kind::Str),
    ])
    .parse(&l.flags)?;
    if typ_up != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            gofmt::go_quote(&typ_up)
        ));
    }
    let test = match maybe_json(after)? {
        None => return Err("Missing command after HEALTHCHECK CMD".into()),
        Some(CommandLine::Exec(v)) if v.is_empty() => {
            return Err("Missing command after HEALTHCHECK CMD".into())
        }
        Some(CommandLine::Exec(v)) => std::iter::once("CMD".to_owned()).chain(v).collect(),
        Some(CommandLine::Shell(s)) => vec!["CMD-SHELL".to_owned(), s],
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                format!(
                    "strconv.ParseInt: parsing {}: invalid syntax",
                    gofmt::go_quote(&v)
                )
            })?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            u32::try_from(n).map_err(|_| {
                format!(
                    "strconv.ParseInt: parsing {}: value out of range",
                    gofmt::go_quote(&v)
                )
            })?
        }
    };
    Ok(Command::Healthcheck(HealthcheckCmd::Check(Healthcheck {
        test,
        interval: duration_flag(&f, "interval")?,
        timeout: duration_flag(&f, "timeout")?,
        start_period: duration_flag(&f, "start-period")?,
        start_interval: duration_flag(&f, "start-interval")?,
        retries,
    })))
}

/// The known instruction closest to an unknown one (a third of its letters off at most), as
/// BuildKit suggests.
fn suggest(name: &str) -> Option<&'static str> {
    fn dist(a: &str, b: &str) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for i in 1..=a.len() {
            let mut cur = vec![i; b.len() + 1];
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            }
            prev = cur;
        }
        prev[b.len()]
    }
    if name.len() > 32 {
        return None;
    }
    let limit = (name.chars().count() / 3).max(1);
    INSTRUCTIONS
        .iter()
        .map(|i| (dist(name, i), *i))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Dockerfile {
        match Dockerfile::parse(t) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    fn cmd(t: &str, i: usize) -> Command {
        parse(t).instructions[i].command.clone()
    }

    #[test]
    fn from_with_platform_and_stage_name() {
        let d = parse("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM scratch\n");
        assert_eq!(
            d.instructions[0].command,
            Command::From(FromCmd {
                image: "golang:1.22".into(),
                stage_name: Some("build".into()),
                platform: Some("$BUILDPLATFORM".into()),
            })
        );
        assert_eq!(d.froms(), vec![0, 1]);
        let e = Dockerfile::parse("FROM a AS 1x\n").unwrap_err();
        assert!(e.message.contains("invalid name for build stage"), "{e}");
        let e = Dockerfile::parse("FROM a b\n").unwrap_err();
        assert_eq!(e.message, "FROM requires either one or three arguments");
    }

    #[test]
    fn run_shell_and_exec_forms() {
        assert_eq!(
            cmd("FROM a\nRUN echo hi\n", 1),
            Command::Run(RunCmd {
                command: CommandLine::Shell("echo hi".into()),
                mounts: vec![],
                network: None,
                security: None,
            })
        );
        match cmd("FROM a\nRUN [\"echo\", \"hi\"]\n", 1) {
            Command::Run(r) => {
                assert_eq!(
                    r.command,
                    CommandLine::Exec(vec!["echo".into(), "hi".into()])
                )
            }
            c => panic!("{c:?}"),
        }
        // Not JSON: shell form, as Docker runs `[ -f x ]`.
        match cmd("FROM a\nRUN [ -f /etc/passwd ]\n", 1) {
            Command::Run(r) => assert!(r.command.is_shell()),
            c => panic!("{c:?}"),
        }
        let e = Dockerfile::parse("FROM a\nRUN [\"a\", 1]\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("strings only"));
    }

    #[test]
    fn continuations_comments_and_empty_lines() {
        let d = parse("FROM a\nRUN echo a \\\n# comment\n\n    b \\\n  c\nUSER x\n");
        let run = &d.instructions[1];
        assert_eq!((run.line, run.end_line), (2, 6));
        assert_eq!(
            run.command,
            Command::Run(RunCmd {
                command: CommandLine::Shell("echo a     b   c".into()),
                mounts: vec![],
                network: None,
                security: None
            })
        );
        assert_eq!(run.source, "RUN echo a \\\n# comment\n\n    b \\\n  c\n");
        assert_eq!(d.instructions[2].line, 7);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].message.starts_with("Empty continuation line"));
    }

    #[test]
    fn escaped_escape_is_not_a_continuation() {
        let d = parse("FROM a\nRUN echo \\\\\nUSER x\n");
        assert_eq!(d.instructions.len(), 3);
    }

    #[test]
    fn escape_directive_backtick() {
        let d = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  /b\nWORKDIR c:\\x\n");
        assert_eq!(d.escape, '`');
        match &d.instructions[1].command {
            Command::Run(r) => assert_eq!(r.command, CommandLine::Shell("dir c:\\   /b".into())),
            c => panic!("{c:?}"),
        }
        assert_eq!(d.instructions[1].line, 3);
        assert_eq!(d.instructions[2].command, Command::Workdir("c:\\x".into()));
    }

    #[test]
    fn directives_only_at_the_top() {
        let d = parse("# syntax=docker/dockerfile:1\n# escape=\\\nFROM a\n");
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        // After a comment or blank line, `# escape=` is a comment.
        let d = parse("# hello\n# escape=`\nFROM a\nRUN a `\n");
        assert_eq!(d.escape, '\\');
        let d = parse("\n# escape=`\nFROM a\n");
        assert_eq!(d.escape, '\\');
        let e = Dockerfile::parse("# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
        assert_eq!(e.message, "only one escape parser directive can be used");
        let e = Dockerfile::parse("# escape=x\nFROM a\n").unwrap_err();
        assert!(e.message.contains("invalid escape token"));
    }

    #[test]
    fn heredocs() {
        let d = parse("FROM a\nRUN <<EOF\necho one\necho $HOME\nEOF\nUSER x\n");
        let run = &d.instructions[1];
        assert_eq!((run.line, run.end_line), (2, 5));
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].name, "EOF");
        assert_eq!(run.heredocs[0].content, "echo one\necho $HOME\n");
        assert!(run.heredocs[0].expand);
        assert_eq!(d.instructions[2].line, 6);

        // <<- strips tabs from the content and the terminator line.
        let d = parse("FROM a\nRUN <<-EOT cat\n\techo hi\n\tEOT\n");
        let h = &d.instructions[1].heredocs[0];
        assert!(h.chomp);
        assert_eq!(h.body(), "echo hi\n");
        match &d.instructions[1].command {
            Command::Run(r) => assert_eq!(r.command, CommandLine::Shell("<<-EOT cat".into())),
            c => panic!("{c:?}"),
        }

        // Quoted delimiters: no expansion. Several heredocs, read in order.
        let d = parse("FROM a\nRUN <<'A' 3<<\"B\" cat /dev/fd/3\na $X\nA\nb\nB\n");
        let hs = &d.instructions[1].heredocs;
        assert_eq!(hs.len(), 2);
        assert_eq!((hs[0].name.as_str(), hs[0].expand), ("A", false));
        assert_eq!(
            (hs[1].name.as_str(), hs[1].expand, hs[1].fd),
            ("B", false, 3)
        );
        assert_eq!(hs[1].content, "b\n");

        // COPY heredocs become inline sources.
        match cmd(
            "FROM a\nCOPY <<EOF <<-\"E2\" /dst/\nx $Y\nEOF\n\ty\n\tE2\n",
            1,
        ) {
            Command::Copy(c) => {
                assert!(c.sources.is_empty());
                assert_eq!(c.dest, "/dst/");
                assert_eq!(c.inline.len(), 2);
                assert_eq!(c.inline[0].content, "x $Y\n");
                assert!(c.inline[0].expand);
                assert_eq!(c.inline[1].content, "y\n");
                assert!(!c.inline[1].expand);
            }
            c => panic!("{c:?}"),
        }

        // JSON form: no heredoc.
        let d = parse("FROM a\nRUN [\"echo\", \"<<EOF\"]\nUSER x\n");
        assert!(d.instructions[1].heredocs.is_empty());
        // Other instructions never read heredocs.
        let d = parse("FROM a\nLABEL a=<<EOF\nUSER x\n");
        assert_eq!(d.instructions.len(), 3);
    }

    #[test]
    fn unterminated_heredoc_is_an_error_with_lines() {
        let e = Dockerfile::parse("FROM a\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!((e.line, e.end_line), (2, 3));
        assert!(e.message.contains("unterminated heredoc"), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("Dockerfile:2-3\n"), "{shown}");
        assert!(shown.contains(">>> RUN <<EOF"), "{shown}");
    }

    #[test]
    fn unknown_instruction_error_like_buildkit() {
        let text = "FROM a\n\n\n\n\n\nFOO bar\n";
        let e = Dockerfile::parse(text).unwrap_err();
        assert_eq!(e.line, 7);
        assert_eq!(e.message, "unknown instruction: FOO");
        assert_eq!(
            e.to_string(),
            "Dockerfile:7\n--------------------\n   7 | >>> FOO bar\n--------------------\nunknown instruction: FOO"
        );
        assert_eq!(e.short(), "Dockerfile:7: unknown instruction: FOO");
        let e = Dockerfile::parse("FROM a\nRUNN x\n").unwrap_err();
        assert_eq!(e.message, "unknown instruction: RUNN (did you mean run?)");
    }

    #[test]
    fn flags() {
        let d = parse(
            "FROM a\nRUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none make\n",
        );
        match &d.instructions[1].command {
            Command::Run(r) => {
                assert_eq!(r.mounts.len(), 2);
                assert_eq!(r.network.as_deref(), Some("none"));
                assert_eq!(r.command, CommandLine::Shell("make".into()));
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(
            d.instructions[1].flags[0],
            "--mount=type=cache,target=/root/.cache"
        );
        for (text, msg) in [
            ("FROM a\nRUN --bogus x\n", "unknown flag: --bogus"),
            (
                "FROM a\nRUN --network=wifi x\n",
                "unsupported network mode \"wifi\"",
            ),
            (
                "FROM a\nRUN --mount=type=nfs,target=/x x\n",
                "unsupported mount type \"nfs\"",
            ),
            (
                "FROM a\nCOPY --link=maybe a b\n",
                "expecting boolean value for flag --link, not: maybe",
            ),
            (
                "FROM a\nCOPY --from a b\n",
                "missing a value on flag: --from",
            ),
            (
                "FROM a\nCOPY --chown=1 --chown=2 a b\n",
                "duplicate flag specified: --chown",
            ),
            ("FROM a\nENV --x=1 a=b\n", "unknown flag: --x"),
            ("FROM --plat=x a\n", "unknown flag: --plat"),
        ] {
            let e = Dockerfile::parse(text).unwrap_err();
            assert!(e.message.contains(msg), "{text:?}: {e}");
            assert_eq!(e.line, text.lines().count(), "{text:?}");
        }
        match cmd(
            "FROM a\nCOPY --from=build --chown=app:app --chmod=755 --link --exclude=*.md src/ /app/\n",
            1,
        ) {
            Command::Copy(c) => {
                assert_eq!(c.from.as_deref(), Some("build"));
                assert_eq!(c.chown.as_deref(), Some("app:app"));
                assert_eq!(c.chmod.as_deref(), Some("755"));
                assert!(c.link);
                assert_eq!(c.exclude, vec!["*.md"]);
                assert_eq!(c.sources, vec!["src/"]);
                assert_eq!(c.dest, "/app/");
            }
            c => panic!("{c:?}"),
        }
        match cmd(
            "FROM a\nADD --checksum=sha256:abc --keep-git-dir=false https://x/y.tgz /z\n",
            1,
        ) {
            Command::Add(c) => {
                assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
                assert_eq!(c.keep_git_dir, Some(false));
            }
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn env_label_arg_forms() {
        assert_eq!(
            cmd("FROM a\nENV a=b c=\"d e\" f=g\\ h\n", 1),
            Command::Env(vec![
                KeyValue {
                    key: "a".into(),
                    value: "b".into(),
                    legacy: false
                },
                KeyValue {
                    key: "c".into(),
                    value: "\"d e\"".into(),
                    legacy: false
                },
                KeyValue {
                    key: "f".into(),
                    value: "g\\ h".into(),
                    legacy: false
                },
            ])
        );
        assert_eq!(
            cmd("FROM a\nENV PATH /usr/bin:/bin  with space\n", 1),
            Command::Env(vec![KeyValue {
                key: "PATH".into(),
                value: "/usr/bin:/bin  with space".into(),
                legacy: true
            }])
        );
        assert_eq!(
            Dockerfile::parse("FROM a\nENV a\n").unwrap_err().message,
            "ENV must have two arguments"
        );
        assert!(Dockerfile::parse("FROM a\nENV a=b c\n")
            .unwrap_err()
            .message
            .starts_with("Syntax error - can't find = in \"c\""));
        assert_eq!(
            cmd(
                "FROM a\nLABEL \"com.example.vendor\"=\"ACME\" version=1.0\n",
                1
            ),
            Command::Label(vec![
                KeyValue {
                    key: "\"com.example.vendor\"".into(),
                    value: "\"ACME\"".into(),
                    legacy: false
                },
                KeyValue {
                    key: "version".into(),
                    value: "1.0".into(),
                    legacy: false
                },
            ])
        );
        let d = parse("ARG V=1 W\nFROM a:$V\nARG V\n");
        assert_eq!(d.global_args().len(), 2);
        assert_eq!(
            d.instructions[0].command,
            Command::Arg(vec![
                ArgDecl {
                    name: "V".into(),
                    default: Some("1".into())
                },
                ArgDecl {
                    name: "W".into(),
                    default: None
                },
            ])
        );
    }

    #[test]
    fn other_instructions() {
        assert_eq!(
            cmd("FROM a\nEXPOSE 8080 80/tcp 53/udp\n", 1),
            Command::Expose(vec!["53/udp".into(), "80/tcp".into(), "8080".into()])
        );
        assert_eq!(
            cmd("FROM a\nVOLUME [\"/data\", \"/logs\"]\n", 1),
            Command::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(
            cmd("FROM a\nVOLUME /data /logs\n", 1),
            Command::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(
            cmd("FROM a\nSHELL [\"/bin/bash\", \"-c\"]\n", 1),
            Command::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert!(Dockerfile::parse("FROM a\nSHELL /bin/bash -c\n")
            .unwrap_err()
            .message
            .contains("JSON form"));
        assert_eq!(
            cmd("FROM a\nUSER app:app\n", 1),
            Command::User("app:app".into())
        );
        assert_eq!(
            cmd("FROM a\nSTOPSIGNAL SIGTERM\n", 1),
            Command::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            cmd("FROM a\nMAINTAINER Me <me@x>\n", 1),
            Command::Maintainer("Me <me@x>".into())
        );
        assert_eq!(
            cmd("FROM a\nENTRYPOINT [\"/app\"]\n", 1),
            Command::Entrypoint(CommandLine::Exec(vec!["/app".into()]))
        );
        assert_eq!(
            cmd("FROM a\nCMD [\"--help\"]\n", 1),
            Command::Cmd(CommandLine::Exec(vec!["--help".into()]))
        );
        assert!(Dockerfile::parse("FROM a\nWORKDIR\n").is_err());
    }

    #[test]
    fn healthcheck() {
        assert_eq!(
            cmd("FROM a\nHEALTHCHECK NONE\n", 1),
            Command::Healthcheck(HealthcheckCmd::None)
        );
        assert_eq!(
            cmd(
                "FROM a\nHEALTHCHECK --interval=5m --timeout=3s --start-period=10s --start-interval=1s --retries=4 CMD curl -f http://localhost/ || exit 1\n",
                1
            ),
            Command::Healthcheck(HealthcheckCmd::Check(Healthcheck {
                test: vec!["CMD-SHELL".into(), "curl -f http://localhost/ || exit 1".into()],
                interval: 300_000_000_000,
                timeout: 3_000_000_000,
                start_period: 10_000_000_000,
                start_interval: 1_000_000_000,
                retries: 4,
            }))
        );
        assert_eq!(
            cmd("FROM a\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n", 1),
            Command::Healthcheck(HealthcheckCmd::Check(Healthcheck {
                test: vec!["CMD".into(), "/bin/check".into(), "-q".into()],
                ..Default::default()
            }))
        );
        for (t, msg) in [
            ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
            ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
            (
                "HEALTHCHECK RUN x",
                "Unknown type \"RUN\" in HEALTHCHECK (try CMD)",
            ),
            (
                "HEALTHCHECK --interval=1 CMD x",
                "time: missing unit in duration \"1\"",
            ),
            (
                "HEALTHCHECK --interval=1ns CMD x",
                "cannot be less than 1ms",
            ),
            (
                "HEALTHCHECK --retries=-1 CMD x",
                "--retries cannot be negative (-1)",
            ),
            ("HEALTHCHECK --retries=x CMD x", "invalid syntax"),
        ] {
            let e = Dockerfile::parse(&format!("FROM a\n{t}\n")).unwrap_err();
            assert!(e.message.contains(msg), "{t}: {e}");
        }
    }

    #[test]
    fn onbuild() {
        match cmd("FROM a\nONBUILD RUN echo hi\n", 1) {
            Command::Onbuild(o) => {
                assert_eq!(o.expression, "RUN echo hi");
                assert!(matches!(o.trigger.command, Command::Run(_)));
            }
            c => panic!("{c:?}"),
        }
        match cmd("FROM a\nONBUILD COPY <<EOF /x\nhello\nEOF\n", 1) {
            Command::Onbuild(o) => assert_eq!(o.expression, "COPY <<EOF /x\nhello\nEOF"),
            c => panic!("{c:?}"),
        }
        for (t, msg) in [
            ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
            ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
            ("ONBUILD FOO x", "unknown instruction: FOO"),
        ] {
            let e = Dockerfile::parse(&format!("FROM a\n{t}\n")).unwrap_err();
            assert!(e.message.contains(msg), "{t}: {e}");
        }
        let t = parse_trigger("RUN <<EOF\nhello\nEOF", '\\').unwrap();
        assert_eq!(t.heredocs[0].content, "hello\n");
    }

    #[test]
    fn stage_structure_errors() {
        assert_eq!(
            Dockerfile::parse("").unwrap_err().message,
            "file with no instructions"
        );
        assert_eq!(
            Dockerfile::parse("# just a comment\n").unwrap_err().message,
            "file with no instructions"
        );
        assert_eq!(
            Dockerfile::parse("ARG A=1\n").unwrap_err().message,
            "dockerfile contains no stages to build"
        );
        let e = Dockerfile::parse("ARG A=1\nRUN x\nFROM a\n").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "no build stage in current context")
        );
        let e = Dockerfile::parse("FROM a AS x\nFROM b AS X\n").unwrap_err();
        assert_eq!(
            (e.line, e.message.as_str()),
            (2, "duplicate stage name \"x\"")
        );
    }

    #[test]
    fn lenient_keeps_going() {
        let (d, errs) = Dockerfile::parse_lenient("FROM a\nFOO x\nRUN\nBAR y\nUSER u\n");
        assert_eq!(d.instructions.len(), 5);
        assert_eq!(errs.len(), 3);
        assert_eq!(
            errs.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(d.instructions[1].command, Command::Invalid);
        assert_eq!(d.instructions[1].keyword, "FOO");
    }

    #[test]
    fn bom_crlf_and_case() {
        let d = parse("\u{feff}from a\r\nrun echo hi \\\r\n  there\r\n");
        assert_eq!(d.instructions[1].name(), "RUN");
        match &d.instructions[1].command {
            Command::Run(r) => assert_eq!(r.command, CommandLine::Shell("echo hi   there".into())),
            c => panic!("{c:?}"),
        }
    }

    /// Random and truncated Dockerfiles never make the parser panic.
    #[test]
    fn never_panics_on_any_input() {
        let seeds = [
            "# syntax=docker/dockerfile:1\n# escape=`\nARG V=1\nFROM --platform=$P alpine:${V} AS b\nRUN --mount=type=cache,target=/x <<-EOF sh\n\techo $V\n\tEOF\nCOPY --from=b <<A /x\nhi\nA\nENV a=b c \"d e\"\nHEALTHCHECK --interval=5s CMD [\"x\"]\nONBUILD RUN `\n  x\nLABEL \"a\"='b c'\nEXPOSE 80/tcp\n",
            "FROM a\nRUN [\"a\", \"b\"\nCMD [1,2]\nSHELL [\"x\"]\nENTRYPOINT \\\n\n# c\n x\nVOLUME [\"\"]\nUSER\n",
            "FROM 안녕\nRUN echo '한국어' \"${X:-y}\" \\\nENV 한=국\nCOPY <<\"EOF\" <<'E2' /\nEOF\n",
        ];
        let mut state: u64 = 0x9e3779b97f4a7c15;
        let mut rand = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "FROMRUNCOPYADDENV<<-EOF\\`\"'$ {}[],=:-#\n\t\r/a1é😀"
            .chars()
            .collect();
        for seed in seeds {
            let chars: Vec<char> = seed.chars().collect();
            // Every truncation.
            for n in 0..=chars.len() {
                let t: String = chars[..n].iter().collect();
                let _ = Dockerfile::parse(&t);
                let _ = Dockerfile::parse_lenient(&t);
            }
            // Random mutations.
            for _ in 0..400 {
                let mut c = chars.clone();
                for _ in 0..(rand() % 8 + 1) {
                    let at = (rand() as usize) % (c.len() + 1);
                    match rand() % 3 {
                        0 if at < c.len() => {
                            c.remove(at);
                        }
                        1 => c.insert(at, alphabet[(rand() as usize) % alphabet.len()]),
                        _ if at < c.len() => c[at] = alphabet[(rand() as usize) % alphabet.len()],
                        _ => {}
                    }
                }
                let t: String = c.iter().collect();
                let _ = Dockerfile::parse(&t);
                let (_, errs) = Dockerfile::parse_lenient(&t);
                for e in errs {
                    let _ = e.to_string();
                }
            }
        }
        // Pure noise.
        for _ in 0..300 {
            let len = (rand() % 200) as usize;
            let t: String = (0..len)
                .map(|_| alphabet[(rand() as usize) % alphabet.len()])
                .collect();
            let _ = Dockerfile::parse_lenient(&t);
        }
    }
}
