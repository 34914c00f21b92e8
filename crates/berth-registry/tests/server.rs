//! `berth registry serve` over HTTP: the distribution spec's pull, push, discovery and
//! management endpoints driven by a plain HTTP client, then interop with the reference tools
//! (skopeo, and Debian's `docker-registry`, the distribution project's server).
//!
//! Every test starts its own registry on 127.0.0.1:0 over a temporary root, stopped and
//! removed when the test ends, whether it passes or not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_registry::server::{Server, ServerConfig, TlsFiles};
use sha2::{Digest as _, Sha256};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

// ---------------------------------------------------------------------------------------
// Harness

/// A registry served in-process on its own runtime; stopped on drop.
struct Registry {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Registry {
    fn start() -> Registry {
        Registry::start_with(|_| {})
    }

    fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-test-")
            .tempdir()
            .unwrap();
        Registry::start_in(dir, configure)
    }

    /// Starts on an existing root (to see what survives a restart).
    fn start_in(dir: tempfile::TempDir, configure: impl FnOnce(&mut ServerConfig)) -> Registry {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("root"));
        configure(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime
            .block_on(Server::bind(config))
            .expect("bind the registry");
        let addr = server.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Registry {
            dir,
            addr,
            stop: Some(tx),
            runtime: Some(runtime),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Files left in the staging area.
    fn staging(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root().join("content/ingest"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    fn blob_file(&self, digest: &str) -> PathBuf {
        self.root()
            .join("content/blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    /// Stops the server and hands back its directory.
    fn stop(mut self) -> tempfile::TempDir {
        self.shutdown();
        let dir = tempfile::Builder::new().tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

type Resp = ureq::http::Response<ureq::Body>;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn header(r: &Resp, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn body(r: &mut Resp) -> Vec<u8> {
    r.body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap()
}

fn json(r: &mut Resp) -> serde_json::Value {
    serde_json::from_slice(&body(r)).unwrap()
}

/// The first error code of an error body.
fn error_code(r: &mut Resp) -> String {
    let v = json(r);
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn sha256(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn get(reg: &Registry, path: &str) -> Resp {
    agent().get(reg.url(path)).call().unwrap()
}

fn head(reg: &Registry, path: &str) -> Resp {
    agent().head(reg.url(path)).call().unwrap()
}

fn delete(reg: &Registry, path: &str) -> Resp {
    agent().delete(reg.url(path)).call().unwrap()
}

/// Monolithic upload in one POST; returns the digest.
fn push_blob(reg: &Registry, name: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let r = agent()
        .post(reg.url(&format!("/v2/{name}/blobs/uploads/?digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .send(data)
        .unwrap();
    assert_eq!(r.status(), 201, "monolithic push of {digest}");
    digest
}

fn push_manifest(reg: &Registry, name: &str, reference: &str, media_type: &str, m: &[u8]) -> Resp {
    agent()
        .put(reg.url(&format!("/v2/{name}/manifests/{reference}")))
        .header("Content-Type", media_type)
        .send(m)
        .unwrap()
}

fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({ "mediaType": media_type, "digest": sha256(data), "size": data.len() })
}

/// Pushes a small image (a config and one layer) to `name` as `tag`; returns the manifest.
fn push_image(reg: &Registry, name: &str, tag: &str, salt: &str) -> Vec<u8> {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","salt":"{salt}"}}"#).into_bytes();
    let layer = format!("layer of {salt}").into_bytes();
    push_blob(reg, name, &config);
    push_blob(reg, name, &layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": [descriptor(OCI_LAYER, &layer)],
    }))
    .unwrap();
    let r = push_manifest(reg, name, tag, OCI_MANIFEST, &manifest);
    assert_eq!(r.status(), 201);
    manifest
}

// ---------------------------------------------------------------------------------------
// The protocol

#[test]
fn base_endpoint_answers_with_the_api_version() {
    let reg = Registry::start();
    for path in ["/v2/", "/v2"] {
        let r = get(&reg, path);
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "Docker-Distribution-API-Version").as_deref(),
            Some("registry/2.0")
        );
    }
    let mut r = get(&reg, "/v2/nothing/here");
    assert_eq!(r.status(), 404);
    assert!(!error_code(&mut r).is_empty());
}

#[test]
fn monolithic_push_then_pull_by_tag_and_digest_with_head_and_ranges() {
    let reg = Registry::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&data);
    let r = agent()
        .post(reg.url(&format!("/v2/org/app/blobs/uploads/?digest={digest}")))
        .send(&data[..])
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        header(&r, "Location").unwrap(),
        format!("/v2/org/app/blobs/{digest}")
    );
    assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), digest);
    assert!(reg.blob_file(&digest).is_file());

    let r = head(&reg, &format!("/v2/org/app/blobs/{digest}"));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "Content-Length").unwrap(), "100000");
    assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), digest);

    let mut r = get(&reg, &format!("/v2/org/app/blobs/{digest}"));
    assert_eq!(r.status(), 200);
    assert_eq!(body(&mut r), data);

    // Ranges, as a resumed download asks.
    let blob = reg.url(&format!("/v2/org/app/blobs/{digest}"));
    let mut r = agent()
        .get(&blob)
        .header("Range", "bytes=1000-")
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        header(&r, "Content-Range").unwrap(),
        "bytes 1000-99999/100000"
    );
    assert_eq!(body(&mut r), &data[1000..]);
    let mut r = agent()
        .get(&blob)
        .header("Range", "bytes=10-19")
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "Content-Length").unwrap(), "10");
    assert_eq!(body(&mut r), &data[10..20]);
    let r = agent()
        .get(&blob)
        .header("Range", "bytes=100000-")
        .call()
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "Content-Range").unwrap(), "bytes */100000");

    // The blob is not in another repository.
    let mut r = get(&reg, &format!("/v2/other/blobs/{digest}"));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "BLOB_UNKNOWN");

    // A manifest over it, by tag and by digest.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    push_blob(&reg, "org/app", config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor("application/vnd.docker.container.image.v1+json", config),
        "layers": [descriptor("application/vnd.docker.image.rootfs.diff.tar.gzip", &data)],
    }))
    .unwrap();
    let mdigest = sha256(&manifest);
    let r = push_manifest(&reg, "org/app", "v1", DOCKER_MANIFEST, &manifest);
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), mdigest);
    assert_eq!(
        header(&r, "Location").unwrap(),
        format!("/v2/org/app/manifests/{mdigest}")
    );
    for reference in ["v1", mdigest.as_str()] {
        let mut r = get(&reg, &format!("/v2/org/app/manifests/{reference}"));
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "Content-Type").unwrap(), DOCKER_MANIFEST);
        assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), mdigest);
        assert_eq!(body(&mut r), manifest, "stored byte for byte");
        let r = head(&reg, &format!("/v2/org/app/manifests/{reference}"));
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "Content-Length").unwrap(),
            manifest.len().to_string()
        );
        assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), mdigest);
    }
    // Pushing by digest with tags.
    let r = agent()
        .put(reg.url(&format!("/v2/org/app/manifests/{mdigest}?tag=a&tag=b")))
        .header("Content-Type", DOCKER_MANIFEST)
        .send(&manifest[..])
        .unwrap();
    assert_eq!(r.status(), 201);
    let oci_tags: Vec<_> = r.headers().get_all("OCI-Tag").iter().collect();
    assert_eq!(oci_tags.len(), 2);
    let mut r = get(&reg, "/v2/org/app/tags/list");
    assert_eq!(json(&mut r)["tags"], serde_json::json!(["a", "b", "v1"]));
}

