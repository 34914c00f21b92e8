//! Disk use: `docker system df` (images and their shared layers, containers' writable
//! layers, volumes) and `docker container prune` (stopped containers go, with their
//! directories; the space reported is what their directories held).

use std::collections::HashMap;
use std::path::Path;

use crate::error::EngineError;
use berth_api::containers::ListQuery;
use berth_api::images::ListRequest;
use berth_api::usage::DiskUsage;
use berth_core::filters::Filters;
use bollard_stubs::models::{ContainerPruneResponse, ContainerSummaryStateEnum};

use crate::Engine;

/// Bytes a container's directory holds on disk of its own: everything but the rootfs mount
/// point (which shows the image's layers while mounted).
fn container_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name() != "rootfs")
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => berth_core::fs::apparent_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The prune filters of Docker's containers: `until` (created before), `label`, `label!`.
struct PruneFilter {
    until_secs: Option<i64>,
    filters: Filters,
}

impl PruneFilter {
    fn new(filters: &Filters) -> Result<PruneFilter, EngineError> {
        filters.validate(&["until", "label", "label!"])?;
        let until_secs = filters
            .timestamp("until", berth_core::timestamp::now_nanos())?
            .map(|n| n.div_euclid(1_000_000_000));
        Ok(PruneFilter {
            until_secs,
            filters: filters.clone(),
        })
    }

    fn matches(&self, created_secs: i64, labels: &HashMap<String, String>) -> bool {
        self.until_secs.is_none_or(|u| created_secs < u) && self.filters.match_labels(labels)
    }
}

impl Engine {
    /// `POST /containers/prune`: every container that is stopped (created, exited or dead;
    /// not one waiting for its restart policy) and matches `filters` is removed.
    pub(crate) fn prune_stopped(
        &self,
        filters: &Filters,
    ) -> Result<ContainerPruneResponse, EngineError> {
        let filter = PruneFilter::new(filters)?;
        let all = self.list(ListQuery {
            all: true,
            ..Default::default()
        })?;
        let mut deleted = Vec::new();
        let mut reclaimed: u64 = 0;
        for c in all {
            let stopped = matches!(
                c.state,
                Some(
                    ContainerSummaryStateEnum::EXITED
                        | ContainerSummaryStateEnum::CREATED
                        | ContainerSummaryStateEnum::DEAD
                )
            );
            let Some(id) = c.id.clone() else { continue };
            let labels = c.labels.clone().unwrap_or_default();
            if !stopped || !filter.matches(c.created.unwrap_or(0), &labels) {
                continue;
            }
            let bytes = container_bytes(&self.container_dir(&id));
            // Not forced: a container started meanwhile stays (the removal refuses it); its
            // anonymous volumes stay too, as with Docker's prune.
            if self.remove(&id, false, false).is_ok() {
                reclaimed += bytes;
                deleted.push(id);
            }
        }
        // The space it reports is free when it answers: the removals' files go first.
        self.finish_background_work(std::time::Duration::from_secs(60));
        self.events.emit(
            "container",
            "prune",
            "",
            [("reclaimed".to_owned(), reclaimed.to_string())].into(),
        );
        Ok(ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed as i64),
        })
    }

    /// `GET /system/df`, in the shape of API 1.45 (`LayersSize`, `Images`, `Containers`,
    /// `Volumes`, `BuildCache`); kinds not asked for are `null`.
    pub(crate) fn system_df(&self, types: &[String]) -> Result<DiskUsage, EngineError> {
        let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        let mut out = DiskUsage::default();
        if want("image") {
            let views = self
                .images
                .list()
                .map_err(|e| EngineError::internal(e.to_string()))?;
            // How many images each layer (snapshot) serves, and its size.
            let mut layers: HashMap<String, (u64, usize)> = HashMap::new();
            let image_layers: HashMap<String, Vec<(String, u64)>> = views
                .iter()
                .map(|v| {
                    let chains = berth_image::store::chain_ids(&v.config);
                    let list: Vec<(String, u64)> = chains
                        .iter()
                        .map(ToString::to_string)
                        .zip(v.layer_sizes.iter().copied())
                        .collect();
                    (v.id.to_string(), list)
                })
                .collect();
            for list in image_layers.values() {
                for (chain, size) in list {
                    layers.entry(chain.clone()).or_insert((*size, 0)).1 += 1;
                }
            }
            let mut users: HashMap<String, i64> = HashMap::new();
            for u in self.image_users() {
                *users.entry(u.image.to_string()).or_default() += 1;
            }
            let mut images = self.list_images(ListRequest::default())?;
            for i in &mut images {
                let shared: u64 = image_layers
                    .get(&i.id)
                    .into_iter()
                    .flatten()
                    .filter(|(c, _)| layers.get(c).is_some_and(|(_, n)| *n > 1))
                    .map(|(_, s)| s)
                    .sum();
                i.shared_size = shared as i64;
                i.containers = users.get(&i.id).copied().unwrap_or(0);
            }
            out.layers_size = layers.values().map(|(s, _)| *s as i64).sum();
            out.images = Some(images);
        }
        if want("container") {
            let containers = self.list(ListQuery {
                all: true,
                size: true,
                ..Default::default()
            })?;
            out.containers = Some(containers);
        }
        if want("volume") {
            out.volumes = Some(self.volumes_usage());
        }
        if want("build-cache") {
            out.build_cache = Some(self.build_cache_usage());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_filters_like_docker() {
        let f = |pairs: &[(&str, &str)]| {
            let mut m = Filters::new();
            for (k, v) in pairs {
                m.add(k, v);
            }
            PruneFilter::new(&m)
        };
        let labels: HashMap<String, String> = [("tier".to_owned(), "web".to_owned())].into();
        assert!(f(&[]).unwrap().matches(0, &labels));
        assert!(f(&[("label", "tier")]).unwrap().matches(0, &labels));
        assert!(f(&[("label", "tier=web")]).unwrap().matches(0, &labels));
        assert!(!f(&[("label", "tier=db")]).unwrap().matches(0, &labels));
        assert!(!f(&[("label!", "tier")]).unwrap().matches(0, &labels));
        assert!(f(&[("label!", "tier=db")]).unwrap().matches(0, &labels));
        // As Docker's: excluded only when every `label!` matches.
        let two = f(&[("label!", "tier"), ("label!", "other")]).unwrap();
        assert!(two.matches(0, &labels));
        let until = f(&[("until", "2023-11-14T22:13:20Z")]).unwrap();
        assert!(until.matches(1_699_999_999, &labels));
        assert!(!until.matches(1_700_000_000, &labels));
        assert!(f(&[("until", "10m")]).unwrap().matches(0, &labels));
        assert_eq!(
            f(&[("status", "exited")]).err().unwrap().to_string(),
            "invalid filter 'status'"
        );
        assert!(f(&[("until", "soon")]).is_err());
    }
}
