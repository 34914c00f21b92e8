//! `/images/...`: import (`POST /images/create?fromSrc=-`) and list (`GET /images/json`).

use std::io::Write;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::ImageSummary;
use futures_util::StreamExt;

use crate::query::Query;
use crate::{ApiError, SharedBackend};

/// What `import` asks of the engine.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    pub repo: Option<String>,
    pub tag: Option<String>,
    /// Dockerfile-like `--change` instructions (`CMD ["sh"]`, `ENV A=1`, …).
    pub changes: Vec<String>,
    pub message: Option<String>,
}

/// What the image endpoints need from the engine.
pub trait ImageBackend {
    /// A directory for request bodies being received.
    fn upload_dir(&self) -> std::path::PathBuf;
    /// Imports the rootfs tarball at `tar` (plain, gzip or zstd); returns the image ID.
    fn import_image(&self, tar: &std::path::Path, req: ImportRequest) -> Result<String, ApiError>;
    fn list_images(&self, all: bool) -> Result<Vec<ImageSummary>, ApiError>;
}

/// Receives a request body into a file in `dir` (never whole in memory).
async fn body_to_file(body: Body, dir: &std::path::Path) -> Result<std::path::PathBuf, ApiError> {
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

async fn create(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let q = Query::parse(raw.as_deref());
    match q.get("fromSrc") {
        Some("-") => {}
        Some(_) => {
            return Err(ApiError::not_implemented(
                "importing from a URL is not supported: send the tarball in the request body",
            ))
        }
        None => {
            return Err(ApiError::not_implemented(
                "pulling images from a registry is not supported yet",
            ))
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
    let path = body_to_file(body, &b.upload_dir()).await?;
    let backend = b.clone();
    let upload = path.clone();
    let result = tokio::task::spawn_blocking(move || backend.import_image(&upload, req))
        .await
        .map_err(|e| ApiError::internal(format!("import task: {e}")));
    let _ = std::fs::remove_file(&path);
    let id = result??;
    // Docker answers with a JSON message stream; the last status is the image ID.
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\r\n", serde_json::json!({ "status": id })),
    ))
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ImageSummary>>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let all = q.flag("all", false);
    let backend = b.clone();
    let images = tokio::task::spawn_blocking(move || backend.list_images(all))
        .await
        .map_err(|e| ApiError::internal(format!("list task: {e}")))??;
    Ok(Json(images))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/images/create", post(create))
        .route("/images/json", get(list))
}
