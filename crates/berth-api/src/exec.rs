//! `docker exec`: `POST /containers/{id}/exec` makes an exec instance, `POST /exec/{id}/start`
//! runs it with its stdio on the hijacked connection (Docker's framing; a request that does
//! not ask to upgrade gets the output as the body of a 200, as from dockerd), `GET
//! /exec/{id}/json` reports its exit code.

use std::process::Stdio;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{blocking, ApiError, BackendResult, SharedBackend};

/// What an exec runs: a program and its arguments (the engine builds the runtime call).
#[derive(Debug, Clone)]
pub struct ExecLaunch {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    pub stdin: bool,
    /// The process gets a terminal (`exec -t`).
    pub tty: bool,
    /// The exec's `DetachKeys` (empty: the default sequence), watched for on a terminal's
    /// input.
    pub detach_keys: String,
}

/// `GET /exec/{id}/json`: Docker's ExecInspect. Not bollard's model, which leaves `ExitCode`
/// out while the command runs; Docker sends `null` there, and clients index it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecInspect {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Running")]
    pub running: bool,
    #[serde(rename = "ExitCode")]
    pub exit_code: Option<i64>,
    #[serde(rename = "ProcessConfig")]
    pub process_config: ExecProcessConfig,
    #[serde(rename = "OpenStdin")]
    pub open_stdin: bool,
    #[serde(rename = "OpenStderr")]
    pub open_stderr: bool,
    #[serde(rename = "OpenStdout")]
    pub open_stdout: bool,
    #[serde(rename = "CanRemove")]
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    #[serde(rename = "DetachKeys")]
    pub detach_keys: String,
    #[serde(rename = "Pid")]
    pub pid: i64,
}

/// The command of an exec instance, as Docker names its fields (lower case).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExecProcessConfig {
    pub privileged: bool,
    pub user: String,
    pub tty: bool,
    pub entrypoint: String,
    pub arguments: Vec<String>,
}

/// What the exec endpoints need from the engine.
pub trait ExecBackend {
    /// Makes an exec instance in a running container from Docker's ExecConfig; returns its ID.
    fn create_exec(
        &self,
        container: &str,
        body: bollard_stubs::models::ExecConfig,
    ) -> BackendResult<String>;
    /// How to run it; marks it running.
    fn launch_exec(&self, exec_id: &str) -> BackendResult<ExecLaunch>;
    /// Records the end of a run.
    fn finish_exec(&self, exec_id: &str, pid: Option<u32>, exit_code: i64);
    /// Docker's ExecInspectResponse.
    fn inspect_exec(&self, exec_id: &str) -> BackendResult<ExecInspect>;
}

async fn create(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    // Go's StrSlice: a command may be one string.
    if let Some(s) = v["Cmd"].as_str().map(str::to_owned) {
        v["Cmd"] = serde_json::json!([s]);
    }
    let body: bollard_stubs::models::ExecConfig = crate::body::decode_value(v, "ExecConfig")?;
    let exec_id = tokio::task::spawn_blocking(move || b.create_exec(&id, body))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "Id": exec_id })),
    ))
}

fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.push(stream);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// `Detach` and `Tty` of an exec start request. Docker frames (multiplexes) the output unless
/// the *start* request says `Tty: true`, whatever the exec was created with: a tty exec
/// started with `Tty: false` (docker-py's default) gets its terminal's output as stdout frames.
fn start_options(body: &serde_json::Value) -> (bool, bool) {
    (
        body["Detach"].as_bool().unwrap_or(false),
        body["Tty"].as_bool().unwrap_or(false),
    )
}

/// `data` as the client reads it: as is on a raw stream, else in a frame of `stream`.
pub(crate) fn framed(raw: bool, stream: u8, data: &[u8]) -> Vec<u8> {
    if raw {
        data.to_vec()
    } else {
        frame(stream, data)
    }
}

/// The hijacked stream's content type, as Docker names it.
pub(crate) fn stream_type(raw: bool) -> &'static str {
    if raw {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

async fn start(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let (detach, raw) = {
        let bytes = axum::body::to_bytes(std::mem::take(req.body_mut()), 64 * 1024)
            .await
            .unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        start_options(&v)
    };
    let (b2, id2) = (b.clone(), id.clone());
    let launch = tokio::task::spawn_blocking(move || b2.launch_exec(&id2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    if launch.tty && !detach {
        return crate::exec_tty::start(b, id, launch, raw, req).await;
    }
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .stdin(if launch.stdin && !detach {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(if detach {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stderr(if detach {
            Stdio::null()
        } else {
            Stdio::piped()
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("run the exec: {e}")))?;
    let pid = child.id();
    if detach {
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            let _ = tokio::task::spawn_blocking(move || b.finish_exec(&id, pid, code.into())).await;
        });
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .expect("static response"));
    }
    // The output goes through a channel: to the hijacked connection when the client asked
    // to upgrade (as Docker's clients do), else as the body of a 200 answer (dockerd answers
    // a plain request so too, and ends the stream with the process).
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdin = child.stdin.take();
    tokio::spawn(async move {
        pump_output(stdout, stderr, raw, &tx).await;
        // The exit code is recorded before the stream ends: clients ask for it as soon as
        // they see the end.
        let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
        let _ = tokio::task::spawn_blocking(move || b.finish_exec(&id, pid, code.into())).await;
    });
    let Some(upgrade) = upgrade else {
        drop(stdin);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
        });
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, stream_type(raw))
            .body(Body::from_stream(body))
            .expect("static response"));
    };
    tokio::spawn(relay_upgraded(upgrade, stdin, rx));
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, stream_type(raw))
        .body(Body::empty())
        .expect("static response"))
}

