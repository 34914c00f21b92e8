//! `/containers/...`: create, start, wait, stop, kill, logs, list, inspect, remove.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bollard_stubs::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerSummary,
    ContainerTopResponse, ContainerWaitResponse,
};

use crate::query::Query;
use crate::version::ApiVersion;
use crate::{blocking, ApiError, BackendResult, SharedBackend};

/// One piece of a container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// A container's status for `wait`.
#[derive(Debug, Clone, Default)]
pub struct WaitState {
    pub running: bool,
    /// Created but never started.
    pub created: bool,
    pub exit_code: i64,
    /// RFC 3339 (fixed-width nanoseconds, UTC) of the last exit, empty if none.
    pub finished_at: String,
    /// The container is gone.
    pub removed: bool,
}

/// A container's recorded output: whether it had a tty (then its output is one raw stream),
/// the pieces in order, where the next read goes on, and whether more may come.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    pub tty: bool,
    pub records: Vec<(LogStream, Vec<u8>)>,
    pub cursor: LogCursor,
    /// The container runs (for `follow`: keep reading).
    pub running: bool,
}

/// Where a log read stopped: the log file (by inode) and the offset in it, and that file
/// held open, so that what a container wrote just before it was removed is still read (a
/// client following its logs while it exits and is removed, as docker-py's
/// `containers.run(remove=True)` does, would otherwise lose its last output).
#[derive(Debug, Clone, Default)]
pub struct LogCursor {
    pub inode: u64,
    pub offset: u64,
    pub file: Option<std::sync::Arc<std::fs::File>>,
}

/// What `logs` asks for. Times are nanoseconds since the epoch.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub stdout: bool,
    pub stderr: bool,
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// What `GET /containers/json` asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub all: bool,
    /// Only the N most recently created (of any state).
    pub limit: Option<usize>,
    /// Report SizeRw and SizeRootFs.
    pub size: bool,
    pub filters: berth_core::filters::Filters,
}

/// A `POST /containers/create`, decoded and checked at the edge.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// `?name=`, without a leading `/`; None for a generated name.
    pub name: Option<String>,
    /// Docker's Config with HostConfig and NetworkingConfig. `HostConfig.RestartPolicy` is
    /// not in it but in `restart` (berth's own `on-unhealthy` has no place in Docker's
    /// model).
    pub body: ContainerCreateBody,
    pub restart: RestartRequest,
    /// The deprecated top-level `MacAddress` older clients send (newer ones put it in the
    /// endpoint's settings).
    pub mac_address: Option<String>,
}

/// A restart policy as sent: Docker's name (or berth's `on-unhealthy`) and retry count.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct RestartRequest {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "MaximumRetryCount", default)]
    pub maximum_retry_count: i64,
}

impl CreateRequest {
    /// Decodes a create request's body as dockerd reads it: `Cmd`, `Entrypoint` and `Shell`
    /// may be a string or a list; a wrong type or an out-of-range value is Docker's 400.
    pub fn decode(name: Option<String>, body: &[u8]) -> Result<CreateRequest, ApiError> {
        let mut v: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
        };
        if !v.is_object() {
            return Err(ApiError::bad_request(
                "json: cannot unmarshal into Go value of type container.CreateRequest",
            ));
        }
        for key in ["Cmd", "Entrypoint", "Shell"] {
            if let Some(s) = v[key].as_str().map(str::to_owned) {
                v[key] = serde_json::json!([s]);
            }
        }
        let mac_address = v["MacAddress"]
            .as_str()
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        let mut restart = RestartRequest::default();
        if let Some(hc) = v.get_mut("HostConfig").and_then(|h| h.as_object_mut()) {
            if let Some(rp) = hc.remove("RestartPolicy").filter(|r| !r.is_null()) {
                restart = crate::body::decode_value(
                    serde_json::json!({ "HostConfig": { "RestartPolicy": rp } }),
                    "ContainerCreateRequest",
                )
                .map(|w: RestartWrapper| w.host_config.restart_policy)?;
            }
            check_enum(hc, "CgroupnsMode", &["", "private", "host"], |m| {
                format!("invalid cgroup namespace mode: {m}")
            })?;
            check_enum(hc, "Isolation", &["", "default"], |m| {
                format!("Invalid isolation: \"{m}\" - linux only supports 'default'")
            })?;
        }
        let body: ContainerCreateBody = crate::body::decode_value(v, "ContainerCreateRequest")?;
        if let Some(hc) = &body.host_config {
            if hc.shm_size.is_some_and(|s| s < 0) {
                return Err(ApiError::bad_request("SHM size can not be less than 0"));
            }
            if hc.memory.is_some_and(|m| m < 0) || hc.memory_swap.is_some_and(|m| m < -1) {
                return Err(ApiError::bad_request(
                    "invalid memory limit: must not be negative",
                ));
            }
            if hc.cpu_shares.is_some_and(|s| s < 0) {
                return Err(ApiError::bad_request(
                    "invalid CPU shares: must not be negative",
                ));
            }
            if hc.nano_cpus.is_some_and(|n| n < 0) {
                return Err(ApiError::bad_request(
                    "Range of CPUs is from 0.01 to the number of CPUs available",
                ));
            }
        }
        Ok(CreateRequest {
            name: name.map(|n| n.strip_prefix('/').map(str::to_owned).unwrap_or(n)),
            body,
            restart,
            mac_address,
        })
    }
}