#[test]
fn chunked_push_with_ranges_and_out_of_order_chunks() {
    let reg = Registry::start();
    let data: Vec<u8> = (0..30u8).collect();
    let digest = sha256(&data);
    let r = agent()
        .post(reg.url("/v2/chunks/blobs/uploads/"))
        .header("Content-Length", "0")
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = header(&r, "Location").unwrap();
    let uuid = header(&r, "Docker-Upload-UUID").unwrap();
    assert!(location.ends_with(&uuid), "{location}");
    assert_eq!(header(&r, "Range").unwrap(), "0-0");

    let patch = |loc: &str, range: &str, chunk: &[u8]| {
        agent()
            .patch(reg.url(loc))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", range)
            .send(chunk)
            .unwrap()
    };
    let r = patch(&location, "0-9", &data[..10]);
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "Range").unwrap(), "0-9");
    let location = header(&r, "Location").unwrap();

    // A chunk that does not start where the data ends: 416, and nothing changes.
    let r = patch(&location, "20-29", &data[20..]);
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "Range").unwrap(), "0-9");
    let r = patch(&location, "5-14", &data[5..15]);
    assert_eq!(r.status(), 416);
    // Where does it stand? GET says.
    let r = get(&reg, &location);
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "Range").unwrap(), "0-9");
    assert_eq!(header(&r, "Docker-Upload-UUID").unwrap(), uuid);

    let r = patch(&location, "10-19", &data[10..20]);
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "Range").unwrap(), "0-19");
    // The last chunk comes with the closing PUT.
    let r = agent()
        .put(reg.url(&format!("{location}?digest={digest}")))
        .header("Content-Range", "20-29")
        .send(&data[20..])
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), digest);
    let mut r = get(&reg, &header(&r, "Location").unwrap());
    assert_eq!(body(&mut r), data);
    // The session is over.
    let mut r = get(&reg, &location);
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "BLOB_UPLOAD_UNKNOWN");
    assert!(reg.staging().is_empty());

    // Docker's way: one PATCH streaming the whole blob without Content-Range, empty PUT.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let big_digest = sha256(&big);
    let r = agent()
        .post(reg.url("/v2/chunks/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let location = header(&r, "Location").unwrap();
    let r = agent().patch(reg.url(&location)).send(&big[..]).unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(header(&r, "Range").unwrap(), format!("0-{}", big.len() - 1));
    let location = header(&r, "Location").unwrap();
    let r = agent()
        .put(reg.url(&format!("{location}?digest={big_digest}")))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(std::fs::read(reg.blob_file(&big_digest)).unwrap(), big);

    // A cancelled upload leaves nothing.
    let r = agent()
        .post(reg.url("/v2/chunks/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let location = header(&r, "Location").unwrap();
    patch(&location, "0-9", &data[..10]);
    assert_eq!(reg.staging().len(), 1);
    assert_eq!(delete(&reg, &location).status(), 204);
    assert!(reg.staging().is_empty());
    assert_eq!(get(&reg, &location).status(), 404);
}

#[test]
fn an_interrupted_chunk_leaves_the_upload_resumable() {
    use std::io::Write;
    let reg = Registry::start();
    let data: Vec<u8> = (0..100u8).collect();
    let digest = sha256(&data);
    let r = agent()
        .post(reg.url("/v2/resume/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let location = header(&r, "Location").unwrap();
    let r = agent()
        .patch(reg.url(&location))
        .header("Content-Range", "0-9")
        .send(&data[..10])
        .unwrap();
    assert_eq!(r.status(), 202);
    // A chunk announced as 90 bytes whose connection ends after 40.
    let mut conn = std::net::TcpStream::connect(reg.addr).unwrap();
    write!(
        conn,
        "PATCH {location} HTTP/1.1\r\nHost: {}\r\nContent-Range: 10-99\r\nContent-Length: 90\r\n\r\n",
        reg.host()
    )
    .unwrap();
    conn.write_all(&data[10..50]).unwrap();
    conn.shutdown(std::net::Shutdown::Write).unwrap();
    drop(conn);
    // The upload is where it was before that chunk (the status waits for the chunk's end).
    let r = get(&reg, &location);
    assert_eq!(r.status(), 204);
    assert_eq!(header(&r, "Range").unwrap(), "0-9");
    let r = agent()
        .patch(reg.url(&location))
        .header("Content-Range", "10-99")
        .send(&data[10..])
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = agent()
        .put(reg.url(&format!("{location}?digest={digest}")))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(std::fs::read(reg.blob_file(&digest)).unwrap(), data);
}

#[test]
fn blobs_mount_across_repositories() {
    let reg = Registry::start();
    let digest = push_blob(&reg, "source/repo", b"shared layer");
    let r = agent()
        .post(reg.url(&format!(
            "/v2/target/blobs/uploads/?mount={digest}&from=source/repo"
        )))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        header(&r, "Location").unwrap(),
        format!("/v2/target/blobs/{digest}")
    );
    assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), digest);
    let mut r = get(&reg, &format!("/v2/target/blobs/{digest}"));
    assert_eq!(body(&mut r), b"shared layer");

    // Not in `from`: an ordinary upload session starts instead.
    let missing = sha256(b"nowhere");
    let r = agent()
        .post(reg.url(&format!(
            "/v2/target/blobs/uploads/?mount={missing}&from=source/repo"
        )))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(header(&r, "Location")
        .unwrap()
        .starts_with("/v2/target/blobs/uploads/"));
    let r = agent()
        .post(reg.url(&format!(
            "/v2/third/blobs/uploads/?mount={digest}&from=nosuch"
        )))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[test]
fn tags_and_catalog_paginate_with_link_headers() {
    let reg = Registry::start();
    let manifest = push_image(&reg, "pages", "t0", "x");
    let digest = sha256(&manifest);
    for tag in ["t3", "t1", "t4", "t2", "T9"] {
        let r = push_manifest(&reg, "pages", tag, OCI_MANIFEST, &manifest);
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "Docker-Content-Digest").unwrap(), digest);
    }
    let mut r = get(&reg, "/v2/pages/tags/list");
    assert_eq!(r.status(), 200);
    assert!(header(&r, "Link").is_none());
    assert_eq!(
        json(&mut r),
        serde_json::json!({"name": "pages", "tags": ["T9", "t0", "t1", "t2", "t3", "t4"]})
    );
    // Page by page, following Link.
    let mut seen = Vec::new();
    let mut next = Some("/v2/pages/tags/list?n=4".to_owned());
    while let Some(path) = next.take() {
        let mut r = get(&reg, &path);
        assert_eq!(r.status(), 200);
        next = header(&r, "Link").map(|l| {
            assert!(l.ends_with("; rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_owned()
        });
        let page = json(&mut r)["tags"].as_array().unwrap().clone();
        assert!(page.len() <= 4);
        seen.extend(page.into_iter().map(|t| t.as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, ["T9", "t0", "t1", "t2", "t3", "t4"]);
    let mut r = get(&reg, "/v2/pages/tags/list?n=2&last=t1");
    assert_eq!(json(&mut r)["tags"], serde_json::json!(["t2", "t3"]));
    let mut r = get(&reg, "/v2/pages/tags/list?last=t3");
    assert_eq!(json(&mut r)["tags"], serde_json::json!(["t4"]));
    let mut r = get(&reg, "/v2/pages/tags/list?n=0");
    assert!(header(&r, "Link").is_none());
    assert_eq!(json(&mut r)["tags"], serde_json::json!([]));
    let mut r = get(&reg, "/v2/unknown/tags/list");
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "NAME_UNKNOWN");

    // The catalog.
    push_blob(&reg, "b/two", b"2");
    push_blob(&reg, "a/one", b"1");
    let mut r = get(&reg, "/v2/_catalog");
    assert_eq!(
        json(&mut r)["repositories"],
        serde_json::json!(["a/one", "b/two", "pages"])
    );
    let mut r = get(&reg, "/v2/_catalog?n=2");
    assert_eq!(
        header(&r, "Link").unwrap(),
        "</v2/_catalog?last=b/two&n=2>; rel=\"next\""
    );
    assert_eq!(
        json(&mut r)["repositories"],
        serde_json::json!(["a/one", "b/two"])
    );
    let mut r = get(&reg, "/v2/_catalog?n=2&last=b/two");
    assert!(header(&r, "Link").is_none());
    assert_eq!(json(&mut r)["repositories"], serde_json::json!(["pages"]));
}

#[test]
fn deletes_remove_tags_manifests_and_blobs() {
    let reg = Registry::start();
    let manifest = push_image(&reg, "del", "keep", "d");
    let digest = sha256(&manifest);
    assert_eq!(
        push_manifest(&reg, "del", "gone", OCI_MANIFEST, &manifest).status(),
        201
    );

    // A tag.
    assert_eq!(delete(&reg, "/v2/del/manifests/gone").status(), 202);
    let mut r = get(&reg, "/v2/del/manifests/gone");
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "MANIFEST_UNKNOWN");
    assert_eq!(get(&reg, "/v2/del/manifests/keep").status(), 200);
    assert_eq!(delete(&reg, "/v2/del/manifests/gone").status(), 404);

    // The manifest: its tags go too, and its document when nothing else holds it.
    assert_eq!(
        delete(&reg, &format!("/v2/del/manifests/{digest}")).status(),
        202
    );
    assert_eq!(
        get(&reg, &format!("/v2/del/manifests/{digest}")).status(),
        404
    );
    assert_eq!(get(&reg, "/v2/del/manifests/keep").status(), 404);
    assert!(!reg.blob_file(&digest).exists());
    let mut r = get(&reg, "/v2/del/tags/list");
    assert_eq!(json(&mut r)["tags"], serde_json::json!([]));

    // A blob, which another repository also holds: the data stays until both let go.
    let layer = push_blob(&reg, "del", b"layer of d");
    push_blob(&reg, "other", b"layer of d");
    let r = delete(&reg, &format!("/v2/del/blobs/{layer}"));
    assert_eq!(r.status(), 202);
    let mut r = get(&reg, &format!("/v2/del/blobs/{layer}"));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "BLOB_UNKNOWN");
    assert!(reg.blob_file(&layer).exists());
    assert_eq!(get(&reg, &format!("/v2/other/blobs/{layer}")).status(), 200);
    assert_eq!(
        delete(&reg, &format!("/v2/other/blobs/{layer}")).status(),
        202
    );
    assert!(!reg.blob_file(&layer).exists());
    let mut r = delete(&reg, &format!("/v2/other/blobs/{layer}"));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "BLOB_UNKNOWN");
}

#[test]
fn digest_mismatch_is_rejected_and_leaves_nothing() {
    let reg = Registry::start();
    let claimed = sha256(b"what was promised");
    // Monolithic.
    let mut r = agent()
        .post(reg.url(&format!("/v2/bad/blobs/uploads/?digest={claimed}")))
        .send(&b"something else"[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "DIGEST_INVALID");
    // POST + PUT.
    let r = agent()
        .post(reg.url("/v2/bad/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let location = header(&r, "Location").unwrap();
    let mut r = agent()
        .put(reg.url(&format!("{location}?digest={claimed}")))
        .send(&b"something else"[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "DIGEST_INVALID");
    assert_eq!(get(&reg, &location).status(), 404, "the session is over");
    // A malformed digest.
    let mut r = agent()
        .post(reg.url("/v2/bad/blobs/uploads/?digest=sha256:1234"))
        .send(&b"x"[..])
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "DIGEST_INVALID");

    assert!(reg.staging().is_empty(), "{:?}", reg.staging());
    assert!(!reg.blob_file(&claimed).exists());
    assert!(!reg.blob_file(&sha256(b"something else")).exists());
    assert_eq!(get(&reg, &format!("/v2/bad/blobs/{claimed}")).status(), 404);
    // A manifest pushed by a digest that is not its own.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let mut r = push_manifest(&reg, "bad", &claimed, OCI_INDEX, manifest);
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "DIGEST_INVALID");
}

#[test]
fn manifests_must_be_valid_and_complete() {
    let reg = Registry::start();
    let mut r = get(&reg, "/v2/m/manifests/latest");
    assert_eq!(r.status(), 404);
    let v = json(&mut r);
    assert_eq!(v["errors"][0]["code"], "MANIFEST_UNKNOWN");
    assert_eq!(v["errors"][0]["message"], "manifest unknown");
    let mut r = get(&reg, &format!("/v2/m/manifests/{}", sha256(b"none")));
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&mut r), "MANIFEST_UNKNOWN");
    assert_eq!(head(&reg, "/v2/m/manifests/latest").status(), 404);

    // References to blobs the repository does not have.
    let config = br#"{"os":"linux"}"#;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [],
    }))
    .unwrap();
    let mut r = push_manifest(&reg, "m", "v1", OCI_MANIFEST, &manifest);
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "MANIFEST_BLOB_UNKNOWN");
    // Present in another repository is not enough.
    push_blob(&reg, "elsewhere", config);
    let mut r = push_manifest(&reg, "m", "v1", OCI_MANIFEST, &manifest);
    assert_eq!(error_code(&mut r), "MANIFEST_BLOB_UNKNOWN");
    push_blob(&reg, "m", config);
    assert_eq!(
        push_manifest(&reg, "m", "v1", OCI_MANIFEST, &manifest).status(),
        201
    );

    // An index needs its manifests.
    let index = |media_type: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [{
                "mediaType": OCI_MANIFEST, "digest": sha256(&manifest), "size": manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"}
            }],
        }))
        .unwrap()
    };
    let mut r = push_manifest(&reg, "other", "multi", OCI_INDEX, &index(OCI_INDEX));
    assert_eq!(error_code(&mut r), "MANIFEST_BLOB_UNKNOWN");
    for (tag, t) in [("oci", OCI_INDEX), ("docker", DOCKER_LIST)] {
        let doc = index(t);
        assert_eq!(push_manifest(&reg, "m", tag, t, &doc).status(), 201);
        let mut r = get(&reg, &format!("/v2/m/manifests/{tag}"));
        assert_eq!(header(&r, "Content-Type").unwrap(), t);
        assert_eq!(body(&mut r), doc);
    }

    // Not JSON, not a known kind, inconsistent type, schema 1, too big.
    for (content_type, doc) in [
        (OCI_MANIFEST, b"not json".to_vec()),
        (OCI_MANIFEST, br#"{"schemaVersion":2}"#.to_vec()),
        (OCI_INDEX, manifest.clone()),
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            br#"{"schemaVersion":1,"name":"m","tag":"x","fsLayers":[]}"#.to_vec(),
        ),
        (
            "application/x-whatever",
            br#"{"schemaVersion":2,"mediaType":"application/x-whatever"}"#.to_vec(),
        ),
    ] {
        let mut r = push_manifest(&reg, "m", "bad", content_type, &doc);
        assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(&doc));
        assert_eq!(error_code(&mut r), "MANIFEST_INVALID");
    }
    // Too big: 413, answered before the body is read (so the client may instead see the
    // connection close while it still sends).
    let huge = vec![b' '; 5 << 20];
    let sent = agent()
        .put(reg.url("/v2/m/manifests/huge"))
        .header("Content-Type", OCI_MANIFEST)
        .send(&huge[..]);
    if let Ok(r) = sent {
        assert_eq!(r.status(), 413);
    }
    assert_eq!(get(&reg, "/v2/m/manifests/huge").status(), 404);
    let mut r = push_manifest(&reg, "m", "-bad-tag", OCI_MANIFEST, &manifest);
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "MANIFEST_INVALID");
    // An OCI manifest without mediaType is taken by its Content-Type.
    let bare = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "config": descriptor(OCI_CONFIG, config), "layers": [],
    }))
    .unwrap();
    assert_eq!(
        push_manifest(&reg, "m", "bare", OCI_MANIFEST, &bare).status(),
        201
    );
    let r = get(&reg, "/v2/m/manifests/bare");
    assert_eq!(header(&r, "Content-Type").unwrap(), OCI_MANIFEST);
}