/// Reads the process's stdout and stderr until both end, sending each piece (framed unless
/// `raw`) into `tx`; a receiver that is gone ends it early.
async fn pump_output(
    mut stdout: Option<tokio::process::ChildStdout>,
    mut stderr: Option<tokio::process::ChildStderr>,
    raw: bool,
    tx: &tokio::sync::mpsc::Sender<Vec<u8>>,
) {
    let (mut obuf, mut ebuf) = (vec![0u8; 32768], vec![0u8; 32768]);
    loop {
        if stdout.is_none() && stderr.is_none() {
            return;
        }
        tokio::select! {
            n = async { stdout.as_mut().unwrap().read(&mut obuf).await }, if stdout.is_some() => {
                match n {
                    Ok(0) | Err(_) => stdout = None,
                    Ok(n) => { if tx.send(framed(raw, 1, &obuf[..n])).await.is_err() { return; } }
                }
            }
            n = async { stderr.as_mut().unwrap().read(&mut ebuf).await }, if stderr.is_some() => {
                match n {
                    Ok(0) | Err(_) => stderr = None,
                    Ok(n) => { if tx.send(framed(raw, 2, &ebuf[..n])).await.is_err() { return; } }
                }
            }
        }
    }
}

/// The hijacked connection of an exec: client input to the process's stdin, `output` to the
/// client, until the output ends (then the connection is shut down). A client that never
/// completes the upgrade gets nothing, and the output is let go.
async fn relay_upgraded(
    upgrade: hyper::upgrade::OnUpgrade,
    stdin: Option<tokio::process::ChildStdin>,
    mut output: tokio::sync::mpsc::Receiver<Vec<u8>>,
) {
    let Ok(upgraded) = upgrade.await else {
        drop(output);
        return;
    };
    let io = hyper_util::rt::TokioIo::new(upgraded);
    let (mut rd, mut wr) = tokio::io::split(io);
    // Input goes to the process in a task of its own: a process that stops reading its stdin
    // until its stdout is read (cat with more than a pipe's worth) must never hold up the
    // output, or neither side moves again.
    let input = stdin.map(|mut stdin| {
        tokio::spawn(async move {
            // The client's end of input (or a read error) closes the process's stdin.
            let _ = tokio::io::copy(&mut rd, &mut stdin).await;
        })
    });
    while let Some(chunk) = output.recv().await {
        if wr.write_all(&chunk).await.is_err() {
            break;
        }
    }
    drop(output);
    // The output has ended: whatever input is still coming goes nowhere, and the process's
    // stdin closes with the task.
    if let Some(task) = input {
        task.abort();
        let _ = task.await;
    }
    let _ = wr.shutdown().await;
}

async fn inspect(
    State(b): State<SharedBackend>,
    Path(id): Path<String>,
) -> Result<Json<ExecInspect>, ApiError> {
    Ok(Json(blocking(move || b.inspect_exec(&id)).await?))
}

async fn resize(
    Path(id): Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> StatusCode {
    let q = crate::query::Query::parse(raw.as_deref());
    let size = |k: &str| q.get(k).and_then(|v| v.parse::<u16>().ok()).unwrap_or(0);
    crate::exec_tty::resize(&id, size("h"), size("w"));
    StatusCode::OK
}

pub fn routes() -> Router<SharedBackend> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/json", get(inspect))
        .route("/exec/{id}/resize", post(resize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_request_decides_the_framing() {
        assert_eq!(start_options(&serde_json::json!({})), (false, false));
        assert_eq!(
            start_options(&serde_json::json!({"Detach": false, "Tty": false})),
            (false, false)
        );
        assert_eq!(
            start_options(&serde_json::json!({"Detach": true, "Tty": true})),
            (true, true)
        );
        assert_eq!(framed(true, 1, b"hello"), b"hello");
        assert_eq!(framed(false, 1, b"hello"), b"\x01\0\0\0\0\0\0\x05hello");
        assert_eq!(framed(false, 2, b"e")[..8], [2, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(stream_type(true), "application/vnd.docker.raw-stream");
        assert_eq!(
            stream_type(false),
            "application/vnd.docker.multiplexed-stream"
        );
    }
}
