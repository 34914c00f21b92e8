//! Docker's SDK for Python (Debian's python3-docker, which scripts/deps.sh installs) against
//! berth's socket: see tests/fixtures/sdk_interop.py for what it drives.

use berth_testutil::*;

#[test]
fn the_python_sdk_drives_berth() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nARG WHO=nobody\nRUN echo \"hello $WHO\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdk_interop.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(d.socket())
        .arg(ctx.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the SDK script failed (needs python3-docker: apt-get install python3-docker)\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sdk interop: ok"));
}
