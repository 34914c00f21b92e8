//! `POST /build` (the classic builder's API: a tar of the context in the body, Docker's JSON
//! message stream back) and `POST /build/prune`.
//!
//! berth extension: `berthcontext=/abs/dir` instead of a body names a context directory on
//! the daemon's host, read in place (a client on the same host need not tar and upload a big
//! tree; whoever can reach the socket is root on the host anyway).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use tokio::sync::mpsc::UnboundedSender;

use crate::distribution::progress_response;
use crate::images::body_to_file;
use crate::query::Query;
use crate::{blocking, ApiError, BackendResult, SharedBackend};

/// Where the build context is.
#[derive(Debug, Clone)]
pub enum BuildContext {
    /// The request body, received into this file: a tar (maybe compressed) of the context,
    /// or a Dockerfile alone. The engine removes it.
    Upload(std::path::PathBuf),
    /// A directory on the daemon's host, read in place.
    Dir(std::path::PathBuf),
}

/// One build as the API asks for it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// `t`: names for the result.
    pub tags: Vec<String>,
    /// `dockerfile`: relative to the context (`Dockerfile` when empty); with a directory
    /// context, also an absolute path on the host.
    pub dockerfile: String,
    /// `buildargs`; a null value: `--build-arg NAME` without one.
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// `squash`: the target stage's new layers merged into one.
    pub squash: bool,
    pub pull: bool,
    pub quiet: bool,
    pub platform: Option<String>,
    /// `cachefrom`: images to trust as the cache. When given, a step is taken from the cache
    /// only if the result is where one of these images went (Docker's classic builder).
    pub cache_from: Vec<String>,
    /// `networkmode` for RUN: `default`, `host`, `none`.
    pub network: Option<String>,
    /// `extrahosts`: `--add-host` entries for RUN steps (`name:ip`, `host-gateway`).
    pub extra_hosts: Vec<String>,
    /// Limits of RUN steps' containers: `memory`, `memswap` (bytes), `cpushares`, and
    /// `cpuquota`/`cpuperiod` (microseconds).
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    /// berth extension `berthsecrets` (`{"id": "/abs/file"}`): files on the daemon's host
    /// that `RUN --mount=type=secret,id=…` may read. Only their names travel in the request.
    pub secrets: BTreeMap<String, std::path::PathBuf>,
}

/// What the build endpoints need from the engine.
pub trait BuildBackend {
    /// Builds; sends Docker's JSON messages to `out` as it goes.
    fn build_image(
        &self,
        req: BuildRequest,
        context: BuildContext,
        out: UnboundedSender<String>,
    ) -> BackendResult<()>;
    /// `builder prune`: removes cache entries (`all` of them, those beyond `keep_storage`
    /// bytes least recently used first, or else the dangling ones); Docker's
    /// BuildCachePruneResponse.
    fn prune_build_cache(
        &self,
        all: bool,
        keep_storage: Option<u64>,
    ) -> BackendResult<bollard_stubs::models::BuildPruneResponse>;
}

/// A JSON parameter; absent, empty or `null` (moby's Go client sends `null` for an unset
/// map) is the default.
fn json_map<T: serde::de::DeserializeOwned + Default>(q: &Query, key: &str) -> Result<T, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(T::default()),
        Some(v) => serde_json::from_str::<Option<T>>(v)
            .map(Option::unwrap_or_default)
            .map_err(|e| ApiError::bad_request(format!("invalid {key} parameter: {e}"))),
    }
}

/// A number parameter; absent, empty or 0 (what the docker CLI sends for "not set") is None.
fn number<T: std::str::FromStr + Default + PartialEq>(
    q: &Query,
    key: &str,
) -> Result<Option<T>, ApiError> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let n: T = v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid {key} parameter: {v:?}")))?;
            Ok(Some(n).filter(|n| *n != T::default()))
        }
    }
}

/// A build request from `POST /build`'s query string, checked as the route checks it (the
/// fuzz target's entry).
pub fn parse_request(raw_query: &str) -> Result<BuildRequest, ApiError> {
    request(&Query::parse(Some(raw_query)))
}

