//! `docker save`: images as the archive Docker 25+ writes, streamed.
//!
//! ```text
//! blobs/sha256/<hex>   manifests, configs and layers, as the store has them
//! index.json           an OCI index: one entry per name (annotated), or one unnamed entry
//! manifest.json        Docker's list: [{"Config", "RepoTags", "Layers"}] (paths into blobs/)
//! oci-layout           {"imageLayoutVersion": "1.0.0"}
//! repositories         the legacy {"name": {"tag": "<top layer>"}} map, when there are names
//! ```
//!
//! Layers keep the compression they have in the store (Docker's loaders decompress whatever
//! they find), so manifests and their digests are the ones the store has.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use berth_core::{Digest, Reference};
use serde_json::json;

use crate::content::ContentStore;
use crate::error::{ImageError, Result};
use crate::load::blob_path;
use crate::oci::{Descriptor, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_INDEX};

/// One image of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportImage {
    /// The config's digest.
    pub id: Digest,
    pub config_size: u64,
    /// The manifest as stored (its media type, digest and size).
    pub manifest: Descriptor,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    /// The names saved with it (tags; none when it was named by ID).
    pub tags: Vec<Reference>,
}

impl ExportImage {
    /// Every blob the image needs, with its size.
    pub fn blobs(&self) -> Vec<(Digest, u64)> {
        let mut v = vec![
            (self.manifest.digest.clone(), self.manifest.size),
            (self.id.clone(), self.config_size),
        ];
        v.extend(self.layers.iter().map(|l| (l.digest.clone(), l.size)));
        v
    }
}