#[derive(serde::Deserialize)]
struct RestartWrapper {
    #[serde(rename = "HostConfig")]
    host_config: RestartHolder,
}

#[derive(serde::Deserialize)]
struct RestartHolder {
    #[serde(rename = "RestartPolicy")]
    restart_policy: RestartRequest,
}

/// A string field of Docker's that only takes some values: Docker's error for others (the
/// typed model would refuse them with serde's words instead).
fn check_enum(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    allowed: &[&str],
    message: impl Fn(&str) -> String,
) -> Result<(), ApiError> {
    match obj.get(key).and_then(|v| v.as_str()) {
        Some(v) if !allowed.contains(&v) => Err(ApiError::bad_request(message(v))),
        _ => Ok(()),
    }
}

/// What the container endpoints need from the engine. Methods may block (they run on the
/// blocking pool).
pub trait ContainerBackend {
    fn create_container(&self, req: CreateRequest) -> BackendResult<ContainerCreateResponse>;
    /// Ok(false) when it was already running.
    fn start_container(&self, id: &str) -> BackendResult<bool>;
    /// Where the container is in its life, for `wait`.
    fn wait_state(&self, id: &str) -> BackendResult<WaitState>;
    /// A non-blocking descriptor that becomes readable when the container's state may have
    /// changed (read it empty, then look again); None: `wait` polls.
    fn watch_state(&self, _id: &str) -> BackendResult<Option<std::os::fd::OwnedFd>> {
        Ok(None)
    }
    /// Resolves `id` for an attach and, if the container does not run yet, notes that a client
    /// waits, so that `start` holds the process until the client is connected. Returns the
    /// full id and the shim's attach socket.
    fn begin_attach(&self, id: &str) -> BackendResult<(String, std::path::PathBuf)>;
    /// The attach client is connected (or gave up).
    fn end_attach(&self, id: &str);
    /// Ok(false) when it was not running.
    fn stop_container(&self, id: &str, timeout: Option<i64>) -> BackendResult<bool>;
    fn kill_container(&self, id: &str, signal: &str) -> BackendResult<()>;
    /// Stops (as `stop` does) and starts again.
    fn restart_container(&self, id: &str, timeout: Option<i64>) -> BackendResult<()>;
    fn rename_container(&self, id: &str, new_name: &str) -> BackendResult<()>;
    /// `ps` output (Docker's ContainerTopResponse: Titles and Processes).
    fn top_container(&self, id: &str, ps_args: &str) -> BackendResult<ContainerTopResponse>;
    /// Sets the window size of a tty container's terminal.
    fn resize_container(&self, id: &str, rows: u16, cols: u16) -> BackendResult<()>;
    /// Freezes (`pause`) or thaws every process of the container.
    fn pause_container(&self, id: &str, pause: bool) -> BackendResult<()>;
    /// `volumes`: also its anonymous volumes (`rm -v`).
    fn remove_container(&self, id: &str, force: bool, volumes: bool) -> BackendResult<()>;
    /// `rm --link`: `name` is a link's name (`parent/alias`); the parent loses the link.
    fn remove_link(&self, name: &str) -> BackendResult<()>;
    /// The log from `cursor` on (all of it when `None`).
    fn container_logs(
        &self,
        id: &str,
        q: &LogQuery,
        cursor: Option<LogCursor>,
    ) -> BackendResult<Logs>;
    fn list_containers(&self, q: ListQuery) -> BackendResult<Vec<ContainerSummary>>;
    fn inspect_container(&self, id: &str) -> BackendResult<ContainerInspectResponse>;
}

