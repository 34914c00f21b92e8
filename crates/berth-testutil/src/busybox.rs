//! The busybox fixture: Debian's `busybox-static` (one static binary, no libraries), laid out
//! as a tiny rootfs or packed as the tarball `docker import` takes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's static busybox; fails the test, saying what to install, when there is none.
pub fn busybox() -> &'static Path {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("the tests need Debian's busybox-static (apt-get install busybox-static)")
}

/// A busybox rootfs in `dir/rootfs`: `bin/busybox` with the applets `sh echo cat ls sleep id`
/// linked to it, `/etc/passwd` with root, and empty `etc tmp proc sys dev`. Its path.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "sleep", "id"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    rootfs
}

/// [`busybox_rootfs`] packed as `dir/busybox.tar` (for `docker import`). Its path.
pub fn busybox_tarball(dir: &Path) -> PathBuf {
    let rootfs = busybox_rootfs(dir);
    let tarball = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tarball
}
