//! The state JSON runc prints for `state` and `list --format json`.

use std::collections::HashMap;
use std::path::PathBuf;

use libcontainer::container::{Container, ContainerStatus};
use serde::{Deserialize, Serialize};

/// runc's view of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container's init; 0 once it has stopped (as runc reports it).
    pub pid: i32,
    /// `creating`, `created`, `running`, `paused` or `stopped`.
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

pub fn status_name(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

impl ContainerState {
    pub fn of(container: &Container, rootfs: PathBuf) -> Self {
        let status = container.status();
        let pid = match status {
            ContainerStatus::Stopped => 0,
            _ => container.pid().map_or(0, |p| p.as_raw()),
        };
        ContainerState {
            oci_version: "1.0.2".to_owned(),
            id: container.id().to_owned(),
            pid,
            status: status_name(status).to_owned(),
            bundle: container.bundle().clone(),
            rootfs,
            created: container
                .created()
                .map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                .unwrap_or_default(),
            owner: container
                .creator()
                .map(|c| c.to_string_lossy().into_owned())
                .unwrap_or_default(),
            annotations: container
                .state
                .annotations
                .clone()
                .filter(|a| !a.is_empty()),
        }
    }
}
