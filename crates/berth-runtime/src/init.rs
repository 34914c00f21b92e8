//! The last step in the container process: `execve` of the user's command, either directly or
//! under berth's own minimal init (`docker run --init`).
//!
//! A spec asks for the init with the annotation [`INIT_ANNOTATION`] = `"true"` (set by
//! [`crate::spec::docker_default`] from `ContainerOptions::init`). Then the container's pid 1
//! is not the user's process but this code, already confined (seccomp loaded, capabilities
//! final) in the container process that libcontainer set up:
//!
//! - every signal is blocked, the process names itself `berth-init` (before the command can
//!   look at pid 1), then it forks;
//! - the child puts itself in a process group of its own, makes that group the terminal's
//!   foreground group when stdin is its controlling terminal (so an interactive shell gets
//!   job control and the terminal's ^C), unblocks signals and executes the command;
//! - the parent waits for signals with `sigwaitinfo`, forwards each
//!   one except SIGCHLD to the child (the child itself, not its group, as tini does by default),
//!   reaps every child that ends (orphans are reparented to it), and when the command ends
//!   exits with its status: its exit code, or 128+N when signal N killed it.
//!
//! Pid 1 of a pid namespace gets no signal whose action is the default, so a process there
//! that installs no handler cannot be stopped with SIGTERM; the init forwards SIGTERM to a
//! process that is not pid 1, for which the default action applies.
//!
//! Between `fork` and `execve` the child only makes async-signal-safe system calls on memory
//! prepared before the fork: no allocation, no locks.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;

pub use berth_oci::spec::INIT_ANNOTATION;

/// What pid 1 is called (its `comm`, and the start of its command line) under `--init`.
pub const INIT_NAME: &str = "berth-init";

/// Whether `spec` asks for berth's init.
pub fn wanted(spec: &oci_spec::runtime::Spec) -> bool {
    berth_oci::spec::wants_init(spec)
}

/// A command ready for `execve`: every string and pointer array built beforehand, so that the
/// exec itself (also in a freshly forked child) allocates nothing.
#[derive(Debug)]
pub struct PreparedExec {
    path: CString,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
}