async fn create(
    State(b): State<SharedBackend>,
    Extension(version): Extension<ApiVersion>,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ContainerCreateResponse>), ApiError> {
    let q = Query::parse(raw.as_deref());
    let name = q.get("name").filter(|n| !n.is_empty()).map(str::to_owned);
    let mut req = CreateRequest::decode(name, &body)?;
    one_endpoint_before_1_44(version, &req.body)?;
    other_endpoint_ignored_before_1_44(version, &mut req.body);
    let resp = blocking(move || b.create_container(req)).await?;
    Ok((StatusCode::CREATED, Json(resp)))
}

async fn start(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let started = blocking(move || b.start_container(&id)).await?;
    Ok(if started {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

async fn wait(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let condition = q.get("condition").unwrap_or("not-running").to_owned();
    if !matches!(condition.as_str(), "next-exit" | "removed" | "not-running") {
        return Err(ApiError::bad_request(format!(
            "invalid condition: {condition:?}"
        )));
    }
    // An unknown container is an error now; after that the answer comes when it is due.
    let (b2, id2) = (b.clone(), id.clone());
    blocking(move || b2.wait_state(&id2)).await?;
    let since = chrono_now();
    // Woken when the state may have changed; still looking now and then on its own, for the
    // end no file change announces (a shim killed before it recorded the exit). Without a
    // watch (the user's inotify instances are few: 128 by default) it polls, as before.
    let (b2, id2) = (b.clone(), id.clone());
    let mut changes = StateWatch(
        blocking(move || b2.watch_state(&id2))
            .await
            .ok()
            .flatten()
            .and_then(|fd| {
                // SAFETY: the AsyncFd owns `fd` (an OwnedFd, whose raw descriptor never
                // changes) until StateWatch takes it back out; nothing else holds it.
                unsafe {
                    tokio::io::unix::AsyncFd::register_with_interest(
                        fd,
                        tokio::io::Interest::READABLE,
                    )
                }
                .ok()
            }),
    );
    // Docker sends the headers at once and the body when the condition is met: clients
    // (the docker CLI's `run`) wait for the headers before they start the container.
    let answer = async move {
        loop {
            let (b2, id2) = (b.clone(), id.clone());
            let st = match blocking(move || b2.wait_state(&id2)).await {
                Ok(st) => st,
                Err(e) => {
                    let body =
                        serde_json::json!({"StatusCode": -1, "Error": {"Message": e.message}});
                    return Ok::<_, std::convert::Infallible>(format!("{body}\n"));
                }
            };
            let done = match condition.as_str() {
                "next-exit" => {
                    !st.running && !st.created && st.finished_at.as_str() > since.as_str()
                }
                "removed" => st.removed,
                _ => !st.running,
            };
            if done {
                // How long after the container's end the wait answered: what polling costs.
                berth_core::timing::lag_since("wait.lag", &st.finished_at);
                let body = serde_json::to_string(&ContainerWaitResponse {
                    status_code: st.exit_code,
                    error: None,
                })
                .unwrap_or_default();
                return Ok(format!("{body}\n"));
            }
            match changes.0.as_mut() {
                Some(fd) => state_changed(fd, Duration::from_millis(250)).await,
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    let stream = futures_util::stream::once(answer);
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A backend's state watch (see `watch_state`) read through the runtime's reactor. Closing
/// the descriptor can wait for the kernel (closing an inotify instance waits out an SRCU
/// grace period: 10-13 ms here, seen with perf as the worker in D state just before a wait's
/// answer went out), so it is closed on a blocking thread, never on the worker that answers.
struct StateWatch(Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>);

impl Drop for StateWatch {
    fn drop(&mut self) {
        let Some(watch) = self.0.take() else {
            return;
        };
        let fd = watch.into_inner();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn_blocking(move || drop(fd));
        }
    }
}

/// Returns when `fd` (a backend's `watch_state`) says the state may have changed, having read
/// it empty, or after `limit`.
async fn state_changed(fd: &mut tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>, limit: Duration) {
    let Ok(Ok(mut ready)) = tokio::time::timeout(limit, fd.readable_mut()).await else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        use std::os::fd::AsRawFd;
        match nix::unistd::read(ready.get_inner().as_raw_fd(), &mut buf) {
            Ok(n) if n > 0 => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => {
                ready.clear_ready();
                return;
            }
            // Not an inotify descriptor after all: fall back to waiting out the limit.
            _ => return tokio::time::sleep(limit).await,
        }
    }
}

/// Now, as the engine writes times (RFC 3339, nanoseconds, UTC), for ordering comparisons.
fn chrono_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Only compared with strings of the same shape; built without a date library here.
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, dd) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// How long a hijacked connection's first bytes wait after the 101 (see `attach`).
const UPGRADE_SETTLE: Duration = Duration::from_millis(30);

/// `POST /containers/{id}/attach`: the connection is hijacked and joined to the shim's attach
/// socket: output flows to the client as the container writes it, input to its stdin.
async fn attach(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let keys =
        crate::detach::parse(q.get("detachKeys").unwrap_or("")).map_err(ApiError::bad_request)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tcp"));
    if !q.flag("stream", false) {
        // No live stream: the logs if asked for, then the end (Docker's `logs=1&stream=0`).
        let lq = LogQuery {
            stdout: q.flag("stdout", false),
            stderr: q.flag("stderr", false),
            ..Default::default()
        };
        let want_logs = q.flag("logs", false) && (lq.stdout || lq.stderr);
        let body = if want_logs {
            let (b2, id2) = (b.clone(), id.clone());
            let logs = blocking(move || b2.container_logs(&id2, &lq, None)).await?;
            frame_all(logs.tty, logs.records)
        } else {
            // Nothing to send, but the container must exist.
            let (b2, id2) = (b.clone(), id.clone());
            blocking(move || b2.inspect_container(&id2)).await?;
            Vec::new()
        };
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok(upgraded) = upgrade.await {
                let mut client = hyper_util::rt::TokioIo::new(upgraded);
                // A client reads the 101's headers through a buffered reader and the stream
                // from the socket beneath it (docker-py does): bytes that arrive with the
                // headers land in that buffer and are lost. A moment's pause lets the headers
                // travel alone.
                if !body.is_empty() {
                    tokio::time::sleep(UPGRADE_SETTLE).await;
                }
                let _ = client.write_all(&body).await;
                let _ = client.shutdown().await;
            }
        });
        return Ok(attach_response(wants_upgrade));
    }
    let (b2, id2) = (b.clone(), id.clone());
    let tty = blocking(move || b2.inspect_container(&id2))
        .await?
        .config
        .and_then(|c| c.tty)
        .unwrap_or(false);
    let (b2, id2) = (b.clone(), id.clone());
    let (full_id, socket) = blocking(move || b2.begin_attach(&id2)).await?;
    tokio::spawn(async move {
        // Wait for the shim's socket (the container may not be started yet).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let shim = loop {
            // Through the directory's descriptor: the full path may be too long for a socket.
            let dir = socket
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            let name = socket
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Ok(d) = std::fs::File::open(&dir) {
                use std::os::fd::AsRawFd;
                let short = format!("/proc/self/fd/{}/{name}", d.as_raw_fd());
                if let Ok(s) = tokio::net::UnixStream::connect(&short).await {
                    break Some(s);
                }
            }
            if tokio::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let b3 = b.clone();
        let id3 = full_id.clone();
        let _ = tokio::task::spawn_blocking(move || b3.end_attach(&id3)).await;
        let (mut shim, upgraded) = match (shim, upgrade.await) {
            (Some(s), Ok(u)) => (s, u),
            (None, _) => {
                tracing::warn!(container = %full_id, "attach: the container's shim never listened");
                return;
            }
            (_, Err(e)) => {
                tracing::warn!(container = %full_id, error = %e, "attach: upgrade failed");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(upgraded);
        if tty {
            // A terminal's input is watched for the detach keys, as Docker does.
            let detached = relay_watching(client, shim, keys).await;
            tracing::debug!(container = %full_id, detached, "attach ended");
        } else {
            let copied = tokio::io::copy_bidirectional(&mut client, &mut shim).await;
            tracing::debug!(container = %full_id, ?copied, "attach ended");
        }
    });
    Ok(attach_response(wants_upgrade))
}

/// Relays between an attached client and the shim, passing the client's input through a
/// detach-keys watch: on the sequence, the connection is closed (the container runs on).
/// Returns whether the client detached.
async fn relay_watching<C, S>(client: C, shim: S, keys: Vec<u8>) -> bool
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut crd, mut cwr) = tokio::io::split(client);
    let (mut srd, mut swr) = tokio::io::split(shim);
    let input = async {
        let mut watch = crate::detach::Watch::new(keys);
        let mut buf = vec![0u8; 8192];
        loop {
            let n = match crd.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    // The client's end of input: the container's stdin ends too.
                    let _ = swr.shutdown().await;
                    return false;
                }
                Ok(n) => n,
            };
            let (pass, detached) = watch.feed(&buf[..n]);
            if !pass.is_empty() && swr.write_all(&pass).await.is_err() {
                return false;
            }
            if detached {
                return true;
            }
        }
    };
    let output = async {
        let _ = tokio::io::copy(&mut srd, &mut cwr).await;
    };
    let detached = {
        tokio::pin!(input, output);
        tokio::select! {
            d = &mut input => {
                if !d {
                    // Input is over; output goes on until the container's ends.
                    (&mut output).await;
                }
                d
            }
            _ = &mut output => false,
        }
    };
    let _ = cwr.shutdown().await;
    detached
}

