//! URL query strings as Docker clients and registry clients send them: repeated keys
//! (`changes=…&changes=…`, `tag=a&tag=b`), `+` for a space, percent-escapes, and booleans
//! read as Docker's `httputils.BoolValue` reads them.

/// Decodes `%XX` escapes (a malformed one stays as it is) and, when `plus_is_space` (query
/// strings), `+` as a space.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Docker's reading of a boolean parameter (`httputils.BoolValue`): after trimming and
/// lowercasing, `""`, `0`, `no`, `false` and `none` are false; anything else is true.
pub fn bool_value(v: &str) -> bool {
    !matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

/// A query string's `key=value` pairs, decoded, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses the part after `?` (`None`: no query at all).
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            raw.unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k, true), percent_decode(v, true))
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Whether `key` is there at all (even empty).
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Docker's `BoolValueOrDefault`: `default` when `key` is absent, else [`bool_value`]
    /// (`1`, `true`, `True`, `yes` … are true; empty, `0`, `false`, `no`, `none` are false).
    pub fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key).map_or(default, bool_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        let q = Query::parse(Some(
            "fromSrc=-&repo=bb&changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&all=1&e",
        ));
        assert_eq!(q.get("fromSrc"), Some("-"));
        assert_eq!(q.all("changes"), vec!["CMD [\"sh\"]", "ENV A=1"]);
        assert_eq!(q.get("e"), Some(""));
        assert!(q.contains("e") && !q.contains("f"));
        assert_eq!(Query::parse(Some("a=%zz")).get("a"), Some("%zz"));
        assert_eq!(Query::parse(Some("a=100%")).get("a"), Some("100%"));
        assert_eq!(Query::parse(None), Query::default());
        assert_eq!(percent_decode("a%2fb+c", false), "a/b+c");
    }

    #[test]
    fn bools_as_docker_reads_them() {
        let q = Query::parse(Some(
            "a=1&b=true&c=True&d=TRUE&e=yes&f=0&g=false&h=no&i=none&j=&k=%20False%20",
        ));
        for k in ["a", "b", "c", "d", "e"] {
            assert!(q.flag(k, false), "{k}");
        }
        for k in ["f", "g", "h", "i", "j", "k"] {
            assert!(!q.flag(k, true), "{k}");
        }
        assert!(q.flag("absent", true));
        assert!(!q.flag("absent", false));
    }

    #[test]
    fn encodes_what_is_not_unreserved() {
        assert_eq!(encode("a b/c{\"x\"}~-_."), "a%20b%2Fc%7B%22x%22%7D~-_.");
        let q = Query::parse(Some(&format!("v={}", encode("ä&=+ ?"))));
        assert_eq!(q.get("v"), Some("ä&=+ ?"));
    }
}
