//! Mount points the runtime makes in a container's rootfs for the files and filesystems it
//! mounts there (`/etc/hosts`, `/proc`, …). Docker keeps them in an "init" layer under the
//! container's, so they are neither changes (`docker diff`) nor part of a commit. berth has no
//! init layer: they land in the upper dir as an empty file or directory, and the differ and
//! the layer writer leave them out by this one list.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use super::fd::{is_dir, list_dir, lstat_at, open_in};

const RUNTIME_FILES: &[&[u8]] = &[
    b"/etc/hostname",
    b"/etc/hosts",
    b"/etc/resolv.conf",
    b"/.dockerenv",
    b"/dev/console",
];
const RUNTIME_DIRS: &[&[u8]] = &[
    b"/proc",
    b"/sys",
    b"/dev",
    b"/dev/pts",
    b"/dev/shm",
    b"/dev/mqueue",
];

/// `/a/b` of components (`/` for none).
pub(crate) fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in comps {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Whether the upper dir's entry at `comps` is such a mount point (`dir`: its descriptor,
/// when it is a directory).
pub fn runtime_made(comps: &[Vec<u8>], st: &libc::stat, dir: Option<RawFd>) -> bool {
    let path = join(comps);
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => st.st_size == 0 && RUNTIME_FILES.contains(&path.as_slice()),
        libc::S_IFDIR => {
            RUNTIME_DIRS.contains(&path.as_slice())
                && dir.is_some_and(|d| list_dir(d).is_ok_and(|l| l.is_empty()))
        }
        _ => false,
    }
}

/// Whether the directory `dir` (at `comps`) holds entries and all of them are runtime mount
/// points: then it changed only because the runtime made them.
pub fn only_runtime_made(dir: RawFd, comps: &mut Vec<Vec<u8>>) -> io::Result<bool> {
    let names = list_dir(dir)?;
    if names.is_empty() {
        return Ok(false);
    }
    for name in names {
        let st = lstat_at(dir, &name)?;
        let sub = if is_dir(&st) {
            Some(open_in(dir, &name, libc::O_RDONLY | libc::O_DIRECTORY)?)
        } else {
            None
        };
        comps.push(name.to_bytes().to_vec());
        let made = runtime_made(comps, &st, sub.as_ref().map(AsRawFd::as_raw_fd));
        comps.pop();
        if !made {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_empty_mount_points_at_their_places() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::create_dir_all(p.join("etc")).unwrap();
        std::fs::create_dir_all(p.join("proc")).unwrap();
        std::fs::create_dir_all(p.join("sys/x")).unwrap();
        std::fs::write(p.join("etc/hosts"), "").unwrap();
        std::fs::write(p.join("etc/hostname"), "written").unwrap();
        let top = std::fs::File::open(p).unwrap();
        let etc = std::fs::File::open(p.join("etc")).unwrap();
        let c = |s: &str| -> Vec<Vec<u8>> {
            s.split('/')
                .filter(|c| !c.is_empty())
                .map(|c| c.as_bytes().to_vec())
                .collect()
        };
        let st = |d: &std::fs::File, n: &std::ffi::CStr| lstat_at(d.as_raw_fd(), n).unwrap();
        assert!(runtime_made(&c("/etc/hosts"), &st(&etc, c"hosts"), None));
        assert!(!runtime_made(
            &c("/etc/hostname"),
            &st(&etc, c"hostname"),
            None
        ));
        let proc = std::fs::File::open(p.join("proc")).unwrap();
        assert!(runtime_made(
            &c("/proc"),
            &st(&top, c"proc"),
            Some(proc.as_raw_fd())
        ));
        let sys = std::fs::File::open(p.join("sys")).unwrap();
        assert!(!runtime_made(
            &c("/sys"),
            &st(&top, c"sys"),
            Some(sys.as_raw_fd())
        ));
        // /etc holds a real change beside the mount point.
        assert!(!only_runtime_made(etc.as_raw_fd(), &mut c("/etc")).unwrap());
        std::fs::remove_file(p.join("etc/hostname")).unwrap();
        assert!(only_runtime_made(etc.as_raw_fd(), &mut c("/etc")).unwrap());
        assert_eq!(join(&[]), b"/");
        assert_eq!(join(&c("/a/b")), b"/a/b");
    }
}
