//! The image endpoints, on berth-image's store.

use std::path::{Path, PathBuf};

use berth_api::images::{ImageBackend, ImportRequest};
use berth_api::ApiError;
use berth_core::Reference;
use berth_image::oci::RunConfig;
use bollard_stubs::models::ImageSummary;

use crate::{changes, Engine};

fn created_unix(created: Option<&str>) -> i64 {
    created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map_or(0, |t| t.timestamp())
}

impl ImageBackend for Engine {
    fn upload_dir(&self) -> PathBuf {
        self.root().join("tmp")
    }

    fn import_image(&self, tar: &Path, req: ImportRequest) -> Result<String, ApiError> {
        let reference = match &req.repo {
            Some(repo) => {
                let name = match &req.tag {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.clone(),
                };
                Some(
                    name.parse::<Reference>()
                        .map_err(|e| ApiError::from_kind(&e))?,
                )
            }
            None => None,
        };
        let mut config = RunConfig::default();
        changes::apply(&mut config, &req.changes).map_err(ApiError::bad_request)?;
        let file = std::fs::File::open(tar).map_err(|e| ApiError::internal(e.to_string()))?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let imported = self
            .images
            .import(file, reference.as_ref(), config, req.message, &now)
            .map_err(|e| ApiError::from_kind(&e))?;
        Ok(imported.id.to_string())
    }

    fn list_images(&self, all: bool) -> Result<Vec<ImageSummary>, ApiError> {
        let _ = all; // no intermediate images until the builder exists
        let views = self.images.list().map_err(|e| ApiError::from_kind(&e))?;
        Ok(views
            .into_iter()
            .map(|v| {
                let repo_tags = v
                    .names
                    .iter()
                    .filter_map(|n| n.parse::<Reference>().ok())
                    .map(|r| r.familiar())
                    .collect();
                ImageSummary {
                    id: v.id.to_string(),
                    parent_id: String::new(),
                    repo_tags,
                    repo_digests: Vec::new(),
                    created: created_unix(v.config.created.as_deref()),
                    size: v.size as i64,
                    shared_size: -1,
                    labels: v
                        .config
                        .config
                        .labels
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    containers: -1,
                    ..Default::default()
                }
            })
            .collect())
    }
}
