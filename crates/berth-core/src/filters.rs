//! Docker's `filters` query parameter (moby's `api/types/filters`): a set of values per key,
//! sent as JSON in either form clients use, `{"key":{"value":true}}` (the docker CLI's) or the
//! older `{"key":["value"]}`; checked against the keys an endpoint accepts, and matched
//! with Docker's rules for labels (`label=k`, `label=k=v`, `label!=…`), booleans
//! (`dangling=true|false|1|0`) and times (`until=24h`, RFC 3339, Unix seconds).
//! Error texts are Docker's (`invalid filter 'x'`, `invalid filter 'dangling=maybe'`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use crate::error::{ErrorKind, HasErrorKind};
use crate::query::Query;

/// A filter the request got wrong; always the client's fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

impl FilterError {
    /// Docker's `invalidFilter`: `invalid filter 'key'`, or `invalid filter 'key=v1,v2'`.
    pub fn invalid(key: &str, values: &[&str]) -> FilterError {
        if values.is_empty() {
            FilterError(format!("invalid filter '{key}'"))
        } else {
            FilterError(format!("invalid filter '{key}={}'", values.join(",")))
        }
    }

    /// Any other message.
    pub fn new(message: impl Into<String>) -> FilterError {
        FilterError(message.into())
    }
}

impl HasErrorKind for FilterError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// Where labels are looked up: a container's, an image's, a volume's, an event's attributes.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl<S: BuildHasher> Labels for HashMap<String, String, S> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A JSON object of strings (an event's `Actor.Attributes`); other values are not labels.
impl Labels for serde_json::Map<String, serde_json::Value> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(serde_json::Value::as_str)
    }
}

/// The filters of one request: each key with its set of values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, BTreeSet<String>>);

