//! `docker load`: the archive formats images travel in, and bringing their content into the
//! store verified.
//!
//! Three forms are read:
//! - What Docker 25+ writes: an OCI image layout (`oci-layout`, `index.json`,
//!   `blobs/sha256/…`) with Docker's `manifest.json` (and `repositories`) beside it. Names
//!   come from the index's annotations and from `manifest.json`'s `RepoTags`.
//! - The legacy docker-archive: `manifest.json` naming `<config>.json` and `<id>/layer.tar`
//!   files (links between layers allowed), no OCI layout.
//! - A plain OCI image layout: names from `io.containerd.image.name`, or from
//!   `org.opencontainers.image.ref.name` when that holds a whole reference.
//!
//! [`plan`] reads the metadata and checks it (every JSON document against its digest, layer
//! counts against the config); [`load_image`] then brings each layer in: its bytes are hashed
//! as they are copied to a staging blob and unpacked to a staging snapshot, and both become
//! visible only when the blob matches its digest and the unpacked layer its config's diff ID.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};

use berth_core::{Digest, Reference};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::archive::Archive;
use crate::compression::{decompressed, Compression};
use crate::content::{sha256_digest, ContentStore, HashingReader};
use crate::error::{ImageError, Result};
use crate::oci::{
    host_platform, is_index, is_manifest, Descriptor, ImageConfig, ImageIndex, Manifest,
    ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR,
    MEDIA_LAYER_ZSTD, MEDIA_MANIFEST,
};
use crate::snapshot::{chain_id, SnapshotStore};

/// JSON documents larger than this are refused rather than read into memory.
pub const MAX_DOCUMENT: u64 = 32 << 20;

/// One layer to bring in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLayer {
    /// Its file in the archive.
    pub path: String,
    /// The blob's digest and size when the archive states them (OCI descriptors, or a
    /// `blobs/sha256/<hex>` name); legacy `layer.tar` files have only their diff ID.
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    pub media_type: Option<String>,
    /// What the unpacked layer must hash to (from the image config).
    pub diff_id: Digest,
}

/// One image to bring in.
#[derive(Debug, Clone)]
pub struct PlannedImage {
    /// The config's digest.
    pub id: Digest,
    pub config: Vec<u8>,
    pub parsed: ImageConfig,
    /// The manifest as the archive has it (OCI layouts); legacy archives get one made.
    pub manifest: Option<(Digest, Vec<u8>)>,
    pub layers: Vec<PlannedLayer>,
    pub names: Vec<Reference>,
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(msg.into())
}

pub fn digest_of(bytes: &[u8]) -> Digest {
    let mut h = Sha256::new();
    h.update(bytes);
    sha256_digest(h)
}

/// `blobs/<algorithm>/<hex>`, where an OCI layout keeps a blob.
pub fn blob_path(d: &Digest) -> String {
    format!("blobs/{}", d.to_string().replacen(':', "/", 1))
}

/// The digest a file's name promises: `blobs/sha256/<hex>` or (legacy configs) `<hex>.json`.
fn digest_in_name(path: &str) -> Option<Digest> {
    let norm = crate::archive::normalize(path).ok()?;
    if let Some(rest) = norm.strip_prefix("blobs/") {
        let (alg, hex) = rest.split_once('/')?;
        return format!("{alg}:{hex}").parse().ok();
    }
    let hex = norm.strip_suffix(".json")?;
    format!("sha256:{hex}").parse().ok()
}

/// Reads a small blob and checks it against `want` (and `size`).
fn read_verified(
    archive: &Archive,
    path: &str,
    want: &Digest,
    size: Option<u64>,
) -> Result<Vec<u8>> {
    let bytes = archive
        .read_small(path, MAX_DOCUMENT)?
        .ok_or_else(|| invalid(format!("{path} is not in the archive")))?;
    let got = digest_of(&bytes);
    if got != *want {
        return Err(invalid(format!(
            "{path}: content does not match its digest: expected {want}, got {got}"
        )));
    }
    if let Some(size) = size {
        if size != bytes.len() as u64 {
            return Err(invalid(format!(
                "{path}: size does not match: expected {size} bytes, got {}",
                bytes.len()
            )));
        }
    }
    Ok(bytes)
}

fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("failed to decode {what}: {e}")))
}

fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig> {
    let config: ImageConfig = parse_json(bytes, what)?;
    if config.os() != "linux" {
        return Err(ImageError::InvalidArgument(format!(
            "cannot load {} image on linux",
            config.os()
        )));
    }
    Ok(config)
}

/// A name for an image: tagged, not by digest.
fn tag_name(text: &str) -> Result<Reference> {
    let r: Reference = text
        .parse()
        .map_err(|e: berth_core::ReferenceError| invalid(format!("invalid tag {text:?}: {e}")))?;
    if r.digest.is_some() || r.tag.is_none() {
        return Err(invalid(format!("invalid tag {text:?}")));
    }
    Ok(r)
}

/// The name an index entry gives its image, if any.
fn names_from_annotations(ann: &BTreeMap<String, String>) -> Result<Vec<Reference>> {
    if let Some(full) = ann.get(ANNOTATION_IMAGE_NAME) {
        // containerd also names images by digest alone; those are no tags.
        return Ok(match full.parse::<Reference>() {
            Ok(r) if r.digest.is_none() => vec![r],
            Ok(_) => Vec::new(),
            Err(e) => return Err(invalid(format!("invalid image name {full:?}: {e}"))),
        });
    }
    match ann.get(ANNOTATION_REF_NAME) {
        // A bare tag ("latest") names no repository: the image loads untagged.
        Some(n) if n.contains(':') || n.contains('/') => Ok(vec![tag_name(n)?]),
        _ => Ok(Vec::new()),
    }
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .get("vnd.docker.reference.type")
        .is_some_and(|t| t == "attestation-manifest")
        || d.platform.as_ref().is_some_and(|p| p.os == "unknown")
}

/// From a multi-platform index, the manifest for this host that the archive has.
fn pick_platform(index: &ImageIndex, archive: &Archive) -> Result<Descriptor> {
    let (os, arch, _) = host_platform();
    let present: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| is_manifest(&d.media_type) && !is_attestation(d))
        .filter(|d| archive.contains(&blob_path(&d.digest)))
        .collect();
    present
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == os && p.architecture == arch)
        })
        .or(if present.len() == 1 {
            present.first()
        } else {
            None
        })
        .map(|d| (*d).clone())
        .ok_or_else(|| invalid(format!("no image for {os}/{arch} in the archive")))
}

#[derive(Debug, Deserialize)]
struct ManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn check_layer_count(layers: usize, config: &ImageConfig) -> Result<()> {
    let diff_ids = config.rootfs.diff_ids.len();
    if layers != diff_ids {
        return Err(invalid(format!(
            "invalid manifest, layers length mismatch: expected {layers}, got {diff_ids}"
        )));
    }
    Ok(())
}

/// An image from an OCI manifest in the layout.
fn plan_oci(archive: &Archive, desc: &Descriptor, names: Vec<Reference>) -> Result<PlannedImage> {
    let path = blob_path(&desc.digest);
    let bytes = read_verified(archive, &path, &desc.digest, Some(desc.size))?;
    let manifest: Manifest = parse_json(&bytes, &path)?;
    let cpath = blob_path(&manifest.config.digest);
    let config = read_verified(
        archive,
        &cpath,
        &manifest.config.digest,
        Some(manifest.config.size),
    )?;
    let parsed = parse_config(&config, &cpath)?;
    check_layer_count(manifest.layers.len(), &parsed)?;
    let layers = manifest
        .layers
        .iter()
        .zip(&parsed.rootfs.diff_ids)
        .map(|(l, diff_id)| PlannedLayer {
            path: blob_path(&l.digest),
            digest: Some(l.digest.clone()),
            size: Some(l.size),
            media_type: Some(l.media_type.clone()),
            diff_id: diff_id.clone(),
        })
        .collect();
    Ok(PlannedImage {
        id: manifest.config.digest.clone(),
        config,
        parsed,
        manifest: Some((desc.digest.clone(), bytes)),
        layers,
        names,
    })
}

