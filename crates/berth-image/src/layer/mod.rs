//! Layers, the three things done with them side by side (containerd's `core/diff` idea: the
//! applier beside the comparer), over one table of whiteouts:
//!
//! - [`apply`]: a layer tar onto a directory in overlayfs's format, never writing outside it.
//! - [`write`]: an overlayfs upper dir as a gzip layer blob (commit, build), and the tar
//!   writer it uses, which also writes files as they are (`docker cp`, `export`).
//! - [`diff`]: what an upper dir changed over its lower dirs (`docker diff`).
//! - [`squash`]: layers in overlayfs's format merged into one (`build --squash`).
//! - [`mount_points`]: the runtime's empty mount points in an upper dir, which are no change.
//! - [`whiteout`]: how deletions and opaque directories look in a layer tar and in overlayfs.
//! - [`fd`]: descriptor-relative file calls that never follow a symlink, which the others
//!   walk trees with.

pub mod apply;
pub mod diff;
pub mod fd;
pub mod mount_points;
pub mod squash;
pub mod whiteout;
pub mod write;

pub use apply::{apply, Applied};
pub use diff::{changes, Change, ChangeKind};
pub use write::{write_layer, Written};

#[cfg(test)]
mod tests {
    //! Round trips: an upper dir written as a layer and applied again is the same upper dir,
    //! differs from its lower dirs the same way, and over the lower gives the expected tree.

    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    use super::*;

    fn write(path: &Path, data: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }

    fn make_whiteout(path: &Path) {
        let dir = std::fs::File::open(path.parent().unwrap()).unwrap();
        let name = fd::cstring(path.file_name().unwrap().as_encoded_bytes()).unwrap();
        whiteout::make_whiteout(dir.as_raw_fd(), &name).unwrap();
    }

    fn opaque(path: &Path) -> bool {
        whiteout::is_opaque(std::fs::File::open(path).unwrap().as_raw_fd())
    }

