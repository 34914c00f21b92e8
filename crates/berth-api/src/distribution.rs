//! Registries: `POST /images/create?fromImage=` (pull), `POST /images/{name}/push`,
//! `POST /auth` (login check), `GET /distribution/{name}/json`, `GET /images/search`. Pull and push answer with
//! Docker's JSON progress stream; an error found before the first message (a bad reference,
//! access denied, an unknown manifest) is an HTTP error status instead, as Docker's is.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use bollard_stubs::models::{AuthResponse, DistributionInspect, ImageSearchResponseItem};

use crate::{blocking, ApiError, BackendResult, SharedBackend};

/// One pull as the API asks for it.
#[derive(Debug, Clone, Default)]
pub struct PullRequest {
    pub from_image: String,
    /// A tag or a digest; empty: every tag of the repository.
    pub tag: Option<String>,
    pub platform: Option<String>,
    /// The `X-Registry-Auth` header, as sent.
    pub auth: Option<String>,
}

/// What the registry endpoints need from the engine. Methods block (they run on the blocking
/// pool) and send Docker's JSON progress lines to `out` as they go.
pub trait DistributionBackend {
    fn pull_image(&self, req: PullRequest, out: UnboundedSender<String>) -> BackendResult<()>;
    fn push_image(
        &self,
        name: &str,
        tag: Option<&str>,
        auth: Option<&str>,
        out: UnboundedSender<String>,
    ) -> BackendResult<()>;
    /// `POST /auth`: checks credentials against the registry; Docker's AuthResponse.
    fn check_auth(&self, body: AuthRequest) -> BackendResult<AuthResponse>;
    /// Docker's DistributionInspect of a remote image.
    fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<&str>,
    ) -> BackendResult<DistributionInspect>;
    /// `GET /images/search`: what the registry `term` names finds, at most `limit`.
    fn search_images(&self, term: &str, limit: u32) -> BackendResult<Vec<ImageSearchResponseItem>>;
}

/// Docker's AuthConfig as `POST /auth` and `X-Registry-Auth` carry it (bollard's model lacks
/// `auth`, `email`, `identitytoken` and `registrytoken`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthRequest {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`.
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub serveraddress: String,
    #[serde(default)]
    pub identitytoken: String,
    #[serde(default)]
    pub registrytoken: String,
}

/// A JSON progress line with Docker's line ending.
fn line(text: String) -> axum::body::Bytes {
    let mut t = text.trim_end().to_owned();
    t.push_str("\r\n");
    axum::body::Bytes::from(t)
}

fn error_line(e: &ApiError) -> axum::body::Bytes {
    let detail = match e.code {
        Some(code) => serde_json::json!({"code": code, "message": e.message}),
        None => serde_json::json!({"message": e.message}),
    };
    line(serde_json::json!({"errorDetail": detail, "error": e.message}).to_string())
}

enum Feed {
    Lines(
        Option<String>,
        UnboundedReceiver<String>,
        Option<JoinHandle<Result<(), ApiError>>>,
    ),
    Done,
}

/// Runs `work` on the blocking pool and answers with what it sends: an error before its
/// first line is the response's status; after it, the stream's last line.
pub(crate) async fn progress_response(
    work: impl FnOnce(UnboundedSender<String>) -> Result<(), ApiError> + Send + 'static,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = unbounded_channel::<String>();
    let mut task = tokio::task::spawn_blocking(move || work(tx));
    let joined = |r: Result<Result<(), ApiError>, tokio::task::JoinError>| {
        r.map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    };
    let first = tokio::select! {
        biased;
        l = rx.recv() => l,
        r = &mut task => {
            let result = joined(r);
            return match rx.try_recv() {
                Ok(first) => Ok(stream(Feed::Lines(Some(first), rx, Some(tokio::spawn(async move { result })))) ),
                Err(_) => result.map(|()| stream(Feed::Done)),
            };
        }
    };
    match first {
        // The work ended without a word: its result is the answer.
        None => joined(task.await).map(|()| stream(Feed::Done)),
        Some(first) => Ok(stream(Feed::Lines(Some(first), rx, Some(task)))),
    }
}

