//! `--format`: Go templates as the docker CLI has them (`{{.Server.Version}}`, `{{json .}}`).

use gtmpl_value::{Func, FuncError, Value};

fn to_gtmpl(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(0.0))
            }
        }
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_gtmpl).collect()),
        serde_json::Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect())
        }
    }
}

fn from_gtmpl(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::NoValue => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => n
            .as_i64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_u64().map(serde_json::Value::from))
            .or_else(|| n.as_f64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(from_gtmpl).collect()),
        Value::Object(o) | Value::Map(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), from_gtmpl(v))).collect())
        }
        Value::Function(_) => serde_json::Value::Null,
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::AtLeastXArgs("json".into(), 1))?;
    Ok(Value::String(from_gtmpl(v).to_string()))
}

/// A value as Go's `fmt` prints it, which is what a template action prints: lists as
/// `[a b]`, maps as `map[k:v]` (keys sorted), nil as `<nil>`. gtmpl prints lists and maps as
/// Rust's debug text instead, so actions that end in one go through this (`gofmt`).
fn go_text(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(o) | Value::Map(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let items: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&o[k])))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        Value::Nil | Value::NoValue => "<nil>".to_owned(),
        other => other.to_string(),
    }
}

fn gofmt(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::AtLeastXArgs("gofmt".into(), 1))?;
    Ok(match v {
        Value::Array(_) | Value::Object(_) | Value::Map(_) => Value::String(go_text(v)),
        other => other.clone(),
    })
}

