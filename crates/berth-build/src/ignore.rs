//! `.dockerignore`, with the semantics of moby's `patternmatcher` and `ignorefile` (not
//! gitignore's):
//!
//! - A line starting with `#` (in column 1) is a comment; other lines are trimmed and blank
//!   ones skipped. `!` in front makes an exception (re-includes what matched before).
//! - Each pattern is cleaned like Go's `filepath.Clean` (`./a//b/../c` is `a/c`, a trailing
//!   `/` goes) and a leading `/` is dropped: patterns are relative to the context root, and
//!   anchored there (`foo` is only `./foo`, not `x/foo`).
//! - `*` matches anything but `/`, `?` one character but `/`, `[a-z]`/`[^a-z]` a class, `\`
//!   escapes; `**` matches any number of directories (`**/*.go` is every `.go` file, at the
//!   root too); a trailing `/**` everything below.
//! - A path is excluded by a pattern that matches it *or any of its parent directories*
//!   (`node_modules` excludes everything under it); the last pattern that matches decides.
//!
//! The quirks of moby's implementation are kept: a pattern starting with `**` and otherwise
//! plain text is a suffix test (`**foo` matches `barfoo`), one ending in `**` a prefix test.

use std::path::Path;

/// A bad pattern (moby refuses the whole file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclamation,
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
    #[error("read {path}: {message}")]
    Io { path: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `*`: anything but `/`.
    Star,
    /// `?`: one character but `/`.
    Any,
    /// `**` followed by more: `(.*/)?`.
    DirStar,
    /// `**` at the end: `.*`.
    Rest,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Glob(Vec<Tok>),
}

/// One pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
    components: usize,
}

impl Pattern {
    /// The cleaned pattern, without `!`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// An exception (`!pattern`).
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn compile(text: &str, exclusion: bool) -> Result<Pattern, IgnoreError> {
        let chars: Vec<char> = text.chars().collect();
        let mut toks = Vec::new();
        let mut kind = 0u8; // 0 exact, 1 prefix, 2 suffix, 3 glob
        let mut i = 0;
        let mut first = true;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        if kind == 0 {
                            kind = 1;
                        } else {
                            kind = 3;
                        }
                        toks.push(Tok::Rest);
                    } else {
                        toks.push(Tok::DirStar);
                        kind = 3;
                    }
                    if first {
                        kind = 2;
                    }
                }
                '*' => {
                    toks.push(Tok::Star);
                    kind = 3;
                }
                '?' => {
                    toks.push(Tok::Any);
                    kind = 3;
                }
                '\\' => match chars.get(i) {
                    Some(&n) => {
                        toks.push(Tok::Lit(n));
                        i += 1;
                        kind = 3;
                    }
                    None => toks.push(Tok::Lit('\\')),
                },
                '[' => {
                    let (tok, next) = parse_class(&chars, i)
                        .ok_or_else(|| IgnoreError::BadPattern(text.to_owned()))?;
                    toks.push(tok);
                    i = next;
                    kind = 3;
                }
                ']' => {
                    toks.push(Tok::Lit(']'));
                    kind = 3;
                }
                c => toks.push(Tok::Lit(c)),
            }
            first = false;
        }
        let kind = match kind {
            0 => Kind::Exact,
            1 => Kind::Prefix,
            2 => Kind::Suffix,
            _ => Kind::Glob(toks),
        };
        Ok(Pattern {
            components: text.split('/').count(),
            text: text.to_owned(),
            exclusion,
            kind,
        })
    }

    /// Whether the pattern matches `path` itself (relative, `/`-separated).
    fn matches_path(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Glob(toks) => glob_match(toks, &path.chars().collect::<Vec<_>>()),
        }
    }

    /// Whether it matches `path` or one of its parent directories.
    fn matches_or_parent(&self, path: &str) -> bool {
        if self.matches_path(path) {
            return true;
        }
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            if self.matches_path(&path[..end]) {
                return true;
            }
            end += 1;
        }
        false
    }
}

/// `[...]` starting after the `[` at `start`: the token and the index after `]`.
fn parse_class(chars: &[char], start: usize) -> Option<(Tok, usize)> {
    let mut i = start;
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i)?;
        i += 1;
        if c == ']' && !first {
            return Some((Tok::Class { negated, items }, i));
        }
        first = false;
        let lo = if c == '\\' {
            let n = *chars.get(i)?;
            i += 1;
            n
        } else {
            c
        };
        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
            let mut h = chars[i + 1];
            i += 2;
            if h == '\\' {
                h = *chars.get(i)?;
                i += 1;
            }
            h
        } else {
            lo
        };
        if hi < lo {
            return None;
        }
        items.push((lo, hi));
    }
}

