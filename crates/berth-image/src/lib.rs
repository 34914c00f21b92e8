//! berth's image store.
//!
//! - [`content`]: blobs by digest, visible only once their digest is verified.
//! - [`compression`]: gzip, zstd or plain layer streams, told apart by their magic bytes.
//! - [`layer`]: applying a layer tarball to a directory in overlayfs's format, never writing
//!   outside it; writing an overlayfs upper dir as a layer; what an upper dir changed over
//!   its lower dirs (`docker diff`); whiteouts in one place.
//! - [`snapshot`]: unpacked layers by chain ID, shared between images (overlay lower dirs).
//! - [`oci`]: manifests, indexes, descriptors and image configs.
//! - [`refs`]: `images.json`, image IDs and the names that point at them.
//! - [`import`]: a rootfs tarball becomes a one-layer image.
//! - [`delete`]: `docker rmi`'s rules, as a change of the index.
//! - [`archive`]: reading an image archive in place, by name.
//! - [`load`] and [`save`]: the docker-archive and OCI layout formats (`docker load`/`save`).
//! - [`check`]: `berth system check` of all that, and its repairs.
//! - [`store`]: all of it under one root, as the engine uses it, and the collection of data
//!   no image needs.

pub mod archive;
pub mod check;
pub mod compression;
pub mod content;
pub mod delete;
pub mod error;
pub mod import;
pub mod layer;
pub mod load;
pub mod oci;
pub mod refs;
pub mod save;
pub mod snapshot;
pub mod space;
pub mod store;

pub use error::ImageError;