/// A `manifest.json` item's config: its bytes and digest (checked against its name).
fn item_config(archive: &Archive, item: &ManifestItem) -> Result<(Digest, Vec<u8>)> {
    let bytes = archive
        .read_small(&item.config, MAX_DOCUMENT)?
        .ok_or_else(|| invalid(format!("{} is not in the archive", item.config)))?;
    let got = digest_of(&bytes);
    if let Some(want) = digest_in_name(&item.config) {
        if want != got {
            return Err(invalid(format!(
                "{}: content does not match its digest: expected {want}, got {got}",
                item.config
            )));
        }
    }
    Ok((got, bytes))
}

/// An image from a `manifest.json` item (no OCI manifest for it).
fn plan_item(archive: &Archive, item: &ManifestItem) -> Result<PlannedImage> {
    let (id, config) = item_config(archive, item)?;
    let parsed = parse_config(&config, &item.config)?;
    check_layer_count(item.layers.len(), &parsed)?;
    let layers = item
        .layers
        .iter()
        .zip(&parsed.rootfs.diff_ids)
        .map(|(path, diff_id)| PlannedLayer {
            path: path.clone(),
            digest: digest_in_name(path),
            size: None,
            media_type: None,
            diff_id: diff_id.clone(),
        })
        .collect();
    let names = item
        .repo_tags
        .iter()
        .flatten()
        .map(|t| tag_name(t))
        .collect::<Result<Vec<_>>>()?;
    Ok(PlannedImage {
        id,
        config,
        parsed,
        manifest: None,
        layers,
        names,
    })
}

fn add_names(to: &mut Vec<Reference>, names: impl IntoIterator<Item = Reference>) {
    for n in names {
        if !to.contains(&n) {
            to.push(n);
        }
    }
}

/// What the archive holds, checked: every image with its layers and names.
pub fn plan(archive: &Archive) -> Result<Vec<PlannedImage>> {
    let items: Option<Vec<ManifestItem>> = archive
        .read_small("manifest.json", MAX_DOCUMENT)?
        .map(|b| parse_json::<Option<Vec<ManifestItem>>>(&b, "manifest.json"))
        .transpose()?
        .map(|items| {
            // Docker: a null manifest is a bug somewhere, not "nothing to load".
            items
                .ok_or_else(|| invalid("invalid manifest, manifest cannot be null (but can be [])"))
        })
        .transpose()?;
    let index: Option<ImageIndex> = archive
        .read_small("index.json", MAX_DOCUMENT)?
        .map(|b| parse_json(&b, "index.json"))
        .transpose()?;

    let mut images: Vec<PlannedImage> = Vec::new();
    match (&index, &items) {
        (None, None) => {
            return Err(invalid(
                "does not contain a manifest.json or an OCI layout (index.json)",
            ))
        }
        (Some(index), _) => {
            // Entries by manifest, so several names of one manifest make one image.
            let mut wanted: Vec<(Descriptor, Vec<Reference>)> = Vec::new();
            for d in &index.manifests {
                let names = names_from_annotations(&d.annotations)?;
                let target = if is_manifest(&d.media_type) {
                    d.clone()
                } else if is_index(&d.media_type) {
                    let path = blob_path(&d.digest);
                    let bytes = read_verified(archive, &path, &d.digest, Some(d.size))?;
                    pick_platform(&parse_json(&bytes, &path)?, archive)?
                } else {
                    continue; // not an image (attestations, artifacts)
                };
                match wanted.iter_mut().find(|(w, _)| w.digest == target.digest) {
                    Some((_, n)) => add_names(n, names),
                    None => wanted.push((target, names)),
                }
            }
            for (desc, names) in wanted {
                images.push(plan_oci(archive, &desc, names)?);
            }
        }
        (None, Some(_)) => {}
    }
    // manifest.json: names for the layout's images, and (legacy archives) the images.
    for item in items.iter().flatten() {
        let (id, _) = item_config(archive, item)?;
        let matching: Vec<usize> = (0..images.len()).filter(|i| images[*i].id == id).collect();
        if matching.is_empty() {
            images.push(plan_item(archive, item)?);
            continue;
        }
        let names = item
            .repo_tags
            .iter()
            .flatten()
            .map(|t| tag_name(t))
            .collect::<Result<Vec<_>>>()?;
        add_names(&mut images[matching[0]].names, names);
    }
    Ok(images)
}

