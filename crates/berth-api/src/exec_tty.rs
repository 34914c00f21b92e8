//! `docker exec -t`: the exec runs on a terminal the daemon owns. `berth-runtime exec --tty`
//! gets the slave side as its controlling terminal (so it relays the window size it is given
//! into the container's own terminal), and the daemon copies between the master side and the
//! hijacked connection. `POST /exec/{id}/resize` sets the master's window size.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::exec::{framed, stream_type, ExecLaunch};
use crate::{ApiError, SharedBackend};

/// The terminal masters of running `exec -t` instances, by exec ID.
static MASTERS: LazyLock<Mutex<HashMap<String, Arc<OwnedFd>>>> = LazyLock::new(Default::default);

fn masters() -> std::sync::MutexGuard<'static, HashMap<String, Arc<OwnedFd>>> {
    MASTERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the window size of exec `id`'s terminal (ignored when it has none or it ended).
pub fn resize(id: &str, rows: u16, cols: u16) {
    if rows == 0 || cols == 0 {
        return;
    }
    if let Some(fd) = masters().get(id).cloned() {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the winsize we pass; the fd is a live pty master.
        unsafe {
            libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn std_file(fd: &OwnedFd) -> std::io::Result<std::fs::File> {
    Ok(std::fs::File::from(fd.try_clone()?))
}

pub async fn start(
    b: SharedBackend,
    id: String,
    launch: ExecLaunch,
    raw: bool,
    mut req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let pty = nix::pty::openpty(None, None)
        .map_err(|e| ApiError::internal(format!("open a terminal for the exec: {e}")))?;
    let slave = pty.slave;
    let master = Arc::new(pty.master);
    let io = |e: std::io::Error| ApiError::internal(format!("exec terminal: {e}"));
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .stdin(std_file(&slave).map_err(io)?)
        .stdout(std_file(&slave).map_err(io)?)
        .stderr(std_file(&slave).map_err(io)?);
    // SAFETY: setsid and the TIOCSCTTY ioctl are async-signal-safe and only affect the child
    // about to exec; fd 0 is the terminal's slave side.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::internal(format!("run the exec: {e}")))?;
    drop(slave);
    let pid = child.id();
    masters().insert(id.clone(), master.clone());
    let upgrade = hyper::upgrade::on(&mut req);
    let mut from_tty = tokio::fs::File::from_std(std_file(&master).map_err(io)?);
    let mut to_tty = tokio::fs::File::from_std(std_file(&master).map_err(io)?);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            let conn = hyper_util::rt::TokioIo::new(upgraded);
            let (mut rd, mut wr) = tokio::io::split(conn);
            let stdin = launch.stdin;
            // An unparsable sequence was refused at create; the default then.
            let keys = crate::detach::parse(&launch.detach_keys)
                .or_else(|_| crate::detach::parse(""))
                .unwrap_or_default();
            let (detach_tx, mut detach_rx) = tokio::sync::oneshot::channel::<()>();
            // The client's keys to the terminal, while it sends them, until the detach keys.
            let input = tokio::spawn(async move {
                if !stdin {
                    return;
                }
                let mut watch = crate::detach::Watch::new(keys);
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = rd.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let (pass, detached) = watch.feed(&buf[..n]);
                    if !pass.is_empty() && to_tty.write_all(&pass).await.is_err() {
                        break;
                    }
                    let _ = to_tty.flush().await;
                    if detached {
                        let _ = detach_tx.send(());
                        return;
                    }
                }
            });
            // The terminal's output to the client, until the process is gone (EIO) or the
            // client detaches.
            let mut buf = vec![0u8; 32768];
            let mut watching = true;
            let mut detached = false;
            loop {
                tokio::select! {
                    r = from_tty.read(&mut buf) => match r {
                        Ok(n) if n > 0 => {
                            if wr.write_all(&framed(raw, 1, &buf[..n])).await.is_err() {
                                break;
                            }
                        }
                        _ => break,
                    },
                    r = &mut detach_rx, if watching => match r {
                        Ok(()) => {
                            detached = true;
                            break;
                        }
                        Err(_) => watching = false,
                    },
                }
            }
            if detached {
                // Docker's words, then the end of the stream; the process runs on, its
                // terminal's output drained so that it never blocks on it.
                let msg = b"exec attach failed: error on attach stdin: read escape sequence\r\n";
                let _ = wr.write_all(&framed(raw, 1, msg)).await;
                let _ = wr.shutdown().await;
                input.abort();
                while let Ok(n) = from_tty.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            input.abort();
            let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
            masters().remove(&id);
            let (b2, id2) = (b.clone(), id.clone());
            let _ =
                tokio::task::spawn_blocking(move || b2.finish_exec(&id2, pid, code.into())).await;
            let _ = wr.shutdown().await;
            return;
        }
        let code = child.wait().await.ok().and_then(|s| s.code()).unwrap_or(-1);
        masters().remove(&id);
        let _ = tokio::task::spawn_blocking(move || b.finish_exec(&id, pid, code.into())).await;
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "tcp")
        .header(header::CONTENT_TYPE, stream_type(raw))
        .body(Body::empty())
        .expect("static response"))
}
