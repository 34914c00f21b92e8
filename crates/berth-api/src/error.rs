//! Docker's error responses: a status and `{"message": "…"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_core::error::HasErrorKind;
use berth_core::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The exit code of a failed command, shown as `errorDetail.code` when the error ends a
    /// progress stream (a build's RUN).
    pub code: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            code: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    /// Any library error, with the status its kind maps to (the one table in berth-core).
    pub fn from_kind(err: &(impl HasErrorKind + std::fmt::Display)) -> Self {
        let kind: ErrorKind = err.kind();
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, err.to_string())
    }
}

impl From<berth_core::error::BoxError> for ApiError {
    fn from(e: berth_core::error::BoxError) -> Self {
        ApiError {
            code: e.code(),
            ..ApiError::from_kind(&e)
        }
    }
}

/// A bad `filters` parameter is the client's fault: 400 with Docker's text.
impl From<berth_core::filters::FilterError> for ApiError {
    fn from(e: berth_core::filters::FilterError) -> Self {
        ApiError::from_kind(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}
