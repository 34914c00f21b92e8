//! Health checks from the engine's side: the check a container gets (its create request's
//! `Healthcheck`, else its image's), and how its health shows (`ps`, `inspect`). The checks
//! themselves run in the container's shim (berth_oci::shim::health).

use berth_oci::shim::health::{read_health, Health, HealthConfig};

use crate::container::record::Record;
use crate::error::{EngineError, Result};
use crate::Engine;
use bollard_stubs::models::HealthConfig as ApiHealth;

/// Docker's defaults.
const INTERVAL_MS: u64 = 30_000;
const TIMEOUT_MS: u64 = 30_000;
const START_INTERVAL_MS: u64 = 5_000;
const RETRIES: u32 = 3;

fn ms(v: Option<i64>, default: u64) -> Result<u64> {
    match v {
        None | Some(0) => Ok(default),
        Some(n) if n < 0 => Err(EngineError::invalid(
            "Interval in Healthcheck cannot be negative",
        )),
        // Docker's API gives nanoseconds, and refuses anything under a millisecond.
        Some(n) if n < 1_000_000 => Err(EngineError::invalid(
            "Interval in Healthcheck cannot be less than 1ms",
        )),
        Some(n) => Ok(n as u64 / 1_000_000),
    }
}

/// The check for a new container: the request's Healthcheck field by field over the image's
/// (`image`, as its config holds it); `["NONE"]` (`--no-healthcheck`) turns it off.
pub(crate) fn config_for(
    user: Option<&ApiHealth>,
    image: Option<&serde_json::Value>,
    shell: Vec<String>,
    kill_unhealthy: bool,
) -> Result<Option<HealthConfig>> {
    let image: ApiHealth = image
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let user = user.cloned().unwrap_or_default();
    let pick = |mine: Option<i64>, theirs: Option<i64>| mine.filter(|n| *n != 0).or(theirs);
    let test = user
        .test
        .filter(|t| !t.is_empty())
        .or(image.test)
        .unwrap_or_default();
    match test.first().map(String::as_str) {
        None | Some("NONE") => return Ok(None),
        Some("CMD") | Some("CMD-SHELL") => {}
        Some(other) => {
            return Err(EngineError::invalid(format!(
                "unknown type of health check: {other:?}"
            )))
        }
    }
    if test.len() < 2 {
        return Err(EngineError::invalid("health check command is empty"));
    }
    let retries = match pick(user.retries, image.retries) {
        None | Some(0) => RETRIES,
        Some(n) if n < 0 => {
            return Err(EngineError::invalid(
                "Retries in Healthcheck cannot be negative",
            ))
        }
        Some(n) => n as u32,
    };
    Ok(Some(HealthConfig {
        test,
        interval_ms: ms(pick(user.interval, image.interval), INTERVAL_MS)?,
        timeout_ms: ms(pick(user.timeout, image.timeout), TIMEOUT_MS)?,
        start_period_ms: ms(pick(user.start_period, image.start_period), 0)?,
        start_interval_ms: ms(
            pick(user.start_interval, image.start_interval),
            START_INTERVAL_MS,
        )?,
        retries,
        kill_unhealthy,
        shell,
    }))
}

impl Engine {
    /// The health a running container's shim recorded, if it has a check.
    /// A container with a health check is `starting` from its start until the shim's first
    /// record, as Docker shows it (clients that wait for health, Compose's `--wait` among
    /// them, take a missing Health for "no health check" and stop waiting).
    pub(crate) fn health_of(&self, rec: &Record) -> Option<Health> {
        rec.healthcheck.as_ref()?;
        Some(
            read_health(&self.container_dir(&rec.id)).unwrap_or_else(|| Health {
                status: "starting".into(),
                failing_streak: 0,
                log: Vec::new(),
                killed_unhealthy: false,
            }),
        )
    }
}

/// What `ps` adds to "Up 5 seconds": ` (healthy)`, ` (unhealthy)`, ` (health: starting)`.
pub(crate) fn status_suffix(h: Option<&Health>) -> String {
    match h.map(|h| h.status.as_str()) {
        Some("starting") => " (health: starting)".into(),
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}

/// Docker's State.Health.
pub(crate) fn to_api(h: &Health) -> bollard_stubs::models::Health {
    use bollard_stubs::models::{HealthStatusEnum, HealthcheckResult};
    bollard_stubs::models::Health {
        status: Some(match h.status.as_str() {
            "healthy" => HealthStatusEnum::HEALTHY,
            "unhealthy" => HealthStatusEnum::UNHEALTHY,
            _ => HealthStatusEnum::STARTING,
        }),
        failing_streak: Some(i64::from(h.failing_streak)),
        log: Some(
            h.log
                .iter()
                .map(|r| HealthcheckResult {
                    start: Some(r.start.clone()),
                    end: Some(r.end.clone()),
                    exit_code: Some(r.exit_code),
                    output: Some(r.output.clone()),
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(v: serde_json::Value) -> ApiHealth {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_request_overrides_the_image_field_by_field() {
        let image =
            json!({"Test": ["CMD-SHELL", "check"], "Interval": 5_000_000_000i64, "Retries": 2});
        let mine = user(json!({"Interval": 1_000_000_000i64}));
        let c = config_for(Some(&mine), Some(&image), vec![], false)
            .unwrap()
            .unwrap();
        assert_eq!((c.interval_ms, c.retries, c.timeout_ms), (1000, 2, 30_000));
        assert_eq!(c.test, ["CMD-SHELL", "check"]);
        let none = user(json!({"Test": ["NONE"]}));
        assert!(config_for(Some(&none), Some(&image), vec![], false)
            .unwrap()
            .is_none());
        assert!(config_for(None, None, vec![], false).unwrap().is_none());
        let bad = user(json!({"Test": ["RUN", "x"]}));
        assert!(config_for(Some(&bad), None, vec![], false).is_err());
        let tiny = user(json!({"Test": ["CMD", "x"], "Interval": 10}));
        assert!(config_for(Some(&tiny), None, vec![], false).is_err());
    }
}
