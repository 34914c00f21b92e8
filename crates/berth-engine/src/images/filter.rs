//! `docker images --filter …` and `docker image prune --filter …`: which images a request
//! means, with Docker's keys, values and errors.

use crate::error::EngineError;
use berth_core::filters::Filters;
use berth_core::Reference;
use berth_image::store::ImageView;

/// The keys `GET /images/json` accepts.
pub const LIST_KEYS: &[&str] = &["dangling", "label", "before", "since", "reference", "until"];
/// The keys `POST /images/prune` accepts.
pub const PRUNE_KEYS: &[&str] = &["dangling", "label", "label!", "until"];

/// A malformed pattern (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// One item of a character class: `[a-z]`, `[\]]`.
fn class_char(p: &[char], i: &mut usize) -> Result<char, BadPattern> {
    let mut c = *p.get(*i).ok_or(BadPattern)?;
    if c == '-' || c == ']' {
        return Err(BadPattern);
    }
    if c == '\\' {
        *i += 1;
        c = *p.get(*i).ok_or(BadPattern)?;
    }
    *i += 1;
    Ok(c)
}

/// Matches `c` against the class starting after `[` at `p[start]`; returns whether it
/// matched and where the pattern continues.
fn class(p: &[char], start: usize, c: char) -> Result<(bool, usize), BadPattern> {
    let mut i = start;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut ranges = 0;
    loop {
        if p.get(i) == Some(&']') && ranges > 0 {
            i += 1;
            break;
        }
        let lo = class_char(p, &mut i)?;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            i += 1;
            hi = class_char(p, &mut i)?;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        ranges += 1;
    }
    Ok((matched != negated, i))
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, BadPattern> {
    match p.first() {
        None => Ok(n.is_empty()),
        Some('*') => {
            let rest = &p[1..];
            for i in 0..=n.len() {
                if match_from(rest, &n[i..])? {
                    return Ok(true);
                }
                if i < n.len() && n[i] == '/' {
                    break; // `*` never matches a separator
                }
            }
            Ok(false)
        }
        Some('?') => match n.first() {
            Some(c) if *c != '/' => match_from(&p[1..], &n[1..]),
            _ => Ok(false),
        },
        Some('[') => {
            let Some(&c) = n.first() else {
                return Ok(false);
            };
            let (ok, next) = class(p, 1, c)?;
            if ok && c != '/' {
                match_from(&p[next..], &n[1..])
            } else {
                Ok(false)
            }
        }
        Some('\\') => {
            let c = p.get(1).ok_or(BadPattern)?;
            if n.first() == Some(c) {
                match_from(&p[2..], &n[1..])
            } else {
                Ok(false)
            }
        }
        Some(c) => {
            if n.first() == Some(c) {
                match_from(&p[1..], &n[1..])
            } else {
                Ok(false)
            }
        }
    }
}

/// Whether `pattern` is well formed (every class closed, no trailing `\\`).
pub fn check_pattern(pattern: &str) -> Result<(), BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' if i + 1 >= p.len() => return Err(BadPattern),
            '\\' => i += 2,
            '[' => i = class(&p, i + 1, 'a')?.1,
            _ => i += 1,
        }
    }
    Ok(())
}

/// Go's `path.Match`: `*` and `?` stop at `/`, `[…]` classes (`^` negates), `\` escapes.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

/// Docker's `reference.FamiliarMatch`: the pattern against `name:tag`, then against `name`.
pub fn familiar_match(pattern: &str, r: &Reference) -> Result<bool, BadPattern> {
    Ok(path_match(pattern, &r.familiar())? || path_match(pattern, &r.familiar_name())?)
}

/// When the image was made, in nanoseconds (0 when its config does not say).
pub fn created_nanos(v: &ImageView) -> i64 {
    v.config
        .created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .unwrap_or(0)
}

/// The filters of one request, checked once.
#[derive(Debug, Default)]
pub struct ImageFilter {
    pub dangling: Option<bool>,
    references: Vec<String>,
    /// For `label` and `label!`.
    filters: Filters,
    before: Option<i64>,
    since: Option<i64>,
    until: Option<i64>,
}

