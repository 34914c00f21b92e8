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
        let obj = v.as_object().ok_or_else(|| {
            crate::ApiError::bad_request("invalid filter: filters must be an object")
        })?;
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

/// Docker's timestamps for `since`/`until`: Unix seconds (with an optional fraction), a Go
/// duration meaning that long before `now` ("10m", "1h30m"), or an RFC 3339 date and time
/// (a date alone, or a time without a zone, is UTC). Returns nanoseconds since the epoch.
pub fn parse_timestamp(text: &str, now_nanos: i64) -> Option<i64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if let Some((secs, frac)) = t.split_once('.').or(Some((t, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 9
        {
            let s: i64 = secs.parse().ok()?;
            let f: i64 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().ok()?
            };
            return Some(s * 1_000_000_000 + f);
        }
    }
    if let Ok(d) = berth_core::duration::parse(t) {
        return Some(now_nanos - d);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return d.timestamp_nanos_opt();
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return d.and_utc().timestamp_nanos_opt();
        }
    }
    chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|d| d.and_utc().timestamp_nanos_opt())
}

/// A `since`/`until` query parameter, or Docker's 400 naming it.
pub fn timestamp_param(
    q: &Query,
    key: &str,
    now_nanos: i64,
) -> Result<Option<i64>, crate::ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => parse_timestamp(v, now_nanos).map(Some).ok_or_else(|| {
            crate::ApiError::bad_request(format!(
                "invalid value for \"{key}\": failed to parse value as time or duration: \"{v}\""
            ))
        }),
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
    fn timestamps_like_docker() {
        let now = 2_000_000_000 * 1_000_000_000;
        assert_eq!(
            parse_timestamp("1700000000", now),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("1700000000.5", now),
            Some(1_700_000_000_500_000_000)
        );
        assert_eq!(parse_timestamp("10m", now), Some(now - 600_000_000_000));
        assert_eq!(parse_timestamp("1h30m", now), Some(now - 5_400_000_000_000));
        assert_eq!(
            parse_timestamp("2023-11-14T22:13:20Z", now),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2023-11-14", now),
            Some(1_699_920_000_000_000_000)
        );
        assert_eq!(parse_timestamp("yesterday", now), None);
        assert_eq!(parse_timestamp("10x", now), None);
    }

    #[test]
    fn filters_in_both_forms() {
        let q = Query::parse(Some("filters=%7B%22status%22%3A%5B%22exited%22%5D%7D"));
        assert_eq!(q.filters().unwrap()["status"], vec!["exited"]);
        let q = Query::parse(Some(
            "filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D",
        ));
        assert_eq!(q.filters().unwrap()["dangling"], vec!["true"]);
        assert!(Query::parse(Some("filters=%7Bnope")).filters().is_err());
        assert!(Query::parse(None).filters().unwrap().is_empty());
    }
}
