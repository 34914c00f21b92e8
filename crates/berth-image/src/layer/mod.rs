//! Layers, the three things done with them side by side (containerd's `core/diff` idea: the
//! applier beside the comparer), over one table of whiteouts:
//!
//! - [`apply`]: a layer tar onto a directory in overlayfs's format, never writing outside it.
//! - [`write`]: an overlayfs upper dir as a gzip layer blob (commit, build), and the tar
//!   writer it uses, which also writes files as they are (`docker cp`, `export`).
//! - [`mount_points`]: the runtime's empty mount points in an upper dir, which are no change.
//! - [`whiteout`]: how deletions and opaque directories look in a layer tar and in overlayfs.
//! - [`fd`]: descriptor-relative file calls that never follow a symlink, which the others
//!   walk trees with.

pub mod apply;
pub mod fd;
pub mod mount_points;
pub mod whiteout;
pub mod write;

pub use apply::{apply, Applied};
pub use write::{write_layer, Written};