impl ImageFilter {
    /// Checks `filters` against the `accepted` keys. `created_of` finds the creation time
    /// of an image named in `before`/`since`.
    pub fn new(
        filters: &Filters,
        accepted: &[&str],
        created_of: impl Fn(&str) -> Result<i64, EngineError>,
        now_nanos: i64,
    ) -> Result<ImageFilter, EngineError> {
        filters.validate(accepted)?;
        let mut f = ImageFilter {
            dangling: filters.get_bool("dangling")?,
            until: filters.timestamp("until", now_nanos)?,
            filters: filters.clone(),
            ..ImageFilter::default()
        };
        for v in filters.get("reference") {
            check_pattern(v).map_err(|_| {
                EngineError::invalid(format!(
                    "invalid filter 'reference={v}': syntax error in pattern"
                ))
            })?;
            f.references.push(v.to_owned());
        }
        for v in filters.get("before") {
            f.before = Some(created_of(v)?);
        }
        for v in filters.get("since") {
            f.since = Some(created_of(v)?);
        }
        Ok(f)
    }

    /// Whether the image passes the filters other than `dangling` and `reference`.
    pub fn matches(&self, v: &ImageView) -> bool {
        let created = created_nanos(v);
        let labels = v.config.config.labels.clone().unwrap_or_default();
        self.filters.match_labels(&labels)
            && self.before.is_none_or(|b| created < b)
            && self.since.is_none_or(|s| created > s)
            && self.until.is_none_or(|u| created < u)
    }

    /// The names of the image the listing shows: all of them, or those matching a
    /// `reference` filter (`None`: the image is not shown at all).
    pub fn shown_names(&self, v: &ImageView) -> Option<Vec<Reference>> {
        match self.dangling {
            Some(true) if !v.refs.is_empty() => return None,
            Some(false) if v.refs.is_empty() => return None,
            _ => {}
        }
        if self.references.is_empty() {
            return Some(v.refs.clone());
        }
        let kept: Vec<Reference> = v
            .refs
            .iter()
            .filter(|r| {
                self.references
                    .iter()
                    .any(|p| familiar_match(p, r).unwrap_or(false))
            })
            .cloned()
            .collect();
        (!kept.is_empty()).then_some(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_path_match() {
        let m = |p: &str, n: &str| path_match(p, n).unwrap();
        assert!(m("bb", "bb"));
        assert!(m("b*", "bb:latest"));
        assert!(!m("b*", "x/bb"));
        assert!(m("*/bb", "x/bb"));
        assert!(!m("*", "a/b"));
        assert!(m("bb:?.?", "bb:1.2"));
        assert!(m("bb:[0-9]*", "bb:1x"));
        assert!(!m("bb:[^0-9]*", "bb:1x"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*", ""));
        assert!(path_match("[", "a").is_err());
        assert!(path_match("[]", "a").is_err());
        assert!(path_match("a\\", "a").is_err());
        assert!(check_pattern("a[b-c]*\\?").is_ok());
        assert!(check_pattern("x[").is_err());
        assert!(check_pattern("x\\").is_err());
    }

    #[test]
    fn familiar_forms_match() {
        let r: Reference = "docker.io/library/busybox:1.36".parse().unwrap();
        assert!(familiar_match("busybox", &r).unwrap());
        assert!(familiar_match("busybox:1.*", &r).unwrap());
        assert!(familiar_match("bu*", &r).unwrap());
        assert!(!familiar_match("busybox:2", &r).unwrap());
        let r: Reference = "localhost:5000/x/app:v".parse().unwrap();
        assert!(familiar_match("localhost:5000/*/*", &r).unwrap());
    }

    #[test]
    fn filters_are_checked() {
        let none = |_: &str| -> Result<i64, EngineError> { Ok(0) };
        let f = |k: &str, v: &str| {
            let mut m = Filters::new();
            m.add(k, v);
            m
        };
        assert!(ImageFilter::new(&f("dangling", "true"), LIST_KEYS, none, 0).is_ok());
        let e = ImageFilter::new(&f("dangling", "maybe"), LIST_KEYS, none, 0).unwrap_err();
        assert_eq!(e.message(), "invalid filter 'dangling=maybe'");
        let mut both = f("dangling", "true");
        both.add("dangling", "false");
        let e = ImageFilter::new(&both, LIST_KEYS, none, 0).unwrap_err();
        assert_eq!(e.message(), "invalid filter 'dangling=false,true'");
        let e = ImageFilter::new(&f("colour", "red"), LIST_KEYS, none, 0).unwrap_err();
        assert_eq!(e.message(), "invalid filter 'colour'");
        assert!(ImageFilter::new(&f("reference", "a["), LIST_KEYS, none, 0).is_err());
        assert!(ImageFilter::new(&f("before", "x"), PRUNE_KEYS, none, 0).is_err());
        assert!(ImageFilter::new(&f("until", "soon"), PRUNE_KEYS, none, 0).is_err());
        let u = ImageFilter::new(&f("until", "10m"), PRUNE_KEYS, none, 3_600_000_000_000).unwrap();
        assert_eq!(u.until, Some(3_000_000_000_000));
    }
}
