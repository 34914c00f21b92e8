//! Image references, normalized the way Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `localhost:5000/app@sha256:…` keeps its registry and
//! digest. [`Reference::familiar`] gives the short form Docker prints.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::digest::Digest;
use crate::error::{ErrorKind, HasErrorKind};

pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
}

impl HasErrorKind for ReferenceError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

/// A normalized reference: registry, repository path, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ separated by '.', '_', '__' or any number of '-'.
    if c.is_empty() {
        return false;
    }
    let bytes = c.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) if !h.contains(']') || r.starts_with('[') => (h, Some(p)),
        _ => (r, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ReferenceError::Invalid(s.to_owned());
        if s.is_empty() || s.len() > 255 + 128 + 80 {
            return Err(invalid());
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>().map_err(|_| invalid())?)),
            None => (s, None),
        };
        let (name, tag) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t)),
            _ => (name, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(invalid());
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_REGISTRY.to_owned(), name.to_owned()),
        };
        if !valid_registry(&registry) {
            return Err(invalid());
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            let shown = if registry == DEFAULT_REGISTRY && !path.contains('/') {
                format!("library/{path}")
            } else {
                path.clone()
            };
            return Err(ReferenceError::Uppercase(shown));
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(invalid());
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl Reference {
    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The repository as Docker shows it (`busybox`, `user/app`, `localhost:5000/app`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// The familiar name with tag and digest (`busybox:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn docker_normalization() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("localhost:5000/app:v1"), "localhost:5000/app:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(
            norm("registry.example.com/a/b/c:tag"),
            "registry.example.com/a/b/c:tag"
        );
        assert_eq!(norm("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            norm(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(
            norm(&format!("busybox:1@{d}")),
            format!("docker.io/library/busybox:1@{d}")
        );
    }

    #[test]
    fn familiar_forms() {
        let r: Reference = "docker.io/library/busybox".parse().unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        let r: Reference = "localhost:5000/app:v1".parse().unwrap();
        assert_eq!(r.familiar(), "localhost:5000/app:v1");
    }

    #[test]
    fn bad_references() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a",
            "a-",
            "busybox@sha256:abc",
            "UPPER/case",
            "a b",
            "busybox:tag:more/x",
            ":latest",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            "Busybox".parse::<Reference>(),
            Err(ReferenceError::Uppercase(_))
        ));
    }
}
