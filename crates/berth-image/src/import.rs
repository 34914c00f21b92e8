//! `import`: a root filesystem tarball (plain, gzip or zstd) becomes a one-layer image, as with
//! `docker import`. The stream is read once: it is unpacked into a snapshot while the same
//! bytes are gzip-compressed into the layer blob.

use std::io::{Read, Write};

use berth_core::Digest;

use crate::compression::decompressed;
use crate::content::{ContentStore, HashingWriter};
use crate::error::{ImageError, Result};
use crate::oci::{
    host_platform, Descriptor, History, ImageConfig, Manifest, RootFs, RunConfig, MEDIA_CONFIG,
    MEDIA_LAYER_GZIP, MEDIA_MANIFEST,
};
use crate::snapshot::{SnapshotMeta, SnapshotStore};

/// Copies what is read into a writer as well.
struct Tee<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// What `import` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The image ID: its config's digest.
    pub id: Digest,
    pub manifest: Digest,
    pub snapshot: SnapshotMeta,
}

/// Imports `reader` with `config` (Cmd, Env, … from `--change`/`-c`); `comment` goes into the
/// image's history (`docker import -m`).
pub fn import_rootfs(
    content: &ContentStore,
    snapshots: &SnapshotStore,
    reader: impl Read,
    mut config: RunConfig,
    comment: Option<String>,
    now: &str,
) -> Result<Imported> {
    let (_, stream) = decompressed(reader).map_err(|e| ImageError::BadArchive(e.to_string()))?;
    // The layer blob: gzip of exactly the bytes that were unpacked.
    let staging = content.staging_path("layer");
    let file =
        std::fs::File::create(&staging).map_err(|e| ImageError::io("create", &staging, e))?;
    let gz = flate2::write::GzEncoder::new(
        HashingWriter::new(std::io::BufWriter::new(file)),
        flate2::Compression::fast(),
    );
    let mut tee = Tee {
        reader: stream,
        writer: gz,
    };
    let snapshot = match snapshots.unpack(None, &mut tee) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(e);
        }
    };
    // Read whatever the tar reader left (padding) into the blob too.
    let finish = (|| -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut tee.reader, &mut tee.writer)?;
        let hashing = tee.writer.finish()?;
        let (buf, digest, size) = hashing.finish();
        buf.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok((digest, size))
    })();
    let (layer_digest, layer_size) = match finish {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(ImageError::io("write layer", &staging, e));
        }
    };
    let layer_blob =
        std::fs::File::open(&staging).map_err(|e| ImageError::io("open", &staging, e))?;
    let stored = content.ingest(layer_blob, Some((&layer_digest, Some(layer_size))));
    let _ = std::fs::remove_file(&staging);
    stored?;

    let (os, arch, variant) = host_platform();
    if config.env.is_none() {
        config.env = Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ]);
    }
    // Docker puts the message both at the top (`Comment` in inspect) and in the history.
    let comment = comment.unwrap_or_else(|| "Imported from -".to_owned());
    let image_config = ImageConfig {
        created: Some(now.to_owned()),
        author: None,
        comment: Some(comment.clone()),
        architecture: arch.to_owned(),
        os: os.to_owned(),
        variant: variant.map(str::to_owned),
        config,
        rootfs: RootFs {
            kind: "layers".to_owned(),
            diff_ids: vec![snapshot.diff_id.clone()],
        },
        history: vec![History {
            created: Some(now.to_owned()),
            created_by: Some("berth import".to_owned()),
            comment: Some(comment),
            ..Default::default()
        }],
        docker: Default::default(),
    };
    let config_bytes = serde_json::to_vec(&image_config).expect("config serializes");
    let config_blob = content.put(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.to_owned()),
        config: Descriptor::new(MEDIA_CONFIG, config_blob.digest.clone(), config_blob.size),
        layers: vec![Descriptor::new(MEDIA_LAYER_GZIP, layer_digest, layer_size)],
        annotations: Default::default(),
    };
    let manifest_blob =
        content.put(&serde_json::to_vec(&manifest).expect("manifest serializes"))?;
    Ok(Imported {
        id: config_blob.digest,
        manifest: manifest_blob.digest,
        snapshot,
    })
}
