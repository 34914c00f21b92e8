//! Shared vocabulary of berth: identifiers, digests, and the error kinds that every crate maps
//! its errors into (and the one table that turns a kind into an HTTP status).

pub mod digest;
pub mod duration;
pub mod error;
pub mod fs;
pub mod humanize;
pub mod id;
pub mod reference;

pub use digest::{Digest, DigestError};
pub use error::ErrorKind;
pub use id::{ContainerId, IdError};
pub use reference::{Reference, ReferenceError};
