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
//! State directory (the engine's `containers/<id>/`):
//! - `<id>-json.log` (+ `.1`, `.2` after rotation) — the log.
//! - `shim.json` — `{"shim_pid", "init_pid"}` once the container runs.
//! - `exit.json` — `{"exit_code", "finished_at"}` once it has ended (written atomically).
//! - `attach.sock` — clients get the container's output as it comes (Docker's stream framing,
//!   raw for a tty) and what they send goes to its stdin.

pub mod log;

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::console::ConsoleSocket;
use crate::error::{Result, RuntimeError};
use crate::foreground::exit_code;
use crate::lifecycle::{CreateOptions, Runtime};
use log::{JsonLog, Stream};

pub const SHIM_FILE: &str = "shim.json";
pub const EXIT_FILE: &str = "exit.json";
pub const ATTACH_SOCKET: &str = "attach.sock";
/// Takes one-line commands: `resize ROWS COLS` sets the pty's window size.
pub const CONTROL_SOCKET: &str = "control.sock";

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
}

impl ShimOptions {
    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}-json.log", self.id))
    }
}

/// Written once the container runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimInfo {
    pub shim_pid: i32,
    pub init_pid: i32,
}

/// Written once the container has ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitInfo {
    pub exit_code: i32,
    /// RFC 3339 with nanoseconds.
    pub finished_at: String,
}

/// Writes `value` as JSON to `dir/name` through a temporary file, fsync and rename.
fn write_atomic<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

/// A path to `dir/name` short enough for a unix socket address (108 bytes), however long
/// `dir` is: it goes through an open descriptor of the directory, which the returned file
/// keeps open; use the path while it lives.
pub fn short_socket_path(dir: &Path, name: &str) -> std::io::Result<(std::fs::File, PathBuf)> {
    let d = std::fs::File::open(dir)?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", d.as_raw_fd()));
    Ok((d, path))
}

pub fn read_exit(state_dir: &Path) -> Option<ExitInfo> {
    serde_json::from_slice(&std::fs::read(state_dir.join(EXIT_FILE)).ok()?).ok()
}

pub fn read_shim(state_dir: &Path) -> Option<ShimInfo> {
    serde_json::from_slice(&std::fs::read(state_dir.join(SHIM_FILE)).ok()?).ok()
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

/// Where the container's output comes from.
enum Output {
    Pipes {
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        stdin: Option<OwnedFd>,
    },
    Pty(OwnedFd),
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| RuntimeError::io("create a pipe", e.into()))
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        );
    }
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
    let started = start_container(runtime, opts, listener.as_ref());
    let (output, info, first_client) = match started {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&socket_path);
            report_err(&mut ready, &e);
            return Err(e);
        }
    };
    if let Err(e) = write_atomic(&opts.state_dir, SHIM_FILE, &info) {
        let e = RuntimeError::io("record the shim", e);
        let _ = runtime.delete(&opts.id, true);
        report_err(&mut ready, &e);
        return Err(e);
    }
    if let Some(mut f) = ready.take() {
        let _ = writeln!(f, "ok {}", serde_json::to_string(&info).unwrap_or_default());
    }
    let code = relay_until_exit(
        opts,
        output,
        listener,
        control,
        first_client.into_iter().collect(),
        Pid::from_raw(info.init_pid),
    );
    let exit = ExitInfo {
        exit_code: code,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    };
    let _ = write_atomic(&opts.state_dir, EXIT_FILE, &exit);
    let _ = runtime.delete(&opts.id, true);
    let _ = std::fs::remove_file(opts.state_dir.join(ATTACH_SOCKET));
    let _ = std::fs::remove_file(opts.state_dir.join(CONTROL_SOCKET));
    Ok(())
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

type Started = (Output, ShimInfo, Option<UnixStream>);

