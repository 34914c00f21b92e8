//! `docker push`: every blob the registry lacks (a `HEAD` each) is mounted from another
//! repository of the same registry when one is known to hold it, else uploaded, in one `PUT`
//! up to [`ClientOptions::monolithic_upload_limit`] and in `PATCH` chunks above; then the
//! manifest. An index goes after the manifests it lists (those in the store are pushed with
//! their blobs; the others must be in the registry already).
//!
//! [`ClientOptions::monolithic_upload_limit`]: super::ClientOptions::monolithic_upload_limit

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use berth_core::{Digest, Reference};
use berth_image::content::ContentStore;
use berth_image::oci::{is_index, is_manifest, Descriptor, ImageConfig, ImageIndex, Manifest};
use berth_image::store::ImageStore;
use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::auth::{api_error, repository_scope, Req, ReqBody, Session};
use super::credentials::AuthConfig;
use super::error::{RegistryError, Result};
use super::manifest::media_type_of;
use super::progress::{short_id, LayerState, Progress};
use super::{tick_while, Client, Emit};

/// How many other repositories a blob is tried from before it is uploaded.
const MOUNT_TRIES: usize = 3;

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Credentials (from `X-Registry-Auth`); else the client's `docker_config`, else none.
    pub auth: Option<AuthConfig>,
}

/// What a push left in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub reference: Reference,
    /// The manifest's (or index's) digest, as the registry stored it.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A stretch of a file as a request body, counting what went out.
pub(crate) struct FileChunks {
    file: tokio::fs::File,
    remaining: u64,
    sent: Arc<AtomicU64>,
    buf: Vec<u8>,
}

impl FileChunks {
    pub fn open(path: &Path, offset: u64, len: u64, sent: Arc<AtomicU64>) -> std::io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(FileChunks {
            file: tokio::fs::File::from_std(f),
            remaining: len,
            sent,
            buf: vec![0; 256 * 1024],
        })
    }
}

impl futures_core::Stream for FileChunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = this.buf.len().min(this.remaining as usize);
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into())));
                }
                this.remaining -= n as u64;
                this.sent.fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(Bytes::copy_from_slice(rb.filled()))))
            }
        }
    }
}

/// One image manifest to push with its blobs.
struct Image {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
    manifest: Manifest,
    /// The layers' diff IDs (their IDs in progress), when the config has them.
    diff_ids: Vec<Digest>,
}

fn read_image(content: &ContentStore, digest: &Digest, bytes: Vec<u8>) -> Result<Image> {
    let media_type = media_type_of(None, &bytes)?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::InvalidManifest(format!("image manifest {digest}: {e}")))?;
    let diff_ids = content
        .read_blob(&manifest.config.digest)
        .ok()
        .and_then(|b| serde_json::from_slice::<ImageConfig>(&b).ok())
        .map(|c| c.rootfs.diff_ids)
        .unwrap_or_default();
    Ok(Image {
        digest: digest.clone(),
        media_type,
        bytes,
        manifest,
        diff_ids,
    })
}

/// What push needs from the store: the top document (bytes, media type), the images under
/// it, and the index's entries that are not in the store.
struct Plan {
    bytes: Vec<u8>,
    media_type: String,
    images: Vec<Image>,
    elsewhere: Vec<Descriptor>,
}

fn plan(content: &ContentStore, top: &Digest) -> Result<Plan> {
    let bytes = content.read_blob(top)?;
    let media_type = media_type_of(None, &bytes)?;
    let mut images = Vec::new();
    let mut elsewhere = Vec::new();
    if is_index(&media_type) {
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::InvalidManifest(format!("image index {top}: {e}")))?;
        for d in index.manifests {
            if is_manifest(&d.media_type) && content.exists(&d.digest) {
                let b = content.read_blob(&d.digest)?;
                images.push(read_image(content, &d.digest, b)?);
            } else {
                elsewhere.push(d);
            }
        }
    } else {
        images.push(read_image(content, top, bytes.clone())?);
    }
    for image in &images {
        for blob in std::iter::once(&image.manifest.config).chain(&image.manifest.layers) {
            if !content.exists(&blob.digest) {
                return Err(berth_image::ImageError::BlobNotFound(blob.digest.clone()).into());
            }
        }
    }
    Ok(Plan {
        bytes,
        media_type,
        images,
        elsewhere,
    })
}

