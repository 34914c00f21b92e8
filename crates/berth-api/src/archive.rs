//! A container's files: `HEAD|GET|PUT /containers/{id}/archive` (what `docker cp` uses),
//! `GET /containers/{id}/export`, `GET /containers/{id}/changes` and `POST /commit`.
//!
//! Archives stream both ways: a GET's tar is written by the engine on the blocking pool into a
//! bounded channel that the response body drains at the client's pace; a PUT's body is handed
//! to the engine as a reader fed from the request as it arrives (never whole in memory).
//! Errors found before the first byte (no such container, no such path) are Docker's error
//! responses; a failure in the middle of a stream cuts the body short.

use std::io::{Read, Write};

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Serialize;

use crate::images::ChannelWriter;
use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};

/// The header that carries a path's [`PathStat`] (base64 of its JSON).
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// What Docker reports about a path in a container (`ContainerPathStat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits (type bits high, permissions low), as the docker CLI reads them.
    pub mode: u32,
    /// RFC 3339 with nanoseconds.
    pub mtime: String,
    /// For a symlink, the path it finally leads to inside the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// How a PUT extracts its archive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory and the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Give the files the container user's UID/GID (`docker cp -a`).
    pub copy_uid_gid: bool,
}

/// `POST /commit`.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub container: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Freeze the container while its layer is read (Docker's default).
    pub pause: bool,
    /// Dockerfile-like instructions (`CMD ["sh"]`, `ENV A=1`, …).
    pub changes: Vec<String>,
    /// A container config sent as the body: its fields override the container's.
    pub config: Option<serde_json::Value>,
}

/// One line of `docker diff`: 0 modified, 1 added, 2 deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: u8,
}

/// What the archive endpoints need from the engine. Methods block (they run on the blocking
/// pool); the streaming ones call `found` once the request is known to be good, before the
/// first byte of `out`.
pub trait ArchiveBackend {
    fn stat_container_path(&self, id: &str, path: &str) -> BackendResult<PathStat>;
    /// Writes a tar of `path` (entries named after the path's last element) to `out`.
    fn archive_container_path(
        &self,
        id: &str,
        path: &str,
        found: &mut dyn FnMut(&PathStat),
        out: &mut dyn Write,
    ) -> BackendResult<()>;
    /// Extracts the tar in `tar` (plain or compressed) into the directory at `path`.
    fn extract_to_container(
        &self,
        id: &str,
        path: &str,
        opts: ExtractOptions,
        tar: &mut dyn Read,
    ) -> BackendResult<()>;
    /// Writes a tar of the container's whole filesystem to `out`.
    fn export_container(
        &self,
        id: &str,
        found: &mut dyn FnMut(),
        out: &mut dyn Write,
    ) -> BackendResult<()>;
    fn container_changes(&self, id: &str) -> BackendResult<Vec<Change>>;
    /// Makes an image of the container; returns its ID.
    fn commit_container(&self, req: CommitRequest) -> BackendResult<String>;
}

/// A 403: writing where the container's rootfs or a volume is read-only.
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// Standard base64 with padding (what Go's `base64.StdEncoding` writes).
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ABC[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stat_header(stat: &PathStat) -> HeaderValue {
    let json = serde_json::to_vec(stat).expect("a path stat serializes");
    HeaderValue::from_str(&base64(&json)).expect("base64 is a valid header value")
}

/// The `path` parameter, which Docker requires.
fn path_param(raw: Option<&str>) -> Result<(Query, String), ApiError> {
    let q = Query::parse(raw);
    let path = q.get("path").unwrap_or("").to_owned();
    if path.is_empty() {
        return Err(ApiError::bad_request("Path cannot be empty"));
    }
    Ok((q, path))
}

/// How much of an upload is read and dropped after its extraction ended early.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads a request body that another task feeds in as it arrives.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("reading the request body: {e}"),
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Runs `produce` on the blocking pool; answers with `respond(found value)` and a body of what
/// it writes once it reports the request good, or with its error if it fails before that.
async fn stream_tar<T: Send + 'static>(
    produce: impl FnOnce(&mut dyn FnMut(T), &mut dyn Write) -> Result<(), ApiError> + Send + 'static,
    respond: impl FnOnce(T, Body) -> Response,
) -> Result<Response, ApiError> {
    let (found_tx, found_rx) = tokio::sync::oneshot::channel::<Result<T, ApiError>>();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut found_tx = Some(found_tx);
        let mut out = ChannelWriter::new(tx.clone());
        let mut found = |v: T| {
            if let Some(t) = found_tx.take() {
                let _ = t.send(Ok(v));
            }
        };
        let result = produce(&mut found, &mut out)
            .and_then(|()| out.flush().map_err(|e| ApiError::internal(e.to_string())));
        if let Err(e) = result {
            match found_tx.take() {
                Some(t) => {
                    let _ = t.send(Err(e));
                }
                // Ends the body with an error: the client sees a cut-off archive.
                None => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
                }
            }
        }
    });
    let value = found_rx
        .await
        .map_err(|_| ApiError::internal("the archive task ended early"))??;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(respond(value, Body::from_stream(stream)))
}

