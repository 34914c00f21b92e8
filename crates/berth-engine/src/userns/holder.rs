//! New user (and network) namespaces made from the daemon, which is multi-threaded and so may
//! neither `unshare(CLONE_NEWUSER)` nor `setns` into a user namespace itself: a short-lived
//! child (forked, doing only system calls until it exits) makes them and waits; the daemon
//! writes the user namespace's ID maps into its `/proc/<pid>/` files, keeps what it needs
//! (an open descriptor of the namespace, or a bind mount of it onto a file) and lets the child
//! go. A namespace lives on as long as a descriptor or mount holds it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_core::idmap::IdMap;

/// What the child makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recipe<'a> {
    /// Enter this user namespace first (the new network namespace is then owned by it).
    pub(crate) join_user: Option<BorrowedFd<'a>>,
    /// A new user namespace (whose maps [`Holder::write_maps`] writes).
    pub(crate) new_user: bool,
    /// A new network namespace with `lo` up.
    pub(crate) new_net: bool,
}

/// The child, waiting in its new namespaces until this is dropped.
#[derive(Debug)]
pub(crate) struct Holder {
    pid: libc::pid_t,
    /// Closed on drop: the child reads end-of-file and exits.
    hold: Option<OwnedFd>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child's whole life: only system calls (no allocation, no lock: another thread of the
/// parent may have held one at the fork). Reports 0 or an errno, then waits for end-of-file.
fn child(recipe: &Recipe<'_>, report: libc::c_int, hold: libc::c_int) -> ! {
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: plain system calls on descriptors the parent prepared; the child never returns.
    unsafe {
        let mut status: libc::c_int = 0;
        if let Some(user) = recipe.join_user {
            if libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) != 0 {
                status = errno();
            }
        }
        let mut flags = 0;
        if recipe.new_user {
            flags |= libc::CLONE_NEWUSER;
        }
        if recipe.new_net {
            flags |= libc::CLONE_NEWNET;
        }
        if status == 0 && flags != 0 && libc::unshare(flags) != 0 {
            status = errno();
        }
        if status == 0 && recipe.new_net {
            if let Err(e) = crate::networks::loopback_up() {
                status = e.raw_os_error().unwrap_or(libc::EIO);
            }
        }
        // Every descriptor but these two goes: above all the pipe's write end (ours, so that
        // the parent's close is the end-of-file) and those of other children made meanwhile.
        let (low, high) = (
            report.min(hold) as libc::c_uint,
            report.max(hold) as libc::c_uint,
        );
        for (first, last) in [
            (3, low.saturating_sub(1)),
            (low + 1, high.saturating_sub(1)),
            (high + 1, libc::c_uint::MAX),
        ] {
            if first <= last {
                libc::syscall(libc::SYS_close_range, first, last, 0);
            }
        }
        libc::write(report, (&status as *const libc::c_int).cast(), 4);
        let mut byte = 0u8;
        while libc::read(hold, (&mut byte as *mut u8).cast(), 1) > 0 {}
        libc::_exit(0)
    }
}

