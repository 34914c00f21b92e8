//! The Compose Specification's schema, and the one pass that checks a file against it and
//! rewrites every short syntax into its long form ("canonical" form): the shapes
//! `docker compose config --format json` prints and the typed model reads.
//!
//! Each object lists its keys with a [`Kind`]; a key that is not listed (and does not start
//! with `x-`) is refused, as is a value of the wrong type, naming file, line and key.
//! Relative paths (bind sources, build contexts, env files, secret files) are made absolute
//! against the project directory here, since that directory is known per file.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::units;
use crate::yaml::{Node, Pos, Value};

/// A schema error: where, which key, and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{at}: {path}: {message}")]
pub struct SchemaError {
    pub at: Pos,
    pub path: String,
    pub message: String,
}

/// What the canonical form needs to know about the file being read.
#[derive(Debug, Clone)]
pub struct Context {
    /// Relative paths are made absolute against it.
    pub base_dir: PathBuf,
    /// `~` in paths.
    pub home: Option<PathBuf>,
}

type Convert = fn(&Node, &Context, &mut Walk) -> Result<Option<Node>, SchemaError>;

/// What a key may hold.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Anything, kept as written.
    Any,
    Str,
    /// A string, or a number or boolean written as one (kept as a string).
    StrNum,
    Bool,
    Int,
    /// A number (cpus): a string or a number, kept as a float.
    Float,
    /// A Go duration, printed as Go prints it (`1m30s`).
    Duration,
    /// Bytes with units (`64m`), kept as the decimal string of the byte count.
    Bytes,
    /// A string or a list of strings, kept as a list.
    StrList,
    List(&'static Kind),
    /// A map with keys of the user's choice.
    MapOf(&'static Kind),
    /// A map of strings, or a list of `key=value`.
    KeyValues,
    Object(&'static [(&'static str, Kind)]),
    Custom(Convert),
}

/// The path being walked, for messages.
#[derive(Debug, Default)]
pub struct Walk {
    steps: Vec<String>,
}

impl Walk {
    pub fn enter(&mut self, step: &str) {
        self.steps.push(step.to_owned());
    }
    pub fn leave(&mut self) {
        self.steps.pop();
    }
    fn push(&mut self, step: String) {
        self.steps.push(step);
    }
    fn pop(&mut self) {
        self.steps.pop();
    }
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            if s.starts_with('[') || out.is_empty() {
                out.push_str(s);
            } else {
                out.push('.');
                out.push_str(s);
            }
        }
        out
    }
    fn error(&self, at: &Pos, message: impl Into<String>) -> SchemaError {
        SchemaError {
            at: at.clone(),
            path: self.text(),
            message: message.into(),
        }
    }
}

fn node(value: Value, at: &Pos) -> Node {
    Node::new(value, at.clone())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Int(_) | Value::Float(_) => "number",
        Value::Str(_) => "string",
        Value::Seq(_) => "array",
        Value::Map(_) => "object",
    }
}

fn wrong(walk: &Walk, n: &Node, want: &str) -> SchemaError {
    walk.error(
        &n.at,
        format!("must be {want}, not {}", type_name(&n.value)),
    )
}

/// A scalar as text (numbers and booleans as YAML wrote them).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(go_float(*f)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A float as Go's strconv prints it with 'g'-like shortest form (`0.5`, `2`).
pub fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Checks and rewrites `n` by `kind`. `None` means the key is dropped (a null where only a
/// value makes sense).
pub fn convert(
    n: &Node,
    kind: Kind,
    ctx: &Context,
    walk: &mut Walk,
) -> Result<Option<Node>, SchemaError> {
    if let Value::Null = n.value {
        // A key written without a value is as good as absent, except where null means
        // something (maps of optional objects handle that themselves).
        return Ok(match kind {
            Kind::Any => Some(n.clone()),
            _ => None,
        });
    }
    let out = match kind {
        Kind::Any => n.clone(),
        Kind::Str => match &n.value {
            Value::Str(_) => n.clone(),
            _ => return Err(wrong(walk, n, "a string")),
        },
        Kind::StrNum => match scalar_text(&n.value) {
            Some(s) => node(Value::Str(s), &n.at),
            None => return Err(wrong(walk, n, "a string or number")),
        },
        Kind::Bool => match &n.value {
            Value::Bool(_) => n.clone(),
            Value::Str(s) if s == "true" || s == "false" => node(Value::Bool(s == "true"), &n.at),
            _ => return Err(wrong(walk, n, "a boolean")),
        },
        Kind::Int => match &n.value {
            Value::Int(_) => n.clone(),
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) => node(Value::Int(i), &n.at),
                Err(_) => return Err(walk.error(&n.at, format!("{s:?} is not an integer"))),
            },
            _ => return Err(wrong(walk, n, "an integer")),
        },
        Kind::Float => match &n.value {
            Value::Int(i) => node(Value::Float(*i as f64), &n.at),
            Value::Float(_) => n.clone(),
            Value::Str(s) => match s.trim().parse::<f64>() {
                Ok(f) => node(Value::Float(f), &n.at),
                Err(_) => return Err(walk.error(&n.at, format!("{s:?} is not a number"))),
            },
            _ => return Err(wrong(walk, n, "a number")),
        },
        Kind::Duration => {
            let text = scalar_text(&n.value).ok_or_else(|| wrong(walk, n, "a duration"))?;
            let nanos = units::parse_duration(&text)
                .map_err(|e| walk.error(&n.at, format!("invalid duration {text:?}: {e}")))?;
            node(Value::Str(units::go_duration(nanos)), &n.at)
        }
        Kind::Bytes => {
            let bytes = match &n.value {
                Value::Int(i) => *i,
                Value::Str(s) => units::ram_in_bytes(s)
                    .map_err(|e| walk.error(&n.at, format!("invalid size {s:?}: {e}")))?,
                Value::Float(f) => *f as i64,
                _ => return Err(wrong(walk, n, "a size")),
            };
            node(Value::Str(bytes.to_string()), &n.at)
        }
        Kind::StrList => match &n.value {
            Value::Str(_) => node(Value::Seq(vec![n.clone()]), &n.at),
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    walk.push(format!("[{i}]"));
                    match scalar_text(&item.value) {
                        Some(s) => out.push(node(Value::Str(s), &item.at)),
                        None => return Err(wrong(walk, item, "a string")),
                    }
                    walk.pop();
                }
                node(Value::Seq(out), &n.at)
            }
            _ => return Err(wrong(walk, n, "a string or a list of strings")),
        },
        Kind::List(item_kind) => match &n.value {
            Value::Seq(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    walk.push(format!("[{i}]"));
                    if let Some(c) = convert(item, *item_kind, ctx, walk)? {
                        match c.value {
                            // Converters that expand one item into several (port ranges).
                            Value::Seq(many) if matches!(item_kind, Kind::Custom(_)) => {
                                out.extend(many)
                            }
                            _ => out.push(c),
                        }
                    }
                    walk.pop();
                }
                node(Value::Seq(out), &n.at)
            }
            _ => return Err(wrong(walk, n, "a list")),
        },
        Kind::MapOf(value_kind) => match &n.value {
            Value::Map(m) => {
                let mut out = IndexMap::new();
                for (k, v) in m {
                    walk.push(k.clone());
                    let c = match v.value {
                        Value::Null => Some(v.clone()),
                        _ => convert(v, *value_kind, ctx, walk)?,
                    };
                    if let Some(c) = c {
                        out.insert(k.clone(), c);
                    }
                    walk.pop();
                }
                node(Value::Map(out), &n.at)
            }
            _ => return Err(wrong(walk, n, "a mapping")),
        },
        Kind::KeyValues => key_values(n, walk, false)?,
        Kind::Object(fields) => object(n, fields, ctx, walk)?,
        Kind::Custom(f) => return f(n, ctx, walk),
    };
    Ok(Some(out))
}

