//! Handing a started container over to `berth-shim`: the shim that created the container has
//! most of the runtime resident (libcontainer, its heap); it execs the small relay binary,
//! which keeps the process (so it stays the parent of the container's init) and every
//! descriptor it is told about, and nothing else. The descriptors and settings travel as
//! arguments: `berth-shim --id ID --state-dir DIR --runtime BIN --runtime-root DIR
//! --log-max-size N --log-max-file N --init-pid PID [--stdout-fd N --stderr-fd N]
//! [--stdin-fd N] [--pty-fd N] [--attach-fd N] [--control-fd N] [--client-fd N]…`.

use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::relay::{Output, RelayFds, RelayOptions};

/// The relay binary's name; it is looked for beside `berth-runtime`.
pub const RELAY_BIN: &str = "berth-shim";

fn keep_across_exec(fd: RawFd) -> bool {
    // SAFETY: F_GETFD/F_SETFD only change the close-on-exec flag of our own descriptor.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == 0
    }
}

/// Execs `berth-shim` with `fds`; returns them when that is not possible (no binary beside
/// this one, or exec failed), so the caller relays in-process.
pub fn exec_relay(
    runtime_root: &Path,
    opts: &RelayOptions,
    fds: RelayFds,
) -> Result<Infallible, RelayFds> {
    let Ok(me) = std::env::current_exe() else {
        return Err(fds);
    };
    let Some(relay) = me
        .parent()
        .map(|d| d.join(RELAY_BIN))
        .filter(|p| p.exists())
    else {
        return Err(fds);
    };
    let mut args: Vec<OsString> = vec![relay.clone().into()];
    let mut push = |k: &str, v: &OsStr| {
        args.push(k.into());
        args.push(v.to_owned());
    };
    push("--id", opts.id.as_ref());
    push("--state-dir", opts.state_dir.as_os_str());
    push("--runtime", me.as_os_str());
    push("--runtime-root", runtime_root.as_os_str());
    push("--log-max-size", opts.log_max_size.to_string().as_ref());
    push("--log-max-file", opts.log_max_files.to_string().as_ref());
    push("--init-pid", fds.init.as_raw().to_string().as_ref());
    if let Some(h) = &opts.health {
        if let Ok(json) = serde_json::to_string(h) {
            push("--health", json.as_ref());
        }
    }
    let mut kept: Vec<(&str, RawFd)> = Vec::new();
    match &fds.output {
        Output::Pipes {
            stdout,
            stderr,
            stdin,
        } => {
            for (k, fd) in [
                ("--stdout-fd", stdout),
                ("--stderr-fd", stderr),
                ("--stdin-fd", stdin),
            ] {
                if let Some(fd) = fd {
                    kept.push((k, fd.as_raw_fd()));
                }
            }
        }
        Output::Pty(master) => kept.push(("--pty-fd", master.as_raw_fd())),
    }
    if let Some(l) = &fds.listener {
        kept.push(("--attach-fd", l.as_raw_fd()));
    }
    if let Some(c) = &fds.control {
        kept.push(("--control-fd", c.as_raw_fd()));
    }
    for c in &fds.clients {
        kept.push(("--client-fd", c.as_raw_fd()));
    }
    for (k, fd) in &kept {
        if !keep_across_exec(*fd) {
            return Err(fds);
        }
        push(k, fd.to_string().as_ref());
    }
    let Ok(cargs) = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Err(fds);
    };
    let Ok(path) = CString::new(relay.as_os_str().as_bytes()) else {
        return Err(fds);
    };
    // execv returns only on failure; the descriptors are still ours then.
    let _ = nix::unistd::execv(&path, &cargs);
    Err(fds)
}

/// What `berth-shim` was handed: the relay's settings and descriptors, the runtime to delete
/// the container with at the end.
#[derive(Debug)]
pub struct Handed {
    pub opts: RelayOptions,
    pub fds: RelayFds,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
}

/// Reads `berth-shim`'s arguments (as [`exec_relay`] writes them).
pub fn parse_args(args: &[OsString]) -> Result<Handed, String> {
    let mut id = None;
    let mut state_dir = None;
    let mut runtime = None;
    let mut runtime_root = None;
    let (mut log_max_size, mut log_max_files) =
        (super::log::DEFAULT_MAX_SIZE, super::log::DEFAULT_MAX_FILES);
    let mut init = None;
    let mut health = None;
    let (mut stdout, mut stderr, mut stdin, mut pty) = (None, None, None, None);
    let (mut listener, mut control) = (None, None);
    let mut clients = Vec::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| format!("{} needs a value", k.to_string_lossy()))?;
        let text = v.to_string_lossy();
        let fd = || -> Result<OwnedFd, String> {
            let n: RawFd = text.parse().map_err(|_| format!("bad descriptor {text}"))?;
            // SAFETY: the descriptor was handed to us across exec by the shim, which owned it
            // and kept it open for us; nothing else in this process uses it.
            Ok(unsafe { OwnedFd::from_raw_fd(n) })
        };
        match k.to_string_lossy().as_ref() {
            "--id" => id = Some(text.into_owned()),
            "--state-dir" => state_dir = Some(PathBuf::from(v)),
            "--runtime" => runtime = Some(PathBuf::from(v)),
            "--runtime-root" => runtime_root = Some(PathBuf::from(v)),
            "--log-max-size" => log_max_size = text.parse().map_err(|_| "bad --log-max-size")?,
            "--log-max-file" => log_max_files = text.parse().map_err(|_| "bad --log-max-file")?,
            "--init-pid" => init = Some(Pid::from_raw(text.parse().map_err(|_| "bad --init-pid")?)),
            "--health" => {
                health =
                    Some(serde_json::from_str(&text).map_err(|e| format!("bad --health: {e}"))?)
            }
            "--stdout-fd" => stdout = Some(fd()?),
            "--stderr-fd" => stderr = Some(fd()?),
            "--stdin-fd" => stdin = Some(fd()?),
            "--pty-fd" => pty = Some(fd()?),
            "--attach-fd" => listener = Some(UnixListener::from(fd()?)),
            "--control-fd" => control = Some(UnixListener::from(fd()?)),
            "--client-fd" => clients.push(UnixStream::from(fd()?)),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let missing = |what: &str| format!("missing {what}");
    let output = match pty {
        Some(master) => Output::Pty(master),
        None => Output::Pipes {
            stdout,
            stderr,
            stdin,
        },
    };
    for fd in [
        listener.as_ref().map(|l| l.as_raw_fd()),
        control.as_ref().map(|c| c.as_raw_fd()),
    ]
    .into_iter()
    .flatten()
    {
        // SAFETY: F_SETFD on our own descriptor: the listeners go back to close-on-exec.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok(Handed {
        opts: RelayOptions {
            id: id.ok_or_else(|| missing("--id"))?,
            state_dir: state_dir.ok_or_else(|| missing("--state-dir"))?,
            log_max_size,
            log_max_files,
            health,
            runtime: runtime.clone().ok_or_else(|| missing("--runtime"))?,
            runtime_root: runtime_root
                .clone()
                .ok_or_else(|| missing("--runtime-root"))?,
        },
        fds: RelayFds {
            output,
            listener,
            control,
            clients,
            init: init.ok_or_else(|| missing("--init-pid"))?,
        },
        runtime: runtime.ok_or_else(|| missing("--runtime"))?,
        runtime_root: runtime_root.ok_or_else(|| missing("--runtime-root"))?,
    })
}
