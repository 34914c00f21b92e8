//! The OCI distribution protocol, both sides: the client berth pulls and pushes with (auth
//! challenges, manifest lists and platforms, verified streaming downloads, resumable and
//! mountable uploads, progress), and `berth registry serve`, a registry that stores what it
//! is given in the same content-store layout as the daemon's.

pub mod client;
pub mod server;