async fn head_archive(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (_, path) = path_param(raw.as_deref())?;
    let stat = blocking(move || b.stat_container_path(&id, &path)).await?;
    let mut resp = StatusCode::OK.into_response();
    resp.headers_mut()
        .insert(PATH_STAT_HEADER, stat_header(&stat));
    Ok(resp)
}

async fn get_archive(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (_, path) = path_param(raw.as_deref())?;
    stream_tar(
        move |found: &mut dyn FnMut(PathStat), out| {
            Ok(b.archive_container_path(&id, &path, &mut |s| found(s.clone()), out)?)
        },
        |stat, body| {
            let mut resp = ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response();
            resp.headers_mut()
                .insert(PATH_STAT_HEADER, stat_header(&stat));
            resp
        },
    )
    .await
}

async fn put_archive(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let (q, path) = path_param(raw.as_deref())?;
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: q.flag("noOverwriteDirNonDir", false),
        copy_uid_gid: q.flag("copyUIDGID", false),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(8);
    let pump = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut drained = 0usize;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    break;
                }
                Ok(c) if !tx.is_closed() => {
                    let _ = tx.send(Ok(c)).await;
                }
                // The extraction is over (done, or refused before it read everything): the
                // rest is read and dropped, so the client, still sending, gets the answer
                // rather than a broken pipe (as Docker's server does, up to a limit).
                Ok(c) => {
                    drained += c.len();
                    if drained > DRAIN_LIMIT {
                        break;
                    }
                }
            }
        }
    });
    let result = blocking(move || {
        let mut reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        b.extract_to_container(&id, &path, opts, &mut reader)
    })
    .await;
    if tokio::time::timeout(std::time::Duration::from_secs(30), pump)
        .await
        .is_err()
    {
        tracing::debug!("archive upload: gave up draining the request body");
    }
    result?;
    Ok(StatusCode::OK)
}

async fn export(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    stream_tar(
        move |found: &mut dyn FnMut(()), out| {
            Ok(b.export_container(&id, &mut || found(()), out)?)
        },
        |(), body| ([(header::CONTENT_TYPE, "application/x-tar")], body).into_response(),
    )
    .await
}

async fn changes(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Change>>, ApiError> {
    Ok(Json(blocking(move || b.container_changes(&id)).await?))
}

async fn commit(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let q = Query::parse(raw.as_deref());
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
    let config = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
        Some(v).filter(|v| !v.is_null())
    };
    let req = CommitRequest {
        container: text("container").unwrap_or_default(),
        repo: text("repo"),
        tag: text("tag"),
        comment: text("comment"),
        author: text("author"),
        pause: q.flag("pause", true),
        changes: q.all("changes"),
        config,
    };
    let id = blocking(move || b.commit_container(req)).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
        .route("/commit", post(commit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_go_writes_it() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }

    #[test]
    fn channel_reader_reads_across_chunks_and_ends() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.try_send(Ok(Bytes::from_static(b"hello "))).unwrap();
        tx.try_send(Ok(Bytes::from_static(b"world"))).unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");
    }
}