fn request(q: &Query) -> Result<BuildRequest, ApiError> {
    let nonempty = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
    if let Some(p) = nonempty("platform") {
        berth_core::platform::check(&p).map_err(ApiError::bad_request)?;
    }
    Ok(BuildRequest {
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        dockerfile: nonempty("dockerfile").unwrap_or_default(),
        build_args: json_map(q, "buildargs")?,
        labels: json_map(q, "labels")?,
        target: nonempty("target"),
        no_cache: q.flag("nocache", false),
        squash: q.flag("squash", false),
        pull: q
            .get("pull")
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "false"),
        quiet: q.flag("q", false),
        platform: nonempty("platform"),
        cache_from: json_map(q, "cachefrom")?,
        network: nonempty("networkmode"),
        secrets: json_map(q, "berthsecrets")?,
        memory: number(q, "memory")?,
        memory_swap: number(q, "memswap")?,
        cpu_shares: number(q, "cpushares")?,
        cpu_quota: number(q, "cpuquota")?,
        cpu_period: number(q, "cpuperiod")?,
        // The docker CLI sends them comma-separated in one parameter.
        extra_hosts: q
            .all("extrahosts")
            .iter()
            .flat_map(|v| v.split(','))
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

async fn build(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    // `version=2` asks for BuildKit, whose context and outputs travel over a session.
    if q.get("version") == Some("2") {
        return Err(ApiError::bad_request("buildkit not supported by daemon"));
    }
    let req = request(&q)?;
    if let Some(remote) = q.get("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::not_implemented(format!(
            "building from a remote context ({remote}) is not supported: send the context"
        )));
    }
    let context = match q.get("berthcontext").filter(|d| !d.is_empty()) {
        Some(dir) => {
            let dir = std::path::PathBuf::from(dir);
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(ApiError::bad_request(format!(
                    "context directory {} not found",
                    dir.display()
                )));
            }
            BuildContext::Dir(dir)
        }
        None => BuildContext::Upload(body_to_file(body, &b.upload_dir()).await?),
    };
    let upload = match &context {
        BuildContext::Upload(p) => Some(p.clone()),
        BuildContext::Dir(_) => None,
    };
    let response = progress_response(move |out| Ok(b.build_image(req, context, out)?)).await;
    if response.is_err() {
        if let Some(p) = upload {
            let _ = std::fs::remove_file(p);
        }
    }
    response
}

async fn prune(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<bollard_stubs::models::BuildPruneResponse>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let all = q.flag("all", false);
    let keep = match q.get("keep-storage").filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid keep-storage value: {v:?}")))?,
        ),
        None => None,
    };
    Ok(Json(
        blocking(move || b.prune_build_cache(all, keep)).await?,
    ))
}

/// `POST /session`: BuildKit's session, which berth (a classic builder) has no use for. A
/// request that is no upgrade gets Docker's answer; an upgrade is refused as a daemon without
/// BuildKit refuses its builds.
async fn session(headers: axum::http::HeaderMap) -> ApiError {
    if headers.get(axum::http::header::UPGRADE).is_none() {
        ApiError::bad_request("no upgrade proto in request")
    } else {
        ApiError::bad_request("buildkit not supported by daemon")
    }
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/session", post(session))
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_as_the_docker_cli_sends_them() {
        let q = Query::parse(Some(
            "t=a%3A1&t=b&dockerfile=sub%2FDockerfile&buildargs=%7B%22V%22%3A%222%22%2C%22E%22%3Anull%7D&nocache=1&q=1&target=build&labels=%7B%22k%22%3A%22v%22%7D",
        ));
        let r = request(&q).unwrap();
        assert_eq!(r.tags, ["a:1", "b"]);
        assert_eq!(r.dockerfile, "sub/Dockerfile");
        assert_eq!(r.build_args["V"].as_deref(), Some("2"));
        assert_eq!(r.build_args["E"], None);
        assert!(r.no_cache && r.quiet);
        assert_eq!(r.target.as_deref(), Some("build"));
        assert_eq!(r.labels["k"], "v");
        let bad = Query::parse(Some("buildargs=%7Bnope"));
        assert!(request(&bad).unwrap_err().message.contains("buildargs"));
    }

    #[test]
    fn null_maps_and_cache_sources_as_gos_client_sends_them() {
        let q = Query::parse(Some("buildargs=null&labels=null&cachefrom=null&t=x"));
        let r = request(&q).unwrap();
        assert!(r.build_args.is_empty() && r.labels.is_empty() && r.cache_from.is_empty());
        let q = Query::parse(Some("cachefrom=%5B%22build1%22%2C%22b%3A2%22%5D"));
        assert_eq!(request(&q).unwrap().cache_from, ["build1", "b:2"]);
        let bad = Query::parse(Some("platform=foo"));
        assert_eq!(
            request(&bad).unwrap_err().message,
            "\"foo\": unknown operating system or architecture: invalid argument"
        );
    }
}
