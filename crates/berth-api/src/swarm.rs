//! The swarm-mode and plugin endpoints, answered as a Docker that is not in a swarm and has no
//! plugins installed: clients (the docker CLI, SDKs, test harnesses that list plugins before
//! every test) get Docker's statuses and words instead of "page not found". berth runs no
//! swarm mode and installs no plugins, so joining or creating one is refused the same way.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};

use crate::{ApiError, SharedBackend};

/// Docker's answer to a cluster request on a node that is not a manager (moby's
/// `errNoManager` for a node outside any swarm), 503.
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// Docker's answer to `swarm leave` outside a swarm, 503.
const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

fn unavailable(message: &str) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

async fn not_a_manager() -> ApiError {
    unavailable(NOT_A_MANAGER)
}

async fn leave() -> ApiError {
    unavailable(NOT_IN_A_SWARM)
}

/// `swarm init` / `swarm join`: Docker would make this node part of a cluster; berth cannot.
async fn no_swarm_mode() -> ApiError {
    unavailable("berth does not run swarm mode: this node cannot create or join a swarm")
}

/// `GET /plugins`: none installed.
async fn list_plugins() -> Json<Vec<serde_json::Value>> {
    Json(Vec::new())
}

/// A plugin by name: Docker's not-found, with the tag it normalizes the name to.
async fn plugin_not_found(Path(rest): Path<String>) -> ApiError {
    // `{name}/json`, `{name}/enable`…, or the name alone (`DELETE /plugins/{name}`); a name
    // may hold slashes (`vieux/sshfs`).
    let name = match rest.rsplit_once('/') {
        Some((name, "json" | "enable" | "disable" | "push" | "set" | "upgrade")) => name,
        _ => rest.as_str(),
    };
    let name = if name.contains(':') || name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    };
    ApiError::not_found(format!("plugin \"{name}\" not found"))
}

/// Installing, creating or listing a plugin's privileges: berth has no plugin system.
async fn no_plugins() -> ApiError {
    ApiError::not_implemented("berth does not support Docker engine plugins")
}

pub fn routes() -> Router<SharedBackend> {
    let manager_only = [
        "/swarm",
        "/swarm/update",
        "/swarm/unlock",
        "/swarm/unlockkey",
        "/nodes",
        "/nodes/{*rest}",
        "/services",
        "/services/{*rest}",
        "/tasks",
        "/tasks/{*rest}",
        "/secrets",
        "/secrets/{*rest}",
        "/configs",
        "/configs/{*rest}",
    ];
    let mut router = Router::new()
        .route("/swarm/leave", any(leave))
        .route("/swarm/init", any(no_swarm_mode))
        .route("/swarm/join", any(no_swarm_mode))
        .route("/plugins", get(list_plugins))
        .route("/plugins/privileges", any(no_plugins))
        .route("/plugins/pull", any(no_plugins))
        .route("/plugins/create", any(no_plugins))
        .route("/plugins/{*rest}", any(plugin_not_found));
    for path in manager_only {
        router = router.route(path, any(not_a_manager));
    }
    router
}
