//! Names and labels Docker Compose v2 gives what it creates, so that either tool finds and
//! manages what the other made.

use crate::model::Service;

pub const PROJECT: &str = "com.docker.compose.project";
pub const SERVICE: &str = "com.docker.compose.service";
pub const VERSION: &str = "com.docker.compose.version";
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
pub const ONEOFF: &str = "com.docker.compose.oneoff";
pub const IMAGE: &str = "com.docker.compose.image";
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
pub const REPLACE: &str = "com.docker.compose.replace";
pub const SLUG: &str = "com.docker.compose.slug";
pub const NETWORK: &str = "com.docker.compose.network";
pub const VOLUME: &str = "com.docker.compose.volume";

/// The version written in `com.docker.compose.version`: the Compose release berth's
/// behaviour follows, so v2 sees a peer and not an older or newer tool.
pub const COMPOSE_VERSION: &str = "2.40.3";

/// `<project>-<service>-<n>`, or the service's `container_name`.
pub fn container_name(project: &str, service: &Service, number: u32) -> String {
    if service.container_name.is_empty() {
        format!("{project}-{}-{number}", service.name)
    } else {
        service.container_name.clone()
    }
}

/// The image a service runs: its `image`, or `<project>-<service>` for a build-only one.
pub fn image_name(project: &str, name: &str, service: &Service) -> String {
    if service.image.is_empty() {
        format!("{project}-{name}")
    } else {
        service.image.clone()
    }
}