/// What a load created, so that a failed load can take it away again.
#[derive(Debug, Default)]
pub struct Created {
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<Digest>,
}

/// Copies what is read into `writer` too, when there is one.
struct Tee<R, W> {
    reader: R,
    writer: Option<W>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        if let Some(w) = &mut self.writer {
            w.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Remembers the first error its reader gave, so that a failure while unpacking (which
/// reports "write <file>: …") is blamed on the archive, not on the disk.
struct Noting<R> {
    inner: R,
    error: std::rc::Rc<std::cell::RefCell<Option<String>>>,
}

impl<R: Read> Read for Noting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.error.borrow_mut().get_or_insert_with(|| e.to_string());
        })
    }
}

/// Errors about what the archive holds get the name of the file; the store's own failures
/// (a full disk) stay what they are.
fn in_file(path: &str, e: ImageError) -> ImageError {
    use berth_core::error::HasErrorKind;
    match e {
        ImageError::InvalidArchive(_) => e,
        e if e.kind() == berth_core::ErrorKind::InvalidArgument => invalid(format!("{path}: {e}")),
        e => e,
    }
}

/// Brings one layer in on top of `parent`; returns its descriptor as the store keeps it.
fn load_layer(
    content: &ContentStore,
    snapshots: &SnapshotStore,
    archive: &Archive,
    layer: &PlannedLayer,
    parent: Option<&Digest>,
    created: &mut Created,
) -> Result<Descriptor> {
    let (section, size) = archive
        .open_file(&layer.path)?
        .ok_or_else(|| invalid(format!("{} is not in the archive", layer.path)))?;
    if let Some(want) = layer.size {
        if want != size {
            return Err(invalid(format!(
                "{}: size does not match: expected {want} bytes, got {size}",
                layer.path
            )));
        }
    }
    let chain = chain_id(parent, &layer.diff_id);
    let have_blob = layer.digest.as_ref().is_some_and(|d| content.exists(d));
    let have_snapshot = snapshots.exists(&chain);
    let staging = (!have_blob).then(|| content.staging_path("load"));
    let writer = match &staging {
        Some(p) => Some(BufWriter::with_capacity(
            256 * 1024,
            std::fs::File::create(p).map_err(|e| ImageError::io("create", p, e))?,
        )),
        None => None,
    };
    let mut tee = Tee {
        reader: HashingReader::new(section),
        writer,
    };
    let bad = |e: std::io::Error| invalid(format!("{}: {e}", layer.path));
    let unpacked = (|| {
        let (kind, stream) = decompressed(&mut tee).map_err(bad)?;
        let (diff_id, staged) = if have_snapshot {
            let (d, _) = HashingReader::new(stream).finish().map_err(bad)?;
            (d, None)
        } else {
            let noted = std::rc::Rc::default();
            let reading = Noting {
                inner: stream,
                error: std::rc::Rc::clone(&noted),
            };
            let staged =
                snapshots
                    .stage(parent, reading)
                    .map_err(|e| match noted.borrow().as_ref() {
                        Some(why) => invalid(format!("{}: {why}", layer.path)),
                        None => e,
                    })?;
            (staged.meta().diff_id.clone(), Some(staged))
        };
        if diff_id != layer.diff_id {
            return Err(invalid(format!(
                "{}: the layer's content (diff ID {diff_id}) is not what the image config says ({})",
                layer.path, layer.diff_id
            )));
        }
        // What the decompressor left (a gzip trailer, tar padding) belongs to the blob too.
        std::io::copy(&mut tee, &mut std::io::sink()).map_err(bad)?;
        Ok((kind, staged))
    })();
    let verified = unpacked.and_then(|(kind, staged)| {
        let Tee { reader, writer } = tee;
        let (digest, count) = reader.finish().map_err(bad)?;
        if let Some(w) = writer {
            w.into_inner()
                .map_err(|e| ImageError::io("write", &layer.path, e.into_error()))?;
        }
        if let Some(want) = &layer.digest {
            if *want != digest {
                return Err(invalid(format!(
                    "{}: content does not match its digest: expected {want}, got {digest}",
                    layer.path
                )));
            }
        }
        Ok((kind, staged, digest, count))
    });
    let (kind, staged, digest, count) = match verified {
        Ok(v) => v,
        Err(e) => {
            if let Some(p) = &staging {
                let _ = std::fs::remove_file(p);
            }
            return Err(in_file(&layer.path, e));
        }
    };
    if let Some(p) = &staging {
        let existed = content.exists(&digest);
        content.commit(p, &digest)?;
        if !existed {
            created.blobs.push(digest.clone());
        }
    }
    if let Some(staged) = staged {
        let meta = staged.commit()?;
        created.snapshots.push(meta.chain_id);
    }
    let media_type = layer.media_type.clone().unwrap_or_else(|| {
        match kind {
            Compression::None => MEDIA_LAYER_TAR,
            Compression::Gzip => MEDIA_LAYER_GZIP,
            Compression::Zstd => MEDIA_LAYER_ZSTD,
        }
        .to_owned()
    });
    Ok(Descriptor::new(&media_type, digest, count))
}

