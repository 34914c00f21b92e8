//! Shared vocabulary of berth: identifiers, digests, and the error kinds that every crate maps
//! its errors into (and the one table that turns a kind into an HTTP status); and the one copy
//! of the helpers every crate needs: atomic file writes ([`fs`]), Docker's `filters`
//! ([`filters`]), Go durations ([`duration`]), query strings ([`query`]) and `since`/`until`
//! times ([`timestamp`]), legacy link specs ([`link`]), platform words ([`platform`]), device cgroup rules
//! ([`device`]), daemon addresses (`-H`, `DOCKER_HOST`: [`host`]), a remapped container's ID
//! mapping ([`idmap`]).

pub mod device;
pub mod digest;
pub mod duration;
pub mod error;
pub mod filters;
pub mod fs;
pub mod host;
pub mod humanize;
pub mod id;
pub mod idmap;
pub mod link;
pub mod memory;
pub mod platform;
pub mod program;
pub mod query;
pub mod reference;
pub mod subid;
pub mod timestamp;
pub mod timing;
pub mod userdirs;

pub use digest::{Digest, DigestError};
pub use error::ErrorKind;
pub use id::{ContainerId, IdError};
pub use reference::{Reference, ReferenceError};
