//! What a request path names: repository names and tags as the spec defines them, the
//! endpoint a `/v2/…` path is, and query strings.

use super::error::{Code, RegistryError, Result};
use berth_core::Digest;

/// Longest repository name accepted (what distribution and most clients allow).
pub const MAX_NAME_LEN: usize = 255;

/// Whether `name` matches the spec's
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
/// and is at most [`MAX_NAME_LEN`] bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let mut i = 0;
    loop {
        // A run of [a-z0-9]+ …
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        // … then a separator: ".", "_", "__" or one or more "-", and another run.
        let sep_start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[sep_start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
}

/// Whether `tag` matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// `None` when it is neither a valid tag nor a valid digest.
    pub fn parse(s: &str) -> Option<Reference> {
        if s.contains(':') {
            s.parse().ok().map(Reference::Digest)
        } else if valid_tag(s) {
            Some(Reference::Tag(s.to_owned()))
        } else {
            None
        }
    }
}

/// Parses a digest from a request, as DIGEST_INVALID when it is malformed. Only sha256 is
/// stored (the content store's layout is `blobs/sha256/`), so others are refused the same way.
pub fn parse_digest(s: &str) -> Result<Digest> {
    let digest: Digest = s.parse().map_err(|_| {
        RegistryError::new(Code::DigestInvalid)
            .message("invalid digest")
            .detail(s)
    })?;
    if digest.algorithm() != berth_core::digest::Algorithm::Sha256 {
        return Err(RegistryError::new(Code::DigestInvalid)
            .message("unsupported digest algorithm: only sha256 is stored")
            .detail(s));
    }
    Ok(digest)
}

/// The endpoint a path under `/v2/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/` (`id` empty) or `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
}

impl Route {
    pub fn name(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Upload { name, .. } => Some(name),
        }
    }
}

/// Parses the path of a request (already percent-decoded, starting at `/v2`). `None` when it
/// is no endpoint of ours; a recognised endpoint whose name is invalid is `NAME_INVALID`.
pub fn parse_route(path: &str) -> Option<Result<Route>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Ok(Route::Base));
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Ok(Route::Catalog));
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let last = segs[n - 1].to_owned();
    let suffix = |a: &str, b: &str| n >= 3 && segs[n - 2] == a && segs[n - 1] == b;
    // (where the name ends, the route once the name is known)
    let (name_end, route): (usize, Box<dyn FnOnce(String) -> Route>) = if suffix("tags", "list") {
        (n - 2, Box::new(|name| Route::Tags { name }))
    } else if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        (n - 3, Box::new(|name| Route::Upload { name, id: last }))
    } else if suffix("blobs", "uploads") {
        (
            n - 2,
            Box::new(|name| Route::Upload {
                name,
                id: String::new(),
            }),
        )
    } else if n >= 3 && segs[n - 2] == "blobs" {
        (n - 2, Box::new(|name| Route::Blob { name, digest: last }))
    } else if n >= 3 && segs[n - 2] == "manifests" {
        (
            n - 2,
            Box::new(|name| Route::Manifest {
                name,
                reference: last,
            }),
        )
    } else {
        return None;
    };
    let name = segs[..name_end].join("/");
    if !valid_name(&name) {
        return Some(Err(RegistryError::new(Code::NameInvalid).detail(name)));
    }
    Some(Ok(route(name)))
}

pub use berth_core::query::{percent_decode, Query};

/// Percent-encodes what may not stand in a query value (for `Link` headers).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        for ok in [
            "a",
            "busybox",
            "library/busybox",
            "my-org/my.repo_x/sub__part",
            "a--b",
            "a---b/c.d/e_f",
            "0/1/2",
        ] {
            assert!(valid_name(ok), "{ok} should be valid");
        }
        for bad in [
            "",
            "A",
            "Library/busybox",
            "-a",
            "a-",
            "a.",
            ".a",
            "a..b",
            "a___b",
            "a._b",
            "a/",
            "/a",
            "a//b",
            "a b",
            "_catalog",
            "a/_b",
            "a:b",
        ] {
            assert!(!valid_name(bad), "{bad:?} should be invalid");
        }
        assert!(valid_name(&"a".repeat(255)));
        assert!(!valid_name(&"a".repeat(256)));
    }

    #[test]
    fn tags_follow_the_spec() {
        for ok in ["latest", "v1.2.3", "_x", "A-b_c.d", &"t".repeat(128)] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in ["", ".x", "-x", "a:b", "a/b", &"t".repeat(129)] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn references_are_tags_or_digests() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            Reference::parse(d),
            Some(Reference::Digest(d.parse().unwrap()))
        );
        assert_eq!(
            Reference::parse("latest"),
            Some(Reference::Tag("latest".into()))
        );
        assert_eq!(Reference::parse("sha256:zz"), None);
        assert_eq!(Reference::parse("-bad"), None);
        assert!(parse_digest("sha256:abc").is_err());
        let sha512 = format!("sha512:{}", "a".repeat(128));
        assert!(parse_digest(&sha512).is_err());
    }

    #[test]
    fn routes_are_found_from_the_end() {
        let r = |p: &str| parse_route(p).map(|r| r.map_err(|e| e.code));
        assert_eq!(r("/v2/"), Some(Ok(Route::Base)));
        assert_eq!(r("/v2"), Some(Ok(Route::Base)));
        assert_eq!(r("/v2/_catalog"), Some(Ok(Route::Catalog)));
        assert_eq!(
            r("/v2/a/b/tags/list"),
            Some(Ok(Route::Tags { name: "a/b".into() }))
        );
        assert_eq!(
            r("/v2/blobs/manifests/latest"),
            Some(Ok(Route::Manifest {
                name: "blobs".into(),
                reference: "latest".into()
            }))
        );
        assert_eq!(
            r("/v2/x/manifests/y/blobs/sha256:00"),
            Some(Ok(Route::Blob {
                name: "x/manifests/y".into(),
                digest: "sha256:00".into()
            }))
        );
        assert_eq!(
            r("/v2/x/blobs/uploads/"),
            Some(Ok(Route::Upload {
                name: "x".into(),
                id: String::new()
            }))
        );
        assert_eq!(
            r("/v2/x/blobs/uploads"),
            Some(Ok(Route::Upload {
                name: "x".into(),
                id: String::new()
            }))
        );
        assert_eq!(
            r("/v2/x/y/blobs/uploads/abc"),
            Some(Ok(Route::Upload {
                name: "x/y".into(),
                id: "abc".into()
            }))
        );
        assert_eq!(r("/v2/Bad/manifests/latest"), Some(Err(Code::NameInvalid)));
        assert_eq!(r("/v2/manifests/latest"), None);
        assert_eq!(r("/v2/x/other"), None);
        assert_eq!(r("/v3/x/tags/list"), None);
    }

    #[test]
    fn queries_decode_and_repeat() {
        let q = Query::parse(Some("digest=sha256%3Aab&tag=a&tag=b+c&empty&n=5"));
        assert_eq!(q.get("digest"), Some("sha256:ab"));
        assert_eq!(q.all("tag"), ["a", "b c"]);
        assert_eq!(q.get("empty"), Some(""));
        assert_eq!(q.get("n"), Some("5"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%4", false), "%4");
        assert_eq!(percent_decode("a%2fb", false), "a/b");
        assert_eq!(query_escape("a b:c/d"), "a%20b%3Ac/d");
    }
}
