//! Query strings as Docker clients send them: repeated keys (`changes=…&changes=…`), `+` for
//! space, percent-escapes, and booleans as `1`/`true`.

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// All `key=value` pairs in order.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's `filters` parameter, in either form clients send: `{"key": ["v", …]}` or
    /// the older `{"key": {"v": true}}`. Malformed JSON is an error naming the parameter.
    pub fn filters(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, crate::ApiError> {
        let mut out = std::collections::BTreeMap::new();
        let Some(raw) = self.get("filters").filter(|f| !f.is_empty()) else {
            return Ok(out);
        };
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
            crate::ApiError::bad_request(format!("invalid filter: invalid JSON in filters: {e}"))
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| crate::ApiError::bad_request("invalid filter: filters must be an object"))?;
        for (key, values) in obj {
            let list: Vec<String> = match values {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool() != Some(false))
                    .map(|(k, _)| k.clone())
                    .collect(),
                _ => {
                    return Err(crate::ApiError::bad_request(format!(
                        "invalid filter '{key}'"
                    )))
                }
            };
            out.insert(key.clone(), list);
        }
        Ok(out)
    }

    /// Docker's booleans: `1`, `true`, `True` are true; absent is `default`.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(v) => matches!(v, "1" | "true" | "True" | "TRUE"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let q = Query::parse(Some(
            "fromSrc=-&repo=bb&changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&all=1",
        ));
        assert_eq!(q.get("fromSrc"), Some("-"));
        assert_eq!(q.all("changes"), vec!["CMD [\"sh\"]", "ENV A=1"]);
        assert!(q.flag("all", false));
        assert!(!q.flag("quiet", false));
        assert_eq!(Query::parse(Some("a=%zz")).get("a"), Some("%zz"));
    }

    #[test]
    fn filters_in_both_forms() {
        let q = Query::parse(Some("filters=%7B%22status%22%3A%5B%22exited%22%5D%7D"));
        assert_eq!(q.filters().unwrap()["status"], vec!["exited"]);
        let q = Query::parse(Some("filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D"));
        assert_eq!(q.filters().unwrap()["dangling"], vec!["true"]);
        assert!(Query::parse(Some("filters=%7Bnope")).filters().is_err());
        assert!(Query::parse(None).filters().unwrap().is_empty());
    }
}
