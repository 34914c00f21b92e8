//! Local image operations through the real docker CLI: tag, rmi (Docker's conflicts), image
//! inspect and history, save/load (Docker 25+'s archive, the legacy docker-archive, a plain
//! OCI layout), images filters, and prune, with the store's files checked on disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testutil::*;

/// A command that must fail, with `needle` in what it says.
fn fails_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "succeeded: {}", text(out));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

fn root(d: &TestDaemon) -> PathBuf {
    d.dir.path().join("root")
}

/// Names in a directory of the store, sorted (dot files too: leftovers count).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn snapshots(d: &TestDaemon) -> Vec<String> {
    names(&root(d).join("snapshots"))
}

fn blobs(d: &TestDaemon) -> Vec<String> {
    names(&root(d).join("content/blobs/sha256"))
}

/// Everything of the store that a failed operation must leave as it was.
fn store_state(d: &TestDaemon) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>, String) {
    (
        snapshots(d),
        blobs(d),
        names(&root(d).join("content/ingest")),
        names(&root(d).join("tmp")),
        std::fs::read_to_string(root(d).join("images.json")).unwrap_or_default(),
    )
}

fn image_id(d: &TestDaemon, name: &str) -> String {
    ok(&d.docker(&["image", "inspect", "--format", "{{.Id}}", name]))
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn untar(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(st.success());
}

fn tar_dir(dir: &Path, archive: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

/// A layer tarball with one file, `/hello.txt`.
fn hello_layer(dir: &Path, content: &str) -> PathBuf {
    let src = dir.join(format!("hello-src-{}", content.len()));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), content).unwrap();
    let tarball = dir.join(format!("hello-{}.tar", content.len()));
    tar_dir(&src, &tarball);
    tarball
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// One ustar header block for `name` (written by hand: hostile names included).
fn ustar_header(name: &str, size: usize, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

fn raw_tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        out.extend_from_slice(&ustar_header(name, data.len(), b'0'));
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn tag_names_and_leaves_the_old_image_dangling() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = image_id(&d, "bb");
    ok(&d.docker(&["tag", "bb", "bb2"]));
    ok(&d.docker(&["tag", "bb", "localhost:5000/team/app:v1"]));
    assert_eq!(image_id(&d, "bb2:latest"), id);
    assert_eq!(image_id(&d, "docker.io/library/bb2"), id);
    assert_eq!(image_id(&d, "localhost:5000/team/app:v1"), id);
    assert_eq!(image_id(&d, &id[7..19]), id);
    let out = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    let mut rows: Vec<&str> = out.lines().collect();
    rows.sort();
    let short = &id[7..19];
    assert_eq!(
        rows,
        [
            format!("bb2:latest {short}"),
            format!("bb:latest {short}"),
            format!("localhost:5000/team/app:v1 {short}"),
        ]
    );

    // Digests: one per repository, and usable as a name.
    let out = ok(&d.docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Digest}}",
    ]));
    assert!(out.lines().all(|l| l.contains(" sha256:")), "{out}");
    let by_digest = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{range .RepoDigests}}{{println .}}{{end}}",
        "bb",
    ]));
    let bb_digest = by_digest
        .lines()
        .find(|l| l.starts_with("bb@sha256:"))
        .unwrap_or_else(|| panic!("{by_digest}"))
        .to_owned();
    assert_eq!(image_id(&d, &bb_digest), id);
    ok(&d.docker(&["tag", &bb_digest, "bb3:pinned"]));
    assert_eq!(image_id(&d, "bb3:pinned"), id);

    // Filters.
    let out = ok(&d.docker(&[
        "images",
        "--filter",
        "reference=bb*",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]));
    let mut rows: Vec<&str> = out.lines().collect();
    rows.sort();
    assert_eq!(rows, ["bb2:latest", "bb3:pinned", "bb:latest"]);
    let out = ok(&d.docker(&["images", "--filter", "reference=*:pinned", "-q"]));
    assert_eq!(out, short);

    // A second image takes the name `bb2`; the first keeps its other names.
    let tarball = d.dir.path().join("busybox.tar");
    let second = ok(&d.docker(&[
        "import",
        "-c",
        "LABEL purpose=second",
        tarball.to_str().unwrap(),
    ]));
    assert_ne!(second, id);
    let out = ok(&d.docker(&["images", "--filter", "dangling=true", "-q", "--no-trunc"]));
    assert_eq!(out, second, "an unnamed import is dangling");
    ok(&d.docker(&["tag", &second, "bb2"]));
    assert_eq!(image_id(&d, "bb2"), second);
    let out = ok(&d.docker(&[
        "images",
        "--filter",
        "label=purpose=second",
        "-q",
        "--no-trunc",
    ]));
    assert_eq!(out, second);
    let out = ok(&d.docker(&["images", "--filter", "dangling=true", "-q"]));
    assert_eq!(out, "", "the first image still has names");

    // Re-tagging every name of the first image onto the second leaves it dangling.
    for name in ["bb", "localhost:5000/team/app:v1", "bb3:pinned"] {
        ok(&d.docker(&["tag", &second, name]));
    }
    let out = ok(&d.docker(&["images", "--filter", "dangling=true", "-q", "--no-trunc"]));
    assert_eq!(out, id);
    let out = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    assert!(out.contains(&format!("<none>:<none> {short}")), "{out}");
    let out = ok(&d.docker(&["images", "--filter", "dangling=false", "-q", "--no-trunc"]));
    assert!(out.lines().all(|l| l == second), "{out}");

    // Mistakes: Docker's messages, nothing changes.
    fails_with(
        &d.docker(&["tag", "nosuch", "x"]),
        "No such image: nosuch:latest",
    );
    fails_with(&d.docker(&["tag", "bb", "Bad"]), "invalid reference format");
    let (status, _) = d.request("POST", "/images/bb/tag?repo=x%40sha256%3Aabc");
    assert_eq!(status, 400);
    let (status, body) = d.request(
        "GET",
        "/images/json?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid filter 'colour'"), "{body}");
}

