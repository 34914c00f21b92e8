//! Finding the container's command the way Docker's runtime does, with Docker's words when it
//! cannot run.
//!
//! runc looks the command up with Go's `exec.LookPath` inside the container (after pivot_root,
//! the user switch and the chdir to the working directory) before it reports the container as
//! created, so a command that is missing or not executable fails `create`, not `start`. Docker's
//! CLI then reads the message to choose its exit status: 127 when it says
//! `executable file not found` or `no such file or directory`, 126 when it says
//! `permission denied` (the command exists but cannot be invoked). We follow the same rules and
//! wording:
//!
//! | command | problem | message | exit |
//! |---|---|---|---|
//! | no `/` | not an executable file in any `$PATH` directory | `exec: "NAME": executable file not found in $PATH` | 127 |
//! | has `/` | does not exist | `exec: "NAME": stat NAME: no such file or directory` | 127 |
//! | has `/` | a directory | `exec: "NAME": is a directory` | 126 |
//! | has `/` | not executable for the process's user | `exec: "NAME": permission denied` | 126 |

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::unistd::{faccessat, AccessFlags};

/// The PATH searched when the process's environment has none (Docker always sets one).
pub const FALLBACK_PATH: &str = crate::spec::DEFAULT_PATH;

/// Why a command cannot be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// The command as the user gave it (`process.args[0]`).
    pub name: String,
    pub cause: Cause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A bare name found in no `$PATH` directory as an executable file.
    NotInPath,
    /// A path that cannot be looked at (`stat` failed).
    Stat(Errno),
    /// A path that exists but cannot be executed (a directory, no permission, noexec mount).
    Access(Errno),
}

impl CommandError {
    /// The exit status Docker gives for this failure: 127 when there is no such command,
    /// 126 when there is one that cannot be invoked.
    pub fn exit_code(&self) -> i32 {
        match self.cause {
            Cause::NotInPath | Cause::Stat(Errno::ENOENT | Errno::ENOTDIR) => 127,
            Cause::Stat(_) | Cause::Access(_) => 126,
        }
    }
}

/// An errno in Go's words (lower case, as `syscall.Errno` prints): what Docker users see.
pub fn errno_text(errno: Errno) -> String {
    let desc = errno.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {}", errno as i32),
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exec: {:?}: ", self.name)?;
        match self.cause {
            Cause::NotInPath => f.write_str("executable file not found in $PATH"),
            Cause::Stat(e) => write!(f, "stat {}: {}", self.name, errno_text(e)),
            Cause::Access(e) => f.write_str(&errno_text(e)),
        }
    }
}

impl std::error::Error for CommandError {}

/// Whether `path` names something this process may execute: not a directory, and execute
/// permission for our effective ids (which also fails on a noexec mount).
fn check_executable(path: &Path) -> Result<(), Cause> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Cause::Stat(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    if meta.is_dir() {
        return Err(Cause::Access(Errno::EISDIR));
    }
    faccessat(None, path, AccessFlags::X_OK, AtFlags::AT_EACCESS).map_err(Cause::Access)
}

/// Finds the file to execute for `name`: a name with a `/` is used as it is (relative to the
/// working directory), a bare name is searched in `path_var` (`$PATH`; an empty entry means
/// the working directory). Call this in the container, as the container's user.
pub fn lookup(name: &str, path_var: Option<&OsStr>) -> Result<PathBuf, CommandError> {
    let fail = |cause| CommandError {
        name: name.to_owned(),
        cause,
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return check_executable(&path).map(|()| path).map_err(fail);
    }
    if !name.is_empty() {
        let search = path_var.unwrap_or(OsStr::new(FALLBACK_PATH));
        for dir in search.as_bytes().split(|b| *b == b':') {
            let dir = if dir.is_empty() {
                Path::new(".")
            } else {
                Path::new(OsStr::from_bytes(dir))
            };
            let candidate = dir.join(name);
            if check_executable(&candidate).is_ok() {
                return Ok(candidate);
            }
        }
    }
    Err(fail(Cause::NotInPath))
}

/// `$PATH` from a spec's `KEY=value` environment (the first one, as a shell would take it).
pub fn path_from_env(env: &[String]) -> Option<OsString> {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .map(OsString::from)
}

/// The exit status Docker's CLI gives when starting a container fails with `message`:
/// 127 for a command that does not exist, 126 for one that cannot be invoked, None when the
/// message is not about the command.
pub fn exit_code_of(message: &str) -> Option<i32> {
    let m = message.to_lowercase();
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("not a directory")
    {
        Some(127)
    } else if m.contains("permission denied") || m.contains("is a directory") {
        Some(126)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn messages_use_dockers_words() {
        let e = |name: &str, cause| CommandError {
            name: name.to_owned(),
            cause,
        };
        let cases = [
            (
                e("nonexistent", Cause::NotInPath),
                "exec: \"nonexistent\": executable file not found in $PATH",
                127,
            ),
            (
                e("/bin/nope", Cause::Stat(Errno::ENOENT)),
                "exec: \"/bin/nope\": stat /bin/nope: no such file or directory",
                127,
            ),
            (
                e("/etc/passwd", Cause::Access(Errno::EACCES)),
                "exec: \"/etc/passwd\": permission denied",
                126,
            ),
            (
                e("/bin", Cause::Access(Errno::EISDIR)),
                "exec: \"/bin\": is a directory",
                126,
            ),
        ];
        for (err, text, code) in cases {
            assert_eq!(err.to_string(), text);
            assert_eq!(err.exit_code(), code, "{text}");
            assert_eq!(exit_code_of(text), Some(code), "{text}");
        }
        assert_eq!(exit_code_of("cgroup: device or resource busy"), None);
    }

    #[test]
    fn lookup_follows_path_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = OsString::from(format!("/nonexistent-dir:{}", dir.path().display()));

        assert_eq!(lookup("tool", Some(&path)).unwrap(), exe);
        // A non-executable file on PATH is skipped, as Go's LookPath does.
        assert_eq!(
            lookup("data", Some(&path)).unwrap_err().cause,
            Cause::NotInPath
        );
        assert_eq!(lookup("", Some(&path)).unwrap_err().cause, Cause::NotInPath);
        assert_eq!(lookup(exe.to_str().unwrap(), None).unwrap(), exe);
        let missing = dir.path().join("missing");
        assert_eq!(
            lookup(missing.to_str().unwrap(), None).unwrap_err().cause,
            Cause::Stat(Errno::ENOENT)
        );
        assert_eq!(
            lookup(dir.path().to_str().unwrap(), None)
                .unwrap_err()
                .cause,
            Cause::Access(Errno::EISDIR)
        );
        // Not even root may execute a file without an execute bit.
        assert_eq!(
            lookup(plain.to_str().unwrap(), None).unwrap_err().cause,
            Cause::Access(Errno::EACCES)
        );
        assert_eq!(
            path_from_env(&["A=1".into(), "PATH=/x:/y".into()]),
            Some(OsString::from("/x:/y"))
        );
    }
}