/// `<location>?digest=<digest>` (or `&digest=` when it has a query already).
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

fn location_of(resp: &Response) -> Option<String> {
    resp.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn expect(resp: Response, ok: &[StatusCode]) -> Result<Response> {
    if ok.contains(&resp.status()) {
        Ok(resp)
    } else {
        Err(RegistryError::Api(api_error(resp).await))
    }
}

impl Client {
    /// `docker push`: sends the image whose manifest (or index) is `manifest` in `store` to
    /// `reference` (its tag, or by digest when it has none).
    pub async fn push<F>(
        &self,
        store: &Arc<ImageStore>,
        reference: &Reference,
        manifest: &Digest,
        options: &PushOptions,
        progress: F,
    ) -> Result<Pushed>
    where
        F: Fn(Progress) + Send + Sync + 'static,
    {
        let emit: Emit = Arc::new(progress);
        let repo = reference.repository.clone();
        emit(Progress::Message {
            id: None,
            text: format!("The push refers to repository [{}]", reference.name()),
        });
        let Plan {
            bytes: top_bytes,
            media_type: top_type,
            images,
            elsewhere,
        } = {
            let content = store.content.clone();
            let top = manifest.clone();
            tokio::task::spawn_blocking(move || plan(&content, &top))
                .await
                .map_err(|e| RegistryError::Internal(e.to_string()))??
        };
        let mut blobs: BTreeMap<Digest, Descriptor> = BTreeMap::new();
        for image in &images {
            for b in std::iter::once(&image.manifest.config).chain(&image.manifest.layers) {
                blobs.entry(b.digest.clone()).or_insert_with(|| b.clone());
            }
        }
        let mut pinned: Vec<Digest> = blobs.keys().cloned().collect();
        pinned.push(manifest.clone());
        pinned.extend(images.iter().map(|i| i.digest.clone()));
        let pin = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.pin(pinned))
                .await
                .map_err(|e| RegistryError::Internal(e.to_string()))?
        };

        let endpoint = self.endpoint(&reference.registry);
        let mut mounts: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let mut scopes = vec![repository_scope(&repo, "pull,push")];
        for digest in blobs.keys() {
            let mut from = self
                .inner
                .sources
                .candidates(digest, &endpoint.registry, &repo);
            from.truncate(MOUNT_TRIES);
            for f in &from {
                let scope = repository_scope(f, "pull");
                if !scopes.contains(&scope) {
                    scopes.push(scope);
                }
            }
            mounts.insert(digest.clone(), from);
        }
        let session = self
            .session(&reference.registry, options.auth.as_ref(), scopes)
            .await?;

        let child_of_index = is_index(&top_type);
        for image in &images {
            self.push_image_blobs(&session, store, &repo, image, &mounts, &emit)
                .await?;
            if child_of_index {
                put_manifest(
                    &session,
                    &repo,
                    &image.digest.to_string(),
                    &image.media_type,
                    &image.bytes,
                    &image.digest,
                )
                .await?;
            }
        }
        for d in &elsewhere {
            let url = session
                .endpoint
                .url(&format!("/v2/{repo}/manifests/{}", d.digest));
            let resp = session
                .send(
                    &Req::new(Method::HEAD, url)
                        .header(reqwest::header::ACCEPT, super::manifest::ACCEPT_MANIFESTS),
                )
                .await?;
            if !resp.status().is_success() {
                return Err(RegistryError::InvalidManifest(format!(
                    "manifest {} of the index is neither in the image store nor in {}",
                    d.digest,
                    reference.name()
                )));
            }
        }
        let target = match &reference.tag {
            Some(t) => t.clone(),
            None => manifest.to_string(),
        };
        put_manifest(&session, &repo, &target, &top_type, &top_bytes, manifest).await?;
        let known: Vec<Digest> = blobs.keys().cloned().collect();
        self.inner
            .sources
            .add(&known, &session.endpoint.registry, &repo);
        drop(pin);
        let size = top_bytes.len() as u64;
        if let Some(tag) = &reference.tag {
            emit(Progress::Message {
                id: None,
                text: format!("{tag}: digest: {manifest} size: {size}"),
            });
            emit(Progress::Pushed {
                tag: tag.clone(),
                digest: manifest.clone(),
                size,
            });
        }
        Ok(Pushed {
            reference: reference.clone(),
            digest: manifest.clone(),
            size,
        })
    }

    /// An image's layers ([`ClientOptions::max_concurrent_uploads`] at a time), then its
    /// config.
    ///
    /// [`ClientOptions::max_concurrent_uploads`]: super::ClientOptions::max_concurrent_uploads
    async fn push_image_blobs(
        &self,
        session: &Arc<Session>,
        store: &ImageStore,
        repo: &str,
        image: &Image,
        mounts: &BTreeMap<Digest, Vec<String>>,
        emit: &Emit,
    ) -> Result<()> {
        let options = &self.inner.options;
        let limit = Arc::new(Semaphore::new(options.max_concurrent_uploads.max(1)));
        let uploader = |desc: &Descriptor, id: Option<String>| BlobUpload {
            session: session.clone(),
            content: store.content.clone(),
            repo: repo.to_owned(),
            desc: desc.clone(),
            id,
            mounts: mounts.get(&desc.digest).cloned().unwrap_or_default(),
            emit: emit.clone(),
            monolithic_limit: options.monolithic_upload_limit,
            chunk: options.upload_chunk_size.max(1),
        };
        let jobs: Vec<BlobUpload> = image
            .manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let id = short_id(image.diff_ids.get(i).unwrap_or(&layer.digest));
                uploader(layer, Some(id))
            })
            .collect();
        for job in &jobs {
            job.state(LayerState::Preparing);
        }
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
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(RegistryError::Internal(format!("layer upload: {e}"))),
            }
        }
        uploader(&image.manifest.config, None).run().await
    }
}

