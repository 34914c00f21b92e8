//! Descriptor-relative file calls that never follow a symlink: what the layer writer and the
//! differ walk trees with (and the engine's confined paths reuse), so a tree that changes
//! while it is read can only redirect the walk inside itself.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `bytes` as a C string (a NUL byte in a file name is an error).
pub fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in a file name"))
}

/// Opens `name` in `dir` with `flags` and `O_NOFOLLOW`.
pub fn open_in(dir: RawFd, name: &CStr, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Opens the directory at the host path `path` (one berth made; its last component is not
/// followed) with `flags` (`O_RDONLY` or `O_PATH`).
pub fn open_dir_path(path: &Path, flags: i32) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str().as_bytes())?;
    open_in(libc::AT_FDCWD, &c, flags | libc::O_DIRECTORY)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` (`name` empty: the descriptor itself).
pub fn lstat_at(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
    let flags = if name.is_empty() {
        libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` is a valid out-buffer.
    let r = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) };
    if r == 0 {
        Ok(st)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The target of the symlink `name` in `dir` (`name` empty: the descriptor itself, opened
/// with `O_PATH|O_NOFOLLOW`).
pub fn readlink_at(dir: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `name` is NUL-terminated; `buf` is writable for its length.
        let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// The names in the directory `dir` (without `.` and `..`), sorted as Go's walk sorts them.
pub fn list_dir(dir: RawFd) -> io::Result<Vec<CString>> {
    let own = open_in(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY)?;
    let mut listing = nix::dir::Dir::from_fd(own.as_raw_fd()).map_err(io::Error::from)?;
    std::mem::forget(own); // `listing` owns (and closes) it now
    let mut names = Vec::new();
    for e in listing.iter() {
        let e = e.map_err(io::Error::from)?;
        let n = e.file_name();
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// An extended attribute of the open file `fd`, if it has it.
pub fn fgetxattr(fd: RawFd, name: &CStr) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: `name` is NUL-terminated; `buf` is writable for its length.
        let n = unsafe { libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Some(buf);
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && buf.len() < 65536 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return None;
    }
}
