//! The first pass: Dockerfile text into logical lines. Parser directives at the very top
//! (`# syntax=`, `# escape=`, `# check=`), comments and blank lines, continuations on the
//! escape token (comment and empty lines inside one skipped, an empty one warned about), and
//! the heredoc bodies that follow a line; each logical line then goes to the second pass
//! ([`super::instructions`]).

use super::ast::{Command, Instruction};
use super::error::ParseError;
use super::instructions::parse_command;
use super::words::split_command;
use super::Warning;

pub(super) fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
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

pub(super) struct Parser<'a> {
    pub(super) lines: Vec<&'a str>,
    pub(super) pos: usize,
    pub(super) escape: char,
    lenient: bool,
    pub(super) directives_done: bool,
    seen_directives: Vec<String>,
    pub(super) syntax: Option<String>,
    pub(super) check: Option<String>,
    pub(super) warnings: Vec<Warning>,
    pub(super) errors: Vec<ParseError>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str, lenient: bool) -> Parser<'a> {
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
    pub(super) fn next_instruction(&mut self) -> Option<Result<Instruction, ParseError>> {
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

    /// The logical line starting at line `start` made an instruction: its heredoc bodies read,
    /// then its arguments (second pass); leniently, an instruction that fails is kept as
    /// [`Command::Invalid`] and its error recorded.
    fn finish_instruction(
        &mut self,
        start: usize,
        logical: String,
        comments: Vec<String>,
    ) -> Result<Instruction, ParseError> {
        let l = split_command(&logical, self.escape);
        let heredocs = self.read_heredocs(start, &logical, &l)?;
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

#[cfg(test)]
mod tests {
    use crate::parser::testutil::parse;
    use crate::parser::{Command, CommandLine, Dockerfile, RunCmd};

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
    fn bom_crlf_and_case() {
        let d = parse("\u{feff}from a\r\nrun echo hi \\\r\n  there\r\n");
        assert_eq!(d.instructions[1].name(), "RUN");
        match &d.instructions[1].command {
            Command::Run(r) => assert_eq!(r.command, CommandLine::Shell("echo hi   there".into())),
            c => panic!("{c:?}"),
        }
    }
}
