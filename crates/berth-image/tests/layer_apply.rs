//! Applying layers: file kinds and metadata, overlay whiteouts, and every way a layer could
//! try to write outside its directory. Needs root (ownership, device nodes, trusted xattrs).

use berth_testutil::root_or_skip;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::layer::apply;
use berth_image::ImageError;
use sha2::Digest as _;
use tar::{EntryType, Header};

/// A tar archive built entry by entry, names written raw (the tar crate refuses `..`).
struct Layer(Vec<u8>);

impl Layer {
    fn new() -> Self {
        Layer(Vec::new())
    }

    fn entry(mut self, name: &str, kind: EntryType, link: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_000_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn dir(self, name: &str) -> Self {
        self.entry(name, EntryType::Directory, "", 0o755, b"")
    }
    fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, EntryType::Regular, "", 0o644, data)
    }
    fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Symlink, target, 0o777, b"")
    }
    fn hardlink(self, name: &str, target: &str) -> Self {
        self.entry(name, EntryType::Link, target, 0o644, b"")
    }
    fn bytes(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

fn sandbox() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("layer");
    std::fs::create_dir(&dest).unwrap();
    (t, dest)
}

fn refused(result: Result<berth_image::layer::Applied, ImageError>, needle: &str) {
    match result {
        Err(ImageError::UnsafeEntry { entry, reason }) => {
            assert!(
                entry.contains(needle) || reason.contains(needle),
                "{entry}: {reason}"
            )
        }
        other => panic!("expected a refusal mentioning {needle:?}, got {other:?}"),
    }
}

fn nothing_outside(t: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(t)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, expected, "something was written beside the layer");
}

#[test]
fn files_links_and_metadata() {
    if !root_or_skip() {
        return;
    }
    let (_t, dest) = sandbox();
    let tar = Layer::new()
        .dir("etc")
        .file("etc/hostname", b"box\n")
        .entry("bin/tool", EntryType::Regular, "", 0o4755, b"#!/bin/sh\n")
        .symlink("etc/link", "/etc/hostname")
        .hardlink("etc/hard", "etc/hostname")
        .entry("run/fifo", EntryType::Fifo, "", 0o600, b"")
        .bytes();
    let applied = apply(&tar[..], &dest).unwrap();
    let want = format!("sha256:{:x}", sha2::Sha256::digest(&tar));
    assert_eq!(applied.diff_id.to_string(), want);
    assert_eq!(applied.size, tar.len() as u64);

    assert_eq!(std::fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
    let m = std::fs::metadata(dest.join("etc/hostname")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (1000, 1000, 0o644));
    assert_eq!(m.mtime(), 1_000_000_000);
    assert_eq!(m.nlink(), 2, "hard link shares the inode");
    let tool = std::fs::metadata(dest.join("bin/tool")).unwrap();
    assert_eq!(
        tool.permissions().mode() & 0o7777,
        0o4755,
        "setuid survives chown"
    );
    assert_eq!(
        std::fs::read_link(dest.join("etc/link")).unwrap(),
        Path::new("/etc/hostname")
    );
    assert!(std::fs::symlink_metadata(dest.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        std::fs::metadata(dest.join("etc")).unwrap().mtime(),
        1_000_000_000
    );
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !root_or_skip() {
        return;
    }
    let (_t, dest) = sandbox();
    let tar = Layer::new()
        .file("etc/.wh.passwd", b"")
        .dir("var")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n")
        .bytes();
    apply(&tar[..], &dest).unwrap();
    let wh = std::fs::symlink_metadata(dest.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!dest.join("etc/.wh.passwd").exists());
    let mut buf = [0u8; 8];
    let path = std::ffi::CString::new(dest.join("var").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(&buf[..n.max(0) as usize], b"y");
    assert!(dest.join("var/new").exists());
    assert!(!dest.join("var/.wh..wh..opq").exists());
}

#[test]
fn later_entries_replace_earlier_ones() {
    if !root_or_skip() {
        return;
    }
    let (_t, dest) = sandbox();
    let tar = Layer::new()
        .file("x", b"first")
        .file("x", b"second")
        .dir("d")
        .file("d/inner", b"i")
        .file("d", b"now a file")
        .bytes();
    apply(&tar[..], &dest).unwrap();
    assert_eq!(std::fs::read(dest.join("x")).unwrap(), b"second");
    assert_eq!(std::fs::read(dest.join("d")).unwrap(), b"now a file");
}

#[test]
fn dot_dot_and_absolute_names_are_refused() {
    if !root_or_skip() {
        return;
    }
    let (t, dest) = sandbox();
    refused(
        apply(&Layer::new().file("../evil", b"x").bytes()[..], &dest),
        "..",
    );
    refused(
        apply(&Layer::new().file("a/../../evil", b"x").bytes()[..], &dest),
        "..",
    );
    refused(
        apply(&Layer::new().file("/evil", b"x").bytes()[..], &dest),
        "absolute",
    );
    nothing_outside(t.path(), &["layer"]);
}

#[test]
fn symlink_escapes_are_refused() {
    if !root_or_skip() {
        return;
    }
    let (t, dest) = sandbox();
    let outside = t.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    // A symlink to a directory outside, then a file "through" it.
    let tar = Layer::new()
        .symlink("link", outside.to_str().unwrap())
        .file("link/pwned", b"x")
        .bytes();
    refused(apply(&tar[..], &dest), "symlink");
    // Relative symlinks climbing out are no better.
    let (t2, dest2) = sandbox();
    let tar = Layer::new()
        .symlink("up", "../../../../../../..")
        .file("up/tmp/pwned", b"x")
        .bytes();
    refused(apply(&tar[..], &dest2), "symlink");
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "wrote through the link"
    );
    assert!(!Path::new("/tmp/pwned").exists());
    nothing_outside(t.path(), &["layer", "outside"]);
    nothing_outside(t2.path(), &["layer"]);
}

#[test]
fn hardlink_escapes_are_refused() {
    if !root_or_skip() {
        return;
    }
    let (t, dest) = sandbox();
    let secret = t.path().join("secret");
    std::fs::write(&secret, "host data").unwrap();
    refused(
        apply(&Layer::new().hardlink("h", "../secret").bytes()[..], &dest),
        "outside",
    );
    refused(
        apply(
            &Layer::new().hardlink("h", secret.to_str().unwrap()).bytes()[..],
            &dest,
        ),
        "outside",
    );
    refused(
        apply(&Layer::new().hardlink("h", "not-here").bytes()[..], &dest),
        "not a file of this layer",
    );
    // Through a symlink to the outside.
    let tar = Layer::new()
        .symlink("s", t.path().to_str().unwrap())
        .hardlink("h", "s/secret")
        .bytes();
    refused(apply(&tar[..], &dest), "not a file of this layer");
    assert_eq!(
        std::fs::metadata(&secret).unwrap().nlink(),
        1,
        "host file got a link"
    );
}

#[test]
fn garbage_is_a_clear_error() {
    let (_t, dest) = sandbox();
    let err = apply(
        &b"this is not a tar archive at all, not even close......"[..],
        &dest,
    );
    assert!(matches!(err, Err(ImageError::BadArchive(_))), "{err:?}");
}
