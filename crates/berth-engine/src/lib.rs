//! berth's engine: the objects behind the API (containers, images, volumes, networks) and the
//! state under the root directory. This first part answers for the system itself.

pub mod system;

use std::path::{Path, PathBuf};

/// The engine over one root directory (`/var/lib/berth` by default).
#[derive(Debug, Clone)]
pub struct Engine {
    root: PathBuf,
}

impl Engine {
    pub fn new(root: &Path) -> std::io::Result<Engine> {
        std::fs::create_dir_all(root)?;
        Ok(Engine {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}
