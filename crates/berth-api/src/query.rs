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
}
