//! Capability sets: Docker's default 14, "ALL", and `--cap-add`/`--cap-drop` arithmetic.

use std::collections::HashSet;

use oci_spec::runtime::Capability;

use super::SpecError;

/// The capabilities a Docker container gets unless told otherwise.
pub const DOCKER_DEFAULT: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability the OCI spec knows, for `--privileged` and `--cap-add ALL`.
pub const ALL: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// Every capability in `ALL` that this process's bounding set holds: what `--privileged` and
/// `--cap-add ALL` can grant here (a container cannot get more than its runtime has).
pub fn available() -> Vec<Capability> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        });
    match bounding {
        Some(mask) => ALL
            .into_iter()
            .filter(|c| number(*c).is_some_and(|n| mask & (1u64 << n) != 0))
            .collect(),
        None => ALL.to_vec(),
    }
}

/// The kernel's number for a capability (`CAP_CHOWN` is 0).
pub fn number(cap: Capability) -> Option<u32> {
    const ORDER: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let name = cap.to_string();
    ORDER.iter().position(|n| *n == name).map(|p| p as u32)
}

/// Parses `SYS_ADMIN`, `CAP_SYS_ADMIN` or `sys_admin`.
pub fn parse(name: &str) -> Result<Capability, SpecError> {
    let json = serde_json::Value::String(name.trim().to_owned());
    serde_json::from_value(json).map_err(|_| SpecError::UnknownCapability(name.to_owned()))
}

fn is_all(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("ALL")
}

/// Docker's rule: start from the defaults (or all, when privileged), drop what `--cap-drop`
/// names, then add what `--cap-add` names; `ALL` is allowed on either side.
pub fn resolve(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<HashSet<Capability>, SpecError> {
    if privileged {
        return Ok(available().into_iter().collect());
    }
    let mut set: HashSet<Capability> = DOCKER_DEFAULT.into_iter().collect();
    for name in drop {
        if is_all(name) {
            set.clear();
        } else {
            set.remove(&parse(name)?);
        }
    }
    for name in add {
        if is_all(name) {
            set.extend(available());
        } else {
            set.insert(parse(name)?);
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_spellings() {
        assert_eq!(parse("SYS_ADMIN").unwrap(), Capability::SysAdmin);
        assert_eq!(parse("CAP_NET_ADMIN").unwrap(), Capability::NetAdmin);
        assert_eq!(parse("kill").unwrap(), Capability::Kill);
        assert!(matches!(
            parse("NOPE"),
            Err(SpecError::UnknownCapability(_))
        ));
    }

    #[test]
    fn add_and_drop() {
        let set = resolve(false, &["SYS_ADMIN".into()], &["NET_RAW".into()]).unwrap();
        assert!(set.contains(&Capability::SysAdmin));
        assert!(!set.contains(&Capability::NetRaw));
        assert_eq!(set.len(), 14);
        let none = resolve(false, &[], &["ALL".into()]).unwrap();
        assert!(none.is_empty());
        let only_chown = resolve(false, &["CHOWN".into()], &["ALL".into()]).unwrap();
        assert_eq!(only_chown, [Capability::Chown].into());
        assert_eq!(resolve(true, &[], &[]).unwrap().len(), available().len());
    }

    #[test]
    fn numbers_follow_the_kernel() {
        assert_eq!(number(Capability::Chown), Some(0));
        assert_eq!(number(Capability::SysAdmin), Some(21));
        assert_eq!(number(Capability::CheckpointRestore), Some(40));
        for c in ALL {
            assert!(number(c).is_some(), "{c}");
        }
    }
}
