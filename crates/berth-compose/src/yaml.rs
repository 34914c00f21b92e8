//! YAML text into a tree that remembers where each value came from ([`Node`]: file and
//! line), so every later error can name them. Built on saphyr-parser's events (YAML 1.2):
//! anchors and aliases are resolved, `<<` merge keys applied (explicit keys win, then the
//! merged maps in order), duplicate keys refused, and plain scalars typed by the core schema
//! (null, booleans, integers, floats), as go-yaml v3 types them for compose-go.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, SpannedEventReceiver};

/// Where a value was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: Arc<PathBuf>,
    /// 1-based; 0 when the value was made by the loader, not read.
    pub line: usize,
}

impl Pos {
    pub fn made() -> Pos {
        Pos {
            file: Arc::new(PathBuf::new()),
            line: 0,
        }
    }
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(IndexMap<String, Node>),
}

/// A merge instruction written as a YAML tag on a value of a later file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeTag {
    /// `!reset`: the key is removed.
    Reset,
    /// `!override`: the value replaces the earlier one instead of merging with it.
    Override,
}

/// A value and where it came from. A map's or list's position is its key's line.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Pos,
    pub tag: Option<MergeTag>,
}

impl Node {
    pub fn new(value: Value, at: Pos) -> Node {
        Node {
            value,
            at,
            tag: None,
        }
    }

    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut IndexMap<String, Node>> {
        match &mut self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// The value as plain JSON (positions dropped).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// The position of the value at a JSON-ish path (`services.web.ports[0]`), or of the
    /// deepest value on the way there.
    pub fn locate(&self, path: &[PathStep]) -> &Pos {
        let mut node = self;
        for step in path {
            let next = match (step, &node.value) {
                (PathStep::Key(k), Value::Map(m)) => m.get(k.as_str()),
                (PathStep::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        &node.at
    }
}

/// One step of a path into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// Why a file could not be read as YAML.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct YamlError {
    pub file: String,
    pub message: String,
}

/// Parses one file's text (a single document; an empty file is an empty map).
pub fn parse(text: &str, file: &Path) -> Result<Node, YamlError> {
    let file = Arc::new(file.to_path_buf());
    let mut builder = Builder {
        file: file.clone(),
        stack: Vec::new(),
        anchors: Default::default(),
        root: None,
        error: None,
        documents: 0,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, false) {
        return Err(YamlError {
            file: file.display().to_string(),
            message: format!(
                "yaml: line {}: {}",
                e.marker().line(),
                e.info().trim_end_matches('.')
            ),
        });
    }
    if let Some(message) = builder.error {
        return Err(YamlError {
            file: file.display().to_string(),
            message,
        });
    }
    Ok(builder
        .root
        .unwrap_or_else(|| Node::new(Value::Map(IndexMap::new()), Pos { file, line: 1 })))
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Node>,
        at: Pos,
        anchor: usize,
        tag: Option<MergeTag>,
    },
    Map {
        entries: IndexMap<String, Node>,
        /// A key read whose value has not come yet, with its line.
        key: Option<(String, usize)>,
        /// Maps named by `<<`, applied at the end.
        merges: Vec<Node>,
        at: Pos,
        anchor: usize,
        tag: Option<MergeTag>,
    },
}

struct Builder {
    file: Arc<PathBuf>,
    stack: Vec<Frame>,
    anchors: std::collections::HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<String>,
    documents: usize,
}

impl Builder {
    fn pos(&self, span: &Span) -> Pos {
        Pos {
            file: self.file.clone(),
            line: span.start.line(),
        }
    }

    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(message);
        }
    }

