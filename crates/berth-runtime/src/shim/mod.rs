//! `berth-runtime shim`: the small per-container supervisor.
//!
//! The engine starts one per container. It creates and starts the container through the
//! runtime, and then, detached from whoever started it (its own session), it is the parent of
//! the container's init for the container's whole life: it holds the container's stdio (pipes
//! or the pty master), writes the json-file log, relays attached clients, reaps, records the
//! exit status and time in the state directory, and deletes the container's runtime state.
//! Because it does not depend on the engine, containers outlive an engine that dies or
//! restarts; the engine finds everything it needs in the state directory.
//!
//! What it keeps in the state directory (the engine's `containers/<id>/`) is defined in
//! `berth_oci::shim`, re-exported here: the engine reads those files without linking this crate.

pub mod handoff;
pub mod health;
pub mod relay;

pub use berth_oci::shim::{
    log, read_exit, read_shim, shim_alive, short_socket_path, write_atomic, ExitInfo, ShimInfo,
    ATTACH_SOCKET, CONTROL_SOCKET, EXIT_FILE, SHIM_FILE,
};

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{fork, ForkResult, Pid};

use crate::bundle::Bundle;
use crate::console::ConsoleSocket;
use crate::error::{Result, RuntimeError};
use crate::lifecycle::{CreateOptions, Runtime};
use relay::Output;

/// How to supervise one container.
#[derive(Debug, Clone)]
pub struct ShimOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    /// Keep the container's stdin open for attached clients (`docker run -i`).
    pub stdin: bool,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// Wait (this long at most) for a client on the attach socket before starting the
    /// process, so that a client that attached before `start` sees all of its output.
    pub wait_attach: Option<std::time::Duration>,
    /// The container's health check, run by the shim.
    pub health: Option<health::HealthConfig>,
    /// When the engine logs timing: when it spawned this process and when the process began
    /// (`berth_core::timing::monotonic_us`), reported as the steps `start.shim.launch` and
    /// `start.shim.fork`.
    pub launch: Option<Launch>,
}

/// See [`ShimOptions::launch`].
#[derive(Debug, Clone, Copy)]
pub struct Launch {
    pub spawned_us: u64,
    pub entered_us: u64,
}

impl ShimOptions {
    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}-json.log", self.id))
    }
}

/// Starts the shim for a new container and returns once the container runs (or failed to).
/// The shim is a forked child in its own session; this process may exit at once.
pub fn spawn(runtime: &Runtime, opts: &ShimOptions) -> Result<ShimInfo> {
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(|e| RuntimeError::io(format!("create {}", opts.state_dir.display()), e))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::io("create a pipe", e.into()))?;
    // SAFETY: berth-runtime is single-threaded (libcontainer requires it), so the child may
    // run arbitrary code after fork.
    match unsafe { fork() }.map_err(|e| RuntimeError::io("fork the shim", e.into()))? {
        ForkResult::Child => {
            drop(ready_r);
            let code = match supervise(runtime, opts, ready_w) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            std::process::exit(code);
        }
        ForkResult::Parent { .. } => {
            drop(ready_w);
            let mut answer = String::new();
            use std::io::Read;
            let _ = std::fs::File::from(ready_r).read_to_string(&mut answer);
            match answer.strip_prefix("ok ") {
                Some(json) => {
                    serde_json::from_str(json.trim()).map_err(|e| RuntimeError::Operation {
                        id: opts.id.clone(),
                        action: "start the shim of",
                        reason: e.to_string(),
                    })
                }
                None => Err(RuntimeError::Operation {
                    id: opts.id.clone(),
                    action: "start",
                    reason: answer
                        .strip_prefix("err ")
                        .unwrap_or("the shim died before the container ran")
                        .trim()
                        .to_owned(),
                }),
            }
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::io("create a pipe", e.into()))
}

