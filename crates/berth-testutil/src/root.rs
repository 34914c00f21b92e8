//! The one root check of the workspace's tests.

/// True when the test may go on as root. Without root the test fails, unless
/// `BERTH_TEST_ALLOW_NONROOT` is set: then it returns false (the caller returns early) after
/// saying on stderr that the test was skipped, so a skip is never silent.
///
/// ```ignore
/// if !root_or_skip() {
///     return;
/// }
/// ```
pub fn root_or_skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("BERTH_TEST_ALLOW_NONROOT").is_some(),
        "this test needs root (or BERTH_TEST_ALLOW_NONROOT=1 to skip it)"
    );
    eprintln!("SKIPPED: this test needs root (BERTH_TEST_ALLOW_NONROOT is set)");
    false
}