fn stream(feed: Feed) -> Response {
    let body = futures_util::stream::unfold(feed, |feed| async move {
        match feed {
            Feed::Done => None,
            Feed::Lines(Some(first), rx, task) => Some((
                Ok::<_, std::convert::Infallible>(line(first)),
                Feed::Lines(None, rx, task),
            )),
            Feed::Lines(None, mut rx, task) => match rx.recv().await {
                Some(l) => Some((Ok(line(l)), Feed::Lines(None, rx, task))),
                None => {
                    let result = match task {
                        Some(t) => t
                            .await
                            .map_err(|e| ApiError::internal(format!("task failed: {e}")))
                            .and_then(|r| r),
                        None => Ok(()),
                    };
                    match result {
                        Ok(()) => None,
                        Err(e) => Some((Ok(error_line(&e)), Feed::Done)),
                    }
                }
            },
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// The `X-Registry-Auth` header, when sent and not empty.
pub(crate) fn registry_auth(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "e30=" && *v != "e30")
        .map(str::to_owned)
}

pub(crate) async fn pull(b: SharedBackend, req: PullRequest) -> Result<Response, ApiError> {
    progress_response(move |out| Ok(b.pull_image(req, out)?)).await
}

pub(crate) async fn push(
    b: SharedBackend,
    name: String,
    tag: Option<String>,
    auth: Option<String>,
) -> Result<Response, ApiError> {
    progress_response(move |out| Ok(b.push_image(&name, tag.as_deref(), auth.as_deref(), out)?))
        .await
}

async fn auth(
    State(b): State<SharedBackend>,
    body: axum::body::Bytes,
) -> Result<Json<AuthResponse>, ApiError> {
    let body: AuthRequest = crate::body::decode(&body, "AuthConfig")?;
    Ok(Json(blocking(move || b.check_auth(body)).await?))
}

async fn distribution(
    State(b): State<SharedBackend>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Json<DistributionInspect>, ApiError> {
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::not_found(format!(
            "page not found: /distribution/{rest}"
        )));
    };
    let name = name.to_owned();
    let auth = registry_auth(&headers);
    Ok(Json(
        blocking(move || b.distribution_inspect(&name, auth.as_deref())).await?,
    ))
}

/// `GET /images/search?term=&limit=&filters=`: the registry's answer, filtered by `stars`,
/// `is-official` and `is-automated` as Docker filters it.
async fn search(
    State(b): State<SharedBackend>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<Vec<ImageSearchResponseItem>>, ApiError> {
    let q = crate::query::Query::parse(raw.as_deref());
    let filters = berth_core::filters::Filters::from_query(&q)?;
    filters.validate(&["is-automated", "is-official", "stars"])?;
    let official = filters.get_bool("is-official")?;
    let automated = filters.get_bool("is-automated")?;
    let mut stars = 0;
    for v in filters.get("stars") {
        stars = v
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={v}'")))?;
    }
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 25,
        Some(l) => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
    };
    let limit = if limit == 0 { 25 } else { limit };
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit {limit} is outside the range of [1, 100]"
        )));
    }
    let term = q.get("term").unwrap_or("").to_owned();
    let found = blocking(move || b.search_images(&term, limit as u32)).await?;
    Ok(Json(
        found
            .into_iter()
            .filter(|r| official.is_none_or(|o| r.is_official == Some(o)))
            .filter(|r| automated.is_none_or(|a| r.is_automated == Some(a)))
            .filter(|r| r.star_count.unwrap_or(0) >= stars)
            .collect(),
    ))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/images/search", get(search))
        .route("/auth", post(auth))
        .route("/distribution/{*rest}", get(distribution))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn errors_before_the_first_line_are_statuses() {
        let r = progress_response(|_out| Err(ApiError::not_found("manifest unknown"))).await;
        assert_eq!(r.err().unwrap().message, "manifest unknown");
        let r = progress_response(|out| {
            out.send("{\"status\":\"Pulling fs layer\",\"id\":\"a\"}".into())
                .unwrap();
            Err(ApiError::internal("connection reset"))
        })
        .await
        .unwrap();
        let text = body_text(r).await;
        assert!(
            text.starts_with("{\"status\":\"Pulling fs layer\",\"id\":\"a\"}\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("{\"error\":\"connection reset\",\"errorDetail\":{\"message\":\"connection reset\"}}\r\n"),
            "{text}"
        );
        let r = progress_response(|out| {
            out.send("{\"status\":\"Digest: sha256:00\"}".into())
                .unwrap();
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(body_text(r).await, "{\"status\":\"Digest: sha256:00\"}\r\n");
    }
}
