//! Facts about the host that change what a container gets: the cgroup layout and whether
//! systemd manages cgroups. Nothing here assumes v1 or v2; both are first-class.

use std::path::Path;

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// Pure cgroup v2 at /sys/fs/cgroup (most current distributions).
    Unified,
    /// Controllers on v1 hierarchies, possibly with an empty v2 at /sys/fs/cgroup/unified.
    Legacy,
}

/// The cgroup layout, read from the filesystem type of /sys/fs/cgroup.
pub fn cgroup_mode() -> CgroupMode {
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(st) if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {
            CgroupMode::Unified
        }
        _ => CgroupMode::Legacy,
    }
}

/// Whether the host has its message queue filesystem mounted at /dev/mqueue.
pub fn has_mqueue() -> bool {
    const MQUEUE_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x1980_0202);
    nix::sys::statfs::statfs("/dev/mqueue").is_ok_and(|st| st.filesystem_type() == MQUEUE_MAGIC)
}

/// Whether the kernel accounts swap per cgroup, so a memory+swap limit can be set.
pub fn swap_accounting() -> bool {
    match cgroup_mode() {
        CgroupMode::Legacy => {
            Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        }
        // On v2 the swap files exist only below the root; the kernel config is what decides.
        CgroupMode::Unified => std::fs::read_dir("/sys/fs/cgroup")
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.path().join("memory.swap.max").exists())
            })
            .unwrap_or(false),
    }
}

/// True when systemd is PID 1; only then may the systemd cgroup driver be used.
pub fn systemd_is_init() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && std::fs::read_to_string("/proc/1/comm")
            .map(|c| c.trim() == "systemd")
            .unwrap_or(false)
}

/// Whether the kernel executes x32-ABI system calls (x86_64 kernels built with
/// CONFIG_X86_X32_ABI and not booted with it off). Most distribution kernels do not, and then a
/// seccomp filter need not cover x32: such calls never run, and leaving the architecture out
/// makes the filter several milliseconds cheaper to build at every container start.
///
/// Probed once per process in a forked child (so that an outer seccomp filter that kills on
/// an unknown architecture cannot take us down); when in doubt the answer is "yes".
pub fn kernel_runs_x32() -> bool {
    *X32_ANSWER.get_or_init(|| {
        if std::env::consts::ARCH != "x86_64" {
            return false;
        }
        probe_x32().unwrap_or(true)
    })
}

static X32_ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// [`kernel_runs_x32`], remembered in `dir` for the rest of this boot (the file is named
/// after the kernel's boot id): a runtime process that starts a container or an exec asks
/// once, and the fork of the probe is paid once per boot instead of once per process. When
/// `dir` cannot be read or written, the probe runs as before.
pub fn kernel_runs_x32_remembered(dir: &Path) -> bool {
    *X32_ANSWER.get_or_init(|| {
        if std::env::consts::ARCH != "x86_64" {
            return false;
        }
        match first_line(&["/proc/sys/kernel/random/boot_id"]) {
            Some(boot) => remembered_x32(dir, &boot, probe_x32),
            None => probe_x32().unwrap_or(true),
        }
    })
}

/// The answer kept in `dir` for boot `boot`, else `probe`'s (kept there for the next
/// process, replacing earlier boots'); "yes" when the probe cannot tell.
fn remembered_x32(dir: &Path, boot: &str, probe: impl FnOnce() -> Option<bool>) -> bool {
    if boot.is_empty() || !boot.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return probe().unwrap_or(true);
    }
    let file = dir.join(format!("x32-{boot}"));
    match std::fs::read(&file).as_deref() {
        Ok(b"1") => return true,
        Ok(b"0") => return false,
        _ => {}
    }
    let Some(answer) = probe() else {
        return true;
    };
    for old in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if old.file_name().to_string_lossy().starts_with("x32-") {
            let _ = std::fs::remove_file(old.path());
        }
    }
    // Not fsynced: a crash that loses it loses a cache, and a new boot has a new name.
    let _ = std::fs::create_dir_all(dir)
        .and_then(|()| berth_core::fs::replace(&file, if answer { b"1" } else { b"0" }));
    answer
}

#[cfg(target_arch = "x86_64")]
fn probe_x32() -> Option<bool> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
    // SAFETY: the child only makes a raw syscall and calls _exit, both async-signal-safe, so
    // forking is sound even from a multi-threaded process.
    match unsafe { fork() }.ok()? {
        ForkResult::Child => {
            // SAFETY: getpid takes no arguments; with the x32 bit set it is either x32's
            // getpid or rejected with ENOSYS.
            let r = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) };
            // SAFETY: _exit ends the child without running any of the parent's destructors.
            unsafe { libc::_exit(if r >= 0 { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).ok()? {
            WaitStatus::Exited(_, 0) => Some(true),
            WaitStatus::Exited(_, 1) => Some(false),
            _ => None,
        },
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn probe_x32() -> Option<bool> {
    Some(false)
}

fn first_line(paths: &[&str]) -> Option<String> {
    paths.iter().find_map(|p| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    })
}

/// The CPUs containers may be given (`--cpuset-cpus`), as a list (`0-3,6`): the root cpuset
/// cgroup's, or the online ones.
pub fn cpuset_cpus() -> String {
    first_line(&[
        "/sys/fs/cgroup/cpuset.cpus.effective",
        "/sys/fs/cgroup/cpuset/cpuset.cpus",
        "/sys/devices/system/cpu/online",
    ])
    .unwrap_or_else(|| "0".into())
}

/// The memory nodes containers may be given (`--cpuset-mems`), as a list.
pub fn cpuset_mems() -> String {
    first_line(&[
        "/sys/fs/cgroup/cpuset.mems.effective",
        "/sys/fs/cgroup/cpuset/cpuset.mems",
        "/sys/devices/system/node/online",
    ])
    .unwrap_or_else(|| "0".into())
}

/// The cgroups path berth uses for a container when none is given: a `berth` parent under
/// the cgroupfs root, or a transient scope in system.slice under systemd.
pub fn default_cgroups_path(id: &str, systemd: bool) -> String {
    if systemd {
        format!("system.slice:berth:{id}")
    } else {
        format!("/berth/{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe's answer is kept under the boot's id (earlier boots' go) and read back
    /// without probing again; a kept answer of another boot, or a torn one, is not used.
    #[test]
    fn the_x32_answer_is_probed_once_per_boot() {
        let dir = tempfile::tempdir().unwrap();
        let names = || -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let never = || -> Option<bool> { panic!("probed although the answer was kept") };
        std::fs::write(dir.path().join("x32-1111"), "1").unwrap();
        assert!(!remembered_x32(dir.path(), "2222", || Some(false)));
        assert_eq!(names(), ["x32-2222"]);
        assert!(!remembered_x32(dir.path(), "2222", never));
        // A torn write (empty file) is probed again; a probe that cannot tell says yes and
        // keeps nothing.
        std::fs::write(dir.path().join("x32-2222"), "").unwrap();
        assert!(remembered_x32(dir.path(), "2222", || Some(true)));
        assert!(remembered_x32(dir.path(), "2222", never));
        assert!(remembered_x32(dir.path(), "3333", || None));
        assert_eq!(names(), ["x32-2222"]);
        // A boot id that is not one is not made into a path.
        assert!(!remembered_x32(dir.path(), "../x", || Some(false)));
        assert_eq!(names(), ["x32-2222"]);
    }

    #[test]
    fn default_paths() {
        assert_eq!(default_cgroups_path("abc", false), "/berth/abc");
        assert_eq!(default_cgroups_path("abc", true), "system.slice:berth:abc");
    }
}
