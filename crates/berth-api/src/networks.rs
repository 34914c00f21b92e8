//! `/networks`: create, list, inspect, remove, prune, connect and disconnect (Docker's
//! network API, bridge driver only).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};
use berth_core::filters::Filters;

/// What the network endpoints need from the engine (blocking calls).
pub trait NetworkBackend {
    /// Docker's NetworkCreateRequest in, `{"Id": …, "Warning": ""}` out.
    fn create_network(&self, body: serde_json::Value) -> BackendResult<serde_json::Value>;
    /// Docker's Network objects.
    fn list_networks(&self, filters: Filters) -> BackendResult<serde_json::Value>;
    fn inspect_network(&self, name: &str) -> BackendResult<serde_json::Value>;
    fn remove_network(&self, name: &str) -> BackendResult<()>;
    /// Docker's NetworkPruneResponse.
    fn prune_networks(&self, filters: Filters) -> BackendResult<serde_json::Value>;
    /// `{"Container": …, "EndpointConfig": {"Aliases": …, "IPAMConfig": {"IPv4Address": …}}}`.
    fn connect_network(&self, name: &str, body: serde_json::Value) -> BackendResult<()>;
    /// `{"Container": …, "Force": …}`.
    fn disconnect_network(&self, name: &str, body: serde_json::Value) -> BackendResult<()>;
}

fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

async fn create(
    State(b): State<SharedBackend>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let body = json_body(&body)?;
    let v = blocking(move || b.create_network(body)).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.list_networks(filters)).await?))
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(blocking(move || b.inspect_network(&name)).await?))
}

async fn remove(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || b.remove_network(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.prune_networks(filters)).await?))
}

async fn connect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let body = json_body(&body)?;
    blocking(move || b.connect_network(&name, body)).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    State(b): State<SharedBackend>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let body = json_body(&body)?;
    blocking(move || b.disconnect_network(&name, body)).await?;
    Ok(StatusCode::OK)
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{name}", get(inspect).delete(remove))
        .route("/networks/{name}/connect", post(connect))
        .route("/networks/{name}/disconnect", post(disconnect))
}
