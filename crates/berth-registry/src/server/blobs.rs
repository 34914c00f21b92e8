//! Blobs: pull (GET/HEAD with ranges), delete, and push (monolithic, POST+PUT, chunked
//! PATCH, cross-repository mount).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use berth_core::Digest;
use tokio::io::AsyncReadExt;

use super::error::{Code, RegistryError, Result};
use super::names::{parse_digest, valid_name, Query};
use super::range::{parse_content_range, parse_range, upload_range, ByteRange};
use super::uploads::{new_id, Session, SessionRef};
use super::App;

/// Reads of a blob being served are this big.
const READ_CHUNK: usize = 256 * 1024;

pub fn blob_location(name: &str, digest: &Digest) -> String {
    format!("/v2/{name}/blobs/{digest}")
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// `GET`/`HEAD /v2/<name>/blobs/<digest>`.
pub async fn get(
    app: &Arc<App>,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let digest = parse_digest(digest)?;
    let linked = app
        .meta
        .read(|r| r.get(name).is_some_and(|repo| repo.has_blob(&digest)));
    let unknown = || RegistryError::new(Code::BlobUnknown).detail(digest.to_string());
    if !linked {
        return Err(unknown());
    }
    let mut file = match tokio::fs::File::open(app.content.path(&digest)).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata().await?.len();
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let builder = Response::builder()
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CACHE_CONTROL, "max-age=31536000");
    let (builder, start, len) = match range {
        ByteRange::Full => (builder.status(StatusCode::OK), 0, size),
        ByteRange::Partial { start, end } => (
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")),
            start,
            end - start + 1,
        ),
        ByteRange::Unsatisfiable => {
            return Err(RegistryError::new(Code::BlobUnknown)
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .message("requested range not satisfiable")
                .header("Content-Range", format!("bytes */{size}")));
        }
    };
    let builder = builder.header(header::CONTENT_LENGTH, len);
    let body = if head {
        Body::empty()
    } else {
        if start > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        file_body(file, len)
    };
    builder.body(body).map_err(RegistryError::internal)
}

/// Streams `len` bytes of `file` from where it stands, a chunk at a time.
fn file_body(file: tokio::fs::File, len: u64) -> Body {
    let reader = file.take(len);
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        match (&mut reader)
            .take(READ_CHUNK as u64)
            .read_to_end(&mut buf)
            .await
        {
            Ok(0) => None,
            Ok(_) => Some((Ok::<_, std::io::Error>(Bytes::from(buf)), reader)),
            Err(e) => Some((Err(e), reader)),
        }
    });
    Body::from_stream(stream)
}

/// `DELETE /v2/<name>/blobs/<digest>`: unlinks the blob from the repository; the data goes
/// when no repository links it any more.
pub async fn delete(app: &Arc<App>, name: &str, digest: &str) -> Result<Response> {
    let digest = parse_digest(digest)?;
    let app2 = app.clone();
    let name2 = name.to_owned();
    let d = digest.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut tx = app2.meta.lock();
        let mut repo = tx.repo(&name2);
        if !repo.blobs.remove(&d) {
            return Err(RegistryError::new(Code::BlobUnknown).detail(d.to_string()));
        }
        tx.save(&name2, repo)?;
        if !tx.referenced(&d) {
            app2.content.delete(&d)?;
        }
        Ok(())
    })
    .await??;
    accepted(Response::builder())
        .header("Docker-Content-Digest", digest.to_string())
        .body(Body::empty())
        .map_err(RegistryError::internal)
}

fn accepted(b: axum::http::response::Builder) -> axum::http::response::Builder {
    b.status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
}

/// `POST /v2/<name>/blobs/uploads/`: a mount (`?mount=&from=`), a monolithic upload
/// (`?digest=`, body is the blob) or a new session.
pub async fn start(
    app: &Arc<App>,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    if let Some(alg) = query.get("digest-algorithm") {
        if alg != "sha256" {
            return Err(RegistryError::new(Code::Unsupported)
                .status(StatusCode::BAD_REQUEST)
                .message("unsupported digest algorithm: only sha256 is stored")
                .detail(alg));
        }
    }
    if let Some(mount) = query.get("mount") {
        if let Some(resp) = try_mount(app, name, mount, query.get("from")).await? {
            return Ok(resp);
        }
        // Not mountable: an ordinary session, as the spec says (202).
    } else if let Some(digest) = query.get("digest") {
        let digest = parse_digest(digest)?;
        let mut session = Session::new(
            new_id(),
            name.to_owned(),
            app.content.staging_path("upload"),
        );
        session.append(body, content_length(headers)?).await?;
        return finish(app, session, &digest).await;
    }
    let id = new_id();
    app.uploads.insert(Session::new(
        id.clone(),
        name.to_owned(),
        app.content.staging_path("upload"),
    ));
    session_response(StatusCode::ACCEPTED, name, &id, 0)
}

/// Links `digest` into `name` when `from` (or, without `from`, any repository) has it.
async fn try_mount(
    app: &Arc<App>,
    name: &str,
    digest: &str,
    from: Option<&str>,
) -> Result<Option<Response>> {
    let Ok(digest) = parse_digest(digest) else {
        return Ok(None);
    };
    if from.is_some_and(|f| !valid_name(f)) {
        return Ok(None);
    }
    let app2 = app.clone();
    let name2 = name.to_owned();
    let from = from.map(str::to_owned);
    let d = digest.clone();
    let mounted = tokio::task::spawn_blocking(move || -> Result<bool> {
        let mut tx = app2.meta.lock();
        let present = match &from {
            Some(from) => tx.repo(from).has_blob(&d),
            None => tx.referenced(&d),
        };
        if !present || !app2.content.exists(&d) {
            return Ok(false);
        }
        let mut repo = tx.repo(&name2);
        if repo.blobs.insert(d) {
            tx.save(&name2, repo)?;
        }
        Ok(true)
    })
    .await??;
    if !mounted {
        return Ok(None);
    }
    Ok(Some(created_blob(name, &digest)?))
}

