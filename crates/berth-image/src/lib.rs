//! berth's image store.
//!
//! - [`content`]: blobs by digest, visible only once their digest is verified.
//! - [`compression`]: gzip, zstd or plain layer streams, told apart by their magic bytes.
//! - [`layer`]: applying a layer tarball to a directory in overlayfs's format, never writing
//!   outside it.

pub mod compression;
pub mod content;
pub mod error;
pub mod layer;

pub use error::ImageError;
