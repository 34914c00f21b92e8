//! The registry client: pull and push against any registry that follows the OCI distribution
//! spec, with Docker's reference normalisation, auth, platforms, progress and error texts.
//!
//! - [`Client::pull`]: manifest (or index → the platform's manifest), config, then the layers,
//!   up to [`ClientOptions::max_concurrent_downloads`] at a time, each streamed into the
//!   content store's resumable staging file while it is hashed and unpacked into a staging
//!   snapshot; both become visible only when the blob matches its digest and the layer its
//!   diff ID. An interrupted download resumes with a `Range` request from what was staged.
//!   The image is then registered with [`berth_image::store::ImageStore::add_image`].
//! - [`Client::push`]: blobs the registry lacks (a `HEAD` each) are mounted from another
//!   repository of the same registry when one is known to have them, else uploaded in one
//!   `PUT` or in `PATCH` chunks; then the manifest (an index after its manifests).
//! - [`Client::login`] / [`logout`], [`Client::check_login`] (the daemon's `POST /auth`),
//!   credentials from a [`DockerConfig`] or Docker's [`AuthConfig`] (`X-Registry-Auth`).
//! - [`Client::inspect_manifest`], [`Client::distribution_inspect`], [`Client::list_tags`].
//! - [`progress`]: the events, and the JSON lines Docker's API streams for them.
//!
//! # Why not `oci-client`
//! DESIGN named `oci-client`; version 0.18 was evaluated. It can stream a blob and ask for a
//! byte offset, but:
//! - it is built on `reqwest` 0.13, whose `rustls` feature brings aws-lc; ring would need its
//!   `rustls-tls-no-provider` feature plus a process-wide `CryptoProvider::install_default`,
//!   global state a library should not set behind the daemon's back;
//! - its auth knows anonymous, basic and a fixed bearer token: no OAuth refresh with the
//!   identity token `docker login` stores, no `config.json` or credential helpers, and one
//!   token per image and operation, so a cross-repository mount never asks for `pull` on the
//!   source repository; its `mount_blob` also treats the registry's `202` (mount declined,
//!   upload session opened) as an error instead of uploading through that session;
//! - unpacking while downloading, resuming from our staging file and per-chunk progress on
//!   uploads need the byte streams in our hands on both sides anyway.
//!
//! The protocol is small, so this client speaks it directly on `reqwest` 0.12 (hyper 1
//! underneath, as axum already brings in) with `rustls` on the `ring` provider, webpki
//! roots plus the system's. `reqwest` gives pooling, proxies from the environment,
//! redirects (blob downloads are redirected to CDNs; it drops `Authorization` when the host
//! changes) and streaming bodies both ways.

mod auth;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod manifest;
pub mod platform;
pub mod progress;
mod pull;
mod push;
pub mod search;
mod sources;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{Digest, Reference};
use berth_image::oci::{ImageConfig, ImageIndex, Manifest, Platform};
use reqwest::Method;
use serde::Deserialize;

pub use auth::{parse_challenges, Challenge};
pub use credentials::{default_config_path, AuthConfig, DockerConfig};
pub use endpoint::Endpoint;
pub use error::{ApiError, RegistryError, Result};
pub use manifest::RemoteManifest;
pub use platform::{format_platform, parse_platform};
pub use progress::{error_json, to_json, LayerState, Progress};
pub use pull::{PullOptions, Pulled};
pub use push::{PushOptions, Pushed};

use auth::{api_error, read_limited, repository_scope, AuthCache, Credentials, Req, Session};
use sources::BlobSources;

/// How the client behaves; [`ClientOptions::default`] is Docker's defaults.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries spoken to over plain HTTP besides loopback ones: `host[:port]` or CIDR
    /// networks (the daemon's `--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// Layers downloaded at once (the daemon's `--max-concurrent-downloads`, 3).
    pub max_concurrent_downloads: usize,
    /// Layers uploaded at once (`--max-concurrent-uploads`, 5).
    pub max_concurrent_uploads: usize,
    /// Where credentials come from when a call brings none (`None`: anonymous). The daemon
    /// leaves this empty (clients send theirs in `X-Registry-Auth`); a CLI talking to
    /// registries itself points it at `~/.docker/config.json`.
    pub docker_config: Option<DockerConfig>,
    /// Where to remember which repositories hold which blobs (for cross-repository mounts
    /// on push); in memory only when `None`.
    pub metadata_dir: Option<PathBuf>,
    /// Blobs up to this size are uploaded in one `PUT`; larger ones in chunks.
    pub monolithic_upload_limit: u64,
    /// The size of one `PATCH` of a chunked upload.
    pub upload_chunk_size: u64,
    /// How often a failed download is resumed before the pull fails.
    pub download_retries: u32,
    /// The wait before the first retry (doubling each time).
    pub retry_delay: Duration,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            docker_config: None,
            metadata_dir: None,
            monolithic_upload_limit: 32 << 20,
            upload_chunk_size: 16 << 20,
            download_retries: 5,
            retry_delay: Duration::from_secs(1),
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// A registry client. Cheap to clone; clones share connections, tokens and what they know
/// of blobs' whereabouts.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    cache: Arc<AuthCache>,
    sources: BlobSources,
}

