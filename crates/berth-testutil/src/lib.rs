//! Shared by every test binary in the workspace (a dev-dependency only, never shipped):
//!
//! - [`root_or_skip`]: the one root check. Root tests fail loudly without root;
//!   `BERTH_TEST_ALLOW_NONROOT=1` turns that into a skip that says so on stderr.
//! - [`busybox`], [`busybox_rootfs`], [`busybox_tarball`]: the busybox fixture, made from the
//!   host's Debian `busybox-static`.
//! - [`TestDaemon`]: a whole berth daemon on its own `--root`, socket, bridge, subnet and
//!   nftables table, driven with the `berth` and `docker` CLIs or raw HTTP, and torn down
//!   (containers, mounts, bridges, table) on drop, also when the test fails.
//! - [`berth_bin`], [`runtime_bin`]: the workspace's built binaries, found beside the test
//!   executable (`CARGO_BIN_EXE_*` names only a package's own binaries).
//! - process and output helpers ([`ok`], [`text`], [`err`], [`output_with_stdin`],
//!   [`output_with_timeout`], [`exits_within`], [`run_in_pty`], [`free_port`], …).
//! - [`Footprint`]: what a test daemon holds on the host (mounts, bridge ports, nftables
//!   rules, shims, open files, temporary files), to compare before and after; [`cgroups_of`].
//! - [`HttpServer`]: a one-answer HTTP server on 127.0.0.1 for a test's remote end.
//! - [`RegistryProcess`]: `berth registry serve` (or another registry) on 127.0.0.1.
//! - [`help_texts_changed_by_defer`]: a check of clap trees built one subcommand at a time.
//!
//! Crate-specific fixtures (the runtime's bundles, the network crate's namespaces) stay in
//! that crate's `tests/common`.

mod bins;
mod busybox;
mod cli;
mod daemon;
mod footprint;
mod http;
mod process;
mod registry;
mod root;

pub use bins::{berth_bin, bin_dir, runtime_bin};
pub use busybox::{busybox, busybox_rootfs, busybox_tarball};
pub use cli::help_texts_changed_by_defer;
pub use daemon::{
    berth, kill_containers, net_args, remove_net, spawn_daemon, spawn_daemon_env,
    spawn_daemon_with, TestDaemon, DOCKER,
};
pub use footprint::{bridge_ports, cgroups_of, nft_rule_count, shims_of, Footprint};
pub use http::HttpServer;
pub use process::{
    cgroup_v2, err, eventually, exits_within, free_port, ok, output_with_stdin,
    output_with_timeout, run_in_pty, stderr, stdout, text,
};
pub use registry::RegistryProcess;
pub use root::root_or_skip;
