//! The last step in the container process: `execve` of the user's command.
//!
//! The exec itself allocates nothing: every string and pointer is prepared beforehand.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;

/// A command ready for `execve`: every string and pointer array built beforehand, so that the
/// exec itself (also in a freshly forked child) allocates nothing.
#[derive(Debug)]
pub struct PreparedExec {
    path: CString,
    _argv: Vec<CString>,
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
            _argv: argv,
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
}
