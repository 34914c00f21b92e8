//! The engine's one error type. Every engine operation says what kind of failure it had
//! (berth-core's `ErrorKind`) and, in Docker's words, what went wrong; the API edge alone
//! turns the kind into an HTTP status. Library errors (images, networks, registries, specs)
//! keep their own kind when they pass through.

use berth_core::error::HasErrorKind;
use berth_core::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such container, image, volume, network, exec…
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the object's state (name in use, container running…).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (a bad flag value, a malformed field).
    #[error("{0}")]
    InvalidArgument(String),
    /// Nothing to do (already started, already stopped).
    #[error("{0}")]
    NotModified(String),
    /// The host or a dependency cannot do it now (a registry down, a kernel feature).
    #[error("{0}")]
    Unavailable(String),
    /// berth does not do this.
    #[error("{0}")]
    NotImplemented(String),
    /// What may never be done (removing a pre-defined network, writing a read-only path).
    #[error("{0}")]
    Forbidden(String),
    /// Credentials missing or refused.
    #[error("{0}")]
    Unauthorized(String),
    /// Something failed that should not have (a bug, a full disk…).
    #[error("{0}")]
    Internal(String),
    /// A file operation failed: what the engine was doing, and the system's error.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A library's error, with the kind it classified itself as.
    #[error("{message}")]
    Library { kind: ErrorKind, message: String },
    /// A command run for the client failed with `code` (a build's RUN step).
    #[error("{message}")]
    CommandFailed { message: String, code: i64 },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn not_found(message: impl Into<String>) -> Self {
        EngineError::NotFound(message.into())
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        EngineError::Conflict(message.into())
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        EngineError::InvalidArgument(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        EngineError::Internal(message.into())
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        EngineError::NotImplemented(message.into())
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        EngineError::Forbidden(message.into())
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        EngineError::Unavailable(message.into())
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        EngineError::Unauthorized(message.into())
    }
    /// An I/O failure while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EngineError::Io {
            context: context.into(),
            source,
        }
    }
    /// Any library error, keeping the kind it gives itself and its text.
    pub fn from_kind(err: &(impl HasErrorKind + std::fmt::Display)) -> Self {
        EngineError::Library {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
    /// A kind and a message (for errors that arrive already classified).
    pub fn with_kind(kind: ErrorKind, message: impl Into<String>) -> Self {
        EngineError::Library {
            kind,
            message: message.into(),
        }
    }
    /// The message alone (Docker's words), e.g. for a container's State.Error.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl HasErrorKind for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            EngineError::NotModified(_) => ErrorKind::NotModified,
            EngineError::Unavailable(_) => ErrorKind::Unavailable,
            EngineError::NotImplemented(_) => ErrorKind::NotImplemented,
            EngineError::Unauthorized(_) => ErrorKind::Unauthorized,
            EngineError::Forbidden(_) => ErrorKind::Forbidden,
            EngineError::Internal(_) | EngineError::Io { .. } => ErrorKind::Internal,
            EngineError::Library { kind, .. } => *kind,
            EngineError::CommandFailed { .. } => ErrorKind::InvalidArgument,
        }
    }
    fn code(&self) -> Option<i64> {
        match self {
            EngineError::CommandFailed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<berth_image::ImageError> for EngineError {
    fn from(e: berth_image::ImageError) -> Self {
        EngineError::from_kind(&e)
    }
}

impl From<berth_core::filters::FilterError> for EngineError {
    fn from(e: berth_core::filters::FilterError) -> Self {
        EngineError::from_kind(&e)
    }
}

impl From<berth_network::NetError> for EngineError {
    fn from(e: berth_network::NetError) -> Self {
        EngineError::from_kind(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_variant_or_the_library() {
        assert_eq!(EngineError::not_found("x").kind(), ErrorKind::NotFound);
        assert_eq!(
            EngineError::io("write x", std::io::Error::other("disk full")).to_string(),
            "write x: disk full"
        );
        let e = EngineError::with_kind(ErrorKind::Unauthorized, "denied");
        assert_eq!(
            (e.kind(), e.to_string()),
            (ErrorKind::Unauthorized, "denied".into())
        );
    }
}