fn put(content: &ContentStore, bytes: &[u8], created: &mut Created) -> Result<Digest> {
    let d = digest_of(bytes);
    let existed = content.exists(&d);
    content.put(bytes)?;
    if !existed {
        created.blobs.push(d.clone());
    }
    Ok(d)
}

/// Brings an image's layers, config and manifest into the store; returns the manifest's
/// digest. Names are the caller's business (they go into the index last).
pub fn load_image(
    content: &ContentStore,
    snapshots: &SnapshotStore,
    archive: &Archive,
    image: &PlannedImage,
    created: &mut Created,
) -> Result<Digest> {
    let mut parent: Option<Digest> = None;
    let mut layers = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        layers.push(load_layer(
            content,
            snapshots,
            archive,
            layer,
            parent.as_ref(),
            created,
        )?);
        parent = Some(chain_id(parent.as_ref(), &layer.diff_id));
    }
    put(content, &image.config, created)?;
    let manifest = match &image.manifest {
        Some((_, bytes)) => bytes.clone(),
        None => serde_json::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.to_owned()),
            config: Descriptor::new(MEDIA_CONFIG, image.id.clone(), image.config.len() as u64),
            layers,
            annotations: BTreeMap::new(),
        })
        .expect("a manifest serializes"),
    };
    put(content, &manifest, created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::tests::tar_file;
    use crate::oci::{RootFs, RunConfig};
    use tar::EntryType::{Regular, Symlink};

    fn layer(data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, "file", data).unwrap();
        b.into_inner().unwrap()
    }

    fn config(diff_ids: Vec<Digest>, os: &str) -> Vec<u8> {
        serde_json::to_vec(&ImageConfig {
            created: None,
            author: None,
            comment: None,
            architecture: host_platform().1.into(),
            os: os.into(),
            variant: None,
            config: RunConfig::default(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids,
            },
            history: Vec::new(),
            docker: Default::default(),
        })
        .unwrap()
    }

    fn hex(d: &Digest) -> &str {
        d.hex()
    }

    #[test]
    fn legacy_archives_plan_from_manifest_json() {
        let l = layer(b"hi");
        let lid = digest_of(&l);
        let c = config(vec![lid.clone()], "linux");
        let cid = digest_of(&c);
        let cname = format!("{}.json", hex(&cid));
        let manifest = format!(
            r#"[{{"Config":"{cname}","RepoTags":["bb:latest","other/x:1"],"Layers":["v1a/layer.tar","v1b/layer.tar"]}}]"#
        );
        // Two layers of the same content, the second a link to the first (as Docker wrote).
        let two = config(vec![lid.clone(), lid.clone()], "linux");
        let two_id = digest_of(&two);
        let two_name = format!("{}.json", hex(&two_id));
        let manifest = manifest.replace(&cname, &two_name);
        let a = Archive::new(tar_file(&[
            ("v1a/layer.tar", Regular, "", &l),
            ("v1b/layer.tar", Symlink, "../v1a/layer.tar", b""),
            (&two_name, Regular, "", &two),
            ("manifest.json", Regular, "", manifest.as_bytes()),
            ("repositories", Regular, "", b"{}"),
        ]))
        .unwrap();
        let images = plan(&a).unwrap();
        assert_eq!(images.len(), 1);
        let img = &images[0];
        assert_eq!(img.id, two_id);
        assert!(img.manifest.is_none());
        assert_eq!(
            img.names.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            ["bb:latest", "other/x:1"]
        );
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[1].path, "v1b/layer.tar");
        assert_eq!(img.layers[1].digest, None);
        assert_eq!(img.layers[1].diff_id, lid);
    }

    #[test]
    fn oci_layouts_plan_from_index_json() {
        let l = layer(b"hi");
        let lid = digest_of(&l);
        let c = config(vec![lid.clone()], "linux");
        let cid = digest_of(&c);
        let m = serde_json::to_vec(&Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            config: Descriptor::new(MEDIA_CONFIG, cid.clone(), c.len() as u64),
            layers: vec![Descriptor::new(
                MEDIA_LAYER_TAR,
                lid.clone(),
                l.len() as u64,
            )],
            annotations: BTreeMap::new(),
        })
        .unwrap();
        let mid = digest_of(&m);
        let entry = |ann: &str| {
            format!(
                r#"{{"mediaType":"{MEDIA_MANIFEST}","digest":"{mid}","size":{},"annotations":{{{ann}}}}}"#,
                m.len()
            )
        };
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{},{},{}]}}"#,
            entry(
                r#""io.containerd.image.name":"docker.io/library/bb:latest","org.opencontainers.image.ref.name":"latest""#
            ),
            entry(r#""org.opencontainers.image.ref.name":"example.com/app:v2""#),
            entry(r#""org.opencontainers.image.ref.name":"v3""#),
        );
        let files = |index: &str| {
            tar_file(&[
                (
                    "oci-layout",
                    Regular,
                    "",
                    br#"{"imageLayoutVersion": "1.0.0"}"#,
                ),
                (&blob_path(&lid), Regular, "", &l),
                (&blob_path(&cid), Regular, "", &c),
                (&blob_path(&mid), Regular, "", &m),
                ("index.json", Regular, "", index.as_bytes()),
            ])
        };
        let images = plan(&Archive::new(files(&index)).unwrap()).unwrap();
        assert_eq!(images.len(), 1);
        let img = &images[0];
        assert_eq!(img.id, cid);
        assert_eq!(img.manifest.as_ref().unwrap().0, mid);
        assert_eq!(
            img.names.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
            ["bb:latest", "example.com/app:v2"]
        );
        assert_eq!(img.layers[0].digest.as_ref(), Some(&lid));
        assert_eq!(img.layers[0].size, Some(l.len() as u64));

        // A descriptor that lies about the manifest's digest is caught before anything loads.
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let bad_index = index.replacen(&mid.to_string(), other, 1);
        let err = plan(&Archive::new(files(&bad_index)).unwrap()).unwrap_err();
        assert!(err.to_string().contains("not in the archive"), "{err}");
    }

    #[test]
    fn bad_metadata_is_refused() {
        let err = plan(&Archive::new(tar_file(&[("x", Regular, "", b"1")])).unwrap()).unwrap_err();
        assert!(err.to_string().contains("manifest.json"), "{err}");
        let err =
            plan(&Archive::new(tar_file(&[("manifest.json", Regular, "", b"null")])).unwrap())
                .unwrap_err();
        assert!(err.to_string().contains("cannot be null"), "{err}");
        assert!(
            plan(&Archive::new(tar_file(&[("manifest.json", Regular, "", b"[]")])).unwrap())
                .unwrap()
                .is_empty()
        );

        // A config whose name promises another digest; a config with too few diff IDs.
        let c = config(Vec::new(), "linux");
        let wrong = format!("{}.json", "ab".repeat(32));
        let m = format!(r#"[{{"Config":"{wrong}","RepoTags":null,"Layers":[]}}]"#);
        let err = plan(
            &Archive::new(tar_file(&[
                (&wrong, Regular, "", &c),
                ("manifest.json", Regular, "", m.as_bytes()),
            ]))
            .unwrap(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        let m = r#"[{"Config":"c.json","RepoTags":null,"Layers":["l.tar"]}]"#;
        let err = plan(
            &Archive::new(tar_file(&[
                ("c.json", Regular, "", &c),
                ("manifest.json", Regular, "", m.as_bytes()),
            ]))
            .unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("layers length mismatch"), "{err}");
        let w = config(Vec::new(), "windows");
        let m = r#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":[]}]"#;
        let err = plan(
            &Archive::new(tar_file(&[
                ("c.json", Regular, "", &w),
                ("manifest.json", Regular, "", m.as_bytes()),
            ]))
            .unwrap(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "cannot load windows image on linux");
        let m = r#"[{"Config":"c.json","RepoTags":["Bad:tag"],"Layers":[]}]"#;
        let err = plan(
            &Archive::new(tar_file(&[
                ("c.json", Regular, "", &c),
                ("manifest.json", Regular, "", m.as_bytes()),
            ]))
            .unwrap(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("invalid tag"), "{err}");
    }

    #[test]
    fn names_in_annotations() {
        let ann = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let n = |a| {
            names_from_annotations(&a)
                .unwrap()
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            n(ann(&[
                (ANNOTATION_IMAGE_NAME, "docker.io/library/bb:1"),
                (ANNOTATION_REF_NAME, "1")
            ])),
            ["docker.io/library/bb:1"]
        );
        assert_eq!(
            n(ann(&[(ANNOTATION_REF_NAME, "bb:2")])),
            ["docker.io/library/bb:2"]
        );
        assert!(n(ann(&[(ANNOTATION_REF_NAME, "latest")])).is_empty());
        assert!(n(ann(&[])).is_empty());
        assert!(names_from_annotations(&ann(&[(ANNOTATION_REF_NAME, "Bad:x")])).is_err());
    }

    #[test]
    fn digests_promised_by_names() {
        let h = "ab".repeat(32);
        assert_eq!(
            digest_in_name(&format!("blobs/sha256/{h}"))
                .unwrap()
                .to_string(),
            format!("sha256:{h}")
        );
        assert_eq!(
            digest_in_name(&format!("./{h}.json")).unwrap().to_string(),
            format!("sha256:{h}")
        );
        assert!(digest_in_name(&format!("{h}/layer.tar")).is_none());
        assert!(digest_in_name("config.json").is_none());
    }
}
