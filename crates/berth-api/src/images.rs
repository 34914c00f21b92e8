//! `/images/...`: import (`POST /images/create?fromSrc=-`), list (`GET /images/json`), tag,
//! remove, inspect, history, save (`GET /images/get`, `GET /images/{name}/get`), load
//! (`POST /images/load`) and prune.
//!
//! Image names may contain slashes (`localhost:5000/app`), so the per-image endpoints are
//! reached through one catch-all route and told apart by their last segment, as Docker's
//! router does with `{name:.*}`.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bollard_stubs::models::{
    ContainerConfig, ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect,
    ImagePruneResponse, ImageSummary,
};
use futures_util::StreamExt;

use crate::query::Query;
use crate::version::ApiVersion;
use crate::{blocking, ApiError, BackendResult, SharedBackend};
use berth_core::filters::Filters;

/// What `import` asks of the engine.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    pub repo: Option<String>,
    pub tag: Option<String>,
    /// Dockerfile-like `--change` instructions (`CMD ["sh"]`, `ENV A=1`, …).
    pub changes: Vec<String>,
    pub message: Option<String>,
}

/// What `GET /images/json` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    /// Intermediate images too.
    pub all: bool,
    /// RepoDigests filled in (berth always fills them).
    pub digests: bool,
    /// `dangling`, `reference`, `label`, `before`, `since`, `until`.
    pub filters: Filters,
}

/// `GET /images/{name}/json`: API 1.45's image and the fields Docker still sends beside it
/// (bollard's model has dropped them): `Parent` and `DockerVersion` always; `Container`,
/// `ContainerConfig` and `VirtualSize` before the API versions that removed them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImageInspectResponse {
    #[serde(flatten)]
    pub image: ImageInspect,
    /// The image a commit was made on (its ID), or empty.
    #[serde(rename = "Parent")]
    pub parent: String,
    #[serde(rename = "DockerVersion")]
    pub docker_version: String,
    /// The container a commit was made from (its ID), or empty.
    #[serde(rename = "Container", skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// That container's config (Docker's empty config for other images).
    #[serde(rename = "ContainerConfig", skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    #[serde(rename = "VirtualSize", skip_serializing_if = "Option::is_none")]
    pub virtual_size: Option<i64>,
}

impl ImageInspectResponse {
    /// The answer for a client that speaks API `version`: what that version has.
    pub fn for_version(mut self, version: ApiVersion) -> Self {
        if version.minor >= 44 {
            self.virtual_size = None;
        } else if self.virtual_size.is_none() {
            self.virtual_size = self.image.size;
        }
        if version.minor >= 45 {
            self.container = None;
            self.container_config = None;
        }
        self
    }
}

/// Writes a `docker save` archive; the engine has resolved the names and pinned the data
/// before handing it out, so errors after the first byte are rare (and end the stream).
pub type ExportWriter = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// What the image endpoints need from the engine.
pub trait ImageBackend {
    /// A directory for request bodies being received.
    fn upload_dir(&self) -> std::path::PathBuf;
    /// Imports the rootfs tarball at `tar` (plain, gzip or zstd); returns the image ID.
    fn import_image(&self, tar: &std::path::Path, req: ImportRequest) -> BackendResult<String>;
    /// Fetches the rootfs tarball at `url` into `into` (a new file; removed by the caller).
    fn fetch_import(&self, url: &str, into: &std::path::Path) -> BackendResult<()>;
    fn list_images(&self, req: ListRequest) -> BackendResult<Vec<ImageSummary>>;
    /// Names image `name` `repo:tag` (`tag` empty: `latest`).
    fn tag_image(&self, name: &str, repo: &str, tag: &str) -> BackendResult<()>;
    /// `docker rmi`; `prune` is Docker's (parents of the image; berth images have none).
    fn remove_image(
        &self,
        name: &str,
        force: bool,
        prune: bool,
    ) -> BackendResult<Vec<ImageDeleteResponseItem>>;
    fn inspect_image(&self, name: &str) -> BackendResult<ImageInspectResponse>;
    fn image_history(&self, name: &str) -> BackendResult<Vec<ImageHistoryResponseItem>>;
    fn prune_images(&self, filters: Filters) -> BackendResult<ImagePruneResponse>;
    /// Prepares `docker save` of `names`; the writer then streams the archive.
    fn export_images(&self, names: Vec<String>) -> BackendResult<ExportWriter>;
    /// Loads the archive at `tar`; returns the lines to report (`Loaded image: bb:latest`).
    fn load_images(&self, tar: &std::path::Path, quiet: bool) -> BackendResult<Vec<String>>;
}