/// Detaches from the caller: own session, stdio on /dev/null, reaper of orphans.
fn detach_self() {
    let _ = nix::unistd::setsid();
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto 0..2 replaces our stdio with /dev/null; `null` stays valid.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and changes only this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// The shim's body: create and start the container, report on `ready`, then supervise.
fn supervise(runtime: &Runtime, opts: &ShimOptions, ready: OwnedFd) -> Result<()> {
    let mut steps = Steps::new();
    if let Some(l) = opts.launch {
        let now = berth_core::timing::monotonic_us();
        steps.0.push((
            "start.shim.launch".into(),
            l.entered_us.saturating_sub(l.spawned_us),
        ));
        steps
            .0
            .push(("start.shim.fork".into(), now.saturating_sub(l.entered_us)));
    }
    detach_self();
    let mut ready = Some(std::fs::File::from(ready));
    let report_err = |ready: &mut Option<std::fs::File>, e: &RuntimeError| {
        if let Some(mut f) = ready.take() {
            let _ = writeln!(f, "err {e}");
        }
    };
    // The attach socket exists before the process runs: a client may be waiting for it.
    let socket_path = opts.state_dir.join(ATTACH_SOCKET);
    let _ = std::fs::remove_file(&socket_path);
    let listener = short_socket_path(&opts.state_dir, ATTACH_SOCKET)
        .and_then(|(_dir, short)| UnixListener::bind(short))
        .ok();
    if let Some(l) = &listener {
        let _ = l.set_nonblocking(true);
    }
    let _ = std::fs::remove_file(opts.state_dir.join(CONTROL_SOCKET));
    let control = short_socket_path(&opts.state_dir, CONTROL_SOCKET)
        .and_then(|(_dir, short)| UnixListener::bind(short))
        .ok();
    if let Some(c) = &control {
        let _ = c.set_nonblocking(true);
    }
    steps.mark("start.shim.sockets");
    let started = start_container(runtime, opts, listener.as_ref(), &mut steps);
    let (output, mut info, first_client) = match started {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&socket_path);
            report_err(&mut ready, &e);
            return Err(e);
        }
    };
    // Not fsynced (berth_core::fs::replace): a host crash ends this shim with its container,
    // and a shim that is gone is all the engine needs to know then.
    let recorded = serde_json::to_vec(&info)
        .map_err(std::io::Error::other)
        .and_then(|bytes| berth_core::fs::replace(&opts.state_dir.join(SHIM_FILE), &bytes));
    if let Err(e) = recorded {
        let e = RuntimeError::io("record the shim", e);
        let _ = runtime.delete(&opts.id, true);
        report_err(&mut ready, &e);
        return Err(e);
    }
    // The log exists before the start is reported: a client that follows it at once (as
    // docker-py's `run` does, reading the stream only after `wait` and `remove`) holds the
    // file the relay will write, and so still reads the output of a container removed since.
    if opts.log_max_files > 0 {
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(opts.log_path());
    }
    steps.mark("start.shim.record");
    if let Some(mut f) = ready.take() {
        info.steps = std::mem::take(&mut steps.0);
        let _ = writeln!(f, "ok {}", serde_json::to_string(&info).unwrap_or_default());
    }
    let relay_opts = relay::RelayOptions {
        id: opts.id.clone(),
        state_dir: opts.state_dir.clone(),
        log_max_size: opts.log_max_size,
        log_max_files: opts.log_max_files,
        health: opts.health.clone(),
        runtime: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth-runtime")),
        runtime_root: runtime.root().to_path_buf(),
    };
    let fds = relay::RelayFds {
        output,
        listener,
        control,
        clients: first_client.into_iter().collect(),
        init: Pid::from_raw(info.init_pid),
    };
    // Hand over to the small relay binary (a fresh, small process image); only if that
    // cannot be done, relay here.
    let fds = match handoff::exec_relay(runtime.root(), &relay_opts, fds) {
        Ok(never) => match never {},
        Err(fds) => fds,
    };
    berth_core::memory::shed_resident_memory();
    let code = relay::run(&relay_opts, fds);
    finish(&relay_opts, code, || {
        let _ = runtime.delete(&opts.id, true);
    });
    Ok(())
}

/// Records the exit, removes the container's runtime state (`delete`) and the sockets.
pub fn finish(opts: &relay::RelayOptions, code: i32, delete: impl FnOnce()) {
    let exit = ExitInfo {
        exit_code: code,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let _ = write_atomic(&opts.state_dir, EXIT_FILE, &exit);
    delete();
    let _ = std::fs::remove_file(opts.state_dir.join(ATTACH_SOCKET));
    let _ = std::fs::remove_file(opts.state_dir.join(CONTROL_SOCKET));
}

/// Accepts one client within `limit`. Interrupted waits (a child's exit during `create`
/// delivers SIGCHLD) are resumed, so the container never starts before its client is there.
fn accept_within(listener: &UnixListener, limit: std::time::Duration) -> Option<UnixStream> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok((c, _)) = listener.accept() {
            let _ = c.set_nonblocking(false);
            return Some(c);
        }
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// The shim's steps until the container runs, each timed from the end of the one before.
struct Steps(Vec<(String, u64)>, std::time::Instant);

impl Steps {
    fn new() -> Steps {
        Steps(Vec::new(), std::time::Instant::now())
    }

    fn mark(&mut self, name: &str) {
        let now = std::time::Instant::now();
        self.0
            .push((name.to_owned(), (now - self.1).as_micros() as u64));
        self.1 = now;
    }
}

type Started = (Output, ShimInfo, Option<UnixStream>);

fn start_container(
    runtime: &Runtime,
    opts: &ShimOptions,
    listener: Option<&UnixListener>,
    steps: &mut Steps,
) -> Result<Started> {
    let bundle = Bundle::load(&opts.bundle)?;
    let terminal = bundle
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let (output, container) = if terminal {
        let socket = ConsoleSocket::new()?;
        let create = CreateOptions {
            console_socket: Some(socket.path().to_path_buf()),
            ..Default::default()
        };
        let container = runtime.create_loaded(&opts.id, bundle, create, true)?;
        let master = socket.receive_master().inspect_err(|_| {
            let _ = runtime.delete(&opts.id, true);
        })?;
        (Output::Pty(master), container)
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_keep, stdin_child) = if opts.stdin {
            let (r, w) = pipe()?;
            (Some(w), r)
        } else {
            let null = std::fs::File::open("/dev/null")
                .map_err(|e| RuntimeError::io("open /dev/null", e))?;
            (None, OwnedFd::from(null))
        };
        let create = CreateOptions {
            stdin: Some(stdin_child),
            stdout: Some(out_w),
            stderr: Some(err_w),
            ..Default::default()
        };
        let container = runtime.create_loaded(&opts.id, bundle, create, true)?;
        (
            Output::Pipes {
                stdout: Some(out_r),
                stderr: Some(err_r),
                stdin: stdin_keep,
            },
            container,
        )
    };
    steps.mark("start.shim.create");
    let first_client = match (opts.wait_attach, listener) {
        (Some(limit), Some(l)) => accept_within(l, limit),
        _ => None,
    };
    steps.mark("start.shim.attach");
    runtime.start(&opts.id).inspect_err(|_| {
        let _ = runtime.delete(&opts.id, true);
    })?;
    steps.mark("start.shim.start");
    let init_pid = container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| RuntimeError::NotFound(opts.id.clone()))?;
    Ok((
        output,
        ShimInfo {
            shim_pid: std::process::id() as i32,
            init_pid,
            steps: Vec::new(),
        },
        first_client,
    ))
}
