//! Layers, the three things done with them side by side (containerd's `core/diff` idea: the
//! applier beside the comparer), over one table of whiteouts:
//!
//! - [`apply`]: a layer tar onto a directory in overlayfs's format, never writing outside it.
//! - [`whiteout`]: how deletions and opaque directories look in a layer tar and in overlayfs.
//! - [`fd`]: descriptor-relative file calls that never follow a symlink, which the others
//!   walk trees with.

pub mod apply;
pub mod fd;
pub mod whiteout;

pub use apply::{apply, Applied};
