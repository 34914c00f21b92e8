//! berth's OCI runtime: OCI bundles → running containers on youki's `libcontainer`, Docker's
//! default spec, and the runc-compatible operations the `berth-runtime` binary exposes.
//!
//! Everything here runs in a single-threaded process: `libcontainer` clones with raw `clone3`.

pub mod bundle;
pub mod command;
pub mod confined_exec;
pub mod console;
pub mod error;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod host;
pub mod init;
pub mod lifecycle;
pub mod logging;
pub mod seccomp_bpf;
pub mod shim;
pub mod spec;
pub mod state;

pub use error::{Result, RuntimeError};
pub use lifecycle::{CreateOptions, Runtime};