/// Wraps each action that is only a field (`{{.A.B}}`, `{{ .A }}`) in `gofmt`, so what it
/// prints is Go's text; every other action is left as written.
fn printed_as_go(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = &after[..end];
        let field = inner.trim();
        let is_field = field.starts_with('.')
            && field.len() > 1
            && field[1..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if is_field {
            out.push_str(&format!("{{{{gofmt {field}}}}}"));
        } else {
            out.push_str(&rest[start..start + 2 + end + 2]);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// What gtmpl cannot take without hanging, refused first with a clear error: a non-ASCII
/// character inside an action (outside quoted strings and comments; Go allows them in
/// names, but gtmpl's lexer panics on them in its own thread and its parser then waits
/// forever), and an action or comment left open (`{{.A.` loops gtmpl's lexer). Both found
/// by the `go_template` fuzz target.
fn precheck(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let action = &rest[start + 2..];
        let mut i = 0;
        let mut quote: Option<char> = None;
        let mut quote_at = 0;
        let mut end = None;
        while let Some(c) = action[i..].chars().next() {
            let here = &action[i..];
            match quote {
                Some(q) if c == '\\' && q != '`' => {
                    i += c.len_utf8() + escape_len(&action[i + 1..])?;
                    continue;
                }
                Some('\'') if c == '\'' => {
                    char_constant(&action[quote_at..=i])?;
                    quote = None;
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if here.starts_with("/*") => match here.find("*/") {
                    Some(j) => {
                        i += j + 2;
                        continue;
                    }
                    None => return Err("template parsing error: template: :1: unclosed comment".into()),
                },
                None if here.starts_with("}}") => {
                    end = Some(i);
                    break;
                }
                None if matches!(c, '"' | '`' | '\'') => {
                    quote = Some(c);
                    quote_at = i;
                }
                None if !c.is_ascii() => {
                    return Err(format!(
                        "template parsing error: non-ASCII character {c:?} in an action is not supported"
                    ))
                }
                None => {}
            }
            i += c.len_utf8();
        }
        match end {
            Some(e) => rest = &action[e + 2..],
            None => return Err("template parsing error: template: :1: unclosed action".into()),
        }
    }
    Ok(())
}

/// A character constant (`'a'`, `'\\n'`, `'\\x41'`): one character or one escape between the
/// quotes, as Go's lexer wants it (gtmpl's lexer thread is left waiting forever on anything
/// else, its memory never freed).
fn char_constant(quoted: &str) -> Result<(), String> {
    let inner = &quoted[1..quoted.len() - 1];
    let mut chars = inner.chars();
    let one = match chars.next() {
        Some('\\') => escape_len(&inner[1..]).is_ok_and(|n| n + 1 == inner.len()),
        Some(_) => chars.next().is_none(),
        None => false,
    };
    if one {
        Ok(())
    } else {
        Err(format!(
            "template parsing error: template: :1: malformed character constant: {quoted}"
        ))
    }
}

/// The length of a string escape after its backslash, checked as Go's strconv checks it:
/// `\x` takes 2 hex digits, `\u` 4, `\U` 8, an octal escape 3 digits (gtmpl loops on a
/// short one).
fn escape_len(after: &str) -> Result<usize, String> {
    let invalid = || "template parsing error: template: :1: invalid syntax".to_owned();
    let b = after.as_bytes();
    let (digits, hex) = match b.first() {
        Some(b'x') => (2, true),
        Some(b'u') => (4, true),
        Some(b'U') => (8, true),
        Some(b'0'..=b'7') => (3, false),
        Some(_) => return Ok(after.chars().next().map_or(0, char::len_utf8)),
        None => return Err(invalid()),
    };
    let start = if hex { 1 } else { 0 };
    let ok = b.len() >= start + digits
        && b[start..start + digits].iter().all(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                (b'0'..=b'7').contains(c)
            }
        });
    if ok {
        Ok(start + digits)
    } else {
        Err(invalid())
    }
}

/// Renders `template` over `data`, as `docker … --format` does.
pub fn render(template: &str, data: &serde_json::Value) -> Result<String, String> {
    precheck(template)?;
    let mut t = gtmpl::Template::default();
    t.add_func("json", json as Func);
    t.add_func("gofmt", gofmt as Func);
    t.parse(printed_as_go(template))
        .map_err(|e| format!("template parsing error: {e}"))?;
    let ctx = gtmpl::Context::from(to_gtmpl(data));
    t.render(&ctx).map_err(|e| format!("template: {e}"))
}

/// A `--format` value as the docker CLI reads it: `table …` or a plain template, with `\t`
/// and `\n` escapes turned into tabs and newlines; `json` means `{{json .}}`.
#[derive(Debug, Clone)]
pub struct Format {
    pub table: bool,
    pub template: String,
}

impl Format {
    pub fn parse(text: &str) -> Format {
        let (table, rest) = match text.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let rest = rest.trim_matches(' ');
        let template = if rest == "json" {
            "{{json .}}".to_owned()
        } else {
            rest.replace("\\t", "\t").replace("\\n", "\n")
        };
        Format { table, template }
    }
}

/// Renders a list the docker way: `format` (or `default` when none is given) over every row;
/// a `table` format gets a header line (the template rendered over `headers`, which maps
/// field names to column titles) and aligned columns.
pub fn render_list(
    format: Option<&str>,
    default: &str,
    headers: &serde_json::Value,
    rows: &[serde_json::Value],
) -> Result<String, String> {
    let f = Format::parse(format.unwrap_or(default));
    let mut lines = Vec::with_capacity(rows.len() + 1);
    if f.table {
        lines.push(render(&f.template, headers)?);
    }
    for row in rows {
        lines.push(render(&f.template, row)?);
    }
    if f.table {
        Ok(crate::table::align(&lines))
    } else {
        Ok(lines.iter().map(|l| format!("{l}\n")).collect())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn lists_and_maps_print_as_go_prints_them() {
        let data = serde_json::json!({
            "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless"],
            "Labels": {"b": 1, "a": "z"},
            "Empty": [],
            "Name": "x",
        });
        assert_eq!(
            render("{{.SecurityOptions}}", &data).unwrap(),
            "[name=seccomp,profile=builtin name=rootless]"
        );
        assert_eq!(render("{{ .Labels }}", &data).unwrap(), "map[a:z b:1]");
        assert_eq!(render("{{.Empty}}|{{.Name}}", &data).unwrap(), "[]|x");
        // Other actions are left alone.
        assert_eq!(
            render("{{range .SecurityOptions}}<{{.}}>{{end}}", &data).unwrap(),
            "<name=seccomp,profile=builtin><name=rootless>"
        );
        assert_eq!(render("{{json .Empty}}", &data).unwrap(), "[]");
    }
    use super::*;

    #[test]
    fn fields_and_json() {
        let data = serde_json::json!({"Server": {"Version": "0.1.0", "Os": "linux"}, "N": 3});
        assert_eq!(render("{{.Server.Version}}", &data).unwrap(), "0.1.0");
        assert_eq!(render("{{.N}}", &data).unwrap(), "3");
        assert_eq!(
            render("{{json .Server}}", &data).unwrap(),
            r#"{"Os":"linux","Version":"0.1.0"}"#
        );
        assert!(render("{{.Server.Version", &data).is_err());
    }
    #[test]
    fn non_ascii_in_an_action_is_refused_not_hung() {
        // Inputs the go_template fuzz target found: gtmpl's lexer panicked in its thread and
        // the parser waited forever.
        let data = serde_json::json!({"A": {"b": 1}, "State": {"M": 1}});
        for t in [
            "{{.A.\u{e9}}}",
            "{{\u{e9}}}",
            "{{ .A}\u{e9}}}",
            "{{.\u{e9}",
            "{{if .State.M\u{e9}\u{8a}\u{91}}up{{else}}down{{end}}",
        ] {
            let e = render(t, &data).unwrap_err();
            assert!(e.contains("non-ASCII"), "{t}: {e}");
        }
        for t in [
            "{{\"\\u\"}}",
            "{{\") }}stu}}{\\u\\) \"}}",
            "{{\"\\x4\"}}",
            "{{'\\u12'}}",
        ] {
            let e = render(t, &data).unwrap_err();
            assert!(e.contains("invalid syntax"), "{t}: {e}");
        }
        assert_eq!(render("{{\"a\\tb\"}}", &data).unwrap(), "a\tb");
        for t in ["{{if .State.", "{{.A.", "{{.", "{{.ID", "{{/* open"] {
            let e = render(t, &data).unwrap_err();
            assert!(e.contains("unclosed"), "{t}: {e}");
        }
        // A character constant of more than one character (found by the fuzz target as a
        // LeakSanitizer report: gtmpl's lexer thread waited forever).
        for t in ["{{'en.P}!{{']rtQort}}", "{{''}}", "{{'ab'}}", "{{'\\n1'}}"] {
            let e = render(t, &data).unwrap_err();
            assert!(e.contains("malformed character constant"), "{t}: {e}");
        }
        for (t, want) in [
            ("{{'a'}}", "97"),
            ("{{'\\n'}}", "10"),
            ("{{'\\x41'}}", "65"),
        ] {
            assert_eq!(render(t, &data).as_deref(), Ok(want), "{t}");
        }
        // Outside actions, in quotes and in comments they are fine.
        assert_eq!(
            render("\u{e9}{{printf \"\u{e9}\"}}{{/* \u{e9} */}}", &data).unwrap(),
            "\u{e9}\u{e9}"
        );
    }
}
