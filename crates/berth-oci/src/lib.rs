//! berth's pure OCI and Docker formats, shared by the daemon and the runtime without either
//! linking the other's machinery:
//!
//! - [`spec`]: Docker's default OCI spec ([`spec::docker_default`] from
//!   [`spec::ContainerOptions`]): capabilities, Docker's seccomp profile as data, masked and
//!   read-only paths, devices, mounts, users resolved from the rootfs's own files.
//! - [`host`]: facts about the host that shape a spec (cgroup layout, systemd as init, swap
//!   accounting, x32).
//! - [`shim`]: the files the per-container shim keeps in its state directory (`shim.json`,
//!   `exit.json`, `health.json`, the json-file log, socket names) and their readers.
//!
//! Nothing here depends on libcontainer or libseccomp: compiling and loading seccomp filters,
//! creating containers and writing cgroups are `berth-runtime`'s.

pub mod host;
pub mod shim;
pub mod spec;
