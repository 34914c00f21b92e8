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

/// Renders `template` over `data`, as `docker … --format` does.
pub fn render(template: &str, data: &serde_json::Value) -> Result<String, String> {
    let mut t = gtmpl::Template::default();
    t.add_func("json", json as Func);
    t.parse(template)
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
}
