//! The image documents: OCI image manifest and descriptor, and the image config in Docker's
//! superset of the OCI form (Docker adds Healthcheck, Shell, OnBuild… to `config`). Field
//! names follow the specs so documents round-trip with Docker and registries.

use std::collections::BTreeMap;

use berth_core::Digest;
use serde::{Deserialize, Serialize};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// The full name of an image in an OCI layout, as containerd and Docker write it.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's name for an index entry: a tag, or (as some tools write) a whole reference.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Whether `media_type` names an image manifest (OCI or Docker v2).
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MEDIA_MANIFEST || media_type == DOCKER_MANIFEST
}

/// Whether `media_type` names an index of manifests (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Which platform a manifest in an index is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// An OCI image index (also a layout's `index.json`) or a Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What runs: Docker's `config` object of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// `null` reads as the default (Docker writes `"config": null` for some images).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Docker's top-level comment (`docker import -m`, `docker commit -m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history: Vec<History>,
    /// Docker's own fields, kept as read (pulled images have them) and written by commit.
    #[serde(flatten)]
    pub docker: DockerFields,
}

/// The fields Docker's image JSON has beyond OCI's: what a commit was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerFields {
    /// The image committed on (its ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The container committed (its ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// That container's config, in the Engine API's shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<serde_json::Value>,
    /// The engine that made the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
}

impl ImageConfig {
    /// The operating system, `linux` when the config does not say.
    pub fn os(&self) -> &str {
        if self.os.is_empty() {
            "linux"
        } else {
            &self.os
        }
    }
}

pub use berth_core::platform::{is_known_arch, is_known_os};

/// This host's platform in OCI's words (GOARCH names).
pub fn host_platform() -> (&'static str, &'static str, Option<&'static str>) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    let variant = if arch == "arm64" { Some("v8") } else { None };
    ("linux", arch, variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_uses_the_spec_field_names() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        let c = ImageConfig {
            created: None,
            author: None,
            comment: None,
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            config: RunConfig {
                cmd: Some(vec!["sh".into()]),
                working_dir: Some("/".into()),
                ..Default::default()
            },
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![d],
            },
            history: vec![History {
                created_by: Some("x".into()),
                empty_layer: true,
                ..Default::default()
            }],
            docker: Default::default(),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["config"]["Cmd"][0], "sh");
        assert_eq!(v["config"]["WorkingDir"], "/");
        assert_eq!(v["rootfs"]["type"], "layers");
        assert_eq!(v["history"][0]["empty_layer"], true);
        let back: ImageConfig = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn docker_configs_with_nulls_parse() {
        let text = r#"{"architecture":"amd64","config":null,"container_config":{"Cmd":null},
            "created":"2024-01-01T00:00:00Z","docker_version":"24.0.0","history":null,
            "os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c: ImageConfig = serde_json::from_str(text).unwrap();
        assert_eq!(c.config, RunConfig::default());
        assert!(c.history.is_empty());
        let bare: ImageConfig =
            serde_json::from_str(r#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        assert_eq!(bare.os(), "linux");
    }

    #[test]
    fn index_entries_keep_platform_and_annotations() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "size":7,"platform":{"architecture":"arm64","os":"linux","variant":"v8"},
            "annotations":{"org.opencontainers.image.ref.name":"latest"}}]}"#;
        let i: ImageIndex = serde_json::from_str(text).unwrap();
        assert_eq!(
            i.manifests[0].platform.as_ref().unwrap().variant.as_deref(),
            Some("v8")
        );
        assert_eq!(i.manifests[0].annotations[ANNOTATION_REF_NAME], "latest");
        assert!(is_manifest(&i.manifests[0].media_type));
        assert!(is_index(i.media_type.as_deref().unwrap()));
    }
}
