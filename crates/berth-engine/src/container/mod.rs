//! Containers as objects. A record and a state under `<root>/containers/<id>/`, a rootfs that
//! is an overlay of the image's snapshots, and a `berth-runtime shim` that supervises the
//! process. The engine never holds a container's process: the shim does, so containers
//! outlive the engine; the engine reads what the shim records (`exit.json`, the log).
//!
//! | file | what it owns |
//! |---|---|
//! | `record.rs` | the stored container (normalized create request + what create resolved) and its `State` |
//! | `store.rs` | every record in memory by ID/name/prefix; the name registrar; `update` |
//! | `create.rs` | request + image config → record (pure), and the create verb |
//! | `lifecycle.rs` | start, stop, kill, restart, pause, wait, attach, rename, remove, the restart supervisor |
//! | `runtime.rs` | the rootfs mount, the OCI bundle, `berth-runtime` calls, state refresh from the shim |
//! | `inspect.rs` | inspect, list (`ps`), top, logs |
//! | `links.rs` | legacy links (`--link`): resolved at create, env and hosts at start, `rm --link` |
//! | `filter.rs` | `ps --filter` |
//! | `backend.rs` | the API's `ContainerBackend` over the verbs above |
//! | `legacy.rs` | records of earlier berth versions, upgraded at start |
//! | `reaper.rs` | the slow half of a removal (files, the runtime's record), after the answer |
//! | `watch.rs` | a descriptor that wakes a `wait` when the state may have changed |

pub mod backend;
pub mod create;
pub mod filter;
pub mod inspect;
mod legacy;
pub mod lifecycle;
pub mod links;
pub(crate) mod reaper;
pub mod record;
pub mod runtime;
pub mod store;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

pub use record::{Record, RestartPolicy, State, Status};
pub use store::ContainerStore;

use crate::error::Result;
use crate::Engine;

impl Engine {
    /// Records a container event with Docker's attributes (image, name, labels, and `extra`).
    pub(crate) fn container_event(&self, rec: &Record, action: &str, extra: &[(&str, String)]) {
        let mut attrs = rec.labels();
        attrs.insert("image".into(), rec.image.clone());
        attrs.insert("name".into(), rec.name.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_owned(), v.clone());
        }
        self.events.emit("container", action, &rec.id, attrs);
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.containers.dir_of(id)
    }

    /// Finds a container by full ID, name (with or without the leading `/`), or ID prefix.
    /// A link name (`parent/alias`) stands for the linked container, as in Docker.
    pub(crate) fn find(&self, key: &str) -> Result<Arc<Record>> {
        self.containers
            .get(key)
            .or_else(|e| self.find_by_link(key).ok_or(e))
    }

    /// Every container's record.
    pub(crate) fn records(&self) -> Vec<Arc<Record>> {
        self.containers.all()
    }

    /// The full ID of a container and whether it runs unpaused (for exec).
    pub(crate) fn container_status(&self, key: &str) -> Result<(String, bool)> {
        let rec = self.find(key)?;
        let st = self.refresh(&rec.id);
        Ok((rec.id.clone(), st.active()))
    }

    /// Finishes removals a crash interrupted (`containers/.removing-<id>`, with the runtime's
    /// record of the container if it is still there); nothing was mounted in them when they
    /// were renamed.
    pub(crate) fn finish_removals(&self) {
        let Ok(entries) = std::fs::read_dir(self.containers_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(".removing-") {
                self.reaper.clear_later(self.remains(id, e.path()));
            }
        }
    }

    /// What is left to clear of container `id` once its directory was renamed to `dir`.
    pub(crate) fn remains(&self, id: &str, dir: PathBuf) -> reaper::Remains {
        let mut runtime_delete = self.runtime();
        runtime_delete.args(["delete", "--force", id]);
        reaper::Remains {
            shim: runtime::shim_pidfd(&dir, id),
            dir,
            runtime_state: self.runtime_root().join(id),
            runtime_delete,
        }
    }

    /// Waits (at most `limit`) for the removals still being cleared up; at shutdown.
    pub fn finish_background_work(&self, limit: std::time::Duration) -> bool {
        self.reaper.wait_idle(limit)
    }

    /// Every container's image and whether it runs (for image removal and prune).
    pub(crate) fn image_users(&self) -> Vec<berth_image::delete::ImageUser> {
        self.records()
            .into_iter()
            .filter_map(|r| {
                let st = self.refresh(&r.id);
                Some(berth_image::delete::ImageUser {
                    image: r.image_id.parse().ok()?,
                    running: st.running(),
                    container: r.id.clone(),
                })
            })
            .collect()
    }

    /// How many containers are running, paused and stopped (`docker info`).
    pub(crate) fn container_counts(&self) -> (usize, usize, usize) {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        for r in self.records() {
            let st = self.refresh(&r.id);
            match (st.running(), st.paused) {
                (true, true) => paused += 1,
                (true, false) => running += 1,
                _ => stopped += 1,
            }
        }
        (running, paused, stopped)
    }
}
