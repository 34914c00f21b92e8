//! Variable expansion and word splitting as Docker's shell lexer does it (BuildKit's
//! `frontend/dockerfile/shell`), which is what the builder applies to instruction arguments.
//!
//! The rules, for a word such as `"$HOME"/a\ b`:
//! - `$NAME` and `${NAME}` expand; an unset variable is empty. A name is letters, digits and
//!   `_`; `$1` (digits) and the special parameters `$@ $* $# $? $- $$ $! $0` are read as names
//!   too (and are normally unset). `$` followed by anything else is a literal `$`.
//! - `${NAME:-word}` is `word` when NAME is unset *or empty*; `${NAME-word}` only when unset.
//!   `${NAME:+word}` is `word` when NAME is set and not empty, else empty; `${NAME+word}` is
//!   `word` when NAME is set (even empty). `${NAME:?msg}`/`${NAME?msg}` fail when unset (or
//!   empty). `${NAME#pat}`/`##`, `${NAME%pat}`/`%%` remove the shortest/longest prefix/suffix
//!   matching a glob (`*`, `?`), and `${NAME/pat/repl}`/`${NAME//pat/repl}` replace the first/
//!   every match. `word` may itself hold expansions. Anything else (`${}`, `${:x}`,
//!   `${A:=b}`, an unclosed `${`) is an error.
//! - The escape token (`\`, or `` ` `` with `# escape=`) makes the next character literal
//!   (`\$HOME` is `$HOME`); a trailing escape is dropped.
//! - Single quotes keep everything literal (no escapes inside); double quotes keep everything
//!   but `$` expansions, and there the escape token only escapes `"`, `$` and itself.
//! - Quotes are removed from the result. Word splitting (for `EXPOSE`, or heredoc detection)
//!   happens after expansion, on unquoted whitespace, so an expanded value with spaces makes
//!   several words unless it was quoted.
//!
//! Which instructions expand which parts is the builder's business (see `plan`): `ADD`, `COPY`,
//! `ENV`, `EXPOSE`, `FROM` (with the global ARGs only), `LABEL`, `STOPSIGNAL`, `USER`,
//! `VOLUME`, `WORKDIR`, `ARG`, and `RUN --mount` values; never `RUN`/`CMD`/`ENTRYPOINT`
//! commands (the shell in the container expands those) nor `ONBUILD` (expanded when the
//! trigger runs).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where the lexer looks variables up.
pub trait Env {
    fn lookup(&self, name: &str) -> Option<String>;
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// `KEY=VALUE` strings, as a container's `Env` holds them; the last one of a key wins.
impl Env for [String] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then(|| v.to_owned())
        })
    }
}

impl Env for Vec<String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// No variables at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _: &str) -> Option<String> {
        None
    }
}

/// An expansion that could not be done; the text is BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpandError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ExpandError> {
    Err(ExpandError(msg.into()))
}

/// What a word expanded to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The word with expansions done and quotes removed, spaces kept.
    pub result: String,
    /// The same split into words on unquoted whitespace.
    pub words: Vec<String>,
    /// Variables that were looked up and found.
    pub matched: BTreeSet<String>,
    /// Variables that were looked up and not set.
    pub unmatched: BTreeSet<String>,
}

