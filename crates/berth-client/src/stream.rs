//! The client side of attach and exec: our stdin to the container, its output to our stdout
//! and stderr (split from Docker's multiplexed framing when it has no tty), our terminal in
//! raw mode with its size sent to the daemon, and Docker's detach keys (ctrl-p ctrl-q).

use std::io::{BufRead, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, SetArg, Termios};

use crate::client::{Client, Hijacked};

/// Ctrl-p ctrl-q, Docker's default detach sequence.
const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The container's output ended.
    Ended,
    /// The user typed the detach keys; the container keeps running.
    Detached,
}

/// Our terminal in raw mode until dropped.
#[derive(Debug)]
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Raw mode on stdin when it is a terminal.
    pub fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        // Keep output post-processing so "\n" from the daemon still starts a new line when
        // the remote side is not a terminal.
        raw.output_flags = saved.output_flags;
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The size of our terminal (rows, columns), if stdout or stdin is one.
pub fn terminal_size() -> Option<(u16, u16)> {
    for fd in [std::io::stdout().as_raw_fd(), std::io::stdin().as_raw_fd()] {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a winsize into the struct we pass.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if rc == 0 && ws.ws_row > 0 && ws.ws_col > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

/// Sends our terminal size to `resize_path` (`/containers/ID/resize` or `/exec/ID/resize`)
/// now and whenever the window changes (SIGWINCH).
pub fn follow_window_size(client: &Client, resize_path: &str) {
    let send = {
        let (client, path) = (client.clone(), resize_path.to_owned());
        move || {
            if let Some((h, w)) = terminal_size() {
                let _ = client.post(&format!("{path}?h={h}&w={w}"), None);
            }
        }
    };
    send();
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    // Blocked here, SIGWINCH stays pending for the thread that waits for it.
    if nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&winch), None).is_err() {
        return;
    }
    std::thread::spawn(move || {
        while winch.wait().is_ok() {
            send();
        }
    });
}

/// Copies Docker's multiplexed stream (8-byte headers: stream, 0, 0, 0, big-endian length)
/// to our stdout and stderr.
pub fn demux(reader: &mut dyn Read) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    let mut buf = vec![0u8; 32 * 1024];
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    loop {
        if let Err(e) = reader.read_exact(&mut header) {
            return match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Ok(()),
                _ => Err(e),
            };
        }
        let mut left = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        while left > 0 {
            let want = left.min(buf.len());
            let n = reader.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(());
            }
            left -= n;
            let target: &mut dyn Write = if header[0] == 2 { &mut err } else { &mut out };
            target.write_all(&buf[..n])?;
            target.flush()?;
        }
    }
}

/// Copies a raw stream to our stdout as it arrives.
fn copy_raw(reader: &mut dyn BufRead) -> std::io::Result<()> {
    let mut out = std::io::stdout();
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // A connection we shut down ourselves (detach) ends the same way.
            Err(_) => return Ok(()),
        };
        if buf.is_empty() {
            return Ok(());
        }
        out.write_all(buf)?;
        out.flush()?;
        let n = buf.len();
        reader.consume(n);
    }
}

/// Runs a session on a hijacked connection until the output ends or the user detaches.
/// `stdin`: send our input; `tty`: the container has a terminal (raw stream, detach keys).
pub fn pump(h: Hijacked, stdin: bool, tty: bool) -> std::io::Result<Outcome> {
    let Hijacked {
        mut reader, writer, ..
    } = h;
    let detached = Arc::new(AtomicBool::new(false));
    if stdin {
        let detached = detached.clone();
        std::thread::spawn(move || copy_stdin(writer, tty, &detached));
    } else {
        let _ = writer.shutdown(std::net::Shutdown::Write);
    }
    // Without a tty the daemon frames the streams (whatever the content type says).
    if !tty {
        demux(&mut reader)?;
    } else {
        copy_raw(&mut reader)?;
    }
    Ok(if detached.load(Ordering::SeqCst) {
        Outcome::Detached
    } else {
        Outcome::Ended
    })
}

fn copy_stdin(mut writer: crate::conn::Conn, tty: bool, detached: &AtomicBool) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 8192];
    // How much of the detach sequence the last bytes matched.
    let mut matched = 0;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk: Vec<u8> = Vec::with_capacity(n + 2);
        for &b in &buf[..n] {
            if tty && b == DETACH_KEYS[matched] {
                matched += 1;
                if matched == DETACH_KEYS.len() {
                    detached.store(true, Ordering::SeqCst);
                    let _ = writer.write_all(&chunk);
                    let _ = writer.shutdown(std::net::Shutdown::Both);
                    return;
                }
                continue;
            }
            if matched > 0 {
                chunk.extend_from_slice(&DETACH_KEYS[..matched]);
                matched = 0;
            }
            chunk.push(b);
        }
        if writer.write_all(&chunk).is_err() {
            return;
        }
    }
    // Our input ended: tell the daemon, which closes the container's stdin.
    let _ = writer.shutdown(std::net::Shutdown::Write);
}
