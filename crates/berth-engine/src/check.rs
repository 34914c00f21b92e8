//! `berth system check [--repair] [--deep]`: the whole root checked as `fsck` checks a file
//! system. The image store checks itself (`berth_image::check`); here the rest: every
//! container names an image whose data is there, the volumes it mounts and the networks it
//! joins exist; every network endpoint belongs to a container; every build cache entry's
//! layer is there; and (offline only, when nothing else writes) nothing is left of work a
//! crash interrupted: uploads, half-removed containers, build work dirs, mounts.
//!
//! Online (through the API while the daemon runs) the check only reads. Offline (the daemon
//! stopped, its root locked) it may repair; repairs never remove what a user made (a
//! container, a volume) and say what they did.

use std::path::{Path, PathBuf};

use berth_api::system::{CheckProblem, CheckReport};
use berth_core::Digest;

use crate::error::EngineError;
use crate::Engine;

/// Whether the daemon may be writing while the check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckMode {
    /// Through the API: only what cannot be mid-change is looked at; nothing is repaired.
    Online,
    /// The daemon is stopped and the root locked: everything, and repairs.
    Offline,
}

/// One inconsistency of a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Image(berth_image::check::Problem),
    /// A container's image data (config or a layer) is gone: it cannot start.
    ContainerImageGone {
        container: String,
        image: String,
    },
    /// A named volume a container mounts does not exist.
    VolumeMissing {
        container: String,
        volume: String,
    },
    /// A network a container joins does not exist.
    NetworkMissing {
        container: String,
        network: String,
    },
    /// An endpoint (or an address) on a network held for a container that does not exist.
    OrphanEndpoint {
        network: String,
        owner: String,
    },
    /// A build cache entry whose layer blob or snapshot is gone.
    BuildCacheEntry {
        key: String,
        path: PathBuf,
    },
    /// A file or directory left by work a crash interrupted.
    Leftover {
        path: PathBuf,
        what: &'static str,
    },
    /// Something mounted under the root that nothing running uses.
    StrayMount {
        path: PathBuf,
    },
}

impl Finding {
    /// The line `berth system check` prints: what, what is wrong, what `--repair` does.
    pub fn problem(&self) -> CheckProblem {
        let (subject, message, repair) = match self {
            Finding::Image(p) => ("image store".to_owned(), p.message(), p.repair_action()),
            Finding::ContainerImageGone { container, image } => (
                format!("container {}", short(container)),
                format!("the data of its image {image} is gone: it cannot start"),
                "none: remove the container (berth rm), or load its image again".to_owned(),
            ),
            Finding::VolumeMissing { container, volume } => (
                format!("container {}", short(container)),
                format!("volume {volume} it mounts does not exist"),
                format!("create volume {volume} again (empty), as its start would"),
            ),
            Finding::NetworkMissing { container, network } => (
                format!("container {}", short(container)),
                format!("network {network} it joins does not exist"),
                format!("disconnect it from {network}"),
            ),
            Finding::OrphanEndpoint { network, owner } => (
                format!("network {network}"),
                format!(
                    "holds an endpoint or address for {}, which does not exist",
                    short(owner)
                ),
                "release it".to_owned(),
            ),
            Finding::BuildCacheEntry { key, .. } => (
                "build cache".to_owned(),
                format!("entry {key}: its layer is gone"),
                "drop the entry (the step runs again next time)".to_owned(),
            ),
            Finding::Leftover { path, what } => (
                path.display().to_string(),
                format!("{what} left by an interrupted operation"),
                "remove it".to_owned(),
            ),
            Finding::StrayMount { path } => (
                path.display().to_string(),
                "mounted, but nothing running uses it".to_owned(),
                "unmount it".to_owned(),
            ),
        };
        CheckProblem {
            subject,
            message,
            repair,
            repairable: self.repairable(),
        }
    }

    fn repairable(&self) -> bool {
        match self {
            Finding::Image(p) => p.repairable(),
            Finding::ContainerImageGone { .. } => false,
            _ => true,
        }
    }
}

fn short(id: &str) -> &str {
    if id.len() == 64 {
        &id[..12]
    } else {
        id
    }
}

/// The pseudo networks a container may name without a network of that name existing.
const PSEUDO: [&str; 3] = ["host", "none", "default"];