fn cstring(bytes: Vec<u8>) -> Result<CString, String> {
    CString::new(bytes).map_err(|e| {
        format!(
            "argument or environment entry contains a NUL byte: {:?}",
            String::from_utf8_lossy(&e.into_vec())
        )
    })
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl PreparedExec {
    /// Prepares executing `path` with `args` (argv, including argv\[0\]) and `env`.
    pub fn new(
        path: &Path,
        args: &[String],
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<PreparedExec, String> {
        let path = cstring(path.as_os_str().as_bytes().to_vec())?;
        let argv = args
            .iter()
            .map(|a| cstring(a.clone().into_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                cstring(kv)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let argv_ptrs = pointers(&argv);
        let envp_ptrs = pointers(&envp);
        Ok(PreparedExec {
            path,
            argv,
            argv_ptrs,
            _envp: envp,
            envp_ptrs,
        })
    }

    /// Replaces this process with the command. Only returns by exiting: with 127 when the file
    /// is gone, 126 when it cannot be executed, after `exec PATH: REASON` on stderr (runc's
    /// words for a failure this late, after `start`). Async-signal-safe.
    pub fn exec(&self) -> ! {
        // SAFETY: path, argv and envp are NUL-terminated strings, and both arrays end with a
        // null pointer; all of them live in `self`, which outlives the call.
        unsafe {
            libc::execve(
                self.path.as_ptr(),
                self.argv_ptrs.as_ptr(),
                self.envp_ptrs.as_ptr(),
            );
        }
        let errno = Errno::last();
        write_stderr(b"exec ");
        write_stderr(self.path.as_bytes());
        write_stderr(b": ");
        write_errno(errno);
        write_stderr(b"\n");
        let code = match errno {
            Errno::ENOENT | Errno::ENOTDIR => 127,
            _ => 126,
        };
        // SAFETY: _exit ends the process at once; nothing needs unwinding or flushing here.
        unsafe { libc::_exit(code) }
    }
}

/// Writes to fd 2, ignoring failures. Async-signal-safe.
fn write_stderr(bytes: &[u8]) {
    // SAFETY: writes from a valid slice of `bytes.len()` bytes.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

/// An errno as Go prints it (lower-case first letter), without allocating.
fn write_errno(errno: Errno) {
    let desc = errno.desc().as_bytes();
    if let Some((first, rest)) = desc.split_first() {
        write_stderr(&[first.to_ascii_lowercase()]);
        write_stderr(rest);
    }
}

/// Every signal that can be blocked, in libc's form.
fn full_sigset() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigfillset initializes all of it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        set
    }
}

/// Puts every signal back to its default action: the container's processes start with none
/// ignored, as under Docker, whatever the runtime inherited. (Rust ignores SIGPIPE; glibc's
/// `posix_spawn`, which Rust's `Command` uses, leaves the C library's internal signals 32 and
/// 33 ignored in the programs it starts, and `signal()` refuses to touch those, hence the raw
/// system call.)
pub fn reset_signal_actions() {
    // The kernel's struct sigaction with handler SIG_DFL (0), no flags, no restorer and an
    // empty mask is all zeros, whichever of the layouts (with or without sa_restorer) the
    // architecture uses; 32 bytes cover the largest.
    let default_action = [0u64; 4];
    const KERNEL_SIGSET_BYTES: usize = 8;
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a struct sigaction from `default_action` (zeroed, large
        // enough for any layout) and writes nothing (null old action).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default_action.as_ptr(),
                std::ptr::null_mut::<u64>(),
                KERNEL_SIGSET_BYTES,
            );
        }
    }
}

/// Becomes the container's init: forks `cmd` as a child and supervises it until it ends, then
/// exits with its status. Never returns.
pub fn run(cmd: &PreparedExec) -> ! {
    let all = full_sigset();
    // SAFETY: sigset_t is plain data; sigemptyset initializes it.
    let none = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    };
    // SAFETY: both pointers are valid sigsets; blocking before the fork means no signal can
    // be handled by default (or lost) in either process before it is ready for it.
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
    // Named before the fork: the command may look at pid 1 (`/proc/1/comm`, `ps`) as soon as
    // it runs. The child's copy of the name lasts until its exec replaces it.
    name_self(cmd);
    // SAFETY: this process is single-threaded (libcontainer's container process); the child
    // only calls async-signal-safe functions on memory prepared before the fork, then execs.
    let child = unsafe { libc::fork() };
    if child < 0 {
        let errno = Errno::last();
        write_stderr(b"berth-init: fork: ");
        write_errno(errno);
        write_stderr(b"\n");
        // SAFETY: nothing to clean up; the container ends.
        unsafe { libc::_exit(126) }
    }
    if child == 0 {
        // SAFETY: async-signal-safe calls only. Our own process group keeps signals meant for
        // the command's group away from pid 1. With stdin our controlling terminal, the group
        // becomes its foreground (SIGTTOU is blocked, so a background caller may do this);
        // otherwise tcsetpgrp fails (ENOTTY) and nothing changes. Then unblock everything.
        unsafe {
            libc::setpgid(0, 0);
            libc::tcsetpgrp(0, libc::getpid());
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
        cmd.exec();
    }
    close_inherited_fds();
    supervise(child, &all)
}

/// Pid 1 keeps nothing but stdio: a descriptor it inherited from the runtime (the exec fifo
/// that `start` reads to its end, above all) would otherwise stay open as long as the
/// container runs, where the command's own exec would have closed it.
fn close_inherited_fds() {
    // SAFETY: close_range only closes descriptors of this process; none of 3.. is in use by
    // pid 1 after the fork (the command keeps its own copies).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc != 0 {
        for fd in 3..4096 {
            // SAFETY: as above, closing descriptors pid 1 no longer needs.
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// Names pid 1 `berth-init` in `ps` and /proc/1/comm, and overwrites the command line it
/// inherited from the runtime (host paths and options the container need not see) with
/// `berth-init -- COMMAND…`, as far as it fits.
fn name_self(cmd: &PreparedExec) {
    let name = CString::new(INIT_NAME).unwrap_or_default();
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
    let Some((start, end)) = argument_area() else {
        return;
    };
    let len = end - start;
    let mut title: Vec<u8> = Vec::with_capacity(len);
    let words = [INIT_NAME.as_bytes(), b"--"]
        .into_iter()
        .chain(cmd.argv.iter().map(|a| a.as_bytes()));
    for word in words {
        // Whole words only, each with its NUL, leaving at least the last byte NUL.
        if title.len() + word.len() + 1 >= len {
            break;
        }
        title.extend_from_slice(word);
        title.push(0);
    }
    title.resize(len, 0);
    // SAFETY: [start, end) is this process's own argument area (the kernel's arg_start and
    // arg_end for it), writable stack memory holding the runtime's argv strings, which nothing
    // reads any more in this process; we write exactly `len` bytes into it.
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, len);
    }
}

/// The kernel's `arg_start` and `arg_end` for this process (fields 48 and 49 of
/// /proc/self/stat, counting from 1).
fn argument_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let start: usize = fields.get(48 - 3)?.parse().ok()?;
    let end: usize = fields.get(49 - 3)?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// Pid 1's loop: forward signals to `child`, reap everything, exit with `child`'s status.
fn supervise(child: libc::pid_t, signals: &libc::sigset_t) -> ! {
    loop {
        // SAFETY: siginfo_t is plain data that sigwaitinfo fills in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `signals` is a valid set (all of them blocked in this process) and `info` is
        // writable.
        let sig = unsafe { libc::sigwaitinfo(signals, &mut info) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            // SAFETY: kill has no memory effects; a child that already ended is a zombie
            // until we reap it, so its pid cannot have been reused.
            unsafe {
                libc::kill(child, sig);
            }
            continue;
        }
        if let Some(code) = reap(child) {
            // SAFETY: the command ended: pid 1 exits, and the kernel ends every other process
            // in the namespace.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Reaps every child that has ended; returns `main`'s exit status (128+N for signal N) once it
/// is among them.
fn reap(main: libc::pid_t) -> Option<i32> {
    let mut result = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == main {
            if libc::WIFEXITED(status) {
                result = Some(libc::WEXITSTATUS(status));
            } else if libc::WIFSIGNALED(status) {
                result = Some(128 + libc::WTERMSIG(status));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_exec_builds_terminated_arrays() {
        let p = PreparedExec::new(
            Path::new("/bin/echo"),
            &["echo".into(), "hi".into()],
            [(OsString::from("A"), OsString::from("1"))],
        )
        .unwrap();
        assert_eq!(p.argv_ptrs.len(), 3);
        assert!(p.argv_ptrs[2].is_null());
        assert_eq!(p.envp_ptrs.len(), 2);
        assert_eq!(p._envp[0].as_bytes(), b"A=1");
        assert!(PreparedExec::new(Path::new("/bin/x"), &["a\0b".into()], []).is_err());
    }

    #[test]
    fn the_annotation_turns_init_on() {
        let mut spec = oci_spec::runtime::Spec::default();
        assert!(!wanted(&spec));
        spec.set_annotations(Some(
            [(INIT_ANNOTATION.to_owned(), "true".to_owned())].into(),
        ));
        assert!(wanted(&spec));
    }

    #[test]
    fn own_argument_area_is_found() {
        let (start, end) = argument_area().unwrap();
        assert!(end > start);
    }
}
