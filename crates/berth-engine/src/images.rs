//! The image endpoints, on berth-image's store: import, list, tag, remove, inspect, history,
//! save, load and prune. The engine adds what the store cannot know: which containers use
//! which images (removal conflicts, prune, and data kept for containers whose image was
//! removed by force).

mod filter;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::error::EngineError;
use berth_api::images::ImageInspectResponse;
use berth_api::images::{ExportWriter, ImageBackend, ImportRequest, ListRequest};
use berth_core::{Digest, Reference};
use berth_image::delete::{ImageUser, Removal};
use berth_image::oci::RunConfig;
use berth_image::store::ImageView;
use berth_image::ImageError;
use bollard_stubs::models::{
    ContainerConfig, DriverData, HealthConfig, ImageConfig as ApiImageConfig,
    ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImageInspectMetadata,
    ImageInspectRootFs, ImagePruneResponse, ImageSummary,
};

use crate::{changes, Engine};
use berth_api::BackendResult;
use filter::{created_nanos, ImageFilter, LIST_KEYS, PRUNE_KEYS};

/// Docker's zero time, for an image never tagged.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn created_unix(created: Option<&str>) -> i64 {
    created
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map_or(0, |t| t.timestamp())
}

fn api(e: ImageError) -> EngineError {
    EngineError::from_kind(&e)
}

/// An image operation that finished, for `docker events`: the one place they all pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageAction {
    Import,
    Tag,
    Untag,
    Delete,
    Load,
    Save,
    Prune,
    Pull,
    Push,
}

impl ImageAction {
    /// Docker's name for it (an event's `Action`).
    pub fn as_str(self) -> &'static str {
        match self {
            ImageAction::Import => "import",
            ImageAction::Tag => "tag",
            ImageAction::Untag => "untag",
            ImageAction::Delete => "delete",
            ImageAction::Load => "load",
            ImageAction::Save => "save",
            ImageAction::Pull => "pull",
            ImageAction::Push => "push",
            ImageAction::Prune => "prune",
        }
    }
}

impl Engine {
    /// Called once for every image operation that completed: `id` is the image ID (for
    /// prune, empty), `attributes` Docker's event attributes (`name`, `reclaimed`). Image
    /// events are not emitted yet; this is where they will be
    /// (`self.events.emit("image", action.as_str(), id, attributes)`).
    pub(crate) fn image_event(
        &self,
        action: ImageAction,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        self.image_done(action, id, attributes);
    }

    fn image_done(&self, action: ImageAction, id: &str, attributes: BTreeMap<String, String>) {
        // Docker names the actor of an untag by the image name when there is no ID at hand.
        let actor = if id.is_empty() {
            attributes.get("name").cloned().unwrap_or_default()
        } else {
            id.to_owned()
        };
        self.events
            .emit("image", action.as_str(), &actor, attributes);
    }

    fn removals_done(&self, records: &[Removal]) {
        for r in records {
            match r {
                Removal::Untagged(name) => self.image_done(
                    ImageAction::Untag,
                    "",
                    [("name".to_owned(), name.familiar())].into(),
                ),
                Removal::Deleted(id) => {
                    self.image_done(ImageAction::Delete, &id.to_string(), BTreeMap::new())
                }
            }
        }
    }

    /// Removes the data no image needs any more (containers' images count, also those
    /// removed by force); returns the bytes freed. A failure here leaves leftovers for the
    /// next collection, never an image without its data, so it is not the caller's error.
    fn collect_garbage(&self, users: &[ImageUser]) -> u64 {
        let keep: Vec<Digest> = users.iter().map(|u| u.image.clone()).collect();
        let freed = self.images.gc(&keep).map_or(0, |r| r.bytes);
        if let Some(remap) = self.remap() {
            // Layer copies made for the remapping go with their snapshots.
            remap.sweep_copies(&self.root().join("snapshots"));
        }
        freed
    }

    /// Removes the data no image, container or build cache entry needs; the bytes freed.
    pub(crate) fn collect_image_garbage(&self) -> u64 {
        self.collect_garbage(&self.image_users())
    }