/// Receives a request body into a file in `dir` (never whole in memory).
pub(crate) async fn body_to_file(
    body: Body,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, ApiError> {
    std::fs::create_dir_all(dir).map_err(|e| ApiError::internal(format!("upload dir: {e}")))?;
    let path = dir.join(format!(
        "upload-{}-{}",
        std::process::id(),
        UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut file = std::fs::File::create(&path)
        .map_err(|e| ApiError::internal(format!("upload file: {e}")))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            let _ = std::fs::remove_file(&path);
            ApiError::bad_request(format!("reading the request body: {e}"))
        })?;
        file.write_all(&chunk).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            ApiError::internal(format!("writing the upload: {e}"))
        })?;
    }
    Ok(path)
}

static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs `f` on the uploaded body in a blocking task; the upload is removed afterwards.
pub(crate) async fn with_upload<T: Send + 'static>(
    b: &SharedBackend,
    body: Body,
    f: impl FnOnce(SharedBackend, &std::path::Path) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let path = body_to_file(body, &b.upload_dir()).await?;
    let (backend, upload) = (b.clone(), path.clone());
    let result = tokio::task::spawn_blocking(move || f(backend, &upload))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")));
    let _ = std::fs::remove_file(&path);
    result?
}

/// Docker's JSON message stream: one object per line.
fn json_lines(messages: impl IntoIterator<Item = serde_json::Value>) -> Response {
    let body: String = messages.into_iter().map(|m| format!("{m}\r\n")).collect();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn create(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let mut url = None;
    match q.get("fromSrc") {
        Some("-") => {}
        // A URL: fetched by the daemon (Docker takes one without a scheme as http).
        Some(src) if !src.is_empty() => {
            url = Some(match src.contains("://") {
                true => src.to_owned(),
                false => format!("http://{src}"),
            })
        }
        _ => {
            let from_image = q.get("fromImage").unwrap_or("").to_owned();
            if from_image.is_empty() {
                return Err(ApiError::bad_request("fromImage or fromSrc is required"));
            }
            let req = crate::distribution::PullRequest {
                from_image,
                tag: q.get("tag").map(str::to_owned),
                platform: q
                    .get("platform")
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
                auth: crate::distribution::registry_auth(&headers),
            };
            return crate::distribution::pull(b, req).await;
        }
    }
    let req = ImportRequest {
        repo: q.get("repo").filter(|s| !s.is_empty()).map(str::to_owned),
        tag: q.get("tag").filter(|s| !s.is_empty()).map(str::to_owned),
        changes: q.all("changes"),
        message: q
            .get("message")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    };
    let id = match url {
        None => with_upload(&b, body, move |b, path| Ok(b.import_image(path, req)?)).await?,
        Some(url) => {
            let path = b.upload_dir().join(format!(
                "upload-{}-{}",
                std::process::id(),
                UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let (b2, p2) = (b.clone(), path.clone());
            let result = blocking(move || {
                b2.fetch_import(&url, &p2)?;
                b2.import_image(&p2, req)
            })
            .await;
            let _ = std::fs::remove_file(&path);
            result?
        }
    };
    // Docker answers with a JSON message stream; the last status is the image ID.
    Ok(json_lines([serde_json::json!({ "status": id })]))
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ImageSummary>>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let mut filters = Filters::from_query(&q)?;
    // The `filter` parameter of API < 1.41 is a reference pattern.
    if let Some(f) = q.get("filter").filter(|f| !f.is_empty()) {
        filters.add("reference", f);
    }
    let req = ListRequest {
        all: q.flag("all", false),
        digests: q.flag("digests", false),
        filters,
    };
    Ok(Json(blocking(move || b.list_images(req)).await?))
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ImagePruneResponse>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.prune_images(filters)).await?))
}

