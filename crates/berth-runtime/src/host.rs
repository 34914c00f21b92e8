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

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup layout, read from the filesystem type of /sys/fs/cgroup.
pub fn cgroup_mode() -> CgroupMode {
    match nix::sys::statfs::statfs("/sys/fs/cgroup") {
        Ok(st) if st.filesystem_type().0 as i64 == CGROUP2_SUPER_MAGIC => CgroupMode::Unified,
        _ => CgroupMode::Legacy,
    }
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

    #[test]
    fn default_paths() {
        assert_eq!(default_cgroups_path("abc", false), "/berth/abc");
        assert_eq!(default_cgroups_path("abc", true), "system.slice:berth:abc");
    }
}
