//! `/_ping`, `/version`, `/info`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bollard_stubs::models::{SystemInfo, SystemVersion};

use crate::SharedBackend;

/// What the system endpoints need from the engine.
pub trait SystemBackend {
    fn version(&self) -> SystemVersion;
    fn info(&self) -> SystemInfo;
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

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
}
