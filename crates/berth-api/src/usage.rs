//! What containers use and may use: `GET /containers/{id}/stats` (one sample, or one per
//! second), `POST /containers/{id}/update` (new limits), `POST /containers/prune` and
//! `GET /system/df`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{
    ContainerCpuStats, ContainerPruneResponse, ContainerStatsResponse, ContainerSummary,
    ContainerUpdateBody, ContainerUpdateResponse,
};

use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};
use berth_core::filters::Filters;

/// Go's zero time, which Docker sends for a sample that has no time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// What the usage endpoints need from the engine. Methods may block (they run on the
/// blocking pool).
pub trait UsageBackend {
    /// One sample of what container `id` uses now, without `preread`/`precpu_stats` (the
    /// API fills those from the sample before), and whether the container runs. A container
    /// that does not run gives an empty sample (its `id` and `name` only), as Docker's does.
    fn container_stats(&self, id: &str) -> BackendResult<(ContainerStatsResponse, bool)>;
    /// Docker's update request (resources and `RestartPolicy`); returns warnings.
    fn update_container(&self, id: &str, body: ContainerUpdateBody) -> BackendResult<Vec<String>>;
    /// Removes stopped containers matching `filters` (`until`, `label`, `label!`).
    fn prune_containers(&self, filters: Filters) -> BackendResult<ContainerPruneResponse>;
    /// Docker's `/system/df` answer for `types` (`container`, `image`, `volume`,
    /// `build-cache`; all when empty).
    fn disk_usage(&self, types: Vec<String>) -> BackendResult<DiskUsage>;
}

/// `GET /system/df` in the shape of API 1.45, which the docker CLI 28 reads (bollard's model
/// follows API 1.52's `ImageUsage`/`ContainerUsage`…). Kinds not asked for are `null`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiskUsage {
    #[serde(rename = "LayersSize")]
    pub layers_size: i64,
    #[serde(rename = "Images")]
    pub images: Option<Vec<bollard_stubs::models::ImageSummary>>,
    #[serde(rename = "Containers")]
    pub containers: Option<Vec<ContainerSummary>>,
    #[serde(rename = "Volumes")]
    pub volumes: Option<Vec<bollard_stubs::models::Volume>>,
    #[serde(rename = "BuildCache")]
    pub build_cache: Option<Vec<bollard_stubs::models::BuildCache>>,
}

async fn sample(b: &SharedBackend, id: &str) -> Result<(ContainerStatsResponse, bool), ApiError> {
    let (b, id) = (b.clone(), id.to_owned());
    blocking(move || b.container_stats(&id)).await
}

/// Zero CPU figures, as Docker sends for "no sample before this one".
pub fn zero_cpu() -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(bollard_stubs::models::ContainerCpuUsage {
            total_usage: Some(0),
            usage_in_kernelmode: Some(0),
            usage_in_usermode: Some(0),
            percpu_usage: None,
        }),
        throttling_data: Some(bollard_stubs::models::ContainerThrottlingData {
            periods: Some(0),
            throttled_periods: Some(0),
            throttled_time: Some(0),
        }),
        system_cpu_usage: None,
        online_cpus: None,
    }
}

/// `s` with the sample before it (`prev`, or nothing) as its `pre…` fields.
fn with_pre(mut s: ContainerStatsResponse, prev: Option<&ContainerStatsResponse>) -> String {
    match prev {
        Some(p) => {
            s.preread = p.read.clone();
            s.precpu_stats = p.cpu_stats.clone();
        }
        None => {
            s.preread = Some(ZERO_TIME.to_owned());
            s.precpu_stats = Some(zero_cpu());
        }
    }
    let mut line = serde_json::to_string(&s).unwrap_or_default();
    line.push('\n');
    line
}

/// `GET /containers/{id}/stats?stream=&one-shot=`: with `stream` (the default) a sample
/// every second until the client goes or the container is removed (a stopped container
/// gives empty samples, as in Docker); without it one sample, taken a second after a first
/// one so that CPU use can be computed, unless `one-shot` asks for it at once.
async fn stats(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let stream = q.flag("stream", true);
    let one_shot = q.flag("one-shot", false);
    if stream && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let (first, running) = sample(&b, &id).await?;
    let json = [(header::CONTENT_TYPE, "application/json")];
    if !stream {
        if one_shot || !running {
            return Ok((json, with_pre(first, None)).into_response());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (second, _) = sample(&b, &id).await?;
        return Ok((json, with_pre(second, Some(&first))).into_response());
    }
    let body = futures_util::stream::unfold(
        (Some(first), None::<ContainerStatsResponse>),
        move |(next, prev)| {
            let (b, id) = (b.clone(), id.clone());
            async move {
                let current = match next {
                    Some(s) => s,
                    None => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        // The container is gone (or the engine failed): the stream ends.
                        sample(&b, &id).await.ok()?.0
                    }
                };
                let line = with_pre(current.clone(), prev.as_ref());
                Some((
                    Ok::<_, std::convert::Infallible>(line),
                    (None, Some(current)),
                ))
            }
        },
    );
    Ok((json, Body::from_stream(body)).into_response())
}

async fn update(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ContainerUpdateResponse>, ApiError> {
    let mut v: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    // Go matches field names without regard to case; clients send `NanoCPUs` too.
    if let Some(obj) = v.as_object_mut() {
        if !obj.contains_key("NanoCpus") {
            if let Some(n) = obj.remove("NanoCPUs") {
                obj.insert("NanoCpus".into(), n);
            }
        }
    }
    if let Some(name) = v["RestartPolicy"]["Name"].as_str() {
        if !matches!(name, "" | "no" | "always" | "unless-stopped" | "on-failure") {
            return Err(ApiError::bad_request(format!(
                "invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            )));
        }
    }
    let body: ContainerUpdateBody = crate::body::decode_value(v, "UpdateConfig")?;
    let warnings = blocking(move || b.update_container(&id, body)).await?;
    Ok(Json(ContainerUpdateResponse {
        warnings: Some(warnings),
    }))
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ContainerPruneResponse>, ApiError> {
    let filters = Filters::from_query(&Query::parse(raw.as_deref()))?;
    Ok(Json(blocking(move || b.prune_containers(filters)).await?))
}

async fn df(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<DiskUsage>, ApiError> {
    let types = Query::parse(raw.as_deref()).all("type");
    for t in &types {
        if !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(ApiError::bad_request(format!("unknown object type: {t}")));
        }
    }
    Ok(Json(blocking(move || b.disk_usage(types)).await?))
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/update", post(update))
        .route("/containers/prune", post(prune))
        .route("/system/df", get(df))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sample_has_zero_pre_figures() {
        let s = ContainerStatsResponse {
            read: Some("2024-01-01T00:00:00.5Z".into()),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&with_pre(s.clone(), None)).unwrap();
        assert_eq!(v["preread"], ZERO_TIME);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        let v: serde_json::Value = serde_json::from_str(&with_pre(s.clone(), Some(&s))).unwrap();
        assert_eq!(v["preread"], "2024-01-01T00:00:00.5Z");
    }
}
