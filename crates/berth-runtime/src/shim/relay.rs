//! The shim's relay: for the container's whole life, its output goes to the json-file log and
//! to attached clients, client input to its stdin, window sizes to its pty; the init is
//! reaped and its exit status returned. It needs only descriptors and a few settings, so it
//! runs in `berth-shim` (a small binary the shim hands over to with `execve`, keeping the
//! descriptors), or in-process when that binary is missing.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use berth_core::memory::Release;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::log::{JsonLog, Stream};
use crate::foreground::exit_code;

/// What the relay needs to know about its container.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub id: String,
    pub state_dir: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// The container's health check, and the runtime that runs it (`exec`).
    pub health: Option<super::health::HealthConfig>,
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
}

impl RelayOptions {
    pub fn log_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}-json.log", self.id))
    }
}

/// Where the container's output comes from.
#[derive(Debug)]
pub enum Output {
    Pipes {
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        stdin: Option<OwnedFd>,
    },
    Pty(OwnedFd),
}

/// The descriptors the relay works on.
#[derive(Debug)]
pub struct RelayFds {
    pub output: Output,
    pub listener: Option<UnixListener>,
    pub control: Option<UnixListener>,
    /// Clients already attached (one that waited for the start).
    pub clients: Vec<UnixStream>,
    pub init: Pid,
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

/// How often the relay looks at its memory ([`berth_core::memory::IdleShed`]).
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_secs(10);

/// Moves output to the log and attached clients, client input to stdin, until the init has
/// exited and its output is drained; returns the exit code.
pub fn run(opts: &RelayOptions, fds: RelayFds) -> i32 {
    let RelayFds {
        output,
        listener,
        control,
        clients: first,
        init,
    } = fds;
    let mut clients: Vec<Attached> = first.into_iter().map(Attached::new).collect();
    let mut checker = opts.health.clone().map(|cfg| {
        super::health::Checker::new(
            cfg,
            &opts.id,
            &opts.state_dir,
            &opts.runtime,
            &opts.runtime_root,
        )
    });
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

    // No files kept: no log at all (the `none` logging driver).
    let mut log = (opts.log_max_files > 0)
        .then(|| JsonLog::open(&opts.log_path(), opts.log_max_size, opts.log_max_files).ok())
        .flatten();

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
    // Memory: a look every IDLE_LOOK; after one without a wake, the file pages the relay
    // faulted back in go again (a container that prints nothing and has no client leaves
    // its shim asleep in poll: only the anonymous memory stays resident).
    let mut memory = berth_core::memory::IdleShed::new(0);
    let mut wakes: u64 = 0;
    let mut last_look = std::time::Instant::now();
    loop {
        // Reap first: the init may have ended before we started waiting.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if status.pid() == Some(init) {
                        code = code.or(exit_code(status));
                    } else if let (Some(c), Some(pid)) = (checker.as_mut(), status.pid()) {
                        let (_, kill) = c.reaped(pid.as_raw(), exit_code(status).unwrap_or(-1));
                        if kill && code.is_none() {
                            // Turned unhealthy with `--restart on-unhealthy`.
                            let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
                        }
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
        let look_in = IDLE_LOOK.saturating_sub(last_look.elapsed());
        let timeout = if code.is_some() {
            PollTimeout::from(100u8)
        } else {
            let health = checker.as_ref().map(|c| c.due_in());
            let look = (!memory.is_shed()).then_some(look_in);
            match health.into_iter().chain(look).min() {
                Some(d) => {
                    let ms = d.as_millis().clamp(1, 60_000) as i32;
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            }
        };
        match poll(&mut fds, timeout) {
            Ok(n) if n > 0 => wakes += 1,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        if last_look.elapsed() >= IDLE_LOOK {
            last_look = std::time::Instant::now();
            match memory.look(wakes) {
                Release::All => berth_core::memory::shed_resident_memory(),
                Release::FreeHeap => berth_core::memory::release_free_heap(),
                Release::Nothing => {}
            }
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
        if code.is_none() {
            if let Some(c) = checker.as_mut() {
                c.tick();
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