fn glob_match(toks: &[Tok], s: &[char]) -> bool {
    // memo[t][i]: toks[t..] against s[i..]; 0 unknown, 1 no, 2 yes.
    let w = s.len() + 1;
    let mut memo = vec![0u8; (toks.len() + 1) * w];
    fn go(toks: &[Tok], s: &[char], t: usize, i: usize, w: usize, memo: &mut [u8]) -> bool {
        let k = t * w + i;
        if memo[k] != 0 {
            return memo[k] == 2;
        }
        let r = match toks.get(t) {
            None => i == s.len(),
            Some(Tok::Lit(c)) => s.get(i) == Some(c) && go(toks, s, t + 1, i + 1, w, memo),
            Some(Tok::Any) => {
                s.get(i).is_some_and(|c| *c != '/') && go(toks, s, t + 1, i + 1, w, memo)
            }
            Some(Tok::Class { negated, items }) => {
                s.get(i)
                    .is_some_and(|c| items.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated)
                    && go(toks, s, t + 1, i + 1, w, memo)
            }
            Some(Tok::Star) => {
                let mut j = i;
                loop {
                    if go(toks, s, t + 1, j, w, memo) {
                        break true;
                    }
                    if j >= s.len() || s[j] == '/' {
                        break false;
                    }
                    j += 1;
                }
            }
            Some(Tok::Rest) => true,
            Some(Tok::DirStar) => {
                // Nothing, or anything ending in `/`.
                go(toks, s, t + 1, i, w, memo)
                    || (i..s.len()).any(|j| s[j] == '/' && go(toks, s, t + 1, j + 1, w, memo))
            }
        };
        memo[k] = if r { 2 } else { 1 };
        r
    }
    go(toks, s, 0, 0, w, &mut memo)
}

