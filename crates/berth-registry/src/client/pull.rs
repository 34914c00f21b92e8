//! `docker pull`: resolve the name to a manifest (choosing the platform's from an index),
//! fetch and check the config, pin everything against collection, then bring the layers in
//! (several at a time) and register the image.
//!
//! A layer is streamed from the registry into the content store's resumable staging file
//! ([`ContentStore::partial_path`]) by a blocking worker that hashes the bytes and unpacks
//! them into a staging snapshot as they arrive; the blob and the snapshot are committed only
//! when the blob matches its digest and size and the snapshot its diff ID. When the
//! connection breaks, what arrived stays staged and the next attempt (this pull's retry, or a
//! later pull) asks for the rest with `Range: bytes=<staged>-`; the worker re-reads the staged
//! prefix (hashing and unpacking it) before the new bytes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use berth_core::{Digest, Reference};
use berth_image::compression::decompressed;
use berth_image::content::{sha256_digest, ContentStore};
use berth_image::oci::{is_manifest, Descriptor, ImageConfig, ImageIndex, Manifest, Platform};
use berth_image::snapshot::SnapshotStore;
use berth_image::store::{chain_ids, ImageStore};
use bytes::{Buf, Bytes};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::Method;
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::auth::{api_error, http_error, repository_scope, Req, Session};
use super::credentials::AuthConfig;
use super::error::{ApiError, RegistryError, Result};
use super::manifest::{get_manifest, get_small_blob};
use super::platform;
use super::progress::{short_id, LayerState, Progress};
use super::{now, tag_or_digest, tick_while, Client, Emit};

/// How many chunks may wait between the network and a layer's worker.
const CHANNEL_DEPTH: usize = 32;

/// What to pull with.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to choose from an index (`--platform`); this host's when `None`.
    pub platform: Option<Platform>,
    /// Credentials (from `X-Registry-Auth`); else the client's `docker_config`, else none.
    pub auth: Option<AuthConfig>,
}

/// What a pull brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// What was asked for.
    pub reference: Reference,
    /// The digest the name resolved to: the index's for a multi-platform image. This is the
    /// image's repo digest (`repository@digest`), and what `Digest:` shows.
    pub digest: Digest,
    /// The platform manifest's digest (the image store's record of the image).
    pub manifest: Digest,
    /// The config's digest: the image ID.
    pub config: Digest,
    /// The layers, bottom first, and their diff IDs.
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    /// The image's platform, as its config says.
    pub platform: Platform,
    /// The names now pointing at the image: the tag (for a pull by tag) and
    /// `repository@digest`.
    pub names: Vec<Reference>,
    /// Names that pointed at another image before, and that image (now perhaps dangling).
    pub replaced: Vec<(Reference, Digest)>,
    /// Whether the name asked for changed: Docker's "Downloaded newer image" rather than
    /// "Image is up to date".
    pub updated: bool,
}

/// A registry's answer to a manifest request, in Docker's words for a pull.
pub(crate) fn pull_error(e: RegistryError, r: &Reference) -> RegistryError {
    let RegistryError::Api(api) = e else {
        return e;
    };
    match (api.code.as_str(), api.status) {
        ("DENIED" | "UNAUTHORIZED", _) | ("", 401 | 403) => RegistryError::PullAccessDenied {
            name: r.familiar_name(),
            cause: api,
        },
        ("MANIFEST_UNKNOWN", _) => RegistryError::ManifestUnknown {
            name: r.familiar(),
            cause: api,
        },
        ("", 404) => RegistryError::ManifestUnknown {
            name: r.familiar(),
            cause: ApiError::new(404, "MANIFEST_UNKNOWN", "manifest unknown"),
        },
        ("NAME_UNKNOWN", _) => RegistryError::RepositoryUnknown {
            name: r.familiar_name(),
            cause: api,
        },
        _ => RegistryError::Api(api),
    }
}

fn parse<T: for<'de> serde::Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::InvalidManifest(format!("{what}: {e}")))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegistryError::Internal(format!("blocking task failed: {e}")))
}