#[test]
fn bad_names_are_refused() {
    let reg = Registry::start();
    for path in [
        "/v2/UPPER/tags/list",
        "/v2/a..b/manifests/latest",
        "/v2/-x/blobs/uploads/",
        "/v2/x_/blobs/sha256:00",
        "/v2/a//b/tags/list",
    ] {
        let mut r = agent().get(reg.url(path)).call().unwrap();
        assert_eq!(r.status(), 400, "{path}");
        assert_eq!(error_code(&mut r), "NAME_INVALID", "{path}");
    }
    let mut r = agent()
        .post(reg.url("/v2/Bad/blobs/uploads/"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&mut r), "NAME_INVALID");
    let long = "a".repeat(256);
    let mut r = get(&reg, &format!("/v2/{long}/tags/list"));
    assert_eq!(error_code(&mut r), "NAME_INVALID");
    // A wrong method on a real endpoint.
    let mut r = agent()
        .post(reg.url("/v2/ok/tags/list"))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(error_code(&mut r), "UNSUPPORTED");
}

#[test]
fn htpasswd_basic_auth() {
    let dir = tempfile::Builder::new()
        .prefix("berth-registry-auth-")
        .tempdir()
        .unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("alice:{}\n", bcrypt::hash("wonderland", 5).unwrap()),
    )
    .unwrap();
    let reg = Registry::start_with(|c| c.htpasswd = Some(htpasswd.clone()));
    let mut r = get(&reg, "/v2/");
    assert_eq!(r.status(), 401);
    assert_eq!(
        header(&r, "WWW-Authenticate").unwrap(),
        "Basic realm=\"berth-registry\""
    );
    assert_eq!(error_code(&mut r), "UNAUTHORIZED");
    assert_eq!(get(&reg, "/v2/x/tags/list").status(), 401);

    use base64::Engine as _;
    let basic = |cred: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(cred)
        )
    };
    let with = |path: &str, cred: &str| {
        agent()
            .get(reg.url(path))
            .header("Authorization", basic(cred))
            .call()
            .unwrap()
    };
    assert_eq!(with("/v2/", "alice:wrong").status(), 401);
    assert_eq!(with("/v2/", "bob:wonderland").status(), 401);
    assert_eq!(with("/v2/", "alice:wonderland").status(), 200);
    assert_eq!(with("/v2/", "alice:wonderland").status(), 200);
    // A push with credentials.
    let digest = sha256(b"private");
    let r = agent()
        .post(reg.url(&format!("/v2/priv/blobs/uploads/?digest={digest}")))
        .header("Authorization", basic("alice:wonderland"))
        .send(&b"private"[..])
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(get(&reg, &format!("/v2/priv/blobs/{digest}")).status(), 401);
    assert_eq!(
        with(&format!("/v2/priv/blobs/{digest}"), "alice:wonderland").status(),
        200
    );
}

