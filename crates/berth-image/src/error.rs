//! Errors of the image store; each maps into a `berth_core::ErrorKind`.

use std::path::PathBuf;

use berth_core::error::HasErrorKind;
use berth_core::{Digest, ErrorKind};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ImageError {
    #[error("blob {0} not found")]
    BlobNotFound(Digest),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content size does not match: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("layer entry {entry:?}: {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("layer is not a valid tar archive: {0}")]
    BadArchive(String),
    /// An image archive (`docker load`) that is malformed, incomplete or unsafe.
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    /// No image by that name or ID (Docker's "No such image: …").
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// The operation clashes with the store's state (Docker's wording, complete).
    #[error("{0}")]
    Conflict(String),
    /// A request that makes no sense (bad reference, bad tag).
    #[error("{0}")]
    InvalidArgument(String),
    /// An unpack stopped before it ate the free-space reserve.
    #[error("{0}")]
    NoSpace(String),
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

impl HasErrorKind for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::BlobNotFound(_) | ImageError::NoSuchImage(_) => ErrorKind::NotFound,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::DigestMismatch { .. }
            | ImageError::SizeMismatch { .. }
            | ImageError::UnsafeEntry { .. }
            | ImageError::BadArchive(_)
            | ImageError::InvalidArchive(_)
            | ImageError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            ImageError::Io { .. } | ImageError::NoSpace(_) => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;
