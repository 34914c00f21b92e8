//! `docker commit`: the container's overlayfs upper dir becomes a layer on top of its image.
//!
//! The upper dir is written by berth-image's layer writer (`berth_image::layer::write`) as a
//! tar in OCI's layer format (whiteouts as `.wh.` files, opaque directories marked with
//! `.wh..wh..opq`), hashed uncompressed (the diff ID) and gzip-compressed into a staging blob
//! (the layer digest) in one pass. The new config is the
//! container's (command, environment, working dir, user, labels, …) over the image's, with the
//! `-c` changes and any config sent in the request applied; history gets one entry and
//! rootfs.diff_ids the new layer. An empty upper dir adds no layer (an `empty_layer` history
//! entry), as in Docker.
//!
//! The blobs become visible only once whole, and everything is pinned from before the first
//! blob is stored until the image is registered (`ImageStore::add_image`, which also unpacks
//! the layer as a snapshot), so a collection meanwhile never takes them.

use std::io::Write;

use crate::error::EngineError;
use berth_api::archive::CommitRequest;
use berth_core::{Digest, Reference};
use berth_image::content::HashingWriter;
use berth_image::oci::{
    host_platform, Descriptor, History, ImageConfig, Manifest, RunConfig, MEDIA_CONFIG,
    MEDIA_LAYER_GZIP, MEDIA_MANIFEST,
};
use berth_image::snapshot::chain_id;

use crate::container::record::Record;
use crate::Engine;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn img_err(e: berth_image::ImageError) -> EngineError {
    EngineError::from_kind(&e)
}

fn digest_of(bytes: &[u8]) -> Digest {
    let mut h = HashingWriter::new(std::io::sink());
    h.write_all(bytes).expect("a sink takes everything");
    h.finish().1
}

/// A layer written to the content store's staging area.
pub(crate) struct StagedLayer {
    pub(crate) path: std::path::PathBuf,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub(crate) diff_size: u64,
    pub(crate) entries: u64,
}

/// What a commit takes from the container (its record keeps entrypoint and command as one
/// argv).
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) user: String,
    pub(crate) labels: std::collections::BTreeMap<String, String>,
    pub(crate) stop_signal: Option<String>,
}

impl Settings {
    pub(crate) fn of(rec: &Record) -> Settings {
        Settings {
            argv: std::iter::once(rec.path.clone())
                .chain(rec.args.iter().cloned())
                .collect(),
            env: rec.env().to_vec(),
            cwd: rec.cwd().to_owned(),
            user: rec.user().to_owned(),
            labels: rec.labels(),
            stop_signal: rec.stop_signal().map(str::to_owned),
        }
    }

    /// The entrypoint and command, told apart again: when the argv starts with the image's
    /// entrypoint, that is the entrypoint; otherwise the whole argv is the command (it runs
    /// the same).
    pub(crate) fn split_command(&self, image: &RunConfig) -> (Option<Vec<String>>, Vec<String>) {
        match &image.entrypoint {
            Some(ep) if !ep.is_empty() && self.argv.starts_with(ep) => {
                (Some(ep.clone()), self.argv[ep.len()..].to_vec())
            }
            _ => (None, self.argv.clone()),
        }
    }
}