async fn load(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let quiet = Query::parse(raw.as_deref()).flag("quiet", true);
    let path = body_to_file(body, &b.upload_dir()).await?;
    let (backend, upload) = (b.clone(), path.clone());
    let result = blocking(move || backend.load_images(&upload, quiet)).await;
    let _ = std::fs::remove_file(&path);
    // Docker answers 200 once the upload is in and reports what went wrong with the archive
    // in the stream (clients such as docker-py look for `error` there).
    Ok(match result {
        Ok(lines) => json_lines(
            lines
                .into_iter()
                .map(|l| serde_json::json!({ "stream": format!("{l}\n") })),
        ),
        Err(e) => json_lines([serde_json::json!({
            "errorDetail": { "message": e.message },
            "error": e.message,
        })]),
    })
}

/// Bytes written into a bounded channel, so an archive streams at the client's pace (save,
/// export, `GET …/archive`).
pub(crate) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

async fn save(b: SharedBackend, names: Vec<String>) -> Result<Response, ApiError> {
    // Errors before the first byte (no such image) are Docker's error responses.
    let writer = blocking(move || b.export_images(names)).await?;
    Ok(stream_writer(writer))
}

/// A tar (or any bytes) a writer produces on the blocking pool, streamed at the client's pace;
/// a failure midway cuts the body off, so the client never sees a whole-looking archive.
pub(crate) fn stream_writer(writer: ExportWriter) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx.clone());
        let result = writer(&mut out).and_then(|()| out.flush());
        if let Err(e) = result {
            // Ends the body with an error: the client sees a cut-off archive, not a whole one.
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn save_many(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let names = Query::parse(raw.as_deref()).all("names");
    save(b, names).await
}

fn page_not_found(rest: &str) -> ApiError {
    ApiError::not_found(format!("page not found: /images/{rest}"))
}

/// `GET /images/{name}/json|history|get`.
async fn by_name_get(
    State(b): State<SharedBackend>,
    Extension(version): Extension<ApiVersion>,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    let Some((name, what)) = rest.rsplit_once('/') else {
        return Err(page_not_found(&rest));
    };
    let name = name.to_owned();
    match what {
        "json" => {
            let image = blocking(move || b.inspect_image(&name)).await?;
            Ok(Json(image.for_version(version)).into_response())
        }
        "history" => Ok(Json(blocking(move || b.image_history(&name)).await?).into_response()),
        "get" => save(b, vec![name]).await,
        _ => Err(page_not_found(&rest)),
    }
}

/// `POST /images/{name}/tag` (and `push`, which needs a registry).
async fn by_name_post(
    State(b): State<SharedBackend>,
    Path(rest): Path<String>,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some((name, what)) = rest.rsplit_once('/') else {
        return Err(page_not_found(&rest));
    };
    let name = name.to_owned();
    let q = Query::parse(raw.as_deref());
    match what {
        "tag" => {
            let repo = q.get("repo").unwrap_or("").to_owned();
            let tag = q.get("tag").unwrap_or("").to_owned();
            blocking(move || b.tag_image(&name, &repo, &tag)).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        "push" => {
            let tag = q.get("tag").filter(|t| !t.is_empty()).map(str::to_owned);
            let auth = crate::distribution::registry_auth(&headers);
            crate::distribution::push(b, name, tag, auth).await
        }
        _ => Err(page_not_found(&rest)),
    }
}

/// `DELETE /images/{name}?force=&noprune=`.
async fn by_name_delete(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ImageDeleteResponseItem>>, ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("image name cannot be blank"));
    }
    let q = Query::parse(raw.as_deref());
    let force = q.flag("force", false);
    let prune = !q.flag("noprune", false);
    Ok(Json(
        blocking(move || b.remove_image(&name, force, prune)).await?,
    ))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/images/create", post(create))
        .route("/images/json", get(list))
        .route("/images/get", get(save_many))
        .route("/images/load", post(load))
        .route("/images/prune", post(prune))
        .route(
            "/images/{*rest}",
            get(by_name_get).post(by_name_post).delete(by_name_delete),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_writer_sends_chunks_and_notices_a_gone_client() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        let mut w = ChannelWriter {
            tx,
            buf: Vec::new(),
        };
        w.write_all(&vec![1u8; CHUNK + 10]).unwrap();
        w.flush().unwrap();
        let mut total = 0;
        while let Ok(chunk) = rx.try_recv() {
            total += chunk.unwrap().len();
        }
        assert_eq!(total, CHUNK + 10);
        drop(rx);
        w.write_all(b"x").unwrap();
        assert_eq!(
            w.flush().unwrap_err().kind(),
            std::io::ErrorKind::BrokenPipe
        );
    }
}