impl Holder {
    /// Forks the child and waits until its namespaces exist.
    pub(crate) fn spawn(recipe: Recipe<'_>) -> io::Result<Holder> {
        let (report_r, report_w) = pipe()?;
        let (hold_r, hold_w) = pipe()?;
        // SAFETY: the child runs `child` only, which makes system calls and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            child(&recipe, report_w.as_raw_fd(), hold_r.as_raw_fd());
        }
        drop((report_w, hold_r));
        let holder = Holder {
            pid,
            hold: Some(hold_w),
        };
        let mut status = [0u8; 4];
        let mut report = std::fs::File::from(report_r);
        io::Read::read_exact(&mut report, &mut status)
            .map_err(|e| io::Error::new(e.kind(), format!("the namespace child died: {e}")))?;
        match i32::from_ne_bytes(status) {
            0 => Ok(holder),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    /// Writes `map` as the new user namespace's ID maps (the daemon may: it has CAP_SETUID
    /// and CAP_SETGID where the namespace was made).
    pub(crate) fn write_maps(&self, map: &IdMap) -> io::Result<()> {
        for (file, line) in [
            ("uid_map", map.uids.proc_line()),
            ("gid_map", map.gids.proc_line()),
        ] {
            let path = format!("/proc/{}/{file}", self.pid);
            std::fs::write(&path, line)
                .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        }
        Ok(())
    }

    /// The child's namespace of `kind` (`user`, `net`).
    pub(crate) fn ns(&self, kind: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{kind}", self.pid))
    }

    /// An open descriptor of the child's namespace of `kind`, which keeps it alive.
    pub(crate) fn open_ns(&self, kind: &str) -> io::Result<OwnedFd> {
        Ok(std::fs::File::open(self.ns(kind))?.into())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.hold.take());
        let mut status = 0;
        // SAFETY: our own child; waited for once.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

/// Bind-mounts the namespace file `ns` onto `target` (made as an empty file first), which
/// keeps the namespace after its last process is gone.
pub(crate) fn pin(ns: &Path, target: &Path) -> io::Result<()> {
    std::fs::File::create(target)?;
    nix::mount::mount(
        Some(ns),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Undoes [`pin`] (nothing when `target` is not pinned) and removes the file.
pub(crate) fn unpin(target: &Path) {
    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(target);
}

/// A user namespace with `map`, held by the returned descriptor alone.
pub(crate) fn userns_fd(map: &IdMap) -> io::Result<OwnedFd> {
    let holder = Holder::spawn(Recipe {
        join_user: None,
        new_user: true,
        new_net: false,
    })?;
    holder.write_maps(map)?;
    holder.open_ns("user")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::idmap::IdRange;

    #[test]
    fn a_user_namespace_with_the_maps_outlives_its_child() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root to write ID maps");
            return;
        }
        let range = IdRange {
            container: 0,
            host: 100_000,
            size: 65536,
        };
        let map = IdMap {
            uids: range,
            gids: range,
        };
        let holder = Holder::spawn(Recipe {
            join_user: None,
            new_user: true,
            new_net: true,
        })
        .unwrap();
        holder.write_maps(&map).unwrap();
        let pid = holder.pid;
        let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
        assert_eq!(
            uid_map.split_whitespace().collect::<Vec<_>>(),
            ["0", "100000", "65536"]
        );
        let user = holder.open_ns("user").unwrap();
        let net = holder.open_ns("net").unwrap();
        drop(holder);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the child is gone"
        );
        // The network namespace belongs to the new user namespace (NS_GET_USERNS), whose
        // descriptor still works (NS_GET_OWNER_UID gives its creator, root).
        const NS_GET_USERNS: libc::c_ulong = 0xb701;
        // SAFETY: an ioctl on an nsfs descriptor; it returns a new descriptor or -1.
        let owner = unsafe { libc::ioctl(net.as_raw_fd(), NS_GET_USERNS as _) };
        assert!(owner >= 0);
        // SAFETY: a new descriptor nothing else owns.
        let owner = unsafe { OwnedFd::from_raw_fd(owner) };
        let (a, b) = (
            nix::sys::stat::fstat(owner.as_raw_fd()).unwrap(),
            nix::sys::stat::fstat(user.as_raw_fd()).unwrap(),
        );
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
        // Joining it from another child works, and a second network namespace is its too.
        let again = Holder::spawn(Recipe {
            join_user: Some(std::os::fd::AsFd::as_fd(&user)),
            new_user: false,
            new_net: true,
        })
        .unwrap();
        let net2 = again.open_ns("net").unwrap();
        assert_ne!(
            nix::sys::stat::fstat(net2.as_raw_fd()).unwrap().st_ino,
            nix::sys::stat::fstat(net.as_raw_fd()).unwrap().st_ino
        );
    }
}