fn start_container(
    runtime: &Runtime,
    opts: &ShimOptions,
    listener: Option<&UnixListener>,
) -> Result<Started> {
    let terminal = Bundle::load(&opts.bundle)?
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
        let container = runtime.create(&opts.id, &opts.bundle, create, true)?;
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
        let container = runtime.create(&opts.id, &opts.bundle, create, true)?;
        (
            Output::Pipes {
                stdout: Some(out_r),
                stderr: Some(err_r),
                stdin: stdin_keep,
            },
            container,
        )
    };
    let first_client = match (opts.wait_attach, listener) {
        (Some(limit), Some(l)) => accept_within(l, limit),
        _ => None,
    };
    runtime.start(&opts.id).inspect_err(|_| {
        let _ = runtime.delete(&opts.id, true);
    })?;
    let init_pid = container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| RuntimeError::NotFound(opts.id.clone()))?;
    Ok((
        output,
        ShimInfo {
            shim_pid: std::process::id() as i32,
            init_pid,
        },
        first_client,
    ))
}

/// Docker's stream framing for a non-tty attach: stream id, three zero bytes, big-endian
/// length, payload.
fn frame(stream: Stream, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.push(match stream {
        Stream::Stdout => 1,
        Stream::Stderr => 2,
    });
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// One control connection: a `resize ROWS COLS` line sets the pty's window size.
fn handle_control(conn: UnixStream, pty: Option<&OwnedFd>) {
    use std::io::BufRead;
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(1)));
    let mut line = String::new();
    if std::io::BufReader::new(&conn).read_line(&mut line).is_err() {
        return;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    if let (["resize", rows, cols], Some(fd)) = (words.as_slice(), pty) {
        if let (Ok(rows), Ok(cols)) = (rows.parse::<u16>(), cols.parse::<u16>()) {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass; fd is the pty master.
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }
}

/// An attached client: it gets the output for as long as it is connected, and its input goes
/// to the container until it closes its side.
struct Attached {
    stream: UnixStream,
    reading: bool,
}

impl Attached {
    fn new(stream: UnixStream) -> Attached {
        Attached {
            stream,
            reading: true,
        }
    }
}

/// Moves output to the log and attached clients, client input to stdin, until the init has
/// exited and its output is drained; returns the exit code.
fn relay_until_exit(
    opts: &ShimOptions,
    output: Output,
    listener: Option<UnixListener>,
    control: Option<UnixListener>,
    first: Vec<UnixStream>,
    init: Pid,
) -> i32 {
    let mut clients: Vec<Attached> = first.into_iter().map(Attached::new).collect();
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        mask.add(s);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None);
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok();

    let mut log = JsonLog::open(&opts.log_path(), opts.log_max_size, opts.log_max_files).ok();

    let (mut sources, mut stdin_fd, tty): (Vec<(OwnedFd, Stream)>, Option<OwnedFd>, bool) =
        match output {
            Output::Pipes {
                stdout,
                stderr,
                stdin,
            } => {
                let mut v = Vec::new();
                if let Some(fd) = stdout {
                    v.push((fd, Stream::Stdout));
                }
                if let Some(fd) = stderr {
                    v.push((fd, Stream::Stderr));
                }
                (v, stdin, false)
            }
            Output::Pty(master) => {
                let input = master.try_clone().ok();
                (vec![(master, Stream::Stdout)], input, true)
            }
        };
    let tty_fd: Option<OwnedFd> = if tty {
        stdin_fd.as_ref().and_then(|f| f.try_clone().ok())
    } else {
        None
    };
    for (fd, _) in &sources {
        set_nonblocking(fd.as_fd());
    }

    let mut code: Option<i32> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let mut deadline: Option<std::time::Instant> = None;
    loop {
        // Reap first: the init may have ended before we started waiting.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if status.pid() == Some(init) {
                        code = code.or(exit_code(status));
                    }
                }
            }
        }
        if code.is_some() && deadline.is_none() {
            // Output still buffered in the pipes is read; a process that outlived the init
            // (possible without a pid namespace) does not keep us past a short grace.
            deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(2));
        }
        if code.is_some()
            && (sources.is_empty() || deadline.is_some_and(|d| std::time::Instant::now() > d))
        {
            break;
        }

        let mut fds: Vec<PollFd> = Vec::new();
        if let Some(s) = &sigfd {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let n_sig = fds.len();
        for (fd, _) in &sources {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let n_src = fds.len();
        if let Some(l) = &listener {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        let n_attach = fds.len();
        if let Some(c) = &control {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
        }
        let n_listen = fds.len();
        // Only clients whose input is still open are read from; the others (a client with
        // no stdin half-closes at once) still get the output.
        let reading: Vec<usize> = (0..clients.len()).filter(|&i| clients[i].reading).collect();
        for &i in &reading {
            fds.push(PollFd::new(clients[i].stream.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if code.is_some() {
            PollTimeout::from(100u8)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| {
                f.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            })
            .collect();
        drop(fds);

        if n_sig == 1 && ready[0] {
            if let Some(s) = &sigfd {
                while let Ok(Some(_)) = s.read_signal() {}
            }
        }
        // Output.
        let mut closed = Vec::new();
        for (i, (fd, stream)) in sources.iter().enumerate() {
            if !ready[n_sig + i] {
                continue;
            }
            loop {
                match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                    Ok(0) => {
                        closed.push(i);
                        break;
                    }
                    Ok(n) => {
                        let data = &buf[..n];
                        if let Some(l) = &mut log {
                            let _ = l.write(*stream, data);
                        }
                        let framed = if tty {
                            data.to_vec()
                        } else {
                            frame(*stream, data)
                        };
                        clients.retain_mut(|c| c.stream.write_all(&framed).is_ok());
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR) => continue,
                    // EIO: the pty's last slave end closed.
                    Err(_) => {
                        closed.push(i);
                        break;
                    }
                }
            }
        }
        for i in closed.into_iter().rev() {
            sources.remove(i);
        }
        // Control commands (window size of the pty).
        if n_listen > n_attach && ready[n_attach] {
            if let Some(c) = &control {
                while let Ok((conn, _)) = c.accept() {
                    handle_control(conn, tty_fd.as_ref());
                }
            }
        }
        // New clients.
        if n_attach > n_src && ready[n_src] {
            if let Some(l) = &listener {
                while let Ok((c, _)) = l.accept() {
                    clients.push(Attached::new(c));
                }
            }
        }
        // Client input.
        let mut gone = Vec::new();
        for (k, &i) in reading.iter().enumerate() {
            if !ready.get(n_listen + k).copied().unwrap_or(false) {
                continue;
            }
            use std::io::Read;
            match clients[i].stream.read(&mut buf) {
                Ok(0) => {
                    // A client's end of input is the container's (Docker's stdin-once):
                    // `echo x | docker run -i … cat` ends.
                    if !tty {
                        stdin_fd = None;
                    }
                    clients[i].reading = false;
                }
                Err(_) => gone.push(i),
                Ok(n) => {
                    if let Some(fd) = &stdin_fd {
                        let _ = nix::unistd::write(fd, &buf[..n]);
                    }
                }
            }
        }
        for i in gone.into_iter().rev() {
            clients.remove(i);
        }
    }
    if let Some(l) = &mut log {
        let _ = l.flush_partial();
    }
    drop(clients);
    code.unwrap_or(255)
}

/// Whether the shim recorded in `state_dir` is still supervising its container (for an engine
/// that restarts and re-adopts its containers).
pub fn shim_alive(state_dir: &Path) -> bool {
    match read_shim(state_dir) {
        Some(info) => {
            // SAFETY: kill with signal 0 only checks that the process exists.
            let r = unsafe { libc::kill(info.shim_pid, 0) };
            r == 0 && read_exit(state_dir).is_none()
        }
        None => false,
    }
}