#[test]
fn rmi_untags_then_deletes_and_frees_the_data() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = image_id(&d, "bb");
    assert_eq!(snapshots(&d).len(), 1);
    assert_eq!(blobs(&d).len(), 3, "layer, config, manifest");
    ok(&d.docker(&["tag", "bb", "bb2"]));

    // One of several names: only that name goes.
    let out = ok(&d.docker(&["rmi", "bb2"]));
    assert_eq!(out, "Untagged: bb2:latest");
    assert_eq!(image_id(&d, "bb"), id);
    assert_eq!(snapshots(&d).len(), 1);

    // By ID with several names: Docker wants force.
    ok(&d.docker(&["tag", "bb", "bb2"]));
    fails_with(
        &d.docker(&["rmi", &id[7..19]]),
        &format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            &id[7..19]
        ),
    );
    ok(&d.docker(&["rmi", "bb2"]));

    // The last name: the image and its data go.
    let (status, body) = d.request("DELETE", "/images/bb");
    assert_eq!(status, 200, "{body}");
    let items: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        items,
        serde_json::json!([{"Untagged": "bb:latest"}, {"Deleted": id}])
    );
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    assert!(snapshots(&d).is_empty(), "{:?}", snapshots(&d));
    assert!(blobs(&d).is_empty(), "{:?}", blobs(&d));

    let out = d.docker(&["rmi", "bb"]);
    fails_with(&out, "No such image: bb:latest");
    let (status, _) = d.request("DELETE", "/images/nosuch");
    assert_eq!(status, 404);
}