/// The image config of a commit: the container's settings over its image's.
pub(crate) fn run_config(
    rec: &Settings,
    image: &RunConfig,
    changes: &[String],
    body: Option<&serde_json::Value>,
) -> Result<RunConfig, EngineError> {
    let mut c = image.clone();
    let (entrypoint, cmd) = rec.split_command(image);
    c.entrypoint = entrypoint;
    c.cmd = Some(cmd).filter(|c| !c.is_empty());
    c.env = Some(rec.env.clone()).filter(|e| !e.is_empty());
    c.working_dir = Some(rec.cwd.clone()).filter(|w| !w.is_empty());
    c.user = Some(rec.user.clone()).filter(|u| !u.is_empty());
    if !rec.labels.is_empty() {
        let labels = c.labels.get_or_insert_with(Default::default);
        labels.extend(rec.labels.clone());
    }
    if rec.stop_signal.is_some() {
        c.stop_signal = rec.stop_signal.clone();
    }
    crate::changes::apply(&mut c, changes).map_err(EngineError::invalid)?;
    if let Some(body) = body {
        // Fields of a config sent with the request win (Docker merges them the same way).
        let given: RunConfig = serde_json::from_value(body.clone())
            .map_err(|e| EngineError::invalid(format!("invalid container config: {e}")))?;
        macro_rules! take {
            ($($f:ident),*) => { $( if given.$f.is_some() { c.$f = given.$f.clone(); } )* };
        }
        take!(
            user,
            exposed_ports,
            env,
            entrypoint,
            cmd,
            volumes,
            working_dir,
            labels,
            stop_signal,
            healthcheck,
            shell,
            on_build
        );
    }
    Ok(c)
}

/// `repo[:tag]` as a name to give the image (Docker's rules for tags).
fn target(repo: Option<&str>, tag: Option<&str>) -> Result<Option<Reference>, EngineError> {
    let Some(repo) = repo else {
        if tag.is_some() {
            return Err(EngineError::invalid("tag requires a repository name"));
        }
        return Ok(None);
    };
    let text = match tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_owned(),
    };
    let r: Reference = text.parse().map_err(|e| EngineError::from_kind(&e))?;
    if r.digest.is_some() {
        return Err(EngineError::invalid(
            "refusing to create a tag with a digest reference",
        ));
    }
    Ok(Some(r))
}

impl Engine {
    /// Writes the container's upper dir as a gzip-compressed layer blob in staging (a
    /// remapped container's files with the owners it sees, as an image holds them).
    fn stage_layer(&self, rec: &Record) -> Result<StagedLayer, EngineError> {
        self.stage_layer_of(
            &self.container_dir(&rec.id).join("upper"),
            self.idmap_of(rec),
        )
    }

    /// Writes an overlayfs upper dir as a gzip-compressed layer blob in staging (runtime mount
    /// points left out, whiteouts in OCI's form): berth-image's layer writer. `ids`: the upper
    /// dir is in a remapped container's host view.
    pub(crate) fn stage_layer_of(
        &self,
        upper: &std::path::Path,
        ids: Option<berth_core::idmap::IdMap>,
    ) -> Result<StagedLayer, EngineError> {
        let path = self.images.content.staging_path("commit");
        let written = berth_image::layer::write_layer(upper, &path, ids)
            .map_err(|e| EngineError::internal(e.to_string()))?;
        Ok(StagedLayer {
            path,
            digest: written.digest,
            size: written.size,
            diff_id: written.diff_id,
            diff_size: written.diff_size,
            entries: written.entries,
        })
    }

    /// Stores an image whose layer blobs are in the content store (or staged: `staged`, moved
    /// in here) and names it: config and manifest written, everything pinned from before the
    /// first write until the image is registered.
    pub(crate) fn store_image(
        &self,
        image_config: &ImageConfig,
        layers: Vec<Descriptor>,
        staged: Option<&StagedLayer>,
        names: &[Reference],
        created: &str,
    ) -> Result<berth_image::store::Added, EngineError> {
        let config_bytes = serde_json::to_vec(image_config).expect("configs serialize");
        let config_digest = digest_of(&config_bytes);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.to_owned()),
            config: Descriptor::new(
                MEDIA_CONFIG,
                config_digest.clone(),
                config_bytes.len() as u64,
            ),
            layers,
            annotations: Default::default(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifests serialize");
        let manifest_digest = digest_of(&manifest_bytes);

        // Pinned before any of it is stored: a collection running now keeps it all.
        let mut chain: Option<Digest> = None;
        let mut pinned = vec![config_digest.clone(), manifest_digest.clone()];
        for d in &image_config.rootfs.diff_ids {
            let c = chain_id(chain.as_ref(), d);
            pinned.push(c.clone());
            chain = Some(c);
        }
        pinned.extend(manifest.layers.iter().map(|l| l.digest.clone()));
        let _pin = self.images.pin(pinned);
        let stored = (|| {
            if let Some(layer) = staged {
                self.images
                    .content
                    .commit(&layer.path, &layer.digest)
                    .map_err(img_err)?;
            }
            self.images.content.put(&config_bytes).map_err(img_err)?;
            self.images.content.put(&manifest_bytes).map_err(img_err)?;
            self.images
                .add_image(&manifest_digest, names, created)
                .map_err(img_err)
        })();
        if let (Err(_), Some(layer)) = (&stored, staged) {
            let _ = std::fs::remove_file(&layer.path);
        }
        stored
    }