    /// When the image `name` was created, for `before`/`since` filters.
    fn created_of(&self, name: &str) -> Result<i64, EngineError> {
        Ok(created_nanos(&self.images.view(name).map_err(api)?))
    }
}

fn delete_items(records: &[Removal]) -> Vec<ImageDeleteResponseItem> {
    records
        .iter()
        .map(|r| match r {
            Removal::Untagged(name) => ImageDeleteResponseItem {
                untagged: Some(name.familiar()),
                deleted: None,
            },
            Removal::Deleted(id) => ImageDeleteResponseItem {
                untagged: None,
                deleted: Some(id.to_string()),
            },
        })
        .collect()
}

/// The `Config` of inspect, in the API's form.
/// The `ContainerConfig` Docker shows for an image no commit made: every text empty, every
/// flag false.
fn empty_container_config() -> ContainerConfig {
    ContainerConfig {
        hostname: Some(String::new()),
        domainname: Some(String::new()),
        user: Some(String::new()),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        open_stdin: Some(false),
        stdin_once: Some(false),
        image: Some(String::new()),
        working_dir: Some(String::new()),
        ..Default::default()
    }
}

fn api_config(c: &RunConfig) -> ApiImageConfig {
    ApiImageConfig {
        user: Some(c.user.clone().unwrap_or_default()),
        exposed_ports: c
            .exposed_ports
            .as_ref()
            .map(|p| p.keys().cloned().collect()),
        env: c.env.clone(),
        cmd: c.cmd.clone(),
        healthcheck: c
            .healthcheck
            .clone()
            .and_then(|h| serde_json::from_value::<HealthConfig>(h).ok()),
        args_escaped: c.args_escaped,
        volumes: c.volumes.as_ref().map(|v| v.keys().cloned().collect()),
        working_dir: Some(c.working_dir.clone().unwrap_or_default()),
        entrypoint: c.entrypoint.clone(),
        on_build: c.on_build.clone(),
        labels: c.labels.clone().map(|l| l.into_iter().collect()),
        stop_signal: c.stop_signal.clone(),
        shell: c.shell.clone(),
    }
}

/// RepoTags: the names with a tag (a `name@digest` name is a RepoDigest, not a tag).
fn familiar(refs: &[Reference]) -> Vec<String> {
    refs.iter()
        .filter(|r| r.digest.is_none())
        .map(Reference::familiar)
        .collect()
}

/// RepoDigests for the names shown.
fn repo_digests(v: &ImageView, shown: &[Reference]) -> Vec<String> {
    let names: HashSet<String> = shown.iter().map(Reference::name).collect();
    v.repo_digests()
        .iter()
        .filter(|r| names.contains(&r.name()))
        .map(Reference::familiar)
        .collect()
}

/// A tag target from the `repo` and `tag` parameters, checked as Docker checks it.
fn tag_target(repo: &str, tag: &str) -> Result<Reference, EngineError> {
    if repo.is_empty() {
        return Err(EngineError::invalid(
            "repository name must have at least one component",
        ));
    }
    let text = if tag.is_empty() {
        repo.to_owned()
    } else {
        format!("{repo}:{tag}")
    };
    let r: Reference = text.parse().map_err(|e| EngineError::from_kind(&e))?;
    if r.digest.is_some() {
        return Err(EngineError::invalid(
            "refusing to create a tag with a digest reference",
        ));
    }
    let name = r.familiar_name();
    if name == "sha256" {
        return Err(EngineError::invalid(
            "refusing to create an ambiguous tag using digest algorithm as name",
        ));
    }
    let last = name.rsplit('/').next().unwrap_or(&name);
    if last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EngineError::invalid(format!(
            "invalid repository name ({last}), cannot specify 64-byte hexadecimal strings"
        )));
    }
    Ok(r)
}

impl Engine {
    pub fn upload_dir(&self) -> PathBuf {
        self.root().join("tmp")
    }

