//! Here-documents (`<<EOF`, `<<-EOF`, `<<"EOF"`, several per line): which instructions may
//! open them, the words that open them, and [`Heredoc`], a body as read (its lines are read by
//! the first pass, [`super::lines`]).

use crate::shell::{Lexer, NoEnv};

use super::error::ParseError;
use super::lines::{trim_newline, Parser};
use super::words::{parse_json, split_command, Logical};

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

pub(super) fn chomp_tabs(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

impl Parser<'_> {
    /// The heredocs the logical line `logical` (its instruction starting at line `start`)
    /// opens, their bodies read from the following lines. Heredocs belong to RUN/COPY/ADD
    /// (also as an ONBUILD trigger) in shell form.
    pub(super) fn read_heredocs(
        &mut self,
        start: usize,
        logical: &str,
        l: &Logical,
    ) -> Result<Vec<Heredoc>, ParseError> {
        let at = |this: &Parser, msg: String| ParseError::new(start, this.pos, msg);
        let mut heredocs = Vec::new();
        if logical.contains("<<") && can_contain_heredoc(l, self.escape) {
            let docs = heredocs_from_line(logical).map_err(|e| at(self, e))?;
            for mut doc in docs {
                let Some(content) = self.read_heredoc_body(&doc) else {
                    return Err(at(
                        self,
                        format!("unterminated heredoc (no line \"{}\" ends it)", doc.name),
                    ));
                };
                doc.content = content;
                heredocs.push(doc);
            }
        }
        Ok(heredocs)
    }

    /// The lines up to `doc`'s delimiter line (consumed, not included); None when the file
    /// ends first.
    fn read_heredoc_body(&mut self, doc: &Heredoc) -> Option<String> {
        let mut content = String::new();
        while self.pos < self.lines.len() {
            let raw = self.lines[self.pos];
            self.pos += 1;
            let mut candidate = trim_newline(raw);
            if doc.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == doc.name {
                return Some(content);
            }
            content.push_str(raw);
        }
        None
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

#[cfg(test)]
mod tests {
    use crate::parser::testutil::{cmd, parse};
    use crate::parser::{Command, CommandLine, Dockerfile};

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
}