    /// Every path under `root` with what it is: `d`, `f:<content>`, `l:<target>`, `w`
    /// (whiteout), `o` (opaque directory).
    fn tree(root: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            names.sort();
            for p in names {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                let m = std::fs::symlink_metadata(&p).unwrap();
                let ft = m.file_type();
                if ft.is_dir() {
                    let kind = if opaque(&p) { "o" } else { "d" };
                    out.push(format!(
                        "{rel} {kind} {:o}",
                        m.permissions().mode() & 0o7777
                    ));
                    walk(root, &p, out);
                } else if ft.is_symlink() {
                    let t = std::fs::read_link(&p).unwrap();
                    out.push(format!("{rel} l:{}", t.display()));
                } else if ft.is_char_device() && m.rdev() == 0 {
                    out.push(format!("{rel} w"));
                } else {
                    let data = std::fs::read_to_string(&p).unwrap();
                    out.push(format!(
                        "{rel} f:{data} {:o} {}:{} {}",
                        m.permissions().mode() & 0o7777,
                        m.uid(),
                        m.gid(),
                        m.nlink()
                    ));
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out
    }

    /// Unmounts on drop, also when an assertion fails.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    #[test]
    fn an_upper_dir_written_and_applied_again_is_the_same_layer() {
        if !nix::unistd::geteuid().is_root() {
            return; // whiteouts are device nodes, the opaque mark a trusted xattr, overlay a mount
        }
        let t = tempfile::tempdir().unwrap();
        let (lower, upper, applied) = (t.path().join("l"), t.path().join("u"), t.path().join("a"));
        write(&lower.join("etc/passwd"), "root");
        write(&lower.join("etc/group"), "wheel");
        write(&lower.join("old/f1"), "1");
        write(&lower.join("old/sub/f2"), "2");
        write(&lower.join("var/keep"), "k");
        write(&lower.join("gone.txt"), "bye");
        write(&lower.join("etc/motd"), "hello");

        // What a container left in its upper dir: changed and new files, a deleted file, a
        // directory replaced (opaque), a link, a hard link, owners and modes.
        write(&upper.join("etc/passwd"), "root\nme");
        write(&upper.join("etc/new"), "n");
        std::os::unix::fs::chown(upper.join("etc/new"), Some(1000), Some(1001)).unwrap();
        std::fs::set_permissions(upper.join("etc/new"), PermissionsExt::from_mode(0o4750)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", upper.join("etc/link")).unwrap();
        std::fs::hard_link(upper.join("etc/new"), upper.join("etc/new-too")).unwrap();
        make_whiteout(&upper.join("gone.txt"));
        make_whiteout(&upper.join("etc/motd"));
        write(&upper.join("old/fresh"), "f");
        whiteout::mark_opaque(std::fs::File::open(upper.join("old")).unwrap().as_raw_fd()).unwrap();
        write(&upper.join("new/dir/file"), "deep");
        std::fs::set_permissions(upper.join("new/dir"), PermissionsExt::from_mode(0o700)).unwrap();
        // The runtime's mount points are not part of the layer.
        write(&upper.join("etc/hosts"), "");
        std::fs::create_dir_all(upper.join("proc")).unwrap();

        let blob = t.path().join("blob");
        let written = write_layer(&upper, &blob, None).unwrap();
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(written.size, bytes.len() as u64);
        assert_eq!(
            written.digest,
            crate::content::sha256_digest(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&bytes))
        );
        std::fs::create_dir(&applied).unwrap();
        let got = apply(flate2::read::GzDecoder::new(&bytes[..]), &applied).unwrap();
        assert_eq!(got.diff_id, written.diff_id);
        assert_eq!(got.size, written.diff_size);
        assert_eq!(got.entries, written.entries);

        // The same layer again, less the runtime's mount points.
        std::fs::remove_file(upper.join("etc/hosts")).unwrap();
        std::fs::remove_dir(upper.join("proc")).unwrap();
        assert_eq!(tree(&applied), tree(&upper));
        assert!(tree(&applied).contains(&"old o 755".to_owned()));
        assert!(tree(&applied).contains(&"gone.txt w".to_owned()));
        assert!(tree(&applied).contains(&"etc/new f:n 4750 1000:1001 2".to_owned()));
        // And it differs from the lower dir as the upper dir did.
        let lowers = [lower.clone()];
        let want: Vec<String> = changes(&upper, &lowers)
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect();
        let have: Vec<String> = changes(&applied, &lowers)
            .unwrap()
            .iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect();
        assert_eq!(have, want);
        assert!(want.contains(&"D /gone.txt".to_owned()), "{want:?}");
        assert!(want.contains(&"D /old".to_owned()), "{want:?}");
        assert!(want.contains(&"A /new/dir/file".to_owned()), "{want:?}");

        // Over the lower dir, as an image's layers are stacked: the tree the container saw.
        let merged = t.path().join("m");
        std::fs::create_dir(&merged).unwrap();
        let opts = format!("lowerdir={}:{}", applied.display(), lower.display());
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap();
        let _mounted = Mounted(merged.clone());
        let files: Vec<String> = tree(&merged)
            .into_iter()
            .filter(|l| l.contains(" f:") || l.contains(" l:"))
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            files,
            vec![
                "etc/group f:wheel",
                "etc/link l:/etc/passwd",
                "etc/new f:n",
                "etc/new-too f:n",
                "etc/passwd f:root\nme",
                "new/dir/file f:deep",
                "old/fresh f:f",
                "var/keep f:k",
            ]
        );
    }

    #[test]
    fn an_empty_or_missing_upper_dir_is_no_layer() {
        let t = tempfile::tempdir().unwrap();
        let blob = t.path().join("blob");
        let w = write_layer(&t.path().join("missing"), &blob, None).unwrap();
        assert_eq!(w.entries, 0);
        std::fs::create_dir(t.path().join("empty")).unwrap();
        let w2 = write_layer(&t.path().join("empty"), &blob, None).unwrap();
        assert_eq!((w2.entries, &w2.diff_id), (0, &w.diff_id));
        assert!(changes(&t.path().join("missing"), &[]).unwrap().is_empty());
        // A failed write leaves no file behind.
        let not_a_dir = t.path().join("file");
        std::fs::write(&not_a_dir, "x").unwrap();
        let failed = t.path().join("failed-blob");
        assert!(write_layer(&not_a_dir, &failed, None).is_err());
        assert!(!failed.exists());
    }
}
