//! berth's OCI runtime: OCI bundles → running containers on youki's `libcontainer`, and the
//! runc-compatible operations the `berth-runtime` binary exposes. Docker's default spec and
//! the shim's record formats are `berth-oci`'s, re-exported here.
//!
//! Everything here runs in a single-threaded process: `libcontainer` clones with raw `clone3`.

pub mod bundle;
pub mod command;
pub mod confined_exec;
pub mod console;
pub mod devices_bpf;
pub mod error;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod init;
pub mod lifecycle;
pub mod logging;
pub mod seccomp_bpf;
pub mod shim;
pub mod state;
pub mod update;

// Docker's default spec, the host probes and the shim's file formats live in `berth-oci`
// (which the daemon links without libcontainer); they stay reachable under their old paths.
pub use berth_oci::{host, spec};

pub use error::{Result, RuntimeError};
pub use lifecycle::{CreateOptions, Runtime};
