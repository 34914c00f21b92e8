//! `berth registry serve`: an OCI distribution registry.
//!
//! It speaks the distribution spec's pull, push (monolithic, POST+PUT, chunked, cross-repo
//! mount), content discovery (tags and catalog, paginated) and content management (delete
//! of tags, manifests and blobs), with Docker's headers and the spec's error bodies; basic
//! auth from an htpasswd file of bcrypt entries; TLS (rustls) when given a certificate.
//!
//! Storage, under `--root DIR`:
//!
//! ```text
//! content/blobs/sha256/<hex>       blobs and manifests, verified (berth-image's ContentStore,
//!                                  the daemon's layout)
//! content/ingest/                  uploads in progress (emptied at start)
//! repositories/<name>/_repo.json   tags, manifests (media type, size), linked blobs
//! ```
//!
//! Uploads and downloads are streamed; a blob becomes visible only once its digest is
//! checked; metadata files are replaced atomically.

mod auth;
mod blobs;
mod discovery;
pub mod error;
mod manifests;
mod meta;
pub mod names;
pub mod range;
mod tls;
mod uploads;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_image::content::ContentStore;

use error::{Code, RegistryError};
use names::{parse_route, percent_decode, Query, Route};

/// How `berth registry serve` runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (port 0 picks one; [`Server::local_addr`] tells which).
    pub addr: SocketAddr,
    /// Where blobs and repository metadata live.
    pub root: PathBuf,
    /// An htpasswd file (bcrypt entries): every request must then carry basic auth.
    pub htpasswd: Option<PathBuf>,
    /// PEM certificate chain and key: serve HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// Upload sessions untouched this long are dropped with their data.
    pub upload_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerConfig {
    pub fn new(addr: SocketAddr, root: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            addr,
            root: root.into(),
            htpasswd: None,
            tls: None,
            upload_timeout: Duration::from_secs(3600),
        }
    }
}

/// Why the registry could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("content store: {0}")]
    Store(#[source] berth_image::ImageError),
    #[error("htpasswd: {0}")]
    Htpasswd(String),
    #[error("TLS: {0}")]
    Tls(String),
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    content: ContentStore,
    meta: meta::Meta,
    uploads: uploads::Uploads,
    auth: Option<Arc<auth::Htpasswd>>,
}

/// A registry bound to its address, ready to [`Server::run`].
pub struct Server {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    app: Arc<App>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    upload_timeout: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the storage under `config.root` (creating it; uploads a previous run left
    /// unfinished are removed), loads the htpasswd file and TLS keys, and binds the address.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let root = config.root.clone();
        let io = |context, path: PathBuf| {
            move |source| ServerError::Io {
                context,
                path,
                source,
            }
        };
        let content = ContentStore::open(&root).map_err(ServerError::Store)?;
        content.clean_ingest();
        let meta_dir = root.join("repositories");
        let meta = meta::Meta::open(&meta_dir).map_err(io("load repositories from", meta_dir))?;
        let auth = match &config.htpasswd {
            Some(path) => Some(Arc::new(
                auth::Htpasswd::load(path).map_err(ServerError::Htpasswd)?,
            )),
            None => None,
        };
        let tls = match &config.tls {
            Some(files) => Some(tls::acceptor(&files.cert, &files.key)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.addr,
            source,
        })?;
        Ok(Server {
            listener,
            addr,
            app: Arc::new(App {
                content,
                meta,
                uploads: uploads::Uploads::default(),
                auth,
            }),
            tls,
            upload_timeout: config.upload_timeout,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish (for up to ten
    /// seconds) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let router = router(self.app.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let expiry = {
            let app = self.app.clone();
            let idle = self.upload_timeout;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(
                    Duration::from_secs(30).min(idle.max(Duration::from_secs(1))),
                );
                loop {
                    tick.tick().await;
                    let n = app.uploads.expire(idle);
                    if n > 0 {
                        tracing::info!(sessions = n, "expired idle uploads");
                    }
                }
            })
        };
        tracing::info!(addr = %self.addr, tls = self.tls.is_some(), "registry listening");
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
                // Reap finished connections so the set does not grow.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let router = router.clone();
            let tls = self.tls.clone();
            let stop = stop_rx.clone();
            connections.spawn(async move {
                match tls {
                    None => serve_connection(tcp, router, stop).await,
                    Some(tls) => {
                        match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
                            Ok(Ok(stream)) => serve_connection(stream, router, stop).await,
                            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake: {e}"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        drop(self.listener);
        expiry.abort();
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            connections.abort_all();
        }
        tracing::info!("registry stopped");
        Ok(())
    }
}

/// One HTTP/1.1 connection, closed gracefully when `stop` turns true.
async fn serve_connection<IO>(io: IO, router: Router, mut stop: tokio::sync::watch::Receiver<bool>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(router);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60))
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!("connection: {e}");
            }
            return;
        }
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// Binds and serves until `shutdown` resolves.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    Server::bind(config).await?.run(shutdown).await
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v2", any(handle))
        .route("/v2/", any(handle))
        .route("/v2/{*rest}", any(handle))
        .fallback(|| async { not_found() })
        .with_state(app)
}

