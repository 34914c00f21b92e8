//! The store's load, removal and collection together: a load that fails halfway takes back
//! what it added, a collection removes exactly what no image needs, and blobs being saved stay
//! until the save is done. Needs root (layers are unpacked with their owners).

use berth_testutil::root_or_skip;

use std::path::Path;

use berth_core::Digest;
use berth_image::delete::ImageUser;
use berth_image::store::ImageStore;
use sha2::Digest as _;

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn layer(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// A legacy docker-archive of one image; `layers` are (file content, diff ID it claims).
fn legacy_archive(path: &Path, tag: &str, layers: &[(Vec<u8>, String)]) -> String {
    let diff_ids: Vec<String> = layers.iter().map(|(_, d)| format!("sha256:{d}")).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_hex = sha256(&config);
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    add(&format!("{config_hex}.json"), &config);
    let mut paths = Vec::new();
    for (i, (data, _)) in layers.iter().enumerate() {
        let p = format!("{}/layer.tar", i.to_string().repeat(64));
        add(&p, data);
        paths.push(p);
    }
    let manifest = serde_json::json!([{
        "Config": format!("{config_hex}.json"), "RepoTags": [tag], "Layers": paths,
    }]);
    add("manifest.json", manifest.to_string().as_bytes());
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
    format!("sha256:{config_hex}")
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |r| r.count())
}

#[test]
fn a_load_that_fails_halfway_takes_back_its_first_layers() {
    if !root_or_skip() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let good = layer("a", b"first");
    let bad = layer("b", b"second");
    let archive = t.path().join("half.tar");
    // The second layer claims a diff ID its content does not have.
    legacy_archive(
        &archive,
        "half:1",
        &[(good.clone(), sha256(&good)), (bad, "00".repeat(32))],
    );
    let err = store.load(&archive, "now").unwrap_err();
    assert!(
        err.to_string()
            .contains("is not what the image config says"),
        "{err}"
    );
    assert_eq!(
        count(&t.path().join("snapshots")),
        0,
        "first layer's snapshot left"
    );
    assert_eq!(
        count(&t.path().join("content/blobs/sha256")),
        0,
        "blobs left"
    );
    assert_eq!(count(&t.path().join("content/ingest")), 0);
    assert!(store.index().unwrap().images.is_empty());
}

#[test]
fn collection_keeps_what_images_containers_and_saves_need() {
    if !root_or_skip() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path()).unwrap();
    let base = layer("base", b"shared");
    let top = layer("top", b"only mine");
    let a = t.path().join("a.tar");
    let b = t.path().join("b.tar");
    let id_a = legacy_archive(&a, "a:1", &[(base.clone(), sha256(&base))]);
    let id_b = legacy_archive(
        &b,
        "b:1",
        &[(base.clone(), sha256(&base)), (top.clone(), sha256(&top))],
    );
    store.load(&a, "now").unwrap();
    store.load(&b, "now").unwrap();
    let snapshots = || count(&t.path().join("snapshots"));
    let blobs = || count(&t.path().join("content/blobs/sha256"));
    assert_eq!(snapshots(), 2, "the base layer is shared");
    let before = blobs();
    assert_eq!(store.gc(&[]).unwrap().bytes, 0, "everything is in use");
    assert_eq!(blobs(), before);

    // b goes: its own layer goes, the shared one stays for a.
    let records = store.remove("b:1", false, &[]).unwrap();
    assert_eq!(records.len(), 2);
    // A save of a, started before a is removed, keeps a's blobs until it is dropped.
    let export = store.export(&["a:1".to_owned()]).unwrap();
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.snapshots.len(), 1);
    assert!(report.bytes > 0);
    assert_eq!(snapshots(), 1);

    // a is used by a stopped container: forced, the image goes but its data stays for it.
    let id_a: Digest = id_a.parse().unwrap();
    let users = [ImageUser {
        container: "c".repeat(64),
        image: id_a.clone(),
        running: false,
    }];
    assert!(store.remove("a:1", false, &users).is_err());
    store.remove("a:1", true, &users).unwrap();
    store.gc(std::slice::from_ref(&id_a)).unwrap();
    assert_eq!(snapshots(), 1);
    assert!(store.content.exists(&id_a));
    let mut out = Vec::new();
    export.write_to(&mut out).unwrap();
    assert!(!out.is_empty());
    // Without the container its layers go; the save's blobs stay until it is dropped.
    store.gc(&[]).unwrap();
    assert_eq!(snapshots(), 0);
    assert!(store.content.exists(&id_a));
    drop(export);
    store.gc(&[]).unwrap();
    assert_eq!(blobs(), 0);
    assert!(!store.content.exists(&id_a));
    assert!(
        store.index().unwrap().images.is_empty(),
        "{id_b} is gone too"
    );
}