/// `index.json`, `manifest.json` and (when there are names) `repositories`.
pub fn documents(images: &[ExportImage]) -> (Vec<u8>, Vec<u8>, Option<Vec<u8>>) {
    let mut manifests = Vec::new();
    let mut items = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let untagged = Descriptor::new(
            &img.manifest.media_type,
            img.manifest.digest.clone(),
            img.manifest.size,
        );
        let mut repo_tags = Vec::new();
        for t in &img.tags {
            let tag = t.tag.clone().unwrap_or_else(|| "latest".to_owned());
            let mut d = untagged.clone();
            d.annotations
                .insert(ANNOTATION_IMAGE_NAME.to_owned(), t.to_string());
            d.annotations
                .insert(ANNOTATION_REF_NAME.to_owned(), tag.clone());
            manifests.push(d);
            repo_tags.push(t.familiar());
            if let Some(top) = img.diff_ids.last() {
                repositories
                    .entry(t.familiar_name())
                    .or_default()
                    .insert(tag, top.hex().to_owned());
            }
        }
        if img.tags.is_empty() {
            manifests.push(untagged);
        }
        items.push(json!({
            "Config": blob_path(&img.id),
            // Docker writes null for an image saved without a name.
            "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { json!(repo_tags) },
            "Layers": img.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": manifests,
    });
    let to_vec = |v: &serde_json::Value| serde_json::to_vec(v).expect("JSON values serialize");
    let mut manifest_json = to_vec(&json!(items));
    manifest_json.push(b'\n');
    let repositories = (!repositories.is_empty()).then(|| {
        let mut r = to_vec(&json!(repositories));
        r.push(b'\n');
        r
    });
    (to_vec(&index), manifest_json, repositories)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn out_err(e: std::io::Error) -> ImageError {
    ImageError::io("write", "the archive", e)
}

/// Writes the archive of `images` to `out`, blob by blob (nothing whole in memory).
pub fn write_archive(
    content: &ContentStore,
    images: &[ExportImage],
    out: impl Write,
) -> Result<()> {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for img in images {
        blobs.extend(img.blobs());
    }
    let mut tar = tar::Builder::new(out);
    for dir in ["blobs/", "blobs/sha256/"] {
        tar.append_data(
            &mut header(tar::EntryType::Directory, 0o755, 0),
            dir,
            std::io::empty(),
        )
        .map_err(out_err)?;
    }
    for (digest, size) in &blobs {
        let file = content.open_blob(digest)?;
        let actual = file
            .metadata()
            .map_err(|e| ImageError::io("stat", content.path(digest), e))?
            .len();
        if actual != *size {
            return Err(ImageError::SizeMismatch {
                expected: *size,
                actual,
            });
        }
        let mut h = header(tar::EntryType::Regular, 0o644, *size);
        let mut data = file.take(*size);
        tar.append_data(&mut h, blob_path(digest), &mut data)
            .map_err(out_err)?;
    }
    let (index, manifest, repositories) = documents(images);
    let oci_layout = br#"{"imageLayoutVersion": "1.0.0"}"#;
    let mut files: Vec<(&str, &[u8])> = vec![
        ("index.json", &index),
        ("manifest.json", &manifest),
        ("oci-layout", oci_layout),
    ];
    if let Some(r) = &repositories {
        files.push(("repositories", r));
    }
    for (name, bytes) in files {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        tar.append_data(&mut h, name, bytes).map_err(out_err)?;
    }
    tar.into_inner().map_err(out_err)?.flush().map_err(out_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{DOCKER_MANIFEST, MEDIA_LAYER_GZIP};

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn documents_are_what_docker_writes() {
        let img = ExportImage {
            id: d('c'),
            config_size: 10,
            manifest: Descriptor::new(DOCKER_MANIFEST, d('a'), 20),
            layers: vec![Descriptor::new(MEDIA_LAYER_GZIP, d('b'), 30)],
            diff_ids: vec![d('e')],
            tags: vec!["bb".parse().unwrap(), "example.com/x/y:2".parse().unwrap()],
        };
        let untagged = ExportImage {
            tags: Vec::new(),
            ..img.clone()
        };
        let (index, manifest, repos) = documents(&[img, untagged]);
        let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert_eq!(index["mediaType"], MEDIA_INDEX);
        let m = index["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0]["mediaType"], DOCKER_MANIFEST);
        assert_eq!(m[0]["digest"], d('a').to_string());
        assert_eq!(m[0]["size"], 20);
        assert_eq!(
            m[0]["annotations"][ANNOTATION_IMAGE_NAME],
            "docker.io/library/bb:latest"
        );
        assert_eq!(m[0]["annotations"][ANNOTATION_REF_NAME], "latest");
        assert_eq!(
            m[1]["annotations"][ANNOTATION_IMAGE_NAME],
            "example.com/x/y:2"
        );
        assert!(m[2].get("annotations").is_none());

        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(
            manifest[0]["Config"],
            format!("blobs/sha256/{}", "c".repeat(64))
        );
        assert_eq!(
            manifest[0]["RepoTags"],
            json!(["bb:latest", "example.com/x/y:2"])
        );
        assert_eq!(
            manifest[0]["Layers"],
            json!([format!("blobs/sha256/{}", "b".repeat(64))])
        );
        assert!(manifest[1]["RepoTags"].is_null());

        let repos: serde_json::Value = serde_json::from_slice(&repos.unwrap()).unwrap();
        assert_eq!(repos["bb"]["latest"], "e".repeat(64));
        assert_eq!(repos["example.com/x/y"]["2"], "e".repeat(64));
    }

    #[test]
    fn archives_stream_blobs_and_round_trip_through_the_loader() {
        let t = tempfile::tempdir().unwrap();
        let content = ContentStore::open(t.path()).unwrap();
        let layer = {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_size(2);
            h.set_mode(0o644);
            b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let l = content.put(&layer).unwrap();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [l.digest.to_string()]},
        }))
        .unwrap();
        let c = content.put(&config).unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": crate::oci::MEDIA_MANIFEST,
            "config": {"mediaType": crate::oci::MEDIA_CONFIG, "digest": c.digest.to_string(), "size": c.size},
            "layers": [{"mediaType": crate::oci::MEDIA_LAYER_TAR, "digest": l.digest.to_string(), "size": l.size}],
        }))
        .unwrap();
        let m = content.put(&manifest).unwrap();
        let img = ExportImage {
            id: c.digest.clone(),
            config_size: c.size,
            manifest: Descriptor::new(crate::oci::MEDIA_MANIFEST, m.digest.clone(), m.size),
            layers: vec![Descriptor::new(
                crate::oci::MEDIA_LAYER_TAR,
                l.digest.clone(),
                l.size,
            )],
            diff_ids: vec![l.digest.clone()],
            tags: vec!["bb:1".parse().unwrap()],
        };
        let mut file = tempfile::tempfile().unwrap();
        write_archive(&content, &[img], &mut file).unwrap();
        let archive = crate::archive::Archive::new(file).unwrap();
        let plan = crate::load::plan(&archive).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].id, c.digest);
        assert_eq!(plan[0].manifest.as_ref().unwrap().0, m.digest);
        assert_eq!(plan[0].names, vec!["bb:1".parse::<Reference>().unwrap()]);
        assert!(archive.contains("oci-layout") && archive.contains("repositories"));

        // A blob whose file does not have its recorded size is not written out.
        std::fs::write(content.path(&l.digest), b"short").unwrap();
        let img = ExportImage {
            id: c.digest.clone(),
            config_size: c.size,
            manifest: Descriptor::new(crate::oci::MEDIA_MANIFEST, m.digest.clone(), m.size),
            layers: vec![Descriptor::new(
                crate::oci::MEDIA_LAYER_TAR,
                l.digest.clone(),
                l.size,
            )],
            diff_ids: vec![l.digest],
            tags: Vec::new(),
        };
        assert!(write_archive(&content, &[img], std::io::sink()).is_err());
    }
}
