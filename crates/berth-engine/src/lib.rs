//! berth's engine: the objects behind the API (containers, images, volumes, networks) and the
//! state under the root directory. This first part answers for the system itself.

pub mod archive;
pub mod build;
pub(crate) mod cgroup_warm;
pub mod cgroups;
pub mod changes;
pub mod check;
pub(crate) mod confined;
pub mod container;
pub mod disk;
pub mod distribution;
pub mod error;
pub mod events;
pub mod exec;
pub mod health;
pub mod humanize;
pub mod images;
pub mod logs;
pub mod networks;
pub(crate) mod overlay;
pub(crate) mod repair;
pub mod root_lock;
pub mod rootless;

pub use berth_image::space::MinFree;
pub use overlay::StorageDriver;
pub mod stats;
pub mod system;
pub mod update;
pub mod userns;
pub mod volumes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::EngineError;
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
    /// What happened lately, for `docker events`.
    pub events: Arc<events::EventLog>,
    /// One lock per container, held while it is started or removed (by the API or the
    /// restart supervisor), so those never interleave.
    locks: Arc<Mutex<HashMap<String, Arc<Mutex<()>>>>>,
    /// Containers that may be running (started since the daemon started, or found at start):
    /// the supervisor looks at these for exits no request has looked at yet.
    live: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Every container's record, by ID and name.
    containers: Arc<container::ContainerStore>,
    /// Clears removed containers' files and runtime records after `rm` answered.
    reaper: Arc<container::reaper::Reaper>,
    /// The registry client (pull, push, login checks).
    registry: berth_registry::client::Client,
    /// Container networking; None when the engine was opened without it (unit tests).
    net: Option<Arc<berth_network::Networking>>,
    /// The build cache's size bound in bytes.
    build_cache_max: u64,
    /// Set when the daemon runs rootless.
    rootless: Option<rootless::RootlessOptions>,
    /// Set once the daemon stops its containers for good: restart policies start none again.
    shutting_down: Arc<std::sync::atomic::AtomicBool>,
    /// `--userns-remap`: the mapping containers run under.
    remap: Option<Arc<userns::Remap>>,
    /// The root's lock, held for the engine's life (see `root_lock`).
    _root_lock: Arc<root_lock::RootLock>,
}

/// How the daemon was asked to talk to registries.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `--insecure-registry`: plain HTTP besides loopback registries.
    pub insecure_registries: Vec<String>,
    /// `--max-concurrent-downloads` (3) and `--max-concurrent-uploads` (5).
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
    /// Networking (`--bridge`, `--bip`, `--nft-table`); None: containers get an empty network
    /// namespace and nothing is published.
    pub network: Option<networks::NetworkOptions>,
    /// The build cache's size bound in bytes (`--builder-cache-max`).
    pub build_cache_max: u64,
    /// What image unpacks must leave free on the root's filesystem (`--min-free-space`).
    pub min_free_space: berth_image::space::MinFree,
    /// Set when the daemon runs rootless (an unprivileged user's `berth daemon`).
    pub rootless: Option<rootless::RootlessOptions>,
    /// `--storage-driver`: how overlays are mounted.
    pub storage_driver: StorageDriver,
    /// `--userns-remap`: run containers in user namespaces with this user's subordinate IDs.
    pub userns_remap: Option<userns::RemapSpec>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            insecure_registries: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
            network: None,
            build_cache_max: build::DEFAULT_CACHE_MAX,
            min_free_space: Default::default(),
            rootless: None,
            storage_driver: StorageDriver::default(),
            userns_remap: None,
        }
    }
}

impl Engine {
    pub fn new(root: &Path) -> std::io::Result<Engine> {
        Engine::with_options(root, EngineOptions::default())
    }