impl Filters {
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Parses the JSON of a `filters` parameter (empty: no filters). In the object form, a
    /// value set to `false` is left out.
    pub fn from_json(raw: &str) -> Result<Filters, FilterError> {
        let mut out = Filters::new();
        if raw.is_empty() {
            return Ok(out);
        }
        let v: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
            FilterError::new(format!("invalid filter: invalid JSON in filters: {e}"))
        })?;
        let obj = v
            .as_object()
            .ok_or_else(|| FilterError::new("invalid filter: filters must be an object"))?;
        for (key, values) in obj {
            let set = out.0.entry(key.clone()).or_default();
            match values {
                serde_json::Value::Array(a) => {
                    set.extend(a.iter().filter_map(|x| x.as_str().map(str::to_owned)));
                }
                serde_json::Value::Object(m) => set.extend(
                    m.iter()
                        .filter(|(_, on)| on.as_bool() != Some(false))
                        .map(|(k, _)| k.clone()),
                ),
                _ => return Err(FilterError::invalid(key, &[])),
            }
        }
        Ok(out)
    }

    /// The request's `filters` parameter.
    pub fn from_query(q: &Query) -> Result<Filters, FilterError> {
        Filters::from_json(q.get("filters").unwrap_or(""))
    }

    /// `--filter key=value` flags as the docker CLI reads them: the key trimmed and
    /// lowercased, the value trimmed.
    pub fn from_flags<S: AsRef<str>>(flags: &[S]) -> Result<Filters, FilterError> {
        let mut out = Filters::new();
        for f in flags {
            let f = f.as_ref();
            if f.is_empty() {
                continue;
            }
            let (k, v) = f
                .split_once('=')
                .ok_or_else(|| FilterError::new("bad format of filter (expected name=value)"))?;
            out.add(&k.trim().to_ascii_lowercase(), v.trim());
        }
        Ok(out)
    }

    /// The JSON the docker CLI sends (`{"key":{"value":true}}`); empty for no filters.
    pub fn to_json(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let obj: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(k, vals)| {
                let set = vals.iter().map(|v| (v.clone(), true.into())).collect();
                (k.clone(), serde_json::Value::Object(set))
            })
            .collect();
        serde_json::Value::Object(obj).to_string()
    }

    pub fn add(&mut self, key: &str, value: &str) {
        self.0
            .entry(key.to_owned())
            .or_default()
            .insert(value.to_owned());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` was given (even with no values).
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The values of `key`, sorted (none when absent).
    pub fn get(&self, key: &str) -> Vec<&str> {
        self.0
            .get(key)
            .map(|s| s.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Every key with its values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &BTreeSet<String>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Plain key → values, sorted.
    pub fn into_map(self) -> BTreeMap<String, Vec<String>> {
        self.0
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect()
    }

    /// Refuses a key that is not `accepted`: `invalid filter 'key'`.
    pub fn validate(&self, accepted: &[&str]) -> Result<(), FilterError> {
        match self.0.keys().find(|k| !accepted.contains(&k.as_str())) {
            Some(k) => Err(FilterError::invalid(k, &[])),
            None => Ok(()),
        }
    }

    /// True when `key` has no values, or when `pred` holds for one of them.
    pub fn any(&self, key: &str, pred: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vals) => vals.is_empty() || vals.iter().any(|v| pred(v)),
        }
    }

    /// Moby's `ExactMatch`: no values for `key`, or `source` is one of them.
    pub fn exact_match(&self, key: &str, source: &str) -> bool {
        self.any(key, |v| v == source)
    }

    /// Moby's `FuzzyMatch`: no values, or one of them is `source` or a prefix of it.
    pub fn fuzzy_match(&self, key: &str, source: &str) -> bool {
        self.any(key, |v| source.starts_with(v))
    }

    /// Moby's `MatchKVList`: no values for `key`, or every value holds of `labels` (`k`:
    /// the label is there; `k=v`: it is there with value `v`).
    pub fn match_kv_list(&self, key: &str, labels: &(impl Labels + ?Sized)) -> bool {
        match self.0.get(key) {
            None => true,
            Some(vals) => vals.iter().all(|want| match want.split_once('=') {
                Some((k, v)) => labels.label(k) == Some(v),
                None => labels.label(want).is_some(),
            }),
        }
    }

    /// The `label` and `label!` filters together, as Docker's prunes apply them: every
    /// `label` holds, and not every `label!` does (with no `label!`, nothing is excluded).
    pub fn match_labels(&self, labels: &(impl Labels + ?Sized)) -> bool {
        self.match_kv_list("label", labels)
            && !(self.contains("label!") && self.match_kv_list("label!", labels))
    }

    /// Moby's `GetBoolOrDefault`: `None` when `key` is absent; an error when it has no
    /// value, or no or conflicting ones among `true`/`1` and `false`/`0`
    /// (`invalid filter 'dangling=maybe'`).
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, FilterError> {
        let Some(vals) = self.0.get(key) else {
            return Ok(None);
        };
        if vals.is_empty() {
            return Err(FilterError::invalid(key, &[]));
        }
        let is_true = vals.contains("true") || vals.contains("1");
        let is_false = vals.contains("false") || vals.contains("0");
        if is_true == is_false {
            return Err(FilterError::invalid(key, &self.get(key)));
        }
        Ok(Some(is_true))
    }

    /// A time filter such as `until` (at most one value; see [`crate::timestamp::parse`])
    /// in nanoseconds since the epoch, durations counted back from `now_nanos`.
    pub fn timestamp(&self, key: &str, now_nanos: i64) -> Result<Option<i64>, FilterError> {
        let vals = self.get(key);
        match vals.as_slice() {
            [] => Ok(None),
            [v] => crate::timestamp::parse(v, now_nanos).map(Some).ok_or_else(|| {
                FilterError::new(format!(
                    "invalid value for '{key}' filter: failed to parse value as time or duration: \"{v}\""
                ))
            }),
            _ => Err(FilterError::new(format!(
                "more than one {key} filter specified"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> Filters {
        let mut out = Filters::new();
        for (k, v) in pairs {
            out.add(k, v);
        }
        out
    }

    #[test]
    fn both_json_forms() {
        let a = Filters::from_json(r#"{"status":["exited","dead"],"label":["a=1"]}"#).unwrap();
        let b = Filters::from_json(
            r#"{"status":{"exited":true,"dead":true,"running":false},"label":{"a=1":true}}"#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.get("status"), ["dead", "exited"]);
        assert!(Filters::from_json("").unwrap().is_empty());
        assert!(Filters::from_json("{}").unwrap().is_empty());
        let empty = Filters::from_json(r#"{"label":[]}"#).unwrap();
        assert!(empty.contains("label") && empty.get("label").is_empty());
    }

    #[test]
    fn malformed_json_is_refused_in_dockers_words() {
        let err = |s: &str| Filters::from_json(s).unwrap_err().to_string();
        assert!(err("{nope").starts_with("invalid filter: invalid JSON in filters: "));
        assert_eq!(err("[]"), "invalid filter: filters must be an object");
        assert_eq!(err(r#"{"a":"b"}"#), "invalid filter 'a'");
        assert_eq!(
            Filters::from_json("{").unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn from_the_query_and_the_cli() {
        let q = Query::parse(Some(
            "filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D",
        ));
        assert_eq!(Filters::from_query(&q).unwrap().get("dangling"), ["true"]);
        assert!(Filters::from_query(&Query::parse(None)).unwrap().is_empty());
        let cli = Filters::from_flags(&[" Label = a=b ", "dangling=true", ""]).unwrap();
        assert_eq!(cli, f(&[("label", "a=b"), ("dangling", "true")]));
        assert_eq!(
            cli.to_json(),
            r#"{"dangling":{"true":true},"label":{"a=b":true}}"#
        );
        assert_eq!(Filters::from_json(&cli.to_json()).unwrap(), cli);
        assert_eq!(Filters::new().to_json(), "");
        assert_eq!(
            Filters::from_flags(&["nope"]).unwrap_err().to_string(),
            "bad format of filter (expected name=value)"
        );
    }

    #[test]
    fn keys_are_validated() {
        let accepted = ["dangling", "label"];
        assert!(f(&[("label", "a")]).validate(&accepted).is_ok());
        assert_eq!(
            f(&[("label", "a"), ("colour", "red")])
                .validate(&accepted)
                .unwrap_err()
                .to_string(),
            "invalid filter 'colour'"
        );
    }

    #[test]
    fn labels_match_like_docker() {
        let have: HashMap<String, String> = [("tier".to_owned(), "web".to_owned())].into();
        assert!(f(&[]).match_kv_list("label", &have));
        assert!(f(&[("label", "tier")]).match_kv_list("label", &have));
        assert!(f(&[("label", "tier=web")]).match_kv_list("label", &have));
        assert!(!f(&[("label", "tier=db")]).match_kv_list("label", &have));
        assert!(!f(&[("label", "tier"), ("label", "x")]).match_kv_list("label", &have));
        assert!(!f(&[("label", "tier=")]).match_kv_list("label", &have));
        // label! excludes what matches all of its values.
        assert!(f(&[]).match_labels(&have));
        assert!(!f(&[("label!", "tier")]).match_labels(&have));
        assert!(f(&[("label!", "tier=db")]).match_labels(&have));
        assert!(f(&[("label!", "tier"), ("label!", "x")]).match_labels(&have));
        assert!(!f(&[("label", "tier"), ("label!", "tier=web")]).match_labels(&have));
        let json = serde_json::json!({"tier": "web", "n": 1});
        let attrs = json.as_object().unwrap();
        assert!(f(&[("label", "tier=web")]).match_kv_list("label", attrs));
        assert!(!f(&[("label", "n")]).match_kv_list("label", attrs));
        let sorted: BTreeMap<String, String> = have.into_iter().collect();
        assert!(f(&[("label", "tier")]).match_kv_list("label", &sorted));
    }

    #[test]
    fn exact_fuzzy_and_any() {
        let x = f(&[("name", "web"), ("id", "abc")]);
        assert!(x.exact_match("name", "web") && !x.exact_match("name", "webby"));
        assert!(x.exact_match("absent", "anything"));
        assert!(x.fuzzy_match("id", "abcdef") && !x.fuzzy_match("id", "xabc"));
        assert!(x.any("name", |v| "my-web-1".contains(v)));
    }

    #[test]
    fn bools_like_docker() {
        assert_eq!(f(&[]).get_bool("dangling"), Ok(None));
        assert_eq!(
            f(&[("dangling", "true")]).get_bool("dangling"),
            Ok(Some(true))
        );
        assert_eq!(f(&[("dangling", "1")]).get_bool("dangling"), Ok(Some(true)));
        assert_eq!(
            f(&[("dangling", "false")]).get_bool("dangling"),
            Ok(Some(false))
        );
        assert_eq!(
            f(&[("dangling", "0")]).get_bool("dangling"),
            Ok(Some(false))
        );
        let err = |x: Filters| x.get_bool("dangling").unwrap_err().to_string();
        assert_eq!(
            err(f(&[("dangling", "maybe")])),
            "invalid filter 'dangling=maybe'"
        );
        assert_eq!(
            err(f(&[("dangling", "TRUE")])),
            "invalid filter 'dangling=TRUE'"
        );
        assert_eq!(
            err(f(&[("dangling", "true"), ("dangling", "0")])),
            "invalid filter 'dangling=0,true'"
        );
        assert_eq!(
            err(Filters::from_json(r#"{"dangling":[]}"#).unwrap()),
            "invalid filter 'dangling'"
        );
    }

    #[test]
    fn times_like_docker() {
        let now = 3_600_000_000_000;
        assert_eq!(f(&[]).timestamp("until", now), Ok(None));
        assert_eq!(
            f(&[("until", "10m")]).timestamp("until", now),
            Ok(Some(3_000_000_000_000))
        );
        assert_eq!(
            f(&[("until", "1700000000")]).timestamp("until", now),
            Ok(Some(1_700_000_000_000_000_000))
        );
        assert_eq!(
            f(&[("until", "2023-11-14T22:13:20Z")]).timestamp("until", now),
            Ok(Some(1_700_000_000_000_000_000))
        );
        assert_eq!(
            f(&[("until", "soon")])
                .timestamp("until", now)
                .unwrap_err()
                .to_string(),
            "invalid value for 'until' filter: failed to parse value as time or duration: \"soon\""
        );
        assert_eq!(
            f(&[("until", "1h"), ("until", "2h")])
                .timestamp("until", now)
                .unwrap_err()
                .to_string(),
            "more than one until filter specified"
        );
    }
}
