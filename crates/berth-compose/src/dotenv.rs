//! Env files (`.env`, `--env-file`, a service's `env_file`) as compose-go reads them:
//! `KEY=VALUE` lines, an optional `export `, `#` comments (inline only after a blank in an
//! unquoted value), single quotes taken literally, double quotes with backslash escapes,
//! both may span lines; unquoted and double-quoted values are interpolated with what the
//! file defined above and the outside environment. A bare `KEY` takes the outside value and
//! is left out when there is none.

use indexmap::IndexMap;

use crate::interp::{self, InterpError};

#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("line {line}: unexpected character {found:?} in variable name")]
    BadName { line: usize, found: String },
    #[error("line {line}: unterminated quoted value")]
    Unterminated { line: usize },
    #[error("line {line}: {source}")]
    Interp {
        line: usize,
        #[source]
        source: InterpError,
    },
}

/// Parses `text`; `outside` looks up variables not defined in the file.
pub fn parse(
    text: &str,
    outside: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, DotenvError> {
    let mut vars: IndexMap<String, String> = IndexMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, raw)) = lines.next() {
        let line_no = index + 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (name, value) = match line.find(['=', ':']) {
            Some(i) => (line[..i].trim_end(), Some(line[i + 1..].trim_start())),
            None => (line.trim_end(), None),
        };
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        {
            return Err(DotenvError::BadName {
                line: line_no,
                found: bad.to_string(),
            });
        }
        let Some(value) = value else {
            if let Some(v) = outside(name) {
                vars.insert(name.to_owned(), v);
            }
            continue;
        };
        let lookup = |k: &str| vars.get(k).cloned().or_else(|| outside(k));
        let parsed = match value.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let mut body = value[1..].to_owned();
                let mut closed = find_close(&body, q);
                while closed.is_none() {
                    match lines.next() {
                        Some((_, more)) => {
                            body.push('\n');
                            body.push_str(more);
                            closed = find_close(&body, q);
                        }
                        None => return Err(DotenvError::Unterminated { line: line_no }),
                    }
                }
                let inner = &body[..closed.unwrap_or_default()];
                if q == '\'' {
                    inner.to_owned()
                } else {
                    double_quoted(inner, &lookup).map_err(|source| DotenvError::Interp {
                        line: line_no,
                        source,
                    })?
                }
            }
            _ => {
                let unquoted = match value.find(" #").or_else(|| value.find("\t#")) {
                    Some(i) => &value[..i],
                    None => value,
                };
                interp::interpolate(unquoted.trim_end(), &lookup)
                    .map_err(|source| DotenvError::Interp {
                        line: line_no,
                        source,
                    })?
                    .text
            }
        };
        vars.insert(name.to_owned(), parsed);
    }
    Ok(vars)
}

/// The index of the closing quote (a double quote may be escaped).
fn find_close(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' && quote == '"' {
            escaped = true;
        } else if c == quote {
            return Some(i);
        }
    }
    None
}

/// A double-quoted value: escapes, then interpolation (`\$` stays a literal `$`).
fn double_quoted(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpError> {
    let mut unescaped = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            unescaped.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => unescaped.push('\n'),
            Some('t') => unescaped.push('\t'),
            Some('r') => unescaped.push('\r'),
            // A literal dollar survives interpolation as `$$`.
            Some('$') => unescaped.push_str("$$"),
            Some(other) => unescaped.push(other),
            None => unescaped.push('\\'),
        }
    }
    Ok(interp::interpolate(&unescaped, lookup)?.text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_compose_go_reads() {
        let text = "# comment\nA=1\nexport B=two words  # trailing\nC=\"quoted # not comment\\nnewline ${A}\"\nD='single ${A} \\n'\nE=${A}-x\nF\nG=\nH=\"multi\nline\"\nI = spaced\nJ=a#b\nK=\"esc \\\" \\\\ \\t \\$A\"\nX\n";
        let outside = |k: &str| (k == "X").then(|| "fromos".to_owned());
        let vars = parse(text, &outside).unwrap();
        let got: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("A", "1"),
                ("B", "two words"),
                ("C", "quoted # not comment\nnewline 1"),
                ("D", "single ${A} \\n"),
                ("E", "1-x"),
                ("G", ""),
                ("H", "multi\nline"),
                ("I", "spaced"),
                ("J", "a#b"),
                ("K", "esc \" \\ \t $A"),
                ("X", "fromos"),
            ]
        );
    }

    #[test]
    fn bad_lines_name_their_line() {
        let e = parse("A=1\nB C=2\n", &|_| None).unwrap_err();
        assert!(e.to_string().starts_with("line 2"), "{e}");
        let e = parse("A=\"open\n", &|_| None).unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
    }
}
