//! The registry client against Debian's reference registry (`docker-registry`) and against
//! small registries the tests run themselves on 127.0.0.1 (a bearer-token registry, one that
//! breaks a download halfway, one that serves corrupt bytes), plus a byte-counting proxy.
//! Images are made here: a busybox rootfs (from Debian's busybox-static) as a gzip layer.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use berth_core::{Digest, Reference};
use berth_image::load::digest_of;
use berth_image::oci::{
    host_platform, Descriptor, ImageIndex, Manifest, Platform, DOCKER_CONFIG, DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST, MEDIA_INDEX,
};
use berth_image::store::ImageStore;
use berth_registry::client::{
    logout, parse_platform, reference_for_pull, AuthConfig, Client, ClientOptions, DockerConfig,
    LayerState, Progress, PullOptions, PushOptions, RegistryError,
};
use berth_testutil::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// Images made by the tests

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A layer: the uncompressed tar's digest (diff ID) and the gzip bytes.
#[derive(Clone)]
struct Layer {
    diff_id: Digest,
    gz: Vec<u8>,
}

fn layer_of(tar: Vec<u8>) -> Layer {
    Layer {
        diff_id: digest_of(&tar),
        gz: gzip(&tar),
    }
}

/// `bin/busybox` (Debian's static one) and `bin/sh` → busybox.
fn busybox_layer() -> Layer {
    static LAYER: OnceLock<Layer> = OnceLock::new();
    LAYER
        .get_or_init(|| {
            let bin = berth_testutil::busybox();
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, "bin/", std::io::empty()).unwrap();
            let data = std::fs::read(bin).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, "bin/busybox", &data[..]).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, "bin/sh", "busybox").unwrap();
            layer_of(b.into_inner().unwrap())
        })
        .clone()
}

/// A layer with one small file.
fn file_layer(name: &str, content: &[u8]) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(content.len() as u64);
    b.append_data(&mut h, name, content).unwrap();
    layer_of(b.into_inner().unwrap())
}

/// An image's documents and blobs.
#[derive(Clone)]
struct Image {
    layers: Vec<(Descriptor, Vec<u8>)>,
    config: (Descriptor, Vec<u8>),
    manifest: (Descriptor, Vec<u8>),
}

fn image(layers: &[Layer], arch: &str, variant: Option<&str>) -> Image {
    let variant_json = variant.map_or(String::new(), |v| format!(r#","variant":"{v}""#));
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("\"{}\"", l.diff_id))
        .collect();
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux"{variant_json},"config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes();
    let config_desc = Descriptor::new(DOCKER_CONFIG, digest_of(&config), config.len() as u64);
    let layers: Vec<(Descriptor, Vec<u8>)> = layers
        .iter()
        .map(|l| {
            (
                Descriptor::new(DOCKER_LAYER_GZIP, digest_of(&l.gz), l.gz.len() as u64),
                l.gz.clone(),
            )
        })
        .collect();
    let manifest = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(DOCKER_MANIFEST.into()),
        config: config_desc.clone(),
        layers: layers.iter().map(|(d, _)| d.clone()).collect(),
        annotations: Default::default(),
    })
    .unwrap();
    let mut manifest_desc =
        Descriptor::new(DOCKER_MANIFEST, digest_of(&manifest), manifest.len() as u64);
    manifest_desc.platform = Some(Platform {
        architecture: arch.into(),
        os: "linux".into(),
        variant: variant.map(str::to_owned),
    });
    Image {
        layers,
        config: (config_desc, config),
        manifest: (manifest_desc, manifest),
    }
}

fn index_of(images: &[&Image]) -> (Digest, Vec<u8>) {
    let bytes = serde_json::to_vec(&ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.into()),
        manifests: images.iter().map(|i| i.manifest.0.clone()).collect(),
        annotations: Default::default(),
    })
    .unwrap();
    (digest_of(&bytes), bytes)
}

/// Puts an image's blobs into a store's content, as a build or load would leave them.
fn store_image(store: &ImageStore, img: &Image) {
    for (_, bytes) in img.layers.iter().chain([&img.config, &img.manifest]) {
        store.content.put(bytes).unwrap();
    }
}

fn open_store() -> (tempfile::TempDir, Arc<ImageStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ImageStore::open(dir.path()).unwrap());
    (dir, store)
}

/// Collects progress events.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Progress>>>);