    /// Puts a finished value where it belongs: as a map's key, a map's value, a list's item
    /// or the document.
    fn place(&mut self, mut node: Node, anchor: usize, scalar_key: Option<String>) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merges,
                ..
            }) => match key.take() {
                None => match scalar_key {
                    Some(k) => *key = Some((k, node.at.line)),
                    None => {
                        let line = node.at.line;
                        self.fail(format!(
                            "yaml: line {line}: a mapping key must be a scalar value"
                        ))
                    }
                },
                Some((k, line)) => {
                    if k == "<<" {
                        match node.value {
                            Value::Map(_) => merges.push(node),
                            Value::Seq(items) => merges.extend(items),
                            _ => {
                                self.fail(format!(
                                    "yaml: line {line}: map merge requires map or sequence of maps as the value"
                                ));
                            }
                        }
                        return;
                    }
                    if matches!(node.value, Value::Map(_) | Value::Seq(_)) {
                        node.at.line = line;
                    }
                    if let Some(first) = entries.get(&k) {
                        let first = first.at.line;
                        self.fail(format!(
                            "yaml: line {line}: mapping key \"{k}\" already defined at line {first}"
                        ));
                        return;
                    }
                    entries.insert(k, node);
                }
            },
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, event: Event<'input>, span: Span) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail("multiple documents in one compose file are not supported".into());
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let at = self.pos(&span);
                let forced_str = matches!(
                    tag.as_deref(),
                    Some(t) if t.suffix == "str"
                );
                let value = if style != ScalarStyle::Plain || forced_str {
                    Value::Str(text.to_string())
                } else {
                    resolve_plain(&text)
                };
                let key = match &value {
                    Value::Str(s) => Some(s.clone()),
                    Value::Null => Some(String::new()),
                    _ => Some(text.to_string()),
                };
                let tag = merge_tag(tag.as_deref());
                self.place(Node { value, at, tag }, anchor, key);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    let key = node.as_str().map(str::to_owned);
                    self.place(node, 0, key)
                }
                None => {
                    let line = span.start.line();
                    self.fail(format!("yaml: line {line}: unknown anchor referenced"))
                }
            },
            Event::SequenceStart(anchor, tag) => {
                let at = self.pos(&span);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    at,
                    anchor,
                    tag: merge_tag(tag.as_deref()),
                });
            }
            Event::MappingStart(anchor, tag) => {
                let at = self.pos(&span);
                self.stack.push(Frame::Map {
                    entries: IndexMap::new(),
                    key: None,
                    merges: Vec::new(),
                    at,
                    anchor,
                    tag: merge_tag(tag.as_deref()),
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    at,
                    anchor,
                    tag,
                }) = self.stack.pop()
                {
                    self.place(
                        Node {
                            value: Value::Seq(items),
                            at,
                            tag,
                        },
                        anchor,
                        None,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    mut entries,
                    merges,
                    at,
                    anchor,
                    tag,
                    ..
                }) = self.stack.pop()
                {
                    for merged in merges {
                        match merged.value {
                            Value::Map(m) => {
                                for (k, v) in m {
                                    entries.entry(k).or_insert(v);
                                }
                            }
                            _ => {
                                let line = merged.at.line;
                                self.fail(format!(
                                    "yaml: line {line}: map merge requires map or sequence of maps as the value"
                                ));
                                return;
                            }
                        }
                    }
                    self.place(
                        Node {
                            value: Value::Map(entries),
                            at,
                            tag,
                        },
                        anchor,
                        None,
                    );
                }
            }
            _ => {}
        }
    }
}

fn merge_tag(tag: Option<&saphyr_parser::Tag>) -> Option<MergeTag> {
    match tag {
        Some(t) if t.handle == "!" && t.suffix == "reset" => Some(MergeTag::Reset),
        Some(t) if t.handle == "!" && t.suffix == "override" => Some(MergeTag::Override),
        _ => None,
    }
}

/// Types a plain scalar as go-yaml v3 does for compose-go: YAML 1.2's core schema, with
/// Go's integer syntax (a leading `0` is octal, `0x` hex, `0b` binary).
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    // An integer too large for i64 keeps its digits.
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Value::Str(text.to_owned());
    }
    if looks_like_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text.to_owned())
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -value } else { value })
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn looks_like_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Node {
        parse(text, Path::new("compose.yaml")).unwrap()
    }

    #[test]
    fn scalars_are_typed_by_the_core_schema() {
        let n =
            load("a: 1\nb: '1'\nc: true\nd: yes\ne: 1.5\nf:\ng: ~\nh: 0x1f\ni: 1e3\nj: 1.2.3\n");
        let j = n.to_json();
        assert_eq!(j["a"], 1);
        assert_eq!(j["b"], "1");
        assert_eq!(j["c"], true);
        assert_eq!(j["d"], "yes");
        assert_eq!(j["e"], 1.5);
        assert!(j["f"].is_null());
        assert!(j["g"].is_null());
        assert_eq!(j["h"], 31);
        assert_eq!(j["i"], 1000.0);
        assert_eq!(j["j"], "1.2.3");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let n = load(
            "x-base: &base\n  image: busybox\n  restart: always\nservices:\n  a:\n    <<: *base\n    restart: \"no\"\n  b: *base\n",
        );
        let j = n.to_json();
        assert_eq!(j["services"]["a"]["image"], "busybox");
        assert_eq!(j["services"]["a"]["restart"], "no");
        assert_eq!(j["services"]["b"]["restart"], "always");
    }

    #[test]
    fn lines_are_remembered() {
        let n = load("services:\n  web:\n    image: busybox\n    ports:\n      - 80\n");
        let path = [
            PathStep::Key("services".into()),
            PathStep::Key("web".into()),
            PathStep::Key("ports".into()),
            PathStep::Index(0),
        ];
        assert_eq!(n.locate(&path).line, 5);
        assert_eq!(n.locate(&path[..3]).line, 4);
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_refused_with_their_line() {
        let e = parse("a: 1\nb: 2\na: 3\n", Path::new("c.yaml")).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        assert!(
            e.to_string().contains("\"a\" already defined at line 1"),
            "{e}"
        );
        let e = parse("a: [1, 2\n", Path::new("c.yaml")).unwrap_err();
        assert!(e.to_string().starts_with("c.yaml: yaml: line"), "{e}");
    }

    #[test]
    fn an_empty_file_is_an_empty_map() {
        assert_eq!(load("").to_json(), serde_json::json!({}));
    }
}
