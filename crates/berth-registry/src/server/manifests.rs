//! Manifests: GET/HEAD by tag or digest, PUT (checked, stored byte for byte in the content
//! store, its media type kept for `Content-Type`), DELETE of tags and manifests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use berth_core::Digest;
use berth_image::oci::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MEDIA_INDEX, MEDIA_MANIFEST};
use serde::Deserialize;

use super::error::{Code, RegistryError, Result};
use super::meta::{ManifestEntry, Repo};
use super::names::{valid_tag, Query, Reference};
use super::App;

/// Largest manifest accepted (the spec asks for at least 4 MB).
pub const MAX_MANIFEST: usize = 4 << 20;

const SCHEMA1: [&str; 3] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
];

/// What a manifest is, as far as checking its references goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Docker v2 schema 2 or OCI image manifest: config and layers are blobs.
    Image,
    /// Docker manifest list or OCI index: entries are manifests.
    Index,
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        MEDIA_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        MEDIA_INDEX | DOCKER_MANIFEST_LIST => Some(Kind::Index),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: Option<i64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

fn invalid(detail: impl Into<String>) -> RegistryError {
    RegistryError::new(Code::ManifestInvalid).detail(detail.into())
}

/// Finds the repository's manifest for `reference`.
fn resolve(repo: Option<&Repo>, reference: &str) -> Result<(Digest, ManifestEntry)> {
    let unknown = || {
        RegistryError::new(Code::ManifestUnknown)
            .detail(serde_json::json!({ "reference": reference }))
    };
    let digest = match Reference::parse(reference) {
        Some(Reference::Digest(d)) => d,
        Some(Reference::Tag(t)) => repo
            .and_then(|r| r.tags.get(&t))
            .cloned()
            .ok_or_else(unknown)?,
        None => return Err(unknown()),
    };
    let entry = repo
        .and_then(|r| r.manifests.get(&digest))
        .cloned()
        .ok_or_else(unknown)?;
    Ok((digest, entry))
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>`. Like distribution, an unknown repository is
/// MANIFEST_UNKNOWN here (docker prints "manifest unknown").
pub async fn get(app: &Arc<App>, name: &str, reference: &str, head: bool) -> Result<Response> {
    let (digest, entry) = app.meta.read(|r| resolve(r.get(name), reference))?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &entry.media_type)
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::CONTENT_LENGTH, entry.size);
    if head {
        return builder.body(Body::empty()).map_err(RegistryError::internal);
    }
    let path = app.content.path(&digest);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(RegistryError::new(Code::ManifestUnknown).detail(digest.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    builder
        .body(Body::from(bytes))
        .map_err(RegistryError::internal)
}

/// The media type a pushed manifest is stored under: its `mediaType` field, else the
/// request's `Content-Type`, else what its shape says (OCI documents may omit the field).
fn media_type_of(doc: &Document, content_type: Option<&str>) -> Result<(String, Kind)> {
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    if let (Some(field), Some(ct)) = (&doc.media_type, content_type) {
        if kind_of(ct).is_some() && field != ct {
            return Err(invalid(format!(
                "mediaType {field} does not match Content-Type {ct}"
            )));
        }
    }
    let chosen = doc
        .media_type
        .clone()
        .or_else(|| {
            content_type
                .filter(|c| kind_of(c).is_some())
                .map(str::to_owned)
        })
        .or_else(|| {
            if doc.manifests.is_some() {
                Some(MEDIA_INDEX.to_owned())
            } else if doc.config.is_some() {
                Some(MEDIA_MANIFEST.to_owned())
            } else {
                None
            }
        });
    let Some(chosen) = chosen else {
        return Err(invalid("the manifest has no mediaType and no known shape"));
    };
    if SCHEMA1.contains(&chosen.as_str()) {
        return Err(invalid("Docker schema 1 manifests are not supported"));
    }
    match kind_of(&chosen) {
        Some(kind) => Ok((chosen, kind)),
        None => Err(invalid(format!("unsupported manifest media type {chosen}"))),
    }
}

/// The digests a manifest needs present in the repository: blobs (image manifests) or
/// manifests (indexes). Layers with `urls` (foreign layers) are not stored here.
fn references(doc: &Document, kind: Kind) -> Result<Vec<Digest>> {
    if doc.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let check = |d: &Descriptor| -> Result<Digest> {
        if d.size < 0 {
            return Err(invalid(format!(
                "descriptor {} has a negative size",
                d.digest
            )));
        }
        if d.media_type.as_deref().is_some_and(str::is_empty) {
            return Err(invalid(format!(
                "descriptor {} has an empty mediaType",
                d.digest
            )));
        }
        d.digest
            .parse()
            .map_err(|_| invalid(format!("invalid digest {:?}", d.digest)))
    };
    let mut out = Vec::new();
    match kind {
        Kind::Image => {
            let config = doc
                .config
                .as_ref()
                .ok_or_else(|| invalid("an image manifest needs a config"))?;
            out.push(check(config)?);
            for layer in doc.layers.as_deref().unwrap_or_default() {
                let d = check(layer)?;
                if layer.urls.is_empty() {
                    out.push(d);
                }
            }
        }
        Kind::Index => {
            let manifests = doc
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("an index needs a manifests list"))?;
            for m in manifests {
                out.push(check(m)?);
            }
        }
    }
    Ok(out)
}

/// `PUT /v2/<name>/manifests/<reference>` (and `?tag=` when pushing by digest).
pub async fn put(
    app: &Arc<App>,
    name: &str,
    reference: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let too_large = || {
        RegistryError::new(Code::ManifestInvalid)
            .status(StatusCode::PAYLOAD_TOO_LARGE)
            .message("manifest too large")
            .detail(format!("at most {MAX_MANIFEST} bytes"))
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_MANIFEST as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|e| invalid(format!("reading the manifest: {e}")))?;
        if bytes.len() + chunk.len() > MAX_MANIFEST {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    let digest = berth_image::content::sha256_digest({
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(&bytes);
        h
    });
    let mut tags: Vec<String> = Vec::new();
    match Reference::parse(reference) {
        Some(Reference::Digest(want)) => {
            if want != digest {
                return Err(RegistryError::new(Code::DigestInvalid)
                    .detail(format!("the manifest's digest is {digest}, not {want}")));
            }
            for t in query.all("tag") {
                if !valid_tag(&t) {
                    return Err(invalid(format!("invalid tag {t:?}")));
                }
                tags.push(t);
            }
        }
        Some(Reference::Tag(t)) => tags.push(t),
        None if reference.contains(':') => {
            return Err(RegistryError::new(Code::DigestInvalid).detail(reference.to_owned()))
        }
        None => return Err(invalid(format!("invalid tag {reference:?}"))),
    }
    let doc: Document =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not a manifest: {e}")))?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (media_type, kind) = media_type_of(&doc, content_type)?;
    let needed = references(&doc, kind)?;

    let app2 = app.clone();
    let name2 = name.to_owned();
    let d = digest.clone();
    let tags2 = tags.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut tx = app2.meta.lock();
        let mut repo = tx.repo(&name2);
        for n in &needed {
            let present = match kind {
                Kind::Image => repo.blobs.contains(n) && app2.content.exists(n),
                Kind::Index => repo.manifests.contains_key(n),
            };
            if !present {
                return Err(RegistryError::new(Code::ManifestBlobUnknown).detail(n.to_string()));
            }
        }
        app2.content
            .ingest(&bytes[..], Some((&d, Some(bytes.len() as u64))))?;
        repo.manifests.insert(
            d.clone(),
            ManifestEntry {
                media_type,
                size: bytes.len() as u64,
            },
        );
        for t in tags2 {
            repo.tags.insert(t, d.clone());
        }
        tx.save(&name2, repo)?;
        Ok(())
    })
    .await??;

    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::CONTENT_LENGTH, 0);
    if matches!(Reference::parse(reference), Some(Reference::Digest(_))) {
        for t in &tags {
            builder = builder.header("OCI-Tag", t);
        }
    }
    builder.body(Body::empty()).map_err(RegistryError::internal)
}

/// `DELETE /v2/<name>/manifests/<reference>`: a tag removes the tag; a digest removes the
/// manifest and every tag on it. The stored document goes when nothing links it any more.
pub async fn delete(app: &Arc<App>, name: &str, reference: &str) -> Result<Response> {
    let app2 = app.clone();
    let name2 = name.to_owned();
    let reference2 = reference.to_owned();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let mut tx = app2.meta.lock();
        let mut repo = tx.repo(&name2);
        let unknown = || {
            RegistryError::new(Code::ManifestUnknown)
                .detail(serde_json::json!({ "reference": reference2 }))
        };
        match Reference::parse(&reference2) {
            Some(Reference::Tag(t)) => {
                repo.tags.remove(&t).ok_or_else(unknown)?;
                tx.save(&name2, repo)?;
            }
            Some(Reference::Digest(d)) => {
                repo.manifests.remove(&d).ok_or_else(unknown)?;
                repo.tags.retain(|_, v| *v != d);
                tx.save(&name2, repo)?;
                if !tx.referenced(&d) {
                    app2.content.delete(&d)?;
                }
            }
            None => return Err(unknown()),
        }
        Ok(())
    })
    .await??;
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .map_err(RegistryError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Document {
        serde_json::from_str(json).unwrap()
    }

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn media_types_come_from_the_document_or_the_request() {
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{D}","size":0}},"layers":[]}}"#
        );
        let d = doc(&image);
        assert_eq!(media_type_of(&d, None).unwrap().0, MEDIA_MANIFEST);
        assert_eq!(
            media_type_of(&d, Some(&format!("{DOCKER_MANIFEST}; charset=utf-8"))).unwrap(),
            (DOCKER_MANIFEST.to_owned(), Kind::Image)
        );
        let index = format!(r#"{{"schemaVersion":2,"mediaType":"{MEDIA_INDEX}","manifests":[]}}"#);
        let d = doc(&index);
        assert_eq!(media_type_of(&d, None).unwrap().1, Kind::Index);
        assert!(media_type_of(&d, Some(MEDIA_MANIFEST)).is_err());
        let schema1 = doc(
            r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#,
        );
        assert!(media_type_of(&schema1, None).is_err());
        assert!(media_type_of(&doc(r#"{"schemaVersion":2}"#), None).is_err());
    }

    #[test]
    fn references_are_listed_and_checked() {
        let image = doc(&format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{D}","size":1}},
              "layers":[{{"mediaType":"l","digest":"{D}","size":2}},
                        {{"mediaType":"l","digest":"{D}","size":3,"urls":["http://x"]}}]}}"#
        ));
        assert_eq!(references(&image, Kind::Image).unwrap().len(), 2);
        let bad = doc(
            r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:12","size":1},"layers":[]}"#,
        );
        assert!(references(&bad, Kind::Image).is_err());
        let negative = doc(&format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{D}","size":-1}},"layers":[]}}"#
        ));
        assert!(references(&negative, Kind::Image).is_err());
        let v1 = doc(r#"{"schemaVersion":1,"manifests":[]}"#);
        assert!(references(&v1, Kind::Index).is_err());
        assert!(references(&doc(r#"{"schemaVersion":2}"#), Kind::Index).is_err());
    }
}