/// Go's `filepath.Clean` on a `/`-separated path.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => match out.last() {
                Some(&l) if l != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// No patterns: nothing is excluded.
    pub fn empty() -> Ignore {
        Ignore::default()
    }

    /// Reads a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Result<Ignore, IgnoreError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let invert = p.starts_with('!');
            if invert {
                p = p[1..].trim();
            }
            let mut pat = String::new();
            if !p.is_empty() {
                pat = clean(p);
                if pat.len() > 1 && pat.starts_with('/') {
                    pat.remove(0);
                }
            }
            lines.push(if invert { format!("!{pat}") } else { pat });
        }
        Ignore::from_patterns(&lines)
    }

    /// Reads the file; a missing file is no patterns.
    pub fn from_file(path: &Path) -> Result<Ignore, IgnoreError> {
        match std::fs::read(path) {
            Ok(b) => Ignore::parse(&String::from_utf8_lossy(&b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore::empty()),
            Err(e) => Err(IgnoreError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Patterns as the API's `excludes` or a parsed file give them.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Ignore, IgnoreError> {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, p) = match p.strip_prefix('!') {
                Some("") => return Err(IgnoreError::BareExclamation),
                Some(rest) => (true, rest.to_owned()),
                None => (false, p),
            };
            out.push(Pattern::compile(&p, exclusion)?);
        }
        Ok(Ignore { patterns: out })
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is an exception (`!…`).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative to the context root, `/`-separated) is excluded.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean(path.trim_start_matches('/'));
        if path == "." {
            return false; // the root itself is never excluded
        }
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            if p.matches_or_parent(&path) {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// For an excluded directory: whether an exception could re-include something below it
    /// (else the walker does not read it at all). An exception can only when it has more
    /// components than the directory and its first ones match it, or it uses `**`.
    pub fn may_include_under(&self, dir: &str) -> bool {
        let dir = clean(dir.trim_start_matches('/'));
        let depth = dir.split('/').count();
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            if p.text.contains("**") || !matches!(p.kind, Kind::Glob(_) | Kind::Exact) {
                return true;
            }
            if p.components <= depth {
                return false;
            }
            let head: Vec<&str> = p.text.split('/').take(depth).collect();
            Pattern::compile(&head.join("/"), false).is_ok_and(|h| h.matches_path(&dir))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    /// The examples of Docker's `.dockerignore` documentation, and moby's matcher rules.
    #[test]
    fn dockers_documented_examples() {
        // (ignore file, path, excluded?)
        let table: &[(&str, &str, bool)] = &[
            // "# comment / */temp* / */*/temp* / temp?"
            (
                "# comment\n*/temp*\n*/*/temp*\ntemp?",
                "somedir/temporary.txt",
                true,
            ),
            ("# comment\n*/temp*\n*/*/temp*\ntemp?", "somedir/temp", true),
            (
                "# comment\n*/temp*\n*/*/temp*\ntemp?",
                "somedir/temp/x",
                true,
            ),
            (
                "# comment\n*/temp*\n*/*/temp*\ntemp?",
                "somedir/subdir/temporary.txt",
                true,
            ),
            ("# comment\n*/temp*\n*/*/temp*\ntemp?", "tempa", true),
            ("# comment\n*/temp*\n*/*/temp*\ntemp?", "tempb", true),
            ("# comment\n*/temp*\n*/*/temp*\ntemp?", "temp", false),
            (
                "# comment\n*/temp*\n*/*/temp*\ntemp?",
                "temporary.txt",
                false,
            ),
            ("# comment\n*/temp*\n*/*/temp*\ntemp?", "a/b/c/temp", false),
            ("# comment\n*/temp*\n*/*/temp*\ntemp?", "# comment", false),
            // Root-anchored: /foo/bar and foo/bar are the same; neither excludes x/foo/bar.
            ("/foo/bar", "foo/bar", true),
            ("foo/bar", "foo/bar", true),
            ("foo/bar", "x/foo/bar", false),
            ("foo/bar", "foo/bar/baz", true),
            ("foo/bar", "foo", false),
            // ** matches any number of directories, including none.
            ("**/*.go", "main.go", true),
            ("**/*.go", "a/b/c/main.go", true),
            ("**/*.go", "main.gox", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**", "a/x/y", true),
            ("a/**", "ab", false),
            // Exceptions: the last matching line decides.
            ("*.md\n!README.md", "CHANGES.md", true),
            ("*.md\n!README.md", "README.md", false),
            (
                "*.md\n!README*.md\nREADME-secret.md",
                "README-secret.md",
                true,
            ),
            (
                "*.md\n!README*.md\nREADME-secret.md",
                "README-public.md",
                false,
            ),
            ("*.md\n!README*.md\nREADME-secret.md", "notes.md", true),
            (
                "*.md\nREADME-secret.md\n!README*.md",
                "README-secret.md",
                false,
            ),
            // Exclude everything, then list what to include.
            ("*\n!src\n!Dockerfile", "src/main.rs", false),
            ("*\n!src\n!Dockerfile", "Dockerfile", false),
            ("*\n!src\n!Dockerfile", "target/debug/x", true),
            // Cleaning: ./, //, .., trailing /.
            ("./build//", "build/out", true),
            ("a/../b", "b", true),
            ("a/../b", "a/b", false),
            ("node_modules/", "node_modules/x/y.js", true),
            // Leading and trailing whitespace is trimmed; a # not in column 1 is a pattern.
            ("  secret.txt  ", "secret.txt", true),
            (" #x", "#x", true),
            // ? and classes.
            ("file?.txt", "file1.txt", true),
            ("file?.txt", "file10.txt", false),
            ("log[0-9]", "log5", true),
            ("log[^0-9]", "log5", false),
            ("log[^0-9]", "logx", true),
            // Escapes.
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            // moby's suffix quirk.
            ("**foo", "barfoo", true),
            ("**/foo", "foo", true),
            ("**/foo", "x/foo", true),
        ];
        for (file, path, want) in table {
            assert_eq!(ig(file).matches(path), *want, "{file:?} on {path:?}");
        }
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(
            Ignore::parse("!").unwrap_err(),
            IgnoreError::BareExclamation
        );
        assert!(matches!(
            Ignore::parse("a[b").unwrap_err(),
            IgnoreError::BadPattern(_)
        ));
        assert!(matches!(
            Ignore::parse("[z-a]").unwrap_err(),
            IgnoreError::BadPattern(_)
        ));
    }

    #[test]
    fn which_excluded_dirs_need_reading() {
        let i = ig("build\n!build/keep.txt");
        assert!(i.matches("build"));
        assert!(i.may_include_under("build"));
        assert!(!i.matches("build/keep.txt"));
        let i = ig("build\n!src/x");
        assert!(!i.may_include_under("build"));
        let i = ig("*\n!*/keep");
        assert!(i.may_include_under("anything"));
        assert!(!i.may_include_under("anything/deeper"));
        let i = ig("target\n!**/*.rs");
        assert!(i.may_include_under("target"));
        assert!(!ig("target").may_include_under("target"));
    }

    #[test]
    fn clean_like_go() {
        for (a, b) in [
            ("", "."),
            ("./a//b/", "a/b"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/./b/../c", "a/c"),
        ] {
            assert_eq!(clean(a), b, "{a}");
        }
    }
}