/// The shell lexer. `Lexer::new('\\')` is the builder's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the result (used to detect quoted heredoc delimiters).
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
    /// Leave unset variables as written (`$X`, `${X:-y}`) instead of expanding them to empty.
    pub skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` into one string (quotes removed, inner spaces kept).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        Ok(self.process(word, env)?.result)
    }

    /// Expands `word` and splits the result into words.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        Ok(self.process(word, env)?.words)
    }

    /// Expands `word`, reporting the result, its words and which variables were used.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, ExpandError> {
        let mut st = State {
            lex: *self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        let raw = st.raw_escapes;
        let (result, words) = st
            .process_stop_on(None, raw)
            .map_err(|e| ExpandError(format!("failed to process \"{word}\": {}", e.0)))?;
        Ok(Expansion {
            result,
            words,
            matched: st.matched,
            unmatched: st.unmatched,
        })
    }
}

struct State<'a> {
    lex: Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' if !self.lex.skip_process_quotes => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '"' if !self.lex.skip_process_quotes => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.next();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, ExpandError> {
        let mut result = String::new();
        let q = self.next().unwrap_or('\'');
        if self.lex.raw_quotes {
            result.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching single-quote",
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ExpandError> {
        let mut result = String::new();
        let q = self.next().unwrap_or('"');
        if self.lex.raw_quotes {
            result.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return err(
                        "unexpected end of statement while looking for matching double-quote",
                    )
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_owned());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ExpandError> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // '{'
        match self.peek() {
            None => return err("syntax error: missing '}'"),
            Some('{' | '}' | ':') => return err("syntax error: bad substitution"),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let op = self.next();
                let chs = format!(":{}", op.map(String::from).unwrap_or_default());
                self.modifier(&name, op, &chs, true)
            }
            Some(c @ ('+' | '-' | '?' | '#' | '%')) => {
                self.modifier(&name, Some(c), &c.to_string(), false)
            }
            Some('/') => self.replace(&name),
            Some(c) => err(format!("unsupported modifier ({c}) in substitution")),
            None => err("syntax error: missing '}'"),
        }
    }

    fn modifier(
        &mut self,
        name: &str,
        op: Option<char>,
        chs: &str,
        null_is_unset: bool,
    ) -> Result<String, ExpandError> {
        let raw = matches!(op, Some('#' | '%'));
        if null_is_unset && raw {
            return err(format!("unsupported modifier ({chs}) in substitution"));
        }
        let word = match self.process_stop_on(Some('}'), raw) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return err("syntax error: missing '}'");
                }
                return Err(e);
            }
        };
        let value = self.get_env(name);
        if value.is_none() && self.lex.skip_unset_env {
            return Ok(format!("${{{name}{chs}{word}}}"));
        }
        let set = value.is_some();
        let value = value.unwrap_or_default();
        let unset_or_null = !set || (null_is_unset && value.is_empty());
        match op {
            Some('-') => Ok(if unset_or_null { word } else { value }),
            Some('+') => Ok(if unset_or_null { String::new() } else { word }),
            Some('?') => {
                if !set {
                    let msg = if word.is_empty() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        word
                    };
                    return err(format!("{name}: {msg}"));
                }
                if null_is_unset && value.is_empty() {
                    let msg = if word.is_empty() {
                        "is not allowed to be empty".to_owned()
                    } else {
                        word
                    };
                    return err(format!("{name}: {msg}"));
                }
                Ok(value)
            }
            Some(c @ ('#' | '%')) => {
                let (greedy, pat) = match word.strip_prefix(c) {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, word),
                };
                let pat = Glob::compile(&pat)?;
                Ok(if c == '#' {
                    trim_prefix(&pat, &value, greedy)
                } else {
                    trim_suffix(&pat, &value, greedy)
                })
            }
            _ => err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn replace(&mut self, name: &str) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return err("syntax error: missing '/' in ${}");
                }
                return Err(e);
            }
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((w, _)) => w,
            Err(e) => {
                if self.peek().is_none() {
                    return err("syntax error: missing '}'");
                }
                return Err(e);
            }
        };
        let value = self.get_env(name);
        let Some(value) = value else {
            if self.lex.skip_unset_env {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        let glob = Glob::compile(&pattern)?;
        Ok(replace_matches(&glob, &value, &replacement, all))
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|c| c.is_ascii_digit()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.next(); // '<'
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.next();
        }
        out
    }
}

/// A shell pattern of `${x#pat}` and friends: `*`, `?`, and `\` escaping `*`, `?`, `\` (an
/// escaped `}` or `/` is the character itself). No bracket expressions, as in BuildKit.
#[derive(Debug)]
struct Glob(Vec<GlobTok>);

#[derive(Debug, PartialEq)]
enum GlobTok {
    Star,
    Any,
    Lit(char),
}

impl Glob {
    fn compile(pat: &str) -> Result<Glob, ExpandError> {
        let mut out = Vec::new();
        let mut it = pat.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '*' => out.push(GlobTok::Star),
                '?' => out.push(GlobTok::Any),
                '\\' => match it.next() {
                    Some(n @ ('}' | '/')) => out.push(GlobTok::Lit(n)),
                    Some(n @ ('*' | '?' | '\\')) => out.push(GlobTok::Lit(n)),
                    Some(n) => {
                        return err(format!(
                            "invalid pattern ({pat}) in substitution: invalid escape '\\{n}'"
                        ))
                    }
                    None => out.push(GlobTok::Lit('\\')),
                },
                c => out.push(GlobTok::Lit(c)),
            }
        }
        Ok(Glob(out))
    }

    /// Whether the pattern matches all of `s`.
    fn full_match(&self, s: &[char]) -> bool {
        fn go(p: &[GlobTok], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some(GlobTok::Star) => (0..=s.len()).any(|i| go(&p[1..], &s[i..])),
                Some(GlobTok::Any) => !s.is_empty() && go(&p[1..], &s[1..]),
                Some(GlobTok::Lit(c)) => s.first() == Some(c) && go(&p[1..], &s[1..]),
            }
        }
        // Bound the work a pathological pattern can cause.
        if self.0.iter().filter(|t| **t == GlobTok::Star).count() > 8 && s.len() > 256 {
            return false;
        }
        go(&self.0, s)
    }
}