    /// `import URL`: the tarball fetched into `into` (in the upload directory), as Docker's
    /// daemon fetches it; failures are Docker's 500 with what went wrong.
    pub fn fetch_import(&self, url: &str, into: &Path) -> Result<(), EngineError> {
        if let Some(dir) = into.parent() {
            std::fs::create_dir_all(dir).map_err(|e| EngineError::io("the upload directory", e))?;
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| EngineError::internal("imports from a URL need the daemon's runtime"))?;
        handle
            .block_on(crate::build::download::http_fetch(url, into))
            .map(|_| ())
            .map_err(|e| EngineError::internal(format!("Get {url:?}: {e}")))
    }

    pub fn import_image(&self, tar: &Path, req: ImportRequest) -> Result<String, EngineError> {
        let reference = match &req.repo {
            Some(repo) => {
                let name = match &req.tag {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.clone(),
                };
                Some(
                    name.parse::<Reference>()
                        .map_err(|e| EngineError::from_kind(&e))?,
                )
            }
            None => None,
        };
        let mut config = RunConfig::default();
        changes::apply(&mut config, &req.changes).map_err(EngineError::invalid)?;
        let file = std::fs::File::open(tar).map_err(|e| EngineError::internal(e.to_string()))?;
        let imported = self
            .images
            .import(file, reference.as_ref(), config, req.message, &now())
            .map_err(api)?;
        self.image_done(
            ImageAction::Import,
            &imported.id.to_string(),
            BTreeMap::new(),
        );
        Ok(imported.id.to_string())
    }

    pub fn list_images(&self, req: ListRequest) -> Result<Vec<ImageSummary>, EngineError> {
        // `all` would add intermediate images: there are none until the builder exists.
        let filter = ImageFilter::new(
            &req.filters,
            LIST_KEYS,
            |n| self.created_of(n),
            berth_core::timestamp::now_nanos(),
        )?;
        let mut views = self.images.list().map_err(api)?;
        // Docker lists the newest first by the images' own creation time.
        views.sort_by_key(|v| std::cmp::Reverse(created_nanos(v)));
        Ok(views
            .iter()
            .filter(|v| filter.matches(v))
            .filter_map(|v| {
                let shown = filter.shown_names(v)?;
                Some(ImageSummary {
                    id: v.id.to_string(),
                    parent_id: v.config.docker.parent.clone().unwrap_or_default(),
                    repo_tags: familiar(&shown),
                    repo_digests: repo_digests(v, &shown),
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
                })
            })
            .collect())
    }

    pub fn tag_image(&self, name: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let target = tag_target(repo, tag)?;
        let id = self.images.lookup(name).map_err(api)?;
        self.images.tag(&id, &target, &now()).map_err(api)?;
        self.image_done(
            ImageAction::Tag,
            &id.to_string(),
            [("name".to_owned(), target.familiar())].into(),
        );
        Ok(())
    }