impl Engine {
    /// Checks the root; `deep` also verifies every blob's digest.
    pub fn check(&self, deep: bool, mode: CheckMode) -> Result<Vec<Finding>, EngineError> {
        let offline = mode == CheckMode::Offline;
        let mut out: Vec<Finding> = self
            .images
            .check(deep, offline)
            .map_err(EngineError::from)?
            .into_iter()
            .map(Finding::Image)
            .collect();
        let records = self.records();
        let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
        for rec in &records {
            if let Some(why) = self.image_data_gone(&rec.image_id) {
                tracing::debug!(container = %rec.id, %why, "image data gone");
                out.push(Finding::ContainerImageGone {
                    container: rec.id.clone(),
                    image: rec.image_id.clone(),
                });
            }
            for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
                if !m.source.is_empty() && self.read_volume(&m.source).is_none() {
                    out.push(Finding::VolumeMissing {
                        container: rec.id.clone(),
                        volume: m.source.clone(),
                    });
                }
            }
            if let Some(net) = self.networking() {
                for a in &rec.net.networks {
                    if !PSEUDO.contains(&a.name.as_str()) && net.network(&a.name).is_err() {
                        out.push(Finding::NetworkMissing {
                            container: rec.id.clone(),
                            network: a.name.clone(),
                        });
                    }
                }
            }
        }
        if let Some(net) = self.networking() {
            for state in net.networks().map_err(crate::networks::net_err)? {
                let mut owners: Vec<&String> = state
                    .endpoints
                    .keys()
                    .chain(state.allocations.values())
                    .chain(state.allocations6.values())
                    .collect();
                owners.sort();
                owners.dedup();
                for owner in owners {
                    if !ids.contains(owner.as_str()) {
                        out.push(Finding::OrphanEndpoint {
                            network: state.config.name.clone(),
                            owner: owner.clone(),
                        });
                    }
                }
            }
        }
        for (entry, _, path) in self.build_cache().entries() {
            if self.cache_entry_broken(&entry) {
                out.push(Finding::BuildCacheEntry {
                    key: entry.key,
                    path,
                });
            }
        }
        if offline {
            out.extend(self.leftovers());
            out.extend(self.stray_mounts(&ids));
        }
        Ok(out)
    }

    /// Whether a build cache entry's layer blob or snapshot is gone.
    fn cache_entry_broken(&self, entry: &crate::build::cache::Entry) -> bool {
        let blob_gone = entry
            .layer
            .as_ref()
            .is_some_and(|l| !self.images.content.exists(&l.digest));
        let snapshot_gone = entry
            .chain
            .as_ref()
            .is_some_and(|c| !self.images.snapshots.exists(c));
        blob_gone || snapshot_gone
    }

    /// Why the data a container of `image` needs is not all there; None when it is. The
    /// image may be gone from the index (`rmi -f`): its config and snapshots stay for it.
    fn image_data_gone(&self, image: &str) -> Option<String> {
        let id: Digest = image.parse().ok()?;
        let config = match self.images.config(&id) {
            Ok(c) => c,
            Err(e) => return Some(e.to_string()),
        };
        berth_image::store::chain_ids(&config)
            .into_iter()
            .find(|c| !self.images.snapshots.exists(c))
            .map(|c| format!("layer {c} is gone"))
    }

    /// Files that work a crash interrupted leaves (offline only: a running daemon may be
    /// writing them).
    fn leftovers(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut each = |dir: PathBuf, keep: &dyn Fn(&str) -> bool, what: &'static str| {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    if keep(&e.file_name().to_string_lossy()) {
                        out.push(Finding::Leftover {
                            path: e.path(),
                            what,
                        });
                    }
                }
            }
        };
        each(
            self.upload_dir(),
            &|n| n.starts_with("upload-"),
            "an upload (load, import or build body)",
        );
        each(
            self.containers_dir(),
            &|n| n.starts_with(".removing-"),
            "a container removal",
        );
        each(
            self.root().join("build/work"),
            &|_| true,
            "a build step's work dir",
        );
        each(
            self.root().join("build/contexts"),
            &|_| true,
            "a build's unpacked context",
        );
        out
    }

    /// Mounts under the root that nothing uses: in the directory of a container that does
    /// not run (or does not exist), or of a build step (offline, no build runs).
    fn stray_mounts(&self, ids: &std::collections::HashSet<&str>) -> Vec<Finding> {
        let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
            return Vec::new();
        };
        let containers = format!("{}/", self.containers_dir().display());
        let work = format!("{}/", self.root().join("build/work").display());
        let mut out = Vec::new();
        for point in info.lines().filter_map(|l| l.split(' ').nth(4)) {
            let stray = if let Some(rest) = point.strip_prefix(&containers) {
                let id = rest.split('/').next().unwrap_or("");
                !ids.contains(id) || !self.observe(id).running()
            } else {
                point.starts_with(&work)
            };
            if stray {
                out.push(Finding::StrayMount {
                    path: PathBuf::from(point),
                });
            }
        }
        // Deepest first: a mount inside another goes before it.
        out.sort_by_key(|f| match f {
            Finding::StrayMount { path } => std::cmp::Reverse(path.components().count()),
            _ => std::cmp::Reverse(0),
        });
        out
    }

    /// Puts the findings right (offline only); returns what was done, one line each.
    pub fn repair(&self, findings: &[Finding]) -> Result<Vec<String>, EngineError> {
        let image_problems: Vec<_> = findings
            .iter()
            .filter_map(|f| match f {
                Finding::Image(p) => Some(p.clone()),
                _ => None,
            })
            .collect();
        let mut done = self
            .images
            .repair(&image_problems)
            .map_err(EngineError::from)?;
        for f in findings {
            match f {
                Finding::Image(_) | Finding::ContainerImageGone { .. } => {}
                Finding::VolumeMissing { volume, .. } => {
                    self.ensure_volume(Some(volume), Default::default(), Default::default())?;
                    done.push(format!("created volume {volume}"));
                }
                Finding::NetworkMissing { container, network } => {
                    self.containers.update(container, |rec| {
                        rec.net.networks.retain(|a| &a.name != network);
                        Ok(())
                    })?;
                    done.push(format!(
                        "disconnected container {} from {network}",
                        short(container)
                    ));
                }
                Finding::OrphanEndpoint { network, owner } => {
                    if let Some(net) = self.networking() {
                        net.forget_owner(network, owner)
                            .map_err(crate::networks::net_err)?;
                        done.push(format!("released {} on {network}", short(owner)));
                    }
                }
                Finding::BuildCacheEntry { key, path } => {
                    // The image repairs above may have brought its layer back.
                    let still = self
                        .build_cache()
                        .entries()
                        .into_iter()
                        .any(|(e, _, p)| &p == path && self.cache_entry_broken(&e));
                    if still {
                        remove(path)?;
                        done.push(format!("dropped build cache entry {key}"));
                    }
                }
                Finding::Leftover { path, .. } => {
                    remove(path)?;
                    done.push(format!("removed {}", path.display()));
                }
                Finding::StrayMount { path } => {
                    nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).map_err(|e| {
                        EngineError::internal(format!("unmount {}: {e}", path.display()))
                    })?;
                    done.push(format!("unmounted {}", path.display()));
                }
            }
        }
        Ok(done)
    }

    /// Checks, repairs, and checks again until nothing more can be done (a repair may show
    /// the next problem: a corrupt blob removed leaves an image to repair); returns what is
    /// left and what was done.
    pub fn check_and_repair(&self, deep: bool) -> Result<(Vec<Finding>, Vec<String>), EngineError> {
        let mut done = Vec::new();
        let mut findings = self.check(deep, CheckMode::Offline)?;
        for _ in 0..5 {
            if !findings.iter().any(|f| f.repairable()) {
                break;
            }
            done.extend(self.repair(&findings)?);
            let next = self.check(deep, CheckMode::Offline)?;
            if next == findings {
                break;
            }
            findings = next;
        }
        Ok((findings, done))
    }

    /// The check as the API reports it.
    pub fn check_report(&self, deep: bool, mode: CheckMode) -> Result<CheckReport, EngineError> {
        Ok(CheckReport {
            problems: self
                .check(deep, mode)?
                .iter()
                .map(Finding::problem)
                .collect(),
        })
    }
}

/// Removes a leftover file or directory tree.
fn remove(path: &Path) -> Result<(), EngineError> {
    berth_core::fs::remove_path(path).map_err(|e| EngineError::io("remove", e))
}
