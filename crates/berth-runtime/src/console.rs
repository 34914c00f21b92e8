//! The console socket protocol (runc's `--console-socket`): the container's init opens a pty
//! inside the container and sends the master end over a unix socket as SCM_RIGHTS.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::error::{Result, RuntimeError};

/// A listening console socket in a private temporary directory, removed on drop.
#[derive(Debug)]
pub struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Listens on a fresh socket under the system temporary directory.
    pub fn new() -> Result<ConsoleSocket> {
        let template = std::env::temp_dir().join("berth-console-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template)
            .map_err(|e| RuntimeError::io("create a console socket directory", e.into()))?;
        let path = dir.join("console.sock");
        let listener = UnixListener::bind(&path)
            .map_err(|e| RuntimeError::io(format!("listen on {}", path.display()), e))?;
        Ok(ConsoleSocket {
            dir,
            path,
            listener,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts the runtime's connection and returns the pty master it sends.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| RuntimeError::io("accept on the console socket", e))?;
        receive_fd(&stream)
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads one message carrying one file descriptor from a connected unix stream.
pub fn receive_fd(stream: &impl AsRawFd) -> Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| RuntimeError::io("receive the pty master", e.into()))?;
    let cmsgs = msg
        .cmsgs()
        .map_err(|e| RuntimeError::io("receive the pty master", e.into()))?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed `fd` in our table for us (SCM_RIGHTS);
                // nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(RuntimeError::io(
        "receive the pty master",
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no file descriptor in message",
        ),
    ))
}