    pub fn remove_image(
        &self,
        name: &str,
        force: bool,
        _prune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>, EngineError> {
        // `prune` deletes untagged parents in Docker; berth's images have no parents.
        let users = self.image_users();
        let records = self.images.remove(name, force, &users).map_err(api)?;
        if records.iter().any(|r| matches!(r, Removal::Deleted(_))) {
            self.collect_garbage(&users);
        }
        self.removals_done(&records);
        Ok(delete_items(&records))
    }

    pub fn inspect_image(&self, name: &str) -> Result<ImageInspectResponse, EngineError> {
        let v = self.images.view(name).map_err(api)?;
        let c = &v.config;
        let comment = c
            .comment
            .clone()
            .or_else(|| c.history.last().and_then(|h| h.comment.clone()))
            .unwrap_or_default();
        // The layers as an overlay would stack them: the top one, then the rest.
        let mut dirs: Vec<String> = self
            .images
            .lower_dirs(c)
            .unwrap_or_default()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut data = HashMap::new();
        if !dirs.is_empty() {
            data.insert("UpperDir".to_owned(), dirs.remove(0));
        }
        if !dirs.is_empty() {
            data.insert("LowerDir".to_owned(), dirs.join(":"));
        }
        let image = ImageInspect {
            id: Some(v.id.to_string()),
            repo_tags: Some(familiar(&v.refs)),
            repo_digests: Some(repo_digests(&v, &v.refs)),
            comment: Some(comment),
            created: c.created.clone(),
            author: Some(c.author.clone().unwrap_or_default()),
            config: Some(api_config(&c.config)),
            architecture: Some(c.architecture.clone()),
            variant: c.variant.clone(),
            os: Some(c.os().to_owned()),
            size: Some(v.size as i64),
            graph_driver: Some(DriverData {
                name: "overlayfs".to_owned(),
                data,
            }),
            root_fs: Some(ImageInspectRootFs {
                typ: if c.rootfs.kind.is_empty() {
                    "layers".to_owned()
                } else {
                    c.rootfs.kind.clone()
                },
                layers: Some(c.rootfs.diff_ids.iter().map(|d| d.to_string()).collect()),
            }),
            metadata: Some(ImageInspectMetadata {
                last_tag_time: Some(
                    v.last_tag_time
                        .clone()
                        .unwrap_or_else(|| ZERO_TIME.to_owned()),
                ),
            }),
            ..Default::default()
        };
        let docker = &c.docker;
        Ok(ImageInspectResponse {
            image,
            parent: docker.parent.clone().unwrap_or_default(),
            docker_version: docker.docker_version.clone().unwrap_or_default(),
            container: Some(docker.container.clone().unwrap_or_default()),
            container_config: Some(
                docker
                    .container_config
                    .clone()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_else(empty_container_config),
            ),
            virtual_size: None,
        })
    }

    pub fn image_history(&self, name: &str) -> Result<Vec<ImageHistoryResponseItem>, EngineError> {
        let v = self.images.view(name).map_err(api)?;
        let mut layer = 0;
        let mut items = Vec::new();
        for h in &v.config.history {
            let size = if h.empty_layer {
                0
            } else {
                let Some(size) = v.layer_sizes.get(layer) else {
                    return Err(EngineError::internal(
                        "too many non-empty layers in History section",
                    ));
                };
                layer += 1;
                *size as i64
            };
            items.push(ImageHistoryResponseItem {
                id: "<missing>".to_owned(),
                created: created_unix(h.created.as_deref()),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        // Newest first; the newest entry is the image itself (Docker has no IDs for the
        // rest, which came from elsewhere).
        if let Some(top) = items.first_mut() {
            top.id = v.id.to_string();
            top.tags = familiar(&v.refs);
        }
        Ok(items)
    }

    pub fn prune_images(
        &self,
        filters: berth_core::filters::Filters,
    ) -> Result<ImagePruneResponse, EngineError> {
        let filter = ImageFilter::new(
            &filters,
            PRUNE_KEYS,
            |n| self.created_of(n),
            berth_core::timestamp::now_nanos(),
        )?;
        let dangling_only = filter.dangling.unwrap_or(true);
        let users = self.image_users();
        let used: HashSet<&Digest> = users.iter().map(|u| &u.image).collect();
        let ids: Vec<Digest> = self
            .images
            .list()
            .map_err(api)?
            .into_iter()
            .filter(|v| !used.contains(&v.id))
            .filter(|v| !dangling_only || v.refs.is_empty())
            .filter(|v| filter.matches(v))
            .map(|v| v.id)
            .collect();
        let records = self
            .images
            .remove_images(&ids, dangling_only)
            .map_err(api)?;
        // Also whatever earlier removals left behind.
        let reclaimed = self.collect_garbage(&users);
        self.removals_done(&records);
        self.image_done(
            ImageAction::Prune,
            "",
            [("reclaimed".to_owned(), reclaimed.to_string())].into(),
        );
        Ok(ImagePruneResponse {
            images_deleted: (!records.is_empty()).then(|| delete_items(&records)),
            space_reclaimed: Some(reclaimed as i64),
        })
    }

    pub fn export_images(&self, names: Vec<String>) -> Result<ExportWriter, EngineError> {
        let export = self.images.export(&names).map_err(api)?;
        let engine = self.clone();
        Ok(Box::new(move |out| {
            export.write_to(out).map_err(std::io::Error::other)?;
            for img in &export.images {
                engine.image_done(ImageAction::Save, &img.id.to_string(), BTreeMap::new());
            }
            Ok(())
        }))
    }

    pub fn load_images(&self, tar: &Path, _quiet: bool) -> Result<Vec<String>, EngineError> {
        // Progress bars (`quiet=false`) would need the archive streamed as it loads; berth
        // reports when it is done.
        let loaded = self.images.load(tar, &now()).map_err(api)?;
        let mut lines = Vec::new();
        for image in &loaded {
            for name in &image.names {
                if let Some((_, old)) = image.replaced.iter().find(|(n, _)| n == name) {
                    lines.push(format!(
                        "The image {} already exists, renaming the old one with ID {old} to empty string",
                        name.familiar()
                    ));
                }
                lines.push(format!("Loaded image: {}", name.familiar()));
            }
            if image.names.is_empty() {
                lines.push(format!("Loaded image ID: {}", image.id));
            }
            self.image_done(ImageAction::Load, &image.id.to_string(), BTreeMap::new());
        }
        Ok(lines)
    }
}

impl ImageBackend for Engine {
    fn upload_dir(&self) -> PathBuf {
        Engine::upload_dir(self)
    }
    fn import_image(&self, tar: &Path, req: ImportRequest) -> BackendResult<String> {
        Ok(Engine::import_image(self, tar, req)?)
    }
    fn fetch_import(&self, url: &str, into: &Path) -> BackendResult<()> {
        Ok(Engine::fetch_import(self, url, into)?)
    }
    fn list_images(&self, req: ListRequest) -> BackendResult<Vec<ImageSummary>> {
        Ok(Engine::list_images(self, req)?)
    }
    fn tag_image(&self, name: &str, repo: &str, tag: &str) -> BackendResult<()> {
        Ok(Engine::tag_image(self, name, repo, tag)?)
    }
    fn remove_image(
        &self,
        name: &str,
        force: bool,
        _prune: bool,
    ) -> BackendResult<Vec<ImageDeleteResponseItem>> {
        Ok(Engine::remove_image(self, name, force, _prune)?)
    }
    fn inspect_image(&self, name: &str) -> BackendResult<ImageInspectResponse> {
        Ok(Engine::inspect_image(self, name)?)
    }
    fn image_history(&self, name: &str) -> BackendResult<Vec<ImageHistoryResponseItem>> {
        Ok(Engine::image_history(self, name)?)
    }
    fn prune_images(
        &self,
        filters: berth_core::filters::Filters,
    ) -> BackendResult<ImagePruneResponse> {
        Ok(Engine::prune_images(self, filters)?)
    }
    fn export_images(&self, names: Vec<String>) -> BackendResult<ExportWriter> {
        Ok(Engine::export_images(self, names)?)
    }
    fn load_images(&self, tar: &Path, _quiet: bool) -> BackendResult<Vec<String>> {
        Ok(Engine::load_images(self, tar, _quiet)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_targets_like_docker() {
        assert_eq!(
            tag_target("bb2", "").unwrap().to_string(),
            "docker.io/library/bb2:latest"
        );
        assert_eq!(
            tag_target("docker.io/library/bb2", "v1")
                .unwrap()
                .familiar(),
            "bb2:v1"
        );
        assert!(tag_target("", "x").is_err());
        assert!(tag_target("Upper", "").is_err());
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            tag_target(&format!("bb@{d}"), "").unwrap_err().to_string(),
            "refusing to create a tag with a digest reference"
        );
        assert!(tag_target("sha256", "x").is_err());
        assert!(tag_target(&"a".repeat(64), "").is_err());
    }
}