#[test]
fn rmi_is_refused_while_a_container_uses_the_image() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = image_id(&d, "bb");
    let short = &id[7..19];
    let cid = ok(&d.docker(&["create", "bb", "true"]));

    fails_with(
        &d.docker(&["rmi", "bb"]),
        &format!(
            "conflict: unable to remove repository reference \"bb\" (must force) - container {} is using its referenced image {short}",
            &cid[..12]
        ),
    );
    let (status, body) = d.request("DELETE", "/images/bb");
    assert_eq!(status, 409, "{body}");
    fails_with(
        &d.docker(&["rmi", short]),
        &format!(
            "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
            &cid[..12]
        ),
    );
    assert_eq!(image_id(&d, "bb"), id, "nothing was removed");
    ok(&d.docker(&["rm", &cid]));
    let out = ok(&d.docker(&["rmi", "bb"]));
    assert_eq!(out, format!("Untagged: bb:latest\nDeleted: {id}"));
    assert!(snapshots(&d).is_empty());

    // A running container: forced, the name goes but the image stays (dangling); by ID
    // not even force deletes it.
    let tarball = d.dir.path().join("busybox.tar");
    ok(&d.docker(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        tarball.to_str().unwrap(),
        "bb",
    ]));
    let id = image_id(&d, "bb");
    let short = &id[7..19];
    let running = ok(&d.docker(&["run", "-d", "bb", "sleep", "1000"]));
    let out = ok(&d.docker(&["rmi", "-f", "bb"]));
    assert_eq!(out, "Untagged: bb:latest");
    assert_eq!(
        ok(&d.docker(&["images", "-q", "--filter", "dangling=true"])),
        short
    );
    fails_with(
        &d.docker(&["rmi", "-f", short]),
        &format!(
            "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
            &running[..12]
        ),
    );
    ok(&d.docker(&["rm", "-f", &running]));

    // A stopped container: force deletes the image, but the container keeps its files.
    ok(&d.docker(&["tag", short, "bb"]));
    let kept = ok(&d.docker(&["create", "bb", "echo", "still here"]));
    let out = ok(&d.docker(&["rmi", "-f", "bb"]));
    assert_eq!(out, format!("Untagged: bb:latest\nDeleted: {id}"));
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    assert_eq!(snapshots(&d).len(), 1, "the container's layers stay");
    assert_eq!(ok(&d.docker(&["start", "-a", &kept])), "still here");
    ok(&d.docker(&["rm", &kept]));
    ok(&d.docker(&["image", "prune", "-f"]));
    assert!(snapshots(&d).is_empty(), "{:?}", snapshots(&d));
    assert!(blobs(&d).is_empty(), "{:?}", blobs(&d));
}

#[test]
fn image_inspect_and_history() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let out = ok(&d.docker(&["image", "inspect", "bb"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let img = &v[0];
    let id = img["Id"].as_str().unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(img["RepoTags"], serde_json::json!(["bb:latest"]));
    let digests = img["RepoDigests"].as_array().unwrap();
    assert_eq!(digests.len(), 1);
    assert!(digests[0].as_str().unwrap().starts_with("bb@sha256:"));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert!(img["Config"]["Env"][0]
        .as_str()
        .unwrap()
        .starts_with("PATH="));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["Architecture"], goarch());
    assert_eq!(img["Comment"], "Imported from -");
    assert_eq!(img["Author"], "");
    assert!(img["Created"].as_str().unwrap().starts_with("20"));
    assert!(img["Size"].as_i64().unwrap() > 1_000_000);
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    let tagged = img["Metadata"]["LastTagTime"].as_str().unwrap();
    assert!(tagged.starts_with("20"), "{tagged}");
    let upper = img["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert!(Path::new(upper).join("bin/busybox").exists(), "{upper}");
    let out = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.Cmd}} {{.Os}}",
        "bb",
    ]));
    assert_eq!(out, "[sh] linux");

    let out = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Comment}}",
        "bb",
    ]));
    assert_eq!(out, format!("{id}|berth import|Imported from -"));
    let (status, body) = d.request("GET", "/images/bb/history");
    assert_eq!(status, 200, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h[0]["Id"], id);
    assert_eq!(h[0]["Tags"], serde_json::json!(["bb:latest"]));
    assert_eq!(h[0]["Size"], img["Size"]);
    assert!(h[0]["Created"].as_i64().unwrap() > 1_600_000_000);

    fails_with(&d.docker(&["image", "inspect", "nosuch"]), "No such image");
    let (status, _) = d.request("GET", "/images/nosuch/json");
    assert_eq!(status, 404);
    let (status, _) = d.request("GET", "/images/nosuch/history");
    assert_eq!(status, 404);
}