fn trim_prefix(p: &Glob, value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut ends: Vec<usize> = (0..=chars.len()).collect();
    if greedy {
        ends.reverse();
    }
    for end in ends {
        if p.full_match(&chars[..end]) {
            return chars[end..].iter().collect();
        }
    }
    value.to_owned()
}

fn trim_suffix(p: &Glob, value: &str, greedy: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut starts: Vec<usize> = (0..=chars.len()).collect();
    if !greedy {
        starts.reverse();
    }
    for start in starts {
        if p.full_match(&chars[start..]) {
            return chars[..start].iter().collect();
        }
    }
    value.to_owned()
}

fn replace_matches(p: &Glob, value: &str, replacement: &str, all: bool) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut replaced = false;
    while i <= chars.len() {
        if replaced && !all {
            break;
        }
        // Leftmost, then longest match starting at i.
        let found = (i..=chars.len())
            .rev()
            .find(|&end| p.full_match(&chars[i..end]));
        match found {
            Some(end) => {
                out.push_str(replacement);
                replaced = true;
                if end == i {
                    if let Some(c) = chars.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                } else {
                    i = end;
                }
            }
            None => {
                if let Some(c) = chars.get(i) {
                    out.push(*c);
                }
                i += 1;
            }
        }
    }
    if i < chars.len() {
        out.extend(&chars[i..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [
            ("PWD", "/home"),
            ("SHELL", "bash"),
            ("KOREAN", "한국어"),
            ("NULL", ""),
            ("FILE", "archive.tar.gz"),
            ("SPACE", "abc  def"),
            ("LEADING", "  ab c"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// (input, expected result or None for an error): Docker's documented and tested lexer
    /// behaviour.
    const WORD_CASES: &[(&str, Option<&str>)] = &[
        ("hello", Some("hello")),
        ("he'll'o", Some("hello")),
        ("he'llo", None),
        ("he\\'llo", Some("he'llo")),
        ("he\\\\'llo", None),
        ("abc\\tdef", Some("abctdef")),
        ("\"abc\\tdef\"", Some("abc\\tdef")),
        ("\"abc\\\\tdef\"", Some("abc\\tdef")),
        ("'abc\\tdef'", Some("abc\\tdef")),
        ("hello\\", Some("hello")),
        ("hello\\\\", Some("hello\\")),
        ("\"hello", None),
        ("\"hello\\\"", None),
        ("\"hel'lo\"", Some("hel'lo")),
        ("'hello", None),
        ("'hello\\'", Some("hello\\")),
        ("\"''\"", Some("''")),
        ("$.", Some("$.")),
        ("he$1x", Some("hex")),
        ("he$.x", Some("he$.x")),
        ("he$pwd.", Some("he.")),
        ("he$PWD", Some("he/home")),
        ("he\\$PWD", Some("he$PWD")),
        ("he\\\\$PWD", Some("he\\/home")),
        ("\"he\\$PWD\"", Some("he$PWD")),
        ("\"he\\\\$PWD\"", Some("he\\/home")),
        ("\\${}", Some("${}")),
        ("he\\${}xx", Some("he${}xx")),
        ("${}", None),
        ("he${}xx", None),
        ("he${hi}xx", Some("hexx")),
        ("he${PWD}", Some("he/home")),
        ("he${.}", None),
        ("he${XXX:-000}xx", Some("he000xx")),
        ("he${PWD:-000}xx", Some("he/homexx")),
        ("he${XXX:-$PWD}xx", Some("he/homexx")),
        ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
        ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
        ("he${XXX:YYY}", None),
        ("he${XXX?}", None),
        ("he${XXX:?}", None),
        ("he${PWD?}", Some("he/home")),
        ("he${PWD:?}", Some("he/home")),
        ("he${NULL?}", Some("he")),
        ("he${NULL:?}", None),
        ("he${XXX:+${PWD}}xx", Some("hexx")),
        ("he${PWD:+${XXX}}xx", Some("hexx")),
        ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
        ("he${XXX:+000}xx", Some("hexx")),
        ("he${PWD:+000}xx", Some("he000xx")),
        ("'he${XX}'", Some("he${XX}")),
        ("\"he${PWD}\"", Some("he/home")),
        ("\"he'$PWD'\"", Some("he'/home'")),
        ("'$PWD'", Some("$PWD")),
        ("'\\$PWD'", Some("\\$PWD")),
        ("'\"hello\"'", Some("\"hello\"")),
        ("he${PWD", None),
        ("he${PWD:=000}xx", None),
        ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
        ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
        ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
        ("안녕$KOREAN", Some("안녕한국어")),
        ("안'녕'하세요", Some("안녕하세요")),
        ("${{aaa}", None),
        ("${aaa}}", Some("}")),
        ("${aaa:-bbb}}", Some("bbb}")),
        ("${aaa:-bbb", None),
        ("${aaa:-${bbb:-ccc}}", Some("ccc")),
        ("${aaa:-bbb ${foo}", None),
        ("${aaa:-bbb {foo}", Some("bbb {foo")),
        ("${:}", None),
        ("${:-bbb}", None),
        ("$1", Some("")),
        ("${1:-bbb}", Some("bbb")),
        // `-`/`+` without the colon: only unset counts, an empty value is a value.
        ("${NULL-def}", Some("")),
        ("${NULL:-def}", Some("def")),
        ("${NULL+alt}", Some("alt")),
        ("${NULL:+alt}", Some("")),
        ("${XXX-def}", Some("def")),
        ("${XXX+alt}", Some("")),
        // Pattern removal and replacement.
        ("${FILE#*.}", Some("tar.gz")),
        ("${FILE##*.}", Some("gz")),
        ("${FILE%.*}", Some("archive.tar")),
        ("${FILE%%.*}", Some("archive")),
        ("${FILE/a/A}", Some("Archive.tar.gz")),
        ("${FILE//a/A}", Some("Archive.tAr.gz")),
        ("${FILE:#x}", None),
        ("${XXX#a}", Some("")),
    ];

    #[test]
    fn words_expand_like_dockers_lexer() {
        let env = env();
        let lex = Lexer::new('\\');
        for (input, want) in WORD_CASES {
            let got = lex.process_word(input, &env);
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
                None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
            }
        }
    }

    #[test]
    fn word_splitting_after_expansion() {
        let env = env();
        let lex = Lexer::new('\\');
        let cases: &[(&str, &[&str])] = &[
            ("hello${SPACE}bye", &["helloabc", "defbye"]),
            ("hello\"${SPACE}\"bye", &["helloabc  defbye"]),
            ("hello${LEADING}def", &["hello", "ab", "cdef"]),
            ("hello there", &["hello", "there"]),
            ("hello\\ there", &["hello there"]),
            ("hello\\\" there", &["hello\"", "there"]),
            ("hello'$there'", &["hello$there"]),
            ("80 443/udp", &["80", "443/udp"]),
        ];
        for (input, want) in cases {
            let got = lex.process_words(input, &env).unwrap();
            assert_eq!(got, *want, "input {input:?}");
        }
        assert!(lex.process_words("hello\" there", &env).is_err());
    }

    #[test]
    fn backtick_escape_token() {
        let lex = Lexer::new('`');
        let env = env();
        assert_eq!(lex.process_word("a`$PWD", &env).unwrap(), "a$PWD");
        assert_eq!(lex.process_word("c:\\dir", &env).unwrap(), "c:\\dir");
        assert_eq!(lex.process_word("\"a`\"b\"", &env).unwrap(), "a\"b");
    }

    #[test]
    fn skip_unset_and_raw_modes() {
        let mut lex = Lexer::new('\\');
        lex.skip_unset_env = true;
        let env = env();
        assert_eq!(
            lex.process_word("$X ${Y} $PWD", &env).unwrap(),
            "$X ${Y} /home"
        );
        assert_eq!(lex.process_word("${Y:-z}", &env).unwrap(), "${Y:-z}");
        let mut raw = Lexer::new('\\');
        raw.raw_quotes = true;
        assert_eq!(raw.process_word("'EOF'", &NoEnv).unwrap(), "'EOF'");
        let mut body = Lexer::new('\\');
        body.skip_process_quotes = true;
        assert_eq!(
            body.process_word("echo '$PWD' \"x\"", &env).unwrap(),
            "echo '/home' \"x\""
        );
    }

    #[test]
    fn reports_matched_and_unmatched() {
        let e = Lexer::new('\\').process("$PWD ${NOPE:-x}", &env()).unwrap();
        assert!(e.matched.contains("PWD"));
        assert!(e.unmatched.contains("NOPE"));
    }

    #[test]
    fn env_list_lookup_takes_the_last() {
        let list = vec!["A=1".to_owned(), "B=2".to_owned(), "A=3".to_owned()];
        assert_eq!(list.lookup("A").as_deref(), Some("3"));
        assert_eq!(list.lookup("C"), None);
    }
}
