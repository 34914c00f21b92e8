//! The Docker Engine API: axum routes over narrow backend traits, served on unix sockets,
//! TCP and TLS over TCP at once ([`listen`]).
//!
//! Requests may carry a `/v1.NN` prefix (1.24 through [`API_VERSION`]) or none; versioned and
//! unversioned paths reach the same handlers. Errors are Docker's `{"message": "…"}` with
//! Docker's statuses, and every response carries Docker's `Api-Version`/`Ostype` headers.

pub mod activity;
pub mod archive;
pub mod body;
pub mod build;
pub mod containers;
pub mod detach;
pub mod distribution;
pub mod error;
pub mod events;
pub mod exec;
mod exec_tty;
pub mod images;
pub mod listen;
pub mod networks;
pub mod query;
pub mod swarm;
pub mod system;
pub mod usage;
pub mod version;
pub mod volumes;

use std::sync::Arc;

use axum::http::{HeaderValue, Uri};
use axum::response::Response;
use axum::Router;

pub use error::ApiError;

/// The API version berth speaks.
pub const API_VERSION: &str = "1.45";
/// The oldest API version a client may ask for.
pub const MIN_API_VERSION: &str = "1.24";
use version::{MAX_MINOR, MIN_MINOR};

/// Everything the API needs from the engine (one trait per resource, added as they come).
pub trait Backend:
    system::SystemBackend
    + images::ImageBackend
    + containers::ContainerBackend
    + exec::ExecBackend
    + events::EventBackend
    + distribution::DistributionBackend
    + volumes::VolumeBackend
    + networks::NetworkBackend
    + usage::UsageBackend
    + archive::ArchiveBackend
    + build::BuildBackend
    + Send
    + Sync
    + 'static
{
}
impl<T> Backend for T where
    T: system::SystemBackend
        + images::ImageBackend
        + containers::ContainerBackend
        + exec::ExecBackend
        + events::EventBackend
        + distribution::DistributionBackend
        + volumes::VolumeBackend
        + networks::NetworkBackend
        + usage::UsageBackend
        + archive::ArchiveBackend
        + build::BuildBackend
        + Send
        + Sync
        + 'static
{
}

pub type SharedBackend = Arc<dyn Backend>;

/// What a backend call returns: its value, or the engine's error with its kind (which only
/// this crate turns into a status).
pub type BackendResult<T> = Result<T, berth_core::error::BoxError>;

/// Runs a backend call on the blocking pool (backend methods may block on disk and processes).
pub(crate) async fn blocking<T: Send + 'static, E: Into<ApiError> + Send + 'static>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(Into::into)
}

/// Runs a short backend call (one that reads, in memory and a few small files) on this
/// worker thread: the worker's other tasks move to another thread meanwhile (tokio's
/// `block_in_place`), and the answer does not wait for a blocking-pool thread to wake and
/// hand it back (two thread wake-ups, ~0.2 ms on this VM when idle). On a single-threaded
/// runtime (tests) it simply runs.
pub(crate) fn inline<T, E: Into<ApiError>>(
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, ApiError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi = Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread;
    let r = if multi {
        tokio::task::block_in_place(f)
    } else {
        f()
    };
    r.map_err(Into::into)
}

/// A `/v1.NN/...` path with NN outside what we serve gets Docker's error; anything else
/// unknown is a 404.
async fn fallback(uri: Uri) -> ApiError {
    let path = uri.path();
    if let Some((n, _)) = version::split(path) {
        if n > MAX_MINOR {
            return ApiError::bad_request(format!(
                "client version 1.{n} is too new. Maximum supported API version is {API_VERSION}"
            ));
        }
        if n < MIN_MINOR {
            return ApiError::bad_request(format!(
                "client version 1.{n} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
            ));
        }
    }
    ApiError::not_found(format!("page not found: {path}"))
}

async fn docker_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    // The classic builder's API (POST /build with a tar): clients then do not try BuildKit's
    // session protocol, which berth does not speak.
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Docker/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// The API as one service: the request is counted ([`activity`]), the version prefix taken
/// off (see [`version`]), then the routes answer.
pub type Api =
    tower::util::MapRequest<Router, fn(axum::extract::Request) -> axum::extract::Request>;

/// The API's service for `backend`.
pub fn router(backend: SharedBackend) -> Api {
    let routes = system::routes()
        .merge(images::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(events::routes())
        .merge(distribution::routes())
        .merge(volumes::routes())
        .merge(networks::routes())
        .merge(usage::routes())
        .merge(archive::routes())
        .merge(build::routes())
        .merge(swarm::routes())
        .fallback(fallback)
        .layer(axum::middleware::map_response(docker_headers))
        .with_state(backend);
    tower::ServiceExt::map_request(routes, begin as fn(_) -> _)
}

/// Every request's first step.
fn begin(req: axum::extract::Request) -> axum::extract::Request {
    activity::note();
    version::strip(req)
}

/// Serves `api` on every socket of `bound` until `shutdown` resolves.
pub async fn serve(
    bound: Vec<listen::Bound>,
    api: Api,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // One clone of the service per connection, whichever socket it came in on: a reference
    // count, not the route table.
    axum::serve(
        listen::Listeners::new(bound),
        axum::ServiceExt::into_make_service(api),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