#[test]
fn save_rmi_load_run_keeps_the_image() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let id = image_id(&d, "bb");
    let archive = d.dir.path().join("x.tar");
    ok(&d.docker(&["save", "bb", "-o", archive.to_str().unwrap()]));

    // What Docker 25+ writes and loads: an OCI layout with Docker's manifest.json beside it.
    let x = d.dir.path().join("x");
    untar(&archive, &x);
    assert_eq!(
        json_file(&x.join("oci-layout")),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    for blob in names(&x.join("blobs/sha256")) {
        assert_eq!(sha256_file(&x.join("blobs/sha256").join(&blob)), blob);
    }
    let index = json_file(&x.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        "docker.io/library/bb:latest"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let mdigest = entry["digest"].as_str().unwrap();
    let mpath = x.join("blobs/sha256").join(&mdigest[7..]);
    assert_eq!(
        std::fs::metadata(&mpath).unwrap().len(),
        entry["size"].as_u64().unwrap()
    );
    let manifest = json_file(&mpath);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["config"]["digest"], id);
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();

    let legacy = json_file(&x.join("manifest.json"));
    assert_eq!(
        legacy,
        serde_json::json!([{
            "Config": format!("blobs/sha256/{}", &id[7..]),
            "RepoTags": ["bb:latest"],
            "Layers": [format!("blobs/sha256/{}", &layer[7..])],
        }])
    );
    let config = json_file(&x.join("blobs/sha256").join(&id[7..]));
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap();
    assert_eq!(
        json_file(&x.join("repositories")),
        serde_json::json!({"bb": {"latest": &diff_id[7..]}})
    );

    // Round trip: the same image comes back and runs.
    ok(&d.docker(&["rmi", "bb"]));
    assert!(snapshots(&d).is_empty());
    let out = ok(&d.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: bb:latest");
    assert_eq!(image_id(&d, "bb"), id);
    assert_eq!(ok(&d.docker(&["run", "--rm", "bb", "echo", "hi"])), "hi");

    // Loading what is there already changes nothing; a moved name is reported.
    let before = store_state(&d);
    let out = ok(&d.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: bb:latest");
    assert_eq!(store_state(&d).0, before.0);
    assert_eq!(store_state(&d).1, before.1);
    let tarball = d.dir.path().join("busybox.tar");
    let other = ok(&d.docker(&["import", tarball.to_str().unwrap(), "bb"]));
    let out = ok(&d.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(
        out,
        format!(
            "The image bb:latest already exists, renaming the old one with ID {other} to empty string\nLoaded image: bb:latest"
        )
    );
    assert_eq!(image_id(&d, "bb"), id);
    ok(&d.docker(&["rmi", &other]));

    // Saved by ID, an image has no name in the archive and loads as an ID.
    let by_id = d.dir.path().join("by-id.tar");
    ok(&d.docker(&["save", "-o", by_id.to_str().unwrap(), &id[7..19]]));
    let y = d.dir.path().join("y");
    untar(&by_id, &y);
    let legacy = json_file(&y.join("manifest.json"));
    assert!(legacy[0]["RepoTags"].is_null(), "{legacy}");
    assert!(!y.join("repositories").exists());
    ok(&d.docker(&["rmi", "bb"]));
    let out = ok(&d.docker(&["load", "-i", by_id.to_str().unwrap()]));
    assert_eq!(out, format!("Loaded image ID: {id}"));
    assert_eq!(ok(&d.docker(&["images", "-q", "--no-trunc"])), id);

    // Save through the API streams a tar; a missing image is a 404 before any byte.
    let (status, _) = d.request("GET", "/images/get?names=nosuch");
    assert_eq!(status, 404);
    fails_with(
        &d.docker(&[
            "save",
            "-o",
            d.dir.path().join("no.tar").to_str().unwrap(),
            "nosuch",
        ]),
        "No such image",
    );
}

#[test]
fn load_a_legacy_archive_and_an_oci_layout_built_by_hand() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let work = d.dir.path().join("legacy");
    std::fs::create_dir_all(&work).unwrap();
    let base = d.dir.path().join("busybox.tar");
    let hello = hello_layer(&work, "hello from a hand-made layer\n");
    let (base_sum, hello_sum) = (sha256_file(&base), sha256_file(&hello));
    let config = serde_json::json!({
        "architecture": goarch(),
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "author": "the test",
        "config": {"Cmd": ["cat", "/hello.txt"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [
            format!("sha256:{base_sum}"), format!("sha256:{hello_sum}"),
        ]},
        "history": [
            {"created": "2024-01-02T03:04:00Z", "created_by": "ADD busybox /"},
            {"created": "2024-01-02T03:04:01Z", "created_by": "ADD hello.txt /"},
            {"created": "2024-01-02T03:04:05Z", "created_by": "CMD [\"cat\" \"/hello.txt\"]", "empty_layer": true},
        ],
    });

    // Legacy docker-archive: `<id>.json`, `<v1 id>/layer.tar` (one a link), manifest.json.
    let dir = work.join("archive");
    std::fs::create_dir_all(&dir).unwrap();
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_path = dir.join("config.tmp");
    std::fs::write(&config_path, &config_bytes).unwrap();
    let config_hex = sha256_file(&config_path);
    std::fs::rename(&config_path, dir.join(format!("{config_hex}.json"))).unwrap();
    let (v1a, v1b) = ("a".repeat(64), "b".repeat(64));
    std::fs::create_dir_all(dir.join(&v1a)).unwrap();
    std::fs::create_dir_all(dir.join(&v1b)).unwrap();
    std::fs::copy(&base, dir.join(&v1a).join("layer.tar")).unwrap();
    std::fs::copy(&hello, dir.join("hello.tar")).unwrap();
    std::os::unix::fs::symlink("../hello.tar", dir.join(&v1b).join("layer.tar")).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&serde_json::json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": ["legacy:1"],
            "Layers": [format!("{v1a}/layer.tar"), format!("{v1b}/layer.tar")],
        }]))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("repositories"),
        format!(r#"{{"legacy":{{"1":"{v1b}"}}}}"#),
    )
    .unwrap();
    let legacy_tar = work.join("legacy.tar");
    tar_dir(&dir, &legacy_tar);

    let out = ok(&d.docker(&["load", "-i", legacy_tar.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: legacy:1");
    assert_eq!(image_id(&d, "legacy:1"), format!("sha256:{config_hex}"));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "legacy:1"])),
        "hello from a hand-made layer"
    );
    // The busybox layer is the one `bb` has: shared, not unpacked twice.
    assert_eq!(snapshots(&d).len(), 2, "{:?}", snapshots(&d));
    let out = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
        "legacy:1",
    ]));
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[0].starts_with(&format!("sha256:{config_hex}|CMD")),
        "{out}"
    );
    assert!(rows[0].ends_with("|0B"), "{out}");
    assert!(rows[1].starts_with("<missing>|ADD hello.txt /|"), "{out}");
    assert!(rows[2].starts_with("<missing>|ADD busybox /|"), "{out}");
    let out = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Author}}|{{.Created}}",
        "legacy:1",
    ]));
    assert_eq!(out, "the test|2024-01-02T03:04:05Z");

    // A plain OCI layout: index.json naming the image, uncompressed layers.
    let oci = work.join("oci");
    let blobs_dir = oci.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).unwrap();
    std::fs::copy(&base, blobs_dir.join(&base_sum)).unwrap();
    std::fs::copy(&hello, blobs_dir.join(&hello_sum)).unwrap();
    std::fs::write(blobs_dir.join(&config_hex), &config_bytes).unwrap();
    let layer_desc = |sum: &str, path: &Path| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{sum}"),
            "size": std::fs::metadata(path).unwrap().len(),
        })
    };
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_hex}"),
            "size": config_bytes.len(),
        },
        "layers": [layer_desc(&base_sum, &base), layer_desc(&hello_sum, &hello)],
    }))
    .unwrap();
    let mtmp = oci.join("m.tmp");
    std::fs::write(&mtmp, &manifest).unwrap();
    let manifest_hex = sha256_file(&mtmp);
    std::fs::rename(&mtmp, blobs_dir.join(&manifest_hex)).unwrap();
    std::fs::write(oci.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        oci.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest_hex}"),
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "example.com/oci/app:v2"},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    let oci_tar = work.join("oci.tar");
    tar_dir(&oci, &oci_tar);
    ok(&d.docker(&["rmi", "legacy:1"]));
    let out = ok(&d.docker(&["load", "-i", oci_tar.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: example.com/oci/app:v2");
    assert_eq!(
        image_id(&d, "example.com/oci/app:v2"),
        format!("sha256:{config_hex}")
    );
    let digests = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .RepoDigests 0}}",
        "example.com/oci/app:v2",
    ]));
    assert_eq!(
        digests,
        format!("example.com/oci/app@sha256:{manifest_hex}")
    );
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "example.com/oci/app:v2"])),
        "hello from a hand-made layer"
    );
}

