//! Content discovery: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, both in
//! byte-wise ("ASCIIbetical") order, paginated with `n` and `last` and a `Link` header to the
//! next page.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{Code, RegistryError, Result};
use super::names::{query_escape, Query};
use super::App;

/// One page of a sorted list: at most `n` items after `last`, and whether more follow.
/// `n == Some(0)` is an empty page with no next one, as the spec requires.
pub fn paginate<'a>(
    sorted: &'a [String],
    n: Option<usize>,
    last: Option<&str>,
) -> (&'a [String], bool) {
    let start = match last {
        Some(last) => sorted.partition_point(|s| s.as_str() <= last),
        None => 0,
    };
    let rest = &sorted[start..];
    match n {
        Some(0) => (&[], false),
        Some(n) if n < rest.len() => (&rest[..n], true),
        _ => (rest, false),
    }
}

/// Reads `n` and `last`.
fn page_params(query: &Query) -> Result<(Option<usize>, Option<String>)> {
    let n = match query.get("n") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            RegistryError::new(Code::Unsupported)
                .status(StatusCode::BAD_REQUEST)
                .message("invalid pagination number")
                .detail(v.to_owned())
        })?),
    };
    Ok((n, query.get("last").map(str::to_owned)))
}

fn page_response(body: serde_json::Value, next: Option<String>) -> Response {
    let mut resp = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(link) = next.and_then(|l| l.parse().ok()) {
        resp.headers_mut().insert(header::LINK, link);
    }
    resp
}

fn next_link(path: &str, page: &[String], n: Option<usize>, more: bool) -> Option<String> {
    if !more {
        return None;
    }
    let last = page.last()?;
    let n = n.map(|n| format!("&n={n}")).unwrap_or_default();
    Some(format!(
        "<{path}?last={}{n}>; rel=\"next\"",
        query_escape(last)
    ))
}

/// `GET /v2/<name>/tags/list`.
pub fn tags(app: &Arc<App>, name: &str, query: &Query) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let tags: Vec<String> = app
        .meta
        .read(|r| r.get(name).map(|repo| repo.tags.keys().cloned().collect()))
        .ok_or_else(|| {
            RegistryError::new(Code::NameUnknown).detail(serde_json::json!({ "name": name }))
        })?;
    let (page, more) = paginate(&tags, n, last.as_deref());
    let link = next_link(&format!("/v2/{name}/tags/list"), page, n, more);
    Ok(page_response(
        serde_json::json!({ "name": name, "tags": page }),
        link,
    ))
}

/// `GET /v2/_catalog`.
pub fn catalog(app: &Arc<App>, query: &Query) -> Result<Response> {
    let (n, last) = page_params(query)?;
    let names: Vec<String> = app.meta.read(|r| r.keys().cloned().collect());
    let (page, more) = paginate(&names, n, last.as_deref());
    let link = next_link("/v2/_catalog", page, n, more);
    Ok(page_response(
        serde_json::json!({ "repositories": page }),
        link,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages_follow_last_and_n() {
        let all = list(&["a", "b", "c", "d"]);
        assert_eq!(paginate(&all, None, None), (&all[..], false));
        assert_eq!(paginate(&all, Some(2), None), (&all[..2], true));
        assert_eq!(paginate(&all, Some(2), Some("b")), (&all[2..], false));
        assert_eq!(paginate(&all, Some(4), None), (&all[..], false));
        assert_eq!(paginate(&all, Some(10), None), (&all[..], false));
        assert_eq!(paginate(&all, Some(0), None).0.len(), 0);
        assert!(!paginate(&all, Some(0), None).1);
        // `last` need not be in the list; what sorts after it follows.
        assert_eq!(paginate(&all, None, Some("bb")), (&all[2..], false));
        assert_eq!(paginate(&all, Some(1), Some("0")), (&all[..1], true));
        assert_eq!(paginate(&all, None, Some("z")).0.len(), 0);
        // Byte order: upper case before lower case.
        let mixed = list(&["B", "a"]);
        assert_eq!(paginate(&mixed, Some(1), Some("B")), (&mixed[1..], false));
    }

    #[test]
    fn links_point_at_the_next_page() {
        let all = list(&["v1.0", "v2 x"]);
        assert_eq!(
            next_link("/v2/r/tags/list", &all[..1], Some(1), true).unwrap(),
            "</v2/r/tags/list?last=v1.0&n=1>; rel=\"next\""
        );
        assert_eq!(
            next_link("/v2/_catalog", &all[1..], None, true).unwrap(),
            "</v2/_catalog?last=v2%20x>; rel=\"next\""
        );
        assert_eq!(next_link("/v2/_catalog", &all, Some(5), false), None);
    }
}
