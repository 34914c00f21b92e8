//! The whole-system tests: one test binary, one module per area, each driving real daemons
//! (berth-testutil's `TestDaemon`) with the `berth` and `docker` CLIs, raw HTTP and SDKs.
//! Most need root. Pick an area with `cargo test --test integration <module>::`, e.g.
//! `cargo test --test integration network::`.

mod archive;
mod build;
mod cli;
mod compose;
mod compose_berth;
mod container_store;
mod crash;
mod cycles;
mod daemon;
mod exec_attach;
mod health;
mod hostconfig;
mod images;
mod network;
mod registry;
mod rootless;
mod sdk;
mod security;
mod stats;
mod system_check;
mod tls;
mod userns;
mod volumes;

/// The harness finds binaries beside the test executable; cargo's own path for ours must be
/// the same file, or every test would drive a different `berth` than the one just built.
#[test]
fn testutil_finds_the_berth_cargo_built() {
    assert_eq!(
        berth_testutil::berth_bin(),
        std::path::Path::new(env!("CARGO_BIN_EXE_berth"))
    );
}
