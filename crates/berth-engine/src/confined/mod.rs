//! Confined paths: the one place the engine reads and writes files inside a root it does not
//! trust (a container's rootfs and volumes, a build step's overlay, a build context, an
//! image's content at a volume's mount point). Everything here goes through `openat2(2)` with
//! `RESOLVE_IN_ROOT` from a descriptor of the root, then `*at` calls on descriptors opened
//! without following symlinks; no path string ever reaches the host's filesystem.
//!
//! - [`resolve`]: roots, a container's view (rootfs plus volumes and bind mounts), and
//!   resolving a path inside it the way the container sees it.
//! - [`extract`]: a tar stream into a directory of a root, with Docker's Untar rules
//!   (`docker cp` into a container, build's COPY/ADD, unpacking a build context).
//! - [`copy`]: one root's directory into another's (a new volume's copy-up from the image).
//!
//! Used by `archive` (`docker cp`, export), `build` (COPY/ADD, context, RUN's mount points)
//! and `volumes` (copy-up).

pub(crate) mod copy;
pub(crate) mod extract;
pub(crate) mod resolve;

pub(crate) use resolve::{
    cstring, is_dir, is_symlink, join, lexical, list_dir, lstat_at, open_in, readlink_at, Root,
    View,
};
