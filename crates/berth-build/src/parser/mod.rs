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
//!
//! Modules, by job:
//! - `lines`: the first pass (directives, comments, continuations, heredoc bodies);
//! - `heredoc`: which lines open heredocs, the words that open them, [`Heredoc`];
//! - `words`: keyword, flags and arguments of a logical line, and the argument forms;
//! - `flags`: the builder flags an instruction accepts;
//! - `instructions`: the second pass, one function per instruction;
//! - `ast`: the typed result ([`Instruction`], [`Command`] and its arguments);
//! - `error`: [`ParseError`] and its BuildKit-style display.
//!
//! This file holds the entry points ([`Dockerfile::parse`], [`Dockerfile::parse_lenient`],
//! [`parse_trigger`]) and the checks on the stage structure as a whole.

mod ast;
mod error;
mod flags;
mod heredoc;
mod instructions;
mod lines;
mod words;

use crate::gofmt;

pub use ast::{
    ArgDecl, Command, CommandLine, CopyCmd, FromCmd, Healthcheck, HealthcheckCmd, InlineSource,
    Instruction, KeyValue, OnbuildCmd, RunCmd,
};
pub use error::ParseError;
pub use heredoc::{parse_heredoc_word, Heredoc};

use lines::Parser;

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

impl<'a> Parser<'a> {
    /// Both passes over `text`, then the stage structure; errors get their source lines.
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
}

#[cfg(test)]
mod testutil {
    //! Helpers for the parser's tests.

    use super::{Command, Dockerfile};

    /// Parses `t`, panicking with the error's display.
    pub(super) fn parse(t: &str) -> Dockerfile {
        match Dockerfile::parse(t) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    /// The command of instruction `i` of `t`.
    pub(super) fn cmd(t: &str, i: usize) -> Command {
        parse(t).instructions[i].command.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