async fn put_manifest(
    session: &Session,
    repo: &str,
    target: &str,
    media_type: &str,
    bytes: &[u8],
    digest: &Digest,
) -> Result<()> {
    let url = session
        .endpoint
        .url(&format!("/v2/{repo}/manifests/{target}"));
    let req = Req::new(Method::PUT, url)
        .header(CONTENT_TYPE, media_type)
        .body(ReqBody::Bytes(Bytes::copy_from_slice(bytes)));
    let resp = expect(
        session.send(&req).await?,
        &[StatusCode::CREATED, StatusCode::OK, StatusCode::ACCEPTED],
    )
    .await?;
    let stored = resp
        .headers()
        .get("Docker-Content-Digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok());
    match stored {
        Some(d) if d != *digest => Err(RegistryError::InvalidManifest(format!(
            "the registry stored manifest {digest} as {d}"
        ))),
        _ => Ok(()),
    }
}

struct BlobUpload {
    session: Arc<Session>,
    content: ContentStore,
    repo: String,
    desc: Descriptor,
    /// The ID progress shows (layers); configs go quietly.
    id: Option<String>,
    /// Other repositories of the registry known to hold the blob.
    mounts: Vec<String>,
    emit: Emit,
    monolithic_limit: u64,
    chunk: u64,
}

impl BlobUpload {
    fn state(&self, state: LayerState) {
        if let Some(id) = &self.id {
            (self.emit)(Progress::Layer {
                id: id.clone(),
                state,
            });
        }
    }

    fn url(&self, path: &str) -> String {
        self.session.endpoint.url(path)
    }

    async fn run(self) -> Result<()> {
        let digest = &self.desc.digest;
        let head = self
            .session
            .send(&Req::new(
                Method::HEAD,
                self.url(&format!("/v2/{}/blobs/{digest}", self.repo)),
            ))
            .await?;
        if head.status().is_success() {
            self.state(LayerState::LayerAlreadyExists);
            return Ok(());
        }
        if head.status() != StatusCode::NOT_FOUND {
            return Err(RegistryError::Api(api_error(head).await));
        }
        let mut location = None;
        for from in &self.mounts {
            let url = self.url(&format!(
                "/v2/{}/blobs/uploads/?mount={digest}&from={from}",
                self.repo
            ));
            let resp = self
                .session
                .send(&Req::new(Method::POST, url).header(CONTENT_LENGTH, "0"))
                .await?;
            match resp.status() {
                StatusCode::CREATED => {
                    self.state(LayerState::MountedFrom(from.clone()));
                    return Ok(());
                }
                // Not mounted; the registry opened an upload instead: use it.
                StatusCode::ACCEPTED => {
                    location = location_of(&resp);
                    break;
                }
                _ => continue,
            }
        }
        let location = match location {
            Some(l) => l,
            None => {
                let url = self.url(&format!("/v2/{}/blobs/uploads/", self.repo));
                let resp = expect(
                    self.session
                        .send(&Req::new(Method::POST, url).header(CONTENT_LENGTH, "0"))
                        .await?,
                    &[StatusCode::ACCEPTED],
                )
                .await?;
                location_of(&resp).ok_or_else(|| {
                    RegistryError::InvalidManifest("the registry gave no upload location".into())
                })?
            }
        };
        self.upload(location).await?;
        self.state(LayerState::Pushed);
        Ok(())
    }

    async fn upload(&self, location: String) -> Result<()> {
        let digest = &self.desc.digest;
        let size = self.desc.size;
        let path: PathBuf = self.content.path(digest);
        let endpoint = &self.session.endpoint;
        if size <= self.monolithic_limit {
            let sent = Arc::new(AtomicU64::new(0));
            let req = Req::new(
                Method::PUT,
                with_digest(&endpoint.location(&location), digest),
            )
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(ReqBody::File {
                path,
                offset: 0,
                len: size,
                sent: sent.clone(),
            });
            let resp = tick_while(self.session.send(&req), &sent, |current| {
                self.state(LayerState::Pushing {
                    current,
                    total: size,
                })
            })
            .await?;
            expect(resp, &[StatusCode::CREATED, StatusCode::NO_CONTENT]).await?;
            return Ok(());
        }
        let mut location = location;
        let mut offset = 0;
        while offset < size {
            let n = self.chunk.min(size - offset);
            let sent = Arc::new(AtomicU64::new(0));
            let req = Req::new(Method::PATCH, endpoint.location(&location))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_RANGE, format!("{offset}-{}", offset + n - 1))
                .body(ReqBody::File {
                    path: path.clone(),
                    offset,
                    len: n,
                    sent: sent.clone(),
                });
            let resp = tick_while(self.session.send(&req), &sent, |current| {
                self.state(LayerState::Pushing {
                    current: offset + current,
                    total: size,
                })
            })
            .await?;
            let resp = expect(resp, &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT]).await?;
            location = location_of(&resp).unwrap_or(location);
            offset += n;
            self.state(LayerState::Pushing {
                current: offset,
                total: size,
            });
        }
        let req = Req::new(
            Method::PUT,
            with_digest(&endpoint.location(&location), digest),
        )
        .header(CONTENT_LENGTH, "0");
        expect(
            self.session.send(&req).await?,
            &[StatusCode::CREATED, StatusCode::NO_CONTENT],
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_urls() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(
            with_digest("http://r/v2/x/blobs/uploads/u", &d),
            format!("http://r/v2/x/blobs/uploads/u?digest={d}")
        );
        assert_eq!(
            with_digest("http://r/v2/x/blobs/uploads/u?_state=s", &d),
            format!("http://r/v2/x/blobs/uploads/u?_state=s&digest={d}")
        );
    }
}