impl Client {
    /// `docker pull`: brings the image `reference` names into `store` and names it (the tag,
    /// and `repository@digest`). `progress` gets Docker's events as they happen.
    pub async fn pull<F>(
        &self,
        store: &Arc<ImageStore>,
        reference: &Reference,
        options: &PullOptions,
        progress: F,
    ) -> Result<Pulled>
    where
        F: Fn(Progress) + Send + Sync + 'static,
    {
        let emit: Emit = Arc::new(progress);
        let repo = reference.repository.clone();
        let session = self
            .session(
                &reference.registry,
                options.auth.as_ref(),
                vec![repository_scope(&repo, "pull")],
            )
            .await?;
        let asked = tag_or_digest(reference);
        let top = get_manifest(&session, &repo, &asked)
            .await
            .map_err(|e| pull_error(e, reference))?;
        emit(Progress::Message {
            id: Some(asked),
            text: format!("Pulling from {repo}"),
        });

        let wanted = options.platform.clone().unwrap_or_else(platform::host);
        let manifest = if top.is_index() {
            let index: ImageIndex = parse(&top.bytes, &format!("image index {}", top.digest))?;
            let entry = platform::select(&index, &wanted)?;
            let m = get_manifest(&session, &repo, &entry.digest.to_string())
                .await
                .map_err(|e| pull_error(e, reference))?;
            if !is_manifest(&m.media_type) {
                return Err(RegistryError::InvalidManifest(format!(
                    "index entry {} is a {}, not an image manifest",
                    m.digest, m.media_type
                )));
            }
            m
        } else {
            top.clone()
        };
        let parsed: Manifest = parse(
            &manifest.bytes,
            &format!("image manifest {}", manifest.digest),
        )?;
        let config_bytes = get_small_blob(&session, &repo, &parsed.config, "config").await?;
        let config: ImageConfig = parse(
            &config_bytes,
            &format!("image config {}", parsed.config.digest),
        )?;
        if config.os() != "linux" {
            return Err(RegistryError::UnsupportedOs(config.os().to_owned()));
        }
        if let Some(w) = &options.platform {
            if !top.is_index()
                && !platform::matches(
                    w,
                    config.os(),
                    &config.architecture,
                    config.variant.as_deref(),
                )
            {
                return Err(RegistryError::PlatformMismatch {
                    reference: reference.familiar(),
                    wanted: platform::format_platform(w),
                    actual: platform::format_platform(&Platform {
                        os: config.os().to_owned(),
                        architecture: config.architecture.clone(),
                        variant: config.variant.clone(),
                    }),
                });
            }
        }
        if config.rootfs.diff_ids.len() != parsed.layers.len() {
            return Err(RegistryError::InvalidManifest(format!(
                "image manifest {} has {} layers, its config {} diff IDs",
                manifest.digest,
                parsed.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let chains = chain_ids(&config);

        // Nothing of this may be collected before the image is named.
        let mut pinned = vec![manifest.digest.clone(), parsed.config.digest.clone()];
        pinned.extend(parsed.layers.iter().map(|l| l.digest.clone()));
        pinned.extend(chains.iter().cloned());
        let pin = {
            let store = store.clone();
            blocking(move || store.pin(pinned)).await?
        };
        {
            let content = store.content.clone();
            let (cd, cs) = (parsed.config.digest.clone(), parsed.config.size);
            let (md, mb) = (manifest.digest.clone(), manifest.bytes.clone());
            blocking(move || -> Result<()> {
                content.ingest(&config_bytes[..], Some((&cd, Some(cs))))?;
                content.ingest(&mb[..], Some((&md, Some(mb.len() as u64))))?;
                Ok(())
            })
            .await??;
        }
        let mut known: Vec<Digest> = parsed.layers.iter().map(|l| l.digest.clone()).collect();
        known.push(parsed.config.digest.clone());
        self.inner
            .sources
            .add(&known, &session.endpoint.registry, &repo);

        self.fetch_layers(
            &session,
            store,
            &repo,
            &parsed.layers,
            &config,
            &chains,
            &emit,
        )
        .await?;

        let digest_name = Reference {
            tag: None,
            digest: Some(top.digest.clone()),
            ..reference.clone()
        };
        let mut names = Vec::new();
        if reference.digest.is_none() {
            names.push(Reference {
                digest: None,
                ..reference.clone()
            });
        }
        names.push(digest_name);
        let added = {
            let store = store.clone();
            let (m, n) = (manifest.digest.clone(), names.clone());
            blocking(move || store.add_image(&m, &n, &now())).await??
        };
        drop(pin);
        let updated = added.new_names.contains(&names[0]);
        emit(Progress::Message {
            id: None,
            text: format!("Digest: {}", top.digest),
        });
        emit(Progress::Message {
            id: None,
            text: format!(
                "Status: {} for {}",
                if updated {
                    "Downloaded newer image"
                } else {
                    "Image is up to date"
                },
                reference.familiar()
            ),
        });
        Ok(Pulled {
            reference: reference.clone(),
            digest: top.digest,
            manifest: manifest.digest,
            config: parsed.config.digest,
            layers: parsed.layers,
            diff_ids: config.rootfs.diff_ids.clone(),
            platform: Platform {
                os: config.os().to_owned(),
                architecture: config.architecture.clone(),
                variant: config.variant.clone(),
            },
            names,
            replaced: added.replaced,
            updated,
        })
    }

    /// Brings in every layer not already there, [`ClientOptions::max_concurrent_downloads`]
    /// at a time. The first failure calls the others off, and this returns once they have
    /// stopped (their workers too, so nothing of theirs is still being written).
    ///
    /// [`ClientOptions::max_concurrent_downloads`]: super::ClientOptions::max_concurrent_downloads
    #[allow(clippy::too_many_arguments)]
    async fn fetch_layers(
        &self,
        session: &Arc<Session>,
        store: &ImageStore,
        repo: &str,
        layers: &[Descriptor],
        config: &ImageConfig,
        chains: &[Digest],
        emit: &Emit,
    ) -> Result<()> {
        let options = &self.inner.options;
        let (cancel, cancelled) = watch::channel(false);
        let mut jobs = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            let id = short_id(&layer.digest);
            let state = |state| Progress::Layer {
                id: id.clone(),
                state,
            };
            if store.content.exists(&layer.digest) && store.snapshots.exists(&chains[i]) {
                emit(state(LayerState::AlreadyExists));
                continue;
            }
            emit(state(LayerState::PullingFsLayer));
            jobs.push(LayerJob {
                session: session.clone(),
                content: store.content.clone(),
                snapshots: store.snapshots.clone(),
                repo: repo.to_owned(),
                desc: layer.clone(),
                diff_id: config.rootfs.diff_ids[i].clone(),
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                chain: chains[i].clone(),
                id,
                emit: emit.clone(),
                retries: options.download_retries,
                retry_delay: options.retry_delay,
                cancel: cancelled.clone(),
            });
        }
        let limit = Arc::new(Semaphore::new(options.max_concurrent_downloads.max(1)));
        let mut tasks = JoinSet::new();
        for job in jobs {
            let permit = limit.clone().try_acquire_owned().ok();
            if permit.is_none() {
                job.state(LayerState::Waiting);
            }
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = match permit {
                    Some(p) => p,
                    None => limit
                        .acquire_owned()
                        .await
                        .map_err(|e| RegistryError::Internal(e.to_string()))?,
                };
                job.run().await
            });
        }
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let failed = match done {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(e) => RegistryError::Internal(format!("layer download: {e}")),
            };
            if first_error.is_none() {
                first_error = Some(failed);
                let _ = cancel.send(true);
                limit.close();
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn cancelled() -> RegistryError {
    RegistryError::Internal("cancelled: another layer failed".into())
}

/// Serializes work on one blob across every pull of this process (two images sharing a
/// layer must not write its staging file at once).
static BLOB_LOCKS: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

struct BlobLock {
    key: PathBuf,
    lock: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl BlobLock {
    async fn acquire(key: PathBuf) -> BlobLock {
        let lock = {
            let mut map = BLOB_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        BlobLock {
            key,
            lock,
            guard: Some(guard),
        }
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = BLOB_LOCKS.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map's reference and ours left: nobody holds or waits for it.
        if Arc::strong_count(&self.lock) == 2 {
            map.remove(&self.key);
        }
    }
}

struct LayerJob {
    session: Arc<Session>,
    content: ContentStore,
    snapshots: SnapshotStore,
    repo: String,
    desc: Descriptor,
    diff_id: Digest,
    parent: Option<Digest>,
    chain: Digest,
    id: String,
    emit: Emit,
    retries: u32,
    retry_delay: Duration,
    /// Becomes true when the pull is called off.
    cancel: watch::Receiver<bool>,
}

/// Why a layer's worker stopped.
#[derive(Debug)]
enum Failure {
    /// The bytes stopped coming; what arrived is staged, to resume from.
    Interrupted(String),
    /// The blob is not what its digest or size says (its staging file is gone).
    Mismatch,
    Other(RegistryError),
}

impl From<berth_image::ImageError> for Failure {
    fn from(e: berth_image::ImageError) -> Failure {
        Failure::Other(e.into())
    }
}

enum Chunk {
    Data(Bytes),
    End,
    /// The registry sent more than the descriptor's size.
    TooLong,
    Failed(String),
}

impl LayerJob {
    fn state(&self, state: LayerState) {
        (self.emit)(Progress::Layer {
            id: self.id.clone(),
            state,
        });
    }

    /// `fut`, unless the pull is called off first.
    async fn unless_cancelled<T>(&self, fut: impl std::future::Future<Output = T>) -> Option<T> {
        let mut cancel = self.cancel.clone();
        tokio::select! {
            biased;
            _ = cancel.wait_for(|c| *c) => None,
            out = fut => Some(out),
        }
    }

    fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    async fn run(self) -> Result<()> {
        let key = self.content.partial_path(&self.desc.digest);
        let Some(_lock) = self.unless_cancelled(BlobLock::acquire(key)).await else {
            return Err(cancelled());
        };
        if self.content.exists(&self.desc.digest) {
            // Another pull brought the blob meanwhile, or only the snapshot is missing.
            if !self.snapshots.exists(&self.chain) {
                self.state(LayerState::DownloadComplete);
                self.unpack_stored().await?;
            }
            self.state(LayerState::PullComplete);
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            match self.download().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() && attempt < self.retries && !self.is_cancelled() => {
                    attempt += 1;
                    let wait = self.retry_delay * (1 << (attempt - 1).min(6));
                    tracing::warn!(layer = %self.desc.digest, error = %e, "download failed, retrying in {wait:?}");
                    self.state(LayerState::Retrying {
                        seconds: wait.as_secs_f64().ceil() as u64,
                    });
                    if self
                        .unless_cancelled(tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt: what is staged already, then the rest from the registry.
    async fn download(&self) -> Result<()> {
        let digest = &self.desc.digest;
        let size = self.desc.size;
        let partial = self.content.partial_path(digest);
        let mut have = tokio::fs::metadata(&partial).await.map_or(0, |m| m.len());
        if have > size {
            let _ = tokio::fs::remove_file(&partial).await;
            have = 0;
        }
        let mut start = have;
        let mut response = None;
        if have < size || size == 0 {
            let url = self
                .session
                .endpoint
                .url(&format!("/v2/{}/blobs/{digest}", self.repo));
            let mut req = Req::new(Method::GET, url.clone());
            if have > 0 {
                req = req.header(RANGE, format!("bytes={have}-"));
            }
            let Some(resp) = self.unless_cancelled(self.session.send(&req)).await else {
                return Err(cancelled());
            };
            let resp = resp?;
            match resp.status().as_u16() {
                206 if have > 0 && range_start(&resp) == Some(have) => {}
                200 => start = 0,
                206 | 416 => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(RegistryError::Interrupted {
                        digest: digest.clone(),
                        why: format!("the registry answered {} to a resume", resp.status()),
                    });
                }
                _ => return Err(RegistryError::Api(api_error(resp).await)),
            }
            response = Some((resp, url));
        }

        let unpack = (!self.snapshots.exists(&self.chain))
            .then(|| (self.parent.clone(), self.diff_id.clone()));
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        let consumed = Arc::new(AtomicU64::new(0));
        let worker = {
            let receive = Receive {
                content: self.content.clone(),
                snapshots: self.snapshots.clone(),
                partial: partial.clone(),
                prefix: start,
                rx,
                digest: digest.clone(),
                size,
                unpack: unpack.clone(),
                consumed: consumed.clone(),
            };
            tokio::task::spawn_blocking(move || receive.run())
        };

        let mut received = start;
        let mut complete = true;
        self.state(LayerState::Downloading {
            current: received,
            total: size,
        });
        let mut last = Instant::now();
        match response {
            None => {
                let _ = tx.send(Chunk::End).await;
            }
            Some((mut resp, url)) => loop {
                let Some(next) = self.unless_cancelled(resp.chunk()).await else {
                    complete = false;
                    let _ = tx.send(Chunk::Failed("cancelled".into())).await;
                    break;
                };
                match next {
                    Ok(Some(bytes)) => {
                        received += bytes.len() as u64;
                        if received > size {
                            let _ = tx.send(Chunk::TooLong).await;
                            complete = false;
                            break;
                        }
                        if tx.send(Chunk::Data(bytes)).await.is_err() {
                            complete = false; // the worker stopped: its error says why
                            break;
                        }
                        if last.elapsed() >= super::TICK {
                            last = Instant::now();
                            self.state(LayerState::Downloading {
                                current: received,
                                total: size,
                            });
                        }
                    }
                    Ok(None) => {
                        let chunk = if received < size {
                            complete = false;
                            Chunk::Failed(format!(
                                "unexpected EOF after {received} of {size} bytes"
                            ))
                        } else {
                            Chunk::End
                        };
                        let _ = tx.send(chunk).await;
                        break;
                    }
                    Err(e) => {
                        complete = false;
                        let why = http_error(&Method::GET, &url, &e).to_string();
                        let _ = tx.send(Chunk::Failed(why)).await;
                        break;
                    }
                }
            },
        }
        drop(tx);
        if complete {
            self.state(LayerState::Downloading {
                current: size,
                total: size,
            });
            self.state(LayerState::VerifyingChecksum);
            self.state(LayerState::DownloadComplete);
        }
        let unpacking = complete && unpack.is_some();
        let outcome = tick_while(worker, &consumed, |current| {
            if unpacking {
                self.state(LayerState::Extracting {
                    current,
                    total: size,
                });
            }
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("layer worker: {e}")))?;
        match outcome {
            Ok(()) => {
                if unpack.is_some() {
                    self.state(LayerState::Extracting {
                        current: size,
                        total: size,
                    });
                }
                self.state(LayerState::PullComplete);
                Ok(())
            }
            Err(Failure::Interrupted(why)) => Err(RegistryError::Interrupted {
                digest: digest.clone(),
                why,
            }),
            // A resumed download that does not verify may have started from a bad prefix:
            // that is gone now, so trying again from the start can succeed.
            Err(Failure::Mismatch) if start > 0 => Err(RegistryError::Interrupted {
                digest: digest.clone(),
                why: "the resumed download did not verify; starting over".into(),
            }),
            Err(Failure::Mismatch) => Err(RegistryError::LayerVerification(digest.clone())),
            Err(Failure::Other(e)) => Err(e),
        }
    }

    /// The blob is in the store but its snapshot is not: unpack it from there.
    async fn unpack_stored(&self) -> Result<()> {
        let consumed = Arc::new(AtomicU64::new(0));
        let (content, snapshots) = (self.content.clone(), self.snapshots.clone());
        let (digest, parent, diff_id) = (
            self.desc.digest.clone(),
            self.parent.clone(),
            self.diff_id.clone(),
        );
        let counter = consumed.clone();
        let worker = tokio::task::spawn_blocking(move || -> Result<()> {
            let blob = content.open_blob(&digest)?;
            let counting = Counting {
                inner: blob,
                consumed: counter,
            };
            let (_, stream) = decompressed(counting)
                .map_err(|e| RegistryError::io("read blob", content.path(&digest), e))?;
            let staged = snapshots.stage(parent.as_ref(), stream)?;
            check_diff_id(&digest, &staged.meta().diff_id, &diff_id)?;
            staged.commit()?;
            Ok(())
        });
        let size = self.desc.size;
        tick_while(worker, &consumed, |current| {
            self.state(LayerState::Extracting {
                current,
                total: size,
            })
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("layer worker: {e}")))??;
        self.state(LayerState::Extracting {
            current: size,
            total: size,
        });
        Ok(())
    }
}

fn check_diff_id(digest: &Digest, got: &Digest, want: &Digest) -> Result<()> {
    if got != want {
        return Err(RegistryError::InvalidManifest(format!(
            "layer {digest}: its content (diff ID {got}) is not what the image config says ({want})"
        )));
    }
    Ok(())
}

/// Where a `206` answer's `Content-Range: bytes <start>-<end>/<size>` starts.
fn range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// Counts what is read, for extraction progress.
struct Counting<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A layer's worker (a blocking thread): the staged prefix, then the network's bytes, all
/// hashed, appended to the staging file and (when the snapshot is missing) unpacked.
struct Receive {
    content: ContentStore,
    snapshots: SnapshotStore,
    partial: PathBuf,
    prefix: u64,
    rx: mpsc::Receiver<Chunk>,
    digest: Digest,
    size: u64,
    unpack: Option<(Option<Digest>, Digest)>,
    consumed: Arc<AtomicU64>,
}

impl Receive {
    fn run(self) -> std::result::Result<(), Failure> {
        let Receive {
            content,
            snapshots,
            partial,
            prefix,
            rx,
            digest: want,
            size,
            unpack,
            consumed,
        } = self;
        let io = |context, e| Failure::Other(RegistryError::io(context, &partial, e));
        // The staging file stays for a resume only when the bytes merely stopped coming.
        let failed = |failure: Failure| {
            if !matches!(failure, Failure::Interrupted(_)) {
                let _ = std::fs::remove_file(&partial);
            }
            failure
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .map_err(|e| io("create", e))?;
        // Anything past what the registry is resuming from goes.
        out.set_len(prefix).map_err(|e| io("truncate", e))?;
        let staged_prefix = if prefix > 0 {
            let f = std::fs::File::open(&partial).map_err(|e| io("open", e))?;
            Some(f.take(prefix))
        } else {
            None
        };
        let mut source = Source {
            prefix: staged_prefix,
            rx,
            out,
            pending: Bytes::new(),
            ended: false,
            hash: Sha256::new(),
            count: 0,
            consumed,
            failure: None,
        };
        // A layer that does not unpack is read to its end all the same: when its bytes are
        // not what the digest says, that is the error to report.
        let mut unpack_error = None;
        let staged = match &unpack {
            Some((parent, _)) => {
                let staged = decompressed(&mut source)
                    .map_err(|e| berth_image::ImageError::BadArchive(e.to_string()))
                    .and_then(|(_, stream)| snapshots.stage(parent.as_ref(), stream));
                match staged {
                    Ok(s) => Some(s),
                    Err(e) => {
                        if let Some(failure) = source.failure.take() {
                            return Err(failed(failure));
                        }
                        unpack_error = Some(e);
                        None
                    }
                }
            }
            None => None,
        };
        // What the unpacker did not read (a gzip trailer, tar padding) belongs to the blob.
        if let Err(e) = std::io::copy(&mut source, &mut std::io::sink()) {
            let failure = source.failure.take();
            return Err(failed(failure.unwrap_or_else(|| io("read", e))));
        }
        let Source {
            hash, count, out, ..
        } = source;
        drop(out);
        let digest = sha256_digest(hash);
        if count != size || digest != want {
            return Err(failed(Failure::Mismatch));
        }
        if let Some(e) = unpack_error {
            return Err(failed(e.into()));
        }
        if let (Some(staged), Some((_, diff_id))) = (&staged, &unpack) {
            if let Err(e) = check_diff_id(&digest, &staged.meta().diff_id, diff_id) {
                return Err(failed(Failure::Other(e)));
            }
        }
        content.commit(&partial, &digest)?;
        if let Some(staged) = staged {
            staged.commit()?;
        }
        Ok(())
    }
}

struct Source {
    prefix: Option<std::io::Take<std::fs::File>>,
    rx: mpsc::Receiver<Chunk>,
    out: std::fs::File,
    pending: Bytes,
    ended: bool,
    hash: Sha256,
    count: u64,
    consumed: Arc<AtomicU64>,
    failure: Option<Failure>,
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(prefix) = &mut self.prefix {
            let n = prefix.read(buf)?;
            if n > 0 {
                self.hash.update(&buf[..n]);
                self.count += n as u64;
                self.consumed.fetch_add(n as u64, Ordering::Relaxed);
                return Ok(n);
            }
            self.prefix = None;
        }
        while self.pending.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(bytes)) => {
                    if let Err(e) = self.out.write_all(&bytes) {
                        let why = e.to_string();
                        self.failure = Some(Failure::Other(RegistryError::Internal(format!(
                            "write staged layer: {why}"
                        ))));
                        return Err(e);
                    }
                    self.hash.update(&bytes);
                    self.count += bytes.len() as u64;
                    self.pending = bytes;
                }
                Some(Chunk::End) => self.ended = true,
                Some(Chunk::TooLong) => {
                    self.failure = Some(Failure::Mismatch);
                    return Err(std::io::Error::other("more data than the descriptor says"));
                }
                Some(Chunk::Failed(why)) => {
                    self.failure = Some(Failure::Interrupted(why.clone()));
                    return Err(std::io::Error::other(why));
                }
                None => {
                    let why = "the download stopped".to_owned();
                    self.failure = Some(Failure::Interrupted(why.clone()));
                    return Err(std::io::Error::other(why));
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
