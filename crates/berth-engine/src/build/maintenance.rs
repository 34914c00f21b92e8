//! The build cache's upkeep: its layers as roots for the image collector, the size bound
//! after every build, `builder prune`, its lines in `system df`, and the image an earlier
//! build with the same final key made.

use std::sync::Arc;

use berth_build::CacheKey;
use berth_core::Digest;

use super::cache::{self, BuildCache};
use crate::Engine;

impl Engine {
    pub(crate) fn build_cache(&self) -> BuildCache {
        BuildCache::open(self.build_dir().join("cache"))
    }

    /// Registers the build cache's layers as roots for image collections, and clears what
    /// builds cut short by a crash left.
    pub(crate) fn register_build_cache(&self) {
        let cache = self.build_cache();
        self.images.set_roots(Arc::new(move || cache.roots()));
        // RUN steps of builds interrupted by a crash: their containers (the runtime knows
        // them, no container record does) are killed and deleted.
        let records: std::collections::HashSet<String> =
            self.records().into_iter().map(|r| r.id.clone()).collect();
        if let Ok(rd) = std::fs::read_dir(self.runtime_root()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if id.len() == 64 && !records.contains(&id) {
                    let _ = self.runtime_op(&["delete", "--force", &id]);
                }
            }
        }
        // Their work dirs.
        let work = self.build_dir().join("work");
        if let Ok(rd) = std::fs::read_dir(&work) {
            for e in rd.flatten() {
                for mounted in ["run/netns", "run/userns", "merged"] {
                    let flags = nix::mount::MntFlags::MNT_DETACH;
                    let _ = nix::mount::umount2(&e.path().join(mounted), flags);
                }
                if std::fs::remove_dir_all(e.path()).is_ok() {
                    tracing::warn!(dir = %e.path().display(), "removed the work dir of a build step a crash interrupted");
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.build_dir().join("contexts")) {
            for e in rd.flatten() {
                if std::fs::remove_dir_all(e.path()).is_ok() {
                    tracing::warn!(dir = %e.path().display(), "removed the context of a build a crash interrupted");
                }
            }
        }
    }

    /// Drops cache entries `may_go` accepts beyond `keep` bytes (all with None), least
    /// recently used first, then the data no image and no entry needs. Returns the keys
    /// dropped and the bytes freed.
    pub(super) fn evict_build_cache(
        &self,
        keep: Option<u64>,
        may_go: impl Fn(&cache::Entry) -> bool,
    ) -> (Vec<String>, u64) {
        let (removed, _) = self.build_cache().evict(keep, may_go);
        if removed.is_empty() {
            return (removed, 0);
        }
        let freed = self.collect_image_garbage();
        (removed, freed)
    }

    /// Snapshots (chain IDs) images use.
    pub(super) fn image_chains(&self) -> std::collections::HashSet<Digest> {
        let mut chains = std::collections::HashSet::new();
        if let Ok(views) = self.images.list() {
            for v in views {
                chains.extend(berth_image::store::chain_ids(&v.config));
            }
        }
        chains
    }

    pub(super) fn result_file(&self, key: &CacheKey) -> std::path::PathBuf {
        let hex = key.as_str().trim_start_matches("sha256:");
        self.build_dir().join("results").join(hex)
    }

    /// The image an earlier build with the same final cache key made, if it is still there
    /// (its ID and manifest).
    pub(super) fn earlier_result(&self, key: &CacheKey) -> Option<(Digest, Digest)> {
        let text = std::fs::read_to_string(self.result_file(key)).ok()?;
        let id: Digest = text.trim().parse().ok()?;
        let index = self.images.index().ok()?;
        let manifest = index.images.get(&id)?.manifest.clone();
        Some((id, manifest))
    }

    pub(super) fn remember_result(&self, key: &CacheKey, id: &Digest) {
        let path = self.result_file(key);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, id.to_string());
    }

    /// The cache's entries as `system df` lists them (Docker's BuildCache records): a layer an
    /// image also uses is `Shared` (pruning the cache does not free it).
    pub(crate) fn build_cache_usage(&self) -> Vec<bollard_stubs::models::BuildCache> {
        let image_chains = self.image_chains();
        let time = |t: std::time::SystemTime| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        };
        self.build_cache()
            .entries()
            .into_iter()
            .map(|(e, used, _)| {
                let hex = e.key.trim_start_matches("sha256:");
                bollard_stubs::models::BuildCache {
                    id: Some(hex.get(..25).unwrap_or(hex).to_owned()),
                    parents: None,
                    typ: Some(bollard_stubs::models::BuildCacheTypeEnum::REGULAR),
                    description: Some(e.created_by.clone().unwrap_or_default()),
                    in_use: Some(false),
                    shared: Some(e.chain.as_ref().is_some_and(|c| image_chains.contains(c))),
                    size: Some(e.size as i64),
                    created_at: Some(time(used)),
                    last_used_at: Some(time(used)),
                    usage_count: Some(1),
                }
            })
            .collect()
    }

    /// `builder prune`: with `all`, every entry; with `keep` (`--keep-storage`), the least
    /// recently used until the rest fits; otherwise the dangling ones — entries whose layer
    /// no image uses (removing the others would lose cache and free nothing).
    pub(crate) fn prune_build(
        &self,
        all: bool,
        keep: Option<u64>,
    ) -> bollard_stubs::models::BuildPruneResponse {
        let used = self.image_chains();
        let (removed, freed) = self.evict_build_cache(keep, |e| {
            all || keep.is_some() || e.chain.as_ref().is_none_or(|c| !used.contains(c))
        });
        // Records of earlier results whose image is gone (all of them with everything).
        if let Ok(rd) = std::fs::read_dir(self.build_dir().join("results")) {
            let index = self.images.index().ok();
            for e in rd.flatten() {
                let alive = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse::<Digest>().ok())
                    .is_some_and(|id| index.as_ref().is_some_and(|i| i.images.contains_key(&id)));
                if (all && keep.is_none()) || !alive {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        bollard_stubs::models::BuildPruneResponse {
            caches_deleted: Some(removed),
            space_reclaimed: Some(freed as i64),
        }
    }
}
