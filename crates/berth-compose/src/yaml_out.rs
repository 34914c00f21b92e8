//! `config`'s YAML: the JSON rendering (whose key order is Go's) written out as YAML with
//! two-space indents, strings quoted where YAML would read them as something else.

use indexmap::IndexMap;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that keeps its keys in the order they were written.
enum Ordered {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
    Seq(Vec<Ordered>),
    Map(IndexMap<String, Ordered>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(serde_json::Number::from_f64(n).map_or(Ordered::Null, Ordered::Number))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Ordered::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut m = IndexMap::new();
                while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
                    m.insert(k, v);
                }
                Ok(Ordered::Map(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// Converts JSON text to YAML, keeping key order.
pub fn from_json(json: &str) -> anyhow::Result<String> {
    let v: Ordered = serde_json::from_str(json)?;
    let mut out = String::new();
    match &v {
        Ordered::Map(m) => write_map(m, 0, &mut out),
        other => {
            write_scalar(other, &mut out);
            out.push('\n');
        }
    }
    Ok(out)
}

fn is_collection(v: &Ordered) -> bool {
    matches!(v, Ordered::Seq(s) if !s.is_empty()) || matches!(v, Ordered::Map(m) if !m.is_empty())
}

fn write_map(m: &IndexMap<String, Ordered>, indent: usize, out: &mut String) {
    for (k, v) in m {
        out.push_str(&" ".repeat(indent));
        out.push_str(&quote(k));
        out.push(':');
        write_value(v, indent, out);
    }
}

fn write_value(v: &Ordered, indent: usize, out: &mut String) {
    match v {
        Ordered::Map(m) if !m.is_empty() => {
            out.push('\n');
            write_map(m, indent + 2, out);
        }
        Ordered::Seq(items) if !items.is_empty() => {
            out.push('\n');
            for item in items {
                out.push_str(&" ".repeat(indent + 2));
                out.push('-');
                if is_collection(item) {
                    if let Ordered::Map(m) = item {
                        // The first key on the dash's line.
                        let mut first = true;
                        for (k, val) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&" ".repeat(indent + 4));
                            }
                            out.push_str(&quote(k));
                            out.push(':');
                            write_value(val, indent + 4, out);
                        }
                    } else {
                        write_value(item, indent + 2, out);
                    }
                } else {
                    out.push(' ');
                    write_scalar(item, out);
                    out.push('\n');
                }
            }
        }
        other => {
            out.push(' ');
            write_scalar(other, out);
            out.push('\n');
        }
    }
}

fn write_scalar(v: &Ordered, out: &mut String) {
    match v {
        Ordered::Null => out.push_str("null"),
        Ordered::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Ordered::Number(n) => out.push_str(&n.to_string()),
        Ordered::Str(s) => out.push_str(&quote(s)),
        Ordered::Seq(_) => out.push_str("[]"),
        Ordered::Map(_) => out.push_str("{}"),
    }
}

/// A string as a plain scalar when YAML reads it back as the same string, else quoted.
fn quote(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && !s.contains(['\n', '"', '\'', '#', '\t'])
        && !s.contains(": ")
        && !s.ends_with(':')
        && !s.starts_with([
            ' ', '-', '?', ':', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '%', '@', '`',
        ])
        && !s.ends_with(' ')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "~" | "yes" | "no" | "on" | "off" | "y" | "n"
        )
        && s.parse::<f64>().is_err()
        && !s.starts_with("0x")
        && !s.starts_with("0o");
    if plain_ok {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_quotes_what_needs_it() {
        let y = from_json(r#"{"name":"p","services":{"web":{"command":["a","80"],"image":"x","ports":[{"target":80,"published":"8080"}]}},"empty":{}}"#).unwrap();
        assert_eq!(
            y,
            "name: p\nservices:\n  web:\n    command:\n      - a\n      - \"80\"\n    image: x\n    ports:\n      - target: 80\n        published: \"8080\"\nempty: {}\n"
        );
    }
}
