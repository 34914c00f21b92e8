//! Importing a rootfs tarball into the store, snapshots shared by chain ID, and overlayfs
//! reading our snapshots the way the kernel will for containers. Needs root.

use berth_testutil::root_or_skip;

use std::io::Read;
use std::path::Path;

use berth_image::content::ContentStore;
use berth_image::import::import_rootfs;
use berth_image::oci::{ImageConfig, Manifest, RunConfig};
use berth_image::refs::IndexFile;
use berth_image::snapshot::SnapshotStore;
use sha2::Digest as _;

/// A busybox rootfs as a tar stream, made from the host's busybox-static.
fn busybox_tar() -> Vec<u8> {
    let busybox = berth_testutil::busybox();
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for d in ["bin", "etc", "tmp"] {
        b.append_data(&mut dir.clone(), d, std::io::empty())
            .unwrap();
    }
    let data = std::fs::read(busybox).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, "bin/busybox", &data[..]).unwrap();
    for applet in ["sh", "ls", "echo"] {
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Symlink);
        l.set_size(0);
        b.append_link(&mut l, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut p = tar::Header::new_gnu();
    p.set_mode(0o644);
    p.set_size(passwd.len() as u64);
    b.append_data(&mut p, "etc/passwd", &passwd[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn import_makes_a_verified_one_layer_image() {
    if !root_or_skip() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let content = ContentStore::open(t.path()).unwrap();
    let snapshots = SnapshotStore::open(t.path()).unwrap();
    let tar = busybox_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let gzipped = gz.finish().unwrap();
    let config = RunConfig {
        cmd: Some(vec!["sh".into()]),
        ..Default::default()
    };
    let now = "2026-11-24T00:00:00Z";
    let imported = import_rootfs(&content, &snapshots, &gzipped[..], config, None, now).unwrap();

    // The diff ID is the sha256 of the uncompressed tar.
    let diff_id = format!("sha256:{:x}", sha2::Sha256::digest(&tar));
    assert_eq!(imported.snapshot.diff_id.to_string(), diff_id);
    // Config and manifest are in the store and agree with each other.
    let config: ImageConfig =
        serde_json::from_slice(&content.read_blob(&imported.id).unwrap()).unwrap();
    assert_eq!(config.rootfs.diff_ids[0].to_string(), diff_id);
    assert_eq!(config.config.cmd, Some(vec!["sh".to_owned()]));
    assert_eq!(config.os, "linux");
    let manifest: Manifest =
        serde_json::from_slice(&content.read_blob(&imported.manifest).unwrap()).unwrap();
    assert_eq!(manifest.config.digest, imported.id);
    // The layer blob decompresses to exactly the tar that was unpacked.
    let mut blob = Vec::new();
    flate2::read::GzDecoder::new(content.open_blob(&manifest.layers[0].digest).unwrap())
        .read_to_end(&mut blob)
        .unwrap();
    assert_eq!(blob, tar);
    // The snapshot holds the files.
    let fs = snapshots.fs(&imported.snapshot.chain_id);
    assert!(fs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(fs.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    // The same layer again shares the snapshot.
    let again = import_rootfs(
        &content,
        &snapshots,
        &tar[..],
        RunConfig::default(),
        None,
        now,
    )
    .unwrap();
    assert_eq!(again.snapshot.chain_id, imported.snapshot.chain_id);
    let again_manifest: Manifest =
        serde_json::from_slice(&content.read_blob(&again.manifest).unwrap()).unwrap();
    let mut blob2 = Vec::new();
    flate2::read::GzDecoder::new(content.open_blob(&again_manifest.layers[0].digest).unwrap())
        .read_to_end(&mut blob2)
        .unwrap();
    assert_eq!(blob2, tar);
    let snapshot_dirs = std::fs::read_dir(t.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshot_dirs, 1, "no second copy, no leftovers");
}

#[test]
fn a_bad_tarball_leaves_no_trace() {
    if !root_or_skip() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let content = ContentStore::open(t.path()).unwrap();
    let snapshots = SnapshotStore::open(t.path()).unwrap();
    // Valid start, then an entry that tries to escape.
    let mut tar = busybox_tar();
    tar.truncate(tar.len() - 1024);
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend(std::iter::repeat_n(0u8, 1024));
    let err = import_rootfs(
        &content,
        &snapshots,
        &tar[..],
        RunConfig::default(),
        None,
        "now",
    )
    .unwrap_err();
    assert!(err.to_string().contains("../escape"), "{err}");
    assert_eq!(
        std::fs::read_dir(t.path().join("snapshots"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(t.path().join("content/blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(t.path().join("content/ingest"))
            .unwrap()
            .count(),
        0
    );
    assert!(!t.path().join("escape").exists());
}

/// Unmounts on drop, also when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn overlay_sees_layers_whiteouts_and_opaque_dirs() {
    if !root_or_skip() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let snapshots = SnapshotStore::open(t.path()).unwrap();
    let layer = |entries: &[(&str, &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    };
    let base = snapshots
        .unpack(
            None,
            &layer(&[
                ("etc/passwd", b"root"),
                ("etc/group", b"g"),
                ("var/log/old", b"o"),
            ])[..],
        )
        .unwrap();
    let top = snapshots
        .unpack(
            Some(&base.chain_id),
            &layer(&[
                ("etc/.wh.passwd", b""),
                ("var/.wh..wh..opq", b""),
                ("var/new", b"n"),
            ])[..],
        )
        .unwrap();
    let lowers = snapshots.lower_dirs(&top.chain_id).unwrap();
    assert_eq!(lowers.len(), 2);
    let merged = t.path().join("merged");
    std::fs::create_dir(&merged).unwrap();
    let opts = format!(
        "lowerdir={}",
        lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .unwrap();
    let _guard = Mount(merged.clone());
    assert!(
        !merged.join("etc/passwd").exists(),
        "whiteout hides the file"
    );
    assert_eq!(std::fs::read(merged.join("etc/group")).unwrap(), b"g");
    assert!(
        !merged.join("var/log").exists(),
        "opaque dir hides the layer below"
    );
    assert_eq!(std::fs::read(merged.join("var/new")).unwrap(), b"n");
}

#[test]
fn index_file_round_trips_atomically() {
    let t = tempfile::tempdir().unwrap();
    let file = IndexFile::new(t.path());
    let mut index = file.load().unwrap();
    assert!(index.refs.is_empty());
    let id: berth_core::Digest =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
    index.images.insert(
        id.clone(),
        berth_image::refs::ImageRecord {
            manifest: id.clone(),
            added: "now".into(),
            last_tag_time: None,
        },
    );
    index.tag(&"busybox".parse().unwrap(), &id);
    file.save(&index).unwrap();
    let back = file.load().unwrap();
    assert_eq!(back, index);
    assert_eq!(
        back.names_of(&id),
        vec!["docker.io/library/busybox:latest".to_owned()]
    );
    assert!(!std::fs::read_dir(t.path())
        .unwrap()
        .any(|e| berth_core::fs::is_temp_file(&e.unwrap().file_name())));
}