impl Events {
    fn sink(&self) -> impl Fn(Progress) + Send + Sync + 'static {
        let me = self.clone();
        move |p| me.0.lock().unwrap().push(p)
    }
    fn all(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
    fn messages(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .filter_map(|p| match p {
                Progress::Message { text, .. } => Some(text),
                _ => None,
            })
            .collect()
    }
    /// The states layer `id` went through, without repeated progress counts.
    fn states(&self, id: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in self.all() {
            if let Progress::Layer { id: i, state } = p {
                if i == id {
                    let s = state.status();
                    if out.last() != Some(&s) {
                        out.push(s);
                    }
                }
            }
        }
        out
    }
    fn any_layer(&self, f: impl Fn(&LayerState) -> bool) -> bool {
        self.all()
            .iter()
            .any(|p| matches!(p, Progress::Layer { state, .. } if f(state)))
    }
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_owned()
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Debian's docker-registry

/// A `docker-registry serve` on 127.0.0.1, stopped (and its files removed) when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        let bin = Path::new("/usr/bin/docker-registry");
        assert!(
            bin.is_file(),
            "these tests need Debian's reference registry: apt-get install docker-registry"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let auth = match htpasswd {
            Some((user, password)) => {
                let hash = bcrypt::hash_with_result(password, 4)
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoA);
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: berth-test-secret\n{auth}",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = std::process::Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry exited ({status}): {log}");
            }
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(options: ClientOptions) -> Client {
    Client::new(options).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Push and pull through docker-registry

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_round_trips_through_docker_registry() {
    let reg = Registry::start(None);
    let busybox = busybox_layer();
    let img = image(
        &[busybox.clone(), file_layer("etc/motd", b"hello")],
        "amd64",
        None,
    );
    let (_d1, src) = open_store();
    store_image(&src, &img);
    let meta = tempfile::tempdir().unwrap();
    // Small limits, so the busybox layer goes up in chunks and the rest in one PUT each.
    let pusher = client(ClientOptions {
        monolithic_upload_limit: 64 * 1024,
        upload_chunk_size: 256 * 1024,
        metadata_dir: Some(meta.path().to_path_buf()),
        ..Default::default()
    });
    let name = reference(&format!("{}/busybox:latest", reg.addr));
    let pushed_events = Events::default();
    let pushed = pusher
        .push(
            &src,
            &name,
            &img.manifest.0.digest,
            &PushOptions::default(),
            pushed_events.sink(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, img.manifest.0.digest);
    assert_eq!(pushed.size, img.manifest.1.len() as u64);
    let bb = short(&busybox.diff_id);
    assert_eq!(
        pushed_events.states(&bb),
        ["Preparing", "Pushing", "Pushed"]
    );
    let messages = pushed_events.messages();
    assert_eq!(
        messages[0],
        format!("The push refers to repository [{}/busybox]", reg.addr)
    );
    assert_eq!(
        messages.last().unwrap(),
        &format!(
            "latest: digest: {} size: {}",
            pushed.digest,
            img.manifest.1.len()
        )
    );
    assert!(
        matches!(pushed_events.all().last(), Some(Progress::Pushed { tag, .. }) if tag == "latest")
    );

    // The registry has exactly our manifest.
    let remote = pusher.inspect_manifest(&name, None).await.unwrap();
    assert_eq!(remote.bytes, img.manifest.1);
    assert_eq!(remote.media_type, DOCKER_MANIFEST);
    let info = pusher.distribution_inspect(&name, None).await.unwrap();
    assert_eq!(info.descriptor.digest, img.manifest.0.digest);
    assert_eq!(info.platforms[0].architecture, "amd64");

    // Pushing again uploads nothing; another repository mounts the layers.
    let again = Events::default();
    pusher
        .push(
            &src,
            &name,
            &img.manifest.0.digest,
            &PushOptions::default(),
            again.sink(),
        )
        .await
        .unwrap();
    assert_eq!(again.states(&bb), ["Preparing", "Layer already exists"]);
    let other = reference(&format!("{}/copies/busybox:v1", reg.addr));
    let mounted = Events::default();
    pusher
        .push(
            &src,
            &other,
            &img.manifest.0.digest,
            &PushOptions::default(),
            mounted.sink(),
        )
        .await
        .unwrap();
    assert_eq!(mounted.states(&bb), ["Preparing", "Mounted from busybox"]);
    assert_eq!(
        pusher.list_tags(&other, None).await.unwrap(),
        vec!["v1".to_owned()]
    );

    // Pull into a fresh store: same digests, the image named and unpacked.
    let (_d2, dst) = open_store();
    let puller = client(ClientOptions::default());
    let events = Events::default();
    let pulled = puller
        .pull(&dst, &name, &PullOptions::default(), events.sink())
        .await
        .unwrap();
    assert_eq!(pulled.digest, img.manifest.0.digest);
    assert_eq!(pulled.manifest, img.manifest.0.digest);
    assert_eq!(pulled.config, img.config.0.digest);
    assert_eq!(
        pulled.layers.iter().map(|l| &l.digest).collect::<Vec<_>>(),
        img.layers
            .iter()
            .map(|(d, _)| &d.digest)
            .collect::<Vec<_>>()
    );
    assert!(pulled.updated);
    for (d, bytes) in &img.layers {
        assert_eq!(&dst.content.read_blob(&d.digest).unwrap(), bytes);
    }
    assert_eq!(dst.lookup(&name.to_string()).unwrap(), img.config.0.digest);
    let by_digest = format!("{}/busybox@{}", reg.addr, img.manifest.0.digest);
    assert_eq!(dst.lookup(&by_digest).unwrap(), img.config.0.digest);
    let view = dst.view(&name.to_string()).unwrap();
    let lowers = dst.lower_dirs(&view.config).unwrap();
    assert_eq!(
        std::fs::read(lowers.last().unwrap().join("bin/busybox")).unwrap(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert_eq!(std::fs::read(lowers[0].join("etc/motd")).unwrap(), b"hello");
    let layer_id = short(&img.layers[0].0.digest);
    let states = events.states(&layer_id);
    assert_eq!(states.first().map(String::as_str), Some("Pulling fs layer"));
    for s in [
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
    ] {
        assert!(states.iter().any(|x| x == s), "{s} missing in {states:?}");
    }
    assert_eq!(states.last().map(String::as_str), Some("Pull complete"));
    let messages = events.messages();
    assert_eq!(messages[0], "Pulling from busybox");
    assert_eq!(
        &messages[1..],
        [
            format!("Digest: {}", img.manifest.0.digest),
            format!(
                "Status: Downloaded newer image for {}/busybox:latest",
                reg.addr
            )
        ]
    );
    // Nothing was left staged.
    assert_eq!(
        std::fs::read_dir(_d2.path().join("content/ingest"))
            .unwrap()
            .count(),
        0
    );

    // Again: every layer is there already.
    let events = Events::default();
    let pulled = puller
        .pull(&dst, &name, &PullOptions::default(), events.sink())
        .await
        .unwrap();
    assert!(!pulled.updated);
    assert_eq!(events.states(&layer_id), ["Already exists"]);
    assert_eq!(
        events.messages().last().unwrap(),
        &format!(
            "Status: Image is up to date for {}/busybox:latest",
            reg.addr
        )
    );

    // An unknown tag, in Docker's words.
    let err = puller
        .pull(
            &dst,
            &reference(&format!("{}/busybox:nosuch", reg.addr)),
            &PullOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest for {}/busybox:nosuch not found: manifest unknown: manifest unknown",
            reg.addr
        )
    );
    let err = puller
        .inspect_manifest(&reference(&format!("{}/busybox:nosuch", reg.addr)), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("no such manifest: {}/busybox:nosuch", reg.addr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_index_pulls_the_right_manifest() {
    let reg = Registry::start(None);
    let amd = image(&[busybox_layer()], "amd64", None);
    let arm = image(
        &[busybox_layer(), file_layer("arch", b"arm64")],
        "arm64",
        Some("v8"),
    );
    let (index_digest, index_bytes) = index_of(&[&amd, &arm]);
    let (_d, src) = open_store();
    store_image(&src, &amd);
    store_image(&src, &arm);
    src.content.put(&index_bytes).unwrap();
    let c = client(ClientOptions::default());
    let name = reference(&format!("{}/multi:latest", reg.addr));
    let pushed = c
        .push(&src, &name, &index_digest, &PushOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(pushed.digest, index_digest);
    let remote = c.inspect_manifest(&name, None).await.unwrap();
    assert_eq!(remote.media_type, MEDIA_INDEX);
    assert_eq!(remote.bytes, index_bytes);
    let info = c.distribution_inspect(&name, None).await.unwrap();
    assert_eq!(info.platforms.len(), 2);

    // This host's platform by default.
    let (_d1, dst) = open_store();
    let pulled = c
        .pull(&dst, &name, &PullOptions::default(), |_| {})
        .await
        .unwrap();
    let expected = match host_platform().1 {
        "arm64" => &arm,
        _ => &amd,
    };
    assert_eq!(
        pulled.digest, index_digest,
        "the repo digest is the index's"
    );
    assert_eq!(pulled.manifest, expected.manifest.0.digest);
    assert_eq!(pulled.config, expected.config.0.digest);
    let repo_digest = format!("{}/multi@{index_digest}", reg.addr);
    assert_eq!(dst.lookup(&repo_digest).unwrap(), expected.config.0.digest);

    // Another platform when asked.
    let (_d2, dst) = open_store();
    let pulled = c
        .pull(
            &dst,
            &name,
            &PullOptions {
                platform: Some(parse_platform("linux/arm64").unwrap()),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(pulled.config, arm.config.0.digest);
    assert_eq!(pulled.platform.architecture, "arm64");
    assert_eq!(pulled.layers.len(), 2);

    // A platform the index does not have is refused, naming what it has.
    let events = Events::default();
    let err = c
        .pull(
            &dst,
            &name,
            &PullOptions {
                platform: Some(parse_platform("linux/s390x").unwrap()),
                ..Default::default()
            },
            events.sink(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NoMatchingManifest { .. }));
    assert_eq!(
        err.to_string(),
        "no matching manifest for linux/s390x in the manifest list entries \
         (available: linux/amd64, linux/arm64)"
    );
    assert!(!events.any_layer(|_| true), "nothing was downloaded");

    // A single-platform image pulled for another platform is refused too.
    let single = reference(&format!("{}/single:latest", reg.addr));
    c.push(
        &src,
        &single,
        &amd.manifest.0.digest,
        &PushOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    let err = c
        .pull(
            &dst,
            &single,
            &PullOptions {
                platform: Some(parse_platform("linux/arm64").unwrap()),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_then_pull_from_a_registry_that_requires_it() {
    let reg = Registry::start(Some(("alice", "s3cret")));
    let img = image(&[file_layer("private", b"data")], "amd64", None);
    let (_d, src) = open_store();
    store_image(&src, &img);
    let name = reference(&format!("{}/private/app:1", reg.addr));
    let c = client(ClientOptions::default());

    // Pushing without credentials is refused; with them it works.
    let err = c
        .push(
            &src,
            &name,
            &img.manifest.0.digest,
            &PushOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unauthorized"), "{err}");
    c.push(
        &src,
        &name,
        &img.manifest.0.digest,
        &PushOptions {
            auth: Some(AuthConfig::basic("alice", "s3cret")),
        },
        |_| {},
    )
    .await
    .unwrap();

    // Without a login: Docker's message.
    let (_d1, dst) = open_store();
    let err = c
        .pull(&dst, &name, &PullOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "pull access denied for {}/private/app, repository does not exist or may require \
             'docker login': unauthorized: authentication required",
            reg.addr
        )
    );

    // A wrong password is refused and nothing is stored.
    let home = tempfile::tempdir().unwrap();
    let config_path = home.path().join(".docker/config.json");
    let config = DockerConfig::new(&config_path);
    let err = c
        .login(&reg.addr, &AuthConfig::basic("alice", "wrong"), &config)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )
    );
    assert!(!config_path.exists());

    // Login stores base64 user:password in config.json, mode 0600.
    let outcome = c
        .login(&reg.addr, &AuthConfig::basic("alice", "s3cret"), &config)
        .await
        .unwrap();
    assert_eq!(outcome.status, "Login Succeeded");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
    assert_eq!(doc["auths"][&reg.addr]["auth"], "YWxpY2U6czNjcmV0");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // A client reading that file pulls.
    let with_config = client(ClientOptions {
        docker_config: Some(config.clone()),
        ..Default::default()
    });
    let pulled = with_config
        .pull(&dst, &name, &PullOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.config, img.config.0.digest);

    // Credentials given with the call (X-Registry-Auth) work without the file.
    let (_d2, dst2) = open_store();
    c.pull(
        &dst2,
        &name,
        &PullOptions {
            auth: Some(
                AuthConfig::from_header(&AuthConfig::basic("alice", "s3cret").to_header()).unwrap(),
            ),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();

    // After logout the file has nothing, and a fresh client is refused again.
    assert!(logout(&config, &reg.addr).await.unwrap());
    assert!(!logout(&config, &reg.addr).await.unwrap());
    let after = client(ClientOptions {
        docker_config: Some(config),
        ..Default::default()
    });
    let (_d3, dst3) = open_store();
    let err = after
        .pull(&dst3, &name, &PullOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::PullAccessDenied { .. }),
        "{err}"
    );
}

/// berth's own registry server, in this process, until dropped.
struct BerthRegistry {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl BerthRegistry {
    async fn start(htpasswd: Option<(&str, &str)>) -> BerthRegistry {
        let dir = tempfile::tempdir().unwrap();
        let mut config = berth_registry::server::ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("root"),
        );
        if let Some((user, password)) = htpasswd {
            let hash = bcrypt::hash_with_result(password, 4)
                .unwrap()
                .format_for_version(bcrypt::Version::TwoA);
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
            config.htpasswd = Some(file);
        }
        let server = berth_registry::server::Server::bind(config).await.unwrap();
        let addr = server.local_addr().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        BerthRegistry {
            addr,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }
}

impl Drop for BerthRegistry {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_berths_own_registry() {
    let reg = BerthRegistry::start(Some(("carol", "pw"))).await;
    let amd = image(&[busybox_layer(), file_layer("x", b"amd")], "amd64", None);
    let arm = image(
        &[busybox_layer(), file_layer("x", b"arm")],
        "arm64",
        Some("v8"),
    );
    let (index_digest, index_bytes) = index_of(&[&amd, &arm]);
    let (_d, src) = open_store();
    store_image(&src, &amd);
    store_image(&src, &arm);
    src.content.put(&index_bytes).unwrap();
    let meta = tempfile::tempdir().unwrap();
    let c = client(ClientOptions {
        monolithic_upload_limit: 64 * 1024,
        upload_chunk_size: 300 * 1024,
        metadata_dir: Some(meta.path().to_path_buf()),
        ..Default::default()
    });
    let auth = PushOptions {
        auth: Some(AuthConfig::basic("carol", "pw")),
    };
    let name = reference(&format!("{}/team/multi:1", reg.addr));
    let pushed = c
        .push(&src, &name, &index_digest, &auth, |_| {})
        .await
        .unwrap();
    assert_eq!(pushed.digest, index_digest);
    // The same layers into another repository: mounted.
    let events = Events::default();
    let other = reference(&format!("{}/other:1", reg.addr));
    c.push(&src, &other, &amd.manifest.0.digest, &auth, events.sink())
        .await
        .unwrap();
    assert_eq!(
        events.states(&short(&busybox_layer().diff_id)),
        ["Preparing", "Mounted from team/multi"]
    );

    // Refused without credentials, in Docker's words; pulled with them.
    let (_d1, dst) = open_store();
    let err = c
        .pull(&dst, &name, &PullOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::PullAccessDenied { .. }),
        "{err}"
    );
    let home = tempfile::tempdir().unwrap();
    let config = DockerConfig::new(home.path().join("config.json"));
    c.login(&reg.addr, &AuthConfig::basic("carol", "pw"), &config)
        .await
        .unwrap();
    let logged_in = client(ClientOptions {
        docker_config: Some(config),
        ..Default::default()
    });
    let pulled = logged_in
        .pull(
            &dst,
            &name,
            &PullOptions {
                platform: Some(parse_platform("linux/arm64").unwrap()),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(pulled.digest, index_digest);
    assert_eq!(pulled.config, arm.config.0.digest);
    let remote = logged_in.inspect_manifest(&name, None).await.unwrap();
    assert_eq!(remote.bytes, index_bytes);

    // A half-staged layer resumes against this server too.
    let (d2, partly) = open_store();
    let (blob_desc, blob) = &amd.layers[0];
    std::fs::write(
        partly.content.partial_path(&blob_desc.digest),
        &blob[..blob.len() / 2],
    )
    .unwrap();
    let pulled = logged_in
        .pull(&partly, &other, &PullOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(pulled.config, amd.config.0.digest);
    assert_eq!(partly.content.read_blob(&blob_desc.digest).unwrap(), *blob);
    assert!(ingest_entries(d2.path()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// A registry the tests control

#[derive(Debug, Clone)]
struct Logged {
    method: String,
    path: String,
    range: Option<String>,
    status: u16,
}

#[derive(Default)]
struct FakeState {
    /// By tag or digest: media type and bytes.
    manifests: HashMap<String, (String, Vec<u8>)>,
    blobs: HashMap<String, Vec<u8>>,
    /// Blobs served with a byte changed.
    corrupt: Vec<String>,
    /// Blobs whose first download stops halfway.
    cut_once: Vec<String>,
    /// Blobs sent half, then after a long pause the rest.
    stall: Vec<String>,
    /// Bearer tokens required, issued for these credentials.
    bearer: Option<(String, String)>,
    token_requests: Vec<String>,
    log: Vec<Logged>,
    /// Blob downloads are held this long before they are answered, and counted meanwhile.
    blob_delay: Option<Duration>,
    /// Only these blobs are held, when any are named.
    delay_only: Vec<String>,
    blobs_in_flight: usize,
    most_blobs_in_flight: usize,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    async fn start(state: FakeState) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, addr, state).await;
                });
            }
        });
        Fake { addr, state, task }
    }

    fn serve_image(&self, name: &str, tag: &str, img: &Image) {
        let mut s = self.state.lock().unwrap();
        let m = (DOCKER_MANIFEST.to_owned(), img.manifest.1.clone());
        s.manifests.insert(format!("{name}:{tag}"), m.clone());
        s.manifests
            .insert(format!("{name}:{}", img.manifest.0.digest), m);
        for (d, bytes) in img.layers.iter().chain([&img.config]) {
            s.blobs.insert(d.digest.to_string(), bytes.clone());
        }
    }

    fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

/// One request per connection; the answer closes it.
async fn serve(
    mut conn: tokio::net::TcpStream,
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let range = headers.get("range").cloned();

    let is_blob = method == "GET" && path.contains("/blobs/");
    let (reply, delay) = {
        let mut s = state.lock().unwrap();
        let answer = answer(&mut s, addr, &method, path, query, &headers);
        s.log.push(Logged {
            method: method.clone(),
            path: path.to_owned(),
            range,
            status: answer.status,
        });
        let named = s.delay_only.is_empty() || s.delay_only.iter().any(|d| path.ends_with(d));
        let delay = s
            .blob_delay
            .filter(|_| is_blob && named && answer.status < 300);
        if delay.is_some() {
            s.blobs_in_flight += 1;
            s.most_blobs_in_flight = s.most_blobs_in_flight.max(s.blobs_in_flight);
        }
        (answer, delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
        state.lock().unwrap().blobs_in_flight -= 1;
    }
    let mut out = format!(
        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes()).await?;
    if method != "HEAD" {
        let body = match reply.cut_at {
            Some(n) => &reply.body[..n],
            None => &reply.body[..],
        };
        match reply.stall_at {
            Some(n) => {
                conn.write_all(&body[..n]).await?;
                conn.flush().await?;
                tokio::time::sleep(Duration::from_secs(3)).await;
                conn.write_all(&body[n..]).await?;
            }
            None => conn.write_all(body).await?,
        }
    }
    conn.flush().await?;
    // Let the client read it all before the connection goes.
    let _ = conn.shutdown().await;
    Ok(())
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut_at: Option<usize>,
    stall_at: Option<usize>,
}

fn answer(
    s: &mut FakeState,
    addr: SocketAddr,
    method: &str,
    path: &str,
    query: &str,
    headers: &HashMap<String, String>,
) -> Answer {
    let json = |status: u16, body: String| Answer {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.into_bytes(),
        cut_at: None,
        stall_at: None,
    };
    if path == "/token" {
        s.token_requests.push(query.to_owned());
        let Some((user, password)) = &s.bearer else {
            return json(404, "{}".into());
        };
        use base64::Engine as _;
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        if headers.get("authorization") != Some(&expected) {
            return json(
                401,
                r#"{"details":"incorrect username or password"}"#.into(),
            );
        }
        return json(200, r#"{"token":"fake-token","expires_in":300}"#.into());
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return json(404, "{}".into());
    };
    if s.bearer.is_some()
        && headers.get("authorization").map(String::as_str) != Some("Bearer fake-token")
    {
        let name = rest.split("/manifests/").next().unwrap_or("");
        let name = name.split("/blobs/").next().unwrap_or("");
        let mut a = json(
            401,
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.into(),
        );
        a.headers.push((
            "WWW-Authenticate".into(),
            format!(
                r#"Bearer realm="http://{addr}/token",service="fake",scope="repository:{name}:pull""#
            ),
        ));
        return a;
    }
    if rest.is_empty() {
        return json(200, "{}".into());
    }
    if let Some((name, reference)) = rest.split_once("/manifests/") {
        return match s.manifests.get(&format!("{name}:{reference}")) {
            Some((mt, bytes)) => Answer {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), mt.clone()),
                    ("Docker-Content-Digest".into(), digest_of(bytes).to_string()),
                ],
                body: bytes.clone(),
                cut_at: None,
                stall_at: None,
            },
            None => json(
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.into(),
            ),
        };
    }
    if let Some((_, digest)) = rest.split_once("/blobs/") {
        let Some(blob) = s.blobs.get(digest).cloned() else {
            return json(
                404,
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#
                    .into(),
            );
        };
        let mut body = blob;
        if s.corrupt.iter().any(|c| c == digest) {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        let mut cut_at = None;
        if method == "GET" {
            if let Some(pos) = s.cut_once.iter().position(|c| c == digest) {
                s.cut_once.remove(pos);
                cut_at = Some(body.len() / 2);
            }
        }
        let total = body.len();
        let start = headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok());
        return match start {
            Some(n) if n < total => Answer {
                status: 206,
                headers: vec![(
                    "Content-Range".into(),
                    format!("bytes {n}-{}/{total}", total - 1),
                )],
                body: body[n..].to_vec(),
                cut_at: None,
                stall_at: None,
            },
            _ => Answer {
                status: 200,
                headers: Vec::new(),
                stall_at: s
                    .stall
                    .iter()
                    .any(|d| d == digest)
                    .then_some(body.len() / 2),
                body,
                cut_at,
            },
        };
    }
    json(404, "{}".into())
}

/// Forwards connections to `upstream`, counting the bytes that come back.
struct CountingProxy {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CountingProxy {
    async fn start(upstream: String) -> CountingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.split();
                    let (mut sr, mut sw) = server.split();
                    let up = async {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                        let _ = sw.shutdown().await;
                    };
                    let down = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    counter.fetch_add(n as u64, Ordering::Relaxed);
                                    if cw.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = cw.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        CountingProxy { addr, served, task }
    }
}

fn ingest_entries(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("content/ingest"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Auth tokens, broken and bad downloads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_once_and_sent() {
    let img = image(
        &[file_layer("a", b"one"), file_layer("b", b"two")],
        "amd64",
        None,
    );
    let fake = Fake::start(FakeState {
        bearer: Some(("bob".into(), "pw".into())),
        ..Default::default()
    })
    .await;
    fake.serve_image("app", "latest", &img);
    let name = reference(&format!("{}/app:latest", fake.addr));
    let c = client(ClientOptions::default());
    let (_d, store) = open_store();

    // Wrong credentials: the token server's refusal, in Docker's words.
    let err = c
        .pull(
            &store,
            &name,
            &PullOptions {
                auth: Some(AuthConfig::basic("bob", "nope")),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("may require 'docker login': unauthorized: incorrect username or password"),
        "{err}"
    );

    let pulled = c
        .pull(
            &store,
            &name,
            &PullOptions {
                auth: Some(AuthConfig::basic("bob", "pw")),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(pulled.config, img.config.0.digest);
    let tokens = fake.state.lock().unwrap().token_requests.clone();
    // One refused, one granted for the whole pull (manifest, config and two layers).
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(
        tokens[1].contains("scope=repository%3Aapp%3Apull"),
        "{tokens:?}"
    );
    assert!(tokens[1].contains("service=fake") && tokens[1].contains("account=bob"));

    // check_login against a token registry asks the realm with the credentials.
    let ok = c
        .check_login(&fake.addr.to_string(), &AuthConfig::basic("bob", "pw"))
        .await
        .unwrap();
    assert_eq!(ok.status, "Login Succeeded");
    let err = c
        .check_login(&fake.addr.to_string(), &AuthConfig::basic("bob", "bad"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unauthorized: incorrect username or password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_download_three_at_a_time() {
    let layers: Vec<Layer> = (0..6)
        .map(|i| file_layer(&format!("f{i}"), format!("layer {i}").as_bytes()))
        .collect();
    let img = image(&layers, "amd64", None);
    let fake = Fake::start(FakeState {
        blob_delay: Some(Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    fake.serve_image("six", "latest", &img);
    let c = client(ClientOptions::default());
    let (_d, store) = open_store();
    let events = Events::default();
    c.pull(
        &store,
        &reference(&format!("{}/six:latest", fake.addr)),
        &PullOptions::default(),
        events.sink(),
    )
    .await
    .unwrap();
    assert_eq!(fake.state.lock().unwrap().most_blobs_in_flight, 3);
    let waiting: Vec<String> = img
        .layers
        .iter()
        .map(|(d, _)| short(&d.digest))
        .filter(|id| events.states(id).contains(&"Waiting".to_owned()))
        .collect();
    assert_eq!(waiting.len(), 3, "the last three wait");
    for (d, _) in &img.layers {
        let states = events.states(&short(&d.digest));
        assert_eq!(
            states.last().map(String::as_str),
            Some("Pull complete"),
            "{states:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_download_resumes_with_a_range_request() {
    let layer = busybox_layer();
    let img = image(std::slice::from_ref(&layer), "amd64", None);
    let blob = img.layers[0].0.digest.to_string();
    let fake = Fake::start(FakeState {
        cut_once: vec![blob.clone()],
        ..Default::default()
    })
    .await;
    fake.serve_image("bb", "latest", &img);
    let c = client(ClientOptions {
        retry_delay: Duration::from_millis(20),
        ..Default::default()
    });
    let (_d, store) = open_store();
    let events = Events::default();
    let pulled = c
        .pull(
            &store,
            &reference(&format!("{}/bb:latest", fake.addr)),
            &PullOptions::default(),
            events.sink(),
        )
        .await
        .unwrap();
    assert_eq!(pulled.config, img.config.0.digest);
    let gets: Vec<Logged> = fake
        .log()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.ends_with(&blob))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    let half = (img.layers[0].1.len() / 2) as u64;
    assert_eq!(gets[0].range, None);
    // The second asks for what the first did not bring (all of the first half arrived).
    let from: u64 = gets[1]
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{gets:?}"));
    assert!(from > 0 && from <= half, "{from} of {half}");
    assert_eq!(gets[1].status, 206);
    assert!(events.any_layer(|s| matches!(s, LayerState::Retrying { .. })));
    assert_eq!(
        store.content.read_blob(&img.layers[0].0.digest).unwrap(),
        img.layers[0].1
    );
    assert!(ingest_entries(_d.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_staged_blob_completes_from_docker_registry_with_fewer_bytes() {
    let reg = Registry::start(None);
    let layer = busybox_layer();
    let img = image(std::slice::from_ref(&layer), "amd64", None);
    let (_d, src) = open_store();
    store_image(&src, &img);
    let c = client(ClientOptions::default());
    let name = reference(&format!("{}/resume:latest", reg.addr));
    c.push(
        &src,
        &name,
        &img.manifest.0.digest,
        &PushOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    let proxy = CountingProxy::start(reg.addr.clone()).await;
    let via_proxy = reference(&format!("{}/resume:latest", proxy.addr));
    let (blob_desc, blob) = &img.layers[0];

    // A whole pull, for comparison.
    let (_d1, whole) = open_store();
    c.pull(&whole, &via_proxy, &PullOptions::default(), |_| {})
        .await
        .unwrap();
    let full = proxy.served.swap(0, Ordering::Relaxed);
    assert!(full > blob.len() as u64, "{full}");

    // Half the blob is staged already (an earlier pull stopped there).
    let (d2, partly) = open_store();
    let staged = partly.content.partial_path(&blob_desc.digest);
    let half = blob.len() / 2;
    std::fs::write(&staged, &blob[..half]).unwrap();
    let pulled = c
        .pull(&partly, &via_proxy, &PullOptions::default(), |_| {})
        .await
        .unwrap();
    let resumed = proxy.served.load(Ordering::Relaxed);
    assert_eq!(pulled.config, img.config.0.digest);
    assert!(
        full - resumed >= (half as u64) * 9 / 10,
        "a resumed pull fetched {resumed} bytes, a whole one {full} (blob {})",
        blob.len()
    );
    assert_eq!(partly.content.read_blob(&blob_desc.digest).unwrap(), *blob);
    assert!(!staged.exists());
    assert!(ingest_entries(d2.path()).is_empty());
    let lowers = partly
        .lower_dirs(&partly.view(&via_proxy.to_string()).unwrap().config)
        .unwrap();
    assert!(lowers[0].join("bin/busybox").is_file());

    // A staged prefix that is wrong is found out, thrown away and the blob fetched whole.
    let (d3, wrong) = open_store();
    let staged = wrong.content.partial_path(&blob_desc.digest);
    std::fs::write(&staged, vec![0u8; half]).unwrap();
    let c = client(ClientOptions {
        retry_delay: Duration::from_millis(20),
        ..Default::default()
    });
    c.pull(&wrong, &via_proxy, &PullOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(wrong.content.read_blob(&blob_desc.digest).unwrap(), *blob);
    assert!(ingest_entries(d3.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_blob_is_rejected_and_leaves_nothing() {
    let img = image(
        &[file_layer("good", b"fine"), busybox_layer()],
        "amd64",
        None,
    );
    let bad = img.layers[1].0.digest.clone();
    let fake = Fake::start(FakeState {
        corrupt: vec![bad.to_string()],
        ..Default::default()
    })
    .await;
    fake.serve_image("bad", "latest", &img);
    let c = client(ClientOptions::default());
    let (dir, store) = open_store();
    let err = c
        .pull(
            &store,
            &reference(&format!("{}/bad:latest", fake.addr)),
            &PullOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::LayerVerification(_)), "{err}");
    assert_eq!(
        err.to_string(),
        format!("filesystem layer verification failed for digest {bad}")
    );
    assert!(!store.content.exists(&bad));
    assert!(!store.content.partial_path(&bad).exists());
    // At most the other layer's download, cut short and kept to resume.
    let other = store.content.partial_path(&img.layers[0].0.digest);
    assert!(
        ingest_entries(dir.path()).iter().all(|p| *p == other),
        "{:?}",
        ingest_entries(dir.path())
    );
    // No snapshot of the bad layer, no image, no name.
    let bad_chain = berth_image::snapshot::chain_id(Some(&img_diff(&img, 0)), &img_diff(&img, 1));
    assert!(!store.snapshots.exists(&bad_chain));
    assert!(store.list().unwrap().is_empty());
    assert!(store.index().unwrap().refs.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Only one download of the bad blob: a mismatch is not retried.
    let gets = fake
        .log()
        .iter()
        .filter(|l| l.path.ends_with(&bad.to_string()))
        .count();
    assert_eq!(gets, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_layer_calls_off_the_others_and_waits_for_them() {
    let img = image(
        &[busybox_layer(), file_layer("bad", b"corrupt me")],
        "amd64",
        None,
    );
    let (slow, bad) = (
        img.layers[0].0.digest.clone(),
        img.layers[1].0.digest.clone(),
    );
    let fake = Fake::start(FakeState {
        corrupt: vec![bad.to_string()],
        stall: vec![slow.to_string()],
        // The bad layer arrives once the other is halfway.
        blob_delay: Some(Duration::from_millis(300)),
        delay_only: vec![bad.to_string()],
        ..Default::default()
    })
    .await;
    fake.serve_image("two", "latest", &img);
    let c = client(ClientOptions::default());
    let (dir, store) = open_store();
    let started = Instant::now();
    let err = c
        .pull(
            &store,
            &reference(&format!("{}/two:latest", fake.addr)),
            &PullOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::LayerVerification(ref d) if *d == bad),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the stalled download was not called off"
    );
    // The busybox download stopped halfway: kept to resume, nothing of it visible, and its
    // worker is done (no staging snapshot left behind).
    let partial = store.content.partial_path(&slow);
    assert!(partial.exists());
    assert!(std::fs::metadata(&partial).unwrap().len() > 0);
    assert!(!store.content.exists(&slow));
    let snapshots: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(snapshots.is_empty(), "{snapshots:?}");
}

fn img_diff(img: &Image, i: usize) -> Digest {
    let config: serde_json::Value = serde_json::from_slice(&img.config.1).unwrap();
    config["rootfs"]["diff_ids"][i]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_references_and_unknown_names_never_reach_far() {
    let fake = Fake::start(FakeState::default()).await;
    for bad in ["Busybox", "a//b", "busybox:", "x@sha256:123"] {
        let err = reference_for_pull(&format!("{}/{bad}", fake.addr), None).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid reference format"),
            "{bad}: {err}"
        );
    }
    assert!(reference_for_pull(&format!("{}/ok", fake.addr), Some("bad tag!")).is_err());
    assert!(fake.log().is_empty(), "no request was made");

    let c = client(ClientOptions::default());
    let (_d, store) = open_store();
    let err = c
        .pull(
            &store,
            &reference(&format!("{}/nothing:here", fake.addr)),
            &PullOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest for {}/nothing:here not found: manifest unknown: manifest unknown",
            fake.addr
        )
    );
}
