//! berth's engine: the objects behind the API (containers, images, volumes, networks) and the
//! state under the root directory. This first part answers for the system itself.

pub mod changes;
pub mod containers;
pub mod exec;
pub mod humanize;
pub mod images;
pub mod system;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_image::store::ImageStore;

/// The engine over one root directory (`/var/lib/berth` by default).
#[derive(Debug, Clone)]
pub struct Engine {
    root: PathBuf,
    pub images: Arc<ImageStore>,
    /// Containers with an attach client waiting for them to start.
    attaching: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// `docker exec` instances, in memory as in Docker.
    execs: Arc<exec::Execs>,
}

impl Engine {
    pub fn new(root: &Path) -> std::io::Result<Engine> {
        std::fs::create_dir_all(root)?;
        let images = ImageStore::open(root).map_err(std::io::Error::other)?;
        Ok(Engine {
            root: root.to_path_buf(),
            images: Arc::new(images),
            attaching: Default::default(),
            execs: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
