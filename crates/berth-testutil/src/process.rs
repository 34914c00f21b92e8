//! Running commands from tests and reading what they printed: with input, with a time limit,
//! on a pseudo-terminal; and small probes of the host the tests share.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Standard output, trimmed.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Standard error, trimmed.
pub fn err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// Standard output as it was.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as it was.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the command succeeded (showing both streams when not); its trimmed stdout.
#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}\nstdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    text(out)
}

/// Polls `f` every 50 ms until it holds; fails the test, naming `what`, after `limit`.
#[track_caller]
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether /sys/fs/cgroup is the unified (v2) hierarchy.
pub fn cgroup_v2() -> bool {
    Command::new("stat")
        .args(["-f", "-c", "%T", "/sys/fs/cgroup"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "cgroup2fs")
        .unwrap()
}

/// Runs `cmd` with `input` on its stdin (then closed); its output. The input is written from
/// a thread of its own while the output is read, so a command that answers as it reads
/// (more than a pipe's worth) cannot stall on a full stdout. A command still running after
/// two minutes is killed and fails the test rather than hanging it.
pub fn output_with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A command that exits before reading all of it closes the pipe: not our failure.
        let _ = stdin.write_all(&input);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let limit = Duration::from_secs(120);
    let status = status_within(&mut child, limit)
        .unwrap_or_else(|| panic!("command timed out after {limit:?}: {cmd:?}"));
    writer.join().unwrap();
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Runs `cmd` with stdout and stderr going to files, so that a detached container that keeps
/// them open cannot hold us up; kills it (and fails the test) after `limit`.
pub fn output_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let out_file = tempfile::tempfile().unwrap();
    let err_file = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdout(out_file.try_clone().unwrap())
        .stderr(err_file.try_clone().unwrap())
        .spawn()
        .unwrap();
    let status = status_within(&mut child, limit)
        .unwrap_or_else(|| panic!("command timed out after {limit:?}: {cmd:?}"));
    let read = |mut f: std::fs::File| {
        use std::io::Seek;
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out_file),
        stderr: read(err_file),
    }
}

/// Waits for `child` (SIGKILLing it after `limit`, so a hung daemon fails the test instead of
/// hanging it).
pub fn exits_within(child: &mut Child, limit: Duration) -> ExitStatus {
    let pid = child.id();
    status_within(child, limit)
        .unwrap_or_else(|| panic!("process {pid} did not exit within {limit:?}"))
}

/// The exit status of `child` once it ends; None (after killing and reaping it) when it has
/// not within `limit`. The one wait-with-a-limit of the helpers above.
fn status_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` on a new pseudo-terminal of `rows`x`cols`, as a person at a terminal would:
/// after `delay`, types `input`; returns the exit status and everything the terminal showed.
/// The process is killed (and the test fails) if it has not ended within 20 s.
pub fn run_in_pty(
    mut cmd: Command,
    rows: u16,
    cols: u16,
    delay: Duration,
    input: &[u8],
) -> (ExitStatus, String) {
    use std::os::fd::AsRawFd;
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = cmd
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    let mut drain = |master: &mut std::fs::File, text: &mut Vec<u8>| {
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
    };
    let start = Instant::now();
    let mut typed = false;
    let status = loop {
        drain(&mut master, &mut text);
        if !typed && start.elapsed() >= delay {
            master.write_all(input).unwrap();
            typed = true;
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the process on the terminal did not end: {:?}",
                String::from_utf8_lossy(&text)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drain(&mut master, &mut text);
    (status, String::from_utf8_lossy(&text).into_owned())
}
