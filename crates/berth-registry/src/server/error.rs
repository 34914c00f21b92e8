//! The distribution spec's error bodies: `{"errors":[{"code","message","detail"}]}` with the
//! status each code goes with.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One of the spec's error codes (plus `UNKNOWN` for our own failures, as distribution does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::Unknown => "UNKNOWN",
        }
    }

    /// The message distribution gives each code (clients such as docker print it).
    pub fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => "blob unknown to registry",
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "The operation is unsupported.",
            Code::Unknown => "unknown error",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to the client: a code, its status (which some cases override, e.g. 416
/// for an out-of-order chunk), a detail, and headers that go with it.
#[derive(Debug)]
pub struct RegistryError {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    pub detail: serde_json::Value,
    pub headers: Vec<(&'static str, String)>,
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl RegistryError {
    pub fn new(code: Code) -> RegistryError {
        RegistryError {
            code,
            status: code.status(),
            message: code.message().to_owned(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<serde_json::Value>) -> RegistryError {
        self.detail = detail.into();
        self
    }

    pub fn message(mut self, message: impl Into<String>) -> RegistryError {
        self.message = message.into();
        self
    }

    pub fn status(mut self, status: StatusCode) -> RegistryError {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> RegistryError {
        self.headers.push((name, value.into()));
        self
    }

    /// A failure of ours (disk, a task that died): 500, logged.
    pub fn internal(what: impl std::fmt::Display) -> RegistryError {
        tracing::error!("registry: {what}");
        RegistryError::new(Code::Unknown).detail(what.to_string())
    }
}

impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> Self {
        RegistryError::internal(e)
    }
}

impl From<berth_image::ImageError> for RegistryError {
    fn from(e: berth_image::ImageError) -> Self {
        use berth_image::ImageError;
        match e {
            ImageError::DigestMismatch { .. } => {
                RegistryError::new(Code::DigestInvalid).detail(e.to_string())
            }
            ImageError::SizeMismatch { .. } => {
                RegistryError::new(Code::SizeInvalid).detail(e.to_string())
            }
            ImageError::BlobNotFound(d) => {
                RegistryError::new(Code::BlobUnknown).detail(d.to_string())
            }
            other => RegistryError::internal(other),
        }
    }
}

impl From<tokio::task::JoinError> for RegistryError {
    fn from(e: tokio::task::JoinError) -> Self {
        RegistryError::internal(format!("background task: {e}"))
    }
}

/// The JSON body of an error response.
pub fn error_body(code: Code, message: &str, detail: &serde_json::Value) -> String {
    serde_json::json!({
        "errors": [{ "code": code.as_str(), "message": message, "detail": detail }]
    })
    .to_string()
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = error_body(self.code, &self.message, &self.detail);
        let mut resp = (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            )],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}