fn not_found() -> Response {
    RegistryError::new(Code::Unsupported)
        .status(StatusCode::NOT_FOUND)
        .message("no such endpoint")
        .into_response()
}

fn unauthorized() -> Response {
    RegistryError::new(Code::Unauthorized)
        .header(
            "WWW-Authenticate",
            format!("Basic realm=\"{}\"", auth::REALM),
        )
        .into_response()
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let mut resp = if let Some(auth) = app.auth.clone() {
        if auth.authorized(&parts.headers).await {
            route(&app, parts, body).await
        } else {
            unauthorized()
        }
    } else {
        route(&app, parts, body).await
    };
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn route(app: &Arc<App>, parts: axum::http::request::Parts, body: Body) -> Response {
    let path = percent_decode(parts.uri.path(), false);
    let query = Query::parse(parts.uri.query());
    let route = match parse_route(&path) {
        None => return not_found(),
        Some(Err(e)) => return e.into_response(),
        Some(Ok(r)) => r,
    };
    let headers = &parts.headers;
    let m = &parts.method;
    let head = *m == Method::HEAD;
    let get_or_head = *m == Method::GET || head;
    let result = match route {
        Route::Base if get_or_head => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response()),
        Route::Catalog if *m == Method::GET => discovery::catalog(app, &query),
        Route::Tags { name } if *m == Method::GET => discovery::tags(app, &name, &query),
        Route::Manifest { name, reference } => match *m {
            _ if get_or_head => manifests::get(app, &name, &reference, head).await,
            Method::PUT => manifests::put(app, &name, &reference, &query, headers, body).await,
            Method::DELETE => manifests::delete(app, &name, &reference).await,
            _ => Err(method_not_allowed()),
        },
        Route::Blob { name, digest } => match *m {
            _ if get_or_head => blobs::get(app, &name, &digest, headers, head).await,
            Method::DELETE => blobs::delete(app, &name, &digest).await,
            _ => Err(method_not_allowed()),
        },
        Route::Upload { name, id } if id.is_empty() => match *m {
            Method::POST => blobs::start(app, &name, &query, headers, body).await,
            _ => Err(method_not_allowed()),
        },
        Route::Upload { name, id } => match *m {
            Method::GET => blobs::status(app, &name, &id).await,
            Method::PATCH => blobs::patch(app, &name, &id, headers, body).await,
            Method::PUT => blobs::put(app, &name, &id, &query, headers, body).await,
            Method::DELETE => blobs::cancel(app, &name, &id).await,
            _ => Err(method_not_allowed()),
        },
        _ => Err(method_not_allowed()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn method_not_allowed() -> RegistryError {
    RegistryError::new(Code::Unsupported).message("method not allowed here")
}