/// What `docker login` learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// `Login Succeeded`, as Docker's `POST /auth` says it.
    pub status: String,
    /// An identity (refresh) token the registry's token server gave, to store instead of
    /// the password.
    pub identity_token: Option<String>,
    /// The registry logged in to (`docker.io`, `localhost:5000`).
    pub registry: String,
}

/// `GET /distribution/{name}/json`: what a name points at, and for which platforms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionInspect {
    pub descriptor: berth_image::oci::Descriptor,
    pub platforms: Vec<Platform>,
}

/// The events a pull or push reports, shared by its tasks.
pub(crate) type Emit = Arc<dyn Fn(Progress) + Send + Sync>;

/// How often long operations report their progress.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Runs `fut`, calling `tick` with `counter`'s value every [`TICK`] until it is done.
pub(crate) async fn tick_while<T>(
    fut: impl Future<Output = T>,
    counter: &AtomicU64,
    mut tick: impl FnMut(u64),
) -> T {
    tokio::pin!(fut);
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    interval.tick().await;
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = interval.tick() => tick(counter.load(Ordering::Relaxed)),
        }
    }
}

impl Client {
    pub fn new(options: ClientOptions) -> Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| RegistryError::Internal(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                sources: BlobSources::new(options.metadata_dir.clone()),
                options,
                cache: Arc::default(),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Where `registry` is reached.
    pub fn endpoint(&self, registry: &str) -> Endpoint {
        Endpoint::resolve(registry, &self.inner.options.insecure_registries)
    }

    /// The credentials for `registry`: those given, else the configured file's, else none.
    async fn credentials(&self, registry: &str, given: Option<&AuthConfig>) -> Result<Credentials> {
        if let Some(a) = given.filter(|a| !a.is_empty()) {
            return Ok(Credentials::from_auth(Some(a)));
        }
        match &self.inner.options.docker_config {
            Some(cfg) => Ok(Credentials::from_auth(cfg.get(registry).await?.as_ref())),
            None => Ok(Credentials::Anonymous),
        }
    }

    pub(crate) async fn session(
        &self,
        registry: &str,
        auth: Option<&AuthConfig>,
        scopes: Vec<String>,
    ) -> Result<Arc<Session>> {
        let endpoint = self.endpoint(registry);
        let creds = self.credentials(&endpoint.registry, auth).await?;
        Ok(Arc::new(Session::new(
            self.inner.http.clone(),
            endpoint,
            creds,
            scopes,
            self.inner.cache.clone(),
        )))
    }

    /// `docker manifest inspect NAME`: the index or manifest the name points at, as the
    /// registry has it.
    pub async fn inspect_manifest(
        &self,
        reference: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<RemoteManifest> {
        let session = self
            .session(
                &reference.registry,
                auth,
                vec![repository_scope(&reference.repository, "pull")],
            )
            .await?;
        manifest::get_manifest(&session, &reference.repository, &tag_or_digest(reference))
            .await
            .map_err(|e| match e {
                RegistryError::Api(api) if api.status == 404 || api.code == "MANIFEST_UNKNOWN" => {
                    RegistryError::NoSuchManifest(reference.familiar())
                }
                e => pull::pull_error(e, reference),
            })
    }

    /// `GET /distribution/{name}/json`: the descriptor a name points at and its platforms
    /// (an index's entries; a single manifest's from its config).
    pub async fn distribution_inspect(
        &self,
        reference: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<DistributionInspect> {
        let session = self
            .session(
                &reference.registry,
                auth,
                vec![repository_scope(&reference.repository, "pull")],
            )
            .await?;
        let top =
            manifest::get_manifest(&session, &reference.repository, &tag_or_digest(reference))
                .await
                .map_err(|e| pull::pull_error(e, reference))?;
        let platforms = if top.is_index() {
            let index: ImageIndex = serde_json::from_slice(&top.bytes).map_err(|e| {
                RegistryError::InvalidManifest(format!("invalid index {}: {e}", top.digest))
            })?;
            index
                .manifests
                .iter()
                .filter_map(|d| d.platform.clone())
                .filter(|p| p.os != "unknown")
                .collect()
        } else {
            let m: Manifest = serde_json::from_slice(&top.bytes).map_err(|e| {
                RegistryError::InvalidManifest(format!("invalid manifest {}: {e}", top.digest))
            })?;
            let bytes =
                manifest::get_small_blob(&session, &reference.repository, &m.config, "config")
                    .await?;
            let c: ImageConfig = serde_json::from_slice(&bytes).map_err(|e| {
                RegistryError::InvalidManifest(format!("invalid image config: {e}"))
            })?;
            vec![Platform {
                os: c.os().to_owned(),
                architecture: c.architecture.clone(),
                variant: c.variant.clone(),
            }]
        };
        Ok(DistributionInspect {
            descriptor: top.descriptor(),
            platforms,
        })
    }

    /// The repository's tags (`pull -a`), every page of them.
    pub async fn list_tags(
        &self,
        reference: &Reference,
        auth: Option<&AuthConfig>,
    ) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let session = self
            .session(
                &reference.registry,
                auth,
                vec![repository_scope(&reference.repository, "pull")],
            )
            .await?;
        let mut url = session
            .endpoint
            .url(&format!("/v2/{}/tags/list", reference.repository));
        let mut out = Vec::new();
        for _ in 0..1000 {
            let resp = session.send(&Req::new(Method::GET, url.clone())).await?;
            if !resp.status().is_success() {
                return Err(pull::pull_error(
                    RegistryError::Api(api_error(resp).await),
                    reference,
                ));
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link)
                .map(|l| session.endpoint.location(&l));
            let page: Tags = serde_json::from_slice(&read_limited(resp, 16 << 20).await?)
                .map_err(|e| RegistryError::InvalidManifest(format!("invalid tag list: {e}")))?;
            out.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// What the daemon's `POST /auth` does: checks `auth` against `server`'s `/v2/` (a
    /// token from its realm for Bearer registries). Stores nothing.
    pub async fn check_login(&self, server: &str, auth: &AuthConfig) -> Result<LoginOutcome> {
        let registry = endpoint::canonical_registry(if server.is_empty() {
            &auth.server_address
        } else {
            server
        });
        let endpoint = self.endpoint(&registry);
        let creds = Credentials::from_auth(Some(auth));
        let identity_token = auth::check_login(&self.inner.http, &endpoint, &creds).await?;
        Ok(LoginOutcome {
            status: "Login Succeeded".into(),
            identity_token,
            registry,
        })
    }

    /// `docker login`: [`Client::check_login`], then the credentials (or the identity
    /// token the registry gave) go into `config`.
    pub async fn login(
        &self,
        server: &str,
        auth: &AuthConfig,
        config: &DockerConfig,
    ) -> Result<LoginOutcome> {
        let outcome = self.check_login(server, auth).await?;
        let mut stored = auth.clone();
        if let Some(t) = &outcome.identity_token {
            stored.identity_token = t.clone();
            stored.password.clear();
        }
        config.store(&outcome.registry, &stored).await?;
        Ok(outcome)
    }
}

/// `docker logout [SERVER]`: forgets the stored credentials; whether there were any (Docker
/// says "Not logged in to …" when not).
pub async fn logout(config: &DockerConfig, server: &str) -> Result<bool> {
    config.erase(server).await
}

/// The tag, else the digest, a reference names (`latest` when neither).
pub(crate) fn tag_or_digest(r: &Reference) -> String {
    match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".into(),
    }
}

/// The reference `POST /images/create?fromImage=…&tag=…` asks for, as Docker combines them:
/// a `tag` that is a digest pins the digest, another replaces the tag. Malformed names are
/// refused here, before any request.
pub fn reference_for_pull(from_image: &str, tag: Option<&str>) -> Result<Reference> {
    let base: Reference = from_image.parse()?;
    let Some(tag) = tag.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(base);
    };
    if let Ok(d) = tag.parse::<Digest>() {
        return Ok(Reference {
            tag: None,
            digest: Some(d),
            ..base
        });
    }
    let tagged: Reference = format!("{}:{tag}", base.name()).parse()?;
    Ok(Reference {
        digest: base.digest,
        ..tagged
    })
}

/// The `rel="next"` target of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// The current time as the image store records it.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_references_as_docker_combines_them() {
        let r = reference_for_pull("busybox", None).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = reference_for_pull("busybox", Some("1.36")).unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:1.36");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = reference_for_pull("localhost:5000/app", Some(d)).unwrap();
        assert_eq!(r.to_string(), format!("localhost:5000/app@{d}"));
        let r = reference_for_pull(&format!("busybox@{d}"), None).unwrap();
        assert_eq!(r.tag, None);
        for bad in ["Busybox", "a//b", "busybox:", ""] {
            assert!(matches!(
                reference_for_pull(bad, None),
                Err(RegistryError::Reference(_))
            ));
        }
        assert!(reference_for_pull("busybox", Some("bad tag")).is_err());
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"<a>; rel="prev""#), None);
    }
}
