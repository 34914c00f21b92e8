//! `/_ping`, `/version`, `/info`, and berth's own `/system/check`.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bollard_stubs::models::{SystemInfo, SystemVersion};

use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};

/// What the system endpoints need from the engine.
pub trait SystemBackend {
    fn version(&self) -> SystemVersion;
    fn info(&self) -> SystemInfo;
    /// `berth system check` through a running daemon: read-only; `deep` verifies every
    /// blob's digest. May block.
    fn system_check(&self, deep: bool) -> BackendResult<CheckReport>;
}

/// One problem `berth system check` found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckProblem {
    /// What it is about (`container 0123456789ab`, `image store`, a path).
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// What `--repair` does about it (offline).
    pub repair: String,
    /// Whether `--repair` can put it right.
    pub repairable: bool,
}

/// `GET /system/check` (a berth extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckReport {
    pub problems: Vec<CheckProblem>,
}

async fn ping() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "OK",
    )
}

async fn version(State(b): State<SharedBackend>) -> Json<SystemVersion> {
    Json(b.version())
}

async fn info(State(b): State<SharedBackend>) -> Json<SystemInfo> {
    Json(b.info())
}

async fn check(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<CheckReport>, ApiError> {
    let deep = Query::parse(raw.as_deref()).flag("deep", false);
    Ok(Json(blocking(move || b.system_check(deep)).await?))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/check", get(check))
}
