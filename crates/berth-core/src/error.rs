//! Error kinds shared across crates.
//!
//! Library crates keep their own `thiserror` enums; each of those answers "which kind am I?"
//! through [`HasErrorKind`], and the API turns the kind into a status with
//! [`ErrorKind::http_status`]: one table, one place.

use std::fmt;

/// What went wrong, at the level a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The object named does not exist (no such container, image, volume …).
    NotFound,
    /// The request clashes with the current state (name in use, container running …).
    Conflict,
    /// The request itself is malformed (bad reference, bad flag value, bad body …).
    InvalidArgument,
    /// The operation is valid but has nothing to do (already started, already stopped).
    NotModified,
    /// The caller may not do this.
    Forbidden,
    /// Credentials are missing or were refused.
    Unauthorized,
    /// A dependency (registry, kernel feature) is not available right now.
    Unavailable,
    /// The operation is not implemented or not supported on this host.
    NotImplemented,
    /// A bug or an unexpected failure of the host.
    Internal,
}

impl ErrorKind {
    /// The HTTP status the Docker Engine API uses for this kind.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::NotModified => 304,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Unavailable => 503,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Internal => 500,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotModified => "not modified",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotImplemented => "not implemented",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(s)
    }
}

/// Implemented by every library error so the edges (API, CLI) can classify it.
pub trait HasErrorKind {
    fn kind(&self) -> ErrorKind;
    /// The exit code of the command whose failure this is (a build's RUN step), which Docker
    /// reports as `errorDetail.code` in progress streams.
    fn code(&self) -> Option<i64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_docker() {
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::Conflict.http_status(), 409);
        assert_eq!(ErrorKind::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorKind::NotModified.http_status(), 304);
        assert_eq!(ErrorKind::Internal.http_status(), 500);
    }
}

/// An error that knows its kind: what crosses from a library into the API (moby's errdefs
/// idea: the daemon classifies, only the API edge turns the class into a status).
pub trait KindedError: std::error::Error + HasErrorKind + Send + Sync + 'static {}

impl<T: std::error::Error + HasErrorKind + Send + Sync + 'static> KindedError for T {}

/// A classified error of any library: what the API's backend traits return.
pub type BoxError = Box<dyn KindedError>;

impl<E: KindedError> From<E> for BoxError {
    fn from(e: E) -> BoxError {
        Box::new(e)
    }
}

impl HasErrorKind for BoxError {
    fn kind(&self) -> ErrorKind {
        (**self).kind()
    }
    fn code(&self) -> Option<i64> {
        (**self).code()
    }
}

#[cfg(test)]
mod boxed_tests {
    use super::*;

    #[derive(Debug)]
    struct Gone;
    impl fmt::Display for Gone {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("No such thing: x")
        }
    }
    impl std::error::Error for Gone {}
    impl HasErrorKind for Gone {
        fn kind(&self) -> ErrorKind {
            ErrorKind::NotFound
        }
    }

    #[test]
    fn a_boxed_error_keeps_its_kind_and_words() {
        let e: BoxError = Gone.into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "No such thing: x");
    }
}
