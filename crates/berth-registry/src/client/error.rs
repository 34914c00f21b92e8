//! The client's errors, worded as Docker words them where scripts and people read them
//! ("pull access denied for …", "manifest for … not found: manifest unknown: …", "no matching
//! manifest for linux/amd64 in the manifest list entries").

use std::fmt;
use std::path::PathBuf;

use berth_core::error::{ErrorKind, HasErrorKind};
use berth_core::{Digest, ReferenceError};
use berth_image::ImageError;
use thiserror::Error;

/// An error a registry answered with: the first entry of its `{"errors":[…]}` body, or just
/// the HTTP status when the body had none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    /// The distribution spec's code (`MANIFEST_UNKNOWN`, `DENIED`, `UNAUTHORIZED`…); empty
    /// when the registry gave none.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &str, message: &str) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl fmt::Display for ApiError {
    /// As Docker's `errcode.Error`: the code in lower case with spaces, then the message
    /// (`manifest unknown: manifest unknown`, `denied: requested access to the resource is
    /// denied`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            return match self.message.is_empty() {
                true => write!(
                    f,
                    "received unexpected HTTP status: {} {}",
                    self.status,
                    status_text(self.status)
                ),
                false => f.write_str(&self.message),
            };
        }
        let code = self.code.to_lowercase().replace('_', " ");
        if self.message.is_empty() {
            f.write_str(&code)
        } else {
            write!(f, "{code}: {}", self.message)
        }
    }
}

/// The reason phrase Go prints after a status code.
pub(crate) fn status_text(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A request that makes no sense (a bad platform, a digest where a tag is needed).
    #[error("{0}")]
    InvalidArgument(String),
    /// Docker's words for a pull the registry refused or knows nothing of.
    #[error(
        "pull access denied for {name}, repository does not exist or may require 'docker login': {cause}"
    )]
    PullAccessDenied { name: String, cause: ApiError },
    #[error("manifest for {name} not found: {cause}")]
    ManifestUnknown { name: String, cause: ApiError },
    #[error("repository {name} not found: {cause}")]
    RepositoryUnknown { name: String, cause: ApiError },
    /// `docker manifest inspect` of something the registry does not have.
    #[error("no such manifest: {0}")]
    NoSuchManifest(String),
    /// Any other error the registry answered with, as it said it.
    #[error("{0}")]
    Api(ApiError),
    #[error(
        "no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )]
    NoMatchingManifest { wanted: String, available: String },
    #[error(
        "image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}"
    )]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    #[error("image operating system \"{0}\" cannot be used on this platform")]
    UnsupportedOs(String),
    /// A layer whose bytes are not what its digest (or size) says.
    #[error("filesystem layer verification failed for digest {0}")]
    LayerVerification(Digest),
    /// A manifest or config whose bytes are not what its digest says.
    #[error("{what} {expected}: content does not match its digest (got {actual})")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    /// A manifest, index or config that cannot be used.
    #[error("{0}")]
    InvalidManifest(String),
    /// `docker login` with credentials the registry refused (Docker's wording for a registry
    /// that asks for basic auth; token servers answer `unauthorized: …` as an [`ApiError`]).
    #[error("login attempt to {url} failed with status: {status} {}", status_text(*.status))]
    LoginFailed { url: String, status: u16 },
    /// A credential helper or the config file failed.
    #[error("{0}")]
    Credentials(String),
    /// The connection failed or broke: Go's `Get "url": why`.
    #[error("{method} {url:?}: {message}")]
    Http {
        method: String,
        url: String,
        message: String,
    },
    /// A download that stopped before its end; what arrived is kept to resume from.
    #[error("download of {digest} interrupted: {why}")]
    Interrupted { digest: Digest, why: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl RegistryError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> RegistryError {
        RegistryError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// Whether trying again may help (the network, a registry's bad moment).
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Http { .. } | RegistryError::Interrupted { .. } => true,
            RegistryError::Api(e) => e.status >= 500 || e.status == 429,
            _ => false,
        }
    }
}

impl HasErrorKind for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Reference(_) | RegistryError::InvalidArgument(_) => {
                ErrorKind::InvalidArgument
            }
            RegistryError::PullAccessDenied { .. }
            | RegistryError::ManifestUnknown { .. }
            | RegistryError::RepositoryUnknown { .. }
            | RegistryError::NoSuchManifest(_)
            | RegistryError::NoMatchingManifest { .. } => ErrorKind::NotFound,
            RegistryError::Api(e) => match e.status {
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                400 => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            RegistryError::LoginFailed { .. } => ErrorKind::Unauthorized,
            RegistryError::Image(e) => e.kind(),
            RegistryError::PlatformMismatch { .. }
            | RegistryError::UnsupportedOs(_)
            | RegistryError::LayerVerification(_)
            | RegistryError::DigestMismatch { .. }
            | RegistryError::InvalidManifest(_)
            | RegistryError::Credentials(_)
            | RegistryError::Http { .. }
            | RegistryError::Interrupted { .. }
            | RegistryError::Io { .. }
            | RegistryError::Internal(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_read_like_docker() {
        let e = ApiError::new(404, "MANIFEST_UNKNOWN", "manifest unknown");
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        let e = ApiError::new(401, "UNAUTHORIZED", "authentication required");
        assert_eq!(e.to_string(), "unauthorized: authentication required");
        assert_eq!(
            ApiError::new(500, "", "").to_string(),
            "received unexpected HTTP status: 500 Internal Server Error"
        );
        let denied = RegistryError::PullAccessDenied {
            name: "nosuch".into(),
            cause: ApiError::new(403, "DENIED", "requested access to the resource is denied"),
        };
        assert_eq!(
            denied.to_string(),
            "pull access denied for nosuch, repository does not exist or may require \
             'docker login': denied: requested access to the resource is denied"
        );
        assert_eq!(denied.kind(), ErrorKind::NotFound);
        let login = RegistryError::LoginFailed {
            url: "http://127.0.0.1:5000/v2/".into(),
            status: 401,
        };
        assert_eq!(
            login.to_string(),
            "login attempt to http://127.0.0.1:5000/v2/ failed with status: 401 Unauthorized"
        );
    }
}