#[test]
fn concurrent_pushes_of_one_blob_both_succeed() {
    let reg = Registry::start();
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
    let digest = sha256(&data);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (reg, data, digest) = (&reg, &data, &digest);
                s.spawn(move || {
                    let name = if i % 2 == 0 { "same" } else { "twin" };
                    let r = agent()
                        .post(reg.url(&format!("/v2/{name}/blobs/uploads/")))
                        .send_empty()
                        .unwrap();
                    let location = header(&r, "Location").unwrap();
                    for (n, chunk) in data.chunks(1 << 20).enumerate() {
                        let start = n << 20;
                        let r = agent()
                            .patch(reg.url(&location))
                            .header(
                                "Content-Range",
                                format!("{start}-{}", start + chunk.len() - 1),
                            )
                            .send(chunk)
                            .unwrap();
                        assert_eq!(r.status(), 202);
                    }
                    agent()
                        .put(reg.url(&format!("{location}?digest={digest}")))
                        .send_empty()
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses, [201, 201, 201, 201]);
    assert_eq!(std::fs::read(reg.blob_file(&digest)).unwrap(), data);
    let blobs = std::fs::read_dir(reg.root().join("content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1);
    assert!(reg.staging().is_empty());
    for name in ["same", "twin"] {
        assert_eq!(
            head(&reg, &format!("/v2/{name}/blobs/{digest}")).status(),
            200
        );
    }
}

#[test]
fn repositories_survive_a_restart_and_unfinished_uploads_do_not() {
    let reg = Registry::start();
    let manifest = push_image(&reg, "persist/me", "v1", "p");
    let r = agent()
        .post(reg.url("/v2/persist/me/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let location = header(&r, "Location").unwrap();
    agent()
        .patch(reg.url(&location))
        .send(&b"half"[..])
        .unwrap();
    let dir = reg.stop();
    assert!(dir
        .path()
        .join("root/repositories/persist/me/_repo.json")
        .is_file());
    let reg = Registry::start_in(dir, |_| {});
    let mut r = get(&reg, "/v2/persist/me/manifests/v1");
    assert_eq!(r.status(), 200);
    assert_eq!(body(&mut r), manifest);
    assert_eq!(get(&reg, &location).status(), 404);
    assert!(reg.staging().is_empty());
}

// ---------------------------------------------------------------------------------------
// Interop with the reference tools

/// The path of `tool`, or a failure that says what to install.
fn require(tool: &str, package: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("this test needs `{tool}`: apt-get install {package} (scripts/deps.sh installs it)");
}

/// Runs skopeo with a private auth file, no system policy and a time limit.
fn skopeo(scratch: &Path, args: &[&str]) -> std::process::Output {
    let skopeo = require("skopeo", "skopeo");
    let out = Command::new("timeout")
        .arg("300")
        .arg(skopeo)
        .arg("--insecure-policy")
        .args(args)
        .env("REGISTRY_AUTH_FILE", scratch.join("auth.json"))
        .env("HOME", scratch)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    out
}

fn skopeo_ok(scratch: &Path, args: &[&str]) -> String {
    let out = skopeo(scratch, args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_blob(layout: &Path, data: &[u8]) -> String {
    let digest = sha256(data);
    let p = layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    std::fs::write(p, data).unwrap();
    digest
}

/// An OCI layout in `dir/layout` holding a busybox image (one gzip layer of berth-testutil's
/// busybox rootfs) for amd64 and arm64 under one index tagged `latest`, and the
/// amd64 manifest alone tagged `single`. Returns (index digest, amd64 manifest digest).
fn busybox_layout(dir: &Path) -> (PathBuf, String, String) {
    let rootfs = berth_testutil::busybox_rootfs(dir);
    let tar = dir.join("layer.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let layer_tar = std::fs::read(&tar).unwrap();
    let diff_id = sha256(&layer_tar);
    let gz = Command::new("gzip")
        .args(["-n", "-c"])
        .arg(&tar)
        .output()
        .unwrap();
    assert!(gz.status.success());
    let layer = gz.stdout;

    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let layer_digest = write_blob(&layout, &layer);
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap();
        write_blob(&layout, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, &config),
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let digest = write_blob(&layout, &manifest);
        manifests.push((arch, digest, manifest.len()));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests.iter().map(|(arch, d, size)| serde_json::json!({
            "mediaType": OCI_MANIFEST, "digest": d, "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let index_digest = write_blob(&layout, &index);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": OCI_INDEX, "digest": index_digest, "size": index.len(),
             "annotations": {"org.opencontainers.image.ref.name": "latest"}},
            {"mediaType": OCI_MANIFEST, "digest": manifests[0].1, "size": manifests[0].2,
             "annotations": {"org.opencontainers.image.ref.name": "single"}},
        ],
    });
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    (layout, index_digest, manifests[0].1.clone())
}

/// The digest `skopeo inspect` reports; `extra` are skopeo's global options (platform
/// overrides) then inspect's own.
fn inspect_digest(scratch: &Path, image: &str, extra: &[&str]) -> String {
    let (global, own): (Vec<&str>, Vec<&str>) = {
        let mut global = Vec::new();
        let mut own = Vec::new();
        let mut it = extra.iter();
        while let Some(a) = it.next() {
            let target = if a.starts_with("--override-") {
                &mut global
            } else {
                &mut own
            };
            target.push(*a);
            target.push(it.next().unwrap());
        }
        (global, own)
    };
    let mut args = global;
    args.extend(["inspect", "--tls-verify=false"]);
    args.extend(own);
    args.push(image);
    let out = skopeo_ok(scratch, &args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["Digest"].as_str().unwrap().to_owned()
}

/// Debian's `docker-registry` (distribution) on a free loopback port; killed on drop.
struct ReferenceRegistry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl ReferenceRegistry {
    fn start() -> ReferenceRegistry {
        let bin = require("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("berth-docker-registry-")
            .tempdir()
            .unwrap();
        // A port the kernel just gave out and took back; nothing else here listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reg = ReferenceRegistry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = agent().get(format!("http://{}/v2/", reg.addr)).call() {
                if r.status() == 200 {
                    break;
                }
            }
            if let Ok(Some(st)) = reg.child.try_wait() {
                panic!("docker-registry exited: {st}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}

impl Drop for ReferenceRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn skopeo_copies_an_oci_layout_in_and_out() {
    let scratch = tempfile::Builder::new()
        .prefix("berth-skopeo-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let (layout, index_digest, amd64_digest) = busybox_layout(s);
    let reg = Registry::start();
    let host = reg.host();
    let layout_ref = |tag: &str| format!("oci:{}:{tag}", layout.display());

    // The whole index (both platforms), and one manifest alone.
    skopeo_ok(
        s,
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &layout_ref("latest"),
            &format!("docker://{host}/library/busybox:latest"),
        ],
    );
    skopeo_ok(
        s,
        &[
            "copy",
            "--dest-tls-verify=false",
            &layout_ref("single"),
            &format!("docker://{host}/busybox:single"),
        ],
    );
    // skopeo sees what we stored.
    let raw = skopeo_ok(
        s,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{host}/library/busybox:latest"),
        ],
    );
    assert_eq!(sha256(raw.as_bytes()), index_digest);
    assert_eq!(
        inspect_digest(s, &format!("docker://{host}/busybox:single"), &[]),
        amd64_digest
    );
    // Through the index, skopeo reads the amd64 image but reports the index's digest.
    assert_eq!(
        inspect_digest(
            s,
            &format!("docker://{host}/library/busybox:latest"),
            &["--override-arch", "amd64", "--override-os", "linux"]
        ),
        index_digest
    );
    let by_digest = format!("docker://{host}/library/busybox@{amd64_digest}");
    assert_eq!(inspect_digest(s, &by_digest, &[]), amd64_digest);
    let tags = skopeo_ok(
        s,
        &[
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{host}/library/busybox"),
        ],
    );
    assert!(tags.contains("\"latest\""), "{tags}");

    // And back out, byte for byte.
    let out = s.join("out");
    skopeo_ok(
        s,
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{host}/library/busybox:latest"),
            &format!("oci:{}:copied", out.display()),
        ],
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], index_digest.as_str());
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let copied = out.join("blobs/sha256").join(entry.file_name());
        assert_eq!(
            std::fs::read(&copied).unwrap(),
            std::fs::read(entry.path()).unwrap(),
            "{}",
            copied.display()
        );
    }
    assert!(reg.staging().is_empty());
}

#[test]
fn skopeo_copies_between_berth_and_docker_registry() {
    let scratch = tempfile::Builder::new()
        .prefix("berth-skopeo-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let (layout, index_digest, amd64_digest) = busybox_layout(s);
    let berth = Registry::start();
    let reference = ReferenceRegistry::start();
    let (b, d) = (berth.host(), reference.addr.clone());
    let layout_ref = format!("oci:{}:latest", layout.display());
    skopeo_ok(
        s,
        &[
            "copy",
            "--all",
            "--dest-tls-verify=false",
            &layout_ref,
            &format!("docker://{b}/bb:v1"),
        ],
    );

    // berth → docker-registry.
    skopeo_ok(
        s,
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{b}/bb:v1"),
            &format!("docker://{d}/mirror/bb:v1"),
        ],
    );
    for host in [&b, &d] {
        let image = if host == &b {
            format!("docker://{b}/bb:v1")
        } else {
            format!("docker://{d}/mirror/bb:v1")
        };
        let raw = skopeo_ok(s, &["inspect", "--raw", "--tls-verify=false", &image]);
        assert_eq!(sha256(raw.as_bytes()), index_digest, "{image}");
        assert_eq!(inspect_digest(s, &image, &[]), index_digest, "{image}");
        let amd64 = format!("{}@{amd64_digest}", image.rsplit_once(':').unwrap().0);
        assert_eq!(inspect_digest(s, &amd64, &[]), amd64_digest, "{amd64}");
    }

    // docker-registry → berth, under another name.
    skopeo_ok(
        s,
        &[
            "copy",
            "--all",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{d}/mirror/bb:v1"),
            &format!("docker://{b}/back/bb:v2"),
        ],
    );
    let raw = skopeo_ok(
        s,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{b}/back/bb:v2"),
        ],
    );
    assert_eq!(sha256(raw.as_bytes()), index_digest);
    // A single-platform copy in Docker's format converts the manifest; both registries agree
    // on the result.
    skopeo_ok(
        s,
        &[
            "--override-arch",
            "amd64",
            "--override-os",
            "linux",
            "copy",
            "--format",
            "v2s2",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{d}/mirror/bb:v1"),
            &format!("docker://{b}/docker/bb:v2s2"),
        ],
    );
    let mut r = get(&berth, "/v2/docker/bb/manifests/v2s2");
    assert_eq!(header(&r, "Content-Type").unwrap(), DOCKER_MANIFEST);
    let converted = body(&mut r);
    skopeo_ok(
        s,
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{b}/docker/bb:v2s2"),
            &format!("docker://{d}/docker/bb:v2s2"),
        ],
    );
    assert_eq!(
        inspect_digest(s, &format!("docker://{d}/docker/bb:v2s2"), &[]),
        sha256(&converted)
    );
    let mut catalog = get(&berth, "/v2/_catalog");
    assert_eq!(
        json(&mut catalog)["repositories"],
        serde_json::json!(["back/bb", "bb", "docker/bb"])
    );
    assert!(berth.staging().is_empty());
}

#[test]
fn skopeo_over_tls_with_basic_auth() {
    let scratch = tempfile::Builder::new()
        .prefix("berth-skopeo-tls-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    let (layout, _index, amd64_digest) = busybox_layout(s);
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert_path, key_path) = (s.join("cert.pem"), s.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let htpasswd = s.join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("tester:{}\n", bcrypt::hash("pw", 5).unwrap()),
    )
    .unwrap();
    let reg = Registry::start_with(|c| {
        c.tls = Some(TlsFiles {
            cert: cert_path.clone(),
            key: key_path.clone(),
        });
        c.htpasswd = Some(htpasswd.clone());
    });
    let host = reg.host();
    let target = format!("docker://{host}/secure/bb:v1");
    let source = format!("oci:{}:single", layout.display());
    // Without credentials: refused.
    let out = skopeo(s, &["copy", "--dest-tls-verify=false", &source, &target]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.contains("unauthorized") || err.contains("authentication required"),
        "{err}"
    );
    skopeo_ok(
        s,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "tester:pw",
            &source,
            &target,
        ],
    );
    assert_eq!(
        inspect_digest(s, &target, &["--creds", "tester:pw"]),
        amd64_digest
    );
    // Plain HTTP to a TLS port gets nothing.
    assert!(agent().get(reg.url("/v2/")).call().is_err());
}
