//! The health record (`health.json`) the shim keeps for a container with a health check, and
//! the check's configuration as the engine hands it to the shim. Docker's `State.Health`:
//! status, failing streak, the last five results. With `kill_unhealthy` (berth's `--restart
//! on-unhealthy`) the shim kills a container that turns unhealthy and says so here.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where a container's health is recorded.
pub const HEALTH_FILE: &str = "health.json";

/// A container's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// Docker's form: `["CMD", args…]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub start_period_ms: u64,
    pub start_interval_ms: u64,
    pub retries: u32,
    /// Kill the container when it turns unhealthy (`--restart on-unhealthy`).
    #[serde(default)]
    pub kill_unhealthy: bool,
    /// The shell for `CMD-SHELL` (the image's SHELL, `/bin/sh -c` by default).
    #[serde(default)]
    pub shell: Vec<String>,
}

/// One result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

/// Docker's `State.Health`, plus whether the shim killed the container for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<HealthResult>,
    #[serde(default)]
    pub killed_unhealthy: bool,
}

pub fn read_health(state_dir: &Path) -> Option<Health> {
    serde_json::from_slice(&std::fs::read(state_dir.join(HEALTH_FILE)).ok()?).ok()
}

/// Replaces `health.json` in `state_dir` (a temporary file renamed over it, so a reader never
/// sees half a record).
pub fn write_health(state_dir: &Path, health: &Health) -> std::io::Result<()> {
    let tmp = state_dir.join(".health.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(health).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, state_dir.join(HEALTH_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_uses_dockers_field_names() {
        let dir = tempfile::tempdir().unwrap();
        let h = Health {
            status: "healthy".into(),
            failing_streak: 0,
            log: vec![HealthResult {
                start: "s".into(),
                end: "e".into(),
                exit_code: 0,
                output: "ok".into(),
            }],
            killed_unhealthy: false,
        };
        write_health(dir.path(), &h).unwrap();
        let raw: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(HEALTH_FILE)).unwrap()).unwrap();
        assert_eq!(raw["Status"], "healthy");
        assert_eq!(raw["FailingStreak"], 0);
        assert_eq!(raw["Log"][0]["ExitCode"], 0);
        assert_eq!(read_health(dir.path()), Some(h));
    }
}
