//! Running a container process in the foreground: forward every signal we get to it, relay
//! its terminal when it has one, reap children, and return its exit status the way a shell
//! reports it (128+N for a signal).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Result, RuntimeError};

/// The exit code a shell would show for `status`, or None if the process has not ended.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Puts the terminal on `fd` into raw mode until dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSANOW, &self.saved);
    }
}

fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass; TIOCSWINSZ only reads it.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags));
    }
}

/// Blocks every signal and returns a signalfd that receives them. Call this only after the
/// container process exists: a child inherits the signal mask of the moment it is cloned.
fn signal_fd() -> Result<(SignalFd, SigSet)> {
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    all.remove(Signal::SIGSTOP);
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))
        .map_err(|e| RuntimeError::io("block signals", e.into()))?;
    let fd = SignalFd::with_flags(&all, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| RuntimeError::io("create a signalfd", e.into()))?;
    Ok((fd, old))
}

/// Reaps every exited child; returns the exit code of `target` once it has ended.
fn reap(target: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(status) => {
                if status.pid() == Some(target) {
                    if let Some(code) = exit_code(status) {
                        result = Some(code);
                    }
                }
            }
        }
    }
}

/// Waits for `pid` (a child of this process) while forwarding signals and, when `pty` is the
/// master of its terminal, relaying our stdin/stdout to it. Returns its exit code.
pub fn wait(pid: Pid, pty: Option<OwnedFd>) -> Result<i32> {
    let (sigfd, old_mask) = signal_fd()?;
    let stdin = std::io::stdin();
    let stdout_fd = std::io::stdout();
    let stdin_fd = stdin.as_fd();
    let _raw = pty.as_ref().and_then(|_| RawMode::enter(stdin_fd));
    if let Some(master) = &pty {
        copy_window_size(stdin_fd, master.as_fd());
        set_nonblocking(master.as_fd());
    }
    let mut stdin_open = pty.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let mut code = reap(pid);

    while code.is_none() {
        let mut fds = vec![PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        if let Some(master) = &pty {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(RuntimeError::io("poll", e.into())),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| {
                f.revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
            })
            .collect();
        drop(fds);

        if ready[0] {
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => code = code.or(reap(pid)),
                    Ok(Signal::SIGWINCH) => {
                        if let Some(master) = &pty {
                            copy_window_size(stdin_fd, master.as_fd());
                        }
                    }
                    Ok(sig) => {
                        let _ = kill(pid, sig);
                    }
                    Err(_) => {}
                }
            }
        }
        if let Some(master) = &pty {
            if ready.get(1).copied().unwrap_or(false) {
                relay_output(master, &mut buf, &stdout_fd);
            }
            if stdin_open && ready.get(2).copied().unwrap_or(false) {
                match stdin.lock().read(&mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        let _ = write_all_fd(master.as_fd(), &buf[..n]);
                    }
                }
            }
        }
    }
    if let Some(master) = &pty {
        relay_output(master, &mut buf, &stdout_fd);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    Ok(code.unwrap_or(255))
}

/// Copies what the pty has buffered to our stdout (the master is non-blocking).
fn relay_output(master: &OwnedFd, buf: &mut [u8], stdout: &std::io::Stdout) {
    loop {
        match nix::unistd::read(master.as_raw_fd(), buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let mut out = stdout.lock();
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
            }
        }
    }
}

fn write_all_fd(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