    pub fn with_options(root: &Path, options: EngineOptions) -> std::io::Result<Engine> {
        let lock = root_lock::RootLock::acquire(root)?;
        overlay::choose_driver(options.storage_driver, &root.join("tmp"))?;
        let remap = match &options.userns_remap {
            Some(spec) => userns::open(spec, root)?.map(Arc::new),
            None => None,
        };
        let net = match &options.network {
            Some(opts) => Some(Arc::new(
                networks::init(root, opts).map_err(std::io::Error::other)?,
            )),
            None => None,
        };
        let engine = Engine::assemble(root, &options, lock, net, remap)?;
        if engine.rootless.is_some() {
            engine.end_containers_of_earlier_daemons();
        }
        engine.finish_removals();
        engine.repair_after_crash();
        engine.register_build_cache();
        engine.restore_networks().map_err(std::io::Error::other)?;
        Ok(engine)
    }

    /// The engine over a root no daemon serves, for `berth system check`: the root locked,
    /// the stores opened, and nothing else done (no repair, no network set up, no bridge).
    pub fn open_offline(root: &Path) -> std::io::Result<Engine> {
        if !root.join("images.json").exists() && !root.join("containers").is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "{} is not a berth root (no images.json, no containers)",
                    root.display()
                ),
            ));
        }
        let lock = root_lock::RootLock::acquire(root)?;
        let net = if root.join("networks").is_dir() {
            Some(Arc::new(
                berth_network::Networking::new(berth_network::Options::new(root.join("networks")))
                    .map_err(std::io::Error::other)?,
            ))
        } else {
            None
        };
        let engine = Engine::assemble(root, &EngineOptions::default(), lock, net, None)?;
        let cache = engine.build_cache();
        engine.images.set_roots(Arc::new(move || cache.roots()));
        Ok(engine)
    }

    /// The engine's parts over `root`, opened.
    fn assemble(
        root: &Path,
        options: &EngineOptions,
        lock: root_lock::RootLock,
        net: Option<Arc<berth_network::Networking>>,
        remap: Option<Arc<userns::Remap>>,
    ) -> std::io::Result<Engine> {
        let registry = berth_registry::client::Client::new(berth_registry::client::ClientOptions {
            insecure_registries: options.insecure_registries.clone(),
            max_concurrent_downloads: options.max_concurrent_downloads.max(1),
            max_concurrent_uploads: options.max_concurrent_uploads.max(1),
            metadata_dir: Some(root.join("distribution")),
            ..Default::default()
        })
        .map_err(std::io::Error::other)?;
        let mut images = ImageStore::open(root).map_err(std::io::Error::other)?;
        images.snapshots.set_min_free(options.min_free_space);
        let containers = container::ContainerStore::open(&root.join("containers"))?;
        Ok(Engine {
            root: root.to_path_buf(),
            containers: Arc::new(containers),
            images: Arc::new(images),
            attaching: Default::default(),
            execs: Default::default(),
            events: Default::default(),
            locks: Default::default(),
            live: Default::default(),
            reaper: Default::default(),
            registry,
            net,
            build_cache_max: options.build_cache_max,
            rootless: options.rootless,
            shutting_down: Default::default(),
            remap,
            _root_lock: Arc::new(lock),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How the daemon runs rootless, if it does.
    pub fn rootless(&self) -> Option<rootless::RootlessOptions> {
        self.rootless
    }

    /// The lock of container `id`.
    pub(crate) fn container_lock(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_owned()).or_default().clone()
    }

    /// Drops the lock of a removed container.
    pub(crate) fn forget_lock(&self, id: &str) {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// Writes `value` as a metadata file (indented JSON, whole or not at all: `write_atomic`),
/// failing with the error the API reports.
pub(crate) fn save_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), crate::error::EngineError> {
    berth_core::fs::write_json_atomic(path, value)
        .map_err(|e| EngineError::internal(format!("write {}: {e}", path.display())))
}

impl berth_api::events::EventBackend for Engine {
    fn events_after(&self, seq: u64) -> (Vec<berth_api::events::Event>, u64) {
        self.events.after(seq)
    }
}
