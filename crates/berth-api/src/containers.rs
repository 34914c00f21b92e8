//! `/containers/...`: create, start, wait, stop, kill, logs, list, inspect, remove.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bollard_stubs::models::{
    ContainerCreateResponse, ContainerInspectResponse, ContainerSummary, ContainerWaitResponse,
};

use crate::query::Query;
use crate::{ApiError, SharedBackend};

/// One piece of a container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// A container's recorded output: whether it had a tty (then its output is one raw stream),
/// and the pieces in order.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub tty: bool,
    pub records: Vec<(LogStream, Vec<u8>)>,
}

/// What the container endpoints need from the engine. Methods may block (they run on the
/// blocking pool).
pub trait ContainerBackend {
    /// `body` is the create request as sent (Docker's ContainerConfig + HostConfig).
    fn create_container(
        &self,
        name: Option<String>,
        body: serde_json::Value,
    ) -> Result<ContainerCreateResponse, ApiError>;
    /// Ok(false) when it was already running.
    fn start_container(&self, id: &str) -> Result<bool, ApiError>;
    /// The exit code once the container is not running, None while it runs.
    fn exit_code(&self, id: &str) -> Result<Option<i64>, ApiError>;
    /// Ok(false) when it was not running.
    fn stop_container(&self, id: &str, timeout: Option<i64>) -> Result<bool, ApiError>;
    fn kill_container(&self, id: &str, signal: &str) -> Result<(), ApiError>;
    fn remove_container(&self, id: &str, force: bool) -> Result<(), ApiError>;
    fn container_logs(
        &self,
        id: &str,
        stdout: bool,
        stderr: bool,
        tail: Option<usize>,
        timestamps: bool,
    ) -> Result<Logs, ApiError>;
    fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, ApiError>;
    fn inspect_container(&self, id: &str) -> Result<ContainerInspectResponse, ApiError>;
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

async fn create(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ContainerCreateResponse>), ApiError> {
    let q = Query::parse(raw.as_deref());
    let name = q.get("name").filter(|n| !n.is_empty()).map(str::to_owned);
    let body: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let resp = blocking(move || b.create_container(name, body)).await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

async fn start(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let started = blocking(move || b.start_container(&id)).await?;
    Ok(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

async fn wait(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<Json<ContainerWaitResponse>, ApiError> {
    loop {
        let (b2, id2) = (b.clone(), id.clone());
        if let Some(code) = blocking(move || b2.exit_code(&id2)).await? {
            return Ok(Json(ContainerWaitResponse {
                status_code: code,
                error: None,
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stop(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let timeout = q.get("t").and_then(|t| t.parse().ok());
    let stopped = blocking(move || b.stop_container(&id, timeout)).await?;
    Ok(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

async fn kill(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGKILL")
        .to_owned();
    blocking(move || b.kill_container(&id, &signal)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let force = q.flag("force", false);
    blocking(move || b.remove_container(&id, force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Docker's stream framing for non-tty output: stream id, three zeros, big-endian length.
fn frame(stream: LogStream, data: &[u8], out: &mut Vec<u8>) {
    out.push(match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

async fn logs(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let (stdout, stderr) = (q.flag("stdout", false), q.flag("stderr", false));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = q.get("tail").and_then(|t| t.parse().ok());
    let timestamps = q.flag("timestamps", false);
    let Logs { tty, records } =
        blocking(move || b.container_logs(&id, stdout, stderr, tail, timestamps)).await?;
    let mut body = Vec::new();
    for (stream, data) in records {
        if tty {
            body.extend_from_slice(&data);
        } else {
            frame(stream, &data, &mut body);
        }
    }
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(([(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response())
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ContainerSummary>>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let all = q.flag("all", false);
    Ok(Json(blocking(move || b.list_containers(all)).await?))
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<Json<ContainerInspectResponse>, ApiError> {
    Ok(Json(blocking(move || b.inspect_container(&id)).await?))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}", delete(remove))
}