#[test]
fn bad_archives_fail_and_change_nothing() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let archive = d.dir.path().join("x.tar");
    ok(&d.docker(&["save", "bb", "-o", archive.to_str().unwrap()]));
    ok(&d.docker(&["rmi", "bb"]));
    let x = d.dir.path().join("x");
    untar(&archive, &x);
    let manifest = json_file(&x.join("manifest.json"));
    let layer = x.join(manifest[0]["Layers"][0].as_str().unwrap());
    let layer_hex = layer.file_name().unwrap().to_str().unwrap().to_owned();

    // Not a tar at all: Docker's 200 with the error in the stream (docker-py looks there).
    let (status, body) = d.request_body("POST", "/images/load?quiet=1", "abc");
    assert_eq!(status, 200, "{body}");
    let msg: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
    assert!(
        msg["error"].as_str().unwrap().contains("not a tar archive"),
        "{body}"
    );
    assert_eq!(msg["errorDetail"]["message"], msg["error"]);

    let check = |bad: &Path, needle: &str| {
        let before = store_state(&d);
        let out = d.docker(&["load", "-i", bad.to_str().unwrap()]);
        fails_with(&out, needle);
        assert_eq!(store_state(&d), before, "a failed load changed the store");
        assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    };

    // A layer whose bytes are another (valid) layer: not what its descriptor says.
    let other = hello_layer(d.dir.path(), "not the layer\n");
    let gz = Command::new("gzip").arg("-c").arg(&other).output().unwrap();
    assert!(gz.status.success());
    std::fs::write(&layer, &gz.stdout).unwrap();
    let bad = d.dir.path().join("bad-layer.tar");
    tar_dir(&x, &bad);
    check(&bad, &format!("blobs/sha256/{layer_hex}"));
    check(&bad, "does not match");

    // The right content compressed differently: it unpacks to the right layer, but the blob
    // is not the one its name promises (manifest.json alone, as a legacy loader reads it).
    let gz = Command::new("gzip")
        .arg("-9")
        .arg("-c")
        .arg(d.dir.path().join("busybox.tar"))
        .output()
        .unwrap();
    assert!(gz.status.success());
    std::fs::write(&layer, &gz.stdout).unwrap();
    std::fs::remove_file(x.join("index.json")).unwrap();
    let bad = d.dir.path().join("bad-digest.tar");
    tar_dir(&x, &bad);
    check(
        &bad,
        &format!("content does not match its digest: expected sha256:{layer_hex}"),
    );

    // Corrupt bytes in the middle of the real layer.
    untar(&archive, &x);
    let mut bytes = std::fs::read(&layer).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&layer, &bytes).unwrap();
    let corrupt = d.dir.path().join("corrupt.tar");
    tar_dir(&x, &corrupt);
    check(&corrupt, "invalid archive");

    // Cut short.
    let whole = std::fs::read(&archive).unwrap();
    let short = d.dir.path().join("short.tar");
    std::fs::write(&short, &whole[..whole.len() / 2]).unwrap();
    check(&short, "invalid archive");

    // Names that leave the archive, and links that do.
    let evil = d.dir.path().join("evil.tar");
    std::fs::write(
        &evil,
        raw_tar(&[("../../etc/evil", b"x"), ("manifest.json", b"[]")]),
    )
    .unwrap();
    check(&evil, "leaves the archive");
    std::fs::write(
        &evil,
        raw_tar(&[("/etc/evil", b"x"), ("manifest.json", b"[]")]),
    )
    .unwrap();
    check(&evil, "absolute path");

    // Not an archive at all; an archive without images.
    let junk = d.dir.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42u8; 4096]).unwrap();
    check(&junk, "invalid archive");
    std::fs::write(&junk, raw_tar(&[("hello.txt", b"hi")])).unwrap();
    check(&junk, "does not contain a manifest.json");

    // The good archive still loads after all that.
    let out = ok(&d.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: bb:latest");
    assert_eq!(ok(&d.docker(&["run", "--rm", "bb", "echo", "ok"])), "ok");
}