/// Checks an object's keys and converts each value.
pub fn object(
    n: &Node,
    fields: &[(&str, Kind)],
    ctx: &Context,
    walk: &mut Walk,
) -> Result<Node, SchemaError> {
    let Value::Map(m) = &n.value else {
        return Err(wrong(walk, n, "a mapping"));
    };
    let mut out = IndexMap::new();
    for (k, v) in m {
        if k.starts_with("x-") {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let Some((_, kind)) = fields.iter().find(|(name, _)| name == k) else {
            let at = if v.at.line > 0 { &v.at } else { &n.at };
            return Err(walk.error(at, format!("additional property {k:?} is not allowed")));
        };
        // `!reset` removes the key whatever its value; the merge needs the marker.
        if v.tag == Some(crate::yaml::MergeTag::Reset) {
            let mut marker = node(Value::Null, &v.at);
            marker.tag = v.tag;
            out.insert(k.clone(), marker);
            continue;
        }
        walk.push(k.clone());
        if let Some(mut c) = convert(v, *kind, ctx, walk)? {
            c.tag = v.tag;
            out.insert(k.clone(), c);
        }
        walk.pop();
    }
    Ok(node(Value::Map(out), &n.at))
}

/// A map of strings or a list of `key=value` (`key` alone: an empty string, or null where
/// `nulls` is set, as environment keeps "take it from the shell").
pub fn key_values(n: &Node, walk: &mut Walk, nulls: bool) -> Result<Node, SchemaError> {
    let mut out = IndexMap::new();
    match &n.value {
        Value::Map(m) => {
            for (k, v) in m {
                let value = match &v.value {
                    Value::Null if nulls => Value::Null,
                    Value::Null => Value::Str(String::new()),
                    other => match scalar_text(other) {
                        Some(s) => Value::Str(s),
                        None => {
                            walk.push(k.clone());
                            let e = wrong(walk, v, "a string, number, boolean or null");
                            walk.pop();
                            return Err(e);
                        }
                    },
                };
                out.insert(k.clone(), node(value, &v.at));
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(text) = scalar_text(&item.value) else {
                    walk.push(format!("[{i}]"));
                    let e = wrong(walk, item, "a string");
                    walk.pop();
                    return Err(e);
                };
                let (k, v) = match text.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Value::Str(v.to_owned())),
                    None if nulls => (text, Value::Null),
                    None => (text, Value::Str(String::new())),
                };
                out.insert(k, node(v, &item.at));
            }
        }
        _ => return Err(wrong(walk, n, "a mapping or a list of key=value")),
    }
    Ok(node(Value::Map(out), &n.at))
}

/// Makes `p` absolute against the project directory (`~` against home).
pub fn absolute(p: &str, ctx: &Context) -> String {
    if let Some(rest) = p
        .strip_prefix("~/")
        .or(if p == "~" { Some("") } else { None })
    {
        if let Some(home) = &ctx.home {
            return clean(&home.join(rest));
        }
    }
    let path = Path::new(p);
    if path.is_absolute() {
        clean(path)
    } else {
        clean(&ctx.base_dir.join(path))
    }
}

/// Removes `.` and resolves `..` lexically, as Go's filepath.Clean.
pub fn clean(path: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<String> = Vec::new();
    let absolute = path.is_absolute();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if parts.last().is_some_and(|p| p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..".into());
                }
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}
