//! Fetching manifests, indexes and small blobs (configs), each checked against its digest.

use berth_core::Digest;
use berth_image::load::digest_of;
use berth_image::oci::{
    is_index, is_manifest, Descriptor, DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST,
    MEDIA_INDEX, MEDIA_MANIFEST,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;

use super::auth::{api_error, read_limited, Req, Session};
use super::error::{RegistryError, Result};

/// What `Accept` offers when asking for a manifest: both indexes and both manifests.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Manifests and indexes larger than this are refused (the distribution spec's 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;
/// Image configs larger than this are refused.
pub const MAX_CONFIG: usize = 32 << 20;

/// A manifest or index as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteManifest {
    pub digest: Digest,
    /// One of the OCI or Docker manifest or index media types.
    pub media_type: String,
    /// Exactly the bytes the registry sent (what the digest is of).
    pub bytes: Vec<u8>,
}

impl RemoteManifest {
    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }

    /// A descriptor of it.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// The media type of a manifest document: the `Content-Type` it came with when that is one
/// we know, else what the document says of itself.
pub fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> Result<String> {
    let ct = content_type
        .and_then(|c| c.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if is_manifest(ct) || is_index(ct) {
        return Ok(ct.to_owned());
    }
    let doc: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::InvalidManifest(format!("invalid manifest: {e}")))?;
    if let Some(mt) = doc.get("mediaType").and_then(|v| v.as_str()) {
        if is_manifest(mt) || is_index(mt) {
            return Ok(mt.to_owned());
        }
    }
    if doc.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(RegistryError::InvalidManifest(
            "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, \
             schema 1 support has been removed. Suggest the author of the image to upgrade it \
             to the OCI Format or Docker Image manifest v2, schema 2."
                .into(),
        ));
    }
    if doc.get("manifests").is_some() {
        return Ok(MEDIA_INDEX.to_owned());
    }
    if let Some(config) = doc.get("config") {
        let docker = config.get("mediaType").and_then(|v| v.as_str()) == Some(DOCKER_CONFIG);
        return Ok(if docker {
            DOCKER_MANIFEST
        } else {
            MEDIA_MANIFEST
        }
        .to_owned());
    }
    Err(RegistryError::InvalidManifest(format!(
        "unsupported manifest media type {:?}",
        if ct.is_empty() { "none" } else { ct }
    )))
}

/// `GET /v2/<repository>/manifests/<tag or digest>`; by digest, the bytes must hash to it.
pub(crate) async fn get_manifest(
    session: &Session,
    repository: &str,
    reference: &str,
) -> Result<RemoteManifest> {
    let url = session
        .endpoint
        .url(&format!("/v2/{repository}/manifests/{reference}"));
    let resp = session
        .send(&Req::new(Method::GET, url).header(ACCEPT, ACCEPT_MANIFESTS))
        .await?;
    if !resp.status().is_success() {
        return Err(RegistryError::Api(api_error(resp).await));
    }
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = read_limited(resp, MAX_MANIFEST).await?;
    let digest = digest_of(&bytes);
    if let Ok(want) = reference.parse::<Digest>() {
        if want != digest {
            return Err(RegistryError::DigestMismatch {
                what: "manifest",
                expected: want,
                actual: digest,
            });
        }
    }
    let media_type = media_type_of(content_type.as_deref(), &bytes)?;
    Ok(RemoteManifest {
        digest,
        media_type,
        bytes,
    })
}

/// A small blob (a config), read whole and checked against its descriptor.
pub(crate) async fn get_small_blob(
    session: &Session,
    repository: &str,
    desc: &Descriptor,
    what: &'static str,
) -> Result<Vec<u8>> {
    if desc.size > MAX_CONFIG as u64 {
        return Err(RegistryError::InvalidManifest(format!(
            "{what} {} is too large ({} bytes)",
            desc.digest, desc.size
        )));
    }
    let url = session
        .endpoint
        .url(&format!("/v2/{repository}/blobs/{}", desc.digest));
    let resp = session.send(&Req::new(Method::GET, url)).await?;
    if !resp.status().is_success() {
        return Err(RegistryError::Api(api_error(resp).await));
    }
    let bytes = read_limited(resp, MAX_CONFIG).await?;
    let actual = digest_of(&bytes);
    if actual != desc.digest || bytes.len() as u64 != desc.size {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

/// Whether a media type is one of the image manifest or index types we accept.
pub fn is_known(media_type: &str) -> bool {
    is_manifest(media_type) || is_index(media_type) || media_type == DOCKER_MANIFEST_LIST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(
            media_type_of(Some(&format!("{DOCKER_MANIFEST}; charset=utf-8")), b"{}").unwrap(),
            DOCKER_MANIFEST
        );
        assert_eq!(
            media_type_of(
                Some("application/json"),
                br#"{"schemaVersion":2,"manifests":[]}"#
            )
            .unwrap(),
            MEDIA_INDEX
        );
        assert_eq!(
            media_type_of(
                None,
                format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}"}}"#).as_bytes()
            )
            .unwrap(),
            DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"config":{},"layers":[]}"#).unwrap(),
            MEDIA_MANIFEST
        );
        assert!(media_type_of(None, br#"{"schemaVersion":1,"fsLayers":[]}"#)
            .unwrap_err()
            .to_string()
            .contains("schema 1"));
        assert!(media_type_of(None, b"not json").is_err());
        assert!(is_known(MEDIA_INDEX) && !is_known("text/plain"));
    }
}