/// The answer to an attach: a hijacked stream when the client asked to upgrade.
fn attach_response(wants_upgrade: bool) -> Response {
    let mut resp = Response::new(Body::empty());
    if wants_upgrade {
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("Upgrade"),
        );
        resp.headers_mut()
            .insert(header::UPGRADE, header::HeaderValue::from_static("tcp"));
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    resp
}

async fn stop(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let timeout = q.get("t").and_then(|t| t.parse().ok());
    let stopped = blocking(move || b.stop_container(&id, timeout)).await?;
    Ok(if stopped {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_MODIFIED
    })
}

async fn kill(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGKILL")
        .to_owned();
    blocking(move || b.kill_container(&id, &signal)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let timeout = q.get("t").and_then(|t| t.parse().ok());
    blocking(move || b.restart_container(&id, timeout)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rename(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let name = q.get("name").unwrap_or("").to_owned();
    blocking(move || b.rename_container(&id, &name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn top(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<ContainerTopResponse>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let args = q.get("ps_args").unwrap_or("-ef").to_owned();
    Ok(Json(blocking(move || b.top_container(&id, &args)).await?))
}

async fn resize(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let dim = |k: &str| -> Result<u16, ApiError> {
        q.get(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid {k}: must be a number")))
    };
    let (rows, cols) = (dim("h")?, dim("w")?);
    blocking(move || b.resize_container(&id, rows, cols)).await?;
    Ok(StatusCode::OK)
}

async fn pause(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || b.pause_container(&id, true)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(move || b.pause_container(&id, false)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q = Query::parse(raw.as_deref());
    let force = q.flag("force", false);
    let volumes = q.flag("v", false);
    if q.flag("link", false) {
        blocking(move || b.remove_link(&id)).await?;
    } else {
        blocking(move || b.remove_container(&id, force, volumes)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /containers/parent/alias`: a link's name has a `/` in it (Docker routes
/// `{name:.*}`); with `link=1` the link goes, without it the container it names.
async fn remove_by_link_name(
    State(b): State<SharedBackend>,
    Path((parent, alias)): Path<(String, String)>,
    raw: RawQuery,
) -> Result<StatusCode, ApiError> {
    remove(State(b), Path(format!("{parent}/{alias}")), raw).await
}

/// Docker's stream framing for non-tty output: stream id, three zeros, big-endian length.
fn frame(stream: LogStream, data: &[u8], out: &mut Vec<u8>) {
    out.push(match stream {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

fn frame_all(tty: bool, records: Vec<(LogStream, Vec<u8>)>) -> Vec<u8> {
    let mut body = Vec::new();
    for (stream, data) in records {
        if tty {
            body.extend_from_slice(&data);
        } else {
            frame(stream, &data, &mut body);
        }
    }
    body
}

async fn logs(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let (stdout, stderr) = (q.flag("stdout", false), q.flag("stderr", false));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let now = chrono_nanos();
    let lq = LogQuery {
        stdout,
        stderr,
        tail: q.get("tail").and_then(|t| t.parse().ok()),
        timestamps: q.flag("timestamps", false),
        since: crate::query::timestamp_param(&q, "since", now)?,
        until: crate::query::timestamp_param(&q, "until", now)?,
    };
    let follow = q.flag("follow", false);
    let (b2, id2, lq2) = (b.clone(), id.clone(), lq.clone());
    let first = blocking(move || b2.container_logs(&id2, &lq2, None)).await?;
    let tty = first.tty;
    let content_type = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let body = frame_all(tty, first.records);
    if !follow || !first.running || lq.until.is_some_and(|u| u <= now) {
        return Ok(([(header::CONTENT_TYPE, content_type)], Body::from(body)).into_response());
    }
    // Follow: what is there now, then whatever the container writes until it stops.
    let state = (Some(body), first.cursor, true);
    let stream = futures_util::stream::unfold(state, move |(pending, cursor, running)| {
        let (b, id, lq) = (b.clone(), id.clone(), lq.clone());
        async move {
            if let Some(body) = pending {
                return Some((
                    Ok::<_, std::convert::Infallible>(body),
                    (None, cursor, running),
                ));
            }
            if !running {
                return None;
            }
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let (b2, id2, lq2, at) = (b.clone(), id.clone(), lq.clone(), cursor.clone());
                let Ok(next) = blocking(move || b2.container_logs(&id2, &lq2, Some(at))).await
                else {
                    return None;
                };
                let past_until = lq.until.is_some_and(|u| u <= chrono_nanos());
                if !next.records.is_empty() || !next.running || past_until {
                    // The first answer's framing throughout (a removed container's last
                    // answer no longer knows it).
                    let body = frame_all(tty, next.records);
                    return Some((Ok(body), (None, next.cursor, next.running && !past_until)));
                }
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Now in nanoseconds since the epoch.
fn chrono_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

async fn list(
    State(b): State<SharedBackend>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<ContainerSummary>>, ApiError> {
    let q = Query::parse(raw.as_deref());
    let lq = ListQuery {
        all: q.flag("all", false),
        limit: q
            .get("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|l| *l > 0)
            .map(|l| l as usize),
        size: q.flag("size", false),
        filters: berth_core::filters::Filters::from_query(&q)?,
    };
    Ok(Json(crate::inline(move || b.list_containers(lq))?))
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let info = crate::inline(move || b.inspect_container(&id))?;
    let mut v =
        serde_json::to_value(info).map_err(|e| ApiError::internal(format!("inspect: {e}")))?;
    with_default_endpoint(&mut v);
    with_endpoint_nulls(&mut v);
    Ok(Json(v))
}

/// `GET /containers/parent/alias/json`: inspect by a link's name.
async fn inspect_by_link_name(
    State(b): State<SharedBackend>,
    Path((parent, alias)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    inspect(State(b), Path(format!("{parent}/{alias}"))).await
}

/// The API minor version of a `/v1.NN/...` path (None: unversioned, the newest).
/// Before API 1.44 a container is created on one network: dockerd refuses more than one
/// `NetworkingConfig.EndpointsConfig` entry (its words; Go lists them in map order, berth
/// sorted).
fn one_endpoint_before_1_44(
    version: ApiVersion,
    body: &ContainerCreateBody,
) -> Result<(), ApiError> {
    let Some(eps) = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref())
    else {
        return Ok(());
    };
    if eps.len() > 1 && version.minor < 44 {
        let mut names: Vec<&str> = eps.keys().map(String::as_str).collect();
        names.sort_unstable();
        return Err(ApiError::bad_request(format!(
            "Container cannot be connected to network endpoints: {}",
            names.join(", ")
        )));
    }
    Ok(())
}

/// Before API 1.44 a container joins only its `NetworkMode`'s network: an
/// `EndpointsConfig` entry for another network is dropped (dockerd ignores it), while from
/// 1.44 on every entry is a network the container joins.
fn other_endpoint_ignored_before_1_44(version: ApiVersion, body: &mut ContainerCreateBody) {
    if version.minor >= 44 {
        return;
    }
    let mode = body
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone())
        .unwrap_or_default();
    let default_mode = mode.is_empty() || mode == "default";
    if let Some(eps) = body
        .networking_config
        .as_mut()
        .and_then(|n| n.endpoints_config.as_mut())
    {
        eps.retain(|k, _| k == &mode || (default_mode && (k == "default" || k == "bridge")));
    }
}

/// Docker sends every field of an endpoint's settings: the ones berth's model leaves out
/// when unset (`IPAMConfig`, `Links`, `Aliases`, `DriverOpts`, `DNSNames`) are `null`.
fn with_endpoint_nulls(v: &mut serde_json::Value) {
    let Some(nets) = v
        .get_mut("NetworkSettings")
        .and_then(|n| n.get_mut("Networks"))
        .and_then(|n| n.as_object_mut())
    else {
        return;
    };
    for ep in nets.values_mut().filter_map(|e| e.as_object_mut()) {
        for k in ["IPAMConfig", "Links", "Aliases", "DriverOpts", "DNSNames"] {
            ep.entry(k).or_insert(serde_json::Value::Null);
        }
    }
}

/// Docker still fills the deprecated top-level `NetworkSettings.IPAddress` & co. from the
/// default `bridge` network's endpoint (empty otherwise), and scripts read them
/// (`inspect -f '{{.NetworkSettings.IPAddress}}'`); the API models no longer have the fields.
fn with_default_endpoint(v: &mut serde_json::Value) {
    let Some(ns) = v.get_mut("NetworkSettings").and_then(|n| n.as_object_mut()) else {
        return;
    };
    let ep = ns
        .get("Networks")
        .and_then(|n| n.get("bridge"))
        .cloned()
        .unwrap_or_default();
    let text = |k: &str| ep.get(k).cloned().unwrap_or_else(|| "".into());
    let num = |k: &str| ep.get(k).cloned().unwrap_or_else(|| 0.into());
    for (field, value) in [
        ("EndpointID", text("EndpointID")),
        ("Gateway", text("Gateway")),
        ("GlobalIPv6Address", text("GlobalIPv6Address")),
        ("GlobalIPv6PrefixLen", num("GlobalIPv6PrefixLen")),
        ("IPAddress", text("IPAddress")),
        ("IPPrefixLen", num("IPPrefixLen")),
        ("IPv6Gateway", text("IPv6Gateway")),
        ("MacAddress", text("MacAddress")),
    ] {
        ns.entry(field).or_insert(value);
    }
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/{alias}", delete(remove_by_link_name))
        .route("/containers/{id}/{alias}/json", get(inspect_by_link_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_networks_endpoint_is_also_at_the_top() {
        let mut v = serde_json::json!({"NetworkSettings": {"Networks": {
            "bridge": {"IPAddress": "10.209.0.5", "IPPrefixLen": 16, "Gateway": "10.209.0.1",
                       "MacAddress": "02:42:0a:d1:00:05"}}}});
        with_default_endpoint(&mut v);
        let ns = &v["NetworkSettings"];
        assert_eq!(ns["IPAddress"], "10.209.0.5");
        assert_eq!(ns["IPPrefixLen"], 16);
        assert_eq!(ns["Gateway"], "10.209.0.1");
        assert_eq!(ns["MacAddress"], "02:42:0a:d1:00:05");
        // On a user network only, Docker leaves them empty.
        let mut v = serde_json::json!({"NetworkSettings": {"Networks": {"app": {"IPAddress": "10.1.0.2"}}}});
        with_default_endpoint(&mut v);
        assert_eq!(v["NetworkSettings"]["IPAddress"], "");
        assert_eq!(v["NetworkSettings"]["IPPrefixLen"], 0);
    }

    #[test]
    fn endpoints_carry_nulls_for_what_was_not_given() {
        let mut v = serde_json::json!({"NetworkSettings": {"Networks": {
            "app": {"Aliases": ["a"], "NetworkID": "n", "MacAddress": ""},
            "none": {}}}});
        with_endpoint_nulls(&mut v);
        let app = &v["NetworkSettings"]["Networks"]["app"];
        assert_eq!(app["Aliases"], serde_json::json!(["a"]));
        for k in ["IPAMConfig", "Links", "DriverOpts", "DNSNames"] {
            assert!(app[k].is_null() && app.get(k).is_some(), "{k}");
        }
        assert!(v["NetworkSettings"]["Networks"]["none"]
            .get("Aliases")
            .is_some_and(|a| a.is_null()));
        // No NetworkSettings: nothing added.
        let mut v = serde_json::json!({"Id": "x"});
        with_endpoint_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"Id": "x"}));
    }

    #[test]
    fn an_endpoint_for_another_network_is_dropped_before_api_1_44() {
        let body = || -> ContainerCreateBody {
            serde_json::from_value(serde_json::json!({
                "HostConfig": {"NetworkMode": "net1"},
                "NetworkingConfig": {"EndpointsConfig": {"bar": {"Aliases": ["x"]}}}
            }))
            .unwrap()
        };
        let mut old = body();
        other_endpoint_ignored_before_1_44(ApiVersion { minor: 41 }, &mut old);
        assert!(old
            .networking_config
            .unwrap()
            .endpoints_config
            .unwrap()
            .is_empty());
        let mut new = body();
        other_endpoint_ignored_before_1_44(ApiVersion { minor: 44 }, &mut new);
        assert_eq!(
            new.networking_config
                .unwrap()
                .endpoints_config
                .unwrap()
                .len(),
            1
        );
        // The mode's own entry stays.
        let mut own: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "HostConfig": {"NetworkMode": "net1"},
            "NetworkingConfig": {"EndpointsConfig": {"net1": {}}}
        }))
        .unwrap();
        other_endpoint_ignored_before_1_44(ApiVersion { minor: 41 }, &mut own);
        assert_eq!(
            own.networking_config
                .unwrap()
                .endpoints_config
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn two_endpoints_at_create_are_refused_before_api_1_44() {
        let body: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "NetworkingConfig": {"EndpointsConfig": {"net1": {}, "bar": {"Aliases": ["x"]}}}
        }))
        .unwrap();
        let e = one_endpoint_before_1_44(ApiVersion { minor: 41 }, &body).unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(
            e.message,
            "Container cannot be connected to network endpoints: bar, net1"
        );
        // 1.44 and later (and no version: the newest) take several.
        assert!(one_endpoint_before_1_44(ApiVersion { minor: 44 }, &body).is_ok());
        assert!(one_endpoint_before_1_44(ApiVersion { minor: 45 }, &body).is_ok());
        let one: ContainerCreateBody = serde_json::from_value(serde_json::json!({
            "NetworkingConfig": {"EndpointsConfig": {"net1": {}}}
        }))
        .unwrap();
        assert!(one_endpoint_before_1_44(ApiVersion { minor: 41 }, &one).is_ok());
    }
}