#[test]
fn prune_frees_snapshots_and_blobs() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::with_busybox();
    let bb = image_id(&d, "bb");
    let bb_snapshots = snapshots(&d);
    let bb_blobs = blobs(&d);

    // An unnamed image with a layer of its own, and one sharing bb's layer.
    let hello = hello_layer(d.dir.path(), "prune me\n");
    let own = ok(&d.docker(&["import", hello.to_str().unwrap()]));
    let shared = ok(&d.docker(&["import", d.dir.path().join("busybox.tar").to_str().unwrap()]));
    assert_eq!(snapshots(&d).len(), 2);
    assert!(blobs(&d).contains(&own[7..].to_owned()));

    let (status, body) = d.request(
        "POST",
        "/images/prune?filters=%7B%22dangling%22%3A%7B%22true%22%3Atrue%7D%7D",
    );
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut deleted: Vec<&str> = report["ImagesDeleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Deleted"].as_str().unwrap())
        .collect();
    deleted.sort();
    let mut want = vec![own.as_str(), shared.as_str()];
    want.sort();
    assert_eq!(deleted, want);
    assert!(report["SpaceReclaimed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(snapshots(&d), bb_snapshots, "bb's shared layer stays");
    assert_eq!(blobs(&d), bb_blobs);
    assert_eq!(image_id(&d, "bb"), bb);

    // -a: named images too, but not one a container uses.
    let cid = ok(&d.docker(&["create", "bb", "true"]));
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert_eq!(out, "Total reclaimed space: 0B");
    assert_eq!(image_id(&d, "bb"), bb);
    ok(&d.docker(&["rm", &cid]));
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert!(out.contains("untagged: bb:latest"), "{out}");
    assert!(out.contains(&format!("deleted: {bb}")), "{out}");
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    assert!(snapshots(&d).is_empty(), "{:?}", snapshots(&d));
    assert!(blobs(&d).is_empty(), "{:?}", blobs(&d));
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    let (status, body) = d.request(
        "POST",
        "/images/prune?filters=%7B%22before%22%3A%5B%22x%22%5D%7D",
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn import_from_a_url_fetches_the_tarball() {
    if !root_or_skip() {
        return;
    }
    let d = TestDaemon::start();
    let tarball = std::fs::read(busybox_tarball(d.dir.path())).unwrap();
    let port = HttpServer::serve(&[], tarball).port;
    let url = format!("http://127.0.0.1:{port}/rootfs.tar");
    let id = ok(&d.docker(&["import", &url, "fromurl:1"]));
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "fromurl:1", "sh", "-c", "echo imported"])),
        "imported"
    );
    // Nothing listens there: Docker's 500 naming the fetch, and no image.
    let closed = free_port();
    let out = d.docker(&[
        "import",
        &format!("http://127.0.0.1:{closed}/x.tar"),
        "nothere",
    ]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains(&format!("Get \"http://127.0.0.1:{closed}/x.tar\"")),
        "{}",
        err(&out)
    );
    assert!(d.docker(&["image", "inspect", "nothere"]).status.code() != Some(0));
    let uploads = d.dir.path().join("root/tmp");
    let left: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "uploads left: {left:?}");
}