    pub(crate) fn commit(&self, req: CommitRequest) -> Result<String, EngineError> {
        if req.container.is_empty() {
            return Err(EngineError::invalid("No container was specified"));
        }
        let rec = self.find(&req.container)?;
        let name = target(req.repo.as_deref(), req.tag.as_deref())?;
        let image_id: Digest = rec
            .image_id
            .parse()
            .map_err(|_| EngineError::internal("bad image id in container record"))?;
        let base = self.images.config(&image_id).map_err(img_err)?;
        let index = self.images.index().map_err(img_err)?;
        let base_manifest: Manifest = match index.images.get(&image_id) {
            Some(r) => serde_json::from_slice(
                &self
                    .images
                    .content
                    .read_blob(&r.manifest)
                    .map_err(img_err)?,
            )
            .map_err(|e| EngineError::internal(format!("the image's manifest: {e}")))?,
            None => {
                return Err(EngineError::conflict(format!(
                    "cannot commit container {}: its image {image_id} was removed",
                    rec.id
                )))
            }
        };
        let settings = Settings::of(&rec);
        let config = run_config(&settings, &base.config, &req.changes, req.config.as_ref())?;

        // Read the upper dir under the container's lock (no start or removal meanwhile), with
        // the container frozen unless asked otherwise, as Docker does.
        let layer = {
            let lock = self.container_lock(&rec.id);
            let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
            if !self.container_dir(&rec.id).join("config.json").exists() {
                return Err(EngineError::not_found(format!(
                    "No such container: {}",
                    req.container
                )));
            }
            let st = self.refresh(&rec.id);
            // A pause that fails is no error, as in Docker (`daemon/commit.go` ignores it):
            // the container may have exited since the look above (its record lagging), and
            // then there is nothing to freeze.
            // While frozen, a marker says so: a daemon killed meanwhile thaws it at its next
            // start (`repair`).
            let marker = self
                .container_dir(&rec.id)
                .join(crate::repair::COMMIT_PAUSED);
            let frozen = req.pause
                && st.running()
                && !st.paused
                && std::fs::write(&marker, b"").is_ok()
                && self.pause(&rec.id, true).is_ok();
            let layer = self.stage_layer(&rec);
            if frozen {
                let _ = self.pause(&rec.id, false);
            }
            let _ = std::fs::remove_file(&marker);
            layer?
        };

        let created = now();
        // An upper dir with nothing in it adds no layer (the tar is only its end blocks).
        let empty = layer.entries == 0;
        let mut diff_ids = base.rootfs.diff_ids.clone();
        let mut layers = base_manifest.layers.clone();
        if !empty {
            diff_ids.push(layer.diff_id.clone());
            layers.push(Descriptor::new(
                MEDIA_LAYER_GZIP,
                layer.digest.clone(),
                layer.size,
            ));
        }
        let (_, cmd) = settings.split_command(&base.config);
        let mut history = base.history.clone();
        history.push(History {
            created: Some(created.clone()),
            created_by: Some(cmd.join(" ")),
            author: req.author.clone(),
            comment: req.comment.clone(),
            empty_layer: empty,
        });
        let (os, arch, variant) = host_platform();
        let image_config = ImageConfig {
            created: Some(created.clone()),
            author: req.author.clone(),
            comment: req.comment.clone(),
            architecture: if base.architecture.is_empty() {
                arch.to_owned()
            } else {
                base.architecture.clone()
            },
            os: if base.os.is_empty() {
                os.to_owned()
            } else {
                base.os.clone()
            },
            variant: base.variant.clone().or(variant.map(str::to_owned)),
            config,
            rootfs: berth_image::oci::RootFs {
                kind: "layers".to_owned(),
                diff_ids: diff_ids.clone(),
            },
            history,
            // Docker's record of where a commit came from (inspect's Parent, Container,
            // ContainerConfig).
            docker: berth_image::oci::DockerFields {
                parent: Some(image_id.to_string()),
                container: Some(rec.id.clone()),
                container_config: serde_json::to_value(&rec.config).ok(),
                docker_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
            },
        };
        if empty {
            let _ = std::fs::remove_file(&layer.path);
        }
        let names: Vec<Reference> = name.iter().cloned().collect();
        let added = self.store_image(
            &image_config,
            layers,
            (!empty).then_some(&layer),
            &names,
            &created,
        )?;
        let id = added.id.to_string();
        self.container_event(
            &rec,
            "commit",
            &[
                ("comment", req.comment.clone().unwrap_or_default()),
                ("imageID", id.clone()),
                (
                    "imageRef",
                    name.as_ref().map(Reference::familiar).unwrap_or_default(),
                ),
            ],
        );
        if let Some(n) = &name {
            self.image_event(
                crate::images::ImageAction::Tag,
                &id,
                [("name".to_owned(), n.familiar())].into(),
            );
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(argv: &[&str]) -> Settings {
        Settings {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "A=1".into()],
            cwd: "/work".into(),
            labels: [("x".to_owned(), "y".to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_containers_settings_over_the_image() {
        let image = RunConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["default".into()]),
            labels: Some([("from".to_owned(), "image".to_owned())].into()),
            exposed_ports: Some([("80/tcp".to_owned(), serde_json::json!({}))].into()),
            ..Default::default()
        };
        let rec = record(&["/entry", "run", "it"]);
        let c = run_config(&rec, &image, &[], None).unwrap();
        assert_eq!(c.entrypoint, Some(vec!["/entry".to_owned()]));
        assert_eq!(c.cmd, Some(vec!["run".to_owned(), "it".to_owned()]));
        assert_eq!(
            c.env.as_deref(),
            Some(&["PATH=/bin".to_owned(), "A=1".to_owned()][..])
        );
        assert_eq!(c.working_dir.as_deref(), Some("/work"));
        assert_eq!(c.labels.as_ref().unwrap().len(), 2);
        assert!(c.exposed_ports.is_some());

        // An overridden entrypoint: the whole argv is the command.
        let rec = record(&["sh", "-c", "x"]);
        let c = run_config(
            &rec,
            &image,
            &[r#"CMD ["echo", "hi"]"#.into(), "ENV B=2".into()],
            None,
        )
        .unwrap();
        assert_eq!(c.entrypoint, None);
        assert_eq!(c.cmd, Some(vec!["echo".to_owned(), "hi".to_owned()]));
        assert!(c.env.unwrap().contains(&"B=2".to_owned()));

        let body = serde_json::json!({"Cmd": ["from", "body"], "WorkingDir": "/b"});
        let c = run_config(&rec, &image, &[], Some(&body)).unwrap();
        assert_eq!(c.cmd, Some(vec!["from".to_owned(), "body".to_owned()]));
        assert_eq!(c.working_dir.as_deref(), Some("/b"));
        assert!(run_config(&rec, &image, &["RUN x".into()], None).is_err());
    }

    #[test]
    fn names_follow_dockers_rules() {
        assert_eq!(target(None, None).unwrap(), None);
        assert!(target(None, Some("v1")).is_err());
        assert_eq!(
            target(Some("app"), Some("v1")).unwrap().unwrap().familiar(),
            "app:v1"
        );
        assert!(target(Some("Bad Name"), None).is_err());
    }
}
