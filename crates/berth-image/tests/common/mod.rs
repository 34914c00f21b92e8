//! Shared by berth-image's root tests.

/// Root tests fail loudly without root; `BERTH_TEST_ALLOW_NONROOT=1` turns that into a skip
/// that still prints why.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("BERTH_TEST_ALLOW_NONROOT").is_some() {
        eprintln!("SKIPPED: this test needs root (BERTH_TEST_ALLOW_NONROOT is set)");
        return false;
    }
    panic!("this test needs root: run `cargo test` as root, or set BERTH_TEST_ALLOW_NONROOT=1");
}
