//! `/volumes`: create, list, inspect, remove, prune; and berth's own export and import (a
//! tar of a volume's content, for backups — Docker has no such endpoint).

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::images::{stream_writer, with_upload, ExportWriter};
use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};
use berth_core::filters::Filters;

/// What the volume endpoints need from the engine (blocking calls).
pub trait VolumeBackend {
    /// Docker's VolumeCreateOptions in, a Volume out.
    fn create_volume(&self, body: serde_json::Value) -> BackendResult<serde_json::Value>;
    /// Docker's VolumeListResponse.
    fn list_volumes(&self, filters: Filters) -> BackendResult<serde_json::Value>;
    fn inspect_volume(&self, name: &str) -> BackendResult<serde_json::Value>;
    fn remove_volume(&self, name: &str, force: bool) -> BackendResult<()>;
    /// Docker's VolumePruneResponse.
    fn prune_volumes(&self, filters: Filters) -> BackendResult<serde_json::Value>;
    /// A tar of the volume's content.
    fn export_volume(&self, name: &str) -> BackendResult<ExportWriter>;
    /// Fills an empty volume (created if missing) from a tar.
    fn import_volume(&self, name: &str, tar: &std::path::Path) -> BackendResult<()>;
}

async fn create(
    State(b): State<SharedBackend>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body: serde_json::Value = if body.is_empty() {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let v = blocking(move || b.create_volume(body)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.list_volumes(filters)).await?))
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(blocking(move || b.inspect_volume(&name)).await?))
}

async fn remove(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let force = Query::parse(raw.as_deref()).flag("force", false);
    blocking(move || b.remove_volume(&name, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.prune_volumes(filters)).await?))
}

async fn export(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let writer = blocking(move || b.export_volume(&name)).await?;
    Ok(stream_writer(writer))
}

async fn import(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    with_upload(&b, body, move |b, path| Ok(b.import_volume(&name, path)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
        .route("/volumes/{name}/export", get(export))
        .route("/volumes/{name}/import", axum::routing::put(import))
}
