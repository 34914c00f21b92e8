//! [`ParseError`]: a parse error at a place in the Dockerfile, displayed in BuildKit's box
//! (`Dockerfile:7`, the offending lines marked `>>>`, the message).

use std::fmt;

use super::lines::trim_newline;

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

    pub(super) fn with_source(mut self, lines: &[&str]) -> ParseError {
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

#[cfg(test)]
mod tests {
    use crate::parser::Dockerfile;

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
}