fn created_blob(name: &str, digest: &Digest) -> Result<Response> {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, blob_location(name, digest))
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(RegistryError::internal)
}

fn session_response(status: StatusCode, name: &str, id: &str, size: u64) -> Result<Response> {
    Response::builder()
        .status(status)
        .header(header::LOCATION, upload_location(name, id))
        .header(header::RANGE, upload_range(size))
        .header("Docker-Upload-UUID", id)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(RegistryError::internal)
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| RegistryError::new(Code::SizeInvalid).detail("bad Content-Length")),
    }
}

/// The session `id` of repository `name`, locked; BLOB_UPLOAD_UNKNOWN when there is none.
async fn session(
    app: &Arc<App>,
    name: &str,
    id: &str,
) -> Result<(SessionRef, tokio::sync::OwnedMutexGuard<Session>)> {
    let unknown = || RegistryError::new(Code::BlobUploadUnknown).detail(id.to_owned());
    let s = app.uploads.get(id).ok_or_else(unknown)?;
    let guard = s.clone().lock_owned().await;
    if guard.closed || guard.repo != name {
        return Err(unknown());
    }
    Ok((s, guard))
}

/// `GET /v2/<name>/blobs/uploads/<id>`: where the upload stands.
pub async fn status(app: &Arc<App>, name: &str, id: &str) -> Result<Response> {
    let (_s, guard) = session(app, name, id).await?;
    session_response(StatusCode::NO_CONTENT, name, id, guard.size)
}

/// Checks a chunk's `Content-Range` against what the session holds: the chunk must start
/// where the data ends (else 416 with the current `Range`). Returns the chunk's length.
fn check_chunk(headers: &HeaderMap, s: &Session, name: &str) -> Result<Option<u64>> {
    let length = content_length(headers)?;
    let Some(range) = headers.get(header::CONTENT_RANGE) else {
        return Ok(length);
    };
    let out_of_order = || {
        RegistryError::new(Code::BlobUploadInvalid)
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .message("chunk out of order")
            .header("Location", upload_location(name, &s.id))
            .header("Range", upload_range(s.size))
            .header("Docker-Upload-UUID", s.id.clone())
    };
    let (start, end) = range
        .to_str()
        .ok()
        .and_then(parse_content_range)
        .ok_or_else(|| out_of_order().detail("malformed Content-Range"))?;
    if start != s.size {
        return Err(out_of_order().detail(format!(
            "the chunk starts at {start}, the upload holds {} bytes",
            s.size
        )));
    }
    let len = end - start + 1;
    if length.is_some_and(|l| l != len) {
        return Err(out_of_order().detail("Content-Range and Content-Length disagree"));
    }
    Ok(Some(len))
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: a chunk (with `Content-Range`) or, without it, a
/// stream appended to what the session holds (what docker sends).
pub async fn patch(
    app: &Arc<App>,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let (_s, mut guard) = session(app, name, id).await?;
    let expect = check_chunk(headers, &guard, name)?;
    guard.append(body, expect).await?;
    session_response(StatusCode::ACCEPTED, name, id, guard.size)
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: the last chunk, if any, and the end.
pub async fn put(
    app: &Arc<App>,
    name: &str,
    id: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let (s, mut guard) = session(app, name, id).await?;
    let digest = query.get("digest").ok_or_else(|| {
        RegistryError::new(Code::DigestInvalid).message("the digest query parameter is missing")
    })?;
    let digest = match parse_digest(digest) {
        Ok(d) => d,
        Err(e) => {
            // The upload cannot be finished with that: it is over.
            close(app, id, &mut guard);
            return Err(e);
        }
    };
    let expect = check_chunk(headers, &guard, name)?;
    guard.append(body, expect).await?;
    // Take the session out: whatever happens now, it ends here.
    close(app, id, &mut guard);
    let session = std::mem::replace(&mut *guard, Session::placeholder());
    drop(guard);
    drop(s);
    finish(app, session, &digest).await
}

fn close(app: &Arc<App>, id: &str, guard: &mut Session) {
    guard.closed = true;
    app.uploads.remove(id);
}

/// Verifies and commits a whole upload, then links it into its repository. A mismatch
/// removes the data (the session's drop does) and answers DIGEST_INVALID.
async fn finish(app: &Arc<App>, mut session: Session, digest: &Digest) -> Result<Response> {
    let actual = session.digest();
    if actual != *digest {
        return Err(RegistryError::new(Code::DigestInvalid)
            .detail(format!("the upload's digest is {actual}, not {digest}")));
    }
    session.sync().await?;
    let app2 = app.clone();
    let name = session.repo.clone();
    let name2 = name.clone();
    let d = digest.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut tx = app2.meta.lock();
        // Under the lock, so a concurrent delete cannot remove the blob between the commit
        // and the link. A blob that exists already stays; our copy is dropped.
        app2.content.commit(&session.path, &d)?;
        drop(session);
        let mut repo = tx.repo(&name2);
        if repo.blobs.insert(d) {
            tx.save(&name2, repo)?;
        }
        Ok(())
    })
    .await??;
    created_blob(&name, digest)
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancels the upload.
pub async fn cancel(app: &Arc<App>, name: &str, id: &str) -> Result<Response> {
    let (_s, mut guard) = session(app, name, id).await?;
    close(app, id, &mut guard);
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .map_err(RegistryError::internal)
}
