//! berth's image store.
//!
//! - [`content`]: blobs by digest, visible only once their digest is verified.
//! - [`compression`]: gzip, zstd or plain layer streams, told apart by their magic bytes.
//! - [`layer`]: applying a layer tarball to a directory in overlayfs's format, never writing
//!   outside it.
//! - [`snapshot`]: unpacked layers by chain ID, shared between images (overlay lower dirs).
//! - [`oci`]: manifests, descriptors and image configs.
//! - [`refs`]: `images.json`, image IDs and the names that point at them.
//! - [`import`]: a rootfs tarball becomes a one-layer image.
//! - [`store`]: all of it under one root, as the engine uses it.

pub mod compression;
pub mod content;
pub mod error;
pub mod import;
pub mod layer;
pub mod oci;
pub mod refs;
pub mod snapshot;
pub mod store;

pub use error::ImageError;
