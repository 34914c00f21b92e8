//! The `/v1.NN` prefix of a request path, taken off before routing.
//!
//! Docker serves every path with and without a version prefix. Nesting the routes once per
//! version made the route table 23 times larger, and axum copies that table for every
//! connection (the docker CLI opens one per command): a millisecond per command. The prefix is
//! instead stripped here, before the router sees the request, and the version is kept as an
//! [`ApiVersion`] extension for the handlers that behave differently by version. A version
//! outside what berth serves is left in the path, so no route matches and the fallback answers
//! with Docker's "too new"/"too old" error.

use axum::extract::Request;
use axum::http::Uri;

/// The oldest and newest minor versions served (`1.24` through `1.45`).
pub(crate) const MIN_MINOR: u32 = 24;
pub(crate) const MAX_MINOR: u32 = 45;

/// The API version a request asked for (its path prefix), or the newest when it had none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    pub minor: u32,
}

/// The minor version of a `/v1.NN/…` path and the rest of the path (`/` when nothing follows).
pub(crate) fn split(path: &str) -> Option<(u32, &str)> {
    let rest = path.strip_prefix("/v1.")?;
    let (digits, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let minor = digits.parse().ok()?;
    Some((minor, if tail.is_empty() { "/" } else { tail }))
}

/// Takes a served version's prefix off `req`'s path and records the version.
pub(crate) fn strip(mut req: Request) -> Request {
    let path = req.uri().path();
    let mut minor = MAX_MINOR;
    if let Some((n, tail)) = split(path) {
        if !(MIN_MINOR..=MAX_MINOR).contains(&n) {
            return req;
        }
        minor = n;
        let mut rewritten = tail.to_owned();
        if let Some(q) = req.uri().query() {
            rewritten.push('?');
            rewritten.push_str(q);
        }
        // The tail of a path that parsed is itself a valid path.
        if let Ok(uri) = rewritten.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req.extensions_mut().insert(ApiVersion { minor });
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn stripped(uri: &str) -> (String, Option<ApiVersion>) {
        let req = strip(Request::builder().uri(uri).body(Body::empty()).unwrap());
        (
            req.uri().to_string(),
            req.extensions().get::<ApiVersion>().copied(),
        )
    }

    #[test]
    fn a_served_prefix_goes_and_its_version_stays() {
        assert_eq!(
            stripped("/v1.41/containers/json?all=1"),
            (
                "/containers/json?all=1".to_owned(),
                Some(ApiVersion { minor: 41 })
            )
        );
        assert_eq!(
            stripped("/v1.45/_ping"),
            ("/_ping".to_owned(), Some(ApiVersion { minor: 45 }))
        );
    }

    #[test]
    fn no_prefix_means_the_newest_version() {
        assert_eq!(
            stripped("/containers/json"),
            (
                "/containers/json".to_owned(),
                Some(ApiVersion { minor: MAX_MINOR })
            )
        );
    }

    #[test]
    fn versions_not_served_stay_for_the_fallback() {
        assert_eq!(stripped("/v1.99/_ping"), ("/v1.99/_ping".to_owned(), None));
        assert_eq!(stripped("/v1.12/_ping"), ("/v1.12/_ping".to_owned(), None));
        // Not a version at all: an ordinary (unknown) path.
        assert_eq!(stripped("/v1.x/_ping").0, "/v1.x/_ping");
    }

    #[test]
    fn split_reads_only_digits() {
        assert_eq!(split("/v1.44/a/b"), Some((44, "/a/b")));
        assert_eq!(split("/v1.44"), Some((44, "/")));
        assert_eq!(split("/v1.+4/a"), None);
        assert_eq!(split("/v2.1/a"), None);
    }
}
