//! Finding the workspace's built binaries from inside any package's tests.
//!
//! Cargo sets `CARGO_BIN_EXE_<name>` only for the package's own binaries, so a harness shared
//! by several packages finds them the way cargo lays them out instead: a test executable is
//! `<target>/<profile>/deps/<test>-<hash>`, and the binaries are in `<target>/<profile>`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `<target>/<profile>`: the directory holding the workspace's binaries for this build.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        let mut dir = exe.parent().expect("the test executable's dir").to_owned();
        if dir.ends_with("deps") {
            dir.pop();
        }
        dir
    })
}

/// The `berth` binary (CLI and daemon). `cargo test` builds it before the root package's
/// integration tests run; other packages' tests must not need it.
pub fn berth_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = bin_dir().join("berth");
        assert!(
            bin.is_file(),
            "{} is missing: run the tests through `cargo test`, which builds it",
            bin.display()
        );
        bin
    })
}

/// `berth-runtime`, beside `berth` (and `berth-shim` beside it).
///
/// `cargo test` builds only the tested package's binaries: this brings berth-runtime and
/// berth-shim up to date once per test process (a no-op when they are), so no test runs a
/// stale runtime.
pub fn runtime_bin() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "berth-runtime", "--bins"])
            .status()
            .unwrap();
        assert!(st.success(), "cannot build berth-runtime");
    });
    bin_dir().join("berth-runtime")
}
